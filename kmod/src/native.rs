//! The module's own IPoIB link: an [`IbLink`] over the HCA the boot ROM used, driven through
//! the `hca` verbs by `ipoib`'s interface in [`ArpMode::Host`] (the kernel runs ARP over the
//! ifnet; the link passes ARP frames through both ways and answers nothing itself).
//!
//! Bring-up follows the boot ROM's rules (the Mellanox BoIB manual's port order, iPXE's
//! `ipoib_open`): every port is opened so that its link trains, then the preferred port (the
//! one the iBFT's NIC names, [`preferred_port`]) is waited for, bounded, then the others; on
//! the first that becomes ACTIVE, with the partition's P_Key (full-member bit forced, RFC 4391
//! §4) in its table, the partition's IPv4 broadcast group is joined. One console line per
//! step; on failure nothing is left half-initialised: the device is dropped (closed) and the
//! error names each port and why.
//!
//! At run time [`NativeLink::poll`] watches the port: when it goes down and another port of the
//! same subnet (same GID prefix) is ACTIVE, the interface moves there — same P_Key, the group
//! re-joined, the IPv4 address kept and announced by gratuitous ARP (RFC 5227 §2.3's two
//! announcements, with 20-byte addresses per RFC 4391 §7) so that peers' neighbour caches
//! follow — and [`LinkEvent::Moved`] is reported. With no ACTIVE port it reports
//! [`LinkEvent::Down`] and checks the ports again every [`NativeConfig::check_interval`];
//! `Up` (the same port back) or `Moved` follow. A LID change (SM restart or re-sweep) flushes
//! the paths, which are re-resolved, and is reported as [`LinkEvent::LidChanged`]. An SM
//! restart loses the SM's multicast groups: its first sweep sets PortInfo:ClientReregister
//! (IBA 14.4.11), the driver reports `Event::ClientReregister` and the interface re-joins the
//! broadcast group (`ipoib::iface`; one the SA does not answer is tried again 1 s later, then
//! at doubling intervals up to 16 s, until it succeeds); the link says so in one line (no
//! [`LinkEvent`]: the kernel's side has nothing to change).
//!
//! Portable (`no_std` + `alloc`), never panics; time is the caller's. Waits are bounded: the
//! bring-up's per-port wait and SA retries, and during `poll` only a re-join (after a move or
//! an SM restart, and each retry of one: [`NativeConfig::failover_join`], by default at most
//! 3 tries, 1.75 s in all).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;

use clock::{Duration, Instant};
use hca::verbs::{PortNum, RetryPolicy};
use hca::wire::mad::AttrId;
use hca::wire::smp::{self, PortInfo, PortState};
use hca::Verbs;
use ibft::identity::{match_nic, IbPort, MatchError, PortGuid};
use ibft::{Nic, PciAddress};
use ipoib::iface::{self, ArpMode, Interface};
use ipoib::wire::ipoib::{EtherType, HwAddr, MULTICAST_QPN, PKEY_FULL_MEMBER};

use crate::iblink::{IbHwAddr, IbLink, LinkEvent, TxError, IB_ADDR_LEN, IB_HDR_LEN};

/// The link's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeConfig {
    /// The partition (`net.isboot.pkey`); the full-member bit is set whatever is given.
    pub pkey: u16,
    /// The port tried first (the iBFT NIC's, from [`preferred_port`]); `None` or a port the
    /// device does not have: port 1 first.
    pub preferred_port: Option<u8>,
    /// How long each port is waited for at bring-up.
    pub port_wait: Duration,
    /// The broadcast group join at bring-up.
    pub join: RetryPolicy,
    /// The broadcast group join after a move (it runs inside `poll`: keep it short).
    pub failover_join: RetryPolicy,
    /// While no port is ACTIVE, how often the ports are read again.
    pub check_interval: Duration,
    /// The interface's other settings (caches, queues, slots); its port, P_Key and ARP mode
    /// are the link's.
    pub ipoib: iface::Config,
}

