//! The host simulation: a ConnectX device model reachable through the same `Hal` the driver
//! uses, an InfiniBand fabric (switches, subnet manager, subnet administrator, multicast), fault
//! injection as a middleware, and a gateway from the fabric to real services on loopback.
//!
//! std only; used by tests, benches and the demo. Filled by the HCA issue.
