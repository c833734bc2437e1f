//! A client of ibsim, the InfiniBand fabric simulator of Debian's `ibsim-utils` (linux-rdma/ibsim):
//! attached to one of its HCA ports, it sends and receives MADs there, which makes it the
//! [`MadPeer`] that bridges a port of our simulated fabric to an OpenSM running on ibsim
//! ([`crate::Sim::bridge_sm`]).
//!
//! The protocol (ibsim 0.10, `include/ibsim.h`, `ibsim/ibsim.c`; the same as its own
//! `umad2sim` preload library speaks): Unix datagram sockets in the abstract namespace, whose
//! names ibsim builds with a trailing NUL (`make_name`). ibsim binds `<base>:ctl` and
//! `<base>:out0`..`out9`; a client binds `<base>:ctl<id>` and `<base>:in<id>` for an `id` of
//! its choosing, asks for a slot with a `SIM_CTL_CONNECT` control message naming a node, and
//! connects its data socket to `<base>:out<slot>` (ibsim connects its side to `in<id>` during
//! the CONNECT, and exits if that socket does not exist yet). `base` is `$IBSIM_SOCKNAME` or
//! `sim`. Abstract names are per network namespace: run ibsim and the client in the same one.
//!
//! - Control messages, `struct sim_ctl`: 80 bytes, host byte order — magic 0xdeadbeef, client
//!   slot, type, length, 64 bytes of data ([`Ctl`]).
//! - MADs, `struct sim_request`: 288 bytes — `dlid` and `slid` as `htons()` values in 32-bit
//!   fields, `dqp`, `sqp` and `status` as `htonl()`, 4 bytes of padding, the MAD length as
//!   `htobe64()`, then the 256-byte MAD as on the wire ([`encode_request`],
//!   [`decode_request`]). A `status` of 110 (ETIMEDOUT) is ibsim handing a request back
//!   undelivered. The layout is the x86-64/LP64 one.
//!
//! What ibsim does with MADs (`ibsim/sim_mad.c`): it routes LID-routed MADs through the switches
//! the SM programmed; SMPs (and PerfMgt) to any port are answered by its own model, so a
//! client never sees them; a GSI request to QP0/1 of a port goes to the client attached there
//! as the SM (`issm`), which is how an SA request reaches OpenSM; answers go back by the
//! transaction id, whose top 16 bits ibsim overwrites with the asker's slot.
//!
//! Every decoder returns [`MsgError`] on input of the wrong size or kind; nothing panics.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use hca::wire::mad::MAD_SIZE;
use hca::wire::smp::{NodeInfo, PortInfo};
use zerocopy::FromBytes;

use crate::fabric::{MadPeer, PeerMad, PeerPort};

/// `SIM_MAGIC`.
pub const SIM_MAGIC: u32 = 0xdead_beef;
/// Size of `struct sim_ctl`.
pub const CTL_LEN: usize = 80;
/// Size of `struct sim_request`.
pub const REQUEST_LEN: usize = 288;
/// `SIM_CTL_MAX_DATA`.
const CTL_DATA: usize = 64;
/// `IBSIM_MAX_CLIENTS`.
pub const MAX_CLIENTS: u32 = 10;

/// Control message types (`enum SIM_CTL_TYPES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CtlType {
    /// The reply to a refused request.
    Error = 0,
    /// Attach to a node.
    Connect = 1,
    /// Detach.
    Disconnect = 2,
    /// LID and state.
    GetPort = 3,
    /// Vendor ids.
    GetVendor = 4,
    /// The port GID (wrong on little-endian hosts: ibsim copies a host-order GUID).
    GetGid = 5,
    /// The node GUID (host order, as above).
    GetGuid = 6,
    /// The node's NodeInfo attribute.
    GetNodeInfo = 7,
    /// The port's PortInfo attribute.
    GetPortInfo = 8,
    /// Become (or stop being) the port's SM.
    SetIsSm = 9,
    /// The port's P_Key table.
    GetPkeys = 10,
}

