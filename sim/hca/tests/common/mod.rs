//! Shared fixtures for the driver-on-simulator tests.
#![allow(dead_code)]

use std::time::Duration;

use hca::hermon::{Config, Hermon};
use hca::verbs::{self, PortAttr, PortNum};
use hca_sim::{HcaSpec, LinkId, NodeId, Sim, SimConfig, SimHal};

/// One switch, an SM, and `n` dual-port HCAs with both ports cabled.
pub struct Fabric {
    pub sim: Sim,
    pub nodes: Vec<NodeId>,
    pub links: Vec<[LinkId; 2]>,
}

pub fn fabric(cfg: SimConfig, n: usize) -> Fabric {
    let sim = Sim::new(cfg);
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let mut nodes = Vec::new();
    let mut links = Vec::new();
    for i in 0..n {
        let node = sim.add_hca(HcaSpec::connectx(
            0x0002_c903_0000_1000 + 0x100 * i as u64,
            2,
        ));
        links.push([sim.connect(node, 1, sw), sim.connect(node, 2, sw)]);
        nodes.push(node);
    }
    Fabric { sim, nodes, links }
}

pub fn open(sim: &Sim, node: NodeId) -> Hermon<SimHal> {
    Hermon::open(sim.hal(node), Config::default()).expect("bring-up")
}

pub fn active(dev: &mut Hermon<SimHal>, port: u8) -> PortAttr {
    use hca::Verbs;
    dev.open_port(PortNum(port)).expect("open port");
    verbs::wait_port_active(dev, PortNum(port), Duration::from_secs(30)).expect("port active")
}
