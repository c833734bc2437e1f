//! PDU framing (RFC 7143 §11.1): BHS, AHS, optional header digest, data segment padded to 4
//! bytes, optional data digest.
//!
//! [`Receiver`] is an incremental, allocation-free parser: it takes whatever the transport
//! delivered and yields a header, then the data segment as borrowed chunks of the input (so
//! the session can copy Data-In straight into the caller's buffer), then the end of the PDU
//! once the digests have been checked. [`write_pdu`] appends a whole PDU to a transmit buffer.

use alloc::vec::Vec;

use super::bhs::BHS_LEN;
use super::crc32c;
use super::pdu::{decode_target_bhs, framing, Decoded, PduError};

/// Largest AHS this initiator accepts from a target. Targets send none in practice; RFC 7143
/// defines AHS only for initiator PDUs (extended CDB, bidirectional read length).
pub const MAX_RX_AHS: usize = 256;

/// Which digests are in use on a connection (RFC 7143 §13.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigestConfig {
    /// CRC32C header digest.
    pub header: bool,
    /// CRC32C data digest.
    pub data: bool,
}

/// A framing error: the connection can no longer be trusted (ERL 0, RFC 7143 §7.1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The header digest did not match.
    HeaderDigest,
    /// The data digest did not match.
    DataDigest,
    /// The header itself is malformed.
    Pdu(PduError),
    /// The data segment is longer than our MaxRecvDataSegmentLength (RFC 7143 §13.12).
    SegmentTooLong {
        /// The PDU's DataSegmentLength.
        len: u32,
        /// Our declared limit.
        max: u32,
    },
    /// An AHS longer than [`MAX_RX_AHS`].
    AhsTooLong(usize),
}

impl From<PduError> for FrameError {
    fn from(e: PduError) -> Self {
        FrameError::Pdu(e)
    }
}

/// One step of receiving.
#[derive(Debug, PartialEq, Eq)]
pub enum RxEvent<'a> {
    /// A validated header; data (if any) follows.
    Header(Decoded),
    /// The next chunk of the data segment (padding excluded).
    Data(&'a [u8]),
    /// The PDU is complete and its digests were correct.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RxState {
    Header,
    Data,
    Pad,
    DataDigest,
    Finish,
}

/// Incremental PDU parser.
#[derive(Debug)]
pub struct Receiver {
    digests: DigestConfig,
    max_data: u32,
    state: RxState,
    hdr: [u8; BHS_LEN + MAX_RX_AHS + 4],
    have: usize,
    need: usize,
    data_left: u32,
    pad_left: u8,
    crc: u32,
    dd: [u8; 4],
    dd_have: usize,
    raw_bhs: [u8; BHS_LEN],
}

impl Receiver {
    /// A receiver accepting data segments up to `max_data` bytes.
    pub fn new(digests: DigestConfig, max_data: u32) -> Self {
        Self {
            digests,
            max_data,
            state: RxState::Header,
            hdr: [0; BHS_LEN + MAX_RX_AHS + 4],
            have: 0,
            need: BHS_LEN,
            data_left: 0,
            pad_left: 0,
            crc: 0,
            dd: [0; 4],
            dd_have: 0,
            raw_bhs: [0; BHS_LEN],
        }
    }

    /// Change digests and the segment limit. Takes effect from the next PDU; call only between
    /// PDUs (after [`RxEvent::End`]).
    pub fn configure(&mut self, digests: DigestConfig, max_data: u32) {
        self.digests = digests;
        self.max_data = max_data;
    }

    /// True between PDUs.
    pub fn at_boundary(&self) -> bool {
        self.state == RxState::Header && self.have == 0
    }

    /// The raw BHS of the PDU being received (valid after [`RxEvent::Header`]).
    pub fn raw_bhs(&self) -> &[u8; BHS_LEN] {
        &self.raw_bhs
    }

    /// Forget any partial PDU (after the connection is replaced).
    pub fn reset(&mut self) {
        self.state = RxState::Header;
        self.have = 0;
        self.need = BHS_LEN;
    }

    /// Bytes of the current data segment still to come (0 outside a data segment). The caller
    /// may receive up to this many bytes straight into their destination and report them with
    /// [`Receiver::placed`] instead of passing them through [`Receiver::poll`].
    pub fn data_pending(&self) -> u32 {
        if self.state == RxState::Data {
            self.data_left
        } else {
            0
        }
    }

    /// `placed` is the next part of the current data segment, received by the caller straight
    /// into its destination (at most [`Receiver::data_pending`] bytes; any excess is ignored).
    /// Feeds the data digest like [`RxEvent::Data`] would.
    pub fn placed(&mut self, placed: &[u8]) {
        if self.state != RxState::Data {
            return;
        }
        let n = placed.len().min(self.data_left as usize);
        self.data_left -= n as u32;
        if self.digests.data {
            self.crc = crc32c::update(self.crc, &placed[..n]);
        }
    }

