//! The ROM's flow, the same on every firmware: the ports in their order, each with a bounded
//! wait → the link up → DHCP → the root path → an iSCSI login → the boot disk → the iBFT.
//!
//! Generic over the ports ([`Ports`]: an HCA's, through the verbs, or an Ethernet NIC's), the
//! firmware's clock ([`Env`]) and, through [`crate::net`], the iSCSI transport. It never
//! panics on what the network or the configuration says: every failure is a [`BootError`]
//! whose `Display` is the one console line a ROM prints before it hands back to the
//! firmware.
//!
//! What the lease gives takes precedence over the configuration, as in iPXE: the
//! configuration's root path is used when the lease has none (option 17), its initiator name
//! without option 203, its CHAP credentials for the fields option 175 leaves out.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use clock::Duration;
use ibft::Ibft;
use ipoib::dhcp::{self, Event, Lease};
use ipoib::wire::dhcp::IpxeCredentials;
use iscsi_initiator::block::{BlockDevice, BlockError};
use iscsi_initiator::login::{ChapConfig, Isid, LoginConfig, MutualChap, SessionType};
use iscsi_initiator::rootpath::{RootPath, RootPathError};
use iscsi_initiator::scsi::Lun;
use iscsi_initiator::session::{Portal, Session, SessionConfig};
use iscsi_initiator::transport::{Client, ClientError};

use crate::config::Config;
use crate::handoff::{self, BootPort, HandoffError};
use crate::net::{Env, Link, LinkError, Network, NicInfo, SmolNet};

/// Why a port did not come up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortError {
    /// The IPoIB interface did not come up (the port stayed down, no SM, no broadcast group).
    Ipoib(ipoib::iface::Error),
    /// The device has no such port.
    NoSuchPort,
    /// The device is already in use by an open port.
    InUse,
    /// No link within the wait.
    NoLink(Duration),
    /// The NIC failed (the firmware's status, in words).
    Device(&'static str),
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::Ipoib(e) => write!(f, "IPoIB: {e}"),
            PortError::NoSuchPort => f.write_str("no such port"),
            PortError::InUse => f.write_str("the device is in use"),
            PortError::NoLink(d) => write!(f, "no link within {} ms", d.as_millis()),
            PortError::Device(e) => write!(f, "NIC: {e}"),
        }
    }
}

/// The ports of the boot device (an HCA's, or an Ethernet NIC's one).
pub trait Ports<E: Env> {
    /// The link a port gives once up.
    type Link: Link;
    /// Brings `port` up within `wait`.
    fn open(&mut self, port: u8, wait: Duration, env: &mut E) -> Result<Self::Link, PortError>;
    /// What the console says of a port that came up.
    fn up_line(link: &Self::Link) -> String;
}

/// Why the boot device could not be used at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// The HCA driver failed to open the device.
    Hca(hca::Error),
    /// The firmware has no device of the kind (the words say which).
    NoDevice(&'static str),
    /// The firmware refused the device (its status, in words).
    Firmware(&'static str),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Hca(e) => write!(f, "HCA: {e}"),
            ProbeError::NoDevice(what) => write!(f, "no {what}"),
            ProbeError::Firmware(e) => write!(f, "firmware: {e}"),
        }
    }
}

/// Why the boot stopped. Its `Display` is the console line.
#[derive(Debug)]
pub enum BootError {
    /// The boot device could not be used.
    Probe(ProbeError),
    /// No port came up: each port tried, and why.
    NoPort(Vec<(u8, PortError)>),
    /// No lease within the DHCP client's acquire timeout.
    DhcpTimeout(Duration),
    /// The link refused to send DHCP.
    DhcpLink(LinkError),
    /// Neither the lease nor the configuration gives a root path.
    NoRootPath,
    /// The root path is not one the ROM can boot from.
    RootPath {
        /// The root path.
        path: String,
        /// What is wrong with it.
        error: RootPathError,
    },
    /// The target could not be reached or refused the login.
    Login {
        /// The target's name.
        target: String,
        /// Its portal.
        portal: String,
        /// What went wrong.
        error: ClientError,
    },
    /// The boot LUN could not be read.
    Disk {
        /// The command.
        what: &'static str,
        /// What went wrong.
        error: BlockError,
    },
    /// The boot LUN's block size is not one the ROM reads (a power of two from 512 bytes to
    /// 64 KiB).
    BlockSize(u32),
    /// The iBFT could not be made.
    Handoff(HandoffError),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::Probe(e) => write!(f, "probe: {e}"),
            BootError::NoPort(why) => {
                f.write_str("no port came up: ")?;
                for (i, (p, e)) in why.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "port {p}: {e}")?;
                }
                if why.is_empty() {
                    f.write_str("no port to try")?;
                }
                Ok(())
            }
            BootError::DhcpTimeout(d) => {
                write!(f, "DHCP: no lease within {} s", d.as_secs())
            }
            BootError::DhcpLink(e) => write!(f, "DHCP: {e}"),
            BootError::NoRootPath => f.write_str(
                "root path: the lease has no root path (option 17) and isboot.cfg gives no \
                 root-path",
            ),
            BootError::RootPath { path, error } => write!(f, "root path: {path}: {error}"),
            BootError::Login {
                target,
                portal,
                error,
            } => write!(f, "iSCSI: login to {target} at {portal} failed: {error}"),
            BootError::Disk { what, error } => write!(f, "iSCSI: {what}: {error}"),
            BootError::BlockSize(n) => write!(
                f,
                "iSCSI: the LUN's block size is {n} bytes; the ROM reads 512 to 65536 (a power \
                 of two)"
            ),
            BootError::Handoff(e) => write!(f, "iBFT: {e}"),
        }
    }
}

