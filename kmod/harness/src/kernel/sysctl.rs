//! sysctl(9) and the `sysctl(8)` view of the tree, after `sys/kern/kern_sysctl.c` (FreeBSD 14).
//!
//! The oids are the real `struct sysctl_oid`s (112 bytes, LP64): the module's static ones in
//! its `set_sysctl_set`, dynamic ones allocated here by `sysctl_add_oid()`, the kernel's
//! top-level nodes (`sysctl___hw`, `sysctl___net`, ...) in kldrun's low kernel data. kldrun
//! reads and writes their fields (number, kind, refcount, parent, name, handler, args) in place,
//! so inline uses in the module (`SYSCTL_CHILDREN()`, `oidp->oid_arg1`) see what they would.
//!
//! Kept from the kernel:
//! - registration: a name already under the parent is a refcount bump for a node and a
//!   "can't re-use a leaf" warning for a leaf; `OID_AUTO` numbers count down from
//!   0x7fffffff (so `sysctl(8)` lists later oids of a node first, as on FreeBSD); names with
//!   a `.` are escaped as `%25`; `sysctl_add_oid()` sets `CTLFLAG_DYN`, copies the name,
//!   description and label, and enters the oid at the head of the context list;
//! - `sysctl_ctx_free()` exactly: a dry run that unregisters the entries from the head (the
//!   newest) on, a node with children left failing it with `ENOTEMPTY` (printing the
//!   kernel's warning), the unregistered entries put back, `EBUSY`; otherwise a second pass
//!   that deletes them;
//! - `sysctl_remove_oid()`'s rules (no removing a static oid, refcounts, recursion);
//! - the linker's part: a kld's static oids registered disabled (`CTLFLAG_DORMANT` leaves)
//!   before its SYSINITs, enabled after, unregistered at unload;
//! - requests: handlers are called with a `struct sysctl_req` as `sysctl(2)` from userland
//!   builds it (`oldfunc`/`newfunc` are `sysctl_old_user`/`sysctl_new_user`, callable from
//!   the module through stubs), `SYSCTL_OUT` copies into the buffer up to `validlen` and
//!   fails with `ENOMEM` past it while still counting `oldidx`; the `sysctl_handle_*`
//!   functions follow the kernel's (a snapshot, `SYSCTL_OUT`, then `SYSCTL_IN` when there is
//!   a new value; the read-only string shortcut of `sysctl_handle_string`);
//! - `sysctl(8)`: a name is looked up component by component; a node lists every leaf below
//!   it depth first in oid-number order, skipping dormant and `CTLFLAG_SKIP` oids; each value
//!   is fetched as sysctl(8) does (a size probe, then a read into twice that) and printed
//!   `name: value` by type; opaque values are not shown (sysctl(8) needs `-o` for them).
//!
//! Simplified: the children lists are kept by kldrun, not as the kernel's red-black tree in
//! `oid_children`/`oid_link` (the module would see an empty tree if it walked it inline with
//! `SYSCTL_FOREACH`); there is one sysctl lock and no `oid_running` draining (no concurrency
//! yet); a `CTLFLAG_TUN` oid without `CTLFLAG_NOFETCH` is not loaded from the kenv (kldrun
//! says so when it meets one); writes (`sysctl name=value`) are not offered.

use super::{console, kpanic, mem, threads, Ctx};
use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::sync::Mutex;

/// `CTLTYPE`.
pub const CTLTYPE: u32 = 0xf;
/// `CTLTYPE_NODE`.
pub const CTLTYPE_NODE: u32 = 1;
/// `CTLTYPE_INT`.
pub const CTLTYPE_INT: u32 = 2;
/// `CTLTYPE_STRING`.
pub const CTLTYPE_STRING: u32 = 3;
const CTLTYPE_S64: u32 = 4;
const CTLTYPE_UINT: u32 = 6;
const CTLTYPE_LONG: u32 = 7;
const CTLTYPE_ULONG: u32 = 8;
const CTLTYPE_U64: u32 = 9;
const CTLTYPE_U8: u32 = 0xa;
const CTLTYPE_U16: u32 = 0xb;
const CTLTYPE_S8: u32 = 0xc;
const CTLTYPE_S16: u32 = 0xd;
const CTLTYPE_S32: u32 = 0xe;
const CTLTYPE_U32: u32 = 0xf;
/// `CTLFLAG_RD`.
pub const CTLFLAG_RD: u32 = 0x8000_0000;
/// `CTLFLAG_WR`.
pub const CTLFLAG_WR: u32 = 0x4000_0000;
const CTLFLAG_DORMANT: u32 = 0x2000_0000;
/// `CTLFLAG_DYN`.
pub const CTLFLAG_DYN: u32 = 0x0200_0000;
const CTLFLAG_SKIP: u32 = 0x0100_0000;
const CTLFLAG_TUN: u32 = 0x0008_0000;
/// `CTLFLAG_MPSAFE`.
pub const CTLFLAG_MPSAFE: u32 = 0x0004_0000;
const CTLFLAG_DYING: u32 = 0x0001_0000;
const CTLFLAG_NOFETCH: u32 = 0x0000_1000;
/// `CTL_AUTO_START`.
const CTL_AUTO_START: i32 = 0x100;
/// `OID_AUTO`.
pub const OID_AUTO: i32 = -1;

const EINVAL: u64 = 22;
const ENOENT: u64 = 2;
const ENOMEM: u64 = 12;
const EBUSY: u64 = 16;
const EPERM: u64 = 1;
const EISDIR: u64 = 21;
const ENOTEMPTY: u64 = 66;

