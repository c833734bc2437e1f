//! The real `isboot.ko` booting through its own HCA driver and IPoIB interface: no interface
//! of the kernel's is the iBFT NIC, so the module opens the simulated ConnectX the table names
//! (`kldrun --hca`), brings its IPoIB link up (`src/native.rs`), attaches `isbib0` over it
//! (`src/freebsd_ifnet.rs`; in kldrun a Linux TUN), addresses it and logs in over kernel
//! sockets to the fabric's gateway, which forwards the iSCSI connection to a real tgtd on
//! 127.0.0.1:3260 — all inside a fresh network namespace. Then kldrun's mountroot finds the
//! FreeBSD root on the disk, and unload detaches the interface and closes the HCA, leaving
//! nothing behind. The faults of issue 14 follow: the port carrying the session dies under
//! I/O, packet loss, a partition the port lacks, a LID change.
//!
//! Linux only; needs root, tgt, makefs and gdisk (`make test` installs them).

mod common;

use common::{isboot_ko, kldrun, root_entries, scratch, Run};
use ibft::identity::{mac_for, MacRule, PortGuid};
use isboot_tests::rootfs;
use isboot_tests::target::{TargetOpts, Tgtd};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The node GUID of the simulated HCA; port N's GUID is GUID + N.
const GUID: u64 = 0x0002_c903_0000_abc0;
/// The gateway's fabric address (kldrun's `--hca` fabric), which forwards 3260 to tgtd.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 15);

fn port_mac(port: u64) -> ibft::MacAddr {
    mac_for(
        MacRule::GuidMask,
        PortGuid((GUID + port).to_be_bytes()),
        None,
    )
    .expect("the GUID mask rule always applies")
}

/// The `nochap` table re-addressed for the fabric: its NIC at PCI 81:00.0 with the MAC boot
/// ROMs derive from `port`'s GUID, 10.77.0.15/24 via the gateway, the target at the gateway.
fn table(name: &str, port: u64) -> (PathBuf, String) {
    let mut t = ibft::parse(&isboot_tests::fixtures::ibft("nochap"))
        .expect("the nochap fixture")
        .table;
    t.nics[0].pci = ibft::PciAddress {
        bus: 0x81,
        device: 0,
        function: 0,
    };
    t.nics[0].mac = port_mac(port);
    t.nics[0].ip_address = Some(IpAddr::V4(ADDRESS));
    t.nics[0].prefix_length = 24;
    t.nics[0].gateway = Some(IpAddr::V4(GATEWAY));
    let iqn = {
        let tgt = t
            .targets
            .iter_mut()
            .find(|x| x.ip_address.is_some())
            .expect("a target");
        tgt.ip_address = Some(IpAddr::V4(GATEWAY));
        tgt.port = 3260;
        tgt.name.clone().expect("a target name")
    };
    let f = scratch(name).join("ibft.bin");
    std::fs::write(&f, ibft::build(&t).expect("build")).expect("write the table");
    (f, iqn)
}

/// kldrun in a fresh namespace with tgtd serving the root image as LUN 1 on 127.0.0.1:3260.
fn boot(name: &str, port: u64, hca: &str, extra: &[&str]) -> Run {
    let _ = isboot_ko();
    let _ = rootfs::test_image();
    let (table, iqn) = table(name, port);
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend([
        "--preload".to_string(),
        format!("ibft_table={}", table.display()),
        "--hca".into(),
        format!("{hca},guid={GUID:x},forward=3260"),
        "--timeout".into(),
        "180".into(),
        isboot_ko().display().to_string(),
    ]);
    let r = isboot_tests::netns::run(move || {
        let _tgtd = Tgtd::start(TargetOpts {
            portal: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 3260))),
            iqn,
            ..TargetOpts::bytes(rootfs::test_image().bytes.clone())
        });
        kldrun(&args)
    })
    .expect("a network namespace (the test needs root)");
    // The transcript (cargo test -- --nocapture).
    eprintln!("{}", r.all());
    r
}

fn no_panic_and_clean(r: &Run) {
    assert!(
        !r.stderr.contains("page fault") && !r.stderr.contains("panic"),
        "{}",
        r.all()
    );
    assert!(r.clean(), "{}", r.all());
}

