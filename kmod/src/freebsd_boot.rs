//! The boot thread on FreeBSD: [`BootEnv`] over the kernel, the kernel thread that runs
//! [`boot::run`], and the state it shares with the module events and `sysctl net.isboot`.
//!
//! - **console**: printf(9) lines; **clock**: `binuptime(9)` (a real function in 14 and 15;
//!   `sbinuptime()` is an inline over it), sleeps with `pause_sbt(9)`; **entropy**:
//!   `arc4random_buf(9)`.
//! - **interfaces**: listed, with their IPv4 addresses, by an rtnetlink dump on a kernel
//!   netlink socket (`RTM_GETLINK`, `RTM_GETADDR`; [`crate::netlink`]); the route to an address
//!   is an `RTM_GETROUTE`; `IFF_UP` and the address go through `ifioctl()` on a UDP socket
//!   (`SIOCSIFFLAGS`, `SIOCAIFADDR`: in_control(), as ifconfig(8) does); a route is added with
//!   an `RTM_ADD` on a routing socket ([`crate::rtmsg`]). The socket calls run in the socket's
//!   vnet: nothing here writes `curthread->td_vnet`, whose offset differs between 14 and 15.
//! - **transport**: a kernel TCP socket (`socreate`, `soconnect` and a wait on the handshake,
//!   `TCP_NODELAY`, `SO_KEEPALIVE`, `SO_SNDTIMEO`). Sends are `sosend` through a uio from the
//!   boot thread. Receives are `soreceive` by the boot thread too, through a uio straight
//!   into the session's buffers (for Data-In, the CCB's own buffer). While the target owes an
//!   answer the thread blocks in `soreceive` for at most [`RX_SLICE`] (`SO_RCVTIMEO`); with
//!   nothing due it sleeps (`_sleep`, `msleep_sbt` on a mutex of its own) for at most
//!   [`IDLE_POLL`], looking at the socket before and after (`MSG_DONTWAIT`). CAM's action
//!   routine, after queueing a CCB, takes that mutex and `wakeup`s the channel, so a new
//!   command wakes an idle boot thread at once; one that is waiting for an answer takes it
//!   when the answer comes (or the slice ends). Nothing reads `struct socket` (its socket
//!   buffer locks moved between 14 and 15).
//! - **CAM**: the SIM lives in the shim (`isboot_boot.c`): its action routine answers what
//!   needs no target and queues `XPT_SCSI_IO`, `XPT_ABORT` and `XPT_RESET_DEV` for this
//!   thread, which decides them with [`crate::cam::Sim`] and completes them through the shim.
//! - **root hold**: taken at `MOD_LOAD` (`root_mount_hold("isboot")`), released by the thread
//!   (`root_mount_rel`) when the disk attached or the boot failed.

use alloc::boxed::Box;
use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int, c_void};
use core::fmt;
use core::net::Ipv4Addr;
use core::pin::Pin;
use core::ptr;

use ibft::Ibft;
use iscsi_initiator::session::{DataBuf, Portal};
use iscsi_initiator::time::{Duration, DurationExt, Instant};
use iscsi_initiator::transport::{Clock, Received, RecvHint, Transport};
use kernel_bindings::abi::{
    Bintime, Ccb, CcbInfo, IoVec, PathInqInfo, RootHoldToken, Socket, SysctlOid, SysctlReq,
    AF_INET, AF_NETLINK, C_HARDCLOCK, EINTR, EWOULDBLOCK, IPPROTO_TCP, MSG_DONTWAIT, NETLINK_ROUTE,
    PF_ROUTE, SBT_1S, SOCK_RAW, SOCK_STREAM, SOL_SOCKET, SO_KEEPALIVE, SO_RCVLOWAT, SO_RCVTIMEO,
    SO_SNDTIMEO, TCP_NODELAY,
};
use kernel_bindings::ffi::{self, shim};
use kernel_bindings::sync::Mutex;

use crate::boot::{
    self, BootEnv, BootState, BootTunables, CamRequest, LinkAddr, NetError, NetIf, Route, ScanState,
};
use crate::cam::{self, CamStatus, DataDir, QueueEvent, ScsiIo, ScsiIoDone};
use crate::iblink::{IbHwAddr, IbLink, LinkEvent, TxError};
use crate::native::NativeLink;
use crate::netlink::{self, Link};
use crate::rtmsg;

/// How long a send may block on a full socket buffer before the connection counts as lost.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// Kernel stack pages for the boot thread (4 is the default): the session, the login and
/// CAM's decisions run on it.
pub const THREAD_PAGES: c_int = 8;
/// How long a netlink request may take to be answered.
const NETLINK_WAIT: Duration = Duration::from_secs(2);
/// `ETIMEDOUT`.
const ETIMEDOUT: c_int = 60;

// netlink.rs speaks the rtnetlink of the FreeBSD headers (asserted in isboot_boot_abi.h).
const _: () = {
    use kernel_bindings::abi::nl;
    assert!(netlink::NLMSG_ERROR == nl::NLMSG_ERROR && netlink::NLMSG_DONE == nl::NLMSG_DONE);
    assert!(netlink::NLM_F_REQUEST == nl::NLM_F_REQUEST && netlink::NLM_F_DUMP == nl::NLM_F_DUMP);
    assert!(netlink::RTM_NEWLINK == nl::RTM_NEWLINK && netlink::RTM_GETLINK == nl::RTM_GETLINK);
    assert!(netlink::RTM_NEWADDR == nl::RTM_NEWADDR && netlink::RTM_GETADDR == nl::RTM_GETADDR);
    assert!(netlink::RTM_NEWROUTE == nl::RTM_NEWROUTE);
    assert!(netlink::RTM_GETROUTE == nl::RTM_GETROUTE);
    assert!(netlink::IFLA_ADDRESS == nl::IFLA_ADDRESS && netlink::IFLA_IFNAME == nl::IFLA_IFNAME);
    assert!(netlink::IFLA_OPERSTATE == nl::IFLA_OPERSTATE && netlink::IF_OPER_UP == nl::IF_OPER_UP);
    assert!(netlink::IFA_ADDRESS == nl::IFA_ADDRESS && netlink::IFA_LOCAL == nl::IFA_LOCAL);
    assert!(netlink::RTA_DST == nl::RTA_DST && netlink::RTA_OIF == nl::RTA_OIF);
    assert!(netlink::RTA_GATEWAY == nl::RTA_GATEWAY);
    assert!(netlink::NLMSG_HDRLEN == nl::NLMSGHDR_SIZE);
};

