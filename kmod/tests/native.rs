//! The module's own IPoIB link (`isboot::native::NativeLink`) on a simulated dual-port
//! ConnectX, with an IP peer (`net_sim::IpHost`: the hermon driver, `ipoib` running its own
//! ARP, smoltcp answering pings) on the same switch. The test plays the kernel: it builds the
//! frames FreeBSD's `infiniband_output` hands over (24-byte header, destination address) and
//! runs ARP itself, as FreeBSD's ARP does over the ifnet.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::Duration;

use clock::Instant;
use hca::hermon::{Config as HermonConfig, Hermon};
use hca_sim::{DropMatching, HcaSpec, LinkId, Loss, NodeId, Sim, SimConfig};
use ipoib::iface;
use ipoib::wire::arp::{self, Operation};
use ipoib::wire::ipoib::HwAddr;
use isboot::iblink::{IbLink, LinkEvent, TxError, IB_HDR_LEN};
use isboot::native::{NativeConfig, NativeError, NativeLink, Say};
use net_sim::IpHost;

const US: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const STEP: Duration = Duration::from_micros(200);
const NODE_GUID: u64 = 0x0002_c903_00ab_1000;

type Console = Rc<RefCell<Vec<String>>>;

struct Bed {
    sim: Sim,
    node: NodeId,
    cables: [Option<LinkId>; 2],
    peer: IpHost,
    link: NativeLink,
    console: Console,
    rx: Vec<Vec<u8>>,
    events: Vec<LinkEvent>,
    /// Answer ARP requests for `US` as FreeBSD's ARP would.
    kernel_arp: bool,
    /// The kernel's neighbour cache entry for the peer.
    peer_hw: Option<[u8; 20]>,
}

impl Bed {
    /// A bed around a link that is up on the fabric `f`, with the kernel answering ARP.
    fn new(
        f: (Sim, NodeId, [Option<LinkId>; 2], IpHost),
        link: NativeLink,
        console: Console,
    ) -> Self {
        let (sim, node, cables, peer) = f;
        Bed {
            sim,
            node,
            cables,
            peer,
            link,
            console,
            rx: Vec::new(),
            events: Vec::new(),
            kernel_arp: true,
            peer_hw: None,
        }
    }
}

fn now(sim: &Sim) -> Instant {
    Instant::from_nanos(u64::try_from(sim.now().as_nanos()).unwrap())
}

/// A fabric with an SM, the peer (one port) and our dual-port node; port 1 cabled or not.
fn fabric(cfg: SimConfig, port1: bool) -> (Sim, NodeId, [Option<LinkId>; 2], IpHost) {
    let sim = Sim::new(cfg);
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let p = sim.add_hca(HcaSpec::connectx(0x0002_c903_00ab_0001, 1));
    sim.connect(p, 1, sw);
    let node = sim.add_hca(HcaSpec::connectx(NODE_GUID, 2));
    let l1 = port1.then(|| sim.connect(node, 1, sw));
    let l2 = sim.connect(node, 2, sw);
    let mut peer = IpHost::up(&sim, p, iface::Config::default()).expect("peer up");
    peer.set_ipv4(PEER, 24, None);
    (sim, node, [l1, Some(l2)], peer)
}

fn open(sim: &Sim, node: NodeId) -> Box<dyn hca::Verbs> {
    Box::new(Hermon::open(sim.hal(node), HermonConfig::default()).expect("HCA opens"))
}

fn console() -> (Console, Say) {
    let c: Console = Rc::default();
    let c2 = c.clone();
    (
        c,
        Box::new(move |l: &str| c2.borrow_mut().push(l.to_string())),
    )
}

fn bed_with(cfg: SimConfig, port1: bool, ncfg: NativeConfig) -> Bed {
    let (sim, node, cables, peer) = fabric(cfg, port1);
    let (console, say) = console();
    let mut link = NativeLink::up(open(&sim, node), ncfg, say)
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", console.borrow()));
    link.set_ipv4(US, 24);
    Bed::new((sim, node, cables, peer), link, console)
}

