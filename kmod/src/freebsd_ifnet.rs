//! The module's IPoIB interface on FreeBSD: an `IFT_INFINIBAND` ifnet on the kernel's
//! InfiniBand link layer (`sys/net/if_infiniband.c`) over any [`IbLink`].
//!
//! - **attach** ([`attach`]): `if_alloc(IFT_INFINIBAND)`, `if_initname`, the softc, the flags
//!   (`IFF_BROADCAST | IFF_MULTICAST | IFF_NEEDSEPOCH`: the poll thread calls `if_input`
//!   outside the network epoch, so `infiniband_input` enters it itself), the init, ioctl,
//!   transmit and qflush functions, then `infiniband_ifattach(ifp, lla, llb)` — which sets the
//!   MTU to 1500, so `if_setmtu(ip_mtu)` comes after it — and `if_setbaudrate`. The broadcast
//!   address `llb` lives in the softc, which is freed only after `if_free`.
//! - **transmit** (`if_transmit`): the frame (already framed by `infiniband_output` with the
//!   24-byte `struct infiniband_header`) is copied out of the mbuf chain with `m_length` /
//!   `m_copydata` into one of [`TX_SLOTS`] slots of a queue allocated at attach, under the
//!   queue's mutex, and the chain freed; the poll thread sends it within a millisecond. A full
//!   queue is `ENOBUFS`. Nothing is allocated per packet. `if_transmit` runs in the network
//!   stack's contexts (inside the net epoch, under inpcb locks), where nothing may sleep, and
//!   the link may sleep (the HCA's commands wait with pause(9)): so only the poll thread calls
//!   into the link, and no mutex is held while it does (a thread sleeping with a mutex
//!   another thread blocks on panics the kernel: `propagate_priority`, subr_turnstile.c).
//! - **receive**: a kernel thread owns the link: every millisecond (sooner when
//!   [`IbLink::poll_at`] asks, or frames wait) it takes the queued frames (swapping buffers
//!   under the mutex), sends them with [`IbLink::transmit`] (counting `opackets`/`oerrors`),
//!   polls the link, copying received frames into its own buffers, then reports the poll's
//!   link events and hands each frame up with `m_devget` (which sets `rcvif` and the packet
//!   length) and `if_input`.
//! - **link events**: `Up`/`Down` → `if_link_state_change` and one console line; `Moved` →
//!   the new hardware address written into the interface's link-level address
//!   (`if_getlladdr`: `if_setlladdr` refuses `IFT_INFINIBAND` with `ENODEV`, sys/net/if.c),
//!   link up, one console line naming both ports and the new GID.
//! - **ioctl**: `SIOCSIFFLAGS` (running follows `IFF_UP`), `SIOCSIFMTU` (72 ..= the link's
//!   IP MTU, else `EINVAL`), `SIOCADDMULTI`/`SIOCDELMULTI` (accepted: the link side joins
//!   only the broadcast group; IPv4 multicast goes out to it), `SIOCSIFADDR` (as ipoib(4):
//!   `IFF_UP`, and for IPv4 `arp_ifinit` and the address handed to the link for its
//!   gratuitous ARP after a move, through the poll thread); anything else `EINVAL`, as
//!   `infiniband_ioctl` answers.
//! - **counters**: `if_inc_counter` for ipackets/ibytes/ierrors/iqdrops and
//!   opackets/obytes/oerrors.
//! - **detach** ([`detach`]): the thread is stopped (bounded wait), then
//!   `infiniband_ifdetach`, `if_free`, [`IbLink::shutdown`].

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_ulong, c_void, CStr};
use core::fmt::{self, Write};
use core::net::Ipv4Addr;
use core::pin::Pin;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use core::time::Duration;

use kernel_bindings::abi::{
    IfNet, Mbuf, C_HARDCLOCK, IFA_NETMASK_OFFSET, IFCOUNTER_IBYTES, IFCOUNTER_IERRORS,
    IFCOUNTER_IPACKETS, IFCOUNTER_IQDROPS, IFCOUNTER_OBYTES, IFCOUNTER_OERRORS, IFCOUNTER_OPACKETS,
    IFF_BROADCAST, IFF_DRV_RUNNING, IFF_MULTICAST, IFF_NEEDSEPOCH, IFF_UP, IFR_MTU_OFFSET,
    IFT_INFINIBAND, IF_MINMTU, LINK_STATE_DOWN, LINK_STATE_UP, SA_AF_INET, SIOCADDMULTI,
    SIOCDELMULTI, SIOCSIFADDR, SIOCSIFFLAGS, SIOCSIFMTU,
};
use kernel_bindings::ffi;
use kernel_bindings::sync::Mutex;

