import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CC_MODES,
  comparePciAddresses,
  functionOf,
  type GpuccError,
  isCcMode,
  isCdiName,
  isLabelKey,
  isLabelValue,
  isPciAddress,
  isVmdDomainAddress,
  type PciAddress,
  parseCcMode,
  parseCdiKind,
  parseCdiName,
  parseLabelKey,
  parseLabelValue,
  parsePciAddress,
  pciDomainOf,
  slotOf,
} from '../src/index.js';

function caught(fn: () => unknown): GpuccError {
  try {
    fn();
  } catch (error) {
    return error as GpuccError;
  }
  throw new Error('expected an error');
}

const hex = (digits: number, max = 16 ** digits - 1) =>
  fc.integer({ min: 0, max }).map((n) => n.toString(16).padStart(digits, '0'));

// The kernel's "%04x:%02x:%02x.%d" with device 0-0x1f and function 0-7; domains up to 5 digits (Intel VMD).
const domain = fc.oneof(
  hex(4),
  fc.integer({ min: 0x10000, max: 0xfffff }).map((n) => n.toString(16)),
);
const kernelAddress = fc
  .tuple(domain, hex(2), hex(2, 0x1f), fc.integer({ min: 0, max: 7 }))
  .map(([domain, bus, device, fn]) => `${domain}:${bus}:${device}.${fn}`);

describe('PCI addresses', () => {
  it.each([
    '0000:43:00.0',
    '0000:00:1f.7',
    'ffff:ff:1f.7',
    '0001:a0:0a.3',
    '10000:01:00.0', // Intel VMD: the kernel numbers its domains from 0x10000
    'fffff:ff:1f.7',
  ])('accepts %s', (value) => {
    expect(parsePciAddress(value)).toBe(value);
    expect(isPciAddress(value)).toBe(true);
  });

  it.each([
    ['upper-case hex', '0000:AB:00.0', /lower case: 0000:ab:00.0/],
    ['a missing domain', '43:00.0', /add the PCI domain, e\.g\. 0000:43:00.0/],
    ['device 0x20', '0000:43:20.0', /dddd:bb:dd\.f/],
    ['function 8', '0000:43:00.8', /dddd:bb:dd\.f/],
    ['a trailing newline', '0000:43:00.0\n', /dddd:bb:dd\.f/],
    ['a leading ../', '../0000:43:00.0', /dddd:bb:dd\.f/],
    ['an embedded /', '0000:43:00.0/../../x', /dddd:bb:dd\.f/],
    ['a short domain', '000:43:00.0', /dddd:bb:dd\.f/],
    ['six domain digits', '100000:01:00.0', /dddd:bb:dd\.f/],
    ['five domain digits with a leading zero (%04x prints 4)', '01000:01:00.0', /dddd:bb:dd\.f/],
    ['an upper-case VMD domain', '1000A:01:00.0', /lower case: 1000a:01:00.0/],
    ['surrounding spaces', ' 0000:43:00.0', /dddd:bb:dd\.f/],
    ['the empty string', '', /dddd:bb:dd\.f/],
  ])('refuses %s with INVALID_PCI_ADDRESS and a hint', (_what, value, hint) => {
    const error = caught(() => parsePciAddress(value));
    expect(error.code).toBe('ERR_GPUCC_INVALID_PCI_ADDRESS');
    expect(error.hint).toMatch(hint);
    expect(isPciAddress(value)).toBe(false);
  });

  it('refuses values that are not strings', () => {
    expect(caught(() => parsePciAddress(42 as unknown as string)).code).toBe('ERR_GPUCC_INVALID_PCI_ADDRESS');
    expect(isPciAddress(undefined)).toBe(false);
  });

  it('property: every kernel-formatted address is accepted unchanged', () => {
    fc.assert(fc.property(kernelAddress, (address) => parsePciAddress(address) === address));
  });

  it('property: anything accepted round-trips through its numbers in the kernel format', () => {
    const candidates = fc.oneof(
      kernelAddress,
      fc.string({ maxLength: 16 }),
      kernelAddress.map((a) => a.toUpperCase()),
    );
    fc.assert(
      fc.property(candidates, (value) => {
        let address: PciAddress;
        try {
          address = parsePciAddress(value);
        } catch (error) {
          return (error as GpuccError).code === 'ERR_GPUCC_INVALID_PCI_ADDRESS' && !isPciAddress(value);
        }
        const [domain, bus, rest] = address.split(':') as [string, string, string];
        const [device, fn] = rest.split('.') as [string, string];
        const d = Number.parseInt(device, 16);
        const f = Number(fn);
        const kernel = `${Number.parseInt(domain, 16).toString(16).padStart(4, '0')}:${Number.parseInt(bus, 16)
          .toString(16)
          .padStart(2, '0')}:${d.toString(16).padStart(2, '0')}.${f}`;
        return kernel === address && d <= 0x1f && f <= 7 && functionOf(address) === f;
      }),
    );
  });

  it('property: a character appended or prefixed is refused, except a hex digit that makes a 5-digit domain', () => {
    fc.assert(
      fc.property(kernelAddress, fc.string({ minLength: 1, maxLength: 3 }), (address, extra) => {
        const makesVmdDomain = /^[1-9a-f]$/.test(extra) && address.indexOf(':') === 4;
        return !isPciAddress(`${address}${extra}`) && isPciAddress(`${extra}${address}`) === makesVmdDomain;
      }),
    );
  });

  it('gives the slot, function and domain of an address, 4 or 5 domain digits', () => {
    const address = parsePciAddress('0000:43:00.3');
    expect(slotOf(address)).toBe('0000:43:00');
    expect(functionOf(address)).toBe(3);
    expect(pciDomainOf(address)).toBe(0);
    expect(isVmdDomainAddress(address)).toBe(false);
    const vmd = parsePciAddress('10000:01:00.2');
    expect(slotOf(vmd)).toBe('10000:01:00');
    expect(functionOf(vmd)).toBe(2);
    expect(pciDomainOf(vmd)).toBe(0x10000);
    expect(isVmdDomainAddress(vmd)).toBe(true);
    expect(isVmdDomainAddress(parsePciAddress('ffff:00:00.0'))).toBe(false);
  });

  it('orders addresses numerically', () => {
    const sorted = ['0000:43:00.1', '10000:01:00.0', '0000:0a:00.0', 'ffff:00:00.0', '0001:00:00.0', '0000:43:00.0']
      .map(parsePciAddress)
      .sort(comparePciAddresses);
    // string order would put 10000: before ffff:
    expect(sorted).toEqual([
      '0000:0a:00.0',
      '0000:43:00.0',
      '0000:43:00.1',
      '0001:00:00.0',
      'ffff:00:00.0',
      '10000:01:00.0',
    ]);
  });
});

