//! The hermon-class driver: ConnectX, ConnectX-2, ConnectX-3/Pro (iPXE
//! `src/drivers/infiniband/hermon.c`, Linux `drivers/net/ethernet/mellanox/mlx4/`).
//!
//! Bring-up ([`Hermon::open`]): reset with the post-reset delay, QUERY_FW, MAP_FA, RUN_FW,
//! QUERY_DEV_CAP, QUERY_ADAPTER, ICM layout and sizing (SET_ICM_SIZE), MAP_ICM_AUX, MAP_ICM per
//! region, INIT_HCA, one physical MPT, one EQ with all events mapped, CONF_SPECIAL_QP,
//! QUERY_PORT per port. Ports are opened on demand (SET_PORT, INIT_PORT, QP0/QP1). Everything
//! is polled; no interrupts.
//!
//! The ICM layout is the one iPXE `hermon_map_icm` and Linux `mlx4_init_icm` /
//! `mlx4_init_cmpt_table` give the firmware: four cMPT tables (QP, SRQ, CQ, EQ) at
//! `cmpt_base + type · 2^24 · cmpt_entry_sz`, each mapped only for the objects in use, then
//! QPC, ALTC, AUXC, SRQC, CQC, EQC, MTT, dMPT and the multicast table, each aligned to its own
//! power-of-two size, every size from QUERY_DEV_CAP.

pub mod cmd;
pub mod entries;
pub mod prm;
pub mod regs;

use alloc::vec::Vec;
use log::{debug, warn};

use crate::hal::{dma_fence, Bar, Dma, DmaDirection, DmaSync, Duration, Hal, Instant, PAGE_SIZE};
use crate::verbs::{
    AddressHandle, Completion, CompletionKind, CqId, Event, MadDest, PortAttr, PortNum, QpId,
    ReceivedMad, UdQpAttr, Verbs, WrId,
};
use crate::wire::headers::{Grh, UdPacketRepr};
use crate::wire::mad::{AttrId, Mad, MAD_SIZE};
use crate::wire::smp::{self, GuidInfo, NodeInfo, PKeyTable, PortInfo};
use crate::wire::{Gid, Lid, Qpn, GSI_QKEY};
use crate::Error;
use cmd::{CmdOut, Command, InKind, MapEntry, OutKind, MBOX_BYTES};
use prm::Prm;
use regs::HcrCtrl;
use zerocopy::FromBytes;

/// Driver tunables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Wait after the device answers config reads again following a reset (reference §2.1:
    /// ConnectX-2 fw 2.9.1200 needs one; Linux mlx4 waits about 1 s).
    pub post_reset_delay: Duration,
    /// Per-command HCR timeout (reference §2.2: 10 s, `HERMON_HCR_MAX_WAIT_MS`).
    pub cmd_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            post_reset_delay: Duration::from_secs(1),
            cmd_timeout: Duration::from_secs(10),
        }
    }
}

/// Protection domain for everything (iPXE `HERMON_GLOBAL_PD`): the MPT, every QP and every UD
/// address vector carry it.
pub const GLOBAL_PD: u32 = 0x12_3456;
/// Special QPs (QP0 and QP1 of both ports) above the reserved range; iPXE reserves
/// `HERMON_RSVD_SPECIAL_QPS` beyond it too.
const SPECIAL_QPS: u32 = 8;
/// Objects the driver creates beyond the reserved ones.
const MAX_QPS: u32 = 32;
const MAX_CQS: u32 = 32;
const MTT_ENTRIES: u32 = 1024;
/// Most send or receive slots a QP gets. Each is a page of DMA memory, so a ROM asks for few
/// (64); a host serving a whole fabric wants a deeper receive ring (Linux IPoIB posts 256 by
/// default, `IPOIB_RX_RING_SIZE` in `drivers/infiniband/ulp/ipoib/ipoib.h`, up to 8192).
pub const MAX_QP_SLOTS: u32 = 1024;
/// Most entries a CQ gets (twice [`MAX_QP_SLOTS`]: a ring's completions and room to spare).
const MAX_CQ_ENTRIES: u32 = 2 * MAX_QP_SLOTS;
const EQ_ENTRIES: u32 = 8;
/// Per-slot buffer size: a 40-byte GRH area, then up to 4032 bytes of payload.
const SLOT: usize = PAGE_SIZE;
const GRH_AREA: usize = 64;
/// Receive payload capacity (the IB MTU iPXE uses: 2048).
const RECV_CAPACITY: usize = 2048;
/// Largest datagram payload `post_send` accepts.
pub const MAX_SEND_PAYLOAD: usize = SLOT - 128;
/// Doorbell records: 8 bytes each in one page.
const DB_RECORDS: usize = PAGE_SIZE / 8;
/// Upper bound on the ICM the driver will back with memory (a sanity limit on device-reported
/// sizes; the virtual extent, with its sparse cMPT tables, is larger).
const MAX_ICM_BYTES: u64 = 256 << 20;
/// MCG table: hash and table size log2 (iPXE `HERMON_LOG_MULTICAST_HASH_SIZE`).
const LOG_MCG: u32 = 7;
/// Entries in each cMPT table (iPXE `HERMON_CMPT_MAX_ENTRIES`; Linux `1 << MLX4_CMPT_SHIFT`).
const CMPT_MAX_ENTRIES: u64 = 1 << 24;
/// The cMPT table types in ICM order (Linux `mlx4.h` `MLX4_CMPT_TYPE_QP/SRQ/CQ/EQ`).
const CMPT_TYPES: usize = 4;
/// log2 of the UAR pages INIT_HCA declares (iPXE writes 8; page 128 carries the send doorbell).
const UAR_LOG_PAGES: u32 = 8;

/// Device limits from QUERY_DEV_CAP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevCaps {
    /// log2 of the QP table the device supports.
    pub log_max_qp: u32,
    /// log2 of the WQEs one send or receive queue may hold.
    pub log_max_qp_sz: u32,
    /// Reserved QPs.
    pub rsvd_qps: u32,
    /// log2 of the SRQ table.
    pub log_max_srqs: u32,
    /// Reserved SRQs.
    pub rsvd_srqs: u32,
    /// log2 of the CQ table.
    pub log_max_cq: u32,
    /// log2 of the CQEs one CQ may hold.
    pub log_max_cq_sz: u32,
    /// Reserved CQs.
    pub rsvd_cqs: u32,
    /// log2 of the EQ table.
    pub log_max_eq: u32,
    /// Reserved EQs (the count if the device gives one, else from its log2, as iPXE
    /// `hermon_get_cap`).
    pub rsvd_eqs: u32,
    /// log2 of the dMPT table.
    pub log_max_mpts: u32,
    /// Reserved MPTs.
    pub rsvd_mrws: u32,
    /// log2 of the MTT table.
    pub log_max_mtts: u32,
    /// Reserved MTT entries.
    pub rsvd_mtts: u32,
    /// log2 of the multicast table.
    pub log_max_mcg: u32,
    /// Ports.
    pub num_ports: u8,
    /// Reserved UAR pages.
    pub num_rsvd_uars: u32,
    /// QPC entry size.
    pub qpc_sz: u32,
    /// ALTC (extended QPC) entry size.
    pub altc_sz: u32,
    /// AUXC entry size.
    pub auxc_sz: u32,
    /// SRQ context entry size.
    pub srqc_sz: u32,
    /// CQC entry size.
    pub cqc_sz: u32,
    /// EQC entry size.
    pub eqc_sz: u32,
    /// cMPT entry size.
    pub cmpt_sz: u32,
    /// dMPT entry size.
    pub dmpt_sz: u32,
    /// MTT entry size.
    pub mtt_sz: u32,
}