use crate::freebsd_boot::{sbt, uptime};
use crate::iblink::{IbHwAddr, IbLink, LinkEvent, TxError, IB_ADDR_LEN, IB_HDR_LEN};
use crate::iblink_loop::LoopbackLink;

/// Frames one poll may hand up; more in one poll are dropped (counted as `iqdrops`).
pub const RX_BATCH: usize = 32;
/// Link events one poll may report (more are dropped; a link reports a handful at most).
const EVENT_BATCH: usize = 8;
/// How long [`detach`] waits for the poll thread to stop.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// The poll period.
const POLL_PERIOD: Duration = Duration::from_millis(1);

const EINVAL: c_int = 22;
const EBUSY: c_int = 16;
const ENXIO: c_int = 6;
const EIO: c_int = 5;
const EMSGSIZE: c_int = 40;
const ENETDOWN: c_int = 50;
const ENOBUFS: c_int = 55;

/// Why the interface could not be attached or detached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfError {
    /// The name (with its unit) does not fit `IFNAMSIZ` or holds a NUL.
    BadName(String),
    /// The link's IP MTU is outside 72..=65535.
    BadMtu(u32),
    /// `if_alloc` returned NULL (14.0 can, when the link layer's `if_com_alloc` fails).
    NoIfnet,
    /// The poll thread could not be started (`kproc_kthread_add` error).
    Thread(c_int),
    /// The poll thread did not stop within the wait: the interface is left attached.
    ThreadStuck,
}

impl fmt::Display for IfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfError::BadName(n) => write!(f, "bad interface name {n:?}"),
            IfError::BadMtu(m) => write!(f, "link IP MTU {m} outside 72..65535"),
            IfError::NoIfnet => f.write_str("if_alloc(IFT_INFINIBAND) failed"),
            IfError::Thread(e) => write!(f, "cannot start the poll thread (error {e})"),
            IfError::ThreadStuck => f.write_str("the poll thread did not stop"),
        }
    }
}

/// Frames `if_transmit` may queue for the poll thread; more are refused (`ENOBUFS`).
pub const TX_SLOTS: usize = 64;

/// What the mutex protects: frames waiting for the poll thread, and an address for the link.
/// The mutex is held only to copy in and out, never across a call into the link (which may
/// sleep: the HCA's commands wait with pause(9)).
struct TxQueue {
    /// [`TX_SLOTS`] frames of up to the 24-byte header and the IP MTU each.
    data: Vec<u8>,
    lens: [usize; TX_SLOTS],
    /// The oldest frame's slot.
    head: usize,
    /// Frames queued.
    n: usize,
    /// An address from `SIOCSIFADDR` for [`IbLink::set_ipv4`].
    ipv4: Option<(Ipv4Addr, u8)>,
}

/// The driver's softc. Boxed at attach, freed by [`detach`] after `if_free`.
struct Softc {
    ifp: *mut IfNet,
    /// "isbib0", NUL-terminated, for console lines.
    name: [u8; 16],
    /// The broadcast address `infiniband_ifattach` keeps a pointer to (`if_broadcastaddr`).
    bcast: IbHwAddr,
    ip_mtu: u32,
    /// One frame's room: the header and the IP MTU.
    slot: usize,
    queue: Pin<Box<Mutex<TxQueue>>>,
    /// The link: used by [`attach`] before the poll thread starts, then by the poll thread
    /// alone, then by [`teardown`] after it stopped — never by two threads at once.
    link: UnsafeCell<Box<dyn IbLink + Send>>,
    stop: AtomicBool,
    exited: AtomicBool,
}

// SAFETY: the raw `ifp` is the kernel's interface, valid from attach to detach and usable
// from any thread; everything mutable is behind the mutex or atomic, except the link, which
// one thread at a time owns (see `link`).
unsafe impl Send for Softc {}
// SAFETY: as above.
unsafe impl Sync for Softc {}

