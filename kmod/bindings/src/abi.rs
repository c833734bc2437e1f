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
// The boot thread (kmod/shim/isboot_boot.c, asserted in kmod/shim/isboot_boot_abi.h)

/// `EINTR` (sys/errno.h).
pub const EINTR: c_int = 4;
/// `EBUSY`.
pub const EBUSY: c_int = 16;
/// `EEXIST`.
pub const EEXIST: c_int = 17;
/// `EWOULDBLOCK` (= `EAGAIN`): a receive timed out (`SO_RCVTIMEO`).
pub const EWOULDBLOCK: c_int = 35;

/// `AF_INET` (sys/socket.h).
pub const AF_INET: c_int = 2;
/// `AF_NETLINK` (netlink(4): interfaces and routes are read with rtnetlink messages).
pub const AF_NETLINK: c_int = 38;
/// `NETLINK_ROUTE` (netlink/netlink.h).
pub const NETLINK_ROUTE: c_int = 0;
/// `PF_ROUTE`: the routing socket (route(4)).
pub const PF_ROUTE: c_int = 17;
/// `SOCK_STREAM`.
pub const SOCK_STREAM: c_int = 1;
/// `SOCK_RAW`.
pub const SOCK_RAW: c_int = 3;
/// `IPPROTO_TCP` (netinet/in.h).
pub const IPPROTO_TCP: c_int = 6;
/// `SOL_SOCKET`.
pub const SOL_SOCKET: c_int = 0xffff;
/// `SO_KEEPALIVE`.
pub const SO_KEEPALIVE: c_int = 0x0008;
/// `SO_SNDTIMEO`.
pub const SO_SNDTIMEO: c_int = 0x1005;
/// `SO_RCVTIMEO`.
pub const SO_RCVTIMEO: c_int = 0x1006;
/// `SO_RCVLOWAT`.
pub const SO_RCVLOWAT: c_int = 0x1004;
/// `TCP_NODELAY` (netinet/tcp.h).
pub const TCP_NODELAY: c_int = 1;
/// `MSG_DONTWAIT` (sys/socket.h): a receive that would block returns `EWOULDBLOCK`.
pub const MSG_DONTWAIT: c_int = 0x80;

/// `struct iovec` (sys/_iovec.h): the same in 14 and 15.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IoVec {
    /// `iov_base`.
    pub base: *mut u8,
    /// `iov_len`.
    pub len: usize,
}

/// `sizeof(struct rt_msghdr)` (net/route.h, the routing socket's userland ABI).
pub const RT_MSGHDR_SIZE: usize = 152;
/// `RTM_VERSION`.
pub const RTM_VERSION: u8 = 5;
/// `RTM_ADD`.
pub const RTM_ADD: u8 = 0x1;
/// `RTA_DST`.
pub const RTA_DST: i32 = 0x1;
/// `RTA_GATEWAY`.
pub const RTA_GATEWAY: i32 = 0x2;
/// `RTA_NETMASK`.
pub const RTA_NETMASK: i32 = 0x4;
/// `RTF_UP`.
pub const RTF_UP: i32 = 0x1;
/// `RTF_GATEWAY`.
pub const RTF_GATEWAY: i32 = 0x2;
/// `RTF_HOST`.
pub const RTF_HOST: i32 = 0x4;
/// `RTF_STATIC`.
pub const RTF_STATIC: i32 = 0x800;

