//! The few UEFI services the image uses (UEFI 2.10: §4 system table, §7 boot services, §10
//! device paths, §12 console, §13 file system), over the `r-efi` definitions, and the one
//! protocol `r-efi` lacks: `EFI_ACPI_TABLE_PROTOCOL` (§20.2).
//!
//! The system table and the image handle are kept in statics once, at entry; every other
//! module reaches the firmware through the functions here.

use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use r_efi::efi::{self, Guid, Handle, Status};
use r_efi::protocols::{device_path, file, loaded_image, simple_file_system};

static SYSTEM_TABLE: AtomicPtr<efi::SystemTable> = AtomicPtr::new(null_mut());
static IMAGE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// Keeps the firmware's tables for the rest of the image's life.
pub fn init(image: Handle, st: *mut efi::SystemTable) {
    IMAGE.store(image, Ordering::Release);
    SYSTEM_TABLE.store(st, Ordering::Release);
}

/// This image's handle.
pub fn image() -> Handle {
    IMAGE.load(Ordering::Acquire)
}

fn st() -> Option<&'static efi::SystemTable> {
    let p = SYSTEM_TABLE.load(Ordering::Acquire);
    // SAFETY: the firmware's system table stays valid while boot services run, which is the
    // whole life of this image (it never calls ExitBootServices).
    unsafe { p.as_ref() }
}

/// The boot services.
pub fn bs() -> Option<&'static efi::BootServices> {
    // SAFETY: as for the system table.
    st().and_then(|s| unsafe { s.boot_services.as_ref() })
}

/// Writes a line on the console (ConOut; OVMF mirrors it on the serial port).
pub fn print(s: &str) {
    let Some(t) = st() else { return };
    let out = t.con_out;
    if out.is_null() {
        return;
    }
    let mut buf = [0u16; 128];
    let mut n = 0;
    let flush = |buf: &mut [u16; 128], n: &mut usize| {
        buf[*n] = 0;
        // SAFETY: `out` is the firmware's console; the buffer is NUL-terminated UCS-2.
        unsafe { ((*out).output_string)(out, buf.as_mut_ptr()) };
        *n = 0;
    };
    for c in s.chars().chain("\r\n".chars()) {
        let c = if (c as u32) < 0x10000 {
            c as u16
        } else {
            b'?' as u16
        };
        buf[n] = c;
        n += 1;
        if n == buf.len() - 1 {
            flush(&mut buf, &mut n);
        }
    }
    if n > 0 {
        flush(&mut buf, &mut n);
    }
}