/// `struct sysctl_oid` (sys/sysctl.h, FreeBSD 14, LP64).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawOid {
    /// `oid_children` (an RB_HEAD: one pointer).
    pub children: u64,
    /// `oid_parent`.
    pub parent: u64,
    /// `oid_link` (an RB_ENTRY: three pointers).
    pub link: [u64; 3],
    /// `oid_number`.
    pub number: i32,
    /// `oid_kind`.
    pub kind: u32,
    /// `oid_arg1`.
    pub arg1: u64,
    /// `oid_arg2`.
    pub arg2: i64,
    /// `oid_name`.
    pub name: u64,
    /// `oid_handler`.
    pub handler: u64,
    /// `oid_fmt`.
    pub fmt: u64,
    /// `oid_refcnt`.
    pub refcnt: i32,
    /// `oid_running`.
    pub running: u32,
    /// `oid_descr`.
    pub descr: u64,
    /// `oid_label`.
    pub label: u64,
}

const _: () = assert!(std::mem::size_of::<RawOid>() == 112);
const OFF_NUMBER: u64 = 40;
const OFF_KIND: u64 = 44;
const OFF_REFCNT: u64 = 88;

/// `struct sysctl_req` (sys/sysctl.h, LP64): 96 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Req {
    /// `td`.
    pub td: u64,
    /// `lock`.
    pub lock: i32,
    _pad: i32,
    /// `oldptr`.
    pub oldptr: u64,
    /// `oldlen`.
    pub oldlen: u64,
    /// `oldidx`.
    pub oldidx: u64,
    /// `oldfunc`.
    pub oldfunc: u64,
    /// `newptr`.
    pub newptr: u64,
    /// `newlen`.
    pub newlen: u64,
    /// `newidx`.
    pub newidx: u64,
    /// `newfunc`.
    pub newfunc: u64,
    /// `validlen`.
    pub validlen: u64,
    /// `flags`.
    pub flags: i32,
    _pad2: i32,
}

const _: () = assert!(std::mem::size_of::<Req>() == 96);

fn oid(addr: u64) -> RawOid {
    // SAFETY: every address handled here is a registered (or just allocated) struct
    // sysctl_oid: the module's static ones while it is loaded, kldrun's otherwise.
    unsafe { mem::read(addr) }
}

fn set_i32(addr: u64, v: i32) {
    // SAFETY: as in `oid`: a field of a live struct sysctl_oid.
    unsafe { mem::write(addr, v) }
}

fn set_u32(addr: u64, v: u32) {
    // SAFETY: as in `oid`.
    unsafe { mem::write(addr, v) }
}

fn name_of(o: &RawOid) -> String {
    // SAFETY: oid_name is a NUL-terminated string for every registered oid.
    unsafe { mem::string(o.name) }
}

/// Who made an oid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The kernel (kldrun's top-level nodes, `--hold-oid`).
    Kernel,
    /// The module's `set_sysctl_set`.
    Static,
    /// `sysctl_add_oid()`.
    Dynamic,
}

#[derive(Debug)]
struct Registered {
    path: String,
    owner: Owner,
}

/// Storage of an oid made by `sysctl_add_oid()`.
#[derive(Debug)]
struct DynOid {
    storage: Box<RawOid>,
    // Owned for the oid's lifetime: its name, description and label point into them.
    _name: CString,
    _descr: Option<CString>,
    _label: Option<CString>,
    caller: u64,
}

#[derive(Debug, Default)]
struct Tree {
    root: u64,
    lists: HashMap<u64, BTreeMap<i32, u64>>,
    paths: HashMap<u64, String>,
    registered: HashMap<u64, Registered>,
    dynamic: HashMap<u64, DynOid>,
    dead: Vec<DynOid>,
    entries: HashMap<u64, Box<[u64; 3]>>,
    // Boxed: the module's list pointed at these addresses; they must stay where they are.
    #[allow(clippy::vec_box)]
    dead_entries: Vec<Box<[u64; 3]>>,
    newoid: i32,
    adds: u64,
    fail_add_at: Option<u64>,
    added: u64,
}

static TREE: Mutex<Option<Tree>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Tree) -> R) -> R {
    let mut g = TREE.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Tree::default))
}

/// Sets the root list (`sysctl__children`, in kldrun's kernel data).
pub fn set_root(list: u64) {
    with(|t| {
        t.root = list;
        t.paths.insert(list, String::new());
    });
}

/// Makes the `n`-th `sysctl_add_oid()` (from 1) fail as when its name is taken (`--fail-oid`).
pub fn fail_add_at(n: u64) {
    with(|t| t.fail_add_at = Some(n));
}

fn path_under(t: &Tree, list: u64, name: &str) -> String {
    match t.paths.get(&list).map(String::as_str) {
        Some("") | None => name.to_string(),
        Some(p) => format!("{p}.{name}"),
    }
}

fn find_name(t: &Tree, list: u64, name: &[u8]) -> Option<u64> {
    t.lists.get(&list).and_then(|l| {
        l.values().copied().find(|&a| {
            // SAFETY: registered oids have NUL-terminated names.
            (unsafe { mem::cstr(oid(a).name) }) == name
        })
    })
}

