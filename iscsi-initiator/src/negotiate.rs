//! Operational parameter negotiation (RFC 7143 §6.2 and §13).
//!
//! The initiator offers its values; the target answers or offers its own. Results follow the
//! RFC's function of each key: list (first acceptable in the offerer's order), numerical
//! minimum or maximum, boolean OR or AND, or declarative. Values from the target are checked
//! against the legal range and clamped to local limits, so a target can never make this
//! initiator use a larger segment, burst or R2T count than it was configured for.

use alloc::string::String;
use alloc::vec::Vec;

use crate::wire::text::{parse_bool, parse_number, push_pair};

/// How a digest is offered (RFC 7143 §13.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestChoice {
    /// Offer `None` only.
    None,
    /// Offer `CRC32C` only: the login fails if the target will not use it.
    Crc32c,
    /// Offer `CRC32C,None`.
    PreferCrc32c,
}

/// Local configuration and limits for operational negotiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationalConfig {
    /// HeaderDigest offer.
    pub header_digest: DigestChoice,
    /// DataDigest offer.
    pub data_digest: DigestChoice,
    /// MaxRecvDataSegmentLength we declare (our receive limit).
    pub max_recv_data_segment_length: u32,
    /// Cap on the target's declared MaxRecvDataSegmentLength (our largest send segment).
    pub max_send_data_segment_length: u32,
    /// MaxBurstLength we offer (and the most we accept).
    pub max_burst_length: u32,
    /// FirstBurstLength we offer (and the most we accept).
    pub first_burst_length: u32,
    /// InitialR2T we offer (`false` lets unsolicited data flow if the target agrees).
    pub initial_r2t: bool,
    /// ImmediateData we offer.
    pub immediate_data: bool,
    /// MaxOutstandingR2T we offer (and the most we accept).
    pub max_outstanding_r2t: u16,
    /// DefaultTime2Wait we offer.
    pub default_time2wait: u16,
    /// DefaultTime2Retain we offer.
    pub default_time2retain: u16,
}

impl Default for OperationalConfig {
    fn default() -> Self {
        Self {
            header_digest: DigestChoice::None,
            data_digest: DigestChoice::None,
            max_recv_data_segment_length: 256 * 1024,
            max_send_data_segment_length: 256 * 1024,
            max_burst_length: 1024 * 1024,
            first_burst_length: 256 * 1024,
            initial_r2t: false,
            immediate_data: true,
            max_outstanding_r2t: 4,
            default_time2wait: 2,
            default_time2retain: 0,
        }
    }
}

/// The negotiated parameters of a session and its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// CRC32C header digest in use.
    pub header_digest: bool,
    /// CRC32C data digest in use.
    pub data_digest: bool,
    /// Our declared receive limit.
    pub max_recv_data_segment_length: u32,
    /// The target's receive limit, clamped: the largest data segment we send.
    pub max_send_data_segment_length: u32,
    /// MaxBurstLength.
    pub max_burst_length: u32,
    /// FirstBurstLength.
    pub first_burst_length: u32,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// ImmediateData.
    pub immediate_data: bool,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u16,
    /// DefaultTime2Wait (seconds).
    pub default_time2wait: u16,
    /// DefaultTime2Retain (seconds).
    pub default_time2retain: u16,
    /// MaxConnections.
    pub max_connections: u16,
    /// ErrorRecoveryLevel.
    pub error_recovery_level: u8,
    /// DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// TargetAlias, if the target declared one.
    pub target_alias: Option<String>,
    /// TargetPortalGroupTag, if declared.
    pub target_portal_group_tag: Option<u16>,
}

impl Default for Negotiated {
    /// The RFC 7143 §13 defaults, which hold for every key not negotiated.
    fn default() -> Self {
        Self {
            header_digest: false,
            data_digest: false,
            max_recv_data_segment_length: 8192,
            max_send_data_segment_length: 8192,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            initial_r2t: true,
            immediate_data: true,
            max_outstanding_r2t: 1,
            default_time2wait: 2,
            default_time2retain: 20,
            max_connections: 1,
            error_recovery_level: 0,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            target_alias: None,
            target_portal_group_tag: None,
        }
    }
}