fn bed() -> Bed {
    bed_with(
        SimConfig::default(),
        true,
        NativeConfig {
            preferred_port: Some(1),
            ..NativeConfig::default()
        },
    )
}

fn frame(dst: &[u8; 20], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn arp_frame(dst: &[u8; 20], r: &arp::Repr) -> Vec<u8> {
    let mut p = vec![0u8; arp::PACKET_LEN];
    r.emit(&mut p).unwrap();
    frame(dst, 0x0806, &p)
}

/// (destination, EtherType, payload) of a frame handed up.
fn split(f: &[u8]) -> ([u8; 20], u16, &[u8]) {
    let mut a = [0u8; 20];
    a.copy_from_slice(&f[..20]);
    (a, u16::from_be_bytes([f[20], f[21]]), &f[IB_HDR_LEN..])
}

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(20 + payload.len() as u16).to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = csum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn echo_request(seq: u16) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x1b, 0x0b];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"isboot native link ping");
    let c = csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(US, PEER, 1, &icmp)
}

fn is_echo_reply(p: &[u8], seq: u16) -> bool {
    p.len() >= 28
        && p[9] == 1
        && p[12..16] == PEER.octets()
        && p[16..20] == US.octets()
        && p[20] == 0
        && p[24..26] == [0x1b, 0x0b]
        && p[26..28] == seq.to_be_bytes()
        && &p[28..] == b"isboot native link ping"
}

impl Bed {
    fn now(&self) -> Instant {
        now(&self.sim)
    }

    fn hw(&self) -> HwAddr {
        HwAddr::from_bytes(&self.link.hwaddr())
    }

    /// One round: the peer, the link (frames and events collected; ARP for us answered when
    /// `kernel_arp`), then simulated time.
    fn step(&mut self) {
        self.peer.poll();
        let t = self.now();
        let mut rx = Vec::new();
        let mut ev = Vec::new();
        self.link
            .poll(t, &mut |f| rx.push(f.to_vec()), &mut |e| ev.push(e));
        for f in &rx {
            let (_, ty, p) = split(f);
            if ty != 0x0806 {
                continue;
            }
            let Ok(r) = arp::Repr::parse(p) else { continue };
            // The kernel's neighbour cache: learn the peer from whatever ARP it sends us.
            if r.sender_ip == PEER {
                self.peer_hw = Some(r.sender_hw.to_bytes());
            }
            if self.kernel_arp && r.operation == Operation::REQUEST && r.target_ip == US {
                let reply = r.reply_from(self.hw());
                let _ = self
                    .link
                    .transmit(&arp_frame(&r.sender_hw.to_bytes(), &reply), t);
            }
        }
        self.rx.extend(rx);
        self.events.extend(ev);
        self.sim.run_for(STEP);
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Bed) -> bool) -> bool {
        let end = self.sim.now() + limit;
        while self.sim.now() < end {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }

    /// FreeBSD's ARP for the peer: a broadcast request, resent every second, `tries` times.
    fn arp_peer(&mut self, tries: u32) -> Option<[u8; 20]> {
        self.peer_hw = None;
        for _ in 0..tries {
            let req = arp::Repr::request(self.hw(), US, PEER);
            let bc = self.link.broadcast();
            let t = self.now();
            // A refused frame (link down) is a lost request: the kernel waits as for one.
            let _ = self.link.transmit(&arp_frame(&bc, &req), t);
            if self.run_until(Duration::from_secs(1), |b| b.peer_hw.is_some()) {
                return self.peer_hw;
            }
        }
        None
    }

    /// One echo request to the peer (ARP first if the kernel has no entry); true when the
    /// reply came back within `limit`, as a frame to our address.
    fn ping(&mut self, seq: u16, limit: Duration) -> bool {
        let Some(dst) = self.peer_hw.or_else(|| self.arp_peer(3)) else {
            return false;
        };
        let t = self.now();
        let sent = self
            .link
            .transmit(&frame(&dst, 0x0800, &echo_request(seq)), t);
        self.rx.clear();
        if sent.is_err() {
            self.run_until(limit, |_| false);
            return false;
        }
        self.run_until(limit, |b| {
            let us = b.link.hwaddr();
            b.rx.iter().any(|f| {
                let (d, ty, p) = split(f);
                d == us && ty == 0x0800 && is_echo_reply(p, seq)
            })
        })
    }
}

