//! What the ROM leaves for the OS: an iBFT built from what the boot learned.
//!
//! - The NIC structure names the HCA (or NIC) by PCI address and the port by its MAC: for an
//!   InfiniBand port the 6-byte address current iPXE derives from the port GUID (bytes 0, 1, 2,
//!   5, 6, 7; `ibft::identity`), so the kernel module's matcher finds the same port; for
//!   Ethernet the NIC's own. Its address, prefix, gateway, DNS servers, DHCP server and host
//!   name come from the lease, with origin DHCP.
//! - The target structure holds the root path's address, port, LUN and name, and the CHAP
//!   credentials DHCP gave (iPXE's option 175, completed from `isboot.cfg` by the flow): one-way
//!   with a user name and password, mutual with the reverse pair too.
//! - The initiator name is DHCP's option 203 if given, else one derived from the host name or,
//!   failing that, the port GUID — stable across boots either way.

use alloc::format;
use alloc::string::String;
use core::fmt;
use core::net::IpAddr;

use ibft::{
    ChapType, ControlFlags, Header, Ibft, Initiator, InitiatorFlags, Lun, MacAddr, Nic, NicFlags,
    Origin, PciAddress, Secret, Target, TargetFlags,
};
use ipoib::dhcp::Lease;
use iscsi_initiator::rootpath::{RootPath, Server};

/// The port the ROM booted through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootPort {
    /// The HCA's PCI function.
    pub pci: PciAddress,
    /// Port number (1-based).
    pub port: u8,
    /// The port GUID (for an Ethernet port, the EUI-64 of its MAC).
    pub guid: [u8; 8],
    /// The MAC the NIC structure carries: for an IB port the 6 bytes current iPXE derives
    /// from the GUID (`ibft::identity`), for Ethernet the NIC's own.
    pub mac: MacAddr,
}

/// Why no iBFT could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffError {
    /// The root path names a host by DNS name, and the ROM resolves none.
    ServerName(String),
    /// DHCP gave a password without a user name (or the reverse pair without the forward one).
    Credentials,
    /// The table did not build.
    Build(ibft::BuildError),
}

impl fmt::Display for HandoffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandoffError::ServerName(n) => {
                write!(
                    f,
                    "root path names the target by DNS name ({n}); give an address"
                )
            }
            HandoffError::Credentials => f.write_str(
                "DHCP option 175 gives CHAP credentials without their pair (user and password, \
                 and forward before reverse)",
            ),
            HandoffError::Build(e) => write!(f, "iBFT: {e}"),
        }
    }
}

