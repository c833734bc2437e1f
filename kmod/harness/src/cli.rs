//! The command line.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// The usage text (`kldrun --help`).
pub const USAGE: &str = "\
usage: kldrun [options] MODULE.ko

Loads a FreeBSD 14 amd64 kld into this process as the kernel linker would, runs its SYSINITs
and MOD_LOAD against emulated kernel functions, optionally prints sysctl subtrees, then unloads
it and checks that it released everything.

  --tunable NAME=VALUE  set a kernel environment variable (loader.conf / kenv)
  --preload TYPE=FILE   a file preloaded by loader(8) with that type (e.g. ibft_table=t.bin)
  --phys ADDR=FILE      place FILE's bytes at physical address ADDR (0x... or decimal); the
                        rest of physical memory reads as zero
  --sysctl PREFIX       print the sysctl tree under PREFIX after the load, as sysctl(8) would
  --timeout SECONDS     give up (exit 5) if the run takes longer (default 60)
  --fail-malloc N       the N-th malloc(9) call returns NULL (failure injection)
  --fail-oid N          the N-th sysctl_add_oid(9) call returns NULL (as for a taken name)
  --hold-oid NODE       after the load, another subsystem adds a child under the sysctl node
                        NODE and keeps it until after the unload
  --mountroot           after the module's root holds are released, mount root as the kernel
                        would: the GPT of da0 read through the SIM, its freebsd-ufs
                        partition's UFS2 superblock and root directory
                        (prints 'mountroot: daNpK ufs2 / = ENTRY,...'; exit 1 without one)
  --workload verify:BYTES  write a pattern to the last BYTES of da0 through the SIM and read
                        it back (prints 'verify: N bytes, M mismatches, max_io_gap_ms=G',
                        G the longest wait for one I/O; exit 1 on a mismatch)
  --workload bench:MODE:BS:QD:SECONDS  MODE rand or seq (reads), randwrite or seqwrite:
                        BS-byte I/Os at random or sequential offsets of da0 with QD in flight
                        from one requester thread for SECONDS; the last line is 'bench: ...
                        iops=N mib_s=N cpu_us_per_io=N mallocs=N mem_hwm=N max_in_flight=N'
                        (kmod/README.md)
  --wait-stdin          after the load (and the sysctls), keep the module loaded until stdin
                        ends, then unload (a test drives its network interface meanwhile)
  --hca BUS:DEV.FN[,guid=HEX][,port1=down][,loss=PCT][,owner=NAME][,forward=PORT]
        [,gateway=A.B.C.D/N][,cut=PORT@SECS][,lid=PORT:LID@SECS][,smrestart@SECS]
                        a simulated dual-port ConnectX at that PCI function (hex, as lspci
                        writes it: 81:00.0) on a fabric with a subnet manager (hca-sim):
                        pci_find_dbsf finds it, its BARs fault into the device model, busdma
                        memory is the model's host memory. guid: the node GUID (default
                        0x0002c90300001234); port1=down: port 1 has no cable; loss: percent of
                        fabric packets dropped; owner: a driver (e.g. mlx4_core0) owns it;
                        forward: the gateway forwards TCP to that port to
                        127.0.0.1:PORT; gateway: its fabric address and subnet (default
                        10.77.0.1/24); cut: the port's cable is pulled SECS after the
                        workload starts; lid: the SM gives the port a new LID then;
                        smrestart: the subnet manager restarts then (its multicast groups
                        are lost; its next sweep asks every port to re-register)
  -v, --verbose         trace the linking, every kernel call and the events
  -h, --help            this text

Exit status: 0 the module loaded, ran and unloaded leaving nothing behind; 1 it refused to
load or unload, or a sysctl could not be read; 2 usage; 3 the kernel linker refused the file;
4 something was left behind (leak); 5 the kernel would have died (panic, page fault, stack
overflow, timeout, memory corruption).
";

/// What to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The kld.
    pub ko: PathBuf,
    /// `--tunable`s, in order.
    pub tunables: Vec<(String, String)>,
    /// `--preload TYPE=FILE`s, in order.
    pub preloads: Vec<(String, PathBuf)>,
    /// `--phys ADDR=FILE`s, in order.
    pub phys: Vec<(u64, PathBuf)>,
    /// `--sysctl PREFIX`es, in order.
    pub sysctls: Vec<String>,
    /// `--timeout` in seconds.
    pub timeout: u64,
    /// `--verbose`.
    pub verbose: bool,
    /// `--fail-malloc`.
    pub fail_malloc: Option<u64>,
    /// `--fail-oid`.
    pub fail_oid: Option<u64>,
    /// `--hold-oid`.
    pub hold_oid: Option<String>,
    /// `--mountroot`.
    pub mountroot: bool,
    /// `--wait-stdin`.
    pub wait_stdin: bool,
    /// `--workload`.
    pub workload: Option<Workload>,
    /// `--hca`.
    pub hca: Option<HcaOpts>,
}

