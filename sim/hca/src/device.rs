//! A hermon-class (ConnectX) device model: PCI config space, BAR0 (HCR, reset), BAR2 (UAR
//! doorbells), firmware command semantics with PRM status codes, ICM bookkeeping, MTT
//! translation, MPT key checks, EQ/CQ/QP contexts, WQE fetch on doorbells, CQE/EQE generation,
//! a firmware SMA answering MAD_IFC, and UD receive with Q_Key/P_Key checks.
//!
//! What follows documented hardware behaviour and what is assumed is listed in the crate docs.
//! On driver misuse the model logs a warning, counts it in [`Counters::misuse`] and fails the
//! command (or drops the work) — it never panics.

use std::collections::HashMap;

use hca::hermon::cmd::{FwStatus, Opcode};
use hca::hermon::prm::{self, Prm};
use hca::hermon::regs::{self, HcrCtrl};
use hca::wire::headers::{GrhRepr, UdPacket, UdPacketRepr};
use hca::wire::mad::{AttrId, Mad, MadMethod, MadStatus, MgmtClass};
use hca::wire::smp::{self, GuidInfo, NodeInfo, PKeyTable, PortInfo, PortState};
use hca::wire::{crc, Gid, Guid, Lid, Qpn, GSI_QKEY};
use log::{debug, warn};
use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use crate::mem::HostMem;

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
    /// A dual-port ConnectX QDR (MT26428, 0x673c) with the given node GUID.
    pub fn connectx(node_guid: u64, ports: u8) -> Self {
        Self {
            device_id: 0x673c,
            ports,
            node_guid,
            fw_pages: 24,
            fw_rev: (2, 9, 1000),
            reset_time_ns: 5_000_000,
            fw_settle_ns: 200_000_000,
            cmd_latency_ns: 10_000,
            link_training_ns: 20_000_000,
            uar_bar_len: 8 << 20,
        }
    }
}

