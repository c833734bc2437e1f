//! A sans-IO iSCSI initiator (RFC 7143): PDUs, login with CHAP and mutual CHAP, negotiation,
//! full-feature phase, digests, NOP, task management, logout and ERL 0 recovery, with a SCSI
//! block layer on top and a transport trait for the kernel, the ROM and the host.
//!
//! Layers, bottom up:
//! - [`wire`]: the Basic Header Segment of every opcode an initiator sends or receives
//!   (zerocopy structs), strict decoding of target PDUs, PDU framing with padding and CRC32C
//!   digests, and the text key=value format (RFC 7143 §6.1, §11).
//! - [`negotiate`]: operational key negotiation (RFC 7143 §6.2, §13) with clamping to local
//!   limits.
//! - [`chap`]: CHAP with MD5, SHA-1, SHA-256 and SHA3-256 (RFC 7143 §12.1.3, RFC 1994).
//! - [`login`]: the login state machine (RFC 7143 §6.3, §11.12, §11.13), discovery
//!   (`SendTargets`, RFC 7143 Appendix C).
//! - [`session`]: full-feature phase (RFC 7143 §4.2, §11) and ERL 0 recovery (§7.1.5, §7.3).
//! - [`scsi`]: CDBs and the parsing of their answers (SPC-4, SBC-3).
//! - [`block`]: a block device (capacity, read, write, flush, identification) over a client.
//! - [`url`] and [`rootpath`]: where the target is, as libiscsi's URLs and as the `iscsi:`
//!   root path DHCP hands a SAN-booting client (RFC 4173).
//! - [`transport`]: the byte-stream seam, a blocking driver over it, and (feature `std`) the
//!   `std::net::TcpStream` transport.
//!
//! Nothing here reads a clock: time is a crate-local [`Instant`] passed in by the caller.
#![no_std]
// Kernel and ROM builds have no `unsafe` at all; the host build has three socket calls that
// `std` lacks (`transport::host::sys`), each with its SAFETY comment.
#![cfg_attr(not(feature = "std"), forbid(unsafe_code))]
#![cfg_attr(feature = "std", deny(unsafe_code))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod block;
pub mod chap;
pub mod login;
pub mod negotiate;
pub mod rootpath;
pub mod scsi;
pub mod serial;
pub mod session;
pub mod time;
pub mod transport;
pub mod url;
pub mod wire;

pub use serial::SerialNumber;
pub use time::{Duration, Instant};