fn log2_ceil(v: u64) -> u32 {
    if v <= 1 {
        0
    } else {
        64 - (v - 1).leading_zeros()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QpState {
    Init,
    Rtr,
    Rts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QpKind {
    Ud,
    Smi,
    Gsi,
}

#[derive(Debug)]
struct Cq<H: Hal> {
    cqn: u32,
    ring: Dma<H>,
    entries: u32,
    ci: u32,
    db: usize,
}

#[derive(Debug)]
struct Qp<H: Hal> {
    qpn: u32,
    port: PortNum,
    kind: QpKind,
    state: QpState,
    ring: Dma<H>,
    slots: Dma<H>,
    sq_entries: u32,
    rq_entries: u32,
    send_slots: u32,
    sq_pi: u32,
    sq_done: u32,
    rq_pi: u32,
    rq_ci: u32,
    db: usize,
    send_cq: CqId,
    recv_cq: CqId,
    qkey: u32,
}

impl<H: Hal> Qp<H> {
    fn rq_offset(&self) -> usize {
        self.sq_entries as usize * prm::send_wqe::STRIDE
    }
    fn recv_slot_offset(&self, idx: u32) -> usize {
        (self.send_slots + (idx % self.rq_entries)) as usize * SLOT
    }
}

/// What a port runs, from QUERY_PORT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum PortKind {
    /// InfiniBand (the default, and all old firmware without QUERY_PORT knows).
    #[default]
    Ib,
    /// A VPI port configured for Ethernet.
    Ethernet,
    /// Neither: the port reports no protocol it supports.
    Unusable,
}

#[derive(Clone, Copy, Debug, Default)]
struct PortCtx {
    open: bool,
    kind: PortKind,
    /// MTU cap for SET_PORT: 2048 (IBA encoding 4) or the port's largest, if smaller.
    mtu_cap: u32,
    smi: Option<QpId>,
    gsi: Option<QpId>,
    lid: Lid,
    pkey: u16,
}

/// One mapped part of ICM: its ICM virtual address and length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct IcmRegion {
    va: u64,
    len: u64,
}

/// ICM layout from the device's capabilities.
#[derive(Clone, Copy, Debug, Default)]
struct Icm {
    /// Virtual extent (SET_ICM_SIZE): the four sparse cMPT spans and everything after them.
    extent: u64,
    /// The mapped regions: the used prefix of each cMPT table, then the other tables.
    regions: [IcmRegion; CMPT_TYPES + 1],
    /// Bytes of memory backing the regions.
    backing: u64,
    log_qps: u32,
    log_srqs: u32,
    log_cqs: u32,
    log_eqs: u32,
    log_mtts: u32,
    log_mpts: u32,
    log_mcg: u32,
    cmpt: u64,
    qpc: u64,
    altc: u64,
    auxc: u64,
    srqc: u64,
    cqc: u64,
    eqc: u64,
    mtt: u64,
    dmpt: u64,
    mcg: u64,
}

/// A hermon-class HCA, brought up and ready for ports to be opened.
#[derive(Debug)]
pub struct Hermon<H: Hal> {
    hal: H,
    cfg: Config,
    toggle: bool,
    mbox_in: Dma<H>,
    mbox_out: Dma<H>,
    fw: cmd::FwInfo,
    adapter: cmd::AdapterInfo,
    caps: DevCaps,
    _fw_area: Dma<H>,
    _icm_aux: Dma<H>,
    _icm: Dma<H>,
    icm: Icm,
    lkey: u32,
    mtt_next: u32,
    mtt_limit: u32,
    eqn: u32,
    eq_ring: Dma<H>,
    eq_ci: u32,
    db_page: Dma<H>,
    db_free: Vec<usize>,
    special_base: u32,
    cqs: Vec<Option<Cq<H>>>,
    qps: Vec<Option<Qp<H>>>,
    ports: [PortCtx; 2],
    tid: u64,
    qpn_salt: u32,
}

impl<H: Hal> Hermon<H> {
    /// Resets and brings up the device. `hal` must be mapped onto a hermon-class device.
    ///
    /// A bring-up that fails after the reset resets the device again before returning, so
    /// that it stops using the memory handed to it (the firmware area, ICM, mailboxes). The
    /// buffers themselves are returned to the Hal as the failed bring-up unwinds, which is
    /// before that reset: a Hal whose freed memory could be reused at once should keep it until
    /// its last clone goes (the FreeBSD Hal does).
    pub fn open(hal: H, cfg: Config) -> Result<Self, Error> {
        if hal.bar_len(Bar::BAR0) < regs::CONFIG_BAR_SIZE {
            return Err(Error::BarTooSmall {
                bar: 0,
                needed: regs::CONFIG_BAR_SIZE,
            });
        }
        if hal.bar_len(Bar::BAR2) < regs::UAR_BAR_MIN_SIZE {
            return Err(Error::BarTooSmall {
                bar: 2,
                needed: regs::UAR_BAR_MIN_SIZE,
            });
        }
        let keep = hal.clone();
        Self::bring_up(hal, cfg).inspect_err(|_| {
            regs::write_be(&keep, Bar::BAR0, regs::RESET_OFFSET, regs::RESET_MAGIC);
            dma_fence();
        })
    }

    fn bring_up(hal: H, cfg: Config) -> Result<Self, Error> {
        reset(&hal, &cfg)?;
        let mbox_in = Dma::new(&hal, 1, DmaDirection::ToDevice)?;
        let mbox_out = Dma::new(&hal, 1, DmaDirection::FromDevice)?;
        let mut boot = Boot {
            hal: hal.clone(),
            cfg,
            toggle: false,
            mbox_in,
            mbox_out,
        };

        // Firmware.
        let fw = boot.exec(&cmd::QueryFw)?;
        debug!(
            "hermon: firmware {}.{}.{}, {} pages",
            fw.major, fw.minor, fw.subminor, fw.fw_pages
        );
        if fw.fw_pages == 0 || fw.fw_pages > 1 << 16 {
            return Err(Error::BadDevice);
        }
        // Linux `fw.c` accepts command interface revisions 2 and 3 only; 2 has no QUERY_PORT.
        if !(2..=3).contains(&fw.cmd_interface_rev) {
            warn!(
                "hermon: unsupported command interface revision {}",
                fw.cmd_interface_rev
            );
            return Err(Error::BadDevice);
        }
        let fw_area = Dma::new(&hal, fw.fw_pages as usize, DmaDirection::Both)?;
        boot.map_blocks(cmd::MapKind::Fa, 0, &fw_area, 0, fw.fw_pages as usize)?;
        boot.exec(&cmd::RunFw)?;

        // Capabilities.
        let caps = decode_caps(&boot.exec(&cmd::QueryDevCap)?)?;
        if caps.num_ports == 0 || caps.num_ports > 2 {
            return Err(Error::BadDevice);
        }
        let adapter = boot.exec(&cmd::QueryAdapter)?;
        debug!("hermon: board id {:?}", adapter.psid_str());

        // ICM: the AUX area first, then each region at its ICM address (iPXE order).
        let icm = icm_layout(&caps)?;
        let aux_pages = boot.exec(&cmd::SetIcmSize(icm.extent))?;
        if aux_pages > 1 << 16 {
            return Err(Error::BadDevice);
        }
        let icm_aux = Dma::new(&hal, aux_pages.max(1) as usize, DmaDirection::Both)?;
        boot.map_blocks(cmd::MapKind::IcmAux, 0, &icm_aux, 0, aux_pages as usize)?;
        let icm_pages = (icm.backing / PAGE_SIZE as u64) as usize;
        let icm_mem = Dma::new(&hal, icm_pages, DmaDirection::Both)?;
        let mut first = 0;
        for r in icm.regions {
            let pages = (r.len / PAGE_SIZE as u64) as usize;
            boot.map_blocks(cmd::MapKind::Icm, r.va, &icm_mem, first, pages)?;
            first += pages;
        }
        boot.exec(&cmd::InitHca {
            index: 0,
            prm: init_hca_prm(&icm)?,
        })?;

        // One MPT covering all memory with physical addressing, as iPXE `hermon_setup_mpt`:
        // a region, all access rights, length bit 64.
        let mpt_index = caps.rsvd_mrws;
        let key = mpt_index | 0x7700_0000;
        let mut mpt = Prm::<{ prm::mpt::DWORDS }>::default();
        for f in [
            prm::mpt::R_W,
            prm::mpt::PA,
            prm::mpt::LR,
            prm::mpt::LW,
            prm::mpt::RR,
            prm::mpt::RW,
            prm::mpt::ATOMIC,
            prm::mpt::LEN64,
        ] {
            mpt.set(f, 1);
        }
        mpt.set(prm::mpt::MEM_KEY, key);
        mpt.set(prm::mpt::PD, GLOBAL_PD);
        boot.exec(&cmd::Sw2HwMpt {
            index: mpt_index,
            prm: mpt,
        })?;
        // The L_Key is the key rotated (Linux `hw_index_to_key`).
        let lkey = key.rotate_left(8);

        let db_page = Dma::new(&hal, 1, DmaDirection::Both)?;
        let Boot {
            toggle,
            mbox_in,
            mbox_out,
            ..
        } = boot;
        let eq_ring = Dma::new(&hal, 1, DmaDirection::FromDevice)?;
        let mut me = Self {
            hal,
            cfg,
            toggle,
            mbox_in,
            mbox_out,
            fw,
            adapter,
            caps,
            _fw_area: fw_area,
            _icm_aux: icm_aux,
            _icm: icm_mem,
            icm,
            lkey,
            mtt_next: caps.rsvd_mtts,
            mtt_limit: 1 << icm.log_mtts,
            eqn: (4 * caps.num_rsvd_uars).max(caps.rsvd_eqs),
            eq_ring,
            eq_ci: 0,
            db_page,
            db_free: (0..DB_RECORDS).rev().collect(),
            special_base: special_base(&caps),
            cqs: Vec::new(),
            qps: Vec::new(),
            ports: [PortCtx::default(); 2],
            tid: 0x6973_626f_0000_0000, // "isbo"
            qpn_salt: 0,
        };
        me.qpn_salt = (me.hal.now().total_nanos() as u32).wrapping_mul(2_654_435_761);
        me.create_eq()?;
        me.exec(&cmd::ConfSpecialQp(me.special_base))?;
        for p in 1..=caps.num_ports {
            let i = usize::from(p - 1);
            me.ports[i].mtu_cap = 4;
            if me.fw.cmd_interface_rev < 3 {
                // Old firmware has no QUERY_PORT (Linux `MLX4_FLAG_OLD_PORT_CMDS`); its ports
                // are InfiniBand.
                continue;
            }
            let q = me.exec(&cmd::QueryPort(u32::from(p)))?;
            let (ib, eth) = (q.get(prm::query_port::IB), q.get(prm::query_port::ETH));
            me.ports[i].kind = match (ib, eth) {
                (1, _) => PortKind::Ib,
                (0, 1) => {
                    warn!("hermon: port {p} is configured as Ethernet");
                    PortKind::Ethernet
                }
                _ => {
                    warn!("hermon: port {p} supports neither InfiniBand nor Ethernet");
                    PortKind::Unusable
                }
            };
            let max_mtu = q.get(prm::query_port::IB_MTU);
            if max_mtu != 0 {
                me.ports[i].mtu_cap = max_mtu.min(4);
            }
        }
        Ok(me)
    }

    /// Firmware revision.
    pub fn fw_info(&self) -> cmd::FwInfo {
        self.fw
    }

    /// What QUERY_ADAPTER reported.
    pub fn adapter_info(&self) -> cmd::AdapterInfo {
        self.adapter
    }

    /// The hardware CQN behind a CQ.
    pub fn cq_num(&self, id: CqId) -> Result<u32, Error> {
        self.cqs
            .get(usize::from(id.0))
            .and_then(Option::as_ref)
            .map(|c| c.cqn)
            .ok_or(Error::InvalidArgument)
    }

    /// The L_Key of the driver's one memory region.
    pub fn lkey(&self) -> u32 {
        self.lkey
    }

    /// Device limits.
    pub fn caps(&self) -> DevCaps {
        self.caps
    }

    /// The EQ number the driver uses.
    pub fn eqn(&self) -> u32 {
        self.eqn
    }

    /// The QPNs of a port's SMI (QP0) and GSI (QP1) once the port is open.
    pub fn special_qpns(&self, port: PortNum) -> Result<(Qpn, Qpn), Error> {
        let p = &self.ports[self.check_port(port)?];
        match (p.smi, p.gsi) {
            (Some(s), Some(g)) => Ok((self.qp_num(s)?, self.qp_num(g)?)),
            _ => Err(Error::InvalidState),
        }
    }

    /// Runs one firmware command.
    pub fn exec<C: Command>(&mut self, cmd: &C) -> Result<C::Output, Error> {
        let mut boot = BootRef {
            hal: &self.hal,
            cfg: &self.cfg,
            toggle: &mut self.toggle,
            mbox_in: &self.mbox_in,
            mbox_out: &self.mbox_out,
        };
        boot.exec(cmd)
    }

    /// Writes one MTT entry per page of a buffer; returns the MTT base address to put in the
    /// context. Entries are never reclaimed (a bump allocator, enough for a boot).
    fn alloc_mtt(&mut self, paddr: u64, pages: usize) -> Result<u64, Error> {
        let pages = pages as u32;
        if self.mtt_next.saturating_add(pages) > self.mtt_limit {
            return Err(Error::NoResources);
        }
        let first = self.mtt_next;
        self.mtt_next += pages;
        let sz = u64::from(self.caps.mtt_sz);
        for i in 0..pages {
            self.exec(&cmd::WriteMtt {
                mtt_base: u64::from(first + i) * sz,
                pa: paddr + u64::from(i) * PAGE_SIZE as u64,
            })?;
        }
        Ok(u64::from(first) * sz)
    }

    fn alloc_db(&mut self) -> Result<usize, Error> {
        let i = self.db_free.pop().ok_or(Error::NoResources)?;
        self.db_page.write(i * 8, &[0; 8])?;
        Ok(i)
    }

    fn create_eq(&mut self) -> Result<(), Error> {
        self.eq_ring
            .fill(0, EQ_ENTRIES as usize * prm::eqe::SIZE, 0)?;
        for i in 0..EQ_ENTRIES as usize {
            // Owner = 1: hardware owns it (§2.6).
            self.eq_ring.write(i * prm::eqe::SIZE + 31, &[0x80])?;
        }
        // The initialised ring is the device's from SW2HW_EQ on.
        self.eq_ring.sync(DmaSync::PreWrite);
        let mtt = self.alloc_mtt(self.eq_ring.paddr(), self.eq_ring.pages())?;
        let mut eqc = Prm::<{ prm::eqc::DWORDS }>::default();
        eqc.set(prm::eqc::ST, 0xa);
        eqc.set(prm::eqc::OI, 1);
        eqc.set(prm::eqc::PAGE_OFFSET, 0);
        eqc.set(prm::eqc::LOG_EQ_SIZE, log2_ceil(u64::from(EQ_ENTRIES)));
        eqc.set(prm::eqc::LOG2_PAGE_SIZE, 0);
        if !eqc.set_addr(prm::eqc::MTT_BASE_ADDR, mtt) {
            return Err(Error::BadDevice);
        }
        self.exec(&cmd::Sw2HwEq {
            index: self.eqn,
            prm: eqc,
        })?;
        self.exec(&cmd::MapEq {
            eqn: self.eqn,
            unmap: false,
            mask: u64::MAX,
        })
    }

    fn cq(&mut self, id: CqId) -> Result<&mut Cq<H>, Error> {
        self.cqs
            .get_mut(usize::from(id.0))
            .and_then(Option::as_mut)
            .ok_or(Error::InvalidArgument)
    }

    fn qp(&mut self, id: QpId) -> Result<&mut Qp<H>, Error> {
        self.qps
            .get_mut(usize::from(id.0))
            .and_then(Option::as_mut)
            .ok_or(Error::InvalidArgument)
    }

    fn check_port(&self, port: PortNum) -> Result<usize, Error> {
        if port.0 == 0 || port.0 > self.caps.num_ports {
            return Err(Error::InvalidArgument);
        }
        Ok(usize::from(port.0 - 1))
    }

    fn create_qp(
        &mut self,
        kind: QpKind,
        port: PortNum,
        send_cq: CqId,
        recv_cq: CqId,
        send_slots: u32,
        recv_slots: u32,
    ) -> Result<QpId, Error> {
        self.check_port(port)?;
        let snd_cqn = self.cq(send_cq)?.cqn;
        let rcv_cqn = self.cq(recv_cq)?.cqn;
        let send_slots = send_slots.clamp(1, MAX_QP_SLOTS).next_power_of_two();
        let rq_entries = recv_slots.clamp(1, MAX_QP_SLOTS).next_power_of_two();
        if log2_ceil(u64::from(rq_entries)) > self.caps.log_max_qp_sz {
            return Err(Error::NoResources);
        }
        // Send ring headroom the hardware requires (§2.7): requested + 1 + 2048/128.
        let sq_entries = (send_slots + 1 + 16).next_power_of_two();
        if log2_ceil(u64::from(sq_entries)) > self.caps.log_max_qp_sz {
            return Err(Error::NoResources);
        }
        let ring_bytes = sq_entries as usize * prm::send_wqe::STRIDE
            + rq_entries as usize * prm::recv_wqe::STRIDE;
        let ring = Dma::with_len(&self.hal, ring_bytes, DmaDirection::Both)?;
        // Send ring initialised to 0xff: every WQE owned by software (§2.7).
        ring.fill(0, sq_entries as usize * prm::send_wqe::STRIDE, 0xff)?;
        let slots = Dma::new(
            &self.hal,
            (send_slots + rq_entries) as usize * SLOT / PAGE_SIZE,
            DmaDirection::Both,
        )?;
        let index = self
            .qps
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.qps.len());
        let qpn = match kind {
            QpKind::Smi => self.special_base + u32::from(port.0 - 1),
            QpKind::Gsi => self.special_base + 2 + u32::from(port.0 - 1),
            QpKind::Ud => {
                if index as u32 >= MAX_QPS {
                    return Err(Error::NoResources);
                }
                // Random high bits (§2.7) so the QPN differs across boots.
                self.qpn_salt = self
                    .qpn_salt
                    .wrapping_mul(1_103_515_245)
                    .wrapping_add(12_345);
                let table = (self.special_base + 8 + index as u32) & ((1 << self.icm.log_qps) - 1);
                ((self.qpn_salt << self.icm.log_qps) & 0x00ff_f000) | table
            }
        };
        let mtt = self.alloc_mtt(ring.paddr(), ring.pages())?;
        let db = self.alloc_db()?;
        let mut qpc = Prm::<{ prm::qpc::DWORDS }>::default();
        qpc.set(
            prm::qpc::ST,
            if kind == QpKind::Ud {
                prm::qpc::ST_UD
            } else {
                prm::qpc::ST_MLX
            },
        );
        qpc.set(prm::qpc::PM_STATE, 3);
        qpc.set(prm::qpc::PD, GLOBAL_PD);
        // Strides: log2(stride) - 4; the send ring (128-byte WQEs) comes first in the buffer,
        // as the larger stride must (Linux `hw/mlx4/qp.c` `set_kernel_sq_size`).
        qpc.set(prm::qpc::LOG_RQ_SIZE, log2_ceil(u64::from(rq_entries)));
        qpc.set(
            prm::qpc::LOG_RQ_STRIDE,
            log2_ceil(prm::recv_wqe::STRIDE as u64) - 4,
        );
        qpc.set(prm::qpc::LOG_SQ_SIZE, log2_ceil(u64::from(sq_entries)));
        qpc.set(
            prm::qpc::LOG_SQ_STRIDE,
            log2_ceil(prm::send_wqe::STRIDE as u64) - 4,
        );
        qpc.set(prm::qpc::USR_PAGE, regs::UAR_NON_EQ_PAGE as u32);
        qpc.set(prm::qpc::SCHED_QUEUE, sched_queue(kind, port));
        qpc.set(prm::qpc::CQN_SND, snd_cqn);
        qpc.set(prm::qpc::CQN_RCV, rcv_cqn);
        qpc.set(prm::qpc::PAGE_OFFSET, 0);
        qpc.set(prm::qpc::LOG2_PAGE_SIZE, 0);
        let db_addr = self.db_page.paddr() + (db * 8) as u64;
        if !qpc.set_addr(prm::qpc::DB_RECORD_ADDR, db_addr)
            || !qpc.set_addr(prm::qpc::MTT_BASE_ADDR, mtt)
        {
            self.db_free.push(db);
            return Err(Error::BadDevice);
        }
        if kind == QpKind::Gsi {
            qpc.set(prm::qpc::Q_KEY, GSI_QKEY);
        }
        if let Err(e) = self.exec(&cmd::Rst2InitQp {
            index: qpn,
            prm: qpc,
        }) {
            self.db_free.push(db);
            return Err(e);
        }
        let qp = Qp {
            qpn,
            port,
            kind,
            state: QpState::Init,
            ring,
            slots,
            sq_entries,
            rq_entries,
            send_slots,
            sq_pi: 0,
            sq_done: 0,
            rq_pi: 0,
            rq_ci: 0,
            db,
            send_cq,
            recv_cq,
            qkey: if kind == QpKind::Gsi { GSI_QKEY } else { 0 },
        };
        if index == self.qps.len() {
            self.qps.push(Some(qp));
        } else {
            self.qps[index] = Some(qp);
        }
        let id = QpId(index as u16);
        for _ in 0..rq_entries {
            self.post_recv(id)?;
        }
        Ok(id)
    }

    fn post_recv(&mut self, id: QpId) -> Result<(), Error> {
        let lkey = self.lkey;
        let db_page_off;
        let counter;
        {
            let qp = self.qp(id)?;
            if qp.rq_pi.wrapping_sub(qp.rq_ci) >= qp.rq_entries {
                return Err(Error::QueueFull);
            }
            let idx = qp.rq_pi & (qp.rq_entries - 1);
            let wqe_off = qp.rq_offset() + idx as usize * prm::recv_wqe::STRIDE;
            let slot = qp.slots.paddr() + qp.recv_slot_offset(qp.rq_pi) as u64;
            // Two scatter entries: the 40-byte GRH area, then the payload.
            use prm::send_wqe::{data, data_addr, DATA_BYTE_COUNT, DATA_L_KEY};
            let mut w = Prm::<{ prm::recv_wqe::DWORDS }>::default();
            for (seg, addr, len) in [
                (0, slot, 40),
                (4, slot + GRH_AREA as u64, RECV_CAPACITY as u32),
            ] {
                w.set(data(DATA_BYTE_COUNT, seg), len);
                w.set(data(DATA_L_KEY, seg), lkey);
                // A whole 64-bit address: cannot be refused.
                let _ = w.set_addr(data_addr(seg), addr);
            }
            let mut b = [0u8; prm::recv_wqe::STRIDE];
            w.write_be(&mut b);
            qp.ring.write(wqe_off, &b)?;
            qp.rq_pi = qp.rq_pi.wrapping_add(1);
            counter = qp.rq_pi & 0xffff;
            db_page_off = qp.db * 8;
        }
        // The WQE must be visible before the doorbell record that publishes it; the receive
        // slot is the device's to write.
        {
            let qp = self.qp(id)?;
            qp.ring.sync(DmaSync::PreWrite);
            qp.slots.sync(DmaSync::PreRead);
        }
        dma_fence();
        self.db_page.write_be32(db_page_off, counter)?;
        self.db_page.sync(DmaSync::PreWrite);
        Ok(())
    }

    fn ring_send_doorbell(&self, qpn: u32) {
        // WQE writes (ownership last) must be visible to the device before it sees the doorbell.
        dma_fence();
        regs::write_be(&self.hal, Bar::BAR2, regs::send_doorbell_offset(), qpn << 8);
    }

    fn modify_qp_to_rts(&mut self, id: QpId, qkey: u32) -> Result<(), Error> {
        let (qpn, state, port, kind) = {
            let qp = self.qp(id)?;
            (qp.qpn, qp.state, qp.port, qp.kind)
        };
        let mut p = Prm::<{ prm::qpc::DWORDS }>::default();
        p.set(prm::qpc::MTU, 4);
        p.set(prm::qpc::MSG_MAX, 31);
        p.set(prm::qpc::Q_KEY, qkey);
        p.set(prm::qpc::SCHED_QUEUE, sched_queue(kind, port));
        if state == QpState::Init {
            self.exec(&cmd::Init2RtrQp { index: qpn, prm: p })?;
            self.qp(id)?.state = QpState::Rtr;
        }
        if self.qp(id)?.state == QpState::Rtr {
            self.exec(&cmd::Rtr2RtsQp { index: qpn, prm: p })?;
            self.qp(id)?.state = QpState::Rts;
        }
        let mut q = Prm::<{ prm::qpc::DWORDS }>::default();
        q.set(prm::qpc::OPT_PARAM_MASK, prm::qpc::OPT_PARAM_QKEY);
        q.set(prm::qpc::Q_KEY, qkey);
        self.exec(&cmd::Rts2RtsQp { index: qpn, prm: q })?;
        self.qp(id)?.qkey = qkey;
        Ok(())
    }

    fn write_send_wqe(
        &mut self,
        id: QpId,
        w: &mut Prm<{ prm::send_wqe::DWORDS }>,
    ) -> Result<u32, Error> {
        let qp = self.qp(id)?;
        let idx = qp.sq_pi & (qp.sq_entries - 1);
        let owner = u32::from(qp.sq_pi & qp.sq_entries != 0);
        w.set(prm::send_wqe::OWNER, owner);
        let mut b = [0u8; prm::send_wqe::DWORDS * 4];
        w.write_be(&mut b);
        let off = idx as usize * prm::send_wqe::STRIDE;
        qp.ring.write(off + 4, &b[4..])?;
        // Everything but the ownership dword first; then make the WQE whole (§2.8).
        dma_fence();
        qp.ring.write(off, &b[..4])?;
        // The WQE and the send slot it gathers from are the device's to read now.
        qp.ring.sync(DmaSync::PreWrite);
        qp.slots.sync(DmaSync::PreWrite);
        let qpn = qp.qpn;
        let wr = qp.sq_pi;
        qp.sq_pi = qp.sq_pi.wrapping_add(1);
        self.ring_send_doorbell(qpn);
        Ok(wr)
    }

    fn send_slot(&mut self, id: QpId, payload: &[u8]) -> Result<u64, Error> {
        let qp = self.qp(id)?;
        if qp.sq_pi.wrapping_sub(qp.sq_done) >= qp.send_slots {
            return Err(Error::QueueFull);
        }
        let off = (qp.sq_pi % qp.send_slots) as usize * SLOT;
        qp.slots.write(off, payload)?;
        Ok(qp.slots.paddr() + off as u64)
    }

    fn gsi_port(&self, port: PortNum) -> Result<(QpId, usize), Error> {
        let i = self.check_port(port)?;
        let p = &self.ports[i];
        match (p.open, p.gsi) {
            (true, Some(q)) => Ok((q, i)),
            _ => Err(Error::InvalidState),
        }
    }

    fn smp(&mut self, port: PortNum, attr: AttrId, attr_mod: u32) -> Result<Mad, Error> {
        let tid = self.next_tid();
        let req = smp::smp_get(attr, attr_mod, tid);
        let resp = self.local_mad(port, &req)?;
        if !resp.status().is_ok() {
            return Err(Error::MadStatus(resp.status()));
        }
        Ok(resp)
    }
}