impl Default for NativeConfig {
    /// The default partition, 15 s per port (iPXE's wait), the SA's default retries at
    /// bring-up, 0.25 s doubling over 3 tries after a move, ports re-read every 0.5 s while
    /// down (iPXE's `HERMON_LINK_POLL_INTERVAL`).
    fn default() -> Self {
        Self {
            pkey: ipoib::wire::ipoib::DEFAULT_PKEY,
            preferred_port: None,
            port_wait: Duration::from_secs(15),
            join: RetryPolicy::default(),
            failover_join: RetryPolicy {
                first_timeout: Duration::from_millis(250),
                max_timeout: Duration::from_secs(1),
                attempts: 3,
            },
            check_interval: Duration::from_millis(500),
            ipoib: iface::Config::default(),
        }
    }
}

/// Why one port was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortFailure {
    /// The port.
    pub port: u8,
    /// Why.
    pub error: iface::Error,
}

impl fmt::Display for PortFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error {
            // "P_Key 0x8001 is not in the port's P_Key table (...)".
            iface::Error::PkeyNotInPortTable { .. } => {
                write!(f, "port {}: {}", self.port, self.error)
            }
            // hca's port errors name the port themselves.
            iface::Error::Hca(hca::Error::PortNotActive { .. }) => write!(f, "{}", self.error),
            e => write!(f, "port {}: {e}", self.port),
        }
    }
}

/// Why the link did not come up. The device was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeError {
    /// The device reports no ports.
    NoPorts,
    /// Every port failed: each, and why, in the order tried.
    Ports(Vec<PortFailure>),
}

impl NativeError {
    /// Why `port` failed, if it was tried.
    pub fn port(&self, port: u8) -> Option<iface::Error> {
        match self {
            NativeError::NoPorts => None,
            NativeError::Ports(v) => v.iter().find(|p| p.port == port).map(|p| p.error),
        }
    }
}

impl fmt::Display for NativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NativeError::NoPorts => f.write_str("the HCA reports no ports"),
            NativeError::Ports(v) => {
                for (i, p) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

/// The port the iBFT's NIC describes, among the device's `(port, port GUID)` pairs at `pci`:
/// the NIC's MAC matched against the addresses boot ROMs derive from each port GUID
/// ([`ibft::identity`]), with its PCI address.
pub fn preferred_port(
    nic: &Nic,
    pci: PciAddress,
    ports: &[(u8, [u8; 8])],
) -> Result<u8, MatchError> {
    let list: Vec<IbPort> = ports
        .iter()
        .map(|&(port, guid)| IbPort {
            pci,
            port,
            guid: PortGuid(guid),
            firmware_mac: None,
        })
        .collect();
    let m = match_nic(nic, &list)?;
    list.get(m.index).map(|p| p.port).ok_or(MatchError::NoPort)
}

/// The device's `(port, port GUID)` pairs, for [`preferred_port`] (PortInfo and GUIDInfo read
/// through the device's own agent; a port that cannot be read is left out).
pub fn port_guids(dev: &mut dyn Verbs) -> Vec<(u8, [u8; 8])> {
    (1..=dev.num_ports())
        .filter_map(|p| dev.query_port(PortNum(p)).ok().map(|a| (p, a.port_guid.0)))
        .collect()
}

/// Where console lines go (the kernel's `printf`, a test's buffer): one line per call, without
/// its newline.
pub type Say = Box<dyn FnMut(&str)>;

/// Counters of the link (the interface's own are in [`NativeLink::ipoib_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NativeStats {
    /// Frames handed to the interface.
    pub tx_frames: u64,
    /// Frames refused as malformed ([`TxError::BadFrame`]).
    pub tx_bad_frames: u64,
    /// Frames refused because the link was down.
    pub tx_link_down: u64,
    /// Frames handed up.
    pub rx_frames: u64,
    /// Moves to another port.
    pub moves: u64,
    /// Times the ports were read while down.
    pub port_checks: u64,
    /// Device errors seen while polling.
    pub poll_errors: u64,
}

/// RFC 5227 §1.1 ANNOUNCE_NUM and ANNOUNCE_INTERVAL: a move is announced twice, 2 s apart.
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(2);

