//! Numbers and layouts shared with the FreeBSD headers.
//!
//! Every item listed in [`ABI`] appears with the same value in `kmod/shim/isboot_abi.h`, where it
//! becomes a `_Static_assert` compiled against the real headers (FreeBSD 14, amd64). The test
//! `abi_header_matches_rust` reads that header and compares it with [`ABI`] item by item.

use core::ffi::{c_char, c_int, c_void};
use core::mem::{align_of, offset_of, size_of};
use static_assertions::const_assert_eq;

// ---------------------------------------------------------------------------------------------
// Constants (sys/module.h, sys/malloc.h, sys/sysctl.h, sys/mutex.h, sys/errno.h)

/// `MOD_LOAD` (`enum modeventtype`, sys/module.h).
pub const MOD_LOAD: c_int = 0;
/// `MOD_UNLOAD`.
pub const MOD_UNLOAD: c_int = 1;
/// `MOD_SHUTDOWN`.
pub const MOD_SHUTDOWN: c_int = 2;
/// `MOD_QUIESCE`.
pub const MOD_QUIESCE: c_int = 3;

/// `M_NOWAIT` (sys/malloc.h): do not sleep; may return NULL.
pub const M_NOWAIT: c_int = 0x0001;
/// `M_WAITOK` (sys/malloc.h): may sleep; never returns NULL.
pub const M_WAITOK: c_int = 0x0002;
/// `M_ZERO` (sys/malloc.h): zero the allocation.
pub const M_ZERO: c_int = 0x0100;

/// `CTLTYPE` (sys/sysctl.h): mask of the type bits of an oid kind.
pub const CTLTYPE: u32 = 0xf;
/// `CTLTYPE_NODE`.
pub const CTLTYPE_NODE: u32 = 1;
/// `CTLTYPE_INT`.
pub const CTLTYPE_INT: u32 = 2;
/// `CTLTYPE_STRING`.
pub const CTLTYPE_STRING: u32 = 3;
/// `CTLTYPE_UINT`.
pub const CTLTYPE_UINT: u32 = 6;
/// `CTLTYPE_U64`.
pub const CTLTYPE_U64: u32 = 9;
/// `CTLFLAG_RD`: readable.
pub const CTLFLAG_RD: u32 = 0x8000_0000;
/// `CTLFLAG_TUN`: also a loader tunable.
pub const CTLFLAG_TUN: u32 = 0x0008_0000;
/// `CTLFLAG_NOFETCH`: the kernel must not fetch the tunable into `arg1` (we already did).
pub const CTLFLAG_NOFETCH: u32 = 0x0000_1000;
/// `CTLFLAG_MPSAFE`: the handler needs no Giant.
pub const CTLFLAG_MPSAFE: u32 = 0x0004_0000;
/// `OID_AUTO`: let the kernel number the oid.
pub const OID_AUTO: c_int = -1;

/// `MTX_DEF` (sys/mutex.h): a default (sleep) mutex.
pub const MTX_DEF: c_int = 0;
/// `MTX_SPIN` (sys/mutex.h).
pub const MTX_SPIN: c_int = 1;

/// `ENXIO` (sys/errno.h).
pub const ENXIO: c_int = 6;
/// `ENOMEM`.
pub const ENOMEM: c_int = 12;
/// `EINVAL`.
pub const EINVAL: c_int = 22;
/// `EOPNOTSUPP`.
pub const EOPNOTSUPP: c_int = 45;

// ---------------------------------------------------------------------------------------------
// Mirrored structs (storage owned by Rust; the fields are never read from Rust)

/// Storage for a `struct mtx` (sys/_mutex.h), 32 bytes, 8-aligned.
///
/// ```c
/// struct mtx {
///         struct lock_object      lock_object;    /* Common lock properties. */
///         volatile uintptr_t      mtx_lock;       /* Owner and flags. */
/// };
/// ```
/// `lock_object` is at offset 0 (so a `*mut Mtx` is a `struct lock_object *`), and `mtx_lock`
/// at [`MTX_LOCK_OFFSET`] is what `_mtx_init` and `__mtx_lock_flags` take.
#[repr(C, align(8))]
#[derive(Debug)]
pub struct Mtx {
    /// `lock_object` (24 bytes: name, flags, data, witness).
    pub lock_object: [u64; 3],
    /// `mtx_lock`.
    pub mtx_lock: usize,
}

/// Offset of `mtx_lock` in `struct mtx`.
pub const MTX_LOCK_OFFSET: usize = offset_of!(Mtx, mtx_lock);

