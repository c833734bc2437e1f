//! The gateway: an IPoIB host on the simulated fabric that connects fabric clients to real
//! services on the host's loopback.
//!
//! - **DHCP relay agent** (RFC 2131 §4.1, RFC 4390 §2.2): a client's BOOTREQUEST (broadcast on
//!   the IPoIB group, or unicast to the server when renewing) gets `giaddr` and `hops` from
//!   [`ipoib::wire::dhcp::relay_request`] and is unicast from `giaddr:67` to the real server;
//!   the server's BOOTREPLY (sent to `giaddr:67`) goes back onto the fabric as a broadcast
//!   from the gateway's fabric address, port 67 → 68 (an IPoIB client has no `chaddr` to
//!   unicast to).
//! - **TCP forwarding**: smoltcp terminates each TCP connection to `address:port` on the
//!   fabric side; the gateway opens a `std::net::TcpStream` to the configured loopback service
//!   and splices the two, half-closes included. So a tgtd on 127.0.0.1:3260 appears at
//!   `address:3260` on the fabric.
//!
//! Nothing blocks: the std sockets are non-blocking and polled from [`Gateway::poll`]; only a
//! loopback connect is waited for, at most [`CONNECT_TIMEOUT`]. Use it inside
//! `isboot_tests::netns::run` so that every socket stays on a private loopback.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use ipoib::iface;
use ipoib::udp::{self, Datagram, DHCP_CLIENT_PORT, DHCP_SERVER_PORT};
use ipoib::wire::dhcp::relay_request;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use crate::iphost::{HostError, IpHost};
use hca_sim::{NodeId, Sim};

/// Longest wait for a loopback service to accept.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Relay hop limit (RFC 1542 §4.1.1 suggests a configurable maximum; 4 as in the tests).
pub const MAX_HOPS: u8 = 4;
/// TCP buffers: within `Interface::max_rx_window` of the default configuration (~94 KiB), so a
/// client's burst never overruns the gateway's receive slots.
const TCP_BUF: usize = 64 * 1024;
/// Listening sockets per forwarded port: a listen backlog. smoltcp answers a SYN with a reset
/// when no socket listens, and a listener becomes its connection until the next poll makes a
/// fresh one, so with a single listener every SYN after the first in the same round was
/// refused — the first bottleneck of a boot storm (`loader::storm`).
pub const BACKLOG: usize = 32;
/// Server replies waiting to be broadcast on the fabric, at most; and client requests waiting
/// to be relayed to the server.
const REPLY_QUEUE: usize = 4096;
const RELAY_QUEUE: usize = 4096;
/// Client requests relayed to the server per [`Gateway::poll`].
const REQUESTS_PER_ROUND: usize = 32;
/// Server replies broadcast on the fabric per [`Gateway::poll`].
const REPLIES_PER_ROUND: usize = 16;

/// The relay side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// The relay's address: `giaddr`, and where the server sends replies (port 67). A loopback
    /// address the server's configuration knows.
    pub giaddr: Ipv4Addr,
    /// The DHCP server.
    pub server: SocketAddr,
}

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The gateway's fabric address (the clients' router).
    pub address: Ipv4Addr,
    /// Prefix length of the fabric subnet.
    pub prefix: u8,
    /// DHCP relaying, if wanted.
    pub relay: Option<RelayConfig>,
    /// `(fabric port, loopback service)` pairs.
    pub forwards: Vec<(u16, SocketAddr)>,
    /// The IPoIB interface.
    pub ipoib: iface::Config,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Client requests relayed to the server.
    pub dhcp_requests: u64,
    /// Server replies relayed to the fabric.
    pub dhcp_replies: u64,
    /// DHCP datagrams not relayed (not a request, too many hops, wrong relay).
    pub dhcp_dropped: u64,
    /// TCP connections accepted on the fabric side.
    pub connections: u64,
    /// Connections whose service refused or did not answer.
    pub connect_failures: u64,
    /// Bytes from the fabric to services.
    pub bytes_to_services: u64,
    /// Bytes from services to the fabric.
    pub bytes_to_fabric: u64,
}

#[derive(Debug)]
struct Listener {
    port: u16,
    target: SocketAddr,
    handles: Vec<SocketHandle>,
}

#[derive(Debug)]
struct Conn {
    handle: SocketHandle,
    stream: TcpStream,
    to_service: Vec<u8>,
    to_fabric: Vec<u8>,
    service_eof: bool,
    service_shut: bool,
    fabric_closed: bool,
}

