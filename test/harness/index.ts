// The real-component harness: one call starts real registries, containerd with CRI and Docker
// Engine under a fresh temporary root, wired to each other, and one call stops them and removes
// every trace. A detached reaper does the same if the test process dies first. Integration tests
// share one harness per Jest run (jest-global-setup.ts) and stay isolated by image names; tests
// that disrupt a component (stop a registry, restart containerd) start a private one.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupRoot, describeLeftovers, isClean, runPrefix } from './cleanup.ts';
import { Containerd, type ContainerdEndpoint } from './containerd.ts';
import { DockerEngine, type DockerEndpoint } from './docker.ts';
import { buildImage, busyboxLayer } from './images.ts';
import { checkPrerequisites, describeMissing, installMissing } from './prerequisites.ts';
import { Registry, type RegistryEndpoint } from './registry.ts';
import { TestRegistryClient } from './registry-client.ts';
import { makeTestCa } from './tls.ts';
import { TokenServer } from './token-server.ts';

export type { RegistryEndpoint } from './registry.ts';
export type { ContainerdEndpoint } from './containerd.ts';
export type { DockerEndpoint } from './docker.ts';
export type { TokenServer } from './token-server.ts';

/** `token` (bearer tokens from the harness's token server) is started only when asked for. */
export type RegistryVariant = 'plain' | 'basic' | 'tls' | 'token';

export interface HarnessOptions {
  /** Registries to start, by variant; each is also its name. Default: plain, basic and tls. */
  registries?: readonly RegistryVariant[];
  containerd?: boolean;
  docker?: boolean;
  log?: (line: string) => void;
}

/** Everything a test needs to reach the components; plain data, passed between processes. */
export interface HarnessInfo {
  root: string;
  registries: Partial<Record<RegistryVariant, RegistryEndpoint>>;
  containerd?: ContainerdEndpoint;
  docker?: DockerEndpoint;
  caPem: string;
  /** A scratch directory under the root for tests' own files. */
  workDir: string;
}

/** Credentials of the basic-auth registry. Test-only; the point is that they must not leak. */
export const BASIC_AUTH = { username: 'harness', password: 'harness-s3cret-Pa55' } as const;

/** The token registry's account that may pull and push everything. */
export const TOKEN_AUTH = { username: 'token-admin', password: 'token-s3cret-Pa55' } as const;
/** An account the token server lets pull only repositories under `allowed/`. */
export const TOKEN_LIMITED_AUTH = {
  username: 'token-limited',
  password: 'limited-s3cret-Pa55',
} as const;
/** Repositories under this prefix may be pulled anonymously from the token registry. */
export const TOKEN_PUBLIC_PREFIX = 'public/';

const REAPER = fileURLToPath(new URL('./reaper.ts', import.meta.url));

export function registryClient(endpoint: RegistryEndpoint): TestRegistryClient {
  return new TestRegistryClient({
    host: endpoint.host,
    scheme: endpoint.scheme,
    ...(endpoint.caPem !== undefined ? { ca: endpoint.caPem } : {}),
    ...(endpoint.username !== undefined ? { username: endpoint.username } : {}),
    ...(endpoint.password !== undefined ? { password: endpoint.password } : {}),
  });
}

/** Pushes one image or index and closes the client: the common case in tests. */
export async function pushImage(
  endpoint: RegistryEndpoint,
  repo: string,
  tag: string | undefined,
  image: Parameters<TestRegistryClient['push']>[2],
): Promise<{ digest: string }> {
  const client = registryClient(endpoint);
  try {
    return await client.push(repo, tag, image);
  } finally {
    client.close();
  }
}

export class Harness {
  readonly root: string;
  readonly registries = new Map<RegistryVariant, Registry>();
  containerd: Containerd | undefined;
  docker: DockerEngine | undefined;
  /** The token registry's token service, when the harness has a `token` registry. */
  tokenServer: TokenServer | undefined;
  caPem = '';
  private reaperPipe: NodeJS.WritableStream | undefined;
  private stopped = false;

  constructor(root: string) {
    this.root = root;
  }

  get info(): HarnessInfo {
    const registries: HarnessInfo['registries'] = {};
    for (const [variant, registry] of this.registries) registries[variant] = registry.endpoint;
    return {
      root: this.root,
      registries,
      ...(this.containerd ? { containerd: this.containerd.endpoint } : {}),
      ...(this.docker ? { docker: this.docker.endpoint } : {}),
      caPem: this.caPem,
      workDir: join(this.root, 'work'),
    };
  }

  registry(variant: RegistryVariant): Registry {
    const registry = this.registries.get(variant);
    if (registry === undefined) throw new Error(`harness has no ${variant} registry`);
    return registry;
  }