describe('CC modes', () => {
  it.each([...CC_MODES])('accepts %s', (mode) => {
    expect(parseCcMode(mode)).toBe(mode);
    expect(isCcMode(mode)).toBe(true);
  });

  it.each([
    ['ON', /lower-case: use "on"/],
    ['PPCIE', /lower-case: use "ppcie"/],
    ['on\n', /one of: on, off, devtools, ppcie/],
    [' on', /one of/],
    ['', /one of/],
    ['true', /one of/],
    ['protected', /one of/],
  ])('refuses %j with INVALID_CC_MODE', (value, hint) => {
    const error = caught(() => parseCcMode(value));
    expect(error.code).toBe('ERR_GPUCC_INVALID_CC_MODE');
    expect(error.hint).toMatch(hint);
    expect(isCcMode(value)).toBe(false);
  });

  it('property: only the four modes are accepted', () => {
    fc.assert(fc.property(fc.string(), (value) => isCcMode(value) === (CC_MODES as readonly string[]).includes(value)));
  });
});

describe('Kubernetes labels', () => {
  it.each([
    'nvidia.com/cc.mode',
    'nvidia.com/cc.mode.state',
    'nvidia.com/gpu.deploy.kata-device-plugin',
    'simple',
    `a.b/${'x'.repeat(63)}`,
  ])('accepts key %s', (key) => {
    expect(parseLabelKey(key)).toBe(key);
  });

  it.each([
    ['an empty name', 'nvidia.com/'],
    ['an empty prefix', '/mode'],
    ['an upper-case prefix', 'NVIDIA.com/mode'],
    ['a name of 64 characters', `nvidia.com/${'x'.repeat(64)}`],
    ['a name ending with -', 'nvidia.com/mode-'],
    ['two slashes', 'nvidia.com/a/b'],
    ['a space', 'nvidia.com/cc mode'],
    ['the empty string', ''],
  ])('refuses a key with %s', (_what, key) => {
    expect(caught(() => parseLabelKey(key)).code).toBe('ERR_GPUCC_INVALID_LABEL_KEY');
    expect(isLabelKey(key)).toBe(false);
  });

  it.each(['', 'on', 'a', 'A-b_c.d', 'x'.repeat(63)])('accepts value %j', (value) => {
    expect(parseLabelValue(value)).toBe(value);
  });

  it.each(['-on', 'on-', 'o n', 'x'.repeat(64), 'on\n', 'a/b'])('refuses value %j', (value) => {
    expect(caught(() => parseLabelValue(value)).code).toBe('ERR_GPUCC_INVALID_LABEL_VALUE');
    expect(isLabelValue(value)).toBe(false);
  });

  it('applies an allow-list and names the key and the allowed values', () => {
    expect(parseLabelValue('on', CC_MODES, 'nvidia.com/cc.mode')).toBe('on');
    const error = caught(() => parseLabelValue('maybe', CC_MODES, 'nvidia.com/cc.mode'));
    expect(error.code).toBe('ERR_GPUCC_INVALID_LABEL_VALUE');
    expect(error.message).toContain('nvidia.com/cc.mode');
    expect(error.hint).toContain('"devtools"');
  });

  it('property: accepted values are at most 63 characters and alphanumeric at both ends', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 70 }), (value) => {
        if (!isLabelValue(value)) return true;
        return value === '' || (value.length <= 63 && /^[A-Za-z0-9]/.test(value) && /[A-Za-z0-9]$/.test(value));
      }),
    );
  });
});

