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
//! Simplified: no WITNESS lock-order checking, no priority propagation, spin mutexes do not
//! disable interrupts (there are none). Mutexes initialised and never destroyed are reported
//! by the end-of-run check.

use super::{kpanic, mem, threads, Ctx};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

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

static STATE: Mutex<Option<HashMap<u64, Info>>> = Mutex::new(None);
static RELEASED: Condvar = Condvar::new();
/// Threads waiting in [`RELEASED`] (changed and read with [`STATE`] held): an unlock with no
/// waiter skips the host wake-up (a futex system call).
static WAITERS: AtomicUsize = AtomicUsize::new(0);

fn notify_released() {
    if WAITERS.load(Ordering::Relaxed) > 0 {
        RELEASED.notify_all();
    }
}

fn word(c: u64) -> u64 {
    // SAFETY: the lock word of a struct mtx the module initialised (the KPI's contract).
    unsafe { mem::read::<u64>(c) }
}

fn set_word(c: u64, v: u64) {
    // SAFETY: as in `word`.
    unsafe { mem::write(c, v) }
}

fn lo_data(c: u64) -> u64 {
    c - MTX_LOCK_OFFSET + 12
}

fn name_of(c: u64) -> String {
    let g = STATE.lock().unwrap_or_else(|e| e.into_inner());
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
        let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
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
        let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
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
    set_word(w, MTX_DESTROYED);
    notify_released();
    0
}

fn lock(c: &mut Ctx, try_only: bool) -> u64 {
    let w = c.args.ptr();
    let _opts = c.args.int();
    let file = c.args.ptr();
    let line = c.args.int();
    let td = threads::td(c.thread);
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(info) = g.as_ref().and_then(|m| m.get(&w)) else {
        drop(g);
        kpanic(
            c,
            &format!("mtx_lock: {:#x} is not an initialised mutex", w - 24),
        );
    };
    let (name, recurse) = (info.name.clone(), info.recurse);
    loop {
        let v = word(w);
        if v == MTX_UNOWNED {
            set_word(w, td);
            return 1;
        }
        if v & !0x7 == td {
            if !recurse {
                if try_only {
                    return 0;
                }
                drop(g);
                // SAFETY: file names passed by LOCK_DEBUG callers are static strings.
                let file = unsafe { mem::string(file) };
                kpanic(
                    c,
                    &format!(
                        "_mtx_lock_sleep: recursed on non-recursive mutex {name} @ {file}:{line}"
                    ),
                );
            }
            set_word(w, v | MTX_RECURSED);
            let depth = lo_data(w);
            // SAFETY: lo_data of the same struct mtx.
            unsafe { mem::write(depth, mem::read::<u32>(depth) + 1) };
            return 1;
        }
        if v == MTX_DESTROYED {
            drop(g);
            kpanic(c, &format!("mtx_lock: mutex {name} was destroyed"));
        }
        if try_only {
            return 0;
        }
        WAITERS.fetch_add(1, Ordering::Relaxed);
        g = RELEASED.wait(g).unwrap_or_else(|e| e.into_inner());
        WAITERS.fetch_sub(1, Ordering::Relaxed);
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
    let g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let v = word(w);
    if v & !0x7 != td {
        drop(g);
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
        notify_released();
    }
    drop(g);
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
    let g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref()?
        .iter()
        .find(|(w, _)| word(**w) & !0x7 == td)
        .map(|(_, i)| i.name.clone())
}

/// Mutexes initialised and never destroyed: a line each.
pub fn leaks(symbolize: &dyn Fn(u64) -> String) -> Vec<String> {
    let g = STATE.lock().unwrap_or_else(|e| e.into_inner());
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
    let g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref()
        .is_some_and(|m| m.contains_key(&w))
        .then(|| word(w))
}

/// `MTX_RECURSED` of a lock word.
pub fn recursed(v: u64) -> bool {
    v & MTX_RECURSED != 0
}
