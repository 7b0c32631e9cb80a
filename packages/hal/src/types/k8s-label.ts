import { GpuccError } from '../errors/index.js';

// Kubernetes validation rules (apimachinery IsQualifiedName / IsValidLabelValue).
const NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined) {
    if (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) {
      return 'the prefix must be a lower-case DNS subdomain of at most 253 characters';
    }
  }
  if (name.length === 0 || name.length > 63) return 'the name part must be 1 to 63 characters';
  if (!NAME.test(name)) return 'the name part must be alphanumeric at both ends with only - _ . inside';
  return undefined;
}

export function isLabelKey(key: unknown): key is string {
  return typeof key === 'string' && labelKeyProblem(key) === undefined;
}

export function parseLabelKey(key: string): string {
  const problem = typeof key === 'string' ? labelKeyProblem(key) : 'a label key must be a string';
  if (problem === undefined) return key;
  throw new GpuccError('ERR_GPUCC_INVALID_LABEL_KEY', `invalid label key ${JSON.stringify(key)}`, {
    hint: problem,
    details: { key },
  });
}

export function isLabelValue(value: unknown): value is string {
  return typeof value === 'string' && (value === '' || (value.length <= 63 && NAME.test(value)));
}

/**
 * Validates a label value by the Kubernetes rules and, when given, an allow-list
 * (e.g. the CC modes for `nvidia.com/cc.mode`).
 */
export function parseLabelValue(value: string, allowed?: readonly string[], key?: string): string {
  const where = key ? ` for ${key}` : '';
  if (!isLabelValue(value)) {
    throw new GpuccError('ERR_GPUCC_INVALID_LABEL_VALUE', `invalid label value ${JSON.stringify(value)}${where}`, {
      hint: 'a label value is empty or at most 63 characters, alphanumeric at both ends with only - _ . inside',
      details: { value, key },
    });
  }
  if (allowed && !allowed.includes(value)) {
    throw new GpuccError(
      'ERR_GPUCC_INVALID_LABEL_VALUE',
      `label value ${JSON.stringify(value)}${where} is not allowed`,
      {
        hint: `use one of: ${allowed.map((v) => JSON.stringify(v)).join(', ')}`,
        details: { value, key, allowed },
      },
    );
  }
  return value;
}
