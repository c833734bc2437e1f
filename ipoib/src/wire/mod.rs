//! Wire formats: parse and emit only, no state.
//!
//! - [`ipoib`]: the RFC 4391 encapsulation header, 20-byte link addresses, the broadcast group;
//! - [`arp`]: ARP over IPoIB (hardware type 32, 20-byte addresses);
//! - [`dhcp`]: DHCPv4 messages and the options a boot client needs, with the RFC 4390 fields.

pub mod arp;
pub mod dhcp;
pub mod ipoib;

/// Why bytes from the wire were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the fixed part.
    Truncated,
    /// A field holds a value this layer does not accept; the name says which.
    Malformed(&'static str),
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated"),
            WireError::Malformed(what) => write!(f, "malformed {what}"),
        }
    }
}
