//! A hermon-class (ConnectX) device model: PCI config space, BAR0 (HCR, reset), BAR2 (UAR
//! doorbells), firmware command semantics with PRM status codes, ICM bookkeeping, MTT
//! translation, MPT access checks, EQ/CQ/QP contexts, WQE fetch on doorbells, CQE/EQE
//! generation, a firmware SMA answering MAD_IFC, and UD receive with Q_Key/P_Key checks.
//!
//! Every structure is decoded and encoded with the model's own transcription in
//! [`crate::prm`] (Linux mlx4 byte offsets), never with the driver's layouts. What follows
//! documented behaviour and what is the model's choice is listed in the crate docs. On driver
//! misuse the model logs a warning, counts it in [`Counters::misuse`] and fails the command (or
//! drops the work) — it never panics.

use std::collections::HashMap;

use hca::wire::headers::{GrhRepr, UdPacket, UdPacketRepr};
use hca::wire::mad::{AttrId, Mad, MadMethod, MadStatus, MgmtClass};
use hca::wire::smp::{self, GuidInfo, NodeInfo, PKeyTable, PortInfo, PortState};
use hca::wire::{crc, Gid, Guid, Lid, Qpn, GSI_QKEY};
use log::{debug, warn};
use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use crate::mem::HostMem;
use crate::prm::{self, op, stat, Loc};

/// What the device did, for tests and for the demo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Resets.
    pub resets: u64,
    /// Commands executed.
    pub commands: u64,
    /// Commands that returned a non-zero status.
    pub command_errors: u64,
    /// Driver misuse detected (each also logged as a warning).
    pub misuse: u64,
    /// Send doorbells rung.
    pub doorbells: u64,
    /// Send WQEs executed.
    pub wqes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Packets delivered to a receive WQE.
    pub rx_packets: u64,
    /// CQEs written.
    pub cqes: u64,
    /// Error CQEs written.
    pub error_cqes: u64,
    /// EQEs written.
    pub eqes: u64,
    /// Received packets dropped: bad ICRC or malformed.
    pub rx_bad_packet: u64,
    /// Received packets dropped: P_Key mismatch.
    pub rx_pkey_violation: u64,
    /// Received packets dropped: Q_Key mismatch.
    pub rx_qkey_violation: u64,
    /// Received packets dropped: no receive WQE posted.
    pub rx_no_wqe: u64,
    /// Received packets dropped: port not ACTIVE, wrong DLID, unknown QP or QP not ready.
    pub rx_dropped: u64,
    /// Sends dropped because the port was not ACTIVE.
    pub tx_dropped: u64,
    /// DMA accesses outside host memory.
    pub dma_faults: u64,
    /// CQ overruns.
    pub cq_overruns: u64,
    /// MADs answered by the firmware SMA (MAD_IFC).
    pub mad_ifc: u64,
}

/// What a port is configured to run (a VPI port's setting, as QUERY_PORT reports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortProtocol {
    /// InfiniBand only.
    Ib,
    /// Ethernet only (a VPI port configured for Ethernet).
    Ethernet,
    /// Both, sensed at run time (QUERY_PORT reports both bits).
    Vpi,
}

/// Static description of a simulated HCA.
#[derive(Clone, Debug)]
pub struct HcaSpec {
    /// PCI device id (vendor is Mellanox).
    pub device_id: u16,
    /// Ports (1 or 2).
    pub ports: u8,
    /// Node GUID; port GUIDs are node GUID + port.
    pub node_guid: u64,
    /// Firmware area pages QUERY_FW reports.
    pub fw_pages: u32,
    /// Firmware revision.
    pub fw_rev: (u16, u16, u16),
    /// Command interface revision QUERY_FW reports.
    pub cmd_if_rev: u16,
    /// Board id (PSID) QUERY_ADAPTER reports (up to 16 ASCII bytes).
    pub psid: &'static str,
    /// What each port runs (index = port - 1).
    pub port_protocols: [PortProtocol; 2],
    /// Time from the reset write until config space answers again.
    pub reset_time_ns: u64,
    /// After config space answers, the firmware ignores commands for this long (models the
    /// ConnectX-2 fw 2.9.1200 behaviour behind iPXE issue #1751; a driver without a post-reset
    /// delay times out).
    pub fw_settle_ns: u64,
    /// Command latency.
    pub cmd_latency_ns: u64,
    /// Time from INIT_PORT (with the cable up) until the physical link is up (port INIT).
    pub link_training_ns: u64,
    /// Mapped length of BAR2 (tests set it below 129 pages to catch the iPXE mapping bug).
    pub uar_bar_len: usize,
}

impl HcaSpec {
    /// A ConnectX-2 QDR (MT26428, 0x673c) with the given node GUID, on firmware 2.9.1200 (the
    /// revision of iPXE issue #1751). Its PSID is not public; the model reports none.
    pub fn connectx(node_guid: u64, ports: u8) -> Self {
        Self {
            device_id: 0x673c,
            ports,
            node_guid,
            fw_pages: 24,
            fw_rev: (2, 9, 1200),
            cmd_if_rev: 3,
            psid: "",
            port_protocols: [PortProtocol::Ib; 2],
            reset_time_ns: 5_000_000,
            fw_settle_ns: 200_000_000,
            cmd_latency_ns: 10_000,
            link_training_ns: 20_000_000,
            uar_bar_len: 8 << 20,
        }
    }

    /// A ConnectX-3 VPI (MT27500, 0x1003) as a public `flint query` of one shows it
    /// (blog.swineson.me, "Mellanox ConnectX-3 firmware flashing and configuration for both
    /// Ethernet and InfiniBand in 2021": device 4099, FW 2.42.5000, PSID MT_1090120019), both
    /// ports configured for InfiniBand.
    pub fn connectx3(node_guid: u64, ports: u8) -> Self {
        Self {
            device_id: 0x1003,
            fw_rev: (2, 42, 5000),
            psid: "MT_1090120019",
            ..Self::connectx(node_guid, ports)
        }
    }
}

/// The capabilities the model reports in QUERY_DEV_CAP.
///
/// No public QUERY_DEV_CAP dump of a ConnectX, ConnectX-2 or ConnectX-3 is known, so each
/// value below is one of: a floor implied by code that runs on every such device (the source is
/// named), a value printed in a public header for the InfiniHost III Ex (MT25208, the only
/// entry sizes published; said so), or a model choice (said so). The device's number of ports
/// and its UAR area come from the [`HcaSpec`].
pub mod caps {
    /// log2 QPs: Linux `main.c` asks INIT_HCA for this many QPs on every mlx4 device
    /// (`mod_param_profile.num_qp` 19; the older `default_profile` 1 << 18), so real maxima
    /// are at least that.
    pub const LOG_MAX_QP: u32 = 19;
    /// log2 reserved QPs: model choice (the MT25208 in LKML "Re: mthca and LinuxBIOS", 2005,
    /// reserved 2^10).
    pub const LOG2_RSVD_QPS: u32 = 6;
    /// log2 WQEs per queue: model choice.
    pub const LOG_MAX_QP_SZ: u32 = 14;
    /// log2 SRQs: Linux `main.c` asks for 2^16 (`num_srq`).
    pub const LOG_MAX_SRQS: u32 = 16;
    /// log2 reserved SRQs: model choice.
    pub const LOG2_RSVD_SRQS: u32 = 6;
    /// log2 CQs: Linux `main.c` asks for 2^16 (`num_cq`).
    pub const LOG_MAX_CQ: u32 = 16;
    /// log2 reserved CQs: model choice (the MT25208 dump above also reserved 2^7).
    pub const LOG2_RSVD_CQS: u32 = 7;
    /// log2 CQEs per CQ: model choice.
    pub const LOG_MAX_CQ_SZ: u32 = 22;
    /// log2 EQs: model choice (Linux needs more than the reserved EQs plus one per
    /// completion vector).
    pub const LOG_MAX_EQ: u32 = 9;
    /// log2 reserved EQs: model choice; the count field (iPXE `num_rsvd_eqs`) is left 0, as
    /// on firmware that reports only the log2 (iPXE `hermon_get_cap`'s fallback).
    pub const LOG2_RSVD_EQS: u32 = 4;
    /// log2 dMPTs: Linux `main.c` asks for 2^19 (`num_mpt`).
    pub const LOG_MAX_MPTS: u32 = 19;
    /// log2 reserved MPTs: model choice (the MT25208 dump also reserved 2^4).
    pub const LOG2_RSVD_MRWS: u32 = 4;
    /// log2 MTT entries: Linux `main.c` asks for 2^20 MTT segments (`default_profile.num_mtt`,
    /// "really num mtt segments") of `MLX4_MTT_ENTRY_PER_SEG` (8) entries.
    pub const LOG_MAX_MTTS: u32 = 23;
    /// log2 reserved MTT entries: model choice (the MT25208 dump also reserved 2^4).
    pub const LOG2_RSVD_MTTS: u32 = 4;
    /// log2 multicast groups: Linux `main.c` asks for 2^13 (`num_mcg`).
    pub const LOG_MAX_MCG: u32 = 13;
    /// Reserved UAR pages: model choice. Linux then reserves max(4 × 8, 2^4) = 32 EQs
    /// (`fw.c`, end of `mlx4_QUERY_DEV_CAP`).
    pub const NUM_RSVD_UARS: u32 = 8;
    /// log2 of the smallest page: 12, the largest Linux accepts on 4 KiB hosts (`main.c`:
    /// "HCA minimum page size ... bigger than kernel PAGE_SIZE").
    pub const LOG_PG_SZ: u32 = 12;
    /// Entry sizes: the MT25208 values in iPXE `MT25408_PRM.h`'s QUERY_DEV_CAP comments ("For
    /// the InfiniHost-III-EX MT25208 entry size is ..."); no ConnectX value is public.
    pub const QPC: u32 = 256;
    /// RDMA read context entry size: MT25208 value, as above.
    pub const RDMARC: u32 = 256;
    /// Extended QPC (ALTC) entry size: MT25208 value, as above.
    pub const ALTC: u32 = 32;
    /// Auxiliary context entry size: model choice (no public value at all).
    pub const AUX: u32 = 128;
    /// SRQ context entry size: MT25208 value.
    pub const SRQ: u32 = 32;
    /// CQC entry size: MT25208 value.
    pub const CQC: u32 = 64;
    /// EQC entry size: MT25208 value.
    pub const EQC: u32 = 64;
    /// cMPT entry size: MT25208 value.
    pub const CMPT: u32 = 64;
    /// dMPT entry size: MT25208 value.
    pub const DMPT: u32 = 64;
    /// MTT entry size: MT25208 value (and Linux `MLX4_MTT_FLAG_PRESENT` in a `__be64`).
    pub const MTT: u32 = 8;
    /// Largest IB MTU of a port (IBA encoding 5 = 4096; Linux `mlx4_ib` caps at it).
    pub const PORT_IB_MTU: u32 = 5;
}

/// Side effects of device activity the fabric must carry out.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Packets to transmit: (port, bytes).
    pub tx: Vec<(u8, Vec<u8>)>,
    /// Ports whose INIT_PORT completed (the fabric starts link training).
    pub ports_initialized: Vec<u8>,
    /// Ports closed.
    pub ports_closed: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FwState {
    /// After reset: waiting for MAP_FA/RUN_FW.
    Stopped,
    /// Firmware running; ICM not initialised.
    Running,
    /// INIT_HCA done.
    Initialised,
}

/// The ICM the driver mapped: (ICM virtual address, 4 KiB pages) per MAP_ICM block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IcmMap(pub Vec<(u64, u64)>);

impl IcmMap {
    /// True if every page of `[base, base + len)` lies in some mapped block.
    pub fn mapped(&self, base: u64, len: u64) -> bool {
        let Some(end) = base.checked_add(len) else {
            return false;
        };
        let mut a = base;
        while a < end {
            match self
                .0
                .iter()
                .find(|(va, pages)| a >= *va && a < va + (pages << 12))
            {
                Some((va, pages)) => a = va + (pages << 12),
                None => return false,
            }
        }
        true
    }
}

/// What INIT_HCA configured, decoded with [`prm::init_hca`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InitHca {
    /// Interface version.
    pub version: u32,
    /// log2 QPs.
    pub log_qps: u32,
    /// log2 SRQs.
    pub log_srqs: u32,
    /// log2 CQs.
    pub log_cqs: u32,
    /// log2 EQs.
    pub log_eqs: u32,
    /// log2 RDMA read contexts per QP.
    pub log_rd: u32,
    /// log2 dMPTs.
    pub log_mpts: u32,
    /// log2 multicast entry bytes.
    pub log_mc_entry: u32,
    /// log2 multicast hash size.
    pub log_mc_hash: u32,
    /// log2 multicast table size.
    pub log_mc_table: u32,
    /// QPC base.
    pub qpc: u64,
    /// ALTC base.
    pub altc: u64,
    /// AUXC base.
    pub auxc: u64,
    /// SRQC base.
    pub srqc: u64,
    /// CQC base.
    pub cqc: u64,
    /// EQC base.
    pub eqc: u64,
    /// RDMA read context base.
    pub rdmarc: u64,
    /// Multicast table base.
    pub mc: u64,
    /// dMPT base.
    pub dmpt: u64,
    /// MTT base.
    pub mtt: u64,
    /// cMPT base.
    pub cmpt: u64,
    /// UAR page size code (4 KiB << it).
    pub uar_page_sz: u32,
    /// log2 UAR pages.
    pub log_uars: u32,
    /// Check the port of UD address vectors.
    pub ud_port_check: bool,
}

