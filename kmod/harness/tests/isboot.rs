//! The real `isboot.ko` under kldrun, fed the iBFTs iPXE wrote (`tests/fixtures/ibft`):
//! preloaded by "loader(8)", in low memory, behind ACPI tables; corrupt and absent; with
//! tunables; refused for an unknown import or another kernel; leaking when its oids are held;
//! coping with a failing `sysctl_add_oid`; panicking on a `malloc` that FreeBSD cannot fail.
//!
//! What the module prints and publishes is compared with the same flow run on the host
//! platform (`isboot::host`, the path `kmod/tests/flow.rs` checks against Linux's own parse
//! of each table): the same boot line, every oid with the same value, in the order FreeBSD's
//! sysctl(8) lists them.

mod common;

use common::{isboot_ko, kldrun, scratch, Run};
use isboot::host::{HostMemory, HostPlatform};
use isboot::tree::{Parent, Step, SysctlTree, ROOTS};
use isboot_tests::acpi::{seal as checksum_fix, table as acpi_table};
use std::collections::BTreeMap;
use std::path::PathBuf;

const LOW_ADDR: u64 = 0x9_e620; // where iPXE under SeaBIOS put these tables

fn fixture(name: &str) -> PathBuf {
    isboot_tests::fixtures::ibft_path(name)
}

fn fixtures() -> Vec<String> {
    isboot_tests::fixtures::ibft_names(5)
}

/// The CHAP secrets Linux shows for a fixture.
fn secrets(name: &str) -> Vec<String> {
    isboot_tests::fixtures::ibft_linux(name)
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.ends_with("chap-secret") || k.ends_with("rev-chap-name-secret"))
        .map(|(_, v)| v.to_string())
        .collect()
}

/// The lines `sysctl ROOT` prints for a published tree on FreeBSD: depth first, and within a
/// node the oids added last first (sysctl_add_oid numbers OID_AUTO oids downwards from
/// 0x7fffffff and sysctl(8) walks them in ascending order).
fn sysctl_lines(tree: &SysctlTree, root: &str) -> Vec<String> {
    let mut nodes: Vec<String> = Vec::new();
    let mut children: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    let path = |p: Parent, nodes: &[String]| match p {
        Parent::Root(i) => ROOTS[i].to_string(),
        Parent::Node(n) => nodes[n].clone(),
    };
    for step in tree.plan().expect("a publishable tree") {
        match step {
            Step::Node { parent, name } => {
                let pp = path(parent, &nodes);
                let full = format!("{pp}.{name}");
                children.entry(pp).or_default().push((full.clone(), None));
                nodes.push(full);
            }
            Step::Leaf { parent, name, oid } => {
                let pp = path(parent, &nodes);
                children
                    .entry(pp.clone())
                    .or_default()
                    .push((format!("{pp}.{name}"), Some(oid.value.to_string())));
            }
        }
    }
    fn walk(
        at: &str,
        children: &BTreeMap<String, Vec<(String, Option<String>)>>,
        out: &mut Vec<String>,
    ) {
        for (p, v) in children.get(at).into_iter().flatten().rev() {
            match v {
                Some(v) => out.push(format!("{p}: {v}")),
                None => walk(p, children, out),
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &children, &mut out);
    out
}

/// The same flow on the host platform: (console lines, published tree).
fn host(setup: impl FnOnce(&mut HostPlatform)) -> (Vec<String>, Option<SysctlTree>) {
    let mut p = HostPlatform::new();
    setup(&mut p);
    let _ = isboot::load(&mut p);
    (p.console_lines(), p.published.clone())
}

/// Checks a successful run against the host flow: the console lines the flow printed (the
/// module's log lines aside), then the two trees, oid for oid, in the kernel's order.
fn assert_like_host(run: &Run, console: &[String], tree: &SysctlTree) {
    assert_eq!(run.code, 0, "{}", run.all());
    let lines = run.lines();
    let printed: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("isboot: ") && !l.starts_with("isboot: warning: "))
        .collect();
    // The load flow's lines, then (with a boot target) the boot thread's, which the host flow
    // does not run: here it waits for an interface kldrun's namespace does not have (and, with
    // none there, looks for the NIC's PCI function for its own HCA driver: kldrun has no PCI
    // device without --hca), and is stopped at unload.
    assert_eq!(
        &printed[..console.len().min(printed.len())],
        console,
        "{}",
        run.all()
    );
    for l in &printed[console.len()..] {
        assert!(
            l.starts_with("isboot: waiting up to ")
                || l.starts_with("isboot: stopped ")
                || l.ends_with(": no such PCI function (the iBFT NIC's); no native HCA to open"),
            "{l}\n{}",
            run.all()
        );
    }
    let mut want = sysctl_lines(tree, "hw.ibft");
    want.extend(sysctl_lines(tree, "net.isboot"));
    let got: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("hw.ibft") || l.starts_with("net.isboot"))
        .collect();
    // The boot state (handler-backed oids the module adds for its boot thread; the host flow
    // has no thread), then its stage times under net.isboot.timing: present, in the kernel's
    // order, before the tunables.
    const BOOT_STATE: [&str; 11] = [
        "net.isboot.timing.hold_released_ms:",
        "net.isboot.timing.disk_ms:",
        "net.isboot.timing.login_ms:",
        "net.isboot.timing.address_ms:",
        "net.isboot.timing.interface_ms:",
        "net.isboot.last_error:",
        "net.isboot.reconnects:",
        "net.isboot.session_state:",
        "net.isboot.target:",
        "net.isboot.nic:",
        "net.isboot.device:",
    ];
    let state: Vec<&str> = got
        .iter()
        .copied()
        .filter(|l| BOOT_STATE.iter().any(|p| l.starts_with(p)))
        .collect();
    if !state.is_empty() {
        assert_eq!(state.len(), BOOT_STATE.len(), "{}", run.all());
        for (l, p) in state.iter().zip(BOOT_STATE) {
            assert!(l.starts_with(p), "{l}\n{}", run.all());
        }
    }
    let got: Vec<&str> = got
        .into_iter()
        .filter(|l| !BOOT_STATE.iter().any(|p| l.starts_with(p)))
        .collect();
    assert_eq!(got, want, "{}", run.all());
    assert!(run.clean(), "{}", run.all());
}

