/*
 * The numbers the Rust side (kmod/bindings, crate kernel-bindings) relies on, one per line.
 *
 * The C shim turns every line into a _Static_assert compiled against the FreeBSD headers, and
 * a host test of kernel-bindings (`abi_header_matches_rust`) parses this same file and checks
 * each value against the Rust constant or layout of the same name. A layout drift therefore
 * fails the kld build, and a Rust typo fails `cargo test`.
 *
 *   ISBOOT_ABI_SIZE(type, bytes)          sizeof(type) == bytes
 *   ISBOOT_ABI_ALIGN(type, bytes)         _Alignof(type) == bytes
 *   ISBOOT_ABI_OFFSET(type, field, bytes) offsetof(type, field) == bytes
 *   ISBOOT_ABI_CONST(NAME, value)         NAME == value
 *
 * Keep one item per line: the Rust test reads it with a line parser, not a C preprocessor.
 */

/* Scalar types that appear in the bound prototypes (LP64 amd64). */
ISBOOT_ABI_SIZE(int, 4)
ISBOOT_ABI_SIZE(u_int, 4)
ISBOOT_ABI_SIZE(long, 8)
ISBOOT_ABI_SIZE(size_t, 8)
ISBOOT_ABI_SIZE(intmax_t, 8)
ISBOOT_ABI_SIZE(quad_t, 8)
ISBOOT_ABI_SIZE(caddr_t, 8)
ISBOOT_ABI_SIZE(vm_paddr_t, 8)
ISBOOT_ABI_SIZE(vm_size_t, 8)
ISBOOT_ABI_SIZE(uintptr_t, 8)

/* struct mtx: storage only; Rust passes &mtx_lock to _mtx_init/__mtx_*_flags. */
ISBOOT_ABI_SIZE(struct lock_object, 24)
ISBOOT_ABI_SIZE(struct mtx, 32)
ISBOOT_ABI_ALIGN(struct mtx, 8)
ISBOOT_ABI_OFFSET(struct mtx, lock_object, 0)
ISBOOT_ABI_OFFSET(struct mtx, mtx_lock, 24)

/* struct malloc_type: defined here by MALLOC_DEFINE, used by address from Rust. */
ISBOOT_ABI_SIZE(struct malloc_type, 112)

/* struct sysctl_ctx_list: a TAILQ_HEAD the Rust side owns (boxed, never moved after init). */
ISBOOT_ABI_SIZE(struct sysctl_ctx_list, 16)
ISBOOT_ABI_ALIGN(struct sysctl_ctx_list, 8)
ISBOOT_ABI_OFFSET(struct sysctl_ctx_list, tqh_first, 0)
ISBOOT_ABI_OFFSET(struct sysctl_ctx_list, tqh_last, 8)

/* struct sysctl_oid: only its address is used, as the parent list (children at offset 0). */
ISBOOT_ABI_OFFSET(struct sysctl_oid, oid_children, 0)

/* moduledata_t: built here in C, documented for the Rust entry point. */
ISBOOT_ABI_SIZE(moduledata_t, 24)
ISBOOT_ABI_OFFSET(moduledata_t, name, 0)
ISBOOT_ABI_OFFSET(moduledata_t, evhand, 8)
ISBOOT_ABI_OFFSET(moduledata_t, priv, 16)

/* modeventtype_t */
ISBOOT_ABI_CONST(MOD_LOAD, 0)
ISBOOT_ABI_CONST(MOD_UNLOAD, 1)
ISBOOT_ABI_CONST(MOD_SHUTDOWN, 2)
ISBOOT_ABI_CONST(MOD_QUIESCE, 3)

/* malloc(9) flags */
ISBOOT_ABI_CONST(M_NOWAIT, 0x0001)
ISBOOT_ABI_CONST(M_WAITOK, 0x0002)
ISBOOT_ABI_CONST(M_ZERO, 0x0100)

/* sysctl(9) kinds, flags and numbers */
ISBOOT_ABI_CONST(CTLTYPE, 0xf)
ISBOOT_ABI_CONST(CTLTYPE_NODE, 1)
ISBOOT_ABI_CONST(CTLTYPE_INT, 2)
ISBOOT_ABI_CONST(CTLTYPE_STRING, 3)
ISBOOT_ABI_CONST(CTLTYPE_UINT, 6)
ISBOOT_ABI_CONST(CTLTYPE_U64, 9)
ISBOOT_ABI_CONST(CTLFLAG_RD, 0x80000000)
ISBOOT_ABI_CONST(CTLFLAG_TUN, 0x00080000)
ISBOOT_ABI_CONST(CTLFLAG_NOFETCH, 0x00001000)
ISBOOT_ABI_CONST(CTLFLAG_MPSAFE, 0x00040000)
ISBOOT_ABI_CONST(OID_AUTO, -1)

/* mtx_init(9) options */
ISBOOT_ABI_CONST(MTX_DEF, 0)
ISBOOT_ABI_CONST(MTX_SPIN, 1)

/* errno values returned from the module event handler */
ISBOOT_ABI_CONST(ENXIO, 6)
ISBOOT_ABI_CONST(ENOMEM, 12)
ISBOOT_ABI_CONST(EINVAL, 22)
ISBOOT_ABI_CONST(EOPNOTSUPP, 45)
