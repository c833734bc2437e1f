//! The boot thread: from a valid iBFT to a root disk, then the disk kept alive.
//!
//! `MOD_LOAD` validates the table, takes the root-mount hold and starts a kernel thread that
//! runs [`run`]; the kernel goes on booting meanwhile and waits for the hold at mountroot
//! (`sys/kern/vfs_mountroot.c`). The steps, each announced by one console line and each wait
//! bounded by a tunable ([`BootTunables`]):
//!
//! 1. **the boot interface**: the interface whose link-layer address the iBFT NIC names — an
//!    Ethernet NIC by MAC (as the C isboot matches it; what makes bhyve and QEMU work), or an
//!    IPoIB interface by the rules in [`ibft::identity`] (the GUID-derived MAC, the PCI
//!    function) — waited for until it attaches and its link is up;
//! 2. **addressing that destroys nothing**: the interface is brought up and gets the iBFT's
//!    address only if it lacks it (existing addresses are never changed or deleted); the target
//!    must be on-link, reachable through an existing route, or through a host route via the
//!    iBFT's gateway; a default route is added only when there is none;
//! 3. **the session**: a login with the iBFT's initiator name, target and CHAP credentials
//!    (mutual CHAP when the table says so), an ISID derived from the interface and the
//!    initiator name (the same after every reboot, so a new login reinstates a stale session,
//!    RFC 7143 §6.3.5);
//! 4. **the disk**: a CAM SIM with the target's LUN as `daN` ([`crate::cam`]); the hold is
//!    released once CAM's scan has attached it;
//! 5. **serving** it for the life of the system: CCBs to tasks and back, pings, reconnects.
//!
//! A wait that ends in failure prints why, releases the hold and returns: the kernel then
//! reaches its mountroot prompt. Nothing here blocks without a bound, and nothing panics.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr};

use ibft::identity::{match_nic, IbPort};
use ibft::{ChapType, Ibft, Nic, PciAddress, Target};
use iscsi_initiator::login::{ChapConfig, Isid, LoginConfig, MutualChap, SessionType};
use iscsi_initiator::negotiate::OperationalConfig;
use iscsi_initiator::scsi::Lun;
use iscsi_initiator::session::{Portal, Session, SessionConfig};
use iscsi_initiator::time::{Duration, DurationExt};
use iscsi_initiator::transport::{Client, Clock, Transport};

use crate::cam::{self, Outcome, QueueEvent, ScsiIo, ScsiIoDone, Sim};

/// The waits and limits of the boot thread (loader tunables; see [`crate::tunables`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootTunables {
    /// `net.isboot.wait_interface`: how long the interface may take to attach and get link.
    pub wait_interface: Duration,
    /// `net.isboot.wait_login`: how long the first login may take, retries included.
    pub wait_login: Duration,
    /// `net.isboot.wait_disk`: how long CAM's scan may take to attach the disk.
    pub wait_disk: Duration,
    /// `net.isboot.recovery_timeout`: how long a lost session is retried before its commands
    /// fail (zero: for ever — the root disk is worth waiting for).
    pub recovery: Duration,
    /// `net.isboot.pkey`: the partition of the module's own IPoIB link (the iBFT has no field
    /// for it).
    pub pkey: u16,
}

impl Default for BootTunables {
    fn default() -> Self {
        Self {
            wait_interface: Duration::from_secs(60),
            wait_login: Duration::from_secs(60),
            wait_disk: Duration::from_secs(30),
            recovery: Duration::ZERO,
            pkey: 0xffff,
        }
    }
}

/// The boot interface as the iBFT describes it, and the target.
#[derive(Clone)]
pub struct BootPlan {
    /// The iBFT NIC's MAC (for IPoIB, derived from the port GUID).
    pub mac: [u8; 6],
    /// The NIC's PCI function.
    pub pci: PciAddress,
    /// The NIC's VLAN (0: none).
    pub vlan: u16,
    /// The address to have on the interface.
    pub address: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// The iBFT's gateway, if any.
    pub gateway: Option<Ipv4Addr>,
    /// The target's address and port.
    pub target_addr: Ipv4Addr,
    /// The target's TCP port.
    pub target_port: u16,
    /// The target's name.
    pub target_name: String,
    /// The LUN.
    pub lun: Lun,
    /// The initiator's name.
    pub initiator: String,
    /// CHAP credentials (secrets zeroed on drop, never printed).
    pub chap: Option<ChapConfig>,
    /// The NIC as the table has it (for the IPoIB matching rules).
    nic: Nic,
}

impl fmt::Debug for BootPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootPlan")
            .field("address", &self.address)
            .field("target", &self.target_name)
            .field("portal", &(self.target_addr, self.target_port))
            .field("chap", &self.chap.as_ref().map(|c| c.mutual.is_some()))
            .finish_non_exhaustive()
    }
}

/// Why the table cannot be booted from (it is valid, but not usable by this module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// No target is marked for boot.
    NoBootTarget,
    /// The boot target names no NIC in the table.
    NoNic,
    /// IPv6 addressing (not supported yet).
    Ipv6(&'static str),
    /// A field the boot needs is empty.
    Missing(&'static str),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoBootTarget => f.write_str("the iBFT marks no target for boot"),
            PlanError::NoNic => f.write_str("the boot target's NIC is not in the iBFT"),
            PlanError::Ipv6(what) => write!(f, "the {what} is IPv6, which isboot does not do yet"),
            PlanError::Missing(what) => write!(f, "the iBFT has no {what}"),
        }
    }
}

