//! Network interfaces on FreeBSD's InfiniBand link layer (`sys/net/if.c`,
//! `sys/net/if_infiniband.c`), the mbufs a driver hands over (`sys/kern/uipc_mbuf.c`), and a
//! bridge that makes each interface a Linux TUN device of kldrun's network namespace, so that
//! Linux's IPv4 stack plays the FreeBSD stack's part above the driver.
//!
//! - **ifnet**: `if_alloc` gives an opaque `if_t` (a zeroed block the module must not read:
//!   14 drivers use the accessors); `if_initname`, `if_setsoftc`/`if_getsoftc`,
//!   `if_setflags`/`if_getflags`/`if_setflagbits`, `if_setdrvflagbits`/`if_getdrvflags`,
//!   `if_setmtu`/`if_getmtu`, `if_setbaudrate`, `if_set{init,ioctl,transmit,qflush}fn`,
//!   `if_inc_counter`, `if_name`, `if_getlladdr` (the 20 link-level address bytes, writable
//!   as in the `AF_LINK` sockaddr), `if_setlladdr` (`ENODEV` for `IFT_INFINIBAND`, as if.c),
//!   `if_link_state_change` (a no-op when unchanged; else the console line if.c prints with
//!   `log_link_state_change` on, "isbib0: link state changed to UP", and the TUN's carrier),
//!   `if_free` (of an interface still attached: a panic, as FreeBSD's `if_free` asserts).
//! - **infiniband_ifattach(ifp, lla, llb)**: `if_addrlen` 20, MTU 1500 (`INFINIBAND_MTU`),
//!   baud rate 10 Gbit/s if unset, `lla` copied, `llb` kept *as a pointer* (read at each use:
//!   it must outlive the interface), then the TUN device of the same name (`IFF_TUN |
//!   IFF_NO_PI`) with the interface's MTU, and a kernel thread of kldrun's (`<name> output`)
//!   that runs the link layer's output side: IPv4 packets Linux routes into the TUN are
//!   resolved by kldrun's IPoIB ARP (RFC 4391 §7, RFC 826: `ar_hrd` 32, `ar_hln` 20) —
//!   broadcast and multicast destinations go to `llb` — framed with the 24-byte
//!   `struct infiniband_header` (destination, EtherType) in a two-mbuf chain (the header in
//!   its own mbuf, as `M_PREPEND` leaves it) and handed to the driver's `if_transmit`, as
//!   `infiniband_output` does (only while the interface is `IFF_UP` and `IFF_DRV_RUNNING`).
//!   Packets waiting for ARP are queued (at most [`ARP_QUEUE`]; the oldest is dropped); a
//!   request is repeated once a second, and after [`ARP_GIVE_UP`] the waiting packets go.
//!   The TUN carries no next hop, so kldrun asks Linux's FIB for the destination's route
//!   (`RTM_GETROUTE`, cached for a second) and resolves its gateway when it has one, else the
//!   destination — as `infiniband_output` hands `arpresolve` the route's gateway
//!   (`RT_HAS_GW`, sys/net/if_infiniband.c) and Linux's neighbour layer resolves the nexthop.
//! - The same thread mirrors what ifconfig(8) would tell the driver: when Linux's `IFF_UP` of
//!   the TUN changes, the interface's flag follows and the driver gets `SIOCSIFFLAGS` (as
//!   `ifhwioctl` sends it); an MTU set on the TUN goes to the driver as `SIOCSIFMTU` (72 ..=
//!   65535 first, as `ifhwioctl` checks) and, refused or not applied with `if_setmtu`, the TUN
//!   gets the interface's MTU back; each new IPv4 address of the TUN reaches the driver as
//!   `SIOCSIFADDR` with a `struct ifaddr` (as `in_control` sends it).
//! - **if_input(ifp, m)** (`infiniband_input`): the chain must have a packet header and
//!   `rcvif` = `ifp`, else the kernel panics; frames shorter than the header, or arriving
//!   while the interface is down, are dropped; the EtherType picks: IPv4 → written to the
//!   TUN; ARP → the cache learns the sender, and a request for one of the TUN's addresses is
//!   answered (through the driver, at once, from the calling thread) and packets waiting for
//!   that sender go out; anything else counts as `noproto`.
//! - **infiniband_ifdetach**: the output thread stops, the TUN is closed (and disappears);
//!   the interface's counters (what the driver counted with `if_inc_counter`) are printed,
//!   with the packets still waiting for ARP and those dropped for want of an answer.
//! - **arp_ifinit**: what the driver calls for a new address; kldrun's ARP needs nothing from
//!   it (the TUN's addresses answer), so it only checks the interface.
//! - **mbufs**: `m_devget` (a packet-header chain: clusters of 2048 bytes, the last piece in
//!   the mbuf itself when it fits, `rcvif` and `m_pkthdr.len` set), `m_length`,
//!   `m_copydata`, `m_freem`, `m_free`. The layout is 14's (`struct pkthdr` of 56 bytes:
//!   `rcvif` at 32, `len` at 48 of the mbuf); a module that reads `m_pkthdr` itself would see
//!   14's fields. Mbufs never freed are leaks, as are interfaces never freed.

use super::{mem, threads, Ctx};
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `IFT_INFINIBAND` (net/if_types.h).
const IFT_INFINIBAND: u8 = 0xc7;
/// `INFINIBAND_ADDR_LEN`.
const ADDR_LEN: usize = 20;
/// `sizeof(struct infiniband_header)`.
const HDR_LEN: usize = 24;
const IFF_UP: i32 = 0x1;
const IFF_DRV_RUNNING: i32 = 0x40;
const LINK_STATE_UP: i32 = 2;
const LINK_STATE_DOWN: i32 = 1;
const SIOCSIFADDR: u64 = 0x8020_690c;
const SIOCSIFFLAGS: u64 = 0x8020_6910;
const SIOCSIFMTU: u64 = 0x8020_6934;
/// `IF_MINMTU`, `IF_MAXMTU` (net/if_var.h): what `ifhwioctl` checks before the driver.
const IF_MTU_RANGE: std::ops::RangeInclusive<i32> = 72..=65535;
const ENODEV: u64 = 19;
const ETHERTYPE_IP: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
/// `ARPHRD_INFINIBAND` (net/if_arp.h).
const ARPHRD_INFINIBAND: u16 = 32;
/// Packets waiting for ARP, over all destinations.
pub const ARP_QUEUE: usize = 64;
/// How long a packet may wait for ARP.
pub const ARP_GIVE_UP: Duration = Duration::from_secs(3);
/// Bytes of the opaque `if_t` block.
const IFNET_SIZE: usize = 1024;
/// Where the link-level address bytes live in the block (what `if_getlladdr` returns).
const LLADDR_AT: usize = 512;

