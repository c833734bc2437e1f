//! The module's load flow on the host platform, fed the iBFTs real iPXE wrote
//! (`tests/fixtures/ibft`): preloaded as a loader(8) file, as an ACPI table, and inside a
//! synthetic first MiB; the published sysctl tree is checked value by value (against Linux's
//! own parse of each table, `NAME.linux.txt`, and by hand), secrets are checked to appear in
//! neither the tree, the console nor the log, and corrupt tables must give one clear line and
//! no tree.

use ibft::locate::PhysMemory;
use isboot::host::{HostMemory, HostPlatform};
use isboot::{load, unload, LoadError, PublishError, TableSource, Value};
use isboot_tests::acpi::{seal as checksum_fix, table as acpi_table};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Once;

const FIXTURES: [&str; 5] = [
    "nochap",
    "mutual",
    "two_targets",
    "static_e1000",
    "hostname",
];

fn fixture(name: &str) -> Vec<u8> {
    isboot_tests::fixtures::ibft(name)
}

/// `NAME.linux.txt`: Linux's `/sys/firmware/ibft` view, `path=value` per line.
fn linux(name: &str) -> BTreeMap<String, String> {
    isboot_tests::fixtures::ibft_linux(name)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// --- a log capture per test thread -----------------------------------------------------------

thread_local! {
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        LOG.with(|l| l.borrow_mut().push(format!("{}: {}", r.level(), r.args())));
    }
    fn flush(&self) {}
}

fn capture_log() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
    LOG.with(|l| l.borrow_mut().clear());
}

fn log_lines() -> Vec<String> {
    LOG.with(|l| l.borrow().clone())
}

// --- synthetic firmware memory -----------------------------------------------------------------

/// An ACPI 2.0 RSDP at `rsdp` pointing at an XSDT at 0x20_0000 that lists an unrelated table
/// and then `tables` (placed from 0x30_0000 on). The first MiB is zeroed RAM.
fn acpi_machine(rsdp: u64, tables: &[Vec<u8>]) -> HostMemory {
    let mut mem = HostMemory::first_mib();
    let mut addrs = Vec::new();
    let apic = acpi_table(b"APIC", &[0u8; 8]);
    mem.write(0x28_0000, &apic);
    addrs.push(0x28_0000u64);
    let mut at = 0x30_0000u64;
    for t in tables {
        mem.write(at, t);
        addrs.push(at);
        at += 0x1_0000;
    }
    let body: Vec<u8> = addrs.iter().flat_map(|a| a.to_le_bytes()).collect();
    mem.write(0x20_0000, &acpi_table(b"XSDT", &body));
    let mut r = vec![0u8; 36];
    r[..8].copy_from_slice(b"RSD PTR ");
    r[9..15].copy_from_slice(b"ISBOOT");
    r[15] = 2;
    r[20..24].copy_from_slice(&36u32.to_le_bytes());
    r[24..32].copy_from_slice(&0x20_0000u64.to_le_bytes());
    checksum_fix(&mut r[..20], 8);
    checksum_fix(&mut r, 32);
    mem.write(rsdp, &r);
    mem
}

/// A fixture as the ACPI table it would be on a UEFI machine (signature `iBFT` as iPXE wrote
/// it; the header's checksum already covers the whole table).
fn as_acpi(bytes: &[u8]) -> Vec<u8> {
    bytes.to_vec()
}

const LOW_ADDR: u64 = 0x9_e620; // where iPXE under SeaBIOS put these tables

fn low_memory_machine(bytes: &[u8]) -> HostMemory {
    let mut mem = HostMemory::first_mib();
    mem.write(LOW_ADDR, bytes);
    mem
}

fn corrupt(bytes: &[u8]) -> Vec<u8> {
    // One byte inside the target structure's flags changes, the checksum no longer holds.
    let mut b = bytes.to_vec();
    b[0x180] ^= 0x07;
    b
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

// --- the published tree against Linux's parse --------------------------------------------------

fn origin_name(raw: &str) -> &'static str {
    match raw {
        "0" => "other",
        "1" => "manual",
        "2" => "well-known",
        "3" => "dhcp",
        "4" => "router-advertisement",
        _ => "unknown",
    }
}

