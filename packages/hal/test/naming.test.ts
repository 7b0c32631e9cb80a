import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareDeviceIds,
  deviceIdFor,
  formatPciIdsName,
  isCdiName,
  isLabelValue,
  parseCdiKind,
  parseNvidiaPciIds,
  resourceNamingFor,
} from '../src/index.js';

const DB = parseNvidiaPciIds(
  [
    '1000  Broadcom / LSI',
    '\t2571  SAS 5/iR Integrated RAID Controller',
    '10de  NVIDIA Corporation',
    '\t118a  GK104.GL [GRID/K520]',
    '\t20b5  GA100 [A100 PCIe 80GB]',
    '\t22a3  GH100 [H100 NVSwitch]',
    '\t2330  GH100 [H100 SXM5 80GB]',
    '\t2331  GH100 [H100 PCIe]',
    '\t2400  1st [odd name]',
    '\t2401  GX100 [Test card.]',
    `\t2402  ${'VERYLONGNAME '.repeat(6)}`,
    '10df  Emulex Corporation',
    '',
  ].join('\n'),
  'usr/share/misc/pci.ids',
);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('resourceNamingFor', () => {
  it('uses pgpu and nvswitch when the aliases are unset, whatever the model', () => {
    expect(resourceNamingFor({ deviceType: 'gpu', pciDeviceId: 0x2331, pciIds: DB })).toEqual({
      resourceName: 'nvidia.com/pgpu',
      cdiVendor: 'nvidia.com',
      cdiClass: 'pgpu',
      cdiKind: 'nvidia.com/pgpu',
    });
    expect(resourceNamingFor({ deviceType: 'nvswitch', pciDeviceId: 0x22a3, aliases: {} }).resourceName).toBe(
      'nvidia.com/nvswitch',
    );
    expect(resourceNamingFor({ deviceType: 'gpu', pciDeviceId: 0x9999 }).resourceName).toBe('nvidia.com/pgpu');
  });

  it('uses a non-empty alias as the class', () => {
    const naming = resourceNamingFor({ deviceType: 'gpu', pciDeviceId: 0x2331, aliases: { gpuAlias: 'h100' } });
    expect(naming).toMatchObject({ resourceName: 'nvidia.com/h100', cdiKind: 'nvidia.com/h100' });
    // the GPU alias does not rename NVSwitches
    expect(
      resourceNamingFor({ deviceType: 'nvswitch', pciDeviceId: 0x22a3, aliases: { gpuAlias: 'h100' } }).cdiClass,
    ).toBe('nvswitch');
  });

  it.each([
    ['gpu', 0x2331, 'GH100_H100_PCIE'],
    ['gpu', 0x2330, 'GH100_H100_SXM5_80GB'],
    ['gpu', 0x20b5, 'GA100_A100_PCIE_80GB'],
    ['gpu', 0x118a, 'GK104_GL_GRID_K520'],
    ['nvswitch', 0x22a3, 'GH100_H100_NVSWITCH'],
  ] as const)('names a %s %s per model when the alias is empty: %s', (deviceType, id, expected) => {
    const naming = resourceNamingFor({
      deviceType,
      pciDeviceId: id,
      pciIds: DB,
      aliases: { gpuAlias: '', nvswitchAlias: '' },
    });
    expect(naming).toEqual({
      resourceName: `nvidia.com/${expected}`,
      cdiVendor: 'nvidia.com',
      cdiClass: expected,
      cdiKind: `nvidia.com/${expected}`,
    });
  });

  it('falls back to NVIDIA_<ID>, a valid CDI class, for a device missing from pci.ids or without pci.ids', () => {
    const empty = { gpuAlias: '' };
    expect(resourceNamingFor({ deviceType: 'gpu', pciDeviceId: 0x2901, pciIds: DB, aliases: empty }).cdiClass).toBe(
      'NVIDIA_2901',
    );
    expect(resourceNamingFor({ deviceType: 'gpu', pciDeviceId: 0x2331, aliases: empty }).cdiClass).toBe('NVIDIA_2331');
    expect(resourceNamingFor({ deviceType: 'gpu', pciDeviceId: 0xa, aliases: empty }).cdiClass).toBe('NVIDIA_000A');
    // 0x2571 exists only under another vendor: never borrow that name
    expect(resourceNamingFor({ deviceType: 'gpu', pciDeviceId: 0x2571, pciIds: DB, aliases: empty }).cdiClass).toBe(
      'NVIDIA_2571',
    );
  });

  it.each([
    ['an alias with a space', { gpuAlias: 'my gpu' }, 0x2331],
    ['an alias with a dot (needs CDI 0.6.0)', { gpuAlias: 'h100.pcie' }, 0x2331],
    ['an alias starting with a digit', { gpuAlias: '2330' }, 0x2331],
    ['an alias ending with -', { gpuAlias: 'gpu-' }, 0x2331],
    ['an alias with a slash', { gpuAlias: 'a/b' }, 0x2331],
    ['an alias of 64 characters', { gpuAlias: `a${'b'.repeat(63)}` }, 0x2331],
    ['a model name starting with a digit', { gpuAlias: '' }, 0x2400],
    ['a model name ending with _', { gpuAlias: '' }, 0x2401],
    ['a model name over 63 characters', { gpuAlias: '' }, 0x2402],
  ])('refuses %s with INVALID_RESOURCE_NAME', (_what, aliases, id) => {
    expect(code(() => resourceNamingFor({ deviceType: 'gpu', pciDeviceId: id, pciIds: DB, aliases }))).toBe(
      'ERR_GPUCC_INVALID_RESOURCE_NAME',
    );
  });

  it('accepts an alias of exactly 63 characters', () => {
    const alias = `a${'b'.repeat(62)}`;
    expect(resourceNamingFor({ deviceType: 'gpu', pciDeviceId: 1, aliases: { gpuAlias: alias } }).cdiClass).toBe(alias);
  });

  it('refuses a PCI device id that is not 16 bits', () => {
    for (const id of [-1, 0x10000, 1.5, Number.NaN]) {
      expect(code(() => resourceNamingFor({ deviceType: 'gpu', pciDeviceId: id, aliases: { gpuAlias: '' } }))).toBe(
        'ERR_GPUCC_INVALID_RESOURCE_NAME',
      );
    }
  });

  it('property: every name it returns is a valid CDI kind and Kubernetes resource, with kind == resource', () => {
    fc.assert(
      fc.property(fc.option(fc.string(), { nil: undefined }), fc.integer({ min: 0, max: 0xffff }), (alias, id) => {
        let naming: ReturnType<typeof resourceNamingFor>;
        try {
          naming = resourceNamingFor({ deviceType: 'gpu', pciDeviceId: id, pciIds: DB, aliases: { gpuAlias: alias } });
        } catch (error) {
          return (error as { code?: string }).code === 'ERR_GPUCC_INVALID_RESOURCE_NAME';
        }
        const kind = parseCdiKind(naming.cdiKind);
        return (
          naming.cdiKind === naming.resourceName &&
          kind.vendor === 'nvidia.com' &&
          isCdiName('class', naming.cdiClass) &&
          isLabelValue(naming.cdiClass) &&
          !naming.cdiClass.includes('.')
        );
      }),
    );
  });
});