// --- mbufs (FreeBSD 14 layout, sys/sys/mbuf.h) ---------------------------------------------

const MSIZE: usize = 256;
const MCLBYTES: usize = 2048;
const M_NEXT: u64 = 0;
const M_DATA: u64 = 16;
const M_LEN: u64 = 24;
const M_TYPEFLAGS: u64 = 28;
const M_RCVIF: u64 = 32;
const M_PKTLEN: u64 = 48;
/// `m_pktdat`: after the 32-byte header and 14's 56-byte `struct pkthdr`.
const M_PKTDAT: u64 = 88;
const M_EXTBUF: u64 = M_PKTDAT + 16;
const M_EXTSIZE: u64 = M_PKTDAT + 8;
const MHLEN: usize = MSIZE - M_PKTDAT as usize;
const MLEN: usize = MSIZE - 32;
const F_M_EXT: u32 = 0x1;
const F_M_PKTHDR: u32 = 0x2;
const MT_DATA: u32 = 1;

#[derive(Debug)]
struct MbufRec {
    /// The cluster's storage (freed with the mbuf).
    _cluster: Option<Box<[u8; MCLBYTES]>>,
    from: u64,
}

static MBUFS: Mutex<Option<HashMap<u64, MbufRec>>> = Mutex::new(None);
static MBUFS_MADE: AtomicU64 = AtomicU64::new(0);

fn mbufs<T>(f: impl FnOnce(&mut HashMap<u64, MbufRec>) -> T) -> T {
    f(MBUFS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new))
}

/// One mbuf holding `data` (cluster when it does not fit inside), first of a packet if
/// `pkthdr`.
fn mbuf_with(data: &[u8], pkthdr: bool, from: u64) -> u64 {
    let m = Box::into_raw(Box::new([0u64; MSIZE / 8])) as u64;
    let inside = if pkthdr { MHLEN } else { MLEN };
    let mut flags = if pkthdr { F_M_PKTHDR } else { 0 };
    let mut cluster = None;
    let at = if data.len() > inside {
        let mut c = Box::new([0u8; MCLBYTES]);
        let p = c.as_mut_ptr() as u64;
        cluster = Some(c);
        flags |= F_M_EXT;
        // SAFETY: our fresh mbuf: m_ext.ext_buf / ext_size.
        unsafe {
            mem::write(m + M_EXTBUF, p);
            mem::write(m + M_EXTSIZE, MCLBYTES as u32);
        }
        p
    } else if pkthdr {
        m + M_PKTDAT
    } else {
        m + 32
    };
    assert!(data.len() <= MCLBYTES);
    // SAFETY: our fresh mbuf and its storage of at least data.len() bytes.
    unsafe {
        mem::write_bytes(at, data);
        mem::write(m + M_DATA, at);
        mem::write(m + M_LEN, data.len() as i32);
        mem::write(m + M_TYPEFLAGS, MT_DATA | (flags << 8));
    }
    mbufs(|t| {
        t.insert(
            m,
            MbufRec {
                _cluster: cluster,
                from,
            },
        )
    });
    MBUFS_MADE.fetch_add(1, Ordering::Relaxed);
    m
}

fn is_mbuf(m: u64) -> bool {
    mbufs(|t| t.contains_key(&m))
}

fn flags(m: u64) -> u32 {
    // SAFETY: one of our mbufs (checked by the callers).
    unsafe { mem::read::<u32>(m + M_TYPEFLAGS) >> 8 }
}

/// A packet-header chain of `data`: the first `first` bytes in one mbuf, the rest in
/// clusters.
fn chain(data: &[u8], first: usize, rcvif: u64, from: u64) -> u64 {
    let first = first.min(data.len()).min(MCLBYTES);
    let head = mbuf_with(&data[..first], true, from);
    // SAFETY: our packet-header mbuf.
    unsafe {
        mem::write(head + M_RCVIF, rcvif);
        mem::write(head + M_PKTLEN, data.len() as i32);
    }
    let mut last = head;
    for piece in data[first..].chunks(MCLBYTES) {
        let m = mbuf_with(piece, false, from);
        // SAFETY: our mbuf, the chain's last.
        unsafe { mem::write(last + M_NEXT, m) };
        last = m;
    }
    head
}

/// The bytes of a chain (each mbuf checked to be one of ours).
fn chain_bytes(c: &Ctx, m: u64, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut p = m;
    while p != 0 {
        if !is_mbuf(p) {
            super::kpanic(c, &format!("{what}: {p:#x} is not an mbuf"));
        }
        // SAFETY: one of our mbufs; m_data/m_len as kldrun or the module set them (the module
        // may only move them within the storage).
        unsafe {
            let data = mem::read::<u64>(p + M_DATA);
            let len = mem::read::<i32>(p + M_LEN).max(0) as usize;
            out.extend_from_slice(&mem::bytes(data, len));
            p = mem::read::<u64>(p + M_NEXT);
        }
    }
    out
}

fn free_one(c: &Ctx, m: u64, what: &str) -> u64 {
    let rec = mbufs(|t| t.remove(&m));
    if rec.is_none() {
        super::kpanic(
            c,
            &format!("{what}: {m:#x} is not an mbuf (or was freed already)"),
        );
    }
    // SAFETY: our mbuf, removed from the table once: read its link, then free it.
    unsafe {
        let next = mem::read::<u64>(m + M_NEXT);
        drop(Box::from_raw(m as *mut [u64; MSIZE / 8]));
        next
    }
}

fn freem(c: &Ctx, m: u64, what: &str) {
    let mut p = m;
    while p != 0 {
        p = free_one(c, p, what);
    }
}

/// `void m_freem(struct mbuf *m);`
pub fn m_freem(c: &mut Ctx) -> u64 {
    let m = c.args.ptr();
    freem(c, m, "m_freem");
    0
}

/// `struct mbuf *m_free(struct mbuf *m);`: frees one mbuf, returns the next.
pub fn m_free(c: &mut Ctx) -> u64 {
    let m = c.args.ptr();
    free_one(c, m, "m_free")
}

