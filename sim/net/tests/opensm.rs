//! OpenSM's SA answers our node. A real OpenSM runs on ibsim (Debian's `opensm` and
//! `ibsim-utils`) in a private network namespace; one port of the simulated fabric is bridged
//! to ibsim's node `Isboot` (`hca_sim::Sim::bridge_sm` through `hca_sim::ibsim`). The
//! unmodified driver and `ipoib`'s interface then bring that port up and talk to OpenSM's SA:
//! the IPoIB broadcast group of the configured P_Key is joined (and, for a partition OpenSM
//! made no group for, created by the join), PathRecords to another node of ibsim's subnet are
//! resolved, and the groups are left. `saquery` (`infiniband-diags`) shows the memberships
//! from OpenSM's side.
//!
//! The simulated SA is configured with other values (Q_Key 0xdead, MTU 1024) than OpenSM's
//! (0x0b1b, 2048), and must see no request: what the node takes can only have come from
//! OpenSM.
#![cfg(feature = "ibsim")]

use std::time::Duration;

use hca::verbs::{self, RetryPolicy};
use hca::wire::mad::MadStatus;
use hca::wire::smp::PortState;
use hca::wire::{Gid, Guid};
use hca_sim::ibsim::IbsimClient;
use hca_sim::{HcaSpec, NodeId, PeerPort, Sim, SimConfig, SmConfig};
use ipoib::iface;
use ipoib::wire::ipoib::{EtherType, HwAddr};
use isboot_tests::ibsim::Subnet;
use net_sim::IpHost;

/// Three channel adapters on one switch. ibsim gives an HCA the current `caguid` as node
/// GUID and node GUID + port as port GUIDs, then moves on by ports + 1 (`ibsim/sim_net.c`):
/// SM 0x…1000, Isboot 0x…1002 (port 0x…1003), Peer 0x…1004 (port 0x…1005).
const TOPOLOGY: &str = "\
switchguid=0x0002c90300000100
Switch\t8 \"Switch1\"
[1]\t\"SM\"[1]
[2]\t\"Isboot\"[1]
[3]\t\"Peer\"[1]

caguid=0x0002c90300001000
Hca\t1 \"SM\"
[1]\t\"Switch1\"[1]

Hca\t1 \"Isboot\"
[1]\t\"Switch1\"[2]

Hca\t1 \"Peer\"
[1]\t\"Switch1\"[3]
";

const ISBOOT_GUID: u64 = 0x0002_c903_0000_1002;
const PEER_GUID: u64 = 0x0002_c903_0000_1004;

/// OpenSM's default partition (with its IPoIB broadcast group), and partition 0x0001 with
/// every port a full member but no IPoIB group: our node creates that one.
const PARTITIONS: &str = "Default=0x7fff, ipoib : ALL=full ;\nStorage=0x0001 : ALL=full ;\n";

fn client_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    (std::process::id() % 20_000_000) * 100 + N.fetch_add(1, Ordering::Relaxed)
}

