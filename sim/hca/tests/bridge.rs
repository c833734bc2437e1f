//! The SM bridge against a scripted peer (the real one, OpenSM on ibsim, is `net-sim`'s
//! `opensm` test): what crosses, with which addresses and TIDs, what comes back, and what
//! happens when the peer bounces a request, says nothing or speaks first.

mod common;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use hca::verbs::{self, PortNum, RetryPolicy};
use hca::wire::mad::{AttrId, Mad, MadMethod, MgmtClass, MAD_SIZE};
use hca::wire::sa::{self, McMemberRecord};
use hca::wire::{Gid, Lid, Qpn};
use hca::{Error, Verbs};
use hca_sim::{MadPeer, PeerMad, PeerPort, SimConfig};
use zerocopy::byteorder::big_endian::{U16, U32};
use zerocopy::IntoBytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Answer as an SA: the join with a record, anything else with an empty GetResp.
    Answer,
    /// Send the request back undelivered (ibsim's status 110).
    Bounce,
    /// Say nothing.
    Silent,
}

#[derive(Default)]
struct Script {
    sent: Vec<PeerMad>,
    queue: VecDeque<PeerMad>,
    mode: Option<Mode>,
}

/// A scripted SA behind the bridge, overwriting the TID's top 16 bits as ibsim does.
#[derive(Clone, Default)]
struct FakeSa(Rc<RefCell<Script>>);

const MLID: u16 = 0xc123;
const QKEY: u32 = 0x1234_5678;

impl MadPeer for FakeSa {
    fn send(&mut self, m: &PeerMad) -> io::Result<()> {
        let mut s = self.0.borrow_mut();
        s.sent.push(*m);
        let mut req = *m;
        req.mad[8] = 0x00;
        req.mad[9] = 0x03;
        match s.mode.unwrap_or(Mode::Answer) {
            Mode::Silent => {}
            Mode::Bounce => {
                req.status = 110;
                s.queue.push_back(req);
            }
            Mode::Answer => {
                let mut mad = Mad::parse(&req.mad).unwrap();
                mad.hdr.method = mad.hdr.method.response();
                if mad.hdr.attr_id == AttrId::MC_MEMBER_RECORD {
                    let mut r: McMemberRecord = sa::sa_record(&mad).unwrap();
                    r.mlid = U16::new(MLID);
                    r.qkey = U32::new(QKEY);
                    r.pkey = U16::new(0xffff);
                    r.mtu_sel_mtu = 0x84;
                    sa::set_sa_record(&mut mad, &r);
                }
                let mut a = PeerMad {
                    dlid: m.slid,
                    slid: m.dlid,
                    dqp: m.sqp,
                    sqp: m.dqp,
                    status: 0,
                    mad: [0; MAD_SIZE],
                };
                a.mad.copy_from_slice(mad.as_bytes());
                s.queue.push_back(a);
            }
        }
        Ok(())
    }

    fn recv(&mut self, _: Duration) -> io::Result<Option<PeerMad>> {
        Ok(self.0.borrow_mut().queue.pop_front())
    }
}

fn peer_port() -> PeerPort {
    PeerPort {
        lid: 0x21,
        sm_lid: 0x05,
        sm_sl: 3,
        gid_prefix: 0xfe80_0000_0000_0000,
        pkeys: vec![0xffff, 0x8001],
    }
}

