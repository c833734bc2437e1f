//! The real `isboot.ko` and `kldrun --hca`: with no interface matching the iBFT NIC, the
//! module's own driver finds the PCI function the table names, maps its BARs (every access
//! faulting into the simulated ConnectX), brings it up with busdma memory the device model
//! reads and writes, reports its ports — port 1 without a cable DOWN, port 2 ACTIVE once the
//! subnet manager swept it — brings its IPoIB link up on the first port that can carry it and
//! attaches `isbib0` over it; unload detaches it and closes the HCA, leaving nothing behind. A
//! function another driver owns is refused without a single access; a table naming a function
//! that is not there gets one clear line.
//!
//! The `nochap` table's target (10.0.2.2) is not on the simulated fabric, so the login fails
//! after `net.isboot.wait_login` and kldrun's mountroot finds no disk: exit 1, by design (the
//! boot through the fabric is `native_boot.rs`). Each run is in a fresh network namespace:
//! the interface is a TUN there.

mod common;

use common::{isboot_ko, kldrun, scratch, Run};
use std::path::PathBuf;

const GUID: u64 = 0x0002_c903_0000_abc0;

/// The `nochap` table with its NIC at PCI 0x81:00.0 (pci0:129:0:0), written to a file.
fn table_at_81(name: &str) -> PathBuf {
    let mut t = ibft::parse(&isboot_tests::fixtures::ibft("nochap"))
        .expect("the nochap fixture")
        .table;
    t.nics[0].pci = ibft::PciAddress {
        bus: 0x81,
        device: 0,
        function: 0,
    };
    let f = scratch(name).join("ibft.bin");
    std::fs::write(&f, ibft::build(&t).expect("build")).expect("write the table");
    f
}

fn run(name: &str, hca: &str) -> Run {
    run_with(name, hca, &[])
}

fn run_with(name: &str, hca: &str, extra: &[&str]) -> Run {
    let table = table_at_81(name);
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend([
        "--preload".to_string(),
        format!("ibft_table={}", table.display()),
        "--hca".into(),
        hca.into(),
        "--tunable".into(),
        "net.isboot.wait_interface=1".into(),
        "--tunable".into(),
        "net.isboot.wait_login=1".into(),
        "--mountroot".into(),
        "--timeout".into(),
        "60".into(),
        isboot_ko().display().to_string(),
    ]);
    let r = isboot_tests::netns::run(move || kldrun(&args))
        .expect("a network namespace (the test needs root)");
    if extra.is_empty() {
        eprintln!("{}", r.all());
    }
    r
}

/// The counters kldrun prints for the HCA: (MMIO reads, MMIO writes, config accesses, syncs).
fn counters(r: &Run) -> (u64, u64, u64, u64) {
    let l = r
        .stderr
        .lines()
        .find(|l| l.starts_with("kldrun: hca pci0:"))
        .unwrap_or_else(|| panic!("no hca summary\n{}", r.all()));
    let n: Vec<u64> = l
        .split(": ")
        .nth(2)
        .expect("counts")
        .split(", ")
        .map(|p| p.split(' ').next().unwrap().parse().unwrap())
        .collect();
    (n[0], n[1], n[2], n[3])
}

/// Exit 1 only because no disk came (no interface is there to boot from), nothing left behind.
fn ended_without_a_disk_and_clean(r: &Run) {
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("kldrun: mountroot: no disk"),
        "{}",
        r.all()
    );
    assert!(r.clean(), "{}", r.all());
    assert!(
        !r.stderr.contains("page fault") && !r.stderr.contains("panic"),
        "{}",
        r.all()
    );
}

#[test]
fn the_module_opens_the_simulated_hca_reports_its_ports_and_closes_it() {
    let r = run("hca-open", &format!("81:00.0,port1=down,guid={GUID:x}"));
    isboot_tests::assert_in_order(
        &r.stdout,
        &[
            "isboot: pci0:129:0:0: MT26428 ConnectX IB QDR PCIe 2.0 5GT/s (15b3:673c), no driver \
             attached: opening it",
            "isboot: pci0:129:0:0: HCA up: firmware 2.9.1200, 2 port(s)",
            &format!(
                "isboot: pci0:129:0:0: port 1: DOWN, LID 0x0, port GUID {:016x}",
                GUID + 1
            ),
            "isboot: pci0:129:0:0: port 2: ACTIVE, LID 0x",
            &format!("port GUID {:016x}", GUID + 2),
            // The table's MAC is no port's: the ports in order; port 1 (no cable) is waited
            // for (bounded by what is left of wait_interface) and skipped.
            "isboot: pci0:129:0:0: the iBFT NIC (MAC 52:54:00:9a:bc:de) is no port of this HCA",
            "isboot: IPoIB: port 1 stays DOWN: no physical link (cable, switch port, or the peer \
             is off): port skipped",
            "isboot: IPoIB: port 2 up: LID 0x",
            "isbib0: IPoIB interface on port 2, MTU 2044",
            "isboot: boot interface isbib0 (MAC 52:54:00:9a:bc:de, PCI 129:0:0)",
            "isboot: isbib0: added 10.0.2.15/24 from the iBFT",
            "isboot: giving up; releasing the root mount hold",
            "isboot: IPoIB: port 2: left the broadcast group, device closed",
            "isbib0: detached",
        ],
    );
    let (reads, writes, config, syncs) = counters(&r);
    // QUERY_FW and the rest went through the HCR: decoded MMIO both ways, config space saved
    // and restored around the reset, DMA synced around every command.
    assert!(reads > 50 && writes > 50, "{reads} reads, {writes} writes");
    assert!(config >= 64, "{config} config accesses");
    assert!(syncs > 50, "{syncs} syncs");
    ended_without_a_disk_and_clean(&r);
}

