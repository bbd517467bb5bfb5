// One gRPC connection to a runtime socket, shared by the CRI services and containerd's own
// services (they listen on the same socket): method definitions, channel options, and unary and
// server-streaming calls with deadlines, metadata and cancellation.

import * as grpc from '@grpc/grpc-js';
import { ProtoCodec } from '../proto/codec.ts';
import { DESCRIPTORS } from '../proto/descriptors.ts';
import type { FileDescriptor } from '../proto/schema.ts';

/** kubelet's limit: ListImages on a node with thousands of images exceeds the 4 MiB default. */
export const MAX_RECEIVE_MESSAGE_BYTES = 16 * 1024 * 1024;

export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES,
  // Keepalive finds a runtime that hangs without closing the socket. containerd's gRPC server
  // keeps grpc-go's default enforcement (pings at most every 5 minutes while calls are open) and
  // answers more frequent pings with GOAWAY "too_many_pings", which would kill a long pull: so
  // ping a little less often than that, and only while calls are open.
  'grpc.keepalive_time_ms': 330_000,
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc.keepalive_permit_without_calls': 0,
  // After a runtime restart, reconnect within seconds rather than grpc's default of up to 2 min.
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 5000,
};

/**
 * How messages become objects — field names as in the .proto, 64-bit integers and enums as
 * strings, defaults filled in — as @grpc/proto-loader's options (for test servers). The methods
 * below convert the same way with src/runtime/proto/codec.ts.
 */
export const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true };

export type Method = grpc.MethodDefinition<object, unknown>;

let codec: ProtoCodec | undefined;

/** The descriptors of the given .proto files (paths in src/ or dist/), by their path under it. */
function describedFiles(files: readonly string[]): FileDescriptor[] {
  return files.map((file) => {
    const found = Object.entries(DESCRIPTORS.files).find(
      ([known]) => file === known || file.endsWith(`/${known}`),
    );
    if (found === undefined) {
      throw new Error(
        `${file} is not described in src/runtime/proto/descriptors.ts: run \`node scripts/proto-descriptors.ts\``,
      );
    }
    return found[1];
  });
}

/**
 * The methods of `service` ("runtime.v1.ImageService") from the given proto files, as
 * @grpc/proto-loader would define them — the same paths and the same conversions. The files are
 * not read: their descriptors were generated from them (scripts/proto-descriptors.ts), and the
 * codec works from those, since parsing the files and protobufjs's generated code cost ~100 ms
 * of CPU at every start (docs/adr/0007-proto-codec.md).
 */
export function loadMethods(files: readonly string[], service: string): Record<string, Method> {
  const found = describedFiles(files).find((file) => file.services[service] !== undefined);
  const described = found?.services[service];
  if (described === undefined) {
    throw new Error(`proto files ${files.join(', ')} define no service ${service}`);
  }
  codec ??= new ProtoCodec(DESCRIPTORS);
  const methods: Record<string, Method> = {};
  for (const [name, method] of Object.entries(described)) {
    const request = codec.message(method.requestType);
    const response = codec.message(method.responseType);
    methods[name] = {
      path: `/${service}/${name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: (value) => request.encode(value),
      requestDeserialize: (bytes) => request.decode(bytes),
      responseSerialize: (value) => response.encode(value as object),
      responseDeserialize: (bytes) => response.decode(bytes),
    };
  }
  return methods;
}

/** "unix:///run/containerd/containerd.sock" from that or from a bare path. */
export function unixTarget(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return `unix://${endpoint.slice('unix://'.length)}`;
  return `unix://${endpoint}`;
}

export function socketPath(endpoint: string): string {
  return endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : endpoint;
}

export interface CallOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  metadata?: Record<string, string> | undefined;
}

export class GrpcConnection {
  readonly target: string;
  readonly #client: grpc.Client;

  constructor(endpoint: string) {
    this.target = unixTarget(endpoint);
    this.#client = new grpc.Client(this.target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  /** Resolves with the response; rejects with the grpc.ServiceError (CANCELLED on abort). */
  unary<Response>(method: Method, request: object, options: CallOptions): Promise<Response> {
    return new Promise((resolve, reject) => {
      if (options.signal?.aborted === true) {
        reject(cancelledError());
        return;
      }
      const call = this.#client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        metadataOf(options.metadata),
        { deadline: Date.now() + options.timeoutMs },
        (error, response) => {
          options.signal?.removeEventListener('abort', onAbort);
          if (error) reject(error);
          else resolve(response as Response);
        },
      );
      const onAbort = (): void => {
        call.cancel();
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A server stream without a deadline (events), or with one (listings). */
  serverStream(
    method: Method,
    request: object,
    options: { metadata?: Record<string, string>; timeoutMs?: number },
  ): grpc.ClientReadableStream<unknown> {
    return this.#client.makeServerStreamRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      metadataOf(options.metadata),
      options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs },
    );
  }

  close(): void {
    this.#client.close();
  }
}

function metadataOf(values: Record<string, string> | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(values ?? {})) metadata.set(key, value);
  return metadata;
}

function cancelledError(): Error & { code: number; details: string } {
  return Object.assign(new Error('1 CANCELLED: cancelled before it started'), {
    code: grpc.status.CANCELLED,
    details: 'cancelled before it started',
  });
}

export { status as GrpcStatus } from '@grpc/grpc-js';
