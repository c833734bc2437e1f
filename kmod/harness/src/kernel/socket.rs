//! Kernel sockets (`sys/kern/uipc_socket.c`), `ifioctl` (`sys/net/if.c`) and the routing socket,
//! served by the Linux kernel of kldrun's own network namespace.
//!
//! - `socreate(9)`: `AF_INET` stream/datagram sockets are Linux `AF_INET` sockets;
//!   `AF_NETLINK`/`NETLINK_ROUTE` is a Linux rtnetlink socket (the module's messages are
//!   Linux's wire format; FreeBSD's netlink(4) answers the same requests); `PF_ROUTE` is
//!   emulated: an `RTM_ADD` sent on it becomes an rtnetlink `RTM_NEWROUTE` in the main table.
//!   The credential and thread are not checked (a kernel caller). The `struct socket *` is an
//!   opaque handle: nothing in it is meant to be read.
//! - `so_setsockopt`/`sogetopt`: `SOL_SOCKET` (`SO_KEEPALIVE`, `SO_SNDTIMEO`, `SO_RCVTIMEO`,
//!   `SO_RCVLOWAT`, `SO_ERROR`, `SO_REUSEADDR`) and `IPPROTO_TCP` (`TCP_NODELAY`, `TCP_INFO`) with FreeBSD's
//!   numbers translated; `TCP_INFO` fills `tcpi_state` only (FreeBSD's TCPS_* from Linux's
//!   state), the rest of the caller's `struct tcp_info` is zeroed; `SO_ERROR` clears the error.
//! - `soconnect`: non-blocking, as for a kernel socket: the handshake goes on in the background
//!   (the caller polls `SO_ERROR`/`TCP_INFO`).
//! - `sosend`/`soreceive` on a `struct uio` (`UIO_SYSSPACE`): `uio_resid`, `uio_offset` and the
//!   iovecs are advanced by what moved; a receive that times out (`SO_RCVTIMEO`) returns
//!   `EWOULDBLOCK`, also one that waited for `SO_RCVLOWAT` bytes in vain (taking nothing, as
//!   FreeBSD's `soreceive_generic` does), `MSG_DONTWAIT` returns what is there (ignoring the
//!   low-water mark) or `EWOULDBLOCK`; end of stream returns 0 with nothing moved; errno values are FreeBSD's
//!   (also inside rtnetlink `NLMSG_ERROR` answers). No mbufs (`top`, `mp0`, `controlp`
//!   unsupported: `EOPNOTSUPP`).
//! - `soclose(9)`: closes the Linux socket; sockets never closed are leaks.
//! - `ifioctl(9)`: `SIOCGIFFLAGS`/`SIOCSIFFLAGS` are Linux's ioctls (the low 16 flag bits;
//!   `ifr_flagshigh` reads 0), `SIOCAIFADDR` adds (or replaces) the IPv4 address with its
//!   prefix and broadcast through rtnetlink, as `in_control` does (its prefix route comes with
//!   it). Other requests: `ENOTTY`.

use super::{mem, Ctx};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const F_AF_INET: i32 = 2;
const F_AF_NETLINK: i32 = 38;
const F_PF_ROUTE: i32 = 17;
const F_EWOULDBLOCK: i32 = 35;
const F_EOPNOTSUPP: i32 = 45;
const F_EAFNOSUPPORT: i32 = 47;
const F_ENOPROTOOPT: i32 = 42;
const F_EINVAL: i32 = 22;
const F_ENOTTY: i32 = 25;

