//! The emulated FreeBSD 14 kernel: the functions and variables a kld can import from it
//! ([`kpis`]), how a call from the module reaches them ([`kldrun_dispatch`]), and a kldload,
//! a look with sysctl(8) and a kldunload of one module ([`run`]).

pub mod args;
pub mod cam;
pub mod console;
pub mod ifnet;
pub mod kenv;
pub mod kthread;
pub mod libkern;
pub mod malloc;
pub mod mem;
pub mod module;
pub mod mutex;
pub mod pci;
pub mod pmap;
pub mod preload;
pub mod printf;
pub mod socket;
pub mod synch;
pub mod sysctl;
pub mod threads;

use crate::cli::Config;
use crate::fault;
use crate::kstack::{Ctl, KSTACK_SIZE};
use crate::linker::{self, LinkError, Loaded, Metadata};
use args::{ArgSource, FrameArgs};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// What an emulated function sees of its call.
pub struct Ctx<'a> {
    /// Its arguments, in order.
    pub args: &'a mut dyn ArgSource,
    /// The kernel thread it runs for (index of [`threads`]).
    pub thread: usize,
    /// The return address into the module (0 for calls kldrun makes itself).
    pub ret_addr: u64,
    /// The module's frame pointer at the call (for backtraces).
    pub frame_ptr: u64,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("thread", &self.thread)
            .field("ret_addr", &self.ret_addr)
            .finish()
    }
}

/// An emulated kernel function.
pub type KpiFn = fn(&mut Ctx) -> u64;

/// What a kernel symbol is.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A function, and how many arguments a `-v` trace shows.
    Func(KpiFn, u8),
    /// A function the kernel does not export by name (a module reaches it only through a
    /// pointer the kernel gave it, e.g. `req->oldfunc`).
    Internal(KpiFn, u8),
    /// A variable of this many bytes in the kernel's low data, set up by the function.
    Data(usize, fn(u64)),
}

/// One kernel symbol.
#[derive(Debug, Clone, Copy)]
pub struct Kpi {
    /// Its name.
    pub name: &'static str,
    /// What it is.
    pub kind: Kind,
}

const fn f(name: &'static str, func: KpiFn, nargs: u8) -> Kpi {
    Kpi {
        name,
        kind: Kind::Func(func, nargs),
    }
}

