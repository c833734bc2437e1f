//! malloc(9): `malloc`, `free`, `realloc`, `reallocf`, and the malloc types
//! (`malloc_init`/`malloc_uninit`, the targets of `MALLOC_DEFINE`'s SYSINIT/SYSUNINIT).
//!
//! Semantics kept from `sys/kern/kern_malloc.c` (FreeBSD 14):
//! - requests are served from the kernel's size classes (16, 32, 64, 128, 256, 384, 512, 1024,
//!   ... 65536 bytes; larger ones in whole pages), aligned as UMA lays those items out
//!   (naturally for the power-of-two classes, pages for large ones): `malloc(0)` is valid;
//! - exactly one of `M_WAITOK`/`M_NOWAIT` must be given; `M_WAITOK` never returns NULL;
//!   `M_ZERO` zeroes;
//! - a malloc type must have been registered by `malloc_init()`, which panics on a
//!   `ks_version` other than 14's `M_VERSION` (2020110501); `malloc_uninit()` prints the
//!   kernel's warning when the type still holds memory;
//! - like an `INVARIANTS` kernel, fresh memory not asked zeroed is filled with `0xdeadc0de`
//!   and freed memory is filled with it too (`trash_ctor`/`trash_dtor`).
//!
//! Stricter than the kernel, to catch bugs the kernel would let corrupt memory: every block
//! carries a red zone after the requested size (checked at free, as `options DEBUG_REDZONE`
//! does); freed blocks are not reused while in a quarantine of the last [`QUARANTINE`] bytes
//! freed (checked for writes after free when they leave it, and at the end); a free of an
//! address that is not a live block, or with another malloc type than it was allocated with,
//! is a panic.

use super::{kpanic, mem, Ctx};
use std::alloc::Layout;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

/// `M_NOWAIT`.
pub const M_NOWAIT: i32 = 0x1;
/// `M_WAITOK`.
pub const M_WAITOK: i32 = 0x2;
/// `M_ZERO`.
pub const M_ZERO: i32 = 0x100;
/// FreeBSD 14's `M_VERSION` (sys/malloc.h): what `malloc_init()` demands in `ks_version`.
pub const M_VERSION_14: u64 = 2020110501;
/// `sizeof(struct malloc_type)` (LP64).
pub const MALLOC_TYPE_SIZE: usize = 112;
/// Bytes of red zone after each block.
const REDZONE: usize = 16;
/// The red-zone fill byte.
const REDZONE_FILL: u8 = 0x42;
/// The `INVARIANTS` trash pattern, as a 32-bit word.
const TRASH: u32 = 0xdead_c0de;
/// Freed blocks stay allocated (trash-filled, so that writes after free show) until this many
/// bytes were freed after them; then they are checked and given back. Bounds the memory of
/// a long run (a benchmark frees a data buffer per I/O).
pub const QUARANTINE: usize = 256 << 20;

/// The kernel's malloc size classes (`kmemzones[]` in kern_malloc.c, 4 KiB pages).
const ZONES: [usize; 14] = [
    16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
];

/// The bytes a request of `size` occupies, and the alignment the kernel gives it.
pub fn size_class(size: usize) -> (usize, usize) {
    match ZONES.iter().find(|&&z| z >= size) {
        Some(&z) if z.is_power_of_two() => (z, z.min(4096)),
        Some(&z) => (z, 128), // 384: items follow each other in 384-byte steps
        None => (size.div_ceil(4096) * 4096, 4096),
    }
}

#[derive(Debug)]
struct Block {
    size: usize,
    ty: u64,
    layout: Layout,
    seq: u64,
    caller: u64,
}

#[derive(Debug, Default)]
struct TypeStats {
    name: String,
    live: u64,
    bytes: u64,
    registered: bool,
    kernel: bool,
}

#[derive(Debug, Default)]
struct State {
    blocks: HashMap<u64, Block>,
    types: BTreeMap<u64, TypeStats>,
    calls: u64,
    fail_at: Option<u64>,
    /// Bytes the module holds (requested sizes, all types) and their high-water mark.
    live_bytes: u64,
    hwm: u64,
    freed: VecDeque<(u64, usize, Layout)>,
    /// Bytes in `freed`.
    freed_bytes: usize,
    /// Writes after free found in blocks leaving the quarantine.
    corrupt: Vec<String>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(State::default))
}

/// Makes the `n`-th call of `malloc` (counting from 1) return NULL (`--fail-malloc`).
pub fn fail_at(n: u64) {
    with(|s| s.fail_at = Some(n));
}