/// rtnetlink numbers (netlink/netlink.h, netlink/route/*.h): what `isboot::netlink` uses,
/// asserted against the FreeBSD headers here and against `isboot::netlink` in
/// `isboot::freebsd_boot`.
pub mod nl {
    /// `NLMSG_ERROR`.
    pub const NLMSG_ERROR: u16 = 2;
    /// `NLMSG_DONE`.
    pub const NLMSG_DONE: u16 = 3;
    /// `NLM_F_REQUEST`.
    pub const NLM_F_REQUEST: u16 = 0x1;
    /// `NLM_F_DUMP`.
    pub const NLM_F_DUMP: u16 = 0x300;
    /// `NL_RTM_NEWLINK`.
    pub const RTM_NEWLINK: u16 = 16;
    /// `NL_RTM_GETLINK`.
    pub const RTM_GETLINK: u16 = 18;
    /// `NL_RTM_NEWADDR`.
    pub const RTM_NEWADDR: u16 = 20;
    /// `NL_RTM_GETADDR`.
    pub const RTM_GETADDR: u16 = 22;
    /// `NL_RTM_NEWROUTE`.
    pub const RTM_NEWROUTE: u16 = 24;
    /// `NL_RTM_GETROUTE`.
    pub const RTM_GETROUTE: u16 = 26;
    /// `IFLA_ADDRESS`.
    pub const IFLA_ADDRESS: u16 = 1;
    /// `IFLA_IFNAME`.
    pub const IFLA_IFNAME: u16 = 3;
    /// `IFLA_OPERSTATE`.
    pub const IFLA_OPERSTATE: u16 = 16;
    /// `IF_OPER_UP`.
    pub const IF_OPER_UP: u8 = 6;
    /// `IFA_ADDRESS`.
    pub const IFA_ADDRESS: u16 = 1;
    /// `IFA_LOCAL`.
    pub const IFA_LOCAL: u16 = 2;
    /// `NL_RTA_DST`.
    pub const RTA_DST: u16 = 1;
    /// `NL_RTA_OIF`.
    pub const RTA_OIF: u16 = 4;
    /// `NL_RTA_GATEWAY`.
    pub const RTA_GATEWAY: u16 = 5;
    /// `sizeof(struct nlmsghdr)`.
    pub const NLMSGHDR_SIZE: usize = 16;
    /// `sizeof(struct ifinfomsg)`.
    pub const IFINFOMSG_SIZE: usize = 16;
    /// `sizeof(struct ifaddrmsg)`.
    pub const IFADDRMSG_SIZE: usize = 8;
    /// `sizeof(struct rtmsg)`.
    pub const RTMSG_SIZE: usize = 12;
}

/// `C_HARDCLOCK` (sys/callout.h): round a sleep to the tick, as `pause(9)` does.
pub const C_HARDCLOCK: c_int = 0x0100;
/// `SBT_1S` (sys/time.h): one second as an `sbintime_t` (32.32 fixed point).
pub const SBT_1S: i64 = 1 << 32;

/// `struct bintime` (sys/_time.h? sys/time.h): what `binuptime(9)` fills.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Bintime {
    /// `sec` (`time_t`).
    pub sec: i64,
    /// `frac`: the fraction of a second in 1/2^64 units.
    pub frac: u64,
}

const_assert_eq!(size_of::<Bintime>(), 16);
const_assert_eq!(offset_of!(Bintime, frac), 8);

/// `struct isboot_pathinq`: what `XPT_PATH_INQ` answers.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PathInqInfo {
    /// `hba_inquiry`.
    pub hba_inquiry: u8,
    /// `spare`.
    pub spare: [u8; 3],
    /// `hba_misc`.
    pub hba_misc: u32,
    /// `max_target`.
    pub max_target: u32,
    /// `max_lun`.
    pub max_lun: u32,
    /// `maxio`.
    pub maxio: u32,
    /// `base_transfer_speed`.
    pub base_transfer_speed: u32,
    /// `transport`.
    pub transport: u32,
    /// `protocol`.
    pub protocol: u32,
    /// `protocol_version`.
    pub protocol_version: u32,
}

const_assert_eq!(size_of::<PathInqInfo>(), 36);

opaque! {
    /// `union ccb` (only ever behind a pointer; fields through the shim).
    Ccb;
    /// `struct socket`.
    Socket;
    /// `struct thread`.
    Thread;
    /// `struct proc`.
    Proc;
    /// `struct root_hold_token`.
    RootHoldToken;
}

/// `struct isboot_ccb`: a queued CCB as the boot thread needs it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CcbInfo {
    /// `ccb`.
    pub ccb: *mut Ccb,
    /// `abort_ccb` (`XPT_ABORT`).
    pub abort_ccb: *mut Ccb,
    /// `lun` (`ccb_h.target_lun`).
    pub lun: u64,
    /// `func_code`.
    pub func_code: u32,
    /// `target`.
    pub target: u32,
    /// `flags` (`ccb_h.flags`).
    pub flags: u32,
    /// `dxfer_len`.
    pub dxfer_len: u32,
    /// `cdb` (`cdb_len` bytes).
    pub cdb: [u8; 16],
    /// `cdb_len`.
    pub cdb_len: u8,
    /// `sense_len`.
    pub sense_len: u8,
    /// `spare`.
    pub spare: [u8; 6],
    /// `data` (`csio.data_ptr` of an `XPT_SCSI_IO`: `CAM_DATA_VADDR`, `dxfer_len` bytes).
    pub data: *mut u8,
}

