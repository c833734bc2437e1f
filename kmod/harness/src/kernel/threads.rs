//! Kernel threads: a kernel stack ([`crate::kstack::KStack`], 16 KiB with a guard), a
//! stand-in `struct thread` whose address is the thread's identity (the owner in a mutex's
//! lock word), and a per-CPU area whose first word (`pc_curthread`) points to it: while a
//! thread's code runs, the host thread's `%gs` base is that area, so the kernel's inline
//! `curthread` (`movq %gs:0`) — in `mtx_owned()`, for instance — reads the right thread.
//! Only `pc_curthread` is set; every other per-CPU field and the whole `struct thread` read
//! as zero (CPU 0, no process, no credentials).
//!
//! kldrun's own threads are `modevent` (the SYSINITs, the module events, the SYSUNINITs) and
//! `sysctl` (the handlers), driven from its main thread one call at a time, `xpt_thrd` (CAM's
//! probe), `g_down` (mountroot's, the workloads' and the bench's I/O); a kernel thread the module
//! creates (`kproc_kthread_add`, [`super::kthread`]) gets a host thread and a stack of its own.
//! Every `struct thread` has `td_proc` (offset 8) pointing at [`proc0`].

use crate::kstack::{KStack, MAX_THREADS};
use std::cell::Cell;
use std::sync::OnceLock;

/// `ARCH_SET_GS` (asm/prctl.h).
const ARCH_SET_GS: libc::c_int = 0x1001;
/// Bytes of the stand-in `struct pcpu`.
const PCPU_SIZE: usize = 4096;

thread_local! {
    /// The `%gs` base this host thread has now.
    static GS: Cell<u64> = const { Cell::new(0) };
    /// Whether this host thread has its alternate signal stack (the fault handler must not
    /// run on a kernel stack: an overflow leaves none, and `--hca`'s MMIO emulation needs
    /// more room than a kernel stack's remainder).
    static ALTSTACK: Cell<bool> = const { Cell::new(false) };
    /// How many [`call`]s are running on this host thread (nested ones included).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

fn set_gs(base: u64) {
    if GS.get() != base {
        // SAFETY: arch_prctl(ARCH_SET_GS) only sets this thread's %gs base; nothing in Rust or
        // glibc on x86-64 Linux uses %gs.
        let rc = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_SET_GS, base) };
        assert_eq!(rc, 0, "arch_prctl(ARCH_SET_GS)");
        GS.set(base);
    }
}

/// Bytes of the stand-in `struct thread` (the real one is about 1.4 KiB; only `td_proc` is
/// set).
const TD_SIZE: usize = 2048;

#[derive(Debug)]
struct KThread {
    stack: KStack,
    td: Box<[u8; TD_SIZE]>,
    pcpu: Box<[u64; PCPU_SIZE / 8]>,
}

/// By index (a stack's index is never reused): read without a lock on every call into the
/// module and every `td` lookup.
static THREADS: [OnceLock<&'static KThread>; MAX_THREADS] =
    [const { OnceLock::new() }; MAX_THREADS];

fn get(index: usize) -> Option<&'static KThread> {
    THREADS.get(index).and_then(|t| t.get().copied())
}

/// Makes a kernel thread context named `name` with a `stack`-byte stack; returns its index.
pub fn create(name: &str, stack: usize) -> std::io::Result<usize> {
    let stack = KStack::new(name, stack)?;
    let index = stack.index();
    let mut td = Box::new([0; TD_SIZE]);
    td[8..16].copy_from_slice(&proc0().to_le_bytes()); // td_proc
    let mut pcpu = Box::new([0u64; PCPU_SIZE / 8]);
    pcpu[0] = td.as_ptr() as u64; // pc_curthread
    let t: &'static KThread = Box::leak(Box::new(KThread { stack, td, pcpu }));
    let slot = THREADS
        .get(index)
        .ok_or_else(|| std::io::Error::other("too many kernel threads"))?;
    if slot.set(t).is_err() {
        return Err(std::io::Error::other("a kernel thread index used twice"));
    }
    Ok(index)
}

/// The stand-in `struct proc` every kernel thread belongs to (proc0): zero but for
/// `p_ucred` (offset 64), a non-NULL credential token the socket KPIs accept.
pub fn proc0() -> u64 {
    static PROC0: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PROC0.get_or_init(|| {
        let cred: &'static mut [u64; 32] = Box::leak(Box::new([0u64; 32]));
        let p: &'static mut [u64; 256] = Box::leak(Box::new([0u64; 256]));
        p[8] = cred.as_ptr() as u64; // p_ucred
        p.as_ptr() as u64
    })
}

/// The address standing for thread `index`'s `struct thread` (0 for an unknown index).
pub fn td(index: usize) -> u64 {
    get(index).map_or(0, |t| t.td.as_ptr() as u64)
}

/// Calls module code `f` with `args` on thread `index`'s kernel stack (nested inside a call
/// already running there, if any).
///
/// # Safety
/// As [`KStack::call`]: `f` is code of the SysV ABI taking these (at most six integer)
/// arguments.
pub unsafe fn call(index: usize, f: u64, args: &[u64]) -> u64 {
    let t = get(index).expect("a kernel thread of kldrun's");
    if !ALTSTACK.get() {
        crate::fault::install_altstack().expect("sigaltstack");
        ALTSTACK.set(true);
    }
    let prev = GS.get();
    let depth = DEPTH.get();
    DEPTH.set(depth + 1);
    set_gs(t.pcpu.as_ptr() as u64);
    // SAFETY: forwarded contract.
    let r = unsafe { t.stack.call(f, args) };
    DEPTH.set(depth);
    // A nested call gives the outer one its %gs back; the outermost leaves it (only module
    // code reads %gs): the next call on this host thread, usually for the same kernel thread,
    // then makes no arch_prctl (two system calls per CAM action routine call otherwise).
    if depth > 0 {
        set_gs(prev);
    }
    r
}

/// (name, bytes used at most, stack size) for every thread that ran, in creation order.
pub fn high_water() -> Vec<(String, usize, usize)> {
    THREADS
        .iter()
        .filter_map(|t| t.get())
        .map(|t| {
            (
                t.stack.name().to_string(),
                t.stack.high_water(),
                t.stack.size(),
            )
        })
        .filter(|(_, used, _)| *used > 0)
        .collect()
}
