//! Subnet administration (IBA §15.2): the SA header after the MAD common header, and the
//! records a host uses: MCMemberRecord (§15.2.5.17) and PathRecord (§15.2.5.16), with their
//! component masks.

use bitflags::bitflags;
use static_assertions::const_assert_eq;
use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::mad::{AttrId, Mad, MadMethod, MgmtClass};
use super::{Gid, Lid, WireError};

/// SA class version.
pub const SA_CLASS_VERSION: u8 = 2;

/// SA class data: RMPP header, SA header and 200 bytes of record data. Sits in [`Mad::data`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct SaData {
    /// RMPP header (version, type, resptime/flags, status, data1, data2); unused by single
    /// record requests.
    pub rmpp: [u8; 12],
    /// SM_Key.
    pub sm_key: U64,
    /// Attribute offset in 8-byte words (GetTable responses).
    pub attr_offset: U16,
    /// Reserved.
    pub resv: U16,
    /// Component mask.
    pub comp_mask: U64,
    /// Record data.
    pub data: [u8; 200],
}
const_assert_eq!(core::mem::size_of::<SaData>(), 232);

bitflags! {
    /// MCMemberRecord component mask bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct McMemberMask: u64 {
        /// MGID.
        const MGID = 1 << 0;
        /// PortGID.
        const PORT_GID = 1 << 1;
        /// Q_Key.
        const QKEY = 1 << 2;
        /// MLID.
        const MLID = 1 << 3;
        /// MTUSelector.
        const MTU_SELECTOR = 1 << 4;
        /// MTU.
        const MTU = 1 << 5;
        /// TClass.
        const TCLASS = 1 << 6;
        /// P_Key.
        const PKEY = 1 << 7;
        /// RateSelector.
        const RATE_SELECTOR = 1 << 8;
        /// Rate.
        const RATE = 1 << 9;
        /// PacketLifeTimeSelector.
        const PLT_SELECTOR = 1 << 10;
        /// PacketLifeTime.
        const PLT = 1 << 11;
        /// SL.
        const SL = 1 << 12;
        /// FlowLabel.
        const FLOW_LABEL = 1 << 13;
        /// HopLimit.
        const HOP_LIMIT = 1 << 14;
        /// Scope.
        const SCOPE = 1 << 15;
        /// JoinState.
        const JOIN_STATE = 1 << 16;
        /// ProxyJoin.
        const PROXY_JOIN = 1 << 17;
    }
}

bitflags! {
    /// PathRecord component mask bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PathRecordMask: u64 {
        /// ServiceID (two bits).
        const SERVICE_ID = 0b11;
        /// DGID.
        const DGID = 1 << 2;
        /// SGID.
        const SGID = 1 << 3;
        /// DLID.
        const DLID = 1 << 4;
        /// SLID.
        const SLID = 1 << 5;
        /// RawTraffic.
        const RAW_TRAFFIC = 1 << 6;
        /// FlowLabel.
        const FLOW_LABEL = 1 << 8;
        /// HopLimit.
        const HOP_LIMIT = 1 << 9;
        /// TClass.
        const TCLASS = 1 << 10;
        /// Reversible.
        const REVERSIBLE = 1 << 11;
        /// NumbPath.
        const NUMB_PATH = 1 << 12;
        /// P_Key.
        const PKEY = 1 << 13;
        /// QoSClass.
        const QOS_CLASS = 1 << 14;
        /// SL.
        const SL = 1 << 15;
        /// MTUSelector.
        const MTU_SELECTOR = 1 << 16;
        /// MTU.
        const MTU = 1 << 17;
        /// RateSelector.
        const RATE_SELECTOR = 1 << 18;
        /// Rate.
        const RATE = 1 << 19;
    }
}

/// JoinState bits (MCMemberRecord).
pub mod join_state {
    /// Full member.
    pub const FULL: u8 = 1;
    /// Non member.
    pub const NON: u8 = 2;
    /// Send-only non member.
    pub const SEND_ONLY: u8 = 4;
}