#[test]
fn arp_goes_through_the_kernel_both_ways_and_the_link_answers_none() {
    let mut b = bed();
    b.kernel_arp = false;
    assert_eq!(b.link.port(), 1);
    assert_eq!(b.link.ip_mtu(), 2044);
    assert_eq!(b.link.baudrate(), 8_000_000_000, "4x SDR in the model");
    // Our request goes out as the kernel built it; the peer's reply comes back as a frame
    // addressed to us (unicast: our address in the header).
    let req = arp::Repr::request(b.hw(), US, PEER);
    let bc = b.link.broadcast();
    assert_eq!(bc[..4], [0x00, 0xff, 0xff, 0xff]);
    assert_eq!(bc[4..8], [0xff, 0x12, 0x40, 0x1b]);
    let t = b.now();
    b.link.transmit(&arp_frame(&bc, &req), t).unwrap();
    assert!(b.run_until(Duration::from_secs(1), |b| b.peer_hw.is_some()));
    let reply =
        b.rx.iter()
            .find_map(|f| {
                let (d, ty, p) = split(f);
                (ty == 0x0806).then(|| (d, arp::Repr::parse(p).unwrap()))
            })
            .expect("the reply was handed up");
    assert_eq!(
        reply.0,
        b.link.hwaddr(),
        "a unicast frame carries our address"
    );
    assert_eq!(reply.1.operation, Operation::REPLY);
    assert_eq!(reply.1.sender_ip, PEER);
    assert_eq!(reply.1.sender_hw, b.peer.ipoib.hw_addr());
    assert_eq!(reply.1.target_hw, b.hw());
    // The peer ARPs for us (it has a packet for us): the request is handed up with the
    // broadcast address, and the link itself does not answer.
    // (Taking its address away and back flushes the peer's neighbour cache.)
    let t = now(&b.sim);
    b.peer.ipoib.set_ipv4(&mut b.peer.dev, t, None, None);
    b.peer.set_ipv4(PEER, 24, None);
    assert_eq!(b.peer.ipoib.neighbour(US), None);
    b.run_until(Duration::from_millis(20), |_| false);
    b.rx.clear();
    let probe = ipv4(PEER, US, 17, b"to the kernel");
    let t = b.peer.now();
    b.peer.ipoib.send_ipv4(&mut b.peer.dev, t, &probe).unwrap();
    assert!(b.run_until(Duration::from_millis(100), |b| !b.rx.is_empty()));
    assert_eq!(b.rx.len(), 1);
    let (d, ty, p) = split(&b.rx[0]);
    assert_eq!(
        (d, ty),
        (bc, 0x0806),
        "a broadcast frame carries the broadcast address"
    );
    let r = arp::Repr::parse(p).unwrap();
    assert_eq!(
        (r.operation, r.sender_ip, r.target_ip),
        (Operation::REQUEST, PEER, US)
    );
    b.run_until(Duration::from_millis(200), |_| false);
    assert_eq!(b.peer.ipoib.neighbour(US), None, "nobody answered");
    let st = b.link.ipoib_stats().unwrap();
    assert_eq!((st.arp_replies, st.arp_requests), (0, 0));
    // The kernel answers: the peer's waiting packet arrives, to our address.
    let ans = r.reply_from(b.hw());
    let t = b.now();
    b.link
        .transmit(&arp_frame(&r.sender_hw.to_bytes(), &ans), t)
        .unwrap();
    b.rx.clear();
    assert!(b.run_until(Duration::from_secs(1), |b| !b.rx.is_empty()));
    let (d, ty, p) = split(&b.rx[0]);
    assert_eq!((d, ty, p), (b.link.hwaddr(), 0x0800, &probe[..]));
    assert_eq!(b.peer.ipoib.neighbour(US), Some(b.hw()));
}

