//! Files preloaded by loader(8) (`X_load="YES"`, `X_type="..."`, `X_name="..."`).

use crate::ffi;
use core::ffi::CStr;

/// The data of the first file preloaded with type `ty`, if any.
///
/// The loader's copy stays mapped for the life of the system (nothing in the kernel deletes an
/// arbitrary type's record), so the slice is `'static`. Nothing writes to it.
pub fn preloaded_file(ty: &CStr) -> Option<&'static [u8]> {
    // SAFETY: `ty` is NUL-terminated; the preload metadata is set up before any module loads.
    let md = unsafe { ffi::preload_search_by_type(ty.as_ptr()) };
    if md.is_null() {
        return None;
    }
    // SAFETY: `md` is a record returned by preload_search_by_type.
    let (addr, size) = unsafe { (ffi::preload_fetch_addr(md), ffi::preload_fetch_size(md)) };
    if addr.is_null() {
        return None;
    }
    // SAFETY: the loader placed `size` bytes at `addr` (a KVA relocated by the kernel at boot),
    // mapped and unmodified for the life of the system (see above).
    Some(unsafe { core::slice::from_raw_parts(addr.cast::<u8>().cast_const(), size) })
}
