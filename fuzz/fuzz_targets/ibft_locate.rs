//! Any bytes as physical memory: the input sits where an RSDP may be (0xE0000, so its
//! pointers lead anywhere in the first MiB, itself included) and where iPXE leaves a table
//! (0x9E620). Locating never panics and never reads unbounded memory.
#![no_main]

use std::cell::RefCell;

use ibft::locate::{find, SliceMemory};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static MEM: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 1 << 20]);
}

fuzz_target!(|data: &[u8]| {
    MEM.with(|m| {
        let mut m = m.borrow_mut();
        m.fill(0);
        let n = data.len().min(0x20000);
        m[0xe0000..0xe0000 + n].copy_from_slice(&data[..n]);
        let k = data.len().min(0x1000);
        m[0x9e620..0x9e620 + k].copy_from_slice(&data[..k]);
        let instance = data.first().map_or(1, |b| u32::from(b % 4));
        let mem = SliceMemory { base: 0, bytes: &m };
        if let Ok(found) = find(&mem, None, instance) {
            assert_eq!(ibft::parse(&found.bytes).unwrap(), found.parsed);
        }
    });
});
