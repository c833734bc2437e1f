//! Matching an iBFT NIC structure to the InfiniBand port a ROM booted through.

mod common;

use ibft::identity::{mac_for, match_nic, IbPort, MacRule, MatchError, MatchedBy, PortGuid};
use ibft::{MacAddr, PciAddress};

const HCA: PciAddress = PciAddress {
    bus: 0x81,
    device: 0,
    function: 0,
};
const OTHER_HCA: PciAddress = PciAddress {
    bus: 0x82,
    device: 0,
    function: 0,
};

/// A dual-port ConnectX-3: port GUIDs differ in the last byte, as Mellanox assigns them.
fn ports() -> Vec<IbPort> {
    vec![
        IbPort {
            pci: HCA,
            port: 1,
            guid: PortGuid([0x00, 0x02, 0xc9, 0x03, 0x00, 0x00, 0x10, 0x39]),
            firmware_mac: Some(MacAddr([0x00, 0x02, 0xc9, 0x05, 0xcf, 0xfa])),
        },
        IbPort {
            pci: HCA,
            port: 2,
            guid: PortGuid([0x00, 0x02, 0xc9, 0x03, 0x00, 0x00, 0x10, 0x3a]),
            firmware_mac: Some(MacAddr([0x00, 0x02, 0xc9, 0x05, 0xcf, 0xfb])),
        },
        IbPort {
            pci: OTHER_HCA,
            port: 1,
            guid: PortGuid([0x00, 0x11, 0x75, 0x00, 0x00, 0x77, 0x88, 0x99]),
            firmware_mac: None,
        },
    ]
}

fn nic_with(pci: PciAddress, mac: MacAddr) -> ibft::Nic {
    let mut n = common::nic(0, "192.0.2.117", mac.0);
    n.pci = pci;
    n
}

#[test]
fn each_rule_picks_the_port_that_booted() {
    let ps = ports();
    for (i, p) in ps.iter().enumerate().take(2) {
        for rule in MacRule::ALL {
            let mac = mac_for(rule, p.guid, p.firmware_mac).unwrap();
            let m = match_nic(&nic_with(HCA, mac), &ps).unwrap();
            assert_eq!(m.index, i, "{rule:?}");
            // The legacy rule and the local-bit mask rule give the same bytes for these GUIDs;
            // the first rule in the list is the one reported.
            let expect = if rule == MacRule::GuidMaskLocal {
                MacRule::MellanoxLegacy
            } else {
                rule
            };
            assert_eq!(m.by, MatchedBy::PciAndMac(expect));
        }
    }
}

#[test]
fn ipxe_table_for_port_two_matches_port_two_not_the_shared_pci_address() {
    let ps = ports();
    let mac = mac_for(MacRule::GuidMask, ps[1].guid, None).unwrap();
    assert_eq!(mac, MacAddr([0x00, 0x02, 0xc9, 0x00, 0x10, 0x3a]));
    let mut s = common::sample();
    s.nics[0].mac = mac;
    s.nics[0].pci = HCA;
    // Through the whole path: built by the ROM, parsed by the module, matched to a port.
    let parsed = ibft::parse(&ibft::build(&s).unwrap()).unwrap();
    let m = match_nic(&parsed.table.nics[0], &ps).unwrap();
    assert_eq!(ps[m.index].port, 2);
}

#[test]
fn mac_alone_when_the_pci_address_is_wrong() {
    let ps = ports();
    let mac = mac_for(MacRule::GuidMask, ps[2].guid, None).unwrap();
    let m = match_nic(&nic_with(PciAddress::default(), mac), &ps).unwrap();
    assert_eq!((m.index, m.by), (2, MatchedBy::MacOnly(MacRule::GuidMask)));
}

#[test]
fn pci_alone_only_for_a_single_port_hca() {
    let ps = ports();
    let unknown = MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
    let m = match_nic(&nic_with(OTHER_HCA, unknown), &ps).unwrap();
    assert_eq!((m.index, m.by), (2, MatchedBy::PciOnly));
    assert_eq!(
        match_nic(&nic_with(HCA, unknown), &ps).unwrap_err(),
        MatchError::Ambiguous { candidates: 2 }
    );
    assert_eq!(
        match_nic(&nic_with(PciAddress::default(), unknown), &ps).unwrap_err(),
        MatchError::NoPort
    );
    assert_eq!(
        match_nic(&nic_with(HCA, unknown), &[]).unwrap_err(),
        MatchError::NoPort
    );
}

#[test]
fn two_ports_with_the_same_derived_mac_are_ambiguous() {
    // GUIDs differing only in bytes 3-4, which the mask rule drops.
    let mut ps = ports();
    ps[1].guid = PortGuid([0x00, 0x02, 0xc9, 0x03, 0x01, 0x00, 0x10, 0x39]);
    ps[1].firmware_mac = None;
    ps[0].firmware_mac = None;
    let mac = mac_for(MacRule::GuidMask, ps[0].guid, None).unwrap();
    assert_eq!(
        match_nic(&nic_with(HCA, mac), &ps).unwrap_err(),
        MatchError::Ambiguous { candidates: 2 }
    );
}
