//! Faults, error completions, firmware errors and timeouts, seen through the driver.

mod common;

use std::time::Duration;

use hca::hermon::cmd::{FwStatus, Opcode};
use hca::hermon::Hermon;
use hca::verbs::{
    self, AddressHandle, Completion, CompletionKind, CqId, Event, PortAttr, PortNum, QpId,
    RetryPolicy, UdQpAttr, WcStatus,
};
use hca::wire::smp::PortState;
use hca::wire::Gid;
use hca::{Error, Verbs};
use hca_sim::{Corrupt, DropMatching, Latency, Loss, SimConfig, SimHal};

const QKEY: u32 = 0x0b1b;

struct Ep {
    dev: Hermon<SimHal>,
    attr: PortAttr,
    cq: CqId,
    qp: QpId,
}

fn endpoint_cq(f: &common::Fabric, i: usize, cq_entries: u32) -> Ep {
    let mut dev = common::open(&f.sim, f.nodes[i]);
    let attr = common::active(&mut dev, 1);
    let cq = dev.create_cq(cq_entries).unwrap();
    let qp = dev
        .create_ud_qp(&UdQpAttr {
            port: PortNum(1),
            send_cq: cq,
            recv_cq: cq,
            send_slots: 8,
            recv_slots: 8,
            qkey: Some(QKEY),
        })
        .unwrap();
    Ep { dev, attr, cq, qp }
}

fn endpoint(f: &common::Fabric, i: usize) -> Ep {
    endpoint_cq(f, i, 32)
}

fn poll_for(
    ep: &mut Ep,
    kind: CompletionKind,
    buf: &mut [u8],
    limit: Duration,
) -> Option<Completion> {
    let end = ep.dev.now() + limit;
    while ep.dev.now() < end {
        if let Some(c) = ep.dev.poll_cq(ep.cq, buf).unwrap() {
            if c.kind == kind {
                return Some(c);
            }
            continue;
        }
        ep.dev.delay(Duration::from_micros(100));
    }
    None
}

fn ah_to(b: &Ep) -> AddressHandle {
    AddressHandle::unicast(b.attr.lid, 0, b.dev.qp_num(b.qp).unwrap(), QKEY)
}

#[test]
fn oversized_send_completes_with_local_length_error() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0);
    let b = endpoint(&f, 1);
    let wr = a.dev.post_send(a.qp, &ah_to(&b), &[0x5a; 3000]).unwrap();
    let mut buf = [0u8; 8];
    let c = poll_for(
        &mut a,
        CompletionKind::Send,
        &mut buf,
        Duration::from_millis(10),
    )
    .unwrap();
    assert_eq!(c.wr_id, wr);
    assert_eq!(c.status, WcStatus::LOCAL_LENGTH);
    assert!(!c.status.is_ok());
    assert_eq!(f.sim.counters(f.nodes[0]).error_cqes, 1);
    // The QP keeps working afterwards.
    a.dev.post_send(a.qp, &ah_to(&b), b"ok").unwrap();
    let c = poll_for(
        &mut a,
        CompletionKind::Send,
        &mut buf,
        Duration::from_millis(10),
    )
    .unwrap();
    assert_eq!(c.status, WcStatus::SUCCESS);
}

#[test]
fn bad_lkeys_give_protection_errors_on_both_directions() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0);
    let mut b = endpoint(&f, 1);
    f.sim.scramble_keys(f.nodes[0]);
    let mut buf = [0u8; 8];
    a.dev.post_send(a.qp, &ah_to(&b), b"x").unwrap();
    let c = poll_for(
        &mut a,
        CompletionKind::Send,
        &mut buf,
        Duration::from_millis(10),
    )
    .unwrap();
    assert_eq!(c.status, WcStatus::LOCAL_PROTECTION);
    // Receive side: b sends to a; a's receive WQE uses the stale key.
    b.dev.post_send(b.qp, &ah_to(&a), b"y").unwrap();
    let c = poll_for(
        &mut a,
        CompletionKind::Recv,
        &mut buf,
        Duration::from_millis(10),
    )
    .unwrap();
    assert_eq!(c.status, WcStatus::LOCAL_PROTECTION);
    assert_eq!(c.kind, CompletionKind::Recv);
    assert_eq!(c.byte_len, 0);
}

