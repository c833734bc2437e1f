//! rtnetlink messages: how the FreeBSD platform lists interfaces and looks up a route.
//!
//! FreeBSD 14 has netlink(4) with the rtnetlink family (`NETLINK_ROUTE`): the messages are
//! Linux's (`struct nlmsghdr`, `ifinfomsg`, `ifaddrmsg`, `rtmsg`, attributes), a wire format
//! that does not change between releases. A kernel socket carries them, and the socket layer
//! runs the request in the socket's vnet, so the module never writes `curthread->td_vnet`
//! itself (`CURVNET_SET`), whose offset in `struct thread` differs between 14 and 15.
//!
//! Built and parsed here, portably: the host tests run the same code against Linux's
//! rtnetlink.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

/// `NETLINK_ROUTE`.
pub const NETLINK_ROUTE: i32 = 0;
/// `NLMSG_ERROR`.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`.
pub const NLMSG_DONE: u16 = 3;
/// `RTM_NEWLINK`.
pub const RTM_NEWLINK: u16 = 16;
/// `RTM_GETLINK`.
pub const RTM_GETLINK: u16 = 18;
/// `RTM_NEWADDR`.
pub const RTM_NEWADDR: u16 = 20;
/// `RTM_GETADDR`.
pub const RTM_GETADDR: u16 = 22;
/// `RTM_NEWROUTE`.
pub const RTM_NEWROUTE: u16 = 24;
/// `RTM_GETROUTE`.
pub const RTM_GETROUTE: u16 = 26;
/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `IFLA_ADDRESS`.
pub const IFLA_ADDRESS: u16 = 1;
/// `IFLA_IFNAME`.
pub const IFLA_IFNAME: u16 = 3;
/// `IFLA_OPERSTATE`.
pub const IFLA_OPERSTATE: u16 = 16;
/// `IFA_ADDRESS`.
pub const IFA_ADDRESS: u16 = 1;
/// `IFA_LOCAL`.
pub const IFA_LOCAL: u16 = 2;
/// `RTA_DST`.
pub const RTA_DST: u16 = 1;
/// `RTA_OIF`.
pub const RTA_OIF: u16 = 4;
/// `RTA_GATEWAY`.
pub const RTA_GATEWAY: u16 = 5;
/// `AF_INET` in netlink messages (2 on FreeBSD and Linux alike).
const AF_INET: u8 = 2;
/// `IF_OPER_UP` (RFC 2863 operational state, as `IFLA_OPERSTATE` carries it).
pub const IF_OPER_UP: u8 = 6;
/// `IF_OPER_UNKNOWN`.
pub const IF_OPER_UNKNOWN: u8 = 0;
/// `IFF_UP` (the same bit in FreeBSD's netlink and Linux).
pub const IFF_UP: u32 = 0x1;
/// Link types that are loopback: FreeBSD's `IFT_LOOP` and Linux's `ARPHRD_LOOPBACK`.
const LOOPBACK_TYPES: [u16; 2] = [0x18, 772];

/// `sizeof(struct nlmsghdr)`.
pub const NLMSG_HDRLEN: usize = 16;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn message(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + body.len();
    let mut m = Vec::with_capacity(align4(len));
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel's
    m.extend_from_slice(body);
    m.resize(align4(len), 0);
    m
}

/// `RTM_GETLINK` dump: every interface.
pub fn get_links(seq: u32) -> Vec<u8> {
    // struct ifinfomsg: family, pad, type, index, flags, change (16 bytes), all zero.
    message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, &[0u8; 16])
}

/// `RTM_GETADDR` dump of the IPv4 addresses.
pub fn get_addrs(seq: u32) -> Vec<u8> {
    // struct ifaddrmsg: family, prefixlen, flags, scope, index (8 bytes).
    let mut body = [0u8; 8];
    body[0] = AF_INET;
    message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, &body)
}

