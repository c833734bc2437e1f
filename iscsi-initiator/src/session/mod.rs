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
//!
//! The parts, each owning its share of the session's state:
//! - `types`: the public vocabulary (portal, configuration, errors, completions);
//! - `tasks`: the task table and the CmdSN window;
//! - `txq`: the transmit queue;
//! - `dispatch`: received bytes to PDUs to handlers;
//! - `rx_plan`: planned receives straight into the caller's buffers;
//! - `command`: SCSI commands, R2T and Data-Out, completion and retries;
//! - `control`: task management, Text, Async, Reject, NOP-Out and Logout;
//! - `recovery`: connect, login, reconnect and reinstatement.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::login::{HashDrbg, Login, LoginError};
use crate::negotiate::Negotiated;
use crate::time::{earliest, Duration, Instant};
use crate::wire::bhs::BHS_LEN;
use crate::wire::frame::{DigestConfig, Receiver};
use crate::wire::pdu::Decoded;

mod command;
mod control;
mod dispatch;
mod recovery;
mod rx_plan;
mod tasks;
mod txq;
mod types;

pub use rx_plan::{DirectRx, PLAN_AHEAD};
pub use types::{
    CommandError, Completion, DataBuf, Direction, Portal, Residual, ScsiOutcome, SessionConfig,
    SessionError, SubmitError, TaskHandle, TransportAction,
};

use control::{TextOp, TmfOp};
use dispatch::RxDest;
use recovery::Recovery;
use rx_plan::Planner;
use tasks::{SeqNumbers, TaskState, TaskTable};
use txq::TxQueue;

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
    /// Where the next connection goes (the configured portal, or a redirection's).
    portal: Portal,
    recovery: Recovery,
    params: Negotiated,
    digests: DigestConfig,
    tsih: u16,
    sn: SeqNumbers,
    rx: Receiver,
    rx_cur: Option<Decoded>,
    rx_dest: RxDest,
    scratch: Vec<u8>,
    planner: Planner,
    tx: TxQueue,
    tasks: TaskTable,
    completions: VecDeque<Completion>,
    next_special_itt: u32,
    last_rx: Instant,
    ping: Option<(u32, Instant)>,
    text: Option<TextOp>,
    tmfs: Vec<TmfOp>,
    logout_wanted: bool,
    rng: HashDrbg,
}

impl Session {
    /// A session that will connect at `now`.
    pub fn new(cfg: SessionConfig, now: Instant) -> Self {
        let depth = usize::from(cfg.queue_depth.clamp(1, 0x7fff));
        let portal = cfg.portal.clone();
        let max_recv = cfg.login.operational.max_recv_data_segment_length;
        Self {
            conn: Conn::Down { at: now },
            close_pending: false,
            portal,
            recovery: Recovery::default(),
            params: Negotiated::default(),
            digests: DigestConfig::default(),
            tsih: 0,
            sn: SeqNumbers::new(),
            rx: Receiver::new(DigestConfig::default(), 8192),
            rx_cur: None,
            rx_dest: RxDest::None,
            scratch: Vec::with_capacity(max_recv.max(8192) as usize),
            planner: Planner::new(),
            tx: TxQueue::with_capacity(64 * 1024),
            tasks: TaskTable::new(depth),
            completions: VecDeque::with_capacity(depth + 4),
            next_special_itt: 0,
            last_rx: now,
            ping: None,
            text: None,
            tmfs: Vec::new(),
            logout_wanted: false,
            rng: HashDrbg::new(cfg.login.entropy_seed),
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
        self.recovery.error
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
        self.recovery.logins
    }

    /// Commands submitted and not yet completed.
    pub fn outstanding(&self) -> usize {
        self.tasks.active()
    }

    /// The commands the target has: sent and not yet answered, as far as the session can tell
    /// (those still in the transmit buffer have no answers coming yet).
    pub fn at_target(&self) -> usize {
        self.tasks.active().saturating_sub(self.tx.cmds())
    }

    /// Whether the target owes an answer to something sent: a login or logout request, a
    /// command it has, a ping, a text or task-management request. A receive can then block
    /// in the stream itself: something is coming.
    pub fn answer_due(&self) -> bool {
        match self.conn {
            Conn::LoggingIn { .. } | Conn::LoggingOut { .. } => true,
            Conn::Full => {
                self.at_target() > 0
                    || self.ping.is_some()
                    || self.text.as_ref().is_some_and(|t| t.sent)
                    || !self.tmfs.is_empty()
            }
            _ => false,
        }
    }

    /// The bytes the target is expected to send for the commands it has ([`Session::at_target`]):
    /// a response header each and the rest of each read's data, averaged over the commands in
    /// flight. One pass over the task table: ask only when it will be used.
    pub fn expected_rx(&self) -> usize {
        let mut bytes = 0usize;
        for t in self.tasks.iter() {
            if t.state == TaskState::Active {
                bytes += BHS_LEN;
                if t.dir == Direction::Read {
                    bytes += t.len.saturating_sub(t.next_offset) as usize;
                }
            }
        }
        match self.tasks.active() {
            0 => 0,
            n => bytes / n * self.at_target(),
        }
    }

    /// Free command slots.
    pub fn capacity(&self) -> usize {
        self.tasks.len() - self.tasks.active()
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
        for task in self.tasks.iter() {
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
        if self.tasks.wake_delayed(now) {
            self.pump();
        }
    }

    /// A tag for the session's own requests (pings, text, task management, logout): the top
    /// bit set, so that it never names a command's slot.
    fn special_itt(&mut self) -> u32 {
        self.next_special_itt = self.next_special_itt.wrapping_add(1) & 0x7fff_ffff;
        0x8000_0000 | self.next_special_itt.min(0x7fff_fffe)
    }
}

fn as48(b: &[u8]) -> &[u8; BHS_LEN] {
    // Every BHS struct is 48 bytes (const-asserted in `wire::bhs`).
    b.try_into().unwrap_or(&[0; BHS_LEN])
}

#[cfg(test)]
mod tests;