/// Every kernel symbol kldrun provides. See each function's documentation for the FreeBSD
/// semantics it keeps and what it simplifies.
pub fn kpis() -> Vec<Kpi> {
    use self::console as con;
    let mut v = vec![
        // console (sys/kern/subr_prf.c, sys/kern/kern_shutdown.c)
        f("printf", con::printf, 1),
        f("vprintf", con::vprintf, 2),
        f("log", con::log, 2),
        f("vlog", con::vlog, 3),
        f("snprintf", con::snprintf, 3),
        f("vsnprintf", con::vsnprintf, 4),
        f("panic", con::panic, 1),
        // malloc(9) (sys/kern/kern_malloc.c)
        f("malloc", malloc::malloc, 3),
        f("free", malloc::free, 2),
        f("realloc", malloc::realloc, 4),
        f("reallocf", malloc::reallocf, 4),
        f("malloc_init", malloc::malloc_init, 1),
        f("malloc_uninit", malloc::malloc_uninit, 1),
        // kenv (sys/kern/kern_environment.c)
        f("kern_getenv", kenv::kern_getenv, 1),
        f("freeenv", kenv::freeenv, 1),
        f("testenv", kenv::testenv, 1),
        f("getenv_int", kenv::getenv_int, 2),
        f("getenv_uint", kenv::getenv_uint, 2),
        f("getenv_long", kenv::getenv_long, 2),
        f("getenv_ulong", kenv::getenv_ulong, 2),
        f("getenv_quad", kenv::getenv_quad, 2),
        f("getenv_uquad", kenv::getenv_uquad, 2),
        f("getenv_int64", kenv::getenv_int64, 2),
        f("getenv_uint64", kenv::getenv_uint64, 2),
        f("getenv_string", kenv::getenv_string, 3),
        f("getenv_bool", kenv::getenv_bool, 2),
        // mutex(9) (sys/kern/kern_mutex.c)
        f("_mtx_init", mutex::mtx_init, 4),
        f("_mtx_destroy", mutex::mtx_destroy, 1),
        f("__mtx_lock_flags", mutex::mtx_lock_flags, 4),
        f("__mtx_unlock_flags", mutex::mtx_unlock_flags, 4),
        f("_mtx_trylock_flags_", mutex::mtx_trylock_flags, 4),
        f("__mtx_lock_spin_flags", mutex::mtx_lock_flags, 4),
        f("__mtx_unlock_spin_flags", mutex::mtx_unlock_flags, 4),
        f("mtx_sysinit", mutex::mtx_sysinit, 1),
        // sysctl(9) (sys/kern/kern_sysctl.c)
        f("sysctl_add_oid", sysctl::sysctl_add_oid, 6),
        f("sysctl_ctx_init", sysctl::sysctl_ctx_init, 1),
        f("sysctl_ctx_free", sysctl::sysctl_ctx_free, 1),
        f("sysctl_remove_oid", sysctl::sysctl_remove_oid, 3),
        f("sysctl_remove_name", sysctl::sysctl_remove_name, 4),
        f("sysctl_register_oid", sysctl::sysctl_register_oid, 1),
        f("sysctl_unregister_oid", sysctl::sysctl_unregister_oid, 1),
        f("sysctl_handle_int", sysctl::sysctl_handle_int, 4),
        f("sysctl_handle_long", sysctl::sysctl_handle_long, 4),
        f("sysctl_handle_64", sysctl::sysctl_handle_64, 4),
        f("sysctl_handle_32", sysctl::sysctl_handle_32, 4),
        f("sysctl_handle_16", sysctl::sysctl_handle_16, 4),
        f("sysctl_handle_8", sysctl::sysctl_handle_8, 4),
        f("sysctl_handle_bool", sysctl::sysctl_handle_bool, 4),
        f("sysctl_handle_string", sysctl::sysctl_handle_string, 4),
        f("sysctl_handle_opaque", sysctl::sysctl_handle_opaque, 4),
        Kpi {
            name: "sysctl_old_user",
            kind: Kind::Internal(sysctl::sysctl_old_user, 3),
        },
        Kpi {
            name: "sysctl_new_user",
            kind: Kind::Internal(sysctl::sysctl_new_user, 3),
        },
        // preloaded files (sys/kern/subr_module.c)
        f("preload_search_by_type", preload::preload_search_by_type, 1),
        f("preload_search_by_name", preload::preload_search_by_name, 1),
        f(
            "preload_search_next_name",
            preload::preload_search_next_name,
            1,
        ),
        f("preload_search_info", preload::preload_search_info, 2),
        f("preload_fetch_addr", preload::preload_fetch_addr, 1),
        f("preload_fetch_size", preload::preload_fetch_size, 1),
        // physical memory (sys/amd64/amd64/pmap.c)
        f("pmap_mapbios", pmap::pmap_mapbios, 2),
        f("pmap_mapdev", pmap::pmap_mapdev, 2),
        f("pmap_unmapdev", pmap::pmap_unmapdev, 2),
        // modules (sys/kern/kern_module.c)
        f("module_register_init", module::module_register_init, 1),
        // libkern (sys/libkern, sys/amd64/amd64/support.S)
        f("memcpy", libkern::memcpy, 3),
        f("memmove", libkern::memmove, 3),
        f("memset", libkern::memset, 3),
        f("memcmp", libkern::memcmp, 3),
        f("bcmp", libkern::bcmp, 3),
        f("bcopy", libkern::bcopy, 3),
        f("bzero", libkern::bzero, 2),
        f("strlen", libkern::strlen, 1),
        f("strcmp", libkern::strcmp, 2),
        f("strncmp", libkern::strncmp, 3),
        f("strlcpy", libkern::strlcpy, 3),
        // threads, time, root holds (kern_kthread.c, kern_tc.c, kern_synch.c, vfs_mountroot.c)
        f("kproc_kthread_add", kthread::kproc_kthread_add, 8),
        f("kthread_exit", kthread::kthread_exit, 0),
        f("binuptime", kthread::binuptime, 1),
        f("pause_sbt", kthread::pause_sbt, 4),
        f("_sleep", synch::sleep, 7),
        f("wakeup", synch::wakeup, 1),
        f("wakeup_one", synch::wakeup_one, 1),
        f("arc4random_buf", kthread::arc4random_buf, 2),
        f("root_mount_hold", kthread::root_mount_hold, 1),
        f("root_mount_rel", kthread::root_mount_rel, 1),
        // kernel sockets, interfaces (uipc_socket.c, if.c)
        f("socreate", socket::socreate, 6),
        f("soclose", socket::soclose, 1),
        f("soconnect", socket::soconnect, 3),
        f("sosend", socket::sosend, 7),
        f("soreceive", socket::soreceive, 6),
        f("soshutdown", socket::soshutdown, 2),
        f("so_setsockopt", socket::so_setsockopt, 5),
        f("sogetopt", socket::sogetopt, 2),
        f("ifioctl", socket::ifioctl, 4),
        // CAM (cam_xpt.c, cam_sim.c, cam_periph.c), GEOM (geom_subr.c), sx(9)
        f("cam_simq_alloc", cam::cam_simq_alloc, 1),
        f("cam_simq_free", cam::cam_simq_free, 1),
        f("cam_sim_alloc", cam::cam_sim_alloc, 9),
        f("cam_sim_free", cam::cam_sim_free, 2),
        f("xpt_bus_register", cam::xpt_bus_register, 3),
        f("xpt_bus_deregister", cam::xpt_bus_deregister, 1),
        f("xpt_create_path", cam::xpt_create_path, 5),
        f("xpt_free_path", cam::xpt_free_path, 1),
        f("xpt_alloc_ccb_nowait", cam::xpt_alloc_ccb_nowait, 0),
        f("xpt_free_ccb", cam::xpt_free_ccb, 1),
        f("xpt_rescan", cam::xpt_rescan, 1),
        f("xpt_done", cam::xpt_done, 1),
        f("xpt_async", cam::xpt_async, 3),
        f("xpt_freeze_devq", cam::xpt_freeze_devq, 2),
        f("xpt_freeze_simq", cam::xpt_freeze_simq, 2),
        f("xpt_release_simq", cam::xpt_release_simq, 2),
        f("xpt_path_mtx", cam::xpt_path_mtx, 1),
        f("cam_periph_find", cam::cam_periph_find, 2),
        f("cam_calc_geometry", cam::cam_calc_geometry, 2),
        f("g_provider_by_name", cam::g_provider_by_name, 1),
        f("_sx_xlock", cam::sx_xlock, 4),
        f("_sx_xunlock", cam::sx_xunlock, 3),
        // network interfaces, the InfiniBand link layer, mbufs (if.c, if_infiniband.c,
        // uipc_mbuf.c, if_ether.c)
        f("if_alloc", ifnet::if_alloc, 1),
        f("if_free", ifnet::if_free, 1),
        f("if_initname", ifnet::if_initname, 3),
        f("if_setsoftc", ifnet::if_setsoftc, 2),
        f("if_getsoftc", ifnet::if_getsoftc, 1),
        f("if_setflags", ifnet::if_setflags, 2),
        f("if_getflags", ifnet::if_getflags, 1),
        f("if_setflagbits", ifnet::if_setflagbits, 3),
        f("if_setdrvflagbits", ifnet::if_setdrvflagbits, 3),
        f("if_getdrvflags", ifnet::if_getdrvflags, 1),
        f("if_setmtu", ifnet::if_setmtu, 2),
        f("if_getmtu", ifnet::if_getmtu, 1),
        f("if_setbaudrate", ifnet::if_setbaudrate, 2),
        f("if_setinitfn", ifnet::if_setinitfn, 2),
        f("if_setioctlfn", ifnet::if_setioctlfn, 2),
        f("if_settransmitfn", ifnet::if_settransmitfn, 2),
        f("if_setqflushfn", ifnet::if_setqflushfn, 2),
        f("if_inc_counter", ifnet::if_inc_counter, 3),
        f("if_name", ifnet::if_name, 1),
        f("if_getlladdr", ifnet::if_getlladdr, 1),
        f("if_setlladdr", ifnet::if_setlladdr, 3),
        f("if_link_state_change", ifnet::if_link_state_change, 2),
        f("if_input", ifnet::if_input, 2),
        f("infiniband_ifattach", ifnet::infiniband_ifattach, 3),
        f("infiniband_ifdetach", ifnet::infiniband_ifdetach, 1),
        f("arp_ifinit", ifnet::arp_ifinit, 2),
        f("m_devget", ifnet::m_devget, 5),
        f("m_length", ifnet::m_length, 2),
        f("m_copydata", ifnet::m_copydata, 4),
        f("m_freem", ifnet::m_freem, 1),
        f("m_free", ifnet::m_free, 1),
    ];
    v.extend(pci::kpis());
    v.extend(data::kpis());
    v
}