impl CtlType {
    fn from_u32(v: u32) -> Option<Self> {
        use CtlType::*;
        Some(match v {
            0 => Error,
            1 => Connect,
            2 => Disconnect,
            3 => GetPort,
            4 => GetVendor,
            5 => GetGid,
            6 => GetGuid,
            7 => GetNodeInfo,
            8 => GetPortInfo,
            9 => SetIsSm,
            10 => GetPkeys,
            _ => return None,
        })
    }
}

/// Why a message from ibsim could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgError {
    /// A datagram of the wrong size.
    Length {
        /// Its size.
        got: usize,
        /// The size of the message expected.
        want: usize,
    },
    /// A control message without `SIM_MAGIC`.
    BadMagic(u32),
    /// A control message of no known type.
    UnknownType(u32),
}

impl core::fmt::Display for MsgError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MsgError::Length { got, want } => {
                write!(f, "a {got}-byte message where {want} bytes belong")
            }
            MsgError::BadMagic(m) => write!(f, "a control message with magic {m:#010x}"),
            MsgError::UnknownType(t) => write!(f, "a control message of unknown type {t}"),
        }
    }
}

impl std::error::Error for MsgError {}

/// `struct sim_ctl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctl {
    /// The client's slot (0 in a CONNECT).
    pub client: u32,
    /// The request, or `Error` in a refusal.
    pub kind: CtlType,
    /// Bytes of `data` used.
    pub len: u32,
    /// The payload.
    pub data: [u8; CTL_DATA],
}

impl Ctl {
    /// A request.
    pub fn new(client: u32, kind: CtlType, payload: &[u8]) -> Self {
        let mut data = [0u8; CTL_DATA];
        let n = payload.len().min(CTL_DATA);
        data[..n].copy_from_slice(&payload[..n]);
        Self {
            client,
            kind,
            len: n as u32,
            data,
        }
    }

    /// The 80 bytes, in host order as ibsim reads them.
    pub fn encode(&self) -> [u8; CTL_LEN] {
        let mut b = [0u8; CTL_LEN];
        b[0..4].copy_from_slice(&SIM_MAGIC.to_ne_bytes());
        b[4..8].copy_from_slice(&self.client.to_ne_bytes());
        b[8..12].copy_from_slice(&(self.kind as u32).to_ne_bytes());
        b[12..16].copy_from_slice(&self.len.to_ne_bytes());
        b[16..].copy_from_slice(&self.data);
        b
    }

    /// Reads a control message.
    pub fn decode(b: &[u8]) -> Result<Self, MsgError> {
        if b.len() != CTL_LEN {
            return Err(MsgError::Length {
                got: b.len(),
                want: CTL_LEN,
            });
        }
        let word = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        if word(0) != SIM_MAGIC {
            return Err(MsgError::BadMagic(word(0)));
        }
        let kind = CtlType::from_u32(word(8)).ok_or(MsgError::UnknownType(word(8)))?;
        let mut data = [0u8; CTL_DATA];
        data.copy_from_slice(&b[16..]);
        Ok(Self {
            client: word(4),
            kind,
            len: word(12),
            data,
        })
    }
}

/// `struct sim_client_info`: the CONNECT payload (and reply: the slot in `id`, the node's id).
pub fn client_info(id: u32, qp: u32, issm: bool, node: &str) -> [u8; 44] {
    let mut b = [0u8; 44];
    b[0..4].copy_from_slice(&id.to_ne_bytes());
    b[4..8].copy_from_slice(&qp.to_ne_bytes());
    b[8..12].copy_from_slice(&u32::from(issm).to_ne_bytes());
    let n = node.len().min(31);
    b[12..12 + n].copy_from_slice(&node.as_bytes()[..n]);
    b
}

