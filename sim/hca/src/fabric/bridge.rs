//! A bridge from one simulated port to a real subnet manager's subnet administrator.
//!
//! With [`crate::Sim::bridge_sm`], the management datagrams one port sends on QP1 to the SM's
//! LID — SubnAdm Set/Get/Delete of MCMemberRecords, PathRecord queries, anything else of the
//! GSI — leave the simulated fabric through a [`MadPeer`] (an ibsim client: module `ibsim`,
//! feature `ibsim`) to a real SM, OpenSM, and its answers come back to that port as IB packets
//! from the SM's LID, QP1 to QP1. The port's LID, its SM's LID and SL, its GID prefix and its P_Key table are
//! the peer subnet's ([`PeerPort`]): the simulated SM programs them with its SMPs, so the
//! driver's queries carry the addresses the real SA knows.
//!
//! What crosses, and what does not:
//!
//! - QP1 datagrams from the bridged port to the SM's LID cross. A request waits (in real time,
//!   [`crate::Sim::bridge_sm`]'s bound; the simulated clock stands still meanwhile) for the
//!   answer with the same transaction id; the answer arrives one hop later in simulated time.
//!   MADs from the peer that answer nothing (requests to our QP1, late answers) reach the port
//!   at the next step of the clock.
//! - SMPs do not cross: our port is programmed by the simulated SM, and in the peer subnet the
//!   SMPs OpenSM sends to our node are answered by ibsim's model of that node. QP1 traffic to
//!   other LIDs, and all UD data (IPoIB, multicast), stays in the simulated fabric: ibsim moves
//!   MADs only.
//! - Whole MADs only (256 bytes, no RMPP): a multi-packet answer (a GetTable of more records
//!   than fit) is cut to its first MAD by the peer.
//! - The answer's LRH/BTH fields that a MAD mover does not carry are the GSI's: P_Key 0xffff,
//!   Q_Key 0x80010000, SL 0.
//! - Memberships the SA grants or removes are mirrored into the simulated fabric's group table
//!   (same MGID, MLID, Q_Key, P_Key, MTU), so multicast between simulated nodes follows them.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use hca::wire::headers::{UdPacket, UdPacketRepr};
use hca::wire::mad::{AttrId, Mad, MadMethod, MadStatus, MAD_SIZE};
use hca::wire::sa::{self, McMemberRecord};
use hca::wire::{Lid, Qpn, GSI_QKEY};
use log::{debug, warn};

use super::{Endpoint, Group, NodeId, World};

/// A MAD as a MAD mover carries it: addressed by LIDs and QPNs, no packet around it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PeerMad {
    /// Destination LID.
    pub dlid: u16,
    /// Source LID (0: "mine", for the peer to fill in).
    pub slid: u16,
    /// Destination QP.
    pub dqp: u32,
    /// Source QP.
    pub sqp: u32,
    /// The mover's own status: 0 delivered; anything else (ibsim: 110, ETIMEDOUT) means the
    /// datagram came back undelivered.
    pub status: u32,
    /// The MAD.
    pub mad: [u8; MAD_SIZE],
}

impl core::fmt::Debug for PeerMad {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PeerMad")
            .field("dlid", &self.dlid)
            .field("slid", &self.slid)
            .field("dqp", &self.dqp)
            .field("sqp", &self.sqp)
            .field("status", &self.status)
            .field("class", &self.mad[1])
            .field("method", &self.mad[3])
            .finish_non_exhaustive()
    }
}

impl PeerMad {
    fn tid(&self) -> u64 {
        let mut t = [0u8; 8];
        t.copy_from_slice(&self.mad[8..16]);
        u64::from_be_bytes(t)
    }
    fn is_response(&self) -> bool {
        self.mad[3] & MadMethod::RESPONSE_BIT != 0
    }
}

/// The other side of the bridge: where the bridged port's management datagrams go.
pub trait MadPeer {
    /// Sends a MAD from the bridged port.
    fn send(&mut self, m: &PeerMad) -> io::Result<()>;
    /// The next MAD for the bridged port, waiting at most `timeout` (zero: do not wait).
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<PeerMad>>;
}

/// The bridged port as the peer subnet's SM configured it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerPort {
    /// Its LID.
    pub lid: u16,
    /// The master SM's LID.
    pub sm_lid: u16,
    /// The master SM's SL.
    pub sm_sl: u8,
    /// The GID prefix.
    pub gid_prefix: u64,
    /// The P_Key table (entries with a zero base left out).
    pub pkeys: Vec<u16>,
}

