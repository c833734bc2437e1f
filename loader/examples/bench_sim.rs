//! The initiator's workloads across the simulated fabric: IPoIB over the simulated HCA, TCP
//! through the gateway, to a real tgtd on loopback (issue 4's simulated bench).
//!
//! IOPS are in simulated time (the simulator advances 1 ms per round; its links move packets at
//! the QDR 4x data rate, but a round trip through the gateway to the real tgtd costs at least
//! a round, so they describe the model, not hardware). CPU per I/O is real: user + system time of
//! this one process per completed I/O — the whole simulated path, our initiator, smoltcp,
//! IPoIB and the driver *and* the device model, the fabric and the gateway's side, so an upper
//! bound on our stack's cost.
//!
//! `bench_sim [SIMULATED_SECONDS]` (default 2); needs root, `kea-dhcp4-server` and `tgt`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::ExitCode;

use loader::sim::{bench, Workload};

fn main() -> ExitCode {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let r = isboot_tests::netns::run(move || -> Result<(), String> {
        let _servers = common::servers();
        println!(
            "{:<18} {:>8} {:>10} {:>12} {:>13}",
            "workload", "I/Os", "IOPS(sim)", "MiB/s(sim)", "CPU/IO(real)"
        );
        for (name, bs, qd, random) in [
            ("4k-randread-qd1", 4096u32, 1u32, true),
            ("4k-randread-qd32", 4096, 32, true),
            ("1m-seqread-qd1", 1 << 20, 1, false),
            ("1m-seqread-qd8", 1 << 20, 8, false),
        ] {
            let w = Workload {
                bs,
                qd,
                random,
                duration: core::time::Duration::from_secs(secs),
            };
            let r = bench(
                common::world(),
                &common::boot_config(),
                &w,
                &isboot_tests::cpu_micros,
                &mut |_| {},
            )
            .map_err(|e| format!("{name}: {e}"))?;
            let s = r.sim_ms.max(1) as f64 / 1000.0;
            let iops = r.ios as f64 / s;
            println!(
                "{name:<18} {:>8} {:>10.0} {:>12.1} {:>11.1}us",
                r.ios,
                iops,
                iops * f64::from(bs) / (1 << 20) as f64,
                r.cpu_us as f64 / r.ios.max(1) as f64
            );
        }
        Ok(())
    });
    match r {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("bench_sim: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench_sim: {e}");
            ExitCode::FAILURE
        }
    }
}
