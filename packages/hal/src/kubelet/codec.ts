import { GpuccError } from '../errors/index.js';
import { type ProtoField, type ProtoJson, type ProtoMessage, protoInvalid } from './proto-json.js';

/**
 * Protocol buffer codecs for the messages of our own .proto, built once from its JSON descriptor
 * (`protoToJson`). They replace protobufjs and `@grpc/proto-loader`, whose set-up (reflection
 * descriptors, generated code) took about 40 ms of the device plugin's start and 280 KB of its bundle.
 * Only the subset the .proto uses is supported (string, bool, int32, int64, nested messages,
 * repeated fields, map<string, string>); anything else is refused when the codecs are built.
 *
 * Decoded messages look as proto-loader's `keepCase, longs: String, defaults: true` made them
 * (docs/facts/kubelet-device-plugin.md#loading-the-proto-in-node): every field present, int64 as a
 * decimal string, unset messages as null, empty repeated fields as [] and maps as {}. Encoding follows
 * proto3: scalars at their default value and unset messages are left out. Unknown fields are skipped.
 * The wire format: https://protobuf.dev/programming-guides/encoding/ (varints, tags, wire types).
 */

/** Encodes a message object to its wire bytes, and decodes wire bytes to a message object. */
export interface MessageCodec<T = unknown> {
  readonly name: string;
  encode(message: T): Buffer;
  decode(bytes: Uint8Array): T;
}

type Scalar = 'string' | 'bool' | 'int32' | 'int64';
const SCALARS: ReadonlySet<string> = new Set<Scalar>(['string', 'bool', 'int32', 'int64']);

// Wire types (the low 3 bits of a tag).
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

interface FieldSpec {
  name: string;
  id: number;
  repeated: boolean;
  /** A scalar, `map` (string to string) or `message`. */
  kind: Scalar | 'map' | 'message';
  /** For `message`: the codec of the field's type, resolved once every message is known. */
  message?: CompiledMessage;
}

interface CompiledMessage {
  name: string;
  fields: FieldSpec[];
  byId: Map<number, FieldSpec>;
}

function invalid(problem: string): GpuccError {
  return protoInvalid(`: ${problem}`);
}

/** Builds a codec for every message of the descriptor's only package, by its short name. */
export function buildCodecs(json: ProtoJson): Map<string, MessageCodec> {
  const packages = Object.values(json.nested);
  if (packages.length !== 1) throw invalid(`expected one package, found ${packages.length}`);
  const compiled = new Map<string, CompiledMessage>();
  const declared = Object.entries(packages[0]!.nested).filter(
    (entry): entry is [string, ProtoMessage] => 'fields' in entry[1],
  );
  for (const [name, message] of declared) {
    const fields = Object.entries(message.fields).map(([fieldName, field]) => fieldSpec(name, fieldName, field));
    compiled.set(name, { name, fields, byId: new Map(fields.map((f) => [f.id, f])) });
  }
  for (const [name, message] of declared) {
    for (const field of compiled.get(name)!.fields) {
      if (field.kind !== 'message') continue;
      const type = message.fields[field.name]!.type;
      const target = compiled.get(type);
      if (target === undefined) throw invalid(`${name}.${field.name} has the unknown type ${type}`);
      field.message = target;
    }
  }
  return new Map(
    [...compiled.values()].map((m) => [
      m.name,
      {
        name: m.name,
        encode: (value: unknown) => encodeMessage(m, value as Record<string, unknown>),
        decode: (bytes: Uint8Array) => decodeMessage(m, new Reader(bytes, m.name)),
      },
    ]),
  );
}

function fieldSpec(message: string, name: string, field: ProtoField): FieldSpec {
  const repeated = field.rule === 'repeated';
  if (field.keyType !== undefined) {
    if (field.keyType !== 'string' || field.type !== 'string') {
      throw invalid(`${message}.${name}: only map<string, string> is supported`);
    }
    return { name, id: field.id, repeated: false, kind: 'map' };
  }
  const kind = SCALARS.has(field.type) ? (field.type as Scalar) : 'message';
  if (kind === 'message' && /^[a-z]/.test(field.type)) {
    throw invalid(`${message}.${name}: the scalar type ${field.type} is not supported`);
  }
  return { name, id: field.id, repeated, kind };
}

// ---------------------------------------------------------------------------------------------
// Encoding: the size of a message is computed first, then it is written into one buffer.

const byteLength = (s: string) => Buffer.byteLength(s, 'utf8');

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/** An int64 or int32 as the 64-bit two's complement a varint carries (negative numbers take 10 bytes). */
function toUint64(value: unknown): bigint {
  if (typeof value === 'bigint') return BigInt.asUintN(64, value);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new TypeError(`${value} is not an integer`);
    return BigInt.asUintN(64, BigInt(value));
  }
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt.asUintN(64, BigInt(value));
  throw new TypeError(`${String(value)} is not an integer`);
}

