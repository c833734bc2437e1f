//! Dynamic read-only sysctl(9) oids under the module's static roots `hw.ibft` and `net.isboot`.
//!
//! A [`SysctlContext`] owns a `struct sysctl_ctx_list` and every byte its oids point at (names,
//! descriptions, values): dropping it removes the oids first (`sysctl_ctx_free`) and only then
//! frees the storage. If the kernel refuses to remove them (an oid is busy), the storage is
//! leaked rather than freed under a live oid.

use crate::abi::{
    SysctlCtxList, SysctlOidList, CTLFLAG_MPSAFE, CTLFLAG_NOFETCH, CTLFLAG_RD, CTLFLAG_TUN,
    CTLTYPE_INT, CTLTYPE_NODE, CTLTYPE_STRING, CTLTYPE_U64, CTLTYPE_UINT, OID_AUTO,
};
use crate::ffi;
use alloc_crate::boxed::Box;
use alloc_crate::ffi::CString;
use alloc_crate::vec::Vec;
use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_void, CStr};
use core::fmt;
use core::ptr;

/// Where an oid is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// The static root `hw.ibft` (shim).
    HwIbft,
    /// The static root `net.isboot` (shim).
    NetIsboot,
    /// A node added earlier to the same context.
    Dynamic(usize),
}

/// Why an oid could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlError {
    /// A name, description or string value holds a NUL byte.
    InteriorNul,
    /// The parent node does not belong to this context.
    UnknownParent,
    /// `sysctl_add_oid` returned NULL (the name exists already, or no memory).
    AddFailed,
}

impl fmt::Display for SysctlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SysctlError::InteriorNul => "name or value contains a NUL byte",
            SysctlError::UnknownParent => "parent node is not part of this context",
            SysctlError::AddFailed => "sysctl_add_oid failed (name taken or out of memory)",
        })
    }
}

/// Access flags of every oid this module publishes.
const RD: u32 = CTLFLAG_RD | CTLFLAG_MPSAFE;
/// Access flags of a published loader tunable (already fetched, so NOFETCH).
const RDTUN: u32 = RD | CTLFLAG_TUN | CTLFLAG_NOFETCH;

/// A set of dynamic oids and their storage.
#[derive(Debug)]
pub struct SysctlContext {
    list: Box<UnsafeCell<SysctlCtxList>>,
    nodes: Vec<*mut SysctlOidList>,
    strings: Vec<CString>,
    // Boxed on purpose: the kernel holds pointers to each value, so a value must not move
    // when the Vec grows.
    #[allow(clippy::vec_box)]
    uints: Vec<Box<u32>>,
    #[allow(clippy::vec_box)]
    u64s: Vec<Box<u64>>,
}

impl SysctlContext {
    /// An empty context (`sysctl_ctx_init`). Sleepable context only.
    pub fn new() -> Self {
        let list = Box::new(UnsafeCell::new(SysctlCtxList {
            tqh_first: ptr::null_mut(),
            tqh_last: ptr::null_mut(),
        }));
        // SAFETY: `list` is a properly laid out TAILQ head at its final heap address (the Box
        // is never moved out of; only the Box pointer moves).
        unsafe { ffi::sysctl_ctx_init(list.get()) };
        Self {
            list,
            nodes: Vec::new(),
            strings: Vec::new(),
            uints: Vec::new(),
            u64s: Vec::new(),
        }
    }

    fn parent(&self, node: Node) -> Result<*mut SysctlOidList, SysctlError> {
        Ok(match node {
            // The children list is the first member of struct sysctl_oid (asserted in the
            // shim), so the oid's address is the list's address.
            Node::HwIbft => ptr::addr_of_mut!(ffi::shim::sysctl___hw_ibft).cast(),
            Node::NetIsboot => ptr::addr_of_mut!(ffi::shim::sysctl___net_isboot).cast(),
            Node::Dynamic(i) => *self.nodes.get(i).ok_or(SysctlError::UnknownParent)?,
        })
    }

    fn keep(&mut self, s: &str) -> Result<*const c_char, SysctlError> {
        let c = CString::new(s).map_err(|_| SysctlError::InteriorNul)?;
        // The CString's heap buffer does not move when the CString is moved into the Vec.
        let p = c.as_ptr();
        self.strings.push(c);
        Ok(p)
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        parent: Node,
        name: &str,
        kind: u32,
        arg1: *mut c_void,
        arg2: i64,
        handler: Option<crate::abi::SysctlHandler>,
        fmt: &'static CStr,
        descr: &str,
    ) -> Result<*mut crate::abi::SysctlOid, SysctlError> {
        let parent = self.parent(parent)?;
        let name = self.keep(name)?;
        let descr = self.keep(descr)?;
        // SAFETY: `list` was initialised in `new`; `parent` is a static root or a node of this
        // context that is still registered; name/descr/fmt are NUL-terminated and live as long
        // as the oid (kept in `self`, freed only after sysctl_ctx_free); `arg1` points into
        // storage owned by `self` with the same lifetime, matching `handler`'s type.
        let oid = unsafe {
            ffi::sysctl_add_oid(
                self.list.get(),
                parent,
                OID_AUTO,
                name,
                kind as c_int,
                arg1,
                arg2,
                handler,
                fmt.as_ptr(),
                descr,
                ptr::null(),
            )
        };
        if oid.is_null() {
            Err(SysctlError::AddFailed)
        } else {
            Ok(oid)
        }
    }

