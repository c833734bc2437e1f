//! Time-scripted tests of the session against a scripted target (no network).

use alloc::vec;
use alloc::vec::Vec;

use zerocopy::{FromBytes, IntoBytes};

use super::rx_plan::PLAN_BACKOFF;
use super::*;
use crate::login::{Isid, LoginConfig, SessionType};
use crate::negotiate::OperationalConfig;
use crate::scsi::{Cdb, Lun, ScsiStatus, SenseKey};
use crate::wire::bhs::{self, Opcode, IMMEDIATE, RESERVED_TAG};
use crate::wire::frame::write_pdu;
use crate::wire::text::{pairs, push_pair};

/// One PDU the initiator sent.
#[derive(Debug, Clone)]
struct Out {
    bhs: [u8; 48],
    ahs: Vec<u8>,
    data: Vec<u8>,
}

impl Out {
    fn opcode(&self) -> Opcode {
        Opcode(self.bhs[0] & 0x3f)
    }
    fn itt(&self) -> u32 {
        u32::from_be_bytes([self.bhs[16], self.bhs[17], self.bhs[18], self.bhs[19]])
    }
    fn word(&self, at: usize) -> u32 {
        u32::from_be_bytes([
            self.bhs[at],
            self.bhs[at + 1],
            self.bhs[at + 2],
            self.bhs[at + 3],
        ])
    }
}

/// Parse everything the session wants to send (digests off).
fn drain(s: &mut Session) -> Vec<Out> {
    let bytes = s.transmit().to_vec();
    s.consume_transmit(bytes.len());
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let mut b = [0u8; 48];
        b.copy_from_slice(&rest[..48]);
        let ahs = usize::from(b[4]) * 4;
        let dl = bhs::dsl_from([b[5], b[6], b[7]]) as usize;
        let padded = dl.div_ceil(4) * 4;
        out.push(Out {
            bhs: b,
            ahs: rest[48..48 + ahs].to_vec(),
            data: rest[48 + ahs..48 + ahs + dl].to_vec(),
        });
        rest = &rest[48 + ahs + padded..];
    }
    out
}

fn frame(h: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    write_pdu(
        &mut v,
        DigestConfig::default(),
        h.try_into().unwrap(),
        &[],
        data,
    );
    v
}

/// The scripted target's sequence numbers.
struct Target {
    stat_sn: u32,
    exp_cmd_sn: u32,
    window: u32,
}

impl Target {
    fn sn(&mut self, advance: bool) -> (u32, u32, u32) {
        let s = self.stat_sn;
        if advance {
            self.stat_sn += 1;
        }
        (s, self.exp_cmd_sn, self.exp_cmd_sn + self.window - 1)
    }

    fn login_rsp(&mut self, req: &Out, flags: u8, tsih: u16, keys: &[(&str, &str)]) -> Vec<u8> {
        let mut data = Vec::new();
        for (k, v) in keys {
            push_pair(&mut data, k, v);
        }
        let (st, exp, max) = self.sn(true);
        let mut h = bhs::LoginResponse {
            opcode: 0x23,
            flags,
            ..Default::default()
        };
        h.isid.copy_from_slice(&req.bhs[8..14]);
        h.tsih.set(tsih);
        h.itt.set(req.itt());
        h.stat_sn.set(st);
        h.exp_cmd_sn.set(exp);
        h.max_cmd_sn.set(max);
        h.data_segment_len = bhs::dsl_to(data.len() as u32);
        frame(h.as_bytes(), &data)
    }

    fn data_in(
        &mut self,
        itt: u32,
        data_sn: u32,
        offset: u32,
        data: &[u8],
        status: Option<u8>,
    ) -> Vec<u8> {
        let (st, exp, max) = self.sn(status.is_some());
        let mut h = bhs::DataIn {
            opcode: 0x25,
            flags: if status.is_some() { 0x81 } else { 0 },
            ..Default::default()
        };
        h.status = status.unwrap_or(0);
        h.itt.set(itt);
        h.ttt.set(RESERVED_TAG);
        h.stat_sn.set(if status.is_some() { st } else { 0 });
        h.exp_cmd_sn.set(exp);
        h.max_cmd_sn.set(max);
        h.data_sn.set(data_sn);
        h.buffer_offset.set(offset);
        h.data_segment_len = bhs::dsl_to(data.len() as u32);
        frame(h.as_bytes(), data)
    }

    fn response(&mut self, itt: u32, status: u8, sense: &[u8], exp_data_sn: u32) -> Vec<u8> {
        let (st, exp, max) = self.sn(true);
        let mut h = bhs::ScsiResponse {
            opcode: 0x21,
            flags: 0x80,
            status,
            ..Default::default()
        };
        h.itt.set(itt);
        h.stat_sn.set(st);
        h.exp_cmd_sn.set(exp);
        h.max_cmd_sn.set(max);
        h.exp_data_sn.set(exp_data_sn);
        let mut data = Vec::new();
        if !sense.is_empty() {
            data.extend_from_slice(&(sense.len() as u16).to_be_bytes());
            data.extend_from_slice(sense);
        }
        h.data_segment_len = bhs::dsl_to(data.len() as u32);
        frame(h.as_bytes(), &data)
    }

    fn r2t(&mut self, itt: u32, ttt: u32, r2t_sn: u32, offset: u32, len: u32) -> Vec<u8> {
        let (st, exp, max) = self.sn(false);
        let mut h = bhs::R2t {
            opcode: 0x31,
            flags: 0x80,
            ..Default::default()
        };
        h.itt.set(itt);
        h.ttt.set(ttt);
        h.stat_sn.set(st);
        h.exp_cmd_sn.set(exp);
        h.max_cmd_sn.set(max);
        h.r2t_sn.set(r2t_sn);
        h.buffer_offset.set(offset);
        h.desired_data_transfer_len.set(len);
        frame(h.as_bytes(), &[])
    }

    /// Account for commands the initiator sent.
    fn saw(&mut self, pdus: &[Out]) {
        for p in pdus {
            if p.bhs[0] & IMMEDIATE == 0
                && matches!(
                    p.opcode(),
                    Opcode::SCSI_COMMAND | Opcode::TEXT_REQUEST | Opcode::LOGOUT_REQUEST
                )
            {
                assert_eq!(p.word(24), self.exp_cmd_sn, "CmdSN of {:?}", p.opcode());
                self.exp_cmd_sn += 1;
            }
        }
    }
}