fn v4(a: Option<IpAddr>, what: &'static str) -> Result<Option<Ipv4Addr>, PlanError> {
    match a {
        None => Ok(None),
        Some(IpAddr::V4(a)) if a.is_unspecified() => Ok(None),
        Some(IpAddr::V4(a)) => Ok(Some(a)),
        Some(IpAddr::V6(_)) => Err(PlanError::Ipv6(what)),
    }
}

impl BootPlan {
    /// What to do, from a valid table.
    pub fn from_table(t: &Ibft) -> Result<Self, PlanError> {
        let target: &Target = t.boot_target().ok_or(PlanError::NoBootTarget)?;
        let nic = t.nic_for(target).ok_or(PlanError::NoNic)?;
        let address =
            v4(nic.ip_address, "NIC address")?.ok_or(PlanError::Missing("NIC address"))?;
        let target_addr =
            v4(target.ip_address, "target address")?.ok_or(PlanError::Missing("target address"))?;
        let target_name = target
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or(PlanError::Missing("target name"))?;
        let initiator = t
            .initiator
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or(PlanError::Missing("initiator name"))?;
        let chap = match target.chap_type {
            ChapType::None => None,
            ChapType::Chap | ChapType::Mutual => {
                let user = target
                    .chap_name
                    .clone()
                    .ok_or(PlanError::Missing("CHAP name"))?;
                let secret = target
                    .chap_secret
                    .clone()
                    .ok_or(PlanError::Missing("CHAP secret"))?;
                let mutual = if target.chap_type == ChapType::Mutual {
                    Some(MutualChap {
                        target_user: target
                            .reverse_chap_name
                            .clone()
                            .ok_or(PlanError::Missing("reverse CHAP name"))?,
                        target_secret: target
                            .reverse_chap_secret
                            .clone()
                            .ok_or(PlanError::Missing("reverse CHAP secret"))?,
                    })
                } else {
                    None
                };
                Some(ChapConfig {
                    user,
                    secret,
                    mutual,
                })
            }
        };
        Ok(Self {
            mac: nic.mac.0,
            pci: nic.pci,
            vlan: nic.vlan,
            address,
            prefix: nic.prefix_length,
            gateway: v4(nic.gateway, "gateway")?,
            target_addr,
            target_port: if target.port == 0 { 3260 } else { target.port },
            target_name,
            lun: Lun(target.lun.0),
            initiator,
            chap,
            nic: nic.clone(),
        })
    }

    /// The authentication, as the console says it.
    pub fn auth(&self) -> &'static str {
        match &self.chap {
            None => "no authentication",
            Some(c) if c.mutual.is_some() => "mutual CHAP",
            Some(_) => "CHAP",
        }
    }

    /// Whether `ip` is on the iBFT NIC's subnet.
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        same_subnet(self.address, ip, self.prefix)
    }
}

/// Whether `a` and `b` share the first `prefix` bits.
pub fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    u32::from(a) & mask == u32::from(b) & mask
}

/// What kind of link an interface has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkAddr {
    /// Ethernet: a 6-byte MAC.
    Ethernet([u8; 6]),
    /// IPoIB: the 20-byte address (flags and QPN, then the port GID, RFC 4391 §9.1.1), the
    /// HCA's PCI function and the port, when the driver says.
    Infiniband {
        /// The link-layer address.
        lladdr: [u8; 20],
        /// The HCA's PCI function.
        pci: Option<PciAddress>,
        /// The port, 1-based.
        port: Option<u8>,
    },
    /// Anything else (loopback, tunnels): never the boot interface.
    Other,
}

/// An interface the kernel has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetIf {
    /// Its name (`vtnet0`, `ib0`).
    pub name: String,
    /// Its link.
    pub link: LinkAddr,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Link up (`LINK_STATE_UP`).
    pub link_up: bool,
    /// Its IPv4 addresses with prefix lengths.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
}

/// The interface the plan names, if the kernel has it. For IPoIB interfaces the port GUID is
/// the GID's interface identifier (RFC 4391 §9.1.1: bytes 12..20 of the address).
pub fn match_interface<'a>(plan: &BootPlan, ifs: &'a [NetIf]) -> Option<&'a NetIf> {
    if let Some(i) = ifs
        .iter()
        .find(|i| matches!(i.link, LinkAddr::Ethernet(mac) if mac == plan.mac))
    {
        return Some(i);
    }
    let ib: Vec<(&NetIf, IbPort)> = ifs
        .iter()
        .filter_map(|i| match &i.link {
            LinkAddr::Infiniband { lladdr, pci, port } => {
                let mut guid = [0u8; 8];
                guid.copy_from_slice(&lladdr[12..20]);
                Some((
                    i,
                    IbPort {
                        pci: pci.unwrap_or(PciAddress {
                            bus: 0xff,
                            device: 0xff,
                            function: 0xff,
                        }),
                        port: port.unwrap_or(0),
                        guid: ibft::identity::PortGuid(guid),
                        firmware_mac: None,
                    },
                ))
            }
            _ => None,
        })
        .collect();
    let ports: Vec<IbPort> = ib.iter().map(|(_, p)| *p).collect();
    let m = match_nic(&plan.nic, &ports).ok()?;
    ib.get(m.index).map(|(i, _)| *i)
}

/// A route the kernel has to a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Through this interface.
    pub ifname: String,
    /// Via this gateway (`None`: on-link).
    pub gateway: Option<Ipv4Addr>,
}

