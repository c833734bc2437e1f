//! What the ROM is told to do: its settings, and the `isboot.cfg` file they come from on
//! firmware that has a file system (the UEFI image reads `\EFI\isboot\isboot.cfg` from the
//! ESP it was loaded from).
//!
//! The file is `key=value` lines. The keys are iPXE's setting names where iPXE has one —
//! `root-path`, `initiator-iqn`, `username`, `password`, `reverse-username`,
//! `reverse-password` — plus this ROM's own `port-order`, `link-wait` and `client-id`. Blank
//! lines and lines starting with `#` are ignored; spaces around keys and values are trimmed;
//! CRLF line ends are accepted. A key given twice, an unknown key, or a bad value is an error
//! naming the line and the key ([`ConfigError`]); a secret's value is never repeated in one.
//!
//! As in iPXE, what DHCP gives takes precedence: the file's root path is used only when the
//! lease has none, its initiator name only without option 203, and its CHAP credentials only
//! for the fields option 175 does not carry.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use ipoib::dhcp::ClientIdForm;
use secret::Secret;

/// The most ports a port order names.
pub const MAX_PORTS: usize = 8;

/// The longest file taken (a ROM reads it into memory whole).
pub const MAX_FILE: usize = 16 * 1024;

/// The longest value taken.
pub const MAX_VALUE: usize = 1024;

/// The BoIB manual's default wait for a port to come up (per port).
pub const DEFAULT_LINK_WAIT: Duration = Duration::from_secs(45);

/// The ROM's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The ports to try, in order (the BoIB manual: port 1, then port 2).
    pub port_order: Vec<u8>,
    /// How long to wait for each port's link (BoIB's default 45 s).
    pub link_wait: Duration,
    /// The DHCP client-id form the server is configured for (InfiniBand ports; an Ethernet
    /// port always sends its MAC address).
    pub client_id: ClientIdForm,
    /// The root path to use when DHCP gives none (`root-path`).
    pub root_path: Option<String>,
    /// The initiator name to use without DHCP option 203 (`initiator-iqn`).
    pub initiator_iqn: Option<String>,
    /// CHAP user name (`username`).
    pub username: Option<String>,
    /// CHAP secret (`password`).
    pub password: Option<Secret>,
    /// The target's CHAP name for mutual CHAP (`reverse-username`).
    pub reverse_username: Option<String>,
    /// The target's CHAP secret (`reverse-password`).
    pub reverse_password: Option<Secret>,
    /// How many bytes of the boot LUN the flow reads and hands back (the boot blocks).
    pub boot_bytes: u32,
    /// Bound on the iSCSI login.
    pub login_timeout: Duration,
}

impl Default for Config {
    /// Ports 1 then 2, 45 s each, RFC 4390's client-id, nothing else given, 4 KiB of boot
    /// blocks, 30 s for the login.
    fn default() -> Self {
        Self {
            port_order: alloc::vec![1, 2],
            link_wait: DEFAULT_LINK_WAIT,
            client_id: ClientIdForm::Rfc4390,
            root_path: None,
            initiator_iqn: None,
            username: None,
            password: None,
            reverse_username: None,
            reverse_password: None,
            boot_bytes: 4096,
            login_timeout: Duration::from_secs(30),
        }
    }
}

/// The file's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `root-path`
    RootPath,
    /// `initiator-iqn`
    InitiatorIqn,
    /// `username`
    Username,
    /// `password`
    Password,
    /// `reverse-username`
    ReverseUsername,
    /// `reverse-password`
    ReversePassword,
    /// `port-order`
    PortOrder,
    /// `link-wait`
    LinkWait,
    /// `client-id`
    ClientId,
}

impl Key {
    /// Every key.
    pub const ALL: [Key; 9] = [
        Key::RootPath,
        Key::InitiatorIqn,
        Key::Username,
        Key::Password,
        Key::ReverseUsername,
        Key::ReversePassword,
        Key::PortOrder,
        Key::LinkWait,
        Key::ClientId,
    ];

    /// The key as the file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Key::RootPath => "root-path",
            Key::InitiatorIqn => "initiator-iqn",
            Key::Username => "username",
            Key::Password => "password",
            Key::ReverseUsername => "reverse-username",
            Key::ReversePassword => "reverse-password",
            Key::PortOrder => "port-order",
            Key::LinkWait => "link-wait",
            Key::ClientId => "client-id",
        }
    }

    fn from_name(s: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.name() == s)
    }

    fn is_secret(self) -> bool {
        matches!(self, Key::Password | Key::ReversePassword)
    }
}

