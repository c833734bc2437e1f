//! The DHCP-over-InfiniBand client (RFC 2131 state machine, RFC 4390 fields), sans-IO.
//!
//! The caller owns the clock and the sockets: it calls [`Client::handle_timeout`] and
//! [`Client::poll_transmit`] at [`Client::poll_at`], sends what comes out as UDP from port 68 to
//! port 67 (broadcast on the IPoIB broadcast group, or unicast to the server while renewing),
//! and hands every UDP payload received on port 68 to [`Client::process`].
//!
//! Timers (RFC 2131 §4.1, §4.4.5): DISCOVER and REQUEST are retransmitted after 4, 8, 16, 32 and
//! then every 64 seconds, each delay randomised by ±1 s; the whole acquisition is bounded by
//! [`Config::acquire_timeout`], after which the client reports [`Event::TimedOut`] instead of
//! waiting forever. A lease is renewed at T1 (unicast), rebound at T2 (broadcast), with
//! retransmissions at half the remaining time but not under 60 s, and lost at expiry.
//!
//! What goes on the wire depends on the [`ClientIdForm`] the DHCP server is set up for. All but
//! [`ClientIdForm::IpxeEthernet`] send RFC 4390's fields: `htype` 32, `hlen` 0, a zero `chaddr`
//! and the broadcast flag, and differ in option 61.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use clock::{Duration, DurationExt, Instant};

use crate::wire::dhcp::{code, IpxeCredentials, Message, MessageType, Op, Options, FLAG_BROADCAST};
use crate::wire::ipoib::HwAddr;

/// ARP/DHCP hardware type of InfiniBand.
pub const HTYPE_INFINIBAND: u8 = 32;
/// ... of Ethernet.
pub const HTYPE_ETHERNET: u8 = 1;

/// Who this port is, as the client-id forms need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The port GUID (stable across boots).
    pub port_guid: [u8; 8],
    /// The port's IPoIB link address (QPN and GID; the QPN changes from boot to boot).
    pub hw_addr: HwAddr,
    /// The 6-byte Ethernet-style address a ROM derives from the port (see
    /// `ibft::identity`), for the iPXE-compatible form.
    pub lemac: [u8; 6],
}

/// The form of option 61 (and for iPXE's, of `htype`/`chaddr`) a DHCP server is configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientIdForm {
    /// RFC 4390 §2.1 / RFC 4361: `0xff`, a 4-byte IAID (the low half of the port GUID), and a
    /// DUID-LL (type 3) of hardware type 27 (EUI-64) holding the port GUID. Stable across
    /// boots. The default.
    Rfc4390,
    /// The BoIB manual's ConnectX form: the 8-byte port GUID.
    BoibConnectX,
    /// The BoIB manual's InfiniHost III form (gPXE's generic one): `0x20` and the 20-byte IPoIB
    /// address. It holds the QPN, so it changes whenever the QPN does.
    BoibInfiniHost,
    /// FlexBoot's form: `ff 00000000 0002 000002c9 00` and the port GUID (type 255, IAID 0,
    /// DUID-EN with Mellanox's enterprise number 713).
    FlexBoot,
    /// FlexBoot UEFI's "HW type IB" form: `0x20` and the port GUID.
    IbGuid,
    /// Today's iPXE: Ethernet fields (`htype` 1, `hlen` 6, `chaddr` = the GUID-derived MAC) and
    /// client-id `0x01` + that MAC.
    IpxeEthernet,
}

impl ClientIdForm {
    /// Every form.
    pub const ALL: [ClientIdForm; 6] = [
        ClientIdForm::Rfc4390,
        ClientIdForm::BoibConnectX,
        ClientIdForm::BoibInfiniHost,
        ClientIdForm::FlexBoot,
        ClientIdForm::IbGuid,
        ClientIdForm::IpxeEthernet,
    ];

