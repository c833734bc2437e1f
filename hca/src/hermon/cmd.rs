//! Typed HCR commands (opcodes: iPXE `src/drivers/infiniband/hermon.h` `HERMON_HCR_*`, Linux
//! `include/linux/mlx4/cmd.h` `MLX4_CMD_*`). Each command is a type with a `const OPCODE`, its
//! input (none, inline, or a mailbox it fills) and a typed output; the one generic
//! `Hermon::exec` owns the doorbell, the go bit, the toggle, the timeout and the status decode.

use super::prm::{self, Prm};
use crate::wire::mad::Mad;
use crate::wire::Gid;
use zerocopy::IntoBytes;

/// HCR opcode (12 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Opcode(pub u16);

impl Opcode {
    /// QUERY_DEV_CAP.
    pub const QUERY_DEV_CAP: Self = Self(0x003);
    /// QUERY_FW.
    pub const QUERY_FW: Self = Self(0x004);
    /// QUERY_ADAPTER.
    pub const QUERY_ADAPTER: Self = Self(0x006);
    /// INIT_HCA.
    pub const INIT_HCA: Self = Self(0x007);
    /// CLOSE_HCA.
    pub const CLOSE_HCA: Self = Self(0x008);
    /// INIT_PORT.
    pub const INIT_PORT: Self = Self(0x009);
    /// CLOSE_PORT.
    pub const CLOSE_PORT: Self = Self(0x00a);
    /// SET_PORT.
    pub const SET_PORT: Self = Self(0x00c);
    /// SW2HW_MPT.
    pub const SW2HW_MPT: Self = Self(0x00d);
    /// HW2SW_MPT.
    pub const HW2SW_MPT: Self = Self(0x00f);
    /// WRITE_MTT.
    pub const WRITE_MTT: Self = Self(0x011);
    /// MAP_EQ.
    pub const MAP_EQ: Self = Self(0x012);
    /// SW2HW_EQ.
    pub const SW2HW_EQ: Self = Self(0x013);
    /// HW2SW_EQ.
    pub const HW2SW_EQ: Self = Self(0x014);
    /// SW2HW_CQ.
    pub const SW2HW_CQ: Self = Self(0x016);
    /// HW2SW_CQ.
    pub const HW2SW_CQ: Self = Self(0x017);
    /// RST2INIT_QP.
    pub const RST2INIT_QP: Self = Self(0x019);
    /// INIT2RTR_QP.
    pub const INIT2RTR_QP: Self = Self(0x01a);
    /// RTR2RTS_QP.
    pub const RTR2RTS_QP: Self = Self(0x01b);
    /// RTS2RTS_QP.
    pub const RTS2RTS_QP: Self = Self(0x01c);
    /// 2RST_QP.
    pub const TO_RST_QP: Self = Self(0x021);
    /// CONF_SPECIAL_QP.
    pub const CONF_SPECIAL_QP: Self = Self(0x023);
    /// MAD_IFC.
    pub const MAD_IFC: Self = Self(0x024);
    /// READ_MCG.
    pub const READ_MCG: Self = Self(0x025);
    /// WRITE_MCG.
    pub const WRITE_MCG: Self = Self(0x026);
    /// MGID_HASH.
    pub const MGID_HASH: Self = Self(0x027);
    /// QUERY_PORT.
    pub const QUERY_PORT: Self = Self(0x043);
    /// RUN_FW.
    pub const RUN_FW: Self = Self(0xff6);
    /// UNMAP_ICM.
    pub const UNMAP_ICM: Self = Self(0xff9);
    /// MAP_ICM.
    pub const MAP_ICM: Self = Self(0xffa);
    /// UNMAP_ICM_AUX.
    pub const UNMAP_ICM_AUX: Self = Self(0xffb);
    /// MAP_ICM_AUX.
    pub const MAP_ICM_AUX: Self = Self(0xffc);
    /// SET_ICM_SIZE.
    pub const SET_ICM_SIZE: Self = Self(0xffd);
    /// UNMAP_FA.
    pub const UNMAP_FA: Self = Self(0xffe);
    /// MAP_FA.
    pub const MAP_FA: Self = Self(0xfff);
}

