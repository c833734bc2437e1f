//! IPoIB over the simulated fabric: `ipoib`'s interface on the unmodified driver, smoltcp on
//! top. Ping and TCP between two nodes (also under loss), ARP and path records when a peer's
//! LID changes, an address moving to another node, and a partition the SM does not have.

use std::net::Ipv4Addr;
use std::time::Duration;

use hca_sim::{HcaSpec, LinkId, Loss, NodeId, Sim, SimConfig, SmConfig};
use ipoib::iface::{self, ArpMode, Error};
use ipoib::neigh::NeighConfig;
use ipoib::wire::arp;
use ipoib::wire::ipoib::{EtherType, HwAddr};
use net_sim::IpHost;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{icmp, tcp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const STEP: Duration = Duration::from_micros(100);

struct Fabric {
    sim: Sim,
    nodes: Vec<NodeId>,
    _links: Vec<LinkId>,
}

fn fabric(cfg: SimConfig, n: usize) -> Fabric {
    let sim = Sim::new(cfg);
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let mut nodes = Vec::new();
    let mut links = Vec::new();
    for i in 0..n {
        let node = sim.add_hca(HcaSpec::connectx(
            0x0002_c903_0000_1000 + 0x100 * i as u64,
            1,
        ));
        links.push(sim.connect(node, 1, sw));
        nodes.push(node);
    }
    Fabric {
        sim,
        nodes,
        _links: links,
    }
}

fn host(f: &Fabric, i: usize, ip: Ipv4Addr, cfg: iface::Config) -> IpHost {
    let mut h = IpHost::up(&f.sim, f.nodes[i], cfg).unwrap_or_else(|e| panic!("node {i}: {e}"));
    h.set_ipv4(ip, 24, None);
    h
}

/// Polls every host and steps the clock until `done` or `limit` of simulated time.
fn run(
    sim: &Sim,
    hosts: &mut [&mut IpHost],
    limit: Duration,
    mut done: impl FnMut(&mut [&mut IpHost]) -> bool,
) -> bool {
    let end = sim.now() + limit;
    while sim.now() < end {
        for h in hosts.iter_mut() {
            h.poll();
        }
        if done(hosts) {
            return true;
        }
        sim.run_for(STEP);
    }
    false
}

fn icmp_socket(h: &mut IpHost, ident: u16) -> smoltcp::iface::SocketHandle {
    let mut s = icmp::Socket::new(
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 8192]),
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 8192]),
    );
    s.bind(icmp::Endpoint::Ident(ident)).unwrap();
    h.sockets.add(s)
}

/// One echo request from `a` to `dst`; true when the reply came within `limit`.
fn ping(
    sim: &Sim,
    a: &mut IpHost,
    b: &mut IpHost,
    sock: smoltcp::iface::SocketHandle,
    dst: Ipv4Addr,
    seq: u16,
    limit: Duration,
) -> bool {
    let caps = ChecksumCapabilities::default();
    let payload = b"isboot ping over IPoIB";
    let req = Icmpv4Repr::EchoRequest {
        ident: 0x1b,
        seq_no: seq,
        data: payload,
    };
    {
        let s = a.sockets.get_mut::<icmp::Socket>(sock);
        let buf = s.send(req.buffer_len(), IpAddress::Ipv4(dst)).unwrap();
        req.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
    }
    run(sim, &mut [a, b], limit, |hs| {
        let s = hs[0].sockets.get_mut::<icmp::Socket>(sock);
        while let Ok((data, from)) = s.recv() {
            let Ok(p) = Icmpv4Packet::new_checked(data) else {
                continue;
            };
            if let Ok(Icmpv4Repr::EchoReply { seq_no, data, .. }) = Icmpv4Repr::parse(&p, &caps) {
                if seq_no == seq && data == payload && from == IpAddress::Ipv4(dst) {
                    return true;
                }
            }
        }
        false
    })
}

