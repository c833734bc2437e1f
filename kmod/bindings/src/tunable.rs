//! Loader tunables and other kernel environment values (kenv), fetched with getenv(9).
//! Sleepable context only (the environment lock is a sleep lock).

use crate::ffi;
use core::ffi::{c_int, CStr};

/// `getenv_int(name)`: the value if the variable is set and parses as an `int`.
pub fn fetch_int(name: &CStr) -> Option<i32> {
    let mut v: c_int = 0;
    // SAFETY: `name` is NUL-terminated; `v` is a valid out-pointer for the call's duration.
    (unsafe { ffi::getenv_int(name.as_ptr(), &mut v) } != 0).then_some(v)
}

/// `getenv_uint(name)`: the value if the variable is set and parses as an `unsigned int`.
pub fn fetch_uint(name: &CStr) -> Option<u32> {
    let mut v: u32 = 0;
    // SAFETY: as in `fetch_int`.
    (unsafe { ffi::getenv_uint(name.as_ptr(), &mut v) } != 0).then_some(v)
}

/// `getenv_quad(name)`: a 64-bit value (accepts `0x` hex), if set and valid.
pub fn fetch_quad(name: &CStr) -> Option<i64> {
    let mut v: i64 = 0;
    // SAFETY: as in `fetch_int`.
    (unsafe { ffi::getenv_quad(name.as_ptr(), &mut v) } != 0).then_some(v)
}

/// `getenv_string(name)` into `buf`: the value's bytes (without the NUL) if the variable is
/// set; a longer value is cut to `buf.len() - 1` bytes.
pub fn fetch_str<'a>(name: &CStr, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let size = c_int::try_from(buf.len()).ok()?;
    if size == 0 {
        return None;
    }
    // SAFETY: `name` is NUL-terminated; `buf` is writable for `size` bytes.
    let found = unsafe { ffi::getenv_string(name.as_ptr(), buf.as_mut_ptr().cast(), size) } != 0;
    if !found {
        return None;
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf.get(..n)
}
