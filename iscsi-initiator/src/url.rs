//! libiscsi's URL syntax: `iscsi://[user[%secret]@]host[:port]/target-iqn/lun`, with
//! `?target_user=U&target_password=S` for mutual CHAP. The same URL works with libiscsi's
//! tools. The secrets are held as [`Secret`]s: zeroed when dropped, never printed.

use alloc::string::String;
use alloc::vec::Vec;

use secret::Secret;
use zeroize::Zeroizing;

use crate::session::Portal;

/// A parsed iSCSI URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IscsiUrl {
    /// Portal.
    pub portal: Portal,
    /// Target IQN (may be empty for discovery URLs).
    pub target: String,
    /// LUN.
    pub lun: u16,
    /// CHAP user.
    pub user: Option<String>,
    /// CHAP secret.
    pub secret: Option<Secret>,
    /// Mutual CHAP: the target's user.
    pub target_user: Option<String>,
    /// Mutual CHAP: the target's secret.
    pub target_secret: Option<Secret>,
}

/// Why a URL was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// Not `iscsi://`.
    Scheme,
    /// Bad host or port.
    Portal,
    /// Missing target or LUN.
    Path,
    /// LUN not a number below 16384.
    Lun,
    /// Unknown query argument or bad %-escape.
    Query,
}

impl core::fmt::Display for UrlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            UrlError::Scheme => "it does not start with iscsi://",
            UrlError::Portal => "bad host or port",
            UrlError::Path => "it needs /TARGET/LUN after the portal",
            UrlError::Lun => "the LUN is not a number below 16384",
            UrlError::Query => "unknown ?argument or bad %-escape",
        })
    }
}

/// `s` with its secrets replaced by `<hidden>` (the part after `%` in `user%secret@`, and the
/// value of `target_password=`), for messages about a URL that may not even parse.
pub fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (body, query) = match s.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (s, None),
    };
    match body.rsplit_once('@') {
        Some((cred, rest)) => {
            match cred.split_once('%') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str("%<hidden>");
                }
                None => out.push_str(cred),
            }
            out.push('@');
            out.push_str(rest);
        }
        None => out.push_str(body),
    }
    if let Some(q) = query {
        out.push('?');
        for (i, arg) in q.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match arg.split_once('=') {
                Some(("target_password", _)) => out.push_str("target_password=<hidden>"),
                _ => out.push_str(arg),
            }
        }
    }
    out
}