impl<H: Hal> Verbs for Hermon<H> {
    fn firmware_version(&self) -> Option<(u16, u16, u16)> {
        Some((self.fw.major, self.fw.minor, self.fw.subminor))
    }

    fn num_ports(&self) -> u8 {
        self.caps.num_ports
    }

    fn now(&self) -> Instant {
        self.hal.now()
    }

    fn delay(&mut self, d: Duration) {
        self.hal.delay(d);
    }

    fn open_port(&mut self, port: PortNum) -> Result<PortAttr, Error> {
        let i = self.check_port(port)?;
        match self.ports[i].kind {
            PortKind::Ib => {}
            PortKind::Ethernet => return Err(Error::PortIsEthernet { port }),
            PortKind::Unusable => return Err(Error::BadDevice),
        }
        if !self.ports[i].open {
            let mut sp = Prm::<{ prm::set_port::DWORDS }>::default();
            for f in [
                prm::set_port::MMC,
                prm::set_port::MVC,
                prm::set_port::MP,
                prm::set_port::MG,
            ] {
                sp.set(f, 1);
            }
            sp.set(prm::set_port::MTU_CAP, self.ports[i].mtu_cap);
            sp.set(prm::set_port::VL_CAP, 1);
            sp.set(prm::set_port::MAX_GID, 1);
            sp.set(prm::set_port::MAX_PKEY, 1);
            self.exec(&cmd::SetPort {
                index: u32::from(port.0),
                prm: sp,
            })?;
            self.exec(&cmd::InitPort(u32::from(port.0)))?;
            let cq = self.create_cq(16)?;
            let smi = self.create_qp(QpKind::Smi, port, cq, cq, 4, 4)?;
            self.modify_qp_to_rts(smi, 0)?;
            let gcq = self.create_cq(16)?;
            let gsi = self.create_qp(QpKind::Gsi, port, gcq, gcq, 4, 8)?;
            self.modify_qp_to_rts(gsi, GSI_QKEY)?;
            self.ports[i] = PortCtx {
                open: true,
                smi: Some(smi),
                gsi: Some(gsi),
                lid: Lid(0),
                pkey: crate::wire::DEFAULT_PKEY,
                ..self.ports[i]
            };
        }
        self.query_port(port)
    }

