// Resident memory of a long-running `prepull sync` tracking 500 images (issue 6), against a bare
// Node process as the floor (issue 8), and a `sync` tracking a single image to separate the fixed
// cost from the per-image one. RSS is read from /proc/<pid>/status once the process has settled.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { KubeletCri } from '../test/harness/cri.ts';
import { type Benchmark, type Figure, summarize } from './lib.ts';
import {
  SyncDaemon,
  cliBuild,
  expectAllPresent,
  pullAll,
  pushSmallImages,
  rssMiB,
  runSync,
  scrape,
  sleep,
  syncArgs,
  writePrePulls,
} from './sync-support.ts';

const SAMPLES = 5;
const SAMPLE_INTERVAL_MS = 500;

/** The median of a few VmRSS readings, taken after `settleMs` of quiet. */
async function settledRss(pid: number, settleMs: number): Promise<number> {
  await sleep(settleMs);
  const readings: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    if (i > 0) await sleep(SAMPLE_INTERVAL_MS);
    readings.push(rssMiB(pid));
  }
  return summarize(readings).median;
}

const benchmark: Benchmark = {
  name: 'sync-memory',
  area: 'Sync',
  method:
    'Loads 500 distinct small images into containerd through CRI, untimed (as for sync-startup), ' +
    'and pins them with one untimed `sync --once`. Each round then starts three fresh ' +
    'processes together and measures each: `node bin/prepull.js sync` without --once tracking the ' +
    '500 images (two PrePulls with the defaults: verify Registry, pin) plus the sandbox image, ' +
    'with `--metrics-address`; the same tracking a single image; and a bare Node process ' +
    "(`node -e 'setInterval(()=>{},1000)'`, the same Node binary) as the baseline. A `sync` " +
    'counts from its first report (every image Present, verified and pinned), after which ' +
    '`/metrics` is scraped once, as Prometheus would; then, for every process, 5 s of quiet for ' +
    'the garbage collector to settle and 5 readings of VmRSS from /proc/<pid>/status 0.5 s ' +
    'apart, whose median is the sample. The three share the machine at the same moment, and ' +
    "with this much free memory a process's RSS does not depend on its neighbours (as in " +
    'agent-memory). The ratio is per round against the bare process of the same round. `sync` runs as shipped — the bundle in dist/, started by bin/prepull.js with ' +
    'the settings it gives every long-running command: glibc malloc with one arena and blocks ' +
    'of 8 KiB or more mapped on their own (the launcher re-executes itself with ' +
    'MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ set), WebAssembly left on V8’s baseline ' +
    'compiler, and one memory-reducing collection 2 s after the images stop changing ' +
    '(docs/adr/0005-bundled-cli.md); no flag changes V8’s heap limits, and the bare process ' +
    'gets none of these. 2 rounds; --quick: 50 images, 3 s of quiet, 1 round.',
  async run(ctx) {
    const count = ctx.quick ? 50 : 500;
    const rounds = ctx.quick ? 1 : 2;
    const settleMs = ctx.quick ? 3_000 : 5_000;
    ctx.recordEnvironment('prepull CLI', cliBuild());
    const harness = await ctx.harness({ registries: ['plain'], docker: false });
    const info = harness.info;
    const plain = info.registries.plain!;

    const { refs } = await pushSmallImages(plain, 'bench/memory', count);
    const cri = new KubeletCri(info.containerd!.socket);
    try {
      await cri.pullImage(info.containerd!.sandboxImage);
      await pullAll(cri, refs);
    } finally {
      cri.close();
    }
    const many = writePrePulls(join(info.workDir, 'memory-many.yaml'), 'memory', refs);
    const one = writePrePulls(join(info.workDir, 'memory-one.yaml'), 'memory', refs.slice(0, 1));
    expectAllPresent(
      await runSync([...syncArgs(info, [many]), '--once', '--output', 'json']),
      count + 1,
    );

    const viaSync = (file: string, expected: number) => async (): Promise<number> => {
      const daemon = SyncDaemon.start(syncArgs(info, [file]));
      try {
        const url = await daemon.metricsUrl();
        await daemon.settled(expected);
        await scrape(url);
        return await settledRss(daemon.pid, settleMs);
      } finally {
        await daemon.stop();
      }
    };
    const bare = async (): Promise<number> => {
      const child: ChildProcess = spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], {
        stdio: 'ignore',
      });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      try {
        return await settledRss(child.pid!, settleMs);
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
    };
    const manyRss: number[] = [];
    const oneRss: number[] = [];
    const bareRss: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const [m, o, b] = await Promise.all([viaSync(many, count + 1)(), viaSync(one, 2)(), bare()]);
      manyRss.push(m);
      oneRss.push(o);
      bareRss.push(b);
    }

    const quickNote = ctx.quick ? 'quick mode: 50 images, not 500' : undefined;
    const figures: Figure[] = [
      {
        id: 'sync.memory.many.rssMiB',
        label: `RSS of \`sync\` tracking ${count} images, settled`,
        unit: 'MiB',
        ...summarize(manyRss),
        goal: { op: '<=', value: 80, source: 'issue 6' },
        ...(quickNote !== undefined ? { note: quickNote } : {}),
      },
      {
        id: 'sync.memory.many.ratio',
        label: `RSS of \`sync\` tracking ${count} images ÷ bare Node process`,
        unit: '×',
        ...summarize(manyRss.map((rss, i) => rss / bareRss[i]!)),
        baseline: "bare Node 24 process (`node -e 'setInterval(()=>{},1000)'`), same round",
      },
      {
        id: 'sync.memory.one.rssMiB',
        label: 'RSS of `sync` tracking 1 image, settled',
        unit: 'MiB',
        ...summarize(oneRss),
      },
      {
        id: 'sync.memory.bare.rssMiB',
        label: 'RSS of a bare Node 24 process',
        unit: 'MiB',
        ...summarize(bareRss),
      },
    ];
    return figures;
  },
};

export default benchmark;
