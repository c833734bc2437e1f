//! Strict parsing and validation.
//!
//! What is checked, and where the rule comes from:
//! - the signature (`iBFT`, `IBFT`, `BIFT`), the declared length (at least a header and a
//!   control structure, and within the bytes given), the byte checksum and revision 1
//!   (iBFT 1.03 §1.4.3; Linux `ibft_check_device`);
//! - the control structure at offset 48: id 1, version 1, index 0, length of at least 18, and
//!   every offset it holds, the expansion offsets past the first two (NIC, target) pairs included
//!   (Linux walks them too; isboot ignores them);
//! - every structure: inside the table, not overlapping the header or another structure, the id
//!   its slot requires, version 1, a length of at least its size (longer is accepted with a
//!   warning — Linux rejects it, but a later revision may append fields), its index equal to its
//!   slot, reserved flag bits (warning), 8-byte alignment (warning);
//! - every heap string: inside the table, outside every structure, no NUL before its declared
//!   end (trailing NULs are dropped with a warning), UTF-8 text;
//! - addresses: 16 bytes, IPv4-mapped read as IPv4, all-zero and `::ffff:0.0.0.0` as absent;
//!   a NIC's prefix no longer than its address;
//! - a target's CHAP type (0, 1 or 2) and the credentials it requires, and for a valid target
//!   its name, its address and a NIC association naming a NIC in the table.

use alloc::string::String;
use alloc::vec::Vec;
use core::mem::size_of;
use core::net::{IpAddr, Ipv6Addr};
use zerocopy::FromBytes;

use crate::error::{Error, ErrorKind, Field, Structure, Warning, WarningKind};
use crate::model::{self, ChapType, Header, Ibft, Lun, MacAddr, Origin, PciAddress, Secret};
use crate::wire::{self, StructureHeader, StructureId};

/// A parsed table and what the parser noticed without rejecting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The table.
    pub table: Ibft,
    /// Things the firmware got wrong that do not stop the table from being used.
    pub warnings: Vec<Warning>,
}

/// The smallest valid table: a header and a control structure.
pub const MIN_TABLE_LENGTH: usize = wire::CONTROL_OFFSET + size_of::<wire::Control>();

/// Parses and validates a table. `bytes` may be longer than the table (a memory window); the
/// table's own length field says where it ends.
pub fn parse(bytes: &[u8]) -> Result<Parsed, Error> {
    let table = table_bytes(bytes)?;
    let mut p = Parser {
        t: table,
        used: Vec::new(),
        warnings: Vec::new(),
    };
    let ibft = p.table()?;
    Ok(Parsed {
        table: ibft,
        warnings: p.warnings,
    })
}

/// Checks the signature, length and checksum, and returns exactly the table's bytes. This is
/// the cheap test a memory scan applies to each candidate.
pub fn table_bytes(bytes: &[u8]) -> Result<&[u8], Error> {
    let table_err = |field, kind| Error::new(Structure::Table, field, kind);
    let Ok((hdr, _)) = wire::AcpiHeader::read_from_prefix(bytes) else {
        return Err(table_err(
            Field::Length,
            ErrorKind::Truncated {
                needed: wire::CONTROL_OFFSET,
                available: bytes.len(),
            },
        ));
    };
    if !model::Signature::is_known(&hdr.signature) {
        return Err(table_err(
            Field::Signature,
            ErrorKind::BadSignature(hdr.signature),
        ));
    }
    let length = hdr.length.get();
    if (length as usize) < MIN_TABLE_LENGTH {
        return Err(table_err(
            Field::Length,
            ErrorKind::LengthTooSmall {
                length,
                minimum: MIN_TABLE_LENGTH as u32,
            },
        ));
    }
    if length as usize > bytes.len() {
        return Err(table_err(
            Field::Length,
            ErrorKind::LengthBeyondBuffer {
                length,
                available: bytes.len(),
            },
        ));
    }
    let table = &bytes[..length as usize];
    let sum = checksum(table);
    if sum != 0 {
        return Err(table_err(Field::Checksum, ErrorKind::BadChecksum { sum }));
    }
    Ok(table)
}

/// The byte sum of `bytes`, modulo 256; a valid table sums to zero.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

