//! Bring-up of the unmodified driver on the device model.

mod common;

use std::time::Duration;

use hca::hermon::{Config, Hermon};
use hca::verbs::{self, PortNum};
use hca::wire::smp::PortState;
use hca::{Error, Verbs};
use hca_sim::{HcaSpec, PortProtocol, SimConfig, SmConfig};

#[test]
fn both_ports_reach_active_with_lids_from_the_sm() {
    let f = common::fabric(SimConfig::default(), 1);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    assert_eq!(dev.num_ports(), 2);
    assert_eq!(dev.fw_info().fw_pages, 24);
    let p1 = common::active(&mut dev, 1);
    let p2 = common::active(&mut dev, 2);
    for (p, n) in [(p1, 1u8), (p2, 2)] {
        assert_eq!(p.state, PortState::ACTIVE);
        assert_eq!(p.port, PortNum(n));
        assert_eq!(p.sm_lid.0, 1);
        assert_ne!(p.lid.0, 0);
        assert_eq!(p.pkey(), 0xffff);
        assert_eq!(p.gid.prefix(), 0xfe80_0000_0000_0000);
        assert_eq!(p.port_guid.to_u64(), 0x0002_c903_0000_1000 + u64::from(n));
        assert_eq!(p.node_guid.to_u64(), 0x0002_c903_0000_1000);
        assert_eq!(p.mtu, 4);
    }
    assert_ne!(p1.lid, p2.lid);
    let c = f.sim.counters(f.nodes[0]);
    assert_eq!(c.misuse, 0, "{c:?}");
    assert_eq!(c.command_errors, 0, "{c:?}");
    assert_eq!(c.resets, 1);
    assert!(c.mad_ifc >= 8);
    assert!(f.sim.stats().activations >= 2);
}

#[test]
fn probe_picks_hermon_by_pci_id_and_rejects_others() {
    let f = common::fabric(SimConfig::default(), 1);
    let mut dev = hca::probe(f.sim.hal(f.nodes[0]), Config::default()).expect("probe");
    assert_eq!(dev.num_ports(), 2);
    dev.open_port(PortNum(1)).unwrap();
    let a = verbs::wait_port_active(dev.as_mut(), PortNum(1), Duration::from_secs(30)).unwrap();
    assert_eq!(a.state, PortState::ACTIVE);

    let sim = hca_sim::Sim::new(SimConfig::default());
    let mut spec = HcaSpec::connectx(1, 1);
    spec.device_id = 0x6282; // InfiniHost III Ex: arbel-class, no driver yet
    let n = sim.add_hca(spec);
    match hca::probe(sim.hal(n), Config::default()) {
        Err(Error::Unsupported {
            vendor: 0x15b3,
            device: 0x6282,
        }) => {}
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(_) => panic!("arbel device accepted"),
    }
}

#[test]
fn single_port_hca_comes_up_and_rejects_port_two() {
    let sim = hca_sim::Sim::new(SimConfig::default());
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let n = sim.add_hca(HcaSpec::connectx(0x42_0000, 1));
    sim.connect(n, 1, sw);
    let mut dev = common::open(&sim, n);
    assert_eq!(dev.num_ports(), 1);
    let a = common::active(&mut dev, 1);
    assert_eq!(a.state, PortState::ACTIVE);
    assert_eq!(dev.open_port(PortNum(2)), Err(Error::InvalidArgument));
}

#[test]
fn no_sm_leaves_port_init_and_the_bounded_wait_says_so() {
    let cfg = SimConfig {
        sm: SmConfig {
            present: false,
            ..SmConfig::default()
        },
        ..SimConfig::default()
    };
    let f = common::fabric(cfg, 1);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    dev.open_port(PortNum(1)).unwrap();
    let start = dev.now();
    let err = verbs::wait_port_active(&mut dev, PortNum(1), Duration::from_secs(15)).unwrap_err();
    assert_eq!(
        err,
        Error::PortNotActive {
            port: PortNum(1),
            state: PortState::INIT
        }
    );
    assert!(err.to_string().contains("no subnet manager"), "{err}");
    let waited = dev.now().saturating_since(start);
    assert!(
        waited >= Duration::from_secs(15) && waited < Duration::from_secs(16),
        "{waited:?}"
    );
}

#[test]
fn late_sm_brings_the_port_up_within_the_wait() {
    let cfg = SimConfig {
        sm: SmConfig {
            start_at_ns: 8_000_000_000,
            ..SmConfig::default()
        },
        ..SimConfig::default()
    };
    let f = common::fabric(cfg, 1);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    dev.open_port(PortNum(1)).unwrap();
    let a = verbs::wait_port_active(&mut dev, PortNum(1), Duration::from_secs(15)).unwrap();
    assert_eq!(a.state, PortState::ACTIVE);
    assert!(f.sim.now() >= Duration::from_secs(8));
}

#[test]
fn unplugged_port_stays_down() {
    let sim = hca_sim::Sim::new(SimConfig::default());
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let n = sim.add_hca(HcaSpec::connectx(0x77_0000, 2));
    sim.connect(n, 1, sw);
    let mut dev = common::open(&sim, n);
    dev.open_port(PortNum(2)).unwrap();
    let err = verbs::wait_port_active(&mut dev, PortNum(2), Duration::from_secs(3)).unwrap_err();
    assert_eq!(
        err,
        Error::PortNotActive {
            port: PortNum(2),
            state: PortState::DOWN
        }
    );
    // Port 1 on the same HCA still works.
    assert_eq!(common::active(&mut dev, 1).state, PortState::ACTIVE);
}