#[test]
fn a_ping_gets_its_reply() {
    let mut b = bed();
    assert!(b.ping(1, Duration::from_secs(1)));
    assert!(b.ping(2, Duration::from_secs(1)));
    assert_eq!(b.link.stats().tx_bad_frames, 0);
    assert!(b.link.stats().rx_frames >= 2);
}

#[test]
fn without_a_cable_on_port_1_the_link_comes_up_on_port_2_and_says_why() {
    let wait = Duration::from_secs(3);
    let cfg = NativeConfig {
        preferred_port: Some(1),
        port_wait: wait,
        ..NativeConfig::default()
    };
    let start;
    let mut b = {
        let (sim, node, cables, peer) = fabric(SimConfig::default(), false);
        let dev = open(&sim, node);
        start = sim.now();
        let (console, say) = console();
        let link = NativeLink::up(dev, cfg, say).unwrap();
        Bed::new((sim, node, cables, peer), link, console)
    };
    let took = b.sim.now() - start;
    assert!(took < wait + Duration::from_millis(200), "{took:?}");
    assert!(took >= wait, "port 1 was waited for: {took:?}");
    assert_eq!(b.link.port(), 2);
    let c = b.console.borrow().join("\n");
    assert!(
        c.contains("port 1 stays DOWN: no physical link") && c.contains("port skipped"),
        "{c}"
    );
    assert!(c.contains("port 2 up: LID"), "{c}");
    assert!(c.contains("IB MTU 2048, IP MTU 2044"), "{c}");
    b.link.set_ipv4(US, 24);
    assert!(b.ping(1, Duration::from_secs(1)));
}

#[test]
fn a_missing_p_key_is_a_typed_error_and_the_device_is_closed() {
    let (sim, node, _cables, _peer) = fabric(SimConfig::default(), true);
    let (console, say) = console();
    let cfg = NativeConfig {
        pkey: 0x0001,
        preferred_port: Some(2),
        port_wait: Duration::from_secs(2),
        ..NativeConfig::default()
    };
    let sa_before = sim.stats().sa_requests;
    let e = NativeLink::up(open(&sim, node), cfg, say).unwrap_err();
    assert_eq!(
        e.port(2),
        Some(iface::Error::PkeyNotInPortTable { pkey: 0x8001 })
    );
    assert_eq!(
        e.port(1),
        Some(iface::Error::PkeyNotInPortTable { pkey: 0x8001 })
    );
    let NativeError::Ports(v) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        v.iter().map(|p| p.port).collect::<Vec<_>>(),
        [2, 1],
        "port 2 first"
    );
    let s = e.to_string();
    assert!(
        s.starts_with("port 2: P_Key 0x8001 is not in the port's P_Key table"),
        "{s}"
    );
    assert!(console
        .borrow()
        .iter()
        .any(|l| l.contains("no port came up")));
    // Closed: no DMA memory left, no misuse, nothing asked of the SA.
    assert_eq!(sim.dma_pages_in_use(node), 0);
    assert_eq!(sim.counters(node).misuse, 0);
    assert_eq!(sim.stats().sa_requests, sa_before);
}