// The CAM numbers of cam.rs are the ones the shim's headers assert (isboot_boot_abi.h).
const _: () = {
    assert!(CamStatus::REQ_CMP.0 == 0x01 && CamStatus::REQUEUE_REQ.0 == 0x1b);
    assert!(CamStatus::DEV_QFRZN == 0x40 && CamStatus::AUTOSNS_VALID == 0x80);
    assert!(cam::func::SCSI_IO == 0x901 && cam::func::ABORT == 0x10);
    assert!(cam::func::RESET_DEV == 0x912);
};

fn errno_text(e: c_int) -> NetError {
    let name = match e {
        1 => "EPERM",
        6 => "ENXIO",
        12 => "ENOMEM",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        22 => "EINVAL",
        35 => "EWOULDBLOCK",
        47 => "EAFNOSUPPORT",
        49 => "EADDRNOTAVAIL",
        50 => "ENETDOWN",
        51 => "ENETUNREACH",
        60 => "ETIMEDOUT",
        61 => "ECONNREFUSED",
        64 => "EHOSTDOWN",
        65 => "EHOSTUNREACH",
        _ => "",
    };
    NetError(if name.is_empty() {
        format!("error {e}")
    } else {
        format!("{name} (error {e})")
    })
}

fn cstring(s: &str) -> Result<CString, NetError> {
    CString::new(s).map_err(|_| NetError(String::from("a name with a NUL byte")))
}

fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Time

/// The uptime clock: `binuptime(9)`, sleeps with `pause_sbt(9)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelClock;

/// An `sbintime_t` (32.32 fixed point seconds) for a duration, without 128-bit arithmetic.
pub fn sbt(d: Duration) -> i64 {
    let secs = i64::try_from(d.as_secs())
        .unwrap_or(i64::MAX >> 32)
        .min(i64::MAX >> 33);
    // nanos < 1e9 < 2^30: nanos * 2^32 < 2^62.
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    secs * SBT_1S + frac as i64
}

/// Nanoseconds of a `struct bintime` (`frac` is in 1/2^64 seconds), without 128-bit
/// arithmetic.
pub fn bintime_nanos(bt: &Bintime) -> u64 {
    let secs = u64::try_from(bt.sec).unwrap_or(0);
    let frac_ns = ((bt.frac >> 32) * 1_000_000_000) >> 32;
    secs.saturating_mul(1_000_000_000).saturating_add(frac_ns)
}

/// The uptime (`binuptime(9)`): the one clock of the boot thread, the HCA driver and the
/// interface's poll thread.
pub fn uptime() -> Instant {
    let mut bt = Bintime::default();
    // SAFETY: `bt` is a valid struct bintime for the call.
    unsafe { ffi::binuptime(&mut bt) };
    Instant::from_nanos(bintime_nanos(&bt))
}

impl Clock for KernelClock {
    fn now(&self) -> Instant {
        uptime()
    }

    fn sleep(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        // SAFETY: a static NUL-terminated wait message; any sbt is valid.
        unsafe { ffi::pause_sbt(c"isboot".as_ptr(), sbt(d), 0, C_HARDCLOCK) };
    }
}

// ---------------------------------------------------------------------------------------------
// The transport: a kernel TCP socket, read by the boot thread

/// How long the boot thread blocks in `soreceive` at a time while the target owes an answer
/// (`SO_RCVTIMEO`): a CCB that CAM queues meanwhile waits about this long at most for the
/// boot thread (usually much less: until the next answer arrives). Also how long a wait for
/// a batch of answers (`SO_RCVLOWAT`) lasts before the thread settles for what is there.
pub const RX_SLICE: Duration = Duration::from_millis(1);
/// The largest receive low-water mark asked for (FreeBSD's `sosetopt` caps `sb_lowat` at the
/// receive buffer's `sb_hiwat`; this stays well under the default 64 KiB-and-growing buffer).
const LOWAT_MAX: usize = 48 * 1024;
/// How long the boot thread sleeps at a time, when no answer is due, before it looks at the
/// socket again for what the target sends unasked (a NOP-In, an asynchronous message, the
/// end of the connection). CAM's action routine wakes it at once.
pub const IDLE_POLL: Duration = Duration::from_millis(10);
/// The most buffers one receive fills (the session's plan: the rest of a data segment, the
/// segments after it with their headers, and the driver's own buffer).
const MAX_IOV: usize = 16;

/// The channel the boot thread sleeps on for CCBs while nothing is due.
fn cam_chan(wake: Pin<&Mutex<()>>) -> *const c_void {
    ptr::from_ref(wake.get_ref()).cast()
}

/// The session's TCP connection, used by the boot thread alone: `sosend`, and `soreceive`
/// straight into the session's buffers (a lent CCB buffer for Data-In: one copy, out of the
/// socket buffer). While the target owes an answer the thread blocks in `soreceive`
/// ([`RX_SLICE`] at a time); otherwise it sleeps on a channel that CAM's action routine
/// wakes when it queues a CCB (`isboot_cam_set_wake`), looking at the socket every
/// [`IDLE_POLL`].
#[derive(Debug)]
pub struct KernelTransport {
    so: *mut Socket,
    /// The socket's `SO_RCVLOWAT` as last set (1: any byte ends a wait).
    lowat: usize,
    /// The mutex and channel of the action routine's wake-up (registered for the
    /// transport's life).
    wake: Pin<Box<Mutex<()>>>,
}

// SAFETY: the socket is used by the boot thread alone (the transport moves into it).
unsafe impl Send for KernelTransport {}