fn config() -> SessionConfig {
    let login = LoginConfig {
        initiator_name: "iqn.2024-01.org.isboot:unit".into(),
        initiator_alias: None,
        target_name: Some("iqn.2024-01.org.isboot:disk".into()),
        session_type: SessionType::Normal,
        isid: Isid::derive(b"unit-host", "iqn.2024-01.org.isboot:unit", 1),
        chap: None,
        operational: OperationalConfig::default(),
        entropy_seed: [3; 32],
    };
    let mut c = SessionConfig::new(
        login,
        Portal {
            host: "127.0.0.1".into(),
            port: 3260,
        },
    );
    c.ping_interval = Duration::from_secs(5);
    c.ping_timeout = Duration::from_secs(5);
    c
}

const T0: Instant = Instant::from_millis(1000);

/// Connect and log in with the given operational answers; returns the target.
fn logged_in(s: &mut Session, now: Instant, window: u32, op_keys: &[(&str, &str)]) -> Target {
    assert_eq!(
        s.poll_transport(now),
        Some(TransportAction::Connect(Portal {
            host: "127.0.0.1".into(),
            port: 3260
        }))
    );
    s.on_connected(now);
    let first = drain(s);
    assert_eq!(first.len(), 1);
    let req = &first[0];
    assert_eq!(req.bhs[0], 0x43, "Login Request with I bit");
    let keys: Vec<_> = pairs(&req.data).map(|p| p.unwrap()).collect();
    assert!(keys.contains(&("AuthMethod", "None")));
    assert!(keys.contains(&("SessionType", "Normal")));
    let cmd_sn = req.word(24);
    let mut t = Target {
        stat_sn: 100,
        exp_cmd_sn: cmd_sn,
        window,
    };
    let r = t.login_rsp(req, 0x81, 0, &[("AuthMethod", "None")]);
    s.process(now, &r);
    let second = drain(s);
    assert_eq!(second.len(), 1);
    assert_eq!(
        second[0].bhs[1], 0x87,
        "T, CSG operational, NSG full feature"
    );
    assert_eq!(
        second[0].word(28),
        101,
        "ExpStatSN acknowledges the first response"
    );
    let r = t.login_rsp(&second[0], 0x87, 7, op_keys);
    s.process(now, &r);
    assert!(s.is_ready(), "logged in: {:?}", s.last_error());
    assert_eq!(s.tsih(), 7);
    t
}

fn complete_all(s: &mut Session) -> Vec<(TaskHandle, Result<ScsiOutcome, CommandError>, Vec<u8>)> {
    let mut v = Vec::new();
    while let Some(c) = s.poll_completion() {
        if let Completion::Command {
            handle,
            result,
            buffer,
        } = c
        {
            v.push((handle, result, buffer.into_vec()));
        }
    }
    v
}

/// A logged-in session with reads of these lengths at the target (the first at LBA 0, each
/// next 1024 blocks further), and the target.
fn reads_at_target(lens: &[usize]) -> (Session, Target, Vec<TaskHandle>) {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(&mut s, T0, 8, &[]);
    let mut handles = Vec::new();
    for (i, &len) in lens.iter().enumerate() {
        let blocks = (len / 512) as u16;
        let h = s
            .submit(
                Lun::from_number(0),
                Cdb::read(1024 * i as u64, blocks.into()),
                Direction::Read,
                vec![0; len],
                len as u32,
            )
            .unwrap();
        handles.push(h);
    }
    t.saw(&drain(&mut s));
    (s, t, handles)
}

#[test]
fn cmdsn_window_bounds_commands_in_flight() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(&mut s, T0, 1, &[("MaxRecvDataSegmentLength", "8192")]);
    let lun = Lun::from_number(0);
    let handles: Vec<_> = (0..3)
        .map(|i| {
            s.submit(lun, Cdb::read(i, 1), Direction::Read, vec![0; 512], 512)
                .unwrap()
        })
        .collect();
    let sent = drain(&mut s);
    assert_eq!(sent.len(), 1, "window of one");
    t.saw(&sent);
    assert_eq!(sent[0].itt(), handles[0].0);
    assert_eq!(sent[0].word(28), t.stat_sn, "ExpStatSN");
    // Completing it opens the window by one: the next command goes out.
    let r = t.data_in(handles[0].0, 0, 0, &[0xab; 512], Some(0));
    s.process(T0, &r);
    let sent = drain(&mut s);
    assert_eq!(sent.len(), 1);
    t.saw(&sent);
    assert_eq!(sent[0].itt(), handles[1].0);
    let done = complete_all(&mut s);
    assert_eq!(done.len(), 1);
    let (h, res, buf) = &done[0];
    assert_eq!(*h, handles[0]);
    assert_eq!(res.unwrap().transferred, 512);
    assert!(buf.iter().all(|&b| b == 0xab));
}

#[test]
fn data_in_checks_and_recovery_reissues_once() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(&mut s, T0, 8, &[]);
    let h = s
        .submit(
            Lun::from_number(0),
            Cdb::read(0, 2),
            Direction::Read,
            vec![0; 1024],
            1024,
        )
        .unwrap();
    let sent = drain(&mut s);
    t.saw(&sent);
    // First PDU fine; the second skips DataSN 1.
    s.process(T0, &t.data_in(h.0, 0, 0, &[1; 512], None));
    assert!(s.is_ready());
    s.process(T0, &t.data_in(h.0, 2, 512, &[2; 512], Some(0)));
    assert_eq!(
        s.last_error(),
        Some(SessionError::Protocol("Data-In DataSN out of order"))
    );
    assert_eq!(s.poll_transport(T0), Some(TransportAction::Close));
    assert!(
        complete_all(&mut s).is_empty(),
        "nothing completes while recovering"
    );
    // Reconnect after the back-off; the command is re-issued on the new session.
    let later = T0 + Duration::from_secs(3);
    let mut t = logged_in(&mut s, later, 8, &[]);
    assert_eq!(s.logins(), 2);
    let sent = drain(&mut s);
    t.saw(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].itt(), h.0);
    s.process(later, &t.data_in(h.0, 0, 0, &[3; 1024], Some(0)));
    let done = complete_all(&mut s);
    assert_eq!(done.len(), 1);
    assert!(done[0].2.iter().all(|&b| b == 3));
}

