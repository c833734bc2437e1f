//! End-to-end tests: whole boots on the simulated fabric against real iSCSI targets and a real
//! DHCP server. The tests live in `tests/`; this library holds the harness for the real peers,
//! shared by every crate's tests:
//!
//! - [`netns`]: run a closure on a thread of its own inside a fresh network namespace with only
//!   a loopback interface, so that whatever a test or a server it starts sends cannot leave it;
//! - [`kea`]: start and stop a real Kea DHCPv4 server with a generated configuration;
//! - [`target`]: real iSCSI targets (tgtd, istgt) serving one LUN, with CHAP, killed and
//!   restarted on demand;
//! - [`lab`]: a peer host in a namespace of its own, wired to the test's by a veth pair;
//! - [`rootfs`]: a FreeBSD root disk (GPT, UFS2) and the reading that finds root on it;
//! - [`acpi`]: ACPI tables for synthetic firmware memory;
//! - [`fixtures`]: tables and captures from real firmware, kept under `tests/fixtures/`;
//! - [`ibsim`]: a real OpenSM on ibsim, Debian's InfiniBand fabric simulator, and the
//!   `infiniband-diags` tools against it.

pub mod acpi;
pub mod fixtures;
#[cfg(target_os = "linux")]
pub mod ibsim;
pub mod kea;
pub mod lab;
pub mod netns;
pub mod rootfs;
pub mod target;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A fresh directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `isboot-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "isboot-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or `None` after `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a program is on `PATH` (or at an absolute path).
pub fn have(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).exists()))
}

/// CPU time (user + system) this process has used, in microseconds.
pub fn cpu_micros() -> u64 {
    // SAFETY: rusage is plain old data; getrusage(2) fills it and touches nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// Panics unless every string in `wanted` occurs in `console`, in that order (each after the
/// end of the one before), showing the whole console.
pub fn assert_in_order(console: &str, wanted: &[&str]) {
    let mut at = 0;
    for w in wanted {
        match console[at..].find(w) {
            Some(i) => at += i + w.len(),
            None => panic!("console lacks {w:?} (in order) in:\n{console}"),
        }
    }
}
