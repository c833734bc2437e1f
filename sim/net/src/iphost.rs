//! An IP host on the simulated fabric: the unmodified hermon driver, an `ipoib` interface,
//! smoltcp over it in `Medium::Ip`, and optionally the `ipoib` DHCP client. Tests build nodes
//! from it; the [`crate::gateway`] is one with relaying and forwarding on top.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use clock::Instant;
use hca::hermon::{Config as HermonConfig, Hermon};
use hca::Verbs;
use ipoib::dhcp::{self, Client, ClientIdForm, Event, Lease};
use ipoib::iface::{self, Interface};
use ipoib::phy::{smol_instant, IpoibDevice};
use ipoib::udp;
use smoltcp::iface::{Config as SmolConfig, Interface as SmolIface, SocketSet};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use hca_sim::{NodeId, Sim, SimHal};

/// Why a host did not come up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// The driver failed to bring the HCA up.
    Hca(hca::Error),
    /// The IPoIB interface did not come up.
    Ipoib(iface::Error),
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostError::Hca(e) => write!(f, "HCA: {e}"),
            HostError::Ipoib(e) => write!(f, "IPoIB: {e}"),
        }
    }
}

impl std::error::Error for HostError {}

/// One host.
pub struct IpHost {
    /// The driver.
    pub dev: Hermon<SimHal>,
    /// The IPoIB interface.
    pub ipoib: Interface,
    /// smoltcp's interface.
    pub smol: SmolIface,
    /// smoltcp's sockets.
    pub sockets: SocketSet<'static>,
    /// The DHCP client, when started.
    pub dhcp: Option<Client>,
    /// DHCP events not yet taken.
    pub dhcp_events: VecDeque<Event>,
    /// The current lease.
    pub lease: Option<Lease>,
}

impl std::fmt::Debug for IpHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpHost")
            .field("ipoib", &self.ipoib)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl IpHost {
    /// Opens node `node`'s HCA and brings the IPoIB interface up (bounded waits).
    pub fn up(sim: &Sim, node: NodeId, cfg: iface::Config) -> Result<Self, HostError> {
        let mut dev =
            Hermon::open(sim.hal(node), HermonConfig::default()).map_err(HostError::Hca)?;
        let mut ipoib = Interface::up(&mut dev, cfg).map_err(HostError::Ipoib)?;
        let mut scfg = SmolConfig::new(HardwareAddress::Ip);
        scfg.random_seed = 0x0015_b007 ^ node as u64;
        let now = dev.now();
        let smol = SmolIface::new(
            scfg,
            &mut IpoibDevice::new(&mut ipoib, &mut dev, now),
            smol_instant(now),
        );
        Ok(Self {
            dev,
            ipoib,
            smol,
            sockets: SocketSet::new(vec![]),
            dhcp: None,
            dhcp_events: VecDeque::new(),
            lease: None,
        })
    }

    /// Configures an address, prefix and default gateway on both layers (a gratuitous ARP
    /// announces a new address).
    pub fn set_ipv4(&mut self, addr: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) {
        let now = self.now();
        self.ipoib
            .set_ipv4(&mut self.dev, now, Some((addr, prefix)), gateway);
        self.smol.update_ip_addrs(|a| {
            a.clear();
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(addr), prefix));
        });
        self.smol.routes_mut().remove_default_ipv4_route();
        if let Some(gw) = gateway {
            let _ = self.smol.routes_mut().add_default_ipv4_route(gw);
        }
    }

    /// Starts DHCP over IB with a client-id form.
    pub fn start_dhcp(&mut self, form: ClientIdForm, seed: u64) {
        let mut cfg = dhcp::Config::new(self.ipoib.identity(), seed);
        cfg.form = form;
        cfg.mtu = self.ipoib.mtu() as u16;
        self.dhcp = Some(Client::new(cfg, self.now()));
    }

    /// The simulated clock, as the driver reads it: the time this host's layers are given.
    pub fn now(&self) -> Instant {
        self.dev.now()
    }

    /// One round of work: the interface, the DHCP client, then smoltcp. `keep` sees each
    /// received IPv4 packet first and returns `false` for those it consumed (the gateway's
    /// relay); the rest go to the DHCP client (UDP port 68) or smoltcp.
    pub fn poll_with(&mut self, mut keep: impl FnMut(&mut Self, &[u8]) -> bool) {
        let now = self.now();
        if let Err(e) = self.ipoib.poll(&mut self.dev, now) {
            log::debug!("iphost: interface poll: {e}");
        }
        let mut kept = Vec::new();
        while let Some(p) = self.ipoib.recv() {
            if !keep(self, &p) {
                continue;
            }
            if self.dhcp.is_some() {
                if let Some(d) = udp::parse(&p).filter(|d| d.dst_port == udp::DHCP_CLIENT_PORT) {
                    let now = self.now();
                    let ev = self.dhcp.as_mut().and_then(|c| c.process(now, d.payload));
                    if let Some(ev) = ev {
                        self.on_dhcp(ev);
                    }
                    continue;
                }
            }
            kept.push(p);
        }
        for p in kept {
            self.ipoib.push_rx(p);
        }
        self.poll_dhcp();
        let now = self.now();
        self.smol.poll(
            smol_instant(now),
            &mut IpoibDevice::new(&mut self.ipoib, &mut self.dev, now),
            &mut self.sockets,
        );
    }

    /// [`IpHost::poll_with`] keeping everything.
    pub fn poll(&mut self) {
        self.poll_with(|_, _| true);
    }

    fn poll_dhcp(&mut self) {
        let now = self.now();
        let Some(c) = self.dhcp.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        let mut out = Vec::new();
        if c.poll_at().is_some_and(|t| t <= now) {
            if let Some(e) = c.handle_timeout(now) {
                events.push(e);
            }
        }
        while let Some(tx) = c.poll_transmit(now) {
            out.push(tx);
        }
        for tx in out {
            if let Err(e) = self.ipoib.send_dhcp(&mut self.dev, now, &tx) {
                log::debug!("iphost: DHCP message not sent: {e}");
            }
        }
        for e in events {
            self.on_dhcp(e);
        }
    }

    fn on_dhcp(&mut self, ev: Event) {
        match &ev {
            Event::Bound(l) | Event::Renewed(l) => {
                self.set_ipv4(
                    l.address,
                    l.prefix_len.unwrap_or(24),
                    l.routers.first().copied(),
                );
                self.lease = Some(l.clone());
            }
            Event::Lost | Event::TimedOut => {
                self.lease = None;
                let now = self.now();
                self.ipoib.set_ipv4(&mut self.dev, now, None, None);
                self.smol.update_ip_addrs(|a| a.clear());
            }
        }
        self.dhcp_events.push_back(ev);
    }

    /// The device as the verbs trait object.
    pub fn verbs(&mut self) -> &mut dyn Verbs {
        &mut self.dev
    }
}