impl KernelTransport {
    fn new() -> Self {
        let wake = Mutex::new_boxed(c"isboot cam wake", ());
        // SAFETY: the mutex is initialised and pinned; it outlives the registration (Drop
        // clears it first).
        unsafe { shim::isboot_cam_set_wake(wake.as_ref().raw(), cam_chan(wake.as_ref())) };
        Self {
            so: ptr::null_mut(),
            lowat: 1,
            wake,
        }
    }

    /// Sets `SO_RCVLOWAT` to `n` unless it is that already: false if the socket refused it.
    fn set_lowat(&mut self, n: usize) -> bool {
        if n == self.lowat {
            return true;
        }
        let v = c_int::try_from(n).unwrap_or(c_int::MAX);
        // SAFETY: our open socket; an int option.
        if unsafe { shim::isboot_so_setopt_int(self.so, SOL_SOCKET, SO_RCVLOWAT, v) } != 0 {
            return false;
        }
        self.lowat = n;
        true
    }

    /// One `soreceive` into `bufs` in order: the bytes, or what the stream says.
    fn receive(&mut self, bufs: &mut [&mut [u8]], flags: c_int) -> Option<Received> {
        let mut iov = [IoVec {
            base: ptr::null_mut(),
            len: 0,
        }; MAX_IOV];
        let mut n = 0;
        for b in bufs.iter_mut().filter(|b| !b.is_empty()).take(MAX_IOV) {
            iov[n] = IoVec {
                base: b.as_mut_ptr(),
                len: b.len(),
            };
            n += 1;
        }
        if n == 0 {
            return Some(Received::Timeout);
        }
        let mut got = 0usize;
        // SAFETY: `iov[..n]` describe the caller's buffers, valid and ours for the call; the
        // socket is ours and open.
        let error = unsafe {
            shim::isboot_so_recvv(self.so, iov.as_mut_ptr(), n as c_int, flags, &mut got)
        };
        match (error, got) {
            (_, n) if n > 0 => Some(Received::Data(n)),
            // Nothing there yet (MSG_DONTWAIT), or the RX_SLICE ran out.
            (EWOULDBLOCK | EINTR, _) => None,
            // End of stream (0 bytes, no error), or an error: the connection is over.
            (e, _) => {
                if e != 0 {
                    log::debug!("receive: {}", errno_text(e));
                }
                Some(Received::Closed)
            }
        }
    }
}

impl Drop for KernelTransport {
    fn drop(&mut self) {
        self.close();
        // SAFETY: no argument is kept; afterwards the action routine wakes nobody.
        unsafe { shim::isboot_cam_set_wake(ptr::null_mut(), ptr::null()) };
    }
}

impl Transport for KernelTransport {
    fn connect(&mut self, portal: &Portal, timeout: Duration) -> bool {
        self.close();
        let Ok(addr) = portal.host.parse::<Ipv4Addr>() else {
            return false;
        };
        let mut so = ptr::null_mut();
        // SAFETY: `so` is a valid out-pointer.
        if unsafe { shim::isboot_so_create(AF_INET, SOCK_STREAM, IPPROTO_TCP, &mut so) } != 0
            || so.is_null()
        {
            return false;
        }
        // SAFETY: `so` was just created and is ours; the options take plain ints/timevals.
        unsafe {
            shim::isboot_so_setopt_int(so, IPPROTO_TCP, TCP_NODELAY, 1);
            shim::isboot_so_setopt_int(so, SOL_SOCKET, SO_KEEPALIVE, 1);
            shim::isboot_so_setopt_timeout(so, SO_SNDTIMEO, SEND_TIMEOUT.total_micros());
            shim::isboot_so_setopt_timeout(so, SO_RCVTIMEO, RX_SLICE.total_micros());
        }
        let ms = u32::try_from(timeout.total_millis()).unwrap_or(u32::MAX);
        // SAFETY: as above.
        let error = unsafe { shim::isboot_so_connect4(so, u32::from(addr), portal.port, ms) };
        if error != 0 {
            log::debug!("connect {addr}:{}: {}", portal.port, errno_text(error));
            // SAFETY: ours, closed once.
            unsafe { shim::isboot_so_close(so) };
            return false;
        }
        self.so = so;
        self.lowat = 1;
        true
    }

    fn close(&mut self) {
        if self.so.is_null() {
            return;
        }
        // SAFETY: a socket of ours, closed once (the pointer is cleared).
        unsafe { shim::isboot_so_close(self.so) };
        self.so = ptr::null_mut();
    }

