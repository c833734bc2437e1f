//! `--hca`: a simulated ConnectX on the PCI bus, and the newbus, PCI, resource and busdma KPIs
//! a driver uses to reach it, written from FreeBSD 14's sources:
//!
//! - `pci_find_dbsf` (`sys/dev/pci/pci.c`): the `device_t` of the function at that address,
//!   NULL if there is none;
//! - `device_get_parent`, `device_get_nameunit`, `device_get_driver`, `device_is_attached`
//!   (`sys/kern/subr_bus.c`): the function's parent is the bus `pci0`; an unclaimed child has
//!   no name (`make_device` with a NULL name leaves `nameunit` NULL), no driver and is not
//!   attached (`dev->state < DS_ATTACHED`); `owner=NAME` makes a driver own it (attached);
//! - kobj (`sys/sys/kobj.h`, `sys/kern/subr_kobj.c`): `pci_read_config(9)` and friends are
//!   inlines (`dev/pci/pcivar.h`) calling the generated `PCI_READ_CONFIG(device_get_parent(dev),
//!   dev, ...)`, whose `KOBJOPLOOKUP` reads `dev->ops->cache[desc->id & 255]` (a device starts
//!   with `KOBJ_FIELDS`: its `kobj_ops_t`), compares the entry's `desc` with the method's
//!   descriptor (`pci_read_config_desc`, a `struct kobjop_desc { u_int id; kobj_method_t
//!   deflt; }`) and on a miss calls `kobj_lookup_method(ops->cls, cep, desc)`, which finds the
//!   class's method (or `&desc->deflt`), stores it in `*cep` and returns it. The cache starts
//!   pointing at a `{ NULL, NULL }` entry (`kobj_init`'s `null_method`). The bus's methods
//!   follow `pci_read_config_method`/`pci_write_config_method`/`pci_enable_busmaster_method`
//!   (`pci.c`): config space of the child, bus mastering as the command register's bit 2;
//! - `bus_alloc_resource` (`subr_bus.c`, `SYS_RES_MEMORY` with rid `PCIR_BAR(0)` or
//!   `PCIR_BAR(2)`) and `rman_get_bustag`/`bushandle`/`virtual`/`size` (`subr_rman.c`): the
//!   tag is `X86_BUS_SPACE_MEM` (1), the handle a no-access mapping of the BAR's size: a driver's
//!   `bus_space_read_4`/`write_4` (an inline volatile access on amd64) faults, and
//!   [`crate::fault`] decodes the instruction and performs the access on the device model;
//!   `bus_release_resource` (14's four-argument form) unmaps it;
//! - busdma (`sys/sys/bus_dma.h`, `sys/x86/include/bus_dma.h`, `busdma_impl.h`,
//!   `sys/kern/subr_bus_dma.c`): a tag is a `struct bus_dma_tag_common` whose first word is its
//!   `struct bus_dma_impl *`, through which the inline `bus_dmamem_alloc`, `bus_dmamem_free`,
//!   `bus_dmamap_unload` and `bus_dmamap_sync` dispatch (the impl's function pointers in 14's
//!   order: tag_create, tag_destroy, tag_set_domain, id_mapped, map_create, map_destroy,
//!   mem_alloc, mem_free, load_ma, load_phys, load_buffer, map_waitok, map_complete, map_unload,
//!   map_sync). `bus_dmamem_alloc` takes the tag's `maxsize` from the device model's host
//!   memory, so the device reads and writes exactly what the module sees, and the bus address
//!   is the model's; `bus_dmamap_load` calls the callback with one segment;
//!   `bus_dma_tag_destroy` says EBUSY while memory of the tag is allocated.
//!
//! The device model (`net_sim::World`: a switch with the subnet manager, a gateway node, and
//! the booting node's dual-port HCA) is single-threaded: it lives on a "device" thread that
//! steps it paced to real time and serves the module threads' accesses over a channel.

use super::{kpanic, mem, threads, Ctx, Kind, Kpi};
use crate::cli::HcaOpts;
use hca::hal::{Bar, DmaDirection, Hal};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// `SYS_RES_MEMORY` (machine/resource.h).
const SYS_RES_MEMORY: i32 = 3;
/// `X86_BUS_SPACE_MEM` (x86/include/bus.h).
const X86_BUS_SPACE_MEM: u64 = 1;
/// errno values.
const EINVAL: u64 = 22;
const ENOMEM: u64 = 12;
const EBUSY: u64 = 16;
const EFBIG: u64 = 27;
const ENXIO: u64 = 6;
const PAGE: u64 = 4096;

/// A request to the device thread.
#[derive(Debug)]
enum Req {
    Read {
        bar: u8,
        off: usize,
    },
    Write {
        bar: u8,
        off: usize,
        val: u32,
    },
    CfgRead(u16),
    CfgWrite(u16, u32),
    Alloc(usize),
    Free {
        pa: u64,
        va: u64,
        pages: usize,
    },
    PagesInUse,
    /// The workload started: the fault schedule begins.
    StartFaults,
}

type Reply = (u64, u64);
/// A request and where its answer goes.
type Letter = (Req, mpsc::SyncSender<Reply>);

/// The device thread's mailbox.
static DEVICE: Mutex<Option<mpsc::Sender<Letter>>> = Mutex::new(None);