function bigVarintSize(value: bigint): number {
  let size = 1;
  while (value >= 0x80n) {
    value >>= 7n;
    size++;
  }
  return size;
}

const isDefault = (field: FieldSpec, value: unknown): boolean => {
  if (value === undefined || value === null) return true;
  switch (field.kind) {
    case 'string':
      return value === '';
    case 'bool':
      return value === false;
    case 'int32':
    case 'int64':
      return value === 0 || value === '0' || value === 0n;
    default:
      return false;
  }
};

function tagSize(id: number): number {
  return varintSize(id * 8);
}

function scalarSize(kind: Scalar, value: unknown): number {
  switch (kind) {
    case 'string': {
      const n = byteLength(value as string);
      return varintSize(n) + n;
    }
    case 'bool':
      return 1;
    default:
      return bigVarintSize(toUint64(value));
  }
}

function entries(value: unknown): Array<[string, string]> {
  return value instanceof Map ? [...value.entries()] : Object.entries(value as Record<string, string>);
}

function entrySize(key: string, value: string): number {
  const k = byteLength(key);
  const v = byteLength(value);
  return 1 + varintSize(k) + k + 1 + varintSize(v) + v;
}

function messageSize(m: CompiledMessage, value: Record<string, unknown>): number {
  let size = 0;
  for (const field of m.fields) {
    const v = value[field.name];
    if (field.kind === 'map') {
      if (v === undefined || v === null) continue;
      for (const [key, val] of entries(v)) {
        const n = entrySize(key, val);
        size += tagSize(field.id) + varintSize(n) + n;
      }
    } else if (field.repeated) {
      if (v === undefined || v === null) continue;
      for (const item of v as unknown[]) size += tagSize(field.id) + valueSize(field, item);
    } else if (!isDefault(field, v)) {
      size += tagSize(field.id) + valueSize(field, v);
    }
  }
  return size;
}

function valueSize(field: FieldSpec, value: unknown): number {
  if (field.kind === 'message') {
    const n = messageSize(field.message!, (value ?? {}) as Record<string, unknown>);
    return varintSize(n) + n;
  }
  return scalarSize(field.kind as Scalar, value);
}

class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(value: number): void {
    while (value >= 0x80) {
      this.buf[this.pos++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 128);
    }
    this.buf[this.pos++] = value;
  }

  bigVarint(value: bigint): void {
    while (value >= 0x80n) {
      this.buf[this.pos++] = Number(value & 0x7fn) | 0x80;
      value >>= 7n;
    }
    this.buf[this.pos++] = Number(value);
  }

  string(value: string): void {
    this.varint(byteLength(value));
    this.pos += this.buf.write(value, this.pos, 'utf8');
  }
}

function writeValue(w: Writer, field: FieldSpec, value: unknown): void {
  switch (field.kind) {
    case 'string':
      w.varint(field.id * 8 + LENGTH_DELIMITED);
      w.string(value as string);
      return;
    case 'bool':
      w.varint(field.id * 8 + VARINT);
      w.varint(value ? 1 : 0);
      return;
    case 'int32':
    case 'int64':
      w.varint(field.id * 8 + VARINT);
      w.bigVarint(toUint64(value));
      return;
    default: {
      const nested = (value ?? {}) as Record<string, unknown>;
      w.varint(field.id * 8 + LENGTH_DELIMITED);
      w.varint(messageSize(field.message!, nested));
      writeMessage(w, field.message!, nested);
    }
  }
}

function writeMessage(w: Writer, m: CompiledMessage, value: Record<string, unknown>): void {
  for (const field of m.fields) {
    const v = value[field.name];
    if (field.kind === 'map') {
      if (v === undefined || v === null) continue;
      for (const [key, val] of entries(v)) {
        w.varint(field.id * 8 + LENGTH_DELIMITED);
        w.varint(entrySize(key, val));
        w.varint(1 * 8 + LENGTH_DELIMITED);
        w.string(key);
        w.varint(2 * 8 + LENGTH_DELIMITED);
        w.string(val);
      }
    } else if (field.repeated) {
      if (v === undefined || v === null) continue;
      for (const item of v as unknown[]) writeValue(w, field, item);
    } else if (!isDefault(field, v)) {
      writeValue(w, field, v);
    }
  }
}

function encodeMessage(m: CompiledMessage, value: Record<string, unknown>): Buffer {
  const message = value ?? {};
  const w = new Writer(Buffer.allocUnsafe(messageSize(m, message)));
  writeMessage(w, m, message);
  return w.buf;
}

// ---------------------------------------------------------------------------------------------
// Decoding.

class Reader {
  pos = 0;
  end: number;
  constructor(
    readonly buf: Uint8Array,
    readonly message: string,
  ) {
    this.end = buf.length;
  }

