//! The boundary under the driver: MMIO, PCI configuration space, DMA memory and a clock.
//!
//! Three environments implement [`Hal`]: the ROM firmware, the FreeBSD kernel
//! (`bus_space`/`busdma`), and `hca-sim` (a device model). The driver reaches hardware only
//! through it.

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{fence, Ordering};

use crate::Error;

/// Size of a DMA page.
pub const PAGE_SIZE: usize = 4096;

/// A bus (device-visible) address.
pub type PhysAddr = u64;

// The Hal's monotonic clock: `Instant` is nanoseconds since an origin the environment chose,
// `Duration` is `core::time::Duration` (the project's one time type, in the `clock` crate).
pub use clock::{Duration, Instant};

/// Which way a DMA buffer's data flows; lets a Hal with bounce buffers or non-coherent caches
/// do the right synchronisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaDirection {
    /// The driver writes, the device reads (send buffers, WQEs, mailboxes in).
    ToDevice,
    /// The device writes, the driver reads (receive buffers, CQEs, EQEs).
    FromDevice,
    /// Both (rings with ownership bits, mailboxes out, firmware/ICM areas).
    Both,
}

/// A DMA ownership change, as busdma's `bus_dmamap_sync(9)` operations name them.
///
/// On a cache-coherent platform without bounce buffers (x86 with the memory the Hal hands out)
/// these do nothing; a Hal over an IOMMU, bounce pages or non-coherent caches copies or flushes
/// here. The driver calls [`Dma::sync`]:
/// - [`DmaSync::PreWrite`] after it wrote memory the device will read, before it tells the
///   device (the HCR go bit, a doorbell, a doorbell record);
/// - [`DmaSync::PreRead`] before it hands memory to the device to write (a receive buffer, a
///   ring the device fills);
/// - [`DmaSync::PostRead`] after the device wrote and before the driver reads what it wrote
///   (CQEs, EQEs, the output mailbox, received payloads);
/// - [`DmaSync::PostWrite`] after the device finished reading memory the driver wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaSync {
    /// `BUS_DMASYNC_PREREAD`: the device is about to write the buffer.
    PreRead,
    /// `BUS_DMASYNC_POSTREAD`: the device wrote it; the driver is about to read.
    PostRead,
    /// `BUS_DMASYNC_PREWRITE`: the driver wrote it; the device is about to read.
    PreWrite,
    /// `BUS_DMASYNC_POSTWRITE`: the device finished reading it.
    PostWrite,
}

/// A PCI memory BAR index as the device's programming interface numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bar(pub u8);

impl Bar {
    /// BAR0: configuration space (HCR, reset register) on hermon-class devices.
    pub const BAR0: Bar = Bar(0);
    /// BAR2: UAR pages (doorbells) on hermon-class devices.
    pub const BAR2: Bar = Bar(2);
}

/// Platform services for the driver.
///
/// # Implementation safety
///
/// - [`Hal::dma_alloc`] returns `pages * PAGE_SIZE` bytes of zeroed memory, aligned to
///   [`PAGE_SIZE`], valid for reads and writes through the returned pointer until passed to
///   [`Hal::dma_dealloc`], not aliased by any Rust reference, and physically contiguous at the
///   returned bus address as the device sees it. The device may read and write that memory at any
///   time while it is allocated.
/// - MMIO accessors must access the mapped BAR with a single 32-bit access at `offset` (or do
///   nothing and return all ones if the offset is outside [`Hal::bar_len`]); `mmio_write32`
///   stores `value` in little-endian byte order, as `writel` does.
/// - Clones of a Hal must refer to the same platform and device.
pub unsafe trait Hal: Clone {
    /// Allocates `pages` pages of DMA memory; `None` when memory is exhausted.
    fn dma_alloc(&self, pages: usize, dir: DmaDirection) -> Option<(PhysAddr, NonNull<u8>)>;

    /// Frees memory from [`Hal::dma_alloc`].
    ///
    /// # Safety
    ///
    /// `paddr`, `vaddr` and `pages` must be exactly what one `dma_alloc` call returned or was
    /// given, the memory must not be used afterwards, and the device must have been told to stop
    /// using it.
    unsafe fn dma_dealloc(&self, paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize);

    /// Synchronises one allocation from [`Hal::dma_alloc`] for an ownership change (see
    /// [`DmaSync`] for when the driver calls it). The default does nothing: right for
    /// cache-coherent memory without bounce buffers (the ROM, the simulator).
    fn dma_sync(&self, paddr: PhysAddr, pages: usize, op: DmaSync) {
        let _ = (paddr, pages, op);
    }

    /// Bytes of `bar` that are mapped.
    fn bar_len(&self, bar: Bar) -> usize;
    /// 32-bit MMIO read (little-endian byte order, as `readl`).
    fn mmio_read32(&self, bar: Bar, offset: usize) -> u32;
    /// 32-bit MMIO write (little-endian byte order, as `writel`).
    fn mmio_write32(&self, bar: Bar, offset: usize, value: u32);

