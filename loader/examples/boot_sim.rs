//! The whole boot on one machine: the ROM flow on the simulated fabric (port 1 without a
//! cable, port 2 up), DHCP over IB from a real Kea through the gateway, an iSCSI login to a
//! real tgtd across the fabric, the boot blocks, the iBFT left in base memory — and then
//! `isboot.ko`'s load flow (on the host platform) finding that table and publishing it, and its
//! boot thread (on the host double of the kernel) logging in again and finding root on the disk.
//!
//! Runs inside a private network namespace (needs root); needs `kea-dhcp4-server`, `tgt`, `makefs` and
//! `gdisk`.
//! `boot_sim [OUT.bin] [--pcap FILE] [--kldrun KLDRUN:KO]` also writes the iBFT the ROM left to
//! OUT.bin, and every packet of the fabric during the boot to FILE, a pcap that `tshark -r
//! FILE` and Wireshark decode; with `--kldrun` it then runs the real module KO under the
//! kldrun binary KLDRUN with OUT.bin at 0x9e620 to a mounted root (exit 2 on a usage error).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::ExitCode;

use isboot::host::{HostMemory, HostPlatform};

/// The printable text at the start of a sector (up to its first NUL or control byte).
fn label(sector: &[u8]) -> String {
    let end = sector
        .iter()
        .position(|&b| !(0x20..0x7f).contains(&b))
        .unwrap_or(sector.len());
    String::from_utf8_lossy(&sector[..end]).into_owned()
}

/// What to run.
struct Args {
    out: Option<String>,
    pcap: Option<String>,
    /// `--kldrun KLDRUN:KO`: also run the real module under kldrun.
    kldrun: Option<(String, String)>,
}

/// `[OUT.bin] [--pcap FILE] [--kldrun KLDRUN:KO]`, in any order; `None` on a usage error.
fn parse_args(mut args: impl Iterator<Item = String>) -> Option<Args> {
    let (mut out, mut pcap, mut kldrun) = (None, None, None);
    while let Some(a) = args.next() {
        if let Some(v) = a.strip_prefix("--pcap=") {
            pcap = Some(v.to_string());
        } else if a == "--pcap" {
            pcap = Some(args.next()?);
        } else if a == "--kldrun" {
            let v = args.next()?;
            let (k, ko) = v.split_once(':')?;
            kldrun = Some((k.to_string(), ko.to_string()));
        } else if a.starts_with('-') || out.is_some() {
            return None;
        } else {
            out = Some(a);
        }
    }
    if pcap.as_deref().is_some_and(str::is_empty)
        || pcap.is_some() && pcap == out
        || kldrun.is_some() && out.is_none()
    {
        return None;
    }
    Some(Args { out, pcap, kldrun })
}

fn main() -> ExitCode {
    let Some(Args { out, pcap, kldrun }) = parse_args(std::env::args().skip(1)) else {
        eprintln!("usage: boot_sim [OUT.bin] [--pcap FILE] [--kldrun KLDRUN:KO (needs OUT.bin)]");
        return ExitCode::from(2);
    };
    let r = isboot_tests::netns::run(move || -> Result<(), String> {
        let _servers = common::servers();
        println!("== ROM");
        let world = common::world_with_capture(pcap.as_deref().map(Path::new));
        let sim = world.sim.clone();
        let booted =
            loader::sim::boot(world, &common::boot_config(), &mut |l| println!("rom: {l}"));
        // The capture is closed whether the boot worked or not: a failed boot's packets are
        // the ones worth reading.
        let captured = match &pcap {
            Some(p) => Some(sim.stop_capture().map_err(|e| format!("{p}: {e}"))?),
            None => None,
        };
        let booted = booted.map_err(|e| match &pcap {
            Some(p) => format!("boot failed: {e} (the fabric's packets are in {p})"),
            None => format!("boot failed: {e}"),
        })?;
        let b = &booted.boot_blocks;
        println!(
            "rom: LBA 0 reads \"{}\", boot signature {:02x}{:02x}",
            label(b),
            b.get(510).copied().unwrap_or(0),
            b.get(511).copied().unwrap_or(0)
        );
        let bytes = ibft::build(&booted.ibft).map_err(|e| e.to_string())?;
        println!(
            "rom: {}-byte iBFT at 0x9e620; handing over to the OS",
            bytes.len()
        );
        if let (Some(p), Some(n)) = (&pcap, captured) {
            println!(
                "capture: {n} packets of the boot's fabric in {p} (whole IB packets, LRH to \
                 VCRC): tshark -r {p}"
            );
        }
        println!();
        if let Some(path) = &out {
            std::fs::write(path, &bytes).map_err(|e| format!("{path}: {e}"))?;
        }

        println!("== isboot.ko's load flow (host platform)");
        let mut p = HostPlatform::new();
        p.memory = HostMemory::first_mib();
        p.memory.write(0x9_e620, &bytes);
        let loaded = isboot::load(&mut p);
        for line in p.console_lines() {
            println!("{line}");
        }
        loaded.map_err(|e| e.to_string())?;
        if let Some(tree) = p.published.as_ref() {
            println!("\n== sysctl net.isboot hw.ibft");
            for oid in tree
                .oids
                .iter()
                .filter(|o| o.name.starts_with("net.isboot.") || o.name.starts_with("hw.ibft."))
            {
                println!("{}: {}", oid.name, oid.value);
            }
        }

        println!("\n== isboot.ko's boot thread (portable half, on the host double of the kernel):");
        println!(
            "== the interface the iBFT names, the address, a mutual-CHAP login, the disk, root"
        );
        println!("== (over an Ethernet-style veth until the module has its own IPoIB interface)");
        let mac = booted.ibft.nics[0].mac.0;
        let m = common::module::boot(booted.ibft.clone(), mac)?;
        println!("\n== sysctl net.isboot (the boot thread's state)");
        for line in &m.sysctl {
            println!("{line}");
        }
        if let (Some((k, ko)), Some(table)) = (&kldrun, &out) {
            println!();
            println!("== isboot.ko itself: the real FreeBSD module, loaded by kldrun into a Linux process");
            println!("== as FreeBSD's kernel linker would (emulated KPIs: kernel threads, kernel sockets");
            println!(
                "== over this namespace's Linux network stack, a small CAM probing da0 through the"
            );
            println!("== module's SIM, root mount holds), the ROM's table at 0x9e620 of its memory. Until");
            println!("== the in-kernel IPoIB issue lands, the module reaches the target over an");
            println!("== Ethernet-style interface (a veth with the table's MAC).");
            common::module::kldrun(k, ko, table, mac)?;
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