#[test]
fn data_in_outside_the_buffer_is_refused() {
    let (mut s, mut t, h) = reads_at_target(&[512]);
    let h = h[0];
    s.process(T0, &t.data_in(h.0, 0, 0, &[9; 516], Some(0)));
    assert_eq!(
        s.last_error(),
        Some(SessionError::Protocol(
            "Data-In beyond the expected transfer length"
        ))
    );
    // Offsets must be contiguous (DataPDUInOrder=Yes).
    let (mut s, mut t, h) = reads_at_target(&[1024]);
    let h = h[0];
    s.process(T0, &t.data_in(h.0, 0, 512, &[9; 512], None));
    assert_eq!(
        s.last_error(),
        Some(SessionError::Protocol("Data-In buffer offset out of order"))
    );
}

#[test]
fn unit_attention_and_busy_are_retried() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(&mut s, T0, 8, &[]);
    let h = s
        .submit(
            Lun::from_number(0),
            Cdb::test_unit_ready(),
            Direction::None,
            Vec::new(),
            0,
        )
        .unwrap();
    let sent = drain(&mut s);
    t.saw(&sent);
    let first_sn = sent[0].word(24);
    let ua = [
        0x70, 0, 0x06, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x29, 0, 0, 0, 0, 0,
    ];
    s.process(T0, &t.response(h.0, 0x02, &ua, 0));
    let again = drain(&mut s);
    assert_eq!(again.len(), 1, "UNIT ATTENTION re-issues the command");
    assert_eq!(again[0].word(24), first_sn + 1, "with a new CmdSN");
    t.saw(&again);
    s.process(T0, &t.response(h.0, 0x08, &[], 0));
    assert!(drain(&mut s).is_empty(), "BUSY waits for the back-off");
    let at = s.poll_at().unwrap();
    assert!(at > T0 && at <= T0 + Duration::from_secs(1));
    s.handle_timeout(at);
    let again = drain(&mut s);
    assert_eq!(again.len(), 1);
    t.saw(&again);
    s.process(at, &t.response(h.0, 0, &[], 0));
    let done = complete_all(&mut s);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1.unwrap().status, ScsiStatus::GOOD);
    // A CHECK CONDITION that is not a UNIT ATTENTION comes back with its sense.
    let h = s
        .submit(
            Lun::from_number(0),
            Cdb::test_unit_ready(),
            Direction::None,
            Vec::new(),
            0,
        )
        .unwrap();
    t.saw(&drain(&mut s));
    let desc = [0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0];
    s.process(at, &t.response(h.0, 0x02, &desc, 0));
    let done = complete_all(&mut s);
    let o = done[0].1.unwrap();
    assert_eq!(o.status, ScsiStatus::CHECK_CONDITION);
    assert_eq!(
        o.sense.unwrap().decode().unwrap().key,
        SenseKey::ILLEGAL_REQUEST
    );
}

#[test]
fn writes_use_immediate_data_and_answer_r2t_within_limits() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(
        &mut s,
        T0,
        8,
        &[
            ("MaxRecvDataSegmentLength", "8192"),
            ("FirstBurstLength", "8192"),
            ("MaxBurstLength", "16384"),
            ("InitialR2T", "Yes"),
            ("ImmediateData", "Yes"),
        ],
    );
    let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
    let h = s
        .submit(
            Lun::from_number(0),
            Cdb::write(0, 40),
            Direction::Write,
            data.clone(),
            20000,
        )
        .unwrap();
    let sent = drain(&mut s);
    t.saw(&sent);
    assert_eq!(sent.len(), 1, "InitialR2T=Yes: no unsolicited Data-Out");
    assert_eq!(sent[0].bhs[1] & 0xa0, 0xa0, "F and W");
    assert_eq!(
        sent[0].data,
        data[..8192],
        "immediate data up to FirstBurstLength"
    );
    // An R2T larger than MaxBurstLength is a protocol error; a proper one is answered.
    s.process(T0, &t.r2t(h.0, 0x55, 0, 8192, 11808));
    let outs = drain(&mut s);
    assert_eq!(outs.len(), 2);
    assert!(outs
        .iter()
        .all(|o| o.opcode() == Opcode::DATA_OUT && o.word(20) == 0x55));
    assert_eq!(
        (outs[0].word(36), outs[0].word(40), outs[0].data.len()),
        (0, 8192, 8192)
    );
    assert_eq!(
        (outs[1].word(36), outs[1].word(40), outs[1].data.len()),
        (1, 16384, 3616)
    );
    assert_eq!(outs[0].bhs[1] & 0x80, 0);
    assert_eq!(
        outs[1].bhs[1] & 0x80,
        0x80,
        "F on the last Data-Out of the burst"
    );
    assert_eq!(outs[1].data, data[16384..]);
    s.process(T0, &t.response(h.0, 0, &[], 0));
    assert_eq!(complete_all(&mut s)[0].1.unwrap().transferred, 20000);
    // Out-of-range R2T.
    let h = s
        .submit(
            Lun::from_number(0),
            Cdb::write(0, 40),
            Direction::Write,
            data.clone(),
            20000,
        )
        .unwrap();
    t.saw(&drain(&mut s));
    s.process(T0, &t.r2t(h.0, 0x56, 0, 8192, 16385));
    assert_eq!(
        s.last_error(),
        Some(SessionError::Protocol(
            "R2T outside the transfer or MaxBurstLength"
        ))
    );
}

