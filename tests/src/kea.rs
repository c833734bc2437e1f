//! A real Kea DHCPv4 server (Debian's `kea-dhcp4-server`) for a test.
//!
//! Kea answers relayed requests (RFC 2131 §4.1) on loopback, including InfiniBand ones
//! (`htype` 32, `hlen` 0), choosing the subnet by the relay address and keying reservations on
//! the client identifier. It sends replies to the relay's address on port 67 whatever port it
//! listens on. Start it inside [`crate::netns::run`] so that it, and the relay, see only a
//! private loopback.

use std::fmt::Write as _;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{have, wait_for, TempDir};

/// A fixed address for one client.
#[derive(Debug, Clone)]
pub struct Reservation {
    /// Option 61 as the client sends it.
    pub client_id: Vec<u8>,
    /// The address to give.
    pub address: Ipv4Addr,
    /// A host name to give (option 12).
    pub hostname: Option<String>,
}

/// What the server hands out.
#[derive(Debug, Clone)]
pub struct Config {
    /// The subnet, e.g. `192.0.2.0/24` (TEST-NET-1: values in payloads only).
    pub subnet: String,
    /// Dynamic pool, e.g. `192.0.2.100 - 192.0.2.199`.
    pub pool: String,
    /// The relay address that selects this subnet (the relay's `giaddr`).
    pub relay: Ipv4Addr,
    /// Fixed addresses.
    pub reservations: Vec<Reservation>,
    /// `(name, data)` option values, by Kea's option names (plus `iscsi-initiator-iqn` for
    /// option 203 and `ipxe-encap-opts` for option 175, defined here; see
    /// [`ipxe_credentials`]).
    pub options: Vec<(String, String)>,
    /// Lease time in seconds.
    pub valid_lifetime: u32,
}

/// The data of option 175 (`ipxe-encap-opts`) carrying iSCSI credentials as iPXE reads them:
/// sub-options 190 `username`, 191 `password`, 192 `reverse-username`, 193 `reverse-password`
/// (iPXE `src/include/ipxe/dhcp.h`), as Kea's hex for a binary option (no separators).
pub fn ipxe_credentials(user: &str, password: &str, reverse: Option<(&str, &str)>) -> String {
    let mut b = Vec::new();
    let mut add = |code: u8, v: &str| {
        b.push(code);
        b.push(v.len().min(255) as u8);
        b.extend_from_slice(&v.as_bytes()[..v.len().min(255)]);
    };
    add(190, user);
    add(191, password);
    if let Some((u, p)) = reverse {
        add(192, u);
        add(193, p);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Config {
    fn to_json(&self, log: &std::path::Path) -> String {
        self.to_json_on(log, "lo/127.0.0.1", "udp")
    }

    /// The configuration with Kea listening on `interfaces` (Kea's `name` or `name/address`
    /// form) with `socket` (`udp`, or `raw` to answer directly attached clients that have
    /// no address yet).
    fn to_json_on(&self, log: &std::path::Path, interfaces: &str, socket: &str) -> String {
        let reservations: Vec<String> = self
            .reservations
            .iter()
            .map(|r| {
                let mut s = format!(
                    r#"{{ "client-id": "{}", "ip-address": "{}""#,
                    hex(&r.client_id),
                    r.address
                );
                if let Some(h) = &r.hostname {
                    let _ = write!(s, r#", "hostname": {}"#, json_str(h));
                }
                s.push_str(" }");
                s
            })
            .collect();
        let options: Vec<String> = self
            .options
            .iter()
            .map(|(n, d)| format!(r#"{{ "name": {}, "data": {} }}"#, json_str(n), json_str(d)))
            .collect();
        format!(
            r#"{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": [ {interfaces} ], "dhcp-socket-type": "{socket}" }},
  "lease-database": {{ "type": "memfile", "persist": false }},
  "match-client-id": true,
  "valid-lifetime": {life},
  "option-def": [ {{ "name": "iscsi-initiator-iqn", "code": 203, "type": "string" }},
    {{ "name": "ipxe-encap-opts", "code": 175, "type": "binary" }} ],
  "subnet4": [ {{ "id": 1, "subnet": {subnet},
    "pools": [ {{ "pool": {pool} }} ],
    "relay": {{ "ip-addresses": [ "{relay}" ] }},
    "reservations": [ {reservations} ],
    "option-data": [ {options} ] }} ],
  "loggers": [ {{ "name": "kea-dhcp4", "severity": "INFO",
    "output_options": [ {{ "output": {log} }} ] }} ]
}} }}"#,
            life = self.valid_lifetime,
            subnet = json_str(&self.subnet),
            pool = json_str(&self.pool),
            relay = self.relay,
            reservations = reservations.join(",\n      "),
            options = options.join(",\n      "),
            log = json_str(&log.to_string_lossy()),
            interfaces = json_str(interfaces),
        )
    }
}

/// A running Kea; stopped and its files removed on drop.
#[derive(Debug)]
pub struct Kea {
    child: Child,
    /// Its log.
    pub log: PathBuf,
    _dir: TempDir,
}

/// The port Kea listens on (on 127.0.0.1).
pub const PORT: u16 = 67;

fn binary() -> Option<&'static str> {
    ["kea-dhcp4", "/usr/sbin/kea-dhcp4"]
        .into_iter()
        .find(|b| have(b))
}

impl Kea {
    /// Writes the configuration and starts Kea on 127.0.0.1:67; returns once it has started
    /// (at most 10 s). Call inside a private network namespace.
    pub fn start(config: &Config) -> io::Result<Kea> {
        Self::start_json(|log| config.to_json(log))
    }

    /// Starts Kea serving directly attached clients on `interface` (raw sockets: clients
    /// with no address yet get their answers), e.g. a bridge in the test's namespace that a
    /// VM's tap device is on. The subnet is chosen by the interface's address.
    pub fn start_on(config: &Config, interface: &str) -> io::Result<Kea> {
        Self::start_json(|log| config.to_json_on(log, interface, "raw"))
    }

    /// Starts Kea with the configuration `json` makes from the path of the log it must write
    /// (a `loggers` entry at INFO: the start is seen there).
    pub fn start_json(json: impl FnOnce(&std::path::Path) -> String) -> io::Result<Kea> {
        let bin = binary().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "kea-dhcp4 not found: apt-get install kea-dhcp4-server",
            )
        })?;
        let dir = TempDir::new("kea")?;
        let log = dir.0.join("kea.log");
        let conf = dir.0.join("kea.json");
        std::fs::write(&conf, json(&log))?;
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .env("KEA_PIDFILE_DIR", &dir.0)
            .env("KEA_LOCKFILE_DIR", &dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let started = wait_for(Duration::from_secs(10), || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("DHCP4_STARTED"))
                .map(|_| Ok(()))
        });
        let fail = |why: String| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            io::Error::other(format!("kea-dhcp4 {why}; its log:\n{tail}"))
        };
        match started {
            Some(Ok(())) => Ok(Kea {
                child,
                log,
                _dir: dir,
            }),
            Some(Err(status)) => Err(fail(format!("exited ({status})"))),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(fail("did not start within 10 s".into()))
            }
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kea {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
