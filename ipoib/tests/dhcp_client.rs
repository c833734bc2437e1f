//! The DHCP client against a scripted server on a stepped clock: what it sends in each form,
//! when it retransmits, how it renews, rebinds, loses a lease, and what it refuses.

mod common;

use std::net::Ipv4Addr;

use clock::{Duration, Instant};
use common::identity;
use ipoib::dhcp::{Client, ClientIdForm, Config, Destination, Event, Phase, Transmit};
use ipoib::wire::dhcp::{code, Message, MessageType, Op, Options, FLAG_BROADCAST};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);

/// `n` milliseconds after the stepped clock's origin.
fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn client(form: ClientIdForm) -> Client {
    let mut cfg = Config::new(identity(1), 0x1234_5678_9abc);
    cfg.form = form;
    Client::new(cfg, ms(0))
}

fn parse(t: &Transmit) -> Message {
    Message::parse(&t.payload).expect("the client sends valid DHCP")
}

/// A reply to `req` of type `mt` offering ADDR.
fn reply(req: &Message, mt: MessageType, lease: u32) -> Vec<u8> {
    Message {
        op: Op::BOOTREPLY,
        htype: req.htype,
        hlen: req.hlen,
        hops: 0,
        xid: req.xid,
        secs: 0,
        flags: req.flags,
        ciaddr: req.ciaddr,
        yiaddr: if mt == MessageType::NAK {
            Ipv4Addr::UNSPECIFIED
        } else {
            ADDR
        },
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::new(192, 0, 2, 1),
        chaddr: req.chaddr,
        options: Options {
            message_type: Some(mt),
            server_id: Some(SERVER),
            lease_time: (mt != MessageType::NAK).then_some(lease),
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            routers: vec![Ipv4Addr::new(192, 0, 2, 1)],
            root_path: Some("iscsi:192.0.2.10::3260:1:iqn.2026-11.org.example:boot".into()),
            client_id: req.options.client_id.clone(),
            ..Options::default()
        },
    }
    .emit()
}

/// Runs the client from `now` until it is bound; returns the time.
fn bind(c: &mut Client, now: Instant, lease: u32) -> (Instant, ipoib::dhcp::Lease) {
    let d = parse(&c.poll_transmit(now).expect("DISCOVER"));
    assert_eq!(d.message_type(), Some(MessageType::DISCOVER));
    assert_eq!(c.process(now, &reply(&d, MessageType::OFFER, lease)), None);
    assert_eq!(c.phase(), Phase::Requesting);
    let r = parse(&c.poll_transmit(now).expect("REQUEST"));
    assert_eq!(r.message_type(), Some(MessageType::REQUEST));
    match c.process(now, &reply(&r, MessageType::ACK, lease)) {
        Some(Event::Bound(l)) => (now, l),
        e => panic!("{e:?}"),
    }
}