/// Attaches to `node` and waits (bounded) until OpenSM has made its port ACTIVE.
fn attach(subnet: &Subnet, node: &str) -> IbsimClient {
    let mut c = IbsimClient::connect(subnet.sockname(), node, client_id(), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let ok = isboot_tests::wait_for(Duration::from_secs(10), || {
        let pi = c.port_info().ok()?;
        (pi.port_state() == PortState::ACTIVE && pi.lid.get() != 0).then_some(())
    });
    assert!(ok.is_some(), "{node}'s port never became ACTIVE in ibsim");
    c
}

/// saquery's member dump, as (MGID, MLID, PortGid). `--smkey 1` (OpenSM's default SA key)
/// makes the request trusted: otherwise OpenSM zeroes the PortGid of other ports' records.
/// saquery runs under ibsim's umad2sim, which cuts answers to one MAD: 3 records at most,
/// enough here (our port is the only member of anything).
fn members(subnet: &Subnet) -> Vec<(String, u16, String)> {
    let out = subnet
        .diag("Peer", "saquery", &["-m", "--smkey", "1"])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut v = Vec::new();
    let (mut mgid, mut mlid) = (String::new(), 0);
    for l in out.lines() {
        let l = l.trim();
        let value = |k: &str| {
            l.strip_prefix(k)
                .map(|g| g.trim_start_matches('.').to_string())
        };
        if let Some(g) = value("MGID") {
            mgid = g;
        } else if let Some(m) = value("Mlid") {
            mlid = u16::from_str_radix(m.trim_start_matches("0x"), 16).unwrap_or(0);
        } else if let Some(g) = value("PortGid") {
            v.push((mgid.clone(), mlid, g));
        }
    }
    v
}

/// Whether saquery lists `port` in group `mgid`; with the group's MLID.
fn member_of(subnet: &Subnet, mgid: &str, port: &Gid) -> Option<u16> {
    let port = gid_text(port);
    members(subnet)
        .into_iter()
        .find(|(m, _, p)| m == mgid && *p == port)
        .map(|(_, mlid, _)| mlid)
}

fn gid_text(g: &Gid) -> String {
    std::net::Ipv6Addr::from(g.0).to_string()
}

fn bridged_fabric(subnet: &Subnet) -> (Sim, NodeId, PeerPort) {
    let mut ours = attach(subnet, "Isboot");
    let ni = ours.node_info().unwrap();
    assert_eq!(
        ni.node_guid,
        Guid::from_u64(ISBOOT_GUID),
        "ibsim's GUIDs as the topology comment says"
    );
    let peer_port = ours.peer_port().unwrap();
    assert!(peer_port.pkeys.contains(&0xffff), "{peer_port:?}");
    assert!(peer_port.pkeys.contains(&0x8001), "{peer_port:?}");
    let sim = Sim::new(SimConfig {
        seed: 5,
        sm: SmConfig {
            ipoib_groups: vec![(0xffff, 0xdead)],
            group_mtu: 3,
            ..SmConfig::default()
        },
        ..SimConfig::default()
    });
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let node = sim.add_hca(HcaSpec::connectx(ISBOOT_GUID, 1));
    sim.connect(node, 1, sw);
    sim.bridge_sm(node, 1, ours, peer_port.clone(), Duration::from_secs(5));
    (sim, node, peer_port)
}

#[test]
fn opensm_answers_our_joins_creates_leaves_and_path_records() {
    isboot_tests::netns::run(|| {
        let subnet =
            Subnet::start(TOPOLOGY, Some(PARTITIONS), 0x07).unwrap_or_else(|e| panic!("{e}"));
        let peer = attach(&subnet, "Peer").port_info().unwrap();
        // ibsim refuses a node it does not have, and our client says so.
        let e = IbsimClient::connect(subnet.sockname(), "NoSuchNode", client_id(), 0).unwrap_err();
        assert!(matches!(e, hca_sim::ibsim::IbsimError::Refused(_)), "{e}");
        let (sim, node, ibsim_port) = bridged_fabric(&subnet);
        let dir = isboot_tests::TempDir::new("opensm").unwrap();
        sim.capture(dir.0.join("bridge.pcap")).unwrap();
        let our_gid = Gid::from_parts(0xfe80 << 48, Guid::from_u64(ISBOOT_GUID + 1));
        let peer_gid = Gid::from_parts(0xfe80 << 48, Guid::from_u64(PEER_GUID + 1));

        // 1. Partition 0x8001 has no IPoIB group: OpenSM refuses the plain join (insufficient
        //    components to create), and our create-join makes it.
        let cfg = iface::Config {
            pkey: 0x8001,
            create_broadcast: true,
            ..iface::Config::default()
        };
        let mut h =
            IpHost::up(&sim, node, cfg).unwrap_or_else(|e| panic!("{e}\n{}", subnet.opensm_log()));
        // The port has the LID OpenSM gave Isboot in ibsim, and OpenSM's LID as its SM's.
        let attr = *h.ipoib.port_attr();
        assert_eq!((attr.lid.0, attr.sm_lid.0), (ibsim_port.lid, ibsim_port.sm_lid));
        assert_eq!(attr.gid, our_gid);
        assert_eq!(h.ipoib.pkey(), 0x8001);
        assert_eq!(
            h.ipoib.qkey(),
            iface::BROADCAST_QKEY,
            "the creator's Q_Key, kept by OpenSM"
        );
        assert!(h.ipoib.mlid().is_multicast());
        let mlid_8001 = h.ipoib.mlid();
        assert!(
            subnet.opensm_log().contains("New mcast group created"),
            "{}",
            subnet.opensm_log()
        );
        let mgid_8001 = gid_text(&Gid::ipoib_broadcast(0x8001));
        assert_eq!(
            member_of(&subnet, &mgid_8001, &our_gid),
            Some(mlid_8001.0),
            "saquery lists us, with the MLID we were given"
        );
        // Leave: OpenSM drops our membership.
        let ipoib = h.ipoib;
        ipoib.down(&mut h.dev).unwrap();
        assert_eq!(member_of(&subnet, &mgid_8001, &our_gid), None);
        drop(h.dev);

        // 2. The default partition: OpenSM made its broadcast group at start; we join it and
        //    take OpenSM's Q_Key, MLID and MTU (the simulated SA would have said 0xdead, 1024).
        let mut h = IpHost::up(&sim, node, iface::Config::default())
            .unwrap_or_else(|e| panic!("{e}\n{}", subnet.opensm_log()));
        assert_eq!(h.ipoib.qkey(), 0x0b1b);
        assert_eq!(h.ipoib.mtu(), 2044, "a 2048-byte group");
        assert!(h.ipoib.mlid().is_multicast());
        assert_ne!(h.ipoib.mlid(), mlid_8001);
        let mgid = gid_text(&Gid::ipoib_broadcast(0xffff));
        assert_eq!(member_of(&subnet, &mgid, &our_gid), Some(h.ipoib.mlid().0), "saquery");

        // 3. A PathRecord to Peer, a node only ibsim's subnet has: OpenSM resolves it.
        let attr = *h.ipoib.port_attr();
        let pr =
            verbs::sa_path_record_in(&mut h.dev, &attr, &peer_gid, 0xffff, RetryPolicy::default())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pr.dlid.get(), peer.lid.get());
        assert_eq!(pr.slid.get(), attr.lid.0);
        assert_eq!((pr.dgid, pr.sgid), (peer_gid, our_gid));
        assert_eq!(pr.pkey.get(), 0xffff);
        assert_eq!(pr.mtu(), 4);
        // Asked without a P_Key, OpenSM picks a partition the two ports share — here the
        // other one: why IPoIB's own query names its P_Key.
        let any = verbs::sa_path_record(&mut h.dev, &attr, &peer_gid, RetryPolicy::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(any.dlid.get(), peer.lid.get());
        assert!(
            [0xffff, 0x8001].contains(&any.pkey.get()),
            "{:#x}",
            any.pkey.get()
        );
        // ... and IPoIB's own path lookup uses it: a frame for Peer goes to Peer's LID.
        let dst = HwAddr {
            flags: 0,
            qpn: 0x48,
            gid: ipoib::wire::ipoib::Gid(peer_gid.0),
        };
        let now = h.now();
        h.ipoib
            .send_frame(&mut h.dev, now, &dst, EtherType::IPV4, &[0x45; 20])
            .unwrap();
        for _ in 0..20 {
            h.poll();
            sim.run_for(Duration::from_millis(1));
        }
        let path = h.ipoib.path(&dst.gid, h.now()).expect("a path from OpenSM");
        assert_eq!(path.dlid, peer.lid.get());
        assert_eq!(h.ipoib.stats().path_queries, 1);
        // An unknown GID: OpenSM says it has no records (0x0300).
        let nobody = Gid::from_parts(0xfe80 << 48, Guid::from_u64(0x0002_c903_dead_0001));
        assert_eq!(
            verbs::sa_path_record(&mut h.dev, &attr, &nobody, RetryPolicy::default()).unwrap_err(),
            hca::Error::MadStatus(MadStatus::SA_NO_RECORDS)
        );

        // 4. Leave.
        let ipoib = h.ipoib;
        ipoib.down(&mut h.dev).unwrap();
        assert_eq!(member_of(&subnet, &mgid, &our_gid), None);

        // Everything went to OpenSM: the simulated SA saw nothing.
        assert_eq!(sim.stats().sa_requests, 0);
        let st = sim.bridge_stats().unwrap();
        assert_eq!(
            (st.timeouts, st.bounced, st.errors, st.dropped),
            (0, 0, 0, 0),
            "{st:?}"
        );
        assert!(st.answered >= 8, "{st:?}");

        // OpenSM's own account (log flags 0x07: errors, info, verbose).
        let log = subnet.opensm_log();
        let ours = "0x0002c90300001003";
        for line in [
            format!("Port {ours} (Isboot) failed to join non-existing multicast group with MGID {mgid_8001}, insufficient components specified for implicit create (comp_mask 0x10003)"),
            format!("Port {ours} joining MC group {mgid_8001}"),
            format!("\"New mcast group created\", MGID:{mgid_8001}"),
            format!("leaving MC group {mgid_8001}"),
            format!("Port {ours} joining MC group {mgid}"),
            format!("leaving MC group {mgid}"),
        ] {
            assert!(log.contains(&line), "OpenSM did not log {line:?}:\n{log}");
        }
        for l in log.lines().filter(|l| {
            l.contains("MC group") || l.contains("mcast group") || l.contains("ERR 1B")
        }) {
            eprintln!("opensm: {l}");
        }

        // The capture: OpenSM's answers as packets to our port, decoded by Wireshark too.
        let n = sim.stop_capture().unwrap();
        assert!(n > 16, "{n}");
        drop(h.dev);
        drop(sim);
        drop(subnet);
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(dir.0.join("bridge.pcap"))
            .args(["-T", "fields", "-E", "separator=|", "-e", "_ws.col.Info"])
            .args(["-e", "infiniband.lrh.slid", "-e", "infiniband.mcmemberrecord.q_key"])
            .args(["-e", "infiniband.mcmemberrecord.mlid", "-e", "infiniband.pathrecord.dlid"])
            .output()
            .expect("tshark (Debian's tshark package)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("Malformed"), "{text}");
        let opensm_said: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("SubnAdmGetResp(MCMemberRecord)") || l.contains("SubnAdmDeleteResp(MCMemberRecord)"))
            .collect();
        // Create-join, leave; join, leave: four answers (the refused join is an error answer).
        assert!(opensm_said.iter().any(|l| l.ends_with("|0x00000b1b|0xc001|")), "{text}");
        assert!(opensm_said.iter().any(|l| l.ends_with("|0x00000b1b|0xc000|")), "{text}");
        let peer_lid = format!("|0x{:04x}", peer.lid.get());
        assert!(
            text.lines().any(|l| l.contains("SubnAdmGetResp(PathRecord)") && l.ends_with(&peer_lid)),
            "{text}"
        );
    })
    .unwrap_or_else(|e| panic!("{e}"));
}
