//! The SCSI block layer: CDBs for the commands a boot disk needs and strict parsing of what
//! they return (SPC-4: INQUIRY, VPD 0x80/0x83, TEST UNIT READY, REPORT LUNS, sense data;
//! SBC-3: READ CAPACITY (10)/(16), READ/WRITE (10)/(16), SYNCHRONIZE CACHE).

use alloc::string::String;
use alloc::vec::Vec;

/// SCSI status byte (SAM-5 §5.3). A newtype: any value may arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScsiStatus(pub u8);

impl ScsiStatus {
    /// GOOD.
    pub const GOOD: ScsiStatus = ScsiStatus(0x00);
    /// CHECK CONDITION.
    pub const CHECK_CONDITION: ScsiStatus = ScsiStatus(0x02);
    /// CONDITION MET.
    pub const CONDITION_MET: ScsiStatus = ScsiStatus(0x04);
    /// BUSY.
    pub const BUSY: ScsiStatus = ScsiStatus(0x08);
    /// RESERVATION CONFLICT.
    pub const RESERVATION_CONFLICT: ScsiStatus = ScsiStatus(0x18);
    /// TASK SET FULL.
    pub const TASK_SET_FULL: ScsiStatus = ScsiStatus(0x28);
    /// ACA ACTIVE.
    pub const ACA_ACTIVE: ScsiStatus = ScsiStatus(0x30);
    /// TASK ABORTED.
    pub const TASK_ABORTED: ScsiStatus = ScsiStatus(0x40);
}

/// Sense key (SPC-4 §4.5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SenseKey(pub u8);

impl SenseKey {
    /// NO SENSE.
    pub const NO_SENSE: SenseKey = SenseKey(0x0);
    /// RECOVERED ERROR.
    pub const RECOVERED_ERROR: SenseKey = SenseKey(0x1);
    /// NOT READY.
    pub const NOT_READY: SenseKey = SenseKey(0x2);
    /// MEDIUM ERROR.
    pub const MEDIUM_ERROR: SenseKey = SenseKey(0x3);
    /// HARDWARE ERROR.
    pub const HARDWARE_ERROR: SenseKey = SenseKey(0x4);
    /// ILLEGAL REQUEST.
    pub const ILLEGAL_REQUEST: SenseKey = SenseKey(0x5);
    /// UNIT ATTENTION.
    pub const UNIT_ATTENTION: SenseKey = SenseKey(0x6);
    /// DATA PROTECT.
    pub const DATA_PROTECT: SenseKey = SenseKey(0x7);
    /// ABORTED COMMAND.
    pub const ABORTED_COMMAND: SenseKey = SenseKey(0xb);
}

/// Longest sense data kept (SPC-4 allows 252 bytes).
pub const MAX_SENSE: usize = 252;

/// Raw sense data as returned by the target.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    len: u8,
    bytes: [u8; MAX_SENSE],
}

impl core::fmt::Debug for Sense {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.decode() {
            Some(d) => write!(f, "Sense({d:?})"),
            None => write!(f, "Sense(raw {:02x?})", self.as_bytes()),
        }
    }
}

/// Decoded sense key and additional sense code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenseInfo {
    /// Sense key.
    pub key: SenseKey,
    /// ASC.
    pub asc: u8,
    /// ASCQ.
    pub ascq: u8,
    /// Descriptor format (0x72/0x73) rather than fixed (0x70/0x71).
    pub descriptor: bool,
    /// Deferred error (0x71/0x73).
    pub deferred: bool,
}

impl Sense {
    /// Keep up to [`MAX_SENSE`] bytes.
    pub fn new(data: &[u8]) -> Self {
        let n = data.len().min(MAX_SENSE);
        let mut bytes = [0u8; MAX_SENSE];
        bytes[..n].copy_from_slice(&data[..n]);
        Self {
            len: n as u8,
            bytes,
        }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Decode fixed (SPC-4 §4.5.3) or descriptor (§4.5.2) format.
    pub fn decode(&self) -> Option<SenseInfo> {
        let b = self.as_bytes();
        let code = b.first()? & 0x7f;
        match code {
            0x70 | 0x71 => {
                let key = b.get(2)? & 0x0f;
                // ASC/ASCQ sit at 12/13 when the additional length covers them.
                let (asc, ascq) = match (b.get(12), b.get(13)) {
                    (Some(&a), Some(&q)) => (a, q),
                    _ => (0, 0),
                };
                Some(SenseInfo {
                    key: SenseKey(key),
                    asc,
                    ascq,
                    descriptor: false,
                    deferred: code == 0x71,
                })
            }
            0x72 | 0x73 => Some(SenseInfo {
                key: SenseKey(b.get(1)? & 0x0f),
                asc: *b.get(2)?,
                ascq: *b.get(3)?,
                descriptor: true,
                deferred: code == 0x73,
            }),
            _ => None,
        }
    }
}

/// Largest CDB we send (the extended-CDB AHS carries up to 260 bytes; 32 covers every
/// command this layer builds and variable-length CDBs of SBC-3).
pub const MAX_CDB: usize = 32;

/// A CDB with its length.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cdb {
    bytes: [u8; MAX_CDB],
    len: u8,
}

