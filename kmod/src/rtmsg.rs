//! Routing-socket messages (route(4)): how the FreeBSD platform adds a route.
//!
//! A route is added as route(8) adds one: an `RTM_ADD` message written to a `PF_ROUTE`
//! socket. Its layout (`struct rt_msghdr`, then the addresses as `sockaddr_in`s, each rounded
//! up to a `long`) is the userland ABI, the same in FreeBSD 14 and 15, unlike the kernel's own
//! `rib_action()` and its internal `struct rt_addrinfo`. Built here, portably, so that the host
//! tests check every byte.

use alloc::vec::Vec;
use core::net::Ipv4Addr;

/// `sizeof(struct rt_msghdr)` on LP64 (net/route.h; asserted in isboot_boot_abi.h).
pub const RT_MSGHDR_SIZE: usize = 152;
/// `RTM_VERSION`.
pub const RTM_VERSION: u8 = 5;
/// `RTM_ADD`.
pub const RTM_ADD: u8 = 0x1;
/// `RTA_DST`.
pub const RTA_DST: i32 = 0x1;
/// `RTA_GATEWAY`.
pub const RTA_GATEWAY: i32 = 0x2;
/// `RTA_NETMASK`.
pub const RTA_NETMASK: i32 = 0x4;
/// `RTF_UP`.
pub const RTF_UP: i32 = 0x1;
/// `RTF_GATEWAY`.
pub const RTF_GATEWAY: i32 = 0x2;
/// `RTF_HOST`.
pub const RTF_HOST: i32 = 0x4;
/// `RTF_STATIC`.
pub const RTF_STATIC: i32 = 0x800;
/// `AF_INET`.
const AF_INET: u8 = 2;
/// `sizeof(struct sockaddr_in)` (already a multiple of `sizeof(long)`).
const SIN_SIZE: usize = 16;

/// The netmask of a prefix length (0..=32).
pub fn prefix_mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

/// The prefix length of a netmask (its leading ones).
pub fn mask_prefix(mask: u32) -> u8 {
    mask.leading_ones() as u8
}

fn sockaddr_in(out: &mut Vec<u8>, a: Ipv4Addr) {
    let mut sin = [0u8; SIN_SIZE];
    sin[0] = SIN_SIZE as u8; // sin_len
    sin[1] = AF_INET; // sin_family
    sin[4..8].copy_from_slice(&a.octets()); // sin_addr, network order
    out.extend_from_slice(&sin);
}

/// `RTM_ADD` of `dst/prefix` via `gateway` (a static gateway route; a host route when the
/// prefix is 32), with sequence number `seq`.
pub fn add_route(dst: Ipv4Addr, prefix: u8, gateway: Ipv4Addr, seq: i32) -> Vec<u8> {
    let host = prefix >= 32;
    let mut addrs = RTA_DST | RTA_GATEWAY;
    let mut flags = RTF_UP | RTF_GATEWAY | RTF_STATIC;
    if host {
        flags |= RTF_HOST;
    } else {
        addrs |= RTA_NETMASK;
    }
    let n = if host { 2 } else { 3 };
    let len = RT_MSGHDR_SIZE + n * SIN_SIZE;
    let mut m = Vec::with_capacity(len);
    m.resize(RT_MSGHDR_SIZE, 0);
    m[0..2].copy_from_slice(&(len as u16).to_ne_bytes()); // rtm_msglen
    m[2] = RTM_VERSION; // rtm_version
    m[3] = RTM_ADD; // rtm_type
    m[8..12].copy_from_slice(&flags.to_ne_bytes()); // rtm_flags
    m[12..16].copy_from_slice(&addrs.to_ne_bytes()); // rtm_addrs
    m[20..24].copy_from_slice(&seq.to_ne_bytes()); // rtm_seq
                                                   // In RTA_* order: destination, gateway, netmask.
    let mask = Ipv4Addr::from(prefix_mask(prefix));
    sockaddr_in(&mut m, Ipv4Addr::from(u32::from(dst) & u32::from(mask)));
    sockaddr_in(&mut m, gateway);
    if !host {
        sockaddr_in(&mut m, mask);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_prefixes() {
        assert_eq!(prefix_mask(0), 0);
        assert_eq!(prefix_mask(24), 0xffff_ff00);
        assert_eq!(prefix_mask(32), u32::MAX);
        assert_eq!(prefix_mask(40), u32::MAX);
        for p in 0..=32 {
            assert_eq!(mask_prefix(prefix_mask(p)), p);
        }
    }

    #[test]
    fn default_route_message() {
        let gw = Ipv4Addr::new(10, 0, 2, 2);
        let m = add_route(Ipv4Addr::UNSPECIFIED, 0, gw, 7);
        assert_eq!(m.len(), 152 + 48);
        assert_eq!(u16::from_ne_bytes([m[0], m[1]]) as usize, m.len());
        assert_eq!((m[2], m[3]), (5, 1));
        let flags = i32::from_ne_bytes(m[8..12].try_into().unwrap());
        assert_eq!(flags, RTF_UP | RTF_GATEWAY | RTF_STATIC);
        let addrs = i32::from_ne_bytes(m[12..16].try_into().unwrap());
        assert_eq!(addrs, RTA_DST | RTA_GATEWAY | RTA_NETMASK);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        // dst 0.0.0.0, gateway, mask 0.0.0.0: sockaddr_in each.
        assert_eq!(&m[152..160], &[16, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&m[168..176], &[16, 2, 0, 0, 10, 0, 2, 2]);
        assert_eq!(&m[184..192], &[16, 2, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn host_route_message() {
        let m = add_route(
            Ipv4Addr::new(192, 168, 7, 9),
            32,
            Ipv4Addr::new(10, 0, 2, 1),
            1,
        );
        assert_eq!(m.len(), 152 + 32);
        let flags = i32::from_ne_bytes(m[8..12].try_into().unwrap());
        assert_eq!(flags, RTF_UP | RTF_GATEWAY | RTF_STATIC | RTF_HOST);
        let addrs = i32::from_ne_bytes(m[12..16].try_into().unwrap());
        assert_eq!(addrs, RTA_DST | RTA_GATEWAY);
        assert_eq!(&m[156..160], &[192, 168, 7, 9]);
        assert_eq!(&m[172..176], &[10, 0, 2, 1]);
    }

    #[test]
    fn network_route_is_masked() {
        let m = add_route(
            Ipv4Addr::new(192, 168, 7, 9),
            16,
            Ipv4Addr::new(10, 0, 2, 1),
            1,
        );
        assert_eq!(&m[156..160], &[192, 168, 0, 0]);
        assert_eq!(&m[188..192], &[255, 255, 0, 0]);
    }
}