    /// Consume bytes from the front of `input` and return the next event, or `None` when
    /// `input` is exhausted before one is complete.
    pub fn poll<'a>(&mut self, input: &mut &'a [u8]) -> Result<Option<RxEvent<'a>>, FrameError> {
        loop {
            match self.state {
                RxState::Header => {
                    let take = (self.need - self.have).min(input.len());
                    let (head, tail) = input.split_at(take);
                    self.hdr[self.have..self.have + take].copy_from_slice(head);
                    *input = tail;
                    self.have += take;
                    if self.have < self.need {
                        return Ok(None);
                    }
                    if self.need == BHS_LEN {
                        let bhs: &[u8; BHS_LEN] = self.hdr[..BHS_LEN]
                            .try_into()
                            .map_err(|_| PduError::Truncated)?;
                        let (ahs, _) = framing(bhs);
                        if ahs > MAX_RX_AHS {
                            self.reset();
                            return Err(FrameError::AhsTooLong(ahs));
                        }
                        let total = BHS_LEN + ahs + if self.digests.header { 4 } else { 0 };
                        if total > BHS_LEN {
                            self.need = total;
                            continue;
                        }
                    }
                    let hlen = self.need - if self.digests.header { 4 } else { 0 };
                    if self.digests.header {
                        let got = crc32c::from_wire([
                            self.hdr[hlen],
                            self.hdr[hlen + 1],
                            self.hdr[hlen + 2],
                            self.hdr[hlen + 3],
                        ]);
                        if crc32c::checksum(&self.hdr[..hlen]) != got {
                            self.reset();
                            return Err(FrameError::HeaderDigest);
                        }
                    }
                    self.raw_bhs.copy_from_slice(&self.hdr[..BHS_LEN]);
                    self.have = 0;
                    self.need = BHS_LEN;
                    let decoded = decode_target_bhs(&self.raw_bhs)?;
                    if decoded.data_len > self.max_data {
                        return Err(FrameError::SegmentTooLong {
                            len: decoded.data_len,
                            max: self.max_data,
                        });
                    }
                    self.data_left = decoded.data_len;
                    self.pad_left = ((4 - (decoded.data_len % 4)) % 4) as u8;
                    self.crc = 0;
                    self.dd_have = 0;
                    self.state = if decoded.data_len == 0 {
                        RxState::Finish
                    } else {
                        RxState::Data
                    };
                    return Ok(Some(RxEvent::Header(decoded)));
                }
                RxState::Data => {
                    if self.data_left == 0 {
                        self.state = RxState::Pad;
                        continue;
                    }
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let take = (self.data_left as usize).min(input.len());
                    let (chunk, tail) = input.split_at(take);
                    *input = tail;
                    self.data_left -= take as u32;
                    if self.digests.data {
                        self.crc = crc32c::update(self.crc, chunk);
                    }
                    return Ok(Some(RxEvent::Data(chunk)));
                }
                RxState::Pad => {
                    while self.pad_left > 0 {
                        let Some((&b, tail)) = input.split_first() else {
                            return Ok(None);
                        };
                        *input = tail;
                        if self.digests.data {
                            self.crc = crc32c::update(self.crc, &[b]);
                        }
                        self.pad_left -= 1;
                    }
                    self.state = if self.digests.data {
                        RxState::DataDigest
                    } else {
                        RxState::Finish
                    };
                }
                RxState::DataDigest => {
                    while self.dd_have < 4 {
                        let Some((&b, tail)) = input.split_first() else {
                            return Ok(None);
                        };
                        *input = tail;
                        self.dd[self.dd_have] = b;
                        self.dd_have += 1;
                    }
                    if crc32c::from_wire(self.dd) != self.crc {
                        self.state = RxState::Header;
                        return Err(FrameError::DataDigest);
                    }
                    self.state = RxState::Finish;
                }
                RxState::Finish => {
                    self.state = RxState::Header;
                    return Ok(Some(RxEvent::End));
                }
            }
        }
    }
}

