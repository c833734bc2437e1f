//! InfiniBand host channel adapter support: IB wire formats (LRH, GRH, BTH, DETH, the MAD
//! common header, SMPs and SA records), the `Hal` trait (MMIO, DMA, clock), the ConnectX
//! (hermon-class) driver — command interface, ICM, EQ/CQ/QP, UD datapath — and a verbs-like API
//! that `ipoib` and the boot flows use.
#![no_std]

extern crate alloc;

pub mod wire;
