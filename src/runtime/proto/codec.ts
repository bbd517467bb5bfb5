// protobuf (proto3) wire format to plain objects and back, interpreted from descriptors (no
// generated code, no eval), converting values the way the gRPC adapters always had them from
// protobufjs: its fromObject then encode, and decode then toObject with { longs: String,
// enums: String, defaults: true } and field names as in the .proto. Why not protobufjs:
// docs/adr/0007-proto-codec.md.
//
// Deliberate differences from protobufjs, none reachable with prepull's protos and peers:
// - a malformed message throws (protobufjs reads some truncations and wrong wire types as
//   garbage);
// - 64-bit map keys decode to decimal strings (protobufjs gives its internal 8-char hashes);
// - a map entry without a message value decodes to that message's defaults (protobufjs throws);
// - a bool is true if any of its varint's 64 bits is set (protobufjs looks at the low 32);
// - a string for a 64-bit field must be a decimal integer, and a base64 string for bytes is
//   decoded as Buffer.from(text, 'base64') does (leniently).

import type { FieldDescriptor, ProtoDescriptors, ScalarType } from './schema.ts';

/** As protobufjs: messages nested deeper than this are refused, in both directions. */
const MAX_DEPTH = 100;

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const FIXED32 = 5;

const TWO_32 = 4294967296;

/** A message that cannot be decoded: the codec adds which type it was. */
class WireError extends Error {}

class Reader {
  readonly buf: Buffer;
  pos = 0;
  /** Where the message (or packed run) being read ends. */
  end: number;
  /** High 32 bits of the last varint or fixed64 read (the low ones are returned). */
  hi = 0;

  constructor(bytes: Uint8Array) {
    this.buf = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.end = this.buf.length;
  }

  #truncated(needs: number): WireError {
    return new WireError(
      `truncated: ${needs} more byte(s) needed at offset ${this.pos}, ${this.end - this.pos} left`,
    );
  }

  #byte(): number {
    if (this.pos >= this.end) throw this.#truncated(1);
    return this.buf[this.pos++] ?? 0;
  }

  /** A varint of up to 64 bits: returns the low 32 (unsigned), leaves the high ones in `hi`. */
  varint(): number {
    let lo = 0;
    let b = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      b = this.#byte();
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.hi = 0;
        return lo >>> 0;
      }
    }
    b = this.#byte();
    lo |= (b & 0x0f) << 28;
    let hi = (b & 0x7f) >>> 4;
    for (let shift = 3; b >= 0x80 && shift < 32; shift += 7) {
      b = this.#byte();
      hi |= (b & 0x7f) << shift;
    }
    if (b >= 0x80) throw new WireError(`varint longer than 10 bytes at offset ${this.pos}`);
    this.hi = hi >>> 0;
    return lo >>> 0;
  }

  /** A length prefix, checked against what is left. */
  length(): number {
    const at = this.pos;
    const length = this.varint();
    if (this.hi !== 0 || length > this.end - this.pos) {
      const needs = this.hi * TWO_32 + length;
      this.pos = at;
      throw new WireError(
        `truncated: a length of ${needs} at offset ${at} runs past the end (${this.end - at} left)`,
      );
    }
    return length;
  }

  advance(count: number): number {
    if (count > this.end - this.pos) throw this.#truncated(count);
    const at = this.pos;
    this.pos += count;
    return at;
  }

  fixed32(): number {
    return this.buf.readUInt32LE(this.advance(4));
  }

  fixed64(): number {
    const at = this.advance(8);
    this.hi = this.buf.readUInt32LE(at + 4);
    return this.buf.readUInt32LE(at);
  }

  float(): number {
    return this.buf.readFloatLE(this.advance(4));
  }

  double(): number {
    return this.buf.readDoubleLE(this.advance(8));
  }

  string(): string {
    const length = this.length();
    return this.buf.toString('utf8', this.advance(length), this.pos);
  }

  bytes(): Buffer {
    const length = this.length();
    if (length === 0) return Buffer.alloc(0);
    return this.buf.subarray(this.advance(length), this.pos);
  }

  /** Skips an unknown field's value. */
  skip(wire: number, depth: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === FIXED64) this.advance(8);
    else if (wire === LENGTH_DELIMITED) this.advance(this.length());
    else if (wire === FIXED32) this.advance(4);
    else if (wire === START_GROUP) {
      if (depth > MAX_DEPTH) throw new WireError(`groups nested more than ${MAX_DEPTH} deep`);
      for (let tag = this.tag(); (tag & 7) !== END_GROUP; tag = this.tag()) {
        this.skip(tag & 7, depth + 1);
      }
    } else {
      throw new WireError(`an end-group tag without its start before offset ${this.pos}`);
    }
  }

  tag(): number {
    const at = this.pos;
    const tag = this.varint();
    if (this.hi !== 0 || tag >>> 3 === 0) {
      throw new WireError(
        `invalid field number ${this.hi * 2 ** 29 + (tag >>> 3)} at offset ${at}`,
      );
    }
    if ((tag & 7) > FIXED32) throw new WireError(`invalid wire type ${tag & 7} at offset ${at}`);
    return tag;
  }
}

