import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { validatePrePull } from '../api/prepull.ts';
import { ManualClock } from '../clock.ts';
import { createLogger } from '../telemetry/logger.ts';
import {
  type OwnedSchedule,
  Schedules,
  schedulesOf,
  spreadDelayMs,
  spreadFraction,
} from './schedules.ts';
import type { CronSpec, Scheduler, Tick } from './types.ts';

// Node names as clusters spell them: numbered, EC2's private DNS names, GKE's pool suffixes.
const FAMILIES: Record<string, (i: number) => string> = {
  numbered: (i) => `node-${String(i).padStart(4, '0')}`,
  ec2: (i) => `ip-10-0-${i >> 8}-${i & 255}.ec2.internal`,
  gke: (i) => `gke-prod-pool-1-${(0xabc00 + i).toString(16)}`,
};
const NODES = 1000;
const WINDOW_S = 300;

/** Each of 1000 nodes' delay (ms) for PrePull `owner` under the default 300 s window. */
function delays(name: (i: number) => string, owner: string): number[] {
  return Array.from({ length: NODES }, (_, i) =>
    spreadDelayMs(spreadFraction(name(i + 1), owner), WINDOW_S, { at: 0 }),
  );
}

// The hash is fixed, so these are facts about these names, not chances: each bound holds or
// fails the same way on every run. The bounds are what a fair spread gives (100 ± 25 per tenth,
// about 3.3 nodes a second), so a hash that clumped would fail them.
describe.each(Object.entries(FAMILIES))('1000 nodes named like %s', (_family, name) => {
  const web = delays(name, 'shop/web');

  it('fire within the window, spread evenly over its tenths', () => {
    expect(Math.min(...web)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...web)).toBeLessThan(WINDOW_S * 1000);
    const tenths = Array.from({ length: 10 }, () => 0);
    for (const ms of web) tenths[Math.floor(ms / (WINDOW_S * 100))]! += 1;
    for (const count of tenths) expect(count).toBeGreaterThanOrEqual(75);
    for (const count of tenths) expect(count).toBeLessThanOrEqual(125);
  });

  it('put at most 15 nodes on any one second (without the spread: all 1000), using at least 280 of its 300 seconds', () => {
    const perSecond = new Map<number, number>();
    for (const ms of web) {
      const second = Math.floor(ms / 1000);
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    }
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(15);
    expect(perSecond.size).toBeGreaterThanOrEqual(280);
  });

  it('place two PrePulls on one node apart: under 1.5 % of nodes fire both within a second', () => {
    const db = delays(name, 'shop/db');
    const together = web.filter((ms, i) => Math.abs(ms - db[i]!) < 1000).length;
    expect(together).toBeLessThan(15);
  });
});

describe('spreadFraction', () => {
  it('is the same for the same node and PrePull, run after run and release after release', () => {
    // Pinned: a change of hash would move every node of every fleet on upgrade.
    expect(spreadFraction('worker-1', 'shop/shop')).toBe(0.14793802215717733);
    expect(spreadFraction('worker-1', 'shop/shop')).toBe(spreadFraction('worker-1', 'shop/shop'));
    expect(spreadFraction('worker-1', 'shop/web')).not.toBe(
      spreadFraction('worker-1', 'shop/shop'),
    );
    expect(spreadFraction('worker-2', 'shop/shop')).not.toBe(
      spreadFraction('worker-1', 'shop/shop'),
    );
  });
});

describe('spreadDelayMs', () => {
  it('is the fraction of the jitter, or of the time to the next firing when that is shorter', () => {
    expect(spreadDelayMs(0.5, 300, { at: 1000 })).toBe(150_000);
    expect(spreadDelayMs(0.5, 300, { at: 1000, next: 1000 + 3_600_000 })).toBe(150_000);
    // Every minute: the window shrinks to the minute, so no firing waits past the next one.
    expect(spreadDelayMs(0.5, 300, { at: 1000, next: 61_000 })).toBe(30_000);
    expect(spreadDelayMs(0.999_999, 300, { at: 0, next: 60_000 })).toBeLessThan(60_000);
    expect(spreadDelayMs(0.5, 0, { at: 1000, next: 61_000 })).toBe(0);
    expect(spreadDelayMs(0.5, 300, { at: 1000, next: 1000 })).toBe(0);
  });
});

