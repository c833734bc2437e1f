//! Integration tests against real targets on loopback: tgtd and istgt, started per test.
#![cfg(feature = "std")]

mod common;

use std::time::{Duration as StdDuration, Instant as StdInstant};

use common::*;
use iscsi_initiator::block::{BlockDevice, BlockError};
use iscsi_initiator::login::LoginError;
use iscsi_initiator::negotiate::DigestChoice;
use iscsi_initiator::scsi::{self, Capacity, Cdb, Inquiry, Lun, ScsiStatus, SenseKey};
use iscsi_initiator::session::{Completion, Direction, SessionError};
use iscsi_initiator::transport::ClientError;
use iscsi_initiator::wire::text::pairs;
use iscsi_initiator::Duration;

const MIB: u64 = 1024 * 1024;
const LOGIN: Duration = Duration::from_secs(15);

fn good(c: &mut TestClient, lun: Lun, cdb: Cdb, dir: Direction, buf: Vec<u8>, len: u32) -> Vec<u8> {
    let (o, buf) = c
        .execute(lun, cdb, dir, buf, len)
        .unwrap_or_else(|e| panic!("{cdb:?}: {e}"));
    assert_eq!(o.status, ScsiStatus::GOOD, "{cdb:?}: {o:?}");
    assert_eq!(o.transferred, len, "{cdb:?} transferred");
    buf
}

