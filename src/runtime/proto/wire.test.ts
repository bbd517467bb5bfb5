// Malformed wire format: a cut, a wrong or invalid wire type, an impossible varint, field number
// or length, or random bytes throw an Error naming the message type, never anything else.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProtos } from '../../../scripts/proto-descriptors.ts';
import { ProtoCodec } from './codec.ts';
import { int, Objects, pick, random, SCALAR_VALUES, TEST_PROTO } from './testing/fixtures.ts';
import type { FieldDescriptor, ProtoDescriptors } from './schema.ts';

let dir: string;
let test: { descriptors: ProtoDescriptors; codec: ProtoCodec };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'prepull-wire-'));
  const path = join(dir, 'codectest.proto');
  writeFileSync(path, TEST_PROTO);
  const descriptors = describeProtos({ 'codectest.proto': path });
  test = { descriptors, codec: new ProtoCodec(descriptors) };
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
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
