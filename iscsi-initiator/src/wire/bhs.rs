//! Basic Header Segment layouts (RFC 7143 §11.2), one zerocopy struct per opcode.
//!
//! All multi-byte fields are big-endian ("network order", RFC 7143 §11.1). Every struct is 48
//! bytes and checked so.

// zerocopy 0.8's derives emit per-field helper types without `Debug`; every type written in
// this module derives `Debug`.
#![allow(missing_debug_implementations)]

use static_assertions::const_assert_eq;
use zerocopy::byteorder::big_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, Unaligned};

/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;

/// The 6-bit opcode (RFC 7143 §11.2.1.2). Numbers from the wire are never put in a bare enum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Opcode(pub u8);

impl Opcode {
    // Initiator opcodes.
    /// NOP-Out.
    pub const NOP_OUT: Opcode = Opcode(0x00);
    /// SCSI Command.
    pub const SCSI_COMMAND: Opcode = Opcode(0x01);
    /// SCSI Task Management Function Request.
    pub const TASK_MGMT_REQUEST: Opcode = Opcode(0x02);
    /// Login Request.
    pub const LOGIN_REQUEST: Opcode = Opcode(0x03);
    /// Text Request.
    pub const TEXT_REQUEST: Opcode = Opcode(0x04);
    /// SCSI Data-Out.
    pub const DATA_OUT: Opcode = Opcode(0x05);
    /// Logout Request.
    pub const LOGOUT_REQUEST: Opcode = Opcode(0x06);
    /// SNACK Request.
    pub const SNACK_REQUEST: Opcode = Opcode(0x10);
    // Target opcodes.
    /// NOP-In.
    pub const NOP_IN: Opcode = Opcode(0x20);
    /// SCSI Response.
    pub const SCSI_RESPONSE: Opcode = Opcode(0x21);
    /// SCSI Task Management Function Response.
    pub const TASK_MGMT_RESPONSE: Opcode = Opcode(0x22);
    /// Login Response.
    pub const LOGIN_RESPONSE: Opcode = Opcode(0x23);
    /// Text Response.
    pub const TEXT_RESPONSE: Opcode = Opcode(0x24);
    /// SCSI Data-In.
    pub const DATA_IN: Opcode = Opcode(0x25);
    /// Logout Response.
    pub const LOGOUT_RESPONSE: Opcode = Opcode(0x26);
    /// Ready To Transfer.
    pub const R2T: Opcode = Opcode(0x31);
    /// Asynchronous Message.
    pub const ASYNC_MESSAGE: Opcode = Opcode(0x32);
    /// Reject.
    pub const REJECT: Opcode = Opcode(0x3f);
}

/// Byte 0 bit 6: the immediate-delivery bit of initiator PDUs (RFC 7143 §11.2.1.1).
pub const IMMEDIATE: u8 = 0x40;
/// Byte 1 bit 7: the Final bit.
pub const FINAL: u8 = 0x80;
/// The reserved tag value (RFC 7143 §11.2.1.8 and elsewhere).
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// Decode the 24-bit DataSegmentLength.
pub const fn dsl_from(b: [u8; 3]) -> u32 {
    ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32
}

/// Encode the 24-bit DataSegmentLength (the caller keeps it below 2^24).
pub const fn dsl_to(n: u32) -> [u8; 3] {
    [(n >> 16) as u8, (n >> 8) as u8, n as u8]
}

macro_rules! bhs_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, Unaligned)]
        #[repr(C)]
        pub struct $name {
            /// Byte 0: I bit and opcode.
            pub opcode: u8,
            /// Byte 1: the F bit and opcode-specific flags.
            pub flags: u8,
            $($(#[$fm])* pub $f: $t,)*
        }
        const_assert_eq!(core::mem::size_of::<$name>(), BHS_LEN);
    };
}

bhs_struct!(
    /// Any BHS, by its common fields only (RFC 7143 §11.2.1).
    Common {
        /// Bytes 2-3: opcode-specific.
        specific: [u8; 2],
        /// TotalAHSLength in 4-byte words.
        total_ahs_len: u8,
        /// DataSegmentLength (24 bits).
        data_segment_len: [u8; 3],
        /// LUN or opcode-specific.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Bytes 20-47: opcode-specific.
        rest: [u8; 28],
    }
);