mod data;

/// The kernel symbol table: the entries, and the address of each (stub or variable).
#[derive(Debug)]
struct Symbols {
    kpis: Vec<Kpi>,
    addr: HashMap<&'static str, u64>,
}

static SYMBOLS: OnceLock<Symbols> = OnceLock::new();

/// Where kldrun's kernel data and import stubs live (low 2 GiB, below the module).
const KERNEL_AREA: u64 = 0x3000_0000;
const KERNEL_DATA: usize = 1 << 20;
const KERNEL_STUBS: usize = 1 << 20;
const STUB_SIZE: u64 = 32;

/// The address a symbol resolves to (a function's stub, a variable's storage).
pub fn symbol(name: &str) -> Option<u64> {
    let s = SYMBOLS.get()?;
    let i = s.kpis.iter().position(|k| k.name == name)?;
    match s.kpis[i].kind {
        Kind::Internal(..) => None,
        _ => s.addr.get(name).copied(),
    }
}

/// The stub address of a kldrun function (exported or internal); 0 if unknown.
pub fn stub_of(name: &str) -> u64 {
    SYMBOLS
        .get()
        .and_then(|s| s.addr.get(name).copied())
        .unwrap_or(0)
}

/// Maps the kernel's low area, lays out the variables and writes the stubs. Idempotent.
pub fn init() -> std::io::Result<()> {
    if SYMBOLS.get().is_some() {
        return Ok(());
    }
    let len = KERNEL_DATA + KERNEL_STUBS;
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
    let p = unsafe {
        libc::mmap(
            KERNEL_AREA as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED || p as u64 != KERNEL_AREA {
        return Err(std::io::Error::other(format!(
            "cannot map kldrun's kernel area at {KERNEL_AREA:#x}"
        )));
    }
    let kpis = kpis();
    let mut addr = HashMap::new();
    let mut data_at = KERNEL_AREA;
    let stubs = KERNEL_AREA + KERNEL_DATA as u64;
    let entry = crate::kstack::import_entry();
    let mut inits = Vec::new();
    for (i, k) in kpis.iter().enumerate() {
        match k.kind {
            Kind::Func(..) | Kind::Internal(..) => {
                let at = stubs + i as u64 * STUB_SIZE;
                // mov $i, %r11d; movabs $kldrun_import, %r10; jmp *%r10; int3 padding.
                let mut code = vec![0x41, 0xbb];
                code.extend_from_slice(&(i as u32).to_le_bytes());
                code.extend_from_slice(&[0x49, 0xba]);
                code.extend_from_slice(&entry.to_le_bytes());
                code.extend_from_slice(&[0x41, 0xff, 0xe2]);
                code.resize(STUB_SIZE as usize, 0xcc);
                // SAFETY: inside the fresh stub area (i * 32 < KERNEL_STUBS).
                unsafe { mem::write_bytes(at, &code) };
                addr.insert(k.name, at);
            }
            Kind::Data(size, init) => {
                data_at = data_at.next_multiple_of(16);
                addr.insert(k.name, data_at);
                inits.push((init, data_at));
                data_at += size as u64;
            }
        }
    }
    data::set_heap(
        data_at.next_multiple_of(16),
        KERNEL_AREA + KERNEL_DATA as u64,
    );
    // SAFETY: the stub half of the area, page-aligned.
    unsafe {
        libc::mprotect(
            stubs as *mut libc::c_void,
            KERNEL_STUBS,
            libc::PROT_READ | libc::PROT_EXEC,
        )
    };
    let names: Vec<&'static str> = kpis.iter().map(|k| k.name).collect();
    let _ = fault::IMPORT_NAMES.set(names);
    let _ = SYMBOLS.set(Symbols { kpis, addr });
    for (init, at) in inits {
        init(at);
    }
    Ok(())
}

// --- dispatch ------------------------------------------------------------------------------

static VERBOSE: AtomicBool = AtomicBool::new(false);
static PHASE: Mutex<&'static str> = Mutex::new("start");

/// Records what the kernel is doing (for the timeout report).
pub fn set_phase(p: &'static str) {
    *PHASE.lock().unwrap_or_else(|e| e.into_inner()) = p;
}

fn phase() -> &'static str {
    *PHASE.lock().unwrap_or_else(|e| e.into_inner())
}

/// `sym+off` (or the bare address) of a module code address.
pub fn symbolize(a: u64) -> String {
    let mut s = String::new();
    let _ = fault::symbolize(a, &mut s);
    s
}

/// Entered from the import trampoline (`crate::kstack`) on the host stack: serves import
/// `index` for the call whose argument frame is `frame`.
///
/// # Safety
/// Only the trampoline calls it: `frame` is the argument frame it built on the kernel stack,
/// `ctl` that stack's control block, `index` the stub's import index.
pub unsafe extern "C" fn kldrun_dispatch(frame: *const u64, index: u64, ctl: *const Ctl) -> u64 {
    let result = std::panic::catch_unwind(|| {
        let syms = SYMBOLS.get().expect("kernel initialised");
        let k = syms.kpis[index as usize];
        let (func, nargs) = match k.kind {
            Kind::Func(f, n) | Kind::Internal(f, n) => (f, n),
            Kind::Data(..) => unreachable!("a variable has no stub"),
        };
        // SAFETY: the trampoline passes its control block and the frame it built.
        let (thread, mut args) = unsafe { ((*ctl).thread as usize, FrameArgs::new(frame)) };
        let prev = fault::CURRENT_IMPORT.replace(index as usize);
        let ret_addr = args.return_address();
        let frame_ptr = args.frame_pointer();
        let trace = VERBOSE.load(Ordering::Relaxed);
        let shown = if trace {
            // SAFETY: as above; a second reader over the same frame.
            let mut a = unsafe { FrameArgs::new(frame) };
            let v: Vec<String> = (0..nargs).map(|_| format!("{:#x}", a.next_u64())).collect();
            v.join(", ")
        } else {
            String::new()
        };
        let mut c = Ctx {
            args: &mut args,
            thread,
            ret_addr,
            frame_ptr,
        };
        let r = func(&mut c);
        fault::CURRENT_IMPORT.set(prev);
        if trace {
            let text = fault::MODULE_TEXT[0].load(Ordering::Acquire)
                ..fault::MODULE_TEXT[1].load(Ordering::Acquire);
            let from = if text.contains(&ret_addr) {
                frame_name(ret_addr)
            } else {
                "the kernel".to_string()
            };
            eprintln!(
                "kldrun: [{}] {}({shown}) = {r:#x}  <- {from}",
                crate::kstack::thread_name(thread),
                k.name,
            );
        }
        r
    });
    match result {
        Ok(r) => r,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            eprintln!("kldrun: internal error while serving the module: {msg}");
            std::process::exit(crate::EXIT_CRASH);
        }
    }
}

