//! The boot scenario shared by the test and the demo: a real Kea and a real tgtd on a private
//! loopback, the simulated fabric between them and the booting node.
#![allow(dead_code)]

pub mod module;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use isboot_tests::kea::{self, Kea};
use isboot_tests::target::{TargetOpts, Tgtd};
use loader::sim::{BootConfig, FabricConfig, World};

pub const RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const TARGET: &str = "iqn.2026-11.org.example:boot";
pub const INITIATOR: &str = "iqn.2026-11.org.example:node17";
/// The target as the fabric sees it: the gateway forwards port 3260 to tgtd on loopback.
pub const ROOT_PATH: &str = "iscsi:192.0.2.1::3260:1:iqn.2026-11.org.example:boot";
pub const DISK_MIB: usize = 16;
/// The node's CHAP account on the target, handed out by DHCP (option 175, as iPXE reads it).
pub const CHAP_USER: &str = "node17";
pub const CHAP_SECRET: &str = "n0de17-chap-secret";
/// The target's account for mutual CHAP (the ROM checks the target with it).
pub const TARGET_USER: &str = "array";
pub const TARGET_SECRET: &str = "arr4y-mutual-secret";

/// What LBA 0 says (in the protective MBR's boot-code area, which GPT leaves unused).
pub const LABEL: &str = "isboot demo disk: FreeBSD root, GPT, UFS2 on p2";

/// The boot LUN: a FreeBSD root disk (GPT; p1 freebsd-boot, p2 freebsd-ufs holding a UFS2
/// root made by makefs), whose first sector also says what it is.
pub fn disk() -> Vec<u8> {
    static DISK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DISK.get_or_init(|| {
        let mut d = isboot_tests::rootfs::test_image().bytes.clone();
        d[..LABEL.len()].copy_from_slice(LABEL.as_bytes());
        d
    })
    .clone()
}

pub struct Servers {
    pub kea: Kea,
    pub tgtd: Tgtd,
}

