//! InfiniBand host channel adapter support: IB wire formats (LRH, GRH, BTH, DETH, the MAD
//! common header, SMPs and SA records), the `Hal` trait (MMIO, DMA, clock), the ConnectX
//! (hermon-class) driver — command interface, ICM, EQ/CQ/QP, UD datapath — and a verbs-like API
//! that `ipoib` and the boot flows use.
//!
//! Layers: [`wire`] (parse/emit only), [`hal`] (the environment seam), [`hermon`] (the driver for
//! one programming interface), [`verbs`] (the family-independent API). A golan-class or
//! arbel-class driver is another module implementing [`verbs::Verbs`]; [`probe`] picks one by PCI
//! id.
#![no_std]

extern crate alloc;

pub mod error;
pub mod hal;
pub mod hermon;
pub mod pci;
pub mod verbs;
pub mod wire;

pub use error::Error;
pub use hal::{Bar, Dma, DmaDirection, DmaSync, Duration, Hal, Instant, PhysAddr};
pub use verbs::Verbs;

use alloc::boxed::Box;

/// Reads the device's PCI ids through `hal`, picks the driver for its family and brings the
/// device up.
pub fn probe<H: Hal + 'static>(hal: H, cfg: hermon::Config) -> Result<Box<dyn Verbs>, Error> {
    let id = hal.pci_config_read32(0);
    let (vendor, device) = (id as u16, (id >> 16) as u16);
    match pci::lookup(vendor, device) {
        Some(d) if d.family == pci::Family::Hermon => {
            log::debug!("hca: probing {}", d.name);
            Ok(Box::new(hermon::Hermon::open(hal, cfg)?))
        }
        _ => Err(Error::Unsupported { vendor, device }),
    }
}