/// Counters of what the module did to the device (printed at the end).
pub static MMIO_READS: AtomicU64 = AtomicU64::new(0);
/// MMIO writes.
pub static MMIO_WRITES: AtomicU64 = AtomicU64::new(0);
/// Config-space accesses.
pub static CONFIG_ACCESSES: AtomicU64 = AtomicU64::new(0);
/// `bus_dmamap_sync` calls.
pub static SYNCS: AtomicU64 = AtomicU64::new(0);

fn request(r: Req) -> Reply {
    let tx = DEVICE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(tx) = tx else {
        return (u64::MAX, 0);
    };
    let (rtx, rrx) = mpsc::sync_channel(1);
    if tx.send((r, rtx)).is_err() {
        return (u64::MAX, 0);
    }
    rrx.recv().unwrap_or((u64::MAX, 0))
}

/// The workload started: the `--hca` fault schedule (`cut=`, `lid=`) begins now.
pub fn start_faults() {
    request(Req::StartFaults);
}

/// An MMIO access from the fault handler: `bar` 0 or 2, `off` inside it. Returns the value read
/// (all ones for a write).
pub fn mmio(bar: u8, off: usize, write: Option<u32>) -> u32 {
    match write {
        Some(val) => {
            MMIO_WRITES.fetch_add(1, Ordering::Relaxed);
            request(Req::Write { bar, off, val });
            u32::MAX
        }
        None => {
            MMIO_READS.fetch_add(1, Ordering::Relaxed);
            request(Req::Read { bar, off }).0 as u32
        }
    }
}

