//! Everything beside SCSI commands: task management (RFC 7143 §11.5), Text exchanges and
//! renegotiation (§11.10), Async messages (§11.9), Reject (§11.17), NOP-Out (§11.18) and
//! Logout (§11.14).

use alloc::vec::Vec;

use zerocopy::IntoBytes;

use super::tasks::TaskState;
use super::{
    as48, tmf, CommandError, Completion, Conn, Session, SessionError, SubmitError, TaskHandle,
};
use crate::scsi::Lun;
use crate::time::{Duration, Instant};
use crate::wire::bhs::{self, Opcode, BHS_LEN, FINAL, IMMEDIATE, RESERVED_TAG};
use crate::wire::frame::write_pdu;
use crate::wire::text::push_pair;

/// The Text exchange in progress (one at a time).
#[derive(Debug)]
pub(super) struct TextOp {
    pub(super) itt: u32,
    pub(super) data: Vec<u8>,
    pub(super) request: Vec<u8>,
    pub(super) sent: bool,
    /// Started by Async event 4: the answer is negotiated here, not handed to the caller.
    renegotiate: bool,
}

/// A task management request waiting for its response.
#[derive(Debug)]
pub(super) struct TmfOp {
    pub(super) itt: u32,
    function: u8,
    referenced: Option<u32>,
    lun: Lun,
}

impl Session {
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
        let slot = self
            .tasks
            .slot_of(handle.0)
            .ok_or(SubmitError::NoSuchTask)?;
        let (state, lun) = match self.tasks.get(slot) {
            Some(t) => (t.state, t.lun),
            None => return Err(SubmitError::NoSuchTask),
        };
        if state != TaskState::Active || !self.is_ready() {
            // Never sent (or not on this connection): finish it here.
            self.tasks.queue.retain(|&s| s != slot);
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

    pub(super) fn on_tmf_response(&mut self, itt: u32, response: u8) {
        let Some(i) = self.tmfs.iter().position(|t| t.itt == itt) else {
            log::debug!("TMF response for unknown task {itt:#x}");
            return;
        };
        let op = self.tmfs.swap_remove(i);
        // RFC 7143 §11.6.1: 0 = function complete, 1 = task does not exist.
        if response == 0 || response == 1 {
            match (op.function, op.referenced) {
                (tmf::ABORT_TASK, Some(r)) => {
                    if let Some(slot) = self.tasks.slot_of(r) {
                        self.tasks.queue.retain(|&s| s != slot);
                        self.complete(slot, Err(CommandError::Aborted));
                    }
                }
                (tmf::LOGICAL_UNIT_RESET, _) if response == 0 => {
                    for slot in 0..self.tasks.len() {
                        if self
                            .tasks
                            .get(slot)
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

    pub(super) fn on_text_response(
        &mut self,
        final_: bool,
        itt: u32,
        ttt: u32,
    ) -> Result<(), SessionError> {
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

    pub(super) fn on_async(
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
                self.recovery.error = Some(SessionError::ConnectionLost);
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

    pub(super) fn on_reject(&mut self, reason: u8) -> Result<(), SessionError> {
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
                if let Some(slot) = self.tasks.slot_of(itt) {
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

    pub(super) fn send_text_request(&mut self, itt: u32, ttt: u32, data: &[u8]) {
        let mut h = bhs::TextRequest {
            opcode: Opcode::TEXT_REQUEST.0,
            flags: FINAL,
            ..Default::default()
        };
        h.data_segment_len = bhs::dsl_to(data.len() as u32);
        h.itt.set(itt);
        h.ttt.set(ttt);
        h.exp_stat_sn.set(self.sn.exp_stat_sn.0);
        // A non-immediate request: it takes a CmdSN (RFC 7143 §11.10).
        h.cmd_sn.set(self.sn.take_cmd_sn().0);
        write_pdu(self.tx.buf(), self.digests, as48(h.as_bytes()), &[], data);
    }

    pub(super) fn send_nop_out(&mut self, itt: u32, ttt: u32, lun: [u8; 8], data: &[u8]) {
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
        h.cmd_sn.set(self.sn.cmd_sn.0);
        h.exp_stat_sn.set(self.sn.exp_stat_sn.0);
        write_pdu(self.tx.buf(), self.digests, as48(h.as_bytes()), &[], data);
    }

    pub(super) fn send_ping(&mut self, now: Instant) {
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
        h.cmd_sn.set(self.sn.cmd_sn.0);
        h.exp_stat_sn.set(self.sn.exp_stat_sn.0);
        if let Some(t) = referenced
            .and_then(|r| self.tasks.slot_of(r))
            .and_then(|slot| self.tasks.get(slot))
        {
            h.ref_cmd_sn.set(t.cmd_sn.0);
        }
        write_pdu(self.tx.buf(), self.digests, as48(h.as_bytes()), &[], &[]);
        self.tmfs.push(TmfOp {
            itt,
            function,
            referenced,
            lun,
        });
        TaskHandle(itt)
    }

    pub(super) fn maybe_logout(&mut self, now: Instant) {
        if self.logout_wanted
            && self.tasks.active() == 0
            && self.text.is_none()
            && self.tmfs.is_empty()
        {
            self.start_logout(now, false);
        }
    }

    pub(super) fn start_logout(&mut self, now: Instant, reconnect: bool) {
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
        h.cmd_sn.set(self.sn.take_cmd_sn().0);
        h.exp_stat_sn.set(self.sn.exp_stat_sn.0);
        write_pdu(self.tx.buf(), self.digests, as48(h.as_bytes()), &[], &[]);
        if reconnect {
            self.requeue_active();
        }
        self.conn = Conn::LoggingOut {
            itt,
            deadline: now + self.cfg.logout_timeout,
            reconnect,
        };
    }

    /// The Logout Response (RFC 7143 §11.15): close, then reconnect after Time2Wait if the
    /// target asked for the logout, or end the session.
    pub(super) fn on_logout_response(
        &mut self,
        now: Instant,
        itt: u32,
        response: u8,
        time2wait: u16,
    ) -> Result<(), SessionError> {
        let Conn::LoggingOut {
            itt: want,
            reconnect,
            ..
        } = self.conn
        else {
            return Err(SessionError::Protocol("unsolicited Logout Response"));
        };
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
        Ok(())
    }

    pub(super) fn finish_logout(&mut self) {
        self.logout_wanted = false;
        self.fail_all(SessionError::LoggedOut);
        self.conn = Conn::Closed;
        self.completions.push_back(Completion::LoggedOut);
    }
}
