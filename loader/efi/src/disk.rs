//! The iSCSI LUN as a UEFI disk: `EFI_BLOCK_IO_PROTOCOL` (UEFI 2.10 §13.9) and a device path
//! ending in an iSCSI node (§10.3.4.21) on a new handle, connected so that the firmware's
//! partition and FAT drivers bind to it — what iPXE's `sanboot` does before it starts the
//! disk's `\EFI\BOOT\BOOTX64.EFI`.
//!
//! Reads go through the portable flow's logged-in session ([`loader::flow::NetClient`]), which
//! keeps the whole network stack alive; the disk is read-only.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::fmt::Write;
use core::ptr::null_mut;

use iscsi_initiator::block::BlockDevice;
use iscsi_initiator::scsi::Lun;
use loader::flow::NetClient;
use loader::net::Network;
use r_efi::efi::{self, Handle, Status};
use r_efi::protocols::{block_io, device_path};

use crate::efi as fw;

/// Reads of the LUN through a logged-in session.
pub trait Reader {
    /// Reads whole blocks at `lba` into `out`.
    fn read(&mut self, lba: u64, out: &mut [u8]) -> bool;
}

/// The session and the LUN.
pub struct SessionReader<N: Network> {
    /// The logged-in client.
    pub client: NetClient<N>,
    /// The LUN.
    pub lun: Lun,
    /// Its block size.
    pub block_len: u32,
}

/// The most bytes one READ asks for.
const MAX_READ: usize = 256 * 1024;

impl<N: Network> Reader for SessionReader<N> {
    fn read(&mut self, lba: u64, out: &mut [u8]) -> bool {
        let bl = (self.block_len as usize).max(1);
        let chunk = (MAX_READ / bl).max(1) * bl;
        let mut done = 0usize;
        while done < out.len() {
            let n = (out.len() - done).min(chunk);
            let blocks = (n / bl) as u32;
            let at = lba + (done / bl) as u64;
            let mut dev = BlockDevice::new(&mut self.client, self.lun);
            match dev.read(at, blocks, vec![0u8; n]) {
                Ok(data) if data.len() >= n => out[done..done + n].copy_from_slice(&data[..n]),
                _ => return false,
            }
            done += n;
        }
        true
    }
}

/// The protocol instance and what it serves.
#[repr(C)]
struct Disk {
    proto: block_io::Protocol,
    media: block_io::Media,
    reader: Option<Box<dyn Reader>>,
    reads: u64,
    bytes: u64,
    reported_mib: u64,
}

/// The one disk (firmware code runs on one CPU, and the Block I/O functions are not
/// re-entered).
struct Global(UnsafeCell<Option<Box<Disk>>>);

// SAFETY: UEFI boot services run on one processor; nothing here is touched from another.
unsafe impl Sync for Global {}

static DISK: Global = Global(UnsafeCell::new(None));

/// Reads and bytes served so far.
pub fn counters() -> (u64, u64) {
    // SAFETY: single-threaded (see `Global`); a shared read.
    match unsafe { &*DISK.0.get() } {
        Some(d) => (d.reads, d.bytes),
        None => (0, 0),
    }
}

unsafe extern "efiapi" fn reset(_: *mut block_io::Protocol, _: efi::Boolean) -> Status {
    Status::SUCCESS
}

