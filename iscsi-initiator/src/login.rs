//! The login phase (RFC 7143 §6.3, §11.12, §11.13): security negotiation with
//! `AuthMethod=None` or CHAP (one-way or mutual), operational negotiation, the C bit,
//! redirection, ISID and TSIH. Sans-IO: it consumes Login Responses and appends Login
//! Requests to a transmit buffer.

use alloc::string::String;
use alloc::vec::Vec;

use zerocopy::IntoBytes;

use crate::chap::{
    self, ChapAlgorithm, Secret, MAX_CHALLENGE_LEN, MAX_DIGEST_LEN, OUR_CHALLENGE_LEN,
};
use crate::negotiate::{Negotiated, NegotiationError, Negotiator, OperationalConfig};
use crate::serial::SerialNumber;
use crate::wire::bhs::{self, Opcode, IMMEDIATE};
use crate::wire::frame::{write_pdu, DigestConfig};
use crate::wire::pdu::{SnFields, Stage, TargetHeader};
use crate::wire::text::{decode_binary, pairs, parse_number, push_hex, push_pair, TextError};

/// Session type (RFC 7143 §13.21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionType {
    /// A normal session to one target.
    Normal,
    /// A discovery session (SendTargets).
    Discovery,
}

/// The Initiator Session ID (RFC 7143 §11.12.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Isid(pub [u8; 6]);

impl Isid {
    /// A "random" format ISID (T = 10b, RFC 7143 §11.12.5) whose 24-bit B/C part is derived
    /// from a host identity (e.g. the port GUID or MAC address) and the initiator name, and
    /// whose D part is `qualifier`. The same host gets the same ISID after every reboot, which
    /// is what lets a new login reinstate a stale session (RFC 7143 §6.3.5); different hosts
    /// get different ISIDs.
    pub fn derive(host_id: &[u8], initiator_name: &str, qualifier: u16) -> Isid {
        let h = chap::sha256(&[b"isboot-isid", host_id, initiator_name.as_bytes()]);
        let q = qualifier.to_be_bytes();
        Isid([0x80, h[0], h[1], h[2], q[0], q[1]])
    }
}

/// One-way CHAP and optionally mutual CHAP credentials.
#[derive(Clone, Debug)]
pub struct ChapConfig {
    /// CHAP_N we send.
    pub user: String,
    /// Secret for our response.
    pub secret: Secret,
    /// Mutual CHAP: the target's expected name and secret.
    pub mutual: Option<MutualChap>,
}

/// The target's credentials for mutual CHAP.
#[derive(Clone, Debug)]
pub struct MutualChap {
    /// The CHAP_N the target must send.
    pub target_user: String,
    /// The secret the target must prove.
    pub target_secret: Secret,
}

/// Everything a login needs.
#[derive(Clone)]
pub struct LoginConfig {
    /// InitiatorName (iqn./eui./naa.).
    pub initiator_name: String,
    /// InitiatorAlias, if any.
    pub initiator_alias: Option<String>,
    /// TargetName (required for normal sessions).
    pub target_name: Option<String>,
    /// Normal or discovery.
    pub session_type: SessionType,
    /// ISID.
    pub isid: Isid,
    /// CHAP credentials; `None` offers `AuthMethod=None`.
    pub chap: Option<ChapConfig>,
    /// Operational offers and limits.
    pub operational: OperationalConfig,
    /// Seed for CHAP challenges, from the environment's RNG (the OS, the CPU's RNG, or
    /// firmware). Mutual CHAP is only as strong as this seed is unpredictable.
    pub entropy_seed: [u8; 32],
}

impl core::fmt::Debug for LoginConfig {
    // The entropy seed is left out: it would let a reader predict our CHAP challenges.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LoginConfig")
            .field("initiator_name", &self.initiator_name)
            .field("initiator_alias", &self.initiator_alias)
            .field("target_name", &self.target_name)
            .field("session_type", &self.session_type)
            .field("isid", &self.isid)
            .field("chap", &self.chap)
            .field("operational", &self.operational)
            .finish_non_exhaustive()
    }
}

