//! The verbs-like API the upper layers (IPoIB, the boot flows) use, independent of the HCA
//! family. A hermon-class device implements [`Verbs`] today; golan-class (ConnectX-4+) and
//! arbel-class (InfiniHost III) drivers would be further implementations.
//!
//! The datapath is allocation-free: each QP owns its send and receive buffers; `post_send`
//! copies the payload into a free send slot and returns a token, `poll_cq` copies a received
//! payload out and re-posts the slot.

use crate::hal::{Duration, Instant};
use crate::wire::mad::{AttrId, Mad, MadMethod};
use crate::wire::sa::{self, join_state, McMemberMask, McMemberRecord, PathRecord, PathRecordMask};
use crate::wire::smp::PortState;
use crate::wire::{Gid, Guid, Lid, Qpn, GSI_QKEY};
use crate::Error;
use log::debug;
use zerocopy::byteorder::big_endian::{U16, U32};

/// A port number, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortNum(pub u8);

/// Handle of a completion queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CqId(pub u16);

/// Handle of a queue pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QpId(pub u16);

/// A work-request token: which slot of the QP's send or receive ring it used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WrId(pub u32);

/// What the port looks like now (from NodeInfo, PortInfo, GUIDInfo and P_KeyTable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAttr {
    /// Port number.
    pub port: PortNum,
    /// Port state.
    pub state: PortState,
    /// Base LID (0 until an SM assigns one).
    pub lid: Lid,
    /// The master SM's LID.
    pub sm_lid: Lid,
    /// The master SM's SL.
    pub sm_sl: u8,
    /// Port GID (GID prefix + port GUID), GID table index 0.
    pub gid: Gid,
    /// Port GUID.
    pub port_guid: Guid,
    /// Node GUID.
    pub node_guid: Guid,
    /// P_Key table block 0 (index 0 first).
    pub pkeys: [u16; 32],
    /// Active MTU (IBA encoding; 4 = 2048).
    pub mtu: u8,
}

impl PortAttr {
    /// P_Key at index 0 (what boot ROMs use).
    pub fn pkey(&self) -> u16 {
        self.pkeys[0]
    }
}

/// Asynchronous events from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The port changed state (event 0x09); `up` is true when it became ACTIVE.
    PortStateChange {
        /// Port.
        port: PortNum,
        /// True for ACTIVE, false for DOWN.
        up: bool,
    },
    /// Port management change (event 0x1d): LID, SM LID, P_Key or GID changed; re-query.
    PortManagementChange {
        /// Port.
        port: PortNum,
    },
    /// The SM asked the port's clients to re-register (PortInfo:ClientReregister, IBA
    /// 14.4.11; event 0x1d with ClientReregister in its changed attributes): an SM restarted
    /// and lost its multicast groups, so they must be joined again. Re-query the port too.
    ClientReregister {
        /// Port.
        port: PortNum,
    },
    /// A CQ overran or hit an access error (event 0x04).
    CqError {
        /// Hardware CQ number.
        cqn: u32,
    },
    /// Any other event type, with its raw type and sub-type.
    Other {
        /// Event type.
        event_type: u8,
        /// Sub-type.
        sub_type: u8,
    },
}

/// Where a UD datagram goes (an address handle; the UD address vector is built from it in each
/// send WQE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressHandle {
    /// Destination LID (a multicast LID for multicast).
    pub dlid: Lid,
    /// Service level.
    pub sl: u8,
    /// Destination QPN (`Qpn::MULTICAST` for multicast).
    pub dest_qpn: Qpn,
    /// Q_Key.
    pub qkey: u32,
    /// Destination GID when a GRH is needed (always for multicast).
    pub dgid: Option<Gid>,
    /// Hop limit for the GRH.
    pub hop_limit: u8,
}

impl AddressHandle {
    /// A unicast destination without GRH.
    pub fn unicast(dlid: Lid, sl: u8, dest_qpn: Qpn, qkey: u32) -> Self {
        Self {
            dlid,
            sl,
            dest_qpn,
            qkey,
            dgid: None,
            hop_limit: 0,
        }
    }
    /// A multicast destination.
    pub fn multicast(mlid: Lid, sl: u8, mgid: Gid, qkey: u32) -> Self {
        Self {
            dlid: mlid,
            sl,
            dest_qpn: Qpn::MULTICAST,
            qkey,
            dgid: Some(mgid),
            hop_limit: 1,
        }
    }
}

