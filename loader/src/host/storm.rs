//! A boot storm: N nodes powered on at once on one fabric — one switch, one SM, the gateway,
//! one DHCP server and one iSCSI target behind it — each running the unchanged ROM flow
//! ([`crate::flow::boot`]) to its iBFT, interleaved on one simulated clock by
//! [`net_sim::storm`] (each flow waits through its driver's `delay` and its firmware's
//! [`Env::idle`], and the scheduler runs whoever is due next).

use std::boxed::Box;
use std::format;
use std::net::{Ipv4Addr, SocketAddr};
use std::string::{String, ToString};
use std::time::Duration as StdDuration;
use std::vec::Vec;

use hca::hermon::{Config as HermonConfig, Hermon};
use hca_sim::{FabricEvent, FabricStats, HcaSpec, LinkRate, NodeId, Sim, SimConfig};
use iscsi_initiator::time::Duration;
use net_sim::storm::{self as sched, Ctx, Task};
use net_sim::{Gateway, GatewayConfig, GatewayStats, RelayConfig};

use crate::flow::{self, BootError, ProbeError};
use crate::ipoib_link::IpoibPorts;
use crate::net::Env;
use crate::sim::{BootConfig, Booted, Timing, HCA_PCI};

/// The storm's fabric and servers.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// How many nodes boot.
    pub nodes: usize,
    /// The gateway's fabric address (the nodes' router).
    pub gateway: Ipv4Addr,
    /// The fabric subnet's prefix length.
    pub prefix: u8,
    /// `giaddr` of the relay.
    pub relay: Ipv4Addr,
    /// The real DHCP server.
    pub dhcp_server: SocketAddr,
    /// `(fabric port, loopback service)`: what the gateway forwards (the iSCSI target).
    pub forwards: Vec<(u16, SocketAddr)>,
    /// Node `i`'s node GUID is this plus `i << 8`.
    pub first_guid: u64,
    /// The simulator's seed.
    pub seed: u64,
    /// Every link's rate.
    pub link_rate: LinkRate,
    /// Whether the nodes' port 1 is cabled (else they boot through port 2, after port 1's
    /// link wait).
    pub port1_connected: bool,
    /// What each ROM is told.
    pub boot: BootConfig,
}

/// One node's boot.
#[derive(Debug, Clone)]
pub struct NodeReport {
    /// The node on the fabric.
    pub node: NodeId,
    /// Its node GUID.
    pub guid: u64,
    /// When each step happened.
    pub timing: Timing,
    /// What the boot left, or the console line saying why it stopped.
    pub outcome: Result<Booted, String>,
}

impl NodeReport {
    /// Simulated time from power-on to the iBFT (ns), for a node that booted.
    pub fn boot_ns(&self) -> Option<u64> {
        self.outcome.as_ref().ok()?;
        let (t, _) = self
            .timing
            .lines
            .iter()
            .rfind(|(_, l)| l.starts_with("iBFT:"))?;
        Some(t - self.timing.start_ns)
    }
}

/// What a storm did.
#[derive(Debug)]
pub struct StormReport {
    /// Each node, in order.
    pub nodes: Vec<NodeReport>,
    /// The fabric's events from power-on (SM sweeps, port states, SA requests).
    pub events: Vec<FabricEvent>,
    /// The gateway's counters.
    pub gateway: GatewayStats,
    /// The fabric's counters.
    pub fabric: FabricStats,
    /// The gateway's HCA: packets that found no receive buffer posted.
    pub gateway_rx_no_wqe: u64,
    /// The gateway's IPoIB interface.
    pub gateway_ipoib: ipoib::iface::Stats,
    /// The booting nodes' HCAs: packets that found no receive buffer posted, in all.
    pub nodes_rx_no_wqe: u64,
}

impl StormReport {
    /// Boot times (ms of simulated time) of the nodes that booted, sorted.
    pub fn boot_ms(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .nodes
            .iter()
            .filter_map(NodeReport::boot_ns)
            .map(|n| n as f64 / 1e6)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A node's firmware on the storm's clock: waiting hands the turn to the others.
struct StormEnv {
    ctx: Ctx,
}

impl core::fmt::Debug for StormEnv {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StormEnv")
    }
}

impl Env for StormEnv {
    fn now(&self) -> clock::Instant {
        clock::Instant::from_nanos(self.ctx.now_ns())
    }