fn two_nodes(cfg: SimConfig, icfg: iface::Config) -> (Fabric, IpHost, IpHost) {
    let f = fabric(cfg, 2);
    let a = host(&f, 0, A, icfg);
    let b = host(&f, 1, B, icfg);
    (f, a, b)
}

#[test]
fn bring_up_takes_qkey_and_mtu_from_the_broadcast_group() {
    let (f, a, _b) = two_nodes(SimConfig::default(), iface::Config::default());
    assert_eq!(a.ipoib.qkey(), 0x0b1b);
    assert_eq!(a.ipoib.mtu(), 2044);
    assert_eq!(a.ipoib.pkey(), 0xffff);
    assert_eq!(
        a.ipoib.broadcast_mgid().to_string(),
        "ff12:401b:ffff:0000:0000:0000:ffff:ffff"
    );
    assert_eq!(
        f.sim
            .group_members(&hca::wire::Gid::ipoib_broadcast(0xffff)),
        2
    );
    // A 1K group MTU gives a 1020-byte IP MTU.
    let cfg = SimConfig {
        sm: SmConfig {
            group_mtu: 3,
            ..SmConfig::default()
        },
        ..SimConfig::default()
    };
    let (_f, a, _b) = two_nodes(cfg, iface::Config::default());
    assert_eq!(a.ipoib.mtu(), 1020);
}

#[test]
fn two_nodes_ping_through_arp_and_path_records() {
    let (f, mut a, mut b) = two_nodes(SimConfig::default(), iface::Config::default());
    let sock = icmp_socket(&mut a, 0x1b);
    let ok = ping(&f.sim, &mut a, &mut b, sock, B, 1, Duration::from_secs(2));
    assert!(
        ok,
        "{:?}\n{:?}\n{:?}",
        a.ipoib.stats(),
        b.ipoib.stats(),
        f.sim.stats()
    );
    // A resolved B by ARP, then B's GID by a PathRecord; B answered the request and learnt A.
    let bhw = b.ipoib.hw_addr();
    assert_eq!(a.ipoib.neighbour(B), Some(bhw));
    assert_eq!(b.ipoib.neighbour(A), Some(a.ipoib.hw_addr()));
    let lid_b = b.ipoib.port_attr().lid.0;
    assert_eq!(a.ipoib.path(&bhw.gid, a.now()).map(|p| p.dlid), Some(lid_b));
    assert_eq!(b.ipoib.stats().arp_replies, 1);
    assert_eq!(a.ipoib.stats().path_queries, 1);
    // Cached now: the next pings need no ARP or SA traffic.
    let (arp, sa) = (a.ipoib.stats().arp_requests, f.sim.stats().sa_requests);
    for seq in 2..6 {
        assert!(ping(
            &f.sim,
            &mut a,
            &mut b,
            sock,
            B,
            seq,
            Duration::from_secs(1)
        ));
    }
    assert_eq!(a.ipoib.stats().arp_requests, arp);
    assert_eq!(f.sim.stats().sa_requests, sa);
    // Nobody there: no reply, and the packet is dropped after three ARP requests.
    let before = a.ipoib.stats();
    assert!(!ping(
        &f.sim,
        &mut a,
        &mut b,
        sock,
        Ipv4Addr::new(192, 0, 2, 99),
        9,
        Duration::from_secs(4)
    ));
    assert_eq!(a.ipoib.stats().arp_requests - before.arp_requests, 3);
    assert_eq!(a.ipoib.stats().pending_dropped - before.pending_dropped, 1);
    assert_eq!(a.ipoib.tx_pending(), 0);
}