/// Everything a boot disk needs, checked against the target's backing file.
fn exercise(c: &mut TestClient, lun: Lun, image: &std::path::Path, size: u64, preloaded: &[u8]) {
    // INQUIRY standard and VPD pages.
    let (o, buf) = c
        .execute(
            lun,
            Cdb::inquiry(None, 96),
            Direction::Read,
            vec![0; 96],
            96,
        )
        .expect("INQUIRY");
    assert_eq!(o.status, ScsiStatus::GOOD);
    let inq = Inquiry::parse(&buf[..o.transferred as usize]).expect("standard INQUIRY");
    assert_eq!(inq.device_type, 0, "LUN {lun:?} is a block device");
    for page in [0x80u8, 0x83] {
        let (o, buf) = c
            .execute(
                lun,
                Cdb::inquiry(Some(page), 255),
                Direction::Read,
                vec![0; 255],
                255,
            )
            .expect("VPD");
        assert_eq!(o.status, ScsiStatus::GOOD, "VPD {page:#x}");
        let data = &buf[..o.transferred as usize];
        if page == 0x80 {
            scsi::parse_unit_serial(data).expect("VPD 0x80");
        } else {
            assert!(!scsi::parse_device_identification(data)
                .expect("VPD 0x83")
                .is_empty());
        }
    }
    // TEST UNIT READY (a pending UNIT ATTENTION is retried inside the session).
    let (o, _) = c
        .execute(lun, Cdb::test_unit_ready(), Direction::None, Vec::new(), 0)
        .expect("TUR");
    assert_eq!(o.status, ScsiStatus::GOOD);
    // READ CAPACITY (10) and (16) agree with the backing file.
    let b = good(
        c,
        lun,
        Cdb::read_capacity10(),
        Direction::Read,
        vec![0; 8],
        8,
    );
    let cap = Capacity::parse10(&b).unwrap();
    assert_eq!(cap.bytes(), size);
    let (o, b) = c
        .execute(
            lun,
            Cdb::read_capacity16(32),
            Direction::Read,
            vec![0; 32],
            32,
        )
        .expect("RC16");
    assert_eq!(o.status, ScsiStatus::GOOD);
    assert_eq!(Capacity::parse16(&b).unwrap(), cap);
    // REPORT LUNS lists our LUN.
    let (o, b) = c
        .execute(
            lun,
            Cdb::report_luns(4096),
            Direction::Read,
            vec![0; 4096],
            4096,
        )
        .expect("REPORT LUNS");
    assert_eq!(o.status, ScsiStatus::GOOD);
    let luns = scsi::parse_report_luns(&b[..o.transferred as usize]).unwrap();
    assert!(
        luns.iter().any(|l| Lun(*l).number() == lun.number()),
        "{luns:?}"
    );
    // READ (10) of data written into the backing file before the target started.
    let n = preloaded.len();
    let b = good(
        c,
        lun,
        Cdb::read(0, (n / 512) as u32),
        Direction::Read,
        vec![0; n],
        n as u32,
    );
    assert!(
        b == preloaded,
        "READ (10) data differs from the backing file"
    );
    // One 3 MiB WRITE (16): larger than FirstBurstLength and MaxBurstLength, so it needs
    // immediate data and several R2Ts.
    let data = pattern(3 * MIB as usize, 77);
    let lba = 4096u64;
    good(
        c,
        lun,
        Cdb::write16(lba, (data.len() / 512) as u32),
        Direction::Write,
        data.clone(),
        data.len() as u32,
    );
    good(
        c,
        lun,
        Cdb::synchronize_cache(),
        Direction::None,
        Vec::new(),
        0,
    );
    assert!(
        read_image(image, lba * 512, data.len()) == data,
        "backing file differs after WRITE (16)"
    );
    let b = good(
        c,
        lun,
        Cdb::read16(lba, (data.len() / 512) as u32),
        Direction::Read,
        vec![0; data.len()],
        data.len() as u32,
    );
    assert!(b == data, "READ (16) differs from what was written");
    // Many commands in flight at once, within the CmdSN window.
    let s = c.session_mut();
    let mut expect = std::collections::HashMap::new();
    for i in 0..16u64 {
        let d = pattern(64 * 1024, 1000 + i);
        let h = s
            .submit(
                lun,
                Cdb::write(20_000 + i * 128, 128),
                Direction::Write,
                d.clone(),
                d.len() as u32,
            )
            .map_err(|(e, _)| e)
            .expect("submit");
        expect.insert(h, ());
    }
    let mut done = 0;
    let end = StdInstant::now() + StdDuration::from_secs(60);
    while done < 16 {
        assert!(StdInstant::now() < end, "queued writes did not complete");
        while let Some(comp) = c.next_completion() {
            if let Completion::Command { handle, result, .. } = comp {
                assert!(expect.remove(&handle).is_some());
                assert_eq!(result.expect("queued write").status, ScsiStatus::GOOD);
                done += 1;
            }
        }
        c.step(Duration::from_millis(50));
    }
    good(
        c,
        lun,
        Cdb::synchronize_cache(),
        Direction::None,
        Vec::new(),
        0,
    );
    for i in 0..16u64 {
        assert!(
            read_image(image, (20_000 + i * 128) * 512, 64 * 1024) == pattern(64 * 1024, 1000 + i)
        );
    }
    assert!(c.session().params().max_outstanding_r2t >= 1);
}

/// The block layer on top: identification, capacity, reads and writes checked against the
/// backing file, range checks, and real sense data from the target.
fn exercise_block_device(
    c: &mut TestClient,
    lun: Lun,
    image: &std::path::Path,
    size: u64,
    sense_expected: bool,
) {
    let mut dev = BlockDevice::new(c, lun);
    assert_eq!(dev.inquiry().expect("INQUIRY").device_type, 0);
    assert!(!dev.unit_serial().expect("VPD 0x80").is_empty());
    assert!(!dev.device_identification().expect("VPD 0x83").is_empty());
    dev.test_unit_ready().expect("TUR");
    let cap = dev.capacity().expect("capacity");
    assert_eq!(cap.bytes(), size);
    assert!(dev
        .report_luns()
        .expect("REPORT LUNS")
        .iter()
        .any(|l| l.number() == lun.number()));
    let last = cap.blocks - 8;
    let data = pattern(8 * 512, 4242);
    let buf = dev
        .write(last, data.clone())
        .expect("write the last blocks");
    dev.synchronize_cache().expect("SYNCHRONIZE CACHE");
    assert!(read_image(image, last * 512, data.len()) == data);
    let back = dev.read(last, 8, buf).expect("read the last blocks");
    assert!(back == data);
    assert_eq!(dev.read(last, 9, Vec::new()), Err(BlockError::OutOfRange));
    assert_eq!(dev.write(last, vec![0; 100]), Err(BlockError::OutOfRange));
    // Past the end, asked directly: the target answers CHECK CONDITION, ILLEGAL REQUEST.
    let (o, _) = c
        .execute(
            lun,
            Cdb::read(cap.blocks, 1),
            Direction::Read,
            vec![0; 512],
            512,
        )
        .expect("READ past the end completes");
    assert_eq!(o.status, ScsiStatus::CHECK_CONDITION);
    // tgtd sends fixed-format sense; istgt answers this one with no sense data at all.
    match o.sense {
        Some(sense) => assert_eq!(
            sense.decode().expect("decodable sense").key,
            SenseKey::ILLEGAL_REQUEST
        ),
        None => assert!(!sense_expected, "no sense data: {o:?}"),
    }
}

