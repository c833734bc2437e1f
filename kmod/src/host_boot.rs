//! The boot thread's kernel, doubled on a Linux host for tests and the demo (feature `std`).
//!
//! - interfaces, addresses and routes are the Linux ones of the calling thread's network
//!   namespace (read and changed with `ip(8)`), so a test can give the
//!   module a veth whose peer, in another namespace, is the target's network;
//! - the transport is a TCP socket whose receive also wakes when a CCB arrives (a socketpair
//!   the CAM side writes to), as the kernel's would on a `wakeup`;
//! - CAM is a small double: a queue the peripheral side ([`HostDisk`]) fills and the boot
//!   thread drains, and a scan that probes the new bus as CAM's `probe` and da(4) do (INQUIRY,
//!   TEST UNIT READY, READ CAPACITY(16)) before it reports the disk as `da0`.

extern crate std;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use iscsi_initiator::session::Portal;
use iscsi_initiator::time::{Duration, DurationExt};
use iscsi_initiator::transport::{Received, StdClock, Transport};

use crate::boot::{
    BootEnv, BootState, CamRequest, LinkAddr, NativeError, NetError, NetIf, Route, ScanState,
};
use crate::cam::{self, CamStatus, DataDir, PathInq, QueueEvent, ScsiIo, ScsiIoDone};

fn std_dur(d: Duration) -> std::time::Duration {
    // core's Duration is std's.
    d
}

/// Wakes a receive that is waiting on the socket (the kernel's `wakeup` on the thread's
/// channel).
#[derive(Debug)]
struct Wake {
    rx: UnixStream,
    tx: UnixStream,
}

impl Wake {
    fn new() -> std::io::Result<Self> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Self { rx, tx })
    }

    fn wake(&self) {
        let _ = (&self.tx).write(&[1]);
    }

    fn drain(&self) {
        let mut b = [0u8; 64];
        while matches!((&self.rx).read(&mut b), Ok(n) if n > 0) {}
    }
}

/// The session's TCP connection: `TCP_NODELAY`, a receive that waits for data or a wake-up.
#[derive(Debug)]
pub struct HostTransport {
    stream: Option<TcpStream>,
    wake: Arc<Wake>,
    /// Why the last connect failed (for the console).
    pub connect_error: Option<String>,
}

