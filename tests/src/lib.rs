//! End-to-end tests: whole boots on the simulated fabric against real iSCSI targets and a real
//! DHCP server. The tests live in `tests/`; this library holds shared harness code.
