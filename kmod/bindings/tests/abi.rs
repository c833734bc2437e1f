//! The numbers `kmod/shim/isboot_abi.h` asserts against the FreeBSD headers are the numbers the
//! Rust bindings use.

use kernel_bindings::abi::{AbiItem, ABI, BOOT_ABI, HCA_ABI, KERNEL_LAYOUTS};

/// `isboot_abi.h` (the module), `isboot_boot_abi.h` (the boot thread) and `isboot_pci_abi.h`
/// (the HCA), one after the other.
fn header() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shim/");
    ["isboot_abi.h", "isboot_boot_abi.h", "isboot_pci_abi.h"]
        .iter()
        .map(|f| std::fs::read_to_string(format!("{dir}{f}")).expect("read the ABI header"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_items() -> Vec<AbiItem> {
    ABI.iter()
        .chain(BOOT_ABI)
        .chain(HCA_ABI)
        .chain(KERNEL_LAYOUTS)
        .copied()
        .collect()
}

fn parse_int(s: &str) -> i64 {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let v = match s.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).unwrap(),
        None => s.parse().unwrap(),
    };
    if neg {
        -v
    } else {
        v
    }
}

fn parse(header: &str) -> Vec<AbiItem> {
    let leak = |s: &str| -> &'static str { Box::leak(s.trim().to_string().into_boxed_str()) };
    let mut items = Vec::new();
    for line in header.lines() {
        let line = line.trim();
        let Some((macro_, rest)) = line.split_once('(') else {
            continue;
        };
        let Some(args) = rest.strip_suffix(')') else {
            continue;
        };
        let a: Vec<&str> = args.split(',').collect();
        let item = match macro_ {
            "ISBOOT_ABI_SIZE" => AbiItem::Size(leak(a[0]), parse_int(a[1]) as usize),
            "ISBOOT_ABI_ALIGN" => AbiItem::Align(leak(a[0]), parse_int(a[1]) as usize),
            "ISBOOT_ABI_OFFSET" => {
                AbiItem::Offset(leak(a[0]), leak(a[1]), parse_int(a[2]) as usize)
            }
            "ISBOOT_ABI_CONST" => AbiItem::Const(leak(a[0]), parse_int(a[1])),
            _ => continue,
        };
        items.push(item);
    }
    items
}

#[test]
fn abi_header_matches_rust() {
    let c = parse(&header());
    assert!(c.len() >= 170, "parsed only {} items", c.len());
    let rust = rust_items();
    for item in &c {
        assert!(
            rust.contains(item),
            "the C header has {item:?}, Rust has something else"
        );
    }
    for item in &rust {
        assert!(
            c.contains(item),
            "Rust asserts {item:?}, isboot_abi.h does not"
        );
    }
}
