//! Any bytes as a DHCP message: parsing never panics; what parses re-encodes to the same
//! message; and a client in SELECTING, REQUESTING or BOUND takes it (with its own xid written
//! in, to get past the first check) without panicking or leaving its states.
#![no_main]

use clock::Instant;
use ipoib::dhcp::{Client, Config, Identity};
use ipoib::wire::dhcp::Message;
use ipoib::wire::ipoib::HwAddr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let again = Message::parse(&m.emit()).expect("an emitted message parses");
        assert_eq!(again, m);
    }
    let id = Identity {
        port_guid: [0, 2, 0xc9, 3, 0, 0, 0x10, 0x39],
        hw_addr: HwAddr::default(),
        lemac: [0, 2, 0xc9, 0, 0x10, 0x39],
    };
    let mut c = Client::new(Config::new(id, 1), Instant::from_millis(0));
    let _ = c.poll_transmit(Instant::from_millis(0));
    let mut d = data.to_vec();
    if d.len() >= 8 {
        d[4..8].copy_from_slice(&c.xid().to_be_bytes());
    }
    // Feed it twice: an OFFER moves the client on, and the second copy meets REQUESTING.
    for t in [1, 2] {
        let _ = c.process(Instant::from_millis(t), &d);
        let _ = c.poll_transmit(Instant::from_millis(t));
        let _ = c.handle_timeout(Instant::from_millis(t * 1_000_000));
        let _ = c.poll_at();
    }
});
