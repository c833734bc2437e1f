//! mutex(9). In a kld (`LOCK_DEBUG` is 1) `mtx_init`/`mtx_lock`/`mtx_unlock`/... compile to
//! calls of `_mtx_init`, `__mtx_lock_flags`, ... with the address of the `mtx_lock` word
//! (`sys/sys/mutex.h`); those are served here (`sys/kern/kern_mutex.c` semantics).
//!
//! Kept: the lock word holds the owner's `struct thread *` (so the inline `mtx_owned()` works)
//! and `MTX_RECURSED`; the recursion depth is in `lock_object.lo_data`; `lo_name` and
//! `lo_flags` (`LO_INITIALIZED`, `LO_RECURSABLE`) are set; recursing on a non-recursive mutex,
//! unlocking a mutex one does not own, and initialising a live mutex without `MTX_NEW` panic,
//! as an `INVARIANTS` kernel does; a destroyed mutex holds `MTX_DESTROYED`. A contended lock
//! blocks until the owner releases it (threads come in a later stage; a lock no one will
//! release shows as a `--timeout`).
//!
//! Sleeping (`pause_sbt`) while holding a mutex panics at once: a real kernel panics
//! ("sleeping thread", `propagate_priority` in sys/kern/subr_turnstile.c) as soon as another
//! thread blocks on the mutex, and WITNESS warns at the sleep itself.
//!
//! The lock word is taken and released with atomic operations on it (a compare-and-swap from
//! `MTX_UNOWNED`, as `_mtx_obtain_lock` does); the table of initialised mutexes (name,
//! `MTX_RECURSE`) is read-locked only to check that the mutex is one. A contended lock spins
//! briefly, as FreeBSD's adaptive mutexes spin while the owner runs (`_mtx_lock_sleep`,
//! `ADAPTIVE_MUTEXES`), then blocks on a turnstile chain (hashed by the lock's address, as
//! `sys/kern/subr_turnstile.c` hashes them into `TC_TABLESIZE` chains), and an unlock wakes
//! that chain only if a thread blocks on it.
//!
//! Simplified: no WITNESS lock-order checking, no priority propagation, spin mutexes do not
//! disable interrupts (there are none), the spin is bounded (kldrun cannot see whether the
//! owner runs). Mutexes initialised and never destroyed are reported by the end-of-run check.

use super::{kpanic, mem, threads, Ctx};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, RwLock};

/// `MTX_SPIN`.
const MTX_SPIN: i32 = 0x1;
/// `MTX_RECURSE`.
const MTX_RECURSE: i32 = 0x4;
/// `MTX_NEW`.
const MTX_NEW: i32 = 0x40;
/// `MTX_UNOWNED`: the lock word of a free mutex.
const MTX_UNOWNED: u64 = 0;
/// `MTX_RECURSED`.
const MTX_RECURSED: u64 = 0x1;
/// `MTX_DESTROYED`.
const MTX_DESTROYED: u64 = 0x4;
/// `LO_INITIALIZED`.
const LO_INITIALIZED: u32 = 0x0001_0000;
/// `LO_RECURSABLE`.
const LO_RECURSABLE: u32 = 0x0008_0000;
/// `LO_CLASSSHIFT`: the lock class index (spin 0, sleep 1) sits above it.
const LO_CLASSSHIFT: u32 = 24;
/// Offset of `mtx_lock` in `struct mtx` (after the 24-byte `struct lock_object`).
pub(super) const MTX_LOCK_OFFSET: u64 = 24;

#[derive(Debug)]
struct Info {
    name: String,
    recurse: bool,
    caller: u64,
}

/// The initialised mutexes, by lock word address.
static STATE: RwLock<Option<HashMap<u64, Info>>> = RwLock::new(None);

fn state() -> std::sync::RwLockReadGuard<'static, Option<HashMap<u64, Info>>> {
    STATE.read().unwrap_or_else(|e| e.into_inner())
}

fn state_mut() -> std::sync::RwLockWriteGuard<'static, Option<HashMap<u64, Info>>> {
    STATE.write().unwrap_or_else(|e| e.into_inner())
}