/// `u_int m_length(struct mbuf *m, struct mbuf **last);`
pub fn m_length(c: &mut Ctx) -> u64 {
    let m = c.args.ptr();
    let last = c.args.ptr();
    let mut n = 0u64;
    let mut p = m;
    let mut prev = 0;
    while p != 0 {
        if !is_mbuf(p) {
            super::kpanic(c, &format!("m_length: {p:#x} is not an mbuf"));
        }
        // SAFETY: one of our mbufs.
        unsafe {
            n += mem::read::<i32>(p + M_LEN).max(0) as u64;
            prev = p;
            p = mem::read::<u64>(p + M_NEXT);
        }
    }
    if last != 0 {
        // SAFETY: the caller's out-pointer.
        unsafe { mem::write(last, prev) };
    }
    n
}

/// `void m_copydata(const struct mbuf *m, int off, int len, caddr_t cp);`: panics (as the
/// kernel's `KASSERT`s) when the chain is shorter than `off + len`.
pub fn m_copydata(c: &mut Ctx) -> u64 {
    let m = c.args.ptr();
    let off = c.args.int();
    let len = c.args.int();
    let cp = c.args.ptr();
    let bytes = chain_bytes(c, m, "m_copydata");
    if off < 0 || len < 0 || off as usize + len as usize > bytes.len() {
        super::kpanic(
            c,
            &format!(
                "m_copydata: off {off} len {len} beyond the chain's {} bytes",
                bytes.len()
            ),
        );
    }
    // SAFETY: the caller's buffer of `len` bytes.
    unsafe { mem::write_bytes(cp, &bytes[off as usize..(off + len) as usize]) };
    0
}

/// `struct mbuf *m_devget(char *buf, int totlen, int off, struct ifnet *ifp,
/// void (*copy)(char *from, caddr_t to, u_int len));`
pub fn m_devget(c: &mut Ctx) -> u64 {
    let buf = c.args.ptr();
    let totlen = c.args.int();
    let off = c.args.int();
    let ifp = c.args.ptr();
    let copy = c.args.ptr();
    if copy != 0 {
        super::kpanic(
            c,
            "m_devget: a copy function is not emulated by kldrun (pass NULL)",
        );
    }
    if totlen <= 0 || off < 0 {
        return 0;
    }
    // SAFETY: the caller's buffer of off + totlen bytes.
    let data = unsafe { mem::bytes(buf + off as u64, totlen as usize) };
    let first = if data.len() <= MHLEN {
        data.len()
    } else {
        MCLBYTES
    };
    chain(&data, first, ifp, c.ret_addr)
}

// --- interfaces ------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Arp {
    cache: HashMap<Ipv4Addr, [u8; ADDR_LEN]>,
    /// Destination → (next hop, looked up at).
    routes: HashMap<Ipv4Addr, (Ipv4Addr, Instant)>,
    /// (next hop, frame payload (an IPv4 packet), queued at).
    waiting: VecDeque<(Ipv4Addr, Vec<u8>, Instant)>,
    asked: HashMap<Ipv4Addr, Instant>,
    dropped: u64,
}

