//! smoltcp's `phy::Device` over an IPoIB [`Interface`], in `Medium::Ip`: smoltcp hands over
//! whole IPv4 packets and the interface routes each to its next hop (on-link, or the gateway
//! the DHCP lease named) through its own IPoIB ARP and path caches; smoltcp's Ethernet ARP and
//! DHCP play no part.
//!
//! A UD datagram that finds no posted receive slot is dropped by the HCA, so a TCP receive
//! buffer (which sets the window a peer may send back to back) should not exceed
//! [`Interface::max_rx_window`].
//!
//! A device borrows the interface and the verbs for one `smoltcp::iface::Interface::poll`, at
//! the time the caller read from its clock (packets smoltcp sends may start ARP and path
//! timers):
//!
//! ```text
//! iface.poll(dev, now)?;
//! smol.poll(smol_instant(now), &mut IpoibDevice::new(&mut iface, dev, now), &mut sockets);
//! ```

use alloc::vec;
use alloc::vec::Vec;

use clock::Instant;
use hca::Verbs;
use log::debug;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;

use crate::iface::Interface;
use crate::wire::ipoib::HEADER_LEN;

/// The device for one poll.
pub struct IpoibDevice<'a> {
    iface: &'a mut Interface,
    dev: &'a mut dyn Verbs,
    now: Instant,
}

impl core::fmt::Debug for IpoibDevice<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IpoibDevice").finish_non_exhaustive()
    }
}

impl<'a> IpoibDevice<'a> {
    /// Borrows the interface and the device for a poll at `now`.
    pub fn new(iface: &'a mut Interface, dev: &'a mut dyn Verbs, now: Instant) -> Self {
        Self { iface, dev, now }
    }
}

/// A received IPv4 packet.
#[derive(Debug)]
pub struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Room for one IPv4 packet; sent through the interface when consumed.
pub struct TxToken<'b> {
    iface: &'b mut Interface,
    dev: &'b mut dyn Verbs,
    now: Instant,
}

impl core::fmt::Debug for TxToken<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TxToken").finish_non_exhaustive()
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; HEADER_LEN + len];
        let r = f(&mut frame[HEADER_LEN..]);
        if let Err(e) = self.iface.send_ipv4_frame(self.dev, self.now, frame) {
            debug!("ipoib: smoltcp packet not sent: {e}");
        }
        r
    }
}

impl phy::Device for IpoibDevice<'_> {
    type RxToken<'b>
        = RxToken
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, _: SmolInstant) -> Option<(RxToken, TxToken<'_>)> {
        let p = self.iface.recv()?;
        Some((
            RxToken(p),
            TxToken {
                iface: self.iface,
                dev: self.dev,
                now: self.now,
            },
        ))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<TxToken<'_>> {
        Some(TxToken {
            iface: self.iface,
            dev: self.dev,
            now: self.now,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.iface.mtu();
        c
    }
}

/// `now` as smoltcp's instant, in whole milliseconds (smoltcp's timers need no finer).
pub fn smol_instant(now: Instant) -> SmolInstant {
    SmolInstant::from_millis(i64::try_from(now.total_millis()).unwrap_or(i64::MAX))
}