/// Writes the module's stack backtrace (FreeBSD's `KDB: stack backtrace:`) from a call.
fn backtrace(c: &Ctx) -> Vec<String> {
    let mut out = Vec::new();
    if c.ret_addr == 0 {
        return out;
    }
    let slot = &crate::kstack::THREADS[c.thread];
    let lo = slot.guard_hi.load(Ordering::Acquire);
    let hi = slot.top.load(Ordering::Acquire);
    let mut ret = c.ret_addr;
    let mut fp = c.frame_ptr;
    for i in 0..32 {
        out.push(format!("#{i} {ret:#x} at {}", frame_name(ret)));
        if fp < lo || fp + 16 > hi || fp % 8 != 0 {
            break;
        }
        // SAFETY: fp lies inside this thread's kernel stack (checked just above): a saved
        // %rbp and return address as the module's frame-pointer chain left them.
        let (next, r) = unsafe { (mem::read::<u64>(fp), mem::read::<u64>(fp + 8)) };
        let text = fault::MODULE_TEXT[0].load(Ordering::Acquire)
            ..fault::MODULE_TEXT[1].load(Ordering::Acquire);
        if !text.contains(&r) || next <= fp {
            break;
        }
        ret = r;
        fp = next;
    }
    out
}

/// `sym+0xoff` for a return address into the module, the bare address otherwise. The
/// function is the one holding `a - 1` (a call to a function that does not return can be
/// the last instruction of its caller, its return address the next function's first byte).
pub fn frame_name(a: u64) -> String {
    let syms = fault::MODULE_SYMBOLS
        .get()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let i = syms.partition_point(|(s, _)| *s < a);
    match i.checked_sub(1).and_then(|i| syms.get(i)) {
        Some((s, name)) => format!("{name}+{:#x}", a - s),
        None => format!("{a:#x}"),
    }
}

/// A kernel panic raised by the module (`panic()`): see [`console::panic`].
pub fn kpanic_at(c: &Ctx, msg: &str) -> ! {
    let msg = msg.trim_end_matches('\n');
    let mut text = format!("panic: {msg}\ncpuid = 0\ntime = 1\nKDB: stack backtrace:\n");
    for l in backtrace(c) {
        text.push_str(&l);
        text.push('\n');
    }
    console::write(text.as_bytes());
    eprintln!(
        "kldrun: the kernel panicked in thread {} ({}): {}",
        crate::kstack::thread_name(c.thread),
        phase(),
        msg.replace('\n', " ")
    );
    report_stacks();
    let _ = std::io::stderr().flush();
    std::process::exit(crate::EXIT_CRASH);
}

/// A panic the emulated kernel raises on the module's behalf (a KPI contract broken).
pub fn kpanic(c: &Ctx, msg: &str) -> ! {
    kpanic_at(c, msg)
}

fn report_stacks() {
    for (name, used, _size) in threads::high_water() {
        eprintln!("kldrun: stack high-water: {name} {used} bytes");
    }
}

// --- the run ---------------------------------------------------------------------------------

/// The emulated kernel's `__FreeBSD_version` range: any 14.x.
const FREEBSD_14: std::ops::RangeInclusive<i32> = 1_400_000..=1_499_999;

