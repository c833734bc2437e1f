//! A host platform: tunables from a map, a preloaded file from bytes, physical memory from
//! byte images, and a recorded console and sysctl tree. Used by the tests (and a demo) to run
//! the very flow the kernel runs.

use crate::platform::{Platform, PublishError};
use crate::tree::SysctlTree;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ffi::CStr;
use core::fmt;
use ibft::locate::{MemoryFault, PhysMemory};

/// Physical memory made of byte regions; reads outside them fault (as unmapped memory would).
#[derive(Debug, Clone, Default)]
pub struct HostMemory {
    regions: Vec<(u64, Vec<u8>)>,
}

impl HostMemory {
    /// No memory at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or overlays) bytes at a physical address; adjacent and overlapping regions merge.
    pub fn write(&mut self, addr: u64, bytes: &[u8]) {
        let end = addr + bytes.len() as u64;
        let mut start = addr;
        let mut stop = end;
        for (base, data) in &self.regions {
            let rend = base + data.len() as u64;
            if *base <= end && rend >= addr {
                start = start.min(*base);
                stop = stop.max(rend);
            }
        }
        let mut merged = alloc::vec![0u8; (stop - start) as usize];
        self.regions.retain(|(base, data)| {
            let rend = base + data.len() as u64;
            if *base <= end && rend >= addr {
                let o = (base - start) as usize;
                merged[o..o + data.len()].copy_from_slice(data);
                false
            } else {
                true
            }
        });
        let o = (addr - start) as usize;
        merged[o..o + bytes.len()].copy_from_slice(bytes);
        self.regions.push((start, merged));
    }

    /// The first MiB of a PC: zeroed RAM, so scans read it but find nothing by themselves.
    pub fn first_mib() -> Self {
        let mut m = Self::new();
        m.write(0, &alloc::vec![0u8; 0x10_0000]);
        m
    }
}

impl PhysMemory for HostMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryFault> {
        let fault = MemoryFault {
            addr,
            len: buf.len(),
        };
        for (base, data) in &self.regions {
            let Some(off) = addr.checked_sub(*base) else {
                continue;
            };
            let Ok(off) = usize::try_from(off) else {
                continue;
            };
            if let Some(src) = off.checked_add(buf.len()).and_then(|e| data.get(off..e)) {
                buf.copy_from_slice(src);
                return Ok(());
            }
        }
        Err(fault)
    }
}

/// The host platform.
#[derive(Debug, Default)]
pub struct HostPlatform {
    /// Kernel environment (`name` → value as the loader would set it).
    pub kenv: BTreeMap<String, i64>,
    /// Booted verbose.
    pub bootverbose: bool,
    /// Preloaded files by type.
    pub preloaded: BTreeMap<String, Vec<u8>>,
    /// Physical memory.
    pub memory: HostMemory,
    /// Console lines printed so far.
    pub console: RefCell<Vec<String>>,
    /// The debug level the flow asked for.
    pub debug_level: Option<u32>,
    /// The published tree, while published.
    pub published: Option<SysctlTree>,
    /// Fail `publish` with this error (to test the failure path).
    pub fail_publish: Option<PublishError>,
}

impl HostPlatform {
    /// An empty machine: no tunables, no preloaded file, no memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a kernel environment variable.
    pub fn set_kenv(&mut self, name: &str, value: i64) -> &mut Self {
        self.kenv.insert(name.to_string(), value);
        self
    }

    /// Preloads a file of `file_type` (as `X_type=` in loader.conf).
    pub fn preload(&mut self, file_type: &str, bytes: &[u8]) -> &mut Self {
        self.preloaded.insert(file_type.to_string(), bytes.to_vec());
        self
    }

    /// The console output, one line per entry.
    pub fn console_lines(&self) -> Vec<String> {
        self.console.borrow().clone()
    }
}

impl Platform for HostPlatform {
    type Memory = HostMemory;

    fn tunable(&self, name: &CStr) -> Option<i64> {
        self.kenv.get(name.to_str().ok()?).copied()
    }

    fn bootverbose(&self) -> bool {
        self.bootverbose
    }

    fn set_debug_level(&mut self, debug: u32) {
        self.debug_level = Some(debug);
    }

    fn preloaded(&self, file_type: &CStr) -> Option<&[u8]> {
        self.preloaded
            .get(file_type.to_str().ok()?)
            .map(Vec::as_slice)
    }

    fn memory(&self) -> &HostMemory {
        &self.memory
    }

    fn console(&self, line: fmt::Arguments<'_>) {
        self.console.borrow_mut().push(alloc::format!("{line}"));
    }

    fn publish(&mut self, tree: &SysctlTree) -> Result<(), PublishError> {
        if let Some(e) = self.fail_publish {
            return Err(e);
        }
        self.published = Some(tree.clone());
        Ok(())
    }

    fn unpublish(&mut self) {
        self.published = None;
    }
}
