import { describe, expect, it } from 'vitest';
import { isVfioDriver, isViableGroupMember } from '../src/binding/index.js';

describe('the VFIO driver rule', () => {
  it.each([
    ['vfio-pci', true],
    ['nvgrace_gpu_vfio_pci', true],
    ['mlx5_vfio_pci', true],
    ['nvidia', false],
    ['vfio', false],
    ['pci-stub', false],
    [undefined, false],
  ])('%s is a VFIO driver: %s', (driver, expected) => {
    expect(isVfioDriver(driver)).toBe(expected);
  });

  it('a group is viable with members on VFIO, unbound, on pci-stub or bridges; never with a host driver', () => {
    expect(isViableGroupMember('vfio-pci', false)).toBe(true);
    expect(isViableGroupMember(undefined, false)).toBe(true);
    expect(isViableGroupMember('pci-stub', false)).toBe(true);
    expect(isViableGroupMember('pcieport', true)).toBe(true);
    expect(isViableGroupMember('snd_hda_intel', false)).toBe(false);
    expect(isViableGroupMember('mlx5_core', false)).toBe(false);
  });
});
