//! The `ibft` command, run as an admin would run it.
#![cfg(feature = "std")]

mod common;

use std::process::{Command, Output};

use common::fixtures;

fn ibft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ibft"))
        .args(args)
        .output()
        .expect("run ibft")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn tmp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ibft-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn fixture_path(name: &str) -> String {
    isboot_tests::fixtures::ibft_path(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn dump_show_secrets_is_the_linux_view_on_every_fixture() {
    for (name, _, linux) in fixtures() {
        let o = ibft(&["dump", "--show-secrets", &fixture_path(&name)]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(stdout(&o), linux, "{name}");
        assert_eq!(stderr(&o), "", "{name}");
    }
}

#[test]
fn dump_hides_secrets_by_default() {
    let o = ibft(&["dump", &fixture_path("mutual")]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        !out.contains("Kx9-chap-Secret") && !out.contains("Tz7-target-Secret"),
        "{out}"
    );
    assert!(out.contains("target0/chap-secret=<hidden>\n"));
    assert!(out.contains("target0/rev-chap-name-secret=<hidden>\n"));
    assert!(out.contains("target0/chap-name=node-chap\n"));
}

#[test]
fn dump_json_has_the_same_attributes_typed() {
    let o = ibft(&["dump", "--json", &fixture_path("two_targets")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(v["target1"]["port"], 3262);
    assert_eq!(v["target1"]["lun"], "02000000");
    assert_eq!(v["target1"]["lun-bytes"], "0002000000000000");
    assert_eq!(v["ethernet0"]["mac"], "52:54:00:9a:bc:de");
    assert_eq!(
        v["initiator"]["initiator-name"],
        "iqn.2026-11.org.example:initiator.two"
    );
    assert_eq!(v["acpi_header"]["oem_id"], "FENSYS");
    assert_eq!(v["warnings"], serde_json::json!([]));
    // Secrets are null unless asked for.
    let o = ibft(&["dump", "--json", &fixture_path("mutual")]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["target0"]["chap-secret"].is_null());
    let o = ibft(&["dump", "--json", "--show-secrets", &fixture_path("mutual")]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["target0"]["chap-secret"], "Kx9-chap-Secret");
    // Every line of the text view is in the JSON with the same value.
    let text = stdout(&ibft(&["dump", "--show-secrets", &fixture_path("mutual")]));
    for line in text.lines() {
        let (path, value) = line.split_once('=').unwrap();
        let (dir, attr) = path.split_once('/').unwrap();
        let j = &v[dir][attr];
        let js = j
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| j.to_string());
        assert_eq!(js, value, "{path}");
    }
}

#[test]
fn check_summarises_a_valid_table() {
    let o = ibft(&["check", &fixture_path("two_targets")]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("valid iBFT (iBFT signature, 610 bytes, 1 NIC, 2 targets)"),
        "{out}"
    );
    assert!(
        out.contains("target 1: iqn.2026-11.org.example:two-b at 10.0.2.2:3262 LUN 2"),
        "{out}"
    );
    assert!(out.contains("boots from target 0"), "{out}");
}

#[test]
fn check_explains_a_broken_table_in_one_line() {
    let mut t = common::fixture("nochap");
    let o = common::offsets(&t);
    t[o.targets[0] + 33] = 7; // NIC association
    common::reseal(&mut t);
    let p = tmp("bad-assoc.bin", &t);
    let out = ibft(&["check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.ends_with("target 0: NIC association: NIC 7 is not in the table\n"),
        "{err}"
    );
    // dump refuses the same table the same way.
    let out = ibft(&["dump", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), err);
}

#[test]
fn garbage_and_missing_files_never_panic() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("short", b"iBFT".to_vec()),
        ("zeros", vec![0; 4096]),
        ("text", b"hello, this is not a table at all\n".to_vec()),
    ];
    for (name, bytes) in cases {
        let p = tmp(name, &bytes);
        for cmd in ["check", "dump", "scan"] {
            let o = ibft(&[cmd, p.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(1), "{cmd} {name}");
            let err = stderr(&o);
            assert_eq!(err.lines().count(), 1, "{cmd} {name}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let o = ibft(&["check", "/nonexistent/table.bin"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/table.bin"));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["dump"],
        vec!["dump", "--bogus", "x"],
        vec!["check", "a", "b"],
        vec!["scan", "x", "--base"],
        vec!["scan", "x", "--base", "nope"],
    ] {
        let o = ibft(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains("usage:"), "{args:?}");
    }
    assert!(ibft(&["--help"]).status.success());
}

#[test]
fn scan_finds_a_table_in_a_memory_dump() {
    let t = common::fixture("hostname");
    let mut m = vec![0u8; 0x100000];
    m[0x9e620..0x9e620 + t.len()].copy_from_slice(&t);
    let p = tmp("lowmem.bin", &m);
    let o = ibft(&["scan", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with(&format!(
        "{}: 0x9e620 in low memory: valid iBFT",
        p.display()
    )));
    // The same memory given as a dump starting at 0x80000.
    let p = tmp("lowmem-80000.bin", &m[0x80000..]);
    let o = ibft(&["scan", p.to_str().unwrap(), "--base", "0x80000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(": 0x9e620 in low memory"));
}