impl CcbInfo {
    /// Nothing.
    pub const ZERO: Self = Self {
        ccb: core::ptr::null_mut(),
        abort_ccb: core::ptr::null_mut(),
        lun: 0,
        func_code: 0,
        target: 0,
        flags: 0,
        dxfer_len: 0,
        cdb: [0; 16],
        cdb_len: 0,
        sense_len: 0,
        spare: [0; 6],
        data: core::ptr::null_mut(),
    };
}

const_assert_eq!(size_of::<CcbInfo>(), 72);

/// `CAM_DIR_MASK` (cam/cam_ccb.h).
pub const CAM_DIR_MASK: u32 = 0xc0;
/// `CAM_DIR_IN`.
pub const CAM_DIR_IN: u32 = 0x40;
/// `CAM_DIR_OUT`.
pub const CAM_DIR_OUT: u32 = 0x80;
/// `CAM_DIR_NONE`.
pub const CAM_DIR_NONE: u32 = 0xc0;
/// `CAM_DIS_AUTOSENSE`.
pub const CAM_DIS_AUTOSENSE: u32 = 0x20;
/// `CAM_CDB_POINTER`.
pub const CAM_CDB_POINTER: u32 = 0x01;

/// Layouts of kernel structures the shim uses, as the cross build's (FreeBSD 15) headers
/// have them; see kmod/README.md for the 14 check of each.
pub const KERNEL_LAYOUTS: &[AbiItem] = &[
    AbiItem::Offset("struct thread", "td_proc", 8),
    AbiItem::Offset("struct proc", "p_ucred", 64),
    AbiItem::Size("struct timeval", 16),
    AbiItem::Size("struct iovec", 16),
    AbiItem::Size("struct uio", 48),
    AbiItem::Offset("struct uio", "uio_resid", 24),
    AbiItem::Offset("struct uio", "uio_td", 40),
    AbiItem::Offset("struct sockopt", "sopt_valsize", 24),
    AbiItem::Size("struct sockaddr_in", 16),
    AbiItem::Size("struct ifreq", 32),
    AbiItem::Size("struct in_aliasreq", 68),
    AbiItem::Offset("struct tcp_info", "tcpi_state", 0),
    AbiItem::Size("struct ccb_hdr", 200),
    AbiItem::Offset("struct ccb_hdr", "func_code", 80),
    AbiItem::Offset("struct ccb_hdr", "status", 84),
    AbiItem::Offset("struct ccb_hdr", "path", 88),
    AbiItem::Offset("struct ccb_hdr", "path_id", 96),
    AbiItem::Offset("struct ccb_hdr", "target_id", 100),
    AbiItem::Offset("struct ccb_hdr", "target_lun", 104),
    AbiItem::Offset("struct ccb_hdr", "flags", 112),
    AbiItem::Offset("struct ccb_hdr", "sim_priv", 136),
    AbiItem::Size("struct ccb_scsiio", 536),
    AbiItem::Offset("struct ccb_scsiio", "data_ptr", 216),
    AbiItem::Offset("struct ccb_scsiio", "dxfer_len", 224),
    AbiItem::Offset("struct ccb_scsiio", "sense_data", 228),
    AbiItem::Offset("struct ccb_scsiio", "sense_len", 480),
    AbiItem::Offset("struct ccb_scsiio", "cdb_len", 481),
    AbiItem::Offset("struct ccb_scsiio", "scsi_status", 484),
    AbiItem::Offset("struct ccb_scsiio", "sense_resid", 485),
    AbiItem::Offset("struct ccb_scsiio", "resid", 488),
    AbiItem::Offset("struct ccb_scsiio", "cdb_io", 496),
    AbiItem::Offset("struct ccb_abort", "abort_ccb", 200),
    AbiItem::Size("struct ccb_pathinq", 464),
    AbiItem::Offset("struct ccb_pathinq", "maxio", 448),
    AbiItem::Size("struct ccb_trans_settings", 320),
    AbiItem::Offset("struct ccb_trans_settings", "proto_specific", 220),
    AbiItem::Offset("struct ccb_calc_geometry", "volume_size", 208),
    AbiItem::Size("union ccb", 1248),
    AbiItem::Offset("struct cam_sim", "path_id", 56),
    AbiItem::Offset("struct cam_periph", "periph_name", 24),
    AbiItem::Offset("struct cam_periph", "unit_number", 56),
    AbiItem::Offset("struct g_provider", "acr", 40),
    AbiItem::Size("struct rt_msghdr", RT_MSGHDR_SIZE),
    AbiItem::Offset("struct rt_msghdr", "rtm_flags", 8),
    AbiItem::Offset("struct rt_msghdr", "rtm_addrs", 12),
    AbiItem::Offset("struct rt_msghdr", "rtm_pid", 16),
    AbiItem::Offset("struct rt_msghdr", "rtm_seq", 20),
    AbiItem::Offset("struct rt_msghdr", "rtm_errno", 24),
];

