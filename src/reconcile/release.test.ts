// Releasing images no PrePull wants any more (release.ts, ADR 0014 "Release (agent)"), on the
// in-memory runtime and a manual clock: what prepull pinned is unpinned, what it pulled is removed
// where asked — and nothing it did not do is undone: a pre-existing image, someone else's pin, an
// image a container uses, one sharing its ID with a wanted tag, the sandbox image. Provenance
// survives a restart through the node's last status.
import { describe, expect, it } from '@jest/globals';
import { nodeImageCacheStatus } from '../api/nodeimagecache.ts';
import { PrepullError } from '../errors.ts';
import { World, digest, pick, prePull } from './testing/world.ts';

const A = 'r.io/shop/a:1';
const B = 'r.io/shop/b:1';
const C = 'r.io/shop/c:1';

function images(...refs: string[]): { image: string }[] {
  return refs.map((image) => ({ image }));
}

/** What the agent would have written last: the status built from the engine's reports. */
function lastStatus(w: World): ReturnType<typeof nodeImageCacheStatus> {
  return nodeImageCacheStatus(
    w.engine.reports(),
    { name: 'fake', version: '0', endpoint: 'unix:///fake' },
    {},
    { now: new Date(w.clock.now()).toISOString(), released: w.engine.released() },
  );
}

async function pinned(w: World, ref: string): Promise<boolean | undefined> {
  return (await w.runtime.imageStatus(ref))?.pinned;
}

async function started(w: World, ...specs: Record<string, unknown>[]): Promise<void> {
  w.engine.setPrePulls(specs.map((spec, i) => prePull(`p${i}`, spec)));
  await w.engine.start();
  await w.settle();
}

