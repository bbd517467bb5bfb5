// Pull concurrency of `prepull sync` (issues 6 and 8): 7 mixed images, some sharing layers,
// pulled by `sync --once` at --pull-concurrency 1, 2 and 4, in turn, each from an empty content
// store. The goal holds concurrency 2 against one at a time.
import { cpus } from 'node:os';
import { join } from 'node:path';
import { KubeletCri } from '../test/harness/cri.ts';
import {
  type BuiltImage,
  buildImage,
  clearLayerCache,
  fileLayer,
  fillerLayer,
} from '../test/harness/images.ts';
import { pushImage } from '../test/harness/index.ts';
import {
  type Benchmark,
  CriCleaner,
  type Figure,
  blobsOf,
  pool,
  ratios,
  summarize,
  timed,
} from './lib.ts';
import {
  cliBuild,
  cpuSeconds,
  expectAllPresent,
  logLines,
  pidOf,
  rotate,
  runSync,
  syncArgs,
  writePrePulls,
} from './sync-support.ts';

const MiB = 1024 * 1024;
const LEVELS = [1, 2, 4] as const;

/** Sizes in MiB of each image's own filler layers, and which shared layers it starts from. */
const SPECS: readonly { own: readonly number[]; base?: boolean; mid?: boolean }[] = [
  { own: [5] },
  { own: [10], base: true },
  { own: [30], base: true, mid: true },
  { own: [40, 40] },
  { own: [15], base: true, mid: true },
  { own: [12] },
  { own: [25], base: true },
];
const BASE_MIB = 20;
const MID_MIB = 10;

function buildImages(seed: string, scale: number): BuiltImage[] {
  const filler = (mib: number, name: string) =>
    fillerLayer({ bytes: Math.round(mib * scale * MiB), seed: `${seed}-${name}` });
  const base = filler(BASE_MIB, 'base');
  const mid = filler(MID_MIB, 'mid');
  return SPECS.map((spec, i) =>
    buildImage({
      layers: [
        ...(spec.base === true ? [base] : []),
        ...(spec.mid === true ? [mid] : []),
        fileLayer({ '/bench/marker': `${seed}-${i}` }),
        ...spec.own.map((mib, j) => filler(mib, `${i}-${j}`)),
      ],
    }),
  );
}

/**
 * The pull phase from sync's own log: the first image's Pulling line to the end of the last pull
 * (its Pulling time plus the duration it reports). Excludes process start-up and what follows.
 */
function pullPhaseMs(stderr: string): number {
  const started = new Map<string, number>();
  const ended = new Map<string, number>();
  for (const line of logLines(stderr)) {
    if (line.msg !== 'image state' || line.image === undefined) continue;
    const at = Date.parse(line.time);
    if (line.state === 'Pulling' && !started.has(line.image)) started.set(line.image, at);
    const start = started.get(line.image);
    if (line.state === 'Present' && line.durationMs !== undefined && start !== undefined)
      ended.set(line.image, start + line.durationMs);
  }
  if (started.size === 0 || ended.size !== started.size)
    throw new Error(`sync logged ${started.size} pulls starting and ${ended.size} ending`);
  return Math.max(...ended.values()) - Math.min(...started.values());
}

