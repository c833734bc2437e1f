//! Windows onto firmware memory (the BIOS area, ACPI tables) through pmap_mapbios(9).

use crate::ffi;
use core::ptr::NonNull;

/// A mapping of the physical range `[phys, phys + len)`, unmapped on drop.
#[derive(Debug)]
pub struct PhysWindow {
    va: NonNull<u8>,
    phys: u64,
    len: usize,
}

impl PhysWindow {
    /// Maps `len` bytes at `phys` (sleepable context). `None` if the kernel could not map it or
    /// the range wraps.
    pub fn map(phys: u64, len: usize) -> Option<Self> {
        if len == 0 || phys.checked_add(len as u64).is_none() {
            return None;
        }
        // SAFETY: pmap_mapbios maps firmware memory (any physical range) read/write-back into
        // fresh KVA; it has no other preconditions.
        let va = unsafe { ffi::pmap_mapbios(phys, len) };
        NonNull::new(va.cast::<u8>()).map(|va| Self { va, phys, len })
    }

    /// First physical address of the window.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Length of the window in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty (never: `map` refuses empty windows).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `buf.len()` bytes from physical address `phys`; `false` if that range is not
    /// entirely inside the window.
    pub fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
        let Some(off) = phys.checked_sub(self.phys) else {
            return false;
        };
        let Ok(off) = usize::try_from(off) else {
            return false;
        };
        match off.checked_add(buf.len()) {
            Some(end) if end <= self.len => {}
            _ => return false,
        }
        // SAFETY: [off, off + buf.len()) lies inside the mapping (checked above), which stays
        // valid until drop; firmware memory is plain RAM/ROM, so a byte copy is a valid read.
        unsafe {
            core::ptr::copy_nonoverlapping(self.va.as_ptr().add(off), buf.as_mut_ptr(), buf.len())
        };
        true
    }
}

impl Drop for PhysWindow {
    fn drop(&mut self) {
        // SAFETY: `va`/`len` are exactly what pmap_mapbios returned and was asked for;
        // pmap_unmapbios(va, len) is pmap_unmapdev(va, len) on amd64.
        unsafe { ffi::pmap_unmapdev(self.va.as_ptr().cast(), self.len) };
    }
}
