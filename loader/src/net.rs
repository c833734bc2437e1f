//! The ROM's network below iSCSI: what the flow needs of it once a port is up ([`Network`]:
//! DHCP beside the IP stack, the address, and the iSCSI initiator's [`Transport`] and
//! [`Clock`]), and the implementation every firmware so far uses ([`SmolNet`]): a [`Link`]
//! (IPoIB over the HCA verbs, or Ethernet frames through a firmware NIC) with smoltcp's TCP/IP
//! over it in a [`Stack`]. A firmware with a TCP of its own implements [`Network`] on it and
//! runs the same flow ([`crate::flow::boot_on`]).
//!
//! The firmware gives the time and the waiting ([`Env`]): the simulator steps its fabric, a
//! UEFI image stalls. Every wait here is bounded by the caller's timeout on that clock.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::net::Ipv4Addr;

use clock::{Duration, Instant};
use ibft::{MacAddr, PciAddress};
use ipoib::dhcp::{ClientIdForm, Identity, Transmit};
use iscsi_initiator::session::Portal;
use iscsi_initiator::transport::{Clock, Received, Transport};
use smoltcp::iface::{Config as SmolConfig, Interface as SmolIface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

/// The firmware's clock and its way of letting time pass.
pub trait Env {
    /// Now, on a monotonic clock.
    fn now(&self) -> Instant;
    /// Let up to `max` pass (at least a little: the simulator steps its fabric by 1 ms, a
    /// firmware stalls a few microseconds) so that what is awaited can happen.
    fn idle(&mut self, max: Duration);
}

/// Why a link could not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// The IPoIB interface refused the packet.
    Ipoib(ipoib::iface::Error),
    /// The datagram does not fit in one packet.
    TooLong,
    /// The NIC refused the frame (the firmware's status, in words).
    Device(&'static str),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Ipoib(e) => write!(f, "IPoIB: {e}"),
            LinkError::TooLong => f.write_str("datagram too long"),
            LinkError::Device(e) => write!(f, "NIC: {e}"),
        }
    }
}

/// The port the ROM boots through, as the iBFT names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NicInfo {
    /// The NIC's (or HCA's) PCI function.
    pub pci: PciAddress,
    /// Port number (1-based; 1 for an Ethernet NIC).
    pub port: u8,
    /// The port GUID (for Ethernet, the EUI-64 made from the MAC address).
    pub guid: [u8; 8],
    /// The MAC the iBFT's NIC structure carries.
    pub mac: MacAddr,
    /// Where that MAC comes from, for the console.
    pub mac_origin: &'static str,
}

/// One network port below IP.
pub trait Link {
    /// smoltcp's view of the link for one poll.
    type Device<'a>: smoltcp::phy::Device
    where
        Self: 'a;
    /// The device for a poll at `now`.
    fn device(&mut self, now: Instant) -> Self::Device<'_>;
    /// smoltcp's hardware address (`Ip` for IPoIB, the MAC for Ethernet).
    fn hardware_addr(&self) -> HardwareAddress;
    /// Link-level work (IPoIB: events, ARP and path records): receive what has arrived and
    /// put DHCP client datagrams aside for [`Link::take_dhcp`].
    fn poll(&mut self, now: Instant);
    /// The next DHCP message received (the UDP payload of a datagram to port 68).
    fn take_dhcp(&mut self) -> Option<Vec<u8>>;
    /// Sends a DHCP client message (UDP 68 to 67) as the link broadcasts it.
    fn send_dhcp(&mut self, now: Instant, tx: &Transmit) -> Result<(), LinkError>;
    /// Configures the link's own address (IPoIB routes and ARPs itself).
    fn set_ipv4(&mut self, now: Instant, addr: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>);
    /// Who the port is, for DHCP's client identifier.
    fn identity(&self) -> Identity;
    /// The client-id form DHCP uses here, given the configured one (Ethernet has one form).
    fn dhcp_form(&self, configured: ClientIdForm) -> ClientIdForm;
    /// The IP MTU.
    fn mtu(&self) -> usize;
    /// The largest TCP receive window the link absorbs back to back.
    fn tcp_window(&self) -> usize;
    /// What the iBFT says of the port.
    fn nic(&self) -> NicInfo;
}

/// smoltcp over a link, on the firmware's clock.
pub struct Stack<L: Link, E: Env> {
    /// The link.
    pub link: L,
    /// The firmware.
    pub env: E,
    smol: SmolIface,
    sockets: SocketSet<'static>,
}

impl<L: Link, E: Env> fmt::Debug for Stack<L, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack").finish_non_exhaustive()
    }
}

/// smoltcp's instant for `now` (whole milliseconds).
fn smol_now(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_millis(i64::try_from(now.total_millis()).unwrap_or(i64::MAX))
}