/// `--hca`: the simulated HCA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcaOpts {
    /// PCI bus.
    pub bus: u8,
    /// PCI device (slot).
    pub device: u8,
    /// PCI function.
    pub function: u8,
    /// The node GUID.
    pub guid: u64,
    /// Port 1 has no cable.
    pub port1_down: bool,
    /// Percent of fabric packets dropped.
    pub loss_pct: u32,
    /// A driver that owns the function (its name and unit).
    pub owner: Option<String>,
    /// `forward=PORT`: the gateway forwards fabric TCP to its address on PORT to
    /// 127.0.0.1:PORT of kldrun's network namespace (the iSCSI target).
    pub forwards: Vec<u16>,
    /// `gateway=A.B.C.D/N`: the gateway's fabric address and the subnet's prefix length.
    pub gateway: (Ipv4Addr, u8),
    /// `cut=PORT@SECS`: the port's cable pulled SECS after the workload started.
    pub cuts: Vec<(u8, Duration)>,
    /// `lid=PORT:LID@SECS`: the subnet manager gives the port a new LID SECS after the
    /// workload started.
    pub lids: Vec<(u8, u16, Duration)>,
    /// `smrestart@SECS`: the subnet manager restarts SECS after the workload started.
    pub sm_restarts: Vec<Duration>,
}

/// The default gateway of `--hca`'s fabric.
pub const HCA_DEFAULT_GATEWAY: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 77, 0, 1), 24);

/// The default node GUID of `--hca` (Mellanox's OUI 00:02:c9).
pub const HCA_DEFAULT_GUID: u64 = 0x0002_c903_0000_1234;

