//! The task table (one slot per command, the slot and a generation in its Initiator Task Tag)
//! and the command numbering: CmdSN, the window the target grants (RFC 7143 §3.2.2.1,
//! §4.2.2.1) and the StatSN expected next (§4.2.2.2).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{DataBuf, Direction, SessionError};
use crate::scsi::{Cdb, Lun};
use crate::serial::SerialNumber;
use crate::time::Instant;
use crate::wire::pdu::SnFields;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TaskState {
    Queued,
    Delayed(Instant),
    Active,
}

#[derive(Debug)]
pub(super) struct Task {
    pub(super) itt: u32,
    pub(super) seq: u64,
    pub(super) lun: Lun,
    pub(super) cdb: Cdb,
    pub(super) dir: Direction,
    pub(super) buf: DataBuf,
    pub(super) len: u32,
    pub(super) state: TaskState,
    pub(super) cmd_sn: SerialNumber,
    pub(super) exp_data_sn: SerialNumber,
    pub(super) next_offset: u32,
    pub(super) next_r2t_sn: SerialNumber,
    pub(super) ua_retries: u8,
    pub(super) busy_retries: u8,
}

impl Task {
    pub(super) fn reset_progress(&mut self) {
        self.exp_data_sn = SerialNumber(0);
        self.next_offset = 0;
        self.next_r2t_sn = SerialNumber(0);
    }

    /// Queue the task again from its start (a retry or a re-issue).
    pub(super) fn requeue(&mut self) {
        self.state = TaskState::Queued;
        self.reset_progress();
    }
}

/// The commands submitted and not yet completed, and the order they wait in for the window.
#[derive(Debug)]
pub(super) struct TaskTable {
    slots: Vec<Option<Task>>,
    generation: Vec<u16>,
    /// Slots waiting for the CmdSN window, first to be sent first.
    pub(super) queue: VecDeque<usize>,
    active: usize,
    seq: u64,
}

impl TaskTable {
    pub(super) fn new(depth: usize) -> Self {
        let mut slots = Vec::with_capacity(depth);
        slots.resize_with(depth, || None);
        Self {
            generation: alloc::vec![0; depth],
            slots,
            queue: VecDeque::with_capacity(depth),
            active: 0,
            seq: 0,
        }
    }

    /// Slots in all.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Commands submitted and not yet completed (queued, delayed or at the target).
    pub(super) fn active(&self) -> usize {
        self.active
    }

    pub(super) fn get(&self, slot: usize) -> Option<&Task> {
        self.slots.get(slot)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, slot: usize) -> Option<&mut Task> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Every task, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Task> {
        self.slots.iter().flatten()
    }

