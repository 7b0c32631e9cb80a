import type { GpuccError, PciAddress } from '@gpucc/hal';
import type { CcDevice } from '../devices.js';
import type { CcModeReading, PpcieReading } from './gpu-tools-output.js';

export const BACKENDS = ['auto', 'gpu-admin-tools', 'nvidia-smi'] as const;
export type BackendName = Exclude<(typeof BACKENDS)[number], 'auto'>;

/** What a device reports now. Only the modes it can have are present (no PPCIe on a B200). */
export interface DeviceModes {
  cc?: CcModeReading;
  ppcie?: PpcieReading;
}

export type QueryAnswer = { modes: DeviceModes } | { error: GpuccError };

/** The knobs one tool call sets on one device, before the reset that applies them. */
export interface SwitchStep {
  cc?: 'on' | 'off' | 'devtools';
  ppcie?: 'on' | 'off';
}

/** The CC tools behind one interface: gpu-admin-tools reads and switches; nvidia-smi only reads. */
export interface CcBackend {
  readonly name: BackendName;
  readonly canSwitch: boolean;
  /** The executable, for messages. */
  readonly command: string;
  /**
   * Reads the current modes: CC for CC-capable GPUs, PPCIe for PPCIe-capable devices (others are not
   * asked). One answer per device asked; a device that could not be read gets its error.
   */
  query(devices: readonly CcDevice[], signal?: AbortSignal): Promise<Map<PciAddress, QueryAnswer>>;
  /**
   * Sets the knobs of one device and resets it so they apply; the tool waits for the device to boot
   * and checks the new mode. Throws a GpuccError carrying the tool's words. Never aborted midway: a
   * knob write cut short can leave the invalid CC register state.
   */
  apply(device: CcDevice, step: SwitchStep): Promise<void>;
  /**
   * Sets the knobs of one device and leaves them pending (no reset): the staged PPCIe switch sets
   * every device before it resets any (docs/facts/cc-mode.md#ppcie-in-stages). Also used to put
   * knobs back when another device's set failed.
   */
  set(device: CcDevice, step: SwitchStep): Promise<void>;
  /** Resets one device so its pending knobs apply (the OS reset); the caller verifies with `query`. */
  reset(device: CcDevice): Promise<void>;
}

/** The query flags a device answers to (none for a device with neither capability). */
export function queryKinds(device: CcDevice): { cc: boolean; ppcie: boolean } {
  return { cc: device.kind === 'gpu' && device.ccCapable, ppcie: device.ppcieCapable };
}
