/*
 * isboot.ko: the C half of the boot thread (Rust: kmod/src/freebsd_boot.rs).
 *
 * Only what Rust cannot do without mirroring a kernel structure lives here:
 *   - kernel sockets: socreate(9) with the thread's credential, a connect that waits, and
 *     sosend(9)/soreceive(9) through a struct uio;
 *   - interfaces: IFF_UP and SIOCAIFADDR through ifioctl() on a UDP socket (what
 *     ifconfig(8) does; ifioctl() sets the socket's vnet);
 *   - the CAM SIM: its action routine (PATH_INQ, GET/SET_TRAN_SETTINGS, CALC_GEOMETRY and
 *     RESET_BUS answered here; SCSI_IO, ABORT and RESET_DEV queued for the Rust thread), the
 *     CCB fields the Rust side needs, completion (data and sense copied, the device queue
 *     frozen when the status says so, xpt_done), the SIM queue freeze, the scan, the name of
 *     the da(4) unit that attached, and whether its GEOM provider is open.
 *
 * Every layout this file relies on is pinned in isboot_boot_abi.h (compiled below). Nothing
 * here sets curthread->td_vnet (CURVNET_SET): its offset in struct thread differs between 14
 * and 15, whose headers the cross build uses. The kernel socket calls set the socket's vnet
 * themselves, so Rust lists interfaces and looks routes up with rtnetlink messages on a
 * netlink socket, and adds routes with RTM_ADD on a routing socket (kmod/src/netlink.rs,
 * kmod/src/rtmsg.rs): wire formats, not kernel structures.
 */
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/malloc.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/sx.h>
#include <sys/proc.h>
#include <sys/socket.h>
#include <sys/socketvar.h>
#include <sys/sockopt.h>
#include <sys/sockio.h>
#include <sys/uio.h>
#include <sys/time.h>

#include <net/if.h>
#include <net/if_var.h>
#include <net/if_types.h>
#include <net/infiniband.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netinet/in_var.h>
#include <netinet/if_ether.h>
#include <netinet/tcp.h>
#include <netinet/tcp_fsm.h>
#include <netlink/netlink.h>
#include <netlink/route/common.h>
#include <netlink/route/interface.h>
#include <netlink/route/ifaddrs.h>
#include <netlink/route/route.h>
#include <netinet/tcp_fsm.h>

#include <geom/geom.h>

#include <cam/cam.h>
#include <cam/cam_ccb.h>
#include <cam/cam_sim.h>
#include <cam/cam_xpt.h>
#include <cam/cam_xpt_sim.h>
#include <cam/cam_periph.h>
#include <cam/scsi/scsi_all.h>

#include <stddef.h>

#include "isboot_boot.h"

#define	ISBOOT_ABI_SIZE(t, n)		_Static_assert(sizeof(t) == (n), "sizeof(" #t ")");
#define	ISBOOT_ABI_ALIGN(t, n)		_Static_assert(_Alignof(t) == (n), "_Alignof(" #t ")");
#define	ISBOOT_ABI_OFFSET(t, f, n)	_Static_assert(offsetof(t, f) == (n), "offsetof(" #t ", " #f ")");
#define	ISBOOT_ABI_CONST(c, v)		_Static_assert((c) == (v), #c);
#include "isboot_boot_abi.h"

/* ---------------------------------------------------------------------------------------- */
/* Kernel sockets                                                                             */

/*
 * The thread's credential. A kernel process's threads carry proc0's credential; it is read
 * through td_proc->p_ucred, whose offsets (8 and 64) are the same in every release since
 * FreeBSD 8 (isboot_boot_abi.h), rather than td_ucred further into struct thread.
 */
static struct ucred *
isboot_cred(void)
{
	return (curthread->td_proc->p_ucred);
}

int
isboot_so_create(int dom, int type, int proto, struct socket **sop)
{
	/* socreate() sets the socket's vnet from the credential (prison0: vnet0). */
	return (socreate(dom, sop, type, proto, isboot_cred(), curthread));
}

int
isboot_so_close(struct socket *so)
{
	return (soclose(so));
}

int
isboot_so_setopt_int(struct socket *so, int level, int name, int value)
{
	return (so_setsockopt(so, level, name, &value, sizeof(value)));
}

int
isboot_so_setopt_timeout(struct socket *so, int name, uint64_t usec)
{
	struct timeval tv;

	tv.tv_sec = usec / 1000000;
	tv.tv_usec = usec % 1000000;
	return (so_setsockopt(so, SOL_SOCKET, name, &tv, sizeof(tv)));
}