#[test]
fn the_bridged_port_takes_the_peers_addresses_and_its_sa_answers() {
    let f = common::fabric(SimConfig::default(), 2);
    let sa_peer = FakeSa::default();
    f.sim.bridge_sm(
        f.nodes[0],
        1,
        sa_peer.clone(),
        peer_port(),
        Duration::from_secs(1),
    );
    let mut a = common::open(&f.sim, f.nodes[0]);
    let attr = common::active(&mut a, 1);
    // The simulated SM programmed the peer's addresses.
    assert_eq!(
        (attr.lid, attr.sm_lid, attr.sm_sl),
        (Lid(0x21), Lid(0x05), 3)
    );
    assert_eq!(attr.pkeys[..2], [0xffff, 0x8001]);
    // Another node stays with the simulated SA, now at the peer SM's LID.
    let mut b = common::open(&f.sim, f.nodes[1]);
    let battr = common::active(&mut b, 1);
    assert_eq!(battr.sm_lid, Lid(0x05));
    assert_eq!(battr.pkeys[..2], [0xffff, 0]);

    let mgid = Gid::ipoib_broadcast(0xffff);
    let rec = verbs::sa_join_mcast(&mut a, &attr, &mgid, RetryPolicy::default()).unwrap();
    assert_eq!((rec.mlid.get(), rec.qkey.get(), rec.mtu()), (MLID, QKEY, 4));
    {
        let s = sa_peer.0.borrow();
        assert_eq!(s.sent.len(), 1);
        let m = s.sent[0];
        assert_eq!((m.dlid, m.slid, m.dqp, m.sqp), (0x05, 0x21, 1, 1));
        let mad = Mad::parse(&m.mad).unwrap();
        assert_eq!(mad.hdr.mgmt_class, MgmtClass::SUBN_ADM);
        assert_eq!(mad.hdr.method, MadMethod::SET);
        let r: McMemberRecord = sa::sa_record(&mad).unwrap();
        assert_eq!(r.port_gid, attr.gid);
    }
    // The membership is mirrored: the simulated fabric now fans MLID 0xc123 out to us.
    assert_eq!(f.sim.group_members(&mgid), 1);
    // B's join went to the simulated SA (the bridge saw nothing of it), whose group took the
    // real SA's parameters.
    let brec = verbs::sa_join_mcast(&mut b, &battr, &mgid, RetryPolicy::default()).unwrap();
    assert_eq!(brec.qkey.get(), QKEY, "the mirrored group's parameters");
    assert_eq!(sa_peer.0.borrow().sent.len(), 1);
    assert_eq!(f.sim.group_members(&mgid), 2);

    verbs::sa_leave_mcast(&mut a, &attr, &mgid, RetryPolicy::default()).unwrap();
    assert_eq!(f.sim.group_members(&mgid), 1);
    let st = f.sim.bridge_stats().unwrap();
    assert_eq!(
        (st.sent, st.answered, st.timeouts, st.bounced),
        (2, 2, 0, 0)
    );
}

#[test]
fn bounced_and_unanswered_requests_time_out_and_unsolicited_mads_arrive() {
    let f = common::fabric(SimConfig::default(), 1);
    let sa_peer = FakeSa::default();
    f.sim.bridge_sm(
        f.nodes[0],
        1,
        sa_peer.clone(),
        peer_port(),
        Duration::from_millis(30),
    );
    let mut a = common::open(&f.sim, f.nodes[0]);
    let attr = common::active(&mut a, 1);
    let once = RetryPolicy {
        attempts: 2,
        ..RetryPolicy::default()
    };
    let dgid = Gid::from_parts(0xfe80 << 48, hca::wire::Guid::from_u64(0x99));
    sa_peer.0.borrow_mut().mode = Some(Mode::Bounce);
    assert_eq!(
        verbs::sa_path_record(&mut a, &attr, &dgid, once).unwrap_err(),
        Error::MadTimeout
    );
    sa_peer.0.borrow_mut().mode = Some(Mode::Silent);
    let t0 = std::time::Instant::now();
    assert_eq!(
        verbs::sa_path_record(&mut a, &attr, &dgid, once).unwrap_err(),
        Error::MadTimeout
    );
    assert!(t0.elapsed() >= Duration::from_millis(60), "waited for each");
    let st = f.sim.bridge_stats().unwrap();
    assert_eq!(
        (st.sent, st.bounced, st.timeouts, st.answered),
        (4, 2, 2, 0)
    );

    // The peer speaks first: a Get to our QP1 reaches the driver's GSI at the next step.
    let mut req = Mad::request(
        MgmtClass(0x30),
        1,
        MadMethod::GET,
        AttrId(U16::new(0x10)),
        0,
        7,
    );
    req.hdr.base_version = 1;
    let mut m = PeerMad {
        dlid: 0x21,
        slid: 0x09,
        dqp: 1,
        sqp: 1,
        status: 0,
        mad: [0; MAD_SIZE],
    };
    m.mad.copy_from_slice(req.as_bytes());
    sa_peer.0.borrow_mut().queue.push_back(m);
    a.delay(Duration::from_millis(1));
    let got = a.mad_recv(PortNum(1)).unwrap().expect("the peer's MAD");
    assert_eq!((got.slid, got.src_qpn), (Lid(0x09), Qpn::GSI));
    assert_eq!(got.mad.tid(), 7);
    assert_eq!(f.sim.bridge_stats().unwrap().unsolicited, 1);
}
