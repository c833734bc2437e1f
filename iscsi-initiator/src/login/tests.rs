//! Scripted login exchanges (RFC 7143 §6.3, §12.1.3).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::wire::frame::{Receiver, RxEvent};
use crate::wire::pdu::decode_target_bhs;

struct Fixed(u8);
impl Entropy for Fixed {
    fn fill_bytes(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
    }
}

fn cfg(chap: Option<ChapConfig>) -> LoginConfig {
    LoginConfig {
        initiator_name: "iqn.2024-01.org.isboot:unit".into(),
        initiator_alias: None,
        target_name: Some("iqn.2024-01.org.isboot:disk".into()),
        session_type: SessionType::Normal,
        isid: Isid::derive(b"host", "iqn.2024-01.org.isboot:unit", 0),
        chap,
        operational: OperationalConfig::default(),
        entropy_seed: [0; 32],
    }
}

/// Parse the single Login Request in `out` (and clear it): flags and key=value pairs.
fn request(out: &mut Vec<u8>) -> (u8, Vec<(String, String)>) {
    assert!(out.len() >= 48);
    let flags = out[1];
    assert_eq!(out[0], 0x43);
    let dl = bhs::dsl_from([out[5], out[6], out[7]]) as usize;
    let kv = pairs(&out[48..48 + dl])
        .map(|p| p.unwrap())
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    out.clear();
    (flags, kv)
}

fn get<'a>(kv: &'a [(String, String)], k: &str) -> Option<&'a str> {
    kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// A Login Response header and its data, as the session would hand them over.
fn response(
    flags: u8,
    isid: [u8; 6],
    itt: u32,
    stat_sn: u32,
    tsih: u16,
    class: u8,
    keys: &[(&str, &str)],
) -> (TargetHeader, Vec<u8>) {
    let mut data = Vec::new();
    for (k, v) in keys {
        push_pair(&mut data, k, v);
    }
    let mut h = bhs::LoginResponse {
        opcode: 0x23,
        flags,
        isid,
        status_class: class,
        ..Default::default()
    };
    h.itt.set(itt);
    h.tsih.set(tsih);
    h.stat_sn.set(stat_sn);
    h.exp_cmd_sn.set(1);
    h.max_cmd_sn.set(8);
    h.data_segment_len = bhs::dsl_to(data.len() as u32);
    let mut wire = Vec::new();
    write_pdu(
        &mut wire,
        DigestConfig::default(),
        h.as_bytes().try_into().unwrap(),
        &[],
        &data,
    );
    // Go through the real receiver so framing is exercised too.
    let mut rx = Receiver::new(DigestConfig::default(), 8192);
    let mut input = &wire[..];
    let mut header = None;
    let mut got = Vec::new();
    while let Some(ev) = rx.poll(&mut input).unwrap() {
        match ev {
            RxEvent::Header(d) => header = Some(d.header),
            RxEvent::Data(c) => got.extend_from_slice(c),
            RxEvent::End => break,
        }
    }
    assert_eq!(
        decode_target_bhs(h.as_bytes()).unwrap().header,
        header.unwrap()
    );
    (header.unwrap(), got)
}

fn hex(s: &str) -> String {
    String::from("0x") + s
}