/// What crossed the bridge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// MADs sent to the peer.
    pub sent: u64,
    /// Answers delivered to the port.
    pub answered: u64,
    /// Requests the peer did not answer in time.
    pub timeouts: u64,
    /// Requests the peer could not deliver (no SM there).
    pub bounced: u64,
    /// MADs from the peer that answered nothing of ours (delivered all the same).
    pub unsolicited: u64,
    /// Datagrams from the port that were not the GSI's (wrong Q_Key, short MAD): dropped.
    pub dropped: u64,
    /// Errors talking to the peer.
    pub errors: u64,
}

pub(super) struct Bridge {
    pub(super) node: NodeId,
    pub(super) port: u8,
    pub(super) peer_port: PeerPort,
    peer: Box<dyn MadPeer>,
    wait: Duration,
    pending: VecDeque<PeerMad>,
    pub(super) stats: BridgeStats,
}

/// The low 48 bits of a TID: a MAD mover may take the top 16 for itself (ibsim puts its client
/// slot there, `sim_mad.c` `update_trid`).
const TID_MASK: u64 = 0x0000_ffff_ffff_ffff;

impl World {
    /// Bridges `(node, port)`'s QP1 traffic to the SM to `peer` (see the module docs).
    pub fn bridge_sm(
        &mut self,
        node: NodeId,
        port: u8,
        peer: Box<dyn MadPeer>,
        peer_port: PeerPort,
        wait: Duration,
    ) {
        self.cfg.sm.lid = peer_port.sm_lid;
        self.lids.insert((node, port), peer_port.lid);
        let up = self
            .nodes
            .get(node)
            .and_then(|n| n.dev.ports.get(usize::from(port) - 1))
            .is_some_and(|p| {
                p.state != hca::wire::smp::PortState::DOWN
                    && p.state != hca::wire::smp::PortState::INIT
            });
        let lid = peer_port.lid;
        self.bridge = Some(Bridge {
            node,
            port,
            peer_port,
            peer,
            wait,
            pending: VecDeque::new(),
            stats: BridgeStats::default(),
        });
        if up {
            // Already configured by the simulated SM: move it to the peer's addresses.
            self.sm_set_port(node, port, hca::wire::smp::PortState::NOP, lid);
        }
    }

    /// The bridge's counters.
    pub fn bridge_stats(&self) -> Option<BridgeStats> {
        self.bridge.as_ref().map(|b| b.stats)
    }

    /// The P_Key table, GID prefix and SM SL the SM gives `(node, port)`: the peer's for the
    /// bridged port.
    pub(super) fn sm_view(&self, node: NodeId, port: u8) -> (Vec<u16>, u64, u8) {
        match &self.bridge {
            Some(b) if (b.node, b.port) == (node, port) => (
                b.peer_port.pkeys.clone(),
                b.peer_port.gid_prefix,
                b.peer_port.sm_sl,
            ),
            _ => (self.cfg.sm.pkeys.clone(), self.cfg.sm.gid_prefix, 0),
        }
    }

