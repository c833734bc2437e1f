//! The sysctl tree the module publishes, built from a validated table.
//!
//! `net.isboot.*` and the tunables under `hw.ibft.*` are always published. The table's tree is
//! published only for a valid table:
//!
//! - the flat names the C isboot published, for its users' scripts: `hw.ibft.initiator_name`,
//!   `initiator_address`, `target_name`, `target_address`, `target_port`, `target_lun`,
//!   `nic_prefix`, `nic_gateway` (boot target and its NIC; empty strings when absent);
//! - what isboot lacked, for the boot NIC/target: `nic_mac`, `nic_pci`, `nic_origin`,
//!   `nic_vlan`, `target_chap_type`, and `hw.ibft.location`/`signature`/`oem_id`/`oem_table_id`;
//! - every structure: `hw.ibft.nic.N.*` and `hw.ibft.target.N.*` (N is the table's index).
//!
//! `target_lun` is the SAM single-level LUN number (isboot printed the eight bytes in the
//! wrong byte order for LUN ≠ 0); a LUN in another addressing form is the eight bytes read
//! big-endian. CHAP secrets and names are never in the tree, only the CHAP *type*.

use crate::tunables::Tunables;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;
use ibft::{Ibft, Lun, Nic, Target};

/// A published value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string (`CTLTYPE_STRING`).
    Str(String),
    /// An unsigned int (`CTLTYPE_UINT`).
    Uint(u32),
    /// A 64-bit unsigned value (`CTLTYPE_U64`).
    U64(u64),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Uint(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
        }
    }
}

/// One oid: its full dotted name, value, whether it is a loader tunable, and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oid {
    /// Full name, e.g. `hw.ibft.target.0.port`. Starts with `hw.ibft.` or `net.isboot.`.
    pub name: String,
    /// The value.
    pub value: Value,
    /// Published with `CTLFLAG_TUN` (a loader tunable, read-only at run time).
    pub tunable: bool,
    /// `sysctl -d` text.
    pub descr: &'static str,
}

/// The static roots the shim declares; every oid hangs under one of them.
pub const ROOTS: [&str; 2] = ["hw.ibft", "net.isboot"];

/// An ordered list of oids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysctlTree {
    /// The oids, parents implied by the names, in publication order.
    pub oids: Vec<Oid>,
}

impl SysctlTree {
    fn push(&mut self, name: impl Into<String>, value: Value, descr: &'static str) {
        self.oids.push(Oid {
            name: name.into(),
            value,
            tunable: false,
            descr,
        });
    }

    fn string(&mut self, name: impl Into<String>, value: impl ToString, descr: &'static str) {
        self.push(name, Value::Str(value.to_string()), descr);
    }

    fn opt_ip(&mut self, name: String, ip: Option<IpAddr>, descr: &'static str) {
        if let Some(ip) = ip {
            self.string(name, ip, descr);
        }
    }

