//! What the module flow needs from its environment.

use crate::tree::SysctlTree;
use core::ffi::CStr;
use core::fmt;
use ibft::locate::PhysMemory;

/// Why the sysctl tree could not be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    /// An oid name was refused (taken already, or not a valid name).
    Name,
    /// No memory for the oids.
    NoMemory,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublishError::Name => "a sysctl name was refused",
            PublishError::NoMemory => "out of memory for sysctl oids",
        })
    }
}

/// The environment of the module flow: the FreeBSD kernel, or a host simulation in tests.
///
/// Every method is called from a sleepable context (the module event handler).
pub trait Platform {
    /// Physical memory as the iBFT locator reads it (the BIOS area, ACPI tables).
    type Memory: PhysMemory;

    /// An integer from the kernel environment (a loader tunable or hint), if set and valid.
    fn tunable(&self, name: &CStr) -> Option<i64>;

    /// Whether the system was booted verbose (`boot -v`).
    fn bootverbose(&self) -> bool;

    /// Called once the tunables are read, with `net.isboot.debug`: the platform routes `log`
    /// records at that level (0 errors … 3 debug) to its console.
    fn set_debug_level(&mut self, debug: u32);

    /// The bytes of the first file preloaded by loader(8) with `file_type`, if any.
    fn preloaded(&self, file_type: &CStr) -> Option<&[u8]>;

    /// Physical memory for the ACPI and low-memory searches.
    fn memory(&self) -> &Self::Memory;

    /// Prints one console line, whatever the debug level (the boot line, the verbose dump).
    fn console(&self, line: fmt::Arguments<'_>);

    /// Publishes the sysctl tree (replacing nothing: called at most once per load).
    fn publish(&mut self, tree: &SysctlTree) -> Result<(), PublishError>;

    /// Removes everything `publish` added.
    fn unpublish(&mut self);
}
