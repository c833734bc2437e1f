//! The packet CRCs.
//!
//! The invariant CRC (IBA §7.8.1): CRC-32 with the Ethernet polynomial over the packet from the
//! LRH to the end of the payload, with the variant fields (the whole LRH, GRH traffic class,
//! flow label and hop limit, BTH resv8a) taken as all ones. The result is sent least
//! significant byte first.
//!
//! The variant CRC (IBA §7.8.2): a 16-bit CRC with the polynomial x^16 + x^12 + x^3 + x + 1
//! (0x100B) over the whole packet as it is on the link, LRH through ICRC, nothing masked,
//! starting from all ones and complemented at the end — the same conventions as the ICRC, with
//! the bits of each byte taken least significant first (the reflected form, polynomial 0xD008).
//! Assumed here, as for the ICRC, and not checked against hardware: the VCRC goes on the wire
//! least significant byte first. Each link recomputes it; a packet handed between the
//! simulator's endpoints carries none, and only the capture writer appends it.

const POLY_REFLECTED: u32 = 0xedb8_8320;

const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                POLY_REFLECTED ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

fn update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// Plain CRC-32 (IEEE 802.3).
pub fn crc32(bytes: &[u8]) -> u32 {
    !update(!0, bytes)
}

/// The ICRC of `packet` (LRH through pad bytes, ICRC excluded). Input shorter than an LRH
/// yields the CRC of what is there; it never panics.
pub fn icrc(packet: &[u8]) -> u32 {
    let mut crc = !0u32;
    let lrh_len = packet.len().min(8);
    crc = update(crc, &[0xff; 8][..lrh_len]);
    let mut rest = &packet[lrh_len..];
    let global = packet.len() >= 2 && packet[1] & 0x3 == super::LNH_IBA_GLOBAL;
    if global && rest.len() >= 40 {
        // IPVer stays; TClass and FlowLabel become ones; PayLen and NxtHdr stay; HopLmt ones.
        let mut g = [0u8; 40];
        g.copy_from_slice(&rest[..40]);
        g[0] |= 0x0f;
        g[1] = 0xff;
        g[2] = 0xff;
        g[3] = 0xff;
        g[7] = 0xff;
        crc = update(crc, &g);
        rest = &rest[40..];
    }
    if rest.len() >= 12 {
        let mut b = [0u8; 12];
        b.copy_from_slice(&rest[..12]);
        b[4] = 0xff;
        crc = update(crc, &b);
        rest = &rest[12..];
    }
    !update(crc, rest)
}

/// Bytes of VCRC after the ICRC.
pub const VCRC_LEN: usize = 2;

/// x^16 + x^12 + x^3 + x + 1 (0x100B) with its bits reversed, for the LSB-first table.
const VCRC_POLY_REFLECTED: u16 = 0xd008;

const VCRC_TABLE: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                VCRC_POLY_REFLECTED ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// The VCRC of `packet`: every byte from the LRH through the ICRC. Append it with
/// `to_le_bytes()`. Any input is accepted; it never panics.
pub fn vcrc(packet: &[u8]) -> u16 {
    let mut crc = 0xffffu16;
    for &b in packet {
        crc = VCRC_TABLE[usize::from((crc ^ u16::from(b)) & 0xff)] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VCRC straight from IBA §7.8.2's description, one bit at a time, in the
    /// non-reflected form: a 16-bit shift register with feedback polynomial 0x100B, preset to
    /// ones; the bits of each byte enter least significant first (so each byte is
    /// bit-reversed into the MSB-first register); the remainder is complemented and read back
    /// in the same bit order (bit-reversed again).
    fn vcrc_bitwise(bytes: &[u8]) -> u16 {
        let mut reg = 0xffffu16;
        for &b in bytes {
            let b = b.reverse_bits();
            for i in (0..8).rev() {
                let feedback = ((reg >> 15) ^ u16::from(b >> i)) & 1;
                reg <<= 1;
                if feedback != 0 {
                    reg ^= 0x100b;
                }
            }
        }
        (!reg).reverse_bits()
    }

    #[test]
    fn vcrc_matches_the_polynomial_definition() {
        assert_eq!(vcrc_bitwise(b"123456789"), 0x0a3d);
        assert_eq!(vcrc(b"123456789"), 0x0a3d);
        let mut data = [0u8; 300];
        let mut x = 0x1234_5678u32;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        for len in 0..data.len() {
            assert_eq!(
                vcrc(&data[..len]),
                vcrc_bitwise(&data[..len]),
                "length {len}"
            );
        }
        assert_eq!(vcrc(&[]), 0);
    }

    #[test]
    fn vcrc_sent_lsb_first_leaves_the_constant_residue() {
        // With the VCRC appended least significant byte first, the CRC over packet + VCRC is
        // the same for every packet: a receiver checks with one compare.
        for p in [&b"hello infiniband"[..], &[0u8; 40], &[0xffu8; 7]] {
            let mut whole = p.to_vec();
            whole.extend_from_slice(&vcrc(p).to_le_bytes());
            assert_eq!(vcrc(&whole), 0xaa90);
        }
        // Any change of a byte, the ICRC included, changes the VCRC.
        let mut p = [0u8; 40];
        let a = vcrc(&p);
        p[39] = 1;
        assert_ne!(vcrc(&p), a);
    }

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn icrc_ignores_variant_fields_only() {
        let mut p = [0u8; 40];
        p[1] = 0x02;
        let a = icrc(&p);
        p[0] = 0xf0; // VL
        p[12] = 0xaa; // BTH resv8a
        assert_eq!(icrc(&p), a);
        p[20] = 1; // DETH
        assert_ne!(icrc(&p), a);
        assert_eq!(icrc(&[]), icrc(&[]));
    }
}
