//! Any frames arriving on the ROM's Ethernet link (what a UEFI NIC hands `loader::eth`): the
//! link sorts DHCP from the rest and smoltcp takes the rest, with an address configured, for a
//! few polls; DHCP payloads go to the DHCP client. No panics, and the link counts no more
//! frames than arrived.
#![no_main]

use std::collections::VecDeque;

use clock::{Duration, Instant};
use ibft::PciAddress;
use libfuzzer_sys::fuzz_target;
use loader::eth::{EthLink, Nic};
use loader::net::{Env, Link, Stack};

struct FuzzNic {
    frames: VecDeque<Vec<u8>>,
}

impl Nic for FuzzNic {
    fn mac(&self) -> [u8; 6] {
        [0x52, 0x54, 0x00, 0x15, 0xb0, 0x17]
    }
    fn mtu(&self) -> usize {
        1500
    }
    fn link_up(&mut self) -> Option<bool> {
        Some(true)
    }
    fn transmit(&mut self, _frame: &[u8]) -> Result<(), &'static str> {
        Ok(())
    }
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        let f = self.frames.pop_front()?;
        let n = f.len().min(buf.len());
        buf[..n].copy_from_slice(&f[..n]);
        Some(n)
    }
    fn pci(&self) -> PciAddress {
        PciAddress {
            bus: 0,
            device: 3,
            function: 0,
        }
    }
}

struct FuzzEnv(u64);

impl Env for FuzzEnv {
    fn now(&self) -> Instant {
        Instant::from_millis(self.0)
    }
    fn idle(&mut self, _max: Duration) {
        self.0 += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    // Frames as 2-byte big-endian lengths, each followed by that many bytes.
    let mut frames = VecDeque::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        frames.push_back(rest[2..2 + n].to_vec());
        rest = &rest[2 + n..];
    }
    let count = frames.len() as u64;
    let link = EthLink::new(FuzzNic { frames });
    let mut stack = Stack::new(link, FuzzEnv(0), 1);
    stack.set_ipv4(
        core::net::Ipv4Addr::new(192, 0, 2, 100),
        24,
        Some(core::net::Ipv4Addr::new(192, 0, 2, 1)),
    );
    let identity = stack.link.identity();
    let mut dhcp = ipoib::dhcp::Client::new(ipoib::dhcp::Config::new(identity, 7), Instant::ZERO);
    for _ in 0..8 {
        stack.step(Duration::from_millis(1));
        while let Some(p) = stack.link.take_dhcp() {
            let _ = dhcp.process(stack.now(), &p);
        }
    }
    assert!(stack.link.frames_in <= count);
});
