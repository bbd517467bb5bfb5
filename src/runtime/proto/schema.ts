// The shape of the proto descriptors the codec works from (src/runtime/proto/descriptors.ts,
// generated from the .proto files by scripts/proto-descriptors.ts): message fields, enums and
// services, already resolved to full names, so nothing is parsed or looked up by scope at run time.

export type ScalarType =
  | 'double'
  | 'float'
  | 'int32'
  | 'uint32'
  | 'sint32'
  | 'fixed32'
  | 'sfixed32'
  | 'int64'
  | 'uint64'
  | 'sint64'
  | 'fixed64'
  | 'sfixed64'
  | 'bool'
  | 'string'
  | 'bytes';

export interface FieldDescriptor {
  /** As written in the .proto (the objects use these names: protobufjs's keepCase). */
  readonly name: string;
  readonly id: number;
  /** A scalar type, or the full name of a message or enum ("runtime.v1.ImageSpec"); for a map, the value's type. */
  readonly type: string;
  readonly repeated?: true;
  /** Set on map fields only: the key's type. */
  readonly keyType?: ScalarType;
  /** false on a repeated scalar that is not packed ([packed = false]); proto3 packs the others. */
  readonly packed?: false;
}

export interface MessageDescriptor {
  readonly fields: readonly FieldDescriptor[];
}

/** Value names and numbers in declaration order. */
export type EnumDescriptor = Readonly<Record<string, number>>;

export interface MethodDescriptor {
  readonly requestType: string;
  readonly responseType: string;
  readonly requestStream?: true;
  readonly responseStream?: true;
}

export interface FileDescriptor {
  /** Services by full name ("runtime.v1.ImageService"), their methods by name. */
  readonly services: Readonly<Record<string, Readonly<Record<string, MethodDescriptor>>>>;
}

export interface ProtoDescriptors {
  /** By path under src/ ("runtime/cri/cri.proto"), which is also where dist/ has them. */
  readonly files: Readonly<Record<string, FileDescriptor>>;
  /** Every message type the services reach, by full name, google.protobuf ones included. */
  readonly messages: Readonly<Record<string, MessageDescriptor>>;
  readonly enums: Readonly<Record<string, EnumDescriptor>>;
}