/// The boot thread's own structs and numbers (kmod/shim/isboot_boot_abi.h).
pub const BOOT_ABI: &[AbiItem] = &[
    AbiItem::Size("struct isboot_pathinq", size_of::<PathInqInfo>()),
    AbiItem::Offset(
        "struct isboot_pathinq",
        "hba_misc",
        offset_of!(PathInqInfo, hba_misc),
    ),
    AbiItem::Offset(
        "struct isboot_pathinq",
        "maxio",
        offset_of!(PathInqInfo, maxio),
    ),
    AbiItem::Offset(
        "struct isboot_pathinq",
        "protocol_version",
        offset_of!(PathInqInfo, protocol_version),
    ),
    AbiItem::Size("struct isboot_ccb", size_of::<CcbInfo>()),
    AbiItem::Offset(
        "struct isboot_ccb",
        "abort_ccb",
        offset_of!(CcbInfo, abort_ccb),
    ),
    AbiItem::Offset("struct isboot_ccb", "lun", offset_of!(CcbInfo, lun)),
    AbiItem::Offset(
        "struct isboot_ccb",
        "func_code",
        offset_of!(CcbInfo, func_code),
    ),
    AbiItem::Offset("struct isboot_ccb", "target", offset_of!(CcbInfo, target)),
    AbiItem::Offset("struct isboot_ccb", "flags", offset_of!(CcbInfo, flags)),
    AbiItem::Offset(
        "struct isboot_ccb",
        "dxfer_len",
        offset_of!(CcbInfo, dxfer_len),
    ),
    AbiItem::Offset("struct isboot_ccb", "cdb", offset_of!(CcbInfo, cdb)),
    AbiItem::Offset("struct isboot_ccb", "cdb_len", offset_of!(CcbInfo, cdb_len)),
    AbiItem::Offset(
        "struct isboot_ccb",
        "sense_len",
        offset_of!(CcbInfo, sense_len),
    ),
    AbiItem::Offset("struct isboot_ccb", "data", offset_of!(CcbInfo, data)),
    AbiItem::Size("struct bintime", size_of::<Bintime>()),
    AbiItem::Offset("struct bintime", "frac", offset_of!(Bintime, frac)),
    AbiItem::Const("CAM_REQ_INPROG", 0x00),
    AbiItem::Const("CAM_REQ_CMP", 0x01),
    AbiItem::Const("CAM_REQ_ABORTED", 0x02),
    AbiItem::Const("CAM_REQ_CMP_ERR", 0x04),
    AbiItem::Const("CAM_REQ_INVALID", 0x06),
    AbiItem::Const("CAM_DEV_NOT_THERE", 0x08),
    AbiItem::Const("CAM_SEL_TIMEOUT", 0x0a),
    AbiItem::Const("CAM_SCSI_STATUS_ERROR", 0x0c),
    AbiItem::Const("CAM_REQUEUE_REQ", 0x1b),
    AbiItem::Const("CAM_FUNC_NOTAVAIL", 0x3a),
    AbiItem::Const("CAM_DEV_QFRZN", 0x40),
    AbiItem::Const("CAM_AUTOSNS_VALID", 0x80),
    AbiItem::Const("CAM_STATUS_MASK", 0x3f),
    AbiItem::Const("XPT_SCSI_IO", 0x901),
    AbiItem::Const("XPT_PATH_INQ", 0x04),
    AbiItem::Const("XPT_ABORT", 0x10),
    AbiItem::Const("XPT_RESET_BUS", 0x411),
    AbiItem::Const("XPT_RESET_DEV", 0x912),
    AbiItem::Const("XPT_GET_TRAN_SETTINGS", 0x15),
    AbiItem::Const("XPT_SET_TRAN_SETTINGS", 0x16),
    AbiItem::Const("XPT_CALC_GEOMETRY", 0x17),
    AbiItem::Const("CAM_DIR_MASK", CAM_DIR_MASK as i64),
    AbiItem::Const("CAM_DIR_IN", CAM_DIR_IN as i64),
    AbiItem::Const("CAM_DIR_OUT", CAM_DIR_OUT as i64),
    AbiItem::Const("CAM_DIR_NONE", CAM_DIR_NONE as i64),
    AbiItem::Const("CAM_DIS_AUTOSENSE", CAM_DIS_AUTOSENSE as i64),
    AbiItem::Const("CAM_CDB_POINTER", CAM_CDB_POINTER as i64),
    AbiItem::Const("PI_TAG_ABLE", 0x02),
    AbiItem::Const("PIM_NOBUSRESET", 0x10),
    AbiItem::Const("XPORT_ISCSI", 10),
    AbiItem::Const("PROTO_SCSI", 2),
    AbiItem::Const("SCSI_REV_SPC3", 5),
    AbiItem::Const("AF_INET", AF_INET as i64),
    AbiItem::Const("AF_NETLINK", AF_NETLINK as i64),
    AbiItem::Const("NETLINK_ROUTE", NETLINK_ROUTE as i64),
    AbiItem::Const("PF_ROUTE", PF_ROUTE as i64),
    AbiItem::Const("SOCK_STREAM", SOCK_STREAM as i64),
    AbiItem::Const("SOCK_RAW", SOCK_RAW as i64),
    AbiItem::Const("IPPROTO_TCP", IPPROTO_TCP as i64),
    AbiItem::Const("SOL_SOCKET", SOL_SOCKET as i64),
    AbiItem::Const("SO_KEEPALIVE", SO_KEEPALIVE as i64),
    AbiItem::Const("SO_SNDTIMEO", SO_SNDTIMEO as i64),
    AbiItem::Const("SO_RCVTIMEO", SO_RCVTIMEO as i64),
    AbiItem::Const("SO_RCVLOWAT", SO_RCVLOWAT as i64),
    AbiItem::Const("TCP_NODELAY", TCP_NODELAY as i64),
    AbiItem::Const("MSG_DONTWAIT", MSG_DONTWAIT as i64),
    AbiItem::Size("struct iovec", size_of::<IoVec>()),
    AbiItem::Offset("struct iovec", "iov_len", offset_of!(IoVec, len)),
    AbiItem::Const("EWOULDBLOCK", EWOULDBLOCK as i64),
    AbiItem::Const("EINTR", EINTR as i64),
    AbiItem::Const("EBUSY", EBUSY as i64),
    AbiItem::Const("EEXIST", EEXIST as i64),
    AbiItem::Const("RTM_VERSION", RTM_VERSION as i64),
    AbiItem::Const("RTM_ADD", RTM_ADD as i64),
    AbiItem::Const("RTA_DST", RTA_DST as i64),
    AbiItem::Const("RTA_GATEWAY", RTA_GATEWAY as i64),
    AbiItem::Const("RTA_NETMASK", RTA_NETMASK as i64),
    AbiItem::Const("RTF_UP", RTF_UP as i64),
    AbiItem::Const("RTF_GATEWAY", RTF_GATEWAY as i64),
    AbiItem::Const("RTF_HOST", RTF_HOST as i64),
    AbiItem::Const("RTF_STATIC", RTF_STATIC as i64),
    AbiItem::Size("struct nlmsghdr", nl::NLMSGHDR_SIZE),
    AbiItem::Size("struct ifinfomsg", nl::IFINFOMSG_SIZE),
    AbiItem::Size("struct ifaddrmsg", nl::IFADDRMSG_SIZE),
    AbiItem::Size("struct rtmsg", nl::RTMSG_SIZE),
    AbiItem::Const("NLMSG_ERROR", nl::NLMSG_ERROR as i64),
    AbiItem::Const("NLMSG_DONE", nl::NLMSG_DONE as i64),
    AbiItem::Const("NLM_F_REQUEST", nl::NLM_F_REQUEST as i64),
    AbiItem::Const("NLM_F_DUMP", nl::NLM_F_DUMP as i64),
    AbiItem::Const("NL_RTM_NEWLINK", nl::RTM_NEWLINK as i64),
    AbiItem::Const("NL_RTM_GETLINK", nl::RTM_GETLINK as i64),
    AbiItem::Const("NL_RTM_NEWADDR", nl::RTM_NEWADDR as i64),
    AbiItem::Const("NL_RTM_GETADDR", nl::RTM_GETADDR as i64),
    AbiItem::Const("NL_RTM_NEWROUTE", nl::RTM_NEWROUTE as i64),
    AbiItem::Const("NL_RTM_GETROUTE", nl::RTM_GETROUTE as i64),
    AbiItem::Const("IFLA_ADDRESS", nl::IFLA_ADDRESS as i64),
    AbiItem::Const("IFLA_IFNAME", nl::IFLA_IFNAME as i64),
    AbiItem::Const("IFLA_OPERSTATE", nl::IFLA_OPERSTATE as i64),
    AbiItem::Const("IF_OPER_UP", nl::IF_OPER_UP as i64),
    AbiItem::Const("IFA_ADDRESS", nl::IFA_ADDRESS as i64),
    AbiItem::Const("IFA_LOCAL", nl::IFA_LOCAL as i64),
    AbiItem::Const("NL_RTA_DST", nl::RTA_DST as i64),
    AbiItem::Const("NL_RTA_OIF", nl::RTA_OIF as i64),
    AbiItem::Const("NL_RTA_GATEWAY", nl::RTA_GATEWAY as i64),
    AbiItem::Const("C_HARDCLOCK", C_HARDCLOCK as i64),
    AbiItem::Const("SBT_1S", SBT_1S),
    AbiItem::Const("IFT_INFINIBAND", IFT_INFINIBAND as i64),
    AbiItem::Const("IFF_UP", IFF_UP as i64),
    AbiItem::Const("IFF_BROADCAST", IFF_BROADCAST as i64),
    AbiItem::Const("IFF_NEEDSEPOCH", IFF_NEEDSEPOCH as i64),
    AbiItem::Const("IFF_MULTICAST", IFF_MULTICAST as i64),
    AbiItem::Const("IFF_DRV_RUNNING", IFF_DRV_RUNNING as i64),
    AbiItem::Const("LINK_STATE_DOWN", LINK_STATE_DOWN as i64),
    AbiItem::Const("LINK_STATE_UP", LINK_STATE_UP as i64),
    AbiItem::Const("IFCOUNTER_IPACKETS", IFCOUNTER_IPACKETS as i64),
    AbiItem::Const("IFCOUNTER_IERRORS", IFCOUNTER_IERRORS as i64),
    AbiItem::Const("IFCOUNTER_OPACKETS", IFCOUNTER_OPACKETS as i64),
    AbiItem::Const("IFCOUNTER_OERRORS", IFCOUNTER_OERRORS as i64),
    AbiItem::Const("IFCOUNTER_IBYTES", IFCOUNTER_IBYTES as i64),
    AbiItem::Const("IFCOUNTER_OBYTES", IFCOUNTER_OBYTES as i64),
    AbiItem::Const("IFCOUNTER_IQDROPS", IFCOUNTER_IQDROPS as i64),
    AbiItem::Const("SIOCSIFADDR", SIOCSIFADDR as i64),
    AbiItem::Const("SIOCSIFFLAGS", SIOCSIFFLAGS as i64),
    AbiItem::Const("SIOCADDMULTI", SIOCADDMULTI as i64),
    AbiItem::Const("SIOCDELMULTI", SIOCDELMULTI as i64),
    AbiItem::Const("SIOCSIFMTU", SIOCSIFMTU as i64),
    AbiItem::Offset("struct ifreq", "ifr_mtu", IFR_MTU_OFFSET),
    AbiItem::Const("IF_MINMTU", IF_MINMTU as i64),
    AbiItem::Const("INFINIBAND_ADDR_LEN", 20),
    AbiItem::Size("struct infiniband_header", 24),
    AbiItem::Offset("struct ifaddr", "ifa_addr", 0),
    AbiItem::Offset("struct ifaddr", "ifa_netmask", IFA_NETMASK_OFFSET),
    AbiItem::Offset("struct sockaddr", "sa_family", 1),
    AbiItem::Offset("struct sockaddr_in", "sin_addr", 4),
];

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

