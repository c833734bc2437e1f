//! Raw `extern "C"` declarations of the FreeBSD 14 kernel functions and variables the module
//! uses. Each item quotes its C declaration from the installed headers. Only real exported
//! symbols are declared here; macros and `static inline` KPIs are not callable from Rust.
//!
//! `kmod/scripts/check-kld.sh` verifies that every undefined symbol of the built `isboot.ko`
//! is declared by the FreeBSD headers (it compiles a reference to each against them).

use crate::abi::{
    Bintime, IfNet, MallocType, Mbuf, Proc, RootHoldToken, Socket, SysctlCtxList, SysctlHandler,
    SysctlOid, SysctlOidList, Thread,
};
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

    /// `int getenv_string(const char *name, char *data, int size);` (sys/systm.h): non-zero
    /// if found; the value is copied NUL-terminated (truncated to `size`).
    pub fn getenv_string(name: *const c_char, data: *mut c_char, size: c_int) -> c_int;

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

    // --- the boot thread: time, sleep, entropy (sys/time.h, sys/systm.h, sys/libkern.h) ------

    /// `void binuptime(struct bintime *bt);` (sys/time.h): the uptime, precisely. (`sbinuptime()`
    /// and `getsbinuptime()` are `static __inline` over it and `getbinuptime`.)
    pub fn binuptime(bt: *mut Bintime);

    /// `int pause_sbt(const char *wmesg, sbintime_t sbt, sbintime_t pr, int flags);`
    /// (sys/systm.h; `pause(9)` is an inline calling it with `tick_sbt * timo, 0, C_HARDCLOCK`)
    pub fn pause_sbt(wmesg: *const c_char, sbt: i64, pr: i64, flags: c_int) -> c_int;

    /// ```c
    /// int _sleep(const void *chan, struct lock_object *lock, int pri, const char *wmesg,
    ///         sbintime_t sbt, sbintime_t pr, int flags);
    /// ```
    /// (sys/systm.h; `msleep_sbt(chan, mtx, pri, wmesg, bt, pr, flags)` is a macro calling it
    /// with `&(mtx)->lock_object`, `msleep` the same with `tick_sbt * timo, 0, C_HARDCLOCK`.)
    /// Sleeps on `chan`, releasing `lock` once on the sleep queue and re-taking it before
    /// returning (not with `PDROP`); `sbt` 0: no timeout. 0 when woken, `EWOULDBLOCK` after
    /// the timeout (sys/kern/kern_synch.c).
    pub fn _sleep(
        chan: *const c_void,
        lock: *mut c_void,
        pri: c_int,
        wmesg: *const c_char,
        sbt: i64,
        pr: i64,
        flags: c_int,
    ) -> c_int;

    /// `void wakeup(const void *chan);` (sys/systm.h): wakes every thread asleep on `chan`.
    pub fn wakeup(chan: *const c_void);

    /// `int soshutdown(struct socket *so, int how);` (sys/socketvar.h; 15 spells `how` as
    /// `enum shutdown_how`, the same int). `SHUT_RD` (0) marks the receive side closed and
    /// wakes a thread blocked in `soreceive`, which then returns end of stream.
    pub fn soshutdown(so: *mut Socket, how: c_int) -> c_int;

    /// `void arc4random_buf(void *, size_t);` (sys/libkern.h)
    pub fn arc4random_buf(buf: *mut c_void, len: usize);

    // --- root mount hold (sys/systm.h, kern/vfs_mountroot.c) --------------------------------

    /// `struct root_hold_token *root_mount_hold(const char *identifier);` (sys/systm.h): NULL
    /// once root is mounted (a kldload after boot).
    pub fn root_mount_hold(identifier: *const c_char) -> *mut RootHoldToken;

    /// `void root_mount_rel(struct root_hold_token *h);` (sys/systm.h; NULL is a no-op)
    pub fn root_mount_rel(h: *mut RootHoldToken);

    // --- kernel threads (sys/kthread.h) -----------------------------------------------------

    /// ```c
    /// int kproc_kthread_add(void (*)(void *), void *, struct proc **, struct thread **,
    ///         int flags, int pages, const char *procname, const char *, ...)
    ///         __printflike(8, 9);
    /// ```
    /// (sys/kthread.h) `pages` 0 is the default kernel stack (`kstack_pages`).
    pub fn kproc_kthread_add(
        func: unsafe extern "C" fn(*mut c_void),
        arg: *mut c_void,
        procptr: *mut *mut Proc,
        tdptr: *mut *mut Thread,
        flags: c_int,
        pages: c_int,
        procname: *const c_char,
        fmt: *const c_char,
        ...
    ) -> c_int;

    /// `void kthread_exit(void) __dead2;` (sys/kthread.h): the end of every kernel thread
    /// (the last thread of a kproc exits the process too); it does `wakeup(curthread)` for a
    /// module waiting on the thread.
    pub fn kthread_exit() -> !;

    // --- network interfaces (net/if_var.h; 14 drivers see `if_t` only through accessors) ---

    /// `if_t if_alloc(u_char type);` (net/if_var.h): `M_WAITOK`, never NULL in 14.
    pub fn if_alloc(ty: u8) -> *mut IfNet;

    /// `void if_free(if_t);`
    pub fn if_free(ifp: *mut IfNet);

    /// `void if_initname(if_t, const char *name, int unit);` (the name is copied)
    pub fn if_initname(ifp: *mut IfNet, name: *const c_char, unit: c_int);

    /// `int if_setsoftc(if_t ifp, void *softc);`
    pub fn if_setsoftc(ifp: *mut IfNet, softc: *mut c_void) -> c_int;

    /// `void *if_getsoftc(if_t ifp);`
    pub fn if_getsoftc(ifp: *mut IfNet) -> *mut c_void;

    /// `int if_setflags(if_t ifp, int flags);`
    pub fn if_setflags(ifp: *mut IfNet, flags: c_int) -> c_int;

    /// `int if_getflags(if_t ifp);`
    pub fn if_getflags(ifp: *mut IfNet) -> c_int;

    /// `int if_setflagbits(if_t ifp, int set, int clear);`
    pub fn if_setflagbits(ifp: *mut IfNet, set: c_int, clear: c_int) -> c_int;

    /// `void arp_ifinit(struct ifnet *, struct ifaddr *);` (netinet/if_ether.h): what an
    /// IPoIB driver does for a new IPv4 address (the gratuitous ARP), as ipoib(4) does.
    pub fn arp_ifinit(ifp: *mut IfNet, ifa: *mut c_void);

    /// `int if_setdrvflagbits(if_t ifp, int set, int clear);`
    pub fn if_setdrvflagbits(ifp: *mut IfNet, set: c_int, clear: c_int) -> c_int;

    /// `int if_setmtu(if_t ifp, int mtu);`
    pub fn if_setmtu(ifp: *mut IfNet, mtu: c_int) -> c_int;

    /// `int if_getmtu(if_t ifp);`
    pub fn if_getmtu(ifp: *mut IfNet) -> c_int;

    /// `uint64_t if_setbaudrate(if_t ifp, uint64_t baudrate);`
    pub fn if_setbaudrate(ifp: *mut IfNet, baudrate: u64) -> u64;

    /// `void if_setinitfn(if_t ifp, if_init_fn_t);` (`void (*)(void *)`)
    pub fn if_setinitfn(ifp: *mut IfNet, f: unsafe extern "C" fn(*mut c_void));

    /// `void if_setioctlfn(if_t ifp, if_ioctl_fn_t);` (`int (*)(if_t, u_long, caddr_t)`)
    pub fn if_setioctlfn(
        ifp: *mut IfNet,
        f: unsafe extern "C" fn(*mut IfNet, core::ffi::c_ulong, *mut c_char) -> c_int,
    );

    /// `void if_settransmitfn(if_t ifp, if_transmit_fn_t);` (`int (*)(if_t, struct mbuf *)`)
    pub fn if_settransmitfn(
        ifp: *mut IfNet,
        f: unsafe extern "C" fn(*mut IfNet, *mut Mbuf) -> c_int,
    );

    /// `void if_setqflushfn(if_t ifp, if_qflush_fn_t);` (`void (*)(if_t)`)
    pub fn if_setqflushfn(ifp: *mut IfNet, f: unsafe extern "C" fn(*mut IfNet));

    /// `void if_input(if_t ifp, struct mbuf *m);` (`int` in early 14 snapshots; the value was
    /// never meaningful and is not read): hands a received frame to `ifp->if_input`
    /// (`infiniband_input` on an InfiniBand interface).
    pub fn if_input(ifp: *mut IfNet, m: *mut Mbuf);

    /// `void if_link_state_change(if_t, int);` (`LINK_STATE_DOWN` 1, `LINK_STATE_UP` 2)
    pub fn if_link_state_change(ifp: *mut IfNet, state: c_int);

    /// `void if_inc_counter(if_t, ift_counter, int64_t);`
    pub fn if_inc_counter(ifp: *mut IfNet, counter: c_int, n: i64);

    /// `caddr_t if_getlladdr(if_t ifp);`: the link-level address bytes in the interface's
    /// `AF_LINK` sockaddr (`IF_LLADDR`). `if_setlladdr()` refuses `IFT_INFINIBAND` with
    /// `ENODEV` (it rewrites Ethernet-like types only, sys/net/if.c), so an IPoIB driver
    /// writes the 20 bytes here itself.
    pub fn if_getlladdr(ifp: *mut IfNet) -> *mut c_char;

    /// `void infiniband_ifattach(struct ifnet *, const uint8_t *hwaddr, const uint8_t
    /// *bcaddr);` (net/infiniband.h): `if_attach`, then the InfiniBand link layer
    /// (`if_addrlen` 20, `if_hdrlen` 24, MTU 1500, `infiniband_output`/`infiniband_input`);
    /// keeps `bcaddr` as `if_broadcastaddr`, so it must outlive the interface.
    pub fn infiniband_ifattach(ifp: *mut IfNet, hwaddr: *const u8, bcaddr: *const u8);

    /// `void infiniband_ifdetach(struct ifnet *);` (net/infiniband.h)
    pub fn infiniband_ifdetach(ifp: *mut IfNet);

    // --- mbufs (sys/mbuf.h; only real functions: the `struct mbuf` layout is not used) ----

    /// `u_int m_length(struct mbuf *m, struct mbuf **last);`
    pub fn m_length(m: *mut Mbuf, last: *mut *mut Mbuf) -> u32;

    /// `void m_copydata(const struct mbuf *m, int off, int len, caddr_t cp);`
    pub fn m_copydata(m: *const Mbuf, off: c_int, len: c_int, cp: *mut c_char);

    /// `void m_freem(struct mbuf *m);` (NULL is a no-op)
    pub fn m_freem(m: *mut Mbuf);

    /// `struct mbuf *m_devget(char *buf, int totlen, int off, struct ifnet *ifp,
    /// void (*copy)(char *from, caddr_t to, u_int len));`: a packet-header chain holding a
    /// copy of `buf`, `m_pkthdr.len` and `m_pkthdr.rcvif` set (`M_NOWAIT`: NULL when out of
    /// mbufs).
    pub fn m_devget(
        buf: *mut c_char,
        totlen: c_int,
        off: c_int,
        ifp: *mut IfNet,
        copy: Option<unsafe extern "C" fn(*mut c_char, *mut c_char, u32)>,
    ) -> *mut Mbuf;
}

