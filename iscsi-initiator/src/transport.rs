//! The seam between the sans-IO session and a byte stream, and a blocking driver over it.
//!
//! The kernel (sockets), the ROM (smoltcp) and the host (`std::net::TcpStream`, feature
//! `std`) implement [`Transport`] and [`Clock`]; [`Client`] runs a [`Session`] on them.

use alloc::vec;
use alloc::vec::Vec;

use crate::scsi::{Cdb, Lun};
use crate::session::{
    CommandError, Completion, Direction, Portal, ScsiOutcome, Session, SessionError, SubmitError,
    TaskHandle, TransportAction, PLAN_AHEAD,
};
use crate::time::{Duration, Instant};

/// The result of a receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// This many bytes arrived.
    Data(usize),
    /// Nothing arrived within the timeout.
    Timeout,
    /// The peer closed the connection or it broke.
    Closed,
}

/// What the driver knows about a receive, for a transport that can use it. Ignoring it is
/// always correct: [`Transport::recv_hinted`] defaults to [`Transport::recv`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvHint {
    /// The driver cannot make progress with fewer bytes than this: it is the rest of a data
    /// segment whose header has arrived, so the target is already sending it. The transport
    /// may sleep until that much is there instead of waking for every arriving TCP segment
    /// (`SO_RCVLOWAT` on Linux and FreeBSD, `sb_lowat` in the FreeBSD kernel). At most 1 means
    /// any data will do. Never larger than the buffer.
    pub min: usize,
    /// The answer is expected within microseconds and no other command is waiting for the CPU
    /// (at most one outstanding): the transport may poll for up to this many microseconds
    /// before it sleeps, trading CPU for the wake-up latency. 0 (the default): do not poll.
    pub busy_poll_us: u32,
    /// The bytes the driver expects soon, beyond `min`: the Data-In PDUs a plan expects
    /// ([`Transport::recv_vectored`]; the target is sending that task's data), or a batch of
    /// answers to the many commands the target has. Not guaranteed: a transport may wait up
    /// to `likely_wait` for this many (one wake-up and one receive for all of them), then
    /// settles for `min`. 0 or at most `min`: no such expectation.
    pub likely: usize,
    /// How long a wait for `likely` bytes may last.
    pub likely_wait: Duration,
    /// The target owes an answer ([`Session::answer_due`]): data is coming, so the transport
    /// may block in the stream itself (for at most the timeout) rather than in a wait that
    /// other events can end. False: nothing is due, data may still come unasked (a NOP-In,
    /// an asynchronous message, the end of the connection).
    ///
    /// [`Session::answer_due`]: crate::session::Session::answer_due
    pub answer_due: bool,
}

/// A reliable byte stream to a portal (TCP).
///
/// Contract for implementations (kernel sockets, the ROM's smoltcp, the host):
/// - **Nagle off** (`TCP_NODELAY`, or the stack's equivalent). The session already hands out
///   everything pending as one buffer (several PDUs per send); Nagle would hold a command back
///   until the previous segment is acknowledged, and with the peer's delayed ACK that is tens
///   of milliseconds per command at queue depth 1.
/// - `send` takes as much of the buffer as it can in one call (one system call for several
///   PDUs); `recv` returns what has arrived, up to the whole buffer (large reads: several PDUs
///   per call). [`Client`] passes 256 KiB for ordinary reads and, for the rest of a large
///   Data-In segment, the caller's own buffer.
pub trait Transport {
    /// Open a connection, bounded by `timeout`. Returns `false` on failure.
    fn connect(&mut self, portal: &Portal, timeout: Duration) -> bool;
    /// Close the current connection (no-op if none).
    fn close(&mut self);
    /// Send some of `data`; returns bytes taken, or `None` if the connection broke.
    fn send(&mut self, data: &[u8]) -> Option<usize>;
    /// Receive into `buf`, waiting at most `timeout`.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Received;
    /// [`Transport::recv`] with what the driver knows about it ([`RecvHint`]); the same
    /// contract, and the same result whether or not the hint is used.
    fn recv_hinted(&mut self, buf: &mut [u8], timeout: Duration, hint: RecvHint) -> Received {
        let _ = hint;
        self.recv(buf, timeout)
    }
    /// [`Transport::recv_hinted`] into several buffers, each filled before the next: the rest
    /// of a data segment and the segments the driver expects after it straight into the
    /// caller's buffers, with room for the headers between them, and whatever follows into
    /// the driver's own. Returns the total. `hint.min` is about the first buffer;
    /// `hint.likely`, about all of them. The default receives into the first alone, which is
    /// always correct.
    fn recv_vectored(
        &mut self,
        bufs: &mut [&mut [u8]],
        timeout: Duration,
        hint: RecvHint,
    ) -> Received {
        match bufs.first_mut() {
            Some(first) => self.recv_hinted(first, timeout, hint),
            None => Received::Timeout,
        }
    }
}