    fn send(&mut self, data: &[u8]) -> Option<usize> {
        if self.so.is_null() {
            return None;
        }
        let mut sent = 0usize;
        // SAFETY: `data` is valid for `data.len()` bytes during the call; `sent` is ours.
        let error =
            unsafe { shim::isboot_so_send(self.so, data.as_ptr().cast(), data.len(), &mut sent) };
        match (error, sent) {
            (0, n) => Some(n),
            // Interrupted or timed out after some progress: take what went.
            (_, n) if n > 0 => Some(n),
            _ => None,
        }
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Received {
        self.recv_vectored(&mut [buf], timeout, RecvHint::default())
    }

    fn recv_hinted(&mut self, buf: &mut [u8], timeout: Duration, hint: RecvHint) -> Received {
        self.recv_vectored(&mut [buf], timeout, hint)
    }

    fn recv_vectored(
        &mut self,
        bufs: &mut [&mut [u8]],
        timeout: Duration,
        hint: RecvHint,
    ) -> Received {
        if self.so.is_null() {
            return Received::Closed;
        }
        // SAFETY: reads an integer the action routine updates atomically.
        let ccbs = || unsafe { shim::isboot_cam_pending() } > 0;
        if hint.answer_due && !ccbs() {
            // Something is coming: wait for it in the stream (RX_SLICE at a time). When the
            // driver expects a batch of answers (many commands at the target), wait for that
            // much (`SO_RCVLOWAT`): one wake-up for all of them. If it does not come within
            // RX_SLICE, take what is there (MSG_DONTWAIT ignores the low-water mark; the
            // driver then stops asking for a while), else wait for any byte. The rest of a
            // large Data-In (`hint.min` > 1) is taken as it comes: waiting for more of it
            // cost more than it saved (docs/bench-profile.md).
            let total = bufs
                .iter()
                .take(MAX_IOV)
                .map(|b| b.len())
                .fold(0usize, usize::saturating_add);
            let likely = hint.likely.min(total).min(LOWAT_MAX);
            if hint.min <= 1 && likely > 1 && self.set_lowat(likely) {
                if let Some(r) = self.receive(bufs, 0) {
                    return r;
                }
                if let Some(r) = self.receive(bufs, MSG_DONTWAIT) {
                    return r;
                }
            }
            if !self.set_lowat(1) {
                return Received::Closed;
            }
            return self.receive(bufs, 0).unwrap_or(Received::Timeout);
        }
        if let Some(r) = self.receive(bufs, MSG_DONTWAIT) {
            return r;
        }
        if ccbs() {
            return Received::Timeout;
        }
        // Nothing due and nothing there: sleep until CAM queues a CCB, or IDLE_POLL.
        let wait = timeout.min(IDLE_POLL);
        if !wait.is_zero() {
            let wake = self.wake.as_ref();
            let mut g = wake.lock();
            // The action routine queues, counts `pending`, then takes this mutex to wake
            // us: looked at under the mutex, a CCB is either seen here or wakes the sleep.
            if !ccbs() {
                g.sleep(cam_chan(wake), c"isbidle", sbt(wait));
            }
        }
        Received::Timeout
    }
}

// ---------------------------------------------------------------------------------------------
// State shared by the thread, the module events and the sysctl handlers

/// A root-mount hold token (the kernel's; released once).
#[derive(Debug)]
struct Hold(*mut RootHoldToken);

// SAFETY: the token is an opaque kernel pointer handed between the module event thread and
// the boot thread under the shared mutex; the kernel does not tie it to a thread.
unsafe impl Send for Hold {}

/// What the boot thread shares.
#[derive(Debug, Default)]
pub struct SharedState {
    /// What `sysctl net.isboot` shows.
    pub boot: BootState,
    /// The module asks the thread to log out and return.
    pub stop: bool,
    /// The thread has returned from [`boot::run`] (it is about to call `kthread_exit`).
    pub exited: bool,
    hold: Option<Hold>,
    /// The module's own IPoIB interface, once the boot thread attached it; detached at
    /// unload after the thread has returned and the disk is gone ([`take_native_if`]).
    native_if: Option<crate::freebsd_ifnet::IfHandle>,
}

/// The shared state behind its mutex (pinned: the mutex is registered by address).
pub type Shared = Pin<Box<Mutex<SharedState>>>;

/// A new shared state holding `hold` (from `root_mount_hold`; NULL after boot).
pub fn new_shared(hold: *mut RootHoldToken) -> Shared {
    Mutex::new_boxed(
        c"isboot state",
        SharedState {
            hold: (!hold.is_null()).then_some(Hold(hold)),
            ..SharedState::default()
        },
    )
}

/// The module's own IPoIB interface, if the boot thread attached one (for unload to detach).
pub fn take_native_if(shared: Pin<&Mutex<SharedState>>) -> Option<crate::freebsd_ifnet::IfHandle> {
    shared.lock().native_if.take()
}

/// Gives an interface back (its detach failed; a later unload tries again).
pub fn keep_native_if(shared: Pin<&Mutex<SharedState>>, h: crate::freebsd_ifnet::IfHandle) {
    shared.lock().native_if = Some(h);
}

/// The module's own IPoIB link as the ifnet holds it.
struct PolledLink(NativeLink);

// SAFETY: `NativeLink` is not `Send` only because it owns a `Box<dyn hca::Verbs>` and a
// `Box<dyn FnMut(&str)>`, neither of which is tied to a thread: the verbs are the module's
// driver of the HCA (`freebsd_hca`: bus_space handles, busdma memory and plain data, no
// thread-local state and nothing borrowed from the boot thread's stack) and the console sink
// captures nothing (it calls printf(9)). The boot thread gives the link up entirely when it
// hands it to `freebsd_ifnet::attach`; from then on one thread at a time uses it: `attach`
// before the interface's poll thread starts, the poll thread alone while it runs (`if_transmit`
// only queues frames), `detach`'s shutdown after the poll thread has exited.
unsafe impl Send for PolledLink {}

impl IbLink for PolledLink {
    fn hwaddr(&self) -> IbHwAddr {
        self.0.hwaddr()
    }
    fn broadcast(&self) -> IbHwAddr {
        self.0.broadcast()
    }
    fn ip_mtu(&self) -> u32 {
        self.0.ip_mtu()
    }
    fn baudrate(&self) -> u64 {
        self.0.baudrate()
    }
    fn port(&self) -> u8 {
        self.0.port()
    }
    fn transmit(&mut self, frame: &[u8], now: clock::Instant) -> Result<(), TxError> {
        self.0.transmit(frame, now)
    }
    fn poll(
        &mut self,
        now: clock::Instant,
        rx: &mut dyn FnMut(&[u8]),
        event: &mut dyn FnMut(LinkEvent),
    ) {
        self.0.poll(now, rx, event)
    }
    fn poll_at(&self) -> Option<clock::Instant> {
        self.0.poll_at()
    }
    fn set_ipv4(&mut self, addr: Ipv4Addr, prefix: u8) {
        self.0.set_ipv4(addr, prefix)
    }
    fn shutdown(&mut self) {
        self.0.shutdown()
    }
}

/// Releases the root-mount hold if it is still held.
pub fn release_hold(shared: Pin<&Mutex<SharedState>>) {
    let hold = shared.lock().hold.take();
    if let Some(Hold(h)) = hold {
        // SAFETY: a token from root_mount_hold, released exactly once (taken out above).
        unsafe { ffi::root_mount_rel(h) };
    }
}

/// The `net.isboot.*` oids of the boot state: name, `arg2`, description.
pub const STATE_OIDS: [(&str, i64, &str); 6] = [
    ("device", 0, "the iSCSI disk (da(4) unit), once attached"),
    ("nic", 1, "the boot interface"),
    ("target", 2, "the boot target: name at address:port LUN n"),
    ("session_state", 3, "the iSCSI session's state"),
    ("reconnects", 4, "connections re-established after a loss"),
    (
        "last_error",
        5,
        "the last error of the boot thread, in words",
    ),
];

/// The `net.isboot.timing.*` oids (`CTLTYPE_INT`, milliseconds, -1 until reached): name,
/// `arg2` (the stage's index in [`crate::boot::StageTimes::stages`] plus [`TIMING_ARG2`]),
/// description.
pub const TIMING_OIDS: [(&str, i64, &str); 5] = [
    (
        "interface_ms",
        TIMING_ARG2,
        "ms from the boot thread's start to the boot interface up (-1: not yet)",
    ),
    (
        "address_ms",
        TIMING_ARG2 + 1,
        "ms from the boot thread's start to its address configured (-1: not yet)",
    ),
    (
        "login_ms",
        TIMING_ARG2 + 2,
        "ms from the boot thread's start to the iSCSI login (-1: not yet)",
    ),
    (
        "disk_ms",
        TIMING_ARG2 + 3,
        "ms from the boot thread's start to CAM attaching the disk (-1: not yet)",
    ),
    (
        "hold_released_ms",
        TIMING_ARG2 + 4,
        "ms from the boot thread's start to the root mount hold's release (-1: not yet)",
    ),
];

/// The first `arg2` of [`TIMING_OIDS`].
pub const TIMING_ARG2: i64 = 10;

/// The handler of the boot-state oids: `arg1` is the [`Mutex<SharedState>`], `arg2` the
/// field ([`STATE_OIDS`], [`TIMING_OIDS`]). The value is copied under the mutex and handed to
/// `sysctl_handle_string`/`sysctl_handle_int` after it is released (they copy out to user
/// space, which may fault and sleep).
///
/// # Safety
/// Called by the kernel's sysctl code with `arg1` the pointer given at registration, alive
/// until the oid is removed.
pub unsafe extern "C" fn state_sysctl(
    oidp: *mut SysctlOid,
    arg1: *mut c_void,
    arg2: i64,
    req: *mut SysctlReq,
) -> c_int {
    // SAFETY: arg1 is the pinned Mutex<SharedState> registered with the oid, which outlives
    // it (the oids are removed before the state is freed; removal waits for handlers).
    let shared = unsafe { &*arg1.cast::<Mutex<SharedState>>() };
    // SAFETY: pinned on the heap (Shared), never moved.
    let shared = unsafe { Pin::new_unchecked(shared) };
    if arg2 >= TIMING_ARG2 {
        let stage = usize::try_from(arg2 - TIMING_ARG2).unwrap_or(usize::MAX);
        let times = shared.lock().boot.timing;
        let mut v: c_int = times
            .stages()
            .get(stage)
            .and_then(|(_, ms)| *ms)
            .map_or(-1, |ms| c_int::try_from(ms).unwrap_or(c_int::MAX));
        // SAFETY: `v` is a valid int for the call; the oid is read-only.
        return unsafe { ffi::sysctl_handle_int(oidp, ptr::addr_of_mut!(v).cast(), 0, req) };
    }
    if arg2 == 4 {
        let mut v: u32 = shared.lock().boot.reconnects;
        // SAFETY: `v` is a valid u_int for the call; the oid is read-only.
        return unsafe { ffi::sysctl_handle_int(oidp, ptr::addr_of_mut!(v).cast(), 0, req) };
    }
    let text = {
        let g = shared.lock();
        let s = &g.boot;
        match arg2 {
            0 => s.device.clone(),
            1 => s.nic.clone(),
            2 => s.target.clone(),
            3 => s.session_state.clone(),
            _ => s.last_error.clone(),
        }
    };
    let text = CString::new(text.replace('\0', "?")).unwrap_or_default();
    // SAFETY: a NUL-terminated string alive for the call; arg2 0: its strlen; read-only.
    unsafe { ffi::sysctl_handle_string(oidp, text.as_ptr().cast_mut().cast(), 0, req) }
}

// ---------------------------------------------------------------------------------------------
// BootEnv

/// How often [`BootEnv::cam_scan`] looks for the disk (a lookup of the da(4) unit and its
/// GEOM provider): the delay between the attachment and the root mount hold's release.
const SCAN_POLL: Duration = Duration::from_millis(10);

/// The FreeBSD kernel around the boot thread.
pub struct KernelBootEnv {
    shared: Pin<&'static Mutex<SharedState>>,
    route_seq: i32,
    last_scan: Option<Instant>,
}

impl fmt::Debug for KernelBootEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelBootEnv").finish_non_exhaustive()
    }
}

