//! The boot disk as CAM sees it: the SIM's decisions, portable and tested on the host.
//!
//! FreeBSD's CAM hands a SIM one CCB at a time through its action routine
//! (`sys/cam/cam_sim.h`, `sim_action_func`). This module decides what each CCB means for the
//! iSCSI session and what goes back to CAM; the platform only moves bytes between the CCB and
//! these types (on FreeBSD in the C shim, which knows the `union ccb` layout; under a host CAM
//! double in the tests). The model is FreeBSD's own iSCSI initiator, `sys/dev/iscsi/iscsi.c`
//! (`iscsi_action`, `iscsi_pdu_handle_scsi_response`), with these choices of ours:
//!
//! - **One bus, one target, one LUN.** CAM sees target 0, LUN 0: the iBFT's target and LUN.
//!   Other targets are `CAM_SEL_TIMEOUT` (no such device), other LUNs `CAM_DEV_NOT_THERE`, and
//!   REPORT LUNS is answered here with LUN 0 alone (SPC-4 §6.33), so that CAM's scan does not
//!   find the target's other LUNs (tgtd's controller at LUN 0, another node's disk).
//! - **A network blink is never an error.** While the session recovers a lost connection
//!   (RFC 7143 §6.3.5 session reinstatement at ERL 0), the SIM queue is frozen so CAM holds new
//!   requests, a request that still arrives is sent back `CAM_REQUEUE_REQ` (CAM retries it
//!   without using up a retry), and the commands already at the target are re-issued by the
//!   session after the new login and complete as usual. Only a session that has given up (its
//!   recovery time ran out, or the target refused the login) fails commands, with
//!   `CAM_DEV_NOT_THERE`.
//! - **Status as iscsi(4) reports it**: GOOD is `CAM_REQ_CMP`; any other SCSI status is
//!   `CAM_SCSI_STATUS_ERROR` with the status, and with CHECK CONDITION the sense data is copied
//!   (up to `sense_len`, `sense_resid` the rest) and `CAM_AUTOSNS_VALID` set; a service
//!   response other than "completed" is `CAM_REQ_CMP_ERR`. An error freezes the device queue
//!   (`CAM_DEV_QFRZN`), as CAM's error recovery expects (`sys/cam/cam_periph.c`).

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use iscsi_initiator::scsi::{Cdb, Lun, ScsiStatus};
use iscsi_initiator::session::{
    CommandError, Completion, DataBuf, Direction, Residual, Session, SubmitError, TaskHandle,
};

/// A CAM status (`cam_status`, `sys/cam/cam.h`): the code in the low six bits, flags above.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CamStatus(pub u32);

impl CamStatus {
    /// Completed without error.
    pub const REQ_CMP: Self = Self(0x01);
    /// Aborted by the host (XPT_ABORT).
    pub const REQ_ABORTED: Self = Self(0x02);
    /// Completed with an error.
    pub const REQ_CMP_ERR: Self = Self(0x04);
    /// The CCB request is invalid.
    pub const REQ_INVALID: Self = Self(0x06);
    /// The device is not there.
    pub const DEV_NOT_THERE: Self = Self(0x08);
    /// Target selection timed out: no such target.
    pub const SEL_TIMEOUT: Self = Self(0x0a);
    /// The command finished with a SCSI status other than GOOD.
    pub const SCSI_STATUS_ERROR: Self = Self(0x0c);
    /// Requeue to preserve the transaction order (CAM retries without counting it).
    pub const REQUEUE_REQ: Self = Self(0x1b);
    /// The function is not supported.
    pub const FUNC_NOTAVAIL: Self = Self(0x3a);
    /// Flag: the device queue is frozen.
    pub const DEV_QFRZN: u32 = 0x40;
    /// Flag: autosense data is valid.
    pub const AUTOSNS_VALID: u32 = 0x80;
    /// The code without the flags (`CAM_STATUS_MASK`).
    pub const MASK: u32 = 0x3f;

    /// The code, without the flags.
    pub const fn code(self) -> Self {
        Self(self.0 & Self::MASK)
    }

    /// With `flag` set.
    pub const fn with(self, flag: u32) -> Self {
        Self(self.0 | flag)
    }