const_assert_eq!(size_of::<Mtx>(), 32);
const_assert_eq!(align_of::<Mtx>(), 8);
const_assert_eq!(offset_of!(Mtx, lock_object), 0);
const_assert_eq!(MTX_LOCK_OFFSET, 24);

/// `struct sysctl_ctx_list` (sys/sysctl.h): `TAILQ_HEAD(sysctl_ctx_list, sysctl_ctx_entry);`
///
/// ```c
/// struct sysctl_ctx_list {
///         struct sysctl_ctx_entry *tqh_first;
///         struct sysctl_ctx_entry **tqh_last;
/// };
/// ```
/// Self-referential once `sysctl_ctx_init` ran (`tqh_last` points at `tqh_first`): it must
/// never move afterwards, which is why [`crate::sysctl::SysctlContext`] boxes it.
#[repr(C)]
#[derive(Debug)]
pub struct SysctlCtxList {
    /// `tqh_first`.
    pub tqh_first: *mut c_void,
    /// `tqh_last`.
    pub tqh_last: *mut *mut c_void,
}

const_assert_eq!(size_of::<SysctlCtxList>(), 16);
const_assert_eq!(align_of::<SysctlCtxList>(), 8);
const_assert_eq!(offset_of!(SysctlCtxList, tqh_first), 0);
const_assert_eq!(offset_of!(SysctlCtxList, tqh_last), 8);

/// `moduledata_t` (sys/module.h). Built in the C shim by `DECLARE_MODULE`; mirrored here only so
/// that the layout the entry point relies on is asserted on both sides.
///
/// ```c
/// typedef struct moduledata {
///         const char      *name;          /* module name */
///         modeventhand_t  evhand;         /* event handler */
///         void            *priv;          /* extra data */
/// } moduledata_t;
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct ModuleData {
    /// `name`.
    pub name: *const c_char,
    /// `evhand`: `int (*)(module_t, int, void *)`.
    pub evhand: Option<unsafe extern "C" fn(*mut Module, c_int, *mut c_void) -> c_int>,
    /// `priv`.
    pub priv_: *mut c_void,
}

const_assert_eq!(size_of::<ModuleData>(), 24);
const_assert_eq!(offset_of!(ModuleData, name), 0);
const_assert_eq!(offset_of!(ModuleData, evhand), 8);
const_assert_eq!(offset_of!(ModuleData, priv_), 16);

/// `sizeof(struct malloc_type)`: the shim defines `M_ISBOOT`; Rust only takes its address.
pub const MALLOC_TYPE_SIZE: usize = 112;

// Scalars of the bound prototypes (LP64).
const_assert_eq!(size_of::<c_int>(), 4);
const_assert_eq!(size_of::<usize>(), 8);
const_assert_eq!(size_of::<i64>(), 8);

// ---------------------------------------------------------------------------------------------
// Opaque kernel types (only ever behind pointers)

macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[repr(C)]
        #[derive(Debug)]
        pub struct $name {
            _private: [u8; 0],
            _not_send_sync: core::marker::PhantomData<*mut u8>,
        }
    )*};
}

opaque! {
    /// `struct module` (`module_t` is a pointer to it).
    Module;
    /// `struct malloc_type` (112 bytes; defined by `MALLOC_DEFINE` in the shim).
    MallocType;
    /// `struct sysctl_oid`. Its first member is the `oid_children` list, so a pointer to an oid
    /// is also the pointer to its children list (`SYSCTL_CHILDREN`).
    SysctlOid;
    /// `struct sysctl_oid_list` (an RB tree head in 14).
    SysctlOidList;
    /// `struct sysctl_req`.
    SysctlReq;
}

/// `SYSCTL_HANDLER_ARGS`: `struct sysctl_oid *oidp, void *arg1, intmax_t arg2,
/// struct sysctl_req *req`.
pub type SysctlHandler =
    unsafe extern "C" fn(*mut SysctlOid, *mut c_void, i64, *mut SysctlReq) -> c_int;

// ---------------------------------------------------------------------------------------------
// The table the C header is checked against