impl Softc {
    /// The link.
    ///
    /// # Safety
    /// Only the thread that owns the link now (see the field) calls this, and holds no other
    /// reference from it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn link(&self) -> &mut (dyn IbLink + Send) {
        // SAFETY: the caller's contract.
        unsafe { &mut **self.link.get() }
    }

    fn name(&self) -> &str {
        let n = self.name.iter().position(|&b| b == 0).unwrap_or(0);
        self.name
            .get(..n)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("isbib?")
    }

    fn count(&self, counter: c_int, n: u64) {
        // SAFETY: the attached interface; any counter index of `ift_counter`.
        unsafe { ffi::if_inc_counter(self.ifp, counter, i64::try_from(n).unwrap_or(i64::MAX)) };
    }
}

/// The attached interface, from [`attach`] to [`detach`].
#[derive(Debug)]
pub struct IfHandle {
    sc: *mut Softc,
}

// SAFETY: the handle only carries the softc pointer to `detach`.
unsafe impl Send for IfHandle {}

impl IfHandle {
    /// The interface's name (e.g. `isbib0`).
    pub fn name(&self) -> &str {
        // SAFETY: the softc lives until `detach` consumes the handle.
        unsafe { (*self.sc).name() }
    }
}

fn pause(d: Duration) {
    // SAFETY: a static NUL-terminated wait message; any sbt is valid.
    unsafe { ffi::pause_sbt(c"isbpoll".as_ptr(), sbt(d), 0, C_HARDCLOCK) };
}

/// A fixed-size line buffer for console lines (no allocation in the poll thread).
struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

fn console(args: fmt::Arguments<'_>) {
    kernel_bindings::console::print_line(args);
}

/// The port GID of an IPoIB hardware address as eight groups of four hex digits.
pub fn gid_text(hw: &IbHwAddr) -> impl fmt::Display + '_ {
    struct Gid<'a>(&'a IbHwAddr);
    impl fmt::Display for Gid<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let gid = self.0.get(4..IB_ADDR_LEN).unwrap_or(&[]);
            for (i, pair) in gid.chunks(2).enumerate() {
                if i > 0 {
                    f.write_str(":")?;
                }
                for b in pair {
                    write!(f, "{b:02x}")?;
                }
            }
            Ok(())
        }
    }
    Gid(hw)
}

/// The console line for a link event (without the interface name).
pub fn event_text(ev: &LinkEvent, port: u8) -> impl fmt::Display + '_ {
    struct Text<'a>(&'a LinkEvent, u8);
    impl fmt::Display for Text<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                LinkEvent::Up => write!(f, "link up (port {})", self.1),
                LinkEvent::Down => f.write_str("link down"),
                LinkEvent::Moved { from, to, hwaddr } => write!(
                    f,
                    "port {from} down, moved to port {to} (gid {})",
                    gid_text(hwaddr)
                ),
                LinkEvent::LidChanged { lid } => {
                    write!(
                        f,
                        "port {} LID changed to {lid:#x}, paths re-resolved",
                        self.1
                    )
                }
            }
        }
    }
    Text(ev, port)
}

