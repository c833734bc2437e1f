//! Access to memory the module hands to a KPI (its strings, structures and buffers).
//!
//! The module runs in this process, so its pointers are ordinary addresses. These helpers are
//! `unsafe`: the caller vouches that the KPI's contract makes the address valid (a
//! NUL-terminated string, a `struct sysctl_req`, ...), as the kernel trusts its callers. A bad
//! pointer faults here exactly where the kernel would fault, and the fault handler reports it.

/// The NUL-terminated string at `addr`, without the NUL (empty for NULL).
///
/// # Safety
/// `addr` is NULL or points to a NUL-terminated string that stays valid during the call.
pub unsafe fn cstr(addr: u64) -> Vec<u8> {
    if addr == 0 {
        return Vec::new();
    }
    // SAFETY: per the contract, a NUL-terminated string starts at addr.
    unsafe { std::ffi::CStr::from_ptr(addr as *const std::ffi::c_char) }
        .to_bytes()
        .to_vec()
}

/// [`cstr`], lossily as UTF-8.
///
/// # Safety
/// As for [`cstr`].
pub unsafe fn string(addr: u64) -> String {
    // SAFETY: forwarded contract.
    String::from_utf8_lossy(&unsafe { cstr(addr) }).into_owned()
}

/// Reads a `T` at `addr` (any alignment).
///
/// # Safety
/// `addr` points to `size_of::<T>()` readable bytes holding a valid `T`.
pub unsafe fn read<T: Copy>(addr: u64) -> T {
    // SAFETY: forwarded contract.
    unsafe { (addr as *const T).read_unaligned() }
}

/// Writes a `T` at `addr` (any alignment).
///
/// # Safety
/// `addr` points to `size_of::<T>()` writable bytes that nothing else accesses meanwhile.
pub unsafe fn write<T: Copy>(addr: u64, v: T) {
    // SAFETY: forwarded contract.
    unsafe { (addr as *mut T).write_unaligned(v) }
}

/// Copies `len` bytes from `addr`.
///
/// # Safety
/// `addr` points to `len` readable bytes (any address if `len` is 0).
pub unsafe fn bytes(addr: u64, len: usize) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    // SAFETY: forwarded contract.
    unsafe { std::slice::from_raw_parts(addr as *const u8, len) }.to_vec()
}

/// Copies `data` to `addr`.
///
/// # Safety
/// `addr` points to `data.len()` writable bytes not overlapping `data`.
pub unsafe fn write_bytes(addr: u64, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) }
}
