//! `kldrun [options] MODULE.ko` — see `kldrun --help` and the crate documentation.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn main() {
    use kldrun::cli::{parse, Parsed, USAGE};
    let code = match parse(std::env::args().skip(1)) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            kldrun::EXIT_OK
        }
        Ok(Parsed::Run(cfg)) => kldrun::kernel::run(&cfg),
        Err(e) => {
            eprintln!("kldrun: {e}");
            kldrun::EXIT_USAGE
        }
    };
    std::process::exit(code);
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn main() {
    eprintln!("kldrun runs FreeBSD amd64 kernel modules on Linux x86-64 only");
    std::process::exit(kldrun::EXIT_USAGE);
}
