// Stalled pulls and queued images, on the in-memory runtime and a manual clock: a pull whose bytes
// stop advancing is aborted at exactly the stall timeout (ERR_PULL_STALLED, an attempt that backs
// off), its slot serving the next image; a slow pull that advances is never aborted; an image
// waiting for a slot says Queued; 0, or a runtime without progress, leaves only timeoutSeconds.
import { describe, expect, it } from '@jest/globals';
import type { ImageReport } from '../image/report.ts';
import { World, pick, prePull } from './testing/world.ts';

const HUNG_A = 'r.io/shop/hung-a:1';
const HUNG_B = 'r.io/shop/hung-b:1';
const HEALTHY = 'r.io/shop/small:1';
const STALL_MS = 120_000;

/** Every report change with the simulated time it was published at. */
function timeline(w: World): { at: number; report: ImageReport }[] {
  const seen: { at: number; report: ImageReport }[] = [];
  w.engine.onChange((reports) => {
    for (const report of reports) seen.push({ at: w.clock.now(), report });
  });
  return seen;
}

/** Moves simulated time, then lets the engine's coalesced publications run. */
async function run(w: World, ms: number): Promise<void> {
  await w.clock.advance(ms);
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

const first = (
  seen: { at: number; report: ImageReport }[],
  image: string,
  test: (r: ImageReport) => boolean,
): { at: number; report: ImageReport } | undefined =>
  seen.find((s) => s.report.image === image && test(s.report));

describe('Engine stall detection', () => {
  it('aborts two hung pulls at exactly the stall timeout; the freed slot serves the queued image', async () => {
    const w = new World({ pullConcurrency: 2 });
    const start = w.clock.now();
    w.publish(HUNG_A, 1, 50_000_000);
    w.publish(HUNG_B, 2, 50_000_000);
    w.publish(HEALTHY, 3, 1_000_000);
    w.runtime.hang(HUNG_A);
    w.runtime.hang(HUNG_B);
    const seen = timeline(w);
    w.engine.setPrePulls([
      prePull('shop', { images: [{ image: HUNG_A }, { image: HUNG_B }, { image: HEALTHY }] }),
    ]);
    await w.engine.start();
    await run(w, 0);

    const waiting = pick(w.engine.reports(), HEALTHY);
    expect(waiting).toMatchObject({ state: 'Missing', reason: 'Queued' });
    expect(waiting?.message).toMatch(/waiting for a pull slot: 2 pulls run at once/);

    await run(w, STALL_MS - 1);
    expect(pick(w.engine.reports(), HUNG_A)?.state).toBe('Pulling');
    expect(pick(w.engine.reports(), HEALTHY)?.reason).toBe('Queued');
    await run(w, 1);
    for (const ref of [HUNG_A, HUNG_B]) {
      const stalled = first(seen, ref, (r) => r.code === 'ERR_PULL_STALLED');
      expect(stalled?.at).toBe(start + STALL_MS);
      expect(stalled?.report).toMatchObject({ state: 'Missing', reason: 'BackOff', attempts: 1 });
      expect(stalled?.report.message).toMatch(/made no progress for 120s \(0 bytes so far\)/);
    }
    // 100 ms before the first byte, 1 MB at 10 MB/s: Present 200 ms after the slot came free.
    await run(w, 199);
    expect(pick(w.engine.reports(), HEALTHY)?.state).toBe('Pulling');
    await run(w, 1);
    const present = first(seen, HEALTHY, (r) => r.state === 'Present');
    expect(present?.at).toBe(start + STALL_MS + 200);

    // The hung ones keep backing off and stalling until their attempts are spent.
    const reports = await w.settle();
    for (const ref of [HUNG_A, HUNG_B]) {
      expect(pick(reports, ref)).toMatchObject({
        state: 'Failed',
        reason: 'PullFailed',
        code: 'ERR_PULL_STALLED',
        attempts: 7,
      });
    }
    expect(pick(reports, HEALTHY)?.state).toBe('Present');
    const text = await w.metrics.render();
    expect(text).toMatch(/prepull_pulls_total\{result="failure",code="ERR_PULL_STALLED"\} 14/);
  });

  it('measures the stall from the last byte: a pull that stops after 5 MB is aborted then', async () => {
    const w = new World({ pullConcurrency: 1, stallTimeoutMs: 10_000 });
    const start = w.clock.now();
    w.publish(HUNG_A, 1, 50_000_000);
    w.runtime.hang(HUNG_A, 5_000_000);
    const seen = timeline(w);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: HUNG_A }] })]);
    await w.engine.start();
    // 100 ms latency, then 5 MB at 10 MB/s: the last byte at 600 ms.
    await run(w, 10_599);
    expect(pick(w.engine.reports(), HUNG_A)).toMatchObject({ state: 'Pulling', attempts: 0 });
    await run(w, 1);
    const stalled = first(seen, HUNG_A, (r) => r.code === 'ERR_PULL_STALLED');
    expect(stalled?.at).toBe(start + 600 + 10_000);
    expect(stalled?.report.message).toMatch(/no progress for 10s \(5000000 bytes so far\)/);
    // Unhung, the retry after the backoff (2 s) lands it.
    w.runtime.unhang(HUNG_A);
    const reports = await w.settle();
    expect(pick(reports, HUNG_A)).toMatchObject({ state: 'Present', attempts: 0 });
  });

  it('never aborts a slow pull whose bytes keep advancing', async () => {
    // 300 MB at 10 MB/s: 30 s, with a stall timeout of 1 s.
    const w = new World({ stallTimeoutMs: 1000 });
    w.publish(HEALTHY, 1, 300_000_000);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: HEALTHY }] })]);
    await w.engine.start();
    const reports = await w.settle();
    expect(pick(reports, HEALTHY)).toMatchObject({ state: 'Present', attempts: 0 });
    expect(w.calls('pull')).toEqual([HEALTHY]);
  });

  it('0 disables it, and a runtime without progress leaves only timeoutSeconds', async () => {
    for (const w of [
      new World({ stallTimeoutMs: 0 }),
      new World({ progress: false, stallTimeoutMs: 10_000 }),
    ]) {
      const start = w.clock.now();
      w.publish(HUNG_A, 1, 50_000_000);
      w.runtime.hang(HUNG_A);
      const seen = timeline(w);
      w.engine.setPrePulls([
        prePull('shop', { images: [{ image: HUNG_A }], timeoutSeconds: 600, backoffLimit: 0 }),
      ]);
      await w.engine.start();
      await run(w, 599_999);
      expect(pick(w.engine.reports(), HUNG_A)?.state).toBe('Pulling');
      const reports = await w.settle();
      expect(pick(reports, HUNG_A)).toMatchObject({
        state: 'Failed',
        code: 'ERR_DEADLINE_EXCEEDED',
      });
      expect(first(seen, HUNG_A, (r) => r.state === 'Failed')?.at).toBe(start + 600_000);
      expect(seen.some((s) => s.report.code === 'ERR_PULL_STALLED')).toBe(false);
    }
  });

  it('a stale image waiting for a slot keeps its state and says Queued', async () => {
    const w = new World({ pullConcurrency: 1 });
    w.publish(HUNG_A, 1, 50_000_000);
    w.runtime.hang(HUNG_A);
    w.holdPulled(HEALTHY, 2);
    w.publish(HEALTHY, 3, 1_000_000);
    w.engine.setPrePulls([
      prePull('hung', { images: [{ image: HUNG_A }] }),
      prePull('always', { images: [{ image: HEALTHY }], pullPolicy: 'Always' }),
    ]);
    await w.engine.start();
    await run(w, 1000);
    const report = pick(w.engine.reports(), HEALTHY);
    expect(report).toMatchObject({ state: 'Stale', reason: 'Queued' });
    expect(report?.message).toMatch(
      /^waiting for a pull slot: 1 pull runs at once .*; the registry's digest is now/,
    );
    await run(w, STALL_MS);
    await run(w, 1000);
    expect(pick(w.engine.reports(), HEALTHY)).toMatchObject({
      state: 'Present',
      reason: 'Verified',
    });
  });
});
