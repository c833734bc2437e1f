//! `isboot.efi`: the boot ROM as a UEFI application.
//!
//! 1. reads `\EFI\isboot\isboot.cfg` from the file system it was loaded from (optional; a bad
//!    line stops the boot with one line naming it);
//! 2. runs the portable flow (`loader::flow`) on the first ConnectX-class HCA (its PCI I/O
//!    protocol as the driver's `Hal`; IPoIB, DHCP over IB) or, without one, on the first
//!    Ethernet NIC with the Simple Network Protocol (QEMU's virtio-net under OVMF): ports
//!    with bounded waits, DHCP, the root path, the iSCSI login, the boot blocks;
//! 3. installs the iBFT with `EFI_ACPI_TABLE_PROTOCOL`;
//! 4. installs the LUN as a Block I/O device, connects the firmware's partition and FAT
//!    drivers to it, and loads and starts the LUN's `\EFI\BOOT\BOOTX64.EFI` (what iPXE's
//!    `sanboot` does).
//!
//! Any failure prints one `isboot:` line and returns to the firmware, whose boot manager
//! goes on to its next boot option. The image never hangs: every wait in the flow is bounded.
#![no_std]
#![no_main]

extern crate alloc;

mod clock;
mod disk;
mod efi;
#[cfg(feature = "hca")]
mod pcihal;
mod snp;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write;
use core::ptr::null_mut;

use iscsi_initiator::session::SessionError;
use iscsi_initiator::transport::ClientError;
use loader::config::{self, Config, ConfigError};
use loader::eth::EthPorts;
use loader::flow::{self, BootError, Ports};
#[cfg(feature = "hca")]
use loader::ipoib_link::IpoibPorts;
use r_efi::efi::{Handle, Status, SystemTable};
use r_efi::protocols::simple_file_system;

use crate::clock::UefiEnv;
use crate::efi::FileError;

#[global_allocator]
static ALLOC: efi::PoolAlloc = efi::PoolAlloc;

/// Where the configuration lives on the ESP.
const CONFIG_PATH: &str = "\\EFI\\isboot\\isboot.cfg";
/// What is started from the iSCSI disk.
const OS_LOADER: &str = "\\EFI\\BOOT\\BOOTX64.EFI";

fn say(line: &str) {
    let mut l = efi::Line::new();
    let _ = write!(l, "isboot: {line}");
    efi::print(l.as_str());
}

/// A firmware status in words (UEFI 2.10 appendix D).
struct St(Status);

impl fmt::Display for St {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            Status::LOAD_ERROR => "Load Error",
            Status::INVALID_PARAMETER => "Invalid Parameter",
            Status::UNSUPPORTED => "Unsupported",
            Status::BAD_BUFFER_SIZE => "Bad Buffer Size",
            Status::NOT_READY => "Not Ready",
            Status::DEVICE_ERROR => "Device Error",
            Status::WRITE_PROTECTED => "Write Protected",
            Status::OUT_OF_RESOURCES => "Out of Resources",
            Status::NO_MEDIA => "No Media",
            Status::NOT_FOUND => "Not Found",
            Status::ACCESS_DENIED => "Access Denied",
            Status::ABORTED => "Aborted",
            Status::NO_RESPONSE => "No Response",
            Status::SECURITY_VIOLATION => "Security Violation",
            _ => return write!(f, "status {:#x}", self.0.as_usize()),
        };
        f.write_str(name)
    }
}