/// A negotiation failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NegotiationError {
    /// A value outside the key's legal range or syntax.
    BadValue(&'static str),
    /// A list answer that was not among our offered values.
    NotOffered(&'static str),
    /// We require a CRC32C digest and the target refused it.
    DigestRefused(&'static str),
    /// DataPDUInOrder=No or DataSequenceInOrder=No, which this initiator does not support.
    OutOfOrderUnsupported,
    /// An ErrorRecoveryLevel above 0 (the result is a minimum, so the target broke the rule).
    ErrorRecoveryLevel,
}

impl core::fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NegotiationError::BadValue(k) => write!(f, "target sent an invalid value for {k}"),
            NegotiationError::NotOffered(k) => {
                write!(f, "target chose a value for {k} that was not offered")
            }
            NegotiationError::DigestRefused(k) => write!(f, "target refused CRC32C for {k}"),
            NegotiationError::OutOfOrderUnsupported => {
                f.write_str("target requires out-of-order data")
            }
            NegotiationError::ErrorRecoveryLevel => {
                f.write_str("target chose ErrorRecoveryLevel above 0")
            }
        }
    }
}

bitflags::bitflags! {
    /// Keys we offered and still expect an answer to.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Offered: u16 {
        const HEADER_DIGEST = 1 << 0;
        const DATA_DIGEST = 1 << 1;
        const MAX_BURST = 1 << 2;
        const FIRST_BURST = 1 << 3;
        const INITIAL_R2T = 1 << 4;
        const IMMEDIATE_DATA = 1 << 5;
        const MAX_OUTSTANDING_R2T = 1 << 6;
        const TIME2WAIT = 1 << 7;
        const TIME2RETAIN = 1 << 8;
        const MAX_CONNECTIONS = 1 << 9;
        const ERL = 1 << 10;
        const DATA_PDU_IN_ORDER = 1 << 11;
        const DATA_SEQ_IN_ORDER = 1 << 12;
    }
}

/// Negotiation state for one login.
#[derive(Debug)]
pub struct Negotiator {
    cfg: OperationalConfig,
    discovery: bool,
    offered: Offered,
    result: Negotiated,
}

const MAX_24: u64 = (1 << 24) - 1;

