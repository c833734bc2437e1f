//! Text key=value pairs (RFC 7143 §6.1) and the value encodings of §6.1 (numbers, booleans,
//! binary values in hex `0x` or base64 `0b`).

use alloc::vec::Vec;

/// Longest key name (RFC 7143 §6.1: "key names ... up to 63 bytes").
pub const MAX_KEY_LEN: usize = 63;
/// Longest value we accept. RFC 7143 §6.1 limits most values to 255 bytes; binary values such
/// as CHAP challenges may be longer (RFC 7143 §12.1.3 sets 1024 bytes of binary for CHAP_C,
/// i.e. 2050 characters in hex), so the limit is that of the largest text data segment.
pub const MAX_VALUE_LEN: usize = 8192;

/// A malformed text data segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextError {
    /// A pair is not terminated by a NUL (RFC 7143 §6.1).
    MissingNul,
    /// A pair has no `=`.
    MissingEquals,
    /// The key is empty, too long, or has a character outside `a-zA-Z0-9.-+@_`.
    BadKey,
    /// The value is longer than [`MAX_VALUE_LEN`].
    ValueTooLong,
    /// The pair is not UTF-8 (RFC 7143 §6.1 requires UTF-8).
    NotUtf8,
}

/// Iterator over the `key=value` pairs of a data segment. Trailing NUL padding (from a
/// target that pads the segment itself) is ignored.
#[derive(Clone, Debug)]
pub struct TextIter<'a> {
    rest: &'a [u8],
}

/// Pairs of a text data segment.
pub fn pairs(data: &[u8]) -> TextIter<'_> {
    TextIter { rest: data }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY_LEN
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'@' | b'_'))
}

impl<'a> Iterator for TextIter<'a> {
    type Item = Result<(&'a str, &'a str), TextError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Skip NULs between or after pairs.
        while let Some((&0, tail)) = self.rest.split_first() {
            self.rest = tail;
        }
        if self.rest.is_empty() {
            return None;
        }
        let Some(end) = self.rest.iter().position(|&b| b == 0) else {
            self.rest = &[];
            return Some(Err(TextError::MissingNul));
        };
        let (pair, tail) = self.rest.split_at(end);
        self.rest = tail;
        Some(parse_pair(pair))
    }
}

fn parse_pair(pair: &[u8]) -> Result<(&str, &str), TextError> {
    let s = core::str::from_utf8(pair).map_err(|_| TextError::NotUtf8)?;
    let (k, v) = s.split_once('=').ok_or(TextError::MissingEquals)?;
    if !valid_key(k) {
        return Err(TextError::BadKey);
    }
    if v.len() > MAX_VALUE_LEN {
        return Err(TextError::ValueTooLong);
    }
    Ok((k, v))
}