/// Sends `total` bytes from `a` to `b` over TCP; returns (bytes received intact, simulated
/// time taken).
fn tcp_stream(
    sim: &Sim,
    a: &mut IpHost,
    b: &mut IpHost,
    total: usize,
    limit: Duration,
) -> (usize, Duration) {
    let win = b.ipoib.max_rx_window();
    let mk = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; win]),
            tcp::SocketBuffer::new(vec![0; win]),
        )
    };
    let mut l = mk();
    l.listen(5001).unwrap();
    let lh = b.sockets.add(l);
    let ch = a.sockets.add(mk());
    {
        let cx = a.smol.context();
        let s = a.sockets.get_mut::<tcp::Socket>(ch);
        s.connect(cx, (IpAddress::Ipv4(B), 5001), 49152).unwrap();
    }
    let pattern = |i: usize| (i % 251) as u8;
    let mut sent = 0usize;
    let mut got = 0usize;
    let mut intact = true;
    let start = sim.now();
    run(sim, &mut [a, b], limit, |hs| {
        let s = hs[0].sockets.get_mut::<tcp::Socket>(ch);
        if s.can_send() && sent < total {
            let n = s
                .send(|buf| {
                    let n = buf.len().min(total - sent);
                    for (k, x) in buf[..n].iter_mut().enumerate() {
                        *x = pattern(sent + k);
                    }
                    (n, n)
                })
                .unwrap();
            sent += n;
        }
        if sent == total && s.send_queue() == 0 {
            s.close();
        }
        let r = hs[1].sockets.get_mut::<tcp::Socket>(lh);
        while r.can_recv() {
            let n = r
                .recv(|buf| {
                    for (k, x) in buf.iter().enumerate() {
                        intact &= *x == pattern(got + k);
                    }
                    (buf.len(), buf.len())
                })
                .unwrap();
            got += n;
        }
        got == total && !r.may_recv()
    });
    assert!(intact, "corrupted stream");
    (got, sim.now() - start)
}

#[test]
fn two_nodes_move_a_tcp_stream() {
    let (f, mut a, mut b) = two_nodes(SimConfig::default(), iface::Config::default());
    let total = 2 << 20;
    let (got, took) = tcp_stream(&f.sim, &mut a, &mut b, total, Duration::from_secs(60));
    assert_eq!(got, total);
    // The window fits the receive slots: nothing was dropped for want of a posted receive,
    // so nothing waited for a retransmission timeout.
    assert_eq!(f.sim.counters(f.nodes[1]).rx_no_wqe, 0);
    assert!(took < Duration::from_secs(1), "{took:?}");
    println!("2 MiB over simulated IPoIB in {took:?} of simulated time");
}

#[test]
fn tcp_stream_survives_two_percent_loss() {
    let (f, mut a, mut b) = two_nodes(SimConfig::default(), iface::Config::default());
    // Loss from here on hits ARP, the PathRecord query and TCP alike.
    f.sim.add_fault(Box::new(Loss { permille: 20 }));
    let total = 512 << 10;
    let (got, _) = tcp_stream(&f.sim, &mut a, &mut b, total, Duration::from_secs(120));
    assert_eq!(got, total);
    assert!(f.sim.stats().fault_drops > 0);
}

#[test]
fn a_moved_peer_is_found_again_after_its_lid_changes() {
    let (f, mut a, mut b) = two_nodes(SimConfig::default(), iface::Config::default());
    let sock = icmp_socket(&mut a, 0x1b);
    assert!(ping(
        &f.sim,
        &mut a,
        &mut b,
        sock,
        B,
        1,
        Duration::from_secs(2)
    ));
    let gid_b = b.ipoib.hw_addr().gid;
    let old = a.ipoib.path(&gid_b, a.now()).unwrap().dlid;
    // The SM moves B to LID 0x40. B hears of it (port management change) and re-announces
    // itself; the announcement arrives from the new LID, so A's path is stale and re-resolved.
    f.sim.change_lid(f.nodes[1], 1, 0x40, Duration::ZERO);
    run(
        &f.sim,
        &mut [&mut a, &mut b],
        Duration::from_millis(20),
        |_| false,
    );
    assert!(a.ipoib.stats().path_stale >= 1, "A did not notice");
    let ok = ping(&f.sim, &mut a, &mut b, sock, B, 2, Duration::from_secs(3));
    assert!(
        ok,
        "{:?}\n{:?}\n{:?}\n{:?}",
        a.ipoib.stats(),
        b.ipoib.stats(),
        f.sim.stats(),
        b.ipoib.port_attr()
    );
    assert_ne!(old, 0x40);
    assert_eq!(b.ipoib.port_attr().lid.0, 0x40);
    assert_eq!(a.ipoib.path(&gid_b, a.now()).map(|p| p.dlid), Some(0x40));
    assert!(a.ipoib.stats().path_stale >= 1);
    assert_eq!(a.ipoib.stats().path_queries, 2);
}

