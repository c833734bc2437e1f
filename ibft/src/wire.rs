//! The iBFT 1.03 wire layout: every structure as a `#[repr(C)]` zerocopy type with
//! little-endian fields, its size and field offsets pinned by assertions.
//!
//! Sources for the layout: the iBFT 1.03 specification as ACPICA (`actbl1.h`), Linux
//! (`drivers/firmware/iscsi_ibft.c`) and iPXE (`src/include/ipxe/ibft.h`, `src/core/ibft.c`) implement it. All integers are little-endian; IP addresses are
//! 16 bytes (IPv6, or IPv4-mapped `::ffff:a.b.c.d`); strings live in a heap inside the table and
//! are referenced by a (length, offset) pair, the length not counting the NUL.
//!
//! Nothing here validates: [`crate::parse`] does.

use bitflags::bitflags;
use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The three signatures seen in the wild: `iBFT` (the 1.03 specification), `IBFT` (ACPICA's
/// `ACPI_SIG_IBFT`) and `BIFT` (Broadcom's iSCSI offload firmware).
pub const SIGNATURES: [[u8; 4]; 3] = [*b"iBFT", *b"IBFT", *b"BIFT"];

/// The only table revision defined (iBFT 1.03 §1.4.3: "Revision = 1").
pub const TABLE_REVISION: u8 = 1;

/// The only structure version defined for the control, initiator, NIC and target structures.
pub const STRUCTURE_VERSION: u8 = 1;

/// The ACPI standard table header (ACPI 6.5 §5.2.6), the first 36 bytes of an iBFT.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct AcpiHeader {
    /// `iBFT`, `IBFT` or `BIFT`.
    pub signature: [u8; 4],
    /// Length of the whole table in bytes, string heap included.
    pub length: U32,
    /// Table revision; 1.
    pub revision: u8,
    /// Makes the byte sum of the whole table zero.
    pub checksum: u8,
    /// OEM identifier (iPXE: `FENSYS`).
    pub oem_id: [u8; 6],
    /// OEM table identifier (iPXE: `iPXE`).
    pub oem_table_id: [u8; 8],
    /// OEM revision.
    pub oem_revision: U32,
    /// ID of the tool that created the table.
    pub creator_id: [u8; 4],
    /// Revision of that tool.
    pub creator_revision: U32,
}
const_assert_eq!(size_of::<AcpiHeader>(), 36);
const_assert_eq!(offset_of!(AcpiHeader, length), 4);
const_assert_eq!(offset_of!(AcpiHeader, revision), 8);
const_assert_eq!(offset_of!(AcpiHeader, checksum), 9);
const_assert_eq!(offset_of!(AcpiHeader, oem_id), 10);
const_assert_eq!(offset_of!(AcpiHeader, oem_table_id), 16);
const_assert_eq!(offset_of!(AcpiHeader, oem_revision), 24);
const_assert_eq!(offset_of!(AcpiHeader, creator_id), 28);
const_assert_eq!(offset_of!(AcpiHeader, creator_revision), 32);

/// The iBFT table header: the ACPI header and 12 reserved bytes; the control structure follows
/// at offset 48.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct TableHeader {
    /// The ACPI header.
    pub acpi: AcpiHeader,
    /// Reserved, zero.
    pub reserved: [u8; 12],
}
const_assert_eq!(size_of::<TableHeader>(), 48);
const_assert_eq!(offset_of!(TableHeader, reserved), 36);

/// Offset of the control structure from the start of the table.
pub const CONTROL_OFFSET: usize = size_of::<TableHeader>();

/// A structure id (iBFT 1.03 §1.4.4). Values from the table are kept as they are; the named
/// constants are the ones defined.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(transparent)]
pub struct StructureId(pub u8);

impl StructureId {
    /// Reserved.
    pub const RESERVED: Self = Self(0);
    /// Control structure.
    pub const CONTROL: Self = Self(1);
    /// Initiator structure.
    pub const INITIATOR: Self = Self(2);
    /// NIC structure.
    pub const NIC: Self = Self(3);
    /// Target structure.
    pub const TARGET: Self = Self(4);
    /// Extensions structure.
    pub const EXTENSIONS: Self = Self(5);
}