#[test]
fn unsolicited_data_out_when_initial_r2t_is_no() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(
        &mut s,
        T0,
        8,
        &[
            ("MaxRecvDataSegmentLength", "4096"),
            ("FirstBurstLength", "10000"),
            ("InitialR2T", "No"),
            ("ImmediateData", "Yes"),
        ],
    );
    let data = vec![7u8; 20000];
    let _h = s
        .submit(
            Lun::from_number(0),
            Cdb::write(0, 40),
            Direction::Write,
            data,
            20000,
        )
        .unwrap();
    let sent = drain(&mut s);
    t.saw(&sent);
    // Command with 4096 immediate bytes (not F), then Data-Out 4096 + 1808 up to FirstBurstLength.
    assert_eq!(sent.len(), 3);
    assert_eq!(
        sent[0].bhs[1] & 0x80,
        0,
        "F clear: unsolicited Data-Out follows"
    );
    assert_eq!(sent[0].data.len(), 4096);
    assert_eq!(
        (
            sent[1].word(20),
            sent[1].word(36),
            sent[1].word(40),
            sent[1].data.len()
        ),
        (RESERVED_TAG, 0, 4096, 4096)
    );
    assert_eq!(
        (
            sent[2].word(36),
            sent[2].word(40),
            sent[2].data.len(),
            sent[2].bhs[1] & 0x80
        ),
        (1, 8192, 1808, 0x80)
    );
}

#[test]
fn extended_cdb_goes_in_an_ahs() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(&mut s, T0, 8, &[]);
    let cdb: Vec<u8> = (1..=32).collect();
    s.submit(
        Lun::from_number(0),
        Cdb::new(&cdb).unwrap(),
        Direction::None,
        Vec::new(),
        0,
    )
    .unwrap();
    let sent = drain(&mut s);
    t.saw(&sent);
    assert_eq!(&sent[0].bhs[32..48], &cdb[..16]);
    // AHSLength 17 (16 CDB bytes + reserved), type 1, padded to 20 bytes.
    assert_eq!(sent[0].ahs.len(), 20);
    assert_eq!(&sent[0].ahs[..4], &[0, 17, 1, 0]);
    assert_eq!(&sent[0].ahs[4..20], &cdb[16..]);
}

#[test]
fn nop_pings_both_ways_and_ping_timeout() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(&mut s, T0, 8, &[]);
    // The target pings with data: echoed with its TTT, immediate, ITT 0xffffffff.
    let (st, exp, max) = t.sn(false);
    let mut h = bhs::NopIn {
        opcode: 0x20,
        flags: 0x80,
        ..Default::default()
    };
    h.itt.set(RESERVED_TAG);
    h.ttt.set(0x1234);
    h.stat_sn.set(st);
    h.exp_cmd_sn.set(exp);
    h.max_cmd_sn.set(max);
    h.data_segment_len = bhs::dsl_to(5);
    s.process(T0, &frame(h.as_bytes(), b"hello"));
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bhs[0], 0x40, "immediate NOP-Out");
    assert_eq!((out[0].itt(), out[0].word(20)), (RESERVED_TAG, 0x1234));
    assert_eq!(out[0].data, b"hello");
    // Idle for the ping interval: we ping; an answer clears it.
    let t1 = T0 + Duration::from_secs(5);
    assert_eq!(s.poll_at(), Some(t1));
    s.handle_timeout(t1);
    let ping = drain(&mut s);
    assert_eq!(ping.len(), 1);
    assert_eq!(
        (ping[0].opcode(), ping[0].word(20)),
        (Opcode::NOP_OUT, RESERVED_TAG)
    );
    let (st, exp, max) = t.sn(true);
    let mut h = bhs::NopIn {
        opcode: 0x20,
        flags: 0x80,
        ..Default::default()
    };
    h.itt.set(ping[0].itt());
    h.ttt.set(RESERVED_TAG);
    h.stat_sn.set(st);
    h.exp_cmd_sn.set(exp);
    h.max_cmd_sn.set(max);
    s.process(t1, &frame(h.as_bytes(), &[]));
    assert!(s.is_ready());
    // Next ping goes unanswered: the connection is declared dead at the timeout.
    let t2 = t1 + Duration::from_secs(5);
    s.handle_timeout(t2);
    assert_eq!(drain(&mut s).len(), 1);
    let t3 = t2 + Duration::from_secs(5);
    assert_eq!(s.poll_at(), Some(t3));
    s.handle_timeout(t3);
    assert_eq!(s.last_error(), Some(SessionError::PingTimeout));
    assert!(s.is_recovering());
    assert_eq!(s.poll_transport(t3), Some(TransportAction::Close));
}

#[test]
fn statsn_gap_on_a_response_is_a_protocol_error() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(&mut s, T0, 8, &[]);
    let h = s
        .submit(
            Lun::from_number(0),
            Cdb::test_unit_ready(),
            Direction::None,
            Vec::new(),
            0,
        )
        .unwrap();
    t.saw(&drain(&mut s));
    t.stat_sn += 3;
    s.process(T0, &t.response(h.0, 0, &[], 0));
    assert_eq!(
        s.last_error(),
        Some(SessionError::Protocol("StatSN out of sequence"))
    );
}

