//! The boot thread on the host double of the kernel, against a real tgtd, starting from tables
//! real iPXE wrote (`tests/fixtures/ibft`).
//!
//! Each test builds two hosts on one wire in network namespaces of its own
//! (`isboot_tests::lab`): the node, whose veth carries the table's MAC (52:54:00:9a:bc:de) and no
//! address, and the target's host (10.0.2.2, as in the tables) running tgtd with a FreeBSD root
//! disk (GPT, UFS2 made by makefs) as LUN 1. The boot thread must find the interface, add the
//! address, log in, get the disk attached by the CAM double, and release the root hold; the
//! test then finds root on the disk through the SIM as mountroot would. Needs root, tgt,
//! makefs and gdisk (`make test` installs them).
#![cfg(feature = "std")]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use ibft::{ChapType, Ibft};
use isboot::boot::NativeError;
use isboot::boot::{self, BootError, BootTunables, Served};
use isboot::cam::DataDir;
use isboot::host_boot::{HostBoot, HostDisk, HostHandle, NativeOpener};
use isboot_tests::lab::{self, Peer};
use isboot_tests::rootfs;
use isboot_tests::target::{TargetOpts, Tgtd};
use iscsi_initiator::time::Duration;

/// The NIC of every fixture table.
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x9a, 0xbc, 0xde];
const NODE_IF: &str = "isb0";

fn table(name: &str) -> Ibft {
    ibft::parse(&isboot_tests::fixtures::ibft(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .table
}

/// The target for a table: its name, LUN 1 holding the root disk, on 10.0.2.2:3260.
fn target_opts(t: &Ibft) -> TargetOpts {
    let tgt = t.boot_target().expect("a boot target");
    TargetOpts {
        portal: Some(SocketAddr::from((Ipv4Addr::new(10, 0, 2, 2), 3260))),
        iqn: tgt.name.clone().expect("a target name"),
        ..TargetOpts::bytes(rootfs::test_image().bytes.clone())
    }
}

fn quick() -> BootTunables {
    BootTunables {
        wait_interface: Duration::from_secs(10),
        wait_login: Duration::from_secs(20),
        wait_disk: Duration::from_secs(30),
        recovery: Duration::ZERO,
        ..BootTunables::default()
    }
}

struct Booting {
    handle: HostHandle,
    thread: Option<JoinHandle<Result<Served, BootError>>>,
}

impl Booting {
    fn start(table: Ibft, t: BootTunables) -> Booting {
        Self::start_with(table, t, None)
    }

    fn start_with(table: Ibft, t: BootTunables, native: Option<NativeOpener>) -> Booting {
        let (mut env, handle) = HostBoot::new(true).expect("the host kernel double");
        if let Some(n) = native {
            env.set_native(n);
        }
        let thread = std::thread::Builder::new()
            .name("isboot".into())
            .spawn(move || boot::run(&mut env, &table, &t))
            .expect("the boot thread");
        Booting {
            handle,
            thread: Some(thread),
        }
    }

    /// Waits for the hold to be released (the disk attached, or a failure).
    fn wait_hold(&self, limit: StdDuration) -> bool {
        let end = StdInstant::now() + limit;
        while StdInstant::now() < end {
            if self.handle.hold_released() {
                return true;
            }
            std::thread::sleep(StdDuration::from_millis(20));
        }
        false
    }

    fn finish(mut self) -> Result<Served, BootError> {
        self.handle.stop();
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("the boot thread did not panic")
    }

    fn console(&self) -> String {
        self.handle.console().join("\n")
    }
}

impl Drop for Booting {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.stop();
            let _ = t.join();
        }
    }
}

/// Runs `f` with the two hosts wired (`peer_addrs` on the target side) and, unless `target`
/// is `None`, tgtd serving there.
fn with_lab<T: Send + 'static>(
    peer_addrs: &'static [&'static str],
    peer_local: &'static [&'static str],
    target: Option<TargetOpts>,
    f: impl FnOnce(&Peer, Option<Arc<Mutex<Tgtd>>>) -> T + Send + 'static,
) -> T {
    lab::with_target_host(NODE_IF, MAC, peer_addrs, peer_local, target, f)
}

fn node_addresses() -> String {
    lab::ip(&["-o", "-4", "addr", "show", "dev", NODE_IF]).unwrap_or_default()
}