/// A Linux errno as FreeBSD's.
pub fn errno_to_freebsd(e: i32) -> i32 {
    match e {
        1..=34 if e != 11 => e,
        11 => 35,  // EAGAIN
        115 => 36, // EINPROGRESS
        114 => 37, // EALREADY
        88 => 38,  // ENOTSOCK
        89 => 39,  // EDESTADDRREQ
        90 => 40,  // EMSGSIZE
        91 => 41,  // EPROTOTYPE
        92 => 42,  // ENOPROTOOPT
        93 => 43,  // EPROTONOSUPPORT
        95 => 45,  // EOPNOTSUPP
        97 => 47,  // EAFNOSUPPORT
        98 => 48,  // EADDRINUSE
        99 => 49,  // EADDRNOTAVAIL
        100 => 50, // ENETDOWN
        101 => 51, // ENETUNREACH
        102 => 52, // ENETRESET
        103 => 53, // ECONNABORTED
        104 => 54, // ECONNRESET
        105 => 55, // ENOBUFS
        106 => 56, // EISCONN
        107 => 57, // ENOTCONN
        110 => 60, // ETIMEDOUT
        111 => 61, // ECONNREFUSED
        112 => 64, // EHOSTDOWN
        113 => 65, // EHOSTUNREACH
        _ => 5,    // EIO
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(5)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Inet,
    Netlink,
    Route,
}

#[derive(Debug)]
struct Sock {
    fd: i32,
    kind: Kind,
    /// `SO_RCVLOWAT` as set (FreeBSD's `sb_lowat`; 1 by default).
    lowat: i32,
    /// `SO_RCVTIMEO` as set, in milliseconds rounded up (-1: none).
    rcvtimeo_ms: i32,
}

static SOCKS: Mutex<Option<HashMap<u64, Sock>>> = Mutex::new(None);
static CREATED: AtomicU64 = AtomicU64::new(0);
/// `soreceive` calls on TCP sockets, and those that waited for a low-water mark.
static RECEIVES: AtomicU64 = AtomicU64::new(0);
static LOWAT_WAITS: AtomicU64 = AtomicU64::new(0);

/// (TCP `soreceive` calls, of which waited for `SO_RCVLOWAT` > 1 bytes) so far.
pub fn receive_counts() -> (u64, u64) {
    (
        RECEIVES.load(Ordering::Relaxed),
        LOWAT_WAITS.load(Ordering::Relaxed),
    )
}

fn sock(so: u64) -> Option<(i32, Kind)> {
    sock_rx(so).map(|(fd, kind, _, _)| (fd, kind))
}

/// The socket's descriptor, kind, `SO_RCVLOWAT` and `SO_RCVTIMEO` (ms, -1 none).
fn sock_rx(so: u64) -> Option<(i32, Kind, i32, i32)> {
    SOCKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(&so).map(|s| (s.fd, s.kind, s.lowat, s.rcvtimeo_ms)))
}

fn new_fd(domain: i32, ty: i32, proto: i32) -> Result<i32, i32> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        Err(errno_to_freebsd(last_errno()))
    } else {
        Ok(fd)
    }
}

/// `int socreate(int dom, struct socket **aso, int type, int proto, struct ucred *cred,
/// struct thread *td);`
pub fn socreate(c: &mut Ctx) -> u64 {
    let dom = c.args.int();
    let aso = c.args.ptr();
    let ty = c.args.int();
    let proto = c.args.int();
    let r = match (dom, ty) {
        (F_AF_INET, 1 | 2) => new_fd(libc::AF_INET, ty, proto).map(|fd| (fd, Kind::Inet)),
        (F_AF_NETLINK, 3 | 2) if proto == 0 => {
            new_fd(libc::AF_NETLINK, ty, libc::NETLINK_ROUTE).map(|fd| (fd, Kind::Netlink))
        }
        (F_PF_ROUTE, 3) => new_fd(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)
            .map(|fd| (fd, Kind::Route)),
        _ => Err(F_EAFNOSUPPORT),
    };
    match r {
        Ok((fd, kind)) => {
            let h = Box::into_raw(Box::new([0u64; 8])) as u64;
            SOCKS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(HashMap::new)
                .insert(
                    h,
                    Sock {
                        fd,
                        kind,
                        lowat: 1,
                        rcvtimeo_ms: -1,
                    },
                );
            CREATED.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller's out-pointer.
            unsafe { mem::write(aso, h) };
            0
        }
        Err(e) => e as u64,
    }
}

/// `int soclose(struct socket *so);`
pub fn soclose(c: &mut Ctx) -> u64 {
    let so = c.args.ptr();
    let s = SOCKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .and_then(|m| m.remove(&so));
    match s {
        Some(s) => {
            // SAFETY: our own descriptor, closed once.
            unsafe { libc::close(s.fd) };
            // SAFETY: the handle socreate leaked, removed from the table once.
            drop(unsafe { Box::from_raw(so as *mut [u64; 8]) });
            0
        }
        None => super::kpanic(c, &format!("soclose: {so:#x} is not a socket")),
    }
}

fn sockopt(level: i32, name: i32) -> Option<(i32, i32)> {
    match (level, name) {
        (0xffff, 0x0004) => Some((libc::SOL_SOCKET, libc::SO_REUSEADDR)),
        (0xffff, 0x0008) => Some((libc::SOL_SOCKET, libc::SO_KEEPALIVE)),
        (0xffff, 0x1004) => Some((libc::SOL_SOCKET, libc::SO_RCVLOWAT)),
        (0xffff, 0x1005) => Some((libc::SOL_SOCKET, libc::SO_SNDTIMEO)),
        (0xffff, 0x1006) => Some((libc::SOL_SOCKET, libc::SO_RCVTIMEO)),
        (0xffff, 0x1007) => Some((libc::SOL_SOCKET, libc::SO_ERROR)),
        (6, 1) => Some((libc::IPPROTO_TCP, libc::TCP_NODELAY)),
        _ => None,
    }
}

