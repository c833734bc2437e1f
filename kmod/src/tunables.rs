//! The module's loader tunables (`/boot/loader.conf` or `kenv` before `kldload`).
//!
//! | tunable | default | meaning |
//! |---|---|---|
//! | `hw.ibft.acpi_table` | 1 | which ACPI iBFT to use when there are several (1-based) |
//! | `hw.ibft.verbose` | 0 (1 if booted verbose) | print the whole table at load (secrets masked) |
//! | `net.isboot.debug` | 0 (2 if booted verbose) | log level: 0 errors, 1 warnings, 2 info, 3 debug |
//! | `net.isboot.pkey` | 0xffff | InfiniBand partition key of the boot interface (the iBFT has no field for it) |
//!
//! A value that is out of range is replaced by the default with a warning.

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::CStr;

/// `hw.ibft.acpi_table`.
pub const ACPI_TABLE: &CStr = c"hw.ibft.acpi_table";
/// `hw.ibft.verbose`.
pub const VERBOSE: &CStr = c"hw.ibft.verbose";
/// `net.isboot.debug`.
pub const DEBUG: &CStr = c"net.isboot.debug";
/// `net.isboot.pkey`.
pub const PKEY: &CStr = c"net.isboot.pkey";
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
        Self {
            acpi_table,
            verbose,
            debug,
            pkey,
            rsdp,
            rejected,
        }
    }
}
