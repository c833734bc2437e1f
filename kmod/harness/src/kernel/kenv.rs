//! The kernel environment (kenv): loader tunables and hints, set with `--tunable NAME=VALUE`
//! as `loader.conf` (or `kenv(1)` before a kldload) would set them. The functions follow
//! `sys/kern/kern_environment.c` (FreeBSD 14, dynamic environment: the module loads after
//! SI_SUB_KMEM).

use super::{kpanic, mem, Ctx};
use std::alloc::Layout;
use std::collections::HashMap;
use std::sync::Mutex;

/// `KENV_MNAMELEN` (sys/kenv.h): the longest name.
pub const KENV_MNAMELEN: usize = 128;
/// `KENV_MVALLEN`: the longest value (the kernel's default `kenv_mvallen`).
pub const KENV_MVALLEN: usize = 128;
/// What `kern_getenv()` allocates for a copy.
const COPY_SIZE: usize = KENV_MNAMELEN + 1 + KENV_MVALLEN + 1;

#[derive(Debug, Default)]
struct State {
    vars: Vec<(String, String)>,
    copies: HashMap<u64, Layout>,
    handed_out: u64,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(State::default))
}

/// Sets `name` to `value` (replacing an earlier value), with `kenv(2)`'s limits; an error
/// names what is wrong.
pub fn set(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('=') {
        return Err(format!("bad kenv name {name:?}"));
    }
    if name.len() > KENV_MNAMELEN || value.len() > KENV_MVALLEN {
        return Err(format!(
            "{name}: names and values are at most {KENV_MNAMELEN} bytes (kenv(2))"
        ));
    }
    if name.contains('\0') || value.contains('\0') {
        return Err(format!("{name}: NUL byte"));
    }
    with(|s| {
        s.vars.retain(|(n, _)| n != name);
        s.vars.push((name.to_string(), value.to_string()));
    });
    Ok(())
}

/// The value of `name`, if set.
pub fn get(name: &str) -> Option<String> {
    with(|s| {
        s.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    })
}

fn name_arg(c: &mut Ctx) -> String {
    let p = c.args.ptr();
    // SAFETY: every kenv KPI takes a NUL-terminated name first.
    unsafe { mem::string(p) }
}

/// `char *kern_getenv(const char *name);` — a copy of the value that the caller must release
/// with `freeenv()`, or NULL. Kept: the copy is a fresh buffer of `KENV_MNAMELEN + 1 +
/// kenv_mvallen + 1` bytes (what the kernel's kenv zone hands out), so writing to it is
/// harmless and forgetting `freeenv()` is a leak the end-of-run check reports.
pub fn kern_getenv(c: &mut Ctx) -> u64 {
    let name = name_arg(c);
    let Some(v) = get(&name) else {
        return 0;
    };
    let layout = Layout::from_size_align(COPY_SIZE, 16).expect("layout");
    // SAFETY: non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: the value (at most KENV_MVALLEN bytes, checked by `set`) and its NUL fit.
    unsafe { mem::write_bytes(p as u64, v.as_bytes()) };
    with(|s| {
        s.copies.insert(p as u64, layout);
        s.handed_out += 1;
    });
    p as u64
}

/// `void freeenv(char *env);` — releases a `kern_getenv()` copy (zeroed first, as the kernel
/// does with `explicit_bzero`); NULL is a no-op. Anything else is a panic here (the kernel
/// would hand a foreign pointer to its zone allocator and corrupt it).
pub fn freeenv(c: &mut Ctx) -> u64 {
    let p = c.args.ptr();
    if p == 0 {
        return 0;
    }
    let layout = with(|s| s.copies.remove(&p));
    match layout {
        // SAFETY: the block is a live kern_getenv copy of `layout.size()` bytes. It is kept
        // (zeroed) rather than returned to the allocator, so a use after free cannot hit host
        // memory.
        Some(layout) => unsafe { std::ptr::write_bytes(p as *mut u8, 0, layout.size()) },
        None => kpanic(
            c,
            &format!("freeenv: {p:#x} is not a string from kern_getenv"),
        ),
    }
    0
}

/// `int testenv(const char *name);` — 1 if the variable is set, else 0.
pub fn testenv(c: &mut Ctx) -> u64 {
    u64::from(get(&name_arg(c)).is_some())
}

