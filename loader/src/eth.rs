//! The Ethernet boot path: a firmware NIC that sends and receives whole frames ([`Nic`]; UEFI's
//! Simple Network Protocol is one), smoltcp's Ethernet medium (its ARP) over it, and DHCP
//! beside smoltcp with the `ipoib` crate's client in its Ethernet form (`htype` 1, `chaddr`
//! and client identifier `01` + the MAC: RFC 2131, RFC 2132 §9.14, what iPXE sends).

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use clock::{Duration, Instant};
use ibft::{MacAddr, PciAddress};
use ipoib::dhcp::{ClientIdForm, Destination, Identity, Transmit};
use ipoib::udp;
use ipoib::wire::ipoib::{Gid, HwAddr};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::wire::{EthernetAddress, HardwareAddress};

use crate::flow::{PortError, Ports};
use crate::net::{Env, Link, LinkError, NicInfo};

/// Ethernet header length.
pub const ETH_HEADER: usize = 14;
/// IPv4's EtherType.
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
/// Frames queued for smoltcp, at most (the oldest is dropped).
const RX_QUEUE: usize = 128;

/// A NIC that moves whole Ethernet frames (with their 14-byte header, without the FCS).
pub trait Nic {
    /// The station address.
    fn mac(&self) -> [u8; 6];
    /// The largest payload (1500 on Ethernet).
    fn mtu(&self) -> usize;
    /// Whether the cable is in: `None` when the NIC cannot tell.
    fn link_up(&mut self) -> Option<bool>;
    /// Sends one frame.
    fn transmit(&mut self, frame: &[u8]) -> Result<(), &'static str>;
    /// Receives one frame into `buf`, if one has arrived; its length.
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// The NIC's PCI function.
    fn pci(&self) -> PciAddress;
}

/// An Ethernet NIC as the boot link.
#[derive(Debug)]
pub struct EthLink<N: Nic> {
    /// The NIC.
    pub nic: N,
    rx: VecDeque<Vec<u8>>,
    dhcp: VecDeque<Vec<u8>>,
    /// Frames received (all of them, for the console).
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
}

impl<N: Nic> EthLink<N> {
    /// The link over `nic`.
    pub fn new(nic: N) -> Self {
        Self {
            nic,
            rx: VecDeque::new(),
            dhcp: VecDeque::new(),
            frames_in: 0,
            frames_out: 0,
        }
    }

    fn send_frame(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        self.frames_out += 1;
        self.nic.transmit(frame).map_err(LinkError::Device)
    }
}

/// The EUI-64 an Ethernet MAC maps to (RFC 4291 appendix A without the U/L flip): the
/// "port GUID" of an Ethernet port, for the initiator name and the ISID.
pub fn eui64(mac: [u8; 6]) -> [u8; 8] {
    [mac[0], mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]]
}

/// smoltcp's device over the link for one poll.
#[derive(Debug)]
pub struct EthDevice<'a, N: Nic> {
    link: &'a mut EthLink<N>,
}

/// A received frame.
#[derive(Debug)]
pub struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Room for one frame, sent when consumed.
#[derive(Debug)]
pub struct TxToken<'a, N: Nic> {
    link: &'a mut EthLink<N>,
}

impl<N: Nic> phy::TxToken for TxToken<'_, N> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        if let Err(e) = self.link.send_frame(&frame) {
            log::debug!("loader: frame not sent: {e}");
        }
        r
    }
}

impl<'d, N: Nic> phy::Device for EthDevice<'d, N> {
    type RxToken<'b>
        = RxToken
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b, N>
    where
        Self: 'b;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(RxToken, TxToken<'_, N>)> {
        let f = self.link.rx.pop_front()?;
        Some((RxToken(f), TxToken { link: self.link }))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<TxToken<'_, N>> {
        Some(TxToken { link: self.link })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = self.link.nic.mtu() + ETH_HEADER;
        c
    }
}

impl<N: Nic> Link for EthLink<N> {
    type Device<'a>
        = EthDevice<'a, N>
    where
        N: 'a;

