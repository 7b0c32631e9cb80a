import { BLACKWELL_CHIPS, GpuccError, gpuArchOf, HOPPER_CHIP, NVSWITCH_GEN3_DEVICE_ID } from '@gpucc/hal';

/**
 * Which devices can take which mode, from the PCI device ID alone (docs/facts/cc-mode.md#capability-by-device-id,
 * gpu-admin-tools `gpu/devid_chips.py`): the name is a label, the range decides. Pure data.
 */

export type Arch = 'blackwell' | 'hopper' | 'older';

export interface IdRange {
  first: number;
  last: number;
}

// The chip table lives in the hal (one place for the device-plugin's topology rules too).
export const BLACKWELL_RANGES: readonly IdRange[] = BLACKWELL_CHIPS.map(({ first, last }) => ({ first, last }));
export const HOPPER_RANGE: IdRange = { first: HOPPER_CHIP.first, last: HOPPER_CHIP.last };

/** NVSwitch gen3 (Hopper era): the only switch with PPCIe. LR10 (0x1af1, A100 era) has none. */
export const NVSWITCH_GEN3 = NVSWITCH_GEN3_DEVICE_ID;

export interface CapabilityTable {
  /** GPUs that can query and set a CC mode. */
  cc: readonly IdRange[];
  /** GPUs and NVSwitches that can take PPCIe. */
  ppcie: readonly IdRange[];
  /** Whether `cc` / `ppcie` came from a flag rather than the built-in ranges (shown by status). */
  overridden: { cc: boolean; ppcie: boolean };
}

export const DEFAULT_CAPABILITY: CapabilityTable = {
  cc: [...BLACKWELL_RANGES, HOPPER_RANGE],
  ppcie: [HOPPER_RANGE, { first: NVSWITCH_GEN3, last: NVSWITCH_GEN3 }],
  overridden: { cc: false, ppcie: false },
};

const inRanges = (id: number, ranges: readonly IdRange[]) => ranges.some((r) => id >= r.first && id <= r.last);

export function archOf(deviceId: number): Arch {
  const arch = gpuArchOf(deviceId);
  return arch === 'pre-hopper' ? 'older' : arch;
}

export function isCcCapable(kind: 'gpu' | 'nvswitch', deviceId: number, table: CapabilityTable): boolean {
  return kind === 'gpu' && inRanges(deviceId, table.cc);
}

export function isPpcieCapable(_kind: 'gpu' | 'nvswitch', deviceId: number, table: CapabilityTable): boolean {
  // One list for both kinds: the Hopper GPU range and the gen3 switch ID do not overlap.
  return inRanges(deviceId, table.ppcie);
}

const ID = /^(?:0x)?([0-9a-f]{1,4})$/i;

/**
 * `0x2330,0x2335` or `0x2300-0x237f` (comma or space separated), for `--cc-capable-ids` and
 * `--ppcie-capable-ids`. A bad entry is ERR_GPUCC_INVALID_CONFIG naming the flag.
 */
export function parseIdRanges(text: string, flag: string): IdRange[] {
  const ranges: IdRange[] = [];
  for (const part of text.split(/[\s,]+/).filter(Boolean)) {
    const [a, b, extra] = part.split('-');
    const first = ID.exec(a ?? '');
    const last = b === undefined ? first : ID.exec(b);
    if (!first || !last || extra !== undefined) {
      throw new GpuccError(
        'ERR_GPUCC_INVALID_CONFIG',
        `invalid PCI device ID or range ${JSON.stringify(part)} in ${flag}`,
        {
          hint: `give hex IDs or ranges, e.g. ${flag} 0x2330,0x2335 or ${flag} 0x2300-0x237f`,
          details: { option: flag, value: text },
        },
      );
    }
    const range = { first: Number.parseInt(first[1]!, 16), last: Number.parseInt(last[1]!, 16) };
    if (range.last < range.first) {
      throw new GpuccError('ERR_GPUCC_INVALID_CONFIG', `range ${part} in ${flag} ends before it starts`, {
        hint: 'write ranges low-high, e.g. 0x2300-0x237f',
        details: { option: flag, value: text },
      });
    }
    ranges.push(range);
  }
  if (ranges.length === 0) {
    throw new GpuccError('ERR_GPUCC_INVALID_CONFIG', `${flag} names no device ID`, {
      hint: `leave ${flag} unset for the built-in ranges, or give IDs such as 0x2330`,
      details: { option: flag, value: text },
    });
  }
  return ranges;
}

/** The table with the flags' overrides applied (each replaces its built-in list). */
export function capabilityTable(overrides: { cc?: string; ppcie?: string }): CapabilityTable {
  return {
    cc: overrides.cc ? parseIdRanges(overrides.cc, '--cc-capable-ids') : DEFAULT_CAPABILITY.cc,
    ppcie: overrides.ppcie ? parseIdRanges(overrides.ppcie, '--ppcie-capable-ids') : DEFAULT_CAPABILITY.ppcie,
    overridden: { cc: Boolean(overrides.cc), ppcie: Boolean(overrides.ppcie) },
  };
}

// gpu-admin-tools `gpu/devid_names.py` (docs/facts/cc-mode.md#device-names); 0x2342 is listed twice and the later
// GH200 wins there too.
const NAMES: ReadonlyArray<[string, readonly number[]]> = [
  ['H100', [0x2313, 0x2321, 0x2330, 0x2331, 0x2336, 0x2337, 0x2338, 0x2339, 0x233d]],
  ['H200', [0x2335, 0x233b]],
  ['GH200', [0x2342, 0x2343, 0x2345, 0x2348]],
  ['H800', [0x2322, 0x2324, 0x233a]],
  ['H20', [0x2309, 0x230c, 0x230e, 0x2328, 0x2329, 0x232c]],
  ['B200', [0x2901]],
  ['GB200', [0x2941]],
];

/** The short model name the CC tools use, when the ID is one they name. */
export function modelName(kind: 'gpu' | 'nvswitch', deviceId: number): string | undefined {
  if (kind === 'nvswitch')
    return deviceId === NVSWITCH_GEN3 ? 'NVSwitch_gen3' : deviceId === 0x1af1 ? 'LR10' : undefined;
  return NAMES.find(([, ids]) => ids.includes(deviceId))?.[0];
}