/*
 * getsockopt for a kernel caller: sopt_td NULL makes sooptcopyout() bcopy. The whole struct
 * is zeroed, so the fields 15 added (sopt_rights, before sopt_td) read as NULL on 14 too,
 * whose sopt_td sits where 15's sopt_rights does.
 */
static int
isboot_so_getopt(struct socket *so, int level, int name, void *val, size_t len)
{
	struct sockopt sopt;

	bzero(&sopt, sizeof(sopt));
	sopt.sopt_dir = SOPT_GET;
	sopt.sopt_level = level;
	sopt.sopt_name = name;
	sopt.sopt_val = val;
	sopt.sopt_valsize = len;
	return (sogetopt(so, &sopt));
}

int
isboot_so_connect4(struct socket *so, uint32_t addr, uint16_t port, uint32_t timeout_ms)
{
	struct sockaddr_in sin;
	struct tcp_info ti;
	uint32_t waited;
	int error, soerr;

	bzero(&sin, sizeof(sin));
	sin.sin_len = sizeof(sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(addr);
	error = soconnect(so, (struct sockaddr *)&sin, curthread);
	if (error != 0)
		return (error);
	/*
	 * soconnect() only starts the handshake. Poll the outcome every 10 ms through
	 * getsockopt (SO_ERROR, TCP_INFO's tcpi_state): no struct socket field is read.
	 */
	for (waited = 0;; waited += 10) {
		soerr = 0;
		error = isboot_so_getopt(so, SOL_SOCKET, SO_ERROR, &soerr, sizeof(soerr));
		if (error != 0)
			return (error);
		if (soerr != 0)
			return (soerr);
		bzero(&ti, sizeof(ti));
		error = isboot_so_getopt(so, IPPROTO_TCP, TCP_INFO, &ti, sizeof(ti));
		if (error != 0)
			return (error);
		if (ti.tcpi_state == TCPS_ESTABLISHED)
			return (0);
		if (ti.tcpi_state == TCPS_CLOSED)
			return (ECONNREFUSED);
		if (waited >= timeout_ms)
			return (ETIMEDOUT);
		pause_sbt("isbconn", SBT_1MS * 10, 0, C_HARDCLOCK);
	}
}

int
isboot_so_send(struct socket *so, const void *buf, size_t len, size_t *sent)
{
	struct iovec iov;
	struct uio uio;
	int error;

	iov.iov_base = __DECONST(void *, buf);
	iov.iov_len = len;
	uio.uio_iov = &iov;
	uio.uio_iovcnt = 1;
	uio.uio_offset = 0;
	uio.uio_resid = len;
	uio.uio_segflg = UIO_SYSSPACE;
	uio.uio_rw = UIO_WRITE;
	uio.uio_td = curthread;
	error = sosend(so, NULL, &uio, NULL, NULL, 0, curthread);
	*sent = len - uio.uio_resid;
	return (error);
}

int
isboot_so_recv(struct socket *so, void *buf, size_t len, int flags, size_t *got)
{
	struct iovec iov;

	iov.iov_base = buf;
	iov.iov_len = len;
	return (isboot_so_recvv(so, &iov, 1, flags, got));
}

/* soreceive(9) into iov[0..iovcnt), each filled before the next (uiomove advances them). */
int
isboot_so_recvv(struct socket *so, struct iovec *iov, int iovcnt, int flags, size_t *got)
{
	struct uio uio;
	size_t len;
	int error, fl, i;

	len = 0;
	for (i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	uio.uio_iov = iov;
	uio.uio_iovcnt = iovcnt;
	uio.uio_offset = 0;
	uio.uio_resid = len;
	uio.uio_segflg = UIO_SYSSPACE;
	uio.uio_rw = UIO_READ;
	uio.uio_td = curthread;
	fl = flags;
	error = soreceive(so, NULL, &uio, NULL, NULL, &fl);
	*got = len - uio.uio_resid;
	return (error);
}

/* ---------------------------------------------------------------------------------------- */
/* Interfaces                                                                                 */

/* ifioctl() on a UDP socket, as ifconfig(8) does: ifioctl() sets the socket's vnet. */
static int
isboot_ifioctl(u_long cmd, void *data)
{
	struct socket *so;
	int error;

	error = isboot_so_create(AF_INET, SOCK_DGRAM, 0, &so);
	if (error != 0)
		return (error);
	error = ifioctl(so, cmd, data, curthread);
	soclose(so);
	return (error);
}

int
isboot_if_up(const char *name)
{
	struct ifreq ifr;
	int error, flags;

	bzero(&ifr, sizeof(ifr));
	strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	error = isboot_ifioctl(SIOCGIFFLAGS, &ifr);
	if (error != 0)
		return (error);
	flags = (ifr.ifr_flags & 0xffff) | (ifr.ifr_flagshigh << 16);
	if ((flags & IFF_UP) != 0)
		return (0);
	flags |= IFF_UP;
	ifr.ifr_flags = flags & 0xffff;
	ifr.ifr_flagshigh = flags >> 16;
	return (isboot_ifioctl(SIOCSIFFLAGS, &ifr));
}

static void
isboot_sin(struct sockaddr_in *sin, uint32_t addr)
{
	bzero(sin, sizeof(*sin));
	sin->sin_len = sizeof(*sin);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(addr);
}

int
isboot_if_addr4(const char *name, uint32_t addr, uint32_t mask)
{
	struct in_aliasreq ifra;

	bzero(&ifra, sizeof(ifra));
	strlcpy(ifra.ifra_name, name, sizeof(ifra.ifra_name));
	isboot_sin(&ifra.ifra_addr, addr);
	isboot_sin(&ifra.ifra_mask, mask);
	isboot_sin(&ifra.ifra_broadaddr, (addr & mask) | ~mask);
	/* in_control(SIOCAIFADDR): the address and its prefix route; nothing is removed. */
	return (isboot_ifioctl(SIOCAIFADDR, &ifra));
}

/* ---------------------------------------------------------------------------------------- */
/* The CAM SIM                                                                                */

MALLOC_DECLARE(M_ISBOOT);

/* Interfaces and routes go through netlink(4): have loader(8)/kldload load it if needed. */
MODULE_DEPEND(isboot, netlink, 1, 1, 1);
/* The SIM needs CAM. */
MODULE_DEPEND(isboot, cam, 1, 1, 1);
/*
 * The IPoIB interface (kmod/src/freebsd_ifnet.rs) needs the InfiniBand link layer
 * (infiniband_ifattach, sys/net/if_infiniband.c): module if_infiniband, compiled into the
 * kernel only with "options OFED" or "device lagg" (sys/conf/files), else if_infiniband.ko.
 */
MODULE_DEPEND(isboot, if_infiniband, 1, 1, 1);

static struct isboot_sim {
	struct mtx		 lock;		/* the SIM mutex (CAM holds it in the action) */
	struct cam_devq		*devq;
	struct cam_sim		*sim;
	struct cam_path		*path;		/* wildcard path of our bus */
	TAILQ_HEAD(, ccb_hdr)	 queue;		/* CCBs for the boot thread */
	volatile u_int		 pending;	/* length of queue */
	int			 inited;
	int			 registered;
	int			 dead;		/* the thread is gone: refuse new CCBs */
	path_id_t		 path_id;
	struct isboot_pathinq	 inq;
	char			 device[16];	/* "da0" once attached */
	struct mtx		*wake_mtx;	/* the receive ring's mutex (freebsd_boot.rs) */
	const void		*wake_chan;	/* ... and the channel its reader sleeps on */
} isboot_sim;

static void
isboot_cam_poll(struct cam_sim *sim)
{
	/* Completions come from the boot thread; there is no interrupt to poll. */
}

static void
isboot_pathinq(union ccb *ccb)
{
	struct ccb_pathinq *cpi = &ccb->cpi;
	const struct isboot_pathinq *inq = &isboot_sim.inq;

	cpi->version_num = 1;
	cpi->hba_inquiry = inq->hba_inquiry;
	cpi->target_sprt = 0;
	cpi->hba_misc = inq->hba_misc;
	cpi->hba_eng_cnt = 0;
	cpi->max_target = inq->max_target;
	cpi->max_lun = inq->max_lun;
	cpi->initiator_id = ~0;
	strlcpy(cpi->sim_vid, "FreeBSD", SIM_IDLEN);
	strlcpy(cpi->hba_vid, "isboot", HBA_IDLEN);
	strlcpy(cpi->dev_name, "isboot", DEV_IDLEN);
	cpi->unit_number = 0;
	cpi->bus_id = 0;
	cpi->base_transfer_speed = inq->base_transfer_speed;
	cpi->protocol = inq->protocol;
	cpi->protocol_version = inq->protocol_version;
	cpi->transport = inq->transport;
	cpi->transport_version = 0;
	cpi->maxio = inq->maxio;
	isboot_sim.path_id = ccb->ccb_h.path_id;
	ccb->ccb_h.status = CAM_REQ_CMP;
}

/* Called by CAM with the SIM mutex held; never sleeps. */
static void
isboot_cam_action(struct cam_sim *sim, union ccb *ccb)
{
	struct ccb_trans_settings *cts;

	mtx_assert(&isboot_sim.lock, MA_OWNED);
	switch (ccb->ccb_h.func_code) {
	case XPT_PATH_INQ:
		isboot_pathinq(ccb);
		break;
	case XPT_GET_TRAN_SETTINGS:
		cts = &ccb->cts;
		cts->protocol = isboot_sim.inq.protocol;
		cts->protocol_version = isboot_sim.inq.protocol_version;
		cts->transport = isboot_sim.inq.transport;
		cts->transport_version = 0;
		cts->proto_specific.scsi.valid = CTS_SCSI_VALID_TQ;
		cts->proto_specific.scsi.flags = CTS_SCSI_FLAGS_TAG_ENB;
		ccb->ccb_h.status = CAM_REQ_CMP;
		break;
	case XPT_SET_TRAN_SETTINGS:
		/* Nothing to negotiate: iSCSI settings are the login's. */
		ccb->ccb_h.status = CAM_REQ_CMP;
		break;
	case XPT_CALC_GEOMETRY:
		cam_calc_geometry(&ccb->ccg, 1);
		break;
	case XPT_RESET_BUS:
		/* There is no bus: nothing to reset (PIM_NOBUSRESET is advertised). */
		ccb->ccb_h.status = CAM_REQ_CMP;
		break;
	case XPT_SCSI_IO:
		if ((ccb->ccb_h.flags & CAM_DATA_MASK) != CAM_DATA_VADDR) {
			/* Only virtual addresses: PIM_UNMAPPED is not advertised. */
			ccb->ccb_h.status = CAM_REQ_INVALID;
			break;
		}
		/* FALLTHROUGH */
	case XPT_ABORT:
	case XPT_RESET_DEV:
		if (isboot_sim.dead) {
			ccb->ccb_h.status = CAM_DEV_NOT_THERE;
			break;
		}
		ccb->ccb_h.status = CAM_REQ_INPROG;
		TAILQ_INSERT_TAIL(&isboot_sim.queue, &ccb->ccb_h, sim_links.tqe);
		atomic_add_int(&isboot_sim.pending, 1);
		/*
		 * Wake the boot thread if it sleeps in its receive (freebsd_boot.rs). It checks
		 * `pending` and goes to sleep with wake_mtx held, so taking wake_mtx here means the
		 * wakeup finds it asleep or it sees the CCB (lock order: SIM mutex, then wake_mtx).
		 */
		if (isboot_sim.wake_mtx != NULL) {
			mtx_lock(isboot_sim.wake_mtx);
			wakeup(isboot_sim.wake_chan);
			mtx_unlock(isboot_sim.wake_mtx);
		}
		return;
	default:
		ccb->ccb_h.status = CAM_FUNC_NOTAVAIL;
		break;
	}
	xpt_done(ccb);
}

int
isboot_cam_register(const struct isboot_pathinq *inq, uint32_t openings)
{
	union ccb *scan;
	struct cam_path *spath;
	int error;

	if (isboot_sim.registered)
		return (EBUSY);
	if (!isboot_sim.inited) {
		mtx_init(&isboot_sim.lock, "isboot sim", NULL, MTX_DEF);
		TAILQ_INIT(&isboot_sim.queue);
		isboot_sim.inited = 1;
	}
	isboot_sim.inq = *inq;
	isboot_sim.dead = 0;
	isboot_sim.device[0] = '\0';
	isboot_sim.devq = cam_simq_alloc(openings);
	if (isboot_sim.devq == NULL)
		return (ENOMEM);
	isboot_sim.sim = cam_sim_alloc(isboot_cam_action, isboot_cam_poll, "isboot",
	    &isboot_sim, 0, &isboot_sim.lock, 1, openings, isboot_sim.devq);
	if (isboot_sim.sim == NULL) {
		cam_simq_free(isboot_sim.devq);
		isboot_sim.devq = NULL;
		return (ENOMEM);
	}
	mtx_lock(&isboot_sim.lock);
	/* Issues XPT_PATH_INQ (isboot_pathinq records the path id). */
	if (xpt_bus_register(isboot_sim.sim, NULL, 0) != CAM_SUCCESS) {
		mtx_unlock(&isboot_sim.lock);
		cam_sim_free(isboot_sim.sim, TRUE);
		isboot_sim.sim = NULL;
		isboot_sim.devq = NULL;
		return (EIO);
	}
	isboot_sim.registered = 1;
	error = 0;
	if (xpt_create_path(&isboot_sim.path, NULL, cam_sim_path(isboot_sim.sim),
	    CAM_TARGET_WILDCARD, CAM_LUN_WILDCARD) != CAM_REQ_CMP)
		error = ENOMEM;
	mtx_unlock(&isboot_sim.lock);
	if (error != 0) {
		isboot_cam_deregister();
		return (error);
	}
	/*
	 * Scan the bus (xpt_bus_register() may have started one already; CAM queues scans).
	 * xpt_rescan() takes the CCB and its path.
	 */
	scan = xpt_alloc_ccb_nowait();
	if (scan != NULL) {
		if (xpt_create_path(&spath, NULL, cam_sim_path(isboot_sim.sim),
		    CAM_TARGET_WILDCARD, CAM_LUN_WILDCARD) == CAM_REQ_CMP) {
			scan->ccb_h.path = spath;
			xpt_rescan(scan);
		} else
			xpt_free_ccb(scan);
	}
	return (0);
}

/* The name of the da(4) unit on target 0, LUN 0, into name (empty while none). */
int
isboot_cam_device(char *name, size_t len)
{
	struct cam_path *path;
	struct cam_periph *periph;
	struct mtx *mtx;

	name[0] = '\0';
	if (!isboot_sim.registered)
		return (ENXIO);
	if (xpt_create_path(&path, NULL, cam_sim_path(isboot_sim.sim), 0, 0) != CAM_REQ_CMP)
		return (ENOMEM);
	mtx = xpt_path_mtx(path);
	mtx_lock(mtx);
	periph = cam_periph_find(path, "da");
	if (periph != NULL)
		snprintf(name, len, "%s%u", periph->periph_name, periph->unit_number);
	mtx_unlock(mtx);
	xpt_free_path(path);
	if (name[0] != '\0')
		strlcpy(isboot_sim.device, name, sizeof(isboot_sim.device));
	return (0);
}

/* acr + acw + ace of the disk's GEOM provider, or -1 without one (geom(4)). */
int
isboot_disk_opens(const char *name)
{
	struct g_provider *pp;
	int n;

	if (name[0] == '\0')
		return (-1);
	g_topology_lock();
	pp = g_provider_by_name(name);
	n = pp != NULL ? pp->acr + pp->acw + pp->ace : -1;
	g_topology_unlock();
	return (n);
}

/*
 * The mutex and channel the action routine wakes after queueing a CCB (NULL: none). Set
 * under the SIM mutex once it exists, so that the action routine never sees a mutex that is
 * being destroyed.
 */
void
isboot_cam_set_wake(struct mtx *m, const void *chan)
{
	if (isboot_sim.inited)
		mtx_lock(&isboot_sim.lock);
	isboot_sim.wake_mtx = m;
	isboot_sim.wake_chan = chan;
	if (isboot_sim.inited)
		mtx_unlock(&isboot_sim.lock);
}

u_int
isboot_cam_pending(void)
{
	return (atomic_load_acq_int(&isboot_sim.pending));
}

/* Takes the oldest queued CCB and describes it; 0 when there is none. */
int
isboot_cam_next(struct isboot_ccb *out)
{
	struct ccb_hdr *h;
	union ccb *ccb;
	struct ccb_scsiio *csio;

	if (!isboot_sim.registered)
		return (0);
	mtx_lock(&isboot_sim.lock);
	h = TAILQ_FIRST(&isboot_sim.queue);
	if (h != NULL) {
		TAILQ_REMOVE(&isboot_sim.queue, h, sim_links.tqe);
		atomic_subtract_int(&isboot_sim.pending, 1);
	}
	mtx_unlock(&isboot_sim.lock);
	if (h == NULL)
		return (0);
	ccb = (union ccb *)h;
	bzero(out, sizeof(*out));
	out->ccb = ccb;
	out->func_code = h->func_code;
	out->target = h->target_id;
	out->lun = h->target_lun;
	out->flags = h->flags;
	switch (h->func_code) {
	case XPT_SCSI_IO:
		csio = &ccb->csio;
		out->cdb_len = csio->cdb_len;
		if (csio->cdb_len <= sizeof(out->cdb)) {
			if ((h->flags & CAM_CDB_POINTER) != 0)
				memcpy(out->cdb, csio->cdb_io.cdb_ptr, csio->cdb_len);
			else
				memcpy(out->cdb, csio->cdb_io.cdb_bytes, csio->cdb_len);
		}
		out->dxfer_len = csio->dxfer_len;
		out->sense_len = csio->sense_len;
		out->data = csio->data_ptr;
		break;
	case XPT_ABORT:
		out->abort_ccb = ccb->cab.abort_ccb;
		break;
	default:
		break;
	}
	return (1);
}

static void
isboot_ccb_done(union ccb *ccb, uint32_t status)
{
	/* CAM_DEV_QFRZN promises CAM that the device queue is frozen: freeze it first. */
	if ((status & CAM_DEV_QFRZN) != 0)
		xpt_freeze_devq(ccb->ccb_h.path, 1);
	ccb->ccb_h.status = status;
	xpt_done(ccb);
}

void
isboot_cam_complete_scsiio(union ccb *ccb, uint32_t status, uint8_t scsi_status,
    uint32_t resid, const void *data, uint32_t data_len, const void *sense,
    uint8_t sense_len, uint8_t sense_resid)
{
	struct ccb_scsiio *csio = &ccb->csio;

	if (data_len > csio->dxfer_len)
		data_len = csio->dxfer_len;
	if (data_len > 0 && csio->data_ptr != NULL &&
	    (ccb->ccb_h.flags & CAM_DIR_MASK) == CAM_DIR_IN)
		memcpy(csio->data_ptr, data, data_len);
	if (sense_len > csio->sense_len)
		sense_len = csio->sense_len;
	if (sense_len > 0)
		memcpy(&csio->sense_data, sense, sense_len);
	csio->scsi_status = scsi_status;
	csio->resid = resid;
	csio->sense_resid = sense_resid;
	isboot_ccb_done(ccb, status);
}

void
isboot_cam_complete(union ccb *ccb, uint32_t status)
{
	isboot_ccb_done(ccb, status);
}

void
isboot_cam_freeze(int freeze)
{
	if (!isboot_sim.registered)
		return;
	mtx_lock(&isboot_sim.lock);
	if (freeze)
		xpt_freeze_simq(isboot_sim.sim, 1);
	else
		xpt_release_simq(isboot_sim.sim, 1);
	mtx_unlock(&isboot_sim.lock);
}

/* The session is gone for good: refuse new CCBs and fail the queued ones. */
void
isboot_cam_stop(void)
{
	struct ccb_hdr *h;

	if (!isboot_sim.inited)
		return;
	mtx_lock(&isboot_sim.lock);
	isboot_sim.dead = 1;
	while ((h = TAILQ_FIRST(&isboot_sim.queue)) != NULL) {
		TAILQ_REMOVE(&isboot_sim.queue, h, sim_links.tqe);
		atomic_subtract_int(&isboot_sim.pending, 1);
		h->status = CAM_DEV_NOT_THERE;
		xpt_done((union ccb *)h);
	}
	mtx_unlock(&isboot_sim.lock);
}

static void isboot_cam_remove_bus(void);

/*
 * The boot thread is ending: refuse new CCBs, fail the queued ones, and take the bus away
 * (the disk goes with it: AC_LOST_DEVICE, as iscsi(4) does on session removal).
 */
void
isboot_cam_deregister(void)
{
	if (isboot_sim.sim != NULL)
		isboot_cam_remove_bus();
	/* Nothing uses the SIM mutex any more: destroy it (a later register re-creates it). */
	if (isboot_sim.inited) {
		mtx_destroy(&isboot_sim.lock);
		isboot_sim.inited = 0;
	}
}

static void
isboot_cam_remove_bus(void)
{
	isboot_cam_stop();
	mtx_lock(&isboot_sim.lock);
	if (isboot_sim.path != NULL) {
		xpt_async(AC_LOST_DEVICE, isboot_sim.path, NULL);
		xpt_free_path(isboot_sim.path);
		isboot_sim.path = NULL;
	}
	if (isboot_sim.registered)
		xpt_bus_deregister(cam_sim_path(isboot_sim.sim));
	cam_sim_free(isboot_sim.sim, TRUE);
	isboot_sim.sim = NULL;
	isboot_sim.devq = NULL;
	isboot_sim.registered = 0;
	mtx_unlock(&isboot_sim.lock);
}
