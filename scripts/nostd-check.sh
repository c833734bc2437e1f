#!/usr/bin/env bash
# Builds the portable crates for x86_64-unknown-none (no std, soft-float, no red zone) with
# Debian's Rust and its library source, as the kernel module and the ROM will: a crate that
# reaches for std, or for floating point, does not get past here.
#   CRATES: the packages to build (default: every portable crate).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
CRATES="${CRATES:-clock secret ibft ipoib hca iscsi-initiator loader}"
[ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ] ||
    kmod/scripts/install-toolchain.sh >&2
args=()
for c in $CRATES; do args+=(-p "$c"); done
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS RUSTUP_TOOLCHAIN
export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$REPO/target/nostd"
# Code that may run in the kernel or the ROM never uses floating point: no f32/f64 in the
# portable crates' library sources (the target is soft-float, so the compiler would not catch
# it). Host-only code may use floats: command-line tools in src/bin, and std-only modules
# kept under src/host (the simulator's storm statistics and SVG timelines).
for c in $CRATES; do
    dir=$(cargo metadata --no-deps --format-version 1 |
        python3 -c "import json,sys; print(next(p['manifest_path'] for p in json.load(sys.stdin)['packages'] if p['name']=='$c').rsplit('/',1)[0])")
    if grep -rnwE 'f32|f64' "$dir/src" --include=*.rs --exclude-dir=bin --exclude-dir=host | grep -v '^\s*//' | grep -vE ':[0-9]+:\s*//'; then
        echo "nostd-check: $c uses floating point (above)" >&2
        exit 1
    fi
done
/usr/bin/cargo build --release --target x86_64-unknown-none -Zbuild-std=core,alloc "${args[@]}"
echo "nostd-check: built for x86_64-unknown-none: $CRATES"
