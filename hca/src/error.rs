//! Errors of the `hca` layer.

use crate::hermon::cmd::{FwStatus, Opcode};
use crate::verbs::PortNum;
use crate::wire::mad::MadStatus;
use crate::wire::smp::PortState;
use crate::wire::WireError;

/// Everything the driver and the verbs API can report. `Copy`, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The PCI id is not one this crate drives (or its family has no driver yet).
    Unsupported {
        /// PCI vendor id.
        vendor: u16,
        /// PCI device id.
        device: u16,
    },
    /// A BAR is mapped shorter than the driver needs (e.g. fewer than 129 UAR pages).
    BarTooSmall {
        /// BAR index.
        bar: u8,
        /// Bytes needed.
        needed: usize,
    },
    /// After a reset the device did not answer on PCI config space within the bound.
    ResetTimeout,
    /// A firmware command did not complete within its timeout.
    CmdTimeout(Opcode),
    /// A firmware command completed with a non-zero status.
    Firmware {
        /// The command.
        opcode: Opcode,
        /// The status the firmware returned.
        status: FwStatus,
    },
    /// The device reported something the driver cannot use (bad capability, short reply).
    BadDevice,
    /// DMA memory could not be allocated.
    NoMemory,
    /// An access fell outside a DMA buffer (a driver bug, reported instead of panicking).
    DmaOutOfBounds,
    /// A resource table is full (QPs, CQs, MTT entries, multicast group entries).
    NoResources,
    /// An argument is out of range (bad port, unknown QP/CQ, payload too long, ...).
    InvalidArgument,
    /// The object is not in a state that allows the operation (e.g. sending on a QP in INIT).
    InvalidState,
    /// The send queue is full; poll the CQ and retry.
    QueueFull,
    /// A port did not reach ACTIVE before its bounded wait ended.
    PortNotActive {
        /// Port.
        port: PortNum,
        /// Last state seen. INIT means the physical link is up but no subnet manager configured
        /// the port.
        state: PortState,
    },
    /// A VPI port is configured for Ethernet (QUERY_PORT reports Ethernet and not InfiniBand);
    /// this driver runs InfiniBand only.
    PortIsEthernet {
        /// Port.
        port: PortNum,
    },
    /// Two multicast GIDs hash to the same MCG entry.
    McgCollision,
    /// A MAD answer carried a non-zero status.
    MadStatus(MadStatus),
    /// No MAD answer arrived after all retries.
    MadTimeout,
    /// A reply could not be parsed.
    Wire(WireError),
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Error::Wire(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::PortNotActive { port, state } if *state == PortState::INIT => write!(
                f,
                "port {} stays INIT: link is up but no subnet manager configured it",
                port.0
            ),
            Error::PortNotActive { port, state } if *state == PortState::DOWN => write!(
                f,
                "port {} stays DOWN: no physical link (cable, switch port, or the peer is off)",
                port.0
            ),
            Error::PortNotActive { port, state } if *state == PortState::ARMED => write!(
                f,
                "port {} stays ARMED: the subnet manager did not activate it",
                port.0
            ),
            Error::PortNotActive { port, state } => {
                write!(f, "port {} not ACTIVE (state {})", port.0, state.0)
            }
            Error::Firmware { opcode, status } => {
                write!(
                    f,
                    "firmware command {opcode:?} failed with status {status:?}"
                )
            }
            Error::CmdTimeout(op) => write!(f, "firmware command {op:?} timed out"),
            Error::PortIsEthernet { port } => write!(
                f,
                "port {} is configured as Ethernet (VPI), not InfiniBand",
                port.0
            ),
            e => write!(f, "{e:?}"),
        }
    }
}