fn chap_name(raw: &str) -> &'static str {
    match raw {
        "0" => "none",
        "1" => "chap",
        "2" => "mutual",
        _ => "?",
    }
}

/// Every value Linux shows for the table is published under the matching name, with the same
/// value; CHAP names and secrets are the only things Linux shows that must not be published.
fn assert_tree_matches_linux(name: &str, tree: &isboot::SysctlTree) {
    let lx = linux(name);
    let get = |k: &str| {
        tree.get(k)
            .unwrap_or_else(|| panic!("{name}: {k} not published"))
    };
    for (key, val) in &lx {
        let (structure, field) = key.split_once('/').unwrap();
        let (published, expected) = match (structure, field) {
            ("acpi_header", "signature") => ("hw.ibft.signature".into(), s(val)),
            ("acpi_header", "oem_id") => ("hw.ibft.oem_id".into(), s(val)),
            ("acpi_header", "oem_table_id") => ("hw.ibft.oem_table_id".into(), s(val)),
            ("initiator", "initiator-name") => ("hw.ibft.initiator_name".into(), s(val)),
            ("initiator", _) => continue,
            (st, f) if st.starts_with("ethernet") => {
                let p = format!("hw.ibft.nic.{}", &st["ethernet".len()..]);
                match f {
                    "ip-addr" => (format!("{p}.address"), s(val)),
                    "prefix-len" => (format!("{p}.prefix"), Value::Uint(val.parse().unwrap())),
                    "gateway" => (format!("{p}.gateway"), s(val)),
                    "primary-dns" => (format!("{p}.primary_dns"), s(val)),
                    "secondary-dns" => (format!("{p}.secondary_dns"), s(val)),
                    "dhcp" => (format!("{p}.dhcp_server"), s(val)),
                    "mac" => (format!("{p}.mac"), s(val)),
                    "vlan" => (format!("{p}.vlan"), Value::Uint(val.parse().unwrap())),
                    "flags" => (format!("{p}.flags"), Value::Uint(val.parse().unwrap())),
                    "origin" => (format!("{p}.origin"), s(origin_name(val))),
                    "hostname" => (format!("{p}.hostname"), s(val)),
                    "index" | "subnet-mask" => continue,
                    other => panic!("{name}: unexpected Linux attribute {other}"),
                }
            }
            (st, f) if st.starts_with("target") => {
                let p = format!("hw.ibft.target.{}", &st["target".len()..]);
                match f {
                    "ip-addr" => (format!("{p}.address"), s(val)),
                    "port" => (format!("{p}.port"), Value::Uint(val.parse().unwrap())),
                    "target-name" => (format!("{p}.name"), s(val)),
                    "nic-assoc" => (format!("{p}.nic"), Value::Uint(val.parse().unwrap())),
                    "flags" => (format!("{p}.flags"), Value::Uint(val.parse().unwrap())),
                    "chap-type" => (format!("{p}.chap_type"), s(chap_name(val))),
                    // Linux prints the LUN lossily; it is checked on the raw bytes elsewhere.
                    "lun" | "index" => continue,
                    // Never published: checked by `secrets_never_leak`.
                    "chap-name" | "chap-secret" | "rev-chap-name" | "rev-chap-name-secret" => {
                        continue
                    }
                    other => panic!("{name}: unexpected Linux attribute {other}"),
                }
            }
            (other, _) => panic!("{name}: unexpected Linux structure {other}"),
        };
        assert_eq!(
            get(&published),
            &expected,
            "{name}: {published} (Linux {key}={val})"
        );
    }
}

