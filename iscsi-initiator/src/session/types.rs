//! The session's public vocabulary: where to connect, how to behave, and what comes back.

use alloc::string::String;
use alloc::vec::Vec;

use crate::login::LoginError;
use crate::scsi::{ScsiStatus, Sense};
use crate::time::Duration;
use crate::wire::frame::FrameError;

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
    pub(super) fn is_fatal(&self) -> bool {
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
    /// Open a connection to this portal, then call
    /// [`Session::on_connected`](super::Session::on_connected) or
    /// [`Session::on_connect_failed`](super::Session::on_connect_failed).
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

/// A command's data buffer while the session has it: one the session owns (and gives back
/// in [`Completion::Command`]), or memory the caller lends for the command's life — a kernel
/// SIM lends the CCB's own data buffer, so Data-In lands there and Data-Out leaves from there
/// with no copy in between (iscsi(4)'s `icl_pdu_get_data` and `icl_pdu_append_data` work on
/// the CCB's buffer the same way).
#[derive(Debug)]
pub enum DataBuf {
    /// Owned by the session until the completion.
    Owned(Vec<u8>),
    /// Lent by the caller: it stays valid, and untouched by the caller, until the command's
    /// completion is taken.
    Lent(&'static mut [u8]),
}

impl DataBuf {
    /// The owned vector (a lent buffer gives an empty one: the memory is the caller's).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            DataBuf::Owned(v) => v,
            DataBuf::Lent(_) => Vec::new(),
        }
    }
}

impl core::ops::Deref for DataBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            DataBuf::Owned(v) => v,
            DataBuf::Lent(s) => s,
        }
    }
}

impl core::ops::DerefMut for DataBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            DataBuf::Owned(v) => v,
            DataBuf::Lent(s) => s,
        }
    }
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
        /// The caller's buffer back: the vector given to [`Session::submit`], or what was
        /// given to [`Session::submit_data`] (for lent memory, the session's last reference
        /// to it).
        ///
        /// [`Session::submit`]: super::Session::submit
        /// [`Session::submit_data`]: super::Session::submit_data
        buffer: DataBuf,
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
