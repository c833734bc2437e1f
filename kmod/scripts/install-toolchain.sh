#!/usr/bin/env bash
# Install what the Linux cross build of isboot.ko needs, from the package registries only
# (kmod/README.md, "Linux cross build"):
#   - Debian's Rust with its library source (rustc-web, cargo-web, rust-web-src; bookworm-security),
#     so core/alloc can be rebuilt for a static-relocation, soft-float kernel target;
#   - PyPI's ziglang (a FreeBSD-targeting clang + ld.lld with FreeBSD's installed headers);
#   - binutils (readelf/objdump) for the checks.
# Idempotent: does nothing when everything is already present.
set -euo pipefail

ZIGLANG_VERSION="${ZIGLANG_VERSION:-0.17.1}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
[ -x /usr/bin/rustc ] || need_apt+=(rustc-web)
[ -x /usr/bin/cargo ] || need_apt+=(cargo-web)
[ -d /usr/lib/rustlib/src/rust/library ] || need_apt+=(rust-web-src)
command -v readelf >/dev/null 2>&1 && command -v objdump >/dev/null 2>&1 || need_apt+=(binutils)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)

if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "install-toolchain: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! python3 -c 'import ziglang' >/dev/null 2>&1; then
    echo "install-toolchain: pip install ziglang==${ZIGLANG_VERSION}"
    # Debian's system python marks itself externally managed; the flag is harmless elsewhere.
    python3 -m pip install -q "ziglang==${ZIGLANG_VERSION}" 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "ziglang==${ZIGLANG_VERSION}"
fi

echo "install-toolchain: $(/usr/bin/rustc --version), $(python3 -m ziglang version 2>/dev/null | head -1 | sed 's/^/zig /'), $(readelf --version | head -1)"
