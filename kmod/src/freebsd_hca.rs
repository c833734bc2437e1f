//! The module's own access to the iBFT NIC's HCA on FreeBSD: the PCI function found by its
//! address, refused when another driver owns it, its BARs mapped, bus mastering on, and the
//! `hca` driver's [`Hal`] over newbus, `bus_space` and busdma.
//!
//! KPIs (FreeBSD 14, `sys/bus.h`, `sys/rman.h`, `sys/bus_dma.h`, `dev/pci/pcivar.h`):
//! `pci_find_dbsf`, `device_is_attached`/`device_get_driver`/`device_get_nameunit`,
//! `bus_alloc_resource` (`SYS_RES_MEMORY`, `PCIR_BAR(0)` and `PCIR_BAR(2)`, `RF_ACTIVE`),
//! `rman_get_bustag`/`rman_get_bushandle`/`rman_get_size`, `bus_release_resource` (14's
//! four-argument form), `bus_get_dma_tag`, `bus_dma_tag_create`/`destroy`, `bus_dmamap_load`;
//! the inline ones through the shim (`kmod/shim/isboot_pci.c`): `pci_read_config`,
//! `pci_write_config`, `pci_enable_busmaster`, `bus_dmamem_alloc`/`free`, `bus_dmamap_unload`,
//! `bus_dmamap_sync`. MMIO is `bus_space_read_4`/`write_4` for the memory tag: on amd64
//! (`x86/include/bus.h`) a volatile 32-bit access at `handle + offset`.
//!
//! Ownership: everything acquired is held by one reference-counted [`Device`]; every clone of
//! the Hal, and so the driver and each of its DMA buffers, holds it. When the last one goes —
//! the driver closed (its drop resets the device first) or a failed open unwound — the DMA
//! memory left (none, normally), the BARs and the rest are released. Nothing is left
//! half-initialised on any path.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ffi::{c_int, c_void, CStr};
use core::ptr::{self, NonNull};

use hca::hal::{Bar, DmaDirection, DmaSync, Duration, Hal, Instant, PhysAddr, PAGE_SIZE};
use ibft::PciAddress;
use kernel_bindings::abi::{
    pcir_bar, BUS_DMASYNC_POSTREAD, BUS_DMASYNC_POSTWRITE, BUS_DMASYNC_PREREAD,
    BUS_DMASYNC_PREWRITE, BUS_DMA_COHERENT, BUS_DMA_NOWAIT, BUS_DMA_ZERO, RF_ACTIVE,
    SYS_RES_MEMORY, X86_BUS_SPACE_MEM,
};
use kernel_bindings::ffi::{self, hca_kpis as k, shim};

use crate::boot::NativeError;
use crate::freebsd_boot::{sbt, uptime};

/// `BUS_SPACE_MAXADDR` (amd64).
const BUS_SPACE_MAXADDR: u64 = u64::MAX;
/// `C_HARDCLOCK` (sys/callout.h), as the boot thread's sleeps use it.
const C_HARDCLOCK: c_int = 0x0100;

/// One mapped BAR.
#[derive(Debug)]
struct MappedBar {
    res: *mut c_void,
    rid: c_int,
    handle: u64,
    len: usize,
}

/// One DMA allocation: its own tag (one segment, page aligned, its exact size), its map and
/// memory.
#[derive(Debug)]
struct DmaAlloc {
    tag: *mut c_void,
    map: *mut c_void,
    vaddr: *mut c_void,
}

/// Everything held on the device.
#[derive(Debug)]
struct Device {
    dev: *mut c_void,
    bars: [Option<MappedBar>; 2],
    parent_tag: *mut c_void,
    allocs: RefCell<BTreeMap<PhysAddr, DmaAlloc>>,
    /// Buffers the driver returned: kept until the device is closed (see [`Device`]'s drop),
    /// so that a device a failed bring-up left running never writes memory reused already.
    retired: RefCell<Vec<DmaAlloc>>,
}