    fn query_port(&mut self, port: PortNum) -> Result<PortAttr, Error> {
        let i = self.check_port(port)?;
        let ni: NodeInfo = smp::smp_attr(&self.smp(port, AttrId::NODE_INFO, 0)?)?;
        let pi: PortInfo = smp::smp_attr(&self.smp(port, AttrId::PORT_INFO, u32::from(port.0))?)?;
        let gi: GuidInfo = smp::smp_attr(&self.smp(port, AttrId::GUID_INFO, 0)?)?;
        let pk: PKeyTable = smp::smp_attr(&self.smp(port, AttrId::PKEY_TABLE, 0)?)?;
        let mut pkeys = [0u16; 32];
        for (d, s) in pkeys.iter_mut().zip(pk.pkey.iter()) {
            *d = s.get();
        }
        self.ports[i].lid = pi.lid();
        self.ports[i].pkey = pkeys[0];
        Ok(PortAttr {
            port,
            state: pi.port_state(),
            lid: pi.lid(),
            sm_lid: pi.sm_lid(),
            sm_sl: pi.sm_sl(),
            gid: smp::port_gid(&pi, &gi),
            port_guid: gi.guid[0],
            node_guid: ni.node_guid,
            pkeys,
            mtu: pi.neighbor_mtu(),
        })
    }

