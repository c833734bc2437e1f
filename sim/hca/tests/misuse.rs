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

mod common;

use common::Raw;
use hca::hermon::cmd::Hw2SwMpt;
use hca::verbs::{AddressHandle, CompletionKind, PortNum, UdQpAttr, WcStatus};
use hca::{Error, Verbs};
use hca_sim::prm;

const SW2HW_CQ: u16 = prm::op::SW2HW_CQ;
const HW2SW_CQ: u16 = prm::op::HW2SW_CQ;
const WRITE_MTT: u16 = prm::op::WRITE_MTT;
const SW2HW_MPT: u16 = prm::op::SW2HW_MPT;

fn firmware(opcode: u16, status: u8) -> Error {
    Error::Firmware {
        opcode: Opcode(opcode),
        status: FwStatus(status),
    }
}

/// A CQ context encoded with the model's layout: a 16-entry ring at MTT byte offset `mtt`,
/// UAR page 128, completion events to `eqn`, doorbell record at `db`.
fn cq_context(mtt: u64, eqn: u32, db: u64) -> Vec<u8> {
    use prm::cqc::*;
    let mut b = vec![0u8; SIZE];
    LOG_SIZE.put(&mut b, 4);
    USR_PAGE.put(&mut b, 128);
    COMP_EQN.put(&mut b, u64::from(eqn));
    MTT_BASE_ADDR_H.put(&mut b, mtt >> 32);
    MTT_BASE_ADDR_L.put_in_place(&mut b, mtt & 0xffff_ffff);
    DB_REC_ADDR.put_in_place(&mut b, db);
    b
}

#[test]
fn a_cq_bound_to_an_eq_that_does_not_exist_is_refused_at_sw2hw_cq() {
    let f = common::fabric(SimConfig::default(), 1);
    let hal = f.sim.hal(f.nodes[0]);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    let ring = Dma::new(&hal, 1, DmaDirection::Both).unwrap();
    let db = Dma::new(&hal, 1, DmaDirection::Both).unwrap();
    // One MTT entry, well above the driver's bump allocator, for the ring page.
    let mtt = 1000 * u64::from(dev.caps().mtt_sz);
    let mut w = vec![0u8; 24];
    prm::write_mtt::MTT_BASE.put(&mut w, mtt);
    prm::write_mtt::page(0).put_in_place(&mut w, ring.paddr());
    prm::write_mtt::present(0).put(&mut w, 1);
    let write = Raw::<WRITE_MTT, false> {
        in_mod: 1,
        input: Some(w),
        ..Raw::default()
    };
    dev.exec(&write).unwrap();
    let cqn = dev.caps().rsvd_cqs + 20;
    let good = Raw::<SW2HW_CQ, false> {
        in_mod: cqn,
        input: Some(cq_context(mtt, dev.eqn(), db.paddr())),
        ..Raw::default()
    };
    dev.exec(&good)
        .expect("a CQ on the driver's EQ is accepted");
    let misuse = f.sim.counters(f.nodes[0]).misuse;
    let bad = Raw::<SW2HW_CQ, false> {
        in_mod: cqn + 1,
        input: Some(cq_context(mtt, dev.eqn() + 1, db.paddr() + 8)),
        ..Raw::default()
    };
    assert_eq!(
        dev.exec(&bad).unwrap_err(),
        firmware(SW2HW_CQ, FwStatus::BAD_PARAM.0)
    );
    assert_eq!(f.sim.counters(f.nodes[0]).misuse, misuse + 1);
}

#[test]
fn hw2sw_cq_without_an_output_mailbox_is_refused() {
    let f = common::fabric(SimConfig::default(), 1);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    let cq = dev.create_cq(8).unwrap();
    let cqn = dev.cq_num(cq).unwrap();
    // op_mod 0 asks for the context in the output mailbox; there is none (address 0).
    let no_mailbox = Raw::<HW2SW_CQ, false> {
        in_mod: cqn,
        ..Raw::default()
    };
    assert_eq!(
        dev.exec(&no_mailbox).unwrap_err(),
        firmware(HW2SW_CQ, FwStatus::BAD_PARAM.0)
    );
    // The CQ is still the hardware's: the driver's HW2SW_CQ (op_mod 0 and a mailbox) takes it
    // back, and a second time there is nothing to take.
    dev.destroy_cq(cq).unwrap();
    let again = Raw::<HW2SW_CQ, true> {
        in_mod: cqn,
        ..Raw::default()
    };
    assert_eq!(
        dev.exec(&again).unwrap_err(),
        firmware(HW2SW_CQ, FwStatus::BAD_RES_STATE.0)
    );
    // op_mod 1 means "no mailbox" (Linux `mlx4_HW2SW_CQ`).
    let cq = dev.create_cq(8).unwrap();
    let bare = Raw::<HW2SW_CQ, false> {
        op_mod: 1,
        in_mod: dev.cq_num(cq).unwrap(),
        ..Raw::default()
    };
    dev.exec(&bare).unwrap();
}