/// UD QP creation parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdQpAttr {
    /// Port the QP sends on.
    pub port: PortNum,
    /// CQ for send completions.
    pub send_cq: CqId,
    /// CQ for receive completions.
    pub recv_cq: CqId,
    /// Send slots wanted (rounded up to a power of two).
    pub send_slots: u32,
    /// Receive slots wanted (rounded up to a power of two); all are kept posted.
    pub recv_slots: u32,
    /// Q_Key; `None` leaves the QP in INIT until [`Verbs::activate_qp`] gives one (as IPoIB
    /// does until the broadcast join returns the group's Q_Key).
    pub qkey: Option<u32>,
}

/// Direction of a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionKind {
    /// A send finished.
    Send,
    /// A datagram arrived.
    Recv,
}

/// Completion status: the CQE syndrome (0 = success). A newtype: any byte may arrive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WcStatus(pub u8);

impl WcStatus {
    /// Success.
    pub const SUCCESS: Self = Self(0x00);
    /// Local length error (e.g. datagram longer than the receive buffer).
    pub const LOCAL_LENGTH: Self = Self(0x01);
    /// Local QP operation error.
    pub const LOCAL_QP_OP: Self = Self(0x02);
    /// Local protection error (bad L_Key).
    pub const LOCAL_PROTECTION: Self = Self(0x04);
    /// Work request flushed (QP in error state).
    pub const WR_FLUSHED: Self = Self(0x05);
    /// Bad response.
    pub const BAD_RESPONSE: Self = Self(0x10);
    /// Local access error.
    pub const LOCAL_ACCESS: Self = Self(0x11);
    /// Remote invalid request.
    pub const REMOTE_INVALID_REQUEST: Self = Self(0x12);
    /// Remote access error.
    pub const REMOTE_ACCESS: Self = Self(0x13);
    /// Remote operation error.
    pub const REMOTE_OP: Self = Self(0x14);
    /// Transport retry counter exceeded.
    pub const RETRY_EXCEEDED: Self = Self(0x15);
    /// RNR retry counter exceeded.
    pub const RNR_RETRY_EXCEEDED: Self = Self(0x16);

    /// True for success.
    pub fn is_ok(self) -> bool {
        self == Self::SUCCESS
    }
}

/// One completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The QP it belongs to.
    pub qp: QpId,
    /// The token `post_send` returned, or the receive slot.
    pub wr_id: WrId,
    /// Send or receive.
    pub kind: CompletionKind,
    /// Status; anything but success is an error completion (and carries no data).
    pub status: WcStatus,
    /// Payload bytes received (GRH excluded); may exceed the buffer given to `poll_cq`.
    pub byte_len: u32,
    /// Source QPN (receive).
    pub src_qpn: Qpn,
    /// Source LID (receive).
    pub slid: Lid,
    /// Service level (receive).
    pub sl: u8,
    /// Source and destination GID when the datagram carried a GRH.
    pub grh: Option<(Gid, Gid)>,
}

/// Where a MAD goes on the GSI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadDest {
    /// Destination LID.
    pub dlid: Lid,
    /// Service level.
    pub sl: u8,
    /// Destination QPN (1 for the SA).
    pub qpn: Qpn,
    /// Q_Key (0x80010000 on QP1).
    pub qkey: u32,
}

/// A MAD that arrived on the GSI, with where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedMad {
    /// The MAD.
    pub mad: Mad,
    /// Sender LID.
    pub slid: Lid,
    /// Sender QPN.
    pub src_qpn: Qpn,
}

/// A verbs-like device.
pub trait Verbs {
    /// The firmware revision (major, minor, sub-minor), when the device reports one.
    fn firmware_version(&self) -> Option<(u16, u16, u16)> {
        None
    }
    /// Number of physical ports.
    fn num_ports(&self) -> u8;
    /// The clock of the underlying Hal.
    fn now(&self) -> Instant;
    /// Waits (advancing the simulator's clock in tests).
    fn delay(&mut self, d: Duration);