/// The initiator name: DHCP option 203, else `iqn.2026-11.org.isboot:<host name>`, else
/// `iqn.2026-11.org.isboot:<port GUID in hex>`.
pub fn initiator_name(lease: &Lease, guid: [u8; 8]) -> String {
    if let Some(n) = &lease.initiator_iqn {
        return n.clone();
    }
    match &lease.host_name {
        Some(h) => format!("iqn.2026-11.org.isboot:{h}"),
        None => {
            let mut s = String::from("iqn.2026-11.org.isboot:");
            for b in guid {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    }
}

/// The target's address, as the ROM connects to it.
pub fn target_address(root: &RootPath) -> Result<IpAddr, HandoffError> {
    match &root.server {
        Server::Ip(ip) => Ok(*ip),
        Server::Name(n) => Err(HandoffError::ServerName(n.clone())),
    }
}

/// The iBFT for a boot through `port` with `lease` from `root`.
pub fn build_ibft(port: &BootPort, lease: &Lease, root: &RootPath) -> Result<Ibft, HandoffError> {
    let mac = port.mac;
    let nic = Nic {
        index: 0,
        flags: NicFlags::BLOCK_VALID | NicFlags::BOOT_SELECTED | NicFlags::GLOBAL,
        ip_address: Some(IpAddr::V4(lease.address)),
        prefix_length: lease.prefix_len.unwrap_or(0),
        origin: Origin::DHCP,
        gateway: lease.routers.first().map(|&r| IpAddr::V4(r)),
        primary_dns: lease.dns_servers.first().map(|&r| IpAddr::V4(r)),
        secondary_dns: lease.dns_servers.get(1).map(|&r| IpAddr::V4(r)),
        dhcp_server: Some(IpAddr::V4(lease.server_id)),
        vlan: 0,
        mac,
        pci: port.pci,
        hostname: lease.host_name.clone(),
    };
    let creds = lease.credentials.as_ref();
    let user = creds.and_then(|c| c.username.clone());
    let pass = creds.and_then(|c| c.password.as_ref().map(|p| Secret::from_slice(p.expose())));
    let ruser = creds.and_then(|c| c.reverse_username.clone());
    let rpass = creds.and_then(|c| {
        c.reverse_password
            .as_ref()
            .map(|p| Secret::from_slice(p.expose()))
    });
    let chap_type = match (&user, &pass, &ruser, &rpass) {
        (None, None, None, None) => ChapType::None,
        (Some(_), Some(_), None, None) => ChapType::Chap,
        (Some(_), Some(_), Some(_), Some(_)) => ChapType::Mutual,
        _ => return Err(HandoffError::Credentials),
    };
    let target = Target {
        index: 0,
        flags: TargetFlags::BLOCK_VALID | TargetFlags::BOOT_SELECTED,
        ip_address: Some(target_address(root)?),
        port: root.port,
        lun: Lun(root.lun),
        chap_type,
        nic_association: 0,
        name: Some(root.target.clone()),
        chap_name: user,
        chap_secret: pass,
        reverse_chap_name: ruser,
        reverse_chap_secret: rpass,
    };
    let table = Ibft {
        header: Header::default(),
        control_flags: ControlFlags::empty(),
        initiator: Initiator {
            flags: InitiatorFlags::BLOCK_VALID | InitiatorFlags::BOOT_SELECTED,
            name: Some(initiator_name(lease, port.guid)),
            ..Initiator::default()
        },
        nics: alloc::vec![nic],
        targets: alloc::vec![target],
    };
    // Build once to be sure the table is one the OS will accept.
    ibft::build(&table).map_err(HandoffError::Build)?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use core::net::Ipv4Addr;
    use ipoib::wire::dhcp::{IpxeCredentials, Secret as DhcpSecret};

    fn lease() -> Lease {
        Lease {
            address: Ipv4Addr::new(192, 0, 2, 100),
            prefix_len: Some(24),
            routers: vec![Ipv4Addr::new(192, 0, 2, 1)],
            dns_servers: vec![Ipv4Addr::new(192, 0, 2, 53), Ipv4Addr::new(192, 0, 2, 54)],
            host_name: Some("node17".into()),
            domain_name: None,
            root_path: Some("iscsi:192.0.2.10::3260:1:iqn.x:boot".into()),
            initiator_iqn: None,
            credentials: None,
            vendor_specific: None,
            server_id: Ipv4Addr::new(192, 0, 2, 2),
            relay: None,
            lease_time: None,
            renewal_time: None,
            rebinding_time: None,
        }
    }

    const PORT: BootPort = BootPort {
        pci: PciAddress {
            bus: 0x81,
            device: 0,
            function: 0,
        },
        port: 2,
        guid: [0x00, 0x02, 0xc9, 0x03, 0x00, 0x00, 0x10, 0x3a],
        mac: MacAddr([0x00, 0x02, 0xc9, 0x00, 0x10, 0x3a]),
    };

    fn root() -> RootPath {
        RootPath::parse("iscsi:192.0.2.10::3260:1:iqn.x:boot").unwrap()
    }

    fn creds(u: Option<&str>, p: Option<&str>, ru: Option<&str>, rp: Option<&str>) -> Lease {
        let mut l = lease();
        l.credentials = Some(IpxeCredentials {
            username: u.map(Into::into),
            password: p.map(|s| DhcpSecret::new(s.as_bytes().to_vec())),
            reverse_username: ru.map(Into::into),
            reverse_password: rp.map(|s| DhcpSecret::new(s.as_bytes().to_vec())),
        });
        l
    }

    #[test]
    fn the_table_describes_the_lease_the_port_and_the_target() {
        let t = build_ibft(&PORT, &lease(), &root()).unwrap();
        let n = &t.nics[0];
        assert_eq!(n.mac, ibft::MacAddr([0x00, 0x02, 0xc9, 0x00, 0x10, 0x3a]));
        assert_eq!(n.pci, PORT.pci);
        assert_eq!(
            n.ip_address,
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)))
        );
        assert_eq!(n.prefix_length, 24);
        assert_eq!(n.origin, Origin::DHCP);
        assert_eq!(
            n.secondary_dns,
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 54)))
        );
        assert_eq!(n.dhcp_server, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))));
        assert_eq!(n.hostname.as_deref(), Some("node17"));
        let g = &t.targets[0];
        assert_eq!(g.socket_addr().unwrap().to_string(), "192.0.2.10:3260");
        assert_eq!(g.lun.number(), Some(1));
        assert_eq!(g.chap_type, ChapType::None);
        assert_eq!(
            t.initiator.name.as_deref(),
            Some("iqn.2026-11.org.isboot:node17")
        );
        // It round-trips, so the OS reads what the ROM meant.
        assert_eq!(ibft::parse(&ibft::build(&t).unwrap()).unwrap().table, t);
    }

    #[test]
    fn credentials_from_option_175_set_the_chap_type() {
        let t = build_ibft(&PORT, &creds(Some("u"), Some("p"), None, None), &root()).unwrap();
        assert_eq!(t.targets[0].chap_type, ChapType::Chap);
        assert_eq!(t.targets[0].chap_secret.as_ref().unwrap().expose(), b"p");
        let t = build_ibft(
            &PORT,
            &creds(Some("u"), Some("p"), Some("t"), Some("q")),
            &root(),
        )
        .unwrap();
        assert_eq!(t.targets[0].chap_type, ChapType::Mutual);
        for bad in [
            creds(Some("u"), None, None, None),
            creds(None, Some("p"), None, None),
            creds(None, None, Some("t"), Some("q")),
            creds(Some("u"), Some("p"), Some("t"), None),
        ] {
            assert_eq!(
                build_ibft(&PORT, &bad, &root()),
                Err(HandoffError::Credentials)
            );
        }
    }

    #[test]
    fn initiator_name_prefers_option_203_then_host_name_then_guid() {
        let mut l = lease();
        l.initiator_iqn = Some("iqn.2026-11.org.example:given".into());
        assert_eq!(
            initiator_name(&l, PORT.guid),
            "iqn.2026-11.org.example:given"
        );
        l.initiator_iqn = None;
        l.host_name = None;
        assert_eq!(
            initiator_name(&l, PORT.guid),
            "iqn.2026-11.org.isboot:0002c9030000103a"
        );
    }

    #[test]
    fn a_target_named_by_dns_is_refused_with_a_reason() {
        let r = RootPath::parse("iscsi:san.example.org::::iqn.x:y").unwrap();
        let e = build_ibft(&PORT, &lease(), &r).unwrap_err();
        assert_eq!(e, HandoffError::ServerName("san.example.org".into()));
        assert!(e.to_string().contains("DNS name"));
    }
}
