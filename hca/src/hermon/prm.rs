//! Hermon PRM structures as big-endian dwords with LSB-first bit fields: one [`Field`] per named
//! field, one [`Addr`] per 64-bit address split into `_h`/`_l` parts, one [`Prm`] buffer type.
//!
//! Every position here is transcribed from iPXE's pseudo-structures, which list the fields of
//! each dword least significant bit first (`src/drivers/infiniband/mlx_bitops.h`:
//! `MLX_BIT_OFFSET` is the `offsetof` of a one-byte-per-bit `pseudo_bit_t` array, so a field's
//! dword is `offset / 32` and its lowest bit `offset % 32`; `MLX_FILL_*` stores the assembled
//! dword with `cpu_to_be32`). The structures come from `src/drivers/infiniband/MT25408_PRM.h`
//! (generated from the ConnectX PRM) and, where that file has none, from
//! `src/drivers/infiniband/hermon.h`; each module names its structure. iPXE `hermon.c` fills the
//! same dwords with `MLX_FILL_n(ptr, dword, field, ...)`, which fails to compile when a field
//! is not in the named dword, so those call sites confirm the dword indices.
//!
//! The device model (`hca-sim`) does not use this module: it has its own transcription from
//! Linux `drivers/net/ethernet/mellanox/mlx4/` byte offsets, and a conformance test holds both
//! against a third table (`hca/tests/prm_conformance.rs`).

/// A bit field inside a dword array: dword index, lowest bit, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Dword index.
    pub dw: usize,
    /// Lowest bit.
    pub lsb: u32,
    /// Width in bits (1..=32).
    pub width: u32,
}

const fn f(dw: usize, lsb: u32, width: u32) -> Field {
    Field { dw, lsb, width }
}

impl Field {
    const fn mask(self) -> u32 {
        if self.width >= 32 {
            u32::MAX
        } else {
            (1u32 << self.width) - 1
        }
    }
}

/// A 64-bit address held as iPXE's `_h`/`_l` pair: `h` holds address bits `[32 + h.width - 1 :
/// 32]`, `l` holds bits `[31 : l.lsb]` in place (its low `l.lsb` bits belong to other fields or
/// are reserved, so the address must be aligned to `1 << l.lsb`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr {
    /// High part.
    pub h: Field,
    /// Low part.
    pub l: Field,
}

const fn a(h: Field, l: Field) -> Addr {
    Addr { h, l }
}

/// A full 64-bit value in two whole dwords starting at `dw`.
const fn a64(dw: usize) -> Addr {
    a(f(dw, 0, 32), f(dw + 1, 0, 32))
}

impl Addr {
    /// True if `v` can be written exactly: no bits above the high part, aligned for the low.
    pub fn fits(self, v: u64) -> bool {
        let top = 32 + self.h.width;
        let above = top < 64 && v >> top != 0;
        let misaligned = v & ((1u64 << self.l.lsb) - 1) != 0;
        !above && !misaligned
    }
}

/// A PRM structure of `N` dwords, held in host order; converted to big-endian bytes at the
/// DMA/MMIO boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prm<const N: usize>(pub [u32; N]);

impl<const N: usize> Default for Prm<N> {
    fn default() -> Self {
        Self([0; N])
    }
}

impl<const N: usize> Prm<N> {
    /// Size in bytes.
    pub const BYTES: usize = N * 4;

    /// Reads a field (0 when the field lies outside the structure).
    pub fn get(&self, f: Field) -> u32 {
        match self.0.get(f.dw) {
            Some(d) => (d >> f.lsb) & f.mask(),
            None => 0,
        }
    }

    /// Writes a field (ignored when outside the structure; values are truncated to the width).
    pub fn set(&mut self, f: Field, v: u32) {
        if let Some(d) = self.0.get_mut(f.dw) {
            let m = f.mask() << f.lsb;
            *d = (*d & !m) | ((v << f.lsb) & m);
        }
    }

    /// Reads an address.
    pub fn get_addr(&self, a: Addr) -> u64 {
        (u64::from(self.get(a.h)) << 32) | u64::from(self.get(a.l) << a.l.lsb)
    }

    /// Writes an address; false (and nothing written) if it does not fit (see [`Addr::fits`]).
    #[must_use]
    pub fn set_addr(&mut self, a: Addr, v: u64) -> bool {
        if !a.fits(v) {
            return false;
        }
        self.set(a.h, (v >> 32) as u32);
        self.set(a.l, (v as u32) >> a.l.lsb);
        true
    }

    /// Big-endian bytes into `out` (up to its length).
    pub fn write_be(&self, out: &mut [u8]) {
        for (chunk, d) in out.chunks_exact_mut(4).zip(self.0.iter()) {
            chunk.copy_from_slice(&d.to_be_bytes());
        }
    }