/// `strtoq`/`strtouq` with base 0 (`sys/libkern/strtoq.c`): leading white space, an optional
/// sign, `0x`/`0X` for hex, a leading `0` for octal; clamps on overflow. Returns the value (the
/// bits of an `i64`, or of a `u64` for `unsigned`) and how many bytes were used (0 if no
/// digits).
pub fn strtoq(s: &[u8], unsigned: bool) -> (u64, usize) {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut base = 10u32;
    if s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && s.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit())
    {
        base = 16;
        i += 2;
    } else if s.get(i) == Some(&b'0') {
        base = 8;
    }
    let mut acc: u128 = 0;
    let mut any = false;
    let mut over = false;
    while let Some(d) = s.get(i).and_then(|&c| (c as char).to_digit(base)) {
        any = true;
        acc = acc * u128::from(base) + u128::from(d);
        if acc > u128::from(u64::MAX) {
            over = true;
            acc = u128::from(u64::MAX);
        }
        i += 1;
    }
    if !any {
        return (0, 0);
    }
    let v = if unsigned {
        // strtouq: an overflow gives UQUAD_MAX whatever the sign; otherwise a '-' negates.
        if over {
            u64::MAX
        } else if neg {
            (acc as u64).wrapping_neg()
        } else {
            acc as u64
        }
    } else {
        let limit = if neg {
            i64::MAX as u128 + 1
        } else {
            i64::MAX as u128
        };
        if over || acc > limit {
            if neg {
                i64::MIN as u64
            } else {
                i64::MAX as u64
            }
        } else if neg {
            (acc as i128).wrapping_neg() as i64 as u64
        } else {
            acc as u64
        }
    };
    (v, i)
}

/// `getenv_quad()`'s parse of a value: the number, then at most one of `k m g t` (either
/// case, powers of 1024); anything else after the number makes the variable invalid.
pub fn parse_quad(v: &str, unsigned: bool) -> Option<u64> {
    let b = v.as_bytes();
    let (n, used) = strtoq(b, unsigned);
    if used == 0 || b.len() > used + 1 {
        return None;
    }
    let shift = match b.get(used) {
        None => 0,
        Some(b't' | b'T') => 40,
        Some(b'g' | b'G') => 30,
        Some(b'm' | b'M') => 20,
        Some(b'k' | b'K') => 10,
        Some(_) => return None,
    };
    // The kernel multiplies by 1024 in a quad_t and is built -fwrapv: it wraps.
    Some(n.wrapping_mul(1u64 << shift))
}

/// Stores the parsed value through the out pointer with `store`, returning 1, or returns 0.
fn fetch(c: &mut Ctx, unsigned: bool, store: impl FnOnce(u64, u64)) -> u64 {
    let name = name_arg(c);
    let out = c.args.ptr();
    match get(&name).and_then(|v| parse_quad(&v, unsigned)) {
        Some(v) => {
            store(out, v);
            1
        }
        None => 0,
    }
}

/// `int getenv_int(const char *name, int *data);` — `getenv_quad()` truncated to `int` (the
/// kernel does no range check); 1 if set and valid.
pub fn getenv_int(c: &mut Ctx) -> u64 {
    // SAFETY: getenv_int's contract: `data` points to an int.
    fetch(c, false, |p, v| unsafe { mem::write(p, v as i32) })
}

/// `int getenv_uint(const char *name, unsigned int *data);` — as [`getenv_int`] for
/// `unsigned int`.
pub fn getenv_uint(c: &mut Ctx) -> u64 {
    // SAFETY: getenv_uint's contract: `data` points to an unsigned int.
    fetch(c, false, |p, v| unsafe { mem::write(p, v as u32) })
}

/// `int getenv_long(const char *name, long *data);`
pub fn getenv_long(c: &mut Ctx) -> u64 {
    // SAFETY: getenv_long's contract: `data` points to a long.
    fetch(c, false, |p, v| unsafe { mem::write(p, v) })
}

/// `int getenv_ulong(const char *name, unsigned long *data);`
pub fn getenv_ulong(c: &mut Ctx) -> u64 {
    // SAFETY: getenv_ulong's contract: `data` points to an unsigned long.
    fetch(c, true, |p, v| unsafe { mem::write(p, v) })
}

/// `int getenv_quad(const char *name, quad_t *data);` — `strtoq(value, &end, 0)` then an
/// optional `k m g t` suffix (see [`parse_quad`]); 1 if set and valid, else 0 and `*data`
/// untouched.
pub fn getenv_quad(c: &mut Ctx) -> u64 {
    // SAFETY: getenv_quad's contract: `data` points to a quad_t.
    fetch(c, false, |p, v| unsafe { mem::write(p, v) })
}

