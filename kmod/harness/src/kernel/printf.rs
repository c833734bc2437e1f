//! FreeBSD's kernel `printf` formatting (`kvprintf()` in `sys/kern/subr_prf.c`), written here
//! from its documented behaviour:
//!
//! - conversions `%d %i %u %o %x %X %c %s %p %%`, FreeBSD's `%b` (bit fields: an int, then a
//!   string whose first byte is the output base and whose groups `<bit number 1..><name>` name
//!   the set bits: `reg=3<BITTWO,BITONE>`), `%D` (hex dump: a pointer and a separator string,
//!   the width giving the byte count, 16 by default: `%6D` → `52:54:00:12:34:56`), `%y` (signed
//!   hex), `%r` (the caller's radix; 10 for printf) and `%n` (unsupported: its argument is
//!   consumed, nothing written);
//! - length modifiers `hh h l ll q j z t`; flags `# - + 0`, width and precision, both also as
//!   `*` (a negative `*` width left-adjusts);
//! - the kernel's quirks, kept on purpose: `%p` prints `0x` only when no width is given; `%#x`
//!   of 0 prints `0`; there is no space flag; `%+u` prints a `+`; a precision on `%s` limits
//!   the bytes read (the string need not be terminated); `%c` and `%s` pad with `0` under the
//!   `0` flag; an unknown conversion is printed as written and everything after it is printed
//!   literally (the arguments can no longer be trusted to match); a NULL `%s` prints `(null)`
//!   and a NULL format `(fmt null)\n`.
//!
//! The result is the bytes written; the kernel's return value is their number.

use super::args::ArgSource;

fn hex2ascii(d: u64) -> u8 {
    b"0123456789abcdefghijklmnopqrstuvwxyz"[d as usize]
}

/// The digits of `num` in `base` (2..=36), most significant first.
fn digits(mut num: u64, base: u64, upper: bool) -> Vec<u8> {
    let base = if (2..=36).contains(&base) { base } else { 10 };
    let mut d = Vec::new();
    loop {
        let c = hex2ascii(num % base);
        d.push(if upper { c.to_ascii_uppercase() } else { c });
        num /= base;
        if num == 0 {
            break;
        }
    }
    d.reverse();
    d
}

/// Reads bytes at `p` up to a NUL, or at most `max` bytes.
///
/// # Safety
/// `p` points to at least `max` readable bytes or to a NUL-terminated string.
unsafe fn bytes_upto(p: u64, max: Option<usize>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut q = p as *const u8;
    loop {
        if max.is_some_and(|m| out.len() >= m) {
            break;
        }
        // SAFETY: per the contract, every byte up to the NUL (or `max`) is readable.
        let c = unsafe { q.read() };
        if c == 0 {
            break;
        }
        out.push(c);
        // SAFETY: still inside the string (the byte just read was not its end).
        q = unsafe { q.add(1) };
    }
    out
}

