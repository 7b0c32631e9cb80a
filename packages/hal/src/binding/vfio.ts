/**
 * VFIO drivers: `vfio-pci` and the variant drivers built on vfio-pci-core, which the kernel names
 * `<vendor>_..._vfio_pci` (`nvgrace_gpu_vfio_pci` for Grace, `mlx5_vfio_pci`...). They pass a device
 * through just as well; refusing them was a known upstream bug. One rule for every operand.
 */
export function isVfioDriver(driver: string | undefined): boolean {
  return driver !== undefined && (driver === 'vfio-pci' || /(^|[_-])vfio[_-]pci$/.test(driver));
}

/**
 * Whether a member of an IOMMU group lets VFIO open the group: the kernel requires every member to
 * be on a VFIO driver, unbound, or on a driver it allows beside VFIO (pci-stub, and pcieport for
 * bridges). One member on a host driver (snd_hda_intel, mlx5_core, nvidia) makes the group unusable.
 */
export function isViableGroupMember(driver: string | undefined, isBridge: boolean): boolean {
  return driver === undefined || isVfioDriver(driver) || driver === 'pci-stub' || driver === 'pcieport' || isBridge;
}