impl KernelBootEnv {
    /// The environment over `shared` (which outlives the thread: the module waits for it).
    pub fn new(shared: Pin<&'static Mutex<SharedState>>) -> Self {
        Self {
            shared,
            route_seq: 0,
            last_scan: None,
        }
    }
}

/// One rtnetlink request on a fresh kernel netlink socket, and its whole answer (a dump up to
/// `NLMSG_DONE`, or the single reply of a request).
fn netlink_exchange(req: &[u8]) -> Result<Vec<u8>, NetError> {
    let dump = req
        .get(6..8)
        .map(|f| u16::from_ne_bytes([f[0], f[1]]) & netlink::NLM_F_DUMP)
        != Some(0);
    let mut so = ptr::null_mut();
    // SAFETY: `so` is a valid out-pointer.
    let e = unsafe { shim::isboot_so_create(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, &mut so) };
    if e != 0 || so.is_null() {
        return Err(NetError(format!("netlink socket: {}", errno_text(e).0)));
    }
    let result = (|| {
        // SAFETY: `so` is ours; `req` is valid for its length.
        unsafe {
            shim::isboot_so_setopt_timeout(so, SO_RCVTIMEO, NETLINK_WAIT.total_micros());
        }
        let mut sent = 0usize;
        // SAFETY: as above.
        let e = unsafe { shim::isboot_so_send(so, req.as_ptr().cast(), req.len(), &mut sent) };
        if e != 0 || sent != req.len() {
            return Err(e.max(1));
        }
        let mut all = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let mut got = 0usize;
            // SAFETY: `buf` is writable for its length; `got` is ours.
            let e = unsafe {
                shim::isboot_so_recv(so, buf.as_mut_ptr().cast(), buf.len(), 0, &mut got)
            };
            if e != 0 || got == 0 {
                return Err(if e == EWOULDBLOCK {
                    ETIMEDOUT
                } else {
                    e.max(1)
                });
            }
            let chunk = buf.get(..got).unwrap_or(&buf);
            all.extend_from_slice(chunk);
            let msgs = netlink::messages(chunk);
            if let Some(err) = msgs.iter().find_map(netlink::error_of) {
                if err != 0 {
                    return Err(err);
                }
            }
            if !dump || msgs.iter().any(|m| m.ty == netlink::NLMSG_DONE) {
                return Ok(all);
            }
        }
    })();
    // SAFETY: ours, closed once.
    unsafe { shim::isboot_so_close(so) };
    result.map_err(|e| NetError(format!("netlink: {}", errno_text(e).0)))
}