#[test]
fn a_moved_peer_that_missed_the_event_is_found_when_its_neighbour_entry_goes_stale() {
    let icfg = iface::Config {
        neigh: NeighConfig {
            reachable: Duration::from_secs(2),
            ..NeighConfig::default()
        },
        ..iface::Config::default()
    };
    let (f, mut a, mut b) = two_nodes(SimConfig::default(), icfg);
    let sock = icmp_socket(&mut a, 0x1b);
    assert!(ping(
        &f.sim,
        &mut a,
        &mut b,
        sock,
        B,
        1,
        Duration::from_secs(2)
    ));
    // No event reaches B: nobody announces anything. A keeps sending to the old LID (lost)
    // until its neighbour entry goes stale; B's unicast ARP reply then comes from the new LID.
    f.sim.suppress_events(f.nodes[1], true);
    f.sim.change_lid(f.nodes[1], 1, 0x41, Duration::ZERO);
    // The SM's Set(PortInfo) reaches B one hop later: let it land before A pings.
    f.sim.run_for(Duration::from_micros(10));
    assert_eq!(f.sim.port(f.nodes[1], 1).lid, 0x41);
    assert!(!ping(
        &f.sim,
        &mut a,
        &mut b,
        sock,
        B,
        2,
        Duration::from_millis(500)
    ));
    let mut seq = 3;
    let ok = (0..10).any(|_| {
        seq += 1;
        ping(&f.sim, &mut a, &mut b, sock, B, seq, Duration::from_secs(1))
    });
    assert!(ok, "no reply after the LID change");
    assert_eq!(
        a.ipoib
            .path(&b.ipoib.hw_addr().gid, a.now())
            .map(|p| p.dlid),
        Some(0x41)
    );
}

#[test]
fn gratuitous_arp_moves_an_address_to_another_node() {
    let f = fabric(SimConfig::default(), 3);
    let mut a = host(&f, 0, A, iface::Config::default());
    let mut b = host(&f, 1, B, iface::Config::default());
    let mut c = host(
        &f,
        2,
        Ipv4Addr::new(192, 0, 2, 30),
        iface::Config::default(),
    );
    let sock = icmp_socket(&mut a, 0x1b);
    assert!(ping(
        &f.sim,
        &mut a,
        &mut b,
        sock,
        B,
        1,
        Duration::from_secs(2)
    ));
    assert_eq!(a.ipoib.neighbour(B), Some(b.ipoib.hw_addr()));
    // B gives up the address, C takes it over and announces it.
    b.set_ipv4(Ipv4Addr::new(192, 0, 2, 21), 24, None);
    c.set_ipv4(B, 24, None);
    run(
        &f.sim,
        &mut [&mut a, &mut b, &mut c],
        Duration::from_millis(50),
        |_| false,
    );
    assert_eq!(a.ipoib.neighbour(B), Some(c.ipoib.hw_addr()));
    // And pings to that address now reach C (which answers them).
    assert!(ping(
        &f.sim,
        &mut a,
        &mut c,
        sock,
        B,
        2,
        Duration::from_secs(2)
    ));
}

#[test]
fn a_partition_the_port_is_not_in_gives_a_clear_error_and_no_traffic() {
    let f = fabric(SimConfig::default(), 1);
    let cfg = iface::Config {
        pkey: 0x0001,
        ..iface::Config::default()
    };
    let e = IpHost::up(&f.sim, f.nodes[0], cfg).unwrap_err();
    assert_eq!(
        e,
        net_sim::HostError::Ipoib(Error::PkeyNotInPortTable { pkey: 0x8001 })
    );
    assert!(
        e.to_string()
            .contains("P_Key 0x8001 is not in the port's P_Key table"),
        "{e}"
    );
    assert_eq!(f.sim.counters(f.nodes[0]).tx_packets, 0);
    assert_eq!(f.sim.stats().sa_requests, 0);
}

