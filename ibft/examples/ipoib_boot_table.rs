//! Both ends of the iBFT for an IPoIB boot, in one run:
//!
//! 1. the ROM side: port 1 of a dual-port ConnectX-3 has no link, port 2 came up, DHCP over IB
//!    gave an address and a root path; the ROM builds the table, derives the 6-byte "MAC" from
//!    port 2's GUID as iPXE does, and leaves it in base memory;
//! 2. the module side: scan 0x80000-0xFFFFF, validate, pick the boot target and its NIC, and
//!    find which HCA port the NIC structure describes.
//!
//! `cargo run -p ibft --example ipoib_boot_table -- OUT.bin` also writes the table to OUT.bin.

use std::process::ExitCode;

use ibft::identity::{mac_for, match_nic, IbPort, MacRule, MatchedBy, PortGuid};
use ibft::locate::{scan_low_memory, SliceMemory};
use ibft::{
    ChapType, ControlFlags, Header, Ibft, Initiator, InitiatorFlags, Lun, Nic, NicFlags, Origin,
    PciAddress, Secret, Target, TargetFlags,
};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipoib_boot_table: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let hca = PciAddress {
        bus: 0x81,
        device: 0,
        function: 0,
    };
    let ports = [
        IbPort {
            pci: hca,
            port: 1,
            guid: PortGuid([0x00, 0x02, 0xc9, 0x03, 0x00, 0x00, 0x10, 0x39]),
            firmware_mac: None,
        },
        IbPort {
            pci: hca,
            port: 2,
            guid: PortGuid([0x00, 0x02, 0xc9, 0x03, 0x00, 0x00, 0x10, 0x3a]),
            firmware_mac: None,
        },
    ];

    // ---- ROM ------------------------------------------------------------------------------
    let booted = ports[1];
    let mac = mac_for(MacRule::GuidMask, booted.guid, None).ok_or("no MAC for the port")?;
    println!(
        "ROM: HCA {hca}: port 1 down, port 2 ACTIVE (GUID {}); iBFT MAC {mac} ({})",
        booted.guid,
        MacRule::GuidMask.name()
    );
    let ip = |s: &str| s.parse().ok();
    let table = Ibft {
        header: Header::default(),
        control_flags: ControlFlags::empty(),
        initiator: Initiator {
            flags: InitiatorFlags::BLOCK_VALID | InitiatorFlags::BOOT_SELECTED,
            name: Some("iqn.2026-11.org.example:node17".into()),
            ..Initiator::default()
        },
        nics: vec![Nic {
            index: 0,
            flags: NicFlags::BLOCK_VALID | NicFlags::BOOT_SELECTED | NicFlags::GLOBAL,
            ip_address: ip("192.0.2.117"),
            prefix_length: 24,
            origin: Origin::DHCP,
            gateway: ip("192.0.2.1"),
            primary_dns: ip("192.0.2.53"),
            dhcp_server: ip("192.0.2.2"),
            mac,
            pci: hca,
            hostname: Some("node17".into()),
            ..Nic::default()
        }],
        targets: vec![Target {
            index: 0,
            flags: TargetFlags::BLOCK_VALID | TargetFlags::BOOT_SELECTED,
            ip_address: ip("192.0.2.10"),
            port: 3260,
            lun: Lun::from_number(1).ok_or("LUN")?,
            chap_type: ChapType::Chap,
            nic_association: 0,
            name: Some("iqn.2026-11.org.example:boot".into()),
            chap_name: Some("node17".into()),
            chap_secret: Some(Secret::from("n0de-secret-17")),
            ..Target::default()
        }],
    };
    let bytes = ibft::build(&table)?;
    let at = 0x9e620usize;
    let mut low_memory = vec![0u8; 1 << 20];
    low_memory[at..at + bytes.len()].copy_from_slice(&bytes);
    println!(
        "ROM: built a {}-byte iBFT and left it at {at:#x}",
        bytes.len()
    );
    if let Some(out) = std::env::args().nth(1) {
        std::fs::write(&out, &bytes).map_err(|e| format!("{out}: {e}"))?;
        println!("ROM: table also written to {out}");
    }

    // ---- kernel module --------------------------------------------------------------------
    let mem = SliceMemory {
        base: 0,
        bytes: &low_memory,
    };
    let found = scan_low_memory(&mem)?;
    let t = &found.parsed.table;
    println!(
        "isboot: iBFT found at {:#x} in low memory, {} bytes, valid",
        found.address,
        found.bytes.len()
    );
    let target = t.boot_target().ok_or("no valid target")?;
    let nic = t.nic_for(target).ok_or("target's NIC missing")?;
    let m = match_nic(nic, &ports)?;
    let port = ports[m.index];
    let how = match m.by {
        MatchedBy::PciAndMac(r) => format!("PCI address and MAC, {} rule", r.name()),
        MatchedBy::MacOnly(r) => format!("MAC only, {} rule", r.name()),
        MatchedBy::PciOnly => "PCI address only".into(),
    };
    println!(
        "isboot: NIC {} (MAC {}, PCI {}) is port {} of the HCA at {} (matched by {how})",
        nic.index, nic.mac, nic.pci, port.port, port.pci
    );
    println!(
        "isboot: will log in as {} to {} at {} LUN {} ({}), secret not shown",
        t.initiator.name.as_deref().unwrap_or("?"),
        target.name.as_deref().unwrap_or("?"),
        target.socket_addr().ok_or("no address")?,
        target.lun,
        target.chap_type.name(),
    );
    Ok(())
}