bhs_struct!(
    /// SCSI Command (RFC 7143 §11.3).
    ScsiCommand {
        /// Reserved.
        reserved: [u8; 2],
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// Logical Unit Number.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Expected Data Transfer Length.
        expected_data_transfer_len: U32,
        /// CmdSN.
        cmd_sn: U32,
        /// ExpStatSN.
        exp_stat_sn: U32,
        /// The first 16 CDB bytes.
        cdb: [u8; 16],
    }
);

bhs_struct!(
    /// SCSI Response (RFC 7143 §11.4).
    ScsiResponse {
        /// iSCSI service response.
        response: u8,
        /// SCSI status.
        status: u8,
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// Reserved.
        reserved: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// SNACK Tag.
        snack_tag: U32,
        /// StatSN.
        stat_sn: U32,
        /// ExpCmdSN.
        exp_cmd_sn: U32,
        /// MaxCmdSN.
        max_cmd_sn: U32,
        /// ExpDataSN.
        exp_data_sn: U32,
        /// Bidirectional Read Residual Count.
        bidi_read_residual_count: U32,
        /// Residual Count.
        residual_count: U32,
    }
);

bhs_struct!(
    /// Task Management Function Request (RFC 7143 §11.5).
    TaskMgmtRequest {
        /// Reserved.
        reserved: [u8; 2],
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// LUN.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Referenced Task Tag.
        referenced_task_tag: U32,
        /// CmdSN.
        cmd_sn: U32,
        /// ExpStatSN.
        exp_stat_sn: U32,
        /// RefCmdSN.
        ref_cmd_sn: U32,
        /// ExpDataSN.
        exp_data_sn: U32,
        /// Reserved.
        reserved2: [u8; 8],
    }
);

bhs_struct!(
    /// Task Management Function Response (RFC 7143 §11.6).
    TaskMgmtResponse {
        /// Response.
        response: u8,
        /// Reserved.
        reserved: u8,
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// Reserved.
        reserved2: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Reserved.
        reserved3: U32,
        /// StatSN.
        stat_sn: U32,
        /// ExpCmdSN.
        exp_cmd_sn: U32,
        /// MaxCmdSN.
        max_cmd_sn: U32,
        /// Reserved.
        reserved4: [u8; 12],
    }
);

bhs_struct!(
    /// SCSI Data-Out (RFC 7143 §11.7).
    DataOut {
        /// Reserved.
        reserved: [u8; 2],
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// LUN.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Target Transfer Tag.
        ttt: U32,
        /// Reserved.
        reserved2: U32,
        /// ExpStatSN.
        exp_stat_sn: U32,
        /// Reserved.
        reserved3: U32,
        /// DataSN.
        data_sn: U32,
        /// Buffer Offset.
        buffer_offset: U32,
        /// Reserved.
        reserved4: U32,
    }
);

bhs_struct!(
    /// SCSI Data-In (RFC 7143 §11.7).
    DataIn {
        /// Reserved.
        reserved: u8,
        /// SCSI status, valid when the S bit is set.
        status: u8,
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// LUN.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Target Transfer Tag.
        ttt: U32,
        /// StatSN (valid when S is set).
        stat_sn: U32,
        /// ExpCmdSN.
        exp_cmd_sn: U32,
        /// MaxCmdSN.
        max_cmd_sn: U32,
        /// DataSN.
        data_sn: U32,
        /// Buffer Offset.
        buffer_offset: U32,
        /// Residual Count.
        residual_count: U32,
    }
);

bhs_struct!(
    /// Ready To Transfer (RFC 7143 §11.8).
    R2t {
        /// Reserved.
        reserved: [u8; 2],
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// LUN.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Target Transfer Tag.
        ttt: U32,
        /// StatSN.
        stat_sn: U32,
        /// ExpCmdSN.
        exp_cmd_sn: U32,
        /// MaxCmdSN.
        max_cmd_sn: U32,
        /// R2TSN.
        r2t_sn: U32,
        /// Buffer Offset.
        buffer_offset: U32,
        /// Desired Data Transfer Length.
        desired_data_transfer_len: U32,
    }
);