/// The gateway node.
#[derive(Debug)]
pub struct Gateway {
    /// The host underneath (its smoltcp sockets include the gateway's listeners).
    pub host: IpHost,
    cfg: GatewayConfig,
    relay: Option<UdpSocket>,
    listeners: Vec<Listener>,
    conns: Vec<Conn>,
    /// Server replies read from the relay socket, not yet on the fabric.
    replies: VecDeque<Vec<u8>>,
    /// Client requests (with `giaddr` set) not yet sent to the server.
    requests: VecDeque<Vec<u8>>,
    stats: GatewayStats,
}

/// Why the gateway did not start.
#[derive(Debug)]
pub enum GatewayError {
    /// The fabric side.
    Host(HostError),
    /// The relay socket.
    Io(io::Error),
    /// The fabric's capture file could not be created ([`crate::FabricConfig::pcap`]).
    Capture(io::Error),
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayError::Host(e) => write!(f, "gateway fabric side: {e}"),
            GatewayError::Io(e) => write!(f, "gateway relay socket: {e}"),
            GatewayError::Capture(e) => write!(f, "capture: {e}"),
        }
    }
}

impl std::error::Error for GatewayError {}

fn listen_socket(port: u16) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUF]),
        tcp::SocketBuffer::new(vec![0; TCP_BUF]),
    );
    s.set_nagle_enabled(false);
    if let Err(e) = s.listen(port) {
        log::warn!("gateway: listen on {port}: {e}");
    }
    s
}

