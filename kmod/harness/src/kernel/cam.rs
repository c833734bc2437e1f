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
//! Completion: kldrun's periph marks each CCB it sends, as a periph sets `ccb_h.cbfcnp`
//! (offset 72) and `ccb_h.periph_priv` (120; the SIM leaves both alone): `cbfcnp` is kldrun's
//! own done mark and `ppriv_ptr0` the requester's done queue. `xpt_done` appends such a CCB
//! to that queue and wakes the requester only if it is parked, as CAM's `xpt_done` queues the
//! CCB for its done thread, which calls the periph's `cbfcnp` (`dadone`) — no lookup, no
//! global lock. A requester either waits for its one CCB ([`read`], [`write`], the probe: a
//! thread's own done queue) or, as da(4) does (`dadone` → `xpt_schedule` → `dastart`), keeps
//! several in flight from one thread and sends the next as each finishes ([`Pipeline`], the
//! bench). A CCB kldrun did not mark (`XPT_PATH_INQ` at registration) is recorded as done.
//!
//! Simplified: one bus, one device; no XPT_SCAN_BUS over other targets/LUNs, no tagged queueing
//! limits (as many CCBs in flight as the requester sends: one for a waiting requester, the
//! [`Pipeline`]'s depth for the bench), no CCB timeouts (60 s without a completion is an error
//! instead), no `xpt_path_mtx` per device (it is the SIM mutex), no separate done thread (the
//! requester itself runs what `dadone` would), `cam_calc_geometry` is the extended
//! 255-head/63-sector translation only.

use super::{mem, mutex, threads, Ctx};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
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
/// `ccb_h.cbfcnp` (`sys/cam/cam_ccb.h`, `struct ccb_hdr`).
const CCB_CBFCNP: u64 = 72;
/// `ccb_h.periph_priv.entries[0]` (`ppriv_ptr0`) and `[1]` (`ppriv_ptr1`).
const CCB_PPRIV0: u64 = 120;
const CCB_PPRIV1: u64 = 128;
/// No completion for this long while a CCB is at the SIM: an error (CAM would time it out).
const DONE_LIMIT: Duration = Duration::from_secs(60);

/// What kldrun's periph puts in `cbfcnp`: the address of this static (never called; only
/// `xpt_done` reads it). Any other value is a CCB kldrun did not mark.
static DONE_MARK: u8 = 0;

fn done_mark() -> u64 {
    std::ptr::addr_of!(DONE_MARK) as u64
}

/// A requester's done queue (see the module documentation): CCBs the SIM finished, in
/// `xpt_done` order, until the requester takes them.
#[derive(Debug)]
struct DoneQueue {
    ccbs: Mutex<Vec<u64>>,
    /// Set by the owner just before it parks: only then does `xpt_done` unpark it, so a
    /// completion while it runs makes no system call.
    parked: AtomicBool,
    owner: std::thread::Thread,
}