    /// Whether `flag` is set.
    pub const fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }
}

impl fmt::Debug for CamStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code() {
            Self::REQ_CMP => "REQ_CMP",
            Self::REQ_ABORTED => "REQ_ABORTED",
            Self::REQ_CMP_ERR => "REQ_CMP_ERR",
            Self::REQ_INVALID => "REQ_INVALID",
            Self::DEV_NOT_THERE => "DEV_NOT_THERE",
            Self::SEL_TIMEOUT => "SEL_TIMEOUT",
            Self::SCSI_STATUS_ERROR => "SCSI_STATUS_ERROR",
            Self::REQUEUE_REQ => "REQUEUE_REQ",
            Self::FUNC_NOTAVAIL => "FUNC_NOTAVAIL",
            _ => return write!(f, "CamStatus({:#x})", self.0),
        };
        f.write_str(name)?;
        if self.has(Self::DEV_QFRZN) {
            f.write_str("|DEV_QFRZN")?;
        }
        if self.has(Self::AUTOSNS_VALID) {
            f.write_str("|AUTOSNS_VALID")?;
        }
        Ok(())
    }
}

/// CCB function codes (`xpt_opcode`, `sys/cam/cam_ccb.h`).
#[allow(missing_docs)]
pub mod func {
    pub const NOOP: u32 = 0x00;
    pub const SCSI_IO: u32 = 0x901;
    pub const GDEV_TYPE: u32 = 0x02;
    pub const PATH_INQ: u32 = 0x04;
    pub const ABORT: u32 = 0x10;
    pub const RESET_BUS: u32 = 0x411;
    pub const RESET_DEV: u32 = 0x912;
    pub const GET_TRAN_SETTINGS: u32 = 0x15;
    pub const SET_TRAN_SETTINGS: u32 = 0x16;
    pub const CALC_GEOMETRY: u32 = 0x17;
}

/// The data direction of a SCSI I/O CCB (`CAM_DIR_*` in `ccb_h.flags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDir {
    /// `CAM_DIR_NONE`.
    None,
    /// `CAM_DIR_IN`: from the device.
    In,
    /// `CAM_DIR_OUT`: to the device.
    Out,
}

/// An `XPT_SCSI_IO` CCB as the SIM needs it. `token` names the CCB for the platform (on
/// FreeBSD its address); the SIM never looks inside it.
#[derive(Debug)]
pub struct ScsiIo {
    /// The platform's name for the CCB.
    pub token: u64,
    /// `ccb_h.target_id`.
    pub target: u32,
    /// `ccb_h.target_lun`.
    pub lun: u64,
    /// The CDB (`cdb_io`, `cdb_len` bytes).
    pub cdb: Vec<u8>,
    /// The direction.
    pub dir: DataDir,
    /// `dxfer_len`.
    pub dxfer_len: u32,
    /// The data: the CCB's own buffer (`data_ptr`, `dxfer_len` bytes) lent for the command
    /// ([`DataBuf::Lent`]: reads land in it and writes leave from it, no copy), or else
    /// ([`DataBuf::Owned`]) for `DataDir::Out` the bytes to send and for `DataDir::In` nothing
    /// (the SIM reads into a pool buffer and the completion carries the bytes).
    pub data: DataBuf,
    /// `sense_len`: room for autosense data.
    pub sense_len: u8,
    /// Whether autosense is disabled (`CAM_DIS_AUTOSENSE`).
    pub no_autosense: bool,
}

/// What goes back to CAM for an `XPT_SCSI_IO` CCB (then `xpt_done`).
#[derive(Clone, PartialEq, Eq)]
pub struct ScsiIoDone {
    /// The CCB.
    pub token: u64,
    /// `ccb_h.status`, with `CAM_DEV_QFRZN` when the platform must freeze the device queue
    /// (`xpt_freeze_devq(path, 1)`) before `xpt_done`.
    pub status: CamStatus,
    /// `scsi_status`.
    pub scsi_status: u8,
    /// `resid`: bytes of `dxfer_len` not transferred.
    pub resid: u32,
    /// For reads into a pool buffer: the bytes to copy to `data_ptr` (at most `dxfer_len`);
    /// empty when they were read into the CCB's own buffer.
    pub data: Vec<u8>,
    /// Autosense data for `sense_data` (at most `sense_len` bytes).
    pub sense: Vec<u8>,
    /// `sense_resid`: `sense_len` minus the bytes copied.
    pub sense_resid: u8,
}

