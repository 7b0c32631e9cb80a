// Which devices cc-manager switches: a GPU behind Intel VMD (a shape the simulator's profiles do not
// make) is none of them, since no VM can get it
// (docs/facts/real-hosts.md#devices-behind-intel-vmd-cannot-be-passed-through).
import { discoverPci, type PciAddress, type PciDevice } from '@gpucc/hal';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CAPABILITY } from '../src/capability.js';
import { findCcDevices } from '../src/devices.js';

describe('findCcDevices', () => {
  it('lists the GPU in an ACPI domain and leaves the same GPU out once it sits in a VMD domain', () => {
    const topology = discoverPci(simNode('h100-pcie-1').sysfs);
    expect(findCcDevices(topology, DEFAULT_CAPABILITY).map((d) => d.address)).toEqual(['0000:41:00.0']);
    const moved = topology.devices.map(
      (d): PciDevice => (d.kind === 'gpu' ? { ...d, address: '10000:01:00.0' as PciAddress } : d),
    );
    expect(findCcDevices({ ...topology, devices: moved }, DEFAULT_CAPABILITY)).toEqual([]);
  });
});
