#!/usr/bin/env bash
# Structural checks of the cross-built isboot.ko (see check_kld.py), plus the shim's
# _Static_asserts (isboot_abi.h) compiled again against the FreeBSD headers.
# Usage: check-kld.sh [path/to/isboot.ko]   (default: $OUT/isboot.ko, OUT=<repo>/target/kmod)
set -euo pipefail

KMOD_DIR="$(cd "$(dirname "$0")/.." && pwd)"
REPO="$(cd "$KMOD_DIR/.." && pwd)"
OUT="${OUT:-$REPO/target/kmod}"
KO="${1:-$OUT/isboot.ko}"
[ -f "$KO" ] || { echo "check-kld: $KO not found (run kmod/scripts/build-kld.sh first)" >&2; exit 2; }
. "$KMOD_DIR/scripts/freebsd-env.sh"

echo "check-kld: $KO"
status=0
n=$(cat "$KMOD_DIR/shim/isboot_abi.h" "$KMOD_DIR/shim/isboot_boot_abi.h" "$KMOD_DIR/shim/isboot_pci_abi.h" | grep -c '^ISBOOT_ABI_')
if "${ZIG[@]}" cc "${SHIM_CFLAGS[@]}" -c -o "$GEN_DIR/shim-check.o" "$KMOD_DIR/shim/isboot_shim.c" &&
    "${ZIG[@]}" cc "${SHIM_CFLAGS[@]}" -c -o "$GEN_DIR/boot-check.o" "$KMOD_DIR/shim/isboot_boot.c" &&
    "${ZIG[@]}" cc "${SHIM_CFLAGS[@]}" -c -o "$GEN_DIR/pci-check.o" "$KMOD_DIR/shim/isboot_pci.c"; then
    echo "ok    shim _Static_asserts hold against the FreeBSD headers: $n (kmod/shim/isboot_abi.h, isboot_boot_abi.h, isboot_pci_abi.h)"
else
    echo "FAIL  shim _Static_asserts"
    status=1
fi
python3 "$KMOD_DIR/scripts/check_kld.py" --freebsd-version="$FREEBSD_VERSION" \
    --bindings="$KMOD_DIR/bindings/src/ffi.rs" "$KO" \
    "${ZIG[@]}" cc "${SHIM_CFLAGS[@]}" -Wno-unused-variable -c -o "$GEN_DIR/declcheck.o" -x c - || status=1
"$KMOD_DIR/scripts/selftest-check.sh" || status=1
[ "$status" = 0 ] && echo "check-kld: all checks passed" || echo "check-kld: FAILED"
exit "$status"