/// The driver's MPT again, with local write as given: a region, physical, local read, the
/// driver's key and PD, length bit 64.
fn mpt(dev: &hca::hermon::Hermon<SimHal>, local_write: bool) -> Vec<u8> {
    use prm::mpt::*;
    let mut b = vec![0u8; SIZE];
    for l in [FLAG_REGION, FLAG_PHYSICAL, PERM_LOCAL_READ, LEN64] {
        l.put(&mut b, 1);
    }
    PERM_LOCAL_WRITE.put(&mut b, u64::from(local_write));
    KEY.put(&mut b, u64::from(dev.lkey().rotate_right(8)));
    PD.put(&mut b, u64::from(hca::hermon::GLOBAL_PD));
    b
}

#[test]
fn a_receive_into_a_region_without_local_write_completes_with_a_protection_error() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut eps = Vec::new();
    for &n in &f.nodes {
        let mut dev = common::open(&f.sim, n);
        let attr = common::active(&mut dev, 1);
        let cq = dev.create_cq(32).unwrap();
        let qp = dev
            .create_ud_qp(&UdQpAttr {
                port: PortNum(1),
                send_cq: cq,
                recv_cq: cq,
                send_slots: 8,
                recv_slots: 8,
                qkey: Some(0x0b1b),
            })
            .unwrap();
        eps.push((dev, attr, cq, qp));
    }
    let (mut a, b) = (eps.remove(0), eps.remove(0));
    let (mut b_dev, b_attr, b_cq, b_qp) = b;
    let index = a.0.caps().rsvd_mrws;
    let replace = |dev: &mut hca::hermon::Hermon<SimHal>, local_write: bool| {
        dev.exec(&Hw2SwMpt(index)).unwrap();
        let m = Raw::<SW2HW_MPT, false> {
            in_mod: index,
            input: Some(mpt(dev, local_write)),
            ..Raw::default()
        };
        dev.exec(&m).unwrap();
    };
    replace(&mut a.0, false);
    let ah_a = AddressHandle::unicast(a.1.lid, 0, a.0.qp_num(a.3).unwrap(), 0x0b1b);
    let ah_b = AddressHandle::unicast(b_attr.lid, 0, b_dev.qp_num(b_qp).unwrap(), 0x0b1b);
    let mut buf = [0u8; 64];
    let mut wait = |dev: &mut hca::hermon::Hermon<SimHal>, cq, kind| {
        for _ in 0..100 {
            dev.delay(Duration::from_micros(100));
            while let Some(c) = dev.poll_cq(cq, &mut buf).unwrap() {
                if c.kind == kind {
                    return c;
                }
            }
        }
        panic!("no {kind:?} completion");
    };
    // Gathering needs local read only: a's sends still go out.
    a.0.post_send(a.3, &ah_b, b"out").unwrap();
    let c = wait(&mut b_dev, b_cq, CompletionKind::Recv);
    assert_eq!(c.status, WcStatus::SUCCESS);
    // Scattering a received packet needs local write: a protection error.
    b_dev.post_send(b_qp, &ah_a, b"in").unwrap();
    let c = wait(&mut a.0, a.2, CompletionKind::Recv);
    assert_eq!(c.status, WcStatus::LOCAL_PROTECTION);
    // With local write back, the next one lands.
    replace(&mut a.0, true);
    b_dev.post_send(b_qp, &ah_a, b"in").unwrap();
    let c = wait(&mut a.0, a.2, CompletionKind::Recv);
    assert_eq!(c.status, WcStatus::SUCCESS);
    assert_eq!(c.byte_len, 2);
}