fn secrets(name: &str) -> Vec<String> {
    linux(name)
        .into_iter()
        .filter(|(k, _)| k.ends_with("chap-secret") || k.ends_with("rev-chap-name-secret"))
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn preloaded_fixtures_publish_what_linux_sees() {
    for name in FIXTURES {
        let mut p = HostPlatform::new();
        p.preload("ibft_table", &fixture(name));
        let report = load(&mut p).unwrap();
        let found = report.found.as_ref().unwrap();
        assert_eq!(found.source, TableSource::Preloaded, "{name}");
        let tree = p.published.clone().unwrap();
        assert_eq!(tree, report.tree);
        assert_tree_matches_linux(name, &tree);
        assert_eq!(
            tree.get("hw.ibft.location"),
            Some(&s("preloaded file (ibft_table)")),
            "{name}"
        );
    }
}

#[test]
fn mutual_fixture_tree_value_by_value() {
    capture_log();
    let mut p = HostPlatform::new();
    p.memory = low_memory_machine(&fixture("mutual"));
    load(&mut p).unwrap();
    let tree = p.published.clone().unwrap();
    let expect: &[(&str, Value)] = &[
        ("net.isboot.version", s(env!("CARGO_PKG_VERSION"))),
        ("net.isboot.debug", Value::Uint(0)),
        ("net.isboot.pkey", Value::Uint(0xffff)),
        ("hw.ibft.acpi_table", Value::Uint(1)),
        ("hw.ibft.verbose", Value::Uint(0)),
        ("net.isboot.wait_interface", Value::Uint(60)),
        ("net.isboot.wait_login", Value::Uint(60)),
        ("net.isboot.wait_disk", Value::Uint(30)),
        ("net.isboot.recovery_timeout", Value::Uint(0)),
        ("hw.ibft.location", s("low memory at 0x9e620")),
        ("hw.ibft.signature", s("iBFT")),
        ("hw.ibft.oem_id", s("FENSYS")),
        ("hw.ibft.oem_table_id", s("iPXE")),
        (
            "hw.ibft.initiator_name",
            s("iqn.2026-11.org.example:initiator.mutual"),
        ),
        ("hw.ibft.initiator_address", s("10.0.2.15")),
        ("hw.ibft.target_name", s("iqn.2026-11.org.example:mutual")),
        ("hw.ibft.target_address", s("10.0.2.2")),
        ("hw.ibft.target_port", Value::Uint(3260)),
        ("hw.ibft.target_lun", Value::U64(1)),
        ("hw.ibft.nic_prefix", Value::Uint(24)),
        ("hw.ibft.nic_gateway", s("10.0.2.2")),
        ("hw.ibft.nic_mac", s("52:54:00:9a:bc:de")),
        ("hw.ibft.nic_origin", s("dhcp")),
        ("hw.ibft.nic_vlan", Value::Uint(0)),
        ("hw.ibft.target_chap_type", s("mutual")),
        ("hw.ibft.nic.0.flags", Value::Uint(3)),
        ("hw.ibft.nic.0.address", s("10.0.2.15")),
        ("hw.ibft.nic.0.prefix", Value::Uint(24)),
        ("hw.ibft.nic.0.origin", s("dhcp")),
        ("hw.ibft.nic.0.gateway", s("10.0.2.2")),
        ("hw.ibft.nic.0.primary_dns", s("10.0.2.3")),
        ("hw.ibft.nic.0.dhcp_server", s("10.0.2.2")),
        ("hw.ibft.nic.0.vlan", Value::Uint(0)),
        ("hw.ibft.nic.0.mac", s("52:54:00:9a:bc:de")),
        ("hw.ibft.target.0.flags", Value::Uint(3)),
        ("hw.ibft.target.0.name", s("iqn.2026-11.org.example:mutual")),
        ("hw.ibft.target.0.address", s("10.0.2.2")),
        ("hw.ibft.target.0.port", Value::Uint(3260)),
        ("hw.ibft.target.0.lun", Value::U64(1)),
        ("hw.ibft.target.0.chap_type", s("mutual")),
        ("hw.ibft.target.0.nic", Value::Uint(0)),
    ];
    for (name, value) in expect {
        assert_eq!(tree.get(name), Some(value), "{name}");
    }
    // The PCI address is bus:slot:function, and the NIC's is the boot NIC's.
    let pci = tree.get("hw.ibft.nic.0.pci").unwrap().to_string();
    assert_eq!(pci.split(':').count(), 3, "{pci}");
    assert_eq!(tree.get("hw.ibft.nic_pci"), Some(&s(&pci)));
    // Exactly these oids and the PCI ones: nothing else (no CHAP name, no secret).
    let mut names: Vec<&str> = tree.oids.iter().map(|o| o.name.as_str()).collect();
    names.retain(|n| !n.ends_with("pci"));
    let mut want: Vec<&str> = expect.iter().map(|(n, _)| *n).collect();
    names.sort();
    want.sort();
    assert_eq!(names, want);
    // Loader tunables are flagged as such.
    let tun: Vec<&str> = tree
        .oids
        .iter()
        .filter(|o| o.tunable)
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(
        tun,
        [
            "net.isboot.debug",
            "net.isboot.pkey",
            "hw.ibft.acpi_table",
            "hw.ibft.verbose",
            "net.isboot.wait_interface",
            "net.isboot.wait_login",
            "net.isboot.wait_disk",
            "net.isboot.recovery_timeout",
        ]
    );
    // One boot line, saying what was found.
    assert_eq!(
        p.console_lines(),
        [format!(
            "isboot: {} - iBFT (FENSYS) in low memory at 0x9e620: \
             iqn.2026-11.org.example:initiator.mutual -> iqn.2026-11.org.example:mutual at \
             10.0.2.2:3260 LUN 1 (mutual CHAP) via NIC 0 52:54:00:9a:bc:de pci {pci} \
             10.0.2.15/24",
            env!("CARGO_PKG_VERSION")
        )]
    );
}

#[test]
fn two_targets_publish_both_and_boot_from_the_first() {
    let mut p = HostPlatform::new();
    p.memory = low_memory_machine(&fixture("two_targets"));
    load(&mut p).unwrap();
    let tree = p.published.clone().unwrap();
    assert_eq!(tree.get("hw.ibft.target.0.lun"), Some(&Value::U64(1)));
    assert_eq!(tree.get("hw.ibft.target.1.lun"), Some(&Value::U64(2)));
    assert_eq!(tree.get("hw.ibft.target.1.port"), Some(&Value::Uint(3262)));
    assert_eq!(
        tree.get("hw.ibft.target_name"),
        Some(&s("iqn.2026-11.org.example:two-a"))
    );
    assert_eq!(tree.get("hw.ibft.target_port"), Some(&Value::Uint(3260)));
    assert_tree_matches_linux("two_targets", &tree);
}

#[test]
fn static_and_hostname_fixtures() {
    let mut p = HostPlatform::new();
    p.memory = low_memory_machine(&fixture("static_e1000"));
    load(&mut p).unwrap();
    let tree = p.published.clone().unwrap();
    assert_eq!(tree.get("hw.ibft.nic_origin"), Some(&s("manual")));
    assert_eq!(
        tree.get("hw.ibft.nic.0.dhcp_server"),
        None,
        "no DHCP server in a static table"
    );
    assert_eq!(tree.get("hw.ibft.initiator_address"), Some(&s("10.0.2.40")));

    let mut p = HostPlatform::new();
    p.memory = low_memory_machine(&fixture("hostname"));
    load(&mut p).unwrap();
    let tree = p.published.clone().unwrap();
    assert_eq!(tree.get("hw.ibft.nic.0.hostname"), Some(&s("node-17")));
}

#[test]
fn every_fixture_found_in_low_memory_and_through_acpi() {
    for name in FIXTURES {
        let bytes = fixture(name);
        // Low memory.
        let mut p = HostPlatform::new();
        p.memory = low_memory_machine(&bytes);
        let r = load(&mut p).unwrap();
        assert_eq!(
            r.found.unwrap().source,
            TableSource::LowMemory { address: LOW_ADDR }
        );
        assert_tree_matches_linux(name, p.published.as_ref().unwrap());

        // ACPI, with the RSDP found in the BIOS area.
        let mut p = HostPlatform::new();
        p.memory = acpi_machine(0xF_6A40, &[as_acpi(&bytes)]);
        let r = load(&mut p).unwrap();
        assert_eq!(
            r.found.unwrap().source,
            TableSource::Acpi {
                instance: 1,
                address: 0x30_0000
            },
            "{name}"
        );
        let tree = p.published.clone().unwrap();
        assert_tree_matches_linux(name, &tree);
        assert_eq!(
            tree.get("hw.ibft.location"),
            Some(&s("ACPI table #1 at 0x300000"))
        );
    }
}

#[test]
fn acpi_through_the_loader_hint_and_instance_tunable() {
    // A UEFI machine: the RSDP is above 1 MiB, only the loader's hint finds it.
    let rsdp = 0x7fe_0000u64;
    let mut mem = acpi_machine(
        rsdp,
        &[as_acpi(&fixture("nochap")), as_acpi(&fixture("mutual"))],
    );
    // Nothing in the BIOS area would find it.
    let mut probe = [0u8; 8];
    mem.read(rsdp, &mut probe).unwrap();
    assert_eq!(&probe, b"RSD PTR ");
    mem.write(0, &[0u8; 16]);

    let mut p = HostPlatform::new();
    p.memory = mem.clone();
    let r = load(&mut p).unwrap();
    assert!(
        r.found.is_none(),
        "no hint: the high RSDP must not be found"
    );
    assert!(
        p.console_lines()[0].contains("no ACPI RSDP"),
        "{:?}",
        p.console_lines()
    );

    let mut p = HostPlatform::new();
    p.memory = mem.clone();
    p.set_kenv("hint.acpi.0.rsdp", rsdp as i64);
    load(&mut p).unwrap();
    let tree = p.published.clone().unwrap();
    assert_eq!(
        tree.get("hw.ibft.location"),
        Some(&s("ACPI table #1 at 0x300000"))
    );
    assert_tree_matches_linux("nochap", &tree);

    let mut p = HostPlatform::new();
    p.memory = mem;
    p.set_kenv("hint.acpi.0.rsdp", rsdp as i64)
        .set_kenv("hw.ibft.acpi_table", 2);
    load(&mut p).unwrap();
    let tree = p.published.clone().unwrap();
    assert_eq!(tree.get("hw.ibft.acpi_table"), Some(&Value::Uint(2)));
    assert_eq!(
        tree.get("hw.ibft.location"),
        Some(&s("ACPI table #2 at 0x310000"))
    );
    assert_tree_matches_linux("mutual", &tree);
}

#[test]
fn preloaded_table_wins_over_firmware() {
    let mut p = HostPlatform::new();
    p.memory = low_memory_machine(&fixture("nochap"));
    p.preload("ibft_table", &fixture("two_targets"));
    let r = load(&mut p).unwrap();
    assert_eq!(r.found.unwrap().source, TableSource::Preloaded);
    assert_tree_matches_linux("two_targets", p.published.as_ref().unwrap());
}

#[test]
fn secrets_never_leak() {
    for name in FIXTURES {
        for verbose in [0, 1] {
            capture_log();
            let mut p = HostPlatform::new();
            p.set_kenv("hw.ibft.verbose", verbose)
                .set_kenv("net.isboot.debug", 4);
            p.memory = low_memory_machine(&fixture(name));
            let report = load(&mut p).unwrap();
            let tree = p.published.clone().unwrap();
            let mut text: Vec<String> = tree
                .oids
                .iter()
                .flat_map(|o| [o.name.clone(), o.value.to_string()])
                .collect();
            text.extend(p.console_lines());
            text.extend(log_lines());
            text.push(format!("{report:?}"));
            if verbose == 1 {
                assert!(p.console_lines().len() > 2, "verbose dump printed");
            }
            // The kernel prints lines of at most 255 bytes (kernel_bindings::console); these
            // tables' lines must fit whole.
            for line in p.console_lines() {
                assert!(
                    line.len() < 254,
                    "{name}: line too long for the console: {line}"
                );
            }
            for secret in secrets(name) {
                for t in &text {
                    assert!(
                        !t.contains(&secret),
                        "{name}: secret {secret:?} leaked in {t:?}"
                    );
                }
            }
            if name == "mutual" {
                assert_eq!(secrets(name).len(), 2);
                // The verbose dump says a secret is set, nothing more.
                if verbose == 1 {
                    let dump = p.console_lines().join("\n");
                    assert!(dump.contains("chap_secret=<set>"), "{dump}");
                    assert!(dump.contains("rchap_secret=<set>"), "{dump}");
                }
            }
        }
    }
}

#[test]
fn corrupt_preloaded_table_clear_message_and_no_tree() {
    capture_log();
    let bad = corrupt(&fixture("nochap"));
    let why = ibft::parse(&bad).unwrap_err().to_string();
    let mut p = HostPlatform::new();
    // A valid table in firmware does not rescue an invalid explicit one.
    p.memory = low_memory_machine(&fixture("mutual"));
    p.preload("ibft_table", &bad);
    let err = load(&mut p).unwrap_err();
    assert_eq!(
        err,
        LoadError::InvalidTable {
            source: "preloaded file (ibft_table)".into(),
            reason: why.clone()
        }
    );
    assert!(p.published.is_none(), "no tree for an invalid table");
    assert_eq!(
        p.console_lines(),
        [format!(
            "isboot: iBFT in preloaded file (ibft_table) is invalid: {why}; not booting from iSCSI"
        )]
    );
    // The reason names a structure and a field.
    assert!(why.contains(": "), "{why}");
}

#[test]
fn truncated_preloaded_table() {
    let bytes = fixture("nochap");
    let mut p = HostPlatform::new();
    p.preload("ibft_table", &bytes[..100]);
    let err = load(&mut p).unwrap_err();
    let LoadError::InvalidTable { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(reason, &ibft::parse(&bytes[..100]).unwrap_err().to_string());
    assert!(p.published.is_none());
}

#[test]
fn corrupt_table_in_low_memory() {
    let bad = corrupt(&fixture("mutual"));
    let why = ibft::parse(&bad).unwrap_err().to_string();
    let mut p = HostPlatform::new();
    p.memory = low_memory_machine(&bad);
    let err = load(&mut p).unwrap_err();
    assert_eq!(
        err,
        LoadError::InvalidTable {
            source: "low memory at 0x9e620".into(),
            reason: why.clone()
        }
    );
    assert!(p.published.is_none());
    assert_eq!(p.console_lines().len(), 1);
    assert!(p.console_lines()[0].contains(&why));
}

#[test]
fn corrupt_acpi_table_falls_back_to_a_valid_low_memory_one() {
    capture_log();
    let mut mem = acpi_machine(0xF_6A40, &[as_acpi(&corrupt(&fixture("nochap")))]);
    mem.write(LOW_ADDR, &fixture("mutual"));
    let mut p = HostPlatform::new();
    p.memory = mem.clone();
    let r = load(&mut p).unwrap();
    assert_eq!(
        r.found.unwrap().source,
        TableSource::LowMemory { address: LOW_ADDR }
    );
    assert!(log_lines()
        .iter()
        .any(|l| l.starts_with("WARN") && l.contains("ACPI table #1")));

    // Without the low-memory copy, the ACPI table's problem is the answer.
    let mut p = HostPlatform::new();
    p.memory = acpi_machine(0xF_6A40, &[as_acpi(&corrupt(&fixture("nochap")))]);
    let err = load(&mut p).unwrap_err();
    assert!(
        matches!(&err, LoadError::InvalidTable { source, .. } if source == "ACPI table #1 at 0x300000"),
        "{err:?}"
    );
    assert!(p.published.is_none());
}

#[test]
fn nothing_found_publishes_only_version_and_tunables() {
    let mut p = HostPlatform::new();
    p.memory = HostMemory::first_mib();
    let r = load(&mut p).unwrap();
    assert!(r.found.is_none());
    let tree = p.published.clone().unwrap();
    let names: Vec<&str> = tree.oids.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "net.isboot.version",
            "net.isboot.debug",
            "net.isboot.pkey",
            "hw.ibft.acpi_table",
            "hw.ibft.verbose",
            "net.isboot.wait_interface",
            "net.isboot.wait_login",
            "net.isboot.wait_disk",
            "net.isboot.recovery_timeout",
        ]
    );
    assert_eq!(
        p.console_lines(),
        [format!(
            "isboot: {} - no iBFT found (no preloaded ibft_table; no ACPI RSDP; nothing in low \
             memory 0x80000-0xfffff); nothing to boot from",
            env!("CARGO_PKG_VERSION")
        )]
    );

    // A machine without even readable low memory says so, and does not fail.
    let mut p = HostPlatform::new();
    let r = load(&mut p).unwrap();
    assert!(r.found.is_none());
    assert!(
        p.console_lines()[0].contains("low memory unreadable"),
        "{:?}",
        p.console_lines()
    );
}