/// `int so_setsockopt(struct socket *so, int level, int optname, void *optval, size_t
/// optlen);`
pub fn so_setsockopt(c: &mut Ctx) -> u64 {
    let so = c.args.ptr();
    let level = c.args.int();
    let name = c.args.int();
    let val = c.args.ptr();
    let len = c.args.ptr() as usize;
    let Some((fd, _)) = sock(so) else {
        return F_EINVAL as u64;
    };
    let Some((l, n)) = sockopt(level, name) else {
        return F_ENOPROTOOPT as u64;
    };
    // SAFETY: the caller's option value of `len` bytes (an int or a struct timeval, whose
    // layouts Linux shares).
    let bytes = unsafe { mem::bytes(val, len) };
    // SAFETY: setsockopt on our descriptor with a buffer of its length.
    let rc = unsafe { libc::setsockopt(fd, l, n, bytes.as_ptr().cast(), len as u32) };
    if rc < 0 {
        return errno_to_freebsd(last_errno()) as u64;
    }
    // What soreceive's wait needs (see there).
    let int = |b: &[u8]| {
        b.get(..4)
            .map(|v| i32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
    };
    let long = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .and_then(|v| v.try_into().ok())
            .map(i64::from_ne_bytes)
    };
    if let Some(s) = SOCKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .and_then(|m| m.get_mut(&so))
    {
        match n {
            libc::SO_RCVLOWAT => s.lowat = int(&bytes).unwrap_or(1).max(1),
            libc::SO_RCVTIMEO => {
                if let (Some(sec), Some(usec)) = (long(&bytes, 0), long(&bytes, 8)) {
                    let ms = sec.saturating_mul(1000) + (usec + 999) / 1000;
                    s.rcvtimeo_ms = if ms <= 0 {
                        -1
                    } else {
                        ms.min(i64::from(i32::MAX)) as i32
                    };
                }
            }
            _ => {}
        }
    }
    0
}

/// `int sogetopt(struct socket *so, struct sockopt *sopt);` — `sopt_td` must be NULL (a
/// kernel caller: the value is copied, not copied out to user space).
pub fn sogetopt(c: &mut Ctx) -> u64 {
    let so = c.args.ptr();
    let sopt = c.args.ptr();
    // SAFETY: struct sockopt { dir 0, level 4, name 8, val 16, valsize 24, td 32 }.
    let (level, name, val, valsize) = unsafe {
        (
            mem::read::<i32>(sopt + 4),
            mem::read::<i32>(sopt + 8),
            mem::read::<u64>(sopt + 16),
            mem::read::<u64>(sopt + 24) as usize,
        )
    };
    let Some((fd, _)) = sock(so) else {
        return F_EINVAL as u64;
    };
    if (level, name) == (6, 32) {
        // TCP_INFO: tcpi_state only.
        let mut ti = [0u8; 256];
        let mut len = ti.len() as u32;
        // SAFETY: getsockopt into our buffer.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                ti.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return errno_to_freebsd(last_errno()) as u64;
        }
        let state: u8 = match ti[0] {
            1 => 4,  // ESTABLISHED
            2 => 2,  // SYN_SENT
            3 => 3,  // SYN_RECEIVED
            4 => 6,  // FIN_WAIT_1
            5 => 9,  // FIN_WAIT_2
            6 => 10, // TIME_WAIT
            7 => 0,  // CLOSED
            8 => 5,  // CLOSE_WAIT
            9 => 8,  // LAST_ACK
            10 => 1, // LISTEN
            11 => 7, // CLOSING
            _ => 0,
        };
        let mut out = vec![0u8; valsize];
        if let Some(b) = out.first_mut() {
            *b = state;
        }
        // SAFETY: the caller's buffer of valsize bytes.
        unsafe { mem::write_bytes(val, &out) };
        return 0;
    }
    let Some((l, n)) = sockopt(level, name) else {
        return F_ENOPROTOOPT as u64;
    };
    let mut buf = [0u8; 64];
    let mut len = valsize.min(buf.len()) as u32;
    // SAFETY: getsockopt into our buffer.
    let rc = unsafe { libc::getsockopt(fd, l, n, buf.as_mut_ptr().cast(), &mut len) };
    if rc < 0 {
        return errno_to_freebsd(last_errno()) as u64;
    }
    if n == libc::SO_ERROR && l == libc::SOL_SOCKET {
        let e = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let f = if e == 0 { 0 } else { errno_to_freebsd(e) };
        buf[..4].copy_from_slice(&f.to_ne_bytes());
    }
    // SAFETY: the caller's buffer; the size it gave is updated.
    unsafe {
        mem::write_bytes(val, &buf[..len as usize]);
        mem::write(sopt + 24, u64::from(len));
    }
    0
}

