//! Strict decoding of every BHS a target may send (RFC 7143 §11.4, §11.6, §11.7.2, §11.8,
//! §11.9, §11.11, §11.13, §11.15, §11.17, §11.19).
//!
//! Decoding never panics: every malformed header gives a [`PduError`].

use zerocopy::FromBytes;

use super::bhs::{self, Opcode, BHS_LEN, FINAL};
use crate::serial::SerialNumber;

/// A malformed or unexpected header from the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PduError {
    /// Fewer than 48 bytes.
    Truncated,
    /// Byte 0 bits 7 or 6 set on a target PDU (reserved, RFC 7143 §11.2.1.1).
    ReservedOpcodeBits(u8),
    /// An opcode RFC 7143 does not define.
    UnknownOpcode(u8),
    /// An initiator opcode arriving from the target.
    NotATargetOpcode(u8),
    /// The F bit is clear on a PDU that always has it set.
    MissingFinal(Opcode),
    /// Both the overflow and underflow bits are set (RFC 7143 §11.4.5.1).
    BothResidualFlags(Opcode),
    /// Data-In with the S bit but without the F bit (RFC 7143 §11.7.3).
    StatusWithoutFinal,
    /// Login Response with both T and C set (RFC 7143 §11.13.2).
    ContinueWithTransit,
    /// A login stage code of 2, which is reserved (RFC 7143 §11.12.3).
    ReservedStage(u8),
    /// A data segment on a PDU that has none (R2T, TMF and Logout Responses).
    UnexpectedData(Opcode),
    /// An R2T asking for zero bytes (RFC 7143 §11.8.4).
    ZeroR2tLength,
    /// A Reject whose data segment cannot hold the rejected header (RFC 7143 §11.17.3).
    ShortReject,
}

impl core::fmt::Display for PduError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "malformed PDU from the target: {self:?}")
    }
}

/// StatSN, ExpCmdSN and MaxCmdSN as carried by most target PDUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnFields {
    /// StatSN, `None` where the field is reserved (Data-In without status).
    pub stat_sn: Option<SerialNumber>,
    /// ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
}

/// Login stage codes (RFC 7143 §11.12.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// SecurityNegotiation (0).
    Security,
    /// LoginOperationalNegotiation (1).
    Operational,
    /// FullFeaturePhase (3).
    FullFeature,
}

impl Stage {
    /// The 2-bit code.
    pub const fn code(self) -> u8 {
        match self {
            Stage::Security => 0,
            Stage::Operational => 1,
            Stage::FullFeature => 3,
        }
    }

    fn from_code(c: u8) -> Result<Self, PduError> {
        match c & 3 {
            0 => Ok(Stage::Security),
            1 => Ok(Stage::Operational),
            3 => Ok(Stage::FullFeature),
            other => Err(PduError::ReservedStage(other)),
        }
    }
}

