// `node scripts/proto-descriptors.ts`: writes src/runtime/proto/descriptors.ts, the message
// types, enums and services of the .proto files under src/, which the run-time codec
// (src/runtime/proto/codec.ts) works from instead of parsing .proto files with protobufjs at
// every start (docs/adr/0007-proto-codec.md). protobufjs parses them here, at development time
// only. src/runtime/proto/descriptors.test.ts fails when the checked-in file is out of date.
import protobuf from 'protobufjs';
import { readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type {
  EnumDescriptor,
  FieldDescriptor,
  MessageDescriptor,
  MethodDescriptor,
  ProtoDescriptors,
  ScalarType,
} from '../src/runtime/proto/schema.ts';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const OUTPUT = join(SRC, 'runtime/proto/descriptors.ts');

const SCALARS = new Set<string>([
  'double',
  'float',
  'int32',
  'uint32',
  'sint32',
  'fixed32',
  'sfixed32',
  'int64',
  'uint64',
  'sint64',
  'fixed64',
  'sfixed64',
  'bool',
  'string',
  'bytes',
]);

/** Scalars that proto3 packs when repeated (all but string and bytes), and enums. */
function packable(field: protobuf.Field): boolean {
  return (
    field.resolvedType instanceof protobuf.Enum ||
    (SCALARS.has(field.type) && field.type !== 'string' && field.type !== 'bytes')
  );
}

function fullName(object: protobuf.ReflectionObject): string {
  return object.fullName.replace(/^\./, '');
}

/** The .proto files the shipped code uses: every one under src/, by path under src/. */
export function protoFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const entry of readdirSync(SRC, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.proto')) continue;
    const path = join(entry.parentPath, entry.name);
    files[relative(SRC, path)] = path;
  }
  return files;
}

function describeField(field: protobuf.Field, owner: string): FieldDescriptor {
  const where = `${owner}.${field.name}`;
  // What the codec does not implement; none of it is in prepull's protos.
  if (field.partOf !== null) {
    throw new Error(`${where}: oneof fields (proto3 optional ones too) are not implemented`);
  }
  if (field.required || field.delimited || field.extend !== undefined) {
    throw new Error(`${where}: proto2 required, group and extension fields are not implemented`);
  }
  const resolved = field.resolvedType;
  const type = resolved === null ? field.type : fullName(resolved);
  if (resolved === null && !SCALARS.has(type)) throw new Error(`${where}: unknown type ${type}`);
  const described: { -readonly [K in keyof FieldDescriptor]: FieldDescriptor[K] } = {
    name: field.name,
    id: field.id,
    type,
  };
  if (field instanceof protobuf.MapField) {
    described.keyType = field.keyType as ScalarType;
  } else if (field.repeated) {
    described.repeated = true;
    if (packable(field) && !field.packed) described.packed = false;
  }
  return described;
}

/**
 * The descriptors of `files` (path under src/ → file), as parsed by protobufjs with the
 * options the run-time code had: field names as written.
 */
export function describeProtos(files: Record<string, string> = protoFiles()): ProtoDescriptors {
  const root = new protobuf.Root().loadSync(Object.values(files), { keepCase: true });
  root.resolveAll();
  const keyOf = new Map(Object.entries(files).map(([key, path]) => [path, key]));
  const fileDescriptors: Record<
    string,
    { services: Record<string, Record<string, MethodDescriptor>> }
  > = Object.fromEntries(Object.keys(files).map((key) => [key, { services: {} }]));
  const messages: Record<string, MessageDescriptor> = {};
  const enums: Record<string, EnumDescriptor> = {};
  const pending: protobuf.Type[] = [];

  const visit = (object: protobuf.ReflectionObject): void => {
    if (object instanceof protobuf.Service) {
      const key = keyOf.get(object.filename ?? '');
      if (key === undefined) throw new Error(`service ${object.fullName} is from no known file`);
      const methods: Record<string, MethodDescriptor> = {};
      for (const method of object.methodsArray) {
        const request = method.resolvedRequestType;
        const response = method.resolvedResponseType;
        if (request === null || response === null) {
          throw new Error(`${object.fullName}.${method.name}: its message types did not resolve`);
        }
        pending.push(request, response);
        methods[method.name] = {
          requestType: fullName(request),
          responseType: fullName(response),
          ...(method.requestStream === true ? { requestStream: true } : {}),
          ...(method.responseStream === true ? { responseStream: true } : {}),
        };
      }
      fileDescriptors[key]!.services[fullName(object)] = methods;
    } else if (object instanceof protobuf.Type && keyOf.has(object.filename ?? '')) {
      pending.push(object);
    }
    if (object instanceof protobuf.Namespace) object.nestedArray.forEach(visit);
  };
  visit(root);

  // Every message declared in our files, and every type those reach (google.protobuf.*).
  for (let type = pending.pop(); type !== undefined; type = pending.pop()) {
    const name = fullName(type);
    if (messages[name] !== undefined) continue;
    messages[name] = { fields: type.fieldsArray.map((field) => describeField(field, name)) };
    for (const field of type.fieldsArray) {
      if (field.resolvedType instanceof protobuf.Type) pending.push(field.resolvedType);
      if (field.resolvedType instanceof protobuf.Enum) {
        enums[fullName(field.resolvedType)] = { ...field.resolvedType.values };
      }
    }
  }
  return {
    files: sortedKeys(fileDescriptors),
    messages: sortedKeys(messages),
    enums: sortedKeys(enums),
  };
}

function sortedKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)));
}

async function write(): Promise<void> {
  const prettier = await import('prettier');
  const text = [
    '// Generated by scripts/proto-descriptors.ts from the .proto files under src/: do not edit.',
    '// After changing a .proto file, run `node scripts/proto-descriptors.ts` (a unit test fails',
    '// until the two agree).',
    "import type { ProtoDescriptors } from './schema.ts';",
    '',
    `export const DESCRIPTORS: ProtoDescriptors = ${JSON.stringify(describeProtos())};`,
    '',
  ].join('\n');
  const options = await prettier.resolveConfig(OUTPUT);
  writeFileSync(OUTPUT, await prettier.format(text, { ...options, filepath: OUTPUT }));
  process.stdout.write(`wrote ${relative(process.cwd(), OUTPUT)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await write();
