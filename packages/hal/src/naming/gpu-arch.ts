/**
 * A GPU's chip and architecture from its PCI device ID alone, the way NVIDIA's gpu-admin-tools
 * decides CC capability (`gpu/devid_chips.py`; docs/facts/cc-mode.md#capability-by-device-id): the
 * Blackwell ranges are checked first, the Hopper range only when none matched. What a confidential
 * VM may hold depends on it (docs/facts/cc-topology.md#the-rules), so the device plugin, cc-manager
 * and the simulator read the one table here. The marketing name (pci.ids) is a label, never the key.
 */

export type GpuArch = 'hopper' | 'blackwell' | 'pre-hopper';

/**
 * `datacenter`: an HGX/SXM part whose GPUs talk over NVLink (B200, B300), able to go multi-GPU in a
 * confidential VM on Blackwell; `pcie`: a PCIe-only part (RTX PRO 6000 Blackwell Server Edition,
 * gb20x chips), single GPU only.
 */
export type GpuClass = 'datacenter' | 'pcie';

export interface GpuChip {
  chip: string;
  arch: GpuArch;
  class: GpuClass;
}

interface ChipRange extends GpuChip {
  first: number;
  last: number;
}

/** gpu-admin-tools v2025.10.20 `gpu/devid_chips.py`: Blackwell ranges, checked first. */
export const BLACKWELL_CHIPS: readonly ChipRange[] = [
  { first: 0x2900, last: 0x297f, chip: 'gb100', arch: 'blackwell', class: 'datacenter' },
  { first: 0x2980, last: 0x29ff, chip: 'gb102', arch: 'blackwell', class: 'datacenter' },
  { first: 0x3180, last: 0x31ff, chip: 'gb110', arch: 'blackwell', class: 'datacenter' },
  { first: 0x3200, last: 0x327f, chip: 'gb112', arch: 'blackwell', class: 'datacenter' },
  { first: 0x2b80, last: 0x2bff, chip: 'gb202', arch: 'blackwell', class: 'pcie' },
  { first: 0x2c00, last: 0x2c7f, chip: 'gb203', arch: 'blackwell', class: 'pcie' },
  { first: 0x2f00, last: 0x2f7f, chip: 'gb205', arch: 'blackwell', class: 'pcie' },
  { first: 0x2d00, last: 0x2d7f, chip: 'gb206', arch: 'blackwell', class: 'pcie' },
  { first: 0x2d80, last: 0x2dff, chip: 'gb207', arch: 'blackwell', class: 'pcie' },
];

/** The same file's Hopper range (gh100), checked only when no Blackwell range matched. */
export const HOPPER_CHIP: ChipRange = {
  first: 0x22f0,
  last: 0x237f,
  chip: 'gh100',
  arch: 'hopper',
  class: 'datacenter',
};

/** NVSwitch gen3 (Hopper era, `10de:22a3`): the only switch that takes PPCIe. */
export const NVSWITCH_GEN3_DEVICE_ID = 0x22a3;

/** The chip of an NVIDIA GPU's PCI device ID; `pre-hopper` (no CC) when no range holds it. */
export function gpuChipOf(deviceId: number): GpuChip {
  const range = [...BLACKWELL_CHIPS, HOPPER_CHIP].find((r) => deviceId >= r.first && deviceId <= r.last);
  if (range === undefined) return { chip: 'unknown', arch: 'pre-hopper', class: 'pcie' };
  return { chip: range.chip, arch: range.arch, class: range.class };
}

/** The architecture of an NVIDIA GPU's PCI device ID. */
export function gpuArchOf(deviceId: number): GpuArch {
  return gpuChipOf(deviceId).arch;
}