#[test]
fn reject_tmf_async_and_logout() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(&mut s, T0, 8, &[]);
    let lun = Lun::from_number(0);
    // Reject of a command completes it with the reason.
    let h = s
        .submit(lun, Cdb::test_unit_ready(), Direction::None, Vec::new(), 0)
        .unwrap();
    let sent = drain(&mut s);
    t.saw(&sent);
    let (st, exp, max) = t.sn(true);
    let mut r = bhs::Reject {
        opcode: 0x3f,
        flags: 0x80,
        reason: 0x09,
        ..Default::default()
    };
    r.itt.set(RESERVED_TAG);
    r.stat_sn.set(st);
    r.exp_cmd_sn.set(exp);
    r.max_cmd_sn.set(max);
    r.data_segment_len = bhs::dsl_to(48);
    s.process(T0, &frame(r.as_bytes(), &sent[0].bhs));
    let done = complete_all(&mut s);
    assert_eq!(done[0].1, Err(CommandError::Rejected(0x09)));
    assert!(s.is_ready());
    // ABORT TASK of an active command.
    let h2 = s
        .submit(lun, Cdb::read(0, 1), Direction::Read, vec![0; 512], 512)
        .unwrap();
    let sent = drain(&mut s);
    t.saw(&sent);
    let tmf = s.abort_task(h2).unwrap();
    let out = drain(&mut s);
    assert_eq!(out[0].opcode(), Opcode::TASK_MGMT_REQUEST);
    assert_eq!(out[0].bhs[1], 0x81);
    assert_eq!(
        (out[0].word(20), out[0].word(32)),
        (h2.0, sent[0].word(24)),
        "referenced task and RefCmdSN"
    );
    let (st, exp, max) = t.sn(true);
    let mut r = bhs::TaskMgmtResponse {
        opcode: 0x22,
        flags: 0x80,
        response: 0,
        ..Default::default()
    };
    r.itt.set(tmf.0);
    r.stat_sn.set(st);
    r.exp_cmd_sn.set(exp);
    r.max_cmd_sn.set(max);
    s.process(T0, &frame(r.as_bytes(), &[]));
    let mut got = Vec::new();
    while let Some(c) = s.poll_completion() {
        got.push(c);
    }
    assert!(got.iter().any(|c| matches!(c, Completion::Command { handle, result: Err(CommandError::Aborted), .. } if *handle == h2)));
    assert!(got.iter().any(
        |c| matches!(c, Completion::TaskManagement { handle, response: 0 } if *handle == tmf)
    ));
    let _ = h;
    // Async "logout requested": we log out, then log in again.
    let (st, exp, max) = t.sn(true);
    let mut a = bhs::AsyncMessage {
        opcode: 0x32,
        flags: 0x80,
        async_event: 1,
        ..Default::default()
    };
    a.itt.set(RESERVED_TAG);
    a.stat_sn.set(st);
    a.exp_cmd_sn.set(exp);
    a.max_cmd_sn.set(max);
    a.parameter3.set(10);
    s.process(T0, &frame(a.as_bytes(), &[]));
    let out = drain(&mut s);
    assert_eq!(out[0].opcode(), Opcode::LOGOUT_REQUEST);
    t.saw(&out);
    let (st, exp, max) = t.sn(true);
    let mut l = bhs::LogoutResponse {
        opcode: 0x26,
        flags: 0x80,
        ..Default::default()
    };
    l.itt.set(out[0].itt());
    l.stat_sn.set(st);
    l.exp_cmd_sn.set(exp);
    l.max_cmd_sn.set(max);
    s.process(T0, &frame(l.as_bytes(), &[]));
    assert_eq!(s.poll_transport(T0), Some(TransportAction::Close));
    assert!(s.is_recovering());
    let _ = logged_in(&mut s, T0, 8, &[]);
    // A requested logout closes the session for good.
    s.logout(T0);
    let out = drain(&mut s);
    assert_eq!(out[0].opcode(), Opcode::LOGOUT_REQUEST);
    assert_eq!(out[0].bhs[0] & IMMEDIATE, 0, "Logout takes a CmdSN");
    let mut l = bhs::LogoutResponse::read_from_bytes(&[0u8; 48][..]).unwrap();
    l.opcode = 0x26;
    l.flags = 0x80;
    l.itt.set(out[0].itt());
    l.stat_sn.set(102);
    s.process(T0, &frame(l.as_bytes(), &[]));
    assert!(s.is_closed());
    assert!(matches!(s.poll_completion(), Some(Completion::LoggedOut)));
}

#[test]
fn redirect_is_followed() {
    let mut s = Session::new(config(), T0);
    assert!(matches!(
        s.poll_transport(T0),
        Some(TransportAction::Connect(_))
    ));
    s.on_connected(T0);
    let req = drain(&mut s);
    let mut t = Target {
        stat_sn: 1,
        exp_cmd_sn: req[0].word(24),
        window: 1,
    };
    let mut r = t.login_rsp(&req[0], 0x81, 0, &[("TargetAddress", "127.0.0.2:3270,1")]);
    r[36] = 1; // Status-Class: redirection
    r[37] = 1; // temporarily
    s.process(T0, &r);
    assert_eq!(s.poll_transport(T0), Some(TransportAction::Close));
    assert_eq!(
        s.poll_transport(T0),
        Some(TransportAction::Connect(Portal {
            host: "127.0.0.2".into(),
            port: 3270
        }))
    );
}

#[test]
fn renegotiation_and_lun_reset() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(
        &mut s,
        T0,
        8,
        &[
            ("MaxRecvDataSegmentLength", "8192"),
            ("InitialR2T", "Yes"),
            ("ImmediateData", "Yes"),
            ("FirstBurstLength", "65536"),
        ],
    );
    // Async event 4: we start a Text exchange on our own.
    let (st, exp, max) = t.sn(true);
    let mut a = bhs::AsyncMessage {
        opcode: 0x32,
        flags: 0x80,
        async_event: 4,
        ..Default::default()
    };
    a.itt.set(RESERVED_TAG);
    a.stat_sn.set(st);
    a.exp_cmd_sn.set(exp);
    a.max_cmd_sn.set(max);
    s.process(T0, &frame(a.as_bytes(), &[]));
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].opcode(), Opcode::TEXT_REQUEST);
    assert!(out[0].data.is_empty());
    t.saw(&out);
    // The target declares a smaller receive limit and offers a key that cannot change now.
    let mut data = Vec::new();
    push_pair(&mut data, "MaxRecvDataSegmentLength", "4096");
    push_pair(&mut data, "MaxBurstLength", "4096");
    let (st, exp, max) = t.sn(true);
    let mut r = bhs::TextResponse {
        opcode: 0x24,
        flags: 0x80,
        ..Default::default()
    };
    r.itt.set(out[0].itt());
    r.ttt.set(0x77);
    r.stat_sn.set(st);
    r.exp_cmd_sn.set(exp);
    r.max_cmd_sn.set(max);
    r.data_segment_len = bhs::dsl_to(data.len() as u32);
    s.process(T0, &frame(r.as_bytes(), &data));
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    let kv: Vec<_> = pairs(&out[0].data).map(|p| p.unwrap()).collect();
    assert_eq!(kv, vec![("MaxBurstLength", "Reject")]);
    assert_eq!(out[0].word(20), 0x77);
    t.saw(&out);
    assert!(s.poll_completion().is_none(), "renegotiation is internal");
    // Immediate data now respects the new limit.
    let h = s
        .submit(
            Lun::from_number(2),
            Cdb::write(0, 16),
            Direction::Write,
            vec![5; 8192],
            8192,
        )
        .unwrap();
    let out = drain(&mut s);
    t.saw(&out);
    assert_eq!(out[0].data.len(), 4096);
    // LOGICAL UNIT RESET completes the LUN's commands as aborted.
    let tmf = s.lun_reset(Lun::from_number(2)).unwrap();
    let out = drain(&mut s);
    assert_eq!(
        (out[0].opcode(), out[0].bhs[1]),
        (Opcode::TASK_MGMT_REQUEST, 0x85)
    );
    assert_eq!(out[0].word(20), RESERVED_TAG);
    let (st, exp, max) = t.sn(true);
    let mut r = bhs::TaskMgmtResponse {
        opcode: 0x22,
        flags: 0x80,
        response: 0,
        ..Default::default()
    };
    r.itt.set(tmf.0);
    r.stat_sn.set(st);
    r.exp_cmd_sn.set(exp);
    r.max_cmd_sn.set(max);
    s.process(T0, &frame(r.as_bytes(), &[]));
    let mut aborted = false;
    while let Some(c) = s.poll_completion() {
        if let Completion::Command { handle, result, .. } = c {
            aborted = handle == h && result == Err(CommandError::Aborted);
        }
    }
    assert!(aborted);
    assert_eq!(s.outstanding(), 0);
}

