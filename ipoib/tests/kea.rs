//! DHCP over InfiniBand against a real Kea server (Debian's `kea-dhcp4-server`), reached
//! through a relay agent as a client on the fabric reaches it through the gateway. Each test
//! runs in a private network namespace: Kea, the relay and every datagram stay on its own
//! loopback.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use clock::{Duration, Instant};
use common::identity;
use ipoib::dhcp::{Client, ClientIdForm, Config, Destination, Event, Lease, Phase};
use ipoib::wire::dhcp::{relay_request, Message, Op};
use isboot_tests::kea::{self, Kea, Reservation};
use isboot_tests::netns;
use iscsi_initiator::rootpath::{RootPath, Server};

/// The relay agent's address: Kea selects the subnet by it and replies to it on port 67.
const RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const ROOT_PATH: &str = "iscsi:192.0.2.10::3260:1:iqn.2026-11.org.example:boot";

fn reserved(form: ClientIdForm) -> Ipv4Addr {
    let i = ClientIdForm::ALL.iter().position(|f| *f == form).unwrap() as u8;
    Ipv4Addr::new(192, 0, 2, 50 + i)
}

fn config() -> kea::Config {
    kea::Config {
        subnet: "192.0.2.0/24".into(),
        pool: "192.0.2.100 - 192.0.2.199".into(),
        relay: RELAY,
        // As the BoIB manual's dhcpd.conf does: one host entry per client-id form.
        reservations: ClientIdForm::ALL
            .iter()
            .map(|&f| Reservation {
                client_id: f.client_id(&identity(1)),
                address: reserved(f),
                hostname: Some(format!("node-{}", reserved(f).octets()[3])),
            })
            .collect(),
        options: vec![
            ("routers".into(), "192.0.2.1".into()),
            (
                "domain-name-servers".into(),
                "192.0.2.53, 192.0.2.54".into(),
            ),
            ("root-path".into(), ROOT_PATH.into()),
            (
                "iscsi-initiator-iqn".into(),
                "iqn.2026-11.org.example:node17".into(),
            ),
        ],
        valid_lifetime: 3600,
    }
}

/// The relay side of the gateway, and a clock: the client's time is real time plus `skip`.
struct Harness {
    sock: UdpSocket,
    server: SocketAddr,
    start: StdInstant,
    skip: Duration,
}

impl Harness {
    fn new() -> Self {
        let sock = UdpSocket::bind((RELAY, 67)).expect("bind the relay on port 67 (needs root)");
        sock.set_read_timeout(Some(StdDuration::from_millis(20)))
            .unwrap();
        Self {
            sock,
            server: SocketAddr::from((Ipv4Addr::LOCALHOST, kea::PORT)),
            start: StdInstant::now(),
            skip: Duration::default(),
        }
    }

    fn now(&self) -> Instant {
        Instant::ZERO + self.start.elapsed() + self.skip
    }

    /// Drives the client until it reports an event, relaying both ways; at most 15 s.
    fn run(&mut self, c: &mut Client) -> Event {
        let end = StdInstant::now() + StdDuration::from_secs(15);
        let mut buf = [0u8; 2048];
        while StdInstant::now() < end {
            let now = self.now();
            if c.poll_at().is_some_and(|t| t <= now) {
                if let Some(e) = c.handle_timeout(now) {
                    return e;
                }
                if let Some(mut tx) = c.poll_transmit(now) {
                    // Broadcast or unicast to the server, the gateway relays it (RFC 2131 §4.1,
                    // RFC 4390 §2.2): giaddr set, hops counted, unicast to the server.
                    if let Destination::Unicast(s) = tx.dst {
                        assert_eq!(s, Ipv4Addr::LOCALHOST, "Kea's server identifier");
                    }
                    assert!(relay_request(&mut tx.payload, RELAY, 4));
                    self.sock.send_to(&tx.payload, self.server).unwrap();
                }
            }
            if let Ok((n, from)) = self.sock.recv_from(&mut buf) {
                assert_eq!(from, self.server);
                let m = Message::parse(&buf[..n]).expect("Kea sends valid DHCP");
                assert_eq!(m.op, Op::BOOTREPLY);
                assert_eq!(m.giaddr, RELAY);
                if let Some(e) = c.process(self.now(), &buf[..n]) {
                    return e;
                }
            }
        }
        panic!("no DHCP event within 15 s (phase {:?})", c.phase());
    }
}

fn client(form: ClientIdForm, port: u8, now: Instant) -> Client {
    let mut cfg = Config::new(identity(port), 0x5eed ^ port as u64);
    cfg.form = form;
    Client::new(cfg, now)
}

