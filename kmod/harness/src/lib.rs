//! `kldrun`: runs the real `isboot.ko` — a FreeBSD 14 amd64 kernel module — inside a Linux
//! process, against emulated kernel functions, so that the module's FreeBSD half (the C shim,
//! the linker sets, the bindings, the machine code as built) is executed in CI and not only
//! inspected.
//!
//! - [`elf`] and [`linker`]: the kernel linker's part (`sys/kern/link_elf_obj.c`): sections
//!   placed in the low 2 GiB, relocations applied, imports bound to stubs, linker sets found,
//!   module metadata and dependencies checked.
//! - [`kstack`]: 16 KiB kernel stacks with guard regions, the switch onto them and the import
//!   trampoline back to the host stack; [`fault`]: stack overflows and page faults reported.
//! - [`kernel`]: the emulated KPIs (console, malloc, kenv, mutex, sysctl, preloaded files,
//!   physical memory, modules) and the run: kldload (SYSINITs, `MOD_LOAD`), sysctl(8),
//!   kldunload (`MOD_SHUTDOWN`, `MOD_QUIESCE`, `MOD_UNLOAD`, SYSUNINITs) and the leak check.
//! - [`cli`]: the command line.
//!
//! Linux x86-64 only: it executes amd64 machine code in its own address space.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod cli;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod elf;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod fault;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod kernel;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod kstack;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod linker;

/// Exit status: the module loaded, ran and unloaded, leaving nothing behind.
pub const EXIT_OK: i32 = 0;
/// Exit status: the module refused to load or unload, or a sysctl could not be read.
pub const EXIT_MODULE: i32 = 1;
/// Exit status: a usage error (one line on stderr).
pub const EXIT_USAGE: i32 = 2;
/// Exit status: the kernel linker refused the file (format, undefined symbol, relocation,
/// dependency).
pub const EXIT_LINK: i32 = 3;
/// Exit status: the module left something behind (memory, oids, mappings, kenv strings).
pub const EXIT_LEAK: i32 = 4;
/// Exit status: the kernel would have died (panic, page fault, stack overflow, timeout,
/// memory corruption).
pub const EXIT_CRASH: i32 = 5;
