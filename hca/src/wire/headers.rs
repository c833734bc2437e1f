//! Packet headers: LRH (IBA §7.7), GRH (§8.3), BTH (§9.2), DETH (§9.3), and a whole UD SEND
//! packet built from them (LRH [GRH] BTH DETH payload ICRC). The VCRC after the ICRC is
//! link-level: each link recomputes it ([`crc::vcrc`]); packets here end at the ICRC, as the
//! LRH's PktLen counts them.

use super::{crc, get_u24, put_u24, Gid, Lid, Qpn, WireError};
use static_assertions::const_assert_eq;
use zerocopy::byteorder::big_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub use super::{LNH_IBA_GLOBAL, LNH_IBA_LOCAL};
/// GRH NxtHdr for IBA transport.
pub const GRH_NXTHDR_IBA: u8 = 0x1b;
/// BTH opcode: UD SEND Only (IBA §9.2.1 table 36).
pub const BTH_OPCODE_UD_SEND_ONLY: u8 = 0x64;

/// Local route header, 8 bytes.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Lrh {
    /// VL[7:4] LVer[3:0].
    pub vl_lver: u8,
    /// SL[7:4] reserved[3:2] LNH[1:0].
    pub sl_lnh: u8,
    /// Destination LID.
    pub dlid: U16,
    /// reserved[15:11] PktLen[10:0], in 4-byte words from LRH through ICRC.
    pub pkt_len: U16,
    /// Source LID.
    pub slid: U16,
}
const_assert_eq!(core::mem::size_of::<Lrh>(), 8);

impl Lrh {
    /// Virtual lane.
    pub fn vl(&self) -> u8 {
        self.vl_lver >> 4
    }
    /// Link version; 0 is the only one defined.
    pub fn lver(&self) -> u8 {
        self.vl_lver & 0xf
    }
    /// Service level.
    pub fn sl(&self) -> u8 {
        self.sl_lnh >> 4
    }
    /// Link next header.
    pub fn lnh(&self) -> u8 {
        self.sl_lnh & 0x3
    }
    /// Packet length in 4-byte words.
    pub fn pkt_len_words(&self) -> u16 {
        self.pkt_len.get() & 0x7ff
    }
}

/// Global route header, 40 bytes.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Grh {
    /// IPVer[31:28] TClass[27:20] FlowLabel[19:0].
    pub ipver_tclass_flow: U32,
    /// Payload length in bytes (from BTH through ICRC).
    pub paylen: U16,
    /// Next header (0x1b for IBA transport).
    pub nxthdr: u8,
    /// Hop limit.
    pub hoplmt: u8,
    /// Source GID.
    pub sgid: Gid,
    /// Destination GID.
    pub dgid: Gid,
}
const_assert_eq!(core::mem::size_of::<Grh>(), 40);

impl Grh {
    /// IP version; 6 for IBA.
    pub fn ipver(&self) -> u8 {
        (self.ipver_tclass_flow.get() >> 28) as u8
    }
    /// Traffic class.
    pub fn tclass(&self) -> u8 {
        (self.ipver_tclass_flow.get() >> 20) as u8
    }
    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        self.ipver_tclass_flow.get() & 0x000f_ffff
    }
}

/// Base transport header, 12 bytes.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Bth {
    /// Opcode.
    pub opcode: u8,
    /// SE[7] M[6] PadCnt[5:4] TVer[3:0].
    pub se_m_pad_tver: u8,
    /// Partition key.
    pub pkey: U16,
    /// Reserved (variant; masked in the ICRC).
    pub resv8a: u8,
    /// Destination QP.
    pub dest_qp: [u8; 3],
    /// A[7] reserved[6:0].
    pub ack_req: u8,
    /// Packet sequence number.
    pub psn: [u8; 3],
}
const_assert_eq!(core::mem::size_of::<Bth>(), 12);

impl Bth {
    /// Destination QPN.
    pub fn dest_qpn(&self) -> Qpn {
        Qpn(get_u24(self.dest_qp))
    }
    /// Pad count.
    pub fn pad_cnt(&self) -> u8 {
        (self.se_m_pad_tver >> 4) & 0x3
    }
    /// Transport header version; 0 is the only one defined.
    pub fn tver(&self) -> u8 {
        self.se_m_pad_tver & 0xf
    }
    /// Packet sequence number.
    pub fn psn(&self) -> u32 {
        get_u24(self.psn)
    }
}

/// Datagram extended transport header, 8 bytes.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Deth {
    /// Queue key.
    pub qkey: U32,
    /// Reserved.
    pub resv8: u8,
    /// Source QP.
    pub src_qp: [u8; 3],
}
const_assert_eq!(core::mem::size_of::<Deth>(), 8);

impl Deth {
    /// Source QPN.
    pub fn src_qpn(&self) -> Qpn {
        Qpn(get_u24(self.src_qp))
    }
}

