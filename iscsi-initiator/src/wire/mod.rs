//! iSCSI wire formats (RFC 7143 §11): BHS layouts, decoding of target PDUs, framing with
//! padding and digests, and text keys. Parse and emit only; no protocol state here.

pub mod bhs;
pub mod crc32c;
pub mod frame;
pub mod pdu;
pub mod text;

pub use bhs::{Opcode, BHS_LEN};
pub use frame::{DigestConfig, FrameError, Receiver, RxEvent};
pub use pdu::{decode_target_bhs, PduError, TargetHeader};
