import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { cronScheduler, lazyScheduler } from './cron.ts';
import type { CronSpec, Scheduler, Tick } from './types.ts';

/** A scheduler to load, and a load the test finishes when it says. */
function loadable(): {
  load: () => Promise<Scheduler>;
  loads: () => number;
  finish: () => Promise<void>;
  tick: (expression: string) => void;
  scheduled: () => string[];
} {
  const tasks = new Map<number, { expression: string; onTick: () => void }>();
  let next = 0;
  let loads = 0;
  let resolve: (scheduler: Scheduler) => void = () => undefined;
  const loaded = new Promise<Scheduler>((r) => (resolve = r));
  const real: Scheduler = {
    schedule({ expression }, onTick) {
      const id = next++;
      tasks.set(id, {
        expression,
        onTick: () => {
          onTick({ at: 0 });
        },
      });
      return () => tasks.delete(id);
    },
  };
  return {
    load: () => {
      loads++;
      return loaded;
    },
    loads: () => loads,
    finish: async () => {
      resolve(real);
      await loaded;
      await new Promise((r) => setImmediate(r));
    },
    tick: (expression) => {
      for (const task of tasks.values()) if (task.expression === expression) task.onTick();
    },
    scheduled: () => [...tasks.values()].map((t) => t.expression),
  };
}

describe('lazyScheduler', () => {
  it('loads the scheduler with the first schedule only, once, and hands it every schedule', async () => {
    const real = loadable();
    const scheduler = lazyScheduler(real.load);
    expect(real.loads()).toBe(0);
    const ticks: string[] = [];
    const stopA = scheduler.schedule({ expression: '0 * * * *' }, () => ticks.push('a'));
    const stopB = scheduler.schedule({ expression: '30 2 * * *' }, () => ticks.push('b'));
    expect(real.loads()).toBe(1);
    expect(real.scheduled()).toEqual([]);
    await real.finish();
    expect(real.scheduled()).toEqual(['0 * * * *', '30 2 * * *']);
    real.tick('0 * * * *');
    expect(ticks).toEqual(['a']);

    // After the load: scheduled at once, stopped at once.
    const stopC = scheduler.schedule({ expression: '*/5 * * * *' }, () => ticks.push('c'));
    await new Promise((r) => setImmediate(r));
    expect(real.scheduled()).toEqual(['0 * * * *', '30 2 * * *', '*/5 * * * *']);
    expect(real.loads()).toBe(1);
    stopA();
    stopC();
    expect(real.scheduled()).toEqual(['30 2 * * *']);
    stopB();
    expect(real.scheduled()).toEqual([]);
  });

  it('never starts a task stopped before the load finished', async () => {
    const real = loadable();
    const scheduler = lazyScheduler(real.load);
    const stopped = scheduler.schedule({ expression: '0 * * * *' }, () => undefined);
    scheduler.schedule({ expression: '15 * * * *' }, () => undefined);
    stopped();
    await real.finish();
    expect(real.scheduled()).toEqual(['15 * * * *']);
  });
});

