//! DHCPv4 messages (RFC 2131) and the options a network-boot client uses (RFC 2132, RFC 4390
//! for InfiniBand, iPXE's encapsulated options).
//!
//! Parsing is strict: the fixed part and the magic cookie must be there, every option must fit
//! the message, the options must end with END, and each option the client uses must have the
//! length and form RFC 2132 gives it. Option overload (option 52) is honoured and repeated
//! options are joined (RFC 3396). Options this layer does not know are kept as they are.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;

use super::WireError;

/// UDP port of servers and relays.
pub const SERVER_PORT: u16 = 67;
/// UDP port of clients.
pub const CLIENT_PORT: u16 = 68;
/// Length of the fixed BOOTP part.
pub const FIXED_LEN: usize = 236;
/// The magic cookie that starts the options (RFC 2131 §3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The smallest message a client sends (RFC 1542 §2.1: relays may drop shorter BOOTP).
pub const MIN_MESSAGE_LEN: usize = 300;
/// The broadcast bit of `flags` (RFC 2131 §2; RFC 4390 §2.2 requires it on IPoIB).
pub const FLAG_BROADCAST: u16 = 0x8000;

/// `op`: request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Op(pub u8);

impl Op {
    /// From a client (or a relay).
    pub const BOOTREQUEST: Self = Self(1);
    /// From a server.
    pub const BOOTREPLY: Self = Self(2);
}

/// Option 53, the DHCP message type. Values outside RFC 2132 §9.6 are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType(pub u8);

#[allow(missing_docs)]
impl MessageType {
    pub const DISCOVER: Self = Self(1);
    pub const OFFER: Self = Self(2);
    pub const REQUEST: Self = Self(3);
    pub const DECLINE: Self = Self(4);
    pub const ACK: Self = Self(5);
    pub const NAK: Self = Self(6);
    pub const RELEASE: Self = Self(7);
    pub const INFORM: Self = Self(8);
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1 => "DHCPDISCOVER",
            2 => "DHCPOFFER",
            3 => "DHCPREQUEST",
            4 => "DHCPDECLINE",
            5 => "DHCPACK",
            6 => "DHCPNAK",
            7 => "DHCPRELEASE",
            8 => "DHCPINFORM",
            n => return write!(f, "DHCP message type {n}"),
        };
        f.write_str(name)
    }
}

/// Option codes this layer decodes.
#[allow(missing_docs)]
pub mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const ROOT_PATH: u8 = 17;
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const RELAY_AGENT_INFO: u8 = 82;
    /// iPXE's encapsulated options.
    pub const IPXE: u8 = 175;
    /// iSCSI initiator IQN (iPXE, RFC 4173 practice).
    pub const ISCSI_INITIATOR_IQN: u8 = 203;
    pub const END: u8 = 255;
}

/// iPXE's sub-options of option 175 that carry iSCSI credentials.
#[allow(missing_docs)]
pub mod ipxe_code {
    pub const USERNAME: u8 = 190;
    pub const PASSWORD: u8 = 191;
    pub const REVERSE_USERNAME: u8 = 192;
    pub const REVERSE_PASSWORD: u8 = 193;
}

/// A secret from the wire (a CHAP password): zeroed on drop, never printed.
pub use secret::Secret;

/// iSCSI credentials from option 175 (iPXE's `username`, `password`, `reverse-username`,
/// `reverse-password`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpxeCredentials {
    /// Our CHAP name.
    pub username: Option<String>,
    /// Our CHAP secret.
    pub password: Option<Secret>,
    /// The target's CHAP name.
    pub reverse_username: Option<String>,
    /// The target's CHAP secret.
    pub reverse_password: Option<Secret>,
}

