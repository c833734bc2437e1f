//! Hermon MMIO registers: BAR0 (the HCR, the reset register) and BAR2 (UAR pages with the send
//! and EQ doorbells). Offsets from iPXE `src/drivers/infiniband/hermon.h` (`HERMON_HCR_BASE`,
//! `HERMON_RESET_OFFSET`, `HERMON_RESET_MAGIC`, `HERMON_UAR_NON_EQ_PAGE`,
//! `HERMON_DB_POST_SND_OFFSET`, `HERMON_DB_EQ_OFFSET`); the HCR control dword's fields from
//! MT25408_PRM.h `struct hermonprm_hca_command_register_st` ([`super::prm::hcr`]). All registers
//! hold big-endian dwords, converted here.

use super::prm::{hcr, Field};
use crate::hal::{Bar, Hal};

/// BAR0 bytes the driver touches (iPXE maps `HERMON_PCI_CONFIG_BAR_SIZE` = 1 MiB).
pub const CONFIG_BAR_SIZE: usize = 0x10_0000;
/// UAR page size.
pub const UAR_PAGE: usize = 4096;
/// The UAR page used for send doorbells (`HERMON_UAR_NON_EQ_PAGE`).
pub const UAR_NON_EQ_PAGE: usize = 128;
/// BAR2 bytes the driver needs: 129 pages, one more than iPXE maps (its 128-page bug, §2.1).
pub const UAR_BAR_MIN_SIZE: usize = (UAR_NON_EQ_PAGE + 1) * UAR_PAGE;

/// HCR base in BAR0.
pub const HCR_BASE: usize = 0x8_0680;
/// Reset register in BAR0.
pub const RESET_OFFSET: usize = 0x0f_0010;
/// Reset magic.
pub const RESET_MAGIC: u32 = 0x0100_0001;
/// Send doorbell offset inside the non-EQ UAR page.
pub const SEND_DB_OFFSET: usize = 0x14;

/// Writes a big-endian dword register.
pub fn write_be<H: Hal>(hal: &H, bar: Bar, off: usize, v: u32) {
    hal.mmio_write32(bar, off, u32::from_le_bytes(v.to_be_bytes()));
}

/// Reads a big-endian dword register.
pub fn read_be<H: Hal>(hal: &H, bar: Bar, off: usize) -> u32 {
    u32::from_be_bytes(hal.mmio_read32(bar, off).to_le_bytes())
}

/// Byte offset of an HCR dword from the HCR base.
pub const fn hcr_offset(f: Field) -> usize {
    HCR_BASE + 4 * f.dw
}

/// HCR dword 6: opcode, modifier, toggle, event, go, status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HcrCtrl(pub u32);

impl HcrCtrl {
    /// Byte offset of dword 6 from the HCR base.
    pub const OFFSET: usize = 4 * hcr::GO.dw;

    fn get(self, f: Field) -> u32 {
        let m = if f.width >= 32 {
            u32::MAX
        } else {
            (1 << f.width) - 1
        };
        (self.0 >> f.lsb) & m
    }

    fn with(self, f: Field, v: u32) -> Self {
        let m = if f.width >= 32 {
            u32::MAX
        } else {
            (1 << f.width) - 1
        };
        Self((self.0 & !(m << f.lsb)) | ((v & m) << f.lsb))
    }

    /// A command word.
    pub fn command(opcode: u16, op_mod: u8, toggle: bool) -> Self {
        Self(0)
            .with(hcr::OPCODE, u32::from(opcode))
            .with(hcr::OPCODE_MODIFIER, u32::from(op_mod))
            .with(hcr::T, u32::from(toggle))
            .with(hcr::GO, 1)
    }
    /// Opcode.
    pub fn opcode(self) -> u16 {
        self.get(hcr::OPCODE) as u16
    }
    /// Opcode modifier.
    pub fn op_mod(self) -> u8 {
        self.get(hcr::OPCODE_MODIFIER) as u8
    }
    /// Go: set by software, cleared by the device when done.
    pub fn go(self) -> bool {
        self.get(hcr::GO) != 0
    }
    /// Toggle.
    pub fn toggle(self) -> bool {
        self.get(hcr::T) != 0
    }
    /// Event-on-completion requested.
    pub fn event(self) -> bool {
        self.get(hcr::E) != 0
    }
    /// Status.
    pub fn status(self) -> u8 {
        self.get(hcr::STATUS) as u8
    }
    /// Same word with go cleared and `status` set (what the device writes back).
    pub fn completed(self, status: u8) -> Self {
        self.with(hcr::GO, 0).with(hcr::STATUS, u32::from(status))
    }

    /// Reads the register.
    pub fn read<H: Hal>(hal: &H) -> Self {
        Self(read_be(hal, Bar::BAR0, HCR_BASE + Self::OFFSET))
    }
    /// Writes the register.
    pub fn write<H: Hal>(self, hal: &H) {
        write_be(hal, Bar::BAR0, HCR_BASE + Self::OFFSET, self.0);
    }
}

/// EQ consumer-index doorbell offset in BAR2: four EQs per UAR page, at 0x800 + 8 × (eqn % 4)
/// of page eqn / 4 (iPXE `HERMON_DB_EQ_OFFSET`; Linux `eq.c` `mlx4_get_eq_uar`).
pub fn eq_doorbell_offset(eqn: u32) -> usize {
    0x800 + UAR_PAGE * (eqn as usize / 4) + 8 * (eqn as usize % 4)
}

/// Send doorbell offset in BAR2: the non-EQ UAR page, `HERMON_DB_POST_SND_OFFSET` 0x14.
pub const fn send_doorbell_offset() -> usize {
    UAR_NON_EQ_PAGE * UAR_PAGE + SEND_DB_OFFSET
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcr_ctrl_bits() {
        let c = HcrCtrl::command(0x024, 3, true);
        assert_eq!(c.0, 0x024 | 0x3000 | (1 << 21) | (1 << 23));
        assert!(c.go() && c.toggle() && !c.event());
        assert_eq!(c.opcode(), 0x024);
        assert_eq!(c.op_mod(), 3);
        let d = c.completed(0x10);
        assert!(!d.go() && d.toggle());
        assert_eq!(d.status(), 0x10);
        assert_eq!(HcrCtrl::OFFSET, 0x18);
        assert_eq!(hcr_offset(hcr::OUT_PARAM.h), HCR_BASE + 0x0c);
        assert_eq!(send_doorbell_offset(), 128 * 4096 + 0x14);
        assert_eq!(eq_doorbell_offset(33), 0x800 + 8 * 4096 + 8);
        assert!(send_doorbell_offset() + 4 <= UAR_BAR_MIN_SIZE);
    }
}