/// Finds root through the SIM as mountroot does.
fn mount(disk: &HostDisk) -> rootfs::Mounted {
    let (_, bs) = disk.capacity().expect("the scan read the capacity");
    rootfs::mountroot_blocks(
        &mut |lba, n| disk.read(lba, n, bs).map_err(|e| e.to_string()),
        bs,
    )
    .unwrap_or_else(|e| panic!("mountroot: {e}"))
}

#[test]
fn boots_from_an_ipxe_table_to_a_mountable_root_on_da0p2() {
    let t = table("nochap");
    let opts = target_opts(&t);
    with_lab(&["10.0.2.2/24"], &[], Some(opts), move |_, _tgtd| {
        let started = StdInstant::now();
        let b = Booting::start(t, quick());
        assert!(b.wait_hold(StdDuration::from_secs(60)), "{}", b.console());
        // Every stage reached, in order, within the time the boot took.
        let ms = stage_times(&b);
        let wall = started.elapsed().as_millis() as u32;
        assert!(
            ms.iter().all(|v| v.is_some_and(|v| v <= wall)),
            "{ms:?} in {wall} ms"
        );
        assert!(ms.windows(2).all(|w| w[0] <= w[1]), "not in order: {ms:?}");
        // The hold goes as soon as the disk is there (not after a serving turn of 500 ms).
        let (disk, hold) = (ms[3].unwrap_or(0), ms[4].unwrap_or(0));
        assert!(hold - disk < 250, "the hold waited after the disk: {ms:?}");
        let console = b.console();
        isboot_tests::assert_in_order(
            &console,
            &[
                "isboot: boot interface isb0 (MAC 52:54:00:9a:bc:de, PCI 0:3:0)",
                "isboot: isb0: added 10.0.2.15/24 from the iBFT",
                "isboot: target 10.0.2.2 is on-link on isb0",
                "isboot: logging in to iqn.2026-11.org.example:nochap at 10.0.2.2:3260 on isb0 as \
                 iqn.2026-11.org.example:initiator.nochap (no authentication)",
                "isboot: logged in to iqn.2026-11.org.example:nochap (no authentication;",
                "isboot: waiting for CAM to attach LUN 1",
                "isboot: LUN 1 of iqn.2026-11.org.example:nochap at 10.0.2.2:3260 is da0; releasing the \
                 root mount hold",
            ],
        );
        assert!(
            node_addresses().contains("10.0.2.15/24"),
            "{}",
            node_addresses()
        );
        let st = b.handle.state();
        assert_eq!(st.device, "da0");
        assert_eq!(st.nic, NODE_IF);
        assert_eq!(st.session_state, "logged in");
        assert_eq!(
            st.target,
            "iqn.2026-11.org.example:nochap at 10.0.2.2:3260 LUN 1"
        );

        // What da(4) and mountroot do with it.
        let disk = &b.handle.disk;
        let (blocks, bs) = disk.capacity().unwrap();
        assert_eq!(
            (blocks * u64::from(bs)),
            rootfs::test_image().bytes.len() as u64
        );
        let (inq, openings) = disk.path_inq().unwrap();
        assert_eq!((inq.max_target, inq.max_lun), (0, 0));
        assert!(openings >= 1 && inq.maxio >= 4096, "{inq:?} {openings}");
        let m = mount(disk);
        assert_eq!(m.partition, 2, "root is da0p2");
        assert_eq!(m.entries, rootfs::test_image().root_entries);
        println!("mountroot: da0p2 ufs2 / = {}", m.entries.join(","));

        // READ(10) and READ(16) agree with the image; WRITE(10)/(16) land; the cache syncs.
        let r10 = disk.read10(2048, 8, bs).unwrap();
        assert_eq!(
            r10,
            rootfs::test_image().bytes[2048 * 512..2048 * 512 + 8 * 512]
        );
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        let last = blocks - 8;
        disk.write(last, &pattern, bs).unwrap();
        assert_eq!(disk.read(last, 8, bs).unwrap(), pattern);
        disk.write10((last - 8) as u32, &pattern, bs).unwrap();
        assert_eq!(disk.read10((last - 8) as u32, 8, bs).unwrap(), pattern);
        disk.synchronize_cache().unwrap();
        // Another LUN, another target: not there.
        let served = b.finish().expect("served and logged out");
        assert_eq!(served.state.session_state, "logged out");
    });
}