impl InitHca {
    /// Decodes the INIT_HCA mailbox.
    pub fn decode(b: &[u8]) -> Self {
        use prm::init_hca::*;
        let g = |l: Loc| l.get(b) as u32;
        Self {
            version: g(VERSION),
            log_qps: g(LOG_QP),
            log_srqs: g(LOG_SRQ),
            log_cqs: g(LOG_CQ),
            log_eqs: g(LOG_EQ),
            log_rd: g(LOG_RD),
            log_mpts: g(LOG_MPT_SZ),
            log_mc_entry: g(LOG_MC_ENTRY_SZ),
            log_mc_hash: g(LOG_MC_HASH_SZ),
            log_mc_table: g(LOG_MC_TABLE_SZ),
            qpc: QPC_BASE.get_in_place(b),
            altc: ALTC_BASE.get(b),
            auxc: AUXC_BASE.get(b),
            srqc: SRQC_BASE.get_in_place(b),
            cqc: CQC_BASE.get_in_place(b),
            eqc: EQC_BASE.get_in_place(b),
            rdmarc: RDMARC_BASE.get_in_place(b),
            mc: MC_BASE.get(b),
            dmpt: DMPT_BASE.get(b),
            mtt: MTT_BASE.get(b),
            cmpt: CMPT_BASE.get(b),
            uar_page_sz: g(UAR_PAGE_SZ),
            log_uars: g(LOG_UAR_SZ),
            ud_port_check: FLAG_UD_PORT_CHECK.get(b) == 1,
        }
    }

    /// ICM address of a cMPT entry: `cmpt_base + ((type << MLX4_CMPT_SHIFT) + index) ×
    /// cmpt_entry_sz`.
    pub fn cmpt_entry(&self, ty: u64, index: u32) -> u64 {
        self.cmpt + ((ty << prm::cmpt::SHIFT) + u64::from(index)) * u64::from(caps::CMPT)
    }

    /// The tables INIT_HCA declares: (name, ICM base, bytes). The MTT table has no declared
    /// size; its entries are checked as WRITE_MTT writes them. The RDMA read contexts
    /// (`2^log_qps << log_rd` of them, Linux `profile.c`) exist only when `log_rd` asks for some.
    pub fn regions(&self) -> Vec<(&'static str, u64, u64)> {
        let n = |log: u32, sz: u32| (1u64 << log.min(40)) * u64::from(sz);
        let mut v = vec![
            ("QPC", self.qpc, n(self.log_qps, caps::QPC)),
            ("ALTC", self.altc, n(self.log_qps, caps::ALTC)),
            ("AUXC", self.auxc, n(self.log_qps, caps::AUX)),
            ("SRQC", self.srqc, n(self.log_srqs, caps::SRQ)),
            ("CQC", self.cqc, n(self.log_cqs, caps::CQC)),
            ("EQC", self.eqc, n(self.log_eqs, caps::EQC)),
            ("dMPT", self.dmpt, n(self.log_mpts, caps::DMPT)),
            (
                "MCG",
                self.mc,
                (1u64 << self.log_mc_table.min(40)) << self.log_mc_entry.min(20),
            ),
            (
                "QP cMPT",
                self.cmpt_entry(prm::cmpt::TYPE_QP, 0),
                n(self.log_qps, caps::CMPT),
            ),
            (
                "SRQ cMPT",
                self.cmpt_entry(prm::cmpt::TYPE_SRQ, 0),
                n(self.log_srqs, caps::CMPT),
            ),
            (
                "CQ cMPT",
                self.cmpt_entry(prm::cmpt::TYPE_CQ, 0),
                n(self.log_cqs, caps::CMPT),
            ),
            (
                "EQ cMPT",
                self.cmpt_entry(prm::cmpt::TYPE_EQ, 0),
                n(self.log_eqs, caps::CMPT),
            ),
        ];
        if self.log_rd > 0 {
            v.push((
                "RDMARC",
                self.rdmarc,
                n(self.log_qps + self.log_rd, caps::RDMARC),
            ));
        }
        v
    }

    /// Bytes of one UAR page.
    pub fn uar_page_bytes(&self) -> u64 {
        (prm::regs::UAR_PAGE_BASE as u64) << self.uar_page_sz.min(20)
    }
}

