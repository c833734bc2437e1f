//! A software [`IbLink`] whose far end is a tiny IPoIB peer: the kernel side of the module's
//! interface (its ifnet, the poll thread, the mbufs, the link events) can be checked without
//! an HCA. The peer owns one IPv4 address; it answers IPoIB ARP requests for it (RFC 4391
//! §7: `ar_hrd` 32, 20-byte hardware addresses, RFC 826) and echoes ICMP echo requests sent
//! to it (RFC 792). UDP datagrams to it drive the link, as a test would a fabric:
//! port [`PORT_MOVE`] moves the interface from port 1 to port 2 (a new GID: `Moved`), port
//! [`PORT_DOWN`] takes the link down (`Down`; sends then fail with [`TxError::LinkDown`]).
//!
//! After a move the peer forgets the interface's hardware address, as a fabric peer whose
//! path went away: it asks for it (an ARP request for the interface's IPv4 address, which the
//! kernel side hands over with [`IbLink::set_ipv4`]) and echoes nothing until a reply carries
//! the interface's new address. So pings after a move prove that the kernel answers ARP with
//! the new GID.
//!
//! Replies wait in a ring of [`RING`] buffers allocated up front (no allocation per packet);
//! a full ring refuses the send with [`TxError::NoBuffers`].

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use clock::Instant;

use crate::iblink::{IbHwAddr, IbLink, LinkEvent, TxError, IB_ADDR_LEN, IB_HDR_LEN};

/// Replies the ring holds.
pub const RING: usize = 16;
/// The IP MTU (a 2048-byte IB MTU, RFC 4391 §5).
pub const IP_MTU: u32 = 2044;
/// UDP port on the peer that moves the interface to port 2.
pub const PORT_MOVE: u16 = 10;
/// UDP port on the peer that takes the link down.
pub const PORT_DOWN: u16 = 9;

const ETHERTYPE_IP: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;

/// The interface's address on port `port`: QPN 0x48, GID fe80::2:c903:ab:cd00+port.
pub fn local_hwaddr(port: u8) -> IbHwAddr {
    let mut a = [0u8; IB_ADDR_LEN];
    a[3] = 0x48;
    a[4] = 0xfe;
    a[5] = 0x80;
    a[12..20].copy_from_slice(&[0x00, 0x02, 0xc9, 0x03, 0x00, 0xab, 0xcd, port]);
    a
}

/// The peer's address: QPN 0x49, GID fe80::2:c903:ab:cdff.
pub const PEER_HWADDR: IbHwAddr = [
    0, 0, 0, 0x49, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x02, 0xc9, 0x03, 0x00, 0xab, 0xcd, 0xff,
];

/// The IPv4 broadcast address of the default partition (RFC 4391 §4: QPN 0xffffff, MGID
/// ff12:401b:ffff::ffff:ffff).
pub const BROADCAST: IbHwAddr = [
    0x00, 0xff, 0xff, 0xff, 0xff, 0x12, 0x40, 0x1b, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff,
    0xff,
];

/// The software link and its peer.
#[derive(Debug)]
pub struct LoopbackLink {
    peer_ip: Ipv4Addr,
    port: u8,
    up: bool,
    ring: Vec<Vec<u8>>,
    lens: [usize; RING],
    head: usize,
    count: usize,
    events: [Option<LinkEvent>; 2],
    ipv4: Option<(Ipv4Addr, u8)>,
    shut: bool,
    /// The peer knows the interface's current hardware address.
    resolved: bool,
}

impl LoopbackLink {
    /// A link on port 1, up, whose peer owns `peer_ip`.
    pub fn new(peer_ip: Ipv4Addr) -> Self {
        LoopbackLink {
            peer_ip,
            port: 1,
            up: true,
            ring: (0..RING)
                .map(|_| vec![0u8; IB_HDR_LEN + IP_MTU as usize])
                .collect(),
            lens: [0; RING],
            head: 0,
            count: 0,
            events: [None, None],
            ipv4: None,
            shut: false,
            resolved: true,
        }
    }

    /// The interface's IPv4 address, as the kernel side told it.
    pub fn ipv4(&self) -> Option<(Ipv4Addr, u8)> {
        self.ipv4
    }

    /// True while the peer knows the interface's current hardware address.
    pub fn peer_resolved(&self) -> bool {
        self.resolved
    }

    /// True once [`IbLink::shutdown`] ran.
    pub fn is_shut(&self) -> bool {
        self.shut
    }

    fn event(&mut self, ev: LinkEvent) {
        if let Some(slot) = self.events.iter_mut().find(|e| e.is_none()) {
            *slot = Some(ev);
        }
    }