/// Why the kernel refused a network change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetError(pub String);

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A CCB the SIM's action routine handed to the boot thread.
#[derive(Debug)]
pub enum CamRequest {
    /// `XPT_SCSI_IO`.
    Io(ScsiIo),
    /// `XPT_ABORT` of the CCB `victim`.
    Abort {
        /// The abort CCB.
        token: u64,
        /// The CCB to abort.
        victim: u64,
    },
    /// `XPT_RESET_DEV`.
    ResetDev {
        /// The CCB.
        token: u64,
    },
}

/// How CAM's scan of the new bus went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanState {
    /// Still scanning.
    Scanning,
    /// A disk attached: its name (`da0`).
    Attached(String),
    /// The scan finished and no disk attached (why).
    Failed(String),
}

/// `pci0:B:D:F`, as pciconf(8) and the kernel's messages write a PCI selector (domain 0).
#[derive(Clone, Copy, Debug)]
pub struct PciSel(pub PciAddress);

impl fmt::Display for PciSel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        write!(f, "pci0:{}:{}:{}", p.bus, p.device, p.function)
    }
}

/// Why the module's own HCA driver did not open the iBFT NIC's device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NativeError {
    /// This platform has no native driver (the [`BootEnv`] default): only an existing
    /// interface can be the boot interface.
    Unavailable,
    /// No PCI function at the address the iBFT names.
    NoDevice(PciAddress),
    /// Another driver owns the function (e.g. `mlx4_core0`); the module never touches it.
    Owned {
        /// The function.
        pci: PciAddress,
        /// The owner's name and unit.
        owner: String,
    },
    /// The function is not an HCA the module drives.
    Unsupported {
        /// The function.
        pci: PciAddress,
        /// Its PCI vendor id.
        vendor: u16,
        /// Its PCI device id.
        device: u16,
    },
    /// A bus resource (a BAR, a DMA tag, bus mastering) could not be had.
    Resource {
        /// The function.
        pci: PciAddress,
        /// What, in words.
        what: String,
    },
    /// The driver could not bring the device up.
    Driver {
        /// The function.
        pci: PciAddress,
        /// The driver's error.
        error: hca::Error,
    },
}

impl fmt::Display for NativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NativeError::Unavailable => f.write_str("no native HCA driver on this platform"),
            NativeError::NoDevice(p) => write!(
                f,
                "{}: no such PCI function (the iBFT NIC's); no native HCA to open",
                PciSel(*p)
            ),
            NativeError::Owned { pci, owner } => write!(
                f,
                "{} is owned by {owner}; using the existing interface path only",
                PciSel(*pci)
            ),
            NativeError::Unsupported {
                pci,
                vendor,
                device,
            } => write!(
                f,
                "{}: {vendor:04x}:{device:04x} is not an HCA isboot drives; using the existing \
                 interface path only",
                PciSel(*pci)
            ),
            NativeError::Resource { pci, what } => write!(f, "{}: {what}", PciSel(*pci)),
            NativeError::Driver { pci, error } => {
                write!(f, "{}: the HCA did not come up: {error}", PciSel(*pci))
            }
        }
    }
}

/// The kernel around the boot thread: the FreeBSD platform, or a host double in tests.
pub trait BootEnv {
    /// The iSCSI connection (kernel sockets). Its `recv` returns early (as a timeout) when a
    /// CCB arrives, so that the thread can hand it to the session.
    type Transport: Transport;
    /// The clock.
    type Clock: Clock;

