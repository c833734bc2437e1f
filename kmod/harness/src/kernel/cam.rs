//! A small CAM (`sys/cam/cam_xpt.c`, `cam_sim.c`, `cam_periph.c`, `scsi/scsi_da.c`) and the
//! GEOM provider lookup (`sys/geom/geom_subr.c`), for one SIM.
//!
//! Kept: `cam_sim_alloc` keeps the action routine, softc and SIM mutex; `xpt_bus_register`
//! gives the bus path id 0 (in `cam_sim.path_id`, offset 56) and sends `XPT_PATH_INQ` to the
//! action routine (the caller holds the SIM mutex, as CAM requires); `xpt_rescan` takes the
//! CCB and its path (freed when the scan ends) and probes target 0 LUN 0 on a thread of its
//! own ("xpt_thrd") as CAM's probe and da(4) do: INQUIRY, TEST UNIT READY (retried while the
//! unit reports a CHECK CONDITION), READ CAPACITY(16), each a `XPT_SCSI_IO` CCB
//! (`CAM_DATA_VADDR`, CDB inline, `sense_len` 252) handed to the action routine with the SIM
//! mutex held and finished by the SIM's `xpt_done`; a direct-access LUN becomes periph `da0`
//! (`periph_name` at 24, `unit_number` at 56) and GEOM provider `da0` (`acr` at 40). The SIM
//! queue freeze count (`xpt_freeze_simq`/`xpt_release_simq`) and the device queue freeze
//! (`xpt_freeze_devq` when the SIM returns `CAM_DEV_QFRZN`, released by the requester as
//! `cam_release_devq` does) hold new CCBs back; `CAM_REQUEUE_REQ` resubmits.
//! `xpt_async(AC_LOST_DEVICE)` and `xpt_bus_deregister` take the periph and provider away.
//!
//! Simplified: one bus, one device; no XPT_SCAN_BUS over other targets/LUNs, no tagged queueing
//! limits (one CCB in flight per requester), no CCB timeouts (a 60 s wait instead), no
//! `xpt_path_mtx` per device (it is the SIM mutex), `cam_calc_geometry` is the extended
//! 255-head/63-sector translation only.

use super::{mem, mutex, threads, Ctx};
use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

const CCB_SIZE: usize = 1248;
const XPT_PATH_INQ: u32 = 0x04;
const XPT_SCSI_IO: u32 = 0x901;
const CAM_REQ_CMP: u32 = 0x01;
const CAM_STATUS_MASK: u32 = 0x3f;
const CAM_DEV_QFRZN: u32 = 0x40;
const CAM_REQUEUE_REQ: u32 = 0x1b;
const CAM_DIR_IN: u32 = 0x40;
const CAM_DIR_OUT: u32 = 0x80;
const CAM_DIR_NONE: u32 = 0xc0;
const AC_LOST_DEVICE: u32 = 0x100;

#[derive(Debug, Default)]
struct Sim {
    addr: u64,
    action: u64,
    mtx: u64,
    registered: bool,
}

#[derive(Debug, Default)]
struct Cam {
    simqs: HashSet<u64>,
    sims: HashMap<u64, Sim>,
    paths: HashMap<u64, (u32, u32, u64)>,
    ccbs: HashSet<u64>,
    done: HashSet<u64>,
    /// The requester waiting for each CCB in flight (woken alone by its `xpt_done`).
    waiters: HashMap<u64, std::thread::Thread>,
    simq_frozen: u32,
    devq_frozen: u32,
    /// (periph, provider, block size, blocks) once da0 attached.
    disk: Option<(u64, u64, u32, u64)>,
    /// Retired periph/provider allocations (freed at the end).
    retired: Vec<u64>,
    scans: Vec<std::thread::JoinHandle<()>>,
    io_thread: Option<usize>,
}

static CAM: Mutex<Option<Cam>> = Mutex::new(None);
static CHANGED: Condvar = Condvar::new();

fn with<T>(f: impl FnOnce(&mut Cam) -> T) -> T {
    let mut g = CAM.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Cam::default))
}

fn alloc(bytes: usize) -> u64 {
    Box::into_raw(vec![0u64; bytes.div_ceil(8)].into_boxed_slice()) as *mut u64 as u64
}

