// Target selection on an observation: a GPU behind Intel VMD (a shape the simulator's profiles do not
// make: VMD normally holds NVMe drives) is never selected by --all and is refused by --device
// (docs/facts/real-hosts.md#devices-behind-intel-vmd-cannot-be-passed-through).
import type { GpuccError, PciAddress, PciDevice } from '@gpucc/hal';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { observe } from '../src/observe.js';
import { selectTargets } from '../src/select.js';

const BEHIND_VMD = '10000:01:00.0' as PciAddress;

/** The h100-pcie-1 node's observation with its GPU moved behind a VMD controller. */
function gpuBehindVmd() {
  const observation = observe(simNode('h100-pcie-1').sysfs);
  const { topology } = observation;
  const moved = topology.devices.map(
    (d): PciDevice =>
      d.kind === 'gpu'
        ? {
            ...d,
            address: BEHIND_VMD,
            sysfsPath: `sys/devices/pci0000:d7/0000:d7:05.5/pci10000:00/10000:00:02.0/${BEHIND_VMD}`,
          }
        : d,
  );
  return {
    ...observation,
    topology: { ...topology, devices: moved, byAddress: new Map(moved.map((d) => [d.address, d])) },
  };
}

describe('selectTargets and Intel VMD', () => {
  const options = { nvswitches: false };

  it('--all takes the GPU in an ACPI domain and leaves the same GPU behind VMD', () => {
    const plain = observe(simNode('h100-pcie-1').sysfs);
    expect(selectTargets(plain, { all: true }, options).map((d) => d.address)).toEqual(['0000:41:00.0']);
    expect(selectTargets(gpuBehindVmd(), { all: true }, options)).toEqual([]);
  });

  it('--device refuses it with ERR_GPUCC_BEHIND_VMD, naming the controller', () => {
    let error: GpuccError | undefined;
    try {
      selectTargets(gpuBehindVmd(), { devices: [BEHIND_VMD] }, options);
    } catch (e) {
      error = e as GpuccError;
    }
    expect(error?.code).toBe('ERR_GPUCC_BEHIND_VMD');
    expect(error?.details).toEqual({ device: BEHIND_VMD, vmdController: '0000:d7:05.5' });
  });
});