    /// The value of `name`, if published.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.oids.iter().find(|o| o.name == name).map(|o| &o.value)
    }

    /// The oids under `prefix` (a dotted name), excluding the loader tunables.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Oid> + 'a {
        self.oids.iter().filter(move |o| {
            !o.tunable
                && o.name
                    .strip_prefix(prefix)
                    .is_some_and(|r| r.starts_with('.'))
        })
    }

    /// The always-present part: version and tunables.
    pub fn base(t: &Tunables) -> Self {
        let mut tree = SysctlTree::default();
        tree.string(
            "net.isboot.version",
            crate::VERSION,
            "isboot module version",
        );
        let mut tun = |name: &str, v: u32, descr| {
            tree.oids.push(Oid {
                name: name.into(),
                value: Value::Uint(v),
                tunable: true,
                descr,
            })
        };
        tun(
            "net.isboot.debug",
            t.debug,
            "log level: 0 errors, 1 warnings, 2 info, 3 debug",
        );
        tun(
            "net.isboot.pkey",
            u32::from(t.pkey),
            "InfiniBand partition key of the boot interface",
        );
        tun(
            "hw.ibft.acpi_table",
            t.acpi_table,
            "which ACPI iBFT to use (1-based instance)",
        );
        tun(
            "hw.ibft.verbose",
            t.verbose,
            "print the iBFT at load (secrets masked)",
        );
        let secs =
            |d: iscsi_initiator::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        tun(
            "net.isboot.wait_interface",
            secs(t.boot.wait_interface),
            "seconds the boot interface may take to attach and get link",
        );
        tun(
            "net.isboot.wait_login",
            secs(t.boot.wait_login),
            "seconds the first iSCSI login may take",
        );
        tun(
            "net.isboot.wait_disk",
            secs(t.boot.wait_disk),
            "seconds CAM may take to attach the disk",
        );
        tun(
            "net.isboot.recovery_timeout",
            secs(t.boot.recovery),
            "seconds a lost session is retried before commands fail (0: for ever)",
        );
        tree
    }

    /// Adds the table's tree (see the module documentation).
    pub fn add_table(&mut self, table: &Ibft, location: &str) {
        let h = &table.header;
        self.string("hw.ibft.location", location, "where the iBFT was found");
        self.string("hw.ibft.signature", h.signature, "iBFT signature");
        self.string("hw.ibft.oem_id", text(&h.oem_id), "ACPI OEM id of the iBFT");
        self.string(
            "hw.ibft.oem_table_id",
            text(&h.oem_table_id),
            "ACPI OEM table id",
        );

        // The flat isboot names: the boot target and the NIC it is reached through.
        let name = table.initiator.name.clone().unwrap_or_default();
        self.string("hw.ibft.initiator_name", name, "iSCSI initiator name");
        let target = table.boot_target();
        let nic = target.and_then(|t| table.nic_for(t));
        let ip = |a: Option<IpAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        self.string(
            "hw.ibft.initiator_address",
            ip(nic.and_then(|n| n.ip_address)),
            "initiator address (boot NIC)",
        );
        self.string(
            "hw.ibft.target_name",
            target.and_then(|t| t.name.clone()).unwrap_or_default(),
            "boot target name",
        );
        self.string(
            "hw.ibft.target_address",
            ip(target.and_then(|t| t.ip_address)),
            "boot target address",
        );
        self.push(
            "hw.ibft.target_port",
            Value::Uint(target.map_or(0, |t| u32::from(t.port))),
            "boot target TCP port",
        );
        self.push(
            "hw.ibft.target_lun",
            Value::U64(target.map_or(0, |t| lun_value(&t.lun))),
            "boot target LUN",
        );
        self.push(
            "hw.ibft.nic_prefix",
            Value::Uint(nic.map_or(0, |n| u32::from(n.prefix_length))),
            "boot NIC prefix length",
        );
        self.string(
            "hw.ibft.nic_gateway",
            ip(nic.and_then(|n| n.gateway)),
            "boot NIC default gateway",
        );
        if let Some(n) = nic {
            self.string(
                "hw.ibft.nic_mac",
                n.mac,
                "boot NIC link address (IPoIB: from the GUID)",
            );
            self.string("hw.ibft.nic_pci", n.pci, "boot NIC PCI bus:slot:function");
            self.string(
                "hw.ibft.nic_origin",
                n.origin.name(),
                "boot NIC address origin",
            );
            self.push(
                "hw.ibft.nic_vlan",
                Value::Uint(u32::from(n.vlan)),
                "boot NIC VLAN",
            );
        }
        if let Some(t) = target {
            self.string(
                "hw.ibft.target_chap_type",
                t.chap_type.name(),
                "boot target CHAP type",
            );
        }

        for n in &table.nics {
            self.add_nic(n);
        }
        for t in &table.targets {
            self.add_target(t);
        }
    }

    fn add_nic(&mut self, n: &Nic) {
        let p = format!("hw.ibft.nic.{}", n.index);
        self.push(
            format!("{p}.flags"),
            Value::Uint(u32::from(n.flags.bits())),
            "NIC flags",
        );
        self.opt_ip(format!("{p}.address"), n.ip_address, "NIC address");
        self.push(
            format!("{p}.prefix"),
            Value::Uint(u32::from(n.prefix_length)),
            "prefix length",
        );
        self.string(format!("{p}.origin"), n.origin.name(), "address origin");
        self.opt_ip(format!("{p}.gateway"), n.gateway, "default gateway");
        self.opt_ip(
            format!("{p}.primary_dns"),
            n.primary_dns,
            "primary DNS server",
        );
        self.opt_ip(
            format!("{p}.secondary_dns"),
            n.secondary_dns,
            "secondary DNS server",
        );
        self.opt_ip(format!("{p}.dhcp_server"), n.dhcp_server, "DHCP server");
        self.push(format!("{p}.vlan"), Value::Uint(u32::from(n.vlan)), "VLAN");
        self.string(format!("{p}.mac"), n.mac, "link address");
        self.string(format!("{p}.pci"), n.pci, "PCI bus:slot:function");
        if let Some(h) = &n.hostname {
            self.string(format!("{p}.hostname"), h, "host name");
        }
    }

    fn add_target(&mut self, t: &Target) {
        let p = format!("hw.ibft.target.{}", t.index);
        self.push(
            format!("{p}.flags"),
            Value::Uint(u32::from(t.flags.bits())),
            "target flags",
        );
        if let Some(name) = &t.name {
            self.string(format!("{p}.name"), name, "target name");
        }
        self.opt_ip(format!("{p}.address"), t.ip_address, "target address");
        self.push(
            format!("{p}.port"),
            Value::Uint(u32::from(t.port)),
            "TCP port",
        );
        self.push(format!("{p}.lun"), Value::U64(lun_value(&t.lun)), "LUN");
        self.string(
            format!("{p}.chap_type"),
            t.chap_type.name(),
            "CHAP type (none/chap/mutual)",
        );
        self.push(
            format!("{p}.nic"),
            Value::Uint(u32::from(t.nic_association)),
            "NIC index",
        );
    }
}