/// `TC_TABLESIZE` and `TC_SHIFT` (sys/kern/subr_turnstile.c).
const TC_TABLESIZE: usize = 128;
const TC_SHIFT: u32 = 8;
/// Reads of a contended lock word before blocking (each with a spin-loop hint).
const SPINS: u32 = 200;

/// Where threads block on the mutexes hashed to it.
struct Turnstile {
    lock: Mutex<()>,
    cv: Condvar,
    /// Threads blocked (or about to block) here: an unlock with none makes no host call.
    waiters: AtomicUsize,
}

static TURNSTILES: [Turnstile; TC_TABLESIZE] = [const {
    Turnstile {
        lock: Mutex::new(()),
        cv: Condvar::new(),
        waiters: AtomicUsize::new(0),
    }
}; TC_TABLESIZE];

fn turnstile(w: u64) -> &'static Turnstile {
    &TURNSTILES[((w >> TC_SHIFT) ^ w) as usize % TC_TABLESIZE]
}

/// Wakes the threads blocked on `w`'s chain, if any (after `w` was released).
fn notify_released(w: u64) {
    let ts = turnstile(w);
    if ts.waiters.load(Ordering::SeqCst) > 0 {
        // A waiter counted itself and looked at the word with the chain's lock held, and
        // holds it until it waits: taking it here means it waits already.
        drop(ts.lock.lock().unwrap_or_else(|e| e.into_inner()));
        ts.cv.notify_all();
    }
}

fn atom(c: u64) -> &'static AtomicU64 {
    // SAFETY: the (8-byte aligned) lock word of a struct mtx the module initialised (the
    // KPI's contract), live while the module uses the mutex; the module itself only reads it
    // (`mtx_owned`), every change goes through kldrun.
    unsafe { AtomicU64::from_ptr(c as *mut u64) }
}

fn word(c: u64) -> u64 {
    atom(c).load(Ordering::SeqCst)
}

fn set_word(c: u64, v: u64) {
    atom(c).store(v, Ordering::SeqCst)
}

fn lo_data(c: u64) -> u64 {
    c - MTX_LOCK_OFFSET + 12
}

fn name_of(c: u64) -> String {
    let g = state();
    g.as_ref()
        .and_then(|m| m.get(&c))
        .map_or_else(|| format!("{c:#x}"), |i| i.name.clone())
}

/// `void _mtx_init(volatile uintptr_t *c, const char *name, const char *type, int opts);`
pub fn mtx_init(c: &mut Ctx) -> u64 {
    let w = c.args.ptr();
    let name_p = c.args.ptr();
    let _type = c.args.ptr();
    let opts = c.args.int();
    // SAFETY: the contract: a NUL-terminated name the kernel keeps a pointer to.
    let name = unsafe { mem::string(name_p) };
    let live = {
        let mut g = state_mut();
        let m = g.get_or_insert_with(HashMap::new);
        let live = m.contains_key(&w);
        m.insert(
            w,
            Info {
                name: name.clone(),
                recurse: opts & MTX_RECURSE != 0,
                caller: c.ret_addr,
            },
        );
        live
    };
    if live && opts & MTX_NEW == 0 {
        kpanic(
            c,
            &format!(
                "lock \"{name}\" {:#x} already initialized",
                w - MTX_LOCK_OFFSET
            ),
        );
    }
    let class = if opts & MTX_SPIN != 0 { 0 } else { 1 };
    let mut flags = LO_INITIALIZED | (class << LO_CLASSSHIFT);
    if opts & MTX_RECURSE != 0 {
        flags |= LO_RECURSABLE;
    }
    let lo = w - MTX_LOCK_OFFSET;
    // SAFETY: the contract: `c` is the mtx_lock word of a struct mtx, whose lock_object
    // (lo_name at 0, lo_flags at 8, lo_data at 12, lo_witness at 16) precedes it.
    unsafe {
        mem::write(lo, name_p);
        mem::write(lo + 8, flags);
        mem::write(lo + 12, 0u32);
        mem::write(lo + 16, 0u64);
    }
    set_word(w, MTX_UNOWNED);
    0
}

