//! The kernel linker's part for one kld, after `sys/kern/link_elf_obj.c` (loading an `ET_REL`
//! object) and `sys/amd64/amd64/elf_machdep.c` (its relocations):
//!
//! - every `SHF_ALLOC` section of type `PROGBITS`, `NOBITS`, `INIT_ARRAY`, `FINI_ARRAY` or
//!   `X86_64_UNWIND` is placed at its alignment; they are grouped code / read-only / writable,
//!   each group starting on a page, so each gets its page protection afterwards (FreeBSD does
//!   the same when the kld's linker script page-aligns them);
//! - the image lives in the low 2 GiB of the address space (the module is built with the
//!   kernel code model, whose `R_X86_64_32S` addresses must fit a sign-extended 32-bit
//!   immediate; FreeBSD puts klds just above `KERNBASE` in the top 2 GiB, the mirror image),
//!   mapped with `MAP_FIXED_NOREPLACE` so nothing of the host is displaced;
//! - relocations to the module's own symbols are applied first; then the module metadata
//!   (`set_modmetadata_set`) is read and its `MDT_DEPEND`s checked (`linker_load_dependencies`
//!   runs at that point in the kernel); then the undefined symbols are resolved against the
//!   kernel's (kldrun's) symbols, the first one missing refusing the load by name;
//!   `__start_set_X`/`__stop_set_X` resolve to the bounds of the kld's own `set_X` section,
//!   an undefined weak symbol to 0;
//! - relocation types: `R_X86_64_NONE`, `64`, `PC32`, `PLT32` (as PC32), `32S`, `GLOB_DAT`,
//!   `JUMP_SLOT`; anything else refuses the load naming the type (FreeBSD refuses them as
//!   "unexpected relocation type"); a value that does not fit its field refuses it too;
//! - `COMMON` symbols get zeroed space in the writable group; constructors
//!   (`.init_array`, `.ctors`) and destructors (`.fini_array`, `.dtors`) are listed.

use crate::elf::{self, Object, Rela, Section};
use std::collections::HashMap;
use std::fmt;

const PAGE: u64 = 4096;
/// Where kldrun tries to place the kld first (low 2 GiB, clear of a PIE's usual addresses).
pub const IMAGE_BASE: u64 = 0x4000_0000;

/// Why the load was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// Not a kld (format, sections, symbol table).
    Format(String),
    /// A symbol neither the kld nor the kernel defines.
    Undefined(String),
    /// A relocation kldrun (and FreeBSD) does not apply.
    Relocation(String),
    /// A module dependency the kernel cannot satisfy.
    Depend(String),
    /// The image could not be mapped.
    Map(String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Format(s) => write!(f, "not a loadable kld: {s}"),
            LinkError::Undefined(s) => write!(f, "undefined symbol {s}"),
            LinkError::Relocation(s) => write!(f, "{s}"),
            LinkError::Depend(s) => write!(f, "{s}"),
            LinkError::Map(s) => write!(f, "cannot map the image: {s}"),
        }
    }
}

/// Page protection of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prot {
    /// Code: read + execute.
    Exec,
    /// Read-only data.
    Read,
    /// Writable data.
    Write,
}

/// A placed section.
#[derive(Debug, Clone)]
pub struct Placed {
    /// Section name.
    pub name: String,
    /// Address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Protection of its group.
    pub prot: Prot,
}

/// One `struct mod_metadata` of `set_modmetadata_set` (sys/module.h).
#[derive(Debug, Clone)]
pub struct Metadata {
    /// `md_version`.
    pub version: i32,
    /// `md_type` (`MDT_DEPEND` 1, `MDT_MODULE` 2, `MDT_VERSION` 3, `MDT_PNP_INFO` 4).
    pub kind: i32,
    /// `md_data`.
    pub data: u64,
    /// `md_cval`, the module name it is about.
    pub cval: String,
}

/// A loaded kld.
#[derive(Debug)]
pub struct Loaded {
    /// The image: base and length.
    pub base: u64,
    /// Length of the mapping.
    pub len: usize,
    /// Placed sections.
    pub sections: Vec<Placed>,
    /// The code: `[lo, hi)`.
    pub text: (u64, u64),
    /// `set_*` sections: name → (start, end).
    pub sets: HashMap<String, (u64, u64)>,
    /// Defined functions (address, demangled name), sorted.
    pub funcs: Vec<(u64, String)>,
    /// Constructors to run after linking, in order.
    pub ctors: Vec<u64>,
    /// Destructors to run before unloading, in order.
    pub dtors: Vec<u64>,
    /// The module metadata.
    pub metadata: Vec<Metadata>,
    /// Imports the kld uses (for the report).
    pub imports: Vec<String>,
}

