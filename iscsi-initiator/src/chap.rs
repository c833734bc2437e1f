//! CHAP for iSCSI (RFC 7143 §12.1.3, RFC 1994): the response is
//! `H(CHAP_I || secret || CHAP_C)` with the hash named by CHAP_A. Algorithm numbers follow
//! the IANA PPP authentication-algorithm registry, as open-iscsi and LIO use them:
//! 5 = MD5, 6 = SHA-1, 7 = SHA-256, 8 = SHA3-256.
//!
//! Secrets live in [`Secret`], which zeroes itself on drop and never prints its contents.

use md5::Md5;
use sha1::Sha1;
use sha2::digest::Digest;
use sha2::Sha256;
use sha3::Sha3_256;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Longest digest we produce (SHA-256, SHA3-256).
pub const MAX_DIGEST_LEN: usize = 32;
/// Longest challenge we accept from a target (RFC 7143 §12.1.3: 1024 bytes).
pub const MAX_CHALLENGE_LEN: usize = 1024;
/// Length of the challenge we send for mutual CHAP.
pub const OUR_CHALLENGE_LEN: usize = 32;

/// A CHAP secret: zeroed on drop, never printed (the project's one secret type).
pub use secret::Secret;

/// A CHAP hash algorithm (CHAP_A).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChapAlgorithm {
    /// 5: MD5 (required by RFC 7143).
    Md5,
    /// 6: SHA-1.
    Sha1,
    /// 7: SHA-256.
    Sha256,
    /// 8: SHA3-256.
    Sha3_256,
}

impl ChapAlgorithm {
    /// Our offer, strongest first: the target picks the first it supports (RFC 7143 §6.2.1).
    pub const OFFER: &'static str = "8,7,6,5";
    /// The fallback offer for targets that fail on algorithm numbers they do not know (tgt
    /// answers `7` with an initiator error): MD5 only, which RFC 7143 §12.1.3 requires.
    pub const OFFER_MD5: &'static str = "5";

    /// From the CHAP_A number.
    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            5 => Some(Self::Md5),
            6 => Some(Self::Sha1),
            7 => Some(Self::Sha256),
            8 => Some(Self::Sha3_256),
            _ => None,
        }
    }

    /// The CHAP_A number.
    pub const fn code(self) -> u8 {
        match self {
            Self::Md5 => 5,
            Self::Sha1 => 6,
            Self::Sha256 => 7,
            Self::Sha3_256 => 8,
        }
    }

    /// Digest length in bytes.
    pub const fn digest_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 | Self::Sha3_256 => 32,
        }
    }

    /// `H(id || secret || challenge)` into `out`; returns the digest length.
    pub fn response(
        self,
        id: u8,
        secret: &Secret,
        challenge: &[u8],
        out: &mut [u8; MAX_DIGEST_LEN],
    ) -> usize {
        fn run<D: Digest>(id: u8, secret: &[u8], challenge: &[u8], out: &mut [u8]) {
            let mut h = D::new();
            h.update([id]);
            h.update(secret);
            h.update(challenge);
            let mut r = h.finalize();
            out[..r.len()].copy_from_slice(&r);
            r.as_mut_slice().zeroize();
        }
        let n = self.digest_len();
        let s = secret.expose();
        match self {
            Self::Md5 => run::<Md5>(id, s, challenge, &mut out[..n]),
            Self::Sha1 => run::<Sha1>(id, s, challenge, &mut out[..n]),
            Self::Sha256 => run::<Sha256>(id, s, challenge, &mut out[..n]),
            Self::Sha3_256 => run::<Sha3_256>(id, s, challenge, &mut out[..n]),
        }
        n
    }
}

/// Constant-time equality of two responses (lengths are public).
pub fn responses_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Hash helper used to derive per-host identifiers (the ISID): SHA-256 of the parts.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn known_answers() {
        // MD5("") style check via RFC 1321: MD5 of "abc" with id 'a', secret "b", challenge "c".
        let mut out = [0u8; 32];
        let n = ChapAlgorithm::Md5.response(b'a', &Secret::from_slice(b"b"), b"c", &mut out);
        assert_eq!(&out[..n], &hex("900150983cd24fb0d6963f7d28e17f72")[..]);
        let n = ChapAlgorithm::Sha1.response(b'a', &Secret::from_slice(b"b"), b"c", &mut out);
        assert_eq!(
            &out[..n],
            &hex("a9993e364706816aba3e25717850c26c9cd0d89d")[..]
        );
        let n = ChapAlgorithm::Sha256.response(b'a', &Secret::from_slice(b"b"), b"c", &mut out);
        assert_eq!(
            &out[..n],
            &hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")[..]
        );
        let n = ChapAlgorithm::Sha3_256.response(b'a', &Secret::from_slice(b"b"), b"c", &mut out);
        assert_eq!(
            &out[..n],
            &hex("3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532")[..]
        );
        assert!(responses_equal(b"abc", b"abc"));
        assert!(!responses_equal(b"abc", b"abd"));
        assert!(!responses_equal(b"abc", b"ab"));
        assert_eq!(
            alloc::format!("{:?}", Secret::from_slice(b"hunter2")),
            "Secret(<redacted>)"
        );
        assert_eq!(ChapAlgorithm::from_code(7), Some(ChapAlgorithm::Sha256));
        assert_eq!(ChapAlgorithm::from_code(4), None);
    }
}
