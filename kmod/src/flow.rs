//! The module's load and unload (`MOD_LOAD` / `MOD_UNLOAD`).
//!
//! Load: read the tunables; find the iBFT — a table preloaded by loader(8) as `ibft_table`
//! (an explicit choice: if it is invalid, nothing else is tried), else the ACPI tables (through
//! the loader's RSDP hint or an RSDP found in low memory; instance `hw.ibft.acpi_table`), else
//! the BIOS low-memory scan; validate it; publish the sysctl tree; print one boot line.
//!
//! Outcomes: a valid table → its tree is published, `Ok`; no table anywhere → only the version
//! and tunables are published, `Ok` (the module idles: there is nothing to boot from); an
//! invalid table → nothing of it is published, the boot line names the structure and field at
//! fault, and `Err(LoadError::InvalidTable)` (EINVAL for the kernel).

use crate::platform::{Platform, PublishError};
use crate::tree::{lun_value, SysctlTree};
use crate::tunables::Tunables;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use ibft::locate::{self, LocateError, LOW_MEMORY_END, LOW_MEMORY_START};
use ibft::{Ibft, Parsed};

/// Where the table came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableSource {
    /// A file preloaded by loader(8) with type `ibft_table`.
    Preloaded,
    /// The ACPI tables: the given instance, at a physical address.
    Acpi {
        /// 1-based instance among tables with the same signature.
        instance: u32,
        /// Physical address of the table.
        address: u64,
    },
    /// The BIOS low-memory window, at a physical address.
    LowMemory {
        /// Physical address of the table.
        address: u64,
    },
}

impl fmt::Display for TableSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableSource::Preloaded => write!(f, "preloaded file ({})", preload_type()),
            TableSource::Acpi { instance, address } => {
                write!(f, "ACPI table #{instance} at {address:#x}")
            }
            TableSource::LowMemory { address } => write!(f, "low memory at {address:#x}"),
        }
    }
}

fn preload_type() -> &'static str {
    crate::PRELOAD_TYPE.to_str().unwrap_or("ibft_table")
}

/// A valid table and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where.
    pub source: TableSource,
    /// The table.
    pub table: Ibft,
}

/// What a successful load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The tunables in effect.
    pub tunables: Tunables,
    /// The table, if one was found.
    pub found: Option<Found>,
    /// What was published.
    pub tree: SysctlTree,
}

/// Why the load failed. Each maps to an errno for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// A table was found but is invalid (EINVAL).
    InvalidTable {
        /// Where it was.
        source: String,
        /// What is wrong, naming the structure and field.
        reason: String,
    },
    /// The sysctl tree could not be published (ENOMEM).
    Publish(PublishError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::InvalidTable { source, reason } => {
                write!(f, "iBFT in {source} is invalid: {reason}")
            }
            LoadError::Publish(e) => write!(f, "cannot publish sysctls: {e}"),
        }
    }
}

/// Outcome of one place searched.
enum Search {
    Found(TableSource, Parsed),
    Missing(String),
    Invalid(String, String),
}

fn search_preloaded(p: &impl Platform) -> Search {
    let Some(bytes) = p.preloaded(crate::PRELOAD_TYPE) else {
        return Search::Missing(format!("no preloaded {}", preload_type()));
    };
    let source = TableSource::Preloaded;
    // A file may carry padding after the table: parse() honours the header's length.
    match ibft::parse(bytes) {
        Ok(parsed) => Search::Found(source, parsed),
        Err(e) => Search::Invalid(format!("{source}"), format!("{e}")),
    }
}

fn located(l: locate::Located) -> Search {
    let source = match l.source {
        locate::Source::Acpi { instance } => TableSource::Acpi {
            instance,
            address: l.address,
        },
        locate::Source::LowMemory => TableSource::LowMemory { address: l.address },
    };
    Search::Found(source, l.parsed)
}

