//! The C library part of the kernel a kld may call (`sys/libkern/`, `sys/amd64/amd64/
//! support.S`): the memory and string functions a C compiler also emits calls to. Each does
//! what its C standard or `libkern` definition says; nothing is simplified.

use super::{mem, Ctx};

fn copy(dst: u64, src: u64, n: u64) {
    if n == 0 {
        return;
    }
    // SAFETY: the function's contract: `n` bytes readable at src and writable at dst;
    // `ptr::copy` allows overlap (memmove semantics, also correct for memcpy).
    unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, n as usize) }
}

/// `void *memcpy(void *dst, const void *src, size_t n);`
pub fn memcpy(c: &mut Ctx) -> u64 {
    let (d, s, n) = (c.args.ptr(), c.args.ptr(), c.args.ptr());
    copy(d, s, n);
    d
}

/// `void *memmove(void *dst, const void *src, size_t n);`
pub fn memmove(c: &mut Ctx) -> u64 {
    memcpy(c)
}

/// `void bcopy(const void *src, void *dst, size_t n);` (overlap allowed)
pub fn bcopy(c: &mut Ctx) -> u64 {
    let (s, d, n) = (c.args.ptr(), c.args.ptr(), c.args.ptr());
    copy(d, s, n);
    0
}

fn fill(d: u64, v: u8, n: u64) {
    if n > 0 {
        // SAFETY: the function's contract: `n` writable bytes at d.
        unsafe { std::ptr::write_bytes(d as *mut u8, v, n as usize) }
    }
}

/// `void *memset(void *b, int c, size_t len);`
pub fn memset(c: &mut Ctx) -> u64 {
    let (d, v, n) = (c.args.ptr(), c.args.int(), c.args.ptr());
    fill(d, v as u8, n);
    d
}

/// `void bzero(void *b, size_t len);`
pub fn bzero(c: &mut Ctx) -> u64 {
    let (d, n) = (c.args.ptr(), c.args.ptr());
    fill(d, 0, n);
    0
}

fn compare(a: u64, b: u64, n: u64) -> i32 {
    // SAFETY: the function's contract: `n` readable bytes at each.
    let (x, y) = unsafe { (mem::bytes(a, n as usize), mem::bytes(b, n as usize)) };
    match x.iter().zip(&y).find(|(p, q)| p != q) {
        Some((p, q)) => i32::from(*p) - i32::from(*q),
        None => 0,
    }
}

/// `int memcmp(const void *b1, const void *b2, size_t len);` — the difference of the first
/// differing bytes (as unsigned char), 0 if equal.
pub fn memcmp(c: &mut Ctx) -> u64 {
    let (a, b, n) = (c.args.ptr(), c.args.ptr(), c.args.ptr());
    compare(a, b, n) as i64 as u64
}

/// `int bcmp(const void *b1, const void *b2, size_t len);` — 0 if equal, non-zero otherwise.
pub fn bcmp(c: &mut Ctx) -> u64 {
    memcmp(c)
}

/// `size_t strlen(const char *s);`
pub fn strlen(c: &mut Ctx) -> u64 {
    let s = c.args.ptr();
    // SAFETY: the contract: a NUL-terminated string.
    unsafe { mem::cstr(s) }.len() as u64
}

fn strcmp_n(a: u64, b: u64, max: Option<u64>) -> i32 {
    let mut i = 0u64;
    loop {
        if max.is_some_and(|m| i >= m) {
            return 0;
        }
        // SAFETY: the contract: NUL-terminated strings (or `max` readable bytes).
        let (x, y) = unsafe { (mem::read::<u8>(a + i), mem::read::<u8>(b + i)) };
        if x != y || x == 0 {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
}

/// `int strcmp(const char *s1, const char *s2);`
pub fn strcmp(c: &mut Ctx) -> u64 {
    let (a, b) = (c.args.ptr(), c.args.ptr());
    strcmp_n(a, b, None) as i64 as u64
}

/// `int strncmp(const char *s1, const char *s2, size_t len);`
pub fn strncmp(c: &mut Ctx) -> u64 {
    let (a, b, n) = (c.args.ptr(), c.args.ptr(), c.args.ptr());
    strcmp_n(a, b, Some(n)) as i64 as u64
}

/// `size_t strlcpy(char *dst, const char *src, size_t size);` — copies at most `size - 1`
/// bytes and a NUL (nothing for size 0); returns `strlen(src)`.
pub fn strlcpy(c: &mut Ctx) -> u64 {
    let (d, s, size) = (c.args.ptr(), c.args.ptr(), c.args.ptr());
    // SAFETY: the contract: a NUL-terminated source.
    let src = unsafe { mem::cstr(s) };
    if size > 0 {
        let n = src.len().min(size as usize - 1);
        // SAFETY: the contract: `size` writable bytes at dst; n + 1 <= size.
        unsafe {
            mem::write_bytes(d, &src[..n]);
            mem::write(d + n as u64, 0u8);
        }
    }
    src.len() as u64
}
