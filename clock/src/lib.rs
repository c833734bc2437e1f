//! Time as the environment gives it, one type for every portable crate.
//!
//! The portable code (the HCA driver, IPoIB, DHCP, the iSCSI session) never reads a clock: the
//! environment that runs it — the boot ROM's timer, the kernel's uptime, the simulator's stepped
//! clock, `std::time::Instant` on a host — reads its own and passes the time in. What it passes
//! is an [`Instant`]: nanoseconds on a monotonic clock since an origin the environment chose.
//! Spans are [`core::time::Duration`], re-exported as [`Duration`].
//!
//! Everything here saturates instead of overflowing or panicking: an [`Instant`] holds up to
//! `u64::MAX` nanoseconds (some 584 years of uptime), and a deadline past that is the end of
//! time. Conversions between [`Duration`] and integer counts ([`DurationExt`]) use the seconds
//! and sub-second parts, never 128-bit arithmetic, so kernel and ROM targets need no `u128`
//! division routines. No floating point.
//!
//! ```
//! use clock::{earliest, Duration, DurationExt, Instant};
//!
//! let now = Instant::from_millis(1_500);
//! let deadline = now + Duration::from_secs(4);
//! assert_eq!(deadline.total_millis(), 5_500);
//! assert_eq!(deadline - now, Duration::from_secs(4));
//! assert_eq!(now - deadline, Duration::ZERO); // saturates
//! assert_eq!((deadline - now).total_millis(), 4_000);
//! assert_eq!(earliest(Some(deadline), None), Some(deadline));
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use core::ops::{Add, AddAssign, Sub, SubAssign};

pub use core::time::Duration;

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;
const MILLIS_PER_SEC: u64 = 1_000;
const MICROS_PER_SEC: u64 = 1_000_000;

/// A point on a monotonic clock the environment owns, in nanoseconds since an origin it chose.
///
/// Instants from different clocks (two machines, two runs) do not compare meaningfully; the
/// type cannot tell them apart, so keep each clock's instants to itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant { nanos: 0 };

    /// The last representable instant: "never" for a deadline that does not exist.
    pub const MAX: Instant = Instant { nanos: u64::MAX };

    /// `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self { nanos }
    }

    /// `micros` microseconds after the origin (saturating).
    pub const fn from_micros(micros: u64) -> Self {
        Self {
            nanos: micros.saturating_mul(NANOS_PER_MICRO),
        }
    }

    /// `millis` milliseconds after the origin (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Self {
            nanos: millis.saturating_mul(NANOS_PER_MILLI),
        }
    }

    /// `secs` seconds after the origin (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Self {
            nanos: secs.saturating_mul(NANOS_PER_SEC),
        }
    }

    /// Whole nanoseconds since the origin.
    pub const fn total_nanos(self) -> u64 {
        self.nanos
    }

    /// Whole microseconds since the origin (rounded down).
    pub const fn total_micros(self) -> u64 {
        self.nanos / NANOS_PER_MICRO
    }

    /// Whole milliseconds since the origin (rounded down).
    pub const fn total_millis(self) -> u64 {
        self.nanos / NANOS_PER_MILLI
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }

    /// `self + d`, or `None` past [`Instant::MAX`].
    pub const fn checked_add(self, d: Duration) -> Option<Instant> {
        let Some(d) = checked_nanos(d) else {
            return None;
        };
        match self.nanos.checked_add(d) {
            Some(nanos) => Some(Instant { nanos }),
            None => None,
        }
    }

    /// `self - d`, or `None` before the origin.
    pub const fn checked_sub(self, d: Duration) -> Option<Instant> {
        let Some(d) = checked_nanos(d) else {
            return None;
        };
        match self.nanos.checked_sub(d) {
            Some(nanos) => Some(Instant { nanos }),
            None => None,
        }
    }

    /// `self + d`, at most [`Instant::MAX`].
    pub const fn saturating_add(self, d: Duration) -> Instant {
        Instant {
            nanos: self.nanos.saturating_add(saturating_nanos(d)),
        }
    }

    /// `self - d`, at least [`Instant::ZERO`].
    pub const fn saturating_sub(self, d: Duration) -> Instant {
        Instant {
            nanos: self.nanos.saturating_sub(saturating_nanos(d)),
        }
    }
}