/// One number the Rust side and `isboot_abi.h` must agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbiItem {
    /// `ISBOOT_ABI_SIZE(type, bytes)`.
    Size(&'static str, usize),
    /// `ISBOOT_ABI_ALIGN(type, bytes)`.
    Align(&'static str, usize),
    /// `ISBOOT_ABI_OFFSET(type, field, bytes)`.
    Offset(&'static str, &'static str, usize),
    /// `ISBOOT_ABI_CONST(NAME, value)`.
    Const(&'static str, i64),
}

/// Everything `isboot_abi.h` asserts, as Rust computes it.
pub const ABI: &[AbiItem] = &[
    AbiItem::Size("int", size_of::<c_int>()),
    AbiItem::Size("u_int", size_of::<u32>()),
    AbiItem::Size("long", size_of::<i64>()),
    AbiItem::Size("size_t", size_of::<usize>()),
    AbiItem::Size("intmax_t", size_of::<i64>()),
    AbiItem::Size("quad_t", size_of::<i64>()),
    AbiItem::Size("caddr_t", size_of::<*mut c_char>()),
    AbiItem::Size("vm_paddr_t", size_of::<u64>()),
    AbiItem::Size("vm_size_t", size_of::<usize>()),
    AbiItem::Size("uintptr_t", size_of::<usize>()),
    AbiItem::Size("struct lock_object", size_of::<[u64; 3]>()),
    AbiItem::Size("struct mtx", size_of::<Mtx>()),
    AbiItem::Align("struct mtx", align_of::<Mtx>()),
    AbiItem::Offset("struct mtx", "lock_object", offset_of!(Mtx, lock_object)),
    AbiItem::Offset("struct mtx", "mtx_lock", MTX_LOCK_OFFSET),
    AbiItem::Size("struct malloc_type", MALLOC_TYPE_SIZE),
    AbiItem::Size("struct sysctl_ctx_list", size_of::<SysctlCtxList>()),
    AbiItem::Align("struct sysctl_ctx_list", align_of::<SysctlCtxList>()),
    AbiItem::Offset(
        "struct sysctl_ctx_list",
        "tqh_first",
        offset_of!(SysctlCtxList, tqh_first),
    ),
    AbiItem::Offset(
        "struct sysctl_ctx_list",
        "tqh_last",
        offset_of!(SysctlCtxList, tqh_last),
    ),
    AbiItem::Offset("struct sysctl_oid", "oid_children", 0),
    AbiItem::Size("moduledata_t", size_of::<ModuleData>()),
    AbiItem::Offset("moduledata_t", "name", offset_of!(ModuleData, name)),
    AbiItem::Offset("moduledata_t", "evhand", offset_of!(ModuleData, evhand)),
    AbiItem::Offset("moduledata_t", "priv", offset_of!(ModuleData, priv_)),
    AbiItem::Const("MOD_LOAD", MOD_LOAD as i64),
    AbiItem::Const("MOD_UNLOAD", MOD_UNLOAD as i64),
    AbiItem::Const("MOD_SHUTDOWN", MOD_SHUTDOWN as i64),
    AbiItem::Const("MOD_QUIESCE", MOD_QUIESCE as i64),
    AbiItem::Const("M_NOWAIT", M_NOWAIT as i64),
    AbiItem::Const("M_WAITOK", M_WAITOK as i64),
    AbiItem::Const("M_ZERO", M_ZERO as i64),
    AbiItem::Const("CTLTYPE", CTLTYPE as i64),
    AbiItem::Const("CTLTYPE_NODE", CTLTYPE_NODE as i64),
    AbiItem::Const("CTLTYPE_INT", CTLTYPE_INT as i64),
    AbiItem::Const("CTLTYPE_STRING", CTLTYPE_STRING as i64),
    AbiItem::Const("CTLTYPE_UINT", CTLTYPE_UINT as i64),
    AbiItem::Const("CTLTYPE_U64", CTLTYPE_U64 as i64),
    AbiItem::Const("CTLFLAG_RD", CTLFLAG_RD as i64),
    AbiItem::Const("CTLFLAG_TUN", CTLFLAG_TUN as i64),
    AbiItem::Const("CTLFLAG_NOFETCH", CTLFLAG_NOFETCH as i64),
    AbiItem::Const("CTLFLAG_MPSAFE", CTLFLAG_MPSAFE as i64),
    AbiItem::Const("OID_AUTO", OID_AUTO as i64),
    AbiItem::Const("MTX_DEF", MTX_DEF as i64),
    AbiItem::Const("MTX_SPIN", MTX_SPIN as i64),
    AbiItem::Const("ENXIO", ENXIO as i64),
    AbiItem::Const("ENOMEM", ENOMEM as i64),
    AbiItem::Const("EINVAL", EINVAL as i64),
    AbiItem::Const("EOPNOTSUPP", EOPNOTSUPP as i64),
];
