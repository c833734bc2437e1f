/*
 * isboot.ko: prototypes of the HCA shim (kmod/shim/isboot_pci.c); the Rust declarations are
 * in kmod/bindings/src/ffi.rs (module `shim`).
 */
#ifndef ISBOOT_PCI_H
#define ISBOOT_PCI_H

uint32_t isboot_pci_read_config(device_t dev, int reg, int width);
void	isboot_pci_write_config(device_t dev, int reg, uint32_t val, int width);
int	isboot_pci_enable_busmaster(device_t dev);
int	isboot_dmamem_alloc(bus_dma_tag_t tag, void **vaddr, int flags, bus_dmamap_t *mapp);
void	isboot_dmamem_free(bus_dma_tag_t tag, void *vaddr, bus_dmamap_t map);
void	isboot_dmamap_unload(bus_dma_tag_t tag, bus_dmamap_t map);
void	isboot_dmamap_sync(bus_dma_tag_t tag, bus_dmamap_t map, int op);

#endif
