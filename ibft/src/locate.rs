//! Finding a table: in the BIOS low-memory window and through ACPI, behind a small
//! physical-memory trait so the same code runs over `pmap_mapdev` in the kernel, over firmware
//! memory in the ROM, and over synthetic images in tests.
//!
//! - **Low memory** (iBFT 1.03 §1.4.3.1; Linux `iscsi_ibft_find.c`): 0x80000–0xFFFFF on 16-byte
//!   boundaries, skipping the VGA hole 0xA0000–0xBFFFF, for any of the three signatures; a table
//!   must end inside its region. A candidate that fails validation (a stray signature, a
//!   corrupt table) does not stop the scan; if no candidate validates, the first one's error is
//!   reported.
//! - **ACPI** (ACPI 6.5 §5.2.5–5.2.8): the RSDP (found in the EBDA or 0xE0000–0xFFFFF, or given by
//!   the platform), then the XSDT (revision 2 and later, when present) or the RSDT; the n-th
//!   table (1-based, as `AcpiGetTable` and the `hw.ibft.acpi_table` tunable count) with
//!   signature `IBFT`, else `iBFT`, else `BIFT` — Linux's order. UEFI machines publish the iBFT
//!   only here.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::error::Error;
use crate::model::Signature;
use crate::parse::{checksum, parse, Parsed};
use crate::wire;

/// Reads physical memory.
pub trait PhysMemory {
    /// Fills `buf` with the bytes at physical address `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryFault>;
}

/// A read the platform could not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryFault {
    /// Start of the read.
    pub addr: u64,
    /// Its length.
    pub len: usize,
}

impl fmt::Display for MemoryFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {} bytes at {:#x}", self.len, self.addr)
    }
}

/// Memory backed by a byte slice that starts at physical address `base` (a dump of the first
/// MiB, a synthetic image in a test, a window the kernel mapped).
#[derive(Debug, Clone, Copy)]
pub struct SliceMemory<'a> {
    /// Physical address of `bytes[0]`.
    pub base: u64,
    /// The memory.
    pub bytes: &'a [u8],
}

impl PhysMemory for SliceMemory<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryFault> {
        let fault = MemoryFault {
            addr,
            len: buf.len(),
        };
        let start = addr
            .checked_sub(self.base)
            .and_then(|o| usize::try_from(o).ok())
            .ok_or(fault)?;
        let end = start.checked_add(buf.len()).ok_or(fault)?;
        buf.copy_from_slice(self.bytes.get(start..end).ok_or(fault)?);
        Ok(())
    }
}

/// Where a table was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The BIOS low-memory window.
    LowMemory,
    /// An ACPI table, the given instance of its signature.
    Acpi {
        /// 1-based instance.
        instance: u32,
    },
}

/// A table found and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Physical address of the table.
    pub address: u64,
    /// How it was found.
    pub source: Source,
    /// Exactly the table's bytes.
    pub bytes: Vec<u8>,
    /// The table.
    pub parsed: Parsed,
}

/// What went wrong with the ACPI tables themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiProblem {
    /// No `RSD PTR ` with a valid checksum where the RSDP must be.
    NoRsdp,
    /// The RSDP's checksum (or extended checksum) is wrong.
    RsdpChecksum,
    /// The root table's signature is not `RSDT`/`XSDT`.
    RootSignature([u8; 4]),
    /// A table's length is shorter than its header or absurdly long.
    Length(u32),
    /// The root table's checksum is wrong.
    RootChecksum,
}

/// Why no table was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocateError {
    /// No table with an iBFT signature where one was looked for.
    NotFound,
    /// A table was there but is invalid.
    Invalid {
        /// Its physical address.
        address: u64,
        /// What is wrong with it.
        error: Error,
    },
    /// Memory could not be read.
    Memory(MemoryFault),
    /// The ACPI tables are broken.
    Acpi {
        /// Where.
        address: u64,
        /// What.
        problem: AcpiProblem,
    },
}