#[test]
fn mutual_chap_from_the_table() {
    let t = table("mutual");
    let opts = target_opts(&t).with_chap(
        "node-chap",
        "Kx9-chap-Secret",
        Some(("array-chap", "Tz7-target-Secret")),
    );
    with_lab(&["10.0.2.2/24"], &[], Some(opts), move |_, _| {
        let b = Booting::start(t, quick());
        assert!(b.wait_hold(StdDuration::from_secs(60)));
        let c = b.console();
        isboot_tests::assert_in_order(
            &c,
            &[
                "(mutual CHAP)",
                "isboot: logged in to iqn.2026-11.org.example:mutual (mutual CHAP;",
                "is da0; releasing the root mount hold",
            ],
        );
        assert!(!c.contains("Kx9-chap-Secret") && !c.contains("Tz7-target-Secret"));
        let m = mount(&b.handle.disk);
        assert_eq!(m.entries, rootfs::test_image().root_entries);
        b.finish().unwrap();
    });
}

/// The mutual table made one-way: CHAP type 1, no reverse credentials.
fn one_way(mut t: Ibft) -> Ibft {
    let tgt = &mut t.targets[0];
    tgt.chap_type = ChapType::Chap;
    tgt.reverse_chap_name = None;
    tgt.reverse_chap_secret = None;
    ibft::parse(&ibft::build(&t).unwrap()).unwrap().table
}

#[test]
fn one_way_chap() {
    let t = one_way(table("mutual"));
    let opts = target_opts(&t).with_chap("node-chap", "Kx9-chap-Secret", None);
    with_lab(&["10.0.2.2/24"], &[], Some(opts), move |_, _| {
        let b = Booting::start(t, quick());
        assert!(b.wait_hold(StdDuration::from_secs(60)));
        assert!(b
            .console()
            .contains("logged in to iqn.2026-11.org.example:mutual (CHAP;"));
        assert_eq!(b.handle.state().device, "da0");
        b.finish().unwrap();
    });
}

fn expect_failure(b: Booting, limit: StdDuration) -> (BootError, String) {
    let (e, console, _) = expect_failure_state(b, limit);
    (e, console)
}

/// [`expect_failure`], and the state the thread published last.
fn expect_failure_state(b: Booting, limit: StdDuration) -> (BootError, String, boot::BootState) {
    let start = StdInstant::now();
    assert!(
        b.wait_hold(limit),
        "the hold was never released:\n{}",
        b.console()
    );
    let waited = start.elapsed();
    let console = b.console();
    let handle = b.handle.clone();
    let e = b.finish().expect_err("the boot must fail");
    assert!(waited <= limit, "took {waited:?}");
    assert!(
        console.contains("isboot: giving up; releasing the root mount hold"),
        "{console}"
    );
    (e, console, handle.state())
}

/// The stages' times as the thread published them, once the hold's release is among them.
fn stage_times(b: &Booting) -> [Option<u32>; 5] {
    let end = StdInstant::now() + StdDuration::from_secs(5);
    loop {
        let t = b.handle.state().timing;
        if t.hold_released.is_some() || StdInstant::now() >= end {
            return t.stages().map(|(_, ms)| ms);
        }
        std::thread::sleep(StdDuration::from_millis(10));
    }
}

#[test]
fn a_wrong_chap_secret_is_refused_with_the_reason_and_the_hold_released() {
    let t = one_way(table("mutual"));
    let opts = target_opts(&t).with_chap("node-chap", "not-the-secret-1", None);
    with_lab(&["10.0.2.2/24"], &[], Some(opts), move |_, _| {
        let (e, c) = expect_failure(Booting::start(t, quick()), StdDuration::from_secs(40));
        assert!(matches!(e, BootError::Login { .. }), "{e:?}");
        assert!(
            c.contains("isboot: 10.0.2.2:3260: login refused: ") && c.contains("authentication"),
            "{c}"
        );
        assert!(!c.contains("Kx9-chap-Secret"));
    });
}

#[test]
fn an_impostor_target_under_mutual_chap_is_refused() {
    let t = table("mutual");
    // The target knows our secret but proves itself with the wrong one.
    let opts = target_opts(&t).with_chap(
        "node-chap",
        "Kx9-chap-Secret",
        Some(("array-chap", "an-impostor-secret")),
    );
    with_lab(&["10.0.2.2/24"], &[], Some(opts), move |_, _| {
        let (e, c) = expect_failure(Booting::start(t, quick()), StdDuration::from_secs(40));
        assert!(matches!(e, BootError::Login { .. }), "{e:?}");
        assert!(c.contains("login refused"), "{c}");
    });
}

