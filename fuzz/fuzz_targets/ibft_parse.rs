//! Any bytes: parse never panics; whatever parses renders, survives a trip through the builder
//! unchanged, and its rebuilt bytes warn about nothing but the reserved flag bits the table
//! carried (kept as they are, so they warn again).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = ibft::parse(data) else {
        return;
    };
    let _ = ibft::linux::attributes(&parsed.table, ibft::linux::Secrets::Show);
    for w in &parsed.warnings {
        let _ = w.to_string();
    }
    let bytes = ibft::build(&parsed.table).expect("a parsed table builds");
    let again = ibft::parse(&bytes).expect("a built table parses");
    assert_eq!(again.table, parsed.table);
    assert!(again
        .warnings
        .iter()
        .all(|w| matches!(w.kind, ibft::WarningKind::ReservedFlags(_))));
});
