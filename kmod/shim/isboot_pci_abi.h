/*
 * The numbers the module's HCA access (kmod/src/freebsd_hca.rs, over kernel_bindings::abi's
 * HCA_ABI) relies on, one per line, asserted by isboot_pci.c against the FreeBSD headers and
 * checked against the Rust values by kernel-bindings' `abi_header_matches_rust` (the format of
 * isboot_abi.h). FreeBSD 14 has the same values (sys/bus_dma.h, sys/rman.h,
 * machine/resource.h, x86/include/bus.h, dev/pci/pcireg.h, sys/kobj.h).
 */

/* bus_alloc_resource(9) */
ISBOOT_ABI_CONST(SYS_RES_MEMORY, 3)
ISBOOT_ABI_CONST(RF_ACTIVE, 0x0002)
ISBOOT_ABI_CONST(PCIR_BAR(0), 0x10)
ISBOOT_ABI_CONST(PCIR_BAR(2), 0x18)

/* bus_space(9) on amd64: the memory tag, whose handle is the mapping's address */
ISBOOT_ABI_CONST(X86_BUS_SPACE_MEM, 1)

/* bus_dma(9) flags and sync operations */
ISBOOT_ABI_CONST(BUS_DMA_NOWAIT, 0x01)
ISBOOT_ABI_CONST(BUS_DMA_COHERENT, 0x04)
ISBOOT_ABI_CONST(BUS_DMA_ZERO, 0x08)
ISBOOT_ABI_CONST(BUS_DMASYNC_PREREAD, 1)
ISBOOT_ABI_CONST(BUS_DMASYNC_POSTREAD, 2)
ISBOOT_ABI_CONST(BUS_DMASYNC_PREWRITE, 4)
ISBOOT_ABI_CONST(BUS_DMASYNC_POSTWRITE, 8)

/* bus_dma_segment_t, the load callback's argument (mirrored in Rust) */
ISBOOT_ABI_SIZE(bus_dma_segment_t, 16)
ISBOOT_ABI_OFFSET(bus_dma_segment_t, ds_addr, 0)
ISBOOT_ABI_OFFSET(bus_dma_segment_t, ds_len, 8)

/* struct kobjop_desc: the pci_*_desc symbols (declared as [u64; 3] in Rust) */
ISBOOT_ABI_SIZE(struct kobjop_desc, 24)
