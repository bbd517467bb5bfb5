// The node's runtime stopping mid-run (issue 21): no attempt is counted while it does not answer,
// the engine waits (prepull_runtime_up 0, a log line a minute), and its return resumes every
// pending image within one probe interval. On a manual clock, with the in-memory runtime.
import { describe, expect, it } from '@jest/globals';
import { RUNTIME_PROBE_MAX_MS } from './outage.ts';
import { World, pick, prePull } from './testing/world.ts';

const WEB = 'r.io/shop/web:1';
const DB = 'r.io/shop/db:2';
const GONE = 'r.io/shop/gone:1';
const MINUTE = 60_000;

/** Lets the engine's promises and coalesced reports run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise((r) => setImmediate(r));
}

/** Runs the simulated clock forward by `ms`, a second at a time. */
async function runFor(w: World, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 1000) {
    await w.clock.advance(Math.min(1000, ms - t));
    await flush();
  }
}

/** Runs the clock until `done` holds (a second at a time); returns how long that took. */
async function runUntil(w: World, done: () => boolean, limitMs = 10 * MINUTE): Promise<number> {
  const start = w.clock.now();
  while (!done()) {
    if (w.clock.now() - start > limitMs) throw new Error('condition not reached');
    await w.clock.advance(1000);
    await flush();
  }
  return w.clock.now() - start;
}

const lines = (w: World, text: string): number => w.logs.filter((l) => l.includes(text)).length;

/** A World pulling WEB slowly (5 s), with backoffLimit 1: two failed attempts would fail it. */
async function pullingWhenRuntimeStops(
  options: { waitForRuntime?: boolean; events?: boolean } = {},
): Promise<World> {
  const w = new World({ pullLatencyMs: 5_000, ...options });
  w.publish(WEB, 1);
  w.engine.setPrePulls([prePull('shop', { images: [{ image: WEB }], backoffLimit: 1 })]);
  await w.engine.start();
  await runFor(w, 1000);
  expect(pick(w.engine.reports(), WEB)).toMatchObject({ state: 'Pulling' });
  w.runtime.stop();
  return w;
}