    fn poll_event(&mut self) -> Result<Option<Event>, Error> {
        let idx = (self.eq_ci & (EQ_ENTRIES - 1)) as usize;
        let mut b = [0u8; prm::eqe::SIZE];
        // The device writes EQEs: sync before looking at one.
        self.eq_ring.sync(DmaSync::PostRead);
        self.eq_ring.read(idx * prm::eqe::SIZE, &mut b)?;
        let Some(ev) = entries::decode_eqe(&b, self.eq_ci & EQ_ENTRIES != 0) else {
            return Ok(None);
        };
        // The EQE body was copied together with its ownership bit; the fence orders any later
        // reads after this one.
        dma_fence();
        self.eq_ci = self.eq_ci.wrapping_add(1);
        regs::write_be(
            &self.hal,
            Bar::BAR2,
            regs::eq_doorbell_offset(self.eqn),
            self.eq_ci & 0x00ff_ffff,
        );
        debug!("hermon: event {ev:?}");
        Ok(Some(ev))
    }

    fn create_cq(&mut self, entries: u32) -> Result<CqId, Error> {
        let entries = entries.clamp(2, MAX_CQ_ENTRIES).next_power_of_two();
        if log2_ceil(u64::from(entries)) > self.caps.log_max_cq_sz {
            return Err(Error::NoResources);
        }
        let index = self
            .cqs
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.cqs.len());
        if index as u32 >= MAX_CQS {
            return Err(Error::NoResources);
        }
        let ring = Dma::with_len(
            &self.hal,
            entries as usize * prm::cqe::SIZE,
            DmaDirection::FromDevice,
        )?;
        for i in 0..entries as usize {
            // All CQEs start hardware-owned: owner = 1 (§2.5).
            ring.write(i * prm::cqe::SIZE + 31, &[0x80])?;
        }
        // The initialised ring is the device's from SW2HW_CQ on.
        ring.sync(DmaSync::PreWrite);
        let mtt = self.alloc_mtt(ring.paddr(), ring.pages())?;
        let db = self.alloc_db()?;
        let cqn = self.caps.rsvd_cqs + index as u32;
        let mut c = Prm::<{ prm::cqc::DWORDS }>::default();
        c.set(prm::cqc::ST, 0xa);
        c.set(prm::cqc::PAGE_OFFSET, 0);
        c.set(prm::cqc::USR_PAGE, regs::UAR_NON_EQ_PAGE as u32);
        c.set(prm::cqc::LOG_CQ_SIZE, log2_ceil(u64::from(entries)));
        c.set(prm::cqc::C_EQN, self.eqn);
        c.set(prm::cqc::LOG2_PAGE_SIZE, 0);
        let db_addr = self.db_page.paddr() + (db * 8) as u64;
        if !c.set_addr(prm::cqc::MTT_BASE_ADDR, mtt)
            || !c.set_addr(prm::cqc::DB_RECORD_ADDR, db_addr)
        {
            self.db_free.push(db);
            return Err(Error::BadDevice);
        }
        if let Err(e) = self.exec(&cmd::Sw2HwCq { index: cqn, prm: c }) {
            self.db_free.push(db);
            return Err(e);
        }
        let cq = Cq {
            cqn,
            ring,
            entries,
            ci: 0,
            db,
        };
        if index == self.cqs.len() {
            self.cqs.push(Some(cq));
        } else {
            self.cqs[index] = Some(cq);
        }
        Ok(CqId(index as u16))
    }

    fn destroy_cq(&mut self, id: CqId) -> Result<(), Error> {
        let in_use = self
            .qps
            .iter()
            .flatten()
            .any(|q| q.send_cq == id || q.recv_cq == id);
        if in_use {
            return Err(Error::InvalidState);
        }
        let cqn = self.cq(id)?.cqn;
        // The firmware hands the CQ context back in the output mailbox; nothing in it is
        // needed once the CQ is gone.
        let _ = self.exec(&cmd::Hw2SwCq(cqn))?;
        if let Some(cq) = self.cqs[usize::from(id.0)].take() {
            self.db_free.push(cq.db);
        }
        Ok(())
    }

    fn create_ud_qp(&mut self, attr: &UdQpAttr) -> Result<QpId, Error> {
        let id = self.create_qp(
            QpKind::Ud,
            attr.port,
            attr.send_cq,
            attr.recv_cq,
            attr.send_slots,
            attr.recv_slots,
        )?;
        if let Some(qkey) = attr.qkey {
            self.modify_qp_to_rts(id, qkey)?;
        }
        Ok(id)
    }

    fn destroy_qp(&mut self, id: QpId) -> Result<(), Error> {
        let qpn = self.qp(id)?.qpn;
        self.exec(&cmd::ToRstQp(qpn))?;
        if let Some(qp) = self.qps[usize::from(id.0)].take() {
            self.db_free.push(qp.db);
        }
        Ok(())
    }

    fn qp_num(&self, id: QpId) -> Result<Qpn, Error> {
        self.qps
            .get(usize::from(id.0))
            .and_then(Option::as_ref)
            .map(|q| Qpn(q.qpn))
            .ok_or(Error::InvalidArgument)
    }

    fn activate_qp(&mut self, qp: QpId, qkey: u32) -> Result<(), Error> {
        if self.qp(qp)?.kind != QpKind::Ud {
            return Err(Error::InvalidArgument);
        }
        self.modify_qp_to_rts(qp, qkey)
    }

    fn post_send(&mut self, id: QpId, ah: &AddressHandle, payload: &[u8]) -> Result<WrId, Error> {
        if payload.len() > MAX_SEND_PAYLOAD {
            return Err(Error::InvalidArgument);
        }
        let lkey = self.lkey;
        let (port, kind, state) = {
            let qp = self.qp(id)?;
            (qp.port, qp.kind, qp.state)
        };
        if kind != QpKind::Ud {
            return Err(Error::InvalidArgument);
        }
        if state != QpState::Rts {
            return Err(Error::InvalidState);
        }
        let addr = self.send_slot(id, payload)?;
        use prm::send_wqe as sw;
        let mut w = Prm::<{ sw::DWORDS }>::default();
        w.set(sw::OPCODE, sw::OPCODE_SEND);
        w.set(sw::DS, sw::UD_DS);
        w.set(sw::C, 0b11);
        w.set(sw::AV_PD, GLOBAL_PD);
        w.set(sw::AV_PORT_NUMBER, u32::from(port.0));
        w.set(sw::AV_RLID, u32::from(ah.dlid.0));
        w.set(sw::AV_SL, u32::from(ah.sl));
        // GID index 0, traffic class and flow label 0: the port GID, default class.
        w.set(sw::AV_MGID_INDEX, 0);
        w.set(sw::AV_TCLASS, 0);
        w.set(sw::AV_FLOW_LABEL, 0);
        if let Some(g) = ah.dgid {
            w.set(sw::AV_G, 1);
            w.set(sw::AV_HOP_LIMIT, u32::from(ah.hop_limit.max(1)));
            let gp = Prm::<4>::from_be(&g.0);
            for (f, v) in sw::AV_RGID.into_iter().zip(gp.0) {
                w.set(f, v);
            }
        }
        w.set(sw::DESTINATION_QP, ah.dest_qpn.0);
        w.set(sw::Q_KEY, ah.qkey);
        let d = sw::UD_DATA;
        w.set(sw::data(sw::DATA_BYTE_COUNT, d), payload.len() as u32);
        w.set(sw::data(sw::DATA_L_KEY, d), lkey);
        // A whole 64-bit address: cannot be refused.
        let _ = w.set_addr(sw::data_addr(d), addr);
        Ok(WrId(self.write_send_wqe(id, &mut w)?))
    }

    fn poll_cq(&mut self, cq_id: CqId, buf: &mut [u8]) -> Result<Option<Completion>, Error> {
        let (cqe, cqn) = {
            let cq = self.cq(cq_id)?;
            let idx = (cq.ci & (cq.entries - 1)) as usize;
            let mut b = [0u8; prm::cqe::SIZE];
            // The device writes CQEs: sync before looking at one.
            cq.ring.sync(DmaSync::PostRead);
            cq.ring.read(idx * prm::cqe::SIZE, &mut b)?;
            let Some(cqe) = entries::decode_cqe(&b, cq.ci & cq.entries != 0) else {
                return Ok(None);
            };
            // Later reads (the receive buffer) must not be reordered before the ownership check.
            dma_fence();
            cq.ci = cq.ci.wrapping_add(1);
            let ci = cq.ci;
            let db = cq.db;
            let cqn = cq.cqn;
            self.db_page.write_be32(db * 8, ci & 0x00ff_ffff)?;
            self.db_page.sync(DmaSync::PreWrite);
            (cqe, cqn)
        };
        let qpn = cqe.qpn;
        let Some(qp_index) = self
            .qps
            .iter()
            .position(|q| q.as_ref().is_some_and(|q| q.qpn == qpn))
        else {
            warn!("hermon: CQE on CQ {cqn:#x} for unknown QPN {qpn:#x}");
            return Err(Error::BadDevice);
        };
        let id = QpId(qp_index as u16);
        let is_send = cqe.send;
        let is_error = !cqe.status.is_ok();
        let status = cqe.status;
        let counter = cqe.wqe_counter;
        let mut comp = Completion {
            qp: id,
            wr_id: WrId(0),
            kind: if is_send {
                CompletionKind::Send
            } else {
                CompletionKind::Recv
            },
            status,
            byte_len: 0,
            src_qpn: cqe.src_qpn,
            slid: cqe.slid,
            sl: cqe.sl,
            grh: None,
        };
        if is_error {
            warn!(
                "hermon: error CQE on QPN {qpn:#x}: syndrome {:#x}",
                status.0
            );
        }
        if is_send {
            let qp = self.qp(id)?;
            let behind = counter.wrapping_sub(qp.sq_done as u16) as u32;
            let wr = qp.sq_done.wrapping_add(behind);
            qp.sq_done = wr.wrapping_add(1);
            comp.wr_id = WrId(wr);
            return Ok(Some(comp));
        }
        let (slot_off, rq_ci) = {
            let qp = self.qp(id)?;
            let off = qp.recv_slot_offset(qp.rq_ci);
            (off, qp.rq_ci)
        };
        comp.wr_id = WrId(rq_ci);
        if !is_error {
            let total = cqe.byte_cnt;
            let payload = total.saturating_sub(40);
            comp.byte_len = payload;
            let n = (payload as usize).min(buf.len()).min(RECV_CAPACITY);
            let qp = self.qp(id)?;
            // The device wrote the receive slot: sync before copying it out.
            qp.slots.sync(DmaSync::PostRead);
            qp.slots.read(slot_off + GRH_AREA, &mut buf[..n])?;
            if cqe.grh {
                let mut g = [0u8; 40];
                qp.slots.read(slot_off, &mut g)?;
                if let Ok((grh, _)) = Grh::read_from_prefix(&g) {
                    comp.grh = Some((grh.sgid, grh.dgid));
                }
            }
        }
        self.qp(id)?.rq_ci = rq_ci.wrapping_add(1);
        self.post_recv(id)?;
        Ok(Some(comp))
    }

    fn attach_mcast(&mut self, qp: QpId, mgid: &Gid) -> Result<(), Error> {
        use prm::mcg;
        let qpn = self.qp(qp)?.qpn;
        let index = self.exec(&cmd::MgidHash(*mgid))?;
        let mut e = self.exec(&cmd::ReadMcg(index))?;
        let want = Prm::<4>::from_be(&mgid.0);
        let members = e.get(mcg::MEMBERS_COUNT) as usize;
        if members == 0 {
            e = Prm::default();
            for (f, v) in mcg::GID.into_iter().zip(want.0) {
                e.set(f, v);
            }
        } else if mcg::GID.iter().zip(want.0).any(|(f, v)| e.get(*f) != v) {
            // One group per hash bucket (as iPXE); a chained entry is not supported.
            return Err(Error::McgCollision);
        }
        let members = (e.get(mcg::MEMBERS_COUNT) as usize).min(mcg::MAX_QPS);
        if (0..members).any(|i| e.get(mcg::qpn(i)) == qpn) {
            return Ok(());
        }
        if members >= mcg::MAX_QPS {
            return Err(Error::NoResources);
        }
        e.set(mcg::qpn(members), qpn);
        e.set(mcg::MEMBERS_COUNT, members as u32 + 1);
        self.exec(&cmd::WriteMcg { index, prm: e })
    }

    fn detach_mcast(&mut self, qp: QpId, mgid: &Gid) -> Result<(), Error> {
        use prm::mcg;
        let qpn = self.qp(qp)?.qpn;
        let index = self.exec(&cmd::MgidHash(*mgid))?;
        let mut e = self.exec(&cmd::ReadMcg(index))?;
        let want = Prm::<4>::from_be(&mgid.0);
        if mcg::GID.iter().zip(want.0).any(|(f, v)| e.get(*f) != v) {
            return Err(Error::InvalidArgument);
        }
        let members = (e.get(mcg::MEMBERS_COUNT) as usize).min(mcg::MAX_QPS);
        let mut list = [0u32; mcg::MAX_QPS];
        let mut n = 0;
        for i in 0..members {
            let q = e.get(mcg::qpn(i));
            if q != qpn {
                list[n] = q;
                n += 1;
            }
        }
        if n == members {
            return Err(Error::InvalidArgument);
        }
        if n == 0 {
            e = Prm::default();
        } else {
            for (i, q) in list.iter().enumerate() {
                e.set(mcg::qpn(i), *q);
            }
            e.set(mcg::MEMBERS_COUNT, n as u32);
        }
        self.exec(&cmd::WriteMcg { index, prm: e })
    }

    fn mad_send(&mut self, port: PortNum, dest: &MadDest, mad: &Mad) -> Result<(), Error> {
        use zerocopy::IntoBytes;
        let (gsi, i) = self.gsi_port(port)?;
        let repr = UdPacketRepr {
            vl: 0,
            sl: dest.sl,
            dlid: dest.dlid,
            slid: self.ports[i].lid,
            grh: None,
            pkey: self.ports[i].pkey,
            dest_qpn: dest.qpn,
            psn: 0,
            qkey: dest.qkey,
            src_qpn: Qpn::GSI,
        };
        let mut pkt = [0u8; 8 + 12 + 8 + MAD_SIZE + 4];
        let n = repr.emit(mad.as_bytes(), &mut pkt)?;
        let addr = self.send_slot(gsi, &pkt[..n])?;
        use prm::send_wqe as sw;
        let mut w = Prm::<{ sw::DWORDS }>::default();
        w.set(sw::OPCODE, sw::OPCODE_SEND);
        w.set(sw::DS, sw::MLX_DS);
        w.set(sw::C, 0b11);
        // The HCA computes the ICRC into the last dword of the packet; GSI traffic is not
        // VL15 (only QP0's is).
        w.set(sw::MLX_ICRC, 0);
        w.set(sw::MLX_V15, 0);
        w.set(sw::MLX_RLID, u32::from(dest.dlid.0));
        let d = sw::MLX_DATA;
        w.set(sw::data(sw::DATA_BYTE_COUNT, d), n as u32);
        w.set(sw::data(sw::DATA_L_KEY, d), self.lkey);
        // A whole 64-bit address: cannot be refused.
        let _ = w.set_addr(sw::data_addr(d), addr);
        self.write_send_wqe(gsi, &mut w)?;
        Ok(())
    }

    fn mad_recv(&mut self, port: PortNum) -> Result<Option<ReceivedMad>, Error> {
        let (gsi, _) = self.gsi_port(port)?;
        let cq = self.qp(gsi)?.recv_cq;
        let mut buf = [0u8; MAD_SIZE];
        while let Some(c) = self.poll_cq(cq, &mut buf)? {
            if c.kind == CompletionKind::Send || !c.status.is_ok() {
                continue;
            }
            match Mad::parse(&buf[..(c.byte_len as usize).min(MAD_SIZE)]) {
                Ok(mad) => {
                    return Ok(Some(ReceivedMad {
                        mad,
                        slid: c.slid,
                        src_qpn: c.src_qpn,
                    }))
                }
                Err(e) => debug!("hermon: dropping malformed MAD: {e:?}"),
            }
        }
        Ok(None)
    }

    fn local_mad(&mut self, port: PortNum, mad: &Mad) -> Result<Mad, Error> {
        self.check_port(port)?;
        let out = self.exec(&cmd::MadIfc {
            port: u32::from(port.0),
            mad: *mad,
        })?;
        Ok(Mad::parse(&out)?)
    }

    fn next_tid(&mut self) -> u64 {
        self.tid = self.tid.wrapping_add(1);
        self.tid
    }
}

