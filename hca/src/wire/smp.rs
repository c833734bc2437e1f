//! Subnet management packets (IBA §14.2.1.1 LID routed, §14.2.1.2 directed route) and the
//! attributes a host reads: NodeInfo (§14.2.5.3), PortInfo (§14.2.5.6), GUIDInfo (§14.2.5.5),
//! P_KeyTable (§14.2.5.7).

use static_assertions::const_assert_eq;
use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::mad::{AttrId, Mad, MadMethod, MgmtClass};
use super::{Gid, Guid, Lid, WireError};

/// The class data of a LID-routed SMP: M_Key, 32 reserved bytes, 64 bytes of attribute data,
/// 128 reserved bytes. Sits in [`Mad::data`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct SmpData {
    /// Management key.
    pub m_key: U64,
    /// Reserved.
    pub resv: [u8; 32],
    /// Attribute data.
    pub attr: [u8; 64],
    /// Reserved.
    pub resv2: [u8; 128],
}
const_assert_eq!(core::mem::size_of::<SmpData>(), 232);

/// The class data of a directed-route SMP (IBA §14.2.1.2): M_Key, DrSLID, DrDLID, 28 reserved
/// bytes, 64 bytes of attribute data, the initial path and the return path. The attribute sits
/// at the same offset as in a LID-routed SMP, so [`smp_attr`] and [`set_smp_attr`] serve both.
/// In the common header, bit 15 of the status is the direction bit D and the class-specific
/// field holds the hop pointer (high byte) and the hop count (low byte).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct DrSmpData {
    /// Management key.
    pub m_key: U64,
    /// The LID-routed part's source LID (0xffff: the path starts at the requester).
    pub dr_slid: U16,
    /// The LID-routed part's destination LID (0xffff: the path ends at the responder).
    pub dr_dlid: U16,
    /// Reserved.
    pub resv: [u8; 28],
    /// Attribute data.
    pub attr: [u8; 64],
    /// Egress port at each hop (index 0 unused).
    pub initial_path: [u8; 64],
    /// Ingress port at each hop, for the way back (index 0 unused).
    pub return_path: [u8; 64],
}
const_assert_eq!(core::mem::size_of::<DrSmpData>(), 232);

/// Bit 15 of a directed-route SMP's status: D, set on responses (returning).
pub const DR_DIRECTION: u16 = 0x8000;

/// Port state (PortInfo PortState; IBA §14.2.5.6 table 146). A newtype: any 4-bit value may arrive.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PortState(pub u8);

/// The state's name as IBA table 146 and `ibstat` write it (`ACTIVE`, `DOWN`…).
impl core::fmt::Display for PortState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

impl core::fmt::Debug for PortState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            0 => f.write_str("NOP"),
            1 => f.write_str("DOWN"),
            2 => f.write_str("INIT"),
            3 => f.write_str("ARMED"),
            4 => f.write_str("ACTIVE"),
            5 => f.write_str("ACTIVE_DEFER"),
            n => write!(f, "Unknown({n})"),
        }
    }
}

impl PortState {
    /// No state change (Set only).
    pub const NOP: Self = Self(0);
    /// Link down.
    pub const DOWN: Self = Self(1);
    /// Physical link up, not configured by an SM.
    pub const INIT: Self = Self(2);
    /// Configured, not yet active.
    pub const ARMED: Self = Self(3);
    /// Active: data traffic allowed.
    pub const ACTIVE: Self = Self(4);
    /// Active, deferred.
    pub const ACTIVE_DEFER: Self = Self(5);
}

