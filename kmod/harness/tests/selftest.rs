//! kldrun's own guarantees, through a small C kld (`tests/kld/selftest.c`, built with the
//! FreeBSD headers and flags isboot.ko's shim uses): printf(9)'s formats through the real C
//! calling convention (stack arguments, a `va_list` passed on, `%b`, `%D`), a stack overflow
//! caught at the guard, a panic with its backtrace, a page fault, a timeout, everything a
//! module can leave behind named, a red-zone overrun, a refused `MOD_LOAD`, and a handler of
//! the module's own calling `SYSCTL_OUT` and `mtx_owned()` reading `curthread`, and
//! `msleep_sbt` (`_sleep`) with `wakeup` between two threads.

mod common;

use common::{kldrun, selftest_ko, Run};

fn selftest(mode: &str, extra: &[&str]) -> Run {
    let mode = format!("kldrun.selftest={mode}");
    let ko = selftest_ko().display().to_string();
    let mut args = vec!["--tunable", &mode];
    args.extend_from_slice(extra);
    args.push(&ko);
    kldrun(&args)
}

#[test]
fn printf_formats_as_freebsd_prints_them() {
    let run = selftest("printf", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let got: Vec<&str> = run
        .lines()
        .into_iter()
        .filter_map(|l| l.strip_prefix("fmt: "))
        .collect();
    assert_eq!(
        got,
        [
            "-42 7 4000000000 beef BEEF 10 k str %",
            "[   42] [42   ] [00042] [007] [0xff] [010] [+3]",
            "-1 -2 -3 -4 -5 -6 7 -8",
            "fffffffff 123456789abc 0x1234",
            "[     right] [left      ] [cu] [     1] [2     ]",
            "3<BITTWO,BITONE>",
            "52:54:00:12:34:56",
            "stack 1 2 3 4 5 6 7 8 9 10",
            "va_list via vprintf 11 abc 12 13 14 15",
            "log line",
            "snprintf [snprintf-trunca] 24",
            "(null)",
        ],
        "{}",
        run.all()
    );
    assert!(run.clean(), "{}", run.all());
}

#[test]
fn a_stack_overflow_is_caught_at_the_guard() {
    let run = selftest("overflow", &[]);
    assert_eq!(run.code, 5, "{}", run.all());
    assert!(
        run.stderr
            .contains("kldrun: kernel stack overflow in thread modevent: 16 KiB stack exhausted")
            && run.stderr.contains("(recurse+0x"),
        "{}",
        run.all()
    );
}

#[test]
fn a_panic_prints_the_message_and_a_backtrace() {
    let run = selftest("panic", &[]);
    assert_eq!(run.code, 5, "{}", run.all());
    assert!(
        run.stdout
            .contains("panic: selftest: deliberate panic 42\ncpuid = 0\n"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains("KDB: stack backtrace:\n#0 0x")
            && run.stdout.contains(" at selftest_modevent+0x"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains(
            "kldrun: the kernel panicked in thread modevent (MOD_LOAD): selftest: deliberate \
             panic 42"
        ),
        "{}",
        run.all()
    );
}

#[test]
fn a_page_fault_names_the_address_and_the_function() {
    let run = selftest("fault", &[]);
    assert_eq!(run.code, 5, "{}", run.all());
    assert!(
        run.stderr
            .contains("kldrun: page fault in thread modevent at address 0x10, instruction 0x")
            && run.stderr.contains("(selftest_modevent+0x"),
        "{}",
        run.all()
    );
}

#[test]
fn a_module_that_never_returns_times_out() {
    let run = selftest("spin", &["--timeout", "1"]);
    assert_eq!(run.code, 5, "{}", run.all());
    assert!(
        run.stderr.contains(
            "kldrun: timeout: the run did not finish within 1 s (the kernel was in MOD_LOAD)"
        ),
        "{}",
        run.all()
    );
}

#[test]
fn everything_left_behind_is_named() {
    let run = selftest("leak", &[]);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.stdout.contains(
            "Warning: memory type selftest leaked memory on destroy (1 allocations, 40 bytes \
             leaked)."
        ),
        "{}",
        run.all()
    );
    for want in [
        "kldrun: leak: malloc(9): 1 allocations (40 bytes) of type selftest not freed (first: \
         40 bytes at 0x",
        "kldrun: leak: pmap: mapping of physical 0x9f000 (0x100 bytes) at 0x",
        "kldrun: leak: kenv: string \"leak\" from kern_getenv() at 0x",
        "kldrun: leak: mutex(9): selftest lock at 0x",
    ] {
        assert!(run.stderr.contains(want), "{want}\n{}", run.all());
    }
    // Each names the module function that made it.
    assert_eq!(
        run.stderr.matches("from selftest_modevent+0x").count() + 1,
        run.stderr.matches("kldrun: leak: ").count(),
        "{}",
        run.all()
    );
}

#[test]
fn writing_past_a_block_is_caught_at_free() {
    let run = selftest("overrun", &[]);
    assert_eq!(run.code, 5, "{}", run.all());
    assert!(
        run.stdout
            .contains("panic: free: the module wrote past the end of 0x")
            && run
                .stdout
                .contains("(24 bytes of type selftest): byte 0 after it changed"),
        "{}",
        run.all()
    );
}

#[test]
fn a_refused_load_gets_mod_unload_and_the_file_is_unloaded() {
    let run = selftest("loadfail", &["--sysctl", "debug.selftest"]);
    assert_eq!(run.code, 1, "{}", run.all());
    let lines = run.lines();
    // The kernel sends MOD_UNLOAD after a refused MOD_LOAD, then says so.
    assert_eq!(
        lines[..2],
        ["selftest: mode loadfail", "selftest: MOD_UNLOAD"]
    );
    assert!(
        lines[2].starts_with("module_register_init: MOD_LOAD (kldrun_selftest, 0x")
            && lines[2].ends_with(", 0) error 6"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr
            .contains("MOD_LOAD failed; the kernel linker unloads the file")
            && run.stderr.contains("sysctl: unknown oid 'debug.selftest'"),
        "{}",
        run.all()
    );
    assert!(run.clean(), "{}", run.all());
}

#[test]
fn the_modules_own_handler_and_curthread() {
    let run = selftest("sysctl", &["--sysctl", "debug.selftest"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        run.lines(),
        [
            "selftest: mode sysctl",
            "selftest: lock owned 1",
            "debug.selftest.dyn.dotted%25name: escaped",
            "debug.selftest.dyn.own: from the module's own handler",
            "debug.selftest.dyn.answer: 42",
            "debug.selftest.static_int: 7",
            "selftest: MOD_SHUTDOWN",
            "selftest: MOD_QUIESCE",
            "selftest: MOD_UNLOAD",
        ],
        "{}",
        run.all()
    );
    assert!(run.clean(), "{}", run.all());
    assert!(run.high_water("sysctl").unwrap() > 64, "{}", run.all());
}

#[test]
fn msleep_times_out_and_wakeup_from_another_thread_ends_it() {
    let run = selftest("sleep", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        run.lines(),
        [
            "selftest: mode sleep",
            // EWOULDBLOCK after the whole timeout, the mutex held again
            "selftest: timeout 35 owned 1 slept >= 100 ms",
            // the waker took the mutex (released by the sleep) and woke it: 0, long before
            // the 10 s timeout
            "selftest: woken 0 flag 1 owned 1 within 5 s 1",
            // PDROP: not re-taken
            "selftest: pdrop 35 owned 0",
            "selftest: MOD_SHUTDOWN",
            "selftest: MOD_QUIESCE",
            "selftest: MOD_UNLOAD",
        ],
        "{}",
        run.all()
    );
    assert!(run.clean(), "{}", run.all());
}
