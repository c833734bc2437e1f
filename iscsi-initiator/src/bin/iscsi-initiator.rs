//! `iscsi-initiator`: a host command over the same sans-IO core the kernel and the ROM use.
//!
//! URLs follow libiscsi: `iscsi://[user[%secret]@]host[:port]/target-iqn/lun`
//! (`?target_user=U&target_password=S` for mutual CHAP). Secrets may come from the
//! environment instead: `ISCSI_CHAP_SECRET` (or libiscsi's `LIBISCSI_CHAP_PASSWORD`) for ours,
//! `ISCSI_TARGET_USER` and `ISCSI_TARGET_SECRET` for the target's. `ISCSI_LOG` sets the log
//! level. `--help` lists the options and these variables, `--version` prints the version.
//!
//! Exit status: 0 done, 1 failed (the one line on stderr says what; a connection that could not
//! be made names the address and the system's error), 2 usage error (with the usage).

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant as StdInstant;

use iscsi_initiator::block::BlockDevice;
use iscsi_initiator::chap::Secret;
use iscsi_initiator::login::{ChapConfig, Isid, LoginConfig, MutualChap, SessionType};
use iscsi_initiator::negotiate::{DigestChoice, OperationalConfig};
use iscsi_initiator::scsi::{Capacity, Cdb, Lun, ScsiStatus};
use iscsi_initiator::session::{
    Completion, Direction, Portal, ScsiOutcome, Session, SessionConfig, SessionError,
};
use iscsi_initiator::transport::{Client, ClientError, Clock, StdClock, TcpTransport};
use iscsi_initiator::url::IscsiUrl;
use iscsi_initiator::wire::text::pairs;
use iscsi_initiator::Duration;

const USAGE: &str =
    "usage: iscsi-initiator [--initiator-name IQN] [--target-user USER] [--target-secret SECRET]
                       [--digest none|crc32c] [--timeout SECONDS] [--busy-poll-us US] COMMAND
       iscsi-initiator --help | --version
commands:
  discover HOST[:PORT]
  inquiry URL
  capacity URL
  read URL --lba N --blocks N -o FILE
  write URL --lba N -i FILE
  verify URL [--bytes N] [--lba N]
  bench URL --pattern rand|seq --bs BYTES --qd N --seconds S [--write]
URL: iscsi://[user[%secret]@]host[:port]/target-iqn/lun[?target_user=U&target_password=S]";

/// What `--help` adds to [`USAGE`]. Every environment variable the command reads is here.
const HELP: &str = "options:
  --initiator-name IQN    our iSCSI name (default iqn.2024-01.org.isboot:HOSTNAME)
  --target-user USER      mutual CHAP: the name the target answers with
  --target-secret SECRET  mutual CHAP: the target's secret (ISCSI_TARGET_SECRET keeps it out
                          of the process list)
  --digest none|crc32c    header and data digests (default none)
  --timeout SECONDS       login timeout (default 30); recovery gets at least 60
  --busy-poll-us US       with at most one command outstanding, poll the socket for up to US
                          microseconds before sleeping (lower latency at queue depth 1 for
                          CPU; default 0, off)
  -h, --help              this help
  -V, --version           the version
environment:
  ISCSI_CHAP_SECRET       our CHAP secret, when the URL names a user but no secret
  LIBISCSI_CHAP_PASSWORD  the same under libiscsi's name (ISCSI_CHAP_SECRET comes first)
  ISCSI_TARGET_USER       mutual CHAP: the target's name, if neither --target-user nor the
                          URL gives it
  ISCSI_TARGET_SECRET     mutual CHAP: the target's secret, if neither --target-secret nor
                          the URL gives it
  ISCSI_LOG               log to stderr at this level: error, warn, info, debug, trace or off
                          (default off)
exit status: 0 done, 1 failed, 2 usage error";

/// Why the command stops.
enum Fail {
    /// The command line is wrong: exit status 2, with the usage.
    Usage(String),
    /// Something failed on the way: exit status 1.
    Run(String),
}

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail::Run(e.to_string())
    }
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail::Usage(msg.into())
}

