//! The connection's life: connect, log in (following redirections), and after a failure
//! reconnect with a back-off and reinstate the session (RFC 7143 §6.3.5), re-issuing every
//! command that had not completed (ERL 0, §7.1.5), or give up and fail them.

use alloc::vec::Vec;

use super::{
    CommandError, Completion, Conn, Portal, Session, SessionError, TaskHandle, TransportAction,
};
use crate::login::{Login, LoginError, LoginOutcome, LoginProgress};
use crate::time::{Duration, DurationExt, Instant};
use crate::wire::frame::DigestConfig;
use crate::wire::pdu::TargetHeader;

/// What recovery keeps across connections.
#[derive(Debug, Default)]
pub(super) struct Recovery {
    /// Redirections followed in this login.
    pub(super) redirects: u8,
    pub(super) ever_logged_in: bool,
    /// Failed attempts since the last successful login.
    pub(super) attempts: u32,
    /// When the connection was lost (or the first attempt failed).
    pub(super) since: Option<Instant>,
    /// The target refused our CHAP algorithms: offer MD5 alone from now on.
    pub(super) chap_md5_only: bool,
    /// Successful logins.
    pub(super) logins: u32,
    /// The last connection-level error.
    pub(super) error: Option<SessionError>,
}

impl Session {
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
        self.tx.reset();
        self.digests = DigestConfig::default();
        self.last_rx = now;
        self.ping = None;
        let itt = self.special_itt();
        // RFC 7143 §6.3.5: ERL 0 recovery is session reinstatement, a new session with the
        // same ISID and TSIH 0.
        let mut login = Login::new(self.cfg.login.clone(), itt, 1, 0, self.sn.cmd_sn);
        if self.recovery.chap_md5_only {
            login.offer_md5_only();
        }
        match login.start(self.tx.buf()) {
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

    pub(super) fn on_login_pdu(
        &mut self,
        now: Instant,
        h: &TargetHeader,
    ) -> Result<(), SessionError> {
        let Conn::LoggingIn { login, .. } = &mut self.conn else {
            return Ok(());
        };
        let data = core::mem::take(&mut self.scratch);
        let r = login.on_response(h, &data, self.tx.buf(), &mut self.rng);
        self.scratch = data;
        match r.map_err(SessionError::Login)? {
            LoginProgress::Continue => Ok(()),
            LoginProgress::Complete(outcome) => {
                self.on_logged_in(now, outcome);
                Ok(())
            }
            LoginProgress::Redirect { address, permanent } => {
                self.recovery.redirects = self.recovery.redirects.saturating_add(1);
                if self.recovery.redirects > self.cfg.max_redirects {
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
        self.sn.logged_in(o.exp_stat_sn, o.exp_cmd_sn, o.max_cmd_sn);
        self.conn = Conn::Full;
        let r = &mut self.recovery;
        r.ever_logged_in = true;
        r.logins += 1;
        r.attempts = 0;
        r.since = None;
        r.redirects = 0;
        r.error = None;
        self.portal = self.cfg.portal.clone();
        self.last_rx = now;
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
        self.tasks.reissue_all();
        if let Some(t) = &mut self.text {
            t.sent = false;
            t.data.clear();
        }
        self.pump();
    }

    pub(super) fn time2wait(&self) -> Duration {
        Duration::from_secs(self.params.default_time2wait.into())
    }

    /// The connection is gone: what the target had goes back in the queue, the ping and the
    /// task management requests with it.
    pub(super) fn requeue_active(&mut self) {
        self.tasks.requeue_active();
        self.ping = None;
        for op in self.tmfs.drain(..) {
            self.completions.push_back(Completion::TaskManagement {
                handle: TaskHandle(op.itt),
                response: 0xff,
            });
        }
    }

    pub(super) fn go_down(&mut self, now: Instant, wait: Duration) {
        self.recovery.since.get_or_insert(now);
        self.conn = Conn::Down { at: now + wait };
    }

    pub(super) fn fail_connection(&mut self, now: Instant, e: SessionError) {
        if e == SessionError::Login(LoginError::ChapAlgorithmsRefused)
            && !self.recovery.chap_md5_only
        {
            // Fall back to MD5 at once; this does not count as a failed attempt.
            log::info!(
                "target refused CHAP_A {}; retrying with MD5 only",
                crate::chap::ChapAlgorithm::OFFER
            );
            self.recovery.chap_md5_only = true;
            self.close_pending = true;
            self.rx.reset();
            self.tx.reset();
            self.conn = Conn::Down { at: now };
            return;
        }
        log::warn!("iSCSI connection failed: {e}");
        self.recovery.error = Some(e);
        self.close_pending = true;
        self.rx.reset();
        self.rx_cur = None;
        self.tx.reset();
        self.requeue_active();
        self.recovery.attempts = self.recovery.attempts.saturating_add(1);
        let since = *self.recovery.since.get_or_insert(now);
        let give_up = e.is_fatal()
            || if self.recovery.ever_logged_in {
                self.cfg.recovery_timeout == Duration::ZERO
                    || now.saturating_since(since) >= self.cfg.recovery_timeout
            } else {
                self.recovery.attempts >= self.cfg.initial_login_attempts.max(1)
            };
        if give_up {
            self.conn = Conn::Failed(e);
            self.fail_all(e);
            return;
        }
        // Back-off: Time2Wait (at least 250 ms), doubling per attempt, at most 8 s.
        let base = self.time2wait().total_millis().max(250);
        let shift = self.recovery.attempts.saturating_sub(1).min(5);
        let wait = Duration::from_millis((base << shift).min(8000));
        log::info!(
            "reconnecting in {} ms (attempt {})",
            wait.total_millis(),
            self.recovery.attempts
        );
        self.portal = self.cfg.portal.clone();
        self.conn = Conn::Down { at: now + wait };
    }

    /// Fail every command and the Text exchange: the session is over.
    pub(super) fn fail_all(&mut self, e: SessionError) {
        self.tasks.queue.clear();
        for slot in 0..self.tasks.len() {
            if self.tasks.get(slot).is_some() {
                self.complete(slot, Err(CommandError::SessionFailed(e)));
            }
        }
        if self.text.take().is_some() {
            self.completions
                .push_back(Completion::Text { data: Vec::new() });
        }
    }
}