impl Loaded {
    /// The pointers in linker set `name` (`set_name` section), empty if it has none.
    pub fn set_entries(&self, name: &str) -> Vec<u64> {
        let Some(&(lo, hi)) = self.sets.get(name) else {
            return Vec::new();
        };
        (lo..hi)
            .step_by(8)
            // SAFETY: the set section is mapped and readable, 8-byte entries.
            .map(|a| unsafe { crate::kernel::mem::read::<u64>(a) })
            .collect()
    }
}

fn round_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

fn loadable(s: &Section) -> bool {
    s.flags & elf::SHF_ALLOC != 0
        && matches!(
            s.kind,
            elf::SHT_PROGBITS
                | elf::SHT_NOBITS
                | elf::SHT_INIT_ARRAY
                | elf::SHT_FINI_ARRAY
                | elf::SHT_X86_64_UNWIND
        )
}

fn prot_of(s: &Section) -> Prot {
    if s.flags & elf::SHF_EXECINSTR != 0 {
        Prot::Exec
    } else if s.flags & elf::SHF_WRITE != 0 {
        Prot::Write
    } else {
        Prot::Read
    }
}

fn map_low(len: usize) -> Result<u64, LinkError> {
    let mut at = IMAGE_BASE;
    while at + len as u64 <= 0x7000_0000 {
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; a fresh anonymous
        // read/write region.
        let p = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            if p as u64 == at {
                return Ok(at);
            }
            // An old kernel took the address as a hint: give it back and try further on.
            // SAFETY: the mapping just made.
            unsafe { libc::munmap(p, len) };
        }
        at += 0x0100_0000;
    }
    Err(LinkError::Map(format!(
        "no free {len:#x} bytes below 2 GiB"
    )))
}

/// What to do with a relocation now.
enum Pass {
    Local,
    Imports,
}

