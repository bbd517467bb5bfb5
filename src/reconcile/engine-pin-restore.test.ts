// A pin taken off behind prepull's back (`ctr images label IMG io.cri-containerd.pinned=`): seen
// from the runtime's update event or the next re-list, put back while the image is required, and
// counted; a pin prepull did not set is never counted as restored.
import { describe, expect, it } from '@jest/globals';
import { World, pick, prePull } from './testing/world.ts';

async function restored(w: World): Promise<number> {
  const line = (await w.metrics.render())
    .split('\n')
    .find((l) => l.startsWith('prepull_pins_restored_total '));
  return Number(line?.split(' ')[1]);
}

async function flush(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

describe('Engine: pins taken off behind its back', () => {
  it('re-pins on the runtime update event, counts and logs it', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    expect(pick(await w.settle(), 'r.io/shop/web:1')).toMatchObject({ pinned: true });
    expect(await restored(w)).toBe(0);

    const statusBefore = w.calls('imageStatus').length;
    w.runtime.unpinBehindBack('r.io/shop/web:1');
    await flush();
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ state: 'Present', pinned: true });
    // One event per record (tag, digest reference, ID), read once; the pin's read-back; and once
    // for the events of prepull's own pin.
    expect(w.calls('imageStatus').length - statusBefore).toBe(3);
    expect((await w.runtime.imageStatus('r.io/shop/web:1'))?.pinned).toBe(true);
    expect(w.calls('pin')).toEqual(['r.io/shop/web:1', 'r.io/shop/web:1']);
    expect(await restored(w)).toBe(1);
    expect(w.logs.filter((l) => l.includes('pin removed behind prepull'))).toHaveLength(1);
  });

  it('re-pins on the next re-list where the runtime has no events', async () => {
    const w = new World({ events: false });
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    await w.settle();
    w.runtime.unpinBehindBack('r.io/shop/web:1');
    // Until the re-list, the last reading stands; the re-list reads the pin afresh.
    await w.clock.advance(30_000); // the engine's default re-list interval
    await flush();
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ pinned: true });
    expect(w.calls('pin')).toHaveLength(2);
    expect(await restored(w)).toBe(1);
  });

  it('says when only the label knows the pin, and drops the source with the pin', async () => {
    const w = new World({ pinSource: 'label', events: false });
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([
      prePull('shop', { images: [{ image: 'r.io/shop/web:1' }], pin: false }),
      prePull('ops', { images: [{ image: 'r.io/shop/web:1' }] }),
    ]);
    await w.engine.start();
    expect(pick(await w.settle(), 'r.io/shop/web:1')).toMatchObject({
      pinned: true,
      pinSource: 'label',
    });
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }], pin: false })]);
    await w.runtime.unpin('r.io/shop/web:1');
    await w.clock.advance(30_000);
    await flush();
    const report = pick(await w.settle(), 'r.io/shop/web:1');
    expect(report).toMatchObject({ pinned: false });
    expect(report).not.toHaveProperty('pinSource');
  });

  it('does not count a first pin of an image someone else had pinned and unpinned', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.runtime.pullBehindBack('r.io/shop/web:1');
    await w.runtime.pin('r.io/shop/web:1');
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    await w.settle();
    expect(w.calls('pin')).toEqual(['r.io/shop/web:1']); // the test's own pin only
    w.runtime.unpinBehindBack('r.io/shop/web:1');
    await flush();
    expect(pick(await w.settle(), 'r.io/shop/web:1')).toMatchObject({ pinned: true });
    expect(await restored(w)).toBe(0);
  });

  it('completes, without owning or counting, a pin another client set on some records only', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.runtime.pullBehindBack('r.io/shop/web:1');
    // `ctr images label r.io/shop/web:1 io.cri-containerd.pinned=pinned`: the tag record only.
    w.runtime.pinPartlyBehindBack('r.io/shop/web:1');
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    const report = pick(await w.settle(), 'r.io/shop/web:1');
    expect(report).toMatchObject({ pinned: true });
    expect(report).not.toHaveProperty('pinnedByPrepull');
    expect(w.calls('pin')).toEqual(['r.io/shop/web:1']);
    expect(await w.runtime.imageStatus('r.io/shop/web:1')).not.toHaveProperty('pinPartial');
    expect(await restored(w)).toBe(0);
    expect(w.logs.filter((l) => l.includes('pin removed behind prepull'))).toHaveLength(0);
  });

  it('restores, and counts, its own pin when only some records lost the label', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    await w.settle();
    w.runtime.pinPartlyBehindBack('r.io/shop/web:1');
    await flush();
    const report = pick(await w.settle(), 'r.io/shop/web:1');
    expect(report).toMatchObject({ pinned: true, pinnedByPrepull: true });
    expect(w.calls('pin')).toHaveLength(2);
    expect(await restored(w)).toBe(1);
  });
});
