//! An IPoIB interface (RFC 4391 datagram mode) over the HCA verbs.
//!
//! Bring-up ([`Interface::up`]): open the port and wait (bounded) for it to become ACTIVE; check
//! that the configured P_Key (full-member bit forced, RFC 4391 §4) is in the port's P_Key table;
//! join the partition's IPv4 broadcast group through the SA (IBA §15.2.5.17) and take its
//! Q_Key, MLID, SL and MTU — or, when [`Config::create_broadcast`] is set and the SA has no such
//! group, create it with the join (RFC 4391 §5 leaves the group's creation to the subnet's
//! administration or to the first member); create a UD QP with that Q_Key and attach it to the
//! group.
//!
//! Transmit: an IPv4 packet is routed to a next hop (on-link, or the gateway), the next hop is
//! resolved by ARP with 20-byte addresses (RFC 4391 §7) in a [`NeighCache`], the link
//! address's GID by a PathRecord query in a [`PathCache`]; packets waiting on either sit in a
//! bounded queue. The FreeBSD glue can instead hand over a frame with a 20-byte destination
//! ([`Interface::send_frame`]).
//!
//! Receive: the verbs API strips the 40-byte GRH a UD receive buffer starts with (multicast
//! datagrams always carry one) and reports it in `Completion::grh`, with `byte_len` counting the
//! payload only; so a received buffer starts at the IPoIB header. The GRH's source GID and the
//! source LID tell us where a peer is now: a cached path naming another LID is stale and is
//! re-resolved (the SM moved the peer).
//!
//! Everything after bring-up is driven by [`Interface::poll`], and time is the caller's: every
//! method that runs the ARP and path timers, or may start them by sending, takes `now` (the
//! ROM's timer, the kernel's uptime, the simulator's clock; one monotonic clock throughout).
//! Only [`Interface::up`] and [`Interface::down`] wait, bounded, on the device's clock.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use clock::Instant;

use hca::verbs::{
    self, AddressHandle, CompletionKind, CqId, Event, MadDest, PortAttr, PortNum, QpId,
    RetryPolicy, UdQpAttr,
};
use hca::wire::mad::{AttrId, MadMethod, MadStatus};
use hca::wire::sa::{self, PathRecord, PathRecordMask};
use hca::wire::{Lid, Qpn, GSI_QKEY};
use hca::Verbs;
use log::debug;

use crate::neigh::{NeighCache, NeighConfig, NeighDue, PathCache, PathConfig, PathDue, PathInfo};
use crate::wire::arp;
use crate::wire::ipoib::{
    broadcast_mgid, decapsulate, encapsulate, EtherType, Gid, HwAddr, Scope, DEFAULT_PKEY,
    HEADER_LEN, MULTICAST_QPN, PKEY_FULL_MEMBER,
};

/// The Q_Key a creator gives the broadcast group: the one OpenSM gives the IPoIB groups it
/// creates (`OSM_IPOIB_BROADCAST_MGRP_QKEY`, `include/opensm/osm_base.h`).
pub const BROADCAST_QKEY: u32 = 0x0000_0b1b;

/// Largest IP MTU: the driver's receive slots hold 2048 bytes, the IPoIB header takes 4
/// (RFC 4391 §5: 2044 on a 2K IB MTU).
pub const MAX_IP_MTU: usize = 2044;

/// Who runs ARP on the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArpMode {
    /// The interface does: it answers requests for its address, resolves next hops itself
    /// and hands received IPv4 packets to [`Interface::recv`] (the ROM, smoltcp hosts).
    #[default]
    Own,
    /// The host's stack does (an ifnet whose kernel runs ARP with 20-byte addresses, as
    /// FreeBSD's `if_infiniband.c` does): received IPv4 *and* ARP datagrams are handed to
    /// [`Interface::recv_frame`] with their destination address, nothing is answered or
    /// learnt, and a new address is not announced by [`Interface::set_ipv4`] (the kernel
    /// announces it). [`Interface::announce`] still sends a gratuitous ARP on request (after
    /// a move to another port, which the kernel does not see).
    Host,
}

/// A datagram received in [`ArpMode::Host`]: where it was sent (our address for unicast; the
/// group's, QPN 0xffffff and its MGID, for multicast), its EtherType and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxFrame {
    /// The destination address.
    pub dst: HwAddr,
    /// The EtherType of the IPoIB header.
    pub ether_type: EtherType,
    /// What follows the 4-byte IPoIB header.
    pub payload: Vec<u8>,
}

/// Interface settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The HCA port.
    pub port: PortNum,
    /// The partition (the full-member bit is set whatever is given). Default 0xffff.
    pub pkey: u16,
    /// How long to wait for the port to become ACTIVE.
    pub port_timeout: core::time::Duration,
    /// Retries of the broadcast group join.
    pub join_policy: RetryPolicy,
    /// When the SA has no broadcast group for the partition, create it: join again with the
    /// creator's components ([`BROADCAST_QKEY`], SL 0, traffic class 0, flow label 0, the
    /// partition's P_Key; the SA picks the MTU and rate). Off by default: a boot client
    /// normally finds the group the SM made, and a missing group is a configuration error.
    pub create_broadcast: bool,
    /// Neighbour cache.
    pub neigh: NeighConfig,
    /// Path cache.
    pub path: PathConfig,
    /// Packets waiting for ARP or a path, at most (the oldest is dropped).
    pub pending_limit: usize,
    /// Received IPv4 packets not yet taken by [`Interface::recv`], at most.
    pub rx_limit: usize,
    /// UD send slots.
    pub send_slots: u32,
    /// UD receive slots (the driver may give fewer: hermon clamps to 1024, and
    /// [`Interface::max_rx_window`] trusts this number).
    pub recv_slots: u32,
    /// Who runs ARP.
    pub arp: ArpMode,
}