/// The KPIs of the module's HCA access (`kmod/src/freebsd_hca.rs`): newbus, PCI, resources and
/// busdma. Every one is a real function on FreeBSD 14 amd64; their inline companions
/// (`pci_read_config`, `bus_dmamem_alloc`...) are in the shim (`isboot_pci.c`). Devices, tags,
/// maps and resources are opaque pointers.
pub mod hca_kpis {
    use core::ffi::{c_char, c_int, c_uint, c_void};

    /// `bus_dma_segment_t` (sys/bus_dma.h, LP64): `{ bus_addr_t ds_addr; bus_size_t ds_len; }`.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, Default)]
    pub struct BusDmaSegment {
        /// The segment's bus address.
        pub ds_addr: u64,
        /// Its length.
        pub ds_len: u64,
    }

    /// `typedef void bus_dmamap_callback_t(void *, bus_dma_segment_t *, int, int);`
    pub type BusDmamapCallback =
        unsafe extern "C" fn(arg: *mut c_void, segs: *mut BusDmaSegment, nseg: c_int, error: c_int);

    extern "C" {
        /// `device_t pci_find_dbsf(uint32_t domain, uint8_t bus, uint8_t slot, uint8_t func);`
        /// (dev/pci/pcivar.h): the PCI function at that address, NULL if there is none.
        pub fn pci_find_dbsf(domain: u32, bus: u8, slot: u8, func: u8) -> *mut c_void;
        /// `driver_t *device_get_driver(device_t dev);` (sys/bus.h): NULL when no driver
        /// claimed it.
        pub fn device_get_driver(dev: *mut c_void) -> *mut c_void;
        /// `int device_is_attached(device_t dev);` (sys/bus.h): non-zero after a successful
        /// attach.
        pub fn device_is_attached(dev: *mut c_void) -> c_int;
        /// `const char *device_get_nameunit(device_t dev);` (sys/bus.h)
        pub fn device_get_nameunit(dev: *mut c_void) -> *const c_char;
        /// ```c
        /// struct resource *bus_alloc_resource(device_t dev, int type, int *rid,
        ///     rman_res_t start, rman_res_t end, rman_res_t count, u_int flags);
        /// ```
        /// (sys/bus.h; `bus_alloc_resource_any` is the inline passing `0, ~0, 1`)
        pub fn bus_alloc_resource(
            dev: *mut c_void,
            ty: c_int,
            rid: *mut c_int,
            start: u64,
            end: u64,
            count: u64,
            flags: c_uint,
        ) -> *mut c_void;
        /// `int bus_release_resource(device_t dev, int type, int rid, struct resource *r);`
        /// (14's sys/bus.h: the four-argument form is the real function there; 15 made it
        /// `bus_release_resource(dev, r)` and kept the old one as `bus_release_resource_old`.
        /// The module's metadata requires a 14.x kernel.)
        pub fn bus_release_resource(
            dev: *mut c_void,
            ty: c_int,
            rid: c_int,
            r: *mut c_void,
        ) -> c_int;
        /// `bus_space_tag_t rman_get_bustag(struct resource *);` (sys/rman.h; a `uint64_t` on
        /// amd64: `X86_BUS_SPACE_MEM` 1 for memory)
        pub fn rman_get_bustag(r: *mut c_void) -> u64;
        /// `bus_space_handle_t rman_get_bushandle(struct resource *);` (sys/rman.h; on amd64
        /// the memory tag's handle is the mapping's kernel virtual address)
        pub fn rman_get_bushandle(r: *mut c_void) -> u64;
        /// `void *rman_get_virtual(struct resource *);` (sys/rman.h)
        pub fn rman_get_virtual(r: *mut c_void) -> *mut c_void;
        /// `rman_res_t rman_get_size(struct resource *);` (sys/rman.h)
        pub fn rman_get_size(r: *mut c_void) -> u64;
        /// `bus_dma_tag_t bus_get_dma_tag(device_t dev);` (sys/bus.h)
        pub fn bus_get_dma_tag(dev: *mut c_void) -> *mut c_void;
        /// ```c
        /// int bus_dma_tag_create(bus_dma_tag_t parent, bus_size_t alignment,
        ///     bus_addr_t boundary, bus_addr_t lowaddr, bus_addr_t highaddr,
        ///     bus_dma_filter_t *filtfunc, void *filtfuncarg, bus_size_t maxsize,
        ///     int nsegments, bus_size_t maxsegsz, int flags, bus_dma_lock_t *lockfunc,
        ///     void *lockfuncarg, bus_dma_tag_t *dmat);
        /// ```
        /// (14's sys/bus_dma.h; `filtfunc` must be NULL)
        #[allow(clippy::too_many_arguments)]
        pub fn bus_dma_tag_create(
            parent: *mut c_void,
            alignment: u64,
            boundary: u64,
            lowaddr: u64,
            highaddr: u64,
            filtfunc: *mut c_void,
            filtfuncarg: *mut c_void,
            maxsize: u64,
            nsegments: c_int,
            maxsegsz: u64,
            flags: c_int,
            lockfunc: *mut c_void,
            lockfuncarg: *mut c_void,
            dmat: *mut *mut c_void,
        ) -> c_int;
        /// `int bus_dma_tag_destroy(bus_dma_tag_t dmat);` (sys/bus_dma.h)
        pub fn bus_dma_tag_destroy(dmat: *mut c_void) -> c_int;
        /// ```c
        /// int bus_dmamap_load(bus_dma_tag_t dmat, bus_dmamap_t map, void *buf,
        ///     bus_size_t buflen, bus_dmamap_callback_t *callback, void *callback_arg,
        ///     int flags);
        /// ```
        /// (sys/bus_dma.h; with `BUS_DMA_NOWAIT` the callback runs before it returns)
        pub fn bus_dmamap_load(
            dmat: *mut c_void,
            map: *mut c_void,
            buf: *mut c_void,
            buflen: u64,
            callback: BusDmamapCallback,
            callback_arg: *mut c_void,
            flags: c_int,
        ) -> c_int;
    }
}

