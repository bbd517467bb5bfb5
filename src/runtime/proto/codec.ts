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
//
// This file plans messages from descriptors and walks their fields; the bytes are wire.ts's,
// one field value's conversion values.ts's.

import type { FieldDescriptor, ProtoDescriptors, ScalarType } from './schema.ts';
import { enumCodec, SCALARS, scalarCodec, type ValueCodec } from './values.ts';
import { LENGTH_DELIMITED, MAX_DEPTH, Reader, WireError, Writer } from './wire.ts';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
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
