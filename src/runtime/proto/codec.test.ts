// The codec against protobufjs, which the gRPC adapters used before it: for every message type of
// prepull's protos and of a test proto with every proto3 scalar type, enums, packed and unpacked
// repeated fields and maps, seeded random objects must (a) encode to bytes protobufjs decodes to
// what the codec decodes, (b) decode from protobufjs's bytes to what protobufjs's toObject gives,
// key order included, and (c) encode to the very bytes protobufjs writes. Then what protobufjs
// does not check: defaults, map keys, refused values and depth (malformed input: wire.test.ts).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import protobuf from 'protobufjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProtos, protoFiles } from '../../../scripts/proto-descriptors.ts';
import { ProtoCodec } from './codec.ts';
import { Objects, TEST_PROTO } from './testing/fixtures.ts';
import type { ProtoDescriptors } from './schema.ts';

/** The conversion the adapters had from protobufjs (src/runtime/cri/grpc.ts). */
const CONVERSION: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true };

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