/// `int soconnect(struct socket *so, struct sockaddr *nam, struct thread *td);`
pub fn soconnect(c: &mut Ctx) -> u64 {
    let so = c.args.ptr();
    let nam = c.args.ptr();
    let Some((fd, Kind::Inet)) = sock(so) else {
        return F_EOPNOTSUPP as u64;
    };
    // SAFETY: a FreeBSD struct sockaddr_in (len, family, port, addr).
    let b = unsafe { mem::bytes(nam, 16) };
    if i32::from(b[1]) != F_AF_INET {
        return F_EAFNOSUPPORT as u64;
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: u16::from_ne_bytes([b[2], b[3]]),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: fcntl/connect on our descriptor with a valid sockaddr_in.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        let rc = libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        let e = last_errno();
        libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        if rc < 0 && e != libc::EINPROGRESS {
            return errno_to_freebsd(e) as u64;
        }
    }
    0
}

/// The iovecs of a `struct uio` (iov 0, iovcnt 8, offset 16, resid 24).
fn uio_iovs(uio: u64) -> Vec<(u64, usize)> {
    // SAFETY: the caller's struct uio and its iovec array.
    unsafe {
        let iov = mem::read::<u64>(uio);
        let n = mem::read::<i32>(uio + 8).max(0) as u64;
        (0..n)
            .map(|i| {
                (
                    mem::read::<u64>(iov + 16 * i),
                    mem::read::<u64>(iov + 16 * i + 8) as usize,
                )
            })
            .collect()
    }
}

/// The iovecs of a `struct uio` as host iovecs naming the caller's buffers (no copy, no
/// allocation), when there are at most [`DIRECT_IOV`] of them.
fn uio_direct(uio: u64) -> Option<([libc::iovec; DIRECT_IOV], usize)> {
    // SAFETY: the caller's struct uio and its iovec array.
    unsafe {
        let iov = mem::read::<u64>(uio);
        let n = usize::try_from(mem::read::<i32>(uio + 8)).ok()?;
        if n > DIRECT_IOV {
            return None;
        }
        let mut v = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; DIRECT_IOV];
        for (i, d) in v.iter_mut().enumerate().take(n) {
            let at = iov + 16 * i as u64;
            *d = libc::iovec {
                iov_base: mem::read::<u64>(at) as *mut libc::c_void,
                iov_len: mem::read::<u64>(at + 8) as usize,
            };
        }
        Some((v, n))
    }
}

/// Advances a uio by `n` bytes moved.
fn uio_advance(uio: u64, mut n: usize) {
    // SAFETY: as in uio_iovs.
    unsafe {
        let iov = mem::read::<u64>(uio);
        let cnt = mem::read::<i32>(uio + 8).max(0) as u64;
        mem::write(uio + 16, mem::read::<i64>(uio + 16) + n as i64);
        mem::write(uio + 24, mem::read::<i64>(uio + 24) - n as i64);
        for i in 0..cnt {
            if n == 0 {
                break;
            }
            let base = mem::read::<u64>(iov + 16 * i);
            let len = mem::read::<u64>(iov + 16 * i + 8) as usize;
            let k = len.min(n);
            mem::write(iov + 16 * i, base + k as u64);
            mem::write(iov + 16 * i + 8, (len - k) as u64);
            n -= k;
        }
    }
}

