/**
 * gRPC's framing on HTTP/2, the part the kubelet device plugin API uses: unary and server-streaming
 * calls, uncompressed protobuf messages, statuses in trailers. The rules are written up in
 * docs/facts/kubelet-device-plugin.md#grpc-on-the-wire; ./grpc-server.ts and ./grpc-client.ts build on
 * this file.
 */

/** The status codes of gRPC (grpc/doc/statuscodes.md); the name is what logs and errors show. */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatusName = keyof typeof GRPC_STATUS;

const STATUS_NAMES = new Map(Object.entries(GRPC_STATUS).map(([name, code]) => [code as number, name]));

export function statusName(code: number): string {
  return STATUS_NAMES.get(code) ?? `status ${code}`;
}

/**
 * A call that ended with a status other than OK. `code` and `details` are named as grpc-js names them,
 * so that callers read either the same way.
 */
export class GrpcCallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${code} ${statusName(code)}: ${details}`);
    this.name = 'GrpcCallError';
  }
}

/** The largest message either side accepts: gRPC's default receive limit, 4 MiB. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export const GRPC_CONTENT_TYPE = 'application/grpc';

/** One length-prefixed message: flag byte 0 (not compressed), 4-byte big-endian length, the bytes. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/**
 * Reassembles length-prefixed messages from DATA chunks, which HTTP/2 may split or join anywhere.
 * Throws GrpcCallError for a compressed message (never negotiated) or one over the size limit.
 */
export class MessageReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxBytes = MAX_MESSAGE_BYTES) {}

  /** Adds a chunk and returns the messages it completed. */
  push(chunk: Buffer): Buffer[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const messages: Buffer[] = [];
    while (this.pendingBytes >= 5) {
      const head = this.pending.length === 1 ? this.pending[0]! : this.flatten();
      if (head[0] !== 0) {
        throw new GrpcCallError(GRPC_STATUS.UNIMPLEMENTED, 'compressed messages are not supported');
      }
      const length = head.readUInt32BE(1);
      if (length > this.maxBytes) {
        throw new GrpcCallError(
          GRPC_STATUS.RESOURCE_EXHAUSTED,
          `message of ${length} bytes is over the limit of ${this.maxBytes}`,
        );
      }
      if (this.pendingBytes < 5 + length) break;
      const all = this.pending.length === 1 ? head : this.flatten();
      messages.push(all.subarray(5, 5 + length));
      const rest = all.subarray(5 + length);
      this.pending = rest.length ? [rest] : [];
      this.pendingBytes = rest.length;
    }
    return messages;
  }

  /** Whether a message was started and not finished (the stream ended in the middle of one). */
  get partial(): boolean {
    return this.pendingBytes > 0;
  }

  private flatten(): Buffer {
    const joined = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [joined];
    return joined;
  }
}

/**
 * `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%`, become `%XX` of the
 * text's UTF-8 bytes.
 */
export function encodeGrpcMessage(text: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeGrpcMessage(value: string): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const hex = value.slice(i + 1, i + 3);
    if (value[i] === '%' && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(value.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

const TIMEOUT_UNITS_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/** `grpc-timeout`: up to 8 digits and a unit (H M S m u n); undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  const match = typeof value === 'string' ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  return match ? Number(match[1]) * TIMEOUT_UNITS_MS[match[2]!]! : undefined;
}

/** A deadline as `grpc-timeout`, in milliseconds while it fits the 8 digits, else in seconds. */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  return whole < 1e8 ? `${whole}m` : `${Math.min(Math.ceil(whole / 1000), 99_999_999)}S`;
}

/** The status a peer's HTTP answer means when it carries no grpc-status (PROTOCOL-HTTP2.md's table). */
export function statusOfHttp(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}