/// `sysctl_register_oid()` with the tree locked; `owner` says who made the oid.
fn register_locked(t: &mut Tree, addr: u64, owner: Owner) {
    let o = oid(addr);
    let name = name_of(&o);
    if let Some(p) = find_name(t, o.parent, name.as_bytes()) {
        let po = oid(p);
        if po.kind & CTLTYPE == CTLTYPE_NODE {
            set_i32(p + OFF_REFCNT, po.refcnt + 1);
        } else {
            let path = path_under(t, o.parent, &name);
            console::write(
                format!("sysctl_warn_reuse: can't re-use a leaf ({path})!\n").as_bytes(),
            );
        }
        return;
    }
    let mut number = o.number;
    if number < 0 {
        t.newoid -= 1;
        if t.newoid < CTL_AUTO_START {
            t.newoid = 0x7fff_ffff;
        }
        number = t.newoid;
    }
    let list = t.lists.entry(o.parent).or_default();
    let mut wraps = 2;
    while list.contains_key(&number) {
        if number < CTL_AUTO_START || number == 0x7fff_ffff {
            number = CTL_AUTO_START;
            if wraps == 0 {
                panic!("sysctl: Out of OID numbers");
            }
            wraps -= 1;
        } else {
            number += 1;
        }
    }
    if o.number >= 0 && o.number < CTL_AUTO_START && number >= CTL_AUTO_START {
        console::write(
            format!(
                "sysctl: OID number({}) is already in use for '{name}'\n",
                o.number
            )
            .as_bytes(),
        );
    }
    set_i32(addr + OFF_NUMBER, number);
    list.insert(number, addr);
    let path = path_under(t, o.parent, &name);
    t.paths.insert(addr, path.clone());
    t.registered.insert(addr, Registered { path, owner });
    if o.kind & CTLFLAG_TUN != 0
        && o.kind & CTLFLAG_NOFETCH == 0
        && o.kind & CTLTYPE != CTLTYPE_NODE
    {
        eprintln!(
            "kldrun: sysctl {}: CTLFLAG_TUN without CTLFLAG_NOFETCH: kldrun does not load its \
             value from the kenv",
            t.paths[&addr]
        );
    }
}

/// `sysctl_unregister_oid()` with the tree locked.
fn unregister_locked(t: &mut Tree, addr: u64) {
    let o = oid(addr);
    let removed = if o.number == OID_AUTO {
        Some(EINVAL)
    } else {
        match t.lists.get_mut(&o.parent) {
            Some(l) if l.get(&o.number) == Some(&addr) => {
                l.remove(&o.number);
                t.registered.remove(&addr);
                None
            }
            _ => Some(ENOENT),
        }
    };
    if let Some(e) = removed {
        console::write(
            format!(
                "sysctl_unregister_oid: failed({e}) to unregister sysctl({})\n",
                name_of(&o)
            )
            .as_bytes(),
        );
    }
}

/// Registers a static oid of the kernel (kldrun's top-level nodes).
pub fn register_kernel(addr: u64) {
    with(|t| register_locked(t, addr, Owner::Kernel));
}

/// The linker's `linker_file_register_sysctls(lf, false)`: registers a kld's static oids,
/// leaves dormant (`sysctl_register_disabled_oid`).
pub fn register_static_disabled(oids: &[u64]) {
    with(|t| {
        for &a in oids {
            let o = oid(a);
            if o.kind & CTLTYPE != CTLTYPE_NODE {
                set_u32(a + OFF_KIND, o.kind | CTLFLAG_DORMANT);
            }
            register_locked(t, a, Owner::Static);
        }
    });
}

/// `linker_file_enable_sysctls()`: clears `CTLFLAG_DORMANT` on a kld's static leaves.
pub fn enable_static(oids: &[u64]) {
    for &a in oids {
        let o = oid(a);
        if o.kind & CTLTYPE != CTLTYPE_NODE {
            set_u32(a + OFF_KIND, o.kind & !CTLFLAG_DORMANT);
        }
    }
}

/// `linker_file_unregister_sysctls()`: unregisters a kld's static oids.
pub fn unregister_static(oids: &[u64]) {
    with(|t| {
        for &a in oids {
            if t.registered.contains_key(&a) {
                unregister_locked(t, a);
            }
        }
    });
}

/// `sysctl_remove_oid_locked()`; `Err(errno)` on failure.
fn remove_locked(t: &mut Tree, addr: u64, del: bool, recurse: bool) -> Result<(), u64> {
    if addr == 0 {
        return Err(EINVAL);
    }
    let o = oid(addr);
    if o.kind & CTLFLAG_DYN == 0 {
        console::write(
            format!(
                "Warning: can't remove non-dynamic nodes ({})!\n",
                name_of(&o)
            )
            .as_bytes(),
        );
        return Err(EINVAL);
    }
    if o.kind & CTLTYPE == CTLTYPE_NODE && o.refcnt == 1 {
        let children: Vec<u64> = t
            .lists
            .get(&addr)
            .map(|l| l.values().copied().collect())
            .unwrap_or_default();
        for child in children {
            if !recurse {
                console::write(
                    format!(
                        "Warning: failed attempt to remove oid {} with child {}\n",
                        name_of(&o),
                        name_of(&oid(child))
                    )
                    .as_bytes(),
                );
                return Err(ENOTEMPTY);
            }
            remove_locked(t, child, del, recurse)?;
        }
    }
    let o = oid(addr);
    if o.refcnt > 1 {
        set_i32(addr + OFF_REFCNT, o.refcnt - 1);
    } else {
        if o.refcnt == 0 {
            console::write(
                format!("Warning: bad oid_refcnt={} ({})!\n", o.refcnt, name_of(&o)).as_bytes(),
            );
            return Err(EINVAL);
        }
        unregister_locked(t, addr);
        if del {
            if let Some(d) = t.dynamic.remove(&addr) {
                // Freed in the kernel; kept (trashed) here so a stale pointer cannot reach
                // host memory.
                let mut d = d;
                *d.storage = RawOid::default();
                t.dead.push(d);
            }
        }
    }
    Ok(())
}

