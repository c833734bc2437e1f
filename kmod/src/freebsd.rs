//! The FreeBSD platform and the module's C entry point.
//!
//! `isboot_modevent` is what the shim's `DECLARE_MODULE` calls. It converts the raw event at
//! once and runs the safe flow; every outcome is an errno and a console line, never a panic.
//!
//! Module events are serialised by the kernel (the kld lock), so the loaded state lives behind
//! an `AtomicPtr` swapped only from here.

use crate::flow::{self, LoadError};
use crate::platform::{Platform, PublishError};
use crate::tree::{Parent, Step, SysctlTree, Value};
const _: () = assert!(crate::tree::ROOTS.len() == 2); // Root(0) hw.ibft, Root(1) net.isboot
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::OnceCell;
use core::ffi::{c_int, c_void, CStr};
use core::fmt;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use ibft::locate::{MemoryFault, PhysMemory};
use kernel_bindings::abi::{
    Module, EINVAL, ENOMEM, EOPNOTSUPP, MOD_LOAD, MOD_QUIESCE, MOD_SHUTDOWN, MOD_UNLOAD,
};
use kernel_bindings::console::{print_line, LOGGER};
use kernel_bindings::phys::PhysWindow;
use kernel_bindings::sysctl::{Node, SysctlContext, SysctlError};
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
        Ok(_report) => {
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

fn mod_unload() -> c_int {
    let old = STATE.swap(ptr::null_mut(), Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: as in `mod_load`: the pointer came from Box::into_raw and only STATE held it.
        let mut platform = unsafe { Box::from_raw(old) };
        flow::unload(&mut *platform);
    }
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
        // Nothing runs in the background yet: shutdown and quiesce have nothing to stop.
        MOD_SHUTDOWN | MOD_QUIESCE => 0,
        _ => EOPNOTSUPP,
    }
}
