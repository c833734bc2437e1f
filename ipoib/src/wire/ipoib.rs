//! RFC 4391 datagram-mode encapsulation and addressing.
//!
//! - Every IPoIB packet starts with a 4-byte header: the EtherType and two reserved zero bytes
//!   (RFC 4391 §6).
//! - A link address is 20 bytes: a flags byte (bit 7: connected mode supported), the 24-bit UD
//!   QPN, and the port's 16-byte GID (RFC 4391 §9.1.1).
//! - The IPv4 broadcast group's MGID is `ff1<scope>:401b:<P_Key>::ffff:ffff`, the P_Key with its
//!   full-member bit set (RFC 4391 §4; iPXE forces the bit too).

use core::fmt;
use static_assertions::const_assert_eq;
use zerocopy::byteorder::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::WireError;

/// EtherType values carried in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: Self = Self(0x0800);
    /// ARP.
    pub const ARP: Self = Self(0x0806);
    /// IPv6.
    pub const IPV6: Self = Self(0x86dd);
}

/// The 4-byte IPoIB encapsulation header.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Header {
    /// EtherType, network order.
    pub ether_type: U16,
    /// Reserved, zero.
    pub reserved: U16,
}
const_assert_eq!(core::mem::size_of::<Header>(), HEADER_LEN);

/// Length of the encapsulation header.
pub const HEADER_LEN: usize = 4;

/// Splits a packet into its EtherType and payload.
pub fn decapsulate(packet: &[u8]) -> Result<(EtherType, &[u8]), WireError> {
    let (h, payload) = Header::read_from_prefix(packet).map_err(|_| WireError::Truncated)?;
    Ok((EtherType(h.ether_type.get()), payload))
}

/// Writes the header for `ether_type` in front of a payload: `buf[..4]`.
pub fn encapsulate(ether_type: EtherType, buf: &mut [u8]) -> Result<(), WireError> {
    let h = Header {
        ether_type: U16::new(ether_type.0),
        reserved: U16::ZERO,
    };
    buf.get_mut(..HEADER_LEN)
        .ok_or(WireError::Truncated)?
        .copy_from_slice(h.as_bytes());
    Ok(())
}

/// An InfiniBand GID: 8-byte subnet prefix and 8-byte interface id (the port GUID).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Gid(pub [u8; 16]);

impl Gid {
    /// The default subnet prefix fe80::/64 and a port GUID.
    pub fn from_guid(prefix: [u8; 8], guid: [u8; 8]) -> Self {
        let mut g = [0u8; 16];
        g[..8].copy_from_slice(&prefix);
        g[8..].copy_from_slice(&guid);
        Self(g)
    }

    /// The interface id (port GUID) half.
    pub fn guid(&self) -> [u8; 8] {
        let mut g = [0u8; 8];
        g.copy_from_slice(&self.0[8..]);
        g
    }
}

impl fmt::Display for Gid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{:02x}{:02x}", pair[0], pair[1])?;
        }
        Ok(())
    }
}

impl fmt::Debug for Gid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gid({self})")
    }
}

/// A 20-byte IPoIB link address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HwAddr {
    /// Flags byte; bit 7 = connected mode supported. Datagram-only senders use 0.
    pub flags: u8,
    /// The UD QP number (24 bits).
    pub qpn: u32,
    /// The port GID.
    pub gid: Gid,
}

/// Length of an IPoIB link address.
pub const HW_ADDR_LEN: usize = 20;

/// The QPN of a multicast destination.
pub const MULTICAST_QPN: u32 = 0x00ff_ffff;

impl HwAddr {
    /// Decodes 20 bytes.
    pub fn from_bytes(b: &[u8; HW_ADDR_LEN]) -> Self {
        let mut gid = [0u8; 16];
        gid.copy_from_slice(&b[4..]);
        Self {
            flags: b[0],
            qpn: u32::from_be_bytes([0, b[1], b[2], b[3]]),
            gid: Gid(gid),
        }
    }

    /// Encodes to 20 bytes. The QPN is masked to 24 bits.
    pub fn to_bytes(&self) -> [u8; HW_ADDR_LEN] {
        let mut b = [0u8; HW_ADDR_LEN];
        b[0] = self.flags;
        b[1..4].copy_from_slice(&self.qpn.to_be_bytes()[1..]);
        b[4..].copy_from_slice(&self.gid.0);
        b
    }

    /// The broadcast address of a partition: multicast QPN and the broadcast MGID.
    pub fn broadcast(pkey: u16) -> Self {
        Self {
            flags: 0,
            qpn: MULTICAST_QPN,
            gid: broadcast_mgid(pkey, Scope::LINK_LOCAL),
        }
    }
}

impl fmt::Display for HwAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "qpn {:#08x} gid {}", self.qpn, self.gid)
    }
}

impl fmt::Debug for HwAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HwAddr({self})")
    }
}

/// Multicast scope (RFC 4391 §4: link-local by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope(pub u8);

impl Scope {
    /// Link-local, 2.
    pub const LINK_LOCAL: Self = Self(2);
    /// Site-local, 5.
    pub const SITE_LOCAL: Self = Self(5);
}

/// The full-member bit of a P_Key.
pub const PKEY_FULL_MEMBER: u16 = 0x8000;

/// The default partition's P_Key (full member).
pub const DEFAULT_PKEY: u16 = 0xffff;

/// The IPv4 broadcast group's MGID for a P_Key: `ff1S:401b:PPPP:0000:0000:0000:ffff:ffff`, with
/// the full-member bit set in PPPP.
pub fn broadcast_mgid(pkey: u16, scope: Scope) -> Gid {
    let p = (pkey | PKEY_FULL_MEMBER).to_be_bytes();
    Gid([
        0xff,
        0x10 | (scope.0 & 0x0f),
        0x40,
        0x1b,
        p[0],
        p[1],
        0,
        0,
        0,
        0,
        0,
        0,
        0xff,
        0xff,
        0xff,
        0xff,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn broadcast_mgid_of_the_default_partition() {
        let g = broadcast_mgid(0x7fff, Scope::LINK_LOCAL);
        assert_eq!(g.to_string(), "ff12:401b:ffff:0000:0000:0000:ffff:ffff");
        assert_eq!(
            broadcast_mgid(0x0001, Scope::LINK_LOCAL).0[4..6],
            [0x80, 0x01]
        );
    }

    #[test]
    fn hw_addr_round_trip() {
        let a = HwAddr {
            flags: 0x80,
            qpn: 0x00ab_cdef,
            gid: Gid::from_guid(
                [0xfe, 0x80, 0, 0, 0, 0, 0, 0],
                [0, 2, 0xc9, 3, 0, 0, 0x10, 0x39],
            ),
        };
        let b = a.to_bytes();
        assert_eq!(&b[..4], &[0x80, 0xab, 0xcd, 0xef]);
        assert_eq!(HwAddr::from_bytes(&b), a);
        assert_eq!(a.gid.guid(), [0, 2, 0xc9, 3, 0, 0, 0x10, 0x39]);
    }

    #[test]
    fn encapsulation() {
        let mut buf = [0u8; 8];
        encapsulate(EtherType::ARP, &mut buf).unwrap();
        assert_eq!(&buf[..4], &[0x08, 0x06, 0, 0]);
        let (t, p) = decapsulate(&buf).unwrap();
        assert_eq!((t, p.len()), (EtherType::ARP, 4));
        assert_eq!(decapsulate(&buf[..3]), Err(WireError::Truncated));
    }
}