/// Creates and attaches the IPoIB interface `name``unit` (e.g. `isbib0`) over `link` and
/// starts its poll thread. The interface comes up with the link state of the link's current
/// port as up (the link reports `Down` when it is not).
pub fn attach(link: Box<dyn IbLink + Send>, name: &str, unit: u8) -> Result<IfHandle, IfError> {
    let mut full = Line {
        buf: [0; 160],
        len: 0,
    };
    let _ = write!(full, "{name}{unit}");
    if name.is_empty() || name.contains('\0') || full.len >= 16 {
        return Err(IfError::BadName(String::from(name)));
    }
    let ip_mtu = link.ip_mtu();
    let mtu = c_int::try_from(ip_mtu).unwrap_or(c_int::MAX);
    if !(IF_MINMTU..=65535).contains(&mtu) {
        return Err(IfError::BadMtu(ip_mtu));
    }
    let mut base = [0u8; 16];
    for (d, s) in base.iter_mut().zip(name.as_bytes()) {
        *d = *s;
    }
    let mut shown = [0u8; 16];
    for (d, s) in shown
        .iter_mut()
        .zip(full.buf.get(..full.len).unwrap_or(&[]))
    {
        *d = *s;
    }
    // SAFETY: allocates an interface of the InfiniBand type (or NULL).
    let ifp = unsafe { ffi::if_alloc(IFT_INFINIBAND) };
    if ifp.is_null() {
        return Err(IfError::NoIfnet);
    }
    let hwaddr = link.hwaddr();
    let bcast = link.broadcast();
    let baud = link.baudrate();
    let port = link.port();
    let slot = IB_HDR_LEN + ip_mtu as usize;
    let queue = TxQueue {
        data: vec![0u8; slot * TX_SLOTS],
        lens: [0; TX_SLOTS],
        head: 0,
        n: 0,
        ipv4: None,
    };
    let sc = Box::into_raw(Box::new(Softc {
        ifp,
        name: shown,
        bcast,
        ip_mtu,
        slot,
        queue: Mutex::new_boxed(c"isboot ipoib", queue),
        link: UnsafeCell::new(link),
        stop: AtomicBool::new(false),
        exited: AtomicBool::new(false),
    }));
    // SAFETY: `sc` is ours until detach; the kernel calls below get valid pointers (the base
    // name is NUL-terminated: at most 15 bytes in 16 zeroed ones; the addresses are 20 bytes,
    // `bcast` inside the boxed softc that outlives the interface).
    unsafe {
        ffi::if_initname(ifp, base.as_ptr().cast(), c_int::from(unit));
        ffi::if_setsoftc(ifp, sc.cast());
        ffi::if_setflags(ifp, IFF_BROADCAST | IFF_MULTICAST | IFF_NEEDSEPOCH);
        ffi::if_setinitfn(ifp, if_init);
        ffi::if_setioctlfn(ifp, if_ioctl);
        ffi::if_settransmitfn(ifp, if_transmit);
        ffi::if_setqflushfn(ifp, if_qflush);
        ffi::infiniband_ifattach(ifp, hwaddr.as_ptr(), (*sc).bcast.as_ptr());
        ffi::if_setmtu(ifp, mtu);
        ffi::if_setbaudrate(ifp, baud);
    }
    let mut p = ptr::null_mut();
    let mut td = ptr::null_mut();
    // SAFETY: `poll_main` gets the softc, which stays alive until the thread has set `exited`
    // (detach waits for it); constant "%s" format with one NUL-terminated argument.
    let error = unsafe {
        ffi::kproc_kthread_add(
            poll_main,
            sc.cast(),
            &mut p,
            &mut td,
            0,
            // The boot thread's stack size: a port move runs the driver's commands and the
            // SA join on this thread (10.4 KiB measured under kldrun, of 16 with the default).
            crate::freebsd_boot::THREAD_PAGES,
            c"isboot".as_ptr(),
            c"%s".as_ptr(),
            (*sc).name.as_ptr(),
        )
    };
    if error != 0 {
        // SAFETY: no thread uses the softc; undo the attach in order.
        unsafe { teardown(sc) };
        return Err(IfError::Thread(error));
    }
    // SAFETY: the attached interface.
    unsafe { ffi::if_link_state_change((*sc).ifp, LINK_STATE_UP) };
    // SAFETY: the softc is alive.
    let sc_ref = unsafe { &*sc };
    console(format_args!(
        "{}: IPoIB interface on port {}, MTU {}, gid {}",
        sc_ref.name(),
        port,
        ip_mtu,
        gid_text(&hwaddr)
    ));
    Ok(IfHandle { sc })
}

/// Detaches and frees the interface and shuts the link down. If the poll thread does not
/// stop in time, nothing is freed and the handle comes back with the error.
pub fn detach(h: IfHandle) -> Result<(), (IfHandle, IfError)> {
    let sc = h.sc;
    // SAFETY: the softc is alive until teardown.
    let s = unsafe { &*sc };
    s.stop.store(true, Ordering::Release);
    let end = uptime() + STOP_WAIT;
    while !s.exited.load(Ordering::Acquire) {
        if uptime() >= end {
            return Err((h, IfError::ThreadStuck));
        }
        pause(Duration::from_millis(5));
    }
    // It still has to leave this module's code (kthread_exit).
    pause(Duration::from_millis(20));
    // SAFETY: the thread is gone; nothing else holds the softc.
    unsafe { teardown(sc) };
    Ok(())
}