/// NodeInfo, 40 bytes.
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
pub struct NodeInfo {
    /// Base version.
    pub base_version: u8,
    /// Class version.
    pub class_version: u8,
    /// Node type: 1 channel adapter, 2 switch, 3 router.
    pub node_type: u8,
    /// Number of physical ports.
    pub num_ports: u8,
    /// System image GUID.
    pub system_image_guid: Guid,
    /// Node GUID.
    pub node_guid: Guid,
    /// GUID of the port the SMP arrived on.
    pub port_guid: Guid,
    /// Partition table capacity.
    pub partition_cap: U16,
    /// Device id.
    pub device_id: U16,
    /// Revision.
    pub revision: U32,
    /// LocalPortNum.
    pub local_port_num: u8,
    /// Vendor id (24 bits).
    pub vendor_id: [u8; 3],
}
const_assert_eq!(core::mem::size_of::<NodeInfo>(), 40);

/// PortInfo, 64 bytes. Only the fields a host needs have accessors; the rest are raw bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct PortInfo {
    /// M_Key.
    pub m_key: U64,
    /// GID prefix.
    pub gid_prefix: U64,
    /// Base LID.
    pub lid: U16,
    /// Master SM LID.
    pub master_sm_lid: U16,
    /// Capability mask.
    pub capability_mask: U32,
    /// Diag code.
    pub diag_code: U16,
    /// M_Key lease period.
    pub m_key_lease_period: U16,
    /// Local port number.
    pub local_port_num: u8,
    /// Link width enabled.
    pub link_width_enabled: u8,
    /// Link width supported.
    pub link_width_supported: u8,
    /// Link width active.
    pub link_width_active: u8,
    /// LinkSpeedSupported[7:4] PortState[3:0] (byte 32).
    pub link_speed_supported_port_state: u8,
    /// PortPhysicalState[7:4] LinkDownDefaultState[3:0].
    pub phys_state_link_down_default: u8,
    /// M_KeyProtectBits[7:6] LMC[2:0].
    pub mkey_protect_lmc: u8,
    /// LinkSpeedActive[7:4] LinkSpeedEnabled[3:0] (byte 35).
    pub link_speed_active_enabled: u8,
    /// NeighborMTU[7:4] MasterSMSL[3:0] (byte 36).
    pub neighbor_mtu_master_sm_sl: u8,
    /// VLCap[7:4] InitType[3:0].
    pub vl_cap_init_type: u8,
    /// Remaining fields (VL arbitration, MTUCap at byte 41, counters), raw.
    pub rest: [u8; 26],
}
const_assert_eq!(core::mem::size_of::<PortInfo>(), 64);

