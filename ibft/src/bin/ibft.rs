//! `ibft`: validate and show an iSCSI Boot Firmware Table.
//!
//! ```text
//! ibft dump FILE [--show-secrets] [--json]   the table as Linux's /sys/firmware/ibft shows it
//! ibft check FILE                            validate; explain what is wrong
//! ibft scan FILE [--base ADDR]               find a table in a memory image (ACPI, then
//!                                            0x80000-0xFFFFF), then check it
//! ```
//!
//! FILE is a raw table (Linux's `/sys/firmware/acpi/tables/iBFT`, FreeBSD's `acpidump -t`
//! output converted to binary, or what a ROM wrote) or, for `scan`, a dump of physical memory
//! starting at ADDR (default 0). Exit status: 0 valid, 1 invalid or not found, 2 usage or I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use ibft::linux::{self, Secrets, Value};
use ibft::locate::{self, SliceMemory, Source};
use ibft::{Ibft, Parsed};

const USAGE: &str = "usage: ibft dump FILE [--show-secrets] [--json]
       ibft check FILE
       ibft scan FILE [--base ADDR]";

enum Fail {
    Usage(String),
    Io(String),
    Invalid(String),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Usage(m)) => {
            eprintln!("ibft: {m}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Fail::Io(m)) => {
            eprintln!("ibft: {m}");
            ExitCode::from(2)
        }
        Err(Fail::Invalid(m)) => {
            eprintln!("ibft: {m}");
            ExitCode::from(1)
        }
    }
}

struct Opts {
    file: String,
    show_secrets: bool,
    json: bool,
    base: u64,
}

fn parse_opts(cmd: &str, args: &[String]) -> Result<Opts, Fail> {
    let mut o = Opts {
        file: String::new(),
        show_secrets: false,
        json: false,
        base: 0,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--show-secrets" if cmd == "dump" => o.show_secrets = true,
            "--json" if cmd == "dump" => o.json = true,
            "--base" if cmd == "scan" => {
                let v = it
                    .next()
                    .ok_or_else(|| Fail::Usage("--base needs an address".into()))?;
                o.base = parse_addr(v)
                    .ok_or_else(|| Fail::Usage(format!("--base: {v:?} is not an address")))?;
            }
            s if s.starts_with('-') && s != "-" => {
                return Err(Fail::Usage(format!("{cmd}: unknown option {s}")))
            }
            s if o.file.is_empty() => o.file = s.to_string(),
            s => return Err(Fail::Usage(format!("{cmd}: unexpected argument {s:?}"))),
        }
    }
    if o.file.is_empty() {
        return Err(Fail::Usage(format!("{cmd}: FILE is missing")));
    }
    Ok(o)
}

fn parse_addr(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn run(args: &[String]) -> Result<(), Fail> {
    let Some(cmd) = args.first() else {
        return Err(Fail::Usage("a command is needed".into()));
    };
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        "-V" | "--version" => {
            println!("ibft {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        "dump" | "check" | "scan" => {
            let o = parse_opts(cmd, &args[1..])?;
            let bytes = read(&o.file)?;
            match cmd.as_str() {
                "dump" => dump(&o, &bytes),
                "check" => check(&o.file, &bytes),
                _ => scan(&o, &bytes),
            }
        }
        other => Err(Fail::Usage(format!("unknown command {other:?}"))),
    }
}

fn read(file: &str) -> Result<Vec<u8>, Fail> {
    let r = if file == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).map(|_| v)
    } else {
        std::fs::read(file)
    };
    r.map_err(|e| Fail::Io(format!("{file}: {e}")))
}

fn parse(file: &str, bytes: &[u8]) -> Result<Parsed, Fail> {
    ibft::parse(bytes).map_err(|e| Fail::Invalid(format!("{file}: {e}")))
}

fn out(text: &str) -> Result<(), Fail> {
    let mut o = std::io::stdout().lock();
    // A closed pipe (`ibft dump | head`) is not an error worth a message.
    match o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Fail::Io(e.to_string())),
        _ => Ok(()),
    }
}

fn dump(o: &Opts, bytes: &[u8]) -> Result<(), Fail> {
    let parsed = parse(&o.file, bytes)?;
    for w in &parsed.warnings {
        eprintln!("ibft: {}: warning: {w}", o.file);
    }
    let secrets = if o.show_secrets {
        Secrets::Show
    } else {
        Secrets::Hide
    };
    let attrs = linux::attributes(&parsed.table, secrets);
    let mut s = String::new();
    if o.json {
        s = json(&parsed, &attrs);
    } else {
        for a in &attrs {
            let _ = writeln!(s, "{a}");
        }
    }
    out(&s)
}

fn check(file: &str, bytes: &[u8]) -> Result<(), Fail> {
    let parsed = parse(file, bytes)?;
    let mut s = String::new();
    summary(&mut s, file, bytes.len(), &parsed);
    out(&s)
}

