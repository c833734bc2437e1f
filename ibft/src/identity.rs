//! Which InfiniBand port a NIC structure describes.
//!
//! The iBFT was made for Ethernet: a NIC has a 6-byte MAC and a PCI address. A boot ROM that
//! booted over IPoIB fills the MAC with a 6-byte address it derives from the port, and the PCI
//! address with the HCA's function — which both ports share. The rules ROMs use
//! (iPXE `src/drivers/net/ipoib.c`, `ipoib_eth_addr` and `ipoib_mlx_eth_addr`; the BoIB
//! user's manual; FlexBoot's `mac_admin_bit` setting):
//!
//! | rule | bytes, from port GUID `g` | who |
//! |---|---|---|
//! | [`MacRule::GuidMask`] | `g0 g1 g2 g5 g6 g7` (mask 0xe7: drop bytes 3 and 4) | iPXE since 2012 on arbel/golan; FlexBoot with `mac_admin_bit` 1 |
//! | [`MacRule::MellanoxLegacy`] | `(g3 == 2 ? 00 : 02) g1 g2 g5 g6 g7`, Mellanox GUIDs (OUI 00:02:c9) only | gPXE/iPXE 2009–2012; FlexBoot's default for Mellanox GUIDs |
//! | [`MacRule::GuidMaskLocal`] | `g0\|02 g1 g2 g5 g6 g7` | FlexBoot with `mac_admin_bit` 2 |
//! | [`MacRule::FirmwareMac`] | the port's Ethernet MAC from firmware (QUERY_PORT) | iPXE since 2021 on hermon; FlexBoot with `mac_admin_bit` 3 |
//!
//! [`match_nic`] finds the port: by the PCI address and one of those MACs together, else by a
//! MAC alone, else by the PCI address when the HCA there has a single port.

use crate::model::{MacAddr, Nic, PciAddress};
use alloc::vec::Vec;
use core::fmt;

/// An 8-byte port GUID, as the SM and the port's GID show it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PortGuid(pub [u8; 8]);

impl fmt::Display for PortGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PortGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortGuid({self})")
    }
}

impl PortGuid {
    /// Whether the GUID carries Mellanox's OUI 00:02:c9 (the legacy rule's condition: bytes
    /// 1 and 2, as iPXE tested them).
    pub fn is_mellanox(&self) -> bool {
        self.0[1] == 0x02 && self.0[2] == 0xc9
    }
}

/// A rule a boot ROM uses to put an IB port into a 6-byte MAC field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacRule {
    /// Current iPXE (`IPOIB_GUID_MASK` 0xe7): GUID bytes 0, 1, 2, 5, 6, 7.
    GuidMask,
    /// gPXE/iPXE 2009–2012 and FlexBoot's default, Mellanox GUIDs only: byte 0 is 0x00 when
    /// GUID byte 3 is 0x02, else 0x02; then bytes 1, 2, 5, 6, 7.
    MellanoxLegacy,
    /// FlexBoot with `mac_admin_bit` 2: the mask rule with the locally-administered bit set.
    GuidMaskLocal,
    /// The firmware's own port MAC (iPXE on hermon since 2021; FlexBoot `mac_admin_bit` 3).
    FirmwareMac,
}

impl MacRule {
    /// Every rule, in the order they are tried.
    pub const ALL: [MacRule; 4] = [
        MacRule::GuidMask,
        MacRule::MellanoxLegacy,
        MacRule::GuidMaskLocal,
        MacRule::FirmwareMac,
    ];

    /// A short name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            MacRule::GuidMask => "GUID mask (iPXE)",
            MacRule::MellanoxLegacy => "Mellanox legacy (gPXE, FlexBoot)",
            MacRule::GuidMaskLocal => "GUID mask, local bit (FlexBoot)",
            MacRule::FirmwareMac => "firmware port MAC",
        }
    }
}

/// The 6-byte address a rule gives for a port; `None` where the rule does not apply (a
/// non-Mellanox GUID under the legacy rule, or no firmware MAC known).
pub fn mac_for(rule: MacRule, guid: PortGuid, firmware_mac: Option<MacAddr>) -> Option<MacAddr> {
    let g = guid.0;
    match rule {
        MacRule::GuidMask => Some(MacAddr([g[0], g[1], g[2], g[5], g[6], g[7]])),
        MacRule::GuidMaskLocal => Some(MacAddr([g[0] | 0x02, g[1], g[2], g[5], g[6], g[7]])),
        MacRule::MellanoxLegacy if guid.is_mellanox() => Some(MacAddr([
            if g[3] == 0x02 { 0x00 } else { 0x02 },
            g[1],
            g[2],
            g[5],
            g[6],
            g[7],
        ])),
        MacRule::MellanoxLegacy => None,
        MacRule::FirmwareMac => firmware_mac,
    }
}