/// The options of a message, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// 53.
    pub message_type: Option<MessageType>,
    /// 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// 3.
    pub routers: Vec<Ipv4Addr>,
    /// 6.
    pub dns_servers: Vec<Ipv4Addr>,
    /// 12.
    pub host_name: Option<String>,
    /// 15.
    pub domain_name: Option<String>,
    /// 17.
    pub root_path: Option<String>,
    /// 43, raw.
    pub vendor_specific: Option<Vec<u8>>,
    /// 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// 51, seconds; `u32::MAX` is infinite.
    pub lease_time: Option<u32>,
    /// 54.
    pub server_id: Option<Ipv4Addr>,
    /// 55.
    pub parameter_request_list: Vec<u8>,
    /// 56.
    pub message: Option<String>,
    /// 57.
    pub max_message_size: Option<u16>,
    /// 58, seconds.
    pub renewal_time: Option<u32>,
    /// 59, seconds.
    pub rebinding_time: Option<u32>,
    /// 61, raw (its forms: [`crate::dhcp::ClientIdForm`]).
    pub client_id: Option<Vec<u8>>,
    /// 82, raw (a relay's; echoed by servers).
    pub relay_agent_info: Option<Vec<u8>>,
    /// 175, the credentials in it.
    pub ipxe: Option<IpxeCredentials>,
    /// 203.
    pub iscsi_initiator_iqn: Option<String>,
    /// Anything else, in the order first seen: (code, joined data).
    pub other: Vec<(u8, Vec<u8>)>,
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request or reply.
    pub op: Op,
    /// Hardware type: 32 for InfiniBand (RFC 4390), 1 for Ethernet.
    pub htype: u8,
    /// Hardware address length: 0 on InfiniBand (RFC 4390 §2.1: the 20-byte address does not
    /// fit `chaddr`).
    pub hlen: u8,
    /// Relay hops.
    pub hops: u8,
    /// Transaction id.
    pub xid: u32,
    /// Seconds since the client began.
    pub secs: u16,
    /// Flags; [`FLAG_BROADCAST`].
    pub flags: u16,
    /// Client's current address (RENEWING, REBINDING).
    pub ciaddr: Ipv4Addr,
    /// "Your" address: the one offered.
    pub yiaddr: Ipv4Addr,
    /// Next server.
    pub siaddr: Ipv4Addr,
    /// Relay agent address.
    pub giaddr: Ipv4Addr,
    /// Client hardware address (zero on InfiniBand).
    pub chaddr: [u8; 16],
    /// The options.
    pub options: Options,
}

