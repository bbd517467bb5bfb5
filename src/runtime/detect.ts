// Finds the node's container runtime: the endpoint given, or the first default socket that
// answers, told apart by protocol — Docker Engine answers `GET /_ping`, a CRI runtime answers
// `RuntimeService.Version` — and returns the matching adapter (with containerd's native extras
// when CRI says the runtime is containerd). Adapters load lazily, so a Docker node never loads
// gRPC and a CRI node never loads dockerode (docs/adr/0002-layout-and-boundaries.md).

import { stat } from 'node:fs/promises';
import { request } from 'node:http';
import type { Clock } from '../clock.ts';
import { PrepullError } from '../errors.ts';
import { isErrorLike, messageOf } from './error-text.ts';
import type { GrpcConnection } from './cri/grpc.ts';
import type { ImageRuntime } from './types.ts';

/** The runtimes' default sockets: containerd, CRI-O, cri-dockerd, k3s/RKE2's containerd, Docker
 *  Engine (docs/runtimes.md). */
export const DEFAULT_SOCKETS: readonly string[] = [
  '/run/containerd/containerd.sock',
  '/run/crio/crio.sock',
  '/run/cri-dockerd.sock',
  '/run/k3s/containerd/containerd.sock',
  '/var/run/docker.sock',
];

export type ProbeResult =
  | { kind: 'cri'; runtimeName: string; runtimeVersion: string; apiVersion: string }
  | { kind: 'docker'; version: string; apiVersion: string };

/** Asks what speaks on `socket`; rejects with an Error whose message says why nothing does. */
export type Prober = (socket: string, timeoutMs: number) => Promise<ProbeResult>;

/** Builds the adapter for what the probe found. */
export type AdapterFactory = (socket: string, found: ProbeResult) => Promise<ImageRuntime>;

export interface DetectOptions {
  /** --runtime-endpoint: "unix:///path" or a bare path; only this one is tried. */
  endpoint?: string | undefined;
  /** Sockets probed in order when no endpoint is given (default DEFAULT_SOCKETS). */
  candidates?: readonly string[];
  probe?: Prober;
  create?: AdapterFactory;
  probeTimeoutMs?: number;
  clock?: Clock;
  /**
   * What to do when nothing answers, said to whoever runs the command: with no endpoint given
   * (`probed`) and with one (`given`). Default: the agent's, whose sockets are mounted into a Pod.
   */
  advice?: { probed: string; given: string };
}

/** The agent's advice, the default: it runs in a Pod, the runtime's socket mounted in. */
export const AGENT_ADVICE = {
  probed: 'set --runtime-endpoint, or mount the runtime socket directory into the agent',
  given: 'check that the runtime is running and the socket is mounted',
};

export interface DetectedRuntime {
  runtime: ImageRuntime;
  endpoint: string;
  found: ProbeResult;
  /** For the log: what was chosen and what it can do. */
  description: string;
  /** Every socket tried before it, and why it was passed over. */
  skipped: { endpoint: string; reason: string }[];
}

export const DEFAULT_PROBE_TIMEOUT_MS = 3000;

/**
 * The gRPC connection a successful CRI probe opened, kept for the adapter built from its result
 * rather than closed and opened again: the adapter's first calls then go out on a connection
 * that is already up. Keyed by the probe's result; whatever is not taken is closed.
 */
const probeConnections = new WeakMap<ProbeResult, GrpcConnection>();

function takeConnection(found: ProbeResult): GrpcConnection | undefined {
  const connection = probeConnections.get(found);
  probeConnections.delete(found);
  return connection;
}

export async function detectRuntime(options: DetectOptions = {}): Promise<DetectedRuntime> {
  const sockets =
    options.endpoint === undefined
      ? (options.candidates ?? DEFAULT_SOCKETS)
      : [socketOf(options.endpoint)];
  const probe = options.probe ?? probeSocket;
  const create = options.create ?? ((socket, found) => createAdapter(socket, found, options.clock));
  const timeoutMs = options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const skipped: { endpoint: string; reason: string }[] = [];
  for (const socket of sockets) {
    const endpoint = `unix://${socket}`;
    let found: ProbeResult;
    try {
      found = await probe(socket, timeoutMs);
    } catch (error) {
      skipped.push({ endpoint, reason: messageOf(error) });
      continue;
    }
    let runtime: ImageRuntime;
    try {
      runtime = await create(socket, found);
    } finally {
      // A factory of its own (tests) leaves the probe's connection: close it.
      takeConnection(found)?.close();
    }
    return { runtime, endpoint, found, description: describe(endpoint, found, runtime), skipped };
  }
  const list = skipped.map((s) => `${s.endpoint}: ${s.reason}`).join('; ');
  const { probed, given } = options.advice ?? AGENT_ADVICE;
  const advice = options.endpoint === undefined ? probed : given;
  throw new PrepullError(
    'ERR_RUNTIME_NOT_DETECTED',
    `no container runtime answered (tried ${list}); ${advice}`,
  );
}