#[test]
fn the_target_down_at_load_is_a_bounded_wait_with_a_line() {
    let t = table("nochap");
    with_lab(&["10.0.2.2/24"], &[], None, move |_, _| {
        let mut tun = quick();
        tun.wait_login = Duration::from_secs(3);
        let (e, c, st) = expect_failure_state(Booting::start(t, tun), StdDuration::from_secs(15));
        assert!(matches!(e, BootError::Login { .. }), "{e:?}");
        assert!(
            c.contains("isboot: 10.0.2.2:3260: login refused: target unreachable"),
            "{c}"
        );
        // The stages after the address were never reached; the hold went after the 3 s wait.
        let tm = st.timing;
        let address = tm.address.expect("the address stage");
        assert!(tm.interface.is_some_and(|i| i <= address), "{tm:?}");
        assert_eq!((tm.login, tm.disk), (None, None), "{tm:?}");
        assert!(
            tm.hold_released.is_some_and(|h| h >= address + 3000),
            "{tm:?}"
        );
    });
}

/// A native driver over the device model: a switch with the subnet manager and a dual-port
/// ConnectX (node GUID 0x0002c90300005670) with only port 2 cabled.
fn simulated_hca(seen: Arc<Mutex<Vec<ibft::PciAddress>>>) -> NativeOpener {
    Box::new(move |pci| {
        seen.lock().unwrap().push(pci);
        let sim = hca_sim::Sim::new(hca_sim::SimConfig {
            seed: 3,
            ..hca_sim::SimConfig::default()
        });
        let sw = sim.add_switch();
        sim.attach_sm(sw);
        let node = sim.add_hca(hca_sim::HcaSpec::connectx(0x0002_c903_0000_5670, 2));
        sim.connect(node, 2, sw);
        hca::probe(sim.hal(node), hca::hermon::Config::default())
            .map_err(|error| NativeError::Driver { pci, error })
    })
}

#[test]
fn with_no_interface_the_native_hca_is_opened_its_link_brought_up_and_closed() {
    let t = table("nochap");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let opener = simulated_hca(seen.clone());
    isboot_tests::netns::run(move || {
        let mut tun = quick();
        tun.wait_interface = Duration::from_secs(2);
        let (e, c) = expect_failure(
            Booting::start_with(t, tun, Some(opener)),
            StdDuration::from_secs(20),
        );
        assert!(matches!(e, BootError::NoInterface { .. }), "{e:?}");
        isboot_tests::assert_in_order(
            &c,
            &[
                "isboot: pci0:0:3:0: HCA up: firmware 2.9.1200, 2 port(s)",
                "isboot: pci0:0:3:0: port 1: DOWN, LID 0x0, port GUID 0002c90300005671",
                "isboot: pci0:0:3:0: port 2: ACTIVE, LID 0x",
                "port GUID 0002c90300005672",
                // The table's MAC is no port's: port 1 first, bounded by wait_interface.
                "isboot: IPoIB: port 1 stays DOWN",
                "isboot: IPoIB: port 2 up: LID 0x",
                // The host has no ifnet for the module's own link: it is shut down, and the
                // HCA closed.
                "isboot: IPoIB: port 2: left the broadcast group, device closed",
                "isboot: native IPoIB interface: cannot attach it: no native IPoIB interface \
                 on this platform",
                "isboot: waiting up to 2 s for the interface with MAC 52:54:00:9a:bc:de",
                "isboot: no interface with MAC 52:54:00:9a:bc:de appeared within 2 s",
            ],
        );
    })
    .unwrap();
    // Once, with the table's PCI function (0:3:0).
    assert_eq!(
        *seen.lock().unwrap(),
        vec![ibft::PciAddress {
            bus: 0,
            device: 3,
            function: 0
        }]
    );
}

#[test]
fn a_refused_native_hca_is_one_line_and_the_wait_goes_on() {
    let t = table("nochap");
    isboot_tests::netns::run(move || {
        let mut tun = quick();
        tun.wait_interface = Duration::from_secs(1);
        let owned: NativeOpener = Box::new(|pci| {
            Err(NativeError::Owned {
                pci,
                owner: "mlx4_core0".into(),
            })
        });
        let (e, c) = expect_failure(
            Booting::start_with(t, tun, Some(owned)),
            StdDuration::from_secs(10),
        );
        assert!(matches!(e, BootError::NoInterface { .. }), "{e:?}");
        isboot_tests::assert_in_order(
            &c,
            &[
                "isboot: pci0:0:3:0 is owned by mlx4_core0; using the existing interface path only",
                "isboot: waiting up to 1 s for the interface with MAC 52:54:00:9a:bc:de",
            ],
        );
        assert!(!c.contains("HCA up"), "{c}");
    })
    .unwrap();
}