impl fmt::Debug for ScsiIoDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScsiIoDone")
            .field("token", &self.token)
            .field("status", &self.status)
            .field("scsi_status", &self.scsi_status)
            .field("resid", &self.resid)
            .field("data_len", &self.data.len())
            .field("sense", &self.sense)
            .finish()
    }
}

/// What `XPT_PATH_INQ` answers (`struct ccb_pathinq`), as `iscsi_action` fills it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathInq {
    /// `hba_inquiry`: `PI_TAG_ABLE` (tagged queueing).
    pub hba_inquiry: u8,
    /// `hba_misc`: `PIM_NOBUSRESET` (there is no bus to reset).
    pub hba_misc: u32,
    /// `max_target`: 0.
    pub max_target: u32,
    /// `max_lun`: 0.
    pub max_lun: u32,
    /// `maxio`: the largest transfer in one CCB.
    pub maxio: u32,
    /// `base_transfer_speed` in KB/s (informational).
    pub base_transfer_speed: u32,
    /// `transport`: `XPORT_ISCSI`.
    pub transport: u32,
    /// `protocol`: `PROTO_SCSI`.
    pub protocol: u32,
    /// `protocol_version`: `SCSI_REV_SPC3`.
    pub protocol_version: u32,
}

/// `PI_TAG_ABLE` (`sys/cam/cam_ccb.h`).
pub const PI_TAG_ABLE: u8 = 0x02;
/// `PIM_NOBUSRESET` (`sys/cam/cam_ccb.h`).
pub const PIM_NOBUSRESET: u32 = 0x10;
/// `XPORT_ISCSI` (`cam_xport`, `sys/cam/cam.h`).
pub const XPORT_ISCSI: u32 = 10;
/// `PROTO_SCSI` (`cam_proto`, `sys/cam/cam.h`).
pub const PROTO_SCSI: u32 = 2;
/// `SCSI_REV_SPC3` (`sys/cam/scsi/scsi_all.h`).
pub const SCSI_REV_SPC3: u32 = 5;
/// FreeBSD 14's default `maxphys` (1 MiB, `sys/sys/param.h` `MAXPHYS` on 64-bit).
pub const MAXPHYS: u32 = 1 << 20;

/// `XPT_CALC_GEOMETRY`: a made-up C/H/S for the volume, as `cam_calc_geometry(ccg, 1)`
/// computes it (`sys/cam/cam.c`): 255 heads and 63 sectors above 1 GiB, else 64 and 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// `heads`.
    pub heads: u8,
    /// `secs_per_track`.
    pub secs_per_track: u8,
    /// `cylinders`.
    pub cylinders: u32,
}

/// The geometry of a volume of `volume_size` blocks of `block_size` bytes.
pub fn calc_geometry(block_size: u32, volume_size: u64) -> Geometry {
    let bytes = u64::from(block_size).saturating_mul(volume_size);
    let (heads, secs): (u8, u8) = if bytes > 1024 * 1024 * 1024 {
        (255, 63)
    } else {
        (64, 32)
    };
    let per_cyl = u64::from(heads) * u64::from(secs);
    Geometry {
        heads,
        secs_per_track: secs,
        cylinders: u32::try_from(volume_size / per_cyl).unwrap_or(u32::MAX),
    }
}

/// What a CCB turned into.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done now: `xpt_done` with this status (for every function but `XPT_SCSI_IO`).
    Done(CamStatus),
    /// An `XPT_SCSI_IO` done now (invalid, another LUN, answered here, or sent back).
    Io(ScsiIoDone),
    /// Sent to the target; the answer comes from [`Sim::complete`].
    Queued,
}

/// Something the platform must do to CAM besides completing CCBs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueEvent {
    /// `xpt_freeze_simq(sim, 1)`: the session is recovering.
    Freeze,
    /// `xpt_release_simq(sim, 1)`: it is back.
    Release,
}