/// `infiniband_ifdetach`, `if_free`, the link's shutdown, the softc freed.
///
/// # Safety
/// `sc` is the softc of [`attach`], used by no thread any more.
unsafe fn teardown(sc: *mut Softc) {
    // SAFETY: the caller's contract.
    let s = unsafe { Box::from_raw(sc) };
    // SAFETY: the attached interface, detached and freed once.
    unsafe {
        ffi::if_setdrvflagbits(s.ifp, 0, IFF_DRV_RUNNING);
        ffi::infiniband_ifdetach(s.ifp);
        ffi::if_free(s.ifp);
    }
    // SAFETY: no other thread uses the softc (the caller's contract).
    unsafe { s.link() }.shutdown();
    console(format_args!("{}: detached", s.name()));
    drop(s);
}

/// The poll thread's own receive buffers.
struct RxBuf {
    data: Vec<u8>,
    lens: [usize; RX_BATCH],
    n: usize,
    dropped: u64,
    oversize: u64,
    slot: usize,
}

unsafe extern "C" fn poll_main(arg: *mut c_void) {
    // SAFETY: the softc `attach` handed this thread; it outlives the thread (detach waits).
    let sc = unsafe { &*arg.cast::<Softc>() };
    // The buffers are dropped inside: kthread_exit does not return.
    poll_loop(sc);
    sc.exited.store(true, Ordering::Release);
    // SAFETY: the end of a kernel thread; nothing of its Rust state is alive after this.
    unsafe { ffi::kthread_exit() }
}

/// Polls the link until `stop`.
fn poll_loop(sc: &Softc) {
    let slot = sc.slot;
    let mut rx = RxBuf {
        data: vec![0u8; slot * RX_BATCH],
        lens: [0; RX_BATCH],
        n: 0,
        dropped: 0,
        oversize: 0,
        slot,
    };
    let mut events: Vec<LinkEvent> = Vec::with_capacity(EVENT_BATCH);
    // The frames taken from the queue: swapped with its buffer under the mutex (no copy).
    let mut tx_data = vec![0u8; slot * TX_SLOTS];
    let mut tx_lens = [0usize; TX_SLOTS];
    // SAFETY: from here to its exit this thread owns the link (attach is done with it,
    // teardown waits for the exit).
    let link = unsafe { sc.link() };
    while !sc.stop.load(Ordering::Acquire) {
        let t = uptime();
        rx.n = 0;
        events.clear();
        let (head, n, ipv4) = {
            let mut q = sc.queue.as_ref().lock();
            core::mem::swap(&mut q.data, &mut tx_data);
            core::mem::swap(&mut q.lens, &mut tx_lens);
            let taken = (q.head, q.n, q.ipv4.take());
            q.head = 0;
            q.n = 0;
            taken
        };
        if let Some((addr, prefix)) = ipv4 {
            link.set_ipv4(addr, prefix);
        }
        for i in 0..n {
            let k = (head + i) % TX_SLOTS;
            let len = tx_lens.get(k).copied().unwrap_or(0);
            let r = match tx_data.get(k * slot..k * slot + len) {
                Some(frame) => link.transmit(frame, t),
                None => Err(TxError::BadFrame),
            };
            match r {
                Ok(()) => {
                    sc.count(IFCOUNTER_OPACKETS, 1);
                    sc.count(IFCOUNTER_OBYTES, len as u64);
                }
                Err(_) => sc.count(IFCOUNTER_OERRORS, 1),
            }
        }
        let (port, next) = {
            let mut on_rx = |frame: &[u8]| {
                if rx.n >= RX_BATCH {
                    rx.dropped += 1;
                    return;
                }
                if frame.len() > rx.slot {
                    rx.oversize += 1;
                    return;
                }
                let at = rx.n * rx.slot;
                if let Some(d) = rx.data.get_mut(at..at + frame.len()) {
                    d.copy_from_slice(frame);
                    if let Some(l) = rx.lens.get_mut(rx.n) {
                        *l = frame.len();
                    }
                    rx.n += 1;
                }
            };
            let mut on_event = |ev: LinkEvent| {
                if events.len() < EVENT_BATCH {
                    events.push(ev);
                }
            };
            link.poll(t, &mut on_rx, &mut on_event);
            (link.port(), link.poll_at())
        };
        // Events first: a frame that came with a move may draw an answer (ARP) that must
        // carry the new address.
        for ev in events.drain(..) {
            report(sc, &ev, port);
        }
        deliver(sc, &mut rx);
        let queued = sc.queue.as_ref().lock().n > 0;
        let wait = match next {
            _ if queued => Duration::ZERO,
            Some(at) if at <= t => Duration::ZERO,
            Some(at) => (at - t).min(POLL_PERIOD),
            None => POLL_PERIOD,
        };
        if !wait.is_zero() {
            pause(wait);
        }
    }
}

