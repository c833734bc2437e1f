# Sourced by build-kld.sh and check-kld.sh: where ziglang's FreeBSD headers are, and how the
# shim is compiled (the flags bsd.kmod.mk/kern.mk use for a module, minus what needs a source
# tree). Expects KMOD_DIR and OUT; sets ZIG, ZIG_VERSION, FREEBSD_INC_*, GEN_DIR, SHIM_CFLAGS.

ZIG=(python3 -m ziglang)
ZIG_VERSION="$("${ZIG[@]}" version)"
ZIG_LIB="$(python3 -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))')/lib"
FREEBSD_INC_MD="$ZIG_LIB/libc/include/x86_64-freebsd-none"
FREEBSD_INC="$ZIG_LIB/libc/include/generic-freebsd"
GEN_DIR="$OUT/gen"
FREEBSD_VERSION="${FREEBSD_VERSION:-1400097}"

# kmod.mk creates empty opt_*.h without a kernel build directory; the kobj headers (generated
# from kern/*.m) are only included, never used, by the headers the shim needs.
mkdir -p "$GEN_DIR"
for h in opt_global.h opt_inet.h opt_inet6.h opt_cam.h device_if.h bus_if.h; do
    [ -e "$GEN_DIR/$h" ] || : > "$GEN_DIR/$h"
done
# ziglang ships no Concurrency Kit headers (sys/contrib/ck/include in a source tree), which
# <sys/ck.h> and <sys/epoch.h> include in the kernel. The shim only needs the types they
# declare: the CK queues are laid out as <sys/queue.h>'s (the userland branch of sys/ck.h
# maps them so), and an epoch section is one unsigned int (ck_epoch.h). The shim never
# walks a CK list itself. A FreeBSD build (kmod/Makefile) uses the real headers.
cat > "$GEN_DIR/ck_queue.h" <<'CK'
#pragma once
#include <sys/queue.h>
#define CK_STAILQ_HEAD STAILQ_HEAD
#define CK_STAILQ_ENTRY STAILQ_ENTRY
#define CK_LIST_HEAD LIST_HEAD
#define CK_LIST_ENTRY LIST_ENTRY
#define CK_SLIST_HEAD SLIST_HEAD
#define CK_SLIST_ENTRY SLIST_ENTRY
CK
cat > "$GEN_DIR/ck_epoch.h" <<'CK'
#pragma once
struct ck_epoch_section { unsigned int bucket; };
typedef struct ck_epoch_section ck_epoch_section_t;
CK

SHIM_CFLAGS=(
    -target x86_64-freebsd
    -U__FreeBSD_version "-D__FreeBSD_version=$FREEBSD_VERSION"
    -D_KERNEL -DKLD_MODULE -DVIMAGE -DINET -DINET6
    -nostdinc -I"$GEN_DIR" -I"$KMOD_DIR/shim" -include opt_global.h
    -isystem "$FREEBSD_INC_MD" -isystem "$FREEBSD_INC"
    -ffreestanding -fno-common -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer
    -mcmodel=kernel -mno-red-zone -mno-mmx -mno-sse -msoft-float -mno-aes -mno-avx
    # zig cc resolves CPU features itself: -mno-sse leaves the baseline x86-64 cpu's SSE2 on
    -mno-sse2 -mno-sse3 -mno-ssse3 -mno-sse4.1 -mno-sse4.2 -mno-avx2
    -fno-asynchronous-unwind-tables -fwrapv -std=gnu99 -O2
    -Wall -Werror
)