bhs_struct!(
    /// Asynchronous Message (RFC 7143 §11.9).
    AsyncMessage {
        /// Reserved.
        reserved: [u8; 2],
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// LUN.
        lun: [u8; 8],
        /// 0xffffffff.
        itt: U32,
        /// Reserved.
        reserved2: U32,
        /// StatSN.
        stat_sn: U32,
        /// ExpCmdSN.
        exp_cmd_sn: U32,
        /// MaxCmdSN.
        max_cmd_sn: U32,
        /// AsyncEvent.
        async_event: u8,
        /// AsyncVCode.
        async_vcode: u8,
        /// Parameter1.
        parameter1: U16,
        /// Parameter2.
        parameter2: U16,
        /// Parameter3.
        parameter3: U16,
        /// Reserved.
        reserved3: U32,
    }
);

bhs_struct!(
    /// Text Request (RFC 7143 §11.10).
    TextRequest {
        /// Reserved.
        reserved: [u8; 2],
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// LUN or reserved.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Target Transfer Tag.
        ttt: U32,
        /// CmdSN.
        cmd_sn: U32,
        /// ExpStatSN.
        exp_stat_sn: U32,
        /// Reserved.
        reserved2: [u8; 16],
    }
);

bhs_struct!(
    /// Text Response (RFC 7143 §11.11).
    TextResponse {
        /// Reserved.
        reserved: [u8; 2],
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// LUN or reserved.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Target Transfer Tag.
        ttt: U32,
        /// StatSN.
        stat_sn: U32,
        /// ExpCmdSN.
        exp_cmd_sn: U32,
        /// MaxCmdSN.
        max_cmd_sn: U32,
        /// Reserved.
        reserved2: [u8; 12],
    }
);

bhs_struct!(
    /// Login Request (RFC 7143 §11.12).
    LoginRequest {
        /// Version-max.
        version_max: u8,
        /// Version-min.
        version_min: u8,
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// ISID.
        isid: [u8; 6],
        /// TSIH.
        tsih: U16,
        /// Initiator Task Tag.
        itt: U32,
        /// Connection ID.
        cid: U16,
        /// Reserved.
        reserved: U16,
        /// CmdSN.
        cmd_sn: U32,
        /// ExpStatSN.
        exp_stat_sn: U32,
        /// Reserved.
        reserved2: [u8; 16],
    }
);

bhs_struct!(
    /// Login Response (RFC 7143 §11.13).
    LoginResponse {
        /// Version-max.
        version_max: u8,
        /// Version-active.
        version_active: u8,
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// ISID.
        isid: [u8; 6],
        /// TSIH.
        tsih: U16,
        /// Initiator Task Tag.
        itt: U32,
        /// Reserved.
        reserved: U32,
        /// StatSN.
        stat_sn: U32,
        /// ExpCmdSN.
        exp_cmd_sn: U32,
        /// MaxCmdSN.
        max_cmd_sn: U32,
        /// Status-Class.
        status_class: u8,
        /// Status-Detail.
        status_detail: u8,
        /// Reserved.
        reserved2: [u8; 10],
    }
);

bhs_struct!(
    /// Logout Request (RFC 7143 §11.14).
    LogoutRequest {
        /// Reserved.
        reserved: [u8; 2],
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// Reserved.
        reserved2: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// CID or reserved.
        cid: U16,
        /// Reserved.
        reserved3: U16,
        /// CmdSN.
        cmd_sn: U32,
        /// ExpStatSN.
        exp_stat_sn: U32,
        /// Reserved.
        reserved4: [u8; 16],
    }
);

bhs_struct!(
    /// Logout Response (RFC 7143 §11.15).
    LogoutResponse {
        /// Response.
        response: u8,
        /// Reserved.
        reserved: u8,
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// Reserved.
        reserved2: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Reserved.
        reserved3: U32,
        /// StatSN.
        stat_sn: U32,
        /// ExpCmdSN.
        exp_cmd_sn: U32,
        /// MaxCmdSN.
        max_cmd_sn: U32,
        /// Reserved.
        reserved4: U32,
        /// Time2Wait.
        time2wait: U16,
        /// Time2Retain.
        time2retain: U16,
        /// Reserved.
        reserved5: U32,
    }
);

bhs_struct!(
    /// SNACK Request (RFC 7143 §11.16); only meaningful at ErrorRecoveryLevel > 0.
    SnackRequest {
        /// Reserved.
        reserved: [u8; 2],
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// LUN.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Target Transfer Tag or SNACK Tag.
        ttt: U32,
        /// Reserved.
        reserved2: U32,
        /// ExpStatSN.
        exp_stat_sn: U32,
        /// Reserved.
        reserved3: [u8; 8],
        /// BegRun.
        beg_run: U32,
        /// RunLength.
        run_length: U32,
    }
);

