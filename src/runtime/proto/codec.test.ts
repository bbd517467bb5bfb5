// The codec against protobufjs, which the gRPC adapters used before it: for every message type of
// prepull's protos and of a test proto with every proto3 scalar type, enums, packed and unpacked
// repeated fields and maps, seeded random objects must (a) encode to bytes protobufjs decodes to
// what the codec decodes, (b) decode from protobufjs's bytes to what protobufjs's toObject gives,
// key order included, and (c) encode to the very bytes protobufjs writes. Then what protobufjs
// does not check: malformed input throws an Error naming the type.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import protobuf from 'protobufjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProtos, protoFiles } from '../../../scripts/proto-descriptors.ts';
import { ProtoCodec } from './codec.ts';
import type { FieldDescriptor, ProtoDescriptors, ScalarType } from './schema.ts';

/** The conversion the adapters had from protobufjs (src/runtime/cri/grpc.ts). */
const CONVERSION: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true };

const TEST_PROTO = `
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
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
const int = (rng: Rng, below: number): number => Math.floor(rng() * below);

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

const SCALAR_VALUES: Record<ScalarType, (rng: Rng) => unknown> = {
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
class Objects {
  private readonly descriptors: ProtoDescriptors;
  private readonly rng: Rng;

  constructor(descriptors: ProtoDescriptors, seed: number) {
    this.descriptors = descriptors;
    this.rng = random(seed);
  }

  /** Every field set (repeated ones and maps with 3 items) when `full`, else a random subset. */
  message(type: string, full: boolean, depth = 0): Record<string, unknown> {
    const object: Record<string, unknown> = {};
    for (const field of this.descriptors.messages[type]!.fields) {
      const roll = this.rng();
      if (!full && roll < 0.3) continue;
      if (!full && roll < 0.4) {
        object[field.name] = null;
        continue;
      }
      const value = this.field(field, full, depth);
      if (value !== undefined) object[field.name] = value;
    }
    return object;
  }

  private field(field: FieldDescriptor, full: boolean, depth: number): unknown {
    const count = full ? 3 : int(this.rng, 4);
    if (field.keyType !== undefined) {
      const entries = Array.from({ length: count }, () => [
        String(this.value(field.keyType!, false, depth + 1)),
        this.value(field.type, full, depth + 1),
      ]);
      return Object.fromEntries(entries.filter(([, value]) => value !== undefined));
    }
    if (field.repeated) {
      return Array.from({ length: count }, () => this.value(field.type, full, depth + 1)).filter(
        (value) => value !== undefined,
      );
    }
    return this.value(field.type, full, depth);
  }

  private value(type: string, full: boolean, depth: number): unknown {
    if (type in SCALAR_VALUES) {
      return SCALAR_VALUES[type as ScalarType](this.rng);
    }
    const values = this.descriptors.enums[type];
    if (values !== undefined) {
      return pick(this.rng, [...Object.keys(values), ...Object.values(values), 7, -1, 'NOPE']);
    }
    // Recursive types stop after a few levels; "full" ones after one.
    if (depth > (full ? 1 : 3)) return undefined;
    return this.message(type, full && depth === 0, depth + 1);
  }
}

/**
 * A strict text of a value for comparison: key order, Buffer (vs Uint8Array) contents, -0, NaN.
 * (util.inspect would do, but takes seconds over 70 kB buffers.)
 */
function shown(value: unknown): string {
  if (value instanceof Uint8Array) {
    return `${value.constructor.name}<${Buffer.from(value).toString('hex')}>`;
  }
  if (Array.isArray(value)) return `[${value.map(shown).join(', ')}]`;
  if (typeof value === 'object' && value !== null) {
    const prototype = Object.getPrototypeOf(value) === Object.prototype ? '' : 'not plain ';
    const entries = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${shown(v)}`);
    return `${prototype}{${entries.join(', ')}}`;
  }
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

interface Subject {
  descriptors: ProtoDescriptors;
  codec: ProtoCodec;
  root: protobuf.Root;
}

let dir: string;
let ours: Subject;
let test: Subject;

