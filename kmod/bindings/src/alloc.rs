//! A `GlobalAlloc` over malloc(9), charging every allocation to the module's own malloc type
//! `M_ISBOOT` (`vmstat -m | grep isboot` shows it).
//!
//! malloc(9) promises pointer alignment for every size; a layout asking for more is served by
//! over-allocating and keeping the original pointer just below the aligned block. (Not
//! `malloc_aligned(9)`, which early 14 kernels do not have.)
//!
//! It allocates with `M_WAITOK`, so it may sleep and never returns NULL for a valid request:
//! allocate only from sleepable contexts (module events, kernel threads), never from callouts,
//! interrupt filters, socket upcalls or with a mutex held.

use crate::abi::{MallocType, M_WAITOK, M_ZERO};
use crate::ffi;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_int;
use core::mem::size_of;
use core::ptr;

/// Alignment plain malloc(9) always gives (pointer alignment).
pub const MALLOC_MIN_ALIGN: usize = 8;

/// The kernel allocator. Install it in the kld with `#[global_allocator]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelAllocator;

/// How a layout is served: the pure part of [`KernelAllocator`], tested on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `malloc(size)` as is.
    Plain {
        /// Bytes to ask malloc(9) for.
        size: usize,
    },
    /// `malloc(total)`, then the first `align`-aligned address at least one pointer past the
    /// start, with the start stored in the pointer just below it.
    Padded {
        /// Bytes to ask malloc(9) for.
        total: usize,
    },
    /// Not servable (the padded size overflows): the allocation fails with NULL.
    Refuse,
}

impl Strategy {
    /// The strategy for `layout`.
    pub const fn for_layout(layout: Layout) -> Self {
        // Layouts given to GlobalAlloc have a non-zero size; keep zero valid anyway.
        let size = if layout.size() == 0 { 1 } else { layout.size() };
        if layout.align() <= MALLOC_MIN_ALIGN {
            Strategy::Plain { size }
        } else {
            match size.checked_add(layout.align()) {
                Some(total) => Strategy::Padded { total },
                None => Strategy::Refuse,
            }
        }
    }
}

/// The aligned address inside a padded block starting at `base` (which malloc(9) aligned to
/// [`MALLOC_MIN_ALIGN`]): the first multiple of `align` at least one pointer past `base`. With
/// `align` a power of two above [`MALLOC_MIN_ALIGN`] it is at most `base + align`, so `size`
/// bytes fit in the `size + align` allocated.
pub const fn padded_start(base: usize, align: usize) -> usize {
    (base + size_of::<usize>() + align - 1) & !(align - 1)
}

fn m_isboot() -> *mut MallocType {
    // The address of the shim's malloc type; no reference to the extern static is created.
    ptr::addr_of_mut!(ffi::shim::M_ISBOOT)
}

impl KernelAllocator {
    /// # Safety
    /// Same contract as [`GlobalAlloc::alloc`], plus a sleepable context.
    unsafe fn allocate(&self, layout: Layout, extra: c_int) -> *mut u8 {
        let flags = M_WAITOK | extra;
        match Strategy::for_layout(layout) {
            // SAFETY: M_ISBOOT is registered by the shim's MALLOC_DEFINE SYSINIT before any
            // module code runs; `flags` holds exactly one of M_WAITOK/M_NOWAIT.
            Strategy::Plain { size } => unsafe { ffi::malloc(size, m_isboot(), flags).cast() },
            Strategy::Padded { total } => {
                // SAFETY: as above.
                let base: *mut u8 = unsafe { ffi::malloc(total, m_isboot(), flags).cast() };
                if base.is_null() {
                    return base;
                }
                let offset = padded_start(base as usize, layout.align()) - base as usize;
                // SAFETY: offset <= align (see `padded_start`), so the aligned block and the
                // pointer slot below it (>= base, 8-aligned) lie inside the `total` bytes.
                unsafe {
                    let aligned = base.add(offset);
                    aligned.cast::<*mut u8>().sub(1).write(base);
                    aligned
                }
            }
            Strategy::Refuse => ptr::null_mut(),
        }
    }
}

// SAFETY: malloc(9) returns memory of at least the asked size aligned to MALLOC_MIN_ALIGN (or
// NULL, which GlobalAlloc permits); padded blocks are aligned as asked (see `padded_start`);
// dealloc frees exactly what malloc returned, with the same type. No state: trivially Sync.
unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract of GlobalAlloc::alloc.
        unsafe { self.allocate(layout, 0) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract of GlobalAlloc::alloc_zeroed.
        unsafe { self.allocate(layout, M_ZERO) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let base = match Strategy::for_layout(layout) {
            Strategy::Plain { .. } => ptr,
            // SAFETY: `ptr` came from `allocate` with this layout (GlobalAlloc contract), which
            // stored the malloc(9) pointer just below it.
            Strategy::Padded { .. } => unsafe { ptr.cast::<*mut u8>().sub(1).read() },
            Strategy::Refuse => return,
        };
        // SAFETY: `base` is what malloc(9) returned for this block, with M_ISBOOT.
        unsafe { ffi::free(base.cast(), m_isboot()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn strategy_follows_alignment() {
        assert_eq!(Strategy::for_layout(l(0, 1)), Strategy::Plain { size: 1 });
        assert_eq!(Strategy::for_layout(l(24, 8)), Strategy::Plain { size: 24 });
        assert_eq!(
            Strategy::for_layout(l(16, 16)),
            Strategy::Padded { total: 32 }
        );
        assert_eq!(
            Strategy::for_layout(l(100, 4096)),
            Strategy::Padded { total: 4196 }
        );
        // A Layout's size is at most isize::MAX, so padding never overflows a usize in
        // practice (Refuse is defensive).
        assert_eq!(
            Strategy::for_layout(l(1 << 40, 64)),
            Strategy::Padded {
                total: (1 << 40) + 64
            }
        );
    }

    #[test]
    fn padded_blocks_are_aligned_and_fit() {
        for align in [16usize, 32, 64, 4096, 1 << 16] {
            for base in (0x1000usize..0x1000 + 2 * align + 64).step_by(MALLOC_MIN_ALIGN) {
                for size in [1usize, 7, 16, align, 3 * align + 5] {
                    let Strategy::Padded { total } = Strategy::for_layout(l(size, align)) else {
                        panic!("padded expected");
                    };
                    let start = padded_start(base, align);
                    assert_eq!(start % align, 0);
                    assert!(
                        start >= base + size_of::<usize>(),
                        "room for the base pointer"
                    );
                    assert!(start + size <= base + total, "block fits");
                }
            }
        }
    }
}