    /// Every task with its slot.
    pub(super) fn entries(&self) -> impl Iterator<Item = (usize, &Task)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|t| (i, t)))
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Task> {
        self.slots.iter_mut().flatten()
    }

    /// The slot of a command's ITT, if that command is still in the table (tags with the top
    /// bit set are the session's own: pings, text, task management, logout).
    pub(super) fn slot_of(&self, itt: u32) -> Option<usize> {
        if itt & 0x8000_0000 != 0 {
            return None;
        }
        let slot = (itt & 0xffff) as usize;
        self.get(slot).filter(|t| t.itt == itt).map(|_| slot)
    }

    /// Take a new command into a free slot and queue it; returns its ITT, or the buffer back
    /// when every slot is taken.
    pub(super) fn insert(
        &mut self,
        lun: Lun,
        cdb: Cdb,
        dir: Direction,
        buf: DataBuf,
        len: u32,
    ) -> Result<u32, DataBuf> {
        let Some((slot, entry)) = self.slots.iter_mut().enumerate().find(|(_, t)| t.is_none())
        else {
            return Err(buf);
        };
        let Some(generation) = self.generation.get_mut(slot) else {
            return Err(buf);
        };
        *generation = (generation.wrapping_add(1)) & 0x7fff;
        let itt = (u32::from(*generation) << 16) | slot as u32;
        self.seq += 1;
        *entry = Some(Task {
            itt,
            seq: self.seq,
            lun,
            cdb,
            dir,
            buf,
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
        Ok(itt)
    }

    /// Take a task out of the table (it completed).
    pub(super) fn remove(&mut self, slot: usize) -> Option<Task> {
        let t = self.slots.get_mut(slot)?.take()?;
        self.active -= 1;
        Some(t)
    }

    /// Queue the delayed retries whose back-off has passed; true if there were any.
    pub(super) fn wake_delayed(&mut self, now: Instant) -> bool {
        let mut woke = false;
        for (slot, t) in self.slots.iter_mut().enumerate() {
            if let Some(t) = t {
                if let TaskState::Delayed(at) = t.state {
                    if now >= at {
                        t.state = TaskState::Queued;
                        self.queue.push_back(slot);
                        woke = true;
                    }
                }
            }
        }
        woke
    }

    /// Every task the target has, queued again from its start (the connection is gone).
    pub(super) fn requeue_active(&mut self) {
        for t in self.iter_mut() {
            if t.state == TaskState::Active {
                t.requeue();
            }
        }
        self.queue.clear();
    }

    /// Every task not waiting out a back-off queued again, in submission order (a new
    /// connection re-issues them, RFC 7143 §7.1.5).
    pub(super) fn reissue_all(&mut self) {
        let mut slots: Vec<(u64, usize)> = self
            .entries()
            .filter(|(_, t)| !matches!(t.state, TaskState::Delayed(_)))
            .map(|(i, t)| (t.seq, i))
            .collect();
        slots.sort_unstable();
        self.queue.clear();
        for (_, s) in slots {
            if let Some(t) = self.get_mut(s) {
                t.requeue();
            }
            self.queue.push_back(s);
        }
    }
}

/// CmdSN, the target's window and the StatSN expected next.
#[derive(Debug)]
pub(super) struct SeqNumbers {
    /// The CmdSN of the next non-immediate PDU.
    pub(super) cmd_sn: SerialNumber,
    pub(super) exp_cmd_sn: SerialNumber,
    pub(super) max_cmd_sn: SerialNumber,
    pub(super) exp_stat_sn: SerialNumber,
}

impl SeqNumbers {
    pub(super) fn new() -> Self {
        Self {
            cmd_sn: SerialNumber(1),
            exp_cmd_sn: SerialNumber(1),
            max_cmd_sn: SerialNumber(1),
            exp_stat_sn: SerialNumber(0),
        }
    }

    /// The numbers a login ended with.
    pub(super) fn logged_in(
        &mut self,
        exp_stat_sn: SerialNumber,
        exp_cmd_sn: SerialNumber,
        max_cmd_sn: SerialNumber,
    ) {
        self.exp_stat_sn = exp_stat_sn;
        // The first command carries the CmdSN the target expects (RFC 7143 §11.12.8).
        self.cmd_sn = exp_cmd_sn;
        self.exp_cmd_sn = exp_cmd_sn;
        self.max_cmd_sn = max_cmd_sn;
    }

    /// The CmdSN for a non-immediate PDU, and the next one after it.
    pub(super) fn take_cmd_sn(&mut self) -> SerialNumber {
        let sn = self.cmd_sn;
        self.cmd_sn = sn.next();
        sn
    }

    pub(super) fn window_open(&self) -> bool {
        // RFC 7143 §3.2.2.1: a non-immediate command may be sent while CmdSN <= MaxCmdSN.
        self.cmd_sn.le(self.max_cmd_sn)
    }

    /// Track StatSN for a PDU that carries status (RFC 7143 §4.2.2.2). `strict` makes a gap a
    /// protocol error (the datapath), otherwise it is logged and followed.
    pub(super) fn track_stat_sn(
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
    pub(super) fn update_window(&mut self, sn: SnFields) {
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
}