    /// From big-endian bytes (missing bytes read as zero).
    pub fn from_be(bytes: &[u8]) -> Self {
        let mut p = Self::default();
        for (d, chunk) in p.0.iter_mut().zip(bytes.chunks_exact(4)) {
            *d = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        p
    }
}

/// The HCA command register in BAR0 (MT25408_PRM.h `struct hermonprm_hca_command_register_st`).
pub mod hcr {
    use super::{a64, f, Addr, Field};
    /// Input parameter (or input mailbox address), dwords 0–1.
    pub const IN_PARAM: Addr = a64(0);
    /// Input modifier.
    pub const INPUT_MODIFIER: Field = f(2, 0, 32);
    /// Output parameter (or output mailbox address), dwords 3–4.
    pub const OUT_PARAM: Addr = a64(3);
    /// Opcode.
    pub const OPCODE: Field = f(6, 0, 12);
    /// Opcode modifier.
    pub const OPCODE_MODIFIER: Field = f(6, 12, 4);
    /// Toggle.
    pub const T: Field = f(6, 21, 1);
    /// Event on completion.
    pub const E: Field = f(6, 22, 1);
    /// Go.
    pub const GO: Field = f(6, 23, 1);
    /// Completion status.
    pub const STATUS: Field = f(6, 24, 8);
    /// Dwords.
    pub const DWORDS: usize = 7;
}

/// QUERY_FW output (MT25408_PRM.h `struct hermonprm_query_fw_st`, 0x100 bytes).
pub mod query_fw {
    use super::{f, Field};
    /// Firmware major revision.
    pub const FW_REV_MAJOR: Field = f(0, 0, 16);
    /// 4 KiB pages the firmware area needs.
    pub const FW_PAGES: Field = f(0, 16, 16);
    /// Minor revision.
    pub const FW_REV_MINOR: Field = f(1, 0, 16);
    /// Sub-minor revision (patch level).
    pub const FW_REV_SUBMINOR: Field = f(1, 16, 16);
    /// Command interface revision.
    pub const CMD_INTERFACE_REV: Field = f(2, 0, 16);
    /// Dwords.
    pub const DWORDS: usize = 64;
}

/// QUERY_ADAPTER output (MT25408_PRM.h `struct hermonprm_query_adapter_st`, 0x100 bytes). The
/// vendor-specific data `vsd` starts at dword 8; its last 16 bytes (dwords 60–63) hold the PSID
/// (the header's comment on `vsd`: "vsd .1664; vsd(continued/psid .128)").
pub mod query_adapter {
    use super::{f, Field};
    /// INTA pin.
    pub const INTAPIN: Field = f(4, 24, 8);
    /// The PSID, four dwords.
    pub const PSID: [Field; 4] = [f(60, 0, 32), f(61, 0, 32), f(62, 0, 32), f(63, 0, 32)];
    /// Dwords.
    pub const DWORDS: usize = 64;
}

/// The 16-byte virtual/physical mapping entry of MAP_FA, MAP_ICM_AUX and MAP_ICM
/// (MT25408_PRM.h `struct hermonprm_virtual_physical_mapping_st`).
pub mod vpm {
    use super::{a, f, Addr, Field};
    /// Entry size in bytes.
    pub const SIZE: usize = 16;
    /// ICM virtual address (`va_h`, `va_l` `[31:12]`).
    pub const VA: Addr = a(f(0, 0, 32), f(1, 12, 20));
    /// Physical address (`pa_h`, `pa_l` `[31:12]`).
    pub const PA: Addr = a(f(2, 0, 32), f(3, 12, 20));
    /// log2 of the block size in 4 KiB pages.
    pub const LOG2SIZE: Field = f(3, 0, 6);
}

/// QUERY_DEV_CAP output (MT25408_PRM.h `struct hermonprm_query_dev_cap_st`, 0x100 bytes; the
/// first four dwords are reserved).
pub mod dev_cap {
    use super::{f, Field};
    /// log2 of the number of QPs.
    pub const LOG_MAX_QP: Field = f(4, 0, 5);
    /// log2 of the QPs reserved for firmware.
    pub const LOG2_RSVD_QPS: Field = f(4, 8, 4);
    /// log2 of the WQEs a send or receive queue may hold.
    pub const LOG_MAX_QP_SZ: Field = f(4, 16, 8);
    /// log2 of the number of SRQs.
    pub const LOG_MAX_SRQS: Field = f(5, 16, 5);
    /// log2 of the SRQs reserved for firmware.
    pub const LOG2_RSVD_SRQS: Field = f(5, 28, 4);
    /// log2 of the number of CQs.
    pub const LOG_MAX_CQ: Field = f(6, 0, 5);
    /// log2 of the CQs reserved for firmware.
    pub const LOG2_RSVD_CQS: Field = f(6, 8, 4);
    /// log2 of the CQEs a CQ may hold.
    pub const LOG_MAX_CQ_SZ: Field = f(6, 16, 8);
    /// EQs reserved for firmware, as a count (0 on firmware that only reports the log2).
    pub const NUM_RSVD_EQS: Field = f(6, 24, 8);
    /// log2 of the number of EQs.
    pub const LOG_MAX_EQ: Field = f(7, 0, 4);
    /// log2 of the EQs reserved for firmware.
    pub const LOG2_RSVD_EQS: Field = f(7, 8, 4);
    /// log2 of the number of data MPT entries.
    pub const LOG_MAX_D_MPTS: Field = f(7, 16, 6);
    /// log2 of the number of MTT entries.
    pub const LOG_MAX_MTTS: Field = f(8, 0, 6);
    /// log2 of the MPTs reserved for firmware.
    pub const LOG2_RSVD_MRWS: Field = f(8, 8, 4);
    /// log2 of the MTT entries reserved for firmware.
    pub const LOG2_RSVD_MTTS: Field = f(8, 28, 4);
    /// Number of ports.
    pub const NUM_PORTS: Field = f(13, 0, 4);
    /// UD transport supported.
    pub const UD: Field = f(17, 2, 1);
    /// log2 of the smallest host page the device supports.
    pub const LOG_PG_SZ: Field = f(18, 0, 8);
    /// UAR area size: 1 MiB << `uar_sz`.
    pub const UAR_SZ: Field = f(18, 16, 6);
    /// UAR pages reserved for firmware, as a count.
    pub const NUM_RSVD_UARS: Field = f(18, 28, 4);
    /// log2 of the number of multicast groups.
    pub const LOG_MAX_MCG: Field = f(24, 0, 8);
    /// QPC entry size in bytes.
    pub const QPC_ENTRY_SZ: Field = f(32, 0, 16);
    /// Extended (alternate path) QPC entry size.
    pub const ALTC_ENTRY_SZ: Field = f(33, 0, 16);
    /// Auxiliary context entry size.
    pub const AUX_ENTRY_SZ: Field = f(33, 16, 16);
    /// CQC entry size.
    pub const CQC_ENTRY_SZ: Field = f(34, 0, 16);
    /// EQC entry size.
    pub const EQC_ENTRY_SZ: Field = f(34, 16, 16);
    /// cMPT entry size.
    pub const C_MPT_ENTRY_SZ: Field = f(35, 0, 16);
    /// SRQ context entry size.
    pub const SRQ_ENTRY_SZ: Field = f(35, 16, 16);
    /// dMPT entry size.
    pub const D_MPT_ENTRY_SZ: Field = f(36, 0, 16);
    /// MTT entry size.
    pub const MTT_ENTRY_SZ: Field = f(36, 16, 16);
    /// Dwords (the whole 256-byte output mailbox).
    pub const DWORDS: usize = 64;
}

/// INIT_HCA input (MT25408_PRM.h `struct hermonprm_init_hca_st`, 0x200 bytes, with its
/// `hermonprm_qpcbaseaddr_st` at dword 8, `hermonprm_multicastparam_st` at dword 48,
/// `hermonprm_tptparams_st` at dword 60 and `hermonprm_uar_params_st` at dword 72). The QPC,
/// SRQC, CQC and EQC bases share their low dword with the table's log2 size.
pub mod init_hca {
    use super::{a, a64, f, Addr, Field};
    /// Interface version; 2.
    pub const VERSION: Field = f(0, 24, 8);
    /// Check the port of UD address vectors (`udp`).
    pub const UDP: Field = f(5, 0, 1);
    /// QPC base (`qpc_base_addr_h`, `qpc_base_addr_l` `[31:5]`).
    pub const QPC_BASE: Addr = a(f(12, 0, 32), f(13, 5, 27));
    /// log2 QPs.
    pub const LOG_NUM_OF_QP: Field = f(13, 0, 5);
    /// SRQC base.
    pub const SRQC_BASE: Addr = a(f(18, 0, 32), f(19, 5, 27));
    /// log2 SRQs.
    pub const LOG_NUM_OF_SRQ: Field = f(19, 0, 5);
    /// CQC base.
    pub const CQC_BASE: Addr = a(f(20, 0, 32), f(21, 5, 27));
    /// log2 CQs.
    pub const LOG_NUM_OF_CQ: Field = f(21, 0, 5);
    /// Extended (alternate path) QPC base.
    pub const ALTC_BASE: Addr = a64(24);
    /// Auxiliary context base.
    pub const AUXC_BASE: Addr = a64(28);
    /// EQC base.
    pub const EQC_BASE: Addr = a(f(32, 0, 32), f(33, 5, 27));
    /// log2 EQs.
    pub const LOG_NUM_OF_EQ: Field = f(33, 0, 5);
    /// RDMA read context base.
    pub const RDMARC_BASE: Addr = a(f(36, 0, 32), f(37, 5, 27));
    /// log2 RDMA read contexts per QP.
    pub const LOG_NUM_RD: Field = f(37, 0, 3);
    /// Multicast table base.
    pub const MC_BASE: Addr = a64(48);
    /// log2 of the multicast entry size in bytes ("must be greater than 5").
    pub const LOG_MC_TABLE_ENTRY_SZ: Field = f(52, 0, 5);
    /// log2 of the multicast hash table size.
    pub const LOG_MC_TABLE_HASH_SZ: Field = f(53, 0, 5);
    /// log2 of the multicast table size.
    pub const LOG_MC_TABLE_SZ: Field = f(54, 0, 5);
    /// dMPT base.
    pub const DMPT_BASE: Addr = a64(60);
    /// log2 dMPT entries.
    pub const LOG_DMPT_SZ: Field = f(62, 0, 6);
    /// MTT base.
    pub const MTT_BASE: Addr = a64(64);
    /// cMPT base (the four cMPT tables follow it at a stride of 2^24 entries).
    pub const CMPT_BASE: Addr = a64(66);
    /// UAR page size: 4 KiB << `uar_page_sz`.
    pub const UAR_PAGE_SZ: Field = f(74, 0, 8);
    /// log2 of the number of UAR pages.
    pub const LOG_MAX_UARS: Field = f(74, 8, 4);
    /// Dwords.
    pub const DWORDS: usize = 128;
}

/// dMPT entry for SW2HW_MPT (MT25408_PRM.h `struct hermonprm_mpt_st`, 64 bytes).
pub mod mpt {
    use super::{f, Field};
    /// Region (1) or window (0).
    pub const R_W: Field = f(0, 8, 1);
    /// Physical addressing (no translation).
    pub const PA: Field = f(0, 9, 1);
    /// Local read ("must be set for all MPT entries").
    pub const LR: Field = f(0, 10, 1);
    /// Local write.
    pub const LW: Field = f(0, 11, 1);
    /// Remote read.
    pub const RR: Field = f(0, 12, 1);
    /// Remote write.
    pub const RW: Field = f(0, 13, 1);
    /// Atomic.
    pub const ATOMIC: Field = f(0, 14, 1);
    /// Memory key (hardware-index form: index in the low bits).
    pub const MEM_KEY: Field = f(2, 0, 32);
    /// Protection domain.
    pub const PD: Field = f(3, 0, 24);
    /// Length bit 64: the region covers the whole address space.
    pub const LEN64: Field = f(10, 22, 1);
    /// Dwords.
    pub const DWORDS: usize = 16;
}

/// WRITE_MTT input (hermon.h `struct hermonprm_write_mtt_st`: the scalar `mtt_base_addr`, a
/// reserved scalar, then MT25408_PRM.h `struct hermonprm_mtt_st` entries).
pub mod write_mtt {
    use super::{a, a64, f, Addr, Field};
    /// MTT base: entry index × MTT entry size (iPXE `hermon_alloc_mtt`).
    pub const MTT_BASE_ADDR: Addr = a64(0);
    /// First entry's page address (`ptag_h`, `ptag_l` `[31:3]`).
    pub const PTAG: Addr = a(f(4, 0, 32), f(5, 3, 29));
    /// First entry's present bit.
    pub const P: Field = f(5, 0, 1);
    /// Dwords for one entry.
    pub const DWORDS: usize = 6;
}

/// EQ context for SW2HW_EQ (MT25408_PRM.h `struct hermonprm_eqc_st`, 64 bytes).
pub mod eqc {
    use super::{a, f, Addr, Field};
    /// State (0xa = fired, i.e. not armed).
    pub const ST: Field = f(0, 8, 4);
    /// Overrun ignore.
    pub const OI: Field = f(0, 17, 1);
    /// Byte offset of the first EQE in its page, bits `[11:5]` in place.
    pub const PAGE_OFFSET: Field = f(2, 5, 7);
    /// log2 of the number of EQEs.
    pub const LOG_EQ_SIZE: Field = f(3, 24, 5);
    /// log2 of the MTT page size in 4 KiB units.
    pub const LOG2_PAGE_SIZE: Field = f(6, 24, 6);
    /// MTT base (`mtt_base_addr_h` `[7:0]` = address bits 39:32, `mtt_base_addr_l` `[31:3]`).
    pub const MTT_BASE_ADDR: Addr = a(f(6, 0, 8), f(7, 3, 29));
    /// Dwords.
    pub const DWORDS: usize = 16;
}

/// CQ context for SW2HW_CQ and HW2SW_CQ (MT25408_PRM.h
/// `struct hermonprm_completion_queue_context_st`, 64 bytes).
pub mod cqc {
    use super::{a, f, Addr, Field};
    /// State.
    pub const ST: Field = f(0, 8, 4);
    /// Byte offset of the first CQE in its page, bits `[11:5]` in place.
    pub const PAGE_OFFSET: Field = f(2, 5, 7);
    /// UAR page.
    pub const USR_PAGE: Field = f(3, 0, 24);
    /// log2 of the number of CQEs.
    pub const LOG_CQ_SIZE: Field = f(3, 24, 5);
    /// EQ receiving this CQ's completion events.
    pub const C_EQN: Field = f(5, 0, 9);
    /// log2 of the MTT page size in 4 KiB units.
    pub const LOG2_PAGE_SIZE: Field = f(6, 24, 6);
    /// MTT base (`mtt_base_addr_h` `[7:0]`, `mtt_base_addr_l` `[31:3]`).
    pub const MTT_BASE_ADDR: Addr = a(f(6, 0, 8), f(7, 3, 29));
    /// Doorbell record (`db_record_addr_h`, `db_record_addr_l` `[31:3]`).
    pub const DB_RECORD_ADDR: Addr = a(f(14, 0, 32), f(15, 3, 29));
    /// Dwords.
    pub const DWORDS: usize = 16;
}

/// QP state-transition mailbox (MT25408_PRM.h `struct hermonprm_qp_ee_state_transitions_st`):
/// dword 0 `opt_param_mask`, dword 1 reserved, the QPC (`hermonprm_queue_pair_ee_context_entry_st`)
/// from dword 2, its primary `hermonprm_address_path_st` from dword 8.
pub mod qpc {
    use super::{a, f, Addr, Field};
    /// Optional parameter mask.
    pub const OPT_PARAM_MASK: Field = f(0, 0, 32);
    /// Opt-param bit: Q_Key (hermon.h `HERMON_QP_OPT_PARAM_QKEY`).
    pub const OPT_PARAM_QKEY: u32 = 0x20;
    /// Path migration state (3 = migrated).
    pub const PM_STATE: Field = f(2, 11, 2);
    /// Service type (0x3 UD, 0x7 MLX).
    pub const ST: Field = f(2, 16, 4);
    /// Protection domain.
    pub const PD: Field = f(3, 0, 24);
    /// log2(send stride / 16).
    pub const LOG_SQ_STRIDE: Field = f(4, 8, 3);
    /// log2 send WQEs.
    pub const LOG_SQ_SIZE: Field = f(4, 11, 4);
    /// log2(receive stride / 16).
    pub const LOG_RQ_STRIDE: Field = f(4, 16, 3);
    /// log2 receive WQEs.
    pub const LOG_RQ_SIZE: Field = f(4, 19, 4);
    /// log2 of the maximum message size.
    pub const MSG_MAX: Field = f(4, 24, 5);
    /// Path MTU (4 = 2048).
    pub const MTU: Field = f(4, 29, 3);
    /// UAR page for doorbells.
    pub const USR_PAGE: Field = f(5, 0, 24);
    /// Primary path scheduling queue (0x83 | (port-1)<<6; QP0 0x3f | (port-1)<<6).
    pub const SCHED_QUEUE: Field = f(16, 24, 8);
    /// Send CQ.
    pub const CQN_SND: Field = f(33, 0, 24);
    /// Byte offset of the WQE buffer in its page, bits `[11:6]` in place.
    pub const PAGE_OFFSET: Field = f(38, 6, 6);
    /// Receive CQ.
    pub const CQN_RCV: Field = f(41, 0, 24);
    /// Receive doorbell record (`db_record_addr_h`, `db_record_addr_l` `[31:2]`).
    pub const DB_RECORD_ADDR: Addr = a(f(42, 0, 32), f(43, 2, 30));
    /// Q_Key.
    pub const Q_KEY: Field = f(44, 0, 32);
    /// log2 of the MTT page size in 4 KiB units.
    pub const LOG2_PAGE_SIZE: Field = f(52, 24, 6);
    /// MTT base (`mtt_base_addr_h` `[7:0]`, `mtt_base_addr_l` `[31:3]`).
    pub const MTT_BASE_ADDR: Addr = a(f(52, 0, 8), f(53, 3, 29));
    /// Dwords (mailbox header and the 248-byte context).
    pub const DWORDS: usize = 64;
    /// Service type UD.
    pub const ST_UD: u32 = 0x3;
    /// Service type MLX (QP0/QP1).
    pub const ST_MLX: u32 = 0x7;
}

/// QUERY_PORT output (hermon.h `struct hermonprm_query_port_cap_st`, 64 bytes).
pub mod query_port {
    use super::{f, Field};
    /// Largest IB MTU the port supports (IBA encoding).
    pub const IB_MTU: Field = f(0, 16, 4);
    /// The port can run InfiniBand.
    pub const IB: Field = f(0, 24, 1);
    /// The port can run Ethernet.
    pub const ETH: Field = f(0, 25, 1);
    /// Dwords.
    pub const DWORDS: usize = 16;
}

/// SET_PORT input for an IB port, op_mod 0 (hermon.h `struct hermonprm_set_port_ib_st`).
pub mod set_port {
    use super::{f, Field};
    /// VL cap (a number of VLs).
    pub const VL_CAP: Field = f(0, 4, 4);
    /// MTU cap (IBA encoding).
    pub const MTU_CAP: Field = f(0, 12, 4);
    /// Change the GID table size.
    pub const MG: Field = f(0, 19, 1);
    /// Change the P_Key table size.
    pub const MP: Field = f(0, 20, 1);
    /// Change the VL cap.
    pub const MVC: Field = f(0, 21, 1);
    /// Change the MTU cap.
    pub const MMC: Field = f(0, 22, 1);
    /// GID table size.
    pub const MAX_GID: Field = f(10, 0, 16);
    /// P_Key table size.
    pub const MAX_PKEY: Field = f(10, 16, 16);
    /// Dwords.
    pub const DWORDS: usize = 32;
}

/// A multicast group entry as iPXE configures the table, 64 bytes (hermon.h
/// `struct hermonprm_mcg_entry_st`: MT25408_PRM.h `hermonprm_mcg_hdr_st` then eight
/// `hermonprm_mcg_qp_dw_st`).
pub mod mcg {
    use super::{f, Field};
    /// Member count.
    pub const MEMBERS_COUNT: Field = f(1, 0, 24);
    /// The MGID, raw bytes in dwords 4–7 (`gid3`..`gid0`).
    pub const GID: [Field; 4] = [f(4, 0, 32), f(5, 0, 32), f(6, 0, 32), f(7, 0, 32)];
    /// The QPN of member slot `i` (`qp[i].qpn`).
    pub const fn qpn(i: usize) -> Field {
        f(8 + i, 0, 24)
    }
    /// Member slots.
    pub const MAX_QPS: usize = 8;
    /// log2 of the entry size the driver configures (64 bytes).
    pub const LOG_ENTRY_SZ: u32 = 6;
    /// Dwords.
    pub const DWORDS: usize = 16;
}

/// Completion queue entry, 32 bytes (MT25408_PRM.h `struct hermonprm_completion_queue_entry_st`;
/// error CQEs `struct hermonprm_completion_with_error_st`).
pub mod cqe {
    use super::{f, Field};
    /// Entry size.
    pub const SIZE: usize = 32;
    /// Local QPN.
    pub const QPN: Field = f(0, 0, 24);
    /// Source QPN.
    pub const SRQ_RQPN: Field = f(2, 0, 24);
    /// GRH present.
    pub const G: Field = f(2, 31, 1);
    /// Source LID.
    pub const SLID: Field = f(3, 0, 16);
    /// Service level.
    pub const SL: Field = f(3, 28, 4);
    /// Byte count (includes the 40-byte GRH scatter for UD).
    pub const BYTE_CNT: Field = f(5, 0, 32);
    /// Syndrome (error CQEs).
    pub const SYNDROME: Field = f(6, 0, 8);
    /// WQE counter.
    pub const WQE_COUNTER: Field = f(6, 16, 16);
    /// Opcode (5 bits).
    pub const OPCODE: Field = f(7, 0, 5);
    /// 1 for send completions.
    pub const S_R: Field = f(7, 6, 1);
    /// Owner.
    pub const OWNER: Field = f(7, 7, 1);
    /// Send opcode: SEND.
    pub const OPCODE_SEND: u32 = 0x0a;
    /// Receive opcode: SEND.
    pub const OPCODE_RECV_SEND: u32 = 0x01;
    /// Error opcode (0xfe truncated to 5 bits; direction from S_R).
    pub const OPCODE_ERROR: u32 = 0x1e;
    /// Error opcode (0xff truncated to 5 bits; a send error).
    pub const OPCODE_ERROR_SEND: u32 = 0x1f;
}

/// Event queue entry, 32 bytes (MT25408_PRM.h `struct hermonprm_event_queue_entry_st`; the event
/// data from dword 1 as `hermonprm_completion_queue_error_st`,
/// `hermonprm_port_state_change_event_st` and hermon.h `hermonprm_port_mgmnt_change_event_st`).
pub mod eqe {
    use super::{f, Field};
    /// Entry size.
    pub const SIZE: usize = 32;
    /// Event sub-type.
    pub const EVENT_SUB_TYPE: Field = f(0, 0, 8);
    /// Event type.
    pub const EVENT_TYPE: Field = f(0, 16, 8);
    /// CQ error event: CQN.
    pub const CQ_ERROR_CQN: Field = f(1, 0, 24);
    /// Port state change event: port.
    pub const PSC_PORT: Field = f(3, 28, 2);
    /// Port management change event: port.
    pub const PMC_PORT: Field = f(1, 0, 8);
    /// Port management change of PortInfo (`MLX4_DEV_PMC_SUBTYPE_PORT_INFO`): the
    /// ClientReregister bit of `changed_attr` (`MLX4_EQ_PORT_INFO_CLIENT_REREG_MASK`, bit 3 of
    /// dword 3).
    pub const PMC_CLIENT_REREG: Field = f(3, 3, 1);
    /// Owner.
    pub const OWNER: Field = f(7, 7, 1);
    /// Event type: completion.
    pub const TYPE_COMPLETION: u32 = 0x00;
    /// Event type: CQ error.
    pub const TYPE_CQ_ERROR: u32 = 0x04;
    /// Event type: port state change.
    pub const TYPE_PORT_STATE_CHANGE: u32 = 0x09;
    /// Event type: port management change.
    pub const TYPE_PORT_MGMT_CHANGE: u32 = 0x1d;
    /// Port management change sub-type: PortInfo (`MLX4_DEV_PMC_SUBTYPE_PORT_INFO`).
    pub const SUBTYPE_PMC_PORT_INFO: u32 = 0x15;
    /// Port state change sub-type: down.
    pub const SUBTYPE_PORT_DOWN: u32 = 0x01;
    /// Port state change sub-type: active.
    pub const SUBTYPE_PORT_ACTIVE: u32 = 0x04;
}

/// Send WQEs: the control segment (MT25408_PRM.h `struct hermonprm_wqe_segment_ctrl_send_st`,
/// and `hermonprm_wqe_segment_ctrl_mlx_st` for QP0/QP1), the UD segment
/// (`hermonprm_wqe_segment_ud_st` with its `hermonprm_ud_address_vector_st`) at dword 4, and
/// the data pointer segment (`hermonprm_wqe_segment_data_ptr_st`, positions relative to it).
pub mod send_wqe {
    use super::{a, f, Addr, Field};
    /// Stride.
    pub const STRIDE: usize = 128;
    /// Opcode.
    pub const OPCODE: Field = f(0, 0, 5);
    /// Owner.
    pub const OWNER: Field = f(0, 31, 1);
    /// Size in 16-byte units.
    pub const DS: Field = f(1, 0, 6);
    /// Generate completion (0b11).
    pub const C: Field = f(2, 2, 2);
    /// MLX: 0 = the HCA computes the ICRC into the packet's last dword.
    pub const MLX_ICRC: Field = f(2, 4, 1);
    /// MLX: VL15 (QP0 traffic).
    pub const MLX_V15: Field = f(2, 17, 1);
    /// MLX: destination LID (the device checks it against the LRH).
    pub const MLX_RLID: Field = f(3, 16, 16);
    /// UD AV: PD.
    pub const AV_PD: Field = f(4, 0, 24);
    /// UD AV: port.
    pub const AV_PORT_NUMBER: Field = f(4, 24, 2);
    /// UD AV: remote LID.
    pub const AV_RLID: Field = f(5, 0, 16);
    /// UD AV: GRH present.
    pub const AV_G: Field = f(5, 23, 1);
    /// UD AV: hop limit.
    pub const AV_HOP_LIMIT: Field = f(6, 0, 8);
    /// UD AV: source GID index.
    pub const AV_MGID_INDEX: Field = f(6, 16, 7);
    /// UD AV: flow label.
    pub const AV_FLOW_LABEL: Field = f(7, 0, 20);
    /// UD AV: traffic class.
    pub const AV_TCLASS: Field = f(7, 20, 8);
    /// UD AV: service level.
    pub const AV_SL: Field = f(7, 28, 4);
    /// UD AV: remote GID, raw bytes in dwords 8–11 (`rgid_127_96`..`rgid_31_0`).
    pub const AV_RGID: [Field; 4] = [f(8, 0, 32), f(9, 0, 32), f(10, 0, 32), f(11, 0, 32)];
    /// UD: destination QPN.
    pub const DESTINATION_QP: Field = f(12, 0, 24);
    /// UD: Q_Key.
    pub const Q_KEY: Field = f(13, 0, 32);
    /// UD: data segment dword.
    pub const UD_DATA: usize = 16;
    /// MLX: data segment dword.
    pub const MLX_DATA: usize = 4;
    /// Data segment: byte count (relative to the segment).
    pub const DATA_BYTE_COUNT: Field = f(0, 0, 31);
    /// Data segment: L_Key (relative).
    pub const DATA_L_KEY: Field = f(1, 0, 32);
    /// Data segment: local address (relative).
    pub const DATA_LOCAL_ADDRESS: Addr = a(f(2, 0, 32), f(3, 0, 32));
    /// Opcode SEND.
    pub const OPCODE_SEND: u32 = 0x0a;
    /// UD WQE size in 16-byte units.
    pub const UD_DS: u32 = 5;
    /// MLX WQE size in 16-byte units (control segment and one data segment covering the
    /// headers, the MAD and the ICRC dword).
    pub const MLX_DS: u32 = 2;
    /// Dwords in a UD WQE.
    pub const DWORDS: usize = 20;