fn digest_offer(c: DigestChoice) -> &'static str {
    match c {
        DigestChoice::None => "None",
        DigestChoice::Crc32c => "CRC32C",
        DigestChoice::PreferCrc32c => "CRC32C,None",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// Answers that mean "no result": the key keeps its default (RFC 7143 §6.2).
fn is_non_answer(v: &str) -> bool {
    matches!(v, "Reject" | "Irrelevant" | "NotUnderstood")
}

impl Negotiator {
    /// Start negotiating; `discovery` limits the offer to keys that apply to discovery sessions
    /// (RFC 7143 §13: most session keys are Irrelevant there).
    pub fn new(cfg: OperationalConfig, discovery: bool) -> Self {
        let mut result = Negotiated {
            max_recv_data_segment_length: cfg.max_recv_data_segment_length,
            ..Negotiated::default()
        };
        // Until the target declares its limit we send at most the default 8192 (RFC 7143 §13.12).
        result.max_send_data_segment_length = 8192.min(cfg.max_send_data_segment_length);
        Self {
            cfg,
            discovery,
            offered: Offered::empty(),
            result,
        }
    }

    /// Append our offers to `out`.
    pub fn offer(&mut self, out: &mut Vec<u8>) {
        let c = self.cfg;
        push_pair(out, "HeaderDigest", digest_offer(c.header_digest));
        push_pair(out, "DataDigest", digest_offer(c.data_digest));
        self.offered |= Offered::HEADER_DIGEST | Offered::DATA_DIGEST;
        let mut num = [0u8; 20];
        push_pair(
            out,
            "MaxRecvDataSegmentLength",
            fmt_u32(c.max_recv_data_segment_length, &mut num),
        );
        push_pair(
            out,
            "DefaultTime2Wait",
            fmt_u32(c.default_time2wait.into(), &mut num),
        );
        push_pair(
            out,
            "DefaultTime2Retain",
            fmt_u32(c.default_time2retain.into(), &mut num),
        );
        push_pair(out, "ErrorRecoveryLevel", "0");
        self.offered |= Offered::TIME2WAIT | Offered::TIME2RETAIN | Offered::ERL;
        if self.discovery {
            return;
        }
        push_pair(out, "MaxConnections", "1");
        push_pair(out, "InitialR2T", yes_no(c.initial_r2t));
        push_pair(out, "ImmediateData", yes_no(c.immediate_data));
        push_pair(out, "MaxBurstLength", fmt_u32(c.max_burst_length, &mut num));
        push_pair(
            out,
            "FirstBurstLength",
            fmt_u32(c.first_burst_length, &mut num),
        );
        push_pair(
            out,
            "MaxOutstandingR2T",
            fmt_u32(c.max_outstanding_r2t.into(), &mut num),
        );
        push_pair(out, "DataPDUInOrder", "Yes");
        push_pair(out, "DataSequenceInOrder", "Yes");
        self.offered |= Offered::MAX_CONNECTIONS
            | Offered::INITIAL_R2T
            | Offered::IMMEDIATE_DATA
            | Offered::MAX_BURST
            | Offered::FIRST_BURST
            | Offered::MAX_OUTSTANDING_R2T
            | Offered::DATA_PDU_IN_ORDER
            | Offered::DATA_SEQ_IN_ORDER;
    }

    fn take(&mut self, f: Offered) -> bool {
        let was = self.offered.contains(f);
        self.offered.remove(f);
        was
    }

    /// Handle one key from the target; answers (for keys the target offered) go to `reply`.
    pub fn on_pair(
        &mut self,
        key: &str,
        value: &str,
        reply: &mut Vec<u8>,
    ) -> Result<(), NegotiationError> {
        let mut num = [0u8; 20];
        match key {
            "HeaderDigest" | "DataDigest" => {
                let (flag, choice, name) = if key == "HeaderDigest" {
                    (
                        Offered::HEADER_DIGEST,
                        self.cfg.header_digest,
                        "HeaderDigest",
                    )
                } else {
                    (Offered::DATA_DIGEST, self.cfg.data_digest, "DataDigest")
                };
                let on = if self.take(flag) {
                    // An answer to our list: it must be one of the values we offered.
                    match (value, choice) {
                        ("CRC32C", DigestChoice::Crc32c | DigestChoice::PreferCrc32c) => true,
                        ("None", DigestChoice::None | DigestChoice::PreferCrc32c) => false,
                        ("None", DigestChoice::Crc32c) => {
                            return Err(NegotiationError::DigestRefused(name))
                        }
                        (v, DigestChoice::Crc32c) if is_non_answer(v) => {
                            return Err(NegotiationError::DigestRefused(name))
                        }
                        (v, _) if is_non_answer(v) => false,
                        _ => return Err(NegotiationError::NotOffered(name)),
                    }
                } else {
                    // The target offers a list: pick the first value we accept (RFC 7143 §6.2.1).
                    let pick = value.split(',').find(|v| match choice {
                        DigestChoice::None => *v == "None",
                        DigestChoice::Crc32c => *v == "CRC32C",
                        DigestChoice::PreferCrc32c => *v == "CRC32C" || *v == "None",
                    });
                    match pick {
                        Some(v) => {
                            push_pair(reply, name, v);
                            v == "CRC32C"
                        }
                        None => {
                            push_pair(reply, name, "Reject");
                            if choice == DigestChoice::Crc32c {
                                return Err(NegotiationError::DigestRefused(name));
                            }
                            false
                        }
                    }
                };
                if key == "HeaderDigest" {
                    self.result.header_digest = on;
                } else {
                    self.result.data_digest = on;
                }
            }
            "MaxRecvDataSegmentLength" => {
                // Declarative (RFC 7143 §13.12): the target's receive limit is our send limit.
                let v = parse_number(value).filter(|v| (512..=MAX_24).contains(v));
                let v = v.ok_or(NegotiationError::BadValue("MaxRecvDataSegmentLength"))? as u32;
                self.result.max_send_data_segment_length =
                    v.min(self.cfg.max_send_data_segment_length);
            }
            "MaxBurstLength" | "FirstBurstLength" => {
                let (flag, ours, name) = if key == "MaxBurstLength" {
                    (
                        Offered::MAX_BURST,
                        self.cfg.max_burst_length,
                        "MaxBurstLength",
                    )
                } else {
                    (
                        Offered::FIRST_BURST,
                        self.cfg.first_burst_length,
                        "FirstBurstLength",
                    )
                };
                let answered = self.take(flag);
                let v = if is_non_answer(value) && answered {
                    None
                } else if self.discovery {
                    push_pair(reply, name, "Irrelevant");
                    None
                } else {
                    let v = parse_number(value).filter(|v| (512..=MAX_24).contains(v));
                    let v = v.ok_or(NegotiationError::BadValue(name))? as u32;
                    // RFC 7143 §13.13, §13.14: numerical minimum; clamp to our limit.
                    let r = v.min(ours);
                    if !answered {
                        push_pair(reply, name, fmt_u32(r, &mut num));
                    }
                    Some(r)
                };
                if let Some(r) = v {
                    if key == "MaxBurstLength" {
                        self.result.max_burst_length = r;
                    } else {
                        self.result.first_burst_length = r;
                    }
                }
            }
            "MaxOutstandingR2T" | "MaxConnections" => {
                let (flag, ours) = if key == "MaxOutstandingR2T" {
                    (Offered::MAX_OUTSTANDING_R2T, self.cfg.max_outstanding_r2t)
                } else {
                    (Offered::MAX_CONNECTIONS, 1)
                };
                let name = if key == "MaxOutstandingR2T" {
                    "MaxOutstandingR2T"
                } else {
                    "MaxConnections"
                };
                let answered = self.take(flag);
                if is_non_answer(value) && answered {
                    return Ok(());
                }
                if self.discovery {
                    push_pair(reply, name, "Irrelevant");
                    return Ok(());
                }
                let v = parse_number(value).filter(|v| (1..=65535).contains(v));
                let r = (v.ok_or(NegotiationError::BadValue(name))? as u16).min(ours);
                if !answered {
                    push_pair(reply, name, fmt_u32(r.into(), &mut num));
                }
                if key == "MaxOutstandingR2T" {
                    self.result.max_outstanding_r2t = r;
                } else {
                    self.result.max_connections = r;
                }
            }
            "DefaultTime2Wait" | "DefaultTime2Retain" => {
                let is_wait = key == "DefaultTime2Wait";
                let (flag, ours, name) = if is_wait {
                    (
                        Offered::TIME2WAIT,
                        self.cfg.default_time2wait,
                        "DefaultTime2Wait",
                    )
                } else {
                    (
                        Offered::TIME2RETAIN,
                        self.cfg.default_time2retain,
                        "DefaultTime2Retain",
                    )
                };
                let answered = self.take(flag);
                if is_non_answer(value) && answered {
                    return Ok(());
                }
                let v = parse_number(value).filter(|v| *v <= 3600);
                let v = v.ok_or(NegotiationError::BadValue(name))? as u16;
                // RFC 7143 §13.15: Time2Wait is a maximum; §13.16: Time2Retain a minimum.
                let r = if is_wait { v.max(ours) } else { v.min(ours) };
                if !answered {
                    push_pair(reply, name, fmt_u32(r.into(), &mut num));
                }
                if is_wait {
                    self.result.default_time2wait = r;
                } else {
                    self.result.default_time2retain = r;
                }
            }
            "ErrorRecoveryLevel" => {
                let answered = self.take(Offered::ERL);
                if is_non_answer(value) && answered {
                    return Ok(());
                }
                let v = parse_number(value)
                    .filter(|v| *v <= 2)
                    .ok_or(NegotiationError::BadValue("ErrorRecoveryLevel"))?;
                if answered && v != 0 {
                    return Err(NegotiationError::ErrorRecoveryLevel);
                }
                if !answered {
                    push_pair(reply, "ErrorRecoveryLevel", "0");
                }
                self.result.error_recovery_level = 0;
            }
            "InitialR2T" | "DataPDUInOrder" | "DataSequenceInOrder" | "ImmediateData" => {
                let (flag, ours, or, name) = match key {
                    "InitialR2T" => (
                        Offered::INITIAL_R2T,
                        self.cfg.initial_r2t,
                        true,
                        "InitialR2T",
                    ),
                    "DataPDUInOrder" => (Offered::DATA_PDU_IN_ORDER, true, true, "DataPDUInOrder"),
                    "DataSequenceInOrder" => (
                        Offered::DATA_SEQ_IN_ORDER,
                        true,
                        true,
                        "DataSequenceInOrder",
                    ),
                    _ => (
                        Offered::IMMEDIATE_DATA,
                        self.cfg.immediate_data,
                        false,
                        "ImmediateData",
                    ),
                };
                let answered = self.take(flag);
                if is_non_answer(value) && answered {
                    return Ok(());
                }
                if self.discovery {
                    push_pair(reply, name, "Irrelevant");
                    return Ok(());
                }
                let v = parse_bool(value).ok_or(NegotiationError::BadValue(name))?;
                // RFC 7143 §13.10 (InitialR2T, OR), §13.11 (ImmediateData, AND), §13.18 and
                // §13.19 (in-order keys, OR). A target answering against the function is
                // clamped to the function's result.
                let r = if or { v || ours } else { v && ours };
                if !answered {
                    push_pair(reply, name, yes_no(r));
                }
                match key {
                    "InitialR2T" => self.result.initial_r2t = r,
                    "DataPDUInOrder" => self.result.data_pdu_in_order = r,
                    "DataSequenceInOrder" => self.result.data_sequence_in_order = r,
                    _ => self.result.immediate_data = r,
                }
            }
            "TargetAlias" => self.result.target_alias = Some(String::from(value)),
            "TargetPortalGroupTag" => {
                let v = parse_number(value).filter(|v| *v <= 65535);
                self.result.target_portal_group_tag =
                    Some(v.ok_or(NegotiationError::BadValue("TargetPortalGroupTag"))? as u16);
            }
            // Declarative keys we sent, or that the target may echo: nothing to answer.
            "TargetAddress" | "TargetName" | "InitiatorName" | "InitiatorAlias" | "SessionType" => {
            }
            // RFC 7143 §13.26: obsolete marker keys; "Reject" for all of them.
            "OFMarker" | "IFMarker" | "OFMarkInt" | "IFMarkInt" => push_pair(reply, key, "Reject"),
            // RFC 7143 §13.23: we only report tasks the RFC 3720 way.
            "TaskReporting" => push_pair(reply, key, "RFC3720"),
            // RFC 7144 §5.1: we implement RFC 7143, level 1; the result is a minimum.
            "iSCSIProtocolLevel" => {
                let v =
                    parse_number(value).ok_or(NegotiationError::BadValue("iSCSIProtocolLevel"))?;
                push_pair(reply, key, if v == 0 { "0" } else { "1" });
            }
            _ => {
                // RFC 7143 §6.2: unknown keys (including X- and X# extensions) are answered
                // with NotUnderstood.
                push_pair(reply, key, "NotUnderstood");
            }
        }
        Ok(())
    }

    /// Check the result once the target has moved to full-feature phase.
    pub fn finish(mut self) -> Result<Negotiated, NegotiationError> {
        if self.offered.intersects(Offered::HEADER_DIGEST)
            && self.cfg.header_digest == DigestChoice::Crc32c
        {
            return Err(NegotiationError::DigestRefused("HeaderDigest"));
        }
        if self.offered.intersects(Offered::DATA_DIGEST)
            && self.cfg.data_digest == DigestChoice::Crc32c
        {
            return Err(NegotiationError::DigestRefused("DataDigest"));
        }
        let r = &mut self.result;
        if !r.data_pdu_in_order || !r.data_sequence_in_order {
            return Err(NegotiationError::OutOfOrderUnsupported);
        }
        // RFC 7143 §13.14: FirstBurstLength MUST NOT exceed MaxBurstLength.
        r.first_burst_length = r.first_burst_length.min(r.max_burst_length);
        // Keys the target left unanswered keep their RFC defaults; clamp those to our limits.
        r.max_burst_length = r.max_burst_length.min(self.cfg.max_burst_length.max(512));
        r.first_burst_length = r
            .first_burst_length
            .min(self.cfg.first_burst_length.max(512));
        r.max_outstanding_r2t = r
            .max_outstanding_r2t
            .min(self.cfg.max_outstanding_r2t.max(1));
        Ok(self.result)
    }
}

/// Format a number into `buf` without allocating.
pub fn fmt_u32(mut n: u32, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    core::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::text::pairs;
    use alloc::vec;

    fn reply_pairs(r: &[u8]) -> Vec<(String, String)> {
        pairs(r)
            .map(|p| p.unwrap())
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    #[test]
    fn offer_then_answers_are_clamped() {
        let cfg = OperationalConfig {
            header_digest: DigestChoice::PreferCrc32c,
            ..Default::default()
        };
        let mut n = Negotiator::new(cfg, false);
        let mut out = vec![];
        n.offer(&mut out);
        let offered = reply_pairs(&out);
        assert!(offered.contains(&("HeaderDigest".into(), "CRC32C,None".into())));
        assert!(offered.contains(&("InitialR2T".into(), "No".into())));
        let mut reply = vec![];
        for (k, v) in [
            ("HeaderDigest", "CRC32C"),
            ("DataDigest", "None"),
            ("MaxRecvDataSegmentLength", "16777215"),
            ("MaxBurstLength", "16776192"),
            ("FirstBurstLength", "65536"),
            ("MaxOutstandingR2T", "1"),
            ("InitialR2T", "Yes"),
            ("ImmediateData", "Yes"),
            ("DefaultTime2Wait", "0"),
            ("DefaultTime2Retain", "20"),
            ("TargetPortalGroupTag", "1"),
            ("ErrorRecoveryLevel", "0"),
        ] {
            n.on_pair(k, v, &mut reply).unwrap();
        }
        assert!(
            reply.is_empty(),
            "answers need no reply: {:?}",
            reply_pairs(&reply)
        );
        let r = n.finish().unwrap();
        assert!(r.header_digest && !r.data_digest);
        assert_eq!(
            r.max_send_data_segment_length,
            cfg.max_send_data_segment_length
        );
        assert_eq!(r.max_burst_length, cfg.max_burst_length);
        assert_eq!(r.first_burst_length, 65536);
        assert_eq!(r.max_outstanding_r2t, 1);
        assert!(r.initial_r2t && r.immediate_data);
        // Time2Wait is a maximum: the target cannot push it below ours.
        assert_eq!(r.default_time2wait, cfg.default_time2wait);
        assert_eq!(r.default_time2retain, 0);
        assert_eq!(r.target_portal_group_tag, Some(1));
    }

    #[test]
    fn target_offers_are_answered_per_function() {
        let cfg = OperationalConfig::default();
        let mut n = Negotiator::new(cfg, false);
        let mut reply = vec![];
        n.on_pair("MaxBurstLength", "65536", &mut reply).unwrap();
        n.on_pair("DataDigest", "CRC32C,None", &mut reply).unwrap();
        n.on_pair("OFMarker", "No", &mut reply).unwrap();
        n.on_pair("X-com.example.Foo", "1", &mut reply).unwrap();
        n.on_pair("ImmediateData", "No", &mut reply).unwrap();
        assert_eq!(
            reply_pairs(&reply),
            vec![
                ("MaxBurstLength".into(), "65536".into()),
                ("DataDigest".into(), "None".into()),
                ("OFMarker".into(), "Reject".into()),
                ("X-com.example.Foo".into(), "NotUnderstood".into()),
                ("ImmediateData".into(), "No".into()),
            ]
        );
        let r = n.finish().unwrap();
        assert_eq!(r.max_burst_length, 65536);
        assert!(!r.immediate_data);
    }

    #[test]
    fn strictness() {
        let mut n = Negotiator::new(
            OperationalConfig {
                data_digest: DigestChoice::Crc32c,
                ..Default::default()
            },
            false,
        );
        let mut out = vec![];
        n.offer(&mut out);
        let mut reply = vec![];
        assert_eq!(
            n.on_pair("DataDigest", "None", &mut reply),
            Err(NegotiationError::DigestRefused("DataDigest"))
        );
        assert_eq!(
            n.on_pair("HeaderDigest", "MD5", &mut reply),
            Err(NegotiationError::NotOffered("HeaderDigest"))
        );
        assert_eq!(
            n.on_pair("MaxRecvDataSegmentLength", "100", &mut reply),
            Err(NegotiationError::BadValue("MaxRecvDataSegmentLength"))
        );
        assert_eq!(
            n.on_pair("ErrorRecoveryLevel", "1", &mut reply),
            Err(NegotiationError::ErrorRecoveryLevel)
        );
        // Unanswered required digest fails at the end.
        let mut n = Negotiator::new(
            OperationalConfig {
                header_digest: DigestChoice::Crc32c,
                ..Default::default()
            },
            false,
        );
        n.offer(&mut out);
        assert_eq!(
            n.finish(),
            Err(NegotiationError::DigestRefused("HeaderDigest"))
        );
        let mut b = [0u8; 20];
        assert_eq!(fmt_u32(0, &mut b), "0");
        assert_eq!(fmt_u32(4_294_967_295, &mut b), "4294967295");
    }
}
