//! The FreeBSD platform and the module's C entry point.
//!
//! `isboot_modevent` is what the shim's `DECLARE_MODULE` calls. It converts the raw event at
//! once and runs the safe flow; every outcome is an errno and a console line, never a panic.
//!
//! Module events are serialised by the kernel (the kld lock), so the loaded state lives behind
//! an `AtomicPtr` swapped only from here.
//!
//! `MOD_LOAD` returns at once: after the iBFT flow found a valid table that names a boot
//! target, it takes the root-mount hold and starts the boot thread ([`crate::freebsd_boot`]).
//! `MOD_QUIESCE` and `MOD_UNLOAD` refuse with `EBUSY` while the disk is open (its GEOM
//! provider's access counts: a mounted root); otherwise `MOD_UNLOAD` asks the thread to log
//! out, waits for it (30 s at most, else `EBUSY`), and takes the CAM bus away.
//! `MOD_SHUTDOWN` (after the final sync) has the thread log out (10 s at most).

use crate::flow::{self, LoadError};
use crate::platform::{Platform, PublishError};
use crate::tree::{Parent, Step, SysctlTree, Value};
const _: () = assert!(crate::tree::ROOTS.len() == 2); // Root(0) hw.ibft, Root(1) net.isboot
use crate::boot::{BootPlan, BootTunables};
use crate::freebsd_boot::{self, SharedState, STATE_OIDS, TIMING_OIDS};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::OnceCell;
use core::ffi::{c_int, c_void, CStr};
use core::fmt;
use core::pin::Pin;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use ibft::locate::{MemoryFault, PhysMemory};
use ibft::Ibft;
use iscsi_initiator::time::Duration;
use kernel_bindings::abi::{
    Module, EBUSY, EINVAL, ENOMEM, EOPNOTSUPP, MOD_LOAD, MOD_QUIESCE, MOD_SHUTDOWN, MOD_UNLOAD,
};
use kernel_bindings::console::{print_line, LOGGER};
use kernel_bindings::ffi;
use kernel_bindings::phys::PhysWindow;
use kernel_bindings::sync::Mutex;
use kernel_bindings::sysctl::{Node, ProcKind, SysctlContext, SysctlError};
use kernel_bindings::{preload, tunable};

/// The first MiB, mapped once on first use: the EBDA pointer, the EBDA, and the BIOS areas the
/// RSDP and low-memory searches read (the C isboot maps the same range).
const LOW_WINDOW: (u64, usize) = (0, 0x10_0000);

/// Physical memory through pmap_mapbios(9).
#[derive(Debug, Default)]
pub struct KernelMemory {
    low: OnceCell<Option<PhysWindow>>,
}

impl PhysMemory for KernelMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryFault> {
        let fault = MemoryFault {
            addr,
            len: buf.len(),
        };
        let low = self
            .low
            .get_or_init(|| PhysWindow::map(LOW_WINDOW.0, LOW_WINDOW.1));
        if let Some(w) = low {
            if w.read(addr, buf) {
                return Ok(());
            }
        }
        // Elsewhere (ACPI tables): map just this range for the copy.
        let w = PhysWindow::map(addr, buf.len()).ok_or(fault)?;
        if w.read(addr, buf) {
            Ok(())
        } else {
            Err(fault)
        }
    }
}

/// The FreeBSD kernel as a [`Platform`].
#[derive(Debug, Default)]
pub struct FreeBsd {
    memory: KernelMemory,
    sysctl: Option<SysctlContext>,
    /// The boot thread's shared state, while a thread was started (from `Box::into_raw` of
    /// the pinned box; freed at unload once the thread is gone and the oids removed).
    boot: Option<*mut Mutex<SharedState>>,
}

/// How long MOD_UNLOAD waits for the boot thread to log out and return.
const UNLOAD_WAIT: Duration = Duration::from_secs(30);
/// How long MOD_SHUTDOWN waits for it.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

impl FreeBsd {
    fn shared(&self) -> Option<Pin<&Mutex<SharedState>>> {
        // SAFETY: a pointer from Box::into_raw of a pinned box, freed only in `free_boot`
        // (which takes `self.boot` first): valid and never moved while `self.boot` holds it.
        self.boot.map(|p| unsafe { Pin::new_unchecked(&*p) })
    }