unsafe extern "efiapi" fn read_blocks(
    this: *mut block_io::Protocol,
    media_id: u32,
    lba: efi::Lba,
    size: usize,
    buf: *mut c_void,
) -> Status {
    // SAFETY: single-threaded (see `Global`); the firmware calls with the protocol we
    // installed, which is the first field of the boxed `Disk`.
    let Some(d) = (unsafe { &mut *DISK.0.get() }).as_mut() else {
        return Status::NO_MEDIA;
    };
    if this != &mut d.proto as *mut _ {
        return Status::INVALID_PARAMETER;
    }
    if media_id != d.media.media_id {
        return Status::MEDIA_CHANGED;
    }
    let bl = d.media.block_size as usize;
    if size == 0 {
        return Status::SUCCESS;
    }
    if buf.is_null() {
        return Status::INVALID_PARAMETER;
    }
    if size % bl != 0 {
        return Status::BAD_BUFFER_SIZE;
    }
    let blocks = (size / bl) as u64;
    if lba > d.media.last_block || blocks > d.media.last_block - lba + 1 {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller gives `size` writable bytes at `buf`.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
    let Some(r) = d.reader.as_mut() else {
        return Status::NO_MEDIA;
    };
    if !r.read(lba, out) {
        return Status::DEVICE_ERROR;
    }
    d.reads += 1;
    d.bytes += size as u64;
    let mib = d.bytes >> 20;
    if mib >= d.reported_mib + 4 {
        d.reported_mib = mib & !3;
        let mut l = fw::Line::new();
        let _ = write!(
            l,
            "isboot: disk: {} MiB read from the iSCSI LUN in {} reads",
            mib, d.reads
        );
        fw::print(l.as_str());
    }
    Status::SUCCESS
}

unsafe extern "efiapi" fn write_blocks(
    _: *mut block_io::Protocol,
    _: u32,
    _: efi::Lba,
    _: usize,
    _: *mut c_void,
) -> Status {
    Status::WRITE_PROTECTED
}

unsafe extern "efiapi" fn flush_blocks(_: *mut block_io::Protocol) -> Status {
    Status::SUCCESS
}

/// The disk's device path: the NIC's (or HCA's) path, an iSCSI node naming the target and
/// LUN, the end.
pub fn device_path(parent: &[u8], target: &str, lun: [u8; 8]) -> Vec<u8> {
    let body = parent.len().saturating_sub(4);
    let mut out = parent[..body].to_vec();
    let name = &target.as_bytes()[..target.len().min(223)];
    let len = 18 + name.len();
    out.extend_from_slice(&[device_path::TYPE_MESSAGING, 19, len as u8, (len >> 8) as u8]);
    out.extend_from_slice(&0u16.to_le_bytes()); // TCP
    out.extend_from_slice(&0u16.to_le_bytes()); // login options: no digests, CHAP
    out.extend_from_slice(&lun);
    out.extend_from_slice(&1u16.to_le_bytes()); // target portal group tag
    out.extend_from_slice(name);
    out.extend_from_slice(&fw::END_NODE);
    out
}

/// Installs the disk (Block I/O and its device path) and connects the firmware's drivers to
/// it. Returns the new handle.
pub fn install(
    reader: Box<dyn Reader>,
    block_len: u32,
    capacity: u64,
    path: Vec<u8>,
) -> Result<Handle, Status> {
    let b = fw::bs().ok_or(Status::NOT_READY)?;
    if block_len == 0 || capacity < u64::from(block_len) {
        return Err(Status::NO_MEDIA);
    }
    let disk = Box::new(Disk {
        proto: block_io::Protocol {
            revision: block_io::REVISION,
            media: core::ptr::null(),
            reset,
            read_blocks,
            write_blocks,
            flush_blocks,
        },
        media: block_io::Media {
            media_id: 0x1b00_7001,
            removable_media: false,
            media_present: true,
            logical_partition: false,
            read_only: true,
            write_caching: false,
            block_size: block_len,
            io_align: 0,
            last_block: capacity / u64::from(block_len) - 1,
            lowest_aligned_lba: 0,
            logical_blocks_per_physical_block: 1,
            optimal_transfer_length_granularity: 0,
        },
        reader: Some(reader),
        reads: 0,
        bytes: 0,
        reported_mib: 0,
    });
    // SAFETY: single-threaded (see `Global`); the box never moves once stored, so the
    // pointers handed to the firmware stay valid for the life of the image (and after: the
    // disk is never uninstalled, as the OS loader reads through it).
    let d: &mut Disk = unsafe {
        let slot = &mut *DISK.0.get();
        *slot = Some(disk);
        match slot.as_mut() {
            Some(d) => d,
            None => return Err(Status::ABORTED),
        }
    };
    d.proto.media = &d.media;
    let path: &'static mut [u8] = Box::leak(path.into_boxed_slice());
    let mut handle: Handle = null_mut();
    let mut g = block_io::PROTOCOL_GUID;
    // SAFETY: the protocol instance lives as long as the image (above).
    let s = unsafe {
        (b.install_protocol_interface)(
            &mut handle,
            &mut g,
            efi::NATIVE_INTERFACE,
            (&mut d.proto as *mut block_io::Protocol).cast(),
        )
    };
    if s.is_error() {
        return Err(s);
    }
    let mut g = device_path::PROTOCOL_GUID;
    // SAFETY: the path is leaked: valid for the life of the image.
    let s = unsafe {
        (b.install_protocol_interface)(
            &mut handle,
            &mut g,
            efi::NATIVE_INTERFACE,
            path.as_mut_ptr().cast(),
        )
    };
    if s.is_error() {
        return Err(s);
    }
    // SAFETY: connect every driver that supports the new handle, recursively (partitions,
    // then file systems on them).
    let _ = unsafe { (b.connect_controller)(handle, null_mut(), null_mut(), efi::Boolean::TRUE) };
    Ok(handle)
}