    /// One console line.
    fn console(&self, line: fmt::Arguments<'_>);
    /// The clock (a fresh handle).
    fn clock(&self) -> Self::Clock;
    /// The interfaces the kernel has now.
    fn interfaces(&self) -> Vec<NetIf>;
    /// Sets `IFF_UP`.
    fn bring_up(&mut self, ifname: &str) -> Result<(), NetError>;
    /// Adds an IPv4 address (and its connected route) to the interface.
    fn add_address(&mut self, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError>;
    /// The route the kernel would use to `dst`, if any.
    fn route(&self, dst: Ipv4Addr) -> Option<Route>;
    /// Whether a default route exists.
    fn has_default_route(&self) -> bool;
    /// Adds a route to `dst/prefix` via `gateway` on `ifname` (prefix 0: the default route).
    fn add_route(
        &mut self,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
        ifname: &str,
    ) -> Result<(), NetError>;
    /// A transport for the session.
    fn transport(&mut self) -> Self::Transport;
    /// Entropy for CHAP challenges (the kernel's `arc4random_buf`).
    fn entropy(&mut self, out: &mut [u8; 32]);
    /// Registers the SIM (with what `XPT_PATH_INQ` answers and `openings` tagged commands) and
    /// starts CAM's scan of its bus.
    fn cam_register(&mut self, inq: cam::PathInq, openings: u32) -> Result<(), NetError>;
    /// The next CCB the action routine queued, if any (does not wait). Its CDB and data
    /// buffers come from `pool` (so that steady state allocates nothing).
    fn cam_next(&mut self, pool: &mut cam::BufferPool) -> Option<CamRequest>;
    /// Completes an `XPT_SCSI_IO` CCB (freezing the device queue first when the status says
    /// `CAM_DEV_QFRZN`). Its buffers go back to the SIM's pool afterwards.
    fn cam_done_io(&mut self, done: &ScsiIoDone);
    /// Completes another CCB with a status.
    fn cam_done(&mut self, token: u64, status: cam::CamStatus);
    /// Freezes or releases the SIM queue.
    fn cam_queue(&mut self, ev: QueueEvent);
    /// How the scan goes.
    fn cam_scan(&mut self) -> ScanState;
    /// Releases the root-mount hold (idempotent).
    fn release_hold(&mut self);
    /// Whether the module is being unloaded or the system shut down: log out and return.
    fn stop_requested(&self) -> bool;
    /// Publishes the boot thread's state for `sysctl net.isboot` (the device, the NIC, the
    /// target, the session state, reconnects, the last error).
    fn publish_state(&mut self, state: &BootState);
    /// Opens the HCA at `pci` with the module's own driver, when no existing interface is the
    /// boot interface. It must refuse (and not touch the hardware) when another driver owns
    /// the function. The default: no native driver.
    fn open_native_hca(&mut self, pci: PciAddress) -> Result<Box<dyn hca::Verbs>, NativeError> {
        let _ = pci;
        Err(NativeError::Unavailable)
    }
    /// Where the module's own IPoIB link says what it does, now and later from whatever thread
    /// polls it: one console line per call, given whole (`isboot: IPoIB: ...`). The default
    /// drops them (a platform without a native driver never brings such a link up).
    fn native_console(&self) -> crate::native::Say {
        Box::new(|_: &str| {})
    }
    /// Attaches the kernel's interface over the module's own IPoIB link and returns its name.
    /// The platform keeps the interface for the life of the module (until the boot thread has
    /// returned and the disk is gone); detaching it shuts the link down and closes the HCA. On
    /// failure the link is shut down and nothing is left. The default: no such interface.
    fn attach_native_ifnet(&mut self, link: crate::native::NativeLink) -> Result<String, NetError> {
        drop(link);
        Err(NetError(String::from(
            "no native IPoIB interface on this platform",
        )))
    }
}

/// What `sysctl net.isboot` shows of the boot thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootState {
    /// `net.isboot.device`: the disk (`da0`), once attached.
    pub device: String,
    /// `net.isboot.nic`: the boot interface.
    pub nic: String,
    /// `net.isboot.target`: `NAME at ADDR:PORT LUN n`.
    pub target: String,
    /// `net.isboot.session_state`: `waiting for interface`, `logging in`, `logged in`,
    /// `reconnecting`, `failed`, `logged out`.
    pub session_state: String,
    /// `net.isboot.reconnects`: connections re-established after a loss.
    pub reconnects: u32,
    /// `net.isboot.last_error`: the last thing that went wrong, in words (never a secret).
    pub last_error: String,
    /// `net.isboot.timing.*`: when each stage was reached.
    pub timing: StageTimes,
}

/// When the boot thread reached each stage, in milliseconds since it started (MOD_LOAD starts
/// it just before returning, so this is also, within a scheduling delay, the time since the
/// module's load). `None` until the stage is reached; a failed boot leaves the later stages
/// `None` (except `hold_released`, which every ending sets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// `interface_ms`: the boot interface found with its link up.
    pub interface: Option<u32>,
    /// `address_ms`: its address and routes configured.
    pub address: Option<u32>,
    /// `login_ms`: the iSCSI login done.
    pub login: Option<u32>,
    /// `disk_ms`: CAM attached the disk (`daN` announced).
    pub disk: Option<u32>,
    /// `hold_released_ms`: the root mount hold released.
    pub hold_released: Option<u32>,
}

impl StageTimes {
    /// The stages' sysctl leaf names (under `net.isboot.timing`) with their times, in the
    /// order the boot reaches them.
    pub fn stages(&self) -> [(&'static str, Option<u32>); 5] {
        [
            ("interface_ms", self.interface),
            ("address_ms", self.address),
            ("login_ms", self.login),
            ("disk_ms", self.disk),
            ("hold_released_ms", self.hold_released),
        ]
    }
}

/// Milliseconds from `start` to the clock's now, saturating at `u32::MAX` (49 days).
fn ms_since<C: Clock>(clock: &C, start: iscsi_initiator::time::Instant) -> u32 {
    u32::try_from(clock.now().saturating_since(start).total_millis()).unwrap_or(u32::MAX)
}

/// Why the boot thread stopped before the disk was there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The plan could not be made from the table.
    Plan(PlanError),
    /// The iBFT asks for a VLAN.
    Vlan {
        /// The VLAN.
        vlan: u16,
        /// The parent interface.
        ifname: String,
    },
    /// No interface with the NIC's address attached in time.
    NoInterface {
        /// The MAC the table names.
        mac: [u8; 6],
        /// The wait.
        waited: Duration,
    },
    /// The interface attached but its link stayed down.
    NoLink {
        /// The interface.
        ifname: String,
        /// The wait.
        waited: Duration,
    },
    /// The kernel refused a network change.
    Net {
        /// What was being done.
        what: String,
        /// The kernel's answer.
        error: NetError,
    },
    /// No route to the target and no gateway to make one.
    NoRoute(Ipv4Addr),
    /// The login failed.
    Login {
        /// `ADDR:PORT`.
        portal: String,
        /// Why, in words.
        why: String,
    },
    /// CAM did not attach the disk.
    Disk(String),
    /// Unloaded before the disk was there.
    Stopped,
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::Plan(e) => write!(f, "cannot boot from this iBFT: {e}"),
            BootError::Vlan { vlan, ifname } => write!(
                f,
                "the iBFT asks for VLAN {vlan} on {ifname}; isboot does not create VLAN \
                 interfaces yet (boot from an untagged port)"
            ),
            BootError::NoInterface { mac, waited } => write!(
                f,
                "no interface with MAC {} appeared within {} s (net.isboot.wait_interface)",
                Mac(*mac),
                secs(*waited)
            ),
            BootError::NoLink { ifname, waited } => write!(
                f,
                "{ifname}: link stayed down for {} s (net.isboot.wait_interface)",
                secs(*waited)
            ),
            BootError::Net { what, error } => write!(f, "{what}: {error}"),
            BootError::NoRoute(t) => write!(
                f,
                "no route to the target {t}, and the iBFT has no gateway to reach it through"
            ),
            BootError::Login { portal, why } => write!(f, "{portal}: login refused: {why}"),
            BootError::Disk(why) => write!(f, "no disk: {why}"),
            BootError::Stopped => f.write_str("stopped before the disk was attached"),
        }
    }
}