impl core::fmt::Debug for Cdb {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Cdb({:02x?})", self.as_bytes())
    }
}

impl Cdb {
    /// From bytes; `None` if empty or longer than [`MAX_CDB`].
    pub fn new(b: &[u8]) -> Option<Self> {
        if b.is_empty() || b.len() > MAX_CDB {
            return None;
        }
        let mut bytes = [0u8; MAX_CDB];
        bytes[..b.len()].copy_from_slice(b);
        Some(Self {
            bytes,
            len: b.len() as u8,
        })
    }

    /// The CDB bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// TEST UNIT READY.
    pub fn test_unit_ready() -> Self {
        Self::from6([0x00, 0, 0, 0, 0, 0])
    }

    fn from6(b: [u8; 6]) -> Self {
        let mut bytes = [0u8; MAX_CDB];
        bytes[..6].copy_from_slice(&b);
        Self { bytes, len: 6 }
    }

    fn zeroed(len: u8, op: u8) -> Self {
        let mut bytes = [0u8; MAX_CDB];
        bytes[0] = op;
        Self { bytes, len }
    }

    /// INQUIRY: standard data (`page` None) or a VPD page.
    pub fn inquiry(page: Option<u8>, alloc_len: u16) -> Self {
        let mut c = Self::from6([0x12, 0, 0, 0, 0, 0]);
        if let Some(p) = page {
            c.bytes[1] = 0x01; // EVPD
            c.bytes[2] = p;
        }
        c.bytes[3..5].copy_from_slice(&alloc_len.to_be_bytes());
        c
    }

    /// READ CAPACITY (10).
    pub fn read_capacity10() -> Self {
        Self::zeroed(10, 0x25)
    }

    /// READ CAPACITY (16) (SERVICE ACTION IN (16), service action 0x10).
    pub fn read_capacity16(alloc_len: u32) -> Self {
        let mut c = Self::zeroed(16, 0x9e);
        c.bytes[1] = 0x10;
        c.bytes[10..14].copy_from_slice(&alloc_len.to_be_bytes());
        c
    }

    /// READ (10) or READ (16), whichever fits.
    pub fn read(lba: u64, blocks: u32) -> Self {
        Self::rw(lba, blocks, 0x28, 0x88)
    }

    /// WRITE (10) or WRITE (16), whichever fits.
    pub fn write(lba: u64, blocks: u32) -> Self {
        Self::rw(lba, blocks, 0x2a, 0x8a)
    }

    fn rw(lba: u64, blocks: u32, op10: u8, op16: u8) -> Self {
        if lba <= u64::from(u32::MAX) && blocks <= u32::from(u16::MAX) {
            let mut c = Self::zeroed(10, op10);
            c.bytes[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
            c.bytes[7..9].copy_from_slice(&(blocks as u16).to_be_bytes());
            c
        } else {
            let mut c = Self::zeroed(16, op16);
            c.bytes[2..10].copy_from_slice(&lba.to_be_bytes());
            c.bytes[10..14].copy_from_slice(&blocks.to_be_bytes());
            c
        }
    }

    /// READ (16) explicitly.
    pub fn read16(lba: u64, blocks: u32) -> Self {
        let mut c = Self::zeroed(16, 0x88);
        c.bytes[2..10].copy_from_slice(&lba.to_be_bytes());
        c.bytes[10..14].copy_from_slice(&blocks.to_be_bytes());
        c
    }

    /// WRITE (16) explicitly.
    pub fn write16(lba: u64, blocks: u32) -> Self {
        let mut c = Self::zeroed(16, 0x8a);
        c.bytes[2..10].copy_from_slice(&lba.to_be_bytes());
        c.bytes[10..14].copy_from_slice(&blocks.to_be_bytes());
        c
    }

    /// SYNCHRONIZE CACHE (10) for the whole medium.
    pub fn synchronize_cache() -> Self {
        Self::zeroed(10, 0x35)
    }

    /// REPORT LUNS (select report 0).
    pub fn report_luns(alloc_len: u32) -> Self {
        let mut c = Self::zeroed(12, 0xa0);
        c.bytes[6..10].copy_from_slice(&alloc_len.to_be_bytes());
        c
    }
}

/// A malformed answer to a SCSI command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the fields it must hold.
    Truncated,
    /// A field has a value the standard does not allow.
    Invalid(&'static str),
}

/// Standard INQUIRY data (SPC-4 §6.6.2), the parts we use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inquiry {
    /// Peripheral qualifier (3 bits).
    pub qualifier: u8,
    /// Peripheral device type (0 = block device, 0x0c = storage array controller).
    pub device_type: u8,
    /// Removable medium.
    pub removable: bool,
    /// VERSION.
    pub version: u8,
    /// T10 vendor identification, trimmed.
    pub vendor: String,
    /// Product identification, trimmed.
    pub product: String,
    /// Product revision level, trimmed.
    pub revision: String,
}

