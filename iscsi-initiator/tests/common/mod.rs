//! What the integration tests share: the real targets (tgtd, istgt) from the project's one
//! harness (`isboot_tests::target`), and login configurations and clients for them.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use iscsi_initiator::chap::Secret;
use iscsi_initiator::login::{ChapConfig, Isid, LoginConfig, MutualChap, SessionType};
use iscsi_initiator::negotiate::{DigestChoice, OperationalConfig};
use iscsi_initiator::session::{Portal, Session, SessionConfig};
use iscsi_initiator::transport::{Client, Clock, StdClock, TcpTransport, Transport};
use iscsi_initiator::Duration;

pub const INITIATOR: &str = "iqn.2024-01.org.isboot.test:initiator";

#[allow(unused_imports)]
pub use isboot_tests::target::{free_port, Istgt, Restartable, TargetOpts, Tgtd, IQN};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Finds a program on PATH or in the sbin directories, or fails the test saying how to get it.
pub fn require(bin: &str, package: &str) -> PathBuf {
    isboot_tests::target::find(bin, package).unwrap_or_else(|e| panic!("{e}"))
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