#[test]
fn both_ports_cabled_both_come_up() {
    let r = run("hca-both", "81:00.0");
    assert!(
        r.stdout.contains("port 1: ACTIVE") && r.stdout.contains("port 2: ACTIVE"),
        "{}",
        r.all()
    );
    // No preferred port (the table's MAC is no port's): port 1 carries the interface.
    assert!(
        r.stdout
            .contains("isbib0: IPoIB interface on port 1, MTU 2044"),
        "{}",
        r.all()
    );
    ended_without_a_disk_and_clean(&r);
}

#[test]
fn a_fabric_that_loses_everything_leaves_the_cabled_port_in_init() {
    // loss=100: the link trains, but no SMP of the subnet manager reaches the port; the report
    // comes after the bounded wait (net.isboot.wait_interface, 1 s here) with what it saw.
    let r = run("hca-loss", "81:00.0,port1=down,loss=100");
    assert!(r.stdout.contains("port 1: DOWN"), "{}", r.all());
    assert!(r.stdout.contains("port 2: INIT, LID 0x0"), "{}", r.all());
    assert!(
        r.stdout.contains("isboot: IPoIB: no port came up: "),
        "{}",
        r.all()
    );
    ended_without_a_disk_and_clean(&r);
}

#[test]
fn a_function_another_driver_owns_is_refused_without_touching_it() {
    let r = run("hca-owned", "81:00.0,owner=mlx4_core0");
    assert!(
        r.stdout.lines().any(|l| {
            l
            == "isboot: pci0:129:0:0 is owned by mlx4_core0; using the existing interface path only"
        }),
        "{}",
        r.all()
    );
    assert!(!r.stdout.contains("opening it"), "{}", r.all());
    assert_eq!(counters(&r), (0, 0, 0, 0), "{}", r.all());
    ended_without_a_disk_and_clean(&r);
}

#[test]
fn a_table_naming_another_function_gets_a_clear_line() {
    let r = run("hca-elsewhere", "82:00.0");
    assert!(
        r.stdout.lines().any(|l| {
            l
            == "isboot: pci0:129:0:0: no such PCI function (the iBFT NIC's); no native HCA to open"
        }),
        "{}",
        r.all()
    );
    assert_eq!(counters(&r), (0, 0, 0, 0), "{}", r.all());
    ended_without_a_disk_and_clean(&r);
}

#[test]
fn verbose_mode_shows_each_pci_bar_and_dma_call() {
    let r = run_with("hca-verbose", "81:00.0,port1=down", &["-v"]);
    isboot_tests::assert_in_order(
        &r.stderr,
        &[
            "kldrun: hca: pci_find_dbsf(0, 129, 0, 0) = the simulated HCA",
            "kldrun: hca: pci_read_config(reg 0x0, width 4) = 0x673c15b3",
            "kldrun: hca: bus_alloc_resource(BAR0)",
            "kldrun: hca: bus_alloc_resource(BAR2)",
            "kldrun: hca: pci_enable_busmaster",
            "kldrun: hca: bus_dma_tag_create(align 0x1000",
            "kldrun: hca: bus_dmamem_alloc(",
            "kldrun: hca: bus_dmamap_load(",
            "kldrun: hca: bus_dmamem_free(",
            "kldrun: hca: bus_dma_tag_destroy(",
            "kldrun: hca: bus_release_resource(BAR0) = 0",
            "kldrun: hca: bus_release_resource(BAR2) = 0",
        ],
    );
    assert!(
        r.clean(),
        "{}",
        r.stderr
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn bad_hca_options_are_usage_errors() {
    for bad in ["81:00", "81:00.0,loss=200", "81:00.0,colour=blue"] {
        let r = kldrun(&["--hca", bad, "x.ko"]);
        assert_eq!(r.code, 2, "{bad}: {}", r.all());
        assert!(r.stderr.contains("--hca wants"), "{bad}: {}", r.all());
    }
}