fn links() -> Result<Vec<Link>, NetError> {
    let buf = netlink_exchange(&netlink::get_links(1))?;
    Ok(netlink::messages(&buf)
        .iter()
        .filter_map(netlink::parse_link)
        .collect())
}

/// An interface from its rtnetlink description and the IPv4 addresses of the dump.
fn net_if(l: &Link, addrs: &[(u32, Ipv4Addr, u8)]) -> NetIf {
    let link = match l.lladdr.len() {
        _ if l.is_loopback() => LinkAddr::Other,
        6 => {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&l.lladdr);
            LinkAddr::Ethernet(mac)
        }
        20 => {
            let mut lladdr = [0u8; 20];
            lladdr.copy_from_slice(&l.lladdr);
            LinkAddr::Infiniband {
                lladdr,
                pci: None,
                port: None,
            }
        }
        _ => LinkAddr::Other,
    };
    NetIf {
        name: l.name.clone(),
        link,
        up: l.up(),
        link_up: l.link_up(),
        ipv4: addrs
            .iter()
            .filter(|(i, _, _)| *i == l.index)
            .map(|&(_, a, p)| (a, p))
            .collect(),
    }
}

impl BootEnv for KernelBootEnv {
    type Transport = KernelTransport;
    type Clock = KernelClock;

    fn console(&self, line: fmt::Arguments<'_>) {
        kernel_bindings::console::print_line(line);
    }

    fn clock(&self) -> KernelClock {
        KernelClock
    }

    fn interfaces(&self) -> Vec<NetIf> {
        let listed = links().and_then(|links| {
            let buf = netlink_exchange(&netlink::get_addrs(2))?;
            let addrs: Vec<_> = netlink::messages(&buf)
                .iter()
                .filter_map(netlink::parse_addr)
                .collect();
            Ok(links.iter().map(|l| net_if(l, &addrs)).collect())
        });
        match listed {
            Ok(ifs) => ifs,
            Err(e) => {
                log::warn!("listing interfaces: {e}");
                Vec::new()
            }
        }
    }

    fn bring_up(&mut self, ifname: &str) -> Result<(), NetError> {
        let name = cstring(ifname)?;
        // SAFETY: a NUL-terminated name.
        match unsafe { shim::isboot_if_up(name.as_ptr()) } {
            0 => Ok(()),
            e => Err(errno_text(e)),
        }
    }

    fn add_address(&mut self, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        let name = cstring(ifname)?;
        let mask = rtmsg::prefix_mask(prefix);
        // SAFETY: a NUL-terminated name; plain integers.
        match unsafe { shim::isboot_if_addr4(name.as_ptr(), u32::from(addr), mask) } {
            0 => Ok(()),
            e => Err(errno_text(e)),
        }
    }

    fn route(&self, dst: Ipv4Addr) -> Option<Route> {
        let buf = netlink_exchange(&netlink::get_route(3, dst)).ok()?;
        let r = netlink::messages(&buf)
            .iter()
            .find_map(netlink::parse_route)?;
        let ifname = links()
            .ok()?
            .into_iter()
            .find(|l| l.index == r.oif)
            .map(|l| l.name)
            .unwrap_or_default();
        Some(Route {
            ifname,
            gateway: r.gateway,
        })
    }

    fn has_default_route(&self) -> bool {
        // Only the default route covers 0.0.0.0 (no network route includes it).
        self.route(Ipv4Addr::UNSPECIFIED).is_some()
    }

    fn add_route(
        &mut self,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
        _ifname: &str,
    ) -> Result<(), NetError> {
        self.route_seq = self.route_seq.wrapping_add(1);
        let msg = rtmsg::add_route(dst, prefix, gateway, self.route_seq);
        let mut so = ptr::null_mut();
        // SAFETY: `so` is a valid out-pointer.
        let e = unsafe { shim::isboot_so_create(PF_ROUTE, SOCK_RAW, 0, &mut so) };
        if e != 0 || so.is_null() {
            return Err(errno_text(e));
        }
        let mut sent = 0usize;
        // SAFETY: `msg` is valid for its length; `so` is ours and closed once below.
        let e = unsafe { shim::isboot_so_send(so, msg.as_ptr().cast(), msg.len(), &mut sent) };
        // SAFETY: as above.
        unsafe { shim::isboot_so_close(so) };
        match e {
            0 => Ok(()),
            e => Err(errno_text(e)),
        }
    }

    fn transport(&mut self) -> KernelTransport {
        KernelTransport::new()
    }

    fn entropy(&mut self, out: &mut [u8; 32]) {
        // SAFETY: `out` is valid for 32 bytes.
        unsafe { ffi::arc4random_buf(out.as_mut_ptr().cast(), out.len()) };
    }

    fn cam_register(&mut self, inq: cam::PathInq, openings: u32) -> Result<(), NetError> {
        let c = PathInqInfo {
            hba_inquiry: inq.hba_inquiry,
            spare: [0; 3],
            hba_misc: inq.hba_misc,
            max_target: inq.max_target,
            max_lun: inq.max_lun,
            maxio: inq.maxio,
            base_transfer_speed: inq.base_transfer_speed,
            transport: inq.transport,
            protocol: inq.protocol,
            protocol_version: inq.protocol_version,
        };
        // SAFETY: `c` is valid for the call (the shim copies it).
        match unsafe { shim::isboot_cam_register(&c, openings) } {
            0 => Ok(()),
            e => Err(NetError(format!(
                "registering the CAM SIM: {}",
                errno_text(e)
            ))),
        }
    }

