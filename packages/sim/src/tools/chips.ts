import { gpuArchOf, NVSWITCH_GEN3_DEVICE_ID } from '@gpucc/hal';
import { NVIDIA } from '../node/spec.js';

/**
 * What gpu-admin-tools knows about an NVIDIA function from its PCI IDs alone
 * (docs/facts/cc-mode.md#capability-by-device-id): GPU or NVSwitch, the chip family, and from that whether CC and
 * PPCIe can be queried and set. The name is only a label; capability comes from the device-ID ranges.
 */

export type NvidiaKind = 'gpu' | 'nvswitch' | 'other';
export type { GpuArch } from '@gpucc/hal';

/** NVSwitch gen3 (Hopper era): the only switch with PPCIe. */
export const NVSWITCH_GEN3 = NVSWITCH_GEN3_DEVICE_ID;
// The real tool maps switches by PMC_BOOT_0; by PCI ID that is gen3 = 0x22a3, LR10 = 0x1af1.
const NVSWITCH_NAMES: Readonly<Record<number, string>> = { [NVSWITCH_GEN3]: 'NVSwitch_gen3', 6897: 'LR10' };

export function nvidiaKind(vendor: number, classCode: number): NvidiaKind {
  if (vendor !== NVIDIA) return 'other';
  if (classCode >> 16 === 0x03) return 'gpu';
  if (classCode >> 8 === 0x0680) return 'nvswitch';
  return 'other';
}

/** The architecture by device ID: hal's chip table, the one gpu-admin-tools uses. */
export const gpuArch = gpuArchOf;

/** CC query and set: Hopper or newer GPUs. */
export function isCcCapable(kind: NvidiaKind, deviceId: number): boolean {
  return kind === 'gpu' && gpuArch(deviceId) !== 'pre-hopper';
}

/** PPCIe: Hopper GPUs and NVSwitch gen3 only (Blackwell uses NVLink encryption instead). */
export function isPpcieCapable(kind: NvidiaKind, deviceId: number): boolean {
  if (kind === 'nvswitch') return deviceId === NVSWITCH_GEN3;
  return kind === 'gpu' && gpuArch(deviceId) === 'hopper';
}

/** The name the tool prints when the node description gives none (`?` is what it prints for unknown chips). */
export function defaultName(kind: NvidiaKind, deviceId: number): string {
  return kind === 'nvswitch' ? (NVSWITCH_NAMES[deviceId] ?? '?') : '?';
}