impl Default for Config {
    /// Port 1, P_Key 0xffff, 15 s for the port (iPXE's wait), 32 pending packets, 64 send
    /// and 64 receive slots (a page of memory each: what a boot ROM can spare).
    fn default() -> Self {
        Self {
            port: PortNum(1),
            pkey: DEFAULT_PKEY,
            port_timeout: core::time::Duration::from_secs(15),
            join_policy: RetryPolicy::default(),
            create_broadcast: false,
            neigh: NeighConfig::default(),
            path: PathConfig::default(),
            pending_limit: 32,
            rx_limit: 256,
            send_slots: 64,
            recv_slots: 64,
            arp: ArpMode::Own,
        }
    }
}

/// Why the interface could not come up or send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The HCA layer failed (including the port not becoming ACTIVE in time).
    Hca(hca::Error),
    /// The P_Key is not in the port's P_Key table: the subnet manager did not put this port
    /// in that partition. Nothing was sent.
    PkeyNotInPortTable {
        /// The P_Key asked for (full-member bit set).
        pkey: u16,
    },
    /// The SA refused the broadcast group join: the subnet manager has no IPoIB broadcast
    /// group for this partition.
    NoBroadcastGroup {
        /// The P_Key (full-member bit set).
        pkey: u16,
        /// The SA's status.
        status: MadStatus,
    },
    /// The packet is longer than the interface MTU.
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Not an IPv4 packet.
    NotIpv4,
    /// No address configured and the destination is not a broadcast; or no gateway for an
    /// off-link destination.
    NoRoute(Ipv4Addr),
}

