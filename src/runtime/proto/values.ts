// One field's value on the wire and in plain objects: the scalar types, enums, and 64-bit
// integers as protobufjs's fromObject takes them and toObject (longs: String) gives them.

import type { ScalarType } from './schema.ts';
import {
  FIXED32,
  FIXED64,
  LENGTH_DELIMITED,
  type Reader,
  TWO_32,
  VARINT,
  type Writer,
} from './wire.ts';

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

/** One value of a field (or a map key): how it is read, written and what it is by default. */
export interface ValueCodec {
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

export const SCALARS: Readonly<Record<ScalarType, Scalar>> = {
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

export function scalarCodec(type: ScalarType): ValueCodec {
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
export function enumCodec(values: Readonly<Record<string, number>>, repeated: boolean): ValueCodec {
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
