//! The `isboot.ko` kernel module logic: the boot flow (iBFT → interface → iSCSI session → CAM
//! disk) behind a `Platform` trait, sysctl and tunable tables, the CAM SIM logic, a FreeBSD
//! platform over `kernel-bindings` and a host platform for tests and the demo.
//!
//! Filled by the kernel-module issue.
#![no_std]