/// MCMemberRecord, 52 bytes.
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
pub struct McMemberRecord {
    /// Multicast GID.
    pub mgid: Gid,
    /// The joining port's GID.
    pub port_gid: Gid,
    /// Q_Key of the group.
    pub qkey: U32,
    /// Multicast LID.
    pub mlid: U16,
    /// MTUSelector[7:6] MTU[5:0].
    pub mtu_sel_mtu: u8,
    /// Traffic class.
    pub tclass: u8,
    /// Partition key.
    pub pkey: U16,
    /// RateSelector[7:6] Rate[5:0].
    pub rate_sel_rate: u8,
    /// PacketLifeTimeSelector[7:6] PacketLifeTime[5:0].
    pub plt_sel_plt: u8,
    /// SL[31:28] FlowLabel[27:8] HopLimit[7:0].
    pub sl_flow_hop: U32,
    /// Scope[7:4] JoinState[3:0].
    pub scope_join_state: u8,
    /// ProxyJoin[7] reserved.
    pub proxy_join: u8,
    /// Reserved.
    pub resv: [u8; 2],
}
const_assert_eq!(core::mem::size_of::<McMemberRecord>(), 52);

impl McMemberRecord {
    /// MTU encoding.
    pub fn mtu(&self) -> u8 {
        self.mtu_sel_mtu & 0x3f
    }
    /// Rate encoding.
    pub fn rate(&self) -> u8 {
        self.rate_sel_rate & 0x3f
    }
    /// Service level.
    pub fn sl(&self) -> u8 {
        (self.sl_flow_hop.get() >> 28) as u8
    }
    /// JoinState.
    pub fn join_state(&self) -> u8 {
        self.scope_join_state & 0xf
    }
    /// Multicast LID.
    pub fn mlid(&self) -> Lid {
        Lid(self.mlid.get())
    }
}

/// PathRecord, 64 bytes.
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
pub struct PathRecord {
    /// ServiceID (reserved in older releases).
    pub service_id: U64,
    /// Destination GID.
    pub dgid: Gid,
    /// Source GID.
    pub sgid: Gid,
    /// Destination LID (bytes 40-41).
    pub dlid: U16,
    /// Source LID.
    pub slid: U16,
    /// RawTraffic[31] FlowLabel[27:8] HopLimit[7:0].
    pub raw_flow_hop: U32,
    /// Traffic class.
    pub tclass: u8,
    /// Reversible[7] NumbPath[6:0].
    pub reversible_numb_path: u8,
    /// Partition key.
    pub pkey: U16,
    /// QoSClass[15:4] SL[3:0] (SL is the low nibble of byte 53).
    pub qos_sl: U16,
    /// MTUSelector[7:6] MTU[5:0].
    pub mtu_sel_mtu: u8,
    /// RateSelector[7:6] Rate[5:0] (byte 55).
    pub rate_sel_rate: u8,
    /// PacketLifeTimeSelector[7:6] PacketLifeTime[5:0].
    pub plt_sel_plt: u8,
    /// Preference.
    pub preference: u8,
    /// Reserved.
    pub resv: [u8; 6],
}
const_assert_eq!(core::mem::size_of::<PathRecord>(), 64);

impl PathRecord {
    /// Service level.
    pub fn sl(&self) -> u8 {
        (self.qos_sl.get() & 0xf) as u8
    }
    /// MTU encoding.
    pub fn mtu(&self) -> u8 {
        self.mtu_sel_mtu & 0x3f
    }
    /// Rate encoding.
    pub fn rate(&self) -> u8 {
        self.rate_sel_rate & 0x3f
    }
}

/// Builds an SA request MAD carrying `record` with `comp_mask`.
pub fn sa_request<T: IntoBytes + Immutable>(
    method: MadMethod,
    attr: AttrId,
    comp_mask: u64,
    record: &T,
    tid: u64,
) -> Mad {
    let mut mad = Mad::request(MgmtClass::SUBN_ADM, SA_CLASS_VERSION, method, attr, 0, tid);
    let mut sa = SaData::new_zeroed();
    sa.comp_mask = U64::new(comp_mask);
    let b = record.as_bytes();
    let n = b.len().min(200);
    sa.data[..n].copy_from_slice(&b[..n]);
    mad.data.copy_from_slice(sa.as_bytes());
    mad
}

/// The SA header and data of `mad` (checks the class).
pub fn sa_data(mad: &Mad) -> Result<SaData, WireError> {
    if mad.hdr.mgmt_class != MgmtClass::SUBN_ADM {
        return Err(WireError::Malformed);
    }
    let (d, _) = SaData::read_from_prefix(&mad.data).map_err(|_| WireError::Truncated)?;
    Ok(d)
}