    /// A data segment's field moved to WQE dword `at`.
    pub const fn data(field: Field, at: usize) -> Field {
        Field {
            dw: field.dw + at,
            ..field
        }
    }

    /// A data segment's address moved to WQE dword `at`.
    pub const fn data_addr(at: usize) -> Addr {
        Addr {
            h: data(DATA_LOCAL_ADDRESS.h, at),
            l: data(DATA_LOCAL_ADDRESS.l, at),
        }
    }
}

/// Receive WQE: two data pointer segments (MT25408_PRM.h `hermonprm_wqe_segment_data_ptr_st`;
/// positions in [`send_wqe`]'s `DATA_*`).
pub mod recv_wqe {
    /// Stride.
    pub const STRIDE: usize = 32;
    /// L_Key marking an unused scatter entry (hermon.h `HERMON_INVALID_LKEY`).
    pub const INVALID_LKEY: u32 = 0x0000_0100;
    /// Dwords.
    pub const DWORDS: usize = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_truncate() {
        let mut p = Prm::<4>::default();
        p.set(cqe::QPN, 0x1234_5678);
        assert_eq!(p.get(cqe::QPN), 0x34_5678);
        assert!(p.set_addr(a64(2), 0x1122_3344_5566_7788));
        assert_eq!(p.get_addr(a64(2)), 0x1122_3344_5566_7788);
        let mut b = [0u8; 16];
        p.write_be(&mut b);
        assert_eq!(&b[..4], &[0x00, 0x34, 0x56, 0x78]);
        assert_eq!(Prm::<4>::from_be(&b), p);
        // Out-of-range fields read 0 and writes are ignored, never a panic.
        p.set(eqe::OWNER, 1);
        assert_eq!(p.get(eqe::OWNER), 0);
        assert_eq!(Prm::<4>::BYTES, 16);
    }

