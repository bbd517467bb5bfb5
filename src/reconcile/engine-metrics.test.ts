// What the engine puts in its metrics beyond the counts engine.test.ts reads: the per-PrePull
// roll-ups, and values that stay without a sample until the engine knows them.
import { describe, expect, it } from '@jest/globals';
import { tmpdir } from 'node:os';
import { World, prePull } from './testing/world.ts';

/** The sample lines of `name` in a scrape (no HELP or TYPE lines), sorted. */
async function samples(w: World, name: string): Promise<string[]> {
  const text = await w.metrics.render();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .sort();
}

/** Waits (in real time: the sample is taken in the background) for a sample of `name`. */
async function sampled(w: World, name: string): Promise<string[]> {
  let found: string[] = [];
  for (let i = 0; i < 100 && found.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
    found = await samples(w, name);
  }
  return found;
}

describe('the engine’s metrics', () => {
  it('roll images up per PrePull, leave the sandbox image out, and drop a deleted PrePull', async () => {
    const w = new World({ sandboxImage: 'r.io/pause:3' });
    w.publish('r.io/pause:3', 9);
    w.publish('r.io/shop/web:1', 1);
    w.publish('r.io/shop/db:2', 2);
    // r.io/shop/gone:1 is published nowhere: it fails.
    w.engine.setPrePulls([
      prePull('web', { images: [{ image: 'r.io/shop/web:1' }, { image: 'r.io/shop/db:2' }] }),
      prePull('all', {
        images: [{ image: 'r.io/shop/web:1' }, { image: 'r.io/shop/gone:1' }],
        backoffLimit: 0,
      }),
    ]);
    await w.engine.start();
    await w.settle();
    expect(await samples(w, 'prepull_prepull_images')).toEqual([
      'prepull_prepull_images{namespace="shop",name="all",state="Failed"} 1',
      'prepull_prepull_images{namespace="shop",name="all",state="Missing"} 0',
      'prepull_prepull_images{namespace="shop",name="all",state="Present"} 1',
      'prepull_prepull_images{namespace="shop",name="all",state="Pulling"} 0',
      'prepull_prepull_images{namespace="shop",name="all",state="Stale"} 0',
      'prepull_prepull_images{namespace="shop",name="web",state="Failed"} 0',
      'prepull_prepull_images{namespace="shop",name="web",state="Missing"} 0',
      'prepull_prepull_images{namespace="shop",name="web",state="Present"} 2',
      'prepull_prepull_images{namespace="shop",name="web",state="Pulling"} 0',
      'prepull_prepull_images{namespace="shop",name="web",state="Stale"} 0',
    ]);
    // The node-wide count has the sandbox image; no PrePull series stands for it.
    expect(await samples(w, 'prepull_images_required')).toEqual(['prepull_images_required 4']);
    w.engine.setPrePulls([prePull('web', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.settle();
    expect(await samples(w, 'prepull_prepull_images')).toEqual([
      'prepull_prepull_images{namespace="shop",name="web",state="Failed"} 0',
      'prepull_prepull_images{namespace="shop",name="web",state="Missing"} 0',
      'prepull_prepull_images{namespace="shop",name="web",state="Present"} 1',
      'prepull_prepull_images{namespace="shop",name="web",state="Pulling"} 0',
      'prepull_prepull_images{namespace="shop",name="web",state="Stale"} 0',
    ]);
    expect(await samples(w, 'prepull_prepulls_over_limit')).toEqual([
      'prepull_prepulls_over_limit 0',
    ]);
  });

  it('show no last sync before the first, nor image filesystem figures before they are read', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('web', { images: [{ image: 'r.io/shop/web:1' }] })]);
    expect(await samples(w, 'prepull_last_sync_timestamp_seconds')).toEqual([]);
    expect(await samples(w, 'prepull_imagefs_used_bytes')).toEqual([]);
    await w.engine.start();
    await w.settle();
    expect(await samples(w, 'prepull_last_sync_timestamp_seconds')).toEqual([
      `prepull_last_sync_timestamp_seconds ${String(w.clock.now() / 1000)}`,
    ]);
    expect(await sampled(w, 'prepull_imagefs_used_bytes')).toEqual([
      'prepull_imagefs_used_bytes 1000000',
    ]);
    // The fake runtime's mount point (/var/lib/fake-runtime) is not on this machine: no size.
    expect(await samples(w, 'prepull_imagefs_capacity_bytes')).toEqual([]);
  });

  it('show the image filesystem size where its mount point can be seen', async () => {
    const w = new World();
    w.runtime.imageFsInfo = () => Promise.resolve([{ mountpoint: tmpdir(), usedBytes: 5 }]);
    await w.engine.start();
    await w.settle();
    expect(await sampled(w, 'prepull_imagefs_capacity_bytes')).toEqual([
      expect.stringMatching(/^prepull_imagefs_capacity_bytes [1-9]\d*$/),
    ]);
    expect(await samples(w, 'prepull_imagefs_used_bytes')).toEqual([
      'prepull_imagefs_used_bytes 5',
    ]);
    // Nothing required, nothing synced: still no last sync.
    expect(await samples(w, 'prepull_last_sync_timestamp_seconds')).toEqual([]);
  });
});