/// A task-management CCB (`XPT_ABORT`, `XPT_RESET_DEV`) waiting for its response.
#[derive(Debug)]
struct Tmf {
    token: u64,
    handle: TaskHandle,
}

/// The SIM: its open commands and its queue state. Owned by the session thread; the
/// platform's action routine hands CCBs over to that thread.
#[derive(Debug)]
pub struct Sim {
    /// The iSCSI LUN behind CAM's LUN 0.
    lun: Lun,
    /// Open commands: (session task, CCB token, direction, dxfer_len, sense_len, autosense).
    open: Vec<Open>,
    tmfs: Vec<Tmf>,
    frozen: bool,
    /// Buffers of finished commands, for the next ones.
    pub pool: BufferPool,
}

/// Data and CDB buffers kept from finished commands for the next ones, so that a command in
/// steady state allocates nothing: at most [`BufferPool::MAX`] buffers of
/// [`BufferPool::MAX_BYTES`] bytes in all (beyond that they are freed).
#[derive(Debug, Default)]
pub struct BufferPool {
    spare: Vec<Vec<u8>>,
    bytes: usize,
}

impl BufferPool {
    /// Buffers kept at most.
    pub const MAX: usize = 64;
    /// Bytes (capacity) kept at most.
    pub const MAX_BYTES: usize = 8 << 20;

    /// A `len`-byte buffer: the smallest kept one that holds them, else a new (zeroed) one.
    /// A kept buffer is not zeroed again: its bytes are what an earlier command left (only a
    /// part it never had is zeroed), and every caller overwrites what it uses — a CDB, data
    /// to send, a read's received part (CAM gets only the bytes that arrived, see `finish`).
    /// Zeroing 1 MiB per read was 7 % of a 1 MiB sequential read's CPU.
    pub fn take(&mut self, len: usize) -> Vec<u8> {
        let best = self
            .spare
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let mut b = self.spare.swap_remove(i);
                self.bytes -= b.capacity();
                if b.len() >= len {
                    b.truncate(len);
                } else {
                    b.resize(len, 0);
                }
                b
            }
            None => vec![0u8; len],
        }
    }

    /// Keeps `b` for a later [`BufferPool::take`] (or frees it when the pool is full).
    pub fn put(&mut self, b: Vec<u8>) {
        let cap = b.capacity();
        if cap == 0 || self.spare.len() >= Self::MAX || self.bytes + cap > Self::MAX_BYTES {
            return;
        }
        self.bytes += cap;
        self.spare.push(b);
    }
}

#[derive(Debug, Clone, Copy)]
struct Open {
    handle: TaskHandle,
    token: u64,
    dir: DataDir,
    dxfer_len: u32,
    sense_len: u8,
    autosense: bool,
}

/// Why a CCB could not be decoded from its C form (the platform reports `CAM_REQ_INVALID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CcbError {
    /// The CDB is empty or longer than 16 bytes.
    BadCdb,
}

impl Sim {
    /// A SIM for the iSCSI LUN `lun`.
    pub fn new(lun: Lun) -> Self {
        Self {
            lun,
            open: Vec::new(),
            tmfs: Vec::new(),
            frozen: false,
            pool: BufferPool::default(),
        }
    }