fn depend(md: &Metadata) -> Result<(), String> {
    const MDT_DEPEND: i32 = 1;
    if md.kind != MDT_DEPEND {
        return Ok(());
    }
    // SAFETY: MDT_DEPEND data is a struct mod_depend { int min, pref, max; } in the image.
    let (min, _pref, max) = unsafe {
        (
            mem::read::<i32>(md.data),
            mem::read::<i32>(md.data + 4),
            mem::read::<i32>(md.data + 8),
        )
    };
    // Modules the emulated kernel provides (GENERIC: `device scbus`, `options NETLINK`; the
    // InfiniBand link layer, if_infiniband, as if its module were loaded).
    if matches!(md.cval.as_str(), "cam" | "netlink" | "if_infiniband") {
        if min > 1 || max < 1 {
            return Err(format!(
                "depends on module {} ({min}..{max}); kldrun provides version 1",
                md.cval
            ));
        }
        return Ok(());
    }
    if md.cval != "kernel" {
        return Err(format!(
            "depends on module {} ({min}..{max}), which kldrun does not provide",
            md.cval
        ));
    }
    if max < *FREEBSD_14.start() || min > *FREEBSD_14.end() {
        return Err(format!(
            "depends on kernel {min}..{max}: not a FreeBSD 14 kernel (kldrun emulates 14.x, \
             __FreeBSD_version {}..{})",
            FREEBSD_14.start(),
            FREEBSD_14.end()
        ));
    }
    Ok(())
}

/// One SYSINIT or SYSUNINIT.
#[derive(Debug, Clone, Copy)]
struct Sysinit {
    subsystem: u32,
    order: u32,
    func: u64,
    udata: u64,
}

fn sysinits(l: &Loaded, set: &str) -> Vec<Sysinit> {
    l.set_entries(set)
        .into_iter()
        .map(|p| {
            // SAFETY: set entries point to struct sysinit in the image (FreeBSD 14 layout:
            // subsystem 0, order 4, STAILQ link 8, func 16, udata 24).
            unsafe {
                Sysinit {
                    subsystem: mem::read(p),
                    order: mem::read(p + 4),
                    func: mem::read(p + 16),
                    udata: mem::read(p + 24),
                }
            }
        })
        .collect()
}

/// Prints a `-v` trace line.
pub fn verbose(msg: impl FnOnce() -> String) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("kldrun: {}", msg());
    }
}

fn read_file(p: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// For `--workload bench`: this thread, and so every thread created after it (the module's
/// kernel threads, the requester), under Linux's `SCHED_BATCH` (sched(7)): a thread woken by
/// another does not preempt it. Each emulated kernel thread is a host thread and each
/// `wakeup`, `mtx_unlock` or `xpt_done` that finds a sleeper a futex wake-up; with wake-up
/// preemption the woken thread displaces the waker (on a busy CPU), often only to block at
/// once on the mutex the waker still holds (a `wakeup` under the interlock), which costs two
/// more switches per hand-off. FreeBSD's ULE preempts on a wake-up only for priorities up to
/// `preempt_thresh` (`PRI_MIN_KERN` by default: interrupt threads; sys/kern/sched_ule.c),
/// not for kernel threads of the module's kind. Fair shares of the CPU are unchanged.
/// Failing to set it is reported and otherwise ignored.
fn batch_scheduling() {
    // SAFETY: sched_setscheduler(0, ...) on the calling thread with a valid sched_param.
    let rc = unsafe {
        let p = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_BATCH, &p)
    };
    if rc != 0 {
        eprintln!(
            "kldrun: bench: SCHED_BATCH not set ({}): kldrun's CPU per I/O includes wake-up \
             preemption",
            std::io::Error::last_os_error()
        );
    }
}

fn watchdog(seconds: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(seconds));
        let _ = std::io::stdout().flush();
        eprintln!(
            "kldrun: timeout: the run did not finish within {seconds} s (the kernel was in {})",
            phase()
        );
        report_stacks();
        let _ = std::io::stderr().flush();
        // SAFETY: _exit ends the process at once, whatever the other threads do.
        unsafe { libc::_exit(crate::EXIT_CRASH) };
    });
}

/// Sets up the machine from the configuration (kenv, preloaded files, physical memory).
/// `Err` is a usage error (exit 2).
fn machine(cfg: &Config) -> Result<(), String> {
    for (n, v) in &cfg.tunables {
        kenv::set(n, v).map_err(|e| format!("--tunable {e}"))?;
    }
    for (ty, file) in &cfg.preloads {
        preload::add(&file.display().to_string(), ty, &read_file(file)?);
    }
    pmap::init().map_err(|e| format!("physical memory: {e}"))?;
    for (pa, file) in &cfg.phys {
        pmap::place(*pa, &read_file(file)?).map_err(|e| format!("--phys {e}"))?;
    }
    if let Some(n) = cfg.fail_malloc {
        malloc::fail_at(n);
    }
    if let Some(n) = cfg.fail_oid {
        sysctl::fail_add_at(n);
    }
    Ok(())
}

