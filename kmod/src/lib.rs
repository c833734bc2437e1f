//! The `isboot.ko` kernel module: its boot flow behind a [`Platform`] trait.
//!
//! This stage does the iBFT half of what isboot does (issue 7): on `MOD_LOAD` the module reads
//! its tunables ([`tunables`]), finds the iBFT — a table file preloaded by loader(8) as type
//! `ibft_table`, else ACPI, else the BIOS low-memory scan — validates it with the [`ibft`]
//! crate, publishes `net.isboot.*` and the read-only `hw.ibft.*` tree ([`tree`]) and prints one
//! boot line saying what it found or why it found nothing ([`flow`]). CHAP secrets are never
//! published or printed.
//!
//! Two platforms implement the trait: [`host::HostPlatform`] (tests; tables served from bytes
//! and synthetic memory images) and, with the `freebsd` feature, `freebsd::FreeBsd` over the
//! `kernel-bindings` crate, entered from the C shim through `isboot_modevent`.
//!
//! The module's own IPoIB link is [`native::NativeLink`]: the HCA the boot ROM used, through
//! the `hca` verbs and `ipoib`'s interface, behind the [`iblink::IbLink`] seam its ifnet uses
//! (bring-up in the boot ROM's port order, runtime failover to the other port).
//!
//! The crate is `no_std` + `alloc` and never panics on table bytes.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod boot;
pub mod cam;
pub mod flow;
pub mod host;
#[cfg(feature = "std")]
pub mod host_boot;
pub mod iblink;
pub mod iblink_loop;
pub mod native;
pub mod netlink;
pub mod platform;
pub mod rtmsg;
pub mod tree;
pub mod tunables;

#[cfg(feature = "freebsd")]
pub mod freebsd;
#[cfg(feature = "freebsd")]
pub mod freebsd_boot;
#[cfg(feature = "freebsd")]
pub mod freebsd_hca;
#[cfg(feature = "freebsd")]
pub mod freebsd_ifnet;

pub use flow::{load, unload, Found, LoadError, Report, TableSource};
pub use platform::{Platform, PublishError};
pub use tree::{Oid, SysctlTree, Value};
pub use tunables::Tunables;

/// The module version published as `net.isboot.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The loader(8) file type of a preloaded iBFT (`ibft_type="ibft_table"` in loader.conf).
pub const PRELOAD_TYPE: &core::ffi::CStr = c"ibft_table";