  fail(problem: string): never {
    throw new GpuccError('ERR_GPUCC_PROTO_MALFORMED', `cannot decode a ${this.message}: ${problem}`, {
      hint: 'the peer sent bytes that are not a message of the device plugin API v1beta1',
      details: { message: this.message, offset: this.pos },
    });
  }

  byte(): number {
    if (this.pos >= this.end) this.fail('the message ends inside a field');
    return this.buf[this.pos++]!;
  }

  /** A varint's low 32 bits, unsigned (tags, lengths, int32 before its sign is applied). */
  uint32(): number {
    let result = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      const b = this.byte();
      if (shift < 32) result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
    }
    return this.fail('a varint is longer than 10 bytes');
  }

  /** A whole varint as the unsigned 64-bit integer it encodes. */
  uint64(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asUintN(64, result);
    }
    return this.fail('a varint is longer than 10 bytes');
  }

  /** Whether a varint is non-zero (a bool; any bit counts, as protobuf's own decoders read it). */
  bool(): boolean {
    let any = false;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      if ((b & 0x7f) !== 0) any = true;
      if ((b & 0x80) === 0) return any;
    }
    return this.fail('a varint is longer than 10 bytes');
  }

  /** The end offset of a length-delimited field starting here. */
  limit(): number {
    const length = this.uint32();
    if (length > this.end - this.pos) this.fail(`a field of ${length} bytes runs past the end of the message`);
    return this.pos + length;
  }

  string(): string {
    const end = this.limit();
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, end - this.pos).toString('utf8');
    this.pos = end;
    return s;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case VARINT:
        this.uint64();
        return;
      case FIXED64:
        this.advance(8);
        return;
      case LENGTH_DELIMITED:
        this.pos = this.limit();
        return;
      case FIXED32:
        this.advance(4);
        return;
      default:
        this.fail(`wire type ${wireType} is not valid in proto3`);
    }
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) this.fail('the message ends inside a field');
    this.pos += n;
  }

  /** Reads a nested message or map entry in [pos, end), then resumes after it. */
  within<T>(end: number, read: () => T): T {
    const outer = this.end;
    this.end = end;
    const value = read();
    this.end = outer;
    return value;
  }
}

function defaultOf(field: FieldSpec): unknown {
  if (field.repeated) return [];
  switch (field.kind) {
    case 'string':
      return '';
    case 'bool':
      return false;
    case 'int32':
      return 0;
    case 'int64':
      return '0';
    case 'map':
      return {};
    default:
      return null;
  }
}

function readScalar(r: Reader, kind: Scalar): unknown {
  switch (kind) {
    case 'string':
      return r.string();
    case 'bool':
      return r.bool();
    case 'int32':
      return r.uint32() | 0;
    default:
      return BigInt.asIntN(64, r.uint64()).toString();
  }
}

function expectedWireType(field: FieldSpec): number {
  return field.kind === 'bool' || field.kind === 'int32' || field.kind === 'int64' ? VARINT : LENGTH_DELIMITED;
}

function readEntry(r: Reader): [string, string] {
  let key = '';
  let value = '';
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 1 * 8 + LENGTH_DELIMITED) key = r.string();
    else if (tag === 2 * 8 + LENGTH_DELIMITED) value = r.string();
    else r.skip(tag & 7);
  }
  return [key, value];
}

function decodeMessage(m: CompiledMessage, r: Reader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of m.fields) out[field.name] = defaultOf(field);
  while (r.pos < r.end) {
    const tag = r.uint32();
    const wireType = tag & 7;
    const field = m.byId.get(tag >>> 3);
    if (field === undefined) {
      r.skip(wireType);
      continue;
    }
    if (field.kind === 'map') {
      if (wireType !== LENGTH_DELIMITED) r.fail(`field ${field.name} has wire type ${wireType}`);
      const [key, value] = r.within(r.limit(), () => readEntry(r));
      const map = out[field.name] as Record<string, string>;
      // A key named __proto__ would set the object's prototype instead of an entry.
      if (key === '__proto__')
        Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
      else map[key] = value;
      continue;
    }
    const expected = expectedWireType(field);
    // A repeated varint field may come packed (one length-delimited run of varints).
    if (field.repeated && expected === VARINT && wireType === LENGTH_DELIMITED) {
      const list = out[field.name] as unknown[];
      r.within(r.limit(), () => {
        while (r.pos < r.end) list.push(readScalar(r, field.kind as Scalar));
      });
      continue;
    }
    if (wireType !== expected) r.fail(`field ${field.name} has wire type ${wireType}, not ${expected}`);
    const value =
      field.kind === 'message'
        ? r.within(r.limit(), () => decodeMessage(field.message!, r))
        : readScalar(r, field.kind as Scalar);
    if (field.repeated) (out[field.name] as unknown[]).push(value);
    else out[field.name] = value;
  }
  return out;
}
