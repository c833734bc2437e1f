//! Any bytes as an IPoIB packet, an IPoIB ARP packet, or a root path: no panics, and what
//! parses re-encodes to the same thing.
#![no_main]

use ipoib::wire::{arp, ipoib as enc};
use iscsi_initiator::rootpath::RootPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((ty, payload)) = enc::decapsulate(data) {
        let mut b = vec![0u8; enc::HEADER_LEN + payload.len()];
        enc::encapsulate(ty, &mut b).unwrap();
        assert_eq!(enc::decapsulate(&b).unwrap().0, ty);
        if let Ok(a) = arp::Repr::parse(payload) {
            let mut out = [0u8; arp::PACKET_LEN];
            a.emit(&mut out).unwrap();
            assert_eq!(arp::Repr::parse(&out).unwrap(), a);
        }
    }
    if let Ok(s) = core::str::from_utf8(data) {
        if let Ok(r) = RootPath::parse(s) {
            assert!(!r.target.is_empty());
        }
    }
});
