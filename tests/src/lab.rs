//! Two hosts on one wire, in network namespaces this test made: the booting node (the calling
//! thread's namespace, from [`crate::netns::run`]) and a peer — the target's host — in a
//! namespace of its own, joined by a veth pair.
//!
//! With both ends in one namespace the kernel would route between them locally and a test
//! could pass without the module configuring anything; across two namespaces the node's side
//! has only what the module adds to it. The node's end carries the MAC the iBFT names and no
//! address; the peer's end carries the target's addresses.

use std::io;
use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};

use crate::target::{TargetOpts, Tgtd};

type Job = Box<dyn FnOnce() + Send>;

/// A thread in a network namespace of its own, running closures there (processes it starts
/// live in that namespace).
#[derive(Debug)]
pub struct Peer {
    jobs: Option<mpsc::Sender<Job>>,
    tid: i32,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Peer {
    /// Starts the thread in a fresh namespace with its loopback up.
    pub fn start() -> io::Result<Peer> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::channel::<io::Result<i32>>();
        let thread = std::thread::spawn(move || {
            // SAFETY: unshare(2) changes only this thread's namespace; gettid(2) has no
            // arguments.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            if r != 0 {
                let _ = ready_tx.send(Err(io::Error::last_os_error()));
                return;
            }
            // SAFETY: as above.
            let tid = unsafe { libc::gettid() };
            let up = ip(&["link", "set", "lo", "up"]).map(|_| tid);
            let _ = ready_tx.send(up);
            while let Ok(job) = rx.recv() {
                job();
            }
        });
        let tid = ready
            .recv()
            .map_err(|_| io::Error::other("the peer thread died"))??;
        Ok(Peer {
            jobs: Some(jobs),
            tid,
            thread: Some(thread),
        })
    }

    /// The thread's id (`ip link set DEV netns TID` moves an interface into its namespace).
    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// Runs `f` in the peer's namespace and returns its result.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .expect("the peer thread is running");
        rx.recv().expect("the peer job finished")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `ip ARGS…` in the calling thread's namespace.
pub fn ip(args: &[&str]) -> io::Result<String> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The wire: `node_if` (with `mac`, no address, down) here, `peer_if` in the peer's namespace
/// with `peer_addrs` (CIDR strings) and up. Extra addresses in `peer_local` go on the peer's
/// loopback (a target reachable only through a router).
pub fn wire(
    peer: &Peer,
    node_if: &str,
    mac: [u8; 6],
    peer_if: &str,
    peer_addrs: &[&str],
    peer_local: &[&str],
) -> io::Result<()> {
    let mac = format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    );
    ip(&[
        "link", "add", node_if, "address", &mac, "type", "veth", "peer", "name", peer_if,
    ])?;
    ip(&["link", "set", peer_if, "netns", &peer.tid().to_string()])?;
    let peer_if = peer_if.to_string();
    let addrs: Vec<String> = peer_addrs.iter().map(|s| s.to_string()).collect();
    let local: Vec<String> = peer_local.iter().map(|s| s.to_string()).collect();
    peer.run(move || -> io::Result<()> {
        for a in &addrs {
            ip(&["addr", "add", a, "dev", &peer_if])?;
        }
        for a in &local {
            ip(&["addr", "add", a, "dev", "lo"])?;
        }
        ip(&["link", "set", &peer_if, "up"])?;
        Ok(())
    })
}

/// Runs `f` on a thread in a fresh namespace (the node's) wired by [`wire`] to a peer with
/// `peer_addrs` (and `peer_local` on its loopback) and, unless `target` is `None`, tgtd serving
/// there. The target is shared so that `f` can kill and restart it (in the peer, with
/// [`Peer::run`]). Panics with the reason when the set-up fails.
pub fn with_target_host<T: Send + 'static>(
    node_if: &'static str,
    mac: [u8; 6],
    peer_addrs: &'static [&'static str],
    peer_local: &'static [&'static str],
    target: Option<TargetOpts>,
    f: impl FnOnce(&Peer, Option<Arc<Mutex<Tgtd>>>) -> T + Send + 'static,
) -> T {
    crate::netns::run(move || {
        let peer = Peer::start().expect("the peer's namespace");
        wire(&peer, node_if, mac, "tgt0", peer_addrs, peer_local)
            .unwrap_or_else(|e| panic!("wiring: {e}"));
        let tgtd = target.map(|opts| {
            Arc::new(Mutex::new(peer.run(move || {
                Tgtd::try_start(opts).unwrap_or_else(|e| panic!("{e}"))
            })))
        });
        f(&peer, tgtd)
    })
    .unwrap_or_else(|e| panic!("{e}"))
}
