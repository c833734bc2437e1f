/*
 * kldrun's self-test module: a small FreeBSD 14 kld in C, built by build.sh with the same
 * headers and flags as isboot.ko's shim, that exercises what isboot.ko does not (yet): the
 * C calling convention of printf(9) with many arguments and FreeBSD's own formats, a va_list
 * handed on, a stack overflow, a panic, a page fault, a loop that never ends, things left
 * behind at unload, a handler of its own calling SYSCTL_OUT, a refused MOD_LOAD.
 *
 * What it does is chosen with the tunable kldrun.selftest=<mode>.
 */
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/errno.h>
#include <sys/malloc.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/sysctl.h>
#include <sys/syslog.h>
#include <sys/linker.h>
#include <vm/vm.h>
#include <vm/pmap.h>
#include <machine/pmap.h>
#include <machine/stdarg.h>

#if __FreeBSD_version < 1500000
#undef	M_VERSION
#define	M_VERSION	2020110501
#endif

MALLOC_DEFINE(M_SELFTEST, "selftest", "kldrun self-test");

SYSCTL_NODE(_debug, OID_AUTO, selftest, CTLFLAG_RD | CTLFLAG_MPSAFE, 0, "kldrun self-test");
static int selftest_static = 7;
SYSCTL_INT(_debug_selftest, OID_AUTO, static_int, CTLFLAG_RD, &selftest_static, 0,
    "a static int");

static struct sysctl_ctx_list ctx;
static int ctx_ready;
static struct mtx lock;

static int
same(const char *a, const char *b)
{
	while (*a != '\0' && *a == *b) {
		a++;
		b++;
	}
	return (*a == *b);
}

static void
vsay(const char *fmt, va_list ap)
{
	vprintf(fmt, ap);
}

static void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

static void
formats(void)
{
	unsigned char mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	char buf[16];
	int n;

	printf("fmt: %d %i %u %x %X %o %c %s %%\n", -42, 7, 4000000000u, 0xbeef, 0xbeef,
	    8, 'k', "str");
	printf("fmt: [%5d] [%-5d] [%05d] [%.3d] [%#x] [%#o] [%+d]\n", 42, 42, 42, 7, 255, 8, 3);
	printf("fmt: %hhd %hd %ld %lld %qd %jd %zu %td\n", (char)-1, (short)-2, -3L, -4LL,
	    (long long)-5, (intmax_t)-6, (size_t)7, (__ptrdiff_t)-8);
	printf("fmt: %lx %llx %p\n", 0xfffffffffUL, 0x123456789abcULL, (void *)0x1234);
	printf("fmt: [%10s] [%-10s] [%.2s] [%*d] [%-*d]\n", "right", "left", "cut", 6, 1, 6, 2);
	printf("fmt: %b\n", 3, "\020\2BITTWO\1BITONE");
	printf("fmt: %6D\n", mac, ":");
	printf("fmt: stack %d %d %d %d %d %d %d %d %d %d\n", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
	say("fmt: va_list %s %d %lx %d %d %d %d\n", "via vprintf", 11, 0xabcUL, 12, 13, 14, 15);
	log(LOG_INFO, "fmt: log %s\n", "line");
	n = snprintf(buf, sizeof(buf), "%s-%d", "snprintf-truncated", 12345);
	printf("fmt: snprintf [%s] %d\n", buf, n);
	printf("fmt: %s\n", (char *)NULL);
}

static int
recurse(int depth)
{
	volatile char pad[1024];
	int i;

	for (i = 0; i < (int)sizeof(pad); i++)
		pad[i] = (char)depth;
	if (depth == 0)
		return (pad[0]);
	return (recurse(depth - 1) + pad[depth % 1024]);
}

static int
own_handler(SYSCTL_HANDLER_ARGS)
{
	char text[] = "from the module's own handler";

	return (SYSCTL_OUT(req, text, sizeof(text)));
}

static int
selftest_load(void)
{
	char *mode;
	int error = 0;
	void *p;
	char *env;
	struct sysctl_oid *node;

	mode = kern_getenv("kldrun.selftest");
	if (mode == NULL) {
		printf("selftest: no kldrun.selftest tunable\n");
		return (0);
	}
	printf("selftest: mode %s\n", mode);
	if (same(mode, "printf")) {
		formats();
	} else if (same(mode, "overflow")) {
		printf("selftest: %d\n", recurse(64));
	} else if (same(mode, "panic")) {
		panic("selftest: deliberate panic %d", 42);
	} else if (same(mode, "fault")) {
		printf("selftest: %d\n", *(volatile int *)0x10);
	} else if (same(mode, "spin")) {
		for (;;)
			__asm __volatile("pause");
	} else if (same(mode, "loadfail")) {
		error = ENXIO;
	} else if (same(mode, "leak")) {
		p = malloc(40, M_SELFTEST, M_WAITOK | M_ZERO);
		env = kern_getenv("kldrun.selftest");
		p = pmap_mapbios(0x9f000, 0x100);
		mtx_init(&lock, "selftest lock", NULL, MTX_DEF);
		printf("selftest: leaving things behind (%p, %s)\n", p, env);
	} else if (same(mode, "overrun")) {
		p = malloc(24, M_SELFTEST, M_WAITOK);
		((char *)p)[24] = 'x';
		free(p, M_SELFTEST);
	} else if (same(mode, "sysctl")) {
		sysctl_ctx_init(&ctx);
		ctx_ready = 1;
		node = SYSCTL_ADD_NODE(&ctx, SYSCTL_STATIC_CHILDREN(_debug_selftest), OID_AUTO,
		    "dyn", CTLFLAG_RD | CTLFLAG_MPSAFE, 0, "dynamic node");
		SYSCTL_ADD_INT(&ctx, SYSCTL_CHILDREN(node), OID_AUTO, "answer",
		    CTLFLAG_RD | CTLFLAG_MPSAFE, NULL, 42, "a constant");
		SYSCTL_ADD_PROC(&ctx, SYSCTL_CHILDREN(node), OID_AUTO, "own",
		    CTLTYPE_STRING | CTLFLAG_RD | CTLFLAG_MPSAFE, NULL, 0, own_handler, "A",
		    "a handler of the module's");
		SYSCTL_ADD_STRING(&ctx, SYSCTL_CHILDREN(node), OID_AUTO, "dotted.name",
		    CTLFLAG_RD | CTLFLAG_MPSAFE, "escaped", 0, "a name with a dot");
		mtx_init(&lock, "selftest lock", NULL, MTX_DEF);
		mtx_lock(&lock);
		printf("selftest: lock owned %d\n", mtx_owned(&lock));
		mtx_unlock(&lock);
		mtx_destroy(&lock);
	}
	freeenv(mode);
	return (error);
}

static int
selftest_modevent(module_t mod, int what, void *arg)
{
	switch (what) {
	case MOD_LOAD:
		return (selftest_load());
	case MOD_SHUTDOWN:
		printf("selftest: MOD_SHUTDOWN\n");
		return (0);
	case MOD_QUIESCE:
		printf("selftest: MOD_QUIESCE\n");
		return (0);
	case MOD_UNLOAD:
		printf("selftest: MOD_UNLOAD\n");
		if (ctx_ready) {
			ctx_ready = 0;
			return (sysctl_ctx_free(&ctx));
		}
		return (0);
	default:
		return (0);
	}
}

static moduledata_t selftest_mod = {
	"kldrun_selftest",
	selftest_modevent,
	NULL
};

DECLARE_MODULE(kldrun_selftest, selftest_mod, SI_SUB_DRIVERS, SI_ORDER_ANY);
MODULE_VERSION(kldrun_selftest, 1);