/// Adds an oid the kernel owns (another subsystem's) under the node `parent_path`: used by
/// `--hold-oid`. Returns its address.
pub fn add_foreign(parent_path: &str, name: &str) -> Result<u64, String> {
    let parent = lookup(parent_path).ok_or_else(|| format!("unknown oid '{parent_path}'"))?;
    if oid(parent).kind & CTLTYPE != CTLTYPE_NODE {
        return Err(format!("{parent_path} is not a node"));
    }
    let cname = CString::new(name).map_err(|_| "NUL in name".to_string())?;
    let storage = Box::new(RawOid {
        parent,
        number: OID_AUTO,
        kind: CTLFLAG_DYN | CTLFLAG_RD | CTLTYPE_INT,
        name: cname.as_ptr() as u64,
        refcnt: 1,
        fmt: c"I".as_ptr() as u64,
        handler: super::stub_of("sysctl_handle_int"),
        ..RawOid::default()
    });
    let addr = &*storage as *const RawOid as u64;
    with(|t| {
        t.dynamic.insert(
            addr,
            DynOid {
                storage,
                _name: cname,
                _descr: None,
                _label: None,
                caller: 0,
            },
        );
        register_locked(t, addr, Owner::Kernel);
    });
    Ok(addr)
}

/// Removes an oid added by [`add_foreign`].
pub fn remove_foreign(addr: u64) {
    with(|t| {
        if t.registered.contains_key(&addr) {
            unregister_locked(t, addr);
        }
        t.dynamic.remove(&addr);
    });
}

fn escape(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for &c in name {
        if c == b'.' {
            out.extend_from_slice(b"%25");
        } else {
            out.push(c);
        }
    }
    out
}

/// `struct sysctl_oid *sysctl_add_oid(struct sysctl_ctx_list *clist, struct sysctl_oid_list
/// *parent, int nbr, const char *name, int kind, void *arg1, intmax_t arg2, int
/// (*handler)(SYSCTL_HANDLER_ARGS), const char *fmt, const char *descr, const char *label);`
/// — see the module documentation. With `--fail-oid N` the N-th call returns NULL, which is
/// what the kernel returns when the name is taken by a leaf.
pub fn sysctl_add_oid(c: &mut Ctx) -> u64 {
    let clist = c.args.ptr();
    let parent = c.args.ptr();
    let number = c.args.int();
    let name_p = c.args.ptr();
    let kind = c.args.uint();
    let arg1 = c.args.ptr();
    let arg2 = c.args.ptr() as i64;
    let handler = c.args.ptr();
    let fmt = c.args.ptr();
    let descr_p = c.args.ptr();
    let label_p = c.args.ptr();
    if parent == 0 {
        return 0;
    }
    // SAFETY: the contract: name, descr and label are NUL-terminated (descr/label may be NULL).
    let (name, descr, label) =
        unsafe { (mem::cstr(name_p), mem::cstr(descr_p), mem::cstr(label_p)) };
    let escaped = escape(&name);
    let fail = with(|t| {
        t.adds += 1;
        t.fail_add_at == Some(t.adds)
    });
    if fail {
        eprintln!(
            "kldrun: --fail-oid: sysctl_add_oid({}) returns NULL",
            String::from_utf8_lossy(&name)
        );
        return 0;
    }
    let existing = with(|t| find_name(t, parent, &escaped));
    if let Some(e) = existing {
        let eo = oid(e);
        if eo.kind & CTLTYPE == CTLTYPE_NODE {
            set_i32(e + OFF_REFCNT, eo.refcnt + 1);
            if clist != 0 {
                entry_add(clist, e);
            }
            return e;
        }
        let path = with(|t| t.paths.get(&e).cloned().unwrap_or_default());
        console::write(format!("sysctl_warn_reuse: can't re-use a leaf ({path})!\n").as_bytes());
        return 0;
    }
    let cname = CString::new(escaped).expect("no NUL in a C string");
    let cdescr = (descr_p != 0).then(|| CString::new(descr).expect("no NUL"));
    let clabel = (label_p != 0).then(|| CString::new(label).expect("no NUL"));
    let storage = Box::new(RawOid {
        parent,
        number,
        refcnt: 1,
        name: cname.as_ptr() as u64,
        handler,
        kind: CTLFLAG_DYN | kind,
        arg1,
        arg2,
        fmt,
        descr: cdescr.as_ref().map_or(0, |d| d.as_ptr() as u64),
        label: clabel.as_ref().map_or(0, |d| d.as_ptr() as u64),
        ..RawOid::default()
    });
    let addr = &*storage as *const RawOid as u64;
    with(|t| {
        t.added += 1;
        t.dynamic.insert(
            addr,
            DynOid {
                storage,
                _name: cname,
                _descr: cdescr,
                _label: clabel,
                caller: c.ret_addr,
            },
        )
    });
    if clist != 0 {
        entry_add(clist, addr);
    }
    with(|t| register_locked(t, addr, Owner::Dynamic));
    addr
}

/// `sysctl_ctx_entry_add()`: a `struct sysctl_ctx_entry { struct sysctl_oid *entry;
/// TAILQ_ENTRY(sysctl_ctx_entry) link; }` at the head of the module's list.
fn entry_add(clist: u64, oid_addr: u64) {
    let mut e = Box::new([oid_addr, 0, 0]);
    let ea = e.as_mut_ptr() as u64;
    // SAFETY: `clist` is the module's initialised TAILQ_HEAD (tqh_first at 0, tqh_last at 8);
    // the entry's link is tqe_next at 8, tqe_prev at 16 (TAILQ_INSERT_HEAD).
    unsafe {
        let first: u64 = mem::read(clist);
        e[1] = first;
        if first != 0 {
            mem::write(first + 16, ea + 8);
        } else {
            mem::write(clist + 8, ea + 8);
        }
        mem::write(clist, ea);
        e[2] = clist;
    }
    with(|t| t.entries.insert(ea, e));
}

