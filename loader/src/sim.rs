//! The ROM flow on the simulated fabric (`hca-sim`), against real servers.
//!
//! The fabric: a switch with the subnet manager, a gateway node (one port) that relays DHCP to
//! a real DHCP server and forwards TCP to a real iSCSI target on loopback, and the booting
//! node: a dual-port ConnectX whose port 1 has no cable and whose port 2 does — so the ROM has
//! to give up on port 1 within its bound and boot through port 2.
//!
//! The iSCSI initiator runs unchanged: its [`Transport`] is a smoltcp TCP socket over the
//! node's IPoIB interface, its [`Clock`] the simulator's clock. Every wait is bounded twice:
//! in simulated time by the protocol's own timeouts, and in real time by [`REAL_TIME_LIMIT`].

use std::cell::RefCell;
use std::rc::Rc;
use std::string::{String, ToString};
use std::time::Instant as StdInstant;
use std::vec::Vec;
use std::{format, vec};

use hca::verbs::PortNum;
use ibft::PciAddress;
use ipoib::dhcp::{ClientIdForm, Event, Lease};
use ipoib::iface;
use iscsi_initiator::block::BlockDevice;
use iscsi_initiator::login::{ChapConfig, Isid, LoginConfig, MutualChap, SessionType};
use iscsi_initiator::rootpath::RootPath;
use iscsi_initiator::session::{Portal, Session, SessionConfig};
use iscsi_initiator::time::Duration;
use iscsi_initiator::transport::{Client, Clock};
use net_sim::{IpHost, SimClock, SimTransport, REAL_TIME_LIMIT};

use crate::handoff::{self, BootPort, HandoffError};

pub use net_sim::{FabricConfig, World};

/// What the ROM is told to do.
#[derive(Debug, Clone)]
pub struct BootConfig {
    /// How long to wait for each port to become ACTIVE.
    pub port_timeout: core::time::Duration,
    /// The client-id form the DHCP server is configured for.
    pub client_id: ClientIdForm,
    /// How many bytes of the boot LUN to read (the boot blocks).
    pub boot_bytes: u32,
}

impl Default for BootConfig {
    fn default() -> Self {
        Self {
            port_timeout: core::time::Duration::from_secs(5),
            client_id: ClientIdForm::Rfc4390,
            boot_bytes: 4096,
        }
    }
}

/// Why the boot stopped.
#[derive(Debug)]
pub enum BootError {
    /// The fabric could not be built.
    Fabric(String),
    /// No port came up.
    NoPort(Vec<String>),
    /// DHCP gave no lease.
    Dhcp(String),
    /// The lease has no usable root path.
    RootPath(String),
    /// The iSCSI login or the reads failed.
    Iscsi(String),
    /// The iBFT could not be made.
    Handoff(HandoffError),
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootError::Fabric(e) => write!(f, "fabric: {e}"),
            BootError::NoPort(why) => write!(f, "no port came up: {}", why.join("; ")),
            BootError::Dhcp(e) => write!(f, "DHCP: {e}"),
            BootError::RootPath(e) => write!(f, "root path: {e}"),
            BootError::Iscsi(e) => write!(f, "iSCSI: {e}"),
            BootError::Handoff(e) => write!(f, "iBFT: {e}"),
        }
    }
}

impl std::error::Error for BootError {}

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

type SimClient = Client<SimTransport, SimClock>;

