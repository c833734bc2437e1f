//! The HCA path: the hermon driver's [`hca::Hal`] over `EFI_PCI_IO_PROTOCOL` (UEFI 2.10
//! §14.4) — BAR access with `Mem.Read`/`Mem.Write`, configuration space with `Pci.Read`/
//! `Pci.Write`, DMA memory with `AllocateBuffer` + `Map` (common buffer), the clock from
//! [`crate::clock`]. Built into the image; it cannot be exercised without an HCA.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ffi::c_void;
use core::ptr::{null_mut, NonNull};

use hca::hal::{Bar, DmaDirection, Duration, Hal, Instant, PhysAddr, PAGE_SIZE};
use ibft::PciAddress;
use r_efi::efi::{self, Handle};
use r_efi::protocols::pci_io;

use crate::clock;
use crate::efi as fw;

/// A mapping to undo when its memory is freed.
struct Mapping {
    vaddr: usize,
    mapping: *mut c_void,
}

/// One HCA's PCI function.
#[derive(Clone)]
pub struct PciHal {
    io: *mut pci_io::Protocol,
    maps: Rc<RefCell<Vec<Mapping>>>,
}

/// A Mellanox hermon-class HCA found on the PCI bus.
pub struct Found {
    /// The HAL over it.
    pub hal: PciHal,
    /// Its handle (for the device path).
    pub handle: Handle,
    /// Its PCI address.
    pub pci: PciAddress,
    /// Its name.
    pub name: &'static str,
}

/// The first hermon-class HCA (ConnectX to ConnectX-3 Pro), with memory decoding and bus
/// mastering enabled.
pub fn find() -> Option<Found> {
    for h in fw::handles(&pci_io::PROTOCOL_GUID) {
        let Some(io) = fw::protocol::<pci_io::Protocol>(h, &pci_io::PROTOCOL_GUID) else {
            continue;
        };
        let mut id = 0u32;
        // SAFETY: one dword of configuration space into `id`.
        let s = unsafe {
            ((*io).pci.read)(io, pci_io::WIDTH_UINT32, 0, 1, (&mut id as *mut u32).cast())
        };
        if s.is_error() {
            continue;
        }
        let Some(dev) = hca::pci::lookup(id as u16, (id >> 16) as u16) else {
            continue;
        };
        if dev.family != hca::pci::Family::Hermon {
            continue;
        }
        // SAFETY: enabling decoding and bus mastering on the device we drive.
        unsafe {
            ((*io).attributes)(
                io,
                pci_io::ATTRIBUTE_OPERATION_ENABLE,
                pci_io::ATTRIBUTE_MEMORY | pci_io::ATTRIBUTE_BUS_MASTER,
                null_mut(),
            )
        };
        let (mut seg, mut bus, mut d, mut f) = (0usize, 0usize, 0usize, 0usize);
        // SAFETY: four numbers written by the firmware.
        unsafe { ((*io).get_location)(io, &mut seg, &mut bus, &mut d, &mut f) };
        return Some(Found {
            hal: PciHal {
                io,
                maps: Rc::new(RefCell::new(Vec::new())),
            },
            handle: h,
            pci: PciAddress {
                bus: bus as u8,
                device: d as u8,
                function: f as u8,
            },
            name: dev.name,
        });
    }
    None
}

// SAFETY: DMA memory comes from AllocateBuffer (page-aligned, zeroed below) mapped as a common
// buffer at one device address, so it is contiguous for the device; MMIO goes through
// Mem.Read/Mem.Write with one 32-bit access inside the BAR (all ones outside); clones share
// the one protocol instance.
unsafe impl Hal for PciHal {
    fn dma_alloc(&self, pages: usize, _dir: DmaDirection) -> Option<(PhysAddr, NonNull<u8>)> {
        let io = self.io;
        let mut host: *mut c_void = null_mut();
        // SAFETY: the firmware allocates `pages` pages for the device.
        let s = unsafe {
            ((*io).allocate_buffer)(
                io,
                efi::ALLOCATE_ANY_PAGES,
                efi::BOOT_SERVICES_DATA,
                pages,
                &mut host,
                0,
            )
        };
        if s.is_error() || host.is_null() {
            return None;
        }
        // SAFETY: `host` is `pages` pages just allocated.
        unsafe { core::ptr::write_bytes(host.cast::<u8>(), 0, pages * PAGE_SIZE) };
        let mut bytes = pages * PAGE_SIZE;
        let mut dev: efi::PhysicalAddress = 0;
        let mut mapping: *mut c_void = null_mut();
        // SAFETY: maps the buffer for both directions at once.
        let s = unsafe {
            ((*io).map)(
                io,
                pci_io::OPERATION_BUS_MASTER_COMMON_BUFFER,
                host,
                &mut bytes,
                &mut dev,
                &mut mapping,
            )
        };
        if s.is_error() || bytes != pages * PAGE_SIZE {
            // SAFETY: frees what AllocateBuffer gave.
            unsafe { ((*io).free_buffer)(io, pages, host) };
            return None;
        }
        self.maps.borrow_mut().push(Mapping {
            vaddr: host as usize,
            mapping,
        });
        NonNull::new(host.cast()).map(|p| (dev, p))
    }