    /// Reads a dword of the device's PCI configuration space.
    fn pci_config_read32(&self, offset: u16) -> u32;
    /// Writes a dword of the device's PCI configuration space.
    fn pci_config_write32(&self, offset: u16, value: u32);

    /// The monotonic clock.
    fn now(&self) -> Instant;
    /// Busy-waits (or sleeps) for at least `d`.
    fn delay(&self, d: Duration);
}

/// DMA memory owned by the driver; freed on drop.
pub struct Dma<H: Hal> {
    hal: H,
    paddr: PhysAddr,
    vaddr: NonNull<u8>,
    pages: usize,
}

impl<H: Hal> fmt::Debug for Dma<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dma")
            .field("paddr", &self.paddr)
            .field("pages", &self.pages)
            .finish()
    }
}

impl<H: Hal> Dma<H> {
    /// Allocates `pages` zeroed pages.
    pub fn new(hal: &H, pages: usize, dir: DmaDirection) -> Result<Self, Error> {
        let pages = pages.max(1);
        let (paddr, vaddr) = hal.dma_alloc(pages, dir).ok_or(Error::NoMemory)?;
        Ok(Self {
            hal: hal.clone(),
            paddr,
            vaddr,
            pages,
        })
    }

    /// Allocates enough zeroed pages for `bytes` bytes.
    pub fn with_len(hal: &H, bytes: usize, dir: DmaDirection) -> Result<Self, Error> {
        Self::new(hal, bytes.div_ceil(PAGE_SIZE), dir)
    }

    /// Bus address of byte 0.
    pub fn paddr(&self) -> PhysAddr {
        self.paddr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    /// Never empty (at least one page); here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.pages
    }

    fn check(&self, off: usize, len: usize) -> Result<(), Error> {
        match off.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(Error::DmaOutOfBounds),
        }
    }

    /// Synchronises the whole buffer for an ownership change ([`DmaSync`] says when).
    pub fn sync(&self, op: DmaSync) {
        self.hal.dma_sync(self.paddr, self.pages, op);
    }

    /// Reads a big-endian dword at `off` (must be 4-byte aligned).
    pub fn read_be32(&self, off: usize) -> Result<u32, Error> {
        self.check(off, 4)?;
        if off % 4 != 0 {
            return Err(Error::DmaOutOfBounds);
        }
        // SAFETY: `check` proved `off..off+4` lies inside the allocation, which the Hal
        // guarantees is valid, page aligned (so this dword is aligned) and not aliased by a Rust
        // reference; volatile because the device writes it concurrently.
        let raw = unsafe { self.vaddr.as_ptr().add(off).cast::<u32>().read_volatile() };
        Ok(u32::from_be(raw))
    }

    /// Writes a big-endian dword at `off` (must be 4-byte aligned).
    pub fn write_be32(&self, off: usize, v: u32) -> Result<(), Error> {
        self.check(off, 4)?;
        if off % 4 != 0 {
            return Err(Error::DmaOutOfBounds);
        }
        // SAFETY: as in `read_be32`: in bounds, aligned, valid for writes per the Hal contract.
        unsafe {
            self.vaddr
                .as_ptr()
                .add(off)
                .cast::<u32>()
                .write_volatile(v.to_be())
        };
        Ok(())
    }

    /// Copies `buf.len()` bytes from offset `off` into `buf`.
    pub fn read(&self, off: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.check(off, buf.len())?;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `check` proved `off..off+buf.len()` is inside the allocation, valid for
            // reads per the Hal contract; bytes have no alignment requirement.
            *b = unsafe { self.vaddr.as_ptr().add(off + i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `buf` to offset `off`.
    pub fn write(&self, off: usize, buf: &[u8]) -> Result<(), Error> {
        self.check(off, buf.len())?;
        for (i, b) in buf.iter().enumerate() {
            // SAFETY: `check` proved the range is inside the allocation, valid for writes.
            unsafe { self.vaddr.as_ptr().add(off + i).write_volatile(*b) };
        }
        Ok(())
    }

    /// Fills `len` bytes at `off` with `byte`.
    pub fn fill(&self, off: usize, len: usize, byte: u8) -> Result<(), Error> {
        self.check(off, len)?;
        for i in 0..len {
            // SAFETY: `check` proved the range is inside the allocation, valid for writes.
            unsafe { self.vaddr.as_ptr().add(off + i).write_volatile(byte) };
        }
        Ok(())
    }
}

impl<H: Hal> Drop for Dma<H> {
    fn drop(&mut self) {
        // SAFETY: paddr/vaddr/pages are exactly what `dma_alloc` returned in `new`, and the
        // owner of this `Dma` has stopped the device's use of it before dropping (the driver
        // destroys queues with HW2SW commands first).
        unsafe { self.hal.dma_dealloc(self.paddr, self.vaddr, self.pages) };
    }
}

/// Makes the driver's writes to DMA memory visible to the device before a following MMIO
/// doorbell write, and orders reads of a descriptor after the read of its ownership bit.
pub fn dma_fence() {
    fence(Ordering::SeqCst);
}