/// Hands the frames of one poll up (`m_devget` + `if_input`) and counts them.
fn deliver(sc: &Softc, rx: &mut RxBuf) {
    for i in 0..rx.n {
        let len = rx.lens.get(i).copied().unwrap_or(0);
        let at = i * rx.slot;
        let Some(frame) = rx.data.get_mut(at..at + len) else {
            continue;
        };
        if len < IB_HDR_LEN {
            sc.count(IFCOUNTER_IERRORS, 1);
            continue;
        }
        // SAFETY: `frame` holds `len` bytes; m_devget copies them into a new chain whose
        // rcvif is our interface (M_NOWAIT: NULL when out of mbufs).
        let m = unsafe {
            ffi::m_devget(
                frame.as_mut_ptr().cast::<c_char>(),
                len as c_int,
                0,
                sc.ifp,
                None,
            )
        };
        if m.is_null() {
            sc.count(IFCOUNTER_IQDROPS, 1);
            continue;
        }
        sc.count(IFCOUNTER_IPACKETS, 1);
        sc.count(IFCOUNTER_IBYTES, len as u64);
        // SAFETY: the attached interface and a packet-header chain it now owns.
        unsafe { ffi::if_input(sc.ifp, m) };
    }
    if rx.dropped > 0 {
        sc.count(IFCOUNTER_IQDROPS, rx.dropped);
        rx.dropped = 0;
    }
    if rx.oversize > 0 {
        sc.count(IFCOUNTER_IERRORS, rx.oversize);
        rx.oversize = 0;
    }
}

/// Reports one link event to the kernel and the console.
fn report(sc: &Softc, ev: &LinkEvent, port: u8) {
    match ev {
        LinkEvent::Up => {
            // SAFETY: the attached interface.
            unsafe { ffi::if_link_state_change(sc.ifp, LINK_STATE_UP) };
        }
        LinkEvent::Down => {
            // SAFETY: as above.
            unsafe { ffi::if_link_state_change(sc.ifp, LINK_STATE_DOWN) };
        }
        LinkEvent::Moved { hwaddr, .. } => {
            // SAFETY: if_getlladdr points at the interface's `if_addrlen` (20) link-level
            // address bytes; we write exactly 20.
            unsafe {
                let lla = ffi::if_getlladdr(sc.ifp);
                if !lla.is_null() {
                    ptr::copy_nonoverlapping(hwaddr.as_ptr(), lla.cast::<u8>(), IB_ADDR_LEN);
                }
                ffi::if_link_state_change(sc.ifp, LINK_STATE_UP);
            }
        }
        LinkEvent::LidChanged { .. } => {}
    }
    console(format_args!("{}: {}", sc.name(), event_text(ev, port)));
}

fn softc<'a>(ifp: *mut IfNet) -> Option<&'a Softc> {
    // SAFETY: the kernel passes our interface, whose softc is ours (or NULL).
    let p = unsafe { ffi::if_getsoftc(ifp) }.cast::<Softc>();
    // SAFETY: a softc of `attach`, alive while the interface is.
    unsafe { p.as_ref() }
}

/// `if_init`: the interface runs.
unsafe extern "C" fn if_init(arg: *mut c_void) {
    // SAFETY: the softc we registered.
    if let Some(sc) = unsafe { arg.cast::<Softc>().as_ref() } {
        // SAFETY: the attached interface.
        unsafe { ffi::if_setdrvflagbits(sc.ifp, IFF_DRV_RUNNING, 0) };
    }
}

/// `if_qflush`: nothing is queued in the driver (the link owns its queues).
unsafe extern "C" fn if_qflush(_ifp: *mut IfNet) {}

/// The errno for a refused send.
pub fn tx_errno(e: TxError) -> c_int {
    match e {
        TxError::BadFrame => EINVAL,
        TxError::LinkDown => ENETDOWN,
        TxError::NoBuffers => ENOBUFS,
        TxError::Device => EIO,
    }
}

