//! The iSCSI initiator's transport and clock on a simulated node: a smoltcp TCP socket on the
//! booting node's IPoIB interface, and the simulator's clock. Every wait is bounded twice: in
//! simulated time by the caller's timeout, and in real time by [`REAL_TIME_LIMIT`].

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::Instant as StdInstant;
use std::vec;

use iscsi_initiator::session::Portal;
use iscsi_initiator::time::{Duration, DurationExt, Instant};
use iscsi_initiator::transport::{Clock, Received, Transport};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;

use crate::world::{World, REAL_TIME_LIMIT};

/// The initiator's byte stream: a smoltcp TCP socket on the booting node.
#[derive(Debug)]
pub struct SimTransport {
    world: Rc<RefCell<World>>,
    sock: Option<SocketHandle>,
    next_port: u16,
}

/// The initiator's clock: the simulator's.
#[derive(Debug)]
pub struct SimClock {
    world: Rc<RefCell<World>>,
}

impl SimClock {
    /// The clock of `world`.
    pub fn new(world: Rc<RefCell<World>>) -> Self {
        Self { world }
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        self.world.borrow().now()
    }

    fn sleep(&self, d: Duration) {
        let mut w = self.world.borrow_mut();
        let end = w.now().total_millis() + d.total_millis();
        let real = StdInstant::now() + REAL_TIME_LIMIT;
        while w.now().total_millis() < end && StdInstant::now() < real {
            w.step();
        }
    }
}

/// TCP buffers within the IPoIB interface's receive window.
const TCP_BUF: usize = 64 * 1024;

impl SimTransport {
    /// A transport on `world`'s booting node (its host stack must be up before `connect`).
    pub fn new(world: Rc<RefCell<World>>) -> Self {
        Self {
            world,
            sock: None,
            next_port: 49152,
        }
    }

    fn socket(w: &mut World, h: SocketHandle) -> Option<&mut tcp::Socket<'static>> {
        w.host
            .as_mut()
            .map(|host| host.sockets.get_mut::<tcp::Socket>(h))
    }
}

impl Transport for SimTransport {
    fn connect(&mut self, portal: &Portal, timeout: Duration) -> bool {
        self.close();
        let Ok(ip) = portal.host.parse::<Ipv4Addr>() else {
            log::warn!("loader: portal {} is not an IPv4 address", portal.host);
            return false;
        };
        let mut w = self.world.borrow_mut();
        let Some(host) = w.host.as_mut() else {
            return false;
        };
        let sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUF]),
            tcp::SocketBuffer::new(vec![0; TCP_BUF]),
        );
        let h = host.sockets.add(sock);
        // The transport contract: no Nagle (a small PDU must not wait for an ACK).
        host.sockets
            .get_mut::<tcp::Socket>(h)
            .set_nagle_enabled(false);
        self.next_port = self.next_port.wrapping_add(1).max(49152);
        let cx = host.smol.context();
        if host
            .sockets
            .get_mut::<tcp::Socket>(h)
            .connect(cx, (IpAddress::Ipv4(ip), portal.port), self.next_port)
            .is_err()
        {
            host.sockets.remove(h);
            return false;
        }
        self.sock = Some(h);
        let end = w.now().total_millis() + timeout.total_millis();
        let real = StdInstant::now() + REAL_TIME_LIMIT;
        loop {
            w.step();
            let Some(s) = Self::socket(&mut w, h) else {
                return false;
            };
            match s.state() {
                tcp::State::Established => return true,
                tcp::State::Closed => return false,
                _ => {}
            }
            if w.now().total_millis() >= end || StdInstant::now() >= real {
                return false;
            }
        }
    }

    fn close(&mut self) {
        if let Some(h) = self.sock.take() {
            let mut w = self.world.borrow_mut();
            if let Some(host) = w.host.as_mut() {
                host.sockets.get_mut::<tcp::Socket>(h).abort();
                host.poll();
                host.sockets.remove(h);
            }
        }
    }

    fn send(&mut self, data: &[u8]) -> Option<usize> {
        let h = self.sock?;
        let mut w = self.world.borrow_mut();
        let s = Self::socket(&mut w, h)?;
        if !s.may_send() {
            return None;
        }
        let n = s.send_slice(data).ok()?;
        if n == 0 {
            // The send buffer is full: let the fabric drain it.
            w.step();
        }
        Some(n)
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Received {
        let Some(h) = self.sock else {
            return Received::Closed;
        };
        let mut w = self.world.borrow_mut();
        let end = w.now().total_millis() + timeout.total_millis();
        let real = StdInstant::now() + REAL_TIME_LIMIT;
        loop {
            let Some(s) = Self::socket(&mut w, h) else {
                return Received::Closed;
            };
            if s.can_recv() {
                return match s.recv_slice(buf) {
                    Ok(n) => Received::Data(n),
                    Err(_) => Received::Closed,
                };
            }
            if !s.may_recv() {
                return Received::Closed;
            }
            if w.now().total_millis() >= end || StdInstant::now() >= real {
                return Received::Timeout;
            }
            w.step();
        }
    }
}
