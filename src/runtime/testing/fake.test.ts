// The fake runtime: first the shared conformance suite (the same cases containerd and Docker
// pass in the integration tests), then what only the fake has — injected errors, latency on a
// manual clock, seeded images, capabilities switched off.
import { describe, expect, it } from '@jest/globals';
import { ManualClock } from '../../clock.ts';
import { PrepullError } from '../../errors.ts';
import { RegistryCredential } from '../../image/credential.ts';
import {
  describeImageRuntimeConformance,
  repositoryOf,
  type ConformanceTarget,
} from './conformance.ts';
import * as images from '../../../test/harness/images.ts';
import type { BuiltImage, BuiltIndex } from '../../../test/harness/images.ts';
import { FakeRuntime, type FakeRemoteImage } from './fake.ts';
import type { DeletionEvent, PullProgress } from '../types.ts';

const HOSTS = { plain: 'plain.registry.test:5000', basic: 'basic.registry.test:5000' } as const;
const USER = { username: 'fake-user', password: 'fake-s3cret-pw' };

function remoteOf(image: BuiltImage | BuiltIndex): FakeRemoteImage {
  if ('images' in image) {
    const amd64 = image.images.find((i) => i.platform.architecture === 'amd64');
    if (amd64 === undefined) throw new Error('index without amd64');
    return { ...remoteOf(amd64), digest: image.digest, platformDigest: amd64.digest };
  }
  return {
    digest: image.digest,
    id: image.configDigest,
    size: image.size,
    layers: image.layers.map((layer) => layer.size),
  };
}

function fakeTarget(): ConformanceTarget<BuiltImage, BuiltIndex> {
  // About 10 MB/s: the suite's 7 MB "large" image takes 0.7 s, long enough to abort mid-pull.
  const runtime = new FakeRuntime({ bytesPerMs: 10_000, progressIntervalMs: 20 });
  runtime.requireCredentials(HOSTS.basic, USER);
  return {
    runtime,
    expected: { pin: true, deletionEvents: true, progress: true },
    largeImage: { layers: 7, layerBytes: 1024 * 1024 },
    publish(repository, tag, image, registry = 'plain') {
      const ref = `${HOSTS[registry]}/${repository}:${tag}`;
      const remote = remoteOf(image);
      runtime.publish(ref, remote);
      return Promise.resolve({
        ref,
        digestRef: `${HOSTS[registry]}/${repository}@${remote.digest}`,
        digest: remote.digest,
        repository: repositoryOf(ref),
      });
    },
    credentials: new RegistryCredential({ source: 'test', key: HOSTS.basic, ...USER }),
    wrongCredentials: new RegistryCredential({
      source: 'test',
      key: HOSTS.basic,
      username: USER.username,
      password: 'not-the-password-9',
    }),
    removeBehindBack(ref) {
      runtime.removeBehindBack(ref);
      return Promise.resolve();
    },
    useImage(ref) {
      const id = runtime.addContainer(ref);
      return Promise.resolve(() => {
        runtime.removeContainer(id);
        return Promise.resolve();
      });
    },
    async pinnedNatively(ref) {
      return (await runtime.imageStatus(ref))?.pinned;
    },
    unpinBehindBack(ref) {
      runtime.unpinBehindBack(ref);
      return Promise.resolve();
    },
    breakRegistry() {
      runtime.setRegistryReachable(HOSTS.plain, false);
      return Promise.resolve(() => {
        runtime.setRegistryReachable(HOSTS.plain, true);
        return Promise.resolve();
      });
    },
    vanishSocket() {
      runtime.stop();
      return Promise.resolve(() => {
        runtime.start();
        return Promise.resolve();
      });
    },
    restartRuntime() {
      runtime.restart();
      return Promise.resolve();
    },
    close: () => runtime.close(),
  };
}

describeImageRuntimeConformance('fake runtime', {
  images,
  shared: () => Promise.resolve(fakeTarget()),
  isolated: () => Promise.resolve(fakeTarget()),
});

const IMAGE: FakeRemoteImage = {
  digest: `sha256:${'a'.repeat(64)}`,
  id: `sha256:${'b'.repeat(64)}`,
  size: 1000,
  layers: [600, 400],
};
const REF = 'registry.test/team/app:1.0';