#[test]
fn a_missing_interface_is_a_bounded_wait_naming_the_mac() {
    let t = table("nochap");
    isboot_tests::netns::run(move || {
        let mut tun = quick();
        tun.wait_interface = Duration::from_secs(2);
        let (e, c) = expect_failure(Booting::start(t, tun), StdDuration::from_secs(10));
        assert!(matches!(e, BootError::NoInterface { .. }), "{e:?}");
        isboot_tests::assert_in_order(
            &c,
            &[
                "isboot: waiting up to 2 s for the interface with MAC 52:54:00:9a:bc:de",
                "isboot: no interface with MAC 52:54:00:9a:bc:de appeared within 2 s \
                 (net.isboot.wait_interface)",
            ],
        );
    })
    .unwrap();
}

#[test]
fn a_vlan_in_the_table_is_refused_with_a_line() {
    let mut t = table("nochap");
    t.nics[0].vlan = 12;
    let t = ibft::parse(&ibft::build(&t).unwrap()).unwrap().table;
    with_lab(&["10.0.2.2/24"], &[], None, move |_, _| {
        let (e, c) = expect_failure(Booting::start(t, quick()), StdDuration::from_secs(20));
        assert!(matches!(e, BootError::Vlan { vlan: 12, .. }), "{e:?}");
        assert!(c.contains("asks for VLAN 12 on isb0"), "{c}");
    });
}

#[test]
fn a_target_behind_the_gateway_gets_a_host_route_and_existing_addresses_stay() {
    // The node is 10.0.3.15/24 with gateway 10.0.3.1; the target 10.0.2.2 sits behind it.
    let mut t = table("nochap");
    t.nics[0].ip_address = Some("10.0.3.15".parse().unwrap());
    t.nics[0].gateway = Some("10.0.3.1".parse().unwrap());
    let t = ibft::parse(&ibft::build(&t).unwrap()).unwrap().table;
    let opts = target_opts(&t);
    with_lab(
        &["10.0.3.1/24"],
        &["10.0.2.2/32"],
        Some(opts),
        move |_, _| {
            // An address the admin put there: the module must keep it.
            lab::ip(&["addr", "add", "198.51.100.7/24", "dev", NODE_IF]).unwrap();
            let b = Booting::start(t, quick());
            assert!(b.wait_hold(StdDuration::from_secs(60)), "{}", b.console());
            isboot_tests::assert_in_order(
                &b.console(),
                &[
                    "isboot: isb0: added 10.0.3.15/24 from the iBFT",
                    "isboot: added a host route to the target 10.0.2.2 via 10.0.3.1",
                    "isboot: added a default route via 10.0.3.1 (there was none)",
                    "is da0; releasing the root mount hold",
                ],
            );
            let a = node_addresses();
            assert!(
                a.contains("198.51.100.7/24") && a.contains("10.0.3.15/24"),
                "{a}"
            );
            let routes = lab::ip(&["-4", "route", "show"]).unwrap();
            assert!(
                routes.contains("10.0.2.2 via 10.0.3.1 dev isb0"),
                "{routes}"
            );
            assert!(routes.contains("default via 10.0.3.1 dev isb0"), "{routes}");
            assert_eq!(
                mount(&b.handle.disk).entries,
                rootfs::test_image().root_entries
            );
            b.finish().unwrap();
        },
    );
}