describe('schedulesOf', () => {
  const pp = (name: string, spec: Record<string, unknown>): OwnedSchedule[] => {
    const { prePull, issues } = validatePrePull({
      apiVersion: 'prepull.dev/v1alpha1',
      kind: 'PrePull',
      metadata: { name, namespace: 'shop' },
      spec: { images: [{ image: 'a:1' }], ...spec },
    });
    if (prePull === undefined) throw new Error(JSON.stringify(issues));
    return schedulesOf([prePull], { pool: 'a' });
  };

  it('is one per PrePull that selects the node and has a schedule, with its zone and window', () => {
    expect(pp('a', { schedule: '0 2 * * *', timeZone: 'Europe/Berlin' })).toEqual([
      {
        owner: 'shop/a',
        cron: { expression: '0 2 * * *', timeZone: 'Europe/Berlin' },
        jitterSeconds: 300,
      },
    ]);
    expect(pp('b', { schedule: '0 * * * *', scheduleJitterSeconds: 0 })).toEqual([
      { owner: 'shop/b', cron: { expression: '0 * * * *' }, jitterSeconds: 0 },
    ]);
    expect(pp('c', { schedule: '0 * * * *', nodeSelector: { pool: 'b' } })).toEqual([]);
    expect(pp('d', { timeZone: 'UTC' })).toEqual([]);
  });
});

/** Schedules on a manual clock and scheduler, with what fired and what was armed. */
function setup(node = 'worker-1'): {
  clock: ManualClock;
  schedules: Schedules;
  fired: { owner: string; at: number }[];
  armed: { cron: CronSpec; onTick: (tick: Tick) => void }[];
  /** Every task armed with `expression` names this moment; `next`: ms to its next time. */
  tick: (expression: string, next?: number) => void;
  logs: string[];
} {
  const clock = new ManualClock(Date.UTC(2026, 5, 1, 10));
  const armed: { cron: CronSpec; onTick: (tick: Tick) => void }[] = [];
  const scheduler: Scheduler = {
    schedule(cron, onTick) {
      const task = { cron, onTick };
      armed.push(task);
      return () => {
        const index = armed.indexOf(task);
        if (index >= 0) armed.splice(index, 1);
      };
    },
  };
  const logs: string[] = [];
  const log = createLogger(
    'info',
    new Writable({
      write: (chunk: Buffer, _enc, done) => {
        logs.push(chunk.toString());
        done();
      },
    }),
  );
  const fired: { owner: string; at: number }[] = [];
  const schedules = new Schedules({ scheduler, clock, log }, node, (owner) =>
    fired.push({ owner, at: clock.now() }),
  );
  return {
    clock,
    schedules,
    fired,
    armed,
    logs,
    tick: (expression, next) => {
      const at = clock.now();
      for (const task of armed.filter((a) => a.cron.expression === expression))
        task.onTick({ at, ...(next !== undefined ? { next: at + next } : {}) });
    },
  };
}

const schedule = (
  owner: string,
  expression: string,
  jitterSeconds = 300,
  timeZone?: string,
): OwnedSchedule => ({
  owner,
  cron: { expression, ...(timeZone !== undefined ? { timeZone } : {}) },
  jitterSeconds,
});