/// Firmware status from HCR dword 6 bits 31:24 (mlx4 names, reference §2.2). A newtype: the
/// firmware may return anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FwStatus(pub u8);

impl FwStatus {
    /// Success.
    pub const OK: Self = Self(0x00);
    /// Internal error.
    pub const INTERNAL_ERR: Self = Self(0x01);
    /// Bad opcode.
    pub const BAD_OP: Self = Self(0x02);
    /// Bad parameter.
    pub const BAD_PARAM: Self = Self(0x03);
    /// Bad system state (command out of sequence).
    pub const BAD_SYS_STATE: Self = Self(0x04);
    /// Bad resource.
    pub const BAD_RESOURCE: Self = Self(0x05);
    /// Resource busy.
    pub const RESOURCE_BUSY: Self = Self(0x06);
    /// Limits exceeded.
    pub const EXCEED_LIM: Self = Self(0x08);
    /// Bad resource state.
    pub const BAD_RES_STATE: Self = Self(0x09);
    /// Bad index.
    pub const BAD_INDEX: Self = Self(0x0a);
    /// Bad NVMEM.
    pub const BAD_NVMEM: Self = Self(0x0b);
    /// ICM error (access to unmapped ICM).
    pub const ICM_ERROR: Self = Self(0x0c);
    /// Bad QP state for the transition.
    pub const BAD_QP_STATE: Self = Self(0x10);
    /// Bad segment parameters.
    pub const BAD_SEG_PARAM: Self = Self(0x20);
    /// Region boundary.
    pub const REG_BOUND: Self = Self(0x21);
    /// LAM not present.
    pub const LAM_NOT_PRE: Self = Self(0x22);
    /// Bad packet (MAD_IFC).
    pub const BAD_PKT: Self = Self(0x30);
    /// Bad size.
    pub const BAD_SIZE: Self = Self(0x40);
    /// Multi-function request.
    pub const MULTI_FUNC_REQ: Self = Self(0x50);
}

/// How a command passes its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InKind {
    /// No input.
    None,
    /// Inline 64-bit input in HCR dwords 0–1.
    Imm(u64),
    /// The command filled the input mailbox.
    Mailbox,
}

/// How a command returns its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutKind {
    /// No output.
    None,
    /// Inline 64-bit output in HCR dwords 3–4.
    Imm,
    /// The output mailbox.
    Mailbox,
}

/// Raw output handed to [`Command::decode`].
#[derive(Clone, Copy, Debug)]
pub struct CmdOut<'a> {
    /// Inline output.
    pub imm: u64,
    /// Output mailbox bytes.
    pub mbox: &'a [u8],
}

/// Bytes of a mailbox the driver moves per command.
pub const MBOX_BYTES: usize = 512;