fn search_acpi(p: &impl Platform, t: &Tunables) -> Search {
    let mem = p.memory();
    let Some(rsdp) = t.rsdp.or_else(|| locate::find_rsdp(mem)) else {
        return Search::Missing(String::from("no ACPI RSDP"));
    };
    match locate::find_in_acpi(mem, rsdp, t.acpi_table) {
        Ok(l) => located(l),
        Err(LocateError::NotFound) => {
            Search::Missing(format!("no ACPI iBFT #{} (RSDP {rsdp:#x})", t.acpi_table))
        }
        Err(LocateError::Invalid { address, error }) => Search::Invalid(
            format!("ACPI table #{} at {address:#x}", t.acpi_table),
            format!("{error}"),
        ),
        // Broken ACPI tables or unreadable memory: not an iBFT problem; keep looking.
        Err(e) => Search::Missing(format!("ACPI unusable ({e})")),
    }
}

fn search_low_memory(p: &impl Platform) -> Search {
    match locate::scan_low_memory(p.memory()) {
        Ok(l) => located(l),
        Err(LocateError::NotFound) => Search::Missing(format!(
            "nothing in low memory {LOW_MEMORY_START:#x}-{:#x}",
            LOW_MEMORY_END - 1
        )),
        Err(LocateError::Invalid { address, error }) => {
            Search::Invalid(format!("low memory at {address:#x}"), format!("{error}"))
        }
        Err(e) => Search::Missing(format!("low memory unreadable ({e})")),
    }
}

/// `MOD_LOAD`: see the module documentation.
pub fn load(p: &mut impl Platform) -> Result<Report, LoadError> {
    let tunables = Tunables::read(|name| p.tunable(name), p.bootverbose());
    p.set_debug_level(tunables.debug);
    for r in &tunables.rejected {
        log::warn!("{r}");
    }
    let mut tree = SysctlTree::base(&tunables);

    // Preloaded table, then ACPI, then low memory. An invalid preloaded table stops the search;
    // an invalid ACPI table is reported only if low memory has no valid one either.
    let mut misses: Vec<String> = Vec::new();
    let mut first_invalid: Option<(String, String)> = None;
    let mut found = None;
    for step in 0..3 {
        let outcome = match step {
            0 => search_preloaded(p),
            1 => search_acpi(p, &tunables),
            _ => search_low_memory(p),
        };
        match outcome {
            Search::Found(source, parsed) => {
                found = Some((source, parsed));
                break;
            }
            Search::Missing(why) => misses.push(why),
            Search::Invalid(source, reason) => {
                log::warn!("iBFT in {source} rejected: {reason}");
                first_invalid.get_or_insert((source, reason));
                if step == 0 {
                    break;
                }
            }
        }
    }

    let Some((source, parsed)) = found else {
        if let Some((source, reason)) = first_invalid {
            p.console(format_args!(
                "isboot: iBFT in {source} is invalid: {reason}; not booting from iSCSI"
            ));
            return Err(LoadError::InvalidTable { source, reason });
        }
        p.publish(&tree).map_err(LoadError::Publish)?;
        p.console(format_args!(
            "isboot: {} - no iBFT found ({}); nothing to boot from",
            crate::VERSION,
            misses.join("; ")
        ));
        return Ok(Report {
            tunables,
            found: None,
            tree,
        });
    };

    if let Some((bad, reason)) = &first_invalid {
        log::warn!("using the iBFT in {source}; the one in {bad} is invalid: {reason}");
    }
    for w in &parsed.warnings {
        log::warn!("iBFT in {source}: {w}");
    }
    let table = parsed.table;
    tree.add_table(&table, &format!("{source}"));
    if tunables.verbose > 0 {
        dump(p, &table);
    }
    p.publish(&tree).map_err(LoadError::Publish)?;
    boot_line(p, &source, &table);
    Ok(Report {
        tunables,
        found: Some(Found { source, table }),
        tree,
    })
}

/// `MOD_UNLOAD`: removes the sysctl tree.
pub fn unload(p: &mut impl Platform) {
    p.unpublish();
}

