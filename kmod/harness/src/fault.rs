//! Faults: what a FreeBSD kernel turns into a panic ("Fatal trap 12: page fault while in kernel
//! mode", a double fault for a kernel stack overflow) kldrun turns into one report line on
//! stderr and exit status [`crate::EXIT_CRASH`].
//!
//! The handler runs on an alternate signal stack (the faulting code may be on a kernel stack
//! whose guard it just hit), uses no allocation and no locks, writes with `write(2)` and ends
//! with `_exit(2)`. It tells apart:
//! - a touch of a kernel stack's guard region: a stack overflow, named with the thread;
//! - a fault in the module's code: the address and the module function (from its symbol
//!   table) at the faulting instruction;
//! - anything else: a fault in kldrun while it served an import (named) — typically a bad
//!   pointer the module handed to a KPI, which the kernel would fault on just the same.

use crate::kstack::{thread_name, MAX_THREADS, THREADS};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The module's code, for attributing faults: `[lo, hi)`.
pub static MODULE_TEXT: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
/// The module's function symbols (address, demangled name), sorted by address.
pub static MODULE_SYMBOLS: OnceLock<Vec<(u64, String)>> = OnceLock::new();
thread_local! {
    /// The import this host thread is serving (index into the import table), `usize::MAX`
    /// when none. Per thread: several kernel threads run at once. (Const-initialised, so the
    /// fault handler's read allocates nothing.)
    pub static CURRENT_IMPORT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}
/// The names of the imports, by index.
pub static IMPORT_NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();

/// A fixed buffer that `write!` can fill without allocating.
struct Buf {
    b: [u8; 512],
    n: usize,
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for &c in s.as_bytes() {
            if self.n < self.b.len() {
                self.b[self.n] = c;
                self.n += 1;
            }
        }
        Ok(())
    }
}

/// `name+0xoff` for a module address, if it is inside a known function symbol's range.
pub fn symbolize(addr: u64, out: &mut impl Write) -> std::fmt::Result {
    let lo = MODULE_TEXT[0].load(Ordering::Acquire);
    let hi = MODULE_TEXT[1].load(Ordering::Acquire);
    if addr < lo || addr >= hi {
        return write!(out, "{addr:#x}");
    }
    let syms = MODULE_SYMBOLS.get().map(Vec::as_slice).unwrap_or(&[]);
    let i = syms.partition_point(|(a, _)| *a <= addr);
    match i.checked_sub(1).and_then(|i| syms.get(i)) {
        Some((a, name)) => write!(out, "{addr:#x} ({name}+{:#x})", addr - a),
        None => write!(out, "{addr:#x} (.text+{:#x})", addr - lo),
    }
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t and ucontext_t to an SA_SIGINFO handler.
    let (addr, rip, rsp) = unsafe {
        let addr = (*info).si_addr() as u64;
        let uc = uctx as *const libc::ucontext_t;
        (
            addr,
            (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as u64,
            (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] as u64,
        )
    };
    let mut m = Buf { b: [0; 512], n: 0 };
    let mut overflow = None;
    let mut running = None;
    for (i, slot) in THREADS.iter().enumerate().take(MAX_THREADS) {
        let lo = slot.guard_lo.load(Ordering::Acquire);
        let hi = slot.guard_hi.load(Ordering::Acquire);
        let top = slot.top.load(Ordering::Acquire);
        if lo != 0 && addr >= lo && addr < hi {
            overflow = Some((i, hi, top));
        }
        if lo != 0 && rsp >= lo && rsp < top {
            running = Some(i);
        }
    }
    let _ = match overflow {
        Some((i, lo, top)) => write!(
            m,
            "kldrun: kernel stack overflow in thread {}: {} KiB stack exhausted (fault at {addr:#x}, \
             {} bytes below it) at ",
            thread_name(i),
            (top - lo) / 1024,
            lo - addr
        ),
        None => {
            let what = if sig == libc::SIGBUS { "bus error" } else { "page fault" };
            let _ = write!(m, "kldrun: {what}");
            if let Some(i) = running {
                let _ = write!(m, " in thread {}", thread_name(i));
            }
            write!(m, " at address {addr:#x}, instruction ")
        }
    };
    let _ = symbolize(rip, &mut m);
    let lo = MODULE_TEXT[0].load(Ordering::Acquire);
    let hi = MODULE_TEXT[1].load(Ordering::Acquire);
    if rip < lo || rip >= hi {
        let cur = CURRENT_IMPORT.try_with(|c| c.get()).unwrap_or(usize::MAX);
        let name = IMPORT_NAMES
            .get()
            .and_then(|n| n.get(cur))
            .copied()
            .unwrap_or("");
        if !name.is_empty() {
            let _ = write!(m, " in kldrun serving {name}() for the module");
        } else {
            let _ = write!(m, " in kldrun");
        }
    } else {
        let _ = write!(m, " in the module");
    }
    let _ = m.write_str(" (a FreeBSD kernel panics here)\n");
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is valid for `n` bytes.
    unsafe {
        libc::write(2, m.b.as_ptr().cast(), m.n);
        libc::_exit(crate::EXIT_CRASH);
    }
}

/// Gives the calling host thread an alternate signal stack (needed before it runs module code:
/// a stack overflow leaves no stack to handle the fault on).
pub fn install_altstack() -> std::io::Result<()> {
    const SIZE: usize = 64 * 1024;
    let mem: &'static mut [u8] = Box::leak(vec![0u8; SIZE].into_boxed_slice());
    let ss = libc::stack_t {
        ss_sp: mem.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: SIZE,
    };
    // SAFETY: `ss` describes leaked memory that stays valid for the life of the process.
    if unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Installs the SIGSEGV/SIGBUS handler (process-wide) and an alternate stack for this thread.
pub fn install() -> std::io::Result<()> {
    install_altstack()?;
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler has the
        // SA_SIGINFO signature and is async-signal-safe (see `on_fault`).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fault as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}
