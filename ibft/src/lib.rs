//! The iSCSI Boot Firmware Table (iBFT 1.03): where a boot ROM tells the OS which NIC it used
//! and which iSCSI target it booted from.
//!
//! The boot ROM writes the table ([`build`]); the kernel module finds it ([`locate`]), checks it
//! strictly ([`parse`]) and uses what it says ([`Ibft`]); [`identity`] tells which InfiniBand
//! port a NIC structure describes, since ROMs squeeze a port into a 6-byte MAC field. [`linux`]
//! renders a table the way Linux's `/sys/firmware/ibft` does, for `ibft dump`.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/ibft/nochap.bin"))?;
//! let parsed = ibft::parse(&bytes)?;
//! let target = parsed.table.boot_target().expect("a bootable table");
//! println!("boot from {} at {:?}", target.name.as_deref().unwrap_or("?"), target.socket_addr());
//! # Ok(()) }
//! ```
//!
//! The crate is `no_std` with `alloc`, forbids unsafe code, and never panics on table bytes:
//! every failure is an [`Error`] naming the structure and the field.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod build;
mod error;
pub mod identity;
pub mod linux;
pub mod locate;
mod model;
mod parse;
pub mod wire;

pub use build::{build, build_into, encoded_len, BuildError};
pub use error::{Error, ErrorKind, Field, Structure, Warning, WarningKind};
pub use model::{
    ChapType, ControlFlags, Header, Ibft, Initiator, InitiatorFlags, Lun, MacAddr, Nic, NicFlags,
    Origin, PciAddress, Secret, Signature, Target, TargetFlags,
};
pub use parse::{
    checksum, ip_from_field, ip_to_field, parse, table_bytes, Parsed, MIN_TABLE_LENGTH,
};