#[test]
fn shutdown_leaves_the_group_and_closes_the_device() {
    let mut b = bed();
    let mgid = hca::wire::Gid::ipoib_broadcast(0xffff);
    assert_eq!(b.sim.group_members(&mgid), 2);
    assert!(b.sim.dma_pages_in_use(b.node) > 0);
    b.link.shutdown();
    assert!(b.link.is_shut_down());
    assert_eq!(b.sim.group_members(&mgid), 1);
    assert_eq!(b.sim.dma_pages_in_use(b.node), 0);
    assert_eq!(b.sim.counters(b.node).misuse, 0);
    let t = b.now();
    assert_eq!(
        b.link
            .transmit(&frame(&[0; 20], 0x0800, &echo_request(1)), t),
        Err(TxError::BadFrame)
    );
    let bc = b.link.broadcast();
    assert_eq!(
        b.link.transmit(&frame(&bc, 0x0800, &echo_request(1)), t),
        Err(TxError::LinkDown)
    );
    b.step();
    assert!(b
        .console
        .borrow()
        .iter()
        .any(|l| l.contains("device closed")));
}

#[test]
fn losing_the_active_port_moves_the_interface_and_the_peer_follows() {
    let mut b = bed();
    assert!(b.ping(1, Duration::from_secs(1)));
    let old = b.link.hwaddr();
    assert_eq!(b.peer.ipoib.neighbour(US), Some(HwAddr::from_bytes(&old)));
    // Cut port 1 while pings flow.
    b.sim
        .set_link(b.cables[0].unwrap(), false, Duration::from_millis(3));
    let cut = b.sim.now() + Duration::from_millis(3);
    let mut seq = 2;
    while !b
        .events
        .iter()
        .any(|e| matches!(e, LinkEvent::Moved { .. }))
    {
        seq += 1;
        b.ping(seq, Duration::from_millis(20));
        assert!(seq < 50, "no move: {:?}", b.console.borrow());
    }
    let moved_at = b.sim.now();
    assert!(
        moved_at - cut < Duration::from_millis(100),
        "{:?}",
        moved_at - cut
    );
    let Some(&LinkEvent::Moved { from, to, hwaddr }) = b
        .events
        .iter()
        .find(|e| matches!(e, LinkEvent::Moved { .. }))
    else {
        unreachable!()
    };
    assert_eq!((from, to), (1, 2));
    assert_eq!(hwaddr, b.link.hwaddr());
    assert_ne!(hwaddr, old);
    assert_eq!(b.link.port(), 2);
    assert!(
        !b.events.contains(&LinkEvent::Down),
        "another port was ready: no Down"
    );
    let c = b.console.borrow().join("\n");
    assert!(
        c.contains("port 2 now carries the interface (port 1 went down)"),
        "{c}"
    );
    // The gratuitous ARP reached the peer: its neighbour entry names the new GID and QPN.
    assert!(
        b.run_until(Duration::from_millis(50), |b| b.peer.ipoib.neighbour(US)
            == Some(HwAddr::from_bytes(&hwaddr)))
    );
    // Traffic resumes with the same address; the kernel's entry for the peer still holds.
    assert!(
        b.ping(100, Duration::from_secs(1)),
        "{:?}",
        b.link.ipoib_stats()
    );
    assert_eq!(b.link.ipoib_stats().unwrap().arp_requests, 1);
    // RFC 5227's second announcement, 2 s later.
    b.run_until(Duration::from_millis(2100), |_| false);
    assert_eq!(b.link.ipoib_stats().unwrap().arp_requests, 2);

    // Now port 2 dies too, and nothing can carry the interface: Down, bounded checking.
    b.events.clear();
    b.sim.set_link(b.cables[1].unwrap(), false, Duration::ZERO);
    assert!(b.run_until(Duration::from_millis(50), |b| b.events == [LinkEvent::Down]));
    let t = b.now();
    assert_eq!(
        b.link
            .transmit(&frame(&b.peer_hw.unwrap(), 0x0800, &echo_request(7)), t),
        Err(TxError::LinkDown)
    );
    let checks = b.link.stats().port_checks;
    b.run_until(Duration::from_secs(2), |_| false);
    let n = b.link.stats().port_checks - checks;
    assert!((3..=5).contains(&n), "{n} port checks in 2 s at 0.5 s");
    // Port 1's cable is back: the interface moves there when the SM has made it ACTIVE.
    b.sim.set_link(b.cables[0].unwrap(), true, Duration::ZERO);
    assert!(b.run_until(Duration::from_secs(2), |b| b
        .events
        .iter()
        .any(|e| matches!(e, LinkEvent::Moved { from: 2, to: 1, .. }))));
    assert!(b.ping(200, Duration::from_secs(1)));
}