fn ascii(b: &[u8]) -> String {
    let s: String = b
        .iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .collect();
    String::from(s.trim())
}

impl Inquiry {
    /// Parse standard INQUIRY data.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        if b.len() < 36 {
            return Err(ParseError::Truncated);
        }
        Ok(Self {
            qualifier: b[0] >> 5,
            device_type: b[0] & 0x1f,
            removable: b[1] & 0x80 != 0,
            version: b[2],
            vendor: ascii(&b[8..16]),
            product: ascii(&b[16..32]),
            revision: ascii(&b[32..36]),
        })
    }
}

/// Unit Serial Number VPD page 0x80 (SPC-4 §7.8.17).
pub fn parse_unit_serial(b: &[u8]) -> Result<String, ParseError> {
    if b.len() < 4 {
        return Err(ParseError::Truncated);
    }
    if b[1] != 0x80 {
        return Err(ParseError::Invalid("not VPD page 0x80"));
    }
    let n = usize::from(u16::from_be_bytes([b[2], b[3]]));
    let body = b.get(4..4 + n).ok_or(ParseError::Truncated)?;
    Ok(ascii(body))
}

/// One identification descriptor of VPD page 0x83 (SPC-4 §7.8.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Designator {
    /// Code set (1 binary, 2 ASCII, 3 UTF-8).
    pub code_set: u8,
    /// Association (0 LU, 1 target port, 2 target device).
    pub association: u8,
    /// Designator type (1 T10 vendor, 2 EUI-64, 3 NAA, 8 SCSI name, ...).
    pub designator_type: u8,
    /// The designator bytes.
    pub value: Vec<u8>,
}

/// Device Identification VPD page 0x83.
pub fn parse_device_identification(b: &[u8]) -> Result<Vec<Designator>, ParseError> {
    if b.len() < 4 {
        return Err(ParseError::Truncated);
    }
    if b[1] != 0x83 {
        return Err(ParseError::Invalid("not VPD page 0x83"));
    }
    let n = usize::from(u16::from_be_bytes([b[2], b[3]]));
    let mut rest = b.get(4..4 + n).ok_or(ParseError::Truncated)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(ParseError::Truncated);
        }
        let len = usize::from(rest[3]);
        let value = rest.get(4..4 + len).ok_or(ParseError::Truncated)?;
        out.push(Designator {
            code_set: rest[0] & 0x0f,
            association: (rest[1] >> 4) & 0x03,
            designator_type: rest[1] & 0x0f,
            value: value.to_vec(),
        });
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// Capacity of a block device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Number of logical blocks (last LBA + 1).
    pub blocks: u64,
    /// Logical block length in bytes.
    pub block_len: u32,
}

impl Capacity {
    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_len))
    }

    /// Parse READ CAPACITY (10) data. A returned LBA of 0xffffffff means "use (16)".
    pub fn parse10(b: &[u8]) -> Result<Self, ParseError> {
        let b: &[u8; 8] = b
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or(ParseError::Truncated)?;
        let last = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        if len == 0 {
            return Err(ParseError::Invalid("zero block length"));
        }
        Ok(Self {
            blocks: u64::from(last) + 1,
            block_len: len,
        })
    }

    /// Parse READ CAPACITY (16) data.
    pub fn parse16(b: &[u8]) -> Result<Self, ParseError> {
        let b: &[u8; 12] = b
            .get(..12)
            .and_then(|s| s.try_into().ok())
            .ok_or(ParseError::Truncated)?;
        let last = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let len = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        if len == 0 {
            return Err(ParseError::Invalid("zero block length"));
        }
        Ok(Self {
            blocks: last
                .checked_add(1)
                .ok_or(ParseError::Invalid("last LBA overflows"))?,
            block_len: len,
        })
    }
}

/// Parse REPORT LUNS data into 8-byte LUN fields.
pub fn parse_report_luns(b: &[u8]) -> Result<Vec<[u8; 8]>, ParseError> {
    if b.len() < 8 {
        return Err(ParseError::Truncated);
    }
    let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if n % 8 != 0 {
        return Err(ParseError::Invalid("LUN list length not a multiple of 8"));
    }
    // The list may be longer than the allocation; keep what arrived.
    let body = &b[8..];
    let avail = body.len().min(n) / 8 * 8;
    Ok(body[..avail]
        .chunks_exact(8)
        .map(|c| {
            let mut l = [0u8; 8];
            l.copy_from_slice(c);
            l
        })
        .collect())
}