/// The module's IPoIB link on one HCA.
pub struct NativeLink {
    dev: Option<Box<dyn Verbs>>,
    iface: Option<Interface>,
    cfg: NativeConfig,
    say: Say,
    port: u8,
    pkey: u16,
    hwaddr: IbHwAddr,
    mtu: u32,
    baud: u64,
    lid: u16,
    gid_prefix: [u8; 8],
    up: bool,
    ip: Option<(Ipv4Addr, u8)>,
    next_check: Instant,
    reannounce_at: Option<Instant>,
    stats: NativeStats,
    frame: Vec<u8>,
    /// The interface's re-join counts (done, failed) last reported.
    rejoins: (u64, u64),
}

impl fmt::Debug for NativeLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeLink")
            .field("port", &self.port)
            .field("up", &self.up)
            .field("lid", &self.lid)
            .field("mtu", &self.mtu)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Data rate from PortInfo's LinkWidthActive and LinkSpeedActive (IBA §14.2.5.6): lanes times
/// 2.5, 5 or 10 Gbaud with 8b/10b coding (2, 4, 8 Gb/s of data a lane). 0 when unknown (the
/// kernel then assumes 10 Gb/s).
fn data_rate(pi: &PortInfo) -> u64 {
    let lanes: u64 = match pi.link_width_active {
        1 => 1,
        2 => 4,
        4 => 8,
        8 => 12,
        16 => 2,
        _ => 0,
    };
    let lane_bps: u64 = match pi.link_speed_active_enabled >> 4 {
        1 => 2_000_000_000,
        2 => 4_000_000_000,
        4 => 8_000_000_000,
        _ => 0,
    };
    lanes.saturating_mul(lane_bps)
}

fn read_rate(dev: &mut dyn Verbs, port: PortNum) -> u64 {
    let tid = dev.next_tid();
    let req = smp::smp_get(AttrId::PORT_INFO, u32::from(port.0), tid);
    match dev.local_mad(port, &req) {
        Ok(resp) if resp.status().is_ok() => smp::smp_attr::<PortInfo>(&resp)
            .map(|pi| data_rate(&pi))
            .unwrap_or(0),
        _ => 0,
    }
}

fn prefix_of(gid: &hca::wire::Gid) -> [u8; 8] {
    let mut p = [0u8; 8];
    p.copy_from_slice(&gid.0[..8]);
    p
}

impl NativeLink {
    /// Brings the link up on `dev` (opened by the caller): see the module docs. `say` gets one
    /// console line per step now and for every change later. On error the device is closed.
    // Not inlined: its frame (the interface's configuration and the link under construction)
    // stays its own rather than adding to the caller's on a 16 KiB kernel stack.
    #[inline(never)]
    pub fn up(
        mut dev: Box<dyn Verbs>,
        cfg: NativeConfig,
        mut say: Say,
    ) -> Result<NativeLink, NativeError> {
        let n = dev.num_ports();
        if n == 0 {
            say("isboot: IPoIB: the HCA reports no ports");
            return Err(NativeError::NoPorts);
        }
        let pkey = cfg.pkey | PKEY_FULL_MEMBER;
        let mut order: Vec<u8> = Vec::new();
        match cfg.preferred_port {
            Some(p) if (1..=n).contains(&p) => order.push(p),
            Some(p) => say(&format!(
                "isboot: IPoIB: the boot port {p} is not a port of this HCA (it has {n}); \
                 trying port 1 first"
            )),
            None => {}
        }
        let first = order.first().copied();
        order.extend((1..=n).filter(|&p| Some(p) != first));
        // Every port trains its link meanwhile: the standby port is ready for a move.
        for p in 1..=n {
            if let Err(e) = dev.open_port(PortNum(p)) {
                say(&format!("isboot: IPoIB: port {p}: cannot open: {e}"));
            }
        }
        let mut failures = Vec::new();
        for &p in &order {
            say(&format!(
                "isboot: IPoIB: port {p}: waiting up to {} s for ACTIVE, P_Key {pkey:#06x}",
                cfg.port_wait.as_secs()
            ));
            let icfg = iface::Config {
                port: PortNum(p),
                pkey,
                port_timeout: cfg.port_wait,
                join_policy: cfg.join,
                arp: ArpMode::Host,
                ..cfg.ipoib
            };
            match Interface::up(dev.as_mut(), icfg) {
                Ok(mut iface) => {
                    // From now on joins and leaves run inside `poll` and `shutdown`.
                    iface.set_join_policy(cfg.failover_join);
                    let now = dev.now();
                    let mut link = NativeLink {
                        baud: read_rate(dev.as_mut(), PortNum(p)),
                        dev: Some(dev),
                        cfg,
                        say,
                        port: p,
                        pkey,
                        hwaddr: [0; IB_ADDR_LEN],
                        mtu: 0,
                        lid: 0,
                        gid_prefix: [0; 8],
                        up: true,
                        ip: None,
                        next_check: now,
                        reannounce_at: None,
                        rejoins: (0, 0),
                        stats: NativeStats::default(),
                        frame: Vec::new(),
                        iface: None,
                    };
                    link.adopt(iface);
                    let line = link.up_line("up");
                    (link.say)(&line);
                    return Ok(link);
                }
                Err(error) => {
                    let f = PortFailure { port: p, error };
                    say(&format!("isboot: IPoIB: {f}: port skipped"));
                    failures.push(f);
                }
            }
        }
        // Dropping the device closes it (the driver resets it and frees its memory).
        drop(dev);
        let e = NativeError::Ports(failures);
        say(&format!("isboot: IPoIB: no port came up: {e}"));
        Err(e)
    }