/// A source of random bytes (CHAP challenges). The kernel, the ROM and the host each supply
/// their own.
pub trait Entropy {
    /// Fill `buf` with unpredictable bytes.
    fn fill_bytes(&mut self, buf: &mut [u8]);
}

/// A hash-based generator (SHA-256 over seed and counter) seeded by the environment.
#[derive(Clone)]
pub struct HashDrbg {
    seed: [u8; 32],
    counter: u64,
}

impl core::fmt::Debug for HashDrbg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HashDrbg(<seeded>)")
    }
}

impl HashDrbg {
    /// A generator over `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Self { seed, counter: 0 }
    }
}

impl Entropy for HashDrbg {
    fn fill_bytes(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(32) {
            self.counter = self.counter.wrapping_add(1);
            let h = chap::sha256(&[b"isboot-drbg", &self.seed, &self.counter.to_le_bytes()]);
            chunk.copy_from_slice(&h[..chunk.len()]);
        }
    }
}

impl Drop for HashDrbg {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

/// Why a login failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginError {
    /// The target violated the login protocol.
    Protocol(&'static str),
    /// A malformed text segment.
    Text(TextError),
    /// Operational negotiation failed.
    Negotiation(NegotiationError),
    /// Status 0x0201: the target rejected our credentials.
    AuthenticationFailed,
    /// Status 0x0202: we are not allowed to access this target.
    AuthorizationFailed,
    /// Status 0x0203: no such target.
    TargetNotFound,
    /// Status 0x0204: the target was removed.
    TargetRemoved,
    /// Another status class 2 (initiator error) detail.
    InitiatorError(u8),
    /// Status 0x0301..0x03ff: the target could not complete the login (retry later).
    TargetError(u8),
    /// The target refused every AuthMethod we offered.
    AuthMethodRejected,
    /// The target requires authentication but no CHAP credentials are configured.
    AuthenticationRequired,
    /// The target chose a CHAP algorithm we did not offer.
    UnsupportedChapAlgorithm,
    /// The target failed the login in answer to our CHAP_A list (some targets fail on
    /// algorithm numbers they do not know); retrying with MD5 only may succeed.
    ChapAlgorithmsRefused,
    /// Mutual CHAP: the target sent the wrong CHAP_N.
    TargetNameMismatch,
    /// Mutual CHAP: the target's response was wrong or missing.
    TargetAuthenticationFailed,
    /// The target reflected our own challenge or used our secret (RFC 7143 §12.1.3).
    ReflectedChallenge,
    /// The target does not speak iSCSI version 0 (RFC 7143 §11.12.4).
    UnsupportedVersion,
    /// Too many login exchanges.
    TooManyExchanges,
    /// Our login text would not fit one PDU (names too long).
    RequestTooLong,
    /// The login did not finish within the login timeout.
    Timeout,
}

impl From<TextError> for LoginError {
    fn from(e: TextError) -> Self {
        LoginError::Text(e)
    }
}
impl From<NegotiationError> for LoginError {
    fn from(e: NegotiationError) -> Self {
        LoginError::Negotiation(e)
    }
}

impl core::fmt::Display for LoginError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LoginError::Protocol(s) => write!(f, "login protocol error: {s}"),
            LoginError::Text(e) => write!(f, "login protocol error: bad text segment ({e:?})"),
            LoginError::Negotiation(e) => write!(f, "login negotiation failed: {e}"),
            LoginError::AuthenticationFailed => {
                f.write_str("authentication failed: the target rejected our CHAP credentials")
            }
            LoginError::AuthorizationFailed => f.write_str(
                "login refused: the target does not allow this initiator (authorization failure)",
            ),
            LoginError::TargetNotFound => f.write_str("login refused: target not found"),
            LoginError::TargetRemoved => f.write_str("login refused: target removed"),
            LoginError::InitiatorError(d) => {
                write!(f, "login refused: initiator error (status detail {d:#04x})")
            }
            LoginError::TargetError(d) => {
                write!(f, "login refused: target error (status detail {d:#04x})")
            }
            LoginError::AuthMethodRejected => {
                f.write_str("login refused: target accepted none of our authentication methods")
            }
            LoginError::AuthenticationRequired => f.write_str(
                "authentication failed: the target requires CHAP but no credentials were given",
            ),
            LoginError::UnsupportedChapAlgorithm => f.write_str(
                "authentication failed: the target chose a CHAP algorithm we did not offer",
            ),
            LoginError::ChapAlgorithmsRefused => {
                f.write_str("authentication failed: the target refused our CHAP algorithms")
            }
            LoginError::TargetNameMismatch => {
                f.write_str("authentication failed: the target sent the wrong name for mutual CHAP")
            }
            LoginError::TargetAuthenticationFailed => f.write_str(
                "authentication failed: the target could not prove its identity (mutual CHAP)",
            ),
            LoginError::ReflectedChallenge => {
                f.write_str("authentication failed: the target reflected our challenge")
            }
            LoginError::UnsupportedVersion => {
                f.write_str("login refused: unsupported iSCSI version")
            }
            LoginError::TooManyExchanges => {
                f.write_str("login protocol error: too many login exchanges")
            }
            LoginError::RequestTooLong => f.write_str("login text too long"),
            LoginError::Timeout => f.write_str("login timed out"),
        }
    }
}

