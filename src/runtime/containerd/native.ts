// containerd's own gRPC services on the CRI socket, in the namespace kubelet's images live in:
// image records and their labels, events, and content ingests. Thin typed calls; what they mean
// for prepull is in extras.ts.

import { fileURLToPath } from 'node:url';
import { loadMethods, type GrpcConnection, type Method } from '../cri/grpc.ts';
import { grpcFailure } from '../cri/errors.ts';
import type { ClientReadableStream } from '@grpc/grpc-js';

const PROTO_DIR = new URL('./proto/', import.meta.url);
// Next to this module in src/ and, copied by scripts/build.ts, in dist/.
export const CONTAINERD_PROTOS = ['images.proto', 'events.proto', 'content.proto'].map((file) =>
  fileURLToPath(new URL(file, PROTO_DIR)),
);

/** The namespace CRI keeps kubelet's images in. */
export const K8S_NAMESPACE = 'k8s.io';
export const PINNED_LABEL = 'io.cri-containerd.pinned';
export const PINNED_VALUE = 'pinned';

export interface NativeImage {
  name: string;
  labels: Record<string, string>;
}

export interface IngestStatus {
  ref: string;
  offset: number;
  total: number;
}

export interface Envelope {
  namespace: string;
  topic: string;
  event: { type_url: string; value: Buffer } | null;
}

interface Methods {
  images: Record<string, Method>;
  events: Record<string, Method>;
  content: Record<string, Method>;
}

let methodCache: Methods | undefined;

function methods(): Methods {
  methodCache ??= {
    images: loadMethods(CONTAINERD_PROTOS, 'containerd.services.images.v1.Images'),
    events: loadMethods(CONTAINERD_PROTOS, 'containerd.services.events.v1.Events'),
    content: loadMethods(CONTAINERD_PROTOS, 'containerd.services.content.v1.Content'),
  };
  return methodCache;
}

function method(table: Record<string, Method>, name: string): Method {
  const found = table[name];
  if (found === undefined) throw new Error(`containerd protos have no method ${name}`);
  return found;
}

export interface ContainerdNativeOptions {
  connection: GrpcConnection;
  namespace?: string;
  callTimeoutMs?: number;
}

export class ContainerdNative {
  readonly namespace: string;
  readonly #connection: GrpcConnection;
  readonly #callTimeoutMs: number;

  constructor(options: ContainerdNativeOptions) {
    this.#connection = options.connection;
    this.namespace = options.namespace ?? K8S_NAMESPACE;
    this.#callTimeoutMs = options.callTimeoutMs ?? 30_000;
  }

  async listImages(filters: readonly string[]): Promise<NativeImage[]> {
    const response = await this.#call<{ images: NativeImage[] }>(
      method(methods().images, 'List'),
      { filters },
      'listing containerd image records',
    );
    return response.images;
  }

  /** Sets (or, with undefined, removes) one label of one image record. */
  async setLabel(name: string, key: string, value: string | undefined): Promise<void> {
    await this.#call(
      method(methods().images, 'Update'),
      {
        image: { name, labels: value === undefined ? {} : { [key]: value } },
        // Only this label changes; the record's target and other labels stay.
        update_mask: { paths: [`labels.${key}`] },
      },
      `labelling containerd image record ${JSON.stringify(name)}`,
    );
  }

  async publish(topic: string, typeUrl: string, value: Buffer): Promise<void> {
    await this.#call(
      method(methods().events, 'Publish'),
      { topic, event: { type_url: typeUrl, value } },
      `publishing a containerd event on ${topic}`,
    );
  }

  /** Events matching any of `filters` until cancelled; no deadline. */
  subscribe(filters: readonly string[]): ClientReadableStream<unknown> {
    return this.#connection.serverStream(
      method(methods().events, 'Subscribe'),
      { filters },
      { metadata: this.#metadata() },
    );
  }

  async listStatuses(): Promise<IngestStatus[]> {
    const response = await this.#call<{
      statuses: { ref: string; offset: string; total: string }[];
    }>(method(methods().content, 'ListStatuses'), {}, 'listing containerd content ingests');
    return response.statuses.map((s) => ({
      ref: s.ref,
      offset: Number(s.offset),
      total: Number(s.total),
    }));
  }

  /** Digests of every blob in the content store (benchmarks check that a removal freed them). */
  listContent(): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const digests: string[] = [];
      const stream = this.#connection.serverStream(
        method(methods().content, 'List'),
        { filters: [] },
        { metadata: this.#metadata(), timeoutMs: this.#callTimeoutMs },
      );
      stream.on('data', (chunk: { info: { digest: string }[] }) => {
        for (const info of chunk.info) digests.push(info.digest);
      });
      stream.on('end', () => {
        resolve(digests);
      });
      stream.on('error', (error) => {
        reject(
          grpcFailure(error, { action: 'listing containerd content', pull: false, aborted: false }),
        );
      });
    });
  }

  #metadata(): Record<string, string> {
    return { 'containerd-namespace': this.namespace };
  }

  async #call<Response>(rpc: Method, request: object, action: string): Promise<Response> {
    try {
      return await this.#connection.unary<Response>(rpc, request, {
        timeoutMs: this.#callTimeoutMs,
        metadata: this.#metadata(),
      });
    } catch (error) {
      throw grpcFailure(error, {
        action,
        pull: false,
        aborted: false,
        timeoutMs: this.#callTimeoutMs,
      });
    }
  }
}

/** The `name` (field 1) of an ImageDelete payload; protobuf wire format, read by hand. */
export function decodeImageName(value: Buffer): string | undefined {
  let at = 0;
  while (at < value.length) {
    const key = readVarint(value, at);
    if (key === undefined) return undefined;
    at = key.next;
    const field = key.value >>> 3;
    const wire = key.value & 7;
    if (wire !== 2) {
      const skipped = skip(value, at, wire);
      if (skipped === undefined) return undefined;
      at = skipped;
      continue;
    }
    const length = readVarint(value, at);
    if (length === undefined || length.next + length.value > value.length) return undefined;
    if (field === 1) return value.toString('utf8', length.next, length.next + length.value);
    at = length.next + length.value;
  }
  return undefined;
}

function readVarint(buffer: Buffer, start: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let i = 0; i < 5 && start + i < buffer.length; i++) {
    const byte = buffer[start + i] ?? 0;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return { value, next: start + i + 1 };
  }
  return undefined;
}

function skip(buffer: Buffer, at: number, wire: number): number | undefined {
  if (wire === 0) return readVarint(buffer, at)?.next;
  if (wire === 1) return at + 8;
  if (wire === 5) return at + 4;
  return undefined;
}
