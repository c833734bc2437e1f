//! Console output through printf(9), and a [`log`] logger over it.
//!
//! Lines are formatted by Rust into a fixed buffer on the stack (no allocation, so usable in any
//! context where printf(9) is), newline included, and printed with `printf("%.*s", len, line)`:
//! a Rust string is never used as a printf format. (Not `printf("%s", ...)` nor `"%s\n"`: LLVM's
//! libcall simplification turns those into `puts()`, which the kernel does not have; it leaves a
//! precision format alone.) Overlong lines are cut and end in `...`.

use core::ffi::c_char;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

/// Bytes of one console line, including the terminating NUL.
pub const LINE_MAX: usize = 256;

/// A NUL-terminated line being formatted; truncates instead of failing.
#[derive(Debug)]
pub struct LineBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuf<N> {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// The text so far (without the NUL), with `...` at the end if something was cut.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Whether text was cut.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// A pointer to the NUL-terminated text.
    pub fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }

    /// Ends the line with a newline (always room for it: it is taken from the reserve).
    pub fn end_line(&mut self) {
        if N >= 2 && self.len + 1 < N {
            self.buf[self.len] = b'\n';
            self.len += 1;
            self.buf[self.len] = 0;
        }
    }

    fn push(&mut self, byte: u8) {
        // Room for the byte and the NUL; the last 5 bytes are reserved for "...\n\0".
        if self.truncated || N < 5 {
            return;
        }
        if self.len + 5 >= N {
            self.truncated = true;
            for b in b"..." {
                self.buf[self.len] = *b;
                self.len += 1;
            }
            self.buf[self.len] = 0;
            return;
        }
        // A NUL inside the text would end the C string early.
        self.buf[self.len] = if byte == 0 { b'?' } else { byte };
        self.len += 1;
        self.buf[self.len] = 0;
    }
}

impl<const N: usize> Write for LineBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            self.push(b);
        }
        Ok(())
    }
}

/// Prints one line on the console (`printf("%.*s", len, line)`, the line ending in a newline).
pub fn print_line(args: fmt::Arguments<'_>) {
    let mut line = LineBuf::<LINE_MAX>::new();
    // Writing into a LineBuf never fails; a Display impl returning an error just stops early.
    let _ = line.write_fmt(args);
    line.end_line();
    let len = line.as_bytes().len() as core::ffi::c_int; // at most LINE_MAX
                                                         // SAFETY: the format is a constant NUL-terminated string taking exactly an int precision and
                                                         // a char pointer; `line` holds at least `len` bytes and outlives the call.
    unsafe {
        crate::ffi::printf(c"%.*s".as_ptr(), len, line.as_ptr());
    }
}

/// Whether the kernel was booted verbose (`boot -v`).
pub fn bootverbose() -> bool {
    // SAFETY: `bootverbose` is a plain int the kernel sets early at boot; a racy read of an
    // aligned int is harmless (volatile to not assume it constant).
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(crate::ffi::bootverbose)) != 0 }
}

/// The maximum `log` level for an isboot-style debug setting (`net.isboot.debug`): 0 errors
/// only, 1 warnings, 2 info, 3 debug, 4 and more trace.
pub fn level_for_debug(debug: u32) -> log::LevelFilter {
    match debug {
        0 => log::LevelFilter::Error,
        1 => log::LevelFilter::Warn,
        2 => log::LevelFilter::Info,
        3 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

/// A [`log::Log`] printing `isboot: <level>: <message>` lines through printf(9).
#[derive(Debug)]
pub struct KernelLogger {
    installed: AtomicBool,
}

/// The module's logger.
pub static LOGGER: KernelLogger = KernelLogger {
    installed: AtomicBool::new(false),
};

impl KernelLogger {
    /// Installs the logger (once) and sets the level from `net.isboot.debug`.
    pub fn install(&'static self, debug: u32) {
        if !self.installed.swap(true, Ordering::AcqRel) {
            // Fails only if another logger was set first; ours stays unused then.
            let _ = log::set_logger(self);
        }
        log::set_max_level(level_for_debug(debug));
    }
}

impl log::Log for KernelLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let tag = match record.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                _ => "",
            };
            print_line(format_args!("isboot: {}{}", tag, record.args()));
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_nul_terminated_and_truncates() {
        let mut l = LineBuf::<16>::new();
        write!(l, "abc").unwrap();
        assert_eq!(l.as_bytes(), b"abc");
        assert!(!l.truncated());
        write!(l, "defghijklmnopqrstuvwxyz").unwrap();
        assert!(l.truncated());
        assert_eq!(l.as_bytes(), b"abcdefghijk...");
        l.end_line();
        assert_eq!(l.as_bytes(), b"abcdefghijk...\n");
        assert_eq!(l.as_bytes().len() + 1, 16);
        // SAFETY: the buffer is NUL-terminated right after the text.
        let c = unsafe { core::ffi::CStr::from_ptr(l.as_ptr()) };
        assert_eq!(c.to_bytes(), b"abcdefghijk...\n");
    }

    #[test]
    fn inner_nul_is_replaced() {
        let mut l = LineBuf::<16>::new();
        write!(l, "a\0b").unwrap();
        assert_eq!(l.as_bytes(), b"a?b");
    }

    #[test]
    fn debug_levels_follow_isboot() {
        assert_eq!(level_for_debug(0), log::LevelFilter::Error);
        assert_eq!(level_for_debug(1), log::LevelFilter::Warn);
        assert_eq!(level_for_debug(2), log::LevelFilter::Info);
        assert_eq!(level_for_debug(3), log::LevelFilter::Debug);
        assert_eq!(level_for_debug(9), log::LevelFilter::Trace);
    }
}