/// Step 1: port 1, then port 2, each bounded by the port timeout; the IPoIB interface up on the
/// first that becomes ACTIVE.
fn bring_up(
    world: &Rc<RefCell<World>>,
    cfg: &BootConfig,
    say: &mut dyn FnMut(&str),
) -> Result<(u8, ipoib::dhcp::Identity), BootError> {
    let mut why = Vec::new();
    for p in crate::PORT_ORDER {
        let icfg = iface::Config {
            port: PortNum(p),
            port_timeout: cfg.port_timeout,
            ..iface::Config::default()
        };
        let up = {
            let w = world.borrow();
            IpHost::up(&w.sim, w.node, icfg)
        };
        match up {
            Ok(h) => {
                say(&format!(
                    "port {p}: ACTIVE; joined the IPoIB broadcast group, IP MTU {}",
                    h.ipoib.mtu()
                ));
                let id = h.ipoib.identity();
                world.borrow_mut().host = Some(h);
                return Ok((p, id));
            }
            Err(e) => {
                say(&format!("port {p}: {e}"));
                why.push(format!("port {p}: {e}"));
            }
        }
    }
    Err(BootError::NoPort(why))
}

/// Step 2: DHCP over IB, through the gateway's relay.
fn acquire_lease(world: &Rc<RefCell<World>>, cfg: &BootConfig) -> Result<Lease, BootError> {
    let mut w = world.borrow_mut();
    let seed = w.cfg.seed ^ 0xd4c9;
    if let Some(h) = w.host.as_mut() {
        h.start_dhcp(cfg.client_id, seed);
    }
    let real = StdInstant::now() + REAL_TIME_LIMIT;
    loop {
        w.step();
        let ev = w.host.as_mut().and_then(|h| h.dhcp_events.pop_front());
        match ev {
            Some(Event::Bound(l)) => return Ok(l),
            Some(Event::TimedOut) => {
                return Err(BootError::Dhcp(
                    "no lease within the acquire timeout".into(),
                ))
            }
            Some(_) => {}
            None if StdInstant::now() >= real => {
                return Err(BootError::Dhcp(
                    "no lease within the real-time limit".into(),
                ))
            }
            None => {}
        }
    }
}

/// Step 3: the root path, and an iSCSI login to its target across the fabric.
fn login(
    world: &Rc<RefCell<World>>,
    lease: &Lease,
    identity: &ipoib::dhcp::Identity,
) -> Result<(SimClient, RootPath, String), BootError> {
    let rp = lease
        .root_path
        .as_deref()
        .ok_or_else(|| BootError::RootPath("the lease has no root path (option 17)".into()))?;
    let root = RootPath::parse(rp).map_err(|e| BootError::RootPath(format!("{rp}: {e}")))?;
    let target_ip = handoff::target_address(&root).map_err(BootError::Handoff)?;
    let initiator = handoff::initiator_name(lease, identity.port_guid);
    let chap = lease.credentials.as_ref().and_then(|c| {
        let user = c.username.clone()?;
        let secret = c.password.as_ref()?;
        let mutual = match (&c.reverse_username, &c.reverse_password) {
            (Some(u), Some(s)) => Some(MutualChap {
                target_user: u.clone(),
                target_secret: s.clone(),
            }),
            _ => None,
        };
        Some(ChapConfig {
            user,
            secret: secret.clone(),
            mutual,
        })
    });
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&identity.port_guid);
    seed[8..16].copy_from_slice(&world.borrow().sim.now().as_nanos().to_le_bytes()[..8]);
    let login = LoginConfig {
        isid: Isid::derive(&identity.port_guid, &initiator, 0),
        initiator_name: initiator.clone(),
        initiator_alias: None,
        target_name: Some(root.target.clone()),
        session_type: SessionType::Normal,
        chap,
        operational: Default::default(),
        entropy_seed: seed,
    };
    let portal = Portal {
        host: target_ip.to_string(),
        port: root.port,
    };
    let clock = SimClock::new(world.clone());
    let transport = SimTransport::new(world.clone());
    let session = Session::new(SessionConfig::new(login, portal), clock.now());
    let mut client = Client::new(session, transport, clock);
    client
        .login(Duration::from_secs(30))
        .map_err(|e| BootError::Iscsi(format!("login to {} failed: {e}", root.target)))?;
    Ok((client, root, initiator))
}