/// `struct sim_request` for a MAD.
pub fn encode_request(m: &PeerMad) -> [u8; REQUEST_LEN] {
    let mut b = [0u8; REQUEST_LEN];
    b[0..4].copy_from_slice(&u32::from(m.dlid.to_be()).to_ne_bytes());
    b[4..8].copy_from_slice(&u32::from(m.slid.to_be()).to_ne_bytes());
    b[8..12].copy_from_slice(&m.dqp.to_be_bytes());
    b[12..16].copy_from_slice(&m.sqp.to_be_bytes());
    b[16..20].copy_from_slice(&m.status.to_be_bytes());
    b[24..32].copy_from_slice(&(MAD_SIZE as u64).to_be_bytes());
    b[32..].copy_from_slice(&m.mad);
    b
}

/// Reads a `struct sim_request`.
pub fn decode_request(b: &[u8]) -> Result<PeerMad, MsgError> {
    if b.len() != REQUEST_LEN {
        return Err(MsgError::Length {
            got: b.len(),
            want: REQUEST_LEN,
        });
    }
    let ne = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let be = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let mut mad = [0u8; MAD_SIZE];
    mad.copy_from_slice(&b[32..]);
    Ok(PeerMad {
        dlid: u16::from_be(ne(0) as u16),
        slid: u16::from_be(ne(4) as u16),
        dqp: be(8),
        sqp: be(12),
        status: be(16),
        mad,
    })
}

/// Why talking to ibsim failed.
#[derive(Debug)]
pub enum IbsimError {
    /// A socket operation (what was being done, and the error).
    Io(String, io::Error),
    /// ibsim answered something unreadable.
    Msg(MsgError),
    /// ibsim refused a control request (an unknown node, no free slot, a second SM…).
    Refused(CtlType),
    /// ibsim did not answer a control request in time.
    NoAnswer(CtlType),
}

impl core::fmt::Display for IbsimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IbsimError::Io(what, e) => write!(f, "ibsim: {what}: {e}"),
            IbsimError::Msg(e) => write!(f, "ibsim: {e}"),
            IbsimError::Refused(t) => write!(f, "ibsim refused {t:?}"),
            IbsimError::NoAnswer(t) => write!(f, "ibsim did not answer {t:?}"),
        }
    }
}

impl std::error::Error for IbsimError {}

fn abstract_addr(name: &str) -> io::Result<SocketAddr> {
    // ibsim's names carry their terminating NUL.
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    SocketAddr::from_abstract_name(&n)
}

/// A client attached to one HCA port of an ibsim fabric.
#[derive(Debug)]
pub struct IbsimClient {
    ctl: UnixDatagram,
    data: UnixDatagram,
    slot: u32,
    node: String,
    connected: bool,
}

/// How long a control request may take.
const CTL_TIMEOUT: Duration = Duration::from_secs(5);

impl IbsimClient {
    /// Attaches to `node` (a node name or description in ibsim's topology; empty: its first
    /// node) of the ibsim whose sockets are named `base`. `id` names our sockets and must be
    /// unique among the simulator's clients; `qp` is the QP number requests to our port must
    /// name to reach us (besides QP1 answers, which find us by their transaction id).
    pub fn connect(base: &str, node: &str, id: u32, qp: u32) -> Result<Self, IbsimError> {
        let io = |what: String| move |e| IbsimError::Io(what, e);
        let ctl_name = format!("{base}:ctl{id}");
        let ctl = UnixDatagram::bind_addr(&abstract_addr(&ctl_name).map_err(io(ctl_name.clone()))?)
            .map_err(io(format!("bind {ctl_name}")))?;
        let server = format!("{base}:ctl");
        ctl.connect_addr(&abstract_addr(&server).map_err(io(server.clone()))?)
            .map_err(io(format!("connect to {server} (is ibsim running here?)")))?;
        ctl.set_read_timeout(Some(CTL_TIMEOUT))
            .map_err(io("timeout".into()))?;
        // The data socket exists before CONNECT: ibsim connects to it then.
        let in_name = format!("{base}:in{id}");
        let data = UnixDatagram::bind_addr(&abstract_addr(&in_name).map_err(io(in_name.clone()))?)
            .map_err(io(format!("bind {in_name}")))?;
        let mut c = Self {
            ctl,
            data,
            slot: 0,
            node: String::new(),
            connected: false,
        };
        let reply = c.call(CtlType::Connect, &client_info(id, qp, false, node))?;
        let slot = u32::from_ne_bytes([reply[0], reply[1], reply[2], reply[3]]);
        if slot >= MAX_CLIENTS {
            return Err(IbsimError::Refused(CtlType::Connect));
        }
        c.slot = slot;
        c.connected = true;
        let end = reply[12..44].iter().position(|&b| b == 0).unwrap_or(32);
        c.node = String::from_utf8_lossy(&reply[12..12 + end]).into_owned();
        let out = format!("{base}:out{slot}");
        c.data
            .connect_addr(&abstract_addr(&out).map_err(io(out.clone()))?)
            .map_err(io(format!("connect to {out}")))?;
        Ok(c)
    }

