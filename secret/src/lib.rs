//! A secret — a CHAP password from the iBFT, from DHCP, from the command line — held so that
//! it cannot leak by accident: its bytes are zeroed when it is dropped (through `zeroize`, so
//! the compiler cannot elide the wipe), and no formatting prints them. Code that needs the bytes
//! (the CHAP hash) calls [`Secret::expose`], which is easy to search for.
//!
//! One type for the whole project, so a secret moves from the iBFT to the login without being
//! copied into something less careful.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;
use zeroize::Zeroizing;

/// Secret bytes: zeroed on drop, printed as `<redacted>`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Takes ownership of the bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies the bytes.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// The secret bytes, for the protocol that needs them. Never log what this returns.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::from_slice(s.as_bytes())
    }
}

impl From<&[u8]> for Secret {
    fn from(b: &[u8]) -> Self {
        Self::from_slice(b)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn never_printed() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(Secret(<redacted>))");
        assert_eq!(s.expose(), b"hunter2");
        assert_eq!(s.len(), 7);
        assert!(Secret::default().is_empty());
        assert_eq!(Secret::from(&b"ab"[..]), Secret::new(b"ab".to_vec()));
    }
}
