//! The image's monotonic clock: the CPU's time-stamp counter, calibrated once against the
//! firmware's Stall (UEFI 2.10 §7.5.2), in nanoseconds since that calibration.

use core::sync::atomic::{AtomicU64, Ordering};

use clock::{Duration, Instant};

use crate::efi;

static ORIGIN: AtomicU64 = AtomicU64::new(0);
/// Counter ticks per millisecond.
static PER_MS: AtomicU64 = AtomicU64::new(0);

fn tsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86-64.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// Measures the counter against a 10 ms stall.
pub fn calibrate() {
    let t0 = tsc();
    efi::stall(10_000);
    let t1 = tsc();
    let per_ms = (t1.wrapping_sub(t0) / 10).max(1);
    PER_MS.store(per_ms, Ordering::Relaxed);
    ORIGIN.store(t0, Ordering::Relaxed);
}

/// Now.
pub fn now() -> Instant {
    let per_ms = u128::from(PER_MS.load(Ordering::Relaxed).max(1));
    let ticks = u128::from(tsc().wrapping_sub(ORIGIN.load(Ordering::Relaxed)));
    Instant::from_nanos(u64::try_from(ticks * 1_000_000 / per_ms).unwrap_or(u64::MAX))
}

/// Busy-waits `d` (through the firmware's Stall).
pub fn delay(d: Duration) {
    let us = usize::try_from(d.as_micros()).unwrap_or(usize::MAX).max(1);
    efi::stall(us);
}

/// The firmware as the portable flow sees it: this clock, and a short stall to wait.
#[derive(Debug, Default)]
pub struct UefiEnv;

impl loader::net::Env for UefiEnv {
    fn now(&self) -> Instant {
        now()
    }

    fn idle(&mut self, max: Duration) {
        delay(max.min(Duration::from_micros(50)));
    }
}
