// The engine's scheduled checks: each PrePull's schedule, fired at this node's offset in its
// window, checks that PrePull's images.
import { describe, expect, it } from '@jest/globals';
import { spreadFraction } from './schedules.ts';
import { World, pick, prePull } from './testing/world.ts';

const HOUR = 3_600_000;
const offsetOf = (node: string, owner: string, jitterSeconds = 300): number =>
  Math.floor(spreadFraction(node, owner) * jitterSeconds * 1000);

async function started(w: World, ...prePulls: Parameters<World['engine']['setPrePulls']>[0]) {
  w.publish('r.io/shop/web:1', 1);
  w.publish('r.io/shop/db:1', 2);
  w.engine.setPrePulls(prePulls);
  await w.engine.start();
  await w.settle();
}

describe('Engine schedules', () => {
  it('asks the registry at the scheduled time plus this node’s offset, not before, once', async () => {
    const w = new World({ nodeName: 'worker-7' });
    await started(
      w,
      prePull('web', { images: [{ image: 'r.io/shop/web:1' }], schedule: '0 * * * *' }),
    );
    expect(w.tasks.map((t) => t.cron)).toEqual([{ expression: '0 * * * *' }]);
    const offset = offsetOf('worker-7', 'shop/web');
    const resolves = w.resolves.length;
    await w.clock.advance(HOUR);
    const at = w.clock.now();
    w.tick('0 * * * *', HOUR);
    await w.clock.advance(offset - 1);
    expect(w.resolves).toHaveLength(resolves);
    w.publish('r.io/shop/web:1', 7);
    await w.clock.advance(1);
    const reports = await w.settle();
    expect(w.resolvedAt.slice(resolves)).toEqual([at + offset]);
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({
      state: 'Stale',
      registryDigest: w.tags.get('r.io/shop/web:1'),
    });
  });

  it('checks an image two PrePulls want at each one’s own offset', async () => {
    const w = new World();
    const image = [{ image: 'r.io/shop/web:1' }];
    await started(
      w,
      prePull('a', { images: image, schedule: '0 * * * *' }),
      prePull('b', { images: image, schedule: '0 * * * *', timeZone: 'Asia/Kolkata' }),
    );
    expect(w.tasks.map((t) => t.cron)).toEqual([
      { expression: '0 * * * *' },
      { expression: '0 * * * *', timeZone: 'Asia/Kolkata' },
    ]);
    const resolves = w.resolves.length;
    await w.clock.advance(HOUR);
    const at = w.clock.now();
    w.tick('0 * * * *', HOUR);
    await w.settle();
    await w.clock.advance(HOUR - 1);
    await w.settle();
    const offsets = [offsetOf('worker-1', 'shop/a'), offsetOf('worker-1', 'shop/b')];
    expect(offsets[0]).not.toBe(offsets[1]);
    expect(w.resolvedAt.slice(resolves)).toEqual(offsets.sort((x, y) => x - y).map((o) => at + o));
  });

  it('arms a changed schedule, and does not check the images for the edit alone', async () => {
    const w = new World();
    const spec = { images: [{ image: 'r.io/shop/web:1' }], scheduleJitterSeconds: 0 };
    await started(w, prePull('web', { ...spec, schedule: '0 * * * *' }));
    const resolves = w.resolves.length;
    await w.clock.advance(HOUR);
    w.engine.setPrePulls([prePull('web', { ...spec, schedule: '*/5 * * * *' })]);
    await w.settle();
    expect(w.tasks.map((t) => t.cron.expression)).toEqual(['*/5 * * * *']);
    expect(w.resolves).toHaveLength(resolves);
    w.tick('*/5 * * * *');
    await w.settle();
    expect(w.resolves).toHaveLength(resolves + 1);
  });

  it('drops a firing still waiting when its PrePull is deleted or stops selecting the node', async () => {
    const w = new World();
    const web = prePull('web', { images: [{ image: 'r.io/shop/web:1' }], schedule: '0 * * * *' });
    const db = prePull('db', {
      images: [{ image: 'r.io/shop/db:1' }],
      schedule: '0 * * * *',
      nodeSelector: { role: 'worker' },
    });
    await started(w, web, db);
    const resolves = w.resolves.length;
    await w.clock.advance(HOUR);
    w.tick('0 * * * *', HOUR);
    w.engine.setPrePulls([db]);
    w.engine.setLabels({ role: 'gone' });
    await w.clock.advance(HOUR);
    await w.settle();
    expect(w.resolves).toHaveLength(resolves);
    expect(w.tasks).toEqual([]);
  });

  it('gives a failed image fresh attempts at its PrePull’s offset', async () => {
    const w = new World();
    w.runtime.setRegistryReachable('r.io', false);
    await started(
      w,
      prePull('web', {
        images: [{ image: 'r.io/shop/web:1' }],
        schedule: '0 * * * *',
        backoffLimit: 0,
      }),
    );
    expect(pick(w.engine.reports(), 'r.io/shop/web:1')).toMatchObject({ state: 'Failed' });
    w.runtime.setRegistryReachable('r.io', true);
    await w.clock.advance(HOUR);
    const at = w.clock.now();
    w.tick('0 * * * *', HOUR);
    await w.clock.advance(offsetOf('worker-1', 'shop/web') - 1);
    expect(pick(w.engine.reports(), 'r.io/shop/web:1')).toMatchObject({ state: 'Failed' });
    expect(w.calls('pull')).toHaveLength(1);
    await w.clock.advance(1);
    const reports = await w.settle();
    expect(pick(reports, 'r.io/shop/web:1')).toMatchObject({ state: 'Present', attempts: 0 });
    expect(w.calls('pull')).toHaveLength(2);
    expect(w.clock.now()).toBeGreaterThanOrEqual(at + offsetOf('worker-1', 'shop/web'));
  });
});
