//! kldrun's InfiniBand link layer and its TUN bridge, end to end with Linux's own IPv4 stack:
//! the C self-test kld (`tests/kld/selftest.c`, mode `ifnet`) attaches an `IFT_INFINIBAND`
//! interface `isbib0` whose wire is a peer inside the module (it answers IPoIB ARP for
//! 10.77.0.2 and echoes pings). kldrun runs in a fresh network namespace; Linux gets an
//! address on the TUN and pings the peer through kldrun's ARP, framing, mbuf chains and
//! `if_input`. Needs root (CI is root).
//!
//! The real `isboot.ko` is driven the same way: with `net.isboot.ipoib_loopback` set it
//! attaches its own IPoIB interface (`kmod/src/freebsd_ifnet.rs`) over a software link whose
//! peer lives in the module (`kmod/src/iblink_loop.rs`), and Linux pings that peer through
//! the module's ifnet, poll thread and mbuf handling.

mod common;

use common::{isboot_ko, kldrun, selftest_ko};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ip(args: &[&str]) -> (bool, String) {
    let o = Command::new("ip").args(args).output().expect("run ip(8)");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn link(name: &str) -> Option<String> {
    let (ok, out) = ip(&["-o", "link", "show", name]);
    ok.then_some(out)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(ko: &Path, tunable: &str, wait: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kldrun"));
    cmd.arg("--tunable").arg(tunable).arg("--timeout").arg("60");
    if wait {
        cmd.arg("--wait-stdin");
    }
    cmd.arg(ko)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kldrun")
}

fn finish(mut child: Child) -> (i32, String, String) {
    drop(child.stdin.take());
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, out, err)
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// ICMP echo requests to `dst` over a raw socket: how many came back with our id, sequence
/// and payload.
fn ping(dst: [u8; 4], count: u16) -> u16 {
    // SAFETY: socket(2) with constant arguments; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: SO_RCVTIMEO with a timeval of its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    // SAFETY: sockaddr_in is plain old data.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_addr.s_addr = u32::from_ne_bytes(dst);
    let mut replies = 0;
    for seq in 0..count {
        let payload: Vec<u8> = (0..200u32).map(|i| (i as u8) ^ seq as u8).collect();
        let mut p = vec![8, 0, 0, 0, 0x4b, 0x4c, (seq >> 8) as u8, seq as u8];
        p.extend_from_slice(&payload);
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
        // SAFETY: sendto with our buffer and address.
        let n = unsafe {
            libc::sendto(
                fd,
                p.as_ptr().cast(),
                p.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        assert_eq!(
            n,
            p.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            let mut buf = [0u8; 2048];
            // SAFETY: recv into our buffer.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                break;
            }
            let d = &buf[..n as usize];
            let icmp = &d[usize::from(d[0] & 15) * 4..];
            if icmp.len() >= 8
                && icmp[0] == 0
                && icmp[4..6] == [0x4b, 0x4c]
                && u16::from_be_bytes([icmp[6], icmp[7]]) == seq
            {
                assert_eq!(&icmp[8..], &payload[..], "the echoed payload");
                assert_eq!(checksum(icmp), 0, "the reply's ICMP checksum");
                assert_eq!(&d[12..16], &dst, "the reply's source");
                replies += 1;
                break;
            }
        }
    }
    // SAFETY: ours.
    unsafe { libc::close(fd) };
    replies
}

fn udp(dst: &str, port: u16) {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    s.send_to(b"link", (dst, port)).unwrap();
}

#[test]
fn linux_pings_a_peer_through_the_ipoib_interface_and_its_tun() {
    let r = isboot_tests::netns::run(|| {
        let child = spawn(&selftest_ko(), "kldrun.selftest=ifnet", true);
        wait_for("the TUN isbib0", Duration::from_secs(10), || {
            link("isbib0").is_some()
        });
        let l = link("isbib0").unwrap();
        assert!(
            l.contains("mtu 2044"),
            "the TUN has the interface's MTU: {l}"
        );
        assert!(ip(&["addr", "add", "10.77.0.1/24", "dev", "isbib0"]).0);
        assert!(ip(&["link", "set", "isbib0", "up"]).0);
        wait_for("carrier on isbib0", Duration::from_secs(5), || {
            link("isbib0").is_some_and(|l| l.contains("LOWER_UP"))
        });
        let replies = ping([10, 77, 0, 2], 3);
        // Nobody answers ARP for 10.77.0.3: no reply, and the queued packet is dropped.
        let none = ping([10, 77, 0, 3], 1);
        // The peer takes the link down: the TUN loses its carrier.
        udp("10.77.0.2", 9);
        wait_for("NO-CARRIER on isbib0", Duration::from_secs(5), || {
            link("isbib0").is_some_and(|l| l.contains("NO-CARRIER"))
        });
        let (code, out, err) = finish(child);
        let gone = link("isbib0").is_none();
        (replies, none, code, out, err, gone)
    })
    .expect("a network namespace (root)");
    let (replies, none, code, out, err, gone) = r;
    let all = format!("{out}\n{err}");
    assert_eq!(replies, 3, "{all}");
    assert_eq!(none, 0, "{all}");
    assert_eq!(code, 0, "{all}");
    isboot_tests::assert_in_order(
        &out,
        &[
            "selftest: mode ifnet",
            "isbib0: link state changed to UP",
            "selftest: attached isbib0, MTU 2044, lladdr \
             00:00:04:48:fe:80:00:00:00:00:00:00:00:02:c9:03:00:ab:cd:01, setlladdr 19",
            "selftest: isbib0 SIOCSIFADDR 10.77.0.1",
            "selftest: peer takes the link down",
            "isbib0: link state changed to DOWN",
            "selftest: MOD_UNLOAD",
            "selftest: detached isbib0",
        ],
    );
    assert!(err.contains("kldrun: leak check: clean"), "{all}");
    assert!(err.contains("1 interfaces and "), "{all}");
    // The ping to 10.77.0.3 waited for an ARP answer that never came (dropped after 3 s, or
    // still waiting at the unload).
    let arp = err
        .lines()
        .find_map(|l| l.split_once("unresolved (ARP): ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no ARP summary: {all}"));
    assert!(
        arp == "1 waiting, 0 dropped" || arp == "0 waiting, 1 dropped",
        "{arp}\n{all}"
    );
    assert!(gone, "the TUN goes with the interface: {all}");
}

#[test]
fn an_interface_never_detached_is_a_leak_and_its_tun_is_closed() {
    let r = isboot_tests::netns::run(|| {
        let child = spawn(&selftest_ko(), "kldrun.selftest=ifnet-leak", false);
        let (code, out, err) = finish(child);
        (code, out, err, link("isbib0").is_none())
    })
    .expect("a network namespace (root)");
    let (code, out, err, gone) = r;
    let all = format!("{out}\n{err}");
    assert_eq!(code, 4, "{all}");
    assert!(
        err.contains("kldrun: leak: ifnet: isbib0 at 0x")
            && err.contains(
                "(still attached: infiniband_ifdetach and if_free missing; its TUN isbib0 was \
                 still open) never freed (if_alloc from ifnet_attach+0x"
            ),
        "{all}"
    );
    assert!(gone, "{all}");
}

#[test]
fn isboot_ko_carries_pings_over_its_own_ipoib_interface() {
    let r = isboot_tests::netns::run(|| {
        let child = spawn(&isboot_ko(), "net.isboot.ipoib_loopback=10.77.0.2", true);
        wait_for("the TUN isbib0", Duration::from_secs(10), || {
            link("isbib0").is_some()
        });
        let l = link("isbib0").unwrap();
        assert!(l.contains("mtu 2044"), "the TUN has the link's IP MTU: {l}");
        assert!(ip(&["addr", "add", "10.77.0.1/24", "dev", "isbib0"]).0);
        assert!(ip(&["link", "set", "isbib0", "up"]).0);
        wait_for("carrier on isbib0", Duration::from_secs(5), || {
            link("isbib0").is_some_and(|l| l.contains("LOWER_UP"))
        });
        let before = ping([10, 77, 0, 2], 3);
        // MTU: above the link's IP MTU the module refuses (the TUN keeps 2044); 1500 it takes.
        assert!(ip(&["link", "set", "isbib0", "mtu", "4000"]).0);
        wait_for("the refused MTU undone", Duration::from_secs(5), || {
            link("isbib0").is_some_and(|l| l.contains("mtu 2044"))
        });
        assert!(ip(&["link", "set", "isbib0", "mtu", "1500"]).0);
        // Failover to port 2: the peer forgets the interface's address and asks for it
        // (ARP for the address the module got with SIOCSIFADDR); it echoes again only once
        // kldrun's ARP reply carries the new GID the module wrote through if_getlladdr().
        udp("10.77.0.2", 10);
        std::thread::sleep(Duration::from_millis(200));
        let after = ping([10, 77, 0, 2], 2);
        // kldrun told the driver about 1500 before it handed it those packets: it stayed.
        let mtu_kept = link("isbib0").is_some_and(|l| l.contains("mtu 1500"));
        // The link goes down: the TUN loses its carrier.
        udp("10.77.0.2", 9);
        wait_for("NO-CARRIER on isbib0", Duration::from_secs(5), || {
            link("isbib0").is_some_and(|l| l.contains("NO-CARRIER"))
        });
        let (code, out, err) = finish(child);
        let gone = link("isbib0").is_none();
        (before, after, mtu_kept, code, out, err, gone)
    })
    .expect("a network namespace (root)");
    let (before, after, mtu_kept, code, out, err, gone) = r;
    let all = format!("{out}\n{err}");
    assert_eq!((before, after), (3, 2), "{all}");
    assert!(mtu_kept, "{all}");
    assert!(
        err.contains(
            "kldrun: isbib0: MTU 4000 refused (error 22); the TUN keeps the interface's 2044"
        ),
        "{all}"
    );
    // The module counted what went through it: 5 echo replies and at least 2 ARP answers in,
    // at least 5 echo requests and an ARP request and reply out, no errors.
    let stats = err
        .lines()
        .find_map(|l| l.strip_prefix("kldrun: isbib0: ipackets "))
        .and_then(|l| l.split(';').next())
        .unwrap_or_else(|| panic!("no counters at detach: {all}"));
    let n: Vec<u64> = stats
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [ipackets, ierrors, iqdrops, ibytes, opackets, oerrors, obytes] = n[..] else {
        panic!("counters: {stats}");
    };
    assert!(ipackets >= 7 && ibytes > ipackets * 24, "{stats}");
    assert!(opackets >= 7 && obytes > opackets * 24, "{stats}");
    assert_eq!((ierrors, iqdrops, oerrors), (0, 0, 0), "{stats}");
    assert_eq!(code, 0, "{all}");
    isboot_tests::assert_in_order(
        &out,
        &[
            "isbib0: link state changed to UP",
            "isbib0: IPoIB interface on port 1, MTU 2044, gid \
             fe80:0000:0000:0000:0002:c903:00ab:cd01",
            "isbib0: loopback link, peer 10.77.0.2 (diagnostic: no HCA)",
            "isbib0: port 1 down, moved to port 2 (gid fe80:0000:0000:0000:0002:c903:00ab:cd02)",
            "isbib0: link state changed to DOWN",
            "isbib0: link down",
            "isbib0: detached",
        ],
    );
    assert!(err.contains("kldrun: leak check: clean"), "{all}");
    assert!(gone, "the TUN goes with the interface: {all}");
}

#[test]
fn isboot_ko_says_why_a_bad_loopback_tunable_gets_no_interface() {
    let ko = isboot_ko().display().to_string();
    let run = kldrun(&["--tunable", "net.isboot.ipoib_loopback=10.77.0", &ko]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(
            "isboot: net.isboot.ipoib_loopback: not an IPv4 address; no loopback interface"
        ),
        "{}",
        run.all()
    );
    assert!(!run.stdout.contains("isbib0"), "{}", run.all());
    assert!(run.clean(), "{}", run.all());
}

#[test]
fn an_off_link_destination_is_resolved_through_its_route_s_gateway() {
    // infiniband_output resolves the route's gateway (arpresolve with RT_HAS_GW); the TUN
    // loses the next hop, so kldrun asks Linux's FIB for it.
    isboot_tests::netns::run(|| {
        for args in [
            &["link", "add", "gw0", "type", "veth", "peer", "name", "gw1"][..],
            &["link", "set", "gw1", "up"],
            &["link", "set", "gw0", "up"],
            &["addr", "add", "10.9.0.2/24", "dev", "gw0"],
            &["route", "add", "10.10.0.0/16", "via", "10.9.0.1"],
        ] {
            let (ok, out) = ip(args);
            assert!(ok, "ip {args:?}: {out}");
        }
        use kldrun::kernel::ifnet::next_hop;
        use std::net::Ipv4Addr;
        assert_eq!(
            next_hop(Ipv4Addr::new(10, 10, 3, 4)),
            Some(Ipv4Addr::new(10, 9, 0, 1))
        );
        assert_eq!(
            next_hop(Ipv4Addr::new(10, 9, 0, 7)),
            Some(Ipv4Addr::new(10, 9, 0, 7))
        );
        assert_eq!(next_hop(Ipv4Addr::new(192, 0, 2, 1)), None);
    })
    .expect("a network namespace (the test needs root)");
}
