//! IPv4 + UDP datagrams for what runs beside smoltcp on an IPoIB interface: the DHCP client
//! (from 0.0.0.0 to 255.255.255.255, which smoltcp's UDP sockets do not send) and the gateway's
//! relay agent. Built and checked with `smoltcp::wire` (RFC 791, RFC 768).

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr};

/// The DHCP server port.
pub const DHCP_SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const DHCP_CLIENT_PORT: u16 = 68;

/// A UDP datagram inside an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// UDP payload.
    pub payload: &'a [u8],
}

/// Parses an IPv4 packet holding a UDP datagram with valid checksums (a zero UDP checksum is
/// accepted, RFC 768). Fragments and anything else are `None`.
pub fn parse(packet: &[u8]) -> Option<Datagram<'_>> {
    let caps = ChecksumCapabilities::default();
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    let ipr = Ipv4Repr::parse(&ip, &caps).ok()?;
    if ipr.next_header != IpProtocol::Udp || ip.more_frags() || ip.frag_offset() != 0 {
        return None;
    }
    let body = packet.get(usize::from(ip.header_len())..usize::from(ip.total_len()))?;
    let udp = UdpPacket::new_checked(body).ok()?;
    let ur = UdpRepr::parse(
        &udp,
        &IpAddress::Ipv4(ipr.src_addr),
        &IpAddress::Ipv4(ipr.dst_addr),
        &caps,
    )
    .ok()?;
    let payload = body.get(8..usize::from(udp.len()))?;
    Some(Datagram {
        src: ipr.src_addr,
        dst: ipr.dst_addr,
        src_port: ur.src_port,
        dst_port: ur.dst_port,
        payload,
    })
}

/// Builds an IPv4 packet (TTL 64) holding one UDP datagram with its checksum. `None` when the
/// payload does not fit in one IPv4 packet.
pub fn emit(d: &Datagram<'_>) -> Option<Vec<u8>> {
    let caps = ChecksumCapabilities::default();
    let udp_len = 8 + d.payload.len();
    let ipr = Ipv4Repr {
        src_addr: d.src,
        dst_addr: d.dst,
        next_header: IpProtocol::Udp,
        payload_len: udp_len,
        hop_limit: 64,
    };
    let total = ipr.buffer_len() + udp_len;
    if total > usize::from(u16::MAX) {
        return None;
    }
    let mut buf = vec![0u8; total];
    let (h, body) = buf.split_at_mut(ipr.buffer_len());
    ipr.emit(&mut Ipv4Packet::new_unchecked(h), &caps);
    let ur = UdpRepr {
        src_port: d.src_port,
        dst_port: d.dst_port,
    };
    ur.emit(
        &mut UdpPacket::new_unchecked(body),
        &IpAddress::Ipv4(d.src),
        &IpAddress::Ipv4(d.dst),
        d.payload.len(),
        |p| p.copy_from_slice(d.payload),
        &caps,
    );
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checksum() {
        let d = Datagram {
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::BROADCAST,
            src_port: DHCP_CLIENT_PORT,
            dst_port: DHCP_SERVER_PORT,
            payload: b"discover",
        };
        let mut b = emit(&d).unwrap();
        assert_eq!(b.len(), 20 + 8 + 8);
        assert_eq!(parse(&b), Some(d));
        // A flipped payload bit fails the UDP checksum.
        let last = b.len() - 1;
        b[last] ^= 1;
        assert_eq!(parse(&b), None);
        assert_eq!(parse(&b[..10]), None);
    }
}
