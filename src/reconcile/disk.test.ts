// The disk guard's arithmetic (diskVerdict), without an engine: the floor as a percentage or
// bytes, an image of known or unknown size, pulls in flight, and the pin budget.
import { describe, expect, it } from '@jest/globals';
import { type DiskInput, diskVerdict, floorBytes } from './disk.ts';

const MiB = 2 ** 20;
const base: DiskInput = {
  floor: { percent: 20 },
  availableBytes: 50 * MiB,
  capacityBytes: 100 * MiB,
  pinnedBytes: 0,
  pins: true,
  reservedBytes: 0,
  reservedPinBytes: 0,
};

describe('diskVerdict', () => {
  it('lets a pull start that leaves the floor free', () => {
    expect(diskVerdict({ ...base, expectedBytes: 30 * MiB })).toBeUndefined();
  });

  it('holds a pull that would cross the floor, naming free space, size and floor', () => {
    const verdict = diskVerdict({ ...base, expectedBytes: 31 * MiB, path: '/var/lib/containerd' });
    expect(verdict?.code).toBe('ERR_DISK_BUDGET');
    expect(verdict?.retryable).toBe(true);
    expect(verdict?.message).toBe(
      'not pulled: the image filesystem at /var/lib/containerd has 50.00 MiB free, and its expected size is 31.00 MiB (last seen on this node); pulling it would leave less than the floor of 20.00 MiB (20% of 100.00 MiB) (--image-fs-floor)',
    );
  });

  it('holds an image of unknown size only once the floor is already crossed', () => {
    expect(diskVerdict({ ...base, availableBytes: 20 * MiB })).toBeUndefined();
    const verdict = diskVerdict({ ...base, availableBytes: 20 * MiB - 1 });
    expect(verdict?.message).toMatch(/its size is unknown \(never held on this node\)/);
  });

  it('counts what admitted pulls are still to write', () => {
    expect(
      diskVerdict({ ...base, expectedBytes: 10 * MiB, reservedBytes: 15 * MiB }),
    ).toBeUndefined();
    expect(
      diskVerdict({ ...base, expectedBytes: 10 * MiB, reservedBytes: 21 * MiB })?.message,
    ).toMatch(/50.00 MiB free, 21.00 MiB of it promised to pulls in flight/);
  });

  it('takes a floor in bytes as it is, and a percentage only with a capacity', () => {
    expect(floorBytes({ bytes: 5 }, undefined)).toBe(5);
    expect(floorBytes({ percent: 15 }, 1000)).toBe(150);
    expect(floorBytes({ percent: 15 }, undefined)).toBeUndefined();
    const bytes = diskVerdict({ ...base, floor: { bytes: 45 * MiB }, expectedBytes: 6 * MiB });
    expect(bytes?.message).toMatch(/the floor of 45.00 MiB \(--image-fs-floor\)$/);
    // Unmeasured: no floor applies.
    const unmeasured: DiskInput = { ...base };
    delete unmeasured.availableBytes;
    delete unmeasured.capacityBytes;
    expect(diskVerdict({ ...unmeasured, expectedBytes: 1e12 })).toBeUndefined();
  });

  it('holds a pinned image that would exceed the budget, and only an image to be pinned', () => {
    const budget = { ...base, pinBudgetBytes: 100 * MiB, pinnedBytes: 80 * MiB };
    expect(diskVerdict({ ...budget, expectedBytes: 20 * MiB })).toBeUndefined();
    expect(diskVerdict({ ...budget, expectedBytes: 21 * MiB })?.message).toBe(
      'not pulled: prepull pins 80.00 MiB on this node, and its expected size is 21.00 MiB (last seen on this node); pinning it would exceed the pin budget of 100.00 MiB (--pin-budget)',
    );
    expect(diskVerdict({ ...budget, expectedBytes: 21 * MiB, pins: false })).toBeUndefined();
    // Unknown size: held once the budget is used up, not before.
    expect(diskVerdict(budget)).toBeUndefined();
    expect(diskVerdict({ ...budget, pinnedBytes: 100 * MiB })?.message).toMatch(
      /prepull pins 100.00 MiB on this node, and its size is unknown/,
    );
    expect(
      diskVerdict({ ...budget, expectedBytes: 10 * MiB, reservedPinBytes: 15 * MiB })?.message,
    ).toMatch(/prepull pins 95.00 MiB on this node \(pulls in flight included\)/);
  });
});