impl Device {
    fn bar(&self, bar: Bar) -> Option<&MappedBar> {
        match bar.0 {
            0 => self.bars[0].as_ref(),
            2 => self.bars[1].as_ref(),
            _ => None,
        }
    }
}

/// Frees one allocation: unload, free the memory, destroy its tag.
///
/// # Safety
/// `a` came from a successful `dma_alloc` and is freed once.
unsafe fn free_alloc(a: &DmaAlloc) {
    // SAFETY: the tag, map and memory are the ones bus_dmamem_alloc/bus_dmamap_load made.
    unsafe {
        shim::isboot_dmamap_unload(a.tag, a.map);
        shim::isboot_dmamem_free(a.tag, a.vaddr, a.map);
        k::bus_dma_tag_destroy(a.tag);
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // The driver is gone (its drop, or a failed bring-up, reset the device): now the memory
        // can go. `allocs` is normally empty: every Dma buffer holds a clone of the Hal.
        let left = core::mem::take(&mut *self.allocs.borrow_mut());
        let retired = core::mem::take(&mut *self.retired.borrow_mut());
        for a in left.values().chain(retired.iter()) {
            // SAFETY: each entry is a live allocation, removed from the tables above.
            unsafe { free_alloc(a) };
        }
        for b in self.bars.iter_mut().filter_map(Option::take) {
            // SAFETY: `res` came from bus_alloc_resource with this type and rid.
            unsafe { k::bus_release_resource(self.dev, SYS_RES_MEMORY, b.rid, b.res) };
        }
    }
}

/// The `hca` driver's Hal on FreeBSD.
#[derive(Debug, Clone)]
pub struct FreeBsdHal {
    d: Rc<Device>,
}

unsafe extern "C" fn load_cb(
    arg: *mut c_void,
    segs: *mut k::BusDmaSegment,
    nseg: c_int,
    error: c_int,
) {
    let out = arg.cast::<Option<u64>>();
    // SAFETY: `arg` is the `Option<u64>` `dma_alloc` passes; `segs` holds `nseg` segments.
    unsafe {
        *out = if error == 0 && nseg == 1 && !segs.is_null() {
            Some((*segs).ds_addr)
        } else {
            None
        };
    }
}

// SAFETY: `dma_alloc` returns busdma memory (bus_dmamem_alloc with BUS_DMA_ZERO) of exactly the
// requested pages from a tag with PAGE_SIZE alignment and one segment, so it is zeroed,
// aligned, contiguous at the loaded bus address and owned by the caller until `dma_dealloc`;
// MMIO is a single volatile 32-bit access inside the mapped BAR (all ones outside); clones
// share one `Device`.
unsafe impl Hal for FreeBsdHal {
    fn dma_alloc(&self, pages: usize, _dir: DmaDirection) -> Option<(PhysAddr, NonNull<u8>)> {
        let size = u64::try_from(pages.checked_mul(PAGE_SIZE)?).ok()?;
        if size == 0 {
            return None;
        }
        let mut tag: *mut c_void = ptr::null_mut();
        // SAFETY: the parent tag is the bus's; no filter, no lock function; `tag` is written.
        let e = unsafe {
            k::bus_dma_tag_create(
                self.d.parent_tag,
                PAGE_SIZE as u64,
                0,
                BUS_SPACE_MAXADDR,
                BUS_SPACE_MAXADDR,
                ptr::null_mut(),
                ptr::null_mut(),
                size,
                1,
                size,
                0,
                ptr::null_mut(),
                ptr::null_mut(),
                &mut tag,
            )
        };
        if e != 0 || tag.is_null() {
            return None;
        }
        let mut vaddr: *mut c_void = ptr::null_mut();
        let mut map: *mut c_void = ptr::null_mut();
        // SAFETY: a fresh tag; out-pointers valid.
        let e = unsafe {
            shim::isboot_dmamem_alloc(
                tag,
                &mut vaddr,
                BUS_DMA_NOWAIT | BUS_DMA_ZERO | BUS_DMA_COHERENT,
                &mut map,
            )
        };
        if e != 0 || vaddr.is_null() {
            // SAFETY: the tag has nothing allocated from it.
            unsafe { k::bus_dma_tag_destroy(tag) };
            return None;
        }
        let mut bus: Option<u64> = None;
        // SAFETY: the memory and map from bus_dmamem_alloc; with BUS_DMA_NOWAIT the callback
        // runs before the call returns, writing `bus`.
        let e = unsafe {
            k::bus_dmamap_load(
                tag,
                map,
                vaddr,
                size,
                load_cb,
                (&mut bus as *mut Option<u64>).cast(),
                BUS_DMA_NOWAIT,
            )
        };
        let a = DmaAlloc { tag, map, vaddr };
        let (Some(pa), 0, Some(v)) = (bus, e, NonNull::new(vaddr.cast::<u8>())) else {
            // SAFETY: freed once, never entered in the table.
            unsafe { free_alloc(&a) };
            return None;
        };
        self.d.allocs.borrow_mut().insert(pa, a);
        Some((pa, v))
    }