#[test]
fn tunables_defaults_bootverbose_and_range() {
    let mut p = HostPlatform::new();
    p.bootverbose = true;
    p.memory = low_memory_machine(&fixture("nochap"));
    let r = load(&mut p).unwrap();
    assert_eq!((r.tunables.verbose, r.tunables.debug), (1, 2));
    assert_eq!(p.debug_level, Some(2));

    capture_log();
    let mut p = HostPlatform::new();
    p.set_kenv("net.isboot.pkey", 0x8000)
        .set_kenv("net.isboot.debug", 9)
        .set_kenv("hw.ibft.acpi_table", 0);
    p.memory = low_memory_machine(&fixture("nochap"));
    let r = load(&mut p).unwrap();
    assert_eq!(r.tunables.pkey, 0xffff);
    assert_eq!(r.tunables.debug, 0);
    assert_eq!(r.tunables.acpi_table, 1);
    let warnings: Vec<String> = log_lines()
        .into_iter()
        .filter(|l| l.starts_with("WARN"))
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("net.isboot.pkey=0x8000")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("net.isboot.debug=9")),
        "{warnings:?}"
    );

    let mut p = HostPlatform::new();
    p.set_kenv("net.isboot.pkey", 0x8001);
    p.memory = low_memory_machine(&fixture("nochap"));
    load(&mut p).unwrap();
    assert_eq!(
        p.published.unwrap().get("net.isboot.pkey"),
        Some(&Value::Uint(0x8001))
    );
}