/// Loads `bytes` (a kld called `file`): see the module documentation. `resolve` gives the
/// kernel's address for a symbol name; `depend` checks one `MDT_DEPEND`.
pub fn load(
    bytes: &[u8],
    resolve: &dyn Fn(&str) -> Option<u64>,
    depend: &dyn Fn(&Metadata) -> Result<(), String>,
) -> Result<Loaded, LinkError> {
    let obj = Object::parse(bytes).map_err(|e| LinkError::Format(e.0))?;
    if let Some(s) = obj
        .sections
        .iter()
        .find(|s| s.flags & elf::SHF_ALLOC != 0 && s.flags & elf::SHF_TLS != 0)
    {
        return Err(LinkError::Format(format!(
            "thread-local section {} (the kernel has no TLS)",
            s.name
        )));
    }

    // Layout: code, then read-only, then writable, each group page-aligned.
    let mut offsets: HashMap<usize, u64> = HashMap::new();
    let mut groups: Vec<(Prot, u64, u64)> = Vec::new();
    let mut off = 0u64;
    let commons: Vec<usize> = (0..obj.symbols.len())
        .filter(|&i| obj.symbols[i].shndx == elf::SHN_COMMON)
        .collect();
    let mut common_at: HashMap<usize, u64> = HashMap::new();
    for prot in [Prot::Exec, Prot::Read, Prot::Write] {
        off = round_up(off, PAGE);
        let start = off;
        for s in obj
            .sections
            .iter()
            .filter(|s| loadable(s) && prot_of(s) == prot)
        {
            off = round_up(off, s.align);
            offsets.insert(s.index, off);
            off += s.size;
        }
        if prot == Prot::Write {
            for &i in &commons {
                let sym = &obj.symbols[i];
                off = round_up(off, sym.value.max(1));
                common_at.insert(i, off);
                off += sym.size;
            }
        }
        groups.push((prot, start, round_up(off, PAGE)));
    }
    let len = round_up(off.max(1), PAGE) as usize;
    let base = map_low(len)?;
    let guard = Unmap(base, len);

    let mut sections = Vec::new();
    let mut sets = HashMap::new();
    for s in &obj.sections {
        let Some(&o) = offsets.get(&s.index) else {
            continue;
        };
        let addr = base + o;
        let data = obj.section_bytes(bytes, s);
        // SAFETY: [addr, addr + size) lies inside the fresh writable image (layout above).
        unsafe { crate::kernel::mem::write_bytes(addr, data) };
        if let Some(set) = s.name.strip_prefix("set_") {
            sets.insert(set.to_string(), (addr, addr + s.size));
        }
        sections.push(Placed {
            name: s.name.clone(),
            addr,
            size: s.size,
            prot: prot_of(s),
        });
    }
    let section_addr = |i: usize| offsets.get(&i).map(|o| base + o);

    // Symbol addresses for defined symbols.
    let mut sym_addr: Vec<Option<u64>> = obj
        .symbols
        .iter()
        .enumerate()
        .map(|(i, s)| match s.shndx {
            elf::SHN_UNDEF => None,
            elf::SHN_ABS => Some(s.value),
            elf::SHN_COMMON => common_at.get(&i).map(|o| base + o),
            n => section_addr(n as usize).map(|a| a + s.value),
        })
        .collect();

    let apply = |pass: Pass, sym_addr: &[Option<u64>]| -> Result<(), LinkError> {
        for rs in &obj.relas {
            let Some(target) = obj.sections.get(rs.target) else {
                continue;
            };
            let Some(tbase) = section_addr(rs.target) else {
                continue; // relocations of unloaded sections (debug info) do not matter
            };
            for r in &rs.entries {
                let sym = obj.symbols.get(r.sym as usize).ok_or_else(|| {
                    LinkError::Format(format!("{}: bad symbol index {}", rs.name, r.sym))
                })?;
                let undefined = sym.shndx == elf::SHN_UNDEF && r.sym != 0;
                match pass {
                    Pass::Local if undefined => continue,
                    Pass::Imports if !undefined => continue,
                    _ => {}
                }
                let s = if r.sym == 0 {
                    0
                } else {
                    match sym_addr[r.sym as usize] {
                        Some(a) => a,
                        None => {
                            return Err(LinkError::Format(format!(
                                "{}: relocation against {} in a section that is not loaded",
                                rs.name,
                                if sym.name.is_empty() {
                                    "a section"
                                } else {
                                    &sym.name
                                }
                            )))
                        }
                    }
                };
                relocate(target, tbase, r, s)?;
            }
        }
        Ok(())
    };
    apply(Pass::Local, &sym_addr)?;

    // Module metadata, readable now that local pointers are relocated.
    let mut metadata = Vec::new();
    if let Some(&(lo, hi)) = sets.get("modmetadata_set") {
        for a in (lo..hi).step_by(8) {
            // SAFETY: set entries are pointers to struct mod_metadata inside the image
            // (relocated above): { int md_version; int md_type; void *md_data; const char
            // *md_cval; }.
            let md = unsafe {
                let p: u64 = crate::kernel::mem::read(a);
                Metadata {
                    version: crate::kernel::mem::read(p),
                    kind: crate::kernel::mem::read(p + 4),
                    data: crate::kernel::mem::read(p + 8),
                    cval: crate::kernel::mem::string(crate::kernel::mem::read(p + 16)),
                }
            };
            metadata.push(md);
        }
    }
    for md in &metadata {
        depend(md).map_err(LinkError::Depend)?;
    }

    // Imports.
    let mut imports = Vec::new();
    for rs in &obj.relas {
        if section_addr(rs.target).is_none() {
            continue;
        }
        for r in &rs.entries {
            let i = r.sym as usize;
            let sym = &obj.symbols[i];
            if r.sym == 0 || sym.shndx != elf::SHN_UNDEF || sym_addr[i].is_some() {
                continue;
            }
            let bounds = sym
                .name
                .strip_prefix("__start_set_")
                .map(|n| (n, true))
                .or_else(|| sym.name.strip_prefix("__stop_set_").map(|n| (n, false)));
            let a = match bounds
                .and_then(|(n, start)| sets.get(n).map(|&(lo, hi)| if start { lo } else { hi }))
            {
                Some(a) => Some(a),
                None => resolve(&sym.name).inspect(|_| imports.push(sym.name.clone())),
            };
            sym_addr[i] = match a {
                Some(a) => Some(a),
                None if sym.bind == 2 => Some(0), // STB_WEAK
                None => return Err(LinkError::Undefined(sym.name.clone())),
            };
        }
    }
    apply(Pass::Imports, &sym_addr)?;

    // Page protections per group.
    let mut text = (0, 0);
    for &(prot, lo, hi) in &groups {
        if hi <= lo {
            continue;
        }
        let p = match prot {
            Prot::Exec => {
                text = (base + lo, base + hi);
                libc::PROT_READ | libc::PROT_EXEC
            }
            Prot::Read => libc::PROT_READ,
            Prot::Write => libc::PROT_READ | libc::PROT_WRITE,
        };
        // SAFETY: a page-aligned range inside the image mapping.
        if unsafe { libc::mprotect((base + lo) as *mut libc::c_void, (hi - lo) as usize, p) } != 0 {
            return Err(LinkError::Map(std::io::Error::last_os_error().to_string()));
        }
    }

    let mut funcs: Vec<(u64, String)> = obj
        .symbols
        .iter()
        .zip(&sym_addr)
        .filter(|(s, a)| s.kind == elf::STT_FUNC && s.shndx != elf::SHN_UNDEF && a.is_some())
        .map(|(s, a)| {
            (
                a.expect("filtered"),
                format!("{:#}", rustc_demangle::demangle(&s.name)),
            )
        })
        .collect();
    funcs.sort();

    let list = |names: &[&str]| -> Vec<u64> {
        let mut v = Vec::new();
        for s in &obj.sections {
            if names.contains(&s.name.as_str()) {
                if let Some(a) = section_addr(s.index) {
                    for p in (a..a + s.size).step_by(8) {
                        // SAFETY: an array of relocated function pointers in the image.
                        v.push(unsafe { crate::kernel::mem::read::<u64>(p) });
                    }
                }
            }
        }
        v
    };
    let ctors = list(&[".init_array", ".ctors"]);
    let dtors = list(&[".fini_array", ".dtors"]);
    imports.sort();
    imports.dedup();
    std::mem::forget(guard);
    Ok(Loaded {
        base,
        len,
        sections,
        text,
        sets,
        funcs,
        ctors,
        dtors,
        metadata,
        imports,
    })
}

