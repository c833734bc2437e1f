//! CQEs and EQEs as the driver decodes them from device-written memory. Must never panic; an
//! error CQE never decodes as a success.
#![no_main]

use hca::hermon::entries::{decode_cqe, decode_eqe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for owner in [false, true] {
        if let Some(c) = decode_cqe(data, owner) {
            let opcode = data[31] & 0x1f;
            if opcode == 0x1e || opcode == 0x1f {
                assert!(!c.status.is_ok());
            }
        }
        let _ = decode_eqe(data, owner);
    }
});
