//! Raw `extern "C"` declarations of the FreeBSD 14 kernel functions and variables the module
//! uses. Each item quotes its C declaration from the installed headers. Only real exported
//! symbols are declared here; macros and `static inline` KPIs are not callable from Rust.
//!
//! `kmod/scripts/check-kld.sh` verifies that every undefined symbol of the built `isboot.ko`
//! is declared by the FreeBSD headers (it compiles a reference to each against them).

use crate::abi::{MallocType, SysctlCtxList, SysctlHandler, SysctlOid, SysctlOidList};
use core::ffi::{c_char, c_int, c_void};

extern "C" {
    // --- console (sys/systm.h) ------------------------------------------------------------

    /// `int printf(const char *, ...) __printflike(1, 2);` (sys/systm.h)
    ///
    /// Always called as `printf("%s", line)` with a line formatted in Rust.
    pub fn printf(fmt: *const c_char, ...) -> c_int;

    /// `void panic(const char *, ...) __dead2 __printflike(1, 2);` (sys/kassert.h)
    ///
    /// Used only by the kld's Rust panic handler, as `panic("%s", message)`.
    pub fn panic(fmt: *const c_char, ...) -> !;

    /// `extern int bootverbose;` (sys/systm.h): non-zero when booted with `-v`.
    pub static bootverbose: c_int;

    // --- kernel environment / tunables (sys/systm.h) --------------------------------------

    /// `int getenv_int(const char *name, int *data);` (sys/systm.h): non-zero if found.
    pub fn getenv_int(name: *const c_char, data: *mut c_int) -> c_int;

    /// `int getenv_uint(const char *name, unsigned int *data);` (sys/systm.h)
    pub fn getenv_uint(name: *const c_char, data: *mut u32) -> c_int;

    /// `int getenv_quad(const char *name, quad_t *data);` (sys/systm.h): accepts `0x` hex and
    /// k/m/g/t suffixes.
    pub fn getenv_quad(name: *const c_char, data: *mut i64) -> c_int;

    // --- malloc(9) (sys/malloc.h) ---------------------------------------------------------

    /// `void *malloc(size_t size, struct malloc_type *type, int flags) __malloc_like
    /// __result_use_check __alloc_size(1);` (sys/malloc.h; the header also has a `malloc()`
    /// macro, the function is real)
    pub fn malloc(size: usize, ty: *mut MallocType, flags: c_int) -> *mut c_void;

    /// `void free(void *addr, struct malloc_type *type);` (sys/malloc.h)
    pub fn free(addr: *mut c_void, ty: *mut MallocType);

    // --- mutex(9) (sys/mutex.h; LOCK_DEBUG is 1 in a KLD, so these are out-of-line) ---------

    /// `void _mtx_init(volatile uintptr_t *c, const char *name, const char *type, int opts);`
    /// (sys/mutex.h; `mtx_init(m, ...)` passes `&m->mtx_lock`)
    pub fn _mtx_init(c: *mut usize, name: *const c_char, ty: *const c_char, opts: c_int);

    /// `void _mtx_destroy(volatile uintptr_t *c);` (sys/mutex.h)
    pub fn _mtx_destroy(c: *mut usize);

    /// `void __mtx_lock_flags(volatile uintptr_t *c, int opts, const char *file, int line);`
    /// (sys/mutex.h; what `mtx_lock(m)` calls in a module)
    pub fn __mtx_lock_flags(c: *mut usize, opts: c_int, file: *const c_char, line: c_int);

    /// `void __mtx_unlock_flags(volatile uintptr_t *c, int opts, const char *file, int line);`
    /// (sys/mutex.h)
    pub fn __mtx_unlock_flags(c: *mut usize, opts: c_int, file: *const c_char, line: c_int);

    // --- sysctl(9) (sys/sysctl.h) ---------------------------------------------------------

    /// `int sysctl_ctx_init(struct sysctl_ctx_list *clist);` (sys/sysctl.h)
    pub fn sysctl_ctx_init(clist: *mut SysctlCtxList) -> c_int;

    /// `int sysctl_ctx_free(struct sysctl_ctx_list *clist);` (sys/sysctl.h): non-zero (EBUSY)
    /// if an oid could not be removed, in which case nothing was freed.
    pub fn sysctl_ctx_free(clist: *mut SysctlCtxList) -> c_int;

    /// ```c
    /// struct sysctl_oid *sysctl_add_oid(struct sysctl_ctx_list *clist,
    ///         struct sysctl_oid_list *parent, int nbr, const char *name, int kind,
    ///         void *arg1, intmax_t arg2, int (*handler)(SYSCTL_HANDLER_ARGS),
    ///         const char *fmt, const char *descr, const char *label);
    /// ```
    /// (sys/sysctl.h) Returns NULL on failure (e.g. the name is taken).
    pub fn sysctl_add_oid(
        clist: *mut SysctlCtxList,
        parent: *mut SysctlOidList,
        nbr: c_int,
        name: *const c_char,
        kind: c_int,
        arg1: *mut c_void,
        arg2: i64,
        handler: Option<SysctlHandler>,
        fmt: *const c_char,
        descr: *const c_char,
        label: *const c_char,
    ) -> *mut SysctlOid;

    /// `int sysctl_handle_string(SYSCTL_HANDLER_ARGS);` (sys/sysctl.h)
    pub fn sysctl_handle_string(
        oidp: *mut SysctlOid,
        arg1: *mut c_void,
        arg2: i64,
        req: *mut crate::abi::SysctlReq,
    ) -> c_int;

    /// `int sysctl_handle_int(SYSCTL_HANDLER_ARGS);` (sys/sysctl.h; also serves `u_int`)
    pub fn sysctl_handle_int(
        oidp: *mut SysctlOid,
        arg1: *mut c_void,
        arg2: i64,
        req: *mut crate::abi::SysctlReq,
    ) -> c_int;

    /// `int sysctl_handle_64(SYSCTL_HANDLER_ARGS);` (sys/sysctl.h)
    pub fn sysctl_handle_64(
        oidp: *mut SysctlOid,
        arg1: *mut c_void,
        arg2: i64,
        req: *mut crate::abi::SysctlReq,
    ) -> c_int;

    // --- loader(8) preloaded files (sys/linker.h) ------------------------------------------

    /// `extern caddr_t preload_search_by_type(const char *_type);` (sys/linker.h): the record of
    /// the first preloaded file of that type, or NULL.
    pub fn preload_search_by_type(ty: *const c_char) -> *mut c_char;

    /// `extern void *preload_fetch_addr(caddr_t _mod);` (sys/linker.h): its data (a KVA).
    pub fn preload_fetch_addr(md: *mut c_char) -> *mut c_void;

    /// `extern size_t preload_fetch_size(caddr_t _mod);` (sys/linker.h)
    pub fn preload_fetch_size(md: *mut c_char) -> usize;

    // --- firmware memory (machine/pmap.h, amd64) -------------------------------------------

    /// `void *pmap_mapbios(vm_paddr_t, vm_size_t);` (machine/pmap.h): maps firmware memory
    /// (cacheable) into KVA.
    pub fn pmap_mapbios(pa: u64, size: usize) -> *mut c_void;

    /// `void pmap_unmapdev(void *, vm_size_t);` (machine/pmap.h; `pmap_unmapbios(va, sz)` is a
    /// macro for it on amd64, taking `void *` since `__FreeBSD_version` 1400070)
    pub fn pmap_unmapdev(va: *mut c_void, size: usize);
}

/// Symbols defined by the module's own C shim (`kmod/shim/isboot_shim.c`).
pub mod shim {
    use super::{MallocType, SysctlOid};

    extern "C" {
        /// `MALLOC_DEFINE(M_ISBOOT, "isboot", ...)` → `struct malloc_type M_ISBOOT[1];`
        pub static mut M_ISBOOT: MallocType;

        /// `SYSCTL_NODE(_hw, OID_AUTO, ibft, ...)` → `struct sysctl_oid sysctl___hw_ibft;`
        pub static mut sysctl___hw_ibft: SysctlOid;

        /// `SYSCTL_NODE(_net, OID_AUTO, isboot, ...)` → `struct sysctl_oid sysctl___net_isboot;`
        pub static mut sysctl___net_isboot: SysctlOid;
    }
}