/// Writes and reads back blocks from several threads at once (so that commands are in flight
/// whenever the target dies) while the target is killed and restarted `restarts` times; every
/// block read back must hold what was last written there.
fn restarts_under_write_and_verify(restarts: u32) {
    let t = table("nochap");
    let opts = target_opts(&t);
    with_lab(&["10.0.2.2/24"], &[], Some(opts), move |peer, tgtd| {
        let tgtd = tgtd.unwrap();
        let b = Booting::start(t, quick());
        assert!(b.wait_hold(StdDuration::from_secs(60)), "{}", b.console());
        let disk = b.handle.disk.clone();
        let (blocks, bs) = disk.capacity().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let verified = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..4u64)
            .map(|w| {
                let (disk, stop, verified) = (disk.clone(), stop.clone(), verified.clone());
                std::thread::spawn(move || -> Result<(), String> {
                    // Each worker owns 64 blocks near the end of the disk.
                    let base = blocks - 512 + w * 64;
                    let mut round = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        for i in 0..8u64 {
                            let lba = base + i * 8;
                            let data: Vec<u8> = (0..8 * bs)
                                .map(|j| (j as u64 ^ lba ^ (u64::from(round) * 31)) as u8)
                                .collect();
                            disk.write(lba, &data, bs)
                                .map_err(|e| format!("write {lba}: {e}"))?;
                            let back = disk
                                .read(lba, 8, bs)
                                .map_err(|e| format!("read {lba}: {e}"))?;
                            if back != data {
                                return Err(format!("block {lba} round {round}: mismatch"));
                            }
                            verified.fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                        round += 1;
                    }
                    Ok(())
                })
            })
            .collect();
        for i in 0..restarts {
            std::thread::sleep(StdDuration::from_millis(300));
            let t2 = tgtd.clone();
            peer.run(move || t2.lock().unwrap().kill());
            std::thread::sleep(StdDuration::from_millis(200));
            let t2 = tgtd.clone();
            peer.run(move || t2.lock().unwrap().restart());
            // Progress after each restart: the session came back.
            let before = verified.load(Ordering::Relaxed);
            let end = StdInstant::now() + StdDuration::from_secs(60);
            while verified.load(Ordering::Relaxed) == before {
                assert!(
                    StdInstant::now() < end,
                    "no progress after restart {i}:\n{}",
                    b.console()
                );
                std::thread::sleep(StdDuration::from_millis(20));
            }
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("{e}\n{}", b.console()));
        }
        let st = b.handle.state();
        let (freezes, requeues) = b.handle.disk.freezes_and_requeues();
        println!(
            "{restarts} restarts: {} bytes written and verified, {} reconnects, {freezes} \
             queue freezes, {requeues} requeued CCBs",
            verified.load(Ordering::Relaxed),
            st.reconnects
        );
        assert!(st.reconnects >= restarts / 2, "{st:?}\n{}", b.console());
        assert!(freezes >= 1);
        assert!(b.console().contains("reconnecting"));
        // The disk is still the disk.
        assert_eq!(
            mount(&b.handle.disk).entries,
            rootfs::test_image().root_entries
        );
        b.finish().unwrap();
    });
}

#[test]
fn the_target_restarted_20_times_under_write_and_verify_loses_nothing() {
    restarts_under_write_and_verify(20);
}

/// The longer run, 100 restarts (about 4 minutes): `cargo nextest run -p isboot --all-features
/// --test boot --run-ignored only`.
#[test]
#[ignore = "the long run: about 4 minutes"]
fn the_target_restarted_100_times() {
    restarts_under_write_and_verify(100);
}

#[test]
fn another_lun_or_target_is_not_there_and_report_luns_shows_one() {
    let t = table("nochap");
    let opts = target_opts(&t);
    with_lab(&["10.0.2.2/24"], &[], Some(opts), move |_, _| {
        let b = Booting::start(t, quick());
        assert!(b.wait_hold(StdDuration::from_secs(60)));
        let disk = &b.handle.disk;
        // REPORT LUNS answered by the SIM: LUN 0 alone.
        let mut cdb = [0u8; 12];
        cdb[0] = 0xa0;
        cdb[9] = 64;
        let d = disk.command(&cdb, DataDir::In, 64, Vec::new()).unwrap();
        assert_eq!(&d.data[..4], &[0, 0, 0, 8]);
        assert_eq!(d.data.len(), 16);
        // A bad CDB is invalid, not sent.
        let e = disk.command(&[], DataDir::None, 0, Vec::new()).unwrap_err();
        assert_eq!(e.status, isboot::cam::CamStatus::REQ_INVALID);
        // LUN RESET through XPT_RESET_DEV completes.
        assert_eq!(
            disk.task_management(None).unwrap(),
            isboot::cam::CamStatus::REQ_CMP
        );
        // And I/O goes on after it (a UNIT ATTENTION is retried by the session).
        disk.test_unit_ready().unwrap();
        b.finish().unwrap();
    });
}
