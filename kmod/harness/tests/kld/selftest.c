/*
 * kldrun's self-test module: a small FreeBSD 14 kld in C, built by build.sh with the same
 * headers and flags as isboot.ko's shim, that exercises what isboot.ko does not (yet): the
 * C calling convention of printf(9) with many arguments and FreeBSD's own formats, a va_list
 * handed on, a stack overflow, a panic, a page fault, a loop that never ends, things left
 * behind at unload, a handler of its own calling SYSCTL_OUT, a refused MOD_LOAD, and an
 * IPoIB interface (mode "ifnet", see below) whose far end is a tiny peer inside this module,
 * and msleep(9)/wakeup(9) between two threads (mode "sleep").
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
#include <sys/proc.h>
#include <sys/kthread.h>
#include <sys/sysctl.h>
#include <sys/syslog.h>
#include <sys/linker.h>
#include <vm/vm.h>
#include <vm/pmap.h>
#include <machine/pmap.h>
#include <machine/stdarg.h>
#include <sys/mbuf.h>
#include <sys/socket.h>
#include <sys/sockio.h>
#include <net/if.h>
#include <net/if_var.h>
#include <net/if_types.h>
#include <net/infiniband.h>
#include <netinet/in.h>
#include <netinet/if_ether.h>

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


/*
 * Mode "ifnet" (and "ifnet-leak", which never detaches): an IFT_INFINIBAND interface
 * "isbib0" on the kernel's InfiniBand link layer, as an IPoIB driver makes it, with only
 * accessor functions and real mbuf functions (no struct layouts). Its if_transmit is the wire
 * to a peer that lives in this module: the peer answers IPoIB ARP requests (RFC 4391 §7) for
 * PEER_IP with PEER_HW and echoes ICMP echo requests sent to PEER_IP, both back up through
 * if_input. A UDP datagram to PEER_IP port 9 takes the link down, one to port 7 brings it up.
 */
#define	PEER_IP		0x0a4d0002	/* 10.77.0.2 */
static if_t st_ifp;
static int st_keep;
static const uint8_t st_lla[INFINIBAND_ADDR_LEN] = { 0x00, 0x00, 0x04, 0x48, 0xfe, 0x80,
    0, 0, 0, 0, 0, 0, 0x00, 0x02, 0xc9, 0x03, 0x00, 0xab, 0xcd, 0x01 };
static const uint8_t st_bcast[INFINIBAND_ADDR_LEN] = { 0x00, 0xff, 0xff, 0xff, 0xff, 0x12,
    0x40, 0x1b, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff };
static const uint8_t st_peer[INFINIBAND_ADDR_LEN] = { 0x00, 0x00, 0x04, 0x49, 0xfe, 0x80,
    0, 0, 0, 0, 0, 0, 0x00, 0x02, 0xc9, 0x03, 0x00, 0xab, 0xcd, 0x02 };
static char st_frame[4096];
static char st_reply[4096];