#[derive(Debug)]
struct Bridge {
    fd: i32,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct If {
    ty: u8,
    name: String,
    softc: u64,
    flags: i32,
    drv_flags: i32,
    mtu: i32,
    baudrate: u64,
    init_fn: u64,
    ioctl_fn: u64,
    transmit_fn: u64,
    qflush_fn: u64,
    attached: bool,
    bcast: u64,
    link_state: i32,
    counters: [u64; 12],
    from: u64,
    fd: i32,
    /// IPv4 addresses the driver was told of (`SIOCSIFADDR`).
    told: Vec<Ipv4Addr>,
}

static IFS: Mutex<Option<HashMap<u64, If>>> = Mutex::new(None);
static BRIDGES: Mutex<Option<HashMap<u64, Bridge>>> = Mutex::new(None);
static ARPS: Mutex<Option<HashMap<u64, Arp>>> = Mutex::new(None);
static IFS_MADE: AtomicU64 = AtomicU64::new(0);

fn with_if<T>(ifp: u64, f: impl FnOnce(&mut If) -> T) -> Option<T> {
    IFS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get_mut(&ifp)
        .map(f)
}

fn with_arp<T>(ifp: u64, f: impl FnOnce(&mut Arp) -> T) -> T {
    f(ARPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .entry(ifp)
        .or_default())
}

fn get(c: &Ctx, ifp: u64, what: &str) {
    if with_if(ifp, |_| ()).is_none() {
        super::kpanic(c, &format!("{what}: {ifp:#x} is not an interface"));
    }
}

/// `if_t if_alloc(u_char type);`
pub fn if_alloc(c: &mut Ctx) -> u64 {
    let ty = c.args.int() as u8;
    let ifp = Box::into_raw(Box::new([0u64; IFNET_SIZE / 8])) as u64;
    IFS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(
            ifp,
            If {
                ty,
                from: c.ret_addr,
                fd: -1,
                ..If::default()
            },
        );
    IFS_MADE.fetch_add(1, Ordering::Relaxed);
    ifp
}

/// `void if_free(if_t);`
pub fn if_free(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    get(c, ifp, "if_free");
    if with_if(ifp, |i| i.attached).unwrap_or(false) {
        super::kpanic(
            c,
            "if_free: the interface is still attached (detach it first)",
        );
    }
    IFS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .and_then(|m| m.remove(&ifp));
    ARPS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .and_then(|m| m.remove(&ifp));
    // SAFETY: the block if_alloc leaked, removed from the table once.
    drop(unsafe { Box::from_raw(ifp as *mut [u64; IFNET_SIZE / 8]) });
    0
}

/// `void if_initname(if_t, const char *name, int unit);`
pub fn if_initname(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    let name = c.args.ptr();
    let unit = c.args.int();
    get(c, ifp, "if_initname");
    // SAFETY: a NUL-terminated driver name.
    let base = unsafe { mem::string(name) };
    let full = if unit < 0 {
        base
    } else {
        format!("{base}{unit}")
    };
    if full.len() >= 16 {
        super::kpanic(c, &format!("if_initname: {full:?} does not fit IFNAMSIZ"));
    }
    with_if(ifp, |i| i.name = full);
    0
}

macro_rules! setter {
    ($fn:ident, $field:ident, $ty:ty, $read:ident) => {
        #[doc = concat!("`", stringify!($fn), "(if_t, ...)`: sets `", stringify!($field), "`.")]
        pub fn $fn(c: &mut Ctx) -> u64 {
            let ifp = c.args.ptr();
            let v = c.args.$read() as $ty;
            get(c, ifp, stringify!($fn));
            with_if(ifp, |i| i.$field = v);
            0
        }
    };
}

setter!(if_setsoftc, softc, u64, ptr);
setter!(if_setinitfn, init_fn, u64, ptr);
setter!(if_setioctlfn, ioctl_fn, u64, ptr);
setter!(if_settransmitfn, transmit_fn, u64, ptr);
setter!(if_setqflushfn, qflush_fn, u64, ptr);
setter!(if_setflags, flags, i32, int);

macro_rules! getter {
    ($fn:ident, $field:ident) => {
        #[doc = concat!("`", stringify!($fn), "(if_t)`: reads `", stringify!($field), "`.")]
        pub fn $fn(c: &mut Ctx) -> u64 {
            let ifp = c.args.ptr();
            get(c, ifp, stringify!($fn));
            with_if(ifp, |i| i.$field as u64).unwrap_or(0)
        }
    };
}

getter!(if_getsoftc, softc);
getter!(if_getflags, flags);
getter!(if_getdrvflags, drv_flags);
getter!(if_getmtu, mtu);

/// `int if_setflagbits(if_t, int set, int clear);`
pub fn if_setflagbits(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    let set = c.args.int();
    let clear = c.args.int();
    get(c, ifp, "if_setflagbits");
    with_if(ifp, |i| i.flags = (i.flags | set) & !clear);
    0
}

/// `int if_setdrvflagbits(if_t, int set, int clear);`
pub fn if_setdrvflagbits(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    let set = c.args.int();
    let clear = c.args.int();
    get(c, ifp, "if_setdrvflagbits");
    with_if(ifp, |i| i.drv_flags = (i.drv_flags | set) & !clear);
    0
}

/// `int if_setmtu(if_t, int mtu);`: also the TUN's MTU once attached.
pub fn if_setmtu(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    let mtu = c.args.int();
    get(c, ifp, "if_setmtu");
    let name = with_if(ifp, |i| {
        i.mtu = mtu;
        (i.fd >= 0).then(|| i.name.clone())
    })
    .flatten();
    if let Some(n) = name {
        if let Err(e) = linux_set_mtu(&n, mtu) {
            eprintln!("kldrun: {n}: cannot set the TUN's MTU to {mtu}: {e}");
        }
    }
    0
}

/// `uint64_t if_setbaudrate(if_t, uint64_t);`
pub fn if_setbaudrate(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    let b = c.args.ptr();
    get(c, ifp, "if_setbaudrate");
    with_if(ifp, |i| i.baudrate = b);
    0
}

/// `void if_inc_counter(if_t, ift_counter, int64_t);`
pub fn if_inc_counter(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    let k = c.args.int();
    let n = c.args.ptr() as i64;
    get(c, ifp, "if_inc_counter");
    if !(0..12).contains(&k) {
        super::kpanic(c, &format!("if_inc_counter: counter {k} out of range"));
    }
    with_if(ifp, |i| {
        i.counters[k as usize] = i.counters[k as usize].wrapping_add(n as u64)
    });
    0
}

/// `const char *if_name(if_t);`: a copy that lives as long as the interface (in its block).
pub fn if_name(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    get(c, ifp, "if_name");
    let name = with_if(ifp, |i| i.name.clone()).unwrap_or_default();
    let at = ifp + 64;
    let mut b = name.into_bytes();
    b.truncate(15);
    b.push(0);
    // SAFETY: bytes 64..80 of the interface's own block.
    unsafe { mem::write_bytes(at, &b) };
    at
}

/// `caddr_t if_getlladdr(if_t);`
pub fn if_getlladdr(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    get(c, ifp, "if_getlladdr");
    ifp + LLADDR_AT as u64
}

/// `int if_setlladdr(if_t, const u_char *, int);`: `ENODEV` for InfiniBand (if.c rewrites
/// Ethernet-like types only), `EINVAL` for another length.
pub fn if_setlladdr(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    let lla = c.args.ptr();
    let len = c.args.int();
    get(c, ifp, "if_setlladdr");
    let ty = with_if(ifp, |i| i.ty).unwrap_or(0);
    if len as usize != ADDR_LEN && ty == IFT_INFINIBAND {
        return 22;
    }
    if ty == IFT_INFINIBAND {
        return ENODEV;
    }
    // SAFETY: the caller's address of `len` bytes, into the block's lladdr area.
    unsafe {
        let b = mem::bytes(lla, (len.max(0) as usize).min(64));
        mem::write_bytes(ifp + LLADDR_AT as u64, &b);
    }
    0
}

fn lladdr(ifp: u64) -> [u8; ADDR_LEN] {
    // SAFETY: the interface's lladdr bytes in its block.
    unsafe { mem::read(ifp + LLADDR_AT as u64) }
}

fn bcast(ifp: u64) -> Option<[u8; ADDR_LEN]> {
    let p = with_if(ifp, |i| i.bcast).unwrap_or(0);
    // SAFETY: the `llb` pointer the driver gave infiniband_ifattach, which it promised to
    // keep alive while the interface is attached.
    (p != 0).then(|| unsafe { mem::read(p) })
}

/// `void if_link_state_change(if_t, int);`
pub fn if_link_state_change(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    let state = c.args.int();
    get(c, ifp, "if_link_state_change");
    let change = with_if(ifp, |i| {
        let changed = i.link_state != state;
        i.link_state = state;
        (changed, i.name.clone(), i.fd)
    });
    if let Some((true, name, fd)) = change {
        let word = match state {
            LINK_STATE_UP => "UP",
            LINK_STATE_DOWN => "DOWN",
            _ => "UNKNOWN",
        };
        super::console::write(format!("{name}: link state changed to {word}\n").as_bytes());
        if fd >= 0 {
            let on: libc::c_int = i32::from(state == LINK_STATE_UP);
            // SAFETY: TUNSETCARRIER on our TUN descriptor with an int argument.
            unsafe { libc::ioctl(fd, TUNSETCARRIER, &on) };
        }
    }
    0
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETCARRIER: libc::c_ulong = 0x4004_54e2;

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s as libc::c_char;
    }
    r
}

fn with_sock<T>(f: impl FnOnce(i32) -> T) -> std::io::Result<T> {
    // SAFETY: socket(2) with constant arguments; closed below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let r = f(s);
    // SAFETY: ours.
    unsafe { libc::close(s) };
    Ok(r)
}