    fn device(&mut self, _now: Instant) -> EthDevice<'_, N> {
        EthDevice { link: self }
    }

    fn hardware_addr(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(EthernetAddress(self.nic.mac()))
    }

    fn poll(&mut self, _now: Instant) {
        let mut buf = vec![0u8; self.nic.mtu() + ETH_HEADER + 64];
        for _ in 0..64 {
            let Some(n) = self.nic.receive(&mut buf) else {
                break;
            };
            self.frames_in += 1;
            let Some(f) = buf.get(..n) else {
                continue;
            };
            if f.len() > ETH_HEADER && f[12..14] == ETHERTYPE_IPV4 {
                if let Some(d) =
                    udp::parse(&f[ETH_HEADER..]).filter(|d| d.dst_port == udp::DHCP_CLIENT_PORT)
                {
                    if self.dhcp.len() < 16 {
                        self.dhcp.push_back(d.payload.to_vec());
                    }
                    continue;
                }
            }
            if self.rx.len() >= RX_QUEUE {
                self.rx.pop_front();
            }
            self.rx.push_back(f.to_vec());
        }
    }

    fn take_dhcp(&mut self) -> Option<Vec<u8>> {
        self.dhcp.pop_front()
    }

    fn send_dhcp(&mut self, _now: Instant, tx: &Transmit) -> Result<(), LinkError> {
        // Every DHCP message goes to the broadcast address: a boot ROM does not renew, and a
        // server accepts a unicast REQUEST in a broadcast frame.
        let dst = match tx.dst {
            Destination::Broadcast => Ipv4Addr::BROADCAST,
            Destination::Unicast(s) => s,
        };
        let packet = udp::emit(&udp::Datagram {
            src: tx.src,
            dst,
            src_port: udp::DHCP_CLIENT_PORT,
            dst_port: udp::DHCP_SERVER_PORT,
            payload: &tx.payload,
        })
        .ok_or(LinkError::TooLong)?;
        if packet.len() > self.nic.mtu() {
            return Err(LinkError::TooLong);
        }
        let mut frame = Vec::with_capacity(ETH_HEADER + packet.len());
        frame.extend_from_slice(&[0xff; 6]);
        frame.extend_from_slice(&self.nic.mac());
        frame.extend_from_slice(&ETHERTYPE_IPV4);
        frame.extend_from_slice(&packet);
        self.send_frame(&frame)
    }

    fn set_ipv4(&mut self, _: Instant, _: Ipv4Addr, _: u8, _: Option<Ipv4Addr>) {}

    fn identity(&self) -> Identity {
        let mac = self.nic.mac();
        Identity {
            port_guid: eui64(mac),
            hw_addr: HwAddr {
                flags: 0,
                qpn: 0,
                gid: Gid([0; 16]),
            },
            lemac: mac,
        }
    }

    fn dhcp_form(&self, _configured: ClientIdForm) -> ClientIdForm {
        ClientIdForm::IpxeEthernet
    }

    fn mtu(&self) -> usize {
        self.nic.mtu()
    }

    fn tcp_window(&self) -> usize {
        64 * 1024
    }

    fn nic(&self) -> NicInfo {
        let mac = self.nic.mac();
        NicInfo {
            pci: self.nic.pci(),
            port: 1,
            guid: eui64(mac),
            mac: MacAddr(mac),
            mac_origin: "MAC",
        }
    }
}

/// The one port of an Ethernet NIC.
#[derive(Debug)]
pub struct EthPorts<N: Nic> {
    nic: Option<N>,
}

impl<N: Nic> EthPorts<N> {
    /// The port of `nic`.
    pub fn new(nic: N) -> Self {
        Self { nic: Some(nic) }
    }
}

impl<N: Nic, E: Env> Ports<E> for EthPorts<N> {
    type Link = EthLink<N>;

    fn open(&mut self, port: u8, wait: Duration, env: &mut E) -> Result<EthLink<N>, PortError> {
        if port != 1 {
            return Err(PortError::NoSuchPort);
        }
        let mut nic = self.nic.take().ok_or(PortError::InUse)?;
        let end = env.now() + wait;
        loop {
            match nic.link_up() {
                Some(true) | None => return Ok(EthLink::new(nic)),
                Some(false) if env.now() >= end => {
                    self.nic = Some(nic);
                    return Err(PortError::NoLink(wait));
                }
                Some(false) => env.idle(Duration::from_millis(10)),
            }
        }
    }

    fn up_line(link: &EthLink<N>) -> String {
        format!(
            "link up; Ethernet {}, MTU {}",
            MacAddr(link.nic.mac()),
            link.nic.mtu()
        )
    }
}