// node-cron keeps time with Date and setTimeout, so these tests move Jest's fake clock: the
// real node-cron fires at exact instants, however busy the machine.
describe('cronScheduler (node-cron on a fake clock)', () => {
  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  /** The ticks `cron` gives from `from` until `until` (ISO instants), as ISO strings. */
  async function ticks(cron: CronSpec, from: string, until: string): Promise<string[][]> {
    jest.setSystemTime(new Date(from));
    const seen: Tick[] = [];
    const stop = cronScheduler.schedule(cron, (tick) => seen.push(tick));
    // The lazy load of node-cron: a real import, then the task starts.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    await jest.advanceTimersByTimeAsync(Date.parse(until) - Date.parse(from));
    stop();
    const iso = (ms: number | undefined): string =>
      ms === undefined ? 'unknown' : new Date(ms).toISOString();
    return seen.map((t) => [iso(t.at), iso(t.next)]);
  }

  it('fires 02:00 Europe/Berlin at 01:00 UTC in winter and 00:00 UTC in summer, skipping the day 02:00 does not exist', async () => {
    // Clocks go from 02:00 CET to 03:00 CEST on 29 March 2026 (01:00 UTC).
    expect(
      await ticks(
        { expression: '0 2 * * *', timeZone: 'Europe/Berlin' },
        '2026-03-27T12:00:00Z',
        '2026-03-31T12:00:00Z',
      ),
    ).toEqual([
      ['2026-03-28T01:00:00.000Z', '2026-03-30T00:00:00.000Z'],
      ['2026-03-30T00:00:00.000Z', '2026-03-31T00:00:00.000Z'],
      ['2026-03-31T00:00:00.000Z', '2026-04-01T00:00:00.000Z'],
    ]);
  });

  it('fires 02:00 Europe/Berlin once on the day it occurs twice, at the second (CET) one', async () => {
    // Clocks go from 03:00 CEST back to 02:00 CET on 25 October 2026 (01:00 UTC).
    expect(
      await ticks(
        { expression: '0 2 * * *', timeZone: 'Europe/Berlin' },
        '2026-10-23T12:00:00Z',
        '2026-10-26T12:00:00Z',
      ),
    ).toEqual([
      ['2026-10-24T00:00:00.000Z', '2026-10-25T01:00:00.000Z'],
      ['2026-10-25T01:00:00.000Z', '2026-10-26T01:00:00.000Z'],
      ['2026-10-26T01:00:00.000Z', '2026-10-27T01:00:00.000Z'],
    ]);
  });

  it('fires an hourly Europe/Berlin schedule 24 times on the 25-hour day, the repeated 02:00 once', async () => {
    // Local midnight to 23:00 on 25 October 2026: 25 hours, 02:00 twice (00:00 and 01:00 UTC).
    const day = await ticks(
      { expression: '0 * * * *', timeZone: 'Europe/Berlin' },
      '2026-10-24T21:59:59Z',
      '2026-10-25T22:00:01Z',
    );
    expect(day).toHaveLength(24);
    expect(day.map(([at]) => at)).not.toContain('2026-10-25T00:00:00.000Z');
    expect(day.map(([at]) => at)).toContain('2026-10-25T01:00:00.000Z');
  });

  // Where the machine's zone is UTC (CI here) the two halves agree; elsewhere the first one shows
  // the adapter adds no zone of its own. Jest cannot change the process's zone (TZ) per test.
  it('reads a schedule without a time zone in the local zone of the process', async () => {
    const local = await ticks(
      { expression: '30 4 * * *' },
      '2026-06-01T12:00:00Z',
      '2026-06-02T12:00:00Z',
    );
    const expected = new Date(2026, 5, 2, 4, 30).toISOString(); // 04:30 local, as Date reads TZ
    expect(local.map(([at]) => at)).toEqual([expected]);
    const utc = await ticks(
      { expression: '30 4 * * *', timeZone: 'UTC' },
      '2026-06-01T12:00:00Z',
      '2026-06-02T12:00:00Z',
    );
    expect(utc).toEqual([['2026-06-02T04:30:00.000Z', '2026-06-03T04:30:00.000Z']]);
  });

  it('fires a time missed while the process could not run once, late, and the older ones not at all', async () => {
    jest.setSystemTime(new Date('2026-06-01T10:00:30Z'));
    const seen: { at: string; now: string }[] = [];
    const stop = cronScheduler.schedule({ expression: '0 * * * *', timeZone: 'UTC' }, (tick) => {
      seen.push({ at: new Date(tick.at).toISOString(), now: new Date().toISOString() });
    });
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    // The wall clock jumps 2 h 20 min ahead (a machine resumed from suspend): node-cron's timer
    // for 11:00, 59.5 minutes on, finds it 13:20.
    jest.setSystemTime(new Date('2026-06-01T12:20:30Z'));
    await jest.advanceTimersByTimeAsync(59.5 * 60_000 + 40 * 60_000);
    stop();
    expect(seen).toEqual([
      { at: '2026-06-01T13:00:00.000Z', now: '2026-06-01T13:20:00.000Z' },
      { at: '2026-06-01T14:00:00.000Z', now: '2026-06-01T14:00:00.000Z' },
    ]);
  });

  it('stops firing once stopped', async () => {
    jest.setSystemTime(new Date('2026-06-01T10:00:00.500Z'));
    let count = 0;
    const stop = cronScheduler.schedule({ expression: '* * * * * *' }, () => count++);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    await jest.advanceTimersByTimeAsync(3000);
    expect(count).toBe(3);
    stop();
    await jest.advanceTimersByTimeAsync(10_000);
    expect(count).toBe(3);
  });
});
