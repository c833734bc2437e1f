//! Hand-written bindings to the FreeBSD 14 (amd64) kernel KPIs `isboot.ko` uses.
//!
//! - [`abi`]: the numbers (flags, enum values, errno) and the few struct layouts Rust mirrors,
//!   each pinned by a `const_assert_eq!` here *and* by the same number as a `_Static_assert` in
//!   the C shim (`kmod/shim/isboot_abi.h`), compiled against FreeBSD's own headers. A host test
//!   checks that both sides carry the same numbers.
//! - [`ffi`]: the raw `extern "C"` declarations, each with its C prototype quoted.
//! - Safe wrappers: [`alloc::KernelAllocator`] (a `GlobalAlloc` over malloc(9) with the module's
//!   own `M_ISBOOT` type), [`console`] (printf(9) lines and a `log` logger honouring
//!   `net.isboot.debug`), [`sync::Mutex`] (mutex(9)), [`sysctl::SysctlContext`] (dynamic
//!   sysctl(9) oids), [`tunable`] (kenv fetches), [`preload`] (files preloaded by loader(8)),
//!   [`phys`] (pmap_mapbios(9) windows onto firmware memory for the iBFT locator).
//!
//! The declarations are only *linked* in the kld build (`kmod/scripts/build-kld.sh`); on the
//! host this crate compiles and its layout tests run, but nothing here may be called.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

extern crate alloc as alloc_crate;

pub mod abi;
pub mod alloc;
pub mod console;
pub mod ffi;
pub mod phys;
pub mod preload;
pub mod sync;
pub mod sysctl;
pub mod tunable;
