// Steady state of a long-running `prepull sync` (issue 6): with containerd's deletion events
// available and no schedule, a settled node costs no runtime calls at all. Measured from the
// process's own /metrics over fixed windows; then one image is deleted behind its back to show
// the event stream is live (the zero is not a dead watch).
import { join } from 'node:path';
import { pollUntil } from '../src/testing/poll.ts';
import { KubeletCri } from '../test/harness/cri.ts';
import { type Benchmark, type Figure, summarize } from './lib.ts';
import {
  SyncDaemon,
  cliBuild,
  parseMetric,
  pullAll,
  pushSmallImages,
  runtimeCalls,
  scrape,
  sleep,
  syncArgs,
  total,
  writePrePulls,
} from './sync-support.ts';

const IMAGES = 20;
/** Images deleted behind prepull's back, one after another, to time their return (--quick: 3). */
const REPAIRS = 9;

function registryRequests(text: string): number {
  return parseMetric(text, 'prepull_registry_requests_total').reduce((sum, s) => sum + s.value, 0);
}

function successfulPulls(text: string): number {
  return parseMetric(text, 'prepull_pulls_total')
    .filter((s) => s.labels.result === 'success')
    .reduce((sum, s) => sum + s.value, 0);
}

const benchmark: Benchmark = {
  name: 'sync-steady',
  area: 'Sync',
  method:
    `Pushes ${IMAGES} distinct small images and pulls them through CRI, untimed, then runs ` +
    '`node bin/prepull.js sync` without --once (one PrePull naming them, the defaults: verify ' +
    'Registry, pin, no schedule) with `--metrics-address`, against containerd 1.6, whose ' +
    'deletion events prepull subscribes to. Once it prints its first report (every image ' +
    'Present, verified and pinned) and 2 s more have passed, `/metrics` is scraped at the start ' +
    'and end of each of 3 windows of 8 s (24 s in all); each window gives runtime calls per ' +
    'minute (every `prepull_runtime_calls_total` series) and registry requests per minute ' +
    `(\`prepull_registry_requests_total\`). Afterwards ${REPAIRS} of the images are removed ` +
    'through CRI by another client, one after another, and the time until prepull has pulled each back ' +
    '(CRI ImageStatus, polled every 20 ms, finds it again and ' +
    '`prepull_pulls_total{result="success"}` has grown) shows the event stream was ' +
    'live during the windows; the median of the repairs is the figure. --quick: 2 windows of 5 s, ' +
    '3 repairs.',
  async run(ctx) {
    const windows = ctx.quick ? 2 : 3;
    const windowMs = ctx.quick ? 5_000 : 8_000;
    const repairs = ctx.quick ? 3 : REPAIRS;
    ctx.recordEnvironment('prepull CLI', cliBuild());
    const harness = await ctx.harness({ registries: ['plain'], docker: false });
    const info = harness.info;
    const plain = info.registries.plain!;

    const { refs } = await pushSmallImages(plain, 'bench/steady', IMAGES);
    const cri = new KubeletCri(info.containerd!.socket);
    const file = writePrePulls(join(info.workDir, 'steady.yaml'), 'steady', refs);
    let daemon: SyncDaemon | undefined;
    try {
      await pullAll(cri, refs);
      daemon = SyncDaemon.start(syncArgs(info, [file]));
      const url = await daemon.metricsUrl();
      await daemon.settled(IMAGES + 1);
      await sleep(2000);

      const runtimePerMinute: number[] = [];
      const registryPerMinute: number[] = [];
      let before = await scrape(url);
      const settledCalls = runtimeCalls(before);
      for (let w = 0; w < windows; w++) {
        const start = performance.now();
        await sleep(windowMs);
        const after = await scrape(url);
        const minutes = (performance.now() - start) / 60_000;
        runtimePerMinute.push((total(runtimeCalls(after)) - total(runtimeCalls(before))) / minutes);
        registryPerMinute.push((registryRequests(after) - registryRequests(before)) / minutes);
        before = after;
      }

      // The zero must come from a live event stream: delete an image and time its return; several
      // images in turn, so the figure has a spread and a steadier median.
      const repairSeconds: number[] = [];
      for (const victim of refs.slice(0, repairs)) {
        const pullsBefore = successfulPulls(await scrape(url));
        const removed = performance.now();
        await cri.removeImage(victim);
        await pollUntil(
          `${victim} pulled back`,
          async () =>
            (await cri.imageStatus(victim)) !== undefined &&
            successfulPulls(await scrape(url)) > pullsBefore,
          { timeoutMs: 30_000, intervalMs: 20 },
        );
        repairSeconds.push((performance.now() - removed) / 1000);
      }

      const span = `${windows} × ${windowMs / 1000} s`;
      const calls = Object.entries(settledCalls)
        .map(([op, n]) => `${op} ${n}`)
        .join(', ');
      const figures: Figure[] = [
        {
          id: 'sync.steady.runtimeCallsPerMinute',
          label: `runtime calls per minute, settled, ${IMAGES} images, events on, no schedule`,
          unit: 'calls/min',
          ...summarize(runtimePerMinute),
          goal: { op: '==', value: 0, source: 'issue 6' },
          note: `per window of ${span}; calls made up to settling: ${calls}`,
        },
        {
          id: 'sync.steady.registryRequestsPerMinute',
          label: 'registry requests per minute, same windows',
          unit: 'requests/min',
          ...summarize(registryPerMinute),
        },
        {
          id: 'sync.steady.repairSeconds',
          label: 'an image deleted by another client: back after',
          unit: 's',
          ...summarize(repairSeconds),
          note: 'proves the deletion-event stream was live while no calls were made',
        },
      ];
      return figures;
    } finally {
      await daemon?.stop();
      cri.close();
    }
  },
};

export default benchmark;
