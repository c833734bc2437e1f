//! Text key=value parsing and operational negotiation with arbitrary target text: never a
//! panic, and results always inside local limits.
#![no_main]

use iscsi_initiator::negotiate::{DigestChoice, Negotiator, OperationalConfig};
use iscsi_initiator::wire::text::{decode_binary, pairs, parse_number};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, text)) = data.split_first() else { return };
    let cfg = OperationalConfig {
        header_digest: [DigestChoice::None, DigestChoice::Crc32c, DigestChoice::PreferCrc32c][usize::from(ctl % 3)],
        data_digest: [DigestChoice::None, DigestChoice::Crc32c, DigestChoice::PreferCrc32c][usize::from((ctl >> 2) % 3)],
        ..Default::default()
    };
    let mut n = Negotiator::new(cfg, ctl & 0x80 != 0);
    let mut out = Vec::new();
    if ctl & 0x40 != 0 {
        n.offer(&mut out);
    }
    let mut reply = Vec::new();
    for p in pairs(text) {
        let Ok((k, v)) = p else { return };
        let _ = parse_number(v);
        let mut buf = [0u8; 1024];
        let _ = decode_binary(v, &mut buf);
        if n.on_pair(k, v, &mut reply).is_err() {
            return;
        }
    }
    // Replies are well-formed text.
    assert!(pairs(&reply).all(|p| p.is_ok()));
    if let Ok(r) = n.finish() {
        assert!(r.max_burst_length <= cfg.max_burst_length);
        assert!(r.first_burst_length <= r.max_burst_length);
        assert!(r.max_send_data_segment_length <= cfg.max_send_data_segment_length);
        assert!(r.max_outstanding_r2t <= cfg.max_outstanding_r2t && r.max_outstanding_r2t >= 1);
        assert_eq!(r.error_recovery_level, 0);
    }
});
