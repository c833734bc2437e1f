//! A reader for the one kind of ELF file a FreeBSD amd64 kld is: an ELF64 little-endian x86-64
//! relocatable object (`ET_REL`), as `sys/kern/link_elf_obj.c` accepts it (one symbol table,
//! RELA relocations, the `set_*` linker-set sections).
//!
//! Everything is parsed from a byte slice with bounds checks; nothing here is unsafe.

use std::fmt;

/// `SHT_PROGBITS`.
pub const SHT_PROGBITS: u32 = 1;
/// `SHT_SYMTAB`.
pub const SHT_SYMTAB: u32 = 2;
/// `SHT_RELA`.
pub const SHT_RELA: u32 = 4;
/// `SHT_NOBITS`.
pub const SHT_NOBITS: u32 = 8;
/// `SHT_REL`.
pub const SHT_REL: u32 = 9;
/// `SHT_INIT_ARRAY`.
pub const SHT_INIT_ARRAY: u32 = 14;
/// `SHT_FINI_ARRAY`.
pub const SHT_FINI_ARRAY: u32 = 15;
/// `SHT_X86_64_UNWIND`.
pub const SHT_X86_64_UNWIND: u32 = 0x7000_0001;

/// `SHF_WRITE`.
pub const SHF_WRITE: u64 = 0x1;
/// `SHF_ALLOC`.
pub const SHF_ALLOC: u64 = 0x2;
/// `SHF_EXECINSTR`.
pub const SHF_EXECINSTR: u64 = 0x4;
/// `SHF_TLS`.
pub const SHF_TLS: u64 = 0x400;

/// `SHN_UNDEF`.
pub const SHN_UNDEF: u16 = 0;
/// `SHN_ABS`.
pub const SHN_ABS: u16 = 0xfff1;
/// `SHN_COMMON`.
pub const SHN_COMMON: u16 = 0xfff2;

/// `STB_LOCAL`.
pub const STB_LOCAL: u8 = 0;
/// `STT_FUNC`.
pub const STT_FUNC: u8 = 2;
/// `STT_SECTION`.
pub const STT_SECTION: u8 = 3;

/// Why a file is not a kld this loader accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfError(pub String);

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ElfError> {
    Err(ElfError(msg.into()))
}

