//! The builder: layout, round trips, and refusal to write what the parser would reject.

mod common;

use common::{nic, offsets, sample, target};
use ibft::{build, build_into, encoded_len, BuildError, ErrorKind, Field, Ibft, Secret, Structure};

fn get16(t: &[u8], at: usize) -> usize {
    u16::from_le_bytes([t[at], t[at + 1]]) as usize
}

#[test]
fn layout_is_what_the_specification_and_ipxe_write() {
    let t = build(&sample()).unwrap();
    assert_eq!(&t[..4], b"iBFT");
    assert_eq!(get16(&t, 4), t.len());
    assert_eq!(t[8], 1, "revision");
    assert_eq!(ibft::checksum(&t), 0);
    assert_eq!(&t[36..48], &[0; 12], "reserved");
    assert_eq!(
        (t[48], t[49], get16(&t, 50), t[52]),
        (1, 1, 18, 0),
        "control"
    );
    let o = offsets(&t);
    for off in [o.initiator, o.nics[0], o.targets[0]] {
        assert_eq!(off % 16, 0, "structures on 16-byte boundaries");
    }
    assert!(o.initiator >= 66 && o.initiator < o.nics[0] && o.nics[0] < o.targets[0]);
    // Strings after the structures, NUL-terminated, referenced by (length, offset).
    let name_len = get16(&t, o.initiator + 70);
    let name_off = get16(&t, o.initiator + 72);
    assert!(name_off >= o.targets[0] + 54);
    assert_eq!(
        &t[name_off..name_off + name_len],
        b"iqn.2026-11.org.example:node17"
    );
    assert_eq!(t[name_off + name_len], 0);
}

#[test]
fn round_trips() {
    let mut ipv6 = sample();
    ipv6.nics[0].ip_address = common::ip("2001:db8::117");
    ipv6.nics[0].prefix_length = 64;
    ipv6.nics[0].gateway = common::ip("fe80::1");
    ipv6.targets[0].ip_address = common::ip("2001:db8::10");
    ipv6.initiator.isns_server = common::ip("2001:db8::3");

    let mut gaps = sample();
    gaps.nics = vec![nic(1, "192.0.2.5", [2, 0, 0, 0, 0, 5])];
    gaps.targets = vec![target(3, 1, "iqn.2026-11.org.example:three", 0x3fff)];

    let mut empty_strings = sample();
    empty_strings.nics[0].hostname = Some(String::new());
    empty_strings.targets[0].chap_type = ibft::ChapType::None;
    empty_strings.targets[0].chap_name = None;
    empty_strings.targets[0].chap_secret = None;
    empty_strings.targets[0].reverse_chap_name = Some(String::new());
    empty_strings.targets[0].reverse_chap_secret = None;

    let mut bare = sample();
    bare.nics.clear();
    bare.targets.clear();
    bare.initiator.name = None;
    bare.control_flags = ibft::ControlFlags::SINGLE_LOGIN_ONLY;

    let mut invalid_target = sample();
    invalid_target.targets.push(ibft::Target {
        index: 1,
        nic_association: 9,
        ..ibft::Target::default()
    });

    let mut odd_header = sample();
    odd_header.header = ibft::Header {
        signature: ibft::Signature::BIFT,
        oem_id: *b"BRCM\0\0",
        oem_table_id: *b"NX2\0\0\0\0\0",
        oem_revision: 7,
        creator_id: *b"ABCD",
        creator_revision: 0x1234_5678,
    };

    for (name, table) in [
        ("sample", sample()),
        ("ipv6", ipv6),
        ("gaps", gaps),
        ("empty strings", empty_strings),
        ("bare", bare),
        ("invalid target", invalid_target),
        ("odd header", odd_header),
    ] {
        let bytes = build(&table).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(bytes.len(), encoded_len(&table).unwrap());
        let p = ibft::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(p.warnings.is_empty(), "{name}: {:?}", p.warnings);
        assert_eq!(p.table, table, "{name}");
    }
}

#[test]
fn build_into_a_rom_buffer() {
    let table = sample();
    let need = encoded_len(&table).unwrap();
    let mut buf = vec![0xa5u8; 768];
    let n = build_into(&table, &mut buf).unwrap();
    assert_eq!(n, need);
    assert!(
        buf[n..].iter().all(|&b| b == 0xa5),
        "bytes past the table untouched"
    );
    assert_eq!(ibft::parse(&buf).unwrap().table, table);
    let mut small = vec![0u8; need - 1];
    assert_eq!(
        build_into(&table, &mut small).unwrap_err(),
        BuildError::BufferTooSmall {
            needed: need,
            available: need - 1
        }
    );
}

#[test]
fn refuses_indices_out_of_order() {
    let mut t = sample();
    t.nics.push(nic(0, "192.0.2.9", [2, 0, 0, 0, 0, 9]));
    assert_eq!(
        build(&t).unwrap_err(),
        BuildError::IndexOrder {
            structure: Structure::Nic(0)
        }
    );
    let mut t = sample();
    t.targets.insert(0, target(2, 0, "iqn.x:y", 1));
    assert_eq!(
        build(&t).unwrap_err(),
        BuildError::IndexOrder {
            structure: Structure::Target(0)
        }
    );
}

#[test]
fn refuses_a_table_past_16_bit_offsets() {
    let mut t = sample();
    t.initiator.name = Some("x".repeat(70_000));
    assert!(matches!(
        build(&t).unwrap_err(),
        BuildError::TooLarge { .. }
    ));
}

#[test]
fn refuses_what_would_not_validate() {
    let mut t: Ibft = sample();
    t.targets[0].name = None;
    assert_eq!(
        build(&t).unwrap_err(),
        BuildError::Invalid(ibft::Error {
            structure: Structure::Target(0),
            field: Field::TargetName,
            kind: ErrorKind::Missing
        })
    );
    let mut t = sample();
    t.targets[0].chap_secret = Some(Secret::from("a\0b"));
    assert!(matches!(
        build(&t).unwrap_err(),
        BuildError::Invalid(ibft::Error {
            field: Field::ChapSecret,
            kind: ErrorKind::EmbeddedNul { at: 1 },
            ..
        })
    ));
    let mut t = sample();
    t.nics[0].prefix_length = 40;
    assert!(matches!(
        build(&t).unwrap_err(),
        BuildError::Invalid(ibft::Error {
            field: Field::PrefixLength,
            ..
        })
    ));
}

#[test]
fn fits_ipxe_style_768_byte_buffer_with_one_target() {
    // iPXE leaves 256 bytes for strings; ours packs them right after the structures.
    let t = sample();
    assert!(encoded_len(&t).unwrap() <= 768);
}