    fn cam_next(&mut self, pool: &mut cam::BufferPool) -> Option<CamRequest> {
        let mut c = CcbInfo::ZERO;
        // SAFETY: `c` is a valid out-struct.
        if unsafe { shim::isboot_cam_next(&mut c) } == 0 {
            return None;
        }
        let token = c.ccb as u64;
        Some(match c.func_code {
            cam::func::ABORT => CamRequest::Abort {
                token,
                victim: c.abort_ccb as u64,
            },
            cam::func::RESET_DEV => CamRequest::ResetDev { token },
            _ => {
                let dir = match c.flags & kernel_bindings::abi::CAM_DIR_MASK {
                    kernel_bindings::abi::CAM_DIR_IN => DataDir::In,
                    kernel_bindings::abi::CAM_DIR_OUT => DataDir::Out,
                    _ => DataDir::None,
                };
                let cdb = if usize::from(c.cdb_len) <= c.cdb.len() {
                    let mut b = pool.take(usize::from(c.cdb_len));
                    b.copy_from_slice(&c.cdb[..usize::from(c.cdb_len)]);
                    b
                } else {
                    Vec::new() // more than 16 bytes: CAM_REQ_INVALID (cam::Sim)
                };
                // The CCB's own buffer, lent to the session for the command: Data-In lands
                // in it and Data-Out leaves from it (no copy either way).
                let data = if dir != DataDir::None && c.dxfer_len > 0 && !c.data.is_null() {
                    // SAFETY: the action routine queued only CAM_DATA_VADDR CCBs, whose
                    // data_ptr holds dxfer_len bytes; the CCB and its buffer are the SIM's
                    // until xpt_done, and nobody else touches them meanwhile (CAM's contract).
                    // The session hands the reference back with the command's completion,
                    // which cam::Sim drops before this platform completes the CCB.
                    DataBuf::Lent(unsafe {
                        core::slice::from_raw_parts_mut(c.data, c.dxfer_len as usize)
                    })
                } else {
                    DataBuf::Owned(Vec::new())
                };
                CamRequest::Io(ScsiIo {
                    token,
                    target: c.target,
                    lun: c.lun,
                    cdb,
                    dir,
                    dxfer_len: c.dxfer_len,
                    data,
                    sense_len: c.sense_len,
                    no_autosense: c.flags & kernel_bindings::abi::CAM_DIS_AUTOSENSE != 0,
                })
            }
        })
    }

    fn cam_done_io(&mut self, done: &ScsiIoDone) {
        let sense_len = u8::try_from(done.sense.len()).unwrap_or(u8::MAX);
        let data_len = u32::try_from(done.data.len()).unwrap_or(u32::MAX);
        // SAFETY: the token is a CCB the action routine queued and nobody completed yet
        // (cam::Sim completes each once); the buffers are valid for their lengths.
        unsafe {
            shim::isboot_cam_complete_scsiio(
                done.token as *mut Ccb,
                done.status.0,
                done.scsi_status,
                done.resid,
                done.data.as_ptr().cast(),
                data_len,
                done.sense.as_ptr().cast(),
                sense_len,
                done.sense_resid,
            )
        };
    }

    fn cam_done(&mut self, token: u64, status: CamStatus) {
        // SAFETY: as in cam_done_io.
        unsafe { shim::isboot_cam_complete(token as *mut Ccb, status.0) };
    }

    fn cam_queue(&mut self, ev: QueueEvent) {
        // SAFETY: the SIM is registered (events come only after cam_register).
        unsafe { shim::isboot_cam_freeze(c_int::from(ev == QueueEvent::Freeze)) };
    }

    /// Looks at CAM at most every [`SCAN_POLL`] (the boot thread asks every turn of its
    /// disk wait).
    fn cam_scan(&mut self) -> ScanState {
        let now = KernelClock.now();
        if self
            .last_scan
            .is_some_and(|t| now.saturating_since(t) < SCAN_POLL)
        {
            return ScanState::Scanning;
        }
        self.last_scan = Some(now);
        let mut name = [0u8; 16];
        // SAFETY: `name` has room for 16 bytes; the shim NUL-terminates.
        unsafe { shim::isboot_cam_device(name.as_mut_ptr().cast::<c_char>(), name.len()) };
        let dev = c_text(&name);
        if dev.is_empty() {
            return ScanState::Scanning;
        }
        // The da(4) unit exists once CAM's probe found the LUN; it is a disk for mountroot
        // once da has read its capacity and created the GEOM provider.
        // SAFETY: `name` is NUL-terminated (the shim wrote it, c_text stopped at the NUL).
        let opens = unsafe { shim::isboot_disk_opens(name.as_ptr().cast::<c_char>()) };
        if opens < 0 {
            ScanState::Scanning
        } else {
            ScanState::Attached(dev)
        }
    }

    fn release_hold(&mut self) {
        release_hold(self.shared);
    }

    fn stop_requested(&self) -> bool {
        self.shared.lock().stop
    }

    fn publish_state(&mut self, state: &BootState) {
        self.shared.lock().boot = state.clone();
    }

    fn open_native_hca(
        &mut self,
        pci: ibft::PciAddress,
    ) -> Result<Box<dyn hca::Verbs>, crate::boot::NativeError> {
        crate::freebsd_hca::open(pci, &|line| kernel_bindings::console::print_line(line))
    }

    fn native_console(&self) -> crate::native::Say {
        Box::new(|line: &str| kernel_bindings::console::print_line(format_args!("{line}")))
    }

    fn attach_native_ifnet(&mut self, link: NativeLink) -> Result<String, NetError> {
        // The diagnostic loopback interface (net.isboot.ipoib_loopback) may have unit 0.
        let unit = u8::from(crate::freebsd_ifnet::loopback_attached());
        let h = crate::freebsd_ifnet::attach(
            Box::new(PolledLink(link)),
            crate::freebsd_ifnet::IF_NAME,
            unit,
        )
        .map_err(|e| NetError(format!("{e}")))?;
        let name = String::from(h.name());
        self.shared.lock().native_if = Some(h);
        Ok(name)
    }
}