#[test]
fn the_same_port_coming_back_is_up_again() {
    let mut b = bed_with(
        SimConfig::default(),
        false,
        NativeConfig {
            port_wait: Duration::from_secs(1),
            ..NativeConfig::default()
        },
    );
    assert_eq!(b.link.port(), 2);
    assert!(b.ping(1, Duration::from_secs(1)));
    let l2 = b.cables[1].unwrap();
    b.sim.set_link(l2, false, Duration::ZERO);
    assert!(b.run_until(Duration::from_millis(50), |b| b.events == [LinkEvent::Down]));
    b.sim.set_link(l2, true, Duration::from_millis(300));
    assert!(b.run_until(Duration::from_secs(2), |b| b
        .events
        .contains(&LinkEvent::Up)));
    assert_eq!(b.link.port(), 2);
    assert!(b.ping(2, Duration::from_secs(1)));
}

#[test]
fn a_lid_change_is_reported_and_traffic_resumes() {
    let mut b = bed();
    assert!(b.ping(1, Duration::from_secs(1)));
    let old = b.link.lid();
    b.sim.change_lid(b.node, 1, 0x40, Duration::ZERO);
    assert!(b.run_until(Duration::from_millis(50), |b| b
        .events
        .contains(&LinkEvent::LidChanged { lid: 0x40 })));
    assert_ne!(old, 0x40);
    assert_eq!(b.link.lid(), 0x40);
    assert!(
        b.ping(2, Duration::from_secs(2)),
        "{:?}",
        b.link.ipoib_stats()
    );
    assert!(b
        .console
        .borrow()
        .iter()
        .any(|l| l.contains(&format!("LID {old:#x} -> 0x40"))));
}

#[test]
fn a_rejoin_the_sa_does_not_answer_is_tried_again_until_it_succeeds() {
    let mut b = bed();
    assert!(b.ping(1, Duration::from_secs(1)));
    let bcast = hca::wire::Gid::ipoib_broadcast(0xffff);
    let lid = b.link.lid();
    // The SA's answers to us (LRH DLID ours, MAD class 0x03 SubnAdm at 8 + 12 + 8 + 1) are
    // lost for all 3 tries of the re-join after the SM restarts.
    b.sim.add_fault(Box::new(DropMatching {
        count: 3,
        predicate: Box::new(move |p: &[u8]| {
            p.len() > 29 && u16::from_be_bytes([p[2], p[3]]) == lid && p[29] == 0x03
        }),
        dropped: 0,
    }));
    b.sim.sm_restart(Duration::ZERO);
    let said = |b: &Bed, what: &str| b.console.borrow().iter().any(|l| l.contains(what));
    assert!(
        b.run_until(Duration::from_secs(3), |b| said(
            b,
            "could not be re-joined"
        )),
        "{:#?}",
        b.console.borrow()
    );
    assert!(b.console.borrow().iter().any(|l| l.ends_with(
        "could not be re-joined (no answer from the SA); trying again in 1 s, then at most \
         every 16 s"
    )));
    // (The SA did record our join; its answer, with the group's new MLID, never came.)
    // The retry a second later is answered: back in the group, and broadcast ARP works.
    assert!(
        b.run_until(Duration::from_secs(3), |b| said(
            b,
            "re-joined the broadcast group"
        )),
        "{:#?}",
        b.console.borrow()
    );
    let st = b.link.ipoib_stats().unwrap();
    assert_eq!((st.rejoins, st.rejoin_failures), (1, 1));
    b.run_until(Duration::from_millis(200), |_| false);
    assert_eq!(b.sim.group_members(&bcast), 2, "both members joined again");
    assert!(b.arp_peer(2).is_some(), "{:?}", b.link.ipoib_stats());
}