    fn adopt(&mut self, iface: Interface) {
        let attr = *iface.port_attr();
        self.port = attr.port.0;
        self.hwaddr = iface.hw_addr().to_bytes();
        self.mtu = u32::try_from(iface.mtu()).unwrap_or(0);
        self.lid = attr.lid.0;
        self.gid_prefix = prefix_of(&attr.gid);
        self.iface = Some(iface);
    }

    fn up_line(&self, what: &str) -> String {
        let (ib_mtu, qkey) = self
            .iface
            .as_ref()
            .map_or((0, 0), |i| (i.ib_mtu(), i.qkey()));
        let hw = HwAddr::from_bytes(&self.hwaddr);
        format!(
            "isboot: IPoIB: port {} {what}: LID {:#x}, P_Key {:#06x}, Q_Key {qkey:#x}, IB MTU \
             {ib_mtu}, IP MTU {}, GID {}, QPN {:#08x}",
            self.port, self.lid, self.pkey, self.mtu, hw.gid, hw.qpn
        )
    }

    fn say(&mut self, line: &str) {
        (self.say)(line);
    }

    /// The link's counters.
    pub fn stats(&self) -> NativeStats {
        self.stats
    }

    /// The interface's counters, if it is up.
    pub fn ipoib_stats(&self) -> Option<iface::Stats> {
        self.iface.as_ref().map(Interface::stats)
    }

    /// The current port's LID.
    pub fn lid(&self) -> u16 {
        self.lid
    }

    /// The partition's P_Key (full-member bit set).
    pub fn pkey(&self) -> u16 {
        self.pkey
    }

    /// Whether the link is up (an ACTIVE port carries the interface).
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Whether [`IbLink::shutdown`] ran (the device is closed).
    pub fn is_shut_down(&self) -> bool {
        self.dev.is_none()
    }

