//! The real `isboot.ko` booting under kldrun: its boot thread on a kernel stack of its own,
//! over kernel sockets served by the Linux kernel of kldrun's namespace, logging in to a real
//! tgtd and exposing the root disk through its CAM SIM, which kldrun's CAM probes as da(4)
//! would; then kldrun's mountroot finds the FreeBSD root on it.
//!
//! Each test builds two hosts on one wire in network namespaces of their own
//! (`isboot_tests::lab`): kldrun's, whose veth carries the table's MAC (52:54:00:9a:bc:de) and
//! no address (the module must add it), and the target's (10.0.2.2/24, as in the tables)
//! running tgtd with a FreeBSD root disk (GPT, UFS2 by makefs) as LUN 1. kldrun runs as a child
//! process spawned from the namespace's thread. Linux only; needs root, tgt, makefs and gdisk
//! (`make test` installs them).

mod common;

use common::{isboot_ko, root_entries};
use isboot_tests::lab::{self, Peer};
use isboot_tests::rootfs;
use isboot_tests::target::{TargetOpts, Tgtd};
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x9a, 0xbc, 0xde];
const NODE_IF: &str = "isb0";

fn table(name: &str) -> ibft::Ibft {
    ibft::parse(&isboot_tests::fixtures::ibft(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .table
}

/// The target for a fixture: its name, LUN 1 holding the root disk, on 10.0.2.2:3260.
fn target_opts(name: &str) -> TargetOpts {
    let t = table(name);
    let tgt = t.boot_target().expect("a boot target");
    TargetOpts {
        portal: Some(SocketAddr::from((Ipv4Addr::new(10, 0, 2, 2), 3260))),
        iqn: tgt.name.clone().expect("a target name"),
        ..TargetOpts::bytes(rootfs::test_image().bytes.clone())
    }
}

/// One kldrun run, its output collected line by line as it comes.
struct Child {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Child {
    fn spawn(fixture: &str, extra: &[&str]) -> Child {
        let mut args: Vec<String> = vec![
            "--preload".into(),
            format!(
                "ibft_table={}",
                isboot_tests::fixtures::ibft_path(fixture).display()
            ),
            "--timeout".into(),
            "120".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(isboot_ko().display().to_string());
        let mut child = Command::new(env!("CARGO_BIN_EXE_kldrun"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kldrun");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let e2 = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            e2.lock().unwrap().push_str(&s);
        });
        Child {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// Waits for a console line starting with `prefix`.
    fn wait_line(&mut self, prefix: &str, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.starts_with(prefix);
                    self.stdout.push(l);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    fn finish(mut self) -> Done {
        let status = self.child.wait().expect("kldrun ends");
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(l);
        }
        // The stderr reader ends with the process.
        std::thread::sleep(Duration::from_millis(100));
        let stderr = self.stderr.lock().unwrap().clone();
        Done {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.join("\n"),
            stderr,
        }
    }
}

struct Done {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Done {
    fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn clean(&self) -> bool {
        self.stderr.contains("kldrun: leak check: clean") && !self.stderr.contains("leak:")
    }

    fn has(&self, line_start: &str) -> bool {
        self.stdout.lines().any(|l| l.starts_with(line_start))
    }
}

/// Runs `f` in kldrun's namespace with the wire up and (unless `None`) tgtd serving.
fn with_lab<T: Send + 'static>(
    target: Option<TargetOpts>,
    f: impl FnOnce(&Peer, Option<Arc<Mutex<Tgtd>>>) -> T + Send + 'static,
) -> T {
    let _ = isboot_ko(); // built outside the namespace's time budget
    let _ = rootfs::test_image();
    lab::with_target_host(NODE_IF, MAC, &["10.0.2.2/24"], &[], target, f)
}

/// The `net.isboot.timing` leaves, in the order the boot reaches them.
const STAGES: [&str; 5] = [
    "interface_ms",
    "address_ms",
    "login_ms",
    "disk_ms",
    "hold_released_ms",
];

/// The `net.isboot.timing.NAME: MS` values kldrun's `--sysctl` printed, in [`STAGES`]' order
/// (the order sysctl(8) lists them in is the kernel's, not the boot's). Fails unless each stage
/// is there exactly once.
fn stage_times(stdout: &str) -> Vec<i64> {
    let found: Vec<(&str, i64)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("net.isboot.timing."))
        .map(|l| {
            let (name, v) = l.split_once(": ").unwrap_or_else(|| panic!("{l}"));
            (name, v.parse().unwrap_or_else(|_| panic!("{l}")))
        })
        .collect();
    assert_eq!(found.len(), STAGES.len(), "{found:?}\n{stdout}");
    STAGES
        .iter()
        .map(|s| {
            found
                .iter()
                .find(|(n, _)| n == s)
                .unwrap_or_else(|| panic!("no net.isboot.timing.{s}\n{stdout}"))
                .1
        })
        .collect()
}

/// The workload's `bench: k=v ...` line and a lookup of its numeric fields by name. Fails
/// the test if the line, or a field asked for, is missing or not a number.
fn bench_line(d: &Done) -> (&str, impl Fn(&str) -> f64 + '_) {
    let line = d
        .stdout
        .lines()
        .find(|l| l.starts_with("bench: "))
        .unwrap_or_else(|| panic!("no bench line\n{}", d.all()));
    let kv = move |k: &str| -> f64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {line}"))
    };
    (line, kv)
}

/// The target dies (tgtd killed in its namespace) and is back 300 ms later.
fn bounce_target(peer: &Peer, tgtd: &Arc<Mutex<Tgtd>>) {
    let t = tgtd.clone();
    peer.run(move || t.lock().unwrap().kill());
    std::thread::sleep(Duration::from_millis(300));
    let t = tgtd.clone();
    peer.run(move || t.lock().unwrap().restart());
}

/// `kldrun --workload SPEC` on the `nochap` fixture: it must end well and leave nothing behind.
fn bench_run(spec: &str) -> Done {
    let d = Child::spawn("nochap", &["--workload", spec]).finish();
    assert_eq!(d.code, 0, "{}", d.all());
    assert!(d.clean(), "{}", d.all());
    d
}

#[test]
fn the_real_module_boots_to_a_mountable_root_on_da0p2() {
    with_lab(Some(target_opts("nochap")), |_, _tgtd| {
        let t0 = Instant::now();
        let c = Child::spawn(
            "nochap",
            &[
                "--mountroot",
                "--workload",
                "verify:1048576",
                "--sysctl",
                "net.isboot",
            ],
        );
        let d = c.finish();
        let wall_ms = t0.elapsed().as_millis() as i64;
        eprintln!("{}", d.all()); // the transcript (cargo test -- --nocapture)
        assert_eq!(d.code, 0, "{}", d.all());
        isboot_tests::assert_in_order(
            &d.stdout,
            &[
                "isboot: boot interface isb0 (MAC 52:54:00:9a:bc:de, PCI 0:3:0)",
                "isboot: isb0: added 10.0.2.15/24 from the iBFT",
                "isboot: logged in to iqn.2026-11.org.example:nochap (no authentication;",
                "da0 at isboot0 bus 0 scbus0 target 0 lun 0",
                "isboot: LUN 1 of iqn.2026-11.org.example:nochap at 10.0.2.2:3260 is da0; releasing \
                 the root mount hold",
                &format!("mountroot: da0p2 ufs2 / = {}", root_entries()),
                "verify: 1048576 bytes, 0 mismatches",
                "net.isboot.session_state: logged in",
                "net.isboot.device: da0",
            ],
        );
        // The boot thread's stages, in the order it reaches them, each within this run.
        let ms = stage_times(&d.stdout);
        assert!(
            ms.iter().all(|&v| (0..=wall_ms).contains(&v)),
            "{ms:?} in {wall_ms} ms"
        );
        assert!(ms.windows(2).all(|w| w[0] <= w[1]), "not in order: {ms:?}");
        // The login is a TCP connection and a round trip or more to tgtd: not free.
        assert!(ms[2] > ms[1], "login took no time: {ms:?}");
        // The hold goes as soon as the disk is there (not after a serving turn of 500 ms).
        assert!(
            ms[4] - ms[3] < 250,
            "the hold waited after the disk: {ms:?}"
        );
        // The module added the table's address on the Linux interface.
        let a = lab::ip(&["-o", "-4", "addr", "show", "dev", NODE_IF]).unwrap_or_default();
        assert!(a.contains("10.0.2.15/24"), "{a}");
        assert!(d.clean(), "{}", d.all());
        assert!(
            d.stderr.contains("kldrun: stack high-water: isboot "),
            "{}",
            d.all()
        );
    });
}

#[test]
fn an_existing_interface_for_the_nic_leaves_the_hca_at_its_function_untouched() {
    // Coexistence (mlx4ib/ipoib, or any driver's interface): the table's NIC is at PCI 0:3:0,
    // where kldrun puts a simulated HCA; the interface with the table's MAC is there, so the
    // module boots through it and never touches the function.
    with_lab(Some(target_opts("nochap")), |_, _tgtd| {
        let d = Child::spawn("nochap", &["--mountroot", "--hca", "00:03.0"]).finish();
        eprintln!("{}", d.all());
        assert_eq!(d.code, 0, "{}", d.all());
        isboot_tests::assert_in_order(
            &d.stdout,
            &[
                "isboot: boot interface isb0 (MAC 52:54:00:9a:bc:de, PCI 0:3:0)",
                &format!("mountroot: da0p2 ufs2 / = {}", root_entries()),
            ],
        );
        assert!(!d.stdout.contains("pci0:0:3:0"), "{}", d.all());
        assert!(
            d.stderr.contains(
                "kldrun: hca pci0:0:3:0: 0 MMIO reads, 0 MMIO writes, 0 config accesses, 0 DMA \
                 syncs"
            ),
            "{}",
            d.all()
        );
        assert!(d.clean(), "{}", d.all());
    });
}

#[test]
fn mutual_chap_from_the_table() {
    let opts = target_opts("mutual").with_chap(
        "node-chap",
        "Kx9-chap-Secret",
        Some(("array-chap", "Tz7-target-Secret")),
    );
    with_lab(Some(opts), |_, _| {
        let d = Child::spawn("mutual", &["--mountroot"]).finish();
        assert_eq!(d.code, 0, "{}", d.all());
        assert!(d.stdout.contains("(mutual CHAP"), "{}", d.all());
        assert!(d.has("mountroot: da0p2 ufs2 / = "), "{}", d.all());
        for s in ["Kx9-chap-Secret", "Tz7-target-Secret"] {
            assert!(!d.all().contains(s), "secret {s} printed\n{}", d.all());
        }
        assert!(d.clean(), "{}", d.all());
    });
}

#[test]
fn the_target_restarted_mid_workload_loses_nothing() {
    with_lab(Some(target_opts("nochap")), |peer, tgtd| {
        let tgtd = tgtd.expect("tgtd");
        let mut c = Child::spawn("nochap", &["--mountroot", "--workload", "verify:8388608"]);
        assert!(
            c.wait_line("mountroot: ", Duration::from_secs(90)),
            "no mountroot line: {:?}",
            c.stdout
        );
        bounce_target(peer, &tgtd);
        let d = c.finish();
        assert_eq!(d.code, 0, "{}", d.all());
        // The session broke under the workload and came back, and every byte read back is
        // what was written.
        isboot_tests::assert_in_order(
            &d.stdout,
            &[
                "mountroot: da0p2 ufs2 / = ",
                "isboot: connection to the target lost",
                "isboot: reconnected to the target (reconnect 1)",
                "verify: 8388608 bytes, 0 mismatches",
            ],
        );
        assert!(d.clean(), "{}", d.all());
    });
}

#[test]
fn the_target_down_at_load_is_a_bounded_wait_and_a_clear_line() {
    with_lab(None, |_, _| {
        let d = Child::spawn(
            "nochap",
            &[
                "--tunable",
                "net.isboot.wait_login=3",
                "--mountroot",
                "--sysctl",
                "net.isboot.timing",
            ],
        )
        .finish();
        eprintln!("{}", d.all());
        assert_ne!(d.code, 0, "{}", d.all());
        assert!(d.has("Root mount waiting for: isboot"), "{}", d.all());
        isboot_tests::assert_in_order(
            &d.stdout,
            &[
                "isboot: isb0: added 10.0.2.15/24 from the iBFT",
                "isboot: 10.0.2.2:3260: login refused: target unreachable (connection failed)",
                "isboot: giving up; releasing the root mount hold",
                "mountroot: no disk: da0 did not attach",
            ],
        );
        // Bounded by net.isboot.wait_login=3: a few seconds of "waiting for", not 60.
        let waits = d
            .stdout
            .lines()
            .filter(|l| *l == "Root mount waiting for: isboot")
            .count();
        assert!((2..=8).contains(&waits), "{waits} waits\n{}", d.all());
        // The stages it never reached stay -1; the hold's release comes after the 3 s login
        // wait.
        let ms = stage_times(&d.stdout);
        assert!(ms[0] >= 0 && ms[1] >= ms[0], "{ms:?}");
        assert_eq!((ms[2], ms[3]), (-1, -1), "{ms:?}");
        assert!(ms[4] >= ms[1] + 3000, "{ms:?}");
        assert!(
            d.stderr.contains("kldrun: mountroot: no disk"),
            "{}",
            d.all()
        );
        assert!(d.clean(), "{}", d.all());
    });
}

#[test]
fn bench_reads_through_the_sim_and_reports_iops() {
    with_lab(Some(target_opts("nochap")), |_, _| {
        for spec in ["bench:rand:4096:4:2", "bench:seq:65536:2:1"] {
            let d = bench_run(spec);
            let (line, kv) = bench_line(&d);
            assert!(kv("ios") > 0.0 && kv("iops") > 0.0, "{line}");
            assert!(kv("mib_s") > 0.0 && kv("cpu_us_per_io") > 0.0, "{line}");
        }
    });
}

#[test]
fn bench_keeps_the_queue_depth_in_flight_from_one_requester() {
    // As da(4): one thread (g_down) keeps QD CCBs at the SIM and sends the next as each one
    // finishes, not QD threads with one CCB each.
    with_lab(Some(target_opts("nochap")), |_, _| {
        for (spec, qd) in [
            ("bench:rand:4096:8:2", 8.0),
            ("bench:seqwrite:65536:3:1", 3.0),
        ] {
            let d = bench_run(spec);
            let (line, kv) = bench_line(&d);
            assert_eq!(kv("max_in_flight"), qd, "{line}");
            assert!(kv("ios") > 10.0 * qd, "{line}");
            assert!(
                d.stderr.contains("kldrun: stack high-water: g_down "),
                "no requester g_down\n{}",
                d.all()
            );
            assert!(
                !d.stderr.contains("stack high-water: g_down0"),
                "a requester thread per CCB\n{}",
                d.all()
            );
        }
    });
}

#[test]
fn many_commands_at_the_target_are_answered_in_batches() {
    // With 32 commands at the target the module asks soreceive for a batch of answers
    // (SO_RCVLOWAT): fewer receives than I/Os. (At queue depth 1 there is nothing to batch:
    // a_queue_depth_1_read_is_woken_at_once_and_allocates_nothing.)
    with_lab(Some(target_opts("nochap")), |_, _| {
        let d = bench_run("bench:rand:4096:32:2");
        let (line, kv) = bench_line(&d);
        assert!(kv("lowat_waits") > 0.0, "no batch asked for: {line}");
        assert!(kv("receives_per_io") < 1.0, "a receive per answer: {line}");
    });
}

#[test]
fn bench_survives_the_target_restarting_under_a_full_queue() {
    // The session breaks with QD CCBs at the SIM: the SIM queue freezes, the CCBs come back
    // requeued (or with the device queue frozen) and are sent again once it reconnects; the
    // bench goes on and ends normally.
    with_lab(Some(target_opts("nochap")), |peer, tgtd| {
        let tgtd = tgtd.expect("tgtd");
        let mut c = Child::spawn("nochap", &["--workload", "bench:rand:4096:16:6"]);
        assert!(
            c.wait_line("da0: ", Duration::from_secs(90)),
            "no da0: {:?}",
            c.stdout
        );
        std::thread::sleep(Duration::from_millis(1500));
        bounce_target(peer, &tgtd);
        let d = c.finish();
        assert_eq!(d.code, 0, "{}", d.all());
        isboot_tests::assert_in_order(
            &d.stdout,
            &[
                "isboot: connection to the target lost",
                "isboot: reconnected to the target (reconnect 1)",
                "bench: mode=rand bs=4096 qd=16 ",
            ],
        );
        let (line, kv) = bench_line(&d);
        assert_eq!(kv("max_in_flight"), 16.0, "{line}");
        assert!(d.clean(), "{}", d.all());
    });
}

#[test]
fn a_queue_depth_1_read_is_woken_at_once_and_allocates_nothing() {
    // A CCB queued by CAM's action routine wakes the idle boot thread (wakeup on the channel
    // it sleeps on), which then waits for the answer in soreceive: no I/O waits for a timeout
    // (IDLE_POLL is 10 ms: waiting for it would give at most ~100 I/Os per second; the
    // earlier design, one QD1 I/O per 5 ms SO_RCVTIMEO slice, ~250). Steady state allocates
    // nothing per I/O.
    with_lab(Some(target_opts("nochap")), |_, _| {
        let d = bench_run("bench:rand:4096:1:2");
        let (line, kv) = bench_line(&d);
        assert!(kv("iops") > 1000.0, "QD1 held back: {line}");
        // One answer at a time: no wait for a batch.
        assert_eq!(kv("lowat_waits"), 0.0, "a batch of one: {line}");
        assert!(kv("receives_per_io") >= 1.0, "{line}");
        // (A rare allocation of the session's own, e.g. a buffer grown once, is not per I/O.)
        assert!(
            kv("mallocs") * 100.0 < kv("ios"),
            "allocations per I/O: {line}"
        );
    });
}
