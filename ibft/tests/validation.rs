//! One test for every validation error and warning: a valid table, one field broken, and the
//! exact error naming the structure and the field.

mod common;

use common::{fixtures, offsets, reseal, sample, Offsets};
use ibft::{Error, ErrorKind, Field, Structure, WarningKind};

fn built() -> Vec<u8> {
    ibft::build(&sample()).unwrap()
}

/// Breaks a copy of the sample table (then fixes its checksum) and parses it.
fn broken(f: impl FnOnce(&mut Vec<u8>, &Offsets)) -> Result<ibft::Parsed, Error> {
    let mut t = built();
    let o = offsets(&t);
    f(&mut t, &o);
    reseal(&mut t);
    ibft::parse(&t)
}

fn err(f: impl FnOnce(&mut Vec<u8>, &Offsets)) -> Error {
    broken(f).expect_err("the change must be rejected")
}

fn warnings(f: impl FnOnce(&mut Vec<u8>, &Offsets)) -> Vec<ibft::Warning> {
    broken(f).expect("the change must be accepted").warnings
}

fn e(structure: Structure, field: Field, kind: ErrorKind) -> Error {
    Error {
        structure,
        field,
        kind,
    }
}

fn put16(t: &mut [u8], at: usize, v: u16) {
    t[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn get16(t: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([t[at], t[at + 1]])
}

const CTL: usize = 48;

#[test]
fn the_sample_is_valid_and_clean() {
    let p = ibft::parse(&built()).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.table, sample());
}

#[test]
fn truncated_header() {
    let t = built();
    assert_eq!(
        ibft::parse(&t[..30]).unwrap_err(),
        e(
            Structure::Table,
            Field::Length,
            ErrorKind::Truncated {
                needed: 48,
                available: 30
            }
        )
    );
    // Enough for the ACPI header: the declared length says what is missing.
    assert_eq!(
        ibft::parse(&t[..40]).unwrap_err().kind,
        ErrorKind::LengthBeyondBuffer {
            length: t.len() as u32,
            available: 40
        }
    );
}

#[test]
fn bad_signature() {
    let x = err(|t, _| t[..4].copy_from_slice(b"XBFT"));
    assert_eq!(
        x,
        e(
            Structure::Table,
            Field::Signature,
            ErrorKind::BadSignature(*b"XBFT")
        )
    );
    assert_eq!(
        x.to_string(),
        "table header: signature: \"XBFT\" is not an iBFT signature (iBFT, IBFT or BIFT)"
    );
}

#[test]
fn all_three_signatures_are_accepted() {
    for sig in [b"iBFT", b"IBFT", b"BIFT"] {
        let p = broken(|t, _| t[..4].copy_from_slice(sig)).unwrap();
        assert_eq!(&p.table.header.signature.0, sig);
    }
}

#[test]
fn length_too_small() {
    assert_eq!(
        err(|t, _| t[4..8].copy_from_slice(&60u32.to_le_bytes())),
        e(
            Structure::Table,
            Field::Length,
            ErrorKind::LengthTooSmall {
                length: 60,
                minimum: 66
            }
        )
    );
}

#[test]
fn length_beyond_buffer() {
    let t = built();
    let n = t.len();
    assert_eq!(
        ibft::parse(&t[..n - 1]).unwrap_err(),
        e(
            Structure::Table,
            Field::Length,
            ErrorKind::LengthBeyondBuffer {
                length: n as u32,
                available: n - 1
            }
        )
    );
}

#[test]
fn bad_checksum() {
    let mut t = built();
    t[100] ^= 0x10;
    let x = ibft::parse(&t).unwrap_err();
    assert_eq!(x.structure, Structure::Table);
    assert_eq!(x.field, Field::Checksum);
    assert!(
        matches!(x.kind, ErrorKind::BadChecksum { sum: 0x10 }),
        "{x:?}"
    );
}

#[test]
fn unsupported_revision() {
    assert_eq!(
        err(|t, _| t[8] = 2),
        e(
            Structure::Table,
            Field::Revision,
            ErrorKind::UnsupportedRevision(2)
        )
    );
}

#[test]
fn control_wrong_id_version_index_and_length() {
    assert_eq!(
        err(|t, _| t[CTL] = 2),
        e(
            Structure::Control,
            Field::StructureId,
            ErrorKind::WrongStructureId {
                expected: 1,
                found: 2
            }
        )
    );
    assert_eq!(
        err(|t, _| t[CTL + 1] = 0),
        e(
            Structure::Control,
            Field::StructureVersion,
            ErrorKind::UnsupportedVersion(0)
        )
    );
    assert_eq!(
        err(|t, _| t[CTL + 4] = 1),
        e(
            Structure::Control,
            Field::Index,
            ErrorKind::IndexMismatch {
                expected: 0,
                found: 1
            }
        )
    );
    assert_eq!(
        err(|t, _| put16(t, CTL + 2, 16)),
        e(
            Structure::Control,
            Field::StructureLength,
            ErrorKind::StructureTooShort {
                length: 16,
                minimum: 18
            }
        )
    );
}

#[test]
fn a_slot_holding_the_wrong_kind_of_structure() {
    // NIC 0's slot pointing at the target structure.
    assert_eq!(
        err(|t, o| put16(t, CTL + 10, o.targets[0] as u16)),
        e(
            Structure::Nic(0),
            Field::StructureId,
            ErrorKind::WrongStructureId {
                expected: 3,
                found: 4
            }
        )
    );
    // The initiator offset pointing at a NIC.
    assert_eq!(
        err(|t, o| put16(t, CTL + 8, o.nics[0] as u16)),
        e(
            Structure::Initiator,
            Field::StructureId,
            ErrorKind::WrongStructureId {
                expected: 2,
                found: 3
            }
        )
    );
}

#[test]
fn structure_version_must_be_one() {
    assert_eq!(
        err(|t, o| t[o.nics[0] + 1] = 2),
        e(
            Structure::Nic(0),
            Field::StructureVersion,
            ErrorKind::UnsupportedVersion(2)
        )
    );
}

#[test]
fn shorter_structure_is_rejected() {
    assert_eq!(
        err(|t, o| put16(t, o.targets[0] + 2, 50)),
        e(
            Structure::Target(0),
            Field::StructureLength,
            ErrorKind::StructureTooShort {
                length: 50,
                minimum: 54
            }
        )
    );
}

#[test]
fn longer_structure_is_accepted_with_a_warning() {
    // The initiator (74 bytes at 80) may grow to 80 without touching NIC 0 at 160.
    let w = warnings(|t, o| put16(t, o.initiator + 2, 80));
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].structure, Structure::Initiator);
    assert_eq!(w[0].field, Field::StructureLength);
    assert_eq!(
        w[0].kind,
        WarningKind::StructureLonger {
            length: 80,
            expected: 74
        }
    );
}