/// Registers a malloc type of the kernel's own (`M_DEVBUF`, `M_TEMP`, ...) at `addr`.
pub fn register_kernel_type(addr: u64, name: &str) {
    with(|s| {
        s.types.insert(
            addr,
            TypeStats {
                name: name.to_string(),
                registered: true,
                kernel: true,
                ..TypeStats::default()
            },
        );
    });
}

fn fill_trash(addr: u64, len: usize) {
    let pat = TRASH.to_le_bytes();
    // SAFETY: only called on blocks kldrun allocated with at least `len` bytes, none of which
    // the module may be using (fresh or being freed).
    let b = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) };
    let pat8 = [pat, pat].concat();
    let mut words = b.chunks_exact_mut(8);
    for w in &mut words {
        w.copy_from_slice(&pat8);
    }
    for (i, x) in words.into_remainder().iter_mut().enumerate() {
        *x = pat[i % 4];
    }
}

/// The first byte of the `len` bytes at `addr` that is not the trash pattern.
fn untrashed(addr: u64, len: usize) -> Option<usize> {
    let pat = TRASH.to_le_bytes();
    // SAFETY: a freed block kldrun still holds (in the quarantine), `len` bytes long.
    let b = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
    let pat8 = u64::from_le_bytes([pat, pat].concat().try_into().unwrap_or_default());
    // Whole words first (fast), then the bytes from the first word that differs.
    let from = b
        .chunks_exact(8)
        .position(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()) != pat8)
        .map_or(len - len % 8, |w| w * 8);
    b[from..]
        .iter()
        .enumerate()
        .position(|(i, &x)| x != pat[(from + i) % 4])
        .map(|i| from + i)
}

fn after_free(addr: u64, len: usize, i: usize) -> String {
    format!("malloc(9): memory modified after free: block {addr:#x} ({len} bytes), byte {i}")
}

fn type_name(ty: u64) -> String {
    with(|s| s.types.get(&ty).map(|t| t.name.clone())).unwrap_or_else(|| format!("{ty:#x}"))
}

/// Allocates for the module. Returns 0 for an injected failure.
fn allocate(c: &mut Ctx, size: usize, ty: u64, flags: i32, what: &str) -> u64 {
    if (flags & M_WAITOK != 0) == (flags & M_NOWAIT != 0) {
        kpanic(
            c,
            &format!("{what}: flags {flags:#x} need exactly one of M_WAITOK and M_NOWAIT"),
        );
    }
    let (registered, fail) = with(|s| {
        s.calls += 1;
        (
            s.types.get(&ty).is_some_and(|t| t.registered),
            s.fail_at == Some(s.calls),
        )
    });
    if !registered {
        kpanic(
            c,
            &format!("{what}: malloc type {ty:#x} is not initialised (malloc_init has not run)"),
        );
    }
    if fail {
        let kind = if flags & M_WAITOK != 0 {
            "M_WAITOK: FreeBSD never fails these, it sleeps until memory is free"
        } else {
            "M_NOWAIT"
        };
        eprintln!(
            "kldrun: --fail-malloc: {what}({size}, {}, {kind}) returns NULL",
            type_name(ty)
        );
        return 0;
    }
    let (class, align) = size_class(size);
    let layout = Layout::from_size_align(class + REDZONE, align).expect("valid layout");
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    let addr = p as u64;
    if flags & M_ZERO != 0 {
        // SAFETY: `size` bytes of the fresh block.
        unsafe { std::ptr::write_bytes(p, 0, size) };
    } else {
        fill_trash(addr, size);
    }
    // SAFETY: the red zone [size, class + REDZONE) is inside the fresh block.
    unsafe { std::ptr::write_bytes(p.add(size), REDZONE_FILL, class + REDZONE - size) };
    with(|s| {
        let seq = s.calls;
        s.blocks.insert(
            addr,
            Block {
                size,
                ty,
                layout,
                seq,
                caller: c.ret_addr,
            },
        );
        let t = s.types.entry(ty).or_default();
        t.live += 1;
        t.bytes += size as u64;
        s.live_bytes += size as u64;
        s.hwm = s.hwm.max(s.live_bytes);
    });
    addr
}