fn boot_line(p: &impl Platform, source: &TableSource, table: &Ibft) {
    let initiator = table
        .initiator
        .name
        .as_deref()
        .unwrap_or("(no initiator name)");
    let oem = &table.header.oem_id;
    let oem = core::str::from_utf8(oem)
        .unwrap_or("?")
        .trim_end_matches('\0');
    match table.boot_target() {
        Some(t) => {
            let nic = table.nic_for(t);
            let nic_text = match nic {
                Some(n) => match n.ip_address {
                    Some(ip) => format!(
                        "NIC {} {} pci {} {}/{}",
                        n.index, n.mac, n.pci, ip, n.prefix_length
                    ),
                    None => format!("NIC {} {} pci {}", n.index, n.mac, n.pci),
                },
                None => format!("NIC {} (missing from the table)", t.nic_association),
            };
            let addr = match t.socket_addr() {
                Some(a) => format!("{a}"),
                None => String::from("(no address)"),
            };
            p.console(format_args!(
                "isboot: {} - iBFT ({oem}) in {source}: {initiator} -> {} at {addr} LUN {} \
                 ({}) via {nic_text}",
                crate::VERSION,
                t.name.as_deref().unwrap_or("(no target name)"),
                lun_value(&t.lun),
                match t.chap_type {
                    ibft::ChapType::None => "no authentication",
                    ibft::ChapType::Chap => "CHAP",
                    ibft::ChapType::Mutual => "mutual CHAP",
                },
            ));
        }
        None => p.console(format_args!(
            "isboot: {} - iBFT ({oem}) in {source}: {initiator}, but no valid target; \
             nothing to boot from",
            crate::VERSION
        )),
    }
}

/// The `hw.ibft.verbose` dump: every structure, one line each. Secrets appear only as
/// `<set>`/`<none>`.
fn dump(p: &impl Platform, t: &Ibft) {
    let set = |s: &Option<ibft::Secret>| if s.is_some() { "<set>" } else { "<none>" };
    let ip = |a: Option<core::net::IpAddr>| a.map(|a| format!("{a}")).unwrap_or_default();
    let i = &t.initiator;
    p.console(format_args!(
        "isboot: ibft: initiator flags={:#x} name={} isns={} slp={} radius={},{}",
        i.flags.bits(),
        i.name.as_deref().unwrap_or(""),
        ip(i.isns_server),
        ip(i.slp_server),
        ip(i.primary_radius_server),
        ip(i.secondary_radius_server),
    ));
    for n in &t.nics {
        p.console(format_args!(
            "isboot: ibft: nic{} flags={:#x} ip={}/{} origin={} gw={} dns={},{} dhcp={} \
             vlan={} mac={} pci={} hostname={}",
            n.index,
            n.flags.bits(),
            ip(n.ip_address),
            n.prefix_length,
            n.origin.name(),
            ip(n.gateway),
            ip(n.primary_dns),
            ip(n.secondary_dns),
            ip(n.dhcp_server),
            n.vlan,
            n.mac,
            n.pci,
            n.hostname.as_deref().unwrap_or(""),
        ));
    }
    for g in &t.targets {
        p.console(format_args!(
            "isboot: ibft: target{} flags={:#x} {}:{} lun={} nic={} name={}",
            g.index,
            g.flags.bits(),
            ip(g.ip_address),
            g.port,
            lun_value(&g.lun),
            g.nic_association,
            g.name.as_deref().unwrap_or(""),
        ));
        p.console(format_args!(
            "isboot: ibft: target{} chap={} chap_name={} chap_secret={} rchap_name={} \
             rchap_secret={}",
            g.index,
            g.chap_type.name(),
            g.chap_name.as_deref().unwrap_or(""),
            set(&g.chap_secret),
            g.reverse_chap_name.as_deref().unwrap_or(""),
            set(&g.reverse_chap_secret),
        ));
    }
}