impl Gateway {
    /// Brings the gateway up on `node`: IPoIB, its address, the relay socket and listeners.
    pub fn start(sim: &Sim, node: NodeId, cfg: GatewayConfig) -> Result<Self, GatewayError> {
        let mut host = IpHost::up(sim, node, cfg.ipoib).map_err(GatewayError::Host)?;
        host.set_ipv4(cfg.address, cfg.prefix, None);
        let relay = match cfg.relay {
            Some(r) => {
                let s = UdpSocket::bind((r.giaddr, DHCP_SERVER_PORT)).map_err(GatewayError::Io)?;
                s.set_nonblocking(true).map_err(GatewayError::Io)?;
                Some(s)
            }
            None => None,
        };
        let listeners = cfg
            .forwards
            .iter()
            .map(|&(port, target)| Listener {
                port,
                target,
                handles: (0..BACKLOG)
                    .map(|_| host.sockets.add(listen_socket(port)))
                    .collect(),
            })
            .collect();
        Ok(Self {
            host,
            cfg,
            relay,
            listeners,
            conns: Vec::new(),
            replies: VecDeque::new(),
            requests: VecDeque::new(),
            stats: GatewayStats::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> GatewayStats {
        self.stats
    }

    /// Open spliced connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// One round: the fabric side (relay interception first), server replies, new
    /// connections, and the splices. Never blocks beyond a loopback connect.
    pub fn poll(&mut self) {
        let server = self.cfg.relay;
        let stats = &mut self.stats;
        let requests = &mut self.requests;
        self.host.poll_with(|_, p| {
            let Some(d) = udp::parse(p).filter(|d| d.dst_port == DHCP_SERVER_PORT) else {
                return true;
            };
            if let Some(r) = server {
                let mut msg = d.payload.to_vec();
                if relay_request(&mut msg, r.giaddr, MAX_HOPS) && requests.len() < RELAY_QUEUE {
                    requests.push_back(msg);
                } else {
                    stats.dhcp_dropped += 1;
                }
            } else {
                stats.dhcp_dropped += 1;
            }
            false
        });
        self.relay_requests();
        self.relay_replies();
        self.accept();
        self.splice();
        // Send what the splices queued without waiting for the next round.
        self.host.poll();
    }

    /// Sends queued client requests to the server, at most [`REQUESTS_PER_ROUND`] a round:
    /// the whole fabric's DISCOVERs of a storm arrive in the same round, and sent at once they
    /// overflowed the server's socket buffer (Linux's default, 208 KiB: the namespace's UDP
    /// `RcvbufErrors`), so that a third of 256 nodes retransmitted 4 s later (RFC 2131 §4.1).
    fn relay_requests(&mut self) {
        let (Some(sock), Some(r)) = (self.relay.as_ref(), self.cfg.relay) else {
            return;
        };
        for _ in 0..REQUESTS_PER_ROUND {
            let Some(msg) = self.requests.pop_front() else {
                return;
            };
            match sock.send_to(&msg, r.server) {
                Ok(_) => self.stats.dhcp_requests += 1,
                Err(e) => {
                    log::debug!("gateway: relay send: {e}");
                    self.stats.dhcp_dropped += 1;
                }
            }
        }
    }

    fn relay_replies(&mut self) {
        let (Some(sock), Some(r)) = (self.relay.as_ref(), self.cfg.relay) else {
            return;
        };
        // Everything the server sent is taken off the socket at once (a burst of answers to a
        // storm's DISCOVERs overflowed its receive buffer while the gateway read 16 a round),
        // into a bounded queue.
        let mut buf = [0u8; 1500];
        loop {
            let n = match sock.recv_from(&mut buf) {
                Ok((n, _from)) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::debug!("gateway: relay recv: {e}");
                    break;
                }
            };
            let m = &buf[..n];
            // A BOOTREPLY for our giaddr (RFC 2131 §4.1); anything else is not ours to relay.
            if n < 240 || m[0] != 2 || m[24..28] != r.giaddr.octets() {
                self.stats.dhcp_dropped += 1;
                continue;
            }
            if self.replies.len() >= REPLY_QUEUE {
                self.stats.dhcp_dropped += 1;
                continue;
            }
            self.replies.push_back(m.to_vec());
        }
        // Onto the fabric at most 16 a round: each is a broadcast every node receives, and a
        // booting node's receive ring is a ROM's 64 slots.
        for _ in 0..REPLIES_PER_ROUND {
            let Some(m) = self.replies.pop_front() else {
                return;
            };
            let Some(pkt) = udp::emit(&Datagram {
                src: self.cfg.address,
                dst: Ipv4Addr::BROADCAST,
                src_port: DHCP_SERVER_PORT,
                dst_port: DHCP_CLIENT_PORT,
                payload: &m,
            }) else {
                continue;
            };
            let now = self.host.now();
            match self.host.ipoib.send_ipv4(&mut self.host.dev, now, &pkt) {
                Ok(()) => self.stats.dhcp_replies += 1,
                Err(e) => {
                    log::debug!("gateway: reply not relayed: {e}");
                    self.stats.dhcp_dropped += 1;
                }
            }
        }
    }

    fn accept(&mut self) {
        for l in &mut self.listeners {
            for slot in 0..l.handles.len() {
                let s = self.host.sockets.get_mut::<tcp::Socket>(l.handles[slot]);
                if !s.is_active() {
                    if !s.is_open() {
                        let _ = s.listen(l.port);
                    }
                    continue;
                }
                // A SYN arrived: this socket becomes the connection, a fresh one listens.
                let handle = l.handles[slot];
                l.handles[slot] = self.host.sockets.add(listen_socket(l.port));
                self.stats.connections += 1;
                match TcpStream::connect_timeout(&l.target, CONNECT_TIMEOUT)
                    .and_then(|s| s.set_nonblocking(true).map(|_| s))
                {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        self.conns.push(Conn {
                            handle,
                            stream,
                            to_service: Vec::new(),
                            to_fabric: Vec::new(),
                            service_eof: false,
                            service_shut: false,
                            fabric_closed: false,
                        });
                    }
                    Err(e) => {
                        log::debug!("gateway: {} refused: {e}", l.target);
                        self.stats.connect_failures += 1;
                        self.host.sockets.get_mut::<tcp::Socket>(handle).abort();
                    }
                }
            }
        }
    }

    fn splice(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        let sockets = &mut self.host.sockets;
        let stats = &mut self.stats;
        self.conns.retain_mut(|c| {
            let s = sockets.get_mut::<tcp::Socket>(c.handle);
            // Fabric → service.
            if c.to_service.is_empty() && s.can_recv() {
                let _ = s.recv(|b| {
                    c.to_service.extend_from_slice(b);
                    (b.len(), ())
                });
            }
            while !c.to_service.is_empty() {
                match c.stream.write(&c.to_service) {
                    Ok(0) => break,
                    Ok(n) => {
                        stats.bytes_to_services += n as u64;
                        c.to_service.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        s.abort();
                        return false;
                    }
                }
            }
            if !s.may_recv()
                && c.to_service.is_empty()
                && !c.service_shut
                && s.state() != tcp::State::SynReceived
            {
                let _ = c.stream.shutdown(Shutdown::Write);
                c.service_shut = true;
            }
            // Service → fabric.
            if c.to_fabric.is_empty() && !c.service_eof {
                let room = s.send_capacity() - s.send_queue();
                if room > 0 {
                    let n = room.min(buf.len());
                    match c.stream.read(&mut buf[..n]) {
                        Ok(0) => c.service_eof = true,
                        Ok(n) => c.to_fabric.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => {
                            s.abort();
                            return false;
                        }
                    }
                }
            }
            if !c.to_fabric.is_empty() && s.can_send() {
                if let Ok(n) = s.send_slice(&c.to_fabric) {
                    stats.bytes_to_fabric += n as u64;
                    c.to_fabric.drain(..n);
                }
            }
            if c.service_eof && c.to_fabric.is_empty() && !c.fabric_closed {
                s.close();
                c.fabric_closed = true;
            }
            // Done when the fabric side is closed (or reset) and nothing is left to write.
            let done = matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait)
                && c.to_service.is_empty();
            if done {
                let _ = c.stream.shutdown(Shutdown::Both);
            }
            !done
        });
    }
}