    /// Takes the root-mount hold and starts the boot thread on `table`, unless the table
    /// names nothing this module can boot from (then it says why and idles).
    fn start_boot(&mut self, table: Ibft, tunables: BootTunables) -> Result<(), c_int> {
        if let Err(e) = BootPlan::from_table(&table) {
            print_line(format_args!(
                "isboot: not booting from this iBFT: {e}; the module stays idle"
            ));
            return Ok(());
        }
        // SAFETY: a static NUL-terminated identifier (the kernel keeps the pointer).
        let hold = unsafe { ffi::root_mount_hold(c"isboot".as_ptr()) };
        let shared = freebsd_boot::new_shared(hold);
        // SAFETY: the box is turned into a raw pointer and never moved; `Pin` is restored
        // in `shared()`/`free_boot`.
        let raw = Box::into_raw(unsafe { Pin::into_inner_unchecked(shared) });
        self.boot = Some(raw);
        if let Some(ctx) = self.sysctl.as_mut() {
            for (name, arg2, descr) in STATE_OIDS {
                let kind = if name == "reconnects" {
                    ProcKind::Uint
                } else {
                    ProcKind::String
                };
                // SAFETY: `state_sysctl` takes arg1 as the Mutex<SharedState> at `raw`,
                // which is freed only after this context is dropped (`free_boot`).
                let r = unsafe {
                    ctx.add_proc(
                        Node::NetIsboot,
                        name,
                        kind,
                        freebsd_boot::state_sysctl,
                        raw.cast(),
                        arg2,
                        descr,
                    )
                };
                if let Err(e) = r {
                    log::warn!("net.isboot.{name}: {e}");
                }
            }
            match ctx.add_node(
                Node::NetIsboot,
                "timing",
                "ms from the boot thread's start to each boot stage",
            ) {
                Ok(node) => {
                    for (name, arg2, descr) in TIMING_OIDS {
                        // SAFETY: as above.
                        let r = unsafe {
                            ctx.add_proc(
                                node,
                                name,
                                ProcKind::Int,
                                freebsd_boot::state_sysctl,
                                raw.cast(),
                                arg2,
                                descr,
                            )
                        };
                        if let Err(e) = r {
                            log::warn!("net.isboot.timing.{name}: {e}");
                        }
                    }
                }
                Err(e) => log::warn!("net.isboot.timing: {e}"),
            }
        }
        // SAFETY: as in `shared()`; the state outlives the thread (unload waits for it).
        let pinned: Pin<&'static Mutex<SharedState>> = unsafe { Pin::new_unchecked(&*raw) };
        match freebsd_boot::spawn(pinned, table, tunables) {
            Ok(()) => Ok(()),
            Err(freebsd_boot::SpawnError(e)) => {
                print_line(format_args!(
                    "isboot: cannot start the boot thread: {}",
                    freebsd_boot::errno_name(e)
                ));
                freebsd_boot::release_hold(pinned);
                self.free_boot();
                Err(e)
            }
        }
    }

    /// Removes the oids and frees the shared state (the thread is gone or never ran).
    fn free_boot(&mut self) {
        self.sysctl = None;
        if let Some(raw) = self.boot.take() {
            // SAFETY: from Box::into_raw in `start_boot`; no oid and no thread uses it now.
            drop(unsafe { Box::from_raw(raw) });
        }
    }
}

impl Platform for FreeBsd {
    type Memory = KernelMemory;

    fn tunable(&self, name: &CStr) -> Option<i64> {
        tunable::fetch_quad(name)
    }

    fn bootverbose(&self) -> bool {
        kernel_bindings::console::bootverbose()
    }

    fn set_debug_level(&mut self, debug: u32) {
        LOGGER.install(debug);
    }

    fn preloaded(&self, file_type: &CStr) -> Option<&[u8]> {
        preload::preloaded_file(file_type)
    }

    fn memory(&self) -> &KernelMemory {
        &self.memory
    }

    fn console(&self, line: fmt::Arguments<'_>) {
        print_line(line);
    }

    fn publish(&mut self, tree: &SysctlTree) -> Result<(), PublishError> {
        // Drop anything published before (not expected: one publish per load).
        self.sysctl = None;
        let mut ctx = SysctlContext::new();
        let result = publish_into(&mut ctx, tree);
        // On failure the partial tree goes away with `ctx`.
        result.map(|()| self.sysctl = Some(ctx))
    }

    fn unpublish(&mut self) {
        self.sysctl = None;
    }
}

fn publish_into(ctx: &mut SysctlContext, tree: &SysctlTree) -> Result<(), PublishError> {
    let map = |e: SysctlError| match e {
        SysctlError::AddFailed | SysctlError::InteriorNul | SysctlError::UnknownParent => {
            PublishError::Name
        }
    };
    let plan = tree.plan().map_err(|_| PublishError::Name)?;
    let mut nodes: Vec<Node> = Vec::new();
    for step in plan {
        let node = |p: Parent| -> Result<Node, PublishError> {
            match p {
                Parent::Root(0) => Ok(Node::HwIbft),
                Parent::Root(_) => Ok(Node::NetIsboot),
                Parent::Node(i) => nodes.get(i).copied().ok_or(PublishError::Name),
            }
        };
        match step {
            Step::Node { parent, name } => {
                let n = ctx.add_node(node(parent)?, name, "").map_err(map)?;
                nodes.push(n);
            }
            Step::Leaf { parent, name, oid } => {
                let parent = node(parent)?;
                match &oid.value {
                    Value::Str(s) => ctx.add_string(parent, name, s, oid.descr),
                    Value::Uint(v) => ctx.add_uint(parent, name, *v, oid.tunable, oid.descr),
                    Value::U64(v) => ctx.add_u64(parent, name, *v, oid.descr),
                }
                .map_err(map)?;
            }
        }
    }
    Ok(())
}

static STATE: AtomicPtr<FreeBsd> = AtomicPtr::new(ptr::null_mut());