impl LoginError {
    /// Whether retrying the same login later may succeed (RFC 7143 §11.13.5: class 3).
    pub fn is_transient(&self) -> bool {
        matches!(self, LoginError::TargetError(_) | LoginError::Timeout)
    }
}

/// What a successful login produced.
#[derive(Clone, Debug)]
pub struct LoginOutcome {
    /// Negotiated parameters.
    pub params: Negotiated,
    /// TSIH assigned by the target.
    pub tsih: u16,
    /// The next StatSN we expect.
    pub exp_stat_sn: SerialNumber,
    /// The target's ExpCmdSN and MaxCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
    /// The CHAP algorithm used, if any.
    pub chap: Option<ChapAlgorithm>,
}

/// Result of handling one Login Response.
#[derive(Clone, Debug)]
pub enum LoginProgress {
    /// Another request was queued; wait for the next response.
    Continue,
    /// Full-feature phase reached.
    Complete(LoginOutcome),
    /// The target redirected us (status class 1).
    Redirect {
        /// The TargetAddress value (`host[:port][,tpgt]`).
        address: String,
        /// Status detail 0x02 (moved permanently).
        permanent: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    AuthMethod,
    ChapChallenge,
    ChapResult,
    Operational,
}

/// Upper bound on login round trips.
const MAX_EXCHANGES: u8 = 32;
/// The largest login data segment before negotiation (RFC 7143 §13.12 default 8192).
const LOGIN_MAX_SEGMENT: usize = 8192;

/// The login state machine for one connection.
#[derive(Debug)]
pub struct Login {
    cfg: LoginConfig,
    itt: u32,
    cid: u16,
    tsih: u16,
    cmd_sn: SerialNumber,
    exp_stat_sn: SerialNumber,
    csg: Stage,
    step: Step,
    negotiator: Option<Negotiator>,
    text: Vec<u8>,
    reply: Vec<u8>,
    algorithm: Option<ChapAlgorithm>,
    our_id: u8,
    our_challenge: [u8; OUR_CHALLENGE_LEN],
    exchanges: u8,
    offered_operational: bool,
    md5_only: bool,
}

impl Login {
    /// A login with `tsih` (0 for a new session or reinstatement) and the session's first
    /// `cmd_sn`.
    pub fn new(cfg: LoginConfig, itt: u32, cid: u16, tsih: u16, cmd_sn: SerialNumber) -> Self {
        let negotiator =
            Negotiator::new(cfg.operational, cfg.session_type == SessionType::Discovery);
        Self {
            cfg,
            itt,
            cid,
            tsih,
            cmd_sn,
            exp_stat_sn: SerialNumber(0),
            csg: Stage::Security,
            step: Step::AuthMethod,
            negotiator: Some(negotiator),
            text: Vec::new(),
            reply: Vec::new(),
            algorithm: None,
            our_id: 0,
            our_challenge: [0; OUR_CHALLENGE_LEN],
            exchanges: 0,
            offered_operational: false,
            md5_only: false,
        }
    }