/// Reads a 16-byte address field: `None` when all-zero or `::ffff:0.0.0.0`.
pub fn ip_from_field(field: &wire::IpField) -> Option<IpAddr> {
    let v6 = Ipv6Addr::from(*field);
    match v6.to_ipv4_mapped() {
        Some(v4) if v4.is_unspecified() => None,
        Some(v4) => Some(IpAddr::V4(v4)),
        None if v6.is_unspecified() => None,
        None => Some(IpAddr::V6(v6)),
    }
}

/// Writes an address in the table's form (IPv4 as `::ffff:a.b.c.d`; absent as zeros).
pub fn ip_to_field(ip: Option<IpAddr>) -> wire::IpField {
    match ip {
        None => [0; 16],
        Some(IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets(),
        Some(IpAddr::V6(v6)) => v6.octets(),
    }
}

struct Parser<'a> {
    /// Exactly the table's bytes.
    t: &'a [u8],
    /// Byte ranges taken by the header and the structures, for overlap checks.
    used: Vec<(usize, usize, Structure)>,
    warnings: Vec<Warning>,
}

/// A structure's raw bytes with its header checked.
struct Raw<T> {
    header: StructureHeader,
    body: T,
}

impl<'a> Parser<'a> {
    fn warn(&mut self, structure: Structure, field: Field, kind: WarningKind) {
        let w = Warning {
            structure,
            field,
            kind,
        };
        log::debug!("iBFT: {w}");
        self.warnings.push(w);
    }