/// # Safety
/// `p` came from [`alloc`] with the same `bytes`, freed once.
unsafe fn dealloc(p: u64, bytes: usize) {
    let s = std::ptr::slice_from_raw_parts_mut(p as *mut u64, bytes.div_ceil(8));
    // SAFETY: forwarded contract.
    drop(unsafe { Box::from_raw(s) });
}

/// `struct cam_devq *cam_simq_alloc(u_int32_t max_sim_transactions);`
pub fn cam_simq_alloc(_c: &mut Ctx) -> u64 {
    let q = alloc(64);
    with(|k| k.simqs.insert(q));
    q
}

/// `void cam_simq_free(struct cam_devq *devq);`
pub fn cam_simq_free(c: &mut Ctx) -> u64 {
    let q = c.args.ptr();
    if with(|k| k.simqs.remove(&q)) {
        // SAFETY: from cam_simq_alloc, removed once.
        unsafe { dealloc(q, 64) };
    }
    0
}

/// `struct cam_sim *cam_sim_alloc(sim_action_func, sim_poll_func, const char *sim_name,
/// void *softc, u_int32_t unit, struct mtx *mtx, int max_dev_transactions, int
/// max_tagged_dev_transactions, struct cam_devq *queue);`
pub fn cam_sim_alloc(c: &mut Ctx) -> u64 {
    let action = c.args.ptr();
    let _poll = c.args.ptr();
    let _name = c.args.ptr();
    let _softc = c.args.ptr();
    let _unit = c.args.int();
    let mtx = c.args.ptr();
    let sim = alloc(256);
    with(|k| {
        k.sims.insert(
            sim,
            Sim {
                addr: sim,
                action,
                mtx,
                registered: false,
            },
        )
    });
    sim
}

/// `void cam_sim_free(struct cam_sim *sim, int free_devq);`
pub fn cam_sim_free(c: &mut Ctx) -> u64 {
    let sim = c.args.ptr();
    let free_devq = c.args.int();
    if with(|k| k.sims.remove(&sim)).is_some() {
        // SAFETY: from cam_sim_alloc, removed once.
        unsafe { dealloc(sim, 256) };
    }
    if free_devq != 0 {
        let qs: Vec<u64> = with(|k| k.simqs.drain().collect());
        for q in qs {
            // SAFETY: from cam_simq_alloc, drained once.
            unsafe { dealloc(q, 64) };
        }
    }
    0
}

fn the_sim() -> Option<(u64, u64, u64)> {
    with(|k| k.sims.values().next().map(|s| (s.addr, s.action, s.mtx)))
}

/// `int32_t xpt_bus_register(struct cam_sim *sim, device_t parent, u_int32_t bus);`
pub fn xpt_bus_register(c: &mut Ctx) -> u64 {
    let sim = c.args.ptr();
    let Some((_, action, _)) = the_sim() else {
        return 1; // CAM_FAILURE... any non-success
    };
    // SAFETY: struct cam_sim.path_id (offset 56) of the SIM we allocated.
    unsafe { mem::write(sim + 56, 0u32) };
    let ccb = alloc(CCB_SIZE);
    // SAFETY: a fresh CCB: func_code 80, path_id 96.
    unsafe {
        mem::write(ccb + 80, XPT_PATH_INQ);
        mem::write(ccb + 96, 0u32);
    }
    // SAFETY: the SIM's action routine: void (*)(struct cam_sim *, union ccb *); the caller
    // holds the SIM mutex.
    unsafe { threads::call(c.thread, action, &[sim, ccb]) };
    // SAFETY: ccb_h.status.
    let st = unsafe { mem::read::<u32>(ccb + 84) } & CAM_STATUS_MASK;
    with(|k| {
        k.done.remove(&ccb);
        if let Some(s) = k.sims.get_mut(&sim) {
            s.registered = true;
        }
    });
    // SAFETY: allocated above.
    unsafe { dealloc(ccb, CCB_SIZE) };
    if st == CAM_REQ_CMP {
        0 // CAM_SUCCESS
    } else {
        1
    }
}

/// `int32_t xpt_bus_deregister(path_id_t path_id);`
pub fn xpt_bus_deregister(_c: &mut Ctx) -> u64 {
    with(|k| {
        for s in k.sims.values_mut() {
            s.registered = false;
        }
        lose_disk(k);
    });
    CAM_REQ_CMP as u64
}