impl<L: Link, E: Env> Stack<L, E> {
    /// A stack on `link` with no address yet. `seed` varies smoltcp's initial sequence
    /// numbers and ports from boot to boot.
    pub fn new(mut link: L, env: E, seed: u64) -> Self {
        let mut cfg = SmolConfig::new(link.hardware_addr());
        cfg.random_seed = seed;
        let now = env.now();
        let smol = SmolIface::new(cfg, &mut link.device(now), smol_now(now));
        Self {
            link,
            env,
            smol,
            sockets: SocketSet::new(vec![]),
        }
    }

    /// Now.
    pub fn now(&self) -> Instant {
        self.env.now()
    }

    /// One round of work: the link, then smoltcp.
    pub fn poll(&mut self) {
        let now = self.env.now();
        self.link.poll(now);
        let mut dev = self.link.device(now);
        self.smol.poll(smol_now(now), &mut dev, &mut self.sockets);
    }

    /// [`Stack::poll`], then let up to `max` pass.
    pub fn step(&mut self, max: Duration) {
        self.poll();
        self.env.idle(max);
    }

    /// Configures the address on the link and in smoltcp.
    pub fn set_ipv4(&mut self, addr: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) {
        let now = self.env.now();
        self.link.set_ipv4(now, addr, prefix, gateway);
        self.smol.update_ip_addrs(|a| {
            a.clear();
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(addr), prefix));
        });
        self.smol.routes_mut().remove_default_ipv4_route();
        if let Some(gw) = gateway {
            let _ = self.smol.routes_mut().add_default_ipv4_route(gw);
        }
    }
}

/// A stack shared by the flow, the transport and the clock.
pub type Shared<L, E> = Rc<RefCell<Stack<L, E>>>;

/// The network the flow runs on once a port is up.
pub trait Network {
    /// The initiator's byte stream.
    type Transport: Transport;
    /// The initiator's clock.
    type Clock: Clock;
    /// Now, on the firmware's clock.
    fn now(&self) -> Instant;
    /// One round of work: receive, and run the stack's timers.
    fn poll(&mut self);
    /// Let up to `max` pass.
    fn idle(&mut self, max: Duration);
    /// The next DHCP message received (the UDP payload of a datagram to port 68).
    fn take_dhcp(&mut self) -> Option<Vec<u8>>;
    /// Sends a DHCP client message (UDP 68 to 67).
    fn send_dhcp(&mut self, tx: &Transmit) -> Result<(), LinkError>;
    /// Configures the address the lease gave.
    fn set_ipv4(&mut self, addr: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>);
    /// Who the port is, for DHCP's client identifier.
    fn identity(&self) -> Identity;
    /// The client-id form DHCP uses here, given the configured one.
    fn dhcp_form(&self, configured: ClientIdForm) -> ClientIdForm;
    /// The IP MTU.
    fn mtu(&self) -> usize;
    /// What the iBFT says of the port.
    fn nic(&self) -> NicInfo;
    /// A transport for the initiator; `first_port` is the first local TCP port it uses.
    fn transport(&self, first_port: u16) -> Self::Transport;
    /// The initiator's clock.
    fn clock(&self) -> Self::Clock;
}

/// [`Network`] over a [`Link`] with smoltcp: the stack shared by the flow, the initiator's
/// transport and its clock.
pub struct SmolNet<L: Link, E: Env>(pub Shared<L, E>);

impl<L: Link, E: Env> fmt::Debug for SmolNet<L, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SmolNet")
    }
}

impl<L: Link, E: Env> SmolNet<L, E> {
    /// smoltcp on `link` with the firmware `env` (`seed` varies smoltcp's initial sequence
    /// numbers and ports from boot to boot).
    pub fn new(link: L, env: E, seed: u64) -> Self {
        Self(Rc::new(RefCell::new(Stack::new(link, env, seed))))
    }
}

impl<L: Link, E: Env> Network for SmolNet<L, E> {
    type Transport = NetTransport<L, E>;
    type Clock = NetClock<L, E>;

    fn now(&self) -> Instant {
        self.0.borrow().now()
    }

    fn poll(&mut self) {
        self.0.borrow_mut().poll();
    }

    fn idle(&mut self, max: Duration) {
        self.0.borrow_mut().env.idle(max);
    }

    fn take_dhcp(&mut self) -> Option<Vec<u8>> {
        self.0.borrow_mut().link.take_dhcp()
    }

    fn send_dhcp(&mut self, tx: &Transmit) -> Result<(), LinkError> {
        let mut s = self.0.borrow_mut();
        let now = s.now();
        s.link.send_dhcp(now, tx)
    }

    fn set_ipv4(&mut self, addr: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) {
        self.0.borrow_mut().set_ipv4(addr, prefix, gateway);
    }

    fn identity(&self) -> Identity {
        self.0.borrow().link.identity()
    }

    fn dhcp_form(&self, configured: ClientIdForm) -> ClientIdForm {
        self.0.borrow().link.dhcp_form(configured)
    }

    fn mtu(&self) -> usize {
        self.0.borrow().link.mtu()
    }

    fn nic(&self) -> NicInfo {
        self.0.borrow().link.nic()
    }

