// One gRPC connection to a runtime socket, shared by the CRI services and containerd's own
// services (they listen on the same socket): proto loading, channel options, and unary and
// server-streaming calls with deadlines, metadata and cancellation.

import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

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

/** How a message becomes an object: 64-bit integers and enums as strings, defaults filled in. */
const CONVERSION: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true };

/** The same, for @grpc/proto-loader (test servers): plus field names exactly as in the .proto. */
export const LOADER_OPTIONS = { keepCase: true, ...CONVERSION };

export type Method = grpc.MethodDefinition<object, unknown>;

const roots = new Map<string, protobuf.Root>();

/** The proto files parsed once per process, whatever services are then looked up in them. */
function rootOf(files: readonly string[]): protobuf.Root {
  const key = files.join('\n');
  let root = roots.get(key);
  if (root === undefined) {
    root = new protobuf.Root().loadSync([...files], { keepCase: true });
    root.resolveAll();
    roots.set(key, root);
  }
  return root;
}

function bufferOf(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The methods of `service` ("runtime.v1.ImageService") from the given proto files, as
 * @grpc/proto-loader would define them — the same paths and the same conversions — built with
 * protobufjs directly: proto-loader also encodes a descriptor of every message for reflection,
 * which a client never uses, and that cost 40 ms and 3 MiB at every start.
 */
export function loadMethods(files: readonly string[], service: string): Record<string, Method> {
  const found = rootOf(files).lookup(service);
  if (!(found instanceof protobuf.Service)) {
    throw new Error(`proto files ${files.join(', ')} define no service ${service}`);
  }
  const methods: Record<string, Method> = {};
  for (const method of found.methodsArray) {
    const request = method.resolvedRequestType;
    const response = method.resolvedResponseType;
    if (request === null || response === null) {
      throw new Error(`${service}.${method.name}: its message types did not resolve`);
    }
    methods[method.name] = {
      path: `/${service}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: (value) => bufferOf(request.encode(request.fromObject(value)).finish()),
      requestDeserialize: (bytes) => request.toObject(request.decode(bytes), CONVERSION),
      responseSerialize: (value) =>
        bufferOf(response.encode(response.fromObject(value as object)).finish()),
      responseDeserialize: (bytes) => response.toObject(response.decode(bytes), CONVERSION),
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
  private readonly client: grpc.Client;

  constructor(endpoint: string) {
    this.target = unixTarget(endpoint);
    this.client = new grpc.Client(this.target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  /** Resolves with the response; rejects with the grpc.ServiceError (CANCELLED on abort). */
  unary<Response>(method: Method, request: object, options: CallOptions): Promise<Response> {
    return new Promise((resolve, reject) => {
      if (options.signal?.aborted === true) {
        reject(cancelledError());
        return;
      }
      const call = this.client.makeUnaryRequest(
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
    return this.client.makeServerStreamRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      metadataOf(options.metadata),
      options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs },
    );
  }

  close(): void {
    this.client.close();
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