function subject(files: Record<string, string>): Subject {
  const descriptors = describeProtos(files);
  const root = new protobuf.Root().loadSync(Object.values(files), { keepCase: true });
  root.resolveAll();
  return { descriptors, codec: new ProtoCodec(descriptors), root };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'prepull-codec-'));
  const path = join(dir, 'codectest.proto');
  writeFileSync(path, TEST_PROTO);
  ours = subject(protoFiles());
  test = subject({ 'codectest.proto': path });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The (a), (b), (c) comparisons for one object. */
function compare(s: Subject, type: string, object: Record<string, unknown>): void {
  const pbType = s.root.lookupType(type);
  const codec = s.codec.message(type);
  const context = `${type} ${shown(object)}\n`;
  const encoded = codec.encode(object);
  // (a) protobufjs reads our bytes as we do.
  const theirsOfOurs = pbType.toObject(pbType.decode(encoded), CONVERSION);
  expect(context + shown(codec.decode(encoded))).toBe(context + shown(theirsOfOurs));
  // (b) we read protobufjs's bytes as it does.
  const theirBytes = pbType.encode(pbType.fromObject(object)).finish();
  const theirs = pbType.toObject(pbType.decode(theirBytes), CONVERSION);
  expect(context + shown(codec.decode(theirBytes))).toBe(context + shown(theirs));
  // (c) the same bytes: both write fields by number, explicit defaults included.
  expect(context + encoded.toString('hex')).toBe(context + Buffer.from(theirBytes).toString('hex'));
}

function samples(s: Subject, type: string, seed: number): Record<string, unknown>[] {
  const objects = new Objects(s.descriptors, seed);
  return [
    {},
    objects.message(type, true),
    ...Array.from({ length: 10 }, () => objects.message(type, false)),
  ];
}

describe('the codec against protobufjs', () => {
  it("agrees on every message type of prepull's protos", () => {
    const types = Object.keys(ours.descriptors.messages);
    expect(types.length).toBeGreaterThan(40);
    types.forEach((type, i) => {
      for (const object of samples(ours, type, 1000 + i)) compare(ours, type, object);
    });
  });

  it('agrees on every proto3 scalar type, enums, packed and unpacked lists, maps, nesting', () => {
    const types = Object.keys(test.descriptors.messages).filter((t) => t.startsWith('codectest.'));
    expect(types).toHaveLength(4);
    types.forEach((type, i) => {
      for (let seed = 0; seed < 6; seed++) {
        for (const object of samples(test, type, 7 * seed + i)) compare(test, type, object);
      }
    });
  });

  it('agrees on lengths that take two and three bytes, deep inside a message', () => {
    const big = Buffer.alloc(70_000, 7);
    compare(test, 'codectest.Nested', {
      child: { child: { scalars: { by: big, s: 'x'.repeat(20_000) } }, name: 'n'.repeat(150) },
      children: [{ scalars: { by: big.subarray(0, 16_400) } }, {}],
    });
  });

  it('decodes unknown fields of every wire type by skipping them', () => {
    const unknown = Buffer.from([
      ...[0xf8, 0x3e, 0x96, 0x01], // field 999, varint 150
      ...[0xf9, 0x3e, 1, 2, 3, 4, 5, 6, 7, 8], // field 999, fixed64
      ...[0xfa, 0x3e, 3, 0x61, 0x62, 0x63], // field 999, 3 bytes
      ...[0xfd, 0x3e, 1, 2, 3, 4], // field 999, fixed32
      ...[0xfb, 0x3e, 0x08, 0x01, 0x13, 0x10, 0x02, 0x14, 0xfc, 0x3e], // field 999, a group
    ]);
    for (const s of [ours, test]) {
      for (const type of Object.keys(s.descriptors.messages)) {
        const object = new Objects(s.descriptors, 5).message(type, true);
        const codec = s.codec.message(type);
        const encoded = codec.encode(object);
        const withUnknown = Buffer.concat([unknown, encoded, unknown]);
        const pbType = s.root.lookupType(type);
        expect(shown(codec.decode(withUnknown))).toBe(shown(codec.decode(encoded)));
        expect(shown(codec.decode(withUnknown))).toBe(
          shown(pbType.toObject(pbType.decode(withUnknown), CONVERSION)),
        );
      }
    }
  });

  it('reads packed fields unpacked and unpacked ones packed, as protobufjs does', () => {
    const lists = {
      i32: [1, -1, 300],
      s64: ['-9223372036854775808', '5'],
      color: ['BLUE', 'RED'],
      unpacked: [1, -1, 300],
      unpacked64: ['-2', '9223372036854775807'],
      unpacked_colors: ['GREEN', 9],
    };
    const pbType = test.root.lookupType('codectest.Repeated');
    const codec = test.codec.message('codectest.Repeated');
    // Swap the two encodings by declaring each field the other way round.
    const swapped = protobuf
      .parse(
        TEST_PROTO.replace(/ \[packed = false\]/g, '').replace(
          /repeated (int32 i32|sint64 s64|Color color) = (\d+);/g,
          'repeated $1 = $2 [packed = false];',
        ),
        { keepCase: true },
      )
      .root.lookupType('codectest.Repeated');
    const bytes = swapped.encode(swapped.fromObject(lists)).finish();
    expect(Buffer.from(bytes).equals(codec.encode(lists))).toBe(false);
    expect(shown(codec.decode(bytes))).toBe(
      shown(pbType.toObject(pbType.decode(bytes), CONVERSION)),
    );
    expect(codec.decode(bytes)).toMatchObject({ ...lists, unpacked_colors: ['GREEN', 9] });
  });
});