describe('Schedules', () => {
  it('fires each tick once, at the tick plus this node’s offset, on the injected clock', async () => {
    const s = setup();
    s.schedules.set([schedule('shop/web', '0 * * * *')]);
    const offset = Math.floor(spreadFraction('worker-1', 'shop/web') * 300_000);
    expect(offset).toBeGreaterThan(0);
    const start = s.clock.now();
    s.tick('0 * * * *', 3_600_000);
    await s.clock.advance(offset - 1);
    expect(s.fired).toEqual([]);
    await s.clock.advance(1);
    expect(s.fired).toEqual([{ owner: 'shop/web', at: start + offset }]);
    await s.clock.advance(3_600_000);
    expect(s.fired).toHaveLength(1);
    expect(s.schedules.waiting).toBe(0);
  });

  it('fires at once with no window, and a late tick no later than its offset says', async () => {
    const s = setup();
    s.schedules.set([schedule('shop/now', '*/5 * * * *', 0), schedule('shop/web', '0 * * * *')]);
    s.tick('*/5 * * * *', 300_000);
    expect(s.fired).toEqual([{ owner: 'shop/now', at: s.clock.now() }]);
    // node-cron hands a tick late (the process was busy): it counts from the scheduled time.
    const offset = Math.floor(spreadFraction('worker-1', 'shop/web') * 300_000);
    const at = s.clock.now();
    await s.clock.advance(offset - 10);
    for (const task of s.armed.filter((a) => a.cron.expression === '0 * * * *'))
      task.onTick({ at, next: at + 3_600_000 });
    expect(s.fired).toHaveLength(1);
    await s.clock.advance(10);
    expect(s.fired.at(-1)).toEqual({ owner: 'shop/web', at: at + offset });
  });

  it('arms one task per PrePull with its expression and zone, and again only when they change', () => {
    const s = setup();
    const a = schedule('shop/a', '0 2 * * *', 300, 'Europe/Berlin');
    const b = schedule('shop/b', '0 * * * *');
    s.schedules.set([a, b]);
    expect(s.armed.map((t) => t.cron)).toEqual([
      { expression: '0 2 * * *', timeZone: 'Europe/Berlin' },
      { expression: '0 * * * *' },
    ]);
    const before = [...s.armed];
    s.schedules.set([{ ...a }, { ...b }]);
    expect(s.armed[0]).toBe(before[0]);
    expect(s.armed[1]).toBe(before[1]);
    // A new zone, a new window: each armed again; the old tasks are stopped.
    s.schedules.set([
      { ...a, cron: { expression: '0 2 * * *', timeZone: 'UTC' } },
      { ...b, jitterSeconds: 60 },
    ]);
    expect(s.armed.map((t) => t.cron)).toEqual([
      { expression: '0 2 * * *', timeZone: 'UTC' },
      { expression: '0 * * * *' },
    ]);
    expect(s.armed).not.toContain(before[0]);
    expect(s.armed).not.toContain(before[1]);
    s.schedules.set([]);
    expect(s.armed).toEqual([]);
    const armedLog = s.logs.map((l) => JSON.parse(l) as Record<string, unknown>)[0];
    expect(armedLog).toMatchObject({
      msg: 'schedule armed',
      prePull: 'shop/a',
      schedule: '0 2 * * *',
      timeZone: 'Europe/Berlin',
      offsetSeconds: Math.floor(spreadFraction('worker-1', 'shop/a') * 300),
    });
  });

  it('keeps a firing due under a schedule that changed while it waited, and drops it when the PrePull goes', async () => {
    const s = setup();
    s.schedules.set([schedule('shop/web', '0 * * * *')]);
    const offset = Math.floor(spreadFraction('worker-1', 'shop/web') * 300_000);
    const start = s.clock.now();
    s.tick('0 * * * *');
    expect(s.schedules.waiting).toBe(1);
    s.schedules.set([schedule('shop/web', '30 * * * *')]);
    await s.clock.advance(offset);
    expect(s.fired).toEqual([{ owner: 'shop/web', at: start + offset }]);

    s.tick('30 * * * *');
    expect(s.schedules.waiting).toBe(1);
    s.schedules.set([]);
    expect(s.schedules.waiting).toBe(0);
    await s.clock.advance(3_600_000);
    expect(s.fired).toHaveLength(1);
  });

  it('drops the waiting firings at stop, and arms nothing after it', async () => {
    const s = setup();
    s.schedules.set([schedule('shop/web', '0 * * * *')]);
    s.tick('0 * * * *');
    s.schedules.stop();
    expect(s.armed).toEqual([]);
    expect(s.schedules.waiting).toBe(0);
    await s.clock.advance(3_600_000);
    expect(s.fired).toEqual([]);
    s.schedules.set([schedule('shop/web', '0 * * * *')]);
    expect(s.armed).toEqual([]);
  });

  it('puts the same node at the same offset after a restart, and another node elsewhere', async () => {
    const firstAt = async (node: string): Promise<number> => {
      const s = setup(node);
      s.schedules.set([schedule('shop/web', '0 * * * *')]);
      const start = s.clock.now();
      s.tick('0 * * * *');
      await s.clock.next();
      return s.fired[0]!.at - start;
    };
    expect(await firstAt('worker-1')).toBe(await firstAt('worker-1'));
    expect(await firstAt('worker-2')).not.toBe(await firstAt('worker-1'));
  });
});