fn linux_set_mtu(name: &str, mtu: i32) -> std::io::Result<()> {
    let mut r = ifreq(name);
    r.ifr_ifru.ifru_mtu = mtu;
    with_sock(|s| {
        // SAFETY: SIOCSIFMTU with a valid ifreq.
        let rc = unsafe { libc::ioctl(s, libc::SIOCSIFMTU, &r) };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    })?
}

fn linux_mtu(name: &str) -> Option<i32> {
    let mut r = ifreq(name);
    with_sock(|s| {
        // SAFETY: SIOCGIFMTU into a valid ifreq.
        let rc = unsafe { libc::ioctl(s, libc::SIOCGIFMTU, &mut r) };
        // SAFETY: the union's mtu member (filled by the kernel when rc is 0).
        let mtu = unsafe { r.ifr_ifru.ifru_mtu };
        (rc == 0).then_some(mtu)
    })
    .ok()
    .flatten()
}

fn linux_up(name: &str) -> bool {
    let mut r = ifreq(name);
    with_sock(|s| {
        // SAFETY: SIOCGIFFLAGS into a valid ifreq.
        let rc = unsafe { libc::ioctl(s, libc::SIOCGIFFLAGS, &mut r) };
        // SAFETY: filled by the kernel.
        rc == 0 && unsafe { r.ifr_ifru.ifru_flags } & libc::IFF_UP as libc::c_short != 0
    })
    .unwrap_or(false)
}

/// The IPv4 addresses (with their netmasks) Linux has on `name`.
fn linux_addrs(name: &str) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    let mut out = Vec::new();
    let mut ifa: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs into our pointer, freed below.
    if unsafe { libc::getifaddrs(&mut ifa) } != 0 {
        return out;
    }
    let mut p = ifa;
    while !p.is_null() {
        // SAFETY: a list getifaddrs built; each entry's name is a C string and the
        // addresses, when non-NULL, sockaddrs of their family.
        unsafe {
            let e = &*p;
            let n = std::ffi::CStr::from_ptr(e.ifa_name).to_string_lossy();
            if n == name
                && !e.ifa_addr.is_null()
                && i32::from((*e.ifa_addr).sa_family) == libc::AF_INET
            {
                let a = &*(e.ifa_addr as *const libc::sockaddr_in);
                let m = if e.ifa_netmask.is_null() {
                    Ipv4Addr::BROADCAST
                } else {
                    Ipv4Addr::from(u32::from_be(
                        (*(e.ifa_netmask as *const libc::sockaddr_in))
                            .sin_addr
                            .s_addr,
                    ))
                };
                out.push((Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)), m));
            }
            p = e.ifa_next;
        }
    }
    // SAFETY: the list getifaddrs gave us.
    unsafe { libc::freeifaddrs(ifa) };
    out
}

fn open_tun(name: &str) -> std::io::Result<i32> {
    // SAFETY: open(2) of a constant path.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut r = ifreq(name);
    r.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF with a valid ifreq.
    if unsafe { libc::ioctl(fd, TUNSETIFF, &mut r) } < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: ours.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

/// `void infiniband_ifattach(struct ifnet *, const uint8_t *lla, const uint8_t *llb);`
pub fn infiniband_ifattach(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    let lla = c.args.ptr();
    let llb = c.args.ptr();
    get(c, ifp, "infiniband_ifattach");
    if lla == 0 || llb == 0 {
        super::kpanic(c, "infiniband_ifattach: NULL link-level address");
    }
    // SAFETY: the driver's 20-byte address, into the block's lladdr area.
    unsafe { mem::write_bytes(ifp + LLADDR_AT as u64, &mem::bytes(lla, ADDR_LEN)) };
    let name = with_if(ifp, |i| {
        i.attached = true;
        i.mtu = 1500;
        i.bcast = llb;
        if i.baudrate == 0 {
            i.baudrate = 10_000_000_000;
        }
        i.name.clone()
    })
    .unwrap_or_default();
    if name.is_empty() {
        super::kpanic(
            c,
            "infiniband_ifattach: the interface has no name (if_initname)",
        );
    }
    let fd = match open_tun(&name) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("kldrun: {name}: no TUN bridge ({e}); the interface runs unbridged");
            return 0;
        }
    };
    if let Err(e) = linux_set_mtu(&name, 1500) {
        eprintln!("kldrun: {name}: cannot set the TUN's MTU: {e}");
    }
    with_if(ifp, |i| i.fd = fd);
    let t = match threads::create(&format!("{name} output"), crate::kstack::KSTACK_SIZE) {
        Ok(t) => t,
        Err(e) => super::kpanic(c, &format!("infiniband_ifattach: no kernel stack: {e}")),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let th = std::thread::Builder::new()
        .name(format!("k:{name} output"))
        .spawn(move || output_loop(t, ifp, fd, &stop2));
    let thread = match th {
        Ok(h) => Some(h),
        Err(e) => super::kpanic(c, &format!("infiniband_ifattach: no thread: {e}")),
    };
    BRIDGES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(ifp, Bridge { fd, stop, thread });
    0
}

fn stop_bridge(ifp: u64) -> Option<String> {
    let b = BRIDGES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .and_then(|m| m.remove(&ifp))?;
    b.stop.store(true, Ordering::Release);
    if let Some(h) = b.thread {
        let _ = h.join();
    }
    // SAFETY: our TUN descriptor, closed once (the device goes with it).
    unsafe { libc::close(b.fd) };
    with_if(ifp, |i| {
        i.fd = -1;
        i.name.clone()
    })
}

/// `void infiniband_ifdetach(struct ifnet *);`
pub fn infiniband_ifdetach(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    get(c, ifp, "infiniband_ifdetach");
    if !with_if(ifp, |i| i.attached).unwrap_or(false) {
        super::kpanic(c, "infiniband_ifdetach: the interface is not attached");
    }
    stop_bridge(ifp);
    let stats = with_if(ifp, |i| {
        i.attached = false;
        i.bcast = 0;
        let k = &i.counters;
        format!(
            "{}: ipackets {} ierrors {} iqdrops {} ibytes {} opackets {} oerrors {} obytes {}",
            i.name, k[0], k[1], k[9], k[5], k[2], k[3], k[6]
        )
    });
    let (waiting, dropped) = with_arp(ifp, |a| (a.waiting.len(), a.dropped));
    if let Some(s) = stats {
        // What netstat -i would show at the end, kept by the driver's if_inc_counter calls,
        // and what never got an ARP answer.
        eprintln!("kldrun: {s}; unresolved (ARP): {waiting} waiting, {dropped} dropped");
    }
    0
}