    /// If `bytes`, sent from `from`, is for the bridge, carries it across and returns true.
    pub(super) fn bridge_out(&mut self, from: Endpoint, bytes: &[u8]) -> bool {
        let Some(b) = self.bridge.as_ref() else {
            return false;
        };
        if from
            != (Endpoint::Hca {
                node: b.node,
                port: b.port,
            })
        {
            return false;
        }
        let Ok(pkt) = UdPacket::parse(bytes) else {
            return false;
        };
        let r = pkt.repr;
        if r.dlid.0 != self.cfg.sm.lid || r.dest_qpn != Qpn::GSI {
            return false;
        }
        let Some(b) = self.bridge.as_mut() else {
            return false;
        };
        let mut m = PeerMad {
            dlid: r.dlid.0,
            slid: r.slid.0,
            dqp: r.dest_qpn.0,
            sqp: r.src_qpn.0,
            status: 0,
            mad: [0; MAD_SIZE],
        };
        if r.qkey != GSI_QKEY || pkt.payload.len() != MAD_SIZE {
            warn!(
                "hca-sim: bridge: QP1 datagram with Q_Key {:#x}, {} bytes: dropped",
                r.qkey,
                pkt.payload.len()
            );
            b.stats.dropped += 1;
            return true;
        }
        m.mad.copy_from_slice(pkt.payload);
        let tid = m.tid();
        if let Err(e) = b.peer.send(&m) {
            warn!("hca-sim: bridge: send: {e}");
            b.stats.errors += 1;
            return true;
        }
        b.stats.sent += 1;
        if m.is_response() {
            return true;
        }
        // Wait for the answer; keep whatever else comes meanwhile.
        let deadline = Instant::now() + b.wait;
        let answer = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break None;
            }
            match b.peer.recv(left) {
                Ok(Some(a)) if (a.tid() & TID_MASK) == (tid & TID_MASK) && a.mad[1] == m.mad[1] => {
                    break Some(a)
                }
                Ok(Some(other)) => b.pending.push_back(other),
                Ok(None) => {}
                Err(e) => {
                    warn!("hca-sim: bridge: receive: {e}");
                    b.stats.errors += 1;
                    break None;
                }
            }
        };
        match answer {
            None => {
                b.stats.timeouts += 1;
                debug!("hca-sim: bridge: no answer to TID {tid:#x}");
            }
            Some(a) if a.status != 0 || !a.is_response() => {
                // The request itself came back: nobody took it.
                b.stats.bounced += 1;
                debug!(
                    "hca-sim: bridge: TID {tid:#x} came back undelivered ({})",
                    a.status
                );
            }
            Some(mut a) => {
                // Our TID, whole again.
                a.mad[8..16].copy_from_slice(&tid.to_be_bytes());
                self.bridge_in(a, true);
            }
        }
        true
    }

    /// Delivers what the peer sent meanwhile (called as the clock steps).
    pub(super) fn bridge_poll(&mut self) {
        let Some(b) = self.bridge.as_mut() else {
            return;
        };
        loop {
            match b.peer.recv(Duration::ZERO) {
                Ok(Some(m)) => b.pending.push_back(m),
                Ok(None) => break,
                Err(e) => {
                    warn!("hca-sim: bridge: receive: {e}");
                    b.stats.errors += 1;
                    break;
                }
            }
        }
        let pending: Vec<PeerMad> = b.pending.drain(..).collect();
        for m in pending {
            if m.status != 0 {
                if let Some(b) = self.bridge.as_mut() {
                    b.stats.bounced += 1;
                }
                continue;
            }
            self.bridge_in(m, false);
        }
    }

    /// A MAD from the peer becomes a packet from the SM's LID to the bridged port.
    fn bridge_in(&mut self, m: PeerMad, answer: bool) {
        let Some(b) = self.bridge.as_mut() else {
            return;
        };
        if answer {
            b.stats.answered += 1;
        } else {
            b.stats.unsolicited += 1;
        }
        let out = UdPacketRepr {
            vl: 0,
            sl: 0,
            dlid: Lid(b.peer_port.lid),
            slid: Lid(if m.slid == 0 { self.cfg.sm.lid } else { m.slid }),
            grh: None,
            pkey: 0xffff,
            dest_qpn: Qpn(m.dqp),
            psn: 0,
            qkey: GSI_QKEY,
            src_qpn: Qpn(m.sqp),
        };
        if let Ok(mad) = Mad::parse(&m.mad) {
            self.mirror_membership(&mad);
        }
        let mut pkt = vec![0u8; out.buffer_len(MAD_SIZE)];
        if out.emit(&m.mad, &mut pkt).is_ok() {
            self.transmit(Endpoint::Sm, pkt);
        }
    }

    /// Keeps the simulated fabric's group table in step with the real SA's answers.
    fn mirror_membership(&mut self, m: &Mad) {
        let Some(b) = self.bridge.as_ref() else {
            return;
        };
        let me = (b.node, b.port);
        if m.hdr.attr_id != AttrId::MC_MEMBER_RECORD
            || MadStatus(m.hdr.status.get()) != MadStatus::OK
        {
            return;
        }
        let Ok(r) = sa::sa_record::<McMemberRecord>(m) else {
            return;
        };
        match m.hdr.method {
            MadMethod::GET_RESP => {
                let clash = self
                    .groups
                    .iter()
                    .any(|(g, grp)| *g != r.mgid && grp.mlid == r.mlid.get());
                if clash || !r.mlid().is_multicast() {
                    warn!(
                        "hca-sim: bridge: MLID {:#x} of {:?} not mirrored",
                        r.mlid.get(),
                        r.mgid
                    );
                    return;
                }
                let g = self.groups.entry(r.mgid).or_insert_with(|| Group {
                    qkey: r.qkey.get(),
                    mlid: r.mlid.get(),
                    pkey: r.pkey.get(),
                    mtu: r.mtu(),
                    members: Default::default(),
                });
                g.qkey = r.qkey.get();
                g.mlid = r.mlid.get();
                g.pkey = r.pkey.get();
                g.mtu = r.mtu();
                g.members.insert(me);
            }
            MadMethod::DELETE_RESP => {
                if let Some(g) = self.groups.get_mut(&r.mgid) {
                    g.members.remove(&me);
                }
            }
            _ => {}
        }
    }
}
