//! The gateway node against real servers on a private loopback: a node on the simulated
//! fabric gets its address and root-path from a real Kea through the gateway's DHCP relay,
//! with a reservation for each client-id form, then talks TCP to a real service on loopback
//! through the gateway. Every test runs inside `isboot_tests::netns::run` (needs root, as CI).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use hca_sim::{HcaSpec, NodeId, Sim, SimConfig};
use ipoib::dhcp::{ClientIdForm, Event};
use ipoib::iface;
use isboot_tests::kea::{self, Kea, Reservation};
use isboot_tests::netns;
use net_sim::{Gateway, GatewayConfig, IpHost, RelayConfig};
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;

const RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ROOT_PATH: &str = "iscsi:192.0.2.1::3260:1:iqn.2026-11.org.example:boot";
const ECHO_PORT: u16 = 7;

fn reserved(form: ClientIdForm) -> Ipv4Addr {
    let i = ClientIdForm::ALL.iter().position(|f| *f == form).unwrap() as u8;
    Ipv4Addr::new(192, 0, 2, 50 + i)
}

struct Net {
    sim: Sim,
    gw: Gateway,
    client: IpHost,
}

fn net(forwards: Vec<(u16, SocketAddr)>) -> Net {
    let sim = Sim::new(SimConfig {
        seed: 6,
        ..SimConfig::default()
    });
    let sw = sim.add_switch();
    sim.attach_sm(sw);
    let node = |guid: u64| -> NodeId {
        let n = sim.add_hca(HcaSpec::connectx(guid, 1));
        sim.connect(n, 1, sw);
        n
    };
    let (g, c) = (node(0x0002_c903_00ab_0001), node(0x0002_c903_0000_1039));
    let gw = Gateway::start(
        &sim,
        g,
        GatewayConfig {
            address: GW,
            prefix: 24,
            relay: Some(RelayConfig {
                giaddr: RELAY,
                server: SocketAddr::from((Ipv4Addr::LOCALHOST, kea::PORT)),
            }),
            forwards,
            ipoib: iface::Config::default(),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let client = IpHost::up(&sim, c, iface::Config::default()).unwrap_or_else(|e| panic!("{e}"));
    Net { sim, gw, client }
}

impl Net {
    /// One round: both nodes, 1 ms of simulated time, a short real pause so the real servers
    /// keep up (the simulated clock runs at most ~5x real time).
    fn step(&mut self) {
        self.gw.poll();
        self.client.poll();
        self.sim.run_for(Duration::from_millis(1));
        std::thread::sleep(Duration::from_micros(200));
    }

    /// Steps until `f` gives a value, for at most `limit` of real time.
    fn until<T>(
        &mut self,
        limit: Duration,
        mut f: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<T> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            self.step();
            if let Some(v) = f(self) {
                return Some(v);
            }
        }
        None
    }
}

fn kea_config(client: &IpHost) -> kea::Config {
    let id = client.ipoib.identity();
    kea::Config {
        subnet: "192.0.2.0/24".into(),
        pool: "192.0.2.100 - 192.0.2.199".into(),
        relay: RELAY,
        reservations: ClientIdForm::ALL
            .iter()
            .map(|&f| Reservation {
                client_id: f.client_id(&id),
                address: reserved(f),
                hostname: None,
            })
            .collect(),
        options: vec![
            ("routers".into(), GW.to_string()),
            ("root-path".into(), ROOT_PATH.into()),
        ],
        valid_lifetime: 3600,
    }
}

#[test]
fn a_fabric_node_gets_its_reserved_address_and_root_path_from_kea_through_the_gateway() {
    netns::run(|| {
        let mut n = net(vec![]);
        let kea = Kea::start(&kea_config(&n.client)).unwrap_or_else(|e| panic!("{e}"));
        for (i, form) in ClientIdForm::ALL.into_iter().enumerate() {
            n.client.start_dhcp(form, 0x5eed + i as u64);
            let ev = n.until(Duration::from_secs(20), |n| {
                n.client.dhcp_events.pop_front()
            });
            let Some(Event::Bound(l)) = ev else {
                panic!("{form:?}: {ev:?}\n{}", kea.log());
            };
            assert_eq!(l.address, reserved(form), "{form:?}");
            assert_eq!(l.prefix_len, Some(24));
            assert_eq!(l.routers, vec![GW]);
            assert_eq!(l.root_path.as_deref(), Some(ROOT_PATH));
            assert_eq!(l.relay, Some(RELAY));
            assert_eq!(l.server_id, Ipv4Addr::LOCALHOST);
            // The interface took the lease: address and default route.
            assert_eq!(n.client.ipoib.ipv4(), Some((reserved(form), 24)));
            assert_eq!(n.client.ipoib.gateway(), Some(GW));
        }
        let s = n.gw.stats();
        // DISCOVER and REQUEST relayed each time, OFFER and ACK relayed back.
        assert!(
            s.dhcp_requests >= 2 * ClientIdForm::ALL.len() as u64,
            "{s:?}"
        );
        assert!(
            s.dhcp_replies >= 2 * ClientIdForm::ALL.len() as u64,
            "{s:?}"
        );
        assert!(kea.log().contains("hwtype=32"), "{}", kea.log());
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A loopback echo server for one connection: returns what it received once the client
/// half-closed (bounded by a 30 s read timeout).
fn echo_server() -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    all.extend_from_slice(&buf[..k]);
                    if s.write_all(&buf[..k]).is_err() {
                        break;
                    }
                }
            }
        }
        all
    });
    (addr, t)
}