    /// The slot ibsim gave us.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The node we are attached to, as ibsim names it.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn call(&mut self, kind: CtlType, payload: &[u8]) -> Result<[u8; CTL_DATA], IbsimError> {
        let req = Ctl::new(self.slot, kind, payload);
        self.ctl
            .send(&req.encode())
            .map_err(|e| IbsimError::Io(format!("{kind:?}"), e))?;
        let mut buf = [0u8; 2 * CTL_LEN];
        let n = match self.ctl.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(IbsimError::NoAnswer(kind))
            }
            Err(e) => return Err(IbsimError::Io(format!("{kind:?}"), e)),
        };
        let reply = Ctl::decode(&buf[..n]).map_err(IbsimError::Msg)?;
        if reply.kind == CtlType::Error {
            return Err(IbsimError::Refused(kind));
        }
        Ok(reply.data)
    }

    /// The attached port's PortInfo (its LID, SM LID, state, GID prefix…).
    pub fn port_info(&mut self) -> Result<PortInfo, IbsimError> {
        let d = self.call(CtlType::GetPortInfo, &[0])?;
        PortInfo::read_from_bytes(&d[..]).map_err(|_| {
            IbsimError::Msg(MsgError::Length {
                got: d.len(),
                want: 64,
            })
        })
    }

    /// The attached node's NodeInfo. Beware: ibsim's copy holds the node GUID as PortGUID;
    /// the port's GUID is the node GUID plus the port number (`ibsim/sim_net.c`).
    pub fn node_info(&mut self) -> Result<NodeInfo, IbsimError> {
        let d = self.call(CtlType::GetNodeInfo, &[])?;
        NodeInfo::read_from_prefix(&d[..])
            .map(|(n, _)| n)
            .map_err(|_| {
                IbsimError::Msg(MsgError::Length {
                    got: d.len(),
                    want: 40,
                })
            })
    }

    /// The attached port's P_Key table (network byte order in ibsim; zero entries left out).
    pub fn pkeys(&mut self) -> Result<Vec<u16>, IbsimError> {
        let d = self.call(CtlType::GetPkeys, &[])?;
        Ok(d.chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .filter(|k| k & 0x7fff != 0)
            .collect())
    }

    /// The port as the SM configured it, for [`crate::Sim::bridge_sm`].
    pub fn peer_port(&mut self) -> Result<PeerPort, IbsimError> {
        let pi = self.port_info()?;
        Ok(PeerPort {
            lid: pi.lid.get(),
            sm_lid: pi.master_sm_lid.get(),
            sm_sl: pi.sm_sl(),
            gid_prefix: pi.gid_prefix.get(),
            pkeys: self.pkeys()?,
        })
    }

    /// Sends a MAD from our port (`slid` 0: ibsim fills in our LID).
    pub fn send_mad(&self, m: &PeerMad) -> io::Result<()> {
        self.data.send(&encode_request(m)).map(|_| ())
    }

    /// The next MAD for us, waiting at most `timeout` (zero: only what is there). A datagram
    /// of the wrong size is an [`io::ErrorKind::InvalidData`] error naming the [`MsgError`].
    pub fn recv_mad(&self, timeout: Duration) -> io::Result<Option<PeerMad>> {
        if timeout.is_zero() {
            self.data.set_nonblocking(true)?;
        } else {
            self.data.set_nonblocking(false)?;
            self.data.set_read_timeout(Some(timeout))?;
        }
        let mut buf = [0u8; 2 * REQUEST_LEN];
        match self.data.recv(&mut buf) {
            Ok(n) => decode_request(&buf[..n])
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Detaches (frees the slot). Dropping the client does this too.
    pub fn disconnect(mut self) -> Result<(), IbsimError> {
        self.connected = false;
        self.call(CtlType::Disconnect, &[]).map(|_| ())
    }
}

impl Drop for IbsimClient {
    fn drop(&mut self) {
        if self.connected {
            let _ = self.ctl.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = self.call(CtlType::Disconnect, &[]);
        }
    }
}

impl MadPeer for IbsimClient {
    fn send(&mut self, m: &PeerMad) -> io::Result<()> {
        self.send_mad(m)
    }
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<PeerMad>> {
        self.recv_mad(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip_and_bad_ones_are_typed_errors() {
        let c = Ctl::new(3, CtlType::GetPortInfo, &[0]);
        let b = c.encode();
        assert_eq!(&b[..4], &SIM_MAGIC.to_ne_bytes());
        assert_eq!(Ctl::decode(&b), Ok(c));
        for n in [0, 1, 79, 81, 160] {
            let v = vec![0u8; n];
            assert_eq!(Ctl::decode(&v), Err(MsgError::Length { got: n, want: 80 }));
        }
        let mut bad = b;
        bad[0] ^= 1;
        assert!(matches!(Ctl::decode(&bad), Err(MsgError::BadMagic(_))));
        let mut bad = b;
        bad[8..12].copy_from_slice(&77u32.to_ne_bytes());
        assert_eq!(Ctl::decode(&bad), Err(MsgError::UnknownType(77)));
        // Payloads longer than the data area are cut, never overrun.
        assert_eq!(Ctl::new(0, CtlType::Connect, &[1; 100]).len, 64);
        let ci = client_info(1234, 0, true, "a-node-name-longer-than-32-bytes-in-all");
        assert_eq!(&ci[0..4], &1234u32.to_ne_bytes());
        assert_eq!(&ci[8..12], &1u32.to_ne_bytes());
        assert_eq!(ci[12 + 31], 0, "the name stays NUL-terminated");
    }

    #[test]
    fn requests_have_ibsims_byte_layout() {
        let mut m = PeerMad {
            dlid: 0x0102,
            slid: 0,
            dqp: 1,
            sqp: 0x0003_0405,
            status: 0,
            mad: [0; MAD_SIZE],
        };
        m.mad[0] = 1;
        m.mad[255] = 0xee;
        let b = encode_request(&m);
        assert_eq!(b.len(), 288);
        // htons(lid) in a host-order u32: the LID's bytes big-endian at the start.
        #[cfg(target_endian = "little")]
        assert_eq!(&b[0..4], &[0x01, 0x02, 0, 0]);
        assert_eq!(&b[8..16], &[0, 0, 0, 1, 0, 3, 4, 5]);
        assert_eq!(&b[24..32], &[0, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!((b[32], b[287]), (1, 0xee));
        assert_eq!(decode_request(&b), Ok(m));
        let mut bounced = b;
        bounced[16..20].copy_from_slice(&110u32.to_be_bytes());
        assert_eq!(decode_request(&bounced).unwrap().status, 110);
        for n in [0, 287, 289, 512] {
            assert_eq!(
                decode_request(&vec![0; n]),
                Err(MsgError::Length { got: n, want: 288 })
            );
        }
    }

    #[test]
    fn without_ibsim_connect_is_an_error_that_names_the_socket() {
        let e = IbsimClient::connect("isboot-no-such-ibsim", "Hca1", 424_242, 0).unwrap_err();
        assert!(e.to_string().contains("isboot-no-such-ibsim:ctl"), "{e}");
    }
}