    /// The option 61 bytes for `id`.
    pub fn client_id(self, id: &Identity) -> Vec<u8> {
        let g = id.port_guid;
        match self {
            ClientIdForm::Rfc4390 => {
                let mut v = vec![0xff];
                v.extend_from_slice(&g[4..]); // IAID
                v.extend_from_slice(&[0x00, 0x03, 0x00, 27]); // DUID-LL, EUI-64
                v.extend_from_slice(&g);
                v
            }
            ClientIdForm::BoibConnectX => g.to_vec(),
            ClientIdForm::BoibInfiniHost => {
                let mut v = vec![0x20];
                v.extend_from_slice(&id.hw_addr.to_bytes());
                v
            }
            ClientIdForm::FlexBoot => {
                let mut v = vec![
                    0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x02, 0xc9, 0x00,
                ];
                v.extend_from_slice(&g);
                v
            }
            ClientIdForm::IbGuid => {
                let mut v = vec![0x20];
                v.extend_from_slice(&g);
                v
            }
            ClientIdForm::IpxeEthernet => {
                let mut v = vec![0x01];
                v.extend_from_slice(&id.lemac);
                v
            }
        }
    }

    /// `htype`, `hlen` and `chaddr`.
    pub fn hardware(self, id: &Identity) -> (u8, u8, [u8; 16]) {
        match self {
            ClientIdForm::IpxeEthernet => {
                let mut c = [0u8; 16];
                c[..6].copy_from_slice(&id.lemac);
                (HTYPE_ETHERNET, 6, c)
            }
            _ => (HTYPE_INFINIBAND, 0, [0; 16]),
        }
    }
}

/// Settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The port.
    pub identity: Identity,
    /// What the server expects.
    pub form: ClientIdForm,
    /// The IPoIB MTU (2044 on a 2K IB MTU); option 57 is derived from it.
    pub mtu: u16,
    /// How long to try to get a lease before reporting [`Event::TimedOut`].
    pub acquire_timeout: Duration,
    /// Seeds transaction ids and retransmission jitter; give a different one on every boot
    /// (a timestamp mixed with the GUID does).
    pub seed: u64,
}

impl Config {
    /// RFC 4390 fields and client-id, a 2044-byte MTU, 60 s to get a lease.
    pub fn new(identity: Identity, seed: u64) -> Self {
        Self {
            identity,
            form: ClientIdForm::Rfc4390,
            mtu: 2044,
            acquire_timeout: Duration::from_secs(60),
            seed,
        }
    }
}

/// What a lease gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Our address.
    pub address: Ipv4Addr,
    /// Prefix length from the subnet mask, if the server sent one.
    pub prefix_len: Option<u8>,
    /// Routers, in preference order.
    pub routers: Vec<Ipv4Addr>,
    /// DNS servers.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Host name (12).
    pub host_name: Option<String>,
    /// Domain name (15).
    pub domain_name: Option<String>,
    /// Root path (17), e.g. `iscsi:…` (RFC 4173; `iscsi_initiator::rootpath::RootPath` parses it).
    pub root_path: Option<String>,
    /// iSCSI initiator name (203).
    pub initiator_iqn: Option<String>,
    /// iSCSI credentials (175).
    pub credentials: Option<IpxeCredentials>,
    /// Vendor-specific information (43), raw.
    pub vendor_specific: Option<Vec<u8>>,
    /// The server that granted it.
    pub server_id: Ipv4Addr,
    /// The relay it came through, if any (`giaddr`).
    pub relay: Option<Ipv4Addr>,
    /// Lease length; `None` for an infinite lease.
    pub lease_time: Option<Duration>,
    /// T1.
    pub renewal_time: Option<Duration>,
    /// T2.
    pub rebinding_time: Option<Duration>,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Source address: unspecified until bound.
    pub src: Ipv4Addr,
    /// Where: the broadcast group, or a server.
    pub dst: Destination,
    /// The UDP payload (ports 68 → 67).
    pub payload: Vec<u8>,
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The IPoIB broadcast group, to 255.255.255.255.
    Broadcast,
    /// Unicast to a server (renewing).
    Unicast(Ipv4Addr),
}