fn errno(e: &LoadError) -> c_int {
    match e {
        LoadError::InvalidTable { .. } => EINVAL,
        LoadError::Publish(PublishError::NoMemory) => ENOMEM,
        LoadError::Publish(PublishError::Name) => EINVAL,
    }
}

fn mod_load() -> c_int {
    let mut platform = Box::new(FreeBsd::default());
    match flow::load(&mut *platform) {
        Ok(report) => {
            if let Some(found) = report.found {
                if let Err(e) = platform.start_boot(found.table, report.tunables.boot) {
                    flow::unload(&mut *platform);
                    return e;
                }
            }
            crate::freebsd_ifnet::loopback_load();
            let old = STATE.swap(Box::into_raw(platform), Ordering::AcqRel);
            if !old.is_null() {
                // SAFETY: a non-null STATE is always a pointer from Box::into_raw, owned by
                // STATE alone (module events are serialised).
                drop(unsafe { Box::from_raw(old) });
            }
            0
        }
        Err(e) => {
            // An invalid table has had its one line from the flow; anything else is said
            // here. The platform (and any oid) goes away with `platform`.
            if !matches!(e, LoadError::InvalidTable { .. }) {
                log::error!("load failed: {e}");
            }
            errno(&e)
        }
    }
}

/// EBUSY while the disk is open (its GEOM provider has a reader, writer or exclusive user:
/// a mounted file system); says so.
fn disk_busy(p: &FreeBsd) -> bool {
    let Some(shared) = p.shared() else {
        return false;
    };
    let opens = freebsd_boot::disk_opens(shared);
    if opens > 0 {
        let dev = shared.lock().boot.device.clone();
        print_line(format_args!(
            "isboot: {dev} is open ({opens} users); not unloading the module that serves it"
        ));
    }
    opens > 0
}

fn with_platform<R>(f: impl FnOnce(&mut FreeBsd) -> R) -> Option<R> {
    let p = STATE.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null STATE is a live Box (see `mod_load`); module events are serialised,
    // so no other reference to it exists during the event.
    Some(f(unsafe { &mut *p }))
}

fn mod_quiesce() -> c_int {
    with_platform(|p| if disk_busy(p) { EBUSY } else { 0 }).unwrap_or(0)
}

fn mod_unload() -> c_int {
    let refused = with_platform(|p| {
        let Some(shared) = p.shared() else {
            return 0;
        };
        if disk_busy(p) {
            return EBUSY;
        }
        shared.lock().stop = true;
        if !freebsd_boot::wait_exited(shared, UNLOAD_WAIT) {
            print_line(format_args!(
                "isboot: the boot thread did not stop within {} s; not unloading",
                UNLOAD_WAIT.as_secs()
            ));
            return EBUSY;
        }
        // The thread is gone: take the bus away (and the disk with it), release a hold a
        // failed boot may not have reached.
        // SAFETY: no thread serves the SIM any more.
        unsafe { kernel_bindings::ffi::shim::isboot_cam_deregister() };
        freebsd_boot::release_hold(shared);
        // Then the module's own IPoIB interface: its detach shuts the link down (leaving the
        // broadcast group) and closes the HCA.
        if let Some(h) = freebsd_boot::take_native_if(shared) {
            if let Err((h, e)) = crate::freebsd_ifnet::detach(h) {
                print_line(format_args!("isboot: {}: {e}; not unloading", h.name()));
                freebsd_boot::keep_native_if(shared, h);
                return EBUSY;
            }
        }
        0
    })
    .unwrap_or(0);
    if refused != 0 {
        return refused;
    }
    let busy = crate::freebsd_ifnet::loopback_unload();
    if busy != 0 {
        return busy;
    }
    let old = STATE.swap(ptr::null_mut(), Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: as in `mod_load`: the pointer came from Box::into_raw and only STATE held it.
        let mut platform = unsafe { Box::from_raw(old) };
        flow::unload(&mut *platform);
        platform.free_boot();
    }
    0
}

/// After the final sync (shutdown_post_sync): the thread logs out of the target.
fn mod_shutdown() -> c_int {
    with_platform(|p| {
        if let Some(shared) = p.shared() {
            shared.lock().stop = true;
            if !freebsd_boot::wait_exited(shared, SHUTDOWN_WAIT) {
                print_line(format_args!(
                    "isboot: the boot thread did not log out within {} s",
                    SHUTDOWN_WAIT.as_secs()
                ));
            }
        }
    });
    0
}

/// The module event handler (`modeventhand_t`), called by the kernel through the shim's
/// `moduledata_t`:
///
/// ```c
/// int isboot_modevent(module_t mod, int what, void *arg);
/// ```
///
/// # Safety
/// Called by the kernel only, from a sleepable context, with events serialised.
#[no_mangle]
pub unsafe extern "C" fn isboot_modevent(
    _mod: *mut Module,
    what: c_int,
    _arg: *mut c_void,
) -> c_int {
    match what {
        MOD_LOAD => mod_load(),
        MOD_UNLOAD => mod_unload(),
        MOD_QUIESCE => mod_quiesce(),
        MOD_SHUTDOWN => mod_shutdown(),
        _ => EOPNOTSUPP,
    }
}
