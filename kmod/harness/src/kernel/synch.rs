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
//! The sleep queues are hashed into chains as `sys/kern/subr_sleepqueue.c` does (`SC_HASH`:
//! the address xor itself shifted right by 8, 256 chains): each chain a host mutex and a
//! condition variable over the channels with sleepers, each channel a generation counter and
//! its number of sleepers. A sleeper records the generation, releases its interlock with the
//! chain's mutex held, and waits on the chain's condition variable until `wakeup` advances the
//! generation or the time runs out; the last sleeper to leave removes the channel. `wakeup`
//! of a channel without sleepers touches only its chain; one with sleepers notifies the
//! chain after releasing the chain's mutex (so the woken do not wait for it). Channels that
//! share a chain may wake each other for nothing (they re-check), as the simplification of
//! `wakeup_one` above allows.

use super::{kpanic, kthread, mutex, threads, Ctx};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// FreeBSD `EWOULDBLOCK`.
const EWOULDBLOCK: u64 = 35;
/// `PDROP` (sys/param.h): do not re-take the interlock.
const PDROP: i32 = 0x200;
/// `C_ABSOLUTE` (sys/callout.h): `sbt` is an absolute uptime.
const C_ABSOLUTE: i32 = 0x0200;

/// A wait channel with sleepers.
struct Chan {
    chan: u64,
    generation: u64,
    sleepers: usize,
}

/// `SC_TABLESIZE` and `SC_SHIFT` (sys/kern/subr_sleepqueue.c).
const CHAINS: usize = 256;
const SC_SHIFT: u32 = 8;

struct Chain {
    chans: Mutex<Vec<Chan>>,
    cv: Condvar,
}

static SLEEPQ: [Chain; CHAINS] = [const {
    Chain {
        chans: Mutex::new(Vec::new()),
        cv: Condvar::new(),
    }
}; CHAINS];

fn chain(chan: u64) -> &'static Chain {
    &SLEEPQ[((chan >> SC_SHIFT) ^ chan) as usize % CHAINS]
}

impl Chain {
    fn lock(&self) -> MutexGuard<'_, Vec<Chan>> {
        self.chans.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The generation of `chan` in its chain's list (locked), if it has sleepers.
fn generation_of(g: &[Chan], chan: u64) -> Option<u64> {
    g.iter().find(|q| q.chan == chan).map(|q| q.generation)
}

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
    let sc = chain(chan);
    let mut g = sc.lock();
    let generation = match g.iter_mut().find(|q| q.chan == chan) {
        Some(q) => {
            q.sleepers += 1;
            q.generation
        }
        None => {
            g.push(Chan {
                chan,
                generation: 0,
                sleepers: 1,
            });
            0
        }
    };
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
        if generation_of(&g, chan) != Some(generation) {
            break true;
        }
        match deadline {
            None => g = sc.cv.wait(g).unwrap_or_else(|e| e.into_inner()),
            Some(end) => {
                let now = Instant::now();
                if now >= end {
                    break false;
                }
                g = sc
                    .cv
                    .wait_timeout(g, end - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    };
    // Off the sleep queue: the last sleeper removes the channel.
    if let Some(i) = g.iter().position(|q| q.chan == chan) {
        g[i].sleepers -= 1;
        if g[i].sleepers == 0 {
            g.swap_remove(i);
        }
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
    let sc = chain(chan);
    let sleepers = {
        let mut g = sc.lock();
        match g.iter_mut().find(|q| q.chan == chan) {
            Some(q) => {
                q.generation = q.generation.wrapping_add(1);
                true
            }
            None => false,
        }
    };
    // Each sleeper re-checks its generation under the chain's mutex, which it held from
    // recording the generation until it waited: notified now, none misses this wakeup.
    if sleepers {
        sc.cv.notify_all();
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
