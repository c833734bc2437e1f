//! ARP over IPoIB (RFC 4391 §7): hardware type 32 and 20-byte link addresses, so a packet is
//! 56 bytes where Ethernet's is 28.

use core::net::Ipv4Addr;
use static_assertions::const_assert_eq;
use zerocopy::byteorder::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::ipoib::{HwAddr, HW_ADDR_LEN};
use super::WireError;

/// ARP hardware type for InfiniBand (IANA `ARPHRD_INFINIBAND`).
pub const HTYPE_INFINIBAND: u16 = 32;
/// ARP protocol type for IPv4.
pub const PTYPE_IPV4: u16 = 0x0800;

/// An ARP operation. Values from the wire are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation(pub u16);

impl Operation {
    /// Who has the target address?
    pub const REQUEST: Self = Self(1);
    /// I have it.
    pub const REPLY: Self = Self(2);
}

/// The on-wire layout.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Raw {
    htype: U16,
    ptype: U16,
    hlen: u8,
    plen: u8,
    oper: U16,
    sha: [u8; HW_ADDR_LEN],
    spa: [u8; 4],
    tha: [u8; HW_ADDR_LEN],
    tpa: [u8; 4],
}
const_assert_eq!(core::mem::size_of::<Raw>(), PACKET_LEN);

/// Length of an IPoIB ARP packet.
pub const PACKET_LEN: usize = 56;

/// A validated IPoIB ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Request or reply.
    pub operation: Operation,
    /// Sender link address.
    pub sender_hw: HwAddr,
    /// Sender IPv4 address.
    pub sender_ip: Ipv4Addr,
    /// Target link address (zero in a request).
    pub target_hw: HwAddr,
    /// Target IPv4 address.
    pub target_ip: Ipv4Addr,
}

impl Repr {
    /// Parses and checks an ARP packet (after the IPoIB header). Longer input is accepted
    /// (padding); anything but IPoIB/IPv4 request or reply is refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let (r, _) = Raw::read_from_prefix(bytes).map_err(|_| WireError::Truncated)?;
        if r.htype.get() != HTYPE_INFINIBAND {
            return Err(WireError::Malformed("ARP hardware type"));
        }
        if r.ptype.get() != PTYPE_IPV4 {
            return Err(WireError::Malformed("ARP protocol type"));
        }
        if r.hlen as usize != HW_ADDR_LEN || r.plen != 4 {
            return Err(WireError::Malformed("ARP address length"));
        }
        let operation = Operation(r.oper.get());
        if operation != Operation::REQUEST && operation != Operation::REPLY {
            return Err(WireError::Malformed("ARP operation"));
        }
        Ok(Self {
            operation,
            sender_hw: HwAddr::from_bytes(&r.sha),
            sender_ip: Ipv4Addr::from(r.spa),
            target_hw: HwAddr::from_bytes(&r.tha),
            target_ip: Ipv4Addr::from(r.tpa),
        })
    }

    /// Writes the packet into `buf[..PACKET_LEN]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let r = Raw {
            htype: U16::new(HTYPE_INFINIBAND),
            ptype: U16::new(PTYPE_IPV4),
            hlen: HW_ADDR_LEN as u8,
            plen: 4,
            oper: U16::new(self.operation.0),
            sha: self.sender_hw.to_bytes(),
            spa: self.sender_ip.octets(),
            tha: self.target_hw.to_bytes(),
            tpa: self.target_ip.octets(),
        };
        buf.get_mut(..PACKET_LEN)
            .ok_or(WireError::Truncated)?
            .copy_from_slice(r.as_bytes());
        Ok(())
    }

    /// A request for `target_ip`, from `sender` at `sender_ip`.
    pub fn request(sender: HwAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Self {
        Self {
            operation: Operation::REQUEST,
            sender_hw: sender,
            sender_ip,
            target_hw: HwAddr::default(),
            target_ip,
        }
    }

    /// A gratuitous announcement of `ip` at `hw` (sender and target address the same).
    pub fn gratuitous(hw: HwAddr, ip: Ipv4Addr) -> Self {
        Self {
            operation: Operation::REQUEST,
            sender_hw: hw,
            sender_ip: ip,
            target_hw: HwAddr::default(),
            target_ip: ip,
        }
    }

    /// The reply to this request from `hw`, which owns the target address.
    pub fn reply_from(&self, hw: HwAddr) -> Self {
        Self {
            operation: Operation::REPLY,
            sender_hw: hw,
            sender_ip: self.target_ip,
            target_hw: self.sender_hw,
            target_ip: self.sender_ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipoib::Gid;

    fn hw(qpn: u32, last: u8) -> HwAddr {
        HwAddr {
            flags: 0,
            qpn,
            gid: Gid::from_guid(
                [0xfe, 0x80, 0, 0, 0, 0, 0, 0],
                [0, 2, 0xc9, 3, 0, 0, 0, last],
            ),
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let req = Repr::request(
            hw(0x48, 1),
            Ipv4Addr::new(192, 0, 2, 5),
            Ipv4Addr::new(192, 0, 2, 1),
        );
        let mut b = [0u8; PACKET_LEN];
        req.emit(&mut b).unwrap();
        assert_eq!(&b[..8], &[0, 32, 0x08, 0, 20, 4, 0, 1]);
        assert_eq!(&b[8..12], &[0, 0, 0, 0x48]);
        assert_eq!(&b[28..32], &[192, 0, 2, 5]);
        assert_eq!(Repr::parse(&b).unwrap(), req);
        let rep = req.reply_from(hw(0x99, 2));
        rep.emit(&mut b).unwrap();
        let back = Repr::parse(&b).unwrap();
        assert_eq!(back.operation, Operation::REPLY);
        assert_eq!(back.target_hw, hw(0x48, 1));
        assert_eq!(back.sender_ip, Ipv4Addr::new(192, 0, 2, 1));
    }

    #[test]
    fn refuses_ethernet_arp_and_short_packets() {
        let mut b = [0u8; PACKET_LEN];
        Repr::gratuitous(hw(1, 1), Ipv4Addr::new(192, 0, 2, 9))
            .emit(&mut b)
            .unwrap();
        assert!(Repr::parse(&b[..55]).is_err());
        let mut eth = b;
        eth[1] = 1;
        assert_eq!(
            Repr::parse(&eth),
            Err(WireError::Malformed("ARP hardware type"))
        );
        let mut hl = b;
        hl[4] = 6;
        assert_eq!(
            Repr::parse(&hl),
            Err(WireError::Malformed("ARP address length"))
        );
        let mut op = b;
        op[7] = 9;
        assert_eq!(Repr::parse(&op), Err(WireError::Malformed("ARP operation")));
    }
}