/// Something the caller should act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A lease was obtained: configure the interface.
    Bound(Lease),
    /// The lease was renewed or rebound (the address may be the same).
    Renewed(Lease),
    /// The lease ended (expired, or the server said no): unconfigure; the client starts over.
    Lost,
    /// No lease within [`Config::acquire_timeout`]. The client stops; [`Client::restart`]
    /// starts over.
    TimedOut,
}

/// Where the client is (RFC 2131 Figure 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Broadcasting DISCOVER, waiting for an OFFER.
    Selecting,
    /// Broadcasting REQUEST for an offer, waiting for ACK or NAK.
    Requesting,
    /// Holding a lease.
    Bound,
    /// Unicasting REQUEST to the server after T1.
    Renewing,
    /// Broadcasting REQUEST after T2.
    Rebinding,
    /// Gave up after the acquire timeout.
    Stopped,
}

#[derive(Debug, Clone)]
struct Offer {
    address: Ipv4Addr,
    server_id: Ipv4Addr,
}

#[derive(Debug, Clone)]
struct Retry {
    next_tx: Instant,
    /// Retransmissions so far.
    count: u32,
}

#[derive(Debug, Clone)]
enum State {
    Selecting {
        retry: Retry,
        deadline: Instant,
    },
    Requesting {
        offer: Offer,
        retry: Retry,
        deadline: Instant,
    },
    Bound {
        lease: Lease,
        since: Instant,
    },
    Renewing {
        lease: Lease,
        since: Instant,
        next_tx: Instant,
    },
    Rebinding {
        lease: Lease,
        since: Instant,
        next_tx: Instant,
    },
    Stopped,
}

/// Requests in REQUESTING before starting over (RFC 2131 §4.4.1 leaves the number to us;
/// 4+8+16+32 s is about a minute).
const MAX_REQUESTS: u32 = 4;
/// The options a boot client asks for (55).
const PARAMETERS: [u8; 13] = [
    code::SUBNET_MASK,
    code::ROUTER,
    code::DNS,
    code::HOST_NAME,
    code::DOMAIN_NAME,
    code::ROOT_PATH,
    code::VENDOR_SPECIFIC,
    code::LEASE_TIME,
    code::SERVER_ID,
    code::RENEWAL_TIME,
    code::REBINDING_TIME,
    code::IPXE,
    code::ISCSI_INITIATOR_IQN,
];

/// The DHCP client.
#[derive(Debug, Clone)]
pub struct Client {
    cfg: Config,
    state: State,
    xid: u32,
    rng: u64,
    /// When the current exchange began (for `secs`).
    began: Instant,
}

impl Client {
    /// A client that starts selecting at `now`.
    pub fn new(cfg: Config, now: Instant) -> Self {
        let mut c = Self {
            rng: cfg.seed | 1,
            cfg,
            state: State::Stopped,
            xid: 0,
            began: now,
        };
        c.restart(now);
        c
    }

    /// Starts over from DISCOVER (after [`Event::TimedOut`], or to force a new lease).
    pub fn restart(&mut self, now: Instant) {
        self.select(now, now + self.cfg.acquire_timeout);
    }

    /// A new exchange: a fresh xid, DISCOVER now.
    fn select(&mut self, now: Instant, deadline: Instant) {
        self.xid = self.random() as u32;
        self.began = now;
        self.state = State::Selecting {
            retry: Retry {
                next_tx: now,
                count: 0,
            },
            deadline,
        };
    }