/// Append one PDU to `out`: BHS, AHS, header digest, data, padding, data digest.
pub fn write_pdu(
    out: &mut Vec<u8>,
    digests: DigestConfig,
    bhs: &[u8; BHS_LEN],
    ahs: &[u8],
    data: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(bhs);
    out.extend_from_slice(ahs);
    if digests.header {
        let crc = crc32c::checksum(&out[start..]);
        out.extend_from_slice(&crc32c::to_wire(crc));
    }
    if !data.is_empty() {
        out.extend_from_slice(data);
        let pad = (4 - data.len() % 4) % 4;
        out.extend_from_slice(&[0u8; 3][..pad]);
        if digests.data {
            let mut crc = crc32c::update(0, data);
            crc = crc32c::update(crc, &[0u8; 3][..pad]);
            out.extend_from_slice(&crc32c::to_wire(crc));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::bhs;
    use crate::wire::pdu::TargetHeader;
    use alloc::vec;
    use zerocopy::IntoBytes;

    fn nop_in(data_len: u32) -> [u8; 48] {
        let mut h = bhs::NopIn {
            opcode: 0x20,
            flags: 0x80,
            ..Default::default()
        };
        h.itt.set(5);
        h.ttt.set(bhs::RESERVED_TAG);
        h.data_segment_len = bhs::dsl_to(data_len);
        h.as_bytes().try_into().unwrap()
    }

    fn collect(
        rx: &mut Receiver,
        bytes: &[u8],
        step: usize,
    ) -> Result<(usize, vec::Vec<u8>, usize), FrameError> {
        let (mut headers, mut data, mut ends) = (0, vec![], 0);
        for piece in bytes.chunks(step.max(1)) {
            let mut input = piece;
            while let Some(ev) = rx.poll(&mut input)? {
                match ev {
                    RxEvent::Header(d) => {
                        assert!(matches!(d.header, TargetHeader::NopIn { itt: 5, .. }));
                        headers += 1;
                    }
                    RxEvent::Data(c) => data.extend_from_slice(c),
                    RxEvent::End => ends += 1,
                }
            }
        }
        Ok((headers, data, ends))
    }

    #[test]
    fn round_trip_with_and_without_digests_any_split() {
        for digests in [
            DigestConfig::default(),
            DigestConfig {
                header: true,
                data: false,
            },
            DigestConfig {
                header: true,
                data: true,
            },
        ] {
            let mut wire = vec![];
            write_pdu(&mut wire, digests, &nop_in(5), &[], b"hello");
            write_pdu(&mut wire, digests, &nop_in(0), &[], &[]);
            let expect_len =
                96 + 8 + if digests.header { 8 } else { 0 } + if digests.data { 4 } else { 0 };
            assert_eq!(wire.len(), expect_len);
            for step in [1, 3, 7, 48, 1000] {
                let mut rx = Receiver::new(digests, 8192);
                assert_eq!(
                    collect(&mut rx, &wire, step).unwrap(),
                    (2, b"hello".to_vec(), 2)
                );
                assert!(rx.at_boundary());
            }
        }
    }

    #[test]
    fn data_placed_by_the_caller_counts_like_polled_data() {
        let digests = DigestConfig {
            header: true,
            data: true,
        };
        let payload = b"hello, direct world";
        let mut wire = vec![];
        write_pdu(
            &mut wire,
            digests,
            &nop_in(payload.len() as u32),
            &[],
            payload,
        );
        for corrupt in [false, true] {
            let mut rx = Receiver::new(digests, 8192);
            let mut input = &wire[..52 + 5];
            assert!(matches!(rx.poll(&mut input), Ok(Some(RxEvent::Header(_)))));
            assert_eq!(rx.poll(&mut input), Ok(Some(RxEvent::Data(&payload[..5]))));
            assert_eq!(rx.data_pending(), payload.len() as u32 - 5);
            let mut placed = payload[5..].to_vec();
            if corrupt {
                placed[3] ^= 0x40;
            }
            rx.placed(&placed);
            assert_eq!(rx.data_pending(), 0);
            let mut rest = &wire[52 + payload.len()..];
            let got = rx.poll(&mut rest);
            if corrupt {
                assert_eq!(got, Err(FrameError::DataDigest));
            } else {
                assert_eq!(got, Ok(Some(RxEvent::End)));
                assert!(rest.is_empty() && rx.at_boundary());
            }
        }
    }

    #[test]
    fn detects_digest_errors_and_oversize() {
        let digests = DigestConfig {
            header: true,
            data: true,
        };
        let mut wire = vec![];
        write_pdu(&mut wire, digests, &nop_in(5), &[], b"hello");
        let mut bad = wire.clone();
        bad[50] ^= 1;
        assert_eq!(
            collect(&mut Receiver::new(digests, 8192), &bad, 9),
            Err(FrameError::HeaderDigest)
        );
        let mut bad = wire.clone();
        bad[53] ^= 1;
        assert_eq!(
            collect(&mut Receiver::new(digests, 8192), &bad, 9),
            Err(FrameError::DataDigest)
        );
        assert_eq!(
            collect(&mut Receiver::new(digests, 4), &wire, 9),
            Err(FrameError::SegmentTooLong { len: 5, max: 4 })
        );
    }
}
