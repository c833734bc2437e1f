//! A private network namespace for one test.
//!
//! [`run`] starts a thread, moves that thread alone into a new network namespace
//! (`unshare(CLONE_NEWNET)` affects only the calling thread), brings its loopback up, and runs
//! the closure there. Sockets the closure opens and processes it starts live in that namespace:
//! they see only its loopback, so nothing they send reaches any other host. Needs root (as CI
//! is); without it the closure is not run and the error says why.

use std::io;

/// Runs `f` in a fresh network namespace on a new thread and returns its result.
pub fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    std::thread::spawn(move || -> io::Result<T> {
        // SAFETY: unshare(2) takes a flags word and touches no memory of ours; it changes only
        // this thread's namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("unshare(CLONE_NEWNET): {e} (the test needs root)"),
            ));
        }
        loopback_up()?;
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// `ifconfig lo up` through SIOCSIFFLAGS.
fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: fd is an open socket and req a valid ifreq naming "lo"; the kernel writes only
    // into req.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) };
    let r = if r == 0 {
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        // SAFETY: as above; the kernel reads req.
        unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) }
    } else {
        r
    };
    let err = io::Error::last_os_error();
    // SAFETY: fd is ours and open.
    unsafe { libc::close(fd) };
    if r != 0 {
        return Err(io::Error::new(err.kind(), format!("bringing lo up: {err}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn a_namespace_has_its_own_working_loopback_and_nothing_leaves_it() {
        let outside = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = outside.local_addr().unwrap().port();
        let echoed = super::run(move || {
            // Loopback works inside.
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.2:0").unwrap();
            b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            a.send_to(b"inside", b.local_addr().unwrap()).unwrap();
            let mut buf = [0u8; 16];
            let n = b.recv(&mut buf).unwrap();
            // And a datagram to the outside socket's port goes to the namespace's own
            // loopback, where nobody listens.
            a.send_to(b"escape", ("127.0.0.1", port)).unwrap();
            buf[..n].to_vec()
        })
        .expect("needs root");
        assert_eq!(echoed, b"inside");
        outside
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 8];
        assert!(
            outside.recv_from(&mut buf).is_err(),
            "a datagram left the namespace"
        );
    }
}
