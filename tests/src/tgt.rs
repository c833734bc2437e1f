//! A real tgtd (Debian's `tgt`) serving one LUN from a file, for a test.
//!
//! tgtd listens on the portal given; its management channel is a Unix socket
//! `/var/run/tgtd/socket.N` chosen here (N below 32768, unused). The disk is LUN 1 (LUN 0 is
//! tgt's controller). tgtd ignores SIGTERM: it is stopped through tgtadm, then killed if need
//! be. Start it inside [`crate::netns::run`] to keep its portal on a private loopback.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{have, wait_for, TempDir};

/// A running tgtd; stopped and its files removed on drop.
#[derive(Debug)]
pub struct Tgtd {
    child: Child,
    ctl: u16,
    /// The portal.
    pub portal: SocketAddr,
    /// The target's name.
    pub iqn: String,
    /// The LUN's backing file.
    pub image: PathBuf,
    _dir: TempDir,
}

fn adm(ctl: u16, args: &[&str]) -> bool {
    Command::new("tgtadm")
        .arg("-C")
        .arg(ctl.to_string())
        .args(["--lld", "iscsi"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_ctl() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    loop {
        let n = 20_000
            + (std::process::id() as u16 % 5000) * 2
            + NEXT.fetch_add(1, Ordering::Relaxed) % 2000;
        if !Path::new(&format!("/var/run/tgtd/socket.{n}")).exists() {
            return n;
        }
    }
}

impl Tgtd {
    /// Starts tgtd on `portal` with target `iqn` whose LUN 1 holds `disk`.
    pub fn start(portal: SocketAddr, iqn: &str, disk: &[u8]) -> io::Result<Tgtd> {
        if !have("tgtd") || !have("tgtadm") {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "tgtd/tgtadm not found: apt-get install tgt",
            ));
        }
        let dir = TempDir::new("tgtd")?;
        let image = dir.0.join("lun1.img");
        std::fs::write(&image, disk)?;
        let ctl = free_ctl();
        let child = Command::new("tgtd")
            .args(["-f", "-C", &ctl.to_string(), "--iscsi"])
            .arg(format!("portal={portal}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut t = Tgtd {
            child,
            ctl,
            portal,
            iqn: iqn.into(),
            image,
            _dir: dir,
        };
        // TIMEOUT: 10 s for tgtd to answer on its management channel.
        if wait_for(Duration::from_secs(10), || {
            adm(ctl, &["--op", "show", "--mode", "system"]).then_some(())
        })
        .is_none()
        {
            t.stop();
            return Err(io::Error::other(format!("tgtd did not start on {portal}")));
        }
        let image = t.image.to_string_lossy().into_owned();
        let ok = adm(
            ctl,
            &["--op", "new", "--mode", "target", "--tid", "1", "-T", iqn],
        ) && adm(
            ctl,
            &[
                "--op",
                "new",
                "--mode",
                "logicalunit",
                "--tid",
                "1",
                "--lun",
                "1",
                "-b",
                &image,
            ],
        ) && adm(
            ctl,
            &[
                "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL",
            ],
        );
        if !ok {
            t.stop();
            return Err(io::Error::other("tgtadm could not set the target up"));
        }
        Ok(t)
    }

    fn stop(&mut self) {
        let c = self.ctl;
        adm(
            c,
            &[
                "--op", "delete", "--mode", "target", "--tid", "1", "--force",
            ],
        );
        adm(c, &["--op", "delete", "--mode", "system", "--force"]);
        if wait_for(Duration::from_secs(5), || {
            self.child.try_wait().ok().flatten()
        })
        .is_none()
        {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(format!("/var/run/tgtd/socket.{c}"));
        let _ = std::fs::remove_file(format!("/var/run/tgtd/socket.{c}.lock"));
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        self.stop();
    }
}