describe('releasing images no PrePull wants', () => {
  it('takes its pin off even where another client took part of it off (records keep the rest)', async () => {
    const w = new World({ events: false }); // no re-read before the release: no re-pin
    w.publish(A, 1);
    w.publish(B, 2);
    await started(w, { images: images(A, B) });
    // containerd: `ctr images label B io.cri-containerd.pinned=` leaves the digest and ID records
    // labelled, and CRI (1.7) still protects the image; the adapter reports it unpinned.
    w.runtime.unpinBehindBack(B);
    w.engine.setPrePulls([prePull('p0', { images: images(A) })]);
    await w.settle();
    expect(w.calls('unpin')).toEqual([B]);
    expect(w.engine.released()).toMatchObject([{ image: B, action: 'Unpinned' }]);
  });

  it('unpins a dropped image prepull pinned, keeps it on the node, and says so', async () => {
    const w = new World();
    w.publish(A, 1);
    w.publish(B, 2);
    await started(w, { images: images(A, B) });
    expect(pick(w.engine.reports(), B)).toMatchObject({
      pulledByPrepull: true,
      pinnedByPrepull: true,
    });
    w.engine.setPrePulls([prePull('p0', { images: images(A) })]);
    await w.settle();
    expect(await pinned(w, B)).toBe(false);
    expect(await pinned(w, A)).toBe(true);
    expect(w.calls('unpin')).toEqual([B]);
    expect(w.calls('remove')).toEqual([]);
    expect(w.engine.released()).toEqual([
      { image: B, action: 'Unpinned', time: new Date(w.clock.now()).toISOString() },
    ]);
    expect(lastStatus(w).released).toHaveLength(1);
    expect(await w.metrics.render()).toContain(
      'prepull_images_released_total{action="Unpinned"} 1',
    );
  });

  it('with cleanup Remove, removes only what prepull pulled; a pre-existing image is only unpinned', async () => {
    const w = new World();
    w.publish(B, 2);
    w.publish(C, 3);
    w.holdPulled(C, 3); // on the node before prepull, unpinned: prepull pins it
    await started(w, { images: images(B, C), cleanup: 'Remove' });
    expect(w.calls('pull')).toEqual([B]);
    expect(await pinned(w, C)).toBe(true);
    w.engine.setPrePulls([]);
    await w.settle();
    expect(await w.runtime.imageStatus(B)).toBeUndefined();
    expect(await pinned(w, C)).toBe(false);
    expect(w.calls('remove')).toEqual([B]);
    const byImage = Object.fromEntries(w.engine.released().map((r) => [r.image, r]));
    expect(byImage[B]).toMatchObject({ action: 'Removed' });
    expect(byImage[C]).toMatchObject({
      action: 'Unpinned',
      reason: 'not removed: prepull did not pull it',
    });
  });

  it('Remove only when every PrePull that wanted the image says Remove', async () => {
    const w = new World();
    w.publish(B, 2);
    await started(w, { images: images(B), cleanup: 'Remove' }, { images: images(B) });
    expect(pick(w.engine.reports(), B)).not.toHaveProperty('cleanup');
    w.engine.setPrePulls([]);
    await w.settle();
    expect(w.calls('remove')).toEqual([]);
    expect(w.engine.released()[0]).toMatchObject({ image: B, action: 'Unpinned' });
  });

  it('the engine default --cleanup Remove removes what prepull pulled', async () => {
    const w = new World({ cleanup: 'Remove' });
    w.publish(B, 2);
    await started(w, { images: images(B) });
    w.engine.setPrePulls([]);
    await w.settle();
    expect(w.calls('remove')).toEqual([B]);
  });

  it('keeps an image a container uses (unpinned), even with Remove', async () => {
    const w = new World();
    w.publish(B, 2);
    await started(w, { images: images(B), cleanup: 'Remove' });
    w.runtime.addContainer(B);
    w.engine.setPrePulls([]);
    await w.settle();
    expect(await w.runtime.imageStatus(B)).toMatchObject({ pinned: false });
    expect(w.calls('remove')).toEqual([]);
    expect(w.engine.released()[0]).toMatchObject({
      image: B,
      action: 'Unpinned',
      reason: 'not removed: a container uses it',
    });
  });

  it('keeps, pinned, an image whose ID a still-wanted tag shares', async () => {
    const w = new World();
    // Two tags of one image: unpinning or removing one would take the other with it.
    w.runtime.publish(A, { digest: digest(1), id: digest(1001), size: 5 });
    w.runtime.publish(B, { digest: digest(1), id: digest(1001), size: 5 });
    w.tags.set(A, digest(1));
    w.tags.set(B, digest(1));
    await started(w, { images: images(A, B), cleanup: 'Remove' });
    w.engine.setPrePulls([prePull('p0', { images: images(A), cleanup: 'Remove' })]);
    await w.settle();
    expect(await pinned(w, A)).toBe(true);
    expect(await pinned(w, B)).toBe(true);
    expect(w.calls('unpin')).toEqual([]);
    expect(w.calls('remove')).toEqual([]);
    expect(w.engine.released()[0]).toMatchObject({
      image: B,
      action: 'Kept',
      reason: `a wanted image shares its image ID: ${A}`,
    });
  });

  it('never unpins a pin prepull did not set', async () => {
    const w = new World();
    w.publish(C, 3);
    w.runtime.seed({
      id: digest(1003),
      repoTags: [C],
      repoDigests: [`r.io/shop/c@${digest(3)}`],
      size: 5,
      pinned: true,
    });
    await started(w, { images: images(C), cleanup: 'Remove' });
    expect(pick(w.engine.reports(), C)).not.toHaveProperty('pinnedByPrepull');
    w.engine.setPrePulls([]);
    await w.settle();
    expect(await pinned(w, C)).toBe(true);
    expect(w.calls('unpin')).toEqual([]);
    expect(w.calls('remove')).toEqual([]);
    expect(w.engine.released()[0]).toMatchObject({
      image: C,
      action: 'Kept',
      reason: 'not removed: prepull did not pull it',
    });
  });

  it('never unpins a pin another client set on some records only, though prepull completed it', async () => {
    const w = new World();
    w.publish(C, 3);
    w.runtime.pullBehindBack(C);
    w.runtime.pinPartlyBehindBack(C); // `ctr images label` on the tag record alone
    await started(w, { images: images(C) });
    expect(w.calls('pin')).toEqual([C]);
    expect(pick(w.engine.reports(), C)).not.toHaveProperty('pinnedByPrepull');
    expect(lastStatus(w).images.find((i) => i.image === C)).not.toHaveProperty('pinnedByPrepull');
    w.engine.setPrePulls([]);
    await w.settle();
    expect(await pinned(w, C)).toBe(true);
    expect(w.calls('unpin')).toEqual([]);
    expect(w.engine.released()[0]).toMatchObject({ image: C, action: 'Kept' });
  });

  it('never touches the sandbox image, even through another tag of it', async () => {
    const pause = 'r.io/k8s/pause:3.9';
    const alias = 'r.io/k8s/pause:latest';
    const w = new World({ sandboxImage: pause, cleanup: 'Remove' });
    w.runtime.publish(pause, { digest: digest(9), id: digest(1009), size: 5 });
    w.runtime.publish(alias, { digest: digest(9), id: digest(1009), size: 5 });
    w.tags.set(pause, digest(9));
    w.tags.set(alias, digest(9));
    await started(w, { images: images(pause, alias) });
    expect(w.calls('pull').sort()).toEqual([alias, pause].sort());
    w.engine.setPrePulls([]);
    await w.settle();
    expect(await pinned(w, pause)).toBe(true);
    expect(w.calls('remove')).toEqual([]);
    expect(w.calls('unpin')).toEqual([]);
    // The sandbox image is still wanted (by the runtime): only the alias left, and it stays.
    expect(w.engine.released()).toEqual([
      expect.objectContaining({ image: alias, action: 'Kept' }),
    ]);
  });

  it('releases once: a failed unpin is logged, counted and not retried', async () => {
    const w = new World();
    w.publish(B, 2);
    await started(w, { images: images(B) });
    w.runtime.failOn(B, new PrepullError('ERR_RUNTIME_UNAVAILABLE', 'socket gone'), {
      op: 'unpin',
    });
    w.engine.setPrePulls([]);
    await w.settle();
    await w.clock.advance(3_600_000);
    await w.settle();
    expect(w.calls('unpin')).toEqual([B]);
    expect(w.engine.released()[0]).toMatchObject({
      image: B,
      action: 'Kept',
      reason: 'failed: socket gone',
    });
    expect(await w.metrics.render()).toContain('prepull_images_released_total{action="Failed"} 1');
  });

  it('waits for a pull in flight before releasing what it brings', async () => {
    const w = new World({ pullLatencyMs: 10_000 });
    w.publish(B, 2);
    w.engine.setPrePulls([prePull('p0', { images: images(B), cleanup: 'Remove' })]);
    await w.engine.start();
    await w.clock.advance(1_000); // pulling
    w.engine.setPrePulls([]);
    await w.settle();
    expect(w.calls('pull')).toEqual([B]);
    expect(await w.runtime.imageStatus(B)).toBeUndefined();
    expect(w.engine.released()[0]).toMatchObject({ image: B, action: 'Removed' });
  });
});