/// Releases a block; returns its requested size.
fn release(c: &mut Ctx, addr: u64, ty: u64, what: &str) -> usize {
    let block = with(|s| s.blocks.remove(&addr));
    let Some(b) = block else {
        let freed = with(|s| s.freed.iter().any(|&(a, _, _)| a == addr));
        let why = if freed {
            "was already freed"
        } else {
            "has not been allocated"
        };
        kpanic(c, &format!("{what}: address {addr:#x} {why}"));
    };
    if b.ty != ty {
        kpanic(
            c,
            &format!(
                "{what}: {addr:#x} ({} bytes) was allocated with malloc type {} and is freed \
                 with {}",
                b.size,
                type_name(b.ty),
                type_name(ty)
            ),
        );
    }
    let class = b.layout.size();
    // SAFETY: the block is live and `class` bytes long.
    let tail = unsafe { mem::bytes(addr + b.size as u64, class - b.size) };
    if let Some(off) = tail.iter().position(|&x| x != REDZONE_FILL) {
        kpanic(
            c,
            &format!(
                "{what}: the module wrote past the end of {addr:#x} ({} bytes of type {}): \
                 byte {} after it changed",
                b.size,
                type_name(b.ty),
                off
            ),
        );
    }
    fill_trash(addr, class);
    with(|s| {
        if let Some(t) = s.types.get_mut(&ty) {
            t.live -= 1;
            t.bytes -= b.size as u64;
        }
        s.live_bytes -= b.size as u64;
        s.freed.push_back((addr, class, b.layout));
        s.freed_bytes += class;
        while s.freed_bytes > QUARANTINE {
            let Some((a, len, layout)) = s.freed.pop_front() else {
                break;
            };
            s.freed_bytes -= len;
            if let Some(i) = untrashed(a, len) {
                s.corrupt.push(after_free(a, len, i));
            }
            // SAFETY: allocated in `allocate` with this layout, freed by the module, out of
            // the quarantine once.
            unsafe { std::alloc::dealloc(a as *mut u8, layout) };
        }
    });
    b.size
}

/// `void *malloc(size_t size, struct malloc_type *type, int flags);` — see the module
/// documentation. With `--fail-malloc N` the N-th call returns NULL whatever its flags (for
/// `M_WAITOK` this breaks the KPI's promise on purpose, and says so on stderr).
pub fn malloc(c: &mut Ctx) -> u64 {
    let size = c.args.ptr() as usize;
    let ty = c.args.ptr();
    let flags = c.args.int();
    allocate(c, size, ty, flags, "malloc")
}

/// `void free(void *addr, struct malloc_type *type);` — NULL is a no-op; see the module
/// documentation for the checks.
pub fn free(c: &mut Ctx) -> u64 {
    let addr = c.args.ptr();
    let ty = c.args.ptr();
    if addr != 0 {
        release(c, addr, ty, "free");
    }
    0
}

/// `void *realloc(void *addr, size_t size, struct malloc_type *type, int flags);` —
/// `malloc` for a NULL `addr`; otherwise a new block with the old contents (up to the smaller
/// size) and the old block freed; on failure (only with `M_NOWAIT` or an injected failure) the
/// old block is left alone and NULL returned. Simplified: the kernel returns the same block
/// when the new size still fits its size class; kldrun always moves it (so stale pointers
/// show).
pub fn realloc(c: &mut Ctx) -> u64 {
    realloc_common(c, false)
}

/// `void *reallocf(void *addr, size_t size, struct malloc_type *type, int flags);` — as
/// [`realloc`], but the old block is freed when the new one cannot be had.
pub fn reallocf(c: &mut Ctx) -> u64 {
    realloc_common(c, true)
}

fn realloc_common(c: &mut Ctx, free_on_failure: bool) -> u64 {
    let addr = c.args.ptr();
    let size = c.args.ptr() as usize;
    let ty = c.args.ptr();
    let flags = c.args.int();
    let name = if free_on_failure {
        "reallocf"
    } else {
        "realloc"
    };
    if addr == 0 {
        return allocate(c, size, ty, flags, name);
    }
    let old = with(|s| s.blocks.get(&addr).map(|b| b.size));
    let Some(old_size) = old else {
        kpanic(
            c,
            &format!("{name}: address {addr:#x} has not been allocated"),
        );
    };
    let new = allocate(c, size, ty, flags & !M_ZERO, name);
    if new == 0 {
        if free_on_failure {
            release(c, addr, ty, name);
        }
        return 0;
    }
    // SAFETY: both blocks are live and at least min(old, new) bytes long.
    unsafe { mem::write_bytes(new, &mem::bytes(addr, old_size.min(size))) };
    release(c, addr, ty, name);
    new
}

