#!/usr/bin/env bash
# Cross-build isboot.ko on Linux from registry packages only
# (kmod/README.md, "Linux cross build"):
#   1. the C shim, with ziglang's FreeBSD-targeting clang against FreeBSD's installed headers
#      (its _Static_asserts pin every number the Rust bindings use: kmod/shim/isboot_abi.h);
#   2. the Rust half (kmod/kld -> isboot -> ibft, kernel-bindings) with Debian's rustc and
#      its library source: core/alloc rebuilt for x86_64-unknown-none (soft-float, no red
#      zone) with a static relocation model, kernel code model and PLT calls;
#   3. `ld.lld -m elf_x86_64_fbsd -r` of both into one relocatable ELF, then (as
#      bsd.kmod.mk does) every defined global but the linker sets localized and debug stripped.
#
# Output: $OUT/isboot.ko (stripped) and $OUT/isboot.ko.full (with debug info).
# Environment: OUT (default <repo>/target/kmod), CARGO_TARGET_DIR (default $OUT/cargo),
# FREEBSD_VERSION (default 1400097 = 14.0-RELEASE: the module loads on every 14.x),
# SKIP_INSTALL=1 to not run install-toolchain.sh.
set -euo pipefail

KMOD_DIR="$(cd "$(dirname "$0")/.." && pwd)"
REPO="$(cd "$KMOD_DIR/.." && pwd)"
OUT="${OUT:-$REPO/target/kmod}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OUT/cargo}"
FREEBSD_VERSION="${FREEBSD_VERSION:-1400097}"
RUST_TARGET=x86_64-unknown-none

[ "${SKIP_INSTALL:-0}" = 1 ] || "$KMOD_DIR/scripts/install-toolchain.sh" >&2

. "$KMOD_DIR/scripts/freebsd-env.sh"
mkdir -p "$OUT" "$GEN_DIR"

# --- 1. the C shim ------------------------------------------------------------------------
echo "build-kld: cc isboot_shim.c (FreeBSD headers from ziglang $ZIG_VERSION, __FreeBSD_version $FREEBSD_VERSION)"
"${ZIG[@]}" cc "${SHIM_CFLAGS[@]}" -c "$KMOD_DIR/shim/isboot_shim.c" -o "$OUT/isboot_shim.o"
echo "build-kld: cc isboot_boot.c"
"${ZIG[@]}" cc "${SHIM_CFLAGS[@]}" -c "$KMOD_DIR/shim/isboot_boot.c" -o "$OUT/isboot_boot.o"
echo "build-kld: cc isboot_pci.c"
"${ZIG[@]}" cc "${SHIM_CFLAGS[@]}" -c "$KMOD_DIR/shim/isboot_pci.c" -o "$OUT/isboot_pci.o"

# --- 2. the Rust half -------------------------------------------------------------------------
echo "build-kld: cargo build (Debian $(/usr/bin/rustc --version | cut -d' ' -f1-2), -Zbuild-std=core,alloc, $RUST_TARGET)"
(
    cd "$KMOD_DIR/kld"
    # Debian's cargo and rustc, explicitly: rustup's stay first on PATH for host builds.
    # CARGO_ENCODED_RUSTFLAGS, even empty, would override RUSTFLAGS: unset it.
    unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS RUSTUP_TOOLCHAIN
    export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
    export RUSTFLAGS="-C relocation-model=static -C code-model=kernel -Zplt=yes -C force-frame-pointers=yes"
    # kld/Cargo.lock pins the dependencies; cargo adds entries when a crate gains one.
    exec /usr/bin/cargo build --release --target "$RUST_TARGET" -Zbuild-std=core,alloc
)
RUST_LIB="$CARGO_TARGET_DIR/$RUST_TARGET/release/libisboot_kld.a"

# --- 3. link ----------------------------------------------------------------------------------
echo "build-kld: ld.lld -m elf_x86_64_fbsd -r"
# The shim references isboot_modevent, which pulls the Rust objects it needs from the archive;
# --gc-sections then drops what nothing reaches from it or from the linker sets (kld.lds keeps
# those, and merges the sections as FreeBSD's ldscript.kmod.amd64 does).
"${ZIG[@]}" ld.lld -m elf_x86_64_fbsd -r -d --gc-sections -u isboot_modevent \
    -T "$KMOD_DIR/scripts/kld.lds" -o "$OUT/isboot.ko.full" "$OUT/isboot_shim.o" "$OUT/isboot_boot.o" "$OUT/isboot_pci.o" "$RUST_LIB"

# bsd.kmod.mk (EXPORT_SYMS unset) localizes every defined global so that modules do not clash.
# (readelf, not nm: binutils' nm tries its LLVM plugin on these objects.)
readelf -sW "$OUT/isboot.ko.full" |
    awk '($5 == "GLOBAL" || $5 == "WEAK") && $7 != "UND" && $8 != "" {print $8}' |
    sort -u > "$OUT/isboot.localize"
objcopy --localize-symbols="$OUT/isboot.localize" "$OUT/isboot.ko.full" "$OUT/isboot.ko.full"
objcopy --strip-debug "$OUT/isboot.ko.full" "$OUT/isboot.ko"
echo "build-kld: $OUT/isboot.ko ($(stat -c %s "$OUT/isboot.ko") bytes)"
