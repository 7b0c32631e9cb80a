import { describe, expect, it } from 'vitest';
import { cdiRuleProblems, minimumCdiVersion } from '../src/rules.js';
import { specProblems } from '../src/validate.js';

const node = (path = '/dev/vfio/60') => ({ deviceNodes: [{ path }] });
const spec = (extra: Record<string, unknown> = {}, devices: unknown[] = [{ name: '60', containerEdits: node() }]) => ({
  cdiVersion: '0.5.0',
  kind: 'nvidia.com/pgpu',
  devices,
  ...extra,
});

describe('CDI rules the schema misses', () => {
  it('accepts what kata-manager writes', () => {
    expect(specProblems(spec())).toEqual([]);
  });

  it.each([
    ['no devices', spec({}, []), '/devices', /at least one device/],
    [
      'two devices with one name',
      spec({}, [
        { name: '60', containerEdits: node() },
        { name: '60', containerEdits: node('/dev/vfio/61') },
      ]),
      '/devices/1/name',
      /also used by \/devices\/0/,
    ],
    ['a kind without a class', spec({ kind: 'nvidia.com' }), '/kind', /vendor\/class/],
    ['a class starting with a digit', spec({ kind: 'nvidia.com/2330' }), '/kind', /invalid kind/],
    ['a vendor with a space', spec({ kind: 'nvidia com/pgpu' }), '/kind', /invalid kind/],
    [
      'a device name ending in -',
      spec({}, [{ name: 'gpu-', containerEdits: node() }]),
      '/devices/0/name',
      /invalid device name/,
    ],
    ['an unknown version', spec({ cdiVersion: '0.9.0' }), '/cdiVersion', /unknown cdiVersion/],
    ['a digit-leading name below 0.5.0', spec({ cdiVersion: '0.4.0' }), '/cdiVersion', /needs cdiVersion 0.5.0/],
    ['annotations at 0.5.0', spec({ annotations: { 'gpucc.io/x': 'y' } }), '/cdiVersion', /needs cdiVersion 0.6.0/],
    ['a dot in the class at 0.5.0', spec({ kind: 'nvidia.com/h100.sxm' }), '/cdiVersion', /needs cdiVersion 0.6.0/],
    ['an unknown top-level field', spec({ foo: 1 }), '/foo', /unknown field "foo"/],
    [
      'an unknown device-node field',
      spec({}, [{ name: '60', containerEdits: { deviceNodes: [{ path: '/dev/x', mode: 1 }] } }]),
      '/devices/0/containerEdits/deviceNodes/0/mode',
      /unknown field/,
    ],
    ['empty device edits', spec({}, [{ name: '60', containerEdits: {} }]), '/devices/0/containerEdits', /non-empty/],
    [
      'edits with only empty lists',
      spec({}, [{ name: '60', containerEdits: { deviceNodes: [] } }]),
      '/devices/0/containerEdits',
      /non-empty/,
    ],
    [
      'an empty device-node path',
      spec({}, [{ name: '60', containerEdits: node('') }]),
      '/devices/0/containerEdits/deviceNodes/0/path',
      /non-empty path/,
    ],
    [
      'a device-node type x',
      spec({}, [{ name: '60', containerEdits: { deviceNodes: [{ path: '/dev/x', type: 'x' }] } }]),
      '/devices/0/containerEdits/deviceNodes/0/type',
      /one of/,
    ],
    [
      'permissions rwx',
      spec({}, [{ name: '60', containerEdits: { deviceNodes: [{ path: '/dev/x', permissions: 'rwx' }] } }]),
      '/devices/0/containerEdits/deviceNodes/0/permissions',
      /r, w and m/,
    ],
    [
      'an env entry without =',
      spec({}, [{ name: '60', containerEdits: { env: ['FOO'] } }]),
      '/devices/0/containerEdits/env/0',
      /KEY=VALUE/,
    ],
    ['an env entry starting with =', spec({ containerEdits: { env: ['=x'] } }), '/containerEdits/env/0', /KEY=VALUE/],
    [
      'an unknown hook',
      spec({}, [{ name: '60', containerEdits: { hooks: [{ hookName: 'preStart', path: '/bin/x' }] } }]),
      '/devices/0/containerEdits/hooks/0/hookName',
      /unknown hook name/,
    ],
    [
      'a mount without a container path',
      spec({}, [{ name: '60', containerEdits: { mounts: [{ hostPath: '/a', containerPath: '' }] } }]),
      '/devices/0/containerEdits/mounts/0/containerPath',
      /non-empty/,
    ],
    [
      'a bad annotation key',
      spec({ cdiVersion: '0.6.0', annotations: { 'Bad Key': 'x' } }),
      '/annotations/Bad Key',
      /invalid annotation key/,
    ],
  ])('refuses %s', (_what, input, path, message) => {
    const problems = specProblems(input);
    expect(problems).toContainEqual({ path, message: expect.stringMatching(message) });
  });

  it.each([
    [spec({}, [{ name: 'gpu0', containerEdits: node() }]), '0.3.0'],
    [spec(), '0.5.0'],
    [spec({}, [{ name: 'a', containerEdits: { deviceNodes: [{ path: '/x', hostPath: '/y' }] } }]), '0.5.0'],
    [
      spec({}, [{ name: 'a', containerEdits: { mounts: [{ hostPath: '/a', containerPath: '/b', type: 'bind' }] } }]),
      '0.4.0',
    ],
    [spec({ annotations: {} }), '0.6.0'],
    [spec({}, [{ name: 'a', containerEdits: { additionalGids: [5] } }]), '0.7.0'],
    [spec({}, [{ name: 'a', containerEdits: { netDevices: [{ hostInterfaceName: 'eth0', name: 'eth1' }] } }]), '1.1.0'],
  ])('needs the minimum version the content asks for (%#)', (input, version) => {
    expect(minimumCdiVersion(input)).toBe(version);
  });

  it('accepts a leading v and every known version at or above the minimum', () => {
    expect(cdiRuleProblems(spec({ cdiVersion: 'v0.5.0' }))).toEqual([]);
    expect(cdiRuleProblems(spec({ cdiVersion: '1.1.0' }))).toEqual([]);
  });
});
