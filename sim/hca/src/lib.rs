//! The host simulation: a ConnectX device model reachable through the same `Hal` the driver
//! uses, an InfiniBand fabric (switches, subnet manager, subnet administrator, multicast), fault
//! injection as a middleware, a deterministic clock and a seeded RNG.
//!
//! It depends on `hca` alone (for the `Hal` trait it implements and the IBA wire formats of the
//! fabric); the IP side of the simulation — hosts running IPoIB and smoltcp, and the gateway to
//! real servers — is the `net-sim` crate above it.
//!
//! std only; used by tests, benches and the demo.
//!
//! # Example: two nodes, the SM brings their ports up, one UD datagram
//!
//! ```
//! use std::time::Duration;
//! use hca::hermon::{Config, Hermon};
//! use hca::verbs::{self, AddressHandle, CompletionKind, PortNum, UdQpAttr};
//! use hca::Verbs;
//! use hca_sim::{HcaSpec, Sim, SimConfig};
//!
//! let sim = Sim::new(SimConfig { seed: 7, ..SimConfig::default() });
//! let sw = sim.add_switch();
//! sim.attach_sm(sw);
//! let mut devs = Vec::new();
//! let mut qps = Vec::new();
//! for guid in [0x0002_c903_0000_1000u64, 0x0002_c903_0000_2000] {
//!     let node = sim.add_hca(HcaSpec::connectx(guid, 2));
//!     sim.connect(node, 1, sw);
//!     let mut dev = Hermon::open(sim.hal(node), Config::default()).unwrap();
//!     dev.open_port(PortNum(1)).unwrap();
//!     let attr = verbs::wait_port_active(&mut dev, PortNum(1), Duration::from_secs(15)).unwrap();
//!     let cq = dev.create_cq(16).unwrap();
//!     let qp = dev
//!         .create_ud_qp(&UdQpAttr {
//!             port: PortNum(1),
//!             send_cq: cq,
//!             recv_cq: cq,
//!             send_slots: 8,
//!             recv_slots: 8,
//!             qkey: Some(0x0b1b),
//!         })
//!         .unwrap();
//!     qps.push((attr, cq, qp));
//!     devs.push(dev);
//! }
//! let (b_attr, b_cq, b_qp) = qps[1];
//! let ah = AddressHandle::unicast(b_attr.lid, 0, devs[1].qp_num(b_qp).unwrap(), 0x0b1b);
//! devs[0].post_send(qps[0].2, &ah, b"hi").unwrap();
//! devs[0].delay(Duration::from_millis(1));
//! let mut buf = [0u8; 2048];
//! let c = devs[1].poll_cq(b_cq, &mut buf).unwrap().expect("a completion");
//! assert_eq!((c.kind, &buf[..c.byte_len as usize]), (CompletionKind::Recv, &b"hi"[..]));
//! ```
//!
//! # Where the model's knowledge comes from
//!
//! The model never uses the driver's layouts (`hca::hermon`). Its structures are a separate
//! transcription in [`prm`], written as Linux's `mlx4_core` reads them — byte offset, access
//! width, shift, mask — so that a slip in one transcription cannot be repeated in the other;
//! `hca/tests/prm_conformance.rs` holds both against a third, hand-written table. It uses from
//! `hca` only the [`hca::Hal`] trait it implements and the IBA wire formats (`hca::wire`).
//!
//! Per structure, the model's positions come from (file names under Linux
//! `drivers/net/ethernet/mellanox/mlx4/` unless given):
//!
//! | structure | Linux source | iPXE (`src/drivers/infiniband/`) only for |
//! |---|---|---|
//! | HCR | `mlx4.h` `MLX4_HCR_BASE`; `cmd.c` `HCR_*` | — |
//! | reset, doorbells | `reset.c` `MLX4_RESET_*`; `include/linux/mlx4/doorbell.h` `MLX4_SEND_DOORBELL`; `eq.c` `mlx4_get_eq_uar` | BAR0 size (`hermon.h`) |
//! | opcodes, statuses | `include/linux/mlx4/cmd.h` `MLX4_CMD_*`; `cmd.c` `CMD_STAT_*` | — |
//! | QUERY_FW | `fw.c` `QUERY_FW_*_OFFSET` | — |
//! | QUERY_ADAPTER | `fw.c` `QUERY_ADAPTER_*_OFFSET`, `get_board_id` | — |
//! | MAP_FA/ICM entries | `fw.c` `mlx4_map_cmd` | the 6-bit log2 size |
//! | QUERY_DEV_CAP | `fw.c` `QUERY_DEV_CAP_*_OFFSET` and masks | `num_rsvd_eqs`; the width of `log_max_mtts` |
//! | INIT_HCA | `fw.c` `INIT_HCA_*_OFFSET` | the widths of the log sizes |
//! | cMPT layout | `mlx4.h` `MLX4_CMPT_TYPE_*`, `MLX4_CMPT_SHIFT`; `main.c` `mlx4_init_cmpt_table` | — |
//! | dMPT | `mlx4.h` `struct mlx4_mpt_entry`, `MLX4_MPT_FLAG_*`; `include/linux/mlx4/device.h` `MLX4_PERM_*` | `len64` |
//! | EQC, CQC | `mlx4.h` `struct mlx4_eq_context`, `struct mlx4_cq_context`; `eq.c`/`cq.c` flags | the bits inside `page_offset`; the 9th bit of `c_eqn`; widths of log sizes |
//! | QP modify mailbox | `qp.c` `mlx4_qp_modify`; `include/linux/mlx4/qp.h` `struct mlx4_qp_context` | `page_offset`; the doorbell record's alignment |
//! | QUERY_PORT | `fw.c` `QUERY_PORT_*_OFFSET` | — |
//! | SET_PORT (IB) | `port.c` `MLX4_SET_PORT_*`, `MLX4_CHANGE_PORT_*` | the GID table size and its change flag |
//! | MCG entry | `mlx4.h` `struct mlx4_mgm`, `MGM_QPN_MASK` | — |
//! | EQE, CQE | `include/linux/mlx4/device.h` `struct mlx4_eqe`; `include/linux/mlx4/cq.h` `struct mlx4_cqe`, `struct mlx4_err_cqe` | the 2-bit port of a port change |
//! | WQEs | `include/linux/mlx4/qp.h` `mlx4_wqe_{ctrl,mlx,datagram,data}_seg`; `device.h` `struct mlx4_av` | the widths of the opcode, AV port and GID index |
//! | WRITE_MTT | `mr.c` (the mailbox `mlx4_WRITE_MTT` builds) | the first qword as a byte offset |
//!
//! # What follows documented behaviour, and what is the model's choice
//!
//! Documented (the sources above, the IBA specification for the wire): PCI ids; the reset
//! register and config-space unavailability during reset; the HCR protocol (go, toggle,
//! status codes); the command opcodes and the bring-up order; the ICM layout (four cMPT
//! tables at a stride of 2^24 entries, the SRQC, QPC/ALTC/AUXC/CQC/EQC/MTT/dMPT/MCG tables,
//! their sizes from QUERY_DEV_CAP); HW2SW_CQ/EQ/MPT op_mod 0 meaning "write the context to the
//! output mailbox" and 1 "no mailbox"; the L_Key/MPT key rotation; MPT access rights and the
//! region bit; the UAR page size and count of INIT_HCA; CQE/EQE ownership parity; error CQEs
//! as opcode 0x1e with their syndromes; the send doorbell (UAR page + 0x14, QPN << 8) and EQ
//! doorbells (four per UAR page at 0x800); doorbell records; ring order by stride; special QPN
//! numbering; event types and where their port and CQN sit; QUERY_PORT's IB/Ethernet bits
//! (a VPI port's configuration); IBA packet headers, ICRC, MADs, SMP and SA records, port
//! states, Q_Key/P_Key rules.
//!
//! Enforced as firmware would, with the status a driver would see: INIT_HCA with tables
//! outside mapped ICM, overlapping, or with log sizes beyond the capabilities the model
//! reported (BAD_PARAM); context and cMPT entries of each object in mapped ICM (ICM_ERROR); a
//! CQ naming an EQ that does not exist and a QP naming a CQ that does not exist (BAD_PARAM);
//! an L_Key whose MPT is missing, of another key variant or PD, a window, lacking local write
//! for a scatter or local read for a gather, or not covering the range (a local protection
//! error CQE); HW2SW with op_mod 0 and no output mailbox (BAD_PARAM); doorbells on a UAR page
//! the QP does not name or INIT_HCA did not declare (dropped, counted as misuse); an MLX WQE
//! whose rlid is not its LRH's DLID, a UD address vector of another PD or (with INIT_HCA's port
//! check) another port (local QP operation error CQE); SET_PORT or an IB QP on a port
//! configured for Ethernet; QUERY_PORT on firmware before command interface 3.
//!
//! The model's choices (no public source settles them; `device::caps` names the source or the
//! choice for every capability value): the capability values themselves — no public
//! QUERY_DEV_CAP or QUERY_FW dump of a ConnectX, ConnectX-2 or ConnectX-3 is known, so the
//! maxima are the floors Linux's default profile implies, the entry sizes are the MT25208
//! (InfiniHost III Ex) values iPXE's `MT25408_PRM.h` prints, the reserved counts and AUX entry
//! size are chosen; the firmware area size; the ConnectX-3's firmware revision and PSID are
//! those of one public `flint query`; the AUX-size rule (1 page per 64 MiB of ICM extent);
//! 2RST_QP's op_mod (iPXE sends 3, Linux 2; both accepted); the first qword of WRITE_MTT (a
//! byte offset into the MTT table, as iPXE sends it; Linux's paravirtual path sends an index);
//! whether firmware needs an SRQ context region when no SRQ is used (the model requires it, as
//! both sources always provide one); the syndrome of an AV PD/port mismatch; physical MPTs
//! only; the MGID hash; ICM contents (the model keeps contexts in its own tables and only
//! checks that ICM is mapped where the firmware would touch it); firmware settle time after
//! reset; the SM programs ports with directed-route SMPs on QP0 that go to the last hop in one
//! step, answered by an SMA modelled at the fabric's port ([`fabric`]'s `smi`); the SA answers
//! single-record Get/Set/Delete only (no GetTable, no RMPP); a port becomes INIT a fixed
//! training time after INIT_PORT with no event. OpenSM's broadcast-group Q_Key 0x0b1b is
//! checked against a real OpenSM by `net-sim`'s `opensm` test.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod capture;
pub mod device;
pub mod fabric;
pub mod faults;
pub mod hal;
#[cfg(all(feature = "ibsim", target_os = "linux"))]
pub mod ibsim;
pub mod mem;
pub mod prm;

