//! Simulated host memory: DMA regions with bus addresses the device model can reach.
//!
//! Each region is a separate page-aligned heap allocation; bus addresses are handed out from a
//! per-node window and never reused, so a device access to freed memory is caught (and
//! counted) instead of silently hitting a new buffer.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::ptr::NonNull;

use hca::hal::PAGE_SIZE;

#[derive(Debug)]
struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

/// A DMA access the model could not perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaFault(pub u64);

/// One host's DMA memory.
#[derive(Debug)]
pub struct HostMem {
    regions: BTreeMap<u64, Region>,
    next: u64,
    /// Pages currently allocated.
    pub pages_in_use: usize,
}

impl HostMem {
    /// A host whose bus addresses start at `base`.
    pub fn new(base: u64) -> Self {
        Self {
            regions: BTreeMap::new(),
            next: base,
            pages_in_use: 0,
        }
    }

    /// Allocates zeroed, page-aligned memory.
    pub fn alloc(&mut self, pages: usize) -> Option<(u64, NonNull<u8>)> {
        let len = pages.checked_mul(PAGE_SIZE)?;
        let layout = Layout::from_size_align(len, PAGE_SIZE).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: `layout` has a non-zero size (checked above).
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        let pa = self.next;
        // Leave a guard page between regions so overruns fault.
        self.next += (len + PAGE_SIZE) as u64;
        self.regions.insert(pa, Region { ptr, len });
        self.pages_in_use += pages;
        Some((pa, ptr))
    }

    /// Frees a region; returns false (and frees nothing) if `pa` does not start one.
    pub fn free(&mut self, pa: u64) -> bool {
        match self.regions.remove(&pa) {
            Some(r) => {
                self.pages_in_use -= r.len / PAGE_SIZE;
                // SAFETY: `r.ptr` came from `alloc_zeroed` with this exact layout in `alloc`
                // and is removed from the map, so it is freed once.
                unsafe {
                    dealloc(
                        r.ptr.as_ptr(),
                        Layout::from_size_align_unchecked(r.len, PAGE_SIZE),
                    )
                };
                true
            }
            None => false,
        }
    }

    fn locate(&self, pa: u64, len: usize) -> Result<*mut u8, DmaFault> {
        let (&start, r) = self.regions.range(..=pa).next_back().ok_or(DmaFault(pa))?;
        let off = (pa - start) as usize;
        if off.checked_add(len).is_none_or(|end| end > r.len) {
            return Err(DmaFault(pa));
        }
        // SAFETY: `off + len <= r.len`, so the offset stays inside the allocation.
        Ok(unsafe { r.ptr.as_ptr().add(off) })
    }

    /// True if `[pa, pa+len)` lies inside one region.
    pub fn contains(&self, pa: u64, len: usize) -> bool {
        self.locate(pa, len).is_ok()
    }

    /// Device read.
    pub fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), DmaFault> {
        let p = self.locate(pa, buf.len())?;
        // SAFETY: `locate` proved the range is inside a live allocation; the driver only
        // touches it through raw pointers (no Rust references exist), and the simulation is
        // single-threaded, so nothing writes it concurrently.
        unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Device write.
    pub fn write(&self, pa: u64, buf: &[u8]) -> Result<(), DmaFault> {
        let p = self.locate(pa, buf.len())?;
        // SAFETY: as in `read`; `buf` is a separate Rust slice, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), p, buf.len()) };
        Ok(())
    }

    /// Device read of a big-endian dword.
    pub fn read_be32(&self, pa: u64) -> Result<u32, DmaFault> {
        let mut b = [0u8; 4];
        self.read(pa, &mut b)?;
        Ok(u32::from_be_bytes(b))
    }
}

impl Drop for HostMem {
    fn drop(&mut self) {
        let keys: Vec<u64> = self.regions.keys().copied().collect();
        for k in keys {
            self.free(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_use_after_free_fault() {
        let mut m = HostMem::new(0x1000_0000);
        let (pa, _) = m.alloc(1).unwrap();
        m.write(pa + 4090, &[1, 2, 3, 4, 5, 6]).unwrap();
        let mut b = [0u8; 6];
        m.read(pa + 4090, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4, 5, 6]);
        assert!(m.write(pa + 4094, &[0; 4]).is_err());
        assert!(m.read(pa - 1, &mut [0]).is_err());
        assert!(m.free(pa));
        assert!(!m.free(pa));
        assert!(m.read(pa, &mut [0]).is_err());
        assert_eq!(m.pages_in_use, 0);
    }
}
