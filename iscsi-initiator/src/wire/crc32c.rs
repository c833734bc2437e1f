//! CRC32C (Castagnoli) for iSCSI header and data digests (RFC 7143 §11.1, RFC 3720 Appendix B.4).
//!
//! The portable path is table-driven (slice-by-8, tables built at compile time): integer only,
//! usable in the kernel and the ROM. With the `std` feature the host uses the CPU's CRC32
//! instruction through the `crc32c` crate when the CPU has it; both give identical results
//! (tested below).

/// The reflected Castagnoli polynomial 0x1EDC6F41.
const POLY: u32 = 0x82F6_3B78;

const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

/// Continue a CRC32C over `data` with the portable table-driven code. `crc` is a previous
/// result (0 to start).
pub fn update_portable(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let lo = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]) ^ c;
        let hi = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
        c = TABLES[7][(lo & 0xff) as usize]
            ^ TABLES[6][((lo >> 8) & 0xff) as usize]
            ^ TABLES[5][((lo >> 16) & 0xff) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][(hi & 0xff) as usize]
            ^ TABLES[2][((hi >> 8) & 0xff) as usize]
            ^ TABLES[1][((hi >> 16) & 0xff) as usize]
            ^ TABLES[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        c = (c >> 8) ^ TABLES[0][((c ^ u32::from(b)) & 0xff) as usize];
    }
    !c
}

/// Continue a CRC32C over `data` with the fastest implementation available.
#[inline]
pub fn update(crc: u32, data: &[u8]) -> u32 {
    #[cfg(feature = "std")]
    {
        // The crate picks the SSE 4.2 / ARMv8 CRC instruction at run time, else software.
        crc32c::crc32c_append(crc, data)
    }
    #[cfg(not(feature = "std"))]
    {
        update_portable(crc, data)
    }
}

/// CRC32C of `data`.
pub fn checksum(data: &[u8]) -> u32 {
    update(0, data)
}

/// The 4 digest bytes as they appear on the wire. RFC 3720 Appendix B.4 lists the digest of
/// 32 zero bytes as `aa 36 91 8a`: the CRC's least significant byte goes first.
pub const fn to_wire(crc: u32) -> [u8; 4] {
    crc.to_le_bytes()
}

/// Read a digest from its wire bytes.
pub const fn from_wire(bytes: [u8; 4]) -> u32 {
    u32::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3720 Appendix B.4, as wire bytes.
    fn vectors() -> [([u8; 48], usize, [u8; 4]); 5] {
        let mut zeros = [0u8; 48];
        zeros[..32].fill(0);
        let mut ones = [0u8; 48];
        ones[..32].fill(0xff);
        let mut inc = [0u8; 48];
        let mut dec = [0u8; 48];
        for i in 0..32 {
            inc[i] = i as u8;
            dec[i] = 31 - i as u8;
        }
        let read_cmd: [u8; 48] = [
            0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14,
            0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        [
            (zeros, 32, [0xaa, 0x36, 0x91, 0x8a]),
            (ones, 32, [0x43, 0xab, 0xa8, 0x62]),
            (inc, 32, [0x4e, 0x79, 0xdd, 0x46]),
            (dec, 32, [0x5c, 0xdb, 0x3f, 0x11]),
            (read_cmd, 48, [0x56, 0x3a, 0x96, 0xd9]),
        ]
    }

    #[test]
    fn rfc3720_vectors_portable_and_fast() {
        for (buf, len, want) in vectors() {
            assert_eq!(to_wire(update_portable(0, &buf[..len])), want);
            assert_eq!(to_wire(checksum(&buf[..len])), want);
        }
    }

    #[test]
    fn incremental_equals_one_shot_and_paths_agree() {
        // A deterministic pseudo-random buffer (xorshift), every length and split.
        let mut x: u32 = 0x1234_5678;
        let mut buf = [0u8; 300];
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        for len in 0..buf.len() {
            let whole = update_portable(0, &buf[..len]);
            assert_eq!(checksum(&buf[..len]), whole, "len {len}");
            let split = len / 3;
            assert_eq!(
                update(update_portable(0, &buf[..split]), &buf[split..len]),
                whole
            );
        }
        assert_eq!(from_wire(to_wire(0xdead_beef)), 0xdead_beef);
    }
}