/// `void arp_ifinit(struct ifnet *, struct ifaddr *);`
pub fn arp_ifinit(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    get(c, ifp, "arp_ifinit");
    0
}

/// Hands one frame (header + payload) to the driver's `if_transmit` from kernel thread `t`,
/// as `infiniband_output` does; false when the interface is not running.
fn output(t: usize, ifp: u64, dst: &[u8; ADDR_LEN], ethertype: u16, payload: &[u8]) -> bool {
    let Some((flags, drv, tx)) = with_if(ifp, |i| (i.flags, i.drv_flags, i.transmit_fn)) else {
        return false;
    };
    if flags & IFF_UP == 0 || drv & IFF_DRV_RUNNING == 0 || tx == 0 {
        with_if(ifp, |i| i.counters[3] += 1);
        return false;
    }
    let mut frame = Vec::with_capacity(HDR_LEN + payload.len());
    frame.extend_from_slice(dst);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    let m = chain(&frame, HDR_LEN, 0, 0);
    // SAFETY: the driver's if_transmit: int (*)(if_t, struct mbuf *); it owns the chain.
    let e = unsafe { threads::call(t, tx, &[ifp, m]) } as i32;
    if e != 0 {
        super::verbose(|| format!("if_transmit: error {e}"));
    }
    true
}

fn arp_packet(
    op: u16,
    sha: &[u8; ADDR_LEN],
    spa: Ipv4Addr,
    tha: &[u8; ADDR_LEN],
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut a = Vec::with_capacity(56);
    a.extend_from_slice(&ARPHRD_INFINIBAND.to_be_bytes());
    a.extend_from_slice(&ETHERTYPE_IP.to_be_bytes());
    a.push(ADDR_LEN as u8);
    a.push(4);
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(tha);
    a.extend_from_slice(&tpa.octets());
    a
}

/// Sends what waits for `ip` (now resolved to `hw`) and drops what waited too long.
fn flush_waiting(t: usize, ifp: u64) {
    let now = Instant::now();
    let ready: Vec<([u8; ADDR_LEN], Vec<u8>)> = with_arp(ifp, |a| {
        let mut out = Vec::new();
        let mut keep = VecDeque::new();
        while let Some((ip, p, at)) = a.waiting.pop_front() {
            if let Some(hw) = a.cache.get(&ip) {
                out.push((*hw, p));
            } else if now.duration_since(at) > ARP_GIVE_UP {
                a.dropped += 1;
            } else {
                keep.push_back((ip, p, at));
            }
        }
        a.waiting = keep;
        out
    });
    for (hw, p) in ready {
        output(t, ifp, &hw, ETHERTYPE_IP, &p);
    }
}

/// One IPv4 packet Linux routed into the TUN.
fn ip_out(t: usize, ifp: u64, name: &str, pkt: &[u8]) {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return; // IPv6 and the rest: not carried
    }
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    let addrs = linux_addrs(name);
    let subnet_bcast = addrs.iter().any(|(a, m)| {
        let host = !u32::from(*m);
        host != 0 && u32::from(dst) == (u32::from(*a) & u32::from(*m)) | host
    });
    if dst.is_broadcast() || dst.is_multicast() || subnet_bcast {
        if let Some(b) = bcast(ifp) {
            output(t, ifp, &b, ETHERTYPE_IP, pkt);
        }
        return;
    }
    let now = Instant::now();
    let cached = with_arp(ifp, |a| {
        a.routes
            .get(&dst)
            .filter(|(_, at)| now.duration_since(*at) < Duration::from_secs(1))
            .map(|(hop, _)| *hop)
    });
    let dst = match cached {
        Some(hop) => hop,
        None => {
            let hop = next_hop(dst).unwrap_or(dst);
            with_arp(ifp, |a| a.routes.insert(dst, (hop, now)));
            hop
        }
    };
    let known = with_arp(ifp, |a| a.cache.get(&dst).copied());
    if let Some(hw) = known {
        output(t, ifp, &hw, ETHERTYPE_IP, pkt);
        return;
    }
    let ask = with_arp(ifp, |a| {
        if a.waiting.len() >= ARP_QUEUE {
            a.waiting.pop_front();
            a.dropped += 1;
        }
        a.waiting.push_back((dst, pkt.to_vec(), now));
        let ask = a
            .asked
            .get(&dst)
            .is_none_or(|at| now.duration_since(*at) >= Duration::from_secs(1));
        if ask {
            a.asked.insert(dst, now);
        }
        ask
    });
    if ask {
        arp_request(t, ifp, &addrs, dst);
    }
}

/// The gateway of Linux's route to `dst` in kldrun's network namespace (`RTM_GETROUTE` on
/// rtnetlink, rtnetlink(7)): `Some(dst)` for an on-link route, `None` when there is no route
/// or rtnetlink cannot be asked.
pub fn next_hop(dst: Ipv4Addr) -> Option<Ipv4Addr> {
    const RTM_NEWROUTE: u16 = 24;
    const RTM_GETROUTE: u16 = 26;
    const NLM_F_REQUEST: u16 = 1;
    const RTA_DST: u16 = 1;
    const RTA_GATEWAY: u16 = 5;
    // struct nlmsghdr (16), struct rtmsg (12), one rtattr RTA_DST (4 + 4).
    let mut req = Vec::with_capacity(36);
    req.extend_from_slice(&36u32.to_ne_bytes());
    req.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[libc::AF_INET as u8, 32, 0, 0, 0, 0, 0, 0]);
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&8u16.to_ne_bytes());
    req.extend_from_slice(&RTA_DST.to_ne_bytes());
    req.extend_from_slice(&dst.octets());
    // SAFETY: plain socket calls on a descriptor of ours, closed before returning; the
    // buffers are valid for the lengths given.
    let reply = unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if fd < 0 {
            return None;
        }
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let mut buf = vec![0u8; 4096];
        let n = if libc::send(fd, req.as_ptr().cast(), req.len(), 0) == req.len() as isize {
            libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0)
        } else {
            -1
        };
        libc::close(fd);
        buf.truncate(usize::try_from(n).ok()?);
        buf
    };
    let u16_at = |b: &[u8], i: usize| Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?));
    let len = u32::from_ne_bytes(reply.get(0..4)?.try_into().ok()?) as usize;
    if u16_at(&reply, 4)? != RTM_NEWROUTE || len > reply.len() {
        return None; // NLMSG_ERROR: no route
    }
    let mut i = 16 + 12;
    while i + 4 <= len {
        let alen = usize::from(u16_at(&reply, i)?);
        if alen < 4 {
            break;
        }
        if u16_at(&reply, i + 2)? == RTA_GATEWAY && alen == 8 {
            let g = reply.get(i + 4..i + 8)?;
            return Some(Ipv4Addr::new(g[0], g[1], g[2], g[3]));
        }
        i += (alen + 3) & !3;
    }
    Some(dst)
}