/// Formats `fmt` with `args` into `out` as the FreeBSD kernel does; `radix` is what `%r`
/// uses (10 for `printf`). Returns the number of bytes produced.
///
/// # Safety
/// `fmt` is NULL or a NUL-terminated string; every `%s`/`%b`/`%D` argument the format asks
/// for points to what that conversion reads (as in the kernel, a wrong argument faults).
pub unsafe fn kvprintf(fmt: u64, args: &mut dyn ArgSource, radix: u32, out: &mut Vec<u8>) -> i32 {
    let start = out.len();
    let fmt = if fmt == 0 {
        b"(fmt null)\n".to_vec()
    } else {
        // SAFETY: per the contract, fmt is a NUL-terminated string.
        unsafe { super::mem::cstr(fmt) }
    };
    let radix = if (2..=36).contains(&radix) { radix } else { 10 };
    let mut i = 0;
    let mut stop = false;
    let put = |out: &mut Vec<u8>, c: u8| out.push(c);
    while i < fmt.len() {
        let ch = fmt[i];
        i += 1;
        if ch != b'%' || stop {
            put(out, ch);
            continue;
        }
        let percent = i - 1;
        let mut padc = b' ';
        let mut width: i64 = 0;
        let (mut lflag, mut qflag, mut hflag, mut cflag) = (false, false, false, false);
        let (mut jflag, mut tflag, mut zflag) = (false, false, false);
        let (mut ladjust, mut sharp, mut dot, mut bconv, mut upper) =
            (false, false, false, false, false);
        let mut sign: u8 = 0;
        let mut dwidth: i64 = 0;
        // The conversion: modifiers loop until a conversion character.
        let (base, signed, mut num): (u64, bool, u64);
        let mut bits: Option<Vec<u8>> = None;
        loop {
            let Some(&c) = fmt.get(i) else {
                // A lone '%' at the end: the kernel prints the NUL-ended sequence as written.
                out.extend_from_slice(&fmt[percent..]);
                return (out.len() - start) as i32;
            };
            i += 1;
            match c {
                b'.' => dot = true,
                b'#' => sharp = true,
                b'+' => sign = b'+',
                b'-' => ladjust = true,
                b'%' => {
                    put(out, b'%');
                    break;
                }
                b'*' => {
                    let v = i64::from(args.int());
                    if !dot {
                        width = v;
                        if width < 0 {
                            ladjust = !ladjust;
                            width = -width;
                        }
                    } else {
                        dwidth = v;
                    }
                }
                b'0' if !dot => padc = b'0',
                b'0'..=b'9' => {
                    let mut n: i64 = i64::from(c - b'0');
                    while let Some(&d) = fmt.get(i).filter(|d| d.is_ascii_digit()) {
                        n = n.saturating_mul(10).saturating_add(i64::from(d - b'0'));
                        i += 1;
                    }
                    if dot {
                        dwidth = n;
                    } else {
                        width = n;
                    }
                }
                b'h' => {
                    if hflag {
                        hflag = false;
                        cflag = true;
                    } else {
                        hflag = true;
                    }
                }
                b'l' => {
                    if lflag {
                        lflag = false;
                        qflag = true;
                    } else {
                        lflag = true;
                    }
                }
                b'q' => qflag = true,
                b'j' => jflag = true,
                b't' => tflag = true,
                b'z' => zflag = true,
                b'c' => {
                    width -= 1;
                    if !ladjust && width > 0 {
                        (0..width).for_each(|_| put(out, padc));
                    }
                    put(out, args.int() as u8);
                    if ladjust && width > 0 {
                        (0..width).for_each(|_| put(out, padc));
                    }
                    break;
                }
                b'D' => {
                    let up = args.ptr();
                    let sep = args.ptr();
                    if width == 0 {
                        width = 16;
                    }
                    // SAFETY: per the contract, %D's arguments are `width` readable bytes and
                    // a NUL-terminated separator.
                    let (data, sep) = unsafe {
                        (
                            super::mem::bytes(up, width.max(0) as usize),
                            super::mem::cstr(sep),
                        )
                    };
                    for (k, b) in data.iter().enumerate() {
                        put(out, hex2ascii(u64::from(b >> 4)));
                        put(out, hex2ascii(u64::from(b & 0xf)));
                        if k + 1 < data.len() {
                            out.extend_from_slice(&sep);
                        }
                    }
                    break;
                }
                b'n' => {
                    // Not supported in the kernel; the argument is consumed.
                    args.ptr();
                    break;
                }
                b's' => {
                    let p = args.ptr();
                    let s = if p == 0 {
                        let n = if dot { dwidth.max(0) as usize } else { 6 };
                        b"(null)"[..n.min(6)].to_vec()
                    } else {
                        // SAFETY: per the contract, a %s argument is a string (terminated, or
                        // at least `dwidth` bytes under a precision).
                        unsafe { bytes_upto(p, dot.then_some(dwidth.max(0) as usize)) }
                    };
                    width -= s.len() as i64;
                    if !ladjust && width > 0 {
                        (0..width).for_each(|_| put(out, padc));
                    }
                    out.extend_from_slice(&s);
                    if ladjust && width > 0 {
                        (0..width).for_each(|_| put(out, padc));
                    }
                    break;
                }
                b'd' | b'i' | b'y' | b'u' | b'o' | b'x' | b'X' | b'b' | b'r' | b'p' => {
                    if c == b'X' {
                        upper = true;
                    }
                    if c == b'b' {
                        ladjust = true;
                        bconv = true;
                    }
                    (base, signed) = match c {
                        b'd' | b'i' => (10, true),
                        b'y' => (16, true),
                        b'u' => (10, false),
                        b'o' => (8, false),
                        b'x' | b'X' | b'p' => (16, false),
                        b'r' => {
                            let s = sign != 0;
                            sign = 0;
                            (u64::from(radix), s)
                        }
                        _ => (0, false), // %b: the base comes from its string
                    };
                    if c == b'p' {
                        sharp = width == 0;
                        sign = 0;
                        num = args.ptr();
                    } else if signed {
                        let v: i64 = if jflag || qflag || tflag || lflag || zflag {
                            args.next_u64() as i64
                        } else if hflag {
                            i64::from(args.int() as i16)
                        } else if cflag {
                            i64::from(args.int() as i8)
                        } else {
                            i64::from(args.int())
                        };
                        num = v as u64;
                        if v < 0 {
                            sign = b'-';
                            num = v.unsigned_abs();
                        }
                    } else {
                        num = if jflag || qflag || tflag || lflag || zflag {
                            args.next_u64()
                        } else if hflag {
                            u64::from(args.int() as u16)
                        } else if cflag {
                            u64::from(args.int() as u8)
                        } else {
                            u64::from(args.uint())
                        };
                    }
                    let mut base = base;
                    if bconv {
                        let q = args.ptr();
                        // SAFETY: per the contract, %b's second argument is a string.
                        let spec = unsafe { super::mem::cstr(q) };
                        base = u64::from(spec.first().copied().unwrap_or(10));
                        bits = Some(spec.get(1..).unwrap_or(&[]).to_vec());
                    }
                    number(
                        out,
                        Number {
                            num,
                            base,
                            upper,
                            sharp,
                            sign,
                            ladjust,
                            padc,
                            width,
                            dwidth,
                            bits: bits.take(),
                        },
                    );
                    break;
                }
                _ => {
                    // Unknown: print it as written and stop interpreting the format.
                    out.extend_from_slice(&fmt[percent..i]);
                    stop = true;
                    break;
                }
            }
        }
    }
    (out.len() - start) as i32
}

