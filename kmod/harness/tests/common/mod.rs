//! What the kldrun tests share: the modules they run (the real `isboot.ko`, and small C test
//! klds built on demand), running the `kldrun` binary, and reading its report.

#![allow(dead_code)] // each test file uses its own part

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The repository.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository")
}

/// `target/kmod` (where `make kmod` puts isboot.ko).
pub fn kmod_out() -> PathBuf {
    repo().join("target/kmod")
}

/// Holds an exclusive lock on `target/kmod/.kldrun-tests.lock` (tests run in parallel
/// processes; one builds, the others wait).
struct Lock(File);

impl Lock {
    fn take() -> Self {
        std::fs::create_dir_all(kmod_out()).expect("target/kmod");
        let f = File::create(kmod_out().join(".kldrun-tests.lock")).expect("lock file");
        // SAFETY: flock on a file descriptor we own; released when the file is closed.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock");
        Lock(f)
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The newest modification time of the files under `paths` (recursively).
fn newest(paths: &[PathBuf]) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut todo: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                todo.push(e.path());
            }
        } else if let Some(t) = mtime(&p) {
            newest = newest.max(t);
        }
    }
    newest
}

/// `target/kmod/isboot.ko`, built by `kmod/scripts/build-kld.sh` first if it is missing or
/// older than its sources (`make test` builds it before the tests run, so normally it is
/// there). A build that fails fails the test with what to do.
pub fn isboot_ko() -> PathBuf {
    static KO: OnceLock<PathBuf> = OnceLock::new();
    KO.get_or_init(|| {
        let r = repo();
        let ko = kmod_out().join("isboot.ko");
        let sources: Vec<PathBuf> = [
            "kmod/src",
            "kmod/bindings/src",
            "kmod/bindings/Cargo.toml",
            "kmod/shim",
            "kmod/kld/src",
            "kmod/kld/Cargo.toml",
            "kmod/Cargo.toml",
            "kmod/scripts/build-kld.sh",
            "kmod/scripts/freebsd-env.sh",
            "kmod/scripts/kld.lds",
            "ibft/src",
            "ibft/Cargo.toml",
            "hca/src",
            "hca/Cargo.toml",
            "clock/src",
            "secret/src",
            "secret/Cargo.toml",
        ]
        .iter()
        .map(|p| r.join(p))
        .collect();
        let _lock = Lock::take();
        let fresh = mtime(&ko).is_some_and(|t| t >= newest(&sources));
        if !fresh {
            let why = if ko.exists() {
                "older than its sources"
            } else {
                "missing"
            };
            eprintln!(
                "{} is {why}: building it (kmod/scripts/build-kld.sh)",
                ko.display()
            );
            let out = Command::new(r.join("kmod/scripts/build-kld.sh"))
                .env("OUT", kmod_out())
                .env("SKIP_INSTALL", "1")
                .output()
                .expect("run kmod/scripts/build-kld.sh");
            assert!(
                out.status.success() && ko.exists(),
                "{} is {why} and building it failed ({}): run `make kmod` first (it installs the \
                 cross toolchain)\n{}",
                ko.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ko
    })
    .clone()
}

/// Builds the C file `src` (in `tests/kld/`) into `target/kmod/kldrun-tests/NAME.ko` with
/// `tests/kld/build.sh`, linking the extra objects given, unless it is already there and
/// newer than its inputs.
pub fn build_kld(src: &str, name: &str, extra: &[&Path]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kld");
    let out = kmod_out().join("kldrun-tests");
    std::fs::create_dir_all(&out).expect("target/kmod/kldrun-tests");
    let ko = out.join(format!("{name}.ko"));
    let mut inputs = vec![
        dir.join(src),
        dir.join("build.sh"),
        repo().join("kmod/scripts/freebsd-env.sh"),
    ];
    inputs.extend(extra.iter().map(|p| p.to_path_buf()));
    let _lock = Lock::take();
    if mtime(&ko).is_some_and(|t| t >= newest(&inputs)) {
        return ko;
    }
    let o = Command::new(dir.join("build.sh"))
        .arg(dir.join(src))
        .arg(&ko)
        .args(extra)
        .output()
        .expect("run tests/kld/build.sh");
    assert!(
        o.status.success(),
        "building {name}.ko failed (the cross toolchain comes with `make kmod`):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ko
}

/// The C self-test module (`tests/kld/selftest.c`).
pub fn selftest_ko() -> PathBuf {
    build_kld("selftest.c", "selftest", &[])
}

/// One run of kldrun.
#[derive(Debug)]
pub struct Run {
    /// Exit status.
    pub code: i32,
    /// The console (and sysctl output).
    pub stdout: String,
    /// kldrun's own lines.
    pub stderr: String,
}

impl Run {
    /// The console lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The bytes of kernel stack thread `name` used at most, if reported.
    pub fn high_water(&self, name: &str) -> Option<usize> {
        let prefix = format!("kldrun: stack high-water: {name} ");
        self.stderr.lines().find_map(|l| {
            l.strip_prefix(&prefix)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }

    /// Whether the leak check found nothing.
    pub fn clean(&self) -> bool {
        self.stderr.contains("kldrun: leak check: clean") && !self.stderr.contains("leak:")
    }

    /// Everything printed, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `kldrun ARGS...`.
pub fn kldrun<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kldrun"))
        .args(args)
        .output()
        .expect("run kldrun");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A scratch directory under `target/kmod/kldrun-tests/` named after the test, emptied.
pub fn scratch(name: &str) -> PathBuf {
    let d = kmod_out().join("kldrun-tests").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch directory");
    d
}

/// The root entries makefs put on the image, as mountroot prints them.
pub fn root_entries() -> String {
    let mut v: Vec<String> = isboot_tests::rootfs::mountroot(
        &mut |off, len| {
            let b = &isboot_tests::rootfs::test_image().bytes;
            Ok(b[off as usize..off as usize + len].to_vec())
        },
        512,
    )
    .expect("the image's own root")
    .entries;
    v.sort();
    v.join(",")
}
