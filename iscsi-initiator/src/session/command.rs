//! SCSI commands: submission, issue within the CmdSN window with their immediate and
//! unsolicited data, R2Ts answered with Data-Out, and completion with retries.

use alloc::vec::Vec;
use core::ops::Range;

use zerocopy::IntoBytes;

use super::tasks::{Task, TaskState};
use super::{
    as48, CommandError, Completion, Conn, DataBuf, Direction, Residual, ScsiOutcome, Session,
    SessionError, SubmitError, TaskHandle,
};
use crate::scsi::{Cdb, Lun, ScsiStatus, Sense, SenseKey};
use crate::serial::SerialNumber;
use crate::time::{Duration, DurationExt, Instant};
use crate::wire::bhs::{self, Opcode, FINAL, RESERVED_TAG};
use crate::wire::frame::{write_pdu, DigestConfig};

impl Session {
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
        self.submit_data(lun, cdb, dir, DataBuf::Owned(buffer), len)
            .map_err(|(e, b)| (e, b.into_vec()))
    }

    /// [`Session::submit`] with a [`DataBuf`]: a lent one ([`DataBuf::Lent`], the caller's
    /// memory) is read into (or sent from) in place, and the completion hands it back. A
    /// refused command hands it back at once.
    pub fn submit_data(
        &mut self,
        lun: Lun,
        cdb: Cdb,
        dir: Direction,
        buffer: DataBuf,
        len: u32,
    ) -> Result<TaskHandle, (SubmitError, DataBuf)> {
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
        let itt = self
            .tasks
            .insert(lun, cdb, dir, buffer, len)
            .map_err(|buffer| (SubmitError::QueueFull, buffer))?;
        self.pump();
        Ok(TaskHandle(itt))
    }

    /// Send what can be sent: queued commands within the window, a pending text request.
    pub(super) fn pump(&mut self) {
        if !matches!(self.conn, Conn::Full) {
            return;
        }
        if let Some(op) = &mut self.text {
            if !op.sent && self.sn.window_open() {
                op.sent = true;
                let (itt, req) = (op.itt, core::mem::take(&mut op.request));
                self.send_text_request(itt, RESERVED_TAG, &req);
                if let Some(op) = &mut self.text {
                    op.request = req;
                }
            }
        }
        while self.sn.window_open() {
            let Some(slot) = self.tasks.queue.pop_front() else {
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
        let exp_stat_sn = self.sn.exp_stat_sn;
        let Some(task) = self.tasks.get_mut(slot) else {
            return;
        };
        let cmd_sn = self.sn.take_cmd_sn();
        task.state = TaskState::Active;
        task.cmd_sn = cmd_sn;
        task.reset_progress();
        let tx_start = self.tx.command_start();
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
            self.tx.buf(),
            digests,
            as48(h.as_bytes()),
            &ahs[..ahs_len],
            &task.buf[..imm as usize],
        );
        // Unsolicited Data-Out carries the reserved TTT (§11.7.4).
        let range = imm..imm + unsolicited;
        write_data_out(
            self.tx.buf(),
            digests,
            task,
            RESERVED_TAG,
            exp_stat_sn,
            range,
            seg,
        );
        self.tx.command_end(tx_start);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_command(
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
        let Some(task) = self.tasks.get_mut(slot) else {
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
            task.requeue();
            self.tasks.queue.push_back(slot);
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

    pub(super) fn on_r2t(
        &mut self,
        itt: u32,
        ttt: u32,
        r2t_sn: SerialNumber,
        offset: u32,
        len: u32,
    ) -> Result<(), SessionError> {
        let slot = self
            .tasks
            .slot_of(itt)
            .ok_or(SessionError::Protocol("R2T for an unknown task"))?;
        let max_burst = self.params.max_burst_length;
        let seg = self.params.max_send_data_segment_length.max(512);
        let exp_stat_sn = self.sn.exp_stat_sn;
        let digests = self.digests;
        let task = self
            .tasks
            .get_mut(slot)
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
        // Answer at once: the whole burst, with the R2T's TTT (§11.7.4). `offset + len` fits:
        // it is at most the transfer length, checked above.
        let range = offset..offset + len;
        write_data_out(self.tx.buf(), digests, task, ttt, exp_stat_sn, range, seg);
        Ok(())
    }

    /// The command in `slot` is done: hand its buffer back with the result.
    pub(super) fn complete(&mut self, slot: usize, result: Result<ScsiOutcome, CommandError>) {
        if let Some(t) = self.tasks.remove(slot) {
            self.completions.push_back(Completion::Command {
                handle: TaskHandle(t.itt),
                result,
                buffer: t.buf,
            });
        }
    }
}

/// Data-Out PDUs carrying `range` of `task`'s buffer: at most `seg` bytes each (the
/// target's MaxRecvDataSegmentLength), DataSN from 0 for each sequence (RFC 7143 §11.7.5), F on
/// the last (§11.7.1). `ttt` is the R2T's, or the reserved tag for unsolicited data (§11.7.4).
fn write_data_out(
    out: &mut Vec<u8>,
    digests: DigestConfig,
    task: &Task,
    ttt: u32,
    exp_stat_sn: SerialNumber,
    range: Range<u32>,
    seg: u32,
) {
    let Range { start, end: to } = range;
    let mut data_sn = 0u32;
    let mut done = start;
    while done < to {
        let n = (to - done).min(seg);
        // In bounds: `to` is at most the transfer length, which the buffer covers (`submit`).
        let Some(data) = task.buf.get(done as usize..(done + n) as usize) else {
            break;
        };
        let mut d = bhs::DataOut {
            opcode: Opcode::DATA_OUT.0,
            flags: if done + n == to { FINAL } else { 0 },
            lun: task.lun.0,
            ..Default::default()
        };
        d.data_segment_len = bhs::dsl_to(n);
        d.itt.set(task.itt);
        d.ttt.set(ttt);
        d.exp_stat_sn.set(exp_stat_sn.0);
        d.data_sn.set(data_sn);
        d.buffer_offset.set(done);
        write_pdu(out, digests, as48(d.as_bytes()), &[], data);
        data_sn += 1;
        done += n;
    }
}