describe('release across restarts (the node’s last status)', () => {
  it('keeps what is still wanted pinned, and releases what was dropped while it was down', async () => {
    const w = new World();
    w.publish(A, 1);
    w.publish(B, 2);
    w.publish(C, 3);
    w.holdPulled(C, 3);
    await started(w, { images: images(A, B, C), cleanup: 'Remove' });
    const previous = lastStatus(w);
    expect(previous.images.find((i) => i.image === C)).toMatchObject({ pinnedByPrepull: true });
    expect(previous.images.find((i) => i.image === C)).not.toHaveProperty('pulledByPrepull');

    const engine = await w.restart();
    const callsBefore = w.runtime.calls.length;
    engine.remember(previous);
    // While it was down, B and C were dropped from the PrePull.
    engine.setPrePulls([prePull('p0', { images: images(A), cleanup: 'Remove' })]);
    await engine.start();
    await w.settle();
    const calls = w.runtime.calls.slice(callsBefore);
    expect(calls.filter((c) => c.op === 'unpin').map((c) => c.ref)).toEqual([C]);
    expect(calls.filter((c) => c.op === 'remove').map((c) => c.ref)).toEqual([B]);
    expect(calls.filter((c) => c.op === 'pull')).toEqual([]);
    expect(await pinned(w, A)).toBe(true);
    expect(await w.runtime.imageStatus(B)).toBeUndefined();
    expect(await pinned(w, C)).toBe(false);
    // Provenance carries on for what is still wanted.
    expect(pick(engine.reports(), A)).toMatchObject({
      pulledByPrepull: true,
      pinnedByPrepull: true,
    });
  });

  it('does not release again what it released before the restart', async () => {
    const w = new World();
    w.publish(A, 1);
    w.publish(B, 2);
    await started(w, { images: images(A, B) });
    w.engine.setPrePulls([prePull('p0', { images: images(A) })]);
    await w.settle();
    const previous = lastStatus(w);
    expect(previous.released).toEqual([expect.objectContaining({ image: B })]);
    const engine = await w.restart();
    const callsBefore = w.runtime.calls.length;
    engine.remember(previous);
    engine.setPrePulls([prePull('p0', { images: images(A) })]);
    await engine.start();
    await w.settle();
    expect(w.runtime.calls.slice(callsBefore).filter((c) => c.op === 'unpin')).toEqual([]);
    expect(engine.released()).toEqual(previous.released);
  });
});