/// Runs the whole life of the module and returns kldrun's exit status.
pub fn run(cfg: &Config) -> i32 {
    VERBOSE.store(cfg.verbose, Ordering::Relaxed);
    if matches!(cfg.workload, Some(crate::cli::Workload::Bench { .. })) {
        batch_scheduling();
    }
    let file = cfg.ko.file_name().map_or_else(
        || cfg.ko.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let bytes = match read_file(&cfg.ko) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("kldrun: {e}");
            return crate::EXIT_USAGE;
        }
    };
    if let Err(e) = machine(cfg) {
        eprintln!("kldrun: {e}");
        return crate::EXIT_USAGE;
    }
    if let Err(e) = fault::install().and_then(|()| init()) {
        eprintln!("kldrun: cannot set up: {e}");
        return crate::EXIT_CRASH;
    }
    if let Some(h) = &cfg.hca {
        if let Err(e) = pci::init(h) {
            eprintln!("kldrun: --hca: {e}");
            return crate::EXIT_CRASH;
        }
    }
    watchdog(cfg.timeout);

    // kldload: link.
    set_phase("linking");
    let loaded = match linker::load(&bytes, &|n| symbol(n), &depend) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kldrun: {file}: {e}");
            return match e {
                LinkError::Map(_) => crate::EXIT_CRASH,
                _ => crate::EXIT_LINK,
            };
        }
    };
    fault::MODULE_TEXT[0].store(loaded.text.0, Ordering::Release);
    fault::MODULE_TEXT[1].store(loaded.text.1, Ordering::Release);
    let _ = fault::MODULE_SYMBOLS.set(loaded.funcs.clone());
    verbose(|| {
        let secs: Vec<String> = loaded
            .sections
            .iter()
            .map(|s| format!("{} {:#x}+{:#x}", s.name, s.addr, s.size))
            .collect();
        format!(
            "{file}: linked at {:#x}: {}; {} kernel symbols used: {}",
            loaded.base,
            secs.join(", "),
            loaded.imports.len(),
            loaded.imports.join(" ")
        )
    });
    let modevent = match threads::create("modevent", KSTACK_SIZE) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("kldrun: cannot make a kernel stack: {e}");
            return crate::EXIT_CRASH;
        }
    };

    // linker_file_register_modules, then the sysctls (disabled), then the SYSINITs.
    const MDT_MODULE: i32 = 2;
    let mut names = Vec::new();
    for md in loaded.metadata.iter().filter(|m| m.kind == MDT_MODULE) {
        match module::register(md.data) {
            Ok(n) => names.push(n),
            Err(e) => {
                eprintln!("kldrun: {file}: module_register: {e}");
                return crate::EXIT_LINK;
            }
        }
    }
    let static_oids = loaded.set_entries("sysctl_set");
    sysctl::register_static_disabled(&static_oids);
    for &ctor in &loaded.ctors {
        set_phase("constructors");
        // SAFETY: a constructor of the kld: void (*)(void).
        unsafe { threads::call(modevent, ctor, &[]) };
    }
    let mut inits = sysinits(&loaded, "sysinit_set");
    inits.sort_by_key(|s| (s.subsystem, s.order));
    for s in &inits {
        set_phase("SYSINIT");
        verbose(|| {
            format!(
                "SYSINIT {:#x}/{:#x} {}({:#x})",
                s.subsystem,
                s.order,
                symbol_name(s.func),
                s.udata
            )
        });
        // SAFETY: a SYSINIT function of the kld (or a kernel stub): void (*)(const void *).
        unsafe { threads::call(modevent, s.func, &[s.udata]) };
    }

    let mut status = crate::EXIT_OK;
    let any_loaded = module::modules().iter().any(|m| m.loaded);
    let hold = if !names.is_empty() && !any_loaded {
        // Every module of the file failed: linker_load_file unloads it, kldload says ENOEXEC.
        eprintln!(
            "kldrun: {file}: MOD_LOAD failed; the kernel linker unloads the file (kldload: \
             Exec format error)"
        );
        status = crate::EXIT_MODULE;
        for p in &cfg.sysctls {
            eprintln!("sysctl: unknown oid '{p}'");
        }
        None
    } else {
        sysctl::enable_static(&static_oids);
        verbose(|| format!("{file}: loaded; modules: {}", names.join(", ")));
        if cfg.mountroot || cfg.workload.is_some() {
            status = status.max(mountroot(cfg));
        }
        let hold = cfg.hold_oid.as_ref().map(|node| {
            sysctl::add_foreign(node, "kldrun_hold").unwrap_or_else(|e| {
                eprintln!("kldrun: --hold-oid: {e}");
                0
            })
        });
        if hold == Some(0) {
            status = crate::EXIT_USAGE;
        }
        // sysctl(8), on a thread of its own (the reading process's).
        if !cfg.sysctls.is_empty() {
            set_phase("sysctl");
            let t = match threads::create("sysctl", KSTACK_SIZE) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("kldrun: cannot make a kernel stack: {e}");
                    return crate::EXIT_CRASH;
                }
            };
            for p in &cfg.sysctls {
                match sysctl::sysctl8(t, p) {
                    Ok((lines, errors)) => {
                        let mut out = std::io::stdout().lock();
                        for l in lines {
                            let _ = writeln!(out, "{l}");
                        }
                        let _ = out.flush();
                        for e in errors {
                            eprintln!("sysctl: {e}");
                            status = status.max(crate::EXIT_MODULE);
                        }
                    }
                    Err(e) => {
                        eprintln!("sysctl: {e}");
                        status = status.max(crate::EXIT_MODULE);
                    }
                }
            }
        }

        if cfg.wait_stdin {
            set_phase("loaded (--wait-stdin)");
            eprintln!("kldrun: {file}: loaded; unloading at the end of stdin");
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        }

        // Shutdown, then kldunload: MOD_QUIESCE and MOD_UNLOAD, newest module first.
        let mut mods: Vec<module::Module> =
            module::modules().into_iter().filter(|m| m.loaded).collect();
        mods.reverse();
        for m in &mods {
            let e = module::event(modevent, m, module::MOD_SHUTDOWN);
            verbose(|| format!("{}: MOD_SHUTDOWN = {e}", m.name));
        }
        for m in &mods {
            let mut e = module::event(modevent, m, module::MOD_QUIESCE);
            verbose(|| format!("{}: MOD_QUIESCE = {e}", m.name));
            if e == 22 || e == 45 {
                e = 0; // EINVAL / EOPNOTSUPP: the module does not care
            }
            if e == 0 {
                e = module::event(modevent, m, module::MOD_UNLOAD);
                verbose(|| format!("{}: MOD_UNLOAD = {e}", m.name));
            }
            if e != 0 {
                eprintln!(
                    "kldrun: {file}: module {} refuses to unload (error {e}); it stays loaded",
                    m.name
                );
                report_stacks();
                return crate::EXIT_MODULE;
            }
            module::release(&m.name);
        }
        hold
    };

    // linker_file_unload: the sysctls, the SYSUNINITs (in reverse order), the image.
    set_phase("SYSUNINIT");
    sysctl::unregister_static(&static_oids);
    let mut uninits = sysinits(&loaded, "sysuninit_set");
    uninits.sort_by_key(|s| std::cmp::Reverse((s.subsystem, s.order)));
    for s in &uninits {
        verbose(|| {
            format!(
                "SYSUNINIT {:#x}/{:#x} {}({:#x})",
                s.subsystem,
                s.order,
                symbol_name(s.func),
                s.udata
            )
        });
        // SAFETY: a SYSUNINIT function of the kld (or a kernel stub).
        unsafe { threads::call(modevent, s.func, &[s.udata]) };
    }
    for &dtor in &loaded.dtors {
        // SAFETY: a destructor of the kld: void (*)(void).
        unsafe { threads::call(modevent, dtor, &[]) };
    }
    if let Some(h) = hold.filter(|&h| h != 0) {
        sysctl::remove_foreign(h);
    }
    linker::unload(&loaded);
    fault::MODULE_TEXT[0].store(0, Ordering::Release);
    fault::MODULE_TEXT[1].store(0, Ordering::Release);
    set_phase("leak check");

    // What is left.
    let sym = |a: u64| -> String {
        if a > loaded.text.0 && a <= loaded.text.1 {
            frame_name(a)
        } else {
            "the kernel".to_string()
        }
    };
    let (mut leaks, corrupt) = malloc::leaks(&sym);
    leaks.extend(sysctl::leaks(&sym));
    leaks.extend(pmap::leaks(&sym));
    leaks.extend(kenv::leaks());
    leaks.extend(mutex::leaks(&sym));
    let running = kthread::join_all(std::time::Duration::from_secs(5));
    leaks.extend(cam::finish());
    leaks.extend(kthread::leaks());
    if !running.is_empty() {
        leaks.push(format!("kthread: still running: {}", running.join(", ")));
    }
    leaks.extend(socket::leaks());
    leaks.extend(ifnet::leaks(&sym));
    leaks.extend(pci::leaks(&sym));
    if let Some(line) = pci::summary() {
        eprintln!("{line}");
    }
    pci::stop();
    for l in &leaks {
        eprintln!("kldrun: leak: {l}");
    }
    for c in &corrupt {
        eprintln!("kldrun: {c}");
    }
    if leaks.is_empty() && corrupt.is_empty() {
        let (mallocs, _) = malloc::counts();
        eprintln!(
            "kldrun: leak check: clean ({mallocs} mallocs, {} oids, {} mappings, {} kenv \
             strings, {} kernel threads exited, {} sockets closed, {} root holds released, {} \
             interfaces and {} mbufs freed: all released)",
            sysctl::oids_added(),
            pmap::mappings_made(),
            kenv::copies_made(),
            kthread::counts().1,
            socket::created(),
            kthread::holds_taken(),
            ifnet::counts().0,
            ifnet::counts().1,
        );
    }
    report_stacks();
    if !corrupt.is_empty() {
        return crate::EXIT_CRASH;
    }
    if !leaks.is_empty() {
        status = status.max(crate::EXIT_LEAK);
    }
    status
}