fn malformed(what: &'static str) -> WireError {
    WireError::Malformed(what)
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn one_ipv4(data: &[u8], what: &'static str) -> Result<Ipv4Addr, WireError> {
    if data.len() != 4 {
        return Err(malformed(what));
    }
    Ok(ipv4(data))
}

fn ipv4_list(data: &[u8], what: &'static str) -> Result<Vec<Ipv4Addr>, WireError> {
    if data.is_empty() || data.len() % 4 != 0 {
        return Err(malformed(what));
    }
    Ok(data.chunks_exact(4).map(ipv4).collect())
}

fn u32_opt(data: &[u8], what: &'static str) -> Result<u32, WireError> {
    let b: [u8; 4] = data.try_into().map_err(|_| malformed(what))?;
    Ok(u32::from_be_bytes(b))
}

/// Text: UTF-8, trailing NULs dropped (some servers count one), no NUL inside, not empty.
fn text(data: &[u8], what: &'static str) -> Result<String, WireError> {
    let end = data.len() - data.iter().rev().take_while(|&&b| b == 0).count();
    let data = &data[..end];
    if data.is_empty() || data.contains(&0) {
        return Err(malformed(what));
    }
    core::str::from_utf8(data)
        .map(String::from)
        .map_err(|_| malformed(what))
}

/// Walks one options area, appending (code, data) with repeated codes joined (RFC 3396).
/// Returns whether END was seen.
fn walk(area: &[u8], raw: &mut Vec<(u8, Vec<u8>)>) -> Result<bool, WireError> {
    let mut i = 0;
    while i < area.len() {
        let c = area[i];
        match c {
            code::PAD => i += 1,
            code::END => return Ok(true),
            _ => {
                let len = *area.get(i + 1).ok_or(malformed("option length"))? as usize;
                let data = area
                    .get(i + 2..i + 2 + len)
                    .ok_or(malformed("option length"))?;
                match raw.iter_mut().find(|(k, _)| *k == c) {
                    Some((_, v)) => v.extend_from_slice(data),
                    None => raw.push((c, data.to_vec())),
                }
                i += 2 + len;
            }
        }
    }
    Ok(false)
}

fn ipxe_credentials(data: &[u8]) -> Result<IpxeCredentials, WireError> {
    let mut subs = Vec::new();
    // The encapsulated space has no END requirement (RFC 2132 §8.4 style).
    walk(data, &mut subs)?;
    let mut c = IpxeCredentials::default();
    for (k, v) in subs {
        match k {
            ipxe_code::USERNAME => c.username = Some(text(&v, "iPXE username")?),
            ipxe_code::PASSWORD => c.password = Some(Secret::new(v)),
            ipxe_code::REVERSE_USERNAME => {
                c.reverse_username = Some(text(&v, "iPXE reverse username")?)
            }
            ipxe_code::REVERSE_PASSWORD => c.reverse_password = Some(Secret::new(v)),
            _ => {}
        }
    }
    Ok(c)
}

impl Options {
    fn decode(raw: Vec<(u8, Vec<u8>)>) -> Result<Self, WireError> {
        let mut o = Options::default();
        for (c, d) in raw {
            match c {
                code::MESSAGE_TYPE => {
                    if d.len() != 1 {
                        return Err(malformed("message type"));
                    }
                    o.message_type = Some(MessageType(d[0]));
                }
                code::SUBNET_MASK => {
                    let m = one_ipv4(&d, "subnet mask")?;
                    // A mask is contiguous ones.
                    let v = u32::from(m);
                    if v.leading_ones() + v.trailing_zeros() != 32 {
                        return Err(malformed("subnet mask"));
                    }
                    o.subnet_mask = Some(m);
                }
                code::ROUTER => o.routers = ipv4_list(&d, "router")?,
                code::DNS => o.dns_servers = ipv4_list(&d, "DNS servers")?,
                code::HOST_NAME => o.host_name = Some(text(&d, "host name")?),
                code::DOMAIN_NAME => o.domain_name = Some(text(&d, "domain name")?),
                code::ROOT_PATH => o.root_path = Some(text(&d, "root path")?),
                code::VENDOR_SPECIFIC => o.vendor_specific = Some(d),
                code::REQUESTED_IP => o.requested_ip = Some(one_ipv4(&d, "requested address")?),
                code::LEASE_TIME => o.lease_time = Some(u32_opt(&d, "lease time")?),
                code::OVERLOAD => {} // consumed by Message::parse
                code::SERVER_ID => o.server_id = Some(one_ipv4(&d, "server identifier")?),
                code::PARAMETER_REQUEST_LIST => o.parameter_request_list = d,
                code::MESSAGE => o.message = Some(String::from_utf8_lossy(&d).into_owned()),
                code::MAX_MESSAGE_SIZE => {
                    let b: [u8; 2] = d
                        .as_slice()
                        .try_into()
                        .map_err(|_| malformed("maximum size"))?;
                    let v = u16::from_be_bytes(b);
                    if v < 576 {
                        return Err(malformed("maximum size"));
                    }
                    o.max_message_size = Some(v);
                }
                code::RENEWAL_TIME => o.renewal_time = Some(u32_opt(&d, "renewal time")?),
                code::REBINDING_TIME => o.rebinding_time = Some(u32_opt(&d, "rebinding time")?),
                code::CLIENT_ID => {
                    if d.len() < 2 {
                        return Err(malformed("client identifier"));
                    }
                    o.client_id = Some(d);
                }
                code::RELAY_AGENT_INFO => o.relay_agent_info = Some(d),
                code::IPXE => o.ipxe = Some(ipxe_credentials(&d)?),
                code::ISCSI_INITIATOR_IQN => {
                    o.iscsi_initiator_iqn = Some(text(&d, "iSCSI initiator name")?)
                }
                _ => o.other.push((c, d)),
            }
        }
        Ok(o)
    }

    /// Appends the options (53 first, as RFC 2131 §4.1 suggests) and END.
    fn encode(&self, out: &mut Vec<u8>) {
        fn put(out: &mut Vec<u8>, c: u8, data: &[u8]) {
            // Split long options (RFC 3396).
            if data.is_empty() {
                out.extend_from_slice(&[c, 0]);
            }
            for chunk in data.chunks(255) {
                out.push(c);
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
        }
        let addrs = |v: &[Ipv4Addr]| -> Vec<u8> { v.iter().flat_map(|a| a.octets()).collect() };
        if let Some(t) = self.message_type {
            put(out, code::MESSAGE_TYPE, &[t.0]);
        }
        if let Some(m) = self.subnet_mask {
            put(out, code::SUBNET_MASK, &m.octets());
        }
        if !self.routers.is_empty() {
            put(out, code::ROUTER, &addrs(&self.routers));
        }
        if !self.dns_servers.is_empty() {
            put(out, code::DNS, &addrs(&self.dns_servers));
        }
        for (c, s) in [
            (code::HOST_NAME, &self.host_name),
            (code::DOMAIN_NAME, &self.domain_name),
            (code::ROOT_PATH, &self.root_path),
        ] {
            if let Some(s) = s {
                put(out, c, s.as_bytes());
            }
        }
        if let Some(v) = &self.vendor_specific {
            put(out, code::VENDOR_SPECIFIC, v);
        }
        if let Some(a) = self.requested_ip {
            put(out, code::REQUESTED_IP, &a.octets());
        }
        if let Some(t) = self.lease_time {
            put(out, code::LEASE_TIME, &t.to_be_bytes());
        }
        if let Some(a) = self.server_id {
            put(out, code::SERVER_ID, &a.octets());
        }
        if !self.parameter_request_list.is_empty() {
            put(
                out,
                code::PARAMETER_REQUEST_LIST,
                &self.parameter_request_list,
            );
        }
        if let Some(m) = &self.message {
            put(out, code::MESSAGE, m.as_bytes());
        }
        if let Some(s) = self.max_message_size {
            put(out, code::MAX_MESSAGE_SIZE, &s.to_be_bytes());
        }
        if let Some(t) = self.renewal_time {
            put(out, code::RENEWAL_TIME, &t.to_be_bytes());
        }
        if let Some(t) = self.rebinding_time {
            put(out, code::REBINDING_TIME, &t.to_be_bytes());
        }
        if let Some(c) = &self.client_id {
            put(out, code::CLIENT_ID, c);
        }
        if let Some(r) = &self.relay_agent_info {
            put(out, code::RELAY_AGENT_INFO, r);
        }
        if let Some(x) = &self.ipxe {
            let mut sub = Vec::new();
            let mut add = |c: u8, v: Option<&[u8]>| {
                if let Some(v) = v {
                    put(&mut sub, c, v);
                }
            };
            add(
                ipxe_code::USERNAME,
                x.username.as_deref().map(str::as_bytes),
            );
            add(ipxe_code::PASSWORD, x.password.as_ref().map(Secret::expose));
            add(
                ipxe_code::REVERSE_USERNAME,
                x.reverse_username.as_deref().map(str::as_bytes),
            );
            add(
                ipxe_code::REVERSE_PASSWORD,
                x.reverse_password.as_ref().map(Secret::expose),
            );
            put(out, code::IPXE, &sub);
        }
        if let Some(s) = &self.iscsi_initiator_iqn {
            put(out, code::ISCSI_INITIATOR_IQN, s.as_bytes());
        }
        for (c, d) in &self.other {
            put(out, *c, d);
        }
        out.push(code::END);
    }
}

impl Message {
    /// Parses and checks a message (the UDP payload).
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        if b.len() < FIXED_LEN + MAGIC_COOKIE.len() {
            return Err(WireError::Truncated);
        }
        if b[FIXED_LEN..FIXED_LEN + 4] != MAGIC_COOKIE {
            return Err(malformed("magic cookie"));
        }
        let op = Op(b[0]);
        if op != Op::BOOTREQUEST && op != Op::BOOTREPLY {
            return Err(malformed("op"));
        }
        let (htype, hlen) = (b[1], b[2]);
        if hlen > 16 {
            return Err(malformed("hlen"));
        }
        let mut raw = Vec::new();
        let ended = walk(&b[FIXED_LEN + 4..], &mut raw)?;
        if !ended {
            return Err(malformed("options end"));
        }
        // RFC 2132 §9.3: option 52 says `file` (1), `sname` (2) or both (3) hold options too.
        if let Some((_, v)) = raw.iter().find(|(c, _)| *c == code::OVERLOAD) {
            let ov = match v.as_slice() {
                [x @ 1..=3] => *x,
                _ => return Err(malformed("option overload")),
            };
            if ov & 1 != 0 && !walk(&b[108..236], &mut raw)? {
                return Err(malformed("options end in file"));
            }
            if ov & 2 != 0 && !walk(&b[44..108], &mut raw)? {
                return Err(malformed("options end in sname"));
            }
        }
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(&b[28..44]);
        Ok(Self {
            op,
            htype,
            hlen,
            hops: b[3],
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            secs: u16::from_be_bytes([b[8], b[9]]),
            flags: u16::from_be_bytes([b[10], b[11]]),
            ciaddr: ipv4(&b[12..16]),
            yiaddr: ipv4(&b[16..20]),
            siaddr: ipv4(&b[20..24]),
            giaddr: ipv4(&b[24..28]),
            chaddr,
            options: Options::decode(raw)?,
        })
    }

    /// Encodes the message (sname and file empty), padded to [`MIN_MESSAGE_LEN`].
    pub fn emit(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MIN_MESSAGE_LEN + 64);
        b.extend_from_slice(&[self.op.0, self.htype, self.hlen, self.hops]);
        b.extend_from_slice(&self.xid.to_be_bytes());
        b.extend_from_slice(&self.secs.to_be_bytes());
        b.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            b.extend_from_slice(&a.octets());
        }
        b.extend_from_slice(&self.chaddr);
        b.resize(FIXED_LEN, 0);
        b.extend_from_slice(&MAGIC_COOKIE);
        self.options.encode(&mut b);
        if b.len() < MIN_MESSAGE_LEN {
            b.resize(MIN_MESSAGE_LEN, 0);
        }
        b
    }

    /// The message type, if present.
    pub fn message_type(&self) -> Option<MessageType> {
        self.options.message_type
    }
}

