//! `isboot.ko`'s Rust half: links `isboot::freebsd` (whose `isboot_modevent` the C shim
//! calls) with the kernel global allocator and a panic handler.
//!
//! Nothing in the module is meant to panic (every failure is an errno and a message); the
//! handler exists because `core` requires one, and it turns a bug into a kernel panic with the
//! Rust message rather than undefined behaviour.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use core::fmt::Write;
use kernel_bindings::alloc::KernelAllocator;
use kernel_bindings::console::LineBuf;

pub use isboot::freebsd::isboot_modevent;

#[global_allocator]
static ALLOCATOR: KernelAllocator = KernelAllocator;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut line = LineBuf::<256>::new();
    let _ = write!(line, "isboot: Rust panic: {info}");
    // SAFETY: a constant one-%s format and a NUL-terminated buffer; panic(9) does not return.
    unsafe { kernel_bindings::ffi::panic(c"%s".as_ptr(), line.as_ptr()) }
}