bhs_struct!(
    /// Reject (RFC 7143 §11.17).
    Reject {
        /// Reason.
        reason: u8,
        /// Reserved.
        reserved: u8,
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// Reserved.
        reserved2: [u8; 8],
        /// 0xffffffff.
        itt: U32,
        /// Reserved.
        reserved3: U32,
        /// StatSN.
        stat_sn: U32,
        /// ExpCmdSN.
        exp_cmd_sn: U32,
        /// MaxCmdSN.
        max_cmd_sn: U32,
        /// DataSN/R2TSN or reserved.
        data_sn: U32,
        /// Reserved.
        reserved4: [u8; 8],
    }
);

bhs_struct!(
    /// NOP-Out (RFC 7143 §11.18).
    NopOut {
        /// Reserved.
        reserved: [u8; 2],
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// LUN.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Target Transfer Tag.
        ttt: U32,
        /// CmdSN.
        cmd_sn: U32,
        /// ExpStatSN.
        exp_stat_sn: U32,
        /// Reserved.
        reserved2: [u8; 16],
    }
);

bhs_struct!(
    /// NOP-In (RFC 7143 §11.19).
    NopIn {
        /// Reserved.
        reserved: [u8; 2],
        /// TotalAHSLength.
        total_ahs_len: u8,
        /// DataSegmentLength.
        data_segment_len: [u8; 3],
        /// LUN.
        lun: [u8; 8],
        /// Initiator Task Tag.
        itt: U32,
        /// Target Transfer Tag.
        ttt: U32,
        /// StatSN.
        stat_sn: U32,
        /// ExpCmdSN.
        exp_cmd_sn: U32,
        /// MaxCmdSN.
        max_cmd_sn: U32,
        /// Reserved.
        reserved2: [u8; 12],
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn field_offsets_match_rfc7143() {
        assert_eq!(offset_of!(ScsiCommand, expected_data_transfer_len), 20);
        assert_eq!(offset_of!(ScsiCommand, cdb), 32);
        assert_eq!(offset_of!(ScsiResponse, stat_sn), 24);
        assert_eq!(offset_of!(ScsiResponse, residual_count), 44);
        assert_eq!(offset_of!(DataIn, data_sn), 36);
        assert_eq!(offset_of!(DataIn, buffer_offset), 40);
        assert_eq!(offset_of!(R2t, desired_data_transfer_len), 44);
        assert_eq!(offset_of!(AsyncMessage, async_event), 36);
        assert_eq!(offset_of!(AsyncMessage, parameter3), 42);
        assert_eq!(offset_of!(LoginRequest, isid), 8);
        assert_eq!(offset_of!(LoginRequest, tsih), 14);
        assert_eq!(offset_of!(LoginRequest, cid), 20);
        assert_eq!(offset_of!(LoginResponse, status_class), 36);
        assert_eq!(offset_of!(LogoutResponse, time2wait), 40);
        assert_eq!(offset_of!(Reject, data_sn), 36);
        assert_eq!(offset_of!(TaskMgmtRequest, ref_cmd_sn), 32);
        assert_eq!(offset_of!(SnackRequest, beg_run), 40);
        assert_eq!(dsl_from(dsl_to(0x00ab_cdef)), 0x00ab_cdef);
    }

    #[test]
    fn rfc3720_read_command_layout() {
        // The READ(10) command PDU of RFC 3720 Appendix B.4, built from fields.
        let mut cmd = ScsiCommand {
            opcode: Opcode::SCSI_COMMAND.0,
            flags: FINAL | 0x40,
            ..Default::default()
        };
        cmd.itt.set(0x1400_0000);
        cmd.expected_data_transfer_len.set(0x400);
        cmd.cmd_sn.set(0x14);
        cmd.exp_stat_sn.set(0x18);
        cmd.cdb[0] = 0x28;
        cmd.cdb[8] = 0x02;
        let bytes = cmd.as_bytes();
        assert_eq!(&bytes[..2], &[0x01, 0xc0]);
        assert_eq!(&bytes[16..20], &[0x14, 0, 0, 0]);
        assert_eq!(&bytes[20..24], &[0, 0, 4, 0]);
        assert_eq!(
            crate::wire::crc32c::to_wire(crate::wire::crc32c::checksum(bytes)),
            [0x56, 0x3a, 0x96, 0xd9]
        );
    }
}