    unsafe fn dma_dealloc(&self, paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) {
        // Kept until the device is closed (freed once, in Device's drop).
        let a = self.d.allocs.borrow_mut().remove(&paddr);
        if let Some(a) = a {
            self.d.retired.borrow_mut().push(a);
        }
    }

    fn dma_sync(&self, paddr: PhysAddr, _pages: usize, op: DmaSync) {
        let allocs = self.d.allocs.borrow();
        let Some(a) = allocs.get(&paddr) else {
            return;
        };
        let op = match op {
            DmaSync::PreRead => BUS_DMASYNC_PREREAD,
            DmaSync::PostRead => BUS_DMASYNC_POSTREAD,
            DmaSync::PreWrite => BUS_DMASYNC_PREWRITE,
            DmaSync::PostWrite => BUS_DMASYNC_POSTWRITE,
        };
        // SAFETY: a live allocation's tag and map.
        unsafe { shim::isboot_dmamap_sync(a.tag, a.map, op) };
    }

    fn bar_len(&self, bar: Bar) -> usize {
        self.d.bar(bar).map_or(0, |b| b.len)
    }

    fn mmio_read32(&self, bar: Bar, offset: usize) -> u32 {
        match self.d.bar(bar) {
            Some(b) if offset % 4 == 0 && offset.checked_add(4).is_some_and(|e| e <= b.len) => {
                // SAFETY: inside the BAR's mapping (checked), aligned: bus_space_read_4 on the
                // memory tag.
                unsafe { ((b.handle as usize + offset) as *const u32).read_volatile() }
            }
            _ => u32::MAX,
        }
    }

    fn mmio_write32(&self, bar: Bar, offset: usize, value: u32) {
        if let Some(b) = self.d.bar(bar) {
            if offset % 4 == 0 && offset.checked_add(4).is_some_and(|e| e <= b.len) {
                // SAFETY: as in mmio_read32: bus_space_write_4 on the memory tag.
                unsafe { ((b.handle as usize + offset) as *mut u32).write_volatile(value) }
            }
        }
    }

    fn pci_config_read32(&self, offset: u16) -> u32 {
        // SAFETY: a PCI device_t from pci_find_dbsf.
        unsafe { shim::isboot_pci_read_config(self.d.dev, c_int::from(offset), 4) }
    }

    fn pci_config_write32(&self, offset: u16, value: u32) {
        // SAFETY: as above.
        unsafe { shim::isboot_pci_write_config(self.d.dev, c_int::from(offset), value, 4) }
    }

    fn now(&self) -> Instant {
        uptime()
    }

    fn delay(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        // SAFETY: a static NUL-terminated wait message; any sbt is valid.
        unsafe { ffi::pause_sbt(c"isbhca".as_ptr(), sbt(d), 0, C_HARDCLOCK) };
    }
}

