//! PCI ids of the HCAs this crate knows, with their programming-interface family.
//!
//! Sources: the BoIB user's manual Table 1 (ConnectX 0x6340/0x634a/0x6732/0x673c, InfiniHost III
//! Ex 0x6282 and Lx 0x6274), iPXE's id tables (`src/drivers/infiniband/hermon.c` `hermon_nics`,
//! `arbel.c`, `golan.c`: ConnectX-2 0x6746, ConnectX-3 0x1003, ConnectX-3 Pro 0x1007,
//! Connect-IB and ConnectX-4+) and Linux's (`drivers/net/ethernet/mellanox/mlx4/main.c`
//! `mlx4_pci_table`: 0x6354, commented there as MT25408 "Hermon" QDR).
//!
//! Only the IB-capable hermon ids are listed. The Ethernet-only ConnectX EN parts (0x6368,
//! 0x6372, 0x6750, 0x675a, 0x6764, 0x676e, 0x6778 — iPXE lists all of them as "ConnectX EN"
//! or "ConnectX-2 EN") are left out. 0x6746 is named "MT26438 ConnectX-2 VPI" by iPXE but
//! `CONNECTX_EN_5_GEN2` ("ConnectX EN 40GigE") by Linux; it stays, and like every VPI part its
//! ports are taken as QUERY_PORT reports them, not from the id.

/// Mellanox's PCI vendor id.
pub const MELLANOX_VENDOR_ID: u16 = 0x15b3;

/// The command interface a device speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// ConnectX, ConnectX-2, ConnectX-3/Pro: HCR + ICM (this crate's `hermon` module).
    Hermon,
    /// InfiniHost III Ex/Lx in mem-free mode (no driver yet).
    Arbel,
    /// Connect-IB, ConnectX-4 and later: command queue (no driver yet).
    Golan,
}

/// One known device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciDevice {
    /// Device id.
    pub device: u16,
    /// Marketing name.
    pub name: &'static str,
    /// Interface family.
    pub family: Family,
}

const fn d(device: u16, name: &'static str, family: Family) -> PciDevice {
    PciDevice {
        device,
        name,
        family,
    }
}

/// Every known device (vendor [`MELLANOX_VENDOR_ID`]).
pub const DEVICES: &[PciDevice] = &[
    d(0x6340, "MT25408 ConnectX IB SDR", Family::Hermon),
    d(0x634a, "MT25418 ConnectX IB DDR", Family::Hermon),
    d(
        0x6354,
        "MT25408 \"Hermon\" QDR (ConnectX IB QDR)",
        Family::Hermon,
    ),
    d(
        0x6732,
        "MT26418 ConnectX IB DDR PCIe 2.0 5GT/s",
        Family::Hermon,
    ),
    d(
        0x673c,
        "MT26428 ConnectX IB QDR PCIe 2.0 5GT/s",
        Family::Hermon,
    ),
    d(0x6746, "MT26438 ConnectX-2 VPI", Family::Hermon),
    d(0x1003, "MT27500 ConnectX-3", Family::Hermon),
    d(0x1007, "MT27520 ConnectX-3 Pro", Family::Hermon),
    d(0x6282, "MT25218 InfiniHost III Ex", Family::Arbel),
    d(0x6274, "MT25204 InfiniHost III Lx", Family::Arbel),
    d(0x1011, "Connect-IB", Family::Golan),
    d(0x1013, "ConnectX-4", Family::Golan),
    d(0x1015, "ConnectX-4 Lx", Family::Golan),
    d(0x1017, "ConnectX-5", Family::Golan),
    d(0x1019, "ConnectX-5 Ex", Family::Golan),
    d(0x101b, "ConnectX-6", Family::Golan),
    d(0x101d, "ConnectX-6 Dx", Family::Golan),
    d(0x101f, "ConnectX-6 Lx", Family::Golan),
    d(0x1021, "ConnectX-7", Family::Golan),
];

/// Looks a device up.
pub fn lookup(vendor: u16, device: u16) -> Option<&'static PciDevice> {
    if vendor != MELLANOX_VENDOR_ID {
        return None;
    }
    DEVICES.iter().find(|d| d.device == device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boib_table1_connectx_ids_are_hermon() {
        for id in [
            0x6340, 0x634a, 0x6354, 0x6732, 0x673c, 0x6746, 0x1003, 0x1007,
        ] {
            assert_eq!(
                lookup(0x15b3, id).unwrap().family,
                Family::Hermon,
                "{id:#x}"
            );
        }
        assert_eq!(lookup(0x15b3, 0x6282).unwrap().family, Family::Arbel);
        assert_eq!(lookup(0x15b3, 0x1013).unwrap().family, Family::Golan);
        assert!(lookup(0x8086, 0x6340).is_none());
        assert!(lookup(0x15b3, 0xffff).is_none());
        // Ethernet-only ConnectX EN parts are not ours.
        for id in [0x6368, 0x6372, 0x6750, 0x675a, 0x6764, 0x676e, 0x6778] {
            assert!(lookup(0x15b3, id).is_none(), "{id:#x}");
        }
    }
}