describe('Engine, when the runtime stops answering', () => {
  it('counts no attempt through a 5-minute outage and pulls within one probe interval of the return', async () => {
    // No deletion events: only the probe can notice the return.
    const w = await pullingWhenRuntimeStops({ events: false });
    await runFor(w, 5 * MINUTE);
    expect(w.engine.waitingForRuntime).toBe(true);
    expect(pick(w.engine.reports(), WEB)).toMatchObject({
      state: 'Missing',
      reason: 'RuntimeUnavailable',
      code: 'ERR_RUNTIME_UNAVAILABLE',
      attempts: 0,
    });
    // Only the pull the outage interrupted: none was started while the runtime was away.
    expect(w.calls('pull')).toEqual([WEB]);

    w.runtime.start();
    const noticed = await runUntil(w, () => !w.engine.waitingForRuntime);
    expect(noticed).toBeLessThanOrEqual(RUNTIME_PROBE_MAX_MS);
    const reports = await w.settle();
    expect(pick(reports, WEB)).toMatchObject({ state: 'Present', attempts: 0 });
    expect(w.calls('pull')).toEqual([WEB, WEB]);
  });

  it('notices the return at once when the runtime event stream is re-established', async () => {
    const w = await pullingWhenRuntimeStops();
    await runFor(w, 5 * MINUTE);
    expect(w.engine.waitingForRuntime).toBe(true);
    const before = w.clock.now();
    w.runtime.start(); // the fake's watchers hear a gap, as a re-subscription reports
    await flush();
    expect(w.engine.waitingForRuntime).toBe(false);
    expect(w.clock.now()).toBe(before);
    const reports = await w.settle();
    expect(pick(reports, WEB)).toMatchObject({ state: 'Present', attempts: 0 });
  });

  it('as sync --once (waitForRuntime false), still counts the attempts and fails the image', async () => {
    const w = await pullingWhenRuntimeStops({ waitForRuntime: false });
    await runFor(w, 5 * MINUTE);
    expect(w.engine.waitingForRuntime).toBe(false);
    expect(pick(w.engine.reports(), WEB)).toMatchObject({ state: 'Failed', attempts: 2 });
  });

  it('leaves images that failed for their own reasons Failed, and re-lists what the node kept or lost', async () => {
    const w = new World({ pullLatencyMs: 5_000 });
    w.publish(WEB, 1);
    w.publish(DB, 2);
    w.holdPulled(DB, 2);
    w.engine.setPrePulls([
      prePull('shop', { images: [{ image: WEB }, { image: DB }, { image: GONE }] }),
    ]);
    await w.engine.start();
    await runFor(w, 1000);
    // GONE is not in the registry: not found gives up at once, the image's own failure.
    expect(pick(w.engine.reports(), GONE)).toMatchObject({ state: 'Failed', attempts: 1 });
    expect(pick(w.engine.reports(), DB)).toMatchObject({ state: 'Present' });
    w.runtime.stop();
    await runFor(w, 2 * MINUTE);
    // Present stays Present while the runtime is away (kubelet cannot use it either way).
    expect(pick(w.engine.reports(), DB)).toMatchObject({ state: 'Present' });
    expect(pick(w.engine.reports(), WEB)).toMatchObject({ reason: 'RuntimeUnavailable' });
    // The runtime comes back without DB (a wiped image store): the re-list sees it gone.
    w.runtime.start();
    w.runtime.removeBehindBack(DB);
    const reports = await w.settle();
    expect(pick(reports, WEB)).toMatchObject({ state: 'Present', attempts: 0 });
    expect(pick(reports, DB)).toMatchObject({ state: 'Present', attempts: 0 });
    expect(pick(reports, GONE)).toMatchObject({ state: 'Failed', attempts: 1 });
    expect(w.calls('pull').filter((ref) => ref === GONE)).toHaveLength(1);
  });

  it('says so once, then once a minute, with prepull_runtime_up following', async () => {
    const w = await pullingWhenRuntimeStops();
    await runFor(w, 1000);
    expect(await w.metrics.render()).toContain('prepull_runtime_up 0');
    expect(lines(w, 'the container runtime does not answer')).toBe(1);
    expect(lines(w, 'pull failed')).toBe(0);
    await runFor(w, 5 * MINUTE + 5000);
    // Probes at 1, 3, 7 s, then every 5 s: a line at 62, 122, 182, 242 and 302 s.
    expect(lines(w, 'still waiting for the container runtime')).toBe(5);
    expect(lines(w, 'the container runtime does not answer')).toBe(1);
    w.runtime.start();
    await runUntil(w, () => !w.engine.waitingForRuntime);
    expect(lines(w, 'the container runtime answers again')).toBe(1);
    expect(await w.metrics.render()).toContain('prepull_runtime_up 1');
  });

  it('does not fail a pin the runtime could not answer: it pins once the runtime is back', async () => {
    const w = new World();
    w.publish(WEB, 1);
    w.holdPulled(WEB, 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: WEB }] })]);
    // Started while up (as the commands do), stopped before the first pin.
    await w.engine.start();
    w.runtime.stop();
    await runFor(w, MINUTE);
    expect(w.engine.waitingForRuntime).toBe(true);
    expect(pick(w.engine.reports(), WEB)).toMatchObject({ state: 'Present', pinned: false });
    w.runtime.start();
    await runUntil(w, () => !w.engine.waitingForRuntime);
    const reports = await w.settle();
    expect(pick(reports, WEB)).toMatchObject({ state: 'Present', pinned: true });
  });

  it('reports an image added while the runtime is away as waiting for it, at once', async () => {
    const w = new World();
    w.publish(WEB, 1);
    w.publish(DB, 2);
    w.holdPulled(WEB, 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: WEB }] })]);
    await w.engine.start();
    await w.settle();
    // No event stream noticed the stop: the new image's first reading is what finds it.
    w.runtime.stop();
    w.engine.setPrePulls([prePull('shop', { images: [{ image: WEB }, { image: DB }] })]);
    await runFor(w, 2000);
    expect(w.engine.waitingForRuntime).toBe(true);
    expect(pick(w.engine.reports(), DB)).toMatchObject({
      state: 'Missing',
      reason: 'RuntimeUnavailable',
      code: 'ERR_RUNTIME_UNAVAILABLE',
      attempts: 0,
    });
    expect(pick(w.engine.reports(), WEB)).toMatchObject({ state: 'Present' });
    w.runtime.start();
    const reports = await w.settle();
    expect(pick(reports, DB)).toMatchObject({ state: 'Present', attempts: 0 });
  });
});
