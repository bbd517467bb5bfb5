// The reconnecting deletion watcher on a manual clock: first subscription must succeed, breaks
// are repaired with capped, jittered backoff, each repair reported as a gap, and stopping ends
// everything.
import { describe, expect, it } from '@jest/globals';
import { ManualClock } from '../clock.ts';
import type { DeletionEvent } from './types.ts';
import {
  DeletionWatches,
  watchWithReconnect,
  type OpenStream,
  type StreamHandlers,
} from './watch.ts';

function scriptedOpen(outcomes: ('ok' | 'fail')[]): {
  open: OpenStream;
  handlers: () => StreamHandlers;
  opened: number;
  closed: number;
} {
  const state = { opened: 0, closed: 0, current: undefined as StreamHandlers | undefined };
  const open: OpenStream = (handlers) => {
    const outcome = outcomes.shift() ?? 'ok';
    if (outcome === 'fail') return Promise.reject(new Error('connect ENOENT'));
    state.opened++;
    state.current = handlers;
    return Promise.resolve({
      close: () => {
        state.closed++;
      },
    });
  };
  return {
    open,
    handlers: () => state.current!,
    get opened() {
      return state.opened;
    },
    get closed() {
      return state.closed;
    },
  };
}

describe('watchWithReconnect', () => {
  it('rejects when the first subscription fails', async () => {
    const script = scriptedOpen(['fail']);
    await expect(
      watchWithReconnect(script.open, () => undefined, { clock: new ManualClock() }),
    ).rejects.toThrow('connect ENOENT');
  });

  it('passes removals through, and repairs a break with backoff, reporting a gap', async () => {
    const clock = new ManualClock(0, [0.5]); // jitter factor exactly 1
    const script = scriptedOpen(['ok', 'fail', 'fail', 'ok']);
    const events: DeletionEvent[] = [];
    const stop = await watchWithReconnect(script.open, (e) => events.push(e), {
      clock,
      initialBackoffMs: 100,
      maxBackoffMs: 300,
    });
    script.handlers().removed('r/x:1');
    expect(events).toEqual([{ kind: 'removed', name: 'r/x:1' }]);

    script.handlers().ended(new Error('runtime restarted'));
    script.handlers().ended(new Error('called twice')); // ignored
    while (await clock.next()) {
      if (script.opened === 2) break;
    }
    expect(clock.sleeps).toEqual([100, 200, 300]);
    expect(events.at(-1)).toEqual({
      kind: 'gap',
      reason: 'event stream re-established after: runtime restarted',
    });
    script.handlers().removed('sha256:abc');
    expect(events.at(-1)).toEqual({ kind: 'removed', name: 'sha256:abc' });

    stop();
    expect(script.closed).toBe(1);
    script.handlers().removed('after stop');
    expect(events.at(-1)).toEqual({ kind: 'removed', name: 'sha256:abc' });
  });

  it('stops reconnecting when stopped while waiting', async () => {
    const clock = new ManualClock();
    const script = scriptedOpen(['ok']);
    const stop = await watchWithReconnect(script.open, () => undefined, { clock });
    script.handlers().ended();
    expect(clock.waiting).toBe(1);
    stop();
    await clock.advance(10_000);
    expect(script.opened).toBe(1);
  });
});

describe('DeletionWatches', () => {
  it('closes a subscription that becomes live after stopAll, and opens none after it', async () => {
    const watches = new DeletionWatches({ clock: new ManualClock() });
    let live!: () => void;
    const subscribing = new Promise<void>((resolve) => (live = resolve));
    let opened = 0;
    let closed = 0;
    const open: OpenStream = async () => {
      opened++;
      await subscribing;
      return {
        close: () => {
          closed++;
        },
      };
    };
    const pending = watches.subscribe(open, () => undefined);
    watches.stopAll(); // the adapter closes while the subscription is being confirmed
    live();
    await pending;
    expect([opened, closed]).toEqual([1, 1]);

    await watches.subscribe(open, () => undefined);
    expect(opened).toBe(1);
  });
});