fn lose_disk(k: &mut Cam) {
    if let Some((p, g, _, _)) = k.disk.take() {
        k.retired.push(p);
        k.retired.push(g);
    }
    CHANGED.notify_all();
}

/// `cam_status xpt_create_path(struct cam_path **new_path_ptr, struct cam_periph *perph,
/// path_id_t path_id, target_id_t target_id, lun_id_t lun_id);`
pub fn xpt_create_path(c: &mut Ctx) -> u64 {
    let out = c.args.ptr();
    let _periph = c.args.ptr();
    let path_id = c.args.int() as u32;
    let target = c.args.int() as u32;
    let lun = c.args.ptr();
    let p = alloc(32);
    with(|k| k.paths.insert(p, (path_id, target, lun)));
    // SAFETY: the caller's out-pointer.
    unsafe { mem::write(out, p) };
    CAM_REQ_CMP as u64
}

/// `void xpt_free_path(struct cam_path *path);`
pub fn xpt_free_path(c: &mut Ctx) -> u64 {
    let p = c.args.ptr();
    free_path(c, p);
    0
}

fn free_path(c: &Ctx, p: u64) {
    if with(|k| k.paths.remove(&p)).is_none() {
        super::kpanic(c, &format!("xpt_free_path: {p:#x} is not a path"));
    }
    // SAFETY: from xpt_create_path, removed once.
    unsafe { dealloc(p, 32) };
}

/// `union ccb *xpt_alloc_ccb_nowait(void);`
pub fn xpt_alloc_ccb_nowait(_c: &mut Ctx) -> u64 {
    let p = alloc(CCB_SIZE);
    with(|k| k.ccbs.insert(p));
    p
}

/// `void xpt_free_ccb(union ccb *free_ccb);`
pub fn xpt_free_ccb(c: &mut Ctx) -> u64 {
    let p = c.args.ptr();
    if !with(|k| k.ccbs.remove(&p)) {
        super::kpanic(c, &format!("xpt_free_ccb: {p:#x} is not a CCB"));
    }
    // SAFETY: from xpt_alloc_ccb_nowait, removed once.
    unsafe { dealloc(p, CCB_SIZE) };
    0
}

/// `void xpt_done(union ccb *done_ccb);`
pub fn xpt_done(c: &mut Ctx) -> u64 {
    let p = c.args.ptr();
    let waiter = with(|k| {
        k.done.insert(p);
        k.waiters.get(&p).cloned()
    });
    match waiter {
        // Only the requester of this CCB (not every waiter: 32 requesters woken per
        // completion were most of kldrun's CPU).
        Some(t) => t.unpark(),
        None => CHANGED.notify_all(),
    }
    0
}

/// `void xpt_async(u_int32_t async_code, struct cam_path *path, void *async_arg);`
pub fn xpt_async(c: &mut Ctx) -> u64 {
    let code = c.args.int() as u32;
    if code == AC_LOST_DEVICE {
        with(lose_disk);
    }
    0
}

/// `u_int32_t xpt_freeze_devq(struct cam_path *path, u_int count);`
pub fn xpt_freeze_devq(c: &mut Ctx) -> u64 {
    let _path = c.args.ptr();
    let n = c.args.int() as u32;
    u64::from(with(|k| {
        k.devq_frozen += n;
        k.devq_frozen
    }))
}

/// `u_int32_t xpt_freeze_simq(struct cam_sim *sim, u_int count);`
pub fn xpt_freeze_simq(c: &mut Ctx) -> u64 {
    let _sim = c.args.ptr();
    let n = c.args.int() as u32;
    u64::from(with(|k| {
        k.simq_frozen += n;
        k.simq_frozen
    }))
}

/// `void xpt_release_simq(struct cam_sim *sim, int run_queue);`
pub fn xpt_release_simq(_c: &mut Ctx) -> u64 {
    with(|k| k.simq_frozen = k.simq_frozen.saturating_sub(1));
    CHANGED.notify_all();
    0
}