#[test]
fn chap_md5_one_way_known_answer() {
    let c = ChapConfig {
        user: "alice".into(),
        secret: Secret::from_slice(b"secret12345678"),
        mutual: None,
    };
    let mut l = Login::new(cfg(Some(c)), 0x8000_0001, 1, 0, SerialNumber(1));
    let isid = l.cfg.isid.0;
    let mut out = Vec::new();
    l.start(&mut out).unwrap();
    let (flags, kv) = request(&mut out);
    assert_eq!(flags, 0x00, "no transit while CHAP is pending");
    assert_eq!(get(&kv, "AuthMethod"), Some("CHAP"));
    assert_eq!(
        get(&kv, "InitiatorName"),
        Some("iqn.2024-01.org.isboot:unit")
    );
    let mut e = Fixed(9);
    let (h, d) = response(0x00, isid, 0x8000_0001, 5, 0, 0, &[("AuthMethod", "CHAP")]);
    assert!(matches!(
        l.on_response(&h, &d, &mut out, &mut e),
        Ok(LoginProgress::Continue)
    ));
    let (_, kv) = request(&mut out);
    assert_eq!(get(&kv, "CHAP_A"), Some("8,7,6,5"));
    let challenge = hex("000102030405060708090a0b0c0d0e0f");
    let (h, d) = response(
        0x00,
        isid,
        0x8000_0001,
        6,
        0,
        0,
        &[("CHAP_A", "5"), ("CHAP_I", "1"), ("CHAP_C", &challenge)],
    );
    assert!(matches!(
        l.on_response(&h, &d, &mut out, &mut e),
        Ok(LoginProgress::Continue)
    ));
    let ack = u32::from_be_bytes([out[28], out[29], out[30], out[31]]);
    assert_eq!(ack, 7, "ExpStatSN follows the target's StatSN");
    let (flags, kv) = request(&mut out);
    assert_eq!(flags, 0x81, "T, CSG security, NSG operational");
    assert_eq!(get(&kv, "CHAP_N"), Some("alice"));
    // MD5(0x01 || "secret12345678" || 00..0f), computed independently.
    assert_eq!(
        get(&kv, "CHAP_R"),
        Some("0x9640cf5a568493a829cee9f8134e3a51")
    );
    assert_eq!(get(&kv, "CHAP_C"), None, "no mutual challenge");
    // Operational stage, then full feature.
    let (h, d) = response(0x81, isid, 0x8000_0001, 7, 0, 0, &[]);
    assert!(matches!(
        l.on_response(&h, &d, &mut out, &mut e),
        Ok(LoginProgress::Continue)
    ));
    let (flags, kv) = request(&mut out);
    assert_eq!(flags, 0x87);
    assert_eq!(get(&kv, "ErrorRecoveryLevel"), Some("0"));
    let (h, d) = response(
        0x87,
        isid,
        0x8000_0001,
        8,
        0x22,
        0,
        &[("MaxRecvDataSegmentLength", "65536")],
    );
    match l.on_response(&h, &d, &mut out, &mut e) {
        Ok(LoginProgress::Complete(o)) => {
            assert_eq!(o.tsih, 0x22);
            assert_eq!(o.exp_stat_sn, SerialNumber(9));
            assert_eq!(o.chap, Some(ChapAlgorithm::Md5));
            assert_eq!(o.params.max_send_data_segment_length, 65536);
        }
        other => panic!("{other:?}"),
    }
}

fn mutual_login(
    target_name: &str,
    target_secret: &[u8],
    alg: &str,
) -> Result<LoginProgress, LoginError> {
    let c = ChapConfig {
        user: "alice".into(),
        secret: Secret::from_slice(b"secret12345678"),
        mutual: Some(MutualChap {
            target_user: "tgt".into(),
            target_secret: Secret::from_slice(b"targetsecret99"),
        }),
    };
    let mut l = Login::new(cfg(Some(c)), 7, 1, 0, SerialNumber(1));
    let isid = l.cfg.isid.0;
    let mut out = Vec::new();
    let mut e = Fixed(0x40);
    l.start(&mut out).unwrap();
    out.clear();
    let (h, d) = response(0x00, isid, 7, 1, 0, 0, &[("AuthMethod", "CHAP")]);
    l.on_response(&h, &d, &mut out, &mut e)?;
    out.clear();
    let (h, d) = response(
        0x00,
        isid,
        7,
        2,
        0,
        0,
        &[
            ("CHAP_A", alg),
            ("CHAP_I", "1"),
            ("CHAP_C", "0x000102030405060708090a0b0c0d0e0f"),
        ],
    );
    l.on_response(&h, &d, &mut out, &mut e)?;
    let (_, kv) = request(&mut out);
    if alg == "7" {
        assert_eq!(
            get(&kv, "CHAP_R"),
            Some("0xf2cf7d8018df5bacac7e91092bfdbc8c60c385706acd31a990ea630a960d746b")
        );
    }
    // The target proves itself over our challenge.
    let id = parse_number(get(&kv, "CHAP_I").unwrap()).unwrap() as u8;
    let mut ch = [0u8; 64];
    let n = decode_binary(get(&kv, "CHAP_C").unwrap(), &mut ch).unwrap();
    assert_eq!(n, OUR_CHALLENGE_LEN);
    let algo = ChapAlgorithm::from_code(parse_number(alg).unwrap()).unwrap();
    let mut r = [0u8; 32];
    let rl = algo.response(id, &Secret::from_slice(target_secret), &ch[..n], &mut r);
    let mut rv = Vec::new();
    push_hex(&mut rv, &r[..rl]);
    let rv = String::from_utf8(rv).unwrap();
    let (h, d) = response(
        0x81,
        isid,
        7,
        3,
        0,
        0,
        &[("CHAP_N", target_name), ("CHAP_R", &rv)],
    );
    l.on_response(&h, &d, &mut out, &mut e)
}

#[test]
fn mutual_chap_verifies_the_target() {
    assert!(matches!(
        mutual_login("tgt", b"targetsecret99", "5"),
        Ok(LoginProgress::Continue)
    ));
    assert!(matches!(
        mutual_login("tgt", b"targetsecret99", "7"),
        Ok(LoginProgress::Continue)
    ));
    assert!(matches!(
        mutual_login("tgt", b"targetsecret99", "8"),
        Ok(LoginProgress::Continue)
    ));
    assert_eq!(
        mutual_login("tgt", b"wrongsecret000", "6").unwrap_err(),
        LoginError::TargetAuthenticationFailed
    );
    assert_eq!(
        mutual_login("other", b"targetsecret99", "5").unwrap_err(),
        LoginError::TargetNameMismatch
    );
    assert_eq!(
        mutual_login("tgt", b"targetsecret99", "4").unwrap_err(),
        LoginError::UnsupportedChapAlgorithm
    );
}

