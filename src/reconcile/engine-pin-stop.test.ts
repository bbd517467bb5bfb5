// The engine's pins and its ends, on the simulated world of testing/world.ts: a runtime that cannot
// pin, refuses a pin or does not show it; stop() aborting a pull; drain's grace for pulls in flight.
import { describe, expect, it } from '@jest/globals';
import { PrepullError, isPrepullError } from '../errors.ts';
import { World, pick, prePull } from './testing/world.ts';

describe('Engine', () => {
  it('reports an image the runtime cannot pin as unpinned, without retrying the pin', async () => {
    const w = new World({ pin: false });
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ state: 'Present', pinned: false });
    expect(w.calls('pin')).toEqual([]);
  });

  it('reports an image as the runtime sees it when the runtime refuses the pin, and pins again only after a new pull', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([
      prePull('shop', {
        images: [{ image: 'r.io/shop/web:1' }],
        schedule: '0 * * * *',
        scheduleJitterSeconds: 0,
      }),
    ]);
    const pin = w.runtime.pin.bind(w.runtime);
    const pins: string[] = [];
    let refuse = true;
    w.runtime.pin = (ref) => {
      pins.push(ref);
      if (refuse) {
        return Promise.reject(
          new PrepullError('ERR_RUNTIME_FAILED', 'pinning is switched off on this node'),
        );
      }
      return pin(ref);
    };
    await w.engine.start();
    let reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({
      state: 'Present',
      reason: 'Verified',
      pinned: false,
    });
    expect(pins).toEqual(['r.io/shop/web:1']);
    const logged = w.logs.filter((line) => line.includes('could not pin'));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('pinning is switched off on this node');
    // A scheduled check decides again, but the refused pin is not asked again.
    await w.clock.advance(3_600_000);
    w.tick('0 * * * *');
    reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ state: 'Present', pinned: false });
    expect(pins).toHaveLength(1);
    // Pulled again (removed behind its back), the image is pinned afresh.
    refuse = false;
    w.runtime.removeBehindBack('r.io/shop/web:1');
    for (let i = 0; i < 50; i++) await Promise.resolve();
    reports = await w.settle();
    expect(w.calls('pull')).toHaveLength(2);
    expect(pins).toEqual(['r.io/shop/web:1', 'r.io/shop/web:1']);
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ state: 'Present', pinned: true });
  });

  it('reports an image unpinned when the pin succeeds but the runtime still shows it unpinned', async () => {
    const w = new World();
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    const pins: string[] = [];
    w.runtime.pin = (ref) => {
      pins.push(ref); // accepted, yet nothing changes on the node
      return Promise.resolve();
    };
    await w.engine.start();
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ state: 'Present', pinned: false });
    expect(pins).toEqual(['r.io/shop/web:1']);
    expect(w.calls('imageStatus')).toEqual(['r.io/shop/web:1']); // read back once, not retried
    const logged = w.logs.filter((line) => line.includes('could not pin'));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('the runtime still reports the image unpinned after pinning it');
  });

  it('stops promptly, aborting a pull in flight', async () => {
    const w = new World({ pullLatencyMs: 60_000 });
    w.publish('r.io/shop/web:1', 1);
    const outcomes: string[] = [];
    const pull = w.runtime.pull.bind(w.runtime);
    w.runtime.pull = async (ref, options) => {
      try {
        const image = await pull(ref, options);
        outcomes.push('pulled');
        return image;
      } catch (error) {
        outcomes.push(isPrepullError(error) ? error.code : String(error));
        throw error;
      }
    };
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    for (let i = 0; i < 20; i++) await Promise.resolve();
    expect(w.engine.reports()[0]?.state).toBe('Pulling');
    const before = w.clock.now();
    let stopped = false;
    const stopping = w.engine.stop().then(() => (stopped = true));
    // Without the clock moving, the pull can only end by being aborted: stop() does not wait it out.
    await new Promise((r) => setImmediate(r));
    expect(stopped).toBe(true);
    expect(w.clock.now()).toBe(before);
    expect(outcomes).toEqual(['ERR_ABORTED']);
    // Past the pull's latency, the aborted pull lands nothing and no pull starts again.
    await w.clock.advance(120_000);
    await stopping;
    expect(outcomes).toEqual(['ERR_ABORTED']);
    expect(w.runtime.snapshot()).toEqual([]);
    expect(w.calls('pull')).toEqual(['r.io/shop/web:1']);
  });

  it('drains: lets a pull in flight finish, and does not start one that waited for a slot', async () => {
    const w = new World({ pullConcurrency: 1, pullLatencyMs: 1_000 });
    w.publish('r.io/shop/a:1', 1);
    w.publish('r.io/shop/b:1', 2);
    w.engine.setPrePulls([
      prePull('shop', { images: [{ image: 'r.io/shop/a:1' }, { image: 'r.io/shop/b:1' }] }),
    ]);
    await w.engine.start();
    for (let i = 0; i < 20; i++) await Promise.resolve();
    expect(w.calls('pull')).toHaveLength(1); // the other waits for the one slot
    // A box, so the loop sees the assignment made in the callback.
    const progress = { drained: false };
    const draining = w.engine.drain(60_000).then(() => (progress.drained = true));
    for (let i = 0; i < 30 && !progress.drained; i++) {
      await w.clock.advance(100);
      await new Promise((r) => setImmediate(r));
    }
    await draining;
    expect(w.clock.now()).toBeLessThan(1_000_000 + 60_000); // ended with the pull, not the grace
    expect(w.calls('pull')).toHaveLength(1);
    expect(w.runtime.snapshot()).toHaveLength(1);
  });

  it('drains for no longer than the grace period, then aborts the pull in flight', async () => {
    const w = new World({ pullLatencyMs: 60_000 });
    w.publish('r.io/shop/web:1', 1);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: 'r.io/shop/web:1' }] })]);
    await w.engine.start();
    for (let i = 0; i < 20; i++) await Promise.resolve();
    expect(w.engine.reports()[0]?.state).toBe('Pulling');
    let drained = false;
    const draining = w.engine.drain(5_000).then(() => (drained = true));
    await w.clock.advance(4_000);
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(false);
    await w.clock.advance(1_000);
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(true);
    await draining;
    await w.clock.advance(120_000);
    expect(w.runtime.snapshot()).toEqual([]);
  });

  it('ends a deletion watch that only becomes live after stop (a signal during start-up)', async () => {
    const w = new World();
    let live!: () => void;
    const subscribing = new Promise<void>((resolve) => (live = resolve));
    let ended = 0;
    w.runtime.watchDeletions = async () => {
      await subscribing;
      return () => {
        ended++;
      };
    };
    const starting = w.engine.start();
    for (let i = 0; i < 20; i++) await Promise.resolve(); // start() now waits for the watch
    await w.engine.stop();
    live();
    await starting;
    // Left running, the subscription's stream would keep `sync --once` from exiting.
    expect(ended).toBe(1);
  });
});