struct Mac([u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Whole seconds of a wait, for messages.
fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// How often waits look again.
const POLL: Duration = Duration::from_millis(100);
/// The longest the serving loop sleeps in one receive (the transport returns earlier when a
/// CCB arrives or data comes in).
const SERVE_TICK: Duration = Duration::from_millis(500);
/// The same while waiting for CAM to attach the disk: the attachment itself wakes nothing, and
/// the root mount hold should go as soon as it is there.
const DISK_TICK: Duration = Duration::from_millis(10);

macro_rules! say {
    ($env:expr, $($arg:tt)*) => {
        $env.console(format_args!("isboot: {}", format_args!($($arg)*)))
    };
}

/// What the boot thread leaves when it returns after serving.
#[derive(Debug)]
pub struct Served {
    /// The final state.
    pub state: BootState,
}

/// Runs the boot thread: steps 1–4, then serves the disk until [`BootEnv::stop_requested`].
/// On failure the hold is released and the error said on the console before returning.
pub fn run<E: BootEnv>(env: &mut E, table: &Ibft, t: &BootTunables) -> Result<Served, BootError> {
    let mut state = BootState::default();
    // One handle for every stage: a fresh handle may count from an origin of its own.
    let clock = env.clock();
    let started = clock.now();
    let r = run_inner(env, table, t, &mut state, (&clock, started));
    if let Err(e) = &r {
        say!(env, "{e}");
        if *e != BootError::Stopped {
            say!(
                env,
                "giving up; releasing the root mount hold (the kernel will ask for a root device)"
            );
        }
        state.session_state = String::from("failed");
        state.last_error = format!("{e}");
        env.publish_state(&state);
    }
    // The time is published before the release: whoever the release wakes (mountroot, a test
    // reading net.isboot.timing) sees it.
    if state.timing.hold_released.is_none() {
        state.timing.hold_released = Some(ms_since(&clock, started));
        env.publish_state(&state);
    }
    env.release_hold();
    r.map(|()| Served { state })
}

fn run_inner<E: BootEnv>(
    env: &mut E,
    table: &Ibft,
    t: &BootTunables,
    state: &mut BootState,
    (clock, started): (&E::Clock, iscsi_initiator::time::Instant),
) -> Result<(), BootError> {
    let plan = BootPlan::from_table(table).map_err(BootError::Plan)?;
    state.target = format!(
        "{} at {}:{} LUN {}",
        plan.target_name,
        plan.target_addr,
        plan.target_port,
        lun_number(&plan.lun)
    );
    state.session_state = String::from("waiting for interface");
    env.publish_state(state);

    let ifname = wait_interface(env, &plan, t)?;
    state.nic = ifname.clone();
    state.timing.interface = Some(ms_since(clock, started));
    env.publish_state(state);
    if plan.vlan != 0 {
        return Err(BootError::Vlan {
            vlan: plan.vlan,
            ifname,
        });
    }
    configure(env, &plan, &ifname)?;
    state.timing.address = Some(ms_since(clock, started));

    state.session_state = String::from("logging in");
    env.publish_state(state);
    let mut client = login(env, &plan, &ifname, t)?;
    state.session_state = String::from("logged in");
    state.timing.login = Some(ms_since(clock, started));
    env.publish_state(state);

    let burst = client.session().params().max_burst_length;
    let depth = u32::from(client.session().capacity().min(255) as u16);
    env.cam_register(Sim::path_inq(burst), depth.max(1))
        .map_err(|e| BootError::Disk(format!("{e}")))?;
    let mut sim = Sim::new(plan.lun);
    say!(
        env,
        "waiting for CAM to attach LUN {}",
        lun_number(&plan.lun)
    );
    let end = client.clock().now() + t.wait_disk;
    let mut attached = None;
    let mut logins = client.session().logins();
    while attached.is_none() {
        if env.stop_requested() {
            let _ = client.logout(Duration::from_secs(5));
            return Err(BootError::Stopped);
        }
        match env.cam_scan() {
            ScanState::Attached(dev) => {
                state.timing.disk = Some(ms_since(clock, started));
                attached = Some(dev);
                // Straight to the release: a serving turn here could wait a whole tick.
                continue;
            }
            ScanState::Failed(why) => return Err(BootError::Disk(why)),
            ScanState::Scanning => {}
        }
        serve_once(env, &mut client, &mut sim, state, &mut logins, DISK_TICK);
        if client.clock().now() >= end && attached.is_none() {
            return Err(BootError::Disk(format!(
                "CAM did not attach the LUN within {} s (net.isboot.wait_disk)",
                secs(t.wait_disk)
            )));
        }
    }
    let dev = attached.unwrap_or_default();
    say!(
        env,
        "LUN {} of {} at {}:{} is {dev}; releasing the root mount hold",
        lun_number(&plan.lun),
        plan.target_name,
        plan.target_addr,
        plan.target_port
    );
    state.device = dev;
    // Published before the release, so that what the release wakes sees the time too.
    state.timing.hold_released = Some(ms_since(clock, started));
    env.publish_state(state);
    env.release_hold();

    while !env.stop_requested() {
        serve_once(env, &mut client, &mut sim, state, &mut logins, SERVE_TICK);
    }
    say!(env, "logging out of {}", plan.target_name);
    match client.logout(Duration::from_secs(5)) {
        Ok(()) => say!(env, "logged out"),
        Err(e) => say!(env, "logout did not complete: {e:?}"),
    }
    state.session_state = String::from("logged out");
    env.publish_state(state);
    Ok(())
}

/// The LUN's number (single-level peripheral or flat addressing, SAM-5 §4.7.7).
fn lun_number(l: &Lun) -> u16 {
    match l.0[0] >> 6 {
        0 => u16::from(l.0[1]),
        1 => (u16::from(l.0[0] & 0x3f) << 8) | u16::from(l.0[1]),
        _ => u16::from(l.0[1]),
    }
}

fn wait_interface<E: BootEnv>(
    env: &mut E,
    plan: &BootPlan,
    t: &BootTunables,
) -> Result<String, BootError> {
    let clock = env.clock();
    let start = clock.now();
    let mut end = start + t.wait_interface;
    let mut announced = false;
    let mut found: Option<NetIf> = None;
    let mut tried_native = false;
    // The module's own IPoIB interface, once attached: the boot interface by name (its
    // 20-byte address is the port's GID, which the wait cannot match against the NIC's MAC
    // without the HCA's PCI function and port, which rtnetlink does not say).
    let mut native: Option<String> = None;
    loop {
        // An unload during the wait ends it (the module waits for this thread).
        if env.stop_requested() {
            return Err(BootError::Stopped);
        }
        let ifs = env.interfaces();
        let matched = match_interface(plan, &ifs).or_else(|| {
            native
                .as_ref()
                .and_then(|n| ifs.iter().find(|i| &i.name == n))
        });
        if let Some(i) = matched {
            if found.as_ref().map(|f| &f.name) != Some(&i.name) {
                say!(
                    env,
                    "boot interface {} (MAC {}, PCI {}:{}:{})",
                    i.name,
                    Mac(plan.mac),
                    plan.pci.bus,
                    plan.pci.device,
                    plan.pci.function
                );
                found = Some(i.clone());
                if !i.up {
                    env.bring_up(&i.name).map_err(|error| BootError::Net {
                        what: format!("{}: bringing the interface up", i.name),
                        error,
                    })?;
                    // Look again: the link state follows IFF_UP.
                    clock.sleep(POLL);
                    continue;
                }
            }
            if i.link_up {
                return Ok(i.name.clone());
            }
        } else if found.is_none() && !tried_native {
            // No existing interface is the boot interface: the module's own driver may open
            // the HCA (only if no other driver owns it: coexistence with mlx4ib/ipoib).
            tried_native = true;
            native = native_hca(env, plan, t, end);
            if native.is_some() {
                // The link is up by construction (the port is ACTIVE), but the bring-up may
                // have taken the whole wait: the kernel gets a moment to say so.
                end = end.max(clock.now() + NATIVE_LINK_GRACE);
                continue;
            }
        }
        if !announced {
            match &found {
                None => say!(
                    env,
                    "waiting up to {} s for the interface with MAC {}",
                    secs(t.wait_interface),
                    Mac(plan.mac)
                ),
                Some(i) => say!(
                    env,
                    "{}: waiting up to {} s for link",
                    i.name,
                    secs(t.wait_interface)
                ),
            }
            announced = true;
        }
        if clock.now() >= end {
            return Err(match found {
                None => BootError::NoInterface {
                    mac: plan.mac,
                    waited: t.wait_interface,
                },
                Some(i) => BootError::NoLink {
                    ifname: i.name,
                    waited: t.wait_interface,
                },
            });
        }
        clock.sleep(POLL);
    }
}

/// How long the wait for the boot interface goes on after the module attached its own, at
/// least (its link is up from the start; the kernel's link state follows within moments).
const NATIVE_LINK_GRACE: Duration = Duration::from_secs(5);

/// How long the report of a freshly opened HCA waits for its ports to settle (the subnet
/// manager's sweep makes a cabled port ACTIVE).
const PORT_SETTLE: Duration = Duration::from_secs(10);

/// Opens the iBFT NIC's HCA with the module's own driver, says what it reported and hands it
/// to [`attach_native_link`]: the name of the interface attached over it, if any. Failures are
/// said on the console; the wait for an existing interface goes on either way.
#[inline(never)]
fn native_hca<E: BootEnv>(
    env: &mut E,
    plan: &BootPlan,
    t: &BootTunables,
    end: iscsi_initiator::time::Instant,
) -> Option<String> {
    let mut verbs = match env.open_native_hca(plan.pci) {
        Ok(v) => v,
        Err(NativeError::Unavailable) => return None,
        Err(e) => {
            say!(env, "{e}");
            return None;
        }
    };
    report_hca(
        env,
        plan.pci,
        verbs.as_mut(),
        t.wait_interface.min(PORT_SETTLE),
    );
    attach_native_link(env, verbs, plan, t, end)
}

/// Says what the opened HCA reported: its firmware, its ports (opened, so that their links
/// train and the subnet manager can configure them) and their states once they settled (every
/// port ACTIVE or DOWN with at least one ACTIVE, or `settle` passed), and their GUIDs.
#[inline(never)]
fn report_hca<E: BootEnv>(
    env: &mut E,
    pci: PciAddress,
    verbs: &mut dyn hca::Verbs,
    settle: Duration,
) {
    use hca::verbs::PortNum;
    use hca::wire::smp::PortState;
    let ports = verbs.num_ports();
    match verbs.firmware_version() {
        Some((a, b, c)) => say!(
            env,
            "{}: HCA up: firmware {a}.{b}.{c}, {ports} port(s)",
            PciSel(pci)
        ),
        None => say!(env, "{}: HCA up: {ports} port(s)", PciSel(pci)),
    }
    for p in 1..=ports {
        if let Err(e) = verbs.open_port(PortNum(p)) {
            say!(env, "{}: port {p}: cannot open: {e}", PciSel(pci));
        }
    }
    let start = verbs.now();
    let settled = |a: &[Option<hca::verbs::PortAttr>]| {
        let states: Vec<PortState> = a.iter().flatten().map(|a| a.state).collect();
        states.contains(&PortState::ACTIVE)
            && states
                .iter()
                .all(|s| *s == PortState::ACTIVE || *s == PortState::DOWN)
    };
    let attrs = loop {
        let attrs: Vec<Option<hca::verbs::PortAttr>> = (1..=ports)
            .map(|p| verbs.query_port(PortNum(p)).ok())
            .collect();
        // An unload ends the wait too (the module waits for this thread).
        if settled(&attrs) || verbs.now().saturating_since(start) >= settle || env.stop_requested()
        {
            break attrs;
        }
        verbs.delay(Duration::from_millis(100));
    };
    for (i, a) in attrs.iter().enumerate() {
        let p = i + 1;
        match a {
            Some(a) => say!(
                env,
                "{}: port {p}: {}, LID {:#x}, port GUID {:016x}",
                PciSel(pci),
                a.state,
                a.lid.0,
                u64::from_be_bytes(a.port_guid.0)
            ),
            None => say!(env, "{}: port {p}: cannot query", PciSel(pci)),
        }
    }
}

/// How long the link's bring-up waits for each port at most (iPXE's 15 s), and at least (a
/// port the report saw ACTIVE needs no more).
const PORT_WAIT: Duration = Duration::from_secs(15);
const MIN_PORT_WAIT: Duration = Duration::from_secs(1);

/// Brings the module's own IPoIB link up on the opened HCA — the port the iBFT NIC names first
/// (the Mellanox BoIB order), the partition of `net.isboot.pkey` — and attaches the kernel's
/// interface over it: its name, or `None` when either failed (said on the console; the link
/// closed the HCA, or the platform shut the link down: nothing is left half-initialised).
#[inline(never)]
fn attach_native_link<E: BootEnv>(
    env: &mut E,
    mut verbs: Box<dyn hca::Verbs>,
    plan: &BootPlan,
    t: &BootTunables,
    end: iscsi_initiator::time::Instant,
) -> Option<String> {
    use crate::native::{self, NativeConfig, NativeLink};
    let guids = native::port_guids(verbs.as_mut());
    let preferred = match native::preferred_port(&plan.nic, plan.pci, &guids) {
        Ok(p) => {
            say!(
                env,
                "{}: the iBFT NIC (MAC {}) is port {p}; trying it first",
                PciSel(plan.pci),
                Mac(plan.mac)
            );
            Some(p)
        }
        Err(e) => {
            say!(
                env,
                "{}: the iBFT NIC (MAC {}) is no port of this HCA: {e}; trying the ports in \
                 order",
                PciSel(plan.pci),
                Mac(plan.mac)
            );
            None
        }
    };
    // Each port waits at most what is left of net.isboot.wait_interface (and 15 s).
    let left = end.saturating_since(env.clock().now());
    let cfg = NativeConfig {
        pkey: t.pkey,
        preferred_port: preferred,
        port_wait: left.min(PORT_WAIT).max(MIN_PORT_WAIT),
        ..NativeConfig::default()
    };
    let link = NativeLink::up(verbs, cfg, env.native_console()).ok()?;
    match env.attach_native_ifnet(link) {
        Ok(name) => Some(name),
        Err(e) => {
            say!(env, "native IPoIB interface: cannot attach it: {e}");
            None
        }
    }
}

fn configure<E: BootEnv>(env: &mut E, plan: &BootPlan, ifname: &str) -> Result<(), BootError> {
    let have = env
        .interfaces()
        .into_iter()
        .find(|i| i.name == ifname)
        .map(|i| i.ipv4)
        .unwrap_or_default();
    if have.iter().any(|(a, _)| *a == plan.address) {
        say!(
            env,
            "{ifname} already has {}; leaving its addresses alone",
            plan.address
        );
    } else {
        env.add_address(ifname, plan.address, plan.prefix)
            .map_err(|error| BootError::Net {
                what: format!("{ifname}: adding {}/{}", plan.address, plan.prefix),
                error,
            })?;
        say!(
            env,
            "{ifname}: added {}/{} from the iBFT",
            plan.address,
            plan.prefix
        );
    }
    if plan.on_link(plan.target_addr) {
        say!(env, "target {} is on-link on {ifname}", plan.target_addr);
    } else if let Some(r) = env.route(plan.target_addr) {
        match r.gateway {
            Some(gw) => say!(
                env,
                "target {} is reachable through an existing route via {gw} on {}",
                plan.target_addr,
                r.ifname
            ),
            None => say!(
                env,
                "target {} is reachable through an existing route on {}",
                plan.target_addr,
                r.ifname
            ),
        }
    } else {
        let gw = plan.gateway.ok_or(BootError::NoRoute(plan.target_addr))?;
        env.add_route(plan.target_addr, 32, gw, ifname)
            .map_err(|error| BootError::Net {
                what: format!("adding a host route to {} via {gw}", plan.target_addr),
                error,
            })?;
        say!(
            env,
            "added a host route to the target {} via {gw}",
            plan.target_addr
        );
    }
    if let Some(gw) = plan.gateway {
        if !env.has_default_route() {
            env.add_route(Ipv4Addr::UNSPECIFIED, 0, gw, ifname)
                .map_err(|error| BootError::Net {
                    what: format!("adding a default route via {gw}"),
                    error,
                })?;
            say!(env, "added a default route via {gw} (there was none)");
        }
    }
    Ok(())
}

/// The session's driver over the environment's transport and clock, on the heap.
type BoxedClient<E> = Box<Client<<E as BootEnv>::Transport, <E as BootEnv>::Clock>>;

/// The client is boxed (a session is some 2 KiB): the boot thread's frames stay small
/// (`kmod/scripts/check_kld.py` allows 4 KiB a frame on a kernel stack).
#[inline(never)]
fn login<E: BootEnv>(
    env: &mut E,
    plan: &BootPlan,
    ifname: &str,
    t: &BootTunables,
) -> Result<BoxedClient<E>, BootError> {
    let mut seed = [0u8; 32];
    env.entropy(&mut seed);
    let login = LoginConfig {
        initiator_name: plan.initiator.clone(),
        initiator_alias: None,
        target_name: Some(plan.target_name.clone()),
        session_type: SessionType::Normal,
        // The same on every boot of this host (its NIC and name): a new login reinstates a
        // session the target still holds from before a crash (RFC 7143 §6.3.5).
        isid: Isid::derive(&plan.mac, &plan.initiator, 0),
        chap: plan.chap.clone(),
        operational: OperationalConfig::default(),
        entropy_seed: seed,
    };
    let portal = Portal {
        host: format!("{}", plan.target_addr),
        port: plan.target_port,
    };
    let mut cfg = SessionConfig::new(login, portal);
    cfg.recovery_timeout = if t.recovery.is_zero() {
        // For ever, in practice: 136 years.
        Duration::from_secs(u64::from(u32::MAX))
    } else {
        t.recovery
    };
    // The first login is retried (a target still coming up refuses or resets connections)
    // until wait_login runs out.
    cfg.initial_login_attempts = u32::MAX;
    let clock = env.clock();
    let transport = env.transport();
    let session = Session::new(cfg, clock.now());
    let mut client = Box::new(Client::new(session, transport, clock));
    say!(
        env,
        "logging in to {} at {}:{} on {ifname} as {} ({})",
        plan.target_name,
        plan.target_addr,
        plan.target_port,
        plan.initiator,
        plan.auth()
    );
    let portal = format!("{}:{}", plan.target_addr, plan.target_port);
    let start = client.clock().now();
    match client.login(t.wait_login) {
        Ok(()) => {
            let waited = client.clock().now().saturating_since(start);
            say!(
                env,
                "logged in to {} ({}; {} ms)",
                plan.target_name,
                plan.auth(),
                waited.total_millis()
            );
            Ok(client)
        }
        Err(e) => {
            let why = match client.session().failure().or(client.session().last_error()) {
                Some(se) => format!("{se}"),
                None => format!(
                    "no answer within {} s (net.isboot.wait_login): {e:?}",
                    secs(t.wait_login)
                ),
            };
            Err(BootError::Login { portal, why })
        }
    }
}

/// One turn of the serving loop: new CCBs to the session, one bounded receive, completions
/// back to CAM, the queue frozen or released as the session loses or regains the target.
fn serve_once<E: BootEnv>(
    env: &mut E,
    client: &mut Client<E::Transport, E::Clock>,
    sim: &mut Sim,
    state: &mut BootState,
    logins: &mut u32,
    tick: Duration,
) {
    while let Some(req) = env.cam_next(&mut sim.pool) {
        let (token, outcome) = match req {
            CamRequest::Io(io) => (io.token, sim.scsi_io(client.session_mut(), io)),
            CamRequest::Abort { token, victim } => {
                (token, sim.abort(client.session_mut(), token, victim))
            }
            CamRequest::ResetDev { token } => (token, sim.reset_dev(client.session_mut(), token)),
        };
        match outcome {
            Outcome::Io(done) => {
                env.cam_done_io(&done);
                sim.pool.put(done.data);
            }
            Outcome::Done(status) => env.cam_done(token, status),
            Outcome::Queued => {}
        }
    }
    client.step(tick);
    while let Some(c) = client.next_completion() {
        match sim.complete(c) {
            Some(Ok(done)) => {
                env.cam_done_io(&done);
                sim.pool.put(done.data);
            }
            Some(Err((token, status))) => env.cam_done(token, status),
            None => {}
        }
    }
    if let Some(ev) = sim.queue_event(client.session()) {
        match ev {
            QueueEvent::Freeze => {
                let why = client
                    .session()
                    .last_error()
                    .map(|e| format!("{e}"))
                    .unwrap_or_else(|| String::from("connection lost"));
                say!(
                    env,
                    "{why}; holding {} commands and reconnecting",
                    sim.in_flight()
                );
                state.session_state = String::from("reconnecting");
                state.last_error = why;
            }
            QueueEvent::Release => {
                state.session_state = String::from("logged in");
            }
        }
        env.cam_queue(ev);
        env.publish_state(state);
    }
    let now_logins = client.session().logins();
    if now_logins > *logins {
        *logins = now_logins;
        state.reconnects += 1;
        say!(
            env,
            "reconnected to the target (reconnect {}); {} commands re-issued",
            state.reconnects,
            sim.in_flight()
        );
        env.publish_state(state);
    }
    if let Some(e) = client.session().failure() {
        if state.session_state != "failed" {
            say!(
                env,
                "the session failed for good: {e}; the disk's commands now fail"
            );
            state.session_state = String::from("failed");
            state.last_error = format!("{e}");
            env.publish_state(state);
        }
    }
}