/// Device capabilities the model reports (QUERY_DEV_CAP).
mod caps {
    pub const LOG2_RSVD_QPS: u32 = 6;
    pub const LOG_MAX_QP: u32 = 16;
    pub const LOG2_RSVD_CQS: u32 = 7;
    pub const LOG2_RSVD_EQS: u32 = 4;
    pub const LOG2_RSVD_MTTS: u32 = 4;
    pub const LOG2_RSVD_MRWS: u32 = 4;
    pub const NUM_RSVD_UARS: u32 = 8;
    pub const QPC: u32 = 256;
    pub const CQC: u32 = 64;
    pub const EQC: u32 = 64;
    pub const DMPT: u32 = 64;
    pub const MTT: u32 = 8;
    pub const CMPT: u32 = 64;
    pub const AUXC: u32 = 128;
    pub const ALTC: u32 = 64;
    pub const MCG: u32 = 64;
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

#[derive(Clone, Copy, Debug, Default)]
struct IcmParams {
    log_qps: u32,
    log_cqs: u32,
    log_eqs: u32,
    log_mpts: u32,
    log_mtts: u32,
    log_mcg: u32,
}

#[derive(Clone, Copy, Debug)]
struct EqCtx {
    mtt_base: u64,
    log_size: u32,
    page_offset: u64,
    pi: u32,
    ci: u32,
    mapped: bool,
}

#[derive(Clone, Copy, Debug)]
struct CqCtx {
    mtt_base: u64,
    log_size: u32,
    page_offset: u64,
    pi: u32,
    db_record: u64,
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
    cqn_snd: u32,
    cqn_rcv: u32,
    log_sq: u32,
    log_rq: u32,
    mtt_base: u64,
    rdb: u64,
    qkey: u32,
    mtu: u32,
    sq_ci: u32,
    rq_ci: u32,
    psn: u32,
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
    hcr: [u32; 7],
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
    icm_map: Vec<(u64, u64)>,
    icm: IcmParams,
    mpts: HashMap<u32, (u32, bool)>,
    mtt: HashMap<u32, u64>,
    eqs: HashMap<u32, EqCtx>,
    event_eq: Option<u32>,
    cqs: HashMap<u32, CqCtx>,
    qps: HashMap<u32, QpCtx>,
    special_base: Option<u32>,
    mcg: HashMap<u32, Prm<{ prm::mcg::DWORDS }>>,
}

fn be_to_mmio(v: u32) -> u32 {
    u32::from_le_bytes(v.to_be_bytes())
}

fn mmio_to_be(v: u32) -> u32 {
    u32::from_be_bytes(v.to_le_bytes())
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
            hcr: [0; 7],
            cmd_busy: false,
            hang_commands: false,
            fail_next: HashMap::new(),
            suppress_events: false,
            fw: FwState::Stopped,
            fa_pages: 0,
            icm_size: 0,
            aux_pages_needed: 0,
            aux_pages: 0,
            icm_map: Vec::new(),
            icm: IcmParams::default(),
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
        for (key, _) in self.mpts.values_mut() {
            *key ^= 0x00ff_0000;
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

    /// MMIO read.
    pub fn mmio_read(&mut self, now: u64, bar: u8, off: usize) -> u32 {
        if now < self.config_ready_at {
            return u32::MAX;
        }
        match bar {
            0 if (regs::HCR_BASE..regs::HCR_BASE + 28).contains(&off) && off % 4 == 0 => {
                be_to_mmio(self.hcr[(off - regs::HCR_BASE) / 4])
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
        match bar {
            0 if off == regs::RESET_OFFSET => {
                if v == regs::RESET_MAGIC {
                    self.reset(now);
                } else {
                    self.misuse("bad reset magic");
                }
                false
            }
            0 if (regs::HCR_BASE..regs::HCR_BASE + 24).contains(&off) && off % 4 == 0 => {
                if self.cmd_busy {
                    self.misuse("HCR written while a command is in flight");
                    return false;
                }
                self.hcr[(off - regs::HCR_BASE) / 4] = v;
                false
            }
            0 if off == regs::HCR_BASE + HcrCtrl::OFFSET => {
                if self.cmd_busy {
                    self.misuse("go written while a command is in flight");
                    return false;
                }
                let c = HcrCtrl(v);
                if !c.go() {
                    self.misuse("HCR control written without go");
                    return false;
                }
                self.hcr[6] = v;
                self.cmd_busy = true;
                if now < self.fw_ready_at {
                    // The firmware is still settling after reset: the command is lost.
                    warn!(
                        "hca-sim: command {:#x} issued before firmware settled",
                        c.opcode()
                    );
                    return false;
                }
                !self.hang_commands
            }
            2 if off == regs::send_doorbell_offset() => {
                self.counters.doorbells += 1;
                let qpn = v >> 8;
                self.process_sq(qpn, mem, out);
                false
            }
            2 if off >= 0x800 && off % regs::UAR_PAGE >= 0x800 && off % regs::UAR_PAGE < 0x820 => {
                let eqn = (off / regs::UAR_PAGE * 4 + (off % regs::UAR_PAGE - 0x800) / 8) as u32;
                match self.eqs.get_mut(&eqn) {
                    Some(eq) => eq.ci = v & 0x00ff_ffff,
                    None => self.misuse("EQ doorbell for an unknown EQ"),
                }
                false
            }
            _ => {
                self.misuse(&format!("MMIO write to BAR{bar} offset {off:#x}"));
                false
            }
        }
    }

    /// Completes the command in the HCR (called by the fabric after the command latency).
    pub fn complete_command(&mut self, mem: &HostMem, out: &mut Outbox) {
        if !self.cmd_busy {
            return;
        }
        let c = HcrCtrl(self.hcr[6]);
        self.counters.commands += 1;
        let status = match self.fail_next.remove(&c.opcode()) {
            Some(s) => s,
            None => match self.exec(c, mem, out) {
                Ok(()) => 0,
                Err(s) => s.0,
            },
        };
        if status != 0 {
            self.counters.command_errors += 1;
            debug!("hca-sim: command {:#x} -> status {status:#x}", c.opcode());
        }
        self.hcr[6] = c.completed(status).0;
        self.cmd_busy = false;
    }

    fn in_param(&self) -> u64 {
        (u64::from(self.hcr[0]) << 32) | u64::from(self.hcr[1])
    }

    fn out_param(&self) -> u64 {
        (u64::from(self.hcr[3]) << 32) | u64::from(self.hcr[4])
    }

    fn read_mbox<const N: usize>(&mut self, mem: &HostMem) -> Result<Prm<N>, FwStatus> {
        let mut b = vec![0u8; N * 4];
        if mem.read(self.in_param(), &mut b).is_err() {
            self.counters.dma_faults += 1;
            self.misuse("input mailbox outside host memory");
            return Err(FwStatus::BAD_PARAM);
        }
        Ok(Prm::from_be(&b))
    }

    fn write_out_mbox(&mut self, mem: &HostMem, bytes: &[u8]) -> Result<(), FwStatus> {
        if mem.write(self.out_param(), bytes).is_err() {
            self.counters.dma_faults += 1;
            self.misuse("output mailbox outside host memory");
            return Err(FwStatus::BAD_PARAM);
        }
        Ok(())
    }

    fn set_out_imm(&mut self, v: u64) {
        self.hcr[3] = (v >> 32) as u32;
        self.hcr[4] = v as u32;
    }

    fn need(&mut self, st: FwState, what: &str) -> Result<(), FwStatus> {
        if self.fw != st {
            self.misuse(&format!("{what} in firmware state {:?}", self.fw));
            return Err(FwStatus::BAD_SYS_STATE);
        }
        Ok(())
    }

    fn port_arg(&mut self, in_mod: u32) -> Result<u8, FwStatus> {
        if in_mod == 0 || in_mod as usize > self.ports.len() {
            self.misuse("bad port number");
            return Err(FwStatus::BAD_PARAM);
        }
        Ok(in_mod as u8)
    }

    fn map_entry(&mut self, mem: &HostMem) -> Result<(u64, u64, u64), FwStatus> {
        let p: Prm<4> = self.read_mbox(mem)?;
        if self.hcr[2] != 1 {
            self.misuse("mapping commands take exactly one entry here");
            return Err(FwStatus::BAD_PARAM);
        }
        let log = u64::from(p.get(prm::vpm::LOG2SIZE));
        let pa = p.get64(prm::vpm::PA) & !0xfff;
        let va = p.get64(prm::vpm::VA) & !0xfff;
        let pages = 1u64 << log.min(40);
        if pa & ((pages << 12) - 1) != 0 || va & ((pages << 12) - 1) != 0 {
            self.misuse("mapping block not naturally aligned");
            return Err(FwStatus::BAD_PARAM);
        }
        if !mem.contains(pa, (pages as usize) << 12) {
            self.counters.dma_faults += 1;
            self.misuse("mapping block outside host memory");
            return Err(FwStatus::BAD_PARAM);
        }
        Ok((va, pa, pages))
    }

    fn icm_mapped(&self, base: u64, len: u64) -> bool {
        // Every page of the range must be covered by some MAP_ICM block.
        let mut a = base;
        while a < base + len {
            match self
                .icm_map
                .iter()
                .find(|(va, pages)| a >= *va && a < va + (pages << 12))
            {
                Some((va, pages)) => a = va + (pages << 12),
                None => return false,
            }
        }
        true
    }

    fn translate(&mut self, mtt_base: u64, offset: u64) -> Option<u64> {
        let idx = mtt_base / u64::from(caps::MTT) + offset / 4096;
        match self.mtt.get(&(idx as u32)) {
            Some(pa) => Some(pa + offset % 4096),
            None => {
                self.misuse(&format!("access through unwritten MTT entry {idx}"));
                None
            }
        }
    }

    fn lkey_ok(&self, lkey: u32) -> bool {
        self.mpts
            .values()
            .any(|(key, pa)| *pa && key.rotate_left(8) == lkey)
    }

    fn exec(&mut self, c: HcrCtrl, mem: &HostMem, out: &mut Outbox) -> Result<(), FwStatus> {
        let op = Opcode(c.opcode());
        let in_mod = self.hcr[2];
        match op {
            Opcode::QUERY_FW => {
                let mut p = Prm::<2>::default();
                p.set(prm::query_fw::FW_PAGES, self.spec.fw_pages);
                p.set(prm::query_fw::FW_REV_MAJOR, u32::from(self.spec.fw_rev.0));
                p.set(prm::query_fw::FW_REV_MINOR, u32::from(self.spec.fw_rev.1));
                p.set(
                    prm::query_fw::FW_REV_SUBMINOR,
                    u32::from(self.spec.fw_rev.2),
                );
                let mut b = [0u8; 8];
                p.write_be(&mut b);
                self.write_out_mbox(mem, &b)
            }
            Opcode::MAP_FA => {
                self.need(FwState::Stopped, "MAP_FA")?;
                let (_, _, pages) = self.map_entry(mem)?;
                self.fa_pages += pages;
                Ok(())
            }
            Opcode::RUN_FW => {
                self.need(FwState::Stopped, "RUN_FW")?;
                if self.fa_pages < u64::from(self.spec.fw_pages) {
                    self.misuse("RUN_FW before the firmware area is fully mapped");
                    return Err(FwStatus::BAD_SYS_STATE);
                }
                self.fw = FwState::Running;
                Ok(())
            }
            Opcode::QUERY_DEV_CAP => {
                if self.fw == FwState::Stopped {
                    self.misuse("QUERY_DEV_CAP before RUN_FW");
                    return Err(FwStatus::BAD_SYS_STATE);
                }
                use prm::dev_cap::*;
                let mut p = Prm::<{ DWORDS }>::default();
                p.set(LOG2_RSVD_QPS, caps::LOG2_RSVD_QPS);
                p.set(LOG_MAX_QP, caps::LOG_MAX_QP);
                p.set(LOG2_RSVD_CQS, caps::LOG2_RSVD_CQS);
                p.set(LOG_MAX_CQ, 16);
                p.set(LOG2_RSVD_EQS, caps::LOG2_RSVD_EQS);
                p.set(LOG_MAX_EQ, 9);
                p.set(LOG2_RSVD_MTTS, caps::LOG2_RSVD_MTTS);
                p.set(LOG_MAX_MTT, 20);
                p.set(LOG2_RSVD_MRWS, caps::LOG2_RSVD_MRWS);
                p.set(LOG_MAX_MPT, 17);
                p.set(NUM_PORTS, self.ports.len() as u32);
                p.set(NUM_RSVD_UARS, caps::NUM_RSVD_UARS);
                p.set(LOG_MAX_MCG, 13);
                p.set(QPC_SZ, caps::QPC);
                p.set(CQC_SZ, caps::CQC);
                p.set(EQC_SZ, caps::EQC);
                p.set(DMPT_SZ, caps::DMPT);
                p.set(MTT_SZ, caps::MTT);
                p.set(CMPT_SZ, caps::CMPT);
                p.set(AUXC_SZ, caps::AUXC);
                p.set(ALTC_SZ, caps::ALTC);
                p.set(MCG_SZ, caps::MCG);
                let mut b = [0u8; DWORDS * 4];
                p.write_be(&mut b);
                self.write_out_mbox(mem, &b)
            }
            Opcode::SET_ICM_SIZE => {
                self.need(FwState::Running, "SET_ICM_SIZE")?;
                let size = self.in_param();
                if size == 0 || size % 4096 != 0 {
                    self.misuse("ICM size not a multiple of 4 KiB");
                    return Err(FwStatus::BAD_PARAM);
                }
                self.icm_size = size;
                // One AUX page per 64 ICM pages, at least one (a model choice).
                self.aux_pages_needed = (size / 4096).div_ceil(64).max(1);
                self.set_out_imm(self.aux_pages_needed);
                Ok(())
            }
            Opcode::MAP_ICM_AUX => {
                self.need(FwState::Running, "MAP_ICM_AUX")?;
                let (_, _, pages) = self.map_entry(mem)?;
                self.aux_pages += pages;
                Ok(())
            }
            Opcode::MAP_ICM => {
                self.need(FwState::Running, "MAP_ICM")?;
                if self.aux_pages < self.aux_pages_needed {
                    self.misuse("MAP_ICM before ICM AUX is mapped");
                    return Err(FwStatus::BAD_SYS_STATE);
                }
                let (va, _, pages) = self.map_entry(mem)?;
                if va + (pages << 12) > self.icm_size {
                    self.misuse("MAP_ICM beyond SET_ICM_SIZE");
                    return Err(FwStatus::BAD_PARAM);
                }
                self.icm_map.push((va, pages));
                Ok(())
            }
            Opcode::INIT_HCA => {
                self.need(FwState::Running, "INIT_HCA")?;
                use prm::init_hca::*;
                let p: Prm<{ DWORDS }> = self.read_mbox(mem)?;
                if p.get(VERSION) != 2 {
                    self.misuse("INIT_HCA version is not 2");
                    return Err(FwStatus::BAD_PARAM);
                }
                let icm = IcmParams {
                    log_qps: p.get(LOG_NUM_QPS),
                    log_cqs: p.get(LOG_NUM_CQS),
                    log_eqs: p.get(LOG_NUM_EQS),
                    log_mpts: p.get(LOG_DMPT_SZ),
                    log_mtts: p.get(LOG_MTT_SZ),
                    log_mcg: p.get(LOG_MCG_TABLE_SZ),
                };
                let n = |l: u32| 1u64 << l;
                let regions = [
                    (p.get64(QPC_BASE), n(icm.log_qps) * u64::from(caps::QPC)),
                    (p.get64(CQC_BASE), n(icm.log_cqs) * u64::from(caps::CQC)),
                    (p.get64(EQC_BASE), n(icm.log_eqs) * u64::from(caps::EQC)),
                    (p.get64(DMPT_BASE), n(icm.log_mpts) * u64::from(caps::DMPT)),
                    (p.get64(MTT_BASE), n(icm.log_mtts) * u64::from(caps::MTT)),
                    (p.get64(MCG_BASE), n(icm.log_mcg) * u64::from(caps::MCG)),
                ];
                for (base, len) in regions {
                    if !self.icm_mapped(base, len) {
                        self.misuse(&format!(
                            "INIT_HCA region {base:#x}+{len:#x} not in mapped ICM"
                        ));
                        return Err(FwStatus::ICM_ERROR);
                    }
                }
                if icm.log_qps < caps::LOG2_RSVD_QPS || icm.log_cqs < caps::LOG2_RSVD_CQS {
                    self.misuse("INIT_HCA tables smaller than the reserved ranges");
                    return Err(FwStatus::BAD_PARAM);
                }
                self.icm = icm;
                self.fw = FwState::Initialised;
                Ok(())
            }
            Opcode::CLOSE_HCA => {
                self.need(FwState::Initialised, "CLOSE_HCA")?;
                self.fw = FwState::Running;
                self.qps.clear();
                self.cqs.clear();
                self.eqs.clear();
                Ok(())
            }
            _ => {
                self.need(FwState::Initialised, &format!("command {op:?}"))?;
                self.exec_initialised(op, c.op_mod(), in_mod, mem, out)
            }
        }
    }

    fn exec_initialised(
        &mut self,
        op: Opcode,
        op_mod: u8,
        in_mod: u32,
        mem: &HostMem,
        out: &mut Outbox,
    ) -> Result<(), FwStatus> {
        match op {
            Opcode::SW2HW_MPT => {
                let p: Prm<{ prm::mpt::DWORDS }> = self.read_mbox(mem)?;
                if in_mod < 1 << caps::LOG2_RSVD_MRWS || in_mod >= 1 << self.icm.log_mpts {
                    self.misuse("MPT index outside the usable range");
                    return Err(FwStatus::BAD_INDEX);
                }
                if p.get(prm::mpt::PD) == 0 {
                    self.misuse("MPT with PD 0");
                }
                self.mpts
                    .insert(in_mod, (p.get(prm::mpt::MEM_KEY), p.get(prm::mpt::PA) == 1));
                Ok(())
            }
            Opcode::HW2SW_MPT => self
                .mpts
                .remove(&in_mod)
                .map(|_| ())
                .ok_or(FwStatus::BAD_RES_STATE),
            Opcode::WRITE_MTT => {
                let p: Prm<{ prm::write_mtt::DWORDS + 2 * 63 }> = self.read_mbox(mem)?;
                let base = p.get64(prm::write_mtt::MTT_BASE);
                if base % u64::from(caps::MTT) != 0 {
                    self.misuse("MTT base not a multiple of the entry size");
                    return Err(FwStatus::BAD_PARAM);
                }
                let first = base / u64::from(caps::MTT);
                if in_mod == 0 || in_mod > 64 {
                    self.misuse("WRITE_MTT entry count");
                    return Err(FwStatus::BAD_PARAM);
                }
                for i in 0..u64::from(in_mod) {
                    let idx = first + i;
                    if idx < 1 << caps::LOG2_RSVD_MTTS || idx >= 1 << self.icm.log_mtts {
                        self.misuse("MTT index outside the usable range");
                        return Err(FwStatus::BAD_INDEX);
                    }
                    let dw = prm::write_mtt::FIRST_ENTRY + 2 * i as usize;
                    let e = p.get64(dw);
                    if e & 1 == 0 {
                        self.misuse("MTT entry without the present bit");
                        return Err(FwStatus::BAD_PARAM);
                    }
                    self.mtt.insert(idx as u32, e & !0xfff);
                }
                Ok(())
            }
            Opcode::SW2HW_EQ => {
                let p: Prm<{ prm::eqc::DWORDS }> = self.read_mbox(mem)?;
                if in_mod >= 1 << self.icm.log_eqs || in_mod < 1 << caps::LOG2_RSVD_EQS {
                    self.misuse("EQN outside the usable range");
                    return Err(FwStatus::BAD_INDEX);
                }
                if self.eqs.contains_key(&in_mod) {
                    self.misuse("SW2HW_EQ on an EQ in hardware ownership");
                    return Err(FwStatus::BAD_RES_STATE);
                }
                let eq = EqCtx {
                    mtt_base: p.get64(prm::eqc::MTT_BASE),
                    log_size: p.get(prm::eqc::LOG_EQ_SIZE),
                    page_offset: u64::from(p.get(prm::eqc::PAGE_OFFSET)) << 5,
                    pi: 0,
                    ci: 0,
                    mapped: false,
                };
                if self.translate(eq.mtt_base, 0).is_none() {
                    return Err(FwStatus::BAD_PARAM);
                }
                self.eqs.insert(in_mod, eq);
                Ok(())
            }
            Opcode::MAP_EQ => {
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
                        Err(FwStatus::BAD_RES_STATE)
                    }
                }
            }
            Opcode::HW2SW_EQ => {
                if self.event_eq == Some(in_mod) {
                    self.event_eq = None;
                }
                self.eqs
                    .remove(&in_mod)
                    .map(|_| ())
                    .ok_or(FwStatus::BAD_RES_STATE)
            }
            Opcode::SW2HW_CQ => {
                let p: Prm<{ prm::cqc::DWORDS }> = self.read_mbox(mem)?;
                if in_mod >= 1 << self.icm.log_cqs || in_mod < 1 << caps::LOG2_RSVD_CQS {
                    self.misuse("CQN outside the usable range");
                    return Err(FwStatus::BAD_INDEX);
                }
                if self.cqs.contains_key(&in_mod) {
                    self.misuse("SW2HW_CQ on a CQ in hardware ownership");
                    return Err(FwStatus::BAD_RES_STATE);
                }
                let eqn = p.get(prm::cqc::C_EQN);
                if !self.eqs.contains_key(&eqn) {
                    self.misuse("CQ bound to an unknown EQ");
                    return Err(FwStatus::BAD_PARAM);
                }
                let cq = CqCtx {
                    mtt_base: p.get64(prm::cqc::MTT_BASE),
                    log_size: p.get(prm::cqc::LOG_CQ_SIZE),
                    page_offset: u64::from(p.get(prm::cqc::PAGE_OFFSET)) << 5,
                    pi: 0,
                    db_record: p.get64(prm::cqc::DB_RECORD),
                };
                if self.translate(cq.mtt_base, 0).is_none() || !mem.contains(cq.db_record, 8) {
                    self.misuse("CQ buffer or doorbell record not reachable");
                    return Err(FwStatus::BAD_PARAM);
                }
                self.cqs.insert(in_mod, cq);
                Ok(())
            }
            Opcode::HW2SW_CQ => {
                if self
                    .qps
                    .values()
                    .any(|q| q.cqn_snd == in_mod || q.cqn_rcv == in_mod)
                {
                    self.misuse("HW2SW_CQ on a CQ a QP still uses");
                    return Err(FwStatus::RESOURCE_BUSY);
                }
                self.cqs
                    .remove(&in_mod)
                    .map(|_| ())
                    .ok_or(FwStatus::BAD_RES_STATE)
            }
            Opcode::CONF_SPECIAL_QP => {
                if in_mod % 8 != 0 || in_mod < 1 << caps::LOG2_RSVD_QPS {
                    self.misuse("special QP base not a multiple of 8 above the reserved QPs");
                    return Err(FwStatus::BAD_PARAM);
                }
                self.special_base = Some(in_mod);
                Ok(())
            }
            Opcode::RST2INIT_QP => self.rst2init(in_mod, mem),
            Opcode::INIT2RTR_QP | Opcode::RTR2RTS_QP | Opcode::RTS2RTS_QP => {
                let p: Prm<{ prm::qpc::DWORDS }> = self.read_mbox(mem)?;
                let key = in_mod & ((1 << self.icm.log_qps) - 1);
                let Some(qp) = self
                    .qps
                    .get(&key)
                    .copied()
                    .filter(|q| q.qpn == in_mod & 0xff_ffff)
                else {
                    self.misuse("transition of an unknown QP");
                    return Err(FwStatus::BAD_RES_STATE);
                };
                let (from, to) = match op {
                    Opcode::INIT2RTR_QP => (QpState::Init, QpState::Rtr),
                    Opcode::RTR2RTS_QP => (QpState::Rtr, QpState::Rts),
                    _ => (QpState::Rts, QpState::Rts),
                };
                if qp.state != from {
                    self.misuse(&format!("{op:?} on a QP in {:?}", qp.state));
                    return Err(FwStatus::BAD_QP_STATE);
                }
                let mut qp = qp;
                qp.state = to;
                if op == Opcode::INIT2RTR_QP {
                    qp.mtu = p.get(prm::qpc::MTU);
                    if p.get(prm::qpc::QKEY) != 0 {
                        qp.qkey = p.get(prm::qpc::QKEY);
                    }
                }
                if op == Opcode::RTS2RTS_QP
                    && p.get(prm::qpc::OPT_PARAM_MASK) & prm::qpc::OPT_PARAM_QKEY != 0
                {
                    qp.qkey = p.get(prm::qpc::QKEY);
                }
                self.qps.insert(key, qp);
                Ok(())
            }
            Opcode::TO_RST_QP => {
                let key = in_mod & ((1 << self.icm.log_qps) - 1);
                match self.qps.remove(&key) {
                    Some(_) => Ok(()),
                    None => {
                        self.misuse("2RST on a QP in RESET");
                        Err(FwStatus::BAD_RES_STATE)
                    }
                }
            }
            Opcode::MAD_IFC => {
                let port = self.port_arg(in_mod)?;
                let mut b = [0u8; 256];
                if mem.read(self.in_param(), &mut b).is_err() {
                    self.counters.dma_faults += 1;
                    return Err(FwStatus::BAD_PARAM);
                }
                let req = Mad::parse(&b).map_err(|_| FwStatus::BAD_PKT)?;
                let resp = self.sma(port, &req);
                self.counters.mad_ifc += 1;
                self.write_out_mbox(mem, resp.as_bytes())
            }
            Opcode::MGID_HASH => {
                let mut g = [0u8; 16];
                if mem.read(self.in_param(), &mut g).is_err() {
                    self.counters.dma_faults += 1;
                    return Err(FwStatus::BAD_PARAM);
                }
                let h = mgid_hash(&Gid(g)) & ((1 << self.icm.log_mcg) - 1);
                self.set_out_imm(u64::from(h));
                Ok(())
            }
            Opcode::READ_MCG => {
                if in_mod >= 1 << self.icm.log_mcg {
                    self.misuse("MCG index out of range");
                    return Err(FwStatus::BAD_INDEX);
                }
                let e = self.mcg.get(&in_mod).copied().unwrap_or_default();
                let mut b = [0u8; prm::mcg::DWORDS * 4];
                e.write_be(&mut b);
                self.write_out_mbox(mem, &b)
            }
            Opcode::WRITE_MCG => {
                if in_mod >= 1 << self.icm.log_mcg {
                    self.misuse("MCG index out of range");
                    return Err(FwStatus::BAD_INDEX);
                }
                let e: Prm<{ prm::mcg::DWORDS }> = self.read_mbox(mem)?;
                self.mcg.insert(in_mod, e);
                Ok(())
            }
            Opcode::QUERY_PORT => {
                let port = self.port_arg(in_mod)?;
                let mut p = Prm::<{ prm::query_port::DWORDS }>::default();
                p.set(prm::query_port::IB, 1);
                p.set(prm::query_port::MAX_MTU, 5);
                let mac =
                    (self.spec.node_guid & 0xff_ffff) | (u64::from(port) << 24) | 0x0002_c900_0000;
                p.set(prm::query_port::MAC_H, (mac >> 32) as u32);
                p.set(prm::query_port::MAC_L, mac as u32);
                let mut b = [0u8; prm::query_port::DWORDS * 4];
                p.write_be(&mut b);
                self.write_out_mbox(mem, &b)
            }
            Opcode::SET_PORT => {
                let port = self.port_arg(in_mod)?;
                if op_mod != 0 {
                    self.misuse("SET_PORT for Ethernet on an IB-only model");
                    return Err(FwStatus::BAD_PARAM);
                }
                let p: Prm<{ prm::set_port::DWORDS }> = self.read_mbox(mem)?;
                if p.get(prm::set_port::MMC) == 1 {
                    let cap = p.get(prm::set_port::MTU_CAP) as u8;
                    if !(1..=5).contains(&cap) {
                        self.misuse("SET_PORT MTU cap out of range");
                        return Err(FwStatus::BAD_PARAM);
                    }
                    self.ports[usize::from(port - 1)].mtu_cap = cap;
                }
                Ok(())
            }
            Opcode::INIT_PORT => {
                let port = self.port_arg(in_mod)?;
                let p = &mut self.ports[usize::from(port - 1)];
                if p.initialised {
                    self.misuse("INIT_PORT on an initialised port");
                    return Err(FwStatus::BAD_SYS_STATE);
                }
                p.initialised = true;
                out.ports_initialized.push(port);
                Ok(())
            }
            Opcode::CLOSE_PORT => {
                let port = self.port_arg(in_mod)?;
                let p = &mut self.ports[usize::from(port - 1)];
                p.initialised = false;
                p.state = PortState::DOWN;
                out.ports_closed.push(port);
                Ok(())
            }
            Opcode::UNMAP_FA | Opcode::UNMAP_ICM | Opcode::UNMAP_ICM_AUX => Ok(()),
            _ => {
                self.misuse(&format!("unsupported opcode {op:?}"));
                Err(FwStatus::BAD_OP)
            }
        }
    }

    fn rst2init(&mut self, qpn: u32, mem: &HostMem) -> Result<(), FwStatus> {
        let p: Prm<{ prm::qpc::DWORDS }> = self.read_mbox(mem)?;
        let Some(base) = self.special_base else {
            self.misuse("RST2INIT before CONF_SPECIAL_QP");
            return Err(FwStatus::BAD_SYS_STATE);
        };
        let qpn = qpn & 0xff_ffff;
        let key = qpn & ((1 << self.icm.log_qps) - 1);
        let st = p.get(prm::qpc::ST);
        let special = (base..base + 8).contains(&qpn);
        if special && st != prm::qpc::ST_MLX {
            self.misuse("special QP not of type MLX");
            return Err(FwStatus::BAD_PARAM);
        }
        if !special && (st != prm::qpc::ST_UD || key < base + 8) {
            self.misuse(
                "ordinary QP must be UD above the special QPs (the model supports UD only)",
            );
            return Err(FwStatus::BAD_PARAM);
        }
        if self.qps.contains_key(&key) {
            self.misuse("RST2INIT on a QP not in RESET");
            return Err(FwStatus::BAD_QP_STATE);
        }
        let cqn_snd = p.get(prm::qpc::CQN_SND);
        let cqn_rcv = p.get(prm::qpc::CQN_RCV);
        if !self.cqs.contains_key(&cqn_snd) || !self.cqs.contains_key(&cqn_rcv) {
            self.misuse("QP bound to an unknown CQ");
            return Err(FwStatus::BAD_PARAM);
        }
        if p.get(prm::qpc::LOG_SQ_STRIDE) != 3 || p.get(prm::qpc::LOG_RQ_STRIDE) != 1 {
            self.misuse("QP strides other than 128/32 bytes");
            return Err(FwStatus::BAD_PARAM);
        }
        let port = ((p.get(prm::qpc::SCHED_QUEUE) >> 6) & 1) as u8 + 1;
        if usize::from(port) > self.ports.len() {
            self.misuse("QP on a port the device does not have");
            return Err(FwStatus::BAD_PARAM);
        }
        let qp = QpCtx {
            qpn,
            mlx: special,
            state: QpState::Init,
            port,
            cqn_snd,
            cqn_rcv,
            log_sq: p.get(prm::qpc::LOG_SQ_SIZE),
            log_rq: p.get(prm::qpc::LOG_RQ_SIZE),
            mtt_base: p.get64(prm::qpc::MTT_BASE),
            rdb: p.get64(prm::qpc::RDB_RECORD),
            qkey: p.get(prm::qpc::QKEY),
            mtu: 4,
            sq_ci: 0,
            rq_ci: 0,
            psn: 0,
        };
        if self.translate(qp.mtt_base, 0).is_none() || !mem.contains(qp.rdb, 4) {
            self.misuse("QP buffer or doorbell record not reachable");
            return Err(FwStatus::BAD_PARAM);
        }
        if special && p.get(prm::qpc::PD) == 0 {
            self.misuse("special QP with PD 0");
        }
        self.qps.insert(key, qp);
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
        event_type: u32,
        sub_type: u32,
        fill: impl FnOnce(&mut Prm<8>),
    ) {
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
        let mut e = Prm::<8>::default();
        e.set(prm::eqe::EVENT_TYPE, event_type);
        e.set(prm::eqe::SUB_TYPE, sub_type);
        fill(&mut e);
        e.set(prm::eqe::OWNER, u32::from(eq.pi & n != 0));
        let off = eq.page_offset + u64::from(eq.pi & (n - 1)) * prm::eqe::SIZE as u64;
        if let Some(pa) = self.translate(eq.mtt_base, off) {
            let mut b = [0u8; 32];
            e.write_be(&mut b);
            // Body first, then the byte holding the ownership bit.
            if mem
                .write(pa, &b[..31])
                .and_then(|_| mem.write(pa + 31, &b[31..]))
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

    /// Port state change event (0x09).
    pub fn port_state_event(&mut self, mem: &HostMem, port: u8, up: bool) {
        let sub = if up {
            prm::eqe::SUBTYPE_PORT_ACTIVE
        } else {
            prm::eqe::SUBTYPE_PORT_DOWN
        };
        self.post_event(mem, prm::eqe::TYPE_PORT_STATE_CHANGE, sub, |e| {
            e.set(prm::eqe::PSC_PORT, u32::from(port));
        });
    }

    /// Port management change event (0x1d).
    pub fn port_mgmt_event(&mut self, mem: &HostMem, port: u8) {
        self.post_event(mem, prm::eqe::TYPE_PORT_MGMT_CHANGE, 0, |e| {
            e.set(prm::eqe::PMC_PORT, u32::from(port));
        });
    }

    fn write_cqe(&mut self, mem: &HostMem, cqn: u32, fill: impl FnOnce(&mut Prm<8>)) {
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
                e.set(prm::eqe::CQN, cqn)
            });
            return;
        }
        let mut e = Prm::<8>::default();
        fill(&mut e);
        e.set(prm::cqe::OWNER, u32::from(cq.pi & n != 0));
        let off = cq.page_offset + u64::from(cq.pi & (n - 1)) * prm::cqe::SIZE as u64;
        if let Some(pa) = self.translate(cq.mtt_base, off) {
            let mut b = [0u8; 32];
            e.write_be(&mut b);
            if mem
                .write(pa, &b[..31])
                .and_then(|_| mem.write(pa + 31, &b[31..]))
                .is_err()
            {
                self.counters.dma_faults += 1;
                return;
            }
            cq.pi = cq.pi.wrapping_add(1);
            self.cqs.insert(cqn, cq);
            self.counters.cqes += 1;
            if e.get(prm::cqe::OPCODE) >= prm::cqe::OPCODE_ERROR {
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
        self.write_cqe(mem, cqn, |e| {
            e.set(prm::cqe::QPN, qpn);
            e.set(prm::cqe::OPCODE, prm::cqe::OPCODE_ERROR);
            e.set(prm::cqe::S_R, u32::from(send));
            e.set(prm::cqe::SYNDROME, u32::from(syndrome));
            e.set(prm::cqe::WQE_COUNTER, counter & 0xffff);
        });
    }

    fn process_sq(&mut self, qpn: u32, mem: &HostMem, out: &mut Outbox) {
        let key = qpn & ((1u32 << self.icm.log_qps.min(24)) - 1);
        let Some(mut qp) = self.qps.get(&key).copied().filter(|q| q.qpn == qpn) else {
            self.misuse(&format!("send doorbell for unknown QPN {qpn:#x}"));
            return;
        };
        if qp.state != QpState::Rts {
            self.misuse(&format!("send doorbell on QPN {qpn:#x} in {:?}", qp.state));
            return;
        }
        let n = 1u32 << qp.log_sq;
        loop {
            let off = u64::from(qp.sq_ci & (n - 1)) * prm::send_wqe::STRIDE as u64;
            let Some(pa) = self.translate(qp.mtt_base, off) else {
                break;
            };
            let mut b = [0u8; prm::send_wqe::DWORDS * 4];
            if mem.read(pa, &mut b).is_err() {
                self.counters.dma_faults += 1;
                break;
            }
            let w = Prm::<{ prm::send_wqe::DWORDS }>::from_be(&b);
            if w.get(prm::send_wqe::OWNER) != u32::from(qp.sq_ci & n != 0) {
                break;
            }
            self.counters.wqes += 1;
            let counter = qp.sq_ci;
            qp.sq_ci = qp.sq_ci.wrapping_add(1);
            let signalled = w.get(prm::send_wqe::C) == 0b11;
            match self.execute_wqe(&mut qp, &w, mem, out) {
                Ok(len) => {
                    if signalled {
                        self.write_cqe(mem, qp.cqn_snd, |e| {
                            e.set(prm::cqe::QPN, qp.qpn);
                            e.set(prm::cqe::OPCODE, prm::cqe::OPCODE_SEND);
                            e.set(prm::cqe::S_R, 1);
                            e.set(prm::cqe::BYTE_CNT, len);
                            e.set(prm::cqe::WQE_COUNTER, counter & 0xffff);
                        });
                    }
                }
                Err(syndrome) => self.error_cqe(mem, qp.cqn_snd, qp.qpn, true, counter, syndrome),
            }
        }
        self.qps.insert(key, qp);
    }

    /// Executes one send WQE; returns the bytes sent or an error syndrome.
    fn execute_wqe(
        &mut self,
        qp: &mut QpCtx,
        w: &Prm<{ prm::send_wqe::DWORDS }>,
        mem: &HostMem,
        out: &mut Outbox,
    ) -> Result<u32, u8> {
        use prm::send_wqe as sw;
        if w.get(sw::OPCODE) != sw::OPCODE_SEND {
            self.misuse("send WQE with an opcode other than SEND on a UD/MLX QP");
            return Err(0x02);
        }
        let ds = w.get(sw::DS);
        let d = if qp.mlx { sw::MLX_DATA } else { sw::UD_DATA };
        if (qp.mlx && ds != sw::MLX_DS) || (!qp.mlx && ds != sw::UD_DS) {
            self.misuse("send WQE size (ds) does not match its segments");
            return Err(0x02);
        }
        let len = w.0[d] & 0x7fff_ffff;
        let lkey = w.0[d + sw::DATA_LKEY];
        let addr = w.get64(d + sw::DATA_ADDR);
        if !self.lkey_ok(lkey) {
            warn!("hca-sim: send with invalid L_Key {lkey:#x}");
            return Err(0x04);
        }
        let mut data = vec![0u8; len as usize];
        if mem.read(addr, &mut data).is_err() {
            self.counters.dma_faults += 1;
            return Err(0x11);
        }
        let port = qp.port;
        let p = self.ports[usize::from(port - 1)].clone();
        if qp.mlx {
            // Software built LRH..DETH; the hardware computes the ICRC over it.
            if data.len() < 8 + 12 + 8 + 4 {
                return Err(0x01);
            }
            let at = data.len() - 4;
            let icrc = crc::icrc(&data[..at]);
            data[at..].copy_from_slice(&icrc.to_le_bytes());
            if UdPacket::parse(&data).is_err() {
                self.misuse("MLX WQE carries a malformed packet");
                return Err(0x02);
            }
            let gsi_ok = p.state == PortState::ACTIVE;
            if !gsi_ok {
                self.counters.tx_dropped += 1;
                return Ok(len);
            }
        } else {
            if len as usize > hca::wire::smp::mtu::bytes(qp.mtu as u8) {
                return Err(0x01);
            }
            if p.state != PortState::ACTIVE {
                self.counters.tx_dropped += 1;
                return Ok(len);
            }
            let qkey_wqe = w.get(sw::QKEY);
            // IBA §10.2.5: a Q_Key with the high bit set means "use the QP's own".
            let qkey = if qkey_wqe & 0x8000_0000 != 0 {
                qp.qkey
            } else {
                qkey_wqe
            };
            let grh = (w.get(sw::AV_G) == 1).then(|| {
                let mut g = [0u8; 16];
                Prm::<4>(w.0[sw::AV_GID..sw::AV_GID + 4].try_into().unwrap_or([0; 4]))
                    .write_be(&mut g);
                GrhRepr {
                    sgid: Gid::from_parts(p.gid_prefix, self.port_guid(port)),
                    dgid: Gid(g),
                    hop_limit: w.get(sw::AV_HOP_LIMIT) as u8,
                    tclass: w.get(sw::AV_TCLASS) as u8,
                    flow_label: w.get(sw::AV_FLOW_LABEL),
                }
            });
            let repr = UdPacketRepr {
                vl: 0,
                sl: w.get(sw::AV_SL) as u8,
                dlid: Lid(w.get(sw::AV_RLID) as u16),
                slid: Lid(p.lid),
                grh,
                pkey: p.pkeys.first().copied().unwrap_or(0xffff),
                dest_qpn: Qpn(w.get(sw::DEST_QP)),
                psn: qp.psn,
                qkey,
                src_qpn: Qpn(qp.qpn),
            };
            qp.psn = (qp.psn + 1) & 0xff_ffff;
            let mut pkt = vec![0u8; repr.buffer_len(data.len())];
            if repr.emit(&data, &mut pkt).is_err() {
                return Err(0x01);
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
            let idx = mgid_hash(&g.dgid) & ((1 << self.icm.log_mcg) - 1);
            if let Some(e) = self.mcg.get(&idx) {
                let mut mg = [0u8; 16];
                Prm::<4>(
                    e.0[prm::mcg::MGID..prm::mcg::MGID + 4]
                        .try_into()
                        .unwrap_or([0; 4]),
                )
                .write_be(&mut mg);
                if mg == g.dgid.0 {
                    let n = (e.get(prm::mcg::MEMBERS) as usize).min(prm::mcg::MAX_QPS);
                    targets.extend(
                        e.0[prm::mcg::QP0..prm::mcg::QP0 + n]
                            .iter()
                            .map(|q| q & prm::mcg::QPN_MASK),
                    );
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
        let key = qpn & ((1u32 << self.icm.log_qps.min(24)) - 1);
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
        let sq_bytes = (1u64 << qp.log_sq) * prm::send_wqe::STRIDE as u64;
        let off = sq_bytes + u64::from(qp.rq_ci & (n - 1)) * prm::recv_wqe::STRIDE as u64;
        let counter = qp.rq_ci;
        qp.rq_ci = qp.rq_ci.wrapping_add(1);
        self.qps.insert(key, qp);
        let Some(pa) = self.translate(qp.mtt_base, off) else {
            return;
        };
        let mut b = [0u8; prm::recv_wqe::STRIDE];
        if mem.read(pa, &mut b).is_err() {
            self.counters.dma_faults += 1;
            return;
        }
        let w = Prm::<{ prm::recv_wqe::DWORDS }>::from_be(&b);
        let mut scatter = Vec::new();
        for i in 0..2 {
            let lkey = w.0[4 * i + 1];
            if lkey == prm::recv_wqe::INVALID_LKEY {
                break;
            }
            if !self.lkey_ok(lkey) {
                self.error_cqe(mem, qp.cqn_rcv, qpn, false, counter, 0x04);
                return;
            }
            scatter.push((w.get64(4 * i + 2), w.0[4 * i] as usize));
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
            self.error_cqe(mem, qp.cqn_rcv, qpn, false, counter, 0x01);
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
                self.error_cqe(mem, qp.cqn_rcv, qpn, false, counter, 0x11);
                return;
            }
            at += take;
        }
        self.counters.rx_packets += 1;
        let total = stream.len() as u32;
        self.write_cqe(mem, qp.cqn_rcv, |e| {
            e.set(prm::cqe::QPN, qpn);
            e.set(prm::cqe::OPCODE, prm::cqe::OPCODE_RECV_SEND);
            e.set(prm::cqe::SRQ_RQPN, r.src_qpn.0);
            e.set(prm::cqe::G, u32::from(r.grh.is_some()));
            e.set(prm::cqe::SLID, u32::from(r.slid.0));
            e.set(prm::cqe::SL, u32::from(r.sl));
            e.set(prm::cqe::BYTE_CNT, total);
            e.set(prm::cqe::WQE_COUNTER, counter & 0xffff);
        });
    }
}

/// The model's MGID hash (the real hash function is firmware-defined; any deterministic hash
/// serves the driver, which only uses the index it is given).
pub fn mgid_hash(g: &Gid) -> u32 {
    crc::crc32(&g.0) & 0xffff
}