impl From<hca::Error> for Error {
    fn from(e: hca::Error) -> Self {
        Error::Hca(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Hca(e) => write!(f, "{e}"),
            Error::PkeyNotInPortTable { pkey } => write!(
                f,
                "P_Key {pkey:#06x} is not in the port's P_Key table (the subnet manager has \
                 not made this port a member of that partition)"
            ),
            Error::NoBroadcastGroup { pkey, status } => write!(
                f,
                "the SA refused to join the IPoIB broadcast group of P_Key {pkey:#06x} \
                 (status {:#06x}): no such group on this subnet",
                status.0
            ),
            Error::TooLong { len } => write!(f, "packet of {len} bytes exceeds the MTU"),
            Error::NotIpv4 => f.write_str("not an IPv4 packet"),
            Error::NoRoute(ip) => write!(f, "no route to {ip}"),
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams posted.
    pub tx_packets: u64,
    /// IPv4 packets received.
    pub rx_ipv4: u64,
    /// ARP packets received.
    pub rx_arp: u64,
    /// Received datagrams dropped (error completion, too long, malformed, unknown type, our
    /// own multicast, full receive queue).
    pub rx_dropped: u64,
    /// Datagrams that could not be posted (queue full, device error).
    pub tx_errors: u64,
    /// ARP requests sent (including gratuitous ones).
    pub arp_requests: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// PathRecord queries sent.
    pub path_queries: u64,
    /// Paths dropped as stale (peer seen at another LID, failed send, own LID change).
    pub path_stale: u64,
    /// Packets dropped from the pending queue (full, or resolution failed).
    pub pending_dropped: u64,
    /// Send completions with an error status.
    pub send_errors: u64,
    /// Broadcast group re-joined because the SM asked the port to re-register (an SM restart
    /// forgets its groups: IBA 14.4.11, PortInfo:ClientReregister).
    pub rejoins: u64,
    /// Such re-joins that failed (the SA did not answer within the join policy); each is
    /// tried again later ([`REJOIN_RETRY`], doubling up to [`REJOIN_RETRY_MAX`]) until one
    /// succeeds, which counts in `rejoins`.
    pub rejoin_failures: u64,
}

/// How long after a failed re-join of the broadcast group the interface tries again (then
/// twice as long each time, up to [`REJOIN_RETRY_MAX`]): without the group, broadcast ARP
/// neither leaves nor arrives.
pub const REJOIN_RETRY: core::time::Duration = core::time::Duration::from_secs(1);
/// The longest wait between re-join attempts.
pub const REJOIN_RETRY_MAX: core::time::Duration = core::time::Duration::from_secs(16);

/// A re-join of the broadcast group still to be made.
#[derive(Debug, Clone, Copy)]
struct Rejoin {
    /// When to try next.
    at: Instant,
    /// The wait after that attempt if it fails too.
    wait: core::time::Duration,
    /// Whether the first failure was counted in [`Stats::rejoin_failures`] (an SM restart):
    /// the success then counts in [`Stats::rejoins`].
    counted: bool,
}

/// Where a frame goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NextHop {
    Broadcast,
    Ip(Ipv4Addr),
    Hw(HwAddr),
}

#[derive(Debug)]
struct Pending {
    next: NextHop,
    frame: Vec<u8>,
}

/// Converts between the two GID types (same bytes).
fn hgid(g: &Gid) -> hca::wire::Gid {
    hca::wire::Gid(g.0)
}

/// The IPoIB interface.
#[derive(Debug)]
pub struct Interface {
    cfg: Config,
    attr: PortAttr,
    pkey: u16,
    mgid: Gid,
    mlid: Lid,
    qkey: u32,
    mcast_sl: u8,
    group_mtu: u8,
    mtu: usize,
    send_cq: CqId,
    recv_cq: CqId,
    qp: QpId,
    qpn: u32,
    link_up: bool,
    ip: Option<(Ipv4Addr, u8)>,
    gateway: Option<Ipv4Addr>,
    neigh: NeighCache,
    paths: PathCache,
    pending: VecDeque<Pending>,
    rx: VecDeque<Vec<u8>>,
    frames: VecDeque<RxFrame>,
    in_flight: BTreeMap<u32, Gid>,
    stats: Stats,
    buf: Vec<u8>,
    rejoin: Option<Rejoin>,
}

fn mtu_bytes(code: u8) -> usize {
    match code {
        1 => 256,
        2 => 512,
        3 => 1024,
        4 => 2048,
        5 => 4096,
        _ => 256,
    }
}

impl Interface {
    /// Brings the interface up on `cfg.port` (see the module docs). Every wait is bounded:
    /// `cfg.port_timeout` for the port, `cfg.join_policy` for the SA.
    pub fn up(dev: &mut dyn Verbs, cfg: Config) -> Result<Self, Error> {
        dev.open_port(cfg.port)?;
        let attr = verbs::wait_port_active(dev, cfg.port, cfg.port_timeout)?;
        let pkey = cfg.pkey | PKEY_FULL_MEMBER;
        if pkey & 0x7fff == 0
            || !attr
                .pkeys
                .iter()
                .any(|k| k & 0x7fff == pkey & 0x7fff && k & 0x7fff != 0)
        {
            debug!(
                "ipoib: P_Key {pkey:#06x} not in port table {:04x?}",
                attr.pkeys
            );
            return Err(Error::PkeyNotInPortTable { pkey });
        }
        let mgid = broadcast_mgid(pkey, Scope::LINK_LOCAL);
        let rec = match verbs::sa_join_mcast(dev, &attr, &hgid(&mgid), cfg.join_policy) {
            Ok(r) => r,
            Err(hca::Error::MadStatus(status)) if cfg.create_broadcast => {
                debug!("ipoib: no broadcast group for P_Key {pkey:#06x} ({status:?}): creating it");
                let params = verbs::McGroupParams {
                    qkey: BROADCAST_QKEY,
                    pkey,
                    sl: 0,
                    tclass: 0,
                    flow_label: 0,
                    mtu: None,
                };
                match verbs::sa_create_join_mcast(
                    dev,
                    &attr,
                    &hgid(&mgid),
                    &params,
                    cfg.join_policy,
                ) {
                    Ok(r) => r,
                    Err(hca::Error::MadStatus(status)) => {
                        return Err(Error::NoBroadcastGroup { pkey, status })
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(hca::Error::MadStatus(status)) => {
                return Err(Error::NoBroadcastGroup { pkey, status })
            }
            Err(e) => return Err(e.into()),
        };
        let qkey = rec.qkey.get();
        let mtu = (mtu_bytes(rec.mtu()) - HEADER_LEN).min(MAX_IP_MTU);
        // Nothing is left behind in the device when a step fails.
        let send_cq = dev.create_cq(cfg.send_slots.saturating_mul(2))?;
        let recv_cq = match dev.create_cq(cfg.recv_slots.saturating_mul(2)) {
            Ok(cq) => cq,
            Err(e) => {
                let _ = dev.destroy_cq(send_cq);
                return Err(e.into());
            }
        };
        let qp = dev.create_ud_qp(&UdQpAttr {
            port: cfg.port,
            send_cq,
            recv_cq,
            send_slots: cfg.send_slots,
            recv_slots: cfg.recv_slots,
            qkey: Some(qkey),
        });
        let attached = qp.and_then(|qp| {
            dev.attach_mcast(qp, &hgid(&mgid))?;
            Ok((qp, dev.qp_num(qp)?.0))
        });
        let (qp, qpn) = match attached {
            Ok(q) => q,
            Err(e) => {
                if let Ok(qp) = qp {
                    let _ = dev.detach_mcast(qp, &hgid(&mgid));
                    let _ = dev.destroy_qp(qp);
                }
                let _ = dev.destroy_cq(send_cq);
                let _ = dev.destroy_cq(recv_cq);
                return Err(e.into());
            }
        };
        debug!(
            "ipoib: up on port {}: LID {:#x}, QPN {qpn:#x}, P_Key {pkey:#06x}, Q_Key {qkey:#x}, \
             MLID {:#x}, MTU {mtu}",
            cfg.port.0,
            attr.lid.0,
            rec.mlid.get()
        );
        Ok(Self {
            cfg,
            attr,
            pkey,
            mgid,
            mlid: rec.mlid(),
            qkey,
            mcast_sl: rec.sl(),
            group_mtu: rec.mtu(),
            mtu,
            send_cq,
            recv_cq,
            qp,
            qpn,
            link_up: true,
            ip: None,
            gateway: None,
            neigh: NeighCache::new(cfg.neigh),
            paths: PathCache::new(cfg.path),
            pending: VecDeque::new(),
            rx: VecDeque::new(),
            frames: VecDeque::new(),
            in_flight: BTreeMap::new(),
            stats: Stats::default(),
            buf: vec![0u8; 4096],
            rejoin: None,
        })
    }

    /// Leaves the broadcast group and destroys the QP and CQs.
    pub fn down(self, dev: &mut dyn Verbs) -> Result<(), Error> {
        let _ = dev.detach_mcast(self.qp, &hgid(&self.mgid));
        let left = verbs::sa_leave_mcast(dev, &self.attr, &hgid(&self.mgid), self.cfg.join_policy);
        dev.destroy_qp(self.qp)?;
        dev.destroy_cq(self.send_cq)?;
        dev.destroy_cq(self.recv_cq)?;
        left.map_err(Error::from)
    }

    /// Destroys the QP and CQs without leaving the group through the SA: for a port that
    /// went down (the SM dropped its memberships already, and an SA request could only time
    /// out).
    pub fn release(self, dev: &mut dyn Verbs) -> Result<(), Error> {
        let _ = dev.detach_mcast(self.qp, &hgid(&self.mgid));
        dev.destroy_qp(self.qp)?;
        dev.destroy_cq(self.send_cq)?;
        dev.destroy_cq(self.recv_cq)?;
        Ok(())
    }

    /// Who runs ARP.
    pub fn arp_mode(&self) -> ArpMode {
        self.cfg.arp
    }

    /// Our link address (flags 0: datagram mode only).
    pub fn hw_addr(&self) -> HwAddr {
        HwAddr {
            flags: 0,
            qpn: self.qpn,
            gid: Gid(self.attr.gid.0),
        }
    }

    /// The port's attributes as last read.
    pub fn port_attr(&self) -> &PortAttr {
        &self.attr
    }

    /// False after the port went down, until it is back.
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// The IP MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The broadcast group's IB MTU in bytes, as the SA gave it (the IP MTU is 4 less, at
    /// most [`MAX_IP_MTU`]).
    pub fn ib_mtu(&self) -> usize {
        mtu_bytes(self.group_mtu)
    }

    /// Sets the SA retries of later joins and leaves (the re-join after the port comes back,
    /// [`Interface::down`]): a caller that polls from a context that must not wait long
    /// shortens them after bring-up.
    pub fn set_join_policy(&mut self, policy: RetryPolicy) {
        self.cfg.join_policy = policy;
    }

    /// The partition's P_Key (full-member bit set).
    pub fn pkey(&self) -> u16 {
        self.pkey
    }

    /// The broadcast group's Q_Key.
    pub fn qkey(&self) -> u32 {
        self.qkey
    }

    /// The broadcast group's MLID, as the SA gave it.
    pub fn mlid(&self) -> Lid {
        self.mlid
    }

    /// The broadcast group's MGID.
    pub fn broadcast_mgid(&self) -> Gid {
        self.mgid
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The configured address and prefix length.
    pub fn ipv4(&self) -> Option<(Ipv4Addr, u8)> {
        self.ip
    }

    /// The default gateway.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway
    }

    /// The link address cached for `ip`.
    pub fn neighbour(&self, ip: Ipv4Addr) -> Option<HwAddr> {
        self.neigh.lookup(ip)
    }

    /// The resolved path to `gid`, if cached and not expired at `now`.
    pub fn path(&self, gid: &Gid, now: Instant) -> Option<PathInfo> {
        self.paths.get(gid, now)
    }

    /// Configures (or with `None` removes) the address, and the default gateway. A new address
    /// is announced with a gratuitous ARP (RFC 5227 §3 style: sender and target the new
    /// address).
    pub fn set_ipv4(
        &mut self,
        dev: &mut dyn Verbs,
        now: Instant,
        ip: Option<(Ipv4Addr, u8)>,
        gateway: Option<Ipv4Addr>,
    ) {
        let changed = ip.map(|a| a.0) != self.ip.map(|a| a.0);
        self.ip = ip.map(|(a, p)| (a, p.min(32)));
        self.gateway = gateway;
        if changed {
            self.neigh.flush();
            if self.cfg.arp == ArpMode::Own {
                self.announce(dev, now);
            }
        }
    }

    /// Sends a gratuitous ARP for the configured address on the broadcast group (RFC 5227
    /// §3's announcement: sender and target address both ours), if one is configured.
    pub fn announce(&mut self, dev: &mut dyn Verbs, now: Instant) {
        if let Some((ip, _)) = self.ip {
            let r = arp::Repr::gratuitous(self.hw_addr(), ip);
            self.send_arp(dev, now, r, NextHop::Broadcast);
        }
    }

    fn on_link(&self, dst: Ipv4Addr) -> bool {
        match self.ip {
            Some((a, p)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
                u32::from(a) & mask == u32::from(dst) & mask
            }
            None => false,
        }
    }

    fn is_broadcast(&self, dst: Ipv4Addr) -> bool {
        if dst == Ipv4Addr::BROADCAST || dst.is_multicast() {
            return true;
        }
        match self.ip {
            Some((a, p)) if p < 31 => {
                let host = u32::MAX >> p;
                u32::from(dst) == u32::from(a) | host
            }
            _ => false,
        }
    }

    fn route(&self, dst: Ipv4Addr) -> Result<NextHop, Error> {
        if self.is_broadcast(dst) {
            // IPv4 multicast goes to the broadcast group too (RFC 4391 §4 maps each group to
            // its own MGID; a boot client needs none).
            return Ok(NextHop::Broadcast);
        }
        if self.on_link(dst) {
            return Ok(NextHop::Ip(dst));
        }
        match (self.ip, self.gateway) {
            (Some(_), Some(gw)) => Ok(NextHop::Ip(gw)),
            _ => Err(Error::NoRoute(dst)),
        }
    }

    /// Sends an IPv4 packet, routed by its destination: broadcast, on-link, or via the gateway.
    pub fn send_ipv4(
        &mut self,
        dev: &mut dyn Verbs,
        now: Instant,
        packet: &[u8],
    ) -> Result<(), Error> {
        let mut frame = vec![0u8; HEADER_LEN + packet.len()];
        frame[HEADER_LEN..].copy_from_slice(packet);
        self.send_ipv4_frame(dev, now, frame)
    }

    /// As [`Interface::send_ipv4`], with the packet at `frame[4..]` (the header is written here).
    pub fn send_ipv4_frame(
        &mut self,
        dev: &mut dyn Verbs,
        now: Instant,
        mut frame: Vec<u8>,
    ) -> Result<(), Error> {
        let packet = frame.get(HEADER_LEN..).unwrap_or(&[]);
        if packet.len() < 20 || packet[0] >> 4 != 4 {
            return Err(Error::NotIpv4);
        }
        if packet.len() > self.mtu {
            return Err(Error::TooLong { len: packet.len() });
        }
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        let next = self.route(dst)?;
        let _ = encapsulate(EtherType::IPV4, &mut frame);
        self.xmit(dev, now, next, frame);
        Ok(())
    }

    /// Sends an IPv4 packet to an explicit next hop (the caller routed it).
    pub fn send_ipv4_via(
        &mut self,
        dev: &mut dyn Verbs,
        now: Instant,
        packet: &[u8],
        next_hop: Ipv4Addr,
    ) -> Result<(), Error> {
        if packet.len() > self.mtu {
            return Err(Error::TooLong { len: packet.len() });
        }
        let mut frame = vec![0u8; HEADER_LEN + packet.len()];
        frame[HEADER_LEN..].copy_from_slice(packet);
        let _ = encapsulate(EtherType::IPV4, &mut frame);
        let next = if self.is_broadcast(next_hop) {
            NextHop::Broadcast
        } else {
            NextHop::Ip(next_hop)
        };
        self.xmit(dev, now, next, frame);
        Ok(())
    }

    /// Sends a payload of `ether_type` to a 20-byte link address (what an ifnet's output hands
    /// over once its own ARP resolved the next hop). The broadcast address goes to the group.
    pub fn send_frame(
        &mut self,
        dev: &mut dyn Verbs,
        now: Instant,
        dst: &HwAddr,
        ether_type: EtherType,
        payload: &[u8],
    ) -> Result<(), Error> {
        if payload.len() > self.mtu {
            return Err(Error::TooLong { len: payload.len() });
        }
        let mut frame = vec![0u8; HEADER_LEN + payload.len()];
        frame[HEADER_LEN..].copy_from_slice(payload);
        let _ = encapsulate(ether_type, &mut frame);
        self.xmit(dev, now, NextHop::Hw(*dst), frame);
        Ok(())
    }

    /// Who this port is, for the DHCP client's client-id forms (the 6-byte form from the
    /// GUID's bytes 0, 1, 2, 5, 6, 7, as iPXE derives it).
    pub fn identity(&self) -> crate::dhcp::Identity {
        let g = self.attr.port_guid.0;
        crate::dhcp::Identity {
            port_guid: g,
            hw_addr: self.hw_addr(),
            lemac: [g[0], g[1], g[2], g[5], g[6], g[7]],
        }
    }

    /// Sends a DHCP client message (UDP 68 → 67): broadcast on the group (RFC 4390 §2.2), or
    /// unicast to the server when renewing, routed as any packet. (Feature `smoltcp`: the
    /// datagram is built with `smoltcp::wire`.)
    #[cfg(feature = "smoltcp")]
    pub fn send_dhcp(
        &mut self,
        dev: &mut dyn Verbs,
        now: Instant,
        tx: &crate::dhcp::Transmit,
    ) -> Result<(), Error> {
        let dst = match tx.dst {
            crate::dhcp::Destination::Broadcast => Ipv4Addr::BROADCAST,
            crate::dhcp::Destination::Unicast(s) => s,
        };
        let packet = crate::udp::emit(&crate::udp::Datagram {
            src: tx.src,
            dst,
            src_port: crate::udp::DHCP_CLIENT_PORT,
            dst_port: crate::udp::DHCP_SERVER_PORT,
            payload: &tx.payload,
        })
        .ok_or(Error::TooLong {
            len: tx.payload.len(),
        })?;
        self.send_ipv4(dev, now, &packet)
    }

    /// Takes the next received IPv4 packet.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        self.rx.pop_front()
    }

    /// Takes the next received frame ([`ArpMode::Host`] only: IPv4 and ARP datagrams with
    /// their destination address).
    pub fn recv_frame(&mut self) -> Option<RxFrame> {
        self.frames.pop_front()
    }

    /// Puts a packet back at the end of the receive queue (for a caller that looked at
    /// everything received and keeps some packets for its IP stack).
    pub fn push_rx(&mut self, packet: Vec<u8>) {
        if self.rx.len() < self.cfg.rx_limit {
            self.rx.push_back(packet);
        } else {
            self.stats.rx_dropped += 1;
        }
    }

    /// The largest TCP receive window that a peer's back-to-back burst of full segments cannot
    /// overrun the receive slots with (three quarters of them; the rest absorb ARP and other
    /// peers). Size TCP receive buffers at most this.
    pub fn max_rx_window(&self) -> usize {
        (self.cfg.recv_slots as usize * 3 / 4).max(1) * self.mtu.saturating_sub(40)
    }

    /// Received packets waiting.
    pub fn rx_pending(&self) -> usize {
        self.rx.len()
    }

    /// Packets waiting for ARP or a path.
    pub fn tx_pending(&self) -> usize {
        self.pending.len()
    }

    /// When [`Interface::poll`] next has timer work (it also has work whenever the device has
    /// completions, MADs or events).
    pub fn poll_at(&self) -> Option<Instant> {
        let rejoin = self.rejoin.filter(|_| self.link_up).map(|r| r.at);
        [self.neigh.poll_at(), self.paths.poll_at(), rejoin]
            .into_iter()
            .flatten()
            .min()
    }

    /// Does all pending work: device events, received datagrams (ARP answered, IPv4 queued
    /// for [`Interface::recv`]), send completions, SA answers, ARP and path timers, and
    /// packets whose next hop became resolvable. Timers are due by `now`.
    pub fn poll(&mut self, dev: &mut dyn Verbs, now: Instant) -> Result<(), Error> {
        self.poll_events(dev, now)?;
        self.poll_recv(dev, now)?;
        self.reap_sends(dev)?;
        self.poll_mads(dev, now)?;
        self.run_timers(dev, now);
        self.retry_rejoin(dev, now);
        self.flush_pending(dev, now);
        Ok(())
    }

    /// Joins the broadcast group again (its MLID may be new): true on success. A failure
    /// schedules another attempt ([`REJOIN_RETRY`]); `counted` says whether it is an SM
    /// restart's re-join (see [`Stats::rejoins`]).
    fn join_again(&mut self, dev: &mut dyn Verbs, now: Instant, counted: bool) -> bool {
        match verbs::sa_join_mcast(dev, &self.attr, &hgid(&self.mgid), self.cfg.join_policy) {
            Ok(rec) => {
                self.mlid = rec.mlid();
                self.rejoin = None;
                if counted {
                    self.stats.rejoins += 1;
                }
                true
            }
            Err(e) => {
                debug!("ipoib: re-joining the broadcast group failed: {e}");
                let wait = self.rejoin.map_or(REJOIN_RETRY, |r| r.wait);
                self.rejoin = Some(Rejoin {
                    at: now + wait,
                    wait: (wait * 2).min(REJOIN_RETRY_MAX),
                    counted: counted || self.rejoin.is_some_and(|r| r.counted),
                });
                false
            }
        }
    }

    /// A re-join that failed, tried again when due (while the link is up).
    fn retry_rejoin(&mut self, dev: &mut dyn Verbs, now: Instant) {
        let Some(r) = self.rejoin else {
            return;
        };
        if self.link_up && now >= r.at && self.join_again(dev, now, r.counted) {
            self.announce(dev, now);
        }
    }

    fn poll_events(&mut self, dev: &mut dyn Verbs, now: Instant) -> Result<(), Error> {
        while let Some(ev) = dev.poll_event()? {
            match ev {
                Event::PortManagementChange { port } if port == self.cfg.port => {
                    let old = self.attr;
                    self.attr = dev.query_port(port)?;
                    if self.attr.lid != old.lid || self.attr.sm_lid != old.sm_lid {
                        debug!(
                            "ipoib: our LID {:#x} -> {:#x}: paths flushed, re-announcing",
                            old.lid.0, self.attr.lid.0
                        );
                        self.stats.path_stale += 1;
                        self.paths.flush();
                        self.announce(dev, now);
                    }
                }
                Event::PortStateChange { port, up } if port == self.cfg.port => {
                    self.link_up = up;
                    if up {
                        self.attr = dev.query_port(port)?;
                        self.paths.flush();
                        // The SM dropped our membership when the link went down.
                        let counted = self.rejoin.is_some_and(|r| r.counted);
                        self.join_again(dev, now, counted);
                        self.announce(dev, now);
                    }
                }
                Event::ClientReregister { port } if port == self.cfg.port => {
                    // The SM restarted and lost its groups (and perhaps moved LIDs): what
                    // Linux IPoIB does on IB_EVENT_CLIENT_REREGISTER — re-query the port,
                    // flush the paths, join the broadcast group again (its MLID may be new)
                    // and announce ourselves.
                    self.attr = dev.query_port(port)?;
                    self.paths.flush();
                    if self.link_up {
                        self.rejoin = None;
                        if !self.join_again(dev, now, true) {
                            self.stats.rejoin_failures += 1;
                        }
                        self.announce(dev, now);
                    }
                }
                Event::CqError { cqn } => debug!("ipoib: CQ {cqn:#x} error"),
                _ => {}
            }
        }
        Ok(())
    }

    fn poll_recv(&mut self, dev: &mut dyn Verbs, now: Instant) -> Result<(), Error> {
        let mut buf = core::mem::take(&mut self.buf);
        // Bounded per poll so a flood cannot starve the caller.
        for _ in 0..self.cfg.recv_slots.saturating_mul(2).max(16) {
            let Some(c) = dev.poll_cq(self.recv_cq, &mut buf)? else {
                break;
            };
            if c.kind != CompletionKind::Recv {
                continue;
            }
            let len = c.byte_len as usize;
            if !c.status.is_ok() || len > buf.len() {
                self.stats.rx_dropped += 1;
                continue;
            }
            // Our own multicast looped back by the HCA.
            if c.src_qpn.0 == self.qpn && c.slid == self.attr.lid {
                self.stats.rx_dropped += 1;
                continue;
            }
            if let Some((sgid, _)) = c.grh {
                if self.paths.observe(&Gid(sgid.0), c.slid.0) {
                    self.stats.path_stale += 1;
                    debug!(
                        "ipoib: {} now at LID {:#x}: path stale",
                        Gid(sgid.0),
                        c.slid.0
                    );
                }
            }
            let Ok((ty, payload)) = decapsulate(&buf[..len]) else {
                self.stats.rx_dropped += 1;
                continue;
            };
            if self.cfg.arp == ArpMode::Host {
                let dst = match c.grh {
                    // A datagram sent to a group carries the group's MGID in its GRH.
                    Some((_, dgid)) if dgid.0[0] == 0xff => HwAddr {
                        flags: 0,
                        qpn: MULTICAST_QPN,
                        gid: Gid(dgid.0),
                    },
                    _ => self.hw_addr(),
                };
                self.host_frame(dst, ty, payload, c.slid.0);
                continue;
            }
            match ty {
                EtherType::IPV4 => {
                    self.stats.rx_ipv4 += 1;
                    if self.rx.len() < self.cfg.rx_limit {
                        self.rx.push_back(payload.to_vec());
                    } else {
                        self.stats.rx_dropped += 1;
                    }
                }
                EtherType::ARP => match arp::Repr::parse(payload) {
                    Ok(r) => {
                        self.stats.rx_arp += 1;
                        self.handle_arp(dev, now, r, c.slid.0);
                    }
                    Err(e) => {
                        debug!("ipoib: bad ARP dropped: {e}");
                        self.stats.rx_dropped += 1;
                    }
                },
                _ => self.stats.rx_dropped += 1,
            }
        }
        self.buf = buf;
        Ok(())
    }

    /// [`ArpMode::Host`]: hands IPv4 and ARP up untouched; an ARP sender's LID still tells
    /// where the sender is now (its path is re-resolved when it moved).
    fn host_frame(&mut self, dst: HwAddr, ty: EtherType, payload: &[u8], slid: u16) {
        match ty {
            EtherType::IPV4 => self.stats.rx_ipv4 += 1,
            EtherType::ARP => {
                self.stats.rx_arp += 1;
                if let Ok(r) = arp::Repr::parse(payload) {
                    if r.sender_hw.gid != self.hw_addr().gid
                        && self.paths.observe(&r.sender_hw.gid, slid)
                    {
                        self.stats.path_stale += 1;
                        debug!("ipoib: {} now at LID {slid:#x}: path stale", r.sender_ip);
                    }
                }
            }
            _ => {
                self.stats.rx_dropped += 1;
                return;
            }
        }
        if self.frames.len() < self.cfg.rx_limit {
            self.frames.push_back(RxFrame {
                dst,
                ether_type: ty,
                payload: payload.to_vec(),
            });
        } else {
            self.stats.rx_dropped += 1;
        }
    }

    /// RFC 826's reception algorithm, with the path check: an ARP packet's sender GID arrived
    /// from `slid`.
    fn handle_arp(&mut self, dev: &mut dyn Verbs, now: Instant, r: arp::Repr, slid: u16) {
        if r.sender_hw.gid == self.hw_addr().gid {
            return;
        }
        if self.paths.observe(&r.sender_hw.gid, slid) {
            self.stats.path_stale += 1;
            debug!("ipoib: {} now at LID {slid:#x}: path stale", r.sender_ip);
        }
        if r.sender_ip.is_unspecified() {
            // A probe: nothing to learn; it may still ask for our address below.
        } else {
            let merged = self.neigh.update_if_known(r.sender_ip, r.sender_hw, now);
            let for_us = self.ip.is_some_and(|(a, _)| a == r.target_ip);
            if for_us && !merged {
                self.neigh.fill(r.sender_ip, r.sender_hw, now);
            }
        }
        if r.operation == arp::Operation::REQUEST
            && self.ip.is_some_and(|(a, _)| a == r.target_ip)
            && r.sender_ip != r.target_ip
        {
            let reply = r.reply_from(self.hw_addr());
            self.send_arp(dev, now, reply, NextHop::Hw(r.sender_hw));
            self.stats.arp_replies += 1;
        }
    }

    fn send_arp(&mut self, dev: &mut dyn Verbs, now: Instant, r: arp::Repr, next: NextHop) {
        let mut frame = vec![0u8; HEADER_LEN + arp::PACKET_LEN];
        let _ = encapsulate(EtherType::ARP, &mut frame);
        let _ = r.emit(&mut frame[HEADER_LEN..]);
        if r.operation == arp::Operation::REQUEST {
            self.stats.arp_requests += 1;
        }
        self.xmit(dev, now, next, frame);
    }

    fn reap_sends(&mut self, dev: &mut dyn Verbs) -> Result<(), Error> {
        let mut scratch = [0u8; 0];
        while let Some(c) = dev.poll_cq(self.send_cq, &mut scratch)? {
            let dest = self.in_flight.remove(&c.wr_id.0);
            if !c.status.is_ok() {
                self.stats.send_errors += 1;
                if let Some(g) = dest {
                    debug!("ipoib: send to {g} failed ({:?}): path dropped", c.status);
                    self.paths.invalidate(&g);
                    self.stats.path_stale += 1;
                }
            }
        }
        Ok(())
    }

    fn poll_mads(&mut self, dev: &mut dyn Verbs, now: Instant) -> Result<(), Error> {
        while let Some(r) = dev.mad_recv(self.cfg.port)? {
            let m = &r.mad;
            if !m.hdr.method.is_response() || m.hdr.attr_id != AttrId::PATH_RECORD {
                continue;
            }
            if !m.status().is_ok() {
                if let Some(g) = self.paths.refused(m.tid()) {
                    debug!("ipoib: SA has no path to {g} ({:?})", m.status());
                    self.drop_pending(|n| matches!(n, NextHop::Hw(h) if h.gid == g));
                }
                continue;
            }
            let Ok(pr) = sa::sa_record::<PathRecord>(m) else {
                continue;
            };
            if pr.pkey.get() & 0x7fff != self.pkey & 0x7fff {
                // A path in another partition is no path for us.
                if let Some(g) = self.paths.refused(m.tid()) {
                    debug!(
                        "ipoib: the SA's path to {g} is in partition {:#06x}",
                        pr.pkey.get()
                    );
                    self.drop_pending(|n| matches!(n, NextHop::Hw(h) if h.gid == g));
                }
                continue;
            }
            let info = PathInfo {
                dlid: pr.dlid.get(),
                sl: pr.sl(),
                mtu: pr.mtu(),
            };
            if let Some(g) = self.paths.resolved(m.tid(), info, now) {
                debug!("ipoib: path to {g}: LID {:#x}", info.dlid);
            }
        }
        Ok(())
    }

    fn query_path(&mut self, dev: &mut dyn Verbs, now: Instant, gid: Gid) {
        // In our partition: an SA may otherwise answer with any partition the two ports share.
        let rec = PathRecord {
            dgid: hgid(&gid),
            sgid: self.attr.gid,
            pkey: zerocopy::byteorder::big_endian::U16::new(self.pkey),
            ..Default::default()
        };
        let mask = PathRecordMask::DGID | PathRecordMask::SGID | PathRecordMask::PKEY;
        let tid = dev.next_tid();
        let req = sa::sa_request(MadMethod::GET, AttrId::PATH_RECORD, mask.bits(), &rec, tid);
        let dest = MadDest {
            dlid: self.attr.sm_lid,
            sl: self.attr.sm_sl,
            qpn: Qpn::GSI,
            qkey: GSI_QKEY,
        };
        match dev.mad_send(self.cfg.port, &dest, &req) {
            Ok(()) => {
                self.paths.sent(&gid, tid);
                self.stats.path_queries += 1;
            }
            Err(e) => {
                debug!("ipoib: PathRecord query not sent: {e}; again next round");
                self.paths
                    .unsent(&gid, now + core::time::Duration::from_millis(1));
            }
        }
    }

    fn run_timers(&mut self, dev: &mut dyn Verbs, now: Instant) {
        for d in self.neigh.due(now) {
            match d {
                NeighDue::Probe(ip) => {
                    let src = self.ip.map_or(Ipv4Addr::UNSPECIFIED, |a| a.0);
                    let r = arp::Repr::request(self.hw_addr(), src, ip);
                    self.send_arp(dev, now, r, NextHop::Broadcast);
                }
                NeighDue::Failed(ip) => {
                    debug!("ipoib: no ARP answer from {ip}");
                    self.drop_pending(|n| n == NextHop::Ip(ip));
                }
            }
        }
        for d in self.paths.due(now) {
            match d {
                PathDue::Query(g) => self.query_path(dev, now, g),
                PathDue::Failed(g) => {
                    debug!("ipoib: no PathRecord for {g}");
                    self.drop_pending(|n| matches!(n, NextHop::Hw(h) if h.gid == g));
                }
            }
        }
    }

    fn drop_pending(&mut self, mut f: impl FnMut(NextHop) -> bool) {
        let before = self.pending.len();
        self.pending.retain(|p| !f(p.next));
        self.stats.pending_dropped += (before - self.pending.len()) as u64;
    }

    fn flush_pending(&mut self, dev: &mut dyn Verbs, now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        let queue = core::mem::take(&mut self.pending);
        let mut started = false;
        for p in queue {
            let hw = match p.next {
                NextHop::Broadcast => None,
                NextHop::Ip(ip) => self.neigh.lookup(ip),
                NextHop::Hw(hw) => Some(hw),
            };
            let ready = match (p.next, hw) {
                (NextHop::Broadcast, _) => true,
                (_, Some(hw)) if self.hw_ready(&hw, now) => true,
                (_, Some(hw)) => {
                    // ARP answered: now the GID needs its path.
                    self.paths.need(hw.gid, now);
                    started = true;
                    false
                }
                (_, None) => false,
            };
            if ready {
                self.xmit(dev, now, p.next, p.frame);
            } else {
                self.pending.push_back(p);
            }
        }
        if started {
            self.run_timers(dev, now);
        }
    }

    fn hw_ready(&self, hw: &HwAddr, now: Instant) -> bool {
        hw.qpn == MULTICAST_QPN || self.paths.get(&hw.gid, now).is_some()
    }

    fn enqueue(&mut self, next: NextHop, frame: Vec<u8>) {
        if self.pending.len() >= self.cfg.pending_limit.max(1) {
            self.pending.pop_front();
            self.stats.pending_dropped += 1;
        }
        self.pending.push_back(Pending { next, frame });
    }

    /// Sends now if the next hop is resolved, else queues the frame and starts resolving.
    fn xmit(&mut self, dev: &mut dyn Verbs, now: Instant, next: NextHop, frame: Vec<u8>) {
        match next {
            NextHop::Broadcast => {
                let ah =
                    AddressHandle::multicast(self.mlid, self.mcast_sl, hgid(&self.mgid), self.qkey);
                self.post(dev, &ah, &frame, None);
            }
            NextHop::Ip(ip) => match self.neigh.lookup(ip) {
                Some(hw) => self.xmit(dev, now, NextHop::Hw(hw), frame),
                None => {
                    self.neigh.start(ip, now);
                    self.enqueue(next, frame);
                    self.run_timers(dev, now);
                }
            },
            NextHop::Hw(hw) if hw.qpn == MULTICAST_QPN => {
                if hw.gid == self.mgid {
                    self.xmit(dev, now, NextHop::Broadcast, frame);
                } else {
                    // Other multicast groups are not joined by this interface.
                    self.stats.tx_errors += 1;
                }
            }
            NextHop::Hw(hw) => match self.paths.get(&hw.gid, now) {
                Some(p) => {
                    let ah = AddressHandle::unicast(Lid(p.dlid), p.sl, Qpn(hw.qpn), self.qkey);
                    self.post(dev, &ah, &frame, Some(hw.gid));
                }
                None => {
                    self.paths.need(hw.gid, now);
                    self.enqueue(next, frame);
                    self.run_timers(dev, now);
                }
            },
        }
    }

    fn post(&mut self, dev: &mut dyn Verbs, ah: &AddressHandle, frame: &[u8], dest: Option<Gid>) {
        let mut r = dev.post_send(self.qp, ah, frame);
        if r == Err(hca::Error::QueueFull) {
            let _ = self.reap_sends(dev);
            r = dev.post_send(self.qp, ah, frame);
        }
        match r {
            Ok(wr) => {
                self.stats.tx_packets += 1;
                if let Some(g) = dest {
                    self.in_flight.insert(wr.0, g);
                } else {
                    self.in_flight.remove(&wr.0);
                }
            }
            Err(e) => {
                self.stats.tx_errors += 1;
                debug!("ipoib: post_send failed: {e}");
            }
        }
    }
}