impl<H: Hal> Drop for Hermon<H> {
    /// Resets the device so it stops all DMA before the rings, buffers, ICM and firmware area
    /// are returned to the Hal (the fields drop after this runs).
    fn drop(&mut self) {
        regs::write_be(&self.hal, Bar::BAR0, regs::RESET_OFFSET, regs::RESET_MAGIC);
        // The reset write must reach the device before the memory is freed.
        dma_fence();
    }
}

/// The command channel, usable before the `Hermon` value exists.
struct Boot<H: Hal> {
    hal: H,
    cfg: Config,
    toggle: bool,
    mbox_in: Dma<H>,
    mbox_out: Dma<H>,
}

impl<H: Hal> Boot<H> {
    fn exec<C: Command>(&mut self, cmd: &C) -> Result<C::Output, Error> {
        BootRef {
            hal: &self.hal,
            cfg: &self.cfg,
            toggle: &mut self.toggle,
            mbox_in: &self.mbox_in,
            mbox_out: &self.mbox_out,
        }
        .exec(cmd)
    }

    /// Maps `pages` of `mem`, starting at its page `first`, at ICM address `va` with MAP_FA /
    /// MAP_ICM_AUX / MAP_ICM in naturally aligned power-of-two blocks.
    fn map_blocks(
        &mut self,
        kind: cmd::MapKind,
        va: u64,
        mem: &Dma<H>,
        first: usize,
        pages: usize,
    ) -> Result<(), Error> {
        if first.checked_add(pages).is_none_or(|end| end > mem.pages()) {
            return Err(Error::DmaOutOfBounds);
        }
        let mut done = 0u64;
        let total = pages as u64;
        let base = mem.paddr() + (first * PAGE_SIZE) as u64;
        while done < total {
            let pa = base + done * PAGE_SIZE as u64;
            let v = va + done * PAGE_SIZE as u64;
            let align = ((pa | v) >> 12).trailing_zeros().min(63);
            let fit = 63 - (total - done).leading_zeros();
            let log = align.min(fit);
            let e = MapEntry {
                va: v,
                pa,
                log2_pages: log,
            };
            match kind {
                cmd::MapKind::Fa => self.exec(&cmd::MapFa(e))?,
                cmd::MapKind::IcmAux => self.exec(&cmd::MapIcmAux(e))?,
                cmd::MapKind::Icm => self.exec(&cmd::MapIcm(e))?,
            }
            done += 1 << log;
        }
        Ok(())
    }
}

