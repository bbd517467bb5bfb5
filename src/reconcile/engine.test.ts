// The engine against the in-memory runtime and registry, on a manual clock: pulls, verification,
// repair, drift, backoff and give-up sequences, concurrency — without I/O or waiting. Pinning,
// stop and drain are in engine-pin-stop.test.ts; the simulated world in testing/world.ts.
import { describe, expect, it } from '@jest/globals';
import { RegistryCredential } from '../image/credential.ts';
import { World, digest, pick, prePull } from './testing/world.ts';

describe('Engine', () => {
  it('pulls what is missing, verifies it against the registry, pins it, and reports it Present', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.publish('r.io/shop/db:2', 2);
    w.engine.setPrePulls([
      prePull('shop', { images: [{ image: 'r.io/shop/web:1' }, { image: 'r.io/shop/db:2' }] }),
    ]);
    await w.engine.start();
    const reports = await w.settle();
    expect(
      reports.map((r) => [r.image, r.state, r.reason, r.digest, r.registryDigest, r.pinned]),
    ).toEqual([
      ['r.io/shop/db:2', 'Present', 'Verified', digest(2), digest(2), true],
      ['r.io/shop/web:1', 'Present', 'Verified', digest(1), digest(1), true],
    ]);
    expect(w.calls('pull').sort()).toEqual(['r.io/shop/db:2', 'r.io/shop/web:1']);
    expect(w.resolves.sort()).toEqual(['r.io/shop/db:2', 'r.io/shop/web:1']);
    const metrics = await w.metrics.render();
    expect(metrics).toContain('prepull_images{state="Present"} 2');
    expect(metrics).toContain('prepull_pulls_total{result="success",code=""} 2');
    // Image filesystem usage is sampled after pulls (in the background): both images' bytes.
    let fs = '';
    for (let i = 0; i < 100 && !fs.includes('prepull_imagefs_used_bytes 2000000'); i++) {
      await new Promise((r) => setTimeout(r, 10));
      fs = await w.metrics.render();
    }
    expect(fs).toContain('prepull_imagefs_used_bytes 2000000');
  });

  it('asks the registry about a tag while the runtime pulls it, once, not after the pull', async () => {
    const w = new World({ pullLatencyMs: 5_000 });
    w.publish('r.io/shop/web:1', 1);
    const pullEnds: number[] = [];
    const original = w.runtime.pull.bind(w.runtime);
    w.runtime.pull = async (ref, options) => {
      const image = await original(ref, options);
      pullEnds.push(w.clock.now());
      return image;
    };
    const startedAt = w.clock.now();
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    const reports = await w.settle();
    expect(w.resolves).toEqual(['r.io/shop/web:1']);
    expect(pullEnds).toHaveLength(1);
    // Asked as the pull started (simulated time stands still until the clock is run), and the
    // answer stood for the pulled image: no second HEAD after it.
    expect(w.resolvedAt).toEqual([startedAt]);
    expect(pullEnds[0]).toBeGreaterThanOrEqual(startedAt + 5_000);
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({
      state: 'Present',
      reason: 'Verified',
      registryDigest: digest(1),
    });
  });

  it('does not pull what the runtime already holds, and needs one list call to know it', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.holdPulled('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({
      state: 'Present',
      reason: 'Verified',
      pinned: true,
    });
    expect(w.calls('pull')).toEqual([]);
    expect(w.runtime.calls.filter((c) => c.op === 'listImages')).toHaveLength(1);
    // After pinning, to see the pin; once more for the update events the pin itself caused (one
    // per record, read together), as a pin another client takes off is seen that way.
    expect(w.calls('imageStatus')).toEqual(['r.io/shop/web:1', 'r.io/shop/web:1']);
  });

  it('does not pull what the runtime already holds when a PrePull arrives after start', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.holdPulled('r.io/shop/web:1', 1);
    w.runtime.setRegistryReachable('r.io', false); // an air-gapped node: the image came on a disk
    await w.engine.start();
    await w.settle();
    w.engine.setPrePulls([
      prePull('shop', { images: [{ image: 'r.io/shop/web:1' }], verify: 'None' }),
    ]);
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ state: 'Present', reason: 'Present' });
    expect(w.calls('pull')).toEqual([]);
  });

  it('looks at the node before a retry: an image loaded while the registry is down ends the retries', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.runtime.setRegistryReachable('r.io', false);
    w.engine.setPrePulls([
      prePull('shop', { images: [{ image: 'r.io/shop/web:1' }], verify: 'None', backoffLimit: 6 }),
    ]);
    await w.engine.start();
    // Two attempts (at 0 and after ~2 s of backoff), then ~4 s to the third.
    for (let i = 0; i < 30; i++) {
      await w.clock.advance(100);
      await new Promise((r) => setImmediate(r));
    }
    expect(pick(w.engine.reports(), 'r.io/shop/web:1')).toMatchObject({
      state: 'Missing',
      reason: 'BackOff',
    });
    const attempts = w.calls('pull').length;
    expect(attempts).toBe(2);
    // An operator loads it from a disk (ctr import): no pull can succeed, none is needed.
    w.runtime.seed({ id: digest(1001), repoTags: ['r.io/shop/web:1'], repoDigests: [], size: 5 });
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ state: 'Present', reason: 'Present' });
    expect(w.calls('pull')).toHaveLength(attempts);
  });

  it('fails a bad reference and a missing image each with its own reason; the others still arrive', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([
      prePull('shop', {
        images: [
          { image: 'r.io/shop/web:1' },
          { image: 'R.io/Bad:Ref:x' },
          { image: 'r.io/shop/gone:1' },
        ],
      }),
    ]);
    await w.engine.start();
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')?.state).toBe('Present');
    expect(pick(reports, 'R.io/Bad:Ref:x')).toMatchObject({
      state: 'Failed',
      reason: 'InvalidReference',
      code: 'ERR_IMAGE_REF_INVALID',
    });
    expect(pick(reports, 'r.io/shop/gone:1')).toMatchObject({
      state: 'Failed',
      reason: 'PullFailed',
      message: expect.stringContaining('not found'),
      code: 'ERR_IMAGE_NOT_FOUND',
      attempts: 1,
    });
    expect(pick(reports, 'r.io/shop/web:1')?.code).toBeUndefined();
  });

  it('fails a bad reference added after start at once, without asking the runtime about it', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    await w.settle();
    // A reload (sync) or a PrePull edit (agent) adds it: the runtime's adapters refuse to look
    // up a reference that does not parse, so a reading must not be waited for.
    w.engine.setPrePulls([
      prePull('shop', { images: [{ image: 'r.io/shop/web:1' }, { image: 'r.io/a@sha256:xyz' }] }),
    ]);
    const reports = await w.settle();
    expect(pick(reports, 'r.io/a@sha256:xyz')).toMatchObject({
      state: 'Failed',
      reason: 'InvalidReference',
      code: 'ERR_IMAGE_REF_INVALID',
    });
    expect(pick(reports, 'r.io/shop/web:1')?.state).toBe('Present');
    expect(w.runtime.calls.filter((c) => c.ref === 'r.io/a@sha256:xyz')).toEqual([]);
  });

  it('pulls back an image removed behind its back', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    await w.settle();
    w.runtime.removeBehindBack('r.io/shop/web:1');
    for (let i = 0; i < 50; i++) await Promise.resolve();
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')?.state).toBe('Present');
    expect(w.calls('pull')).toEqual(['r.io/shop/web:1', 'r.io/shop/web:1']);
    expect(w.logs.join('')).toContain('image removed from the node; pulling it back');
  });

  it('re-lists periodically where the runtime reports no deletions', async () => {
    const w = new World({ events: false });
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    await w.settle();
    w.runtime.removeBehindBack('r.io/shop/web:1');
    await w.clock.advance(30_000);
    // Let the re-list (a few awaits) reach the queue before asking whether all is settled.
    await new Promise((r) => setImmediate(r));
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')?.state).toBe('Present');
    expect(w.calls('pull')).toHaveLength(2);
  });

  it('shows a moved tag as Stale under IfNotPresent, and re-pulls it under Always', async () => {
    for (const [policy, state, pulls] of [
      ['IfNotPresent', 'Stale', 1],
      ['Always', 'Present', 2],
    ] as const) {
      const w = new World();
      w.publish('r.io/shop/web:1', 1);
      w.engine.setPrePulls([
        prePull('shop', {
          images: [{ image: 'r.io/shop/web:1' }],
          pullPolicy: policy,
          schedule: '*/5 * * * *',
          scheduleJitterSeconds: 0,
        }),
      ]);
      await w.engine.start();
      await w.settle();
      w.publish('r.io/shop/web:1', 7);
      w.tick('*/5 * * * *');
      const reports = await w.settle();
      expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ state, registryDigest: digest(7) });
      expect(w.calls('pull')).toHaveLength(pulls);
      if (state === 'Stale') expect(pick(reports, 'r.io/shop/web:1')?.digest).toBe(digest(1));
      else expect(pick(reports, 'r.io/shop/web:1')?.digest).toBe(digest(7));
    }
  });

  it('judges a scheduled check by what the node holds now: a tag another client re-pulled is Verified, not Stale', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([
      prePull('shop', {
        images: [{ image: 'r.io/shop/web:1' }],
        schedule: '*/5 * * * *',
        scheduleJitterSeconds: 0,
      }),
    ]);
    await w.engine.start();
    await w.settle();
    // The tag moves in the registry, and kubelet (a Pod with pullPolicy Always) pulls it.
    w.publish('r.io/shop/web:1', 7);
    w.runtime.pullBehindBack('r.io/shop/web:1');
    await w.clock.advance(300_000);
    w.tick('*/5 * * * *');
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({
      state: 'Present',
      reason: 'Verified',
      digest: digest(7),
      registryDigest: digest(7),
      imageId: digest(1007),
      pinned: true, // the new image is pinned in its turn
    });
    expect(w.calls('pull')).toHaveLength(1);
  });

  it('finds an image replaced under its tag at the next check, and says when it records no digest', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([
      prePull('shop', {
        images: [{ image: 'r.io/shop/web:1' }],
        schedule: '*/5 * * * *',
        scheduleJitterSeconds: 0,
      }),
    ]);
    await w.engine.start();
    let reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ reason: 'Verified' });
    // An operator loads another build from an archive under the same tag (docker load): it
    // records no registry digest. The registry has not moved.
    w.runtime.seed({ id: digest(2001), repoTags: ['r.io/shop/web:1'], repoDigests: [], size: 5 });
    await w.clock.advance(300_000);
    w.tick('*/5 * * * *');
    reports = await w.settle();
    const report = pick(reports, 'r.io/shop/web:1');
    expect(report).toMatchObject({ state: 'Stale', reason: 'DigestDrift', imageId: digest(2001) });
    expect(report?.digest).toBeUndefined();
    expect(report?.message).toBe(
      `the registry's digest is now ${digest(1)}; the node's image records no digest for this repository (loaded from an archive?), so it cannot be shown to match (pullPolicy IfNotPresent: not re-pulled)`,
    );
    expect(w.calls('pull')).toHaveLength(1);
  });

  it('re-decides when a re-list finds another image under the name, asking the registry afresh', async () => {
    const w = new World({ events: false });
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    await w.settle();
    const resolvesBefore = w.resolves.length;
    w.publish('r.io/shop/web:1', 7);
    w.runtime.pullBehindBack('r.io/shop/web:1');
    await w.clock.advance(30_000);
    await new Promise((r) => setImmediate(r));
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({
      state: 'Present',
      reason: 'Verified',
      digest: digest(7),
      registryDigest: digest(7),
      pinned: true,
    });
    // Within the digest TTL, but the image changed: one fresh answer, no pull.
    expect(w.resolves.length).toBe(resolvesBefore + 1);
    expect(w.calls('pull')).toHaveLength(1);
  });

  it('retries an unreachable registry with backoff, gives up after backoffLimit, recovers on the schedule', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.runtime.setRegistryReachable('r.io', false);
    w.engine.setPrePulls([
      prePull('shop', {
        images: [{ image: 'r.io/shop/web:1' }],
        backoffLimit: 2,
        schedule: '0 * * * *',
        scheduleJitterSeconds: 0,
      }),
    ]);
    await w.engine.start();
    let reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({
      state: 'Failed',
      reason: 'PullFailed',
      attempts: 3,
    });
    expect(pick(reports, 'r.io/shop/web:1')?.message).toMatch(
      /connection refused\) \(gave up after 3 attempts\)$/,
    );
    // Backoff 2 s then 4 s (jitter 0.5 → exactly the base), then no more.
    // (The 120 s sleeps are each pull's stall watch, not a backoff.)
    expect(w.clock.sleeps.filter((ms) => ms >= 1000 && ms !== 120_000)).toEqual([2000, 4000]);
    w.runtime.setRegistryReachable('r.io', true);
    w.tick('0 * * * *');
    reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ state: 'Present', attempts: 0 });
  });

  it('asks the registry again after a failed check, with backoff, until it answers', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.holdPulled('r.io/shop/web:1', 1);
    const saved = new Map(w.tags);
    w.tags.clear(); // the registry does not answer for now
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    let reports = await w.settle(1000);
    // Present (kubelet can use it), but unverified: sync --once does not wait for the registry.
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({
      state: 'Present',
      reason: 'VerifyFailed',
    });
    await w.clock.advance(30_000); // first retry, still failing
    for (const [ref, d] of saved) w.tags.set(ref, d);
    await w.clock.advance(60_000); // second retry, answered
    reports = await w.settle(1000);
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({
      state: 'Present',
      reason: 'Verified',
      registryDigest: digest(1),
    });
    expect(w.resolves).toEqual(['r.io/shop/web:1', 'r.io/shop/web:1', 'r.io/shop/web:1']);
    expect(w.calls('pull')).toEqual([]);
  });

  it('never runs more pulls at once than pullConcurrency', async () => {
    const w = new World({ pullConcurrency: 2, pullLatencyMs: 1000 });
    const images = [1, 2, 3, 4, 5].map((n) => `r.io/shop/img${n}:1`);
    images.forEach((ref, n) => {
      w.publish(ref, n + 1);
    });
    let active = 0;
    let most = 0;
    const pull = w.runtime.pull.bind(w.runtime);
    w.runtime.pull = async (ref, options) => {
      most = Math.max(most, ++active);
      try {
        return await pull(ref, options);
      } finally {
        active--;
      }
    };
    w.engine.setPrePulls([prePull('shop', { images: images.map((image) => ({ image })) })]);
    await w.engine.start();
    const reports = await w.settle();
    expect(reports.every((r) => r.state === 'Present')).toBe(true);
    expect(most).toBe(2);
  });

  it('tries each candidate credential in order until one is accepted', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.runtime.requireCredentials('r.io', { username: 'u', password: 'right' });
    w.credentials = [
      new RegistryCredential({
        source: 'secret shop/old',
        key: 'r.io',
        username: 'u',
        password: 'wrong',
      }),
      new RegistryCredential({
        source: 'secret shop/new',
        key: 'r.io',
        username: 'u',
        password: 'right',
      }),
    ];
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')?.state).toBe('Present');
    expect(w.calls('pull')).toEqual(['r.io/shop/web:1', 'r.io/shop/web:1']);
    expect(w.logs.join('')).not.toContain('right');
  });

  it('follows label changes: images move on and off the node, and leaving never removes', async () => {
    const w = new World();
    w.publish('r.io/shop/gpu:1', 1);
    w.engine.setPrePulls([
      prePull('gpu', { images: [{ image: 'r.io/shop/gpu:1' }], nodeSelector: { gpu: 'true' } }),
    ]);
    await w.engine.start();
    expect(await w.settle()).toEqual([]);
    w.engine.setLabels({ role: 'worker', gpu: 'true' });
    expect(pick(await w.settle(), 'r.io/shop/gpu:1')?.state).toBe('Present');
    w.engine.setLabels({ role: 'worker' });
    expect(await w.settle()).toEqual([]);
    expect(w.calls('remove')).toEqual([]);
    expect(w.runtime.snapshot().map((i) => i.repoTags[0])).toEqual(['r.io/shop/gpu:1']);
  });
});