/// A decoded, validated target header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetHeader {
    /// NOP-In.
    NopIn {
        /// LUN.
        lun: [u8; 8],
        /// Initiator Task Tag (0xffffffff when the target pings).
        itt: u32,
        /// Target Transfer Tag (not 0xffffffff when the target wants an answer).
        ttt: u32,
        /// Sequence numbers.
        sn: SnFields,
    },
    /// SCSI Response.
    ScsiResponse {
        /// Initiator Task Tag.
        itt: u32,
        /// iSCSI service response (0 = completed at target).
        response: u8,
        /// SCSI status.
        status: u8,
        /// Residual overflow (O).
        overflow: bool,
        /// Residual underflow (U).
        underflow: bool,
        /// ExpDataSN.
        exp_data_sn: SerialNumber,
        /// Residual Count.
        residual: u32,
        /// Sequence numbers.
        sn: SnFields,
    },
    /// Task Management Function Response.
    TaskMgmtResponse {
        /// Initiator Task Tag.
        itt: u32,
        /// Response code (RFC 7143 §11.6.1).
        response: u8,
        /// Sequence numbers.
        sn: SnFields,
    },
    /// Login Response.
    LoginResponse {
        /// T bit.
        transit: bool,
        /// C bit.
        cont: bool,
        /// Current stage.
        csg: Stage,
        /// Next stage.
        nsg: Stage,
        /// Version-max.
        version_max: u8,
        /// Version-active.
        version_active: u8,
        /// ISID.
        isid: [u8; 6],
        /// TSIH.
        tsih: u16,
        /// Initiator Task Tag.
        itt: u32,
        /// Sequence numbers.
        sn: SnFields,
        /// Status-Class.
        status_class: u8,
        /// Status-Detail.
        status_detail: u8,
    },
    /// Text Response.
    TextResponse {
        /// F bit.
        final_: bool,
        /// C bit.
        cont: bool,
        /// Initiator Task Tag.
        itt: u32,
        /// Target Transfer Tag.
        ttt: u32,
        /// Sequence numbers.
        sn: SnFields,
    },
    /// SCSI Data-In.
    DataIn {
        /// F bit.
        final_: bool,
        /// A bit (acknowledge request; ERL > 0 only).
        ack: bool,
        /// SCSI status when the S bit is set.
        status: Option<u8>,
        /// O bit (meaningful with S).
        overflow: bool,
        /// U bit (meaningful with S).
        underflow: bool,
        /// LUN.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: u32,
        /// Target Transfer Tag.
        ttt: u32,
        /// DataSN.
        data_sn: SerialNumber,
        /// Buffer Offset.
        buffer_offset: u32,
        /// Residual Count (meaningful with S).
        residual: u32,
        /// Sequence numbers (StatSN only with S).
        sn: SnFields,
    },
    /// Logout Response.
    LogoutResponse {
        /// Response (RFC 7143 §11.15.1).
        response: u8,
        /// Initiator Task Tag.
        itt: u32,
        /// Time2Wait in seconds.
        time2wait: u16,
        /// Time2Retain in seconds.
        time2retain: u16,
        /// Sequence numbers.
        sn: SnFields,
    },
    /// Ready To Transfer.
    R2t {
        /// LUN.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: u32,
        /// Target Transfer Tag.
        ttt: u32,
        /// R2TSN.
        r2t_sn: SerialNumber,
        /// Buffer Offset.
        buffer_offset: u32,
        /// Desired Data Transfer Length (never 0).
        desired_len: u32,
        /// Sequence numbers.
        sn: SnFields,
    },
    /// Asynchronous Message.
    AsyncMessage {
        /// LUN.
        lun: [u8; 8],
        /// AsyncEvent (RFC 7143 §11.9.1).
        event: u8,
        /// AsyncVCode.
        vcode: u8,
        /// Parameter1.
        parameter1: u16,
        /// Parameter2.
        parameter2: u16,
        /// Parameter3.
        parameter3: u16,
        /// Sequence numbers.
        sn: SnFields,
    },
    /// Reject.
    Reject {
        /// Reason (RFC 7143 §11.17.1).
        reason: u8,
        /// DataSN/R2TSN.
        data_sn: u32,
        /// Sequence numbers.
        sn: SnFields,
    },
}

/// A header with its framing: lengths of the AHS and of the data segment that follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The header.
    pub header: TargetHeader,
    /// AHS length in bytes.
    pub ahs_len: usize,
    /// DataSegmentLength in bytes (without padding).
    pub data_len: u32,
}

fn sn(stat: u32, exp: u32, max: u32) -> SnFields {
    SnFields {
        stat_sn: Some(SerialNumber(stat)),
        exp_cmd_sn: SerialNumber(exp),
        max_cmd_sn: SerialNumber(max),
    }
}

/// AHS length and data segment length of any BHS.
pub fn framing(b: &[u8; BHS_LEN]) -> (usize, u32) {
    (usize::from(b[4]) * 4, bhs::dsl_from([b[5], b[6], b[7]]))
}

