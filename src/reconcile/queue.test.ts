import { describe, expect, it } from '@jest/globals';
import { ManualClock } from '../clock.ts';
import { WorkQueue } from './queue.ts';

/** A handler whose calls finish only when the test says so. */
function gatedHandler(): {
  calls: string[];
  release: (key: string) => void;
  handler: (key: string) => Promise<void>;
  running: () => number;
} {
  const calls: string[] = [];
  const gates = new Map<string, (() => void)[]>();
  let running = 0;
  return {
    calls,
    running: () => running,
    release: (key) => {
      const waiters = gates.get(key) ?? [];
      gates.delete(key);
      for (const open of waiters) open();
    },
    handler: (key) => {
      calls.push(key);
      running++;
      return new Promise((resolve) => {
        gates.set(key, [
          ...(gates.get(key) ?? []),
          () => {
            running--;
            resolve();
          },
        ]);
      });
    },
  };
}

const tick = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('WorkQueue', () => {
  it('processes each waiting key once, however often it is added', async () => {
    const seen: string[] = [];
    const queue = new WorkQueue<string>({
      concurrency: 1,
      clock: new ManualClock(),
      handler: (key) => {
        seen.push(key);
        return Promise.resolve();
      },
    });
    // 'first' occupies the only worker, so the others wait and de-duplicate.
    queue.add('first');
    queue.add('a');
    queue.add('b');
    queue.add('b');
    queue.add('a');
    await queue.idle();
    expect(seen).toEqual(['first', 'a', 'b']);
  });

  it('never runs a key twice at once; an add during processing runs it once more after', async () => {
    const gated = gatedHandler();
    const queue = new WorkQueue<string>({
      concurrency: 4,
      clock: new ManualClock(),
      handler: gated.handler,
    });
    queue.add('a');
    await tick();
    queue.add('a');
    queue.add('a');
    await tick();
    expect(gated.calls).toEqual(['a']);
    gated.release('a');
    await tick();
    expect(gated.calls).toEqual(['a', 'a']);
    gated.release('a');
    await queue.idle();
    expect(gated.calls).toEqual(['a', 'a']);
  });

  it('runs at most `concurrency` keys at a time', async () => {
    const gated = gatedHandler();
    const queue = new WorkQueue<string>({
      concurrency: 2,
      clock: new ManualClock(),
      handler: gated.handler,
    });
    for (const key of ['a', 'b', 'c', 'd']) queue.add(key);
    await tick();
    expect(gated.running()).toBe(2);
    expect(queue.length).toBe(2);
    gated.release('a');
    await tick();
    expect(gated.calls).toEqual(['a', 'b', 'c']);
    for (const key of ['b', 'c', 'd']) {
      gated.release(key);
      await tick();
    }
    await queue.idle();
    expect(gated.calls).toEqual(['a', 'b', 'c', 'd']);
  });

  it('delays adds with the clock and keeps the earliest wake-up per key', async () => {
    const clock = new ManualClock(0);
    const seen: string[] = [];
    const queue = new WorkQueue<string>({
      concurrency: 1,
      clock,
      handler: (key) => {
        seen.push(`${key}@${clock.now()}`);
        return Promise.resolve();
      },
    });
    queue.addAfter('a', 5000);
    queue.addAfter('a', 2000);
    queue.addAfter('a', 9000);
    queue.addAfter('b', 3000);
    expect(queue.scheduledAt('a')).toBe(2000);
    await clock.advance(10_000);
    await queue.idle();
    expect(seen).toEqual(['a@2000', 'b@3000']);
  });

  it('forgets a delayed key, reports handler errors, and shuts down cleanly', async () => {
    const clock = new ManualClock(0);
    const errors: string[] = [];
    let seenSignal: AbortSignal | undefined;
    const queue = new WorkQueue<string>({
      concurrency: 1,
      clock,
      handler: (key, signal) => {
        seenSignal = signal;
        return key === 'bad' ? Promise.reject(new Error('boom')) : Promise.resolve();
      },
      onError: (key, error) => errors.push(`${key}: ${(error as Error).message}`),
    });
    queue.addAfter('later', 1000);
    queue.forget('later');
    queue.add('bad');
    await queue.idle();
    expect(errors).toEqual(['bad: boom']);
    await clock.advance(5000);
    expect(queue.length).toBe(0);
    queue.addAfter('never', 100);
    await queue.shutDown();
    expect(seenSignal?.aborted).toBe(true);
    queue.add('after');
    expect(queue.length).toBe(0);
  });
});