/// A firmware command.
pub trait Command {
    /// Opcode.
    const OPCODE: Opcode;
    /// Output kind.
    const OUT: OutKind;
    /// Typed output.
    type Output;
    /// Opcode modifier.
    fn op_mod(&self) -> u8 {
        0
    }
    /// Input modifier.
    fn in_mod(&self) -> u32 {
        0
    }
    /// Writes the input mailbox (if any) and says how input is passed.
    fn input(&self, _mbox: &mut [u8]) -> InKind {
        InKind::None
    }
    /// Decodes the output.
    fn decode(out: CmdOut<'_>) -> Self::Output;
}

macro_rules! simple_cmd {
    ($(#[$m:meta])* $name:ident, $op:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name;
        impl Command for $name {
            const OPCODE: Opcode = Opcode::$op;
            const OUT: OutKind = OutKind::None;
            type Output = ();
            fn decode(_: CmdOut<'_>) {}
        }
    };
}

macro_rules! in_mod_cmd {
    ($(#[$m:meta])* $name:ident, $op:ident, $op_mod:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name(pub u32);
        impl Command for $name {
            const OPCODE: Opcode = Opcode::$op;
            const OUT: OutKind = OutKind::None;
            type Output = ();
            fn op_mod(&self) -> u8 {
                $op_mod
            }
            fn in_mod(&self) -> u32 {
                self.0
            }
            fn decode(_: CmdOut<'_>) {}
        }
    };
}

macro_rules! prm_cmd {
    ($(#[$m:meta])* $name:ident, $op:ident, $n:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name {
            /// Input modifier (object index).
            pub index: u32,
            /// Input mailbox.
            pub prm: Prm<{ $n }>,
        }
        impl Command for $name {
            const OPCODE: Opcode = Opcode::$op;
            const OUT: OutKind = OutKind::None;
            type Output = ();
            fn in_mod(&self) -> u32 {
                self.index
            }
            fn input(&self, mbox: &mut [u8]) -> InKind {
                self.prm.write_be(mbox);
                InKind::Mailbox
            }
            fn decode(_: CmdOut<'_>) {}
        }
    };
}

simple_cmd!(
    /// RUN_FW: start the firmware in the mapped firmware area.
    RunFw, RUN_FW
);
simple_cmd!(
    /// CLOSE_HCA.
    CloseHca, CLOSE_HCA
);
simple_cmd!(
    /// UNMAP_FA.
    UnmapFa, UNMAP_FA
);
in_mod_cmd!(
    /// INIT_PORT (input modifier = port).
    InitPort, INIT_PORT, 0
);
in_mod_cmd!(
    /// CLOSE_PORT (input modifier = port).
    ClosePort, CLOSE_PORT, 0
);
in_mod_cmd!(
    /// HW2SW_EQ (input modifier = EQN; op_mod 1 = no output mailbox).
    Hw2SwEq, HW2SW_EQ, 1
);
in_mod_cmd!(
    /// HW2SW_MPT (input modifier = MPT index; op_mod 1 = no output mailbox, as Linux `mr.c`
    /// `mlx4_HW2SW_MPT` issues it with `!mailbox`). The driver never takes its MPT back; the
    /// command exists for callers that replace it.
    Hw2SwMpt, HW2SW_MPT, 1
);
in_mod_cmd!(
    /// 2RST_QP (input modifier = QPN; op_mod 3 = no output mailbox).
    ToRstQp, TO_RST_QP, 3
);
in_mod_cmd!(
    /// CONF_SPECIAL_QP (input modifier = special QPN base; op_mod 0 = software handles QP0/1).
    ConfSpecialQp, CONF_SPECIAL_QP, 0
);

prm_cmd!(
    /// INIT_HCA.
    InitHca, INIT_HCA, prm::init_hca::DWORDS
);
prm_cmd!(
    /// SW2HW_MPT (index = MPT index).
    Sw2HwMpt, SW2HW_MPT, prm::mpt::DWORDS
);
prm_cmd!(
    /// SW2HW_EQ (index = EQN).
    Sw2HwEq, SW2HW_EQ, prm::eqc::DWORDS
);
prm_cmd!(
    /// SW2HW_CQ (index = CQN).
    Sw2HwCq, SW2HW_CQ, prm::cqc::DWORDS
);
prm_cmd!(
    /// RST2INIT_QP (index = QPN).
    Rst2InitQp, RST2INIT_QP, prm::qpc::DWORDS
);
prm_cmd!(
    /// INIT2RTR_QP (index = QPN).
    Init2RtrQp, INIT2RTR_QP, prm::qpc::DWORDS
);
prm_cmd!(
    /// RTR2RTS_QP (index = QPN).
    Rtr2RtsQp, RTR2RTS_QP, prm::qpc::DWORDS
);
prm_cmd!(
    /// RTS2RTS_QP (index = QPN).
    Rts2RtsQp, RTS2RTS_QP, prm::qpc::DWORDS
);
prm_cmd!(
    /// SET_PORT for an IB port (index = port).
    SetPort, SET_PORT, prm::set_port::DWORDS
);
prm_cmd!(
    /// WRITE_MCG (index = MCG index).
    WriteMcg, WRITE_MCG, prm::mcg::DWORDS
);

/// HW2SW_CQ: takes a CQ back from the hardware. op_mod 0 with an output mailbox, into which
/// the firmware writes the CQ context (iPXE `hermon_cmd_hw2sw_cq`; Linux `cq.c`
/// `mlx4_HW2SW_CQ` uses op_mod 0 with a mailbox and 1 without one).
#[derive(Clone, Copy, Debug)]
pub struct Hw2SwCq(pub u32);
impl Command for Hw2SwCq {
    const OPCODE: Opcode = Opcode::HW2SW_CQ;
    const OUT: OutKind = OutKind::Mailbox;
    type Output = Prm<{ prm::cqc::DWORDS }>;
    fn in_mod(&self) -> u32 {
        self.0
    }
    fn decode(out: CmdOut<'_>) -> Self::Output {
        Prm::from_be(out.mbox)
    }
}

/// Firmware revision and firmware-area size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FwInfo {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Sub-minor.
    pub subminor: u16,
    /// 4 KiB pages for MAP_FA.
    pub fw_pages: u32,
    /// Command interface revision (Linux `fw.c` accepts 2 and 3; 3 has QUERY_PORT).
    pub cmd_interface_rev: u16,
}

/// QUERY_FW.
#[derive(Clone, Copy, Debug)]
pub struct QueryFw;
impl Command for QueryFw {
    const OPCODE: Opcode = Opcode::QUERY_FW;
    const OUT: OutKind = OutKind::Mailbox;
    type Output = FwInfo;
    fn decode(out: CmdOut<'_>) -> FwInfo {
        use prm::query_fw::*;
        let p = Prm::<{ DWORDS }>::from_be(out.mbox);
        FwInfo {
            major: p.get(FW_REV_MAJOR) as u16,
            minor: p.get(FW_REV_MINOR) as u16,
            subminor: p.get(FW_REV_SUBMINOR) as u16,
            fw_pages: p.get(FW_PAGES),
            cmd_interface_rev: p.get(CMD_INTERFACE_REV) as u16,
        }
    }
}

/// QUERY_DEV_CAP (the whole 256-byte output, raw; the driver validates it).
#[derive(Clone, Copy, Debug)]
pub struct QueryDevCap;
impl Command for QueryDevCap {
    const OPCODE: Opcode = Opcode::QUERY_DEV_CAP;
    const OUT: OutKind = OutKind::Mailbox;
    type Output = Prm<{ prm::dev_cap::DWORDS }>;
    fn decode(out: CmdOut<'_>) -> Self::Output {
        Prm::from_be(out.mbox)
    }
}

/// What QUERY_ADAPTER says about the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdapterInfo {
    /// INTA pin.
    pub inta_pin: u8,
    /// The PSID (board id), NUL-padded ASCII.
    pub psid: [u8; 16],
}

impl AdapterInfo {
    /// The PSID as text, up to its first NUL (empty if it is not printable ASCII).
    pub fn psid_str(&self) -> &str {
        let n = self.psid.iter().position(|&b| b == 0).unwrap_or(16);
        let s = &self.psid[..n];
        if s.iter().all(|b| b.is_ascii_graphic()) {
            core::str::from_utf8(s).unwrap_or("")
        } else {
            ""
        }
    }
}

/// QUERY_ADAPTER. Each PSID dword holds its four characters byte-reversed (Linux `fw.c`
/// `get_board_id`: "the firmware byte swaps each 4-byte word").
#[derive(Clone, Copy, Debug)]
pub struct QueryAdapter;
impl Command for QueryAdapter {
    const OPCODE: Opcode = Opcode::QUERY_ADAPTER;
    const OUT: OutKind = OutKind::Mailbox;
    type Output = AdapterInfo;
    fn decode(out: CmdOut<'_>) -> AdapterInfo {
        use prm::query_adapter::*;
        let p = Prm::<{ DWORDS }>::from_be(out.mbox);
        let mut psid = [0u8; 16];
        for (chunk, f) in psid.chunks_exact_mut(4).zip(PSID) {
            chunk.copy_from_slice(&p.get(f).to_le_bytes());
        }
        AdapterInfo {
            inta_pin: p.get(INTAPIN) as u8,
            psid,
        }
    }
}

/// QUERY_PORT (raw; index = port).
#[derive(Clone, Copy, Debug)]
pub struct QueryPort(pub u32);
impl Command for QueryPort {
    const OPCODE: Opcode = Opcode::QUERY_PORT;
    const OUT: OutKind = OutKind::Mailbox;
    type Output = Prm<{ prm::query_port::DWORDS }>;
    fn in_mod(&self) -> u32 {
        self.0
    }
    fn decode(out: CmdOut<'_>) -> Self::Output {
        Prm::from_be(out.mbox)
    }
}

/// Which of the three mapping commands a [`MapArea`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// MAP_FA.
    Fa,
    /// MAP_ICM_AUX.
    IcmAux,
    /// MAP_ICM.
    Icm,
}

/// One virtual/physical mapping entry (input modifier 1 = one entry).
#[derive(Clone, Copy, Debug)]
pub struct MapEntry {
    /// ICM virtual address (ignored for MAP_FA and MAP_ICM_AUX).
    pub va: u64,
    /// Physical address.
    pub pa: u64,
    /// log2 of the block size in 4 KiB pages.
    pub log2_pages: u32,
}

impl MapEntry {
    fn fill(&self, mbox: &mut [u8]) -> InKind {
        let mut p = Prm::<4>::default();
        // Both parts take any 4 KiB-aligned 64-bit address, so these writes cannot be refused;
        // the low 12 bits are cleared whatever the caller passed.
        let _ = p.set_addr(prm::vpm::VA, self.va & !0xfff);
        let _ = p.set_addr(prm::vpm::PA, self.pa & !0xfff);
        p.set(prm::vpm::LOG2SIZE, self.log2_pages);
        p.write_be(mbox);
        InKind::Mailbox
    }
}

/// The commands that map one virtual-to-physical entry (input modifier 1, a mailbox with
/// one `MapEntry`, no output): each its own type, as every command is.
macro_rules! map_one_entry {
    ($(#[$doc:meta] $name:ident => $op:ident;)+) => {$(
        #[$doc]
        #[derive(Clone, Copy, Debug)]
        pub struct $name(pub MapEntry);
        impl Command for $name {
            const OPCODE: Opcode = Opcode::$op;
            const OUT: OutKind = OutKind::None;
            type Output = ();
            fn in_mod(&self) -> u32 {
                1
            }
            fn input(&self, mbox: &mut [u8]) -> InKind {
                self.0.fill(mbox)
            }
            fn decode(_: CmdOut<'_>) {}
        }
    )+};
}

map_one_entry! {
    /// MAP_FA with one entry.
    MapFa => MAP_FA;
    /// MAP_ICM_AUX with one entry.
    MapIcmAux => MAP_ICM_AUX;
    /// MAP_ICM with one entry.
    MapIcm => MAP_ICM;
}

/// SET_ICM_SIZE: inline ICM size in bytes; returns the ICM AUX size in pages.
#[derive(Clone, Copy, Debug)]
pub struct SetIcmSize(pub u64);
impl Command for SetIcmSize {
    const OPCODE: Opcode = Opcode::SET_ICM_SIZE;
    const OUT: OutKind = OutKind::Imm;
    type Output = u64;
    fn input(&self, _: &mut [u8]) -> InKind {
        InKind::Imm(self.0)
    }
    fn decode(out: CmdOut<'_>) -> u64 {
        out.imm
    }
}

/// WRITE_MTT for one page.
#[derive(Clone, Copy, Debug)]
pub struct WriteMtt {
    /// MTT index × MTT entry size.
    pub mtt_base: u64,
    /// Page physical address.
    pub pa: u64,
}
impl Command for WriteMtt {
    const OPCODE: Opcode = Opcode::WRITE_MTT;
    const OUT: OutKind = OutKind::None;
    type Output = ();
    fn in_mod(&self) -> u32 {
        1
    }
    fn input(&self, mbox: &mut [u8]) -> InKind {
        use prm::write_mtt::*;
        let mut p = Prm::<{ DWORDS }>::default();
        // A whole 64-bit base and an 8-byte-aligned 64-bit page address: neither write can be
        // refused.
        let _ = p.set_addr(MTT_BASE_ADDR, self.mtt_base);
        let _ = p.set_addr(PTAG, self.pa & !0x7);
        p.set(P, 1);
        p.write_be(mbox);
        InKind::Mailbox
    }
    fn decode(_: CmdOut<'_>) {}
}

/// MAP_EQ: route all events to `eqn` (or unmap).
#[derive(Clone, Copy, Debug)]
pub struct MapEq {
    /// EQN.
    pub eqn: u32,
    /// Unmap instead of map.
    pub unmap: bool,
    /// Event type mask.
    pub mask: u64,
}
impl Command for MapEq {
    const OPCODE: Opcode = Opcode::MAP_EQ;
    const OUT: OutKind = OutKind::None;
    type Output = ();
    fn in_mod(&self) -> u32 {
        self.eqn | if self.unmap { 1 << 31 } else { 0 }
    }
    fn input(&self, _: &mut [u8]) -> InKind {
        InKind::Imm(self.mask)
    }
    fn decode(_: CmdOut<'_>) {}
}

/// MAD_IFC: hand a MAD to the firmware's agents (op_mod 3 skips M_Key/B_Key checks).
#[derive(Clone, Copy, Debug)]
pub struct MadIfc {
    /// Port.
    pub port: u32,
    /// Request.
    pub mad: Mad,
}
impl Command for MadIfc {
    const OPCODE: Opcode = Opcode::MAD_IFC;
    const OUT: OutKind = OutKind::Mailbox;
    type Output = [u8; 256];
    fn op_mod(&self) -> u8 {
        0x03
    }
    fn in_mod(&self) -> u32 {
        self.port
    }
    fn input(&self, mbox: &mut [u8]) -> InKind {
        let n = mbox.len().min(256);
        mbox[..n].copy_from_slice(&self.mad.as_bytes()[..n]);
        InKind::Mailbox
    }
    fn decode(out: CmdOut<'_>) -> [u8; 256] {
        let mut b = [0u8; 256];
        let n = out.mbox.len().min(256);
        b[..n].copy_from_slice(&out.mbox[..n]);
        b
    }
}

/// MGID_HASH: the MCG hash index of a GID.
#[derive(Clone, Copy, Debug)]
pub struct MgidHash(pub Gid);
impl Command for MgidHash {
    const OPCODE: Opcode = Opcode::MGID_HASH;
    const OUT: OutKind = OutKind::Imm;
    type Output = u32;
    fn input(&self, mbox: &mut [u8]) -> InKind {
        mbox[..16].copy_from_slice(&self.0 .0);
        InKind::Mailbox
    }
    fn decode(out: CmdOut<'_>) -> u32 {
        (out.imm & 0xffff) as u32
    }
}

/// READ_MCG (index = MCG index).
#[derive(Clone, Copy, Debug)]
pub struct ReadMcg(pub u32);
impl Command for ReadMcg {
    const OPCODE: Opcode = Opcode::READ_MCG;
    const OUT: OutKind = OutKind::Mailbox;
    type Output = Prm<{ prm::mcg::DWORDS }>;
    fn in_mod(&self) -> u32 {
        self.0
    }
    fn decode(out: CmdOut<'_>) -> Self::Output {
        Prm::from_be(out.mbox)
    }
}
