//! The fabric's capture: every packet it moves, once, as a whole IB packet with its VCRC, in a
//! pcap file whose records Wireshark's `infiniband` dissector takes.

mod common;

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use hca::verbs::{self, AddressHandle, PortNum, RetryPolicy, UdQpAttr};
use hca::wire::crc;
use hca::wire::headers::UdPacket;
use hca::wire::mad::{AttrId, Mad, MadMethod, MgmtClass, MAD_SIZE};
use hca::wire::smp::{self, NodeInfo, PKeyTable, PortInfo, PortState};
use hca::wire::{Gid, Lid, Qpn, GSI_QKEY};
use hca::Verbs;
use hca_sim::capture::{self, PcapError};
use hca_sim::SimConfig;

/// A writer the test can still read after handing it to the simulator.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_capture_holds_every_packet_moved_with_valid_crcs_and_whole_mads() {
    let f = common::fabric(SimConfig::default(), 2);
    let buf = Shared::default();
    f.sim.start_capture(buf.clone()).unwrap();
    let mut a = common::open(&f.sim, f.nodes[0]);
    let mut b = common::open(&f.sim, f.nodes[1]);
    let aa = common::active(&mut a, 1);
    let ba = common::active(&mut b, 1);
    // For each port the SM brings up, four directed-route SMP exchanges; then two SA
    // transactions (join, path) and one UD datagram: 2 * 8 + 5 packets in all.
    let mgid = Gid::ipoib_broadcast(0xffff);
    let rec = verbs::sa_join_mcast(&mut a, &aa, &mgid, RetryPolicy::default()).unwrap();
    let pr = verbs::sa_path_record(&mut a, &aa, &ba.gid, RetryPolicy::default()).unwrap();
    assert_eq!(pr.dlid.get(), ba.lid.0);
    let cq = b.create_cq(8).unwrap();
    let qp_b = b
        .create_ud_qp(&UdQpAttr {
            port: PortNum(1),
            send_cq: cq,
            recv_cq: cq,
            send_slots: 4,
            recv_slots: 4,
            qkey: Some(0x0b1b),
        })
        .unwrap();
    let cq_a = a.create_cq(8).unwrap();
    let qp_a = a
        .create_ud_qp(&UdQpAttr {
            port: PortNum(1),
            send_cq: cq_a,
            recv_cq: cq_a,
            send_slots: 4,
            recv_slots: 4,
            qkey: Some(0x0b1b),
        })
        .unwrap();
    let qpn_b = b.qp_num(qp_b).unwrap();
    let ah = AddressHandle::unicast(ba.lid, 0, qpn_b, 0x0b1b);
    a.post_send(qp_a, &ah, b"captured").unwrap();
    a.delay(Duration::from_millis(1));

    let n = f.sim.stop_capture().unwrap();
    assert_eq!(n, 21);
    let st = f.sim.stats();
    assert_eq!((st.captured, st.smps, st.smp_answers), (21, 8, 8));
    // Stopped: nothing more is recorded.
    a.post_send(qp_a, &ah, b"not captured").unwrap();
    a.delay(Duration::from_millis(1));
    assert_eq!(f.sim.stats().captured, 21);

    let bytes = buf.0.borrow().clone();
    let p = capture::parse(&bytes).unwrap();
    assert_eq!(p.header.linktype, capture::LINKTYPE_WIRESHARK_UPPER_PDU);
    assert_eq!(p.records.len(), 21);
    let mut mads = Vec::new();
    let mut smps = Vec::new();
    let mut last_ts = 0;
    for r in &p.records {
        assert!(r.ts_ns >= last_ts, "records in time order");
        last_ts = r.ts_ns;
        let (name, pdu) = r.exported_pdu().unwrap();
        assert_eq!(name, "infiniband");
        // LRH PktLen counts LRH..ICRC; the VCRC follows and checks the rest.
        let words = usize::from(u16::from_be_bytes([pdu[4], pdu[5]]) & 0x7ff);
        assert_eq!(pdu.len(), words * 4 + crc::VCRC_LEN);
        let (packet, vcrc) = pdu.split_at(words * 4);
        assert_eq!(vcrc, crc::vcrc(packet).to_le_bytes());
        let ud = UdPacket::parse(packet).expect("a valid packet with its ICRC");
        if ud.repr.dest_qpn == Qpn::SMI {
            // Directed route on VL15, LID-free at both ends, QP0 to QP0.
            assert_eq!(ud.repr.vl, 15);
            assert_eq!(
                (ud.repr.dlid, ud.repr.slid),
                (Lid::PERMISSIVE, Lid::PERMISSIVE)
            );
            assert_eq!(ud.repr.src_qpn, Qpn::SMI);
            assert_eq!(ud.payload.len(), MAD_SIZE);
            let m = Mad::parse(ud.payload).unwrap();
            assert_eq!(m.hdr.mgmt_class, MgmtClass::SUBN_DIRECTED_ROUTE);
            smps.push(m);
        } else if ud.repr.dest_qpn == Qpn::GSI {
            assert_eq!(ud.repr.qkey, GSI_QKEY);
            // MADs are whole: 256 bytes (Wireshark dissects nothing shorter).
            assert_eq!(ud.payload.len(), MAD_SIZE);
            mads.push(Mad::parse(ud.payload).unwrap());
        } else {
            assert_eq!(ud.repr.dest_qpn, qpn_b);
            assert_eq!(ud.payload, b"captured");
        }
    }
    let seen: Vec<(MgmtClass, MadMethod, AttrId)> = mads
        .iter()
        .map(|m| (m.hdr.mgmt_class, m.hdr.method, m.hdr.attr_id))
        .collect();
    let sa = MgmtClass::SUBN_ADM;
    assert_eq!(
        seen,
        [
            (sa, MadMethod::SET, AttrId::MC_MEMBER_RECORD),
            (sa, MadMethod::GET_RESP, AttrId::MC_MEMBER_RECORD),
            (sa, MadMethod::GET, AttrId::PATH_RECORD),
            (sa, MadMethod::GET_RESP, AttrId::PATH_RECORD),
        ]
    );
    assert_eq!(rec.mlid.get(), 0xc000);

    // Each port: Get(NodeInfo), Set(P_KeyTable), Set(PortInfo) ARMED, Set(PortInfo) ACTIVE,
    // each answered; requests sent out with hop pointer 0, answers returning (D) with their
    // hop pointer at the hop count (SM -> switch -> HCA: 2 hops).
    let seq: Vec<(MadMethod, AttrId)> =
        smps.iter().map(|m| (m.hdr.method, m.hdr.attr_id)).collect();
    let one = [
        (MadMethod::GET, AttrId::NODE_INFO),
        (MadMethod::GET_RESP, AttrId::NODE_INFO),
        (MadMethod::SET, AttrId::PKEY_TABLE),
        (MadMethod::GET_RESP, AttrId::PKEY_TABLE),
        (MadMethod::SET, AttrId::PORT_INFO),
        (MadMethod::GET_RESP, AttrId::PORT_INFO),
    ];
    assert_eq!(seq.iter().filter(|s| one.contains(s)).count(), 16);
    for attr in [&aa, &ba] {
        let ni = smps
            .iter()
            .filter(|m| m.hdr.method == MadMethod::GET_RESP && m.hdr.attr_id == AttrId::NODE_INFO)
            .map(|m| smp::smp_attr::<NodeInfo>(m).unwrap())
            .find(|n| n.port_guid == attr.port_guid)
            .expect("a NodeInfo answer for each port");
        // Channel adapter, port 1, port GUID = node GUID + port number.
        assert_eq!((ni.node_type, ni.local_port_num), (1, 1));
        assert_eq!(ni.node_guid.to_u64() + 1, attr.port_guid.to_u64());
    }
    for m in &smps {
        let (ptr, count) = smp::dr_hops(m);
        assert_eq!(count, 2);
        if m.hdr.method.is_response() {
            assert_eq!(m.hdr.status.get(), smp::DR_DIRECTION, "{:?}", m.hdr);
            assert_eq!(ptr, count);
        } else {
            assert_eq!((ptr, m.hdr.status.get()), (0, 0));
        }
    }
    let armed: Vec<PortInfo> = smps
        .iter()
        .filter(|m| m.hdr.method == MadMethod::SET && m.hdr.attr_id == AttrId::PORT_INFO)
        .map(|m| smp::smp_attr::<PortInfo>(m).unwrap())
        .collect();
    assert_eq!(armed.len(), 4);
    assert_eq!(armed[0].port_state(), PortState::ARMED);
    assert_eq!(armed[3].port_state(), PortState::ACTIVE);
    assert!(armed.iter().all(|pi| pi.sm_lid() == Lid(1)));
    let lids: Vec<u16> = armed.iter().map(|pi| pi.lid.get()).collect();
    assert!(
        lids.contains(&aa.lid.0) && lids.contains(&ba.lid.0),
        "{lids:?}"
    );
    let pk = smps
        .iter()
        .find(|m| m.hdr.method == MadMethod::SET && m.hdr.attr_id == AttrId::PKEY_TABLE)
        .map(|m| smp::smp_attr::<PKeyTable>(m).unwrap())
        .unwrap();
    assert_eq!(pk.pkey[0].get(), 0xffff);
}

