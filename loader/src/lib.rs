//! The boot ROM's flow: bring the HCA up, take port 1 or else port 2, IPoIB, DHCP over
//! InfiniBand, the `iscsi:` root path, an iSCSI login, the boot blocks, and an iBFT left for the
//! OS — the role Mellanox's "Boot over IB" and iPXE play.
//!
//! - [`handoff`] (portable, `no_std`): what the ROM writes into the iBFT from what it learned
//!   (the port, the lease, the root path, the credentials), so that the kernel module finds
//!   the same interface and target;
//! - `sim` (feature `std`): the flow run on the simulated fabric (`hca-sim`, and `net-sim` for
//!   the gateway to a real DHCP server and a real iSCSI target, and smoltcp TCP as the
//!   initiator's transport).
//!
//! The firmware image itself (the same flow over a real HCA and firmware memory) comes later.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod handoff;
#[cfg(feature = "std")]
pub mod sim;

/// The order ports are tried in (the BoIB manual: port 1, then port 2).
pub const PORT_ORDER: [u8; 2] = [1, 2];
