//! UD datapath, SA and multicast between simulated nodes, each driven by the unmodified driver.

mod common;

use std::time::Duration;

use hca::hermon::Hermon;
use hca::verbs::{
    self, AddressHandle, CompletionKind, CqId, PortAttr, PortNum, QpId, RetryPolicy, UdQpAttr,
    WcStatus,
};
use hca::wire::mad::MadStatus;
use hca::wire::{Gid, Qpn};
use hca::{Error, Verbs};
use hca_sim::{SimConfig, SimHal};

const QKEY: u32 = 0x0b1b;

struct Ep {
    dev: Hermon<SimHal>,
    attr: PortAttr,
    cq: CqId,
    qp: QpId,
}

fn endpoint(f: &common::Fabric, i: usize, port: u8, qkey: Option<u32>) -> Ep {
    let mut dev = common::open(&f.sim, f.nodes[i]);
    let attr = common::active(&mut dev, port);
    let cq = dev.create_cq(32).unwrap();
    let qp = dev
        .create_ud_qp(&UdQpAttr {
            port: PortNum(port),
            send_cq: cq,
            recv_cq: cq,
            send_slots: 8,
            recv_slots: 8,
            qkey,
        })
        .unwrap();
    Ep { dev, attr, cq, qp }
}

/// Polls until a completion of `kind` arrives (bounded).
fn wait_completion(ep: &mut Ep, kind: CompletionKind, buf: &mut [u8]) -> hca::verbs::Completion {
    for _ in 0..1000 {
        if let Some(c) = ep.dev.poll_cq(ep.cq, buf).unwrap() {
            if c.kind == kind {
                return c;
            }
            continue;
        }
        ep.dev.delay(Duration::from_micros(100));
    }
    panic!("no {kind:?} completion");
}

fn no_completion(ep: &mut Ep, kind: CompletionKind) {
    ep.dev.delay(Duration::from_millis(5));
    let mut buf = [0u8; 64];
    while let Some(c) = ep.dev.poll_cq(ep.cq, &mut buf).unwrap() {
        assert_ne!(c.kind, kind, "unexpected {c:?}");
    }
}

#[test]
fn ud_unicast_between_two_nodes() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0, 1, Some(QKEY));
    let mut b = endpoint(&f, 1, 1, Some(QKEY));
    let bqpn = b.dev.qp_num(b.qp).unwrap();
    let ah = AddressHandle::unicast(b.attr.lid, 0, bqpn, QKEY);
    let wr = a
        .dev
        .post_send(a.qp, &ah, b"hello over infiniband")
        .unwrap();
    let mut buf = [0u8; 64];
    let sc = wait_completion(&mut a, CompletionKind::Send, &mut buf);
    assert_eq!(sc.wr_id, wr);
    assert_eq!(sc.status, WcStatus::SUCCESS);
    let rc = wait_completion(&mut b, CompletionKind::Recv, &mut buf);
    assert_eq!(rc.status, WcStatus::SUCCESS);
    assert_eq!(&buf[..rc.byte_len as usize], b"hello over infiniband");
    assert_eq!(rc.src_qpn, a.dev.qp_num(a.qp).unwrap());
    assert_eq!(rc.slid, a.attr.lid);
    assert_eq!(rc.grh, None);

    // Many datagrams both ways, more than the rings hold, so slots are recycled.
    let aqpn = a.dev.qp_num(a.qp).unwrap();
    let back = AddressHandle::unicast(a.attr.lid, 0, aqpn, QKEY);
    for i in 0..40u32 {
        let msg = i.to_be_bytes();
        b.dev.post_send(b.qp, &back, &msg).unwrap();
        let _ = wait_completion(&mut b, CompletionKind::Send, &mut buf);
        let rc = wait_completion(&mut a, CompletionKind::Recv, &mut buf);
        assert_eq!(&buf[..4], &msg);
        assert_eq!(rc.byte_len, 4);
    }
    assert_eq!(f.sim.counters(f.nodes[0]).misuse, 0);
    assert_eq!(f.sim.counters(f.nodes[1]).misuse, 0);
}