#[test]
fn status_classes_continuation_and_strictness() {
    let mut l = Login::new(cfg(None), 3, 1, 0, SerialNumber(1));
    let isid = l.cfg.isid.0;
    let mut out = Vec::new();
    let mut e = Fixed(0);
    l.start(&mut out).unwrap();
    let (flags, kv) = request(&mut out);
    assert_eq!(flags, 0x81);
    assert_eq!(get(&kv, "AuthMethod"), Some("None"));
    // C bit: a partial text; we answer with an empty request and combine.
    let (h, d) = response(0x40, isid, 3, 1, 0, 0, &[("TargetAlias", "disk")]);
    assert!(matches!(
        l.on_response(&h, &d, &mut out, &mut e),
        Ok(LoginProgress::Continue)
    ));
    let (flags, kv) = request(&mut out);
    assert_eq!(flags & 0xc0, 0, "empty request with T=0, C=0");
    assert!(kv.is_empty());
    let (h, d) = response(0x81, isid, 3, 2, 0, 0, &[("AuthMethod", "None")]);
    assert!(matches!(
        l.on_response(&h, &d, &mut out, &mut e),
        Ok(LoginProgress::Continue)
    ));
    out.clear();
    // Wrong ITT, wrong ISID.
    let (h, d) = response(0x87, isid, 4, 3, 1, 0, &[]);
    assert_eq!(
        l.on_response(&h, &d, &mut out, &mut e).unwrap_err(),
        LoginError::Protocol("Login Response for another task tag")
    );
    let (h, d) = response(0x87, [0; 6], 3, 3, 1, 0, &[]);
    assert_eq!(
        l.on_response(&h, &d, &mut out, &mut e).unwrap_err(),
        LoginError::Protocol("Login Response for another ISID")
    );
    // Final response without a TSIH.
    let (h, d) = response(0x87, isid, 3, 3, 0, 0, &[]);
    assert_eq!(
        l.on_response(&h, &d, &mut out, &mut e).unwrap_err(),
        LoginError::Protocol("final Login Response without a TSIH")
    );
    // Status classes.
    for (class, detail, want) in [
        (2u8, 1u8, LoginError::AuthenticationFailed),
        (2, 2, LoginError::AuthorizationFailed),
        (2, 3, LoginError::TargetNotFound),
        (3, 2, LoginError::TargetError(2)),
    ] {
        let mut l = Login::new(cfg(None), 3, 1, 0, SerialNumber(1));
        l.start(&mut out).unwrap();
        out.clear();
        let (h, d) = response(0x00, isid, 3, 1, 0, class, &[]);
        let h = match h {
            TargetHeader::LoginResponse {
                transit,
                cont,
                csg,
                nsg,
                version_max,
                version_active,
                isid,
                tsih,
                itt,
                sn,
                status_class,
                ..
            } => TargetHeader::LoginResponse {
                transit,
                cont,
                csg,
                nsg,
                version_max,
                version_active,
                isid,
                tsih,
                itt,
                sn,
                status_class,
                status_detail: detail,
            },
            other => other,
        };
        assert_eq!(l.on_response(&h, &d, &mut out, &mut e).unwrap_err(), want);
        assert_eq!(want.is_transient(), class == 3);
    }
    // A target that wants CHAP from an initiator without credentials.
    let mut l = Login::new(cfg(None), 3, 1, 0, SerialNumber(1));
    l.start(&mut out).unwrap();
    out.clear();
    let (h, d) = response(0x00, isid, 3, 1, 0, 0, &[("AuthMethod", "CHAP")]);
    assert_eq!(
        l.on_response(&h, &d, &mut out, &mut e).unwrap_err(),
        LoginError::AuthenticationRequired
    );
}

#[test]
fn isid_is_random_format_and_per_host() {
    let a = Isid::derive(b"host-a", "iqn.x", 0);
    let b = Isid::derive(b"host-b", "iqn.x", 0);
    assert_eq!(a.0[0] & 0xc0, 0x80, "T = 10b (random)");
    assert_ne!(a, b);
    assert_eq!(
        a,
        Isid::derive(b"host-a", "iqn.x", 0),
        "stable across reboots"
    );
    assert_eq!(&Isid::derive(b"host-a", "iqn.x", 0x0102).0[4..], &[1, 2]);
    let _ = vec![0u8; 1];
}
