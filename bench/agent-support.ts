// Shared by the `prepull agent` benchmarks (issues 7 and 8): the Kubernetes API test server with
// the shipped CRDs and RBAC (in this process, or as a child process when it must not share the
// agent's event loop), in-process agents on the in-memory runtime, PrePull and Node objects, a
// registry stand-in that counts requests, and small statistics.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAgent } from '../src/cli/agent.ts';
import { FakeRuntime, type FakeRuntimeOptions, detectedFake } from '../src/runtime/testing/fake.ts';
import { pollUntil } from '../src/testing/poll.ts';
import type { PullOptions, RuntimeImage } from '../src/runtime/types.ts';
import { KubeApiServer } from '../test/kube-api-server/index.ts';
import type { JsonObject } from '../test/kube-api-server/json.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const LAUNCHER = join(ROOT, 'test/kube-api-server/launcher.ts');

/** The identity every agent authenticates as: the shipped ServiceAccount. */
export const AGENT_USER = 'system:serviceaccount:prepull-system:prepull-agent';
export const PREPULLS = '/apis/prepull.dev/v1alpha1/prepulls';
export const NODE_IMAGE_CACHES = 'prepull.dev/nodeimagecaches';
/** Where the benchmarks' PrePulls live. */
export const NAMESPACE = 'bench';

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(new Error('aborted'));
      },
      { once: true },
    );
  });
}

/** Polls `check` every `everyMs` until it holds; throws `what` after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean,
  what: string,
  timeoutMs = 60_000,
  everyMs = 25,
): Promise<void> {
  await pollUntil(what, check, { timeoutMs, intervalMs: everyMs });
}

export function nodeObject(name: string, labels: Record<string, string> = {}): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
  };
}

export function namespaceObject(name = NAMESPACE): JsonObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

export function prePullObject(
  name: string,
  images: readonly string[],
  spec: Record<string, unknown> = {},
): JsonObject {
  return {
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { namespace: NAMESPACE, name },
    spec: { images: images.map((image) => ({ image })), ...spec },
  };
}

/** Content-addressed-looking digests, distinct per name. */
export function fakeDigest(name: string, salt = 'manifest'): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (const c of `${salt}:${name}`) {
    h1 = Math.imul(h1 ^ c.charCodeAt(0), 16777619) >>> 0;
    h2 = Math.imul(h2 ^ c.charCodeAt(0), 2246822519) >>> 0;
  }
  const hex = (h1.toString(16) + h2.toString(16)).padStart(16, '0');
  return `sha256:${hex.repeat(4)}`;
}

/** Publishes `refs` (tag references) in `runtime`'s fake registries, `size` bytes each. */
export function publishAll(runtime: FakeRuntime, refs: readonly string[], size = 1_000_000): void {
  for (const ref of refs) {
    runtime.publish(ref, { digest: fakeDigest(ref), id: fakeDigest(ref, 'config'), size });
  }
}

// ---- the API server ---------------------------------------------------------------------------

/** The test server in this process, with deploy/'s namespace, CRDs and RBAC and a `bench` namespace. */
export async function startApiServer(): Promise<{
  server: KubeApiServer;
  kubeconfig: string;
  adminKubeconfig: string;
}> {
  const server = await KubeApiServer.start();
  server.applyManifests(join(DEPLOY, 'namespace.yaml'));
  server.applyManifests(join(DEPLOY, 'crds'));
  server.applyManifests(join(DEPLOY, 'rbac.yaml'));
  server.apply(namespaceObject());
  const { kubeconfig } = server.serviceAccount('prepull-system', 'prepull-agent');
  return { server, kubeconfig, adminKubeconfig: server.adminKubeconfig() };
}

/** The test server as a child process (`test/kube-api-server/launcher.ts`), loaded the same way. */
export class ApiServerProcess {
  readonly child: ChildProcess;
  readonly kubeconfig: string;
  readonly adminKubeconfig: string;

  private constructor(child: ChildProcess, kubeconfig: string, adminKubeconfig: string) {
    this.child = child;
    this.kubeconfig = kubeconfig;
    this.adminKubeconfig = adminKubeconfig;
  }