/// Unmaps the image on an error path.
struct Unmap(u64, usize);

impl Drop for Unmap {
    fn drop(&mut self) {
        // SAFETY: the image mapping made by `load`, not handed out (the error path).
        unsafe { libc::munmap(self.0 as *mut libc::c_void, self.1) };
    }
}

/// Applies one relocation: `target` placed at `tbase`, symbol value `s`.
fn relocate(target: &Section, tbase: u64, r: &Rela, s: u64) -> Result<(), LinkError> {
    let width = match r.kind {
        0 => return Ok(()),
        1 | 6 | 7 => 8,
        2 | 4 | 11 => 4,
        k => {
            return Err(LinkError::Relocation(format!(
                "unsupported relocation {} at {}+{:#x} (FreeBSD's kernel linker refuses it too)",
                elf::reloc_name(k),
                target.name,
                r.offset
            )))
        }
    };
    if r.offset + width > target.size {
        return Err(LinkError::Format(format!(
            "relocation at {}+{:#x} outside the section",
            target.name, r.offset
        )));
    }
    let p = tbase + r.offset;
    let a = r.addend;
    let v64 = match r.kind {
        1 => s.wrapping_add(a as u64),
        6 | 7 => s,
        2 | 4 => s.wrapping_add(a as u64).wrapping_sub(p),
        _ => s.wrapping_add(a as u64), // 32S
    };
    // SAFETY: [p, p + width) is inside the target section of the writable image (checked).
    unsafe {
        if width == 8 {
            crate::kernel::mem::write(p, v64);
        } else {
            let v = v64 as i64;
            if v != i64::from(v as i32) {
                return Err(LinkError::Relocation(format!(
                    "{} at {}+{:#x}: value {v:#x} does not fit 32 bits",
                    elf::reloc_name(r.kind),
                    target.name,
                    r.offset
                )));
            }
            crate::kernel::mem::write(p, v as i32);
        }
    }
    Ok(())
}

/// Unmaps a loaded kld (the kernel's `link_elf_unload_file`).
pub fn unload(l: &Loaded) {
    // SAFETY: the image mapping made by `load`; no module code runs any more.
    unsafe { libc::munmap(l.base as *mut libc::c_void, l.len) };
}
