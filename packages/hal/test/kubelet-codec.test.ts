import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { buildCodecs, DEVICE_PLUGIN_PROTO, protoToJson } from '../src/kubelet/index.js';

// Our codecs against protobufjs, the reference implementation in JavaScript, on the same .proto:
// whatever one encodes the other decodes to the same message, for every message the API has.
const codecs = buildCodecs(protoToJson(DEVICE_PLUGIN_PROTO));
const reference = protobuf.parse(DEVICE_PLUGIN_PROTO, { keepCase: true }).root;
const TO_OBJECT = { longs: String, defaults: true, arrays: true, objects: true } as const;

const ours = (name: string) => codecs.get(name)!;
const theirs = (name: string) => reference.lookupType(`v1beta1.${name}`);
/** What protobufjs reads from bytes, as the plain object proto-loader gave. */
const readByReference = (name: string, bytes: Uint8Array) =>
  theirs(name).toObject(theirs(name).decode(bytes), TO_OBJECT);
const writtenByReference = (name: string, value: object) =>
  theirs(name).encode(theirs(name).fromObject(value)).finish();

// Any text, astral-plane and combining characters included.
const text = fc.string({ unit: 'grapheme', maxLength: 12 });
const int64 = fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n).map(String);
const list = <T>(a: fc.Arbitrary<T>) => fc.array(a, { maxLength: 4 });
const map = fc.dictionary(text, text, { maxKeys: 3 });

const device = fc.record(
  { ID: text, health: text, topology: fc.option(fc.record({ nodes: list(fc.record({ ID: int64 })) }), { nil: null }) },
  { requiredKeys: ['ID', 'health'] },
);
const samples: Record<string, fc.Arbitrary<object>> = {
  ListAndWatchResponse: fc.record({ devices: list(device) }),
  RegisterRequest: fc.record(
    {
      version: text,
      endpoint: text,
      resource_name: text,
      options: fc.record({ pre_start_required: fc.boolean(), get_preferred_allocation_available: fc.boolean() }),
    },
    { requiredKeys: [] },
  ),
  PreferredAllocationRequest: fc.record({
    container_requests: list(
      fc.record({
        available_deviceIDs: list(text),
        must_include_deviceIDs: list(text),
        allocation_size: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      }),
    ),
  }),
  PreferredAllocationResponse: fc.record({ container_responses: list(fc.record({ deviceIDs: list(text) })) }),
  AllocateRequest: fc.record({ container_requests: list(fc.record({ devices_ids: list(text) })) }),
  AllocateResponse: fc.record({
    container_responses: list(
      fc.record({
        envs: map,
        mounts: list(fc.record({ container_path: text, host_path: text, read_only: fc.boolean() })),
        devices: list(fc.record({ container_path: text, host_path: text, permissions: text })),
        annotations: map,
        cdi_devices: list(fc.record({ name: text })),
      }),
    ),
  }),
  PreStartContainerRequest: fc.record({ devices_ids: list(text) }),
};

describe('protobuf codecs of the device plugin API (ours, no protobufjs in the binaries)', () => {
  it('has a codec for every message of the .proto', () => {
    expect([...codecs.keys()].sort()).toEqual(
      Object.keys((reference.lookup('v1beta1') as protobuf.Namespace).nested!)
        .filter((name) => reference.lookup(`v1beta1.${name}`) instanceof protobuf.Type)
        .sort(),
    );
  });

  for (const [name, sample] of Object.entries(samples)) {
    it(`${name}: protobufjs reads what we write, and we read what it writes, as the same message`, () => {
      fc.assert(
        fc.property(sample, (value) => {
          const expected = readByReference(name, writtenByReference(name, value));
          expect(readByReference(name, ours(name).encode(value))).toEqual(expected);
          expect(ours(name).decode(writtenByReference(name, value))).toEqual(expected);
          expect(ours(name).decode(ours(name).encode(value))).toEqual(expected);
        }),
        { numRuns: 150 },
      );
    });
  }

  it('sends NUMA IDs given as numbers, and reads them back as decimal strings, negative ones too', () => {
    const codec = ours('NUMANode');
    expect(codec.decode(codec.encode({ ID: 1 }))).toEqual({ ID: '1' });
    expect(codec.encode({ ID: -1 })).toHaveLength(11); // a negative varint takes 10 bytes, after its tag
    expect(codec.decode(codec.encode({ ID: -1 }))).toEqual({ ID: '-1' });
    expect(codec.decode(codec.encode({ ID: '9223372036854775807' }))).toEqual({ ID: '9223372036854775807' });
  });

  it('reads a map key named __proto__ as an entry, not as the object’s prototype (found by the property test)', () => {
    const codec = ours('ContainerAllocateResponse');
    const envs = JSON.parse('{"__proto__": "x", "PGPU": "23"}') as Record<string, string>;
    const decoded = codec.decode(codec.encode({ envs })) as { envs: Record<string, string> };
    expect(Object.entries(decoded.envs)).toEqual([
      ['__proto__', 'x'],
      ['PGPU', '23'],
    ]);
    expect(Object.getPrototypeOf(decoded.envs)).toBe(Object.prototype);
  });

  it('skips fields it does not know: a newer kubelet may add some', () => {
    const newer = protobuf.parse(
      `syntax = "proto3"; package v1beta1;
       message Device { string ID = 1; string health = 2; fixed64 f = 7; fixed32 g = 8; bytes extra = 9; int64 n = 10; }`,
      { keepCase: true },
    ).root;
    const type = newer.lookupType('v1beta1.Device');
    const bytes = type
      .encode(type.fromObject({ ID: '23', health: 'Healthy', f: 5, g: 6, extra: [1, 2, 3], n: 77 }))
      .finish();
    expect(ours('Device').decode(bytes)).toEqual({ ID: '23', health: 'Healthy', topology: null });
  });

  it('refuses bytes that are not a message with a coded error, never a half-read one', () => {
    const whole = ours('ListAndWatchResponse').encode({ devices: [{ ID: '23', health: 'Healthy' }] });
    for (const broken of [
      whole.subarray(0, whole.length - 1),
      Buffer.from([0x0a, 0x7f]),
      Buffer.from([0x0b]),
      Buffer.alloc(11, 0xff),
    ]) {
      expect(() => ours('ListAndWatchResponse').decode(broken)).toThrow(
        expect.objectContaining({ code: 'ERR_GPUCC_PROTO_MALFORMED' }),
      );
    }
  });

  it('refuses at build time a .proto that uses what the codecs do not support', () => {
    const unsupported = protoToJson('syntax = "proto3";\npackage x;\nmessage A {\n  double d = 1;\n}');
    expect(() => buildCodecs(unsupported)).toThrow(expect.objectContaining({ code: 'ERR_GPUCC_PROTO_INVALID' }));
  });
});
