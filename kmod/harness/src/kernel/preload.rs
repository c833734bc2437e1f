//! Files preloaded by loader(8) (`--preload TYPE=FILE`, as `X_load="YES"`, `X_type=TYPE`,
//! `X_name=FILE` in `loader.conf`), and the `preload_*` functions of
//! `sys/kern/subr_module.c`.
//!
//! The metadata is built as loader(8) hands it to the kernel: the `preload_metadata` list of
//! `{ uint32_t type; uint32_t size; data, padded to sizeof(u_long) }` fields, one record per
//! file starting with `MODINFO_NAME` (the kernel itself first, `/boot/kernel/kernel` of type
//! `elf kernel`), then `MODINFO_TYPE`, `MODINFO_ADDR` and `MODINFO_SIZE`, the list ended by
//! two zero words. The functions walk that memory as the kernel does, so a module may equally
//! walk it itself. Each file's bytes sit in their own page-aligned buffer, mapped for the whole
//! run (the kernel never frees them either).

use super::{mem, Ctx};
use std::sync::Mutex;

/// `MODINFO_END`.
const MODINFO_END: u32 = 0;
/// `MODINFO_NAME`.
const MODINFO_NAME: u32 = 1;
/// `MODINFO_TYPE`.
const MODINFO_TYPE: u32 = 2;
/// `MODINFO_ADDR`.
const MODINFO_ADDR: u32 = 3;
/// `MODINFO_SIZE`.
const MODINFO_SIZE: u32 = 4;

#[derive(Debug, Default)]
struct State {
    metadata: u64,
    files: Vec<(String, String, u64, usize)>,
}

static STATE: Mutex<State> = Mutex::new(State {
    metadata: 0,
    files: Vec::new(),
});

fn field(list: &mut Vec<u8>, kind: u32, data: &[u8]) {
    list.extend_from_slice(&kind.to_le_bytes());
    list.extend_from_slice(&(data.len() as u32).to_le_bytes());
    list.extend_from_slice(data);
    while list.len() % 8 != 0 {
        list.push(0);
    }
}

fn leak_aligned(data: &[u8]) -> u64 {
    let layout = std::alloc::Layout::from_size_align(data.len().max(1), 4096).expect("layout");
    // SAFETY: non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: the fresh block holds data.len() bytes.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
    p as u64
}

/// Adds a preloaded file named `name` of type `ty`.
pub fn add(name: &str, ty: &str, data: &[u8]) {
    let addr = leak_aligned(data);
    STATE.lock().unwrap_or_else(|e| e.into_inner()).files.push((
        name.to_string(),
        ty.to_string(),
        addr,
        data.len(),
    ));
}

/// Builds `preload_metadata` from the files added so far and returns its address (stored in
/// the kernel's `preload_metadata` variable by the caller).
pub fn build() -> u64 {
    let mut st = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let mut list = Vec::new();
    let cstr = |s: &str| {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    };
    // The kernel's own record comes first, as loader(8) lays it out.
    field(&mut list, MODINFO_NAME, &cstr("/boot/kernel/kernel"));
    field(&mut list, MODINFO_TYPE, &cstr("elf kernel"));
    field(
        &mut list,
        MODINFO_ADDR,
        &0xffff_ffff_8020_0000u64.to_le_bytes(),
    );
    field(&mut list, MODINFO_SIZE, &0u64.to_le_bytes());
    for (name, ty, addr, size) in &st.files {
        field(&mut list, MODINFO_NAME, &cstr(name));
        field(&mut list, MODINFO_TYPE, &cstr(ty));
        field(&mut list, MODINFO_ADDR, &addr.to_le_bytes());
        field(&mut list, MODINFO_SIZE, &(*size as u64).to_le_bytes());
    }
    field(&mut list, MODINFO_END, &[]);
    list.extend_from_slice(&[0u8; 8]);
    st.metadata = leak_aligned(&list);
    st.metadata
}

fn metadata() -> u64 {
    STATE.lock().unwrap_or_else(|e| e.into_inner()).metadata
}

/// The header of the field at `p`: (type, size).
///
/// # Safety
/// `p` points into a well-formed metadata list.
unsafe fn hdr(p: u64) -> (u32, u32) {
    // SAFETY: forwarded contract.
    unsafe { (mem::read::<u32>(p), mem::read::<u32>(p + 4)) }
}

fn next(p: u64, size: u32) -> u64 {
    p + (8 + u64::from(size)).next_multiple_of(8)
}