/// The `client-id` values and the forms they name.
pub const CLIENT_ID_NAMES: [(&str, ClientIdForm); 6] = [
    ("rfc4390", ClientIdForm::Rfc4390),
    ("boib-connectx", ClientIdForm::BoibConnectX),
    ("boib-infinihost", ClientIdForm::BoibInfiniHost),
    ("flexboot", ClientIdForm::FlexBoot),
    ("ib-guid", ClientIdForm::IbGuid),
    ("ipxe", ClientIdForm::IpxeEthernet),
];

/// The `client-id` value naming `form`.
pub fn client_id_name(form: ClientIdForm) -> &'static str {
    CLIENT_ID_NAMES
        .iter()
        .find(|(_, f)| *f == form)
        .map_or("rfc4390", |(n, _)| n)
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file is longer than [`MAX_FILE`].
    TooLong,
    /// The line is not UTF-8.
    NotUtf8,
    /// The line has no `=`.
    NoEquals,
    /// The key is not one of [`Key::ALL`] (as written, cut to 64 bytes).
    UnknownKey(String),
    /// The key was given before, on the line named.
    Duplicate(Key, u32),
    /// The value is not one the key takes.
    BadValue {
        /// The key.
        key: Key,
        /// The value as written (`None` for secrets, which are never repeated).
        value: Option<String>,
        /// What the key takes.
        expected: &'static str,
    },
}

/// Why a configuration file was refused: the line (1-based; 0 for the whole file) and what
/// is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The line.
    pub line: u32,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        match &self.kind {
            ConfigErrorKind::TooLong => write!(f, "the file is longer than {MAX_FILE} bytes"),
            ConfigErrorKind::NotUtf8 => f.write_str("not UTF-8 text"),
            ConfigErrorKind::NoEquals => f.write_str("not a key=value line"),
            ConfigErrorKind::UnknownKey(k) => {
                write!(f, "unknown key \"{k}\" (known: ")?;
                for (i, k) in Key::ALL.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(k.name())?;
                }
                f.write_str(")")
            }
            ConfigErrorKind::Duplicate(k, first) => {
                write!(f, "{} given again (first on line {first})", k.name())
            }
            ConfigErrorKind::BadValue {
                key,
                value: Some(v),
                expected,
            } => write!(f, "{}: bad value \"{v}\": {expected}", key.name()),
            ConfigErrorKind::BadValue {
                key,
                value: None,
                expected,
            } => write!(f, "{}: bad value: {expected}", key.name()),
        }
    }
}

fn cut(s: &str, n: usize) -> String {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn bad(line: u32, key: Key, value: &str, expected: &'static str) -> ConfigError {
    ConfigError {
        line,
        kind: ConfigErrorKind::BadValue {
            key,
            value: (!key.is_secret()).then(|| cut(value, 64)),
            expected,
        },
    }
}

/// A name or secret: printable ASCII without spaces inside, 1 to [`MAX_VALUE`] bytes.
fn word(line: u32, key: Key, v: &str) -> Result<String, ConfigError> {
    if v.is_empty() || v.len() > MAX_VALUE || !v.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(bad(
            line,
            key,
            v,
            "1 to 1024 printable ASCII characters, no spaces",
        ));
    }
    Ok(v.to_string())
}

fn port_order(line: u32, v: &str) -> Result<Vec<u8>, ConfigError> {
    const WANT: &str = "port numbers from 1 to 8, separated by commas, each once (e.g. 1,2)";
    let mut ports = Vec::new();
    for p in v.split(',') {
        let p = p.trim();
        let n = match p.parse::<u8>() {
            Ok(n) if (1..=MAX_PORTS as u8).contains(&n) && !ports.contains(&n) => n,
            _ => return Err(bad(line, Key::PortOrder, v, WANT)),
        };
        ports.push(n);
    }
    Ok(ports)
}