fn preload(image: &std::path::Path) -> Vec<u8> {
    let pre = pattern(2 * MIB as usize, 5);
    write_image(image, 0, &pre);
    pre
}

#[test]
fn tgtd_no_auth() {
    let size = 64 * MIB;
    let t = Tgtd::start(TargetOpts::disk(size));
    let pre = preload(&t.image);
    let mut c = client(t.port, login_config(Some(IQN), None, DigestChoice::None));
    c.login(LOGIN).expect("login");
    assert!(!c.session().params().header_digest);
    exercise(&mut c, Lun::from_number(1), &t.image, size, &pre);
    exercise_block_device(&mut c, Lun::from_number(1), &t.image, size, true);
    c.logout(Duration::from_secs(5)).expect("logout");
}

#[test]
fn tgtd_chap_and_mutual_chap_with_digests() {
    let size = 32 * MIB;
    let mut opts = TargetOpts::disk(size);
    opts.chap = Some(("alice".into(), "alicesecret12".into()));
    opts.mutual = Some(("tgtuser".into(), "targetsecret34".into()));
    opts.digests = true;
    let t = Tgtd::start(opts);
    let pre = preload(&t.image);
    // One-way CHAP (tgt allows but does not require mutual).
    let mut c = client(
        t.port,
        login_config(
            Some(IQN),
            Some(chap("alice", "alicesecret12", None)),
            DigestChoice::None,
        ),
    );
    c.login(LOGIN).expect("one-way CHAP login");
    c.logout(Duration::from_secs(5)).expect("logout");
    // Mutual CHAP with CRC32C header and data digests.
    let m = chap(
        "alice",
        "alicesecret12",
        Some(("tgtuser", "targetsecret34")),
    );
    let mut c = client(
        t.port,
        login_config(Some(IQN), Some(m), DigestChoice::Crc32c),
    );
    c.login(LOGIN).expect("mutual CHAP login");
    let p = c.session().params();
    assert!(p.header_digest && p.data_digest, "digests negotiated");
    exercise(&mut c, Lun::from_number(1), &t.image, size, &pre);
    c.logout(Duration::from_secs(5)).expect("logout");
}

#[test]
fn tgtd_wrong_secrets_fail_clearly() {
    let mut opts = TargetOpts::disk(8 * MIB);
    opts.chap = Some(("alice".into(), "alicesecret12".into()));
    opts.mutual = Some(("tgtuser".into(), "targetsecret34".into()));
    let t = Tgtd::start(opts);
    let mut c = client(
        t.port,
        login_config(
            Some(IQN),
            Some(chap("alice", "wrongsecret99", None)),
            DigestChoice::None,
        ),
    );
    assert_eq!(
        c.login(LOGIN),
        Err(ClientError::Session(SessionError::Login(
            LoginError::AuthenticationFailed
        )))
    );
    let m = chap("alice", "alicesecret12", Some(("tgtuser", "notthetarget7")));
    let mut c = client(t.port, login_config(Some(IQN), Some(m), DigestChoice::None));
    assert_eq!(
        c.login(LOGIN),
        Err(ClientError::Session(SessionError::Login(
            LoginError::TargetAuthenticationFailed
        )))
    );
    let m = chap(
        "alice",
        "alicesecret12",
        Some(("someoneelse", "targetsecret34")),
    );
    let mut c = client(t.port, login_config(Some(IQN), Some(m), DigestChoice::None));
    assert_eq!(
        c.login(LOGIN),
        Err(ClientError::Session(SessionError::Login(
            LoginError::TargetNameMismatch
        )))
    );
    // No credentials against a CHAP target.
    let mut c = client(t.port, login_config(Some(IQN), None, DigestChoice::None));
    assert!(matches!(
        c.login(LOGIN),
        Err(ClientError::Session(SessionError::Login(_)))
    ));
}