/// A monotonic clock that can also wait.
pub trait Clock {
    /// Now.
    fn now(&self) -> Instant;
    /// Wait (when there is no connection to wait on).
    fn sleep(&self, d: Duration);
}

/// Errors of the blocking driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The session failed.
    Session(SessionError),
    /// A command could not be submitted.
    Submit(SubmitError),
    /// A command did not complete at the target.
    Command(CommandError),
    /// The operation did not finish before its deadline.
    Timeout,
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientError::Session(e) => write!(f, "{e}"),
            ClientError::Submit(e) => write!(f, "cannot submit command: {e:?}"),
            ClientError::Command(CommandError::SessionFailed(e)) => write!(f, "{e}"),
            ClientError::Command(e) => write!(f, "command failed: {e:?}"),
            ClientError::Timeout => f.write_str("timed out"),
        }
    }
}

/// Data segments with at least this much left are received straight into the caller's
/// buffer (below it, one large read covering several PDUs costs less than a system call per
/// segment).
const DIRECT_MIN: u32 = 32 * 1024;

/// The receive size while large Data-In is expected: a header and the start of its data.
const SMALL_READ: usize = 4 * 1024;

/// A receive waits for answers in batches ([`RecvHint::likely`]) only while at least this many
/// commands are at the target,
const BATCH_MIN: usize = 8;
/// for this fraction of the bytes expected for them (the rest keep the target busy),
const BATCH_DIV: usize = 4;
/// for at most this long (a batch of 4 KiB reads on loopback takes ~0.1 ms),
const BATCH_WAIT: Duration = Duration::from_millis(1);
/// and not for this many receives after a batch did not come in time.
const BATCH_BACKOFF: u32 = 64;

/// How long a planned receive waits for the PDUs it expects before it settles for the rest of
/// the current segment ([`RecvHint::likely_wait`]): a few MiB on a fast link. Longer only
/// when the target is slow to send a task's data, and then [`Session::direct_rx_plan`] backs
/// off.
const PLAN_WAIT: Duration = Duration::from_millis(2);

/// Drives a session over a transport, blocking.
#[derive(Debug)]
pub struct Client<T: Transport, C: Clock> {
    session: Session,
    transport: T,
    clock: C,
    connected: bool,
    rxbuf: Vec<u8>,
    stash: Vec<Completion>,
    /// Receives left that do not wait for a batch of answers.
    batch_backoff: u32,
    command_timeout: Duration,
    busy_poll_us: u32,
}

impl<T: Transport, C: Clock> Client<T, C> {
    /// Wrap a session.
    pub fn new(session: Session, transport: T, clock: C) -> Self {
        Self {
            session,
            transport,
            clock,
            connected: false,
            rxbuf: vec![0; 256 * 1024],
            stash: Vec::new(),
            batch_backoff: 0,
            command_timeout: Duration::from_secs(300),
            busy_poll_us: 0,
        }
    }

    /// Let the transport poll for up to `us` microseconds before sleeping while at most one
    /// command is outstanding ([`RecvHint::busy_poll_us`]): lower latency at queue depth 1 for
    /// CPU time that would otherwise be idle. Off (0) by default: a boot disk should not spin.
    pub fn set_busy_poll(&mut self, us: u32) {
        self.busy_poll_us = us;
    }

