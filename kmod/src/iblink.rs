//! The seam between the module's own InfiniBand link (the `hca` driver and IPoIB on the HCA the
//! boot ROM used) and the kernel's interface to it (an `IFT_INFINIBAND` ifnet on FreeBSD's
//! InfiniBand link layer, `sys/net/if_infiniband.c`).
//!
//! The kernel side speaks FreeBSD's framing: every frame starts with the 24-byte
//! `struct infiniband_header` of `sys/net/infiniband.h` — a 20-byte IPoIB hardware address
//! (RFC 4391 §9.1.1: a reserved/flags byte, the 24-bit QPN, the 16-byte port GID), the
//! big-endian EtherType and two reserved bytes. On transmit the address is the destination (as
//! `infiniband_output` fills it); on receive it is the destination too (as `infiniband_input`
//! reads it to classify broadcast and multicast). The link side turns that into the 4-byte IPoIB
//! encapsulation header (RFC 4391 §6) and a UD send to an address handle it resolves itself.
//!
//! Everything here is portable: time is passed in, nothing waits without a bound.

use core::fmt;
use core::net::Ipv4Addr;

use clock::Instant;

/// Length of an IPoIB hardware address (`INFINIBAND_ADDR_LEN`).
pub const IB_ADDR_LEN: usize = 20;
/// Length of FreeBSD's `struct infiniband_header` (address, EtherType, reserved).
pub const IB_HDR_LEN: usize = 24;

/// An IPoIB hardware address as the kernel sees it.
pub type IbHwAddr = [u8; IB_ADDR_LEN];

/// Why a frame was not sent. Each is counted as an output error by the kernel side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// Shorter than the 24-byte header, or longer than the link's MTU allows.
    BadFrame,
    /// The link is down (no ACTIVE port).
    LinkDown,
    /// No room: the send queue or the queue of packets waiting for a path is full.
    NoBuffers,
    /// The device refused the send.
    Device,
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TxError::BadFrame => "malformed frame",
            TxError::LinkDown => "link down",
            TxError::NoBuffers => "no buffers",
            TxError::Device => "device error",
        })
    }
}

/// What changed on the link since the last poll; the kernel side reports it
/// (`if_link_state_change`, a console line, a new link-layer address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// The port carrying the interface is ACTIVE again.
    Up,
    /// No port can carry the interface now.
    Down,
    /// The interface moved from port `from` to port `to` (runtime failover): the hardware
    /// address is now `hwaddr`; the link side has re-joined the broadcast group and announced
    /// the interface's IPv4 address with a gratuitous ARP.
    Moved {
        /// The port that died.
        from: u8,
        /// The port that carries the interface now.
        to: u8,
        /// The interface's new hardware address (the new port's GID).
        hwaddr: IbHwAddr,
    },
    /// The port's LID changed (SM restart or re-sweep): paths were flushed and re-resolved.
    LidChanged {
        /// The new LID.
        lid: u16,
    },
}

/// The link the module's IPoIB interface runs over.
pub trait IbLink {
    /// The interface's hardware address (flags/QPN and the port's GID).
    fn hwaddr(&self) -> IbHwAddr;
    /// The partition's broadcast address (RFC 4391 §4: the broadcast MGID with QPN 0xffffff).
    fn broadcast(&self) -> IbHwAddr;
    /// The IP MTU (2044 on a 2048-byte IB MTU, RFC 4391 §5).
    fn ip_mtu(&self) -> u32;
    /// The link's data rate in bits per second (for `if_baudrate`).
    fn baudrate(&self) -> u64;
    /// The port carrying the interface.
    fn port(&self) -> u8;
    /// Sends one frame that starts with the 24-byte `infiniband_header`.
    fn transmit(&mut self, frame: &[u8], now: Instant) -> Result<(), TxError>;
    /// Runs completions, timers and port checks. Each received packet goes to `rx` as a frame
    /// with the 24-byte header (destination address, EtherType); each change to `event`.
    fn poll(&mut self, now: Instant, rx: &mut dyn FnMut(&[u8]), event: &mut dyn FnMut(LinkEvent));
    /// When `poll` next has timer work, if any (receives are noticed by polling regardless).
    fn poll_at(&self) -> Option<Instant>;
    /// The interface's IPv4 address, announced by gratuitous ARP after a move.
    fn set_ipv4(&mut self, addr: Ipv4Addr, prefix: u8);
    /// Leaves the group and closes the device so that nothing is left half-initialised.
    fn shutdown(&mut self);
}