/// `int sysctl_ctx_init(struct sysctl_ctx_list *clist);` — `TAILQ_INIT`; EINVAL for NULL.
pub fn sysctl_ctx_init(c: &mut Ctx) -> u64 {
    let clist = c.args.ptr();
    if clist == 0 {
        return EINVAL;
    }
    // SAFETY: the contract: a struct sysctl_ctx_list (two pointers).
    unsafe {
        mem::write(clist, 0u64);
        mem::write(clist + 8, clist);
    }
    0
}

/// `int sysctl_ctx_free(struct sysctl_ctx_list *clist);` — see the module documentation: 0,
/// or `EBUSY` with every oid still registered.
pub fn sysctl_ctx_free(c: &mut Ctx) -> u64 {
    let clist = c.args.ptr();
    // The list, from the head (newest) on.
    let mut list = Vec::new();
    // SAFETY: the contract: an initialised sysctl_ctx_list whose entries kldrun made.
    let mut e: u64 = unsafe { mem::read(clist) };
    while e != 0 {
        let known = with(|t| t.entries.contains_key(&e));
        if !known {
            kpanic(
                c,
                &format!("sysctl_ctx_free: {e:#x} is not a live context entry (freed twice?)"),
            );
        }
        // SAFETY: a live entry of ours: entry at 0, tqe_next at 8.
        let (o, next) = unsafe { (mem::read::<u64>(e), mem::read::<u64>(e + 8)) };
        list.push((e, o));
        e = next;
    }
    let result = with(|t| {
        let mut failed_at = None;
        for (i, &(_, o)) in list.iter().enumerate() {
            if let Err(err) = remove_locked(t, o, false, false) {
                failed_at = Some((i, err));
                break;
            }
        }
        let restore_from = match failed_at {
            Some((i, _)) => i,
            None => list.len(),
        };
        for &(_, o) in list[..restore_from].iter().rev() {
            let owner = if t.dynamic.contains_key(&o) {
                Owner::Dynamic
            } else {
                Owner::Static
            };
            register_locked(t, o, owner);
        }
        if failed_at.is_some() {
            return Err(());
        }
        for &(e, o) in &list {
            if let Err(err) = remove_locked(t, o, true, false) {
                return Ok(Some((o, err)));
            }
            if let Some(b) = t.entries.remove(&e) {
                t.dead_entries.push(b);
            }
        }
        Ok(None)
    });
    match result {
        Err(()) => EBUSY,
        Ok(None) => 0,
        Ok(Some((o, _))) => kpanic(
            c,
            &format!(
                "sysctl_remove_oid: corrupt tree, entry: {}",
                name_of(&oid(o))
            ),
        ),
    }
}

/// `int sysctl_remove_oid(struct sysctl_oid *oidp, int del, int recurse);`
pub fn sysctl_remove_oid(c: &mut Ctx) -> u64 {
    let o = c.args.ptr();
    let del = c.args.int() != 0;
    let recurse = c.args.int() != 0;
    with(|t| remove_locked(t, o, del, recurse))
        .err()
        .unwrap_or(0)
}

/// `int sysctl_remove_name(struct sysctl_oid *parent, const char *name, int del, int
/// recurse);` — [`sysctl_remove_oid`] of the child called `name`; ENOENT if there is none.
pub fn sysctl_remove_name(c: &mut Ctx) -> u64 {
    let parent = c.args.ptr();
    let name = c.args.ptr();
    let del = c.args.int() != 0;
    let recurse = c.args.int() != 0;
    // SAFETY: the contract: a NUL-terminated name.
    let name = unsafe { mem::cstr(name) };
    with(|t| match find_name(t, parent, &name) {
        Some(o) => remove_locked(t, o, del, recurse).err().unwrap_or(0),
        None => ENOENT,
    })
}

// --- requests ----------------------------------------------------------------------------

fn req(addr: u64) -> Req {
    // SAFETY: every req handled here is a struct sysctl_req (the handler's contract).
    unsafe { mem::read(addr) }
}

fn set_req(addr: u64, r: &Req) {
    // SAFETY: as in `req`.
    unsafe { mem::write(addr, *r) }
}

/// `sysctl_old_user()`: `SYSCTL_OUT` for a request from userland.
fn old_user(reqp: u64, p: u64, l: u64) -> u64 {
    let mut r = req(reqp);
    let orig = r.oldidx;
    r.oldidx += l;
    set_req(reqp, &r);
    if r.oldptr == 0 {
        return 0;
    }
    let n = if r.validlen <= orig {
        0
    } else {
        l.min(r.validlen - orig)
    };
    if n > 0 {
        // SAFETY: `p` holds `l` bytes (SYSCTL_OUT's contract); oldptr holds validlen bytes
        // (kldrun's buffer) and orig + n <= validlen.
        unsafe { mem::write_bytes(r.oldptr + orig, &mem::bytes(p, n as usize)) };
    }
    if n < l {
        ENOMEM
    } else {
        0
    }
}

/// `sysctl_new_user()`: `SYSCTL_IN` for a request from userland.
fn new_user(reqp: u64, p: u64, l: u64) -> u64 {
    let mut r = req(reqp);
    if r.newptr == 0 {
        return 0;
    }
    if r.newlen - r.newidx < l {
        return EINVAL;
    }
    // SAFETY: `p` has room for `l` bytes (SYSCTL_IN's contract); newptr holds newlen bytes.
    unsafe { mem::write_bytes(p, &mem::bytes(r.newptr + r.newidx, l as usize)) };
    r.newidx += l;
    set_req(reqp, &r);
    0
}