#[test]
fn tgtd_discovery() {
    let t = Tgtd::start(TargetOpts::disk(4 * MIB));
    let mut c = client(t.port, login_config(None, None, DigestChoice::None));
    c.login(LOGIN).expect("discovery login");
    let text = c.send_targets().expect("SendTargets");
    let kv: Vec<(String, String)> = pairs(&text)
        .map(|p| p.unwrap())
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    assert!(kv.contains(&("TargetName".into(), IQN.into())), "{kv:?}");
    let addr = kv
        .iter()
        .find(|(k, _)| k == "TargetAddress")
        .expect("TargetAddress");
    assert!(
        addr.1.starts_with(&format!("127.0.0.1:{}", t.port)),
        "{addr:?}"
    );
    c.logout(Duration::from_secs(5)).expect("logout");
}

#[test]
fn tgtd_refused_login_is_a_clear_error_within_the_timeout() {
    let mut opts = TargetOpts::disk(4 * MIB);
    opts.only_address = Some("192.0.2.1".into());
    let t = Tgtd::start(opts);
    let mut c = client(t.port, login_config(Some(IQN), None, DigestChoice::None));
    let start = StdInstant::now();
    let r = c.login(LOGIN);
    assert!(start.elapsed() < StdDuration::from_secs(15));
    match r {
        Err(ClientError::Session(SessionError::Login(e))) => {
            assert!(
                matches!(
                    e,
                    LoginError::AuthorizationFailed | LoginError::TargetNotFound
                ),
                "{e:?}"
            );
            assert!(e.to_string().starts_with("login refused"), "{e}");
        }
        other => panic!("expected a refused login, got {other:?}"),
    }
    // And an unreachable portal (nothing listening) fails as such.
    let mut c = client(
        free_port(),
        login_config(Some(IQN), None, DigestChoice::None),
    );
    assert_eq!(
        c.login(LOGIN),
        Err(ClientError::Session(SessionError::ConnectFailed))
    );
}