fn arp_request(t: usize, ifp: u64, addrs: &[(Ipv4Addr, Ipv4Addr)], dst: Ipv4Addr) {
    let src = addrs
        .iter()
        .find(|(a, m)| u32::from(*a) & u32::from(*m) == u32::from(dst) & u32::from(*m))
        .or(addrs.first())
        .map_or(Ipv4Addr::UNSPECIFIED, |(a, _)| *a);
    let Some(b) = bcast(ifp) else {
        return;
    };
    let req = arp_packet(1, &lladdr(ifp), src, &[0; ADDR_LEN], dst);
    output(t, ifp, &b, ETHERTYPE_ARP, &req);
}

/// What `ifhwioctl`/`in_control` would have told the driver: `IFF_UP`, an MTU set on the
/// TUN (`SIOCSIFMTU`: the TUN gets the interface's MTU back when the driver refuses), new
/// addresses.
fn sync_driver(t: usize, ifp: u64, name: &str) {
    let up = linux_up(name);
    let Some((flags, ioctl, mtu)) = with_if(ifp, |i| (i.flags, i.ioctl_fn, i.mtu)) else {
        return;
    };
    if let Some(want) = linux_mtu(name).filter(|m| *m != mtu) {
        let mut e = 22; // EINVAL, as ifhwioctl answers outside IF_MINMTU..IF_MAXMTU
        if IF_MTU_RANGE.contains(&want) && ioctl != 0 {
            let mut ifr = [0u8; 32];
            for (d, s) in ifr.iter_mut().zip(name.bytes()) {
                *d = s;
            }
            ifr[16..20].copy_from_slice(&want.to_le_bytes());
            // SAFETY: the driver's if_ioctl with a struct ifreq carrying ifr_mtu.
            e = unsafe { threads::call(t, ioctl, &[ifp, SIOCSIFMTU, ifr.as_mut_ptr() as u64]) }
                as i32;
        }
        let now = with_if(ifp, |i| i.mtu).unwrap_or(mtu);
        if e != 0 || now != want {
            eprintln!(
                "kldrun: {name}: MTU {want} refused (error {e}); the TUN keeps the interface's \
                 {now}"
            );
            if let Err(err) = linux_set_mtu(name, now) {
                eprintln!("kldrun: {name}: cannot restore the TUN's MTU: {err}");
            }
        }
    }
    if (flags & IFF_UP != 0) != up {
        let nflags = if up { flags | IFF_UP } else { flags & !IFF_UP };
        with_if(ifp, |i| i.flags = nflags);
        if ioctl != 0 {
            let mut ifr = [0u8; 32];
            for (d, s) in ifr.iter_mut().zip(name.bytes()) {
                *d = s;
            }
            ifr[16..18].copy_from_slice(&(nflags as u16).to_le_bytes());
            ifr[18..20].copy_from_slice(&((nflags >> 16) as u16).to_le_bytes());
            // SAFETY: the driver's if_ioctl(if_t, u_long, caddr_t) with a struct ifreq.
            unsafe { threads::call(t, ioctl, &[ifp, SIOCSIFFLAGS, ifr.as_mut_ptr() as u64]) };
        }
    }
    for (a, m) in linux_addrs(name) {
        let new = with_if(ifp, |i| {
            let n = !i.told.contains(&a);
            if n {
                i.told.push(a);
            }
            n
        })
        .unwrap_or(false);
        if !new || ioctl == 0 {
            continue;
        }
        // struct sockaddr_in (16 bytes: len, family, port, addr) ×3 and struct ifaddr
        // (ifa_addr 0, ifa_dstaddr 8, ifa_netmask 16, ifa_ifp 24).
        let sin = |ip: Ipv4Addr| -> [u8; 16] {
            let mut s = [0u8; 16];
            s[0] = 16;
            s[1] = 2;
            s[4..8].copy_from_slice(&ip.octets());
            s
        };
        let mut addr = sin(a);
        let bc = Ipv4Addr::from(u32::from(a) | !u32::from(m));
        let mut dst = sin(bc);
        let mut mask = sin(m);
        let mut ifa = [0u64; 16];
        ifa[0] = addr.as_mut_ptr() as u64;
        ifa[1] = dst.as_mut_ptr() as u64;
        ifa[2] = mask.as_mut_ptr() as u64;
        ifa[3] = ifp;
        // SAFETY: the driver's if_ioctl with a struct ifaddr living across the call.
        let e = unsafe { threads::call(t, ioctl, &[ifp, SIOCSIFADDR, ifa.as_mut_ptr() as u64]) };
        if e as i32 != 0 {
            eprintln!(
                "kldrun: {name}: the driver refused SIOCSIFADDR {a}: error {}",
                e as i32
            );
        }
    }
}

fn output_loop(t: usize, ifp: u64, fd: i32, stop: &AtomicBool) {
    let name = with_if(ifp, |i| i.name.clone()).unwrap_or_default();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Acquire) {
        sync_driver(t, ifp, &name);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on our descriptor for 50 ms.
        let n = unsafe { libc::poll(&mut pfd, 1, 50) };
        if n > 0 {
            // What Linux was told before it sent these reaches the driver first, as on
            // FreeBSD, where ifconfig's ioctls are done before any packet goes out.
            sync_driver(t, ifp, &name);
            loop {
                // SAFETY: read into our buffer.
                let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if r <= 0 {
                    break;
                }
                ip_out(t, ifp, &name, &buf[..r as usize]);
            }
        }
        flush_waiting(t, ifp);
    }
}

