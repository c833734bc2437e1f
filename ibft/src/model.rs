//! The owned, typed view of a validated table: what the boot flows consume and what the
//! builder writes.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, SocketAddr};

pub use crate::wire::{ControlFlags, InitiatorFlags, NicFlags, TargetFlags};
pub use secret::Secret;

/// A whole iBFT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ibft {
    /// The ACPI header fields.
    pub header: Header,
    /// Control structure flags.
    pub control_flags: ControlFlags,
    /// The initiator.
    pub initiator: Initiator,
    /// The NICs, in slot order; each one's `index` is its slot.
    pub nics: Vec<Nic>,
    /// The targets, in slot order; each one's `index` is its slot.
    pub targets: Vec<Target>,
}

impl Ibft {
    /// The NIC with the given index.
    pub fn nic(&self, index: u8) -> Option<&Nic> {
        self.nics.iter().find(|n| n.index == index)
    }

    /// The target the firmware booted from: the first valid, boot-selected target, else the
    /// first valid one.
    pub fn boot_target(&self) -> Option<&Target> {
        let valid = || self.targets.iter().filter(|t| t.is_valid());
        valid()
            .find(|t| t.flags.contains(TargetFlags::BOOT_SELECTED))
            .or_else(|| valid().next())
    }

    /// The NIC a target is reached through.
    pub fn nic_for(&self, target: &Target) -> Option<&Nic> {
        self.nic(target.nic_association)
    }
}

/// The ACPI header fields that carry information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Which signature the table carries.
    pub signature: Signature,
    /// OEM identifier, NUL-padded.
    pub oem_id: [u8; 6],
    /// OEM table identifier, NUL-padded.
    pub oem_table_id: [u8; 8],
    /// OEM revision.
    pub oem_revision: u32,
    /// Creator (ASL compiler) id.
    pub creator_id: [u8; 4],
    /// Creator revision.
    pub creator_revision: u32,
}

impl Default for Header {
    fn default() -> Self {
        Self {
            signature: Signature::IBFT,
            oem_id: *b"ISBOOT",
            oem_table_id: *b"isboot\0\0",
            oem_revision: 1,
            creator_id: *b"ISBT",
            creator_revision: 1,
        }
    }
}

/// A table signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 4]);

impl Signature {
    /// `iBFT`, as the iBFT 1.03 specification writes it (and iPXE does).
    pub const IBFT: Self = Self(*b"iBFT");
    /// `IBFT`, ACPICA's `ACPI_SIG_IBFT`.
    pub const IBFT_UPPER: Self = Self(*b"IBFT");
    /// `BIFT`, Broadcom's iSCSI offload firmware.
    pub const BIFT: Self = Self(*b"BIFT");

    /// Whether these four bytes are one of the signatures an iBFT may carry.
    pub fn is_known(bytes: &[u8]) -> bool {
        crate::wire::SIGNATURES.iter().any(|s| s[..] == *bytes)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            write!(f, "{}", if b.is_ascii_graphic() { b as char } else { '?' })?;
        }
        Ok(())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// The initiator structure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Initiator {
    /// Flags.
    pub flags: InitiatorFlags,
    /// iSNS server.
    pub isns_server: Option<IpAddr>,
    /// SLP server.
    pub slp_server: Option<IpAddr>,
    /// Primary RADIUS server.
    pub primary_radius_server: Option<IpAddr>,
    /// Secondary RADIUS server.
    pub secondary_radius_server: Option<IpAddr>,
    /// The initiator's iSCSI name.
    pub name: Option<String>,
}

/// A NIC structure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nic {
    /// Index (the target's NIC association refers to it); equals the slot.
    pub index: u8,
    /// Flags.
    pub flags: NicFlags,
    /// The address.
    pub ip_address: Option<IpAddr>,
    /// Subnet prefix length in bits.
    pub prefix_length: u8,
    /// Where the address came from.
    pub origin: Origin,
    /// Default gateway.
    pub gateway: Option<IpAddr>,
    /// Primary DNS server.
    pub primary_dns: Option<IpAddr>,
    /// Secondary DNS server.
    pub secondary_dns: Option<IpAddr>,
    /// DHCP server.
    pub dhcp_server: Option<IpAddr>,
    /// 802.1Q tag (priority in bits 15:13, VLAN id in 11:0); 0 for none.
    pub vlan: u16,
    /// Link address; for IPoIB see [`crate::identity`].
    pub mac: MacAddr,
    /// The PCI function of the NIC (or HCA).
    pub pci: PciAddress,
    /// Host name.
    pub hostname: Option<String>,
}