class Writer {
  buf = Buffer.allocUnsafe(256);
  pos = 0;

  reserve(count: number): void {
    if (this.pos + count <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + count));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  varint(value: number): void {
    this.reserve(5);
    while (value > 0x7f) {
      this.buf[this.pos++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    this.buf[this.pos++] = value;
  }

  varint64(lo: number, hi: number): void {
    if (hi === 0) {
      this.varint(lo);
      return;
    }
    this.reserve(10);
    // The low 28 bits, then bits 28..34 spanning both halves, then the rest of the high ones.
    for (let i = 0; i < 4; i++) {
      this.buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    let rest = hi;
    let b = lo | ((rest & 0x07) << 4);
    rest >>>= 3;
    while (rest > 0) {
      this.buf[this.pos++] = b | 0x80;
      b = rest & 0x7f;
      rest >>>= 7;
    }
    this.buf[this.pos++] = b;
  }

  fixed32(value: number): void {
    this.reserve(4);
    this.pos = this.buf.writeUInt32LE(value, this.pos);
  }

  fixed64(lo: number, hi: number): void {
    this.reserve(8);
    this.buf.writeUInt32LE(lo, this.pos);
    this.pos = this.buf.writeUInt32LE(hi, this.pos + 4);
  }

  float(value: number): void {
    this.reserve(4);
    this.pos = this.buf.writeFloatLE(value, this.pos);
  }

  double(value: number): void {
    this.reserve(8);
    this.pos = this.buf.writeDoubleLE(value, this.pos);
  }

  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.reserve(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  string(value: string): void {
    const length = Buffer.byteLength(value, 'utf8');
    this.varint(length);
    this.reserve(length);
    this.pos += this.buf.write(value, this.pos, length, 'utf8');
  }

  /** Starts a length-delimited value whose length is not known yet; returns where it starts. */
  fork(): number {
    this.reserve(1);
    return ++this.pos;
  }

  /** Ends what `fork` started: puts its length in front, moving it if that takes > 1 byte. */
  join(start: number): void {
    const length = this.pos - start;
    if (length < 0x80) {
      this.buf[start - 1] = length;
      return;
    }
    const extra = varintSize(length) - 1;
    this.reserve(extra);
    this.buf.copyWithin(start + extra, start, this.pos);
    this.pos += extra;
    const end = this.pos;
    this.pos = start - 1;
    this.varint(length);
    this.pos = end;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

function varintSize(value: number): number {
  let size = 1;
  for (let rest = value >>> 7; rest > 0; rest >>>= 7) size++;
  return size;
}

// 64-bit integers: a lo/hi pair of unsigned 32-bit halves on the wire, decimal strings in objects.

function unsigned64(lo: number, hi: number): string {
  if (hi < 0x200000) return String(hi * TWO_32 + lo);
  return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}

function signed64(lo: number, hi: number): string {
  if (hi < 0x80000000) return unsigned64(lo, hi);
  // -2^53 and above: exact as a double.
  if (hi >= 0xffe00000) return String((hi - TWO_32) * TWO_32 + lo);
  return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)).toString();
}

/** A zigzag-encoded lo/hi pair, decoded. */
function unzigzag(lo: number, hi: number): [number, number] {
  const mask = -(lo & 1);
  return [(((lo >>> 1) | (hi << 31)) ^ mask) >>> 0, ((hi >>> 1) ^ mask) >>> 0];
}

const MIN_SIGNED = -(2n ** 63n);
const MAX_SIGNED = 2n ** 63n - 1n;
const MAX_UNSIGNED = 2n ** 64n - 1n;

/** A 64-bit field's value as long.js's fromValue (protobufjs's fromObject) reads it. */
function longOf(value: unknown, unsigned: boolean, where: string): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return 0n;
    if (unsigned) {
      if (value < 0) return 0n;
      if (value >= 2 ** 64) return MAX_UNSIGNED;
    } else {
      if (value <= -(2 ** 63)) return MIN_SIGNED;
      if (value + 1 >= 2 ** 63) return MAX_SIGNED;
    }
    return BigInt(Math.trunc(value));
  }
  if (typeof value === 'string' && /^[+-]?\d+$/.test(value)) return BigInt(value);
  if (typeof value === 'object' && value !== null && 'low' in value && 'high' in value) {
    const { low, high } = value;
    return (BigInt(Number(high) >>> 0) << 32n) | BigInt(Number(low) >>> 0);
  }
  throw new TypeError(`${where}: ${JSON.stringify(value)} is not a 64-bit integer`);
}

function halves(value: bigint): [number, number] {
  const bits = BigInt.asUintN(64, value);
  return [Number(bits & 0xffffffffn), Number(bits >> 32n)];
}

function bytesOf(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return Buffer.from(value, 'base64');
  const length = (value as { length?: unknown } | null | undefined)?.length;
  if (typeof length === 'number' && length >= 0) return Uint8Array.from(value as ArrayLike<number>);
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** One value of a field (or a map key): how it is read, written and what it is by default. */
interface ValueCodec {
  readonly wire: number;
  /** Packed when repeated: numbers, bools and enums. */
  readonly packable: boolean;
  readonly read: (r: Reader, depth: number) => unknown;
  /** Converts as protobufjs's fromObject does and writes; false when that leaves it unset. */
  readonly write: (w: Writer, value: unknown, where: string, depth: number) => boolean;
  /** The value toObject gives an absent field (a message's: null). */
  readonly initial: () => unknown;
}

type Scalar = Pick<ValueCodec, 'wire' | 'read' | 'initial'> & {
  readonly write: (w: Writer, value: unknown, where: string) => void;
};

function writeInt32(w: Writer, value: number): void {
  // Negative int32s are sign-extended to 64 bits on the wire.
  if (value < 0) w.varint64(value >>> 0, 0xffffffff);
  else w.varint(value);
}

function writeLong(w: Writer, value: bigint, wire: number): void {
  const [lo, hi] = halves(value);
  if (wire === VARINT) w.varint64(lo, hi);
  else w.fixed64(lo, hi);
}

const zero = (): number => 0;
const zeroLong = (): string => '0';

const SCALARS: Readonly<Record<ScalarType, Scalar>> = {
  double: {
    wire: FIXED64,
    read: (r) => r.double(),
    write: (w, v) => {
      w.double(Number(v));
    },
    initial: zero,
  },
  float: {
    wire: FIXED32,
    read: (r) => r.float(),
    write: (w, v) => {
      w.float(Number(v));
    },
    initial: zero,
  },
  int32: {
    wire: VARINT,
    read: (r) => r.varint() | 0,
    write: (w, v) => {
      writeInt32(w, Number(v) | 0);
    },
    initial: zero,
  },
  uint32: {
    wire: VARINT,
    read: (r) => r.varint(),
    write: (w, v) => {
      w.varint(Number(v) >>> 0);
    },
    initial: zero,
  },
  sint32: {
    wire: VARINT,
    read: (r) => {
      const n = r.varint();
      return (n >>> 1) ^ -(n & 1);
    },
    write: (w, v) => {
      const n = Number(v) | 0;
      w.varint(((n << 1) ^ (n >> 31)) >>> 0);
    },
    initial: zero,
  },
  fixed32: {
    wire: FIXED32,
    read: (r) => r.fixed32(),
    write: (w, v) => {
      w.fixed32(Number(v) >>> 0);
    },
    initial: zero,
  },
  sfixed32: {
    wire: FIXED32,
    read: (r) => r.fixed32() | 0,
    write: (w, v) => {
      w.fixed32((Number(v) | 0) >>> 0);
    },
    initial: zero,
  },
  int64: {
    wire: VARINT,
    read: (r) => signed64(r.varint(), r.hi),
    write: (w, v, where) => {
      writeLong(w, longOf(v, false, where), VARINT);
    },
    initial: zeroLong,
  },
  uint64: {
    wire: VARINT,
    read: (r) => unsigned64(r.varint(), r.hi),
    write: (w, v, where) => {
      writeLong(w, longOf(v, true, where), VARINT);
    },
    initial: zeroLong,
  },
  sint64: {
    wire: VARINT,
    read: (r) => signed64(...unzigzag(r.varint(), r.hi)),
    write: (w, v, where) => {
      const n = BigInt.asIntN(64, longOf(v, false, where));
      writeLong(w, (n << 1n) ^ (n >> 63n), VARINT);
    },
    initial: zeroLong,
  },
  fixed64: {
    wire: FIXED64,
    read: (r) => unsigned64(r.fixed64(), r.hi),
    write: (w, v, where) => {
      writeLong(w, longOf(v, true, where), FIXED64);
    },
    initial: zeroLong,
  },
  sfixed64: {
    wire: FIXED64,
    read: (r) => signed64(r.fixed64(), r.hi),
    write: (w, v, where) => {
      writeLong(w, longOf(v, false, where), FIXED64);
    },
    initial: zeroLong,
  },
  bool: {
    wire: VARINT,
    read: (r) => r.varint() !== 0 || r.hi !== 0,
    write: (w, v) => {
      w.varint(v ? 1 : 0);
    },
    initial: () => false,
  },
  string: {
    wire: LENGTH_DELIMITED,
    read: (r) => r.string(),
    write: (w, v) => {
      w.string(String(v));
    },
    initial: () => '',
  },
  bytes: {
    wire: LENGTH_DELIMITED,
    read: (r) => r.bytes(),
    // Given what bytesOf made of the value (see scalarCodec).
    write: (w, v) => {
      w.bytes(v as Uint8Array);
    },
    initial: () => Buffer.alloc(0),
  },
};

function scalarCodec(type: ScalarType): ValueCodec {
  const scalar = SCALARS[type];
  const packable = scalar.wire !== LENGTH_DELIMITED;
  return {
    ...scalar,
    packable,
    // fromObject leaves a bytes field unset when given something that is not bytes-like.
    write:
      type === 'bytes'
        ? (w, v, where) => {
            const bytes = bytesOf(v);
            if (bytes !== undefined) scalar.write(w, bytes, where);
            return bytes !== undefined;
          }
        : (w, v, where) => {
            scalar.write(w, v, where);
            return true;
          },
  };
}

/**
 * Enum values by name or number; unknown numbers kept as numbers. A name the enum lacks leaves
 * a field unset, and in a repeated field becomes the first value: protobufjs's fromObject.
 */
function enumCodec(values: Readonly<Record<string, number>>, repeated: boolean): ValueCodec {
  // An aliased number decodes to its first name, as in protobufjs.
  const names = new Map<number, string>();
  for (const [name, number] of Object.entries(values)) {
    if (!names.has(number)) names.set(number, name);
  }
  const byName = new Map(Object.entries(values));
  const first = Object.values(values)[0] ?? 0;
  const initial = names.get(first) ?? first;
  const numberOf = (value: unknown): number | undefined => {
    if (typeof value === 'number') return value;
    const known = typeof value === 'string' ? byName.get(value) : undefined;
    return known ?? (repeated ? first : undefined);
  };
  return {
    wire: VARINT,
    packable: true,
    read: (r) => {
      const number = r.varint() | 0;
      return names.get(number) ?? number;
    },
    write: (w, v) => {
      const number = numberOf(v);
      if (number !== undefined) writeInt32(w, number | 0);
      return number !== undefined;
    },
    initial: () => initial,
  };
}

interface FieldPlan {
  readonly name: string;
  readonly id: number;
  /** "runtime.v1.Image.size", for errors. */
  readonly where: string;
  readonly value: ValueCodec;
  readonly repeated: boolean;
  /** Set on map fields: the key's codec (`value` is then the value's). */
  readonly key: ValueCodec | undefined;
  readonly keyType: ScalarType | undefined;
  readonly packed: boolean;
  /** The tag of one value (a map entry, an unpacked element). */
  readonly tag: number;
  /** The message type's plan when the value is a message (for map entries' defaults). */
  readonly message: MessagePlan | undefined;
}

interface MessagePlan {
  readonly name: string;
  /** In field-number order: the order of encoding (protobufjs's too). */
  readonly fields: FieldPlan[];
  readonly byId: Map<number, FieldPlan>;
  /** The key order of protobufjs's toObject: repeated fields, maps, then the rest. */
  readonly objectOrder: FieldPlan[];
}

export interface MessageCodec {
  /** A plain object (as protobufjs's fromObject takes it) to wire format. */
  encode(value: object): Buffer;
  /** Wire format to a plain object; throws an Error naming the type on malformed input. */
  decode(bytes: Uint8Array): Record<string, unknown>;
}

export class ProtoCodec {
  readonly #descriptors: ProtoDescriptors;
  readonly #plans = new Map<string, MessagePlan>();
  readonly #codecs = new Map<string, MessageCodec>();

  constructor(descriptors: ProtoDescriptors) {
    this.#descriptors = descriptors;
  }

  /**
   * The codec of one message type, by full name ("runtime.v1.ListImagesResponse"). Its plan is
   * made when it is first used: a process plans only the messages it sends and reads.
   */
  message(type: string): MessageCodec {
    let codec = this.#codecs.get(type);
    if (codec === undefined) {
      if (this.#descriptors.messages[type] === undefined) {
        throw new Error(`the proto descriptors have no message ${type}`);
      }
      let plan: MessagePlan | undefined;
      codec = {
        encode: (value) => {
          if (!isObject(value)) throw new TypeError(`${type}: object expected`);
          const w = new Writer();
          encodeFields((plan ??= this.#planOf(type)), value, w, 0);
          return w.finish();
        },
        decode: (bytes) => {
          const r = new Reader(bytes);
          try {
            return decodeFields((plan ??= this.#planOf(type)), r, 0);
          } catch (error) {
            if (!(error instanceof WireError)) throw error;
            throw new Error(`malformed ${type} message (${r.buf.length} bytes): ${error.message}`);
          }
        },
      };
      this.#codecs.set(type, codec);
    }
    return codec;
  }

  #planOf(type: string): MessagePlan {
    const cached = this.#plans.get(type);
    if (cached !== undefined) return cached;
    const descriptor = this.#descriptors.messages[type];
    if (descriptor === undefined) throw new Error(`the proto descriptors have no message ${type}`);
    const plan: MessagePlan = { name: type, fields: [], byId: new Map(), objectOrder: [] };
    // Cached before its fields are planned: a message may contain itself.
    this.#plans.set(type, plan);
    const fields = [...descriptor.fields]
      .sort((a, b) => a.id - b.id)
      .map((field) => this.#fieldPlan(type, field));
    plan.fields.push(...fields);
    for (const field of fields) plan.byId.set(field.id, field);
    plan.objectOrder.push(
      ...fields.filter((f) => f.repeated),
      ...fields.filter((f) => f.key !== undefined),
      ...fields.filter((f) => !f.repeated && f.key === undefined),
    );
    return plan;
  }

  #fieldPlan(owner: string, field: FieldDescriptor): FieldPlan {
    const repeated = field.repeated === true;
    const message =
      this.#descriptors.messages[field.type] === undefined ? undefined : this.#planOf(field.type);
    const value = this.#valueCodec(field.type, message, repeated);
    const key = field.keyType === undefined ? undefined : scalarCodec(field.keyType);
    const packed = repeated && value.packable && field.packed !== false;
    return {
      name: field.name,
      id: field.id,
      where: `${owner}.${field.name}`,
      value,
      repeated,
      key,
      keyType: field.keyType,
      packed,
      tag: ((field.id << 3) | (key === undefined ? value.wire : LENGTH_DELIMITED)) >>> 0,
      message,
    };
  }

  #valueCodec(type: string, message: MessagePlan | undefined, repeated: boolean): ValueCodec {
    if (message !== undefined) return messageCodec(message);
    const values = this.#descriptors.enums[type];
    if (values !== undefined) return enumCodec(values, repeated);
    if (Object.hasOwn(SCALARS, type)) return scalarCodec(type as ScalarType);
    throw new Error(`the proto descriptors have no type ${type}`);
  }
}

function messageCodec(plan: MessagePlan): ValueCodec {
  return {
    wire: LENGTH_DELIMITED,
    packable: false,
    read: (r, depth) => {
      const length = r.length();
      const end = r.end;
      r.end = r.pos + length;
      const value = decodeFields(plan, r, depth + 1);
      r.end = end;
      return value;
    },
    write: (w, value, where, depth) => {
      if (!isObject(value)) throw new TypeError(`${where}: object expected`);
      const start = w.fork();
      encodeFields(plan, value, w, depth + 1);
      w.join(start);
      return true;
    },
    initial: () => null,
  };
}

// Encoding

function encodeFields(
  plan: MessagePlan,
  object: Record<string, unknown>,
  w: Writer,
  depth: number,
): void {
  if (depth > MAX_DEPTH) throw new Error(`${plan.name}: nested more than ${MAX_DEPTH} deep`);
  for (const field of plan.fields) {
    const value = object[field.name];
    if (field.key !== undefined) encodeMap(field, field.key, value, w, depth);
    else if (field.repeated) encodeRepeated(field, value, w, depth);
    else if (value !== undefined && value !== null) encodeOne(field, value, w, depth);
  }
}

/** The field's tag and value, or nothing if the value converts to "unset". */
function encodeOne(field: FieldPlan, value: unknown, w: Writer, depth: number): void {
  encodeValue(w, field.tag, field.value, value, { where: field.where, depth });
}

function encodeValue(
  w: Writer,
  tag: number,
  codec: ValueCodec,
  value: unknown,
  at: { where: string; depth: number },
): void {
  const start = w.pos;
  w.varint(tag);
  if (!codec.write(w, value, at.where, at.depth)) w.pos = start;
}

function encodeRepeated(field: FieldPlan, value: unknown, w: Writer, depth: number): void {
  if (!value) return;
  if (!Array.isArray(value)) throw new TypeError(`${field.where}: array expected`);
  if (value.length === 0) return;
  if (!field.packed) {
    for (const item of value) encodeOne(field, item, w, depth);
    return;
  }
  w.varint(((field.id << 3) | LENGTH_DELIMITED) >>> 0);
  const start = w.fork();
  for (const item of value) field.value.write(w, item, field.where, depth);
  w.join(start);
}

function encodeMap(
  field: FieldPlan,
  key: ValueCodec,
  value: unknown,
  w: Writer,
  depth: number,
): void {
  if (!value) return;
  if (!isObject(value)) throw new TypeError(`${field.where}: object expected`);
  const at = { where: field.where, depth };
  const keyTag = (1 << 3) | key.wire;
  const valueTag = (2 << 3) | field.value.wire;
  for (const name of Object.keys(value)) {
    const entry = w.pos;
    w.varint(field.tag);
    const start = w.fork();
    encodeValue(w, keyTag, key, keyOf(name, field.keyType), at);
    w.varint(valueTag);
    // A value that converts to "unset" (an enum name the enum lacks) drops the entry.
    if (field.value.write(w, value[name], field.where, depth)) w.join(start);
    else w.pos = entry;
  }
}

/** A map key (always a string in the object) as the key type's value. */
function keyOf(name: string, type: ScalarType | undefined): unknown {
  if (type === 'string' || type === undefined) return name;
  if (type === 'bool') return name === 'true';
  return type.endsWith('64') ? name : Number(name);
}

// Decoding

function decodeFields(plan: MessagePlan, r: Reader, depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new WireError(`messages nested more than ${MAX_DEPTH} deep`);
  const object: Record<string, unknown> = {};
  for (const field of plan.objectOrder) {
    object[field.name] = field.repeated ? [] : field.key !== undefined ? {} : field.value.initial();
  }
  while (r.pos < r.end) {
    const tag = r.tag();
    const wire = tag & 7;
    const field = plan.byId.get(tag >>> 3);
    if (field === undefined) {
      r.skip(wire, depth);
    } else if (field.key !== undefined) {
      checkWire(field, wire, LENGTH_DELIMITED);
      const [name, value] = decodeEntry(field, field.key, r, depth);
      // A plain property even for "__proto__", as protobufjs makes it.
      Object.defineProperty(object[field.name], name, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else if (field.repeated) {
      decodeRepeated(field, object[field.name] as unknown[], r, wire, depth);
    } else {
      checkWire(field, wire, field.value.wire);
      object[field.name] = field.value.read(r, depth);
    }
  }
  return object;
}

function checkWire(field: FieldPlan, wire: number, expected: number): void {
  if (wire !== expected) {
    throw new WireError(
      `field ${field.where} (${field.id}) has wire type ${wire}, not ${expected}`,
    );
  }
}

function decodeRepeated(
  field: FieldPlan,
  list: unknown[],
  r: Reader,
  wire: number,
  depth: number,
): void {
  if (wire !== LENGTH_DELIMITED || !field.value.packable) {
    checkWire(field, wire, field.value.wire);
    list.push(field.value.read(r, depth));
    return;
  }
  // Packed, which decoders accept whether or not the field is declared packed.
  const end = r.end;
  const length = r.length();
  r.end = r.pos + length;
  while (r.pos < r.end) list.push(field.value.read(r, depth));
  r.end = end;
}

/** One map entry: its key as the object's property name, and its value. */
function decodeEntry(
  field: FieldPlan,
  key: ValueCodec,
  r: Reader,
  depth: number,
): [string, unknown] {
  const end = r.end;
  const length = r.length();
  r.end = r.pos + length;
  let name = key.initial();
  let value: unknown;
  while (r.pos < r.end) {
    const tag = r.tag();
    const id = tag >>> 3;
    if (id === 1) {
      checkWire(field, tag & 7, key.wire);
      name = key.read(r, depth);
    } else if (id === 2) {
      checkWire(field, tag & 7, field.value.wire);
      value = field.value.read(r, depth);
    } else {
      r.skip(tag & 7, depth);
    }
  }
  r.end = end;
  if (value === undefined) {
    value =
      field.message === undefined
        ? field.value.initial()
        : decodeFields(field.message, new Reader(new Uint8Array(0)), depth + 1);
  }
  return [String(name), value];
}
