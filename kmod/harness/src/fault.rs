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
//!
//! One fault is not an error: an access to a BAR of the `--hca` device
//! ([`crate::kernel::pci`]), mapped with no access on purpose. The module's
//! `bus_space_read_4`/`write_4` is a plain 32-bit `mov` (amd64 `x86/include/bus.h`), so the
//! handler decodes the faulting instruction — `8B /r` (load), `89 /r` (store), `C7 /0 id`
//! (store of an immediate), or a load folded into `03/0B/23/2B/33/3B/85 /r` (add, or, and, sub,
//! xor, cmp, test: computed by the CPU itself, the status flags copied back), with an optional
//! REX prefix (W clear), ModRM, SIB and
//! displacement — performs the access on the device model, writes a loaded value into the
//! destination register (zero-extended, as a 32-bit `mov` does) and steps past the instruction.
//! Any other instruction touching a BAR ends the run: "kldrun: unsupported MMIO instruction".

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

/// A decoded 32-bit MMIO `mov`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioOp {
    /// `mov r32, m32`: load into the register numbered so (0 = eax ... 15 = r15d).
    Load(u8),
    /// `mov m32, r32`: store of the register's low 32 bits.
    Store(u8),
    /// `mov m32, imm32`.
    StoreImm(u32),
    /// `OP r32, m32` (or `test m32, r32`): a load folded into an arithmetic instruction, as
    /// compilers fold a volatile 32-bit read that is used once (`and eax, [rcx+0x80690]`).
    Alu(Alu, u8),
}

/// The arithmetic instructions with a 32-bit memory source operand that kldrun emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alu {
    /// `03 /r`
    Add,
    /// `0B /r`
    Or,
    /// `23 /r`
    And,
    /// `2B /r`
    Sub,
    /// `33 /r`
    Xor,
    /// `3B /r` (flags only)
    Cmp,
    /// `85 /r` (flags only)
    Test,
}

/// The arithmetic status flags (CF, PF, AF, ZF, SF, OF).
const STATUS_FLAGS: u64 = 0x8d5;

/// `reg OP mem` computed by the CPU itself: the result and RFLAGS after it.
pub fn alu(op: Alu, reg: u32, mem: u32) -> (u32, u64) {
    let mut r = reg;
    let flags: u64;
    // SAFETY: register-only arithmetic, then pushfq/pop to read the flags (uses the stack).
    unsafe {
        match op {
            Alu::Add => {
                std::arch::asm!("add {r:e}, {m:e}", "pushfq", "pop {f}", r = inout(reg) r, m = in(reg) mem, f = out(reg) flags)
            }
            Alu::Or => {
                std::arch::asm!("or {r:e}, {m:e}", "pushfq", "pop {f}", r = inout(reg) r, m = in(reg) mem, f = out(reg) flags)
            }
            Alu::And => {
                std::arch::asm!("and {r:e}, {m:e}", "pushfq", "pop {f}", r = inout(reg) r, m = in(reg) mem, f = out(reg) flags)
            }
            Alu::Sub => {
                std::arch::asm!("sub {r:e}, {m:e}", "pushfq", "pop {f}", r = inout(reg) r, m = in(reg) mem, f = out(reg) flags)
            }
            Alu::Xor => {
                std::arch::asm!("xor {r:e}, {m:e}", "pushfq", "pop {f}", r = inout(reg) r, m = in(reg) mem, f = out(reg) flags)
            }
            Alu::Cmp => {
                std::arch::asm!("cmp {r:e}, {m:e}", "pushfq", "pop {f}", r = inout(reg) r, m = in(reg) mem, f = out(reg) flags)
            }
            Alu::Test => {
                std::arch::asm!("test {m:e}, {r:e}", "pushfq", "pop {f}", r = inout(reg) r, m = in(reg) mem, f = out(reg) flags)
            }
        }
    }
    (r, flags)
}

