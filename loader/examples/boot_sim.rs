//! The whole boot on one machine: the ROM flow on the simulated fabric (port 1 without a
//! cable, port 2 up), DHCP over IB from a real Kea through the gateway, an iSCSI login to a
//! real tgtd across the fabric, the boot blocks, the iBFT left in base memory — and then
//! `isboot.ko`'s load flow (on the host platform) finding that table and publishing it.
//!
//! Runs inside a private network namespace (needs root); needs `kea-dhcp4-server` and `tgt`.
//! `boot_sim [OUT.bin]` also writes the iBFT the ROM left to OUT.bin.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::ExitCode;

use isboot::host::{HostMemory, HostPlatform};

fn main() -> ExitCode {
    let r = isboot_tests::netns::run(|| -> Result<(), String> {
        let _servers = common::servers();
        println!("== ROM");
        let booted = loader::sim::boot(common::world(), &common::boot_config(), &mut |l| {
            println!("rom: {l}")
        })
        .map_err(|e| format!("boot failed: {e}"))?;
        let label = String::from_utf8_lossy(&booted.boot_blocks[..48]).into_owned();
        println!(
            "rom: LBA 0 reads \"{label}\", signature {:02x}{:02x}",
            booted.boot_blocks[510], booted.boot_blocks[511]
        );
        let bytes = ibft::build(&booted.ibft).map_err(|e| e.to_string())?;
        println!(
            "rom: {}-byte iBFT at 0x9e620; handing over to the OS\n",
            bytes.len()
        );

        println!("== isboot.ko (host platform)");
        let mut p = HostPlatform::new();
        p.memory = HostMemory::first_mib();
        p.memory.write(0x9_e620, &bytes);
        let loaded = isboot::load(&mut p);
        for line in p.console_lines() {
            println!("{line}");
        }
        loaded.map_err(|e| e.to_string())?;
        if let Some(tree) = p.published.as_ref() {
            for oid in tree
                .oids
                .iter()
                .filter(|o| o.name.starts_with("hw.ibft."))
                .take(24)
            {
                println!("{}: {}", oid.name, oid.value);
            }
        }
        Ok(())
    });
    match r {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("boot_sim: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("boot_sim: {e}");
            ExitCode::FAILURE
        }
    }
}
