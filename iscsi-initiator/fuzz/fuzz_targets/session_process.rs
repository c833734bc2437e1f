//! A whole session fed arbitrary target bytes: either from the first Login Response on, or
//! (when the first byte is odd) after a scripted successful login, so the full-feature
//! datapath (Data-In, R2T, NOP-In, Async, Reject, TMF and Logout Responses) is reached.
//! Received byte by byte through `process`, or as `Client` does, into the parts of planned
//! receives across several Data-In PDUs (`direct_rx_plan`). Never a panic, never a write
//! outside a command's buffer.
#![no_main]

use iscsi_initiator::login::{Isid, LoginConfig, SessionType};
use iscsi_initiator::negotiate::OperationalConfig;
use iscsi_initiator::scsi::{Cdb, Lun};
use iscsi_initiator::session::{Direction, Portal, Session, SessionConfig, TransportAction};
use iscsi_initiator::wire::bhs;
use iscsi_initiator::wire::frame::{write_pdu, DigestConfig};
use iscsi_initiator::Instant;
use libfuzzer_sys::fuzz_target;
use zerocopy::IntoBytes;

fn login_response(req: &[u8], flags: u8, stat_sn: u32, tsih: u16, data: &[u8]) -> Vec<u8> {
    let mut h = bhs::LoginResponse { opcode: 0x23, flags, ..Default::default() };
    h.isid.copy_from_slice(&req[8..14]);
    h.itt.set(u32::from_be_bytes([req[16], req[17], req[18], req[19]]));
    let cmd_sn = u32::from_be_bytes([req[24], req[25], req[26], req[27]]);
    h.tsih.set(tsih);
    h.stat_sn.set(stat_sn);
    h.exp_cmd_sn.set(cmd_sn);
    h.max_cmd_sn.set(cmd_sn.wrapping_add(16));
    h.data_segment_len = bhs::dsl_to(data.len() as u32);
    let mut v = Vec::new();
    write_pdu(&mut v, DigestConfig::default(), h.as_bytes().try_into().unwrap(), &[], data);
    v
}

fn take_tx(s: &mut Session) -> Vec<u8> {
    let v = s.transmit().to_vec();
    s.consume_transmit(v.len());
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else { return };
    let login = LoginConfig {
        initiator_name: "iqn.2024-01.org.isboot:fuzz".into(),
        initiator_alias: None,
        target_name: Some("iqn.2024-01.org.isboot:disk".into()),
        session_type: SessionType::Normal,
        isid: Isid::derive(b"fuzz", "iqn.2024-01.org.isboot:fuzz", 1),
        chap: None,
        operational: OperationalConfig::default(),
        entropy_seed: [7; 32],
    };
    let cfg = SessionConfig::new(login, Portal { host: "127.0.0.1".into(), port: 3260 });
    let t0 = Instant::from_millis(0);
    let mut s = Session::new(cfg, t0);
    assert!(matches!(s.poll_transport(t0), Some(TransportAction::Connect(_))));
    s.on_connected(t0);
    if ctl & 1 == 1 {
        let req = take_tx(&mut s);
        s.process(t0, &login_response(&req, 0x81, 10, 0, b"AuthMethod=None\0"));
        let req = take_tx(&mut s);
        s.process(t0, &login_response(&req, 0x87, 11, 1, b"MaxRecvDataSegmentLength=4096\0InitialR2T=No\0"));
        assert!(s.is_ready());
    }
    let _ = s.submit(Lun::from_number(0), Cdb::read(0, 8), Direction::Read, vec![0; 4096], 4096);
    let _ = s.submit(Lun::from_number(0), Cdb::write(0, 16), Direction::Write, vec![1; 8192], 8192);
    let _ = s.submit(Lun::from_number(0), Cdb::test_unit_ready(), Direction::None, Vec::new(), 0);
    let _ = s.submit(Lun::from_number(0), Cdb::read(64, 128), Direction::Read, vec![0; 65536], 65536);
    let mut t = 0;
    // Bit 1: receive the way `Client` does, into the planned parts of several Data-In PDUs
    // whenever the session offers them. The other bits: the receive size.
    let planned = ctl & 2 != 0;
    let step = usize::from(ctl >> 2).max(1);
    let mut rest = data;
    while !rest.is_empty() {
        t += 10;
        let now = Instant::from_millis(t);
        let plan = if planned { s.direct_rx_plan(0) } else { None };
        let n = match plan {
            Some(mut p) => {
                let n = p.fill(&rest[..rest.len().min(step * 97)]);
                s.direct_received(now, n);
                n
            }
            None => {
                let n = rest.len().min(step);
                s.process(now, &rest[..n]);
                n
            }
        };
        if n == 0 {
            break;
        }
        rest = &rest[n..];
        take_tx(&mut s);
        s.handle_timeout(now);
        while let Some(c) = s.poll_completion() {
            if let iscsi_initiator::session::Completion::Command { buffer, .. } = c {
                assert!(
                    buffer.len() == 4096
                        || buffer.len() == 8192
                        || buffer.len() == 65536
                        || buffer.is_empty()
                );
            }
        }
        while let Some(a) = s.poll_transport(now) {
            if let TransportAction::Connect(_) = a {
                s.on_connected(now);
            }
        }
    }
});
