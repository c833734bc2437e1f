/*
 * isboot.ko: the C half of the module. Only what exists as C macros lives here:
 *   - the module declaration and its SYSINIT order (DECLARE_MODULE, MODULE_VERSION);
 *   - the malloc(9) type (MALLOC_DEFINE) the Rust global allocator uses;
 *   - the static sysctl roots hw.ibft and net.isboot (SYSCTL_NODE), under which the Rust side
 *     adds its dynamic oids;
 *   - _Static_asserts pinning every number the Rust bindings rely on (isboot_abi.h).
 * Everything else is Rust (kmod/src/freebsd.rs over kmod/bindings).
 */
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/errno.h>
#include <sys/malloc.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/queue.h>
#include <sys/sysctl.h>
#include <sys/linker.h>

#include <stddef.h>

#define	ISBOOT_ABI_SIZE(t, n)		_Static_assert(sizeof(t) == (n), "sizeof(" #t ")");
#define	ISBOOT_ABI_ALIGN(t, n)		_Static_assert(_Alignof(t) == (n), "_Alignof(" #t ")");
#define	ISBOOT_ABI_OFFSET(t, f, n)	_Static_assert(offsetof(t, f) == (n), "offsetof(" #t ", " #f ")");
#define	ISBOOT_ABI_CONST(c, v)		_Static_assert((c) == (v), #c);
#include "isboot_abi.h"

/*
 * ziglang's FreeBSD headers are FreeBSD 15's. A 14.x kernel's malloc_init() panics on a malloc
 * type whose ks_version is not its own M_VERSION, and 15 bumped it (struct malloc_type kept
 * its layout: 112 bytes). Building for 14 (the default), use 14's.
 */
#if __FreeBSD_version < 1500000
#undef	M_VERSION
#define	M_VERSION	2020110501
#endif

/* malloc(9) type for every allocation of the module (Rust: kernel_bindings::alloc). */
MALLOC_DEFINE(M_ISBOOT, "isboot", "isboot iSCSI/iBFT boot module");

/* Static roots; the leaves are added at MOD_LOAD by Rust with sysctl_add_oid(9). */
SYSCTL_NODE(_hw, OID_AUTO, ibft, CTLFLAG_RD | CTLFLAG_MPSAFE, 0,
    "iSCSI Boot Firmware Table (iBFT) found at boot");
SYSCTL_NODE(_net, OID_AUTO, isboot, CTLFLAG_RD | CTLFLAG_MPSAFE, 0,
    "iSCSI boot (isboot)");

/* Rust: kmod/src/freebsd.rs. Runs in the module event context; never panics. */
int	isboot_modevent(module_t mod, int what, void *arg);

static moduledata_t isboot_mod = {
	"isboot",
	isboot_modevent,
	NULL
};

/*
 * MOD_LOAD just before root is mounted (SI_SUB_ROOT_CONF - 1): after every driver has attached
 * and ACPI has been probed, as the C isboot does. A kldload after boot runs it at once.
 */
DECLARE_MODULE(isboot, isboot_mod, SI_SUB_ROOT_CONF - 1, SI_ORDER_ANY);
MODULE_VERSION(isboot, 1);