/// `void if_input(if_t ifp, struct mbuf *m);` — `infiniband_input`, see the module
/// documentation.
pub fn if_input(c: &mut Ctx) -> u64 {
    let ifp = c.args.ptr();
    let m = c.args.ptr();
    get(c, ifp, "if_input");
    if !is_mbuf(m) {
        super::kpanic(c, &format!("if_input: {m:#x} is not an mbuf"));
    }
    if flags(m) & F_M_PKTHDR == 0 {
        super::kpanic(c, "if_input: the mbuf has no packet header (M_PKTHDR)");
    }
    // SAFETY: our packet-header mbuf.
    let rcvif = unsafe { mem::read::<u64>(m + M_RCVIF) };
    if rcvif != ifp {
        super::kpanic(
            c,
            &format!("if_input: m_pkthdr.rcvif is {rcvif:#x}, not the interface {ifp:#x}"),
        );
    }
    let frame = chain_bytes(c, m, "if_input");
    freem(c, m, "if_input");
    let Some((name, flags, fd)) = with_if(ifp, |i| (i.name.clone(), i.flags, i.fd)) else {
        return 0;
    };
    if frame.len() < HDR_LEN || flags & IFF_UP == 0 {
        with_if(ifp, |i| i.counters[1] += 1);
        return 0;
    }
    let ethertype = u16::from_be_bytes([frame[20], frame[21]]);
    let payload = &frame[HDR_LEN..];
    match ethertype {
        ETHERTYPE_IP if fd >= 0 => {
            // SAFETY: a write of the packet to our TUN.
            unsafe { libc::write(fd, payload.as_ptr().cast(), payload.len()) };
        }
        ETHERTYPE_ARP => arp_in(c.thread, ifp, &name, payload),
        ETHERTYPE_IP => {}
        _ => {
            with_if(ifp, |i| i.counters[11] += 1);
        }
    }
    0
}

fn arp_in(t: usize, ifp: u64, name: &str, a: &[u8]) {
    if a.len() < 56
        || u16::from_be_bytes([a[0], a[1]]) != ARPHRD_INFINIBAND
        || u16::from_be_bytes([a[2], a[3]]) != ETHERTYPE_IP
        || a[4] as usize != ADDR_LEN
        || a[5] != 4
    {
        super::verbose(|| format!("{name}: ARP packet not IPoIB/IPv4: dropped"));
        return;
    }
    let op = u16::from_be_bytes([a[6], a[7]]);
    let mut sha = [0u8; ADDR_LEN];
    sha.copy_from_slice(&a[8..28]);
    let spa = Ipv4Addr::new(a[28], a[29], a[30], a[31]);
    let tpa = Ipv4Addr::new(a[52], a[53], a[54], a[55]);
    if !spa.is_unspecified() {
        with_arp(ifp, |arp| arp.cache.insert(spa, sha));
    }
    let ours = linux_addrs(name).iter().any(|(x, _)| *x == tpa);
    if op == 1 && ours {
        let reply = arp_packet(2, &lladdr(ifp), tpa, &sha, spa);
        output(t, ifp, &sha, ETHERTYPE_ARP, &reply);
    }
    flush_waiting(t, ifp);
}

/// What the module left behind: interfaces never freed (and their TUNs, closed now), mbufs
/// never freed.
pub fn leaks(sym: &dyn Fn(u64) -> String) -> Vec<String> {
    let mut out = Vec::new();
    let ifs: Vec<(u64, String, bool, u64)> = IFS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|m| {
            m.iter()
                .map(|(p, i)| (*p, i.name.clone(), i.attached, i.from))
                .collect()
        })
        .unwrap_or_default();
    for (ifp, name, attached, from) in ifs {
        let bridged = stop_bridge(ifp).is_some();
        out.push(format!(
            "ifnet: {} at {ifp:#x} ({}{}) never freed (if_alloc from {})",
            if name.is_empty() { "(unnamed)" } else { &name },
            if attached {
                "still attached: infiniband_ifdetach and if_free missing"
            } else {
                "detached: if_free missing"
            },
            if bridged {
                format!("; its TUN {name} was still open")
            } else {
                String::new()
            },
            sym(from)
        ));
    }
    let m: Vec<(u64, u64)> = mbufs(|t| t.iter().map(|(a, r)| (*a, r.from)).collect());
    if let Some((first, from)) = m.iter().min() {
        out.push(format!(
            "mbuf: {} mbufs never freed (first at {first:#x}, from {})",
            m.len(),
            if *from == 0 {
                "the kernel (a frame handed to if_transmit)".to_string()
            } else {
                sym(*from)
            }
        ));
    }
    out
}

/// (interfaces allocated, mbufs allocated).
pub fn counts() -> (u64, u64) {
    (
        IFS_MADE.load(Ordering::Relaxed),
        MBUFS_MADE.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_packets_are_ipoib_rfc826() {
        let sha = [1u8; ADDR_LEN];
        let p = arp_packet(
            1,
            &sha,
            Ipv4Addr::new(10, 0, 0, 1),
            &[0; 20],
            Ipv4Addr::new(10, 0, 0, 2),
        );
        assert_eq!(p.len(), 56);
        assert_eq!(&p[..8], &[0, 32, 8, 0, 20, 4, 0, 1]);
        assert_eq!(&p[28..32], &[10, 0, 0, 1]);
        assert_eq!(&p[52..56], &[10, 0, 0, 2]);
    }

    #[test]
    fn a_chain_holds_the_frame_across_mbufs() {
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let m = chain(&data, HDR_LEN, 0, 0);
        // SAFETY: our chain.
        let (len0, plen) = unsafe { (mem::read::<i32>(m + M_LEN), mem::read::<i32>(m + M_PKTLEN)) };
        assert_eq!((len0, plen), (24, 5000));
        let mut got = Vec::new();
        let mut p = m;
        let mut n = 0;
        while p != 0 {
            // SAFETY: our chain.
            unsafe {
                got.extend(mem::bytes(
                    mem::read(p + M_DATA),
                    mem::read::<i32>(p + M_LEN) as usize,
                ));
                p = mem::read(p + M_NEXT);
            }
            n += 1;
        }
        assert_eq!(got, data);
        assert_eq!(n, 4); // 24 + 2048 + 2048 + 880
        let mut p = m;
        while p != 0 {
            let rec = mbufs(|t| t.remove(&p)).unwrap();
            drop(rec);
            // SAFETY: ours.
            unsafe {
                let next = mem::read::<u64>(p + M_NEXT);
                drop(Box::from_raw(p as *mut [u64; MSIZE / 8]));
                p = next;
            }
        }
    }
}
