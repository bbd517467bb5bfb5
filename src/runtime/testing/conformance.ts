// One conformance suite for ImageRuntime, run unchanged against the in-memory fake (unit tests)
// and against real containerd through CRI and real Docker Engine (integration tests). What
// differs between them — how an image reaches a registry the runtime pulls from, how another
// client removes an image, how a registry or the runtime itself is broken — comes in as hooks;
// what a runtime cannot do comes in as its expected capabilities, and the suite checks that such
// a method refuses with ERR_UNSUPPORTED rather than pretending. The images come from the
// caller's builder too (test/harness/images.ts: real OCI images), so this file imports nothing
// from test/.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { inspect } from 'node:util';
import { isPrepullError, type ErrorCode } from '../../errors.ts';
import type { RegistryCredential } from '../../image/credential.ts';
import { parseReference } from '../../image/reference.ts';
import { imageMatchesDigest, localDigests } from '../../image/digest.ts';
import type {
  DeletionEvent,
  ImageRuntime,
  PullProgress,
  RuntimeCapabilities,
  RuntimeImage,
} from '../types.ts';
import { pollUntil } from '../../testing/poll.ts';

export interface PublishedImage {
  /** registry/repository:tag */
  ref: string;
  /** registry/repository@digest (the manifest's, or the index's) */
  digestRef: string;
  digest: string;
  /** registry/repository */
  repository: string;
}

/** What the suite reads of an image its builder made. */
export interface SuiteImage {
  /** The manifest's digest. */
  readonly digest: string;
  /** The config's digest: the image ID a runtime reports. */
  readonly configDigest: string;
  /** Compressed sizes, as downloaded. */
  readonly layers: readonly { readonly size: number }[];
}

/** What the suite reads of a multi-arch index its builder made. */
export interface SuiteIndex {
  readonly digest: string;
}

/** Makes real OCI images, as test/harness/images.ts does; `publish` gets what it made. */
export interface ImageBuilder<Layer, Image extends SuiteImage, Index extends SuiteIndex> {
  fileLayer(files: Readonly<Record<string, string>>): Layer;
  /** `bytes` incompressible bytes, from `seed` (a file name). */
  fillerLayer(options: { bytes: number; seed: string }): Layer;
  /** linux/amd64 unless `platform` says otherwise. */
  buildImage(spec: {
    layers: readonly Layer[];
    platform?: { os: string; architecture: string };
  }): Image;
  buildIndex(images: readonly Image[]): Index;
}

export interface ConformanceTarget<Image extends SuiteImage, Index extends SuiteIndex> {
  runtime: ImageRuntime;
  /** What this runtime must report in `capabilities`. */
  expected: RuntimeCapabilities;
  /** The sandbox image info() must reveal, where the runtime reveals it. */
  expectedSandboxImage?: string;
  /** The large image for progress and abort: ~300 MB in 7 layers on real runtimes. */
  largeImage: { layers: number; layerBytes: number };
  /** Puts an image where the runtime can pull it: 'plain' needs no credentials, 'basic' does. */
  publish(
    repository: string,
    tag: string,
    image: Image | Index,
    registry?: 'plain' | 'basic',
  ): Promise<PublishedImage>;
  /** Credentials the 'basic' registry accepts. */
  credentials: RegistryCredential;
  /** Credentials with the right user and a wrong password. */
  wrongCredentials: RegistryCredential;
  /** Another client removes the image (kubelet's GC, `crictl rmi`, `docker rmi`). */
  removeBehindBack(ref: string): Promise<void>;
  /**
   * Another client creates a container from the image `ref` names (kubelet through CRI, in a pod
   * sandbox; `docker create`), not necessarily started; resolves to how to remove it again.
   */
  useImage(ref: string): Promise<() => Promise<void>>;
  /** The pin as the runtime records it natively (containerd: the label, read through its own
   *  API); undefined where the runtime cannot pin. */
  pinnedNatively(ref: string): Promise<boolean | undefined>;
  /** Another client takes the pin off the record `ref` names (`ctr images label IMG
   *  io.cri-containerd.pinned=`); only where the runtime pins. */
  unpinBehindBack(ref: string): Promise<void>;
  /** Disruptive hooks, only on the isolated target. Each returns how to undo it. */
  breakRegistry?(): Promise<() => Promise<void>>;
  vanishSocket?(): Promise<() => Promise<void>>;
  restartRuntime?(): Promise<void>;
  close(): Promise<void>;
}

