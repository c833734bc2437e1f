//! The arguments of an import call, read the way the callee would under the SysV x86-64 ABI.
//!
//! The module passes integers and pointers only (it is built soft-float; FreeBSD's kernel has
//! no floating point in its KPIs), so every argument is one 8-byte INTEGER-class slot: the
//! first six in `%rdi, %rsi, %rdx, %rcx, %r8, %r9`, the rest on the caller's stack. That is
//! also exactly how `va_arg` walks a variadic call, so one reader serves `printf(fmt, ...)` and
//! `sysctl_add_oid`'s eleven fixed arguments alike. A `va_list` the module passes on
//! (`vprintf(fmt, ap)`) is read through its `__va_list_tag`.

/// A source of successive integer arguments.
pub trait ArgSource {
    /// The next argument slot, as the raw 64 bits (an `int` argument's upper half is
    /// undefined: read it with [`ArgSource::int`]).
    fn next_u64(&mut self) -> u64;

    /// The next argument as an `int`.
    fn int(&mut self) -> i32 {
        self.next_u64() as i32
    }

    /// The next argument as an `unsigned int`.
    fn uint(&mut self) -> u32 {
        self.next_u64() as u32
    }

    /// The next argument as a pointer or `size_t`/`long`.
    fn ptr(&mut self) -> u64 {
        self.next_u64()
    }
}

/// The arguments of a call that came through the import trampoline.
#[derive(Debug)]
pub struct FrameArgs {
    frame: *const u64,
    next: usize,
}

impl FrameArgs {
    /// Over the frame `kldrun_import` built: six saved registers, the saved `%rbp`, the return
    /// address, then the caller's stack arguments.
    ///
    /// # Safety
    /// `frame` must be such a frame, alive for as long as this reader is used; reading past
    /// the arguments the caller passed reads the caller's stack (as `va_arg` would).
    pub unsafe fn new(frame: *const u64) -> Self {
        Self { frame, next: 0 }
    }

    /// The return address into the module.
    pub fn return_address(&self) -> u64 {
        // SAFETY: slot 7 of the frame is the return address (see `new`).
        unsafe { self.frame.add(7).read() }
    }

    /// The module's frame pointer at the call.
    pub fn frame_pointer(&self) -> u64 {
        // SAFETY: slot 6 of the frame is the caller's %rbp (see `new`).
        unsafe { self.frame.add(6).read() }
    }
}

impl ArgSource for FrameArgs {
    fn next_u64(&mut self) -> u64 {
        // Registers at slots 0..6; the return address and saved %rbp at 6..8; stack
        // arguments from slot 8 on.
        let slot = if self.next < 6 {
            self.next
        } else {
            self.next + 2
        };
        self.next += 1;
        // SAFETY: see `new`: the slot is inside the frame or the caller's stack above it.
        unsafe { self.frame.add(slot).read_unaligned() }
    }
}

/// A `va_list` handed over by the module (amd64: a pointer to `struct __va_list_tag { u_int
/// gp_offset; u_int fp_offset; void *overflow_arg_area; void *reg_save_area; }`). Reading
/// advances it, as `va_arg` in the callee does to the caller's `va_list`.
#[derive(Debug)]
pub struct VaListArgs {
    tag: *mut u8,
}

impl VaListArgs {
    /// # Safety
    /// `tag` must point to a live, initialised `__va_list_tag` whose areas hold the arguments.
    pub unsafe fn new(tag: u64) -> Self {
        Self {
            tag: tag as *mut u8,
        }
    }
}

impl ArgSource for VaListArgs {
    fn next_u64(&mut self) -> u64 {
        // SAFETY: `tag` is a valid __va_list_tag (see `new`); gp_offset < 48 selects the next
        // register in the save area, else the overflow area holds the next stack slot.
        unsafe {
            let gp = self.tag.cast::<u32>().read();
            if gp < 48 {
                let area = self.tag.add(16).cast::<u64>().read() as *const u8;
                self.tag.cast::<u32>().write(gp + 8);
                area.add(gp as usize).cast::<u64>().read_unaligned()
            } else {
                let area = self.tag.add(8).cast::<u64>().read() as *const u64;
                self.tag.add(8).cast::<u64>().write(area.add(1) as u64);
                area.read_unaligned()
            }
        }
    }
}

/// Arguments from a slice (tests, and calls kldrun makes itself); zero past the end.
#[derive(Debug)]
pub struct SliceArgs<'a> {
    args: &'a [u64],
    next: usize,
}

impl<'a> SliceArgs<'a> {
    /// Over `args`.
    pub fn new(args: &'a [u64]) -> Self {
        Self { args, next: 0 }
    }
}

impl ArgSource for SliceArgs<'_> {
    fn next_u64(&mut self) -> u64 {
        let v = self.args.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_skips_the_saved_rbp_and_return_address() {
        let frame: [u64; 11] = [1, 2, 3, 4, 5, 6, 0xbbbb, 0xaaaa, 7, 8, 9];
        // SAFETY: a frame-shaped array that outlives the reader.
        let mut a = unsafe { FrameArgs::new(frame.as_ptr()) };
        let got: Vec<u64> = (0..9).map(|_| a.next_u64()).collect();
        assert_eq!(got, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(a.return_address(), 0xaaaa);
        assert_eq!(a.frame_pointer(), 0xbbbb);
    }

    #[test]
    fn va_list_walks_registers_then_overflow() {
        let regs: [u64; 6] = [10, 11, 12, 13, 14, 15];
        let stack: [u64; 2] = [16, 17];
        let mut tag = [0u8; 24];
        tag[..4].copy_from_slice(&32u32.to_le_bytes()); // two registers already consumed
        tag[8..16].copy_from_slice(&(stack.as_ptr() as u64).to_le_bytes());
        tag[16..24].copy_from_slice(&(regs.as_ptr() as u64).to_le_bytes());
        // SAFETY: a well-formed __va_list_tag over live arrays.
        let mut a = unsafe { VaListArgs::new(tag.as_mut_ptr() as u64) };
        let got: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        assert_eq!(got, [14, 15, 16, 17]);
        assert_eq!(u32::from_le_bytes(tag[..4].try_into().unwrap()), 48);
    }

    #[test]
    fn int_reads_the_low_half() {
        let v = [0xffff_ffff_8000_0001u64];
        let mut a = SliceArgs::new(&v);
        assert_eq!(a.int(), -2147483647);
    }
}
