#![allow(dead_code)]

use ipoib::dhcp::Identity;
use ipoib::wire::ipoib::{Gid, HwAddr};

/// Port `n` of a ConnectX-3 (GUIDs differ in the last byte).
pub fn identity(n: u8) -> Identity {
    let guid = [0x00, 0x02, 0xc9, 0x03, 0x00, 0x00, 0x10, 0x38 + n];
    Identity {
        port_guid: guid,
        hw_addr: HwAddr {
            flags: 0,
            qpn: 0x48 + n as u32,
            gid: Gid::from_guid([0xfe, 0x80, 0, 0, 0, 0, 0, 0], guid),
        },
        // iPXE's GUID-mask rule: bytes 0, 1, 2, 5, 6, 7.
        lemac: [guid[0], guid[1], guid[2], guid[5], guid[6], guid[7]],
    }
}