/// A LUN in the 8-byte SAM-5 format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Lun(pub [u8; 8]);

impl Lun {
    /// Single-level LUN: peripheral addressing below 256, flat addressing up to 16383
    /// (SAM-5 §4.7.7).
    pub fn from_number(n: u16) -> Self {
        let mut b = [0u8; 8];
        if n < 256 {
            b[1] = n as u8;
        } else {
            let n = n & 0x3fff;
            b[0] = 0x40 | (n >> 8) as u8;
            b[1] = n as u8;
        }
        Lun(b)
    }

    /// The number of a single-level LUN in peripheral or flat addressing.
    pub fn number(&self) -> Option<u16> {
        match self.0[0] >> 6 {
            0 if self.0[0] == 0 => Some(u16::from(self.0[1])),
            1 => Some((u16::from(self.0[0] & 0x3f) << 8) | u16::from(self.0[1])),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdbs() {
        assert_eq!(
            Cdb::read(0x1234, 8).as_bytes(),
            &[0x28, 0, 0, 0, 0x12, 0x34, 0, 0, 8, 0]
        );
        let c = Cdb::write(1 << 33, 2);
        assert_eq!(c.as_bytes().len(), 16);
        assert_eq!(c.as_bytes()[0], 0x8a);
        assert_eq!(&c.as_bytes()[2..10], &(1u64 << 33).to_be_bytes());
        assert_eq!(Cdb::read(0, 70_000).as_bytes()[0], 0x88);
        assert_eq!(
            Cdb::inquiry(Some(0x83), 255).as_bytes(),
            &[0x12, 1, 0x83, 0, 255, 0]
        );
        assert_eq!(Cdb::read_capacity16(32).as_bytes()[..2], [0x9e, 0x10]);
        assert!(Cdb::new(&[0; 33]).is_none());
        assert!(Cdb::new(&[]).is_none());
    }

    #[test]
    fn sense_formats() {
        let fixed = [
            0x70, 0, 0x06, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x29, 0x00, 0, 0, 0, 0,
        ];
        let s = Sense::new(&fixed).decode().unwrap();
        assert_eq!(
            (s.key, s.asc, s.ascq, s.descriptor),
            (SenseKey::UNIT_ATTENTION, 0x29, 0, false)
        );
        let desc = [0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0];
        let s = Sense::new(&desc).decode().unwrap();
        assert_eq!(
            (s.key, s.asc, s.descriptor),
            (SenseKey::ILLEGAL_REQUEST, 0x24, true)
        );
        assert_eq!(Sense::new(&[0x70, 0]).decode(), None);
        assert_eq!(Sense::new(&[]).decode(), None);
        assert_eq!(Sense::new(&[0x7f, 0, 0, 0]).decode(), None);
    }

    #[test]
    fn parsers() {
        let cap = Capacity::parse10(&[0, 0, 0xff, 0xff, 0, 0, 2, 0]).unwrap();
        assert_eq!(
            (cap.blocks, cap.block_len, cap.bytes()),
            (0x1_0000, 512, 0x200_0000)
        );
        assert_eq!(Capacity::parse10(&[0; 7]), Err(ParseError::Truncated));
        let mut c16 = [0u8; 32];
        c16[7] = 9;
        c16[10] = 0x10;
        assert_eq!(
            Capacity::parse16(&c16).unwrap(),
            Capacity {
                blocks: 10,
                block_len: 4096
            }
        );
        let serial = [0, 0x80, 0, 4, b'a', b'b', b'c', b' '];
        assert_eq!(parse_unit_serial(&serial).unwrap(), "abc");
        assert_eq!(parse_unit_serial(&serial[..6]), Err(ParseError::Truncated));
        let id = [0, 0x83, 0, 12, 1, 3, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        let d = parse_device_identification(&id).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].designator_type, d[0].value.len()), (3, 8));
        assert_eq!(
            parse_device_identification(&id[..15]),
            Err(ParseError::Truncated)
        );
        let luns = [
            0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(parse_report_luns(&luns).unwrap().len(), 2);
        assert_eq!(Lun::from_number(1).number(), Some(1));
        assert_eq!(Lun::from_number(300).number(), Some(300));
        assert_eq!(Lun::from_number(300).0[0], 0x41);
        let mut inq = [b' '; 36];
        inq[0] = 0x00;
        inq[8..11].copy_from_slice(b"IET");
        let i = Inquiry::parse(&inq).unwrap();
        assert_eq!((i.device_type, i.vendor.as_str()), (0, "IET"));
    }
}
