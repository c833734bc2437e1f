//! Sleep and wakeup (`sys/kern/kern_synch.c`, FreeBSD 14): `_sleep(9)` (what `msleep`,
//! `msleep_sbt` and `tsleep` expand to) and `wakeup(9)`/`wakeup_one(9)`.
//!
//! - `_sleep(chan, lock, pri, wmesg, sbt, pr, flags)`: `chan` must not be NULL; a sleep with
//!   neither a lock nor a timeout panics ("sleeping without a lock", as the kernel's KASSERT).
//!   The interlock must be a mutex(9) owned by the caller and not recursed (`lc_unlock` of the
//!   sleep-mutex class asserts both); it is released only once the thread is on the channel's
//!   sleep queue, so a `wakeup` by a thread that takes the same lock is never lost, and taken
//!   again before returning unless `pri` has `PDROP`. `sbt` is 32.32 fixed-point seconds,
//!   relative (or absolute uptime with `C_ABSOLUTE`), 0 for no timeout. Returns 0 when woken,
//!   `EWOULDBLOCK` when the time ran out. A mutex still held besides the interlock panics, as
//!   the kernel does ("sleeping thread owns a non-sleepable lock"). `PCATCH` is ignored (kernel
//!   threads take no signals), as are the priority and the precision `pr`.
//! - `wakeup(chan)`: wakes every thread asleep on `chan`; `wakeup_one(chan)` wakes one
//!   (simplified: the host wakes all sleepers of the channel; a sleeper woken without reason
//!   re-checks its condition, as every `_sleep` caller must).
//!
//! The sleep queues are a generation counter per channel address under one host mutex: a
//! sleeper records the generation, releases its interlock with the host mutex held, and waits
//! on the channel's condition variable until `wakeup` advances the generation or the time runs
//! out.

use super::{kpanic, kthread, mutex, threads, Ctx};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// FreeBSD `EWOULDBLOCK`.
const EWOULDBLOCK: u64 = 35;
/// `PDROP` (sys/param.h): do not re-take the interlock.
const PDROP: i32 = 0x200;
/// `C_ABSOLUTE` (sys/callout.h): `sbt` is an absolute uptime.
const C_ABSOLUTE: i32 = 0x0200;

#[derive(Default)]
struct Chan {
    generation: u64,
    /// Threads asleep on the channel: a wakeup without sleepers makes no host call.
    sleepers: usize,
    cv: Arc<Condvar>,
}

static QUEUES: Mutex<Option<HashMap<u64, Chan>>> = Mutex::new(None);

fn sbt_duration(sbt: u64) -> Duration {
    Duration::from_secs(sbt >> 32)
        + Duration::from_nanos(((sbt & 0xffff_ffff) * 1_000_000_000) >> 32)
}

/// `int _sleep(const void *chan, struct lock_object *lock, int pri, const char *wmesg,
/// sbintime_t sbt, sbintime_t pr, int flags);`
pub fn sleep(c: &mut Ctx) -> u64 {
    let chan = c.args.ptr();
    let lock = c.args.ptr();
    let pri = c.args.int();
    let wmesg = c.args.ptr();
    let sbt = c.args.ptr() as i64;
    let _pr = c.args.ptr();
    let flags = c.args.int();
    if chan == 0 {
        kpanic(c, "_sleep: NULL ident");
    }
    if lock == 0 && sbt == 0 {
        kpanic(c, "_sleep: sleeping without a lock");
    }
    let deadline = (sbt > 0).then(|| {
        let d = sbt_duration(sbt as u64);
        if flags & C_ABSOLUTE != 0 {
            Instant::now() + d.saturating_sub(kthread::uptime())
        } else {
            Instant::now() + d
        }
    });
    let w = lock + mutex::MTX_LOCK_OFFSET;
    if lock != 0 {
        let td = threads::td(c.thread);
        match mutex::state_of(w) {
            None => kpanic(
                c,
                &format!("_sleep: interlock {lock:#x} is not an initialised mutex (only mutex(9) is emulated)"),
            ),
            Some(v) if v & !0x7 != td => kpanic(c, &format!("_sleep: interlock {lock:#x} not owned")),
            Some(v) if mutex::recursed(v) => kpanic(c, &format!("_sleep: interlock {lock:#x} recursed")),
            Some(_) => {}
        }
    }
    let mut g = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    let q = g.get_or_insert_with(HashMap::new).entry(chan).or_default();
    let generation = q.generation;
    q.sleepers += 1;
    let cv = Arc::clone(&q.cv);
    // On the sleep queue (the generation is recorded, QUEUES held): release the interlock.
    if lock != 0 {
        mutex::unlock_as(c.thread, w);
    }
    // Any other mutex still held: FreeBSD panics ("sleeping thread owns a non-sleepable
    // lock", as kldrun's pause_sbt does).
    if let Some(m) = mutex::held_by(threads::td(c.thread)) {
        drop(g);
        // SAFETY: the wait message is a NUL-terminated string (the KPI's contract).
        let w = unsafe { super::mem::string(wmesg) };
        kpanic(
            c,
            &format!(
                "sleeping thread owns a non-sleepable lock: _sleep(\"{w}\") with mutex {m} held"
            ),
        );
    }
    let woken = loop {
        let now_gen = g
            .as_ref()
            .and_then(|m| m.get(&chan))
            .map_or(generation, |q| q.generation);
        if now_gen != generation {
            break true;
        }
        match deadline {
            None => g = cv.wait(g).unwrap_or_else(|e| e.into_inner()),
            Some(end) => {
                let now = Instant::now();
                if now >= end {
                    break false;
                }
                g = cv
                    .wait_timeout(g, end - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    };
    if let Some(q) = g.as_mut().and_then(|m| m.get_mut(&chan)) {
        q.sleepers -= 1;
    }
    drop(g);
    if lock != 0 && pri & PDROP == 0 {
        mutex::lock_as(c.thread, w);
    }
    if woken {
        0
    } else {
        EWOULDBLOCK
    }
}

fn wake(chan: u64) {
    let mut g = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(q) = g.as_mut().and_then(|m| m.get_mut(&chan)) {
        q.generation = q.generation.wrapping_add(1);
        if q.sleepers > 0 {
            q.cv.notify_all();
        }
    }
}

/// `void wakeup(const void *chan);`
pub fn wakeup(c: &mut Ctx) -> u64 {
    let chan = c.args.ptr();
    wake(chan);
    0
}

/// `void wakeup_one(const void *chan);` — see the module documentation.
pub fn wakeup_one(c: &mut Ctx) -> u64 {
    let chan = c.args.ptr();
    wake(chan);
    0
}