    /// Offer CHAP_A=5 only (after [`LoginError::ChapAlgorithmsRefused`]).
    pub fn offer_md5_only(&mut self) {
        self.md5_only = true;
    }

    fn send(
        &mut self,
        out: &mut Vec<u8>,
        transit: bool,
        nsg: Stage,
        data: &[u8],
    ) -> Result<(), LoginError> {
        if data.len() > LOGIN_MAX_SEGMENT {
            return Err(LoginError::RequestTooLong);
        }
        self.exchanges += 1;
        if self.exchanges > MAX_EXCHANGES {
            return Err(LoginError::TooManyExchanges);
        }
        let mut flags = (self.csg.code() << 2) | if transit { 0x80 | nsg.code() } else { 0 };
        if !transit {
            flags &= !0x03;
        }
        let mut h = bhs::LoginRequest {
            // RFC 7143 §11.12: the I bit is always 1 on Login Requests.
            opcode: Opcode::LOGIN_REQUEST.0 | IMMEDIATE,
            flags,
            version_max: 0,
            version_min: 0,
            isid: self.cfg.isid.0,
            ..Default::default()
        };
        h.data_segment_len = bhs::dsl_to(data.len() as u32);
        h.tsih.set(self.tsih);
        h.itt.set(self.itt);
        h.cid.set(self.cid);
        h.cmd_sn.set(self.cmd_sn.0);
        h.exp_stat_sn.set(self.exp_stat_sn.0);
        let raw: &[u8; 48] = h
            .as_bytes()
            .try_into()
            .map_err(|_| LoginError::Protocol("internal"))?;
        // Digests start only after login (RFC 7143 §13.1).
        write_pdu(out, DigestConfig::default(), raw, &[], data);
        Ok(())
    }

    /// Queue the first Login Request.
    pub fn start(&mut self, out: &mut Vec<u8>) -> Result<(), LoginError> {
        let mut d = Vec::new();
        push_pair(&mut d, "InitiatorName", &self.cfg.initiator_name);
        if let Some(a) = &self.cfg.initiator_alias {
            push_pair(&mut d, "InitiatorAlias", a);
        }
        match self.cfg.session_type {
            SessionType::Normal => {
                push_pair(&mut d, "SessionType", "Normal");
                if let Some(t) = &self.cfg.target_name {
                    push_pair(&mut d, "TargetName", t);
                }
            }
            SessionType::Discovery => push_pair(&mut d, "SessionType", "Discovery"),
        }
        // Credentials configured means CHAP is required: offering None as well would let
        // anyone in the path downgrade the login.
        let chap = self.cfg.chap.is_some();
        push_pair(&mut d, "AuthMethod", if chap { "CHAP" } else { "None" });
        // Without CHAP we ask to move on at once; with it we must stay for the exchange.
        self.send(out, !chap, Stage::Operational, &d)
    }

