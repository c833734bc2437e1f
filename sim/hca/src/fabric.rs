//! The world: a stepped clock, an event queue, simulated HCAs with their host memory, switches
//! and links, a subnet manager (LID assignment, DOWN→INIT→ARMED→ACTIVE, SM LID, sweeps; its
//! SMPs on the wire: [`smi`]) and a subnet administrator (MCMemberRecord join/leave/get,
//! PathRecord get), multicast fan-out and the fault chain.

mod bridge;
mod smi;

pub use bridge::{BridgeStats, MadPeer, PeerMad, PeerPort};

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};

use hca::wire::headers::{UdPacket, UdPacketRepr};
use hca::wire::mad::{AttrId, Mad, MadMethod, MadStatus, MgmtClass};
use hca::wire::sa::{self, McMemberMask, McMemberRecord, PathRecord, PathRecordMask};
use hca::wire::smp::PortState;
use hca::wire::{Gid, Lid, Qpn, GSI_QKEY};
use log::{debug, warn};
use zerocopy::byteorder::big_endian::{U16, U32};
use zerocopy::IntoBytes;

use crate::capture::PcapWriter;
use crate::device::{Device, Outbox};
use crate::faults::{Middleware, Rng, Verdict};
use crate::mem::HostMem;

/// Index of a simulated HCA.
pub type NodeId = usize;
/// Index of a switch.
pub type SwitchId = usize;
/// Index of a link.
pub type LinkId = usize;

/// One end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// An HCA port.
    Hca {
        /// Node.
        node: NodeId,
        /// Port (1-based).
        port: u8,
    },
    /// A switch.
    Switch(SwitchId),
    /// The subnet manager's own port.
    Sm,
}

#[derive(Clone, Copy, Debug)]
struct Link {
    a: Endpoint,
    b: Endpoint,
    up: bool,
}

/// Subnet manager configuration.
#[derive(Clone, Debug)]
pub struct SmConfig {
    /// Is there an SM at all?
    pub present: bool,
    /// When it starts sweeping (ns); a "late SM" starts after the hosts.
    pub start_at_ns: u64,
    /// Sweep interval (ns).
    pub sweep_interval_ns: u64,
    /// Delay from ARMED to ACTIVE (ns).
    pub activate_delay_ns: u64,
    /// A port coming up triggers a sweep after this delay (switch trap), if set.
    pub trap_sweep_ns: Option<u64>,
    /// The SM's LID.
    pub lid: u16,
    /// GID prefix handed out.
    pub gid_prefix: u64,
    /// P_Key table programmed into every port.
    pub pkeys: Vec<u16>,
    /// IPoIB broadcast groups created at start: (P_Key, Q_Key).
    pub ipoib_groups: Vec<(u16, u32)>,
    /// MTU of created groups (IB encoding).
    pub group_mtu: u8,
}

impl Default for SmConfig {
    fn default() -> Self {
        Self {
            present: true,
            start_at_ns: 0,
            sweep_interval_ns: 10_000_000_000,
            activate_delay_ns: 1_000_000,
            trap_sweep_ns: Some(50_000_000),
            lid: 1,
            gid_prefix: 0xfe80_0000_0000_0000,
            pkeys: vec![0xffff],
            // OpenSM's default partition creates the IPv4 broadcast group with Q_Key 0x0b1b
            // (from memory; reference §8 item 3).
            ipoib_groups: vec![(0xffff, 0x0b1b)],
            group_mtu: 4,
        }
    }
}

/// A link's signalling rate, 4x wide (IBA Vol. 2, the physical layer): the data rate after
/// line coding is what a link carries. SDR, DDR and QDR use 8b/10b (2.5, 5 and 10 Gbaud per
/// lane: 8, 16 and 32 Gb/s of data at 4x); FDR 64b/66b at 14.0625 Gbaud (54.54 Gb/s); EDR
/// 64b/66b at 25.78125 Gbaud (100 Gb/s); HDR 53.125 Gbaud PAM4 with RS-FEC (200 Gb/s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkRate {
    /// Single data rate, 4x: 8 Gb/s of data.
    Sdr,
    /// Double data rate, 4x: 16 Gb/s.
    Ddr,
    /// Quad data rate, 4x: 32 Gb/s (the default: ConnectX-2/-3 era).
    #[default]
    Qdr,
    /// Fourteen data rate, 4x: 54.54 Gb/s.
    Fdr,
    /// Enhanced data rate, 4x: 100 Gb/s.
    Edr,
    /// High data rate, 4x: 200 Gb/s.
    Hdr,
}

impl LinkRate {
    /// Every rate, slowest first.
    pub const ALL: [LinkRate; 6] = [
        LinkRate::Sdr,
        LinkRate::Ddr,
        LinkRate::Qdr,
        LinkRate::Fdr,
        LinkRate::Edr,
        LinkRate::Hdr,
    ];