  /** Starts it with deploy/ and `objects` (written to `dir` as a manifest) applied. */
  static async start(dir: string, objects: readonly JsonObject[]): Promise<ApiServerProcess> {
    const manifest = join(dir, 'bench-objects.yaml');
    writeFileSync(manifest, objects.map((o) => JSON.stringify(o)).join('\n---\n'));
    const child = spawn(
      process.execPath,
      [
        LAUNCHER,
        '--port',
        '0',
        // The launcher applies --crds, then --rbac, then --manifests: the namespace first.
        '--crds',
        join(DEPLOY, 'namespace.yaml'),
        '--crds',
        join(DEPLOY, 'crds'),
        '--rbac',
        join(DEPLOY, 'rbac.yaml'),
        '--manifests',
        manifest,
        '--serviceaccount',
        'prepull-system/prepull-agent',
        '--out',
        join(dir, 'kube'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const lines = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`kube-api-server did not start in 30 s: ${stdout}${stderr}`));
      }, 30_000);
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        if (/serviceaccount .* kubeconfig: .+\n/.test(stdout)) {
          clearTimeout(timer);
          resolve(stdout);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`kube-api-server exited (${code ?? signal}): ${stderr}`));
      });
    });
    const admin = /admin kubeconfig: (.+)\n/.exec(lines)?.[1];
    const agent = /serviceaccount .* kubeconfig: (.+)\n/.exec(lines)?.[1];
    if (admin === undefined || agent === undefined) throw new Error(`unexpected: ${lines}`);
    return new ApiServerProcess(child, agent, admin);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

// ---- agents in this process -------------------------------------------------------------------

/** One `prepull agent` run in this process through runAgent, on an injected runtime. */
export class InProcessAgent {
  readonly node: string;
  readonly runtime: FakeRuntime;
  readonly exit: Promise<number>;
  readonly #signals = new EventEmitter();
  /** What the agent printed (out and err), for a failure's message. */
  readonly output: string[] = [];

  constructor(
    node: string,
    runtime: FakeRuntime,
    options: { kubeconfig: string; logLevel?: string; extraArgs?: readonly string[] },
  ) {
    this.node = node;
    this.runtime = runtime;
    this.exit = runAgent(
      [
        '--kubeconfig',
        options.kubeconfig,
        '--node-name',
        node,
        '--log-level',
        options.logLevel ?? 'error',
        ...(options.extraArgs ?? []),
      ],
      {
        out: (t) => this.output.push(t),
        err: (t) => this.output.push(t),
      },
      this.#signals,
      // Hundreds of agents share this process: no process-wide collections from each of them.
      { detect: detectedFake(runtime), env: {}, releaseMemory: false },
    );
    // A failure surfaces at stop(); it must not be an unhandled rejection meanwhile.
    this.exit.catch(() => undefined);
  }

  /** SIGTERM, as the kubelet sends; resolves with the exit code (throws what runAgent threw). */
  async stop(): Promise<number> {
    this.#signals.emit('SIGTERM');
    return this.exit;
  }
}

/** The in-memory runtime, noting when each reference was first asked to be pulled. */
export class TimedRuntime extends FakeRuntime {
  /** performance.now() of the first pull() call per reference. */
  readonly firstPull = new Map<string, number>();
  readonly #waiters = new Map<string, (at: number) => void>();

  constructor(options: FakeRuntimeOptions = {}) {
    super(options);
  }

  override pull(ref: string, options: PullOptions): Promise<RuntimeImage> {
    if (!this.firstPull.has(ref)) {
      const at = performance.now();
      this.firstPull.set(ref, at);
      this.#waiters.get(ref)?.(at);
      this.#waiters.delete(ref);
    }
    return super.pull(ref, options);
  }