#[test]
fn a_capture_file_is_written_and_its_errors_are_reported() {
    let dir = isboot_tests::TempDir::new("capture").unwrap();
    let path = dir.0.join("fabric.pcap");
    let f = common::fabric(SimConfig::default(), 1);
    f.sim.capture(&path).unwrap();
    let mut a = common::open(&f.sim, f.nodes[0]);
    let aa = common::active(&mut a, 2);
    verbs::sa_join_mcast(
        &mut a,
        &aa,
        &Gid::ipoib_broadcast(0xffff),
        RetryPolicy::default(),
    )
    .unwrap();
    // Eight SMPs bring port 2 up; the join and its answer.
    assert_eq!(f.sim.stop_capture().unwrap(), 10);
    assert_eq!(f.sim.stop_capture().unwrap(), 0, "nothing left to stop");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(capture::parse(&bytes).unwrap().records.len(), 10);
    assert!(matches!(
        capture::parse(&bytes[..bytes.len() - 1]),
        Err(PcapError::Truncated { .. })
    ));
    // A directory that does not exist: the error names the path.
    let e = f.sim.capture(dir.0.join("no/such/dir.pcap")).unwrap_err();
    assert!(e.to_string().contains("no/such/dir.pcap"), "{e}");

    // A writer that fails: the capture stops and stop_capture says why.
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    assert!(
        f.sim.start_capture(Full).is_err(),
        "the header cannot be written"
    );
    struct HeaderOnly(usize);
    impl Write for HeaderOnly {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    f.sim.start_capture(HeaderOnly(1)).unwrap();
    verbs::sa_join_mcast(
        &mut a,
        &aa,
        &Gid::ipoib_broadcast(0xffff),
        RetryPolicy::default(),
    )
    .unwrap();
    let e = f.sim.stop_capture().unwrap_err();
    assert_eq!(e.to_string(), "disk full");
}
