//! An Ethernet NIC through `EFI_SIMPLE_NETWORK_PROTOCOL` (UEFI 2.10 §24.1), as the portable
//! flow's [`loader::eth::Nic`]: whole frames out (HeaderSize 0: the frame carries its own
//! header) and in, the transmit buffers kept until the NIC gives them back (GetStatus).

use alloc::vec;
use alloc::vec::Vec;
use core::ptr::null_mut;

use ibft::PciAddress;
use loader::eth::Nic;
use r_efi::efi::{Handle, Status};
use r_efi::protocols::{device_path, pci_io, simple_network as snp};

use crate::efi;

/// Transmit buffers in flight, at most.
const TX_SLOTS: usize = 32;
/// Room for one frame.
const FRAME: usize = 1536;

/// One opened SNP.
pub struct Snp {
    proto: *mut snp::Protocol,
    /// The NIC's handle (for its device path).
    pub handle: Handle,
    mac: [u8; 6],
    mtu: usize,
    pci: PciAddress,
    free: Vec<Vec<u8>>,
    busy: Vec<Vec<u8>>,
}

/// Receive filters: our unicast address and broadcast.
const FILTERS: u32 = snp::RECEIVE_UNICAST | snp::RECEIVE_BROADCAST;

fn pci_location(handle: Handle) -> PciAddress {
    let zero = PciAddress {
        bus: 0,
        device: 0,
        function: 0,
    };
    let Some(mut dp) = efi::protocol::<device_path::Protocol>(handle, &device_path::PROTOCOL_GUID)
    else {
        return zero;
    };
    let Some(b) = efi::bs() else { return zero };
    let mut g = pci_io::PROTOCOL_GUID;
    let mut pci_handle: Handle = null_mut();
    // SAFETY: the firmware walks the device path to the handle with PCI I/O.
    let s = unsafe { (b.locate_device_path)(&mut g, &mut dp, &mut pci_handle) };
    if s.is_error() {
        return zero;
    }
    let Some(io) = efi::protocol::<pci_io::Protocol>(pci_handle, &pci_io::PROTOCOL_GUID) else {
        return zero;
    };
    let (mut seg, mut bus, mut dev, mut func) = (0usize, 0usize, 0usize, 0usize);
    // SAFETY: the firmware writes four numbers.
    let s = unsafe { ((*io).get_location)(io, &mut seg, &mut bus, &mut dev, &mut func) };
    if s.is_error() {
        return zero;
    }
    PciAddress {
        bus: bus as u8,
        device: dev as u8,
        function: func as u8,
    }
}

/// Connects the firmware's drivers to every network controller (PCI base class 2): a
/// firmware that boots from disk may not have started its NIC drivers, and SNP comes from them.
fn connect_network_controllers() {
    let Some(b) = efi::bs() else { return };
    for h in efi::handles(&pci_io::PROTOCOL_GUID) {
        let Some(io) = efi::protocol::<pci_io::Protocol>(h, &pci_io::PROTOCOL_GUID) else {
            continue;
        };
        let mut class = 0u32;
        // SAFETY: one dword of configuration space (revision and class code) into `class`.
        let s = unsafe {
            ((*io).pci.read)(
                io,
                pci_io::WIDTH_UINT32,
                8,
                1,
                (&mut class as *mut u32).cast(),
            )
        };
        if s.is_error() || class >> 24 != 0x02 {
            continue;
        }
        // SAFETY: connects whatever drivers support the controller, recursively.
        unsafe { (b.connect_controller)(h, null_mut(), null_mut(), r_efi::efi::Boolean::TRUE) };
    }
}