    /// A reply frame to us: the header (our address, `ethertype`) and `len` payload bytes
    /// written by `fill`.
    fn reply(
        &mut self,
        dst: IbHwAddr,
        ethertype: u16,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), TxError> {
        if self.count >= RING {
            return Err(TxError::NoBuffers);
        }
        let i = (self.head + self.count) % RING;
        let Some(buf) = self.ring.get_mut(i) else {
            return Err(TxError::NoBuffers);
        };
        let Some(frame) = buf.get_mut(..IB_HDR_LEN + len) else {
            return Err(TxError::BadFrame);
        };
        frame[..IB_ADDR_LEN].copy_from_slice(&dst);
        frame[20..22].copy_from_slice(&ethertype.to_be_bytes());
        frame[22..24].fill(0);
        fill(&mut frame[IB_HDR_LEN..]);
        if let Some(l) = self.lens.get_mut(i) {
            *l = IB_HDR_LEN + len;
        }
        self.count += 1;
        Ok(())
    }

    fn arp(&mut self, a: &[u8]) -> Result<(), TxError> {
        let Some(a) = a.get(..56) else {
            return Ok(());
        };
        if a[..6] != [0, 32, 8, 0, 20, 4] {
            return Ok(());
        }
        let peer_ip = self.peer_ip.octets();
        let me = local_hwaddr(self.port);
        if a[6..8] == [0, 2] && a[32..52] == PEER_HWADDR && a[52..56] == peer_ip {
            // A reply to the peer's request: it knows us again if the address is current.
            self.resolved = a[8..28] == me;
            return Ok(());
        }
        if a[6..8] != [0, 1] || a[52..56] != peer_ip {
            return Ok(());
        }
        let mut sender = [0u8; 24];
        sender.copy_from_slice(&a[8..32]);
        self.reply(me, ETHERTYPE_ARP, 56, |r| {
            r[..6].copy_from_slice(&[0, 32, 8, 0, 20, 4]);
            r[6..8].copy_from_slice(&[0, 2]);
            r[8..28].copy_from_slice(&PEER_HWADDR);
            r[28..32].copy_from_slice(&peer_ip);
            r[32..56].copy_from_slice(&sender);
        })
    }

    /// The peer asks (broadcast) for the interface's address.
    fn ask(&mut self) -> Result<(), TxError> {
        let Some((ours, _)) = self.ipv4 else {
            return Ok(());
        };
        let peer_ip = self.peer_ip.octets();
        self.reply(BROADCAST, ETHERTYPE_ARP, 56, |r| {
            r[..6].copy_from_slice(&[0, 32, 8, 0, 20, 4]);
            r[6..8].copy_from_slice(&[0, 1]);
            r[8..28].copy_from_slice(&PEER_HWADDR);
            r[28..32].copy_from_slice(&peer_ip);
            r[32..52].fill(0);
            r[52..56].copy_from_slice(&ours.octets());
        })
    }

