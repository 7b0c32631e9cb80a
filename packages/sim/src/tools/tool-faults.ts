import { type Fault, readFaults, withNodeLock, writeFaults } from '../node/state.js';

/** What a device's firmware supports, as the fake CC tool sees it (`fw-no-cc`, `fw-no-ppcie` faults). */
export interface FirmwareSupport {
  cc: boolean;
  ppcie: boolean;
}

/**
 * The firmware of one device: a `fw-no-*` fault naming it (or naming no device) takes the support
 * away. Firmware faults are read, never used up: they last until cleared, as until a firmware update.
 */
export function firmwareOf(faults: readonly Fault[], address: string): FirmwareSupport {
  const lacks = (kind: Fault['kind']) =>
    faults.some((f) => f.kind === kind && (f.device === undefined || f.device === address));
  return { cc: !lacks('fw-no-cc'), ppcie: !lacks('fw-no-ppcie') };
}

const TOOL_FAULTS: readonly string[] = ['tool-hang', 'tool-error', 'tool-garbage'];

/** Whether a fault applies to a call that works on `devices` (a fault without a device applies to any call). */
export function faultApplies(fault: Fault, devices: readonly string[]): boolean {
  if (!TOOL_FAULTS.includes(fault.kind)) return false;
  if (fault.times !== undefined && fault.times <= 0) return false;
  return fault.device === undefined || devices.includes(fault.device);
}

/**
 * Fires the first tool fault that applies: uses one of its `times` (removing it when used up) under
 * the node lock, since operands and other tool calls share the faults file.
 */
export async function takeToolFault(root: string, devices: readonly string[]): Promise<Fault | undefined> {
  if (!readFaults(root).some((f) => faultApplies(f, devices))) return undefined; // common case: no lock
  return withNodeLock(root, () => {
    const faults = readFaults(root);
    const index = faults.findIndex((f) => faultApplies(f, devices));
    if (index < 0) return undefined;
    const fault = faults[index]!;
    if (fault.times !== undefined) {
      if (fault.times <= 1) faults.splice(index, 1);
      else faults[index] = { ...fault, times: fault.times - 1 };
      writeFaults(root, faults);
    }
    return fault;
  });
}