/// Writes in flight when the target is killed; it comes back 1.5 s later; every write must
/// land exactly once with the right data, and reads through the new session agree.
fn killed_and_restarted_mid_workload<T: Restartable>(
    mut t: T,
    port: u16,
    lun: Lun,
    image: std::path::PathBuf,
) {
    let mut c = client(port, login_config(Some(IQN), None, DigestChoice::None));
    c.login(LOGIN).expect("login");
    let blocks = 256u32; // 128 KiB per write
    let total = 96u64;
    let mut submitted = 0u64;
    let mut completed = 0u64;
    let mut inflight = 0;
    let mut restarter = None;
    let mut target = Some(t);
    let end = StdInstant::now() + StdDuration::from_secs(120);
    while completed < total {
        assert!(
            StdInstant::now() < end,
            "workload did not finish ({completed}/{total})"
        );
        while inflight < 8 && submitted < total {
            let d = pattern(blocks as usize * 512, 500 + submitted);
            c.session_mut()
                .submit(
                    lun,
                    Cdb::write(submitted * u64::from(blocks), blocks),
                    Direction::Write,
                    d,
                    blocks * 512,
                )
                .map_err(|(e, _)| e)
                .expect("submit");
            submitted += 1;
            inflight += 1;
        }
        while let Some(comp) = c.next_completion() {
            if let Completion::Command { result, .. } = comp {
                assert_eq!(
                    result.expect("write survives the restart").status,
                    ScsiStatus::GOOD
                );
                completed += 1;
                inflight -= 1;
            }
        }
        if completed >= 24 && restarter.is_none() {
            // Kill the target with commands in flight; bring it back 1.5 s later.
            t = target.take().expect("target");
            t.kill();
            restarter = Some(std::thread::spawn(move || {
                std::thread::sleep(StdDuration::from_millis(1500));
                t.restart();
                t
            }));
        }
        c.step(Duration::from_millis(50));
    }
    let t = restarter
        .expect("restart happened")
        .join()
        .expect("restart thread");
    assert!(c.session().is_ready());
    assert!(c.session().logins() >= 2, "the session was re-established");
    let (o, _) = c
        .execute(
            lun,
            Cdb::synchronize_cache(),
            Direction::None,
            Vec::new(),
            0,
        )
        .expect("SYNC");
    assert_eq!(o.status, ScsiStatus::GOOD);
    for i in 0..total {
        let off = i * u64::from(blocks) * 512;
        assert!(
            read_image(&image, off, blocks as usize * 512)
                == pattern(blocks as usize * 512, 500 + i),
            "write {i} lost"
        );
    }
    let len = (total * u64::from(blocks) * 512) as usize;
    let (o, back) = c
        .execute(
            lun,
            Cdb::read(0, (len / 512) as u32),
            Direction::Read,
            vec![0; len],
            len as u32,
        )
        .expect("read");
    assert_eq!(o.status, ScsiStatus::GOOD);
    assert!(back == read_image(&image, 0, len));
    c.logout(Duration::from_secs(5)).expect("logout");
    drop(t);
}

#[test]
fn tgtd_killed_and_restarted_mid_workload() {
    let t = Tgtd::start(TargetOpts::disk(32 * MIB));
    let (port, image) = (t.port, t.image.clone());
    killed_and_restarted_mid_workload(t, port, Lun::from_number(1), image);
}

#[test]
fn istgt_killed_and_restarted_mid_workload() {
    let t = Istgt::start(TargetOpts::disk(32 * MIB));
    let (port, image) = (t.port, t.image.clone());
    killed_and_restarted_mid_workload(t, port, Lun::from_number(0), image);
}

#[test]
fn istgt_no_auth() {
    let size = 64 * MIB;
    let t = Istgt::start_with(TargetOpts::disk(size), Some(preload_fn));
    let pre = pattern(2 * MIB as usize, 5);
    let mut c = client(t.port, login_config(Some(IQN), None, DigestChoice::None));
    c.login(LOGIN).expect("login");
    exercise(&mut c, Lun::from_number(0), &t.image, size, &pre);
    exercise_block_device(&mut c, Lun::from_number(0), &t.image, size, false);
    c.logout(Duration::from_secs(5)).expect("logout");
}

fn preload_fn(p: &std::path::Path) {
    write_image(p, 0, &pattern(2 * MIB as usize, 5));
}