const benchmark: Benchmark = {
  name: 'sync-concurrency',
  area: 'Sync',
  method:
    'Seven images of mixed sizes (5, 31, 63, 84, 47, 13 and 47 MB; five share a 20 MiB base ' +
    'layer and two of those also a 10 MiB layer; 217 MB of distinct blobs, incompressible ' +
    'fillers) on the harness plain-HTTP registry, in one PrePull with the defaults (verify ' +
    'Registry, pin). Each round runs `node bin/prepull.js sync --once` as a subprocess at ' +
    '`--pull-concurrency` 1, 2 and 4, then, as the runtime’s own floor, the same seven CRI ' +
    'PullImage calls from the benchmark process (its gRPC connection open, in list order) one ' +
    'and two at a time, in turn (1 2 4 raw-1 raw-2 1 2 4 …), each timed from start to end; before ' +
    'each run the seven images are removed and the benchmark waits until containerd’s content ' +
    'store holds none of their blobs and their snapshots are gone, then flushes dirty pages. The ' +
    'sandbox image stays present and pinned. Figures are per-round ratios against concurrency 1 ' +
    'of the same round. Also shown: the same ratios over the pull phase alone (first Pulling to ' +
    'the end of the last pull, from sync’s log), without the fixed cost of starting the process, ' +
    'and how many CPUs containerd, the registry and the sync process kept busy on average over ' +
    'each run (their user + system CPU seconds from /proc, the sync process’s from this ' +
    'process’s reaped-children totals, ÷ the run’s wall time). With the registry on loopback ' +
    'there is no network latency for concurrency to hide: a pull costs CPU (digests, ' +
    'decompression, unpacking) and disk, and containerd already fetches up to 3 layers of one ' +
    'image at once (CRI `max_concurrent_downloads`, default 3), so one image at a time is not ' +
    'serial inside containerd; the machine’s CPU count caps what more concurrency can gain. ' +
    'One untimed warm-up run first. 3 rounds; --quick: every layer a tenth of the size, 1 round.',
  async run(ctx) {
    const rounds = ctx.quick ? 1 : 3;
    const scale = ctx.quick ? 0.1 : 1;
    ctx.recordEnvironment('prepull CLI', cliBuild());
    const harness = await ctx.harness({ registries: ['plain'], docker: false });
    const info = harness.info;
    const plain = info.registries.plain!;
    const socket = info.containerd!.socket;

    const seed = `sync-conc-${Date.now().toString(36)}`;
    const images = buildImages(seed, scale);
    const refs = images.map((_, i) => `${plain.host}/bench/mixed-${i}:v1`);
    // One image at a time: the shared layers land once before the images that reuse them.
    for (const [i, image] of images.entries())
      await pushImage(plain, `bench/mixed-${i}`, 'v1', image);
    const blobs = blobsOf(images);
    const distinctMB =
      [
        ...new Map(images.flatMap((im) => im.layers.map((l) => [l.digest, l.size]))).values(),
      ].reduce((a, b) => a + b, 0) / 1e6;
    const sizes = images.map((im) => (im.size / 1e6).toFixed(im.size < 1e7 ? 1 : 0));
    ctx.log(
      `pushed 7 images: ${sizes.join(', ')} MB; ${distinctMB.toFixed(0)} MB of distinct layers`,
    );
    clearLayerCache();

    const file = writePrePulls(join(info.workDir, 'sync-concurrency.yaml'), 'mixed', refs);
    const cri = new KubeletCri(socket);
    const cleaner = new CriCleaner(socket);
    try {
      await cri.pullImage(info.containerd!.sandboxImage);
      cleaner.markBaseline();
      const phases = LEVELS.map(() => [] as number[]);
      // CPU the daemons doing the work used per second of each run: pulls over loopback are
      // bound by CPU (digests, decompression, unpacking), which caps what concurrency can gain.
      const daemons = [
        pidOf(`${info.root}/containerd/config.toml`),
        pidOf(`${info.root}/registry/plain/config.yml`),
      ];
      const busy = LEVELS.map(() => [] as number[]);
      const daemonCpu = (): number => daemons.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
      const arm = (level: number, index: number) => async (): Promise<number> => {
        const cpuBefore = daemonCpu();
        const run = await runSync([
          ...syncArgs(info, [file]),
          '--once',
          '--output',
          'json',
          '--pull-concurrency',
          String(level),
        ]);
        expectAllPresent(run, refs.length + 1);
        phases[index]!.push(pullPhaseMs(run.stderr));
        busy[index]!.push((daemonCpu() - cpuBefore + run.cpuSeconds) / (run.ms / 1000));
        return run.ms;
      };
      // The runtime's own gain from concurrency, without prepull: the same seven PullImage calls
      // from this process (connection open), one at a time and two at a time, in list order.
      const raw = (level: number) => (): Promise<number> =>
        timed(() =>
          pool(refs, level, async (ref) => {
            await cri.pullImage(ref);
          }),
        );
      const arms = [...LEVELS.map((level, i) => arm(level, i)), raw(1), raw(2)];
      const prepare = (): Promise<void> => cleaner.remove(cri, refs, blobs);

      await prepare();
      await arms[1]!(); // warm-up: registry, page cache, the sandbox image's pin
      for (const list of [...phases, ...busy]) list.length = 0;
      const samples = await rotate(rounds, arms, prepare);
      await prepare();

      const [one, two, four, rawOne, rawTwo] = samples as [
        number[],
        number[],
        number[],
        number[],
        number[],
      ];
      const seconds = (values: number[]): ReturnType<typeof summarize> =>
        summarize(values.map((ms) => ms / 1000));
      const baseline = '`--pull-concurrency 1` in the same round';
      const what = `7 images, ${distinctMB.toFixed(0)} MB`;
      const figures: Figure[] = [
        {
          id: 'sync.concurrency.2vs1',
          label: `\`sync --once\`, ${what}: concurrency 2 ÷ concurrency 1`,
          unit: '×',
          ...summarize(ratios(two, one)),
          baseline,
          note: 'its goal of issue 6 is retired: see Retired goals',
        },
        {
          id: 'sync.concurrency.2vs1.overRuntime',
          label: 'concurrency 2 ÷ 1: prepull’s ratio − the runtime’s own ratio, same round',
          unit: 'ratio points',
          // Per round: what prepull's 2-at-a-time gains, against what the runtime alone gains
          // from the same seven pulls 2 at a time on this machine in that round.
          ...summarize(ratios(two, one).map((r, i) => r - ratios(rawTwo, rawOne)[i]!)),
          baseline: 'raw CRI PullImage of the 7 images, 2 at a time ÷ 1 at a time, same round',
          goal: { op: '<=', value: 0.05, source: 'issue 15' },
        },
        {
          id: 'sync.concurrency.4vs1',
          label: `\`sync --once\`, ${what}: concurrency 4 ÷ concurrency 1`,
          unit: '×',
          ...summarize(ratios(four, one)),
          baseline,
        },
        ...LEVELS.map((level, i) => ({
          id: `sync.concurrency.c${level}.seconds`,
          label: `\`sync --once\`, ${what}, concurrency ${level}, spawn to exit`,
          unit: 's',
          ...seconds(samples[i]!),
        })),
        {
          id: 'sync.concurrency.raw.2vs1',
          label: 'raw CRI PullImage of the 7 images, 2 at a time ÷ 1 at a time (no prepull)',
          unit: '×',
          ...summarize(ratios(rawTwo, rawOne)),
          baseline: 'the same PullImage calls one at a time, same round',
          note: "the runtime's own gain on this machine, with no prepull in the way",
        },
        ...[rawOne, rawTwo].map((values, i) => ({
          id: `sync.concurrency.raw.c${i + 1}.seconds`,
          label: `raw CRI PullImage of the 7 images, ${i + 1} at a time`,
          unit: 's',
          ...seconds(values),
        })),
        {
          id: 'sync.concurrency.pullPhase.2vs1',
          label: 'pull phase only: concurrency 2 ÷ concurrency 1',
          unit: '×',
          ...summarize(ratios(phases[1]!, phases[0]!)),
          baseline,
          note: 'first Pulling log line to the end of the last pull, from the sync log',
        },
        {
          id: 'sync.concurrency.pullPhase.4vs1',
          label: 'pull phase only: concurrency 4 ÷ concurrency 1',
          unit: '×',
          ...summarize(ratios(phases[2]!, phases[0]!)),
          baseline,
        },
        ...LEVELS.map((level, i) => ({
          id: `sync.concurrency.c${level}.daemonCpus`,
          label: `CPUs kept busy by containerd, the registry and prepull, concurrency ${level}`,
          unit: 'CPUs',
          ...summarize(busy[i]!),
          ...(i === 0
            ? {
                note:
                  `their CPU seconds (/proc) ÷ the run's wall time, spawn to exit; the machine ` +
                  `has ${cpus().length} CPUs`,
              }
            : {}),
        })),
      ];
      return figures;
    } finally {
      cri.close();
      cleaner.close();
    }
  },
};

export default benchmark;