#[test]
fn ud_between_port_two_of_one_node_and_port_one_of_another() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0, 2, Some(QKEY));
    let mut b = endpoint(&f, 1, 1, Some(QKEY));
    let ah = AddressHandle::unicast(b.attr.lid, 0, b.dev.qp_num(b.qp).unwrap(), QKEY);
    a.dev.post_send(a.qp, &ah, b"from port 2").unwrap();
    let mut buf = [0u8; 64];
    let rc = wait_completion(&mut b, CompletionKind::Recv, &mut buf);
    assert_eq!(&buf[..rc.byte_len as usize], b"from port 2");
    assert_eq!(rc.slid, a.attr.lid);
}

#[test]
fn wrong_qkey_is_dropped_by_the_receiver() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0, 1, Some(QKEY));
    let mut b = endpoint(&f, 1, 1, Some(QKEY));
    let ah = AddressHandle::unicast(b.attr.lid, 0, b.dev.qp_num(b.qp).unwrap(), 0x1234);
    a.dev.post_send(a.qp, &ah, b"nope").unwrap();
    no_completion(&mut b, CompletionKind::Recv);
    assert_eq!(f.sim.counters(f.nodes[1]).rx_qkey_violation, 1);
}

#[test]
fn qp_without_qkey_stays_init_until_activated() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0, 1, None);
    let ah = AddressHandle::unicast(hca::wire::Lid(2), 0, Qpn(0x48), QKEY);
    assert_eq!(a.dev.post_send(a.qp, &ah, b"x"), Err(Error::InvalidState));
    a.dev.activate_qp(a.qp, QKEY).unwrap();
    // RTS -> RTS with a new Q_Key also works.
    a.dev.activate_qp(a.qp, 0x0b1c).unwrap();
    assert!(a.dev.post_send(a.qp, &ah, b"x").is_ok());
}

#[test]
fn sa_join_gives_broadcast_group_parameters_and_multicast_fans_out() {
    let f = common::fabric(SimConfig::default(), 3);
    let mut eps: Vec<Ep> = (0..3).map(|i| endpoint(&f, i, 1, None)).collect();
    let mgid = Gid::ipoib_broadcast(eps[0].attr.pkey());
    let mut rec = None;
    for ep in eps.iter_mut() {
        ep.dev.attach_mcast(ep.qp, &mgid).unwrap();
        let r = verbs::sa_join_mcast(&mut ep.dev, &ep.attr, &mgid, RetryPolicy::default()).unwrap();
        ep.dev.activate_qp(ep.qp, r.qkey.get()).unwrap();
        rec = Some(r);
    }
    let rec = rec.unwrap();
    assert_eq!(rec.mgid, mgid);
    assert_eq!(rec.qkey.get(), 0x0b1b);
    assert_eq!(rec.pkey.get(), 0xffff);
    assert_eq!(rec.mtu(), 4);
    assert!(rec.mlid().is_multicast());
    assert_eq!(f.sim.group_members(&mgid), 3);

    let ah = AddressHandle::multicast(rec.mlid(), rec.sl(), mgid, rec.qkey.get());
    let qp0 = eps[0].qp;
    eps[0].dev.post_send(qp0, &ah, b"broadcast!").unwrap();
    let src = eps[0].dev.qp_num(eps[0].qp).unwrap();
    let sgid = eps[0].attr.gid;
    let mut buf = [0u8; 64];
    for ep in eps.iter_mut().skip(1) {
        let c = wait_completion(ep, CompletionKind::Recv, &mut buf);
        assert_eq!(&buf[..c.byte_len as usize], b"broadcast!");
        assert_eq!(c.src_qpn, src);
        assert_eq!(c.grh, Some((sgid, mgid)));
    }
    // The sender's own port does not get its datagram back.
    no_completion(&mut eps[0], CompletionKind::Recv);

    // Leave at the SA and detach: node 2 no longer receives.
    let attr2 = eps[2].attr;
    verbs::sa_leave_mcast(&mut eps[2].dev, &attr2, &mgid, RetryPolicy::default()).unwrap();
    let qp2 = eps[2].qp;
    eps[2].dev.detach_mcast(qp2, &mgid).unwrap();
    assert_eq!(f.sim.group_members(&mgid), 2);
    eps[0].dev.post_send(qp0, &ah, b"again").unwrap();
    let c = wait_completion(&mut eps[1], CompletionKind::Recv, &mut buf);
    assert_eq!(&buf[..c.byte_len as usize], b"again");
    no_completion(&mut eps[2], CompletionKind::Recv);
}