/// Why the image returns to the firmware.
enum Failure {
    /// The configuration file could not be read.
    ConfigRead(FileError),
    /// The configuration file is wrong.
    Config(ConfigError),
    /// No NIC or HCA to boot from.
    NoDevice(&'static str),
    /// The flow stopped.
    Boot(BootError),
    /// The iBFT did not build.
    Ibft(ibft::BuildError),
    /// The firmware refused the iBFT.
    Acpi(Status),
    /// The disk could not be installed.
    Disk(Status),
    /// No FAT file system on the disk.
    NoFileSystem,
    /// The OS loader could not be loaded.
    Load(Status),
    /// The OS loader returned.
    Returned(Status),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ConfigRead(FileError::TooLong) => {
                write!(f, "{CONFIG_PATH}: longer than {} bytes", config::MAX_FILE)
            }
            Failure::ConfigRead(FileError::NotFound) => write!(f, "{CONFIG_PATH}: not found"),
            Failure::ConfigRead(FileError::Read(s)) => {
                write!(f, "{CONFIG_PATH}: cannot read it: {}", St(*s))
            }
            Failure::Config(e) => write!(f, "{CONFIG_PATH}: {e}"),
            Failure::NoDevice(e) => write!(f, "probe: {e}"),
            Failure::Boot(e) => write!(f, "{e}"),
            Failure::Ibft(e) => write!(f, "iBFT: {e}"),
            Failure::Acpi(s) => write!(
                f,
                "iBFT: EFI_ACPI_TABLE_PROTOCOL refused the table: {}",
                St(*s)
            ),
            Failure::Disk(s) => write!(f, "disk: Block I/O not installed: {}", St(*s)),
            Failure::NoFileSystem => f.write_str(
                "disk: no FAT file system on the iSCSI LUN (an EFI system partition is needed)",
            ),
            Failure::Load(s) => write!(f, "{OS_LOADER} on the iSCSI disk: {}", St(*s)),
            Failure::Returned(s) => write!(f, "the OS loader returned: {}", St(*s)),
        }
    }
}

impl Failure {
    fn status(&self) -> Status {
        match self {
            Failure::ConfigRead(_) | Failure::Config(_) => Status::LOAD_ERROR,
            Failure::NoDevice(_) => Status::NOT_FOUND,
            Failure::Boot(BootError::Login {
                error:
                    ClientError::Timeout
                    | ClientError::Session(SessionError::ConnectFailed | SessionError::ConnectionLost),
                ..
            }) => Status::NO_RESPONSE,
            Failure::Boot(BootError::Login { .. }) => Status::ACCESS_DENIED,
            Failure::Boot(_) => Status::NO_MEDIA,
            Failure::Ibft(_) | Failure::Acpi(_) => Status::ABORTED,
            Failure::Disk(s) | Failure::Load(s) | Failure::Returned(s) => *s,
            Failure::NoFileSystem => Status::NOT_FOUND,
        }
    }
}

fn load_config() -> Result<(Config, bool), Failure> {
    match efi::read_own_file(CONFIG_PATH, config::MAX_FILE) {
        Ok(text) => config::parse(&text)
            .map(|c| (c, true))
            .map_err(Failure::Config),
        Err(FileError::NotFound) => Ok((Config::default(), false)),
        Err(e) => Err(Failure::ConfigRead(e)),
    }
}