/// `void _mtx_destroy(volatile uintptr_t *c);` — the owner may destroy a mutex it holds (not
/// recursed); anyone else must find it free. Leaves `MTX_DESTROYED` in the word.
pub fn mtx_destroy(c: &mut Ctx) -> u64 {
    let w = c.args.ptr();
    let td = threads::td(c.thread);
    let known = {
        let mut g = state_mut();
        g.get_or_insert_with(HashMap::new).remove(&w)
    };
    let Some(info) = known else {
        kpanic(
            c,
            &format!("mtx_destroy: {:#x} is not an initialised mutex", w - 24),
        );
    };
    let v = word(w);
    if v != MTX_UNOWNED && v & !0x7 != td {
        kpanic(
            c,
            &format!("mtx_destroy: mutex {} is held by another thread", info.name),
        );
    }
    if v & MTX_RECURSED != 0 {
        kpanic(c, &format!("mtx_destroy: mutex {} is recursed", info.name));
    }
    // A free mutex must stay free until it is marked (no lock may slip in between).
    if v == MTX_UNOWNED
        && atom(w)
            .compare_exchange(
                MTX_UNOWNED,
                MTX_DESTROYED,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_err()
    {
        kpanic(
            c,
            &format!("mtx_destroy: mutex {} is held by another thread", info.name),
        );
    }
    set_word(w, MTX_DESTROYED);
    notify_released(w);
    0
}

fn lock(c: &mut Ctx, try_only: bool) -> u64 {
    let w = c.args.ptr();
    let _opts = c.args.int();
    let file = c.args.ptr();
    let line = c.args.int();
    let td = threads::td(c.thread);
    let recurse = state().as_ref().and_then(|m| m.get(&w)).map(|i| i.recurse);
    let Some(recurse) = recurse else {
        kpanic(
            c,
            &format!("mtx_lock: {:#x} is not an initialised mutex", w - 24),
        );
    };
    let a = atom(w);
    let mut spins = 0;
    loop {
        let v = match a.compare_exchange(MTX_UNOWNED, td, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return 1,
            Err(v) => v,
        };
        if v & !0x7 == td {
            if !recurse {
                if try_only {
                    return 0;
                }
                // SAFETY: file names passed by LOCK_DEBUG callers are static strings.
                let file = unsafe { mem::string(file) };
                kpanic(
                    c,
                    &format!(
                        "_mtx_lock_sleep: recursed on non-recursive mutex {} @ {file}:{line}",
                        name_of(w)
                    ),
                );
            }
            // Only the owner changes an owned word.
            set_word(w, v | MTX_RECURSED);
            let depth = lo_data(w);
            // SAFETY: lo_data of the same struct mtx.
            unsafe { mem::write(depth, mem::read::<u32>(depth) + 1) };
            return 1;
        }
        if v == MTX_DESTROYED {
            kpanic(c, &format!("mtx_lock: mutex {} was destroyed", name_of(w)));
        }
        if try_only {
            return 0;
        }
        if spins < SPINS {
            spins += 1;
            std::hint::spin_loop();
            continue;
        }
        let ts = turnstile(w);
        let mut g = ts.lock.lock().unwrap_or_else(|e| e.into_inner());
        ts.waiters.fetch_add(1, Ordering::SeqCst);
        // Still held by another (an unlock after this look sees the waiter: it stores the
        // word before it looks at `waiters`).
        let now = a.load(Ordering::SeqCst);
        if now & !0x7 != 0 && now & !0x7 != td {
            g = ts.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        ts.waiters.fetch_sub(1, Ordering::SeqCst);
        drop(g);
        spins = 0;
    }
}

/// `void __mtx_lock_flags(volatile uintptr_t *c, int opts, const char *file, int line);`
pub fn mtx_lock_flags(c: &mut Ctx) -> u64 {
    lock(c, false);
    0
}

/// `int _mtx_trylock_flags_(volatile uintptr_t *c, int opts, const char *file, int line);`
/// — 1 if acquired (or recursed, for a recursive mutex), else 0.
pub fn mtx_trylock_flags(c: &mut Ctx) -> u64 {
    lock(c, true)
}

/// `void __mtx_unlock_flags(volatile uintptr_t *c, int opts, const char *file, int line);`
pub fn mtx_unlock_flags(c: &mut Ctx) -> u64 {
    let w = c.args.ptr();
    let td = threads::td(c.thread);
    // Only the owner changes an owned word: no lock needed.
    let v = word(w);
    if v & !0x7 != td {
        kpanic(c, &format!("mtx_unlock: mutex {} not owned", name_of(w)));
    }
    if v & MTX_RECURSED != 0 {
        let depth = lo_data(w);
        // SAFETY: lo_data of the same struct mtx.
        let d = unsafe { mem::read::<u32>(depth) } - 1;
        // SAFETY: as above.
        unsafe { mem::write(depth, d) };
        if d == 0 {
            set_word(w, td);
        }
    } else {
        set_word(w, MTX_UNOWNED);
        notify_released(w);
    }
    0
}

/// `void mtx_sysinit(void *arg);` — `MTX_SYSINIT`'s SYSINIT: `_mtx_init` from a `struct
/// mtx_args { void *ma_mtx; const char *ma_desc; int ma_opts; }`.
pub fn mtx_sysinit(c: &mut Ctx) -> u64 {
    let a = c.args.ptr();
    // SAFETY: the contract: a struct mtx_args.
    let (m, desc, opts) = unsafe {
        (
            mem::read::<u64>(a),
            mem::read::<u64>(a + 8),
            mem::read::<i32>(a + 16),
        )
    };
    let args = [m + MTX_LOCK_OFFSET, desc, 0, opts as u32 as u64];
    let mut sa = super::args::SliceArgs::new(&args);
    let mut inner = Ctx {
        args: &mut sa,
        thread: c.thread,
        ret_addr: c.ret_addr,
        frame_ptr: c.frame_ptr,
    };
    mtx_init(&mut inner)
}

/// The name of a mutex the thread `td` (its `struct thread *`) holds, if any.
pub fn held_by(td: u64) -> Option<String> {
    let g = state();
    g.as_ref()?
        .iter()
        .find(|(w, _)| word(**w) & !0x7 == td)
        .map(|(_, i)| i.name.clone())
}

/// Mutexes initialised and never destroyed: a line each.
pub fn leaks(symbolize: &dyn Fn(u64) -> String) -> Vec<String> {
    let g = state();
    g.as_ref()
        .map(|m| {
            m.iter()
                .map(|(w, i)| {
                    format!(
                        "mutex(9): {} at {:#x} (initialised from {}) never destroyed",
                        i.name,
                        w - MTX_LOCK_OFFSET,
                        symbolize(i.caller)
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Locks the mutex whose lock word is at `w` for kernel thread `thread` (a lock kldrun takes
/// itself, e.g. the SIM mutex around a CAM action call).
pub fn lock_as(thread: usize, w: u64) {
    let args = [w, 0, 0, 0];
    let mut sa = super::args::SliceArgs::new(&args);
    let mut c = Ctx {
        args: &mut sa,
        thread,
        ret_addr: 0,
        frame_ptr: 0,
    };
    lock(&mut c, false);
}

/// Unlocks what [`lock_as`] locked.
pub fn unlock_as(thread: usize, w: u64) {
    let args = [w, 0, 0, 0];
    let mut sa = super::args::SliceArgs::new(&args);
    let mut c = Ctx {
        args: &mut sa,
        thread,
        ret_addr: 0,
        frame_ptr: 0,
    };
    mtx_unlock_flags(&mut c);
}

/// Whether `w` is the lock word of an initialised (not destroyed) mutex, and its lock word
/// (the owner's `struct thread *` and flag bits) — for `_sleep`'s interlock.
pub fn state_of(w: u64) -> Option<u64> {
    let g = state();
    g.as_ref()
        .is_some_and(|m| m.contains_key(&w))
        .then(|| word(w))
}

/// `MTX_RECURSED` of a lock word.
pub fn recursed(v: u64) -> bool {
    v & MTX_RECURSED != 0
}
