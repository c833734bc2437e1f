//! Subnet management on the wire: the SM programs ports with directed-route SMPs on QP0
//! (VL15), and each HCA port's subnet management agent answers them.
//!
//! The SM brings a port from INIT to ACTIVE as OpenSM does, in three directed-route
//! transactions (IBA §14.2.1.2; `SubnGet`/`SubnSet`, §14.2.5): `Get(NodeInfo)`,
//! `Set(P_KeyTable)` block 0 and `Set(PortInfo)` with the LID, the master SM's LID and SL, the
//! GID prefix and PortState ARMED; after the activation delay, `Set(PortInfo)` with PortState
//! ACTIVE. A LID change is one more `Set(PortInfo)`. The agent is the HCA firmware's SMA,
//! modelled here at the port (the device model's own SMA answers the driver's MAD_IFC): it
//! applies `Set(PortInfo)` and `Set(P_KeyTable)` to the port's state and answers every request
//! with `GetResp` — NodeInfo, PortInfo and P_KeyTable; other attributes get status
//! "method/attribute unsupported".
//!
//! Directed routes: the path is the fabric's shortest path from the SM's port. Port numbers
//! are the SM's port 1, an HCA's own port number, and a switch's links numbered from 1 in the
//! order they were cabled. The route is not re-walked hop by hop: the packet goes to the last
//! hop in one step (the hop pointer a real switch increments is 0 in the request as sent, and
//! the hop count in the response), and the response records the return path.
//!
//! Fire and forget, as a sweep: the SM does not wait for answers; it counts them
//! ([`super::FabricStats::smp_answers`]), and a later sweep programs again any port still in
//! INIT or ARMED (a lost SMP delays the port, it does not strand it).

use hca::wire::headers::{UdPacket, UdPacketRepr};
use hca::wire::mad::{AttrId, Mad, MadMethod, MadStatus, MgmtClass};
use hca::wire::smp::{self, NodeInfo, PKeyTable, PortInfo, PortState};
use hca::wire::{Guid, Lid, Qpn};
use log::debug;
use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use super::{Endpoint, FabricEventKind, NodeId, World};
use crate::prm;

/// A directed route: egress ports from the requester, ingress ports for the way back (index 0
/// unused in both).
struct Route {
    initial: Vec<u8>,
    ret: Vec<u8>,
}

fn smp_packet(dlid: Lid, slid: Lid, mad: &Mad) -> Option<Vec<u8>> {
    let r = UdPacketRepr {
        vl: 15,
        sl: 0,
        dlid,
        slid,
        grh: None,
        pkey: 0xffff,
        dest_qpn: Qpn::SMI,
        psn: 0,
        qkey: 0,
        src_qpn: Qpn::SMI,
    };
    let mut b = vec![0u8; r.buffer_len(mad.as_bytes().len())];
    r.emit(mad.as_bytes(), &mut b).ok()?;
    Some(b)
}

impl World {
    /// The port number `link` has on switch `sw`: its rank among the switch's links.
    fn switch_port(&self, sw: usize, link: usize) -> u8 {
        let n = self.links[..link]
            .iter()
            .filter(|l| l.a == Endpoint::Switch(sw) || l.b == Endpoint::Switch(sw))
            .count();
        (n + 1).min(255) as u8
    }

    /// The port number of `e` on `link`.
    fn port_on(&self, e: Endpoint, link: usize) -> u8 {
        match e {
            Endpoint::Sm => 1,
            Endpoint::Hca { port, .. } => port,
            Endpoint::Switch(sw) => self.switch_port(sw, link),
        }
    }