/// `struct mtx *xpt_path_mtx(struct cam_path *path);` — the SIM mutex.
pub fn xpt_path_mtx(_c: &mut Ctx) -> u64 {
    the_sim().map_or(0, |s| s.2)
}

/// `struct cam_periph *cam_periph_find(struct cam_path *path, char *name);`
pub fn cam_periph_find(c: &mut Ctx) -> u64 {
    let path = c.args.ptr();
    let name = c.args.ptr();
    let n = if name == 0 {
        "da".to_string()
    } else {
        // SAFETY: a NUL-terminated driver name.
        unsafe { mem::string(name) }
    };
    with(|k| {
        let at = k.paths.get(&path).copied();
        match (k.disk, at) {
            (Some((p, ..)), Some((_, 0 | u32::MAX, 0 | u64::MAX))) if n == "da" => p,
            _ => 0,
        }
    })
}

/// `void cam_calc_geometry(struct ccb_calc_geometry *ccg, int extended);`
pub fn cam_calc_geometry(c: &mut Ctx) -> u64 {
    let ccg = c.args.ptr();
    // SAFETY: block_size at 200, volume_size at 208, cylinders 216, heads 220, secs 221.
    unsafe {
        let bs = u64::from(mem::read::<u32>(ccg + 200).max(1));
        let blocks = mem::read::<u64>(ccg + 208);
        let size_mb = blocks * bs / (1024 * 1024);
        let (heads, secs) = if size_mb > 1024 {
            (255u8, 63u8)
        } else {
            (64, 32)
        };
        let cyl = (blocks / (u64::from(heads) * u64::from(secs))).min(u64::from(u32::MAX));
        mem::write(ccg + 216, cyl as u32);
        mem::write(ccg + 220, heads);
        mem::write(ccg + 221, secs);
        mem::write(ccg + 84, CAM_REQ_CMP);
    }
    0
}

/// `struct g_provider *g_provider_by_name(char const *arg);` — `da0` (or `/dev/da0`) once
/// attached.
pub fn g_provider_by_name(c: &mut Ctx) -> u64 {
    let name = c.args.ptr();
    // SAFETY: a NUL-terminated name.
    let n = unsafe { mem::string(name) };
    let n = n.strip_prefix("/dev/").unwrap_or(&n);
    with(|k| match k.disk {
        Some((_, g, ..)) if n == "da0" => g,
        _ => 0,
    })
}

/// `void _sx_xlock(struct sx *sx, int opts, const char *file, int line)` and unlock: the GEOM
/// topology lock. One host lock (an sx held exclusively by one thread at a time).
static SX: Mutex<Option<std::thread::ThreadId>> = Mutex::new(None);
static SX_FREE: Condvar = Condvar::new();

/// `int _sx_xlock(struct sx *sx, int opts, const char *file, int line);`
pub fn sx_xlock(_c: &mut Ctx) -> u64 {
    let me = std::thread::current().id();
    let mut g = SX.lock().unwrap_or_else(|e| e.into_inner());
    while g.is_some() {
        g = SX_FREE.wait(g).unwrap_or_else(|e| e.into_inner());
    }
    *g = Some(me);
    0
}

/// `void _sx_xunlock(struct sx *sx, const char *file, int line);`
pub fn sx_xunlock(_c: &mut Ctx) -> u64 {
    *SX.lock().unwrap_or_else(|e| e.into_inner()) = None;
    SX_FREE.notify_all();
    0
}

/// The status of the CCB (as the SIM finished it).
fn status(ccb: u64) -> u32 {
    // SAFETY: ccb_h.status of a CCB of ours.
    unsafe { mem::read::<u32>(ccb + 84) }
}

