//! Packet captures of the fabric, in the pcap format Wireshark and `tshark` read.
//!
//! Each record is one whole InfiniBand packet as it is on a link — LRH, [GRH], BTH, DETH,
//! payload, pad, ICRC and the VCRC ([`hca::wire::crc::vcrc`], appended here: the simulator's
//! endpoints exchange packets without it) — wrapped for Wireshark's "exported PDU" link type
//! (`LINKTYPE_WIRESHARK_UPPER_PDU`, 252), which names the dissector that decodes the record.
//! The name is `infiniband`, the dissector Wireshark registers for whole IB packets
//! (`epan/dissectors/packet-infiniband.c`, `register_dissector("infiniband", …)`).
//! `LINKTYPE_INFINIBAND` (247) would be the natural choice, but Wireshark 4.0 (Debian 12)
//! refuses it ("network type 247 unknown or unsupported").
//!
//! The exported-PDU wrapping is a list of tags (`wsutil/exported_pdu_tlvs.h`): a 2-byte tag and a
//! 2-byte length, both big-endian, then the value; `EXP_PDU_TAG_DISSECTOR_NAME` (12) carries the
//! name and `EXP_PDU_TAG_END_OF_OPT` (0, length 0) ends the list. Timestamps are the
//! simulator's clock, in nanoseconds (the pcap magic 0xa1b23c4d).
//!
//! [`parse`] reads such files back (both pcap magics, either byte order), with typed errors:
//! tests use it to look at what was captured.

use std::fmt;
use std::io::{self, Write};

use hca::wire::crc;

/// `LINKTYPE_WIRESHARK_UPPER_PDU` (tcpdump.org link-layer header types).
pub const LINKTYPE_WIRESHARK_UPPER_PDU: u32 = 252;
/// The dissector the records name.
pub const DISSECTOR: &str = "infiniband";
/// `EXP_PDU_TAG_END_OF_OPT`.
pub const EXP_PDU_TAG_END_OF_OPT: u16 = 0;
/// `EXP_PDU_TAG_DISSECTOR_NAME`.
pub const EXP_PDU_TAG_DISSECTOR_NAME: u16 = 12;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const SNAPLEN: u32 = 65_535;
const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// The exported-PDU tags that start every record: the dissector's name, then the end tag.
pub fn record_prefix() -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + DISSECTOR.len());
    v.extend_from_slice(&EXP_PDU_TAG_DISSECTOR_NAME.to_be_bytes());
    v.extend_from_slice(&(DISSECTOR.len() as u16).to_be_bytes());
    v.extend_from_slice(DISSECTOR.as_bytes());
    v.extend_from_slice(&EXP_PDU_TAG_END_OF_OPT.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v
}