export function socketOf(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint.slice('unix://'.length);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint)) {
    throw new PrepullError(
      'ERR_UNSUPPORTED',
      `runtime endpoint ${JSON.stringify(endpoint)} is not a unix socket: give unix:///path or a path`,
    );
  }
  return endpoint;
}

function describe(endpoint: string, found: ProbeResult, runtime: ImageRuntime): string {
  const what =
    found.kind === 'docker'
      ? `Docker Engine ${found.version} (API ${found.apiVersion})`
      : `${found.runtimeName} ${found.runtimeVersion} (CRI ${found.apiVersion})`;
  const { pin, deletionEvents, progress } = runtime.capabilities;
  const can = [pin && 'pinning', deletionEvents && 'deletion events', progress && 'pull progress']
    .filter((x): x is string => x !== false)
    .join(', ');
  return `${what} at ${endpoint}; ${can === '' ? 'no pinning, events or progress' : `with ${can}`}`;
}

/** The default prober: the socket must exist; then Docker's ping, then CRI's Version. */
export async function probeSocket(socket: string, timeoutMs: number): Promise<ProbeResult> {
  try {
    const info = await stat(socket);
    if (!info.isSocket()) throw new Error('not a socket');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new Error(code === 'ENOENT' ? 'no such socket' : messageOf(error), { cause: error });
  }
  let dockerReason: string;
  try {
    return await probeDocker(socket, timeoutMs);
  } catch (error) {
    dockerReason = messageOf(error);
  }
  try {
    return await probeCri(socket, timeoutMs);
  } catch (error) {
    throw new Error(`not Docker Engine (${dockerReason}), not CRI (${messageOf(error)})`, {
      cause: error,
    });
  }
}

async function probeDocker(socket: string, timeoutMs: number): Promise<ProbeResult> {
  const ping = await httpGet(socket, '/_ping', timeoutMs);
  if (ping.status !== 200 || ping.body !== 'OK') {
    throw new Error(`GET /_ping answered ${ping.status}`);
  }
  const version = await httpGet(socket, '/version', timeoutMs);
  const parsed = JSON.parse(version.body) as { Version?: string; ApiVersion?: string };
  return { kind: 'docker', version: parsed.Version ?? '', apiVersion: parsed.ApiVersion ?? '' };
}

async function probeCri(socket: string, timeoutMs: number): Promise<ProbeResult> {
  // One after the other: runtime.ts imports grpc.ts itself, so the second is already loaded.
  // Two concurrent imports reaching one module while it links trip Jest's ESM loader ("…is not
  // linked"), which the integration tests run under; Node itself does not mind either way.
  const { CriRuntime } = await import('./cri/runtime.ts');
  const { GrpcConnection } = await import('./cri/grpc.ts');
  const connection = new GrpcConnection(socket);
  const cri = new CriRuntime({ endpoint: socket, connection });
  let kept = false;
  try {
    const version = await cri.version(timeoutMs);
    const found: ProbeResult = {
      kind: 'cri',
      runtimeName: version.runtime_name,
      runtimeVersion: version.runtime_version,
      apiVersion: version.runtime_api_version,
    };
    probeConnections.set(found, connection);
    kept = true;
    return found;
  } catch (error) {
    // The gRPC status text alone: the adapter's advice about sockets is noise in a probe list.
    const details = (isErrorLike(error) ? (error.cause as { details?: unknown }) : undefined)
      ?.details;
    throw new Error(typeof details === 'string' && details !== '' ? details : messageOf(error), {
      cause: error,
    });
  } finally {
    if (!kept) await cri.close();
  }
}

async function createAdapter(
  socket: string,
  found: ProbeResult,
  clock: Clock | undefined,
): Promise<ImageRuntime> {
  const withClock = clock === undefined ? {} : { clock };
  if (found.kind === 'docker') {
    const { DockerRuntime } = await import('./docker/runtime.ts');
    return new DockerRuntime({ endpoint: socket, ...withClock });
  }
  const connection = takeConnection(found);
  const reuse = connection === undefined ? {} : { connection };
  if (found.runtimeName === 'containerd') {
    const { containerdRuntime } = await import('./containerd/runtime.ts');
    return containerdRuntime({ endpoint: socket, ...withClock, ...reuse });
  }
  const { CriRuntime } = await import('./cri/runtime.ts');
  return new CriRuntime({ endpoint: socket, ...reuse });
}

function httpGet(
  socket: string,
  path: string,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
