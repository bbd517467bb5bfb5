// `prepull sync --once` for one ~300 MB image against a raw CRI PullImage of it (issue 6): the
// whole command as a user runs it — Node start-up, module loading, runtime detection, the list,
// the event subscription, the pull, verification, pinning, the report — against the runtime floor.
import { join } from 'node:path';
import { KubeletCri } from '../test/harness/cri.ts';
import { clearLayerCache } from '../test/harness/images.ts';
import { pushImage } from '../test/harness/index.ts';
import {
  type Benchmark,
  CriCleaner,
  type Figure,
  blobsOf,
  layeredImage,
  ratios,
  summarize,
  timed,
} from './lib.ts';
import {
  buildCriPull,
  cliBuild,
  expectAllPresent,
  logLines,
  rotate,
  runNode,
  runSync,
  syncArgs,
  writePrePulls,
} from './sync-support.ts';

const MiB = 1024 * 1024;
const PULL_TIMEOUT_MS = 600_000;

const benchmark: Benchmark = {
  name: 'sync-pull',
  area: 'Sync',
  method:
    'Builds one image of 7 layers (a marker file and six 50 MiB incompressible fillers, ~315 MB) ' +
    'and pushes it to the harness plain-HTTP registry; containerd 1.6 with CRI pulls from it over ' +
    'loopback. A PrePull names the image with the defaults (IfNotPresent, verify Registry, pin). ' +
    'Each round times `node bin/prepull.js sync --once --output json` as a subprocess, from spawn ' +
    'to exit, and a raw CRI PullImage of the same image by the harness kubelet-like client (its ' +
    'gRPC connection already open, as kubelet’s is), and a third arm, the floor of any Node.js ' +
    'command: `bench/cri-pull.ts`, bundled as `npm run build` bundles the CLI, with Node’s ' +
    'compile cache on, which starts Node, loads gRPC, connects and sends one PullImage, nothing ' +
    'else. The three run in turn (A B C A B C …); each figure ' +
    'is the per-round ratio. The sync time is everything a user pays: Node start-up and module loading ' +
    '(included on purpose — every `sync` and every agent start pays it), runtime detection, ' +
    'one list, the deletion-event subscription, the pull, a registry HEAD to verify the tag, ' +
    'pinning, the report and shutdown. The runtime’s sandbox image, which `sync` also requires, ' +
    'is pulled and pinned before the first round and stays present, so both sides pull exactly ' +
    'one image (sync still verifies the sandbox image with one HEAD each run). Before every run ' +
    "the image is removed and the benchmark waits until containerd's content store holds none " +
    'of its blobs and its snapshots are gone, then flushes dirty pages (`sync`). One untimed ' +
    'warm-up of each arm first (for the two commands, it also leaves their code in Node’s ' +
    'compile cache in the temp directory, as any earlier run on the machine would). Also shown: the pull time prepull itself reports (PullImage ' +
    'plus its status read-back) against the same raw pull; the fixed cost around the pull (sync ' +
    'wall time minus that), and the part of it before the runtime first answers (spawn to the ' +
    "engine's `runtime` log line: Node start-up, module loading, runtime detection); and the CPU " +
    'time of the sync process (user + system, from the benchmark process’s reaped-children ' +
    'totals). 4 rounds; --quick: six 5 MiB fillers (~31 MB), 2 rounds.',
  async run(ctx) {
    const rounds = ctx.quick ? 2 : 4;
    const layerBytes = (ctx.quick ? 5 : 50) * MiB;
    ctx.recordEnvironment('prepull CLI', cliBuild());
    const harness = await ctx.harness({ registries: ['plain'], docker: false });
    const info = harness.info;
    const plain = info.registries.plain!;
    const socket = info.containerd!.socket;

    const seed = `sync-pull-${Date.now().toString(36)}`;
    const image = layeredImage(seed, layerBytes);
    const megabytes = image.size / 1e6;
    ctx.log(`pushing ${megabytes.toFixed(0)} MB in ${image.layers.length} layers`);
    await pushImage(plain, 'bench/sync-pull', 'v1', image);
    const ref = `${plain.host}/bench/sync-pull:v1`;
    const blobs = blobsOf([image]);
    clearLayerCache();

    const file = writePrePulls(join(info.workDir, 'sync-pull.yaml'), 'sync-pull', [ref]);
    const args = [...syncArgs(info, [file]), '--once', '--output', 'json'];
    const cri = new KubeletCri(socket);
    // Half a second for the disk to settle after each removal, as this benchmark always has.
    const collector = new CriCleaner(socket, { settleMs: 500 });
    try {
      const version = await cri.version();
      ctx.recordEnvironment(
        'containerd (CRI)',
        `${version.runtime_name} ${version.runtime_version}`,
      );
      await cri.pullImage(info.containerd!.sandboxImage);
      collector.markBaseline();
      const removeAndCollect = (): Promise<void> => collector.remove(cri, [ref], blobs);

      const reportedPullMs: number[] = [];
      const toRuntimeMs: number[] = [];
      const syncCpu: number[] = [];
      const viaSync = async (): Promise<void> => {
        const run = await runSync(args, PULL_TIMEOUT_MS);
        const runtime = logLines(run.stderr).find((l) => l.msg === 'runtime');
        if (runtime === undefined) throw new Error('sync logged no runtime line');
        toRuntimeMs.push(Date.parse(runtime.time) - run.spawnedAt);
        syncCpu.push(run.cpuSeconds);
        // The image and the sandbox image.
        const report = expectAllPresent(run, 2);
        const mine = report.images.find((i) => i.image === ref);
        if (mine?.imageId !== image.configDigest || mine.pullDurationMs === undefined) {
          throw new Error(`sync reported ${JSON.stringify(mine)} for ${ref}`);
        }
        reportedPullMs.push(mine.pullDurationMs);
      };
      const raw = async (): Promise<void> => {
        const id = await cri.pullImage(ref, undefined, PULL_TIMEOUT_MS);
        if (id !== image.configDigest) throw new Error(`raw CRI pulled ${id}`);
      };
      const floorCli = await buildCriPull(join(info.workDir, 'cri-pull'));
      const floor = async (): Promise<void> => {
        const run = await runNode([floorCli, `unix://${socket}`, ref], PULL_TIMEOUT_MS);
        if (run.code !== 0 || run.stdout.trim() !== image.configDigest)
          throw new Error(`bench/cri-pull.ts exited ${run.code}: ${run.stdout}${run.stderr}`);
      };

      // Warm-up: the registry, the page cache of the CLIs' modules and Node's compile cache of
      // them, the sandbox image's pin.
      for (const arm of [viaSync, raw, floor]) {
        await removeAndCollect();
        await arm();
      }
      for (const list of [reportedPullMs, toRuntimeMs, syncCpu]) list.length = 0;
      const [syncMs, rawMs, floorMs] = (await rotate(
        rounds,
        [viaSync, raw, floor].map((arm) => () => timed(arm)),
        removeAndCollect,
      )) as [number[], number[], number[]];
      await removeAndCollect();

      const seconds = (values: number[]): ReturnType<typeof summarize> =>
        summarize(values.map((ms) => ms / 1000));
      const size = `${megabytes.toFixed(0)} MB`;
      const baseline = 'raw CRI PullImage of the same image (the harness KubeletCri), same run';
      const figures: Figure[] = [
        {
          id: 'sync.pull.ratio',
          label: `\`sync --once\` ÷ raw CRI PullImage, ${size}, 7 layers`,
          unit: '×',
          ...summarize(ratios(syncMs, rawMs)),
          baseline,
          note:
            'whole command, spawn to exit, against the pull alone: includes Node start-up and ' +
            'module loading (its goal of issue 6 is retired: see Retired goals)',
        },
        {
          id: 'sync.pull.seconds',
          label: `\`sync --once\` of ${size}, spawn to exit`,
          unit: 's',
          ...seconds(syncMs),
        },
        {
          id: 'sync.pull.raw.seconds',
          label: `raw CRI PullImage of ${size}`,
          unit: 's',
          ...seconds(rawMs),
        },
        {
          id: 'sync.pull.floorRatio',
          label: 'the least a Node.js command pays: bench/cri-pull.ts ÷ raw CRI PullImage',
          unit: '×',
          ...summarize(ratios(floorMs, rawMs)),
          baseline,
          note: 'start Node, load gRPC (bundled, compile cache on), connect, one PullImage, exit',
        },
        {
          id: 'sync.pull.vsFloor',
          label: '`sync --once` ÷ bench/cri-pull.ts (prepull’s own work over the Node floor)',
          unit: '×',
          ...summarize(ratios(syncMs, floorMs)),
          baseline: 'bench/cri-pull.ts, spawn to exit, same round',
          goal: { op: '<=', value: 1.1, source: 'issue 15' },
        },
        {
          id: 'sync.pull.floorSeconds',
          label: `bench/cri-pull.ts of ${size}, spawn to exit`,
          unit: 's',
          ...seconds(floorMs),
        },
        {
          id: 'sync.pull.reportedRatio',
          label: 'pull time sync reports ÷ raw CRI PullImage',
          unit: '×',
          ...summarize(ratios(reportedPullMs, rawMs)),
          baseline,
          note: "the engine's own pull duration (PullImage and its status read-back)",
        },
        {
          id: 'sync.pull.fixedSeconds',
          label: '`sync --once` time around the pull (wall time − reported pull time)',
          unit: 's',
          ...seconds(syncMs.map((ms, i) => ms - reportedPullMs[i]!)),
        },
        {
          id: 'sync.pull.toRuntimeSeconds',
          label: '… of which spawn to the runtime’s first answer (start-up, loading, detection)',
          unit: 's',
          ...seconds(toRuntimeMs),
          note: "to the engine's `runtime` log line, after CRI Version and Status",
        },
        {
          id: 'sync.pull.cpuSeconds',
          label: 'CPU time of the `sync --once` process',
          unit: 's',
          ...summarize(syncCpu),
          note: 'user + system, from the reaped-children totals of the benchmark process',
        },
      ];
      return figures;
    } finally {
      cri.close();
      collector.close();
    }
  },
};

export default benchmark;