fn check_lease(l: &Lease, address: Ipv4Addr) {
    assert_eq!(l.address, address);
    assert_eq!(l.prefix_len, Some(24));
    assert_eq!(l.routers, vec![Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(
        l.dns_servers,
        vec![Ipv4Addr::new(192, 0, 2, 53), Ipv4Addr::new(192, 0, 2, 54)]
    );
    assert_eq!(l.root_path.as_deref(), Some(ROOT_PATH));
    assert_eq!(
        l.initiator_iqn.as_deref(),
        Some("iqn.2026-11.org.example:node17")
    );
    assert_eq!(l.server_id, Ipv4Addr::LOCALHOST);
    assert_eq!(l.relay, Some(RELAY));
    assert_eq!(l.lease_time, Some(Duration::from_secs(3600)));
    let rp = RootPath::parse(l.root_path.as_deref().unwrap()).unwrap();
    assert_eq!(rp.server, Server::Ip("192.0.2.10".parse().unwrap()));
    assert_eq!((rp.port, rp.lun), (3260, [0, 1, 0, 0, 0, 0, 0, 0]));
}

#[test]
fn every_client_id_form_gets_its_reserved_address_and_root_path_from_kea() {
    netns::run(|| {
        let kea = Kea::start(&config()).unwrap_or_else(|e| panic!("{e}"));
        let mut h = Harness::new();
        for form in ClientIdForm::ALL {
            let mut c = client(form, 1, h.now());
            match h.run(&mut c) {
                Event::Bound(l) => {
                    check_lease(&l, reserved(form));
                    let host = format!("node-{}", reserved(form).octets()[3]);
                    assert_eq!(l.host_name.as_deref(), Some(host.as_str()), "{form:?}");
                }
                e => panic!("{form:?}: {e:?}\n{}", kea.log()),
            }
        }
        // Kea logged each one as an InfiniBand client (hwtype 32) but the iPXE form.
        let log = kea.log();
        assert!(log.contains("hwtype=32"), "{log}");
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_unknown_port_gets_a_pool_address_and_renews_it_at_t1() {
    netns::run(|| {
        let kea = Kea::start(&config()).unwrap_or_else(|e| panic!("{e}"));
        let mut h = Harness::new();
        // Port 2 has no reservation.
        let mut c = client(ClientIdForm::Rfc4390, 2, h.now());
        let Event::Bound(l) = h.run(&mut c) else {
            panic!("{}", kea.log())
        };
        let o = l.address.octets();
        assert!(
            (100..=199).contains(&o[3]) && o[..3] == [192, 0, 2],
            "{}",
            l.address
        );
        assert_eq!(l.host_name, None);
        // Jump to T1 (1800 s): the client unicasts a REQUEST to the server identifier; the
        // gateway relays it; Kea extends the same lease.
        h.skip = l.renewal_time.unwrap();
        match h.run(&mut c) {
            Event::Renewed(r) => {
                assert_eq!(r.address, l.address);
                assert_eq!(r.lease_time, Some(Duration::from_secs(3600)));
            }
            e => panic!("{e:?}\n{}", kea.log()),
        }
        assert_eq!(c.phase(), Phase::Bound);
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The Kea configuration of `docs/dhcp-ib.md` (its first JSON block), made to run here: on
/// loopback behind the test's relay instead of on `ib0` behind 192.0.2.1, leases in memory,
/// and a log the harness reads.
fn documented_config(log: &std::path::Path) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/dhcp-ib.md"))
        .expect("docs/dhcp-ib.md");
    let start = doc.find("```json\n").expect("a JSON block") + "```json\n".len();
    let json = &doc[start..start + doc[start..].find("```").expect("its end")];
    let mut out = String::new();
    for line in json.lines() {
        let line = if line.contains("\"lease-database\"") {
            r#"  "lease-database": { "type": "memfile", "persist": false },"#.to_string()
        } else {
            line.replace(r#"[ "ib0" ]"#, r#"[ "lo/127.0.0.1" ]"#)
                .replace(
                    r#""ip-addresses": [ "192.0.2.1" ]"#,
                    &format!(r#""ip-addresses": [ "{RELAY}" ]"#),
                )
        };
        out.push_str(&line);
        out.push('\n');
    }
    assert!(
        out.contains("lo/127.0.0.1")
            && out.contains("127.0.0.2")
            && out.contains("\"persist\": false")
    );
    out.replacen(
        r#"{ "Dhcp4": {"#,
        &format!(
            r#"{{ "Dhcp4": {{ "loggers": [ {{ "name": "kea-dhcp4", "severity": "INFO",
    "output_options": [ {{ "output": "{}" }} ] }} ],"#,
            log.display()
        ),
        1,
    )
}

#[test]
fn the_documented_kea_configuration_serves_every_client_id_form() {
    netns::run(|| {
        let kea = Kea::start_json(documented_config).unwrap_or_else(|e| panic!("{e}"));
        let mut h = Harness::new();
        // docs/dhcp-ib.md's hosts, in ClientIdForm::ALL's order, for port 1's identity.
        let names = [
            "rfc4390",
            "boib-connectx",
            "boib-infinihost",
            "flexboot",
            "ib-guid",
            "ipxe",
        ];
        for (i, form) in ClientIdForm::ALL.into_iter().enumerate() {
            let mut c = client(form, 1, h.now());
            let l = match h.run(&mut c) {
                Event::Bound(l) => l,
                e => panic!("{form:?}: {e:?}\n{}", kea.log()),
            };
            let name = names[i];
            assert_eq!(
                l.address,
                Ipv4Addr::new(192, 0, 2, 50 + i as u8),
                "{form:?}"
            );
            assert_eq!(
                l.host_name.as_deref(),
                Some(format!("node-{name}").as_str())
            );
            assert_eq!(l.routers, vec![Ipv4Addr::new(192, 0, 2, 1)]);
            assert_eq!(l.root_path.as_deref(), Some(ROOT_PATH));
            assert_eq!(
                l.initiator_iqn.as_deref(),
                Some(format!("iqn.2026-11.org.example:node-{name}").as_str())
            );
            // Option 175: the node's CHAP account and the subnet's mutual pair.
            let cr = l
                .credentials
                .as_ref()
                .unwrap_or_else(|| panic!("{form:?}: no 175"));
            assert_eq!(
                cr.username.as_deref(),
                Some(format!("node-{name}").as_str())
            );
            assert_eq!(
                cr.password.as_ref().map(|s| s.expose()),
                Some(format!("{name}-chap-secret").as_bytes())
            );
            assert_eq!(cr.reverse_username.as_deref(), Some("array"));
            assert_eq!(
                cr.reverse_password.as_ref().map(|s| s.expose()),
                Some(&b"arr4y-mutual-secret"[..])
            );
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
}