impl Snp {
    /// The first Ethernet NIC with SNP, opened exclusively (the firmware's own network
    /// stack lets go of it), started, initialized and receiving.
    pub fn open() -> Result<Snp, &'static str> {
        connect_network_controllers();
        let handles = efi::handles(&snp::PROTOCOL_GUID);
        if handles.is_empty() {
            return Err("no network interface with the Simple Network Protocol");
        }
        let mut last = "no usable network interface";
        for h in handles {
            let p = match efi::open_exclusive::<snp::Protocol>(h, &snp::PROTOCOL_GUID) {
                Ok(p) => p,
                Err(_) => match efi::protocol::<snp::Protocol>(h, &snp::PROTOCOL_GUID) {
                    Some(p) => p,
                    None => continue,
                },
            };
            match Self::start(p) {
                Ok(()) => {}
                Err(e) => {
                    last = e;
                    continue;
                }
            }
            // SAFETY: `mode` is the firmware's, valid while the protocol is.
            let mode = unsafe { &*(*p).mode };
            if mode.if_type != 1 {
                last = "the network interface is not Ethernet";
                continue;
            }
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&mode.current_address.addr[..6]);
            let mtu = (mode.max_packet_size as usize).clamp(576, 1500);
            return Ok(Snp {
                proto: p,
                handle: h,
                mac,
                mtu,
                pci: pci_location(h),
                free: (0..TX_SLOTS).map(|_| vec![0u8; FRAME]).collect(),
                busy: Vec::new(),
            });
        }
        Err(last)
    }

    fn start(p: *mut snp::Protocol) -> Result<(), &'static str> {
        // SAFETY: `p` is the firmware's SNP; each call follows §24.1's state machine.
        unsafe {
            let state = (*(*p).mode).state;
            if state == snp::STOPPED && ((*p).start)(p).is_error() {
                return Err("the network interface did not start");
            }
            if (*(*p).mode).state == snp::STARTED && ((*p).initialize)(p, 0, 0).is_error() {
                return Err("the network interface did not initialize");
            }
            let s =
                ((*p).receive_filters)(p, FILTERS, 0, r_efi::efi::Boolean::FALSE, 0, null_mut());
            if s.is_error() {
                // Some NICs take only what they support: try promiscuous-free broadcast.
                let _ = ((*p).receive_filters)(
                    p,
                    snp::RECEIVE_BROADCAST,
                    0,
                    r_efi::efi::Boolean::FALSE,
                    0,
                    null_mut(),
                );
            }
        }
        Ok(())
    }

    /// Takes back the transmit buffers the NIC is done with.
    fn reclaim(&mut self) {
        for _ in 0..TX_SLOTS * 2 {
            let mut buf: *mut core::ffi::c_void = null_mut();
            let mut irq = 0u32;
            // SAFETY: GetStatus reports one recycled transmit buffer (ours) or none.
            let s = unsafe { ((*self.proto).get_status)(self.proto, &mut irq, &mut buf) };
            if s.is_error() || buf.is_null() {
                return;
            }
            if let Some(i) = self
                .busy
                .iter()
                .position(|b| b.as_ptr() as *mut core::ffi::c_void == buf)
            {
                let b = self.busy.swap_remove(i);
                self.free.push(b);
            }
        }
    }
}

impl Nic for Snp {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn link_up(&mut self) -> Option<bool> {
        // SAFETY: the firmware's mode structure.
        let mode = unsafe { &*(*self.proto).mode };
        if !bool::from(mode.media_present_supported) {
            return None;
        }
        self.reclaim();
        // SAFETY: as above, refreshed by GetStatus.
        Some(bool::from(unsafe { (*(*self.proto).mode).media_present }))
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), &'static str> {
        if frame.len() > FRAME {
            return Err("frame too long");
        }
        self.reclaim();
        let mut tries = 0;
        let mut buf = loop {
            if let Some(b) = self.free.pop() {
                break b;
            }
            tries += 1;
            if tries > 1000 {
                return Err("no transmit buffer came back");
            }
            efi::stall(10);
            self.reclaim();
        };
        buf[..frame.len()].copy_from_slice(frame);
        for _ in 0..100 {
            // SAFETY: `buf` stays alive (in `busy`) until GetStatus hands it back.
            let s = unsafe {
                ((*self.proto).transmit)(
                    self.proto,
                    0,
                    frame.len(),
                    buf.as_mut_ptr().cast(),
                    null_mut(),
                    null_mut(),
                    null_mut(),
                )
            };
            if s == Status::SUCCESS {
                self.busy.push(buf);
                return Ok(());
            }
            if s != Status::NOT_READY {
                self.free.push(buf);
                return Err("the NIC refused a frame");
            }
            efi::stall(10);
            self.reclaim();
        }
        self.free.push(buf);
        Err("the NIC's transmit queue stayed full")
    }

    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut len = buf.len();
        // SAFETY: the firmware writes at most `len` bytes into `buf`.
        let s = unsafe {
            ((*self.proto).receive)(
                self.proto,
                null_mut(),
                &mut len,
                buf.as_mut_ptr().cast(),
                null_mut(),
                null_mut(),
                null_mut(),
            )
        };
        (s == Status::SUCCESS && len <= buf.len()).then_some(len)
    }

    fn pci(&self) -> PciAddress {
        self.pci
    }
}