use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

pub use device::{Counters, HcaSpec, PortModel, PortProtocol};
pub use fabric::{
    BridgeStats, Endpoint, FabricEvent, FabricEventKind, FabricStats, LinkId, LinkRate, MadPeer,
    NodeId, PeerMad, PeerPort, SimConfig, SmConfig, SwitchId,
};
pub use faults::{Corrupt, DropMatching, Latency, Loss, Middleware, Rng, Verdict};
pub use hal::{set_thread_delay, SimHal};

use device::Device;
use fabric::World;

/// The simulation: build a fabric, hand out Hals, inject faults, read counters.
#[derive(Clone, Debug)]
pub struct Sim {
    world: Rc<RefCell<World>>,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

impl Sim {
    /// A new world.
    pub fn new(cfg: SimConfig) -> Self {
        Self {
            world: Rc::new(RefCell::new(World::new(cfg))),
        }
    }

    /// Adds a switch.
    pub fn add_switch(&self) -> SwitchId {
        self.world.borrow_mut().add_switch()
    }

    /// Adds an HCA.
    pub fn add_hca(&self, spec: HcaSpec) -> NodeId {
        self.world.borrow_mut().add_node(Device::new(spec))
    }

    /// Cables an HCA port to a switch.
    pub fn connect(&self, node: NodeId, port: u8, sw: SwitchId) -> LinkId {
        self.world
            .borrow_mut()
            .add_link(Endpoint::Hca { node, port }, Endpoint::Switch(sw))
    }