/// Decodes the instruction at the start of `code` (at most 15 bytes, x86-64 mode): the 32-bit
/// `mov` forms with a memory operand. Returns the operation and the instruction's length.
pub fn decode_mmio(code: &[u8]) -> Option<(MmioOp, usize)> {
    let mut i = 0;
    let mut rex = 0u8;
    let b = *code.first()?;
    if (0x40..=0x4f).contains(&b) {
        rex = b;
        i += 1;
    }
    if rex & 0x08 != 0 {
        return None; // REX.W: a 64-bit access
    }
    let op = *code.get(i)?;
    i += 1;
    let modrm = *code.get(i)?;
    i += 1;
    let md = modrm >> 6;
    let reg = ((modrm >> 3) & 7) | if rex & 0x04 != 0 { 8 } else { 0 };
    let rm = modrm & 7;
    if md == 3 {
        return None; // a register operand: not a memory access
    }
    if rm == 4 {
        let sib = *code.get(i)?;
        i += 1;
        if md == 0 && sib & 7 == 5 {
            i += 4; // no base: disp32
        }
    } else if md == 0 && rm == 5 {
        i += 4; // RIP-relative disp32
    }
    i += match md {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    let op = match op {
        0x8b => MmioOp::Load(reg),
        0x89 => MmioOp::Store(reg),
        0x03 => MmioOp::Alu(Alu::Add, reg),
        0x0b => MmioOp::Alu(Alu::Or, reg),
        0x23 => MmioOp::Alu(Alu::And, reg),
        0x2b => MmioOp::Alu(Alu::Sub, reg),
        0x33 => MmioOp::Alu(Alu::Xor, reg),
        0x3b => MmioOp::Alu(Alu::Cmp, reg),
        0x85 => MmioOp::Alu(Alu::Test, reg),
        0xc7 if reg & 7 == 0 => {
            let imm = code.get(i..i + 4)?;
            i += 4;
            MmioOp::StoreImm(u32::from_le_bytes([imm[0], imm[1], imm[2], imm[3]]))
        }
        _ => return None,
    };
    (i <= code.len()).then_some((op, i))
}

/// The `ucontext_t` general register index of x86 register number `r` (0 = rax ... 15 = r15).
fn greg(r: u8) -> usize {
    (match r {
        0 => libc::REG_RAX,
        1 => libc::REG_RCX,
        2 => libc::REG_RDX,
        3 => libc::REG_RBX,
        4 => libc::REG_RSP,
        5 => libc::REG_RBP,
        6 => libc::REG_RSI,
        7 => libc::REG_RDI,
        8 => libc::REG_R8,
        9 => libc::REG_R9,
        10 => libc::REG_R10,
        11 => libc::REG_R11,
        12 => libc::REG_R12,
        13 => libc::REG_R13,
        14 => libc::REG_R14,
        _ => libc::REG_R15,
    }) as usize
}

/// Emulates an access to a `--hca` BAR; false if `addr` is not in one.
fn mmio_fault(addr: u64, uctx: *mut libc::c_void) -> bool {
    let Some((bar, off)) = crate::kernel::pci::bar_of(addr) else {
        return false;
    };
    let uc = uctx as *mut libc::ucontext_t;
    // SAFETY: the kernel passes a valid ucontext_t; RIP points at the faulting instruction,
    // which is in mapped, readable code (it was just fetched).
    let (rip, code) = unsafe {
        let rip = (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as u64;
        (rip, std::slice::from_raw_parts(rip as *const u8, 15))
    };
    let Some((op, len)) = decode_mmio(code).filter(|_| off % 4 == 0) else {
        let mut m = Buf { b: [0; 512], n: 0 };
        let _ = write!(m, "kldrun: unsupported MMIO instruction at ");
        let _ = symbolize(rip, &mut m);
        let _ = write!(m, " (BAR{bar}+{off:#x}; bytes");
        for b in &code[..8] {
            let _ = write!(m, " {b:02x}");
        }
        let _ = m.write_str(
            "): only 32-bit mov loads and stores and ALU loads (add/or/and/sub/xor/cmp/test) are \
             emulated\n",
        );
        // SAFETY: write(2) and _exit(2); the buffer is valid for `n` bytes.
        unsafe {
            libc::write(2, m.b.as_ptr().cast(), m.n);
            libc::_exit(crate::EXIT_CRASH);
        }
    };
    // SAFETY: the signal's ucontext_t, written back when the handler returns.
    unsafe {
        let g = &mut (*uc).uc_mcontext.gregs;
        match op {
            MmioOp::Load(r) => {
                let v = crate::kernel::pci::mmio(bar, off, None);
                g[greg(r)] = i64::from(v); // a 32-bit mov zero-extends
            }
            MmioOp::Store(r) => {
                crate::kernel::pci::mmio(bar, off, Some(g[greg(r)] as u32));
            }
            MmioOp::StoreImm(v) => {
                crate::kernel::pci::mmio(bar, off, Some(v));
            }
            MmioOp::Alu(kind, r) => {
                let v = crate::kernel::pci::mmio(bar, off, None);
                let (res, flags) = alu(kind, g[greg(r)] as u32, v);
                if !matches!(kind, Alu::Cmp | Alu::Test) {
                    g[greg(r)] = i64::from(res); // 32-bit results zero-extend
                }
                let efl = libc::REG_EFL as usize;
                g[efl] = ((g[efl] as u64 & !STATUS_FLAGS) | (flags & STATUS_FLAGS)) as i64;
            }
        }
        g[libc::REG_RIP as usize] = (rip + len as u64) as i64;
    }
    true
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let fault_addr = unsafe { (*info).si_addr() as u64 };
    if sig == libc::SIGSEGV && mmio_fault(fault_addr, uctx) {
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mov_forms_decode_with_their_lengths() {
        // mov (%rax), %eax
        assert_eq!(decode_mmio(&[0x8b, 0x00, 0x90]), Some((MmioOp::Load(0), 2)));
        // mov 0x680(%rcx,%rdx,1), %r9d  (REX.R, SIB, disp32)
        assert_eq!(
            decode_mmio(&[0x44, 0x8b, 0x8c, 0x11, 0x80, 0x06, 0x00, 0x00]),
            Some((MmioOp::Load(9), 8))
        );
        // mov %esi, 0x14(%rdi)  (disp8)
        assert_eq!(
            decode_mmio(&[0x89, 0x77, 0x14]),
            Some((MmioOp::Store(6), 3))
        );
        // mov %r12d, (%r13)  (REX.RB, mod 1 disp8 0 because r13 needs one)
        assert_eq!(
            decode_mmio(&[0x45, 0x89, 0x65, 0x00]),
            Some((MmioOp::Store(12), 4))
        );
        // movl $0x12345678, 0x10(%rax)
        assert_eq!(
            decode_mmio(&[0xc7, 0x40, 0x10, 0x78, 0x56, 0x34, 0x12]),
            Some((MmioOp::StoreImm(0x1234_5678), 7))
        );
        // 64-bit mov, a register operand, a byte load, movzwl: refused
        // and eax, [rcx+0x80690] (what hermon's MGID_HASH compiled to).
        assert_eq!(
            decode_mmio(&[0x23, 0x81, 0x90, 0x06, 0x08, 0x00]),
            Some((MmioOp::Alu(Alu::And, 0), 6))
        );
        assert_eq!(
            decode_mmio(&[0x41, 0x85, 0x47, 0x08]),
            Some((MmioOp::Alu(Alu::Test, 0), 4))
        );
        assert_eq!(alu(Alu::And, 0xf0, 0x0f).0, 0);
        assert_ne!(alu(Alu::And, 0xf0, 0x0f).1 & 0x40, 0, "ZF");
        assert_eq!(alu(Alu::Sub, 1, 2).0, u32::MAX);
        assert_ne!(alu(Alu::Cmp, 1, 2).1 & 0x1, 0, "CF");
        assert_eq!(alu(Alu::Cmp, 1, 2).0, 1);
        assert_eq!(decode_mmio(&[0x48, 0x8b, 0x00]), None);
        assert_eq!(decode_mmio(&[0x8b, 0xc0]), None);
        assert_eq!(decode_mmio(&[0x8a, 0x00]), None);
        assert_eq!(decode_mmio(&[0x0f, 0xb7, 0x00]), None);
        // truncated
        assert_eq!(decode_mmio(&[0xc7, 0x00, 0x01]), None);
    }
}
