//! The ROM flow end to end on the simulated fabric, against a real Kea and a real tgtd in a
//! private network namespace: the port without a cable is given up within its bound, DHCP over
//! IB through the gateway gives the address and root path, the initiator logs in across the
//! fabric with mutual CHAP (credentials from DHCP option 175) and reads the boot blocks (checked against the target's disk), and the iBFT it leaves
//! is one the kernel module finds, validates and matches to the port that booted.
#![cfg(feature = "std")]

mod common;

use ibft::identity::{match_nic, IbPort, MatchedBy, PortGuid};
use isboot::host::{HostMemory, HostPlatform};

#[test]
fn boots_through_port_2_from_real_kea_and_tgtd_and_leaves_an_ibft_the_module_takes() {
    isboot_tests::netns::run(|| {
        let servers = common::servers();
        let mut lines = Vec::new();
        let b = loader::sim::boot(common::world(), &common::boot_config(), &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", servers.kea.log()));

        // Port 1 has no cable: given up, with a reason; port 2 booted.
        assert!(
            lines[0].starts_with("port 1: ") && lines[0].contains("stays DOWN: no physical link"),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("port 2: ACTIVE"), "{lines:?}");
        assert_eq!(b.port.port, 2);

        // DHCP from Kea through the relay.
        let o = b.lease.address.octets();
        assert!(
            o[..3] == [192, 0, 2] && (100..=199).contains(&o[3]),
            "{}",
            b.lease.address
        );
        assert_eq!(b.lease.root_path.as_deref(), Some(common::ROOT_PATH));
        assert_eq!(b.lease.relay, Some(common::RELAY));
        assert_eq!(b.initiator, common::INITIATOR);

        // The boot blocks are the target's disk.
        let disk = common::disk();
        assert_eq!(b.capacity, (common::DISK_MIB << 20) as u64);
        assert_eq!(b.boot_blocks.len(), 4096);
        assert_eq!(&b.boot_blocks[..], &disk[..4096]);

        // The iBFT: valid, naming the target, and matching port 2 (not port 1) of the HCA.
        let bytes = ibft::build(&b.ibft).unwrap();
        let t = ibft::parse(&bytes).unwrap().table;
        let tgt = t.boot_target().unwrap();
        assert_eq!(tgt.name.as_deref(), Some(common::TARGET));
        assert_eq!(tgt.socket_addr().unwrap().to_string(), "192.0.2.1:3260");
        assert_eq!(tgt.lun.number(), Some(1));
        assert_eq!(t.initiator.name.as_deref(), Some(common::INITIATOR));
        // Mutual CHAP, with the credentials DHCP gave (option 175), for the OS to log in again.
        assert_eq!(tgt.chap_type, ibft::ChapType::Mutual);
        assert_eq!(tgt.chap_name.as_deref(), Some(common::CHAP_USER));
        assert_eq!(
            tgt.chap_secret.as_ref().map(|s| s.expose()),
            Some(common::CHAP_SECRET.as_bytes())
        );
        assert_eq!(tgt.reverse_chap_name.as_deref(), Some(common::TARGET_USER));
        assert_eq!(
            tgt.reverse_chap_secret.as_ref().map(|s| s.expose()),
            Some(common::TARGET_SECRET.as_bytes())
        );
        let nic = t.nic_for(tgt).unwrap();
        assert_eq!(nic.ip_address, Some(b.lease.address.into()));
        let ports: Vec<IbPort> = [1u8, 2]
            .iter()
            .map(|&p| {
                let mut g = b.port.guid;
                // Port GUIDs of one HCA differ; port 1's is the other one.
                if p != b.port.port {
                    g[7] ^= 0x03;
                }
                IbPort {
                    pci: b.port.pci,
                    port: p,
                    guid: PortGuid(g),
                    firmware_mac: None,
                }
            })
            .collect();
        let m = match_nic(nic, &ports).unwrap();
        assert_eq!(ports[m.index].port, 2);
        assert!(matches!(m.by, MatchedBy::PciAndMac(_)));

        // The kernel module's load flow finds it in base memory and publishes it.
        let mut p = HostPlatform::new();
        p.memory = HostMemory::first_mib();
        p.memory.write(0x9_e620, &bytes);
        isboot::load(&mut p).unwrap();
        let tree = p.published.as_ref().unwrap();
        let get = |n: &str| {
            tree.oids
                .iter()
                .find(|o| o.name == n)
                .map(|o| o.value.to_string())
                .unwrap_or_default()
        };
        assert_eq!(get("hw.ibft.target_name"), common::TARGET);
        assert_eq!(
            get("hw.ibft.initiator_address"),
            b.lease.address.to_string()
        );
        assert_eq!(get("hw.ibft.target_lun"), "1");
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_bench_path_moves_reads_across_the_fabric_for_the_time_asked() {
    isboot_tests::netns::run(|| {
        let _servers = common::servers();
        let w = loader::sim::Workload {
            bs: 4096,
            qd: 4,
            random: true,
            duration: core::time::Duration::from_millis(300),
        };
        let r = loader::sim::bench(
            common::world(),
            &common::boot_config(),
            &w,
            &isboot_tests::cpu_micros,
            &mut |_| {},
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.ios > 4, "{r:?}");
        assert!(r.sim_ms >= 300 && r.sim_ms < 2_000, "{r:?}");
        assert!(r.cpu_us > 0, "{r:?}");
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn with_only_the_uncabled_port_to_try_the_boot_stops_with_one_line() {
    isboot_tests::netns::run(|| {
        let cfg = loader::sim::BootConfig {
            port_order: vec![1],
            link_wait: std::time::Duration::from_secs(2),
            ..common::boot_config()
        };
        let mut lines = Vec::new();
        let e = loader::sim::boot(common::world(), &cfg, &mut |l| lines.push(l.to_string()))
            .expect_err("port 1 has no cable");
        assert_eq!(lines.len(), 1, "{lines:?}");
        let s = e.to_string();
        assert!(
            s.starts_with("no port came up: port 1: IPoIB: port 1 stays DOWN"),
            "{s}"
        );
        assert!(!s.contains('\n'));
    })
    .unwrap_or_else(|e| panic!("{e}"));
}
