//! Kernel threads, time and the root-mount holds of the boot half.
//!
//! - `kproc_kthread_add(9)`: the new thread is a host thread running the module's function on
//!   its own kernel stack (`pages` pages, 4 when 0, with the guard below) and its own `%gs`
//!   per-CPU area whose `pc_curthread` is its `struct thread`; `td_proc` (offset 8) points at
//!   proc0 stand-in whose `p_ucred` (offset 64) is a non-NULL credential token. Simplified: one
//!   process per call (no `p_threads` list), no scheduling priorities, flags ignored.
//! - `kthread_exit(9)`: ends the kernel thread: the host thread leaves the module's stack
//!   (`kstack::leave`, a longjmp back to the call that started the thread function) and ends.
//!   A thread function that returns is ended the same way (FreeBSD's `fork_exit` calls
//!   `kthread_exit` for it).
//! - `binuptime(9)`: `CLOCK_MONOTONIC` as a `struct bintime` (seconds, 2^-64 fractions).
//! - `pause_sbt(9)`: sleeps `sbt` (32.32 fixed point seconds); `pr`/`flags` ignored (no
//!   callout coalescing); returns `EWOULDBLOCK` like `_sleep` after a timeout.
//! - `arc4random_buf(9)`: `getrandom(2)`.
//! - `root_mount_hold(9)`/`root_mount_rel(9)`: a hold is a token with the holder's name; before
//!   the mountroot phase ([`mountroot_wait`]) it is recorded, after it `NULL` is returned (root
//!   is mounted), as `vfs_mountroot.c` does.

use super::{mem, threads, Ctx};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// FreeBSD `EWOULDBLOCK`.
const EWOULDBLOCK: u64 = 35;

#[derive(Debug, Default)]
struct Threads {
    /// Started by the module (name, still running).
    started: Vec<(String, bool)>,
    /// Host threads to join at the end.
    handles: Vec<std::thread::JoinHandle<()>>,
}

static KTHREADS: Mutex<Option<Threads>> = Mutex::new(None);
static EXITED: Condvar = Condvar::new();

fn with<T>(f: impl FnOnce(&mut Threads) -> T) -> T {
    let mut g = KTHREADS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Threads::default))
}

/// `int kproc_kthread_add(void (*func)(void *), void *arg, struct proc **procptr, struct
/// thread **tdptr, int flags, int pages, const char *procname, const char *fmt, ...);`
pub fn kproc_kthread_add(c: &mut Ctx) -> u64 {
    let func = c.args.ptr();
    let arg = c.args.ptr();
    let procp = c.args.ptr();
    let tdp = c.args.ptr();
    let _flags = c.args.int();
    let pages = c.args.int();
    let procname = c.args.ptr();
    // SAFETY: a NUL-terminated process name (the KPI's contract).
    let name = unsafe { mem::string(procname) };
    let pages = if pages <= 0 { 4 } else { pages as usize };
    let idx = match threads::create(&name, pages * crate::kstack::PAGE) {
        Ok(i) => i,
        Err(_) => return 12, // ENOMEM
    };
    let td = threads::td(idx);
    // SAFETY: out-pointers given by the caller (NULL allowed).
    unsafe {
        if procp != 0 {
            mem::write(procp, threads::proc0());
        }
        if tdp != 0 {
            mem::write(tdp, td);
        }
    }
    let slot = with(|t| {
        t.started.push((name.clone(), true));
        t.started.len() - 1
    });
    let h = std::thread::Builder::new()
        .name(format!("k:{name}"))
        .spawn(move || {
            // SAFETY: a kernel thread function of the module: void (*)(void *).
            unsafe { threads::call(idx, func, &[arg]) };
            with(|t| t.started[slot].1 = false);
            EXITED.notify_all();
        });
    match h {
        Ok(h) => {
            with(|t| t.handles.push(h));
            0
        }
        Err(_) => {
            with(|t| t.started[slot].1 = false);
            35 // EAGAIN
        }
    }
}

/// `void kthread_exit(void);` — see the module documentation.
pub fn kthread_exit(c: &mut Ctx) -> u64 {
    // SAFETY: called by a thread kproc_kthread_add started; its outermost host → module call
    // is the thread function's (threads::call in kproc_kthread_add), the only one on its stack.
    unsafe { crate::kstack::leave(c.thread) }
}

