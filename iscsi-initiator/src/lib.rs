//! A sans-IO iSCSI initiator (RFC 7143): PDUs, login with CHAP and mutual CHAP, negotiation,
//! full-feature phase, digests, NOP, task management, logout and ERL 0 recovery, with a SCSI
//! block layer on top and a transport trait for the kernel, the ROM and the host.
//!
//! Filled by the iSCSI initiator issue.
#![no_std]
#![forbid(unsafe_code)]