    /// Commands sent to the target and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.open.len()
    }

    /// Whether the SIM queue is frozen (the session is recovering).
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// `XPT_PATH_INQ` for a session with these negotiated limits.
    pub fn path_inq(max_burst_length: u32) -> PathInq {
        // One CCB may move more than MaxBurstLength (the target sends several bursts, RFC 7143
        // §13.14), but a larger CCB only waits longer for its last burst: stay within one
        // burst, in whole pages, and within maxphys.
        let maxio = (max_burst_length & !0xfff).clamp(4096, MAXPHYS);
        PathInq {
            hba_inquiry: PI_TAG_ABLE,
            hba_misc: PIM_NOBUSRESET,
            max_target: 0,
            max_lun: 0,
            maxio,
            base_transfer_speed: 150_000,
            transport: XPORT_ISCSI,
            protocol: PROTO_SCSI,
            protocol_version: SCSI_REV_SPC3,
        }
    }

    /// Takes a SCSI I/O CCB: answers it at once, or submits it to the session.
    pub fn scsi_io(&mut self, session: &mut Session, io: ScsiIo) -> Outcome {
        let (token, dxfer_len, sense_len) = (io.token, io.dxfer_len, io.sense_len);
        let done = move |status: CamStatus| {
            Outcome::Io(ScsiIoDone {
                token,
                status,
                scsi_status: 0,
                resid: dxfer_len,
                data: Vec::new(),
                sense: Vec::new(),
                sense_resid: sense_len,
            })
        };
        if io.target != 0 {
            return done(CamStatus::SEL_TIMEOUT);
        }
        if io.lun != 0 {
            return done(CamStatus::DEV_NOT_THERE);
        }
        let Some(cdb) = Cdb::new(&io.cdb) else {
            return done(CamStatus::REQ_INVALID);
        };
        let lent = matches!(io.data, DataBuf::Lent(_));
        if ((io.dir == DataDir::Out || lent) && io.data.len() < io.dxfer_len as usize)
            || (io.dir == DataDir::None && io.dxfer_len != 0)
        {
            return done(CamStatus::REQ_INVALID);
        }
        if io.cdb[0] == REPORT_LUNS {
            return Outcome::Io(report_luns(&io));
        }
        if self.frozen || session.is_recovering() {
            return done(CamStatus::REQUEUE_REQ);
        }
        self.pool.put(io.cdb);
        let (dir, buffer) = match (io.dir, io.data) {
            (DataDir::None, _) => (Direction::None, DataBuf::Owned(Vec::new())),
            (DataDir::In, DataBuf::Owned(_)) => (
                Direction::Read,
                DataBuf::Owned(self.pool.take(io.dxfer_len as usize)),
            ),
            (DataDir::In, data) => (Direction::Read, data),
            (DataDir::Out, data) => (Direction::Write, data),
        };
        match session.submit_data(self.lun, cdb, dir, buffer, io.dxfer_len) {
            Ok(handle) => {
                self.open.push(Open {
                    handle,
                    token: io.token,
                    dir: io.dir,
                    dxfer_len: io.dxfer_len,
                    sense_len: io.sense_len,
                    autosense: !io.no_autosense,
                });
                Outcome::Queued
            }
            // More than the openings CAM was given: CAM retries it after a completion.
            Err((SubmitError::QueueFull, _)) => done(CamStatus::REQUEUE_REQ),
            Err((SubmitError::BufferTooSmall, _)) => done(CamStatus::REQ_INVALID),
            Err((SubmitError::Closed, _)) => done(CamStatus::DEV_NOT_THERE),
            Err((SubmitError::Busy | SubmitError::NoSuchTask, _)) => done(CamStatus::REQUEUE_REQ),
        }
    }

    /// `XPT_ABORT` of the CCB `victim` (the abort CCB is `token`): ABORT TASK
    /// (RFC 7143 §11.5.1). A CCB that is not open here completes at once with
    /// `CAM_REQ_CMP` when it is already done (nothing to abort) — as iscsi(4) answers.
    pub fn abort(&mut self, session: &mut Session, token: u64, victim: u64) -> Outcome {
        let Some(open) = self.open.iter().find(|o| o.token == victim) else {
            return Outcome::Done(CamStatus::REQ_CMP);
        };
        match session.abort_task(open.handle) {
            Ok(handle) => {
                self.tmfs.push(Tmf { token, handle });
                Outcome::Queued
            }
            Err(_) => Outcome::Done(CamStatus::REQ_CMP_ERR),
        }
    }

    /// `XPT_RESET_DEV`: LOGICAL UNIT RESET (RFC 7143 §11.5.1).
    pub fn reset_dev(&mut self, session: &mut Session, token: u64) -> Outcome {
        match session.lun_reset(self.lun) {
            Ok(handle) => {
                self.tmfs.push(Tmf { token, handle });
                Outcome::Queued
            }
            Err(_) => Outcome::Done(CamStatus::REQ_CMP_ERR),
        }
    }

    /// The CCB a session completion answers, if it is one of ours. A task-management answer
    /// comes back as `Err((token, status))` for its CCB.
    pub fn complete(&mut self, c: Completion) -> Option<Result<ScsiIoDone, (u64, CamStatus)>> {
        match c {
            Completion::Command {
                handle,
                result,
                buffer,
            } => {
                let at = self.open.iter().position(|o| o.handle == handle)?;
                let open = self.open.swap_remove(at);
                // Data read into a pool buffer goes to CAM with the completion; data read
                // into (or sent from) the CCB's own buffer is where it belongs already.
                let buffer = match buffer {
                    DataBuf::Owned(b) if open.dir == DataDir::In => b,
                    DataBuf::Owned(b) => {
                        self.pool.put(b);
                        Vec::new()
                    }
                    DataBuf::Lent(_) => Vec::new(),
                };
                Some(Ok(finish(open, result, buffer)))
            }
            Completion::TaskManagement { handle, response } => {
                let at = self.tmfs.iter().position(|t| t.handle == handle)?;
                let tmf = self.tmfs.swap_remove(at);
                // RFC 7143 §11.6.1: 0 is "function complete"; 1 "task does not exist" means
                // it had finished already, which for an abort is success too.
                let status = if response <= 1 {
                    CamStatus::REQ_CMP
                } else {
                    CamStatus::REQ_CMP_ERR
                };
                Some(Err((tmf.token, status)))
            }
            _ => None,
        }
    }

    /// Whether the SIM queue must now be frozen or released, given the session's state.
    pub fn queue_event(&mut self, session: &Session) -> Option<QueueEvent> {
        let recovering = session.is_recovering();
        if recovering && !self.frozen {
            self.frozen = true;
            Some(QueueEvent::Freeze)
        } else if !recovering && self.frozen {
            self.frozen = false;
            Some(QueueEvent::Release)
        } else {
            None
        }
    }
}

