// Start-up of `prepull sync` on a node that already holds every required image (issue 6): 500
// images present and pinned, as after a restart. Timed as `sync --once` from spawn to exit, with
// verification off and on; the runtime list calls are counted on a long-running instance's
// /metrics.
import { join } from 'node:path';
import { KubeletCri } from '../test/harness/cri.ts';
import { type Benchmark, type Figure, alternate, summarize } from './lib.ts';
import {
  SyncDaemon,
  cliBuild,
  expectAllPresent,
  pullAll,
  pushSmallImages,
  runSync,
  runtimeCalls,
  scrape,
  syncArgs,
  total,
  writePrePulls,
} from './sync-support.ts';

/** Calls counted once every image is Present: the list, and what else start-up needed. */
async function countCalls(
  args: readonly string[],
  expected: number,
): Promise<Record<string, number>> {
  const daemon = SyncDaemon.start(args);
  try {
    const url = await daemon.metricsUrl();
    await daemon.settled(expected);
    return runtimeCalls(await scrape(url));
  } finally {
    await daemon.stop();
  }
}

function describe(calls: Record<string, number>): string {
  return Object.entries(calls)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([op, n]) => `${op} ${n}`)
    .join(', ');
}

const benchmark: Benchmark = {
  name: 'sync-startup',
  area: 'Sync',
  method:
    'Pushes 500 distinct small images (one shared 1 MiB layer, a distinct config each, so ' +
    'containerd holds 500 images with their own IDs, tags and repo digests) to the harness ' +
    'plain-HTTP registry and pulls them all through CRI, untimed; the sandbox image too. One ' +
    'untimed `sync --once` then pins them, as a previous run of prepull would have (its time is ' +
    'shown, one sample). Each round then times `node bin/prepull.js sync --once --output json` ' +
    'as a subprocess, from spawn to exit, with the 500 images in two PrePulls (256 at most ' +
    'each), once with `verify: None` and once with the default `verify: Registry` (500 HEADs to ' +
    'the registry, 16 at a time at most per registry), alternated; every run must report all 501 ' +
    'images (500 and the sandbox image) Present. The list calls are counted separately: a ' +
    'long-running `sync` (no --once) with `--metrics-address` is scraped once it prints its ' +
    'first report, and `prepull_runtime_calls_total{operation="list"}` must be 1 (one CRI ' +
    'ListImages plus one containerd Images/List of pinned names); the other calls it made are ' +
    'listed. 3 rounds; --quick: 50 images, 2 rounds.',
  async run(ctx) {
    const count = ctx.quick ? 50 : 500;
    const rounds = ctx.quick ? 2 : 3;
    ctx.recordEnvironment('prepull CLI', cliBuild());
    const harness = await ctx.harness({ registries: ['plain'], docker: false });
    const info = harness.info;
    const plain = info.registries.plain!;

    const loadStart = performance.now();
    const { refs } = await pushSmallImages(plain, 'bench/startup', count);
    const cri = new KubeletCri(info.containerd!.socket);
    try {
      await cri.pullImage(info.containerd!.sandboxImage);
      await pullAll(cri, refs);
      const listed = (await cri.listImages()).length;
      if (listed < count + 1)
        throw new Error(`containerd lists ${listed} images, expected ${count + 1}`);
    } finally {
      cri.close();
    }
    ctx.log(
      `${count} images in containerd in ${((performance.now() - loadStart) / 1000).toFixed(1)} s`,
    );

    const none = writePrePulls(join(info.workDir, 'startup-none.yaml'), 'startup', refs, {
      verify: 'None',
    });
    const registry = writePrePulls(join(info.workDir, 'startup-registry.yaml'), 'startup', refs);
    const once = async (file: string): Promise<number> => {
      const run = await runSync([...syncArgs(info, [file]), '--once', '--output', 'json']);
      expectAllPresent(run, count + 1);
      return run.ms;
    };

    const firstMs = await once(registry); // pins all of them
    const samples = await alternate(
      rounds,
      async () => {
        await once(none);
      },
      async () => {
        await once(registry);
      },
    );
    const callsNone = await countCalls(syncArgs(info, [none]), count + 1);
    const callsRegistry = await countCalls(syncArgs(info, [registry]), count + 1);
    const lists = [callsNone.list ?? 0, callsRegistry.list ?? 0];

    const seconds = (values: number[]): ReturnType<typeof summarize> =>
      summarize(values.map((ms) => ms / 1000));
    const what = `${count} images present and pinned`;
    const quickNote = ctx.quick ? '; quick mode: 50 images, not 500' : '';
    const figures: Figure[] = [
      {
        id: 'sync.startup.verifyNone.seconds',
        label: `start-up, ${what}, verify None: \`sync --once\` spawn to exit`,
        unit: 's',
        ...seconds(samples.a),
        goal: { op: '<=', value: 2, source: 'issue 6' },
        ...(ctx.quick ? { note: 'quick mode: 50 images, not 500' } : {}),
      },
      {
        id: 'sync.startup.verifyRegistry.seconds',
        label: `start-up, ${what}, verify Registry: \`sync --once\` spawn to exit`,
        unit: 's',
        ...seconds(samples.b),
        goal: { op: '<=', value: 2, source: 'issue 6' },
        note: `includes a registry HEAD per image${quickNote}`,
      },
      {
        id: 'sync.startup.listCalls',
        label: 'runtime list calls until every image is Present',
        unit: 'calls',
        ...summarize(lists),
        goal: { op: '==', value: 1, source: 'issue 6' },
        note:
          `prepull_runtime_calls_total by operation — verify None: ${describe(callsNone)} ` +
          `(${total(callsNone)} in all); verify Registry: ${describe(callsRegistry)} ` +
          `(${total(callsRegistry)} in all)`,
      },
      {
        id: 'sync.startup.firstRun.seconds',
        label: `first \`sync --once\` with ${count} images present, unpinned (pins each)`,
        unit: 's',
        ...seconds([firstMs]),
      },
    ];
    return figures;
  },
};

export default benchmark;