/// The header every structure starts with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct StructureHeader {
    /// What the structure is.
    pub id: StructureId,
    /// Structure version; 1.
    pub version: u8,
    /// Length of the structure in bytes.
    pub length: U16,
    /// Which NIC or target this is (the target's NIC association refers to a NIC's index).
    pub index: u8,
    /// Per-type flags.
    pub flags: u8,
}
const_assert_eq!(size_of::<StructureHeader>(), 6);
const_assert_eq!(offset_of!(StructureHeader, version), 1);
const_assert_eq!(offset_of!(StructureHeader, length), 2);
const_assert_eq!(offset_of!(StructureHeader, index), 4);
const_assert_eq!(offset_of!(StructureHeader, flags), 5);

/// A reference into the string heap: length (without the NUL) and offset from the table start.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct HeapString {
    /// Length in bytes, not counting the terminating NUL.
    pub length: U16,
    /// Offset from the start of the table.
    pub offset: U16,
}
const_assert_eq!(size_of::<HeapString>(), 4);

/// A 16-byte IP address field: IPv6, or IPv4-mapped. All zeros (or `::ffff:0.0.0.0`) means
/// "not present".
pub type IpField = [u8; 16];

/// The control structure (id 1), fixed part. Expansion offsets for more NICs and targets follow
/// when the length is over 18, as further (NIC, target) pairs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Control {
    /// Structure header; index 0; flags: [`ControlFlags`].
    pub header: StructureHeader,
    /// Offset of the extensions structure, 0 if none.
    pub extensions: U16,
    /// Offset of the initiator structure.
    pub initiator: U16,
    /// Offset of NIC 0.
    pub nic0: U16,
    /// Offset of target 0.
    pub target0: U16,
    /// Offset of NIC 1.
    pub nic1: U16,
    /// Offset of target 1.
    pub target1: U16,
}
const_assert_eq!(size_of::<Control>(), 18);
const_assert_eq!(offset_of!(Control, extensions), 6);
const_assert_eq!(offset_of!(Control, initiator), 8);
const_assert_eq!(offset_of!(Control, nic0), 10);
const_assert_eq!(offset_of!(Control, target0), 12);
const_assert_eq!(offset_of!(Control, nic1), 14);
const_assert_eq!(offset_of!(Control, target1), 16);

/// Offset, inside the control structure, of the first (NIC, target) offset pair.
pub const CONTROL_FIRST_PAIR: usize = offset_of!(Control, nic0);

/// The initiator structure (id 2).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Initiator {
    /// Structure header; flags: [`InitiatorFlags`].
    pub header: StructureHeader,
    /// iSNS server.
    pub isns_server: IpField,
    /// SLP server.
    pub slp_server: IpField,
    /// Primary RADIUS server.
    pub primary_radius_server: IpField,
    /// Secondary RADIUS server.
    pub secondary_radius_server: IpField,
    /// The initiator's iSCSI name.
    pub name: HeapString,
}
const_assert_eq!(size_of::<Initiator>(), 74);
const_assert_eq!(offset_of!(Initiator, isns_server), 6);
const_assert_eq!(offset_of!(Initiator, slp_server), 22);
const_assert_eq!(offset_of!(Initiator, primary_radius_server), 38);
const_assert_eq!(offset_of!(Initiator, secondary_radius_server), 54);
const_assert_eq!(offset_of!(Initiator, name), 70);

/// The NIC structure (id 3).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Nic {
    /// Structure header; flags: [`NicFlags`].
    pub header: StructureHeader,
    /// The NIC's address.
    pub ip_address: IpField,
    /// Subnet mask prefix length in bits.
    pub prefix_length: u8,
    /// Where the address came from (Windows `NL_PREFIX_ORIGIN`).
    pub origin: u8,
    /// Default gateway.
    pub gateway: IpField,
    /// Primary DNS server.
    pub primary_dns: IpField,
    /// Secondary DNS server.
    pub secondary_dns: IpField,
    /// The DHCP server the address came from.
    pub dhcp_server: IpField,
    /// 802.1Q tag, 0 for none.
    pub vlan: U16,
    /// The link address; for IPoIB a 6-byte address derived from the port (see
    /// [`crate::identity`]).
    pub mac: [u8; 6],
    /// PCI bus (15:8), device (7:3) and function (2:0); segment 0 implied.
    pub pci_bdf: U16,
    /// Host name.
    pub hostname: HeapString,
}
const_assert_eq!(size_of::<Nic>(), 102);
const_assert_eq!(offset_of!(Nic, ip_address), 6);
const_assert_eq!(offset_of!(Nic, prefix_length), 22);
const_assert_eq!(offset_of!(Nic, origin), 23);
const_assert_eq!(offset_of!(Nic, gateway), 24);
const_assert_eq!(offset_of!(Nic, primary_dns), 40);
const_assert_eq!(offset_of!(Nic, secondary_dns), 56);
const_assert_eq!(offset_of!(Nic, dhcp_server), 72);
const_assert_eq!(offset_of!(Nic, vlan), 88);
const_assert_eq!(offset_of!(Nic, mac), 90);
const_assert_eq!(offset_of!(Nic, pci_bdf), 96);
const_assert_eq!(offset_of!(Nic, hostname), 98);