#[test]
fn istgt_mutual_chap_with_digests() {
    let size = 32 * MIB;
    let mut opts = TargetOpts::disk(size);
    opts.chap = Some(("bob".into(), "bobsecret1234".into()));
    opts.mutual = Some(("istgtuser".into(), "istgtsecret56".into()));
    let t = Istgt::start_with(opts, Some(preload_fn));
    let pre = pattern(2 * MIB as usize, 5);
    let m = chap("bob", "bobsecret1234", Some(("istgtuser", "istgtsecret56")));
    let mut c = client(
        t.port,
        login_config(Some(IQN), Some(m), DigestChoice::Crc32c),
    );
    c.login(LOGIN).expect("mutual CHAP login");
    let p = c.session().params();
    assert!(p.header_digest && p.data_digest);
    exercise(&mut c, Lun::from_number(0), &t.image, size, &pre);
    c.logout(Duration::from_secs(5)).expect("logout");
    // istgt requires the initiator to ask for mutual authentication.
    let mut c = client(
        t.port,
        login_config(
            Some(IQN),
            Some(chap("bob", "bobsecret1234", None)),
            DigestChoice::None,
        ),
    );
    assert!(
        c.login(LOGIN).is_err(),
        "one-way CHAP against a CHAP Mutual LU must fail"
    );
    // Wrong secrets each way.
    let m = chap("bob", "wrongsecret99", Some(("istgtuser", "istgtsecret56")));
    let mut c = client(t.port, login_config(Some(IQN), Some(m), DigestChoice::None));
    assert_eq!(
        c.login(LOGIN),
        Err(ClientError::Session(SessionError::Login(
            LoginError::AuthenticationFailed
        )))
    );
    let m = chap("bob", "bobsecret1234", Some(("istgtuser", "wrongtarget99")));
    let mut c = client(t.port, login_config(Some(IQN), Some(m), DigestChoice::None));
    assert_eq!(
        c.login(LOGIN),
        Err(ClientError::Session(SessionError::Login(
            LoginError::TargetAuthenticationFailed
        )))
    );
}

#[test]
fn istgt_chap_and_discovery() {
    let mut opts = TargetOpts::disk(8 * MIB);
    opts.chap = Some(("carol".into(), "carolsecret12".into()));
    let t = Istgt::start_with(opts, None);
    let mut c = client(
        t.port,
        login_config(
            Some(IQN),
            Some(chap("carol", "carolsecret12", None)),
            DigestChoice::PreferCrc32c,
        ),
    );
    c.login(LOGIN).expect("CHAP login");
    let (o, _) = c
        .execute(
            Lun::from_number(0),
            Cdb::test_unit_ready(),
            Direction::None,
            Vec::new(),
            0,
        )
        .expect("TUR");
    assert_eq!(o.status, ScsiStatus::GOOD);
    c.logout(Duration::from_secs(5)).expect("logout");
    let mut c = client(t.port, login_config(None, None, DigestChoice::None));
    c.login(LOGIN).expect("discovery login");
    let text = c.send_targets().expect("SendTargets");
    assert!(
        pairs(&text).any(|p| p == Ok(("TargetName", IQN))),
        "{:?}",
        String::from_utf8_lossy(&text)
    );
    // The discovery Logout must follow RFC 7143 CmdSN rules: istgt answers it.
    c.logout(Duration::from_secs(5)).expect("discovery logout");
}

fn cli(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_iscsi-initiator"));
    cmd.args(args).env_remove("ISCSI_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run iscsi-initiator")
}