fn summary(s: &mut String, what: &str, len: usize, parsed: &Parsed) {
    let t = &parsed.table;
    let _ = writeln!(
        s,
        "{what}: valid iBFT ({} signature, {} bytes, {} NIC{}, {} target{})",
        t.header.signature,
        len,
        t.nics.len(),
        if t.nics.len() == 1 { "" } else { "s" },
        t.targets.len(),
        if t.targets.len() == 1 { "" } else { "s" },
    );
    describe(s, t);
    for w in &parsed.warnings {
        let _ = writeln!(s, "  warning: {w}");
    }
}

fn describe(s: &mut String, t: &Ibft) {
    let name = t.initiator.name.as_deref().unwrap_or("(none)");
    let _ = writeln!(s, "  initiator {name}");
    for n in &t.nics {
        let addr = n
            .ip_address
            .map(|a| format!("{}/{}", a, n.prefix_length))
            .unwrap_or_else(|| "no address".into());
        let _ = writeln!(
            s,
            "  NIC {}: {} via {}, MAC {}, PCI {}, origin {}{}",
            n.index,
            addr,
            n.gateway
                .map(|g| g.to_string())
                .unwrap_or_else(|| "no gateway".into()),
            n.mac,
            n.pci,
            n.origin.name(),
            state(n.is_valid(), n.is_boot_selected()),
        );
    }
    for tg in &t.targets {
        let _ = writeln!(
            s,
            "  target {}: {} at {} LUN {}, {} via NIC {}{}",
            tg.index,
            tg.name.as_deref().unwrap_or("(no name)"),
            tg.socket_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "no address".into()),
            tg.lun,
            match tg.chap_type {
                ibft::ChapType::None => "no authentication",
                ibft::ChapType::Chap => "CHAP",
                ibft::ChapType::Mutual => "mutual CHAP",
            },
            tg.nic_association,
            state(tg.is_valid(), tg.is_boot_selected()),
        );
    }
    if let Some(b) = t.boot_target() {
        let _ = writeln!(s, "  boots from target {}", b.index);
    } else {
        let _ = writeln!(s, "  no valid target to boot from");
    }
}

fn state(valid: bool, boot: bool) -> &'static str {
    match (valid, boot) {
        (true, true) => " [valid, boot selected]",
        (true, false) => " [valid]",
        (false, true) => " [NOT valid, boot selected]",
        (false, false) => " [NOT valid]",
    }
}

fn scan(o: &Opts, bytes: &[u8]) -> Result<(), Fail> {
    let mem = SliceMemory {
        base: o.base,
        bytes,
    };
    let located =
        locate::find(&mem, None, 1).map_err(|e| Fail::Invalid(format!("{}: {e}", o.file)))?;
    let where_ = match located.source {
        Source::LowMemory => "low memory".to_string(),
        Source::Acpi { instance } => format!("ACPI (instance {instance})"),
    };
    let mut s = String::new();
    summary(
        &mut s,
        &format!("{}: {:#x} in {}", o.file, located.address, where_),
        located.bytes.len(),
        &located.parsed,
    );
    out(&s)
}

fn json_str(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// The same attributes as the text dump, grouped by directory; numbers as numbers, hidden
/// secrets as null, and for each target `lun-bytes`, the LUN's 8 bytes in hex (the text form,
/// Linux's, is ambiguous).
fn json(parsed: &Parsed, attrs: &[linux::Attribute]) -> String {
    let mut dirs: BTreeMap<&str, Vec<(&str, String)>> = BTreeMap::new();
    for a in attrs {
        let mut v = String::new();
        match &a.value {
            Value::Number(n) => {
                let _ = write!(v, "{n}");
            }
            Value::Text(t) => json_str(&mut v, t),
            Value::Hidden => v.push_str("null"),
        }
        dirs.entry(&a.dir).or_default().push((a.name, v));
    }
    let lun_dirs: Vec<(String, String)> = parsed
        .table
        .targets
        .iter()
        .map(|t| {
            let mut h = String::from("\"");
            for b in t.lun.0 {
                let _ = write!(h, "{b:02x}");
            }
            h.push('"');
            (format!("target{}", t.index), h)
        })
        .collect();
    for (d, h) in &lun_dirs {
        if let Some(v) = dirs.get_mut(d.as_str()) {
            v.push(("lun-bytes", h.clone()));
            v.sort_by(|a, b| a.0.cmp(b.0));
        }
    }
    let mut s = String::from("{");
    for (i, (dir, kvs)) in dirs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("\n  ");
        json_str(&mut s, dir);
        s.push_str(": {");
        for (j, (k, v)) in kvs.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            s.push_str("\n    ");
            json_str(&mut s, k);
            s.push_str(": ");
            s.push_str(v);
        }
        s.push_str("\n  }");
    }
    s.push_str(",\n  \"warnings\": [");
    for (i, w) in parsed.warnings.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("\n    ");
        json_str(&mut s, &w.to_string());
    }
    if !parsed.warnings.is_empty() {
        s.push_str("\n  ");
    }
    s.push_str("]\n}\n");
    s
}