#[test]
fn structure_running_past_the_table() {
    let x = err(|t, o| put16(t, o.initiator + 2, 4000));
    assert_eq!(
        (x.structure, x.field),
        (Structure::Initiator, Field::StructureLength)
    );
    assert!(
        matches!(
            x.kind,
            ErrorKind::OutsideTable {
                offset: 80,
                end: 4080,
                ..
            }
        ),
        "{x:?}"
    );
    // A structure whose header itself lies past the end.
    let x = err(|t, _| put16(t, CTL + 12, 0xfff0));
    assert_eq!(
        (x.structure, x.field),
        (Structure::Target(0), Field::StructureId)
    );
    assert!(
        matches!(x.kind, ErrorKind::OutsideTable { offset: 0xfff0, .. }),
        "{x:?}"
    );
}

#[test]
fn two_slots_pointing_at_one_structure_overlap() {
    let x = err(|t, o| put16(t, CTL + 14, o.nics[0] as u16));
    assert_eq!(
        x,
        e(
            Structure::Nic(1),
            Field::StructureId,
            ErrorKind::Overlaps {
                offset: 160,
                other: Structure::Nic(0)
            }
        )
    );
    // A structure over the table header.
    let x = err(|t, _| put16(t, CTL + 8, 0));
    assert_eq!(
        x,
        e(
            Structure::Control,
            Field::InitiatorOffset,
            ErrorKind::Missing
        )
    );
}

