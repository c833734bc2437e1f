//! Real iSCSI targets for tests, the demo and the bench: tgtd (Debian's `tgt`) and istgt
//! (Debian's `istgt`), each serving one LUN from a file in a private directory, with optional
//! CHAP, mutual CHAP, digests and an initiator-address restriction; killed and restarted on
//! demand (as a crash would), stopped by a Drop guard even when the test fails.
//!
//! Start them inside [`crate::netns::run`] (or on 127.0.0.1) so that their portals stay on a
//! private loopback. [`Tgtd::try_start`] and [`Istgt::try_start`] return an error saying what
//! failed (a missing binary names the package to install); `start` panics with that message,
//! for tests.

use std::fs;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{wait_for, TempDir};

/// The target name the tests use unless told otherwise.
pub const IQN: &str = "iqn.2024-01.org.isboot.test:disk";

/// The LUN's contents.
#[derive(Clone, Debug)]
pub enum Disk {
    /// A sparse file of this many bytes (reads as zeroes).
    Zeroes(u64),
    /// These bytes.
    Bytes(Vec<u8>),
}

impl Default for Disk {
    fn default() -> Self {
        Disk::Zeroes(16 << 20)
    }
}

/// What to serve, and how.
#[derive(Clone, Debug)]
pub struct TargetOpts {
    /// The portal; `None` is 127.0.0.1 on a free port.
    pub portal: Option<SocketAddr>,
    /// The target name.
    pub iqn: String,
    /// The LUN (tgtd: LUN 1, LUN 0 being its controller; istgt: LUN 0).
    pub disk: Disk,
    /// CHAP: the initiator's user and secret.
    pub chap: Option<(String, String)>,
    /// Mutual CHAP: the target's user and secret.
    pub mutual: Option<(String, String)>,
    /// Allow CRC32C digests (tgtd needs it configured; istgt negotiates them when asked).
    pub digests: bool,
    /// Accept only this initiator address (a login from elsewhere is then refused).
    pub only_address: Option<String>,
}

impl Default for TargetOpts {
    fn default() -> Self {
        Self {
            portal: None,
            iqn: IQN.into(),
            disk: Disk::default(),
            chap: None,
            mutual: None,
            digests: false,
            only_address: None,
        }
    }
}

impl TargetOpts {
    /// A zero-filled LUN of `size` bytes on a free loopback port.
    pub fn disk(size: u64) -> Self {
        Self {
            disk: Disk::Zeroes(size),
            ..Default::default()
        }
    }

    /// A LUN holding `bytes`.
    pub fn bytes(bytes: Vec<u8>) -> Self {
        Self {
            disk: Disk::Bytes(bytes),
            ..Default::default()
        }
    }

    /// With CHAP (and mutual CHAP when `mutual` is given).
    pub fn with_chap(mut self, user: &str, secret: &str, mutual: Option<(&str, &str)>) -> Self {
        self.chap = Some((user.into(), secret.into()));
        self.mutual = mutual.map(|(u, s)| (u.into(), s.into()));
        self
    }
}

/// Finds a program on PATH or in the sbin directories, or says which package has it.
pub fn find(bin: &str, package: &str) -> io::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("`{bin}` not found: install the Debian package `{package}` (apt-get install -y {package})"),
            )
        })
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(3260)
}

fn portal_of(opts: &TargetOpts) -> SocketAddr {
    opts.portal
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())))
}

fn write_disk(path: &Path, disk: &Disk) -> io::Result<()> {
    match disk {
        Disk::Zeroes(n) => fs::File::create(path)?.set_len(*n),
        Disk::Bytes(b) => fs::write(path, b),
    }
}

fn listening(portal: SocketAddr, timeout: Duration) -> bool {
    wait_for(timeout, || {
        TcpStream::connect_timeout(&portal, Duration::from_millis(200))
            .ok()
            .map(|_| ())
    })
    .is_some()
}

fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    wait_for(timeout, || child.try_wait().ok().flatten()).is_some()
}