impl DoneQueue {
    /// A queue for the calling thread, with room for `depth` CCBs.
    fn new(depth: usize) -> Self {
        DoneQueue {
            ccbs: Mutex::new(Vec::with_capacity(depth)),
            parked: AtomicBool::new(false),
            owner: std::thread::current(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.ccbs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `xpt_done`'s side: queue `ccb`; unpark the owner if it is parked.
    fn push(&self, ccb: u64) {
        self.lock().push(ccb);
        // The owner sets `parked` before it looks at the queue (under its lock), and we look
        // at `parked` after queueing (after the lock): one of us sees the other.
        if self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::SeqCst) {
            self.owner.unpark();
        }
    }

    /// The owner's side: parks for at most `limit` unless something is queued already.
    fn park(&self, limit: Duration) {
        self.parked.store(true, Ordering::SeqCst);
        if self.lock().is_empty() {
            std::thread::park_timeout(limit);
        }
        self.parked.store(false, Ordering::SeqCst);
    }
}

thread_local! {
    /// The done queue of a thread that waits for one CCB at a time (never freed: a CCB that
    /// outlived its 60 s wait may still be completed into it).
    static MY_DONE: &'static DoneQueue = Box::leak(Box::new(DoneQueue::new(4)));
}

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
    /// CCBs kldrun did not mark (see the module documentation) that `xpt_done` finished.
    done: HashSet<u64>,
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

/// `void xpt_done(union ccb *done_ccb);` — see the module documentation.
pub fn xpt_done(c: &mut Ctx) -> u64 {
    let p = c.args.ptr();
    // SAFETY: every CCB a SIM finishes is one of kldrun's (CCB_SIZE bytes): its cbfcnp.
    if unsafe { mem::read::<u64>(p + CCB_CBFCNP) } == done_mark() {
        // SAFETY: a marked CCB's ppriv_ptr0 is its requester's done queue, which outlives
        // every CCB sent with it (a thread's is never freed; a Pipeline's is leaked if it
        // goes while CCBs are at the SIM).
        let q = unsafe { &*(mem::read::<u64>(p + CCB_PPRIV0) as *const DoneQueue) };
        q.push(p);
        return 0;
    }
    with(|k| k.done.insert(p));
    CHANGED.notify_all();
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

/// Whether a new CCB may go to the SIM now: an error once the bus is gone, false while the
/// SIM queue or the device queue is frozen (CAM holds new CCBs back).
fn may_send(k: &Cam) -> Result<bool, String> {
    if !k.sims.values().any(|s| s.registered) {
        return Err("the bus is gone".into());
    }
    Ok(k.simq_frozen == 0 && k.devq_frozen == 0)
}

/// Hands `ccb` to the SIM's action routine `(sim, action, mtx)` from kernel thread `t`, with
/// the SIM mutex held.
fn send(t: usize, (sim, action, mtx): (u64, u64, u64), ccb: u64) {
    // SAFETY: ccb_h.status of a CCB of ours, not at the SIM.
    unsafe { mem::write(ccb + 84, 0u32) };
    mutex::lock_as(t, mtx + mutex::MTX_LOCK_OFFSET);
    // SAFETY: the SIM's action routine: void (*)(struct cam_sim *, union ccb *), with the SIM
    // mutex held.
    unsafe { threads::call(t, action, &[sim, ccb]) };
    mutex::unlock_as(t, mtx + mutex::MTX_LOCK_OFFSET);
}

/// The requester's part of a finished CCB's status `st`: `cam_release_devq` when the SIM froze
/// the device queue (`CAM_DEV_QFRZN`); true if the CCB is to be sent again
/// (`CAM_REQUEUE_REQ`).
fn requeue(st: u32) -> bool {
    if st & CAM_DEV_QFRZN != 0 {
        with(|k| k.devq_frozen = k.devq_frozen.saturating_sub(1));
        CHANGED.notify_all();
    }
    st & CAM_STATUS_MASK == CAM_REQUEUE_REQ
}

/// The failure of a finished READ(16)/WRITE(16) CCB with CAM status `st`, for a message.
fn failure(ccb: u64, st: u32) -> String {
    // SAFETY: the CDB (cdb_io at 496) and scsi_status (484) of a CCB of ours.
    let (op, lba, ss) = unsafe {
        (
            mem::read::<u8>(ccb + 496),
            u64::from_be_bytes(mem::read::<[u8; 8]>(ccb + 498)),
            mem::read::<u8>(ccb + 484),
        )
    };
    let name = match op {
        0x88 => "READ(16)",
        0x8a => "WRITE(16)",
        _ => "SCSI command",
    };
    format!("{name} at {lba}: CAM status {st:#x}, SCSI status {ss:#x}")
}

/// A requester's own CCB and data buffer, reused for every command it sends (as da(4) reuses
/// its CCBs): nothing is allocated per command.
#[derive(Debug)]
pub struct Requester {
    ccb: u64,
    buf: u64,
    len: usize,
    /// Sent and its `xpt_done` not taken yet (then the CCB and buffer are never freed: the
    /// SIM may still write them).
    at_sim: bool,
}

impl Requester {
    /// A CCB and a `len`-byte data buffer.
    pub fn new(len: usize) -> Self {
        Requester {
            ccb: alloc(CCB_SIZE),
            buf: alloc(len.max(8)),
            len,
            at_sim: false,
        }
    }

    /// The data buffer.
    pub fn data_mut(&mut self) -> &mut [u8] {
        assert!(!self.at_sim, "the data buffer of a CCB at the SIM");
        // SAFETY: our buffer of at least `len` bytes; the CCB is not at the SIM.
        unsafe { std::slice::from_raw_parts_mut(self.buf as *mut u8, self.len) }
    }

    /// Fills in the CCB, as da(4) would, for a command to target 0 LUN 0 moving the first
    /// `len` bytes of the buffer, finished into done queue `q` as slot `slot`.
    fn fill(&mut self, cdb: &[u8], dir: u32, len: usize, q: &DoneQueue, slot: usize) {
        assert!(len <= self.len && cdb.len() <= 16 && !self.at_sim);
        let ccb = self.ccb;
        // SAFETY: our CCB, not at the SIM.
        unsafe {
            std::ptr::write_bytes(ccb as *mut u8, 0, CCB_SIZE);
            mem::write(ccb + CCB_CBFCNP, done_mark());
            mem::write(ccb + 80, XPT_SCSI_IO);
            mem::write(ccb + 96, 0u32);
            mem::write(ccb + 100, 0u32);
            mem::write(ccb + 104, 0u64);
            mem::write(ccb + 112, dir);
            mem::write(ccb + CCB_PPRIV0, q as *const DoneQueue as u64);
            mem::write(ccb + CCB_PPRIV1, slot as u64);
            mem::write(ccb + 216, self.buf);
            mem::write(ccb + 224, len as u32);
            mem::write(ccb + 480, 252u8);
            mem::write(ccb + 481, cdb.len() as u8);
            mem::write_bytes(ccb + 496, cdb);
        }
    }

    /// One SCSI command to target 0 LUN 0 from kernel thread `t` moving the first `len` bytes
    /// of the buffer, waiting for it: (CAM status, SCSI status).
    fn command(&mut self, t: usize, cdb: &[u8], dir: u32, len: usize) -> Result<(u32, u8), String> {
        let sim = the_sim().ok_or("no SIM")?;
        MY_DONE.with(|q| {
            self.fill(cdb, dir, len, q, 0);
            let st = self.submit(t, sim, q)?;
            // SAFETY: scsi_status of our CCB.
            Ok((st, unsafe { mem::read::<u8>(self.ccb + 484) }))
        })
    }

    /// Sends the CCB (filled in for done queue `q`, the calling thread's) to the SIM and waits
    /// for its `xpt_done`: see the module documentation. The full status.
    fn submit(&mut self, t: usize, sim: (u64, u64, u64), q: &DoneQueue) -> Result<u32, String> {
        let ccb = self.ccb;
        loop {
            let end = Instant::now() + DONE_LIMIT;
            {
                let mut g = CAM.lock().unwrap_or_else(|e| e.into_inner());
                while !may_send(g.get_or_insert_with(Cam::default))? {
                    if Instant::now() >= end {
                        return Err("the SIM queue stayed frozen".into());
                    }
                    g = CHANGED
                        .wait_timeout(g, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            self.at_sim = true;
            send(t, sim, ccb);
            loop {
                {
                    let mut g = q.lock();
                    // Anything else in this thread's queue is a CCB that outlived its wait.
                    let mine = g.contains(&ccb);
                    g.clear();
                    if mine {
                        break;
                    }
                }
                if Instant::now() >= end {
                    return Err("the SIM did not complete a CCB in 60 s".into());
                }
                q.park(Duration::from_millis(100));
            }
            self.at_sim = false;
            let st = status(ccb);
            if requeue(st) {
                continue;
            }
            return Ok(st);
        }
    }
}

impl Drop for Requester {
    fn drop(&mut self) {
        if self.at_sim {
            return; // the SIM may still write them: left allocated
        }
        // SAFETY: allocated in `new` with these sizes; the CCB is not at the SIM.
        unsafe {
            dealloc(self.ccb, CCB_SIZE);
            dealloc(self.buf, self.len.max(8));
        }
    }
}

/// One requester thread keeping up to `depth` READ(16)/WRITE(16) CCBs in flight, as da(4)
/// does from `dadone` (see the module documentation): each slot is a CCB and a data buffer
/// allocated once. [`Pipeline::start`] fills a free slot in and sends it (or holds it while a
/// queue is frozen); [`Pipeline::wait`] takes every CCB the SIM finished at once, handles
/// `CAM_DEV_QFRZN` and `CAM_REQUEUE_REQ` as [`read`] does, and parks only when none has
/// finished. Used from the thread that made it (its done queue wakes that thread).
#[derive(Debug)]
pub struct Pipeline {
    t: usize,
    sim: (u64, u64, u64),
    bs: u32,
    slots: Vec<Requester>,
    /// Per slot: started and not finished (held back, at the SIM or in the done queue).
    busy: Vec<bool>,
    /// From `Box::leak`; freed with the pipeline unless a CCB is still at the SIM.
    queue: &'static DoneQueue,
    /// What was taken from the done queue (swapped with it: no allocation per I/O).
    taken: Vec<u64>,
    /// Slots to send once the queues thaw, in order.
    held: VecDeque<usize>,
    at_sim: usize,
    max_at_sim: usize,
    last_done: Instant,
    frozen_since: Option<Instant>,
    /// How long without a completion (or with the queues frozen) is an error.
    limit: Duration,
    /// The done queue wakes the thread that made the pipeline: it stays there.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Pipeline {
    /// `depth` slots of `len`-byte buffers, sent from kernel thread `t` (da0 attached).
    pub fn new(t: usize, depth: usize, len: usize) -> Result<Self, String> {
        let sim = the_sim().ok_or("no SIM")?;
        let (bs, _) = disk().ok_or("no disk")?;
        Ok(Pipeline {
            t,
            sim,
            bs,
            slots: (0..depth).map(|_| Requester::new(len)).collect(),
            busy: vec![false; depth],
            queue: Box::leak(Box::new(DoneQueue::new(depth))),
            taken: Vec::with_capacity(depth),
            held: VecDeque::with_capacity(depth),
            at_sim: 0,
            max_at_sim: 0,
            last_done: Instant::now(),
            frozen_since: None,
            limit: DONE_LIMIT,
            _not_send: std::marker::PhantomData,
        })
    }

    /// Slot `slot`'s data buffer (the slot must not be started).
    pub fn data_mut(&mut self, slot: usize) -> &mut [u8] {
        assert!(!self.busy[slot], "the buffer of a started slot");
        self.slots[slot].data_mut()
    }

    /// Slots started and not finished yet.
    pub fn outstanding(&self) -> usize {
        self.at_sim + self.held.len()
    }

    /// The most CCBs that were at the SIM at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_at_sim
    }

    /// Starts READ(16) (or WRITE(16) of the buffer) of `blocks` blocks at `lba` on free slot
    /// `slot`: sent now, or held while a queue is frozen.
    pub fn start(&mut self, slot: usize, write: bool, lba: u64, blocks: u32) -> Result<(), String> {
        assert!(!self.busy[slot], "slot {slot} started twice");
        let (op, dir) = if write {
            (0x8a, CAM_DIR_OUT)
        } else {
            (0x88, CAM_DIR_IN)
        };
        let len = blocks as usize * self.bs as usize;
        self.slots[slot].fill(&rw16(op, lba, blocks), dir, len, self.queue, slot);
        self.busy[slot] = true;
        self.held.push_back(slot);
        self.flush()
    }

    /// Sends the held slots, in order, while no queue is frozen.
    fn flush(&mut self) -> Result<(), String> {
        while let Some(&s) = self.held.front() {
            if !with(|k| may_send(k))? {
                let since = *self.frozen_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.limit {
                    return Err("the SIM queue stayed frozen".into());
                }
                return Ok(());
            }
            self.held.pop_front();
            if self.at_sim == 0 {
                self.last_done = Instant::now();
            }
            self.at_sim += 1;
            self.max_at_sim = self.max_at_sim.max(self.at_sim);
            self.slots[s].at_sim = true;
            send(self.t, self.sim, self.slots[s].ccb);
        }
        self.frozen_since = None;
        Ok(())
    }

    /// Waits until at least one slot finished, or none is outstanding; `done` gets the slots
    /// that finished (`CAM_REQ_CMP`), free again. Any other status is an error, as is a
    /// minute without a completion.
    pub fn wait(&mut self, done: &mut Vec<usize>) -> Result<(), String> {
        done.clear();
        loop {
            std::mem::swap(&mut *self.queue.lock(), &mut self.taken);
            if !self.taken.is_empty() {
                self.last_done = Instant::now();
            }
            let mut err = None;
            for &ccb in &self.taken {
                // SAFETY: ppriv_ptr1 of a CCB of ours: its slot.
                let slot = unsafe { mem::read::<u64>(ccb + CCB_PPRIV1) } as usize;
                let Some(r) = self
                    .slots
                    .get_mut(slot)
                    .filter(|r| r.ccb == ccb && r.at_sim)
                else {
                    err.get_or_insert(format!("xpt_done of CCB {ccb:#x}, which is not at the SIM"));
                    continue;
                };
                r.at_sim = false;
                self.at_sim -= 1;
                let st = status(ccb);
                if requeue(st) {
                    self.held.push_back(slot);
                } else {
                    self.busy[slot] = false;
                    if st & CAM_STATUS_MASK == CAM_REQ_CMP {
                        done.push(slot);
                    } else {
                        err.get_or_insert_with(|| failure(ccb, st));
                    }
                }
            }
            self.taken.clear();
            if let Some(e) = err {
                return Err(e);
            }
            self.flush()?;
            if !done.is_empty() || self.outstanding() == 0 {
                return Ok(());
            }
            if self.at_sim > 0 && self.last_done.elapsed() >= self.limit {
                return Err(format!(
                    "the SIM completed none of the {} CCBs it holds in {} s",
                    self.at_sim,
                    self.limit.as_secs_f64()
                ));
            }
            // Held slots wait for a thaw (no wake-up for that): look again soon.
            self.queue.park(if self.held.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::from_millis(10)
            });
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.at_sim == 0 {
            // SAFETY: from Box::leak in `new`; no CCB at the SIM refers to it any more.
            drop(unsafe { Box::from_raw(self.queue as *const DoneQueue as *mut DoneQueue) });
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

/// The kernel thread `g_down` (GEOM's down thread, which starts da(4)'s I/O): mountroot's,
/// the workloads' and the bench's requester.
pub fn io_thread() -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::args::SliceArgs;

    /// CCBs the fake SIM's action routine queued, and how often each was sent.
    static SENT: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    /// A send while a queue was frozen (CAM must hold CCBs back then).
    static SENT_FROZEN: AtomicBool = AtomicBool::new(false);

    /// The fake SIM's action routine: answers XPT_PATH_INQ, queues XPT_SCSI_IO.
    extern "C" fn action(_sim: u64, ccb: u64) {
        // SAFETY: a CCB kldrun's CAM sends.
        if unsafe { mem::read::<u32>(ccb + 80) } == XPT_PATH_INQ {
            // SAFETY: as above.
            unsafe { mem::write(ccb + 84, CAM_REQ_CMP) };
            return;
        }
        if with(|k| k.simq_frozen + k.devq_frozen) > 0 {
            SENT_FROZEN.store(true, Ordering::SeqCst);
        }
        SENT.lock().unwrap().push(ccb);
    }

    fn call(f: fn(&mut Ctx) -> u64, t: usize, args: &[u64]) -> u64 {
        let mut sa = SliceArgs::new(args);
        let mut c = Ctx {
            args: &mut sa,
            thread: t,
            ret_addr: 0,
            frame_ptr: 0,
        };
        f(&mut c)
    }

    /// Finishes `ccb` with `status` as the SIM would (freezing the device queue first when the
    /// status says so), from another thread.
    fn finish(ccb: u64, status: u32) {
        if status & CAM_DEV_QFRZN != 0 {
            call(xpt_freeze_devq, 0, &[0, 1]);
        }
        // SAFETY: ccb_h.status of a CCB at the fake SIM.
        unsafe { mem::write(ccb + 84, status) };
        call(xpt_done, 0, &[ccb]);
    }

    fn lba_of(ccb: u64) -> u64 {
        // SAFETY: the READ(16) CDB of a CCB at the fake SIM.
        u64::from_be_bytes(unsafe { mem::read::<[u8; 8]>(ccb + 498) })
    }

    /// One requester keeps 4 CCBs at a fake SIM that completes them from another thread: a
    /// CAM_REQUEUE_REQ with the device queue frozen is released and sent again, nothing is
    /// sent while the SIM queue is frozen, and an error status fails the wait with the LBA.
    #[test]
    fn a_pipeline_keeps_its_depth_in_flight_and_handles_requeue_and_freezes() {
        let t = threads::create("test g_down", crate::kstack::KSTACK_SIZE).unwrap();
        let mtx = Box::leak(Box::new([0u64; 4])).as_ptr() as u64;
        let w = mtx + mutex::MTX_LOCK_OFFSET;
        call(mutex::mtx_init, t, &[w, c"fake sim".as_ptr() as u64, 0, 0]);
        let sim = call(
            cam_sim_alloc,
            t,
            &[action as *const () as u64, 0, 0, 0, 0, mtx],
        );
        assert_eq!(call(xpt_bus_register, t, &[sim, 0, 0]), 0);
        with(|k| k.disk = Some((0, 0, 512, 1 << 20)));

        let mut p = Pipeline::new(t, 4, 4096).unwrap();
        for s in 0..4 {
            p.start(s, false, 8 * s as u64, 8).unwrap();
        }
        assert_eq!((p.outstanding(), p.max_in_flight()), (4, 4));
        let first: Vec<u64> = std::mem::take(&mut *SENT.lock().unwrap());
        assert_eq!(first.len(), 4);
        assert_eq!(
            first.iter().map(|&c| lba_of(c)).collect::<Vec<_>>(),
            [0, 8, 16, 24]
        );

        // Slot 0 comes back requeued with the device queue frozen, slot 1 done, while the SIM
        // queue is frozen: nothing may be sent until it thaws.
        call(xpt_freeze_simq, 0, &[sim, 1]);
        let (a, b) = (first[0], first[1]);
        std::thread::spawn(move || {
            finish(a, CAM_REQUEUE_REQ | CAM_DEV_QFRZN);
            finish(b, CAM_REQ_CMP);
        });
        let mut done = Vec::new();
        p.wait(&mut done).unwrap();
        assert_eq!(done, [1]);
        assert_eq!(with(|k| k.devq_frozen), 0, "cam_release_devq");
        p.start(1, false, 64, 8).unwrap();
        assert!(
            SENT.lock().unwrap().is_empty(),
            "sent while the SIM queue is frozen"
        );
        assert_eq!(p.outstanding(), 4);
        let thaw = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            call(xpt_release_simq, 0, &[0, 1]);
        });
        // Slot 2 finishes after the thaw; meanwhile the held slots go out in order.
        let c = first[2];
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            finish(c, CAM_REQ_CMP);
        });
        p.wait(&mut done).unwrap();
        thaw.join().unwrap();
        assert_eq!(done, [2]);
        let again: Vec<u64> = std::mem::take(&mut *SENT.lock().unwrap());
        assert_eq!(
            again.iter().map(|&c| lba_of(c)).collect::<Vec<_>>(),
            [0, 64]
        );
        assert!(!SENT_FROZEN.load(Ordering::SeqCst));

        // All four at the SIM again (slot 2 is free); they finish together: one wait takes
        // them all. Then an error status fails the wait with its LBA.
        p.start(2, false, 128, 8).unwrap();
        let all: Vec<u64> = first[3..]
            .iter()
            .chain(&again)
            .chain(&std::mem::take(&mut *SENT.lock().unwrap()))
            .copied()
            .collect();
        assert_eq!(all.len(), 4);
        for &c in &all {
            finish(c, CAM_REQ_CMP);
        }
        p.wait(&mut done).unwrap();
        done.sort();
        assert_eq!(done, [0, 1, 2, 3]);
        assert_eq!(p.outstanding(), 0);
        p.start(3, false, 256, 8).unwrap();
        let c = SENT.lock().unwrap().pop().unwrap();
        finish(c, 0x04); // CAM_REQ_CMP_ERR
        let e = p.wait(&mut done).unwrap_err();
        assert!(e.contains("READ(16) at 256: CAM status 0x4"), "{e}");
        assert_eq!(p.max_in_flight(), 4);

        // A SIM that completes nothing: the wait ends with an error after the limit (60 s;
        // shortened here), and the CCB it holds is never freed under it.
        p.limit = Duration::from_millis(200);
        p.start(3, false, 512, 8).unwrap();
        let t0 = Instant::now();
        let e = p.wait(&mut done).unwrap_err();
        assert!(t0.elapsed() >= Duration::from_millis(200));
        assert!(e.contains("completed none of the 1 CCBs it holds"), "{e}");
        let c = SENT.lock().unwrap().pop().unwrap();
        drop(p);
        // Still readable: the pipeline left the CCB the fake SIM holds allocated.
        assert_eq!(lba_of(c), 512);
    }
}