// ---------------------------------------------------------------------------------------------
// The kernel thread

/// What the thread is handed.
struct ThreadArgs {
    shared: Pin<&'static Mutex<SharedState>>,
    table: Ibft,
    tunables: BootTunables,
}

/// Why the thread could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnError(pub c_int);

/// Starts the boot thread (process `isboot`, [`THREAD_PAGES`] of kernel stack) running
/// [`boot::run`] on `table`.
///
/// `shared` must stay alive until the thread has set `exited` (the module waits for it before
/// freeing it).
pub fn spawn(
    shared: Pin<&'static Mutex<SharedState>>,
    table: Ibft,
    tunables: BootTunables,
) -> Result<(), SpawnError> {
    let args = Box::into_raw(Box::new(ThreadArgs {
        shared,
        table,
        tunables,
    }));
    let mut p = ptr::null_mut();
    let mut td = ptr::null_mut();
    // SAFETY: `thread_main` takes ownership of `args` when the thread starts; a constant "%s"
    // format with one NUL-terminated string argument.
    let error = unsafe {
        ffi::kproc_kthread_add(
            thread_main,
            args.cast(),
            &mut p,
            &mut td,
            0,
            THREAD_PAGES,
            c"isboot".as_ptr(),
            c"%s".as_ptr(),
            c"isboot".as_ptr(),
        )
    };
    if error != 0 {
        // SAFETY: the thread was not created, so `args` is still ours.
        drop(unsafe { Box::from_raw(args) });
        return Err(SpawnError(error));
    }
    Ok(())
}

unsafe extern "C" fn thread_main(arg: *mut c_void) {
    // SAFETY: `arg` is the Box::into_raw of `spawn`, handed to this thread alone.
    let args = unsafe { Box::from_raw(arg.cast::<ThreadArgs>()) };
    let shared = args.shared;
    let mut env = KernelBootEnv::new(shared);
    let result = boot::run(&mut env, &args.table, &args.tunables);
    match &result {
        // Stopped (unload or shutdown) after serving: the session is logged out; new CCBs
        // fail from now on. The module deregisters the bus at unload.
        Ok(_) => {
            // SAFETY: no argument; safe whether or not the SIM was registered.
            unsafe { shim::isboot_cam_stop() }
        }
        // The boot failed: nobody will serve the bus.
        Err(_) => {
            // SAFETY: as above; this thread is the only user of the SIM.
            unsafe { shim::isboot_cam_deregister() }
        }
    }
    drop(result);
    drop(args);
    shared.lock().exited = true;
    // SAFETY: the end of a kernel thread; nothing of this thread's Rust state is alive.
    unsafe { ffi::kthread_exit() }
}

/// Waits (bounded) for the thread to set `exited`, polling every 50 ms.
pub fn wait_exited(shared: Pin<&Mutex<SharedState>>, limit: Duration) -> bool {
    let clock = KernelClock;
    let end = clock.now() + limit;
    loop {
        if shared.lock().exited {
            // It still has to leave this module's code (kthread_exit): give it a moment.
            clock.sleep(Duration::from_millis(100));
            return true;
        }
        if clock.now() >= end {
            return false;
        }
        clock.sleep(Duration::from_millis(50));
    }
}

/// The opens of the attached disk's GEOM provider (0 when there is no disk yet).
pub fn disk_opens(shared: Pin<&Mutex<SharedState>>) -> i32 {
    let dev = shared.lock().boot.device.clone();
    if dev.is_empty() {
        return 0;
    }
    let Ok(name) = CString::new(dev) else {
        return 0;
    };
    // SAFETY: a NUL-terminated name.
    unsafe { shim::isboot_disk_opens(name.as_ptr()) }.max(0)
}

/// The console name of an errno for module messages.
pub fn errno_name(e: c_int) -> String {
    errno_text(e).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbt_and_bintime_conversions() {
        assert_eq!(sbt(Duration::from_secs(1)), 1 << 32);
        assert_eq!(sbt(Duration::from_millis(500)), 1 << 31);
        // 5 ms: 21474836 (floor of 0.005 * 2^32)
        assert_eq!(sbt(Duration::from_millis(5)), 21_474_836);
        let bt = Bintime {
            sec: 3,
            frac: 1 << 63,
        };
        assert_eq!(bintime_nanos(&bt), 3_500_000_000);
        let bt = Bintime { sec: -1, frac: 0 };
        assert_eq!(bintime_nanos(&bt), 0);
    }

    #[test]
    fn interfaces_from_rtnetlink() {
        let l = Link {
            index: 1,
            name: String::from("vtnet0"),
            ty: 6,
            flags: 0x1,
            lladdr: vec![0x52, 0x54, 0, 0x9a, 0xbc, 0xde],
            operstate: Some(netlink::IF_OPER_UP),
        };
        let addrs = [
            (1, Ipv4Addr::new(10, 0, 2, 15), 24),
            (2, Ipv4Addr::LOCALHOST, 8),
        ];
        let n = net_if(&l, &addrs);
        assert_eq!(n.name, "vtnet0");
        assert_eq!(
            n.link,
            LinkAddr::Ethernet([0x52, 0x54, 0, 0x9a, 0xbc, 0xde])
        );
        assert!(n.up && n.link_up);
        assert_eq!(n.ipv4, [(Ipv4Addr::new(10, 0, 2, 15), 24)]);

        let ib = Link {
            ty: 0xc7,
            flags: 0,
            lladdr: vec![0; 20],
            operstate: None,
            ..l.clone()
        };
        let n = net_if(&ib, &addrs);
        assert!(matches!(n.link, LinkAddr::Infiniband { .. }));
        assert!(!n.up && !n.link_up);

        let lo = Link { ty: 0x18, ..l };
        assert_eq!(net_if(&lo, &addrs).link, LinkAddr::Other);
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_text(61).0, "ECONNREFUSED (error 61)");
        assert_eq!(errno_text(999).0, "error 999");
    }
}