#[test]
fn after_an_sm_restart_the_link_rejoins_the_broadcast_group_and_broadcast_arp_works_again() {
    let mut b = bed();
    assert!(b.ping(1, Duration::from_secs(1)));
    let bcast = hca::wire::Gid::ipoib_broadcast(0xffff);
    assert_eq!(b.sim.group_members(&bcast), 2, "the peer and us");
    let lid = b.link.lid();
    // The SM restarts: it forgets its groups (members and MLIDs with them); its first sweep
    // recreates the broadcast group, empty, and sets ClientReregister on every ACTIVE port.
    b.sim.sm_restart(Duration::ZERO);
    b.run_until(Duration::from_millis(1), |_| false);
    assert_eq!(b.sim.stats().sm_restarts, 1);
    let rejoined = |b: &mut Bed| {
        b.console
            .borrow()
            .iter()
            .any(|l| l.contains("re-joined the broadcast group"))
    };
    assert!(
        b.run_until(Duration::from_millis(500), rejoined),
        "{:#?}",
        b.console.borrow()
    );
    let line = b
        .console
        .borrow()
        .iter()
        .find(|l| l.contains("re-joined"))
        .cloned()
        .unwrap();
    assert!(
        line.starts_with(
            "isboot: IPoIB: port 1: the subnet manager asked its clients to re-register (SM \
             restart): re-joined the broadcast group (MLID 0x"
        ),
        "{line}"
    );
    let st = b.link.ipoib_stats().unwrap();
    assert_eq!((st.rejoins, st.rejoin_failures), (1, 0));
    // OpenSM keeps its GUID-to-LID map across a restart: same LID, no LidChanged.
    assert_eq!(b.link.lid(), lid);
    assert!(!b
        .events
        .iter()
        .any(|e| matches!(e, LinkEvent::LidChanged { .. })));
    b.run_until(Duration::from_millis(200), |_| false);
    assert_eq!(b.sim.group_members(&bcast), 2, "both members joined again");
    // Broadcast ARP both ways, which only the rejoined group carries: ours to the peer...
    assert!(b.arp_peer(2).is_some(), "{:?}", b.link.ipoib_stats());
    // ...and the peer's to us (its neighbour cache flushed; it has a packet for us).
    let t = now(&b.sim);
    b.peer.ipoib.set_ipv4(&mut b.peer.dev, t, None, None);
    b.peer.set_ipv4(PEER, 24, None);
    b.rx.clear();
    let probe = ipv4(PEER, US, 17, b"after the SM restart");
    let t = b.peer.now();
    b.peer.ipoib.send_ipv4(&mut b.peer.dev, t, &probe).unwrap();
    assert!(
        b.run_until(Duration::from_secs(1), |b| b.rx.iter().any(|f| {
            let (d, ty, p) = split(f);
            d == b.link.hwaddr() && ty == 0x0800 && p == &probe[..]
        })),
        "the peer's broadcast ARP request reached us and our answer got its packet through"
    );
    assert!(b.ping(2, Duration::from_secs(1)));
}

#[test]
fn arp_and_ping_succeed_through_two_percent_loss() {
    let mut b = bed();
    b.sim.add_fault(Box::new(Loss { permille: 20 }));
    let mut ok = 0;
    for seq in 1..=40 {
        // The kernel's retries: its ARP resends, and a lost ping is sent again.
        b.peer_hw = None;
        if (0..3).any(|_| b.ping(seq, Duration::from_millis(300))) {
            ok += 1;
        }
    }
    assert_eq!(ok, 40);
    assert!(b.sim.stats().fault_drops > 0);
}

