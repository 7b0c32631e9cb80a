import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import {
  checkSocketPath,
  DEVICE_PLUGIN_PROTO,
  devicePluginApi,
  type ProtoJson,
  protoToJson,
} from '../src/kubelet/index.js';

const messages = (json: ProtoJson) =>
  json.nested.v1beta1!.nested as Record<string, { fields: Record<string, unknown> }>;

describe('device plugin API v1beta1 (our own .proto)', () => {
  it('parses exactly as protobufjs parses the same text', () => {
    expect(protoToJson(DEVICE_PLUGIN_PROTO)).toEqual(
      protobuf.parse(DEVICE_PLUGIN_PROTO, { keepCase: true }).root.toJSON(),
    );
  });

  it('has the wire names and field numbers of the kubelet’s api.proto (the mixed case included)', () => {
    const m = messages(protoToJson(DEVICE_PLUGIN_PROTO));
    expect(m.Device!.fields).toEqual({
      ID: { type: 'string', id: 1 },
      health: { type: 'string', id: 2 },
      topology: { type: 'TopologyInfo', id: 3 },
    });
    expect(m.NUMANode!.fields).toEqual({ ID: { type: 'int64', id: 1 } });
    expect(m.ContainerPreferredAllocationRequest!.fields).toEqual({
      available_deviceIDs: { rule: 'repeated', type: 'string', id: 1 },
      must_include_deviceIDs: { rule: 'repeated', type: 'string', id: 2 },
      allocation_size: { type: 'int32', id: 3 },
    });
    expect(m.ContainerAllocateResponse!.fields).toEqual({
      envs: { keyType: 'string', type: 'string', id: 1 },
      mounts: { rule: 'repeated', type: 'Mount', id: 2 },
      devices: { rule: 'repeated', type: 'DeviceSpec', id: 3 },
      annotations: { keyType: 'string', type: 'string', id: 4 },
      cdi_devices: { rule: 'repeated', type: 'CDIDevice', id: 5 },
    });
    expect(m.RegisterRequest!.fields).toMatchObject({
      endpoint: { id: 2 },
      resource_name: { id: 3 },
      options: { id: 4 },
    });
    expect(m.ContainerAllocateRequest!.fields).toEqual({ devices_ids: { rule: 'repeated', type: 'string', id: 1 } });
  });

  it('serves the five DevicePlugin methods and Register on the kubelet’s HTTP/2 paths', () => {
    const api = devicePluginApi();
    expect(Object.values(api.devicePlugin).map((m) => [m.path, m.responseStream])).toEqual([
      ['/v1beta1.DevicePlugin/GetDevicePluginOptions', false],
      ['/v1beta1.DevicePlugin/ListAndWatch', true],
      ['/v1beta1.DevicePlugin/GetPreferredAllocation', false],
      ['/v1beta1.DevicePlugin/Allocate', false],
      ['/v1beta1.DevicePlugin/PreStartContainer', false],
    ]);
    expect(api.registration.Register.path).toBe('/v1beta1.Registration/Register');
  });

  it('encodes a device list as the kubelet reads it: int64 NUMA IDs as strings, empty repeated fields as []', () => {
    const method = devicePluginApi().devicePlugin.ListAndWatch;
    const bytes = method.response.encode({
      devices: [
        { ID: '23', health: 'Healthy', topology: { nodes: [{ ID: 1 }] } },
        { ID: '27', health: 'Unhealthy' },
      ],
    });
    // tag 0x0a = field 1 (devices), 19 bytes; tag 0x0a = Device field 1 (ID "23"): the numbers are the contract
    expect(bytes.subarray(0, 6).toString('hex')).toBe('0a130a023233');
    expect(method.response.decode(bytes)).toEqual({
      devices: [
        { ID: '23', health: 'Healthy', topology: { nodes: [{ ID: '1' }] } },
        { ID: '27', health: 'Unhealthy', topology: null },
      ],
    });
    const allocate = devicePluginApi().devicePlugin.Allocate;
    expect(allocate.response.decode(allocate.response.encode({ container_responses: [{} as never] }))).toEqual({
      container_responses: [{ envs: {}, mounts: [], devices: [], annotations: {}, cdi_devices: [] }],
    });
  });

  it('refuses text outside the subset it knows, with the line', () => {
    expect(() => protoToJson('syntax = "proto2";\npackage x;')).toThrow(/only proto3/);
    expect(() =>
      protoToJson('syntax = "proto3";\npackage x;\nmessage A {\n  string a = 1;\n  string b = 1;\n}'),
    ).toThrow(
      expect.objectContaining({
        code: 'ERR_GPUCC_PROTO_INVALID',
        message: expect.stringMatching(/line 6: field number 1 is used twice/),
      }),
    );
    expect(() => protoToJson('syntax = "proto3";\npackage x;\nenum E { A = 0; }')).toThrow(
      /expected message or service/,
    );
  });

  it('refuses a unix socket path longer than the kernel allows', () => {
    expect(checkSocketPath('/var/lib/kubelet/device-plugins/kubelet.sock')).toBe(
      '/var/lib/kubelet/device-plugins/kubelet.sock',
    );
    expect(() => checkSocketPath(`/${'x'.repeat(120)}.sock`)).toThrow(
      expect.objectContaining({
        code: 'ERR_GPUCC_PLUGIN_SOCKET_FAILED',
        message: expect.stringMatching(/longer than 107 bytes/),
      }),
    );
  });
});
