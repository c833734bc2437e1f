//! Kernel stacks, and the two switches between them and the host's stack.
//!
//! FreeBSD/amd64 gives every kernel thread `KSTACK_PAGES` = 4 pages (16 KiB) of stack with an
//! unmapped guard page below (`sys/amd64/include/param.h`, `vm_thread_new()` in
//! `sys/vm/vm_glue.c`). The module's code runs here on stacks of that size and nothing else:
//!
//! - A stack lives at the top of a [`REGION`]-sized, [`REGION`]-aligned reservation. The
//!   lowest page holds a small control block ([`Ctl`]); everything between it and the stack is
//!   `PROT_NONE`, so an overflow faults at once (the fault handler in [`crate::fault`] names
//!   the thread) instead of corrupting memory.
//! - Host → module: [`KStack::call`] switches to the kernel stack and calls a module function
//!   with up to six integer arguments (`kldrun_enter`, assembly below).
//! - Module → host: every import is a stub (`crate::linker`) that jumps to `kldrun_import`,
//!   which saves the six argument registers on the kernel stack (that block is the import's
//!   argument frame: registers, then the caller's stack arguments above the return address),
//!   finds the control block by rounding the stack pointer down to the region, switches to the
//!   host stack and calls [`crate::kernel::dispatch`]. So no host code (Rust's formatting,
//!   the dynamic linker's lazy binding, ...) ever runs on a kernel stack: the high-water mark
//!   is the module's own use plus a 64-byte frame per import call, which stands in for the
//!   frame of the kernel function it calls.
//!
//! Calls nest in both directions (a sysctl handler in the module called from the host calls
//! `sysctl_handle_string`, which the host serves): the control block keeps the host stack
//! pointer of the innermost host → module switch and the module stack pointer of the innermost
//! module → host switch, each saved and restored around the nested call.
//!
//! The stack is filled with [`FILL`] when it is made; the high-water mark is the distance from
//! the top to the lowest byte that no longer holds it.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Size and alignment of the reservation holding one kernel stack (its control block, guard and
/// stack). The import trampoline finds the control block with `rsp & !(REGION - 1)`.
pub const REGION: usize = 0x4_0000;
/// Bytes of one page.
pub const PAGE: usize = 4096;
/// amd64 `KSTACK_PAGES` (4) in bytes.
pub const KSTACK_SIZE: usize = 4 * PAGE;
/// The byte a fresh stack is filled with.
pub const FILL: u8 = 0xa5;

/// The control block at the bottom of a stack region. Its layout is used by the assembly.
#[repr(C)]
#[derive(Debug)]
pub struct Ctl {
    /// Host stack pointer saved by the innermost host → module switch (offset 0).
    pub host_sp: u64,
    /// Module stack pointer of the innermost module → host switch, or the stack top (offset 8).
    pub module_sp: u64,
    /// Index of the thread in [`THREADS`] (offset 16).
    pub thread: u64,
}

/// What the fault handler needs to know about each stack: where its guard is and whose it is.
/// Written once per stack, read from the signal handler (lock-free).
#[derive(Debug)]
pub struct StackSlot {
    /// Lowest guard address (0: slot unused).
    pub guard_lo: AtomicU64,
    /// One past the highest guard address (the stack's lowest byte).
    pub guard_hi: AtomicU64,
    /// Top of the stack.
    pub top: AtomicU64,
    /// Pointer to the thread's name (a leaked `&'static str`).
    pub name_ptr: AtomicU64,
    /// Length of the name.
    pub name_len: AtomicU64,
}

/// Most kernel threads one run can create.
pub const MAX_THREADS: usize = 64;

/// Every kernel stack made so far.
pub static THREADS: [StackSlot; MAX_THREADS] = [const {
    StackSlot {
        guard_lo: AtomicU64::new(0),
        guard_hi: AtomicU64::new(0),
        top: AtomicU64::new(0),
        name_ptr: AtomicU64::new(0),
        name_len: AtomicU64::new(0),
    }
}; MAX_THREADS];
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

/// The name of kernel thread `i` (for reports).
pub fn thread_name(i: usize) -> &'static str {
    let Some(slot) = THREADS.get(i) else {
        return "?";
    };
    let p = slot.name_ptr.load(Ordering::Acquire);
    let n = slot.name_len.load(Ordering::Acquire);
    if p == 0 {
        return "?";
    }
    // SAFETY: name_ptr/name_len were stored together from a leaked &'static str (see
    // `KStack::new`) before the slot was published, and are never changed afterwards.
    unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(p as *const u8, n as usize)) }
}

/// One kernel thread's stack.
#[derive(Debug)]
pub struct KStack {
    base: *mut u8,
    size: usize,
    index: usize,
}

