//! The invariant CRC (IBA §7.8.1): CRC-32 with the Ethernet polynomial over the packet from the
//! LRH to the end of the payload, with the variant fields (the whole LRH, GRH traffic class,
//! flow label and hop limit, BTH resv8a) taken as all ones. The result is sent least
//! significant byte first.

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

#[cfg(test)]
mod tests {
    use super::*;

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