#[test]
fn a_send_doorbell_on_a_uar_page_the_qp_does_not_name_is_not_taken() {
    let f = common::fabric(SimConfig::default(), 2);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    common::active(&mut dev, 1);
    let cq = dev.create_cq(8).unwrap();
    let qp = dev
        .create_ud_qp(&UdQpAttr {
            port: PortNum(1),
            send_cq: cq,
            recv_cq: cq,
            send_slots: 8,
            recv_slots: 8,
            qkey: Some(0x0b1b),
        })
        .unwrap();
    let qpn = dev.qp_num(qp).unwrap().0;
    let hal = f.sim.hal(f.nodes[0]);
    let before = f.sim.counters(f.nodes[0]);
    // The QP's context names UAR page 128; page 129 is a valid page but not its page.
    regs::write_be(
        &hal,
        Bar::BAR2,
        129 * regs::UAR_PAGE + regs::SEND_DB_OFFSET,
        qpn << 8,
    );
    let after = f.sim.counters(f.nodes[0]);
    assert_eq!(after.misuse, before.misuse + 1);
    assert_eq!(after.wqes, before.wqes);
}

const RST2INIT_QP: u16 = prm::op::RST2INIT_QP;

/// A UD QP context encoded with the model's layout: 8 send WQEs of 128 bytes, 8 receive WQEs of
/// 32, UAR page 128, port 1, the given CQs, MTT byte offset and doorbell record.
fn qp_context(mtt: u64, send_cq: u32, recv_cq: u32, db: u64) -> Vec<u8> {
    use prm::qpc::*;
    let mut b = vec![0u8; SIZE];
    ST.put(&mut b, ST_UD);
    PM_STATE.put(&mut b, 3);
    PD.put(&mut b, u64::from(hca::hermon::GLOBAL_PD));
    SQ_SIZE.put(&mut b, 3);
    SQ_STRIDE.put(&mut b, 3);
    RQ_SIZE.put(&mut b, 3);
    RQ_STRIDE.put(&mut b, 1);
    USR_PAGE.put(&mut b, 128);
    SCHED_QUEUE.put(&mut b, 0x83);
    CQN_SEND.put(&mut b, u64::from(send_cq));
    CQN_RECV.put(&mut b, u64::from(recv_cq));
    DB_REC_ADDR.put_in_place(&mut b, db);
    MTT_BASE_ADDR_H.put(&mut b, mtt >> 32);
    MTT_BASE_ADDR_L.put_in_place(&mut b, mtt & 0xffff_ffff);
    b
}

#[test]
fn a_qp_bound_to_a_cq_that_does_not_exist_is_refused_at_rst2init() {
    let f = common::fabric(SimConfig::default(), 1);
    let hal = f.sim.hal(f.nodes[0]);
    let mut dev = common::open(&f.sim, f.nodes[0]);
    dev.open_port(PortNum(1)).unwrap();
    let ring = Dma::new(&hal, 2, DmaDirection::Both).unwrap();
    let db = Dma::new(&hal, 1, DmaDirection::Both).unwrap();
    let mtt = 1000 * u64::from(dev.caps().mtt_sz);
    let mut w = vec![0u8; 24];
    prm::write_mtt::MTT_BASE.put(&mut w, mtt);
    prm::write_mtt::page(0).put_in_place(&mut w, ring.paddr());
    prm::write_mtt::present(0).put(&mut w, 1);
    dev.exec(&Raw::<WRITE_MTT, false> {
        in_mod: 1,
        input: Some(w),
        ..Raw::default()
    })
    .unwrap();
    let cq = dev.create_cq(8).unwrap();
    let cqn = dev.cq_num(cq).unwrap();
    // Ordinary QPNs start 8 above the special QPs' base (the reserved QPs rounded up to 8).
    let base = dev.caps().rsvd_qps.div_ceil(8) * 8 + 8;
    let good = Raw::<RST2INIT_QP, false> {
        in_mod: base + 20,
        input: Some(qp_context(mtt, cqn, cqn, db.paddr())),
        ..Raw::default()
    };
    dev.exec(&good).expect("a QP on existing CQs is accepted");
    let misuse = f.sim.counters(f.nodes[0]).misuse;
    let bad = Raw::<RST2INIT_QP, false> {
        in_mod: base + 21,
        input: Some(qp_context(mtt, cqn, cqn + 7, db.paddr() + 8)),
        ..Raw::default()
    };
    assert_eq!(
        dev.exec(&bad).unwrap_err(),
        firmware(RST2INIT_QP, FwStatus::BAD_PARAM.0)
    );
    assert_eq!(f.sim.counters(f.nodes[0]).misuse, misuse + 1);
}
