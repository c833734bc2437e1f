//! Any bytes as the ROM's `isboot.cfg`: no panics; an error names a line of the file (or the
//! whole file) and prints as one line; a file that parses gives values inside their bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader::config::{self, MAX_PORTS};

fuzz_target!(|data: &[u8]| {
    match config::parse(data) {
        Ok(c) => {
            assert!(!c.port_order.is_empty() && c.port_order.len() <= MAX_PORTS);
            assert!(c.link_wait.as_secs() <= 3600);
        }
        Err(e) => {
            let lines = data.split(|&b| b == b'\n').count();
            assert!(e.line as usize <= lines);
            assert!(!e.to_string().contains('\n'));
        }
    }
});
