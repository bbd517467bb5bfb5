// The checked-in descriptors are the .proto files': regenerated here with protobufjs, they must
// be equal, so a .proto edited without `node scripts/proto-descriptors.ts` fails the unit tests.
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProtos, protoFiles } from '../../../scripts/proto-descriptors.ts';
import { DESCRIPTORS } from './descriptors.ts';

describe('src/runtime/proto/descriptors.ts', () => {
  it('describes exactly the .proto files under src/ (else run node scripts/proto-descriptors.ts)', () => {
    expect(Object.keys(protoFiles()).sort()).toEqual([
      'runtime/containerd/proto/content.proto',
      'runtime/containerd/proto/events.proto',
      'runtime/containerd/proto/images.proto',
      'runtime/cri/cri.proto',
    ]);
    expect(DESCRIPTORS).toEqual(describeProtos());
  });

  it('has every message type that a method or a field names', () => {
    const named = new Set<string>();
    for (const file of Object.values(DESCRIPTORS.files)) {
      for (const methods of Object.values(file.services)) {
        for (const method of Object.values(methods)) {
          named.add(method.requestType).add(method.responseType);
        }
      }
    }
    for (const message of Object.values(DESCRIPTORS.messages)) {
      for (const field of message.fields) if (field.type.includes('.')) named.add(field.type);
    }
    const known = new Set([
      ...Object.keys(DESCRIPTORS.messages),
      ...Object.keys(DESCRIPTORS.enums),
    ]);
    expect([...named].filter((name) => !known.has(name))).toEqual([]);
  });

  it('refuses what the codec does not implement: oneofs, proto3 optional, proto2 groups', () => {
    const dir = mkdtempSync(join(tmpdir(), 'prepull-descriptors-'));
    try {
      const cases = {
        oneof: 'syntax = "proto3"; message M { oneof o { string a = 1; int32 b = 2; } }',
        optional: 'syntax = "proto3"; message M { optional string a = 1; }',
        group: 'syntax = "proto2"; message M { optional group G = 1 { optional int32 a = 2; } }',
      };
      for (const [name, text] of Object.entries(cases)) {
        const path = join(dir, `${name}.proto`);
        writeFileSync(path, text);
        expect(() => describeProtos({ [`${name}.proto`]: path })).toThrow(/^M\.\w+: /);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