#[test]
fn discover_carries_rfc4390_fields_and_each_client_id_form() {
    let id = identity(1);
    let g = id.port_guid;
    for form in ClientIdForm::ALL {
        let mut c = client(form);
        let t = c.poll_transmit(ms(0)).unwrap();
        assert_eq!(t.dst, Destination::Broadcast);
        assert_eq!(t.src, Ipv4Addr::UNSPECIFIED);
        assert!(t.payload.len() >= 300);
        let m = parse(&t);
        assert_eq!(m.op, Op::BOOTREQUEST);
        assert_eq!(m.flags, FLAG_BROADCAST, "{form:?}");
        assert_eq!(m.xid, c.xid());
        let cid = m.options.client_id.clone().unwrap();
        match form {
            ClientIdForm::IpxeEthernet => {
                assert_eq!((m.htype, m.hlen), (1, 6));
                assert_eq!(&m.chaddr[..6], &id.lemac);
                assert_eq!(cid, [&[1u8][..], &id.lemac].concat());
            }
            _ => {
                assert_eq!((m.htype, m.hlen, m.chaddr), (32, 0, [0; 16]), "{form:?}");
                let want: Vec<u8> = match form {
                    ClientIdForm::Rfc4390 => [&[0xff][..], &g[4..], &[0, 3, 0, 27], &g].concat(),
                    ClientIdForm::BoibConnectX => g.to_vec(),
                    ClientIdForm::BoibInfiniHost => [&[0x20][..], &id.hw_addr.to_bytes()].concat(),
                    ClientIdForm::FlexBoot => {
                        [&[0xff, 0, 0, 0, 0, 0, 2, 0, 0, 2, 0xc9, 0][..], &g].concat()
                    }
                    ClientIdForm::IbGuid => [&[0x20][..], &g].concat(),
                    ClientIdForm::IpxeEthernet => unreachable!(),
                };
                assert_eq!(cid, want, "{form:?}");
            }
        }
        let prl = &m.options.parameter_request_list;
        for want in [
            code::SUBNET_MASK,
            code::ROUTER,
            code::ROOT_PATH,
            code::ISCSI_INITIATOR_IQN,
            code::IPXE,
        ] {
            assert!(prl.contains(&want), "{form:?} asks for option {want}");
        }
        assert_eq!(m.options.max_message_size, Some(2016));
    }
    // The stable forms do not change when the QPN does; the InfiniHost form does.
    let mut other = identity(1);
    other.hw_addr.qpn = 0x777;
    for form in ClientIdForm::ALL {
        let same = form.client_id(&identity(1)) == form.client_id(&other);
        assert_eq!(same, form != ClientIdForm::BoibInfiniHost, "{form:?}");
    }
}

#[test]
fn retransmits_4_8_16_32_64_seconds_with_jitter_then_gives_up() {
    let mut c = client(ClientIdForm::Rfc4390);
    let mut now = ms(0);
    let mut sent = vec![];
    while let Some(at) = c.poll_at() {
        now = at;
        if let Some(e) = c.handle_timeout(now) {
            assert_eq!(e, Event::TimedOut);
            break;
        }
        if c.poll_transmit(now).is_some() {
            sent.push(now.total_millis());
        }
        assert!(sent.len() < 20, "runaway retransmission");
    }
    assert_eq!(c.phase(), Phase::Stopped);
    assert_eq!(now, ms(60_000), "gives up at the acquire timeout");
    assert_eq!(c.poll_at(), None);
    assert_eq!(c.poll_transmit(ms(999_999)), None);
    let gaps: Vec<u64> = sent.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, base) in gaps.iter().zip([4000u64, 8000, 16000, 32000, 64000]) {
        assert!(
            (base - 1000..=base + 1000).contains(gap),
            "gap {gap} for {base}"
        );
    }
    assert!(gaps.len() >= 3);
    // Restart begins again with a new transaction id.
    let old = c.xid();
    c.restart(ms(70_000));
    assert_eq!(c.phase(), Phase::Selecting);
    assert_ne!(c.xid(), old);
    assert!(c.poll_transmit(ms(70_000)).is_some());
}