export interface ConformanceSetup<Layer, Image extends SuiteImage, Index extends SuiteIndex> {
  images: ImageBuilder<Layer, Image, Index>;
  /** For ordinary cases; may share components with other tests (names keep them apart). */
  shared(): Promise<ConformanceTarget<Image, Index>>;
  /** For disruptive cases: a runtime and registry of its own, which the hooks may break. */
  isolated(): Promise<ConformanceTarget<Image, Index>>;
}

/** How long a real runtime may take to come back after a restart (grpc reconnect backoff). */
const RECOVERY_MS = 30_000;
/** Asks every 250 ms while it comes back; until then a call fails, which means "not yet". */
const RECOVERING = { timeoutMs: RECOVERY_MS, intervalMs: 250, retryErrors: true };
const PULL_TIMEOUT_MS = 120_000;

let counter = 0;
function unique(prefix: string): string {
  counter++;
  return `conformance/${prefix}-${Date.now().toString(36)}${counter}${Math.random().toString(36).slice(2, 6)}`;
}

async function expectCode(
  promise: Promise<unknown>,
  code: ErrorCode,
  retryable?: boolean,
): Promise<Error> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeDefined();
  if (!isPrepullError(caught, code)) {
    throw new Error(`expected ${code}, got ${inspect(caught)}`);
  }
  if (retryable !== undefined) expect(caught.retryable).toBe(retryable);
  return caught;
}

/** Collects deletion events; `next` waits for one matching, up to `ms`. */
function eventLog(): {
  events: DeletionEvent[];
  onEvent: (event: DeletionEvent) => void;
  next(match: (event: DeletionEvent) => boolean, ms: number): Promise<DeletionEvent>;
} {
  const events: DeletionEvent[] = [];
  const waiters: { match: (e: DeletionEvent) => boolean; resolve: (e: DeletionEvent) => void }[] =
    [];
  return {
    events,
    onEvent(event) {
      events.push(event);
      for (const waiter of [...waiters]) {
        if (waiter.match(event)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(event);
        }
      }
    },
    next(match, ms) {
      const seen = events.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`no matching event within ${ms} ms; saw ${JSON.stringify(events)}`));
        }, ms);
        waiters.push({
          match,
          resolve: (event) => {
            clearTimeout(timer);
            resolve(event);
          },
        });
      });
    },
  };
}

function removedOneOf(names: readonly string[]): (event: DeletionEvent) => boolean {
  return (event) => event.kind === 'removed' && names.includes(event.name);
}

export function describeImageRuntimeConformance<
  Layer,
  Image extends SuiteImage,
  Index extends SuiteIndex,