#[test]
fn firmware_error_status_is_a_typed_error_and_the_device_recovers() {
    let f = common::fabric(SimConfig::default(), 1);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    f.sim
        .fail_next_command(f.nodes[0], Opcode::SW2HW_CQ.0, FwStatus::BAD_RESOURCE.0);
    let err = dev.create_cq(8).unwrap_err();
    assert_eq!(
        err,
        Error::Firmware {
            opcode: Opcode::SW2HW_CQ,
            status: FwStatus::BAD_RESOURCE
        }
    );
    assert!(dev.create_cq(8).is_ok());
}

#[test]
fn firmware_error_during_bring_up_is_reported() {
    let f = common::fabric(SimConfig::default(), 1);
    f.sim
        .fail_next_command(f.nodes[0], Opcode::INIT_HCA.0, FwStatus::ICM_ERROR.0);
    let err = Hermon::open(f.sim.hal(f.nodes[0]), Default::default()).unwrap_err();
    assert_eq!(
        err,
        Error::Firmware {
            opcode: Opcode::INIT_HCA,
            status: FwStatus::ICM_ERROR
        }
    );
}

#[test]
fn hung_firmware_times_out_after_the_documented_10_s() {
    let f = common::fabric(SimConfig::default(), 1);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    f.sim.hang_firmware(f.nodes[0], true);
    let t0 = dev.now();
    let err = dev.create_cq(8).unwrap_err();
    // The first command create_cq issues is WRITE_MTT for the ring page.
    assert_eq!(err, Error::CmdTimeout(Opcode::WRITE_MTT));
    let waited = dev.now().saturating_since(t0);
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_millis(10_100),
        "{waited:?}"
    );
}

#[test]
fn link_flap_is_seen_as_events_and_recovered() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0);
    let mut b = endpoint(&f, 1);
    let mgid = Gid::ipoib_broadcast(0xffff);
    b.dev.attach_mcast(b.qp, &mgid).unwrap();
    verbs::sa_join_mcast(&mut b.dev, &b.attr, &mgid, RetryPolicy::default()).unwrap();
    // Drain the ACTIVE events from bring-up.
    while b.dev.poll_event().unwrap().is_some() {}

    f.sim
        .set_link(f.links[1][0], false, Duration::from_millis(1));
    b.dev.delay(Duration::from_millis(2));
    assert_eq!(
        b.dev.poll_event().unwrap(),
        Some(Event::PortStateChange {
            port: PortNum(1),
            up: false
        })
    );
    assert_eq!(b.dev.query_port(PortNum(1)).unwrap().state, PortState::DOWN);
    assert_eq!(
        f.sim.group_members(&mgid),
        0,
        "the SA forgets members of a dead port"
    );
    // Datagrams sent meanwhile are lost, not queued.
    a.dev.post_send(a.qp, &ah_to(&b), b"lost").unwrap();
    let mut buf = [0u8; 16];
    assert!(poll_for(
        &mut b,
        CompletionKind::Recv,
        &mut buf,
        Duration::from_millis(5)
    )
    .is_none());

    f.sim.set_link(f.links[1][0], true, Duration::from_secs(1));
    let attr = verbs::wait_port_active(&mut b.dev, PortNum(1), Duration::from_secs(15)).unwrap();
    assert_eq!(attr.lid, b.attr.lid, "the SM keeps the LID across a flap");
    let mut saw_up = false;
    while let Some(e) = b.dev.poll_event().unwrap() {
        saw_up |= e
            == Event::PortStateChange {
                port: PortNum(1),
                up: true,
            };
    }
    // wait_port_active may have consumed it; the model counts it either way.
    assert!(saw_up || f.sim.counters(f.nodes[1]).eqes >= 3);
    a.dev.post_send(a.qp, &ah_to(&b), b"back").unwrap();
    let c = poll_for(
        &mut b,
        CompletionKind::Recv,
        &mut buf,
        Duration::from_millis(10),
    )
    .unwrap();
    assert_eq!(&buf[..c.byte_len as usize], b"back");
    // Rejoin restores multicast membership.
    verbs::sa_join_mcast(&mut b.dev, &attr, &mgid, RetryPolicy::default()).unwrap();
    assert_eq!(f.sim.group_members(&mgid), 1);
}