impl Nic {
    /// Whether the block-valid flag is set.
    pub fn is_valid(&self) -> bool {
        self.flags.contains(NicFlags::BLOCK_VALID)
    }

    /// Whether the firmware booted through this NIC.
    pub fn is_boot_selected(&self) -> bool {
        self.flags.contains(NicFlags::BOOT_SELECTED)
    }

    /// The VLAN id (low 12 bits of the tag), if any.
    pub fn vlan_id(&self) -> Option<u16> {
        match self.vlan & 0x0fff {
            0 => None,
            id => Some(id),
        }
    }
}

/// A target structure.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// Index; equals the slot.
    pub index: u8,
    /// Flags.
    pub flags: TargetFlags,
    /// The target's address.
    pub ip_address: Option<IpAddr>,
    /// TCP port.
    pub port: u16,
    /// Boot LUN.
    pub lun: Lun,
    /// Authentication.
    pub chap_type: ChapType,
    /// Index of the NIC to use.
    pub nic_association: u8,
    /// Target iSCSI name.
    pub name: Option<String>,
    /// CHAP name (ours).
    pub chap_name: Option<String>,
    /// CHAP secret (ours).
    pub chap_secret: Option<Secret>,
    /// Reverse CHAP name (the target's).
    pub reverse_chap_name: Option<String>,
    /// Reverse CHAP secret (the target's).
    pub reverse_chap_secret: Option<Secret>,
}

impl Target {
    /// Whether the block-valid flag is set.
    pub fn is_valid(&self) -> bool {
        self.flags.contains(TargetFlags::BLOCK_VALID)
    }

    /// Whether the firmware booted from this target.
    pub fn is_boot_selected(&self) -> bool {
        self.flags.contains(TargetFlags::BOOT_SELECTED)
    }

    /// Address and port, when the address is present.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip_address.map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets print as `Secret(<redacted>)` through their own Debug.
        f.debug_struct("Target")
            .field("index", &self.index)
            .field("flags", &self.flags)
            .field("ip_address", &self.ip_address)
            .field("port", &self.port)
            .field("lun", &self.lun)
            .field("chap_type", &self.chap_type)
            .field("nic_association", &self.nic_association)
            .field("name", &self.name)
            .field("chap_name", &self.chap_name)
            .field("chap_secret", &self.chap_secret)
            .field("reverse_chap_name", &self.reverse_chap_name)
            .field("reverse_chap_secret", &self.reverse_chap_secret)
            .finish()
    }
}

/// How a target authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChapType {
    /// No authentication.
    #[default]
    None,
    /// One-way CHAP: the initiator proves itself.
    Chap,
    /// Mutual CHAP: both sides prove themselves.
    Mutual,
}

impl ChapType {
    /// The table's encoding.
    pub const fn to_raw(self) -> u8 {
        match self {
            ChapType::None => 0,
            ChapType::Chap => 1,
            ChapType::Mutual => 2,
        }
    }

    /// Decodes the table's encoding; `None` for an undefined value.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(ChapType::None),
            1 => Some(ChapType::Chap),
            2 => Some(ChapType::Mutual),
            _ => None,
        }
    }

    /// A word for messages and sysctls.
    pub const fn name(self) -> &'static str {
        match self {
            ChapType::None => "none",
            ChapType::Chap => "chap",
            ChapType::Mutual => "mutual",
        }
    }
}

/// Where a NIC's address came from: Windows' `NL_PREFIX_ORIGIN`, which the iBFT uses. Values
/// outside the named ones are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Origin(pub u8);

impl Origin {
    /// Other.
    pub const OTHER: Self = Self(0);
    /// Configured by hand (static).
    pub const MANUAL: Self = Self(1);
    /// A well-known address.
    pub const WELL_KNOWN: Self = Self(2);
    /// From DHCP.
    pub const DHCP: Self = Self(3);
    /// From a router advertisement.
    pub const ROUTER_ADVERTISEMENT: Self = Self(4);
    /// Unchanged.
    pub const UNCHANGED: Self = Self(0x0f);

    /// A word for messages and sysctls.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "other",
            1 => "manual",
            2 => "well-known",
            3 => "dhcp",
            4 => "router-advertisement",
            0x0f => "unchanged",
            _ => "unknown",
        }
    }
}

/// A 6-byte link address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// A PCI function in segment 0 (the iBFT has no segment field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct PciAddress {
    /// Bus, 0–255.
    pub bus: u8,
    /// Device (slot), 0–31.
    pub device: u8,
    /// Function, 0–7.
    pub function: u8,
}