describe('CDI names', () => {
  it.each([
    ['vendor', 'nvidia.com'],
    ['class', 'pgpu'],
    ['class', 'GH100_H100_PCIE'],
    ['device', '8'],
    ['device', '0000:43:00.0'],
    ['device', 'gpu-0'],
  ] as const)('accepts %s %s', (part, value) => {
    expect(parseCdiName(part, value)).toBe(value);
  });

  it.each([
    ['class', '2330', 'a bare hex id (starts with a digit)'],
    ['class', 'pgpu-', 'a trailing -'],
    ['class', 'p gpu', 'a space'],
    ['class', `a${'b'.repeat(63)}`, '64 characters'],
    ['class', '', 'the empty string'],
    ['vendor', '1nvidia.com', 'a leading digit'],
    ['vendor', 'nvidia/com', 'a slash'],
    ['device', '-8', 'a leading -'],
    ['device', '8:', 'a trailing :'],
    ['device', '../8', 'a path'],
  ] as const)('refuses %s %j (%s)', (part, value, _why) => {
    const error = caught(() => parseCdiName(part, value));
    expect(error.code).toBe('ERR_GPUCC_INVALID_CDI_NAME');
    expect(error.details).toMatchObject({ part, value });
    expect(isCdiName(part, value)).toBe(false);
  });

  it('splits and validates a kind at the first slash', () => {
    expect(parseCdiKind('nvidia.com/pgpu')).toEqual({ vendor: 'nvidia.com', class: 'pgpu' });
    expect(caught(() => parseCdiKind('nvidia.com')).code).toBe('ERR_GPUCC_INVALID_CDI_NAME');
    expect(caught(() => parseCdiKind('nvidia.com/a/b')).code).toBe('ERR_GPUCC_INVALID_CDI_NAME');
  });

  it('property: accepted device names never hold a slash or start with a dot', () => {
    fc.assert(
      fc.property(
        fc.string(),
        (value) => !isCdiName('device', value) || (!value.includes('/') && !value.startsWith('.')),
      ),
    );
  });

  it('property: every non-negative integer is a valid device name', () => {
    fc.assert(fc.property(fc.nat(), (n) => isCdiName('device', String(n))));
  });
});
