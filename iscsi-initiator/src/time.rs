//! Time as the environment gives it: the project's one time type (the `clock` crate), kept
//! under this path for the crate's users.
//!
//! The core never reads a clock; the ROM loop, the kernel thread and tests pass `now` in. An
//! [`Instant`] is nanoseconds on the caller's monotonic clock since an origin it chose; a
//! [`Duration`] is `core::time::Duration`, whose whole milliseconds [`DurationExt`] gives as a
//! saturating `u64`. Instant arithmetic saturates.

pub use clock::{earliest, Duration, DurationExt, Instant};