#[test]
fn multicast_needs_the_hardware_attach_too() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0, 1, Some(QKEY));
    let mut b = endpoint(&f, 1, 1, Some(QKEY));
    let mgid = Gid::ipoib_broadcast(0xffff);
    let r = verbs::sa_join_mcast(&mut b.dev, &b.attr, &mgid, RetryPolicy::default()).unwrap();
    let ah = AddressHandle::multicast(r.mlid(), 0, mgid, QKEY);
    a.dev.post_send(a.qp, &ah, b"m").unwrap();
    no_completion(&mut b, CompletionKind::Recv);
    assert_eq!(f.sim.counters(f.nodes[1]).rx_dropped, 1);
}

#[test]
fn join_of_unknown_group_without_create_components_is_refused() {
    let f = common::fabric(SimConfig::default(), 1);
    let mut a = endpoint(&f, 0, 1, None);
    let mgid = Gid::ipoib_broadcast(0x1234);
    let err = verbs::sa_join_mcast(&mut a.dev, &a.attr, &mgid, RetryPolicy::default()).unwrap_err();
    assert_eq!(err, Error::MadStatus(MadStatus::SA_REQ_INVALID));
}

#[test]
fn path_record_resolves_a_peer_gid_to_its_lid() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0, 1, Some(QKEY));
    let b = endpoint(&f, 1, 2, Some(QKEY));
    let pr =
        verbs::sa_path_record(&mut a.dev, &a.attr, &b.attr.gid, RetryPolicy::default()).unwrap();
    assert_eq!(pr.dlid.get(), b.attr.lid.0);
    assert_eq!(pr.slid.get(), a.attr.lid.0);
    assert_eq!(pr.dgid, b.attr.gid);
    assert_eq!(pr.mtu(), 4);
    let unknown = Gid::from_parts(0xfe80 << 48, hca::wire::Guid::from_u64(0xdead));
    let err =
        verbs::sa_path_record(&mut a.dev, &a.attr, &unknown, RetryPolicy::default()).unwrap_err();
    assert_eq!(err, Error::MadStatus(MadStatus::SA_NO_RECORDS));
    // In a partition: the one both ports are in answers with its P_Key; another has no path.
    let p = RetryPolicy::default();
    let pr = verbs::sa_path_record_in(&mut a.dev, &a.attr, &b.attr.gid, 0xffff, p).unwrap();
    assert_eq!((pr.pkey.get(), pr.dlid.get()), (0xffff, b.attr.lid.0));
    let err = verbs::sa_path_record_in(&mut a.dev, &a.attr, &b.attr.gid, 0x8002, p).unwrap_err();
    assert_eq!(err, Error::MadStatus(MadStatus::SA_NO_RECORDS));
}

#[test]
fn send_queue_full_is_reported_and_clears_after_polling() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0, 1, Some(QKEY));
    let b = endpoint(&f, 1, 1, Some(QKEY));
    let ah = AddressHandle::unicast(b.attr.lid, 0, b.dev.qp_num(b.qp).unwrap(), QKEY);
    for _ in 0..8 {
        a.dev.post_send(a.qp, &ah, b"x").unwrap();
    }
    assert_eq!(a.dev.post_send(a.qp, &ah, b"x"), Err(Error::QueueFull));
    let mut buf = [0u8; 8];
    let c = wait_completion(&mut a, CompletionKind::Send, &mut buf);
    assert_eq!(c.status, WcStatus::SUCCESS);
    assert!(a.dev.post_send(a.qp, &ah, b"x").is_ok());
}