fn fail(msg: impl Into<String>) -> Fail {
    Fail::Run(msg.into())
}

#[derive(Default)]
struct Args {
    initiator_name: Option<String>,
    target_user: Option<String>,
    target_secret: Option<Secret>,
    digest: DigestChoice2,
    timeout: u64,
    positional: Vec<String>,
    lba: u64,
    blocks: Option<u64>,
    output: Option<String>,
    input: Option<String>,
    bytes: Option<u64>,
    pattern: Option<String>,
    bs: Option<u32>,
    qd: Option<u16>,
    seconds: Option<u64>,
    write: bool,
    busy_poll_us: u32,
}

#[derive(Default, Clone, Copy)]
enum DigestChoice2 {
    #[default]
    None,
    Crc32c,
}

/// What the command line asks for.
enum Request {
    Help,
    Version,
    Run(Box<Args>),
}

/// A number for option `name`.
fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, Fail> {
    v.parse()
        .map_err(|_| usage(format!("{name}: {v:?} is not a number in range")))
}

fn parse_args(argv: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Request, Fail> {
    let mut a = Args {
        timeout: 30,
        ..Default::default()
    };
    let mut it = argv.into_iter().map(|a| {
        a.into_string()
            .map_err(|a| usage(format!("argument {a:?} is not UTF-8")))
    });
    while let Some(arg) = it.next() {
        let arg = arg?;
        let mut val = |name: &str| {
            it.next()
                .unwrap_or_else(|| Err(usage(format!("{name} needs a value"))))
        };
        match arg.as_str() {
            "--initiator-name" => a.initiator_name = Some(val("--initiator-name")?),
            "--target-user" => a.target_user = Some(val("--target-user")?),
            "--target-secret" => {
                a.target_secret = Some(Secret::new(val("--target-secret")?.into_bytes()))
            }
            "--digest" => {
                a.digest = match val("--digest")?.as_str() {
                    "none" => DigestChoice2::None,
                    "crc32c" => DigestChoice2::Crc32c,
                    other => {
                        return Err(usage(format!(
                            "--digest must be none or crc32c, not {other}"
                        )))
                    }
                }
            }
            "--timeout" => a.timeout = number("--timeout", &val("--timeout")?)?,
            "--lba" => a.lba = number("--lba", &val("--lba")?)?,
            "--blocks" => a.blocks = Some(number("--blocks", &val("--blocks")?)?),
            "-o" | "--output" => a.output = Some(val("-o")?),
            "-i" | "--input" => a.input = Some(val("-i")?),
            "--bytes" => a.bytes = Some(number("--bytes", &val("--bytes")?)?),
            "--pattern" => a.pattern = Some(val("--pattern")?),
            "--bs" => a.bs = Some(number("--bs", &val("--bs")?)?),
            "--qd" => a.qd = Some(number("--qd", &val("--qd")?)?),
            "--seconds" => a.seconds = Some(number("--seconds", &val("--seconds")?)?),
            "--write" => a.write = true,
            "--busy-poll-us" => {
                a.busy_poll_us = val("--busy-poll-us")?
                    .parse()
                    .ok()
                    .filter(|us| *us <= 1_000_000)
                    .ok_or_else(|| usage("bad --busy-poll-us (0 to 1000000)"))?
            }
            "-h" | "--help" => return Ok(Request::Help),
            "-V" | "--version" => return Ok(Request::Version),
            s if s.starts_with('-') => return Err(usage(format!("unknown option {s}"))),
            _ => a.positional.push(arg),
        }
    }
    Ok(Request::Run(Box::new(a)))
}

fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut seed);
    }
    seed
}