#[test]
fn malformed_frames_are_refused_without_panicking() {
    let mut b = bed();
    let t = b.now();
    let us = b.link.hwaddr();
    let bc = b.link.broadcast();
    let ping = echo_request(1);
    let mut mc_qpn_port_gid = us;
    mc_qpn_port_gid[1..4].copy_from_slice(&[0xff; 3]);
    let mut uc_qpn_group_gid = bc;
    uc_qpn_group_gid[1..4].copy_from_slice(&[0, 0, 0x48]);
    let mut special_qpn = us;
    special_qpn[1..4].copy_from_slice(&[0, 0, 1]);
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 23],
        frame(&bc, 0x0800, &[]),
        frame(&bc, 0x86dd, &[0x60; 40]),
        frame(&bc, 0x1234, &ping),
        frame(&bc, 0x0806, &[0; 27]),
        frame(&bc, 0x0800, &[0x60; 40]),
        frame(&bc, 0x0800, &ping[..19]),
        frame(&[0; 20], 0x0800, &ping),
        frame(&mc_qpn_port_gid, 0x0800, &ping),
        frame(&uc_qpn_group_gid, 0x0800, &ping),
        frame(&special_qpn, 0x0800, &ping),
        frame(&bc, 0x0800, &ipv4(US, PEER, 17, &vec![0; 2044])),
    ];
    for (i, f) in bad.iter().enumerate() {
        assert_eq!(b.link.transmit(f, t), Err(TxError::BadFrame), "case {i}");
    }
    assert_eq!(b.link.stats().tx_bad_frames, bad.len() as u64);
    // Random bytes: never a panic; whatever is not refused as malformed was well-formed.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut accepted = 0;
    for _ in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 120) as usize;
        let mut f: Vec<u8> = (0..len)
            .map(|i| (x.rotate_left(i as u32 * 7) >> 3) as u8)
            .collect();
        if x & 1 == 0 && f.len() > 24 {
            f[20..22].copy_from_slice(&[0x08, 0x00]);
        }
        match b.link.transmit(&f, t) {
            Err(TxError::BadFrame) => {}
            Ok(()) => accepted += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(accepted < 5000);
    b.step();
    // And the link still works.
    assert!(b.ping(9, Duration::from_secs(1)));
}

#[test]
fn the_port_the_ibft_nic_names_is_tried_first() {
    use ibft::identity::{mac_for, MacRule, PortGuid};
    use isboot::native::{port_guids, preferred_port};
    let (sim, node, _cables, _peer) = fabric(SimConfig::default(), true);
    let mut dev = open(&sim, node);
    let guids = port_guids(dev.as_mut());
    assert_eq!(guids.len(), 2);
    assert_eq!(guids[0].0, 1);
    assert_eq!(guids[1].0, 2);
    assert_ne!(guids[0].1, guids[1].1);
    // The ROM booted from port 2 and wrote iPXE's GUID-derived MAC of it into the NIC.
    let pci = ibft::PciAddress {
        bus: 3,
        device: 0,
        function: 0,
    };
    let nic = ibft::Nic {
        mac: mac_for(MacRule::GuidMask, PortGuid(guids[1].1), None).unwrap(),
        pci,
        ..ibft::Nic::default()
    };
    let port = preferred_port(&nic, pci, &guids).unwrap();
    assert_eq!(port, 2);
    let (console, say) = console();
    let link = NativeLink::up(
        dev,
        NativeConfig {
            preferred_port: Some(port),
            ..NativeConfig::default()
        },
        say,
    )
    .unwrap();
    assert_eq!(
        link.port(),
        2,
        "both ports are ACTIVE: the preferred one wins"
    );
    assert!(console.borrow()[0].contains("port 2: waiting"));
}