fn link_wait(line: u32, v: &str) -> Result<Duration, ConfigError> {
    const WANT: &str = "seconds from 0 to 3600, or milliseconds with \"ms\" (e.g. 45 or 500ms)";
    let (digits, ms) = match v.strip_suffix("ms") {
        Some(d) => (d, true),
        None => (v.strip_suffix('s').unwrap_or(v), false),
    };
    let n: u64 = match digits.trim().parse() {
        Ok(n) if digits.trim().bytes().all(|b| b.is_ascii_digit()) => n,
        _ => return Err(bad(line, Key::LinkWait, v, WANT)),
    };
    let d = if ms {
        Duration::from_millis(n)
    } else {
        Duration::from_secs(n)
    };
    if d > Duration::from_secs(3600) {
        return Err(bad(line, Key::LinkWait, v, WANT));
    }
    Ok(d)
}

fn client_id(line: u32, v: &str) -> Result<ClientIdForm, ConfigError> {
    CLIENT_ID_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(v))
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            bad(
                line,
                Key::ClientId,
                v,
                "one of rfc4390, boib-connectx, boib-infinihost, flexboot, ib-guid, ipxe",
            )
        })
}

/// Reads a configuration file over [`Config::default`].
pub fn parse(text: &[u8]) -> Result<Config, ConfigError> {
    parse_over(text, Config::default())
}

/// Reads a configuration file over `base` (what the firmware's defaults are).
pub fn parse_over(text: &[u8], base: Config) -> Result<Config, ConfigError> {
    if text.len() > MAX_FILE {
        return Err(ConfigError {
            line: 0,
            kind: ConfigErrorKind::TooLong,
        });
    }
    let mut cfg = base;
    let mut seen: [u32; Key::ALL.len()] = [0; Key::ALL.len()];
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let s = core::str::from_utf8(raw).map_err(|_| ConfigError {
            line,
            kind: ConfigErrorKind::NotUtf8,
        })?;
        let s = s.trim();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        let (k, v) = s.split_once('=').ok_or(ConfigError {
            line,
            kind: ConfigErrorKind::NoEquals,
        })?;
        let (k, v) = (k.trim(), v.trim());
        let key = Key::from_name(k).ok_or_else(|| ConfigError {
            line,
            kind: ConfigErrorKind::UnknownKey(cut(k, 64)),
        })?;
        let slot = Key::ALL.iter().position(|x| *x == key).unwrap_or(0);
        if seen[slot] != 0 {
            return Err(ConfigError {
                line,
                kind: ConfigErrorKind::Duplicate(key, seen[slot]),
            });
        }
        seen[slot] = line;
        match key {
            Key::RootPath => {
                let w = word(line, key, v)?;
                if let Err(e) = iscsi_initiator::rootpath::RootPath::parse(&w) {
                    return Err(bad(line, key, v, rootpath_expectation(e)));
                }
                cfg.root_path = Some(w);
            }
            Key::InitiatorIqn => cfg.initiator_iqn = Some(word(line, key, v)?),
            Key::Username => cfg.username = Some(word(line, key, v)?),
            Key::Password => cfg.password = Some(Secret::from(word(line, key, v)?.as_str())),
            Key::ReverseUsername => cfg.reverse_username = Some(word(line, key, v)?),
            Key::ReversePassword => {
                cfg.reverse_password = Some(Secret::from(word(line, key, v)?.as_str()))
            }
            Key::PortOrder => cfg.port_order = port_order(line, v)?,
            Key::LinkWait => cfg.link_wait = link_wait(line, v)?,
            Key::ClientId => cfg.client_id = client_id(line, v)?,
        }
    }
    Ok(cfg)
}