impl From<MemoryFault> for LocateError {
    fn from(f: MemoryFault) -> Self {
        LocateError::Memory(f)
    }
}

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocateError::NotFound => f.write_str("no iBFT found"),
            LocateError::Invalid { address, error } => {
                write!(f, "iBFT at {address:#x} is invalid: {error}")
            }
            LocateError::Memory(m) => write!(f, "memory: {m}"),
            LocateError::Acpi { address, problem } => {
                write!(f, "ACPI table at {address:#x}: ")?;
                match problem {
                    AcpiProblem::NoRsdp => f.write_str("no valid RSDP"),
                    AcpiProblem::RsdpChecksum => f.write_str("RSDP checksum is wrong"),
                    AcpiProblem::RootSignature(s) => write!(
                        f,
                        "root table signature {} is not RSDT or XSDT",
                        Signature(*s)
                    ),
                    AcpiProblem::Length(l) => write!(f, "length {l} is not plausible"),
                    AcpiProblem::RootChecksum => f.write_str("root table checksum is wrong"),
                }
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LocateError {}

/// Start of the BIOS low-memory scan window.
pub const LOW_MEMORY_START: u64 = 0x8_0000;
/// End (exclusive) of the window.
pub const LOW_MEMORY_END: u64 = 0x10_0000;
/// The VGA hole the scan skips: start.
pub const VGA_HOLE_START: u64 = 0xA_0000;
/// The VGA hole: end (exclusive).
pub const VGA_HOLE_END: u64 = 0xC_0000;
/// Scan step: tables sit on 16-byte boundaries.
pub const SCAN_STEP: usize = 16;

/// The regions the low-memory scan reads.
pub const LOW_MEMORY_REGIONS: [(u64, u64); 2] = [
    (LOW_MEMORY_START, VGA_HOLE_START),
    (VGA_HOLE_END, LOW_MEMORY_END),
];

/// Scans the BIOS low-memory window for a valid table.
pub fn scan_low_memory(mem: &impl PhysMemory) -> Result<Located, LocateError> {
    let mut first_invalid = None;
    for (start, end) in LOW_MEMORY_REGIONS {
        let mut region = vec![0u8; (end - start) as usize];
        mem.read(start, &mut region)?;
        for off in (0..region.len()).step_by(SCAN_STEP) {
            if !Signature::is_known(&region[off..off + 4]) {
                continue;
            }
            let address = start + off as u64;
            // The region's end bounds the table: parse() rejects a length that runs past it.
            match parse(&region[off..]) {
                Ok(parsed) => {
                    let len = parsed_len(&region[off..]);
                    return Ok(Located {
                        address,
                        source: Source::LowMemory,
                        bytes: region[off..off + len].to_vec(),
                        parsed,
                    });
                }
                Err(error) => {
                    log::debug!("iBFT candidate at {address:#x} rejected: {error}");
                    first_invalid.get_or_insert(LocateError::Invalid { address, error });
                }
            }
        }
    }
    Err(first_invalid.unwrap_or(LocateError::NotFound))
}

/// The declared length of a table that has validated.
fn parsed_len(bytes: &[u8]) -> usize {
    u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize
}

/// `RSD PTR `.
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// ACPI 1.0 RSDP length (the part the first checksum covers).
const RSDP_V1_LEN: usize = 20;
/// ACPI 2.0+ RSDP length.
const RSDP_V2_LEN: usize = 36;
/// Longest table this reads; iBFT offsets are 16-bit, so a real one is under 64 KiB.
const MAX_TABLE_LEN: u32 = 1 << 20;

/// Finds the RSDP the way a BIOS OS does: the first KiB of the EBDA (its segment is at
/// 0x40E), then 0xE0000–0xFFFFF, on 16-byte boundaries, with a valid checksum.
pub fn find_rsdp(mem: &impl PhysMemory) -> Option<u64> {
    let mut seg = [0u8; 2];
    let ebda = mem
        .read(0x40e, &mut seg)
        .ok()
        .map(|_| (u16::from_le_bytes(seg) as u64) << 4)
        .filter(|&a| a >= 0x400);
    let areas = ebda
        .map(|a| (a, a + 1024))
        .into_iter()
        .chain(core::iter::once((0xE_0000, 0x10_0000)));
    for (start, end) in areas {
        let mut area = vec![0u8; (end - start) as usize];
        if mem.read(start, &mut area).is_err() {
            continue;
        }
        for off in (0..area.len().saturating_sub(RSDP_V1_LEN - 1)).step_by(16) {
            let cand = &area[off..];
            if cand.starts_with(RSDP_SIGNATURE) && checksum(&cand[..RSDP_V1_LEN]) == 0 {
                return Some(start + off as u64);
            }
        }
    }
    None
}

/// The root table an RSDP points at: (address, entry size).
fn root_table(mem: &impl PhysMemory, rsdp: u64) -> Result<(u64, usize), LocateError> {
    let acpi = |problem| LocateError::Acpi {
        address: rsdp,
        problem,
    };
    let mut r = [0u8; RSDP_V2_LEN];
    mem.read(rsdp, &mut r[..RSDP_V1_LEN])?;
    if &r[..8] != RSDP_SIGNATURE {
        return Err(acpi(AcpiProblem::NoRsdp));
    }
    if checksum(&r[..RSDP_V1_LEN]) != 0 {
        return Err(acpi(AcpiProblem::RsdpChecksum));
    }
    let revision = r[15];
    let rsdt = u32::from_le_bytes([r[16], r[17], r[18], r[19]]) as u64;
    if revision >= 2 {
        mem.read(rsdp, &mut r)?;
        let len = u32::from_le_bytes([r[20], r[21], r[22], r[23]]) as usize;
        if len < RSDP_V2_LEN {
            return Err(acpi(AcpiProblem::Length(len as u32)));
        }
        if checksum(&r) != 0 {
            return Err(acpi(AcpiProblem::RsdpChecksum));
        }
        let mut x = [0u8; 8];
        x.copy_from_slice(&r[24..32]);
        let xsdt = u64::from_le_bytes(x);
        if xsdt != 0 {
            return Ok((xsdt, 8));
        }
    }
    Ok((rsdt, 4))
}

/// Reads a whole ACPI table at `addr`: its header's length, bounded.
fn read_table(mem: &impl PhysMemory, addr: u64) -> Result<Vec<u8>, LocateError> {
    let mut hdr = [0u8; 36];
    mem.read(addr, &mut hdr)?;
    let len = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    if (len as usize) < hdr.len() || len > MAX_TABLE_LEN {
        return Err(LocateError::Acpi {
            address: addr,
            problem: AcpiProblem::Length(len),
        });
    }
    let mut t = vec![0u8; len as usize];
    mem.read(addr, &mut t)?;
    Ok(t)
}

/// The addresses of every table the root table lists.
pub fn acpi_tables(mem: &impl PhysMemory, rsdp: u64) -> Result<Vec<u64>, LocateError> {
    let (root, entry) = root_table(mem, rsdp)?;
    let t = read_table(mem, root)?;
    let want: &[u8; 4] = if entry == 8 { b"XSDT" } else { b"RSDT" };
    if &t[..4] != want {
        let mut s = [0u8; 4];
        s.copy_from_slice(&t[..4]);
        return Err(LocateError::Acpi {
            address: root,
            problem: AcpiProblem::RootSignature(s),
        });
    }
    if checksum(&t) != 0 {
        return Err(LocateError::Acpi {
            address: root,
            problem: AcpiProblem::RootChecksum,
        });
    }
    Ok(t[36..]
        .chunks_exact(entry)
        .map(|e| {
            let mut a = [0u8; 8];
            a[..entry].copy_from_slice(e);
            u64::from_le_bytes(a)
        })
        .collect())
}

/// Finds the `instance`-th (1-based; 0 is taken as 1) iBFT among the ACPI tables, trying the
/// signatures `IBFT`, `iBFT`, `BIFT` in turn.
pub fn find_in_acpi(
    mem: &impl PhysMemory,
    rsdp: u64,
    instance: u32,
) -> Result<Located, LocateError> {
    let instance = instance.max(1);
    let tables = acpi_tables(mem, rsdp)?;
    for sig in [Signature::IBFT_UPPER, Signature::IBFT, Signature::BIFT] {
        let mut seen = 0;
        for &addr in &tables {
            let mut s = [0u8; 4];
            if mem.read(addr, &mut s).is_err() || s != sig.0 {
                continue;
            }
            seen += 1;
            if seen != instance {
                continue;
            }
            let bytes = read_table(mem, addr)?;
            return match parse(&bytes) {
                Ok(parsed) => Ok(Located {
                    address: addr,
                    source: Source::Acpi { instance },
                    bytes,
                    parsed,
                }),
                Err(error) => Err(LocateError::Invalid {
                    address: addr,
                    error,
                }),
            };
        }
    }
    Err(LocateError::NotFound)
}

/// Looks everywhere, as the kernel module does after a preloaded table: ACPI (through `rsdp`,
/// or an RSDP found in low memory), then the low-memory scan. A broken table found on the way
/// is reported if nothing valid turns up.
pub fn find(
    mem: &impl PhysMemory,
    rsdp: Option<u64>,
    instance: u32,
) -> Result<Located, LocateError> {
    let mut first_err = None;
    if let Some(rsdp) = rsdp.or_else(|| find_rsdp(mem)) {
        match find_in_acpi(mem, rsdp, instance) {
            Ok(l) => return Ok(l),
            Err(LocateError::NotFound) => {}
            Err(e) => first_err = Some(e),
        }
    }
    match scan_low_memory(mem) {
        Ok(l) => Ok(l),
        Err(LocateError::NotFound) => Err(first_err.unwrap_or(LocateError::NotFound)),
        Err(e) => Err(first_err.unwrap_or(e)),
    }
}

/// The length of the table header in front of the control structure, for callers that read a
/// table in two steps.
pub const HEADER_LEN: usize = wire::CONTROL_OFFSET;