/// A validated UD SEND Only packet (what a UD QP, QP0 and QP1 put on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdPacketRepr {
    /// Virtual lane (15 for QP0 traffic).
    pub vl: u8,
    /// Service level.
    pub sl: u8,
    /// Destination LID.
    pub dlid: Lid,
    /// Source LID.
    pub slid: Lid,
    /// Global route, when present: (SGID, DGID, hop limit, traffic class, flow label).
    pub grh: Option<GrhRepr>,
    /// Partition key.
    pub pkey: u16,
    /// Destination QPN.
    pub dest_qpn: Qpn,
    /// Packet sequence number.
    pub psn: u32,
    /// Queue key.
    pub qkey: u32,
    /// Source QPN.
    pub src_qpn: Qpn,
}

/// The GRH fields a UD sender chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrhRepr {
    /// Source GID.
    pub sgid: Gid,
    /// Destination GID.
    pub dgid: Gid,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub tclass: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

/// A parsed UD packet: the header fields and where the payload sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdPacket<'a> {
    /// The header fields.
    pub repr: UdPacketRepr,
    /// The payload, without pad bytes and ICRC.
    pub payload: &'a [u8],
}

const ICRC_LEN: usize = 4;

impl UdPacketRepr {
    /// Header length (LRH [GRH] BTH DETH).
    pub fn header_len(&self) -> usize {
        8 + if self.grh.is_some() { 40 } else { 0 } + 12 + 8
    }

    /// Length of the whole packet for `payload_len` bytes of payload (headers, payload, pad,
    /// ICRC).
    pub fn buffer_len(&self, payload_len: usize) -> usize {
        let pad = (4 - payload_len % 4) % 4;
        self.header_len() + payload_len + pad + ICRC_LEN
    }