/// REPORT LUNS (SPC-4 §6.33).
const REPORT_LUNS: u8 = 0xa0;

/// Our answer to REPORT LUNS: one LUN, 0 (an 8-byte header, then one 8-byte entry).
fn report_luns(io: &ScsiIo) -> ScsiIoDone {
    let mut list = [0u8; 16];
    list[3] = 8; // LUN LIST LENGTH: one entry
    let n = (io.dxfer_len as usize).min(list.len());
    ScsiIoDone {
        token: io.token,
        status: CamStatus::REQ_CMP,
        scsi_status: 0,
        resid: io.dxfer_len - n as u32,
        data: list[..n].to_vec(),
        sense: Vec::new(),
        sense_resid: io.sense_len,
    }
}

fn finish(
    open: Open,
    result: Result<iscsi_initiator::session::ScsiOutcome, CommandError>,
    mut buffer: Vec<u8>,
) -> ScsiIoDone {
    let mut done = ScsiIoDone {
        token: open.token,
        status: CamStatus::REQ_CMP,
        scsi_status: 0,
        resid: 0,
        data: Vec::new(),
        sense: Vec::new(),
        sense_resid: open.sense_len,
    };
    match result {
        Ok(outcome) => {
            // What the target says it moved, and for reads never more than arrived: the
            // bytes past what arrived are a pool buffer's old contents (not zeroed) or the
            // CCB's own (RFC 7143 §11.4.5.2: a residual with a non-GOOD status need not
            // match the Data-In).
            let moved = match outcome.residual {
                Residual::Underflow(n) => open.dxfer_len.saturating_sub(n),
                _ => outcome.transferred.min(open.dxfer_len),
            };
            let moved = if open.dir == DataDir::In {
                moved.min(outcome.transferred)
            } else {
                moved
            };
            done.resid = open.dxfer_len - moved.min(open.dxfer_len);
            if open.dir == DataDir::In {
                buffer.truncate(moved as usize);
                done.data = buffer;
            }
            done.scsi_status = outcome.status.0;
            if outcome.status != ScsiStatus::GOOD {
                done.status = CamStatus::SCSI_STATUS_ERROR.with(CamStatus::DEV_QFRZN);
                if let (Some(sense), true) = (outcome.sense, open.autosense) {
                    let bytes = sense.as_bytes();
                    let n = bytes.len().min(usize::from(open.sense_len));
                    done.sense = bytes[..n].to_vec();
                    done.sense_resid = open.sense_len - n as u8;
                    done.status = done.status.with(CamStatus::AUTOSNS_VALID);
                }
            }
        }
        Err(e) => {
            done.resid = open.dxfer_len;
            done.status = match e {
                CommandError::Aborted => CamStatus::REQ_ABORTED.with(CamStatus::DEV_QFRZN),
                CommandError::SessionFailed(_) => {
                    CamStatus::DEV_NOT_THERE.with(CamStatus::DEV_QFRZN)
                }
                CommandError::Rejected(_) | CommandError::TargetFailure(_) => {
                    CamStatus::REQ_CMP_ERR.with(CamStatus::DEV_QFRZN)
                }
            };
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_cam_calc_geometry() {
        // 16 MiB of 512-byte blocks: 64 heads, 32 sectors.
        assert_eq!(
            calc_geometry(512, 32768),
            Geometry {
                heads: 64,
                secs_per_track: 32,
                cylinders: 16
            }
        );
        // 8 GiB: 255 heads, 63 sectors.
        let g = calc_geometry(512, 16 << 20);
        assert_eq!((g.heads, g.secs_per_track), (255, 63));
        assert_eq!(g.cylinders, (16u32 << 20) / (255 * 63));
        // Absurd sizes saturate instead of wrapping.
        assert_eq!(calc_geometry(4096, u64::MAX).cylinders, u32::MAX);
    }

    #[test]
    fn maxio_is_whole_pages_of_one_burst_within_maxphys() {
        assert_eq!(Sim::path_inq(262_144).maxio, 262_144);
        assert_eq!(Sim::path_inq(262_145).maxio, 262_144);
        assert_eq!(Sim::path_inq(16 << 20).maxio, MAXPHYS);
        assert_eq!(Sim::path_inq(512).maxio, 4096);
        let p = Sim::path_inq(65536);
        assert_eq!((p.max_target, p.max_lun, p.transport), (0, 0, XPORT_ISCSI));
        assert_eq!(p.hba_inquiry & PI_TAG_ABLE, PI_TAG_ABLE);
    }

    use iscsi_initiator::scsi::Sense;
    use iscsi_initiator::session::{ScsiOutcome, SessionError};

    fn open(dir: DataDir, dxfer_len: u32, sense_len: u8) -> Open {
        Open {
            handle: TaskHandle(7),
            token: 0xcc,
            dir,
            dxfer_len,
            sense_len,
            autosense: true,
        }
    }

    fn outcome(status: u8, residual: Residual, sense: Option<Sense>, moved: u32) -> ScsiOutcome {
        ScsiOutcome {
            status: ScsiStatus(status),
            residual,
            sense,
            transferred: moved,
        }
    }

    #[test]
    fn pool_buffers_come_back_without_being_zeroed_again() {
        let mut pool = BufferPool::default();
        let mut b = pool.take(4096);
        assert!(b.iter().all(|&x| x == 0), "a new buffer is zeroed");
        b.fill(0xee);
        let at = b.as_ptr();
        pool.put(b);
        // The same memory, its old bytes kept: no 1 MiB memset per read.
        let b = pool.take(1024);
        assert_eq!((b.as_ptr(), b.len()), (at, 1024));
        assert!(b.iter().all(|&x| x == 0xee));
        pool.put(b);
        // Growing back within the capacity zeroes only what was cut off.
        let b = pool.take(4096);
        assert_eq!(b.as_ptr(), at);
        assert!(b[..1024].iter().all(|&x| x == 0xee) && b[1024..].iter().all(|&x| x == 0));
    }

    #[test]
    fn a_failed_read_gives_cam_only_the_bytes_that_arrived() {
        // CHECK CONDITION with a residual claiming 3 KiB moved, but only 1 KiB of Data-In came:
        // the rest of the (reused, not zeroed) buffer is an earlier command's.
        let d = finish(
            open(DataDir::In, 4096, 32),
            Ok(outcome(2, Residual::Underflow(1024), None, 1024)),
            vec![0xab; 4096],
        );
        assert_eq!((d.data.len(), d.resid), (1024, 3072));
    }

    #[test]
    fn good_reads_return_what_came_and_the_residual() {
        let d = finish(
            open(DataDir::In, 4096, 32),
            Ok(outcome(0, Residual::Underflow(1024), None, 3072)),
            vec![0xab; 4096],
        );
        assert_eq!(d.status, CamStatus::REQ_CMP);
        assert_eq!((d.resid, d.data.len()), (1024, 3072));
        assert!(d.sense.is_empty());
        // Writes hand nothing back.
        let d = finish(
            open(DataDir::Out, 512, 32),
            Ok(outcome(0, Residual::None, None, 512)),
            vec![1; 512],
        );
        assert_eq!(
            (d.status, d.resid, d.data.len()),
            (CamStatus::REQ_CMP, 0, 0)
        );
    }

    #[test]
    fn check_condition_carries_autosense_cut_to_sense_len_and_freezes() {
        // Fixed-format sense: MEDIUM ERROR, 18 bytes.
        let mut raw = [0u8; 18];
        raw[0] = 0x70;
        raw[2] = 0x03;
        raw[7] = 10;
        raw[12] = 0x11;
        let sense = Sense::new(&raw);
        let d = finish(
            open(DataDir::In, 512, 8),
            Ok(outcome(2, Residual::Underflow(512), Some(sense), 0)),
            vec![0; 512],
        );
        assert_eq!(
            d.status,
            CamStatus::SCSI_STATUS_ERROR
                .with(CamStatus::DEV_QFRZN)
                .with(CamStatus::AUTOSNS_VALID)
        );
        assert_eq!(d.scsi_status, 2);
        assert_eq!(d.sense, raw[..8]);
        assert_eq!(d.sense_resid, 0);
        // With autosense off, no sense.
        let mut o = open(DataDir::In, 512, 32);
        o.autosense = false;
        let d = finish(
            o,
            Ok(outcome(2, Residual::None, Some(sense), 0)),
            vec![0; 512],
        );
        assert!(!d.status.has(CamStatus::AUTOSNS_VALID) && d.sense.is_empty());
        assert_eq!(d.sense_resid, 32);
        // BUSY without sense: a status error, no sense.
        let d = finish(
            open(DataDir::None, 0, 32),
            Ok(outcome(8, Residual::None, None, 0)),
            vec![],
        );
        assert_eq!(d.status.code(), CamStatus::SCSI_STATUS_ERROR);
        assert_eq!(d.scsi_status, 8);
    }

    #[test]
    fn failures_map_as_iscsi4_does() {
        let f = |e| finish(open(DataDir::In, 512, 32), Err(e), vec![0; 512]);
        assert_eq!(
            f(CommandError::Aborted).status,
            CamStatus::REQ_ABORTED.with(CamStatus::DEV_QFRZN)
        );
        assert_eq!(
            f(CommandError::TargetFailure(1)).status,
            CamStatus::REQ_CMP_ERR.with(CamStatus::DEV_QFRZN)
        );
        let d = f(CommandError::SessionFailed(SessionError::ConnectionLost));
        assert_eq!(
            d.status,
            CamStatus::DEV_NOT_THERE.with(CamStatus::DEV_QFRZN)
        );
        assert_eq!((d.resid, d.data.len()), (512, 0));
    }

    #[test]
    fn report_luns_lists_lun_0_only_within_the_allocation() {
        let io = |len| ScsiIo {
            token: 1,
            target: 0,
            lun: 0,
            cdb: vec![0xa0, 0, 0, 0, 0, 0, 0, 0, 0, len as u8, 0, 0],
            dir: DataDir::In,
            dxfer_len: len,
            data: DataBuf::Owned(Vec::new()),
            sense_len: 0,
            no_autosense: false,
        };
        let d = report_luns(&io(64));
        assert_eq!(d.data, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.resid, 48);
        let d = report_luns(&io(4));
        assert_eq!((d.data.len(), d.resid), (4, 0));
    }

    #[test]
    fn status_debug_names_code_and_flags() {
        let s = CamStatus::SCSI_STATUS_ERROR
            .with(CamStatus::DEV_QFRZN)
            .with(CamStatus::AUTOSNS_VALID);
        assert_eq!(
            alloc::format!("{s:?}"),
            "SCSI_STATUS_ERROR|DEV_QFRZN|AUTOSNS_VALID"
        );
        assert_eq!(s.code(), CamStatus::SCSI_STATUS_ERROR);
    }
}