/// The first record of type `T` in an SA MAD.
pub fn sa_record<T: FromBytes>(mad: &Mad) -> Result<T, WireError> {
    let d = sa_data(mad)?;
    let (t, _) = T::read_from_prefix(&d.data).map_err(|_| WireError::Truncated)?;
    Ok(t)
}

/// Replaces the record in an SA MAD.
pub fn set_sa_record<T: IntoBytes + Immutable>(mad: &mut Mad, record: &T) {
    let b = record.as_bytes();
    let n = b.len().min(200);
    mad.data[32..32 + n].copy_from_slice(&b[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Guid;

    #[test]
    fn layouts() {
        assert_eq!(core::mem::offset_of!(SaData, comp_mask), 24);
        assert_eq!(core::mem::offset_of!(SaData, data), 32);
        assert_eq!(core::mem::offset_of!(McMemberRecord, qkey), 32);
        assert_eq!(core::mem::offset_of!(McMemberRecord, mlid), 36);
        assert_eq!(core::mem::offset_of!(McMemberRecord, pkey), 40);
        assert_eq!(core::mem::offset_of!(McMemberRecord, sl_flow_hop), 44);
        assert_eq!(core::mem::offset_of!(McMemberRecord, scope_join_state), 48);
        assert_eq!(core::mem::offset_of!(PathRecord, dgid), 8);
        assert_eq!(core::mem::offset_of!(PathRecord, dlid), 40);
        assert_eq!(core::mem::offset_of!(PathRecord, qos_sl), 52);
        assert_eq!(core::mem::offset_of!(PathRecord, rate_sel_rate), 55);
    }

    #[test]
    fn ipxe_style_join_mask_and_round_trip() {
        let mask = McMemberMask::MGID | McMemberMask::PORT_GID | McMemberMask::JOIN_STATE;
        assert_eq!(mask.bits(), 0x0001_0003);
        assert_eq!((PathRecordMask::DGID | PathRecordMask::SGID).bits(), 0xc);
        let rec = McMemberRecord {
            mgid: Gid::ipoib_broadcast(0xffff),
            port_gid: Gid::from_parts(0xfe80 << 48, Guid::from_u64(0x42)),
            qkey: U32::new(0x0b1b),
            mlid: U16::new(0xc000),
            mtu_sel_mtu: 0x80 | 4,
            pkey: U16::new(0xffff),
            rate_sel_rate: 0x80 | 3,
            sl_flow_hop: U32::new(0x5000_0000),
            scope_join_state: 0x21,
            ..Default::default()
        };
        let mad = sa_request(
            MadMethod::SET,
            AttrId::MC_MEMBER_RECORD,
            mask.bits(),
            &rec,
            7,
        );
        let bytes = mad.as_bytes();
        assert_eq!(&bytes[48..56], &[0, 0, 0, 0, 0, 1, 0, 3]);
        assert_eq!(bytes[56], 0xff);
        let parsed = Mad::parse(bytes).unwrap();
        let back: McMemberRecord = sa_record(&parsed).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.mtu(), 4);
        assert_eq!(back.rate(), 3);
        assert_eq!(back.sl(), 5);
        assert_eq!(back.join_state(), join_state::FULL);
        assert_eq!(sa_data(&parsed).unwrap().comp_mask.get(), 0x0001_0003);
    }

    #[test]
    fn path_record_fields() {
        let mut pr = PathRecord {
            dlid: U16::new(7),
            qos_sl: U16::new(0x0002),
            rate_sel_rate: 0x86,
            mtu_sel_mtu: 0x84,
            ..Default::default()
        };
        let mut mad = sa_request(MadMethod::GET, AttrId::PATH_RECORD, 0xc, &pr, 1);
        assert_eq!(mad.as_bytes()[56 + 40..56 + 42], [0, 7]);
        pr.dlid = U16::new(9);
        set_sa_record(&mut mad, &pr);
        let back: PathRecord = sa_record(&mad).unwrap();
        assert_eq!(back.dlid.get(), 9);
        assert_eq!(back.sl(), 2);
        assert_eq!(back.rate(), 6);
        assert_eq!(back.mtu(), 4);
    }
}