    /// Writes the packet into `out`, computing the ICRC. Returns the bytes written, or
    /// [`WireError::Truncated`] when `out` is too short or the packet exceeds PktLen's range.
    pub fn emit(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, WireError> {
        let total = self.buffer_len(payload.len());
        if out.len() < total || total / 4 > 0x7ff {
            return Err(WireError::Truncated);
        }
        let pad = total - ICRC_LEN - self.header_len() - payload.len();
        let lrh = Lrh {
            vl_lver: (self.vl & 0xf) << 4,
            sl_lnh: ((self.sl & 0xf) << 4)
                | if self.grh.is_some() {
                    LNH_IBA_GLOBAL
                } else {
                    LNH_IBA_LOCAL
                },
            dlid: U16::new(self.dlid.0),
            pkt_len: U16::new((total / 4) as u16),
            slid: U16::new(self.slid.0),
        };
        let mut off = 0;
        out[..8].copy_from_slice(lrh.as_bytes());
        off += 8;
        if let Some(g) = &self.grh {
            let grh = Grh {
                ipver_tclass_flow: U32::new(
                    (6 << 28) | (u32::from(g.tclass) << 20) | (g.flow_label & 0xf_ffff),
                ),
                paylen: U16::new((total - 8 - 40) as u16),
                nxthdr: GRH_NXTHDR_IBA,
                hoplmt: g.hop_limit,
                sgid: g.sgid,
                dgid: g.dgid,
            };
            out[off..off + 40].copy_from_slice(grh.as_bytes());
            off += 40;
        }
        let bth = Bth {
            opcode: BTH_OPCODE_UD_SEND_ONLY,
            se_m_pad_tver: ((pad as u8) & 0x3) << 4,
            pkey: U16::new(self.pkey),
            resv8a: 0,
            dest_qp: put_u24(self.dest_qpn.0),
            ack_req: 0,
            psn: put_u24(self.psn),
        };
        out[off..off + 12].copy_from_slice(bth.as_bytes());
        off += 12;
        let deth = Deth {
            qkey: U32::new(self.qkey),
            resv8: 0,
            src_qp: put_u24(self.src_qpn.0),
        };
        out[off..off + 8].copy_from_slice(deth.as_bytes());
        off += 8;
        out[off..off + payload.len()].copy_from_slice(payload);
        off += payload.len();
        out[off..off + pad].fill(0);
        off += pad;
        let icrc = crc::icrc(&out[..off]);
        out[off..off + 4].copy_from_slice(&icrc.to_le_bytes());
        Ok(off + 4)
    }
}

impl<'a> UdPacket<'a> {
    /// Parses and validates a UD SEND Only packet including its ICRC.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let (lrh, rest) = Lrh::ref_from_prefix(bytes).map_err(|_| WireError::Truncated)?;
        if lrh.lver() != 0 {
            return Err(WireError::BadVersion);
        }
        let total = usize::from(lrh.pkt_len_words()) * 4;
        if total > bytes.len() || total < 8 + 12 + 8 + ICRC_LEN {
            return Err(WireError::Truncated);
        }
        let (grh, rest) = match lrh.lnh() {
            LNH_IBA_LOCAL => (None, rest),
            LNH_IBA_GLOBAL => {
                let (g, r) = Grh::ref_from_prefix(rest).map_err(|_| WireError::Truncated)?;
                if g.ipver() != 6 {
                    return Err(WireError::BadVersion);
                }
                if g.nxthdr != GRH_NXTHDR_IBA {
                    return Err(WireError::Malformed);
                }
                (Some(g), r)
            }
            _ => return Err(WireError::Malformed),
        };
        let (bth, rest) = Bth::ref_from_prefix(rest).map_err(|_| WireError::Truncated)?;
        if bth.tver() != 0 {
            return Err(WireError::BadVersion);
        }
        if bth.opcode != BTH_OPCODE_UD_SEND_ONLY {
            return Err(WireError::Malformed);
        }
        let (deth, _) = Deth::ref_from_prefix(rest).map_err(|_| WireError::Truncated)?;
        let hdr_len = 8 + if grh.is_some() { 40 } else { 0 } + 12 + 8;
        let pad = usize::from(bth.pad_cnt());
        if total < hdr_len + pad + ICRC_LEN {
            return Err(WireError::Truncated);
        }
        let icrc_at = total - ICRC_LEN;
        let mut got = [0u8; 4];
        got.copy_from_slice(&bytes[icrc_at..total]);
        if crc::icrc(&bytes[..icrc_at]) != u32::from_le_bytes(got) {
            return Err(WireError::BadIcrc);
        }
        let repr = UdPacketRepr {
            vl: lrh.vl(),
            sl: lrh.sl(),
            dlid: Lid(lrh.dlid.get()),
            slid: Lid(lrh.slid.get()),
            grh: grh.map(|g| GrhRepr {
                sgid: g.sgid,
                dgid: g.dgid,
                hop_limit: g.hoplmt,
                tclass: g.tclass(),
                flow_label: g.flow_label(),
            }),
            pkey: bth.pkey.get(),
            dest_qpn: bth.dest_qpn(),
            psn: bth.psn(),
            qkey: deth.qkey.get(),
            src_qpn: deth.src_qpn(),
        };
        Ok(UdPacket {
            repr,
            payload: &bytes[hdr_len..icrc_at - pad],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Guid;

    fn sample(grh: bool) -> UdPacketRepr {
        UdPacketRepr {
            vl: 0,
            sl: 3,
            dlid: Lid(0x12),
            slid: Lid(0x34),
            grh: grh.then(|| GrhRepr {
                sgid: Gid::from_parts(0xfe80 << 48, Guid::from_u64(1)),
                dgid: Gid::ipoib_broadcast(0xffff),
                hop_limit: 1,
                tclass: 0,
                flow_label: 0,
            }),
            pkey: 0xffff,
            dest_qpn: Qpn(0x48),
            psn: 7,
            qkey: 0x0b1b,
            src_qpn: Qpn(0x51),
        }
    }

    #[test]
    fn emit_parse_round_trip_local_and_global() {
        for grh in [false, true] {
            let r = sample(grh);
            let payload = b"hello, infiniband";
            let mut buf = [0u8; 256];
            let n = r.emit(payload, &mut buf).unwrap();
            assert_eq!(n, r.buffer_len(payload.len()));
            assert_eq!(n % 4, 0);
            let p = UdPacket::parse(&buf[..n]).unwrap();
            assert_eq!(p.repr, r);
            assert_eq!(p.payload, payload);
            // Byte-level spot checks: LRH LNH, BTH opcode, DETH Q_Key.
            assert_eq!(buf[1] & 3, if grh { 3 } else { 2 });
            let bth_at = if grh { 48 } else { 8 };
            assert_eq!(buf[bth_at], 0x64);
            assert_eq!(&buf[bth_at + 12..bth_at + 16], &[0, 0, 0x0b, 0x1b]);
        }
    }

    #[test]
    fn corrupted_packet_fails_icrc_but_vl_change_does_not() {
        let r = sample(true);
        let mut buf = [0u8; 256];
        let n = r.emit(b"abcd", &mut buf).unwrap();
        let mut bad = buf;
        bad[n - 6] ^= 0x40;
        assert_eq!(UdPacket::parse(&bad[..n]), Err(WireError::BadIcrc));
        // VL and hop limit are variant fields: a switch may rewrite them.
        let mut hop = buf;
        hop[0] = 0x70;
        hop[8 + 7] = 9;
        assert!(UdPacket::parse(&hop[..n]).is_ok());
    }

    #[test]
    fn short_and_garbage_inputs_are_errors() {
        assert_eq!(UdPacket::parse(&[]), Err(WireError::Truncated));
        assert_eq!(UdPacket::parse(&[0u8; 7]), Err(WireError::Truncated));
        let mut buf = [0u8; 64];
        let n = sample(false).emit(b"", &mut buf).unwrap();
        buf[1] &= !3; // LNH 0 is raw
        assert!(UdPacket::parse(&buf[..n]).is_err());
    }
}
