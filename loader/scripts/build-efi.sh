#!/usr/bin/env bash
# Builds isboot.efi (loader/efi) from registry packages only: Debian's rustc and cargo with
# their library source (core and alloc rebuilt for x86_64-unknown-uefi with -Zbuild-std) and,
# since Debian's rustc ships no rust-lld, PyPI's ziglang as the PE/COFF linker (lld-link).
#
# Output: $OUT/isboot.efi (default <repo>/target/rom), and $OUT/isboot-nohca.efi (the image
# without the ConnectX driver, for the size comparison), each with a linker map beside it.
# Environment: OUT, CARGO_TARGET_DIR (default $OUT/cargo), SKIP_INSTALL=1 to not run
# kmod/scripts/install-toolchain.sh, FEATURES_ONLY=hca|nohca to build one image (or =measure:
# the non-LTO build whose map rom-size.py reads).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-$REPO/target/rom}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OUT/cargo}"
TARGET=x86_64-unknown-uefi
mkdir -p "$OUT"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    { [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ] &&
        python3 -m ziglang version >/dev/null 2>&1; } ||
        "$REPO/kmod/scripts/install-toolchain.sh" >&2
fi

# rustc drives the linker as rust-lld in its lld-link flavor (`-flavor link` first); ziglang's
# `lld-link` is that linker already, so the flavor arguments are dropped.
LINKER="$OUT/lld-link"
WRAPPER='#!/bin/sh
if [ "$1" = -flavor ]; then shift 2; fi
exec python3 -m ziglang lld-link "$@"'
# Written only when it changes, and by rename: tests may run this script side by side.
if [ "$(cat "$LINKER" 2>/dev/null)" != "$WRAPPER" ]; then
    printf '%s\n' "$WRAPPER" >"$LINKER.$$"
    chmod +x "$LINKER.$$"
    mv -f "$LINKER.$$" "$LINKER"
fi

build() { # $1: image name, $2: cargo feature arguments
    local name="$1"
    shift
    # One target directory per image: their flags differ (the map's name at least), and a
    # change of flags would rebuild everything, core and alloc included.
    local dir="$CARGO_TARGET_DIR/$name"
    (
        export CARGO_TARGET_DIR="$dir"
        cd "$REPO/loader/efi"
        unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS RUSTUP_TOOLCHAIN
        export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
        export RUSTFLAGS="-C linker=$LINKER -C link-arg=/map:$OUT/$name.map"
        exec /usr/bin/cargo build --release --target "$TARGET" \
            -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem "$@"
    )
    cp "$dir/$TARGET/release/isboot.efi" "$OUT/$name.efi.$$"
    mv -f "$OUT/$name.efi.$$" "$OUT/$name.efi"
}

case "${FEATURES_ONLY:-both}" in
hca) build isboot ;;
measure)
    # Where the bytes go: the same image without LTO and with one codegen unit per crate's
    # parts, so that the linker map attributes code to the crate it came from
    # (loader/scripts/rom-size.py reads the map).
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        build isboot-measure
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        build isboot-nohca-measure --no-default-features
    ;;
nohca) build isboot-nohca --no-default-features ;;
*)
    build isboot-nohca --no-default-features
    build isboot
    ;;
esac

# The sizes, beside the reference: iPXE's snponly.efi in Debian 12's ipxe package.
bytes() { [ -f "$1" ] && stat -c %s "$1" || echo "?"; }
if [ "${FEATURES_ONLY:-both}" = both ]; then
    echo "rom: $OUT/isboot.efi: $(bytes "$OUT/isboot.efi") bytes;" \
        "without the ConnectX driver (Ethernet/SNP only): $(bytes "$OUT/isboot-nohca.efi") bytes;" \
        "iPXE's snponly.efi (Debian 12): 173792 bytes"
elif [ "${FEATURES_ONLY}" = measure ]; then
    python3 "$REPO/loader/scripts/rom-size.py" "$OUT/isboot-measure.map" \
        "$OUT/isboot-nohca-measure.map"
else
    echo "rom: $OUT/isboot.efi: $(bytes "$OUT/isboot.efi") bytes"
fi
