//! Whole UD packets (LRH, optional GRH, BTH, DETH, payload, ICRC). Must never panic; a parsed
//! packet re-emits with the same header fields and payload. Each input is tried as is and with
//! its ICRC fixed up, so the fuzzer also reaches the code behind the CRC check.
#![no_main]

use hca::wire::crc;
use hca::wire::headers::UdPacket;
use libfuzzer_sys::fuzz_target;

fn check(data: &[u8]) {
    let Ok(p) = UdPacket::parse(data) else { return };
    let mut out = vec![0u8; p.repr.buffer_len(p.payload.len())];
    if let Ok(n) = p.repr.emit(p.payload, &mut out) {
        let q = UdPacket::parse(&out[..n]).expect("re-emitted packet parses");
        assert_eq!(q.repr, p.repr);
        assert_eq!(q.payload, p.payload);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = crc::vcrc(data);
    check(data);
    if data.len() >= 8 {
        let total = usize::from(u16::from_be_bytes([data[4], data[5]]) & 0x7ff) * 4;
        if total >= 4 && total <= data.len() {
            let mut v = data.to_vec();
            let icrc = crc::icrc(&v[..total - 4]);
            v[total - 4..total].copy_from_slice(&icrc.to_le_bytes());
            check(&v);
        }
    }
});