/// `static int sysctl_old_user(struct sysctl_req *req, const void *p, size_t l);` — not a
/// kernel symbol, but what `req->oldfunc` points to in a request from userland: the module's
/// `SYSCTL_OUT()` calls it through that pointer. Copies into the request's buffer up to
/// `validlen` (ENOMEM past it) and advances `oldidx` by `l` in any case.
pub fn sysctl_old_user(c: &mut Ctx) -> u64 {
    let r = c.args.ptr();
    let p = c.args.ptr();
    let l = c.args.ptr();
    old_user(r, p, l)
}

/// `static int sysctl_new_user(struct sysctl_req *req, void *p, size_t l);` — `req->newfunc`
/// of a request from userland (`SYSCTL_IN`): copies the next `l` bytes of the new value, or
/// EINVAL if fewer are left.
pub fn sysctl_new_user(c: &mut Ctx) -> u64 {
    let r = c.args.ptr();
    let p = c.args.ptr();
    let l = c.args.ptr();
    new_user(r, p, l)
}

/// `SYSCTL_OUT(req, p, l)`: `req->oldfunc(req, p, l)`. The usual `oldfunc` is kldrun's own
/// (served directly); another one is module code and is called on the current thread.
fn sysctl_out(c: &Ctx, reqp: u64, p: u64, l: u64) -> u64 {
    let f = req(reqp).oldfunc;
    if f == super::stub_of("sysctl_old_user") {
        old_user(reqp, p, l)
    } else {
        // SAFETY: oldfunc is a function of the SYSCTL_OUT type (the request's contract).
        unsafe { threads::call(c.thread, f, &[reqp, p, l]) }
    }
}

/// `SYSCTL_IN(req, p, l)`: `req->newfunc(req, p, l)`.
fn sysctl_in(c: &Ctx, reqp: u64, p: u64, l: u64) -> u64 {
    let f = req(reqp).newfunc;
    if f == super::stub_of("sysctl_new_user") {
        new_user(reqp, p, l)
    } else {
        // SAFETY: newfunc is a function of the SYSCTL_IN type (the request's contract).
        unsafe { threads::call(c.thread, f, &[reqp, p, l]) }
    }
}

/// The shape of the scalar `sysctl_handle_*` functions: snapshot `size` bytes of `*arg1` (or
/// `arg2` when `arg1` is NULL), `SYSCTL_OUT` them, then `SYSCTL_IN` a new value into `arg1`
/// (EPERM without one).
fn handle_scalar(c: &mut Ctx, size: usize) -> u64 {
    let _oidp = c.args.ptr();
    let arg1 = c.args.ptr();
    let arg2 = c.args.ptr();
    let reqp = c.args.ptr();
    let snapshot: Vec<u8> = if arg1 != 0 {
        // SAFETY: the handler's contract: arg1 points to a value of this size.
        unsafe { mem::bytes(arg1, size) }
    } else {
        arg2.to_le_bytes()[..size].to_vec()
    };
    let error = sysctl_out(c, reqp, snapshot.as_ptr() as u64, size as u64);
    if error != 0 || req(reqp).newptr == 0 {
        return error;
    }
    if arg1 == 0 {
        return EPERM;
    }
    sysctl_in(c, reqp, arg1, size as u64)
}

/// `int sysctl_handle_int(SYSCTL_HANDLER_ARGS);` — an `int` (or `u_int`) at `arg1`, or the
/// constant `arg2`.
pub fn sysctl_handle_int(c: &mut Ctx) -> u64 {
    handle_scalar(c, 4)
}

/// `int sysctl_handle_long(SYSCTL_HANDLER_ARGS);` — a `long` (no `SCTL_MASK32` requests).
pub fn sysctl_handle_long(c: &mut Ctx) -> u64 {
    handle_scalar(c, 8)
}

/// `int sysctl_handle_64(SYSCTL_HANDLER_ARGS);` — a 64-bit value.
pub fn sysctl_handle_64(c: &mut Ctx) -> u64 {
    handle_scalar(c, 8)
}

/// `int sysctl_handle_32(SYSCTL_HANDLER_ARGS);`
pub fn sysctl_handle_32(c: &mut Ctx) -> u64 {
    handle_scalar(c, 4)
}

/// `int sysctl_handle_16(SYSCTL_HANDLER_ARGS);`
pub fn sysctl_handle_16(c: &mut Ctx) -> u64 {
    handle_scalar(c, 2)
}

/// `int sysctl_handle_8(SYSCTL_HANDLER_ARGS);`
pub fn sysctl_handle_8(c: &mut Ctx) -> u64 {
    handle_scalar(c, 1)
}

/// `int sysctl_handle_bool(SYSCTL_HANDLER_ARGS);` — a `bool`, passed out as one byte 0/1 and
/// stored normalised.
pub fn sysctl_handle_bool(c: &mut Ctx) -> u64 {
    let _oidp = c.args.ptr();
    let arg1 = c.args.ptr();
    let arg2 = c.args.ptr();
    let reqp = c.args.ptr();
    let v: u8 = if arg1 != 0 {
        // SAFETY: the handler's contract: arg1 points to a bool when not NULL.
        let b = unsafe { mem::read::<u8>(arg1) };
        u8::from(b != 0)
    } else {
        u8::from(arg2 != 0)
    };
    let error = sysctl_out(c, reqp, &v as *const u8 as u64, 1);
    if error != 0 || req(reqp).newptr == 0 {
        return error;
    }
    if arg1 == 0 {
        return EPERM;
    }
    let mut n = 0u8;
    let error = sysctl_in(c, reqp, &mut n as *mut u8 as u64, 1);
    if error == 0 {
        // SAFETY: as above.
        unsafe { mem::write(arg1, u8::from(n != 0)) };
    }
    error
}

