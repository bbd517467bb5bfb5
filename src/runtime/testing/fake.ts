// An in-memory ImageRuntime with the semantics of the real adapters (the conformance suite runs
// against it and them alike), for unit tests of the reconciler and the fleet simulation. It holds
// fake registries of images it can "pull", with download time on the injected Clock, and lets a
// test do what the world does to a node: delete images behind prepull's back, make a registry
// unreachable or require credentials, take the runtime down, fail a chosen reference.
//
// It follows containerd's CRI: removing an image removes all its names; pulling content already
// present under another name adds the name to the same image.

import { systemClock, type Clock } from '../../clock.ts';
import { PrepullError } from '../../errors.ts';
import type { RegistryCredential } from '../../image/credential.ts';
import type { ImageReference } from '../../image/reference.ts';
import { type DetectOptions, type DetectedRuntime, detectRuntime } from '../detect.ts';
import {
  allNames,
  imageHasName,
  imageTarget,
  pullTarget,
  quoted,
  type ImageTarget,
} from '../../image/names.ts';
import type {
  DeletionEvent,
  ImageFsUsage,
  ImageRuntime,
  PullOptions,
  RuntimeCapabilities,
  RuntimeImage,
  RuntimeInfo,
} from '../types.ts';

/** Where the fake says it listens (RuntimeInfo.endpoint, and what detection reports). */
const FAKE_ENDPOINT = 'unix:///fake/runtime.sock';

/**
 * What runtime detection would report had it found `runtime` (a FakeRuntime or a test's
 * variant of one): the `detect` dependency of `runSync` and `runAgent` in tests and benchmarks.
 */
export function detectedFake(runtime: ImageRuntime): () => Promise<DetectedRuntime> {
  return () =>
    Promise.resolve({
      runtime,
      endpoint: FAKE_ENDPOINT,
      found: { kind: 'cri', runtimeName: 'fake', runtimeVersion: '0.0.0', apiVersion: 'v1' },
      description: 'fake runtime',
      skipped: [],
    });
}

/**
 * Detection through detectRuntime itself, with the fake's socket the one endpoint tried: while
 * the fake is stopped (`stop()`), nothing answers there and detection fails
 * ERR_RUNTIME_NOT_DETECTED, as for a socket that is missing or refuses connections; once it is
 * started, detection finds it. For tests of waiting for a runtime that is not there yet.
 */
export function detectedFakeSocket(
  runtime: FakeRuntime,
): (options?: DetectOptions) => Promise<DetectedRuntime> {
  return (options = {}) =>
    detectRuntime({
      ...options,
      endpoint: FAKE_ENDPOINT,
      probe: () =>
        runtime.answering
          ? Promise.resolve({
              kind: 'cri',
              runtimeName: 'fake',
              runtimeVersion: '0.0.0',
              apiVersion: 'v1',
            })
          : Promise.reject(new Error('connect ECONNREFUSED (the fake runtime is stopped)')),
      create: () => Promise.resolve(runtime),
    });
}

/** An image a fake registry serves. */
export interface FakeRemoteImage {
  /** The digest its tag resolves to: the manifest's, or the index's for a multi-arch image. */
  readonly digest: string;
  /** The image ID that lands (the config digest of the platform's image). */
  readonly id: string;
  /** Bytes the image takes once pulled. */
  readonly size: number;
  /** Download sizes of its layers, for progress; default one layer of `size`. */
  readonly layers?: readonly number[];
  /** For an index: the digest of the platform manifest that is pulled. */
  readonly platformDigest?: string;
}

export type FakeOperation = 'pull' | 'imageStatus' | 'remove' | 'pin' | 'unpin';

export interface FakeRuntimeOptions {
  clock?: Clock;
  /** Simulated download speed in bytes per millisecond (default 100_000, about 100 MB/s). */
  bytesPerMs?: number;
  /** Time a pull takes before its first byte (resolving, auth), in ms (default 0). */
  pullLatencyMs?: number;
  /** How often a pull reports progress, in ms of simulated time (default 50). */
  progressIntervalMs?: number;
  /** Capabilities to pretend the runtime lacks (default: everything supported). */
  capabilities?: Partial<RuntimeCapabilities>;
  info?: Partial<RuntimeInfo>;
  /** How a pin is reported known (containerd 1.6.20: `label`); by default not said. */
  pinSource?: 'cri' | 'label';
}

interface FakeRegistry {
  reachable: boolean;
  auth?: { username: string; password: string };
  /** "repository:tag" and "repository@digest" → image */
  manifests: Map<string, FakeRemoteImage>;
}