fn rootpath_expectation(e: iscsi_initiator::rootpath::RootPathError) -> &'static str {
    use iscsi_initiator::rootpath::RootPathError as E;
    match e {
        E::NotIscsi => "an iscsi: root path (RFC 4173)",
        E::TooShort => "iscsi:server:protocol:port:lun:target (RFC 4173)",
        E::NoServer => "a root path naming its server (no discovery)",
        E::BadServer => "a root path with a well-formed IPv6 literal",
        E::BadPort => "a root path whose port is a number up to 65535",
        E::BadLun => "a root path whose LUN is up to four hex groups (e.g. 1 or 0-1)",
        E::NoTarget => "a root path naming its target",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn every_key_is_read() {
        let c = parse(
            b"# isboot.cfg\r\n\
              root-path = iscsi:192.0.2.1::3260:1:iqn.2026-11.org.example:boot\r\n\
              initiator-iqn=iqn.2026-11.org.example:node17\n\
              username=node17\npassword=s3cret\n\
              reverse-username=array\nreverse-password=t4rget\n\
              port-order=2,1\nlink-wait=500ms\nclient-id=FlexBoot\n\n",
        )
        .unwrap();
        assert_eq!(
            c.root_path.as_deref(),
            Some("iscsi:192.0.2.1::3260:1:iqn.2026-11.org.example:boot")
        );
        assert_eq!(
            c.initiator_iqn.as_deref(),
            Some("iqn.2026-11.org.example:node17")
        );
        assert_eq!(c.username.as_deref(), Some("node17"));
        assert_eq!(c.password.as_ref().unwrap().expose(), b"s3cret");
        assert_eq!(c.reverse_username.as_deref(), Some("array"));
        assert_eq!(c.reverse_password.as_ref().unwrap().expose(), b"t4rget");
        assert_eq!(c.port_order, [2, 1]);
        assert_eq!(c.link_wait, Duration::from_millis(500));
        assert_eq!(c.client_id, ClientIdForm::FlexBoot);
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn defaults_are_boib_s() {
        let c = parse(b"").unwrap();
        assert_eq!(c.port_order, [1, 2]);
        assert_eq!(c.link_wait, Duration::from_secs(45));
        assert_eq!(c.client_id, ClientIdForm::Rfc4390);
        assert_eq!(parse(b"link-wait=7s").unwrap().link_wait.as_secs(), 7);
        assert_eq!(parse(b"link-wait=0").unwrap().link_wait.as_secs(), 0);
        for (n, f) in CLIENT_ID_NAMES {
            assert_eq!(client_id_name(f), n);
        }
    }

    fn err(text: &str) -> String {
        parse(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn each_error_names_its_line_and_key() {
        assert_eq!(
            err("\nrootpath=iscsi:x"),
            "line 2: unknown key \"rootpath\" (known: root-path, initiator-iqn, username, \
             password, reverse-username, reverse-password, port-order, link-wait, client-id)"
        );
        assert_eq!(
            err("port-order=1,3x"),
            "line 1: port-order: bad value \"1,3x\": port numbers from 1 to 8, separated by \
             commas, each once (e.g. 1,2)"
        );
        assert!(err("port-order=1,1").starts_with("line 1: port-order: bad value"));
        assert!(err("port-order=9").starts_with("line 1: port-order: bad value"));
        assert!(err("link-wait=-1").starts_with("line 1: link-wait: bad value \"-1\""));
        assert!(err("link-wait=3601").starts_with("line 1: link-wait"));
        assert!(err("link-wait=+5").starts_with("line 1: link-wait"));
        assert!(err("client-id=mac").starts_with("line 1: client-id: bad value \"mac\""));
        assert_eq!(err("a\nb c"), "line 1: not a key=value line");
        assert_eq!(
            err("username=a\nusername=b"),
            "line 2: username given again (first on line 1)"
        );
        assert_eq!(
            err("root-path=nfs:1.2.3.4:/x"),
            "line 1: root-path: bad value \"nfs:1.2.3.4:/x\": an iscsi: root path (RFC 4173)"
        );
        assert!(err("username=").starts_with("line 1: username: bad value"));
        assert!(err("username=a b").starts_with("line 1: username: bad value"));
        let e = err("password=has space");
        assert_eq!(
            e,
            "line 1: password: bad value: 1 to 1024 printable ASCII characters, no spaces"
        );
        assert_eq!(
            parse(b"username=\xff").unwrap_err(),
            ConfigError {
                line: 1,
                kind: ConfigErrorKind::NotUtf8
            }
        );
        assert_eq!(
            parse(&alloc::vec![b'#'; MAX_FILE + 1]).unwrap_err().kind,
            ConfigErrorKind::TooLong
        );
    }

    #[test]
    fn a_long_unknown_key_is_cut_on_a_character_boundary() {
        let k = "é".repeat(100);
        let e = parse(format!("{k}=1").as_bytes()).unwrap_err();
        match e.kind {
            ConfigErrorKind::UnknownKey(s) => assert_eq!(s, "é".repeat(32)),
            other => panic!("{other:?}"),
        }
    }
}
