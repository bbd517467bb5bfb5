// The CRI adapter against an in-process CRI server on a unix socket: the plain-CRI path that
// CRI-O and cri-dockerd take (no native extras, so no pinning, events or progress), what goes on
// the wire (AuthConfig from a RegistryCredential, references normalised), how answers come back
// (canonical names, pinned from extras), and status codes turned into typed errors.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { mkdtempSync, rmSync } from 'node:fs';
import { type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryCredential } from '../../image/credential.ts';
import { detectRuntime } from '../detect.ts';
import { CRI_PROTO, CriRuntime, type CriExtras } from './runtime.ts';
import { LOADER_OPTIONS } from './grpc.ts';

const ID = `sha256:${'c'.repeat(64)}`;
const DIGEST = `sha256:${'d'.repeat(64)}`;

interface Recorded {
  method: string;
  request: Record<string, unknown>;
}

type Handler = (request: Record<string, unknown>) => {
  error?: grpc.ServiceError;
  response?: object;
};

function serviceError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

const IMAGE = {
  id: ID,
  repo_tags: ['nginx:1.27'],
  repo_digests: [`nginx@${DIGEST}`],
  size: '1234',
  pinned: false,
};

describe('CriRuntime against an in-process CRI server', () => {
  let dir: string;
  let socket: string;
  let server: grpc.Server;
  const recorded: Recorded[] = [];
  const handlers: Record<string, Handler> = {};

  const handle = (method: string): grpc.handleUnaryCall<Record<string, unknown>, object> => {
    return (call, callback) => {
      recorded.push({ method, request: call.request });
      const outcome = handlers[method]?.(call.request) ?? { response: {} };
      if (outcome.error) callback(outcome.error);
      else callback(null, outcome.response ?? {});
    };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'prepull-cri-'));
    socket = join(dir, 'cri.sock');
    const definition = protoLoader.loadSync(CRI_PROTO, LOADER_OPTIONS);
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      runtime: { v1: Record<string, grpc.ServiceClientConstructor> };
    };
    server = new grpc.Server();
    const implement = (name: string): void => {
      const service = pkg.runtime.v1[name]!.service;
      server.addService(
        service,
        Object.fromEntries(Object.keys(service).map((method) => [method, handle(method)])),
      );
    };
    implement('RuntimeService');
    implement('ImageService');
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (error) => {
        if (error) reject(error);
        else resolve();
      });
    });
  });

  afterAll(() => {
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  const last = (method: string): Record<string, unknown> | undefined =>
    recorded.filter((r) => r.method === method).at(-1)?.request;

  it('reports no pinning, events or progress without native extras, and refuses them', async () => {
    const runtime = new CriRuntime({ endpoint: socket });
    try {
      expect(runtime.capabilities).toEqual({ pin: false, deletionEvents: false, progress: false });
      await expect(runtime.pin('nginx:1.27')).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
      await expect(runtime.unpin('nginx:1.27')).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
      await expect(runtime.watchDeletions(() => undefined)).rejects.toMatchObject({
        code: 'ERR_UNSUPPORTED',
      });
    } finally {
      await runtime.close();
    }
  });

  it('pulls with AuthConfig from the credential, normalised names, and no progress calls', async () => {
    handlers.PullImage = () => ({ response: { image_ref: ID } });
    handlers.ImageStatus = () => ({ response: { image: IMAGE } });
    const runtime = new CriRuntime({ endpoint: `unix://${socket}` });
    try {
      const progress: unknown[] = [];
      const image = await runtime.pull('nginx:1.27', {
        timeoutMs: 5000,
        credentials: new RegistryCredential({
          source: 'test',
          key: 'docker.io',
          username: 'u',
          password: 'p4ss',
          identityToken: 'it',
        }),
        onProgress: (p) => progress.push(p),
      });
      expect(last('PullImage')).toMatchObject({
        image: { image: 'docker.io/library/nginx:1.27' },
        auth: { username: 'u', password: 'p4ss', identity_token: 'it', registry_token: '' },
      });
      expect(last('ImageStatus')).toMatchObject({ image: { image: ID } });
      expect(image).toEqual({
        id: ID,
        repoTags: ['docker.io/library/nginx:1.27'],
        repoDigests: [`docker.io/library/nginx@${DIGEST}`],
        size: 1234,
        pinned: false,
      });
      expect(progress).toEqual([]);
    } finally {
      await runtime.close();
    }
  });

  it('reports images in use: by image_id or image_ref, by name resolved once, and the sandbox image while a sandbox exists', async () => {
    const other = `sha256:${'e'.repeat(64)}`;
    const pause = `sha256:${'f'.repeat(64)}`;
    handlers.ListContainers = () => ({
      response: {
        containers: [
          // containerd: image_ref is the image ID; CRI v1.31+: image_id too.
          { id: 'a', image_ref: ID, image: { image: 'nginx:1.27' } },
          { id: 'b', image_id: other, image_ref: 'docker.io/library/redis@sha256:x' },
          // Older CRI-O: a digest reference only, resolved through ImageStatus.
          { id: 'c', image_ref: `docker.io/library/busybox@${DIGEST}` },
          { id: 'd', image: { image: `docker.io/library/busybox@${DIGEST}` } },
        ],
      },
    });
    handlers.ListPodSandbox = () => ({ response: { items: [{ id: 'sandbox-1' }] } });
    handlers.Status = () => ({
      response: { info: { config: '{"sandboxImage":"registry.k8s.io/pause:3.10"}' } },
    });
    handlers.ImageStatus = (request) => {
      const name = (request.image as { image: string }).image;
      if (name === 'registry.k8s.io/pause:3.10') {
        return { response: { image: { ...IMAGE, id: pause } } };
      }
      return { response: { image: { ...IMAGE, id: `sha256:${'1'.repeat(64)}` } } };
    };
    const runtime = new CriRuntime({ endpoint: socket });
    try {
      const before = recorded.length;
      const used = await runtime.imagesInUse();
      expect([...used].sort()).toEqual([ID, other, pause, `sha256:${'1'.repeat(64)}`].sort());
      const asked = recorded.slice(before).filter((r) => r.method === 'ImageStatus');
      expect(asked.map((r) => (r.request.image as { image: string }).image).sort()).toEqual(
        [`docker.io/library/busybox@${DIGEST}`, 'registry.k8s.io/pause:3.10'].sort(),
      );
      // No sandbox: the pause image is not in use.
      handlers.ListPodSandbox = () => ({ response: { items: [] } });
      expect((await runtime.imagesInUse()).has(pause)).toBe(false);
    } finally {
      delete handlers.ListContainers;
      delete handlers.ListPodSandbox;
      delete handlers.Status;
      delete handlers.ImageStatus;
      await runtime.close();
    }
  });

  it('reads the sandbox image from verbose status where the runtime gives it', async () => {
    handlers.Version = () => ({
      response: {
        version: '0.1.0',
        runtime_name: 'cri-o',
        runtime_version: '1.30.0',
        runtime_api_version: 'v1',
      },
    });
    handlers.Status = () => ({ response: { info: { config: '{"sandboxImage":"pause:3.9"}' } } });
    const runtime = new CriRuntime({ endpoint: socket });
    try {
      expect(await runtime.info()).toEqual({
        name: 'cri-o',
        version: '1.30.0',
        apiVersion: 'v1',
        protocol: 'cri',
        endpoint: `unix://${socket}`,
        sandboxImage: 'pause:3.9',
      });
      handlers.Status = () => ({ response: { info: {} } });
      expect((await runtime.info()).sandboxImage).toBeUndefined();
    } finally {
      await runtime.close();
    }
  });

  it('answers undefined for an absent image, and maps failures to codes', async () => {
    handlers.ImageStatus = () => ({ response: {} });
    const runtime = new CriRuntime({ endpoint: socket });
    try {
      expect(await runtime.imageStatus('registry.test/app:1')).toBeUndefined();
      handlers.PullImage = () => ({
        error: serviceError(
          grpc.status.UNKNOWN,
          'failed to pull and unpack image "registry.test/app:1": pulling from host ' +
            'registry.test failed with status code [manifests 1]: 401 Unauthorized',
        ),
      });
      await expect(runtime.pull('registry.test/app:1', { timeoutMs: 5000 })).rejects.toMatchObject({
        code: 'ERR_REGISTRY_UNAUTHORIZED',
        retryable: false,
      });
      handlers.ImageFsInfo = () => ({
        response: {
          image_filesystems: [
            { fs_id: { mountpoint: '/var/lib/x' }, used_bytes: { value: '42' }, inodes_used: null },
          ],
        },
      });
      expect(await runtime.imageFsInfo()).toEqual([{ mountpoint: '/var/lib/x', usedBytes: 42 }]);
    } finally {
      await runtime.close();
    }
  });

  it('takes pinned from the labels, and says CRI does not report it (containerd 1.6.20)', async () => {
    handlers.ImageStatus = () => ({ response: { image: IMAGE } });
    const records = new Map([[`docker.io/library/nginx@${DIGEST}`, true]]);
    const extras: CriExtras = {
      pinRecords: () => Promise.resolve(records),
      setPinned: () => Promise.resolve(),
      watchDeletions: () => Promise.resolve(() => undefined),
      trackPull: () => ({ stop: () => Promise.resolve() }),
      close: () => undefined,
    };
    const runtime = new CriRuntime({ endpoint: socket, extras });
    try {
      expect(runtime.capabilities).toEqual({ pin: true, deletionEvents: true, progress: true });
      expect(await runtime.imageStatus('nginx:1.27')).toMatchObject({
        pinned: true,
        pinSource: 'label',
      });
      // A record whose label another client took off: not pinned as prepull pins, whatever CRI
      // says, so the engine puts the pin back.
      records.set('docker.io/library/nginx:1.27', false);
      handlers.ImageStatus = () => ({ response: { image: { ...IMAGE, pinned: true } } });
      // Some records labelled, some not: said, so that the engine leaves the pin to its owner.
      const partial = await runtime.imageStatus('nginx:1.27');
      expect(partial).toMatchObject({ pinned: false, pinPartial: true });
      expect(partial).not.toHaveProperty('pinSource');
      records.set(`docker.io/library/nginx@${DIGEST}`, false);
      expect(await runtime.imageStatus('nginx:1.27')).not.toHaveProperty('pinPartial');
      records.set(`docker.io/library/nginx@${DIGEST}`, true);
      records.set('docker.io/library/nginx:1.27', true);
      const whole = await runtime.imageStatus('nginx:1.27');
      expect(whole?.pinSource).toBe('cri');
      expect(whole).not.toHaveProperty('pinPartial');
    } finally {
      await runtime.close();
    }
  });

  it('keeps using the connection its detection probe opened', async () => {
    // A relay in front of the server counts the connections made to the runtime's socket.
    const relay = join(dir, 'relay.sock');
    const sockets = new Set<Socket>();
    let connections = 0;
    const proxy = createServer((client) => {
      connections++;
      const upstream = connect(socket);
      sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const close = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    await new Promise<void>((resolve) => proxy.listen(relay, resolve));
    const detected = await detectRuntime({ endpoint: `unix://${relay}` });
    try {
      expect(detected.found.kind).toBe('cri');
      await detected.runtime.info();
      await detected.runtime.listImages();
      // One for the Docker probe (GET /_ping, refused by the gRPC server), one for CRI: the
      // adapter's calls go out on the probe's connection rather than a new one.
      expect(connections).toBe(2);
    } finally {
      await detected.runtime.close();
      for (const open of sockets) open.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('gives ERR_RUNTIME_UNAVAILABLE when nothing listens on the socket', async () => {
    const runtime = new CriRuntime({ endpoint: join(dir, 'absent.sock'), callTimeoutMs: 2000 });
    try {
      await expect(runtime.listImages()).rejects.toMatchObject({
        code: 'ERR_RUNTIME_UNAVAILABLE',
        retryable: true,
      });
    } finally {
      await runtime.close();
    }
  });
});
