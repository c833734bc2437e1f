//! A booting node's fabric: a switch with the subnet manager, a gateway node (one port) that
//! relays DHCP to a real DHCP server and forwards TCP to real services on loopback, and a
//! dual-port ConnectX for the node that boots — port 1 cabled or not.
//!
//! [`World::step`] moves everything by one millisecond of simulated time; the ROM flow (and any
//! other code that waits on the fabric) calls it from its wait loops.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hca_sim::{HcaSpec, NodeId, Sim, SimConfig};
use ipoib::iface;
use iscsi_initiator::time::Instant;

use crate::gateway::{Gateway, GatewayConfig, GatewayError, RelayConfig};
use crate::iphost::IpHost;

/// No wait on the fabric may take longer than this in real time.
pub const REAL_TIME_LIMIT: Duration = Duration::from_secs(60);

/// The fabric's settings.
#[derive(Debug, Clone)]
pub struct FabricConfig {
    /// The gateway's fabric address (the clients' router).
    pub gateway: Ipv4Addr,
    /// The fabric subnet's prefix length.
    pub prefix: u8,
    /// `giaddr` of the relay: a loopback address the DHCP server's configuration knows.
    pub relay: Ipv4Addr,
    /// The real DHCP server.
    pub dhcp_server: SocketAddr,
    /// Whether the gateway relays DHCP at all (binding `relay`:67); a fabric whose node is
    /// addressed statically (from an iBFT) does without.
    pub dhcp_relay: bool,
    /// Per-mille of fabric packets dropped once the gateway is up (a [`hca_sim::Loss`]
    /// middleware; 0: none).
    pub loss_permille: u32,
    /// `(fabric port, loopback service)`: what the gateway forwards (the iSCSI target).
    pub forwards: Vec<(u16, SocketAddr)>,
    /// The booting node's node GUID (its port GUIDs follow from it).
    pub node_guid: u64,
    /// Whether port 1 has a cable (the demo leaves it unplugged).
    pub port1_connected: bool,
    /// The simulator's seed.
    pub seed: u64,
    /// Capture every packet of the fabric, from before the gateway comes up, to this pcap file
    /// ([`hca_sim::Sim::capture`]); `world.sim.stop_capture()` ends it.
    pub pcap: Option<PathBuf>,
}

/// Everything that moves: the simulator, the gateway, and the booting host once it is up.
pub struct World {
    /// The simulator.
    pub sim: Sim,
    /// The gateway node.
    pub gw: Gateway,
    /// The booting node.
    pub node: NodeId,
    /// The booting node's cables, by port (`[port 1, port 2]`; `None`: no cable), for faults
    /// ([`Sim::set_link`]).
    pub node_links: [Option<hca_sim::LinkId>; 2],
    /// The booting node's host stack, once a port is up.
    pub host: Option<IpHost>,
    /// What it was built from.
    pub cfg: FabricConfig,
}

impl core::fmt::Debug for World {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("World")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl World {
    /// Builds the fabric (and starts its capture, if asked) and starts the gateway.
    pub fn new(cfg: FabricConfig) -> Result<Self, GatewayError> {
        let sim = Sim::new(SimConfig {
            seed: cfg.seed,
            ..SimConfig::default()
        });
        if let Some(p) = &cfg.pcap {
            sim.capture(p).map_err(GatewayError::Capture)?;
        }
        let sw = sim.add_switch();
        sim.attach_sm(sw);
        let g = sim.add_hca(HcaSpec::connectx(0x0002_c903_00ab_0001, 1));
        sim.connect(g, 1, sw);
        let node = sim.add_hca(HcaSpec::connectx(cfg.node_guid, 2));
        let l1 = cfg.port1_connected.then(|| sim.connect(node, 1, sw));
        let l2 = sim.connect(node, 2, sw);
        let gw = Gateway::start(
            &sim,
            g,
            GatewayConfig {
                address: cfg.gateway,
                prefix: cfg.prefix,
                relay: cfg.dhcp_relay.then_some(RelayConfig {
                    giaddr: cfg.relay,
                    server: cfg.dhcp_server,
                }),
                forwards: cfg.forwards.clone(),
                ipoib: iface::Config::default(),
            },
        )?;
        if cfg.loss_permille > 0 {
            sim.add_fault(Box::new(hca_sim::Loss {
                permille: cfg.loss_permille,
            }));
        }
        Ok(Self {
            sim,
            gw,
            node,
            node_links: [l1, Some(l2)],
            host: None,
            cfg,
        })
    }

    /// One round: the gateway, the host, 1 ms of simulated time, and a short real pause so
    /// that the real servers keep up.
    pub fn step(&mut self) {
        self.gw.poll();
        if let Some(h) = self.host.as_mut() {
            h.poll();
        }
        self.sim.run_for(Duration::from_millis(1));
        std::thread::sleep(Duration::from_micros(200));
    }

    /// The simulated time, as the initiator's clock counts it.
    pub fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.sim.now().as_millis()).unwrap_or(u64::MAX))
    }
}
