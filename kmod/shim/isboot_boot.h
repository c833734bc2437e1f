/*
 * The boot thread's shim interface (isboot_boot.c), shared with the Rust mirror in
 * kmod/bindings/src/abi.rs (layouts asserted on both sides: isboot_boot_abi.h).
 */
#ifndef _ISBOOT_BOOT_H_
#define	_ISBOOT_BOOT_H_

/* What XPT_PATH_INQ answers (kmod/src/cam.rs PathInq). */
struct isboot_pathinq {
	uint8_t		hba_inquiry;
	uint8_t		spare[3];
	uint32_t	hba_misc;
	uint32_t	max_target;
	uint32_t	max_lun;
	uint32_t	maxio;
	uint32_t	base_transfer_speed;
	uint32_t	transport;
	uint32_t	protocol;
	uint32_t	protocol_version;
};

/* A queued CCB as the boot thread needs it. */
union ccb;
struct isboot_ccb {
	union ccb	*ccb;
	union ccb	*abort_ccb;	/* XPT_ABORT: the CCB to abort */
	uint64_t	lun;
	uint32_t	func_code;
	uint32_t	target;
	uint32_t	flags;		/* ccb_h.flags */
	uint32_t	dxfer_len;
	uint8_t		cdb[16];
	uint8_t		cdb_len;
	uint8_t		sense_len;
	uint8_t		spare[6];
	void		*data;		/* XPT_SCSI_IO: csio.data_ptr (CAM_DATA_VADDR) */
};

struct socket;
struct iovec;
struct mtx;

int	isboot_so_create(int dom, int type, int proto, struct socket **sop);
int	isboot_so_close(struct socket *so);
int	isboot_so_setopt_int(struct socket *so, int level, int name, int value);
int	isboot_so_setopt_timeout(struct socket *so, int name, uint64_t usec);
int	isboot_so_connect4(struct socket *so, uint32_t addr, uint16_t port,
	    uint32_t timeout_ms);
int	isboot_so_send(struct socket *so, const void *buf, size_t len, size_t *sent);
int	isboot_so_recv(struct socket *so, void *buf, size_t len, int flags, size_t *got);
int	isboot_so_recvv(struct socket *so, struct iovec *iov, int iovcnt, int flags,
	    size_t *got);

int	isboot_if_up(const char *name);
int	isboot_if_addr4(const char *name, uint32_t addr, uint32_t mask);

int	isboot_cam_register(const struct isboot_pathinq *inq, uint32_t openings);
int	isboot_cam_device(char *name, size_t len);
int	isboot_disk_opens(const char *name);
void	isboot_cam_set_wake(struct mtx *m, const void *chan);
u_int	isboot_cam_pending(void);
int	isboot_cam_next(struct isboot_ccb *out);
void	isboot_cam_complete_scsiio(union ccb *ccb, uint32_t status, uint8_t scsi_status,
	    uint32_t resid, const void *data, uint32_t data_len, const void *sense,
	    uint8_t sense_len, uint8_t sense_resid);
void	isboot_cam_complete(union ccb *ccb, uint32_t status);
void	isboot_cam_freeze(int freeze);
void	isboot_cam_stop(void);
void	isboot_cam_deregister(void);

#endif /* !_ISBOOT_BOOT_H_ */
