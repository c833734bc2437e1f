//! The locator on synthetic physical-memory images: a table at several offsets in the low
//! window, in the VGA hole, straddling a boundary, corrupt, absent; and through ACPI (RSDP v1
//! with an RSDT, v2 with an XSDT, instances, signature order, broken ACPI tables).

mod common;

use common::{fixture, reseal, sample};
use ibft::locate::{
    self, find, find_in_acpi, find_rsdp, scan_low_memory, AcpiProblem, LocateError, MemoryFault,
    PhysMemory, SliceMemory, Source,
};
use ibft::{ErrorKind, Field, Structure};

const MIB: usize = 1 << 20;

/// A 1 MiB image of the first megabyte of physical memory, filled with noise that holds no
/// signature (as real memory mostly does not).
fn image() -> Vec<u8> {
    let mut m = vec![0u8; MIB];
    let mut x: u32 = 0x1234_5678;
    for b in m.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    // Make sure no signature appears by accident at a 16-byte boundary.
    for off in (0..MIB).step_by(16) {
        if ibft::Signature::is_known(&m[off..off + 4]) {
            m[off] = 0;
        }
    }
    m
}

fn place(m: &mut [u8], at: usize, table: &[u8]) {
    m[at..at + table.len()].copy_from_slice(table);
}

fn mem(m: &[u8]) -> SliceMemory<'_> {
    SliceMemory { base: 0, bytes: m }
}

#[test]
fn finds_a_real_table_where_ipxe_puts_it() {
    let t = fixture("nochap");
    let mut m = image();
    place(&mut m, 0x9e620, &t);
    let l = scan_low_memory(&mem(&m)).unwrap();
    assert_eq!(l.address, 0x9e620);
    assert_eq!(l.source, Source::LowMemory);
    assert_eq!(l.bytes, t);
    assert_eq!(l.parsed, ibft::parse(&t).unwrap());
}

#[test]
fn finds_tables_at_the_window_edges() {
    let t = ibft::build(&sample()).unwrap();
    let end_slot = (0x100000 - t.len()) & !15;
    for at in [
        0x80000,
        0x80010,
        0x9fff0 - t.len() + 16 - 16,
        0xc0000,
        0xe0000,
        end_slot,
    ] {
        let at = at & !15;
        let mut m = image();
        place(&mut m, at, &t);
        let l = scan_low_memory(&mem(&m)).unwrap_or_else(|e| panic!("at {at:#x}: {e}"));
        assert_eq!(l.address, at as u64);
        assert_eq!(l.parsed.table, sample());
    }
}

#[test]
fn skips_unaligned_tables_the_vga_hole_and_memory_outside_the_window() {
    let t = ibft::build(&sample()).unwrap();
    for at in [0x80008, 0xa0000, 0xb8000, 0x7fff0, 0x70000] {
        let mut m = image();
        place(&mut m, at, &t);
        assert_eq!(
            scan_low_memory(&mem(&m)).unwrap_err(),
            LocateError::NotFound,
            "at {at:#x}"
        );
    }
}