/// The target structure (id 4).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Target {
    /// Structure header; flags: [`TargetFlags`].
    pub header: StructureHeader,
    /// The target's address.
    pub ip_address: IpField,
    /// TCP port.
    pub port: U16,
    /// The boot LUN, 8 bytes in SAM order (byte 0 first).
    pub lun: [u8; 8],
    /// 0 none, 1 CHAP, 2 mutual CHAP.
    pub chap_type: u8,
    /// Index of the NIC structure to reach the target through.
    pub nic_association: u8,
    /// Target iSCSI name.
    pub name: HeapString,
    /// CHAP name (the initiator's, sent as `CHAP_N`).
    pub chap_name: HeapString,
    /// CHAP secret.
    pub chap_secret: HeapString,
    /// Reverse CHAP name (the target's, expected in its `CHAP_N`).
    pub reverse_chap_name: HeapString,
    /// Reverse CHAP secret.
    pub reverse_chap_secret: HeapString,
}
const_assert_eq!(size_of::<Target>(), 54);
const_assert_eq!(offset_of!(Target, ip_address), 6);
const_assert_eq!(offset_of!(Target, port), 22);
const_assert_eq!(offset_of!(Target, lun), 24);
const_assert_eq!(offset_of!(Target, chap_type), 32);
const_assert_eq!(offset_of!(Target, nic_association), 33);
const_assert_eq!(offset_of!(Target, name), 34);
const_assert_eq!(offset_of!(Target, chap_name), 38);
const_assert_eq!(offset_of!(Target, chap_secret), 42);
const_assert_eq!(offset_of!(Target, reverse_chap_name), 46);
const_assert_eq!(offset_of!(Target, reverse_chap_secret), 50);

bitflags! {
    /// Control structure flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct ControlFlags: u8 {
        /// Log in only to the boot-selected target (otherwise all of them).
        const SINGLE_LOGIN_ONLY = 1 << 0;
    }

    /// Initiator structure flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct InitiatorFlags: u8 {
        /// The structure holds valid data.
        const BLOCK_VALID = 1 << 0;
        /// The firmware booted through this initiator.
        const BOOT_SELECTED = 1 << 1;
    }

    /// NIC structure flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct NicFlags: u8 {
        /// The structure holds valid data.
        const BLOCK_VALID = 1 << 0;
        /// The firmware booted through this NIC.
        const BOOT_SELECTED = 1 << 1;
        /// The address is global (set) or link-local (clear).
        const GLOBAL = 1 << 2;
    }

    /// Target structure flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct TargetFlags: u8 {
        /// The structure holds valid data.
        const BLOCK_VALID = 1 << 0;
        /// The firmware booted from this target.
        const BOOT_SELECTED = 1 << 1;
        /// Use RADIUS for CHAP.
        const RADIUS_CHAP = 1 << 2;
        /// Use RADIUS for reverse CHAP.
        const RADIUS_REVERSE_CHAP = 1 << 3;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_ids_are_the_specs() {
        assert_eq!(StructureId::CONTROL.0, 1);
        assert_eq!(StructureId::INITIATOR.0, 2);
        assert_eq!(StructureId::NIC.0, 3);
        assert_eq!(StructureId::TARGET.0, 4);
        assert_eq!(StructureId::EXTENSIONS.0, 5);
    }

    #[test]
    fn fields_are_little_endian() {
        let mut h = <StructureHeader as zerocopy::FromZeros>::new_zeroed();
        h.length = U16::new(0x0102);
        assert_eq!(&h.as_bytes()[2..4], &[0x02, 0x01]);
    }
}
