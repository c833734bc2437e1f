//! A boot storm: 8 nodes booting at once on one fabric against one real Kea and one real tgtd
//! (a shared LUN), each running the unchanged ROM flow, interleaved on the simulated clock.

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

#[test]
fn eight_nodes_boot_at_once_with_distinct_leases_and_correct_ibfts() {
    isboot_tests::netns::run(|| {
        let servers = common::storm_servers();
        let t0 = Instant::now();
        let rep = loader::storm::run(&common::storm_config(8)).unwrap();
        // Bounded: 8 nodes take a few seconds here.
        assert!(t0.elapsed().as_secs() < 120, "{:?}", t0.elapsed());
        let mut leases = BTreeSet::new();
        let mut names = BTreeSet::new();
        let disk = common::disk();
        for n in &rep.nodes {
            let b = n
                .outcome
                .as_ref()
                .unwrap_or_else(|e| panic!("node {:x}: {e}\n{}", n.guid, servers.kea.log()));
            assert!(n.boot_ns().is_some());
            assert_eq!(b.port.port, 1);
            assert_eq!(u64::from_be_bytes(b.port.guid) & !0xff, n.guid);
            assert!(leases.insert(b.lease.address), "{} twice", b.lease.address);
            assert_eq!(b.lease.address.octets()[..2], [198, 18]);
            assert_eq!(&b.boot_blocks[..], &disk[..b.boot_blocks.len()]);
            let bytes = ibft::build(&b.ibft).unwrap();
            let t = ibft::parse(&bytes).unwrap().table;
            let tgt = t.boot_target().unwrap();
            assert_eq!(tgt.name.as_deref(), Some(common::TARGET));
            assert_eq!(tgt.socket_addr().unwrap().to_string(), "198.18.0.1:3260");
            assert_eq!(tgt.chap_type, ibft::ChapType::Mutual);
            let nic = t.nic_for(tgt).unwrap();
            assert_eq!(nic.ip_address, Some(b.lease.address.into()));
            // No option 203: each node's name comes from its port GUID.
            let name = t.initiator.name.clone().unwrap();
            assert_eq!(name, b.initiator);
            assert!(name.ends_with(&format!("{:016x}", u64::from_be_bytes(b.port.guid))));
            assert!(names.insert(name));
            // Each stage was timed.
            let st = loader::timeline::stages(&n.timing, &rep.events, n.node);
            let got: Vec<&str> = st.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(
                got,
                [
                    "probe",
                    "link wait port 1",
                    "SA join",
                    "DHCP",
                    "login",
                    "boot blocks",
                    "iBFT"
                ]
            );
        }
        assert_eq!(leases.len(), 8);
    })
    .unwrap();
}

/// A storm of `n`: every node boots, and nothing on the way lost a packet for want of room —
/// not the gateway's receive ring, not the relay, not a socket buffer of the host (Kea's).
/// (Retransmissions are not counted: the simulated clock runs ahead of the real servers on a
/// loaded machine, and a node may retransmit before a slow Kea answers.) Returns the boot
/// times' p50 and p99.
fn storm_without_losses(n: usize) -> (f64, f64) {
    isboot_tests::netns::run(move || {
        let servers = common::storm_servers();
        let rep = loader::storm::run(&common::storm_config(n)).unwrap();
        for node in &rep.nodes {
            if let Err(e) = &node.outcome {
                panic!("node {:x}: {e}\n{}", node.guid, servers.kea.log());
            }
        }
        let ms = rep.boot_ms();
        assert_eq!(ms.len(), n);
        assert_eq!(
            rep.gateway_rx_no_wqe, 0,
            "the gateway's receive ring overflowed"
        );
        let g = rep.gateway;
        assert_eq!((g.dhcp_dropped, g.connect_failures), (0, 0), "{g:?}");
        assert!(g.dhcp_requests >= 2 * n as u64, "{g:?}");
        assert_eq!(g.dhcp_replies, g.dhcp_requests, "{g:?}");
        assert_eq!(g.connections, 2 * n as u64, "{g:?}");
        let udp = common::UdpCounters::read().expect("/proc/thread-self/net/snmp");
        assert_eq!(udp.rcvbuf_errors, 0, "{udp}");
        (
            loader::storm::percentile(&ms, 50.0),
            loader::storm::percentile(&ms, 99.0),
        )
    })
    .unwrap()
}

#[test]
fn sixty_four_nodes_boot_without_a_lost_packet() {
    // With the ROM's 64-slot ring at the gateway, some SYNs were lost here and their logins
    // waited 1 s for the retransmission.
    let (p50, p99) = storm_without_losses(64);
    println!("64 nodes: p50 {p50} ms, p99 {p99} ms");
}

/// The 256-node storm (about two minutes of a release build's time; `cargo test --release -p
/// loader --test storm -- --ignored`). Its DISCOVERs, all in one millisecond, overflowed the
/// gateway's ring and then the DHCP server's socket buffer, and a third of the nodes waited
/// 4 s for their retransmission; now the p99 boot time is within twice the median.
#[test]
#[ignore]
fn two_hundred_fifty_six_nodes_boot_without_a_lost_packet() {
    let (p50, p99) = storm_without_losses(256);
    assert!(p99 <= 2.0 * p50, "p50 {p50} ms, p99 {p99} ms");
}