/// The record whose `what`-typed field (NAME or TYPE) holds `value`.
fn search(what: u32, value: &[u8]) -> u64 {
    let mut p = metadata();
    if p == 0 {
        return 0;
    }
    let mut record = 0;
    loop {
        // SAFETY: walking the list kldrun built.
        let (t, size) = unsafe { hdr(p) };
        if t == 0 && size == 0 {
            return 0;
        }
        if t == MODINFO_NAME {
            record = p;
        }
        // SAFETY: NAME and TYPE data are NUL-terminated strings.
        if t == what && unsafe { mem::cstr(p + 8) } == value {
            return record;
        }
        p = next(p, size);
    }
}

/// `caddr_t preload_search_by_type(const char *type);` — the record (its `MODINFO_NAME`
/// field) of the first preloaded file of that type, or NULL.
pub fn preload_search_by_type(c: &mut Ctx) -> u64 {
    let ty = c.args.ptr();
    // SAFETY: the contract: a NUL-terminated type.
    search(MODINFO_TYPE, &unsafe { mem::cstr(ty) })
}

/// `caddr_t preload_search_by_name(const char *name);` — the record of the file loaded under
/// exactly that name, or NULL.
pub fn preload_search_by_name(c: &mut Ctx) -> u64 {
    let name = c.args.ptr();
    // SAFETY: the contract: a NUL-terminated name.
    let name = unsafe { mem::cstr(name) };
    let mut p = metadata();
    if p == 0 {
        return 0;
    }
    loop {
        // SAFETY: walking the list kldrun built.
        let (t, size) = unsafe { hdr(p) };
        if t == 0 && size == 0 {
            return 0;
        }
        // SAFETY: NAME data is a NUL-terminated string.
        if t == MODINFO_NAME && unsafe { mem::cstr(p + 8) } == name {
            return p;
        }
        p = next(p, size);
    }
}

/// `caddr_t preload_search_next_name(caddr_t base);` — the record after the one starting at
/// `base` (the first one for NULL), or NULL.
pub fn preload_search_next_name(c: &mut Ctx) -> u64 {
    let base = c.args.ptr();
    let mut p = metadata();
    if p == 0 {
        return 0;
    }
    if base != 0 {
        // SAFETY: the contract: `base` is a field of the list (a record start).
        let (_, size) = unsafe { hdr(base) };
        p = next(base, size);
    }
    loop {
        // SAFETY: walking the list.
        let (t, size) = unsafe { hdr(p) };
        if t == 0 && size == 0 {
            return 0;
        }
        if t == MODINFO_NAME {
            return p;
        }
        p = next(p, size);
    }
}

/// `caddr_t preload_search_info(caddr_t mod, int inf);` — a pointer to the data of field
/// `inf` of the record at `mod` (searching up to the next record), or NULL.
pub fn preload_search_info(c: &mut Ctx) -> u64 {
    let md = c.args.ptr();
    let inf = c.args.int() as u32;
    search_info(md, inf)
}

fn search_info(md: u64, inf: u32) -> u64 {
    if md == 0 {
        return 0;
    }
    let mut p = md;
    let mut first = 0;
    loop {
        // SAFETY: the contract: `md` is a record of the list.
        let (t, size) = unsafe { hdr(p) };
        if t == 0 && size == 0 {
            return 0;
        }
        if first == 0 {
            first = t;
        } else if t == first {
            return 0;
        }
        if t == inf {
            return p + 8;
        }
        p = next(p, size);
    }
}

/// `void *preload_fetch_addr(caddr_t mod);` — the file's address (`MODINFO_ADDR`; the
/// kernel adds `preload_addr_relocate`, which is 0 here as on amd64 after relocation), or
/// NULL.
pub fn preload_fetch_addr(c: &mut Ctx) -> u64 {
    let md = c.args.ptr();
    match search_info(md, MODINFO_ADDR) {
        0 => 0,
        // SAFETY: MODINFO_ADDR data is one pointer.
        p => unsafe { mem::read::<u64>(p) },
    }
}

/// `size_t preload_fetch_size(caddr_t mod);` — the file's size (`MODINFO_SIZE`), or 0.
pub fn preload_fetch_size(c: &mut Ctx) -> u64 {
    let md = c.args.ptr();
    match search_info(md, MODINFO_SIZE) {
        0 => 0,
        // SAFETY: MODINFO_SIZE data is one size_t.
        p => unsafe { mem::read::<u64>(p) },
    }
}
