//! Hermon PRM structures as big-endian dwords with LSB-first bit fields (iPXE
//! `src/drivers/infiniband/mlx_bitops.h`): one [`Field`] per named field, one [`Prm`] buffer type.
//!
//! Provenance of the layouts (the sim uses these same definitions, so the driver and the model
//! agree by construction; the layout tests pin them):
//! - **documented** (iPXE `src/drivers/infiniband/hermon.[ch]`, Linux
//!   `drivers/net/ethernet/mellanox/mlx4/`): the HCR, QUERY_FW dword 0, the
//!   virtual/physical mapping entry, the WRITE_MTT entry, the CQE, the EQE, the UD send WQE, the
//!   receive WQE, the doorbells, the RTS2RTS Q_Key position (mailbox dword 44) and its
//!   opt-param bit, the INIT_HCA version dword.
//! - **assumed** (positions chosen here; must be checked against the PRM before real
//!   hardware): QUERY_DEV_CAP, INIT_HCA region fields, MPT, EQC, CQC, the rest of the QPC,
//!   QUERY_PORT, SET_PORT, the MCG entry and the MLX (QP0/QP1) WQE control dwords.

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

    /// Reads a 64-bit value stored as two dwords (high first) at `dw`.
    pub fn get64(&self, dw: usize) -> u64 {
        let h = self.0.get(dw).copied().unwrap_or(0);
        let l = self.0.get(dw + 1).copied().unwrap_or(0);
        (u64::from(h) << 32) | u64::from(l)
    }

    /// Writes a 64-bit value as two dwords (high first) at `dw`.
    pub fn set64(&mut self, dw: usize, v: u64) {
        if let Some(d) = self.0.get_mut(dw) {
            *d = (v >> 32) as u32;
        }
        if let Some(d) = self.0.get_mut(dw + 1) {
            *d = v as u32;
        }
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

/// QUERY_FW output (documented: dword 0).
pub mod query_fw {
    use super::{f, Field};
    /// Firmware major revision.
    pub const FW_REV_MAJOR: Field = f(0, 0, 16);
    /// 4 KiB pages the firmware area needs.
    pub const FW_PAGES: Field = f(0, 16, 16);
    /// Minor revision (assumed position).
    pub const FW_REV_MINOR: Field = f(1, 16, 16);
    /// Sub-minor revision (assumed position).
    pub const FW_REV_SUBMINOR: Field = f(1, 0, 16);
}

/// The 16-byte virtual/physical mapping entry of MAP_FA, MAP_ICM_AUX and MAP_ICM (documented).
pub mod vpm {
    use super::{f, Field};
    /// Entry size in bytes.
    pub const SIZE: usize = 16;
    /// Virtual address, 64 bits at dwords 0–1 (low 12 bits zero).
    pub const VA: usize = 0;
    /// Physical address, 64 bits at dwords 2–3 (low 12 bits hold LOG2SIZE).
    pub const PA: usize = 2;
    /// log2 of the block size in 4 KiB pages.
    pub const LOG2SIZE: Field = f(3, 0, 6);
}

/// QUERY_DEV_CAP output (assumed layout).
pub mod dev_cap {
    use super::{f, Field};
    /// log2 of reserved QPs.
    pub const LOG2_RSVD_QPS: Field = f(0, 0, 8);
    /// log2 of the QP table size.
    pub const LOG_MAX_QP: Field = f(0, 8, 8);
    /// log2 of reserved CQs.
    pub const LOG2_RSVD_CQS: Field = f(1, 0, 8);
    /// log2 of the CQ table size.
    pub const LOG_MAX_CQ: Field = f(1, 8, 8);
    /// log2 of reserved EQs.
    pub const LOG2_RSVD_EQS: Field = f(1, 16, 8);
    /// log2 of the EQ table size.
    pub const LOG_MAX_EQ: Field = f(1, 24, 8);
    /// log2 of reserved MTT entries.
    pub const LOG2_RSVD_MTTS: Field = f(2, 0, 8);
    /// log2 of the MTT table size.
    pub const LOG_MAX_MTT: Field = f(2, 8, 8);
    /// log2 of reserved MPTs.
    pub const LOG2_RSVD_MRWS: Field = f(2, 16, 8);
    /// log2 of the MPT table size.
    pub const LOG_MAX_MPT: Field = f(2, 24, 8);
    /// Number of ports.
    pub const NUM_PORTS: Field = f(3, 0, 4);
    /// Dual-protocol ports (IB or Ethernet per port).
    pub const DPDP: Field = f(3, 4, 1);
    /// UAR pages reserved by firmware.
    pub const NUM_RSVD_UARS: Field = f(3, 8, 8);
    /// log2 of the MCG table size.
    pub const LOG_MAX_MCG: Field = f(3, 16, 8);
    /// QPC entry size in bytes.
    pub const QPC_SZ: Field = f(4, 0, 16);
    /// CQC entry size.
    pub const CQC_SZ: Field = f(4, 16, 16);
    /// EQC entry size.
    pub const EQC_SZ: Field = f(5, 0, 16);
    /// dMPT entry size.
    pub const DMPT_SZ: Field = f(5, 16, 16);
    /// MTT entry size.
    pub const MTT_SZ: Field = f(6, 0, 16);
    /// cMPT entry size.
    pub const CMPT_SZ: Field = f(6, 16, 16);
    /// AUXC entry size.
    pub const AUXC_SZ: Field = f(7, 0, 16);
    /// ALTC entry size.
    pub const ALTC_SZ: Field = f(7, 16, 16);
    /// MCG entry size.
    pub const MCG_SZ: Field = f(8, 0, 16);
    /// Dwords.
    pub const DWORDS: usize = 16;
}

/// INIT_HCA input (version dword documented, the rest assumed).
pub mod init_hca {
    use super::{f, Field};
    /// Interface version; 2.
    pub const VERSION: Field = f(0, 24, 8);
    /// UD address vector port check (`udp`).
    pub const UDP: Field = f(5, 0, 1);
    /// QPC base (64-bit at dwords 16–17).
    pub const QPC_BASE: usize = 16;
    /// log2 QPs.
    pub const LOG_NUM_QPS: Field = f(18, 0, 5);
    /// ALTC base.
    pub const ALTC_BASE: usize = 20;
    /// AUXC base.
    pub const AUXC_BASE: usize = 22;
    /// CQC base.
    pub const CQC_BASE: usize = 24;
    /// log2 CQs.
    pub const LOG_NUM_CQS: Field = f(26, 0, 5);
    /// EQC base.
    pub const EQC_BASE: usize = 28;
    /// log2 EQs.
    pub const LOG_NUM_EQS: Field = f(30, 0, 5);
    /// dMPT base.
    pub const DMPT_BASE: usize = 32;
    /// log2 dMPT entries.
    pub const LOG_DMPT_SZ: Field = f(34, 0, 5);
    /// MTT base.
    pub const MTT_BASE: usize = 36;
    /// log2 MTT entries.
    pub const LOG_MTT_SZ: Field = f(38, 0, 5);
    /// cMPT base.
    pub const CMPT_BASE: usize = 40;
    /// MCG base.
    pub const MCG_BASE: usize = 44;
    /// log2 MCG entry size.
    pub const LOG_MCG_ENTRY_SZ: Field = f(46, 0, 5);
    /// log2 MCG hash table size.
    pub const LOG_MCG_HASH_SZ: Field = f(46, 8, 5);
    /// log2 MCG table size.
    pub const LOG_MCG_TABLE_SZ: Field = f(46, 16, 5);
    /// log2 UAR pages (dword 74 per reference §2.3 step 10).
    pub const LOG_MAX_UARS: Field = f(74, 0, 4);
    /// Dwords.
    pub const DWORDS: usize = 80;
}

/// dMPT entry for SW2HW_MPT (assumed layout).
pub mod mpt {
    use super::{f, Field};
    /// Local read.
    pub const LR: Field = f(0, 0, 1);
    /// Local write.
    pub const LW: Field = f(0, 1, 1);
    /// Remote read.
    pub const RR: Field = f(0, 2, 1);
    /// Remote write.
    pub const RW: Field = f(0, 3, 1);
    /// Atomic.
    pub const A: Field = f(0, 4, 1);
    /// Physical addressing (no translation).
    pub const PA: Field = f(0, 9, 1);
    /// Memory key.
    pub const MEM_KEY: Field = f(2, 0, 32);
    /// Protection domain.
    pub const PD: Field = f(3, 0, 24);
    /// Length covers the whole address space.
    pub const LEN64: Field = f(3, 31, 1);
    /// Start address (64-bit at dwords 4–5).
    pub const START: usize = 4;
    /// Length (64-bit at dwords 6–7).
    pub const LEN: usize = 6;
    /// Dwords.
    pub const DWORDS: usize = 16;
}

/// WRITE_MTT input: 64-bit MTT base (dwords 0–1), 2 reserved dwords, then 8-byte entries
/// (documented).
pub mod write_mtt {
    use super::{f, Field};
    /// MTT base (entry index × entry size), 64 bits.
    pub const MTT_BASE: usize = 0;
    /// First entry dword.
    pub const FIRST_ENTRY: usize = 4;
    /// Present bit in the entry's low dword.
    pub const PRESENT: Field = f(5, 0, 1);
    /// Dwords for one entry.
    pub const DWORDS: usize = 6;
}

/// EQ context for SW2HW_EQ (assumed layout).
pub mod eqc {
    use super::{f, Field};
    /// State (0xa = fired, i.e. not armed).
    pub const ST: Field = f(0, 8, 4);
    /// Overrun ignore.
    pub const OI: Field = f(0, 17, 1);
    /// Page offset >> 5.
    pub const PAGE_OFFSET: Field = f(2, 0, 32);
    /// log2 of the number of EQEs.
    pub const LOG_EQ_SIZE: Field = f(3, 24, 5);
    /// MTT base (64-bit at dwords 6–7).
    pub const MTT_BASE: usize = 6;
    /// Dwords.
    pub const DWORDS: usize = 16;
}

/// CQ context for SW2HW_CQ (assumed layout).
pub mod cqc {
    use super::{f, Field};
    /// State.
    pub const ST: Field = f(0, 8, 4);
    /// Page offset >> 5.
    pub const PAGE_OFFSET: Field = f(2, 0, 32);
    /// UAR page.
    pub const USR_PAGE: Field = f(3, 0, 24);
    /// log2 of the number of CQEs.
    pub const LOG_CQ_SIZE: Field = f(3, 24, 5);
    /// EQ receiving this CQ's events.
    pub const C_EQN: Field = f(4, 0, 24);
    /// MTT base (64-bit at dwords 6–7).
    pub const MTT_BASE: usize = 6;
    /// Doorbell record address (64-bit at dwords 14–15).
    pub const DB_RECORD: usize = 14;
    /// Dwords.
    pub const DWORDS: usize = 16;
}

/// QP transition mailbox: dword 0 opt_param_mask, dword 1 reserved, QPC from dword 2.
pub mod qpc {
    use super::{f, Field};
    /// Optional parameter mask.
    pub const OPT_PARAM_MASK: Field = f(0, 0, 32);
    /// Opt-param bit: Q_Key (documented, `HERMON_QP_OPT_PARAM_QKEY`).
    pub const OPT_PARAM_QKEY: u32 = 0x20;
    /// Service type (0x3 UD, 0x7 MLX).
    pub const ST: Field = f(2, 16, 4);
    /// Path migration state (3 = migrated).
    pub const PM_STATE: Field = f(2, 11, 2);
    /// Protection domain.
    pub const PD: Field = f(3, 0, 24);
    /// Path MTU (4 = 2048).
    pub const MTU: Field = f(4, 29, 3);
    /// log2 of the maximum message size.
    pub const MSG_MAX: Field = f(4, 24, 5);
    /// log2 receive WQEs.
    pub const LOG_RQ_SIZE: Field = f(4, 11, 4);
    /// log2(receive stride / 16).
    pub const LOG_RQ_STRIDE: Field = f(4, 8, 3);
    /// log2 send WQEs.
    pub const LOG_SQ_SIZE: Field = f(4, 3, 4);
    /// log2(send stride / 16).
    pub const LOG_SQ_STRIDE: Field = f(4, 0, 3);
    /// UAR page for doorbells.
    pub const USR_PAGE: Field = f(5, 0, 24);
    /// Primary path P_Key index.
    pub const PKEY_INDEX: Field = f(8, 16, 7);
    /// Primary path scheduling queue (0x83 | (port-1)<<6; bit 6 selects the port).
    pub const SCHED_QUEUE: Field = f(9, 0, 8);
    /// Send CQ.
    pub const CQN_SND: Field = f(16, 0, 24);
    /// Receive CQ.
    pub const CQN_RCV: Field = f(17, 0, 24);
    /// Page offset >> 6.
    pub const PAGE_OFFSET: Field = f(19, 0, 6);
    /// Receive doorbell record address (64-bit at dwords 20–21).
    pub const RDB_RECORD: usize = 20;
    /// MTT base (64-bit at dwords 22–23).
    pub const MTT_BASE: usize = 22;
    /// Next send PSN.
    pub const NEXT_SEND_PSN: Field = f(24, 0, 24);
    /// Next receive PSN.
    pub const NEXT_RCV_PSN: Field = f(25, 0, 24);
    /// Q_Key (documented: mailbox dword 44).
    pub const QKEY: Field = f(44, 0, 32);
    /// Dwords.
    pub const DWORDS: usize = 64;
    /// Service type UD.
    pub const ST_UD: u32 = 0x3;
    /// Service type MLX (QP0/QP1).
    pub const ST_MLX: u32 = 0x7;
}

/// QUERY_PORT output (assumed layout).
pub mod query_port {
    use super::{f, Field};
    /// Port supports IB.
    pub const IB: Field = f(0, 31, 1);
    /// Port supports Ethernet.
    pub const ETH: Field = f(0, 30, 1);
    /// Maximum MTU (IB encoding).
    pub const MAX_MTU: Field = f(0, 0, 4);
    /// MAC bits 47:32.
    pub const MAC_H: Field = f(2, 0, 16);
    /// MAC bits 31:0.
    pub const MAC_L: Field = f(3, 0, 32);
    /// Dwords.
    pub const DWORDS: usize = 8;
}

/// SET_PORT (IB) input (assumed layout of the fields reference §2.3 lists).
pub mod set_port {
    use super::{f, Field};
    /// Change MTU cap.
    pub const MMC: Field = f(0, 31, 1);
    /// Change VL cap.
    pub const MVC: Field = f(0, 30, 1);
    /// Change max P_Key.
    pub const MP: Field = f(0, 29, 1);
    /// Change max GID.
    pub const MG: Field = f(0, 28, 1);
    /// MTU cap.
    pub const MTU_CAP: Field = f(0, 12, 4);
    /// VL cap.
    pub const VL_CAP: Field = f(0, 8, 4);
    /// Max GID table size.
    pub const MAX_GID: Field = f(10, 16, 16);
    /// Max P_Key table size.
    pub const MAX_PKEY: Field = f(10, 0, 16);
    /// Dwords.
    pub const DWORDS: usize = 32;
}

/// A multicast group entry (READ_MCG/WRITE_MCG; assumed layout): next index, member count,
/// MGID, up to 8 QPNs.
pub mod mcg {
    use super::{f, Field};
    /// Member count.
    pub const MEMBERS: Field = f(1, 0, 24);
    /// MGID dwords 4–7.
    pub const MGID: usize = 4;
    /// First QP dword.
    pub const QP0: usize = 8;
    /// QPN field of a QP dword.
    pub const QPN_MASK: u32 = 0x00ff_ffff;
    /// QP slots.
    pub const MAX_QPS: usize = 8;
    /// Dwords.
    pub const DWORDS: usize = 16;
}

/// Completion queue entry, 32 bytes (documented, reference §2.5).
pub mod cqe {
    use super::{f, Field};
    /// Entry size.
    pub const SIZE: usize = 32;
    /// Local QPN.
    pub const QPN: Field = f(0, 0, 24);
    /// Immediate / P_Key index for GSI.
    pub const IMMEDIATE: Field = f(1, 0, 32);
    /// Source QPN.
    pub const SRQ_RQPN: Field = f(2, 0, 24);
    /// Path bits.
    pub const ML_PATH: Field = f(2, 24, 7);
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
    /// Vendor syndrome (error CQEs).
    pub const VENDOR_SYNDROME: Field = f(6, 8, 8);
    /// WQE counter.
    pub const WQE_COUNTER: Field = f(6, 16, 16);
    /// Opcode (5 bits).
    pub const OPCODE: Field = f(7, 0, 5);
    /// Inline scatter.
    pub const IS: Field = f(7, 5, 1);
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

/// Event queue entry, 32 bytes (documented, reference §2.6).
pub mod eqe {
    use super::{f, Field};
    /// Entry size.
    pub const SIZE: usize = 32;
    /// Event sub-type.
    pub const SUB_TYPE: Field = f(0, 0, 8);
    /// Event type.
    pub const EVENT_TYPE: Field = f(0, 16, 8);
    /// Port of a port state change event.
    pub const PSC_PORT: Field = f(3, 28, 2);
    /// Port of a port management change event.
    pub const PMC_PORT: Field = f(1, 0, 8);
    /// CQN of a CQ error event (assumed).
    pub const CQN: Field = f(3, 0, 24);
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
    /// Port state change sub-type: down.
    pub const SUBTYPE_PORT_DOWN: u32 = 0x01;
    /// Port state change sub-type: active.
    pub const SUBTYPE_PORT_ACTIVE: u32 = 0x04;
}

/// Send WQEs (documented UD layout, reference §2.8; MLX control dwords 2–3 assumed).
pub mod send_wqe {
    use super::{f, Field};
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
    /// MLX: VL15 (QP0 traffic).
    pub const MLX_V15: Field = f(2, 16, 1);
    /// MLX: destination LID (the device checks it against the LRH).
    pub const MLX_RLID: Field = f(3, 0, 16);
    /// UD AV: PD.
    pub const AV_PD: Field = f(4, 0, 24);
    /// UD AV: port.
    pub const AV_PORT: Field = f(4, 24, 2);
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
    /// UD AV: remote GID, dwords 8–11.
    pub const AV_GID: usize = 8;
    /// UD: destination QPN.
    pub const DEST_QP: Field = f(12, 0, 24);
    /// UD: Q_Key.
    pub const QKEY: Field = f(13, 0, 32);
    /// UD: data segment dword.
    pub const UD_DATA: usize = 16;
    /// MLX: data segment dword.
    pub const MLX_DATA: usize = 4;
    /// Data segment: byte count.
    pub const DATA_BYTE_COUNT: Field = f(0, 0, 31);
    /// Data segment: L_Key (relative dword 1).
    pub const DATA_LKEY: usize = 1;
    /// Data segment: address (64-bit at relative dwords 2–3).
    pub const DATA_ADDR: usize = 2;
    /// Opcode SEND.
    pub const OPCODE_SEND: u32 = 0x0a;
    /// UD WQE size in 16-byte units.
    pub const UD_DS: u32 = 5;
    /// MLX WQE size in 16-byte units.
    pub const MLX_DS: u32 = 2;
    /// Dwords in a UD WQE.
    pub const DWORDS: usize = 20;
}

/// Receive WQE: two 16-byte scatter entries (documented, reference §2.8).
pub mod recv_wqe {
    /// Stride.
    pub const STRIDE: usize = 32;
    /// L_Key marking an unused scatter entry.
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
        p.set(cqe::OWNER, 1);
        p.set(cqe::S_R, 1);
        p.set(cqe::OPCODE, 0x1e);
        p.set64(2, 0x1122_3344_5566_7788);
        assert_eq!(p.get64(2), 0x1122_3344_5566_7788);
        let mut b = [0u8; 16];
        p.write_be(&mut b);
        assert_eq!(&b[..4], &[0x00, 0x34, 0x56, 0x78]);
        assert_eq!(Prm::<4>::from_be(&b), p);
        // Out-of-range fields read 0 and writes are ignored, never a panic.
        p.set(cqe::OWNER, 1);
        assert_eq!(p.get(eqe::OWNER), 0);
        assert_eq!(Prm::<4>::BYTES, 16);
    }

    #[test]
    fn documented_cqe_byte31_layout() {
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
        e.write_be(&mut b);
        assert_eq!(b[1], 0x09);
        assert_eq!(b[12], 0x20);
    }

    /// Every field of every structure lies inside its structure and inside one dword.
    #[test]
    fn all_fields_fit_their_structures() {
        let tables: &[(&str, usize, &[Field])] = &[
            (
                "query_fw",
                2,
                &[
                    query_fw::FW_REV_MAJOR,
                    query_fw::FW_PAGES,
                    query_fw::FW_REV_MINOR,
                    query_fw::FW_REV_SUBMINOR,
                ],
            ),
            ("vpm", vpm::SIZE / 4, &[vpm::LOG2SIZE]),
            (
                "dev_cap",
                dev_cap::DWORDS,
                &[
                    dev_cap::LOG2_RSVD_QPS,
                    dev_cap::LOG_MAX_QP,
                    dev_cap::LOG2_RSVD_CQS,
                    dev_cap::LOG_MAX_CQ,
                    dev_cap::LOG2_RSVD_EQS,
                    dev_cap::LOG_MAX_EQ,
                    dev_cap::LOG2_RSVD_MTTS,
                    dev_cap::LOG_MAX_MTT,
                    dev_cap::LOG2_RSVD_MRWS,
                    dev_cap::LOG_MAX_MPT,
                    dev_cap::NUM_PORTS,
                    dev_cap::DPDP,
                    dev_cap::NUM_RSVD_UARS,
                    dev_cap::LOG_MAX_MCG,
                    dev_cap::QPC_SZ,
                    dev_cap::CQC_SZ,
                    dev_cap::EQC_SZ,
                    dev_cap::DMPT_SZ,
                    dev_cap::MTT_SZ,
                    dev_cap::CMPT_SZ,
                    dev_cap::AUXC_SZ,
                    dev_cap::ALTC_SZ,
                    dev_cap::MCG_SZ,
                ],
            ),
            (
                "init_hca",
                init_hca::DWORDS,
                &[
                    init_hca::VERSION,
                    init_hca::UDP,
                    init_hca::LOG_NUM_QPS,
                    init_hca::LOG_NUM_CQS,
                    init_hca::LOG_NUM_EQS,
                    init_hca::LOG_DMPT_SZ,
                    init_hca::LOG_MTT_SZ,
                    init_hca::LOG_MCG_ENTRY_SZ,
                    init_hca::LOG_MCG_HASH_SZ,
                    init_hca::LOG_MCG_TABLE_SZ,
                    init_hca::LOG_MAX_UARS,
                ],
            ),
            (
                "mpt",
                mpt::DWORDS,
                &[
                    mpt::LR,
                    mpt::LW,
                    mpt::RR,
                    mpt::RW,
                    mpt::A,
                    mpt::PA,
                    mpt::MEM_KEY,
                    mpt::PD,
                    mpt::LEN64,
                ],
            ),
            ("write_mtt", write_mtt::DWORDS, &[write_mtt::PRESENT]),
            (
                "eqc",
                eqc::DWORDS,
                &[eqc::ST, eqc::OI, eqc::PAGE_OFFSET, eqc::LOG_EQ_SIZE],
            ),
            (
                "cqc",
                cqc::DWORDS,
                &[
                    cqc::ST,
                    cqc::PAGE_OFFSET,
                    cqc::USR_PAGE,
                    cqc::LOG_CQ_SIZE,
                    cqc::C_EQN,
                ],
            ),
            (
                "qpc",
                qpc::DWORDS,
                &[
                    qpc::OPT_PARAM_MASK,
                    qpc::ST,
                    qpc::PM_STATE,
                    qpc::PD,
                    qpc::MTU,
                    qpc::MSG_MAX,
                    qpc::LOG_RQ_SIZE,
                    qpc::LOG_RQ_STRIDE,
                    qpc::LOG_SQ_SIZE,
                    qpc::LOG_SQ_STRIDE,
                    qpc::USR_PAGE,
                    qpc::PKEY_INDEX,
                    qpc::SCHED_QUEUE,
                    qpc::CQN_SND,
                    qpc::CQN_RCV,
                    qpc::PAGE_OFFSET,
                    qpc::NEXT_SEND_PSN,
                    qpc::NEXT_RCV_PSN,
                    qpc::QKEY,
                ],
            ),
            (
                "query_port",
                query_port::DWORDS,
                &[
                    query_port::IB,
                    query_port::ETH,
                    query_port::MAX_MTU,
                    query_port::MAC_H,
                    query_port::MAC_L,
                ],
            ),
            (
                "set_port",
                set_port::DWORDS,
                &[
                    set_port::MMC,
                    set_port::MVC,
                    set_port::MP,
                    set_port::MG,
                    set_port::MTU_CAP,
                    set_port::VL_CAP,
                    set_port::MAX_GID,
                    set_port::MAX_PKEY,
                ],
            ),
            ("mcg", mcg::DWORDS, &[mcg::MEMBERS]),
            (
                "cqe",
                cqe::SIZE / 4,
                &[
                    cqe::QPN,
                    cqe::IMMEDIATE,
                    cqe::SRQ_RQPN,
                    cqe::ML_PATH,
                    cqe::G,
                    cqe::SLID,
                    cqe::SL,
                    cqe::BYTE_CNT,
                    cqe::SYNDROME,
                    cqe::VENDOR_SYNDROME,
                    cqe::WQE_COUNTER,
                    cqe::OPCODE,
                    cqe::IS,
                    cqe::S_R,
                    cqe::OWNER,
                ],
            ),
            (
                "eqe",
                eqe::SIZE / 4,
                &[
                    eqe::SUB_TYPE,
                    eqe::EVENT_TYPE,
                    eqe::PSC_PORT,
                    eqe::PMC_PORT,
                    eqe::CQN,
                    eqe::OWNER,
                ],
            ),
            (
                "send_wqe",
                send_wqe::DWORDS,
                &[
                    send_wqe::OPCODE,
                    send_wqe::OWNER,
                    send_wqe::DS,
                    send_wqe::C,
                    send_wqe::MLX_V15,
                    send_wqe::MLX_RLID,
                    send_wqe::AV_PD,
                    send_wqe::AV_PORT,
                    send_wqe::AV_RLID,
                    send_wqe::AV_G,
                    send_wqe::AV_HOP_LIMIT,
                    send_wqe::AV_MGID_INDEX,
                    send_wqe::AV_FLOW_LABEL,
                    send_wqe::AV_TCLASS,
                    send_wqe::AV_SL,
                    send_wqe::DEST_QP,
                    send_wqe::QKEY,
                ],
            ),
        ];
        for (name, dwords, fields) in tables {
            for f in fields.iter() {
                assert!(f.dw < *dwords, "{name}: {f:?} outside {dwords} dwords");
                assert!(
                    f.width >= 1 && f.lsb + f.width <= 32,
                    "{name}: {f:?} crosses a dword"
                );
            }
            // No two fields of one structure overlap.
            for (i, a) in fields.iter().enumerate() {
                for b in &fields[i + 1..] {
                    let overlap =
                        a.dw == b.dw && a.lsb < b.lsb + b.width && b.lsb < a.lsb + a.width;
                    assert!(!overlap, "{name}: {a:?} overlaps {b:?}");
                }
            }
        }
        // 64-bit fields leave room for both dwords and do not collide with 32-bit ones.
        for (dw, n) in [
            (init_hca::QPC_BASE, init_hca::DWORDS),
            (init_hca::MCG_BASE, init_hca::DWORDS),
            (cqc::MTT_BASE, cqc::DWORDS),
            (cqc::DB_RECORD, cqc::DWORDS),
            (eqc::MTT_BASE, eqc::DWORDS),
            (qpc::RDB_RECORD, qpc::DWORDS),
            (qpc::MTT_BASE, qpc::DWORDS),
            (mpt::LEN, mpt::DWORDS),
        ] {
            assert!(dw + 1 < n);
        }
        assert_eq!(send_wqe::UD_DATA * 4 + 16, send_wqe::UD_DS as usize * 16);
        assert_eq!(recv_wqe::DWORDS * 4, recv_wqe::STRIDE);
    }

    #[test]
    fn documented_send_wqe_layout() {
        let mut p = Prm::<{ send_wqe::DWORDS }>::default();
        p.set(send_wqe::OWNER, 1);
        p.set(send_wqe::OPCODE, send_wqe::OPCODE_SEND);
        p.set(send_wqe::DEST_QP, 0xab_cdef);
        p.set(send_wqe::QKEY, 0x0b1b);
        p.set(send_wqe::AV_G, 1);
        let mut b = [0u8; 80];
        p.write_be(&mut b);
        assert_eq!(&b[..4], &[0x80, 0, 0, 0x0a]);
        assert_eq!(&b[48..52], &[0, 0xab, 0xcd, 0xef]);
        assert_eq!(&b[52..56], &[0, 0, 0x0b, 0x1b]);
        assert_eq!(b[21], 0x80);
        // Q_Key of RTS2RTS sits in mailbox dword 44.
        assert_eq!(qpc::QKEY.dw, 44);
    }
}