fn hca_opts(spec: &str) -> Result<HcaOpts, String> {
    let bad = |why: &str| {
        format!(
            "--hca wants BUS:DEV.FN[,guid=HEX][,port1=down][,loss=PCT][,owner=NAME]\
             [,forward=PORT][,gateway=A.B.C.D/N][,cut=PORT@SECS][,lid=PORT:LID@SECS]\
             [,smrestart@SECS] ({why}), not {spec:?}"
        )
    };
    let mut parts = spec.split(',');
    let bdf = parts.next().unwrap_or("");
    let (bus, rest) = bdf.split_once(':').ok_or_else(|| bad("no BUS:"))?;
    let (dev, func) = rest.split_once('.').ok_or_else(|| bad("no .FN"))?;
    let hex = |v: &str, max: u32, what: &str| -> Result<u8, String> {
        match u32::from_str_radix(v, 16) {
            Ok(n) if n <= max && !v.is_empty() => Ok(n as u8),
            _ => Err(bad(&format!("{what} 0..{max:#x} in hex"))),
        }
    };
    let mut o = HcaOpts {
        bus: hex(bus, 0xff, "bus")?,
        device: hex(dev, 0x1f, "device")?,
        function: hex(func, 7, "function")?,
        guid: HCA_DEFAULT_GUID,
        port1_down: false,
        loss_pct: 0,
        owner: None,
        forwards: Vec::new(),
        gateway: HCA_DEFAULT_GATEWAY,
        cuts: Vec::new(),
        lids: Vec::new(),
        sm_restarts: Vec::new(),
    };
    let port_at = |v: &str| -> Option<(u8, Duration)> {
        let (port, secs) = v.split_once('@')?;
        let port = port.parse().ok().filter(|p| (1..=2).contains(p))?;
        let secs: f64 = secs
            .parse()
            .ok()
            .filter(|s: &f64| (0.0..=3600.0).contains(s))?;
        Some((port, Duration::from_secs_f64(secs)))
    };
    for p in parts {
        match p.split_once('=') {
            Some(("guid", v)) => {
                let v = v.strip_prefix("0x").unwrap_or(v);
                o.guid = u64::from_str_radix(v, 16)
                    .ok()
                    .filter(|g| *g != 0)
                    .ok_or_else(|| bad("guid: a non-zero hex number"))?;
            }
            Some(("port1", "down")) => o.port1_down = true,
            Some(("port1", "up")) => o.port1_down = false,
            Some(("loss", v)) => {
                o.loss_pct = v
                    .parse()
                    .ok()
                    .filter(|n| *n <= 100)
                    .ok_or_else(|| bad("loss: a percentage 0..100"))?;
            }
            Some(("owner", v)) if !v.is_empty() && v.len() < 32 => o.owner = Some(v.to_string()),
            Some(("forward", v)) => o.forwards.push(
                v.parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("forward: a TCP port"))?,
            ),
            Some(("gateway", v)) => {
                let parsed = v.split_once('/').and_then(|(a, n)| {
                    let a: Ipv4Addr = a.parse().ok()?;
                    let n: u8 = n.parse().ok().filter(|n| (8..=30).contains(n))?;
                    (!a.is_unspecified() && !a.is_broadcast() && !a.is_multicast())
                        .then_some((a, n))
                });
                o.gateway = parsed.ok_or_else(|| bad("gateway: A.B.C.D/N, N 8..30"))?;
            }
            _ if p.starts_with("smrestart@") => {
                let secs = p["smrestart@".len()..]
                    .parse()
                    .ok()
                    .filter(|s: &f64| (0.0..=3600.0).contains(s))
                    .ok_or_else(|| bad("smrestart@SECONDS"))?;
                o.sm_restarts.push(Duration::from_secs_f64(secs));
            }
            Some(("cut", v)) => o
                .cuts
                .push(port_at(v).ok_or_else(|| bad("cut: PORT@SECONDS, port 1 or 2"))?),
            Some(("lid", v)) => {
                let parsed = v.split_once(':').and_then(|(port, rest)| {
                    let (lid, at) = rest.split_once('@')?;
                    let lid = lid
                        .strip_prefix("0x")
                        .map_or_else(|| lid.parse().ok(), |h| u16::from_str_radix(h, 16).ok())?;
                    let (port, d) = port_at(&format!("{port}@{at}"))?;
                    // Unicast LIDs only (IBA 4.1.3: 0x0001..=0xbfff).
                    (1..=0xbfff).contains(&lid).then_some((port, lid, d))
                });
                o.lids
                    .push(parsed.ok_or_else(|| bad("lid: PORT:LID@SECONDS, a unicast LID"))?);
            }
            _ => return Err(bad(&format!("unknown part {p:?}"))),
        }
    }
    Ok(o)
}

/// What to run on the disk the module exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Write a pattern to the last N bytes and read it back.
    Verify(u64),
    /// Read (or write) for `seconds` with `qd` requesters, `bs`-byte I/Os at random or
    /// sequential offsets.
    Bench {
        /// Random (else sequential) offsets.
        random: bool,
        /// WRITE(16)s (else READ(16)s).
        write: bool,
        /// Bytes per read (a multiple of the block size).
        bs: u32,
        /// Reads in flight.
        qd: u32,
        /// How long.
        seconds: u64,
    },
}

fn bench(spec: &str) -> Result<Workload, String> {
    let bad = || {
        format!(
            "--workload bench wants rand|seq|randwrite|seqwrite:BS:QD:SECONDS, not bench:{spec}"
        )
    };
    let p: Vec<&str> = spec.split(':').collect();
    let [mode, bs, qd, secs] = p[..] else {
        return Err(bad());
    };
    let (random, write) = match mode {
        "rand" => (true, false),
        "seq" => (false, false),
        "randwrite" => (true, true),
        "seqwrite" => (false, true),
        _ => return Err(bad()),
    };
    let bs = number("--workload bench", bs)?;
    let qd = number("--workload bench", qd)?;
    let seconds = number("--workload bench", secs)?;
    if !(512..=1 << 20).contains(&bs) || !(1..=32).contains(&qd) || seconds == 0 {
        return Err(format!(
            "--workload bench: BS 512..1048576, QD 1..32 and SECONDS >= 1, not bench:{spec}"
        ));
    }
    Ok(Workload::Bench {
        random,
        write,
        bs: bs as u32,
        qd: qd as u32,
        seconds,
    })
}

/// The outcome of parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum Parsed {
    /// Run with this configuration.
    Run(Config),
    /// Print [`USAGE`].
    Help,
}

fn pair(opt: &str, v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
        Some((a, _)) if !a.is_empty() && opt == "--tunable" => Ok((a.to_string(), String::new())),
        _ => Err(format!(
            "{opt} wants {}, not {v:?}",
            match opt {
                "--tunable" => "NAME=VALUE",
                "--preload" => "TYPE=FILE",
                _ => "ADDR=FILE",
            }
        )),
    }
}

