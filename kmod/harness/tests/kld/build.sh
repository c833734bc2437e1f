#!/usr/bin/env bash
# Builds a small test kld from C, with the FreeBSD headers and flags isboot.ko's shim uses
# (kmod/scripts/freebsd-env.sh), linked like isboot.ko (ld.lld -m elf_x86_64_fbsd -r).
# Usage: build.sh SOURCE.c OUT.ko [EXTRA.o...]   (EXTRA objects are linked in as they are)
set -euo pipefail
SRC="$1"
KO="$2"
shift 2
KMOD_DIR="$(cd "$(dirname "$0")/../../.." && pwd)"
OUT="$(dirname "$KO")"
. "$KMOD_DIR/scripts/freebsd-env.sh"
"${ZIG[@]}" cc "${SHIM_CFLAGS[@]}" -D__printf__=__freebsd_kprintf__ -c "$SRC" -o "$KO.o"
"${ZIG[@]}" ld.lld -m elf_x86_64_fbsd -r -o "$KO" "$KO.o" "$@"
rm -f "$KO.o"