/// Append `key=value\0`.
pub fn push_pair(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

/// Parse a numerical value (RFC 7143 §6.1: decimal, `0x` hex, or `0b` base64 big-endian).
pub fn parse_number(v: &str) -> Option<u64> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        if h.is_empty() || h.len() > 16 {
            return None;
        }
        return u64::from_str_radix(h, 16).ok();
    }
    if v.starts_with("0b") || v.starts_with("0B") {
        let mut buf = [0u8; 16];
        let n = decode_binary(v, &mut buf)?;
        if n == 0 || n > 8 {
            return None;
        }
        return Some(buf[..n].iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)));
    }
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Parse a boolean value (`Yes`/`No`).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn b64_val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decode a binary value (`0x...` hex or `0b...` base64, RFC 7143 §6.1) into `out`; returns
/// the number of bytes, or `None` if malformed or longer than `out`.
pub fn decode_binary(v: &str, out: &mut [u8]) -> Option<usize> {
    let bytes = v.as_bytes();
    if bytes.len() < 3 || bytes[0] != b'0' {
        return None;
    }
    let body = &bytes[2..];
    match bytes[1] {
        b'x' | b'X' => {
            // An odd number of digits has an implied leading zero.
            let odd = body.len() % 2;
            let n = body.len().div_ceil(2);
            if n > out.len() {
                return None;
            }
            let mut idx = 0;
            let mut i = 0;
            if odd == 1 {
                out[0] = hex_val(body[0])?;
                idx = 1;
                i = 1;
            }
            while i + 1 < body.len() + 1 && i < body.len() {
                out[idx] = (hex_val(body[i])? << 4) | hex_val(body[i + 1])?;
                idx += 1;
                i += 2;
            }
            Some(idx)
        }
        b'b' | b'B' => {
            if body.len() % 4 != 0 {
                return None;
            }
            let mut idx = 0;
            for (ci, quad) in body.chunks_exact(4).enumerate() {
                let last = ci + 1 == body.len() / 4;
                let pads = quad.iter().rev().take_while(|&&c| c == b'=').count();
                if pads > 2 || (pads > 0 && !last) {
                    return None;
                }
                let mut acc: u32 = 0;
                for &c in &quad[..4 - pads] {
                    acc = (acc << 6) | u32::from(b64_val(c)?);
                }
                acc <<= 6 * pads as u32;
                let produced = 3 - pads;
                if idx + produced > out.len() {
                    return None;
                }
                let be = acc.to_be_bytes();
                out[idx..idx + produced].copy_from_slice(&be[1..1 + produced]);
                idx += produced;
            }
            Some(idx)
        }
        _ => None,
    }
}

/// Append `0x` and lower-case hex of `data`.
pub fn push_hex(out: &mut Vec<u8>, data: &[u8]) {
    const D: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"0x");
    for &b in data {
        out.push(D[usize::from(b >> 4)]);
        out.push(D[usize::from(b & 15)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn parses_pairs_strictly() {
        let seg = b"HeaderDigest=None\0MaxRecvDataSegmentLength=65536\0\0\0";
        let got: Vec<_> = pairs(seg).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            got,
            vec![
                ("HeaderDigest", "None"),
                ("MaxRecvDataSegmentLength", "65536")
            ]
        );
        assert_eq!(pairs(b"A=1").next(), Some(Err(TextError::MissingNul)));
        assert_eq!(pairs(b"A1\0").next(), Some(Err(TextError::MissingEquals)));
        assert_eq!(pairs(b"A B=1\0").next(), Some(Err(TextError::BadKey)));
        assert_eq!(pairs(b"=1\0").next(), Some(Err(TextError::BadKey)));
        assert_eq!(pairs(b"A=\xff\0").next(), Some(Err(TextError::NotUtf8)));
        // Values may contain '='.
        assert_eq!(pairs(b"X=a=b\0").next(), Some(Ok(("X", "a=b"))));
    }

    #[test]
    fn numbers_and_binary() {
        assert_eq!(parse_number("262144"), Some(262_144));
        assert_eq!(parse_number("0x40000"), Some(262_144));
        assert_eq!(parse_number("0bBAAA"), Some(0x04_0000));
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("99999999999999999999999"), None);
        let mut b = [0u8; 8];
        assert_eq!(decode_binary("0x0aFf", &mut b), Some(2));
        assert_eq!(&b[..2], &[0x0a, 0xff]);
        assert_eq!(decode_binary("0xabc", &mut b), Some(2));
        assert_eq!(&b[..2], &[0x0a, 0xbc]);
        assert_eq!(decode_binary("0bAQID", &mut b), Some(3));
        assert_eq!(&b[..3], &[1, 2, 3]);
        assert_eq!(decode_binary("0bAQI=", &mut b), Some(2));
        assert_eq!(decode_binary("0bAQ==", &mut b), Some(1));
        assert_eq!(decode_binary("0bA===", &mut b), None);
        assert_eq!(decode_binary("0xzz", &mut b), None);
        assert_eq!(decode_binary("0x112233445566778899", &mut b), None);
        let mut out = vec![];
        push_hex(&mut out, &[0xde, 0xad]);
        assert_eq!(out, b"0xdead");
    }
}
