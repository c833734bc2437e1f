//! Runs the module's MOD_LOAD flow on the host platform with a table file, as a machine would
//! present it, and prints the console and the sysctl tree as `sysctl hw.ibft net.isboot` would.
//!
//! ```text
//! cargo run -p isboot --example sysctl_ibft -- [--preload|--acpi|--lowmem] [--verbose] TABLE.bin
//! ```
//! `--lowmem` (the default) puts the table at 0x9e620 in a zeroed first MiB, as iPXE under
//! SeaBIOS does; `--acpi` lists it in an XSDT found through an RSDP at 0xf6a40; `--preload`
//! hands it over as loader(8)'s `ibft_table` file.

use isboot::host::{HostMemory, HostPlatform};
use std::process::ExitCode;

fn checksum_fix(t: &mut [u8], at: usize) {
    t[at] = 0;
    let sum = t.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    t[at] = 0u8.wrapping_sub(sum);
}

/// A first MiB with an ACPI 2.0 RSDP at 0xf6a40 and an XSDT at 0x200000 listing `table`,
/// which is placed at 0x300000.
fn acpi_memory(table: &[u8]) -> HostMemory {
    let mut mem = HostMemory::first_mib();
    mem.write(0x30_0000, table);
    let mut xsdt = vec![0u8; 36];
    xsdt[..4].copy_from_slice(b"XSDT");
    xsdt[8] = 1;
    xsdt.extend_from_slice(&0x30_0000u64.to_le_bytes());
    let len = xsdt.len() as u32;
    xsdt[4..8].copy_from_slice(&len.to_le_bytes());
    checksum_fix(&mut xsdt, 9);
    mem.write(0x20_0000, &xsdt);
    let mut rsdp = vec![0u8; 36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[15] = 2;
    rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
    rsdp[24..32].copy_from_slice(&0x20_0000u64.to_le_bytes());
    checksum_fix(&mut rsdp[..20], 8);
    checksum_fix(&mut rsdp, 32);
    mem.write(0xF_6A40, &rsdp);
    mem
}

fn main() -> ExitCode {
    let mut mode = String::from("--lowmem");
    let mut verbose = false;
    let mut file = None;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--preload" | "--acpi" | "--lowmem" => mode = a,
            "--verbose" => verbose = true,
            _ => file = Some(a),
        }
    }
    let Some(file) = file else {
        eprintln!("usage: sysctl_ibft [--preload|--acpi|--lowmem] [--verbose] TABLE.bin");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut p = HostPlatform::new();
    if verbose {
        p.set_kenv("hw.ibft.verbose", 1);
    }
    match mode.as_str() {
        "--preload" => {
            p.preload("ibft_table", &bytes);
            p.memory = HostMemory::first_mib();
        }
        "--acpi" => p.memory = acpi_memory(&bytes),
        _ => {
            p.memory = HostMemory::first_mib();
            p.memory.write(0x9_e620, &bytes);
        }
    }
    let result = isboot::load(&mut p);
    for line in p.console_lines() {
        println!("{line}");
    }
    match result {
        Ok(_) => {
            for oid in &p.published.as_ref().expect("published").oids {
                println!("{}: {}", oid.name, oid.value);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("MOD_LOAD fails: {e}");
            ExitCode::FAILURE
        }
    }
}
