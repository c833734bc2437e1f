//! The console: printf(9), vprintf(9), log(9), vlog(9), snprintf(9), vsnprintf(9), panic(9).
//!
//! Console output goes to kldrun's standard output, unbuffered (each call is written at once),
//! so that it interleaves with kldrun's own lines on standard error as the calls happened.

use super::args::{ArgSource, VaListArgs};
use super::printf::kvprintf;
use super::{mem, Ctx};
use std::io::Write;
use std::sync::Mutex;

/// Everything printed on the console during the run (also written to stdout as it comes).
static TRANSCRIPT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Writes console bytes (NUL bytes are dropped, as the kernel's `putchar()` drops them).
pub fn write(bytes: &[u8]) {
    let clean: Vec<u8> = bytes.iter().copied().filter(|&b| b != 0).collect();
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&clean);
    let _ = out.flush();
    if let Ok(mut t) = TRANSCRIPT.lock() {
        t.extend_from_slice(&clean);
    }
}

/// The console text so far.
pub fn transcript() -> Vec<u8> {
    TRANSCRIPT.lock().map(|t| t.clone()).unwrap_or_default()
}

/// Formats `fmt` with `args` and prints it on the console; returns the byte count.
///
/// # Safety
/// As for [`kvprintf`].
unsafe fn print(fmt: u64, args: &mut dyn ArgSource) -> u64 {
    let mut out = Vec::new();
    // SAFETY: forwarded contract.
    let n = unsafe { kvprintf(fmt, args, 10, &mut out) };
    write(&out);
    n as i64 as u64
}

/// `int printf(const char *fmt, ...);` — `kvprintf()` into the console and the message
/// buffer (`sys/kern/subr_prf.c`). Kept: every kernel format (see [`super::printf`]), the
/// returned count. Simplified: no message buffer, no `PRINTF_BUFR_SIZE` line buffering (each
/// call is written whole, so lines from concurrent threads do not mix within a call).
pub fn printf(c: &mut Ctx) -> u64 {
    let fmt = c.args.ptr();
    // SAFETY: printf's contract: a format string and the arguments it names.
    unsafe { print(fmt, c.args) }
}

/// `int vprintf(const char *fmt, va_list ap);` — as [`printf`], the arguments read through the
/// caller's `va_list` (which is advanced, as the callee's `va_arg` does).
pub fn vprintf(c: &mut Ctx) -> u64 {
    let fmt = c.args.ptr();
    let ap = c.args.ptr();
    // SAFETY: vprintf's contract: a format string and a live va_list holding its arguments.
    unsafe { print(fmt, &mut VaListArgs::new(ap)) }
}

/// `void log(int level, const char *fmt, ...);` — the kernel writes to the message buffer
/// with the priority, and also to the console while no process reads `/dev/klog` (as during
/// boot, when the module loads). Kept: the console text. Simplified: the level is not shown
/// (the console does not show it either) and there is no `/dev/klog`.
pub fn log(c: &mut Ctx) -> u64 {
    let _level = c.args.int();
    let fmt = c.args.ptr();
    // SAFETY: log's contract: a level, a format string and its arguments.
    unsafe { print(fmt, c.args) };
    0
}

/// `void vlog(int level, const char *fmt, va_list ap);` — [`log`] with a `va_list`.
pub fn vlog(c: &mut Ctx) -> u64 {
    let _level = c.args.int();
    let fmt = c.args.ptr();
    let ap = c.args.ptr();
    // SAFETY: vlog's contract: a level, a format string and a live va_list.
    unsafe { print(fmt, &mut VaListArgs::new(ap)) };
    0
}

/// Writes `out` into `str` of `size` bytes as `vsnprintf()` does: at most `size - 1` bytes and
/// a NUL (nothing if `size` is 0); returns the untruncated length.
///
/// # Safety
/// `str` points to `size` writable bytes.
unsafe fn store(dst: u64, size: u64, out: &[u8], n: i32) -> u64 {
    if size > 0 {
        let keep = out.len().min(size as usize - 1);
        // SAFETY: keep + 1 <= size bytes of the caller's buffer.
        unsafe {
            mem::write_bytes(dst, &out[..keep]);
            mem::write(dst + keep as u64, 0u8);
        }
    }
    n as i64 as u64
}

/// `int snprintf(char *str, size_t size, const char *fmt, ...);` (`sys/kern/subr_prf.c`):
/// kernel formats, truncation to `size - 1` bytes plus a NUL, the untruncated length
/// returned.
pub fn snprintf(c: &mut Ctx) -> u64 {
    let dst = c.args.ptr();
    let size = c.args.ptr();
    let fmt = c.args.ptr();
    let mut out = Vec::new();
    // SAFETY: snprintf's contract: a buffer of `size` bytes, a format and its arguments.
    unsafe {
        let n = kvprintf(fmt, c.args, 10, &mut out);
        store(dst, size, &out, n)
    }
}

/// `int vsnprintf(char *str, size_t size, const char *fmt, va_list ap);` — [`snprintf`] with
/// a `va_list`.
pub fn vsnprintf(c: &mut Ctx) -> u64 {
    let dst = c.args.ptr();
    let size = c.args.ptr();
    let fmt = c.args.ptr();
    let ap = c.args.ptr();
    let mut out = Vec::new();
    // SAFETY: vsnprintf's contract: a buffer of `size` bytes, a format and a live va_list.
    unsafe {
        let n = kvprintf(fmt, &mut VaListArgs::new(ap), 10, &mut out);
        store(dst, size, &out, n)
    }
}

/// `void panic(const char *fmt, ...) __dead2;` (`sys/kern/kern_shutdown.c`): prints
/// `panic: <message>` on the console and a stack backtrace of the module's frames (as DDB's
/// `KDB: stack backtrace:` would), then the "machine" stops: kldrun exits with
/// [`crate::EXIT_CRASH`]. Simplified: no dump, no reboot, no other CPUs to stop.
pub fn panic(c: &mut Ctx) -> u64 {
    let fmt = c.args.ptr();
    let mut out = Vec::new();
    // SAFETY: panic's contract: a format string and its arguments.
    unsafe { kvprintf(fmt, c.args, 10, &mut out) };
    super::kpanic_at(c, &String::from_utf8_lossy(&out))
}
