//! The boot ROM's flow: bring the HCA up, take port 1 or else port 2, IPoIB, DHCP over
//! InfiniBand, the `iscsi:` root path, an iSCSI login, the boot blocks, and an iBFT left for the
//! OS — the role Mellanox's "Boot over IB" and iPXE play.
//!
//! Portable (`no_std` + `alloc`, no unsafe code), so the simulator, the UEFI image
//! (`loader/efi/`) and any later firmware run the same code:
//!
//! - [`flow`]: probe → the ports in order with bounded waits → DHCP → the root path → the
//!   iSCSI login → the boot disk → the iBFT; typed [`flow::BootError`]s, one console line each;
//! - [`config`]: the settings, and the `isboot.cfg` file they come from (iPXE's setting names);
//! - [`net`]: the firmware's clock ([`net::Env`]), a boot [`net::Link`], smoltcp over it, and
//!   the initiator's transport and clock on that;
//! - [`ipoib_link`]: the InfiniBand link over any HCA driver's verbs (IPoIB, DHCP over IB);
//! - [`eth`]: the Ethernet link over a firmware NIC that moves frames;
//! - [`handoff`]: what the ROM writes into the iBFT from what it learned (the port, the lease,
//!   the root path, the credentials), so that the kernel module finds the same interface and
//!   target;
//! - `sim` (feature `std`): the flow wired to the simulated fabric (`hca-sim`, and `net-sim`
//!   for the gateway to a real DHCP server and a real iSCSI target).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod config;
pub mod eth;
pub mod flow;
pub mod handoff;
pub mod ipoib_link;
pub mod net;
#[cfg(feature = "std")]
pub mod sim;
#[cfg(feature = "std")]
#[path = "host/storm.rs"]
pub mod storm;
#[cfg(feature = "std")]
#[path = "host/timeline.rs"]
pub mod timeline;

/// The order ports are tried in by default (the BoIB manual: port 1, then port 2).
pub const PORT_ORDER: [u8; 2] = [1, 2];
