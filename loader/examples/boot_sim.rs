//! The whole boot on one machine: the ROM flow on the simulated fabric (port 1 without a
//! cable, port 2 up), DHCP over IB from a real Kea through the gateway, an iSCSI login to a
//! real tgtd across the fabric, the boot blocks, the iBFT left in base memory — and then
//! `isboot.ko`'s load flow (on the host platform) finding that table and publishing it, and its
//! boot thread (on the host double of the kernel) logging in again and finding root on the disk.
//!
//! Runs inside a private network namespace (needs root); needs `kea-dhcp4-server`, `tgt`, `makefs` and
//! `gdisk`.
//! `boot_sim [OUT.bin] [--pcap FILE] [--kldrun KLDRUN:KO]` also writes the iBFT the ROM left to
//! OUT.bin, and every packet of the fabric during the boot to FILE, a pcap that `tshark -r FILE`
//! and Wireshark decode; with `--kldrun` it then runs the real module KO under the kldrun binary
//! KLDRUN with OUT.bin at 0x9e620 and the ROM's HCA (`--hca` at the NIC's PCI function with the
//! ROM's node GUID, port 1 without a cable, the gateway at the target's address) to a mounted
//! root, booting over its own IPoIB interface (exit 2 on a usage error). `--timeline FILE.svg` draws the boot's stages and the
//! fabric's events on the simulated clock; `boot_sim --nodes N` boots N nodes at once on one fabric (a boot storm) and ends with one
//! `storm:` line (`--rate` sets the links' rate, default QDR 4x).

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

/// `ISBOOT_LOG=1`: the libraries' log records (info and up) on stderr, with the thread (a
/// storm's node) that made them.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let t = std::thread::current();
            eprintln!(
                "{} {}: {}",
                t.name().unwrap_or("main"),
                r.target(),
                r.args()
            );
        }
    }

    fn flush(&self) {}
}

/// The command line.
#[derive(Debug, Default)]
struct Args {
    out: Option<String>,
    pcap: Option<String>,
    timeline: Option<String>,
    nodes: Option<usize>,
    rate: Option<hca_sim::LinkRate>,
    /// `--kldrun KLDRUN:KO`: also run the real module under kldrun.
    kldrun: Option<(String, String)>,
}

/// `[OUT.bin] [--pcap FILE] [--timeline FILE.svg] [--nodes N] [--rate SDR|...|HDR]`, in any
/// order; `None` on a usage error.
fn parse_args(mut args: impl Iterator<Item = String>) -> Option<Args> {
    let mut a = Args::default();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next());
        match name.as_str() {
            "--pcap" => a.pcap = Some(value()?),
            "--timeline" => a.timeline = Some(value()?),
            "--nodes" => a.nodes = Some(value()?.parse().ok().filter(|&n| n > 0)?),
            "--rate" => a.rate = Some(hca_sim::LinkRate::parse(&value()?)?),
            "--kldrun" => {
                let v = value()?;
                let (k, ko) = v.split_once(':')?;
                a.kldrun = Some((k.to_string(), ko.to_string()));
            }
            n if n.starts_with('-') || a.out.is_some() => return None,
            _ => a.out = Some(arg),
        }
    }
    let files = [&a.out, &a.pcap, &a.timeline];
    for (i, f) in files.iter().enumerate() {
        if f.as_deref().is_some_and(str::is_empty) {
            return None;
        }
        if f.is_some() && files[i + 1..].contains(f) {
            return None;
        }
    }
    if a.nodes.is_some() && (a.out.is_some() || a.pcap.is_some()) {
        return None;
    }
    Some(a)
}