/// `int sysctl_handle_opaque(SYSCTL_HANDLER_ARGS);` — `arg2` bytes at `arg1` out, then in.
/// Simplified: the kernel retries until it gets a consistent snapshot (generation count);
/// nothing changes concurrently here.
pub fn sysctl_handle_opaque(c: &mut Ctx) -> u64 {
    let _oidp = c.args.ptr();
    let arg1 = c.args.ptr();
    let arg2 = c.args.ptr();
    let reqp = c.args.ptr();
    let error = sysctl_out(c, reqp, arg1, arg2);
    if error != 0 || req(reqp).newptr == 0 {
        return error;
    }
    sysctl_in(c, reqp, arg1, arg2)
}

/// `int sysctl_handle_string(SYSCTL_HANDLER_ARGS);` — the string at `arg1`; `arg2` is its
/// buffer size (0 for a constant string). A string that is neither writable nor a tunable,
/// or has `arg2` 0, is read in place with its `strlen + 1` as the size; otherwise a snapshot
/// of `arg2` bytes is taken first. A new value must be shorter than `arg2`.
pub fn sysctl_handle_string(c: &mut Ctx) -> u64 {
    let oidp = c.args.ptr();
    let arg1 = c.args.ptr();
    let mut arg2 = c.args.ptr() as i64;
    let reqp = c.args.ptr();
    let kind = oid(oidp).kind;
    // SAFETY: the handler's contract: arg1 is a NUL-terminated string in a buffer of arg2
    // bytes (or a constant string when arg2 is 0).
    let s = unsafe { mem::cstr(arg1) };
    let ro = kind & (CTLFLAG_WR | CTLFLAG_TUN) == 0 || arg2 == 0;
    if ro {
        arg2 = s.len() as i64 + 1;
    }
    let mut out = s.clone();
    out.push(0);
    let error = if req(reqp).oldptr != 0 {
        sysctl_out(c, reqp, out.as_ptr() as u64, out.len() as u64)
    } else {
        sysctl_out(c, reqp, 0, out.len() as u64)
    };
    let r = req(reqp);
    if error != 0 || r.newptr == 0 {
        return error;
    }
    let left = r.newlen as i64 - r.newidx as i64;
    if left >= arg2 || left < 0 {
        return EINVAL;
    }
    let mut buf = vec![0u8; left as usize + 1];
    let error = sysctl_in(c, reqp, buf.as_mut_ptr() as u64, left as u64);
    if error == 0 {
        // SAFETY: left + 1 <= arg2 bytes of the string's buffer.
        unsafe { mem::write_bytes(arg1, &buf) };
    }
    error
}

/// `void sysctl_register_oid(struct sysctl_oid *oidp);`
pub fn sysctl_register_oid(c: &mut Ctx) -> u64 {
    let o = c.args.ptr();
    with(|t| register_locked(t, o, Owner::Static));
    0
}

/// `void sysctl_unregister_oid(struct sysctl_oid *oidp);`
pub fn sysctl_unregister_oid(c: &mut Ctx) -> u64 {
    let o = c.args.ptr();
    with(|t| unregister_locked(t, o));
    0
}

// --- sysctl(8) ---------------------------------------------------------------------------

/// The oid called `path` (dotted), if registered.
pub fn lookup(path: &str) -> Option<u64> {
    with(|t| {
        let mut list = t.root;
        let mut found = None;
        for comp in path.split('.') {
            let o = find_name(t, list, comp.as_bytes())?;
            let ro = oid(o);
            found = Some(o);
            if ro.kind & CTLTYPE == CTLTYPE_NODE && ro.handler == 0 {
                list = o;
            } else {
                list = 0;
            }
        }
        found
    })
}

/// Calls an oid's handler with a userland request (`sysctl_root()`), returning the error,
/// the bytes produced (up to the buffer) and `oldidx`.
fn root_call(thread: usize, addr: u64, oldlen: Option<usize>) -> (u64, Vec<u8>, u64) {
    let o = oid(addr);
    if o.kind & CTLTYPE == CTLTYPE_NODE && o.handler == 0 {
        return (EISDIR, Vec::new(), 0);
    }
    if o.handler == 0 {
        return (EINVAL, Vec::new(), 0);
    }
    if o.kind & (CTLFLAG_DYING | CTLFLAG_DORMANT) != 0 {
        return (ENOENT, Vec::new(), 0);
    }
    let mut buf = vec![0u8; oldlen.unwrap_or(0)];
    let r = Req {
        td: threads::td(thread),
        oldptr: if oldlen.is_some() {
            buf.as_mut_ptr() as u64
        } else {
            0
        },
        oldlen: oldlen.unwrap_or(0) as u64,
        validlen: oldlen.unwrap_or(0) as u64,
        oldfunc: super::stub_of("sysctl_old_user"),
        newfunc: super::stub_of("sysctl_new_user"),
        ..Req::default()
    };
    let reqbox = Box::new(r);
    let reqp = &*reqbox as *const Req as u64;
    set_u32(addr + 92, o.running + 1);
    // SAFETY: the handler is module code (or a stub) of the SYSCTL_HANDLER_ARGS type; the
    // oid, its arguments and the request are live for the call.
    let error = unsafe { threads::call(thread, o.handler, &[addr, o.arg1, o.arg2 as u64, reqp]) };
    set_u32(addr + 92, oid(addr).running.saturating_sub(1));
    let done = req(reqp);
    let n = (done.oldidx as usize).min(buf.len());
    buf.truncate(n);
    (u64::from(error as u32), buf, done.oldidx)
}