#[test]
fn the_module_boots_through_its_own_hca_and_ipoib_interface_on_port_2() {
    let r = boot(
        "native-port2",
        2,
        "81:00.0,port1=down",
        &["--mountroot", "--sysctl", "net.isboot"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    isboot_tests::assert_in_order(
        &r.stdout,
        &[
            "isboot: pci0:129:0:0: HCA up: firmware 2.9.1200, 2 port(s)",
            "isboot: pci0:129:0:0: port 1: DOWN, LID 0x0",
            "isboot: pci0:129:0:0: port 2: ACTIVE, LID 0x",
            &format!(
                "isboot: pci0:129:0:0: the iBFT NIC (MAC {}) is port 2; trying it first",
                port_mac(2)
            ),
            "isboot: IPoIB: port 2 up: LID 0x",
            "isbib0: link state changed to UP",
            "isbib0: IPoIB interface on port 2, MTU 2044, gid fe80:",
            &format!("isboot: boot interface isbib0 (MAC {}", port_mac(2)),
            "isboot: isbib0: added 10.77.0.15/24 from the iBFT",
            "isboot: target 10.77.0.1 is on-link on isbib0",
            "isboot: logged in to iqn.2026-11.org.example:nochap (no authentication;",
            "da0 at isboot0 bus 0 scbus0 target 0 lun 0",
            "isboot: LUN 1 of iqn.2026-11.org.example:nochap at 10.77.0.1:3260 is da0; releasing \
             the root mount hold",
            &format!("mountroot: da0p2 ufs2 / = {}", root_entries()),
            "net.isboot.session_state: logged in",
            "net.isboot.nic: isbib0",
            "isboot: logged out",
            "isboot: IPoIB: port 2: left the broadcast group, device closed",
            "isbib0: detached",
        ],
    );
    // Port 1 (no cable) was never waited for: the NIC named port 2.
    assert!(!r.stdout.contains("port 1: waiting up to"), "{}", r.all());
    // The interface's traffic went through kldrun's TUN both ways.
    assert!(r.stderr.contains("kldrun: isbib0:"), "{}", r.all());
    no_panic_and_clean(&r);
}

/// The longest wait for one I/O of the verify workload, from its line.
fn max_io_gap_ms(r: &Run) -> u64 {
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix("verify: ")?.split("max_io_gap_ms=").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no max_io_gap_ms in the verify line\n{}", r.all()))
}

#[test]
fn the_port_carrying_the_session_dies_under_io_and_nothing_is_lost() {
    // Both ports cabled; the NIC is port 1, so the session runs there until its cable is
    // pulled 1 s into the workload: the link moves to port 2 (same subnet), re-joins the
    // broadcast group, announces its address, and the session goes on.
    let r = boot(
        "native-cut",
        1,
        "81:00.0,cut=1@1",
        &["--mountroot", "--workload", "verify:8388608"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    isboot_tests::assert_in_order(
        &r.stdout,
        &[
            "isboot: IPoIB: port 1 up: LID 0x",
            "isbib0: IPoIB interface on port 1, MTU 2044",
            "isboot: boot interface isbib0",
            "isboot: logged in to iqn.2026-11.org.example:nochap",
            &format!("mountroot: da0p2 ufs2 / = {}", root_entries()),
            "isbib0: port 1 down, moved to port 2 (gid fe80:0000:0000:0000:0002:c903:0000:abc2)",
            "verify: 8388608 bytes, 0 mismatches, max_io_gap_ms=",
            "isboot: logged out",
            "isboot: IPoIB: port 2: left the broadcast group, device closed",
        ],
    );
    assert!(
        r.stderr
            .contains("kldrun: hca: port 1's cable is pulled in 1.0 s"),
        "{}",
        r.all()
    );
    let gap = max_io_gap_ms(&r);
    eprintln!("the disk paused for at most {gap} ms while the link moved to port 2");
    // The move is bounded: the failover join (1.75 s at most) and the gratuitous ARP, and any
    // reconnect of the session after it, well within the workload.
    assert!(gap < 30_000, "paused {gap} ms\n{}", r.all());
    no_panic_and_clean(&r);
}

#[test]
fn two_percent_packet_loss_still_boots() {
    let r = boot(
        "native-loss",
        2,
        "81:00.0,port1=down,loss=2",
        &["--mountroot", "--workload", "verify:1048576"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    isboot_tests::assert_in_order(
        &r.stdout,
        &[
            "isboot: IPoIB: port 2 up: LID 0x",
            "isboot: logged in to iqn.2026-11.org.example:nochap",
            &format!("mountroot: da0p2 ufs2 / = {}", root_entries()),
            "verify: 1048576 bytes, 0 mismatches, max_io_gap_ms=",
        ],
    );
    no_panic_and_clean(&r);
}

#[test]
fn a_partition_the_port_lacks_is_a_clear_line_and_the_hold_released() {
    let r = boot(
        "native-pkey",
        2,
        "81:00.0,port1=down",
        &[
            "--tunable",
            "net.isboot.pkey=0x8001",
            "--tunable",
            "net.isboot.wait_interface=3",
            "--mountroot",
        ],
    );
    // No disk: mountroot fails (exit 1), but nothing is left behind.
    assert_eq!(r.code, 1, "{}", r.all());
    isboot_tests::assert_in_order(
        &r.stdout,
        &[
            "isboot: IPoIB: port 2: waiting up to ",
            "for ACTIVE, P_Key 0x8001",
            "isboot: IPoIB: port 2: P_Key 0x8001 is not in the port's P_Key table (the subnet \
             manager has not made this port a member of that partition): port skipped",
            "isboot: IPoIB: no port came up: port 2: P_Key 0x8001 is not in the port's P_Key \
             table",
            "isboot: giving up; releasing the root mount hold",
            "mountroot: no disk",
        ],
    );
    assert!(!r.stdout.contains("isbib0"), "{}", r.all());
    assert!(
        r.stderr.contains("kldrun: mountroot: no disk"),
        "{}",
        r.all()
    );
    no_panic_and_clean(&r);
}

#[test]
fn a_lid_change_under_io_re_resolves_the_paths_and_loses_nothing() {
    let r = boot(
        "native-lid",
        2,
        "81:00.0,port1=down,lid=2:0x20@1",
        &["--mountroot", "--workload", "verify:4194304"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    isboot_tests::assert_in_order(
        &r.stdout,
        &[
            "isboot: IPoIB: port 2 up: LID 0x",
            &format!("mountroot: da0p2 ufs2 / = {}", root_entries()),
            "isbib0: port 2 LID changed to 0x20, paths re-resolved",
            "verify: 4194304 bytes, 0 mismatches, max_io_gap_ms=",
        ],
    );
    eprintln!(
        "the disk paused for at most {} ms across the LID change",
        max_io_gap_ms(&r)
    );
    no_panic_and_clean(&r);
}

#[test]
fn an_sm_restart_under_io_is_answered_by_a_rejoin_and_loses_nothing() {
    let r = boot(
        "native-smrestart",
        2,
        "81:00.0,port1=down,smrestart@1",
        &["--mountroot", "--workload", "verify:4194304"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("kldrun: hca: the subnet manager restarts in 1.0 s"),
        "{}",
        r.all()
    );
    isboot_tests::assert_in_order(
        &r.stdout,
        &[
            "isboot: IPoIB: port 2 up: LID 0x",
            &format!("mountroot: da0p2 ufs2 / = {}", root_entries()),
            "isboot: IPoIB: port 2: the subnet manager asked its clients to re-register (SM \
             restart): re-joined the broadcast group (MLID 0x",
            "verify: 4194304 bytes, 0 mismatches, max_io_gap_ms=",
            "isboot: IPoIB: port 2: left the broadcast group, device closed",
        ],
    );
    // OpenSM keeps its GUID-to-LID map: the LID did not move.
    assert!(!r.stdout.contains("LID changed"), "{}", r.all());
    eprintln!(
        "the disk paused for at most {} ms across the SM restart",
        max_io_gap_ms(&r)
    );
    no_panic_and_clean(&r);
}
