//! The module's loader tunables (`/boot/loader.conf` or `kenv` before `kldload`).
//!
//! | tunable | default | meaning |
//! |---|---|---|
//! | `hw.ibft.acpi_table` | 1 | which ACPI iBFT to use when there are several (1-based) |
//! | `hw.ibft.verbose` | 0 (1 if booted verbose) | print the whole table at load (secrets masked) |
//! | `net.isboot.debug` | 0 (2 if booted verbose) | log level: 0 errors, 1 warnings, 2 info, 3 debug |
//! | `net.isboot.pkey` | 0xffff | InfiniBand partition key of the boot interface (the iBFT has no field for it) |
//! | `net.isboot.wait_interface` | 60 | seconds the boot interface may take to attach and get link (1..=3600) |
//! | `net.isboot.wait_login` | 60 | seconds the first login may take, retries included (1..=3600) |
//! | `net.isboot.wait_disk` | 30 | seconds CAM may take to attach the disk (1..=3600) |
//! | `net.isboot.recovery_timeout` | 0 | seconds a lost session is retried before the disk's commands fail; 0: for ever (0..=2592000, 30 days) |
//!
//! A value that is out of range is replaced by the default with a warning. The boot defaults
//! are [`BootTunables::default`](crate::boot::BootTunables).

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::CStr;
use iscsi_initiator::time::Duration;

use crate::boot::BootTunables;

/// `hw.ibft.acpi_table`.
pub const ACPI_TABLE: &CStr = c"hw.ibft.acpi_table";
/// `hw.ibft.verbose`.
pub const VERBOSE: &CStr = c"hw.ibft.verbose";
/// `net.isboot.debug`.
pub const DEBUG: &CStr = c"net.isboot.debug";
/// `net.isboot.pkey`.
pub const PKEY: &CStr = c"net.isboot.pkey";
/// `net.isboot.wait_interface`.
pub const WAIT_INTERFACE: &CStr = c"net.isboot.wait_interface";
/// `net.isboot.wait_login`.
pub const WAIT_LOGIN: &CStr = c"net.isboot.wait_login";
/// `net.isboot.wait_disk`.
pub const WAIT_DISK: &CStr = c"net.isboot.wait_disk";
/// `net.isboot.recovery_timeout`.
pub const RECOVERY_TIMEOUT: &CStr = c"net.isboot.recovery_timeout";
/// The longest wait a `wait_*` tunable accepts (an hour).
pub const MAX_WAIT_SECS: u32 = 3600;
/// The longest `recovery_timeout` (30 days).
pub const MAX_RECOVERY_SECS: u32 = 30 * 24 * 3600;
/// The loader's hint with the physical address of the ACPI RSDP (set on BIOS and UEFI boots).
pub const RSDP_HINT: &CStr = c"hint.acpi.0.rsdp";

/// The default partition key: the default partition, full membership.
pub const DEFAULT_PKEY: u16 = 0xffff;

/// The tunables as the module uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunables {
    /// `hw.ibft.acpi_table`, at least 1.
    pub acpi_table: u32,
    /// `hw.ibft.verbose`.
    pub verbose: u32,
    /// `net.isboot.debug`.
    pub debug: u32,
    /// `net.isboot.pkey`.
    pub pkey: u16,
    /// `hint.acpi.0.rsdp`, if the loader gave one.
    pub rsdp: Option<u64>,
    /// `net.isboot.wait_interface`, `wait_login`, `wait_disk`, `recovery_timeout`.
    pub boot: BootTunables,
    /// Values that were out of range and replaced by their default (for the log).
    pub rejected: Vec<String>,
}

impl Tunables {
    /// Reads them through `lookup` (the kernel environment: `getenv_quad`); `verbose_boot` is
    /// whether the system booted verbose (`bootverbose`).
    pub fn read(lookup: impl Fn(&CStr) -> Option<i64>, verbose_boot: bool) -> Self {
        let mut rejected = Vec::new();
        let mut uint = |name: &CStr, default: u32, max: u32| -> u32 {
            match lookup(name) {
                None => default,
                Some(v) if (0..=i64::from(max)).contains(&v) => v as u32,
                Some(v) => {
                    rejected.push(alloc::format!(
                        "{}={} is out of range (0..={}); using {}",
                        name.to_str().unwrap_or("?"),
                        v,
                        max,
                        default
                    ));
                    default
                }
            }
        };
        let acpi_table = uint(ACPI_TABLE, 1, u32::MAX).max(1);
        let verbose = uint(VERBOSE, u32::from(verbose_boot), 1);
        let debug = uint(DEBUG, if verbose_boot { 2 } else { 0 }, 4);
        let pkey = match lookup(PKEY) {
            None => DEFAULT_PKEY,
            // 0x0000 and 0x8000 are reserved as the invalid P_Key (IBA 10.9.1.2).
            Some(v) if (1..=0xffff).contains(&v) && v & 0x7fff != 0 => v as u16,
            Some(v) => {
                rejected.push(alloc::format!(
                    "net.isboot.pkey={v:#x} is not a valid partition key; using {DEFAULT_PKEY:#06x}"
                ));
                DEFAULT_PKEY
            }
        };
        let rsdp = lookup(RSDP_HINT).filter(|&a| a > 0).map(|a| a as u64);
        let d = BootTunables::default();
        let mut secs = |name: &CStr, default: Duration, min: u32, max: u32| -> Duration {
            let default_secs = default.as_secs();
            match lookup(name) {
                None => default,
                Some(v) if (i64::from(min)..=i64::from(max)).contains(&v) => {
                    Duration::from_secs(v as u64)
                }
                Some(v) => {
                    rejected.push(alloc::format!(
                        "{}={} is out of range ({}..={} seconds); using {}",
                        name.to_str().unwrap_or("?"),
                        v,
                        min,
                        max,
                        default_secs
                    ));
                    default
                }
            }
        };
        let boot = BootTunables {
            wait_interface: secs(WAIT_INTERFACE, d.wait_interface, 1, MAX_WAIT_SECS),
            wait_login: secs(WAIT_LOGIN, d.wait_login, 1, MAX_WAIT_SECS),
            wait_disk: secs(WAIT_DISK, d.wait_disk, 1, MAX_WAIT_SECS),
            recovery: secs(RECOVERY_TIMEOUT, d.recovery, 0, MAX_RECOVERY_SECS),
            pkey,
        };
        Self {
            acpi_table,
            verbose,
            debug,
            pkey,
            rsdp,
            boot,
            rejected,
        }
    }
}
