//! Typed errors and warnings. Each names the structure and the field it is about, so a boot
//! message or `ibft check` can say exactly what a firmware got wrong.

use core::fmt;

/// Which structure of the table an error or warning is about. NICs and targets carry their
/// slot number in the control structure (which is also their index in a valid table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Structure {
    /// The table header (ACPI header and reserved bytes).
    Table,
    /// The control structure.
    Control,
    /// The initiator structure.
    Initiator,
    /// The NIC structure in the given slot.
    Nic(u8),
    /// The target structure in the given slot.
    Target(u8),
    /// The extensions structure.
    Extensions,
}

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Structure::Table => f.write_str("table header"),
            Structure::Control => f.write_str("control structure"),
            Structure::Initiator => f.write_str("initiator structure"),
            Structure::Nic(n) => write!(f, "NIC {n}"),
            Structure::Target(n) => write!(f, "target {n}"),
            Structure::Extensions => f.write_str("extensions structure"),
        }
    }
}

/// A field of a structure, named as the iBFT specification names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // Each variant is the spec's field of the same name.
pub enum Field {
    // Table header.
    Signature,
    Length,
    Revision,
    Checksum,
    Reserved,
    // Every structure header.
    StructureId,
    StructureVersion,
    StructureLength,
    Index,
    Flags,
    // Control.
    ExtensionsOffset,
    InitiatorOffset,
    NicOffset,
    TargetOffset,
    // Initiator.
    IsnsServer,
    SlpServer,
    PrimaryRadiusServer,
    SecondaryRadiusServer,
    InitiatorName,
    // NIC.
    IpAddress,
    PrefixLength,
    Origin,
    Gateway,
    PrimaryDns,
    SecondaryDns,
    DhcpServer,
    Vlan,
    Mac,
    PciBdf,
    Hostname,
    // Target.
    Port,
    Lun,
    ChapType,
    NicAssociation,
    TargetName,
    ChapName,
    ChapSecret,
    ReverseChapName,
    ReverseChapSecret,
}