static uint32_t
rd32(const char *p)
{
	const uint8_t *b = (const uint8_t *)p;

	return ((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
}

static void
copy(char *dst, const void *src, int len)
{
	const char *s = src;

	while (len-- > 0)
		*dst++ = *s++;
}

static uint16_t
cksum(const char *p, int len)
{
	const uint8_t *b = (const uint8_t *)p;
	uint32_t sum = 0;
	int i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	if (len & 1)
		sum += (uint32_t)b[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ((uint16_t)~sum);
}

/* The peer's answer goes up as a received frame addressed to us. */
static void
peer_send(int len)
{
	struct mbuf *m;

	copy(st_reply, st_lla, INFINIBAND_ADDR_LEN);
	m = m_devget(st_reply, len, 0, st_ifp, NULL);
	if (m == NULL) {
		if_inc_counter(st_ifp, IFCOUNTER_IQDROPS, 1);
		return;
	}
	if_inc_counter(st_ifp, IFCOUNTER_IPACKETS, 1);
	if_input(st_ifp, m);
}

static void
peer(int len)
{
	char *a = st_frame + INFINIBAND_HDR_LEN, *r = st_reply + INFINIBAND_HDR_LEN;
	int type = (uint8_t)st_frame[20] << 8 | (uint8_t)st_frame[21];
	int hl, n = len - INFINIBAND_HDR_LEN;
	uint16_t c;

	if (type == 0x0806 && n >= 56 && a[7] == 1 && rd32(a + 52) == PEER_IP) {
		/* ARP request for the peer: the reply (hrd 32, pro 0x800, hln 20, pln 4). */
		copy(r, a, 8);
		r[7] = 2;
		copy(r + 8, st_peer, 20);
		copy(r + 28, a + 52, 4);
		copy(r + 32, a + 8, 24);
		st_reply[20] = 0x08;
		st_reply[21] = 0x06;
		st_reply[22] = st_reply[23] = 0;
		peer_send(INFINIBAND_HDR_LEN + 56);
	} else if (type == 0x0800 && n >= 28 && rd32(a + 16) == PEER_IP) {
		hl = (a[0] & 0x0f) * 4;
		if (a[9] == 1 && n >= hl + 8 && (uint8_t)a[hl] == 8) {
			/* ICMP echo request: the reply, addresses swapped. */
			copy(st_reply, st_frame, len);
			copy(r + 12, a + 16, 4);
			copy(r + 16, a + 12, 4);
			r[hl] = 0;
			r[hl + 2] = r[hl + 3] = 0;
			c = cksum(r + hl, n - hl);
			r[hl + 2] = c >> 8;
			r[hl + 3] = c & 0xff;
			peer_send(len);
		} else if (a[9] == 17 && n >= hl + 8) {
			c = (uint8_t)a[hl + 2] << 8 | (uint8_t)a[hl + 3];
			if (c == 9) {
				printf("selftest: peer takes the link down\n");
				if_link_state_change(st_ifp, LINK_STATE_DOWN);
			} else if (c == 7) {
				printf("selftest: peer brings the link up\n");
				if_link_state_change(st_ifp, LINK_STATE_UP);
			}
		}
	}
}

static int
st_transmit(if_t ifp, struct mbuf *m)
{
	u_int len = m_length(m, NULL);

	if (len < INFINIBAND_HDR_LEN || len > sizeof(st_frame)) {
		m_freem(m);
		if_inc_counter(ifp, IFCOUNTER_OERRORS, 1);
		return (EMSGSIZE);
	}
	m_copydata(m, 0, len, st_frame);
	m_freem(m);
	if_inc_counter(ifp, IFCOUNTER_OPACKETS, 1);
	peer(len);
	return (0);
}

static void
st_init(void *sc)
{
	if_setdrvflagbits(st_ifp, IFF_DRV_RUNNING, 0);
}

static void
st_qflush(if_t ifp)
{
}

static int
st_ioctl(if_t ifp, u_long cmd, caddr_t data)
{
	struct ifaddr *ifa;
	struct sockaddr_in *sin;
	struct ifreq *ifr = (struct ifreq *)data;
	uint32_t a;

	switch (cmd) {
	case SIOCSIFFLAGS:
		if (if_getflags(ifp) & IFF_UP)
			st_init(if_getsoftc(ifp));
		else
			if_setdrvflagbits(ifp, 0, IFF_DRV_RUNNING);
		printf("selftest: %s SIOCSIFFLAGS %s\n", if_name(ifp),
		    (if_getflags(ifp) & IFF_UP) ? "up" : "down");
		return (0);
	case SIOCSIFADDR:
		if_setflagbits(ifp, IFF_UP, 0);
		st_init(if_getsoftc(ifp));
		ifa = (struct ifaddr *)data;
		sin = (struct sockaddr_in *)ifa->ifa_addr;
		if (sin->sin_family == AF_INET) {
			a = ntohl(sin->sin_addr.s_addr);
			printf("selftest: %s SIOCSIFADDR %u.%u.%u.%u\n", if_name(ifp), a >> 24,
			    (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
			arp_ifinit(ifp, ifa);
		}
		return (0);
	case SIOCSIFMTU:
		if (ifr->ifr_mtu < 72 || ifr->ifr_mtu > 2044)
			return (EINVAL);
		if_setmtu(ifp, ifr->ifr_mtu);
		return (0);
	case SIOCADDMULTI:
	case SIOCDELMULTI:
		return (0);
	default:
		return (EINVAL);
	}
}

static void
ifnet_attach(int keep)
{
	st_keep = keep;
	st_ifp = if_alloc(IFT_INFINIBAND);
	if_initname(st_ifp, "isbib", 0);
	if_setsoftc(st_ifp, &st_ifp);
	if_setflags(st_ifp, IFF_BROADCAST | IFF_MULTICAST | IFF_NEEDSEPOCH);
	if_setinitfn(st_ifp, st_init);
	if_setioctlfn(st_ifp, st_ioctl);
	if_settransmitfn(st_ifp, st_transmit);
	if_setqflushfn(st_ifp, st_qflush);
	infiniband_ifattach(st_ifp, st_lla, st_bcast);
	if_setmtu(st_ifp, 2044);
	if_setbaudrate(st_ifp, 56000000000ULL);
	if_link_state_change(st_ifp, LINK_STATE_UP);
	printf("selftest: attached %s, MTU %d, lladdr %20D, setlladdr %d\n", if_name(st_ifp),
	    if_getmtu(st_ifp), (u_char *)if_getlladdr(st_ifp), ":",
	    if_setlladdr(st_ifp, st_peer, INFINIBAND_ADDR_LEN));
}

static void
ifnet_detach(void)
{
	if (st_ifp == NULL || st_keep)
		return;
	infiniband_ifdetach(st_ifp);
	if_free(st_ifp);
	st_ifp = NULL;
	printf("selftest: detached isbib0\n");
}

/*
 * Mode "sleep": msleep_sbt(9) (_sleep) times out with EWOULDBLOCK and the mutex held again;
 * a wakeup(9) from another thread, which can take the mutex only because the sleeper
 * released it, ends the sleep at once with 0; PDROP returns without the mutex.
 */
static struct mtx sl_mtx;
static int sl_flag, sl_waker_done;

static void
sleep_waker(void *arg)
{
	pause_sbt("stwake", SBT_1MS * 50, 0, C_HARDCLOCK);
	mtx_lock(&sl_mtx);
	sl_flag = 1;
	wakeup(&sl_flag);
	mtx_unlock(&sl_mtx);
	mtx_lock(&sl_mtx);
	sl_waker_done = 1;
	wakeup_one(&sl_waker_done);
	mtx_unlock(&sl_mtx);
	kthread_exit();
}

static void
sleep_test(void)
{
	struct proc *p = NULL;
	struct thread *td = NULL;
	sbintime_t t0, ms;
	int error;

	mtx_init(&sl_mtx, "selftest sleep", NULL, MTX_DEF);
	mtx_lock(&sl_mtx);
	t0 = sbinuptime();
	error = msleep_sbt(&sl_flag, &sl_mtx, 0, "sttmo", SBT_1MS * 100, 0, 0);
	ms = (sbinuptime() - t0) / SBT_1MS;
	printf("selftest: timeout %d owned %d slept %s\n", error, mtx_owned(&sl_mtx),
	    ms >= 100 ? ">= 100 ms" : "< 100 ms");
	error = kproc_kthread_add(sleep_waker, NULL, &p, &td, 0, 0, "stwaker", "%s", "stwaker");
	if (error != 0)
		printf("selftest: kproc_kthread_add %d\n", error);
	t0 = sbinuptime();
	while (!sl_flag) {
		error = msleep_sbt(&sl_flag, &sl_mtx, 0, "stwait", SBT_1S * 10, 0, 0);
		if (error != 0)
			break;
	}
	ms = (sbinuptime() - t0) / SBT_1MS;
	printf("selftest: woken %d flag %d owned %d within 5 s %d\n", error, sl_flag,
	    mtx_owned(&sl_mtx), ms < 5000);
	while (!sl_waker_done)
		msleep_sbt(&sl_waker_done, &sl_mtx, 0, "stdone", SBT_1S * 10, 0, 0);
	error = msleep_sbt(&sl_waker_done, &sl_mtx, PDROP, "stdrop", SBT_1MS * 10, 0, 0);
	printf("selftest: pdrop %d owned %d\n", error, mtx_owned(&sl_mtx));
	mtx_destroy(&sl_mtx);
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
	} else if (same(mode, "ifnet")) {
		ifnet_attach(0);
	} else if (same(mode, "ifnet-leak")) {
		ifnet_attach(1);
	} else if (same(mode, "sleep")) {
		sleep_test();
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
		ifnet_detach();
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
