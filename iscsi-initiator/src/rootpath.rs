//! The `iscsi:` root path DHCP hands a SAN-booting client (RFC 4173 §5):
//! `iscsi:<servername>:<protocol>:<port>:<LUN>:<targetname>`.
//!
//! As iPXE reads it: the first four colons separate fields (the target name keeps its own
//! colons, and colons inside `[...]` belong to an IPv6 literal); the protocol is ignored (only
//! 6, TCP, exists); an empty or zero port is 3260; the LUN is up to four `-`-separated groups of
//! up to four hex digits, each stored big-endian into the 8-byte SAM LUN (so `1` is
//! `00 01 00 …`), empty meaning LUN 0.

use alloc::string::String;
use core::fmt;
use core::net::IpAddr;

use crate::session::Portal;

/// The default iSCSI port (RFC 4173 §5: an empty port field means 3260).
pub const ISCSI_PORT: u16 = Portal::DEFAULT_PORT;

/// Where the target is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// An address.
    Ip(IpAddr),
    /// A DNS name, to be resolved.
    Name(String),
}

/// A parsed root path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPath {
    /// The target's host.
    pub server: Server,
    /// TCP port.
    pub port: u16,
    /// The boot LUN, 8 bytes in SAM order.
    pub lun: [u8; 8],
    /// The target's iSCSI name.
    pub target: String,
}

/// Why a root path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootPathError {
    /// Does not start with `iscsi:`.
    NotIscsi,
    /// Fewer than the five separators.
    TooShort,
    /// No server: discovery is not supported.
    NoServer,
    /// An IPv6 literal without its `]`.
    BadServer,
    /// The port is not a number from 0 to 65535.
    BadPort,
    /// The LUN is not up to four groups of up to four hex digits.
    BadLun,
    /// No target name.
    NoTarget,
}

impl fmt::Display for RootPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RootPathError::NotIscsi => "root path does not start with \"iscsi:\"",
            RootPathError::TooShort => {
                "root path is too short (iscsi:server:protocol:port:lun:target)"
            }
            RootPathError::NoServer => "root path names no server",
            RootPathError::BadServer => "root path has a malformed IPv6 server address",
            RootPathError::BadPort => "root path port is not a number up to 65535",
            RootPathError::BadLun => "root path LUN is not up to four hex groups (e.g. 1 or 0-1)",
            RootPathError::NoTarget => "root path names no target",
        })
    }
}

impl RootPath {
    /// Parses a root path.
    pub fn parse(s: &str) -> Result<Self, RootPathError> {
        let rest = s.strip_prefix("iscsi:").ok_or(RootPathError::NotIscsi)?;
        let mut fields: [&str; 4] = [""; 4];
        let mut start = 0;
        let mut depth = 0u32;
        let mut n = 0;
        let bytes = rest.as_bytes();
        let mut i = 0;
        while n < 4 {
            let Some(&c) = bytes.get(i) else {
                return Err(RootPathError::TooShort);
            };
            match c {
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b':' if depth == 0 => {
                    fields[n] = &rest[start..i];
                    n += 1;
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        let target = &rest[start..];
        let [server, _protocol, port, lun] = fields;
        if server.is_empty() {
            return Err(RootPathError::NoServer);
        }
        let server = if let Some(v6) = server.strip_prefix('[') {
            let v6 = v6.strip_suffix(']').ok_or(RootPathError::BadServer)?;
            Server::Ip(IpAddr::V6(
                v6.parse().map_err(|_| RootPathError::BadServer)?,
            ))
        } else {
            match server.parse::<IpAddr>() {
                Ok(ip) => Server::Ip(ip),
                Err(_) => Server::Name(String::from(server)),
            }
        };
        let port = match port {
            "" => ISCSI_PORT,
            p => match p.parse::<u16>().map_err(|_| RootPathError::BadPort)? {
                0 => ISCSI_PORT,
                p => p,
            },
        };
        if target.is_empty() {
            return Err(RootPathError::NoTarget);
        }
        Ok(Self {
            server,
            port,
            lun: parse_lun(lun)?,
            target: String::from(target),
        })
    }
}

fn parse_lun(s: &str) -> Result<[u8; 8], RootPathError> {
    let mut lun = [0u8; 8];
    if s.is_empty() {
        return Ok(lun);
    }
    for (i, group) in s.split('-').enumerate() {
        if i >= 4 || group.is_empty() || group.len() > 4 {
            return Err(RootPathError::BadLun);
        }
        let v = u16::from_str_radix(group, 16).map_err(|_| RootPathError::BadLun)?;
        lun[2 * i..2 * i + 2].copy_from_slice(&v.to_be_bytes());
    }
    Ok(lun)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_forms() {
        let r = RootPath::parse("iscsi:192.0.2.10::3260:1:iqn.2026-11.org.example:boot").unwrap();
        assert_eq!(r.server, Server::Ip("192.0.2.10".parse().unwrap()));
        assert_eq!(r.port, 3260);
        assert_eq!(r.lun, [0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.target, "iqn.2026-11.org.example:boot");

        let r = RootPath::parse("iscsi:san.example.org::::iqn.x:y").unwrap();
        assert_eq!(r.server, Server::Name("san.example.org".into()));
        assert_eq!((r.port, r.lun), (3260, [0; 8]));

        let r = RootPath::parse("iscsi:[2001:db8::10]:6:3262:0-1:iqn.x:y:z").unwrap();
        assert_eq!(r.server, Server::Ip("2001:db8::10".parse().unwrap()));
        assert_eq!(r.port, 3262);
        assert_eq!(r.lun, [0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(r.target, "iqn.x:y:z");

        assert_eq!(RootPath::parse("iscsi:h::0:ff:t").unwrap().port, 3260);
        assert_eq!(
            RootPath::parse("iscsi:h:::4001-2-3-4:t").unwrap().lun,
            [0x40, 1, 0, 2, 0, 3, 0, 4]
        );
    }

    #[test]
    fn refusals() {
        for (s, e) in [
            ("nfs:192.0.2.1:/root", RootPathError::NotIscsi),
            ("iscsi:192.0.2.1::3260:1", RootPathError::TooShort),
            ("iscsi:::3260:1:iqn.x", RootPathError::NoServer),
            ("iscsi:[2001:db8::1::3260:1:iqn.x", RootPathError::TooShort),
            ("iscsi:[zz]::3260:1:iqn.x", RootPathError::BadServer),
            ("iscsi:h::70000:1:iqn.x", RootPathError::BadPort),
            ("iscsi:h::x:1:iqn.x", RootPathError::BadPort),
            ("iscsi:h::3260:1-2-3-4-5:iqn.x", RootPathError::BadLun),
            ("iscsi:h::3260:12345:iqn.x", RootPathError::BadLun),
            ("iscsi:h::3260:g:iqn.x", RootPathError::BadLun),
            ("iscsi:h::3260:1:", RootPathError::NoTarget),
        ] {
            assert_eq!(RootPath::parse(s), Err(e), "{s}");
        }
    }
}
