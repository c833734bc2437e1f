#!/usr/bin/env bash
# Proves check_kld.py catches what it is for: builds a deliberately bad kld (GOT-relative
# relocations, SSE arithmetic, an x87 instruction, a call to a function the kernel does not
# declare, a 64 KiB stack frame, no module metadata) and expects exactly those checks to fail.
set -euo pipefail
KMOD_DIR="$(cd "$(dirname "$0")/.." && pwd)"
REPO="$(cd "$KMOD_DIR/.." && pwd)"
OUT="${OUT:-$REPO/target/kmod}"
. "$KMOD_DIR/scripts/freebsd-env.sh"
T="$OUT/selftest"
mkdir -p "$T"
cat > "$T/bad.c" <<'C'
extern int puts(const char *);
extern double scale;
int bad_entry(int n) {
	volatile char big[65536];
	big[n] = (char)n;
	double x = scale * n;
	__asm__ volatile("fninit");
	puts("kernel has no puts");
	return (int)x + big[0];
}
C
"${ZIG[@]}" cc -target x86_64-freebsd -O2 -fPIC -msse2 -ffreestanding -c "$T/bad.c" -o "$T/bad.o"
"${ZIG[@]}" ld.lld -m elf_x86_64_fbsd -r -o "$T/bad.ko" "$T/bad.o"
set +e
out="$(python3 "$KMOD_DIR/scripts/check_kld.py" "$T/bad.ko" \
    "${ZIG[@]}" cc "${SHIM_CFLAGS[@]}" -Wno-unused-variable -c -o "$GEN_DIR/declcheck.o" -x c - 2>&1)"
rc=$?
set -e
fails="$(printf '%s\n' "$out" | grep '^FAIL' | cut -c7- | cut -d: -f1 | tr '\n' '|')"
want="relocations in allocated sections only R_X86_64_64/PC32/PLT32/32S|no SSE/AVX/x87/MMX instructions|no stack frame above 4096 bytes|every undefined symbol is declared by the FreeBSD headers|module linker sets and Rust entry point present|module metadata decodes|"
if [ "$rc" = 1 ] && [ "$fails" = "$want" ]; then
    echo "ok    checker self-test: a bad kld fails exactly the 6 checks it should"
else
    echo "FAIL  checker self-test (exit $rc); its output:"
    printf '%s\n' "$out"
    exit 1
fi