/// `if_transmit`: one frame from `infiniband_output`.
unsafe extern "C" fn if_transmit(ifp: *mut IfNet, m: *mut Mbuf) -> c_int {
    let Some(sc) = softc(ifp) else {
        // SAFETY: the chain is ours to free.
        unsafe { ffi::m_freem(m) };
        return ENXIO;
    };
    // SAFETY: a valid chain handed to us.
    let len = unsafe { ffi::m_length(m, ptr::null_mut()) } as usize;
    if len < IB_HDR_LEN || len > sc.slot {
        // SAFETY: as above.
        unsafe { ffi::m_freem(m) };
        sc.count(IFCOUNTER_OERRORS, 1);
        return EMSGSIZE;
    }
    let mut q = sc.queue.as_ref().lock();
    if q.n >= TX_SLOTS {
        drop(q);
        // SAFETY: as above.
        unsafe { ffi::m_freem(m) };
        sc.count(IFCOUNTER_OERRORS, 1);
        return ENOBUFS;
    }
    let k = (q.head + q.n) % TX_SLOTS;
    let copied = match q.data.get_mut(k * sc.slot..k * sc.slot + len) {
        Some(d) => {
            // SAFETY: `len` bytes of the chain into a slot of at least `len`.
            unsafe { ffi::m_copydata(m, 0, len as c_int, d.as_mut_ptr().cast()) };
            true
        }
        None => false,
    };
    if copied {
        if let Some(l) = q.lens.get_mut(k) {
            *l = len;
        }
        q.n += 1;
    }
    drop(q);
    // SAFETY: the chain is freed once, after the copy.
    unsafe { ffi::m_freem(m) };
    if copied {
        // Sent (and counted) by the poll thread within a millisecond.
        0
    } else {
        sc.count(IFCOUNTER_OERRORS, 1);
        EMSGSIZE
    }
}

/// The MTU an `SIOCSIFMTU` may set: `IF_MINMTU` up to the link's IP MTU.
pub fn mtu_ok(mtu: c_int, ip_mtu: u32) -> bool {
    mtu >= IF_MINMTU && u32::try_from(mtu).is_ok_and(|m| m <= ip_mtu)
}

/// The prefix length of an IPv4 netmask (its leading ones).
pub fn prefix_len(mask: Ipv4Addr) -> u8 {
    u32::from(mask).leading_ones() as u8
}

/// `if_ioctl`: see the module documentation.
unsafe extern "C" fn if_ioctl(ifp: *mut IfNet, cmd: c_ulong, data: *mut c_char) -> c_int {
    let Some(sc) = softc(ifp) else {
        return ENXIO;
    };
    match cmd {
        SIOCSIFFLAGS => {
            // SAFETY: the attached interface.
            let up = unsafe { ffi::if_getflags(ifp) } & IFF_UP != 0;
            // SAFETY: as above.
            unsafe {
                if up {
                    ffi::if_setdrvflagbits(ifp, IFF_DRV_RUNNING, 0);
                } else {
                    ffi::if_setdrvflagbits(ifp, 0, IFF_DRV_RUNNING);
                }
            }
            0
        }
        SIOCSIFMTU => {
            if data.is_null() {
                return EINVAL;
            }
            // SAFETY: a `struct ifreq` from the kernel: `ifr_mtu` at its offset.
            let mtu = unsafe { data.add(IFR_MTU_OFFSET).cast::<c_int>().read_unaligned() };
            if !mtu_ok(mtu, sc.ip_mtu) {
                return EINVAL;
            }
            // SAFETY: the attached interface.
            unsafe { ffi::if_setmtu(ifp, mtu) };
            0
        }
        SIOCADDMULTI | SIOCDELMULTI => 0,
        SIOCSIFADDR => {
            // SAFETY: the attached interface.
            unsafe { ffi::if_setflagbits(ifp, IFF_UP, 0) };
            // SAFETY: the softc is ours.
            unsafe { if_init(ptr::from_ref(sc).cast_mut().cast()) };
            if data.is_null() {
                return 0;
            }
            // SAFETY: for SIOCSIFADDR the data is the new `struct ifaddr *`: `ifa_addr` at 0
            // and `ifa_netmask` at 16 point at sockaddrs (`sa_family` at 1, `sin_addr` at 4).
            unsafe {
                let sa = data.cast::<*const u8>().read_unaligned();
                if sa.is_null() || sa.add(1).read() != SA_AF_INET {
                    return 0;
                }
                let addr = Ipv4Addr::from(sa.add(4).cast::<[u8; 4]>().read_unaligned());
                let nm = data
                    .add(IFA_NETMASK_OFFSET)
                    .cast::<*const u8>()
                    .read_unaligned();
                let prefix = if nm.is_null() {
                    32
                } else {
                    prefix_len(Ipv4Addr::from(nm.add(4).cast::<[u8; 4]>().read_unaligned()))
                };
                // The poll thread hands it to the link (which may sleep doing so).
                sc.queue.as_ref().lock().ipv4 = Some((addr, prefix));
                ffi::arp_ifinit(ifp, data.cast());
            }
            0
        }
        _ => EINVAL,
    }
}