#[test]
fn full_exchange_gives_the_lease_and_the_request_names_the_offer() {
    let mut c = client(ClientIdForm::FlexBoot);
    let d = parse(&c.poll_transmit(ms(0)).unwrap());
    c.process(ms(500), &reply(&d, MessageType::OFFER, 3600));
    let r = parse(&c.poll_transmit(ms(500)).unwrap());
    assert_eq!(r.xid, d.xid, "REQUEST keeps the DISCOVER's xid");
    assert_eq!(r.options.requested_ip, Some(ADDR));
    assert_eq!(r.options.server_id, Some(SERVER));
    assert_eq!(r.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.secs, 0);
    let Some(Event::Bound(l)) = c.process(ms(600), &reply(&r, MessageType::ACK, 3600)) else {
        panic!()
    };
    assert_eq!(l.address, ADDR);
    assert_eq!(l.prefix_len, Some(24));
    assert_eq!(l.server_id, SERVER);
    assert_eq!(l.relay, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(l.lease_time, Some(Duration::from_secs(3600)));
    assert_eq!(l.renewal_time, Some(Duration::from_secs(1800)));
    assert_eq!(l.rebinding_time, Some(Duration::from_secs(3150)));
    assert_eq!(c.lease(), Some(&l));
    assert_eq!(c.poll_at(), Some(ms(600 + 1_800_000)));
}

#[test]
fn renews_at_t1_by_unicast_rebinds_at_t2_by_broadcast_and_loses_at_expiry() {
    let mut c = client(ClientIdForm::Rfc4390);
    let (t0, _) = bind(&mut c, ms(0), 1000);
    // T1 = 500 s: unicast to the server, from and with our address.
    let t1 = t0 + Duration::from_secs(500);
    assert_eq!(c.poll_at(), Some(t1));
    assert_eq!(c.handle_timeout(t1), None);
    assert_eq!(c.phase(), Phase::Renewing);
    let tx = c.poll_transmit(t1).unwrap();
    assert_eq!(tx.dst, Destination::Unicast(SERVER));
    assert_eq!(tx.src, ADDR);
    let m = parse(&tx);
    assert_eq!(
        (m.ciaddr, m.options.requested_ip, m.options.server_id),
        (ADDR, None, None)
    );
    // Next retransmission: half the time to T2 (875 s), at least 60 s.
    let next = c.poll_at().unwrap();
    assert_eq!(
        next,
        t1 + Duration::from_secs(187) + Duration::from_millis(500)
    );
    // Silence until T2: rebinding, broadcast.
    let t2 = t0 + Duration::from_secs(875);
    let mut now = t1;
    while now < t2 {
        now = c.poll_at().unwrap();
        c.handle_timeout(now);
        let _ = c.poll_transmit(now);
    }
    assert_eq!(c.phase(), Phase::Rebinding);
    // Silence until expiry: lost, and a fresh DISCOVER.
    let mut lost = false;
    for _ in 0..20 {
        now = c.poll_at().unwrap();
        if c.handle_timeout(now) == Some(Event::Lost) {
            lost = true;
            break;
        }
        if let Some(t) = c.poll_transmit(now) {
            assert_eq!(t.dst, Destination::Broadcast);
            assert_eq!(parse(&t).ciaddr, ADDR);
        }
    }
    assert!(lost);
    assert_eq!(now, t0 + Duration::from_secs(1000));
    assert_eq!(c.phase(), Phase::Selecting);
    assert_eq!(c.lease(), None);
    assert_eq!(
        parse(&c.poll_transmit(now).unwrap()).message_type(),
        Some(MessageType::DISCOVER)
    );
}

#[test]
fn an_ack_while_renewing_extends_the_lease() {
    let mut c = client(ClientIdForm::BoibConnectX);
    let (t0, _) = bind(&mut c, ms(0), 1000);
    let t1 = t0 + Duration::from_secs(500);
    c.handle_timeout(t1);
    let m = parse(&c.poll_transmit(t1).unwrap());
    let Some(Event::Renewed(l)) = c.process(t1, &reply(&m, MessageType::ACK, 2000)) else {
        panic!()
    };
    assert_eq!(l.lease_time, Some(Duration::from_secs(2000)));
    assert_eq!(c.phase(), Phase::Bound);
    assert_eq!(c.poll_at(), Some(t1 + Duration::from_secs(1000)));
}

#[test]
fn nak_sends_the_client_back_to_discover() {
    let mut c = client(ClientIdForm::Rfc4390);
    let d = parse(&c.poll_transmit(ms(0)).unwrap());
    c.process(ms(0), &reply(&d, MessageType::OFFER, 3600));
    let r = parse(&c.poll_transmit(ms(0)).unwrap());
    assert_eq!(c.process(ms(10), &reply(&r, MessageType::NAK, 0)), None);
    assert_eq!(c.phase(), Phase::Selecting);
    assert_ne!(c.xid(), r.xid);
    let d2 = parse(&c.poll_transmit(ms(10)).unwrap());
    assert_eq!(d2.message_type(), Some(MessageType::DISCOVER));
    // A NAK while renewing loses the lease.
    let mut c = client(ClientIdForm::Rfc4390);
    let (t0, _) = bind(&mut c, ms(20), 1000);
    let t1 = t0 + Duration::from_secs(500);
    c.handle_timeout(t1);
    let m = parse(&c.poll_transmit(t1).unwrap());
    assert_eq!(
        c.process(t1, &reply(&m, MessageType::NAK, 0)),
        Some(Event::Lost)
    );
    assert_eq!(c.phase(), Phase::Selecting);
}

#[test]
fn unanswered_requests_start_over_within_the_deadline() {
    let mut cfg = Config::new(identity(1), 7);
    cfg.acquire_timeout = Duration::from_secs(120);
    let mut c = Client::new(cfg, ms(0));
    let d = parse(&c.poll_transmit(ms(0)).unwrap());
    c.process(ms(0), &reply(&d, MessageType::OFFER, 3600));
    let mut kinds = vec![];
    let mut now = ms(0);
    while let Some(at) = c.poll_at() {
        now = at;
        if c.handle_timeout(now).is_some() {
            break;
        }
        if let Some(t) = c.poll_transmit(now) {
            kinds.push(parse(&t).message_type().unwrap());
        }
    }
    assert_eq!(
        &kinds[..5],
        &[
            MessageType::REQUEST,
            MessageType::REQUEST,
            MessageType::REQUEST,
            MessageType::REQUEST,
            MessageType::DISCOVER
        ]
    );
    // REQUESTs at 0, ~4, ~12, ~28 s; DISCOVER after the fourth's back-off; stop at 120 s.
    assert_eq!(now, ms(120_000));
}

#[test]
fn replies_for_someone_else_or_malformed_are_dropped() {
    let mut c = client(ClientIdForm::Rfc4390);
    let d = parse(&c.poll_transmit(ms(0)).unwrap());
    // Another transaction.
    let mut other = d.clone();
    other.xid ^= 1;
    assert_eq!(
        c.process(ms(0), &reply(&other, MessageType::OFFER, 60)),
        None
    );
    // Another client's id echoed back.
    let mut foreign = d.clone();
    foreign.options.client_id = Some(vec![0xff, 1, 2, 3]);
    assert_eq!(
        c.process(ms(0), &reply(&foreign, MessageType::OFFER, 60)),
        None
    );
    // Our own request looped back, garbage, a truncated reply, an ACK out of turn.
    assert_eq!(c.process(ms(0), &d.emit()), None);
    assert_eq!(c.process(ms(0), b"not dhcp"), None);
    let good = reply(&d, MessageType::OFFER, 60);
    assert_eq!(c.process(ms(0), &good[..250]), None);
    assert_eq!(c.process(ms(0), &reply(&d, MessageType::ACK, 60)), None);
    // An offer without a server identifier, or of an unusable address.
    let mut m = Message::parse(&good).unwrap();
    m.options.server_id = None;
    assert_eq!(c.process(ms(0), &m.emit()), None);
    let mut m = Message::parse(&good).unwrap();
    m.yiaddr = Ipv4Addr::BROADCAST;
    assert_eq!(c.process(ms(0), &m.emit()), None);
    assert_eq!(c.phase(), Phase::Selecting);
    // The real offer still works.
    c.process(ms(0), &good);
    assert_eq!(c.phase(), Phase::Requesting);
    // An ACK without a lease time is not a lease.
    let r = parse(&c.poll_transmit(ms(0)).unwrap());
    let mut ack = Message::parse(&reply(&r, MessageType::ACK, 60)).unwrap();
    ack.options.lease_time = None;
    assert_eq!(c.process(ms(0), &ack.emit()), None);
    assert_eq!(c.phase(), Phase::Requesting);
}

#[test]
fn infinite_lease_never_renews() {
    let mut c = client(ClientIdForm::Rfc4390);
    let (_, l) = bind(&mut c, ms(0), u32::MAX);
    assert_eq!((l.lease_time, l.renewal_time), (None, None));
    assert_eq!(c.poll_at(), None);
    assert_eq!(c.handle_timeout(Instant::MAX), None);
    assert_eq!(c.phase(), Phase::Bound);
}