    /// Reads the other ports; when one is ACTIVE in the same subnet, moves the interface
    /// there. True when it moved.
    fn try_move(&mut self, now: Instant, why: &str, event: &mut dyn FnMut(LinkEvent)) -> bool {
        let Some(dev) = self.dev.as_mut() else {
            return false;
        };
        self.stats.port_checks += 1;
        let from = self.port;
        let n = dev.num_ports();
        for p in (1..=n).filter(|&p| p != from) {
            let attr = match dev.query_port(PortNum(p)) {
                Ok(a) => a,
                Err(_) => continue,
            };
            if attr.state != PortState::ACTIVE {
                continue;
            }
            if prefix_of(&attr.gid) != self.gid_prefix {
                let line = format!(
                    "isboot: IPoIB: port {p} is ACTIVE but on another subnet (GID prefix \
                     differs): not moving there"
                );
                (self.say)(&line);
                continue;
            }
            let icfg = iface::Config {
                port: PortNum(p),
                pkey: self.pkey,
                port_timeout: Duration::ZERO,
                join_policy: self.cfg.failover_join,
                arp: ArpMode::Host,
                ..self.cfg.ipoib
            };
            let mut new = match Interface::up(dev.as_mut(), icfg) {
                Ok(i) => i,
                Err(e) => {
                    let line = format!("isboot: IPoIB: port {p}: cannot move there: {e}");
                    (self.say)(&line);
                    continue;
                }
            };
            if let Some(old) = self.iface.take() {
                // The dead port's group membership went with its link.
                let _ = old.release(dev.as_mut());
            }
            new.set_ipv4(dev.as_mut(), now, self.ip, None);
            new.announce(dev.as_mut(), now);
            self.baud = read_rate(dev.as_mut(), PortNum(p));
            self.adopt(new);
            // A new interface counts its re-joins from zero.
            self.rejoins = (0, 0);
            self.reannounce_at = self.ip.map(|_| now + ANNOUNCE_INTERVAL);
            self.up = true;
            self.stats.moves += 1;
            let line = self.up_line(&format!("now carries the interface (port {from} {why})"));
            self.say(&line);
            event(LinkEvent::Moved {
                from,
                to: p,
                hwaddr: self.hwaddr,
            });
            return true;
        }
        false
    }

    fn hand_up(&mut self, rx: &mut dyn FnMut(&[u8])) {
        let Some(iface) = self.iface.as_mut() else {
            return;
        };
        while let Some(f) = iface.recv_frame() {
            self.frame.clear();
            self.frame.extend_from_slice(&f.dst.to_bytes());
            self.frame.extend_from_slice(&f.ether_type.0.to_be_bytes());
            self.frame.extend_from_slice(&[0, 0]);
            self.frame.extend_from_slice(&f.payload);
            self.stats.rx_frames += 1;
            rx(&self.frame);
        }
    }
}

impl IbLink for NativeLink {
    fn hwaddr(&self) -> IbHwAddr {
        self.hwaddr
    }

    fn broadcast(&self) -> IbHwAddr {
        HwAddr::broadcast(self.pkey).to_bytes()
    }

    fn ip_mtu(&self) -> u32 {
        self.mtu
    }

    fn baudrate(&self) -> u64 {
        self.baud
    }

    fn port(&self) -> u8 {
        self.port
    }

    fn transmit(&mut self, frame: &[u8], now: Instant) -> Result<(), TxError> {
        let bad = |s: &mut NativeStats| {
            s.tx_bad_frames += 1;
            Err(TxError::BadFrame)
        };
        let Some((hdr, payload)) = frame.split_first_chunk::<IB_HDR_LEN>() else {
            return bad(&mut self.stats);
        };
        // `struct infiniband_header`: the address, the EtherType, two reserved bytes.
        let [a @ .., t0, t1, _, _] = *hdr;
        let ty = EtherType(u16::from_be_bytes([t0, t1]));
        let dst = HwAddr::from_bytes(&a);
        let ok_payload = match ty {
            EtherType::IPV4 => payload.len() >= 20 && payload.first().is_some_and(|b| b >> 4 == 4),
            EtherType::ARP => payload.len() >= ipoib::wire::arp::PACKET_LEN,
            _ => false,
        };
        let multicast = dst.gid.0[0] == 0xff;
        // A unicast QPN with a group's GID, a multicast QPN with a port's GID, or one of the
        // special QPs (0, 1) is no IPoIB destination.
        let ok_dst = (dst.qpn == MULTICAST_QPN) == multicast && dst.qpn > 1;
        if !ok_payload || !ok_dst || payload.len() > self.mtu as usize {
            return bad(&mut self.stats);
        }
        let (Some(dev), Some(iface)) = (self.dev.as_mut(), self.iface.as_mut()) else {
            self.stats.tx_link_down += 1;
            return Err(TxError::LinkDown);
        };
        if !self.up || !iface.link_up() {
            self.stats.tx_link_down += 1;
            return Err(TxError::LinkDown);
        }
        // IPv4 multicast (FreeBSD maps a group to its own MGID, `infiniband_resolvemulti`)
        // goes to the broadcast group, the one group this interface joins: members filter it.
        let dst = if multicast {
            HwAddr::broadcast(self.pkey)
        } else {
            dst
        };
        match iface.send_frame(dev.as_mut(), now, &dst, ty, payload) {
            Ok(()) => {
                self.stats.tx_frames += 1;
                Ok(())
            }
            Err(iface::Error::TooLong { .. }) => bad(&mut self.stats),
            Err(_) => Err(TxError::Device),
        }
    }

