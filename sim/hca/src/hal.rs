//! The simulator's [`Hal`]: MMIO and config accesses go to the device model, DMA memory is the
//! node's simulated host memory, and `delay` advances the shared clock (running every device,
//! the fabric and the SM meanwhile).

use std::cell::RefCell;
use std::ptr::NonNull;
use std::rc::Rc;

use hca::hal::{Bar, DmaDirection, Duration, Hal, Instant, PhysAddr};
use log::warn;

use crate::device::Outbox;
use crate::fabric::{NodeId, World};

/// What `delay` does on this thread instead of advancing the clock.
type DelayHook = Rc<dyn Fn(Duration)>;

std::thread_local! {
    static DELAY: RefCell<Option<DelayHook>> = const { RefCell::new(None) };
}

/// Makes every driver `delay` on this thread call `hook` instead of advancing the shared
/// clock itself (`None` restores that). A scheduler that runs several nodes' code on one
/// simulated clock uses it: the waiting node yields until the clock reaches its wake-up time,
/// and the others run meanwhile.
pub fn set_thread_delay(hook: Option<DelayHook>) {
    DELAY.with(|h| *h.borrow_mut() = hook);
}

/// A handle on one simulated HCA, usable as the driver's Hal.
#[derive(Clone, Debug)]
pub struct SimHal {
    pub(crate) world: Rc<RefCell<World>>,
    pub(crate) node: NodeId,
}

impl SimHal {
    fn bar_len_of(&self, w: &World, bar: Bar) -> usize {
        match bar.0 {
            0 => crate::prm::regs::CONFIG_BAR_SIZE,
            2 => w.nodes[self.node].dev.spec.uar_bar_len,
            _ => 0,
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned, exclusively owned heap memory that stays
// valid until `dma_dealloc` (HostMem frees regions only there or when the world is dropped,
// which cannot happen while a `Dma` holds a clone of this Hal); the "bus address" is the
// region's simulated address, under which the device model reaches exactly that memory. MMIO
// outside a BAR's mapped length returns all ones and counts a misuse.
unsafe impl Hal for SimHal {
    fn dma_alloc(&self, pages: usize, _dir: DmaDirection) -> Option<(PhysAddr, NonNull<u8>)> {
        self.world.borrow_mut().nodes[self.node].mem.alloc(pages)
    }

    unsafe fn dma_dealloc(&self, paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) {
        let mut w = self.world.borrow_mut();
        let n = &mut w.nodes[self.node];
        if !n.mem.free(paddr) {
            warn!("hca-sim: free of unknown DMA region {paddr:#x}");
            n.dev.counters.misuse += 1;
        }
    }

    fn bar_len(&self, bar: Bar) -> usize {
        let w = self.world.borrow();
        self.bar_len_of(&w, bar)
    }

    fn mmio_read32(&self, bar: Bar, offset: usize) -> u32 {
        let mut w = self.world.borrow_mut();
        let len = self.bar_len_of(&w, bar);
        let now = w.now;
        let dev = &mut w.nodes[self.node].dev;
        if offset.checked_add(4).is_none_or(|e| e > len) || offset % 4 != 0 {
            warn!("hca-sim: MMIO read outside BAR{} ({offset:#x})", bar.0);
            dev.counters.misuse += 1;
            return u32::MAX;
        }
        dev.mmio_read(now, bar.0, offset)
    }

    fn mmio_write32(&self, bar: Bar, offset: usize, value: u32) {
        let mut w = self.world.borrow_mut();
        let len = self.bar_len_of(&w, bar);
        let now = w.now;
        let mut out = Outbox::default();
        let started = {
            let n = &mut w.nodes[self.node];
            if offset.checked_add(4).is_none_or(|e| e > len) || offset % 4 != 0 {
                warn!(
                    "hca-sim: MMIO write outside BAR{} ({offset:#x}): lost",
                    bar.0
                );
                n.dev.counters.misuse += 1;
                return;
            }
            n.dev
                .mmio_write(now, bar.0, offset, value, &n.mem, &mut out)
        };
        if started {
            w.command_started(self.node);
        }
        w.apply(self.node, out);
    }

    fn pci_config_read32(&self, offset: u16) -> u32 {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        w.nodes[self.node].dev.config_read(now, offset)
    }

    fn pci_config_write32(&self, offset: u16, value: u32) {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        w.nodes[self.node].dev.config_write(now, offset, value);
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(self.world.borrow().now)
    }

    fn delay(&self, d: Duration) {
        let hook = DELAY.with(|h| h.borrow().clone());
        match hook {
            Some(f) => f(d),
            None => self.world.borrow_mut().run_for(duration_ns(d).max(1)),
        }
    }
}
