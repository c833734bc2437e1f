//! A block device over a [`Client`]: the SCSI commands a boot disk needs, with their answers
//! checked and parsed (SPC-4, SBC-3). The kernel's CAM glue uses [`crate::session::Session`]
//! and [`crate::scsi`] directly; the ROM and the host use this.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::scsi::{
    self, Capacity, Cdb, Designator, Inquiry, Lun, ParseError, ScsiStatus, SenseInfo,
};
use crate::session::Direction;
use crate::transport::{Client, ClientError, Clock, Transport};

/// Why a block operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The session or transport failed.
    Client(ClientError),
    /// The target completed the command with a status other than GOOD.
    Status {
        /// SCSI status.
        status: ScsiStatus,
        /// Decoded sense data, if any.
        sense: Option<SenseInfo>,
    },
    /// The answer was malformed.
    Parse(ParseError),
    /// Fewer bytes than required arrived.
    Short {
        /// Bytes expected.
        expected: u32,
        /// Bytes transferred.
        got: u32,
    },
    /// The request does not fit the device or a single command.
    OutOfRange,
}

impl From<ClientError> for BlockError {
    fn from(e: ClientError) -> Self {
        BlockError::Client(e)
    }
}

impl From<ParseError> for BlockError {
    fn from(e: ParseError) -> Self {
        BlockError::Parse(e)
    }
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlockError::Client(e) => write!(f, "{e}"),
            BlockError::Status { status, sense } => match sense {
                Some(s) => write!(
                    f,
                    "command failed: status {:#04x}, sense key {:#x}, ASC {:#04x}, ASCQ {:#04x}",
                    status.0, s.key.0, s.asc, s.ascq
                ),
                None => write!(f, "command failed: status {:#04x}", status.0),
            },
            BlockError::Parse(e) => write!(f, "malformed answer from the target: {e:?}"),
            BlockError::Short { expected, got } => {
                write!(f, "short transfer: {got} of {expected} bytes")
            }
            BlockError::OutOfRange => f.write_str("request outside the device"),
        }
    }
}

/// One LUN of a logged-in session.
#[derive(Debug)]
pub struct BlockDevice<'a, T: Transport, C: Clock> {
    client: &'a mut Client<T, C>,
    lun: Lun,
    capacity: Option<Capacity>,
}

impl<'a, T: Transport, C: Clock> BlockDevice<'a, T, C> {
    /// The LUN `lun` of `client`'s session.
    pub fn new(client: &'a mut Client<T, C>, lun: Lun) -> Self {
        Self {
            client,
            lun,
            capacity: None,
        }
    }

    fn run(
        &mut self,
        cdb: Cdb,
        dir: Direction,
        buf: Vec<u8>,
        len: u32,
    ) -> Result<(u32, Vec<u8>), BlockError> {
        let (o, buf) = self.client.execute(self.lun, cdb, dir, buf, len)?;
        if o.status != ScsiStatus::GOOD {
            return Err(BlockError::Status {
                status: o.status,
                sense: o.sense.and_then(|s| s.decode()),
            });
        }
        Ok((o.transferred, buf))
    }

    fn read_data(&mut self, cdb: Cdb, len: u32) -> Result<Vec<u8>, BlockError> {
        let (n, mut buf) = self.run(cdb, Direction::Read, vec![0; len as usize], len)?;
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// TEST UNIT READY.
    pub fn test_unit_ready(&mut self) -> Result<(), BlockError> {
        self.run(Cdb::test_unit_ready(), Direction::None, Vec::new(), 0)
            .map(|_| ())
    }

    /// Standard INQUIRY data.
    pub fn inquiry(&mut self) -> Result<Inquiry, BlockError> {
        let d = self.read_data(Cdb::inquiry(None, 96), 96)?;
        Ok(Inquiry::parse(&d)?)
    }

    /// Unit Serial Number (VPD 0x80).
    pub fn unit_serial(&mut self) -> Result<String, BlockError> {
        let d = self.read_data(Cdb::inquiry(Some(0x80), 255), 255)?;
        Ok(scsi::parse_unit_serial(&d)?)
    }

    /// Device Identification (VPD 0x83).
    pub fn device_identification(&mut self) -> Result<Vec<Designator>, BlockError> {
        let d = self.read_data(Cdb::inquiry(Some(0x83), 1024), 1024)?;
        Ok(scsi::parse_device_identification(&d)?)
    }

    /// READ CAPACITY (10), and (16) when the device is too large for (10) (SBC-3 §5.16).
    pub fn capacity(&mut self) -> Result<Capacity, BlockError> {
        let d = self.read_data(Cdb::read_capacity10(), 8)?;
        let mut cap = Capacity::parse10(&d)?;
        if cap.blocks > u64::from(u32::MAX) {
            let d = self.read_data(Cdb::read_capacity16(32), 32)?;
            cap = Capacity::parse16(&d)?;
        }
        self.capacity = Some(cap);
        Ok(cap)
    }

    /// REPORT LUNS.
    pub fn report_luns(&mut self) -> Result<Vec<Lun>, BlockError> {
        let d = self.read_data(Cdb::report_luns(4096), 4096)?;
        Ok(scsi::parse_report_luns(&d)?.into_iter().map(Lun).collect())
    }

    fn block_len(&mut self) -> Result<u32, BlockError> {
        match self.capacity {
            Some(c) => Ok(c.block_len),
            None => Ok(self.capacity()?.block_len),
        }
    }

    fn check_range(&mut self, lba: u64, blocks: u64) -> Result<u32, BlockError> {
        let bl = self.block_len()?;
        let cap = self.capacity.ok_or(BlockError::OutOfRange)?;
        let end = lba.checked_add(blocks).ok_or(BlockError::OutOfRange)?;
        if end > cap.blocks || blocks.saturating_mul(u64::from(bl)) > u64::from(u32::MAX) {
            return Err(BlockError::OutOfRange);
        }
        Ok(bl)
    }

    /// READ `blocks` blocks at `lba` into `buf` (resized to fit); returns the buffer.
    pub fn read(&mut self, lba: u64, blocks: u32, mut buf: Vec<u8>) -> Result<Vec<u8>, BlockError> {
        let bl = self.check_range(lba, blocks.into())?;
        let len = blocks * bl;
        buf.resize(len as usize, 0);
        let (n, buf) = self.run(Cdb::read(lba, blocks), Direction::Read, buf, len)?;
        if n != len {
            return Err(BlockError::Short {
                expected: len,
                got: n,
            });
        }
        Ok(buf)
    }

    /// WRITE `data` (whole blocks) at `lba`; returns the buffer for reuse.
    pub fn write(&mut self, lba: u64, data: Vec<u8>) -> Result<Vec<u8>, BlockError> {
        let bl = self.block_len()?;
        if data.is_empty() || data.len() % bl as usize != 0 {
            return Err(BlockError::OutOfRange);
        }
        let blocks = (data.len() / bl as usize) as u64;
        self.check_range(lba, blocks)?;
        let len = data.len() as u32;
        let (n, buf) = self.run(Cdb::write(lba, blocks as u32), Direction::Write, data, len)?;
        if n != len {
            return Err(BlockError::Short {
                expected: len,
                got: n,
            });
        }
        Ok(buf)
    }

    /// SYNCHRONIZE CACHE for the whole device.
    pub fn synchronize_cache(&mut self) -> Result<(), BlockError> {
        self.run(Cdb::synchronize_cache(), Direction::None, Vec::new(), 0)
            .map(|_| ())
    }
}