/// The BAR mappings the fault handler looks addresses up in: `[lo, hi, bar]` per slot
/// (`lo == 0`: free).
pub static BAR_RANGES: [[AtomicU64; 3]; 2] = [
    [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
    [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
];

/// The BAR and offset of a faulting address, if it is in a mapped BAR.
pub fn bar_of(addr: u64) -> Option<(u8, usize)> {
    BAR_RANGES.iter().find_map(|r| {
        let lo = r[0].load(Ordering::Acquire);
        let hi = r[1].load(Ordering::Acquire);
        (lo != 0 && addr >= lo && addr < hi)
            .then(|| (r[2].load(Ordering::Acquire) as u8, (addr - lo) as usize))
    })
}

fn device_thread(
    o: HcaOpts,
    ready: mpsc::Sender<Result<[usize; 2], String>>,
    rx: mpsc::Receiver<Letter>,
) {
    use std::net::{Ipv4Addr, SocketAddr};
    let world = net_sim::World::new(net_sim::FabricConfig {
        gateway: o.gateway.0,
        prefix: o.gateway.1,
        relay: Ipv4Addr::LOCALHOST,
        dhcp_server: SocketAddr::from((Ipv4Addr::LOCALHOST, 67)),
        dhcp_relay: false,
        loss_permille: o.loss_pct * 10,
        forwards: o
            .forwards
            .iter()
            .map(|&p| (p, SocketAddr::from((Ipv4Addr::LOCALHOST, p))))
            .collect(),
        node_guid: o.guid,
        port1_connected: !o.port1_down,
        seed: 1,
        pcap: None,
    });
    let mut world = match world {
        Ok(w) => w,
        Err(e) => {
            let _ = ready.send(Err(format!("the simulated fabric: {e}")));
            return;
        }
    };
    let hal = world.sim.hal(world.node);
    let _ = ready.send(Ok([hal.bar_len(Bar::BAR0), hal.bar_len(Bar::BAR2)]));
    let t0 = Instant::now();
    let sim0 = world.sim.now();
    loop {
        match rx.recv_timeout(Duration::from_millis(1)) {
            Ok((r, reply)) => {
                let out = match r {
                    Req::Read { bar, off } => (u64::from(hal.mmio_read32(Bar(bar), off)), 0),
                    Req::Write { bar, off, val } => {
                        hal.mmio_write32(Bar(bar), off, val);
                        (0, 0)
                    }
                    Req::CfgRead(off) => (u64::from(hal.pci_config_read32(off)), 0),
                    Req::CfgWrite(off, v) => {
                        hal.pci_config_write32(off, v);
                        (0, 0)
                    }
                    Req::Alloc(pages) => match hal.dma_alloc(pages, DmaDirection::Both) {
                        Some((pa, va)) => (pa, va.as_ptr() as u64),
                        None => (0, 0),
                    },
                    Req::Free { pa, va, pages } => {
                        if let Some(v) = NonNull::new(va as *mut u8) {
                            // SAFETY: (pa, va, pages) is what dma_alloc returned for this
                            // allocation, freed once (the caller removed it from its table).
                            unsafe { hal.dma_dealloc(pa, v, pages) };
                        }
                        (0, 0)
                    }
                    Req::PagesInUse => (world.sim.dma_pages_in_use(world.node) as u64, 0),
                    Req::StartFaults => {
                        for &(port, after) in &o.cuts {
                            if let Some(Some(l)) = world.node_links.get(usize::from(port) - 1) {
                                world.sim.set_link(*l, false, after);
                                eprintln!(
                                    "kldrun: hca: port {port}'s cable is pulled in {:.1} s",
                                    after.as_secs_f64()
                                );
                            }
                        }
                        for &after in &o.sm_restarts {
                            world.sim.sm_restart(after);
                            eprintln!(
                                "kldrun: hca: the subnet manager restarts in {:.1} s",
                                after.as_secs_f64()
                            );
                        }
                        for &(port, lid, after) in &o.lids {
                            world.sim.change_lid(world.node, port, lid, after);
                            eprintln!(
                                "kldrun: hca: port {port} gets LID {lid:#x} in {:.1} s",
                                after.as_secs_f64()
                            );
                        }
                        (0, 0)
                    }
                };
                let _ = reply.send(out);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // Paced to real time: the simulated clock follows the wall clock since the start.
        let target = sim0 + t0.elapsed();
        let now = world.sim.now();
        if target > now {
            world.gw.poll();
            world
                .sim
                .run_for((target - now).min(Duration::from_millis(20)));
        }
    }
}

/// The emulated devices: their `device_t`s, kobj structures and bookkeeping.
#[derive(Debug)]
struct State {
    opts: HcaOpts,
    bar_len: [usize; 2],
    /// `device_t` of the HCA and of its bus `pci0`.
    dev: u64,
    bus: u64,
    bus_class: u64,
    /// `kobj_method_t` entries of the bus's class, by descriptor address.
    methods: HashMap<u64, u64>,
    /// A driver's `driver_t` (for `owner=`).
    owner_driver: u64,
    owner_name: u64,
    bus_name: u64,
    resources: HashMap<u64, Resource>,
    root_tag: u64,
    impl_table: u64,
    tags: HashMap<u64, Tag>,
    maps: HashMap<u64, Map>,
}

#[derive(Debug)]
struct Resource {
    bar: u8,
    rid: i32,
    addr: u64,
    len: usize,
    slot: usize,
    caller: u64,
}

#[derive(Debug, Clone, Copy)]
struct Tag {
    alignment: u64,
    maxsize: u64,
    nsegments: i32,
    maxsegsz: u64,
    caller: u64,
}

#[derive(Debug, Clone, Copy)]
struct Map {
    tag: u64,
    pa: u64,
    va: u64,
    pages: usize,
    loaded: bool,
    caller: u64,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn leak_words(n: usize) -> u64 {
    Box::leak(vec![0u64; n].into_boxed_slice()).as_mut_ptr() as u64
}

fn leak_cstr(s: &str) -> u64 {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    Box::leak(v.into_boxed_slice()).as_ptr() as u64
}

/// Sets up `--hca`: the device thread with the fabric, the bus and the device. After
/// [`super::init`] (the stubs exist).
pub fn init(o: &HcaOpts) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let (rtx, rrx) = mpsc::channel();
    let opts = o.clone();
    std::thread::Builder::new()
        .name("hca-sim".into())
        .spawn(move || device_thread(opts, rtx, rx))
        .map_err(|e| format!("cannot start the device thread: {e}"))?;
    let bar_len = rrx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the device thread did not start".to_string())??;
    *DEVICE.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);

    // kobj: the bus's ops (cache[256] then cls), every cache entry at a null method.
    let null_method = leak_words(2);
    let ops = leak_words(257);
    for i in 0..256 {
        // SAFETY: inside the freshly leaked ops.
        unsafe { mem::write(ops + i * 8, null_method) };
    }
    // struct kobj_class { name, methods, size, baseclasses, refs, ops }
    let bus_class = leak_words(6);
    // SAFETY: the leaked class and ops.
    unsafe {
        mem::write(bus_class, leak_cstr("pci"));
        mem::write(bus_class + 40, ops);
        mem::write(ops + 256 * 8, bus_class);
    }
    let bus = leak_words(4);
    // SAFETY: a device starts with its kobj_ops_t.
    unsafe { mem::write(bus, ops) };
    let dev_ops = leak_words(257);
    for i in 0..256 {
        // SAFETY: inside the leaked ops.
        unsafe { mem::write(dev_ops + i * 8, null_method) };
    }
    let dev = leak_words(4);
    // SAFETY: as for the bus.
    unsafe { mem::write(dev, dev_ops) };
    let mut methods = HashMap::new();
    for (desc, func) in [
        ("pci_read_config_desc", "pci_read_config_method"),
        ("pci_write_config_desc", "pci_write_config_method"),
        ("pci_enable_busmaster_desc", "pci_enable_busmaster_method"),
    ] {
        let d = super::symbol(desc).ok_or("descriptor missing")?;
        let m = leak_words(2);
        // SAFETY: the leaked method entry: { desc, func }.
        unsafe {
            mem::write(m, d);
            mem::write(m + 8, super::stub_of(func));
        }
        methods.insert(d, m);
    }
    // struct bus_dma_impl: 15 function pointers in 14's order.
    let impl_table = leak_words(15);
    let unsupported = super::stub_of("busdma_unsupported");
    for (i, name) in [
        "",
        "",
        "",
        "",
        "",
        "",
        "busdma_mem_alloc",
        "busdma_mem_free",
        "",
        "",
        "",
        "",
        "",
        "busdma_map_unload",
        "busdma_map_sync",
    ]
    .iter()
    .enumerate()
    {
        let f = if name.is_empty() {
            unsupported
        } else {
            super::stub_of(name)
        };
        // SAFETY: inside the leaked table.
        unsafe { mem::write(impl_table + i as u64 * 8, f) };
    }
    let root_tag = leak_words(16);
    // SAFETY: a tag starts with its impl pointer.
    unsafe { mem::write(root_tag, impl_table) };
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(State {
        opts: o.clone(),
        bar_len,
        dev,
        bus,
        bus_class,
        methods,
        owner_driver: leak_words(6),
        owner_name: leak_cstr(o.owner.as_deref().unwrap_or("")),
        bus_name: leak_cstr("pci0"),
        resources: HashMap::new(),
        root_tag,
        impl_table,
        tags: HashMap::new(),
        maps: HashMap::new(),
    });
    Ok(())
}

fn with<T>(c: &Ctx, f: impl FnOnce(&mut State) -> T) -> T {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    match g.as_mut() {
        Some(s) => f(s),
        None => {
            drop(g);
            kpanic(
                c,
                "kldrun: a PCI device pointer the kernel never handed out (no --hca)",
            )
        }
    }
}

fn verbose(msg: impl FnOnce() -> String) {
    if super::VERBOSE.load(Ordering::Relaxed) {
        eprintln!("kldrun: hca: {}", msg());
    }
}

// --- newbus ---------------------------------------------------------------------------------

/// `device_t pci_find_dbsf(uint32_t domain, uint8_t bus, uint8_t slot, uint8_t func);`
pub fn pci_find_dbsf(c: &mut Ctx) -> u64 {
    let (d, b, s, f) = (
        c.args.uint(),
        c.args.uint() as u8,
        c.args.uint() as u8,
        c.args.uint() as u8,
    );
    let g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let r = match g.as_ref() {
        Some(st) if d == 0 && (st.opts.bus, st.opts.device, st.opts.function) == (b, s, f) => {
            st.dev
        }
        _ => 0,
    };
    drop(g);
    verbose(|| {
        format!(
            "pci_find_dbsf({d}, {b}, {s}, {f}) = {}",
            if r == 0 { "NULL" } else { "the simulated HCA" }
        )
    });
    r
}

fn known(st: &State, dev: u64) -> bool {
    dev == st.dev || dev == st.bus
}

/// `device_t device_get_parent(device_t dev);`
pub fn device_get_parent(c: &mut Ctx) -> u64 {
    let dev = c.args.ptr();
    with(c, |st| {
        if dev == st.dev {
            Some(st.bus)
        } else if dev == st.bus {
            Some(0)
        } else {
            None
        }
    })
    .unwrap_or_else(|| kpanic(c, &format!("device_get_parent: {dev:#x} is not a device_t")))
}

/// `const char *device_get_nameunit(device_t dev);`
pub fn device_get_nameunit(c: &mut Ctx) -> u64 {
    let dev = c.args.ptr();
    with(c, |st| {
        if dev == st.bus {
            Some(st.bus_name)
        } else if dev == st.dev {
            Some(if st.opts.owner.is_some() {
                st.owner_name
            } else {
                0
            })
        } else {
            None
        }
    })
    .unwrap_or_else(|| {
        kpanic(
            c,
            &format!("device_get_nameunit: {dev:#x} is not a device_t"),
        )
    })
}

/// `driver_t *device_get_driver(device_t dev);`
pub fn device_get_driver(c: &mut Ctx) -> u64 {
    let dev = c.args.ptr();
    with(c, |st| {
        known(st, dev).then(|| {
            if dev == st.dev && st.opts.owner.is_some() {
                st.owner_driver
            } else if dev == st.bus {
                st.bus_class
            } else {
                0
            }
        })
    })
    .unwrap_or_else(|| kpanic(c, &format!("device_get_driver: {dev:#x} is not a device_t")))
}

/// `int device_is_attached(device_t dev);`
pub fn device_is_attached(c: &mut Ctx) -> u64 {
    let dev = c.args.ptr();
    with(c, |st| {
        known(st, dev).then(|| u64::from(dev == st.bus || st.opts.owner.is_some()))
    })
    .unwrap_or_else(|| {
        kpanic(
            c,
            &format!("device_is_attached: {dev:#x} is not a device_t"),
        )
    })
}

/// `kobj_method_t *kobj_lookup_method(kobj_class_t cls, kobj_method_t **cep, kobjop_desc_t
/// desc);` — the class's method for `desc`, else `&desc->deflt`; stored in `*cep`.
pub fn kobj_lookup_method(c: &mut Ctx) -> u64 {
    let (cls, cep, desc) = (c.args.ptr(), c.args.ptr(), c.args.ptr());
    let m = with(c, |st| {
        if cls != st.bus_class {
            return None;
        }
        Some(st.methods.get(&desc).copied().unwrap_or(desc + 8))
    })
    .unwrap_or_else(|| {
        kpanic(
            c,
            &format!("kobj_lookup_method: {cls:#x} is not a kobj class"),
        )
    });
    if cep != 0 {
        // SAFETY: `cep` points into the ops cache KOBJOPLOOKUP read.
        unsafe { mem::write(cep, m) };
    }
    m
}

/// `int kobj_error_method(void);` — ENXIO (a method the class lacks).
pub fn kobj_error_method(_: &mut Ctx) -> u64 {
    ENXIO
}

fn check_child(c: &Ctx, bus: u64, child: u64, what: &str) {
    let ok = with(c, |st| bus == st.bus && child == st.dev);
    if !ok {
        kpanic(
            c,
            &format!("{what}: not the simulated HCA on pci0 ({bus:#x}, {child:#x})"),
        );
    }
}

/// The bus's `PCI_READ_CONFIG(dev, child, reg, width)` (pci.c `pci_read_config_method`).
pub fn pci_read_config_method(c: &mut Ctx) -> u64 {
    let (bus, child, reg, width) = (c.args.ptr(), c.args.ptr(), c.args.int(), c.args.int());
    check_child(c, bus, child, "PCI_READ_CONFIG");
    if !(0..4096).contains(&reg) || !matches!(width, 1 | 2 | 4) || reg % width != 0 {
        return u64::from(u32::MAX);
    }
    CONFIG_ACCESSES.fetch_add(1, Ordering::Relaxed);
    let dword = request(Req::CfgRead((reg & !3) as u16)).0 as u32;
    let v = dword >> ((reg & 3) * 8);
    let v = match width {
        1 => v & 0xff,
        2 => v & 0xffff,
        _ => v,
    };
    verbose(|| format!("pci_read_config(reg {reg:#x}, width {width}) = {v:#x}"));
    u64::from(v)
}

/// The bus's `PCI_WRITE_CONFIG(dev, child, reg, val, width)`.
pub fn pci_write_config_method(c: &mut Ctx) -> u64 {
    let (bus, child, reg, val, width) = (
        c.args.ptr(),
        c.args.ptr(),
        c.args.int(),
        c.args.uint(),
        c.args.int(),
    );
    check_child(c, bus, child, "PCI_WRITE_CONFIG");
    if !(0..4096).contains(&reg) || !matches!(width, 1 | 2 | 4) || reg % width != 0 {
        return 0;
    }
    CONFIG_ACCESSES.fetch_add(1, Ordering::Relaxed);
    let at = (reg & !3) as u16;
    let v = if width == 4 {
        val
    } else {
        let old = request(Req::CfgRead(at)).0 as u32;
        let shift = (reg & 3) * 8;
        let mask = if width == 1 { 0xffu32 } else { 0xffff } << shift;
        (old & !mask) | ((val << shift) & mask)
    };
    verbose(|| format!("pci_write_config(reg {reg:#x}, {val:#x}, width {width})"));
    request(Req::CfgWrite(at, v));
    0
}

/// The bus's `PCI_ENABLE_BUSMASTER(dev, child)`: the command register's bus-master bit.
pub fn pci_enable_busmaster_method(c: &mut Ctx) -> u64 {
    let (bus, child) = (c.args.ptr(), c.args.ptr());
    check_child(c, bus, child, "PCI_ENABLE_BUSMASTER");
    CONFIG_ACCESSES.fetch_add(2, Ordering::Relaxed);
    let cmd = request(Req::CfgRead(4)).0 as u32;
    request(Req::CfgWrite(4, cmd | 0x4));
    verbose(|| "pci_enable_busmaster".into());
    0
}

// --- resources --------------------------------------------------------------------------------

/// `struct resource *bus_alloc_resource(device_t dev, int type, int *rid, rman_res_t start,
/// rman_res_t end, rman_res_t count, u_int flags);`
pub fn bus_alloc_resource(c: &mut Ctx) -> u64 {
    let (dev, ty, ridp) = (c.args.ptr(), c.args.int(), c.args.ptr());
    let caller = c.ret_addr;
    // SAFETY: the module passes `&rid`.
    let rid: i32 = unsafe { mem::read(ridp) };
    let r = with(c, |st| {
        if dev != st.dev || ty != SYS_RES_MEMORY {
            return Err(format!("no resource of type {ty} on that device"));
        }
        let bar = match rid {
            0x10 => 0u8,
            0x18 => 2,
            _ => return Err(format!("rid {rid:#x} is not a memory BAR of the HCA")),
        };
        if st.resources.values().any(|r| r.bar == bar) {
            return Err(format!("BAR{bar} is allocated already"));
        }
        let len = st.bar_len[usize::from(bar / 2)];
        // SAFETY: a fresh anonymous mapping with no access: every touch faults.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err("cannot map".into());
        }
        let addr = p as u64;
        let slot = BAR_RANGES
            .iter()
            .position(|r| r[0].load(Ordering::Acquire) == 0)
            .unwrap_or(0);
        BAR_RANGES[slot][2].store(u64::from(bar), Ordering::Release);
        BAR_RANGES[slot][1].store(addr + len as u64, Ordering::Release);
        BAR_RANGES[slot][0].store(addr, Ordering::Release);
        let res = leak_words(4);
        st.resources.insert(
            res,
            Resource {
                bar,
                rid,
                addr,
                len,
                slot,
                caller,
            },
        );
        Ok((res, bar, addr, len))
    });
    match r {
        Ok((res, bar, addr, len)) => {
            verbose(|| {
                format!("bus_alloc_resource(BAR{bar}) = {res:#x}: {len:#x} bytes at {addr:#x} (no access: MMIO faults into the device model)")
            });
            res
        }
        Err(e) => {
            verbose(|| format!("bus_alloc_resource(type {ty}, rid {rid:#x}) = NULL: {e}"));
            0
        }
    }
}

/// `int bus_release_resource(device_t dev, int type, int rid, struct resource *r);` (14)
pub fn bus_release_resource(c: &mut Ctx) -> u64 {
    let (dev, ty, rid, res) = (c.args.ptr(), c.args.int(), c.args.int(), c.args.ptr());
    let r = with(c, |st| {
        let ok = st
            .resources
            .get(&res)
            .is_some_and(|r| dev == st.dev && ty == SYS_RES_MEMORY && r.rid == rid);
        if !ok {
            return None;
        }
        let r = st.resources.remove(&res)?;
        BAR_RANGES[r.slot][0].store(0, Ordering::Release);
        BAR_RANGES[r.slot][1].store(0, Ordering::Release);
        // SAFETY: the mapping bus_alloc_resource made.
        unsafe { libc::munmap(r.addr as *mut libc::c_void, r.len) };
        Some(r.bar)
    });
    match r {
        Some(bar) => {
            verbose(|| format!("bus_release_resource(BAR{bar}) = 0"));
            0
        }
        None => {
            verbose(|| {
                format!("bus_release_resource({ty}, {rid:#x}, {res:#x}) = EINVAL: not an allocated resource")
            });
            EINVAL
        }
    }
}

fn resource(c: &Ctx, res: u64, what: &str) -> (u64, usize) {
    with(c, |st| st.resources.get(&res).map(|r| (r.addr, r.len)))
        .unwrap_or_else(|| kpanic(c, &format!("{what}: {res:#x} is not an allocated resource")))
}

/// `bus_space_tag_t rman_get_bustag(struct resource *);`
pub fn rman_get_bustag(c: &mut Ctx) -> u64 {
    let r = c.args.ptr();
    resource(c, r, "rman_get_bustag");
    X86_BUS_SPACE_MEM
}

/// `bus_space_handle_t rman_get_bushandle(struct resource *);`
pub fn rman_get_bushandle(c: &mut Ctx) -> u64 {
    let r = c.args.ptr();
    resource(c, r, "rman_get_bushandle").0
}

/// `void *rman_get_virtual(struct resource *);`
pub fn rman_get_virtual(c: &mut Ctx) -> u64 {
    let r = c.args.ptr();
    resource(c, r, "rman_get_virtual").0
}

/// `rman_res_t rman_get_size(struct resource *);`
pub fn rman_get_size(c: &mut Ctx) -> u64 {
    let r = c.args.ptr();
    resource(c, r, "rman_get_size").1 as u64
}

// --- busdma ------------------------------------------------------------------------------------

/// `bus_dma_tag_t bus_get_dma_tag(device_t dev);`
pub fn bus_get_dma_tag(c: &mut Ctx) -> u64 {
    let dev = c.args.ptr();
    with(c, |st| known(st, dev).then_some(st.root_tag))
        .unwrap_or_else(|| kpanic(c, &format!("bus_get_dma_tag: {dev:#x} is not a device_t")))
}

/// `int bus_dma_tag_create(parent, alignment, boundary, lowaddr, highaddr, filtfunc,
/// filtfuncarg, maxsize, nsegments, maxsegsz, flags, lockfunc, lockfuncarg, *dmat);`
pub fn bus_dma_tag_create(c: &mut Ctx) -> u64 {
    let parent = c.args.ptr();
    let alignment = c.args.ptr();
    let _boundary = c.args.ptr();
    let _lowaddr = c.args.ptr();
    let _highaddr = c.args.ptr();
    let filter = c.args.ptr();
    let _filterarg = c.args.ptr();
    let maxsize = c.args.ptr();
    let nsegments = c.args.int();
    let maxsegsz = c.args.ptr();
    let _flags = c.args.int();
    let _lockfunc = c.args.ptr();
    let _lockarg = c.args.ptr();
    let dmat = c.args.ptr();
    let caller = c.ret_addr;
    let r = with(c, |st| {
        if parent != st.root_tag && !st.tags.contains_key(&parent) {
            return Err("the parent is not a tag");
        }
        // 14's common_bus_dma_tag_create: alignment a power of two, at least one segment;
        // filters are refused from 15 on, and nobody should pass one (bus_dma(9)).
        if filter != 0
            || alignment == 0
            || !alignment.is_power_of_two()
            || nsegments < 1
            || maxsize == 0
        {
            return Err("bad arguments");
        }
        let tag = leak_words(16);
        // SAFETY: a tag starts with its impl pointer (struct bus_dma_tag_common).
        unsafe { mem::write(tag, st.impl_table) };
        st.tags.insert(
            tag,
            Tag {
                alignment,
                maxsize,
                nsegments,
                maxsegsz,
                caller,
            },
        );
        // SAFETY: the module passes `&tag`.
        unsafe { mem::write(dmat, tag) };
        Ok(tag)
    });
    match r {
        Ok(t) => {
            verbose(|| {
                format!("bus_dma_tag_create(align {alignment:#x}, maxsize {maxsize:#x}, nsegments {nsegments}) = 0: {t:#x}")
            });
            0
        }
        Err(e) => {
            verbose(|| format!("bus_dma_tag_create = EINVAL: {e}"));
            EINVAL
        }
    }
}

/// `int bus_dma_tag_destroy(bus_dma_tag_t dmat);` — EBUSY while maps of it exist.
pub fn bus_dma_tag_destroy(c: &mut Ctx) -> u64 {
    let tag = c.args.ptr();
    let r = with(c, |st| {
        if !st.tags.contains_key(&tag) {
            return EINVAL;
        }
        if st.maps.values().any(|m| m.tag == tag) {
            return EBUSY;
        }
        st.tags.remove(&tag);
        0
    });
    verbose(|| format!("bus_dma_tag_destroy({tag:#x}) = {r}"));
    r
}

/// The impl's `mem_alloc(dmat, void **vaddr, int flags, bus_dmamap_t *mapp)`.
pub fn busdma_mem_alloc(c: &mut Ctx) -> u64 {
    let (tag, vaddrp, _flags, mapp) = (c.args.ptr(), c.args.ptr(), c.args.int(), c.args.ptr());
    let caller = c.ret_addr;
    let Some(t) = with(c, |st| st.tags.get(&tag).copied()) else {
        kpanic(c, &format!("bus_dmamem_alloc: {tag:#x} is not a tag"));
    };
    if t.alignment > PAGE {
        verbose(|| {
            format!(
                "bus_dmamem_alloc: alignment {:#x} > a page: ENOMEM",
                t.alignment
            )
        });
        return ENOMEM;
    }
    let pages = t.maxsize.div_ceil(PAGE) as usize;
    let (pa, va) = request(Req::Alloc(pages));
    if va == 0 || pa == u64::MAX {
        verbose(|| format!("bus_dmamem_alloc({pages} pages) = ENOMEM"));
        return ENOMEM;
    }
    let map = leak_words(2);
    with(c, |st| {
        st.maps.insert(
            map,
            Map {
                tag,
                pa,
                va,
                pages,
                loaded: false,
                caller,
            },
        );
    });
    // SAFETY: the module passes `&vaddr` and `&map`.
    unsafe {
        mem::write(vaddrp, va);
        mem::write(mapp, map);
    }
    verbose(|| format!("bus_dmamem_alloc({pages} pages) = 0: {va:#x}, bus address {pa:#x}"));
    0
}

/// The impl's `mem_free(dmat, void *vaddr, bus_dmamap_t map)`.
pub fn busdma_mem_free(c: &mut Ctx) -> u64 {
    let (tag, va, map) = (c.args.ptr(), c.args.ptr(), c.args.ptr());
    let m = with(c, |st| match st.maps.get(&map) {
        Some(m) if m.tag == tag && m.va == va => st.maps.remove(&map),
        _ => None,
    });
    let Some(m) = m else {
        kpanic(
            c,
            &format!("bus_dmamem_free: {va:#x}/{map:#x} was not allocated from tag {tag:#x}"),
        );
    };
    request(Req::Free {
        pa: m.pa,
        va: m.va,
        pages: m.pages,
    });
    verbose(|| {
        format!(
            "bus_dmamem_free(bus address {:#x}, {} pages)",
            m.pa, m.pages
        )
    });
    0
}

/// `int bus_dmamap_load(dmat, map, buf, buflen, callback, callback_arg, flags);`
pub fn bus_dmamap_load(c: &mut Ctx) -> u64 {
    let (tag, map, buf, buflen, cb, arg, _flags) = (
        c.args.ptr(),
        c.args.ptr(),
        c.args.ptr(),
        c.args.ptr(),
        c.args.ptr(),
        c.args.ptr(),
        c.args.int(),
    );
    let r = with(c, |st| {
        let t = *st.tags.get(&tag)?;
        let m = st.maps.get_mut(&map)?;
        if m.tag != tag {
            return None;
        }
        let end = m.va + m.pages as u64 * PAGE;
        if buf < m.va || buf.checked_add(buflen).is_none_or(|e| e > end) || buflen > t.maxsize {
            return Some(Err(EINVAL));
        }
        if buflen > t.maxsegsz && t.nsegments == 1 {
            return Some(Err(EFBIG));
        }
        m.loaded = true;
        Some(Ok(m.pa + (buf - m.va)))
    });
    let seg = match r {
        Some(Ok(pa)) => pa,
        Some(Err(e)) => {
            verbose(|| format!("bus_dmamap_load({buf:#x}, {buflen:#x}) = {e}"));
            return e;
        }
        None => kpanic(
            c,
            &format!("bus_dmamap_load: {map:#x} is not a map of tag {tag:#x}"),
        ),
    };
    // One segment, { ds_addr, ds_len }, for the callback (run before returning).
    let segs = Box::new([seg, buflen]);
    verbose(|| format!("bus_dmamap_load({buf:#x}, {buflen:#x}) = 0: segment {seg:#x}"));
    // SAFETY: the module's callback: void (*)(void *, bus_dma_segment_t *, int, int).
    unsafe { threads::call(c.thread, cb, &[arg, segs.as_ptr() as u64, 1, 0]) };
    0
}

/// The impl's `map_unload(dmat, map)`.
pub fn busdma_map_unload(c: &mut Ctx) -> u64 {
    let (tag, map) = (c.args.ptr(), c.args.ptr());
    let ok = with(c, |st| match st.maps.get_mut(&map) {
        Some(m) if m.tag == tag => {
            m.loaded = false;
            true
        }
        _ => false,
    });
    if !ok {
        kpanic(
            c,
            &format!("bus_dmamap_unload: {map:#x} is not a map of tag {tag:#x}"),
        );
    }
    0
}

/// The impl's `map_sync(dmat, map, op)`: nothing to copy (coherent, no bounce pages); checks
/// that the map is loaded.
pub fn busdma_map_sync(c: &mut Ctx) -> u64 {
    let (tag, map, op) = (c.args.ptr(), c.args.ptr(), c.args.int());
    let ok = with(c, |st| {
        st.maps.get(&map).is_some_and(|m| m.tag == tag && m.loaded)
    });
    if !ok {
        kpanic(
            c,
            &format!("bus_dmamap_sync: {map:#x} is not a loaded map of tag {tag:#x}"),
        );
    }
    if !(1..=15).contains(&op) {
        kpanic(
            c,
            &format!("bus_dmamap_sync: op {op:#x} is not BUS_DMASYNC_*"),
        );
    }
    SYNCS.fetch_add(1, Ordering::Relaxed);
    0
}

/// An impl entry kldrun does not provide (map_create, load_phys...).
pub fn busdma_unsupported(c: &mut Ctx) -> u64 {
    kpanic(c, "kldrun: a bus_dma_impl method kldrun does not emulate (map_create, load_ma, load_phys, ...)")
}

fn desc_init(addr: u64, id: u32) {
    // struct kobjop_desc { u_int id; kobj_method_t deflt = { &desc, kobj_error_method }; }
    // SAFETY: the variable's own 24 bytes in the low kernel area.
    unsafe {
        mem::write(addr, u64::from(id));
        mem::write(addr + 8, addr);
        mem::write(addr + 16, super::stub_of("kobj_error_method"));
    }
}

/// The KPIs of this file.
pub fn kpis() -> Vec<Kpi> {
    let f = |name: &'static str, func: super::KpiFn, n: u8| Kpi {
        name,
        kind: Kind::Func(func, n),
    };
    let i = |name: &'static str, func: super::KpiFn, n: u8| Kpi {
        name,
        kind: Kind::Internal(func, n),
    };
    let d = |name: &'static str, init: fn(u64)| Kpi {
        name,
        kind: Kind::Data(24, init),
    };
    vec![
        f("pci_find_dbsf", pci_find_dbsf, 4),
        f("device_get_parent", device_get_parent, 1),
        f("device_get_nameunit", device_get_nameunit, 1),
        f("device_get_driver", device_get_driver, 1),
        f("device_is_attached", device_is_attached, 1),
        f("kobj_lookup_method", kobj_lookup_method, 3),
        f("kobj_error_method", kobj_error_method, 0),
        f("bus_alloc_resource", bus_alloc_resource, 7),
        f("bus_release_resource", bus_release_resource, 4),
        f("rman_get_bustag", rman_get_bustag, 1),
        f("rman_get_bushandle", rman_get_bushandle, 1),
        f("rman_get_virtual", rman_get_virtual, 1),
        f("rman_get_size", rman_get_size, 1),
        f("bus_get_dma_tag", bus_get_dma_tag, 1),
        f("bus_dma_tag_create", bus_dma_tag_create, 14),
        f("bus_dma_tag_destroy", bus_dma_tag_destroy, 1),
        f("bus_dmamap_load", bus_dmamap_load, 7),
        i("pci_read_config_method", pci_read_config_method, 4),
        i("pci_write_config_method", pci_write_config_method, 5),
        i(
            "pci_enable_busmaster_method",
            pci_enable_busmaster_method,
            2,
        ),
        i("busdma_mem_alloc", busdma_mem_alloc, 4),
        i("busdma_mem_free", busdma_mem_free, 3),
        i("busdma_map_unload", busdma_map_unload, 2),
        i("busdma_map_sync", busdma_map_sync, 3),
        i("busdma_unsupported", busdma_unsupported, 0),
        d("pci_read_config_desc", |a| desc_init(a, 1)),
        d("pci_write_config_desc", |a| desc_init(a, 2)),
        d("pci_enable_busmaster_desc", |a| desc_init(a, 3)),
    ]
}

