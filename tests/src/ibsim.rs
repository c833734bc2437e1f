//! A real subnet manager for a test: OpenSM (Debian's `opensm`) running on ibsim (Debian's
//! `ibsim-utils`), the InfiniBand fabric simulator, with `infiniband-diags` at hand.
//!
//! [`Subnet::start`] writes the topology, starts `ibsim -s -n` (network up at once, no
//! console) and waits for its control socket, then starts OpenSM as the SM node's client —
//! under `ibsim-run`, which preloads ibsim's `libumad2sim` so that OpenSM's umad calls go to
//! ibsim — and waits for `SUBNET UP` in its log. [`Subnet::diag`] runs a diag tool (`saquery`,
//! `smpquery`, …) the same way, as another node. Dropping the subnet stops OpenSM first, then
//! ibsim (the other order leaves OpenSM blocked for ever in umad2sim's disconnect): SIGTERM,
//! then SIGKILL after 3 s. Every wait is bounded.
//!
//! ibsim's sockets live in the abstract Unix namespace, which is per network namespace: start
//! the subnet inside [`crate::netns::run`] (a unique socket name is used as well, so two
//! subnets never meet). ibsim opens no TCP or UDP port in this mode.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{have, wait_for, TempDir};

/// How long OpenSM may take to bring the subnet up.
pub const SUBNET_UP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a diag tool may run.
pub const DIAG_TIMEOUT: Duration = Duration::from_secs(10);

/// A running ibsim with OpenSM on it.
#[derive(Debug)]
pub struct Subnet {
    dir: TempDir,
    sock: String,
    ibsim: Option<Child>,
    opensm: Option<Child>,
}

fn abstract_name(name: &str) -> io::Result<SocketAddr> {
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    SocketAddr::from_abstract_name(&n)
}

fn stop(child: &mut Option<Child>) {
    let Some(mut c) = child.take() else {
        return;
    };
    // SAFETY: kill(2) on the pid of a child we started and have not reaped (its pid cannot
    // have been reused); it touches no memory.
    unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Subnet {
    /// Starts ibsim on `topology` (an ibsim net file; OpenSM attaches to the node named `SM`)
    /// and OpenSM, with `partitions` as its partition configuration when given (else its
    /// default: partition 0x7fff with the IPoIB broadcast group). `osm_log_flags` is OpenSM's
    /// `-D` verbosity (0x03 is its default, errors and info). Waits for SUBNET UP.
    pub fn start(
        topology: &str,
        partitions: Option<&str>,
        osm_log_flags: u8,
    ) -> Result<Self, String> {
        for p in ["ibsim", "opensm", "ibsim-run", "saquery"] {
            if !have(p) {
                return Err(format!(
                    "{p} is not installed (Debian: ibsim-utils, opensm, infiniband-diags; \
                     `make test-deps` installs them)"
                ));
            }
        }
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = TempDir::new("ibsim").map_err(|e| e.to_string())?;
        let sock = format!(
            "isboot{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let net = dir.0.join("net.topo");
        std::fs::write(&net, topology).map_err(|e| e.to_string())?;
        let base = dir.0.clone();
        let log = |name: &str| -> Result<Stdio, String> {
            std::fs::File::create(base.join(name))
                .map(Stdio::from)
                .map_err(|e| e.to_string())
        };
        let mut s = Self {
            sock,
            ibsim: None,
            opensm: None,
            dir,
        };
        s.ibsim = Some(
            Command::new("ibsim")
                .args(["-s", "-n"])
                .arg(&net)
                .env("IBSIM_SOCKNAME", &s.sock)
                .current_dir(&s.dir.0)
                .stdin(Stdio::null())
                .stdout(log("ibsim.out")?)
                .stderr(log("ibsim.err")?)
                .spawn()
                .map_err(|e| format!("ibsim: {e}"))?,
        );
        let ctl = format!("{}:ctl", s.sock);
        let up = wait_for(Duration::from_secs(10), || {
            let probe = UnixDatagram::unbound().ok()?;
            probe.connect_addr(&abstract_name(&ctl).ok()?).ok()
        });
        if up.is_none() {
            return Err(format!("ibsim did not come up:\n{}", s.file("ibsim.err")));
        }
        let mut osm = Command::new("ibsim-run");
        osm.args(["opensm", "-d2", "-D", &format!("{osm_log_flags:#x}"), "-f"])
            .arg(s.dir.0.join("osm.log"));
        if let Some(p) = partitions {
            let f = s.dir.0.join("partitions.conf");
            std::fs::write(&f, p).map_err(|e| e.to_string())?;
            osm.arg("-P").arg(f);
        }
        s.opensm = Some(
            osm.env_remove("LD_PRELOAD")
                .env("IBSIM_SOCKNAME", &s.sock)
                .env("SIM_HOST", "SM")
                .env("OSM_TMP_DIR", &s.dir.0)
                .env("OSM_CACHE_DIR", &s.dir.0)
                .current_dir(&s.dir.0)
                .stdin(Stdio::null())
                .stdout(log("opensm.out")?)
                .stderr(log("opensm.err")?)
                .spawn()
                .map_err(|e| format!("opensm: {e}"))?,
        );
        if wait_for(SUBNET_UP_TIMEOUT, || {
            s.opensm_log().contains("SUBNET UP").then_some(())
        })
        .is_none()
        {
            return Err(format!(
                "OpenSM did not bring the subnet up in {SUBNET_UP_TIMEOUT:?}:\n{}\n{}",
                s.opensm_log(),
                s.file("opensm.err")
            ));
        }
        Ok(s)
    }

    /// The socket name ibsim uses (`IBSIM_SOCKNAME`), for clients to attach.
    pub fn sockname(&self) -> &str {
        &self.sock
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.0.join(name)).unwrap_or_default()
    }

    /// OpenSM's log so far.
    pub fn opensm_log(&self) -> String {
        self.file("osm.log")
    }

    /// The directory the subnet's files are in.
    pub fn dir(&self) -> PathBuf {
        self.dir.0.clone()
    }

    /// Runs a diag tool of `infiniband-diags` attached to `node`, bounded by
    /// [`DIAG_TIMEOUT`]. Returns its standard output, or its error output when it fails.
    pub fn diag(&self, node: &str, program: &str, args: &[&str]) -> Result<String, String> {
        let mut c = Command::new("ibsim-run")
            .arg(program)
            .args(args)
            .env_remove("LD_PRELOAD")
            .env("IBSIM_SOCKNAME", &self.sock)
            .env("SIM_HOST", node)
            .current_dir(&self.dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{program}: {e}"))?;
        let end = Instant::now() + DIAG_TIMEOUT;
        loop {
            match c.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return Err(format!(
                        "{program} {args:?} did not finish in {DIAG_TIMEOUT:?}"
                    ));
                }
            }
        }
        let out = c.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "{program} {args:?}: {}\n{}{}",
                out.status,
                text,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for Subnet {
    /// OpenSM first, then ibsim.
    fn drop(&mut self) {
        stop(&mut self.opensm);
        stop(&mut self.ibsim);
    }
}