    /// Handle one Login Response (header and complete data segment); queue the next request.
    pub fn on_response(
        &mut self,
        header: &TargetHeader,
        data: &[u8],
        out: &mut Vec<u8>,
        entropy: &mut dyn Entropy,
    ) -> Result<LoginProgress, LoginError> {
        let TargetHeader::LoginResponse {
            transit,
            cont,
            csg,
            nsg,
            version_max,
            version_active,
            isid,
            tsih,
            itt,
            sn,
            status_class,
            status_detail,
        } = *header
        else {
            return Err(LoginError::Protocol("unexpected PDU during login"));
        };
        if itt != self.itt {
            return Err(LoginError::Protocol("Login Response for another task tag"));
        }
        self.track_stat_sn(sn);
        // RFC 7143 §11.13.4: class 1 is redirection, 2 initiator error, 3 target error.
        match status_class {
            0 => {}
            1 => {
                let mut text = core::mem::take(&mut self.text);
                text.extend_from_slice(data);
                for p in pairs(&text) {
                    let (k, v) = p?;
                    if k == "TargetAddress" {
                        return Ok(LoginProgress::Redirect {
                            address: String::from(v),
                            permanent: status_detail == 2,
                        });
                    }
                }
                return Err(LoginError::Protocol("redirect without TargetAddress"));
            }
            // A target may fail on an algorithm it does not know, either at once or by
            // mis-hashing it (tgt takes 7 for SHA-1): retry with MD5 before giving up.
            2 if !self.md5_only
                && (self.step == Step::ChapChallenge
                    || (self.step == Step::ChapResult
                        && self.algorithm != Some(ChapAlgorithm::Md5))) =>
            {
                return Err(LoginError::ChapAlgorithmsRefused);
            }
            2 => {
                return Err(match status_detail {
                    0x01 => LoginError::AuthenticationFailed,
                    0x02 => LoginError::AuthorizationFailed,
                    0x03 => LoginError::TargetNotFound,
                    0x04 => LoginError::TargetRemoved,
                    0x05 => LoginError::UnsupportedVersion,
                    d => LoginError::InitiatorError(d),
                })
            }
            _ => return Err(LoginError::TargetError(status_detail)),
        }
        if version_active != 0 || version_max != 0 {
            // RFC 7143 §11.13.2: Version-active 0x00 is the only version.
            if version_active != 0 {
                return Err(LoginError::UnsupportedVersion);
            }
        }
        if isid != self.cfg.isid.0 {
            return Err(LoginError::Protocol("Login Response for another ISID"));
        }
        if self.tsih != 0 && tsih != self.tsih {
            return Err(LoginError::Protocol("target changed the TSIH"));
        }
        if csg != self.csg {
            return Err(LoginError::Protocol("Login Response for another stage"));
        }
        if transit && (nsg.code() <= csg.code()) {
            return Err(LoginError::Protocol("target transit to an earlier stage"));
        }
        // RFC 7143 §11.13.3 (C bit): collect the partial text, answer with an empty request.
        if self.text.len() + data.len() > 64 * 1024 {
            return Err(LoginError::Protocol("login text too long"));
        }
        self.text.extend_from_slice(data);
        if cont {
            self.send(out, false, self.csg, &[])?;
            return Ok(LoginProgress::Continue);
        }
        let text = core::mem::take(&mut self.text);
        let r = self.handle_keys(&text, transit, nsg, tsih, sn, out, entropy);
        self.text = text;
        self.text.clear();
        r
    }