    #[test]
    fn split_addresses_keep_their_neighbours() {
        let mut p = Prm::<{ init_hca::DWORDS }>::default();
        p.set(init_hca::LOG_NUM_OF_QP, 7);
        assert!(p.set_addr(init_hca::QPC_BASE, 0x1_0000_0080));
        assert_eq!(p.get(init_hca::LOG_NUM_OF_QP), 7);
        assert_eq!(p.get_addr(init_hca::QPC_BASE), 0x1_0000_0080);
        assert_eq!(p.0[13], 0x80 | 7);
        // Misaligned for the low part, or beyond the 40 bits of an MTT address: refused.
        assert!(!p.set_addr(init_hca::QPC_BASE, 0x10));
        let mut c = Prm::<{ cqc::DWORDS }>::default();
        assert!(c.set_addr(cqc::MTT_BASE_ADDR, 0xff_ffff_fff8));
        assert!(!c.set_addr(cqc::MTT_BASE_ADDR, 1 << 40));
        assert_eq!(c.get_addr(cqc::MTT_BASE_ADDR), 0xff_ffff_fff8);
    }

    #[test]
    fn cqe_and_eqe_byte_positions() {
        let mut p = Prm::<8>::default();
        p.set(cqe::OWNER, 1);
        p.set(cqe::S_R, 1);
        p.set(cqe::OPCODE, cqe::OPCODE_SEND);
        let mut b = [0u8; 32];
        p.write_be(&mut b);
        assert_eq!(b[31], 0x80 | 0x40 | 0x0a);
        let mut e = Prm::<8>::default();
        e.set(eqe::EVENT_TYPE, 0x09);
        e.set(eqe::PSC_PORT, 2);
        e.set(eqe::CQ_ERROR_CQN, 0x12_3456);
        e.write_be(&mut b);
        assert_eq!(b[1], 0x09);
        assert_eq!(b[12], 0x20);
        assert_eq!(&b[4..8], &[0, 0x12, 0x34, 0x56]);
    }

