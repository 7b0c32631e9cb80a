import { NVIDIA } from '../node/spec.js';

/**
 * What gpu-admin-tools knows about an NVIDIA function from its PCI IDs alone
 * (docs/facts/cc-mode.md#capability-by-device-id): GPU or NVSwitch, the chip family, and from that whether CC and
 * PPCIe can be queried and set. The name is only a label; capability comes from the device-ID ranges.
 */

export type NvidiaKind = 'gpu' | 'nvswitch' | 'other';
export type GpuArch = 'blackwell' | 'hopper' | 'pre-hopper';

interface ChipRange {
  first: number;
  last: number;
  chip: string;
  arch: GpuArch;
}

// Blackwell ranges are checked first; the Hopper range only when none of them matched.
const BLACKWELL: readonly ChipRange[] = [
  { first: 0x2900, last: 0x297f, chip: 'gb100', arch: 'blackwell' },
  { first: 0x2980, last: 0x29ff, chip: 'gb102', arch: 'blackwell' },
  { first: 0x3180, last: 0x31ff, chip: 'gb110', arch: 'blackwell' },
  { first: 0x3200, last: 0x327f, chip: 'gb112', arch: 'blackwell' },
  { first: 0x2b80, last: 0x2bff, chip: 'gb202', arch: 'blackwell' },
  { first: 0x2c00, last: 0x2c7f, chip: 'gb203', arch: 'blackwell' },
  { first: 0x2f00, last: 0x2f7f, chip: 'gb205', arch: 'blackwell' },
  { first: 0x2d00, last: 0x2d7f, chip: 'gb206', arch: 'blackwell' },
  { first: 0x2d80, last: 0x2dff, chip: 'gb207', arch: 'blackwell' },
];
const HOPPER: ChipRange = { first: 0x22f0, last: 0x237f, chip: 'gh100', arch: 'hopper' };

/** NVSwitch gen3 (Hopper era): the only switch with PPCIe. */
export const NVSWITCH_GEN3 = 0x22a3;
// The real tool maps switches by PMC_BOOT_0; by PCI ID that is gen3 = 0x22a3, LR10 = 0x1af1.
const NVSWITCH_NAMES: Readonly<Record<number, string>> = { [NVSWITCH_GEN3]: 'NVSwitch_gen3', 6897: 'LR10' };

export function nvidiaKind(vendor: number, classCode: number): NvidiaKind {
  if (vendor !== NVIDIA) return 'other';
  if (classCode >> 16 === 0x03) return 'gpu';
  if (classCode >> 8 === 0x0680) return 'nvswitch';
  return 'other';
}

export function gpuArch(deviceId: number): GpuArch {
  const range = BLACKWELL.find((r) => deviceId >= r.first && deviceId <= r.last);
  if (range) return range.arch;
  return deviceId >= HOPPER.first && deviceId <= HOPPER.last ? 'hopper' : 'pre-hopper';
}

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
