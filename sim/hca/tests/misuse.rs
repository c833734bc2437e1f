//! The model as "the other side" of a buggy driver: it warns, fails the command or drops the
//! work, counts it, and never panics.

use std::time::Duration;

use hca::hal::{Bar, Dma, DmaDirection, Hal};
use hca::hermon::cmd::{FwStatus, Opcode};
use hca::hermon::regs::{self, HcrCtrl};
use hca_sim::{HcaSpec, Sim, SimConfig, SimHal};

fn device() -> (Sim, SimHal) {
    let sim = Sim::new(SimConfig::default());
    let n = sim.add_hca(HcaSpec::connectx(9, 2));
    let hal = sim.hal(n);
    (sim, hal)
}

/// Issues a raw command and waits for it; returns the status byte, or None if it never
/// completed within 1 s.
fn raw_cmd(
    hal: &SimHal,
    op: Opcode,
    in_param: u64,
    in_mod: u32,
    out_param: u64,
    toggle: bool,
) -> Option<u8> {
    let base = regs::HCR_BASE;
    for (i, v) in [
        (in_param >> 32) as u32,
        in_param as u32,
        in_mod,
        (out_param >> 32) as u32,
        out_param as u32,
        0,
    ]
    .into_iter()
    .enumerate()
    {
        regs::write_be(hal, Bar::BAR0, base + 4 * i, v);
    }
    HcrCtrl::command(op.0, 0, toggle).write(hal);
    for _ in 0..1000 {
        hal.delay(Duration::from_millis(1));
        let c = HcrCtrl::read(hal);
        if !c.go() {
            return Some(c.status());
        }
    }
    None
}

#[test]
fn out_of_order_commands_fail_with_bad_sys_state() {
    let (sim, hal) = device();
    let out = Dma::new(&hal, 1, DmaDirection::FromDevice).unwrap();
    // RUN_FW before MAP_FA.
    assert_eq!(
        raw_cmd(&hal, Opcode::RUN_FW, 0, 0, 0, true),
        Some(FwStatus::BAD_SYS_STATE.0)
    );
    // QUERY_DEV_CAP before the firmware runs.
    assert_eq!(
        raw_cmd(&hal, Opcode::QUERY_DEV_CAP, 0, 0, out.paddr(), false),
        Some(FwStatus::BAD_SYS_STATE.0)
    );
    // SW2HW_CQ before INIT_HCA.
    assert_eq!(
        raw_cmd(&hal, Opcode::SW2HW_CQ, out.paddr(), 128, 0, true),
        Some(FwStatus::BAD_SYS_STATE.0)
    );
    let c = sim.counters(0);
    assert_eq!(c.misuse, 3);
    assert_eq!(c.command_errors, 3);
}

#[test]
fn mailbox_outside_host_memory_is_refused() {
    let (sim, hal) = device();
    assert_eq!(
        raw_cmd(&hal, Opcode::QUERY_FW, 0, 0, 0xdead_0000, true),
        Some(FwStatus::BAD_PARAM.0)
    );
    assert_eq!(sim.counters(0).dma_faults, 1);
}

#[test]
fn writing_the_hcr_while_busy_and_stray_doorbells_are_counted() {
    let (sim, hal) = device();
    sim.hang_firmware(0, true);
    assert_eq!(raw_cmd(&hal, Opcode::QUERY_FW, 0, 0, 0, true), None);
    HcrCtrl::command(Opcode::QUERY_FW.0, 0, false).write(&hal);
    // Send doorbell for a QP that does not exist, and a write past the mapped BAR.
    regs::write_be(&hal, Bar::BAR2, regs::send_doorbell_offset(), 0x1234 << 8);
    hal.mmio_write32(Bar::BAR2, 64 << 20, 0);
    assert_eq!(hal.mmio_read32(Bar::BAR0, 2 << 20), u32::MAX);
    assert_eq!(sim.counters(0).misuse, 4);
}

#[test]
fn config_space_is_unavailable_during_reset() {
    let (sim, hal) = device();
    assert_eq!(hal.pci_config_read32(0), 0x673c_15b3);
    regs::write_be(&hal, Bar::BAR0, regs::RESET_OFFSET, regs::RESET_MAGIC);
    assert_eq!(hal.pci_config_read32(0), u32::MAX);
    hal.delay(Duration::from_millis(10));
    assert_eq!(hal.pci_config_read32(0), 0x673c_15b3);
    assert_eq!(sim.counters(0).resets, 1);
}

#[test]
fn dma_memory_is_returned_when_the_driver_is_dropped() {
    let sim = Sim::new(SimConfig::default());
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let n = sim.add_hca(HcaSpec::connectx(3, 2));
    sim.connect(n, 1, sw);
    {
        use hca::Verbs;
        let mut dev = hca::hermon::Hermon::open(sim.hal(n), Default::default()).unwrap();
        dev.open_port(hca::verbs::PortNum(1)).unwrap();
        assert!(sim.dma_pages_in_use(n) > 0);
    }
    assert_eq!(sim.dma_pages_in_use(n), 0);
}