/// The initiator's client on a network.
pub type NetClient<N> = Client<<N as Network>::Transport, <N as Network>::Clock>;

/// What a successful boot leaves: the logged-in session (the firmware serves the disk from it
/// or logs out), what DHCP and the configuration gave, and the iBFT for the OS.
pub struct Booted<N: Network> {
    /// The network (the link and the firmware's clock).
    pub net: N,
    /// The session, logged in.
    pub client: NetClient<N>,
    /// The port it booted through.
    pub nic: NicInfo,
    /// The lease, with the configuration's values filled in where DHCP gave none.
    pub lease: Lease,
    /// The root path.
    pub root: RootPath,
    /// The initiator name it logged in with.
    pub initiator: String,
    /// The boot LUN.
    pub lun: Lun,
    /// The boot LUN's block size.
    pub block_len: u32,
    /// The boot LUN's size in bytes.
    pub capacity: u64,
    /// The first bytes of the boot LUN.
    pub boot_blocks: Vec<u8>,
    /// The iBFT left for the OS.
    pub ibft: Ibft,
}

impl<N: Network> fmt::Debug for Booted<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Booted")
            .field("nic", &self.nic)
            .field("root", &self.root)
            .field("initiator", &self.initiator)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// The lease with the configuration's values where DHCP gave none (iPXE's precedence).
pub fn effective_lease(lease: &Lease, cfg: &Config) -> Lease {
    let mut l = lease.clone();
    if l.root_path.is_none() {
        l.root_path = cfg.root_path.clone();
    }
    if l.initiator_iqn.is_none() {
        l.initiator_iqn = cfg.initiator_iqn.clone();
    }
    let c = l.credentials.take().unwrap_or_default();
    let merged = IpxeCredentials {
        username: c.username.or_else(|| cfg.username.clone()),
        password: c.password.or_else(|| cfg.password.clone()),
        reverse_username: c.reverse_username.or_else(|| cfg.reverse_username.clone()),
        reverse_password: c.reverse_password.or_else(|| cfg.reverse_password.clone()),
    };
    l.credentials = (merged != IpxeCredentials::default()).then_some(merged);
    l
}

/// Step 1: the ports in order, each bounded by the link wait.
fn bring_up<E: Env, P: Ports<E>>(
    ports: &mut P,
    env: &mut E,
    cfg: &Config,
    say: &mut dyn FnMut(&str),
) -> Result<P::Link, BootError> {
    let mut why = Vec::new();
    for &p in &cfg.port_order {
        match ports.open(p, cfg.link_wait, env) {
            Ok(link) => {
                say(&format!("port {p}: {}", P::up_line(&link)));
                return Ok(link);
            }
            Err(e) => {
                say(&format!("port {p}: {e}"));
                why.push((p, e));
            }
        }
    }
    Err(BootError::NoPort(why))
}

/// Step 2: DHCP, beside the IP stack; the address configured when bound.
fn acquire_lease<N: Network>(net: &mut N, cfg: &Config) -> Result<Lease, BootError> {
    let id = net.identity();
    let now = net.now();
    let seed = u64::from_le_bytes(id.port_guid) ^ now.total_nanos() ^ 0xd4c9;
    let mut dcfg = dhcp::Config::new(id, seed);
    dcfg.form = net.dhcp_form(cfg.client_id);
    dcfg.mtu = u16::try_from(net.mtu()).unwrap_or(u16::MAX);
    let acquire = dcfg.acquire_timeout;
    let mut client = dhcp::Client::new(dcfg, now);
    loop {
        net.poll();
        let now = net.now();
        let mut event = None;
        while let Some(p) = net.take_dhcp() {
            if let Some(e) = client.process(now, &p) {
                event = Some(e);
                break;
            }
        }
        if event.is_none() && client.poll_at().is_some_and(|t| t <= now) {
            event = client.handle_timeout(now);
        }
        match event {
            Some(Event::Bound(l)) => {
                net.set_ipv4(
                    l.address,
                    l.prefix_len.unwrap_or(24),
                    l.routers.first().copied(),
                );
                return Ok(l);
            }
            Some(Event::TimedOut) | Some(Event::Lost) => {
                return Err(BootError::DhcpTimeout(acquire));
            }
            Some(Event::Renewed(_)) | None => {}
        }
        while let Some(tx) = client.poll_transmit(now) {
            net.send_dhcp(&tx).map_err(BootError::DhcpLink)?;
        }
        net.idle(Duration::from_millis(1));
    }
}