/// `int sosend(struct socket *so, struct sockaddr *addr, struct uio *uio, struct mbuf *top,
/// struct mbuf *control, int flags, struct thread *td);`
pub fn sosend(c: &mut Ctx) -> u64 {
    let so = c.args.ptr();
    let addr = c.args.ptr();
    let uio = c.args.ptr();
    let top = c.args.ptr();
    let control = c.args.ptr();
    let Some((fd, kind)) = sock(so) else {
        return F_EINVAL as u64;
    };
    if addr != 0 || top != 0 || control != 0 || uio == 0 {
        return F_EOPNOTSUPP as u64;
    }
    if kind == Kind::Inet {
        if let Some(e) = send_direct(fd, uio) {
            return e;
        }
    }
    let mut data = Vec::new();
    for (base, len) in uio_iovs(uio) {
        // SAFETY: the caller's iovec (UIO_SYSSPACE).
        data.extend_from_slice(&unsafe { mem::bytes(base, len) });
    }
    if kind == Kind::Route {
        let e = route_message(&data);
        if e == 0 {
            uio_advance(uio, data.len());
        }
        return e as u64;
    }
    let mut sent = 0;
    while sent < data.len() {
        // SAFETY: send(2) from our buffer.
        let n = unsafe {
            libc::send(
                fd,
                data[sent..].as_ptr().cast(),
                data.len() - sent,
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = last_errno();
            if e == libc::EINTR {
                continue;
            }
            uio_advance(uio, sent);
            return errno_to_freebsd(e) as u64;
        }
        sent += n as usize;
        if kind != Kind::Inet {
            break;
        }
    }
    uio_advance(uio, sent);
    0
}

/// sosend on a TCP socket straight from the caller's iovecs (sendmsg(2), no copy), until the
/// uio is drained or an error; `None` when the uio has too many iovecs for that.
fn send_direct(fd: i32, uio: u64) -> Option<u64> {
    loop {
        let (mut v, n) = uio_direct(uio)?;
        if v[..n].iter().all(|i| i.iov_len == 0) {
            return Some(0);
        }
        // SAFETY: a zeroed msghdr naming the caller's iovecs (UIO_SYSSPACE), each valid for
        // its length.
        let sent = unsafe {
            let mut m: libc::msghdr = std::mem::zeroed();
            m.msg_iov = v.as_mut_ptr();
            m.msg_iovlen = n;
            libc::sendmsg(fd, &m, libc::MSG_NOSIGNAL)
        };
        if sent < 0 {
            match last_errno() {
                libc::EINTR => continue,
                e => return Some(errno_to_freebsd(e) as u64),
            }
        }
        uio_advance(uio, sent as usize);
    }
}

/// Rewrites Linux errnos in rtnetlink `NLMSG_ERROR` messages as FreeBSD's.
fn fix_netlink_errors(buf: &mut [u8]) {
    let mut off = 0;
    while off + 20 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or([0; 4])) as usize;
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < 16 || off + len > buf.len() {
            break;
        }
        if ty == 2 {
            let e = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap_or([0; 4]));
            if e < 0 {
                let f = -errno_to_freebsd(-e);
                buf[off + 16..off + 20].copy_from_slice(&f.to_ne_bytes());
            }
        }
        off += len.next_multiple_of(4);
    }
}