    /// Data bits per second (after line coding).
    pub fn data_bps(self) -> u64 {
        match self {
            LinkRate::Sdr => 8_000_000_000,
            LinkRate::Ddr => 16_000_000_000,
            LinkRate::Qdr => 32_000_000_000,
            LinkRate::Fdr => 54_545_454_545,
            LinkRate::Edr => 100_000_000_000,
            LinkRate::Hdr => 200_000_000_000,
        }
    }

    /// The rate's name (`QDR`).
    pub fn name(self) -> &'static str {
        match self {
            LinkRate::Sdr => "SDR",
            LinkRate::Ddr => "DDR",
            LinkRate::Qdr => "QDR",
            LinkRate::Fdr => "FDR",
            LinkRate::Edr => "EDR",
            LinkRate::Hdr => "HDR",
        }
    }

    /// The rate named `s` (`sdr`, `QDR`, ...).
    pub fn parse(s: &str) -> Option<LinkRate> {
        LinkRate::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s))
    }

    /// Nanoseconds to put `bytes` on the wire.
    pub fn serialize_ns(self, bytes: usize) -> u64 {
        let bits = (bytes as u64).saturating_mul(8);
        // bits * 1e9 / bps, rounded up, without overflow for any packet size.
        let bps = self.data_bps();
        (u128::from(bits) * 1_000_000_000).div_ceil(u128::from(bps)) as u64
    }
}

/// What the fabric did, for a timeline ([`World::record_events`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FabricEventKind {
    /// An SM sweep.
    Sweep,
    /// A port changed state (DOWN, INIT, ARMED, ACTIVE).
    PortState {
        /// Node.
        node: NodeId,
        /// Port.
        port: u8,
        /// The new state.
        state: PortState,
    },
    /// The SA received a request from a port (`None`: a source it could not place).
    SaRequest {
        /// The requesting port.
        from: Option<(NodeId, u8)>,
        /// The attribute (MCMemberRecord 0x38, PathRecord 0x35).
        attr: u16,
    },
}

/// A fabric event at a simulated time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FabricEvent {
    /// When (ns of simulated time).
    pub at_ns: u64,
    /// What.
    pub kind: FabricEventKind,
}

/// World configuration.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// RNG seed.
    pub seed: u64,
    /// Per-hop latency (ns): a switch's cut-through forwarding plus the cable's flight time
    /// (about 100-200 ns for a QDR-era switch, 5 ns per metre of cable); 1 µs by default, a
    /// conservative figure that also covers the HCA's own pipeline.
    pub hop_latency_ns: u64,
    /// Every link's rate: a packet takes its size over the data rate to leave a port, and a
    /// port sends one packet at a time (a sender queues behind itself).
    pub link_rate: LinkRate,
    /// Subnet manager.
    pub sm: SmConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            hop_latency_ns: 1_000,
            link_rate: LinkRate::default(),
            sm: SmConfig::default(),
        }
    }
}

/// Fabric-level counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FabricStats {
    /// Packets handed to an endpoint.
    pub delivered: u64,
    /// Packets dropped by the fault chain.
    pub fault_drops: u64,
    /// Packets with no route (unknown LID, link down).
    pub unroutable: u64,
    /// SA requests handled.
    pub sa_requests: u64,
    /// SA requests answered with a non-zero status.
    pub sa_errors: u64,
    /// SM sweeps.
    pub sweeps: u64,
    /// SM restarts.
    pub sm_restarts: u64,
    /// Ports the SM brought to ACTIVE.
    pub activations: u64,
    /// Packets written to the capture.
    pub captured: u64,
    /// SMPs the SM sent.
    pub smps: u64,
    /// SMP answers that reached the SM.
    pub smp_answers: u64,
}

#[derive(Clone, Debug)]
struct Group {
    qkey: u32,
    mlid: u16,
    pkey: u16,
    mtu: u8,
    members: BTreeSet<(NodeId, u8)>,
}