#[test]
fn data_in_received_straight_into_the_callers_buffer() {
    let (mut s, mut t, h) = reads_at_target(&[1024]);
    let h = h[0];
    assert!(s.large_read_pending(1024) && !s.large_read_pending(1025));
    let payload: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    let pdu = t.data_in(h.0, 0, 0, &payload, Some(0));
    // Nothing to place before a header arrived.
    assert!(s.direct_rx_plan(0).is_none());
    // The header and the first 100 data bytes through `process`, the rest placed directly in
    // two parts; the PDU ends with the last part (no padding, no digest). It carries the
    // status, so nothing is planned beyond it.
    s.process(T0, &pdu[..48 + 100]);
    let p = s.direct_rx_plan(0).expect("rest of the segment");
    assert_eq!((p.count, p.sure, p.likely), (1, 924, 924));
    let [dst, ..] = p.parts;
    dst[..500].copy_from_slice(&pdu[148..648]);
    s.direct_received(T0, 500);
    assert!(complete_all(&mut s).is_empty());
    assert!(
        s.direct_rx_plan(425).is_none(),
        "less than asked for is left"
    );
    let mut p = s.direct_rx_plan(424).expect("rest of the segment");
    assert_eq!(p.parts[0].len(), 424);
    assert_eq!(p.fill(&pdu[648..]), 424);
    s.direct_received(T0, 424);
    assert!(s.direct_rx_plan(0).is_none());
    let done = complete_all(&mut s);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1.unwrap().transferred, 1024);
    assert_eq!(done[0].2, payload);
    assert!(!s.large_read_pending(1));
    assert!(s.is_ready());
}

#[test]
fn new_commands_wait_only_while_the_target_has_plenty_in_flight() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(&mut s, T0, 64, &[]);
    let lun = Lun::from_number(0);
    let read = |s: &mut Session, lba| {
        s.submit(lun, Cdb::read(lba, 1), Direction::Read, vec![0; 512], 512)
            .unwrap()
    };
    // Nothing in flight: a command must go at once.
    let first = read(&mut s, 0);
    assert!(!s.transmit_can_wait());
    let mut handles = vec![first];
    for i in 1..8 {
        handles.push(read(&mut s, i));
    }
    assert!(!s.transmit_can_wait());
    t.saw(&drain(&mut s));
    // Eight at the target: one new command may wait, two may not (2 * 4 >= 8).
    handles.push(read(&mut s, 8));
    assert!(s.transmit_can_wait());
    handles.push(read(&mut s, 9));
    assert!(!s.transmit_can_wait());
    t.saw(&drain(&mut s));
    // A partly sent buffer is finished at once.
    handles.push(read(&mut s, 10));
    assert!(s.transmit_can_wait());
    let len = s.transmit().len();
    s.consume_transmit(10);
    assert!(!s.transmit_can_wait());
    s.consume_transmit(len - 10);
    t.exp_cmd_sn += 1;
    // Anything else in the transmit buffer goes at once: a NOP-In ping from the target.
    handles.push(read(&mut s, 11));
    assert!(s.transmit_can_wait());
    let (st, exp, max) = t.sn(false);
    let mut nop = bhs::NopIn {
        opcode: 0x20,
        flags: 0x80,
        ..Default::default()
    };
    nop.itt.set(RESERVED_TAG);
    nop.ttt.set(0x1234);
    nop.stat_sn.set(st);
    nop.exp_cmd_sn.set(exp);
    nop.max_cmd_sn.set(max);
    s.process(T0, &frame(nop.as_bytes(), &[]));
    assert!(!s.transmit_can_wait());
    let sent = drain(&mut s);
    t.saw(&sent);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].opcode(), Opcode::NOP_OUT);
    // Completing them all lets every command through again.
    for (i, h) in handles.iter().enumerate() {
        s.process(T0, &t.data_in(h.0, 0, 0, &[i as u8; 512], Some(0)));
    }
    assert_eq!(complete_all(&mut s).len(), handles.len());
    read(&mut s, 12);
    assert!(!s.transmit_can_wait());
}

/// Feed `stream` the way `Client::step` does: a planned receive (at most `chunk` bytes)
/// whenever the session offers one, otherwise `process` of a header and a little data.
/// Returns the receives made with a plan of more than one PDU.
fn feed_planned(s: &mut Session, stream: &[u8], chunk: usize) -> usize {
    let mut pos = 0;
    let mut multi = 0;
    while pos < stream.len() {
        let n = match s.direct_rx_plan(0) {
            Some(mut p) => {
                if p.count > 1 {
                    multi += 1;
                }
                let end = stream.len().min(pos.saturating_add(chunk));
                let n = p.fill(&stream[pos..end]);
                s.direct_received(T0, n);
                n
            }
            None => {
                let n = (stream.len() - pos).min(148).min(chunk);
                s.process(T0, &stream[pos..pos + n]);
                n
            }
        };
        assert!(n > 0, "no progress at {pos}");
        pos += n;
    }
    multi
}