  /** Resolves with the time of the first pull of `ref` (now or when it comes). */
  pulled(ref: string, timeoutMs = 30_000): Promise<number> {
    const at = this.firstPull.get(ref);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(ref);
        reject(new Error(`no pull of ${ref} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.set(ref, (t) => {
        clearTimeout(timer);
        resolve(t);
      });
    });
  }
}

// ---- what the server saw ----------------------------------------------------------------------

interface NicStatus {
  images?: { image: string; state: string; reason?: string }[];
  summary?: { required?: number; present?: number };
  lastUpdateTime?: string;
}

export function nicStatus(server: KubeApiServer, node: string): NicStatus | undefined {
  const nic = server.get('prepull.dev/v1alpha1', 'NodeImageCache', node) as
    { status?: NicStatus } | undefined;
  return nic?.status;
}

/** Whether `node`'s NodeImageCache shows every one of `images` Present. */
export function showsPresent(
  server: KubeApiServer,
  node: string,
  images: readonly string[],
): boolean {
  const listed = new Map((nicStatus(server, node)?.images ?? []).map((i) => [i.image, i.state]));
  return images.every((image) => listed.get(image) === 'Present');
}

/**
 * Whether `node`'s NodeImageCache shows every one of `images` Present and done with: verified
 * (or its check failed and waits for a retry) and pinned, not Verifying or Pinning.
 */
export function showsSettled(
  server: KubeApiServer,
  node: string,
  images: readonly string[],
): boolean {
  const listed = new Map((nicStatus(server, node)?.images ?? []).map((i) => [i.image, i]));
  return images.every((image) => {
    const entry = listed.get(image);
    return entry?.state === 'Present' && entry.reason !== 'Verifying' && entry.reason !== 'Pinning';
  });
}

const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

export function isWrite(verb: string): boolean {
  return WRITE_VERBS.has(verb);
}

/**
 * Waits until the agents have made no non-watch request for `quietMs` (a status write pending
 * behind the 2 s coalescing counts as not quiet yet). Returns performance.now() of the last
 * request seen (within 100 ms).
 */
export async function quiet(
  server: KubeApiServer,
  quietMs: number,
  timeoutMs = 60_000,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let seen = server.accounting.count({ user: AGENT_USER, watch: false });
  let since = performance.now();
  for (;;) {
    await sleep(100);
    const now = server.accounting.count({ user: AGENT_USER, watch: false });
    if (now !== seen) {
      seen = now;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) {
      return since;
    }
    if (performance.now() > deadline)
      throw new Error(`the agents did not go quiet for ${quietMs} ms within ${timeoutMs} ms`);
  }
}

// ---- a registry that only counts --------------------------------------------------------------

/**
 * A plain-HTTP stand-in for a registry that answers manifest HEADs (and GETs of /v2/) with a
 * digest derived from the name, as `fakeDigest` makes it, and counts every request. Enough for
 * prepull's verification; nothing is ever downloaded from it.
 */
export class CountingRegistry {
  readonly server: Server;
  requests = 0;
  readonly byMethod = new Map<string, number>();

  private constructor() {
    this.server = createServer((req, res) => {
      this.requests++;
      const method = req.method ?? 'GET';
      this.byMethod.set(method, (this.byMethod.get(method) ?? 0) + 1);
      const match = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(req.url ?? '');
      if (match === null) {
        res.writeHead(req.url === '/v2/' ? 200 : 404, { 'content-length': '0' }).end();
        return;
      }
      const ref = `${this.host}/${match[1]!}:${match[2]!}`;
      res
        .writeHead(200, {
          'docker-content-digest': fakeDigest(ref),
          'content-type': 'application/vnd.oci.image.manifest.v1+json',
          'content-length': '512',
        })
        .end();
    });
    this.server.keepAliveTimeout = 60_000;
  }

  static async start(): Promise<CountingRegistry> {
    const registry = new CountingRegistry();
    registry.server.listen(0, '127.0.0.1');
    await once(registry.server, 'listening');
    return registry;
  }

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

// ---- statistics -------------------------------------------------------------------------------

/** The nearest-rank percentile (0 < p ≤ 100) of the samples. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('no samples');
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** A seeded PRNG (mulberry32), so a run's random draws repeat in the next. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A lognormal draw with the given median and σ (of the underlying normal), by Box–Muller. */
export function lognormal(random: () => number, median: number, sigma: number): number {
  const u = Math.max(random(), Number.EPSILON);
  const v = random();
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return median * Math.exp(sigma * z);
}
