//! The table as Linux shows it under `/sys/firmware/ibft`: the same directories (`initiator`,
//! `ethernetN`, `targetN`, `acpi_header`), attribute names, value formats and visibility rules
//! (Linux `drivers/firmware/iscsi_ibft.c`), so that `ibft dump` can be diffed against
//! `grep -r . /sys/firmware/ibft | sort` on a Linux machine booted from the same firmware.
//!
//! Linux's formats, quirks included: IPv4-mapped addresses in dotted quad, other addresses as
//! eight uncompressed groups (`%pI6`); the LUN as each byte in `%x` without padding (so
//! `00 01 00 00 …` prints `01000000`); the subnet mask derived from the prefix (all ones past
//! 32); the reverse CHAP secret under the name `rev-chap-name-secret`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::IpAddr;

use crate::model::{Ibft, Secret};

/// An attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A number Linux prints in decimal.
    Number(u64),
    /// Anything else, formatted as Linux formats it.
    Text(String),
    /// A CHAP secret left out because secrets were not asked for.
    Hidden,
}

impl core::fmt::Display for Value {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(s) => f.write_str(s),
            Value::Hidden => f.write_str("<hidden>"),
        }
    }
}

/// One attribute: `dir/name=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// `initiator`, `ethernetN`, `targetN` or `acpi_header`.
    pub dir: String,
    /// The sysfs attribute name.
    pub name: &'static str,
    /// The value.
    pub value: Value,
}

impl Attribute {
    /// `dir/name`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.dir, self.name)
    }
}

impl core::fmt::Display for Attribute {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}={}", self.dir, self.name, self.value)
    }
}

/// Whether CHAP secrets appear in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Secrets appear as [`Value::Hidden`].
    Hide,
    /// Secrets appear as they are in the table (as Linux shows them to root).
    Show,
}

/// Linux's `%pI4` / `%pI6`.
pub fn format_ip(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for (i, g) in v6.segments().iter().enumerate() {
                if i > 0 {
                    s.push(':');
                }
                let _ = write!(s, "{g:04x}");
            }
            s
        }
    }
}

/// A fixed-size ACPI name field up to its first NUL (Linux prints it with `%.*s`).
fn fixed(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Every attribute Linux would show for `table`, sorted by path as `sort` orders them.
pub fn attributes(table: &Ibft, secrets: Secrets) -> Vec<Attribute> {
    let mut out = Vec::new();
    let mut add = |dir: &str, name: &'static str, value: Value| {
        out.push(Attribute {
            dir: String::from(dir),
            name,
            value,
        })
    };
    let num = |n: u64| Value::Number(n);
    let text = |s: &str| Value::Text(String::from(s));
    let ip = |ip: &IpAddr| Value::Text(format_ip(ip));
    let secret = |s: &Option<Secret>| match secrets {
        Secrets::Hide => Value::Hidden,
        Secrets::Show => Value::Text(
            s.as_ref()
                .map(|s| String::from_utf8_lossy(s.expose()).into_owned())
                .unwrap_or_default(),
        ),
    };

    let h = &table.header;
    add("acpi_header", "signature", text(&fixed(&h.signature.0)));
    add("acpi_header", "oem_id", text(&fixed(&h.oem_id)));
    add("acpi_header", "oem_table_id", text(&fixed(&h.oem_table_id)));

    let i = &table.initiator;
    let d = "initiator";
    add(d, "index", num(0));
    add(d, "flags", num(i.flags.bits().into()));
    if let Some(a) = &i.isns_server {
        add(d, "isns-server", ip(a));
    }
    if let Some(a) = &i.slp_server {
        add(d, "slp-server", ip(a));
    }
    if let Some(a) = &i.primary_radius_server {
        add(d, "pri-radius-server", ip(a));
    }
    if let Some(a) = &i.secondary_radius_server {
        add(d, "sec-radius-server", ip(a));
    }
    if let Some(n) = nonempty(&i.name) {
        add(d, "initiator-name", text(n));
    }

    for n in &table.nics {
        let d = &format!("ethernet{}", n.index);
        add(d, "index", num(n.index.into()));
        add(d, "flags", num(n.flags.bits().into()));
        if let Some(a) = &n.ip_address {
            add(d, "ip-addr", ip(a));
        }
        if n.prefix_length != 0 {
            add(d, "prefix-len", num(n.prefix_length.into()));
            let mask = match n.prefix_length {
                p if p >= 32 => u32::MAX,
                p => !(u32::MAX >> p),
            };
            add(
                d,
                "subnet-mask",
                ip(&IpAddr::V4(core::net::Ipv4Addr::from(mask))),
            );
        }
        add(d, "origin", num(n.origin.0.into()));
        if let Some(a) = &n.gateway {
            add(d, "gateway", ip(a));
        }
        if let Some(a) = &n.primary_dns {
            add(d, "primary-dns", ip(a));
        }
        if let Some(a) = &n.secondary_dns {
            add(d, "secondary-dns", ip(a));
        }
        if let Some(a) = &n.dhcp_server {
            add(d, "dhcp", ip(a));
        }
        add(d, "vlan", num(n.vlan.into()));
        add(d, "mac", Value::Text(n.mac.to_string()));
        if let Some(h) = &n.hostname {
            add(d, "hostname", text(h));
        }
    }

    for t in &table.targets {
        let d = &format!("target{}", t.index);
        add(d, "index", num(t.index.into()));
        add(d, "flags", num(t.flags.bits().into()));
        // Linux shows the target address even when it is absent (all zeros).
        add(
            d,
            "ip-addr",
            t.ip_address
                .as_ref()
                .map(ip)
                .unwrap_or_else(|| ip(&IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED))),
        );
        add(d, "port", num(t.port.into()));
        let mut lun = String::new();
        for b in t.lun.0 {
            let _ = write!(lun, "{b:x}");
        }
        add(d, "lun", Value::Text(lun));
        add(d, "nic-assoc", num(t.nic_association.into()));
        add(d, "chap-type", num(t.chap_type.to_raw().into()));
        if let Some(n) = nonempty(&t.name) {
            add(d, "target-name", text(n));
        }
        if let Some(n) = nonempty(&t.chap_name) {
            add(d, "chap-name", text(n));
            add(d, "chap-secret", secret(&t.chap_secret));
        }
        if let Some(n) = nonempty(&t.reverse_chap_name) {
            add(d, "rev-chap-name", text(n));
            add(d, "rev-chap-name-secret", secret(&t.reverse_chap_secret));
        }
    }

    out.sort_by_cached_key(Attribute::path);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_prints_like_linux_pi6() {
        let a: IpAddr = "fe80::2:c9ff:fe00:1039".parse().unwrap();
        assert_eq!(format_ip(&a), "fe80:0000:0000:0000:0002:c9ff:fe00:1039");
        let b: IpAddr = "10.0.2.15".parse().unwrap();
        assert_eq!(format_ip(&b), "10.0.2.15");
    }

    #[test]
    fn fixed_fields_stop_at_nul() {
        assert_eq!(fixed(b"iPXE\0\0\0\0"), "iPXE");
        assert_eq!(fixed(b"FENSYS"), "FENSYS");
    }
}