fn number(opt: &str, v: &str) -> Result<u64, String> {
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    parsed.map_err(|_| format!("{opt} wants a number, not {v:?}"))
}

/// Parses the arguments (without the program name). `Err` is the one-line usage error.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut c = Config {
        timeout: 60,
        ..Config::default()
    };
    let mut ko = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (opt, inline) = match arg.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let value = |it: &mut dyn Iterator<Item = String>| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("{opt} needs a value")),
            }
        };
        match opt.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-v" | "--verbose" => c.verbose = true,
            "--tunable" => c.tunables.push(pair("--tunable", &value(&mut it)?)?),
            "--preload" => {
                let (t, f) = pair("--preload", &value(&mut it)?)?;
                c.preloads.push((t, PathBuf::from(f)));
            }
            "--phys" => {
                let (a, f) = pair("--phys", &value(&mut it)?)?;
                c.phys.push((number("--phys", &a)?, PathBuf::from(f)));
            }
            "--sysctl" => {
                let p = value(&mut it)?;
                if p.is_empty() || p.starts_with('.') || p.ends_with('.') || p.contains("..") {
                    return Err(format!("--sysctl wants a name like hw.ibft, not {p:?}"));
                }
                c.sysctls.push(p);
            }
            "--timeout" => {
                let t = number("--timeout", &value(&mut it)?)?;
                if t == 0 {
                    return Err("--timeout wants at least 1 second".into());
                }
                c.timeout = t;
            }
            "--fail-malloc" => {
                let n = number("--fail-malloc", &value(&mut it)?)?;
                if n == 0 {
                    return Err("--fail-malloc counts from 1".into());
                }
                c.fail_malloc = Some(n);
            }
            "--fail-oid" => {
                let n = number("--fail-oid", &value(&mut it)?)?;
                if n == 0 {
                    return Err("--fail-oid counts from 1".into());
                }
                c.fail_oid = Some(n);
            }
            "--hold-oid" => c.hold_oid = Some(value(&mut it)?),
            "--mountroot" => c.mountroot = true,
            "--wait-stdin" => c.wait_stdin = true,
            "--hca" => {
                if c.hca.is_some() {
                    return Err("one --hca at a time".into());
                }
                c.hca = Some(hca_opts(&value(&mut it)?)?);
            }
            "--workload" => {
                let w = value(&mut it)?;
                match w.split_once(':') {
                    Some(("verify", n)) => {
                        let n = number("--workload verify", n)?;
                        if n == 0 {
                            return Err("--workload verify:BYTES wants at least 1 byte".into());
                        }
                        c.workload = Some(Workload::Verify(n));
                    }
                    Some(("bench", spec)) => c.workload = Some(bench(spec)?),
                    _ => {
                        return Err(format!(
                            "--workload wants verify:BYTES or bench:MODE:BS:QD:SECONDS, not \
                             {w:?}"
                        ))
                    }
                }
            }
            o if o.starts_with('-') && o.len() > 1 => {
                return Err(format!("unknown option {o} (kldrun --help lists them)"))
            }
            _ => {
                if ko.is_some() {
                    return Err(format!("one module at a time (got another: {arg})"));
                }
                ko = Some(PathBuf::from(arg));
            }
        }
    }
    c.ko = ko.ok_or_else(|| "no module given (kldrun [options] MODULE.ko)".to_string())?;
    Ok(Parsed::Run(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hca_option() {
        let Parsed::Run(c) = p(&[
            "--hca",
            "81:00.0,port1=down,loss=5,guid=0x2c9030000abcd",
            "m.ko",
        ])
        .unwrap() else {
            panic!("run");
        };
        assert_eq!(
            c.hca,
            Some(HcaOpts {
                bus: 0x81,
                device: 0,
                function: 0,
                guid: 0x2c9030000abcd,
                port1_down: true,
                loss_pct: 5,
                owner: None,
                forwards: Vec::new(),
                gateway: HCA_DEFAULT_GATEWAY,
                cuts: Vec::new(),
                lids: Vec::new(),
                sm_restarts: Vec::new(),
            })
        );
        let Parsed::Run(c) = p(&["--hca=3:1f.7,owner=mlx4_core0", "m.ko"]).unwrap() else {
            panic!("run");
        };
        let h = c.hca.unwrap();
        assert_eq!((h.bus, h.device, h.function), (3, 0x1f, 7));
        assert_eq!(h.owner.as_deref(), Some("mlx4_core0"));
        assert_eq!(h.gateway, HCA_DEFAULT_GATEWAY);
        let Parsed::Run(c) = p(&[
            "--hca",
            "81:00.0,gateway=192.0.2.1/24,smrestart@1.5,forward=3260",
            "m.ko",
        ])
        .unwrap() else {
            panic!("run");
        };
        let h = c.hca.unwrap();
        assert_eq!(h.gateway, (Ipv4Addr::new(192, 0, 2, 1), 24));
        assert_eq!(h.sm_restarts, vec![Duration::from_millis(1500)]);
        assert_eq!(h.forwards, vec![3260]);
        for bad in [
            "81:00",
            "81:20.0",
            "81:00.8",
            "x:00.0",
            "81:00.0,loss=101",
            "81:00.0,guid=0",
            "81:00.0,fast",
            "81:00.0,gateway=192.0.2.1",
            "81:00.0,gateway=192.0.2.1/31",
            "81:00.0,gateway=0.0.0.0/24",
            "81:00.0,smrestart@-1",
        ] {
            assert!(
                p(&["--hca", bad, "m.ko"]).unwrap_err().contains("--hca"),
                "{bad}"
            );
        }
    }

    fn p(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options() {
        let Parsed::Run(c) = p(&[
            "--tunable",
            "hw.ibft.verbose=1",
            "--tunable=net.isboot.debug=3",
            "--preload",
            "ibft_table=t.bin",
            "--phys",
            "0x9e620=t.bin",
            "--sysctl",
            "hw.ibft",
            "--timeout",
            "5",
            "-v",
            "isboot.ko",
        ])
        .unwrap() else {
            panic!("run expected")
        };
        assert_eq!(c.ko, PathBuf::from("isboot.ko"));
        assert_eq!(
            c.tunables,
            [
                ("hw.ibft.verbose".to_string(), "1".to_string()),
                ("net.isboot.debug".to_string(), "3".to_string())
            ]
        );
        assert_eq!(
            c.preloads,
            [("ibft_table".to_string(), PathBuf::from("t.bin"))]
        );
        assert_eq!(c.phys, [(0x9e620, PathBuf::from("t.bin"))]);
        assert_eq!(c.sysctls, ["hw.ibft"]);
        assert_eq!(c.timeout, 5);
        assert!(c.verbose);
        assert_eq!(p(&["-h"]).unwrap(), Parsed::Help);
    }

    #[test]
    fn usage_errors_are_one_line() {
        for (args, want) in [
            (&["--workload", "dd", "m.ko"][..], "verify:BYTES"),
            (&["--bogus", "m.ko"][..], "unknown option --bogus"),
            (&["--preload", "noequals", "m.ko"][..], "TYPE=FILE"),
            (&["--phys", "zz=f", "m.ko"][..], "wants a number"),
            (&["--timeout"][..], "needs a value"),
            (&[][..], "no module given"),
            (&["a.ko", "b.ko"][..], "one module at a time"),
            (&["--fail-malloc", "0", "m.ko"][..], "counts from 1"),
        ] {
            let e = p(args).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn workloads() {
        let Ok(Parsed::Run(c)) = p(&["--mountroot", "--workload", "verify:4096", "m.ko"]) else {
            panic!("parses");
        };
        assert!(c.mountroot);
        assert_eq!(c.workload, Some(Workload::Verify(4096)));
        let Ok(Parsed::Run(c)) = p(&["--workload", "bench:rand:4096:4:2", "m.ko"]) else {
            panic!("parses");
        };
        assert_eq!(
            c.workload,
            Some(Workload::Bench {
                random: true,
                write: false,
                bs: 4096,
                qd: 4,
                seconds: 2
            })
        );
        let Ok(Parsed::Run(c)) = p(&["--workload", "bench:randwrite:4096:32:1", "m.ko"]) else {
            panic!("parses");
        };
        assert!(matches!(
            c.workload,
            Some(Workload::Bench {
                random: true,
                write: true,
                qd: 32,
                ..
            })
        ));
        for bad in [
            "bench:rand:4096:0:2",
            "bench:zig:4096:1:1",
            "bench:write:4096:1:1",
            "bench:seq:100:1:1",
            "verify:0",
        ] {
            assert!(p(&["--workload", bad, "m.ko"]).is_err(), "{bad}");
        }
    }
}
