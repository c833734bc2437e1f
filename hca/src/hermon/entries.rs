//! Decoding of CQEs and EQEs as the driver sees them (layouts in [`super::prm::cqe`] and
//! [`super::prm::eqe`]). Pure functions over
//! the 32 bytes the device wrote, so they can be fuzzed; they never panic.

use super::prm::{self, Prm};
use crate::verbs::{Event, PortNum, WcStatus};
use crate::wire::{Lid, Qpn};

/// A decoded completion queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cqe {
    /// Local QPN.
    pub qpn: u32,
    /// A send completion (else receive).
    pub send: bool,
    /// Status: success, or the error syndrome of an error CQE.
    pub status: WcStatus,
    /// Bytes received including the 40-byte GRH area (receive only).
    pub byte_cnt: u32,
    /// Source QPN.
    pub src_qpn: Qpn,
    /// Source LID.
    pub slid: Lid,
    /// Service level.
    pub sl: u8,
    /// A GRH was received.
    pub grh: bool,
    /// WQE counter.
    pub wqe_counter: u16,
}

/// Decodes the CQE in `bytes` if software owns it (`owner` bit equal to `sw_owner`). Short
/// input decodes as not owned.
pub fn decode_cqe(bytes: &[u8], sw_owner: bool) -> Option<Cqe> {
    if bytes.len() < prm::cqe::SIZE {
        return None;
    }
    let c = Prm::<8>::from_be(bytes);
    if c.get(prm::cqe::OWNER) != u32::from(sw_owner) {
        return None;
    }
    let opcode = c.get(prm::cqe::OPCODE);
    let is_error = opcode == prm::cqe::OPCODE_ERROR || opcode == prm::cqe::OPCODE_ERROR_SEND;
    // Error CQEs: 0x1f is always a send; for 0x1e the S_R bit tells (§2.5). iPXE compares the
    // 5-bit field with 0xfe/0xff and so never sees these.
    let send = opcode == prm::cqe::OPCODE_ERROR_SEND || c.get(prm::cqe::S_R) == 1;
    let status = if is_error {
        match WcStatus(c.get(prm::cqe::SYNDROME) as u8) {
            // An error CQE is never a success, whatever its syndrome says.
            WcStatus::SUCCESS => WcStatus::LOCAL_QP_OP,
            s => s,
        }
    } else {
        WcStatus::SUCCESS
    };
    Some(Cqe {
        qpn: c.get(prm::cqe::QPN),
        send,
        status,
        byte_cnt: c.get(prm::cqe::BYTE_CNT),
        src_qpn: Qpn(c.get(prm::cqe::SRQ_RQPN)),
        slid: Lid(c.get(prm::cqe::SLID) as u16),
        sl: c.get(prm::cqe::SL) as u8,
        grh: c.get(prm::cqe::G) == 1,
        wqe_counter: c.get(prm::cqe::WQE_COUNTER) as u16,
    })
}

