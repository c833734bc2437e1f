//! Management datagrams: the 256-byte MAD and its 24-byte common header (IBA §13.4.2).

use static_assertions::const_assert_eq;
use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::WireError;

/// Size of every MAD on QP0/QP1.
pub const MAD_SIZE: usize = 256;

/// Management class (IBA §13.4.4). A newtype: classes from the wire may be anything.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(transparent)]
pub struct MgmtClass(pub u8);

impl MgmtClass {
    /// Subnet management, LID routed.
    pub const SUBN_LID_ROUTED: Self = Self(0x01);
    /// Subnet management, directed route.
    pub const SUBN_DIRECTED_ROUTE: Self = Self(0x81);
    /// Subnet administration.
    pub const SUBN_ADM: Self = Self(0x03);
    /// Performance management.
    pub const PERF: Self = Self(0x04);
}

/// MAD method with the response bit (IBA §13.4.5).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(transparent)]
pub struct MadMethod(pub u8);

impl MadMethod {
    /// Get.
    pub const GET: Self = Self(0x01);
    /// Set.
    pub const SET: Self = Self(0x02);
    /// Send.
    pub const SEND: Self = Self(0x03);
    /// Trap.
    pub const TRAP: Self = Self(0x05);
    /// SA GetTable.
    pub const GET_TABLE: Self = Self(0x12);
    /// SA Delete.
    pub const DELETE: Self = Self(0x15);
    /// GetResp (Get/Set response).
    pub const GET_RESP: Self = Self(0x81);
    /// SA GetTableResp.
    pub const GET_TABLE_RESP: Self = Self(0x92);
    /// SA DeleteResp.
    pub const DELETE_RESP: Self = Self(0x95);
    /// The response bit.
    pub const RESPONSE_BIT: u8 = 0x80;

    /// True when this is a response.
    pub const fn is_response(self) -> bool {
        self.0 & Self::RESPONSE_BIT != 0
    }
    /// The response method for a request method (Get/Set -> GetResp, others set the R bit).
    pub const fn response(self) -> Self {
        match self.0 {
            0x01 | 0x02 => Self::GET_RESP,
            m => Self(m | Self::RESPONSE_BIT),
        }
    }
}

/// Attribute identifier. A newtype with the ones this crate speaks.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(transparent)]
pub struct AttrId(pub U16);

impl AttrId {
    /// SMP NodeDescription.
    pub const NODE_DESC: Self = Self(U16::new(0x0010));
    /// SMP NodeInfo.
    pub const NODE_INFO: Self = Self(U16::new(0x0011));
    /// SMP GUIDInfo.
    pub const GUID_INFO: Self = Self(U16::new(0x0014));
    /// SMP PortInfo.
    pub const PORT_INFO: Self = Self(U16::new(0x0015));
    /// SMP P_KeyTable.
    pub const PKEY_TABLE: Self = Self(U16::new(0x0016));
    /// SA PathRecord.
    pub const PATH_RECORD: Self = Self(U16::new(0x0035));
    /// SA MCMemberRecord.
    pub const MC_MEMBER_RECORD: Self = Self(U16::new(0x0038));
}

/// MAD status word (IBA §13.4.7 table 109). Bits 4:2 carry the common "invalid field" codes,
/// bits 15:8 the class-specific code (for the SA, §15.2.1 table 159).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MadStatus(pub u16);

impl MadStatus {
    /// Success.
    pub const OK: Self = Self(0);
    /// Busy; the requester may retry.
    pub const BUSY: Self = Self(0x0001);
    /// Bad class version.
    pub const BAD_VERSION: Self = Self(0x0004);
    /// Method not supported.
    pub const METHOD_UNSUPPORTED: Self = Self(0x0008);
    /// Method/attribute combination not supported.
    pub const METHOD_ATTR_UNSUPPORTED: Self = Self(0x000c);
    /// Invalid value in an attribute or modifier.
    pub const INVALID_FIELD: Self = Self(0x001c);
    /// SA: no resources.
    pub const SA_NO_RESOURCES: Self = Self(0x0100);
    /// SA: request invalid.
    pub const SA_REQ_INVALID: Self = Self(0x0200);
    /// SA: no records match.
    pub const SA_NO_RECORDS: Self = Self(0x0300);
    /// SA: too many records.
    pub const SA_TOO_MANY_RECORDS: Self = Self(0x0400);
    /// SA: invalid GID.
    pub const SA_INVALID_GID: Self = Self(0x0500);
    /// SA: insufficient components in the component mask.
    pub const SA_INSUFFICIENT_COMPONENTS: Self = Self(0x0600);