struct Number {
    num: u64,
    base: u64,
    upper: bool,
    sharp: bool,
    sign: u8,
    ladjust: bool,
    padc: u8,
    width: i64,
    dwidth: i64,
    bits: Option<Vec<u8>>,
}

fn number(out: &mut Vec<u8>, n: Number) {
    let Number {
        num,
        base,
        upper,
        sharp,
        sign,
        ladjust,
        padc,
        mut width,
        mut dwidth,
        bits,
    } = n;
    let d = digits(num, base, upper);
    let len = d.len() as i64;
    let mut prefix = 0;
    if sharp && num != 0 {
        if base == 8 {
            prefix += 1;
        } else if base == 16 {
            prefix += 2;
        }
    }
    if sign != 0 {
        prefix += 1;
    }
    if !ladjust && padc == b'0' {
        dwidth = width - prefix;
    }
    width -= prefix + dwidth.max(len);
    dwidth -= len;
    if !ladjust {
        while width > 0 {
            out.push(b' ');
            width -= 1;
        }
    }
    if sign != 0 {
        out.push(sign);
    }
    if sharp && num != 0 {
        if base == 8 {
            out.push(b'0');
        } else if base == 16 {
            out.extend_from_slice(b"0x");
        }
    }
    while dwidth > 0 {
        out.push(b'0');
        dwidth -= 1;
    }
    out.extend_from_slice(&d);
    if let (Some(spec), true) = (bits, num != 0) {
        let mark = out.len();
        let mut k = 0;
        while k < spec.len() {
            let bit = spec[k];
            k += 1;
            let set = (1..=64).contains(&bit) && num & (1u64 << (bit - 1)) != 0;
            if set {
                out.push(if out.len() != mark { b',' } else { b'<' });
            }
            while k < spec.len() && spec[k] > b' ' {
                if set {
                    out.push(spec[k]);
                }
                k += 1;
            }
        }
        if out.len() != mark {
            out.push(b'>');
            width -= (out.len() - mark) as i64;
        }
    }
    if ladjust {
        while width > 0 {
            out.push(b' ');
            width -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::args::SliceArgs;
    use super::*;
    use std::ffi::CString;

    fn fmt(f: &str, args: &[u64]) -> String {
        let f = CString::new(f).unwrap();
        let mut out = Vec::new();
        let mut a = SliceArgs::new(args);
        // SAFETY: a terminated format; string arguments in the tests are live CStrings.
        let n = unsafe { kvprintf(f.as_ptr() as u64, &mut a, 10, &mut out) };
        assert_eq!(n as usize, out.len());
        String::from_utf8(out).unwrap()
    }

    fn s(v: &CString) -> u64 {
        v.as_ptr() as u64
    }

    #[test]
    fn integers() {
        assert_eq!(
            fmt("%d %i %u", &[-5i64 as u64, 7, u64::MAX]),
            "-5 7 4294967295"
        );
        assert_eq!(fmt("%x %X %o", &[0xbeef, 0xbeef, 8]), "beef BEEF 10");
        assert_eq!(fmt("%5d|%-5d|%05d", &[42, 42, 42]), "   42|42   |00042");
        assert_eq!(fmt("%05d", &[-42i64 as u64]), "-0042");
        assert_eq!(fmt("%.3d|%8.3d", &[7, 7]), "007|     007");
        assert_eq!(fmt("%#x %#o %#x", &[255, 8, 0]), "0xff 010 0");
        assert_eq!(fmt("%+d %+u", &[3, 3]), "+3 +3");
        assert_eq!(
            fmt("%*d|%-*d|%*d", &[4, 1, 4, 2, -4i64 as u64, 3]),
            "   1|2   |3   "
        );
        assert_eq!(fmt("%.*d", &[4, 9]), "0009");
    }

    #[test]
    fn length_modifiers() {
        let big = 0x1_0000_0001u64;
        assert_eq!(fmt("%d", &[big]), "1");
        assert_eq!(fmt("%ld %lld %qd %jd %zd %td", &[big; 6]), {
            let v = "4294967297";
            format!("{v} {v} {v} {v} {v} {v}")
        });
        assert_eq!(
            fmt("%hd %hhd %hu %hhu", &[0xffff, 0xff, 0x1ffff, 0x1ff]),
            "-1 -1 65535 255"
        );
        assert_eq!(fmt("%lx %zu", &[u64::MAX, 12]), "ffffffffffffffff 12");
        assert_eq!(fmt("%ld", &[-1i64 as u64]), "-1");
    }

    #[test]
    fn strings_chars_pointers() {
        let hello = CString::new("hello").unwrap();
        assert_eq!(fmt("[%s]", &[s(&hello)]), "[hello]");
        assert_eq!(
            fmt("[%8s|%-8s]", &[s(&hello), s(&hello)]),
            "[   hello|hello   ]"
        );
        assert_eq!(fmt("[%.3s]", &[s(&hello)]), "[hel]");
        assert_eq!(fmt("[%.*s]", &[2, s(&hello)]), "[he]");
        assert_eq!(fmt("[%s]", &[0]), "[(null)]");
        assert_eq!(
            fmt("%c%c%3c", &[b'o' as u64, b'k' as u64, b'!' as u64]),
            "ok  !"
        );
        assert_eq!(fmt("%p", &[0x1234]), "0x1234");
        assert_eq!(fmt("%8p", &[0x1234]), "    1234");
        assert_eq!(fmt("100%%", &[]), "100%");
        // The precision bounds the read: no terminator is needed.
        let raw = [b'a', b'b', b'c'];
        assert_eq!(fmt("%.3s", &[raw.as_ptr() as u64]), "abc");
    }

    #[test]
    fn freebsd_b_and_d() {
        let bits = CString::new("\x10\x02BITTWO\x01BITONE").unwrap();
        assert_eq!(fmt("reg=%b", &[3, s(&bits)]), "reg=3<BITTWO,BITONE>");
        assert_eq!(fmt("reg=%b", &[2, s(&bits)]), "reg=2<BITTWO>");
        assert_eq!(fmt("reg=%b", &[0, s(&bits)]), "reg=0");
        let oct = CString::new("\x08\x01A").unwrap();
        assert_eq!(fmt("%b", &[9, s(&oct)]), "11<A>");
        let mac = [0x52u8, 0x54, 0x00, 0x12, 0x34, 0x56];
        let colon = CString::new(":").unwrap();
        assert_eq!(
            fmt("%6D", &[mac.as_ptr() as u64, s(&colon)]),
            "52:54:00:12:34:56"
        );
        let space = CString::new(" ").unwrap();
        assert_eq!(fmt("%*D", &[2, mac.as_ptr() as u64, s(&space)]), "52 54");
    }

    #[test]
    fn unknown_conversion_stops_interpretation() {
        assert_eq!(fmt("a %w %d b", &[5]), "a %w %d b");
        assert_eq!(fmt("%y", &[-16i64 as u64]), "-10");
        assert_eq!(fmt("%r", &[12]), "12");
        assert_eq!(fmt("x%", &[]), "x%");
        assert_eq!(fmt("%n.", &[0]), ".");
    }

    #[test]
    fn null_format() {
        let mut out = Vec::new();
        // SAFETY: a NULL format is allowed.
        unsafe { kvprintf(0, &mut SliceArgs::new(&[]), 10, &mut out) };
        assert_eq!(out, b"(fmt null)\n");
    }
}
