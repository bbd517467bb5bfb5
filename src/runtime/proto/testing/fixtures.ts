// The test proto and the seeded random objects the codec's tests (../codec.test.ts, ../wire.test.ts)
// encode and decode: every proto3 scalar type, enums, packed and unpacked lists, maps, nesting.
import type { FieldDescriptor, ProtoDescriptors, ScalarType } from '../schema.ts';

export const TEST_PROTO = `
syntax = "proto3";
package codectest;
import "google/protobuf/timestamp.proto";

enum Color { RED = 0; GREEN = 1; BLUE = 2; }
enum Aliased { option allow_alias = true; FIRST = 0; ZERO = 0; ONE = 1; UNO = 1; }

message Scalars {
  double d = 1; float f = 2; int32 i32 = 3; uint32 u32 = 4; sint32 s32 = 5; fixed32 f32 = 6;
  sfixed32 sf32 = 7; int64 i64 = 8; uint64 u64 = 9; sint64 s64 = 10; fixed64 f64 = 11;
  sfixed64 sf64 = 12; bool b = 13; string s = 14; bytes by = 15; Color color = 16;
  Aliased aliased = 17;
}
message Repeated {
  repeated double d = 1; repeated float f = 2; repeated int32 i32 = 3; repeated uint32 u32 = 4;
  repeated sint32 s32 = 5; repeated fixed32 f32 = 6; repeated sfixed32 sf32 = 7;
  repeated int64 i64 = 8; repeated uint64 u64 = 9; repeated sint64 s64 = 10;
  repeated fixed64 f64 = 11; repeated sfixed64 sf64 = 12; repeated bool b = 13;
  repeated string s = 14; repeated bytes by = 15; repeated Color color = 16;
  repeated int32 unpacked = 20 [packed = false];
  repeated sint64 unpacked64 = 21 [packed = false];
  repeated Color unpacked_colors = 22 [packed = false];
  repeated double unpacked_doubles = 23 [packed = false];
}
message Maps {
  map<string, string> ss = 1; map<int32, string> is = 2; map<string, Scalars> sm = 3;
  map<uint32, Color> ce = 4; map<sint32, bytes> sb = 5; map<fixed32, double> fd = 6;
  map<string, int64> sl = 7;
}
message Nested {
  Nested child = 1; repeated Nested children = 2; Scalars scalars = 3;
  google.protobuf.Timestamp at = 4; string name = 5; Maps maps = 6; Repeated lists = 7;
}
`;