    /// Cables two switches.
    pub fn connect_switches(&self, a: SwitchId, b: SwitchId) -> LinkId {
        self.world
            .borrow_mut()
            .add_link(Endpoint::Switch(a), Endpoint::Switch(b))
    }

    /// Cables the subnet manager to a switch.
    pub fn attach_sm(&self, sw: SwitchId) -> LinkId {
        self.world
            .borrow_mut()
            .add_link(Endpoint::Sm, Endpoint::Switch(sw))
    }

    /// The Hal for an HCA.
    pub fn hal(&self, node: NodeId) -> SimHal {
        SimHal {
            world: self.world.clone(),
            node,
        }
    }

    /// Current simulated time.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.world.borrow().now)
    }

    /// Advances the clock.
    pub fn run_for(&self, d: Duration) {
        self.world.borrow_mut().run_for(ns(d));
    }

    /// Starts (`true`) or stops recording the fabric's events (SM sweeps, port state
    /// changes, SA requests) for a timeline.
    pub fn record_events(&self, on: bool) {
        self.world.borrow_mut().record_events(on);
    }

    /// The fabric events recorded since the last call.
    pub fn take_events(&self) -> Vec<FabricEvent> {
        self.world.borrow_mut().take_events()
    }

    /// A device's counters.
    pub fn counters(&self, node: NodeId) -> Counters {
        self.world.borrow().nodes[node].dev.counters
    }

    /// Fabric counters.
    pub fn stats(&self) -> FabricStats {
        self.world.borrow().stats
    }

    /// A port's model state.
    pub fn port(&self, node: NodeId, port: u8) -> PortModel {
        self.world.borrow().nodes[node].dev.ports[usize::from(port) - 1].clone()
    }