    /// Brings a port up (SET_PORT, INIT_PORT, special QPs) and returns its attributes. The port
    /// then advances to ACTIVE when a subnet manager configures it.
    fn open_port(&mut self, port: PortNum) -> Result<PortAttr, Error>;
    /// Reads the port's attributes through local MADs.
    fn query_port(&mut self, port: PortNum) -> Result<PortAttr, Error>;
    /// Polls the event queue for one event.
    fn poll_event(&mut self) -> Result<Option<Event>, Error>;

    /// Creates a CQ with at least `entries` entries.
    fn create_cq(&mut self, entries: u32) -> Result<CqId, Error>;
    /// Destroys a CQ (no QP may still use it).
    fn destroy_cq(&mut self, cq: CqId) -> Result<(), Error>;
    /// Creates a UD QP with its own buffers.
    fn create_ud_qp(&mut self, attr: &UdQpAttr) -> Result<QpId, Error>;
    /// Destroys a QP (moves it to RESET and frees its buffers).
    fn destroy_qp(&mut self, qp: QpId) -> Result<(), Error>;
    /// The QP's number on the wire.
    fn qp_num(&self, qp: QpId) -> Result<Qpn, Error>;
    /// Sets the Q_Key and moves the QP to RTS (INIT->RTR->RTS, or RTS->RTS when already there).
    fn activate_qp(&mut self, qp: QpId, qkey: u32) -> Result<(), Error>;

    /// Sends `payload` as one UD datagram.
    fn post_send(&mut self, qp: QpId, ah: &AddressHandle, payload: &[u8]) -> Result<WrId, Error>;
    /// Polls one completion. A successful receive copies its payload into `buf` (truncated to
    /// `buf.len()`; `byte_len` says how much arrived) and re-posts the receive slot.
    fn poll_cq(&mut self, cq: CqId, buf: &mut [u8]) -> Result<Option<Completion>, Error>;

    /// Attaches the QP to a multicast group in the device (the SA join is separate).
    fn attach_mcast(&mut self, qp: QpId, mgid: &Gid) -> Result<(), Error>;
    /// Detaches the QP from a multicast group.
    fn detach_mcast(&mut self, qp: QpId, mgid: &Gid) -> Result<(), Error>;

    /// Sends a MAD on the port's GSI (QP1).
    fn mad_send(&mut self, port: PortNum, dest: &MadDest, mad: &Mad) -> Result<(), Error>;
    /// Polls the port's GSI for a received MAD.
    fn mad_recv(&mut self, port: PortNum) -> Result<Option<ReceivedMad>, Error>;
    /// Asks the device's own subnet management agent (MAD_IFC on hermon).
    fn local_mad(&mut self, port: PortNum, mad: &Mad) -> Result<Mad, Error>;
    /// A fresh transaction id.
    fn next_tid(&mut self) -> u64;
}

/// Retransmission policy for MAD requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait for the first answer.
    pub first_timeout: Duration,
    /// Upper bound of one wait; waits double up to it.
    pub max_timeout: Duration,
    /// Transmissions in all.
    pub attempts: u8,
}

impl Default for RetryPolicy {
    /// iPXE's MAD retry timer shape: 0.25 s doubling to 8 s, six transmissions
    /// (`ib_mi.c` / `retry.c`, reference §1.2).
    fn default() -> Self {
        Self {
            first_timeout: Duration::from_millis(250),
            max_timeout: Duration::from_secs(8),
            attempts: 6,
        }
    }
}

/// Sends `req` on the GSI and waits for the response with the same TID, retransmitting per
/// `policy`. MADs with another TID are dropped (logged at debug level).
pub fn mad_rpc<V: Verbs + ?Sized>(
    dev: &mut V,
    port: PortNum,
    dest: &MadDest,
    req: &Mad,
    policy: RetryPolicy,
) -> Result<Mad, Error> {
    let mut timeout = policy.first_timeout;
    for _ in 0..policy.attempts.max(1) {
        dev.mad_send(port, dest, req)?;
        let deadline = dev.now() + timeout;
        // TIMEOUT: `timeout` per attempt, from `policy` (default 0.25 s doubling to 8 s, as
        // iPXE's MAD interface).
        while dev.now() < deadline {
            while let Some(r) = dev.mad_recv(port)? {
                if r.mad.tid() == req.tid() && r.mad.hdr.method.is_response() {
                    let st = r.mad.status();
                    if !st.is_ok() {
                        return Err(Error::MadStatus(st));
                    }
                    return Ok(r.mad);
                }
                debug!("gsi: dropping unmatched MAD tid {:#x}", r.mad.tid());
            }
            dev.delay(Duration::from_millis(1));
        }
        timeout = timeout.saturating_mul(2).min(policy.max_timeout);
    }
    Err(Error::MadTimeout)
}