#[test]
fn index_must_match_the_slot() {
    assert_eq!(
        err(|t, o| t[o.nics[0] + 4] = 3),
        e(
            Structure::Nic(0),
            Field::Index,
            ErrorKind::IndexMismatch {
                expected: 0,
                found: 3
            }
        )
    );
    assert_eq!(
        err(|t, o| t[o.initiator + 4] = 1),
        e(
            Structure::Initiator,
            Field::Index,
            ErrorKind::IndexMismatch {
                expected: 0,
                found: 1
            }
        )
    );
}

#[test]
fn string_outside_the_table() {
    let x = err(|t, o| {
        let n = t.len() as u16;
        put16(t, o.initiator + 72, n - 2); // offset
        put16(t, o.initiator + 70, 10); // length
    });
    assert_eq!(
        (x.structure, x.field),
        (Structure::Initiator, Field::InitiatorName)
    );
    assert!(matches!(x.kind, ErrorKind::OutsideTable { .. }), "{x:?}");
}

#[test]
fn string_inside_a_structure() {
    let x = err(|t, o| {
        let ini = o.initiator as u16;
        put16(t, o.targets[0] + 36, ini + 6); // target name offset into the initiator
    });
    assert_eq!(
        x,
        e(
            Structure::Target(0),
            Field::TargetName,
            ErrorKind::Overlaps {
                offset: 86,
                other: Structure::Initiator
            }
        )
    );
    // A string at offset 0 runs over the table header.
    let x = err(|t, o| put16(t, o.nics[0] + 100, 0));
    assert_eq!(
        x,
        e(
            Structure::Nic(0),
            Field::Hostname,
            ErrorKind::Overlaps {
                offset: 0,
                other: Structure::Table
            }
        )
    );
}

#[test]
fn string_with_a_nul_inside() {
    let x = err(|t, o| {
        let off = get16(t, o.initiator + 72) as usize;
        t[off + 3] = 0;
    });
    assert_eq!(
        x,
        e(
            Structure::Initiator,
            Field::InitiatorName,
            ErrorKind::EmbeddedNul { at: 3 }
        )
    );
}

#[test]
fn string_that_is_not_text() {
    let x = err(|t, o| {
        let off = get16(t, o.targets[0] + 36) as usize;
        t[off] = 0xff;
    });
    assert_eq!(
        x,
        e(Structure::Target(0), Field::TargetName, ErrorKind::NotText)
    );
}

#[test]
fn trailing_nuls_are_dropped_with_a_warning() {
    let w = warnings(|t, o| {
        let len = get16(t, o.initiator + 70);
        put16(t, o.initiator + 70, len + 1); // count the terminating NUL
    });
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].structure, w[0].field, w[0].kind),
        (
            Structure::Initiator,
            Field::InitiatorName,
            WarningKind::TrailingNuls(1)
        )
    );
    // And the name is unchanged.
    let p = broken(|t, o| {
        let len = get16(t, o.initiator + 70);
        put16(t, o.initiator + 70, len + 1);
    })
    .unwrap();
    assert_eq!(p.table.initiator.name, sample().initiator.name);
}

#[test]
fn unterminated_string_is_a_warning() {
    let w = warnings(|t, o| {
        let off = get16(t, o.initiator + 72) as usize;
        let len = get16(t, o.initiator + 70) as usize;
        t[off + len] = b'x';
    });
    assert_eq!(
        w.iter()
            .map(|w| (w.structure, w.field, w.kind))
            .collect::<Vec<_>>(),
        vec![(
            Structure::Initiator,
            Field::InitiatorName,
            WarningKind::Unterminated
        )]
    );
}

#[test]
fn prefix_longer_than_the_address() {
    assert_eq!(
        err(|t, o| t[o.nics[0] + 22] = 33),
        e(
            Structure::Nic(0),
            Field::PrefixLength,
            ErrorKind::BadPrefixLength {
                prefix: 33,
                max: 32
            }
        )
    );
}