    /// True for success.
    pub const fn is_ok(self) -> bool {
        self.0 & 0xff1c == 0
    }
}

/// MAD common header, 24 bytes.
#[derive(
    Clone,
    Copy,
    Debug,
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
pub struct MadHdr {
    /// Base version; 1.
    pub base_version: u8,
    /// Management class.
    pub mgmt_class: MgmtClass,
    /// Class version (1 for SM, 2 for SA).
    pub class_version: u8,
    /// R bit and method.
    pub method: MadMethod,
    /// Status (see [`MadStatus`]); for directed-route SMPs bit 15 is D.
    pub status: U16,
    /// Class specific (hop pointer/count for directed route).
    pub class_specific: U16,
    /// Transaction id.
    pub tid: U64,
    /// Attribute id.
    pub attr_id: AttrId,
    /// Reserved.
    pub resv: U16,
    /// Attribute modifier.
    pub attr_mod: U32,
}
const_assert_eq!(core::mem::size_of::<MadHdr>(), 24);

/// A whole MAD: the common header and 232 bytes of class data.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Mad {
    /// Common header.
    pub hdr: MadHdr,
    /// Class-specific header and data.
    pub data: [u8; 232],
}
const_assert_eq!(core::mem::size_of::<Mad>(), MAD_SIZE);

impl Default for Mad {
    fn default() -> Self {
        Self {
            hdr: MadHdr::default(),
            data: [0; 232],
        }
    }
}

impl Mad {
    /// A request MAD with base version 1.
    pub fn request(
        class: MgmtClass,
        class_version: u8,
        method: MadMethod,
        attr: AttrId,
        attr_mod: u32,
        tid: u64,
    ) -> Self {
        let mut m = Self::default();
        m.hdr.base_version = 1;
        m.hdr.mgmt_class = class;
        m.hdr.class_version = class_version;
        m.hdr.method = method;
        m.hdr.attr_id = attr;
        m.hdr.attr_mod = U32::new(attr_mod);
        m.hdr.tid = U64::new(tid);
        m
    }

    /// Parses a MAD. The buffer may be longer than 256 bytes (trailing bytes are ignored) but
    /// not shorter; base version must be 1.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let (m, _) = Self::read_from_prefix(bytes).map_err(|_| WireError::Truncated)?;
        if m.hdr.base_version != 1 {
            return Err(WireError::BadVersion);
        }
        Ok(m)
    }

    /// The status word.
    pub fn status(&self) -> MadStatus {
        MadStatus(self.hdr.status.get())
    }

    /// The transaction id.
    pub fn tid(&self) -> u64 {
        self.hdr.tid.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_and_round_trip() {
        let m = Mad::request(
            MgmtClass::SUBN_ADM,
            2,
            MadMethod::SET,
            AttrId::MC_MEMBER_RECORD,
            0,
            0x6950_5845_0000_0001,
        );
        let b = m.as_bytes();
        assert_eq!(b.len(), 256);
        assert_eq!(&b[..4], &[1, 3, 2, 2]);
        assert_eq!(&b[8..16], &[0x69, 0x50, 0x58, 0x45, 0, 0, 0, 1]);
        assert_eq!(&b[16..18], &[0x00, 0x38]);
        assert_eq!(Mad::parse(b).unwrap(), m);
        assert_eq!(core::mem::offset_of!(MadHdr, attr_mod), 20);
    }

    #[test]
    fn parse_rejects_short_and_bad_version() {
        assert_eq!(Mad::parse(&[1u8; 255]), Err(WireError::Truncated));
        assert_eq!(Mad::parse(&[2u8; 256]), Err(WireError::BadVersion));
        assert!(MadMethod::SET.response().is_response());
        assert_eq!(MadMethod::SET.response(), MadMethod::GET_RESP);
        assert_eq!(MadMethod::DELETE.response(), MadMethod::DELETE_RESP);
        assert!(MadStatus::OK.is_ok());
        assert!(!MadStatus::SA_NO_RECORDS.is_ok());
        assert!(MadStatus::BUSY.is_ok()); // busy is advisory, not an error code
    }
}