interface LocalImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: number;
  pinned: boolean;
  /** Unpinned, yet some of its records carry the pin label (containerd). */
  pinPartial?: boolean;
}

interface Failure {
  error: PrepullError;
  op: FakeOperation;
  remaining: number;
}

const UNLIMITED = Number.POSITIVE_INFINITY;

/** Where the fake registry keeps what `ref` names: "repository:tag" or "repository@digest". */
function manifestKey(ref: ImageReference): string {
  return ref.digest === undefined
    ? `${ref.repository}:${ref.tag ?? 'latest'}`
    : `${ref.repository}@${ref.digest}`;
}

export class FakeRuntime implements ImageRuntime {
  readonly capabilities: RuntimeCapabilities;
  /** Every call, in order, for assertions: operation and the reference or ID given. */
  readonly calls: { op: string; ref?: string }[] = [];
  readonly #clock: Clock;
  readonly #bytesPerMs: number;
  readonly #pullLatencyMs: number;
  readonly #progressIntervalMs: number;
  readonly #infoOverride: Partial<RuntimeInfo>;
  readonly #registries = new Map<string, FakeRegistry>();
  readonly #images = new Map<string, LocalImage>();
  readonly #failures = new Map<string, Failure[]>();
  /** Pulls that stop sending after so many bytes, by image key (hang()). */
  readonly #hangs = new Map<string, number>();
  readonly #watchers = new Set<(event: DeletionEvent) => void>();
  readonly #pinSource: 'cri' | 'label' | undefined;
  /** Containers on the node (running or exited), by ID: the image ID each was created from. */
  readonly #containers = new Map<string, string>();
  #up = true;
  #brokenWatch = false;
  #closed = false;

  constructor(options: FakeRuntimeOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#bytesPerMs = options.bytesPerMs ?? 100_000;
    this.#pullLatencyMs = options.pullLatencyMs ?? 0;
    this.#progressIntervalMs = options.progressIntervalMs ?? 50;
    this.#infoOverride = options.info ?? {};
    this.#pinSource = options.pinSource;
    this.capabilities = {
      pin: options.capabilities?.pin ?? true,
      deletionEvents: options.capabilities?.deletionEvents ?? true,
      progress: options.capabilities?.progress ?? true,
    };
  }

  // ---- the world around the node -------------------------------------------------------------

  /** Serves `image` under `ref` (a tag reference; its digest, and the platform digest, too). */
  publish(ref: string, image: FakeRemoteImage): void {
    const parsed = pullTarget(ref).ref;
    const registry = this.#registry(parsed.registry);
    if (parsed.tag !== undefined && parsed.digest === undefined) {
      registry.manifests.set(`${parsed.repository}:${parsed.tag}`, image);
    }
    registry.manifests.set(`${parsed.repository}@${image.digest}`, image);
    if (image.platformDigest !== undefined) {
      registry.manifests.set(`${parsed.repository}@${image.platformDigest}`, image);
    }
  }

  /** Makes the registry at `host` ask for these credentials (Basic auth). */
  requireCredentials(host: string, credentials: { username: string; password: string }): void {
    this.#registry(host).auth = { ...credentials };
  }

  setRegistryReachable(host: string, reachable: boolean): void {
    this.#registry(host).reachable = reachable;
  }

  /** `op` on `ref` fails with `error` (`times` times; default every time until cleared). */
  failOn(
    ref: string,
    error: PrepullError,
    options: { op?: FakeOperation; times?: number } = {},
  ): void {
    const key = this.#key(imageTarget(ref));
    const list = this.#failures.get(key) ?? [];
    list.push({ error, op: options.op ?? 'pull', remaining: options.times ?? UNLIMITED });
    this.#failures.set(key, list);
  }

  clearFailures(): void {
    this.#failures.clear();
  }

  /**
   * Pulls of `ref` stop after `afterBytes` (default 0) and then send nothing more, as from a
   * registry that keeps the connection open: they end only by abort or their deadline.
   */
  hang(ref: string, afterBytes = 0): void {
    this.#hangs.set(this.#key(imageTarget(ref)), afterBytes);
  }

  /** Pulls of `ref` started from now on complete again. */
  unhang(ref: string): void {
    this.#hangs.delete(this.#key(imageTarget(ref)));
  }