/// Decodes the EQE in `bytes` if software owns it.
pub fn decode_eqe(bytes: &[u8], sw_owner: bool) -> Option<Event> {
    if bytes.len() < prm::eqe::SIZE {
        return None;
    }
    let e = Prm::<8>::from_be(bytes);
    if e.get(prm::eqe::OWNER) != u32::from(sw_owner) {
        return None;
    }
    let ty = e.get(prm::eqe::EVENT_TYPE);
    let sub = e.get(prm::eqe::EVENT_SUB_TYPE);
    Some(match ty {
        prm::eqe::TYPE_PORT_STATE_CHANGE => Event::PortStateChange {
            port: PortNum(e.get(prm::eqe::PSC_PORT) as u8),
            up: sub == prm::eqe::SUBTYPE_PORT_ACTIVE,
        },
        // Linux `handle_port_mgmt_change_event`: a PortInfo change with ClientReregister in
        // `changed_attr` is `IB_EVENT_CLIENT_REREGISTER`.
        prm::eqe::TYPE_PORT_MGMT_CHANGE
            if sub == prm::eqe::SUBTYPE_PMC_PORT_INFO && e.get(prm::eqe::PMC_CLIENT_REREG) != 0 =>
        {
            Event::ClientReregister {
                port: PortNum(e.get(prm::eqe::PMC_PORT) as u8),
            }
        }
        prm::eqe::TYPE_PORT_MGMT_CHANGE => Event::PortManagementChange {
            port: PortNum(e.get(prm::eqe::PMC_PORT) as u8),
        },
        prm::eqe::TYPE_CQ_ERROR => Event::CqError {
            cqn: e.get(prm::eqe::CQ_ERROR_CQN),
        },
        _ => Event::Other {
            event_type: ty as u8,
            sub_type: sub as u8,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cqe_bytes(f: impl FnOnce(&mut Prm<8>)) -> [u8; 32] {
        let mut p = Prm::<8>::default();
        f(&mut p);
        let mut b = [0u8; 32];
        p.write_be(&mut b);
        b
    }

    #[test]
    fn ownership_parity() {
        let b = cqe_bytes(|p| p.set(prm::cqe::OWNER, 1));
        assert!(decode_cqe(&b, false).is_none());
        assert!(decode_cqe(&b, true).is_some());
        assert!(decode_cqe(&b[..31], true).is_none());
    }

    #[test]
    fn error_cqes_are_detected_in_both_encodings() {
        // mlx4 style: 0x1e with S_R giving the direction.
        let b = cqe_bytes(|p| {
            p.set(prm::cqe::OPCODE, 0x1e);
            p.set(prm::cqe::SYNDROME, 0x01);
        });
        let c = decode_cqe(&b, false).unwrap();
        assert_eq!((c.send, c.status), (false, WcStatus::LOCAL_LENGTH));
        let b = cqe_bytes(|p| {
            p.set(prm::cqe::OPCODE, 0x1e);
            p.set(prm::cqe::S_R, 1);
            p.set(prm::cqe::SYNDROME, 0x04);
        });
        let c = decode_cqe(&b, false).unwrap();
        assert_eq!((c.send, c.status), (true, WcStatus::LOCAL_PROTECTION));
        // PRM 0xff truncated to 5 bits: a send error even without S_R.
        let b = cqe_bytes(|p| {
            p.set(prm::cqe::OPCODE, 0x1f);
            p.set(prm::cqe::SYNDROME, 0x05);
        });
        let c = decode_cqe(&b, false).unwrap();
        assert_eq!((c.send, c.status), (true, WcStatus::WR_FLUSHED));
        // An error CQE with syndrome 0 is still an error.
        let b = cqe_bytes(|p| p.set(prm::cqe::OPCODE, 0x1e));
        assert!(!decode_cqe(&b, false).unwrap().status.is_ok());
        // A normal receive.
        let b = cqe_bytes(|p| {
            p.set(prm::cqe::OPCODE, prm::cqe::OPCODE_RECV_SEND);
            p.set(prm::cqe::BYTE_CNT, 44);
            p.set(prm::cqe::G, 1);
        });
        let c = decode_cqe(&b, false).unwrap();
        assert!(c.status.is_ok() && !c.send && c.grh);
        assert_eq!(c.byte_cnt, 44);
    }

    #[test]
    fn eqes() {
        let b = cqe_bytes(|p| {
            p.set(prm::eqe::EVENT_TYPE, 0x09);
            p.set(prm::eqe::EVENT_SUB_TYPE, 0x04);
            p.set(prm::eqe::PSC_PORT, 2);
        });
        assert_eq!(
            decode_eqe(&b, false),
            Some(Event::PortStateChange {
                port: PortNum(2),
                up: true
            })
        );
        let b = cqe_bytes(|p| {
            p.set(prm::eqe::EVENT_TYPE, 0x1d);
            p.set(prm::eqe::PMC_PORT, 1);
        });
        assert_eq!(
            decode_eqe(&b, false),
            Some(Event::PortManagementChange { port: PortNum(1) })
        );
        let b = cqe_bytes(|p| {
            p.set(prm::eqe::EVENT_TYPE, 0x1d);
            p.set(prm::eqe::EVENT_SUB_TYPE, 0x15);
            p.set(prm::eqe::PMC_PORT, 2);
            p.set(prm::eqe::PMC_CLIENT_REREG, 1);
        });
        assert_eq!(
            decode_eqe(&b, false),
            Some(Event::ClientReregister { port: PortNum(2) })
        );
        // A LID change alone (bit 2) stays a management change.
        let b = cqe_bytes(|p| {
            p.set(prm::eqe::EVENT_TYPE, 0x1d);
            p.set(prm::eqe::EVENT_SUB_TYPE, 0x15);
            p.set(prm::eqe::PMC_PORT, 2);
            p.set(prm::eqe::PMC_CLIENT_REREG, 0);
        });
        assert_eq!(
            decode_eqe(&b, false),
            Some(Event::PortManagementChange { port: PortNum(2) })
        );
        let b = cqe_bytes(|p| {
            p.set(prm::eqe::EVENT_TYPE, 0x04);
            p.set(prm::eqe::CQ_ERROR_CQN, 0x86);
        });
        assert_eq!(decode_eqe(&b, false), Some(Event::CqError { cqn: 0x86 }));
        let b = cqe_bytes(|p| p.set(prm::eqe::EVENT_TYPE, 0x33));
        assert_eq!(
            decode_eqe(&b, false),
            Some(Event::Other {
                event_type: 0x33,
                sub_type: 0
            })
        );
    }
}
