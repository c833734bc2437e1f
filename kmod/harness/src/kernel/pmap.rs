//! Physical memory and `pmap_mapbios(9)`/`pmap_mapdev(9)`/`pmap_unmapdev(9)` (amd64,
//! `sys/amd64/amd64/pmap.c`).
//!
//! The machine has [`PHYS_SIZE`] bytes of physical address space, all of it RAM that reads as
//! zero, except what `--phys ADDR=FILE` placed. That is what the kernel sees on a machine whose
//! firmware left those bytes zero: `pmap_mapbios()` maps any physical range (on amd64 it does
//! not refuse RAM, ROM or holes; for RAM inside the direct map it even returns the direct-map
//! address), so kldrun never refuses a range inside the emulated space either. The memory is a
//! sparse `memfd`, and every mapping is a shared `mmap` of it, so two mappings of one page see
//! each other's writes as in the kernel.
//!
//! Stricter than the kernel: every mapping must be undone with `pmap_unmapdev(va, size)` with
//! the size it was made with (the end-of-run check reports the ones left; the kernel would
//! leak kernel address space, or nothing for a direct-map address); an unmap of something
//! that is not a mapping is a panic (the kernel would free someone else's address space).

use super::{kpanic, Ctx};
use std::collections::HashMap;
use std::sync::Mutex;

/// Physical address space of the emulated machine: 64 GiB.
pub const PHYS_SIZE: u64 = 64 << 30;
const PAGE: u64 = 4096;

#[derive(Debug)]
struct Mapping {
    pa: u64,
    size: u64,
    len: usize,
    caller: u64,
}

#[derive(Debug, Default)]
struct State {
    fd: i32,
    maps: HashMap<u64, Mapping>,
    made: u64,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Creates the physical memory (once).
pub fn init() -> std::io::Result<()> {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_some() {
        return Ok(());
    }
    // SAFETY: memfd_create with a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"kldrun-physmem".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd of ours; a sparse size, nothing is allocated until written.
    if unsafe { libc::ftruncate(fd, PHYS_SIZE as libc::off_t) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    *g = Some(State {
        fd,
        ..State::default()
    });
    Ok(())
}

fn fd() -> i32 {
    STATE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(-1, |s| s.fd)
}

/// Places `data` at physical address `pa` (`--phys`).
pub fn place(pa: u64, data: &[u8]) -> Result<(), String> {
    if pa
        .checked_add(data.len() as u64)
        .is_none_or(|end| end > PHYS_SIZE)
    {
        return Err(format!(
            "{pa:#x}+{:#x} is outside the emulated {} GiB of physical memory",
            data.len(),
            PHYS_SIZE >> 30
        ));
    }
    init().map_err(|e| e.to_string())?;
    // SAFETY: pwrite into our memfd from a valid buffer.
    let n = unsafe { libc::pwrite(fd(), data.as_ptr().cast(), data.len(), pa as libc::off_t) };
    if n != data.len() as isize {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(())
}

fn map(c: &mut Ctx, what: &str) -> u64 {
    let pa = c.args.ptr();
    let size = c.args.ptr();
    let off = pa % PAGE;
    let start = pa - off;
    let len = (off + size).div_ceil(PAGE) * PAGE;
    if size == 0 || start.checked_add(len).is_none_or(|end| end > PHYS_SIZE) {
        kpanic(
            c,
            &format!(
                "{what}({pa:#x}, {size:#x}): outside the emulated {} GiB of physical memory",
                PHYS_SIZE >> 30
            ),
        );
    }
    if let Err(e) = init() {
        kpanic(c, &format!("{what}: physical memory: {e}"));
    }
    // SAFETY: a fresh shared mapping of our memfd at a page-aligned offset inside its size.
    let va = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd(),
            start as libc::off_t,
        )
    };
    if va == libc::MAP_FAILED {
        kpanic(
            c,
            &format!(
                "{what}: couldn't map {size:#x} bytes at {pa:#x}: {}",
                std::io::Error::last_os_error()
            ),
        );
    }
    let va = va as u64;
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let st = g.as_mut().expect("initialised");
    st.made += 1;
    st.maps.insert(
        va,
        Mapping {
            pa,
            size,
            len: len as usize,
            caller: c.ret_addr,
        },
    );
    va + off
}

/// `void *pmap_mapbios(vm_paddr_t pa, vm_size_t size);` — maps physical `[pa, pa + size)`
/// write-back into fresh kernel addresses and returns the address of `pa` (the page offset
/// kept). Never fails inside the emulated space (see the module documentation).
pub fn pmap_mapbios(c: &mut Ctx) -> u64 {
    map(c, "pmap_mapbios")
}

/// `void *pmap_mapdev(vm_paddr_t pa, vm_size_t size);` — as [`pmap_mapbios`] (the kernel
/// maps it uncacheable; memory here has no cache attributes).
pub fn pmap_mapdev(c: &mut Ctx) -> u64 {
    map(c, "pmap_mapdev")
}

/// `void pmap_unmapdev(void *va, vm_size_t size);` (what `pmap_unmapbios(va, size)` is on
/// amd64) — undoes a mapping; `va` may be any address inside its first page, and `size`
/// must be what it was made with.
pub fn pmap_unmapdev(c: &mut Ctx) -> u64 {
    let va = c.args.ptr();
    let size = c.args.ptr();
    let base = va - va % PAGE;
    let found = {
        let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
        let st = g.as_mut();
        st.and_then(|s| {
            let ok = s
                .maps
                .get(&base)
                .is_some_and(|m| (va % PAGE + size).div_ceil(PAGE) * PAGE == m.len as u64);
            if ok {
                s.maps.remove(&base)
            } else {
                None
            }
        })
    };
    let Some(m) = found else {
        kpanic(
            c,
            &format!("pmap_unmapdev({va:#x}, {size:#x}): not a mapping made with this size"),
        );
    };
    // SAFETY: exactly the range mmap returned for this mapping, which is no longer recorded.
    unsafe { libc::munmap(base as *mut libc::c_void, m.len) };
    0
}

/// Mappings left at the end: a line each.
pub fn leaks(symbolize: &dyn Fn(u64) -> String) -> Vec<String> {
    let g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(st) = g.as_ref() else {
        return Vec::new();
    };
    st.maps
        .iter()
        .map(|(va, m)| {
            format!(
                "pmap: mapping of physical {:#x} ({:#x} bytes) at {va:#x} from {} not unmapped",
                m.pa,
                m.size,
                symbolize(m.caller)
            )
        })
        .collect()
}

/// How many mappings were made.
pub fn mappings_made() -> u64 {
    STATE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(0, |s| s.made)
}