/// Every completion, in submission order.
fn completed_in_order(
    s: &mut Session,
) -> Vec<(TaskHandle, Result<ScsiOutcome, CommandError>, Vec<u8>)> {
    let mut done = complete_all(s);
    done.sort_by_key(|d| d.0 .0);
    done
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn one_planned_receive_takes_several_data_in_pdus() {
    let len = 256 * 1024;
    let (mut s, mut t, h) = reads_at_target(&[len]);
    let h = h[0];
    let payload = pattern(len, 5);
    let seg = 64 * 1024;
    let mut stream = Vec::new();
    for i in 0..4 {
        let last = i == 3;
        stream.extend(t.data_in(
            h.0,
            i as u32,
            (i * seg) as u32,
            &payload[i * seg..(i + 1) * seg],
            last.then_some(0),
        ));
    }
    // The first header and a little data through `process`; then one receive plans the rest
    // of this segment and the three PDUs after it, which is all that is left.
    s.process(T0, &stream[..148]);
    let mut p = s.direct_rx_plan(0).expect("a plan");
    assert_eq!(p.count, 1 + 2 * 3);
    assert_eq!(p.sure, seg - 100);
    assert_eq!(p.likely, stream.len() - 148);
    let n = p.fill(&stream[148..]);
    assert_eq!(n, stream.len() - 148);
    s.direct_received(T0, n);
    let done = complete_all(&mut s);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1.unwrap().transferred, len as u32);
    assert!(done[0].2 == payload, "data placed where it belongs");
    assert_eq!(s.planner.backoff, 0);
    assert!(s.is_ready());
}

#[test]
fn planned_receives_of_any_size_place_the_same_bytes() {
    // Receives that end inside a header, just after one, or inside a segment: every byte
    // still lands where it belongs, and a plan is used while the receives cover it.
    for chunk in [47, 48, 49, 1000, 64 * 1024 + 48, 100_003, usize::MAX] {
        let len = 512 * 1024;
        let (mut s, mut t, h) = reads_at_target(&[len]);
        let h = h[0];
        let payload = pattern(len, chunk as u8);
        let seg = 64 * 1024;
        let mut stream = Vec::new();
        for i in 0..8 {
            stream.extend(t.data_in(
                h.0,
                i as u32,
                (i * seg) as u32,
                &payload[i * seg..(i + 1) * seg],
                (i == 7).then_some(0),
            ));
        }
        let multi = feed_planned(&mut s, &stream, chunk);
        assert!(multi > 0, "chunk {chunk}: no plan used");
        let done = complete_all(&mut s);
        assert_eq!(done.len(), 1, "chunk {chunk}");
        assert!(done[0].2 == payload, "chunk {chunk}: data differs");
        assert!(s.is_ready(), "chunk {chunk}: {:?}", s.last_error());
    }
}

#[test]
fn a_wrong_plan_loses_nothing_and_backs_off() {
    let (la, lb) = (256 * 1024, 16 * 1024);
    let (mut s, mut t, h) = reads_at_target(&[la, lb]);
    let (a, b) = (h[0], h[1]);
    let (pa, pb) = (pattern(la, 1), pattern(lb, 2));
    // The target interleaves: A's first 64 KiB, then all of B, then A in two PDUs of 96 KiB
    // (not the 64 KiB the plan guesses).
    let mut stream = t.data_in(a.0, 0, 0, &pa[..65536], None);
    stream.extend(t.data_in(b.0, 0, 0, &pb, Some(0)));
    stream.extend(t.data_in(a.0, 1, 65536, &pa[65536..163840], None));
    stream.extend(t.data_in(a.0, 2, 163840, &pa[163840..], Some(0)));
    s.process(T0, &stream[..148]);
    let mut p = s.direct_rx_plan(0).expect("a plan");
    assert_eq!(p.count, 7, "the plan guesses three more PDUs of A");
    let n = p.fill(&stream[148..]);
    s.direct_received(T0, n);
    assert_eq!(s.planner.backoff, PLAN_BACKOFF, "a wrong guess backs off");
    // The rest as usual: while backing off, receives are not planned beyond one segment.
    let multi = feed_planned(&mut s, &stream[148 + n..], usize::MAX);
    assert_eq!(multi, 0);
    let done = completed_in_order(&mut s);
    assert_eq!(done.len(), 2);
    assert!(done[0].2 == pa, "A intact");
    assert!(done[1].2 == pb, "B intact");
    assert!(s.is_ready(), "{:?}", s.last_error());
}

#[test]
fn a_plan_never_leaves_other_data_in_a_buffer() {
    // A fails after its first PDU; the bytes that follow (the response and B's data) were
    // received into A's buffer where the plan expected A's next PDUs. They go to B, and A's
    // buffer holds A's data and zeros, none of B's.
    let (la, lb) = (256 * 1024, 64 * 1024);
    let (mut s, mut t, h) = reads_at_target(&[la, lb]);
    let (a, b) = (h[0], h[1]);
    let pa = vec![0xa1; 65536];
    let pb = vec![0xb2; lb];
    let mut stream = t.data_in(a.0, 0, 0, &pa, None);
    let sense = [0x72, 0x03, 0x11, 0x00, 0, 0, 0, 0];
    stream.extend(t.response(a.0, 0x02, &sense, 1));
    stream.extend(t.data_in(b.0, 0, 0, &pb, Some(0)));
    let multi = feed_planned(&mut s, &stream, usize::MAX);
    assert_eq!(multi, 1, "one receive was planned across A's next PDUs");
    let done = completed_in_order(&mut s);
    assert_eq!(done.len(), 2);
    let oa = done[0].1.unwrap();
    assert_eq!(oa.status, ScsiStatus::CHECK_CONDITION);
    assert_eq!(
        oa.sense.unwrap().decode().unwrap().key,
        SenseKey::MEDIUM_ERROR
    );
    assert!(done[0].2[..65536] == pa[..]);
    assert!(
        done[0].2[65536..].iter().all(|&x| x == 0),
        "A's buffer beyond its data holds none of what followed"
    );
    assert!(done[1].2 == pb, "B intact");
    assert!(s.is_ready(), "{:?}", s.last_error());
}