impl Transport for HostTransport {
    fn connect(&mut self, portal: &Portal, timeout: Duration) -> bool {
        self.close();
        let Ok(ip) = portal.host.parse::<core::net::IpAddr>() else {
            self.connect_error = Some(format!("{} is not an address", portal.host));
            return false;
        };
        let addr = SocketAddr::new(ip, portal.port);
        match TcpStream::connect_timeout(&addr, std_dur(timeout)) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                self.stream = Some(s);
                self.connect_error = None;
                true
            }
            Err(e) => {
                self.connect_error = Some(format!("connect {addr}: {e}"));
                false
            }
        }
    }

    fn close(&mut self) {
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn send(&mut self, data: &[u8]) -> Option<usize> {
        let s = self.stream.as_mut()?;
        loop {
            match s.write(data) {
                Ok(0) => return None,
                Ok(n) => return Some(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Received {
        let Some(s) = self.stream.as_mut() else {
            return Received::Closed;
        };
        let mut fds = [
            libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.rx.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = i32::try_from(timeout.total_millis()).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of two pollfd for the call's duration.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if r <= 0 {
            return Received::Timeout;
        }
        if fds[1].revents != 0 {
            self.wake.drain();
        }
        if fds[0].revents == 0 {
            return Received::Timeout;
        }
        match s.read(buf) {
            Ok(0) => Received::Closed,
            Ok(n) => Received::Data(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Received::Timeout,
            Err(_) => Received::Closed,
        }
    }
}

/// A completed CCB as the peripheral sees it.
#[derive(Debug, Clone)]
enum Finished {
    Io(ScsiIoDone),
    Other(CamStatus),
}

#[derive(Debug, Default)]
struct CamInner {
    queue: VecDeque<CamRequest>,
    done: HashMap<u64, Finished>,
    frozen: bool,
    registered: Option<(PathInq, u32)>,
    scan: Option<ScanState>,
    capacity: Option<(u64, u32)>,
    freezes: u32,
    requeued: u32,
}

#[derive(Debug, Default)]
struct CamShared {
    inner: Mutex<CamInner>,
    cv: Condvar,
    next_token: AtomicU64,
}

/// The peripheral side of the host CAM: a da(4)-like disk on the SIM's bus.
#[derive(Debug, Clone)]
pub struct HostDisk {
    cam: Arc<CamShared>,
    wake: Arc<Wake>,
    /// How long one command may take, requeues and recovery included.
    pub timeout: std::time::Duration,
}

/// A SCSI command that did not complete with GOOD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskError {
    /// The CAM status.
    pub status: CamStatus,
    /// The SCSI status.
    pub scsi_status: u8,
    /// Autosense data.
    pub sense: Vec<u8>,
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CAM status {:?}, SCSI status {:#04x}, sense {:02x?}",
            self.status, self.scsi_status, self.sense
        )
    }
}

impl HostDisk {
    /// Sends one SCSI command and waits for it; a `CAM_REQUEUE_REQ` is sent again once the
    /// SIM queue is released (as CAM does, without counting it as a retry).
    pub fn command(
        &self,
        cdb: &[u8],
        dir: DataDir,
        dxfer_len: u32,
        data: Vec<u8>,
    ) -> Result<ScsiIoDone, DiskError> {
        let end = std::time::Instant::now() + self.timeout;
        loop {
            let token = self.cam.next_token.fetch_add(1, Ordering::Relaxed) + 1;
            let io = ScsiIo {
                token,
                target: 0,
                lun: 0,
                cdb: cdb.to_vec(),
                dir,
                dxfer_len,
                data: iscsi_initiator::session::DataBuf::Owned(data.clone()),
                sense_len: 252,
                no_autosense: false,
            };
            let fin = self.submit(CamRequest::Io(io), token, end)?;
            let Finished::Io(done) = fin else {
                return Err(DiskError {
                    status: CamStatus::REQ_CMP_ERR,
                    scsi_status: 0,
                    sense: Vec::new(),
                });
            };
            if done.status.code() == CamStatus::REQUEUE_REQ {
                let mut g = self.cam.inner.lock().unwrap_or_else(|e| e.into_inner());
                g.requeued += 1;
                while g.frozen && std::time::Instant::now() < end {
                    g = self
                        .cam
                        .cv
                        .wait_timeout(g, std::time::Duration::from_millis(50))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                drop(g);
                std::thread::sleep(std::time::Duration::from_millis(5));
                continue;
            }
            if done.status.code() == CamStatus::REQ_CMP {
                return Ok(done);
            }
            return Err(DiskError {
                status: done.status,
                scsi_status: done.scsi_status,
                sense: done.sense,
            });
        }
    }

    fn submit(
        &self,
        req: CamRequest,
        token: u64,
        end: std::time::Instant,
    ) -> Result<Finished, DiskError> {
        {
            let mut g = self.cam.inner.lock().unwrap_or_else(|e| e.into_inner());
            g.queue.push_back(req);
        }
        self.wake.wake();
        let mut g = self.cam.inner.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(f) = g.done.remove(&token) {
                return Ok(f);
            }
            let now = std::time::Instant::now();
            if now >= end {
                return Err(DiskError {
                    status: CamStatus(0x0b), // CAM_CMD_TIMEOUT
                    scsi_status: 0,
                    sense: Vec::new(),
                });
            }
            g = self
                .cam
                .cv
                .wait_timeout(g, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// INQUIRY, standard data (SPC-4 §6.6).
    pub fn inquiry(&self) -> Result<Vec<u8>, DiskError> {
        Ok(self
            .command(&[0x12, 0, 0, 0, 36, 0], DataDir::In, 36, Vec::new())?
            .data)
    }

    /// TEST UNIT READY (SPC-4 §6.47).
    pub fn test_unit_ready(&self) -> Result<(), DiskError> {
        self.command(&[0; 6], DataDir::None, 0, Vec::new())
            .map(|_| ())
    }

    /// READ CAPACITY(16) (SBC-3 §5.16): (blocks, block size).
    pub fn read_capacity16(&self) -> Result<(u64, u32), DiskError> {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x9e;
        cdb[1] = 0x10;
        cdb[13] = 32;
        let d = self.command(&cdb, DataDir::In, 32, Vec::new())?.data;
        if d.len() < 12 {
            return Err(DiskError {
                status: CamStatus::REQ_CMP_ERR,
                scsi_status: 0,
                sense: Vec::new(),
            });
        }
        let last = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        let bs = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        Ok((last + 1, bs))
    }

    /// READ(16) (SBC-3 §5.11).
    pub fn read(&self, lba: u64, blocks: u32, block_size: u32) -> Result<Vec<u8>, DiskError> {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x88;
        cdb[2..10].copy_from_slice(&lba.to_be_bytes());
        cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
        Ok(self
            .command(&cdb, DataDir::In, blocks * block_size, Vec::new())?
            .data)
    }

    /// READ(10) (SBC-3 §5.8).
    pub fn read10(&self, lba: u32, blocks: u16, block_size: u32) -> Result<Vec<u8>, DiskError> {
        let mut cdb = [0u8; 10];
        cdb[0] = 0x28;
        cdb[2..6].copy_from_slice(&lba.to_be_bytes());
        cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
        Ok(self
            .command(
                &cdb,
                DataDir::In,
                u32::from(blocks) * block_size,
                Vec::new(),
            )?
            .data)
    }

    /// WRITE(16) (SBC-3 §5.34).
    pub fn write(&self, lba: u64, data: &[u8], block_size: u32) -> Result<(), DiskError> {
        let blocks = (data.len() as u32) / block_size;
        let mut cdb = [0u8; 16];
        cdb[0] = 0x8a;
        cdb[2..10].copy_from_slice(&lba.to_be_bytes());
        cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
        self.command(&cdb, DataDir::Out, data.len() as u32, data.to_vec())
            .map(|_| ())
    }

    /// WRITE(10) (SBC-3 §5.31).
    pub fn write10(&self, lba: u32, data: &[u8], block_size: u32) -> Result<(), DiskError> {
        let blocks = (data.len() as u32 / block_size) as u16;
        let mut cdb = [0u8; 10];
        cdb[0] = 0x2a;
        cdb[2..6].copy_from_slice(&lba.to_be_bytes());
        cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
        self.command(&cdb, DataDir::Out, data.len() as u32, data.to_vec())
            .map(|_| ())
    }

    /// SYNCHRONIZE CACHE(10) (SBC-3 §5.22).
    pub fn synchronize_cache(&self) -> Result<(), DiskError> {
        self.command(
            &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            DataDir::None,
            0,
            Vec::new(),
        )
        .map(|_| ())
    }

    /// A raw CCB that is not a SCSI command (`XPT_ABORT` of `victim`, `XPT_RESET_DEV`).
    pub fn task_management(&self, abort_victim: Option<u64>) -> Result<CamStatus, DiskError> {
        let token = self.cam.next_token.fetch_add(1, Ordering::Relaxed) + 1;
        let req = match abort_victim {
            Some(victim) => CamRequest::Abort { token, victim },
            None => CamRequest::ResetDev { token },
        };
        match self.submit(req, token, std::time::Instant::now() + self.timeout)? {
            Finished::Other(s) => Ok(s),
            Finished::Io(d) => Ok(d.status),
        }
    }

    /// The capacity the scan found: (blocks, block size).
    pub fn capacity(&self) -> Option<(u64, u32)> {
        self.cam
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .capacity
    }

    /// What the SIM answered to `XPT_PATH_INQ` and its openings, once registered.
    pub fn path_inq(&self) -> Option<(PathInq, u32)> {
        self.cam
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .registered
    }

    /// How often the SIM queue was frozen, and how many CCBs came back `CAM_REQUEUE_REQ`.
    pub fn freezes_and_requeues(&self) -> (u32, u32) {
        let g = self.cam.inner.lock().unwrap_or_else(|e| e.into_inner());
        (g.freezes, g.requeued)
    }
}

/// CAM's scan of the new bus, as `sys/cam/scsi/scsi_xpt.c`'s probe and da(4)'s attach do it:
/// INQUIRY (a direct-access device, peripheral qualifier 0), TEST UNIT READY, READ
/// CAPACITY(16).
fn probe(disk: &HostDisk) -> ScanState {
    let inq = match disk.inquiry() {
        Ok(d) => d,
        Err(e) => return ScanState::Failed(format!("INQUIRY failed: {e}")),
    };
    match inq.first() {
        Some(0x00) => {}
        Some(b) => {
            return ScanState::Failed(format!(
                "LUN 0 is not a disk (peripheral qualifier {}, device type {:#04x})",
                b >> 5,
                b & 0x1f
            ))
        }
        None => return ScanState::Failed(String::from("empty INQUIRY data")),
    }
    // A target reports a UNIT ATTENTION once after login; the session retries those itself.
    if let Err(e) = disk.test_unit_ready() {
        return ScanState::Failed(format!("TEST UNIT READY failed: {e}"));
    }
    match disk.read_capacity16() {
        Ok(cap) => {
            disk.cam
                .inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .capacity = Some(cap);
            ScanState::Attached(String::from("da0"))
        }
        Err(e) => ScanState::Failed(format!("READ CAPACITY(16) failed: {e}")),
    }
}

/// The host kernel for the boot thread.
pub struct HostBoot {
    native: Option<NativeOpener>,
    lines: Arc<Mutex<Vec<String>>>,
    echo: bool,
    cam: Arc<CamShared>,
    wake: Arc<Wake>,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<BootState>>,
    hold: Arc<AtomicBool>,
    seed: u64,
}

/// What opens the iBFT NIC's HCA for [`BootEnv::open_native_hca`] on the host (a test gives
/// one over the device model); without one there is no native driver.
pub type NativeOpener =
    Box<dyn FnMut(ibft::PciAddress) -> Result<Box<dyn hca::Verbs>, NativeError> + Send>;

impl fmt::Debug for HostBoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostBoot")
            .field("native", &self.native.is_some())
            .field("echo", &self.echo)
            .finish_non_exhaustive()
    }
}

impl HostBoot {
    /// Gives the double a native HCA driver.
    pub fn set_native(&mut self, open: NativeOpener) {
        self.native = Some(open);
    }
}

/// What a test holds on to while the boot thread runs.
#[derive(Debug, Clone)]
pub struct HostHandle {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    state: Arc<Mutex<BootState>>,
    hold: Arc<AtomicBool>,
    /// The disk on the SIM's bus.
    pub disk: HostDisk,
}

impl HostHandle {
    /// The console so far.
    pub fn console(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks the boot thread to log out and return (module unload).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.wake();
    }

    /// The published state.
    pub fn state(&self) -> BootState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the root-mount hold has been released.
    pub fn hold_released(&self) -> bool {
        self.hold.load(Ordering::SeqCst)
    }
}

impl HostBoot {
    /// A host kernel; `echo` prints console lines to stdout as they come.
    pub fn new(echo: bool) -> std::io::Result<(Self, HostHandle)> {
        let wake = Arc::new(Wake::new()?);
        let cam = Arc::new(CamShared::default());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(BootState::default()));
        let hold = Arc::new(AtomicBool::new(false));
        let handle = HostHandle {
            lines: lines.clone(),
            stop: stop.clone(),
            wake: wake.clone(),
            state: state.clone(),
            hold: hold.clone(),
            disk: HostDisk {
                cam: cam.clone(),
                wake: wake.clone(),
                timeout: std::time::Duration::from_secs(120),
            },
        };
        Ok((
            Self {
                native: None,
                lines,
                echo,
                cam,
                wake,
                stop,
                state,
                hold,
                seed: 0x0015_b007,
            },
            handle,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CamInner> {
        self.cam.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish(&self, token: u64, f: Finished) {
        self.lock().done.insert(token, f);
        self.cam.cv.notify_all();
    }
}

fn ip(args: &[&str]) -> Result<String, NetError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetError(format!("ip {}: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// The word after `key` in `ip(8)` output (`dev isb0`, `via 10.0.3.1`).
fn word_after<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| *w == key)
        .and_then(|i| words.get(i + 1))
        .copied()
}

fn parse_mac<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let mut n = 0;
    for part in s.split(':') {
        *out.get_mut(n)? = u8::from_str_radix(part, 16).ok()?;
        n += 1;
    }
    (n == N).then_some(out)
}

impl BootEnv for HostBoot {
    type Transport = HostTransport;
    type Clock = StdClock;

    fn open_native_hca(
        &mut self,
        pci: ibft::PciAddress,
    ) -> Result<Box<dyn hca::Verbs>, NativeError> {
        match self.native.as_mut() {
            Some(open) => open(pci),
            None => Err(NativeError::Unavailable),
        }
    }

    fn native_console(&self) -> crate::native::Say {
        let lines = self.lines.clone();
        let echo = self.echo;
        Box::new(move |line: &str| {
            if echo {
                std::println!("{line}");
            }
            lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(String::from(line));
        })
    }

    fn console(&self, line: fmt::Arguments<'_>) {
        let s = format!("{line}");
        if self.echo {
            std::println!("{s}");
        }
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }

    fn clock(&self) -> StdClock {
        StdClock::default()
    }

    fn interfaces(&self) -> Vec<NetIf> {
        // Through netlink (ip(8)), not /sys/class/net: sysfs shows the namespace it was
        // mounted in, not the calling thread's.
        let Ok(links) = ip(&["-o", "link", "show"]) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for l in links.lines() {
            // "5: isb0@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 ... link/ether MAC brd …"
            let mut w = l.split_whitespace();
            let (Some(_), Some(name)) = (w.next(), w.next()) else {
                continue;
            };
            let name = name.trim_end_matches(':');
            let name = name.split('@').next().unwrap_or(name).to_string();
            let flags = l
                .split_once('<')
                .and_then(|(_, r)| r.split_once('>'))
                .map(|(f, _)| f)
                .unwrap_or("");
            let up = flags.split(',').any(|f| f == "UP");
            let link_up = up && flags.split(',').any(|f| f == "LOWER_UP");
            let words: Vec<&str> = l.split_whitespace().collect();
            let after = |k: &str| word_after(&words, k);
            let link = if let Some(mac) = after("link/ether") {
                parse_mac::<6>(mac).map_or(LinkAddr::Other, LinkAddr::Ethernet)
            } else if let Some(a) = after("link/infiniband") {
                parse_mac::<20>(a).map_or(LinkAddr::Other, |lladdr| LinkAddr::Infiniband {
                    lladdr,
                    pci: None,
                    port: None,
                })
            } else {
                LinkAddr::Other
            };
            let ipv4 = ip(&["-o", "-4", "addr", "show", "dev", &name])
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    w.position(|x| x == "inet")?;
                    let (a, p) = w.next()?.split_once('/')?;
                    Some((a.parse().ok()?, p.parse().ok()?))
                })
                .collect();
            out.push(NetIf {
                name,
                link,
                up,
                link_up,
                ipv4,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn bring_up(&mut self, ifname: &str) -> Result<(), NetError> {
        ip(&["link", "set", ifname, "up"]).map(|_| ())
    }

    fn add_address(&mut self, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", ifname]).map(|_| ())
    }

    fn route(&self, dst: Ipv4Addr) -> Option<Route> {
        let out = ip(&["-o", "route", "get", &format!("{dst}")]).ok()?;
        let words: Vec<&str> = out.split_whitespace().collect();
        let after = |k: &str| word_after(&words, k).map(str::to_string);
        let ifname = after("dev")?;
        if ifname == "lo" {
            return None;
        }
        Some(Route {
            ifname,
            gateway: after("via").and_then(|g| g.parse().ok()),
        })
    }

    fn has_default_route(&self) -> bool {
        ip(&["-o", "-4", "route", "show", "default"]).is_ok_and(|s| !s.trim().is_empty())
    }

    fn add_route(
        &mut self,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
        ifname: &str,
    ) -> Result<(), NetError> {
        let d = if prefix == 0 {
            String::from("default")
        } else {
            format!("{dst}/{prefix}")
        };
        ip(&[
            "route",
            "add",
            &d,
            "via",
            &format!("{gateway}"),
            "dev",
            ifname,
        ])
        .map(|_| ())
    }

    fn transport(&mut self) -> HostTransport {
        HostTransport {
            stream: None,
            wake: self.wake.clone(),
            connect_error: None,
        }
    }

    fn entropy(&mut self, out: &mut [u8; 32]) {
        // Tests only: distinct per boot, not secret.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        self.seed ^= t;
        for (i, b) in out.iter_mut().enumerate() {
            self.seed = self
                .seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407 + i as u64);
            *b = (self.seed >> 33) as u8;
        }
    }

    fn cam_register(&mut self, inq: PathInq, openings: u32) -> Result<(), NetError> {
        {
            let mut g = self.lock();
            g.registered = Some((inq, openings));
            g.scan = Some(ScanState::Scanning);
        }
        let disk = HostDisk {
            cam: self.cam.clone(),
            wake: self.wake.clone(),
            timeout: std::time::Duration::from_secs(60),
        };
        std::thread::Builder::new()
            .name(String::from("cam-scan"))
            .spawn(move || {
                let r = probe(&disk);
                disk.cam
                    .inner
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .scan = Some(r);
                disk.wake.wake();
            })
            .map(|_| ())
            .map_err(|e| NetError(format!("starting the scan: {e}")))
    }

    fn cam_next(&mut self, _pool: &mut cam::BufferPool) -> Option<CamRequest> {
        self.lock().queue.pop_front()
    }

    fn cam_done_io(&mut self, done: &ScsiIoDone) {
        self.finish(done.token, Finished::Io(done.clone()));
    }

    fn cam_done(&mut self, token: u64, status: CamStatus) {
        self.finish(token, Finished::Other(status));
    }

    fn cam_queue(&mut self, ev: QueueEvent) {
        let mut g = self.lock();
        match ev {
            QueueEvent::Freeze => {
                g.frozen = true;
                g.freezes += 1;
            }
            QueueEvent::Release => g.frozen = false,
        }
        drop(g);
        self.cam.cv.notify_all();
    }

    fn cam_scan(&mut self) -> ScanState {
        self.lock().scan.clone().unwrap_or(ScanState::Scanning)
    }

    fn release_hold(&mut self) {
        self.hold.store(true, Ordering::SeqCst);
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn publish_state(&mut self, state: &BootState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state.clone();
    }
}
