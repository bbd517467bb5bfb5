import { describe, expect, it } from '@jest/globals';
import { cronScheduler, lazyScheduler } from './cron.ts';
import type { Scheduler } from './types.ts';

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
    schedule(expression, onTick) {
      const id = next++;
      tasks.set(id, { expression, onTick });
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
    const stopA = scheduler.schedule('0 * * * *', () => ticks.push('a'));
    const stopB = scheduler.schedule('30 2 * * *', () => ticks.push('b'));
    expect(real.loads()).toBe(1);
    expect(real.scheduled()).toEqual([]);
    await real.finish();
    expect(real.scheduled()).toEqual(['0 * * * *', '30 2 * * *']);
    real.tick('0 * * * *');
    expect(ticks).toEqual(['a']);

    // After the load: scheduled at once, stopped at once.
    const stopC = scheduler.schedule('*/5 * * * *', () => ticks.push('c'));
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
    const stopped = scheduler.schedule('0 * * * *', () => undefined);
    scheduler.schedule('15 * * * *', () => undefined);
    stopped();
    await real.finish();
    expect(real.scheduled()).toEqual(['15 * * * *']);
  });
});

describe('cronScheduler', () => {
  it('runs node-cron tasks once it has loaded it, and stops them', async () => {
    let ticks = 0;
    const stop = cronScheduler.schedule('* * * * * *', () => ticks++);
    const deadline = Date.now() + 3000;
    while (ticks === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stop();
    expect(ticks).toBeGreaterThan(0);
    const after = ticks;
    await new Promise((r) => setTimeout(r, 1200));
    expect(ticks).toBe(after);
  });
});