/// Starts Kea (relayed subnet 192.0.2.0/24, root path, initiator name, CHAP credentials) and
/// tgtd (the disk as LUN 1, mutual CHAP). Call inside `isboot_tests::netns::run`.
pub fn servers() -> Servers {
    let kea = Kea::start(&kea::Config {
        subnet: "192.0.2.0/24".into(),
        pool: "192.0.2.100 - 192.0.2.199".into(),
        relay: RELAY,
        reservations: vec![],
        options: vec![
            ("routers".into(), GATEWAY.to_string()),
            ("domain-name-servers".into(), "192.0.2.53".into()),
            ("root-path".into(), ROOT_PATH.into()),
            ("iscsi-initiator-iqn".into(), INITIATOR.into()),
            credentials_option(),
        ],
        valid_lifetime: 3600,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let tgtd = Tgtd::try_start(demo_target(SocketAddr::from((Ipv4Addr::LOCALHOST, 3260))))
        .unwrap_or_else(|e| panic!("{e}"));
    Servers { kea, tgtd }
}

/// The demo's target on `portal`: the boot disk as LUN 1, with the node's and the target's CHAP
/// accounts (mutual CHAP).
pub fn demo_target(portal: SocketAddr) -> TargetOpts {
    TargetOpts {
        portal: Some(portal),
        iqn: TARGET.into(),
        ..TargetOpts::bytes(disk()).with_chap(
            CHAP_USER,
            CHAP_SECRET,
            Some((TARGET_USER, TARGET_SECRET)),
        )
    }
}

/// Option 175 with the CHAP credentials, as Kea hands them out.
fn credentials_option() -> (String, String) {
    (
        "ipxe-encap-opts".into(),
        kea::ipxe_credentials(CHAP_USER, CHAP_SECRET, Some((TARGET_USER, TARGET_SECRET))),
    )
}

/// The booting node's node GUID (its port 2, the one that boots, has GUID + 2).
pub const NODE_GUID: u64 = 0x0002_c903_0000_1038;

pub fn world() -> World {
    world_with_capture(None)
}

/// The boot's fabric, capturing every packet to `pcap` when given.
pub fn world_with_capture(pcap: Option<&Path>) -> World {
    World::new(FabricConfig {
        gateway: GATEWAY,
        prefix: 24,
        relay: RELAY,
        dhcp_server: SocketAddr::from((Ipv4Addr::LOCALHOST, kea::PORT)),
        dhcp_relay: true,
        loss_permille: 0,
        forwards: vec![(3260, SocketAddr::from((Ipv4Addr::LOCALHOST, 3260)))],
        node_guid: NODE_GUID,
        port1_connected: false,
        seed: 17,
        pcap: pcap.map(Path::to_path_buf),
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The ROM's settings on the simulator: 5 s (of simulated time) for a port, not BoIB's 45.
pub fn boot_config() -> BootConfig {
    BootConfig {
        link_wait: std::time::Duration::from_secs(5),
        ..BootConfig::default()
    }
}

/// The storm's fabric subnet: room for 1024 leases (198.18.0.0/15 is the benchmarking range).
pub const STORM_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const STORM_ROOT_PATH: &str = "iscsi:198.18.0.1::3260:1:iqn.2026-11.org.example:boot";

/// The storm's servers: Kea with a pool of 1024 on 198.18.0.0/16 and no option 203 (each node
/// logs in under the name its port GUID gives, so sessions and iBFTs differ), and tgtd with one
/// shared LUN (every node reads the same boot image; the ROM only reads).
pub fn storm_servers() -> Servers {
    let kea = Kea::start(&kea::Config {
        subnet: "198.18.0.0/16".into(),
        pool: "198.18.1.0 - 198.18.4.255".into(),
        relay: RELAY,
        reservations: vec![],
        options: vec![
            ("routers".into(), STORM_GATEWAY.to_string()),
            ("root-path".into(), STORM_ROOT_PATH.into()),
            credentials_option(),
        ],
        valid_lifetime: 3600,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let tgtd = Tgtd::try_start(demo_target(SocketAddr::from((Ipv4Addr::LOCALHOST, 3260))))
        .unwrap_or_else(|e| panic!("{e}"));
    Servers { kea, tgtd }
}

/// `nodes` nodes booting at once against [`storm_servers`], port 1 cabled.
pub fn storm_config(nodes: usize) -> loader::storm::StormConfig {
    loader::storm::StormConfig {
        nodes,
        gateway: STORM_GATEWAY,
        prefix: 16,
        relay: RELAY,
        dhcp_server: SocketAddr::from((Ipv4Addr::LOCALHOST, kea::PORT)),
        forwards: vec![(3260, SocketAddr::from((Ipv4Addr::LOCALHOST, 3260)))],
        first_guid: 0x0002_c903_0010_0000,
        seed: 17,
        link_rate: hca_sim::LinkRate::default(),
        port1_connected: true,
        boot: boot_config(),
    }
}

/// The UDP counters of this thread's network namespace (`/proc/thread-self/net/snmp` and
/// `/proc/thread-self/net/udp`), where Kea and the gateway's relay socket are: datagrams the
/// kernel dropped because a socket's receive buffer was full are DHCP messages lost between
/// the relay and Kea.
#[derive(Debug, Clone, Default)]
pub struct UdpCounters {
    /// `InDatagrams`.
    pub in_datagrams: u64,
    /// `RcvbufErrors`.
    pub rcvbuf_errors: u64,
    /// The sockets that dropped: local address, drops.
    pub dropped_at: Vec<(String, u64)>,
}

impl UdpCounters {
    /// Now (`None` where /proc does not say).
    pub fn read() -> Option<Self> {
        let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").ok()?;
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
        let names: Vec<&str> = udp.next()?.split_whitespace().skip(1).collect();
        let values: Vec<&str> = udp.next()?.split_whitespace().skip(1).collect();
        let get = |k: &str| {
            names
                .iter()
                .position(|n| *n == k)
                .and_then(|i| values.get(i))
                .and_then(|v| v.parse().ok())
        };
        let mut dropped_at = Vec::new();
        // Local address in hex, little-endian, and the drops in the last column.
        if let Ok(t) = std::fs::read_to_string("/proc/thread-self/net/udp") {
            for l in t.lines().skip(1) {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (Some(local), Some(drops)) = (f.get(1), f.last()) else {
                    continue;
                };
                if let Ok(d @ 1..) = drops.parse::<u64>() {
                    dropped_at.push((hex_addr(local), d));
                }
            }
        }
        Some(Self {
            in_datagrams: get("InDatagrams")?,
            rcvbuf_errors: get("RcvbufErrors")?,
            dropped_at,
        })
    }
}

impl std::fmt::Display for UdpCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "host UDP (Kea and the relay): {} datagrams in, {} dropped for a full receive buffer",
            self.in_datagrams, self.rcvbuf_errors
        )?;
        for (i, (a, d)) in self.dropped_at.iter().enumerate() {
            write!(f, "{} {a} ({d})", if i == 0 { ", at" } else { "," })?;
        }
        Ok(())
    }
}

/// `0100007F:0043` (`/proc/net/udp`'s little-endian address, port) as `127.0.0.1:67`.
fn hex_addr(s: &str) -> String {
    let Some((a, p)) = s.split_once(':') else {
        return s.to_string();
    };
    match (u32::from_str_radix(a, 16), u16::from_str_radix(p, 16)) {
        (Ok(a), Ok(p)) => format!("{}:{p}", Ipv4Addr::from(a.swap_bytes())),
        _ => s.to_string(),
    }
}