/** `levels` of Nested { child: … }, each a tag and a length (a varint). */
function nestedChildren(levels: number): Buffer {
  let bytes = Buffer.alloc(0);
  for (let i = 0; i < levels; i++) {
    const length =
      bytes.length < 0x80 ? [bytes.length] : [(bytes.length & 0x7f) | 0x80, bytes.length >> 7];
    bytes = Buffer.concat([Buffer.from([0x0a, ...length]), bytes]);
  }
  return bytes;
}

describe('the codec on its own', () => {
  it('gives defaults as protobufjs toObject does: "0" for 64-bit, [] {} null, a Buffer', () => {
    const decoded = test.codec.message('codectest.Scalars').decode(Buffer.alloc(0));
    expect(decoded).toEqual({
      d: 0,
      f: 0,
      i32: 0,
      u32: 0,
      s32: 0,
      f32: 0,
      sf32: 0,
      i64: '0',
      u64: '0',
      s64: '0',
      f64: '0',
      sf64: '0',
      b: false,
      s: '',
      by: Buffer.alloc(0),
      color: 'RED',
      aliased: 'FIRST',
    });
    expect(Buffer.isBuffer(decoded.by)).toBe(true);
    const nested = test.codec.message('codectest.Nested').decode(new Uint8Array([0x2a, 1, 0x41]));
    expect(Object.keys(nested)).toEqual([
      'children',
      'child',
      'scalars',
      'at',
      'name',
      'maps',
      'lists',
    ]);
    expect(nested).toMatchObject({ children: [], child: null, at: null, name: 'A' });
  });

  it('decodes map keys of every type to their decimal or boolean text', () => {
    const keys = `
      syntax = "proto3"; package keys;
      message M { map<int64, string> l = 1; map<bool, string> b = 2; map<sint64, string> z = 3; }`;
    const path = join(dir, 'keys.proto');
    writeFileSync(path, keys);
    const codec = new ProtoCodec(describeProtos({ 'keys.proto': path })).message('keys.M');
    const object = {
      l: { '-9223372036854775808': 'min', '18': 'x' },
      b: { true: 'yes', false: 'no' },
      z: { '-1': 'minus one' },
    };
    expect(codec.decode(codec.encode(object))).toEqual(object);
  });

  it('keeps "__proto__" as a plain map key', () => {
    const codec = test.codec.message('codectest.Maps');
    const object = JSON.parse('{"ss": {"__proto__": "p", "a": "b"}}') as Record<string, unknown>;
    const decoded = codec.decode(codec.encode(object));
    expect(Object.keys(decoded.ss as object)).toEqual(['__proto__', 'a']);
    expect(Object.getPrototypeOf(decoded.ss)).toBe(Object.prototype);
  });

  it('refuses values that are not what a field holds, naming the field', () => {
    const scalars = test.codec.message('codectest.Scalars');
    const nested = test.codec.message('codectest.Nested');
    expect(() => scalars.encode({ i64: 'twelve' })).toThrow(
      'codectest.Scalars.i64: "twelve" is not a 64-bit integer',
    );
    expect(() => nested.encode({ children: {} })).toThrow(
      'codectest.Nested.children: array expected',
    );
    expect(() => nested.encode({ child: 'x' })).toThrow('codectest.Nested.child: object expected');
    expect(() => nested.encode({ maps: { ss: [] as unknown } })).not.toThrow();
    expect(() => nested.encode({ maps: { ss: 'x' } })).toThrow(
      'codectest.Maps.ss: object expected',
    );
  });

  it('refuses messages nested more than 100 deep, both ways', () => {
    const codec = test.codec.message('codectest.Nested');
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 102; i++) deep = { child: deep };
    expect(() => codec.encode(deep)).toThrow('nested more than 100 deep');
    expect(() => codec.decode(nestedChildren(100))).not.toThrow();
    expect(() => codec.decode(nestedChildren(101))).toThrow(
      /^malformed codectest.Nested message \(\d+ bytes\): messages nested more than 100 deep$/,
    );
  });
});