struct BootRef<'a, H: Hal> {
    hal: &'a H,
    cfg: &'a Config,
    toggle: &'a mut bool,
    mbox_in: &'a Dma<H>,
    mbox_out: &'a Dma<H>,
}

impl<H: Hal> BootRef<'_, H> {
    /// Waits until the HCR is idle with the expected toggle.
    fn wait_idle(&self, opcode: cmd::Opcode) -> Result<HcrCtrl, Error> {
        let start = self.hal.now();
        let deadline = start + self.cfg.cmd_timeout;
        // TIMEOUT: `Config::cmd_timeout`, default 10 s (iPXE HERMON_HCR_MAX_WAIT_MS, §2.2);
        // polled every 10 us for the first millisecond, then every 1 ms.
        loop {
            let c = HcrCtrl::read(self.hal);
            if !c.go() && c.toggle() == *self.toggle {
                return Ok(c);
            }
            let now = self.hal.now();
            if now >= deadline {
                warn!("hermon: command {opcode:?} timed out");
                return Err(Error::CmdTimeout(opcode));
            }
            let step = if now.saturating_since(start) < Duration::from_millis(1) {
                Duration::from_micros(10)
            } else {
                Duration::from_millis(1)
            };
            self.hal.delay(step);
        }
    }

    fn exec<C: Command>(&mut self, cmd: &C) -> Result<C::Output, Error> {
        self.wait_idle(C::OPCODE)?;
        let mut inbuf = [0u8; MBOX_BYTES];
        let (in_h, in_l) = match cmd.input(&mut inbuf) {
            InKind::None => (0, 0),
            InKind::Imm(v) => ((v >> 32) as u32, v as u32),
            InKind::Mailbox => {
                self.mbox_in.write(0, &inbuf)?;
                let pa = self.mbox_in.paddr();
                ((pa >> 32) as u32, pa as u32)
            }
        };
        let (out_h, out_l) = if C::OUT == OutKind::Mailbox {
            let pa = self.mbox_out.paddr();
            ((pa >> 32) as u32, pa as u32)
        } else {
            (0, 0)
        };
        // The input mailbox must be visible to the device before the go bit, and the output
        // mailbox is the device's to write.
        self.mbox_in.sync(DmaSync::PreWrite);
        self.mbox_out.sync(DmaSync::PreRead);
        dma_fence();
        let base = regs::HCR_BASE;
        for (i, v) in [in_h, in_l, cmd.in_mod(), out_h, out_l, 0]
            .into_iter()
            .enumerate()
        {
            regs::write_be(self.hal, Bar::BAR0, base + 4 * i, v);
        }
        *self.toggle = !*self.toggle;
        HcrCtrl::command(C::OPCODE.0, cmd.op_mod(), *self.toggle).write(self.hal);
        let done = self.wait_idle(C::OPCODE)?;
        // The output mailbox is read after the device cleared go.
        dma_fence();
        self.mbox_in.sync(DmaSync::PostWrite);
        self.mbox_out.sync(DmaSync::PostRead);
        if done.status() != 0 {
            let status = cmd::FwStatus(done.status());
            debug!("hermon: command {:?} status {status:?}", C::OPCODE);
            return Err(Error::Firmware {
                opcode: C::OPCODE,
                status,
            });
        }
        let imm = (u64::from(regs::read_be(self.hal, Bar::BAR0, base + 0x0c)) << 32)
            | u64::from(regs::read_be(self.hal, Bar::BAR0, base + 0x10));
        let mut outbuf = [0u8; MBOX_BYTES];
        if C::OUT == OutKind::Mailbox {
            self.mbox_out.read(0, &mut outbuf)?;
        }
        Ok(C::decode(CmdOut { imm, mbox: &outbuf }))
    }
}

/// Resets the device (§2.1): save config space, write the reset magic, wait for config reads
/// to answer, wait the post-reset delay, restore config space.
fn reset<H: Hal>(hal: &H, cfg: &Config) -> Result<(), Error> {
    let id = hal.pci_config_read32(0);
    let vendor = id as u16;
    let mut saved = [0u32; 64];
    for (i, s) in saved.iter_mut().enumerate() {
        *s = hal.pci_config_read32((i * 4) as u16);
    }
    regs::write_be(hal, Bar::BAR0, regs::RESET_OFFSET, regs::RESET_MAGIC);
    // The reset write must reach the device before we start polling (iPXE 84ac70ef8).
    dma_fence();
    let start = hal.now();
    // TIMEOUT: 1000 ms polling the vendor id every 1 ms (iPXE hermon_reset, §2.1).
    loop {
        hal.delay(Duration::from_millis(1));
        if hal.pci_config_read32(0) as u16 == vendor {
            break;
        }
        if hal.now().saturating_since(start) >= Duration::from_millis(1000) {
            return Err(Error::ResetTimeout);
        }
    }
    // TIMEOUT: post-reset delay, `Config::post_reset_delay` (default 1 s; iPXE issue #1751).
    hal.delay(cfg.post_reset_delay);
    for (i, s) in saved.iter().enumerate() {
        let off = (i * 4) as u16;
        // 0x58..0x5c is left alone (reference §2.1); dword 0 is read-only ids.
        if off == 0 || off == 0x58 || off == 0x5c {
            continue;
        }
        hal.pci_config_write32(off, *s);
    }
    Ok(())
}