/// Decode and validate a BHS received from a target.
pub fn decode_target_bhs(b: &[u8]) -> Result<Decoded, PduError> {
    let b: &[u8; BHS_LEN] = b
        .get(..BHS_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(PduError::Truncated)?;
    if b[0] & 0xc0 != 0 {
        return Err(PduError::ReservedOpcodeBits(b[0]));
    }
    let op = Opcode(b[0] & 0x3f);
    let flags = b[1];
    let final_ = flags & FINAL != 0;
    let (ahs_len, data_len) = framing(b);
    let need_final = |op: Opcode| {
        if final_ {
            Ok(())
        } else {
            Err(PduError::MissingFinal(op))
        }
    };
    let no_data = |op: Opcode| {
        if data_len == 0 {
            Ok(())
        } else {
            Err(PduError::UnexpectedData(op))
        }
    };
    let header = match op {
        Opcode::NOP_IN => {
            need_final(op)?;
            let h = bhs::NopIn::read_from_bytes(b).map_err(|_| PduError::Truncated)?;
            TargetHeader::NopIn {
                lun: h.lun,
                itt: h.itt.get(),
                ttt: h.ttt.get(),
                sn: sn(h.stat_sn.get(), h.exp_cmd_sn.get(), h.max_cmd_sn.get()),
            }
        }
        Opcode::SCSI_RESPONSE => {
            need_final(op)?;
            let h = bhs::ScsiResponse::read_from_bytes(b).map_err(|_| PduError::Truncated)?;
            // RFC 7143 §11.4.5.1: o/u and O/U are mutually exclusive pairs.
            if flags & 0x18 == 0x18 || flags & 0x06 == 0x06 {
                return Err(PduError::BothResidualFlags(op));
            }
            TargetHeader::ScsiResponse {
                itt: h.itt.get(),
                response: h.response,
                status: h.status,
                overflow: flags & 0x04 != 0,
                underflow: flags & 0x02 != 0,
                exp_data_sn: SerialNumber(h.exp_data_sn.get()),
                residual: h.residual_count.get(),
                sn: sn(h.stat_sn.get(), h.exp_cmd_sn.get(), h.max_cmd_sn.get()),
            }
        }
        Opcode::TASK_MGMT_RESPONSE => {
            need_final(op)?;
            no_data(op)?;
            let h = bhs::TaskMgmtResponse::read_from_bytes(b).map_err(|_| PduError::Truncated)?;
            TargetHeader::TaskMgmtResponse {
                itt: h.itt.get(),
                response: h.response,
                sn: sn(h.stat_sn.get(), h.exp_cmd_sn.get(), h.max_cmd_sn.get()),
            }
        }
        Opcode::LOGIN_RESPONSE => {
            let h = bhs::LoginResponse::read_from_bytes(b).map_err(|_| PduError::Truncated)?;
            let transit = flags & 0x80 != 0;
            let cont = flags & 0x40 != 0;
            if transit && cont {
                return Err(PduError::ContinueWithTransit);
            }
            TargetHeader::LoginResponse {
                transit,
                cont,
                csg: Stage::from_code(flags >> 2)?,
                nsg: if transit {
                    Stage::from_code(flags)?
                } else {
                    Stage::from_code(flags >> 2)?
                },
                version_max: h.version_max,
                version_active: h.version_active,
                isid: h.isid,
                tsih: h.tsih.get(),
                itt: h.itt.get(),
                sn: sn(h.stat_sn.get(), h.exp_cmd_sn.get(), h.max_cmd_sn.get()),
                status_class: h.status_class,
                status_detail: h.status_detail,
            }
        }
        Opcode::TEXT_RESPONSE => {
            let h = bhs::TextResponse::read_from_bytes(b).map_err(|_| PduError::Truncated)?;
            let cont = flags & 0x40 != 0;
            if final_ && cont {
                // RFC 7143 §11.11.2: C and F must not both be set.
                return Err(PduError::ContinueWithTransit);
            }
            TargetHeader::TextResponse {
                final_,
                cont,
                itt: h.itt.get(),
                ttt: h.ttt.get(),
                sn: sn(h.stat_sn.get(), h.exp_cmd_sn.get(), h.max_cmd_sn.get()),
            }
        }
        Opcode::DATA_IN => {
            let h = bhs::DataIn::read_from_bytes(b).map_err(|_| PduError::Truncated)?;
            let s = flags & 0x01 != 0;
            if s && !final_ {
                return Err(PduError::StatusWithoutFinal);
            }
            if s && flags & 0x06 == 0x06 {
                return Err(PduError::BothResidualFlags(op));
            }
            let mut f = sn(h.stat_sn.get(), h.exp_cmd_sn.get(), h.max_cmd_sn.get());
            if !s {
                f.stat_sn = None;
            }
            TargetHeader::DataIn {
                final_,
                ack: flags & 0x40 != 0,
                status: if s { Some(h.status) } else { None },
                overflow: s && flags & 0x04 != 0,
                underflow: s && flags & 0x02 != 0,
                lun: h.lun,
                itt: h.itt.get(),
                ttt: h.ttt.get(),
                data_sn: SerialNumber(h.data_sn.get()),
                buffer_offset: h.buffer_offset.get(),
                residual: h.residual_count.get(),
                sn: f,
            }
        }
        Opcode::LOGOUT_RESPONSE => {
            need_final(op)?;
            no_data(op)?;
            let h = bhs::LogoutResponse::read_from_bytes(b).map_err(|_| PduError::Truncated)?;
            TargetHeader::LogoutResponse {
                response: h.response,
                itt: h.itt.get(),
                time2wait: h.time2wait.get(),
                time2retain: h.time2retain.get(),
                sn: sn(h.stat_sn.get(), h.exp_cmd_sn.get(), h.max_cmd_sn.get()),
            }
        }
        Opcode::R2T => {
            need_final(op)?;
            no_data(op)?;
            let h = bhs::R2t::read_from_bytes(b).map_err(|_| PduError::Truncated)?;
            if h.desired_data_transfer_len.get() == 0 {
                return Err(PduError::ZeroR2tLength);
            }
            TargetHeader::R2t {
                lun: h.lun,
                itt: h.itt.get(),
                ttt: h.ttt.get(),
                r2t_sn: SerialNumber(h.r2t_sn.get()),
                buffer_offset: h.buffer_offset.get(),
                desired_len: h.desired_data_transfer_len.get(),
                sn: sn(h.stat_sn.get(), h.exp_cmd_sn.get(), h.max_cmd_sn.get()),
            }
        }
        Opcode::ASYNC_MESSAGE => {
            need_final(op)?;
            let h = bhs::AsyncMessage::read_from_bytes(b).map_err(|_| PduError::Truncated)?;
            TargetHeader::AsyncMessage {
                lun: h.lun,
                event: h.async_event,
                vcode: h.async_vcode,
                parameter1: h.parameter1.get(),
                parameter2: h.parameter2.get(),
                parameter3: h.parameter3.get(),
                sn: sn(h.stat_sn.get(), h.exp_cmd_sn.get(), h.max_cmd_sn.get()),
            }
        }
        Opcode::REJECT => {
            need_final(op)?;
            if (data_len as usize) < BHS_LEN {
                return Err(PduError::ShortReject);
            }
            let h = bhs::Reject::read_from_bytes(b).map_err(|_| PduError::Truncated)?;
            TargetHeader::Reject {
                reason: h.reason,
                data_sn: h.data_sn.get(),
                sn: sn(h.stat_sn.get(), h.exp_cmd_sn.get(), h.max_cmd_sn.get()),
            }
        }
        Opcode::NOP_OUT
        | Opcode::SCSI_COMMAND
        | Opcode::TASK_MGMT_REQUEST
        | Opcode::LOGIN_REQUEST
        | Opcode::TEXT_REQUEST
        | Opcode::DATA_OUT
        | Opcode::LOGOUT_REQUEST
        | Opcode::SNACK_REQUEST => return Err(PduError::NotATargetOpcode(op.0)),
        other => return Err(PduError::UnknownOpcode(other.0)),
    };
    Ok(Decoded {
        header,
        ahs_len,
        data_len,
    })
}

impl TargetHeader {
    /// The sequence-number fields of this PDU.
    pub fn sn(&self) -> SnFields {
        match *self {
            TargetHeader::NopIn { sn, .. }
            | TargetHeader::ScsiResponse { sn, .. }
            | TargetHeader::TaskMgmtResponse { sn, .. }
            | TargetHeader::LoginResponse { sn, .. }
            | TargetHeader::TextResponse { sn, .. }
            | TargetHeader::DataIn { sn, .. }
            | TargetHeader::LogoutResponse { sn, .. }
            | TargetHeader::R2t { sn, .. }
            | TargetHeader::AsyncMessage { sn, .. }
            | TargetHeader::Reject { sn, .. } => sn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    fn data_in(flags: u8) -> [u8; 48] {
        let mut h = bhs::DataIn {
            opcode: 0x25,
            flags,
            ..Default::default()
        };
        h.itt.set(7);
        h.data_sn.set(3);
        h.buffer_offset.set(4096);
        h.stat_sn.set(99);
        h.data_segment_len = bhs::dsl_to(512);
        let mut out = [0u8; 48];
        out.copy_from_slice(h.as_bytes());
        out
    }

    #[test]
    fn data_in_decodes_and_validates() {
        let d = decode_target_bhs(&data_in(0x00)).unwrap();
        assert_eq!(d.data_len, 512);
        match d.header {
            TargetHeader::DataIn {
                itt,
                data_sn,
                buffer_offset,
                status,
                sn,
                ..
            } => {
                assert_eq!((itt, data_sn.0, buffer_offset, status), (7, 3, 4096, None));
                assert_eq!(sn.stat_sn, None);
            }
            other => panic!("{other:?}"),
        }
        let d = decode_target_bhs(&data_in(0x81)).unwrap();
        assert!(matches!(
            d.header,
            TargetHeader::DataIn {
                status: Some(0),
                sn: SnFields {
                    stat_sn: Some(SerialNumber(99)),
                    ..
                },
                ..
            }
        ));
        assert_eq!(
            decode_target_bhs(&data_in(0x01)),
            Err(PduError::StatusWithoutFinal)
        );
        assert_eq!(
            decode_target_bhs(&data_in(0x87)),
            Err(PduError::BothResidualFlags(Opcode::DATA_IN))
        );
    }

    #[test]
    fn rejects_bad_opcodes_and_flags() {
        let mut b = [0u8; 48];
        b[0] = 0x01;
        assert_eq!(decode_target_bhs(&b), Err(PduError::NotATargetOpcode(1)));
        b[0] = 0x3e;
        assert_eq!(decode_target_bhs(&b), Err(PduError::UnknownOpcode(0x3e)));
        b[0] = 0x60;
        assert_eq!(
            decode_target_bhs(&b),
            Err(PduError::ReservedOpcodeBits(0x60))
        );
        b[0] = 0x21;
        assert_eq!(
            decode_target_bhs(&b),
            Err(PduError::MissingFinal(Opcode::SCSI_RESPONSE))
        );
        b[0] = 0x31;
        b[1] = 0x80;
        assert_eq!(decode_target_bhs(&b), Err(PduError::ZeroR2tLength));
        b[7] = 4;
        assert_eq!(
            decode_target_bhs(&b),
            Err(PduError::UnexpectedData(Opcode::R2T))
        );
        b[0] = 0x23;
        b[1] = 0xc0;
        assert_eq!(decode_target_bhs(&b), Err(PduError::ContinueWithTransit));
        b[1] = 0x82; // T, CSG 0, NSG 2
        assert_eq!(decode_target_bhs(&b), Err(PduError::ReservedStage(2)));
        b[1] = 0x87; // T, CSG 1, NSG 3
        let d = decode_target_bhs(&b).unwrap();
        assert!(matches!(
            d.header,
            TargetHeader::LoginResponse {
                transit: true,
                csg: Stage::Operational,
                nsg: Stage::FullFeature,
                ..
            }
        ));
        assert_eq!(decode_target_bhs(&b[..47]), Err(PduError::Truncated));
    }
}