/// One line `name: value` as sysctl(8) prints it, or `None` for what it does not show.
fn show(thread: usize, addr: u64, path: &str) -> Result<Option<String>, String> {
    let o = oid(addr);
    let kind = o.kind & CTLTYPE;
    if kind == CTLTYPE_NODE || kind == 5 {
        // Opaque values (and nodes with handlers) need sysctl -o.
        return Ok(None);
    }
    let (err, _, need) = root_call(thread, addr, None);
    if err != 0 {
        return Err(format!("{path}: error {err} from its handler (size probe)"));
    }
    // Twice the probed size, as sysctl(8) asks; a value that grew past that between the probe
    // and the read (a state string changing while the boot thread runs) answers ENOMEM with
    // the size it needs now (`oldidx` counts on past the buffer): ask again with that, as a
    // sysctl(3) caller must for values that change.
    let mut want = (need as usize) * 2;
    let mut tries = 0;
    let v = loop {
        let (err, v, need) = root_call(thread, addr, Some(want));
        if err == 0 {
            break v;
        }
        tries += 1;
        if err != ENOMEM || tries == 4 {
            return Err(format!("{path}: error {err} from its handler"));
        }
        want = (need as usize).max(want) * 2;
    };
    if v.is_empty() && kind != CTLTYPE_STRING {
        return Ok(None);
    }
    let elems = |size: usize| v.chunks_exact(size).collect::<Vec<_>>();
    let join = |items: Vec<String>| items.join(" ");
    let value = match kind {
        CTLTYPE_STRING => {
            let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end]).into_owned()
        }
        CTLTYPE_INT | CTLTYPE_S32 => join(
            elems(4)
                .iter()
                .map(|b| i32::from_le_bytes((*b).try_into().expect("4")).to_string())
                .collect(),
        ),
        CTLTYPE_UINT | CTLTYPE_U32 => join(
            elems(4)
                .iter()
                .map(|b| u32::from_le_bytes((*b).try_into().expect("4")).to_string())
                .collect(),
        ),
        CTLTYPE_LONG | CTLTYPE_S64 => join(
            elems(8)
                .iter()
                .map(|b| i64::from_le_bytes((*b).try_into().expect("8")).to_string())
                .collect(),
        ),
        CTLTYPE_ULONG | CTLTYPE_U64 => join(
            elems(8)
                .iter()
                .map(|b| u64::from_le_bytes((*b).try_into().expect("8")).to_string())
                .collect(),
        ),
        CTLTYPE_S8 => join(v.iter().map(|&b| (b as i8).to_string()).collect()),
        CTLTYPE_U8 => join(v.iter().map(|&b| b.to_string()).collect()),
        CTLTYPE_S16 => join(
            elems(2)
                .iter()
                .map(|b| i16::from_le_bytes((*b).try_into().expect("2")).to_string())
                .collect(),
        ),
        CTLTYPE_U16 => join(
            elems(2)
                .iter()
                .map(|b| u16::from_le_bytes((*b).try_into().expect("2")).to_string())
                .collect(),
        ),
        _ => return Ok(None),
    };
    Ok(Some(format!("{path}: {value}")))
}

/// What `sysctl PREFIX` prints (one `name: value` per line, the kernel's order), run on the
/// kernel thread `thread` (the handlers are module code). `Err` for an unknown name; handler
/// errors are returned with the lines that did print.
pub fn sysctl8(thread: usize, prefix: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let Some(top) = lookup(prefix) else {
        return Err(format!("unknown oid '{prefix}'"));
    };
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut todo = vec![(top, prefix.to_string())];
    // Depth first, children in ascending oid number.
    while let Some((a, path)) = todo.pop() {
        let o = oid(a);
        if o.kind & CTLFLAG_DORMANT != 0 || (o.kind & CTLFLAG_SKIP != 0 && a != top) {
            continue;
        }
        if o.kind & CTLTYPE == CTLTYPE_NODE && o.handler == 0 {
            let children: Vec<u64> = with(|t| {
                t.lists
                    .get(&a)
                    .map(|l| l.values().copied().collect())
                    .unwrap_or_default()
            });
            for ch in children.into_iter().rev() {
                let name = name_of(&oid(ch));
                todo.push((ch, format!("{path}.{name}")));
            }
            continue;
        }
        match show(thread, a, &path) {
            Ok(Some(l)) => lines.push(l),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    Ok((lines, errors))
}

/// Oids still registered that the module made (statically or with `sysctl_add_oid`), and
/// context entries never freed: the end-of-run leak lines.
pub fn leaks(symbolize: &dyn Fn(u64) -> String) -> Vec<String> {
    with(|t| {
        let mut out = Vec::new();
        let mut left: Vec<(&u64, &Registered)> = t
            .registered
            .iter()
            .filter(|(_, r)| r.owner != Owner::Kernel)
            .collect();
        left.sort_by(|a, b| a.1.path.cmp(&b.1.path));
        if !left.is_empty() {
            let names: Vec<String> = left.iter().take(8).map(|(_, r)| r.path.clone()).collect();
            let from = left
                .iter()
                .find_map(|(a, _)| t.dynamic.get(a).map(|d| d.caller))
                .map(|c| format!("; the first added from {}", symbolize(c)))
                .unwrap_or_default();
            out.push(format!(
                "sysctl(9): {} oids still registered: {}{}{from}",
                left.len(),
                names.join(", "),
                if left.len() > 8 { ", ..." } else { "" }
            ));
        }
        if !t.entries.is_empty() {
            out.push(format!(
                "sysctl(9): {} sysctl_ctx entries not freed (no successful sysctl_ctx_free)",
                t.entries.len()
            ));
        }
        out
    })
}

/// How many oids `sysctl_add_oid` made.
pub fn oids_added() -> u64 {
    with(|t| t.added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_in_names_are_escaped() {
        assert_eq!(escape(b"a.b"), b"a%25b");
        assert_eq!(escape(b"plain"), b"plain");
    }
}