/** Deterministic randomness (mulberry32), so a failure reproduces. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rng = () => number;
export const pick = <T>(rng: Rng, items: readonly T[]): T =>
  items[Math.floor(rng() * items.length)]!;
export const int = (rng: Rng, below: number): number => Math.floor(rng() * below);

const SIGNED_LONGS = [
  '0',
  '1',
  '-1',
  '9223372036854775807',
  '-9223372036854775808',
  '4294967296',
  '-4294967297',
  '9007199254740993',
  '-9007199254740993',
  0,
  5,
  -5,
  2 ** 40,
  -(2 ** 40),
  1.9,
  { low: -1, high: 0x7fffffff },
];
const UNSIGNED_LONGS = [
  '0',
  '1',
  '18446744073709551615',
  '9223372036854775808',
  '4294967295',
  '-1',
  0,
  7,
  2 ** 52,
  -3,
  1.9,
  { low: 1, high: 2 },
];
const STRINGS = [
  '',
  'a',
  'nginx:1.27',
  'ünïcödé',
  '日本語のテキスト',
  '😀 emoji 🚀',
  'a'.repeat(200),
  'nul\u0000inside',
  `sha256:${'d'.repeat(64)}`,
];
const INT32 = [0, 1, -1, 127, 128, 300, -300, 2147483647, -2147483648, '42'];
const UINT32 = [0, 1, 127, 128, 16384, 2147483648, 4294967295];
const DOUBLES = [0, -0, 1.5, -2.25, 1e300, -1e-300, Number.MAX_VALUE, 5e-324, NaN, Infinity, -1e6];
const FLOATS = [0, -0, 1.5, 0.1, 3.4e38, 1e-45, NaN, -Infinity, 12345.678];

function randomBytes(rng: Rng): unknown {
  const length = pick(rng, [0, 1, 3, 130, 300]);
  const bytes = Buffer.from(Array.from({ length }, () => int(rng, 256)));
  return pick(rng, [
    bytes,
    new Uint8Array(bytes),
    [...bytes],
    bytes.toString('base64'),
    Buffer.from([0, 255, 128]),
  ]);
}

export const SCALAR_VALUES: Record<ScalarType, (rng: Rng) => unknown> = {
  double: (rng) => pick(rng, [...DOUBLES, rng() * 1e6]),
  float: (rng) => pick(rng, FLOATS),
  int32: (rng) => pick(rng, [...INT32, int(rng, 2 ** 31) - 2 ** 30]),
  sint32: (rng) => pick(rng, INT32),
  sfixed32: (rng) => pick(rng, INT32),
  uint32: (rng) => pick(rng, [...UINT32, int(rng, 2 ** 32)]),
  fixed32: (rng) => pick(rng, UINT32),
  int64: (rng) =>
    pick(rng, [...SIGNED_LONGS, String(BigInt(int(rng, 2 ** 53)) * 977n - 2n ** 62n)]),
  sint64: (rng) => pick(rng, SIGNED_LONGS),
  sfixed64: (rng) => pick(rng, SIGNED_LONGS),
  uint64: (rng) => pick(rng, [...UNSIGNED_LONGS, String(BigInt(int(rng, 2 ** 53)) * 2011n)]),
  fixed64: (rng) => pick(rng, UNSIGNED_LONGS),
  bool: (rng) => pick(rng, [true, false, 1, 0]),
  string: (rng) => pick(rng, STRINGS),
  bytes: randomBytes,
};

/** Objects for one message type: values as callers may give them (numbers for longs, …). */
export class Objects {
  readonly #descriptors: ProtoDescriptors;
  readonly #rng: Rng;

  constructor(descriptors: ProtoDescriptors, seed: number) {
    this.#descriptors = descriptors;
    this.#rng = random(seed);
  }

  /** Every field set (repeated ones and maps with 3 items) when `full`, else a random subset. */
  message(type: string, full: boolean, depth = 0): Record<string, unknown> {
    const object: Record<string, unknown> = {};
    for (const field of this.#descriptors.messages[type]!.fields) {
      const roll = this.#rng();
      if (!full && roll < 0.3) continue;
      if (!full && roll < 0.4) {
        object[field.name] = null;
        continue;
      }
      const value = this.#field(field, full, depth);
      if (value !== undefined) object[field.name] = value;
    }
    return object;
  }

  #field(field: FieldDescriptor, full: boolean, depth: number): unknown {
    const count = full ? 3 : int(this.#rng, 4);
    if (field.keyType !== undefined) {
      const entries = Array.from({ length: count }, () => [
        String(this.#value(field.keyType!, false, depth + 1)),
        this.#value(field.type, full, depth + 1),
      ]);
      return Object.fromEntries(entries.filter(([, value]) => value !== undefined));
    }
    if (field.repeated) {
      return Array.from({ length: count }, () => this.#value(field.type, full, depth + 1)).filter(
        (value) => value !== undefined,
      );
    }
    return this.#value(field.type, full, depth);
  }

  #value(type: string, full: boolean, depth: number): unknown {
    if (type in SCALAR_VALUES) {
      return SCALAR_VALUES[type as ScalarType](this.#rng);
    }
    const values = this.#descriptors.enums[type];
    if (values !== undefined) {
      return pick(this.#rng, [...Object.keys(values), ...Object.values(values), 7, -1, 'NOPE']);
    }
    // Recursive types stop after a few levels; "full" ones after one.
    if (depth > (full ? 1 : 3)) return undefined;
    return this.message(type, full && depth === 0, depth + 1);
  }
}