// SAFETY: the stack is plain memory owned by this value; the raw pointer is only an address.
unsafe impl Send for KStack {}
// SAFETY: shared use is reading the high-water mark (plain reads of the stack bytes) and
// `call`, whose callers serialise the calls on one stack (one kernel thread runs on it).
unsafe impl Sync for KStack {}

impl KStack {
    /// Reserves a region and makes a `size`-byte stack (a multiple of the page size, at most
    /// `REGION - 2 pages`) named `name` at its top.
    pub fn new(name: &str, size: usize) -> std::io::Result<Self> {
        assert!(size % PAGE == 0 && size > 0 && size <= REGION - 2 * PAGE);
        let index = NEXT_THREAD.fetch_add(1, Ordering::AcqRel);
        if index >= MAX_THREADS {
            return Err(std::io::Error::other("too many kernel threads"));
        }
        // Over-reserve to align the region on its size, then give back the excess.
        // SAFETY: a fresh anonymous PROT_NONE reservation; no existing mapping is touched.
        let raw = unsafe {
            libc::mmap(
                ptr::null_mut(),
                2 * REGION,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let start = raw as usize;
        let base = (start + REGION - 1) & !(REGION - 1);
        let head = base - start;
        let tail = 2 * REGION - head - REGION;
        // SAFETY: both ranges lie inside the reservation made above and outside [base,
        // base + REGION), which is kept.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((base + REGION) as *mut c_void, tail);
            }
        }
        let stack_lo = base + REGION - size;
        // SAFETY: the control page and the stack are inside the kept region; the pages in
        // between stay PROT_NONE (the guard).
        let rc = unsafe {
            libc::mprotect(
                base as *mut c_void,
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
            ) | libc::mprotect(
                stack_lo as *mut c_void,
                size,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the stack pages were just made writable and nothing else uses them yet.
        unsafe { ptr::write_bytes(stack_lo as *mut u8, FILL, size) };
        let ctl = base as *mut Ctl;
        // SAFETY: the control page is writable, page-aligned (so aligned for Ctl) and unused.
        unsafe {
            ctl.write(Ctl {
                host_sp: 0,
                module_sp: (base + REGION) as u64,
                thread: index as u64,
            })
        };
        let name: &'static str = Box::leak(name.to_string().into_boxed_str());
        let slot = &THREADS[index];
        slot.name_ptr.store(name.as_ptr() as u64, Ordering::Release);
        slot.name_len.store(name.len() as u64, Ordering::Release);
        slot.top.store((base + REGION) as u64, Ordering::Release);
        slot.guard_hi.store(stack_lo as u64, Ordering::Release);
        slot.guard_lo.store((base + PAGE) as u64, Ordering::Release);
        Ok(Self {
            base: base as *mut u8,
            size,
            index,
        })
    }

    /// The thread's index in [`THREADS`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// The thread's name.
    pub fn name(&self) -> &'static str {
        thread_name(self.index)
    }

    /// Stack size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes of stack ever used: from the top down to the lowest byte that lost [`FILL`].
    pub fn high_water(&self) -> usize {
        let lo = self.base as usize + REGION - self.size;
        // SAFETY: [lo, lo + size) is this stack, mapped read/write for the life of `self`; no
        // module code runs on it while the host holds `&self` outside a call.
        let stack = unsafe { std::slice::from_raw_parts(lo as *const u8, self.size) };
        match stack.iter().position(|&b| b != FILL) {
            Some(i) => self.size - i,
            None => 0,
        }
    }

    /// Calls the module function at `f` with `args` (the rest zero) on this stack and returns
    /// what it returns in `%rax`.
    ///
    /// # Safety
    /// `f` must be the address of code following the SysV x86-64 calling convention that takes
    /// at most six integer arguments (module code or an import stub), and the arguments must
    /// be what that function expects.
    pub unsafe fn call(&self, f: u64, args: &[u64]) -> u64 {
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        // SAFETY: the control block is initialised and owned by this stack; the caller
        // vouches for `f` and its arguments; kldrun_enter restores every callee-saved register
        // and the host stack before it returns.
        unsafe { kldrun_enter(self.base as *mut Ctl, f, a.as_ptr()) }
    }
}

impl Drop for KStack {
    fn drop(&mut self) {
        let slot = &THREADS[self.index];
        slot.guard_lo.store(0, Ordering::Release);
        // SAFETY: the region is this value's own mapping and no code runs on it any more.
        unsafe { libc::munmap(self.base as *mut c_void, REGION) };
    }
}

/// Leaves kernel thread `index`'s module code for good: back to the host caller of its
/// outermost [`KStack::call`], which returns 0 (a longjmp: the host frames in between, the
/// import dispatch's, are dropped without running destructors; they hold none).
///
/// # Safety
/// Only from an import served for thread `index` whose stack has exactly one host → module
/// call in progress (a kernel thread's function calling `kthread_exit`).
pub unsafe fn leave(index: usize) -> ! {
    let top = THREADS[index].top.load(Ordering::Acquire);
    let ctl = (top as usize - REGION) as *mut Ctl;
    // SAFETY: forwarded contract: Ctl.host_sp is the frame kldrun_enter saved for that call.
    unsafe { kldrun_leave(ctl) }
}

extern "C" {
    /// Unwinds to the innermost kldrun_enter of `ctl` (see [`leave`]).
    fn kldrun_leave(ctl: *mut Ctl) -> !;
    /// Host → module: see the module documentation.
    fn kldrun_enter(ctl: *mut Ctl, f: u64, args: *const u64) -> u64;
    /// Module → host: the target of every import stub (`%r11` holds the import's index).
    pub fn kldrun_import();
}

/// The address every import stub jumps to.
pub fn import_entry() -> u64 {
    kldrun_import as *const () as usize as u64
}

// kldrun_enter(ctl = %rdi, f = %rsi, args = %rdx):
//   saves the callee-saved registers and the previous Ctl.host_sp on the host stack, records
//   the host stack pointer in Ctl.host_sp, switches to Ctl.module_sp (16-aligned), loads the
//   six argument registers from args[], calls f, and undoes it all.
// kldrun_import (from a stub, %r11 = import index):
//   builds the argument frame on the kernel stack (push %rbp; push %r9 ... %rdi), records it in
//   Ctl.module_sp (the previous value saved on the host stack), switches to Ctl.host_sp and
//   calls kldrun_dispatch(frame, index, ctl); then returns to the module with %rax intact.
std::arch::global_asm!(
    ".text",
    ".globl kldrun_enter",
    ".type kldrun_enter,@function",
    "kldrun_enter:",
    "    push %rbp",
    "    mov %rsp, %rbp",
    "    push %rbx",
    "    push %r12",
    "    push %r13",
    "    push %r14",
    "    push %r15",
    "    mov %rdi, %rbx",
    "    push 0(%rbx)",
    "    mov %rsp, 0(%rbx)",
    "    mov 8(%rbx), %rax",
    "    and $-16, %rax",
    "    mov %rax, %rsp",
    "    mov %rsi, %r11",
    "    mov 0(%rdx), %rdi",
    "    mov 8(%rdx), %rsi",
    "    mov 24(%rdx), %rcx",
    "    mov 32(%rdx), %r8",
    "    mov 40(%rdx), %r9",
    "    mov 16(%rdx), %rdx",
    "    xor %eax, %eax",
    "    call *%r11",
    "    mov 0(%rbx), %rsp",
    "    pop 0(%rbx)",
    "    pop %r15",
    "    pop %r14",
    "    pop %r13",
    "    pop %r12",
    "    pop %rbx",
    "    pop %rbp",
    "    ret",
    ".size kldrun_enter, . - kldrun_enter",
    "",
    ".globl kldrun_leave",
    ".type kldrun_leave,@function",
    "kldrun_leave:",
    "    mov %rdi, %rbx",
    "    mov 0(%rbx), %rsp",
    "    pop 0(%rbx)",
    "    pop %r15",
    "    pop %r14",
    "    pop %r13",
    "    pop %r12",
    "    pop %rbx",
    "    pop %rbp",
    "    xor %eax, %eax",
    "    ret",
    ".size kldrun_leave, . - kldrun_leave",
    "",
    ".globl kldrun_import",
    ".type kldrun_import,@function",
    "kldrun_import:",
    "    push %rbp",
    "    mov %rsp, %rbp",
    "    push %r9",
    "    push %r8",
    "    push %rcx",
    "    push %rdx",
    "    push %rsi",
    "    push %rdi",
    "    mov %rsp, %rdi",
    "    mov %r11, %rsi",
    "    mov %rsp, %rdx",
    "    and ${mask}, %rdx",
    "    mov 8(%rdx), %rax",
    "    mov %rsp, 8(%rdx)",
    "    mov 0(%rdx), %rsp",
    "    push %rax",
    "    push %rdx",
    "    call {dispatch}",
    "    pop %rdx",
    "    pop %rcx",
    "    mov 8(%rdx), %rsp",
    "    mov %rcx, 8(%rdx)",
    "    add $48, %rsp",
    "    pop %rbp",
    "    ret",
    ".size kldrun_import, . - kldrun_import",
    mask = const -(REGION as i64),
    dispatch = sym crate::kernel::kldrun_dispatch,
    options(att_syntax)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_is_aligned_filled_and_guarded() {
        let s = KStack::new("test", KSTACK_SIZE).unwrap();
        assert_eq!(s.base as usize % REGION, 0);
        assert_eq!(s.high_water(), 0);
        let slot = &THREADS[s.index()];
        assert_eq!(
            slot.guard_hi.load(Ordering::Acquire) as usize,
            s.base as usize + REGION - KSTACK_SIZE
        );
        assert_eq!(s.name(), "test");
    }
}
