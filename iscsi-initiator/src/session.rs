//! One iSCSI session over one connection: login, full-feature phase and ERL 0 recovery.
//!
//! Sans-IO. The environment moves bytes and time in and out:
//! - [`Session::poll_transport`] says when to connect (or reconnect) and when to close;
//! - [`Session::process`] takes received bytes; [`Session::transmit`] and
//!   [`Session::consume_transmit`] hand out bytes to send (several PDUs at once);
//! - [`Session::poll_at`] is the next deadline, [`Session::handle_timeout`] runs it;
//! - [`Session::submit`] queues a SCSI command with the caller's buffer, and
//!   [`Session::poll_completion`] gives the buffer back with the result.
//!
//! Commands wait for the CmdSN window (RFC 7143 §3.2.2.1); Data-In lands directly in the
//! caller's buffer after its DataSN and Buffer Offset have been checked (§11.7.4, §11.7.5);
//! R2Ts are answered within MaxBurstLength (§11.8); immediate and unsolicited data follow
//! ImmediateData, InitialR2T and FirstBurstLength (§13.10, §13.11, §13.14). On a broken
//! connection, a digest error, a protocol error or a ping timeout, the session logs in again
//! with the same ISID and TSIH 0 (session reinstatement, §6.3.5) after a back-off, and
//! re-issues every command that had not completed (ERL 0, §7.1.5).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use zerocopy::IntoBytes;

use crate::login::{HashDrbg, Login, LoginError, LoginOutcome, LoginProgress};
use crate::negotiate::Negotiated;
use crate::scsi::{Cdb, Lun, ScsiStatus, Sense, SenseKey};
use crate::serial::SerialNumber;
use crate::time::{earliest, Duration, Instant};
use crate::wire::bhs::{self, Opcode, BHS_LEN, FINAL, IMMEDIATE, RESERVED_TAG};
use crate::wire::frame::{write_pdu, DigestConfig, FrameError, Receiver, RxEvent};
use crate::wire::pdu::{decode_target_bhs, Decoded, SnFields, TargetHeader};
use crate::wire::text::push_pair;

/// Where to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Portal {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Portal {
    /// The IANA iSCSI port.
    pub const DEFAULT_PORT: u16 = 3260;

    /// Parse `host[:port][,tpgt]` or `[v6][:port][,tpgt]` (RFC 7143 §13.8 TargetAddress).
    pub fn parse(s: &str) -> Option<(Portal, Option<u16>)> {
        let (addr, tpgt) = match s.rsplit_once(',') {
            Some((a, t)) => (a, Some(t.parse::<u16>().ok()?)),
            None => (s, None),
        };
        let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
            let (h, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => Self::DEFAULT_PORT,
                None => return None,
            };
            (h, port)
        } else {
            match addr.split_once(':') {
                Some((h, p)) if !p.contains(':') => (h, p.parse().ok()?),
                Some(_) => return None,
                None => (addr, Self::DEFAULT_PORT),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some((
            Portal {
                host: String::from(host),
                port,
            },
            tpgt,
        ))
    }
}

/// Session configuration.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Login parameters (names, ISID, CHAP, operational offers).
    pub login: crate::login::LoginConfig,
    /// The portal to log in to.
    pub portal: Portal,
    /// Most commands in flight or queued at once.
    pub queue_depth: u16,
    /// Login must finish within this time after the TCP connection is up.
    pub login_timeout: Duration,
    /// Send a NOP-Out after this long without receiving anything (zero: never).
    pub ping_interval: Duration,
    /// Declare the connection dead this long after a ping went unanswered.
    pub ping_timeout: Duration,
    /// After losing a logged-in connection, keep trying to recover this long before failing
    /// every command (zero: do not recover).
    pub recovery_timeout: Duration,
    /// How many times the first login is attempted before giving up (at least 1).
    pub initial_login_attempts: u32,
    /// Redirections followed per login.
    pub max_redirects: u8,
    /// UNIT ATTENTION retries per command.
    pub unit_attention_retries: u8,
    /// BUSY / TASK SET FULL retries per command.
    pub busy_retries: u8,
    /// Logout must complete within this time.
    pub logout_timeout: Duration,
}

impl SessionConfig {
    /// Defaults suited to a boot disk: pings every 5 s, 10 s ping timeout, recovery for
    /// 5 minutes.
    pub fn new(login: crate::login::LoginConfig, portal: Portal) -> Self {
        Self {
            login,
            portal,
            queue_depth: 64,
            login_timeout: Duration::from_secs(15),
            ping_interval: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(10),
            recovery_timeout: Duration::from_secs(300),
            initial_login_attempts: 1,
            max_redirects: 4,
            unit_attention_retries: 8,
            busy_retries: 16,
            logout_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the session (or its current connection) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The transport could not connect.
    ConnectFailed,
    /// The transport reported the connection closed or broken.
    ConnectionLost,
    /// Framing, digest or header error.
    Frame(FrameError),
    /// Login failed.
    Login(LoginError),
    /// The target violated the full-feature protocol.
    Protocol(&'static str),
    /// No answer to a NOP-Out within the ping timeout.
    PingTimeout,
    /// Too many login redirections.
    TooManyRedirects,
    /// A redirection to an address that cannot be parsed.
    BadRedirect,
    /// The session was logged out.
    LoggedOut,
}

impl core::fmt::Display for SessionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SessionError::ConnectFailed => f.write_str("target unreachable (connection failed)"),
            SessionError::ConnectionLost => f.write_str("connection to the target lost"),
            SessionError::Frame(e) => write!(f, "bad PDU from the target: {e:?}"),
            SessionError::Login(e) => write!(f, "{e}"),
            SessionError::Protocol(s) => write!(f, "target protocol error: {s}"),
            SessionError::PingTimeout => {
                f.write_str("target stopped answering (NOP-Out ping timeout)")
            }
            SessionError::TooManyRedirects => f.write_str("too many login redirections"),
            SessionError::BadRedirect => f.write_str("login redirected to an invalid address"),
            SessionError::LoggedOut => f.write_str("session logged out"),
        }
    }
}

impl SessionError {
    fn is_fatal(&self) -> bool {
        match self {
            SessionError::Login(e) => !e.is_transient(),
            SessionError::TooManyRedirects
            | SessionError::BadRedirect
            | SessionError::LoggedOut => true,
            _ => false,
        }
    }
}

/// What the environment should do with the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportAction {
    /// Open a connection to this portal, then call [`Session::on_connected`] or
    /// [`Session::on_connect_failed`].
    Connect(Portal),
    /// Close the current connection (then wait for the next action).
    Close,
}

/// Data direction of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// No data.
    None,
    /// Data from target to initiator (Data-In).
    Read,
    /// Data from initiator to target (Data-Out).
    Write,
}

/// A handle for a submitted command (its Initiator Task Tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskHandle(pub u32);

/// Residual of a completed command (RFC 7143 §11.4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residual {
    /// Exactly the expected length.
    None,
    /// The target transferred this many bytes less.
    Underflow(u32),
    /// The target wanted to transfer this many bytes more.
    Overflow(u32),
}

/// The result of a command the target completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScsiOutcome {
    /// SCSI status.
    pub status: ScsiStatus,
    /// Residual.
    pub residual: Residual,
    /// Sense data with CHECK CONDITION.
    pub sense: Option<Sense>,
    /// Bytes that landed in (or were taken from) the buffer.
    pub transferred: u32,
}

/// Why a command did not complete at the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// The session failed and will not recover.
    SessionFailed(SessionError),
    /// The target rejected the command PDU (RFC 7143 §11.17.1 reason).
    Rejected(u8),
    /// The target reported a service response other than "completed at target".
    TargetFailure(u8),
    /// Aborted by task management.
    Aborted,
}

/// A finished operation.
// Completions sit in a ring allocated once; boxing the sense data would allocate per
// completion instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Completion {
    /// A SCSI command; the buffer is returned.
    Command {
        /// Its handle.
        handle: TaskHandle,
        /// Outcome.
        result: Result<ScsiOutcome, CommandError>,
        /// The caller's buffer.
        buffer: Vec<u8>,
    },
    /// A task management function answered (RFC 7143 §11.6.1 response code).
    TaskManagement {
        /// Its handle.
        handle: TaskHandle,
        /// Response code (0 = function complete).
        response: u8,
    },
    /// A Text exchange finished (e.g. SendTargets); the accumulated text.
    Text {
        /// Key=value pairs.
        data: Vec<u8>,
    },
    /// Logout finished.
    LoggedOut,
}

/// Why a command could not be submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The session failed or logged out.
    Closed,
    /// `queue_depth` commands are already outstanding.
    QueueFull,
    /// The buffer is shorter than the transfer length.
    BufferTooSmall,
    /// Another text or logout operation is in progress.
    Busy,
    /// The command is unknown (task management).
    NoSuchTask,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskState {
    Queued,
    Delayed(Instant),
    Active,
}

#[derive(Debug)]
struct Task {
    itt: u32,
    seq: u64,
    lun: Lun,
    cdb: Cdb,
    dir: Direction,
    buf: Vec<u8>,
    len: u32,
    state: TaskState,
    cmd_sn: SerialNumber,
    exp_data_sn: SerialNumber,
    next_offset: u32,
    next_r2t_sn: SerialNumber,
    ua_retries: u8,
    busy_retries: u8,
}

impl Task {
    fn reset_progress(&mut self) {
        self.exp_data_sn = SerialNumber(0);
        self.next_offset = 0;
        self.next_r2t_sn = SerialNumber(0);
    }
}