// ---------------------------------------------------------------------------------------------
// Network interfaces and mbufs (net/if.h, net/if_var.h, net/if_types.h, sys/sockio.h,
// sys/mbuf.h; the numbers are asserted against the headers in kmod/shim/isboot_abi.h)

opaque! {
    /// `struct ifnet` (`if_t`): 14 keeps its body private (`net/if_private.h`); drivers use
    /// the accessor functions.
    IfNet;
    /// `struct mbuf`: only handled through real functions (its packet header differs between
    /// 14 and 15).
    Mbuf;
}

/// `IFT_INFINIBAND` (net/if_types.h).
pub const IFT_INFINIBAND: u8 = 0xc7;
/// `IFF_UP` (net/if.h).
pub const IFF_UP: c_int = 0x1;
/// `IFF_BROADCAST`.
pub const IFF_BROADCAST: c_int = 0x2;
/// `IFF_NEEDSEPOCH`: the driver calls `if_input` outside the network epoch (since 13.0).
pub const IFF_NEEDSEPOCH: c_int = 0x20;
/// `IFF_MULTICAST`.
pub const IFF_MULTICAST: c_int = 0x8000;
/// `IFF_DRV_RUNNING` (driver flags).
pub const IFF_DRV_RUNNING: c_int = 0x40;
/// `LINK_STATE_DOWN` (net/if.h).
pub const LINK_STATE_DOWN: c_int = 1;
/// `LINK_STATE_UP`.
pub const LINK_STATE_UP: c_int = 2;
/// `IFCOUNTER_IPACKETS` (`ift_counter`, net/if.h).
pub const IFCOUNTER_IPACKETS: c_int = 0;
/// `IFCOUNTER_IERRORS`.
pub const IFCOUNTER_IERRORS: c_int = 1;
/// `IFCOUNTER_OPACKETS`.
pub const IFCOUNTER_OPACKETS: c_int = 2;
/// `IFCOUNTER_OERRORS`.
pub const IFCOUNTER_OERRORS: c_int = 3;
/// `IFCOUNTER_IBYTES`.
pub const IFCOUNTER_IBYTES: c_int = 5;
/// `IFCOUNTER_OBYTES`.
pub const IFCOUNTER_OBYTES: c_int = 6;
/// `IFCOUNTER_IQDROPS`.
pub const IFCOUNTER_IQDROPS: c_int = 9;
/// `SIOCSIFADDR` = `_IOW('i', 12, struct ifreq)` (sys/sockio.h): what `in_control` sends the
/// driver for a new address (with a `struct ifaddr *` as data).
pub const SIOCSIFADDR: core::ffi::c_ulong = 0x8020_690c;
/// `SIOCSIFFLAGS` = `_IOW('i', 16, struct ifreq)`.
pub const SIOCSIFFLAGS: core::ffi::c_ulong = 0x8020_6910;
/// `SIOCADDMULTI` = `_IOW('i', 49, struct ifreq)`.
pub const SIOCADDMULTI: core::ffi::c_ulong = 0x8020_6931;
/// `SIOCDELMULTI` = `_IOW('i', 50, struct ifreq)`.
pub const SIOCDELMULTI: core::ffi::c_ulong = 0x8020_6932;
/// `SIOCSIFMTU` = `_IOW('i', 52, struct ifreq)`.
pub const SIOCSIFMTU: core::ffi::c_ulong = 0x8020_6934;
/// Offset of `ifr_mtu` (`ifr_ifru.ifru_mtu`) in `struct ifreq` (after the 16-byte name).
pub const IFR_MTU_OFFSET: usize = 16;
/// `IF_MINMTU` (net/if_var.h).
pub const IF_MINMTU: c_int = 72;
/// Offset of `ifa_netmask` in `struct ifaddr` (`ifa_addr` 0, `ifa_dstaddr` 8).
pub const IFA_NETMASK_OFFSET: usize = 16;
/// `AF_INET` as `sa_family_t`.
pub const SA_AF_INET: u8 = 2;
// --- the HCA (kmod/src/freebsd_hca.rs), asserted in kmod/shim/isboot_pci_abi.h ----------------