    /// Every field of a structure lies inside one of its dwords and no two overlap.
    #[test]
    fn fields_fit_and_do_not_overlap() {
        fn check(name: &str, dwords: usize, fields: &[Field]) {
            for f in fields {
                assert!(f.dw < dwords, "{name}: {f:?} outside {dwords} dwords");
                assert!(f.width >= 1 && f.lsb + f.width <= 32, "{name}: {f:?}");
            }
            for (i, a) in fields.iter().enumerate() {
                for b in &fields[i + 1..] {
                    let overlap =
                        a.dw == b.dw && a.lsb < b.lsb + b.width && b.lsb < a.lsb + a.width;
                    assert!(!overlap, "{name}: {a:?} overlaps {b:?}");
                }
            }
        }
        use init_hca as ih;
        check(
            "init_hca",
            ih::DWORDS,
            &[
                ih::VERSION,
                ih::UDP,
                ih::QPC_BASE.h,
                ih::QPC_BASE.l,
                ih::LOG_NUM_OF_QP,
                ih::SRQC_BASE.h,
                ih::SRQC_BASE.l,
                ih::LOG_NUM_OF_SRQ,
                ih::CQC_BASE.h,
                ih::CQC_BASE.l,
                ih::LOG_NUM_OF_CQ,
                ih::ALTC_BASE.h,
                ih::ALTC_BASE.l,
                ih::AUXC_BASE.h,
                ih::AUXC_BASE.l,
                ih::EQC_BASE.h,
                ih::EQC_BASE.l,
                ih::LOG_NUM_OF_EQ,
                ih::RDMARC_BASE.h,
                ih::RDMARC_BASE.l,
                ih::LOG_NUM_RD,
                ih::MC_BASE.h,
                ih::MC_BASE.l,
                ih::LOG_MC_TABLE_ENTRY_SZ,
                ih::LOG_MC_TABLE_HASH_SZ,
                ih::LOG_MC_TABLE_SZ,
                ih::DMPT_BASE.h,
                ih::DMPT_BASE.l,
                ih::LOG_DMPT_SZ,
                ih::MTT_BASE.h,
                ih::MTT_BASE.l,
                ih::CMPT_BASE.h,
                ih::CMPT_BASE.l,
                ih::UAR_PAGE_SZ,
                ih::LOG_MAX_UARS,
            ],
        );
        check(
            "qpc",
            qpc::DWORDS,
            &[
                qpc::OPT_PARAM_MASK,
                qpc::PM_STATE,
                qpc::ST,
                qpc::PD,
                qpc::LOG_SQ_STRIDE,
                qpc::LOG_SQ_SIZE,
                qpc::LOG_RQ_STRIDE,
                qpc::LOG_RQ_SIZE,
                qpc::MSG_MAX,
                qpc::MTU,
                qpc::USR_PAGE,
                qpc::SCHED_QUEUE,
                qpc::CQN_SND,
                qpc::PAGE_OFFSET,
                qpc::CQN_RCV,
                qpc::DB_RECORD_ADDR.h,
                qpc::DB_RECORD_ADDR.l,
                qpc::Q_KEY,
                qpc::LOG2_PAGE_SIZE,
                qpc::MTT_BASE_ADDR.h,
                qpc::MTT_BASE_ADDR.l,
            ],
        );
        check(
            "cqc",
            cqc::DWORDS,
            &[
                cqc::ST,
                cqc::PAGE_OFFSET,
                cqc::USR_PAGE,
                cqc::LOG_CQ_SIZE,
                cqc::C_EQN,
                cqc::LOG2_PAGE_SIZE,
                cqc::MTT_BASE_ADDR.h,
                cqc::MTT_BASE_ADDR.l,
                cqc::DB_RECORD_ADDR.h,
                cqc::DB_RECORD_ADDR.l,
            ],
        );
        check(
            "eqc",
            eqc::DWORDS,
            &[
                eqc::ST,
                eqc::OI,
                eqc::PAGE_OFFSET,
                eqc::LOG_EQ_SIZE,
                eqc::LOG2_PAGE_SIZE,
                eqc::MTT_BASE_ADDR.h,
                eqc::MTT_BASE_ADDR.l,
            ],
        );
        use send_wqe as sw;
        check(
            "send_wqe",
            sw::DWORDS,
            &[
                sw::OPCODE,
                sw::OWNER,
                sw::DS,
                sw::C,
                sw::MLX_ICRC,
                sw::MLX_V15,
                sw::MLX_RLID,
                sw::AV_PD,
                sw::AV_PORT_NUMBER,
                sw::AV_RLID,
                sw::AV_G,
                sw::AV_HOP_LIMIT,
                sw::AV_MGID_INDEX,
                sw::AV_FLOW_LABEL,
                sw::AV_TCLASS,
                sw::AV_SL,
                sw::DESTINATION_QP,
                sw::Q_KEY,
                sw::data(sw::DATA_BYTE_COUNT, sw::UD_DATA),
                sw::data(sw::DATA_L_KEY, sw::UD_DATA),
                sw::data_addr(sw::UD_DATA).h,
                sw::data_addr(sw::UD_DATA).l,
            ],
        );
        assert_eq!(sw::UD_DATA * 4 + 16, sw::UD_DS as usize * 16);
        assert_eq!(recv_wqe::DWORDS * 4, recv_wqe::STRIDE);
        assert_eq!(mcg::DWORDS * 4, 1 << mcg::LOG_ENTRY_SZ);
        assert_eq!(mcg::qpn(mcg::MAX_QPS - 1).dw, mcg::DWORDS - 1);
    }
}