/**
 * Where an encoding of `full` can be cut and still be a message: fields are written in order, so
 * the encodings of the first k are valid prefixes, and so are those of the first k plus some of
 * the elements (entries) of an unpacked list (a map) that comes next.
 */
function validCuts(type: string, full: Record<string, unknown>): Set<number> {
  const codec = test.codec.message(type);
  const fields = test.descriptors.messages[type]!.fields;
  const names = Object.keys(full);
  const cuts = new Set<number>();
  for (let k = 0; k <= names.length; k++) {
    const before = Object.fromEntries(names.slice(0, k).map((n) => [n, full[n]]));
    cuts.add(codec.encode(before).length);
    const next = fields.find((f) => f.name === names[k]);
    const value = full[names[k] ?? ''];
    if (next === undefined || !isSplit(next)) continue;
    const items = Array.isArray(value) ? value : Object.entries(value as object);
    for (let j = 1; j < items.length; j++) {
      const part = Array.isArray(value)
        ? items.slice(0, j)
        : Object.fromEntries(items.slice(0, j) as [string, unknown][]);
      cuts.add(codec.encode({ ...before, [next.name]: part }).length);
    }
  }
  return cuts;
}

/** A map or an unpacked list: one tagged field per element. */
function isSplit(field: FieldDescriptor): boolean {
  if (field.keyType !== undefined) return true;
  if (field.repeated !== true) return false;
  const packable = field.type in SCALAR_VALUES && !['string', 'bytes'].includes(field.type);
  const isEnum = test.descriptors.enums[field.type] !== undefined;
  return field.packed === false || !(packable || isEnum);
}