#[derive(Debug)]
enum Ev {
    CmdDone(NodeId),
    Deliver(Endpoint, Vec<u8>),
    LinkTrained(NodeId, u8),
    SmSweep,
    SmActivate(NodeId, u8),
    LinkSet(LinkId, bool),
    LidChange(NodeId, u8, u16),
    SmRestart,
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        // Min-heap on (time, sequence).
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// A simulated HCA and its host.
#[derive(Debug)]
pub struct Node {
    /// The device model.
    pub dev: Device,
    /// The host's DMA memory.
    pub mem: HostMem,
}

/// Everything simulated.
pub struct World {
    /// Current time (ns).
    pub now: u64,
    seq: u64,
    /// The seeded RNG.
    pub rng: Rng,
    events: BinaryHeap<Scheduled>,
    /// HCAs.
    pub nodes: Vec<Node>,
    switches: usize,
    links: Vec<Link>,
    /// Configuration.
    pub cfg: SimConfig,
    sm_running: bool,
    /// The SM restarted: its next sweep recreates the configured groups and asks every
    /// ACTIVE port to re-register (ClientReregister).
    sm_restarted: bool,
    /// The SM's GUID→LID map (OpenSM's `guid2lid` cache: it survives a restart, so LIDs stay).
    lids: HashMap<(NodeId, u8), u16>,
    next_lid: u16,
    groups: BTreeMap<Gid, Group>,
    next_mlid: u16,
    /// The fault chain.
    pub faults: Vec<Box<dyn Middleware>>,
    /// Fabric counters.
    pub stats: FabricStats,
    capture: Option<Capture>,
    bridge: Option<bridge::Bridge>,
    /// When each sending port's link is free again (ns).
    tx_free: HashMap<Endpoint, u64>,
    events_log: Option<Vec<FabricEvent>>,
}

/// A capture in progress: where records go, and the first write error (the capture stops
/// there; [`World::stop_capture`] reports it).
struct Capture {
    writer: PcapWriter<Box<dyn std::io::Write>>,
    error: Option<std::io::Error>,
}

impl core::fmt::Debug for World {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl World {
    /// A world with no devices.
    pub fn new(cfg: SimConfig) -> Self {
        let mut w = Self {
            now: 0,
            seq: 0,
            rng: Rng::new(cfg.seed),
            events: BinaryHeap::new(),
            nodes: Vec::new(),
            switches: 0,
            links: Vec::new(),
            cfg,
            sm_running: false,
            sm_restarted: false,
            lids: HashMap::new(),
            next_lid: 2,
            groups: BTreeMap::new(),
            next_mlid: 0xc000,
            faults: Vec::new(),
            stats: FabricStats::default(),
            capture: None,
            bridge: None,
            tx_free: HashMap::new(),
            events_log: None,
        };
        if w.cfg.sm.present {
            let at = w.cfg.sm.start_at_ns;
            w.schedule_at(at, Ev::SmSweep);
        }
        w
    }

    /// Starts (or with `false` stops) recording the fabric's events.
    pub fn record_events(&mut self, on: bool) {
        self.events_log = on.then(Vec::new);
    }

    /// The events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<FabricEvent> {
        self.events_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub(crate) fn log_event(&mut self, kind: FabricEventKind) {
        let at_ns = self.now;
        if let Some(l) = self.events_log.as_mut() {
            l.push(FabricEvent { at_ns, kind });
        }
    }

    /// The delay before a packet of `len` bytes from `from` has left its port: the link's
    /// queue behind earlier packets, then its serialization at the link rate.
    fn serialize(&mut self, from: Endpoint, len: usize) -> u64 {
        let now = self.now;
        let free = self.tx_free.get(&from).copied().unwrap_or(0).max(now);
        let done = free + self.cfg.link_rate.serialize_ns(len);
        self.tx_free.insert(from, done);
        done - now
    }

    fn schedule_at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.events.push(Scheduled {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        });
    }

    fn schedule(&mut self, delay: u64, ev: Ev) {
        self.schedule_at(self.now + delay, ev);
    }