/// recvmsg(2) into `iov` in order, retried on `EINTR`: the byte count, or the FreeBSD error
/// `soreceive` returns (`EWOULDBLOCK` when `SO_RCVTIMEO` ran out or, with `MSG_DONTWAIT`,
/// nothing was there).
///
/// # Safety
/// Each iovec must be valid for writes of its length.
unsafe fn recv_iov(fd: i32, iov: &mut [libc::iovec], flags: i32) -> Result<usize, u64> {
    loop {
        // SAFETY: a zeroed msghdr naming the caller's iovecs (the caller's promise on them).
        let n = unsafe {
            let mut m: libc::msghdr = std::mem::zeroed();
            m.msg_iov = iov.as_mut_ptr();
            m.msg_iovlen = iov.len();
            libc::recvmsg(fd, &mut m, flags)
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        match last_errno() {
            libc::EINTR => continue,
            libc::EAGAIN => return Err(F_EWOULDBLOCK as u64),
            e => return Err(errno_to_freebsd(e) as u64),
        }
    }
}

/// FreeBSD `MSG_DONTWAIT` (sys/socket.h).
const F_MSG_DONTWAIT: i32 = 0x80;
/// The iovecs one receive takes straight into the caller's buffers (FreeBSD's `UIO_MAXIOV`
/// is 1024; the module passes a handful).
const DIRECT_IOV: usize = 16;

/// `int soreceive(struct socket *so, struct sockaddr **psa, struct uio *uio, struct mbuf
/// **mp0, struct mbuf **controlp, int *flagsp);` — into the uio's iovecs in order, as
/// `soreceive_stream`/`soreceive_generic` fill a uio; what is there, at least one byte,
/// waiting for it unless `*flagsp` has `MSG_DONTWAIT` (then `EWOULDBLOCK` at once), or for
/// at most `SO_RCVTIMEO` (then `EWOULDBLOCK`). 0 bytes and no error: end of stream.
pub fn soreceive(c: &mut Ctx) -> u64 {
    let so = c.args.ptr();
    let psa = c.args.ptr();
    let uio = c.args.ptr();
    let mp0 = c.args.ptr();
    let controlp = c.args.ptr();
    let flagsp = c.args.ptr();
    let Some((fd, kind, lowat, rcvtimeo_ms)) = sock_rx(so) else {
        return F_EINVAL as u64;
    };
    if psa != 0 || mp0 != 0 || controlp != 0 || uio == 0 {
        return F_EOPNOTSUPP as u64;
    }
    if kind == Kind::Route {
        return F_EWOULDBLOCK as u64;
    }
    let flags = if flagsp == 0 {
        0
    } else {
        // SAFETY: the caller's int.
        unsafe { mem::read::<i32>(flagsp) }
    };
    let mut host_flags = if flags & F_MSG_DONTWAIT != 0 {
        libc::MSG_DONTWAIT
    } else {
        0
    };
    if kind == Kind::Inet {
        RECEIVES.fetch_add(1, Ordering::Relaxed);
    }
    if host_flags == 0 && lowat > 1 && kind == Kind::Inet {
        LOWAT_WAITS.fetch_add(1, Ordering::Relaxed);
        // A low-water mark: FreeBSD's soreceive sleeps until `sb_lowat` bytes are there (or
        // the end of the stream, an error), and when SO_RCVTIMEO runs out first it returns
        // EWOULDBLOCK and takes nothing, where Linux's recv would return what there is.
        // poll(2) honours SO_RCVLOWAT for TCP (Linux's tcp_poll), so wait there, then take
        // it. (FreeBSD restarts the timeout at each arrival; this waits it once in all.)
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd of ours.
        let n = unsafe { libc::poll(&mut p, 1, rcvtimeo_ms) };
        if n == 0 {
            return F_EWOULDBLOCK as u64;
        }
        host_flags = libc::MSG_DONTWAIT;
    }
    if kind == Kind::Inet {
        if let Some((mut v, n)) = uio_direct(uio) {
            // Straight into the caller's buffers (no copy, no allocation).
            // SAFETY: the caller's iovecs (UIO_SYSSPACE), each valid for its length.
            return match unsafe { recv_iov(fd, &mut v[..n], host_flags) } {
                Ok(n) => {
                    uio_advance(uio, n);
                    0
                }
                Err(e) => e,
            };
        }
    }
    let iovs = uio_iovs(uio);
    let total: usize = iovs.iter().map(|(_, l)| l).sum();
    let mut buf = vec![0u8; total];
    let mut v = [libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: total,
    }];
    // SAFETY: our buffer, `total` bytes.
    let n = match unsafe { recv_iov(fd, &mut v, host_flags) } {
        Ok(n) => n,
        Err(e) => return e,
    };
    if kind == Kind::Netlink {
        fix_netlink_errors(&mut buf[..n]);
    }
    let mut at = 0;
    for (base, len) in iovs {
        if at >= n {
            break;
        }
        let k = len.min(n - at);
        // SAFETY: the caller's iovec (UIO_SYSSPACE), k <= its length.
        unsafe { mem::write_bytes(base, &buf[at..at + k]) };
        at += k;
    }
    uio_advance(uio, n);
    0
}

/// `int soshutdown(struct socket *so, int how);` — `SHUT_RD` (0), `SHUT_WR` (1), `SHUT_RDWR`
/// (2) are Linux's numbers too: shutdown(2) on the Linux socket, which, as FreeBSD's
/// `socantrcvmore` does, wakes a thread blocked in `soreceive` with end of stream. Another
/// `how` is `EINVAL`; a socket not connected `ENOTCONN` (as `soshutdown` checks `SS_ISCONNECTED`).
pub fn soshutdown(c: &mut Ctx) -> u64 {
    let so = c.args.ptr();
    let how = c.args.int();
    let Some((fd, _)) = sock(so) else {
        return F_EINVAL as u64;
    };
    if !(0..=2).contains(&how) {
        return F_EINVAL as u64;
    }
    // SAFETY: our descriptor; plain shutdown(2).
    if unsafe { libc::shutdown(fd, how) } < 0 {
        return errno_to_freebsd(last_errno()) as u64;
    }
    0
}

// --- rtnetlink requests kldrun makes itself ------------------------------------------------

fn nlattr(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
    out.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// One rtnetlink request with `NLM_F_ACK`; the Linux errno of the answer (0: done).
fn rtnl(ty: u16, flags: u16, body: &[u8], attrs: &[(u16, &[u8])]) -> i32 {
    let mut m = vec![0u8; 16];
    m.extend_from_slice(body);
    m.resize(m.len().next_multiple_of(4), 0);
    for (t, d) in attrs {
        nlattr(&mut m, *t, d);
    }
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&ty.to_ne_bytes());
    m[6..8].copy_from_slice(&(flags | 0x1 | 0x4).to_ne_bytes()); // REQUEST | ACK
    m[8..12].copy_from_slice(&1u32.to_ne_bytes());
    let fd = match new_fd(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE) {
        Ok(fd) => fd,
        Err(_) => return last_errno(),
    };
    let tv = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    let mut buf = vec![0u8; 8192];
    // SAFETY: our descriptor and buffers.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            16,
        );
        if libc::send(fd, m.as_ptr().cast(), m.len(), 0) < 0 {
            last_errno()
        } else {
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n < 20 {
                libc::ETIMEDOUT
            } else if u16::from_ne_bytes([buf[4], buf[5]]) == 2 {
                -i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]])
            } else {
                0
            }
        }
    };
    // SAFETY: ours, closed once.
    unsafe { libc::close(fd) };
    r
}

