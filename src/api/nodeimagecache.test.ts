import { describe, expect, it } from '@jest/globals';
import { MAX_RELEASED, MAX_STATUS_IMAGES, nodeImageCacheStatus } from './nodeimagecache.ts';

const RUNTIME = { name: 'containerd', version: '1.7.0', endpoint: 'unix:///run/c.sock' };

function image(i: number, state: 'Present' | 'Failed') {
  return { image: `r/app-${i}:1`, requiredBy: ['ns/p'], state, reason: state, attempts: 0 };
}

describe('nodeImageCacheStatus', () => {
  it('summarises the states and says Ready only when every image is Present', () => {
    const status = nodeImageCacheStatus(
      [image(1, 'Present'), image(2, 'Failed')],
      RUNTIME,
      { usedBytes: 10 },
      { now: '2026-01-01T00:00:00.000Z' },
    );
    expect(status.summary).toEqual({
      required: 2,
      present: 1,
      pulling: 0,
      missing: 0,
      stale: 0,
      failed: 1,
    });
    expect(status.conditions).toEqual([
      {
        type: 'Ready',
        status: 'False',
        reason: 'ImagesFailed',
        message: '1 of 2 images present, 0 pulling, 0 missing, 0 stale, 1 failed',
        lastTransitionTime: '2026-01-01T00:00:00.000Z',
      },
    ]);
    expect(status.imageFilesystem).toEqual({ usedBytes: 10 });
  });

  it('shows the disk guard: known figures only, capacity left out, the message cut', () => {
    const disk = {
      floor: '20%',
      floorBytes: 20,
      availableBytes: 15,
      capacityBytes: 100,
      pinnedBytes: 5,
      heldImages: 1,
    };
    const status = nodeImageCacheStatus([image(1, 'Failed')], RUNTIME, {}, { now: 'T', disk });
    expect(status.disk).toEqual({
      floor: '20%',
      floorBytes: 20,
      availableBytes: 15,
      pinnedBytes: 5,
      heldImages: 1,
    });
    const unmeasured = nodeImageCacheStatus(
      [],
      RUNTIME,
      {},
      {
        now: 'T',
        disk: {
          floor: '20%',
          pinBudgetBytes: 9,
          pinnedBytes: 0,
          heldImages: 0,
          message: 'x'.repeat(5000),
        },
      },
    );
    expect(unmeasured.disk).toMatchObject({ floor: '20%', pinBudgetBytes: 9 });
    expect(unmeasured.disk?.message).toHaveLength(1024);
    expect(nodeImageCacheStatus([], RUNTIME, {}, { now: 'T' }).disk).toBeUndefined();
  });

  it('carries provenance and the last releases, newest first, at most MAX_RELEASED', () => {
    const released = Array.from({ length: 40 }, (_, i) => ({
      image: `r/old-${i}:1`,
      action: 'Unpinned' as const,
      time: `2026-01-01T00:00:${String(59 - i).padStart(2, '0')}.000Z`,
    }));
    const status = nodeImageCacheStatus(
      [
        {
          ...image(1, 'Present'),
          pulledByPrepull: true,
          pinnedByPrepull: true,
          pinned: true,
          pinSource: 'label',
          cleanup: 'Remove',
        },
      ],
      RUNTIME,
      {},
      { now: 'T1', released },
    );
    expect(status.images[0]).toMatchObject({
      pulledByPrepull: true,
      pinnedByPrepull: true,
      pinSource: 'label',
      cleanup: 'Remove',
    });
    expect(status.released).toEqual(released.slice(0, MAX_RELEASED));
    const none = nodeImageCacheStatus([image(1, 'Present')], RUNTIME, {}, { now: 'T1' });
    expect(none).not.toHaveProperty('released');
    expect(none.images[0]).not.toHaveProperty('pulledByPrepull');
  });

  it('keeps the transition time while the condition holds, so an unchanged node rewrites nothing', () => {
    const first = nodeImageCacheStatus([image(1, 'Present')], RUNTIME, {}, { now: 'T1' });
    const again = nodeImageCacheStatus(
      [image(1, 'Present')],
      RUNTIME,
      {},
      { now: 'T2', previous: first },
    );
    expect(again).toEqual(first);
  });

  it('lists at most the CRD maximum, those not Present first, and says so', () => {
    const images = Array.from({ length: MAX_STATUS_IMAGES + 10 }, (_, i) =>
      image(i, i === MAX_STATUS_IMAGES + 5 ? 'Failed' : 'Present'),
    );
    const status = nodeImageCacheStatus(images, RUNTIME, {}, { now: 'T' });
    expect(status.images).toHaveLength(MAX_STATUS_IMAGES);
    expect(status.images[0]?.state).toBe('Failed');
    expect(status.summary.required).toBe(MAX_STATUS_IMAGES + 10);
    expect(status.conditions[0]?.message).toContain(
      `the image list shows ${MAX_STATUS_IMAGES} of ${MAX_STATUS_IMAGES + 10}`,
    );
  });
});