/// Waits up to `timeout` for the port to become ACTIVE, re-reading PortInfo every
/// `HERMON_LINK_POLL_INTERVAL`-like 0.5 s and on port events.
pub fn wait_port_active<V: Verbs + ?Sized>(
    dev: &mut V,
    port: PortNum,
    timeout: Duration,
) -> Result<PortAttr, Error> {
    let start = dev.now();
    let deadline = start + timeout;
    let poll = Duration::from_millis(500);
    let mut attr = dev.query_port(port)?;
    let mut next_poll = start + poll;
    // TIMEOUT: `timeout` from the caller (the BoIB manual waits 45 s per port, iPXE 15 s);
    // PortInfo is re-read every 0.5 s (iPXE HERMON_LINK_POLL_INTERVAL, reference §1.3).
    loop {
        if attr.state == PortState::ACTIVE {
            return Ok(attr);
        }
        let now = dev.now();
        if now >= deadline {
            return Err(Error::PortNotActive {
                port,
                state: attr.state,
            });
        }
        let mut refresh = now >= next_poll;
        while let Some(ev) = dev.poll_event()? {
            if let Event::PortStateChange { port: p, .. }
            | Event::PortManagementChange { port: p }
            | Event::ClientReregister { port: p } = ev
            {
                refresh |= p == port;
            }
        }
        if refresh {
            attr = dev.query_port(port)?;
            next_poll = dev.now() + poll;
        } else {
            dev.delay(Duration::from_millis(1));
        }
    }
}

fn sa_dest(attr: &PortAttr) -> MadDest {
    MadDest {
        dlid: attr.sm_lid,
        sl: attr.sm_sl,
        qpn: Qpn::GSI,
        qkey: GSI_QKEY,
    }
}

/// Joins a multicast group as a full member through the SA (SubnAdmSet MCMemberRecord with
/// MGID | PortGID | JoinState, as iPXE does). Returns the group's record (Q_Key, MLID, MTU,
/// P_Key, SL, rate).
pub fn sa_join_mcast<V: Verbs + ?Sized>(
    dev: &mut V,
    attr: &PortAttr,
    mgid: &Gid,
    policy: RetryPolicy,
) -> Result<McMemberRecord, Error> {
    let rec = McMemberRecord {
        mgid: *mgid,
        port_gid: attr.gid,
        scope_join_state: join_state::FULL,
        ..Default::default()
    };
    let mask = McMemberMask::MGID | McMemberMask::PORT_GID | McMemberMask::JOIN_STATE;
    sa_set_mc_member(dev, attr, &rec, mask, policy)
}

/// SubnAdmSet MCMemberRecord with these components; the answer's record.
fn sa_set_mc_member<V: Verbs + ?Sized>(
    dev: &mut V,
    attr: &PortAttr,
    rec: &McMemberRecord,
    mask: McMemberMask,
    policy: RetryPolicy,
) -> Result<McMemberRecord, Error> {
    let tid = dev.next_tid();
    let req = sa::sa_request(
        MadMethod::SET,
        AttrId::MC_MEMBER_RECORD,
        mask.bits(),
        rec,
        tid,
    );
    let resp = mad_rpc(dev, attr.port, &sa_dest(attr), &req, policy)?;
    Ok(sa::sa_record(&resp)?)
}

/// What the creator of a multicast group chooses (IBA §15.2.5.17: the components an SA needs
/// to create a group on a join — OpenSM's `REQUIRED_MC_CREATE_COMP_MASK` is MGID, PortGID,
/// JoinState, Q_Key, TClass, P_Key, FlowLabel and SL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McGroupParams {
    /// The group's Q_Key.
    pub qkey: u32,
    /// The partition (full-member bit set by the caller as it wants it).
    pub pkey: u16,
    /// Service level.
    pub sl: u8,
    /// Traffic class.
    pub tclass: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Exactly this MTU (IBA encoding); `None` lets the SA choose.
    pub mtu: Option<u8>,
}