/// Waits up to `limit` for every thread the module started to end; the names still running.
pub fn join_all(limit: Duration) -> Vec<String> {
    let end = Instant::now() + limit;
    let mut g = KTHREADS.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let t = g.get_or_insert_with(Threads::default);
        let running: Vec<String> = t
            .started
            .iter()
            .filter(|(_, r)| *r)
            .map(|(n, _)| n.clone())
            .collect();
        let now = Instant::now();
        if running.is_empty() || now >= end {
            if running.is_empty() {
                let hs = std::mem::take(&mut t.handles);
                drop(g);
                for h in hs {
                    let _ = h.join();
                }
            }
            return running;
        }
        g = EXITED
            .wait_timeout(g, end - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// (started, exited) kernel threads of the module.
pub fn counts() -> (usize, usize) {
    with(|t| {
        (
            t.started.len(),
            t.started.iter().filter(|(_, r)| !*r).count(),
        )
    })
}

static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Uptime: time since kldrun started its kernel (plus one second, as a booted kernel has).
pub fn uptime() -> Duration {
    EPOCH.get_or_init(Instant::now).elapsed() + Duration::from_secs(1)
}

/// `void binuptime(struct bintime *bt);`
pub fn binuptime(c: &mut Ctx) -> u64 {
    let bt = c.args.ptr();
    let up = uptime();
    let frac = ((u128::from(up.subsec_nanos()) << 64) / 1_000_000_000) as u64;
    // SAFETY: a struct bintime { time_t sec; uint64_t frac; } of the caller.
    unsafe {
        mem::write(bt, up.as_secs());
        mem::write(bt + 8, frac);
    }
    0
}

/// `int pause_sbt(const char *wmesg, sbintime_t sbt, sbintime_t pr, int flags);`
pub fn pause_sbt(c: &mut Ctx) -> u64 {
    let wmesg = c.args.ptr();
    if let Some(m) = super::mutex::held_by(threads::td(c.thread)) {
        // SAFETY: the wait message is a NUL-terminated string (the KPI's contract).
        let w = unsafe { mem::string(wmesg) };
        super::kpanic(
            c,
            &format!(
                "sleeping thread owns a non-sleepable lock: pause_sbt(\"{w}\") with mutex {m} \
                 held"
            ),
        );
    }
    let sbt = c.args.ptr() as i64;
    let sbt = sbt.max(1) as u64;
    let secs = sbt >> 32;
    let nanos = ((sbt & 0xffff_ffff) * 1_000_000_000) >> 32;
    std::thread::sleep(Duration::from_secs(secs) + Duration::from_nanos(nanos));
    EWOULDBLOCK
}

/// `void arc4random_buf(void *ptr, size_t len);`
pub fn arc4random_buf(c: &mut Ctx) -> u64 {
    let p = c.args.ptr();
    let n = c.args.ptr() as usize;
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        // SAFETY: writes into our own buffer.
        let r = unsafe { libc::getrandom(buf[got..].as_mut_ptr().cast(), n - got, 0) };
        if r <= 0 {
            break;
        }
        got += r as usize;
    }
    // SAFETY: the caller's buffer of `n` bytes.
    unsafe { mem::write_bytes(p, &buf) };
    0
}

// --- root holds ------------------------------------------------------------------------------

static HOLDS: Mutex<Option<HashMap<u64, String>>> = Mutex::new(None);
static HOLD_RELEASED: Condvar = Condvar::new();
static ROOT_MOUNTED: AtomicBool = AtomicBool::new(false);
static HOLDS_TAKEN: AtomicU64 = AtomicU64::new(0);

/// `struct root_hold_token *root_mount_hold(const char *identifier);`
pub fn root_mount_hold(c: &mut Ctx) -> u64 {
    let id = c.args.ptr();
    if ROOT_MOUNTED.load(Ordering::Acquire) {
        return 0;
    }
    // SAFETY: a NUL-terminated identifier.
    let name = unsafe { mem::string(id) };
    let token = Box::into_raw(Box::new([0u64; 4])) as u64;
    HOLDS_TAKEN.fetch_add(1, Ordering::Relaxed);
    HOLDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(token, name);
    token
}

/// `void root_mount_rel(struct root_hold_token *h);` — NULL is ignored; an unknown token
/// panics (a double release).
pub fn root_mount_rel(c: &mut Ctx) -> u64 {
    let h = c.args.ptr();
    if h == 0 {
        return 0;
    }
    let removed = HOLDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .remove(&h);
    if removed.is_none() {
        super::kpanic(c, &format!("root_mount_rel: {h:#x} is not a held token"));
    }
    // SAFETY: the token root_mount_hold made with Box::into_raw, removed once.
    drop(unsafe { Box::from_raw(h as *mut [u64; 4]) });
    HOLD_RELEASED.notify_all();
    0
}

fn holders() -> Vec<String> {
    let g = HOLDS.lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<String> = g
        .as_ref()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// vfs_mountroot's wait: while any hold is held, `Root mount waiting for: NAMES` once a second
/// (up to `limit`); then root counts as mounted (later holds get NULL). `false` on a timeout.
pub fn mountroot_wait(limit: Duration) -> bool {
    let end = Instant::now() + limit;
    loop {
        let h = holders();
        if h.is_empty() {
            ROOT_MOUNTED.store(true, Ordering::Release);
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        super::console::write(format!("Root mount waiting for: {}\n", h.join(" ")).as_bytes());
        let step = Instant::now() + Duration::from_secs(1);
        let g = HOLDS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = HOLD_RELEASED
            .wait_timeout_while(g, step.saturating_duration_since(Instant::now()), |m| {
                m.as_ref().is_some_and(|m| !m.is_empty())
            })
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// Holds never released: a line each.
pub fn leaks() -> Vec<String> {
    let mut v: Vec<String> = holders()
        .into_iter()
        .map(|n| format!("root_mount_hold(9): hold {n:?} never released"))
        .collect();
    let (started, exited) = counts();
    if started > exited {
        v.push(format!(
            "kthread: {} of {started} kernel threads still running",
            started - exited
        ));
    }
    v
}

/// Holds taken during the run.
pub fn holds_taken() -> u64 {
    HOLDS_TAKEN.load(Ordering::Relaxed)
}
