// The disk guard in the engine, on the simulated world (testing/world.ts) with a fake statfs: an
// image that would cross the floor or the pin budget is Failed with ERR_DISK_BUDGET and never
// pulled, spends no attempt, keeps what the node holds, and is pulled once there is room (a
// re-measure every 15 s, or at once after a release); an unmeasurable disk is said once and does
// not block pulls.
import { describe, expect, it } from '@jest/globals';
import { DISK_RECHECK_MS } from './disk.ts';
import { World, pick, prePull } from './testing/world.ts';

const PRESENT = 'r.io/shop/base:1';
const NEW = 'r.io/shop/new:1';
const MB = 1_000_000;

/** Moves simulated time, then lets the engine's coalesced publications run. */
async function run(w: World, ms: number): Promise<void> {
  await w.clock.advance(ms);
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

async function samples(w: World, name: string): Promise<string[]> {
  const text = await w.metrics.render();
  return text.split('\n').filter((l) => l.startsWith(`${name} `));
}

describe('Engine disk guard', () => {
  it('holds an image below the floor without pulling it, keeps the present one, and pulls once space is freed', async () => {
    const w = new World({ disk: { floor: { percent: 20 } } });
    w.publish(PRESENT, 1, 2 * MB);
    w.publish(NEW, 2, 3 * MB);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: PRESENT }] })]);
    await w.engine.start();
    await w.settle();
    // The disk fills behind prepull's back, below the floor.
    w.disk = { availableBytes: 15 * MB, capacityBytes: 100 * MB };
    w.engine.setPrePulls([prePull('shop', { images: [{ image: PRESENT }, { image: NEW }] })]);
    let reports = await w.settle();
    expect(pick(reports, NEW)).toMatchObject({
      state: 'Failed',
      reason: 'DiskBudget',
      code: 'ERR_DISK_BUDGET',
      attempts: 0,
    });
    expect(pick(reports, NEW)?.message).toMatch(
      /^not pulled: the image filesystem at \/var\/lib\/fake-runtime has 14.31 MiB free, and its size is unknown .*the floor of 19.07 MiB \(20% of 95.37 MiB\)/,
    );
    expect(pick(reports, PRESENT)).toMatchObject({ state: 'Present', pinned: true });
    expect(w.calls('pull')).toEqual([PRESENT]);
    expect(w.calls('unpin')).toEqual([]);
    expect(w.engine.disk()).toMatchObject({
      floor: '20%',
      floorBytes: 20 * MB,
      availableBytes: 15 * MB,
      pinnedBytes: 2 * MB,
      heldImages: 1,
    });
    expect(await samples(w, 'prepull_disk_held_images')).toEqual(['prepull_disk_held_images 1']);
    expect(await samples(w, 'prepull_imagefs_floor_bytes')).toEqual([
      'prepull_imagefs_floor_bytes 20000000',
    ]);
    expect(await samples(w, 'prepull_pinned_bytes')).toEqual(['prepull_pinned_bytes 2000000']);
    expect(w.logs.filter((l) => l.includes('held for disk space'))).toHaveLength(1);

    // Held for a long while: re-measured, never pulled, no attempt spent.
    await run(w, 10 * DISK_RECHECK_MS);
    expect(pick(w.engine.reports(), NEW)).toMatchObject({ state: 'Failed', attempts: 0 });
    expect(w.calls('pull')).toEqual([PRESENT]);
    expect(w.logs.filter((l) => l.includes('held for disk space'))).toHaveLength(1);

    // Space freed: within one re-measure the image is pulled.
    w.disk = { availableBytes: 60 * MB, capacityBytes: 100 * MB };
    const freedAt = w.clock.now();
    await run(w, DISK_RECHECK_MS);
    reports = await w.settle();
    expect(pick(reports, NEW)).toMatchObject({ state: 'Present', pinned: true, attempts: 0 });
    expect(w.clock.now() - freedAt).toBeLessThanOrEqual(DISK_RECHECK_MS + 1000);
    expect(w.engine.disk()?.heldImages).toBe(0);
    expect(await samples(w, 'prepull_disk_held_images')).toEqual(['prepull_disk_held_images 0']);
  });

  it('holds a repair whose last known size would cross the floor', async () => {
    const w = new World({ disk: { floor: { bytes: 20 * MB } } });
    w.publish(PRESENT, 1, 30 * MB);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: PRESENT }] })]);
    await w.engine.start();
    await w.settle();
    w.disk = { availableBytes: 40 * MB, capacityBytes: 100 * MB };
    w.runtime.removeBehindBack(PRESENT);
    await run(w, 0);
    const reports = await w.settle();
    expect(pick(reports, PRESENT)).toMatchObject({ state: 'Failed', code: 'ERR_DISK_BUDGET' });
    expect(pick(reports, PRESENT)?.message).toMatch(
      /has 38.15 MiB free, and its expected size is 28.61 MiB \(last seen on this node\); pulling it would leave less than the floor of 19.07 MiB \(--image-fs-floor\)/,
    );
    expect(w.calls('pull')).toEqual([PRESENT]);
    w.disk = { availableBytes: 60 * MB, capacityBytes: 100 * MB };
    await run(w, DISK_RECHECK_MS);
    expect(pick(await w.settle(), PRESENT)).toMatchObject({ state: 'Present' });
    expect(w.calls('pull')).toEqual([PRESENT, PRESENT]);
  });

  it('holds an image past the pin budget, and pulls it as soon as a release frees the budget', async () => {
    const w = new World({ disk: { floor: { percent: 20 }, pinBudgetBytes: 2 * MB } });
    w.publish(PRESENT, 1, 2 * MB);
    w.publish(NEW, 2, 1 * MB);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: PRESENT }, { image: NEW }] })]);
    await w.engine.start();
    let reports = await w.settle();
    // Concurrency 2: both were weighed before either was pinned; then the budget is full.
    w.runtime.removeBehindBack(NEW);
    await run(w, 0);
    reports = await w.settle();
    expect(pick(reports, NEW)).toMatchObject({
      state: 'Failed',
      reason: 'DiskBudget',
      code: 'ERR_DISK_BUDGET',
    });
    expect(pick(reports, NEW)?.message).toMatch(
      /prepull pins 1.91 MiB on this node, and its expected size is 976.56 KiB .*exceed the pin budget of 1.91 MiB \(--pin-budget\)/,
    );
    expect(w.engine.disk()).toMatchObject({ pinBudgetBytes: 2 * MB, pinnedBytes: 2 * MB });
    expect(await samples(w, 'prepull_pin_budget_bytes')).toEqual([
      'prepull_pin_budget_bytes 2000000',
    ]);
    // PRESENT is no longer wanted: released (unpinned, not removed), which frees the budget.
    const releasedAt = w.clock.now();
    w.engine.setPrePulls([prePull('shop', { images: [{ image: NEW }] })]);
    reports = await w.settle();
    expect(pick(reports, NEW)).toMatchObject({ state: 'Present', pinned: true });
    expect(w.clock.now() - releasedAt).toBeLessThan(DISK_RECHECK_MS);
    expect(w.calls('remove')).toEqual([]);
  });

  it('pulls where free space cannot be measured, saying so once; the budget still applies', async () => {
    const w = new World({ disk: { floor: { percent: 20 }, pinBudgetBytes: 5 * MB } });
    w.disk = undefined;
    w.publish(PRESENT, 1, 5 * MB);
    w.publish(NEW, 2, 1 * MB);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: PRESENT }] })]);
    await w.engine.start();
    expect(pick(await w.settle(), PRESENT)).toMatchObject({ state: 'Present' });
    w.engine.setPrePulls([prePull('shop', { images: [{ image: PRESENT }, { image: NEW }] })]);
    const reports = await w.settle();
    expect(pick(reports, NEW)).toMatchObject({ state: 'Failed', code: 'ERR_DISK_BUDGET' });
    expect(w.logs.filter((l) => l.includes('is not measured'))).toHaveLength(1);
    expect(w.engine.disk()?.message).toMatch(
      /^cannot measure free space at \/var\/lib\/fake-runtime \(ENOENT.*\): mount the image filesystem into prepull's container, or name a path on it with --image-fs-path$/,
    );
    expect(w.engine.disk()?.availableBytes).toBeUndefined();
    expect(await samples(w, 'prepull_imagefs_available_bytes')).toEqual([]);
  });

  it('measures the path --image-fs-path names instead of the runtime’s mount point', async () => {
    const w = new World({ disk: { floor: { percent: 20 }, imageFsPath: '/host/images' } });
    w.publish(NEW, 2);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: NEW }] })]);
    await w.engine.start();
    expect(pick(await w.settle(), NEW)?.state).toBe('Present');
    expect(new Set(w.measured)).toEqual(new Set(['/host/images']));
  });
});