    fn idle(&mut self, _max: Duration) {
        // As the single-node simulator: 1 ms a round.
        self.ctx.wait(StdDuration::from_millis(1));
    }
}

/// One node's flow, as a task.
fn node_task(node: NodeId, guid: u64, cfg: BootConfig) -> Task<NodeReport> {
    Box::new(move |ctx: &Ctx| {
        let mut timing = Timing {
            start_ns: ctx.now_ns(),
            ..Timing::default()
        };
        let outcome = (|| {
            let dev = Hermon::open(ctx.sim.hal(node), HermonConfig::default())
                .map_err(|e| BootError::Probe(ProbeError::Hca(e)))?;
            timing.probe_end_ns = Some(ctx.now_ns());
            let mut ports = IpoibPorts::new(dev, HCA_PCI);
            let lines = &mut timing.lines;
            let b = flow::boot(&mut ports, StormEnv { ctx: ctx.clone() }, &cfg, &mut |l| {
                lines.push((ctx.now_ns(), l.to_string()))
            })?;
            Ok::<_, BootError>(crate::sim::finish(b))
        })()
        .map_err(|e| e.to_string());
        NodeReport {
            node,
            guid,
            timing,
            outcome,
        }
    })
}

/// Boots `cfg.nodes` nodes at once (inside a network namespace with the servers running).
pub fn run(cfg: &StormConfig) -> Result<StormReport, String> {
    let sim = Sim::new(SimConfig {
        seed: cfg.seed,
        link_rate: cfg.link_rate,
        ..SimConfig::default()
    });
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let g = sim.add_hca(HcaSpec::connectx(0x0002_c903_00ab_0001, 1));
    sim.connect(g, 1, sw);
    let mut gw = Gateway::start(
        &sim,
        g,
        GatewayConfig {
            address: cfg.gateway,
            prefix: cfg.prefix,
            relay: Some(RelayConfig {
                giaddr: cfg.relay,
                server: cfg.dhcp_server,
            }),
            forwards: cfg.forwards.clone(),
            // Room for every node's packets while the gateway resolves its path (the
            // default, 32, dropped SYN-ACKs in a storm: the second bottleneck).
            // And neighbour and path caches for every node (64 by default).
            ipoib: ipoib::iface::Config {
                pending_limit: 32.max(4 * cfg.nodes),
                neigh: ipoib::neigh::NeighConfig {
                    capacity: 64.max(cfg.nodes + 16),
                    ..ipoib::neigh::NeighConfig::default()
                },
                path: ipoib::neigh::PathConfig {
                    capacity: 64.max(cfg.nodes + 16),
                    ..ipoib::neigh::PathConfig::default()
                },
                // A receive ring for the fabric, not a ROM's 64 slots: every node's DISCOVER
                // (broadcast) arrives in the same millisecond of a storm, and with 64 slots all
                // but 64 were lost and retransmitted 4 s later (RFC 2131 §4.1) — the first
                // bottleneck at 256 nodes. A Linux gateway posts 256 by default and is tuned
                // up to 8192 (ipoib's recv_queue_size); here the driver's most, 1024.
                recv_slots: hca::hermon::MAX_QP_SLOTS,
                ..ipoib::iface::Config::default()
            },
        },
    )
    .map_err(|e| e.to_string())?;
    sim.record_events(true);
    let mut tasks = Vec::with_capacity(cfg.nodes);
    for i in 0..cfg.nodes {
        let guid = cfg.first_guid + ((i as u64) << 8);
        let node = sim.add_hca(HcaSpec::connectx(guid, 2));
        if cfg.port1_connected {
            sim.connect(node, 1, sw);
        }
        sim.connect(node, 2, sw);
        tasks.push(node_task(node, guid, cfg.boot.clone()));
    }
    let results = sched::run(
        &sim,
        &mut gw,
        tasks,
        // The gateway polled once a millisecond, as in the single-node simulator. (Polled
        // every 250 µs it relays 4 times as many broadcast DHCP replies a millisecond, and
        // the nodes' 64-slot receive rings overflow instead: the replies go to every node.)
        StdDuration::from_millis(1),
        StdDuration::from_micros(200),
    );
    let nodes = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| NodeReport {
                node: i + 2,
                guid: cfg.first_guid + ((i as u64) << 8),
                timing: Timing::default(),
                outcome: Err(format!("node {i}: its flow panicked")),
            })
        })
        .collect();
    Ok(StormReport {
        nodes,
        events: sim.take_events(),
        gateway: gw.stats(),
        fabric: sim.stats(),
        gateway_rx_no_wqe: sim.counters(g).rx_no_wqe,
        gateway_ipoib: gw.host.ipoib.stats(),
        nodes_rx_no_wqe: (0..cfg.nodes)
            .map(|i| sim.counters(g + 1 + i).rx_no_wqe)
            .sum(),
    })
}