    /// Where the client is.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Selecting { .. } => Phase::Selecting,
            State::Requesting { .. } => Phase::Requesting,
            State::Bound { .. } => Phase::Bound,
            State::Renewing { .. } => Phase::Renewing,
            State::Rebinding { .. } => Phase::Rebinding,
            State::Stopped => Phase::Stopped,
        }
    }

    /// The current lease, while there is one.
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound { lease, .. }
            | State::Renewing { lease, .. }
            | State::Rebinding { lease, .. } => Some(lease),
            _ => None,
        }
    }

    /// The transaction id of the exchange in progress.
    pub fn xid(&self) -> u32 {
        self.xid
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: no floating point, no allocation; quality is ample for xids and jitter.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// RFC 2131 §4.1: 4 s doubling to 64 s, each ±1 s.
    fn backoff(&mut self, retransmissions: u32) -> Duration {
        let base = 4000u64 << retransmissions.min(4);
        let jitter = self.random() % 2001; // 0..=2000
        Duration::from_millis(base + jitter - 1000)
    }

    /// The next time [`Client::handle_timeout`] or [`Client::poll_transmit`] has work.
    pub fn poll_at(&self) -> Option<Instant> {
        match &self.state {
            State::Selecting { retry, deadline }
            | State::Requesting {
                retry, deadline, ..
            } => Some(retry.next_tx.min(*deadline)),
            State::Bound { lease, since } => lease.renewal_time.map(|t1| *since + t1),
            State::Renewing {
                lease,
                since,
                next_tx,
            } => lease.rebinding_time.map(|t2| (*next_tx).min(*since + t2)),
            State::Rebinding {
                lease,
                since,
                next_tx,
            } => lease.lease_time.map(|t| (*next_tx).min(*since + t)),
            State::Stopped => None,
        }
    }

    /// Moves on with time: timeouts, T1, T2, expiry.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Event> {
        enum Next {
            Stop,
            Renew(Lease, Instant),
            Rebind(Lease, Instant),
            Expire(Ipv4Addr),
        }
        let due = |since: Instant, t: Option<Duration>| t.is_some_and(|t| now >= since + t);
        let next = match &self.state {
            State::Selecting { deadline, .. } | State::Requesting { deadline, .. }
                if now >= *deadline =>
            {
                Next::Stop
            }
            State::Bound { lease, since } if due(*since, lease.renewal_time) => {
                Next::Renew(lease.clone(), *since)
            }
            State::Renewing { lease, since, .. } if due(*since, lease.rebinding_time) => {
                Next::Rebind(lease.clone(), *since)
            }
            State::Rebinding { lease, since, .. } if due(*since, lease.lease_time) => {
                Next::Expire(lease.address)
            }
            _ => return None,
        };
        match next {
            Next::Stop => {
                log::warn!(
                    "DHCP: no lease after {} s",
                    self.cfg.acquire_timeout.as_secs()
                );
                self.state = State::Stopped;
                Some(Event::TimedOut)
            }
            Next::Renew(lease, since) => {
                self.xid = self.random() as u32;
                self.began = now;
                self.state = State::Renewing {
                    lease,
                    since,
                    next_tx: now,
                };
                None
            }
            Next::Rebind(lease, since) => {
                self.state = State::Rebinding {
                    lease,
                    since,
                    next_tx: now,
                };
                None
            }
            Next::Expire(address) => {
                log::warn!("DHCP: lease on {address} expired");
                self.restart(now);
                Some(Event::Lost)
            }
        }
    }

    /// A message to send now, if one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        // RFC 2131 §4.4.1: REQUEST unanswered after its retransmissions: start over with a
        // DISCOVER; the acquisition deadline still holds.
        if let State::Requesting {
            retry, deadline, ..
        } = &self.state
        {
            if retry.count >= MAX_REQUESTS && now >= retry.next_tx {
                let deadline = *deadline;
                self.select(now, deadline);
            }
        }
        let (mt, dst, src, ciaddr, requested, server) = match &self.state {
            State::Selecting { retry, .. } if now >= retry.next_tx => (
                MessageType::DISCOVER,
                Destination::Broadcast,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                None,
                None,
            ),
            State::Requesting { retry, offer, .. } if now >= retry.next_tx => (
                MessageType::REQUEST,
                Destination::Broadcast,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                Some(offer.address),
                Some(offer.server_id),
            ),
            State::Renewing { lease, next_tx, .. } if now >= *next_tx => (
                MessageType::REQUEST,
                Destination::Unicast(lease.server_id),
                lease.address,
                lease.address,
                None,
                None,
            ),
            State::Rebinding { lease, next_tx, .. } if now >= *next_tx => (
                MessageType::REQUEST,
                Destination::Broadcast,
                lease.address,
                lease.address,
                None,
                None,
            ),
            _ => return None,
        };
        let payload = self.message(now, mt, ciaddr, requested, server).emit();

        // Schedule the retransmission.
        let delay = match &self.state {
            State::Selecting { retry, .. } | State::Requesting { retry, .. } => {
                let n = retry.count;
                self.backoff(n)
            }
            _ => Duration::default(),
        };
        match &mut self.state {
            State::Selecting { retry, .. } | State::Requesting { retry, .. } => {
                retry.count += 1;
                retry.next_tx = now + delay;
            }
            // RFC 2131 §4.4.5: half the remaining time to T2 (or expiry), at least 60 s.
            State::Renewing {
                lease,
                since,
                next_tx,
            } => {
                let end = *since + lease.rebinding_time.unwrap_or_default();
                *next_tx = now + half_but_60s(end - now);
            }
            State::Rebinding {
                lease,
                since,
                next_tx,
            } => {
                let end = *since + lease.lease_time.unwrap_or_default();
                *next_tx = now + half_but_60s(end - now);
            }
            State::Stopped | State::Bound { .. } => {}
        }
        Some(Transmit { src, dst, payload })
    }

    fn message(
        &self,
        now: Instant,
        mt: MessageType,
        ciaddr: Ipv4Addr,
        requested: Option<Ipv4Addr>,
        server: Option<Ipv4Addr>,
    ) -> Message {
        let id = &self.cfg.identity;
        let (htype, hlen, chaddr) = self.cfg.form.hardware(id);
        Message {
            op: Op::BOOTREQUEST,
            htype,
            hlen,
            hops: 0,
            xid: self.xid,
            secs: (now - self.began).as_secs().min(u16::MAX as u64) as u16,
            // RFC 4390 §2.2: the server cannot unicast to an empty chaddr.
            flags: FLAG_BROADCAST,
            ciaddr,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            options: Options {
                message_type: Some(mt),
                requested_ip: requested,
                server_id: server,
                parameter_request_list: PARAMETERS.to_vec(),
                // IP and UDP headers take 28 bytes of the MTU.
                max_message_size: Some(self.cfg.mtu.saturating_sub(28).max(576)),
                client_id: Some(self.cfg.form.client_id(id)),
                ..Options::default()
            },
        }
    }

    /// Whether a reply is for us: ours by op, xid, and client id (when the server echoes it,
    /// RFC 6842) or chaddr (Ethernet form).
    fn is_ours(&self, m: &Message) -> bool {
        let id = &self.cfg.identity;
        if m.op != Op::BOOTREPLY || m.xid != self.xid {
            return false;
        }
        if let Some(cid) = &m.options.client_id {
            if *cid != self.cfg.form.client_id(id) {
                return false;
            }
        }
        let (_, hlen, chaddr) = self.cfg.form.hardware(id);
        hlen == 0 || m.chaddr[..hlen as usize] == chaddr[..hlen as usize]
    }

    /// Takes a UDP payload received on port 68.
    pub fn process(&mut self, now: Instant, payload: &[u8]) -> Option<Event> {
        let m = match Message::parse(payload) {
            Ok(m) => m,
            Err(e) => {
                log::debug!("DHCP: dropped a malformed message: {e}");
                return None;
            }
        };
        if !self.is_ours(&m) {
            log::debug!(
                "DHCP: dropped a message for another client (xid {:#x})",
                m.xid
            );
            return None;
        }
        let Some(mt) = m.message_type() else {
            log::debug!("DHCP: dropped a BOOTP reply without a message type");
            return None;
        };
        match (&self.state, mt) {
            (State::Selecting { deadline, .. }, MessageType::OFFER) => {
                let Some(server_id) = m.options.server_id else {
                    log::debug!("DHCP: dropped an OFFER without a server identifier");
                    return None;
                };
                if !usable(m.yiaddr) {
                    log::debug!("DHCP: dropped an OFFER of {}", m.yiaddr);
                    return None;
                }
                log::info!("DHCP: offer of {} from {server_id}", m.yiaddr);
                self.state = State::Requesting {
                    offer: Offer {
                        address: m.yiaddr,
                        server_id,
                    },
                    retry: Retry {
                        next_tx: now,
                        count: 0,
                    },
                    deadline: *deadline,
                };
                None
            }
            (State::Requesting { offer, .. }, MessageType::ACK) => {
                if m.yiaddr != offer.address {
                    log::debug!(
                        "DHCP: dropped an ACK for {} (asked for {})",
                        m.yiaddr,
                        offer.address
                    );
                    return None;
                }
                let lease = lease_from(&m, offer.server_id)?;
                log::info!("DHCP: bound to {}", lease.address);
                self.bind(now, lease.clone());
                Some(Event::Bound(lease))
            }
            (State::Renewing { lease, .. } | State::Rebinding { lease, .. }, MessageType::ACK) => {
                let server = m.options.server_id.unwrap_or(lease.server_id);
                let new = lease_from(&m, server)?;
                self.bind(now, new.clone());
                Some(Event::Renewed(new))
            }
            (State::Requesting { deadline, .. }, MessageType::NAK) => {
                log::info!("DHCP: server refused the offer; starting over");
                let deadline = *deadline;
                self.select(now, deadline);
                None
            }
            (State::Renewing { .. } | State::Rebinding { .. }, MessageType::NAK) => {
                log::warn!("DHCP: server refused to extend the lease; starting over");
                self.restart(now);
                Some(Event::Lost)
            }
            _ => {
                log::debug!("DHCP: ignored {mt} in {:?}", self.phase());
                None
            }
        }
    }

    fn bind(&mut self, now: Instant, lease: Lease) {
        self.state = State::Bound { lease, since: now };
    }
}