/// One section header.
#[derive(Debug, Clone)]
pub struct Section {
    /// Index in the section header table.
    pub index: usize,
    /// Name from `.shstrtab`.
    pub name: String,
    /// `sh_type`.
    pub kind: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_offset`.
    pub offset: u64,
    /// `sh_size`.
    pub size: u64,
    /// `sh_link`.
    pub link: u32,
    /// `sh_info`.
    pub info: u32,
    /// `sh_addralign` (at least 1).
    pub align: u64,
    /// `sh_entsize`.
    pub entsize: u64,
}

/// One symbol.
#[derive(Debug, Clone)]
pub struct Symbol {
    /// Name from the symbol string table (empty for section symbols).
    pub name: String,
    /// `ELF64_ST_BIND`.
    pub bind: u8,
    /// `ELF64_ST_TYPE`.
    pub kind: u8,
    /// `st_shndx`.
    pub shndx: u16,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
}

/// One RELA entry.
#[derive(Debug, Clone, Copy)]
pub struct Rela {
    /// `r_offset` in the target section.
    pub offset: u64,
    /// Symbol index.
    pub sym: u32,
    /// Relocation type (`R_X86_64_*`).
    pub kind: u32,
    /// `r_addend`.
    pub addend: i64,
}

/// A relocation section and the section it applies to.
#[derive(Debug, Clone)]
pub struct RelaSection {
    /// The `SHT_RELA` section's name.
    pub name: String,
    /// Index of the section the entries patch (`sh_info`).
    pub target: usize,
    /// The entries.
    pub entries: Vec<Rela>,
}

/// A parsed relocatable object.
#[derive(Debug, Clone)]
pub struct Object {
    /// `e_ident[EI_OSABI]`.
    pub osabi: u8,
    /// Every section header.
    pub sections: Vec<Section>,
    /// The symbol table (index 0 is the null symbol).
    pub symbols: Vec<Symbol>,
    /// Every relocation section.
    pub relas: Vec<RelaSection>,
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, ElfError> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| ElfError(format!("truncated at offset {off:#x}")))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, ElfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| ElfError(format!("truncated at offset {off:#x}")))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, ElfError> {
    b.get(off..off + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        .ok_or_else(|| ElfError(format!("truncated at offset {off:#x}")))
}

fn cstr_at(b: &[u8], off: usize) -> Result<String, ElfError> {
    let tail = b
        .get(off..)
        .ok_or_else(|| ElfError(format!("string offset {off:#x} out of range")))?;
    let end = tail
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| ElfError(format!("unterminated string at {off:#x}")))?;
    Ok(String::from_utf8_lossy(&tail[..end]).into_owned())
}

fn range(b: &[u8], off: u64, size: u64, what: &str) -> Result<(usize, usize), ElfError> {
    let start = usize::try_from(off).map_err(|_| ElfError(format!("{what}: offset too big")))?;
    let len = usize::try_from(size).map_err(|_| ElfError(format!("{what}: size too big")))?;
    match start.checked_add(len) {
        Some(end) if end <= b.len() => Ok((start, end)),
        _ => err(format!("{what} lies outside the file")),
    }
}

impl Object {
    /// Parses `bytes`, accepting only what FreeBSD's kernel linker loads as a kld on amd64.
    pub fn parse(bytes: &[u8]) -> Result<Self, ElfError> {
        if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
            return err("not an ELF file");
        }
        if bytes[4] != 2 || bytes[5] != 1 {
            return err("not ELF64 little-endian");
        }
        let osabi = bytes[7];
        // link_elf_obj.c accepts the FreeBSD OS/ABI; SYSV (0) objects are also produced by
        // some linkers and accepted the same way.
        if osabi != 9 && osabi != 0 {
            return err(format!("OS/ABI {osabi} is not FreeBSD's (9)"));
        }
        let e_type = u16_at(bytes, 16)?;
        let machine = u16_at(bytes, 18)?;
        if e_type != 1 {
            return err(format!(
                "ELF type {e_type} is not ET_REL (amd64 klds are relocatable objects)"
            ));
        }
        if machine != 62 {
            return err(format!("machine {machine} is not x86-64"));
        }
        let shoff = u64_at(bytes, 40)?;
        let shentsize = u16_at(bytes, 58)? as usize;
        let shnum = u16_at(bytes, 60)? as usize;
        let shstrndx = u16_at(bytes, 62)? as usize;
        if shentsize != 64 {
            return err(format!("section header size {shentsize}, not 64"));
        }
        let (sh_start, _) = range(bytes, shoff, (shnum * 64) as u64, "section headers")?;
        let mut raw = Vec::with_capacity(shnum);
        for i in 0..shnum {
            let o = sh_start + i * 64;
            raw.push((
                u32_at(bytes, o)?,
                Section {
                    index: i,
                    name: String::new(),
                    kind: u32_at(bytes, o + 4)?,
                    flags: u64_at(bytes, o + 8)?,
                    offset: u64_at(bytes, o + 24)?,
                    size: u64_at(bytes, o + 32)?,
                    link: u32_at(bytes, o + 40)?,
                    info: u32_at(bytes, o + 44)?,
                    align: u64_at(bytes, o + 48)?.max(1),
                    entsize: u64_at(bytes, o + 56)?,
                },
            ));
        }
        let strtab = raw
            .get(shstrndx)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| ElfError("no section name table".into()))?;
        let (str_start, str_end) = range(bytes, strtab.offset, strtab.size, ".shstrtab")?;
        let names = &bytes[str_start..str_end];
        let mut sections = Vec::with_capacity(shnum);
        for (name_off, mut s) in raw {
            s.name = cstr_at(names, name_off as usize)?;
            if !s.align.is_power_of_two() {
                return err(format!(
                    "section {}: alignment {} is not a power of two",
                    s.name, s.align
                ));
            }
            if s.flags & SHF_ALLOC != 0 && s.kind != SHT_NOBITS {
                range(bytes, s.offset, s.size, &s.name)?;
            }
            sections.push(s);
        }

        // Exactly one symbol table (link_elf_obj.c refuses anything else).
        let symtabs: Vec<&Section> = sections.iter().filter(|s| s.kind == SHT_SYMTAB).collect();
        if symtabs.len() != 1 {
            return err(format!(
                "{} symbol tables (a kld has exactly one)",
                symtabs.len()
            ));
        }
        let symtab = symtabs[0].clone();
        let symstr = sections
            .get(symtab.link as usize)
            .ok_or_else(|| ElfError("symbol string table missing".into()))?;
        let (ss, se) = range(bytes, symstr.offset, symstr.size, ".strtab")?;
        let symnames = &bytes[ss..se];
        let (ts, te) = range(bytes, symtab.offset, symtab.size, ".symtab")?;
        let mut symbols = Vec::new();
        for o in (ts..te).step_by(24) {
            if o + 24 > te {
                break;
            }
            let info = bytes[o + 4];
            symbols.push(Symbol {
                name: cstr_at(symnames, u32_at(bytes, o)? as usize)?,
                bind: info >> 4,
                kind: info & 0xf,
                shndx: u16_at(bytes, o + 6)?,
                value: u64_at(bytes, o + 8)?,
                size: u64_at(bytes, o + 16)?,
            });
        }

        let mut relas = Vec::new();
        for s in &sections {
            if s.kind == SHT_REL {
                return err(format!(
                    "{}: REL relocations (amd64 klds use RELA only)",
                    s.name
                ));
            }
            if s.kind != SHT_RELA {
                continue;
            }
            if s.link as usize != symtab.index {
                return err(format!(
                    "{}: relocations against another symbol table",
                    s.name
                ));
            }
            let (rs, re) = range(bytes, s.offset, s.size, &s.name)?;
            let mut entries = Vec::new();
            for o in (rs..re).step_by(24) {
                if o + 24 > re {
                    break;
                }
                let info = u64_at(bytes, o + 8)?;
                entries.push(Rela {
                    offset: u64_at(bytes, o)?,
                    sym: (info >> 32) as u32,
                    kind: info as u32,
                    addend: u64_at(bytes, o + 16)? as i64,
                });
            }
            relas.push(RelaSection {
                name: s.name.clone(),
                target: s.info as usize,
                entries,
            });
        }
        Ok(Object {
            osabi,
            sections,
            symbols,
            relas,
        })
    }

    /// The bytes of a section in `file` (empty for `SHT_NOBITS`).
    pub fn section_bytes<'a>(&self, file: &'a [u8], s: &Section) -> &'a [u8] {
        if s.kind == SHT_NOBITS {
            return &[];
        }
        // Checked in `parse` for allocated sections; others are not loaded.
        let start = s.offset as usize;
        file.get(start..start + s.size as usize).unwrap_or(&[])
    }

    /// The section called `name`, if any.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// The name of an x86-64 relocation type, as `readelf` prints it.
pub fn reloc_name(kind: u32) -> String {
    let n = match kind {
        0 => "NONE",
        1 => "64",
        2 => "PC32",
        3 => "GOT32",
        4 => "PLT32",
        5 => "COPY",
        6 => "GLOB_DAT",
        7 => "JUMP_SLOT",
        8 => "RELATIVE",
        9 => "GOTPCREL",
        10 => "32",
        11 => "32S",
        12 => "16",
        13 => "PC16",
        14 => "8",
        15 => "PC8",
        16 => "DTPMOD64",
        17 => "DTPOFF64",
        18 => "TPOFF64",
        19 => "TLSGD",
        20 => "TLSLD",
        21 => "DTPOFF32",
        22 => "GOTTPOFF",
        23 => "TPOFF32",
        24 => "PC64",
        25 => "GOTOFF64",
        26 => "GOTPC32",
        37 => "IRELATIVE",
        41 => "GOTPCRELX",
        42 => "REX_GOTPCRELX",
        _ => return format!("relocation type {kind}"),
    };
    format!("R_X86_64_{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_kld() {
        assert_eq!(
            Object::parse(b"hello").unwrap_err().0,
            "not an ELF file".to_string()
        );
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[7] = 9;
        h[16] = 2; // ET_EXEC
        h[18] = 62;
        assert!(Object::parse(&h).unwrap_err().0.contains("not ET_REL"));
        h[16] = 1;
        h[18] = 3;
        assert!(Object::parse(&h).unwrap_err().0.contains("not x86-64"));
        h[18] = 62;
        h[7] = 3; // Linux
        assert!(Object::parse(&h).unwrap_err().0.contains("OS/ABI 3"));
    }

    #[test]
    fn relocation_names() {
        assert_eq!(reloc_name(11), "R_X86_64_32S");
        assert_eq!(reloc_name(42), "R_X86_64_REX_GOTPCRELX");
        assert_eq!(reloc_name(99), "relocation type 99");
    }
}