/// `int getenv_uquad(const char *name, u_quad_t *data);` — as [`getenv_quad`] with
/// `strtouq`.
pub fn getenv_uquad(c: &mut Ctx) -> u64 {
    // SAFETY: getenv_uquad's contract: `data` points to a u_quad_t.
    fetch(c, true, |p, v| unsafe { mem::write(p, v) })
}

/// `int getenv_int64(const char *name, int64_t *data);`
pub fn getenv_int64(c: &mut Ctx) -> u64 {
    getenv_quad(c)
}

/// `int getenv_uint64(const char *name, uint64_t *data);`
pub fn getenv_uint64(c: &mut Ctx) -> u64 {
    getenv_uquad(c)
}

/// `int getenv_string(const char *name, char *data, int size);` — `strlcpy()`s the value
/// into `data`; 1 if set.
pub fn getenv_string(c: &mut Ctx) -> u64 {
    let name = name_arg(c);
    let data = c.args.ptr();
    let size = c.args.int();
    let Some(v) = get(&name) else {
        return 0;
    };
    if size > 0 {
        let keep = v.len().min(size as usize - 1);
        // SAFETY: getenv_string's contract: `data` holds `size` bytes; keep + 1 <= size.
        unsafe {
            mem::write_bytes(data, &v.as_bytes()[..keep]);
            mem::write(data + keep as u64, 0u8);
        }
    }
    1
}

/// `bool getenv_bool(const char *name, bool *data);` — `1`/`true` and `0`/`false` (any
/// case); any other value prints the kernel's complaint and counts as unset.
pub fn getenv_bool(c: &mut Ctx) -> u64 {
    let name = name_arg(c);
    let out = c.args.ptr();
    let Some(v) = get(&name) else {
        return 0;
    };
    let b = if v == "1" || v.eq_ignore_ascii_case("true") {
        true
    } else if v == "0" || v.eq_ignore_ascii_case("false") {
        false
    } else {
        super::console::write(
            format!("Environment variable {name} has non-boolean value \"{v}\"\n").as_bytes(),
        );
        return 0;
    };
    // SAFETY: getenv_bool's contract: `data` points to a bool.
    unsafe { mem::write(out, b) };
    1
}

/// Copies handed out by `kern_getenv` and not released: a line each.
pub fn leaks() -> Vec<String> {
    with(|s| {
        s.copies
            .keys()
            .map(|p| {
                // SAFETY: a live copy kldrun allocated, NUL-terminated.
                let v = unsafe { mem::string(*p) };
                format!(
                    "kenv: string {v:?} from kern_getenv() at {p:#x} not released with freeenv()"
                )
            })
            .collect()
    })
}

/// How many copies `kern_getenv` handed out.
pub fn copies_made() -> u64 {
    with(|s| s.handed_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoq_like_libkern() {
        assert_eq!(strtoq(b"42", false), (42, 2));
        assert_eq!(strtoq(b"  -42x", false), (-42i64 as u64, 5));
        assert_eq!(strtoq(b"0x1F", false), (31, 4));
        assert_eq!(strtoq(b"010", false), (8, 3));
        assert_eq!(strtoq(b"0x", false), (0, 1));
        assert_eq!(strtoq(b"x", false), (0, 0));
        assert_eq!(
            strtoq(b"99999999999999999999", false),
            (i64::MAX as u64, 20)
        );
        assert_eq!(strtoq(b"-99999999999999999999", false).0, i64::MIN as u64);
        assert_eq!(strtoq(b"18446744073709551615", true).0, u64::MAX);
    }

    #[test]
    fn quad_suffixes_and_garbage() {
        assert_eq!(parse_quad("1", false), Some(1));
        assert_eq!(parse_quad("4k", false), Some(4096));
        assert_eq!(parse_quad("2M", false), Some(2 << 20));
        assert_eq!(parse_quad("1g", false), Some(1 << 30));
        assert_eq!(parse_quad("1T", false), Some(1 << 40));
        assert_eq!(parse_quad("0xffff", false), Some(0xffff));
        assert_eq!(parse_quad("12kb", false), None);
        assert_eq!(parse_quad("yes", false), None);
        assert_eq!(parse_quad("", false), None);
        assert_eq!(parse_quad("7x", false), None);
    }

    #[test]
    fn limits() {
        assert!(set("a=b", "c").is_err());
        assert!(set(&"n".repeat(129), "v").is_err());
        assert!(set("kldrun.test.limit", &"v".repeat(128)).is_ok());
        assert_eq!(get("kldrun.test.limit").unwrap().len(), 128);
    }
}
