// Pull retries and the registry's Retry-After: the runtime never passes the header on, so after a
// pull fails on a 429 (or 5xx) the engine asks the registry once itself and holds the next
// attempt until the time the registry named when that is later than the backoff; without a
// Retry-After, and for failures that are not the registry's answer, the backoff alone decides.
import { describe, expect, it } from '@jest/globals';
import { PrepullError } from '../errors.ts';
import { World, pick, prePull } from './testing/world.ts';

const IMAGE = 'r.io/shop/web:1';

/** Simulated times at which the runtime was asked to pull IMAGE. */
function pullTimes(w: World): number[] {
  const times: number[] = [];
  const pull = w.runtime.pull.bind(w.runtime);
  w.runtime.pull = (ref, options) => {
    times.push(w.clock.now());
    return pull(ref, options);
  };
  return times;
}

describe('Engine pull retries after a registry answer', () => {
  it('holds the next attempt until the Retry-After a 429 named (60 s, not the 2 s backoff)', async () => {
    const w = new World();
    w.publish(IMAGE, 1);
    const start = w.clock.now();
    w.runtime.failOn(
      IMAGE,
      new PrepullError('ERR_REGISTRY_RATE_LIMITED', '429 Too Many Requests'),
      {
        times: 1,
      },
    );
    w.rateLimitedUntil.set(IMAGE, start + 60_000);
    const times = pullTimes(w);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: IMAGE }], verify: 'None' })]);
    await w.engine.start();
    const reports = await w.settle();
    expect(pick(reports, IMAGE)).toMatchObject({ state: 'Present' });
    expect(times).toHaveLength(2);
    expect((times[1] ?? 0) - start).toBeGreaterThanOrEqual(60_000);
    // The probe was one request, made once.
    expect(w.resolves).toEqual([IMAGE]);
    expect(w.logs.join('')).toMatch(/"retryAfterMs":60000/);
  });

  it('keeps the backoff when the registry named no wait', async () => {
    const w = new World();
    w.publish(IMAGE, 1);
    const start = w.clock.now();
    w.runtime.failOn(
      IMAGE,
      new PrepullError('ERR_REGISTRY_RATE_LIMITED', '429 Too Many Requests'),
      {
        times: 1,
      },
    );
    const times = pullTimes(w);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: IMAGE }], verify: 'None' })]);
    await w.engine.start();
    await w.settle();
    expect(times).toHaveLength(2);
    expect((times[1] ?? 0) - start).toBeLessThan(10_000);
  });

  it('does not ask the registry after a failure that is not its answer', async () => {
    const w = new World();
    w.publish(IMAGE, 1);
    w.runtime.failOn(IMAGE, new PrepullError('ERR_IMAGE_NOT_FOUND', 'not found'), { times: 1 });
    w.rateLimitedUntil.set(IMAGE, w.clock.now() + 60_000);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: IMAGE }], verify: 'None' })]);
    await w.engine.start();
    await w.settle();
    expect(w.resolves).toEqual([]);
  });
});
