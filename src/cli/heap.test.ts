import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { releaseMemory, releaseWhenQuiet } from './heap.ts';

function changes(): { subscribe: (l: () => void) => () => void; emit: () => void } {
  const listeners = new Set<() => void>();
  return {
    subscribe: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit: () => {
      for (const listener of listeners) listener();
    },
  };
}

describe('releaseWhenQuiet', () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('releases once the changes have stopped for the quiet time, counting the start', () => {
    const source = changes();
    let released = 0;
    const stop = releaseWhenQuiet(source.subscribe, { quietMs: 3000, release: () => released++ });
    jest.advanceTimersByTime(2000);
    source.emit();
    jest.advanceTimersByTime(2000);
    source.emit();
    jest.advanceTimersByTime(2999);
    expect(released).toBe(0);
    jest.advanceTimersByTime(1);
    expect(released).toBe(1);
    jest.advanceTimersByTime(600_000);
    expect(released).toBe(1);
    stop();
  });

  it('releases at most once per interval, then once more after a later burst', () => {
    const source = changes();
    let released = 0;
    const stop = releaseWhenQuiet(source.subscribe, {
      quietMs: 3000,
      minIntervalMs: 60_000,
      release: () => released++,
    });
    jest.advanceTimersByTime(3000);
    expect(released).toBe(1);
    source.emit();
    jest.advanceTimersByTime(59_999);
    expect(released).toBe(1);
    jest.advanceTimersByTime(1);
    expect(released).toBe(2);
    stop();
  });

  it('releases nothing once stopped', () => {
    const source = changes();
    let released = 0;
    const stop = releaseWhenQuiet(source.subscribe, { release: () => released++ });
    stop();
    source.emit();
    jest.advanceTimersByTime(600_000);
    expect(released).toBe(0);
  });
});

/** Counts V8's major (full) collections as Node reports them, which is after they happen. */
function majorCollections(): {
  count: () => number;
  next: (than: number) => Promise<number>;
  stop: () => void;
} {
  let count = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as { detail?: { kind?: number } }[]) {
      if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) count++;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    count: () => count,
    next: async (than) => {
      const deadline = Date.now() + 2000;
      while (count <= than && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      return count;
    },
    stop: () => {
      observer.disconnect();
    },
  };
}

describe('releaseMemory', () => {
  it('runs a full collection, and again', async () => {
    const collections = majorCollections();
    try {
      const before = collections.count();
      releaseMemory();
      const afterFirst = await collections.next(before);
      expect(afterFirst).toBeGreaterThan(before);
      // The second call reuses the gc function the first one made, and collects again.
      releaseMemory();
      expect(await collections.next(afterFirst)).toBeGreaterThan(afterFirst);
    } finally {
      collections.stop();
    }
  });
});
