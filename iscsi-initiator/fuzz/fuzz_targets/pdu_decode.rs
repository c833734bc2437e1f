//! Strict BHS decoding and PDU framing with arbitrary bytes and splits must never panic, and
//! what the receiver yields must be consistent with the framing.
#![no_main]

use iscsi_initiator::wire::frame::{DigestConfig, Receiver, RxEvent};
use iscsi_initiator::wire::pdu::decode_target_bhs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_target_bhs(data);
    let Some((&ctl, rest)) = data.split_first() else { return };
    let digests = DigestConfig { header: ctl & 1 != 0, data: ctl & 2 != 0 };
    let step = usize::from(ctl >> 2).max(1);
    let mut rx = Receiver::new(digests, 16 * 1024);
    let mut expect_data = 0u64;
    let mut got_data = 0u64;
    'outer: for piece in rest.chunks(step) {
        let mut input = piece;
        loop {
            match rx.poll(&mut input) {
                Ok(Some(RxEvent::Header(d))) => {
                    expect_data = u64::from(d.data_len);
                    got_data = 0;
                }
                Ok(Some(RxEvent::Data(c))) => {
                    got_data += c.len() as u64;
                    assert!(got_data <= expect_data);
                }
                Ok(Some(RxEvent::End)) => assert_eq!(got_data, expect_data),
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
    }
});