/// An InfiniBand port the platform has: where the HCA is, which port, its GUID, and the
/// firmware's Ethernet MAC for it if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IbPort {
    /// PCI function of the HCA.
    pub pci: PciAddress,
    /// Port number, 1-based.
    pub port: u8,
    /// Port GUID.
    pub guid: PortGuid,
    /// The firmware's MAC for the port, if the driver read one.
    pub firmware_mac: Option<MacAddr>,
}

impl IbPort {
    /// The first rule whose address for this port is `mac`.
    pub fn rule_for(&self, mac: MacAddr) -> Option<MacRule> {
        MacRule::ALL
            .into_iter()
            .find(|&r| mac_for(r, self.guid, self.firmware_mac) == Some(mac))
    }
}

/// How a NIC structure was matched to a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// PCI address and MAC (under the given rule) both agree.
    PciAndMac(MacRule),
    /// The MAC alone (the PCI address in the table names no HCA port).
    MacOnly(MacRule),
    /// The PCI address alone, naming an HCA with one port.
    PciOnly,
}

/// A port the NIC structure describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMatch {
    /// Index into the slice given to [`match_nic`].
    pub index: usize,
    /// How.
    pub by: MatchedBy,
}

/// Why no single port matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchError {
    /// Neither the PCI address nor the MAC names a port.
    NoPort,
    /// Several ports fit equally well (for example two ports of one HCA and a MAC that no rule
    /// gives).
    Ambiguous {
        /// How many.
        candidates: usize,
    },
}

impl fmt::Display for MatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchError::NoPort => f.write_str("no InfiniBand port has this PCI address or MAC"),
            MatchError::Ambiguous { candidates } => write!(
                f,
                "{candidates} InfiniBand ports fit this NIC structure equally well"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for MatchError {}

/// Finds the port a NIC structure describes among `ports`.
pub fn match_nic(nic: &Nic, ports: &[IbPort]) -> Result<PortMatch, MatchError> {
    let by_mac = |same_pci: bool| -> Vec<(usize, MacRule)> {
        ports
            .iter()
            .enumerate()
            .filter(|(_, p)| !same_pci || p.pci == nic.pci)
            .filter_map(|(i, p)| p.rule_for(nic.mac).map(|r| (i, r)))
            .collect()
    };
    type How = fn(MacRule) -> MatchedBy;
    for (same_pci, by) in [
        (true, MatchedBy::PciAndMac as How),
        (false, MatchedBy::MacOnly),
    ] {
        match by_mac(same_pci).as_slice() {
            [] => {}
            &[(index, rule)] => {
                return Ok(PortMatch {
                    index,
                    by: by(rule),
                })
            }
            many => {
                return Err(MatchError::Ambiguous {
                    candidates: many.len(),
                })
            }
        }
    }
    let at_pci: Vec<usize> = (0..ports.len())
        .filter(|&i| ports[i].pci == nic.pci)
        .collect();
    match at_pci.as_slice() {
        [] => Err(MatchError::NoPort),
        &[index] => Ok(PortMatch {
            index,
            by: MatchedBy::PciOnly,
        }),
        many => Err(MatchError::Ambiguous {
            candidates: many.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The reference's worked example: port GUID 00:02:c9:03:00:00:10:39.
    const G: PortGuid = PortGuid([0x00, 0x02, 0xc9, 0x03, 0x00, 0x00, 0x10, 0x39]);

    #[test]
    fn rules_on_the_reference_example() {
        assert_eq!(
            mac_for(MacRule::GuidMask, G, None),
            Some(MacAddr([0x00, 0x02, 0xc9, 0x00, 0x10, 0x39]))
        );
        assert_eq!(
            mac_for(MacRule::MellanoxLegacy, G, None),
            Some(MacAddr([0x02, 0x02, 0xc9, 0x00, 0x10, 0x39]))
        );
        assert_eq!(
            mac_for(MacRule::GuidMaskLocal, G, None),
            Some(MacAddr([0x02, 0x02, 0xc9, 0x00, 0x10, 0x39]))
        );
        assert_eq!(mac_for(MacRule::FirmwareMac, G, None), None);
    }

    #[test]
    fn legacy_rule_byte_zero_follows_guid_byte_three() {
        let g = PortGuid([0x00, 0x02, 0xc9, 0x02, 0x00, 0x00, 0x10, 0x39]);
        assert_eq!(
            mac_for(MacRule::MellanoxLegacy, g, None).unwrap().0[0],
            0x00
        );
        // A non-Mellanox GUID has no legacy address.
        let q = PortGuid([0x00, 0x11, 0x75, 0x00, 0x00, 0x01, 0x02, 0x03]);
        assert_eq!(mac_for(MacRule::MellanoxLegacy, q, None), None);
        assert_eq!(
            mac_for(MacRule::GuidMask, q, None),
            Some(MacAddr([0x00, 0x11, 0x75, 0x01, 0x02, 0x03]))
        );
    }
}