    fn track_stat_sn(&mut self, sn: SnFields) {
        if let Some(s) = sn.stat_sn {
            // RFC 7143 §11.13.6: the first response gives the starting StatSN; each next one
            // carries it + 1. A skew is only logged here: the login's own checks decide.
            if self.exchanges > 1 && s != self.exp_stat_sn {
                log::debug!(
                    "login StatSN {} where {} was expected",
                    s.0,
                    self.exp_stat_sn.0
                );
            }
            self.exp_stat_sn = s.next();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_keys(
        &mut self,
        text: &[u8],
        transit: bool,
        nsg: Stage,
        tsih: u16,
        sn: SnFields,
        out: &mut Vec<u8>,
        entropy: &mut dyn Entropy,
    ) -> Result<LoginProgress, LoginError> {
        let mut reply = core::mem::take(&mut self.reply);
        reply.clear();
        let mut auth_method: Option<&str> = None;
        let mut chap_a = None;
        let mut chap_i = None;
        let mut chap_c: Option<&str> = None;
        let mut chap_n: Option<&str> = None;
        let mut chap_r: Option<&str> = None;
        let negotiator = self
            .negotiator
            .as_mut()
            .ok_or(LoginError::Protocol("internal"))?;
        for p in pairs(text) {
            let (k, v) = p?;
            if !k.starts_with("CHAP_") {
                log::debug!("login: target sent {k}={v}");
            }
            match k {
                "AuthMethod" => auth_method = Some(v),
                "CHAP_A" => chap_a = Some(v),
                "CHAP_I" => chap_i = Some(v),
                "CHAP_C" => chap_c = Some(v),
                "CHAP_N" => chap_n = Some(v),
                "CHAP_R" => chap_r = Some(v),
                _ => negotiator.on_pair(k, v, &mut reply)?,
            }
        }
        let result = match self.csg {
            Stage::Security => self.security(
                auth_method,
                chap_a,
                chap_i,
                chap_c,
                chap_n,
                chap_r,
                transit,
                nsg,
                &mut reply,
                out,
                entropy,
            ),
            Stage::Operational => self.operational(transit, nsg, tsih, sn, &mut reply, out),
            Stage::FullFeature => Err(LoginError::Protocol("login response in full-feature stage")),
        };
        self.reply = reply;
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn security(
        &mut self,
        auth_method: Option<&str>,
        chap_a: Option<&str>,
        chap_i: Option<&str>,
        chap_c: Option<&str>,
        chap_n: Option<&str>,
        chap_r: Option<&str>,
        transit: bool,
        nsg: Stage,
        reply: &mut Vec<u8>,
        out: &mut Vec<u8>,
        entropy: &mut dyn Entropy,
    ) -> Result<LoginProgress, LoginError> {
        match self.step {
            Step::AuthMethod => match (auth_method, self.cfg.chap.is_some()) {
                (Some("CHAP"), true) => {
                    self.step = Step::ChapChallenge;
                    push_pair(
                        reply,
                        "CHAP_A",
                        if self.md5_only {
                            ChapAlgorithm::OFFER_MD5
                        } else {
                            ChapAlgorithm::OFFER
                        },
                    );
                    let r = core::mem::take(reply);
                    let res = self.send(out, false, Stage::Security, &r);
                    *reply = r;
                    res?;
                    return Ok(LoginProgress::Continue);
                }
                (Some("None"), false) | (None, false) => {}
                (Some("Reject"), true) | (Some("None"), true) | (None, true) => {
                    return Err(LoginError::AuthMethodRejected)
                }
                (Some("CHAP"), false) => return Err(LoginError::AuthenticationRequired),
                (Some("Reject"), false) => return Err(LoginError::AuthenticationRequired),
                _ => return Err(LoginError::Protocol("AuthMethod answer not offered")),
            },
            Step::ChapChallenge => {
                let chap = self
                    .cfg
                    .chap
                    .as_ref()
                    .ok_or(LoginError::Protocol("internal"))?;
                let alg = chap_a
                    .and_then(parse_number)
                    .and_then(ChapAlgorithm::from_code)
                    .ok_or(LoginError::UnsupportedChapAlgorithm)?;
                let id = chap_i
                    .and_then(parse_number)
                    .filter(|v| *v <= 255)
                    .ok_or(LoginError::Protocol("missing or bad CHAP_I"))?
                    as u8;
                let mut challenge = [0u8; MAX_CHALLENGE_LEN];
                let clen = chap_c
                    .and_then(|c| decode_binary(c, &mut challenge))
                    .filter(|n| *n > 0)
                    .ok_or(LoginError::Protocol("missing or bad CHAP_C"))?;
                let mut resp = [0u8; MAX_DIGEST_LEN];
                let rlen = alg.response(id, &chap.secret, &challenge[..clen], &mut resp);
                push_pair(reply, "CHAP_N", &chap.user);
                reply.extend_from_slice(b"CHAP_R=");
                push_hex(reply, &resp[..rlen]);
                reply.push(0);
                if chap.mutual.is_some() {
                    // Our challenge: random, and never equal to the one we were given
                    // (RFC 7143 §12.1.3 reflection defence).
                    loop {
                        let mut idb = [0u8; 1];
                        entropy.fill_bytes(&mut idb);
                        entropy.fill_bytes(&mut self.our_challenge);
                        self.our_id = idb[0];
                        if challenge[..clen] != self.our_challenge[..] {
                            break;
                        }
                    }
                    let mut num = [0u8; 20];
                    push_pair(
                        reply,
                        "CHAP_I",
                        crate::negotiate::fmt_u32(self.our_id.into(), &mut num),
                    );
                    reply.extend_from_slice(b"CHAP_C=");
                    push_hex(reply, &self.our_challenge);
                    reply.push(0);
                }
                self.algorithm = Some(alg);
                self.step = Step::ChapResult;
                let r = core::mem::take(reply);
                let res = self.send(out, true, Stage::Operational, &r);
                *reply = r;
                res?;
                return Ok(LoginProgress::Continue);
            }
            Step::ChapResult => {
                let chap = self
                    .cfg
                    .chap
                    .as_ref()
                    .ok_or(LoginError::Protocol("internal"))?;
                if let Some(m) = &chap.mutual {
                    // Verify the target only once, in the response that carries CHAP_R.
                    if chap_n.is_some() || chap_r.is_some() || transit {
                        let name = chap_n.ok_or(LoginError::TargetAuthenticationFailed)?;
                        if name != m.target_user {
                            return Err(LoginError::TargetNameMismatch);
                        }
                        let alg = self.algorithm.ok_or(LoginError::Protocol("internal"))?;
                        let mut got = [0u8; MAX_DIGEST_LEN];
                        let glen = chap_r
                            .and_then(|r| decode_binary(r, &mut got))
                            .ok_or(LoginError::TargetAuthenticationFailed)?;
                        // RFC 7143 §12.1.3: the same secret must not serve both directions.
                        if m.target_secret == chap.secret {
                            return Err(LoginError::ReflectedChallenge);
                        }
                        let mut want = [0u8; MAX_DIGEST_LEN];
                        let wlen = alg.response(
                            self.our_id,
                            &m.target_secret,
                            &self.our_challenge,
                            &mut want,
                        );
                        let ok = chap::responses_equal(&got[..glen], &want[..wlen]);
                        zeroize::Zeroize::zeroize(&mut want);
                        if !ok {
                            return Err(LoginError::TargetAuthenticationFailed);
                        }
                        self.step = Step::Operational;
                    }
                } else if chap_r.is_some() {
                    return Err(LoginError::Protocol(
                        "target sent CHAP_R without mutual CHAP",
                    ));
                }
            }
            Step::Operational => {}
        }
        // Stay in the security stage until the target agrees to leave it.
        if !transit {
            let r = core::mem::take(reply);
            let res = self.send(out, true, Stage::Operational, &r);
            *reply = r;
            res?;
            return Ok(LoginProgress::Continue);
        }
        if let (Some(ch), Step::ChapResult | Step::AuthMethod) = (&self.cfg.chap, self.step) {
            if ch.mutual.is_some() {
                return Err(LoginError::TargetAuthenticationFailed);
            }
        }
        self.step = Step::Operational;
        self.csg = if nsg == Stage::FullFeature {
            Stage::FullFeature
        } else {
            Stage::Operational
        };
        if self.csg == Stage::FullFeature {
            return Err(LoginError::Protocol(
                "target skipped operational negotiation we did not allow",
            ));
        }
        let mut r = core::mem::take(reply);
        if let Some(n) = self.negotiator.as_mut() {
            n.offer(&mut r);
        }
        self.offered_operational = true;
        let res = self.send(out, true, Stage::FullFeature, &r);
        *reply = r;
        res?;
        Ok(LoginProgress::Continue)
    }

    fn operational(
        &mut self,
        transit: bool,
        nsg: Stage,
        tsih: u16,
        sn: SnFields,
        reply: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<LoginProgress, LoginError> {
        if transit && nsg == Stage::FullFeature {
            if !reply.is_empty() {
                return Err(LoginError::Protocol(
                    "target left login with keys still unanswered",
                ));
            }
            if tsih == 0 {
                return Err(LoginError::Protocol("final Login Response without a TSIH"));
            }
            let params = self
                .negotiator
                .take()
                .ok_or(LoginError::Protocol("internal"))?
                .finish()?;
            return Ok(LoginProgress::Complete(LoginOutcome {
                params,
                tsih,
                exp_stat_sn: self.exp_stat_sn,
                exp_cmd_sn: sn.exp_cmd_sn,
                max_cmd_sn: sn.max_cmd_sn,
                chap: self.algorithm,
            }));
        }
        let r = core::mem::take(reply);
        let res = self.send(out, true, Stage::FullFeature, &r);
        *reply = r;
        res?;
        Ok(LoginProgress::Continue)
    }

    /// The ITT used by this login.
    pub fn itt(&self) -> u32 {
        self.itt
    }
}

#[cfg(test)]
mod tests;