describe('malformed input', () => {
  const decode = (type: string, bytes: number[] | Buffer): unknown =>
    test.codec.message(`codectest.${type}`).decode(Buffer.from(bytes));

  it('throws on a buffer cut anywhere but between two fields', () => {
    const objects = new Objects(test.descriptors, 42);
    const scalars = objects.message('codectest.Scalars', true);
    // Nested, full, takes 6 kB: one of each kind of field instead.
    const nested = {
      child: { name: 'x', scalars, child: { at: { seconds: '-5', nanos: 7 } } },
      children: [{}, { name: 'y' }],
      scalars,
      at: { seconds: '1700000000', nanos: 999 },
      name: 'n',
      maps: { ss: { a: 'b', c: 'd' }, sm: { s: scalars } },
      lists: { i32: [1, -1], s: ['a', 'b'], unpacked: [3, 4] },
    };
    for (const type of ['Scalars', 'Repeated', 'Maps', 'Nested']) {
      const codec = test.codec.message(`codectest.${type}`);
      const full = type === 'Nested' ? nested : objects.message(`codectest.${type}`, true);
      const encoded = codec.encode(full);
      const boundaries = validCuts(`codectest.${type}`, full);
      expect(boundaries.has(encoded.length)).toBe(true);
      // One expect for all cuts: thousands of them would take seconds.
      const wrong: string[] = [];
      for (let cut = 0; cut < encoded.length; cut++) {
        let outcome = 'decoded';
        try {
          codec.decode(encoded.subarray(0, cut));
        } catch (error) {
          outcome = (error as Error).message;
        }
        const expected = boundaries.has(cut)
          ? 'decoded'
          : `malformed codectest.${type} message (${cut} bytes): truncated`;
        if (!outcome.startsWith(expected)) wrong.push(`cut at ${cut}: ${outcome}`);
      }
      expect({ type, length: encoded.length, wrong }).toEqual({
        type,
        length: encoded.length,
        wrong: [],
      });
    }
  });

  it('throws on wire types that are invalid or not the field’s', () => {
    expect(() => decode('Scalars', [0x0e])).toThrow('invalid wire type 6 at offset 0');
    expect(() => decode('Scalars', [0x18, 0x01, 0xff, 0x3e])).toThrow(
      'invalid wire type 7 at offset 2',
    );
    expect(() => decode('Scalars', [0xfc, 0x3e])).toThrow('an end-group tag without its start');
    expect(() => decode('Scalars', [0x70, 0x01])).toThrow(
      'field codectest.Scalars.s (14) has wire type 0, not 2',
    );
    expect(() => decode('Scalars', [0x0d, 0, 0, 0, 0])).toThrow(
      'field codectest.Scalars.d (1) has wire type 5, not 1',
    );
    expect(() => decode('Repeated', [0x72, 0x01, 0x01])).not.toThrow(); // a string list: wire 2
    expect(() => decode('Repeated', [0x70, 0x01])).toThrow('has wire type 0, not 2');
    expect(() => decode('Maps', [0x08, 0x01])).toThrow(
      'field codectest.Maps.ss (1) has wire type 0, not 2',
    );
    expect(() => decode('Maps', [0x0a, 0x02, 0x0d, 0x00])).toThrow('has wire type 5, not 2');
  });

  it('throws on impossible varints, field numbers and lengths', () => {
    expect(() => decode('Scalars', [0x18, ...Array<number>(10).fill(0xff), 0x01])).toThrow(
      'varint longer than 10 bytes',
    );
    expect(() => decode('Scalars', [0x00, 0x01])).toThrow('invalid field number 0 at offset 0');
    expect(() => decode('Scalars', [0x72, 0x05, 0x61])).toThrow(
      'truncated: a length of 5 at offset 1 runs past the end (2 left)',
    );
    expect(() => decode('Scalars', [0x72, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])).toThrow(
      /a length of 68719476735 at offset 1 runs past the end/,
    );
    // A nested message whose own field runs past its declared length (but not the buffer's).
    expect(() => decode('Nested', [0x1a, 0x02, 0x72, 0x03, 0x61, 0x62, 0x63])).toThrow(
      'a length of 3 at offset 3 runs past the end (1 left)',
    );
    // A packed run whose last fixed32 is cut.
    expect(() => decode('Repeated', [0x32, 0x06, 1, 0, 0, 0, 2, 0])).toThrow(
      'truncated: 4 more byte(s) needed at offset 6, 2 left',
    );
    // A group never ended.
    expect(() => decode('Scalars', [0xfb, 0x3e, 0x08, 0x01])).toThrow(/truncated/);
  });

  it('throws Errors, never hangs or fails otherwise, on random bytes', () => {
    const rng = random(99);
    let thrown = 0;
    const wrong: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const bytes = Buffer.from(Array.from({ length: int(rng, 40) }, () => int(rng, 256)));
      const type = pick(rng, ['Scalars', 'Repeated', 'Maps', 'Nested']);
      try {
        decode(type, bytes);
      } catch (error) {
        thrown++;
        const message = error instanceof Error ? error.message : `not an Error: ${String(error)}`;
        if (!/^malformed codectest\.\w+ message \(\d+ bytes\): /.test(message)) {
          wrong.push(`${bytes.toString('hex')}: ${message}`);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(thrown).toBeGreaterThan(1000);
  });
});