// One value per session; the login state is only there while logging in.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Conn {
    /// Waiting to (re)connect at this time.
    Down { at: Instant },
    /// The environment is connecting.
    Connecting { deadline: Instant },
    /// Logging in.
    LoggingIn { login: Login, deadline: Instant },
    /// Full-feature phase.
    Full,
    /// Logout sent.
    LoggingOut {
        itt: u32,
        deadline: Instant,
        reconnect: bool,
    },
    /// Logged out by request.
    Closed,
    /// Failed for good.
    Failed(SessionError),
}

#[derive(Debug)]
enum RxDest {
    None,
    Scratch,
    Task { slot: usize, offset: usize },
}

/// The most Data-In PDUs after the current one that one receive is planned across
/// ([`Session::direct_rx_plan`]).
pub const PLAN_AHEAD: usize = 3;

/// Planned receives skipped after one that went wrong (a guess that did not match, or fewer
/// bytes than planned): a target that does not send what the plan expects costs little.
const PLAN_BACKOFF: u32 = 64;

/// The Data-In PDUs a planned receive expects after the current data segment.
#[derive(Clone, Copy, Debug, Default)]
struct RxPlan {
    slot: usize,
    /// Buffer offset and data length of each.
    next: [(usize, usize); PLAN_AHEAD],
    count: usize,
    /// The bytes of the whole plan, the rest of the current segment included.
    total: usize,
}

/// Where one receive can put the next bytes without a copy ([`Session::direct_rx_plan`]).
#[derive(Debug)]
pub struct DirectRx<'a> {
    /// In stream order, the first `count` used: the rest of the current Data-In segment (in
    /// the caller's buffer), then for each further Data-In PDU the plan expects, room for its
    /// header (in the session) and its data segment (in the caller's buffer again).
    pub parts: [&'a mut [u8]; 1 + 2 * PLAN_AHEAD],
    /// How many of `parts` are used (at least 1).
    pub count: usize,
    /// The bytes sure to come: the rest of the current segment.
    pub sure: usize,
    /// The bytes the plan expects soon (the target is already sending this task's data):
    /// `sure` and the planned PDUs, none of it guaranteed.
    pub likely: usize,
}

impl DirectRx<'_> {
    /// Copy `src` into the parts in order, each filled before the next (what a vectored read
    /// does; for a transport that has the bytes in one buffer). Returns the bytes taken.
    pub fn fill(&mut self, src: &[u8]) -> usize {
        let mut n = 0;
        for part in self.parts[..self.count].iter_mut() {
            let k = part.len().min(src.len() - n);
            part[..k].copy_from_slice(&src[n..n + k]);
            n += k;
            if k < part.len() {
                break;
            }
        }
        n
    }
}

#[derive(Debug)]
struct TextOp {
    itt: u32,
    data: Vec<u8>,
    request: Vec<u8>,
    sent: bool,
    /// Started by Async event 4: the answer is negotiated here, not handed to the caller.
    renegotiate: bool,
}

#[derive(Debug)]
struct TmfOp {
    itt: u32,
    function: u8,
    referenced: Option<u32>,
    lun: Lun,
}

/// Task management function codes (RFC 7143 §11.5.1).
pub mod tmf {
    /// ABORT TASK.
    pub const ABORT_TASK: u8 = 1;
    /// LOGICAL UNIT RESET.
    pub const LOGICAL_UNIT_RESET: u8 = 5;
}

/// A session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    conn: Conn,
    close_pending: bool,
    portal: Portal,
    redirects: u8,
    ever_logged_in: bool,
    attempts: u32,
    recovery_since: Option<Instant>,
    params: Negotiated,
    digests: DigestConfig,
    tsih: u16,
    cmd_sn: SerialNumber,
    exp_cmd_sn: SerialNumber,
    max_cmd_sn: SerialNumber,
    exp_stat_sn: SerialNumber,
    rx: Receiver,
    rx_cur: Option<Decoded>,
    rx_dest: RxDest,
    scratch: Vec<u8>,
    /// The last planned receive ([`Session::direct_rx_plan`]), its headers' room, and how
    /// many more receives go unplanned after one that went wrong.
    plan: RxPlan,
    plan_hdr: [u8; BHS_LEN * PLAN_AHEAD],
    plan_backoff: u32,
    /// Bytes a plan guessed wrong about, on their way through [`Session::process`].
    spill: Vec<u8>,
    tx: Vec<u8>,
    tx_pos: usize,
    /// SCSI Command PDUs (with their unsolicited data) at the start of `tx`, and their bytes:
    /// while `tx` holds nothing else they may wait for company ([`Session::transmit_can_wait`]).
    tx_cmds: usize,
    tx_cmd_bytes: usize,
    tasks: Vec<Option<Task>>,
    generation: Vec<u16>,
    queue: VecDeque<usize>,
    active: usize,
    seq: u64,
    completions: VecDeque<Completion>,
    next_special_itt: u32,
    last_rx: Instant,
    ping: Option<(u32, Instant)>,
    text: Option<TextOp>,
    tmfs: Vec<TmfOp>,
    logout_wanted: bool,
    error: Option<SessionError>,
    rng: HashDrbg,
    chap_md5_only: bool,
    logins: u32,
}

fn sn_of(h: &TargetHeader) -> SnFields {
    h.sn()
}

impl Session {
    /// A session that will connect at `now`.
    pub fn new(cfg: SessionConfig, now: Instant) -> Self {
        let depth = usize::from(cfg.queue_depth.clamp(1, 0x7fff));
        let mut tasks = Vec::with_capacity(depth);
        tasks.resize_with(depth, || None);
        let portal = cfg.portal.clone();
        let max_recv = cfg.login.operational.max_recv_data_segment_length;
        Self {
            conn: Conn::Down { at: now },
            close_pending: false,
            portal,
            redirects: 0,
            ever_logged_in: false,
            attempts: 0,
            recovery_since: None,
            params: Negotiated::default(),
            digests: DigestConfig::default(),
            tsih: 0,
            cmd_sn: SerialNumber(1),
            exp_cmd_sn: SerialNumber(1),
            max_cmd_sn: SerialNumber(1),
            exp_stat_sn: SerialNumber(0),
            rx: Receiver::new(DigestConfig::default(), 8192),
            rx_cur: None,
            rx_dest: RxDest::None,
            scratch: Vec::with_capacity(max_recv.max(8192) as usize),
            plan: RxPlan::default(),
            plan_hdr: [0; BHS_LEN * PLAN_AHEAD],
            plan_backoff: 0,
            spill: Vec::new(),
            tx: Vec::with_capacity(64 * 1024),
            tx_pos: 0,
            tx_cmds: 0,
            tx_cmd_bytes: 0,
            generation: alloc::vec![0; depth],
            tasks,
            queue: VecDeque::with_capacity(depth),
            active: 0,
            seq: 0,
            completions: VecDeque::with_capacity(depth + 4),
            next_special_itt: 0,
            last_rx: now,
            ping: None,
            text: None,
            tmfs: Vec::new(),
            logout_wanted: false,
            error: None,
            rng: HashDrbg::new(cfg.login.entropy_seed),
            chap_md5_only: false,
            logins: 0,
            cfg,
        }
    }

    // ----- state queries -------------------------------------------------------------

    /// True in full-feature phase.
    pub fn is_ready(&self) -> bool {
        matches!(self.conn, Conn::Full)
    }

    /// True while logging in or waiting to reconnect (commands stay queued).
    pub fn is_recovering(&self) -> bool {
        matches!(
            self.conn,
            Conn::Down { .. } | Conn::Connecting { .. } | Conn::LoggingIn { .. }
        )
    }