    fn ipv4_in(&mut self, p: &[u8]) -> Result<(), TxError> {
        if p.len() < 20 || p[0] >> 4 != 4 || p[16..20] != self.peer_ip.octets() {
            return Ok(());
        }
        let hl = usize::from(p[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
        if hl < 20 || total < hl + 8 {
            return Ok(());
        }
        match p[9] {
            1 if p[hl] == 8 && !self.resolved => Ok(()),
            1 if p[hl] == 8 => self.reply(local_hwaddr(self.port), ETHERTYPE_IP, total, |r| {
                r[..total].copy_from_slice(&p[..total]);
                r[12..16].copy_from_slice(&p[16..20]);
                r[16..20].copy_from_slice(&p[12..16]);
                r[hl] = 0;
                r[hl + 2..hl + 4].fill(0);
                let c = checksum(&r[hl..total]);
                r[hl + 2..hl + 4].copy_from_slice(&c.to_be_bytes());
            }),
            17 => {
                match u16::from_be_bytes([p[hl + 2], p[hl + 3]]) {
                    PORT_DOWN => {
                        self.up = false;
                        self.event(LinkEvent::Down);
                    }
                    PORT_MOVE if self.port == 1 => {
                        self.port = 2;
                        self.event(LinkEvent::Moved {
                            from: 1,
                            to: 2,
                            hwaddr: local_hwaddr(2),
                        });
                        // Without the interface's IPv4 address the peer cannot ask: it
                        // stays silent (the kernel side never told the link its address).
                        self.resolved = false;
                        return self.ask();
                    }
                    _ => {}
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The Internet checksum (RFC 1071) of `b`.
pub fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        let hi = u32::from(c.first().copied().unwrap_or(0));
        let lo = u32::from(c.get(1).copied().unwrap_or(0));
        sum = sum.wrapping_add(hi << 8 | lo);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl IbLink for LoopbackLink {
    fn hwaddr(&self) -> IbHwAddr {
        local_hwaddr(self.port)
    }

    fn broadcast(&self) -> IbHwAddr {
        BROADCAST
    }

    fn ip_mtu(&self) -> u32 {
        IP_MTU
    }

    fn baudrate(&self) -> u64 {
        // 4X QDR: 40 Gbit/s signalling, 32 Gbit/s of data (8b/10b).
        32_000_000_000
    }

    fn port(&self) -> u8 {
        self.port
    }

    fn transmit(&mut self, frame: &[u8], _now: Instant) -> Result<(), TxError> {
        if frame.len() < IB_HDR_LEN || frame.len() > IB_HDR_LEN + IP_MTU as usize {
            return Err(TxError::BadFrame);
        }
        if !self.up || self.shut {
            return Err(TxError::LinkDown);
        }
        let body = &frame[IB_HDR_LEN..];
        match u16::from_be_bytes([frame[20], frame[21]]) {
            ETHERTYPE_ARP => self.arp(body),
            ETHERTYPE_IP => self.ipv4_in(body),
            _ => Ok(()),
        }
    }

    fn poll(&mut self, _now: Instant, rx: &mut dyn FnMut(&[u8]), event: &mut dyn FnMut(LinkEvent)) {
        for e in self.events.iter_mut() {
            if let Some(ev) = e.take() {
                event(ev);
            }
        }
        while self.count > 0 {
            let i = self.head;
            let len = self.lens.get(i).copied().unwrap_or(0);
            if let Some(f) = self.ring.get(i).and_then(|b| b.get(..len)) {
                rx(f);
            }
            self.head = (self.head + 1) % RING;
            self.count -= 1;
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        None
    }

    fn set_ipv4(&mut self, addr: Ipv4Addr, prefix: u8) {
        self.ipv4 = Some((addr, prefix));
    }

    fn shutdown(&mut self) {
        self.shut = true;
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn frame(ethertype: u16, body: &[u8]) -> Vec<u8> {
        let mut f = BROADCAST.to_vec();
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(body);
        f
    }

    fn drain(l: &mut LoopbackLink) -> (Vec<Vec<u8>>, Vec<LinkEvent>) {
        let mut rx = Vec::new();
        let mut ev = Vec::new();
        l.poll(Instant::ZERO, &mut |f| rx.push(f.to_vec()), &mut |e| {
            ev.push(e)
        });
        (rx, ev)
    }

    fn ipv4(proto: u8, dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let total = 20 + l4.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0,
            0,
            64,
            proto,
            0,
            0,
        ];
        p.extend_from_slice(&[10, 77, 0, 1]);
        p.extend_from_slice(&dst);
        let c = checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(l4);
        p
    }

    #[test]
    fn the_peer_answers_arp_for_its_address_only() {
        let mut l = LoopbackLink::new(Ipv4Addr::new(10, 77, 0, 2));
        let mut req = vec![0, 32, 8, 0, 20, 4, 0, 1];
        req.extend_from_slice(&local_hwaddr(1));
        req.extend_from_slice(&[10, 77, 0, 1]);
        req.extend_from_slice(&[0; 20]);
        req.extend_from_slice(&[10, 77, 0, 2]);
        l.transmit(&frame(ETHERTYPE_ARP, &req), Instant::ZERO)
            .unwrap();
        let (rx, ev) = drain(&mut l);
        assert!(ev.is_empty());
        assert_eq!(rx.len(), 1);
        let r = &rx[0];
        assert_eq!(&r[..20], &local_hwaddr(1));
        assert_eq!(&r[20..22], &[8, 6]);
        assert_eq!(&r[24..32], &[0, 32, 8, 0, 20, 4, 0, 2]);
        assert_eq!(&r[32..52], &PEER_HWADDR);
        assert_eq!(&r[52..56], &[10, 77, 0, 2]);
        assert_eq!(&r[56..76], &local_hwaddr(1));
        assert_eq!(&r[76..80], &[10, 77, 0, 1]);
        // Another address: no answer.
        let mut other = req.clone();
        other[52..56].copy_from_slice(&[10, 77, 0, 3]);
        l.transmit(&frame(ETHERTYPE_ARP, &other), Instant::ZERO)
            .unwrap();
        assert!(drain(&mut l).0.is_empty());
    }

    #[test]
    fn the_peer_echoes_pings_and_udp_drives_the_link() {
        let mut l = LoopbackLink::new(Ipv4Addr::new(10, 77, 0, 2));
        let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 7, 1, 2, 3];
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let ping = ipv4(1, [10, 77, 0, 2], &icmp);
        l.transmit(&frame(ETHERTYPE_IP, &ping), Instant::ZERO)
            .unwrap();
        let (rx, _) = drain(&mut l);
        assert_eq!(rx.len(), 1);
        let r = &rx[0][24..];
        assert_eq!(&r[12..16], &[10, 77, 0, 2]);
        assert_eq!(&r[16..20], &[10, 77, 0, 1]);
        assert_eq!(checksum(&r[..20]), 0);
        assert_eq!(r[20], 0);
        assert_eq!(checksum(&r[20..]), 0);
        assert_eq!(&r[24..], &[0x12, 0x34, 0, 7, 1, 2, 3]);

        // A full ring refuses.
        for _ in 0..RING {
            l.transmit(&frame(ETHERTYPE_IP, &ping), Instant::ZERO)
                .unwrap();
        }
        assert_eq!(
            l.transmit(&frame(ETHERTYPE_IP, &ping), Instant::ZERO),
            Err(TxError::NoBuffers)
        );
        assert_eq!(drain(&mut l).0.len(), RING);

        l.set_ipv4(Ipv4Addr::new(10, 77, 0, 1), 24);
        let mv = ipv4(
            17,
            [10, 77, 0, 2],
            &[0x30, 0x39, 0, PORT_MOVE as u8, 0, 8, 0, 0],
        );
        l.transmit(&frame(ETHERTYPE_IP, &mv), Instant::ZERO)
            .unwrap();
        let (rx, ev) = drain(&mut l);
        // The peer's broadcast request for 10.77.0.1.
        assert_eq!(rx.len(), 1);
        assert_eq!(&rx[0][..20], &BROADCAST);
        assert_eq!(&rx[0][24..32], &[0, 32, 8, 0, 20, 4, 0, 1]);
        assert_eq!(&rx[0][32..52], &PEER_HWADDR);
        assert_eq!(&rx[0][76..80], &[10, 77, 0, 1]);
        assert_eq!(
            ev,
            [LinkEvent::Moved {
                from: 1,
                to: 2,
                hwaddr: local_hwaddr(2)
            }]
        );
        assert_eq!((l.port(), l.hwaddr()), (2, local_hwaddr(2)));
        // The peer forgot us: no echo until ARP gives it our new address.
        l.transmit(&frame(ETHERTYPE_IP, &ping), Instant::ZERO)
            .unwrap();
        assert!(drain(&mut l).0.is_empty());
        let mut reply = vec![0, 32, 8, 0, 20, 4, 0, 2];
        reply.extend_from_slice(&local_hwaddr(1)); // stale
        reply.extend_from_slice(&[10, 77, 0, 1]);
        reply.extend_from_slice(&PEER_HWADDR);
        reply.extend_from_slice(&[10, 77, 0, 2]);
        l.transmit(&frame(ETHERTYPE_ARP, &reply), Instant::ZERO)
            .unwrap();
        assert!(!l.peer_resolved());
        reply[8..28].copy_from_slice(&local_hwaddr(2));
        l.transmit(&frame(ETHERTYPE_ARP, &reply), Instant::ZERO)
            .unwrap();
        assert!(l.peer_resolved());
        l.transmit(&frame(ETHERTYPE_IP, &ping), Instant::ZERO)
            .unwrap();
        assert_eq!(drain(&mut l).0.len(), 1);
        let down = ipv4(
            17,
            [10, 77, 0, 2],
            &[0x30, 0x39, 0, PORT_DOWN as u8, 0, 8, 0, 0],
        );
        l.transmit(&frame(ETHERTYPE_IP, &down), Instant::ZERO)
            .unwrap();
        assert_eq!(drain(&mut l).1, [LinkEvent::Down]);
        assert_eq!(
            l.transmit(&frame(ETHERTYPE_IP, &ping), Instant::ZERO),
            Err(TxError::LinkDown)
        );
        assert_eq!(l.transmit(&[0; 10], Instant::ZERO), Err(TxError::BadFrame));
        assert_eq!(l.ipv4(), Some((Ipv4Addr::new(10, 77, 0, 1), 24)));
        l.shutdown();
        assert!(l.is_shut());
    }
}
