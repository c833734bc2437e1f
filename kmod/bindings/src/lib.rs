//! Hand-written `extern "C"` declarations of the FreeBSD kernel KPIs the module uses.
//!
//! Filled by the kernel-module issue.
#![no_std]