    /// The SM's directed route to `to` over links that are up (at most 63 hops).
    fn dr_route(&self, to: Endpoint) -> Option<Route> {
        use std::collections::{BTreeMap, VecDeque};
        let from = Endpoint::Sm;
        let mut prev: BTreeMap<Endpoint, (Endpoint, usize)> = BTreeMap::new();
        let mut q = VecDeque::from([from]);
        while let Some(e) = q.pop_front() {
            if e == to {
                break;
            }
            // Only switches forward; an HCA port ends a path.
            if e != from && !matches!(e, Endpoint::Switch(_)) {
                continue;
            }
            for (i, l) in self.links.iter().enumerate().filter(|(_, l)| l.up) {
                let next = if l.a == e {
                    l.b
                } else if l.b == e {
                    l.a
                } else {
                    continue;
                };
                if next != from && !prev.contains_key(&next) {
                    prev.insert(next, (e, i));
                    q.push_back(next);
                }
            }
        }
        let mut hops = Vec::new();
        let mut at = to;
        while at != from {
            let &(p, link) = prev.get(&at)?;
            hops.push((p, at, link));
            at = p;
        }
        hops.reverse();
        if hops.is_empty() || hops.len() > 63 {
            return None;
        }
        let mut initial = vec![0];
        let mut ret = vec![0];
        for &(out, into, link) in &hops {
            initial.push(self.port_on(out, link));
            ret.push(self.port_on(into, link));
        }
        Some(Route { initial, ret })
    }

    /// The SM sends a directed-route SMP to an HCA port.
    fn sm_send_smp(
        &mut self,
        node: NodeId,
        port: u8,
        method: MadMethod,
        attr: AttrId,
        data: &[u8],
    ) {
        let to = Endpoint::Hca { node, port };
        let Some(route) = self.dr_route(to) else {
            return;
        };
        self.seq += 1;
        let tid = 0x5353_0000_0000_0000 | self.seq; // "SS"
                                                    // PortInfo's modifier names the port; P_KeyTable's is the block (0).
        let attr_mod = if attr == AttrId::PORT_INFO {
            u32::from(port)
        } else {
            0
        };
        let Ok(mut mad) = smp::dr_smp_request(method, attr, attr_mod, tid, &route.initial) else {
            return;
        };
        let n = data.len().min(64);
        mad.data[40..40 + n].copy_from_slice(&data[..n]);
        if let Some(pkt) = smp_packet(Lid::PERMISSIVE, Lid::PERMISSIVE, &mad) {
            self.stats.smps += 1;
            self.send_to(Endpoint::Sm, to, pkt);
        }
    }

    /// Programs a port in INIT: NodeInfo, its P_Key table, then PortInfo with the LID and
    /// PortState ARMED.
    pub(super) fn sm_program_port(&mut self, node: NodeId, port: u8, lid: u16) {
        let (pkeys, _, _) = self.sm_view(node, port);
        self.sm_send_smp(node, port, MadMethod::GET, AttrId::NODE_INFO, &[]);
        let mut t = PKeyTable::default();
        for (d, s) in t.pkey.iter_mut().zip(pkeys.iter()) {
            *d = U16::new(*s);
        }
        self.sm_send_smp(node, port, MadMethod::SET, AttrId::PKEY_TABLE, t.as_bytes());
        self.sm_set_port(node, port, PortState::ARMED, lid);
    }

    /// `Set(PortInfo)`: the port's PortInfo as last read (an SM sets what it got, changed)
    /// with the LID, the SM's LID and SL, the GID prefix and `state` (NOP: no change).
    pub(super) fn sm_set_port(&mut self, node: NodeId, port: u8, state: PortState, lid: u16) {
        self.sm_send_port_info(node, port, state, lid, false);
    }

    /// After an SM restart: `Set(PortInfo)` of an ACTIVE port, nothing changed but
    /// ClientReregister set (OpenSM sets it on its first sweep as master, IBA 14.4.11), so that
    /// the port's clients join their multicast groups again.
    pub(super) fn sm_reregister_port(&mut self, node: NodeId, port: u8, lid: u16) {
        self.sm_send_port_info(node, port, PortState::NOP, lid, true);
    }

    /// The `Set(PortInfo)` of [`Self::sm_set_port`], with ClientReregister as `rereg`.
    fn sm_send_port_info(
        &mut self,
        node: NodeId,
        port: u8,
        state: PortState,
        lid: u16,
        rereg: bool,
    ) {
        let (_, prefix, sm_sl) = self.sm_view(node, port);
        let mut pi = self.port_info(node, port);
        pi.gid_prefix = U64::new(prefix);
        pi.lid = U16::new(lid);
        pi.master_sm_lid = U16::new(self.cfg.sm.lid);
        pi.neighbor_mtu_master_sm_sl = (pi.neighbor_mtu_master_sm_sl & 0xf0) | (sm_sl & 0xf);
        pi.set_port_state(state);
        // PortPhysicalState and LinkDownDefaultState: no change.
        pi.phys_state_link_down_default = 0;
        if rereg {
            pi.set_client_reregister(true);
        }
        self.sm_send_smp(node, port, MadMethod::SET, AttrId::PORT_INFO, pi.as_bytes());
    }