/// `self + d`, saturating at [`Instant::MAX`].
impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

/// `self += d`, saturating at [`Instant::MAX`].
impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

/// `self - d`, saturating at [`Instant::ZERO`].
impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        self.saturating_sub(d)
    }
}

/// `self -= d`, saturating at [`Instant::ZERO`].
impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, d: Duration) {
        *self = self.saturating_sub(d);
    }
}

/// The time from `earlier` to `self`, zero if `earlier` is later
/// ([`Instant::saturating_since`]).
impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

/// The earlier of two optional deadlines (`None` is "no deadline", not "now").
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y < x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for core::time::Duration {}
}

/// Integer counts of a [`Duration`] as `u64`, saturating at `u64::MAX`, computed from
/// [`Duration::as_secs`] and the sub-second part (no 128-bit arithmetic, unlike
/// [`Duration::as_nanos`] and [`Duration::as_millis`]).
pub trait DurationExt: sealed::Sealed {
    /// Whole nanoseconds, at most `u64::MAX` (about 584 years).
    fn total_nanos(self) -> u64;
    /// Whole microseconds (rounded down), at most `u64::MAX`.
    fn total_micros(self) -> u64;
    /// Whole milliseconds (rounded down), at most `u64::MAX`.
    fn total_millis(self) -> u64;
}

impl DurationExt for Duration {
    fn total_nanos(self) -> u64 {
        saturating_nanos(self)
    }

    fn total_micros(self) -> u64 {
        match self.as_secs().checked_mul(MICROS_PER_SEC) {
            Some(us) => us.saturating_add(self.subsec_micros() as u64),
            None => u64::MAX,
        }
    }

    fn total_millis(self) -> u64 {
        match self.as_secs().checked_mul(MILLIS_PER_SEC) {
            Some(ms) => ms.saturating_add(self.subsec_millis() as u64),
            None => u64::MAX,
        }
    }
}

/// `d` in nanoseconds, `None` past `u64::MAX`.
const fn checked_nanos(d: Duration) -> Option<u64> {
    match d.as_secs().checked_mul(NANOS_PER_SEC) {
        Some(ns) => ns.checked_add(d.subsec_nanos() as u64),
        None => None,
    }
}