  /** Arms the reaper: a detached process that cleans the root up when this process dies. */
  armReaper(): void {
    const child = spawn(process.execPath, [REAPER, this.root], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    child.unref();
    const stdin = child.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null;
    stdin?.unref?.();
    if (stdin) this.reaperPipe = stdin;
  }

  /**
   * Stops every component — gracefully first, so daemons flush and unmount what they can — then
   * removes whatever is left (processes, mounts, cgroups, files) and the root. Throws when
   * anything remains, listing it.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.allSettled([this.docker?.stop(), this.containerd?.stop()]);
    await Promise.allSettled([...this.registries.values()].map((r) => r.stop()));
    await this.tokenServer?.stop().catch(() => undefined);
    const leftovers = cleanupRoot(this.root);
    this.reaperPipe?.end();
    if (!isClean(leftovers)) {
      throw new Error(`harness cleanup left behind:\n${describeLeftovers(leftovers)}`);
    }
  }
}

export type Availability = { ok: true } | { ok: false; reason: string };

/**
 * Whether the harness can run here, installing missing Debian packages first when root. In CI
 * (CI=true) the caller must fail on `ok: false`; elsewhere, skip with the reason.
 */
export function ensurePrerequisites(log: (line: string) => void = () => undefined): Availability {
  let check = checkPrerequisites();
  if (!check.root) {
    return {
      ok: false,
      reason: 'the real-component harness needs root (containerd and dockerd run as root)',
    };
  }
  if (check.missing.length > 0 || check.problems.length > 0) {
    installMissing(check, log);
    check = checkPrerequisites();
  }
  if (check.missing.length > 0 || check.problems.length > 0) {
    return { ok: false, reason: describeMissing(check) };
  }
  return { ok: true };
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const log = options.log ?? (() => undefined);
  const root = mkdtempSync(join(tmpdir(), runPrefix()));
  for (const sub of ['logs', 'work']) mkdirSync(join(root, sub), { recursive: true });
  const harness = new Harness(root);
  harness.armReaper();
  try {
    const ca = makeTestCa(join(root, 'ca'));
    harness.caPem = ca.caPem;
    const variants = options.registries ?? ['plain', 'basic', 'tls'];
    if (variants.includes('token')) {
      harness.tokenServer = await TokenServer.start({
        dir: join(root, 'token-server'),
        tls: ca,
        users: [
          { ...TOKEN_AUTH, pull: ['*'], push: ['*'] },
          { ...TOKEN_LIMITED_AUTH, pull: ['allowed/*'] },
        ],
        anonymousPull: [`${TOKEN_PUBLIC_PREFIX}*`],
      });
      log(`token server on ${harness.tokenServer.realm}`);
    }
    const tokenServer = harness.tokenServer;
    await Promise.all(
      variants.map(async (variant) => {
        const registry = await Registry.create(root, {
          name: variant,
          ...(variant === 'basic' ? { auth: { ...BASIC_AUTH } } : {}),
          ...(variant === 'tls' ? { tls: ca } : {}),
          ...(variant === 'token' && tokenServer
            ? {
                token: {
                  realm: tokenServer.realm,
                  service: tokenServer.service,
                  issuer: tokenServer.issuer,
                  rootCertBundle: tokenServer.rootCertFile,
                  ...TOKEN_AUTH,
                  caPem: ca.caPem,
                },
              }
            : {}),
        });
        harness.registries.set(variant, registry);
        log(`registry ${variant} on ${registry.endpoint.url}`);
      }),
    );
    const endpoints = [...harness.registries.values()].map((r) => r.endpoint);
    const cgroupBase = `/${root.split('/').pop() ?? 'prepull-harness'}`;
    const startContainerd = async (): Promise<void> => {
      if (options.containerd === false) return;
      // CRI needs a sandbox (pause) image; nothing comes from the internet, so build one.
      const sandboxRegistry = harness.registries.get('plain');
      if (sandboxRegistry === undefined)
        throw new Error('containerd needs the plain registry for its sandbox image');
      const pause = buildImage({
        layers: [busyboxLayer()],
        entrypoint: ['/bin/sleep', '2147483647'],
      });
      await pushImage(sandboxRegistry.endpoint, 'harness/pause', '3.9', pause);
      harness.containerd = await Containerd.create(root, {
        registries: endpoints,
        sandboxImage: `${sandboxRegistry.endpoint.host}/harness/pause:3.9`,
        cgroupParent: `${cgroupBase}-pods`,
      });
      log(`containerd on ${harness.containerd.endpoint.socket}`);
    };
    const startDocker = async (): Promise<void> => {
      if (options.docker === false) return;
      harness.docker = await DockerEngine.create(root, {
        registries: endpoints,
        cgroupParent: `${cgroupBase}-docker`,
      });
      log(`dockerd on ${harness.docker.endpoint.socket}`);
    };
    await Promise.all([startContainerd(), startDocker()]);
    return harness;
  } catch (error) {
    await harness.stop().catch(() => undefined);
    throw error;
  }
}

const INFO_ENV = 'PREPULL_HARNESS';
const SKIP_ENV = 'PREPULL_HARNESS_SKIP';

/** Publishes the shared harness to the test files of this run (they inherit the environment). */
export function publishHarness(info: HarnessInfo | { skip: string }): void {
  if ('skip' in info) process.env[SKIP_ENV] = info.skip;
  else process.env[INFO_ENV] = JSON.stringify(info);
}

/** Why integration tests skip in this run, or undefined when the shared harness is up. */
export function harnessSkipReason(): string | undefined {
  return process.env[SKIP_ENV];
}

/** The shared harness of this Jest run (started by jest-global-setup.ts). */
export function sharedHarness(): HarnessInfo {
  const raw = process.env[INFO_ENV];
  if (raw === undefined) {
    throw new Error(
      `no shared harness: ${harnessSkipReason() ?? 'run integration tests through `npm run test:integration`'}`,
    );
  }
  return JSON.parse(raw) as HarnessInfo;
}

/** A unique, registry-safe name for a test's images, so tests sharing a harness stay apart. */
export function uniqueName(prefix: string): string {
  const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  return `${prefix.toLowerCase().replace(/[^a-z0-9-]+/g, '-')}-${suffix}`;
}
