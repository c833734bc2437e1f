/*
 * isboot.ko: the C half of the module's HCA access (Rust: kmod/src/freebsd_hca.rs).
 *
 * Only KPIs that are static inline functions on FreeBSD 14 amd64 live here:
 *   - pci_read_config(9), pci_write_config(9), pci_enable_busmaster(9): dev/pci/pcivar.h
 *     inlines over the generated pci_if.h methods (a kobj dispatch on the parent bus);
 *   - bus_dmamem_alloc(9), bus_dmamem_free(9), bus_dmamap_unload(9), bus_dmamap_sync(9):
 *     x86/include/bus_dma.h inlines dispatching through the tag's bus_dma_impl.
 * Everything that is a real kernel function (pci_find_dbsf, device_*, bus_alloc_resource,
 * bus_release_resource, rman_get_*, bus_dma_tag_create/destroy, bus_dmamap_load) is called from
 * Rust directly; MMIO (bus_space_read_4/write_4 on the memory tag) is a volatile access there.
 *
 * The installed headers carry neither dev/pci/pcivar.h nor the pci_if.h that makeobjops.awk
 * generates from sys/dev/pci/pci_if.m in a kernel build, so the three methods are declared
 * here as that generated header declares them (14's pci_if.m: read_config returns u_int32_t
 * and takes (dev, child, reg, width); write_config (dev, child, reg, val, width);
 * enable_busmaster returns int and takes (dev, child)), dispatched with <sys/kobj.h>'s own
 * KOBJOPLOOKUP, and called on device_get_parent(dev) as pcivar.h's inlines do.
 */
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/bus.h>
#include <sys/kobj.h>
#include <machine/bus.h>
#include <machine/resource.h>
#include <sys/rman.h>
#include <sys/bus_dma.h>
#include <dev/pci/pcireg.h>

#include <stddef.h>

#include "isboot_pci.h"

#define	ISBOOT_ABI_SIZE(t, n)		_Static_assert(sizeof(t) == (n), "sizeof(" #t ")");
#define	ISBOOT_ABI_ALIGN(t, n)		_Static_assert(_Alignof(t) == (n), "_Alignof(" #t ")");
#define	ISBOOT_ABI_OFFSET(t, f, n)	_Static_assert(offsetof(t, f) == (n), "offsetof(" #t ", " #f ")");
#define	ISBOOT_ABI_CONST(c, v)		_Static_assert((c) == (v), #c);
#include "isboot_pci_abi.h"

/* --- pci_if.h, as generated from 14's sys/dev/pci/pci_if.m --------------------------------- */

extern struct kobjop_desc pci_read_config_desc;
typedef u_int32_t pci_read_config_t(device_t dev, device_t child, int reg, int width);

extern struct kobjop_desc pci_write_config_desc;
typedef void pci_write_config_t(device_t dev, device_t child, int reg, u_int32_t val,
    int width);

extern struct kobjop_desc pci_enable_busmaster_desc;
typedef int pci_enable_busmaster_t(device_t dev, device_t child);

static __inline u_int32_t
PCI_READ_CONFIG(device_t dev, device_t child, int reg, int width)
{
	kobjop_t _m;

	KOBJOPLOOKUP(((kobj_t)dev)->ops, pci_read_config);
	return (((pci_read_config_t *)_m)(dev, child, reg, width));
}

static __inline void
PCI_WRITE_CONFIG(device_t dev, device_t child, int reg, u_int32_t val, int width)
{
	kobjop_t _m;

	KOBJOPLOOKUP(((kobj_t)dev)->ops, pci_write_config);
	((pci_write_config_t *)_m)(dev, child, reg, val, width);
}

static __inline int
PCI_ENABLE_BUSMASTER(device_t dev, device_t child)
{
	kobjop_t _m;

	KOBJOPLOOKUP(((kobj_t)dev)->ops, pci_enable_busmaster);
	return (((pci_enable_busmaster_t *)_m)(dev, child));
}

/* --- dev/pci/pcivar.h's inlines -------------------------------------------------------------- */

uint32_t
isboot_pci_read_config(device_t dev, int reg, int width)
{
	return (PCI_READ_CONFIG(device_get_parent(dev), dev, reg, width));
}

void
isboot_pci_write_config(device_t dev, int reg, uint32_t val, int width)
{
	PCI_WRITE_CONFIG(device_get_parent(dev), dev, reg, val, width);
}

int
isboot_pci_enable_busmaster(device_t dev)
{
	return (PCI_ENABLE_BUSMASTER(device_get_parent(dev), dev));
}

/* --- x86/include/bus_dma.h's inlines ---------------------------------------------------------- */

int
isboot_dmamem_alloc(bus_dma_tag_t tag, void **vaddr, int flags, bus_dmamap_t *mapp)
{
	return (bus_dmamem_alloc(tag, vaddr, flags, mapp));
}

void
isboot_dmamem_free(bus_dma_tag_t tag, void *vaddr, bus_dmamap_t map)
{
	bus_dmamem_free(tag, vaddr, map);
}

void
isboot_dmamap_unload(bus_dma_tag_t tag, bus_dmamap_t map)
{
	bus_dmamap_unload(tag, map);
}

void
isboot_dmamap_sync(bus_dma_tag_t tag, bus_dmamap_t map, int op)
{
	bus_dmamap_sync(tag, map, op);
}