/// `SYS_RES_MEMORY` (machine/resource.h).
pub const SYS_RES_MEMORY: c_int = 3;
/// `RF_ACTIVE` (sys/rman.h).
pub const RF_ACTIVE: u32 = 0x0002;
/// `PCIR_BAR(x)` (dev/pci/pcireg.h): `0x10 + 4 * x`.
pub const fn pcir_bar(x: u8) -> c_int {
    0x10 + 4 * x as c_int
}
/// `X86_BUS_SPACE_MEM` (x86/include/bus.h).
pub const X86_BUS_SPACE_MEM: u64 = 1;
/// `BUS_DMA_NOWAIT` (sys/bus_dma.h).
pub const BUS_DMA_NOWAIT: c_int = 0x01;
/// `BUS_DMA_COHERENT`.
pub const BUS_DMA_COHERENT: c_int = 0x04;
/// `BUS_DMA_ZERO`.
pub const BUS_DMA_ZERO: c_int = 0x08;
/// `BUS_DMASYNC_PREREAD` (sys/bus_dma.h).
pub const BUS_DMASYNC_PREREAD: c_int = 1;
/// `BUS_DMASYNC_POSTREAD`.
pub const BUS_DMASYNC_POSTREAD: c_int = 2;
/// `BUS_DMASYNC_PREWRITE`.
pub const BUS_DMASYNC_PREWRITE: c_int = 4;
/// `BUS_DMASYNC_POSTWRITE`.
pub const BUS_DMASYNC_POSTWRITE: c_int = 8;