#[test]
fn tcp_through_the_gateway_reaches_a_real_service_on_loopback() {
    netns::run(|| {
        // The accept thread inherits the namespace of the thread that spawns it.
        let (svc, server) = echo_server();
        let mut n = net(vec![(ECHO_PORT, svc)]);
        let kea = Kea::start(&kea_config(&n.client)).unwrap_or_else(|e| panic!("{e}"));
        n.client.start_dhcp(ClientIdForm::Rfc4390, 7);
        let ev = n.until(Duration::from_secs(20), |n| {
            n.client.dhcp_events.pop_front()
        });
        assert!(matches!(ev, Some(Event::Bound(_))), "{ev:?}\n{}", kea.log());

        let sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        );
        let h = n.client.sockets.add(sock);
        {
            let cx = n.client.smol.context();
            let s = n.client.sockets.get_mut::<tcp::Socket>(h);
            s.connect(cx, (IpAddress::Ipv4(GW), ECHO_PORT), 40000)
                .unwrap();
        }
        let msg: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut sent = 0;
        let mut back = Vec::new();
        let t0 = Instant::now();
        n.until(Duration::from_secs(60), |n| {
            let s = n.client.sockets.get_mut::<tcp::Socket>(h);
            if s.can_send() && sent < msg.len() {
                sent += s.send_slice(&msg[sent..]).unwrap();
            }
            while s.can_recv() {
                s.recv(|b| {
                    back.extend_from_slice(b);
                    (b.len(), ())
                })
                .unwrap();
            }
            if back.len() == msg.len() && s.state() == tcp::State::Established {
                s.close();
            }
            (back.len() == msg.len() && !s.is_open()).then_some(())
        })
        .unwrap_or_else(|| panic!("echo incomplete: sent {sent}, back {}", back.len()));
        println!(
            "200 kB echoed through the gateway in {:?} real time",
            t0.elapsed()
        );
        assert_eq!(back, msg);
        // The client's half-close reached the service, which saw exactly what was sent.
        let _ = n.until(Duration::from_secs(5), |n| {
            (n.gw.connections() == 0).then_some(())
        });
        assert_eq!(server.join().unwrap(), msg);
        let s = n.gw.stats();
        assert_eq!((s.connections, s.connect_failures), (1, 0));
        assert_eq!(s.bytes_to_services, msg.len() as u64);
        assert_eq!(s.bytes_to_fabric, msg.len() as u64);

        // A port with nothing behind it: the fabric client gets a reset, not a hang.
        let h2 = n.client.sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 4096]),
            tcp::SocketBuffer::new(vec![0; 4096]),
        ));
        {
            let cx = n.client.smol.context();
            let s = n.client.sockets.get_mut::<tcp::Socket>(h2);
            s.connect(cx, (IpAddress::Ipv4(GW), 9), 40001).unwrap();
        }
        let closed = n.until(Duration::from_secs(10), |n| {
            let s = n.client.sockets.get_mut::<tcp::Socket>(h2);
            (s.state() == tcp::State::Closed).then_some(())
        });
        assert!(closed.is_some(), "no reset for an unforwarded port");
    })
    .unwrap_or_else(|e| panic!("{e}"));
}