#[test]
fn lost_sa_answers_are_retried() {
    let f = common::fabric(SimConfig::default(), 1);
    let mut a = endpoint(&f, 0);
    // Drop the first two packets the SM sends (SLID 1).
    f.sim.add_fault(Box::new(DropMatching {
        count: 2,
        predicate: Box::new(|p: &[u8]| p.len() > 8 && u16::from_be_bytes([p[6], p[7]]) == 1),
        dropped: 0,
    }));
    let mgid = Gid::ipoib_broadcast(0xffff);
    let t0 = a.dev.now();
    let rec = verbs::sa_join_mcast(&mut a.dev, &a.attr, &mgid, RetryPolicy::default()).unwrap();
    assert_eq!(rec.qkey.get(), 0x0b1b);
    let waited = a.dev.now().saturating_since(t0);
    // 0.25 s + 0.5 s of timeouts before the third transmission is answered.
    assert!(
        waited >= Duration::from_millis(750) && waited < Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(f.sim.stats().sa_requests, 3);
}

#[test]
fn total_loss_gives_a_mad_timeout_after_bounded_retries() {
    let f = common::fabric(SimConfig::default(), 1);
    let mut a = endpoint(&f, 0);
    f.sim.add_fault(Box::new(Loss { permille: 1000 }));
    let t0 = a.dev.now();
    let err = verbs::sa_join_mcast(
        &mut a.dev,
        &a.attr,
        &Gid::ipoib_broadcast(0xffff),
        RetryPolicy::default(),
    )
    .unwrap_err();
    assert_eq!(err, Error::MadTimeout);
    let waited = a.dev.now().saturating_since(t0);
    // 0.25 + 0.5 + 1 + 2 + 4 + 8 = 15.75 s (iPXE's shape).
    assert!(
        waited >= Duration::from_millis(15_750) && waited < Duration::from_secs(16),
        "{waited:?}"
    );
    assert_eq!(f.sim.stats().fault_drops, 6);
}

#[test]
fn corrupted_packets_fail_the_icrc_and_are_dropped() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0);
    let mut b = endpoint(&f, 1);
    f.sim.add_fault(Box::new(Corrupt { permille: 1000 }));
    for _ in 0..5 {
        a.dev.post_send(a.qp, &ah_to(&b), b"garbled").unwrap();
    }
    let mut buf = [0u8; 16];
    assert!(poll_for(
        &mut b,
        CompletionKind::Recv,
        &mut buf,
        Duration::from_millis(5)
    )
    .is_none());
    assert_eq!(f.sim.counters(f.nodes[1]).rx_bad_packet, 5);
}

#[test]
fn latency_fault_delays_delivery() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint(&f, 0);
    let mut b = endpoint(&f, 1);
    f.sim.add_fault(Box::new(Latency {
        extra_ns: 5_000_000,
        jitter_ns: 0,
    }));
    let t0 = a.dev.now();
    a.dev.post_send(a.qp, &ah_to(&b), b"slow").unwrap();
    let mut buf = [0u8; 16];
    let c = poll_for(
        &mut b,
        CompletionKind::Recv,
        &mut buf,
        Duration::from_millis(20),
    )
    .unwrap();
    assert!(c.status.is_ok());
    assert!(b.dev.now().saturating_since(t0) >= Duration::from_millis(5));
}

#[test]
fn lid_change_raises_a_management_event_and_query_sees_it() {
    let f = common::fabric(SimConfig::default(), 1);
    let mut a = endpoint(&f, 0);
    while a.dev.poll_event().unwrap().is_some() {}
    f.sim
        .change_lid(f.nodes[0], 1, 0x77, Duration::from_millis(1));
    a.dev.delay(Duration::from_millis(2));
    assert_eq!(
        a.dev.poll_event().unwrap(),
        Some(Event::PortManagementChange { port: PortNum(1) })
    );
    assert_eq!(a.dev.query_port(PortNum(1)).unwrap().lid.0, 0x77);
}