    fn transport(&self, first_port: u16) -> NetTransport<L, E> {
        NetTransport::new(self.0.clone(), first_port)
    }

    fn clock(&self) -> NetClock<L, E> {
        NetClock::new(self.0.clone())
    }
}

/// The initiator's clock: the firmware's, letting the stack work while it waits.
pub struct NetClock<L: Link, E: Env> {
    stack: Shared<L, E>,
}

impl<L: Link, E: Env> fmt::Debug for NetClock<L, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NetClock")
    }
}

impl<L: Link, E: Env> NetClock<L, E> {
    /// The clock of `stack`.
    pub fn new(stack: Shared<L, E>) -> Self {
        Self { stack }
    }
}

impl<L: Link, E: Env> Clock for NetClock<L, E> {
    fn now(&self) -> Instant {
        self.stack.borrow().now()
    }

    fn sleep(&self, d: Duration) {
        let mut s = self.stack.borrow_mut();
        let end = s.now() + d;
        while s.now() < end {
            let left = end.saturating_since(s.now());
            s.step(left.min(Duration::from_millis(1)));
        }
    }
}

/// The initiator's byte stream: a smoltcp TCP socket on the stack.
pub struct NetTransport<L: Link, E: Env> {
    stack: Shared<L, E>,
    sock: Option<SocketHandle>,
    next_port: u16,
}

impl<L: Link, E: Env> fmt::Debug for NetTransport<L, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetTransport")
            .field("connected", &self.sock.is_some())
            .finish()
    }
}

/// TCP buffers, at most (the link may want less: [`Link::tcp_window`]).
const TCP_BUF: usize = 64 * 1024;

impl<L: Link, E: Env> NetTransport<L, E> {
    /// A transport on `stack` (its address must be set before `connect`). `first_port`
    /// is the first local port it uses (vary it from boot to boot).
    pub fn new(stack: Shared<L, E>, first_port: u16) -> Self {
        Self {
            stack,
            sock: None,
            next_port: first_port.max(49152),
        }
    }
}

impl<L: Link, E: Env> Transport for NetTransport<L, E> {
    fn connect(&mut self, portal: &Portal, timeout: Duration) -> bool {
        self.close();
        let Ok(ip) = portal.host.parse::<Ipv4Addr>() else {
            log::warn!("loader: portal {} is not an IPv4 address", portal.host);
            return false;
        };
        let mut s = self.stack.borrow_mut();
        let buf = TCP_BUF.min(s.link.tcp_window()).max(4096);
        let sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buf]),
            tcp::SocketBuffer::new(vec![0; TCP_BUF]),
        );
        let st = &mut *s;
        let h = st.sockets.add(sock);
        // The transport contract: no Nagle (a small PDU must not wait for an ACK).
        st.sockets
            .get_mut::<tcp::Socket>(h)
            .set_nagle_enabled(false);
        self.next_port = self.next_port.checked_add(1).unwrap_or(49152).max(49152);
        let cx = st.smol.context();
        if st
            .sockets
            .get_mut::<tcp::Socket>(h)
            .connect(cx, (IpAddress::Ipv4(ip), portal.port), self.next_port)
            .is_err()
        {
            st.sockets.remove(h);
            return false;
        }
        self.sock = Some(h);
        let end = st.now() + timeout;
        loop {
            st.step(Duration::from_millis(1));
            match st.sockets.get::<tcp::Socket>(h).state() {
                tcp::State::Established => return true,
                tcp::State::Closed => return false,
                _ => {}
            }
            if st.now() >= end {
                return false;
            }
        }
    }

    fn close(&mut self) {
        if let Some(h) = self.sock.take() {
            let mut s = self.stack.borrow_mut();
            s.sockets.get_mut::<tcp::Socket>(h).abort();
            s.poll();
            s.sockets.remove(h);
        }
    }

    fn send(&mut self, data: &[u8]) -> Option<usize> {
        let h = self.sock?;
        let mut s = self.stack.borrow_mut();
        let sock = s.sockets.get_mut::<tcp::Socket>(h);
        if !sock.may_send() {
            return None;
        }
        let n = sock.send_slice(data).ok()?;
        if n == 0 {
            // The send buffer is full: let the link drain it.
            s.step(Duration::from_millis(1));
        } else {
            s.poll();
        }
        Some(n)
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Received {
        let Some(h) = self.sock else {
            return Received::Closed;
        };
        let mut s = self.stack.borrow_mut();
        let end = s.now() + timeout;
        loop {
            s.poll();
            let sock = s.sockets.get_mut::<tcp::Socket>(h);
            if sock.can_recv() {
                return match sock.recv_slice(buf) {
                    Ok(n) => Received::Data(n),
                    Err(_) => Received::Closed,
                };
            }
            if !sock.may_recv() {
                return Received::Closed;
            }
            if s.now() >= end {
                return Received::Timeout;
            }
            let left = end.saturating_since(s.now());
            s.env.idle(left.min(Duration::from_millis(1)));
        }
    }
}