/// Step 3: the root path, and an iSCSI login to its target.
fn login<N: Network>(
    net: &N,
    lease: &Lease,
    nic: &NicInfo,
    cfg: &Config,
) -> Result<(NetClient<N>, RootPath, String), BootError> {
    let rp = lease.root_path.as_deref().ok_or(BootError::NoRootPath)?;
    let root = RootPath::parse(rp).map_err(|error| BootError::RootPath {
        path: rp.to_string(),
        error,
    })?;
    let target_ip = handoff::target_address(&root).map_err(BootError::Handoff)?;
    let initiator = handoff::initiator_name(lease, nic.guid);
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
    let now = net.now();
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&nic.guid);
    seed[8..16].copy_from_slice(&now.total_nanos().to_le_bytes());
    let login = LoginConfig {
        isid: Isid::derive(&nic.guid, &initiator, 0),
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
    let first_port = 49152 + (now.total_millis() % 8192) as u16;
    let clock = net.clock();
    let transport = net.transport(first_port);
    let session = Session::new(SessionConfig::new(login, portal.clone()), now);
    let mut client = Client::new(session, transport, clock);
    client
        .login(cfg.login_timeout)
        .map_err(|error| BootError::Login {
            target: root.target.clone(),
            portal: format!("{}:{}", portal.host, portal.port),
            error,
        })?;
    Ok((client, root, initiator))
}

/// Runs the flow on `ports` with the firmware `env`, smoltcp over the port that comes up
/// ([`SmolNet`]). `say` gets one line per step, as the ROM prints them on the console.
pub fn boot<E: Env, P: Ports<E>>(
    ports: &mut P,
    mut env: E,
    cfg: &Config,
    say: &mut dyn FnMut(&str),
) -> Result<Booted<SmolNet<P::Link, E>>, BootError> {
    let link = bring_up(ports, &mut env, cfg, say)?;
    let seed = u64::from_le_bytes(link.nic().guid) ^ env.now().total_nanos();
    boot_on(SmolNet::new(link, env, seed), cfg, say)
}