/// KPIs the boot thread's C shim (`kmod/shim/isboot_boot.c`) calls; Rust never calls them.
/// They are declared here so that every KPI the module uses is listed, with its prototype, in
/// one place (and `check_kld.py` checks these names against the FreeBSD headers too). Struct
/// pointers are opaque here: only the shim knows the structures.
pub mod shim_kpis {
    use core::ffi::{c_char, c_int, c_uint, c_ulong, c_void};

    extern "C" {
        /// `device_t device_get_parent(device_t dev);` (sys/bus.h): the bus whose kobj
        /// methods `pci_read_config(9)` and friends dispatch on.
        pub fn device_get_parent(dev: *mut c_void) -> *mut c_void;
        /// `kobj_method_t *kobj_lookup_method(kobj_class_t cls, kobj_method_t **cep,
        /// kobjop_desc_t desc);` (sys/kobj.h): the cache-miss path of `KOBJOPLOOKUP`, which
        /// the generated `PCI_READ_CONFIG` etc. (isboot_pci.c) expand to.
        pub fn kobj_lookup_method(
            cls: *mut c_void,
            cep: *mut *mut c_void,
            desc: *mut c_void,
        ) -> *mut c_void;
        /// `extern struct kobjop_desc pci_read_config_desc;` (pci_if.h, generated from
        /// sys/dev/pci/pci_if.m)
        pub static pci_read_config_desc: [u64; 3];
        /// `extern struct kobjop_desc pci_write_config_desc;` (pci_if.h)
        pub static pci_write_config_desc: [u64; 3];
        /// `extern struct kobjop_desc pci_enable_busmaster_desc;` (pci_if.h)
        pub static pci_enable_busmaster_desc: [u64; 3];
        /// `int socreate(int dom, struct socket **aso, int type, int proto,
        /// struct ucred *cred, struct thread *td);` (sys/socketvar.h)
        pub fn socreate(
            dom: c_int,
            aso: *mut *mut c_void,
            ty: c_int,
            proto: c_int,
            cred: *mut c_void,
            td: *mut c_void,
        ) -> c_int;
        /// `int soconnect(struct socket *so, struct sockaddr *nam, struct thread *td);`
        pub fn soconnect(so: *mut c_void, nam: *mut c_void, td: *mut c_void) -> c_int;
        /// `int sosend(struct socket *so, struct sockaddr *addr, struct uio *uio,
        /// struct mbuf *top, struct mbuf *control, int flags, struct thread *td);`
        pub fn sosend(
            so: *mut c_void,
            addr: *mut c_void,
            uio: *mut c_void,
            top: *mut c_void,
            control: *mut c_void,
            flags: c_int,
            td: *mut c_void,
        ) -> c_int;
        /// `int soreceive(struct socket *so, struct sockaddr **paddr, struct uio *uio,
        /// struct mbuf **mp0, struct mbuf **controlp, int *flagsp);`
        pub fn soreceive(
            so: *mut c_void,
            paddr: *mut *mut c_void,
            uio: *mut c_void,
            mp0: *mut *mut c_void,
            controlp: *mut *mut c_void,
            flagsp: *mut c_int,
        ) -> c_int;
        /// `int soclose(struct socket *so);`
        pub fn soclose(so: *mut c_void) -> c_int;
        /// `int so_setsockopt(struct socket *so, int level, int optname, void *optval,
        /// size_t optlen);` (sys/sockopt.h)
        pub fn so_setsockopt(
            so: *mut c_void,
            level: c_int,
            optname: c_int,
            optval: *mut c_void,
            optlen: usize,
        ) -> c_int;
        /// `int sogetopt(struct socket *so, struct sockopt *sopt);` (sys/sockopt.h)
        pub fn sogetopt(so: *mut c_void, sopt: *mut c_void) -> c_int;
        /// `int ifioctl(struct socket *, u_long, caddr_t, struct thread *);` (net/if_var.h)
        pub fn ifioctl(so: *mut c_void, cmd: c_ulong, data: *mut c_char, td: *mut c_void) -> c_int;

        /// `struct cam_devq *cam_simq_alloc(uint32_t max_sim_transactions);` (cam/cam_sim.h)
        pub fn cam_simq_alloc(max_sim_transactions: u32) -> *mut c_void;
        /// `void cam_simq_free(struct cam_devq *devq);`
        pub fn cam_simq_free(devq: *mut c_void);
        /// ```c
        /// struct cam_sim *cam_sim_alloc(sim_action_func sim_action, sim_poll_func sim_poll,
        ///     const char *sim_name, void *softc, uint32_t unit, struct mtx *mtx,
        ///     int max_dev_transactions, int max_tagged_dev_transactions,
        ///     struct cam_devq *queue);
        /// ```
        #[allow(clippy::too_many_arguments)]
        pub fn cam_sim_alloc(
            sim_action: *mut c_void,
            sim_poll: *mut c_void,
            sim_name: *const c_char,
            softc: *mut c_void,
            unit: u32,
            mtx: *mut c_void,
            max_dev_transactions: c_int,
            max_tagged_dev_transactions: c_int,
            queue: *mut c_void,
        ) -> *mut c_void;
        /// `void cam_sim_free(struct cam_sim *sim, int free_devq);`
        pub fn cam_sim_free(sim: *mut c_void, free_devq: c_int);
        /// `int xpt_bus_register(struct cam_sim *sim, device_t parent, uint32_t bus);`
        /// (cam/cam_xpt_sim.h)
        pub fn xpt_bus_register(sim: *mut c_void, parent: *mut c_void, bus: u32) -> c_int;
        /// `int xpt_bus_deregister(path_id_t path_id);`
        pub fn xpt_bus_deregister(path_id: u32) -> c_int;
        /// `uint32_t xpt_freeze_simq(struct cam_sim *sim, u_int count);`
        pub fn xpt_freeze_simq(sim: *mut c_void, count: c_uint) -> u32;
        /// `void xpt_release_simq(struct cam_sim *sim, int run_queue);`
        pub fn xpt_release_simq(sim: *mut c_void, run_queue: c_int);
        /// `uint32_t xpt_freeze_devq(struct cam_path *path, u_int count);`
        pub fn xpt_freeze_devq(path: *mut c_void, count: c_uint) -> u32;
        /// `void xpt_done(union ccb *done_ccb);`
        pub fn xpt_done(done_ccb: *mut c_void);
        /// ```c
        /// cam_status xpt_create_path(struct cam_path **new_path_ptr,
        ///     struct cam_periph *perph, path_id_t path_id, target_id_t target_id,
        ///     lun_id_t lun_id);
        /// ```
        /// (cam/cam_xpt.h)
        pub fn xpt_create_path(
            new_path_ptr: *mut *mut c_void,
            perph: *mut c_void,
            path_id: u32,
            target_id: u32,
            lun_id: u64,
        ) -> u32;
        /// `void xpt_free_path(struct cam_path *path);`
        pub fn xpt_free_path(path: *mut c_void);
        /// `union ccb *xpt_alloc_ccb_nowait(void);`
        pub fn xpt_alloc_ccb_nowait() -> *mut c_void;
        /// `void xpt_free_ccb(union ccb *free_ccb);`
        pub fn xpt_free_ccb(free_ccb: *mut c_void);
        /// `void xpt_rescan(union ccb *ccb);`: takes the CCB and its path.
        pub fn xpt_rescan(ccb: *mut c_void);
        /// `void xpt_async(uint32_t async_code, struct cam_path *path, void *async_arg);`
        pub fn xpt_async(async_code: u32, path: *mut c_void, async_arg: *mut c_void);
        /// `struct mtx *xpt_path_mtx(struct cam_path *path);`
        pub fn xpt_path_mtx(path: *mut c_void) -> *mut c_void;
        /// `struct cam_periph *cam_periph_find(struct cam_path *path, char *name);`
        /// (cam/cam_periph.h)
        pub fn cam_periph_find(path: *mut c_void, name: *mut c_char) -> *mut c_void;
        /// `void cam_calc_geometry(struct ccb_calc_geometry *ccg, int extended);`
        /// (cam/cam_ccb.h)
        pub fn cam_calc_geometry(ccg: *mut c_void, extended: c_int);

        /// `struct g_provider *g_provider_by_name(char const *arg);` (geom/geom.h)
        pub fn g_provider_by_name(arg: *const c_char) -> *mut c_void;
        /// `extern struct sx topology_lock;` (geom/geom.h; `g_topology_lock()` is
        /// `sx_xlock(&topology_lock)`)
        pub static mut topology_lock: [u64; 4];
        /// `int _sx_xlock(struct sx *sx, int opts, const char *file, int line);`
        /// (sys/sx.h; what `sx_xlock` calls in a module)
        pub fn _sx_xlock(sx: *mut c_void, opts: c_int, file: *const c_char, line: c_int) -> c_int;
        /// `void _sx_xunlock(struct sx *sx, const char *file, int line);`
        pub fn _sx_xunlock(sx: *mut c_void, file: *const c_char, line: c_int);

        /// `int snprintf(char *, size_t, const char *, ...) __printflike(3, 4);`
        /// (sys/systm.h)
        pub fn snprintf(buf: *mut c_char, len: usize, fmt: *const c_char, ...) -> c_int;
        /// `size_t strlcpy(char *, const char *, size_t);` (sys/libkern.h)
        pub fn strlcpy(dst: *mut c_char, src: *const c_char, len: usize) -> usize;
    }
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