/// Sends `ccb` to the SIM from kernel thread `t` and waits for its `xpt_done`: see the module
/// documentation. The full status.
fn submit(t: usize, ccb: u64) -> Result<u32, String> {
    let (sim, action, mtx) = the_sim().ok_or("no SIM")?;
    loop {
        let end = Instant::now() + Duration::from_secs(60);
        {
            let mut g = CAM.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let k = g.get_or_insert_with(Cam::default);
                if !k.sims.values().any(|s| s.registered) {
                    return Err("the bus is gone".into());
                }
                if k.simq_frozen == 0 && k.devq_frozen == 0 {
                    k.done.remove(&ccb);
                    break;
                }
                if Instant::now() >= end {
                    return Err("the SIM queue stayed frozen".into());
                }
                g = CHANGED
                    .wait_timeout(g, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        // SAFETY: ccb_h.status of our CCB.
        unsafe { mem::write(ccb + 84, 0u32) };
        with(|k| k.waiters.insert(ccb, std::thread::current()));
        mutex::lock_as(t, mtx + 24);
        // SAFETY: the SIM's action routine with the SIM mutex held.
        unsafe { threads::call(t, action, &[sim, ccb]) };
        mutex::unlock_as(t, mtx + 24);
        loop {
            if with(|k| k.done.remove(&ccb)) {
                break;
            }
            if Instant::now() >= end {
                with(|k| k.waiters.remove(&ccb));
                return Err("the SIM did not complete a CCB in 60 s".into());
            }
            std::thread::park_timeout(Duration::from_millis(100));
        }
        let st = status(ccb);
        let released = with(|k| {
            k.waiters.remove(&ccb);
            if st & CAM_DEV_QFRZN != 0 {
                k.devq_frozen = k.devq_frozen.saturating_sub(1); // cam_release_devq
                true
            } else {
                false
            }
        });
        if released {
            CHANGED.notify_all();
        }
        if st & CAM_STATUS_MASK == CAM_REQUEUE_REQ {
            continue;
        }
        return Ok(st);
    }
}

/// A requester's own CCB and data buffer, reused for every command it sends (as da(4) reuses
/// its CCBs): nothing is allocated per command.
#[derive(Debug)]
pub struct Requester {
    ccb: u64,
    buf: u64,
    len: usize,
}

impl Requester {
    /// A CCB and a `len`-byte data buffer.
    pub fn new(len: usize) -> Self {
        Requester {
            ccb: alloc(CCB_SIZE),
            buf: alloc(len.max(8)),
            len,
        }
    }

    /// The data buffer.
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: our buffer of at least `len` bytes; the CCB is not in flight (`&mut self`).
        unsafe { std::slice::from_raw_parts_mut(self.buf as *mut u8, self.len) }
    }

    /// One SCSI command to target 0 LUN 0 from kernel thread `t` moving the first `len` bytes
    /// of the buffer: (CAM status, SCSI status).
    fn command(&mut self, t: usize, cdb: &[u8], dir: u32, len: usize) -> Result<(u32, u8), String> {
        assert!(len <= self.len && cdb.len() <= 16);
        let ccb = self.ccb;
        // SAFETY: our CCB, not in flight, cleared and filled in as da(4) would.
        unsafe {
            std::ptr::write_bytes(ccb as *mut u8, 0, CCB_SIZE);
            mem::write(ccb + 80, XPT_SCSI_IO);
            mem::write(ccb + 96, 0u32);
            mem::write(ccb + 100, 0u32);
            mem::write(ccb + 104, 0u64);
            mem::write(ccb + 112, dir);
            mem::write(ccb + 216, self.buf);
            mem::write(ccb + 224, len as u32);
            mem::write(ccb + 480, 252u8);
            mem::write(ccb + 481, cdb.len() as u8);
            mem::write_bytes(ccb + 496, cdb);
        }
        let st = submit(t, ccb)?;
        // SAFETY: scsi_status of our CCB.
        Ok((st, unsafe { mem::read::<u8>(ccb + 484) }))
    }

    /// READ(16) (or WRITE(16) of the buffer) of `blocks` blocks at `lba`, filling (or sending)
    /// the buffer's first `blocks` blocks.
    pub fn rw(&mut self, t: usize, write: bool, lba: u64, blocks: u32) -> Result<(), String> {
        let (bs, _) = disk().ok_or("no disk")?;
        let len = blocks as usize * bs as usize;
        let (op, dir, name) = if write {
            (0x8a, CAM_DIR_OUT, "WRITE(16)")
        } else {
            (0x88, CAM_DIR_IN, "READ(16)")
        };
        let (st, ss) = self.command(t, &rw16(op, lba, blocks), dir, len)?;
        if st & CAM_STATUS_MASK != CAM_REQ_CMP {
            return Err(format!(
                "{name} at {lba}: CAM status {st:#x}, SCSI status {ss:#x}"
            ));
        }
        Ok(())
    }
}

impl Drop for Requester {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these sizes; the CCB is not in flight (`submit`
        // returns only after `xpt_done`, or with the bus gone).
        unsafe {
            dealloc(self.ccb, CCB_SIZE);
            dealloc(self.buf, self.len.max(8));
        }
    }
}

/// One SCSI command to target 0 LUN 0 from kernel thread `t`: (CAM status, SCSI status).
fn scsi(t: usize, cdb: &[u8], dir: u32, data: &mut [u8]) -> Result<(u32, u8), String> {
    let mut r = Requester::new(data.len());
    if dir == CAM_DIR_OUT {
        r.data_mut().copy_from_slice(data);
    }
    let st = r.command(t, cdb, dir, data.len())?;
    if dir == CAM_DIR_IN {
        data.copy_from_slice(r.data_mut());
    }
    Ok(st)
}

fn probe(t: usize) -> Result<(u32, u64), String> {
    let mut inq = [0u8; 36];
    let (st, _) = scsi(t, &[0x12, 0, 0, 0, 36, 0], CAM_DIR_IN, &mut inq)?;
    if st & CAM_STATUS_MASK != CAM_REQ_CMP {
        return Err(format!("INQUIRY: CAM status {st:#x}"));
    }
    if inq[0] & 0x1f != 0 || inq[0] >> 5 != 0 {
        return Err(format!(
            "not a direct-access LUN (peripheral {:#x})",
            inq[0]
        ));
    }
    let mut ready = false;
    for _ in 0..10 {
        let (st, _) = scsi(t, &[0; 6], CAM_DIR_NONE, &mut [])?;
        if st & CAM_STATUS_MASK == CAM_REQ_CMP {
            ready = true;
            break;
        }
    }
    if !ready {
        return Err("TEST UNIT READY never succeeded".into());
    }
    let mut cap = [0u8; 32];
    let mut cdb = [0u8; 16];
    cdb[0] = 0x9e;
    cdb[1] = 0x10;
    cdb[13] = 32;
    let (st, _) = scsi(t, &cdb, CAM_DIR_IN, &mut cap)?;
    if st & CAM_STATUS_MASK != CAM_REQ_CMP {
        return Err(format!("READ CAPACITY(16): CAM status {st:#x}"));
    }
    let last = u64::from_be_bytes(cap[0..8].try_into().unwrap_or_default());
    let bs = u32::from_be_bytes(cap[8..12].try_into().unwrap_or_default());
    Ok((bs, last + 1))
}

/// `void xpt_rescan(union ccb *ccb);` — see the module documentation.
pub fn xpt_rescan(c: &mut Ctx) -> u64 {
    let ccb = c.args.ptr();
    let t = match threads::create("xpt_thrd", crate::kstack::KSTACK_SIZE) {
        Ok(t) => t,
        Err(e) => super::kpanic(c, &format!("xpt_rescan: no kernel stack: {e}")),
    };
    let h = std::thread::Builder::new()
        .name("k:xpt_thrd".into())
        .spawn(move || {
            // The module may still hold the SIM mutex (it scans from under it): let it go.
            std::thread::sleep(Duration::from_millis(10));
            match probe(t) {
                Ok((bs, blocks)) => {
                    let periph = alloc(128);
                    let prov = alloc(128);
                    let name = Box::leak(Box::new(*b"da\0")).as_ptr() as u64;
                    // SAFETY: fresh allocations: periph_name 24, unit_number 56.
                    unsafe {
                        mem::write(periph + 24, name);
                        mem::write(periph + 56, 0u32);
                    }
                    super::console::write(
                        format!(
                            "da0 at isboot0 bus 0 scbus0 target 0 lun 0\nda0: {} MB ({blocks} \
                             {bs} byte sectors)\n",
                            blocks * u64::from(bs) / (1024 * 1024)
                        )
                        .as_bytes(),
                    );
                    with(|k| k.disk = Some((periph, prov, bs, blocks)));
                }
                Err(e) => {
                    super::console::write(format!("(probe0:isboot0:0:0:0): {e}\n").as_bytes())
                }
            }
            // CAM frees the rescan CCB and its path when the scan is over.
            let path = {
                // SAFETY: ccb_h.path of the module's CCB.
                unsafe { mem::read::<u64>(ccb + 88) }
            };
            with(|k| {
                if k.paths.remove(&path).is_some() {
                    // SAFETY: a path of ours, removed once.
                    unsafe { dealloc(path, 32) };
                }
                if k.ccbs.remove(&ccb) {
                    // SAFETY: a CCB of ours, removed once.
                    unsafe { dealloc(ccb, CCB_SIZE) };
                }
            });
        });
    if let Ok(h) = h {
        with(|k| k.scans.push(h));
    }
    0
}

/// The attached disk: (block size, blocks).
pub fn disk() -> Option<(u32, u64)> {
    with(|k| k.disk.map(|(_, _, bs, n)| (bs, n)))
}

fn io_thread() -> usize {
    if let Some(t) = with(|k| k.io_thread) {
        return t;
    }
    let t = threads::create("g_down", crate::kstack::KSTACK_SIZE).expect("a kernel stack");
    with(|k| k.io_thread = Some(t));
    t
}

fn rw16(op: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = op;
    cdb[2..10].copy_from_slice(&lba.to_be_bytes());
    cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

/// da(4) READ(16) of `blocks` blocks at `lba`, as GEOM's `g_down` would issue it.
pub fn read(lba: u64, blocks: u32) -> Result<Vec<u8>, String> {
    read_on(io_thread(), lba, blocks)
}

/// [`read`] from kernel thread `t` (one CCB in flight per thread).
pub fn read_on(t: usize, lba: u64, blocks: u32) -> Result<Vec<u8>, String> {
    let (bs, _) = disk().ok_or("no disk")?;
    let mut data = vec![0u8; blocks as usize * bs as usize];
    let (st, ss) = scsi(t, &rw16(0x88, lba, blocks), CAM_DIR_IN, &mut data)?;
    if st & CAM_STATUS_MASK != CAM_REQ_CMP {
        return Err(format!(
            "READ(16) at {lba}: CAM status {st:#x}, SCSI status {ss:#x}"
        ));
    }
    Ok(data)
}

/// da(4) WRITE(16) of `data` (whole blocks) at `lba`.
pub fn write(lba: u64, data: &[u8]) -> Result<(), String> {
    let (bs, _) = disk().ok_or("no disk")?;
    let blocks = (data.len() / bs as usize) as u32;
    let mut d = data.to_vec();
    let (st, ss) = scsi(io_thread(), &rw16(0x8a, lba, blocks), CAM_DIR_OUT, &mut d)?;
    if st & CAM_STATUS_MASK != CAM_REQ_CMP {
        return Err(format!(
            "WRITE(16) at {lba}: CAM status {st:#x}, SCSI status {ss:#x}"
        ));
    }
    Ok(())
}

/// Opens (`acr`) the provider for reading: +1 or -1 (mountroot mounting and unmounting).
pub fn provider_open(delta: i32) {
    with(|k| {
        if let Some((_, g, ..)) = k.disk {
            // SAFETY: acr (int) at 40 of our provider.
            unsafe { mem::write(g + 40, mem::read::<i32>(g + 40) + delta) };
        }
    });
}

/// Waits for the scan threads; frees what CAM kept; what the module left: a line each.
pub fn finish() -> Vec<String> {
    let hs: Vec<_> = with(|k| std::mem::take(&mut k.scans));
    for h in hs {
        let _ = h.join();
    }
    with(|k| {
        let mut v = Vec::new();
        if k.disk.is_some() {
            lose_disk(k);
        }
        for p in std::mem::take(&mut k.retired) {
            // SAFETY: periph/provider allocations of 128 bytes, retired once.
            unsafe { dealloc(p, 128) };
        }
        if !k.sims.is_empty() {
            v.push(format!("cam: {} SIM(s) never freed", k.sims.len()));
        }
        if !k.simqs.is_empty() {
            v.push(format!("cam: {} SIM queue(s) never freed", k.simqs.len()));
        }
        if !k.paths.is_empty() {
            v.push(format!("cam: {} path(s) never freed", k.paths.len()));
        }
        if !k.ccbs.is_empty() {
            v.push(format!("cam: {} CCB(s) never freed", k.ccbs.len()));
        }
        v
    })
}