fn host_identity() -> Vec<u8> {
    let mut id = std::fs::read("/etc/machine-id").unwrap_or_default();
    id.extend_from_slice(
        std::fs::read("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .as_slice(),
    );
    id
}

fn default_initiator_name() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    format!("iqn.2024-01.org.isboot:{}", host.to_ascii_lowercase())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A secret from the environment, held as a [`Secret`] from the start.
fn env_secret(name: &str) -> Option<Secret> {
    env(name).map(|v| Secret::new(v.into_bytes()))
}

type HostClient = Client<TcpTransport, StdClock>;

fn open(
    args: &Args,
    portal: Portal,
    target: Option<&str>,
    url: Option<&IscsiUrl>,
) -> Result<HostClient, Fail> {
    let initiator_name = args
        .initiator_name
        .clone()
        .unwrap_or_else(default_initiator_name);
    let chap = match url.and_then(|u| u.user.clone()) {
        Some(user) => {
            let secret = url
                .and_then(|u| u.secret.clone())
                .or_else(|| env_secret("ISCSI_CHAP_SECRET"))
                .or_else(|| env_secret("LIBISCSI_CHAP_PASSWORD"))
                .ok_or_else(|| {
                    usage("CHAP user given without a secret (URL or ISCSI_CHAP_SECRET)")
                })?;
            let tuser = args
                .target_user
                .clone()
                .or_else(|| url.and_then(|u| u.target_user.clone()))
                .or_else(|| env("ISCSI_TARGET_USER"));
            let tsecret = args
                .target_secret
                .clone()
                .or_else(|| url.and_then(|u| u.target_secret.clone()))
                .or_else(|| env_secret("ISCSI_TARGET_SECRET"));
            let mutual = match (tuser, tsecret) {
                (Some(target_user), Some(target_secret)) => Some(MutualChap {
                    target_user,
                    target_secret,
                }),
                (None, None) => None,
                _ => {
                    return Err(usage(
                        "mutual CHAP needs both the target user and the target secret",
                    ))
                }
            };
            Some(ChapConfig {
                user,
                secret,
                mutual,
            })
        }
        None => None,
    };
    let digest = match args.digest {
        DigestChoice2::None => DigestChoice::None,
        DigestChoice2::Crc32c => DigestChoice::Crc32c,
    };
    let login = LoginConfig {
        isid: Isid::derive(&host_identity(), &initiator_name, std::process::id() as u16),
        initiator_name,
        initiator_alias: None,
        target_name: target.map(String::from),
        session_type: if target.is_some() {
            SessionType::Normal
        } else {
            SessionType::Discovery
        },
        chap,
        operational: OperationalConfig {
            header_digest: digest,
            data_digest: digest,
            ..Default::default()
        },
        entropy_seed: random_seed(),
    };
    let mut cfg = SessionConfig::new(login, portal);
    cfg.login_timeout = Duration::from_secs(args.timeout);
    cfg.recovery_timeout = Duration::from_secs(args.timeout.max(60));
    let clock = StdClock::default();
    let session = Session::new(cfg, clock.now());
    let mut client = Client::new(session, TcpTransport::new(), clock);
    client.set_busy_poll(args.busy_poll_us);
    match client.login(Duration::from_secs(args.timeout)) {
        Ok(()) => Ok(client),
        // Name the address tried and what the system said, not only that it failed.
        Err(ClientError::Session(SessionError::ConnectFailed)) => {
            match client.transport_mut().connect_error() {
                Some(e) => Err(fail(e.to_string())),
                None => Err(SessionError::ConnectFailed.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn url_arg(args: &Args) -> Result<IscsiUrl, Fail> {
    let s = args.positional.get(1).ok_or_else(|| usage("missing URL"))?;
    IscsiUrl::parse(s, true)
        .map_err(|e| usage(format!("bad URL {}: {e}", iscsi_initiator::url::redact(s))))
}

fn check(o: &ScsiOutcome, what: &str) -> Result<(), Fail> {
    if o.status == ScsiStatus::GOOD {
        return Ok(());
    }
    let sense = o.sense.and_then(|s| s.decode());
    Err(fail(match sense {
        Some(s) => format!(
            "{what} failed: status {:#04x}, sense key {:#x} ASC {:#04x} ASCQ {:#04x}",
            o.status.0, s.key.0, s.asc, s.ascq
        ),
        None => format!("{what} failed: status {:#04x}", o.status.0),
    }))
}

fn capacity(c: &mut HostClient, lun: Lun) -> Result<Capacity, Fail> {
    Ok(BlockDevice::new(c, lun).capacity()?)
}

/// Largest transfer per command.
const CHUNK: u64 = 1024 * 1024;

fn read_blocks(
    c: &mut HostClient,
    lun: Lun,
    cap: &Capacity,
    lba: u64,
    blocks: u64,
    out: &mut Vec<u8>,
) -> Result<(), Fail> {
    let per = (CHUNK / u64::from(cap.block_len)).max(1);
    let mut dev = BlockDevice::new(c, lun);
    let mut buf = Vec::new();
    let mut done = 0;
    while done < blocks {
        let n = (blocks - done).min(per);
        buf = dev.read(lba + done, n as u32, buf)?;
        out.extend_from_slice(&buf);
        done += n;
    }
    Ok(())
}

fn write_blocks(
    c: &mut HostClient,
    lun: Lun,
    cap: &Capacity,
    lba: u64,
    data: &[u8],
) -> Result<(), Fail> {
    let bl = cap.block_len as usize;
    if data.len() % bl != 0 {
        return Err(fail(format!(
            "input is {} bytes, not a multiple of the block size {bl}",
            data.len()
        )));
    }
    let per = ((CHUNK as usize) / bl).max(1) * bl;
    let mut dev = BlockDevice::new(c, lun);
    let mut buf = Vec::with_capacity(per);
    for (i, chunk) in data.chunks(per).enumerate() {
        buf.clear();
        buf.extend_from_slice(chunk);
        buf = dev.write(lba + (i * per / bl) as u64, buf)?;
    }
    dev.synchronize_cache()?;
    Ok(())
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn cpu_seconds() -> f64 {
    // /proc/self/stat fields 14 and 15: utime and stime in USER_HZ (100 on Linux).
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (t(11) + t(12)) as f64 / 100.0
}

fn run() -> Result<(), Fail> {
    let args = match parse_args(std::env::args_os().skip(1))? {
        Request::Help => {
            println!("{USAGE}\n{HELP}");
            return Ok(());
        }
        Request::Version => {
            println!("iscsi-initiator {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Request::Run(args) => args,
    };
    let cmd = args
        .positional
        .first()
        .ok_or_else(|| usage("missing command"))?
        .clone();
    match cmd.as_str() {
        "discover" => {
            let hp = args
                .positional
                .get(1)
                .ok_or_else(|| usage("discover needs HOST[:PORT]"))?;
            let hp = hp
                .strip_prefix("iscsi://")
                .unwrap_or(hp)
                .trim_end_matches('/');
            let (portal, _) = Portal::parse(hp).ok_or_else(|| usage(format!("bad portal {hp}")))?;
            let mut c = open(&args, portal, None, None)?;
            let text = c.send_targets()?;
            for p in pairs(&text) {
                let (k, v) = p.map_err(|e| fail(format!("bad SendTargets text: {e:?}")))?;
                match k {
                    "TargetName" => println!("{v}"),
                    "TargetAddress" => println!("  {v}"),
                    _ => {}
                }
            }
            let _ = c.logout(Duration::from_secs(5));
        }
        "inquiry" => {
            let u = url_arg(&args)?;
            let lun = Lun::from_number(u.lun);
            let mut c = open(&args, u.portal.clone(), Some(&u.target), Some(&u))?;
            let mut dev = BlockDevice::new(&mut c, lun);
            let inq = dev.inquiry()?;
            println!(
                "vendor: {}\nproduct: {}\nrevision: {}\ndevice type: {:#04x}",
                inq.vendor, inq.product, inq.revision, inq.device_type
            );
            // VPD pages are optional: print what the target has.
            if let Ok(serial) = dev.unit_serial() {
                println!("serial: {serial}");
            }
            for d in dev.device_identification().unwrap_or_default() {
                let v: String = d.value.iter().map(|b| format!("{b:02x}")).collect();
                println!(
                    "designator: type {} association {} {v}",
                    d.designator_type, d.association
                );
            }
            let _ = c.logout(Duration::from_secs(5));
        }
        "capacity" => {
            let u = url_arg(&args)?;
            let mut c = open(&args, u.portal.clone(), Some(&u.target), Some(&u))?;
            let cap = capacity(&mut c, Lun::from_number(u.lun))?;
            println!(
                "blocks: {}\nblock size: {}\nbytes: {}",
                cap.blocks,
                cap.block_len,
                cap.bytes()
            );
            let _ = c.logout(Duration::from_secs(5));
        }
        "read" => {
            let u = url_arg(&args)?;
            let blocks = args.blocks.ok_or_else(|| usage("read needs --blocks"))?;
            let out = args
                .output
                .clone()
                .ok_or_else(|| usage("read needs -o FILE"))?;
            let lun = Lun::from_number(u.lun);
            let mut c = open(&args, u.portal.clone(), Some(&u.target), Some(&u))?;
            let cap = capacity(&mut c, lun)?;
            let mut data = Vec::new();
            read_blocks(&mut c, lun, &cap, args.lba, blocks, &mut data)?;
            std::fs::write(&out, &data).map_err(|e| fail(format!("{out}: {e}")))?;
            let _ = c.logout(Duration::from_secs(5));
        }
        "write" => {
            let u = url_arg(&args)?;
            let input = args
                .input
                .clone()
                .ok_or_else(|| usage("write needs -i FILE"))?;
            let data = std::fs::read(&input).map_err(|e| fail(format!("{input}: {e}")))?;
            let lun = Lun::from_number(u.lun);
            let mut c = open(&args, u.portal.clone(), Some(&u.target), Some(&u))?;
            let cap = capacity(&mut c, lun)?;
            write_blocks(&mut c, lun, &cap, args.lba, &data)?;
            let _ = c.logout(Duration::from_secs(5));
        }
        "verify" => {
            let u = url_arg(&args)?;
            let lun = Lun::from_number(u.lun);
            let mut c = open(&args, u.portal.clone(), Some(&u.target), Some(&u))?;
            let cap = capacity(&mut c, lun)?;
            let bl = u64::from(cap.block_len);
            let want = args
                .bytes
                .unwrap_or(4 * 1024 * 1024)
                .min(cap.bytes().saturating_sub(args.lba * bl));
            let bytes = want / bl * bl;
            if bytes == 0 {
                return Err(fail(
                    "nothing to verify (device too small for --bytes/--lba)",
                ));
            }
            let seed = u64::from_le_bytes(random_seed()[..8].try_into().unwrap_or([1; 8]));
            let data = pattern(bytes as usize, seed);
            write_blocks(&mut c, lun, &cap, args.lba, &data)?;
            let mut back = Vec::with_capacity(data.len());
            read_blocks(&mut c, lun, &cap, args.lba, bytes / bl, &mut back)?;
            if back != data {
                let at = back
                    .iter()
                    .zip(&data)
                    .position(|(a, b)| a != b)
                    .unwrap_or(back.len().min(data.len()));
                return Err(fail(format!("verify failed: data differs at byte {at}")));
            }
            println!("verify: {bytes} bytes written and read back identical");
            let _ = c.logout(Duration::from_secs(5));
        }
        "bench" => {
            let u = url_arg(&args)?;
            let bs = args.bs.unwrap_or(4096);
            let qd = args.qd.unwrap_or(1).max(1);
            let secs = args.seconds.unwrap_or(10);
            let rand = match args.pattern.as_deref().unwrap_or("rand") {
                "rand" => true,
                "seq" => false,
                other => return Err(usage(format!("--pattern must be rand or seq, not {other}"))),
            };
            let lun = Lun::from_number(u.lun);
            let mut c = open(&args, u.portal.clone(), Some(&u.target), Some(&u))?;
            let cap = capacity(&mut c, lun)?;
            let bl = cap.block_len;
            if bs == 0 || bs % bl != 0 {
                return Err(fail(format!(
                    "--bs must be a multiple of the block size {bl}"
                )));
            }
            let nblk = bs / bl;
            let span = cap.blocks / u64::from(nblk);
            if span == 0 {
                return Err(fail("device smaller than one I/O"));
            }
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut next_seq = 0u64;
            let mut pick = || {
                if rand {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % span) * u64::from(nblk)
                } else {
                    let l = (next_seq % span) * u64::from(nblk);
                    next_seq += 1;
                    l
                }
            };
            let dir = if args.write {
                Direction::Write
            } else {
                Direction::Read
            };
            let mut free: Vec<Vec<u8>> = (0..qd).map(|_| vec![0x5a; bs as usize]).collect();
            let start = StdInstant::now();
            let cpu0 = cpu_seconds();
            let stop = start + std::time::Duration::from_secs(secs);
            let mut ios = 0u64;
            let mut inflight = 0u32;
            loop {
                // Reap first, then refill the queue, then one transport step: commands
                // submitted together go out in one send.
                while let Some(comp) = c.next_completion() {
                    if let Completion::Command { result, buffer, .. } = comp {
                        inflight -= 1;
                        let o = result.map_err(ClientError::Command)?;
                        check(&o, "I/O")?;
                        ios += 1;
                        free.push(buffer.into_vec());
                    }
                }
                let now = StdInstant::now();
                if now < stop {
                    while let Some(buf) = free.pop() {
                        let lba = pick();
                        let cdb = if args.write {
                            Cdb::write(lba, nblk)
                        } else {
                            Cdb::read(lba, nblk)
                        };
                        match c.session_mut().submit(lun, cdb, dir, buf, bs) {
                            Ok(_) => inflight += 1,
                            Err((e, b)) => {
                                free.push(b);
                                if inflight == 0 {
                                    return Err(fail(format!("submit: {e:?}")));
                                }
                                break;
                            }
                        }
                    }
                } else if inflight == 0 {
                    break;
                }
                if let Some(e) = c.session().failure() {
                    return Err(fail(e.to_string()));
                }
                c.step(Duration::from_millis(200));
            }
            let el = start.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu0;
            let iops = ios as f64 / el;
            let mib_s = ios as f64 * f64::from(bs) / el / (1024.0 * 1024.0);
            let cpu_us = if ios > 0 { cpu * 1e6 / ios as f64 } else { 0.0 };
            println!(
                "{} {} bs={bs} qd={qd}: {iops:.0} IOPS, {mib_s:.1} MiB/s, {cpu:.2} CPU seconds \
                 in {el:.2} s ({cpu_us:.1} us per I/O)",
                if rand { "rand" } else { "seq" },
                if args.write { "write" } else { "read" },
            );
            // The machine-readable summary: always the last line.
            println!(
                "pattern={} rw={} bs={bs} qd={qd} seconds={el:.3} ios={ios} iops={iops:.1} \
                 mib_s={mib_s:.2} cpu_s={cpu:.3} cpu_us_per_io={cpu_us:.2}",
                if rand { "rand" } else { "seq" },
                if args.write { "write" } else { "read" },
            );
            let _ = c.logout(Duration::from_secs(5));
        }
        other => return Err(usage(format!("unknown command {other}"))),
    }
    Ok(())
}

/// Log to stderr at the level named by `ISCSI_LOG` (error, warn, info, debug, trace; off by
/// default).
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        let _ = writeln!(
            std::io::stderr(),
            "iscsi-initiator: {}: {}",
            r.level(),
            r.args()
        );
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    let level = match env("ISCSI_LOG").as_deref() {
        Some("error") => log::LevelFilter::Error,
        Some("info") => log::LevelFilter::Info,
        Some("debug") => log::LevelFilter::Debug,
        Some("trace") => log::LevelFilter::Trace,
        Some("off") => log::LevelFilter::Off,
        Some("warn") => log::LevelFilter::Warn,
        // Quiet by default: a failure is reported as one line by `main`.
        _ => log::LevelFilter::Off,
    };
    if log::set_logger(&StderrLog).is_ok() {
        log::set_max_level(level);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Usage(msg)) => {
            let _ = writeln!(std::io::stderr(), "iscsi-initiator: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Fail::Run(msg)) => {
            let _ = writeln!(std::io::stderr(), "iscsi-initiator: {msg}");
            ExitCode::FAILURE
        }
    }
}