/// Runs the flow on `ports`, then hands the disk to the firmware and starts its OS loader.
fn boot_from<P>(ports: &mut P, cfg: &Config, parent: Vec<u8>) -> Result<Status, Failure>
where
    P: Ports<UefiEnv>,
    P::Link: 'static,
{
    let b = flow::boot(ports, UefiEnv, cfg, &mut |l| say(l)).map_err(Failure::Boot)?;
    let table = ibft::build(&b.ibft).map_err(Failure::Ibft)?;
    efi::acpi_table::install(&table).map_err(Failure::Acpi)?;
    say(&format!(
        "iBFT: {} bytes installed with EFI_ACPI_TABLE_PROTOCOL",
        table.len()
    ));
    let dp = disk::device_path(&parent, &b.root.target, b.root.lun);
    let blocks = b.capacity / u64::from(b.block_len.max(1));
    let reader = disk::SessionReader::<loader::net::SmolNet<P::Link, UefiEnv>> {
        client: b.client,
        lun: b.lun,
        block_len: b.block_len,
    };
    disk::install(Box::new(reader), b.block_len, b.capacity, dp.clone()).map_err(Failure::Disk)?;
    say(&format!(
        "disk: LUN {} of {} is a UEFI Block I/O device ({blocks} blocks of {} bytes), connected",
        ibft::Lun(b.root.lun),
        b.root.target,
        b.block_len
    ));
    let prefix = &dp[..dp.len() - 4];
    let fs = efi::handles(&simple_file_system::PROTOCOL_GUID)
        .into_iter()
        .filter_map(|h| efi::device_path_of(h).map(|p| (h, p)))
        .find(|(_, p)| p.starts_with(prefix))
        .ok_or(Failure::NoFileSystem)?;
    let mut path = efi::with_file(&fs.1, OS_LOADER);
    let bs = efi::bs().ok_or(Failure::Load(Status::NOT_READY))?;
    let mut child: Handle = null_mut();
    // SAFETY: the firmware reads the device path (ours, NUL-terminated by its end node) and
    // loads the image from the disk's file system.
    let s = unsafe {
        (bs.load_image)(
            r_efi::efi::Boolean::FALSE,
            efi::image(),
            path.as_mut_ptr().cast(),
            null_mut(),
            0,
            &mut child,
        )
    };
    if s.is_error() {
        return Err(Failure::Load(s));
    }
    let (reads, bytes) = disk::counters();
    say(&format!(
        "starting {OS_LOADER} from the iSCSI disk ({} KiB read through Block I/O in {reads} \
         reads so far)",
        bytes >> 10
    ));
    // SAFETY: starts the image just loaded; it may never return (the OS takes over).
    let s = unsafe { (bs.start_image)(child, null_mut(), null_mut()) };
    Err(Failure::Returned(if s.is_error() {
        s
    } else {
        Status::ABORTED
    }))
}

fn run() -> Result<Status, Failure> {
    clock::calibrate();
    let (cfg, from_file) = load_config()?;
    if from_file {
        say(&format!(
            "configuration from {CONFIG_PATH}: ports {:?}, link wait {} ms, client-id {}{}",
            cfg.port_order,
            cfg.link_wait.as_millis(),
            config::client_id_name(cfg.client_id),
            if cfg.root_path.is_some() {
                ", a root path"
            } else {
                ""
            }
        ));
    }
    #[cfg(feature = "hca")]
    if let Some(found) = pcihal::find() {
        say(&format!(
            "HCA: {} at {:02x}:{:02x}.{}",
            found.name, found.pci.bus, found.pci.device, found.pci.function
        ));
        let dev = hca::hermon::Hermon::open(found.hal, hca::hermon::Config::default())
            .map_err(|e| Failure::Boot(BootError::Probe(flow::ProbeError::Hca(e))))?;
        let parent = efi::device_path_of(found.handle).unwrap_or_else(|| efi::END_NODE.to_vec());
        let mut ports = IpoibPorts::new(dev, found.pci);
        return boot_from(&mut ports, &cfg, parent);
    }
    let nic = snp::Snp::open().map_err(Failure::NoDevice)?;
    let parent = efi::device_path_of(nic.handle).unwrap_or_else(|| efi::END_NODE.to_vec());
    let mut ports = EthPorts::new(nic);
    let mut eth_cfg = cfg.clone();
    // An Ethernet NIC has one port.
    eth_cfg.port_order = alloc::vec![1];
    boot_from(&mut ports, &eth_cfg, parent)
}

/// The entry point the firmware calls.
#[no_mangle]
pub extern "efiapi" fn efi_main(image: Handle, st: *mut SystemTable) -> Status {
    efi::init(image, st);
    say(concat!(
        "isboot ",
        env!("CARGO_PKG_VERSION"),
        ": iSCSI boot ROM (UEFI)"
    ));
    match run() {
        Ok(s) => s,
        Err(e) => {
            let line: String = format!("{e}; back to the firmware");
            say(&line);
            e.status()
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut l = efi::Line::new();
    let _ = write!(
        l,
        "isboot: internal error: {}; back to the firmware",
        info.message()
    );
    efi::print(l.as_str());
    efi::exit(Status::ABORTED)
}
