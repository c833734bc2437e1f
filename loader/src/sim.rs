//! The ROM flow on the simulated fabric (`hca-sim`), against real servers.
//!
//! The fabric: a switch with the subnet manager, a gateway node (one port) that relays DHCP to
//! a real DHCP server and forwards TCP to a real iSCSI target on loopback, and the booting
//! node: a dual-port ConnectX whose port 1 has no cable and whose port 2 does — so the ROM has
//! to give up on port 1 within its bound and boot through port 2.
//!
//! This is wiring only: the flow is the portable [`crate::flow`], over the hermon driver on
//! the node's simulated HCA ([`crate::ipoib_link`]), smoltcp and the initiator's transport of
//! [`crate::net`]; the firmware's clock is the simulator's, and waiting steps the fabric
//! ([`SimEnv`]). Every wait is bounded in simulated time, which moves on every step.

use std::cell::RefCell;
use std::format;
use std::rc::Rc;
use std::string::String;
use std::string::ToString;
use std::time::Instant as StdInstant;
use std::vec;
use std::vec::Vec;

use hca::hermon::{Config as HermonConfig, Hermon};
use hca_sim::SimHal;
use ibft::PciAddress;
use ipoib::dhcp::Lease;
use iscsi_initiator::block::BlockDevice;
use iscsi_initiator::rootpath::RootPath;
use iscsi_initiator::time::Duration;
use iscsi_initiator::transport::Clock;

use crate::flow::{self, BootError, ProbeError};
use crate::handoff::BootPort;
use crate::ipoib_link::{IpoibLink, IpoibPorts};
use crate::net::Env;

use net_sim::REAL_TIME_LIMIT;

pub use net_sim::{FabricConfig, World};

/// What the ROM is told to do: the portable configuration.
pub type BootConfig = crate::config::Config;

/// The HCA's PCI function on the simulated node.
pub const HCA_PCI: PciAddress = PciAddress {
    bus: 0x81,
    device: 0,
    function: 0,
};

/// The firmware on the simulator: its clock is the fabric's, and waiting steps the fabric
/// (the gateway, and 1 ms of simulated time).
#[derive(Debug)]
pub struct SimEnv {
    world: Rc<RefCell<World>>,
}

impl Env for SimEnv {
    fn now(&self) -> clock::Instant {
        self.world.borrow().now()
    }

    fn idle(&mut self, _max: Duration) {
        self.world.borrow_mut().step();
    }
}

/// The boot link on the simulator: the hermon driver on the node's simulated HCA.
pub type SimLink = IpoibLink<Hermon<SimHal>>;

/// What a successful boot leaves.
#[derive(Debug, Clone)]
pub struct Booted {
    /// The port it booted through.
    pub port: BootPort,
    /// The lease.
    pub lease: Lease,
    /// The root path.
    pub root: RootPath,
    /// The initiator name it logged in with.
    pub initiator: String,
    /// The boot LUN's size in bytes.
    pub capacity: u64,
    /// The first bytes of the boot LUN.
    pub boot_blocks: Vec<u8>,
    /// The iBFT left for the OS.
    pub ibft: ibft::Ibft,
}

/// The probe: the driver opens the booting node's HCA.
fn probe(world: &Rc<RefCell<World>>) -> Result<IpoibPorts<Hermon<SimHal>>, BootError> {
    let hal = {
        let w = world.borrow();
        w.sim.hal(w.node)
    };
    let dev = Hermon::open(hal, HermonConfig::default())
        .map_err(|e| BootError::Probe(ProbeError::Hca(e)))?;
    Ok(IpoibPorts::new(dev, HCA_PCI))
}

/// Runs the ROM flow ([`flow::boot`]) on the simulator, then logs out (the OS logs in again,
/// reinstating the session by the same ISID). `say` gets one line per step, as a ROM prints on
/// the console.
pub fn boot(
    world: World,
    cfg: &BootConfig,
    say: &mut dyn FnMut(&str),
) -> Result<Booted, BootError> {
    boot_timed(world, cfg, say).0
}

/// When a boot's steps happened, in simulated time (ns): for [`crate::timeline`].
#[derive(Debug, Clone, Default)]
pub struct Timing {
    /// Power-on: the flow starts.
    pub start_ns: u64,
    /// The HCA opened (`None` when the probe failed).
    pub probe_end_ns: Option<u64>,
    /// Each console line, as it was said.
    pub lines: Vec<(u64, String)>,
}

/// [`boot`], with the time of each step.
pub fn boot_timed(
    world: World,
    cfg: &BootConfig,
    say: &mut dyn FnMut(&str),
) -> (Result<Booted, BootError>, Timing) {
    let sim = world.sim.clone();
    let now = || u64::try_from(sim.now().as_nanos()).unwrap_or(u64::MAX);
    let mut t = Timing {
        start_ns: now(),
        ..Timing::default()
    };
    let world = Rc::new(RefCell::new(world));
    let mut ports = match probe(&world) {
        Ok(p) => p,
        Err(e) => return (Err(e), t),
    };
    t.probe_end_ns = Some(now());
    let lines = &mut t.lines;
    let r = flow::boot(&mut ports, SimEnv { world }, cfg, &mut |l| {
        lines.push((now(), l.to_string()));
        say(l)
    });
    (r.map(finish), t)
}

