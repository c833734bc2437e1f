//! Demo: two simulated ConnectX HCAs on one switch with a subnet manager. The unmodified
//! driver brings each up, waits for the SM to make port 1 ACTIVE, joins the IPoIB broadcast
//! group through the SA, and exchanges unicast and multicast UD datagrams. Then a link flaps.
//!
//! `cargo run -p hca-sim --example ib_fabric`

use std::time::Duration;

use hca::hermon::{Config, Hermon};
use hca::verbs::{
    self, AddressHandle, CompletionKind, CqId, Event, PortAttr, PortNum, QpId, RetryPolicy,
    UdQpAttr,
};
use hca::wire::smp::mtu as Mtu;
use hca::wire::Gid;
use hca::{Error, Verbs};
use hca_sim::{HcaSpec, Sim, SimConfig, SimHal};

struct Node {
    name: &'static str,
    dev: Hermon<SimHal>,
    attr: PortAttr,
    cq: CqId,
    qp: QpId,
    mlid: hca::wire::Lid,
}

fn recv(n: &mut Node) -> Option<(Vec<u8>, hca::verbs::Completion)> {
    let mut buf = [0u8; 2048];
    for _ in 0..100 {
        while let Some(c) = n.dev.poll_cq(n.cq, &mut buf).ok()? {
            if c.kind == CompletionKind::Recv && c.status.is_ok() {
                return Some((buf[..c.byte_len as usize].to_vec(), c));
            }
        }
        n.dev.delay(Duration::from_micros(100));
    }
    None
}

fn main() -> Result<(), Error> {
    let sim = Sim::new(SimConfig {
        seed: 2026,
        ..SimConfig::default()
    });
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let mut nodes = Vec::new();
    let mut links = Vec::new();
    for (name, guid) in [
        ("boot-a", 0x0002_c903_0000_1000u64),
        ("boot-b", 0x0002_c903_0000_2000),
    ] {
        let id = sim.add_hca(HcaSpec::connectx(guid, 2));
        links.push(sim.connect(id, 1, sw));
        let mut dev = Hermon::open(sim.hal(id), Config::default())?;
        let fw = dev.fw_info();
        println!(
            "{name}: ConnectX fw {}.{}.{} up, {} ports",
            fw.major,
            fw.minor,
            fw.subminor,
            dev.num_ports()
        );
        dev.open_port(PortNum(1))?;
        let attr = verbs::wait_port_active(&mut dev, PortNum(1), Duration::from_secs(15))?;
        println!(
            "{name}: port 1 {} at t={} ms: LID {:#x}, SM LID {:#x}, GID {}, P_Key {:#06x}",
            attr.state,
            sim.now().as_millis(),
            attr.lid.0,
            attr.sm_lid.0,
            attr.gid,
            attr.pkey()
        );
        let cq = dev.create_cq(16)?;
        let qp = dev.create_ud_qp(&UdQpAttr {
            port: PortNum(1),
            send_cq: cq,
            recv_cq: cq,
            send_slots: 8,
            recv_slots: 8,
            qkey: None,
        })?;
        let mgid = Gid::ipoib_broadcast(attr.pkey());
        dev.attach_mcast(qp, &mgid)?;
        let rec = verbs::sa_join_mcast(&mut dev, &attr, &mgid, RetryPolicy::default())?;
        dev.activate_qp(qp, rec.qkey.get())?;
        println!(
            "{name}: joined the broadcast group {mgid}: MLID {:#x}, Q_Key {:#x}, IB MTU {}, QPN {:#x}",
            rec.mlid.get(),
            rec.qkey.get(),
            Mtu::bytes(rec.mtu()),
            dev.qp_num(qp)?.0
        );
        nodes.push(Node {
            name,
            dev,
            attr,
            cq,
            qp,
            mlid: rec.mlid(),
        });
    }
    let mgid = Gid::ipoib_broadcast(0xffff);
    let (a, b) = nodes.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);

    let to_b = AddressHandle::unicast(b.attr.lid, 0, b.dev.qp_num(b.qp)?, 0x0b1b);
    a.dev.post_send(a.qp, &to_b, b"unicast hello from boot-a")?;
    if let Some((data, c)) = recv(b) {
        println!(
            "{}: got \"{}\" from LID {:#x} QPN {:#x}",
            b.name,
            String::from_utf8_lossy(&data),
            c.slid.0,
            c.src_qpn.0
        );
    }
    let pr = verbs::sa_path_record(&mut b.dev, &b.attr, &a.attr.gid, RetryPolicy::default())?;
    println!(
        "{}: PathRecord to boot-a: DLID {:#x}, IB MTU {}",
        b.name,
        pr.dlid.get(),
        Mtu::bytes(pr.mtu())
    );
    let bcast = AddressHandle::multicast(b.mlid, 0, mgid, 0x0b1b);
    b.dev.post_send(b.qp, &bcast, b"broadcast from boot-b")?;
    if let Some((data, c)) = recv(a) {
        println!(
            "{}: got \"{}\" via multicast{}",
            a.name,
            String::from_utf8_lossy(&data),
            c.grh
                .map_or(String::new(), |g| format!(" (GRH to {})", g.1))
        );
    }

    println!("-- link of boot-b flaps");
    sim.set_link(links[1], false, Duration::ZERO);
    sim.set_link(links[1], true, Duration::from_millis(500));
    b.dev.delay(Duration::from_millis(1));
    while let Some(ev) = b.dev.poll_event()? {
        match ev {
            Event::PortStateChange { port, up } => println!(
                "{}: event: port {} went {}",
                b.name,
                port.0,
                if up { "ACTIVE" } else { "DOWN" }
            ),
            other => println!("{}: event: {other:?}", b.name),
        }
    }
    let attr = verbs::wait_port_active(&mut b.dev, PortNum(1), Duration::from_secs(15))?;
    println!(
        "{}: port 1 {} again at t={} ms",
        b.name,
        attr.state,
        sim.now().as_millis()
    );
    for (i, n) in nodes.iter().enumerate() {
        let c = sim.counters(i);
        println!(
            "{}: {} firmware commands ({} failed), {} packets sent, {} received, {} completions \
             ({} with errors), {} events, {} driver misuses",
            n.name,
            c.commands,
            c.command_errors,
            c.tx_packets,
            c.rx_packets,
            c.cqes,
            c.error_cqes,
            c.eqes,
            c.misuse
        );
    }
    let s = sim.stats();
    println!(
        "fabric: {} packets delivered, {} dropped by faults, {} unroutable; {} SA requests \
         ({} refused); {} SM sweeps, {} port activations",
        s.delivered,
        s.fault_drops,
        s.unroutable,
        s.sa_requests,
        s.sa_errors,
        s.sweeps,
        s.activations
    );
    Ok(())
}