/// Joins a multicast group as a full member, creating it if the SA has none with this MGID:
/// SubnAdmSet MCMemberRecord with the create components of [`McGroupParams`]. The answer
/// carries the group's parameters — the SA's, when the group already existed.
pub fn sa_create_join_mcast<V: Verbs + ?Sized>(
    dev: &mut V,
    attr: &PortAttr,
    mgid: &Gid,
    params: &McGroupParams,
    policy: RetryPolicy,
) -> Result<McMemberRecord, Error> {
    let mut rec = McMemberRecord {
        mgid: *mgid,
        port_gid: attr.gid,
        qkey: U32::new(params.qkey),
        tclass: params.tclass,
        pkey: U16::new(params.pkey),
        sl_flow_hop: U32::new(
            (u32::from(params.sl & 0xf) << 28) | ((params.flow_label & 0xf_ffff) << 8),
        ),
        scope_join_state: join_state::FULL,
        ..Default::default()
    };
    let mut mask = McMemberMask::MGID
        | McMemberMask::PORT_GID
        | McMemberMask::QKEY
        | McMemberMask::TCLASS
        | McMemberMask::PKEY
        | McMemberMask::SL
        | McMemberMask::FLOW_LABEL
        | McMemberMask::JOIN_STATE;
    if let Some(mtu) = params.mtu {
        // MTUSelector 2: exactly.
        rec.mtu_sel_mtu = (2 << 6) | (mtu & 0x3f);
        mask |= McMemberMask::MTU_SELECTOR | McMemberMask::MTU;
    }
    sa_set_mc_member(dev, attr, &rec, mask, policy)
}

/// Leaves a multicast group (SubnAdmDelete MCMemberRecord).
pub fn sa_leave_mcast<V: Verbs + ?Sized>(
    dev: &mut V,
    attr: &PortAttr,
    mgid: &Gid,
    policy: RetryPolicy,
) -> Result<(), Error> {
    let rec = McMemberRecord {
        mgid: *mgid,
        port_gid: attr.gid,
        scope_join_state: join_state::FULL,
        ..Default::default()
    };
    let mask = McMemberMask::MGID | McMemberMask::PORT_GID | McMemberMask::JOIN_STATE;
    let tid = dev.next_tid();
    let req = sa::sa_request(
        MadMethod::DELETE,
        AttrId::MC_MEMBER_RECORD,
        mask.bits(),
        &rec,
        tid,
    );
    mad_rpc(dev, attr.port, &sa_dest(attr), &req, policy)?;
    Ok(())
}

/// Looks up a path to `dgid` (SubnAdmGet PathRecord with DGID | SGID). The SA picks the
/// partition: with ports sharing several, the answer may name any of them (OpenSM answers
/// with one of the shared P_Keys); [`sa_path_record_in`] asks for one.
pub fn sa_path_record<V: Verbs + ?Sized>(
    dev: &mut V,
    attr: &PortAttr,
    dgid: &Gid,
    policy: RetryPolicy,
) -> Result<PathRecord, Error> {
    path_record(dev, attr, dgid, None, policy)
}

/// Looks up a path to `dgid` in partition `pkey` (SubnAdmGet PathRecord with DGID | SGID |
/// P_Key, as Linux IPoIB asks).
pub fn sa_path_record_in<V: Verbs + ?Sized>(
    dev: &mut V,
    attr: &PortAttr,
    dgid: &Gid,
    pkey: u16,
    policy: RetryPolicy,
) -> Result<PathRecord, Error> {
    path_record(dev, attr, dgid, Some(pkey), policy)
}

fn path_record<V: Verbs + ?Sized>(
    dev: &mut V,
    attr: &PortAttr,
    dgid: &Gid,
    pkey: Option<u16>,
    policy: RetryPolicy,
) -> Result<PathRecord, Error> {
    let mut rec = PathRecord {
        dgid: *dgid,
        sgid: attr.gid,
        ..Default::default()
    };
    let mut mask = PathRecordMask::DGID | PathRecordMask::SGID;
    if let Some(k) = pkey {
        rec.pkey = U16::new(k);
        mask |= PathRecordMask::PKEY;
    }
    let tid = dev.next_tid();
    let req = sa::sa_request(MadMethod::GET, AttrId::PATH_RECORD, mask.bits(), &rec, tid);
    let resp = mad_rpc(dev, attr.port, &sa_dest(attr), &req, policy)?;
    Ok(sa::sa_record(&resp)?)
}
