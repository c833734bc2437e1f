//! Shared by the ibft integration tests.
#![allow(dead_code)]

use std::net::IpAddr;

use ibft::{
    ChapType, ControlFlags, Header, Ibft, Initiator, InitiatorFlags, Lun, MacAddr, Nic, NicFlags,
    Origin, PciAddress, Secret, Target, TargetFlags,
};

/// Every `NAME.bin` fixture (tables written by real iPXE, `tests/fixtures/ibft`) with its
/// `NAME.linux.txt`, sorted by name. Fails naming the path when the fixtures are not there: the
/// tests must not pass vacuously.
pub fn fixtures() -> Vec<(String, Vec<u8>, String)> {
    isboot_tests::fixtures::ibft_names(5)
        .into_iter()
        .map(|name| {
            let bin = isboot_tests::fixtures::ibft(&name);
            let linux = isboot_tests::fixtures::ibft_linux(&name);
            (name, bin, linux)
        })
        .collect()
}

pub fn fixture(name: &str) -> Vec<u8> {
    isboot_tests::fixtures::ibft(name)
}

/// Sets the checksum so the bytes sum to zero again after a test changed them.
pub fn reseal(t: &mut [u8]) {
    t[9] = 0;
    let len = u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize;
    let sum = ibft::checksum(&t[..len.min(t.len())]);
    t[9] = 0u8.wrapping_sub(sum);
}

pub fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

/// A NIC as a ROM that booted over IPoIB would describe it.
pub fn nic(index: u8, addr: &str, mac: [u8; 6]) -> Nic {
    Nic {
        index,
        flags: NicFlags::BLOCK_VALID | NicFlags::BOOT_SELECTED | NicFlags::GLOBAL,
        ip_address: ip(addr),
        prefix_length: 24,
        origin: Origin::DHCP,
        gateway: ip("192.0.2.1"),
        primary_dns: ip("192.0.2.53"),
        secondary_dns: None,
        dhcp_server: ip("192.0.2.2"),
        vlan: 0,
        mac: MacAddr(mac),
        pci: PciAddress {
            bus: 0x81,
            device: 0,
            function: 0,
        },
        hostname: Some("node17".into()),
    }
}

pub fn target(index: u8, nic: u8, name: &str, lun: u64) -> Target {
    Target {
        index,
        flags: TargetFlags::BLOCK_VALID | TargetFlags::BOOT_SELECTED,
        ip_address: ip("192.0.2.10"),
        port: 3260,
        lun: Lun::from_number(lun).unwrap(),
        chap_type: ChapType::None,
        nic_association: nic,
        name: Some(name.into()),
        ..Target::default()
    }
}

/// A table with one IPoIB NIC and a mutual-CHAP target.
pub fn sample() -> Ibft {
    let mut t = target(0, 0, "iqn.2026-11.org.example:boot", 1);
    t.chap_type = ChapType::Mutual;
    t.chap_name = Some("node17".into());
    t.chap_secret = Some(Secret::from("n0de-secret-17"));
    t.reverse_chap_name = Some("array".into());
    t.reverse_chap_secret = Some(Secret::from("arr4y-secret"));
    Ibft {
        header: Header::default(),
        control_flags: ControlFlags::empty(),
        initiator: Initiator {
            flags: InitiatorFlags::BLOCK_VALID | InitiatorFlags::BOOT_SELECTED,
            name: Some("iqn.2026-11.org.example:node17".into()),
            ..Initiator::default()
        },
        nics: vec![nic(0, "192.0.2.117", [0x00, 0x02, 0xc9, 0x00, 0x10, 0x39])],
        targets: vec![t],
    }
}

/// Offsets of the structures in a table (from its control structure).
pub struct Offsets {
    pub initiator: usize,
    pub nics: Vec<usize>,
    pub targets: Vec<usize>,
}

pub fn offsets(t: &[u8]) -> Offsets {
    let u16at = |o: usize| u16::from_le_bytes([t[o], t[o + 1]]) as usize;
    let clen = u16at(48 + 2);
    let slots: Vec<usize> = (0..(clen - 10) / 2)
        .map(|i| u16at(48 + 10 + 2 * i))
        .collect();
    Offsets {
        initiator: u16at(48 + 8),
        nics: slots
            .iter()
            .step_by(2)
            .copied()
            .filter(|&o| o != 0)
            .collect(),
        targets: slots
            .iter()
            .skip(1)
            .step_by(2)
            .copied()
            .filter(|&o| o != 0)
            .collect(),
    }
}
