//! ACPI tables for tests that build firmware memory (ACPI 6.5 §5.2.6, the system description
//! table header).

/// Sets the checksum byte at `at` so that all bytes of `table` sum to zero (mod 256).
pub fn seal(table: &mut [u8], at: usize) {
    table[at] = 0;
    let sum = table.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    table[at] = 0u8.wrapping_sub(sum);
}

/// A table with signature `sig`: the 36-byte header (revision 1, OEM "ISBOOT"/"TESTTABL",
/// length and checksum filled in), then `body`.
pub fn table(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 36];
    t[..4].copy_from_slice(sig);
    t[8] = 1;
    t[10..16].copy_from_slice(b"ISBOOT");
    t[16..24].copy_from_slice(b"TESTTABL");
    t.extend_from_slice(body);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    seal(&mut t, 9);
    t
}
