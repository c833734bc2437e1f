//! The `iscsi-initiator` command's own interface, run as a user would run it: version, help,
//! exit statuses and the message when the target cannot be reached. No target is needed.
#![cfg(feature = "std")]

use std::ffi::OsStr;
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output};

fn cli<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iscsi-initiator"))
        .args(args)
        .env_remove("ISCSI_LOG")
        .env_remove("ISCSI_CHAP_SECRET")
        .env_remove("LIBISCSI_CHAP_PASSWORD")
        .env_remove("ISCSI_TARGET_USER")
        .env_remove("ISCSI_TARGET_SECRET")
        .output()
        .expect("run iscsi-initiator")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("UTF-8 stderr")
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

#[test]
fn version_prints_the_package_version() {
    for flag in ["--version", "-V"] {
        let o = cli(&[flag]);
        assert_eq!(o.status.code(), Some(0), "{flag}: {}", stderr(&o));
        assert_eq!(
            stdout(&o),
            format!("iscsi-initiator {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(stderr(&o), "");
    }
}

/// The environment variables the command reads: every `env("…")` and `env_secret("…")` in its
/// source.
fn variables_read() -> Vec<String> {
    let src = include_str!("../src/bin/iscsi-initiator.rs");
    let mut names = Vec::new();
    for call in ["env(\"", "env_secret(\""] {
        for (at, _) in src.match_indices(call) {
            let rest = &src[at + call.len()..];
            if let Some(end) = rest.find('"') {
                let name = &rest[..end];
                if !name.is_empty() && !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

#[test]
fn help_documents_every_environment_variable_read() {
    let names = variables_read();
    for known in [
        "ISCSI_CHAP_SECRET",
        "LIBISCSI_CHAP_PASSWORD",
        "ISCSI_TARGET_USER",
        "ISCSI_TARGET_SECRET",
        "ISCSI_LOG",
    ] {
        assert!(names.iter().any(|n| n == known), "{known} in {names:?}");
    }
    for flag in ["--help", "-h"] {
        let o = cli(&[flag]);
        assert_eq!(o.status.code(), Some(0), "{flag}: {}", stderr(&o));
        let help = stdout(&o);
        assert!(help.starts_with("usage: iscsi-initiator"), "{help}");
        for name in &names {
            // Documented as an entry of its own: at the start of a line of the environment
            // section.
            assert!(
                help.lines()
                    .any(|l| l.trim_start().starts_with(name.as_str())),
                "--help does not document {name}:\n{help}"
            );
        }
        assert!(help.contains("--version"), "{help}");
        assert!(help.contains("exit status"), "{help}");
    }
}

#[test]
fn usage_errors_exit_with_status_2_and_the_usage() {
    let url = "iscsi://127.0.0.1/iqn.2026-11.org.example:disk/0";
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "unknown option --bogus"),
        (
            &["capacity", url, "--frobnicate"],
            "unknown option --frobnicate",
        ),
        (&[], "missing command"),
        (&["frob"], "unknown command frob"),
        (&["capacity"], "missing URL"),
        (&["capacity", "http://h/iqn/0"], "bad URL"),
        (&["capacity", url, "--timeout"], "--timeout needs a value"),
        (
            &["--lba", "ten", "capacity", url],
            "--lba: \"ten\" is not a number",
        ),
        (
            &["--qd", "70000", "capacity", url],
            "--qd: \"70000\" is not a number",
        ),
        (
            &["--digest", "md5", "capacity", url],
            "--digest must be none or crc32c",
        ),
        (
            &["--busy-poll-us", "2000000", "capacity", url],
            "bad --busy-poll-us",
        ),
        (&["discover"], "discover needs HOST[:PORT]"),
        (&["discover", "[::1"], "bad portal"),
        (&["read", url, "-o", "/dev/null"], "read needs --blocks"),
        (&["read", url, "--blocks", "1"], "read needs -o FILE"),
        (&["write", url], "write needs -i FILE"),
        (
            &["bench", url, "--pattern", "zigzag"],
            "--pattern must be rand or seq",
        ),
        // A CHAP user needs a secret: from the URL or the environment (cleared here).
        (
            &["capacity", "iscsi://alice@127.0.0.1/iqn.x:y/0"],
            "CHAP user given without a secret",
        ),
    ];
    for (args, want) in cases {
        let o = cli(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with(&format!("iscsi-initiator: {want}")),
            "{args:?}: {err}"
        );
        assert!(err.contains("\nusage: iscsi-initiator"), "{args:?}: {err}");
        assert_eq!(stdout(&o), "", "{args:?}");
    }
    // An argument that is not UTF-8.
    let o = cli(&[
        OsStr::from_bytes(b"--initiator-name"),
        OsStr::from_bytes(b"\xff\xfe"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not UTF-8"), "{}", stderr(&o));
}

#[test]
fn a_refused_connection_names_the_address_and_the_system_error() {
    let port = closed_port();
    let url = format!("iscsi://127.0.0.1:{port}/iqn.2026-11.org.example:disk/0");
    let o = cli(&["capacity", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
    assert_eq!(
        stderr(&o),
        format!("iscsi-initiator: connect 127.0.0.1:{port}: {refused}\n")
    );
    // Discovery goes through the same connect.
    let port = closed_port();
    let o = cli(&["discover", &format!("127.0.0.1:{port}")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!("iscsi-initiator: connect 127.0.0.1:{port}: {refused}\n")
    );
}

#[test]
fn a_bad_url_is_named_without_its_secrets() {
    let o = cli(&[
        "capacity",
        "iscsi://node%s3cret-x@127.0.0.1/iqn.x:y/notalun?target_password=p4ss-y",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("bad URL iscsi://node%<hidden>@127.0.0.1/iqn.x:y/notalun?target_password=<hidden>: the LUN is not a number below 16384"),
        "{e}"
    );
    assert!(!e.contains("s3cret-x") && !e.contains("p4ss-y"), "{e}");
}
