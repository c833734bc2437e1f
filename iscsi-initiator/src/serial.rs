//! Serial-number arithmetic for CmdSN, StatSN, ExpCmdSN, MaxCmdSN, DataSN and R2TSN.
//!
//! RFC 7143 §4.2.2.1: "Sequence numbers are compared using serial number arithmetic as defined
//! in RFC 1982, with SERIAL_BITS = 32."

/// A 32-bit sequence number compared by RFC 1982 rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SerialNumber(pub u32);

impl SerialNumber {
    /// The number `n` steps later (wrapping).
    #[must_use]
    pub const fn add(self, n: u32) -> Self {
        Self(self.0.wrapping_add(n))
    }

    /// The next number.
    #[must_use]
    pub const fn next(self) -> Self {
        self.add(1)
    }

    /// Signed distance from `other` to `self`: positive when `self` is later. Undefined (per
    /// RFC 1982) when the two are exactly 2^31 apart; this returns `i32::MIN` then, which every
    /// comparison below treats as "neither earlier nor later".
    pub const fn distance_from(self, other: SerialNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// RFC 1982 §3.2 "less than".
    pub const fn lt(self, other: SerialNumber) -> bool {
        let d = other.distance_from(self);
        d > 0
    }

    /// RFC 1982 "greater than".
    pub const fn gt(self, other: SerialNumber) -> bool {
        other.lt(self)
    }

    /// Less than or equal.
    pub const fn le(self, other: SerialNumber) -> bool {
        self.0 == other.0 || self.lt(other)
    }

    /// Greater than or equal.
    pub const fn ge(self, other: SerialNumber) -> bool {
        self.0 == other.0 || self.gt(other)
    }
}

#[cfg(test)]
mod tests {
    use super::SerialNumber as S;

    #[test]
    fn wraps_around() {
        assert!(S(0xffff_fff0).lt(S(5)));
        assert!(S(5).gt(S(0xffff_fff0)));
        assert!(S(1).lt(S(2)));
        assert!(!S(2).lt(S(2)));
        assert!(S(2).le(S(2)));
        assert_eq!(S(u32::MAX).next(), S(0));
        // Exactly 2^31 apart: neither is less than the other (RFC 1982 §3.2).
        assert!(!S(0).lt(S(0x8000_0000)));
        assert!(!S(0x8000_0000).lt(S(0)));
        assert_eq!(S(10).distance_from(S(7)), 3);
        assert_eq!(S(7).distance_from(S(10)), -3);
    }
}