describe('FakeRuntime beyond the conformance suite', () => {
  it('takes simulated time on the injected clock and reports progress steps', async () => {
    const clock = new ManualClock();
    const runtime = new FakeRuntime({
      clock,
      bytesPerMs: 10,
      pullLatencyMs: 100,
      progressIntervalMs: 25,
    });
    runtime.publish(REF, IMAGE);
    const reports: PullProgress[] = [];
    let done = false;
    const pulling = runtime
      .pull(REF, { timeoutMs: 10_000, onProgress: (p) => reports.push(p) })
      .then((image) => {
        done = true;
        return image;
      });
    await clock.advance(150);
    expect(done).toBe(false);
    expect(reports.at(-1)).toEqual({ bytesDone: 500, bytesTotal: 1000 });
    await clock.advance(100);
    const image = await pulling;
    expect(done).toBe(true);
    expect(reports.at(-1)).toEqual({ bytesDone: 1000, bytesTotal: 1000 });
    expect(image).toEqual({
      id: IMAGE.id,
      repoTags: ['registry.test/team/app:1.0'],
      repoDigests: [`registry.test/team/app@${IMAGE.digest}`],
      size: 1000,
      pinned: false,
    });
    expect(clock.sleeps.every((ms) => ms <= 25)).toBe(true);
  });

  it('fails at the deadline on the injected clock', async () => {
    const clock = new ManualClock();
    const runtime = new FakeRuntime({ clock, bytesPerMs: 1 });
    runtime.publish(REF, IMAGE);
    const pulling = runtime.pull(REF, { timeoutMs: 200 });
    const outcome = expect(pulling).rejects.toMatchObject({ code: 'ERR_DEADLINE_EXCEEDED' });
    await clock.advance(250);
    await outcome;
  });

  it('fails a chosen reference with an injected error, a given number of times', async () => {
    const runtime = new FakeRuntime();
    runtime.publish(REF, IMAGE);
    const injected = new PrepullError('ERR_REGISTRY_RATE_LIMITED', 'slow down');
    runtime.failOn(REF, injected, { times: 2 });
    await expect(runtime.pull(REF, { timeoutMs: 1000 })).rejects.toBe(injected);
    await expect(runtime.pull(REF, { timeoutMs: 1000 })).rejects.toBe(injected);
    await expect(runtime.pull(REF, { timeoutMs: 1000 })).resolves.toMatchObject({ id: IMAGE.id });

    runtime.failOn(REF, new PrepullError('ERR_RUNTIME_FAILED', 'disk full'), { op: 'imageStatus' });
    await expect(runtime.imageStatus('registry.test/team/app:1.0')).rejects.toMatchObject({
      code: 'ERR_RUNTIME_FAILED',
    });
    runtime.clearFailures();
    await expect(runtime.imageStatus(REF)).resolves.toMatchObject({ id: IMAGE.id });
  });

  it('normalises references: a familiar name finds the canonical one', async () => {
    const runtime = new FakeRuntime();
    runtime.publish('nginx:1.27', IMAGE);
    await runtime.pull('docker.io/library/nginx:1.27', { timeoutMs: 1000 });
    expect((await runtime.imageStatus('nginx:1.27'))?.repoTags).toEqual([
      'docker.io/library/nginx:1.27',
    ]);
  });

  it('adds a second tag to the same content, and moves a tag to new content', async () => {
    const runtime = new FakeRuntime();
    const other = { ...IMAGE, digest: `sha256:${'c'.repeat(64)}`, id: `sha256:${'d'.repeat(64)}` };
    runtime.publish('registry.test/app:a', IMAGE);
    runtime.publish('registry.test/app:b', IMAGE);
    await runtime.pull('registry.test/app:a', { timeoutMs: 1000 });
    await runtime.pull('registry.test/app:b', { timeoutMs: 1000 });
    expect(runtime.snapshot()).toHaveLength(1);
    expect(runtime.snapshot()[0]?.repoTags).toEqual(['registry.test/app:a', 'registry.test/app:b']);
    runtime.publish('registry.test/app:a', other);
    await runtime.pull('registry.test/app:a', { timeoutMs: 1000 });
    expect((await runtime.imageStatus('registry.test/app:a'))?.id).toBe(other.id);
    expect((await runtime.imageStatus('registry.test/app:b'))?.id).toBe(IMAGE.id);
  });

  it('reports missing capabilities and refuses their methods with ERR_UNSUPPORTED', async () => {
    const runtime = new FakeRuntime({
      capabilities: { pin: false, deletionEvents: false, progress: false },
    });
    runtime.seed({ id: IMAGE.id, repoTags: [REF], repoDigests: [], size: 1 });
    expect(runtime.capabilities).toEqual({ pin: false, deletionEvents: false, progress: false });
    await expect(runtime.pin(REF)).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
    await expect(runtime.watchDeletions(() => undefined)).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED',
    });
    runtime.publish(REF, IMAGE);
    const reports: PullProgress[] = [];
    await runtime.pull(REF, { timeoutMs: 1000, onProgress: (p) => reports.push(p) });
    expect(reports).toEqual([]);
  });

  it('emits a removal per name, and a gap after the runtime comes back', async () => {
    const runtime = new FakeRuntime();
    runtime.publish(REF, IMAGE);
    const image = await runtime.pull(REF, { timeoutMs: 1000 });
    const events: DeletionEvent[] = [];
    const unsubscribe = await runtime.watchDeletions((e) => events.push(e));
    runtime.removeBehindBack(image.id);
    await Promise.resolve();
    expect(events).toEqual([
      { kind: 'removed', name: 'registry.test/team/app:1.0' },
      { kind: 'removed', name: `registry.test/team/app@${IMAGE.digest}` },
      { kind: 'removed', name: IMAGE.id },
    ]);
    runtime.stop();
    await expect(runtime.listImages()).rejects.toMatchObject({ code: 'ERR_RUNTIME_UNAVAILABLE' });
    runtime.start();
    await Promise.resolve();
    expect(events.at(-1)?.kind).toBe('gap');
    unsubscribe();
    runtime.restart();
    await Promise.resolve();
    expect(events.filter((e) => e.kind === 'gap')).toHaveLength(1);
  });

  it('records the calls it received', async () => {
    const runtime = new FakeRuntime();
    await runtime.imageStatus(REF);
    await runtime.listImages();
    expect(runtime.calls).toEqual([{ op: 'imageStatus', ref: REF }, { op: 'listImages' }]);
  });
});
