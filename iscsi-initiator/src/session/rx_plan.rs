//! Planned receives: where the next received bytes can go without a copy, across the rest of
//! the current Data-In segment and the Data-In PDUs the target is likely to send after it
//! (RFC 7143 §11.7: DataSN and Buffer Offset are checked before any byte is taken).

use alloc::vec::Vec;

use super::dispatch::RxDest;
use super::tasks::TaskState;
use super::{Conn, Direction, Session};
use crate::time::Instant;
use crate::wire::bhs::BHS_LEN;
use crate::wire::pdu::{decode_target_bhs, Decoded, TargetHeader};

/// The most Data-In PDUs after the current one that one receive is planned across
/// ([`Session::direct_rx_plan`]).
pub const PLAN_AHEAD: usize = 3;

/// Planned receives skipped after one that went wrong (a guess that did not match, or fewer
/// bytes than planned): a target that does not send what the plan expects costs little.
pub(super) const PLAN_BACKOFF: u32 = 64;

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

/// The planner's state: the last planned receive, its headers' room, how many more receives
/// go unplanned after one that went wrong, and the bytes a plan guessed wrong about.
#[derive(Debug)]
pub(super) struct Planner {
    plan: RxPlan,
    hdr: [u8; BHS_LEN * PLAN_AHEAD],
    pub(super) backoff: u32,
    /// Bytes a plan guessed wrong about, on their way through [`Session::process`].
    spill: Vec<u8>,
}

impl Planner {
    pub(super) fn new() -> Self {
        Self {
            plan: RxPlan::default(),
            hdr: [0; BHS_LEN * PLAN_AHEAD],
            backoff: 0,
            spill: Vec::new(),
        }
    }
}

impl Session {
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
        self.planner.plan = RxPlan::default();
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
        let task = self.tasks.get(slot)?;
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
        if self.planner.backoff > 0 {
            self.planner.backoff -= 1;
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
        self.planner.plan = plan;
        let Self { tasks, planner, .. } = self;
        let region = tasks.get_mut(slot)?.buf.get_mut(offset..planned_end)?;
        let (cur, mut rest) = region.split_at_mut(pending);
        let mut parts: [&mut [u8]; 1 + 2 * PLAN_AHEAD] = Default::default();
        parts[0] = cur;
        let mut hdrs = planner.hdr.chunks_exact_mut(BHS_LEN);
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
        let plan = core::mem::take(&mut self.planner.plan);
        if plan.count > 0 && n < plan.total {
            self.planner.backoff = PLAN_BACKOFF;
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
                    self.planner.backoff = PLAN_BACKOFF;
                }
                self.replay(now, &plan, i, left);
                return;
            }
            let mut hdr = [0u8; BHS_LEN];
            hdr.copy_from_slice(&self.planner.hdr[i * BHS_LEN..(i + 1) * BHS_LEN]);
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
        if let Some(placed) = self
            .tasks
            .get(*slot)
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
        let Some(raw) = self.planner.hdr.get(i * BHS_LEN..(i + 1) * BHS_LEN) else {
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
        let Some(task) = self.tasks.get(plan.slot) else {
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
        let mut spill = core::mem::take(&mut self.planner.spill);
        spill.clear();
        for j in from..plan.count {
            let h = left.min(BHS_LEN);
            spill.extend_from_slice(&self.planner.hdr[j * BHS_LEN..j * BHS_LEN + h]);
            left -= h;
            let (off, len) = plan.next[j];
            let d = left.min(len);
            if let Some(region) = self
                .tasks
                .get_mut(plan.slot)
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
        self.planner.spill = spill;
    }

    /// True when a read command has at least `min` bytes of Data-In still to come: the
    /// transport then does better to receive headers in small reads, so that the data segments
    /// that follow land straight in the caller's buffer ([`Session::direct_rx_plan`]).
    pub fn large_read_pending(&self, min: u32) -> bool {
        self.tasks.iter().any(|t| {
            t.state == TaskState::Active
                && t.dir == Direction::Read
                && t.len.saturating_sub(t.next_offset) >= min
        })
    }
}