    /// The LID the SM assigned to a port, if it assigned one. Unlike [`Sim::port`]'s, it
    /// survives the port going down and its driver resetting the device.
    pub fn assigned_lid(&self, node: NodeId, port: u8) -> Option<u16> {
        self.world.borrow().assigned_lid(node, port)
    }

    /// Members of a multicast group at the SA.
    pub fn group_members(&self, mgid: &hca::wire::Gid) -> usize {
        self.world.borrow().group_members(mgid)
    }

    /// DMA pages a node's host has allocated.
    pub fn dma_pages_in_use(&self, node: NodeId) -> usize {
        self.world.borrow().nodes[node].mem.pages_in_use
    }

    /// Writes every packet the fabric moves from now on — SA MADs, IPoIB ARP, DHCP, TCP —
    /// to a pcap file at `path` (created or truncated), each record a whole IB packet from the
    /// LRH to the VCRC (see [`capture`]): `tshark -r FILE` or `wireshark FILE` decode it.
    /// Packets are recorded once, as they leave the sender, before the fault chain (a packet
    /// the faults drop is in the capture; a multicast packet is one record), stamped with the
    /// simulated time.
    pub fn capture(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let f = std::fs::File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        self.start_capture(io::BufWriter::new(f))
    }

    /// As [`Sim::capture`], to any writer.
    pub fn start_capture(&self, out: impl io::Write + 'static) -> io::Result<()> {
        self.world.borrow_mut().start_capture(Box::new(out))
    }

    /// Ends the capture: flushes it and returns how many packets it holds, or the first write
    /// error (after which nothing more was recorded). Without a capture, `Ok(0)`. Dropping
    /// the simulation also flushes it, silently.
    pub fn stop_capture(&self) -> io::Result<u64> {
        self.world.borrow_mut().stop_capture()
    }

    /// Bridges `(node, port)`'s management datagrams to the SM — QP1 to the SM's LID — to a
    /// real subnet manager through `peer`, and its answers back (module `fabric::bridge`
    /// says what crosses and what cannot). The port takes the peer subnet's addresses
    /// (`peer_port`: its LID, the SM's LID and SL, the GID prefix, the P_Key table), which the
    /// simulated SM programs as it brings the port up; the simulated SM's own LID becomes the
    /// peer SM's. A request waits at most `wait`, in real time, for its answer.
    pub fn bridge_sm(
        &self,
        node: NodeId,
        port: u8,
        peer: impl MadPeer + 'static,
        peer_port: PeerPort,
        wait: Duration,
    ) {
        self.world
            .borrow_mut()
            .bridge_sm(node, port, Box::new(peer), peer_port, wait);
    }

    /// What crossed the bridge so far (`None` without one).
    pub fn bridge_stats(&self) -> Option<BridgeStats> {
        self.world.borrow().bridge_stats()
    }

    /// Fault: takes a link down or up after `after`.
    pub fn set_link(&self, link: LinkId, up: bool, after: Duration) {
        self.world.borrow_mut().schedule_link(link, up, ns(after));
    }

    /// Fault: the SM reassigns a port's LID after `after`.
    pub fn change_lid(&self, node: NodeId, port: u8, lid: u16, after: Duration) {
        self.world
            .borrow_mut()
            .schedule_lid_change(node, port, lid, ns(after));
    }

    /// Fault: the subnet manager restarts `after` from now
    /// ([`fabric::World::schedule_sm_restart`]): its multicast groups are lost and its first
    /// sweep sets ClientReregister on every ACTIVE port.
    pub fn sm_restart(&self, after: Duration) {
        self.world.borrow_mut().schedule_sm_restart(ns(after));
    }

    /// Fault: adds a stage to the packet fault chain.
    pub fn add_fault(&self, m: Box<dyn Middleware>) {
        self.world.borrow_mut().faults.push(m);
    }

    /// Fault: the device's firmware stops completing commands.
    pub fn hang_firmware(&self, node: NodeId, hang: bool) {
        self.world.borrow_mut().nodes[node].dev.hang_commands = hang;
    }

    /// Fault: the device forgets the driver's memory keys (WQEs then complete with a local
    /// protection error).
    pub fn scramble_keys(&self, node: NodeId) {
        self.world.borrow_mut().nodes[node].dev.scramble_keys();
    }

    /// Fault: the device writes no EQEs (port changes must be found by polling PortInfo).
    pub fn suppress_events(&self, node: NodeId, on: bool) {
        self.world.borrow_mut().nodes[node].dev.suppress_events = on;
    }

    /// Fault: the next command with `opcode` fails with firmware `status`.
    pub fn fail_next_command(&self, node: NodeId, opcode: u16, status: u8) {
        self.world.borrow_mut().nodes[node]
            .dev
            .fail_next
            .insert(opcode, status);
    }
}