impl PciAddress {
    /// Decodes the iBFT's packed form: bus in bits 15:8, device in 7:3, function in 2:0.
    pub const fn from_bdf(bdf: u16) -> Self {
        Self {
            bus: (bdf >> 8) as u8,
            device: ((bdf >> 3) & 0x1f) as u8,
            function: (bdf & 0x7) as u8,
        }
    }

    /// Encodes to the packed form. Device and function are masked to their widths.
    pub const fn to_bdf(self) -> u16 {
        ((self.bus as u16) << 8) | (((self.device & 0x1f) as u16) << 3) | (self.function & 7) as u16
    }
}

impl fmt::Display for PciAddress {
    /// FreeBSD's `pciconf` form without the domain: `bus:slot:function`, decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.bus, self.device, self.function)
    }
}

/// A SCSI LUN as the 8 bytes of SAM's LUN structure, byte 0 first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Lun(pub [u8; 8]);

impl Lun {
    /// Encodes a single-level LUN the way initiators do: peripheral device addressing below
    /// 256, flat space addressing up to 16383 (SAM-5 §4.7). `None` above that.
    pub const fn from_number(n: u64) -> Option<Self> {
        if n < 256 {
            Some(Self([0, n as u8, 0, 0, 0, 0, 0, 0]))
        } else if n < 0x4000 {
            Some(Self([0x40 | (n >> 8) as u8, n as u8, 0, 0, 0, 0, 0, 0]))
        } else {
            None
        }
    }

    /// The LUN number of a single-level LUN in peripheral (bus 0) or flat space addressing;
    /// `None` for other forms (which are passed to the target as the 8 bytes).
    pub const fn number(&self) -> Option<u64> {
        let b = &self.0;
        if b[2] != 0 || b[3] != 0 || b[4] != 0 || b[5] != 0 || b[6] != 0 || b[7] != 0 {
            return None;
        }
        match b[0] >> 6 {
            0b00 if b[0] & 0x3f == 0 => Some(b[1] as u64),
            0b01 => Some((((b[0] & 0x3f) as u64) << 8) | b[1] as u64),
            _ => None,
        }
    }
}

impl fmt::Display for Lun {
    /// The LUN number where it has one, else the 8 bytes in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number() {
            Some(n) => write!(f, "{n}"),
            None => {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lun(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn lun_encodings() {
        assert_eq!(Lun::from_number(1).unwrap().0, [0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            Lun::from_number(300).unwrap().0,
            [0x41, 0x2c, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(Lun::from_number(0x4000), None);
        for n in [0u64, 1, 2, 255, 256, 1000, 0x3fff] {
            assert_eq!(Lun::from_number(n).unwrap().number(), Some(n));
        }
        // A two-level LUN has no single number.
        assert_eq!(Lun([0, 1, 0, 2, 0, 0, 0, 0]).number(), None);
        assert_eq!(
            format!("{}", Lun([0, 1, 0, 2, 0, 0, 0, 0])),
            "0001000200000000"
        );
        assert_eq!(format!("{}", Lun::from_number(7).unwrap()), "7");
    }

    #[test]
    fn pci_bdf_round_trip() {
        let p = PciAddress {
            bus: 0x81,
            device: 0x1f,
            function: 7,
        };
        assert_eq!(p.to_bdf(), 0x81ff);
        assert_eq!(PciAddress::from_bdf(0x81ff), p);
        assert_eq!(format!("{p}"), "129:31:7");
    }

    #[test]
    fn secrets_do_not_print() {
        let t = Target {
            chap_secret: Some(Secret::from("hunter2")),
            reverse_chap_secret: Some(Secret::from("swordfish")),
            ..Target::default()
        };
        let s = format!("{t:?}");
        assert!(!s.contains("hunter2") && !s.contains("swordfish"), "{s}");
        assert!(s.contains("redacted"));
    }

    #[test]
    fn boot_target_prefers_boot_selected_valid() {
        let mk = |index, flags| Target {
            index,
            flags,
            ..Target::default()
        };
        let table = Ibft {
            header: Header::default(),
            control_flags: ControlFlags::empty(),
            initiator: Initiator::default(),
            nics: Vec::new(),
            targets: alloc::vec![
                mk(0, TargetFlags::BOOT_SELECTED), // not valid: an aborted attempt
                mk(1, TargetFlags::BLOCK_VALID),
                mk(2, TargetFlags::BLOCK_VALID | TargetFlags::BOOT_SELECTED),
            ],
        };
        assert_eq!(table.boot_target().unwrap().index, 2);
    }
}