/// Writes a capture: the file header at once, then one record per packet.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    prefix: Vec<u8>,
    packets: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header (nanosecond timestamps, link type 252) to `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(FILE_HEADER_LEN);
        h.extend_from_slice(&MAGIC_NANOS.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_WIRESHARK_UPPER_PDU.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self {
            out,
            prefix: record_prefix(),
            packets: 0,
        })
    }

    /// Writes one packet (LRH through ICRC, as the fabric moves it) sent at `ts_ns`; the VCRC
    /// is computed and appended.
    pub fn write_packet(&mut self, ts_ns: u64, packet: &[u8]) -> io::Result<()> {
        let len = self.prefix.len() + packet.len() + crc::VCRC_LEN;
        let len32 = u32::try_from(len)
            .ok()
            .filter(|&l| l <= SNAPLEN)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a {}-byte packet does not fit a capture record",
                        packet.len()
                    ),
                )
            })?;
        let mut r = Vec::with_capacity(RECORD_HEADER_LEN + len);
        r.extend_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        r.extend_from_slice(&((ts_ns % 1_000_000_000) as u32).to_le_bytes());
        r.extend_from_slice(&len32.to_le_bytes());
        r.extend_from_slice(&len32.to_le_bytes());
        r.extend_from_slice(&self.prefix);
        r.extend_from_slice(packet);
        r.extend_from_slice(&crc::vcrc(packet).to_le_bytes());
        self.out.write_all(&r)?;
        self.packets += 1;
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flushes and hands the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Why a capture could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapError {
    /// The file ends inside a header or a record (at this byte offset).
    Truncated {
        /// Offset of the header or record that is cut.
        at: usize,
    },
    /// The first four bytes are not a pcap magic number.
    BadMagic(u32),
    /// A record says it is longer than the file's snapshot length.
    RecordTooLong {
        /// Offset of the record.
        at: usize,
        /// Its captured length.
        len: u32,
    },
    /// An exported-PDU tag runs past the end of its record.
    BadTag {
        /// The tag.
        tag: u16,
    },
    /// The exported-PDU tags carry no dissector name.
    NoDissectorName,
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::Truncated { at } => write!(f, "the capture is cut at byte {at}"),
            PcapError::BadMagic(m) => write!(f, "not a pcap file (magic {m:#010x})"),
            PcapError::RecordTooLong { at, len } => write!(
                f,
                "the record at byte {at} is {len} bytes, longer than the snapshot length"
            ),
            PcapError::BadTag { tag } => write!(f, "exported-PDU tag {tag} runs past its record"),
            PcapError::NoDissectorName => f.write_str("the record names no dissector"),
        }
    }
}

impl std::error::Error for PcapError {}

/// A capture file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcapHeader {
    /// The link type (252 for our captures).
    pub linktype: u32,
    /// Timestamps in nanoseconds (else microseconds).
    pub nanos: bool,
    /// The snapshot length.
    pub snaplen: u32,
}

/// One record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Timestamp in nanoseconds.
    pub ts_ns: u64,
    /// The captured bytes.
    pub data: &'a [u8],
}

impl<'a> Record<'a> {
    /// For link type 252: the dissector name and the PDU after the tags.
    pub fn exported_pdu(&self) -> Result<(&'a str, &'a [u8]), PcapError> {
        let mut rest = self.data;
        let mut name = None;
        loop {
            let (Some(t), Some(l)) = (rest.get(0..2), rest.get(2..4)) else {
                return Err(PcapError::BadTag { tag: 0 });
            };
            let tag = u16::from_be_bytes([t[0], t[1]]);
            let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
            let value = rest.get(4..4 + len).ok_or(PcapError::BadTag { tag })?;
            rest = &rest[4 + len..];
            match tag {
                EXP_PDU_TAG_END_OF_OPT => break,
                EXP_PDU_TAG_DISSECTOR_NAME => {
                    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                    name = Some(
                        std::str::from_utf8(&value[..end])
                            .map_err(|_| PcapError::BadTag { tag })?,
                    );
                }
                _ => {}
            }
        }
        Ok((name.ok_or(PcapError::NoDissectorName)?, rest))
    }
}

/// A parsed capture: its header and its records in order.
#[derive(Debug, Clone)]
pub struct Pcap<'a> {
    /// The header.
    pub header: PcapHeader,
    /// The records.
    pub records: Vec<Record<'a>>,
}

/// Reads a whole capture.
pub fn parse(bytes: &[u8]) -> Result<Pcap<'_>, PcapError> {
    let h = bytes
        .get(..FILE_HEADER_LEN)
        .ok_or(PcapError::Truncated { at: 0 })?;
    let le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let be = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let (little, nanos) = match (le, be) {
        (MAGIC_MICROS, _) => (true, false),
        (MAGIC_NANOS, _) => (true, true),
        (_, MAGIC_MICROS) => (false, false),
        (_, MAGIC_NANOS) => (false, true),
        _ => return Err(PcapError::BadMagic(le)),
    };
    let u32_at = |b: &[u8], at: usize| {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if little {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let header = PcapHeader {
        snaplen: u32_at(h, 16),
        linktype: u32_at(h, 20),
        nanos,
    };
    let mut records = Vec::new();
    let mut at = FILE_HEADER_LEN;
    while at < bytes.len() {
        let r = bytes
            .get(at..at + RECORD_HEADER_LEN)
            .ok_or(PcapError::Truncated { at })?;
        let (sec, frac, incl) = (u32_at(r, 0), u32_at(r, 4), u32_at(r, 8));
        if incl > header.snaplen.max(SNAPLEN) {
            return Err(PcapError::RecordTooLong { at, len: incl });
        }
        let start = at + RECORD_HEADER_LEN;
        let data = bytes
            .get(start..start + incl as usize)
            .ok_or(PcapError::Truncated { at })?;
        let frac_ns = if nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        records.push(Record {
            ts_ns: u64::from(sec) * 1_000_000_000 + frac_ns,
            data,
        });
        at = start + incl as usize;
    }
    Ok(Pcap { header, records })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(1_500_000_123, &[0x11; 36]).unwrap();
        w.write_packet(2_000_000_000, &[0x22; 40]).unwrap();
        assert_eq!(w.packets(), 2);
        w.finish().unwrap()
    }

    #[test]
    fn records_carry_the_dissector_name_the_packet_and_its_vcrc() {
        let bytes = sample();
        // File header: nanosecond magic, version 2.4, link type 252.
        assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(&bytes[20..24], &[252, 0, 0, 0]);
        // The first record's tags, byte for byte as Wireshark's exported PDU expects them.
        assert_eq!(&bytes[40..44], &[0x00, 0x0c, 0x00, 0x0a]);
        assert_eq!(&bytes[44..54], b"infiniband");
        assert_eq!(&bytes[54..58], &[0, 0, 0, 0]);
        let p = parse(&bytes).unwrap();
        assert_eq!(
            p.header,
            PcapHeader {
                linktype: 252,
                nanos: true,
                snaplen: 65_535
            }
        );
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.records[0].ts_ns, 1_500_000_123);
        let (name, pdu) = p.records[0].exported_pdu().unwrap();
        assert_eq!(name, "infiniband");
        assert_eq!(pdu.len(), 36 + 2);
        assert_eq!(&pdu[..36], &[0x11; 36]);
        assert_eq!(pdu[36..], crc::vcrc(&[0x11; 36]).to_le_bytes());
        assert_eq!(p.records[1].exported_pdu().unwrap().1.len(), 42);
    }

    #[test]
    fn every_cut_and_damage_is_a_typed_error_never_a_panic() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            match parse(&bytes[..cut]) {
                Ok(p) => assert!(p.records.len() < 2 || cut == bytes.len()),
                Err(PcapError::Truncated { .. }) => {}
                Err(e) => panic!("cut at {cut}: {e}"),
            }
        }
        let mut bad = bytes.clone();
        bad[0] = 0;
        assert!(matches!(parse(&bad), Err(PcapError::BadMagic(_))));
        let mut long = bytes.clone();
        long[32..36].copy_from_slice(&0x0100_0000u32.to_le_bytes());
        assert!(matches!(
            parse(&long),
            Err(PcapError::RecordTooLong { at: 24, .. })
        ));
        // Damaged tags: a length past the record, no name, no end tag.
        for (at, v) in [(43usize, 0xffu8), (41, 0x07), (55, 0x30)] {
            let mut b = bytes.clone();
            b[at] = v;
            let p = parse(&b).unwrap();
            assert!(p.records[0].exported_pdu().is_err(), "byte {at} = {v:#x}");
        }
        // Random bytes after a valid header never panic.
        let mut x = 0x9e37_79b9u32;
        for n in 0..2000usize {
            let mut b = bytes[..24].to_vec();
            for _ in 0..(n % 97) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b.push(x as u8);
            }
            if let Ok(p) = parse(&b) {
                for r in &p.records {
                    let _ = r.exported_pdu();
                }
            }
        }
        // Big-endian files with microsecond stamps read too.
        let mut be = vec![0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4];
        be.extend_from_slice(&[0; 8]);
        be.extend_from_slice(&65_535u32.to_be_bytes());
        be.extend_from_slice(&252u32.to_be_bytes());
        be.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 0xaa]);
        let p = parse(&be).unwrap();
        assert!(!p.header.nanos);
        assert_eq!(p.records[0].ts_ns, 3_000_007_000);
        assert_eq!(p.records[0].data, &[0xaa]);
    }
}