    // --- the HCA's shim (kmod/shim/isboot_pci.c, prototypes in isboot_pci.h) -------------------
    extern "C" {
        /// `uint32_t isboot_pci_read_config(device_t dev, int reg, int width);`:
        /// `pci_read_config(9)`.
        pub fn isboot_pci_read_config(dev: *mut c_void, reg: c_int, width: c_int) -> u32;
        /// `void isboot_pci_write_config(device_t dev, int reg, uint32_t val, int width);`:
        /// `pci_write_config(9)`.
        pub fn isboot_pci_write_config(dev: *mut c_void, reg: c_int, val: u32, width: c_int);
        /// `int isboot_pci_enable_busmaster(device_t dev);`: `pci_enable_busmaster(9)`.
        pub fn isboot_pci_enable_busmaster(dev: *mut c_void) -> c_int;
        /// `int isboot_dmamem_alloc(bus_dma_tag_t, void **vaddr, int flags, bus_dmamap_t *)`:
        /// `bus_dmamem_alloc(9)`.
        pub fn isboot_dmamem_alloc(
            tag: *mut c_void,
            vaddr: *mut *mut c_void,
            flags: c_int,
            mapp: *mut *mut c_void,
        ) -> c_int;
        /// `void isboot_dmamem_free(bus_dma_tag_t, void *vaddr, bus_dmamap_t)`:
        /// `bus_dmamem_free(9)`.
        pub fn isboot_dmamem_free(tag: *mut c_void, vaddr: *mut c_void, map: *mut c_void);
        /// `void isboot_dmamap_unload(bus_dma_tag_t, bus_dmamap_t)`: `bus_dmamap_unload(9)`.
        pub fn isboot_dmamap_unload(tag: *mut c_void, map: *mut c_void);
        /// `void isboot_dmamap_sync(bus_dma_tag_t, bus_dmamap_t, int op)`:
        /// `bus_dmamap_sync(9)`.
        pub fn isboot_dmamap_sync(tag: *mut c_void, map: *mut c_void, op: c_int);
    }