/// What the module left: resources, tags, DMA memory (each names its caller).
pub fn leaks(symbolize: &dyn Fn(u64) -> String) -> Vec<String> {
    let g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(st) = g.as_ref() else {
        return Vec::new();
    };
    let mut v = Vec::new();
    for r in st.resources.values() {
        v.push(format!(
            "hca: BAR{} (rid {:#x}) from {} not released (bus_release_resource)",
            r.bar,
            r.rid,
            symbolize(r.caller)
        ));
    }
    for m in st.maps.values() {
        v.push(format!(
            "busdma: {} bytes at bus address {:#x} from {} not freed (bus_dmamem_free)",
            m.pages as u64 * PAGE,
            m.pa,
            symbolize(m.caller)
        ));
    }
    for t in st.tags.values() {
        v.push(format!(
            "busdma: tag (maxsize {:#x}) from {} not destroyed (bus_dma_tag_destroy)",
            t.maxsize,
            symbolize(t.caller)
        ));
    }
    drop(g);
    let (pages, _) = request(Req::PagesInUse);
    if pages != 0 && pages != u64::MAX && v.is_empty() {
        v.push(format!(
            "hca: the device model still holds {pages} DMA pages"
        ));
    }
    v
}

/// One line of what the module did to the HCA (stderr).
pub fn summary() -> Option<String> {
    let g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let st = g.as_ref()?;
    Some(format!(
        "kldrun: hca pci0:{}:{}:{}: {} MMIO reads, {} MMIO writes, {} config accesses, {} DMA syncs",
        st.opts.bus,
        st.opts.device,
        st.opts.function,
        MMIO_READS.load(Ordering::Relaxed),
        MMIO_WRITES.load(Ordering::Relaxed),
        CONFIG_ACCESSES.load(Ordering::Relaxed),
        SYNCS.load(Ordering::Relaxed),
    ))
}

/// Stops the device thread.
pub fn stop() {
    DEVICE.lock().unwrap_or_else(|e| e.into_inner()).take();
}