fn half_but_60s(remaining: Duration) -> Duration {
    Duration::from_millis((remaining.total_millis() / 2).max(60_000))
}

fn usable(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast())
}

/// The lease an ACK grants; `None` (dropped with a log) when it lacks what RFC 2131 Table 3
/// requires of an ACK.
fn lease_from(m: &Message, server_id: Ipv4Addr) -> Option<Lease> {
    let o = &m.options;
    if !usable(m.yiaddr) {
        log::debug!("DHCP: dropped an ACK of {}", m.yiaddr);
        return None;
    }
    let Some(secs) = o.lease_time else {
        log::debug!("DHCP: dropped an ACK without a lease time");
        return None;
    };
    let (lease_time, t1, t2) = if secs == u32::MAX {
        (None, None, None)
    } else {
        let l = secs as u64;
        // RFC 2131 §4.4.5: T1 = 0.5 and T2 = 0.875 of the lease unless given; keep T1 < T2 < L.
        let t2 = o.rebinding_time.map_or(l * 7 / 8, |t| (t as u64).min(l));
        let t1 = o.renewal_time.map_or(l / 2, |t| (t as u64).min(t2));
        (
            Some(Duration::from_secs(l)),
            Some(Duration::from_secs(t1)),
            Some(Duration::from_secs(t2)),
        )
    };
    Some(Lease {
        address: m.yiaddr,
        prefix_len: o.subnet_mask.map(|m| u32::from(m).leading_ones() as u8),
        routers: o.routers.clone(),
        dns_servers: o.dns_servers.clone(),
        host_name: o.host_name.clone(),
        domain_name: o.domain_name.clone(),
        root_path: o.root_path.clone(),
        initiator_iqn: o.iscsi_initiator_iqn.clone(),
        credentials: o.ipxe.clone(),
        vendor_specific: o.vendor_specific.clone(),
        server_id,
        relay: (!m.giaddr.is_unspecified()).then_some(m.giaddr),
        lease_time,
        renewal_time: t1,
        rebinding_time: t2,
    })
}