describe('formatPciIdsName', () => {
  it.each([
    ['GH100 [H100 PCIe]', 'GH100_H100_PCIE'],
    ['GK104.GL [GRID/K520]', 'GK104_GL_GRID_K520'],
    ['GH100 [H100 NVSwitch]', 'GH100_H100_NVSWITCH'],
    ['TU104GL  [Tesla\tT4]', 'TU104GL_TESLA_T4'],
    ['AD102GL [RTX 6000 Ada Generation]', 'AD102GL_RTX_6000_ADA_GENERATION'],
    ['GA100 (rev a1) + extra!', 'GA100_REV_A1__EXTRA'],
    ['some-name', 'SOME-NAME'],
  ])('%s -> %s', (input, expected) => {
    expect(formatPciIdsName(input)).toBe(expected);
  });

  it('property: output only ever holds upper-case letters, digits, _ and -', () => {
    fc.assert(fc.property(fc.string(), (name) => /^[A-Z0-9_-]*$/.test(formatPciIdsName(name))));
  });
});

describe('deviceIdFor', () => {
  it('is the IOMMU group in legacy and no-IOMMU modes and the cdev N in iommufd mode', () => {
    expect(deviceIdFor({ mode: 'legacy', iommuGroup: 8, vfioCdevIndex: 3 })).toBe('8');
    expect(deviceIdFor({ mode: 'noiommu', iommuGroup: 0 })).toBe('0');
    expect(deviceIdFor({ mode: 'iommufd', iommuGroup: 8, vfioCdevIndex: 12 })).toBe('12');
  });

  it.each([
    [{ mode: 'legacy' as const }],
    [{ mode: 'legacy' as const, iommuGroup: -1 }],
    [{ mode: 'legacy' as const, iommuGroup: 1.5 }],
    [{ mode: 'iommufd' as const, iommuGroup: 4 }],
    [{ mode: 'iommufd' as const, vfioCdevIndex: Number.NaN }],
  ])('refuses %o with INVALID_DEVICE_NUMBER', (input) => {
    expect(code(() => deviceIdFor(input))).toBe('ERR_GPUCC_INVALID_DEVICE_NUMBER');
  });

  it('property: every ID is a valid CDI device name', () => {
    fc.assert(
      fc.property(fc.nat(), fc.constantFrom('legacy', 'iommufd', 'noiommu' as const), (n, mode) =>
        isCdiName('device', deviceIdFor({ mode, iommuGroup: n, vfioCdevIndex: n })),
      ),
    );
  });
});

describe('compareDeviceIds', () => {
  it('sorts numerically: 8 before 10', () => {
    expect(['10', '8', '100', '9', '0'].sort(compareDeviceIds)).toEqual(['0', '8', '9', '10', '100']);
  });

  it('puts non-numeric IDs after numeric ones, in string order', () => {
    expect(['b', '10', 'a', '2'].sort(compareDeviceIds)).toEqual(['2', '10', 'a', 'b']);
  });

  it('property: agrees with numeric order on numbers', () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(), (a, b) => Math.sign(compareDeviceIds(String(a), String(b))) === Math.sign(a - b)),
    );
  });
});