    unsafe fn dma_dealloc(&self, _paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) {
        let io = self.io;
        let mut maps = self.maps.borrow_mut();
        if let Some(i) = maps.iter().position(|m| m.vaddr == vaddr.as_ptr() as usize) {
            let m = maps.swap_remove(i);
            // SAFETY: the mapping made in dma_alloc.
            unsafe { ((*io).unmap)(io, m.mapping) };
        }
        // SAFETY: the buffer AllocateBuffer gave (the caller's contract).
        unsafe { ((*io).free_buffer)(io, pages, vaddr.as_ptr().cast()) };
    }

    fn bar_len(&self, bar: Bar) -> usize {
        let io = self.io;
        let mut res: *mut c_void = null_mut();
        // SAFETY: the firmware returns an ACPI resource descriptor list from the pool.
        let s = unsafe { ((*io).get_bar_attributes)(io, bar.0, null_mut(), &mut res) };
        if s.is_error() || res.is_null() {
            return 0;
        }
        // An ACPI QWORD address space descriptor (tag 0x8a): the length at byte 38.
        let p = res.cast::<u8>();
        // SAFETY: the descriptor is at least 46 bytes when its tag is 0x8a.
        let len = unsafe {
            if *p == 0x8a {
                let mut b = [0u8; 8];
                core::ptr::copy_nonoverlapping(p.add(38), b.as_mut_ptr(), 8);
                u64::from_le_bytes(b) as usize
            } else {
                0
            }
        };
        if let Some(b) = fw::bs() {
            // SAFETY: the descriptor list came from the pool.
            unsafe { (b.free_pool)(res) };
        }
        len
    }

    fn mmio_read32(&self, bar: Bar, offset: usize) -> u32 {
        if offset + 4 > self.bar_len(bar) {
            return u32::MAX;
        }
        let io = self.io;
        let mut v = u32::MAX;
        // SAFETY: one 32-bit read inside the BAR.
        unsafe {
            ((*io).mem.read)(
                io,
                pci_io::WIDTH_UINT32,
                bar.0,
                offset as u64,
                1,
                (&mut v as *mut u32).cast(),
            )
        };
        v
    }

    fn mmio_write32(&self, bar: Bar, offset: usize, value: u32) {
        if offset + 4 > self.bar_len(bar) {
            return;
        }
        let io = self.io;
        let mut v = value;
        // SAFETY: one 32-bit write inside the BAR.
        unsafe {
            ((*io).mem.write)(
                io,
                pci_io::WIDTH_UINT32,
                bar.0,
                offset as u64,
                1,
                (&mut v as *mut u32).cast(),
            )
        };
    }

    fn pci_config_read32(&self, offset: u16) -> u32 {
        let io = self.io;
        let mut v = u32::MAX;
        // SAFETY: one dword of configuration space.
        unsafe {
            ((*io).pci.read)(
                io,
                pci_io::WIDTH_UINT32,
                u32::from(offset),
                1,
                (&mut v as *mut u32).cast(),
            )
        };
        v
    }

    fn pci_config_write32(&self, offset: u16, value: u32) {
        let io = self.io;
        let mut v = value;
        // SAFETY: one dword of configuration space.
        unsafe {
            ((*io).pci.write)(
                io,
                pci_io::WIDTH_UINT32,
                u32::from(offset),
                1,
                (&mut v as *mut u32).cast(),
            )
        };
    }

    fn now(&self) -> Instant {
        clock::now()
    }

    fn delay(&self, d: Duration) {
        clock::delay(d);
    }
}
