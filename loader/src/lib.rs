//! The boot ROM flow: HCA bring-up (port 1, then port 2), IPoIB, DHCP over InfiniBand, iSCSI
//! login, boot-block reads and an iBFT for the OS; plus a host runner that boots it on `hca-sim`.
//!
//! Filled once the HCA, IPoIB and iSCSI layers exist.
#![no_std]