/// A fixed-size line buffer for `write!` without allocating.
pub struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            buf: [0; 512],
            len: 0,
        }
    }

    /// What was written (cut at a character boundary when it overflowed).
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(&self.buf[..self.len]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Stalls for `us` microseconds.
pub fn stall(us: usize) {
    if let Some(b) = bs() {
        // SAFETY: a boot service with no pointers.
        unsafe { (b.stall)(us) };
    }
}

/// Returns to the firmware with `status`: the image exits (never returns).
pub fn exit(status: Status) -> ! {
    if let Some(b) = bs() {
        // SAFETY: Exit from the image's own entry context unloads it and returns to whoever
        // started it (the boot manager).
        unsafe { (b.exit)(image(), status, 0, null_mut()) };
    }
    loop {
        core::hint::spin_loop();
    }
}

/// Every handle with `guid`.
pub fn handles(guid: &Guid) -> Vec<Handle> {
    let Some(b) = bs() else { return Vec::new() };
    let mut n = 0usize;
    let mut buf: *mut Handle = null_mut();
    let mut g = *guid;
    // SAFETY: the firmware fills `n` and `buf` (pool memory we free below).
    let s =
        unsafe { (b.locate_handle_buffer)(efi::BY_PROTOCOL, &mut g, null_mut(), &mut n, &mut buf) };
    if s.is_error() || buf.is_null() {
        return Vec::new();
    }
    // SAFETY: `buf` holds `n` handles.
    let v = unsafe { core::slice::from_raw_parts(buf, n) }.to_vec();
    // SAFETY: `buf` came from the pool.
    unsafe { (b.free_pool)(buf.cast()) };
    v
}

/// The interface `guid` on `handle` (HandleProtocol), or `None`.
pub fn protocol<T>(handle: Handle, guid: &Guid) -> Option<*mut T> {
    let b = bs()?;
    let mut g = *guid;
    let mut p: *mut c_void = null_mut();
    // SAFETY: the firmware writes the interface pointer.
    let s = unsafe { (b.handle_protocol)(handle, &mut g, &mut p) };
    (!s.is_error() && !p.is_null()).then_some(p.cast())
}

/// Opens `guid` on `handle` exclusively for this image: drivers bound to it (the firmware's
/// own network stack on a NIC) are disconnected first.
pub fn open_exclusive<T>(handle: Handle, guid: &Guid) -> Result<*mut T, Status> {
    let b = bs().ok_or(Status::NOT_READY)?;
    let mut g = *guid;
    let mut p: *mut c_void = null_mut();
    // SAFETY: the firmware writes the interface pointer.
    let s = unsafe {
        (b.open_protocol)(
            handle,
            &mut g,
            &mut p,
            image(),
            null_mut(),
            efi::OPEN_PROTOCOL_EXCLUSIVE,
        )
    };
    if s.is_error() || p.is_null() {
        Err(s)
    } else {
        Ok(p.cast())
    }
}

/// A device path node list's bytes, up to and including its end node.
pub fn device_path_bytes(dp: *const device_path::Protocol) -> Vec<u8> {
    let mut out = Vec::new();
    let mut p = dp.cast::<u8>();
    if p.is_null() {
        return out;
    }
    for _ in 0..256 {
        // SAFETY: a device path is a sequence of nodes, each with a 4-byte header giving its
        // length, ending with an end-entire node; at most 256 nodes are walked.
        let (ty, sub, len) = unsafe { (*p, *p.add(1), u16::from_le_bytes([*p.add(2), *p.add(3)])) };
        let len = usize::from(len).max(4);
        // SAFETY: as above: the node is `len` bytes.
        out.extend_from_slice(unsafe { core::slice::from_raw_parts(p, len) });
        if ty == device_path::TYPE_END && sub == device_path::End::SUBTYPE_ENTIRE {
            break;
        }
        // SAFETY: the next node follows.
        p = unsafe { p.add(len) };
    }
    out
}

/// The device path of `handle`.
pub fn device_path_of(handle: Handle) -> Option<Vec<u8>> {
    let dp = protocol::<device_path::Protocol>(handle, &device_path::PROTOCOL_GUID)?;
    Some(device_path_bytes(dp))
}

/// An end-entire node.
pub const END_NODE: [u8; 4] = [
    device_path::TYPE_END,
    device_path::End::SUBTYPE_ENTIRE,
    4,
    0,
];

/// `path` (with its end node) with a file-path node for `file` in place of the end.
pub fn with_file(path: &[u8], file: &str) -> Vec<u8> {
    let body = path.len().saturating_sub(4);
    let mut out = path[..body].to_vec();
    let name: Vec<u16> = file.encode_utf16().chain(core::iter::once(0)).collect();
    let len = 4 + name.len() * 2;
    out.extend_from_slice(&[
        device_path::TYPE_MEDIA,
        device_path::Media::SUBTYPE_FILE_PATH,
        len as u8,
        (len >> 8) as u8,
    ]);
    for c in name {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out.extend_from_slice(&END_NODE);
    out
}

/// Why a file could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileError {
    /// No such file (or no file system where the image came from).
    NotFound,
    /// Longer than asked.
    TooLong,
    /// The firmware failed to read it.
    Read(Status),
}

/// Reads `path` (backslashes) from the file system of the device this image was loaded
/// from, up to `max` bytes.
pub fn read_own_file(path: &str, max: usize) -> Result<Vec<u8>, FileError> {
    let li = protocol::<loaded_image::Protocol>(image(), &loaded_image::PROTOCOL_GUID)
        .ok_or(FileError::NotFound)?;
    // SAFETY: the firmware's loaded-image protocol for this image.
    let dev = unsafe { (*li).device_handle };
    let fs = protocol::<simple_file_system::Protocol>(dev, &simple_file_system::PROTOCOL_GUID)
        .ok_or(FileError::NotFound)?;
    let mut root: *mut file::Protocol = null_mut();
    // SAFETY: the firmware opens the volume's root directory.
    let s = unsafe { ((*fs).open_volume)(fs, &mut root) };
    if s.is_error() || root.is_null() {
        return Err(FileError::Read(s));
    }
    let mut name: Vec<u16> = path.encode_utf16().chain(core::iter::once(0)).collect();
    let mut f: *mut file::Protocol = null_mut();
    // SAFETY: `root` is an open directory; `name` is NUL-terminated UCS-2.
    let s = unsafe { ((*root).open)(root, &mut f, name.as_mut_ptr(), file::MODE_READ, 0) };
    // SAFETY: done with the root directory.
    unsafe { ((*root).close)(root) };
    if s == Status::NOT_FOUND {
        return Err(FileError::NotFound);
    }
    if s.is_error() || f.is_null() {
        return Err(FileError::Read(s));
    }
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let r = loop {
        let mut n = chunk.len();
        // SAFETY: `f` is an open file; the firmware writes at most `n` bytes.
        let s = unsafe { ((*f).read)(f, &mut n, chunk.as_mut_ptr().cast()) };
        if s.is_error() {
            break Err(FileError::Read(s));
        }
        if n == 0 {
            break Ok(());
        }
        out.extend_from_slice(&chunk[..n.min(chunk.len())]);
        if out.len() > max {
            break Err(FileError::TooLong);
        }
    };
    // SAFETY: done with the file.
    unsafe { ((*f).close)(f) };
    r.map(|()| out)
}

/// `EFI_ACPI_TABLE_PROTOCOL` (UEFI 2.10 §20.2).
pub mod acpi_table {
    use super::*;

    /// Its GUID.
    pub const PROTOCOL_GUID: Guid = Guid::from_fields(
        0xffe06bdd,
        0x6107,
        0x46a6,
        0x7b,
        0xb2,
        &[0x5a, 0x9c, 0x7e, 0xc5, 0x27, 0x5c],
    );

    /// Its functions.
    #[repr(C)]
    pub struct Protocol {
        /// InstallAcpiTable.
        pub install_acpi_table:
            unsafe extern "efiapi" fn(*mut Protocol, *const c_void, usize, *mut usize) -> Status,
        /// UninstallAcpiTable.
        pub uninstall_acpi_table: unsafe extern "efiapi" fn(*mut Protocol, usize) -> Status,
    }

    /// Installs `table` (a whole ACPI table with its header); the firmware copies it, fixes
    /// its checksum and links it from the XSDT/RSDT.
    pub fn install(table: &[u8]) -> Result<(), Status> {
        let b = bs().ok_or(Status::NOT_READY)?;
        let mut g = PROTOCOL_GUID;
        let mut p: *mut c_void = null_mut();
        // SAFETY: the firmware writes the interface pointer.
        let s = unsafe { (b.locate_protocol)(&mut g, null_mut(), &mut p) };
        if s.is_error() || p.is_null() {
            return Err(if s.is_error() { s } else { Status::NOT_FOUND });
        }
        let proto: *mut Protocol = p.cast();
        let mut key = 0usize;
        // SAFETY: the table is `table.len()` readable bytes; the firmware copies it.
        let s = unsafe {
            ((*proto).install_acpi_table)(proto, table.as_ptr().cast(), table.len(), &mut key)
        };
        if s.is_error() {
            Err(s)
        } else {
            Ok(())
        }
    }
}

/// Bytes allocated from the pool and not yet freed (for the size report).
pub static POOL_BYTES: AtomicU64 = AtomicU64::new(0);

/// The global allocator: the firmware's pool (8-byte aligned), over-allocated and aligned by
/// hand for larger alignments (the address of the pool block is kept just before the
/// aligned block).
pub struct PoolAlloc;

// SAFETY: every block comes from AllocatePool and goes back through FreePool with the pointer
// AllocatePool returned; alignment is honoured by the header scheme below.
unsafe impl core::alloc::GlobalAlloc for PoolAlloc {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        let Some(b) = bs() else { return null_mut() };
        let align = layout.align().max(8);
        let Some(size) = layout.size().checked_add(align + 8) else {
            return null_mut();
        };
        let mut p: *mut c_void = null_mut();
        // SAFETY: a boot service writing one pointer.
        let s = unsafe { (b.allocate_pool)(efi::LOADER_DATA, size, &mut p) };
        if s.is_error() || p.is_null() {
            return null_mut();
        }
        let base = p as usize;
        let aligned = (base + 8 + align - 1) & !(align - 1);
        // SAFETY: `aligned - 8` is inside the block (aligned >= base + 8) and 8-aligned.
        unsafe { ptr::write((aligned - 8) as *mut usize, base) };
        POOL_BYTES.fetch_add(size as u64, Ordering::Relaxed);
        aligned as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        let Some(b) = bs() else { return };
        // SAFETY: `alloc` stored the pool block's address just before `ptr`.
        let base = unsafe { ptr::read((ptr as usize - 8) as *const usize) };
        let size = layout.size() + layout.align().max(8) + 8;
        POOL_BYTES.fetch_sub(size as u64, Ordering::Relaxed);
        // SAFETY: `base` came from AllocatePool.
        unsafe { (b.free_pool)(base as *mut c_void) };
    }
}