/// The mountroot phase and the workloads: vfs_mountroot's wait for the root holds, then root
/// "mounted" from da0 (read through the SIM), then `--workload`. kldrun's exit status so far.
fn mountroot(cfg: &Config) -> i32 {
    set_phase("mountroot");
    let limit = std::time::Duration::from_secs(cfg.timeout);
    if !kthread::mountroot_wait(limit) {
        eprintln!("kldrun: mountroot: the root holds were never released");
        return crate::EXIT_MODULE;
    }
    let Some((bs, blocks)) = cam::disk() else {
        console::write(b"mountroot: no disk: da0 did not attach\n");
        eprintln!("kldrun: mountroot: no disk (no da0)");
        return crate::EXIT_MODULE;
    };
    let mut status = crate::EXIT_OK;
    cam::provider_open(1);
    if cfg.mountroot {
        match isboot_tests::rootfs::mountroot_blocks(&mut cam::read, bs) {
            Ok(m) => {
                let line = format!(
                    "mountroot: da0p{} ufs2 / = {}\n",
                    m.partition,
                    m.entries.join(",")
                );
                let _ = std::io::stdout().write_all(line.as_bytes());
                let _ = std::io::stdout().flush();
            }
            Err(e) => {
                eprintln!("kldrun: mountroot: da0: {e}");
                status = crate::EXIT_MODULE;
            }
        }
    }
    if cfg.workload.is_some() && cfg.hca.is_some() {
        pci::start_faults();
    }
    match cfg.workload {
        Some(crate::cli::Workload::Verify(bytes)) => {
            status = status.max(verify(bs, blocks, bytes));
        }
        Some(crate::cli::Workload::Bench {
            random,
            write,
            bs: io,
            qd,
            seconds,
        }) => {
            let spec = BenchSpec {
                random,
                write,
                io,
                qd,
                seconds,
            };
            status = status.max(bench(bs, blocks, spec));
        }
        None => {}
    }
    cam::provider_open(-1);
    status
}

/// `--workload verify:BYTES`: a pattern written over the last BYTES (whole blocks) of da0 in
/// chunks of up to 64 KiB, read back and compared.
fn verify(bs: u32, blocks: u64, bytes: u64) -> i32 {
    let bs64 = u64::from(bs);
    let n = bytes.div_ceil(bs64).min(blocks);
    let first = blocks - n;
    let chunk = (65536 / bs64).max(1);
    let pattern = |lba: u64, len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| {
                let off = lba * bs64 + i as u64;
                (off.wrapping_mul(2_654_435_761) >> 7) as u8 ^ (off >> 9) as u8
            })
            .collect()
    };
    // The longest wait for one I/O: how long the disk paused (a reconnect, a port move).
    let mut max_gap = std::time::Duration::ZERO;
    let mut timed = |f: &mut dyn FnMut() -> Result<Vec<u8>, String>| {
        let t = std::time::Instant::now();
        let r = f();
        max_gap = max_gap.max(t.elapsed());
        r
    };
    let mut lba = first;
    while lba < blocks {
        let k = chunk.min(blocks - lba);
        let data = pattern(lba, (k * bs64) as usize);
        if let Err(e) = timed(&mut || cam::write(lba, &data).map(|()| Vec::new())) {
            eprintln!("kldrun: verify: {e}");
            return crate::EXIT_MODULE;
        }
        lba += k;
    }
    let mut mismatches = 0u64;
    let mut lba = first;
    while lba < blocks {
        let k = chunk.min(blocks - lba);
        match timed(&mut || cam::read(lba, k as u32)) {
            Ok(d) => {
                let want = pattern(lba, d.len());
                mismatches += d.iter().zip(&want).filter(|(a, b)| a != b).count() as u64;
            }
            Err(e) => {
                eprintln!("kldrun: verify: {e}");
                return crate::EXIT_MODULE;
            }
        }
        lba += k;
    }
    let line = format!(
        "verify: {} bytes, {mismatches} mismatches, max_io_gap_ms={}\n",
        n * bs64,
        max_gap.as_millis()
    );
    let _ = std::io::stdout().write_all(line.as_bytes());
    let _ = std::io::stdout().flush();
    if mismatches == 0 {
        crate::EXIT_OK
    } else {
        crate::EXIT_MODULE
    }
}