impl Field {
    /// The field's name as printed in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Signature => "signature",
            Field::Length => "length",
            Field::Revision => "revision",
            Field::Checksum => "checksum",
            Field::Reserved => "reserved",
            Field::StructureId => "structure id",
            Field::StructureVersion => "version",
            Field::StructureLength => "length",
            Field::Index => "index",
            Field::Flags => "flags",
            Field::ExtensionsOffset => "extensions offset",
            Field::InitiatorOffset => "initiator offset",
            Field::NicOffset => "NIC offset",
            Field::TargetOffset => "target offset",
            Field::IsnsServer => "iSNS server",
            Field::SlpServer => "SLP server",
            Field::PrimaryRadiusServer => "primary RADIUS server",
            Field::SecondaryRadiusServer => "secondary RADIUS server",
            Field::InitiatorName => "initiator name",
            Field::IpAddress => "IP address",
            Field::PrefixLength => "prefix length",
            Field::Origin => "origin",
            Field::Gateway => "gateway",
            Field::PrimaryDns => "primary DNS",
            Field::SecondaryDns => "secondary DNS",
            Field::DhcpServer => "DHCP server",
            Field::Vlan => "VLAN",
            Field::Mac => "MAC address",
            Field::PciBdf => "PCI bus/device/function",
            Field::Hostname => "hostname",
            Field::Port => "port",
            Field::Lun => "LUN",
            Field::ChapType => "CHAP type",
            Field::NicAssociation => "NIC association",
            Field::TargetName => "target name",
            Field::ChapName => "CHAP name",
            Field::ChapSecret => "CHAP secret",
            Field::ReverseChapName => "reverse CHAP name",
            Field::ReverseChapSecret => "reverse CHAP secret",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong. Numbers are the values found in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The bytes end before what must be there.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Not one of `iBFT`, `IBFT`, `BIFT`.
    BadSignature([u8; 4]),
    /// The declared table length is smaller than a table can be.
    LengthTooSmall {
        /// Declared length.
        length: u32,
        /// Smallest valid length.
        minimum: u32,
    },
    /// The declared table length runs past the bytes given.
    LengthBeyondBuffer {
        /// Declared length.
        length: u32,
        /// Bytes available.
        available: usize,
    },
    /// The bytes of the table do not sum to zero.
    BadChecksum {
        /// The byte sum found.
        sum: u8,
    },
    /// A table revision other than 1.
    UnsupportedRevision(u8),
    /// A structure id other than the one its slot requires.
    WrongStructureId {
        /// The id the slot requires.
        expected: u8,
        /// The id found.
        found: u8,
    },
    /// A structure version other than 1.
    UnsupportedVersion(u8),
    /// A structure length below the structure's size.
    StructureTooShort {
        /// Declared length.
        length: u16,
        /// The structure's size.
        minimum: u16,
    },
    /// A structure or string lies (partly) outside the table.
    OutsideTable {
        /// Where it starts.
        offset: usize,
        /// Where it ends (exclusive).
        end: usize,
        /// The table length.
        table_length: u32,
    },
    /// A structure or string overlaps the table header or another structure.
    Overlaps {
        /// Where it starts.
        offset: usize,
        /// What it overlaps.
        other: Structure,
    },
    /// A structure's index differs from its slot in the control structure.
    IndexMismatch {
        /// The slot.
        expected: u8,
        /// The index found.
        found: u8,
    },
    /// A required structure is absent (offset 0).
    Missing,
    /// A string holds a NUL before its declared end.
    EmbeddedNul {
        /// Position of the NUL inside the string.
        at: usize,
    },
    /// A string is not valid UTF-8 text.
    NotText,
    /// A prefix length longer than the address.
    BadPrefixLength {
        /// The prefix length found.
        prefix: u8,
        /// The longest valid for the address family.
        max: u8,
    },
    /// A CHAP type other than 0, 1 or 2.
    UnknownChapType(u8),
    /// The CHAP type calls for a name or secret that is absent.
    MissingCredential,
    /// The target names a NIC that is not in the table.
    NoSuchNic(u8),
    /// A NIC or target slot past the 256 an 8-bit index can name.
    TooManyStructures,
}

/// A validation failure, naming the structure and field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    /// The structure.
    pub structure: Structure,
    /// The field.
    pub field: Field,
    /// What is wrong with it.
    pub kind: ErrorKind,
}

impl Error {
    pub(crate) const fn new(structure: Structure, field: Field, kind: ErrorKind) -> Self {
        Self {
            structure,
            field,
            kind,
        }
    }
}