#[test]
fn uar_mapping_of_128_pages_is_refused() {
    let sim = hca_sim::Sim::new(SimConfig::default());
    let mut spec = HcaSpec::connectx(5, 2);
    spec.uar_bar_len = 128 * 4096;
    let n = sim.add_hca(spec);
    let err = Hermon::open(sim.hal(n), Config::default()).unwrap_err();
    assert_eq!(
        err,
        Error::BarTooSmall {
            bar: 2,
            needed: 129 * 4096
        }
    );
}

#[test]
fn without_post_reset_delay_the_first_command_times_out() {
    let f = common::fabric(SimConfig::default(), 1);
    let cfg = Config {
        post_reset_delay: Duration::ZERO,
        cmd_timeout: Duration::from_secs(2),
    };
    let err = Hermon::open(f.sim.hal(f.nodes[0]), cfg).unwrap_err();
    assert_eq!(err, Error::CmdTimeout(hca::hermon::cmd::Opcode::QUERY_FW));
    // With the delay the same device comes up.
    let mut dev = Hermon::open(f.sim.hal(f.nodes[0]), Config::default()).unwrap();
    assert_eq!(common::active(&mut dev, 1).state, PortState::ACTIVE);
}

#[test]
fn port_state_is_found_by_polling_when_the_firmware_sends_no_events() {
    let f = common::fabric(SimConfig::default(), 1);
    f.sim.suppress_events(f.nodes[0], true);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    dev.open_port(PortNum(2)).unwrap();
    let a = verbs::wait_port_active(&mut dev, PortNum(2), Duration::from_secs(15)).unwrap();
    assert_eq!(a.state, PortState::ACTIVE);
    assert_eq!(dev.poll_event().unwrap(), None);
    assert_eq!(f.sim.counters(f.nodes[0]).eqes, 0);
}

#[test]
fn active_event_is_delivered_for_the_right_port() {
    let f = common::fabric(SimConfig::default(), 1);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    dev.open_port(PortNum(2)).unwrap();
    let mut seen = None;
    for _ in 0..2000 {
        dev.delay(Duration::from_millis(1));
        if let Some(e) = dev.poll_event().unwrap() {
            seen = Some(e);
            break;
        }
    }
    assert_eq!(
        seen,
        Some(hca::verbs::Event::PortStateChange {
            port: PortNum(2),
            up: true
        })
    );
    assert_eq!(dev.query_port(PortNum(1)).unwrap().state, PortState::DOWN);
}

#[test]
fn special_qps_follow_the_conf_special_qp_numbering() {
    let f = common::fabric(SimConfig::default(), 1);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    dev.open_port(PortNum(1)).unwrap();
    dev.open_port(PortNum(2)).unwrap();
    // Reserved QPs 64 -> base 64: QP0 = base + port - 1, QP1 = base + 2 + port - 1.
    let (s1, g1) = dev.special_qpns(PortNum(1)).unwrap();
    let (s2, g2) = dev.special_qpns(PortNum(2)).unwrap();
    assert_eq!((s1.0, g1.0, s2.0, g2.0), (64, 66, 65, 67));
}

#[test]
fn a_vpi_port_configured_as_ethernet_is_reported_not_mistaken_for_ib() {
    let sim = hca_sim::Sim::new(SimConfig::default());
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let mut spec = HcaSpec::connectx3(0x33_0000, 2);
    spec.port_protocols = [PortProtocol::Vpi, PortProtocol::Ethernet];
    let n = sim.add_hca(spec);
    sim.connect(n, 1, sw);
    sim.connect(n, 2, sw);
    let mut dev = common::open(&sim, n);
    let err = dev.open_port(PortNum(2)).unwrap_err();
    assert_eq!(err, Error::PortIsEthernet { port: PortNum(2) });
    assert_eq!(
        err.to_string(),
        "port 2 is configured as Ethernet (VPI), not InfiniBand"
    );
    // The Ethernet port got no IB command; the VPI port (both types supported) runs IB.
    assert_eq!(common::active(&mut dev, 1).state, PortState::ACTIVE);
    assert!(!sim.port(n, 2).initialised);
    let c = sim.counters(n);
    assert_eq!((c.misuse, c.command_errors), (0, 0), "{c:?}");
}

#[test]
fn a_connectx3_reports_its_firmware_and_board_id() {
    let sim = hca_sim::Sim::new(SimConfig::default());
    let n = sim.add_hca(HcaSpec::connectx3(0x44_0000, 2));
    let dev = common::open(&sim, n);
    let fw = dev.fw_info();
    assert_eq!((fw.major, fw.minor, fw.subminor), (2, 42, 5000));
    assert_eq!(fw.cmd_interface_rev, 3);
    assert_eq!(dev.adapter_info().psid_str(), "MT_1090120019");
    // The ConnectX-2 spec has no public PSID: the model reports none.
    let m = sim.add_hca(HcaSpec::connectx(0x45_0000, 1));
    let dev = common::open(&sim, m);
    assert_eq!(dev.adapter_info().psid_str(), "");
    assert_eq!(dev.fw_info().subminor, 1200);
}

#[test]
fn old_firmware_without_query_port_runs_its_ports_as_ib() {
    let sim = hca_sim::Sim::new(SimConfig::default());
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let mut spec = HcaSpec::connectx(0x46_0000, 1);
    spec.cmd_if_rev = 2;
    let n = sim.add_hca(spec);
    sim.connect(n, 1, sw);
    let mut dev = common::open(&sim, n);
    assert_eq!(common::active(&mut dev, 1).state, PortState::ACTIVE);
    assert_eq!(sim.counters(n).misuse, 0);
    // A revision Linux refuses is refused.
    let mut spec = HcaSpec::connectx(0x47_0000, 1);
    spec.cmd_if_rev = 4;
    let m = sim.add_hca(spec);
    assert_eq!(
        Hermon::open(sim.hal(m), Config::default()).unwrap_err(),
        Error::BadDevice
    );
}