    /// Adds an HCA.
    pub fn add_node(&mut self, dev: Device) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node {
            dev,
            mem: HostMem::new(0x1_0000_0000 * (id as u64 + 1)),
        });
        id
    }

    /// Adds a switch.
    pub fn add_switch(&mut self) -> SwitchId {
        self.switches += 1;
        self.switches - 1
    }

    /// Adds a link (up).
    pub fn add_link(&mut self, a: Endpoint, b: Endpoint) -> LinkId {
        for e in [a, b] {
            if let Endpoint::Hca { node, port } = e {
                if let Some(p) = self
                    .nodes
                    .get_mut(node)
                    .and_then(|n| n.dev.ports.get_mut(usize::from(port) - 1))
                {
                    p.cable_up = true;
                }
            }
        }
        self.links.push(Link { a, b, up: true });
        self.links.len() - 1
    }

    /// Schedules a link state change `delay_ns` from now.
    pub fn schedule_link(&mut self, link: LinkId, up: bool, delay_ns: u64) {
        self.schedule(delay_ns, Ev::LinkSet(link, up));
    }

    /// Schedules an SM restart `delay_ns` from now: the SM forgets its multicast groups (their
    /// members with them) and sweeps at once, keeping its GUID→LID map (LIDs stay, as OpenSM's
    /// `guid2lid` cache keeps them), recreating its configured groups with new MLIDs and setting
    /// ClientReregister on every ACTIVE port, whose clients must then join again.
    pub fn schedule_sm_restart(&mut self, delay_ns: u64) {
        self.schedule(delay_ns, Ev::SmRestart);
    }

    /// Schedules a LID change (the SM reassigns a port's LID).
    pub fn schedule_lid_change(&mut self, node: NodeId, port: u8, lid: u16, delay_ns: u64) {
        self.schedule(delay_ns, Ev::LidChange(node, port, lid));
    }

    /// Schedules a command completion.
    pub fn command_started(&mut self, node: NodeId) {
        let lat = self.nodes[node].dev.spec.cmd_latency_ns;
        self.schedule(lat, Ev::CmdDone(node));
    }

    /// Runs events up to `now + ns`.
    pub fn run_for(&mut self, ns: u64) {
        self.bridge_poll();
        let end = self.now.saturating_add(ns);
        while let Some(top) = self.events.peek() {
            if top.at > end {
                break;
            }
            let Some(s) = self.events.pop() else { break };
            self.now = s.at;
            self.handle(s.ev);
        }
        self.now = end;
    }

    /// Carries out a device's side effects.
    pub fn apply(&mut self, node: NodeId, out: Outbox) {
        for port in out.ports_initialized {
            let n = &self.nodes[node];
            if n.dev.ports[usize::from(port) - 1].cable_up {
                let t = n.dev.spec.link_training_ns;
                self.schedule(t, Ev::LinkTrained(node, port));
            }
        }
        for port in out.ports_closed {
            self.leave_all(node, port);
        }
        for (port, bytes) in out.tx {
            self.transmit(Endpoint::Hca { node, port }, bytes);
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::CmdDone(node) => {
                let mut out = Outbox::default();
                let n = &mut self.nodes[node];
                n.dev.complete_command(&n.mem, &mut out);
                self.apply(node, out);
            }
            Ev::Deliver(Endpoint::Hca { node, port }, bytes) => {
                self.stats.delivered += 1;
                // QP0 belongs to the port's SMA; the rest to the device.
                match UdPacket::parse(&bytes) {
                    Ok(p) if p.repr.dest_qpn == Qpn::SMI => self.sma_receive(node, port, &p),
                    _ => {
                        let n = &mut self.nodes[node];
                        n.dev.receive(port, &bytes, &n.mem);
                    }
                }
            }
            Ev::Deliver(Endpoint::Sm, bytes) => {
                self.stats.delivered += 1;
                match UdPacket::parse(&bytes) {
                    Ok(p) if p.repr.dest_qpn == Qpn::SMI => self.sm_receive_smp(&p),
                    _ => self.sa_receive(&bytes),
                }
            }
            Ev::Deliver(Endpoint::Switch(_), _) => {}
            Ev::LinkTrained(node, port) => {
                let p = &mut self.nodes[node].dev.ports[usize::from(port) - 1];
                if p.initialised && p.cable_up && p.state == PortState::DOWN {
                    // Physical link up: INIT. No event (reference §1.3: some firmware sends none).
                    p.state = PortState::INIT;
                    debug!("hca-sim: node {node} port {port} INIT");
                    self.log_event(FabricEventKind::PortState {
                        node,
                        port,
                        state: PortState::INIT,
                    });
                    if self.sm_running {
                        if let Some(d) = self.cfg.sm.trap_sweep_ns {
                            self.schedule(d, Ev::SmSweep);
                        }
                    }
                }
            }
            Ev::SmSweep => self.sweep(),
            Ev::SmActivate(node, port) => {
                let p = &self.nodes[node].dev.ports[usize::from(port) - 1];
                if p.state == PortState::ARMED {
                    let lid = p.lid;
                    self.sm_set_port(node, port, PortState::ACTIVE, lid);
                }
            }
            Ev::LinkSet(link, up) => self.set_link(link, up),
            Ev::SmRestart => {
                if self.cfg.sm.present {
                    debug!("hca-sim: SM restart: multicast groups forgotten");
                    self.groups.clear();
                    self.sm_restarted = true;
                    self.stats.sm_restarts += 1;
                    self.sweep();
                }
            }
            Ev::LidChange(node, port, lid) => {
                self.lids.insert((node, port), lid);
                if self.nodes[node].dev.ports[usize::from(port) - 1].state != PortState::DOWN {
                    self.sm_set_port(node, port, PortState::NOP, lid);
                }
            }
        }
    }

    fn set_link(&mut self, link: LinkId, up: bool) {
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        l.up = up;
        let ends = [l.a, l.b];
        for e in ends {
            let Endpoint::Hca { node, port } = e else {
                continue;
            };
            let n = &mut self.nodes[node];
            let p = &mut n.dev.ports[usize::from(port) - 1];
            p.cable_up = up;
            if up {
                if p.initialised {
                    let t = n.dev.spec.link_training_ns;
                    self.schedule(t, Ev::LinkTrained(node, port));
                }
            } else if p.state != PortState::DOWN {
                p.state = PortState::DOWN;
                n.dev.port_state_event(&n.mem, port, false);
                self.leave_all(node, port);
                self.log_event(FabricEventKind::PortState {
                    node,
                    port,
                    state: PortState::DOWN,
                });
            }
        }
    }

    fn leave_all(&mut self, node: NodeId, port: u8) {
        for g in self.groups.values_mut() {
            g.members.remove(&(node, port));
        }
    }

    fn sweep(&mut self) {
        if !self.cfg.sm.present {
            return;
        }
        self.sm_running = true;
        let restarted = std::mem::take(&mut self.sm_restarted);
        if self.stats.sweeps == 0 || restarted {
            for (pkey, qkey) in self.cfg.sm.ipoib_groups.clone() {
                let mgid = Gid::ipoib_broadcast(pkey);
                let mlid = self.alloc_mlid();
                self.groups.insert(
                    mgid,
                    Group {
                        qkey,
                        mlid,
                        pkey: pkey | 0x8000,
                        mtu: self.cfg.sm.group_mtu,
                        members: BTreeSet::new(),
                    },
                );
            }
        }
        self.stats.sweeps += 1;
        self.log_event(FabricEventKind::Sweep);
        let interval = self.cfg.sm.sweep_interval_ns;
        for node in 0..self.nodes.len() {
            for port in 1..=self.nodes[node].dev.ports.len() as u8 {
                let state = self.nodes[node].dev.ports[usize::from(port) - 1].state;
                if restarted && state == PortState::ACTIVE {
                    let lid = self.lids.get(&(node, port)).copied();
                    let reachable = self
                        .hops(Endpoint::Sm, Endpoint::Hca { node, port })
                        .is_some();
                    if let (Some(lid), true) = (lid, reachable) {
                        self.sm_reregister_port(node, port, lid);
                    }
                    continue;
                }
                if state != PortState::INIT && state != PortState::ARMED {
                    continue;
                }
                if self
                    .hops(Endpoint::Sm, Endpoint::Hca { node, port })
                    .is_none()
                {
                    continue;
                }
                let activating = self
                    .events
                    .iter()
                    .any(|e| matches!(e.ev, Ev::SmActivate(n, p) if (n, p) == (node, port)));
                if activating {
                    continue;
                }
                let lid = match self.lids.get(&(node, port)) {
                    Some(l) => *l,
                    None => {
                        let l = self.next_lid;
                        self.next_lid += 1;
                        self.lids.insert((node, port), l);
                        l
                    }
                };
                if state == PortState::INIT {
                    // NodeInfo, P_KeyTable, PortInfo (LID, SM LID, prefix, ARMED) as SMPs.
                    self.sm_program_port(node, port, lid);
                    let delay = self.cfg.sm.activate_delay_ns;
                    self.schedule(delay, Ev::SmActivate(node, port));
                } else {
                    // Still ARMED: the activation was lost; ask again.
                    self.sm_set_port(node, port, PortState::ACTIVE, lid);
                }
            }
        }
        // Only periodic sweeps reschedule; trap sweeps are extra.
        let pending_periodic = self
            .events
            .iter()
            .any(|s| matches!(s.ev, Ev::SmSweep) && s.at > self.now);
        if !pending_periodic {
            self.schedule(interval, Ev::SmSweep);
        }
    }

    fn alloc_mlid(&mut self) -> u16 {
        let m = self.next_mlid;
        self.next_mlid += 1;
        m
    }

    /// Hop count from `a` to `b` over links that are up (switches count as hops).
    fn hops(&self, a: Endpoint, b: Endpoint) -> Option<u32> {
        let norm = |e: Endpoint| e;
        let mut seen = BTreeSet::new();
        let mut q = VecDeque::new();
        q.push_back((norm(a), 0u32));
        seen.insert(norm(a));
        while let Some((e, d)) = q.pop_front() {
            if e == b {
                return Some(d);
            }
            for l in self.links.iter().filter(|l| l.up) {
                let next = if l.a == e {
                    l.b
                } else if l.b == e {
                    l.a
                } else {
                    continue;
                };
                if seen.insert(next) {
                    q.push_back((next, d + u32::from(matches!(next, Endpoint::Switch(_)))));
                }
            }
        }
        None
    }

    fn endpoint_of_lid(&self, lid: u16) -> Option<Endpoint> {
        if self.sm_running && lid == self.cfg.sm.lid {
            return Some(Endpoint::Sm);
        }
        for (node, n) in self.nodes.iter().enumerate() {
            for (i, p) in n.dev.ports.iter().enumerate() {
                if p.lid == lid && p.state != PortState::DOWN && p.state != PortState::INIT {
                    return Some(Endpoint::Hca {
                        node,
                        port: i as u8 + 1,
                    });
                }
            }
        }
        None
    }

    /// Starts writing every packet the fabric moves to `out` (a pcap file: see
    /// [`crate::capture`]); a capture already running is finished first.
    pub fn start_capture(&mut self, out: Box<dyn std::io::Write>) -> std::io::Result<()> {
        let _ = self.stop_capture();
        self.capture = Some(Capture {
            writer: PcapWriter::new(out)?,
            error: None,
        });
        Ok(())
    }

    /// Flushes and closes the capture. Returns the packets written, or the first error.
    pub fn stop_capture(&mut self) -> std::io::Result<u64> {
        let Some(c) = self.capture.take() else {
            return Ok(0);
        };
        let n = c.writer.packets();
        if let Some(e) = c.error {
            return Err(e);
        }
        c.writer.finish()?;
        Ok(n)
    }

    /// Records a packet leaving `from`'s port now.
    fn capture_packet(&mut self, bytes: &[u8]) {
        let Some(c) = self.capture.as_mut() else {
            return;
        };
        if c.error.is_some() {
            return;
        }
        match c.writer.write_packet(self.now, bytes) {
            Ok(()) => self.stats.captured += 1,
            Err(e) => {
                warn!("hca-sim: capture stopped: {e}");
                c.error = Some(e);
            }
        }
    }

    /// Sends a packet from `from` into the fabric.
    pub fn transmit(&mut self, from: Endpoint, bytes: Vec<u8>) {
        self.capture_packet(&bytes);
        if self.bridge_out(from, &bytes) {
            return;
        }
        if bytes.len() < 8 {
            return;
        }
        let dlid = Lid(u16::from_be_bytes([bytes[2], bytes[3]]));
        let wire = self.serialize(from, bytes.len());
        let targets: Vec<Endpoint> = if dlid.is_multicast() {
            self.groups
                .values()
                .find(|g| g.mlid == dlid.0)
                .map(|g| {
                    g.members
                        .iter()
                        .map(|&(node, port)| Endpoint::Hca { node, port })
                        .filter(|e| *e != from)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            self.endpoint_of_lid(dlid.0).into_iter().collect()
        };
        if targets.is_empty() {
            self.stats.unroutable += 1;
        }
        for t in targets {
            self.forward(from, t, bytes.clone(), wire);
        }
    }

    /// Sends a packet from `from` straight to `to` (a directed route): captured, then
    /// carried as any other.
    fn send_to(&mut self, from: Endpoint, to: Endpoint, bytes: Vec<u8>) {
        self.capture_packet(&bytes);
        let wire = self.serialize(from, bytes.len());
        self.forward(from, to, bytes, wire);
    }

    /// Carries one copy of a packet to `to`: through the fault chain, after `wire` (its time
    /// to leave the sender's port) and the path's latency.
    fn forward(&mut self, from: Endpoint, to: Endpoint, mut pkt: Vec<u8>, wire: u64) {
        let Some(hops) = self.hops(from, to) else {
            self.stats.unroutable += 1;
            return;
        };
        let mut delay = wire + self.cfg.hop_latency_ns * u64::from(hops.max(1));
        let now = self.now;
        for m in self.faults.iter_mut() {
            match m.process(now, &mut self.rng, &mut pkt) {
                Verdict::Pass(d) => delay += d,
                Verdict::Drop => {
                    self.stats.fault_drops += 1;
                    return;
                }
            }
        }
        self.schedule(delay, Ev::Deliver(to, pkt));
    }

    fn port_by_gid(&self, gid: &Gid) -> Option<(NodeId, u8)> {
        for (node, n) in self.nodes.iter().enumerate() {
            for port in 1..=n.dev.ports.len() as u8 {
                if n.dev.port_gid(port) == *gid {
                    return Some((node, port));
                }
            }
        }
        None
    }

    /// The LID the SM assigned to a port (kept when the port goes down or its device resets).
    pub fn assigned_lid(&self, node: NodeId, port: u8) -> Option<u16> {
        self.lids.get(&(node, port)).copied()
    }

    /// Members of a multicast group (0 when the group does not exist).
    pub fn group_members(&self, mgid: &Gid) -> usize {
        self.groups.get(mgid).map_or(0, |g| g.members.len())
    }

    fn sa_receive(&mut self, bytes: &[u8]) {
        let Ok(pkt) = UdPacket::parse(bytes) else {
            debug!("hca-sim: SA dropped a malformed packet");
            return;
        };
        let r = pkt.repr;
        if r.dest_qpn != Qpn::GSI || r.qkey != GSI_QKEY {
            warn!(
                "hca-sim: SA: packet to QPN {:?} with Q_Key {:#x} dropped",
                r.dest_qpn, r.qkey
            );
            return;
        }
        let Ok(req) = Mad::parse(pkt.payload) else {
            return;
        };
        if req.hdr.mgmt_class != MgmtClass::SUBN_ADM || req.hdr.method.is_response() {
            return;
        }
        self.stats.sa_requests += 1;
        let from = match self.endpoint_of_lid(r.slid.0) {
            Some(Endpoint::Hca { node, port }) => Some((node, port)),
            _ => None,
        };
        self.log_event(FabricEventKind::SaRequest {
            from,
            attr: req.hdr.attr_id.0.get(),
        });
        let mut resp = req;
        resp.hdr.method = req.hdr.method.response();
        let status = self.sa_handle(&req, &mut resp);
        if status != MadStatus::OK {
            self.stats.sa_errors += 1;
        }
        resp.hdr.status = U16::new(status.0);
        let out = UdPacketRepr {
            vl: 0,
            sl: 0,
            dlid: r.slid,
            slid: Lid(self.cfg.sm.lid),
            grh: None,
            pkey: 0xffff,
            dest_qpn: r.src_qpn,
            psn: 0,
            qkey: GSI_QKEY,
            src_qpn: Qpn::GSI,
        };
        let mut b = vec![0u8; out.buffer_len(256)];
        if out.emit(resp.as_bytes(), &mut b).is_ok() {
            self.transmit(Endpoint::Sm, b);
        }
    }

    fn sa_handle(&mut self, req: &Mad, resp: &mut Mad) -> MadStatus {
        if req.hdr.class_version != sa::SA_CLASS_VERSION {
            return MadStatus::BAD_VERSION;
        }
        let Ok(sad) = sa::sa_data(req) else {
            return MadStatus::INVALID_FIELD;
        };
        let mask = sad.comp_mask.get();
        match (req.hdr.attr_id, req.hdr.method) {
            (AttrId::MC_MEMBER_RECORD, m)
                if m == MadMethod::SET || m == MadMethod::DELETE || m == MadMethod::GET =>
            {
                let Ok(rec) = sa::sa_record::<McMemberRecord>(req) else {
                    return MadStatus::INVALID_FIELD;
                };
                let need = McMemberMask::MGID | McMemberMask::PORT_GID | McMemberMask::JOIN_STATE;
                let mask = McMemberMask::from_bits_truncate(mask);
                if m != MadMethod::GET && !mask.contains(need) {
                    return MadStatus::SA_INSUFFICIENT_COMPONENTS;
                }
                if m == MadMethod::GET && !mask.contains(McMemberMask::MGID) {
                    return MadStatus::SA_INSUFFICIENT_COMPONENTS;
                }
                let member = self.port_by_gid(&rec.port_gid);
                if m != MadMethod::GET && member.is_none() {
                    return MadStatus::SA_INVALID_GID;
                }
                if m == MadMethod::SET && !self.groups.contains_key(&rec.mgid) {
                    // Creating needs at least Q_Key and P_Key (the join iPXE sends cannot create).
                    if !mask.contains(McMemberMask::QKEY | McMemberMask::PKEY) {
                        return MadStatus::SA_REQ_INVALID;
                    }
                    let mlid = self.alloc_mlid();
                    let mtu = if mask.contains(McMemberMask::MTU) {
                        rec.mtu()
                    } else {
                        4
                    };
                    self.groups.insert(
                        rec.mgid,
                        Group {
                            qkey: rec.qkey.get(),
                            mlid,
                            pkey: rec.pkey.get(),
                            mtu,
                            members: BTreeSet::new(),
                        },
                    );
                }
                let Some(g) = self.groups.get_mut(&rec.mgid) else {
                    return MadStatus::SA_NO_RECORDS;
                };
                if mask.contains(McMemberMask::QKEY) && rec.qkey.get() != g.qkey {
                    return MadStatus::SA_REQ_INVALID;
                }
                if mask.contains(McMemberMask::PKEY) && rec.pkey.get() & 0x7fff != g.pkey & 0x7fff {
                    return MadStatus::SA_REQ_INVALID;
                }
                if let Some(mb) = member {
                    if m == MadMethod::SET {
                        g.members.insert(mb);
                    } else if m == MadMethod::DELETE && !g.members.remove(&mb) {
                        return MadStatus::SA_REQ_INVALID;
                    }
                }
                let out = McMemberRecord {
                    mgid: rec.mgid,
                    port_gid: rec.port_gid,
                    qkey: U32::new(g.qkey),
                    mlid: U16::new(g.mlid),
                    mtu_sel_mtu: 0x80 | g.mtu,
                    tclass: 0,
                    pkey: U16::new(g.pkey),
                    rate_sel_rate: 0x80 | 3,
                    plt_sel_plt: 0x80 | 18,
                    sl_flow_hop: U32::new(0),
                    scope_join_state: (2 << 4) | (rec.join_state() & 0xf),
                    proxy_join: 0,
                    resv: [0; 2],
                };
                sa::set_sa_record(resp, &out);
                MadStatus::OK
            }
            (AttrId::PATH_RECORD, MadMethod::GET) => {
                let Ok(rec) = sa::sa_record::<PathRecord>(req) else {
                    return MadStatus::INVALID_FIELD;
                };
                let mask = PathRecordMask::from_bits_truncate(mask);
                if !mask.contains(PathRecordMask::DGID | PathRecordMask::SGID) {
                    return MadStatus::SA_INSUFFICIENT_COMPONENTS;
                }
                let (Some(d), Some(s)) = (self.port_by_gid(&rec.dgid), self.port_by_gid(&rec.sgid))
                else {
                    return MadStatus::SA_NO_RECORDS;
                };
                let dp = &self.nodes[d.0].dev.ports[usize::from(d.1) - 1];
                let sp = &self.nodes[s.0].dev.ports[usize::from(s.1) - 1];
                if dp.state != PortState::ACTIVE || sp.state != PortState::ACTIVE {
                    return MadStatus::SA_NO_RECORDS;
                }
                // A partition asked for must be one both ports are in, one of them fully.
                let mut pkey = 0xffff;
                if mask.contains(PathRecordMask::PKEY) {
                    let want = rec.pkey.get() & 0x7fff;
                    let find = |p: &crate::device::PortModel| {
                        p.pkeys.iter().copied().find(|k| k & 0x7fff == want)
                    };
                    match (find(sp), find(dp)) {
                        (Some(a), Some(b)) if want != 0 && (a | b) & 0x8000 != 0 => {
                            pkey = want | (a & b & 0x8000);
                        }
                        _ => return MadStatus::SA_NO_RECORDS,
                    }
                }
                let out = PathRecord {
                    dgid: rec.dgid,
                    sgid: rec.sgid,
                    dlid: U16::new(dp.lid),
                    slid: U16::new(sp.lid),
                    raw_flow_hop: U32::new(0),
                    reversible_numb_path: 0x81,
                    pkey: U16::new(pkey),
                    qos_sl: U16::new(0),
                    mtu_sel_mtu: 0x80 | dp.mtu.min(sp.mtu),
                    rate_sel_rate: 0x80 | 3,
                    plt_sel_plt: 0x80 | 18,
                    ..Default::default()
                };
                sa::set_sa_record(resp, &out);
                MadStatus::OK
            }
            _ => MadStatus::METHOD_ATTR_UNSUPPORTED,
        }
    }
}

#[cfg(test)]
mod link_model {
    use super::*;
    use crate::device::HcaSpec;

    /// 1 MiB in 4 KiB packets from one node to another through a switch: the last packet
    /// arrives after 1 MiB at the link's data rate, plus one hop's latency.
    fn mib_transfer_ns(rate: LinkRate) -> u64 {
        let mut w = World::new(SimConfig {
            link_rate: rate,
            sm: SmConfig {
                present: false,
                ..SmConfig::default()
            },
            ..SimConfig::default()
        });
        let a = w.add_node(Device::new(HcaSpec::connectx(0x10, 1)));
        let b = w.add_node(Device::new(HcaSpec::connectx(0x20, 1)));
        let sw = w.add_switch();
        w.add_link(Endpoint::Hca { node: a, port: 1 }, Endpoint::Switch(sw));
        w.add_link(Endpoint::Hca { node: b, port: 1 }, Endpoint::Switch(sw));
        let (from, to) = (
            Endpoint::Hca { node: a, port: 1 },
            Endpoint::Hca { node: b, port: 1 },
        );
        for _ in 0..256 {
            w.send_to(from, to, vec![0u8; 4096]);
        }
        let start = w.now;
        while w.stats.delivered < 256 {
            w.run_for(100);
            assert!(w.now - start < 10_000_000, "not delivered");
        }
        w.now - start
    }

    #[test]
    fn a_mib_takes_what_the_rate_says_plus_the_latency() {
        for rate in LinkRate::ALL {
            let took = mib_transfer_ns(rate);
            let wire = (8u128 << 20) * 1_000_000_000 / u128::from(rate.data_bps());
            let want = wire as u64 + 1_000;
            // Within the 100 ns steps of the loop above.
            assert!(
                took >= want && took < want + 200,
                "{}: {took} ns, want {want}",
                rate.name()
            );
        }
        // QDR 4x: 1 MiB is 262.144 µs on the wire.
        assert_eq!(LinkRate::default(), LinkRate::Qdr);
        let took = mib_transfer_ns(LinkRate::Qdr);
        assert!((263_144..263_344).contains(&took), "{took}");
    }
}