/// Where a [`Step`] hangs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// One of the static [`ROOTS`] (by index).
    Root(usize),
    /// The n-th node created by the plan (counting [`Step::Node`]s from 0).
    Node(usize),
}

/// One sysctl_add_oid(9) call of a publication plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// Create an intermediate node.
    Node {
        /// Its parent.
        parent: Parent,
        /// Its name (one component).
        name: &'a str,
    },
    /// Create a leaf for an oid of the tree.
    Leaf {
        /// Its parent.
        parent: Parent,
        /// Its name (the last component).
        name: &'a str,
        /// The oid.
        oid: &'a Oid,
    },
}

/// An oid name the kernel tree cannot take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName(pub String);

impl SysctlTree {
    /// The sysctl_add_oid(9) calls that publish the tree under the static roots, in order:
    /// each intermediate node once, before its first child. Fails on a name outside the roots
    /// or with an empty component.
    pub fn plan(&self) -> Result<Vec<Step<'_>>, BadName> {
        let mut steps = Vec::new();
        let mut nodes: Vec<&str> = Vec::new(); // full dotted names of created nodes
        for oid in &self.oids {
            let bad = || BadName(oid.name.clone());
            let (root, rest) = ROOTS
                .iter()
                .enumerate()
                .find_map(|(i, r)| {
                    oid.name
                        .strip_prefix(r)
                        .and_then(|x| x.strip_prefix('.'))
                        .map(|x| (i, x))
                })
                .ok_or_else(bad)?;
            let mut parent = Parent::Root(root);
            let mut end = oid.name.len() - rest.len();
            let parts: Vec<&str> = rest.split('.').collect();
            if parts.iter().any(|p| p.is_empty()) {
                return Err(bad());
            }
            for (i, part) in parts.iter().enumerate() {
                end += part.len();
                if i + 1 == parts.len() {
                    steps.push(Step::Leaf {
                        parent,
                        name: part,
                        oid,
                    });
                    break;
                }
                let path = &oid.name[..end];
                end += 1; // the dot
                parent = match nodes.iter().position(|n| *n == path) {
                    Some(n) => Parent::Node(n),
                    None => {
                        steps.push(Step::Node { parent, name: part });
                        nodes.push(path);
                        Parent::Node(nodes.len() - 1)
                    }
                };
            }
        }
        Ok(steps)
    }
}

/// A LUN as one number: the single-level LUN number, else the eight bytes big-endian.
pub fn lun_value(lun: &Lun) -> u64 {
    lun.number().unwrap_or_else(|| u64::from_be_bytes(lun.0))
}

/// NUL-padded ASCII as text (non-printable bytes shown as `?`).
fn text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}