/// `RTM_GETROUTE` for one IPv4 destination: the route the kernel would use.
pub fn get_route(seq: u32, dst: Ipv4Addr) -> Vec<u8> {
    // struct rtmsg (12 bytes): family, dst_len, src_len, tos, table, protocol, scope, type,
    // flags (u32); then RTA_DST.
    let mut body = [0u8; 12 + 8];
    body[0] = AF_INET;
    body[1] = 32;
    body[12..14].copy_from_slice(&8u16.to_ne_bytes());
    body[14..16].copy_from_slice(&RTA_DST.to_ne_bytes());
    body[16..20].copy_from_slice(&dst.octets());
    message(RTM_GETROUTE, NLM_F_REQUEST, seq, &body)
}

/// One netlink message of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// The payload after the header.
    pub body: &'a [u8],
}

/// The messages in `buf` (stops at the first malformed one).
pub fn messages(buf: &[u8]) -> Vec<Msg<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(ty), Some(seq)) =
        (u32_at(buf, at), u16_at(buf, at + 4), u32_at(buf, at + 8))
    {
        let len = len as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            break;
        }
        out.push(Msg {
            ty,
            seq,
            body: &buf[at + NLMSG_HDRLEN..at + len],
        });
        at += align4(len);
    }
    out
}

/// The errno of an `NLMSG_ERROR` (0: an acknowledgement).
pub fn error_of(m: &Msg<'_>) -> Option<i32> {
    (m.ty == NLMSG_ERROR).then(|| u32_at(m.body, 0).map_or(0, |e| (e as i32).wrapping_neg()))
}

/// The attributes (type, payload) from `at` on.
fn attrs(b: &[u8], mut at: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let (Some(len), Some(ty)) = (u16_at(b, at), u16_at(b, at + 2)) {
        let len = usize::from(len);
        if len < 4 || at + len > b.len() {
            break;
        }
        out.push((ty & 0x3fff, &b[at + 4..at + len]));
        at += align4(len);
    }
    out
}

/// An interface as `RTM_NEWLINK` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// `ifi_index`.
    pub index: u32,
    /// `IFLA_IFNAME`.
    pub name: String,
    /// `ifi_type` (FreeBSD: `IFT_*`; Linux: `ARPHRD_*`).
    pub ty: u16,
    /// `ifi_flags`.
    pub flags: u32,
    /// `IFLA_ADDRESS`.
    pub lladdr: Vec<u8>,
    /// `IFLA_OPERSTATE`, if given.
    pub operstate: Option<u8>,
}

impl Link {
    /// Whether it is a loopback interface.
    pub fn is_loopback(&self) -> bool {
        LOOPBACK_TYPES.contains(&self.ty)
    }

    /// Administratively up.
    pub fn up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    /// Link up: operational state up, or (a driver that reports none) unknown while up.
    pub fn link_up(&self) -> bool {
        match self.operstate {
            Some(IF_OPER_UP) => true,
            None | Some(IF_OPER_UNKNOWN) => self.up(),
            _ => false,
        }
    }
}

/// Parses an `RTM_NEWLINK`.
pub fn parse_link(m: &Msg<'_>) -> Option<Link> {
    if m.ty != RTM_NEWLINK || m.body.len() < 16 {
        return None;
    }
    let mut l = Link {
        index: u32_at(m.body, 4)?,
        name: String::new(),
        ty: u16_at(m.body, 2)?,
        flags: u32_at(m.body, 8)?,
        lladdr: Vec::new(),
        operstate: None,
    };
    for (ty, v) in attrs(m.body, 16) {
        match ty {
            IFLA_IFNAME => {
                let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                l.name = String::from_utf8_lossy(&v[..end]).into_owned();
            }
            IFLA_ADDRESS => l.lladdr = v.to_vec(),
            IFLA_OPERSTATE => l.operstate = v.first().copied(),
            _ => {}
        }
    }
    Some(l)
}