#[test]
fn unknown_chap_type() {
    assert_eq!(
        err(|t, o| t[o.targets[0] + 32] = 3),
        e(
            Structure::Target(0),
            Field::ChapType,
            ErrorKind::UnknownChapType(3)
        )
    );
}

#[test]
fn chap_type_needs_its_credentials() {
    // Mutual CHAP without the reverse secret.
    assert_eq!(
        err(|t, o| {
            put16(t, o.targets[0] + 50, 0);
            put16(t, o.targets[0] + 52, 0);
        }),
        e(
            Structure::Target(0),
            Field::ReverseChapSecret,
            ErrorKind::MissingCredential
        )
    );
    // One-way CHAP without a CHAP name.
    assert_eq!(
        err(|t, o| {
            t[o.targets[0] + 32] = 1;
            put16(t, o.targets[0] + 38, 0);
            put16(t, o.targets[0] + 40, 0);
        }),
        e(
            Structure::Target(0),
            Field::ChapName,
            ErrorKind::MissingCredential
        )
    );
    // One-way CHAP does not need the reverse credentials.
    let p = broken(|t, o| t[o.targets[0] + 32] = 1).unwrap();
    assert_eq!(p.table.targets[0].chap_type, ibft::ChapType::Chap);
}

#[test]
fn valid_target_must_name_an_existing_nic() {
    assert_eq!(
        err(|t, o| t[o.targets[0] + 33] = 5),
        e(
            Structure::Target(0),
            Field::NicAssociation,
            ErrorKind::NoSuchNic(5)
        )
    );
    // An invalid target (an aborted attempt) is kept as it is.
    let p = broken(|t, o| {
        t[o.targets[0] + 33] = 5;
        t[o.targets[0] + 5] = 0;
    })
    .unwrap();
    assert!(!p.table.targets[0].is_valid());
    assert!(p.table.boot_target().is_none());
}

#[test]
fn valid_target_must_have_an_address_and_a_name() {
    assert_eq!(
        err(|t, o| t[o.targets[0] + 6..o.targets[0] + 22].fill(0)),
        e(Structure::Target(0), Field::IpAddress, ErrorKind::Missing)
    );
    assert_eq!(
        err(|t, o| {
            put16(t, o.targets[0] + 34, 0);
            put16(t, o.targets[0] + 36, 0);
        }),
        e(Structure::Target(0), Field::TargetName, ErrorKind::Missing)
    );
}

#[test]
fn reserved_flags_and_bytes_are_warnings() {
    let w = warnings(|t, o| {
        t[o.targets[0] + 5] |= 0x80;
        t[40] = 1;
    });
    let kinds: Vec<_> = w.iter().map(|w| (w.structure, w.field, w.kind)).collect();
    assert!(kinds.contains(&(
        Structure::Table,
        Field::Reserved,
        WarningKind::ReservedNotZero
    )));
    assert!(kinds.contains(&(
        Structure::Target(0),
        Field::Flags,
        WarningKind::ReservedFlags(0x80)
    )));
    assert_eq!(kinds.len(), 2);
}

#[test]
fn misaligned_structure_is_a_warning() {
    let w = warnings(|t, o| {
        let at = o.targets[0];
        t.copy_within(at..at + 54, at + 4);
        put16(t, CTL + 12, (at + 4) as u16);
    });
    assert_eq!(
        w.iter().map(|w| (w.structure, w.kind)).collect::<Vec<_>>(),
        vec![(
            Structure::Target(0),
            WarningKind::Misaligned { offset: 276 }
        )]
    );
}

#[test]
fn extensions_structure() {
    // Between the control structure (48..66) and the initiator (80) there is room.
    let w = warnings(|t, _| {
        t[72..78].copy_from_slice(&[5, 1, 6, 0, 0, 0]);
        put16(t, CTL + 6, 72);
    });
    assert_eq!(
        w.iter().map(|w| (w.structure, w.kind)).collect::<Vec<_>>(),
        vec![(Structure::Extensions, WarningKind::ExtensionsIgnored)]
    );
    let x = err(|t, _| {
        t[72..78].copy_from_slice(&[9, 1, 6, 0, 0, 0]);
        put16(t, CTL + 6, 72);
    });
    assert_eq!(
        x,
        e(
            Structure::Extensions,
            Field::StructureId,
            ErrorKind::WrongStructureId {
                expected: 5,
                found: 9
            }
        )
    );
}