    fn poll(&mut self, now: Instant, rx: &mut dyn FnMut(&[u8]), event: &mut dyn FnMut(LinkEvent)) {
        let (Some(dev), Some(iface)) = (self.dev.as_mut(), self.iface.as_mut()) else {
            return;
        };
        if iface.poll(dev.as_mut(), now).is_err() {
            self.stats.poll_errors += 1;
        }
        let link_up = iface.link_up();
        let lid = iface.port_attr().lid.0;
        let st = iface.stats();
        if (st.rejoins, st.rejoin_failures) != self.rejoins {
            let line = if st.rejoin_failures != self.rejoins.1 {
                format!(
                    "isboot: IPoIB: port {}: the subnet manager asked its clients to re-register \
                     (SM restart) but the broadcast group could not be re-joined (no answer from \
                     the SA); trying again in {} s, then at most every {} s",
                    self.port,
                    ipoib::iface::REJOIN_RETRY.as_secs(),
                    ipoib::iface::REJOIN_RETRY_MAX.as_secs()
                )
            } else {
                format!(
                    "isboot: IPoIB: port {}: the subnet manager asked its clients to re-register \
                     (SM restart): re-joined the broadcast group (MLID {:#x})",
                    self.port,
                    iface.mlid().0
                )
            };
            self.rejoins = (st.rejoins, st.rejoin_failures);
            (self.say)(&line);
        }
        if link_up && self.reannounce_at.is_some_and(|t| t <= now) {
            iface.announce(dev.as_mut(), now);
            self.reannounce_at = None;
        }
        self.hand_up(rx);
        if link_up {
            if !self.up {
                self.up = true;
                self.lid = lid;
                let line = self.up_line("is back");
                self.say(&line);
                event(LinkEvent::Up);
            } else if lid != self.lid {
                let line = format!(
                    "isboot: IPoIB: port {}: LID {:#x} -> {lid:#x} (subnet manager): paths \
                     re-resolved",
                    self.port, self.lid
                );
                self.lid = lid;
                self.say(&line);
                event(LinkEvent::LidChanged { lid });
            }
            return;
        }
        if self.up {
            // Just went down: move at once if another port can carry the interface.
            self.up = false;
            self.reannounce_at = None;
            if self.try_move(now, "went down", event) {
                return;
            }
            let line = format!(
                "isboot: IPoIB: port {} went down and no other port is ACTIVE: link down, \
                 checking every {} ms",
                self.port,
                self.cfg.check_interval.as_millis()
            );
            self.say(&line);
            self.next_check = now + self.cfg.check_interval;
            event(LinkEvent::Down);
        } else if now >= self.next_check {
            self.next_check = now + self.cfg.check_interval;
            self.try_move(now, "is down", event);
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        let iface = self.iface.as_ref()?;
        let mut t = clock::earliest(iface.poll_at(), self.reannounce_at);
        if !self.up {
            t = clock::earliest(t, Some(self.next_check));
        }
        t
    }

    fn set_ipv4(&mut self, addr: Ipv4Addr, prefix: u8) {
        self.ip = Some((addr, prefix.min(32)));
        if let (Some(dev), Some(iface)) = (self.dev.as_mut(), self.iface.as_mut()) {
            let now = dev.now();
            // ArpMode::Host: recorded for the announcements after a move; nothing is sent
            // (the kernel announces a new address itself).
            iface.set_ipv4(dev.as_mut(), now, self.ip, None);
        }
    }

    fn shutdown(&mut self) {
        let Some(mut dev) = self.dev.take() else {
            return;
        };
        if let Some(iface) = self.iface.take() {
            let r = if self.up {
                iface.down(dev.as_mut())
            } else {
                iface.release(dev.as_mut())
            };
            let line = match r {
                Ok(()) => format!(
                    "isboot: IPoIB: port {}: left the broadcast group, device closed",
                    self.port
                ),
                Err(e) => format!(
                    "isboot: IPoIB: port {}: leaving the broadcast group: {e}; device closed",
                    self.port
                ),
            };
            (self.say)(&line);
        }
        self.up = false;
        drop(dev);
    }
}

impl Drop for NativeLink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ibft::identity::{mac_for, MacRule};