/// Runs the ROM flow. `say` gets one line per step, as a ROM prints on the console.
pub fn boot(
    world: World,
    cfg: &BootConfig,
    say: &mut dyn FnMut(&str),
) -> Result<Booted, BootError> {
    let world = Rc::new(RefCell::new(world));
    let (port, identity) = bring_up(&world, cfg, say)?;
    let lease = acquire_lease(&world, cfg)?;
    say(&format!(
        "DHCP: {}/{} via {} from server {}, root path {}",
        lease.address,
        lease.prefix_len.unwrap_or(0),
        lease
            .routers
            .first()
            .map_or("no router".to_string(), |r| r.to_string()),
        lease.server_id,
        lease.root_path.as_deref().unwrap_or("(none)")
    ));
    let (mut client, root, initiator) = login(&world, &lease, &identity)?;
    let auth = match lease.credentials.as_ref() {
        Some(c) if c.reverse_username.is_some() => "mutual CHAP",
        Some(c) if c.username.is_some() => "CHAP",
        _ => "no authentication",
    };
    say(&format!(
        "iSCSI: logged in to {} at {}:{} as {initiator} ({auth})",
        root.target,
        handoff::target_address(&root).map_err(BootError::Handoff)?,
        root.port
    ));
    let (capacity, boot_blocks) = {
        let mut disk = BlockDevice::new(&mut client, iscsi_initiator::scsi::Lun(root.lun));
        let cap = disk
            .capacity()
            .map_err(|e| BootError::Iscsi(format!("READ CAPACITY: {e}")))?;
        let bl = cap.block_len.max(1);
        let blocks = cfg.boot_bytes.div_ceil(bl);
        let data = disk
            .read(0, blocks, vec![0; (blocks * bl) as usize])
            .map_err(|e| BootError::Iscsi(format!("READ of the boot blocks: {e}")))?;
        (cap.bytes(), data)
    };
    say(&format!(
        "iSCSI: LUN {} is {} MiB; read {} boot bytes",
        ibft::Lun(root.lun),
        capacity >> 20,
        boot_blocks.len()
    ));
    // The OS logs in again (reinstating the session by the same ISID); log out cleanly here.
    let _ = client.logout(Duration::from_secs(5));

    // The iBFT for the OS.
    let port = BootPort {
        pci: PciAddress {
            bus: 0x81,
            device: 0,
            function: 0,
        },
        port,
        guid: identity.port_guid,
    };
    let table = handoff::build_ibft(&port, &lease, &root).map_err(BootError::Handoff)?;
    say(&format!(
        "iBFT: NIC 0 {} (port {} GUID MAC), target 0 {}",
        table.nics[0].mac, port.port, root.target
    ));
    Ok(Booted {
        port,
        lease,
        root,
        initiator,
        capacity,
        boot_blocks,
        ibft: table,
    })
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
) -> Result<BenchResult, BootError> {
    use iscsi_initiator::scsi::Cdb;
    use iscsi_initiator::session::{Completion, Direction};
    let world = Rc::new(RefCell::new(world));
    let (_, identity) = bring_up(&world, cfg, say)?;
    let lease = acquire_lease(&world, cfg)?;
    let (mut client, root, _) = login(&world, &lease, &identity)?;
    let lun = iscsi_initiator::scsi::Lun(root.lun);
    let cap = BlockDevice::new(&mut client, lun)
        .capacity()
        .map_err(|e| BootError::Iscsi(format!("READ CAPACITY: {e}")))?;
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
                result.map_err(|e| BootError::Iscsi(format!("READ: {e:?}")))?;
                ios += 1;
                free.push(buffer);
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
                            return Err(BootError::Iscsi(format!("submit: {e:?}")));
                        }
                        break;
                    }
                }
            }
        } else if inflight == 0 {
            break;
        }
        if let Some(e) = client.session().failure() {
            return Err(BootError::Iscsi(e.to_string()));
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