/// CPU time (user + system) of the whole process so far, in microseconds.
fn cpu_us() -> u64 {
    // SAFETY: getrusage into a zeroed struct of ours.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// What `--workload bench` runs.
#[derive(Debug, Clone, Copy)]
struct BenchSpec {
    random: bool,
    write: bool,
    io: u32,
    qd: u32,
    seconds: u64,
}

/// `--workload bench`: one requester (kernel thread `g_down`) keeping `qd` READ(16) (or
/// WRITE(16)) CCBs of `io` bytes in flight, as da(4) does (`cam::Pipeline`: each finished CCB
/// is sent again at once, the thread parks only while none has finished), at random (xorshift
/// per slot, `io`-aligned) or sequential (each slot its own stripe, wrapping) offsets, for
/// `seconds`. Each slot reuses one CCB and one data buffer. Prints one `key=value` line: with
/// the CPU of the whole process per I/O, the module's malloc(9) calls during the run
/// (`mallocs`), the high-water mark of the bytes it held (`mem_hwm`), the most CCBs that
/// were at the SIM at once (`max_in_flight`), and the module's TCP receives per I/O
/// (`receives_per_io`) with how many of them waited for a low-water mark (`lowat_waits`).
fn bench(bs: u32, blocks: u64, b: BenchSpec) -> i32 {
    let BenchSpec {
        random,
        write,
        io,
        qd,
        seconds,
    } = b;
    if io % bs != 0 || u64::from(io / bs) > blocks {
        eprintln!("kldrun: bench: {io}-byte I/Os do not fit {bs}-byte blocks of da0");
        return crate::EXIT_USAGE;
    }
    let per = u64::from(io / bs);
    let slots = blocks / per;
    let depth = qd as usize;
    let mut p = match cam::Pipeline::new(cam::io_thread(), depth, io as usize) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kldrun: bench: {e}");
            return crate::EXIT_MODULE;
        }
    };
    // Per slot: the xorshift state (random) or the last stripe position (sequential).
    let mut at: Vec<u64> = (0..qd)
        .map(|w| {
            if random {
                0x9e37_79b9_7f4a_7c15u64 ^ u64::from(w + 1)
            } else {
                slots * u64::from(w) / u64::from(qd)
            }
        })
        .collect();
    let mut next = |s: usize| -> u64 {
        let x = &mut at[s];
        if random {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *x % slots
        } else {
            *x = (*x + 1) % slots;
            *x
        }
    };
    if write {
        for s in 0..depth {
            p.data_mut(s).fill(0xa5 ^ s as u8);
        }
    }
    let mut done = Vec::with_capacity(depth);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    malloc::reset_high_water();
    let (mallocs0, _) = malloc::counts();
    let (rx0, lowat0) = socket::receive_counts();
    let cpu0 = cpu_us();
    let t0 = std::time::Instant::now();
    let run = (|| -> Result<u64, String> {
        let mut ios = 0u64;
        for s in 0..depth {
            p.start(s, write, next(s) * per, io / bs)?;
        }
        while p.outstanding() > 0 {
            p.wait(&mut done)?;
            ios += done.len() as u64;
            if std::time::Instant::now() < end {
                for &s in &done {
                    p.start(s, write, next(s) * per, io / bs)?;
                }
            }
        }
        Ok(ios)
    })();
    let ios = match run {
        Ok(n) => n,
        Err(e) => {
            eprintln!("kldrun: bench: {e}");
            return crate::EXIT_MODULE;
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_us().saturating_sub(cpu0);
    let mallocs = malloc::counts().0 - mallocs0;
    let (_, hwm) = malloc::memory();
    let (rx, lowat) = socket::receive_counts();
    let line = format!(
        "bench: mode={}{} bs={io} qd={qd} seconds={secs:.2} ios={ios} iops={:.0} mib_s={:.2} \
         cpu_us_per_io={:.1} mallocs={mallocs} mallocs_per_io={:.2} mem_hwm={hwm} \
         max_in_flight={} receives_per_io={:.2} lowat_waits={}\n",
        if random { "rand" } else { "seq" },
        if write { "write" } else { "" },
        ios as f64 / secs,
        ios as f64 * f64::from(io) / secs / (1024.0 * 1024.0),
        cpu as f64 / ios.max(1) as f64,
        mallocs as f64 / ios.max(1) as f64,
        p.max_in_flight(),
        (rx - rx0) as f64 / ios.max(1) as f64,
        lowat - lowat0,
    );
    let _ = std::io::stdout().write_all(line.as_bytes());
    let _ = std::io::stdout().flush();
    if ios == 0 {
        crate::EXIT_MODULE
    } else {
        crate::EXIT_OK
    }
}

fn symbol_name(a: u64) -> String {
    let syms = SYMBOLS.get();
    if let Some(s) = syms {
        if let Some((n, _)) = s.addr.iter().find(|(_, &v)| v == a) {
            return (*n).to_string();
        }
    }
    symbolize(a)
}