    /// The error that ended the session, if it has failed for good.
    pub fn failure(&self) -> Option<SessionError> {
        match self.conn {
            Conn::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The last connection-level error (also while recovering).
    pub fn last_error(&self) -> Option<SessionError> {
        self.error
    }

    /// True after a completed logout.
    pub fn is_closed(&self) -> bool {
        matches!(self.conn, Conn::Closed)
    }

    /// Negotiated parameters of the current (or last) connection.
    pub fn params(&self) -> &Negotiated {
        &self.params
    }

    /// TSIH of the current session.
    pub fn tsih(&self) -> u16 {
        self.tsih
    }

    /// Successful logins so far (1 + the number of recoveries).
    pub fn logins(&self) -> u32 {
        self.logins
    }

    /// Commands submitted and not yet completed.
    pub fn outstanding(&self) -> usize {
        self.active
    }

    /// The commands the target has: sent and not yet answered, as far as the session can tell
    /// (those still in the transmit buffer have no answers coming yet).
    pub fn at_target(&self) -> usize {
        self.active.saturating_sub(self.tx_cmds)
    }

    /// The bytes the target is expected to send for the commands it has ([`Session::at_target`]):
    /// a response header each and the rest of each read's data, averaged over the commands in
    /// flight. One pass over the task table: ask only when it will be used.
    pub fn expected_rx(&self) -> usize {
        let mut bytes = 0usize;
        for t in self.tasks.iter().flatten() {
            if t.state == TaskState::Active {
                bytes += BHS_LEN;
                if t.dir == Direction::Read {
                    bytes += t.len.saturating_sub(t.next_offset) as usize;
                }
            }
        }
        match self.active {
            0 => 0,
            n => bytes / n * self.at_target(),
        }
    }

    /// Free command slots.
    pub fn capacity(&self) -> usize {
        self.tasks.len() - self.active
    }

    // ----- transport seam ------------------------------------------------------------

    /// What to do with the transport now, if anything.
    pub fn poll_transport(&mut self, now: Instant) -> Option<TransportAction> {
        if self.close_pending {
            self.close_pending = false;
            return Some(TransportAction::Close);
        }
        if let Conn::Down { at } = self.conn {
            if now >= at {
                self.conn = Conn::Connecting {
                    deadline: now + self.cfg.login_timeout,
                };
                return Some(TransportAction::Connect(self.portal.clone()));
            }
        }
        None
    }

    /// The transport connected: start the login.
    pub fn on_connected(&mut self, now: Instant) {
        if !matches!(self.conn, Conn::Connecting { .. }) {
            return;
        }
        self.rx.configure(DigestConfig::default(), 8192);
        self.rx.reset();
        self.rx_cur = None;
        self.tx.clear();
        self.tx_cmds = 0;
        self.tx_cmd_bytes = 0;
        self.tx_pos = 0;
        self.digests = DigestConfig::default();
        self.last_rx = now;
        self.ping = None;
        let itt = self.special_itt();
        // RFC 7143 §6.3.5: ERL 0 recovery is session reinstatement, a new session with the
        // same ISID and TSIH 0.
        let mut login = Login::new(self.cfg.login.clone(), itt, 1, 0, self.cmd_sn);
        if self.chap_md5_only {
            login.offer_md5_only();
        }
        match login.start(&mut self.tx) {
            Ok(()) => {
                self.conn = Conn::LoggingIn {
                    login,
                    deadline: now + self.cfg.login_timeout,
                }
            }
            Err(e) => self.fail_connection(now, SessionError::Login(e)),
        }
    }

    /// The transport could not connect.
    pub fn on_connect_failed(&mut self, now: Instant) {
        if matches!(self.conn, Conn::Connecting { .. }) {
            self.fail_connection(now, SessionError::ConnectFailed);
        }
    }

    /// The transport reported the connection closed or broken.
    pub fn on_connection_lost(&mut self, now: Instant) {
        match self.conn {
            Conn::LoggingIn { .. } | Conn::Full | Conn::Connecting { .. } => {
                self.close_pending = false;
                self.fail_connection(now, SessionError::ConnectionLost);
                // The transport is already gone.
                self.close_pending = false;
            }
            Conn::LoggingOut { reconnect, .. } => {
                if reconnect {
                    self.go_down(now, self.time2wait());
                } else {
                    self.finish_logout();
                }
                self.close_pending = false;
            }
            _ => {}
        }
    }

    /// True when the bytes waiting to be sent are only new SCSI commands and the target already
    /// has at least four times as many of ours to work on: sending them a little later, with
    /// the next ones, costs fewer system calls and wake-ups on both sides without leaving the
    /// target idle (its answers to the commands in flight drive the next step). The environment
    /// may then skip sending until the next received bytes; it must send otherwise.
    pub fn transmit_can_wait(&self) -> bool {
        if self.tx_cmds == 0
            || self.tx_pos != 0
            || self.tx.len() != self.tx_cmd_bytes
            || !matches!(self.conn, Conn::Full)
        {
            return false;
        }
        let active = self
            .tasks
            .iter()
            .flatten()
            .filter(|t| t.state == TaskState::Active)
            .count();
        let at_target = active.saturating_sub(self.tx_cmds);
        self.tx_cmds * 4 < at_target
    }

    /// Bytes waiting to be sent.
    pub fn transmit(&self) -> &[u8] {
        &self.tx[self.tx_pos..]
    }

    /// `n` bytes of [`Session::transmit`] were sent.
    pub fn consume_transmit(&mut self, n: usize) {
        self.tx_pos = (self.tx_pos + n).min(self.tx.len());
        if self.tx_pos == self.tx.len() {
            self.tx.clear();
            self.tx_cmds = 0;
            self.tx_cmd_bytes = 0;
            self.tx_pos = 0;
        }
    }

    /// Where the next received bytes can go without a copy, when at least `min` bytes of the
    /// Data-In data segment being received are still to come: first the rest of that segment,
    /// inside the caller's buffer of its command (DataSN, offset and length already checked);
    /// then the Data-In PDUs the target is likely to send next for the same task: of the
    /// current segment's length, at contiguous offsets, up to [`PLAN_AHEAD`] of them. `None`
    /// when received bytes must go through [`Session::process`]. One
    /// receive into all the parts then takes several PDUs, with their data straight in the
    /// caller's buffer. No plan with digests, for a segment that carries status, or for
    /// lengths that need padding. After receiving `n` bytes into the parts (in order, each
    /// filled before the next), call [`Session::direct_received`]: each planned header is
    /// checked before its PDU is taken, and bytes the plan guessed wrong about are copied out
    /// of the caller's buffer, which is cleared again, and processed as usual.
    pub fn direct_rx_plan(&mut self, min: usize) -> Option<DirectRx<'_>> {
        self.plan = RxPlan::default();
        let pending = self.rx.data_pending() as usize;
        if pending == 0
            || pending < min
            || !matches!(self.conn, Conn::Full | Conn::LoggingOut { .. })
        {
            return None;
        }
        let RxDest::Task { slot, offset } = self.rx_dest else {
            return None;
        };
        let (cur_len, last) = match &self.rx_cur {
            Some(Decoded {
                header: TargetHeader::DataIn { status, .. },
                data_len,
                ..
            }) => (*data_len as usize, status.is_some()),
            _ => (0, true),
        };
        let task = self.tasks.get(slot)?.as_ref()?;
        let mut plan = RxPlan {
            slot,
            total: pending,
            ..RxPlan::default()
        };
        let cur_end = offset + pending;
        let plannable = !last
            && !self.digests.header
            && !self.digests.data
            && cur_len % 4 == 0
            && cur_end == task.next_offset as usize;
        if self.plan_backoff > 0 {
            self.plan_backoff -= 1;
        } else if plannable {
            let end = (task.len as usize).min(task.buf.len());
            let mut off = cur_end;
            while plan.count < PLAN_AHEAD && off < end {
                let len = cur_len.min(end - off);
                if len == 0 || len % 4 != 0 {
                    break;
                }
                plan.next[plan.count] = (off, len);
                plan.count += 1;
                plan.total += BHS_LEN + len;
                off += len;
            }
        }
        let planned_end = plan.next[..plan.count]
            .last()
            .map_or(cur_end, |&(o, l)| o + l);
        self.plan = plan;
        let Self {
            tasks, plan_hdr, ..
        } = self;
        let region = tasks
            .get_mut(slot)?
            .as_mut()?
            .buf
            .get_mut(offset..planned_end)?;
        let (cur, mut rest) = region.split_at_mut(pending);
        let mut parts: [&mut [u8]; 1 + 2 * PLAN_AHEAD] = Default::default();
        parts[0] = cur;
        let mut hdrs = plan_hdr.chunks_exact_mut(BHS_LEN);
        for (i, &(_, len)) in plan.next[..plan.count].iter().enumerate() {
            parts[1 + 2 * i] = hdrs.next()?;
            let (data, tail) = core::mem::take(&mut rest).split_at_mut(len);
            parts[2 + 2 * i] = data;
            rest = tail;
        }
        Some(DirectRx {
            parts,
            count: 1 + 2 * plan.count,
            sure: pending,
            likely: plan.total,
        })
    }

    /// `n` bytes were received into the parts [`Session::direct_rx_plan`] gave out.
    pub fn direct_received(&mut self, now: Instant, n: usize) {
        let plan = core::mem::take(&mut self.plan);
        if plan.count > 0 && n < plan.total {
            self.plan_backoff = PLAN_BACKOFF;
        }
        let first = n.min(self.rx.data_pending() as usize);
        self.place(now, first);
        let mut left = n - first;
        for i in 0..plan.count {
            if left == 0 {
                return;
            }
            if left < BHS_LEN || !self.plan_hit(&plan, i) {
                if left >= BHS_LEN {
                    self.plan_backoff = PLAN_BACKOFF;
                }
                self.replay(now, &plan, i, left);
                return;
            }
            let mut hdr = [0u8; BHS_LEN];
            hdr.copy_from_slice(&self.plan_hdr[i * BHS_LEN..(i + 1) * BHS_LEN]);
            left -= BHS_LEN;
            self.process(now, &hdr);
            let data = left.min(plan.next[i].1);
            self.place(now, data);
            left -= data;
        }
    }

    /// `n` bytes of the current data segment were received in place.
    fn place(&mut self, now: Instant, n: usize) {
        let RxDest::Task { slot, offset } = &mut self.rx_dest else {
            return;
        };
        let n = n.min(self.rx.data_pending() as usize);
        if let Some(placed) = self.tasks[*slot]
            .as_ref()
            .and_then(|t| t.buf.get(*offset..*offset + n))
        {
            self.rx.placed(placed);
        }
        *offset += n;
        self.last_rx = now;
        // The segment may be complete: take its end (and what follows it) now.
        self.process(now, &[]);
    }

    /// True when the header received for planned PDU `i` is the Data-In it expects, one that
    /// taking in place cannot go wrong with: this task, the next DataSN, the planned offset
    /// and length, no AHS, and no status unless it is the last planned PDU (the task must not
    /// complete while its buffer still holds bytes of PDUs after it). Checked before the
    /// header is processed, so that on a miss nothing has been taken yet.
    fn plan_hit(&self, plan: &RxPlan, i: usize) -> bool {
        let Some(raw) = self.plan_hdr.get(i * BHS_LEN..(i + 1) * BHS_LEN) else {
            return false;
        };
        let Ok(d) = decode_target_bhs(raw) else {
            return false;
        };
        let (off, len) = plan.next[i];
        let TargetHeader::DataIn {
            itt,
            status,
            data_sn,
            buffer_offset,
            ..
        } = d.header
        else {
            return false;
        };
        let Some(task) = self.tasks.get(plan.slot).and_then(|t| t.as_ref()) else {
            return false;
        };
        raw[4] == 0
            && self.rx.at_boundary()
            && matches!(self.conn, Conn::Full | Conn::LoggingOut { .. })
            && task.itt == itt
            && task.state == TaskState::Active
            && task.exp_data_sn == data_sn
            && task.next_offset as usize == off
            && buffer_offset as usize == off
            && d.data_len as usize == len
            && (status.is_none() || i + 1 == plan.count)
    }

    /// The plan guessed wrong from PDU `from` on (or its bytes ran out inside a header): copy
    /// the `left` bytes received into its parts from there out, in stream order, clear them in
    /// the caller's buffer, and process them as usual.
    fn replay(&mut self, now: Instant, plan: &RxPlan, from: usize, mut left: usize) {
        let mut spill = core::mem::take(&mut self.spill);
        spill.clear();
        for j in from..plan.count {
            let h = left.min(BHS_LEN);
            spill.extend_from_slice(&self.plan_hdr[j * BHS_LEN..j * BHS_LEN + h]);
            left -= h;
            let (off, len) = plan.next[j];
            let d = left.min(len);
            if let Some(region) = self
                .tasks
                .get_mut(plan.slot)
                .and_then(|t| t.as_mut())
                .and_then(|t| t.buf.get_mut(off..off + d))
            {
                spill.extend_from_slice(region);
                region.fill(0);
            }
            left -= d;
            if left == 0 {
                break;
            }
        }
        self.process(now, &spill);
        spill.clear();
        self.spill = spill;
    }

    /// True when a read command has at least `min` bytes of Data-In still to come: the
    /// transport then does better to receive headers in small reads, so that the data segments
    /// that follow land straight in the caller's buffer ([`Session::direct_rx_plan`]).
    pub fn large_read_pending(&self, min: u32) -> bool {
        self.tasks.iter().flatten().any(|t| {
            t.state == TaskState::Active
                && t.dir == Direction::Read
                && t.len.saturating_sub(t.next_offset) >= min
        })
    }

    /// The next completion, if any.
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    // ----- time ----------------------------------------------------------------------

    /// The next instant at which [`Session::handle_timeout`] has work.
    pub fn poll_at(&self) -> Option<Instant> {
        let mut t = match &self.conn {
            Conn::Down { at } => Some(*at),
            Conn::Connecting { deadline }
            | Conn::LoggingIn { deadline, .. }
            | Conn::LoggingOut { deadline, .. } => Some(*deadline),
            Conn::Full => match self.ping {
                Some((_, sent)) => Some(sent + self.cfg.ping_timeout),
                None if self.cfg.ping_interval > Duration::ZERO => {
                    Some(self.last_rx + self.cfg.ping_interval)
                }
                None => None,
            },
            Conn::Closed | Conn::Failed(_) => None,
        };
        for task in self.tasks.iter().flatten() {
            if let TaskState::Delayed(at) = task.state {
                t = earliest(t, Some(at));
            }
        }
        t
    }

    /// Run deadlines that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.conn {
            Conn::Connecting { deadline } if now >= *deadline => {
                self.fail_connection(now, SessionError::ConnectFailed);
            }
            Conn::LoggingIn { deadline, .. } if now >= *deadline => {
                self.fail_connection(now, SessionError::Login(LoginError::Timeout));
            }
            Conn::LoggingOut {
                deadline,
                reconnect,
                ..
            } if now >= *deadline => {
                let reconnect = *reconnect;
                self.close_pending = true;
                if reconnect {
                    self.go_down(now, self.time2wait());
                } else {
                    self.finish_logout();
                }
            }
            Conn::Full => {
                if let Some((_, sent)) = self.ping {
                    if now >= sent + self.cfg.ping_timeout {
                        self.fail_connection(now, SessionError::PingTimeout);
                        return;
                    }
                } else if self.cfg.ping_interval > Duration::ZERO
                    && now >= self.last_rx + self.cfg.ping_interval
                {
                    self.send_ping(now);
                }
            }
            _ => {}
        }
        // Delayed retries (BUSY, TASK SET FULL) whose back-off has passed.
        let mut woke = false;
        for slot in 0..self.tasks.len() {
            if let Some(t) = &mut self.tasks[slot] {
                if let TaskState::Delayed(at) = t.state {
                    if now >= at {
                        t.state = TaskState::Queued;
                        self.queue.push_back(slot);
                        woke = true;
                    }
                }
            }
        }
        if woke {
            self.pump();
        }
    }

    // ----- submission ----------------------------------------------------------------

    /// Queue a SCSI command. For reads, data lands in `buffer[..len]`; for writes,
    /// `buffer[..len]` is sent. The buffer comes back in the completion.
    pub fn submit(
        &mut self,
        lun: Lun,
        cdb: Cdb,
        dir: Direction,
        buffer: Vec<u8>,
        len: u32,
    ) -> Result<TaskHandle, (SubmitError, Vec<u8>)> {
        if matches!(
            self.conn,
            Conn::Closed | Conn::Failed(_) | Conn::LoggingOut { .. }
        ) || self.logout_wanted
        {
            return Err((SubmitError::Closed, buffer));
        }
        if (buffer.len() as u64) < u64::from(len) || (dir == Direction::None && len != 0) {
            return Err((SubmitError::BufferTooSmall, buffer));
        }
        let Some(slot) = self.tasks.iter().position(|t| t.is_none()) else {
            return Err((SubmitError::QueueFull, buffer));
        };
        self.generation[slot] = (self.generation[slot].wrapping_add(1)) & 0x7fff;
        let itt = (u32::from(self.generation[slot]) << 16) | slot as u32;
        self.seq += 1;
        self.tasks[slot] = Some(Task {
            itt,
            seq: self.seq,
            lun,
            cdb,
            dir,
            buf: buffer,
            len,
            state: TaskState::Queued,
            cmd_sn: SerialNumber(0),
            exp_data_sn: SerialNumber(0),
            next_offset: 0,
            next_r2t_sn: SerialNumber(0),
            ua_retries: 0,
            busy_retries: 0,
        });
        self.active += 1;
        self.queue.push_back(slot);
        self.pump();
        Ok(TaskHandle(itt))
    }

    /// Ask the target for its targets (`SendTargets=All`, RFC 7143 Appendix C); the answer
    /// arrives as [`Completion::Text`].
    pub fn send_targets(&mut self) -> Result<(), SubmitError> {
        if self.text.is_some() {
            return Err(SubmitError::Busy);
        }
        if matches!(self.conn, Conn::Closed | Conn::Failed(_)) {
            return Err(SubmitError::Closed);
        }
        let mut request = Vec::new();
        push_pair(&mut request, "SendTargets", "All");
        let itt = self.special_itt();
        self.text = Some(TextOp {
            itt,
            data: Vec::new(),
            request,
            sent: false,
            renegotiate: false,
        });
        self.pump();
        Ok(())
    }

    /// ABORT TASK for a command (RFC 7143 §11.5.1).
    pub fn abort_task(&mut self, handle: TaskHandle) -> Result<TaskHandle, SubmitError> {
        let slot = self.slot_of(handle.0).ok_or(SubmitError::NoSuchTask)?;
        let (state, lun) = match &self.tasks[slot] {
            Some(t) => (t.state, t.lun),
            None => return Err(SubmitError::NoSuchTask),
        };
        if state != TaskState::Active || !self.is_ready() {
            // Never sent (or not on this connection): finish it here.
            self.queue.retain(|&s| s != slot);
            self.complete(slot, Err(CommandError::Aborted));
            let itt = self.special_itt();
            self.completions.push_back(Completion::TaskManagement {
                handle: TaskHandle(itt),
                response: 0,
            });
            return Ok(TaskHandle(itt));
        }
        Ok(self.send_tmf(tmf::ABORT_TASK, lun, Some(handle.0)))
    }

    /// LOGICAL UNIT RESET (RFC 7143 §11.5.1).
    pub fn lun_reset(&mut self, lun: Lun) -> Result<TaskHandle, SubmitError> {
        if !self.is_ready() {
            return Err(SubmitError::Closed);
        }
        Ok(self.send_tmf(tmf::LOGICAL_UNIT_RESET, lun, None))
    }

    /// Log out (close the session, RFC 7143 §11.14) once the current commands are done.
    pub fn logout(&mut self, now: Instant) {
        match self.conn {
            Conn::Full => {
                self.logout_wanted = true;
                self.maybe_logout(now);
            }
            Conn::Closed | Conn::Failed(_) | Conn::LoggingOut { .. } => {}
            _ => {
                // Not connected: nothing to log out of.
                self.fail_all(SessionError::LoggedOut);
                self.conn = Conn::Closed;
                self.completions.push_back(Completion::LoggedOut);
            }
        }
    }

    // ----- receive -------------------------------------------------------------------

    /// Process bytes received from the transport.
    pub fn process(&mut self, now: Instant, mut input: &[u8]) {
        // Poll until the receiver needs more input: a PDU may end exactly at the end of
        // `input`, and its End event still has to be taken.
        loop {
            if !matches!(
                self.conn,
                Conn::LoggingIn { .. } | Conn::Full | Conn::LoggingOut { .. }
            ) {
                return;
            }
            let ev = match self.rx.poll(&mut input) {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => {
                    self.fail_connection(now, SessionError::Frame(e));
                    return;
                }
            };
            let r = match ev {
                RxEvent::Header(d) => {
                    self.last_rx = now;
                    self.on_header(d)
                }
                RxEvent::Data(chunk) => {
                    self.on_data(chunk);
                    Ok(())
                }
                RxEvent::End => self.on_end(now),
            };
            if let Err(e) = r {
                self.fail_connection(now, e);
                return;
            }
        }
        self.pump();
    }

    fn on_header(&mut self, d: Decoded) -> Result<(), SessionError> {
        self.scratch.clear();
        self.rx_dest = if d.data_len == 0 {
            RxDest::None
        } else {
            RxDest::Scratch
        };
        if let TargetHeader::DataIn {
            itt,
            data_sn,
            buffer_offset,
            ..
        } = d.header
        {
            let slot = self
                .slot_of(itt)
                .ok_or(SessionError::Protocol("Data-In for an unknown task"))?;
            let task = self.tasks[slot]
                .as_mut()
                .ok_or(SessionError::Protocol("Data-In for an unknown task"))?;
            if task.state != TaskState::Active || task.dir != Direction::Read {
                return Err(SessionError::Protocol(
                    "Data-In for a task that is not reading",
                ));
            }
            // RFC 7143 §11.7.5: DataSN counts Data-In PDUs of the task from 0.
            if data_sn != task.exp_data_sn {
                return Err(SessionError::Protocol("Data-In DataSN out of order"));
            }
            // DataPDUInOrder=Yes (§13.18): offsets are contiguous and increasing; and the data
            // must fit the expected transfer length (§11.7.6).
            if buffer_offset != task.next_offset {
                return Err(SessionError::Protocol("Data-In buffer offset out of order"));
            }
            let end = u64::from(buffer_offset) + u64::from(d.data_len);
            if end > u64::from(task.len) {
                return Err(SessionError::Protocol(
                    "Data-In beyond the expected transfer length",
                ));
            }
            task.exp_data_sn = task.exp_data_sn.next();
            task.next_offset = end as u32;
            if d.data_len > 0 {
                self.rx_dest = RxDest::Task {
                    slot,
                    offset: buffer_offset as usize,
                };
            }
        }
        self.rx_cur = Some(d);
        Ok(())
    }

    fn on_data(&mut self, chunk: &[u8]) {
        match &mut self.rx_dest {
            RxDest::None => {}
            RxDest::Scratch => self.scratch.extend_from_slice(chunk),
            RxDest::Task { slot, offset } => {
                if let Some(t) = self.tasks[*slot].as_mut() {
                    // Bounds were checked against `len <= buf.len()` at the header.
                    if let Some(dst) = t.buf.get_mut(*offset..*offset + chunk.len()) {
                        dst.copy_from_slice(chunk);
                    }
                }
                *offset += chunk.len();
            }
        }
    }

    /// Track StatSN for a PDU that carries status (RFC 7143 §4.2.2.2). `strict` makes a gap a
    /// protocol error (the datapath), otherwise it is logged and followed.
    fn track_stat_sn(
        &mut self,
        stat_sn: Option<SerialNumber>,
        strict: bool,
    ) -> Result<(), SessionError> {
        if let Some(s) = stat_sn {
            if s != self.exp_stat_sn {
                if strict {
                    return Err(SessionError::Protocol("StatSN out of sequence"));
                }
                log::debug!(
                    "StatSN {} while {} was expected; following the target",
                    s.0,
                    self.exp_stat_sn.0
                );
            }
            if s.ge(self.exp_stat_sn) || !strict {
                self.exp_stat_sn = s.next();
            }
        }
        Ok(())
    }

    /// RFC 7143 §4.2.2.1: take ExpCmdSN/MaxCmdSN if MaxCmdSN >= ExpCmdSN - 1 and newer.
    fn update_window(&mut self, sn: SnFields) {
        if sn.max_cmd_sn.lt(sn.exp_cmd_sn.add(u32::MAX)) {
            log::debug!(
                "ignoring invalid window ExpCmdSN {} MaxCmdSN {}",
                sn.exp_cmd_sn.0,
                sn.max_cmd_sn.0
            );
            return;
        }
        if sn.exp_cmd_sn.gt(self.exp_cmd_sn) {
            self.exp_cmd_sn = sn.exp_cmd_sn;
        }
        if sn.max_cmd_sn.gt(self.max_cmd_sn) {
            self.max_cmd_sn = sn.max_cmd_sn;
        }
    }

    fn on_end(&mut self, now: Instant) -> Result<(), SessionError> {
        let Some(d) = self.rx_cur.take() else {
            return Ok(());
        };
        let h = d.header;
        if let Conn::LoggingIn { .. } = self.conn {
            return self.on_login_pdu(now, &h);
        }
        let sn = sn_of(&h);
        self.update_window(sn);
        match h {
            TargetHeader::DataIn {
                itt,
                status,
                overflow,
                underflow,
                residual,
                data_sn,
                ..
            } => {
                if let Some(st) = status {
                    self.track_stat_sn(sn.stat_sn, true)?;
                    let slot = self
                        .slot_of(itt)
                        .ok_or(SessionError::Protocol("Data-In for an unknown task"))?;
                    // The status arrived with the last Data-In (RFC 7143 §11.7.3).
                    self.finish_command(
                        now,
                        slot,
                        st,
                        overflow,
                        underflow,
                        residual,
                        None,
                        data_sn.next(),
                    )?;
                }
            }
            TargetHeader::ScsiResponse {
                itt,
                response,
                status,
                overflow,
                underflow,
                exp_data_sn,
                residual,
                ..
            } => {
                self.track_stat_sn(sn.stat_sn, true)?;
                let Some(slot) = self.slot_of(itt) else {
                    log::debug!("SCSI Response for unknown task {itt:#x}");
                    return Ok(());
                };
                if self.tasks[slot]
                    .as_ref()
                    .is_some_and(|t| t.state != TaskState::Active)
                {
                    return Err(SessionError::Protocol("SCSI Response for a task not sent"));
                }
                if response != 0 {
                    self.complete(slot, Err(CommandError::TargetFailure(response)));
                    return Ok(());
                }
                // RFC 7143 §11.4.7: SenseLength then sense data.
                let sense = if self.scratch.len() >= 2 {
                    let n = usize::from(u16::from_be_bytes([self.scratch[0], self.scratch[1]]));
                    let s = self
                        .scratch
                        .get(2..2 + n)
                        .ok_or(SessionError::Protocol("sense data longer than the segment"))?;
                    (n > 0).then(|| Sense::new(s))
                } else {
                    None
                };
                self.finish_command(
                    now,
                    slot,
                    status,
                    overflow,
                    underflow,
                    residual,
                    sense,
                    exp_data_sn,
                )?;
            }
            TargetHeader::R2t {
                itt,
                ttt,
                r2t_sn,
                buffer_offset,
                desired_len,
                ..
            } => {
                self.on_r2t(itt, ttt, r2t_sn, buffer_offset, desired_len)?;
            }
            TargetHeader::NopIn { lun, itt, ttt, .. } => {
                if itt != RESERVED_TAG {
                    self.track_stat_sn(sn.stat_sn, false)?;
                    if self.ping.is_some_and(|(p, _)| p == itt) {
                        self.ping = None;
                    } else {
                        log::debug!("NOP-In for unknown ping {itt:#x}");
                    }
                }
                if ttt != RESERVED_TAG {
                    // RFC 7143 §11.19.2: answer the target's ping with its TTT and data.
                    let n = self
                        .scratch
                        .len()
                        .min(self.params.max_send_data_segment_length as usize);
                    let data = core::mem::take(&mut self.scratch);
                    self.send_nop_out(RESERVED_TAG, ttt, lun, &data[..n]);
                    self.scratch = data;
                }
            }
            TargetHeader::TaskMgmtResponse { itt, response, .. } => {
                self.track_stat_sn(sn.stat_sn, false)?;
                self.on_tmf_response(itt, response);
            }
            TargetHeader::TextResponse {
                final_, itt, ttt, ..
            } => {
                self.track_stat_sn(sn.stat_sn, false)?;
                self.on_text_response(final_, itt, ttt)?;
            }
            TargetHeader::LogoutResponse {
                itt,
                response,
                time2wait,
                ..
            } => {
                self.track_stat_sn(sn.stat_sn, false)?;
                if let Conn::LoggingOut {
                    itt: want,
                    reconnect,
                    ..
                } = self.conn
                {
                    if want != itt {
                        return Err(SessionError::Protocol("Logout Response for another task"));
                    }
                    if response != 0 {
                        log::warn!("logout response {response}");
                    }
                    self.close_pending = true;
                    if reconnect {
                        let wait = Duration::from_secs(time2wait.into());
                        self.go_down(now, wait);
                    } else {
                        self.finish_logout();
                    }
                } else {
                    return Err(SessionError::Protocol("unsolicited Logout Response"));
                }
            }
            TargetHeader::AsyncMessage {
                event,
                parameter1,
                parameter2,
                parameter3,
                ..
            } => {
                self.track_stat_sn(sn.stat_sn, false)?;
                self.on_async(now, event, parameter1, parameter2, parameter3)?;
            }
            TargetHeader::Reject { reason, .. } => {
                self.track_stat_sn(sn.stat_sn, false)?;
                self.on_reject(reason)?;
            }
            TargetHeader::LoginResponse { .. } => {
                return Err(SessionError::Protocol(
                    "Login Response in full-feature phase",
                ));
            }
        }
        if matches!(self.conn, Conn::Full) {
            self.maybe_logout(now);
        }
        Ok(())
    }

    fn on_login_pdu(&mut self, now: Instant, h: &TargetHeader) -> Result<(), SessionError> {
        let Conn::LoggingIn { login, .. } = &mut self.conn else {
            return Ok(());
        };
        let data = core::mem::take(&mut self.scratch);
        let r = login.on_response(h, &data, &mut self.tx, &mut self.rng);
        self.scratch = data;
        match r.map_err(SessionError::Login)? {
            LoginProgress::Continue => Ok(()),
            LoginProgress::Complete(outcome) => {
                self.on_logged_in(now, outcome);
                Ok(())
            }
            LoginProgress::Redirect { address, permanent } => {
                self.redirects = self.redirects.saturating_add(1);
                if self.redirects > self.cfg.max_redirects {
                    return Err(SessionError::TooManyRedirects);
                }
                let (portal, _) = Portal::parse(&address).ok_or(SessionError::BadRedirect)?;
                log::info!(
                    "login redirected ({}) to {}:{}",
                    if permanent {
                        "permanently"
                    } else {
                        "temporarily"
                    },
                    portal.host,
                    portal.port
                );
                // RFC 7143 §11.13.5: temporary redirects apply to this login only; we go back
                // to the configured portal for later recoveries.
                if permanent {
                    self.cfg.portal = portal.clone();
                }
                self.portal = portal;
                self.close_pending = true;
                self.conn = Conn::Down { at: now };
                Ok(())
            }
        }
    }

    fn on_logged_in(&mut self, now: Instant, o: LoginOutcome) {
        self.params = o.params;
        self.digests = DigestConfig {
            header: self.params.header_digest,
            data: self.params.data_digest,
        };
        self.rx
            .configure(self.digests, self.params.max_recv_data_segment_length);
        self.tsih = o.tsih;
        self.exp_stat_sn = o.exp_stat_sn;
        // The first command carries the CmdSN the target expects (RFC 7143 §11.12.8).
        self.cmd_sn = o.exp_cmd_sn;
        self.exp_cmd_sn = o.exp_cmd_sn;
        self.max_cmd_sn = o.max_cmd_sn;
        self.conn = Conn::Full;
        self.ever_logged_in = true;
        self.logins += 1;
        self.attempts = 0;
        self.recovery_since = None;
        self.redirects = 0;
        self.portal = self.cfg.portal.clone();
        self.last_rx = now;
        self.error = None;
        log::info!(
            "logged in: CHAP {:?}, TSIH {:#x}, digests {}/{}, MaxBurst {}, FirstBurst {}, InitialR2T {}, ImmediateData {}",
            o.chap,
            self.tsih,
            self.params.header_digest,
            self.params.data_digest,
            self.params.max_burst_length,
            self.params.first_burst_length,
            self.params.initial_r2t,
            self.params.immediate_data
        );
        // Re-issue everything that had not completed, in submission order.
        let mut slots: Vec<(u64, usize)> = self
            .tasks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                t.as_ref()
                    .filter(|t| !matches!(t.state, TaskState::Delayed(_)))
                    .map(|t| (t.seq, i))
            })
            .collect();
        slots.sort_unstable();
        self.queue.clear();
        for (_, s) in slots {
            if let Some(t) = self.tasks[s].as_mut() {
                t.state = TaskState::Queued;
                t.reset_progress();
            }
            self.queue.push_back(s);
        }
        if let Some(t) = &mut self.text {
            t.sent = false;
            t.data.clear();
        }
        self.pump();
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_command(
        &mut self,
        now: Instant,
        slot: usize,
        status: u8,
        overflow: bool,
        underflow: bool,
        residual: u32,
        sense: Option<Sense>,
        exp_data_sn: SerialNumber,
    ) -> Result<(), SessionError> {
        let Some(task) = self.tasks[slot].as_mut() else {
            return Ok(());
        };
        let status = ScsiStatus(status);
        let residual = match (overflow, underflow) {
            (true, _) => Residual::Overflow(residual),
            (_, true) => Residual::Underflow(residual),
            _ => Residual::None,
        };
        let transferred = match (task.dir, residual) {
            (Direction::Read, _) => task.next_offset,
            (Direction::Write, Residual::Underflow(r)) => task.len.saturating_sub(r),
            (Direction::Write, _) => task.len,
            (Direction::None, _) => 0,
        };
        if status == ScsiStatus::GOOD && task.dir == Direction::Read {
            // RFC 7143 §11.4.5: with GOOD status the data received must match the residual.
            let expect = match residual {
                Residual::Underflow(r) => task
                    .len
                    .checked_sub(r)
                    .ok_or(SessionError::Protocol("residual exceeds the transfer"))?,
                _ => task.len,
            };
            if task.next_offset != expect {
                return Err(SessionError::Protocol("Data-In did not cover the transfer"));
            }
            // §11.4.9: ExpDataSN is the number of Data-In PDUs (0 tolerated, as some targets
            // send it for status-only responses).
            if exp_data_sn != task.exp_data_sn && exp_data_sn != SerialNumber(0) {
                return Err(SessionError::Protocol(
                    "ExpDataSN does not match the Data-In count",
                ));
            }
        }
        // SAM-5: UNIT ATTENTION, BUSY and TASK SET FULL are retried.
        let ua = status == ScsiStatus::CHECK_CONDITION
            && sense
                .and_then(|s| s.decode())
                .is_some_and(|i| i.key == SenseKey::UNIT_ATTENTION);
        if ua && task.ua_retries < self.cfg.unit_attention_retries {
            task.ua_retries += 1;
            log::debug!("UNIT ATTENTION on task {:#x}; retrying", task.itt);
            task.state = TaskState::Queued;
            task.reset_progress();
            self.queue.push_back(slot);
            return Ok(());
        }
        if (status == ScsiStatus::BUSY || status == ScsiStatus::TASK_SET_FULL)
            && task.busy_retries < self.cfg.busy_retries
        {
            let shift = u32::from(task.busy_retries.min(6));
            task.busy_retries += 1;
            let delay = Duration::from_millis((20u64 << shift).min(1000));
            log::debug!(
                "status {:#x} on task {:#x}; retrying in {} ms",
                status.0,
                task.itt,
                delay.total_millis()
            );
            task.state = TaskState::Delayed(now + delay);
            task.reset_progress();
            return Ok(());
        }
        self.complete(
            slot,
            Ok(ScsiOutcome {
                status,
                residual,
                sense,
                transferred,
            }),
        );
        Ok(())
    }

    fn on_r2t(
        &mut self,
        itt: u32,
        ttt: u32,
        r2t_sn: SerialNumber,
        offset: u32,
        len: u32,
    ) -> Result<(), SessionError> {
        let slot = self
            .slot_of(itt)
            .ok_or(SessionError::Protocol("R2T for an unknown task"))?;
        let max_burst = self.params.max_burst_length;
        let seg = self.params.max_send_data_segment_length.max(512);
        let exp_stat_sn = self.exp_stat_sn;
        let digests = self.digests;
        let task = self.tasks[slot]
            .as_mut()
            .ok_or(SessionError::Protocol("R2T for an unknown task"))?;
        if task.state != TaskState::Active || task.dir != Direction::Write {
            return Err(SessionError::Protocol("R2T for a task that is not writing"));
        }
        // RFC 7143 §11.8.3: R2TSN numbers the task's R2Ts from 0.
        if r2t_sn != task.next_r2t_sn {
            return Err(SessionError::Protocol("R2TSN out of order"));
        }
        // §11.8.4: the requested range must lie inside the transfer and one burst.
        if len > max_burst || u64::from(offset) + u64::from(len) > u64::from(task.len) {
            return Err(SessionError::Protocol(
                "R2T outside the transfer or MaxBurstLength",
            ));
        }
        task.next_r2t_sn = task.next_r2t_sn.next();
        // Answer at once: the whole burst as Data-Out PDUs of at most MaxRecvDataSegmentLength
        // (the target's), DataSN from 0 per R2T (§11.7.5), F on the last.
        let mut data_sn = 0u32;
        let mut done = 0u32;
        while done < len {
            let n = (len - done).min(seg);
            let off = offset + done;
            let last = done + n == len;
            let mut h = bhs::DataOut {
                opcode: Opcode::DATA_OUT.0,
                flags: if last { FINAL } else { 0 },
                lun: task.lun.0,
                ..Default::default()
            };
            h.data_segment_len = bhs::dsl_to(n);
            h.itt.set(itt);
            h.ttt.set(ttt);
            h.exp_stat_sn.set(exp_stat_sn.0);
            h.data_sn.set(data_sn);
            h.buffer_offset.set(off);
            let data = &task.buf[off as usize..(off + n) as usize];
            write_pdu(&mut self.tx, digests, as48(h.as_bytes()), &[], data);
            data_sn += 1;
            done += n;
        }
        Ok(())
    }

    fn on_tmf_response(&mut self, itt: u32, response: u8) {
        let Some(i) = self.tmfs.iter().position(|t| t.itt == itt) else {
            log::debug!("TMF response for unknown task {itt:#x}");
            return;
        };
        let op = self.tmfs.swap_remove(i);
        // RFC 7143 §11.6.1: 0 = function complete, 1 = task does not exist.
        if response == 0 || response == 1 {
            match (op.function, op.referenced) {
                (tmf::ABORT_TASK, Some(r)) => {
                    if let Some(slot) = self.slot_of(r) {
                        self.queue.retain(|&s| s != slot);
                        self.complete(slot, Err(CommandError::Aborted));
                    }
                }
                (tmf::LOGICAL_UNIT_RESET, _) if response == 0 => {
                    for slot in 0..self.tasks.len() {
                        if self.tasks[slot]
                            .as_ref()
                            .is_some_and(|t| t.lun == op.lun && t.state == TaskState::Active)
                        {
                            self.complete(slot, Err(CommandError::Aborted));
                        }
                    }
                }
                _ => {}
            }
        }
        self.completions.push_back(Completion::TaskManagement {
            handle: TaskHandle(itt),
            response,
        });
    }

    fn on_text_response(&mut self, final_: bool, itt: u32, ttt: u32) -> Result<(), SessionError> {
        let Some(op) = self.text.as_mut().filter(|t| t.itt == itt) else {
            return Err(SessionError::Protocol("Text Response for an unknown task"));
        };
        if op.data.len() + self.scratch.len() > 1024 * 1024 {
            return Err(SessionError::Protocol("text response too long"));
        }
        op.data.extend_from_slice(&self.scratch);
        if !final_ {
            // RFC 7143 §11.10.4: continue with an empty Text Request carrying the TTT.
            self.send_text_request(itt, ttt, &[]);
            return Ok(());
        }
        let Some(op) = self.text.take() else {
            return Ok(());
        };
        if !op.renegotiate {
            self.completions
                .push_back(Completion::Text { data: op.data });
            return Ok(());
        }
        // Renegotiation in full-feature phase (RFC 7143 §6.2, §13.12): the target may declare a
        // new MaxRecvDataSegmentLength; keys that cannot change after login are refused.
        let mut reply = Vec::new();
        for p in crate::wire::text::pairs(&op.data) {
            let (k, v) =
                p.map_err(|_| SessionError::Protocol("malformed text in renegotiation"))?;
            match k {
                "MaxRecvDataSegmentLength" => {
                    let n = crate::wire::text::parse_number(v)
                        .filter(|n| (512..(1 << 24)).contains(n))
                        .ok_or(SessionError::Protocol("bad MaxRecvDataSegmentLength"))?;
                    self.params.max_send_data_segment_length =
                        (n as u32).min(self.cfg.login.operational.max_send_data_segment_length);
                }
                _ => push_pair(&mut reply, k, "Reject"),
            }
        }
        if !reply.is_empty() && ttt != RESERVED_TAG {
            self.send_text_request(itt, ttt, &reply);
            self.text = Some(TextOp {
                itt,
                data: Vec::new(),
                request: Vec::new(),
                sent: true,
                renegotiate: true,
            });
        }
        Ok(())
    }

    fn on_async(
        &mut self,
        now: Instant,
        event: u8,
        p1: u16,
        p2: u16,
        p3: u16,
    ) -> Result<(), SessionError> {
        // RFC 7143 §11.9.1.
        match event {
            0 => log::info!("target reported a SCSI asynchronous event"),
            1 => {
                log::info!("target requests logout within {p3} s; logging out and reconnecting");
                self.start_logout(now, true);
            }
            2 | 3 => {
                log::info!(
                    "target will drop the {} (Time2Wait {p2} s)",
                    if event == 2 { "connection" } else { "session" }
                );
                self.error = Some(SessionError::ConnectionLost);
                self.close_pending = true;
                self.requeue_active();
                self.go_down(now, Duration::from_secs(p2.into()));
            }
            4 => {
                // Renegotiation request: an empty Text Request starts it (§11.9.1 event 4).
                if self.text.is_none() {
                    let itt = self.special_itt();
                    self.text = Some(TextOp {
                        itt,
                        data: Vec::new(),
                        request: Vec::new(),
                        sent: false,
                        renegotiate: true,
                    });
                }
            }
            255 => log::debug!("vendor-specific async event"),
            other => log::debug!("unknown async event {other} (parameter1 {p1})"),
        }
        Ok(())
    }

    fn on_reject(&mut self, reason: u8) -> Result<(), SessionError> {
        // RFC 7143 §11.17.3: the data segment holds the rejected PDU's header.
        let h = self
            .scratch
            .get(..BHS_LEN)
            .ok_or(SessionError::Protocol("short Reject"))?;
        let op = Opcode(h[0] & 0x3f);
        let itt = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        log::warn!(
            "target rejected a PDU (opcode {:#04x}, reason {reason:#04x})",
            op.0
        );
        match op {
            Opcode::SCSI_COMMAND | Opcode::DATA_OUT => {
                if let Some(slot) = self.slot_of(itt) {
                    self.complete(slot, Err(CommandError::Rejected(reason)));
                }
            }
            Opcode::NOP_OUT if self.ping.is_some_and(|(p, _)| p == itt) => self.ping = None,
            Opcode::TEXT_REQUEST if self.text.as_ref().is_some_and(|t| t.itt == itt) => {
                self.text = None;
                self.completions
                    .push_back(Completion::Text { data: Vec::new() });
            }
            Opcode::TASK_MGMT_REQUEST => self.on_tmf_response(itt, 0xff),
            _ => {}
        }
        Ok(())
    }

    // ----- transmit helpers ----------------------------------------------------------

    fn special_itt(&mut self) -> u32 {
        self.next_special_itt = self.next_special_itt.wrapping_add(1) & 0x7fff_ffff;
        0x8000_0000 | self.next_special_itt.min(0x7fff_fffe)
    }

    fn slot_of(&self, itt: u32) -> Option<usize> {
        if itt & 0x8000_0000 != 0 {
            return None;
        }
        let slot = (itt & 0xffff) as usize;
        self.tasks
            .get(slot)?
            .as_ref()
            .filter(|t| t.itt == itt)
            .map(|_| slot)
    }

    fn window_open(&self) -> bool {
        // RFC 7143 §3.2.2.1: a non-immediate command may be sent while CmdSN <= MaxCmdSN.
        self.cmd_sn.le(self.max_cmd_sn)
    }

    /// Send what can be sent: queued commands within the window, a pending text request.
    fn pump(&mut self) {
        if !matches!(self.conn, Conn::Full) {
            return;
        }
        if let Some(op) = &mut self.text {
            if !op.sent && self.cmd_sn.le(self.max_cmd_sn) {
                op.sent = true;
                let (itt, req) = (op.itt, core::mem::take(&mut op.request));
                self.send_text_request(itt, RESERVED_TAG, &req);
                if let Some(op) = &mut self.text {
                    op.request = req;
                }
            }
        }
        while self.window_open() {
            let Some(slot) = self.queue.pop_front() else {
                break;
            };
            self.issue(slot);
        }
    }

    fn issue(&mut self, slot: usize) {
        let p = &self.params;
        let (immediate_ok, initial_r2t, first_burst, seg) = (
            p.immediate_data,
            p.initial_r2t,
            p.first_burst_length,
            p.max_send_data_segment_length.max(512),
        );
        let digests = self.digests;
        let cmd_sn = self.cmd_sn;
        let exp_stat_sn = self.exp_stat_sn;
        let Some(task) = self.tasks[slot].as_mut() else {
            return;
        };
        task.state = TaskState::Active;
        task.cmd_sn = cmd_sn;
        task.reset_progress();
        self.cmd_sn = cmd_sn.next();
        if self.tx.is_empty() {
            self.tx_cmds = 0;
            self.tx_cmd_bytes = 0;
        }
        let tx_start = self.tx.len();
        // Unsolicited data (RFC 7143 §13.10, §13.11, §13.14): immediate data in the command
        // PDU if ImmediateData=Yes, then Data-Out PDUs if InitialR2T=No, in all at most
        // FirstBurstLength.
        let (imm, unsolicited) = if task.dir == Direction::Write {
            let budget = first_burst.min(task.len);
            let imm = if immediate_ok { budget.min(seg) } else { 0 };
            let uns = if initial_r2t { 0 } else { budget - imm };
            (imm, uns)
        } else {
            (0, 0)
        };
        let cdb = task.cdb.as_bytes();
        let mut h = bhs::ScsiCommand {
            opcode: Opcode::SCSI_COMMAND.0,
            // F: no unsolicited Data-Out follows (§11.3.1); ATTR 1 = SIMPLE.
            flags: if unsolicited == 0 { FINAL } else { 0 }
                | match task.dir {
                    Direction::Read => 0x40,
                    Direction::Write => 0x20,
                    Direction::None => 0,
                }
                | 0x01,
            lun: task.lun.0,
            ..Default::default()
        };
        h.itt.set(task.itt);
        h.expected_data_transfer_len.set(task.len);
        h.cmd_sn.set(cmd_sn.0);
        h.exp_stat_sn.set(exp_stat_sn.0);
        let n = cdb.len().min(16);
        h.cdb[..n].copy_from_slice(&cdb[..n]);
        // CDBs over 16 bytes continue in an Extended CDB AHS (§11.2.2.3, type 1).
        let mut ahs = [0u8; 4 + crate::scsi::MAX_CDB];
        let mut ahs_len = 0;
        if cdb.len() > 16 {
            let extra = cdb.len() - 16;
            let ahs_field = (extra + 1) as u16;
            ahs[..2].copy_from_slice(&ahs_field.to_be_bytes());
            ahs[2] = 1;
            ahs[4..4 + extra].copy_from_slice(&cdb[16..]);
            ahs_len = (3 + usize::from(ahs_field)).div_ceil(4) * 4;
            h.total_ahs_len = (ahs_len / 4) as u8;
        }
        h.data_segment_len = bhs::dsl_to(imm);
        write_pdu(
            &mut self.tx,
            digests,
            as48(h.as_bytes()),
            &ahs[..ahs_len],
            &task.buf[..imm as usize],
        );
        let mut done = imm;
        let mut data_sn = 0u32;
        let end = imm + unsolicited;
        while done < end {
            let n = (end - done).min(seg);
            let mut d = bhs::DataOut {
                opcode: Opcode::DATA_OUT.0,
                flags: if done + n == end { FINAL } else { 0 },
                lun: task.lun.0,
                ..Default::default()
            };
            d.data_segment_len = bhs::dsl_to(n);
            d.itt.set(task.itt);
            d.ttt.set(RESERVED_TAG);
            d.exp_stat_sn.set(exp_stat_sn.0);
            d.data_sn.set(data_sn);
            d.buffer_offset.set(done);
            write_pdu(
                &mut self.tx,
                digests,
                as48(d.as_bytes()),
                &[],
                &task.buf[done as usize..(done + n) as usize],
            );
            data_sn += 1;
            done += n;
        }
        if self.tx_cmd_bytes == tx_start {
            self.tx_cmds += 1;
            self.tx_cmd_bytes = self.tx.len();
        }
    }

    fn send_text_request(&mut self, itt: u32, ttt: u32, data: &[u8]) {
        let mut h = bhs::TextRequest {
            opcode: Opcode::TEXT_REQUEST.0,
            flags: FINAL,
            ..Default::default()
        };
        h.data_segment_len = bhs::dsl_to(data.len() as u32);
        h.itt.set(itt);
        h.ttt.set(ttt);
        h.cmd_sn.set(self.cmd_sn.0);
        h.exp_stat_sn.set(self.exp_stat_sn.0);
        // A non-immediate request: it takes a CmdSN (RFC 7143 §11.10).
        self.cmd_sn = self.cmd_sn.next();
        write_pdu(&mut self.tx, self.digests, as48(h.as_bytes()), &[], data);
    }

    fn send_nop_out(&mut self, itt: u32, ttt: u32, lun: [u8; 8], data: &[u8]) {
        // Immediate (RFC 7143 §11.18): carries CmdSN without advancing it.
        let mut h = bhs::NopOut {
            opcode: Opcode::NOP_OUT.0 | IMMEDIATE,
            flags: FINAL,
            lun,
            ..Default::default()
        };
        h.data_segment_len = bhs::dsl_to(data.len() as u32);
        h.itt.set(itt);
        h.ttt.set(ttt);
        h.cmd_sn.set(self.cmd_sn.0);
        h.exp_stat_sn.set(self.exp_stat_sn.0);
        write_pdu(&mut self.tx, self.digests, as48(h.as_bytes()), &[], data);
    }

    fn send_ping(&mut self, now: Instant) {
        let itt = self.special_itt();
        self.send_nop_out(itt, RESERVED_TAG, [0; 8], &[]);
        self.ping = Some((itt, now));
    }

    fn send_tmf(&mut self, function: u8, lun: Lun, referenced: Option<u32>) -> TaskHandle {
        let itt = self.special_itt();
        let mut h = bhs::TaskMgmtRequest {
            opcode: Opcode::TASK_MGMT_REQUEST.0 | IMMEDIATE,
            flags: FINAL | function,
            lun: lun.0,
            ..Default::default()
        };
        h.itt.set(itt);
        h.referenced_task_tag
            .set(referenced.unwrap_or(RESERVED_TAG));
        h.cmd_sn.set(self.cmd_sn.0);
        h.exp_stat_sn.set(self.exp_stat_sn.0);
        if let Some(slot) = referenced.and_then(|r| self.slot_of(r)) {
            if let Some(t) = &self.tasks[slot] {
                h.ref_cmd_sn.set(t.cmd_sn.0);
            }
        }
        write_pdu(&mut self.tx, self.digests, as48(h.as_bytes()), &[], &[]);
        self.tmfs.push(TmfOp {
            itt,
            function,
            referenced,
            lun,
        });
        TaskHandle(itt)
    }

    fn maybe_logout(&mut self, now: Instant) {
        if self.logout_wanted && self.active == 0 && self.text.is_none() && self.tmfs.is_empty() {
            self.start_logout(now, false);
        }
    }

    fn start_logout(&mut self, now: Instant, reconnect: bool) {
        if !matches!(self.conn, Conn::Full) {
            return;
        }
        let itt = self.special_itt();
        // Reason 0: close the session (RFC 7143 §11.14.1). Non-immediate, so it takes the next
        // CmdSN and advances it: the target sees CmdSN = ExpCmdSN.
        let mut h = bhs::LogoutRequest {
            opcode: Opcode::LOGOUT_REQUEST.0,
            flags: FINAL,
            ..Default::default()
        };
        h.itt.set(itt);
        h.cmd_sn.set(self.cmd_sn.0);
        h.exp_stat_sn.set(self.exp_stat_sn.0);
        self.cmd_sn = self.cmd_sn.next();
        write_pdu(&mut self.tx, self.digests, as48(h.as_bytes()), &[], &[]);
        if reconnect {
            self.requeue_active();
        }
        self.conn = Conn::LoggingOut {
            itt,
            deadline: now + self.cfg.logout_timeout,
            reconnect,
        };
    }

    fn finish_logout(&mut self) {
        self.logout_wanted = false;
        self.fail_all(SessionError::LoggedOut);
        self.conn = Conn::Closed;
        self.completions.push_back(Completion::LoggedOut);
    }

    // ----- failure and recovery ------------------------------------------------------

    fn time2wait(&self) -> Duration {
        Duration::from_secs(self.params.default_time2wait.into())
    }

    fn requeue_active(&mut self) {
        for t in self.tasks.iter_mut().flatten() {
            if t.state == TaskState::Active {
                t.state = TaskState::Queued;
                t.reset_progress();
            }
        }
        self.queue.clear();
        self.ping = None;
        for op in self.tmfs.drain(..) {
            self.completions.push_back(Completion::TaskManagement {
                handle: TaskHandle(op.itt),
                response: 0xff,
            });
        }
    }

    fn go_down(&mut self, now: Instant, wait: Duration) {
        self.recovery_since.get_or_insert(now);
        self.conn = Conn::Down { at: now + wait };
    }

    fn fail_connection(&mut self, now: Instant, e: SessionError) {
        if e == SessionError::Login(LoginError::ChapAlgorithmsRefused) && !self.chap_md5_only {
            // Fall back to MD5 at once; this does not count as a failed attempt.
            log::info!(
                "target refused CHAP_A {}; retrying with MD5 only",
                crate::chap::ChapAlgorithm::OFFER
            );
            self.chap_md5_only = true;
            self.close_pending = true;
            self.rx.reset();
            self.tx.clear();
            self.tx_cmds = 0;
            self.tx_cmd_bytes = 0;
            self.tx_pos = 0;
            self.conn = Conn::Down { at: now };
            return;
        }
        log::warn!("iSCSI connection failed: {e}");
        self.error = Some(e);
        self.close_pending = true;
        self.rx.reset();
        self.rx_cur = None;
        self.tx.clear();
        self.tx_cmds = 0;
        self.tx_cmd_bytes = 0;
        self.tx_pos = 0;
        self.requeue_active();
        self.attempts = self.attempts.saturating_add(1);
        let since = *self.recovery_since.get_or_insert(now);
        let give_up = e.is_fatal()
            || if self.ever_logged_in {
                self.cfg.recovery_timeout == Duration::ZERO
                    || now.saturating_since(since) >= self.cfg.recovery_timeout
            } else {
                self.attempts >= self.cfg.initial_login_attempts.max(1)
            };
        if give_up {
            self.conn = Conn::Failed(e);
            self.fail_all(e);
            return;
        }
        // Back-off: Time2Wait (at least 250 ms), doubling per attempt, at most 8 s.
        let base = self.time2wait().total_millis().max(250);
        let shift = self.attempts.saturating_sub(1).min(5);
        let wait = Duration::from_millis((base << shift).min(8000));
        log::info!(
            "reconnecting in {} ms (attempt {})",
            wait.total_millis(),
            self.attempts
        );
        self.portal = self.cfg.portal.clone();
        self.conn = Conn::Down { at: now + wait };
    }

    fn fail_all(&mut self, e: SessionError) {
        self.queue.clear();
        for slot in 0..self.tasks.len() {
            if self.tasks[slot].is_some() {
                self.complete(slot, Err(CommandError::SessionFailed(e)));
            }
        }
        if self.text.take().is_some() {
            self.completions
                .push_back(Completion::Text { data: Vec::new() });
        }
    }

    fn complete(&mut self, slot: usize, result: Result<ScsiOutcome, CommandError>) {
        if let Some(t) = self.tasks[slot].take() {
            self.active -= 1;
            self.completions.push_back(Completion::Command {
                handle: TaskHandle(t.itt),
                result,
                buffer: t.buf,
            });
        }
    }
}

fn as48(b: &[u8]) -> &[u8; BHS_LEN] {
    // Every BHS struct is 48 bytes (const-asserted in `wire::bhs`).
    b.try_into().unwrap_or(&[0; BHS_LEN])
}

#[cfg(test)]
mod tests;