/// What a relay agent does to a client's request before unicasting it to the server
/// (RFC 2131 §4.1, RFC 4390 §2.2): set `giaddr` if unset and count the hop. Returns `false`
/// (leave the packet alone) for a reply, garbage, or too many hops.
pub fn relay_request(packet: &mut [u8], giaddr: Ipv4Addr, max_hops: u8) -> bool {
    if packet.len() < FIXED_LEN + 4 || packet[0] != Op::BOOTREQUEST.0 || packet[3] >= max_hops {
        return false;
    }
    packet[3] += 1;
    if packet[24..28] == [0, 0, 0, 0] {
        packet[24..28].copy_from_slice(&giaddr.octets());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn offer() -> Message {
        Message {
            op: Op::BOOTREPLY,
            htype: 32,
            hlen: 0,
            hops: 0,
            xid: 0xdead_beef,
            secs: 0,
            flags: FLAG_BROADCAST,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::new(192, 0, 2, 50),
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::new(192, 0, 2, 1),
            chaddr: [0; 16],
            options: Options {
                message_type: Some(MessageType::OFFER),
                subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                routers: vec![Ipv4Addr::new(192, 0, 2, 1)],
                dns_servers: vec![Ipv4Addr::new(192, 0, 2, 53), Ipv4Addr::new(192, 0, 2, 54)],
                host_name: Some("node17".into()),
                root_path: Some("iscsi:192.0.2.10::3260:1:iqn.2026-11.org.example:boot".into()),
                lease_time: Some(3600),
                server_id: Some(Ipv4Addr::new(192, 0, 2, 2)),
                client_id: Some(vec![0, 2, 0xc9, 3, 0, 0, 0x10, 0x39]),
                ipxe: Some(IpxeCredentials {
                    username: Some("node17".into()),
                    password: Some(Secret::new(b"pw".to_vec())),
                    reverse_username: None,
                    reverse_password: None,
                }),
                iscsi_initiator_iqn: Some("iqn.2026-11.org.example:node17".into()),
                other: vec![(224, vec![1, 2, 3])],
                ..Options::default()
            },
        }
    }

    #[test]
    fn round_trip() {
        let m = offer();
        let b = m.emit();
        assert!(b.len() >= MIN_MESSAGE_LEN);
        assert_eq!(&b[..4], &[2, 32, 0, 0]);
        assert_eq!(Message::parse(&b).unwrap(), m);
    }

    #[test]
    fn long_options_split_and_join() {
        let mut m = offer();
        let long: String = core::iter::repeat_n('a', 600).collect();
        m.options.root_path = Some(long.clone());
        let b = m.emit();
        assert_eq!(Message::parse(&b).unwrap().options.root_path, Some(long));
    }

    #[test]
    fn overload_reads_options_from_file_and_sname() {
        let mut b = offer().emit();
        // Move the root path into `file` and the host name into `sname`.
        let mut m = offer();
        m.options.root_path = None;
        m.options.host_name = None;
        m.options.other.push((code::OVERLOAD, vec![3]));
        b.truncate(0);
        b.extend(m.emit());
        let rp = b"iscsi:192.0.2.10::::iqn.x:y";
        b[108] = code::ROOT_PATH;
        b[109] = rp.len() as u8;
        b[110..110 + rp.len()].copy_from_slice(rp);
        b[110 + rp.len()] = code::END;
        b[44..52].copy_from_slice(&[code::HOST_NAME, 5, b'n', b'o', b'd', b'e', b'9', 255]);
        let p = Message::parse(&b).unwrap();
        assert_eq!(
            p.options.root_path.as_deref(),
            Some("iscsi:192.0.2.10::::iqn.x:y")
        );
        assert_eq!(p.options.host_name.as_deref(), Some("node9"));
    }

    #[test]
    fn malformed_messages_are_refused() {
        let good = offer().emit();
        let mut cases: Vec<(Vec<u8>, WireError)> = Vec::new();
        cases.push((good[..239].to_vec(), WireError::Truncated));
        let mut c = good.clone();
        c[236] = 0;
        cases.push((c, malformed("magic cookie")));
        let mut c = good.clone();
        c[0] = 9;
        cases.push((c, malformed("op")));
        let mut c = good.clone();
        c[2] = 20; // the IPoIB address does not fit chaddr
        cases.push((c, malformed("hlen")));
        // An option running off the end, and no END.
        let mut c = good[..FIXED_LEN + 4].to_vec();
        c.extend_from_slice(&[code::HOST_NAME, 10, b'a']);
        cases.push((c, malformed("option length")));
        let mut c = good[..FIXED_LEN + 4].to_vec();
        c.extend_from_slice(&[code::MESSAGE_TYPE, 1, 2]);
        cases.push((c, malformed("options end")));
        for (opt, data, what) in [
            (code::SUBNET_MASK, vec![255, 0, 255, 0], "subnet mask"),
            (code::SUBNET_MASK, vec![255, 255, 255], "subnet mask"),
            (code::ROUTER, vec![1, 2, 3, 4, 5], "router"),
            (code::LEASE_TIME, vec![0, 0, 1], "lease time"),
            (code::MESSAGE_TYPE, vec![1, 2], "message type"),
            (code::HOST_NAME, vec![b'a', 0, b'b'], "host name"),
            (code::ROOT_PATH, vec![0xff, 0xfe], "root path"),
            (code::CLIENT_ID, vec![1], "client identifier"),
            (code::MAX_MESSAGE_SIZE, vec![1, 0], "maximum size"),
            (code::OVERLOAD, vec![4], "option overload"),
        ] {
            let mut c = good[..FIXED_LEN + 4].to_vec();
            c.extend_from_slice(&[opt, data.len() as u8]);
            c.extend_from_slice(&data);
            c.push(code::END);
            cases.push((c, malformed(what)));
        }
        for (bytes, want) in cases {
            assert_eq!(Message::parse(&bytes).unwrap_err(), want);
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let s = alloc::format!("{:?}", offer());
        assert!(!s.contains("\"pw\"") && s.contains("redacted"), "{s}");
    }

    #[test]
    fn relay_sets_giaddr_and_counts_hops() {
        let mut m = offer();
        m.op = Op::BOOTREQUEST;
        m.giaddr = Ipv4Addr::UNSPECIFIED;
        let mut b = m.emit();
        assert!(relay_request(&mut b, Ipv4Addr::new(127, 0, 0, 2), 4));
        let p = Message::parse(&b).unwrap();
        assert_eq!((p.giaddr, p.hops), (Ipv4Addr::new(127, 0, 0, 2), 1));
        b[3] = 4;
        assert!(!relay_request(&mut b, Ipv4Addr::new(127, 0, 0, 2), 4));
        let mut reply = offer().emit();
        assert!(!relay_request(&mut reply, Ipv4Addr::new(127, 0, 0, 2), 4));
    }
}
