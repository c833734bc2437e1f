//! InfiniBand wire formats: parse and emit only, no state.
//!
//! Fixed layouts are `#[repr(C)]` zerocopy structs with big-endian fields and a size assertion
//! beside each (IBA Vol. 1 rel. 1.2.1 §5 for the packet headers, §13.4 for the MAD common header,
//! §14.2.5 for SMP attributes, §15.2 for the SA header and records). Field names follow the
//! specification.

pub mod crc;
pub mod headers;
pub mod mad;
pub mod sa;
pub mod smp;

pub use headers::{Bth, Deth, Grh, Lrh, UdPacket, UdPacketRepr};
pub use mad::{Mad, MadHdr, MadMethod, MgmtClass};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// LRH LNH (IBA §7.7.1): the next header is BTH (IBA local). Here, not in `headers`, because
/// the ICRC (`crc`) needs it too.
pub const LNH_IBA_LOCAL: u8 = 0x2;
/// LRH LNH (IBA §7.7.1): the next header is GRH (IBA global).
pub const LNH_IBA_GLOBAL: u8 = 0x3;

/// A wire-format error. Malformed input never panics; it is reported with one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The buffer is shorter than the header or record it should hold.
    Truncated,
    /// A version field (LRH LVer, GRH IPVer, BTH TVer, MAD BaseVersion) is not one we speak.
    BadVersion,
    /// A field holds a value the format does not allow (for example an LRH LNH of 0).
    Malformed,
    /// The invariant CRC does not match the packet.
    BadIcrc,
}

/// A 64-bit globally unique identifier (node, port or system GUID), kept in wire order.
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(transparent)]
pub struct Guid(pub [u8; 8]);

impl Guid {
    /// The GUID as a host integer (big-endian interpretation of the wire bytes).
    pub const fn to_u64(self) -> u64 {
        u64::from_be_bytes(self.0)
    }
    /// A GUID from a host integer.
    pub const fn from_u64(v: u64) -> Self {
        Self(v.to_be_bytes())
    }
}

impl core::fmt::Debug for Guid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}{:02x}:{:02x}{:02x}:{:02x}{:02x}:{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

/// A 128-bit GID (subnet prefix + interface id, or a multicast GID), kept in wire order.
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(transparent)]
pub struct Gid(pub [u8; 16]);

impl Gid {
    /// A unicast GID from a subnet prefix and a port GUID.
    pub fn from_parts(prefix: u64, guid: Guid) -> Self {
        let mut g = [0u8; 16];
        g[..8].copy_from_slice(&prefix.to_be_bytes());
        g[8..].copy_from_slice(&guid.0);
        Self(g)
    }
    /// The subnet prefix (first 8 bytes).
    pub fn prefix(&self) -> u64 {
        let mut p = [0u8; 8];
        p.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(p)
    }
    /// The interface id (last 8 bytes).
    pub fn guid(&self) -> Guid {
        let mut p = [0u8; 8];
        p.copy_from_slice(&self.0[8..]);
        Guid(p)
    }
    /// IBA §4.1.1: a multicast GID starts with 0xff.
    pub fn is_multicast(&self) -> bool {
        self.0[0] == 0xff
    }
    /// The IPoIB IPv4 broadcast MGID for a partition (RFC 4391 §4):
    /// `ff12:401b:PPPP:0000:0000:0000:ffff:ffff` with the full-member bit forced on.
    pub fn ipoib_broadcast(pkey: u16) -> Self {
        let p = (pkey | 0x8000).to_be_bytes();
        Self([
            0xff, 0x12, 0x40, 0x1b, p[0], p[1], 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
        ])
    }
}

/// Eight colon-separated groups of four hex digits, as IPv6 and `ibstat` write a GID.
impl core::fmt::Display for Gid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

impl core::fmt::Debug for Gid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i != 0 {
                f.write_str(":")?;
            }
            write!(f, "{:02x}{:02x}", pair[0], pair[1])?;
        }
        Ok(())
    }
}

/// A local identifier. 0 is "not assigned"; 0xc000..=0xfffe are multicast; 0xffff is the
/// permissive LID (IBA §4.1.3).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Lid(pub u16);

impl Lid {
    /// Not assigned.
    pub const UNASSIGNED: Lid = Lid(0);
    /// The permissive LID.
    pub const PERMISSIVE: Lid = Lid(0xffff);
    /// First multicast LID.
    pub const MULTICAST_BASE: Lid = Lid(0xc000);
    /// True for multicast LIDs.
    pub const fn is_multicast(self) -> bool {
        self.0 >= 0xc000 && self.0 != 0xffff
    }
}

/// A 24-bit queue pair number.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Qpn(pub u32);

impl Qpn {
    /// The subnet management QP.
    pub const SMI: Qpn = Qpn(0);
    /// The general services QP.
    pub const GSI: Qpn = Qpn(1);
    /// The multicast destination QPN (IBA §10.8.6).
    pub const MULTICAST: Qpn = Qpn(0x00ff_ffff);
}

/// Well-known Q_Key of the GSI (IBA §13.5.1).
pub const GSI_QKEY: u32 = 0x8001_0000;
/// The default partition key (full member).
pub const DEFAULT_PKEY: u16 = 0xffff;

/// A 24-bit big-endian integer as it sits inside BTH and DETH.
pub(crate) fn get_u24(b: [u8; 3]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

/// The low 24 bits of `v` in wire order.
pub(crate) fn put_u24(v: u32) -> [u8; 3] {
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_mgid_forces_full_member_bit() {
        let g = Gid::ipoib_broadcast(0x7fff);
        assert_eq!(
            g.0,
            [0xff, 0x12, 0x40, 0x1b, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
        assert!(g.is_multicast());
        let g = Gid::ipoib_broadcast(0x0001);
        assert_eq!(&g.0[4..6], &[0x80, 0x01]);
    }

    #[test]
    fn gid_parts_round_trip() {
        let guid = Guid::from_u64(0x0002_c903_0000_1039);
        let g = Gid::from_parts(0xfe80_0000_0000_0000, guid);
        assert_eq!(g.prefix(), 0xfe80_0000_0000_0000);
        assert_eq!(g.guid(), guid);
        assert!(!g.is_multicast());
        assert!(Lid(0xc001).is_multicast());
        assert!(!Lid(0xffff).is_multicast());
        assert_eq!(get_u24(put_u24(0x12_3456)), 0x12_3456);
    }
}