fn decode_caps(p: &Prm<{ prm::dev_cap::DWORDS }>) -> Result<DevCaps, Error> {
    use prm::dev_cap::*;
    let pow = |f| 1u32 << p.get(f);
    let rsvd_eqs = match p.get(NUM_RSVD_EQS) {
        // Firmware that reports only the log2 (iPXE `hermon_get_cap`'s fallback).
        0 => pow(LOG2_RSVD_EQS),
        n => n,
    };
    let c = DevCaps {
        log_max_qp: p.get(LOG_MAX_QP),
        log_max_qp_sz: p.get(LOG_MAX_QP_SZ),
        rsvd_qps: pow(LOG2_RSVD_QPS),
        log_max_srqs: p.get(LOG_MAX_SRQS),
        rsvd_srqs: pow(LOG2_RSVD_SRQS),
        log_max_cq: p.get(LOG_MAX_CQ),
        log_max_cq_sz: p.get(LOG_MAX_CQ_SZ),
        rsvd_cqs: pow(LOG2_RSVD_CQS),
        log_max_eq: p.get(LOG_MAX_EQ),
        rsvd_eqs,
        log_max_mpts: p.get(LOG_MAX_D_MPTS),
        rsvd_mrws: pow(LOG2_RSVD_MRWS),
        log_max_mtts: p.get(LOG_MAX_MTTS),
        rsvd_mtts: pow(LOG2_RSVD_MTTS),
        log_max_mcg: p.get(LOG_MAX_MCG),
        num_ports: p.get(NUM_PORTS) as u8,
        num_rsvd_uars: p.get(NUM_RSVD_UARS),
        qpc_sz: p.get(QPC_ENTRY_SZ),
        altc_sz: p.get(ALTC_ENTRY_SZ),
        auxc_sz: p.get(AUX_ENTRY_SZ),
        srqc_sz: p.get(SRQ_ENTRY_SZ),
        cqc_sz: p.get(CQC_ENTRY_SZ),
        eqc_sz: p.get(EQC_ENTRY_SZ),
        cmpt_sz: p.get(C_MPT_ENTRY_SZ),
        dmpt_sz: p.get(D_MPT_ENTRY_SZ),
        mtt_sz: p.get(MTT_ENTRY_SZ),
    };
    let sizes = [
        c.qpc_sz, c.altc_sz, c.auxc_sz, c.srqc_sz, c.cqc_sz, c.eqc_sz, c.cmpt_sz, c.dmpt_sz,
        c.mtt_sz,
    ];
    if sizes
        .iter()
        .any(|&s| s == 0 || s > 4096 || !s.is_power_of_two())
    {
        warn!("hermon: unusable context entry sizes {sizes:?}");
        return Err(Error::BadDevice);
    }
    if p.get(UD) == 0 {
        warn!("hermon: the device does not support UD");
        return Err(Error::BadDevice);
    }
    // The driver hands the device 4 KiB pages (Linux `main.c` refuses a minimum page size
    // above PAGE_SIZE).
    if p.get(LOG_PG_SZ) > 12 {
        return Err(Error::BadDevice);
    }
    // UAR page 128 carries the send doorbells (iPXE `HERMON_UAR_NON_EQ_PAGE`; Linux `pd.c`
    // needs more than 128 UAR pages): the device's UAR area, 1 MiB << uar_sz, always holds the
    // 2^UAR_LOG_PAGES pages declared, but firmware must not reserve page 128 for itself.
    if c.num_rsvd_uars >= regs::UAR_NON_EQ_PAGE as u32 {
        return Err(Error::BadDevice);
    }
    Ok(c)
}

/// The special QPs' base: the first multiple of 8 at or above the reserved QPs.
fn special_base(c: &DevCaps) -> u32 {
    c.rsvd_qps.div_ceil(8) * 8
}

/// The primary path's scheduling queue: 0x83 for UD and QP1, 0x3f for QP0, with bit 6
/// selecting the port (Linux `hw/mlx4/qp.c` `MLX4_IB_DEFAULT_SCHED_QUEUE`,
/// `MLX4_IB_DEFAULT_QP0_SCHED_QUEUE`; iPXE `hermon_sched_queue`).
fn sched_queue(kind: QpKind, port: PortNum) -> u32 {
    let base = if kind == QpKind::Smi { 0x3f } else { 0x83 };
    base | (u32::from(port.0.saturating_sub(1)) << 6)
}

fn icm_layout(c: &DevCaps) -> Result<Icm, Error> {
    let log_qps = log2_ceil(u64::from(special_base(c) + SPECIAL_QPS + MAX_QPS));
    let log_srqs = log2_ceil(u64::from(c.rsvd_srqs));
    let log_cqs = log2_ceil(u64::from(c.rsvd_cqs) + u64::from(MAX_CQS));
    let eqn = (4 * c.num_rsvd_uars).max(c.rsvd_eqs);
    let log_eqs = log2_ceil(u64::from(eqn) + 1);
    let log_mtts = log2_ceil(u64::from(c.rsvd_mtts) + u64::from(MTT_ENTRIES));
    let log_mpts = log2_ceil(u64::from(c.rsvd_mrws) + 1);
    let log_mcg = LOG_MCG.min(c.log_max_mcg);
    let fits = [
        (log_qps, c.log_max_qp),
        (log_srqs, c.log_max_srqs),
        (log_cqs, c.log_max_cq),
        (log_eqs, c.log_max_eq),
        (log_mtts, c.log_max_mtts),
        (log_mpts, c.log_max_mpts),
    ];
    if fits.iter().any(|(need, max)| need > max) {
        warn!("hermon: the device's tables are too small: {fits:?}");
        return Err(Error::BadDevice);
    }
    if log_qps > 12 {
        // QPN randomisation uses bits 12..23; the table must fit below them.
        return Err(Error::BadDevice);
    }
    let mut icm = Icm {
        log_qps,
        log_srqs,
        log_cqs,
        log_eqs,
        log_mtts,
        log_mpts,
        log_mcg,
        ..Icm::default()
    };
    let n = |log: u32| 1u64 << log;
    let page = PAGE_SIZE as u64;
    // The cMPT tables, at a stride of 2^24 entries from cmpt_base = 0; each mapped only for
    // the objects the driver can create.
    let cmpt_sz = u64::from(c.cmpt_sz);
    let span = CMPT_MAX_ENTRIES * cmpt_sz;
    icm.cmpt = 0;
    for (t, log) in [log_qps, log_srqs, log_cqs, log_eqs]
        .into_iter()
        .enumerate()
    {
        icm.regions[t] = IcmRegion {
            va: icm.cmpt + t as u64 * span,
            len: (n(log) * cmpt_sz).div_ceil(page) * page,
        };
    }
    // The other tables, each aligned to its own power-of-two size.
    let other = CMPT_TYPES as u64 * span;
    let mut next = other;
    let mut place = |bytes: u64| -> u64 {
        let size = bytes.max(page).next_power_of_two();
        let base = next.div_ceil(size) * size;
        next = base + size;
        base
    };
    icm.qpc = place(n(log_qps) * u64::from(c.qpc_sz));
    icm.altc = place(n(log_qps) * u64::from(c.altc_sz));
    icm.auxc = place(n(log_qps) * u64::from(c.auxc_sz));
    icm.srqc = place(n(log_srqs) * u64::from(c.srqc_sz));
    icm.cqc = place(n(log_cqs) * u64::from(c.cqc_sz));
    icm.eqc = place(n(log_eqs) * u64::from(c.eqc_sz));
    icm.mtt = place(n(log_mtts) * u64::from(c.mtt_sz));
    icm.dmpt = place(n(log_mpts) * u64::from(c.dmpt_sz));
    icm.mcg = place(n(log_mcg) << prm::mcg::LOG_ENTRY_SZ);
    // The "other" region starts at the first table (the QPC, the largest alignment) and runs
    // to the end of the last.
    icm.regions[CMPT_TYPES] = IcmRegion {
        va: icm.qpc,
        len: next - icm.qpc,
    };
    icm.extent = next;
    icm.backing = icm.regions.iter().map(|r| r.len).sum();
    if icm.backing > MAX_ICM_BYTES {
        // Tables this large mean a capability the driver misread, not a real need.
        return Err(Error::BadDevice);
    }
    Ok(icm)
}

fn init_hca_prm(icm: &Icm) -> Result<Prm<{ prm::init_hca::DWORDS }>, Error> {
    use prm::init_hca::*;
    let mut p = Prm::default();
    p.set(VERSION, 2);
    p.set(UDP, 1);
    p.set(LOG_NUM_OF_QP, icm.log_qps);
    p.set(LOG_NUM_OF_SRQ, icm.log_srqs);
    p.set(LOG_NUM_OF_CQ, icm.log_cqs);
    p.set(LOG_NUM_OF_EQ, icm.log_eqs);
    p.set(LOG_DMPT_SZ, icm.log_mpts);
    p.set(LOG_MC_TABLE_ENTRY_SZ, prm::mcg::LOG_ENTRY_SZ);
    p.set(LOG_MC_TABLE_HASH_SZ, icm.log_mcg);
    p.set(LOG_MC_TABLE_SZ, icm.log_mcg);
    // No RDMA read contexts: UD and MLX QPs never read remotely (iPXE leaves them 0 too).
    p.set(LOG_NUM_RD, 0);
    // 4 KiB UAR pages (iPXE leaves 0; Linux writes PAGE_SHIFT - 12).
    p.set(UAR_PAGE_SZ, 0);
    p.set(LOG_MAX_UARS, UAR_LOG_PAGES);
    let bases = [
        (QPC_BASE, icm.qpc),
        (SRQC_BASE, icm.srqc),
        (CQC_BASE, icm.cqc),
        (ALTC_BASE, icm.altc),
        (AUXC_BASE, icm.auxc),
        (EQC_BASE, icm.eqc),
        (MC_BASE, icm.mcg),
        (DMPT_BASE, icm.dmpt),
        (MTT_BASE, icm.mtt),
        (CMPT_BASE, icm.cmpt),
        (RDMARC_BASE, 0),
    ];
    for (f, v) in bases {
        if !p.set_addr(f, v) {
            return Err(Error::BadDevice);
        }
    }
    Ok(p)
}