fn no_secrets(name: &str, run: &Run) {
    for s in secrets(name) {
        assert!(
            !run.stdout.contains(&s) && !run.stderr.contains(&s),
            "{name}: secret {s:?} printed\n{}",
            run.all()
        );
    }
}

fn trees(extra: &[&str], args: &[String]) -> Run {
    let mut a: Vec<String> = args.to_vec();
    for e in extra {
        a.push((*e).to_string());
    }
    a.extend(["--sysctl", "hw.ibft", "--sysctl", "net.isboot"].map(String::from));
    a.push(isboot_ko().display().to_string());
    kldrun(&a)
}

#[test]
fn preloaded_fixtures_publish_what_the_host_flow_publishes() {
    for name in fixtures() {
        let bytes = std::fs::read(fixture(&name)).unwrap();
        let run = trees(
            &[],
            &[
                "--preload".into(),
                format!("ibft_table={}", fixture(&name).display()),
            ],
        );
        let (console, tree) = host(|p| {
            p.preload("ibft_table", &bytes);
        });
        assert_like_host(&run, &console, &tree.unwrap());
        assert!(
            run.lines()[0].contains("in preloaded file (ibft_table)"),
            "{}",
            run.all()
        );
        no_secrets(&name, &run);
    }
}

#[test]
fn mutual_chap_boot_line_and_values() {
    let run = trees(
        &[],
        &[
            "--preload".into(),
            format!("ibft_table={}", fixture("mutual").display()),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        run.lines()[0],
        format!(
            "isboot: {} - iBFT (FENSYS) in preloaded file (ibft_table): \
             iqn.2026-11.org.example:initiator.mutual -> iqn.2026-11.org.example:mutual at \
             10.0.2.2:3260 LUN 1 (mutual CHAP) via NIC 0 52:54:00:9a:bc:de pci 0:3:0 \
             10.0.2.15/24",
            env!("CARGO_PKG_VERSION")
        )
    );
    for want in [
        "hw.ibft.target_name: iqn.2026-11.org.example:mutual",
        "hw.ibft.target_address: 10.0.2.2",
        "hw.ibft.target_port: 3260",
        "hw.ibft.target_lun: 1",
        "hw.ibft.target_chap_type: mutual",
        "hw.ibft.initiator_address: 10.0.2.15",
        "hw.ibft.nic.0.gateway: 10.0.2.2",
        "hw.ibft.target.0.chap_type: mutual",
        "net.isboot.pkey: 65535",
    ] {
        assert!(run.lines().contains(&want), "{want}\n{}", run.all());
    }
    no_secrets("mutual", &run);
}

#[test]
fn table_in_low_memory_is_found_at_its_address() {
    for name in fixtures() {
        let bytes = std::fs::read(fixture(&name)).unwrap();
        let run = trees(
            &[],
            &[
                "--phys".into(),
                format!("{LOW_ADDR:#x}={}", fixture(&name).display()),
            ],
        );
        let (console, tree) = host(|p| {
            p.memory = HostMemory::first_mib();
            p.memory.write(LOW_ADDR, &bytes);
        });
        assert_like_host(&run, &console, &tree.unwrap());
        assert!(
            run.lines()
                .contains(&"hw.ibft.location: low memory at 0x9e620"),
            "{}",
            run.all()
        );
    }
}

#[test]
fn table_behind_acpi_is_found_and_every_mapping_undone() {
    // An ACPI 2.0 RSDP in the BIOS area, an XSDT above 1 MiB listing an APIC table and the
    // iBFT (as on a machine whose firmware published it in ACPI).
    let ibft = std::fs::read(fixture("two_targets")).unwrap();
    let apic = acpi_table(b"APIC", &[0u8; 8]);
    let body: Vec<u8> = [0x28_0000u64, 0x30_0000]
        .iter()
        .flat_map(|a| a.to_le_bytes())
        .collect();
    let xsdt = acpi_table(b"XSDT", &body);
    let mut rsdp = vec![0u8; 36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(b"ISBOOT");
    rsdp[15] = 2;
    rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
    rsdp[24..32].copy_from_slice(&0x20_0000u64.to_le_bytes());
    checksum_fix(&mut rsdp[..20], 8);
    checksum_fix(&mut rsdp, 32);
    let dir = scratch("acpi");
    let pieces: [(u64, &str, &[u8]); 4] = [
        (0xf_6a40, "rsdp.bin", &rsdp),
        (0x20_0000, "xsdt.bin", &xsdt),
        (0x28_0000, "apic.bin", &apic),
        (0x30_0000, "ibft.bin", &ibft),
    ];
    let mut args = Vec::new();
    for (addr, file, data) in pieces {
        std::fs::write(dir.join(file), data).unwrap();
        args.push("--phys".to_string());
        args.push(format!("{addr:#x}={}", dir.join(file).display()));
    }
    let run = trees(&[], &args);
    let (console, tree) = host(|p| {
        p.memory = HostMemory::first_mib();
        for (addr, _, data) in pieces {
            p.memory.write(addr, data);
        }
    });
    assert_like_host(&run, &console, &tree.unwrap());
    assert!(
        run.lines()
            .contains(&"hw.ibft.location: ACPI table #1 at 0x300000"),
        "{}",
        run.all()
    );
    // Several windows were mapped (the first MiB, then each table) and all undone.
    let mappings: u32 = run
        .stderr
        .split(" mappings")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(mappings > 1, "{}", run.all());
}

#[test]
fn corrupt_table_one_clear_line_and_no_tree() {
    let mut bad = std::fs::read(fixture("nochap")).unwrap();
    bad[0x180] ^= 0x07; // inside the target structure; the checksum no longer holds
    let dir = scratch("corrupt");
    let file = dir.join("corrupt.bin");
    std::fs::write(&file, &bad).unwrap();
    let run = trees(
        &[],
        &["--preload".into(), format!("ibft_table={}", file.display())],
    );
    let (console, tree) = host(|p| {
        p.preload("ibft_table", &bad);
    });
    assert!(tree.is_none());
    assert_eq!(run.code, 1, "{}", run.all());
    let lines = run.lines();
    assert_eq!(lines.len(), 2, "{}", run.all());
    assert_eq!(lines[0], console[0]);
    assert!(
        lines[0].contains("is invalid: ") && lines[0].ends_with("; not booting from iSCSI"),
        "{}",
        run.all()
    );
    assert!(
        lines[1].starts_with("module_register_init: MOD_LOAD (isboot, 0x")
            && lines[1].ends_with(", 0) error 22"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("sysctl: unknown oid 'hw.ibft'"),
        "{}",
        run.all()
    );
    assert!(run.clean(), "{}", run.all());
}

#[test]
fn no_table_says_where_it_looked() {
    let run = trees(&[], &[]);
    let (console, tree) = host(|p| {
        p.memory = HostMemory::first_mib();
    });
    assert_like_host(&run, &console, &tree.unwrap());
    assert!(
        run.lines()[0].contains("no iBFT found (no preloaded ibft_table; no ACPI RSDP; nothing in low memory 0x80000-0xfffff); nothing to boot from"),
        "{}",
        run.all()
    );
    let ibft: Vec<&str> = run
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("hw.ibft"))
        .collect();
    assert_eq!(ibft, ["hw.ibft.verbose: 0", "hw.ibft.acpi_table: 1"]);
}

#[test]
fn tunables_reach_the_module() {
    let bytes = std::fs::read(fixture("mutual")).unwrap();
    let run = trees(
        &[
            "--tunable",
            "net.isboot.debug=3",
            "--tunable",
            "hw.ibft.verbose=1",
        ],
        &[
            "--preload".into(),
            format!("ibft_table={}", fixture("mutual").display()),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    // The verbose dump, as the host flow prints it, secrets masked.
    let (console, _) = host(|p| {
        p.preload("ibft_table", &bytes);
        p.set_kenv("net.isboot.debug", 3)
            .set_kenv("hw.ibft.verbose", 1);
    });
    let dump: Vec<&String> = console
        .iter()
        .filter(|l| l.starts_with("isboot: ibft: "))
        .collect();
    assert!(dump.len() >= 4);
    for l in &dump {
        assert!(run.lines().contains(&l.as_str()), "{l}\n{}", run.all());
    }
    assert!(run.stdout.contains("chap_secret=<set>"), "{}", run.all());
    assert!(run.stdout.contains("rchap_secret=<set>"), "{}", run.all());
    for want in ["net.isboot.debug: 3", "hw.ibft.verbose: 1"] {
        assert!(run.lines().contains(&want), "{want}\n{}", run.all());
    }
    no_secrets("mutual", &run);
    assert!(run.clean(), "{}", run.all());

    // Out of range: with warnings on (debug 1), the module says so and keeps its default.
    let run = trees(
        &[
            "--tunable",
            "net.isboot.debug=1",
            "--tunable",
            "hw.ibft.verbose=7",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.lines()
            .contains(&"isboot: warning: hw.ibft.verbose=7 is out of range (0..=1); using 0"),
        "{}",
        run.all()
    );
    assert!(run.lines().contains(&"hw.ibft.verbose: 0"), "{}", run.all());
    assert!(
        run.lines().contains(&"net.isboot.debug: 1"),
        "{}",
        run.all()
    );

    // Booted verbose (loader's boot_verbose, the kernel's bootverbose): both default up.
    let run = trees(&["--tunable", "boot_verbose=YES"], &[]);
    for want in ["net.isboot.debug: 2", "hw.ibft.verbose: 1"] {
        assert!(run.lines().contains(&want), "{want}\n{}", run.all());
    }
}

#[test]
fn stack_high_water_is_reported_and_within_16k() {
    let run = trees(
        &[],
        &[
            "--preload".into(),
            format!("ibft_table={}", fixture("two_targets").display()),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let modevent = run
        .high_water("modevent")
        .expect("modevent's high-water mark");
    let sysctl = run.high_water("sysctl").expect("sysctl's high-water mark");
    assert!(modevent > 1024 && modevent < 16 * 1024, "{}", run.all());
    assert!(sysctl > 0 && sysctl < 16 * 1024, "{}", run.all());
    eprintln!("stack high-water: modevent {modevent} bytes, sysctl {sysctl} bytes");
}

#[test]
fn a_module_with_an_unknown_import_is_refused_by_name() {
    let dir = scratch("unknown-import");
    let ko = common::build_kld("undefined.c", "undefined-import", &[&isboot_ko()]);
    let bad = dir.join("bad.ko");
    std::fs::copy(&ko, &bad).unwrap();
    let run = kldrun(&[bad.display().to_string()]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert_eq!(
        run.stderr,
        "kldrun: bad.ko: undefined symbol kldrun_no_such_kpi\n",
        "{}",
        run.all()
    );
    assert!(run.stdout.is_empty(), "no module code ran\n{}", run.all());
}

#[test]
fn a_module_for_another_kernel_is_refused() {
    // The MDT_DEPEND on "kernel": __FreeBSD_version min, preferred, max (1400097 1400097
    // 1499999 as build-kld.sh builds it) made 15.x's.
    let mut bytes = std::fs::read(isboot_ko()).unwrap();
    let old: Vec<u8> = [1_400_097i32, 1_400_097, 1_499_999]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let new: Vec<u8> = [1_500_000i32, 1_500_000, 1_599_999]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let at: Vec<usize> = bytes
        .windows(12)
        .enumerate()
        .filter(|(_, w)| *w == old.as_slice())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "one struct mod_depend for the kernel");
    bytes[at[0]..at[0] + 12].copy_from_slice(&new);
    let ko = scratch("fifteen").join("isboot15.ko");
    std::fs::write(&ko, &bytes).unwrap();
    let run = kldrun(&[ko.display().to_string()]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [
            "kldrun: isboot15.ko: depends on kernel 1500000..1599999: not a FreeBSD 14 kernel \
          (kldrun emulates 14.x, __FreeBSD_version 1400000..1499999)"
        ],
        "{}",
        run.all()
    );
}

#[test]
fn leak_check_clean_after_unload_and_catching_held_oids() {
    let preload = format!("ibft_table={}", fixture("mutual").display());
    let ko = isboot_ko().display().to_string();
    let run = kldrun(&["--preload", &preload, &ko]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.clean(), "{}", run.all());

    // Another subsystem hangs an oid under hw.ibft.nic.0 and keeps it: sysctl_ctx_free's
    // dry run meets a node with a child (ENOTEMPTY), puts everything back and says EBUSY; the
    // module then leaks its storage on purpose rather than free it under live oids. The leak
    // check must see all of it.
    let run = kldrun(&["--preload", &preload, "--hold-oid", "hw.ibft.nic.0", &ko]);
    assert_eq!(run.code, 4, "{}", run.all());
    for want in [
        "Warning: failed attempt to remove oid 0 with child kldrun_hold",
        "isboot: sysctl oids busy at unload; leaking their storage",
        "Warning: memory type isboot leaked memory on destroy (",
    ] {
        assert!(run.stdout.contains(want), "{want}\n{}", run.all());
    }
    for want in [
        "kldrun: leak: malloc(9): ",
        " of type isboot not freed",
        "kldrun: leak: sysctl(9): 59 oids still registered: hw.ibft.acpi_table, ",
        "kldrun: leak: sysctl(9): 59 sysctl_ctx entries not freed",
    ] {
        assert!(run.stderr.contains(want), "{want}\n{}", run.all());
    }
    assert!(!run.stderr.contains("leak check: clean"));
}

#[test]
fn a_refused_sysctl_add_oid_is_handled_and_nothing_leaks() {
    // The third sysctl_add_oid returns NULL (as for a name another module took): the module
    // fails its load with one line, the kernel sends MOD_UNLOAD and unloads the file, and the
    // partial tree and every allocation are gone.
    for n in [1, 3, 20] {
        let run = trees(
            &["--fail-oid", &n.to_string()],
            &[
                "--preload".into(),
                format!("ibft_table={}", fixture("mutual").display()),
            ],
        );
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            run.stdout
                .contains("isboot: error: load failed: cannot publish sysctls"),
            "{}",
            run.all()
        );
        assert!(
            run.stdout
                .contains("module_register_init: MOD_LOAD (isboot, "),
            "{}",
            run.all()
        );
        assert!(run.stderr.contains("sysctl: unknown oid 'hw.ibft'"));
        assert!(run.clean(), "--fail-oid {n}\n{}", run.all());
    }
}

#[test]
fn a_failed_malloc_is_a_kernel_panic_with_a_backtrace() {
    // The module allocates with M_WAITOK, which FreeBSD never fails: a NULL there is beyond
    // the KPI, and the module's allocation error handler panics. kldrun shows the panic and
    // where, and stops as the kernel would.
    let run = kldrun(&[
        "--fail-malloc",
        "1",
        "--preload",
        &format!("ibft_table={}", fixture("mutual").display()),
        &isboot_ko().display().to_string(),
    ]);
    assert_eq!(run.code, 5, "{}", run.all());
    let size = run
        .stderr
        .split("kldrun: --fail-malloc: malloc(")
        .nth(1)
        .and_then(|r| r.split_once(", isboot, M_WAITOK"))
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| panic!("{}", run.all()));
    assert!(
        run.stdout
            .contains("panic: isboot: Rust panic: panicked at")
            && run
                .stdout
                .contains(&format!("memory allocation of {size} bytes failed")),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("KDB: stack backtrace:"));
    assert!(
        run.stdout.contains(" at isboot_modevent+0x"),
        "{}",
        run.all()
    );
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    let ko = isboot_ko().display().to_string();
    for (args, want) in [
        (
            vec!["--mountroot", "da0", ko.as_str()],
            "one module at a time",
        ),
        (vec!["--workload", "dd", ko.as_str()], "verify:BYTES"),
        (vec!["/nonexistent.ko"], "cannot read /nonexistent.ko"),
        (
            vec!["--preload", "ibft_table=/nonexistent.bin", ko.as_str()],
            "cannot read /nonexistent.bin",
        ),
        (
            vec!["--tunable", "a=b=c=d", "--frob", ko.as_str()],
            "unknown option --frob",
        ),
    ] {
        let run = kldrun(&args);
        assert_eq!(run.code, 2, "{args:?}\n{}", run.all());
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.all());
        assert!(run.stderr.contains(want), "{want}\n{}", run.all());
    }
}
