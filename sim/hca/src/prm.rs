//! The device model's own transcription of the ConnectX (mlx4 / hermon) interface: byte offsets,
//! access widths, shifts and masks as Linux's `mlx4_core` reads and writes them.
//!
//! This module is deliberately written in a different form from the driver's
//! (`hca::hermon`, which keeps iPXE's dword/lowest-bit/width form from `MT25408_PRM.h`), and
//! from different sources, so that a transcription slip cannot be shared by both sides:
//!
//! * A [`Loc`] is "a big-endian read of `access` bytes at byte `off`, then `>> shift`,
//!   `& mask`" — exactly what Linux's `MLX4_GET(dest, outbox, OFFSET)` does with a `u8`,
//!   `u16`, `u32` or `u64` destination (`drivers/net/ethernet/mellanox/mlx4/fw.c`), followed by
//!   the shift/mask the same function applies, or a field of a Linux `struct` of `__be*`
//!   members at its `offsetof`.
//! * Each item names its Linux source: a `#define ..._OFFSET` of `fw.c`, a member of
//!   `include/linux/mlx4/qp.h` `struct mlx4_qp_context`, `mlx4.h` `struct mlx4_cq_context` /
//!   `struct mlx4_eq_context` / `struct mlx4_mpt_entry` / `struct mlx4_mgm`,
//!   `include/linux/mlx4/device.h` `struct mlx4_eqe` / `struct mlx4_av`,
//!   `include/linux/mlx4/cq.h` `struct mlx4_cqe` / `struct mlx4_err_cqe`, `port.c`, `cmd.c`.
//! * Where Linux has no definition (it never sets the field, or names a wider container),
//!   the position comes from iPXE `src/drivers/infiniband/MT25408_PRM.h` / `hermon.h`, and the
//!   item says "iPXE only" or which part (usually the width) iPXE supplies.
//!
//! Nothing here is imported from the driver. `hca/tests/prm_conformance.rs` converts every
//! [`Loc`] to dword/lowest-bit/width pieces and compares it with a third, hand-written table.

/// How many bytes a [`Loc`] reads, big-endian (`MLX4_GET`'s `sizeof(dest)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A `u8`.
    U8,
    /// A `__be16`.
    Be16,
    /// A `__be32`.
    Be32,
    /// A `__be64`.
    Be64,
}

impl Access {
    /// Bytes read.
    pub const fn bytes(self) -> usize {
        match self {
            Access::U8 => 1,
            Access::Be16 => 2,
            Access::Be32 => 4,
            Access::Be64 => 8,
        }
    }
}

/// A field: big-endian read of `access` at byte `off`, then `>> shift`, then `& mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    /// Byte offset from the start of the structure (or mailbox).
    pub off: usize,
    /// Read width.
    pub access: Access,
    /// Right shift after the read.
    pub shift: u32,
    /// Mask after the shift (contiguous, from bit 0).
    pub mask: u64,
}

impl Loc {
    const fn new(off: usize, access: Access) -> Self {
        let mask = match access {
            Access::U8 => 0xff,
            Access::Be16 => 0xffff,
            Access::Be32 => 0xffff_ffff,
            Access::Be64 => u64::MAX,
        };
        Self {
            off,
            access,
            shift: 0,
            mask,
        }
    }
    /// A `u8` at `off`.
    pub const fn u8(off: usize) -> Self {
        Self::new(off, Access::U8)
    }
    /// A `__be16` at `off`.
    pub const fn be16(off: usize) -> Self {
        Self::new(off, Access::Be16)
    }
    /// A `__be32` at `off`.
    pub const fn be32(off: usize) -> Self {
        Self::new(off, Access::Be32)
    }
    /// A `__be64` at `off`.
    pub const fn be64(off: usize) -> Self {
        Self::new(off, Access::Be64)
    }
    /// The same read, shifted right by `s` (the mask shrinks accordingly).
    pub const fn shr(self, s: u32) -> Self {
        Self {
            shift: s,
            mask: self.mask >> s,
            ..self
        }
    }
    /// The same read and shift, masked with `m`.
    pub const fn and(self, m: u64) -> Self {
        Self { mask: m, ..self }
    }
    /// A single bit `b` of the read.
    pub const fn bit(self, b: u32) -> Self {
        self.shr(b).and(1)
    }

