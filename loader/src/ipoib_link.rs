//! The InfiniBand boot path over any HCA driver with the verbs: a port brought up as an IPoIB
//! interface (the broadcast group joined through the SA), DHCP beside smoltcp on it.
//! The simulator runs it over the hermon driver on the simulated HCA; a firmware image runs it
//! over the same driver on a real one.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use clock::{Duration, Instant};
use hca::verbs::PortNum;
use hca::Verbs;
use ibft::identity::{mac_for, MacRule, PortGuid};
use ibft::PciAddress;
use ipoib::dhcp::{ClientIdForm, Identity, Transmit};
use ipoib::iface::{self, Interface};
use ipoib::phy::IpoibDevice;
use ipoib::udp;
use smoltcp::wire::HardwareAddress;

use crate::flow::{PortError, Ports};
use crate::net::{Env, Link, LinkError, NicInfo};

/// One port of an HCA as the boot link.
#[derive(Debug)]
pub struct IpoibLink<V: Verbs> {
    /// The driver.
    pub dev: V,
    /// The IPoIB interface.
    pub iface: Interface,
    dhcp: VecDeque<Vec<u8>>,
    pci: PciAddress,
    port: u8,
}

impl<V: Verbs> Link for IpoibLink<V> {
    type Device<'a>
        = IpoibDevice<'a>
    where
        V: 'a;

    fn device(&mut self, now: Instant) -> IpoibDevice<'_> {
        IpoibDevice::new(&mut self.iface, &mut self.dev, now)
    }

    fn hardware_addr(&self) -> HardwareAddress {
        HardwareAddress::Ip
    }

    fn poll(&mut self, now: Instant) {
        if let Err(e) = self.iface.poll(&mut self.dev, now) {
            log::debug!("loader: interface poll: {e}");
        }
        let mut kept = Vec::new();
        while let Some(p) = self.iface.recv() {
            match udp::parse(&p).filter(|d| d.dst_port == udp::DHCP_CLIENT_PORT) {
                Some(d) => {
                    if self.dhcp.len() < 16 {
                        self.dhcp.push_back(d.payload.to_vec());
                    }
                }
                None => kept.push(p),
            }
        }
        for p in kept {
            self.iface.push_rx(p);
        }
    }

    fn take_dhcp(&mut self) -> Option<Vec<u8>> {
        self.dhcp.pop_front()
    }

    fn send_dhcp(&mut self, now: Instant, tx: &Transmit) -> Result<(), LinkError> {
        self.iface
            .send_dhcp(&mut self.dev, now, tx)
            .map_err(LinkError::Ipoib)
    }

    fn set_ipv4(&mut self, now: Instant, addr: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) {
        self.iface
            .set_ipv4(&mut self.dev, now, Some((addr, prefix)), gateway);
    }

    fn identity(&self) -> Identity {
        self.iface.identity()
    }

    fn dhcp_form(&self, configured: ClientIdForm) -> ClientIdForm {
        configured
    }

    fn mtu(&self) -> usize {
        self.iface.mtu()
    }

    fn tcp_window(&self) -> usize {
        self.iface.max_rx_window()
    }

    fn nic(&self) -> NicInfo {
        let guid = self.iface.identity().port_guid;
        NicInfo {
            pci: self.pci,
            port: self.port,
            guid,
            mac: mac_for(MacRule::GuidMask, PortGuid(guid), None).unwrap_or_default(),
            mac_origin: "GUID MAC",
        }
    }
}

/// The ports of one HCA: each tried by bringing an IPoIB interface up on it.
#[derive(Debug)]
pub struct IpoibPorts<V: Verbs> {
    dev: Option<V>,
    pci: PciAddress,
}

impl<V: Verbs> IpoibPorts<V> {
    /// The ports of the HCA `dev` drives, at `pci`.
    pub fn new(dev: V, pci: PciAddress) -> Self {
        Self {
            dev: Some(dev),
            pci,
        }
    }
}

impl<V: Verbs, E: Env> Ports<E> for IpoibPorts<V> {
    type Link = IpoibLink<V>;

    fn open(&mut self, port: u8, wait: Duration, _env: &mut E) -> Result<IpoibLink<V>, PortError> {
        let mut dev = self.dev.take().ok_or(PortError::InUse)?;
        if port == 0 || port > dev.num_ports() {
            self.dev = Some(dev);
            return Err(PortError::NoSuchPort);
        }
        let cfg = iface::Config {
            port: PortNum(port),
            port_timeout: wait,
            ..iface::Config::default()
        };
        match Interface::up(&mut dev, cfg) {
            Ok(iface) => Ok(IpoibLink {
                dev,
                iface,
                dhcp: VecDeque::new(),
                pci: self.pci,
                port,
            }),
            Err(e) => {
                self.dev = Some(dev);
                Err(PortError::Ipoib(e))
            }
        }
    }

    fn up_line(link: &IpoibLink<V>) -> alloc::string::String {
        alloc::format!(
            "ACTIVE; joined the IPoIB broadcast group, IP MTU {}",
            link.iface.mtu()
        )
    }
}