/// Undo %-escapes. The bytes are wiped when dropped: they may be a secret.
fn unescape_bytes(s: &str) -> Result<Zeroizing<Vec<u8>>, UrlError> {
    let b = s.as_bytes();
    // Never grows past this, so never reallocates and leaves no copy behind.
    let mut out = Zeroizing::new(Vec::with_capacity(b.len()));
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = core::str::from_utf8(&b[i + 1..i + 3]).map_err(|_| UrlError::Query)?;
            out.push(u8::from_str_radix(h, 16).map_err(|_| UrlError::Query)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn unescape(s: &str) -> Result<String, UrlError> {
    String::from_utf8(core::mem::take(&mut *unescape_bytes(s)?)).map_err(|_| UrlError::Query)
}

/// A %-escaped secret (UTF-8, as every other URL argument).
fn unescape_secret(s: &str) -> Result<Secret, UrlError> {
    let secret = Secret::new(core::mem::take(&mut *unescape_bytes(s)?));
    core::str::from_utf8(secret.expose()).map_err(|_| UrlError::Query)?;
    Ok(secret)
}

impl IscsiUrl {
    /// Parse. `require_lun` is false for discovery (`iscsi://host[:port]`).
    pub fn parse(s: &str, require_lun: bool) -> Result<Self, UrlError> {
        let rest = s.strip_prefix("iscsi://").ok_or(UrlError::Scheme)?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (cred, rest) = match rest.rsplit_once('@') {
            Some((c, r)) => (Some(c), r),
            None => (None, rest),
        };
        let (user, secret) = match cred {
            // libiscsi separates user and secret with '%'.
            Some(c) => match c.split_once('%') {
                Some((u, p)) => (Some(String::from(u)), Some(Secret::from(p))),
                None => (Some(String::from(c)), None),
            },
            None => (None, None),
        };
        let (hostport, path) = match rest.split_once('/') {
            Some((h, p)) => (h, p),
            None => (rest, ""),
        };
        let (portal, _) = Portal::parse(hostport).ok_or(UrlError::Portal)?;
        let path = path.trim_end_matches('/');
        let (target, lun) = if path.is_empty() {
            if require_lun {
                return Err(UrlError::Path);
            }
            (String::new(), 0)
        } else {
            let (t, l) = path.rsplit_once('/').ok_or(UrlError::Path)?;
            if t.is_empty() {
                return Err(UrlError::Path);
            }
            let lun: u16 = l.parse().map_err(|_| UrlError::Lun)?;
            if lun >= 16384 {
                return Err(UrlError::Lun);
            }
            (String::from(t), lun)
        };
        let mut url = IscsiUrl {
            portal,
            target,
            lun,
            user,
            secret,
            target_user: None,
            target_secret: None,
        };
        if let Some(q) = query {
            for arg in q.split('&').filter(|a| !a.is_empty()) {
                let (k, v) = arg.split_once('=').ok_or(UrlError::Query)?;
                match k {
                    "target_user" => url.target_user = Some(unescape(v)?),
                    "target_password" => url.target_secret = Some(unescape_secret(v)?),
                    // libiscsi accepts these for the initiator side too.
                    "header_digest" | "iser" => {}
                    _ => return Err(UrlError::Query),
                }
            }
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_both_secrets_and_keeps_the_rest() {
        assert_eq!(
            redact(
                "iscsi://node%s3cret@10.0.0.1:3261/iqn.x:y/1?target_user=t&target_password=p4ss"
            ),
            "iscsi://node%<hidden>@10.0.0.1:3261/iqn.x:y/1?target_user=t&target_password=<hidden>"
        );
        assert_eq!(
            redact("iscsi://10.0.0.1/iqn.x:y/1"),
            "iscsi://10.0.0.1/iqn.x:y/1"
        );
        assert_eq!(redact("nonsense%s3cret@"), "nonsense%<hidden>@");
    }

    #[test]
    fn libiscsi_syntax() {
        let u = IscsiUrl::parse(
            "iscsi://alice%s3cret@127.0.0.1:3261/iqn.2024-01.test:disk/1",
            true,
        )
        .unwrap();
        assert_eq!(
            u.portal,
            Portal {
                host: "127.0.0.1".into(),
                port: 3261
            }
        );
        assert_eq!((u.target.as_str(), u.lun), ("iqn.2024-01.test:disk", 1));
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.secret.as_ref().map(Secret::expose), Some(&b"s3cret"[..]));
        let u = IscsiUrl::parse(
            "iscsi://[::1]/iqn.x:y/0?target_user=tgt&target_password=p%40ss",
            true,
        )
        .unwrap();
        assert_eq!((u.portal.host.as_str(), u.portal.port), ("::1", 3260));
        assert_eq!(u.target_user.as_deref(), Some("tgt"));
        assert_eq!(
            u.target_secret.as_ref().map(Secret::expose),
            Some(&b"p@ss"[..])
        );
        let shown = alloc::format!("{u:?}");
        assert!(
            !shown.contains("p@ss") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert_eq!(IscsiUrl::parse("http://x/y/0", true), Err(UrlError::Scheme));
        assert_eq!(IscsiUrl::parse("iscsi://h/iqn", true), Err(UrlError::Path));
        assert_eq!(IscsiUrl::parse("iscsi://h/iqn/x", true), Err(UrlError::Lun));
        assert_eq!(
            IscsiUrl::parse("iscsi://h:99999/iqn/0", true),
            Err(UrlError::Portal)
        );
        assert_eq!(
            IscsiUrl::parse("iscsi://h/t/0?bogus=1", true),
            Err(UrlError::Query)
        );
        assert!(IscsiUrl::parse("iscsi://h:3260", false).is_ok());
        assert_eq!(
            Portal::parse("10.0.0.1:3260,1"),
            Some((
                Portal {
                    host: "10.0.0.1".into(),
                    port: 3260
                },
                Some(1)
            ))
        );
    }
}
