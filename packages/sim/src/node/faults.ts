import path from 'node:path';
import { GpuccError, localFs } from '@gpucc/hal';
import { devPath } from './effects.js';
import {
  FAULT_KINDS,
  type Fault,
  type FaultKind,
  FIRMWARE_FAULT_KINDS,
  readFaults,
  readNodeSpec,
  withNodeLock,
  writeFaults,
} from './state.js';

const UEVENT_FIELDS = new Set(['vendor', 'device', 'class', 'subsystem_vendor', 'subsystem_device']);

/** Adds a fault for the kernel simulator and fake tools to fire (validated: a typo must not pass silently). */
export async function injectFault(root: string, fault: Fault): Promise<void> {
  if (!(FAULT_KINDS as readonly string[]).includes(fault.kind)) {
    throw new GpuccError('ERR_GPUCC_SIM_INVALID_FAULT', `unknown fault kind ${JSON.stringify(fault.kind)}`, {
      hint: `use one of: ${FAULT_KINDS.join(', ')}`,
    });
  }
  if (fault.device !== undefined) requireDevice(root, fault.device);
  if (fault.errno !== undefined && !/^E[A-Z0-9]+$/.test(fault.errno)) {
    throw new GpuccError('ERR_GPUCC_SIM_INVALID_FAULT', `invalid errno ${JSON.stringify(fault.errno)}`, {
      hint: 'use an errno name such as EBUSY, EINVAL, EIO',
    });
  }
  if (fault.kind === 'kill-after-writes' && !(Number.isInteger(fault.afterWrites) && fault.afterWrites! >= 1)) {
    throw new GpuccError('ERR_GPUCC_SIM_INVALID_FAULT', 'kill-after-writes needs afterWrites ≥ 1', {
      hint: 'pass --after-writes N: the process dies right after its N-th successful sysfs write',
    });
  }
  if (FIRMWARE_FAULT_KINDS.includes(fault.kind) && fault.times !== undefined) {
    throw new GpuccError(
      'ERR_GPUCC_SIM_INVALID_FAULT',
      `${fault.kind} is the device's firmware: it cannot fire a number of times`,
      {
        hint: `drop --times; it lasts until cleared (gpucc-sim fault DIR --clear --kind ${fault.kind}), as until a firmware update`,
      },
    );
  }
  await withNodeLock(root, () => writeFaults(root, [...readFaults(root), fault]));
}

export async function clearFaults(root: string, kind?: FaultKind): Promise<void> {
  await withNodeLock(root, () => writeFaults(root, kind ? readFaults(root).filter((f) => f.kind !== kind) : []));
}

/**
 * Breaks an attribute in the tree as a buggy kernel, a half-captured fixture or bit rot would:
 * `missing` deletes it, otherwise its content is replaced verbatim (no newline is added).
 */
export function breakAttribute(root: string, address: string, attribute: string, content: string | 'missing'): void {
  const device = requireDevice(root, address);
  if (attribute.includes('..') || attribute.startsWith('/')) {
    throw new GpuccError('ERR_GPUCC_SIM_INVALID_FAULT', `invalid attribute ${JSON.stringify(attribute)}`, {
      hint: 'name an attribute of the device directory, e.g. vendor or numa_node',
    });
  }
  const abs = path.join(root, devPath(device), attribute);
  if (content === 'missing') localFs.removeSync(abs);
  else localFs.writeFileSync(abs, content, 0o444);
  // Discovery takes IDs and class from the uevent when there is one; drop it so the broken
  // attribute is what gets read, as in a captured tree (captures carry no uevent).
  if (UEVENT_FIELDS.has(attribute)) localFs.removeSync(path.join(root, devPath(device), 'uevent'));
}

function requireDevice(root: string, address: string) {
  const device = readNodeSpec(root).devices.find((d) => d.address === address);
  if (!device) {
    throw new GpuccError('ERR_GPUCC_SIM_INVALID_FAULT', `the simulated node has no device ${address}`, {
      hint: 'list the devices with: gpucc-sim inspect DIR',
    });
  }
  return device;
}