    /// An SMP answer reached the SM.
    pub(super) fn sm_receive_smp(&mut self, pkt: &UdPacket<'_>) {
        let Ok(m) = Mad::parse(pkt.payload) else {
            return;
        };
        if !m.hdr.method.is_response() {
            return;
        }
        self.stats.smp_answers += 1;
        let status = m.hdr.status.get() & !smp::DR_DIRECTION;
        if status != 0 {
            debug!(
                "hca-sim: SM: SMP {:#06x} answered with status {status:#06x}",
                m.hdr.attr_id.0.get()
            );
        }
    }

    /// The port's SMA: a QP0 packet arrived at an HCA port.
    pub(super) fn sma_receive(&mut self, node: NodeId, port: u8, pkt: &UdPacket<'_>) {
        let Ok(req) = Mad::parse(pkt.payload) else {
            return;
        };
        let dr = req.hdr.mgmt_class == MgmtClass::SUBN_DIRECTED_ROUTE;
        if (!dr && req.hdr.mgmt_class != MgmtClass::SUBN_LID_ROUTED) || req.hdr.method.is_response()
        {
            return;
        }
        let set = req.hdr.method == MadMethod::SET;
        let mut resp = req;
        let status = if set || req.hdr.method == MadMethod::GET {
            self.sma_attr(node, port, &req, &mut resp, set)
        } else {
            MadStatus::METHOD_UNSUPPORTED
        };
        let Some(p) = self.nodes[node].dev.ports.get(usize::from(port) - 1) else {
            return;
        };
        let (lid, to_sm) = (Lid(p.lid), dr);
        let (resp, dlid, slid) = if dr {
            let ret = self
                .dr_route(Endpoint::Hca { node, port })
                .map(|r| r.ret)
                .unwrap_or_default();
            (
                smp::dr_smp_response(&resp, status.0, &ret),
                Lid::PERMISSIVE,
                Lid::PERMISSIVE,
            )
        } else {
            resp.hdr.method = req.hdr.method.response();
            resp.hdr.status = U16::new(status.0);
            (resp, pkt.repr.slid, lid)
        };
        let Some(b) = smp_packet(dlid, slid, &resp) else {
            return;
        };
        if to_sm {
            self.send_to(Endpoint::Hca { node, port }, Endpoint::Sm, b);
        } else {
            self.transmit(Endpoint::Hca { node, port }, b);
        }
    }

    /// Answers (and for a Set, first applies) one attribute.
    fn sma_attr(
        &mut self,
        node: NodeId,
        port: u8,
        req: &Mad,
        resp: &mut Mad,
        set: bool,
    ) -> MadStatus {
        match req.hdr.attr_id {
            AttrId::NODE_INFO if !set => {
                let n = &self.nodes[node].dev;
                let g = Guid::from_u64(n.spec.node_guid);
                let ni = NodeInfo {
                    base_version: 1,
                    class_version: 1,
                    node_type: 1,
                    num_ports: n.ports.len() as u8,
                    system_image_guid: g,
                    node_guid: g,
                    port_guid: n.port_guid(port),
                    partition_cap: U16::new(32),
                    device_id: U16::new(n.spec.device_id),
                    revision: U32::new(0xa0),
                    local_port_num: port,
                    vendor_id: [0x00, 0x02, 0xc9],
                };
                smp::set_smp_attr(resp, &ni);
                MadStatus::OK
            }
            AttrId::PKEY_TABLE if req.hdr.attr_mod.get() == 0 => {
                if set {
                    let Ok(t) = smp::smp_attr::<PKeyTable>(req) else {
                        return MadStatus::INVALID_FIELD;
                    };
                    let keys: Vec<u16> = t
                        .pkey
                        .iter()
                        .map(|k| k.get())
                        .filter(|k| k & 0x7fff != 0)
                        .collect();
                    self.nodes[node].dev.ports[usize::from(port) - 1].pkeys = keys;
                }
                let mut t = PKeyTable::default();
                let p = &self.nodes[node].dev.ports[usize::from(port) - 1];
                for (d, s) in t.pkey.iter_mut().zip(p.pkeys.iter()) {
                    *d = U16::new(*s);
                }
                smp::set_smp_attr(resp, &t);
                MadStatus::OK
            }
            AttrId::PORT_INFO => {
                let mut status = MadStatus::OK;
                if set {
                    match smp::smp_attr::<PortInfo>(req) {
                        Ok(pi) => status = self.sma_set_port_info(node, port, &pi),
                        Err(_) => return MadStatus::INVALID_FIELD,
                    }
                }
                let pi = self.port_info(node, port);
                smp::set_smp_attr(resp, &pi);
                status
            }
            _ => MadStatus::METHOD_ATTR_UNSUPPORTED,
        }
    }