/// The flow from DHCP on, on a network that is up (a firmware with its own TCP implements
/// [`Network`] and starts here, after its own port bring-up).
pub fn boot_on<N: Network>(
    mut net: N,
    cfg: &Config,
    say: &mut dyn FnMut(&str),
) -> Result<Booted<N>, BootError> {
    let nic = net.nic();
    let given = acquire_lease(&mut net, cfg)?;
    let lease = effective_lease(&given, cfg);
    let rp = match (&given.root_path, &lease.root_path) {
        (Some(r), _) => r.clone(),
        (None, Some(r)) => format!("{r} (from isboot.cfg)"),
        (None, None) => "(none)".to_string(),
    };
    say(&format!(
        "DHCP: {}/{} via {} from server {}, root path {rp}",
        lease.address,
        lease.prefix_len.unwrap_or(0),
        lease
            .routers
            .first()
            .map_or("no router".to_string(), |r| r.to_string()),
        lease.server_id,
    ));
    let (mut client, root, initiator) = login(&net, &lease, &nic, cfg)?;
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
    let lun = Lun(root.lun);
    let (capacity, block_len, boot_blocks) = {
        let mut disk = BlockDevice::new(&mut client, lun);
        let cap = disk.capacity().map_err(|error| BootError::Disk {
            what: "READ CAPACITY",
            error,
        })?;
        let bl = cap.block_len;
        if !(512..=65536).contains(&bl) || !bl.is_power_of_two() {
            return Err(BootError::BlockSize(bl));
        }
        let blocks = cfg.boot_bytes.clamp(1, 1 << 20).div_ceil(bl);
        let data = disk
            .read(0, blocks, vec![0; (blocks * bl) as usize])
            .map_err(|error| BootError::Disk {
                what: "READ of the boot blocks",
                error,
            })?;
        (cap.bytes(), bl, data)
    };
    say(&format!(
        "iSCSI: LUN {} is {} MiB; read {} boot bytes",
        ibft::Lun(root.lun),
        capacity >> 20,
        boot_blocks.len()
    ));
    let port = BootPort {
        pci: nic.pci,
        port: nic.port,
        guid: nic.guid,
        mac: nic.mac,
    };
    let table = handoff::build_ibft(&port, &lease, &root).map_err(BootError::Handoff)?;
    say(&format!(
        "iBFT: NIC 0 {} (port {} {}), target 0 {}",
        table.nics[0].mac, nic.port, nic.mac_origin, root.target
    ));
    Ok(Booted {
        net,
        client,
        nic,
        lease,
        root,
        initiator,
        lun,
        block_len,
        capacity,
        boot_blocks,
        ibft: table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use ipoib::wire::dhcp::Secret;

    fn lease() -> Lease {
        Lease {
            address: Ipv4Addr::new(192, 0, 2, 100),
            prefix_len: Some(24),
            routers: vec![],
            dns_servers: vec![],
            host_name: None,
            domain_name: None,
            root_path: None,
            initiator_iqn: None,
            credentials: None,
            vendor_specific: None,
            server_id: Ipv4Addr::new(192, 0, 2, 1),
            relay: None,
            lease_time: None,
            renewal_time: None,
            rebinding_time: None,
        }
    }

    fn cfg() -> Config {
        crate::config::parse(
            b"root-path=iscsi:192.0.2.9::::iqn.cfg:t\ninitiator-iqn=iqn.cfg:i\n\
              username=cu\npassword=cp\nreverse-username=cru\nreverse-password=crp\n",
        )
        .unwrap()
    }

    #[test]
    fn the_configuration_fills_in_what_the_lease_leaves_out() {
        let l = effective_lease(&lease(), &cfg());
        assert_eq!(l.root_path.as_deref(), Some("iscsi:192.0.2.9::::iqn.cfg:t"));
        assert_eq!(l.initiator_iqn.as_deref(), Some("iqn.cfg:i"));
        let c = l.credentials.unwrap();
        assert_eq!(c.username.as_deref(), Some("cu"));
        assert_eq!(c.password.unwrap().expose(), b"cp");
        assert_eq!(c.reverse_username.as_deref(), Some("cru"));
        assert_eq!(c.reverse_password.unwrap().expose(), b"crp");
        // Nothing anywhere: no credentials at all (not an empty set).
        assert_eq!(
            effective_lease(&lease(), &Config::default()).credentials,
            None
        );
    }

    #[test]
    fn what_dhcp_gives_takes_precedence_field_by_field() {
        let mut given = lease();
        given.root_path = Some("iscsi:192.0.2.10::::iqn.dhcp:t".into());
        given.initiator_iqn = Some("iqn.dhcp:i".into());
        given.credentials = Some(IpxeCredentials {
            username: Some("du".into()),
            password: Some(Secret::new(b"dp".to_vec())),
            reverse_username: None,
            reverse_password: None,
        });
        let l = effective_lease(&given, &cfg());
        assert_eq!(
            l.root_path.as_deref(),
            Some("iscsi:192.0.2.10::::iqn.dhcp:t")
        );
        assert_eq!(l.initiator_iqn.as_deref(), Some("iqn.dhcp:i"));
        let c = l.credentials.unwrap();
        assert_eq!(c.username.as_deref(), Some("du"));
        assert_eq!(c.password.unwrap().expose(), b"dp");
        // Option 175 without the reverse pair: the file's pair completes mutual CHAP.
        assert_eq!(c.reverse_username.as_deref(), Some("cru"));
        assert_eq!(c.reverse_password.unwrap().expose(), b"crp");
    }

    #[test]
    fn every_error_is_one_line() {
        let errors = [
            BootError::Probe(ProbeError::NoDevice("network interface")),
            BootError::NoPort(vec![(1, PortError::NoLink(Duration::from_secs(45)))]),
            BootError::NoPort(vec![]),
            BootError::DhcpTimeout(Duration::from_secs(60)),
            BootError::NoRootPath,
            BootError::RootPath {
                path: "iscsi:".into(),
                error: RootPathError::TooShort,
            },
            BootError::BlockSize(520),
        ];
        for e in errors {
            let s = e.to_string();
            assert!(!s.contains('\n') && !s.is_empty(), "{s}");
        }
        assert_eq!(
            BootError::NoPort(vec![
                (1, PortError::NoLink(Duration::from_millis(500))),
                (2, PortError::NoSuchPort)
            ])
            .to_string(),
            "no port came up: port 1: no link within 500 ms; port 2: no such port"
        );
    }
}