#[test]
fn odd_control_length_is_a_warning() {
    let w = warnings(|t, _| put16(t, CTL + 2, 19));
    assert_eq!(
        w.iter().map(|w| (w.structure, w.kind)).collect::<Vec<_>>(),
        vec![(Structure::Control, WarningKind::OddControlLength(19))]
    );
}

#[test]
fn slots_past_what_an_index_can_name() {
    // A hand-made table whose control structure has 257 pairs, the last NIC slot in use.
    let len = 1300usize;
    let mut t = vec![0u8; len];
    t[..4].copy_from_slice(b"iBFT");
    t[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    t[8] = 1;
    let clen = 10 + 4 * 257;
    t[CTL..CTL + 6].copy_from_slice(&[1, 1, 0, 0, 0, 0]);
    put16(&mut t, CTL + 2, clen as u16);
    let ini = 1152;
    put16(&mut t, CTL + 8, ini as u16);
    t[ini..ini + 6].copy_from_slice(&[2, 1, 74, 0, 0, 0]);
    put16(&mut t, CTL + 10 + 2 * 512, 1232);
    reseal(&mut t);
    assert_eq!(
        ibft::parse(&t).unwrap_err(),
        e(
            Structure::Control,
            Field::NicOffset,
            ErrorKind::TooManyStructures
        )
    );
}

#[test]
fn more_than_two_nics_and_targets_through_the_expansion_offsets() {
    let mut s = sample();
    s.nics
        .push(common::nic(1, "198.51.100.7", [2, 0, 0, 0, 0, 1]));
    s.nics
        .push(common::nic(3, "203.0.113.9", [2, 0, 0, 0, 0, 3]));
    s.targets
        .push(common::target(2, 3, "iqn.2026-11.org.example:t2", 2));
    s.targets
        .push(common::target(4, 1, "iqn.2026-11.org.example:t4", 300));
    let t = ibft::build(&s).unwrap();
    // Five pairs: the control structure is 10 + 4 * 5 bytes.
    assert_eq!(get16(&t, CTL + 2), 30);
    let p = ibft::parse(&t).unwrap();
    assert!(p.warnings.is_empty());
    assert_eq!(p.table, s);
    assert_eq!(p.table.nic_for(&p.table.targets[2]).unwrap().index, 1);
}

#[test]
fn messages_name_structure_and_field() {
    let x = err(|t, o| t[o.nics[0] + 22] = 40);
    assert_eq!(
        x.to_string(),
        "NIC 0: prefix length: 40 is longer than the address (32 bits)"
    );
    let x = err(|t, o| t[o.targets[0] + 33] = 7);
    assert_eq!(
        x.to_string(),
        "target 0: NIC association: NIC 7 is not in the table"
    );
}

/// Every single-byte change and every truncation of every fixture and of the sample, with
/// and without a fixed checksum: errors, never a panic; and whatever parses survives a trip
/// through the builder.
#[test]
fn no_byte_change_panics() {
    let mut tables: Vec<Vec<u8>> = fixtures().into_iter().map(|(_, b, _)| b).collect();
    tables.push(built());
    let mut parsed = 0usize;
    for base in &tables {
        for cut in 0..base.len() {
            let _ = ibft::parse(&base[..cut]);
        }
        for i in 0..base.len() {
            for v in [
                0x00,
                0xff,
                base[i] ^ 0x01,
                base[i] ^ 0x80,
                base[i].wrapping_add(8),
            ] {
                let mut t = base.clone();
                t[i] = v;
                let _ = ibft::parse(&t);
                reseal(&mut t);
                if let Ok(p) = ibft::parse(&t) {
                    parsed += 1;
                    let again = ibft::parse(&ibft::build(&p.table).unwrap()).unwrap();
                    assert_eq!(again.table, p.table);
                }
            }
        }
    }
    assert!(parsed > 1000, "only {parsed} variants parsed");
}