/// `d` in nanoseconds, at most `u64::MAX`.
const fn saturating_nanos(d: Duration) -> u64 {
    match checked_nanos(d) {
        Some(ns) => ns,
        None => u64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Instant::from_secs(2).total_nanos(), 2_000_000_000);
        assert_eq!(Instant::from_millis(3).total_nanos(), 3_000_000);
        assert_eq!(Instant::from_micros(5).total_nanos(), 5_000);
        assert_eq!(Instant::from_nanos(7).total_nanos(), 7);
        let t = Instant::from_nanos(1_234_567_891);
        assert_eq!(t.total_micros(), 1_234_567);
        assert_eq!(t.total_millis(), 1_234);
        assert_eq!(Instant::ZERO, Instant::default());
        assert_eq!(Instant::from_millis(1500), Instant::from_micros(1_500_000));
    }

    #[test]
    fn constructors_saturate() {
        assert_eq!(Instant::from_secs(u64::MAX), Instant::MAX);
        assert_eq!(Instant::from_millis(u64::MAX / 2), Instant::MAX);
        assert_eq!(Instant::from_micros(u64::MAX), Instant::MAX);
        // The last millisecond that fits.
        let ms = u64::MAX / 1_000_000;
        assert_eq!(Instant::from_millis(ms).total_millis(), ms);
        assert_eq!(Instant::from_millis(ms + 1), Instant::MAX);
    }

    #[test]
    fn arithmetic_saturates_at_both_ends() {
        let end = Instant::from_nanos(u64::MAX - 1);
        assert_eq!(end + Duration::from_secs(5), Instant::MAX);
        assert_eq!(end + Duration::MAX, Instant::MAX);
        assert_eq!(
            Instant::from_millis(3) - Duration::from_secs(1),
            Instant::ZERO
        );
        assert_eq!(Instant::ZERO - Duration::MAX, Instant::ZERO);
        assert_eq!(
            Instant::from_millis(3) - Instant::from_millis(10),
            Duration::ZERO
        );
        assert_eq!(Instant::ZERO.saturating_since(Instant::MAX), Duration::ZERO);
        assert_eq!(Instant::MAX - Instant::ZERO, Duration::from_nanos(u64::MAX));
        let mut t = end;
        t += Duration::from_nanos(10);
        assert_eq!(t, Instant::MAX);
        t -= Duration::MAX;
        assert_eq!(t, Instant::ZERO);
    }

    #[test]
    fn checked() {
        let t = Instant::from_secs(1);
        assert_eq!(
            t.checked_add(Duration::from_millis(250)),
            Some(Instant::from_millis(1250))
        );
        assert_eq!(Instant::MAX.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(t.checked_add(Duration::MAX), None);
        assert_eq!(Instant::MAX.checked_add(Duration::ZERO), Some(Instant::MAX));
        assert_eq!(
            t.checked_sub(Duration::from_millis(250)),
            Some(Instant::from_millis(750))
        );
        assert_eq!(t.checked_sub(Duration::from_millis(1001)), None);
        assert_eq!(t.checked_sub(Duration::MAX), None);
    }

    #[test]
    fn exact_arithmetic() {
        let t = Instant::from_millis(600);
        assert_eq!(
            t + Duration::from_secs(1800),
            Instant::from_millis(1_800_600)
        );
        assert_eq!((t + Duration::from_micros(1)) - t, Duration::from_micros(1));
        assert_eq!(t - Duration::from_millis(600), Instant::ZERO);
        assert_eq!(
            t.saturating_since(Instant::from_millis(100)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn ordering() {
        let a = Instant::from_nanos(1);
        let b = Instant::from_millis(1);
        assert!(Instant::ZERO < a && a < b && b < Instant::MAX);
        assert_eq!(a.max(b), b);
        assert_eq!(earliest(Some(b), Some(a)), Some(a));
        assert_eq!(earliest(Some(a), Some(b)), Some(a));
        assert_eq!(earliest(None, Some(b)), Some(b));
        assert_eq!(earliest(Some(b), None), Some(b));
        assert_eq!(earliest(None, None), None);
    }

    #[test]
    fn duration_counts() {
        let d = Duration::new(3, 456_789_012);
        assert_eq!(d.total_nanos(), 3_456_789_012);
        assert_eq!(d.total_micros(), 3_456_789);
        assert_eq!(d.total_millis(), 3_456);
        assert_eq!(Duration::ZERO.total_millis(), 0);
        assert_eq!(Duration::from_millis(u64::MAX).total_millis(), u64::MAX);
        assert_eq!(Duration::MAX.total_nanos(), u64::MAX);
        assert_eq!(Duration::MAX.total_micros(), u64::MAX);
        assert_eq!(Duration::MAX.total_millis(), u64::MAX);
        // The boundary of u64 nanoseconds: 18_446_744_073.709_551_615 s.
        let last = Duration::new(18_446_744_073, 709_551_615);
        assert_eq!(last.total_nanos(), u64::MAX);
        assert_eq!((last + Duration::from_nanos(1)).total_nanos(), u64::MAX);
        assert_eq!(
            Duration::new(18_446_744_073, 709_551_614).total_nanos(),
            u64::MAX - 1
        );
        // Agrees with core's u128 counts where those fit.
        for d in [
            d,
            last,
            Duration::from_secs(86_400),
            Duration::from_nanos(999),
        ] {
            assert_eq!(u128::from(d.total_nanos()), d.as_nanos());
            assert_eq!(u128::from(d.total_micros()), d.as_micros());
            assert_eq!(u128::from(d.total_millis()), d.as_millis());
        }
    }
}