    fn raw(self, buf: &[u8]) -> Option<u64> {
        let bytes = buf.get(self.off..self.off + self.access.bytes())?;
        Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Reads the field (0 when it lies outside `buf`).
    pub fn get(self, buf: &[u8]) -> u64 {
        self.raw(buf).map_or(0, |r| (r >> self.shift) & self.mask)
    }

    /// Reads the field left in place: `(read & (mask << shift))` — for addresses whose low
    /// bits belong to other fields.
    pub fn get_in_place(self, buf: &[u8]) -> u64 {
        self.get(buf) << self.shift
    }

    /// Writes the field, leaving the other bits of the read alone (ignored outside `buf`).
    pub fn put(self, buf: &mut [u8], v: u64) {
        let Some(old) = self.raw(buf) else {
            return;
        };
        let m = self.mask << self.shift;
        let new = (old & !m) | ((v << self.shift) & m);
        let n = self.access.bytes();
        if let Some(out) = buf.get_mut(self.off..self.off + n) {
            for (i, b) in out.iter_mut().enumerate() {
                *b = (new >> (8 * (n - 1 - i))) as u8;
            }
        }
    }

    /// Writes an address whose low bits are not part of the field (the inverse of
    /// [`Loc::get_in_place`]).
    pub fn put_in_place(self, buf: &mut [u8], v: u64) {
        self.put(buf, v >> self.shift);
    }
}

/// Reads a 40-bit MTT address held as Linux's `u8 mtt_base_addr_h` + `__be32 mtt_base_addr_l`.
pub fn mtt_addr(buf: &[u8], h: Loc, l: Loc) -> u64 {
    (h.get(buf) << 32) | l.get_in_place(buf)
}

/// The HCR in BAR0 (Linux `mlx4.h` `MLX4_HCR_BASE`, `MLX4_HCR_SIZE`; `cmd.c` `HCR_*_OFFSET`,
/// `HCR_OPMOD_SHIFT`, `HCR_T_BIT`, `HCR_E_BIT`, `HCR_GO_BIT`; the status is the top byte of
/// the status dword, `readl(hcr + HCR_STATUS_OFFSET) >> 24`).
pub mod hcr {
    use super::Loc;
    /// BAR0 offset of the HCR.
    pub const BASE: usize = 0x8_0680;
    /// HCR bytes.
    pub const SIZE: usize = 0x1c;
    /// `HCR_IN_PARAM_OFFSET`.
    pub const IN_PARAM: Loc = Loc::be64(0x00);
    /// `HCR_IN_MODIFIER_OFFSET`.
    pub const IN_MODIFIER: Loc = Loc::be32(0x08);
    /// `HCR_OUT_PARAM_OFFSET`.
    pub const OUT_PARAM: Loc = Loc::be64(0x0c);
    /// `HCR_STATUS_OFFSET`: the dword holding opcode, modifier, T, E, go and status.
    pub const CTRL_OFFSET: usize = 0x18;
    /// Opcode (low 12 bits of the status dword, `__mlx4_cmd`'s `op`).
    pub const OPCODE: Loc = Loc::be32(CTRL_OFFSET).and(0xfff);
    /// `HCR_OPMOD_SHIFT`.
    pub const OPCODE_MODIFIER: Loc = Loc::be32(CTRL_OFFSET).shr(12).and(0xf);
    /// `HCR_T_BIT`.
    pub const T: Loc = Loc::be32(CTRL_OFFSET).bit(21);
    /// `HCR_E_BIT`.
    pub const E: Loc = Loc::be32(CTRL_OFFSET).bit(22);
    /// `HCR_GO_BIT`.
    pub const GO: Loc = Loc::be32(CTRL_OFFSET).bit(23);
    /// Status (`>> 24`).
    pub const STATUS: Loc = Loc::be32(CTRL_OFFSET).shr(24);
}

/// BAR0 and BAR2 constants.
pub mod regs {
    /// BAR0 length (iPXE hermon.h `HERMON_PCI_CONFIG_BAR_SIZE`; Linux maps the HCR at 0x80680
    /// and the reset register at 0xf0010 inside it).
    pub const CONFIG_BAR_SIZE: usize = 0x10_0000;
    /// Reset register (Linux `reset.c` `MLX4_RESET_BASE` 0xf0000 + `MLX4_RESET_OFFSET` 0x10).
    pub const RESET: usize = 0xf_0010;
    /// Linux writes `MLX4_RESET_VALUE` = `swab32(1)` with `writel`, i.e. the bytes
    /// `00 00 00 01`; iPXE writes `HERMON_RESET_MAGIC` 0x01000001 with `writel`, i.e.
    /// `01 00 00 01`. Both set the last byte's low bit, which is what the model keys on.
    pub const RESET_BIT_BYTE3: u8 = 0x01;
    /// UAR page bytes at `uar_page_sz` 0 (4 KiB; Linux `PAGE_SHIFT - 12` on 4 KiB hosts).
    pub const UAR_PAGE_BASE: usize = 4096;
    /// Send doorbell offset in a UAR page (`include/linux/mlx4/doorbell.h` `MLX4_SEND_DOORBELL`).
    pub const SEND_DOORBELL: usize = 0x14;
    /// EQ doorbells: four per UAR page at 0x800 + 8 × (eqn % 4) (`eq.c` `mlx4_get_eq_uar`).
    pub const EQ_DOORBELL: usize = 0x800;
}

/// Command opcodes (`include/linux/mlx4/cmd.h` `MLX4_CMD_*`).
pub mod op {
    #![allow(missing_docs)]
    pub const QUERY_DEV_CAP: u16 = 0x003;
    pub const QUERY_FW: u16 = 0x004;
    pub const QUERY_ADAPTER: u16 = 0x006;
    pub const INIT_HCA: u16 = 0x007;
    pub const CLOSE_HCA: u16 = 0x008;
    pub const INIT_PORT: u16 = 0x009;
    pub const CLOSE_PORT: u16 = 0x00a;
    pub const SET_PORT: u16 = 0x00c;
    pub const SW2HW_MPT: u16 = 0x00d;
    pub const QUERY_MPT: u16 = 0x00e;
    pub const HW2SW_MPT: u16 = 0x00f;
    pub const WRITE_MTT: u16 = 0x011;
    pub const MAP_EQ: u16 = 0x012;
    pub const SW2HW_EQ: u16 = 0x013;
    pub const HW2SW_EQ: u16 = 0x014;
    pub const SW2HW_CQ: u16 = 0x016;
    pub const HW2SW_CQ: u16 = 0x017;
    pub const RST2INIT_QP: u16 = 0x019;
    pub const INIT2RTR_QP: u16 = 0x01a;
    pub const RTR2RTS_QP: u16 = 0x01b;
    pub const RTS2RTS_QP: u16 = 0x01c;
    pub const TWO_RST_QP: u16 = 0x021;
    pub const CONF_SPECIAL_QP: u16 = 0x023;
    pub const MAD_IFC: u16 = 0x024;
    pub const READ_MCG: u16 = 0x025;
    pub const WRITE_MCG: u16 = 0x026;
    pub const MGID_HASH: u16 = 0x027;
    pub const QUERY_PORT: u16 = 0x043;
    pub const RUN_FW: u16 = 0xff6;
    pub const UNMAP_ICM: u16 = 0xff9;
    pub const MAP_ICM: u16 = 0xffa;
    pub const UNMAP_ICM_AUX: u16 = 0xffb;
    pub const MAP_ICM_AUX: u16 = 0xffc;
    pub const SET_ICM_SIZE: u16 = 0xffd;
    pub const UNMAP_FA: u16 = 0xffe;
    pub const MAP_FA: u16 = 0xfff;
}

/// Command statuses (`cmd.c` `CMD_STAT_*`).
pub mod stat {
    #![allow(missing_docs)]
    pub const BAD_OP: u8 = 0x02;
    pub const BAD_PARAM: u8 = 0x03;
    pub const BAD_SYS_STATE: u8 = 0x04;
    pub const RESOURCE_BUSY: u8 = 0x06;
    pub const BAD_RES_STATE: u8 = 0x09;
    pub const BAD_INDEX: u8 = 0x0a;
    pub const ICM_ERROR: u8 = 0x0c;
    pub const BAD_QP_STATE: u8 = 0x10;
    pub const BAD_PKT: u8 = 0x30;
}

/// QUERY_FW output (`fw.c` `mlx4_QUERY_FW`, `QUERY_FW_OUT_SIZE` 0x100). The version is one
/// `u64` at `QUERY_FW_VER_OFFSET`: major in bits 47:32 and, as the code's comment says,
/// "FW subminor version is at more significant bits than minor version".
pub mod query_fw {
    use super::Loc;
    /// Output bytes.
    pub const SIZE: usize = 0x100;
    /// `QUERY_FW_VER_OFFSET`, bits 47:32.
    pub const FW_VER_MAJOR: Loc = Loc::be64(0x00).shr(32).and(0xffff);
    /// `QUERY_FW_VER_OFFSET`, bits 15:0.
    pub const FW_VER_MINOR: Loc = Loc::be64(0x00).and(0xffff);
    /// `QUERY_FW_VER_OFFSET`, bits 31:16.
    pub const FW_VER_SUBMINOR: Loc = Loc::be64(0x00).shr(16).and(0xffff);
    /// `QUERY_FW_SIZE_OFFSET`, read into `u16 fw_pages`.
    pub const FW_PAGES: Loc = Loc::be16(0x00);
    /// `QUERY_FW_CMD_IF_REV_OFFSET` (`u16`).
    pub const CMD_IF_REV: Loc = Loc::be16(0x0a);
}

/// QUERY_ADAPTER output (`fw.c` `mlx4_QUERY_ADAPTER`, `QUERY_ADAPTER_OUT_SIZE` 0x100).
pub mod query_adapter {
    use super::Loc;
    /// Output bytes.
    pub const SIZE: usize = 0x100;
    /// `QUERY_ADAPTER_INTA_PIN_OFFSET` (`u8`).
    pub const INTA_PIN: Loc = Loc::u8(0x10);
    /// `QUERY_ADAPTER_VSD_OFFSET`.
    pub const VSD: usize = 0x20;
    /// The board id (PSID), 16 bytes at `VSD_OFFSET_MLX_BOARD_ID` 0xd0 into the VSD;
    /// `get_board_id` byte-swaps each dword ("the firmware byte swaps each 4-byte word").
    pub const BOARD_ID: [Loc; 4] = [
        Loc::be32(VSD + 0xd0),
        Loc::be32(VSD + 0xd4),
        Loc::be32(VSD + 0xd8),
        Loc::be32(VSD + 0xdc),
    ];
}

/// A MAP_FA / MAP_ICM_AUX / MAP_ICM entry (`fw.c` `mlx4_map_cmd`: `pages[2n] =
/// cpu_to_be64(virt)`, `pages[2n+1] = cpu_to_be64(addr | (lg - MLX4_ICM_PAGE_SHIFT))`).
pub mod vpm {
    use super::Loc;
    /// Entry bytes.
    pub const SIZE: usize = 16;
    /// ICM virtual address (4 KiB aligned).
    pub const VIRT: Loc = Loc::be64(0).shr(12);
    /// Physical address (4 KiB aligned).
    pub const ADDR: Loc = Loc::be64(8).shr(12);
    /// log2 of the block in 4 KiB pages; the width (6 bits) is iPXE's `log2size`.
    pub const LOG_SIZE: Loc = Loc::be64(8).and(0x3f);
}

/// QUERY_DEV_CAP output (`fw.c` `mlx4_QUERY_DEV_CAP`, `QUERY_DEV_CAP_OUT_SIZE` 0x100; offsets
/// `QUERY_DEV_CAP_*_OFFSET`, masks as that function applies them).
pub mod dev_cap {
    use super::Loc;
    /// Output bytes.
    pub const SIZE: usize = 0x100;
    /// `MAX_QP_OFFSET` 0x13, `& 0x1f`.
    pub const MAX_QP: Loc = Loc::u8(0x13).and(0x1f);
    /// `RSVD_QP_OFFSET` 0x12, `& 0xf`.
    pub const RSVD_QP: Loc = Loc::u8(0x12).and(0xf);
    /// `MAX_QP_SZ_OFFSET` 0x11.
    pub const MAX_QP_SZ: Loc = Loc::u8(0x11);
    /// `MAX_SRQ_OFFSET` 0x15, `& 0x1f`.
    pub const MAX_SRQ: Loc = Loc::u8(0x15).and(0x1f);
    /// `RSVD_SRQ_OFFSET` 0x14, `>> 4`.
    pub const RSVD_SRQ: Loc = Loc::u8(0x14).shr(4);
    /// `MAX_CQ_OFFSET` 0x1b, `& 0x1f`.
    pub const MAX_CQ: Loc = Loc::u8(0x1b).and(0x1f);
    /// `RSVD_CQ_OFFSET` 0x1a, `& 0xf`.
    pub const RSVD_CQ: Loc = Loc::u8(0x1a).and(0xf);
    /// `MAX_CQ_SZ_OFFSET` 0x19.
    pub const MAX_CQ_SZ: Loc = Loc::u8(0x19);
    /// EQs reserved, as a count: iPXE only (`num_rsvd_eqs`, byte 0x18; Linux never reads it).
    pub const NUM_RSVD_EQS: Loc = Loc::u8(0x18);
    /// `MAX_EQ_OFFSET` 0x1f, `& 0xf`.
    pub const MAX_EQ: Loc = Loc::u8(0x1f).and(0xf);
    /// `RSVD_EQ_OFFSET` 0x1e, `& 0xf`.
    pub const RSVD_EQ: Loc = Loc::u8(0x1e).and(0xf);
    /// `MAX_MPT_OFFSET` 0x1d, `& 0x3f`.
    pub const MAX_MPT: Loc = Loc::u8(0x1d).and(0x3f);
    /// `MAX_MTT_SEG_OFFSET` 0x23 (defined, never read by Linux); the 6-bit width is iPXE's
    /// `log_max_mtts`.
    pub const MAX_MTT_SEG: Loc = Loc::u8(0x23).and(0x3f);
    /// `RSVD_MRW_OFFSET` 0x22, `& 0xf`.
    pub const RSVD_MRW: Loc = Loc::u8(0x22).and(0xf);
    /// `RSVD_MTT_OFFSET` 0x20, `>> 4`.
    pub const RSVD_MTT: Loc = Loc::u8(0x20).shr(4);
    /// `VL_PORT_OFFSET` 0x37, `& 0xf`: number of ports.
    pub const NUM_PORTS: Loc = Loc::u8(0x37).and(0xf);
    /// `FLAGS_OFFSET` 0x44 (`u32`), bit 2 = `MLX4_DEV_CAP_FLAG_UD` ("UD transport").
    pub const FLAG_UD: Loc = Loc::be32(0x44).bit(2);
    /// `PAGE_SZ_OFFSET` 0x4b: log2 of the minimum page size.
    pub const PAGE_SZ: Loc = Loc::u8(0x4b);
    /// `UAR_SZ_OFFSET` 0x49, `& 0x3f`: UAR area = 1 << (x + 20).
    pub const UAR_SZ: Loc = Loc::u8(0x49).and(0x3f);
    /// `RSVD_UAR_OFFSET` 0x48, `>> 4`.
    pub const RSVD_UAR: Loc = Loc::u8(0x48).shr(4);
    /// `MAX_MCG_OFFSET` 0x63.
    pub const MAX_MCG: Loc = Loc::u8(0x63);
    /// `RDMARC_ENTRY_SZ_OFFSET` 0x80 (`u16`).
    pub const RDMARC_ENTRY_SZ: Loc = Loc::be16(0x80);
    /// `QPC_ENTRY_SZ_OFFSET` 0x82 (`u16`).
    pub const QPC_ENTRY_SZ: Loc = Loc::be16(0x82);
    /// `ALTC_ENTRY_SZ_OFFSET` 0x86.
    pub const ALTC_ENTRY_SZ: Loc = Loc::be16(0x86);
    /// `AUX_ENTRY_SZ_OFFSET` 0x84.
    pub const AUX_ENTRY_SZ: Loc = Loc::be16(0x84);
    /// `CQC_ENTRY_SZ_OFFSET` 0x8a.
    pub const CQC_ENTRY_SZ: Loc = Loc::be16(0x8a);
    /// `EQC_ENTRY_SZ_OFFSET` 0x88.
    pub const EQC_ENTRY_SZ: Loc = Loc::be16(0x88);
    /// `C_MPT_ENTRY_SZ_OFFSET` 0x8e.
    pub const C_MPT_ENTRY_SZ: Loc = Loc::be16(0x8e);
    /// `SRQ_ENTRY_SZ_OFFSET` 0x8c.
    pub const SRQ_ENTRY_SZ: Loc = Loc::be16(0x8c);
    /// `D_MPT_ENTRY_SZ_OFFSET` 0x92.
    pub const D_MPT_ENTRY_SZ: Loc = Loc::be16(0x92);
    /// `MTT_ENTRY_SZ_OFFSET` 0x90.
    pub const MTT_ENTRY_SZ: Loc = Loc::be16(0x90);
}

/// INIT_HCA input (`fw.c` `mlx4_INIT_HCA`, `INIT_HCA_IN_SIZE` 0x200; `INIT_HCA_*_OFFSET`).
/// The QPC/SRQC/CQC/EQC bases are `u64` puts whose low byte is then overwritten by the `u8`
/// log size, so the base field is the `u64` above bit 5 (iPXE's `_l` `[31:5]`).
pub mod init_hca {
    use super::Loc;
    /// Input bytes.
    pub const SIZE: usize = 0x200;
    /// `INIT_HCA_VERSION_OFFSET` (`u8`), `INIT_HCA_VERSION` 2.
    pub const VERSION: Loc = Loc::u8(0x000);
    /// `INIT_HCA_FLAGS_OFFSET` 0x014, bit 0: "Check port for UD address vector".
    pub const FLAG_UD_PORT_CHECK: Loc = Loc::be32(0x014).bit(0);
    /// `INIT_HCA_QPC_BASE_OFFSET` 0x30.
    pub const QPC_BASE: Loc = Loc::be64(0x30).shr(5);
    /// `INIT_HCA_LOG_QP_OFFSET` 0x37; the 5-bit width is iPXE's `log_num_of_qp`.
    pub const LOG_QP: Loc = Loc::u8(0x37).and(0x1f);
    /// `INIT_HCA_SRQC_BASE_OFFSET` 0x48.
    pub const SRQC_BASE: Loc = Loc::be64(0x48).shr(5);
    /// `INIT_HCA_LOG_SRQ_OFFSET` 0x4f.
    pub const LOG_SRQ: Loc = Loc::u8(0x4f).and(0x1f);
    /// `INIT_HCA_CQC_BASE_OFFSET` 0x50.
    pub const CQC_BASE: Loc = Loc::be64(0x50).shr(5);
    /// `INIT_HCA_LOG_CQ_OFFSET` 0x57.
    pub const LOG_CQ: Loc = Loc::u8(0x57).and(0x1f);
    /// `INIT_HCA_ALTC_BASE_OFFSET` 0x60.
    pub const ALTC_BASE: Loc = Loc::be64(0x60);
    /// `INIT_HCA_AUXC_BASE_OFFSET` 0x70.
    pub const AUXC_BASE: Loc = Loc::be64(0x70);
    /// `INIT_HCA_EQC_BASE_OFFSET` 0x80.
    pub const EQC_BASE: Loc = Loc::be64(0x80).shr(5);
    /// `INIT_HCA_LOG_EQ_OFFSET` 0x87.
    pub const LOG_EQ: Loc = Loc::u8(0x87).and(0x1f);
    /// `INIT_HCA_RDMARC_BASE_OFFSET` 0x90.
    pub const RDMARC_BASE: Loc = Loc::be64(0x90).shr(5);
    /// `INIT_HCA_LOG_RD_OFFSET` 0x97: log2 RDMA read contexts per QP; 3-bit width from iPXE
    /// `log_num_rd`.
    pub const LOG_RD: Loc = Loc::u8(0x97).and(0x7);
    /// `INIT_HCA_MC_BASE_OFFSET` 0xc0.
    pub const MC_BASE: Loc = Loc::be64(0xc0);
    /// `INIT_HCA_LOG_MC_ENTRY_SZ_OFFSET` 0xd2 (a `u16` put); 5-bit width from iPXE.
    pub const LOG_MC_ENTRY_SZ: Loc = Loc::be16(0xd2).and(0x1f);
    /// `INIT_HCA_LOG_MC_HASH_SZ_OFFSET` 0xd6 (a `u16` put); 5-bit width from iPXE.
    pub const LOG_MC_HASH_SZ: Loc = Loc::be16(0xd6).and(0x1f);
    /// `INIT_HCA_LOG_MC_TABLE_SZ_OFFSET` 0xdb; 5-bit width from iPXE.
    pub const LOG_MC_TABLE_SZ: Loc = Loc::u8(0xdb).and(0x1f);
    /// `INIT_HCA_DMPT_BASE_OFFSET` 0xf0.
    pub const DMPT_BASE: Loc = Loc::be64(0xf0);
    /// `INIT_HCA_LOG_MPT_SZ_OFFSET` 0xfb; 6-bit width from iPXE `log_dmpt_sz`.
    pub const LOG_MPT_SZ: Loc = Loc::u8(0xfb).and(0x3f);
    /// `INIT_HCA_MTT_BASE_OFFSET` 0x100.
    pub const MTT_BASE: Loc = Loc::be64(0x100);
    /// `INIT_HCA_CMPT_BASE_OFFSET` 0x108.
    pub const CMPT_BASE: Loc = Loc::be64(0x108);
    /// `INIT_HCA_LOG_UAR_SZ_OFFSET` 0x12a: log2 of the UAR pages; 4-bit width from iPXE
    /// `log_max_uars`.
    pub const LOG_UAR_SZ: Loc = Loc::u8(0x12a).and(0xf);
    /// `INIT_HCA_UAR_PAGE_SZ_OFFSET` 0x12b: UAR page = 4 KiB << x (Linux `PAGE_SHIFT - 12`).
    pub const UAR_PAGE_SZ: Loc = Loc::u8(0x12b);
}

/// The cMPT layout (`mlx4.h` `MLX4_CMPT_TYPE_QP/SRQ/CQ/EQ`, `MLX4_CMPT_SHIFT` 24; `main.c`
/// `mlx4_init_cmpt_table`: type *t* at `cmpt_base + ((t * cmpt_entry_sz) << MLX4_CMPT_SHIFT)`).
pub mod cmpt {
    /// QP cMPTs.
    pub const TYPE_QP: u64 = 0;
    /// SRQ cMPTs.
    pub const TYPE_SRQ: u64 = 1;
    /// CQ cMPTs.
    pub const TYPE_CQ: u64 = 2;
    /// EQ cMPTs.
    pub const TYPE_EQ: u64 = 3;
    /// `MLX4_CMPT_SHIFT`.
    pub const SHIFT: u32 = 24;
}

/// dMPT entry (`mlx4.h` `struct mlx4_mpt_entry`, `MLX4_MPT_FLAG_*`; `device.h` `MLX4_PERM_*`).
pub mod mpt {
    use super::Loc;
    /// Entry bytes.
    pub const SIZE: usize = 64;
    /// `flags` bit 8, `MLX4_MPT_FLAG_REGION`.
    pub const FLAG_REGION: Loc = Loc::be32(0x00).bit(8);
    /// `flags` bit 9, `MLX4_MPT_FLAG_PHYSICAL`.
    pub const FLAG_PHYSICAL: Loc = Loc::be32(0x00).bit(9);
    /// `flags` bit 10, `MLX4_PERM_LOCAL_READ`.
    pub const PERM_LOCAL_READ: Loc = Loc::be32(0x00).bit(10);
    /// `flags` bit 11, `MLX4_PERM_LOCAL_WRITE`.
    pub const PERM_LOCAL_WRITE: Loc = Loc::be32(0x00).bit(11);
    /// `flags` bit 12, `MLX4_PERM_REMOTE_READ`.
    pub const PERM_REMOTE_READ: Loc = Loc::be32(0x00).bit(12);
    /// `flags` bit 13, `MLX4_PERM_REMOTE_WRITE`.
    pub const PERM_REMOTE_WRITE: Loc = Loc::be32(0x00).bit(13);
    /// `flags` bit 14, `MLX4_PERM_ATOMIC`.
    pub const PERM_ATOMIC: Loc = Loc::be32(0x00).bit(14);
    /// `key` (the hardware-index form, `key_to_hw_index`).
    pub const KEY: Loc = Loc::be32(0x08);
    /// `pd_flags`, PD bits: `MLX4_MPT_PD_MASK` | `MLX4_MPT_PD_VF_MASK` = 0xffffff.
    pub const PD: Loc = Loc::be32(0x0c).and(0xff_ffff);
    /// `start`.
    pub const START: Loc = Loc::be64(0x10);
    /// `length`.
    pub const LENGTH: Loc = Loc::be64(0x18);
    /// Length bit 64: iPXE only (`len64`, dword 10 bit 22, inside Linux's `reserved1`).
    pub const LEN64: Loc = Loc::be32(0x28).bit(22);
}

/// EQ context (`mlx4.h` `struct mlx4_eq_context`; flags `eq.c` `MLX4_EQ_*`).
pub mod eqc {
    use super::Loc;
    /// Context bytes.
    pub const SIZE: usize = 64;
    /// `flags` `[11:8]`: `MLX4_EQ_STATE_ARMED` 9, `_FIRED` 10, `_ALWAYS_ARMED` 11.
    pub const STATE: Loc = Loc::be32(0x00).shr(8).and(0xf);
    /// `flags` bit 17, `MLX4_EQ_FLAG_OI`.
    pub const FLAG_OI: Loc = Loc::be32(0x00).bit(17);
    /// `page_offset` (`__be16` at 0x0a); the bits inside it, `[11:5]` = offset >> 5, are iPXE's.
    pub const PAGE_OFFSET: Loc = Loc::be16(0x0a).shr(5).and(0x7f);
    /// `log_eq_size`; 5-bit width from iPXE.
    pub const LOG_EQ_SIZE: Loc = Loc::u8(0x0c).and(0x1f);
    /// `log_page_size`; 6-bit width from iPXE `log2_page_size`.
    pub const LOG_PAGE_SIZE: Loc = Loc::u8(0x18).and(0x3f);
    /// `mtt_base_addr_h`.
    pub const MTT_BASE_ADDR_H: Loc = Loc::u8(0x1b);
    /// `mtt_base_addr_l`, 8-byte aligned (`resource_tracker.c` `eq_get_mtt_addr`: `& 0xfffffff8`).
    pub const MTT_BASE_ADDR_L: Loc = Loc::be32(0x1c).shr(3);
}

/// CQ context (`mlx4.h` `struct mlx4_cq_context`; `cq.c` `mlx4_cq_alloc`, `MLX4_CQ_*`).
pub mod cqc {
    use super::Loc;
    /// Context bytes.
    pub const SIZE: usize = 64;
    /// `flags` `[11:8]` (`MLX4_CQ_STATE_ARMED` 9 << 8).
    pub const STATE: Loc = Loc::be32(0x00).shr(8).and(0xf);
    /// `page_offset` (`__be16` at 0x0a); bits `[11:5]` from iPXE.
    pub const PAGE_OFFSET: Loc = Loc::be16(0x0a).shr(5).and(0x7f);
    /// `logsize_usrpage` low 24 bits: the UAR index.
    pub const USR_PAGE: Loc = Loc::be32(0x0c).and(0xff_ffff);
    /// `logsize_usrpage` = `ilog2(nent) << 24 | uar`; 5-bit width from iPXE.
    pub const LOG_SIZE: Loc = Loc::be32(0x0c).shr(24).and(0x1f);
    /// `comp_eqn` (`u8` at 0x17); iPXE's `c_eqn` has a ninth bit, read here from the byte
    /// before it.
    pub const COMP_EQN: Loc = Loc::be16(0x16).and(0x1ff);
    /// `log_page_size`; 6-bit width from iPXE.
    pub const LOG_PAGE_SIZE: Loc = Loc::u8(0x18).and(0x3f);
    /// `mtt_base_addr_h`.
    pub const MTT_BASE_ADDR_H: Loc = Loc::u8(0x1b);
    /// `mtt_base_addr_l` (`cq_get_mtt_addr`: `& 0xfffffff8`).
    pub const MTT_BASE_ADDR_L: Loc = Loc::be32(0x1c).shr(3);
    /// `db_rec_addr` (`__be64`), 8-byte aligned as iPXE's `db_record_addr_l` `[31:3]`.
    pub const DB_REC_ADDR: Loc = Loc::be64(0x38).shr(3);
}

/// QP modify mailbox (`qp.c` `mlx4_qp_modify`: the optional-parameter mask as a `__be32` at
/// the start, `struct mlx4_qp_context` copied to `buf + 8`; members from
/// `include/linux/mlx4/qp.h`).
pub mod qpc {
    use super::Loc;
    /// Mailbox header before the context.
    pub const CTX: usize = 8;
    /// Mailbox bytes (header + `sizeof(struct mlx4_qp_context)` 0xf8).
    pub const SIZE: usize = 0x100;
    /// The optional-parameter mask.
    pub const OPTPAR: Loc = Loc::be32(0);
    /// `MLX4_QP_OPTPAR_Q_KEY`.
    pub const OPTPAR_Q_KEY: u64 = 1 << 5;
    /// `flags` bits 12:11: path-migration state (`MLX4_QP_PM_MIGRATED` 3 << 11).
    pub const PM_STATE: Loc = Loc::be32(CTX).shr(11).and(0x3);
    /// `flags` bits 19:16: service type (`MLX4_QP_ST_UD` 3, `MLX4_QP_ST_MLX` 7).
    pub const ST: Loc = Loc::be32(CTX).shr(16).and(0xf);
    /// `pd`.
    pub const PD: Loc = Loc::be32(CTX + 0x04).and(0xff_ffff);
    /// `mtu_msgmax` low 5 bits.
    pub const MSG_MAX: Loc = Loc::u8(CTX + 0x08).and(0x1f);
    /// `mtu_msgmax` high 3 bits.
    pub const MTU: Loc = Loc::u8(CTX + 0x08).shr(5).and(0x7);
    /// `rq_size_stride` low 3 bits: log2(stride) - 4.
    pub const RQ_STRIDE: Loc = Loc::u8(CTX + 0x09).and(0x7);
    /// `rq_size_stride` = `ilog2(wqe_cnt) << 3 | ...`.
    pub const RQ_SIZE: Loc = Loc::u8(CTX + 0x09).shr(3).and(0xf);
    /// `sq_size_stride` low 3 bits.
    pub const SQ_STRIDE: Loc = Loc::u8(CTX + 0x0a).and(0x7);
    /// `sq_size_stride` bits 6:3.
    pub const SQ_SIZE: Loc = Loc::u8(CTX + 0x0a).shr(3).and(0xf);
    /// `usr_page`.
    pub const USR_PAGE: Loc = Loc::be32(CTX + 0x0c).and(0xff_ffff);
    /// `pri_path.sched_queue` (`struct mlx4_qp_path` at 0x18, member at +0x20).
    pub const SCHED_QUEUE: Loc = Loc::u8(CTX + 0x18 + 0x20);
    /// `cqn_send`.
    pub const CQN_SEND: Loc = Loc::be32(CTX + 0x7c).and(0xff_ffff);
    /// Page offset of the WQE buffer: iPXE only (`page_offset`, dword 38 `[11:6]`, inside
    /// Linux's `params2`).
    pub const PAGE_OFFSET: Loc = Loc::be32(CTX + 0x90).shr(6).and(0x3f);
    /// `cqn_recv`.
    pub const CQN_RECV: Loc = Loc::be32(CTX + 0x9c).and(0xff_ffff);
    /// `db_rec_addr` (`__be64`), 4-byte aligned as iPXE's `db_record_addr_l` `[31:2]`.
    pub const DB_REC_ADDR: Loc = Loc::be64(CTX + 0xa0).shr(2);
    /// `qkey`.
    pub const QKEY: Loc = Loc::be32(CTX + 0xa8);
    /// `log_page_size`; 6-bit width from iPXE.
    pub const LOG_PAGE_SIZE: Loc = Loc::u8(CTX + 0xc8).and(0x3f);
    /// `mtt_base_addr_h`.
    pub const MTT_BASE_ADDR_H: Loc = Loc::u8(CTX + 0xcb);
    /// `mtt_base_addr_l`.
    pub const MTT_BASE_ADDR_L: Loc = Loc::be32(CTX + 0xcc).shr(3);
    /// `MLX4_QP_ST_UD`.
    pub const ST_UD: u64 = 0x3;
    /// `MLX4_QP_ST_MLX`.
    pub const ST_MLX: u64 = 0x7;
}

/// QUERY_PORT output (`fw.c` `mlx4_QUERY_PORT`, `QUERY_PORT_*_OFFSET`; 64 bytes as iPXE's
/// `hermonprm_query_port_cap_st`).
pub mod query_port {
    use super::Loc;
    /// Output bytes.
    pub const SIZE: usize = 64;
    /// `QUERY_PORT_SUPPORTED_TYPE_OFFSET` 0x00, bit 0 of `& 3` (`MLX4_PORT_TYPE_IB` 1).
    pub const SUPPORTS_IB: Loc = Loc::u8(0x00).bit(0);
    /// The same byte, bit 1 (`MLX4_PORT_TYPE_ETH` 2).
    pub const SUPPORTS_ETH: Loc = Loc::u8(0x00).bit(1);
    /// The same byte, `(field & 0x80) >> 7`: link state.
    pub const LINK_STATE: Loc = Loc::u8(0x00).bit(7);
    /// `QUERY_PORT_MTU_OFFSET` 0x01, `& 0xf`: largest IB MTU.
    pub const IB_MTU: Loc = Loc::u8(0x01).and(0xf);
    /// `QUERY_PORT_MAC_OFFSET` 0x10 (`u64`, the MAC in its low 48 bits).
    pub const MAC: Loc = Loc::be64(0x10).and(0xffff_ffff_ffff);
}

/// SET_PORT for IB, op_mod `MLX4_SET_PORT_IB_OPCODE` 0 (`port.c` `mlx4_SET_PORT`, its
/// "bit locations for set port command with zero op modifier").
pub mod set_port {
    use super::Loc;
    /// Input bytes the model reads.
    pub const SIZE: usize = 0x80;
    /// `MLX4_SET_PORT_VL_CAP` 4, "bits 7:4".
    pub const VL_CAP: Loc = Loc::be32(0).shr(4).and(0xf);
    /// `MLX4_SET_PORT_MTU_CAP` 12, "bits 15:12".
    pub const MTU_CAP: Loc = Loc::be32(0).shr(12).and(0xf);
    /// Change the GID table size: iPXE only (`mg`, bit 19).
    pub const CHANGE_GID_TBL_SZ: Loc = Loc::be32(0).bit(19);
    /// `MLX4_CHANGE_PORT_PKEY_TBL_SZ` 20.
    pub const CHANGE_PKEY_TBL_SZ: Loc = Loc::be32(0).bit(20);
    /// `MLX4_CHANGE_PORT_VL_CAP` 21.
    pub const CHANGE_VL_CAP: Loc = Loc::be32(0).bit(21);
    /// `MLX4_CHANGE_PORT_MTU_CAP` 22.
    pub const CHANGE_MTU_CAP: Loc = Loc::be32(0).bit(22);
    /// `((__be16 *) mailbox->buf)[20] = pkey_tbl_sz`: bytes 40–41.
    pub const PKEY_TBL_SZ: Loc = Loc::be16(40);
    /// GID table size: iPXE only (`max_gid`, the `__be16` after the P_Key size).
    pub const GID_TBL_SZ: Loc = Loc::be16(42);
}

/// A multicast group entry (`mlx4.h` `struct mlx4_mgm`, `MGM_QPN_MASK`; `mcg.c`). The entry is
/// `1 << log_mc_entry_sz` bytes as INIT_HCA configured it.
pub mod mgm {
    use super::Loc;
    /// `next_gid_index` (`index << 6`).
    pub const NEXT_GID_INDEX: Loc = Loc::be32(0x00).shr(6);
    /// `members_count & 0xffffff`.
    pub const MEMBERS_COUNT: Loc = Loc::be32(0x04).and(0xff_ffff);
    /// `gid[16]`, as four dwords.
    pub const GID: [Loc; 4] = [
        Loc::be32(0x10),
        Loc::be32(0x14),
        Loc::be32(0x18),
        Loc::be32(0x1c),
    ];
    /// `qp[i] & MGM_QPN_MASK`.
    pub const fn qp(i: usize) -> Loc {
        Loc::be32(0x20 + 4 * i).and(0xff_ffff)
    }
}

/// Event queue entry (`include/linux/mlx4/device.h` `struct mlx4_eqe`; event types
/// `MLX4_EVENT_TYPE_*`, port sub-types `MLX4_PORT_CHANGE_SUBTYPE_*`).
pub mod eqe {
    use super::Loc;
    /// Entry bytes.
    pub const SIZE: usize = 32;
    /// `type`.
    pub const TYPE: Loc = Loc::u8(1);
    /// `subtype`.
    pub const SUBTYPE: Loc = Loc::u8(3);
    /// `event.cq_err.cqn & 0xffffff` (also `event.comp.cqn`).
    pub const CQ_ERR_CQN: Loc = Loc::be32(4).and(0xff_ffff);
    /// `event.cq_err.syndrome`.
    pub const CQ_ERR_SYNDROME: Loc = Loc::u8(15);
    /// `be32_to_cpu(event.port_change.port) >> 28`; 2-bit width from iPXE `p`.
    pub const PORT_CHANGE_PORT: Loc = Loc::be32(12).shr(28).and(0x3);
    /// `event.port_mgmt_change.port`.
    pub const PORT_MGMT_CHANGE_PORT: Loc = Loc::u8(7);
    /// `event.port_mgmt_change.params.port_info.changed_attr`.
    pub const PORT_MGMT_CHANGE_ATTR: Loc = Loc::be32(12);
    /// `changed_attr & MLX4_EQ_PORT_INFO_CLIENT_REREG_MASK`.
    pub const PORT_MGMT_CHANGE_CLIENT_REREG: Loc = Loc::be32(12).shr(3).and(1);
    /// `owner & 0x80`.
    pub const OWNER: Loc = Loc::u8(31).bit(7);
    /// `MLX4_EVENT_TYPE_CQ_ERROR`.
    pub const TYPE_CQ_ERROR: u64 = 0x04;
    /// `MLX4_EVENT_TYPE_PORT_CHANGE`.
    pub const TYPE_PORT_CHANGE: u64 = 0x09;
    /// `MLX4_EVENT_TYPE_PORT_MNG_CHG_EVENT`.
    pub const TYPE_PORT_MNG_CHG: u64 = 0x1d;
    /// `MLX4_DEV_PMC_SUBTYPE_PORT_INFO`: a port management change of PortInfo.
    pub const SUBTYPE_PMC_PORT_INFO: u64 = 0x15;
    /// `MLX4_EQ_PORT_INFO_MSTR_SM_LID_CHANGE_MASK`.
    pub const PMC_SM_LID_CHANGE: u64 = 1 << 0;
    /// `MLX4_EQ_PORT_INFO_LID_CHANGE_MASK`.
    pub const PMC_LID_CHANGE: u64 = 1 << 2;
    /// `MLX4_EQ_PORT_INFO_CLIENT_REREG_MASK`.
    pub const PMC_CLIENT_REREG: u64 = 1 << 3;
    /// `MLX4_PORT_CHANGE_SUBTYPE_DOWN`.
    pub const SUBTYPE_PORT_DOWN: u64 = 1;
    /// `MLX4_PORT_CHANGE_SUBTYPE_ACTIVE`.
    pub const SUBTYPE_PORT_ACTIVE: u64 = 4;
}

/// Completion queue entry (`include/linux/mlx4/cq.h` `struct mlx4_cqe`, `struct mlx4_err_cqe`,
/// `MLX4_CQE_*_MASK`, `MLX4_CQE_SYNDROME_*`).
pub mod cqe {
    use super::Loc;
    /// Entry bytes.
    pub const SIZE: usize = 32;
    /// `vlan_my_qpn & MLX4_CQE_QPN_MASK`.
    pub const MY_QPN: Loc = Loc::be32(0).and(0xff_ffff);
    /// `g_mlpath_rqpn & 0xffffff`: source QPN.
    pub const RQPN: Loc = Loc::be32(8).and(0xff_ffff);
    /// `g_mlpath_rqpn` bit 31: GRH present.
    pub const G: Loc = Loc::be32(8).bit(31);
    /// `sl_vid >> 12`.
    pub const SL: Loc = Loc::be16(12).shr(12);
    /// `rlid`.
    pub const RLID: Loc = Loc::be16(14);
    /// `byte_cnt`.
    pub const BYTE_CNT: Loc = Loc::be32(20);
    /// `wqe_index`.
    pub const WQE_INDEX: Loc = Loc::be16(24);
    /// `mlx4_err_cqe.syndrome`.
    pub const SYNDROME: Loc = Loc::u8(27);
    /// `owner_sr_opcode & MLX4_CQE_OPCODE_MASK`.
    pub const OPCODE: Loc = Loc::u8(31).and(0x1f);
    /// `owner_sr_opcode & MLX4_CQE_IS_SEND_MASK`.
    pub const IS_SEND: Loc = Loc::u8(31).bit(6);
    /// `owner_sr_opcode & MLX4_CQE_OWNER_MASK`.
    pub const OWNER: Loc = Loc::u8(31).bit(7);
    /// Send completion of `MLX4_OPCODE_SEND`.
    pub const OPCODE_SEND: u64 = 0x0a;
    /// Receive completion of a SEND (`MLX4_RECV_OPCODE_SEND`).
    pub const OPCODE_RECV_SEND: u64 = 0x01;
    /// `MLX4_CQE_OPCODE_ERROR`.
    pub const OPCODE_ERROR: u64 = 0x1e;
    /// `MLX4_CQE_SYNDROME_LOCAL_LENGTH_ERR`.
    pub const SYND_LOCAL_LENGTH: u8 = 0x01;
    /// `MLX4_CQE_SYNDROME_LOCAL_QP_OP_ERR`.
    pub const SYND_LOCAL_QP_OP: u8 = 0x02;
    /// `MLX4_CQE_SYNDROME_LOCAL_PROT_ERR`.
    pub const SYND_LOCAL_PROT: u8 = 0x04;
    /// `MLX4_CQE_SYNDROME_LOCAL_ACCESS_ERR`.
    pub const SYND_LOCAL_ACCESS: u8 = 0x11;
}

/// Send and receive WQEs (`include/linux/mlx4/qp.h` `struct mlx4_wqe_ctrl_seg`,
/// `struct mlx4_wqe_mlx_seg`, `struct mlx4_wqe_datagram_seg`, `struct mlx4_wqe_data_seg`;
/// `device.h` `struct mlx4_av`). Offsets are from the start of the WQE.
pub mod wqe {
    use super::Loc;
    /// `owner_opcode` opcode (`MLX4_OPCODE_SEND` 0x0a); 5-bit width from iPXE.
    pub const OPCODE: Loc = Loc::be32(0).and(0x1f);
    /// `owner_opcode` bit 31 (`MLX4_WQE_CTRL_OWN`; the MLX segment's `owner` byte bit 7).
    pub const OWNER: Loc = Loc::be32(0).bit(31);
    /// `fence_size` / MLX `size` low 6 bits: WQE size in 16-byte units.
    pub const SIZE16: Loc = Loc::u8(7).and(0x3f);
    /// `srcrb_flags` / MLX `flags` `[3:2]`: `MLX4_WQE_CTRL_CQ_UPDATE` (3 << 2).
    pub const CQ_UPDATE: Loc = Loc::be32(8).shr(2).and(0x3);
    /// MLX `flags` `[4]`: ICRC (0: the HCA computes it).
    pub const MLX_ICRC: Loc = Loc::be32(8).bit(4);
    /// MLX `flags` `[17]`: `MLX4_WQE_MLX_VL15`.
    pub const MLX_VL15: Loc = Loc::be32(8).bit(17);
    /// MLX `rlid`.
    pub const MLX_RLID: Loc = Loc::be16(12);
    /// Where the datagram segment starts (after the 16-byte control segment).
    pub const DATAGRAM: usize = 16;
    /// `av.port_pd` low 24 bits.
    pub const AV_PD: Loc = Loc::be32(DATAGRAM).and(0xff_ffff);
    /// `av.port_pd >> 24`; 2-bit width from iPXE `port_number`.
    pub const AV_PORT: Loc = Loc::be32(DATAGRAM).shr(24).and(0x3);
    /// `av.g_slid` bit 7.
    pub const AV_G: Loc = Loc::u8(DATAGRAM + 5).bit(7);
    /// `av.dlid`.
    pub const AV_DLID: Loc = Loc::be16(DATAGRAM + 6);
    /// `av.gid_index`; 7-bit width from iPXE `mgid_index`.
    pub const AV_GID_INDEX: Loc = Loc::u8(DATAGRAM + 9).and(0x7f);
    /// `av.hop_limit`.
    pub const AV_HOP_LIMIT: Loc = Loc::u8(DATAGRAM + 11);
    /// `av.sl_tclass_flowlabel >> 28`.
    pub const AV_SL: Loc = Loc::be32(DATAGRAM + 12).shr(28);
    /// `av.sl_tclass_flowlabel` bits 27:20.
    pub const AV_TCLASS: Loc = Loc::be32(DATAGRAM + 12).shr(20).and(0xff);
    /// `av.sl_tclass_flowlabel` bits 19:0.
    pub const AV_FLOWLABEL: Loc = Loc::be32(DATAGRAM + 12).and(0xf_ffff);
    /// `av.dgid[16]`, as four dwords.
    pub const AV_DGID: [Loc; 4] = [
        Loc::be32(DATAGRAM + 16),
        Loc::be32(DATAGRAM + 20),
        Loc::be32(DATAGRAM + 24),
        Loc::be32(DATAGRAM + 28),
    ];
    /// `dqpn`.
    pub const DQPN: Loc = Loc::be32(DATAGRAM + 32).and(0xff_ffff);
    /// `qkey`.
    pub const QKEY: Loc = Loc::be32(DATAGRAM + 36);
    /// The data segment of a UD WQE (control 16 + datagram 48 bytes).
    pub const UD_DATA: usize = 64;
    /// The data segment of an MLX WQE (after the 16-byte MLX segment).
    pub const MLX_DATA: usize = 16;
    /// `struct mlx4_wqe_data_seg` bytes.
    pub const DATA_SEG: usize = 16;
    /// `byte_count` (bit 31 is `MLX4_INLINE_SEG`); 31-bit width from iPXE.
    pub const fn data_byte_count(seg: usize) -> Loc {
        Loc::be32(seg).and(0x7fff_ffff)
    }
    /// `lkey`.
    pub const fn data_lkey(seg: usize) -> Loc {
        Loc::be32(seg + 4)
    }
    /// `addr`.
    pub const fn data_addr(seg: usize) -> Loc {
        Loc::be64(seg + 8)
    }
    /// `MLX4_INVALID_LKEY` (`include/linux/mlx4/qp.h`): an unused scatter entry.
    pub const INVALID_LKEY: u64 = 0x100;
    /// `MLX4_OPCODE_SEND`.
    pub const OPCODE_SEND: u64 = 0x0a;
}

/// WRITE_MTT input (`mr.c` `mlx4_WRITE_MTT` / the mailbox it builds: `inbox[0]` the MTT
/// offset, `inbox[1]` 0, `inbox[i + 2] = cpu_to_be64(page | MLX4_MTT_FLAG_PRESENT)`).
pub mod write_mtt {
    use super::Loc;
    /// The first qword: taken as a byte offset into the MTT table, as iPXE `hermon_alloc_mtt`
    /// sends it (Linux sends an index, but only on its paravirtual path).
    pub const MTT_BASE: Loc = Loc::be64(0);
    /// Entry `i`'s page address (8-byte aligned; `ptag_l` `[31:3]` in iPXE).
    pub const fn page(i: usize) -> Loc {
        Loc::be64(16 + 8 * i).shr(3)
    }
    /// Entry `i`'s `MLX4_MTT_FLAG_PRESENT` (bit 0).
    pub const fn present(i: usize) -> Loc {
        Loc::be64(16 + 8 * i).bit(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_big_endian_then_shift_and_mask() {
        let mut b = [0u8; 16];
        b[0x0c..0x10].copy_from_slice(&[0x07, 0x00, 0x00, 0x80]);
        assert_eq!(cqc::LOG_SIZE.get(&b), 7);
        assert_eq!(cqc::USR_PAGE.get(&b), 0x80);
        cqc::LOG_SIZE.put(&mut b, 4);
        assert_eq!(&b[0x0c..0x10], &[0x04, 0x00, 0x00, 0x80]);
        // Outside the buffer: reads 0, writes nothing.
        assert_eq!(cqc::DB_REC_ADDR.get(&b), 0);
        cqc::DB_REC_ADDR.put(&mut b, 1);
    }

    #[test]
    fn in_place_addresses_keep_the_log_byte() {
        let mut b = [0u8; init_hca::SIZE];
        init_hca::QPC_BASE.put_in_place(&mut b, 0x2_0000_0100);
        init_hca::LOG_QP.put(&mut b, 9);
        assert_eq!(init_hca::QPC_BASE.get_in_place(&b), 0x2_0000_0100);
        assert_eq!(init_hca::LOG_QP.get(&b), 9);
        assert_eq!(&b[0x30..0x38], &[0, 0, 0, 2, 0, 0, 1, 9]);
    }
}