    const G1: [u8; 8] = [0x00, 0x02, 0xc9, 0x03, 0x00, 0xab, 0x00, 0x11];
    const G2: [u8; 8] = [0x00, 0x02, 0xc9, 0x03, 0x00, 0xab, 0x00, 0x12];
    const PCI: PciAddress = PciAddress {
        bus: 3,
        device: 0,
        function: 0,
    };

    fn nic(mac: ibft::MacAddr) -> Nic {
        Nic {
            mac,
            pci: PCI,
            ..Nic::default()
        }
    }

    #[test]
    fn the_boot_port_is_the_one_whose_guid_gives_the_nic_mac() {
        let ports = [(1, G1), (2, G2)];
        for (rule, guid, port) in [
            (MacRule::GuidMask, G2, 2),
            (MacRule::GuidMask, G1, 1),
            (MacRule::MellanoxLegacy, G2, 2),
        ] {
            let mac = mac_for(rule, PortGuid(guid), None).unwrap();
            assert_eq!(preferred_port(&nic(mac), PCI, &ports), Ok(port), "{rule:?}");
        }
        // A MAC no rule gives, on a two-port HCA: both ports fit the PCI address.
        let other = ibft::MacAddr([0x02, 0, 0, 0, 0, 1]);
        assert_eq!(
            preferred_port(&nic(other), PCI, &ports),
            Err(MatchError::Ambiguous { candidates: 2 })
        );
        // One port at that address: the PCI address alone names it.
        assert_eq!(preferred_port(&nic(other), PCI, &[(2, G2)]), Ok(2));
    }

    #[test]
    fn data_rate_from_port_info() {
        let mut pi = PortInfo {
            link_width_active: 2,
            link_speed_active_enabled: 0x41,
            ..PortInfo::default()
        };
        assert_eq!(data_rate(&pi), 32_000_000_000);
        pi.link_speed_active_enabled = 0x11;
        assert_eq!(data_rate(&pi), 8_000_000_000);
        pi.link_width_active = 0x20;
        assert_eq!(data_rate(&pi), 0);
    }

    #[test]
    fn failures_name_the_port_and_the_reason() {
        let e = NativeError::Ports(alloc::vec![
            PortFailure {
                port: 1,
                error: iface::Error::Hca(hca::Error::PortNotActive {
                    port: PortNum(1),
                    state: PortState::DOWN,
                }),
            },
            PortFailure {
                port: 2,
                error: iface::Error::PkeyNotInPortTable { pkey: 0x8001 },
            },
        ]);
        let s = alloc::string::ToString::to_string(&e);
        assert!(s.starts_with("port 1 stays DOWN: no physical link"), "{s}");
        assert!(
            s.contains("; port 2: P_Key 0x8001 is not in the port's P_Key table"),
            "{s}"
        );
        assert_eq!(
            e.port(2),
            Some(iface::Error::PkeyNotInPortTable { pkey: 0x8001 })
        );
        assert_eq!(e.port(3), None);
    }
}