    /// Adds a node `name` under `parent` and returns it.
    pub fn add_node(&mut self, parent: Node, name: &str, descr: &str) -> Result<Node, SysctlError> {
        let oid = self.add(
            parent,
            name,
            CTLTYPE_NODE | RD,
            ptr::null_mut(),
            0,
            None,
            c"N",
            descr,
        )?;
        self.nodes.push(oid.cast());
        Ok(Node::Dynamic(self.nodes.len() - 1))
    }

    /// Adds a read-only string.
    pub fn add_string(
        &mut self,
        parent: Node,
        name: &str,
        value: &str,
        descr: &str,
    ) -> Result<(), SysctlError> {
        let value = self.keep(value)?.cast_mut().cast();
        let h = ffi::sysctl_handle_string;
        self.add(
            parent,
            name,
            CTLTYPE_STRING | RD,
            value,
            0,
            Some(h),
            c"A",
            descr,
        )
        .map(drop)
    }

    /// Adds a read-only `u_int`; `tunable` marks it as a loader tunable (`CTLFLAG_RDTUN`).
    pub fn add_uint(
        &mut self,
        parent: Node,
        name: &str,
        value: u32,
        tunable: bool,
        descr: &str,
    ) -> Result<(), SysctlError> {
        let mut b = Box::new(value);
        let p: *mut u32 = &mut *b;
        self.uints.push(b);
        let access = if tunable { RDTUN } else { RD };
        let h = ffi::sysctl_handle_int;
        self.add(
            parent,
            name,
            CTLTYPE_UINT | access,
            p.cast(),
            0,
            Some(h),
            c"IU",
            descr,
        )
        .map(drop)
    }

    /// Adds a read-only `uint64_t`.
    pub fn add_u64(
        &mut self,
        parent: Node,
        name: &str,
        value: u64,
        descr: &str,
    ) -> Result<(), SysctlError> {
        let mut b = Box::new(value);
        let p: *mut u64 = &mut *b;
        self.u64s.push(b);
        let h = ffi::sysctl_handle_64;
        self.add(
            parent,
            name,
            CTLTYPE_U64 | RD,
            p.cast(),
            0,
            Some(h),
            c"QU",
            descr,
        )
        .map(drop)
    }
}

/// What a handler-backed oid returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcKind {
    /// A string (`CTLTYPE_STRING`, format `A`).
    String,
    /// An unsigned int (`CTLTYPE_UINT`, format `IU`).
    Uint,
    /// A signed int (`CTLTYPE_INT`, format `I`).
    Int,
}

impl SysctlContext {
    /// Adds a read-only oid whose value `handler` computes at each read (`SYSCTL_ADD_PROC`),
    /// given `arg1` and `arg2`. The caller keeps whatever `arg1` points at alive until this
    /// context is dropped (dropping it waits for running handlers: sysctl_ctx_free).
    ///
    /// # Safety
    /// `handler` must accept `arg1`/`arg2` as given, for as long as the context lives.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn add_proc(
        &mut self,
        parent: Node,
        name: &str,
        kind: ProcKind,
        handler: crate::abi::SysctlHandler,
        arg1: *mut c_void,
        arg2: i64,
        descr: &str,
    ) -> Result<(), SysctlError> {
        let (ty, fmt) = match kind {
            ProcKind::String => (CTLTYPE_STRING, c"A"),
            ProcKind::Uint => (CTLTYPE_UINT, c"IU"),
            ProcKind::Int => (CTLTYPE_INT, c"I"),
        };
        self.add(parent, name, ty | RD, arg1, arg2, Some(handler), fmt, descr)
            .map(drop)
    }
}

impl Default for SysctlContext {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SysctlContext {
    fn drop(&mut self) {
        // SAFETY: the list was initialised in `new` and holds only oids added through it.
        let busy = unsafe { ffi::sysctl_ctx_free(self.list.get()) } != 0;
        if busy {
            // Some oid is still registered and may point into our storage: leak it all.
            crate::console::print_line(format_args!(
                "isboot: sysctl oids busy at unload; leaking their storage"
            ));
            core::mem::forget(core::mem::take(&mut self.strings));
            core::mem::forget(core::mem::take(&mut self.uints));
            core::mem::forget(core::mem::take(&mut self.u64s));
            let list = core::mem::replace(
                &mut self.list,
                Box::new(UnsafeCell::new(SysctlCtxList {
                    tqh_first: ptr::null_mut(),
                    tqh_last: ptr::null_mut(),
                })),
            );
            core::mem::forget(list);
        }
    }
}