fn if_index(name: &str) -> u32 {
    let Ok(c) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: a NUL-terminated name.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// A routing-socket message (`RTM_ADD` only) as an rtnetlink route; FreeBSD's errno.
fn route_message(m: &[u8]) -> i32 {
    if m.len() < 152 || m[2] != 5 {
        return F_EINVAL; // EPROTONOSUPPORT in FreeBSD for a wrong version; EINVAL here
    }
    if m[3] != 1 {
        return F_EOPNOTSUPP;
    }
    let flags = i32::from_ne_bytes([m[8], m[9], m[10], m[11]]);
    let addrs = i32::from_ne_bytes([m[12], m[13], m[14], m[15]]);
    let mut off = 152;
    let mut sa = [None; 3];
    for (bit, slot) in sa.iter_mut().enumerate() {
        if addrs & (1 << bit) == 0 {
            continue;
        }
        let Some(s) = m.get(off..off + 16) else {
            return F_EINVAL;
        };
        let len = usize::from(s[0]).max(4).next_multiple_of(8);
        *slot = Some([s[4], s[5], s[6], s[7]]);
        off += len;
    }
    let (Some(dst), Some(gw)) = (sa[0], sa[1]) else {
        return F_EINVAL;
    };
    let prefix = if flags & 0x4 != 0 {
        32
    } else {
        sa[2].map_or(32, |mk| u32::from_be_bytes(mk).leading_ones() as u8)
    };
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
    let mut body = vec![libc::AF_INET as u8, prefix, 0, 0, 254, 4, 0, 1];
    body.extend_from_slice(&0u32.to_ne_bytes());
    let mut attrs: Vec<(u16, &[u8])> = Vec::new();
    if prefix > 0 {
        attrs.push((1, &dst)); // RTA_DST
    }
    attrs.push((5, &gw)); // RTA_GATEWAY
    let e = rtnl(24, 0x400 | 0x200, &body, &attrs); // RTM_NEWROUTE, CREATE | EXCL
    if e == 0 {
        0
    } else {
        errno_to_freebsd(e)
    }
}

/// `int ifioctl(struct socket *so, u_long cmd, caddr_t data, struct thread *td);`
pub fn ifioctl(c: &mut Ctx) -> u64 {
    let so = c.args.ptr();
    let cmd = c.args.ptr();
    let data = c.args.ptr();
    let Some((fd, Kind::Inet)) = sock(so) else {
        return F_EOPNOTSUPP as u64;
    };
    if (cmd >> 8) & 0xff != u64::from(b'i') {
        return F_ENOTTY as u64;
    }
    // SAFETY: the caller's struct ifreq / in_aliasreq: the name first.
    let name_b = unsafe { mem::bytes(data, 16) };
    let name_len = name_b.iter().position(|&b| b == 0).unwrap_or(16);
    let name = String::from_utf8_lossy(&name_b[..name_len]).into_owned();
    match cmd & 0xff {
        17 | 16 => {
            let mut ifr = [0u8; 40];
            ifr[..16].copy_from_slice(&name_b);
            let set = cmd & 0xff == 16;
            if set {
                // SAFETY: ifr_flags (short) at 16.
                let fl = unsafe { mem::read::<u16>(data + 16) };
                ifr[16..18].copy_from_slice(&fl.to_ne_bytes());
            }
            let req = if set {
                libc::SIOCSIFFLAGS
            } else {
                libc::SIOCGIFFLAGS
            };
            // SAFETY: a Linux struct ifreq of ours.
            if unsafe { libc::ioctl(fd, req, ifr.as_mut_ptr()) } < 0 {
                return errno_to_freebsd(last_errno()) as u64;
            }
            if !set {
                // SAFETY: ifr_flags and ifr_flagshigh of the caller's struct ifreq.
                unsafe {
                    mem::write(data + 16, u16::from_ne_bytes([ifr[16], ifr[17]]));
                    mem::write(data + 18, 0u16);
                }
            }
            0
        }
        43 => {
            // SAFETY: struct in_aliasreq: addr at 16, broadaddr at 32, mask at 48.
            let (addr, brd, mask) = unsafe {
                (
                    mem::bytes(data + 20, 4),
                    mem::bytes(data + 36, 4),
                    mem::bytes(data + 52, 4),
                )
            };
            let idx = if_index(&name);
            if idx == 0 {
                return 6; // ENXIO
            }
            let prefix = u32::from_be_bytes([mask[0], mask[1], mask[2], mask[3]]).leading_ones();
            let mut body = vec![libc::AF_INET as u8, prefix as u8, 0, 0];
            body.extend_from_slice(&idx.to_ne_bytes());
            let mut attrs: Vec<(u16, &[u8])> = vec![(2, &addr), (1, &addr)];
            if brd != [0, 0, 0, 0] {
                attrs.push((4, &brd));
            }
            // RTM_NEWADDR, CREATE | REPLACE
            match rtnl(20, 0x400 | 0x100, &body, &attrs) {
                0 => 0,
                e => errno_to_freebsd(e) as u64,
            }
        }
        _ => F_ENOTTY as u64,
    }
}

/// Sockets never closed: a line each.
pub fn leaks() -> Vec<String> {
    let g = SOCKS.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref()
        .map(|m| {
            m.values()
                .map(|s| format!("socket(9): a {:?} socket never closed", s.kind))
                .collect()
        })
        .unwrap_or_default()
}

/// Sockets created during the run.
pub fn created() -> u64 {
    CREATED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receive_fills_iovecs_in_order_and_dontwait_does_not_block() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut x, mut y) = ([0u8; 3], [0u8; 8]);
        let mut iov = [
            libc::iovec {
                iov_base: x.as_mut_ptr().cast(),
                iov_len: x.len(),
            },
            libc::iovec {
                iov_base: y.as_mut_ptr().cast(),
                iov_len: y.len(),
            },
        ];
        // Nothing there: EWOULDBLOCK at once with MSG_DONTWAIT (a blocking receive would hang).
        // SAFETY: the iovecs name our two arrays.
        let r = unsafe { recv_iov(b.as_raw_fd(), &mut iov, libc::MSG_DONTWAIT) };
        assert_eq!(r, Err(F_EWOULDBLOCK as u64));
        a.write_all(b"abcdefg").unwrap();
        // SAFETY: as above.
        let r = unsafe { recv_iov(b.as_raw_fd(), &mut iov, libc::MSG_DONTWAIT) };
        assert_eq!(r, Ok(7));
        assert_eq!((&x, &y[..4]), (b"abc", &b"defg"[..]));
    }

    #[test]
    fn linux_errnos_become_freebsd_ones() {
        assert_eq!(errno_to_freebsd(17), 17); // EEXIST
        assert_eq!(errno_to_freebsd(libc::EAGAIN), 35);
        assert_eq!(errno_to_freebsd(libc::EINPROGRESS), 36);
        assert_eq!(errno_to_freebsd(libc::ECONNREFUSED), 61);
        assert_eq!(errno_to_freebsd(libc::ETIMEDOUT), 60);
        assert_eq!(errno_to_freebsd(libc::EHOSTUNREACH), 65);
        assert_eq!(errno_to_freebsd(libc::ENETUNREACH), 51);
    }

    #[test]
    fn netlink_error_answers_carry_freebsd_errnos() {
        // Two messages: an NLMSG_ERROR with -ENETUNREACH (Linux 101), then NLMSG_DONE.
        let mut buf = Vec::new();
        buf.extend_from_slice(&36u32.to_ne_bytes());
        buf.extend_from_slice(&2u16.to_ne_bytes());
        buf.extend_from_slice(&[0; 10]);
        buf.extend_from_slice(&(-101i32).to_ne_bytes());
        buf.extend_from_slice(&[0; 16]);
        buf.extend_from_slice(&20u32.to_ne_bytes());
        buf.extend_from_slice(&3u16.to_ne_bytes());
        buf.extend_from_slice(&[0; 14]);
        fix_netlink_errors(&mut buf);
        assert_eq!(i32::from_ne_bytes(buf[16..20].try_into().unwrap()), -51);
        assert_eq!(u16::from_ne_bytes([buf[40], buf[41]]), 3);
    }

    #[test]
    fn routing_messages_other_than_add_are_refused() {
        let mut m = vec![0u8; 152];
        m[2] = 5;
        m[3] = 2; // RTM_DELETE
        assert_eq!(route_message(&m), F_EOPNOTSUPP);
        m[2] = 4; // an old RTM_VERSION
        assert_eq!(route_message(&m), F_EINVAL);
        m[2] = 5;
        m[3] = 1; // RTM_ADD without addresses
        assert_eq!(route_message(&m), F_EINVAL);
    }
}