fn log_tail(p: &Path) -> String {
    let s = fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A running tgtd.
#[derive(Debug)]
pub struct Tgtd {
    /// The portal.
    pub portal: SocketAddr,
    /// The portal's port.
    pub port: u16,
    /// The target's name.
    pub iqn: String,
    /// The LUN's backing file.
    pub image: PathBuf,
    /// tgtd's management channel number (`-C`), below 32768.
    ctl: u16,
    child: Option<Child>,
    opts: TargetOpts,
    dir: TempDir,
}

impl Tgtd {
    /// Starts tgtd; panics with the reason when it cannot.
    pub fn start(opts: TargetOpts) -> Tgtd {
        Self::try_start(opts).unwrap_or_else(|e| panic!("tgtd: {e}"))
    }

    /// Starts tgtd serving `opts`.
    pub fn try_start(opts: TargetOpts) -> io::Result<Tgtd> {
        find("tgtd", "tgt")?;
        find("tgtadm", "tgt")?;
        let dir = TempDir::new("tgtd")?;
        let image = dir.0.join("lun1.img");
        write_disk(&image, &opts.disk)?;
        let portal = portal_of(&opts);
        // A channel number nobody uses: derived from the port and this process (tests in
        // other processes and namespaces use the same port, and /var/run/tgtd is shared), moved
        // on if its socket exists.
        let seed = u32::from(portal.port()).wrapping_add(std::process::id().wrapping_mul(7919));
        let mut ctl = 1000 + (seed % 30000) as u16;
        while Path::new(&format!("/var/run/tgtd/socket.{ctl}")).exists() {
            ctl = 1000 + ((ctl - 1000 + 7919) % 30000);
        }
        let mut t = Tgtd {
            portal,
            port: portal.port(),
            iqn: opts.iqn.clone(),
            image,
            ctl,
            child: None,
            opts,
            dir,
        };
        t.launch()?;
        Ok(t)
    }

    /// Runs tgtadm, bounded: tgtadm can wait for ever on a tgtd that is going away.
    fn adm(&self, args: &[&str]) -> bool {
        let Ok(mut child) = Command::new("tgtadm")
            .args(["-C", &self.ctl.to_string(), "--lld", "iscsi"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return false;
        };
        // TIMEOUT: 10 s for one management command.
        match wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten()) {
            Some(status) => status.success(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                false
            }
        }
    }

    fn adm_or(&self, args: &[&str]) -> io::Result<()> {
        if self.adm(args) {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "tgtadm {} failed",
                args.join(" ")
            )))
        }
    }

    fn launch(&mut self) -> io::Result<()> {
        let log_path = self.dir.0.join("tgtd.log");
        let log = fs::File::create(&log_path)?;
        let child = Command::new(find("tgtd", "tgt")?)
            .args(["-f", "-C", &self.ctl.to_string(), "--iscsi"])
            .arg(format!("portal={}", self.portal))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        // TIMEOUT: 10 s for tgtd to answer on its management channel.
        if wait_for(Duration::from_secs(10), || {
            self.adm(&["--op", "show", "--mode", "system"])
                .then_some(())
        })
        .is_none()
        {
            self.stop();
            return Err(io::Error::other(format!(
                "tgtd did not start on {}: {}",
                self.portal,
                log_tail(&log_path)
            )));
        }
        let r = self.configure();
        if r.is_err() {
            self.stop();
        }
        r
    }

    fn configure(&self) -> io::Result<()> {
        let img = self.image.to_string_lossy().into_owned();
        let tid = ["--tid", "1"];
        self.adm_or(
            &[
                &["--op", "new", "--mode", "target"][..],
                &tid,
                &["-T", &self.iqn],
            ]
            .concat(),
        )?;
        self.adm_or(
            &[
                &["--op", "new", "--mode", "logicalunit"][..],
                &tid,
                &["--lun", "1", "-b", &img],
            ]
            .concat(),
        )?;
        let who = self.opts.only_address.as_deref().unwrap_or("ALL");
        self.adm_or(
            &[
                &["--op", "bind", "--mode", "target"][..],
                &tid,
                &["-I", who],
            ]
            .concat(),
        )?;
        for (account, outgoing) in [(&self.opts.chap, false), (&self.opts.mutual, true)] {
            if let Some((u, s)) = account {
                self.adm_or(&[
                    "--op",
                    "new",
                    "--mode",
                    "account",
                    "--user",
                    u,
                    "--password",
                    s,
                ])?;
                let mut bind = [
                    &["--op", "bind", "--mode", "account"][..],
                    &tid,
                    &["--user", u],
                ]
                .concat();
                if outgoing {
                    bind.push("--outgoing");
                }
                self.adm_or(&bind)?;
            }
        }
        if self.opts.digests {
            for k in ["HeaderDigest", "DataDigest"] {
                self.adm_or(
                    &[
                        &["--op", "update", "--mode", "target"][..],
                        &tid,
                        &["-n", k, "-v", "CRC32C,None"],
                    ]
                    .concat(),
                )?;
            }
        }
        if !listening(self.portal, Duration::from_secs(5)) {
            return Err(io::Error::other(format!(
                "tgtd's portal {} is not listening",
                self.portal
            )));
        }
        Ok(())
    }

    /// Kills the target abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.remove_socket();
    }

    /// Starts it again on the same portal with the same backing file; panics when it cannot.
    pub fn restart(&mut self) {
        self.kill();
        self.launch()
            .unwrap_or_else(|e| panic!("tgtd restart: {e}"));
    }

    fn remove_socket(&self) {
        let _ = fs::remove_file(format!("/var/run/tgtd/socket.{}", self.ctl));
        let _ = fs::remove_file(format!("/var/run/tgtd/socket.{}.lock", self.ctl));
    }

    fn stop(&mut self) {
        // tgtd ignores SIGTERM: delete the target and the system through tgtadm, then kill.
        if let Some(mut c) = self.child.take() {
            self.adm(&[
                "--op", "delete", "--mode", "target", "--tid", "1", "--force",
            ]);
            // tgtd may already be gone (deleting its last target can end it): tgtadm would
            // then wait on its socket.
            if c.try_wait().ok().flatten().is_none() {
                self.adm(&["--op", "delete", "--mode", "system", "--force"]);
            }
            if !wait_exit(&mut c, Duration::from_secs(5)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.remove_socket();
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running istgt.
#[derive(Debug)]
pub struct Istgt {
    /// The portal.
    pub portal: SocketAddr,
    /// The portal's port.
    pub port: u16,
    /// The LUN's backing file.
    pub image: PathBuf,
    child: Option<Child>,
    dir: TempDir,
    conf: PathBuf,
}

impl Istgt {
    /// Starts istgt; panics with the reason when it cannot.
    pub fn start(opts: TargetOpts) -> Istgt {
        Self::start_with(opts, None)
    }

    /// Starts istgt after `prepare` has written into the backing file; panics with the reason
    /// when it cannot.
    pub fn start_with(opts: TargetOpts, prepare: Option<fn(&Path)>) -> Istgt {
        Self::try_start(opts, prepare).unwrap_or_else(|e| panic!("istgt: {e}"))
    }

    /// Starts istgt serving `opts` (its LUN 0), after `prepare` has written into the file.
    pub fn try_start(opts: TargetOpts, prepare: Option<fn(&Path)>) -> io::Result<Istgt> {
        find("istgt", "istgt")?;
        let dir = TempDir::new("istgt")?;
        let image = dir.0.join("disk.img");
        write_disk(&image, &opts.disk)?;
        if let Some(p) = prepare {
            p(&image);
        }
        let portal = portal_of(&opts);
        let uport = free_port();
        let auth = dir.0.join("auth.conf");
        let mut a = fs::File::create(&auth)?;
        writeln!(a, "[AuthGroup1]")?;
        match (&opts.chap, &opts.mutual) {
            (Some((u, s)), Some((tu, ts))) => {
                writeln!(a, "  Auth \"{u}\" \"{s}\" \"{tu}\" \"{ts}\"")?
            }
            (Some((u, s)), None) => writeln!(a, "  Auth \"{u}\" \"{s}\"")?,
            _ => writeln!(a, "  Auth \"nobody\" \"nobodysecret1\"")?,
        }
        drop(a);
        let method = match (&opts.chap, &opts.mutual) {
            (Some(_), Some(_)) => "CHAP Mutual",
            (Some(_), None) => "CHAP",
            _ => "None",
        };
        let netmask = match &opts.only_address {
            Some(a) => format!("{a}/32"),
            None => match portal.ip() {
                std::net::IpAddr::V4(ip) if ip.is_loopback() => "127.0.0.0/8".into(),
                _ => "ALL".into(),
            },
        };
        let conf = dir.0.join("istgt.conf");
        let text = format!(
            "[Global]
  NodeBase \"iqn.2024-01.org.isboot.test\"
  PidFile {pid}
  AuthFile {auth}
  MediaDirectory {dir}
  Timeout 30
  NopInInterval 20
  DiscoveryAuthMethod None
  MaxSessions 16
  MaxConnections 1
  MaxR2T 32
  MaxOutstandingR2T 16
  DefaultTime2Wait 0
  DefaultTime2Retain 0
  FirstBurstLength 65536
  MaxBurstLength 262144
  MaxRecvDataSegmentLength 65536
  InitialR2T Yes
  ImmediateData Yes
  DataPDUInOrder Yes
  DataSequenceInOrder Yes
  ErrorRecoveryLevel 0
[UnitControl]
  AuthMethod None
  Portal UC1 127.0.0.1:{uport}
  Netmask 127.0.0.1
[PortalGroup1]
  Portal DA1 {portal}
[InitiatorGroup1]
  InitiatorName \"ALL\"
  Netmask {netmask}
[LogicalUnit1]
  TargetName {iqn}
  Mapping PortalGroup1 InitiatorGroup1
  AuthMethod {method}
  AuthGroup AuthGroup1
  UseDigest Auto
  UnitType Disk
  LUN0 Storage {img} Auto
",
            pid = dir.0.join("istgt.pid").display(),
            auth = auth.display(),
            dir = dir.0.display(),
            iqn = opts.iqn,
            img = image.display(),
        );
        fs::write(&conf, text)?;
        let mut t = Istgt {
            portal,
            port: portal.port(),
            image,
            child: None,
            dir,
            conf,
        };
        t.launch()?;
        Ok(t)
    }

    fn launch(&mut self) -> io::Result<()> {
        let log_path = self.dir.0.join("istgt.log");
        let log = fs::File::create(&log_path)?;
        let child = Command::new(find("istgt", "istgt")?)
            .args(["-D", "-q", "-c"])
            .arg(&self.conf)
            .arg("-p")
            .arg(self.dir.0.join("istgt.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        // TIMEOUT: 10 s for istgt to listen.
        if !listening(self.portal, Duration::from_secs(10)) {
            self.stop();
            return Err(io::Error::other(format!(
                "istgt did not start on {}: {}",
                self.portal,
                log_tail(&log_path)
            )));
        }
        Ok(())
    }

    /// Kills the target abruptly (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts it again with the same configuration and backing file; panics when
    /// it cannot.
    pub fn restart(&mut self) {
        self.kill();
        // TIMEOUT: the listening port can linger briefly after the kill; retry for 10 s.
        let end = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind(self.portal).is_err() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.launch()
            .unwrap_or_else(|e| panic!("istgt restart: {e}"));
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM lets istgt remove its pid file; SIGKILL after 5 s.
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            if !wait_exit(&mut c, Duration::from_secs(5)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Istgt {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A target a test can crash and bring back.
pub trait Restartable: Send + 'static {
    /// Kills it (SIGKILL).
    fn kill(&mut self);
    /// Starts it again.
    fn restart(&mut self);
}

impl Restartable for Tgtd {
    fn kill(&mut self) {
        Tgtd::kill(self)
    }
    fn restart(&mut self) {
        Tgtd::restart(self)
    }
}

impl Restartable for Istgt {
    fn kill(&mut self) {
        Istgt::kill(self)
    }
    fn restart(&mut self) {
        Istgt::restart(self)
    }
}