/// `void malloc_init(void *data);` — registers the `struct malloc_type` at `data`
/// (`MALLOC_DEFINE`'s SYSINIT). Panics, as FreeBSD 14 does, unless `ks_version` is
/// 2020110501: a type built with another release's headers.
pub fn malloc_init(c: &mut Ctx) -> u64 {
    let mtp = c.args.ptr();
    // SAFETY: malloc_init's contract: a struct malloc_type (ks_version at 8, ks_shortdesc at
    // 16).
    let (version, name) = unsafe { (mem::read::<u64>(mtp + 8), mem::string(mem::read(mtp + 16))) };
    if version != M_VERSION_14 {
        kpanic(
            c,
            &format!("malloc_init: type {name} with unsupported version {version}"),
        );
    }
    let again = with(|s| {
        let t = s.types.entry(mtp).or_default();
        let again = t.registered;
        t.name = name.clone();
        t.registered = true;
        again
    });
    if again {
        kpanic(c, &format!("malloc_init: type {name} registered twice"));
    }
    0
}

/// `void malloc_uninit(void *data);` — unregisters a malloc type (`MALLOC_DEFINE`'s
/// SYSUNINIT) and, as the kernel does, prints `Warning: memory type NAME leaked memory on
/// destroy (N allocations, M bytes leaked).` when blocks of it are still allocated.
pub fn malloc_uninit(c: &mut Ctx) -> u64 {
    let mtp = c.args.ptr();
    let found = with(|s| {
        s.types.get_mut(&mtp).filter(|t| t.registered).map(|t| {
            t.registered = false;
            (t.name.clone(), t.live, t.bytes)
        })
    });
    let Some((name, live, bytes)) = found else {
        kpanic(c, &format!("malloc_uninit: type {mtp:#x} not found"));
    };
    if live > 0 {
        super::console::write(
            format!(
                "Warning: memory type {name} leaked memory on destroy ({live} allocations, \
                 {bytes} bytes leaked).\n"
            )
            .as_bytes(),
        );
    }
    0
}

/// What is left at the end: a line per malloc type still holding blocks or still registered
/// (module types only), and one for blocks written after they were freed.
pub fn leaks(symbolize: &dyn Fn(u64) -> String) -> (Vec<String>, Vec<String>) {
    with(|s| {
        let mut leaks = Vec::new();
        for (addr, t) in &s.types {
            if t.live > 0 {
                let mut blocks: Vec<(&u64, &Block)> =
                    s.blocks.iter().filter(|(_, b)| b.ty == *addr).collect();
                blocks.sort_by_key(|(_, b)| b.seq);
                let first: Vec<String> = blocks
                    .iter()
                    .take(3)
                    .map(|(a, b)| {
                        format!("{} bytes at {a:#x} from {}", b.size, symbolize(b.caller))
                    })
                    .collect();
                leaks.push(format!(
                    "malloc(9): {} allocations ({} bytes) of type {} not freed (first: {})",
                    t.live,
                    t.bytes,
                    t.name,
                    first.join("; ")
                ));
            }
            if t.registered && !t.kernel {
                leaks.push(format!(
                    "malloc(9): type {} still registered (malloc_uninit did not run)",
                    t.name
                ));
            }
        }
        let mut corrupt = s.corrupt.clone();
        for &(addr, len, _) in &s.freed {
            // Blocks in the quarantine are still kldrun's (see `release`).
            if let Some(i) = untrashed(addr, len) {
                corrupt.push(after_free(addr, len, i));
            }
        }
        (leaks, corrupt)
    })
}

/// Counts for the summary: (mallocs made, live blocks).
pub fn counts() -> (u64, usize) {
    with(|s| (s.calls, s.blocks.len()))
}

/// The bytes the module holds now and its high-water mark since the start or the last
/// [`reset_high_water`] (requested sizes, every malloc type).
pub fn memory() -> (u64, u64) {
    with(|s| (s.live_bytes, s.hwm))
}

/// Starts a new high-water mark from what the module holds now (a workload's own).
pub fn reset_high_water() {
    with(|s| s.hwm = s.live_bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_follow_the_kernel() {
        assert_eq!(size_class(0), (16, 16));
        assert_eq!(size_class(1), (16, 16));
        assert_eq!(size_class(17), (32, 32));
        assert_eq!(size_class(300), (384, 128));
        assert_eq!(size_class(4096), (4096, 4096));
        assert_eq!(size_class(65536), (65536, 4096));
        assert_eq!(size_class(65537), (69632, 4096));
    }
}