    /// Applies a `Set(PortInfo)`: LID, master SM LID and SL, GID prefix, and the state
    /// transitions an SM may ask for (INIT→ARMED, ARMED→ACTIVE; NOP leaves the state).
    fn sma_set_port_info(&mut self, node: NodeId, port: u8, pi: &PortInfo) -> MadStatus {
        let n = &mut self.nodes[node];
        let p = &mut n.dev.ports[usize::from(port) - 1];
        let want = pi.port_state();
        let ok = match (p.state, want) {
            (_, PortState::NOP) => true,
            (PortState::INIT, PortState::ARMED) => true,
            (PortState::ARMED, PortState::ACTIVE) => true,
            (s, w) => s == w,
        };
        if !ok {
            return MadStatus::INVALID_FIELD;
        }
        let was_configured = p.state == PortState::ARMED || p.state == PortState::ACTIVE;
        let mut changed = 0;
        if p.lid != pi.lid.get() {
            changed |= prm::eqe::PMC_LID_CHANGE;
        }
        if p.sm_lid != pi.master_sm_lid.get() {
            changed |= prm::eqe::PMC_SM_LID_CHANGE;
        }
        // IBA 14.4.11: the SMA passes ClientReregister on to the port's clients; the bit
        // itself is not kept (a Get reads it as 0).
        if pi.client_reregister() {
            changed |= prm::eqe::PMC_CLIENT_REREG;
        }
        p.lid = pi.lid.get();
        p.sm_lid = pi.master_sm_lid.get();
        p.sm_sl = pi.sm_sl();
        p.gid_prefix = pi.gid_prefix.get();
        let activated = p.state == PortState::ARMED && want == PortState::ACTIVE;
        let p_state_before = p.state;
        if want != PortState::NOP {
            p.state = want;
        }
        let lid = p.lid;
        let moved_state = want != PortState::NOP && want != p_state_before;
        if moved_state {
            self.log_event(FabricEventKind::PortState {
                node,
                port,
                state: want,
            });
        }
        let n = &mut self.nodes[node];
        if activated {
            self.stats.activations += 1;
            debug!("hca-sim: node {node} port {port} ACTIVE lid {lid}");
            n.dev.port_state_event(&n.mem, port, true);
        } else if was_configured && changed != 0 {
            n.dev.port_mgmt_event(&n.mem, port, changed);
        }
        MadStatus::OK
    }

    /// PortInfo as the port's SMA reports it.
    fn port_info(&self, node: NodeId, port: u8) -> PortInfo {
        let p = &self.nodes[node].dev.ports[usize::from(port) - 1];
        let mut pi = PortInfo {
            gid_prefix: U64::new(p.gid_prefix),
            lid: U16::new(p.lid),
            master_sm_lid: U16::new(p.sm_lid),
            local_port_num: port,
            link_width_enabled: 2,
            link_width_supported: 2,
            link_width_active: 2,
            ..Default::default()
        };
        pi.set_port_state(p.state);
        pi.link_speed_supported_port_state |= 0x10;
        let phys = if p.state == PortState::DOWN { 3 } else { 5 };
        pi.phys_state_link_down_default = (phys << 4) | 2;
        pi.link_speed_active_enabled = 0x11;
        pi.neighbor_mtu_master_sm_sl = (p.mtu.min(p.mtu_cap) << 4) | (p.sm_sl & 0xf);
        pi.vl_cap_init_type = 0x10;
        pi.set_mtu_cap(p.mtu_cap);
        pi
    }
}