/// `--nodes N`: N nodes at once, one line per failure, the stages' medians, the storm line.
fn storm(n: usize, rate: Option<hca_sim::LinkRate>, timeline: Option<String>) -> ExitCode {
    let r = isboot_tests::netns::run(move || -> Result<bool, String> {
        let _servers = common::storm_servers();
        let mut cfg = common::storm_config(n);
        if let Some(r) = rate {
            cfg.link_rate = r;
        }
        let cpu0 = isboot_tests::cpu_micros();
        let t0 = std::time::Instant::now();
        let rep = loader::storm::run(&cfg)?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu_ms = (isboot_tests::cpu_micros() - cpu0) as f64 / 1000.0;
        let mut per_stage: Vec<(String, Vec<f64>)> = Vec::new();
        let mut rows = Vec::new();
        for (i, node) in rep.nodes.iter().enumerate() {
            if let Err(e) = &node.outcome {
                println!("node {i} (GUID {:016x}): boot failed: {e}", node.guid);
            }
            let st = loader::timeline::stages(&node.timing, &rep.events, node.node);
            for s in &st {
                match per_stage.iter_mut().find(|(n, _)| *n == s.name) {
                    Some((_, v)) => v.push(s.ms()),
                    None => per_stage.push((s.name.clone(), vec![s.ms()])),
                }
            }
            rows.push(loader::timeline::Row {
                label: format!("node {i}"),
                stages: st,
            });
        }
        let mut line = String::from("stages (p50/p99 ms):");
        for (name, v) in &mut per_stage {
            v.sort_by(f64::total_cmp);
            line.push_str(&format!(
                " {name} {:.1}/{:.1};",
                loader::storm::percentile(v, 50.0),
                loader::storm::percentile(v, 99.0)
            ));
        }
        println!("{}", line.trim_end_matches(';'));
        let g = rep.gateway;
        println!(
            "fabric: {} SA requests, {} sweeps; gateway: {} DHCP requests relayed, {} replies, \
             {} dropped, {} TCP connections, {} refused; gateway HCA: {} packets without a \
             receive buffer; gateway IPoIB: {} dropped, {} dropped waiting on a path, {} path \
             queries; nodes' HCAs: {} packets without a receive buffer",
            rep.fabric.sa_requests,
            rep.fabric.sweeps,
            g.dhcp_requests,
            g.dhcp_replies,
            g.dhcp_dropped,
            g.connections,
            g.connect_failures,
            rep.gateway_rx_no_wqe,
            rep.gateway_ipoib.rx_dropped,
            rep.gateway_ipoib.pending_dropped,
            rep.gateway_ipoib.path_queries,
            rep.nodes_rx_no_wqe
        );
        if let Some(u) = common::UdpCounters::read() {
            println!("{u}");
        }
        let ms = rep.boot_ms();
        let booted = ms.len();
        if let Some(path) = &timeline {
            let start = rep
                .nodes
                .iter()
                .map(|n| n.timing.start_ns)
                .min()
                .unwrap_or(0);
            let end = rows
                .iter()
                .flat_map(|r| r.stages.iter().map(|s| s.end_ns))
                .max()
                .unwrap_or(start);
            let svg = loader::timeline::svg(
                &format!("boot storm: {n} nodes, {booted} booted"),
                &rows,
                &rep.events,
                start,
                end,
                &|node| format!("n{}", node.saturating_sub(1)),
            );
            std::fs::write(path, svg).map_err(|e| format!("{path}: {e}"))?;
            println!("timeline: {path}");
        }
        println!(
            "storm: nodes={n} booted={booted} wall_s={wall:.1} p50_ms={:.1} p99_ms={:.1} \
             cpu_ms_per_boot={:.1}",
            loader::storm::percentile(&ms, 50.0),
            loader::storm::percentile(&ms, 99.0),
            cpu_ms / booted.max(1) as f64
        );
        Ok(booted == n)
    });
    match r {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
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

fn main() -> ExitCode {
    let Some(args) = parse_args(std::env::args().skip(1)) else {
        eprintln!(
            "usage: boot_sim [OUT.bin] [--pcap FILE] [--timeline FILE.svg] [--kldrun KLDRUN:KO \
             (needs OUT.bin)]\n       \
             boot_sim --nodes N [--timeline FILE.svg] [--rate SDR|DDR|QDR|FDR|EDR|HDR]"
        );
        return ExitCode::from(2);
    };
    if std::env::var_os("ISBOOT_LOG").is_some() {
        let _ = log::set_logger(&StderrLog);
        log::set_max_level(log::LevelFilter::Info);
    }
    if let Some(n) = args.nodes {
        return storm(n, args.rate, args.timeline);
    }
    if args.rate.is_some() {
        eprintln!("boot_sim: --rate is for --nodes");
        return ExitCode::from(2);
    }
    if args.kldrun.is_some() && args.out.is_none() {
        eprintln!("boot_sim: --kldrun needs OUT.bin (the table it loads)");
        return ExitCode::from(2);
    }
    let Args {
        out,
        pcap,
        timeline,
        kldrun,
        ..
    } = args;
    let r = isboot_tests::netns::run(move || -> Result<(), String> {
        let _servers = common::servers();
        println!("== ROM");
        let world = common::world_with_capture(pcap.as_deref().map(Path::new));
        let sim = world.sim.clone();
        sim.record_events(true);
        let (booted, timing) =
            loader::sim::boot_timed(world, &common::boot_config(), &mut |l| println!("rom: {l}"));
        let events = sim.take_events();
        let stages = loader::timeline::stages(&timing, &events, 1);
        println!("rom: {}", loader::timeline::summary(&stages));
        // The timeline, and again with the module's lane once the real module has run.
        let write_timeline = |module: &[loader::timeline::Stage]| -> Result<(), String> {
            let Some(path) = &timeline else {
                return Ok(());
            };
            let svg = loader::timeline::boot_svg_with_module(
                if module.is_empty() {
                    "isboot: the ROM's boot on the simulated fabric"
                } else {
                    "isboot: the ROM's boot on the simulated fabric, then isboot.ko's"
                },
                &stages,
                module,
                &events,
                1,
            );
            std::fs::write(path, svg).map_err(|e| format!("{path}: {e}"))?;
            if module.is_empty() {
                println!("timeline: the boot's stages and the fabric's events in {path}");
            } else {
                println!(
                    "timeline: isboot.ko's stages (net.isboot.timing, real time after the \
                     hand-off) added to {path}"
                );
            }
            Ok(())
        };
        write_timeline(&[])?;
        let rom_end = stages.last().map_or(timing.start_ns, |s| s.end_ns);
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
        println!("== (the host double has no HCA driver: over an Ethernet-style veth with the NIC's MAC)");
        let mac = booted.ibft.nics[0].mac.0;
        let m = common::module::boot(booted.ibft.clone(), mac)?;
        println!("\n== sysctl net.isboot (the boot thread's state)");
        for line in &m.sysctl {
            println!("{line}");
        }
        if let (Some((k, ko)), Some(table)) = (&kldrun, &out) {
            println!();
            let nic = &booted.ibft.nics[0];
            let hca = format!(
                "{:02x}:{:02x}.{:x},port1=down,guid={:x},forward=3260,gateway={}/24",
                nic.pci.bus,
                nic.pci.device,
                nic.pci.function,
                common::NODE_GUID,
                common::GATEWAY
            );
            println!("== isboot.ko itself: the real FreeBSD module, loaded by kldrun into a Linux process");
            println!("== as FreeBSD's kernel linker would (emulated KPIs: kernel threads, kernel sockets,");
            println!(
                "== a small CAM probing da0 through the module's SIM, root mount holds), the ROM's"
            );
            println!(
                "== table at 0x9e620 of its memory, and the ROM's HCA again: the same simulated"
            );
            println!(
                "== ConnectX at PCI {:02x}:{:02x}.{:x} with node GUID {:#018x}, port 1 without a cable.",
                nic.pci.bus,
                nic.pci.device,
                nic.pci.function,
                common::NODE_GUID
            );
            println!(
                "== No interface carries the table's MAC, so the module opens the HCA with its own"
            );
            println!(
                "== driver, brings IPoIB up on port 2, attaches isbib0 and logs in over it to the"
            );
            println!(
                "== target at the fabric's gateway ({}), which forwards 3260 to tgtd.",
                common::GATEWAY
            );
            let stdout = common::module::kldrun(k, ko, table, &hca)?;
            if timeline.is_some() {
                let module = loader::timeline::module_stages(&stdout, rom_end)?;
                println!("isboot.ko: {}", loader::timeline::summary(&module));
                write_timeline(&module)?;
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