#[test]
fn boot_tunables_defaults_range_and_publication() {
    use isboot::boot::BootTunables;
    use iscsi_initiator::time::Duration;

    // Defaults: BootTunables::default(), published read-only as loader tunables.
    let mut p = HostPlatform::new();
    p.memory = low_memory_machine(&fixture("nochap"));
    let r = load(&mut p).unwrap();
    assert_eq!(r.tunables.boot, BootTunables::default());
    let tree = p.published.clone().unwrap();
    for (name, v) in [
        ("net.isboot.wait_interface", 60),
        ("net.isboot.wait_login", 60),
        ("net.isboot.wait_disk", 30),
        ("net.isboot.recovery_timeout", 0),
    ] {
        assert_eq!(tree.get(name), Some(&Value::Uint(v)), "{name}");
        assert!(
            tree.oids.iter().any(|o| o.name == name && o.tunable),
            "{name}"
        );
    }

    // Values in range are taken (seconds).
    let mut p = HostPlatform::new();
    p.set_kenv("net.isboot.wait_interface", 5)
        .set_kenv("net.isboot.wait_login", 3600)
        .set_kenv("net.isboot.wait_disk", 1)
        .set_kenv("net.isboot.recovery_timeout", 120);
    p.memory = low_memory_machine(&fixture("nochap"));
    let r = load(&mut p).unwrap();
    assert_eq!(
        r.tunables.boot,
        BootTunables {
            wait_interface: Duration::from_secs(5),
            wait_login: Duration::from_secs(3600),
            wait_disk: Duration::from_secs(1),
            recovery: Duration::from_secs(120),
            pkey: 0xffff,
        }
    );
    assert_eq!(
        p.published.unwrap().get("net.isboot.recovery_timeout"),
        Some(&Value::Uint(120))
    );

    // Out of range (a zero wait, over an hour, a negative or absurd recovery): the default,
    // and a warning naming the tunable.
    capture_log();
    let mut p = HostPlatform::new();
    p.set_kenv("net.isboot.wait_interface", 0)
        .set_kenv("net.isboot.wait_login", 3601)
        .set_kenv("net.isboot.wait_disk", -1)
        .set_kenv("net.isboot.recovery_timeout", 1 << 40);
    p.memory = low_memory_machine(&fixture("nochap"));
    let r = load(&mut p).unwrap();
    assert_eq!(r.tunables.boot, BootTunables::default());
    let warnings: Vec<String> = log_lines()
        .into_iter()
        .filter(|l| l.starts_with("WARN"))
        .collect();
    for name in [
        "net.isboot.wait_interface=0",
        "net.isboot.wait_login=3601",
        "net.isboot.wait_disk=-1",
        "net.isboot.recovery_timeout=1099511627776",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(name)),
            "{name}: {warnings:?}"
        );
    }
}

