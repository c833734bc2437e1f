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

/// A firmware command built by hand, as a driver with its own idea of a layout would issue
/// it: opcode `OP`, an output mailbox when `MBOX`, and the input mailbox bytes given (encoded
/// by the tests with the model's layouts, `hca_sim::prm`).
#[derive(Clone, Debug, Default)]
pub struct Raw<const OP: u16, const MBOX: bool> {
    pub op_mod: u8,
    pub in_mod: u32,
    pub input: Option<Vec<u8>>,
}

impl<const OP: u16, const MBOX: bool> hca::hermon::cmd::Command for Raw<OP, MBOX> {
    const OPCODE: hca::hermon::cmd::Opcode = hca::hermon::cmd::Opcode(OP);
    const OUT: hca::hermon::cmd::OutKind = if MBOX {
        hca::hermon::cmd::OutKind::Mailbox
    } else {
        hca::hermon::cmd::OutKind::None
    };
    type Output = Vec<u8>;
    fn op_mod(&self) -> u8 {
        self.op_mod
    }
    fn in_mod(&self) -> u32 {
        self.in_mod
    }
    fn input(&self, mbox: &mut [u8]) -> hca::hermon::cmd::InKind {
        match &self.input {
            Some(b) => {
                mbox[..b.len()].copy_from_slice(b);
                hca::hermon::cmd::InKind::Mailbox
            }
            None => hca::hermon::cmd::InKind::None,
        }
    }
    fn decode(out: hca::hermon::cmd::CmdOut<'_>) -> Vec<u8> {
        out.mbox.to_vec()
    }
}