fn fmt_sig(f: &mut fmt::Formatter<'_>, sig: &[u8; 4]) -> fmt::Result {
    f.write_str("\"")?;
    for &b in sig {
        if b.is_ascii_graphic() || b == b' ' {
            write!(f, "{}", b as char)?;
        } else {
            write!(f, "\\x{b:02x}")?;
        }
    }
    f.write_str("\"")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.structure, self.field)?;
        match self.kind {
            ErrorKind::Truncated { needed, available } => {
                write!(f, "needs {needed} bytes, only {available} available")
            }
            ErrorKind::BadSignature(sig) => {
                fmt_sig(f, &sig)?;
                f.write_str(" is not an iBFT signature (iBFT, IBFT or BIFT)")
            }
            ErrorKind::LengthTooSmall { length, minimum } => {
                write!(
                    f,
                    "{length} is shorter than the smallest table ({minimum} bytes)"
                )
            }
            ErrorKind::LengthBeyondBuffer { length, available } => write!(
                f,
                "the table claims {length} bytes but only {available} are there"
            ),
            ErrorKind::BadChecksum { sum } => {
                write!(f, "bytes sum to {sum:#04x}, not zero (table corrupt)")
            }
            ErrorKind::UnsupportedRevision(r) => write!(f, "revision {r} is not 1"),
            ErrorKind::WrongStructureId { expected, found } => {
                write!(f, "id {found} where a structure of id {expected} belongs")
            }
            ErrorKind::UnsupportedVersion(v) => write!(f, "version {v} is not 1"),
            ErrorKind::StructureTooShort { length, minimum } => {
                write!(
                    f,
                    "{length} is shorter than the structure ({minimum} bytes)"
                )
            }
            ErrorKind::OutsideTable {
                offset,
                end,
                table_length,
            } => write!(
                f,
                "bytes {offset}..{end} lie outside the {table_length}-byte table"
            ),
            ErrorKind::Overlaps { offset, other } => {
                write!(f, "offset {offset} overlaps the {other}")
            }
            ErrorKind::IndexMismatch { expected, found } => {
                write!(f, "index {found} in slot {expected}")
            }
            ErrorKind::Missing => f.write_str("absent, and the table is unusable without it"),
            ErrorKind::EmbeddedNul { at } => write!(f, "holds a NUL byte at position {at}"),
            ErrorKind::NotText => f.write_str("is not valid UTF-8 text"),
            ErrorKind::BadPrefixLength { prefix, max } => {
                write!(f, "{prefix} is longer than the address ({max} bits)")
            }
            ErrorKind::UnknownChapType(t) => {
                write!(f, "{t} is not 0 (none), 1 (CHAP) or 2 (mutual CHAP)")
            }
            ErrorKind::MissingCredential => f.write_str("absent, but the CHAP type requires it"),
            ErrorKind::NoSuchNic(n) => write!(f, "NIC {n} is not in the table"),
            ErrorKind::TooManyStructures => {
                f.write_str("a slot past the 256 that an 8-bit index can name")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Something a firmware got wrong that does not stop the table from being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warning {
    /// The structure.
    pub structure: Structure,
    /// The field.
    pub field: Field,
    /// What was found.
    pub kind: WarningKind,
}

/// What a [`Warning`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// A structure longer than this version knows; the extra bytes are ignored.
    StructureLonger {
        /// Declared length.
        length: u16,
        /// The structure's size.
        expected: u16,
    },
    /// Flag bits the specification reserves are set.
    ReservedFlags(u8),
    /// Reserved bytes are not zero.
    ReservedNotZero,
    /// A structure not on the 8-byte boundary the specification asks for.
    Misaligned {
        /// Its offset.
        offset: usize,
    },
    /// An extensions structure is present; it is not interpreted.
    ExtensionsIgnored,
    /// The control structure's length leaves half an offset; the odd byte is ignored.
    OddControlLength(u16),
    /// A string's declared length counts trailing NUL bytes; they are dropped.
    TrailingNuls(usize),
    /// A string is not followed by the NUL the specification asks for.
    Unterminated,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.structure, self.field)?;
        match self.kind {
            WarningKind::StructureLonger { length, expected } => write!(
                f,
                "{length} bytes, longer than the {expected} this version knows; extra bytes ignored"
            ),
            WarningKind::ReservedFlags(bits) => write!(f, "reserved bits {bits:#04x} set"),
            WarningKind::ReservedNotZero => f.write_str("reserved bytes are not zero"),
            WarningKind::Misaligned { offset } => {
                write!(f, "offset {offset} is not on an 8-byte boundary")
            }
            WarningKind::ExtensionsIgnored => {
                f.write_str("an extensions structure is present and ignored")
            }
            WarningKind::OddControlLength(len) => {
                write!(f, "length {len} is odd; the last byte is ignored")
            }
            WarningKind::TrailingNuls(n) => {
                write!(f, "the declared length counts {n} trailing NUL byte(s)")
            }
            WarningKind::Unterminated => f.write_str("not followed by a NUL byte"),
        }
    }
}