#[test]
fn publish_failure_is_an_error_and_unload_removes_the_tree() {
    let mut p = HostPlatform::new();
    p.memory = low_memory_machine(&fixture("nochap"));
    p.fail_publish = Some(PublishError::NoMemory);
    assert_eq!(
        load(&mut p).unwrap_err(),
        LoadError::Publish(PublishError::NoMemory)
    );

    let mut p = HostPlatform::new();
    p.memory = low_memory_machine(&fixture("nochap"));
    load(&mut p).unwrap();
    assert!(p.published.is_some());
    unload(&mut p);
    assert!(p.published.is_none());
}

#[test]
fn publication_plan_creates_each_node_once_under_the_right_root() {
    use isboot::tree::{Parent, Step};
    let mut p = HostPlatform::new();
    p.memory = low_memory_machine(&fixture("two_targets"));
    load(&mut p).unwrap();
    let tree = p.published.clone().unwrap();
    let plan = tree.plan().unwrap();
    // Rebuild every full name from the plan: it must give back exactly the tree's oids.
    let mut node_names: Vec<String> = Vec::new();
    let mut leaves: Vec<String> = Vec::new();
    let full = |parent: Parent, name: &str, nodes: &[String]| match parent {
        Parent::Root(r) => format!("{}.{name}", isboot::tree::ROOTS[r]),
        Parent::Node(n) => format!("{}.{name}", nodes[n]),
    };
    for step in &plan {
        match *step {
            Step::Node { parent, name } => {
                let n = full(parent, name, &node_names);
                assert!(!node_names.contains(&n), "node {n} created twice");
                node_names.push(n);
            }
            Step::Leaf { parent, name, oid } => {
                let n = full(parent, name, &node_names);
                assert_eq!(n, oid.name);
                leaves.push(n);
            }
        }
    }
    let names: Vec<String> = tree.oids.iter().map(|o| o.name.clone()).collect();
    assert_eq!(leaves, names);
    assert_eq!(
        node_names,
        [
            "hw.ibft.nic",
            "hw.ibft.nic.0",
            "hw.ibft.target",
            "hw.ibft.target.0",
            "hw.ibft.target.1"
        ]
    );

    // Names outside the static roots, or with an empty component, are refused.
    for bad in ["kern.hostname", "hw.ibftx.a", "hw.ibft..a", "hw.ibft.a."] {
        let mut t = isboot::SysctlTree::default();
        t.oids.push(isboot::Oid {
            name: bad.into(),
            value: Value::Uint(1),
            tunable: false,
            descr: "",
        });
        assert!(t.plan().is_err(), "{bad}");
    }
}
