import { describe, expect, it } from 'vitest';
import { type AllocationContext, allocate, preferredAllocation } from '../src/allocate.js';
import type { PluginDevice } from '../src/inventory.js';

function gpu(id: string, numa: number | undefined, health: 'Healthy' | 'Unhealthy' = 'Healthy'): PluginDevice {
  return {
    id,
    resourceName: 'nvidia.com/pgpu',
    cdiKind: 'nvidia.com/pgpu',
    type: 'gpu',
    health,
    ...(health === 'Unhealthy' ? { reason: 'device node /dev/vfio/x is missing' } : {}),
    numaNodes: numa === undefined ? [] : [numa],
    iommuGroup: Number(id),
    model: 'legacy',
    functions: [],
    members: [],
    deviceNodes: ['/dev/vfio/vfio', `/dev/vfio/${id}`],
  };
}

/** hgx-h100-8: groups 23-35 on NUMA node 0, 39-51 on node 1. */
const HGX = [
  gpu('23', 0),
  gpu('27', 0),
  gpu('31', 0),
  gpu('35', 0),
  gpu('39', 1),
  gpu('43', 1),
  gpu('47', 1),
  gpu('51', 1),
];
const context = (devices: PluginDevice[] = HGX, cdiDevices = false): AllocationContext => ({
  resourceName: 'nvidia.com/pgpu',
  devices: new Map(devices.map((d) => [d.id, d])),
  cdiDevices,
});
const prefer = (available: string[], size: number, must: string[] = [], devices = HGX) =>
  preferredAllocation(
    { container_requests: [{ available_deviceIDs: available, must_include_deviceIDs: must, allocation_size: size }] },
    context(devices),
  ).container_responses[0]!.deviceIDs;

describe('Allocate', () => {
  it('answers each container request in order with its device nodes, /dev/vfio/vfio once, in ID order', () => {
    const response = allocate(
      { container_requests: [{ devices_ids: ['31', '27'] }, { devices_ids: ['51'] }] },
      context(),
    );
    expect(response.container_responses.map((c) => c.devices.map((d) => d.container_path))).toEqual([
      ['/dev/vfio/vfio', '/dev/vfio/27', '/dev/vfio/31'],
      ['/dev/vfio/vfio', '/dev/vfio/51'],
    ]);
    expect(response.container_responses[0]!.devices[1]).toEqual({
      container_path: '/dev/vfio/27',
      host_path: '/dev/vfio/27',
      permissions: 'mrw',
    });
    expect(response.container_responses[0]).toMatchObject({ envs: {}, mounts: [], annotations: {}, cdi_devices: [] });
  });

  it('gives the same answer for the same set in any order (the kubelet checkpoints it)', () => {
    const a = allocate({ container_requests: [{ devices_ids: ['43', '23', '35'] }] }, context());
    const b = allocate({ container_requests: [{ devices_ids: ['35', '43', '23', '23'] }] }, context());
    expect(b).toEqual(a);
  });

  it('names the devices in cdi_devices only when enabled, as <resource>=<id>', () => {
    const response = allocate({ container_requests: [{ devices_ids: ['39', '23'] }] }, context(HGX, true));
    expect(response.container_responses[0]!.cdi_devices).toEqual([
      { name: 'nvidia.com/pgpu=23' },
      { name: 'nvidia.com/pgpu=39' },
    ]);
  });

  it('refuses an unknown ID with NOT_FOUND, naming it and what is served', () => {
    expect(() => allocate({ container_requests: [{ devices_ids: ['23', '99'] }] }, context())).toThrow(
      expect.objectContaining({
        code: 'ERR_GPUCC_UNKNOWN_DEVICE_ID',
        message: expect.stringMatching(/unknown device ID "99" \(served: 23, 27, 31, 35, 39, 43, 47, 51\)/),
        details: expect.objectContaining({ grpcStatus: 'NOT_FOUND', id: '99' }),
      }),
    );
  });

  it('refuses an unhealthy device and an empty request', () => {
    const devices = [gpu('23', 0), gpu('27', 0, 'Unhealthy')];
    expect(() => allocate({ container_requests: [{ devices_ids: ['27'] }] }, context(devices))).toThrow(
      expect.objectContaining({
        code: 'ERR_GPUCC_INVALID_ALLOCATION_REQUEST',
        message: expect.stringMatching(/device "27" is Unhealthy \(device node/),
        details: expect.objectContaining({ grpcStatus: 'FAILED_PRECONDITION' }),
      }),
    );
    expect(() => allocate({ container_requests: [{ devices_ids: [] }] }, context())).toThrow(/names no device/);
    expect(() => allocate({ container_requests: [] }, context())).toThrow(/no container requests/);
  });
});

describe('GetPreferredAllocation', () => {
  const all = HGX.map((d) => d.id);

  it('keeps a request on one NUMA node when it fits', () => {
    expect(prefer(all, 2)).toEqual(['23', '27']);
    expect(prefer(all, 4)).toEqual(['23', '27', '31', '35']);
    expect(prefer(['51', '23', '47', '43', '27'], 3)).toEqual(['43', '47', '51']); // only node 1 has 3 free
  });

  it('prefers the node that already holds the must-include devices', () => {
    expect(prefer(all, 3, ['47'])).toEqual(['39', '43', '47']);
  });

  it('picks the fullest-fitting node, keeping the larger free set whole', () => {
    expect(prefer(['23', '39', '43', '47'], 1)).toEqual(['23']);
  });

  it('spans as few nodes as possible when no node fits', () => {
    const picked = prefer(['23', '27', '39', '43', '47'], 4);
    expect(picked).toEqual(['23', '39', '43', '47']);
  });

  it('never exceeds the size, skips unhealthy and unknown available IDs, and returns what it can', () => {
    const devices = [...HGX.slice(0, 7), gpu('51', 1, 'Unhealthy')];
    expect(prefer(['51', '99', '47'], 2, [], devices)).toEqual(['47']);
  });

  it('devices without NUMA information are used after every real node', () => {
    const devices = [gpu('1', undefined), gpu('2', 0), gpu('3', 0)];
    expect(prefer(['1', '2', '3'], 2, [], devices)).toEqual(['2', '3']);
    expect(prefer(['1', '2', '3'], 3, [], devices)).toEqual(['1', '2', '3']);
  });

  it('refuses an unknown must-include ID and a size below the must-include count', () => {
    expect(() => prefer(all, 2, ['98'])).toThrow(expect.objectContaining({ code: 'ERR_GPUCC_UNKNOWN_DEVICE_ID' }));
    expect(() => prefer(all, 1, ['23', '27'])).toThrow(/allocation size 1 is below the 2 must-include IDs/);
  });
});
