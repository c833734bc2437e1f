//! Writing a table: for the ROM, which leaves one for the OS, and for tests.
//!
//! Layout (the one iPXE uses, with room to grow): the 48-byte header; the control structure at
//! 48 with as many (NIC, target) slot pairs as the highest index needs (at least two, as the
//! specification's fixed part has); the initiator, the NICs and the targets each on a 16-byte
//! boundary in that order; then the string heap, each string NUL-terminated. The checksum is
//! set last. Whatever is built is parsed back before it is returned, so the builder never hands
//! out a table the parser would reject.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromZeros, IntoBytes};

use crate::error::{Error, Structure};
use crate::model::{Ibft, Nic, Secret, Target};
use crate::parse::{checksum, ip_to_field, parse};
use crate::wire::{self, StructureHeader, StructureId};

/// Why a table could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// NIC or target indices are not strictly increasing (each index names one slot).
    IndexOrder {
        /// The structure out of order.
        structure: Structure,
    },
    /// The table would pass the 64 KiB that 16-bit offsets can address.
    TooLarge {
        /// Bytes needed.
        needed: usize,
    },
    /// The caller's buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// What was built does not validate (for example a valid target with no name, or a
    /// string holding a NUL).
    Invalid(Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::IndexOrder { structure } => {
                write!(f, "{structure}: index out of order or repeated")
            }
            BuildError::TooLarge { needed } => {
                write!(f, "the table needs {needed} bytes, more than 65535")
            }
            BuildError::BufferTooSmall { needed, available } => {
                write!(
                    f,
                    "the table needs {needed} bytes, the buffer has {available}"
                )
            }
            BuildError::Invalid(e) => write!(f, "the table would not validate: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BuildError {}

const ALIGN: usize = 16;

const fn align(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// Where everything goes.
struct Layout {
    control_len: usize,
    initiator: usize,
    nics: Vec<usize>,
    targets: Vec<usize>,
    heap: usize,
    total: usize,
}

fn strings_len(table: &Ibft) -> usize {
    let s = |o: &Option<alloc::string::String>| o.as_ref().map_or(0, |s| s.len() + 1);
    let k = |o: &Option<Secret>| o.as_ref().map_or(0, |s| s.len() + 1);
    s(&table.initiator.name)
        + table.nics.iter().map(|n| s(&n.hostname)).sum::<usize>()
        + table
            .targets
            .iter()
            .map(|t| {
                s(&t.name)
                    + s(&t.chap_name)
                    + k(&t.chap_secret)
                    + s(&t.reverse_chap_name)
                    + k(&t.reverse_chap_secret)
            })
            .sum::<usize>()
}

fn check_order<T>(
    items: &[T],
    index: impl Fn(&T) -> u8,
    which: fn(u8) -> Structure,
) -> Result<(), BuildError> {
    for pair in items.windows(2) {
        if index(&pair[1]) <= index(&pair[0]) {
            return Err(BuildError::IndexOrder {
                structure: which(index(&pair[1])),
            });
        }
    }
    Ok(())
}

fn layout(table: &Ibft) -> Result<Layout, BuildError> {
    check_order(&table.nics, |n: &Nic| n.index, Structure::Nic)?;
    check_order(&table.targets, |t: &Target| t.index, Structure::Target)?;
    let slots = |last: Option<u8>| last.map_or(0, |i| i as usize + 1);
    let pairs = slots(table.nics.last().map(|n| n.index))
        .max(slots(table.targets.last().map(|t| t.index)))
        .max(2);
    let control_len = wire::CONTROL_FIRST_PAIR + 4 * pairs;
    let mut at = align(wire::CONTROL_OFFSET + control_len);
    let initiator = at;
    at = align(at + size_of::<wire::Initiator>());
    let nics = table
        .nics
        .iter()
        .map(|_| {
            let o = at;
            at = align(at + size_of::<wire::Nic>());
            o
        })
        .collect();
    let targets = table
        .targets
        .iter()
        .map(|_| {
            let o = at;
            at = align(at + size_of::<wire::Target>());
            o
        })
        .collect();
    let heap = at;
    let total = heap + strings_len(table);
    if total > u16::MAX as usize {
        return Err(BuildError::TooLarge { needed: total });
    }
    Ok(Layout {
        control_len,
        initiator,
        nics,
        targets,
        heap,
        total,
    })
}

/// Appends NUL-terminated strings to the heap and hands out references to them.
struct Heap<'b> {
    /// The heap part of the table.
    buf: &'b mut [u8],
    /// Offset of `buf` in the table.
    base: usize,
    /// Bytes used so far.
    at: usize,
}

impl Heap<'_> {
    fn put(&mut self, s: Option<&[u8]>) -> wire::HeapString {
        let Some(s) = s else {
            return wire::HeapString::default();
        };
        let off = self.at;
        self.buf[off..off + s.len()].copy_from_slice(s);
        self.buf[off + s.len()] = 0;
        self.at += s.len() + 1;
        // layout() has checked the whole table fits in 16-bit offsets.
        wire::HeapString {
            length: U16::new(s.len() as u16),
            offset: U16::new((self.base + off) as u16),
        }
    }

    fn text(&mut self, s: &Option<alloc::string::String>) -> wire::HeapString {
        self.put(s.as_deref().map(str::as_bytes))
    }

    fn secret(&mut self, s: &Option<Secret>) -> wire::HeapString {
        self.put(s.as_ref().map(Secret::expose))
    }
}

fn header(id: StructureId, size: usize, index: u8, flags: u8) -> StructureHeader {
    StructureHeader {
        id,
        version: wire::STRUCTURE_VERSION,
        length: U16::new(size as u16),
        index,
        flags,
    }
}

fn put<T: IntoBytes + zerocopy::Immutable>(buf: &mut [u8], at: usize, value: &T) {
    let bytes = value.as_bytes();
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// The number of bytes [`build_into`] writes for `table`.
pub fn encoded_len(table: &Ibft) -> Result<usize, BuildError> {
    Ok(layout(table)?.total)
}

/// Builds the table into a new buffer of exactly its length.
pub fn build(table: &Ibft) -> Result<Vec<u8>, BuildError> {
    let mut buf = vec![0u8; encoded_len(table)?];
    let n = build_into(table, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Builds the table into `buf` (for a ROM's fixed buffer) and returns its length. Bytes of
/// `buf` past the table are left as they are.
pub fn build_into(table: &Ibft, buf: &mut [u8]) -> Result<usize, BuildError> {
    let l = layout(table)?;
    if buf.len() < l.total {
        return Err(BuildError::BufferTooSmall {
            needed: l.total,
            available: buf.len(),
        });
    }
    let buf = &mut buf[..l.total];
    buf.fill(0);

    let h = &table.header;
    let hdr = wire::TableHeader {
        acpi: wire::AcpiHeader {
            signature: h.signature.0,
            length: U32::new(l.total as u32),
            revision: wire::TABLE_REVISION,
            checksum: 0,
            oem_id: h.oem_id,
            oem_table_id: h.oem_table_id,
            oem_revision: U32::new(h.oem_revision),
            creator_id: h.creator_id,
            creator_revision: U32::new(h.creator_revision),
        },
        reserved: [0; 12],
    };
    put(buf, 0, &hdr);

    // Control: the fixed part, then the slot offsets.
    let mut control = wire::Control::new_zeroed();
    control.header = header(
        StructureId::CONTROL,
        l.control_len,
        0,
        table.control_flags.bits(),
    );
    control.initiator = U16::new(l.initiator as u16);
    put(buf, wire::CONTROL_OFFSET, &control);
    let slot_at = |slot: usize| wire::CONTROL_OFFSET + wire::CONTROL_FIRST_PAIR + 2 * slot;
    for (nic, &off) in table.nics.iter().zip(&l.nics) {
        put(buf, slot_at(2 * nic.index as usize), &U16::new(off as u16));
    }
    for (target, &off) in table.targets.iter().zip(&l.targets) {
        put(
            buf,
            slot_at(2 * target.index as usize + 1),
            &U16::new(off as u16),
        );
    }

    let (structs, heap_buf) = buf.split_at_mut(l.heap);
    let mut heap = Heap {
        buf: heap_buf,
        base: l.heap,
        at: 0,
    };

    let i = &table.initiator;
    let mut ini = wire::Initiator::new_zeroed();
    ini.header = header(
        StructureId::INITIATOR,
        size_of::<wire::Initiator>(),
        0,
        i.flags.bits(),
    );
    ini.isns_server = ip_to_field(i.isns_server);
    ini.slp_server = ip_to_field(i.slp_server);
    ini.primary_radius_server = ip_to_field(i.primary_radius_server);
    ini.secondary_radius_server = ip_to_field(i.secondary_radius_server);
    ini.name = heap.text(&i.name);
    put(structs, l.initiator, &ini);

    for (n, &off) in table.nics.iter().zip(&l.nics) {
        let mut w = wire::Nic::new_zeroed();
        w.header = header(
            StructureId::NIC,
            size_of::<wire::Nic>(),
            n.index,
            n.flags.bits(),
        );
        w.ip_address = ip_to_field(n.ip_address);
        w.prefix_length = n.prefix_length;
        w.origin = n.origin.0;
        w.gateway = ip_to_field(n.gateway);
        w.primary_dns = ip_to_field(n.primary_dns);
        w.secondary_dns = ip_to_field(n.secondary_dns);
        w.dhcp_server = ip_to_field(n.dhcp_server);
        w.vlan = U16::new(n.vlan);
        w.mac = n.mac.0;
        w.pci_bdf = U16::new(n.pci.to_bdf());
        w.hostname = heap.text(&n.hostname);
        put(structs, off, &w);
    }

    for (t, &off) in table.targets.iter().zip(&l.targets) {
        let mut w = wire::Target::new_zeroed();
        w.header = header(
            StructureId::TARGET,
            size_of::<wire::Target>(),
            t.index,
            t.flags.bits(),
        );
        w.ip_address = ip_to_field(t.ip_address);
        w.port = U16::new(t.port);
        w.lun = t.lun.0;
        w.chap_type = t.chap_type.to_raw();
        w.nic_association = t.nic_association;
        w.name = heap.text(&t.name);
        w.chap_name = heap.text(&t.chap_name);
        w.chap_secret = heap.secret(&t.chap_secret);
        w.reverse_chap_name = heap.text(&t.reverse_chap_name);
        w.reverse_chap_secret = heap.secret(&t.reverse_chap_secret);
        put(structs, off, &w);
    }

    let sum = checksum(buf);
    buf[offset_of_checksum()] = 0u8.wrapping_sub(sum);

    parse(buf).map_err(BuildError::Invalid)?;
    Ok(l.total)
}

const fn offset_of_checksum() -> usize {
    core::mem::offset_of!(wire::AcpiHeader, checksum)
}
