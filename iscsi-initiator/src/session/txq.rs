//! The transmit queue: the bytes of the PDUs waiting to be sent, several at once, and how many
//! of them at its start are new SCSI commands that may wait for company.

use alloc::vec::Vec;

use super::tasks::TaskState;
use super::{Conn, Session};

#[derive(Debug)]
pub(super) struct TxQueue {
    /// Whole PDUs, appended by the session ([`TxQueue::buf`]).
    bytes: Vec<u8>,
    /// How much of `bytes` has been sent.
    pos: usize,
    /// SCSI Command PDUs (with their unsolicited data) at the start of `bytes`, and their
    /// bytes: while it holds nothing else they may wait for company
    /// ([`Session::transmit_can_wait`]).
    cmds: usize,
    cmd_bytes: usize,
}

impl TxQueue {
    pub(super) fn with_capacity(n: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(n),
            pos: 0,
            cmds: 0,
            cmd_bytes: 0,
        }
    }

    /// Forget everything queued (sent or not).
    pub(super) fn reset(&mut self) {
        self.bytes.clear();
        self.cmds = 0;
        self.cmd_bytes = 0;
        self.pos = 0;
    }

    /// Where PDUs are appended.
    pub(super) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// The bytes not sent yet.
    pub(super) fn pending(&self) -> &[u8] {
        self.bytes.get(self.pos..).unwrap_or(&[])
    }

    /// `n` more bytes were sent; once all are, the queue starts over.
    pub(super) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.bytes.len());
        if self.pos == self.bytes.len() {
            self.reset();
        }
    }

    /// SCSI commands queued and not yet sent (for [`Session::at_target`]).
    pub(super) fn cmds(&self) -> usize {
        self.cmds
    }

    /// The number of SCSI commands queued when nothing else is (none of it sent yet).
    fn only_commands(&self) -> Option<usize> {
        (self.cmds != 0 && self.pos == 0 && self.bytes.len() == self.cmd_bytes).then_some(self.cmds)
    }

    /// A SCSI Command PDU (and its unsolicited data) is about to be appended: returns where it
    /// starts, for [`TxQueue::command_end`].
    pub(super) fn command_start(&mut self) -> usize {
        if self.bytes.is_empty() {
            self.reset();
        }
        self.bytes.len()
    }

    /// The command that started at `start` is queued: it counts as waiting for company if
    /// only commands came before it.
    pub(super) fn command_end(&mut self, start: usize) {
        if self.cmd_bytes == start {
            self.cmds += 1;
            self.cmd_bytes = self.bytes.len();
        }
    }
}

impl Session {
    /// True when the bytes waiting to be sent are only new SCSI commands and the target already
    /// has at least four times as many of ours to work on: sending them a little later, with
    /// the next ones, costs fewer system calls and wake-ups on both sides without leaving the
    /// target idle (its answers to the commands in flight drive the next step). The environment
    /// may then skip sending until the next received bytes; it must send otherwise.
    pub fn transmit_can_wait(&self) -> bool {
        let Some(cmds) = self.tx.only_commands() else {
            return false;
        };
        if !matches!(self.conn, Conn::Full) {
            return false;
        }
        let active = self
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Active)
            .count();
        let at_target = active.saturating_sub(cmds);
        cmds * 4 < at_target
    }

    /// Bytes waiting to be sent.
    pub fn transmit(&self) -> &[u8] {
        self.tx.pending()
    }

    /// `n` bytes of [`Session::transmit`] were sent.
    pub fn consume_transmit(&mut self, n: usize) {
        self.tx.consume(n);
    }
}
