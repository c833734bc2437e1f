//! TCP throughput over the simulated IPoIB link: two nodes on one switch, the unmodified
//! driver, `ipoib`'s interface and smoltcp; node A streams to node B. Prints the rate against
//! wall-clock time (what a boot over the simulator sees) and against simulated time (which has
//! no link bandwidth model, only 1 µs per hop and a 100 µs polling step).
//!
//! `cargo run --release -p net-sim --example ipoib_tcp [MiB] [loss-permille]`

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hca_sim::{HcaSpec, Loss, Sim, SimConfig};
use ipoib::iface;
use net_sim::IpHost;
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let loss: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let total = mib << 20;
    let sim = Sim::new(SimConfig::default());
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let mut hosts: Vec<IpHost> = [0x0002_c903_0000_1000u64, 0x0002_c903_0000_2000]
        .iter()
        .zip([Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 20)])
        .map(|(&guid, ip)| {
            let n = sim.add_hca(HcaSpec::connectx(guid, 1));
            sim.connect(n, 1, sw);
            let mut h = IpHost::up(&sim, n, iface::Config::default()).expect("node up");
            h.set_ipv4(ip, 24, None);
            h
        })
        .collect();
    if loss > 0 {
        sim.add_fault(Box::new(Loss { permille: loss }));
    }
    let win = std::env::var("IPOIB_TCP_WIN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(hosts[1].ipoib.max_rx_window());
    let mk = || {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; win]),
            tcp::SocketBuffer::new(vec![0; win]),
        );
        s.set_ack_delay(None);
        s
    };
    let mut l = mk();
    l.listen(5001).unwrap();
    let lh = hosts[1].sockets.add(l);
    let ch = hosts[0].sockets.add(mk());
    {
        let a = &mut hosts[0];
        let cx = a.smol.context();
        a.sockets
            .get_mut::<tcp::Socket>(ch)
            .connect(
                cx,
                (IpAddress::Ipv4(Ipv4Addr::new(192, 0, 2, 20)), 5001),
                49152,
            )
            .unwrap();
    }
    let (mut sent, mut got) = (0usize, 0usize);
    let (wall0, sim0) = (Instant::now(), sim.now());
    let deadline = wall0 + Duration::from_secs(300);
    while got < total && Instant::now() < deadline {
        for h in hosts.iter_mut() {
            h.poll();
        }
        let s = hosts[0].sockets.get_mut::<tcp::Socket>(ch);
        while s.can_send() && sent < total {
            let n = s.send(|b| {
                let n = b.len().min(total - sent);
                (n, n)
            });
            sent += n.unwrap_or(0);
            if n.unwrap_or(0) == 0 {
                break;
            }
        }
        let r = hosts[1].sockets.get_mut::<tcp::Socket>(lh);
        while r.can_recv() {
            got += r.recv(|b| (b.len(), b.len())).unwrap_or(0);
        }
        sim.run_for(Duration::from_micros(100));
    }
    let (wall, simt) = (wall0.elapsed(), sim.now() - sim0);
    if std::env::var_os("IPOIB_TCP_DEBUG").is_some() {
        eprintln!(
            "{:?}\n{:?}\n{:?}\n{:?}",
            sim.counters(0),
            sim.counters(1),
            hosts[0].ipoib.stats(),
            hosts[1].ipoib.stats()
        );
    }
    let rate = |d: Duration| got as f64 / (1 << 20) as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "{} MiB over simulated IPoIB (MTU {}, loss {loss}‰): {:.1} MiB/s wall clock ({:.2?}), \
         {:.1} MiB/s simulated time ({:.2?}); A sent {} datagrams, fabric dropped {}",
        got >> 20,
        hosts[0].ipoib.mtu(),
        rate(wall),
        wall,
        rate(simt),
        simt,
        hosts[0].ipoib.stats().tx_packets,
        sim.stats().fault_drops
    );
    assert_eq!(got, total, "transfer incomplete");
}
