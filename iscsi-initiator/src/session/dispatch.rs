//! PDU dispatch: received bytes through the framer, each header checked as it arrives (a
//! Data-In is placed in its command's buffer at once), each whole PDU handed to its handler.

use super::tasks::TaskState;
use super::{CommandError, Conn, Direction, Session, SessionError};
use crate::scsi::Sense;
use crate::time::Instant;
use crate::wire::bhs::RESERVED_TAG;
use crate::wire::frame::RxEvent;
use crate::wire::pdu::{Decoded, TargetHeader};

/// Where the data segment being received goes.
#[derive(Debug)]
pub(super) enum RxDest {
    None,
    Scratch,
    Task { slot: usize, offset: usize },
}

impl Session {
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
                .tasks
                .slot_of(itt)
                .ok_or(SessionError::Protocol("Data-In for an unknown task"))?;
            let task = self
                .tasks
                .get_mut(slot)
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
                if let Some(t) = self.tasks.get_mut(*slot) {
                    // Bounds were checked against `len <= buf.len()` at the header.
                    if let Some(dst) = t.buf.get_mut(*offset..*offset + chunk.len()) {
                        dst.copy_from_slice(chunk);
                    }
                }
                *offset += chunk.len();
            }
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
        let sn = h.sn();
        self.sn.update_window(sn);
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
                    self.sn.track_stat_sn(sn.stat_sn, true)?;
                    let slot = self
                        .tasks
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
                self.sn.track_stat_sn(sn.stat_sn, true)?;
                let Some(slot) = self.tasks.slot_of(itt) else {
                    log::debug!("SCSI Response for unknown task {itt:#x}");
                    return Ok(());
                };
                if self
                    .tasks
                    .get(slot)
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
                    self.sn.track_stat_sn(sn.stat_sn, false)?;
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
                self.sn.track_stat_sn(sn.stat_sn, false)?;
                self.on_tmf_response(itt, response);
            }
            TargetHeader::TextResponse {
                final_, itt, ttt, ..
            } => {
                self.sn.track_stat_sn(sn.stat_sn, false)?;
                self.on_text_response(final_, itt, ttt)?;
            }
            TargetHeader::LogoutResponse {
                itt,
                response,
                time2wait,
                ..
            } => {
                self.sn.track_stat_sn(sn.stat_sn, false)?;
                self.on_logout_response(now, itt, response, time2wait)?;
            }
            TargetHeader::AsyncMessage {
                event,
                parameter1,
                parameter2,
                parameter3,
                ..
            } => {
                self.sn.track_stat_sn(sn.stat_sn, false)?;
                self.on_async(now, event, parameter1, parameter2, parameter3)?;
            }
            TargetHeader::Reject { reason, .. } => {
                self.sn.track_stat_sn(sn.stat_sn, false)?;
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
}