impl Default for PortInfo {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

/// Byte 51 of PortInfo: ClientReregister\[7\], MulticastPKeyTrapSuppressionEnabled\[6:5\],
/// SubnetTimeOut\[4:0\] (IBA 14.2.5.6, Table 155), as an offset into [`PortInfo::rest`].
const CLIENT_REREG_BYTE: usize = 51 - 38;

impl PortInfo {
    /// ClientReregister: set by the SM in a `SubnSet(PortInfo)` to ask the port's clients to
    /// re-register what they had with the SA (multicast joins, service records; IBA 14.4.11).
    pub fn client_reregister(&self) -> bool {
        self.rest
            .get(CLIENT_REREG_BYTE)
            .is_some_and(|b| b & 0x80 != 0)
    }
    /// Sets or clears ClientReregister.
    pub fn set_client_reregister(&mut self, on: bool) {
        if let Some(b) = self.rest.get_mut(CLIENT_REREG_BYTE) {
            *b = (*b & 0x7f) | if on { 0x80 } else { 0 };
        }
    }
    /// Port state.
    pub fn port_state(&self) -> PortState {
        PortState(self.link_speed_supported_port_state & 0xf)
    }
    /// Sets the port state.
    pub fn set_port_state(&mut self, s: PortState) {
        self.link_speed_supported_port_state =
            (self.link_speed_supported_port_state & 0xf0) | (s.0 & 0xf);
    }
    /// Base LID.
    pub fn lid(&self) -> Lid {
        Lid(self.lid.get())
    }
    /// Master SM LID.
    pub fn sm_lid(&self) -> Lid {
        Lid(self.master_sm_lid.get())
    }
    /// Master SM SL.
    pub fn sm_sl(&self) -> u8 {
        self.neighbor_mtu_master_sm_sl & 0xf
    }
    /// Neighbor MTU (IBA MTU encoding: 1=256 .. 5=4096).
    pub fn neighbor_mtu(&self) -> u8 {
        self.neighbor_mtu_master_sm_sl >> 4
    }
    /// MTUCap (byte 41 low nibble).
    pub fn mtu_cap(&self) -> u8 {
        self.rest[41 - 38] & 0xf
    }
    /// Sets MTUCap.
    pub fn set_mtu_cap(&mut self, mtu: u8) {
        self.rest[41 - 38] = (self.rest[41 - 38] & 0xf0) | (mtu & 0xf);
    }
}

/// GUIDInfo: a block of eight GUIDs.
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
pub struct GuidInfo {
    /// GUIDs; index 0 of block 0 is the port GUID.
    pub guid: [Guid; 8],
}
const_assert_eq!(core::mem::size_of::<GuidInfo>(), 64);

/// P_KeyTable: a block of 32 P_Keys.
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
pub struct PKeyTable {
    /// P_Keys; bit 15 is the full-member bit.
    pub pkey: [U16; 32],
}
const_assert_eq!(core::mem::size_of::<PKeyTable>(), 64);

/// MTU encodings (IBA §9.6 / PortInfo).
pub mod mtu {
    /// 256 bytes.
    pub const MTU_256: u8 = 1;
    /// 512 bytes.
    pub const MTU_512: u8 = 2;
    /// 1024 bytes.
    pub const MTU_1024: u8 = 3;
    /// 2048 bytes.
    pub const MTU_2048: u8 = 4;
    /// 4096 bytes.
    pub const MTU_4096: u8 = 5;
    /// Bytes for an encoding (0 for unknown encodings).
    pub const fn bytes(enc: u8) -> usize {
        match enc {
            1..=5 => 128 << enc,
            _ => 0,
        }
    }
}

/// A LID-routed SubnGet for `attr` with `attr_mod`.
pub fn smp_get(attr: AttrId, attr_mod: u32, tid: u64) -> Mad {
    Mad::request(
        MgmtClass::SUBN_LID_ROUTED,
        1,
        MadMethod::GET,
        attr,
        attr_mod,
        tid,
    )
}

/// A directed-route SMP request (DrSLID = DrDLID = permissive, hop pointer 0) along
/// `initial_path`, whose index 0 is unused and whose length minus one is the hop count: at
/// most 64 entries, else [`WireError::Malformed`].
pub fn dr_smp_request(
    method: MadMethod,
    attr: AttrId,
    attr_mod: u32,
    tid: u64,
    initial_path: &[u8],
) -> Result<Mad, WireError> {
    if initial_path.is_empty() || initial_path.len() > 64 {
        return Err(WireError::Malformed);
    }
    let mut mad = Mad::request(
        MgmtClass::SUBN_DIRECTED_ROUTE,
        1,
        method,
        attr,
        attr_mod,
        tid,
    );
    mad.hdr.class_specific = U16::new(initial_path.len() as u16 - 1);
    let mut d = DrSmpData::new_zeroed();
    d.dr_slid = U16::new(0xffff);
    d.dr_dlid = U16::new(0xffff);
    d.initial_path[..initial_path.len()].copy_from_slice(initial_path);
    mad.data.copy_from_slice(d.as_bytes());
    Ok(mad)
}

/// The class data of a directed-route SMP (checks the class).
pub fn dr_smp_data(mad: &Mad) -> Result<DrSmpData, WireError> {
    if mad.hdr.mgmt_class != MgmtClass::SUBN_DIRECTED_ROUTE {
        return Err(WireError::Malformed);
    }
    let (d, _) = DrSmpData::read_from_prefix(&mad.data).map_err(|_| WireError::Truncated)?;
    Ok(d)
}

/// A directed-route SMP's hop pointer and hop count.
pub fn dr_hops(mad: &Mad) -> (u8, u8) {
    let v = mad.hdr.class_specific.get();
    ((v >> 8) as u8, v as u8)
}

/// Turns a directed-route request into its response as the last hop sends it back: method
/// GetResp, D set, the hop pointer at the hop count, `status` in the low bits, the
/// return path (index 0 unused) recorded.
pub fn dr_smp_response(req: &Mad, status: u16, return_path: &[u8]) -> Mad {
    let mut resp = *req;
    resp.hdr.method = req.hdr.method.response();
    resp.hdr.status = U16::new(DR_DIRECTION | (status & 0x7fff));
    let (_, count) = dr_hops(req);
    resp.hdr.class_specific = U16::new((u16::from(count) << 8) | u16::from(count));
    let n = return_path.len().min(64);
    resp.data[168..168 + n].copy_from_slice(&return_path[..n]);
    resp
}

/// The SMP class data of `mad` (checks that it is a subnet-management class MAD).
pub fn smp_data(mad: &Mad) -> Result<SmpData, WireError> {
    if mad.hdr.mgmt_class != MgmtClass::SUBN_LID_ROUTED
        && mad.hdr.mgmt_class != MgmtClass::SUBN_DIRECTED_ROUTE
    {
        return Err(WireError::Malformed);
    }
    let (d, _) = SmpData::read_from_prefix(&mad.data).map_err(|_| WireError::Truncated)?;
    Ok(d)
}

/// Reads attribute `T` (any of the 64-byte-or-less attributes above) from an SMP.
pub fn smp_attr<T: FromBytes>(mad: &Mad) -> Result<T, WireError> {
    let d = smp_data(mad)?;
    let (t, _) = T::read_from_prefix(&d.attr).map_err(|_| WireError::Truncated)?;
    Ok(t)
}

/// Writes attribute `t` into an SMP's attribute data.
pub fn set_smp_attr<T: IntoBytes + Immutable>(mad: &mut Mad, t: &T) {
    let b = t.as_bytes();
    let n = b.len().min(64);
    mad.data[32 + 8..32 + 8 + n].copy_from_slice(&b[..n]);
}

/// The port GID from a PortInfo and a GUIDInfo block 0.
pub fn port_gid(pi: &PortInfo, gi: &GuidInfo) -> Gid {
    Gid::from_parts(pi.gid_prefix.get(), gi.guid[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_reregister_is_bit_7_of_byte_51_and_leaves_subnet_timeout_alone() {
        let mut pi = PortInfo::default();
        pi.rest[51 - 38] = 0x12; // SubnetTimeOut 18
        assert!(!pi.client_reregister());
        pi.set_client_reregister(true);
        assert!(pi.client_reregister());
        assert_eq!(pi.as_bytes()[51], 0x92);
        pi.set_client_reregister(false);
        assert_eq!(pi.as_bytes()[51], 0x12);
    }

    #[test]
    fn layouts() {
        assert_eq!(core::mem::offset_of!(PortInfo, lid), 16);
        assert_eq!(core::mem::offset_of!(PortInfo, master_sm_lid), 18);
        assert_eq!(
            core::mem::offset_of!(PortInfo, link_speed_supported_port_state),
            32
        );
        assert_eq!(
            core::mem::offset_of!(PortInfo, link_speed_active_enabled),
            35
        );
        assert_eq!(
            core::mem::offset_of!(PortInfo, neighbor_mtu_master_sm_sl),
            36
        );
        assert_eq!(core::mem::offset_of!(NodeInfo, node_guid), 12);
        assert_eq!(core::mem::offset_of!(NodeInfo, port_guid), 20);
        assert_eq!(core::mem::offset_of!(NodeInfo, local_port_num), 36);
        assert_eq!(core::mem::offset_of!(SmpData, attr), 40);
    }

    #[test]
    fn port_info_round_trip_through_smp() {
        let mut pi = PortInfo {
            lid: U16::new(0x1234),
            master_sm_lid: U16::new(1),
            gid_prefix: U64::new(0xfe80_0000_0000_0000),
            ..Default::default()
        };
        pi.set_port_state(PortState::ACTIVE);
        pi.neighbor_mtu_master_sm_sl = (mtu::MTU_2048 << 4) | 3;
        pi.set_mtu_cap(mtu::MTU_4096);
        let mut m = smp_get(AttrId::PORT_INFO, 1, 9);
        set_smp_attr(&mut m, &pi);
        // PortState sits in byte 32 of the attribute, i.e. byte 24 + 40 + 32 of the MAD.
        assert_eq!(m.as_bytes()[24 + 40 + 32] & 0xf, 4);
        let back: PortInfo = smp_attr(&m).unwrap();
        assert_eq!(back, pi);
        assert_eq!(back.port_state(), PortState::ACTIVE);
        assert_eq!(back.lid(), Lid(0x1234));
        assert_eq!(back.sm_sl(), 3);
        assert_eq!(back.neighbor_mtu(), mtu::MTU_2048);
        assert_eq!(back.mtu_cap(), mtu::MTU_4096);
        assert_eq!(mtu::bytes(mtu::MTU_2048), 2048);
        assert_eq!(mtu::bytes(9), 0);
    }

    #[test]
    fn directed_route_layout_and_response() {
        assert_eq!(core::mem::offset_of!(DrSmpData, dr_slid), 8);
        assert_eq!(core::mem::offset_of!(DrSmpData, attr), 40);
        assert_eq!(core::mem::offset_of!(DrSmpData, initial_path), 104);
        assert_eq!(core::mem::offset_of!(DrSmpData, return_path), 168);
        let mut pi = PortInfo {
            lid: U16::new(7),
            ..Default::default()
        };
        pi.set_port_state(PortState::ARMED);
        let mut m = dr_smp_request(MadMethod::SET, AttrId::PORT_INFO, 2, 5, &[0, 1, 4]).unwrap();
        set_smp_attr(&mut m, &pi);
        let b = m.as_bytes();
        // Class 0x81, hop pointer 0, hop count 2, DrSLID/DrDLID permissive, path at 128.
        assert_eq!(&b[..4], &[1, 0x81, 1, 2]);
        assert_eq!(&b[6..8], &[0, 2]);
        assert_eq!(&b[32..36], &[0xff; 4]);
        assert_eq!(&b[128..131], &[0, 1, 4]);
        assert_eq!(smp_attr::<PortInfo>(&m).unwrap(), pi);
        assert_eq!(dr_hops(&m), (0, 2));
        let r = dr_smp_response(&m, 0, &[0, 3, 1]);
        assert_eq!(r.hdr.method, MadMethod::GET_RESP);
        assert_eq!(r.hdr.status.get(), DR_DIRECTION);
        assert_eq!(dr_hops(&r), (2, 2));
        let d = dr_smp_data(&r).unwrap();
        assert_eq!(&d.return_path[..3], &[0, 3, 1]);
        assert_eq!(&d.initial_path[..3], &[0, 1, 4]);
        assert_eq!(
            dr_smp_data(&smp_get(AttrId::NODE_INFO, 0, 1)),
            Err(WireError::Malformed)
        );
        assert!(dr_smp_request(MadMethod::GET, AttrId::NODE_INFO, 0, 1, &[]).is_err());
        assert!(dr_smp_request(MadMethod::GET, AttrId::NODE_INFO, 0, 1, &[0; 65]).is_err());
    }

    #[test]
    fn smp_attr_rejects_other_classes() {
        let mut m = smp_get(AttrId::NODE_INFO, 0, 1);
        m.hdr.mgmt_class = MgmtClass::SUBN_ADM;
        assert_eq!(smp_attr::<NodeInfo>(&m), Err(WireError::Malformed));
    }
}