    fn table(&mut self) -> Result<Ibft, Error> {
        // table_bytes() has checked signature, length and checksum.
        let (hdr, _) = wire::TableHeader::read_from_prefix(self.t)
            .map_err(|_| self.truncated(Structure::Table, Field::Length, 0, 48))?;
        if hdr.acpi.revision != wire::TABLE_REVISION {
            return Err(Error::new(
                Structure::Table,
                Field::Revision,
                ErrorKind::UnsupportedRevision(hdr.acpi.revision),
            ));
        }
        if hdr.reserved != [0; 12] {
            self.warn(
                Structure::Table,
                Field::Reserved,
                WarningKind::ReservedNotZero,
            );
        }
        self.used.push((0, wire::CONTROL_OFFSET, Structure::Table));
        let header = Header {
            signature: model::Signature(hdr.acpi.signature),
            oem_id: hdr.acpi.oem_id,
            oem_table_id: hdr.acpi.oem_table_id,
            oem_revision: hdr.acpi.oem_revision.get(),
            creator_id: hdr.acpi.creator_id,
            creator_revision: hdr.acpi.creator_revision.get(),
        };

        let control: Raw<wire::Control> = self.structure(
            wire::CONTROL_OFFSET,
            Structure::Control,
            StructureId::CONTROL,
            0,
        )?;
        let control_flags = wire::ControlFlags::from_bits_retain(control.header.flags);
        self.reserved_flags(
            Structure::Control,
            control.header.flags,
            wire::ControlFlags::all().bits(),
        );

        let extensions = control.body.extensions.get() as usize;
        if extensions != 0 {
            self.extensions(extensions)?;
        }

        // Slot offsets: the initiator, then (NIC, target) pairs up to the structure's length.
        let control_len = control.header.length.get() as usize;
        let pair_bytes = control_len - wire::CONTROL_FIRST_PAIR;
        if pair_bytes % 2 != 0 {
            self.warn(
                Structure::Control,
                Field::StructureLength,
                WarningKind::OddControlLength(control.header.length.get()),
            );
        }
        let slot_offsets: Vec<u16> = (0..pair_bytes / 2)
            .map(|i| {
                let at = wire::CONTROL_OFFSET + wire::CONTROL_FIRST_PAIR + 2 * i;
                u16::from_le_bytes([self.t[at], self.t[at + 1]])
            })
            .collect();

        let initiator_offset = control.body.initiator.get() as usize;
        if initiator_offset == 0 {
            return Err(Error::new(
                Structure::Control,
                Field::InitiatorOffset,
                ErrorKind::Missing,
            ));
        }
        let initiator: Raw<wire::Initiator> = self.structure(
            initiator_offset,
            Structure::Initiator,
            StructureId::INITIATOR,
            0,
        )?;

        let mut raw_nics = Vec::new();
        let mut raw_targets = Vec::new();
        for (i, &off) in slot_offsets.iter().enumerate() {
            if off == 0 {
                continue;
            }
            let is_nic = i % 2 == 0;
            let Ok(slot) = u8::try_from(i / 2) else {
                let field = if is_nic {
                    Field::NicOffset
                } else {
                    Field::TargetOffset
                };
                return Err(Error::new(
                    Structure::Control,
                    field,
                    ErrorKind::TooManyStructures,
                ));
            };
            if is_nic {
                let raw: Raw<wire::Nic> =
                    self.structure(off as usize, Structure::Nic(slot), StructureId::NIC, slot)?;
                raw_nics.push((slot, raw));
            } else {
                let raw: Raw<wire::Target> = self.structure(
                    off as usize,
                    Structure::Target(slot),
                    StructureId::TARGET,
                    slot,
                )?;
                raw_targets.push((slot, raw));
            }
        }

        // Every structure is known now: strings can be checked against all of them.
        let initiator = self.initiator(&initiator)?;
        let nics = raw_nics
            .iter()
            .map(|(slot, raw)| self.nic(*slot, raw))
            .collect::<Result<Vec<_>, _>>()?;
        let targets = raw_targets
            .iter()
            .map(|(slot, raw)| self.target(*slot, raw, &nics))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Ibft {
            header,
            control_flags,
            initiator,
            nics,
            targets,
        })
    }

    fn truncated(&self, s: Structure, f: Field, offset: usize, len: usize) -> Error {
        Error::new(
            s,
            f,
            ErrorKind::OutsideTable {
                offset,
                end: offset + len,
                table_length: self.t.len() as u32,
            },
        )
    }

    /// Reads and checks the structure at `offset`: bounds, id, version, length, overlap,
    /// index, alignment. Registers its byte range.
    fn structure<T: FromBytes>(
        &mut self,
        offset: usize,
        which: Structure,
        id: StructureId,
        index: u8,
    ) -> Result<Raw<T>, Error> {
        let err = |field, kind| Error::new(which, field, kind);
        let hsize = size_of::<StructureHeader>();
        let header = self
            .t
            .get(offset..offset + hsize)
            .and_then(|b| StructureHeader::read_from_bytes(b).ok())
            .ok_or_else(|| self.truncated(which, Field::StructureId, offset, hsize))?;
        if header.id != id {
            return Err(err(
                Field::StructureId,
                ErrorKind::WrongStructureId {
                    expected: id.0,
                    found: header.id.0,
                },
            ));
        }
        if header.version != wire::STRUCTURE_VERSION {
            return Err(err(
                Field::StructureVersion,
                ErrorKind::UnsupportedVersion(header.version),
            ));
        }
        let size = size_of::<T>();
        let length = header.length.get() as usize;
        if length < size {
            return Err(err(
                Field::StructureLength,
                ErrorKind::StructureTooShort {
                    length: header.length.get(),
                    minimum: size as u16,
                },
            ));
        }
        let end = offset + length;
        if end > self.t.len() {
            return Err(self.truncated(which, Field::StructureLength, offset, length));
        }
        if let Some(&(_, _, other)) = self.used.iter().find(|&&(s, e, _)| offset < e && s < end) {
            return Err(err(
                if id == StructureId::CONTROL {
                    Field::StructureLength
                } else {
                    Field::StructureId
                },
                ErrorKind::Overlaps { offset, other },
            ));
        }
        if header.index != index {
            return Err(err(
                Field::Index,
                ErrorKind::IndexMismatch {
                    expected: index,
                    found: header.index,
                },
            ));
        }
        // The control structure grows by design (expansion offsets); others only in a later
        // revision of the specification.
        if length > size && id != StructureId::CONTROL {
            self.warn(
                which,
                Field::StructureLength,
                WarningKind::StructureLonger {
                    length: header.length.get(),
                    expected: size as u16,
                },
            );
        }
        if offset % 8 != 0 {
            self.warn(
                which,
                Field::StructureId,
                WarningKind::Misaligned { offset },
            );
        }
        self.used.push((offset, end, which));
        let body = T::read_from_bytes(&self.t[offset..offset + size])
            .map_err(|_| self.truncated(which, Field::StructureLength, offset, size))?;
        Ok(Raw { header, body })
    }

    fn extensions(&mut self, offset: usize) -> Result<(), Error> {
        let hsize = size_of::<StructureHeader>();
        let header = self
            .t
            .get(offset..offset + hsize)
            .and_then(|b| StructureHeader::read_from_bytes(b).ok())
            .ok_or_else(|| {
                self.truncated(Structure::Control, Field::ExtensionsOffset, offset, hsize)
            })?;
        if header.id != StructureId::EXTENSIONS {
            return Err(Error::new(
                Structure::Extensions,
                Field::StructureId,
                ErrorKind::WrongStructureId {
                    expected: StructureId::EXTENSIONS.0,
                    found: header.id.0,
                },
            ));
        }
        let length = (header.length.get() as usize).max(hsize);
        if offset + length > self.t.len() {
            return Err(self.truncated(
                Structure::Extensions,
                Field::StructureLength,
                offset,
                length,
            ));
        }
        self.used
            .push((offset, offset + length, Structure::Extensions));
        self.warn(
            Structure::Extensions,
            Field::StructureId,
            WarningKind::ExtensionsIgnored,
        );
        Ok(())
    }

    fn reserved_flags(&mut self, which: Structure, flags: u8, known: u8) {
        if flags & !known != 0 {
            self.warn(
                which,
                Field::Flags,
                WarningKind::ReservedFlags(flags & !known),
            );
        }
    }

    /// A heap string's bytes, checked; `None` when absent (length and offset both zero).
    fn heap_bytes(
        &mut self,
        which: Structure,
        field: Field,
        s: &wire::HeapString,
    ) -> Result<Option<&'a [u8]>, Error> {
        let (len, off) = (s.length.get() as usize, s.offset.get() as usize);
        if len == 0 && off == 0 {
            return Ok(None);
        }
        let end = off + len;
        if end > self.t.len() {
            return Err(self.truncated(which, field, off, len));
        }
        if len == 0 {
            return Ok(Some(&[]));
        }
        if let Some(&(_, _, other)) = self.used.iter().find(|&&(s, e, _)| off < e && s < end) {
            return Err(Error::new(
                which,
                field,
                ErrorKind::Overlaps { offset: off, other },
            ));
        }
        let mut bytes = &self.t[off..end];
        let trailing = bytes.iter().rev().take_while(|&&b| b == 0).count();
        if trailing > 0 {
            self.warn(which, field, WarningKind::TrailingNuls(trailing));
            bytes = &bytes[..bytes.len() - trailing];
        } else if self.t.get(end) != Some(&0) {
            self.warn(which, field, WarningKind::Unterminated);
        }
        if let Some(at) = bytes.iter().position(|&b| b == 0) {
            return Err(Error::new(which, field, ErrorKind::EmbeddedNul { at }));
        }
        Ok(Some(bytes))
    }

    fn heap_text(
        &mut self,
        which: Structure,
        field: Field,
        s: &wire::HeapString,
    ) -> Result<Option<String>, Error> {
        match self.heap_bytes(which, field, s)? {
            None => Ok(None),
            Some(b) => core::str::from_utf8(b)
                .map(|s| Some(String::from(s)))
                .map_err(|_| Error::new(which, field, ErrorKind::NotText)),
        }
    }

    fn heap_secret(
        &mut self,
        which: Structure,
        field: Field,
        s: &wire::HeapString,
    ) -> Result<Option<Secret>, Error> {
        Ok(self
            .heap_bytes(which, field, s)?
            .map(|b| Secret::new(b.to_vec())))
    }

    fn initiator(&mut self, raw: &Raw<wire::Initiator>) -> Result<model::Initiator, Error> {
        let w = Structure::Initiator;
        self.reserved_flags(w, raw.header.flags, wire::InitiatorFlags::all().bits());
        let b = &raw.body;
        Ok(model::Initiator {
            flags: wire::InitiatorFlags::from_bits_retain(raw.header.flags),
            isns_server: ip_from_field(&b.isns_server),
            slp_server: ip_from_field(&b.slp_server),
            primary_radius_server: ip_from_field(&b.primary_radius_server),
            secondary_radius_server: ip_from_field(&b.secondary_radius_server),
            name: self.heap_text(w, Field::InitiatorName, &b.name)?,
        })
    }

    fn nic(&mut self, slot: u8, raw: &Raw<wire::Nic>) -> Result<model::Nic, Error> {
        let w = Structure::Nic(slot);
        self.reserved_flags(w, raw.header.flags, wire::NicFlags::all().bits());
        let b = &raw.body;
        let ip_address = ip_from_field(&b.ip_address);
        let max = match ip_address {
            Some(IpAddr::V4(_)) => 32,
            _ => 128,
        };
        if b.prefix_length > max {
            return Err(Error::new(
                w,
                Field::PrefixLength,
                ErrorKind::BadPrefixLength {
                    prefix: b.prefix_length,
                    max,
                },
            ));
        }
        Ok(model::Nic {
            index: slot,
            flags: wire::NicFlags::from_bits_retain(raw.header.flags),
            ip_address,
            prefix_length: b.prefix_length,
            origin: Origin(b.origin),
            gateway: ip_from_field(&b.gateway),
            primary_dns: ip_from_field(&b.primary_dns),
            secondary_dns: ip_from_field(&b.secondary_dns),
            dhcp_server: ip_from_field(&b.dhcp_server),
            vlan: b.vlan.get(),
            mac: MacAddr(b.mac),
            pci: PciAddress::from_bdf(b.pci_bdf.get()),
            hostname: self.heap_text(w, Field::Hostname, &b.hostname)?,
        })
    }

    fn target(
        &mut self,
        slot: u8,
        raw: &Raw<wire::Target>,
        nics: &[model::Nic],
    ) -> Result<model::Target, Error> {
        let w = Structure::Target(slot);
        let err = |field, kind| Error::new(w, field, kind);
        self.reserved_flags(w, raw.header.flags, wire::TargetFlags::all().bits());
        let b = &raw.body;
        let flags = wire::TargetFlags::from_bits_retain(raw.header.flags);
        let chap_type = ChapType::from_raw(b.chap_type).ok_or(err(
            Field::ChapType,
            ErrorKind::UnknownChapType(b.chap_type),
        ))?;
        let t = model::Target {
            index: slot,
            flags,
            ip_address: ip_from_field(&b.ip_address),
            port: b.port.get(),
            lun: Lun(b.lun),
            chap_type,
            nic_association: b.nic_association,
            name: self.heap_text(w, Field::TargetName, &b.name)?,
            chap_name: self.heap_text(w, Field::ChapName, &b.chap_name)?,
            chap_secret: self.heap_secret(w, Field::ChapSecret, &b.chap_secret)?,
            reverse_chap_name: self.heap_text(w, Field::ReverseChapName, &b.reverse_chap_name)?,
            reverse_chap_secret: self.heap_secret(
                w,
                Field::ReverseChapSecret,
                &b.reverse_chap_secret,
            )?,
        };

        // The credentials the CHAP type needs (iBFT 1.03: "CHAP Type ... 1 = CHAP,
        // 2 = Mutual CHAP"; the names and secrets are what the login uses).
        let present = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        let secret = |s: &Option<Secret>| s.as_ref().is_some_and(|s| !s.is_empty());
        if chap_type != ChapType::None {
            if !present(&t.chap_name) {
                return Err(err(Field::ChapName, ErrorKind::MissingCredential));
            }
            if !secret(&t.chap_secret) {
                return Err(err(Field::ChapSecret, ErrorKind::MissingCredential));
            }
        }
        if chap_type == ChapType::Mutual {
            if !present(&t.reverse_chap_name) {
                return Err(err(Field::ReverseChapName, ErrorKind::MissingCredential));
            }
            if !secret(&t.reverse_chap_secret) {
                return Err(err(Field::ReverseChapSecret, ErrorKind::MissingCredential));
            }
        }

        // A valid target must say where and what to log in to, and through which NIC. An
        // invalid one (an aborted attempt, edk2 #7329) is kept as it is for inspection.
        if t.is_valid() {
            if t.ip_address.is_none() {
                return Err(err(Field::IpAddress, ErrorKind::Missing));
            }
            if !present(&t.name) {
                return Err(err(Field::TargetName, ErrorKind::Missing));
            }
            if !nics.iter().any(|n| n.index == t.nic_association) {
                return Err(err(
                    Field::NicAssociation,
                    ErrorKind::NoSuchNic(t.nic_association),
                ));
            }
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn addresses() {
        assert_eq!(ip_from_field(&[0; 16]), None);
        let mut mapped_zero = [0u8; 16];
        mapped_zero[10] = 0xff;
        mapped_zero[11] = 0xff;
        assert_eq!(ip_from_field(&mapped_zero), None);
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(ip_from_field(&ip_to_field(Some(v4))), Some(v4));
        let v6: IpAddr = "fe80::1".parse().unwrap();
        assert_eq!(ip_from_field(&ip_to_field(Some(v6))), Some(v6));
    }
}