/// The ports are in partition 0x8001 too, but the SM created no IPoIB group for it.
fn partition_8001_without_group() -> SimConfig {
    SimConfig {
        sm: SmConfig {
            pkeys: vec![0xffff, 0x8001],
            ..SmConfig::default()
        },
        ..SimConfig::default()
    }
}

#[test]
fn a_partition_without_a_broadcast_group_is_refused_by_the_sa() {
    // The port is in partition 0x8001, but the SM created no IPoIB group for it.
    let cfg = partition_8001_without_group();
    let f = fabric(cfg, 1);
    let icfg = iface::Config {
        pkey: 0x8001,
        ..iface::Config::default()
    };
    let e = IpHost::up(&f.sim, f.nodes[0], icfg).unwrap_err();
    let net_sim::HostError::Ipoib(Error::NoBroadcastGroup { pkey, .. }) = e else {
        panic!("{e:?}");
    };
    assert_eq!(pkey, 0x8001);
    assert!(
        e.to_string().contains("broadcast group of P_Key 0x8001"),
        "{e}"
    );
    assert_eq!(
        f.sim
            .group_members(&hca::wire::Gid::ipoib_broadcast(0x8001)),
        0
    );
}

#[test]
fn a_node_told_to_create_the_missing_broadcast_group_does_and_a_second_joins_it() {
    // Partition 0x8001 without a group, as above; the first node creates it with its join,
    // the second finds it and joins, and the two talk through it.
    let cfg = partition_8001_without_group();
    let f = fabric(cfg, 2);
    let icfg = iface::Config {
        pkey: 0x8001,
        create_broadcast: true,
        ..iface::Config::default()
    };
    let mgid = hca::wire::Gid::ipoib_broadcast(0x8001);
    let mut a = host(&f, 0, A, icfg);
    // One join refused (no group), one create-join.
    assert_eq!((f.sim.stats().sa_requests, f.sim.stats().sa_errors), (2, 1));
    assert_eq!(f.sim.group_members(&mgid), 1);
    assert_eq!(a.ipoib.qkey(), iface::BROADCAST_QKEY);
    assert_eq!(a.ipoib.pkey(), 0x8001);
    let mut b = host(&f, 1, B, icfg);
    assert_eq!(f.sim.stats().sa_requests, 3, "the group exists: one join");
    assert_eq!(f.sim.group_members(&mgid), 2);
    assert_eq!(b.ipoib.mlid(), a.ipoib.mlid());
    assert!(b.ipoib.mlid().is_multicast());
    let sock = icmp_socket(&mut a, 0x1b);
    assert!(ping(
        &f.sim,
        &mut a,
        &mut b,
        sock,
        B,
        1,
        Duration::from_secs(2)
    ));
    // Without the setting, the same partition is an error.
    let f = fabric(partition_8001_without_group(), 1);
    let plain = iface::Config {
        create_broadcast: false,
        ..icfg
    };
    assert!(matches!(
        IpHost::up(&f.sim, f.nodes[0], plain),
        Err(net_sim::HostError::Ipoib(Error::NoBroadcastGroup { .. }))
    ));
}

