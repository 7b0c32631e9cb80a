import { GpuccError } from '../errors/index.js';

// CDI naming rules (docs/facts/cdi.md#names). Vendor and class share one pattern; device names may start with a
// digit.
const VENDOR_OR_CLASS = /^[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const DEVICE_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$/;
const MAX_CLASS = 63;
const MAX_VENDOR = 253;

export type CdiNamePart = 'vendor' | 'class' | 'device';

function problemOf(part: CdiNamePart, value: string): string | undefined {
  if (typeof value !== 'string' || value.length === 0) return `a CDI ${part} name must be a non-empty string`;
  if (part === 'device') {
    return DEVICE_NAME.test(value)
      ? undefined
      : 'a CDI device name starts and ends with a letter or digit, with only letters, digits, _ . : - inside';
  }
  if (!VENDOR_OR_CLASS.test(value)) {
    return `a CDI ${part} starts with a letter, ends with a letter or digit, with only letters, digits, _ . - inside`;
  }
  const max = part === 'class' ? MAX_CLASS : MAX_VENDOR;
  if (value.length > max) return `a CDI ${part} is at most ${max} characters`;
  return undefined;
}

export function isCdiName(part: CdiNamePart, value: string): boolean {
  return problemOf(part, value) === undefined;
}

export function parseCdiName(part: CdiNamePart, value: string): string {
  const problem = problemOf(part, value);
  if (problem === undefined) return value;
  throw new GpuccError('ERR_GPUCC_INVALID_CDI_NAME', `invalid CDI ${part} name ${JSON.stringify(value)}`, {
    hint: problem,
    details: { part, value },
  });
}

/** `vendor/class`, validated. */
export function parseCdiKind(kind: string): { vendor: string; class: string } {
  const slash = kind.indexOf('/');
  if (slash < 0) {
    throw new GpuccError('ERR_GPUCC_INVALID_CDI_NAME', `invalid CDI kind ${JSON.stringify(kind)}`, {
      hint: 'a CDI kind is vendor/class, e.g. nvidia.com/pgpu',
      details: { kind },
    });
  }
  return { vendor: parseCdiName('vendor', kind.slice(0, slash)), class: parseCdiName('class', kind.slice(slash + 1)) };
}
