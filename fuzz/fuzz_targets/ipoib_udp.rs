//! Any bytes as an IPv4/UDP datagram (what the DHCP client and the gateway's relay take from
//! the fabric): no panics, and what parses re-encodes to a datagram that parses the same.
#![no_main]

use ipoib::udp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(d) = udp::parse(data) {
        let b = udp::emit(&d).expect("a parsed datagram fits");
        assert_eq!(udp::parse(&b), Some(d));
    }
});