fn text(p: *const core::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: device_get_nameunit returns a NUL-terminated string owned by the device.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Maps one memory BAR.
fn map_bar(dev: *mut c_void, pci: PciAddress, index: u8) -> Result<MappedBar, NativeError> {
    let mut rid = pcir_bar(index);
    // SAFETY: a device_t; `rid` is written back by the bus.
    let res =
        unsafe { k::bus_alloc_resource(dev, SYS_RES_MEMORY, &mut rid, 0, u64::MAX, 1, RF_ACTIVE) };
    if res.is_null() {
        return Err(NativeError::Resource {
            pci,
            what: format!("cannot map BAR{index} (bus_alloc_resource)"),
        });
    }
    // SAFETY: a live resource.
    let (tag, handle, size) = unsafe {
        (
            k::rman_get_bustag(res),
            k::rman_get_bushandle(res),
            k::rman_get_size(res),
        )
    };
    if tag != X86_BUS_SPACE_MEM || handle == 0 {
        // SAFETY: the resource just allocated.
        unsafe { k::bus_release_resource(dev, SYS_RES_MEMORY, rid, res) };
        return Err(NativeError::Resource {
            pci,
            what: format!("BAR{index} is not a memory BAR"),
        });
    }
    Ok(MappedBar {
        res,
        rid,
        handle,
        len: usize::try_from(size).unwrap_or(0),
    })
}

/// Finds the PCI function the iBFT names and, if no driver owns it and it is an HCA the
/// `hca` crate drives, maps it and brings it up. `say` gets the console lines.
pub fn open(
    pci: PciAddress,
    say: &dyn Fn(core::fmt::Arguments<'_>),
) -> Result<Box<dyn hca::Verbs>, NativeError> {
    let sel = crate::boot::PciSel(pci);
    // SAFETY: a plain lookup by address (domain 0).
    let dev = unsafe { k::pci_find_dbsf(0, pci.bus, pci.device, pci.function) };
    if dev.is_null() {
        return Err(NativeError::NoDevice(pci));
    }
    // SAFETY: a device_t the PCI bus returned.
    let (attached, driver, name) = unsafe {
        (
            k::device_is_attached(dev),
            k::device_get_driver(dev),
            text(k::device_get_nameunit(dev)),
        )
    };
    if attached != 0 || !driver.is_null() {
        let owner = if name.is_empty() {
            String::from("another driver")
        } else {
            name
        };
        return Err(NativeError::Owned { pci, owner });
    }
    // SAFETY: config space reads of an unowned PCI function.
    let id = unsafe { shim::isboot_pci_read_config(dev, 0, 4) };
    let (vendor, device) = (id as u16, (id >> 16) as u16);
    let Some(known) = hca::pci::lookup(vendor, device) else {
        return Err(NativeError::Unsupported {
            pci,
            vendor,
            device,
        });
    };
    say(format_args!(
        "isboot: {sel}: {} ({vendor:04x}:{device:04x}), no driver attached: opening it",
        known.name
    ));
    let mut d = Device {
        dev,
        bars: [None, None],
        // SAFETY: a device_t.
        parent_tag: unsafe { k::bus_get_dma_tag(dev) },
        allocs: RefCell::new(BTreeMap::new()),
        retired: RefCell::new(Vec::new()),
    };
    // From here `d` (dropped on every error) releases whatever it holds.
    d.bars[0] = Some(map_bar(dev, pci, 0)?);
    d.bars[1] = Some(map_bar(dev, pci, 2)?);
    // SAFETY: the device's bars are ours now.
    let e = unsafe { shim::isboot_pci_enable_busmaster(dev) };
    if e != 0 {
        return Err(NativeError::Resource {
            pci,
            what: format!("cannot enable bus mastering (error {e})"),
        });
    }
    let hal = FreeBsdHal { d: Rc::new(d) };
    hca::probe(hal, hca::hermon::Config::default())
        .map_err(|error| NativeError::Driver { pci, error })
}
