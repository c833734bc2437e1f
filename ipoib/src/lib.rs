//! IPoIB (RFC 4391 datagram mode) and DHCP over InfiniBand (RFC 4390).
//!
//! - [`wire`]: the encapsulation header, 20-byte link addresses and the broadcast group's MGID;
//!   ARP with hardware type 32; DHCPv4 messages with the options a SAN-booting client uses;
//! - [`dhcp`]: a sans-IO DHCP client with RFC 2131 timers and the client-id forms real servers
//!   are configured for (RFC 4390, the BoIB manual's ConnectX and InfiniHost III forms,
//!   FlexBoot's, and today's iPXE's Ethernet-style one). The `iscsi:` root path a lease
//!   carries (RFC 4173) is parsed by `iscsi_initiator::rootpath`.
//!
//! - [`iface`]: the IPoIB interface over the HCA verbs (bring-up, ARP — its own, or passed to
//!   the host's stack in [`iface::ArpMode::Host`] — routing to a next hop,
//!   the pending queue), on the caches in [`neigh`] (neighbours with expiry, path records with
//!   retries);
//! - `phy` (feature `smoltcp`): smoltcp's `phy::Device` in `Medium::Ip` over that interface;
//! - `udp` (feature `smoltcp`): IPv4/UDP datagrams for DHCP beside smoltcp.
//!
//! Time comes from the caller: the interface's timers and the DHCP client are given `now` as a
//! `clock::Instant`; spans are `clock::Duration` (core's). Only the bounded waits of bring-up
//! and tear-down (the port becoming ACTIVE, the SA's answers) poll the device's clock, inside
//! `hca::verbs`.
//!
//! The crate is `no_std` with `alloc`, forbids unsafe
//! code, and drops malformed input with a debug log instead of panicking.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod dhcp;
pub mod iface;
pub mod neigh;
#[cfg(feature = "smoltcp")]
pub mod phy;
#[cfg(feature = "smoltcp")]
pub mod udp;
pub mod wire;
