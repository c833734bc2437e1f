//! Fixtures captured from real peers, kept in the repository under `tests/fixtures/`
//! (see `tests/fixtures/ibft/README.md` for how each was captured).
//!
//! A missing or unreadable fixture fails the test with the path it looked for: a test must
//! never pass vacuously because its input was not there.

use std::path::PathBuf;

/// `tests/fixtures/ibft` in this checkout.
pub fn ibft_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ibft"))
}

/// The path of the iBFT fixture `NAME.bin`.
pub fn ibft_path(name: &str) -> PathBuf {
    ibft_dir().join(format!("{name}.bin"))
}

/// The bytes of the iBFT fixture `NAME.bin` (written by real iPXE); panics naming the path
/// when it cannot be read.
pub fn ibft(name: &str) -> Vec<u8> {
    read(ibft_path(name))
}

/// Linux's parse of the fixture (`NAME.linux.txt`: every `/sys/firmware/ibft` file as
/// `relative/path=value`); panics naming the path when it cannot be read.
pub fn ibft_linux(name: &str) -> String {
    let p = ibft_dir().join(format!("{name}.linux.txt"));
    String::from_utf8(read(p.clone()))
        .unwrap_or_else(|e| panic!("fixture {}: not UTF-8: {e}", p.display()))
}

/// The names of every `NAME.bin` iBFT fixture, sorted; panics naming the directory when it
/// cannot be read or holds fewer than `at_least`.
pub fn ibft_names(at_least: usize) -> Vec<String> {
    let dir = ibft_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fixture directory {}: {e}", dir.display()));
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert!(
        names.len() >= at_least,
        "expected at least {at_least} iBFT fixtures in {}, found {}",
        dir.display(),
        names.len()
    );
    names
}

fn read(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}
