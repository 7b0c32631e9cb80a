import { ERROR_CODES, type GpuccErrorCode } from './codes.js';

export interface GpuccErrorOptions {
  /** What the user can do about it, in one sentence. */
  hint: string;
  cause?: unknown;
  /** Structured facts for logs and JSON output (path, errno, device...). */
  details?: Record<string, unknown>;
}

// A brand that survives module duplication (two bundled copies of the hal), where instanceof does not.
const BRAND = Symbol.for('gpucc.GpuccError');

/** The one error type of gpucc: a stable code, a message, a hint and the underlying cause. */
export class GpuccError extends Error {
  override readonly name = 'GpuccError';
  readonly code: GpuccErrorCode;
  readonly hint: string;
  readonly details: Record<string, unknown>;
  readonly [BRAND] = true;

  constructor(code: GpuccErrorCode, message: string, options: GpuccErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  /** A plain object for JSON logs and `--output json`. */
  toJSON(): Record<string, unknown> {
    const cause = this.cause instanceof Error ? this.cause.message : this.cause;
    return {
      code: this.code,
      message: this.message,
      hint: this.hint,
      ...(cause === undefined ? {} : { cause }),
      ...(Object.keys(this.details).length ? { details: this.details } : {}),
    };
  }

  /** One human line: "ERR_GPUCC_X: message (hint: ...)". */
  describe(): string {
    return `${this.code}: ${this.message}\n  hint: ${this.hint}`;
  }
}

export function isGpuccError(value: unknown, code?: GpuccErrorCode): value is GpuccError {
  const branded = typeof value === 'object' && value !== null && (value as { [BRAND]?: boolean })[BRAND] === true;
  return branded && (code === undefined || (value as GpuccError).code === code);
}

export function errorSummary(code: GpuccErrorCode): string {
  return ERROR_CODES[code];
}

/** The errno of a Node system error (`EBUSY`, `ENOENT`...) or of a GpuccError wrapping one, if any. */
export function errnoOf(error: unknown): string | undefined {
  if (isGpuccError(error)) {
    const errno = error.details.errno;
    return typeof errno === 'string' ? errno : undefined;
  }
  if (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string') {
    return /^E[A-Z0-9]+$/.test(error.code) ? error.code : undefined;
  }
  return undefined;
}