/// The base name of the module's IPoIB interfaces (`isbib0`, `isbib1`, ...).
pub const IF_NAME: &str = "isbib";

/// The tunable naming the peer address of the diagnostic loopback interface.
pub const LOOPBACK_TUNABLE: &CStr = c"net.isboot.ipoib_loopback";

/// The diagnostic interface's softc (null when there is none).
static LOOPBACK: AtomicPtr<Softc> = AtomicPtr::new(ptr::null_mut());

/// At `MOD_LOAD`: with `net.isboot.ipoib_loopback=<IPv4 address>` set, attaches `isbib0` over
/// a [`LoopbackLink`] whose peer owns that address — the kernel side of the IPoIB interface,
/// checked without an HCA (`ifconfig isbib0 inet 10.77.0.1/24; ping 10.77.0.2`). Says why
/// when it cannot.
pub fn loopback_load() {
    let mut buf = [0u8; 32];
    let Some(v) = kernel_bindings::tunable::fetch_str(LOOPBACK_TUNABLE, &mut buf) else {
        return;
    };
    let Some(peer) = core::str::from_utf8(v)
        .ok()
        .and_then(|t| t.parse::<Ipv4Addr>().ok())
    else {
        console(format_args!(
            "isboot: {}: not an IPv4 address; no loopback interface",
            LOOPBACK_TUNABLE.to_str().unwrap_or("")
        ));
        return;
    };
    match attach(Box::new(LoopbackLink::new(peer)), IF_NAME, 0) {
        Ok(h) => {
            console(format_args!(
                "{}: loopback link, peer {peer} (diagnostic: no HCA)",
                h.name()
            ));
            LOOPBACK.store(h.sc, Ordering::Release);
        }
        Err(e) => console(format_args!("isboot: no loopback interface: {e}")),
    }
}

/// Whether the diagnostic interface is attached (it has unit 0).
pub fn loopback_attached() -> bool {
    !LOOPBACK.load(Ordering::Acquire).is_null()
}

/// At `MOD_UNLOAD`: detaches the diagnostic interface, if any; `EBUSY` if its thread would
/// not stop (the interface stays).
pub fn loopback_unload() -> c_int {
    let sc = LOOPBACK.swap(ptr::null_mut(), Ordering::AcqRel);
    if sc.is_null() {
        return 0;
    }
    match detach(IfHandle { sc }) {
        Ok(()) => 0,
        Err((h, e)) => {
            console(format_args!("{}: {e}; not unloading", h.name()));
            LOOPBACK.store(h.sc, Ordering::Release);
            EBUSY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gid_and_event_lines() {
        let mut hw = [0u8; 20];
        hw[3] = 0x48;
        hw[4] = 0xfe;
        hw[5] = 0x80;
        hw[19] = 0x02;
        let ev = LinkEvent::Moved {
            from: 1,
            to: 2,
            hwaddr: hw,
        };
        assert_eq!(
            alloc::format!("{}", event_text(&ev, 2)),
            "port 1 down, moved to port 2 (gid fe80:0000:0000:0000:0000:0000:0000:0002)"
        );
        assert_eq!(
            alloc::format!("{}", event_text(&LinkEvent::Down, 1)),
            "link down"
        );
        assert_eq!(
            alloc::format!("{}", event_text(&LinkEvent::Up, 1)),
            "link up (port 1)"
        );
    }

    #[test]
    fn mtu_bounds_and_prefixes() {
        assert!(mtu_ok(2044, 2044) && mtu_ok(72, 2044) && mtu_ok(1500, 2044));
        assert!(!mtu_ok(2045, 2044) && !mtu_ok(71, 2044) && !mtu_ok(-1, 2044));
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 255, 0)), 24);
        assert_eq!(prefix_len(Ipv4Addr::new(0, 0, 0, 0)), 0);
        assert_eq!(tx_errno(TxError::LinkDown), 50);
        assert_eq!(tx_errno(TxError::NoBuffers), 55);
    }
}