#[test]
fn a_plan_stops_at_a_status_it_did_not_expect() {
    // A ends early (status and underflow on its second PDU, where the plan expected two more)
    // and B's data follows: A completes with its 128 KiB, B with all of its data.
    let (la, lb) = (256 * 1024, 64 * 1024);
    let (mut s, mut t, h) = reads_at_target(&[la, lb]);
    let (a, b) = (h[0], h[1]);
    let (pa, pb) = (pattern(131072, 3), pattern(lb, 4));
    let mut stream = t.data_in(a.0, 0, 0, &pa[..65536], None);
    let mut last = t.data_in(a.0, 1, 65536, &pa[65536..], Some(0));
    last[1] |= 0x02;
    last[44..48].copy_from_slice(&131072u32.to_be_bytes());
    stream.extend(last);
    stream.extend(t.data_in(b.0, 0, 0, &pb, Some(0)));
    let multi = feed_planned(&mut s, &stream, usize::MAX);
    assert_eq!(multi, 1);
    let done = completed_in_order(&mut s);
    assert_eq!(done.len(), 2);
    let oa = done[0].1.unwrap();
    assert_eq!(oa.residual, Residual::Underflow(131072));
    assert_eq!(oa.transferred, 131072);
    assert!(done[0].2[..131072] == pa[..]);
    assert!(done[0].2[131072..].iter().all(|&x| x == 0));
    assert!(done[1].2 == pb, "B intact");
    assert!(s.is_ready(), "{:?}", s.last_error());
}

#[test]
fn expected_answers_count_the_commands_at_the_target() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(&mut s, T0, 64, &[]);
    assert_eq!((s.at_target(), s.expected_rx()), (0, 0));
    let lun = Lun::from_number(0);
    let mut reads = Vec::new();
    for i in 0..3 {
        reads.push(
            s.submit(
                lun,
                Cdb::read(i * 8, 8),
                Direction::Read,
                vec![0; 4096],
                4096,
            )
            .unwrap(),
        );
    }
    s.submit(
        lun,
        Cdb::write(64, 8),
        Direction::Write,
        vec![1; 4096],
        4096,
    )
    .unwrap();
    // Not sent yet: nothing is coming.
    assert_eq!((s.at_target(), s.expected_rx()), (0, 0));
    t.saw(&drain(&mut s));
    // Sent: a header each, and the data of the reads.
    assert_eq!((s.at_target(), s.expected_rx()), (4, 4 * 48 + 3 * 4096));
    // Half of one read's data arrived.
    s.process(T0, &t.data_in(reads[0].0, 0, 0, &[7; 2048], None));
    assert_eq!(
        (s.at_target(), s.expected_rx()),
        (4, 4 * 48 + 3 * 4096 - 2048)
    );
}

#[test]
fn lent_buffers_are_read_into_and_sent_from_in_place() {
    let mut s = Session::new(config(), T0);
    let mut t = logged_in(
        &mut s,
        T0,
        8,
        &[
            ("MaxRecvDataSegmentLength", "8192"),
            ("ImmediateData", "Yes"),
        ],
    );
    let lun = Lun::from_number(0);
    // A read: two Data-In land in the caller's memory; the completion has no buffer.
    let mem: &'static mut [u8] = alloc::boxed::Box::leak(vec![0u8; 1024].into_boxed_slice());
    let h = s
        .submit_data(
            lun,
            Cdb::read(0, 2),
            Direction::Read,
            DataBuf::Lent(mem),
            1024,
        )
        .unwrap();
    t.saw(&drain(&mut s));
    s.process(T0, &t.data_in(h.0, 0, 0, &[0x5a; 512], None));
    s.process(T0, &t.data_in(h.0, 1, 512, &[0xa5; 512], Some(0)));
    let Some(Completion::Command {
        handle,
        result,
        buffer: DataBuf::Lent(back),
    }) = s.poll_completion()
    else {
        panic!("the read's completion hands the loan back");
    };
    assert_eq!((handle, result.unwrap().transferred), (h, 1024));
    assert!(back[..512].iter().all(|&b| b == 0x5a) && back[512..].iter().all(|&b| b == 0xa5));
    // A write goes out from the caller's memory (immediate data).
    let data: &'static mut [u8] = alloc::boxed::Box::leak((0..512u32).map(|i| i as u8).collect());
    let h = s
        .submit_data(
            lun,
            Cdb::write(0, 1),
            Direction::Write,
            DataBuf::Lent(data),
            512,
        )
        .unwrap();
    let sent = drain(&mut s);
    t.saw(&sent);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].data.iter().enumerate().all(|(i, &b)| b == i as u8));
    s.process(T0, &t.response(h.0, 0, &[], 0));
    assert_eq!(complete_all(&mut s)[0].1.unwrap().transferred, 512);
    // Too small a loan is refused like a small buffer.
    let small: &'static mut [u8] = alloc::boxed::Box::leak(vec![0u8; 100].into_boxed_slice());
    assert!(matches!(
        s.submit_data(lun, Cdb::read(0, 1), Direction::Read, DataBuf::Lent(small), 512),
        Err((SubmitError::BufferTooSmall, DataBuf::Lent(b))) if b.len() == 100
    ));
}

#[test]
fn an_answer_is_due_while_the_target_has_something_of_ours() {
    let mut s = Session::new(config(), T0);
    assert!(!s.answer_due(), "not connected");
    let mut t = logged_in(&mut s, T0, 8, &[]);
    assert!(!s.answer_due(), "logged in, nothing sent");
    let h = s
        .submit(
            Lun::from_number(0),
            Cdb::read(0, 1),
            Direction::Read,
            vec![0; 512],
            512,
        )
        .unwrap();
    assert!(!s.answer_due(), "still in the transmit buffer");
    t.saw(&drain(&mut s));
    assert!(s.answer_due(), "the target has the command");
    s.process(T0, &t.data_in(h.0, 0, 0, &[1; 512], Some(0)));
    assert_eq!(complete_all(&mut s).len(), 1);
    assert!(!s.answer_due(), "answered");
}