  /**
   * Puts an image on the node directly, as if pulled earlier or loaded by someone else (`docker
   * load`, `ctr import`): its tags move to it from whatever image held them.
   */
  seed(image: Omit<RuntimeImage, 'pinned'> & { pinned?: boolean }): void {
    for (const other of this.#images.values()) {
      if (other.id !== image.id)
        other.repoTags = other.repoTags.filter((t) => !image.repoTags.includes(t));
    }
    this.#images.set(image.id, {
      id: image.id,
      repoTags: [...image.repoTags],
      repoDigests: [...image.repoDigests],
      size: image.size,
      pinned: image.pinned ?? false,
    });
  }

  /**
   * Another client (kubelet, an operator's `crictl pull`) pulls `ref` at once, unseen by `calls`:
   * a tag moves to what the registry serves for it now.
   */
  pullBehindBack(ref: string): void {
    const { ref: parsed, name } = pullTarget(ref);
    const remote = this.#registries.get(parsed.registry)?.manifests.get(manifestKey(parsed));
    if (remote === undefined) throw new Error(`the fake registry serves no ${name}`);
    const tag = parsed.digest === undefined ? name : undefined;
    this.#land(parsed.name, parsed.digest ?? remote.digest, tag, remote);
  }

  /** Another client (kubelet's GC, an operator's `crictl rmi`) removes the image `ref` names. */
  removeBehindBack(ref: string): void {
    const image = this.#find(imageTarget(ref));
    if (image !== undefined) this.#drop(image);
  }

  /**
   * Another client takes the pin off the image `ref` names (`ctr images label IMG
   * io.cri-containerd.pinned=`); reported as an `updated` event, as containerd's /images/update.
   */
  unpinBehindBack(ref: string): void {
    const image = this.#find(imageTarget(ref));
    if (image === undefined) return;
    image.pinned = false;
    for (const name of allNames(image)) this.#emit({ kind: 'updated', name });
  }

  /**
   * Another client pins only some records of the image `ref` names (`ctr images label IMG
   * io.cri-containerd.pinned=pinned` on the tag alone): reported unpinned, with `pinPartial`.
   */
  pinPartlyBehindBack(ref: string): void {
    const image = this.#find(imageTarget(ref));
    if (image === undefined) return;
    image.pinned = false;
    image.pinPartial = true;
    for (const name of allNames(image)) this.#emit({ kind: 'updated', name });
  }

  /**
   * A container is created from the image `ref` names (kubelet starting a Pod, `docker create`):
   * the image is in use until removeContainer. Returns the container's ID.
   */
  addContainer(ref: string): string {
    const image = this.#find(imageTarget(ref));
    if (image === undefined) throw new Error(`the fake runtime holds no ${ref} to run`);
    const id = `container-${this.#containers.size + 1}-${Math.random().toString(36).slice(2, 8)}`;
    this.#containers.set(id, image.id);
    return id;
  }

  removeContainer(id: string): void {
    this.#containers.delete(id);
  }

  /** Whether calls are answered: started (the default) and not closed. */
  get answering(): boolean {
    return this.#up && !this.#closed;
  }

  /** The runtime stops answering (stopped, socket gone): calls fail ERR_RUNTIME_UNAVAILABLE. */
  stop(): void {
    this.#up = false;
    if (this.#watchers.size > 0) this.#brokenWatch = true;
  }

  /** The runtime answers again; watchers hear a `gap`, as adapters' re-subscriptions report. */
  start(): void {
    this.#up = true;
    if (this.#brokenWatch) {
      this.#brokenWatch = false;
      this.#emit({
        kind: 'gap',
        reason: 'event stream re-established after: the runtime restarted',
      });
    }
  }

  restart(): void {
    this.stop();
    this.start();
  }

  /** The images on the node, for assertions. */
  snapshot(): RuntimeImage[] {
    return [...this.#images.values()].map((image) => this.#copy(image));
  }

  // ---- ImageRuntime ---------------------------------------------------------------------------

  info(): Promise<RuntimeInfo> {
    return this.#run('info', undefined, () => ({
      name: 'fake',
      version: '0.0.0',
      apiVersion: 'v1',
      protocol: 'cri' as const,
      endpoint: FAKE_ENDPOINT,
      ...this.#infoOverride,
    }));
  }

  listImages(): Promise<RuntimeImage[]> {
    return this.#run('listImages', undefined, () => this.snapshot());
  }

  imageStatus(ref: string): Promise<RuntimeImage | undefined> {
    return this.#run('imageStatus', ref, () => {
      const target = imageTarget(ref);
      this.#injected('imageStatus', target);
      const image = this.#find(target);
      return image === undefined ? undefined : this.#copy(image);
    });
  }

  async pull(ref: string, options: PullOptions): Promise<RuntimeImage> {
    this.calls.push({ op: 'pull', ref });
    this.#checkUp();
    const { ref: parsed, name } = pullTarget(ref);
    const target = imageTarget(ref);
    const action = `pulling ${quoted(name)} through the fake runtime`;
    if (options.signal?.aborted === true) {
      throw new PrepullError('ERR_ABORTED', `${action} was cancelled before it started`);
    }
    this.#injected('pull', target);
    const registry = this.#registries.get(parsed.registry);
    if (registry?.reachable !== true) {
      throw new PrepullError(
        'ERR_REGISTRY_UNREACHABLE',
        `${action}: the runtime could not reach the registry (dial tcp ${parsed.registry}: connection refused)`,
      );
    }
    checkCredentials(registry, options.credentials, action);
    const remote = registry.manifests.get(manifestKey(parsed));
    if (remote === undefined) {
      throw new PrepullError(
        'ERR_IMAGE_NOT_FOUND',
        `${action}: the registry has no such image (not found)`,
      );
    }
    await this.#download(remote, options, action, this.#hangs.get(this.#key(target)));
    this.#checkUp();
    return this.#copy(
      this.#land(
        parsed.name,
        parsed.digest ?? remote.digest,
        parsed.digest === undefined ? name : undefined,
        remote,
      ),
    );
  }

  remove(ref: string): Promise<void> {
    return this.#run('remove', ref, () => {
      const target = imageTarget(ref);
      this.#injected('remove', target);
      const image = this.#find(target);
      if (image !== undefined) this.#drop(image);
    });
  }

  pin(ref: string): Promise<void> {
    return this.#setPinned('pin', ref, true);
  }

  unpin(ref: string): Promise<void> {
    return this.#setPinned('unpin', ref, false);
  }

  imageFsInfo(): Promise<ImageFsUsage[]> {
    return this.#run('imageFsInfo', undefined, () => [
      {
        mountpoint: '/var/lib/fake-runtime',
        usedBytes: [...this.#images.values()].reduce((sum, image) => sum + image.size, 0),
      },
    ]);
  }

  imagesInUse(): Promise<Set<string>> {
    return this.#run('imagesInUse', undefined, () => new Set(this.#containers.values()));
  }

  watchDeletions(onEvent: (event: DeletionEvent) => void): Promise<() => void> {
    return this.#run('watchDeletions', undefined, () => {
      if (!this.capabilities.deletionEvents)
        throw unsupported('reporting image deletions as events');
      this.#watchers.add(onEvent);
      return () => {
        this.#watchers.delete(onEvent);
      };
    });
  }

  /** A new process connects after close() (an agent restarting on the same node). */
  reopen(): void {
    this.#closed = false;
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#watchers.clear();
    return Promise.resolve();
  }

  // ---- internals ------------------------------------------------------------------------------

  #registry(host: string): FakeRegistry {
    let registry = this.#registries.get(host);
    if (registry === undefined) {
      registry = { reachable: true, manifests: new Map() };
      this.#registries.set(host, registry);
    }
    return registry;
  }

  async #run<T>(op: string, ref: string | undefined, body: () => T): Promise<Awaited<T>> {
    this.calls.push(ref === undefined ? { op } : { op, ref });
    // Asynchronous like a real call, so callers cannot come to rely on synchronous answers.
    await Promise.resolve();
    this.#checkUp();
    return await body();
  }

  #checkUp(): void {
    if (this.#closed || !this.#up) {
      throw new PrepullError(
        'ERR_RUNTIME_UNAVAILABLE',
        'the fake runtime does not answer on its socket (stopped, or the socket is gone)',
      );
    }
  }

  #key(target: ImageTarget): string {
    return target.kind === 'id' ? target.id : target.name;
  }

  #injected(op: FakeOperation, target: ImageTarget): void {
    const list = this.#failures.get(this.#key(target));
    const failure = list?.find((f) => f.op === op && f.remaining > 0);
    if (failure === undefined) return;
    failure.remaining--;
    throw failure.error;
  }

  #find(target: ImageTarget): LocalImage | undefined {
    for (const image of this.#images.values()) {
      if (imageHasName(image, target)) return image;
    }
    return undefined;
  }

  #drop(image: LocalImage): void {
    this.#images.delete(image.id);
    for (const name of allNames(image)) this.#emit({ kind: 'removed', name });
  }

  #emit(event: DeletionEvent): void {
    for (const watcher of [...this.#watchers]) {
      // Delivered asynchronously, as from a real event stream.
      queueMicrotask(() => {
        if (this.#watchers.has(watcher)) watcher(event);
      });
    }
  }

  async #download(
    remote: FakeRemoteImage,
    options: PullOptions,
    action: string,
    hangAfter?: number,
  ): Promise<void> {
    const total = (remote.layers ?? [remote.size]).reduce((sum, n) => sum + n, 0);
    const started = this.#clock.now();
    const deadline = started + options.timeoutMs;
    // A hung pull never finishes: its bytes stop at `hangAfter`.
    const finish =
      hangAfter === undefined
        ? started + this.#pullLatencyMs + Math.ceil(total / this.#bytesPerMs)
        : Number.POSITIVE_INFINITY;
    const cap = Math.min(total, hangAfter ?? total);
    let reported = 0;
    for (;;) {
      const now = this.#clock.now();
      if (now >= finish) break;
      if (now >= deadline) {
        throw new PrepullError(
          'ERR_DEADLINE_EXCEEDED',
          `${action} did not finish within ${options.timeoutMs} ms`,
        );
      }
      try {
        await this.#clock.sleep(
          Math.min(this.#progressIntervalMs, finish - now, deadline - now),
          options.signal,
        );
      } catch (cause) {
        throw new PrepullError('ERR_ABORTED', `${action} was cancelled`, { cause });
      }
      this.#checkUp();
      const elapsed = this.#clock.now() - started - this.#pullLatencyMs;
      const done = Math.min(cap, Math.max(0, Math.floor(elapsed * this.#bytesPerMs)));
      if (this.capabilities.progress && done > reported) {
        reported = done;
        options.onProgress?.({ bytesDone: done, bytesTotal: total });
      }
    }
  }

  #land(
    repository: string,
    digest: string,
    tagName: string | undefined,
    remote: FakeRemoteImage,
  ): LocalImage {
    const image = this.#images.get(remote.id) ?? {
      id: remote.id,
      repoTags: [],
      repoDigests: [],
      size: remote.size,
      pinned: false,
    };
    // A tag moves: whatever image held it before loses it.
    if (tagName !== undefined) {
      for (const other of this.#images.values()) {
        if (other !== image) other.repoTags = other.repoTags.filter((t) => t !== tagName);
      }
      if (!image.repoTags.includes(tagName)) image.repoTags.push(tagName);
    }
    const digestName = `${repository}@${digest}`;
    if (!image.repoDigests.includes(digestName)) image.repoDigests.push(digestName);
    this.#images.set(image.id, image);
    return image;
  }

  #copy(image: LocalImage): RuntimeImage {
    return {
      id: image.id,
      repoTags: [...image.repoTags],
      repoDigests: [...image.repoDigests],
      size: image.size,
      pinned: image.pinned,
      ...(image.pinned && this.#pinSource !== undefined ? { pinSource: this.#pinSource } : {}),
      ...(image.pinPartial === true ? { pinPartial: true } : {}),
    };
  }

  #setPinned(op: 'pin' | 'unpin', ref: string, pinned: boolean): Promise<void> {
    return this.#run(op, ref, () => {
      if (!this.capabilities.pin) throw unsupported('pinning images');
      const target = imageTarget(ref);
      this.#injected(op, target);
      const image = this.#find(target);
      if (image === undefined) {
        throw new PrepullError(
          'ERR_IMAGE_NOT_FOUND',
          `cannot ${op} ${quoted(this.#key(target))}: it is not on this node; pull it first`,
        );
      }
      const changed = image.pinned !== pinned || image.pinPartial === true;
      image.pinned = pinned;
      delete image.pinPartial;
      // As containerd's /images/update, one per record whose label changed.
      if (changed) for (const name of allNames(image)) this.#emit({ kind: 'updated', name });
    });
  }
}

function checkCredentials(
  registry: FakeRegistry,
  credentials: RegistryCredential | undefined,
  action: string,
): void {
  const auth = registry.auth;
  if (auth === undefined) return;
  if (credentials?.username === auth.username && credentials.password === auth.password) return;
  throw new PrepullError(
    'ERR_REGISTRY_UNAUTHORIZED',
    `${action}: the registry refused the pull: it needs credentials, or rejected the ones given (401 Unauthorized)`,
  );
}

function unsupported(what: string): PrepullError {
  return new PrepullError('ERR_UNSUPPORTED', `the fake runtime is configured without ${what}`);
}
