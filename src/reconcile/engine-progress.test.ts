// The progress of pulls in flight, on the in-memory runtime and a manual clock: kept on the
// image's report while it is Pulling, published at most once a second however often the runtime
// calls back, logged every 10 s of a long pull, summed in prepull_pull_bytes_in_flight, and gone
// once the pull ends.
import { describe, expect, it } from '@jest/globals';
import type { ImageReport } from '../image/report.ts';
import { World, pick, prePull } from './testing/world.ts';

const REF = 'r.io/shop/big:1';
/** 300 MB at the world's 10 MB per simulated second: a 30 s pull, reported every 50 ms. */
const SIZE = 300_000_000;

/** Moves simulated time, then lets the engine's coalesced publications run. */
async function run(w: World, ms: number): Promise<void> {
  await w.clock.advance(ms);
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

async function gauge(w: World): Promise<number> {
  const text = await w.metrics.render();
  const line = text.split('\n').find((l) => l.startsWith('prepull_pull_bytes_in_flight '));
  return Number(line?.split(' ')[1]);
}

function logged(w: World, msg: string): Record<string, unknown>[] {
  return w.logs
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === msg);
}

describe('Engine pull progress', () => {
  it('reports the bytes of a pull in flight, published at most once a second, then drops them', async () => {
    const w = new World();
    w.publish(REF, 1, SIZE);
    const published: ImageReport[] = [];
    w.engine.onChange((reports) => {
      const report = pick(reports, REF);
      if (report !== undefined) published.push(report);
    });
    let callbacks = 0;
    const pull = w.runtime.pull.bind(w.runtime);
    w.runtime.pull = (ref, options) =>
      pull(ref, {
        ...options,
        onProgress: (p) => {
          callbacks++;
          options.onProgress?.(p);
        },
      });
    w.engine.setPrePulls([prePull('shop', { images: [{ image: REF }] })]);
    await w.engine.start();

    for (let t = 0; t < 12_000; t += 250) await run(w, 250);
    const now = pick(w.engine.reports(), REF);
    expect(now?.state).toBe('Pulling');
    // At most a second behind the runtime's figure (12 s in, 100 ms of latency: 119 MB).
    expect(now?.progress?.totalBytes).toBe(SIZE);
    expect(now?.progress?.bytes).toBeLessThanOrEqual(119_000_000);
    expect(now?.progress?.bytes).toBeGreaterThanOrEqual(109_000_000);
    const inFlight = await gauge(w);
    expect(inFlight).toBeGreaterThanOrEqual(109_000_000);
    expect(inFlight).toBeLessThanOrEqual(119_000_000);

    const reports = await w.settle();
    const done = pick(reports, REF);
    expect(done?.state).toBe('Present');
    expect(done?.progress).toBeUndefined();
    expect(await gauge(w)).toBe(0);

    const figures = published.flatMap((r) => (r.progress === undefined ? [] : [r.progress.bytes]));
    // The runtime called back about 600 times; listeners heard of it about once a second.
    expect(callbacks).toBeGreaterThan(500);
    expect(figures.length).toBeGreaterThanOrEqual(25);
    expect(figures.length).toBeLessThanOrEqual(32);
    expect(figures).toEqual([...figures].sort((a, b) => a - b));
    expect(new Set(figures).size).toBe(figures.length);
    // Only a Pulling report carries it.
    expect(published.filter((r) => r.progress !== undefined && r.state !== 'Pulling')).toEqual([]);
  });

  it('logs a long pull every 10 s with structured fields', async () => {
    const w = new World();
    w.publish(REF, 1, SIZE);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: REF }] })]);
    await w.engine.start();
    await w.settle();
    const lines = logged(w, 'pull progress');
    expect(lines.map((l) => [l.image, l.elapsedMs, l.totalBytes, l.level])).toEqual([
      [REF, 10_000, SIZE, 'info'],
      [REF, 20_000, SIZE, 'info'],
      [REF, 30_000, SIZE, 'info'],
    ]);
    // 100 ms of latency before the first byte, then 10 MB a second.
    expect(lines.map((l) => l.bytes)).toEqual([99_000_000, 199_000_000, 299_000_000]);
  });

  it('a short pull is not logged; a runtime without progress reports none and counts nothing', async () => {
    const short = new World();
    short.publish(REF, 1, 5_000_000);
    short.engine.setPrePulls([prePull('shop', { images: [{ image: REF }] })]);
    await short.engine.start();
    await short.settle();
    expect(logged(short, 'pull progress')).toEqual([]);

    const w = new World({ progress: false });
    w.publish(REF, 1, SIZE);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: REF }] })]);
    await w.engine.start();
    await run(w, 12_000);
    const now = pick(w.engine.reports(), REF);
    expect(now?.state).toBe('Pulling');
    expect(now).not.toHaveProperty('progress');
    expect(await gauge(w)).toBe(0);
    await w.settle();
    expect(logged(w, 'pull progress')).toEqual([]);
  });

  it('an aborted pull takes its bytes out of the gauge', async () => {
    const w = new World();
    w.publish(REF, 1, SIZE);
    w.engine.setPrePulls([prePull('shop', { images: [{ image: REF }] })]);
    await w.engine.start();
    await run(w, 5_000);
    expect(await gauge(w)).toBeGreaterThan(0);
    await w.engine.stop();
    await run(w, 0);
    expect(await gauge(w)).toBe(0);
  });
});