/// What a boot leaves, once logged out.
pub(crate) fn finish<N: crate::net::Network>(mut b: flow::Booted<N>) -> Booted {
    let _ = b.client.logout(Duration::from_secs(5));
    Booted {
        port: BootPort {
            pci: b.nic.pci,
            port: b.nic.port,
            guid: b.nic.guid,
            mac: b.nic.mac,
        },
        lease: b.lease,
        root: b.root,
        initiator: b.initiator,
        capacity: b.capacity,
        boot_blocks: b.boot_blocks,
        ibft: b.ibft,
    }
}

/// Why [`bench`] stopped.
#[derive(Debug)]
pub enum BenchError {
    /// The boot did not get as far as the login.
    Boot(BootError),
    /// A read failed.
    Io(String),
}

impl core::fmt::Display for BenchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BenchError::Boot(e) => write!(f, "{e}"),
            BenchError::Io(e) => write!(f, "iSCSI: {e}"),
        }
    }
}

impl From<BootError> for BenchError {
    fn from(e: BootError) -> Self {
        BenchError::Boot(e)
    }
}

/// A workload for [`bench`].
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Bytes per I/O (a multiple of the block size).
    pub bs: u32,
    /// Commands in flight.
    pub qd: u32,
    /// Random (else sequential) LBAs.
    pub random: bool,
    /// How long to run, in simulated time.
    pub duration: core::time::Duration,
}

/// What [`bench`] measured.
#[derive(Debug, Clone, Copy)]
pub struct BenchResult {
    /// I/Os completed.
    pub ios: u64,
    /// Simulated time the I/Os took, in milliseconds.
    pub sim_ms: u64,
    /// CPU the process spent in the I/O loop, in microseconds, by the caller's clock.
    pub cpu_us: u64,
}

/// Boots as far as the login, then runs reads of `w` against the boot LUN across the fabric
/// (the same loop as `iscsi-initiator bench`: reap, refill the queue, one step).
/// `cpu_us` reads the process's CPU time (user + system) in microseconds.
pub fn bench(
    world: World,
    cfg: &BootConfig,
    w: &Workload,
    cpu_us: &dyn Fn() -> u64,
    say: &mut dyn FnMut(&str),
) -> Result<BenchResult, BenchError> {
    use iscsi_initiator::scsi::Cdb;
    use iscsi_initiator::session::{Completion, Direction};
    let world = Rc::new(RefCell::new(world));
    let mut ports = probe(&world)?;
    let b = flow::boot(&mut ports, SimEnv { world }, cfg, say)?;
    let (mut client, lun) = (b.client, b.lun);
    let cap = BlockDevice::new(&mut client, lun)
        .capacity()
        .map_err(|error| {
            BenchError::Boot(BootError::Disk {
                what: "READ CAPACITY",
                error,
            })
        })?;
    let bl = cap.block_len.max(1);
    let nblk = (w.bs / bl).max(1);
    let span = (cap.blocks / u64::from(nblk)).max(1);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut seq = 0u64;
    let mut free: Vec<Vec<u8>> = (0..w.qd.max(1))
        .map(|_| vec![0; (nblk * bl) as usize])
        .collect();
    let start = client.clock().now();
    let cpu0 = cpu_us();
    let stop = start.total_millis() + w.duration.as_millis() as u64;
    let real = StdInstant::now() + REAL_TIME_LIMIT;
    let (mut ios, mut inflight) = (0u64, 0u32);
    loop {
        while let Some(c) = client.next_completion() {
            if let Completion::Command { result, buffer, .. } = c {
                inflight -= 1;
                result.map_err(|e| BenchError::Io(format!("READ: {e:?}")))?;
                ios += 1;
                free.push(buffer.into_vec());
            }
        }
        let now = client.clock().now().total_millis();
        if now < stop && StdInstant::now() < real {
            while let Some(buf) = free.pop() {
                let lba = if w.random {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % span) * u64::from(nblk)
                } else {
                    seq += 1;
                    ((seq - 1) % span) * u64::from(nblk)
                };
                let len = buf.len() as u32;
                match client.session_mut().submit(
                    lun,
                    Cdb::read(lba, nblk),
                    Direction::Read,
                    buf,
                    len,
                ) {
                    Ok(_) => inflight += 1,
                    Err((e, b)) => {
                        free.push(b);
                        if inflight == 0 {
                            return Err(BenchError::Io(format!("submit: {e:?}")));
                        }
                        break;
                    }
                }
            }
        } else if inflight == 0 {
            break;
        }
        if let Some(e) = client.session().failure() {
            return Err(BenchError::Io(e.to_string()));
        }
        client.step(Duration::from_millis(200));
    }
    let sim_ms = client.clock().now().total_millis() - start.total_millis();
    let cpu = cpu_us() - cpu0;
    let _ = client.logout(Duration::from_secs(5));
    Ok(BenchResult {
        ios,
        sim_ms,
        cpu_us: cpu,
    })
}
