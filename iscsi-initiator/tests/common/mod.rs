//! Real iSCSI targets on loopback for the integration tests: tgtd (Debian `tgt`) and istgt
//! (Debian `istgt`), each started on free ports in a private directory and stopped by a Drop
//! guard even when the test fails. A missing target binary fails the test with a clear message.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use iscsi_initiator::chap::Secret;
use iscsi_initiator::login::{ChapConfig, Isid, LoginConfig, MutualChap, SessionType};
use iscsi_initiator::negotiate::{DigestChoice, OperationalConfig};
use iscsi_initiator::session::{Portal, Session, SessionConfig};
use iscsi_initiator::transport::{Client, Clock, StdClock, TcpTransport, Transport};
use iscsi_initiator::Duration;

pub const IQN: &str = "iqn.2024-01.org.isboot.test:disk";
pub const INITIATOR: &str = "iqn.2024-01.org.isboot.test:initiator";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Find a program on PATH or in the sbin directories, or fail the test saying how to get it.
pub fn require(bin: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(
        ["/usr/sbin", "/sbin", "/usr/local/sbin"]
            .iter()
            .map(PathBuf::from),
    );
    for d in dirs {
        let p = d.join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{bin}` is required for this test but was not found: install the Debian package `{package}` (apt-get install -y {package})");
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A private scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("isboot-iscsi-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create scratch dir");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Deterministic, position-dependent bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn wait_port(port: u16, timeout: StdDuration) -> bool {
    let end = StdInstant::now() + timeout;
    while StdInstant::now() < end {
        if TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            StdDuration::from_millis(200),
        )
        .is_ok()
        {
            return true;
        }
        std::thread::sleep(StdDuration::from_millis(50));
    }
    false
}

fn wait_exit(child: &mut Child, timeout: StdDuration) -> bool {
    let end = StdInstant::now() + timeout;
    while StdInstant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(StdDuration::from_millis(50));
    }
    false
}

/// Target options shared by both targets.
#[derive(Clone, Default)]
pub struct TargetOpts {
    pub size: u64,
    pub chap: Option<(String, String)>,
    pub mutual: Option<(String, String)>,
    /// Allow CRC32C digests (tgtd needs it configured; istgt negotiates them when asked).
    pub digests: bool,
    /// Accept only this initiator address (a login from 127.0.0.1 is then refused).
    pub only_address: Option<String>,
}

impl TargetOpts {
    pub fn disk(size: u64) -> Self {
        Self {
            size,
            ..Default::default()
        }
    }
}

/// A running tgtd.
pub struct Tgtd {
    pub port: u16,
    /// tgtd's management channel number (`-C`), which must stay below 32768.
    ctl: u16,
    pub image: PathBuf,
    child: Option<Child>,
    opts: TargetOpts,
    dir: Scratch,
}

impl Tgtd {
    pub fn start(opts: TargetOpts) -> Tgtd {
        let dir = Scratch::new("tgtd");
        let image = dir.0.join("disk.img");
        let f = fs::File::create(&image).expect("create image");
        f.set_len(opts.size).expect("size image");
        let port = free_port();
        // A channel number nobody uses: derived from the port, moved on if its socket exists.
        let mut ctl = 1000 + (port % 30000);
        while Path::new(&format!("/var/run/tgtd/socket.{ctl}")).exists() {
            ctl = 1000 + ((ctl - 1000 + 7919) % 30000);
        }
        let mut t = Tgtd {
            port,
            ctl,
            image,
            child: None,
            opts,
            dir,
        };
        t.launch();
        t
    }

    fn tgtadm(&self, args: &[&str]) -> bool {
        let port = self.ctl.to_string();
        Command::new(require("tgtadm", "tgt"))
            .args(["-C", &port, "--lld", "iscsi"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn launch(&mut self) {
        let tgtd = require("tgtd", "tgt");
        let log = fs::File::create(self.dir.0.join("tgtd.log")).expect("log file");
        let child = Command::new(tgtd)
            .args([
                "-f",
                "-C",
                &self.ctl.to_string(),
                "--iscsi",
                &format!("portal=127.0.0.1:{}", self.port),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn tgtd");
        self.child = Some(child);
        // TIMEOUT: 10 s for tgtd to answer on its management channel.
        let end = StdInstant::now() + StdDuration::from_secs(10);
        while !self.tgtadm(&["--op", "show", "--mode", "system"]) {
            if StdInstant::now() >= end {
                let log = fs::read_to_string(self.dir.0.join("tgtd.log")).unwrap_or_default();
                panic!("tgtd did not start on port {}: {log}", self.port);
            }
            std::thread::sleep(StdDuration::from_millis(50));
        }
        assert!(self.tgtadm(&["--op", "new", "--mode", "target", "--tid", "1", "-T", IQN]));
        let img = self.image.to_string_lossy().to_string();
        assert!(self.tgtadm(&[
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            "1",
            "--lun",
            "1",
            "-b",
            &img
        ]));
        let who = self
            .opts
            .only_address
            .clone()
            .unwrap_or_else(|| "ALL".into());
        assert!(self.tgtadm(&["--op", "bind", "--mode", "target", "--tid", "1", "-I", &who]));
        if let Some((u, s)) = self.opts.chap.clone() {
            assert!(self.tgtadm(&[
                "--op",
                "new",
                "--mode",
                "account",
                "--user",
                &u,
                "--password",
                &s
            ]));
            assert!(self.tgtadm(&["--op", "bind", "--mode", "account", "--tid", "1", "--user", &u]));
        }
        if let Some((u, s)) = self.opts.mutual.clone() {
            assert!(self.tgtadm(&[
                "--op",
                "new",
                "--mode",
                "account",
                "--user",
                &u,
                "--password",
                &s
            ]));
            assert!(self.tgtadm(&[
                "--op",
                "bind",
                "--mode",
                "account",
                "--tid",
                "1",
                "--user",
                &u,
                "--outgoing"
            ]));
        }
        if self.opts.digests {
            for k in ["HeaderDigest", "DataDigest"] {
                assert!(self.tgtadm(&[
                    "--op",
                    "update",
                    "--mode",
                    "target",
                    "--tid",
                    "1",
                    "-n",
                    k,
                    "-v",
                    "CRC32C,None"
                ]));
            }
        }
        assert!(
            wait_port(self.port, StdDuration::from_secs(5)),
            "tgtd portal not listening"
        );
    }

    /// Kill the target abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::remove_file(format!("/var/run/tgtd/socket.{}", self.ctl));
        let _ = fs::remove_file(format!("/var/run/tgtd/socket.{}.lock", self.ctl));
    }

    /// Start it again on the same port with the same backing file.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        // tgtd ignores SIGTERM: delete the target and the system through tgtadm, then kill.
        if let Some(mut c) = self.child.take() {
            let _ = self.tgtadm(&[
                "--op", "delete", "--mode", "target", "--tid", "1", "--force",
            ]);
            let _ = self.tgtadm(&["--op", "delete", "--mode", "system", "--force"]);
            if !wait_exit(&mut c, StdDuration::from_secs(5)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = fs::remove_file(format!("/var/run/tgtd/socket.{}", self.ctl));
        let _ = fs::remove_file(format!("/var/run/tgtd/socket.{}.lock", self.ctl));
    }
}

/// A running istgt.
pub struct Istgt {
    pub port: u16,
    pub image: PathBuf,
    child: Option<Child>,
    dir: Scratch,
    conf: PathBuf,
}

impl Istgt {
    pub fn start(opts: TargetOpts) -> Istgt {
        Self::start_with(opts, None)
    }

    /// Start, after `prepare` has written into the backing file.
    pub fn start_with(opts: TargetOpts, prepare: Option<fn(&Path)>) -> Istgt {
        require("istgt", "istgt");
        let dir = Scratch::new("istgt");
        let image = dir.0.join("disk.img");
        let f = fs::File::create(&image).expect("create image");
        f.set_len(opts.size).expect("size image");
        drop(f);
        if let Some(p) = prepare {
            p(&image);
        }
        let port = free_port();
        let uport = free_port();
        let auth = dir.0.join("auth.conf");
        let mut a = fs::File::create(&auth).expect("auth.conf");
        writeln!(a, "[AuthGroup1]").unwrap();
        match (&opts.chap, &opts.mutual) {
            (Some((u, s)), Some((tu, ts))) => {
                writeln!(a, "  Auth \"{u}\" \"{s}\" \"{tu}\" \"{ts}\"").unwrap()
            }
            (Some((u, s)), None) => writeln!(a, "  Auth \"{u}\" \"{s}\"").unwrap(),
            _ => writeln!(a, "  Auth \"nobody\" \"nobodysecret1\"").unwrap(),
        }
        drop(a);
        let method = match (&opts.chap, &opts.mutual) {
            (Some(_), Some(_)) => "CHAP Mutual",
            (Some(_), None) => "CHAP",
            _ => "None",
        };
        let (prefix, netmask) = match &opts.only_address {
            Some(a) => (a.clone(), format!("{a}/32")),
            None => ("ALL".into(), "127.0.0.0/8".into()),
        };
        let _ = prefix;
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
  Portal DA1 127.0.0.1:{port}
[InitiatorGroup1]
  InitiatorName \"ALL\"
  Netmask {netmask}
[LogicalUnit1]
  TargetName {IQN}
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
            img = image.display(),
        );
        fs::write(&conf, text).expect("istgt.conf");
        let mut t = Istgt {
            port,
            image,
            child: None,
            dir,
            conf,
        };
        t.launch();
        t
    }

    fn launch(&mut self) {
        let bin = require("istgt", "istgt");
        let log = fs::File::create(self.dir.0.join("istgt.log")).expect("log");
        let child = Command::new(bin)
            .args(["-D", "-q", "-c"])
            .arg(&self.conf)
            .arg("-p")
            .arg(self.dir.0.join("istgt.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn istgt");
        self.child = Some(child);
        if !wait_port(self.port, StdDuration::from_secs(10)) {
            let log = fs::read_to_string(self.dir.0.join("istgt.log")).unwrap_or_default();
            self.stop();
            panic!("istgt did not start on port {}: {log}", self.port);
        }
    }

    /// Kill the target abruptly (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kill it and start it again with the same configuration and backing file.
    pub fn restart(&mut self) {
        self.kill();
        // TIMEOUT: the listening port can linger briefly after the kill; retry for 10 s.
        let end = StdInstant::now() + StdDuration::from_secs(10);
        loop {
            if TcpListener::bind(("127.0.0.1", self.port)).is_ok() || StdInstant::now() >= end {
                break;
            }
            std::thread::sleep(StdDuration::from_millis(100));
        }
        self.launch();
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            if !wait_exit(&mut c, StdDuration::from_secs(5)) {
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

pub fn chap(user: &str, secret: &str, mutual: Option<(&str, &str)>) -> ChapConfig {
    ChapConfig {
        user: user.into(),
        secret: Secret::from_slice(secret.as_bytes()),
        mutual: mutual.map(|(u, s)| MutualChap {
            target_user: u.into(),
            target_secret: Secret::from_slice(s.as_bytes()),
        }),
    }
}

pub fn login_config(
    target: Option<&str>,
    chap: Option<ChapConfig>,
    digest: DigestChoice,
) -> LoginConfig {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    seed[4..8].copy_from_slice(&std::process::id().to_le_bytes());
    LoginConfig {
        initiator_name: INITIATOR.into(),
        initiator_alias: None,
        target_name: target.map(String::from),
        session_type: if target.is_some() {
            SessionType::Normal
        } else {
            SessionType::Discovery
        },
        isid: Isid::derive(b"integration-test-host", INITIATOR, n as u16),
        chap,
        operational: OperationalConfig {
            header_digest: digest,
            data_digest: digest,
            ..Default::default()
        },
        entropy_seed: seed,
    }
}

pub type TestClient = Client<TcpTransport, StdClock>;

pub fn client_with(
    port: u16,
    login: LoginConfig,
    tweak: impl FnOnce(&mut SessionConfig),
) -> TestClient {
    client_over(TcpTransport::new(), port, login, tweak)
}

/// A client over any transport (a test's wrapper around the host one), with the tests' timeouts.
pub fn client_over<T: Transport>(
    transport: T,
    port: u16,
    login: LoginConfig,
    tweak: impl FnOnce(&mut SessionConfig),
) -> Client<T, StdClock> {
    let mut cfg = SessionConfig::new(
        login,
        Portal {
            host: "127.0.0.1".into(),
            port,
        },
    );
    cfg.login_timeout = Duration::from_secs(10);
    cfg.ping_interval = Duration::from_secs(2);
    cfg.ping_timeout = Duration::from_secs(5);
    cfg.recovery_timeout = Duration::from_secs(60);
    tweak(&mut cfg);
    let clock = StdClock::default();
    let session = Session::new(cfg, clock.now());
    Client::new(session, transport, clock)
}

pub fn client(port: u16, login: LoginConfig) -> TestClient {
    client_with(port, login, |_| {})
}

pub fn read_image(p: &Path, offset: u64, len: usize) -> Vec<u8> {
    let data = fs::read(p).expect("read backing file");
    data[offset as usize..offset as usize + len].to_vec()
}

pub fn write_image(p: &Path, offset: u64, bytes: &[u8]) {
    let mut data = fs::read(p).expect("read backing file");
    data[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
    fs::write(p, data).expect("write backing file");
}

/// A target the tests can crash and bring back.
pub trait Restartable: Send + 'static {
    fn kill(&mut self);
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