    /// Bound on [`Client::execute`], [`Client::wait_command`] and [`Client::send_targets`]
    /// (default 300 s, which covers the session's own recovery).
    pub fn set_command_timeout(&mut self, t: Duration) {
        self.command_timeout = t;
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session, to submit several commands at once.
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The transport (for statistics, or a test's recording wrapper).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// One turn: timeouts, transport actions, sending, and one receive bounded by the next
    /// deadline (and `max_wait`).
    pub fn step(&mut self, max_wait: Duration) {
        let now = self.clock.now();
        if self.session.poll_at().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        while let Some(action) = self.session.poll_transport(self.clock.now()) {
            match action {
                TransportAction::Close => {
                    self.transport.close();
                    self.connected = false;
                }
                TransportAction::Connect(portal) => {
                    self.transport.close();
                    // TIMEOUT: the session's login timeout bounds the TCP connect as well.
                    if self.transport.connect(&portal, Duration::from_secs(10)) {
                        self.connected = true;
                        self.session.on_connected(self.clock.now());
                    } else {
                        self.connected = false;
                        self.session.on_connect_failed(self.clock.now());
                    }
                }
            }
        }
        if self.connected && !self.session.transmit_can_wait() {
            while !self.session.transmit().is_empty() {
                match self.transport.send(self.session.transmit()) {
                    Some(n) => self.session.consume_transmit(n),
                    None => {
                        self.transport.close();
                        self.connected = false;
                        self.session.on_connection_lost(self.clock.now());
                        return;
                    }
                }
            }
        }
        let now = self.clock.now();
        let wait = match self.session.poll_at() {
            Some(t) => t.saturating_since(now).min(max_wait),
            None => max_wait,
        };
        if self.connected {
            let wait = wait.max(Duration::from_millis(1));
            let busy_poll_us = if self.session.outstanding() <= 1 {
                self.busy_poll_us
            } else {
                0
            };
            // The rest of a large Data-In segment is received straight into the caller's
            // buffer; everything else in large reads into `rxbuf`, several PDUs at a time.
            if let Some(plan) = self.session.direct_rx_plan(DIRECT_MIN as usize) {
                let hint = RecvHint {
                    min: plan.sure,
                    busy_poll_us,
                    likely: plan.likely,
                    likely_wait: PLAN_WAIT,
                    answer_due: true,
                };
                let planned = plan.likely;
                // The parts of the plan, then room for what follows them.
                let mut bufs: [&mut [u8]; 2 + 2 * PLAN_AHEAD] = Default::default();
                let mut used = 0;
                for part in plan.parts.into_iter().take(plan.count) {
                    bufs[used] = part;
                    used += 1;
                }
                bufs[used] = &mut self.rxbuf[..SMALL_READ];
                used += 1;
                match self.transport.recv_vectored(&mut bufs[..used], wait, hint) {
                    Received::Data(n) => {
                        let now = self.clock.now();
                        self.session.direct_received(now, n.min(planned));
                        if n > planned {
                            // The next header (and the start of what follows it) came in the
                            // same receive.
                            let buf = core::mem::take(&mut self.rxbuf);
                            self.session.process(now, &buf[..n - planned]);
                            self.rxbuf = buf;
                        }
                    }
                    Received::Timeout => {}
                    Received::Closed => {
                        self.transport.close();
                        self.connected = false;
                        self.session.on_connection_lost(self.clock.now());
                    }
                }
                return;
            }
            // While large Data-In is expected, read little beyond the next header so that its
            // data segment takes the direct path above.
            let len = if self.session.large_read_pending(DIRECT_MIN) {
                SMALL_READ
            } else {
                self.rxbuf.len()
            };
            // With many commands at the target, wait briefly for a quarter of their answers:
            // one wake-up and one receive for several of them, while the target keeps three
            // quarters to work on.
            let likely = if self.batch_backoff > 0 {
                self.batch_backoff -= 1;
                0
            } else if len == self.rxbuf.len() && self.session.at_target() >= BATCH_MIN {
                (self.session.expected_rx() / BATCH_DIV).min(len)
            } else {
                0
            };
            let hint = RecvHint {
                min: 1,
                busy_poll_us,
                likely,
                likely_wait: BATCH_WAIT,
                answer_due: self.session.answer_due(),
            };
            match self
                .transport
                .recv_hinted(&mut self.rxbuf[..len], wait, hint)
            {
                Received::Data(n) => {
                    if n < likely {
                        // The answers were not there in time: the target is slower than
                        // this, so stop waiting for a while.
                        self.batch_backoff = BATCH_BACKOFF;
                    }
                    let now = self.clock.now();
                    let buf = core::mem::take(&mut self.rxbuf);
                    self.session.process(now, &buf[..n]);
                    self.rxbuf = buf;
                }
                Received::Timeout => {}
                Received::Closed => {
                    self.transport.close();
                    self.connected = false;
                    self.session.on_connection_lost(self.clock.now());
                }
            }
        } else if self.session.failure().is_none() && !self.session.is_closed() {
            self.clock.sleep(wait.max(Duration::from_millis(1)));
        }
    }

    /// Take the next completion (collected ones first).
    pub fn next_completion(&mut self) -> Option<Completion> {
        if !self.stash.is_empty() {
            return Some(self.stash.remove(0));
        }
        self.session.poll_completion()
    }

    /// Run until the session reaches full-feature phase, fails, or `timeout` passes.
    pub fn login(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = self.clock.now() + timeout;
        loop {
            if self.session.is_ready() {
                return Ok(());
            }
            if let Some(e) = self.session.failure() {
                return Err(ClientError::Session(e));
            }
            if self.clock.now() >= deadline {
                return Err(self
                    .session
                    .last_error()
                    .map(ClientError::Session)
                    .unwrap_or(ClientError::Timeout));
            }
            self.step(Duration::from_millis(200));
        }
    }

    /// Run one command to completion. Retries (UNIT ATTENTION, BUSY) and recovery happen
    /// inside the session; this returns when the command is done or the session has failed.
    pub fn execute(
        &mut self,
        lun: Lun,
        cdb: Cdb,
        dir: Direction,
        buffer: Vec<u8>,
        len: u32,
    ) -> Result<(ScsiOutcome, Vec<u8>), ClientError> {
        let handle = self
            .session
            .submit(lun, cdb, dir, buffer, len)
            .map_err(|(e, _)| ClientError::Submit(e))?;
        self.wait_command(handle)
    }

    /// Wait for one submitted command.
    pub fn wait_command(
        &mut self,
        handle: TaskHandle,
    ) -> Result<(ScsiOutcome, Vec<u8>), ClientError> {
        let deadline = self.clock.now() + self.command_timeout;
        loop {
            while let Some(c) = self.session.poll_completion() {
                match c {
                    Completion::Command {
                        handle: h,
                        result,
                        buffer,
                    } if h == handle => {
                        return result
                            .map(|o| (o, buffer.into_vec()))
                            .map_err(ClientError::Command);
                    }
                    other => self.stash.push(other),
                }
            }
            if let Some(e) = self.session.failure() {
                return Err(ClientError::Session(e));
            }
            if self.clock.now() >= deadline {
                return Err(ClientError::Timeout);
            }
            self.step(Duration::from_millis(200));
        }
    }

    /// SendTargets on a (discovery) session; returns the raw text.
    pub fn send_targets(&mut self) -> Result<Vec<u8>, ClientError> {
        self.session.send_targets().map_err(ClientError::Submit)?;
        let deadline = self.clock.now() + self.command_timeout;
        loop {
            while let Some(c) = self.session.poll_completion() {
                match c {
                    Completion::Text { data } => return Ok(data),
                    other => self.stash.push(other),
                }
            }
            if let Some(e) = self.session.failure() {
                return Err(ClientError::Session(e));
            }
            if self.clock.now() >= deadline {
                return Err(ClientError::Timeout);
            }
            self.step(Duration::from_millis(200));
        }
    }

    /// Log out and close, bounded by `timeout`.
    pub fn logout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = self.clock.now() + timeout;
        self.session.logout(self.clock.now());
        loop {
            if self.session.is_closed() {
                self.transport.close();
                self.connected = false;
                return Ok(());
            }
            if let Some(e) = self.session.failure() {
                self.transport.close();
                return Err(ClientError::Session(e));
            }
            if self.clock.now() >= deadline {
                self.transport.close();
                return Err(ClientError::Timeout);
            }
            self.step(Duration::from_millis(200));
        }
    }
}

#[cfg(feature = "std")]
pub use host::{ConnectError, StdClock, TcpTransport};

#[cfg(feature = "std")]
mod host {
    use super::{Clock, Received, RecvHint, Transport};
    use crate::session::Portal;
    use crate::time::{Duration, DurationExt, Instant};
    use std::io::{self, ErrorKind, IoSliceMut, Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
    use std::os::fd::AsRawFd;
    use std::string::String;

    /// The largest receive low-water mark asked of the kernel: a planned receive of a few
    /// large Data-In PDUs (Linux grows the receive buffer to match, up to half of the
    /// `tcp_rmem` maximum; more would only delay the first wake-up).
    const LOWAT_MAX: usize = 2 * 1024 * 1024;

    /// The most buffers one receive takes.
    const MAX_IOV: usize = 16;

    /// `std::net::TcpStream` transport.
    ///
    /// Uses [`RecvHint`]: the rest of a large data segment is awaited with `SO_RCVLOWAT` and
    /// `poll` (one wake-up when it is all there rather than one per arriving TCP segment), and
    /// busy polling is done with non-blocking receives.
    #[derive(Debug, Default)]
    pub struct TcpTransport {
        stream: Option<TcpStream>,
        /// The receive timeout set on the socket, to skip the `setsockopt` when it would not
        /// change (one system call per receive otherwise).
        read_timeout: Option<std::time::Duration>,
        /// The socket's `SO_RCVLOWAT` (1 on a new connection; 0 without one).
        lowat: usize,
        /// Why the last connect failed.
        connect_error: Option<ConnectError>,
    }

    /// Why [`TcpTransport`] could not connect: what it tried and what the system said.
    #[derive(Debug)]
    pub enum ConnectError {
        /// The portal's host did not resolve to an address.
        Resolve {
            /// The host, as the portal names it.
            host: String,
            /// The port.
            port: u16,
            /// The resolver's error.
            error: io::Error,
        },
        /// The connection to an address failed (the last address tried, if the host has
        /// several).
        Connect {
            /// The address.
            addr: SocketAddr,
            /// The system's error (refused, timed out, unreachable ...).
            error: io::Error,
        },
    }

    impl core::fmt::Display for ConnectError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                // As a socket address prints: an IPv6 literal in brackets.
                ConnectError::Resolve { host, port, error } if host.contains(':') => {
                    write!(f, "resolve [{host}]:{port}: {error}")
                }
                ConnectError::Resolve { host, port, error } => {
                    write!(f, "resolve {host}:{port}: {error}")
                }
                ConnectError::Connect { addr, error } => write!(f, "connect {addr}: {error}"),
            }
        }
    }

    impl TcpTransport {
        /// No connection yet.
        pub fn new() -> Self {
            Self::default()
        }

        /// Why the last [`Transport::connect`] failed (`None` after one that succeeded).
        pub fn connect_error(&self) -> Option<&ConnectError> {
            self.connect_error.as_ref()
        }
    }

    fn std_dur(d: Duration) -> std::time::Duration {
        std::time::Duration::from_millis(d.total_millis().max(1))
    }

    impl TcpTransport {
        /// Set the receive timeout. A shorter timeout than asked for only makes the caller
        /// step again, so the current one is kept unless it is longer than asked or less than
        /// half of it: no `setsockopt` per receive. False when there is no usable socket.
        fn set_timeout(&mut self, timeout: Duration) -> bool {
            let Some(s) = self.stream.as_ref() else {
                return false;
            };
            let want = std_dur(timeout);
            let keep = self
                .read_timeout
                .is_some_and(|cur| cur <= want && cur * 2 >= want);
            if !keep {
                if s.set_read_timeout(Some(want)).is_err() {
                    return false;
                }
                self.read_timeout = Some(want);
            }
            true
        }

        /// Set `SO_RCVLOWAT` to `n` unless it already is. False when the socket refused.
        fn set_lowat(&mut self, n: usize) -> bool {
            let n = n.max(1);
            if self.lowat == n {
                return true;
            }
            let Some(s) = self.stream.as_ref() else {
                return false;
            };
            if sys::set_rcvlowat(s.as_raw_fd(), n).is_err() {
                return false;
            }
            self.lowat = n;
            true
        }

        /// One non-blocking receive: what has already arrived, whatever the low-water mark.
        /// `None` when nothing has (or the receive was interrupted).
        fn recv_now(&mut self, buf: &mut [u8]) -> Option<Received> {
            let s = self.stream.as_ref()?;
            match sys::recv_nowait(s.as_raw_fd(), buf) {
                Ok(0) => Some(Received::Closed),
                Ok(n) => Some(Received::Data(n)),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    None
                }
                Err(_) => Some(Received::Closed),
            }
        }

        /// Poll with non-blocking receives for up to `us` microseconds. `None` when nothing
        /// came (or the poll could not be done): the caller then waits as usual.
        fn busy_poll(&mut self, buf: &mut [u8], us: u32) -> Option<Received> {
            self.stream.as_ref()?;
            let start = std::time::Instant::now();
            let budget = std::time::Duration::from_micros(u64::from(us));
            loop {
                if let Some(r) = self.recv_now(buf) {
                    return Some(r);
                }
                if start.elapsed() >= budget {
                    return None;
                }
                core::hint::spin_loop();
            }
        }

        /// Make the next receive wait for `min` bytes: the low-water mark, and for more than
        /// one byte a `poll` until they are queued. A blocking receive alone would copy what
        /// is there and then wake for every further segment (Linux counts the mark from the
        /// unread bytes); `poll` is readable only once `min` bytes are queued. `Err` is what
        /// the receive returns instead.
        fn wait_for(&mut self, min: usize, timeout: Duration) -> Result<(), Received> {
            if !self.set_lowat(min) {
                return Err(Received::Closed);
            }
            if min > 1 {
                let Some(s) = self.stream.as_ref() else {
                    return Err(Received::Closed);
                };
                match sys::poll_readable(s.as_raw_fd(), timeout.total_millis().max(1)) {
                    Ok(true) => {}
                    Ok(false) => return Err(Received::Timeout),
                    Err(e) if e.kind() == ErrorKind::Interrupted => return Err(Received::Timeout),
                    Err(_) => return Err(Received::Closed),
                }
            }
            Ok(())
        }
    }

    /// A socket read's result as a [`Received`].
    fn read_result(r: std::io::Result<usize>) -> Received {
        match r {
            Ok(0) => Received::Closed,
            Ok(n) => Received::Data(n),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Received::Timeout
            }
            Err(_) => Received::Closed,
        }
    }

    impl Transport for TcpTransport {
        fn connect(&mut self, portal: &Portal, timeout: Duration) -> bool {
            let resolve_error = |error| ConnectError::Resolve {
                host: portal.host.clone(),
                port: portal.port,
                error,
            };
            let addrs = match (portal.host.as_str(), portal.port).to_socket_addrs() {
                Ok(addrs) => addrs,
                Err(error) => {
                    self.connect_error = Some(resolve_error(error));
                    return false;
                }
            };
            self.connect_error = Some(resolve_error(io::Error::new(
                ErrorKind::NotFound,
                "no address for the host",
            )));
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, std_dur(timeout)) {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        // TIMEOUT: 30 s bounds a send to a peer that stopped reading.
                        let _ = s.set_write_timeout(Some(std::time::Duration::from_secs(30)));
                        self.stream = Some(s);
                        self.read_timeout = None;
                        self.lowat = 1;
                        self.connect_error = None;
                        return true;
                    }
                    Err(error) => self.connect_error = Some(ConnectError::Connect { addr, error }),
                }
            }
            false
        }

        fn close(&mut self) {
            if let Some(s) = self.stream.take() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }

        fn send(&mut self, data: &[u8]) -> Option<usize> {
            let s = self.stream.as_mut()?;
            loop {
                match s.write(data) {
                    Ok(0) => return None,
                    Ok(n) => return Some(n),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return None,
                }
            }
        }

        fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Received {
            self.recv_hinted(buf, timeout, RecvHint::default())
        }

        fn recv_hinted(&mut self, buf: &mut [u8], timeout: Duration, hint: RecvHint) -> Received {
            self.recv_vectored(&mut [buf], timeout, hint)
        }

        fn recv_vectored(
            &mut self,
            bufs: &mut [&mut [u8]],
            timeout: Duration,
            hint: RecvHint,
        ) -> Received {
            // Each buffer is filled before the next, so leaving out the last ones is correct.
            let used = bufs.len().min(MAX_IOV);
            let bufs = &mut bufs[..used];
            let Some(first) = bufs.first_mut() else {
                return Received::Timeout;
            };
            if hint.busy_poll_us > 0 {
                if let Some(r) = self.busy_poll(first, hint.busy_poll_us) {
                    return r;
                }
            }
            let min = hint.min.min(first.len()).min(LOWAT_MAX);
            let total: usize = bufs.iter().map(|b| b.len()).sum();
            let likely = hint.likely.min(total).min(LOWAT_MAX);
            let mut waited = false;
            if likely > min && hint.likely_wait > Duration::ZERO {
                match self.wait_for(likely, hint.likely_wait.min(timeout)) {
                    Ok(()) => waited = true,
                    Err(Received::Timeout) => {}
                    Err(r) => return r,
                }
            }
            if !waited {
                if min <= 1 && self.lowat > 1 {
                    // What is already there needs no low-water mark (a non-blocking receive
                    // ignores it): skip the `setsockopt` back to 1 unless this has to sleep.
                    if let Some(r) = bufs.first_mut().and_then(|f| self.recv_now(f)) {
                        return r;
                    }
                }
                if let Err(r) = self.wait_for(min, timeout) {
                    return r;
                }
            }
            if !self.set_timeout(timeout) {
                return Received::Closed;
            }
            let Some(s) = self.stream.as_mut() else {
                return Received::Closed;
            };
            if let [only] = bufs {
                return read_result(s.read(only));
            }
            // One `readv`: the bytes waited for are queued, so it returns at once with them
            // and whatever followed, up to all the buffers.
            let mut iov: [IoSliceMut<'_>; MAX_IOV] =
                core::array::from_fn(|_| IoSliceMut::new(&mut []));
            for (v, b) in iov.iter_mut().zip(bufs.iter_mut()) {
                *v = IoSliceMut::new(b);
            }
            read_result(s.read_vectored(&mut iov[..used]))
        }
    }

    /// The three socket calls `std` does not offer. The only `unsafe` in this crate, and only
    /// in the host build (feature `std`); kernel and ROM builds forbid it.
    #[allow(unsafe_code)]
    mod sys {
        use std::io;
        use std::os::fd::RawFd;

        /// `setsockopt(SOL_SOCKET, SO_RCVLOWAT, n)`.
        pub(super) fn set_rcvlowat(fd: RawFd, n: usize) -> io::Result<()> {
            let v = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
            // SAFETY: `v` is a live c_int for the duration of the call and the length passed
            // is its size; the kernel only reads it. A bad `fd` is reported as an error.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVLOWAT,
                    (&raw const v).cast(),
                    core::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }

        /// `poll(POLLIN)` on one descriptor: true when readable (which honours `SO_RCVLOWAT`),
        /// or on hang-up or error (the read that follows reports those).
        pub(super) fn poll_readable(fd: RawFd, timeout_ms: u64) -> io::Result<bool> {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(timeout_ms).unwrap_or(libc::c_int::MAX);
            // SAFETY: `p` is one valid, exclusively borrowed pollfd and the count passed is 1.
            let r = unsafe { libc::poll(&raw mut p, 1, ms) };
            match r {
                0 => Ok(false),
                r if r > 0 => Ok(true),
                _ => Err(io::Error::last_os_error()),
            }
        }

        /// `recv(MSG_DONTWAIT)`: what has arrived, or `WouldBlock`.
        pub(super) fn recv_nowait(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
            // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which is valid
            // and exclusively borrowed for the call.
            let r =
                unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            usize::try_from(r).map_err(|_| io::Error::last_os_error())
        }
    }

    /// The host's monotonic clock.
    #[derive(Debug, Clone, Copy)]
    pub struct StdClock {
        origin: std::time::Instant,
    }

    impl Default for StdClock {
        fn default() -> Self {
            Self {
                origin: std::time::Instant::now(),
            }
        }
    }

    impl Clock for StdClock {
        fn now(&self) -> Instant {
            Instant::from_millis(self.origin.elapsed().as_millis() as u64)
        }

        fn sleep(&self, d: Duration) {
            std::thread::sleep(std_dur(d));
        }
    }
}