#[test]
fn cq_overrun_raises_a_cq_error_event() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut a = endpoint_cq(&f, 0, 2);
    let b = endpoint(&f, 1);
    while a.dev.poll_event().unwrap().is_some() {}
    for _ in 0..4 {
        a.dev.post_send(a.qp, &ah_to(&b), b"x").unwrap();
    }
    a.dev.delay(Duration::from_millis(1));
    let ev = a.dev.poll_event().unwrap();
    // The event names the CQ that overran (the CQN in the EQE's first event-data dword).
    let cqn = a.dev.cq_num(a.cq).unwrap();
    assert_eq!(ev, Some(Event::CqError { cqn }));
    assert_eq!(f.sim.counters(f.nodes[0]).cq_overruns, 2);
}

fn loss_run(seed: u64) -> (u64, u64) {
    let f = common::fabric(
        SimConfig {
            seed,
            ..SimConfig::default()
        },
        2,
    );
    let mut a = endpoint(&f, 0);
    let mut b = endpoint(&f, 1);
    f.sim.add_fault(Box::new(Loss { permille: 300 }));
    let mut got = 0;
    let mut buf = [0u8; 8];
    for _ in 0..50 {
        a.dev.post_send(a.qp, &ah_to(&b), b"d").unwrap();
        a.dev.delay(Duration::from_micros(50));
        while let Some(c) = a.dev.poll_cq(a.cq, &mut buf).unwrap() {
            assert!(c.status.is_ok());
        }
        if poll_for(
            &mut b,
            CompletionKind::Recv,
            &mut buf,
            Duration::from_micros(200),
        )
        .is_some()
        {
            got += 1;
        }
    }
    (got, f.sim.stats().fault_drops)
}

#[test]
fn same_seed_same_run() {
    let x = loss_run(42);
    assert_eq!(x, loss_run(42));
    assert_eq!(x.0 + x.1, 50);
    assert!(x.1 > 5 && x.1 < 30, "{x:?}");
}

#[test]
fn dropping_the_driver_stops_device_dma_first() {
    let f = common::fabric(SimConfig::default(), 2);
    let a = endpoint(&f, 0);
    let mut b = endpoint(&f, 1);
    let to_a = ah_to(&a);
    drop(a);
    for _ in 0..4 {
        b.dev.post_send(b.qp, &to_a, b"anyone there?").unwrap();
    }
    b.dev.delay(Duration::from_millis(5));
    let c = f.sim.counters(f.nodes[0]);
    assert_eq!(c.dma_faults, 0, "{c:?}");
    assert_eq!(c.resets, 2);
    assert_eq!(f.sim.dma_pages_in_use(f.nodes[0]), 0);
}

#[test]
fn multi_switch_fabric_routes_and_a_dead_trunk_isolates() {
    use hca_sim::{HcaSpec, Sim};
    let sim = Sim::new(SimConfig::default());
    let (s0, s1) = (sim.add_switch(), sim.add_switch());
    sim.attach_sm(s0);
    let trunk = sim.connect_switches(s0, s1);
    let n0 = sim.add_hca(HcaSpec::connectx(0x1000, 1));
    let n1 = sim.add_hca(HcaSpec::connectx(0x2000, 1));
    sim.connect(n0, 1, s0);
    sim.connect(n1, 1, s1);
    let f = common::Fabric {
        sim,
        nodes: vec![n0, n1],
        links: vec![],
    };
    let mut a = endpoint(&f, 0);
    let mut b = endpoint(&f, 1);
    a.dev.post_send(a.qp, &ah_to(&b), b"two hops").unwrap();
    let mut buf = [0u8; 16];
    let c = poll_for(
        &mut b,
        CompletionKind::Recv,
        &mut buf,
        Duration::from_millis(5),
    )
    .unwrap();
    assert_eq!(&buf[..c.byte_len as usize], b"two hops");
    f.sim.set_link(trunk, false, Duration::ZERO);
    a.dev.delay(Duration::from_micros(10));
    a.dev.post_send(a.qp, &ah_to(&b), b"cut").unwrap();
    assert!(poll_for(
        &mut b,
        CompletionKind::Recv,
        &mut buf,
        Duration::from_millis(5)
    )
    .is_none());
    assert!(f.sim.stats().unroutable >= 1);
}