#[test]
fn cli_verify_against_both_targets_with_mutual_chap_and_crc32c() {
    let mut opts = TargetOpts::disk(16 * MIB);
    opts.chap = Some(("dave".into(), "davesecret123".into()));
    opts.mutual = Some(("tuser".into(), "tsecret456789".into()));
    opts.digests = true;
    let tg = Tgtd::start(opts.clone());
    let is = Istgt::start_with(opts, None);
    for (port, lun) in [(tg.port, 1), (is.port, 0)] {
        let url = format!("iscsi://dave@127.0.0.1:{port}/{IQN}/{lun}");
        let out = cli(
            &[
                "--digest",
                "crc32c",
                "--target-user",
                "tuser",
                "verify",
                &url,
                "--bytes",
                "3145728",
            ],
            &[
                ("ISCSI_CHAP_SECRET", "davesecret123"),
                ("ISCSI_TARGET_SECRET", "tsecret456789"),
            ],
        );
        assert!(
            out.status.success(),
            "verify on port {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("identical"));
        // A wrong secret: non-zero exit and one clear line naming who failed.
        let out = cli(
            &["--target-user", "tuser", "capacity", &url],
            &[
                ("ISCSI_CHAP_SECRET", "nottheone1234"),
                ("ISCSI_TARGET_SECRET", "tsecret456789"),
            ],
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.trim()
                .lines()
                .last()
                .unwrap_or("")
                .contains("authentication failed"),
            "{err}"
        );
    }
    let out = cli(&["discover", &format!("127.0.0.1:{}", tg.port)], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(IQN));
    let out = cli(
        &[
            "capacity",
            &format!("iscsi://127.0.0.1:{}/{IQN}/1", free_port()),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connect 127.0.0.1:") && err.contains("Connection refused"),
        "{err}"
    );
}

#[test]
fn cli_url_is_the_one_libiscsi_takes() {
    let rc16 = require("iscsi-readcapacity16", "libiscsi-bin");
    let mut opts = TargetOpts::disk(24 * MIB);
    opts.chap = Some(("erin".into(), "erinsecret123".into()));
    let t = Tgtd::start(opts);
    let url = format!("iscsi://erin%erinsecret123@127.0.0.1:{}/{IQN}/1", t.port);
    let theirs = std::process::Command::new(rc16)
        .arg(&url)
        .output()
        .expect("run iscsi-readcapacity16");
    assert!(
        theirs.status.success(),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    let theirs = String::from_utf8_lossy(&theirs.stdout).to_string();
    let ours = cli(&["capacity", &url], &[]);
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let ours = String::from_utf8_lossy(&ours.stdout).to_string();
    let size = |s: &str, key: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{key} in {s}"))
    };
    assert_eq!(size(&theirs, "Total size:"), size(&ours, "bytes:"));
    assert_eq!(size(&ours, "bytes:"), (24 * MIB).to_string());
    // write -i then read -o through the same URL, checked against the backing file.
    let dir = isboot_tests::TempDir::new("cli").expect("a scratch directory");
    let input = dir.0.join("in.bin");
    let output = dir.0.join("out.bin");
    let data = pattern(1536 * 1024, 99);
    std::fs::write(&input, &data).unwrap();
    let w = cli(
        &["write", &url, "--lba", "100", "-i", input.to_str().unwrap()],
        &[],
    );
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    assert!(read_image(&t.image, 100 * 512, data.len()) == data);
    let r = cli(
        &[
            "read",
            &url,
            "--lba",
            "100",
            "--blocks",
            "3072",
            "-o",
            output.to_str().unwrap(),
        ],
        &[],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(std::fs::read(&output).unwrap() == data);
    let inq = cli(&["inquiry", &url], &[]);
    assert!(inq.status.success());
    assert!(String::from_utf8_lossy(&inq.stdout).contains("device type: 0x00"));
}

#[test]
fn cli_bench_ends_with_one_key_value_line() {
    let t = Tgtd::start(TargetOpts::disk(16 * MIB));
    let url = format!("iscsi://127.0.0.1:{}/{IQN}/1", t.port);
    for args in [
        &["--pattern", "rand", "--bs", "4096", "--qd", "8"][..],
        &["--pattern", "seq", "--bs", "1048576", "--qd", "2"][..],
        &["--pattern", "rand", "--bs", "4096", "--qd", "4", "--write"][..],
    ] {
        let mut argv = vec!["bench", &url, "--seconds", "1"];
        argv.extend_from_slice(args);
        let out = cli(&argv, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let last = stdout.trim_end().lines().last().unwrap_or("");
        let kv: std::collections::HashMap<&str, &str> = last
            .split_whitespace()
            .filter_map(|p| p.split_once('='))
            .collect();
        assert_eq!(kv.len(), last.split_whitespace().count(), "{last}");
        let num = |k: &str| -> f64 {
            kv.get(k)
                .unwrap_or_else(|| panic!("{k} in {last}"))
                .parse()
                .unwrap()
        };
        assert!(
            num("ios") > 0.0 && num("iops") > 0.0 && num("mib_s") > 0.0,
            "{last}"
        );
        assert!(num("cpu_s") >= 0.0, "{last}");
        assert_eq!(kv["bs"], args[3]);
        assert_eq!(kv["qd"], args[5]);
        assert_eq!(kv["rw"], if args.len() == 7 { "write" } else { "read" });
    }
}