    // --- the boot thread's shim (kmod/shim/isboot_boot.c, prototypes in isboot_boot.h) --------
    use crate::abi::{Ccb, CcbInfo, IoVec, Mtx, PathInqInfo, Socket};
    use core::ffi::{c_char, c_int, c_uint, c_void};

    extern "C" {
        /// `int isboot_so_create(int dom, int type, int proto, struct socket **sop);`:
        /// socreate(9) with the thread's credential (its vnet comes from it).
        pub fn isboot_so_create(
            dom: c_int,
            ty: c_int,
            proto: c_int,
            sop: *mut *mut Socket,
        ) -> c_int;
        /// `int isboot_so_close(struct socket *so);`: soclose(9).
        pub fn isboot_so_close(so: *mut Socket) -> c_int;
        /// `int isboot_so_setopt_int(struct socket *so, int level, int name, int value);`
        pub fn isboot_so_setopt_int(
            so: *mut Socket,
            level: c_int,
            name: c_int,
            value: c_int,
        ) -> c_int;
        /// `int isboot_so_setopt_timeout(struct socket *so, int name, uint64_t usec);`
        /// (`SO_RCVTIMEO`/`SO_SNDTIMEO` as a `struct timeval`; 0 is for ever)
        pub fn isboot_so_setopt_timeout(so: *mut Socket, name: c_int, usec: u64) -> c_int;
        /// `int isboot_so_connect4(struct socket *so, uint32_t addr, uint16_t port,
        /// uint32_t timeout_ms);` (host order): soconnect(9) and the wait for the handshake.
        pub fn isboot_so_connect4(so: *mut Socket, addr: u32, port: u16, timeout_ms: u32) -> c_int;
        /// `int isboot_so_send(struct socket *so, const void *buf, size_t len, size_t *sent);`
        pub fn isboot_so_send(
            so: *mut Socket,
            buf: *const c_void,
            len: usize,
            sent: *mut usize,
        ) -> c_int;
        /// `int isboot_so_recv(struct socket *so, void *buf, size_t len, int flags,
        /// size_t *got);`: soreceive(9); EWOULDBLOCK when `SO_RCVTIMEO` ran out.
        pub fn isboot_so_recv(
            so: *mut Socket,
            buf: *mut c_void,
            len: usize,
            flags: c_int,
            got: *mut usize,
        ) -> c_int;
        /// `int isboot_so_recvv(struct socket *so, struct iovec *iov, int iovcnt, int flags,
        /// size_t *got);`: soreceive(9) filling `iov` in order (which it advances); as
        /// `isboot_so_recv`, and `EWOULDBLOCK` at once with `MSG_DONTWAIT` and nothing there.
        pub fn isboot_so_recvv(
            so: *mut Socket,
            iov: *mut IoVec,
            iovcnt: c_int,
            flags: c_int,
            got: *mut usize,
        ) -> c_int;

        /// `int isboot_if_up(const char *name);`: `IFF_UP` through ifioctl(SIOCSIFFLAGS).
        pub fn isboot_if_up(name: *const c_char) -> c_int;
        /// `int isboot_if_addr4(const char *name, uint32_t addr, uint32_t mask);`:
        /// ifioctl(SIOCAIFADDR) (host order).
        pub fn isboot_if_addr4(name: *const c_char, addr: u32, mask: u32) -> c_int;
        /// `int isboot_cam_register(const struct isboot_pathinq *inq, uint32_t openings);`
        pub fn isboot_cam_register(inq: *const PathInqInfo, openings: u32) -> c_int;
        /// `int isboot_cam_device(char *name, size_t len);`: the da(4) unit on target 0 LUN 0
        /// ("" while there is none).
        pub fn isboot_cam_device(name: *mut c_char, len: usize) -> c_int;
        /// `int isboot_disk_opens(const char *name);`: the opens of its GEOM provider, or -1.
        pub fn isboot_disk_opens(name: *const c_char) -> c_int;
        /// `void isboot_cam_set_wake(struct mtx *mtx, const void *chan);`: after queueing a
        /// CCB, the action routine does `wakeup(chan)` with `mtx` held (NULL: no wakeup).
        pub fn isboot_cam_set_wake(mtx: *mut Mtx, chan: *const c_void);
        /// `u_int isboot_cam_pending(void);`: CCBs queued for the thread.
        pub fn isboot_cam_pending() -> c_uint;
        /// `int isboot_cam_next(struct isboot_ccb *out);`: 1 and the oldest queued CCB.
        pub fn isboot_cam_next(out: *mut CcbInfo) -> c_int;
        /// ```c
        /// void isboot_cam_complete_scsiio(union ccb *ccb, uint32_t status,
        ///     uint8_t scsi_status, uint32_t resid, const void *data, uint32_t data_len,
        ///     const void *sense, uint8_t sense_len, uint8_t sense_resid);
        /// ```
        #[allow(clippy::too_many_arguments)]
        pub fn isboot_cam_complete_scsiio(
            ccb: *mut Ccb,
            status: u32,
            scsi_status: u8,
            resid: u32,
            data: *const c_void,
            data_len: u32,
            sense: *const c_void,
            sense_len: u8,
            sense_resid: u8,
        );
        /// `void isboot_cam_complete(union ccb *ccb, uint32_t status);`
        pub fn isboot_cam_complete(ccb: *mut Ccb, status: u32);
        /// `void isboot_cam_freeze(int freeze);`: xpt_freeze_simq / xpt_release_simq.
        pub fn isboot_cam_freeze(freeze: c_int);
        /// `void isboot_cam_stop(void);`: new CCBs fail with `CAM_DEV_NOT_THERE`, queued ones
        /// too.
        pub fn isboot_cam_stop();
        /// `void isboot_cam_deregister(void);`: isboot_cam_stop(), then the bus goes
        /// (AC_LOST_DEVICE, xpt_bus_deregister, cam_sim_free) and the SIM mutex is destroyed.
        pub fn isboot_cam_deregister();
    }
}
