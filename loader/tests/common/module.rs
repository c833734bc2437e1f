//! After the ROM: isboot.ko's boot thread taking the table the ROM left, on the host double of
//! the FreeBSD kernel (`isboot::host_boot`), to a root that mounts.
//!
//! The host double has no HCA driver, so its boot thread reaches the target over an
//! Ethernet-style interface: a veth in this namespace carrying the MAC the iBFT names (the one
//! the ROM derived from port 2's GUID), wired to a second namespace — the target's host,
//! 192.0.2.1 as in the ROM's root path — where a second tgtd serves the same disk image with the
//! same accounts (the module's "existing interface" path). The real `isboot.ko` under kldrun
//! ([`kldrun`]) instead opens its own simulated HCA and boots over IPoIB.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use isboot::boot::{self, BootTunables};
use isboot::host_boot::{HostBoot, HostDisk};
use isboot_tests::lab::{self, Peer};
use isboot_tests::target::Tgtd;

/// What the module's step showed.
#[derive(Debug)]
pub struct ModuleBoot {
    /// `mountroot: da0p2 ufs2 / = …`.
    pub mountroot: String,
    /// `sysctl net.isboot` of the boot thread's state, `name: value` lines.
    pub sysctl: Vec<String>,
}

fn mount(disk: &HostDisk) -> Result<isboot_tests::rootfs::Mounted, String> {
    let (_, bs) = disk.capacity().ok_or("the scan read no capacity")?;
    isboot_tests::rootfs::mountroot_blocks(
        &mut |lba, n| disk.read(lba, n, bs).map_err(|e| e.to_string()),
        bs,
    )
}

/// The target's host: a namespace of its own (192.0.2.1, as in the ROM's root path) wired to a
/// fresh veth `isb0` with `mac` in this one, running tgtd with the demo's disk and accounts.
fn target_host(mac: [u8; 6]) -> Result<(Peer, Tgtd), String> {
    let peer = Peer::start().map_err(|e| format!("the target's namespace: {e}"))?;
    lab::wire(&peer, "isb0", mac, "tgt0", &["192.0.2.1/24"], &[])
        .map_err(|e| format!("wiring: {e}"))?;
    let tgtd = peer
        .run(|| {
            Tgtd::try_start(super::demo_target(SocketAddr::from((
                Ipv4Addr::new(192, 0, 2, 1),
                3260,
            ))))
        })
        .map_err(|e| format!("tgtd: {e}"))?;
    Ok((peer, tgtd))
}

/// Runs the boot thread on `table` (call inside the namespace the ROM ran in), prints its
/// console lines as they come, finds root on the disk it attached (and prints that), logs out.
pub fn boot(table: ibft::Ibft, mac: [u8; 6]) -> Result<ModuleBoot, String> {
    let (_peer, _tgtd) = target_host(mac)?;
    let (mut env, handle) = HostBoot::new(true).map_err(|e| e.to_string())?;
    let t = BootTunables {
        wait_interface: iscsi_initiator::time::Duration::from_secs(10),
        wait_login: iscsi_initiator::time::Duration::from_secs(20),
        ..BootTunables::default()
    };
    let thread = std::thread::spawn(move || boot::run(&mut env, &table, &t));
    let end = StdInstant::now() + StdDuration::from_secs(60);
    while !handle.hold_released() && StdInstant::now() < end {
        std::thread::sleep(StdDuration::from_millis(20));
    }
    let state = handle.state();
    let mounted = if state.device.is_empty() {
        Err(format!("no disk: {}", state.last_error))
    } else {
        mount(&handle.disk).map(|m| {
            format!(
                "mountroot: {}p{} ufs2 / = {}",
                state.device,
                m.partition,
                m.entries.join(",")
            )
        })
    };
    let sysctl = vec![
        format!("net.isboot.device: {}", state.device),
        format!("net.isboot.nic: {}", state.nic),
        format!("net.isboot.target: {}", state.target),
        format!("net.isboot.session_state: {}", state.session_state),
        format!("net.isboot.reconnects: {}", state.reconnects),
        format!("net.isboot.last_error: {}", state.last_error),
    ];
    if let Ok(line) = &mounted {
        println!("{line}");
    }
    handle.stop();
    let _ = thread.join();
    Ok(ModuleBoot {
        mountroot: mounted?,
        sysctl,
    })
}

/// The real `isboot.ko` under kldrun (`kmod/harness`), with the iBFT the ROM left placed at
/// 0x9e620 of its physical memory (`table_file`) and its own HCA: `hca` is kldrun's `--hca`
/// spec (the ROM's ConnectX at the PCI function and with the node GUID the table names, port 1
/// without a cable, a fabric whose gateway is the target's address and forwards its port to
/// tgtd on this namespace's loopback, where [`super::servers`] runs it). No interface of this
/// namespace carries the table's MAC, so the module takes its native path: it opens the HCA,
/// brings IPoIB up and attaches `isbib0`. Prints kldrun's command line, console and own lines;
/// `Err` unless it exits 0 with a `mountroot:` line, else kldrun's whole stdout (the console
/// and the `--sysctl` lines, `net.isboot.timing.*` among them).
pub fn kldrun(kldrun: &str, ko: &str, table_file: &str, hca: &str) -> Result<String, String> {
    let args = [
        "--phys".to_string(),
        format!("0x9e620={table_file}"),
        "--hca".into(),
        hca.into(),
        "--mountroot".into(),
        "--sysctl".into(),
        "net.isboot".into(),
        "--sysctl".into(),
        "hw.ibft".into(),
        ko.into(),
    ];
    println!("$ kldrun {}", args.join(" "));
    let out = std::process::Command::new(kldrun)
        .args(&args)
        .output()
        .map_err(|e| format!("{kldrun}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    print!("{}", String::from_utf8_lossy(&out.stderr));
    let mountroot = stdout
        .lines()
        .find(|l| l.starts_with("mountroot: "))
        .map(str::to_string);
    match (out.status.success(), mountroot) {
        (true, Some(_)) => Ok(stdout.into_owned()),
        (ok, m) => Err(format!(
            "kldrun {}: {}",
            out.status,
            if ok && m.is_none() {
                "no mountroot line"
            } else {
                "failed"
            }
        )),
    }
}