/// Parses an `RTM_NEWADDR` of an IPv4 address: (interface index, address, prefix length).
pub fn parse_addr(m: &Msg<'_>) -> Option<(u32, Ipv4Addr, u8)> {
    if m.ty != RTM_NEWADDR || m.body.len() < 8 || m.body[0] != AF_INET {
        return None;
    }
    let prefix = m.body[1];
    let index = u32_at(m.body, 4)?;
    let mut local = None;
    let mut address = None;
    for (ty, v) in attrs(m.body, 8) {
        let a = <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
        match ty {
            IFA_LOCAL => local = a,
            IFA_ADDRESS => address = a,
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on point-to-point).
    Some((index, local.or(address)?, prefix))
}

/// A route as `RTM_NEWROUTE` answers `RTM_GETROUTE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteReply {
    /// `RTA_OIF`.
    pub oif: u32,
    /// `RTA_GATEWAY`.
    pub gateway: Option<Ipv4Addr>,
    /// `rtm_dst_len`.
    pub dst_len: u8,
}

/// Parses an `RTM_NEWROUTE`.
pub fn parse_route(m: &Msg<'_>) -> Option<RouteReply> {
    if m.ty != RTM_NEWROUTE || m.body.len() < 12 || m.body[0] != AF_INET {
        return None;
    }
    let mut r = RouteReply {
        oif: 0,
        gateway: None,
        dst_len: m.body[1],
    };
    for (ty, v) in attrs(m.body, 12) {
        match ty {
            RTA_OIF => r.oif = u32_at(v, 0).unwrap_or(0),
            RTA_GATEWAY => r.gateway = <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from),
            _ => {}
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn attr(ty: u16, v: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(v);
        a.resize(align4(a.len()), 0);
        a
    }

    #[test]
    fn requests_are_laid_out_as_rtnetlink_wants() {
        let m = get_links(7);
        assert_eq!(m.len(), 32);
        assert_eq!(u32_at(&m, 0), Some(32));
        assert_eq!(u16_at(&m, 4), Some(RTM_GETLINK));
        assert_eq!(u16_at(&m, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
        assert_eq!(u32_at(&m, 8), Some(7));
        let m = get_addrs(1);
        assert_eq!((m.len(), m[16]), (24, AF_INET));
        let m = get_route(2, Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(m.len(), 36);
        assert_eq!(u16_at(&m, 6), Some(NLM_F_REQUEST));
        assert_eq!((m[16], m[17]), (AF_INET, 32));
        assert_eq!(&m[32..36], &[10, 0, 2, 2]);
    }

    #[test]
    fn a_freebsd_style_link_dump_parses() {
        // vtnet0: IFT_ETHER, up, link up, MAC; then lo0 (IFT_LOOP); then DONE.
        let mut body = vec![0u8; 16];
        body[2..4].copy_from_slice(&6u16.to_ne_bytes());
        body[4..8].copy_from_slice(&1u32.to_ne_bytes());
        body[8..12].copy_from_slice(&0x10043u32.to_ne_bytes());
        body.extend(attr(IFLA_IFNAME, b"vtnet0\0"));
        body.extend(attr(IFLA_ADDRESS, &[0x52, 0x54, 0, 0x9a, 0xbc, 0xde]));
        body.extend(attr(IFLA_OPERSTATE, &[IF_OPER_UP]));
        let mut buf = message(RTM_NEWLINK, 2, 5, &body);
        let mut lo = vec![0u8; 16];
        lo[2..4].copy_from_slice(&0x18u16.to_ne_bytes());
        lo[4..8].copy_from_slice(&2u32.to_ne_bytes());
        lo.extend(attr(IFLA_IFNAME, b"lo0\0"));
        buf.extend(message(RTM_NEWLINK, 2, 5, &lo));
        buf.extend(message(NLMSG_DONE, 2, 5, &[0; 4]));
        let msgs = messages(&buf);
        assert_eq!(msgs.len(), 3);
        let l = parse_link(&msgs[0]).unwrap();
        assert_eq!(l.name, "vtnet0");
        assert_eq!(l.index, 1);
        assert_eq!(l.lladdr, [0x52, 0x54, 0, 0x9a, 0xbc, 0xde]);
        assert!(l.up() && l.link_up() && !l.is_loopback());
        let lo = parse_link(&msgs[1]).unwrap();
        assert!(lo.is_loopback() && !lo.up() && !lo.link_up());
        assert_eq!(msgs[2].ty, NLMSG_DONE);
        // Truncated input stops cleanly.
        assert_eq!(messages(&buf[..20]).len(), 0);
    }

    #[test]
    fn addresses_routes_and_errors_parse() {
        let mut body = vec![AF_INET, 24, 0, 0];
        body.extend_from_slice(&3u32.to_ne_bytes());
        body.extend(attr(IFA_ADDRESS, &[10, 0, 2, 15]));
        body.extend(attr(IFA_LOCAL, &[10, 0, 2, 15]));
        let m = message(RTM_NEWADDR, 0, 1, &body);
        let msgs = messages(&m);
        assert_eq!(
            parse_addr(&msgs[0]),
            Some((3, Ipv4Addr::new(10, 0, 2, 15), 24))
        );

        let mut body = vec![AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        body.extend(attr(RTA_OIF, &3u32.to_ne_bytes()));
        body.extend(attr(RTA_GATEWAY, &[10, 0, 2, 2]));
        let m = message(RTM_NEWROUTE, 0, 1, &body);
        let msgs = messages(&m);
        assert_eq!(
            parse_route(&msgs[0]),
            Some(RouteReply {
                oif: 3,
                gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
                dst_len: 0
            })
        );

        let m = message(NLMSG_ERROR, 0, 1, &(-3i32).to_ne_bytes());
        assert_eq!(error_of(&messages(&m)[0]), Some(3));
    }

    /// The same requests and parsers against the host's rtnetlink (Linux speaks the same
    /// messages; FreeBSD's `ifi_type` is an `IFT_*`, Linux's an `ARPHRD_*`).
    #[cfg(feature = "std")]
    mod live {
        use super::*;
        use alloc::vec;

        fn exchange(req: &[u8]) -> Vec<u8> {
            // SAFETY: plain socket calls on a descriptor this function owns and closes; the
            // buffers are valid for the lengths given.
            unsafe {
                let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, NETLINK_ROUTE);
                assert!(fd >= 0);
                assert_eq!(
                    libc::send(fd, req.as_ptr().cast(), req.len(), 0),
                    req.len() as isize
                );
                let mut all = Vec::new();
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
                    assert!(n > 0);
                    let chunk = &buf[..n as usize];
                    all.extend_from_slice(chunk);
                    let msgs = messages(chunk);
                    let dump = u16_at(req, 6).unwrap() & NLM_F_DUMP != 0;
                    if !dump
                        || msgs
                            .iter()
                            .any(|m| m.ty == NLMSG_DONE || m.ty == NLMSG_ERROR)
                    {
                        break;
                    }
                }
                libc::close(fd);
                all
            }
        }

        #[test]
        fn linux_rtnetlink_lists_lo_its_address_and_routes_to_it() {
            let buf = exchange(&get_links(1));
            let links: Vec<Link> = messages(&buf).iter().filter_map(parse_link).collect();
            let lo = links.iter().find(|l| l.name == "lo").expect("lo");
            assert!(lo.is_loopback() && lo.up(), "{lo:?}");
            let buf = exchange(&get_addrs(2));
            let addrs: Vec<_> = messages(&buf).iter().filter_map(parse_addr).collect();
            assert!(
                addrs.contains(&(lo.index, Ipv4Addr::LOCALHOST, 8)),
                "{addrs:?}"
            );
            let buf = exchange(&get_route(3, Ipv4Addr::LOCALHOST));
            let msgs = messages(&buf);
            let r = msgs.iter().find_map(parse_route).expect("a route");
            assert_eq!((r.oif, r.gateway), (lo.index, None));
            assert_eq!(msgs[0].seq, 3);
        }
    }
}
