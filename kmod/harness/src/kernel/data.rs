//! The kernel's variables a kld can import. They live in kldrun's low kernel area, as the
//! module may address them with 32-bit immediates (`R_X86_64_32S`).

use super::{kenv, malloc, mem, preload, sysctl, Kind, Kpi};
use std::sync::Mutex;

static HEAP: Mutex<(u64, u64)> = Mutex::new((0, 0));

/// Sets the bump area for strings the variables point to.
pub fn set_heap(lo: u64, hi: u64) {
    *HEAP.lock().unwrap_or_else(|e| e.into_inner()) = (lo, hi);
}

/// A NUL-terminated copy of `s` in the low kernel area.
fn cstr(s: &str) -> u64 {
    let mut h = HEAP.lock().unwrap_or_else(|e| e.into_inner());
    let at = h.0;
    let end = at + s.len() as u64 + 1;
    assert!(end <= h.1, "kldrun's kernel data area is full");
    // SAFETY: [at, end) is unused space of the low kernel area, mapped read/write.
    unsafe {
        mem::write_bytes(at, s.as_bytes());
        mem::write(at + s.len() as u64, 0u8);
    }
    h.0 = end.next_multiple_of(8);
    at
}

fn int(addr: u64, v: i32) {
    // SAFETY: the variable's own storage in the low kernel area.
    unsafe { mem::write(addr, v) }
}

/// `int bootverbose;` — 1 when the kenv has `boot_verbose` (what loader(8) sets for `boot
/// -v`), else 0.
fn bootverbose(addr: u64) {
    let v =
        kenv::get("boot_verbose").is_some_and(|v| !matches!(v.as_str(), "0" | "NO" | "no" | "No"));
    int(addr, i32::from(v));
}

/// `int cold;` — 0: a kldload happens after boot (no busy-wait `DELAY` needed).
fn cold(addr: u64) {
    int(addr, 0);
}

/// `int hz;` — 1000, GENERIC's clock rate.
fn hz(addr: u64) {
    int(addr, 1000);
}

/// `volatile int ticks;` — 0; no clock runs in stage 1.
fn ticks(addr: u64) {
    int(addr, 0);
}

/// `struct sysctl_oid_list sysctl__children;` — the root of the sysctl tree.
fn sysctl_children(addr: u64) {
    sysctl::set_root(addr);
}

/// A top-level node (`SYSCTL_ROOT_NODE`): `CTLTYPE_NODE | CTLFLAG_RW | CTLFLAG_MPSAFE`.
fn top_node(addr: u64, name: &str, number: i32) {
    let root = super::symbol("sysctl__children").expect("sysctl__children first");
    let o = sysctl::RawOid {
        parent: root,
        number,
        kind: sysctl::CTLTYPE_NODE
            | sysctl::CTLFLAG_RD
            | sysctl::CTLFLAG_WR
            | sysctl::CTLFLAG_MPSAFE,
        name: cstr(name),
        fmt: cstr("N"),
        refcnt: 1,
        ..sysctl::RawOid::default()
    };
    // SAFETY: the variable's own 112-byte storage.
    unsafe { mem::write(addr, o) };
    sysctl::register_kernel(addr);
}

macro_rules! nodes {
    ($($f:ident $name:literal $num:expr;)*) => {
        $(
            #[doc = concat!("`struct sysctl_oid sysctl___", $name, ";` — the top-level node `", $name, "`.")]
            fn $f(addr: u64) {
                top_node(addr, $name, $num)
            }
        )*
        const NODES: &[(&str, fn(u64))] = &[$((concat!("sysctl___", $name), $f as fn(u64))),*];
    };
}

nodes! {
    node_kern "kern" 1;
    node_vm "vm" 2;
    node_vfs "vfs" 3;
    node_net "net" 4;
    node_debug "debug" 5;
    node_hw "hw" 6;
    node_machdep "machdep" 7;
    node_user "user" 8;
    node_dev "dev" sysctl::OID_AUTO;
    node_security "security" sysctl::OID_AUTO;
}

/// `caddr_t preload_metadata;` — the list loader(8) built (see [`preload`]).
fn preload_metadata(addr: u64) {
    let list = preload::build();
    // SAFETY: the variable's own storage.
    unsafe { mem::write(addr, list) }
}

fn malloc_type(addr: u64, name: &str) {
    // SAFETY: the variable's own 112-byte struct malloc_type (ks_version at 8, ks_shortdesc
    // at 16).
    unsafe {
        mem::write(addr + 8, malloc::M_VERSION_14);
        mem::write(addr + 16, cstr(name));
    }
    malloc::register_kernel_type(addr, name);
}

/// `struct malloc_type M_DEVBUF[1];` — the kernel's "devbuf" type, registered.
fn m_devbuf(addr: u64) {
    malloc_type(addr, "devbuf");
}

/// `struct malloc_type M_TEMP[1];` — the kernel's "temp" type, registered.
fn m_temp(addr: u64) {
    malloc_type(addr, "temp");
}

/// The variables, in initialisation order.
pub fn kpis() -> Vec<Kpi> {
    let d = |name: &'static str, size: usize, init: fn(u64)| Kpi {
        name,
        kind: Kind::Data(size, init),
    };
    let mut v = vec![
        d("bootverbose", 4, bootverbose),
        d("cold", 4, cold),
        d("hz", 4, hz),
        d("ticks", 4, ticks),
        d("sysctl__children", 8, sysctl_children),
    ];
    for &(name, init) in NODES {
        v.push(d(name, std::mem::size_of::<sysctl::RawOid>(), init));
    }
    v.push(d("preload_metadata", 8, preload_metadata));
    v.push(d("M_DEVBUF", malloc::MALLOC_TYPE_SIZE, m_devbuf));
    v.push(d("M_TEMP", malloc::MALLOC_TYPE_SIZE, m_temp));
    // struct sx topology_lock: GEOM's topology lock (served by _sx_xlock/_sx_xunlock).
    v.push(d("topology_lock", 64, |_| {}));
    v
}