#[test]
fn in_host_arp_mode_arp_and_ipv4_are_handed_up_with_their_destination_and_nothing_is_answered() {
    let f = fabric(SimConfig::default(), 2);
    let mut a = host(&f, 0, A, iface::Config::default());
    let hcfg = iface::Config {
        arp: ArpMode::Host,
        ..iface::Config::default()
    };
    let mut b = IpHost::up(&f.sim, f.nodes[1], hcfg).unwrap();
    assert_eq!(b.ipoib.arp_mode(), ArpMode::Host);
    assert_eq!(b.ipoib.ib_mtu(), 2048);
    // A new address is not announced: the host's stack does that.
    b.set_ipv4(B, 24, None);
    assert_eq!(b.ipoib.stats().arp_requests, 0);
    // A has a packet for B: its ARP request reaches B's host stack with the broadcast
    // address, and B's interface does not answer it.
    let packet = [
        0x45, 0, 0, 24, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 10, 192, 0, 2, 20, 1, 2, 3, 4,
    ];
    let t = a.now();
    a.ipoib.send_ipv4(&mut a.dev, t, &packet).unwrap();
    let mut frames = Vec::new();
    run(
        &f.sim,
        &mut [&mut a, &mut b],
        Duration::from_millis(100),
        |hs| {
            while let Some(fr) = hs[1].ipoib.recv_frame() {
                frames.push(fr);
            }
            false
        },
    );
    assert_eq!(frames.len(), 1, "{frames:?}");
    let req = &frames[0];
    assert_eq!(req.ether_type, EtherType::ARP);
    assert_eq!(req.dst, HwAddr::broadcast(0xffff));
    let r = arp::Repr::parse(&req.payload).unwrap();
    assert_eq!((r.sender_ip, r.target_ip), (A, B));
    assert_eq!(r.sender_hw, a.ipoib.hw_addr());
    assert_eq!(b.ipoib.stats().arp_replies, 0);
    assert_eq!(b.ipoib.neighbour(A), None, "nothing learnt either");
    assert_eq!(a.ipoib.neighbour(B), None);
    // The host's stack answers through send_frame; A's packet then arrives, to B's address,
    // as a frame (not on the IPv4 queue).
    let mut reply = vec![0u8; arp::PACKET_LEN];
    r.reply_from(b.ipoib.hw_addr()).emit(&mut reply).unwrap();
    let t = b.now();
    b.ipoib
        .send_frame(&mut b.dev, t, &r.sender_hw, EtherType::ARP, &reply)
        .unwrap();
    frames.clear();
    run(
        &f.sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(1),
        |hs| {
            while let Some(fr) = hs[1].ipoib.recv_frame() {
                frames.push(fr);
            }
            !frames.is_empty()
        },
    );
    assert_eq!(a.ipoib.neighbour(B), Some(b.ipoib.hw_addr()));
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].dst, b.ipoib.hw_addr());
    assert_eq!(frames[0].ether_type, EtherType::IPV4);
    assert_eq!(frames[0].payload, packet);
    assert_eq!(b.ipoib.recv(), None);
    // An explicit announcement is the one ARP it sends of its own.
    let t = b.now();
    b.ipoib.announce(&mut b.dev, t);
    assert_eq!(b.ipoib.stats().arp_requests, 1);
}

#[test]
fn a_bring_up_that_fails_after_the_join_leaves_no_queues_behind() {
    let f = fabric(SimConfig::default(), 1);
    let mut a = host(&f, 0, A, iface::Config::default());
    let node = f.nodes[0];
    // The port stays open; only the interface's QP and CQs come and go.
    let cfg = iface::Config::default();
    let again = iface::Interface::up(&mut a.dev, cfg).unwrap();
    again.down(&mut a.dev).unwrap();
    let pages = f.sim.dma_pages_in_use(node);
    // The firmware refuses the QP's first transition (bad resource state).
    f.sim.fail_next_command(
        node,
        hca_sim::prm::op::RST2INIT_QP,
        hca_sim::prm::stat::BAD_RES_STATE,
    );
    let e = iface::Interface::up(&mut a.dev, cfg).unwrap_err();
    assert!(
        matches!(e, Error::Hca(hca::Error::Firmware { .. })),
        "{e:?}"
    );
    assert_eq!(f.sim.dma_pages_in_use(node), pages, "CQs and QP freed");
    // And the next try succeeds.
    let ok = iface::Interface::up(&mut a.dev, cfg).unwrap();
    assert!(f.sim.dma_pages_in_use(node) > pages);
    ok.down(&mut a.dev).unwrap();
    assert_eq!(f.sim.dma_pages_in_use(node), pages);
    assert_eq!(f.sim.counters(node).misuse, 0);
}
