//! The network side of the host simulation, above the HCA model of `hca-sim`: IP hosts on the
//! simulated fabric and the gateway from the fabric to real services on the host.
//!
//! - [`IpHost`]: a simulated node running the `hca` driver, an `ipoib` interface and smoltcp;
//! - [`Gateway`]: a one-port node that relays DHCP (RFC 1542 relay agent) to a real DHCP server
//!   and forwards TCP connections to real services on the host's loopback (tgtd, istgt);
//! - [`World`]: a booting node's whole fabric (switch, SM, gateway, a dual-port node), stepped
//!   one simulated millisecond at a time;
//! - [`SimTransport`] and [`SimClock`]: the iSCSI initiator's transport (a smoltcp TCP socket
//!   on the booting node) and clock (the simulator's).
//!
//! std only; used by tests, benches and the demo.

pub mod gateway;
pub mod iphost;
pub mod storm;
pub mod tcp;
pub mod world;

pub use gateway::{Gateway, GatewayConfig, GatewayError, GatewayStats, RelayConfig};
pub use iphost::{HostError, IpHost};
pub use tcp::{SimClock, SimTransport};
pub use world::{FabricConfig, World, REAL_TIME_LIMIT};