/// What real firmware checks of INIT_HCA, as the model enforces it: the version, log sizes
/// between the reserved counts and the maxima QUERY_DEV_CAP reported, every table (the four
/// cMPT tables and the SRQC included) inside mapped ICM and no two overlapping, a multicast
/// entry of more than 32 bytes (PRM comment: "must be greater than 5") and a UAR range that
/// fits the UAR area (1 MiB << `uar_sz`). `Err` carries the reason; the command fails with
/// BAD_PARAM.
pub fn check_init_hca(p: &InitHca, icm: &IcmMap, uar_area: u64) -> Result<(), String> {
    if p.version != 2 {
        return Err(format!("version {} is not 2", p.version));
    }
    let logs = [
        ("QP", p.log_qps, caps::LOG2_RSVD_QPS, caps::LOG_MAX_QP),
        ("SRQ", p.log_srqs, caps::LOG2_RSVD_SRQS, caps::LOG_MAX_SRQS),
        ("CQ", p.log_cqs, caps::LOG2_RSVD_CQS, caps::LOG_MAX_CQ),
        ("EQ", p.log_eqs, caps::LOG2_RSVD_EQS, caps::LOG_MAX_EQ),
        ("dMPT", p.log_mpts, caps::LOG2_RSVD_MRWS, caps::LOG_MAX_MPTS),
        ("MCG", p.log_mc_table, 0, caps::LOG_MAX_MCG),
    ];
    for (name, log, rsvd, max) in logs {
        if log > max {
            return Err(format!("log2 {name} table {log} exceeds the maximum {max}"));
        }
        if log < rsvd {
            return Err(format!(
                "log2 {name} table {log} is smaller than the reserved 2^{rsvd}"
            ));
        }
    }
    if p.log_mc_hash > p.log_mc_table {
        return Err("multicast hash larger than the multicast table".into());
    }
    if p.log_mc_entry <= 5 || p.log_mc_entry > 12 {
        return Err(format!(
            "log2 multicast entry size {} outside 6..=12",
            p.log_mc_entry
        ));
    }
    let regions = p.regions();
    for (name, base, len) in &regions {
        if !icm.mapped(*base, *len) {
            return Err(format!(
                "{name} table {base:#x}+{len:#x} is not in mapped ICM"
            ));
        }
    }
    for (i, (a, ab, al)) in regions.iter().enumerate() {
        for (b, bb, bl) in &regions[i + 1..] {
            if ab < &(bb + bl) && bb < &(ab + al) {
                return Err(format!("{a} table overlaps {b} table"));
            }
        }
    }
    let uars = (1u64 << p.log_uars) * p.uar_page_bytes();
    if uars > uar_area {
        return Err(format!(
            "{} UAR pages of {} bytes exceed the UAR area of {uar_area:#x} bytes",
            1u64 << p.log_uars,
            p.uar_page_bytes()
        ));
    }
    if 1u32 << p.log_uars <= caps::NUM_RSVD_UARS {
        return Err("no UAR page left above the reserved ones".into());
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
struct Mpt {
    /// The key as the entry holds it (hardware-index form).
    key: u32,
    pd: u32,
    region: bool,
    local_read: bool,
    local_write: bool,
    start: u64,
    len: u64,
    len64: bool,
}

#[derive(Clone, Copy, Debug)]
struct EqCtx {
    mtt_base: u64,
    log_page: u32,
    log_size: u32,
    page_offset: u64,
    pi: u32,
    ci: u32,
    mapped: bool,
}

#[derive(Clone, Copy, Debug)]
struct CqCtx {
    mtt_base: u64,
    log_page: u32,
    log_size: u32,
    page_offset: u64,
    pi: u32,
    db_record: u64,
    eqn: u32,
    usr_page: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QpState {
    Init,
    Rtr,
    Rts,
}

#[derive(Clone, Copy, Debug)]
struct QpCtx {
    qpn: u32,
    mlx: bool,
    state: QpState,
    port: u8,
    pd: u32,
    usr_page: u32,
    cqn_snd: u32,
    cqn_rcv: u32,
    log_sq: u32,
    log_rq: u32,
    log_sq_stride: u32,
    log_rq_stride: u32,
    mtt_base: u64,
    log_page: u32,
    page_offset: u64,
    rdb: u64,
    qkey: u32,
    mtu: u32,
    sq_ci: u32,
    rq_ci: u32,
    psn: u32,
}

impl QpCtx {
    fn sq_stride(&self) -> u64 {
        16 << self.log_sq_stride
    }
    fn rq_stride(&self) -> u64 {
        16 << self.log_rq_stride
    }
    /// Offsets of the send and receive rings in the WQE buffer: the queue with the larger
    /// stride first (Linux `hw/mlx4/qp.c` `set_kernel_sq_size`), the send queue first on a
    /// tie.
    fn ring_offsets(&self) -> (u64, u64) {
        let sq_bytes = (1u64 << self.log_sq) * self.sq_stride();
        let rq_bytes = (1u64 << self.log_rq) * self.rq_stride();
        if self.log_rq_stride > self.log_sq_stride {
            (rq_bytes, 0)
        } else {
            (0, sq_bytes)
        }
    }
}

/// Per-port model state (what the firmware SMA reports, set by the fabric's SM).
#[derive(Clone, Debug)]
pub struct PortModel {
    /// INIT_PORT done.
    pub initialised: bool,
    /// The cable/link is up (fabric side).
    pub cable_up: bool,
    /// PortInfo PortState.
    pub state: PortState,
    /// LID.
    pub lid: u16,
    /// SM LID.
    pub sm_lid: u16,
    /// SM SL.
    pub sm_sl: u8,
    /// GID prefix.
    pub gid_prefix: u64,
    /// P_Key table.
    pub pkeys: Vec<u16>,
    /// Neighbour MTU (IB encoding).
    pub mtu: u8,
    /// MTU cap from SET_PORT.
    pub mtu_cap: u8,
}

impl Default for PortModel {
    fn default() -> Self {
        Self {
            initialised: false,
            cable_up: false,
            state: PortState::DOWN,
            lid: 0,
            sm_lid: 0,
            sm_sl: 0,
            gid_prefix: 0xfe80_0000_0000_0000,
            pkeys: vec![0xffff],
            mtu: 4,
            mtu_cap: 4,
        }
    }
}

/// The device.
#[derive(Debug)]
pub struct Device {
    /// Static description.
    pub spec: HcaSpec,
    /// Counters.
    pub counters: Counters,
    /// Ports (index = port - 1).
    pub ports: Vec<PortModel>,
    config: [u32; 64],
    config_ready_at: u64,
    fw_ready_at: u64,
    /// The HCR's bytes as the driver wrote them (big-endian dwords).
    hcr: [u8; prm::hcr::SIZE],
    /// A command is executing (go set, completion scheduled).
    pub cmd_busy: bool,
    /// Fault: the firmware stops completing commands.
    pub hang_commands: bool,
    /// Fault: fail the next command with this opcode with this status.
    pub fail_next: HashMap<u16, u8>,
    /// Fault: events are not written to the EQ (models firmware that sends none).
    pub suppress_events: bool,
    fw: FwState,
    fa_pages: u64,
    icm_size: u64,
    aux_pages_needed: u64,
    aux_pages: u64,
    icm: IcmMap,
    init: InitHca,
    mpts: HashMap<u32, Mpt>,
    mtt: HashMap<u64, u64>,
    eqs: HashMap<u32, EqCtx>,
    event_eq: Option<u32>,
    cqs: HashMap<u32, CqCtx>,
    qps: HashMap<u32, QpCtx>,
    special_base: Option<u32>,
    mcg: HashMap<u32, Vec<u8>>,
}

fn be_to_mmio(v: u32) -> u32 {
    u32::from_le_bytes(v.to_be_bytes())
}

fn mmio_to_be(v: u32) -> u32 {
    u32::from_be_bytes(v.to_le_bytes())
}

/// Linux `mr.c` `key_to_hw_index`: the MPT entry holds the key rotated right by 8.
fn key_to_hw_index(key: u32) -> u32 {
    key.rotate_right(8)
}

impl Device {
    /// A device in its power-on state.
    pub fn new(spec: HcaSpec) -> Self {
        let mut config = [0u32; 64];
        config[0] = u32::from(hca::pci::MELLANOX_VENDOR_ID) | (u32::from(spec.device_id) << 16);
        config[1] = 0x0010_0006;
        config[2] = 0x0c06_0000;
        let ports = (0..spec.ports.clamp(1, 2))
            .map(|_| PortModel::default())
            .collect();
        Self {
            spec,
            counters: Counters::default(),
            ports,
            config,
            config_ready_at: 0,
            fw_ready_at: 0,
            hcr: [0; prm::hcr::SIZE],
            cmd_busy: false,
            hang_commands: false,
            fail_next: HashMap::new(),
            suppress_events: false,
            fw: FwState::Stopped,
            fa_pages: 0,
            icm_size: 0,
            aux_pages_needed: 0,
            aux_pages: 0,
            icm: IcmMap::default(),
            init: InitHca::default(),
            mpts: HashMap::new(),
            mtt: HashMap::new(),
            eqs: HashMap::new(),
            event_eq: None,
            cqs: HashMap::new(),
            qps: HashMap::new(),
            special_base: None,
            mcg: HashMap::new(),
        }
    }

    /// Fault: changes every memory key, so WQEs using the old L_Key fail with a local
    /// protection error.
    pub fn scramble_keys(&mut self) {
        for m in self.mpts.values_mut() {
            m.key ^= 0x00ff_0000;
        }
    }

    /// Port GUID of `port` (node GUID + port number).
    pub fn port_guid(&self, port: u8) -> Guid {
        Guid::from_u64(self.spec.node_guid + u64::from(port))
    }

    /// Port GID.
    pub fn port_gid(&self, port: u8) -> Gid {
        let p = &self.ports[usize::from(port - 1)];
        Gid::from_parts(p.gid_prefix, self.port_guid(port))
    }

    fn misuse(&mut self, what: &str) {
        warn!("hca-sim: driver misuse: {what}");
        self.counters.misuse += 1;
    }

    fn protocol(&self, port: u8) -> PortProtocol {
        self.spec
            .port_protocols
            .get(usize::from(port).wrapping_sub(1))
            .copied()
            .unwrap_or(PortProtocol::Ib)
    }

    /// The UAR area QUERY_DEV_CAP reports: 1 MiB << uar_sz, the BAR2 length rounded down.
    fn uar_sz(&self) -> u32 {
        let mib = (self.spec.uar_bar_len >> 20).max(1) as u64;
        63 - mib.leading_zeros()
    }

    /// PCI config read.
    pub fn config_read(&mut self, now: u64, off: u16) -> u32 {
        if now < self.config_ready_at {
            return u32::MAX;
        }
        match self.config.get(usize::from(off / 4)) {
            Some(v) if off % 4 == 0 => *v,
            _ => {
                self.misuse("unaligned or out-of-range config read");
                u32::MAX
            }
        }
    }

    /// PCI config write (ids are read-only).
    pub fn config_write(&mut self, now: u64, off: u16, v: u32) {
        if now < self.config_ready_at {
            self.misuse("config write while the device is in reset");
            return;
        }
        if off == 0 || off % 4 != 0 || usize::from(off / 4) >= self.config.len() {
            return;
        }
        self.config[usize::from(off / 4)] = v;
    }

    fn reset(&mut self, now: u64) {
        let spec = self.spec.clone();
        let counters = self.counters;
        let cables: Vec<bool> = self.ports.iter().map(|p| p.cable_up).collect();
        let fail_next = std::mem::take(&mut self.fail_next);
        let hang = self.hang_commands;
        let suppress = self.suppress_events;
        *self = Device::new(spec);
        self.suppress_events = suppress;
        self.counters = counters;
        self.counters.resets += 1;
        self.fail_next = fail_next;
        self.hang_commands = hang;
        for (p, c) in self.ports.iter_mut().zip(cables) {
            p.cable_up = c;
        }
        self.config_ready_at = now + self.spec.reset_time_ns;
        self.fw_ready_at = self.config_ready_at + self.spec.fw_settle_ns;
        debug!("hca-sim: reset");
    }

    fn hcr_get(&self, l: Loc) -> u64 {
        l.get(&self.hcr)
    }

    /// MMIO read.
    pub fn mmio_read(&mut self, now: u64, bar: u8, off: usize) -> u32 {
        if now < self.config_ready_at {
            return u32::MAX;
        }
        let hcr = prm::hcr::BASE..prm::hcr::BASE + prm::hcr::SIZE;
        match bar {
            0 if hcr.contains(&off) && off % 4 == 0 => {
                let i = off - prm::hcr::BASE;
                let d = Loc::be32(i).get(&self.hcr) as u32;
                be_to_mmio(d)
            }
            0 | 2 => 0,
            _ => {
                self.misuse("read of an unmapped BAR");
                u32::MAX
            }
        }
    }

    /// MMIO write. Returns true when a command was started (the caller schedules completion).
    pub fn mmio_write(
        &mut self,
        now: u64,
        bar: u8,
        off: usize,
        raw: u32,
        mem: &HostMem,
        out: &mut Outbox,
    ) -> bool {
        let v = mmio_to_be(raw);
        if now < self.config_ready_at {
            self.misuse("MMIO write while the device is in reset");
            return false;
        }
        let ctrl = prm::hcr::BASE + prm::hcr::CTRL_OFFSET;
        match bar {
            0 if off == prm::regs::RESET => {
                if v.to_be_bytes()[3] & prm::regs::RESET_BIT_BYTE3 != 0 {
                    self.reset(now);
                } else {
                    self.misuse("bad reset value");
                }
                false
            }
            0 if (prm::hcr::BASE..ctrl).contains(&off) && off % 4 == 0 => {
                if self.cmd_busy {
                    self.misuse("HCR written while a command is in flight");
                    return false;
                }
                Loc::be32(off - prm::hcr::BASE).put(&mut self.hcr, u64::from(v));
                false
            }
            0 if off == ctrl => {
                if self.cmd_busy {
                    self.misuse("go written while a command is in flight");
                    return false;
                }
                Loc::be32(prm::hcr::CTRL_OFFSET).put(&mut self.hcr, u64::from(v));
                if self.hcr_get(prm::hcr::GO) == 0 {
                    self.misuse("HCR control written without go");
                    return false;
                }
                self.cmd_busy = true;
                if now < self.fw_ready_at {
                    // The firmware is still settling after reset: the command is lost.
                    warn!(
                        "hca-sim: command {:#x} issued before firmware settled",
                        self.hcr_get(prm::hcr::OPCODE)
                    );
                    return false;
                }
                !self.hang_commands
            }
            2 => {
                self.uar_write(off, v, mem, out);
                false
            }
            _ => {
                self.misuse(&format!("MMIO write to BAR{bar} offset {off:#x}"));
                false
            }
        }
    }

    /// A write to a UAR page: the page size and count are those INIT_HCA set.
    fn uar_write(&mut self, off: usize, v: u32, mem: &HostMem, out: &mut Outbox) {
        if self.fw != FwState::Initialised {
            self.misuse(&format!("UAR write at {off:#x} before INIT_HCA"));
            return;
        }
        let page_bytes = self.init.uar_page_bytes();
        let page = off as u64 / page_bytes;
        let at = (off as u64 % page_bytes) as usize;
        if page >= 1u64 << self.init.log_uars {
            self.misuse(&format!(
                "UAR write at {off:#x}: page {page} beyond the {} INIT_HCA declared",
                1u64 << self.init.log_uars
            ));
            return;
        }
        if at == prm::regs::SEND_DOORBELL {
            self.counters.doorbells += 1;
            let qpn = v >> 8;
            self.process_sq(qpn, page as u32, mem, out);
        } else if (prm::regs::EQ_DOORBELL..prm::regs::EQ_DOORBELL + 32).contains(&at) && at % 8 == 0
        {
            let eqn = (page * 4) as u32 + ((at - prm::regs::EQ_DOORBELL) / 8) as u32;
            match self.eqs.get_mut(&eqn) {
                Some(eq) => eq.ci = v & 0x00ff_ffff,
                None => self.misuse("EQ doorbell for an unknown EQ"),
            }
        } else {
            self.misuse(&format!("UAR write at page {page} offset {at:#x}"));
        }
    }

    /// Completes the command in the HCR (called by the fabric after the command latency).
    pub fn complete_command(&mut self, mem: &HostMem, out: &mut Outbox) {
        if !self.cmd_busy {
            return;
        }
        let opcode = self.hcr_get(prm::hcr::OPCODE) as u16;
        let op_mod = self.hcr_get(prm::hcr::OPCODE_MODIFIER) as u8;
        self.counters.commands += 1;
        let status = match self.fail_next.remove(&opcode) {
            Some(s) => s,
            None => match self.exec(opcode, op_mod, mem, out) {
                Ok(()) => 0,
                Err(s) => s,
            },
        };
        if status != 0 {
            self.counters.command_errors += 1;
            debug!("hca-sim: command {opcode:#x} -> status {status:#x}");
        }
        prm::hcr::GO.put(&mut self.hcr, 0);
        prm::hcr::STATUS.put(&mut self.hcr, u64::from(status));
        self.cmd_busy = false;
    }

    fn in_param(&self) -> u64 {
        self.hcr_get(prm::hcr::IN_PARAM)
    }

    fn in_mod(&self) -> u32 {
        self.hcr_get(prm::hcr::IN_MODIFIER) as u32
    }

    fn out_param(&self) -> u64 {
        self.hcr_get(prm::hcr::OUT_PARAM)
    }

    /// Reads `len` bytes of the input mailbox.
    fn read_mbox(&mut self, mem: &HostMem, len: usize) -> Result<Vec<u8>, u8> {
        let mut b = vec![0u8; len];
        if mem.read(self.in_param(), &mut b).is_err() {
            self.counters.dma_faults += 1;
            self.misuse("input mailbox outside host memory");
            return Err(stat::BAD_PARAM);
        }
        Ok(b)
    }

    /// Writes the output mailbox.
    fn write_out_mbox(&mut self, mem: &HostMem, bytes: &[u8]) -> Result<(), u8> {
        if mem.write(self.out_param(), bytes).is_err() {
            self.counters.dma_faults += 1;
            self.misuse("output mailbox outside host memory");
            return Err(stat::BAD_PARAM);
        }
        Ok(())
    }

    fn set_out_imm(&mut self, v: u64) {
        prm::hcr::OUT_PARAM.put(&mut self.hcr, v);
    }

    fn need(&mut self, st: FwState, what: &str) -> Result<(), u8> {
        if self.fw != st {
            self.misuse(&format!("{what} in firmware state {:?}", self.fw));
            return Err(stat::BAD_SYS_STATE);
        }
        Ok(())
    }

    fn port_arg(&mut self, in_mod: u32) -> Result<u8, u8> {
        if in_mod == 0 || in_mod as usize > self.ports.len() {
            self.misuse("bad port number");
            return Err(stat::BAD_PARAM);
        }
        Ok(in_mod as u8)
    }

    fn map_entry(&mut self, mem: &HostMem) -> Result<(u64, u64, u64), u8> {
        let b = self.read_mbox(mem, prm::vpm::SIZE)?;
        if self.in_mod() != 1 {
            self.misuse("mapping commands take exactly one entry here");
            return Err(stat::BAD_PARAM);
        }
        let log = prm::vpm::LOG_SIZE.get(&b);
        let pa = prm::vpm::ADDR.get_in_place(&b);
        let va = prm::vpm::VIRT.get_in_place(&b);
        let pages = 1u64 << log.min(40);
        if pa & ((pages << 12) - 1) != 0 || va & ((pages << 12) - 1) != 0 {
            self.misuse("mapping block not naturally aligned");
            return Err(stat::BAD_PARAM);
        }
        if !mem.contains(pa, (pages as usize) << 12) {
            self.counters.dma_faults += 1;
            self.misuse("mapping block outside host memory");
            return Err(stat::BAD_PARAM);
        }
        Ok((va, pa, pages))
    }

    /// Checks that the ICM behind a context or cMPT entry is mapped (the firmware reads and
    /// writes it there).
    fn icm_entry(&mut self, what: &str, addr: u64, len: u32) -> Result<(), u8> {
        if self.icm.mapped(addr, u64::from(len)) {
            Ok(())
        } else {
            self.misuse(&format!("{what} at ICM {addr:#x} is not mapped"));
            Err(stat::ICM_ERROR)
        }
    }

    /// Translates `offset` into a buffer described by an MTT base (a byte offset into the MTT
    /// table, as contexts hold it) and a page size (4 KiB << `log_page`).
    fn translate(&mut self, mtt_base: u64, log_page: u32, offset: u64) -> Option<u64> {
        let page = 4096u64 << log_page.min(20);
        let idx = mtt_base / u64::from(caps::MTT) + offset / page;
        match self.mtt.get(&idx) {
            Some(pa) => Some(pa + offset % page),
            None => {
                self.misuse(&format!("access through unwritten MTT entry {idx}"));
                None
            }
        }
    }

    /// An L_Key use by a WQE of a QP in protection domain `pd`: the MPT it names must exist
    /// with the same key variant, be a region, share the PD, grant local read (a gather) or
    /// local write (a scatter) and cover the range. Anything else is a local protection error
    /// (Linux `MLX4_CQE_SYNDROME_LOCAL_PROT_ERR`).
    fn check_lkey(&self, lkey: u32, pd: u32, write: bool, addr: u64, len: u64) -> Result<(), u8> {
        let hw = key_to_hw_index(lkey);
        let index = hw & ((1u32 << self.init.log_mpts.min(31)) - 1);
        let Some(m) = self.mpts.get(&index) else {
            debug!("hca-sim: L_Key {lkey:#x}: no MPT at index {index:#x}");
            return Err(prm::cqe::SYND_LOCAL_PROT);
        };
        let why = if m.key != hw {
            "key variant differs"
        } else if !m.region {
            "MPT is a window, not a region"
        } else if m.pd != pd {
            "PD differs from the QP's"
        } else if write && !m.local_write {
            "no local write access"
        } else if !write && !m.local_read {
            "no local read access"
        } else if !m.len64
            && (addr < m.start || addr.saturating_add(len) > m.start.saturating_add(m.len))
        {
            "outside the region"
        } else {
            return Ok(());
        };
        debug!("hca-sim: L_Key {lkey:#x}: {why}");
        Err(prm::cqe::SYND_LOCAL_PROT)
    }

    fn qp_key(&self, qpn: u32) -> u32 {
        qpn & ((1u32 << self.init.log_qps.min(24)) - 1)
    }

    fn exec(&mut self, opcode: u16, op_mod: u8, mem: &HostMem, out: &mut Outbox) -> Result<(), u8> {
        match opcode {
            op::QUERY_FW => {
                use prm::query_fw::*;
                let mut b = [0u8; SIZE];
                FW_PAGES.put(&mut b, u64::from(self.spec.fw_pages));
                FW_VER_MAJOR.put(&mut b, u64::from(self.spec.fw_rev.0));
                FW_VER_MINOR.put(&mut b, u64::from(self.spec.fw_rev.1));
                FW_VER_SUBMINOR.put(&mut b, u64::from(self.spec.fw_rev.2));
                CMD_IF_REV.put(&mut b, u64::from(self.spec.cmd_if_rev));
                self.write_out_mbox(mem, &b)
            }
            op::MAP_FA => {
                self.need(FwState::Stopped, "MAP_FA")?;
                let (_, _, pages) = self.map_entry(mem)?;
                self.fa_pages += pages;
                Ok(())
            }
            op::RUN_FW => {
                self.need(FwState::Stopped, "RUN_FW")?;
                if self.fa_pages < u64::from(self.spec.fw_pages) {
                    self.misuse("RUN_FW before the firmware area is fully mapped");
                    return Err(stat::BAD_SYS_STATE);
                }
                self.fw = FwState::Running;
                Ok(())
            }
            op::QUERY_DEV_CAP => {
                if self.fw == FwState::Stopped {
                    self.misuse("QUERY_DEV_CAP before RUN_FW");
                    return Err(stat::BAD_SYS_STATE);
                }
                let b = self.dev_cap();
                self.write_out_mbox(mem, &b)
            }
            op::QUERY_ADAPTER => {
                if self.fw == FwState::Stopped {
                    self.misuse("QUERY_ADAPTER before RUN_FW");
                    return Err(stat::BAD_SYS_STATE);
                }
                use prm::query_adapter::*;
                let mut b = [0u8; SIZE];
                INTA_PIN.put(&mut b, 0);
                let mut psid = [0u8; 16];
                let n = self.spec.psid.len().min(16);
                psid[..n].copy_from_slice(&self.spec.psid.as_bytes()[..n]);
                for (l, c) in BOARD_ID.iter().zip(psid.chunks_exact(4)) {
                    // Each dword byte-reversed, as `get_board_id` undoes it.
                    l.put(
                        &mut b,
                        u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                    );
                }
                self.write_out_mbox(mem, &b)
            }
            op::SET_ICM_SIZE => {
                self.need(FwState::Running, "SET_ICM_SIZE")?;
                let size = self.in_param();
                if size == 0 || size % 4096 != 0 {
                    self.misuse("ICM size not a multiple of 4 KiB");
                    return Err(stat::BAD_PARAM);
                }
                self.icm_size = size;
                // One AUX page per 64 MiB of ICM virtual extent, at least one (a model
                // choice: no source gives the rule; the extent includes the sparse cMPT spans).
                self.aux_pages_needed = size.div_ceil(64 << 20).max(1);
                self.set_out_imm(self.aux_pages_needed);
                Ok(())
            }
            op::MAP_ICM_AUX => {
                self.need(FwState::Running, "MAP_ICM_AUX")?;
                let (_, _, pages) = self.map_entry(mem)?;
                self.aux_pages += pages;
                Ok(())
            }
            op::MAP_ICM => {
                self.need(FwState::Running, "MAP_ICM")?;
                if self.aux_pages < self.aux_pages_needed {
                    self.misuse("MAP_ICM before ICM AUX is mapped");
                    return Err(stat::BAD_SYS_STATE);
                }
                let (va, _, pages) = self.map_entry(mem)?;
                if va + (pages << 12) > self.icm_size {
                    self.misuse("MAP_ICM beyond SET_ICM_SIZE");
                    return Err(stat::BAD_PARAM);
                }
                if self.icm.mapped(va, 4096)
                    || self
                        .icm
                        .0
                        .iter()
                        .any(|(v, _)| *v > va && *v < va + (pages << 12))
                {
                    self.misuse("MAP_ICM over ICM already mapped");
                    return Err(stat::BAD_PARAM);
                }
                self.icm.0.push((va, pages));
                Ok(())
            }
            op::INIT_HCA => {
                self.need(FwState::Running, "INIT_HCA")?;
                let b = self.read_mbox(mem, prm::init_hca::SIZE)?;
                let p = InitHca::decode(&b);
                let uar_area = 1u64 << (20 + self.uar_sz());
                if let Err(why) = check_init_hca(&p, &self.icm, uar_area) {
                    self.misuse(&format!("INIT_HCA refused: {why}"));
                    return Err(stat::BAD_PARAM);
                }
                self.init = p;
                self.fw = FwState::Initialised;
                Ok(())
            }
            op::CLOSE_HCA => {
                self.need(FwState::Initialised, "CLOSE_HCA")?;
                self.fw = FwState::Running;
                self.qps.clear();
                self.cqs.clear();
                self.eqs.clear();
                Ok(())
            }
            _ => {
                self.need(FwState::Initialised, &format!("command {opcode:#x}"))?;
                self.exec_initialised(opcode, op_mod, mem, out)
            }
        }
    }

    /// The QUERY_DEV_CAP output.
    fn dev_cap(&self) -> [u8; prm::dev_cap::SIZE] {
        use prm::dev_cap::*;
        let mut b = [0u8; SIZE];
        let mut put = |l: Loc, v: u32| l.put(&mut b, u64::from(v));
        put(MAX_QP, caps::LOG_MAX_QP);
        put(RSVD_QP, caps::LOG2_RSVD_QPS);
        put(MAX_QP_SZ, caps::LOG_MAX_QP_SZ);
        put(MAX_SRQ, caps::LOG_MAX_SRQS);
        put(RSVD_SRQ, caps::LOG2_RSVD_SRQS);
        put(MAX_CQ, caps::LOG_MAX_CQ);
        put(RSVD_CQ, caps::LOG2_RSVD_CQS);
        put(MAX_CQ_SZ, caps::LOG_MAX_CQ_SZ);
        put(NUM_RSVD_EQS, 0);
        put(MAX_EQ, caps::LOG_MAX_EQ);
        put(RSVD_EQ, caps::LOG2_RSVD_EQS);
        put(MAX_MPT, caps::LOG_MAX_MPTS);
        put(MAX_MTT_SEG, caps::LOG_MAX_MTTS);
        put(RSVD_MRW, caps::LOG2_RSVD_MRWS);
        put(RSVD_MTT, caps::LOG2_RSVD_MTTS);
        put(NUM_PORTS, self.ports.len() as u32);
        put(FLAG_UD, 1);
        put(PAGE_SZ, caps::LOG_PG_SZ);
        put(UAR_SZ, self.uar_sz());
        put(RSVD_UAR, caps::NUM_RSVD_UARS);
        put(MAX_MCG, caps::LOG_MAX_MCG);
        put(RDMARC_ENTRY_SZ, caps::RDMARC);
        put(QPC_ENTRY_SZ, caps::QPC);
        put(ALTC_ENTRY_SZ, caps::ALTC);
        put(AUX_ENTRY_SZ, caps::AUX);
        put(CQC_ENTRY_SZ, caps::CQC);
        put(EQC_ENTRY_SZ, caps::EQC);
        put(C_MPT_ENTRY_SZ, caps::CMPT);
        put(SRQ_ENTRY_SZ, caps::SRQ);
        put(D_MPT_ENTRY_SZ, caps::DMPT);
        put(MTT_ENTRY_SZ, caps::MTT);
        b
    }

    /// Takes back a context with an optional output mailbox: op_mod 0 writes `ctx` to the
    /// output mailbox, which must then be real memory; op_mod 1 writes nothing (Linux `cq.c`
    /// `mlx4_HW2SW_CQ`: `mailbox ? 0 : 1`; `eq.c` `mlx4_HW2SW_EQ` uses 1).
    fn hand_back(&mut self, what: &str, op_mod: u8, mem: &HostMem, ctx: &[u8]) -> Result<(), u8> {
        match op_mod {
            0 => {
                if self.out_param() == 0 {
                    self.misuse(&format!(
                        "{what} with op_mod 0 and no output mailbox (the context would be \
                         written to bus address 0)"
                    ));
                    return Err(stat::BAD_PARAM);
                }
                self.write_out_mbox(mem, ctx)
            }
            1 => Ok(()),
            m => {
                self.misuse(&format!("{what} with op_mod {m}"));
                Err(stat::BAD_PARAM)
            }
        }
    }

    fn exec_initialised(
        &mut self,
        opcode: u16,
        op_mod: u8,
        mem: &HostMem,
        out: &mut Outbox,
    ) -> Result<(), u8> {
        let in_mod = self.in_mod();
        match opcode {
            op::SW2HW_MPT => self.sw2hw_mpt(in_mod, mem),
            op::HW2SW_MPT => {
                // Linux `mr.c` `mlx4_HW2SW_MPT`: op_mod `!mailbox`.
                let Some(m) = self.mpts.get(&in_mod).copied() else {
                    self.misuse("HW2SW_MPT on an MPT in software ownership");
                    return Err(stat::BAD_RES_STATE);
                };
                let mut b = [0u8; prm::mpt::SIZE];
                prm::mpt::KEY.put(&mut b, u64::from(m.key));
                prm::mpt::PD.put(&mut b, u64::from(m.pd));
                self.hand_back("HW2SW_MPT", op_mod, mem, &b)?;
                self.mpts.remove(&in_mod);
                Ok(())
            }
            op::WRITE_MTT => self.write_mtt(in_mod, mem),
            op::SW2HW_EQ => self.sw2hw_eq(in_mod, mem),
            op::MAP_EQ => {
                let eqn = in_mod & 0x3ff;
                let unmap = in_mod & (1 << 31) != 0;
                match self.eqs.get_mut(&eqn) {
                    Some(eq) => {
                        eq.mapped = !unmap;
                        self.event_eq = if unmap { None } else { Some(eqn) };
                        Ok(())
                    }
                    None => {
                        self.misuse("MAP_EQ on an unknown EQ");
                        Err(stat::BAD_RES_STATE)
                    }
                }
            }
            op::HW2SW_EQ => {
                let Some(eq) = self.eqs.get(&in_mod).copied() else {
                    self.misuse("HW2SW_EQ on an EQ in software ownership");
                    return Err(stat::BAD_RES_STATE);
                };
                if self.cqs.values().any(|c| c.eqn == in_mod) {
                    self.misuse("HW2SW_EQ on an EQ a CQ still reports to");
                    return Err(stat::RESOURCE_BUSY);
                }
                let mut b = [0u8; prm::eqc::SIZE];
                prm::eqc::LOG_EQ_SIZE.put(&mut b, u64::from(eq.log_size));
                self.hand_back("HW2SW_EQ", op_mod, mem, &b)?;
                if self.event_eq == Some(in_mod) {
                    self.event_eq = None;
                }
                self.eqs.remove(&in_mod);
                Ok(())
            }
            op::SW2HW_CQ => self.sw2hw_cq(in_mod, mem),
            op::HW2SW_CQ => {
                let Some(cq) = self.cqs.get(&in_mod).copied() else {
                    self.misuse("HW2SW_CQ on a CQ in software ownership");
                    return Err(stat::BAD_RES_STATE);
                };
                if self
                    .qps
                    .values()
                    .any(|q| q.cqn_snd == in_mod || q.cqn_rcv == in_mod)
                {
                    self.misuse("HW2SW_CQ on a CQ a QP still uses");
                    return Err(stat::RESOURCE_BUSY);
                }
                let b = encode_cqc(&cq);
                self.hand_back("HW2SW_CQ", op_mod, mem, &b)?;
                self.cqs.remove(&in_mod);
                Ok(())
            }
            op::CONF_SPECIAL_QP => {
                if in_mod % 8 != 0 || in_mod < 1 << caps::LOG2_RSVD_QPS {
                    self.misuse("special QP base not a multiple of 8 above the reserved QPs");
                    return Err(stat::BAD_PARAM);
                }
                self.special_base = Some(in_mod);
                Ok(())
            }
            op::RST2INIT_QP => self.rst2init(in_mod, mem),
            op::INIT2RTR_QP | op::RTR2RTS_QP | op::RTS2RTS_QP => {
                self.modify_qp(opcode, in_mod, mem)
            }
            op::TWO_RST_QP => {
                // iPXE uses op_mod 3, Linux 2 (with no output mailbox either way); the model
                // accepts both and writes nothing.
                if op_mod != 2 && op_mod != 3 {
                    self.misuse(&format!("2RST_QP with op_mod {op_mod}"));
                    return Err(stat::BAD_PARAM);
                }
                let key = self.qp_key(in_mod);
                match self.qps.remove(&key) {
                    Some(_) => Ok(()),
                    None => {
                        self.misuse("2RST on a QP in RESET");
                        Err(stat::BAD_RES_STATE)
                    }
                }
            }
            op::MAD_IFC => {
                let port = self.port_arg(in_mod)?;
                let b = self.read_mbox(mem, 256)?;
                let req = Mad::parse(&b).map_err(|_| stat::BAD_PKT)?;
                let resp = self.sma(port, &req);
                self.counters.mad_ifc += 1;
                self.write_out_mbox(mem, resp.as_bytes())
            }
            op::MGID_HASH => {
                let g = self.read_mbox(mem, 16)?;
                let mut gid = [0u8; 16];
                gid.copy_from_slice(&g);
                let h = mgid_hash(&Gid(gid)) & ((1 << self.init.log_mc_table) - 1);
                self.set_out_imm(u64::from(h));
                Ok(())
            }
            op::READ_MCG => {
                if in_mod >= 1 << self.init.log_mc_table {
                    self.misuse("MCG index out of range");
                    return Err(stat::BAD_INDEX);
                }
                let size = 1usize << self.init.log_mc_entry;
                let e = self
                    .mcg
                    .get(&in_mod)
                    .cloned()
                    .unwrap_or_else(|| vec![0; size]);
                self.write_out_mbox(mem, &e)
            }
            op::WRITE_MCG => {
                if in_mod >= 1 << self.init.log_mc_table {
                    self.misuse("MCG index out of range");
                    return Err(stat::BAD_INDEX);
                }
                let e = self.read_mbox(mem, 1usize << self.init.log_mc_entry)?;
                self.mcg.insert(in_mod, e);
                Ok(())
            }
            op::QUERY_PORT => {
                if self.spec.cmd_if_rev < 3 {
                    // Firmware before command interface 3 has no QUERY_PORT (Linux `fw.c`
                    // `MLX4_COMMAND_INTERFACE_NEW_PORT_CMDS`).
                    self.misuse("QUERY_PORT on firmware without it");
                    return Err(stat::BAD_OP);
                }
                let port = self.port_arg(in_mod)?;
                use prm::query_port::*;
                let mut b = [0u8; SIZE];
                let (ib, eth) = match self.protocol(port) {
                    PortProtocol::Ib => (1, 0),
                    PortProtocol::Ethernet => (0, 1),
                    PortProtocol::Vpi => (1, 1),
                };
                SUPPORTS_IB.put(&mut b, ib);
                SUPPORTS_ETH.put(&mut b, eth);
                let up = self.ports[usize::from(port - 1)].state != PortState::DOWN;
                LINK_STATE.put(&mut b, u64::from(up));
                IB_MTU.put(&mut b, u64::from(caps::PORT_IB_MTU));
                let mac =
                    (self.spec.node_guid & 0xff_ffff) | (u64::from(port) << 24) | 0x0002_c900_0000;
                MAC.put(&mut b, mac);
                self.write_out_mbox(mem, &b)
            }
            op::SET_PORT => self.set_port(op_mod, in_mod, mem),
            op::INIT_PORT => {
                let port = self.port_arg(in_mod)?;
                let p = &mut self.ports[usize::from(port - 1)];
                if p.initialised {
                    self.misuse("INIT_PORT on an initialised port");
                    return Err(stat::BAD_SYS_STATE);
                }
                p.initialised = true;
                out.ports_initialized.push(port);
                Ok(())
            }
            op::CLOSE_PORT => {
                let port = self.port_arg(in_mod)?;
                let p = &mut self.ports[usize::from(port - 1)];
                p.initialised = false;
                p.state = PortState::DOWN;
                out.ports_closed.push(port);
                Ok(())
            }
            op::UNMAP_FA | op::UNMAP_ICM | op::UNMAP_ICM_AUX => Ok(()),
            _ => {
                self.misuse(&format!("unsupported opcode {opcode:#x}"));
                Err(stat::BAD_OP)
            }
        }
    }

    /// What SW2HW_MPT, SW2HW_EQ and SW2HW_CQ check first: the object's number `n` lies within
    /// the table INIT_HCA sized (2^`log_table`) and above the reserved entries (2^`log_rsvd`),
    /// and the object is not already in hardware ownership (`owned`).
    fn check_sw2hw(
        &mut self,
        obj: &str,
        number: &str,
        n: u32,
        log_table: u32,
        log_rsvd: u32,
        owned: bool,
    ) -> Result<(), u8> {
        if u64::from(n) >= 1u64 << log_table.min(32) || u64::from(n) < 1u64 << log_rsvd.min(32) {
            self.misuse(&format!("{number} outside the usable range"));
            return Err(stat::BAD_INDEX);
        }
        if owned {
            self.misuse(&format!(
                "SW2HW_{obj}: the {obj} is already in hardware ownership"
            ));
            return Err(stat::BAD_RES_STATE);
        }
        Ok(())
    }

    fn sw2hw_mpt(&mut self, index: u32, mem: &HostMem) -> Result<(), u8> {
        use prm::mpt::*;
        let b = self.read_mbox(mem, SIZE)?;
        let table = 1u32 << self.init.log_mpts.min(31);
        let owned = self.mpts.contains_key(&index);
        self.check_sw2hw(
            "MPT",
            "MPT index",
            index,
            self.init.log_mpts,
            caps::LOG2_RSVD_MRWS,
            owned,
        )?;
        self.icm_entry(
            "dMPT entry",
            self.init.dmpt + u64::from(index) * u64::from(caps::DMPT),
            caps::DMPT,
        )?;
        let key = KEY.get(&b) as u32;
        if key & (table - 1) != index {
            self.misuse(&format!(
                "MPT key {key:#x} does not name index {index:#x} (key_to_hw_index)"
            ));
            return Err(stat::BAD_PARAM);
        }
        if PERM_LOCAL_READ.get(&b) == 0 {
            // PRM comment on `lr`: "Must be set for all MPT Entries".
            self.misuse("MPT without local read");
            return Err(stat::BAD_PARAM);
        }
        if FLAG_PHYSICAL.get(&b) == 0 {
            self.misuse("MPT with translation (the model supports physical MPTs only)");
            return Err(stat::BAD_PARAM);
        }
        let m = Mpt {
            key,
            pd: PD.get(&b) as u32,
            region: FLAG_REGION.get(&b) == 1,
            local_read: true,
            local_write: PERM_LOCAL_WRITE.get(&b) == 1,
            start: START.get(&b),
            len: LENGTH.get(&b),
            len64: LEN64.get(&b) == 1,
        };
        if m.pd == 0 {
            self.misuse("MPT with PD 0");
        }
        self.mpts.insert(index, m);
        Ok(())
    }

    fn write_mtt(&mut self, count: u32, mem: &HostMem) -> Result<(), u8> {
        use prm::write_mtt::*;
        if count == 0 || count > 64 {
            self.misuse("WRITE_MTT entry count");
            return Err(stat::BAD_PARAM);
        }
        let b = self.read_mbox(mem, 16 + 8 * count as usize)?;
        let base = MTT_BASE.get(&b);
        if base % u64::from(caps::MTT) != 0 {
            self.misuse("MTT base not a multiple of the entry size");
            return Err(stat::BAD_PARAM);
        }
        let first = base / u64::from(caps::MTT);
        for i in 0..count as usize {
            let idx = first + i as u64;
            if idx < 1 << caps::LOG2_RSVD_MTTS {
                self.misuse("MTT index in the reserved range");
                return Err(stat::BAD_INDEX);
            }
            self.icm_entry(
                "MTT entry",
                self.init.mtt + idx * u64::from(caps::MTT),
                caps::MTT,
            )?;
            if present(i).get(&b) == 0 {
                self.misuse("MTT entry without the present bit");
                return Err(stat::BAD_PARAM);
            }
            self.mtt.insert(idx, page(i).get_in_place(&b) & !0xfff);
        }
        Ok(())
    }

    fn sw2hw_eq(&mut self, eqn: u32, mem: &HostMem) -> Result<(), u8> {
        use prm::eqc::*;
        let b = self.read_mbox(mem, SIZE)?;
        let owned = self.eqs.contains_key(&eqn);
        self.check_sw2hw(
            "EQ",
            "EQN",
            eqn,
            self.init.log_eqs,
            caps::LOG2_RSVD_EQS,
            owned,
        )?;
        self.icm_entry(
            "EQ context",
            self.init.eqc + u64::from(eqn) * u64::from(caps::EQC),
            caps::EQC,
        )?;
        self.icm_entry(
            "EQ cMPT entry",
            self.init.cmpt_entry(prm::cmpt::TYPE_EQ, eqn),
            caps::CMPT,
        )?;
        let eq = EqCtx {
            mtt_base: prm::mtt_addr(&b, MTT_BASE_ADDR_H, MTT_BASE_ADDR_L),
            log_page: LOG_PAGE_SIZE.get(&b) as u32,
            log_size: LOG_EQ_SIZE.get(&b) as u32,
            page_offset: PAGE_OFFSET.get_in_place(&b),
            pi: 0,
            ci: 0,
            mapped: false,
        };
        if self
            .translate(eq.mtt_base, eq.log_page, eq.page_offset)
            .is_none()
        {
            return Err(stat::BAD_PARAM);
        }
        self.eqs.insert(eqn, eq);
        Ok(())
    }

    /// A UAR page a CQ or QP may name: one INIT_HCA declared, above the reserved ones.
    fn check_uar(&mut self, what: &str, page: u32) -> Result<(), u8> {
        if page < caps::NUM_RSVD_UARS || page >= 1 << self.init.log_uars {
            self.misuse(&format!("{what} names UAR page {page}"));
            return Err(stat::BAD_PARAM);
        }
        Ok(())
    }

    fn sw2hw_cq(&mut self, cqn: u32, mem: &HostMem) -> Result<(), u8> {
        use prm::cqc::*;
        let b = self.read_mbox(mem, SIZE)?;
        let owned = self.cqs.contains_key(&cqn);
        self.check_sw2hw(
            "CQ",
            "CQN",
            cqn,
            self.init.log_cqs,
            caps::LOG2_RSVD_CQS,
            owned,
        )?;
        self.icm_entry(
            "CQ context",
            self.init.cqc + u64::from(cqn) * u64::from(caps::CQC),
            caps::CQC,
        )?;
        self.icm_entry(
            "CQ cMPT entry",
            self.init.cmpt_entry(prm::cmpt::TYPE_CQ, cqn),
            caps::CMPT,
        )?;
        let cq = CqCtx {
            mtt_base: prm::mtt_addr(&b, MTT_BASE_ADDR_H, MTT_BASE_ADDR_L),
            log_page: LOG_PAGE_SIZE.get(&b) as u32,
            log_size: LOG_SIZE.get(&b) as u32,
            page_offset: PAGE_OFFSET.get_in_place(&b),
            pi: 0,
            db_record: DB_REC_ADDR.get_in_place(&b),
            eqn: COMP_EQN.get(&b) as u32,
            usr_page: USR_PAGE.get(&b) as u32,
        };
        if !self.eqs.contains_key(&cq.eqn) {
            self.misuse(&format!(
                "CQ {cqn:#x} bound to EQ {} which does not exist",
                cq.eqn
            ));
            return Err(stat::BAD_PARAM);
        }
        if cq.log_size > caps::LOG_MAX_CQ_SZ {
            self.misuse("CQ larger than the device's maximum");
            return Err(stat::BAD_PARAM);
        }
        self.check_uar("CQ", cq.usr_page)?;
        if self
            .translate(cq.mtt_base, cq.log_page, cq.page_offset)
            .is_none()
            || !mem.contains(cq.db_record, 8)
        {
            self.misuse("CQ buffer or doorbell record not reachable");
            return Err(stat::BAD_PARAM);
        }
        self.cqs.insert(cqn, cq);
        Ok(())
    }

    fn rst2init(&mut self, qpn: u32, mem: &HostMem) -> Result<(), u8> {
        use prm::qpc::*;
        let b = self.read_mbox(mem, SIZE)?;
        let Some(base) = self.special_base else {
            self.misuse("RST2INIT before CONF_SPECIAL_QP");
            return Err(stat::BAD_SYS_STATE);
        };
        let qpn = qpn & 0xff_ffff;
        let key = self.qp_key(qpn);
        let st = ST.get(&b);
        let special = (base..base + 8).contains(&qpn);
        if special && st != ST_MLX {
            self.misuse("special QP not of type MLX");
            return Err(stat::BAD_PARAM);
        }
        if !special && (st != ST_UD || key < base + 8) {
            self.misuse(
                "ordinary QP must be UD above the special QPs (the model supports UD only)",
            );
            return Err(stat::BAD_PARAM);
        }
        if self.qps.contains_key(&key) {
            self.misuse("RST2INIT on a QP not in RESET");
            return Err(stat::BAD_QP_STATE);
        }
        let i = u64::from(key);
        self.icm_entry(
            "QP context",
            self.init.qpc + i * u64::from(caps::QPC),
            caps::QPC,
        )?;
        self.icm_entry(
            "QP ALTC entry",
            self.init.altc + i * u64::from(caps::ALTC),
            caps::ALTC,
        )?;
        self.icm_entry(
            "QP AUXC entry",
            self.init.auxc + i * u64::from(caps::AUX),
            caps::AUX,
        )?;
        self.icm_entry(
            "QP cMPT entry",
            self.init.cmpt_entry(prm::cmpt::TYPE_QP, key),
            caps::CMPT,
        )?;
        let cqn_snd = CQN_SEND.get(&b) as u32;
        let cqn_rcv = CQN_RECV.get(&b) as u32;
        if !self.cqs.contains_key(&cqn_snd) || !self.cqs.contains_key(&cqn_rcv) {
            self.misuse(&format!(
                "QP {qpn:#x} bound to CQs {cqn_snd:#x}/{cqn_rcv:#x}, one of which does not exist"
            ));
            return Err(stat::BAD_PARAM);
        }
        let port = ((SCHED_QUEUE.get(&b) >> 6) & 1) as u8 + 1;
        if usize::from(port) > self.ports.len() {
            self.misuse("QP on a port the device does not have");
            return Err(stat::BAD_PARAM);
        }
        if self.protocol(port) == PortProtocol::Ethernet {
            self.misuse("IB QP on a port configured for Ethernet");
            return Err(stat::BAD_PARAM);
        }
        let qp = QpCtx {
            qpn,
            mlx: special,
            state: QpState::Init,
            port,
            pd: PD.get(&b) as u32,
            usr_page: USR_PAGE.get(&b) as u32,
            cqn_snd,
            cqn_rcv,
            log_sq: SQ_SIZE.get(&b) as u32,
            log_rq: RQ_SIZE.get(&b) as u32,
            log_sq_stride: SQ_STRIDE.get(&b) as u32,
            log_rq_stride: RQ_STRIDE.get(&b) as u32,
            mtt_base: prm::mtt_addr(&b, MTT_BASE_ADDR_H, MTT_BASE_ADDR_L),
            log_page: LOG_PAGE_SIZE.get(&b) as u32,
            page_offset: PAGE_OFFSET.get_in_place(&b),
            rdb: DB_REC_ADDR.get_in_place(&b),
            qkey: QKEY.get(&b) as u32,
            mtu: 4,
            sq_ci: 0,
            rq_ci: 0,
            psn: 0,
        };
        if qp.log_sq > caps::LOG_MAX_QP_SZ || qp.log_rq > caps::LOG_MAX_QP_SZ {
            self.misuse("QP queue larger than the device's maximum");
            return Err(stat::BAD_PARAM);
        }
        self.check_uar("QP", qp.usr_page)?;
        if self
            .translate(qp.mtt_base, qp.log_page, qp.page_offset)
            .is_none()
            || !mem.contains(qp.rdb, 4)
        {
            self.misuse("QP buffer or doorbell record not reachable");
            return Err(stat::BAD_PARAM);
        }
        if qp.pd == 0 {
            self.misuse("QP with PD 0");
        }
        self.qps.insert(key, qp);
        Ok(())
    }

    fn modify_qp(&mut self, opcode: u16, in_mod: u32, mem: &HostMem) -> Result<(), u8> {
        use prm::qpc::*;
        let b = self.read_mbox(mem, SIZE)?;
        let key = self.qp_key(in_mod);
        let Some(mut qp) = self
            .qps
            .get(&key)
            .copied()
            .filter(|q| q.qpn == in_mod & 0xff_ffff)
        else {
            self.misuse("transition of an unknown QP");
            return Err(stat::BAD_RES_STATE);
        };
        let (from, to) = match opcode {
            op::INIT2RTR_QP => (QpState::Init, QpState::Rtr),
            op::RTR2RTS_QP => (QpState::Rtr, QpState::Rts),
            _ => (QpState::Rts, QpState::Rts),
        };
        if qp.state != from {
            self.misuse(&format!("command {opcode:#x} on a QP in {:?}", qp.state));
            return Err(stat::BAD_QP_STATE);
        }
        qp.state = to;
        if opcode == op::INIT2RTR_QP {
            qp.mtu = MTU.get(&b) as u32;
            if QKEY.get(&b) != 0 {
                qp.qkey = QKEY.get(&b) as u32;
            }
            let sq = SCHED_QUEUE.get(&b);
            if sq != 0 {
                qp.port = ((sq >> 6) & 1) as u8 + 1;
            }
        }
        if opcode == op::RTS2RTS_QP && OPTPAR.get(&b) & OPTPAR_Q_KEY != 0 {
            qp.qkey = QKEY.get(&b) as u32;
        }
        self.qps.insert(key, qp);
        Ok(())
    }

    fn set_port(&mut self, op_mod: u8, in_mod: u32, mem: &HostMem) -> Result<(), u8> {
        use prm::set_port::*;
        let port = self.port_arg(in_mod)?;
        if op_mod != 0 {
            self.misuse("SET_PORT for Ethernet on an IB-only model");
            return Err(stat::BAD_PARAM);
        }
        if self.protocol(port) == PortProtocol::Ethernet {
            self.misuse("SET_PORT for IB on a port configured for Ethernet");
            return Err(stat::BAD_PARAM);
        }
        let b = self.read_mbox(mem, SIZE)?;
        if CHANGE_MTU_CAP.get(&b) == 1 {
            let cap = MTU_CAP.get(&b) as u32;
            if !(1..=caps::PORT_IB_MTU).contains(&cap) {
                self.misuse(&format!("SET_PORT MTU cap {cap} out of range"));
                return Err(stat::BAD_PARAM);
            }
            self.ports[usize::from(port - 1)].mtu_cap = cap as u8;
        }
        if CHANGE_VL_CAP.get(&b) == 1 && !(1..=8).contains(&VL_CAP.get(&b)) {
            // A number of VLs (Linux `port.c`: "IB VL CAP enum isn't used by the firmware,
            // just numerical values"; it tries 8, 4, 2, 1).
            self.misuse("SET_PORT VL cap out of range");
            return Err(stat::BAD_PARAM);
        }
        if CHANGE_PKEY_TBL_SZ.get(&b) == 1 && PKEY_TBL_SZ.get(&b) == 0 {
            self.misuse("SET_PORT with an empty P_Key table");
            return Err(stat::BAD_PARAM);
        }
        if CHANGE_GID_TBL_SZ.get(&b) == 1 && GID_TBL_SZ.get(&b) == 0 {
            self.misuse("SET_PORT with an empty GID table");
            return Err(stat::BAD_PARAM);
        }
        Ok(())
    }

    /// The firmware SMA: answers local SubnGet(NodeInfo/PortInfo/GUIDInfo/P_KeyTable).
    fn sma(&self, port: u8, req: &Mad) -> Mad {
        let mut resp = *req;
        resp.hdr.method = req.hdr.method.response();
        if req.hdr.mgmt_class != MgmtClass::SUBN_LID_ROUTED || req.hdr.method != MadMethod::GET {
            resp.hdr.status = U16::new(MadStatus::METHOD_ATTR_UNSUPPORTED.0);
            return resp;
        }
        let p = &self.ports[usize::from(port - 1)];
        match req.hdr.attr_id {
            AttrId::NODE_INFO => {
                let ni = NodeInfo {
                    base_version: 1,
                    class_version: 1,
                    node_type: 1,
                    num_ports: self.ports.len() as u8,
                    system_image_guid: Guid::from_u64(self.spec.node_guid),
                    node_guid: Guid::from_u64(self.spec.node_guid),
                    port_guid: self.port_guid(port),
                    partition_cap: U16::new(p.pkeys.len() as u16),
                    device_id: U16::new(self.spec.device_id),
                    revision: U32::new(0xa0),
                    local_port_num: port,
                    vendor_id: [0x00, 0x02, 0xc9],
                };
                smp::set_smp_attr(&mut resp, &ni);
            }
            AttrId::PORT_INFO => {
                let mut pi = PortInfo {
                    gid_prefix: U64::new(p.gid_prefix),
                    lid: U16::new(p.lid),
                    master_sm_lid: U16::new(p.sm_lid),
                    local_port_num: port,
                    link_width_active: 2,
                    ..Default::default()
                };
                pi.set_port_state(p.state);
                pi.link_speed_supported_port_state |= 0x10;
                let phys = if p.state == PortState::DOWN { 3 } else { 5 };
                pi.phys_state_link_down_default = (phys << 4) | 2;
                pi.link_speed_active_enabled = 0x11;
                pi.neighbor_mtu_master_sm_sl = (p.mtu.min(p.mtu_cap) << 4) | (p.sm_sl & 0xf);
                pi.vl_cap_init_type = 0x10;
                pi.set_mtu_cap(p.mtu_cap);
                smp::set_smp_attr(&mut resp, &pi);
            }
            AttrId::GUID_INFO => {
                let mut gi = GuidInfo::default();
                gi.guid[0] = self.port_guid(port);
                smp::set_smp_attr(&mut resp, &gi);
            }
            AttrId::PKEY_TABLE => {
                let mut t = PKeyTable::default();
                for (d, s) in t.pkey.iter_mut().zip(p.pkeys.iter()) {
                    *d = U16::new(*s);
                }
                smp::set_smp_attr(&mut resp, &t);
            }
            _ => resp.hdr.status = U16::new(MadStatus::METHOD_ATTR_UNSUPPORTED.0),
        }
        resp
    }

    /// Posts an EQE on the event EQ (if one is mapped).
    pub fn post_event(
        &mut self,
        mem: &HostMem,
        event_type: u64,
        sub_type: u64,
        fill: impl FnOnce(&mut [u8]),
    ) {
        use prm::eqe::*;
        if self.suppress_events {
            debug!("hca-sim: event {event_type:#x} suppressed");
            return;
        }
        let Some(eqn) = self.event_eq else {
            debug!("hca-sim: event {event_type:#x} dropped: no EQ mapped");
            return;
        };
        let Some(mut eq) = self.eqs.get(&eqn).copied() else {
            return;
        };
        let n = 1u32 << eq.log_size;
        if eq.pi.wrapping_sub(eq.ci) >= n {
            // Overrun ignore is set by the driver; the event is lost.
            debug!("hca-sim: EQ {eqn} full, event lost");
            return;
        }
        let mut e = [0u8; SIZE];
        TYPE.put(&mut e, event_type);
        SUBTYPE.put(&mut e, sub_type);
        fill(&mut e);
        OWNER.put(&mut e, u64::from(eq.pi & n != 0));
        let off = eq.page_offset + u64::from(eq.pi & (n - 1)) * SIZE as u64;
        if let Some(pa) = self.translate(eq.mtt_base, eq.log_page, off) {
            // Body first, then the byte holding the ownership bit.
            if mem
                .write(pa, &e[..31])
                .and_then(|_| mem.write(pa + 31, &e[31..]))
                .is_err()
            {
                self.counters.dma_faults += 1;
                return;
            }
            eq.pi = eq.pi.wrapping_add(1);
            self.eqs.insert(eqn, eq);
            self.counters.eqes += 1;
        }
    }

    /// Port state change event (`MLX4_EVENT_TYPE_PORT_CHANGE`).
    pub fn port_state_event(&mut self, mem: &HostMem, port: u8, up: bool) {
        use prm::eqe::*;
        let sub = if up {
            SUBTYPE_PORT_ACTIVE
        } else {
            SUBTYPE_PORT_DOWN
        };
        self.post_event(mem, TYPE_PORT_CHANGE, sub, |e| {
            PORT_CHANGE_PORT.put(e, u64::from(port));
        });
    }

    /// Port management change event (`MLX4_EVENT_TYPE_PORT_MNG_CHG_EVENT`, sub-type
    /// `MLX4_DEV_PMC_SUBTYPE_PORT_INFO`) with what changed (`prm::eqe::PMC_*` bits).
    pub fn port_mgmt_event(&mut self, mem: &HostMem, port: u8, changed_attr: u64) {
        use prm::eqe::*;
        self.post_event(mem, TYPE_PORT_MNG_CHG, SUBTYPE_PMC_PORT_INFO, |e| {
            PORT_MGMT_CHANGE_PORT.put(e, u64::from(port));
            PORT_MGMT_CHANGE_ATTR.put(e, changed_attr);
        });
    }

    fn write_cqe(&mut self, mem: &HostMem, cqn: u32, fill: impl FnOnce(&mut [u8])) {
        use prm::cqe::*;
        let Some(mut cq) = self.cqs.get(&cqn).copied() else {
            self.misuse("completion for an unknown CQ");
            return;
        };
        let n = 1u32 << cq.log_size;
        let ci = match mem.read_be32(cq.db_record) {
            Ok(v) => v & 0x00ff_ffff,
            Err(_) => {
                self.counters.dma_faults += 1;
                return;
            }
        };
        if cq.pi.wrapping_sub(ci) & 0x00ff_ffff >= n {
            warn!("hca-sim: CQ {cqn:#x} overrun");
            self.counters.cq_overruns += 1;
            self.post_event(mem, prm::eqe::TYPE_CQ_ERROR, 0, |e| {
                prm::eqe::CQ_ERR_CQN.put(e, u64::from(cqn));
                // Syndrome 1: CQ overrun (iPXE `hermonprm_completion_queue_error_st`).
                prm::eqe::CQ_ERR_SYNDROME.put(e, 1);
            });
            return;
        }
        let mut e = [0u8; SIZE];
        fill(&mut e);
        OWNER.put(&mut e, u64::from(cq.pi & n != 0));
        let off = cq.page_offset + u64::from(cq.pi & (n - 1)) * SIZE as u64;
        if let Some(pa) = self.translate(cq.mtt_base, cq.log_page, off) {
            if mem
                .write(pa, &e[..31])
                .and_then(|_| mem.write(pa + 31, &e[31..]))
                .is_err()
            {
                self.counters.dma_faults += 1;
                return;
            }
            cq.pi = cq.pi.wrapping_add(1);
            self.cqs.insert(cqn, cq);
            self.counters.cqes += 1;
            if OPCODE.get(&e) >= OPCODE_ERROR {
                self.counters.error_cqes += 1;
            }
        }
    }

    fn error_cqe(
        &mut self,
        mem: &HostMem,
        cqn: u32,
        qpn: u32,
        send: bool,
        counter: u32,
        syndrome: u8,
    ) {
        use prm::cqe::*;
        self.write_cqe(mem, cqn, |e| {
            MY_QPN.put(e, u64::from(qpn));
            OPCODE.put(e, OPCODE_ERROR);
            IS_SEND.put(e, u64::from(send));
            SYNDROME.put(e, u64::from(syndrome));
            WQE_INDEX.put(e, u64::from(counter & 0xffff));
        });
    }

    fn process_sq(&mut self, qpn: u32, uar_page: u32, mem: &HostMem, out: &mut Outbox) {
        let key = self.qp_key(qpn);
        let Some(mut qp) = self.qps.get(&key).copied().filter(|q| q.qpn == qpn) else {
            self.misuse(&format!("send doorbell for unknown QPN {qpn:#x}"));
            return;
        };
        if qp.usr_page != uar_page {
            self.misuse(&format!(
                "send doorbell for QPN {qpn:#x} on UAR page {uar_page}, its context names {}",
                qp.usr_page
            ));
            return;
        }
        if qp.state != QpState::Rts {
            self.misuse(&format!("send doorbell on QPN {qpn:#x} in {:?}", qp.state));
            return;
        }
        let n = 1u32 << qp.log_sq;
        let (sq_at, _) = qp.ring_offsets();
        let stride = qp.sq_stride();
        loop {
            let off = qp.page_offset + sq_at + u64::from(qp.sq_ci & (n - 1)) * stride;
            let Some(pa) = self.translate(qp.mtt_base, qp.log_page, off) else {
                break;
            };
            let mut b = vec![0u8; stride as usize];
            if mem.read(pa, &mut b).is_err() {
                self.counters.dma_faults += 1;
                break;
            }
            if prm::wqe::OWNER.get(&b) != u64::from(qp.sq_ci & n != 0) {
                break;
            }
            self.counters.wqes += 1;
            let counter = qp.sq_ci;
            qp.sq_ci = qp.sq_ci.wrapping_add(1);
            let signalled = prm::wqe::CQ_UPDATE.get(&b) == 0b11;
            match self.execute_wqe(&mut qp, &b, mem, out) {
                Ok(len) => {
                    if signalled {
                        use prm::cqe::*;
                        self.write_cqe(mem, qp.cqn_snd, |e| {
                            MY_QPN.put(e, u64::from(qp.qpn));
                            OPCODE.put(e, OPCODE_SEND);
                            IS_SEND.put(e, 1);
                            BYTE_CNT.put(e, u64::from(len));
                            WQE_INDEX.put(e, u64::from(counter & 0xffff));
                        });
                    }
                }
                Err(syndrome) => self.error_cqe(mem, qp.cqn_snd, qp.qpn, true, counter, syndrome),
            }
        }
        self.qps.insert(key, qp);
    }

    /// Gathers the data segments from `first` to the end of the WQE (`size16` × 16 bytes),
    /// checking each L_Key for local read.
    fn gather(
        &mut self,
        qp: &QpCtx,
        w: &[u8],
        first: usize,
        size16: usize,
        mem: &HostMem,
    ) -> Result<Vec<u8>, u8> {
        use prm::wqe::*;
        let mut data = Vec::new();
        let mut seg = first;
        while seg + DATA_SEG <= size16 * 16 {
            let len = data_byte_count(seg).get(w);
            let lkey = data_lkey(seg).get(w) as u32;
            let addr = data_addr(seg).get(w);
            seg += DATA_SEG;
            if len == 0 {
                continue;
            }
            self.check_lkey(lkey, qp.pd, false, addr, len)?;
            let at = data.len();
            data.resize(at + len as usize, 0);
            if mem.read(addr, &mut data[at..]).is_err() {
                self.counters.dma_faults += 1;
                return Err(prm::cqe::SYND_LOCAL_ACCESS);
            }
        }
        Ok(data)
    }

    /// Executes one send WQE; returns the bytes sent or an error syndrome.
    fn execute_wqe(
        &mut self,
        qp: &mut QpCtx,
        w: &[u8],
        mem: &HostMem,
        out: &mut Outbox,
    ) -> Result<u32, u8> {
        use prm::wqe::*;
        if OPCODE.get(w) != OPCODE_SEND {
            self.misuse("send WQE with an opcode other than SEND on a UD/MLX QP");
            return Err(prm::cqe::SYND_LOCAL_QP_OP);
        }
        let size16 = SIZE16.get(w) as usize;
        let first = if qp.mlx { MLX_DATA } else { UD_DATA };
        if size16 * 16 > w.len() || size16 * 16 < first + DATA_SEG {
            self.misuse("send WQE size (ds) does not fit its stride or its segments");
            return Err(prm::cqe::SYND_LOCAL_QP_OP);
        }
        let mut data = self.gather(qp, w, first, size16, mem)?;
        let len = data.len() as u32;
        let port = qp.port;
        let p = self.ports[usize::from(port - 1)].clone();
        if qp.mlx {
            // Software built LRH..DETH; with ICRC clear the hardware computes the ICRC into
            // the last dword (iPXE `hermonprm_wqe_segment_ctrl_mlx_st.icrc`).
            if data.len() < 8 + 12 + 8 + 4 {
                return Err(prm::cqe::SYND_LOCAL_LENGTH);
            }
            if MLX_ICRC.get(w) == 0 {
                let at = data.len() - 4;
                let icrc = crc::icrc(&data[..at]);
                data[at..].copy_from_slice(&icrc.to_le_bytes());
            }
            let pkt = match UdPacket::parse(&data) {
                Ok(pkt) => pkt,
                Err(_) => {
                    self.misuse("MLX WQE carries a malformed packet");
                    return Err(prm::cqe::SYND_LOCAL_QP_OP);
                }
            };
            // The MLX segment's rlid "must match given headers" (iPXE MT25408_PRM.h).
            if MLX_RLID.get(w) != u64::from(pkt.repr.dlid.0) {
                self.misuse(&format!(
                    "MLX WQE rlid {:#x} differs from the LRH DLID {:#x}",
                    MLX_RLID.get(w),
                    pkt.repr.dlid.0
                ));
                return Err(prm::cqe::SYND_LOCAL_QP_OP);
            }
            if p.state != PortState::ACTIVE {
                self.counters.tx_dropped += 1;
                return Ok(len);
            }
        } else {
            if len as usize > hca::wire::smp::mtu::bytes(qp.mtu as u8) {
                return Err(prm::cqe::SYND_LOCAL_LENGTH);
            }
            if AV_PD.get(w) != u64::from(qp.pd) {
                // The address vector must belong to the QP's protection domain.
                debug!("hca-sim: UD AV PD differs from the QP's");
                return Err(prm::cqe::SYND_LOCAL_QP_OP);
            }
            if self.init.ud_port_check && AV_PORT.get(w) != u64::from(port) {
                // INIT_HCA asked for the port check ("Check port for UD address vector").
                debug!(
                    "hca-sim: UD AV port {} on a QP of port {port}",
                    AV_PORT.get(w)
                );
                return Err(prm::cqe::SYND_LOCAL_QP_OP);
            }
            if p.state != PortState::ACTIVE {
                self.counters.tx_dropped += 1;
                return Ok(len);
            }
            let qkey_wqe = QKEY.get(w) as u32;
            // IBA §10.2.5: a Q_Key with the high bit set means "use the QP's own".
            let qkey = if qkey_wqe & 0x8000_0000 != 0 {
                qp.qkey
            } else {
                qkey_wqe
            };
            let grh = (AV_G.get(w) == 1).then(|| {
                let mut g = [0u8; 16];
                for (c, l) in g.chunks_exact_mut(4).zip(AV_DGID) {
                    c.copy_from_slice(&(l.get(w) as u32).to_be_bytes());
                }
                GrhRepr {
                    sgid: Gid::from_parts(p.gid_prefix, self.port_guid(port)),
                    dgid: Gid(g),
                    hop_limit: AV_HOP_LIMIT.get(w) as u8,
                    tclass: AV_TCLASS.get(w) as u8,
                    flow_label: AV_FLOWLABEL.get(w) as u32,
                }
            });
            let repr = UdPacketRepr {
                vl: 0,
                sl: AV_SL.get(w) as u8,
                dlid: Lid(AV_DLID.get(w) as u16),
                slid: Lid(p.lid),
                grh,
                pkey: p.pkeys.first().copied().unwrap_or(0xffff),
                dest_qpn: Qpn(DQPN.get(w) as u32),
                psn: qp.psn,
                qkey,
                src_qpn: Qpn(qp.qpn),
            };
            qp.psn = (qp.psn + 1) & 0xff_ffff;
            let mut pkt = vec![0u8; repr.buffer_len(data.len())];
            if repr.emit(&data, &mut pkt).is_err() {
                return Err(prm::cqe::SYND_LOCAL_LENGTH);
            }
            data = pkt;
        }
        self.counters.tx_packets += 1;
        out.tx.push((port, data));
        Ok(len)
    }

    /// A packet arrives on `port`.
    pub fn receive(&mut self, port: u8, bytes: &[u8], mem: &HostMem) {
        let Some(p) = self.ports.get(usize::from(port) - 1).cloned() else {
            return;
        };
        let pkt = match UdPacket::parse(bytes) {
            Ok(p) => p,
            Err(e) => {
                debug!("hca-sim: dropping bad packet: {e:?}");
                self.counters.rx_bad_packet += 1;
                return;
            }
        };
        let r = pkt.repr;
        if p.state != PortState::ACTIVE {
            self.counters.rx_dropped += 1;
            return;
        }
        let pk_ok = p
            .pkeys
            .iter()
            .any(|k| k & 0x7fff == r.pkey & 0x7fff && (k & 0x8000 != 0 || r.pkey & 0x8000 != 0));
        if !pk_ok {
            self.counters.rx_pkey_violation += 1;
            return;
        }
        let Some(base) = self.special_base else {
            return;
        };
        let mut targets: Vec<u32> = Vec::new();
        if r.dlid.is_multicast() {
            let Some(g) = r.grh else {
                self.counters.rx_dropped += 1;
                return;
            };
            let idx = mgid_hash(&g.dgid) & ((1 << self.init.log_mc_table) - 1);
            if let Some(e) = self.mcg.get(&idx) {
                use prm::mgm::*;
                let mut mg = [0u8; 16];
                for (c, l) in mg.chunks_exact_mut(4).zip(GID) {
                    c.copy_from_slice(&(l.get(e) as u32).to_be_bytes());
                }
                if mg == g.dgid.0 {
                    let slots = (e.len().saturating_sub(0x20)) / 4;
                    let n = (MEMBERS_COUNT.get(e) as usize).min(slots);
                    targets.extend((0..n).map(|i| qp(i).get(e) as u32));
                }
            }
        } else if r.dlid.0 == p.lid {
            targets.push(match r.dest_qpn {
                Qpn::SMI => base + u32::from(port - 1),
                Qpn::GSI => base + 2 + u32::from(port - 1),
                q => q.0,
            });
        }
        if targets.is_empty() {
            self.counters.rx_dropped += 1;
            return;
        }
        for qpn in targets {
            self.deliver(port, qpn, &pkt, mem);
        }
    }

    fn deliver(&mut self, port: u8, qpn: u32, pkt: &UdPacket<'_>, mem: &HostMem) {
        use prm::wqe::*;
        let key = self.qp_key(qpn);
        let Some(mut qp) = self
            .qps
            .get(&key)
            .copied()
            .filter(|q| q.qpn == qpn && q.port == port)
        else {
            self.counters.rx_dropped += 1;
            return;
        };
        if qp.state == QpState::Init {
            self.counters.rx_dropped += 1;
            return;
        }
        let r = pkt.repr;
        let want_qkey = if qp.mlx && qpn % 8 >= 2 {
            GSI_QKEY
        } else {
            qp.qkey
        };
        if (!qp.mlx || qpn % 8 >= 2) && r.qkey != want_qkey {
            debug!(
                "hca-sim: Q_Key {:#x} != {want_qkey:#x} on QPN {qpn:#x}",
                r.qkey
            );
            self.counters.rx_qkey_violation += 1;
            return;
        }
        let posted = match mem.read_be32(qp.rdb) {
            Ok(v) => v & 0xffff,
            Err(_) => {
                self.counters.dma_faults += 1;
                return;
            }
        };
        if posted.wrapping_sub(qp.rq_ci) & 0xffff == 0 {
            self.counters.rx_no_wqe += 1;
            return;
        }
        let n = 1u32 << qp.log_rq;
        let (_, rq_at) = qp.ring_offsets();
        let stride = qp.rq_stride();
        let off = qp.page_offset + rq_at + u64::from(qp.rq_ci & (n - 1)) * stride;
        let counter = qp.rq_ci;
        qp.rq_ci = qp.rq_ci.wrapping_add(1);
        self.qps.insert(key, qp);
        let Some(pa) = self.translate(qp.mtt_base, qp.log_page, off) else {
            return;
        };
        let mut w = vec![0u8; stride as usize];
        if mem.read(pa, &mut w).is_err() {
            self.counters.dma_faults += 1;
            return;
        }
        let mut scatter = Vec::new();
        let mut seg = 0;
        while seg + DATA_SEG <= w.len() {
            let lkey = data_lkey(seg).get(&w) as u32;
            if u64::from(lkey) == INVALID_LKEY {
                break;
            }
            let addr = data_addr(seg).get(&w);
            let len = data_byte_count(seg).get(&w);
            if let Err(s) = self.check_lkey(lkey, qp.pd, true, addr, len) {
                self.error_cqe(mem, qp.cqn_rcv, qpn, false, counter, s);
                return;
            }
            scatter.push((addr, len as usize));
            seg += DATA_SEG;
        }
        // Byte stream: the 40-byte GRH area (zeros when there is no GRH), then the payload.
        let mut stream = vec![0u8; 40];
        if let Some(g) = r.grh {
            let grh = hca::wire::headers::Grh {
                ipver_tclass_flow: U32::new((6 << 28) | (u32::from(g.tclass) << 20) | g.flow_label),
                paylen: U16::new((pkt.payload.len() + 12 + 8 + 4) as u16),
                nxthdr: 0x1b,
                hoplmt: g.hop_limit,
                sgid: g.sgid,
                dgid: g.dgid,
            };
            stream.copy_from_slice(grh.as_bytes());
        }
        stream.extend_from_slice(pkt.payload);
        let capacity: usize = scatter.iter().map(|(_, l)| l).sum();
        if capacity < stream.len() {
            self.error_cqe(
                mem,
                qp.cqn_rcv,
                qpn,
                false,
                counter,
                prm::cqe::SYND_LOCAL_LENGTH,
            );
            return;
        }
        let mut at = 0;
        for (addr, l) in scatter {
            let take = l.min(stream.len() - at);
            if take == 0 {
                break;
            }
            if mem.write(addr, &stream[at..at + take]).is_err() {
                self.counters.dma_faults += 1;
                self.error_cqe(
                    mem,
                    qp.cqn_rcv,
                    qpn,
                    false,
                    counter,
                    prm::cqe::SYND_LOCAL_ACCESS,
                );
                return;
            }
            at += take;
        }
        self.counters.rx_packets += 1;
        let total = stream.len() as u64;
        {
            use prm::cqe::*;
            self.write_cqe(mem, qp.cqn_rcv, |e| {
                MY_QPN.put(e, u64::from(qpn));
                OPCODE.put(e, OPCODE_RECV_SEND);
                RQPN.put(e, u64::from(r.src_qpn.0));
                G.put(e, u64::from(r.grh.is_some()));
                RLID.put(e, u64::from(r.slid.0));
                SL.put(e, u64::from(r.sl));
                BYTE_CNT.put(e, total);
                WQE_INDEX.put(e, u64::from(counter & 0xffff));
            });
        }
    }
}

/// A CQ context as HW2SW_CQ hands it back.
fn encode_cqc(cq: &CqCtx) -> [u8; prm::cqc::SIZE] {
    use prm::cqc::*;
    let mut b = [0u8; SIZE];
    LOG_SIZE.put(&mut b, u64::from(cq.log_size));
    USR_PAGE.put(&mut b, u64::from(cq.usr_page));
    COMP_EQN.put(&mut b, u64::from(cq.eqn));
    LOG_PAGE_SIZE.put(&mut b, u64::from(cq.log_page));
    MTT_BASE_ADDR_H.put(&mut b, cq.mtt_base >> 32);
    MTT_BASE_ADDR_L.put_in_place(&mut b, cq.mtt_base & 0xffff_ffff);
    DB_REC_ADDR.put_in_place(&mut b, cq.db_record);
    b
}

/// The model's MGID hash (the real hash function is firmware-defined; any deterministic hash
/// serves the driver, which only uses the index it is given).
pub fn mgid_hash(g: &Gid) -> u32 {
    crc::crc32(&g.0) & 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An INIT_HCA the model accepts: every table placed and mapped as iPXE `hermon_map_icm`
    /// lays them out.
    fn good() -> (InitHca, IcmMap) {
        let span = (1u64 << 24) * u64::from(caps::CMPT);
        let other = 4 * span;
        let p = InitHca {
            version: 2,
            log_qps: 7,
            log_srqs: 6,
            log_cqs: 8,
            log_eqs: 6,
            log_rd: 0,
            log_mpts: 5,
            log_mc_entry: 6,
            log_mc_hash: 7,
            log_mc_table: 7,
            cmpt: 0,
            qpc: other,
            altc: other + 0x8000,
            auxc: other + 0xc000,
            srqc: other + 0x1_0000,
            cqc: other + 0x1_4000,
            eqc: other + 0x1_8000,
            rdmarc: 0,
            mtt: other + 0x2_0000,
            dmpt: other + 0x2_4000,
            mc: other + 0x2_6000,
            uar_page_sz: 0,
            log_uars: 8,
            ud_port_check: true,
        };
        let mut icm = IcmMap::default();
        for t in 0..4 {
            icm.0.push((t * span, 4));
        }
        icm.0.push((other, 0x28));
        (p, icm)
    }

    #[test]
    fn a_well_formed_init_hca_passes() {
        let (p, icm) = good();
        assert_eq!(check_init_hca(&p, &icm, 8 << 20), Ok(()));
    }

    #[test]
    fn init_hca_with_an_unmapped_cmpt_table_is_refused() {
        // The packed single cMPT table of the old layout: CQ cMPTs at type 2 are unmapped.
        let (p, mut icm) = good();
        icm.0.remove(2);
        let e = check_init_hca(&p, &icm, 8 << 20).unwrap_err();
        assert!(e.contains("CQ cMPT"), "{e}");
    }

    #[test]
    fn rdma_read_contexts_are_a_table_only_when_asked_for() {
        // log_rd 0 (the driver's, as iPXE's): no table, base 0 is fine.
        let (mut p, icm) = good();
        assert_eq!(check_init_hca(&p, &icm, 8 << 20), Ok(()));
        // Asked for but not mapped.
        p.log_rd = 2;
        p.rdmarc = 0x10_0000_0000;
        let e = check_init_hca(&p, &icm, 8 << 20).unwrap_err();
        assert!(e.contains("RDMARC"), "{e}");
    }

    #[test]
    fn init_hca_with_overlapping_tables_is_refused() {
        let (mut p, icm) = good();
        p.srqc = p.qpc;
        let e = check_init_hca(&p, &icm, 8 << 20).unwrap_err();
        assert!(e.contains("overlaps"), "{e}");
    }

    #[test]
    fn init_hca_beyond_the_reported_caps_is_refused() {
        let (mut p, icm) = good();
        p.log_eqs = caps::LOG_MAX_EQ + 1;
        let e = check_init_hca(&p, &icm, 8 << 20).unwrap_err();
        assert!(e.contains("exceeds the maximum"), "{e}");
        let (mut p, icm) = good();
        p.log_srqs = 0;
        let e = check_init_hca(&p, &icm, 8 << 20).unwrap_err();
        assert!(e.contains("reserved"), "{e}");
    }

    #[test]
    fn init_hca_uar_parameters_are_checked() {
        // log_max_uars written into uar_page_sz: 1 MiB pages, one of them... and the
        // reserved UARs leave none.
        let (mut p, icm) = good();
        p.uar_page_sz = 8;
        p.log_uars = 0;
        assert!(check_init_hca(&p, &icm, 8 << 20).is_err());
        // More pages than the UAR area holds.
        let (mut p, icm) = good();
        p.log_uars = 12;
        let e = check_init_hca(&p, &icm, 8 << 20).unwrap_err();
        assert!(e.contains("UAR area"), "{e}");
        // A multicast entry of 32 bytes or less.
        let (mut p, icm) = good();
        p.log_mc_entry = 5;
        assert!(check_init_hca(&p, &icm, 8 << 20).is_err());
        // Version.
        let (mut p, icm) = good();
        p.version = 1;
        assert!(check_init_hca(&p, &icm, 8 << 20).is_err());
    }

    #[test]
    fn cmpt_entries_are_four_tables_at_a_2_pow_24_stride() {
        let (p, _) = good();
        let sz = u64::from(caps::CMPT);
        assert_eq!(p.cmpt_entry(prm::cmpt::TYPE_QP, 5), 5 * sz);
        assert_eq!(
            p.cmpt_entry(prm::cmpt::TYPE_CQ, 0x80),
            (2 << 24) * sz + 0x80 * sz
        );
        assert_eq!(
            p.cmpt_entry(prm::cmpt::TYPE_EQ, 32),
            (3 << 24) * sz + 32 * sz
        );
    }

    #[test]
    fn icm_map_coverage() {
        let m = IcmMap(vec![(0x1000, 2), (0x3000, 1)]);
        assert!(m.mapped(0x1000, 0x3000));
        assert!(!m.mapped(0x1000, 0x3001));
        assert!(!m.mapped(0, 1));
        assert!(!m.mapped(u64::MAX - 1, 4));
    }
}
