import { GpuccError } from '../errors/index.js';

/**
 * A parser for the small part of proto3 that gpucc's own .proto uses (a package, messages with
 * scalar, message, repeated and map fields, services with unary and server-streaming methods), into
 * the JSON descriptor that protobufjs takes, from which ./codec.ts builds our codecs. The binaries carry
 * no protobufjs (its set-up cost the device plugin about 40 ms of start-up); a test checks that this
 * output equals protobufjs' own parse of the same text. Anything outside that subset is refused with
 * the line it is on, never guessed.
 */

export interface ProtoField {
  rule?: 'repeated';
  keyType?: string;
  type: string;
  id: number;
}
export interface ProtoMessage {
  fields: Record<string, ProtoField>;
}
export interface ProtoMethod {
  requestType: string;
  responseType: string;
  requestStream?: true;
  responseStream?: true;
}
export interface ProtoService {
  methods: Record<string, ProtoMethod>;
}
export interface ProtoNamespace {
  nested: Record<string, ProtoMessage | ProtoService>;
}
export interface ProtoJson {
  nested: Record<string, ProtoNamespace>;
}

interface Token {
  text: string;
  line: number;
}

const TOKEN = /\s+|\/\/[^\n]*|\/\*[\s\S]*?\*\/|"[^"\n]*"|[A-Za-z_][A-Za-z0-9_.]*|\d+|[{}()<>;=,]/y;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TYPE_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const MAP_KEY_TYPES = new Set([
  'int32',
  'int64',
  'uint32',
  'uint64',
  'sint32',
  'sint64',
  'fixed32',
  'fixed64',
  'sfixed32',
  'sfixed64',
  'bool',
  'string',
]);

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    const at = TOKEN.lastIndex;
    const match = TOKEN.exec(text);
    if (match === null) throw invalid(`unexpected character ${JSON.stringify(text[at])}`, line);
    const value = match[0];
    if (!/^\s/.test(value) && !value.startsWith('//') && !value.startsWith('/*')) tokens.push({ text: value, line });
    line += value.split('\n').length - 1;
  }
  return tokens;
}

/** The one error of a broken embedded .proto (its parse, its codecs, its services): a build defect. */
export function protoInvalid(problem: string, details: Record<string, unknown> = {}): GpuccError {
  return new GpuccError('ERR_GPUCC_PROTO_INVALID', `embedded .proto${problem}`, {
    hint: 'the API definition compiled into this binary is broken: this is a build defect, report it',
    details,
  });
}

function invalid(problem: string, line: number): GpuccError {
  return protoInvalid(`, line ${line}: ${problem}`, { line });
}

class Parser {
  private at = 0;
  constructor(private readonly tokens: Token[]) {}

  get done(): boolean {
    return this.at >= this.tokens.length;
  }

  private get line(): number {
    return (this.tokens[this.at] ?? this.tokens.at(-1))?.line ?? 1;
  }

  peek(): string | undefined {
    return this.tokens[this.at]?.text;
  }

  next(): string {
    const token = this.tokens[this.at++];
    if (token === undefined) throw invalid('unexpected end of text', this.line);
    return token.text;
  }

  expect(text: string): void {
    const line = this.line;
    const got = this.next();
    if (got !== text) throw invalid(`expected ${JSON.stringify(text)}, found ${JSON.stringify(got)}`, line);
  }

  accept(text: string): boolean {
    if (this.peek() !== text) return false;
    this.at++;
    return true;
  }

  name(pattern = IDENT, what = 'a name'): string {
    const line = this.line;
    const got = this.next();
    if (!pattern.test(got)) throw invalid(`expected ${what}, found ${JSON.stringify(got)}`, line);
    return got;
  }

  number(): number {
    const line = this.line;
    const got = this.next();
    const value = Number(got);
    if (!/^\d+$/.test(got) || value < 1 || value > 536_870_911) {
      throw invalid(`expected a field number 1-536870911, found ${JSON.stringify(got)}`, line);
    }
    return value;
  }

  fail(problem: string): never {
    throw invalid(problem, this.line);
  }
}

/** Parses the .proto text into a protobufjs JSON descriptor (one package). */
export function protoToJson(text: string): ProtoJson {
  const p = new Parser(tokenize(text));
  p.expect('syntax');
  p.expect('=');
  if (p.next() !== '"proto3"') p.fail('only proto3 is supported');
  p.expect(';');
  p.expect('package');
  const pkg = p.name(IDENT, 'a package name without dots');
  p.expect(';');
  const nested: ProtoNamespace['nested'] = {};
  while (!p.done) {
    const keyword = p.next();
    const name = p.name();
    if (nested[name] !== undefined) p.fail(`${name} is defined twice`);
    if (keyword === 'message') nested[name] = parseMessage(p);
    else if (keyword === 'service') nested[name] = parseService(p);
    else p.fail(`expected message or service, found ${JSON.stringify(keyword)}`);
  }
  return { nested: { [pkg]: { nested } } };
}

function parseMessage(p: Parser): ProtoMessage {
  const fields: Record<string, ProtoField> = {};
  const ids = new Set<number>();
  p.expect('{');
  while (!p.accept('}')) {
    let field: Omit<ProtoField, 'id'>;
    if (p.accept('map')) {
      p.expect('<');
      const keyType = p.name();
      if (!MAP_KEY_TYPES.has(keyType)) p.fail(`${keyType} cannot be a map key`);
      p.expect(',');
      const type = p.name(TYPE_NAME, 'a type');
      p.expect('>');
      field = { keyType, type };
    } else {
      const repeated = p.accept('repeated');
      const type = p.name(TYPE_NAME, 'a type');
      field = repeated ? { rule: 'repeated', type } : { type };
    }
    const name = p.name();
    p.expect('=');
    const id = p.number();
    p.expect(';');
    if (fields[name] !== undefined) p.fail(`field ${name} is defined twice`);
    if (ids.has(id)) p.fail(`field number ${id} is used twice`);
    ids.add(id);
    // protobufjs' key order: rule, keyType, type, id
    fields[name] = { ...field, id };
  }
  return { fields };
}

function parseService(p: Parser): ProtoService {
  const methods: Record<string, ProtoMethod> = {};
  p.expect('{');
  while (!p.accept('}')) {
    p.expect('rpc');
    const name = p.name();
    p.expect('(');
    const requestStream = p.accept('stream');
    const requestType = p.name(TYPE_NAME, 'a type');
    p.expect(')');
    p.expect('returns');
    p.expect('(');
    const responseStream = p.accept('stream');
    const responseType = p.name(TYPE_NAME, 'a type');
    p.expect(')');
    if (p.accept('{')) p.expect('}');
    else p.expect(';');
    if (methods[name] !== undefined) p.fail(`rpc ${name} is defined twice`);
    methods[name] = {
      requestType,
      responseType,
      ...(requestStream ? { requestStream: true } : {}),
      ...(responseStream ? { responseStream: true } : {}),
    };
  }
  return { methods };
}
