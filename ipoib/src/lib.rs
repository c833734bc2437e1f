//! IPoIB (RFC 4391 datagram mode): the broadcast group from the P_Key, ARP with 20-byte
//! addresses, path records, a smoltcp `phy::Device` in `Medium::Ip`, and the DHCP-over-IB client
//! (RFC 4390 and the client-id forms boot ROMs use).
//!
//! Filled by the IPoIB issue.
#![no_std]
#![forbid(unsafe_code)]