/// What `isboot_pci_abi.h` asserts, as the Rust side has it.
pub const HCA_ABI: &[AbiItem] = &[
    AbiItem::Const("SYS_RES_MEMORY", SYS_RES_MEMORY as i64),
    AbiItem::Const("RF_ACTIVE", RF_ACTIVE as i64),
    AbiItem::Const("PCIR_BAR(0)", pcir_bar(0) as i64),
    AbiItem::Const("PCIR_BAR(2)", pcir_bar(2) as i64),
    AbiItem::Const("X86_BUS_SPACE_MEM", X86_BUS_SPACE_MEM as i64),
    AbiItem::Const("BUS_DMA_NOWAIT", BUS_DMA_NOWAIT as i64),
    AbiItem::Const("BUS_DMA_COHERENT", BUS_DMA_COHERENT as i64),
    AbiItem::Const("BUS_DMA_ZERO", BUS_DMA_ZERO as i64),
    AbiItem::Const("BUS_DMASYNC_PREREAD", BUS_DMASYNC_PREREAD as i64),
    AbiItem::Const("BUS_DMASYNC_POSTREAD", BUS_DMASYNC_POSTREAD as i64),
    AbiItem::Const("BUS_DMASYNC_PREWRITE", BUS_DMASYNC_PREWRITE as i64),
    AbiItem::Const("BUS_DMASYNC_POSTWRITE", BUS_DMASYNC_POSTWRITE as i64),
    AbiItem::Size(
        "bus_dma_segment_t",
        core::mem::size_of::<crate::ffi::hca_kpis::BusDmaSegment>(),
    ),
    AbiItem::Offset(
        "bus_dma_segment_t",
        "ds_addr",
        core::mem::offset_of!(crate::ffi::hca_kpis::BusDmaSegment, ds_addr),
    ),
    AbiItem::Offset(
        "bus_dma_segment_t",
        "ds_len",
        core::mem::offset_of!(crate::ffi::hca_kpis::BusDmaSegment, ds_len),
    ),
    AbiItem::Size("struct kobjop_desc", core::mem::size_of::<[u64; 3]>()),
];