>(name: string, setup: ConformanceSetup<Layer, Image, Index>): void {
  type Target = ConformanceTarget<Image, Index>;
  const { images } = setup;

  function smallImage(marker: string): Image {
    return images.buildImage({ layers: [images.fileLayer({ '/marker': marker })] });
  }

  function largeImage(seed: string, shape: { layers: number; layerBytes: number }): Image {
    const layers = [images.fileLayer({ '/marker': seed })];
    for (let i = 0; i < shape.layers - 1; i++) {
      layers.push(
        images.fillerLayer({ bytes: shape.layerBytes, seed: `${seed.replaceAll('/', '-')}-${i}` }),
      );
    }
    return images.buildImage({ layers });
  }

  async function pullSmall(
    target: Target,
    prefix: string,
  ): Promise<{
    published: PublishedImage;
    image: RuntimeImage;
  }> {
    const published = await target.publish(unique(prefix), 'v1', smallImage(unique(prefix)));
    const image = await target.runtime.pull(published.ref, { timeoutMs: PULL_TIMEOUT_MS });
    return { published, image };
  }

  describe(`${name}: ImageRuntime conformance`, () => {
    let t: Target;
    beforeAll(async () => {
      t = await setup.shared();
    });
    afterAll(async () => {
      await t.close();
    });

    it('reports its capabilities and identity', async () => {
      expect(t.runtime.capabilities).toEqual(t.expected);
      const info = await t.runtime.info();
      expect(info.name).not.toBe('');
      expect(info.version).not.toBe('');
      expect(info.apiVersion).not.toBe('');
      expect(info.endpoint).toMatch(/^unix:\/\//);
      expect(info.sandboxImage).toBe(t.expectedSandboxImage);
      const filesystems = await t.runtime.imageFsInfo();
      expect(filesystems.length).toBeGreaterThan(0);
      expect(filesystems[0]?.mountpoint).not.toBe('');
    });

    it('pulls by tag; status finds the image by tag, digest and ID', async () => {
      const repository = unique('by-tag');
      const built = smallImage(repository);
      const published = await t.publish(repository, 'v1', built);
      const image = await t.runtime.pull(published.ref, { timeoutMs: PULL_TIMEOUT_MS });
      expect(image.id).toBe(built.configDigest);
      expect(image.repoTags).toContain(published.ref);
      expect(image.repoDigests).toContain(published.digestRef);
      expect(image.size).toBeGreaterThan(0);
      expect(await t.runtime.imageStatus(published.ref)).toEqual(image);
      expect((await t.runtime.imageStatus(published.digestRef))?.id).toBe(image.id);
      expect((await t.runtime.imageStatus(image.id))?.id).toBe(image.id);
      expect(imageMatchesDigest(image, published.ref, [built.digest])).toBe(true);
    });

    it('pulls by digest: the digest is recorded, no tag is made', async () => {
      const repository = unique('by-digest');
      const built = smallImage(repository);
      const published = await t.publish(repository, 'v1', built);
      const image = await t.runtime.pull(published.digestRef, { timeoutMs: PULL_TIMEOUT_MS });
      expect(image.id).toBe(built.configDigest);
      expect(image.repoDigests).toContain(published.digestRef);
      expect(image.repoTags).not.toContain(published.ref);
      expect((await t.runtime.imageStatus(published.digestRef))?.id).toBe(image.id);
      expect(await t.runtime.imageStatus(published.ref)).toBeUndefined();
      expect(localDigests(image, published.digestRef)).toEqual([built.digest]);
    });

    it('moves a tag on a later pull: status names the new image, the old keeps its digest', async () => {
      // What another client's pull of a moved tag leaves (kubelet with pullPolicy Always, an
      // operator's crictl pull): the engine's re-check reads the node again and must see this.
      const repository = unique('moved');
      const first = smallImage(`${repository} first`);
      const second = smallImage(`${repository} second`);
      const before = await t.publish(repository, 'v1', first);
      const old = await t.runtime.pull(before.ref, { timeoutMs: PULL_TIMEOUT_MS });
      const after = await t.publish(repository, 'v1', second);
      await t.runtime.pull(after.ref, { timeoutMs: PULL_TIMEOUT_MS });
      const now = await t.runtime.imageStatus(after.ref);
      expect(now?.id).toBe(second.configDigest);
      expect(localDigests(now!, after.ref)).toEqual([second.digest]);
      const kept = await t.runtime.imageStatus(before.digestRef);
      expect(kept?.id).toBe(old.id);
      expect(kept?.repoTags).not.toContain(before.ref);
    });

    it('pulls a multi-arch index: the amd64 image lands under the index digest', async () => {
      const repository = unique('multi-arch');
      const amd64 = images.buildImage({
        layers: [images.fileLayer({ '/marker': `${repository} amd64` })],
      });
      const arm64 = images.buildImage({
        layers: [images.fileLayer({ '/marker': `${repository} arm64` })],
        platform: { os: 'linux', architecture: 'arm64' },
      });
      const index = images.buildIndex([arm64, amd64]);
      const published = await t.publish(repository, 'multi', index);
      expect(published.digest).toBe(index.digest);
      const image = await t.runtime.pull(published.ref, { timeoutMs: PULL_TIMEOUT_MS });
      expect(image.id).toBe(amd64.configDigest);
      expect(image.repoDigests).toContain(published.digestRef);
      expect(imageMatchesDigest(image, published.ref, [index.digest])).toBe(true);
      expect(imageMatchesDigest(image, published.ref, [amd64.digest, index.digest])).toBe(true);
      expect(imageMatchesDigest(image, published.ref, [arm64.digest])).toBe(false);
      expect((await t.runtime.imageStatus(published.digestRef))?.id).toBe(amd64.configDigest);

      // Pulled by the platform manifest's digest, that digest is what gets recorded.
      const platformRef = `${published.repository}@${amd64.digest}`;
      const byPlatform = await t.runtime.pull(platformRef, { timeoutMs: PULL_TIMEOUT_MS });
      expect(byPlatform.id).toBe(amd64.configDigest);
      expect(imageMatchesDigest(byPlatform, platformRef, [index.digest, amd64.digest])).toBe(true);
    });

    it('reports an absent image as undefined, not as an error', async () => {
      const absent = `${(await t.publish(unique('absent'), 'v1', smallImage('absent'))).repository}:never-pushed`;
      expect(await t.runtime.imageStatus(absent)).toBeUndefined();
      expect(await t.runtime.imageStatus(`sha256:${'0'.repeat(64)}`)).toBeUndefined();
      await expectCode(t.runtime.imageStatus('team/UPPER:v1'), 'ERR_IMAGE_REF_INVALID');
    });

    it('lists every image in one call', async () => {
      const { published, image } = await pullSmall(t, 'list');
      const listed = await t.runtime.listImages();
      const found = listed.find((i) => i.id === image.id);
      expect(found?.repoTags).toContain(published.ref);
      expect(new Set(listed.map((i) => i.id)).size).toBe(listed.length);
    });

    it('removes an image; removing it again is not an error', async () => {
      const { published } = await pullSmall(t, 'remove');
      await t.runtime.remove(published.ref);
      expect(await t.runtime.imageStatus(published.ref)).toBeUndefined();
      await t.runtime.remove(published.ref);
    });

    it('pins and unpins where the runtime can, and says so where it cannot', async () => {
      const { published } = await pullSmall(t, 'pin');
      if (!t.expected.pin) {
        expect(t.runtime.capabilities.pin).toBe(false);
        await expectCode(t.runtime.pin(published.ref), 'ERR_UNSUPPORTED', false);
        await expectCode(t.runtime.unpin(published.ref), 'ERR_UNSUPPORTED', false);
        expect((await t.runtime.imageStatus(published.ref))?.pinned).toBe(false);
        return;
      }
      await t.runtime.pin(published.ref);
      expect((await t.runtime.imageStatus(published.ref))?.pinned).toBe(true);
      expect(await t.pinnedNatively(published.ref)).toBe(true);
      const listed = (await t.runtime.listImages()).find((i) => i.repoTags.includes(published.ref));
      expect(listed?.pinned).toBe(true);
      await t.runtime.unpin(published.ref);
      expect((await t.runtime.imageStatus(published.ref))?.pinned).toBe(false);
      expect(await t.pinnedNatively(published.ref)).toBe(false);
      await expectCode(
        t.runtime.pin(`${published.repository}:not-pulled`),
        'ERR_IMAGE_NOT_FOUND',
        false,
      );
    });

    it('sees a pin taken off behind its back on the next status and list, and reports the change', async () => {
      if (!t.expected.pin) return; // nothing to take off
      const { published } = await pullSmall(t, 'unpinned-behind-back');
      await t.runtime.pin(published.ref);
      const log = eventLog();
      const unsubscribe = t.expected.deletionEvents
        ? await t.runtime.watchDeletions(log.onEvent)
        : undefined;
      try {
        await t.unpinBehindBack(published.ref);
        if (unsubscribe !== undefined) {
          await log.next((e) => e.kind === 'updated' && e.name === published.ref, 1000);
        }
      } finally {
        unsubscribe?.();
      }
      expect(await t.pinnedNatively(published.ref)).toBe(false);
      expect((await t.runtime.imageStatus(published.ref))?.pinned).toBe(false);
      const listed = (await t.runtime.listImages()).find((i) => i.repoTags.includes(published.ref));
      expect(listed?.pinned).toBe(false);
      // Pinned again, every record is: the image reads pinned once more.
      await t.runtime.pin(published.ref);
      expect((await t.runtime.imageStatus(published.ref))?.pinned).toBe(true);
    });

    it('reports the images containers use, until the containers are removed', async () => {
      const used = await pullSmall(t, 'in-use');
      const unused = await pullSmall(t, 'not-in-use');
      const sandboxId =
        t.expectedSandboxImage === undefined
          ? undefined
          : (await t.runtime.imageStatus(t.expectedSandboxImage))?.id;
      const removeContainer = await t.useImage(used.published.ref);
      let inUse: Set<string>;
      try {
        inUse = await t.runtime.imagesInUse();
        expect(inUse.has(used.image.id)).toBe(true);
        expect(inUse.has(unused.image.id)).toBe(false);
        // A container in a pod sandbox: the sandbox's pause image is in use as well.
        if (sandboxId !== undefined) expect(inUse.has(sandboxId)).toBe(true);
      } finally {
        await removeContainer();
      }
      inUse = await t.runtime.imagesInUse();
      expect(inUse.has(used.image.id)).toBe(false);
    });

    it('reports a removal made behind its back within 1 s', async () => {
      const { published, image } = await pullSmall(t, 'behind-back');
      if (!t.expected.deletionEvents) {
        await expectCode(
          t.runtime.watchDeletions(() => undefined),
          'ERR_UNSUPPORTED',
          false,
        );
        return;
      }
      const log = eventLog();
      const unsubscribe = await t.runtime.watchDeletions(log.onEvent);
      try {
        await t.removeBehindBack(published.ref);
        await log.next(removedOneOf([published.ref, published.digestRef, image.id]), 1000);
      } finally {
        unsubscribe();
      }
      expect(await t.runtime.imageStatus(published.ref)).toBeUndefined();
    });

    it('fails typed without credentials on an htpasswd registry, and pulls with them', async () => {
      const repository = unique('auth');
      const published = await t.publish(repository, 'v1', smallImage(repository), 'basic');
      await expectCode(
        t.runtime.pull(published.ref, { timeoutMs: PULL_TIMEOUT_MS }),
        'ERR_REGISTRY_UNAUTHORIZED',
        false,
      );
      const refused = await expectCode(
        t.runtime.pull(published.ref, {
          timeoutMs: PULL_TIMEOUT_MS,
          credentials: t.wrongCredentials,
        }),
        'ERR_REGISTRY_UNAUTHORIZED',
        false,
      );
      // No credential appears in the error, its causes, or how it prints.
      const shown = `${refused.message}\n${inspect(refused, { depth: 10 })}\n${JSON.stringify(refused)}`;
      for (const secret of [t.wrongCredentials.password, t.credentials.password]) {
        expect(shown).not.toContain(secret);
      }
      const image = await t.runtime.pull(published.ref, {
        timeoutMs: PULL_TIMEOUT_MS,
        credentials: t.credentials,
      });
      expect(image.repoTags).toContain(published.ref);
    });

    it('fails typed for a reference the registry does not have, and for a malformed one', async () => {
      const published = await t.publish(unique('missing'), 'v1', smallImage('missing'));
      await expectCode(
        t.runtime.pull(`${published.repository}:no-such-tag`, { timeoutMs: PULL_TIMEOUT_MS }),
        'ERR_IMAGE_NOT_FOUND',
        false,
      );
      await expectCode(
        t.runtime.pull(`${published.repository}@sha256:${'1'.repeat(64)}`, {
          timeoutMs: PULL_TIMEOUT_MS,
        }),
        'ERR_IMAGE_NOT_FOUND',
        false,
      );
      await expectCode(
        t.runtime.pull('team/UPPER:v1', { timeoutMs: PULL_TIMEOUT_MS }),
        'ERR_IMAGE_REF_INVALID',
        false,
      );
      await expectCode(
        t.runtime.pull(`sha256:${'2'.repeat(64)}`, { timeoutMs: PULL_TIMEOUT_MS }),
        'ERR_IMAGE_REF_INVALID',
        false,
      );
    });

    it('reports increasing byte counts while pulling a large multi-layer image', async () => {
      const repository = unique('progress');
      const built = largeImage(repository, t.largeImage);
      const published = await t.publish(repository, 'v1', built);
      const reports: PullProgress[] = [];
      const image = await t.runtime.pull(published.ref, {
        timeoutMs: PULL_TIMEOUT_MS,
        onProgress: (progress) => reports.push(progress),
      });
      expect(image.id).toBe(built.configDigest);
      if (!t.expected.progress) {
        expect(reports).toEqual([]);
        return;
      }
      const downloadBytes = built.layers.reduce((sum, layer) => sum + layer.size, 0);
      expect(reports.length).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < reports.length; i++) {
        expect(reports[i]!.bytesDone).toBeGreaterThan(reports[i - 1]!.bytesDone);
      }
      expect(reports[0]!.bytesDone).toBeGreaterThan(0);
      const last = reports[reports.length - 1]!;
      expect(last.bytesDone).toBeLessThanOrEqual(downloadBytes);
      // At least one filler layer's worth was seen arriving.
      expect(last.bytesDone).toBeGreaterThanOrEqual(t.largeImage.layerBytes);
      if (last.bytesTotal !== undefined) expect(last.bytesTotal).toBeLessThanOrEqual(downloadBytes);
    });

    it('ends the call promptly when aborted mid-pull, and ends a pull at its deadline', async () => {
      const repository = unique('abort');
      const shape = { layers: 4, layerBytes: t.largeImage.layerBytes };
      const published = await t.publish(repository, 'v1', largeImage(repository, shape));
      const controller = new AbortController();
      let abortedAt = 0;
      const abort = (): void => {
        if (abortedAt === 0) {
          abortedAt = Date.now();
          controller.abort();
        }
      };
      const timer = setTimeout(abort, 150);
      const pulling = t.runtime.pull(published.ref, {
        timeoutMs: PULL_TIMEOUT_MS,
        signal: controller.signal,
        onProgress: abort,
      });
      await expectCode(pulling, 'ERR_ABORTED', false);
      clearTimeout(timer);
      expect(Date.now() - abortedAt).toBeLessThan(1000);
      expect(await t.runtime.imageStatus(published.ref)).toBeUndefined();

      // A different image for the deadline: what containerd leaves of the aborted pull (its
      // ingests and snapshots are cleaned up after the call has ended) can make a second pull
      // of the same layers fail at once with an unpack error, before any deadline.
      const late = unique('deadline');
      const second = await t.publish(late, 'v1', largeImage(late, shape));
      const started = Date.now();
      await expectCode(
        t.runtime.pull(second.ref, { timeoutMs: 50 }),
        'ERR_DEADLINE_EXCEEDED',
        true,
      );
      expect(Date.now() - started).toBeLessThan(2000);
    });
  });

  describe(`${name}: ImageRuntime conformance when things break`, () => {
    let t: Target;
    beforeAll(async () => {
      t = await setup.isolated();
    });
    afterAll(async () => {
      await t.close();
    });

    it('fails typed and retryable within the deadline when the registry is unreachable', async () => {
      const repository = unique('unreachable');
      const published = await t.publish(repository, 'v1', smallImage(repository));
      const restore = await t.breakRegistry!();
      try {
        const started = Date.now();
        const timeoutMs = 30_000;
        await expectCode(
          t.runtime.pull(published.ref, { timeoutMs }),
          'ERR_REGISTRY_UNREACHABLE',
          true,
        );
        expect(Date.now() - started).toBeLessThan(timeoutMs);
      } finally {
        await restore();
      }
      await t.runtime.pull(published.ref, { timeoutMs: PULL_TIMEOUT_MS });
    });

    it('gives ERR_RUNTIME_UNAVAILABLE when the socket vanishes, and works again after', async () => {
      const { published } = await pullSmall(t, 'vanish');
      const bringBack = await t.vanishSocket!();
      try {
        await expectCode(t.runtime.listImages(), 'ERR_RUNTIME_UNAVAILABLE', true);
        await expectCode(t.runtime.imageStatus(published.ref), 'ERR_RUNTIME_UNAVAILABLE', true);
        await expectCode(
          t.runtime.pull(published.ref, { timeoutMs: 10_000 }),
          'ERR_RUNTIME_UNAVAILABLE',
          true,
        );
      } finally {
        await bringBack();
      }
      // Wrapped, so that an answer of "absent" ends the wait as an answer (and fails below).
      const { image } = await pollUntil(
        'the same adapter instance answers again',
        async () => ({ image: await t.runtime.imageStatus(published.ref) }),
        RECOVERING,
      );
      expect(image?.repoTags).toContain(published.ref);
    });

    it('works again after the runtime restarts, events included, without a new instance', async () => {
      const log = t.expected.deletionEvents ? eventLog() : undefined;
      const unsubscribe =
        log === undefined ? undefined : await t.runtime.watchDeletions(log.onEvent);
      try {
        await t.restartRuntime!();
        await pollUntil('the runtime answers again', () => t.runtime.listImages(), RECOVERING);
        const { published, image } = await pullSmall(t, 'after-restart');
        expect(await t.runtime.imageStatus(published.ref)).toEqual(image);
        if (log === undefined) return;
        // The watcher re-subscribed by itself and said it may have missed events.
        await log.next((event) => event.kind === 'gap', RECOVERY_MS);
        await t.removeBehindBack(published.ref);
        await log.next(removedOneOf([published.ref, published.digestRef, image.id]), 1000);
      } finally {
        unsubscribe?.();
      }
    });
  });
}

/** The repository part ("registry/repository") of a reference, canonical. */
export function repositoryOf(ref: string): string {
  return parseReference(ref).name;
}