#[test]
fn a_table_must_end_inside_its_region() {
    let t = ibft::build(&sample()).unwrap();
    // Starts before the VGA hole and runs into it.
    let at = 0xa0000 - 0x40;
    let mut m = image();
    place(&mut m, at, &t);
    match scan_low_memory(&mem(&m)).unwrap_err() {
        LocateError::Invalid { address, error } => {
            assert_eq!(address, at as u64);
            assert!(matches!(
                error.kind,
                ErrorKind::LengthBeyondBuffer {
                    available: 0x40,
                    ..
                }
            ));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_stray_signature_does_not_hide_the_real_table() {
    let t = ibft::build(&sample()).unwrap();
    let mut m = image();
    m[0x81000..0x81004].copy_from_slice(b"iBFT"); // a stray signature, garbage after it
    place(&mut m, 0x9e620, &t);
    let l = scan_low_memory(&mem(&m)).unwrap();
    assert_eq!(l.address, 0x9e620);
}

#[test]
fn a_corrupt_table_alone_is_reported_with_its_address() {
    let mut t = ibft::build(&sample()).unwrap();
    t[100] ^= 1; // checksum now wrong
    let mut m = image();
    place(&mut m, 0x9e620, &t);
    let e = scan_low_memory(&mem(&m)).unwrap_err();
    match e {
        LocateError::Invalid { address, error } => {
            assert_eq!(address, 0x9e620);
            assert_eq!(
                (error.structure, error.field),
                (Structure::Table, Field::Checksum)
            );
        }
        e => panic!("{e:?}"),
    }
    assert!(e
        .to_string()
        .starts_with("iBFT at 0x9e620 is invalid: table header: checksum"));
}

#[test]
fn no_table_at_all() {
    let m = image();
    assert_eq!(
        scan_low_memory(&mem(&m)).unwrap_err(),
        LocateError::NotFound
    );
    assert_eq!(find(&mem(&m), None, 1).unwrap_err(), LocateError::NotFound);
}

#[test]
fn unreadable_memory_is_an_error_not_a_panic() {
    let m = vec![0u8; 0x90000]; // the image stops inside the window
    assert_eq!(
        scan_low_memory(&mem(&m)).unwrap_err(),
        LocateError::Memory(MemoryFault {
            addr: 0x80000,
            len: 0x20000
        })
    );
}

// ---- ACPI ----------------------------------------------------------------------------------

fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 36];
    t[..4].copy_from_slice(sig);
    t[4..8].copy_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t[8] = 1;
    t[10..16].copy_from_slice(b"ISBOOT");
    t.extend_from_slice(body);
    reseal(&mut t);
    t
}

/// Lays out an RSDP at 0xe0000 (v1 with an RSDT, or v2 with an XSDT) listing `tables`, each
/// placed high in the image.
struct Acpi {
    mem: Vec<u8>,
    addrs: Vec<u64>,
}

fn acpi(v2: bool, tables: &[Vec<u8>]) -> Acpi {
    let mut m = image();
    let mut at = 0x40000usize;
    let mut addrs = Vec::new();
    for t in tables {
        place(&mut m, at, t);
        addrs.push(at as u64);
        at = (at + t.len() + 15) & !15;
    }
    let entry = if v2 { 8 } else { 4 };
    let body: Vec<u8> = addrs
        .iter()
        .flat_map(|a| a.to_le_bytes()[..entry].to_vec())
        .collect();
    let root = sdt(if v2 { b"XSDT" } else { b"RSDT" }, &body);
    let root_at = 0x30000usize;
    place(&mut m, root_at, &root);
    let mut rsdp = vec![0u8; 36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(b"ISBOOT");
    rsdp[15] = if v2 { 2 } else { 0 };
    if v2 {
        rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
        rsdp[24..32].copy_from_slice(&(root_at as u64).to_le_bytes());
    } else {
        rsdp[16..20].copy_from_slice(&(root_at as u32).to_le_bytes());
    }
    let c1 = ibft::checksum(&rsdp[..20]);
    rsdp[8] = 0u8.wrapping_sub(c1);
    if v2 {
        let c2 = ibft::checksum(&rsdp);
        rsdp[32] = 0u8.wrapping_sub(c2);
    }
    place(&mut m, 0xe0000, &rsdp);
    Acpi { mem: m, addrs }
}

fn with_sig(sig: &[u8; 4], mut t: Vec<u8>) -> Vec<u8> {
    t[..4].copy_from_slice(sig);
    reseal(&mut t);
    t
}

#[test]
fn finds_the_rsdp_and_the_table_through_an_rsdt() {
    let t = fixture("mutual");
    let facp = sdt(b"FACP", &[0; 64]);
    let a = acpi(false, &[facp, t.clone()]);
    let m = mem(&a.mem);
    assert_eq!(find_rsdp(&m), Some(0xe0000));
    let l = find_in_acpi(&m, 0xe0000, 1).unwrap();
    assert_eq!(l.address, a.addrs[1]);
    assert_eq!(l.source, Source::Acpi { instance: 1 });
    assert_eq!(l.bytes, t);
    // find() prefers ACPI and finds the RSDP itself.
    assert_eq!(find(&m, None, 1).unwrap().address, a.addrs[1]);
}

#[test]
fn finds_the_table_through_an_xsdt() {
    let t = ibft::build(&sample()).unwrap();
    let a = acpi(true, &[sdt(b"APIC", &[1; 20]), t]);
    let l = find_in_acpi(&mem(&a.mem), 0xe0000, 1).unwrap();
    assert_eq!(l.address, a.addrs[1]);
    assert_eq!(l.parsed.table, sample());
}

#[test]
fn instance_selects_among_tables_of_one_signature() {
    let mut second = sample();
    second.initiator.name = Some("iqn.2026-11.org.example:second".into());
    let t1 = ibft::build(&sample()).unwrap();
    let t2 = ibft::build(&second).unwrap();
    let a = acpi(true, &[with_sig(b"IBFT", t1), with_sig(b"IBFT", t2)]);
    let m = mem(&a.mem);
    assert_eq!(find_in_acpi(&m, 0xe0000, 1).unwrap().address, a.addrs[0]);
    // Instance 0 counts as 1, as the tunable's default does.
    assert_eq!(find_in_acpi(&m, 0xe0000, 0).unwrap().address, a.addrs[0]);
    let l2 = find_in_acpi(&m, 0xe0000, 2).unwrap();
    assert_eq!(l2.address, a.addrs[1]);
    second.header.signature = ibft::Signature::IBFT_UPPER;
    assert_eq!(l2.parsed.table, second);
    assert_eq!(l2.source, Source::Acpi { instance: 2 });
    assert_eq!(
        find_in_acpi(&m, 0xe0000, 3).unwrap_err(),
        LocateError::NotFound
    );
}

#[test]
fn signatures_are_tried_ibft_then_ibft_lower_then_bift() {
    let t = ibft::build(&sample()).unwrap();
    let a = acpi(
        false,
        &[
            with_sig(b"BIFT", t.clone()),
            with_sig(b"iBFT", t.clone()),
            with_sig(b"IBFT", t),
        ],
    );
    let l = find_in_acpi(&mem(&a.mem), 0xe0000, 1).unwrap();
    assert_eq!(l.address, a.addrs[2]);
    assert_eq!(&l.parsed.table.header.signature.0, b"IBFT");
}

#[test]
fn a_corrupt_acpi_table_is_reported_and_the_scan_still_runs() {
    let mut bad = ibft::build(&sample()).unwrap();
    let n = bad.len();
    bad[n - 3] ^= 0x55;
    let mut a = acpi(false, &[bad]);
    let m = mem(&a.mem);
    let e = find_in_acpi(&m, 0xe0000, 1).unwrap_err();
    assert!(
        matches!(e, LocateError::Invalid { address, .. } if address == a.addrs[0]),
        "{e:?}"
    );
    // With nothing in low memory, find() reports the corrupt ACPI table.
    assert_eq!(find(&m, Some(0xe0000), 1).unwrap_err(), e);
    // A valid table in low memory is found after it.
    place(&mut a.mem, 0x9e620, &fixture("nochap"));
    let l = find(&mem(&a.mem), Some(0xe0000), 1).unwrap();
    assert_eq!((l.address, l.source), (0x9e620, Source::LowMemory));
}

#[test]
fn broken_acpi_tables_are_typed_errors() {
    let t = ibft::build(&sample()).unwrap();
    // RSDP checksum.
    let mut a = acpi(false, std::slice::from_ref(&t));
    a.mem[0xe0000 + 8] ^= 1;
    assert_eq!(
        find_in_acpi(&mem(&a.mem), 0xe0000, 1).unwrap_err(),
        LocateError::Acpi {
            address: 0xe0000,
            problem: AcpiProblem::RsdpChecksum
        }
    );
    assert_eq!(find_rsdp(&mem(&a.mem)), None);
    // Root table checksum.
    let mut a = acpi(true, std::slice::from_ref(&t));
    a.mem[0x30000 + 40] ^= 1;
    assert_eq!(
        find_in_acpi(&mem(&a.mem), 0xe0000, 1).unwrap_err(),
        LocateError::Acpi {
            address: 0x30000,
            problem: AcpiProblem::RootChecksum
        }
    );
    // Root table signature.
    let mut a = acpi(false, std::slice::from_ref(&t));
    a.mem[0x30000..0x30004].copy_from_slice(b"XSDT");
    assert_eq!(
        find_in_acpi(&mem(&a.mem), 0xe0000, 1).unwrap_err(),
        LocateError::Acpi {
            address: 0x30000,
            problem: AcpiProblem::RootSignature(*b"XSDT")
        }
    );
    // Absurd root length.
    let mut a = acpi(false, std::slice::from_ref(&t));
    a.mem[0x30004..0x30008].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        find_in_acpi(&mem(&a.mem), 0xe0000, 1).unwrap_err(),
        LocateError::Acpi {
            problem: AcpiProblem::Length(u32::MAX),
            ..
        }
    ));
    // An entry pointing outside memory.
    let mut a = acpi(false, &[t]);
    let entry = 0x30000 + 36;
    a.mem[entry..entry + 4].copy_from_slice(&0xfff0_0000u32.to_le_bytes());
    reseal(&mut a.mem[0x30000..0x30000 + 40]);
    assert_eq!(
        find_in_acpi(&mem(&a.mem), 0xe0000, 1).unwrap_err(),
        LocateError::NotFound
    );
}

#[test]
fn rsdp_in_the_ebda_is_found_first() {
    let mut a = acpi(false, &[fixture("nochap")]);
    // Copy the RSDP into an EBDA at 0x9fc00 and point 0x40E at it.
    let rsdp: Vec<u8> = a.mem[0xe0000..0xe0014].to_vec();
    place(&mut a.mem, 0x9fc00, &rsdp);
    a.mem[0x40e..0x410].copy_from_slice(&((0x9fc00u32 >> 4) as u16).to_le_bytes());
    assert_eq!(find_rsdp(&mem(&a.mem)), Some(0x9fc00));
}

#[test]
fn memory_trait_bounds() {
    let m = [1u8, 2, 3, 4];
    let s = SliceMemory {
        base: 0x1000,
        bytes: &m,
    };
    let mut b = [0u8; 2];
    s.read(0x1002, &mut b).unwrap();
    assert_eq!(b, [3, 4]);
    assert!(s.read(0x1003, &mut b).is_err());
    assert!(s.read(0xfff, &mut b).is_err());
    assert!(s.read(u64::MAX, &mut b).is_err());
    let _ = locate::LOW_MEMORY_REGIONS;
}
