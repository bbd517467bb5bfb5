// What a benchmark is and the helpers they share. Each `bench/*.bench.ts` default-exports a
// Benchmark; `bench/run.ts` runs them, writes bench/results.json and regenerates
// docs/performance.md. Figures are ratios against a baseline measured in the same run wherever a
// baseline exists, from alternated runs (A B A B …), reported as median, min and max.
import { execFileSync } from 'node:child_process';
import { ContainerdNative } from '../src/runtime/containerd/native.ts';
import { GrpcConnection } from '../src/runtime/cri/grpc.ts';
import type { KubeletCri } from '../test/harness/cri.ts';
import { type BuiltImage, buildImage, fileLayer, fillerLayer } from '../test/harness/images.ts';
import type { Harness, HarnessOptions } from '../test/harness/index.ts';

export interface Goal {
  /** How the measured median must compare with `value` to meet the goal. */
  op: '<=' | '>=' | '==';
  value: number;
  /** Where the goal comes from, e.g. "issue 5". */
  source: string;
}

export interface Figure {
  /** Stable id, e.g. "registry.resolve500.seconds". */
  id: string;
  /** What is measured, for a person. */
  label: string;
  unit: string;
  median: number;
  min: number;
  max: number;
  /** Number of samples behind median/min/max. */
  samples: number;
  /** What the figure is compared with, when it is a ratio ("raw CRI PullImage of the same image"). */
  baseline?: string;
  goal?: Goal;
  note?: string;
  /** A short label for the chart (docs/performance.svg); `label` is used when absent. */
  chart?: string;
  /**
   * The pool the figure's run-to-run noise is measured in, with its benchmark (bench/report.ts):
   * its unit unless it is named, for a figure whose noise has another source than the
   * benchmark's other figures of that unit.
   */
  noiseGroup?: string;
  /** The samples behind median/min/max, in the figure's unit (results.json only). */
  values?: number[];
}

export interface BenchContext {
  /** `npm run bench -- --quick`: fewer repetitions and smaller inputs; CI runs this. */
  quick: boolean;
  log(line: string): void;
  /** A harness for this benchmark alone, started on first call and stopped by the runner. */
  harness(options?: HarnessOptions): Promise<Harness>;
  /** Versions of the components used, recorded in results.json (e.g. { containerd: "1.6.20" }). */
  recordEnvironment(key: string, value: string): void;
}

export interface Benchmark {
  name: string;
  /** The table it appears in, e.g. "Registry", "Runtime". */
  area: string;
  /** How it is measured, for the doc: setup, what is timed, the baseline, repetitions. */
  method: string;
  run(ctx: BenchContext): Promise<Figure[]>;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  samples: number;
  values: number[];
}

/** Median, min and max of the samples, which are kept (in their order) for results.json. */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) throw new Error('no samples');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return {
    median,
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    samples: sorted.length,
    values: [...values],
  };
}

/** summarize() of millisecond samples, in seconds. */
export function seconds(ms: readonly number[]): Summary {
  return summarize(ms.map((v) => v / 1000));
}

/** Per-round ratios a[i] ÷ b[i] of two sample lists taken in the same rounds. */
export function ratios(a: readonly number[], b: readonly number[]): number[] {
  if (a.length !== b.length) throw new Error(`${a.length} samples against ${b.length}`);
  return a.map((x, i) => x / b[i]!);
}

/**
 * Runs every arm once per round, `rounds` times, timing each (wall-clock ms). The order is
 * rotated every round (A B C, B C A, C A B, …; with two arms A B, B A, …), so no arm always runs
 * first or right after the same neighbour. `prepare` runs untimed before each run (e.g. remove
 * the image). Returns each arm's samples, round by round, so per-round ratios pair them up.
 */
export async function interleave<K extends string>(
  rounds: number,
  arms: Readonly<Record<K, () => Promise<void>>>,
  prepare: (arm: K) => Promise<void> = () => Promise.resolve(),
): Promise<Record<K, number[]>> {
  const names = Object.keys(arms) as K[];
  const samples = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length]!;
      await prepare(name);
      samples[name].push(await timed(arms[name]));
    }
  }
  return samples;
}

/**
 * Runs `a` and `b` alternately (A B A B …) `rounds` times and returns both sample lists and the
 * per-round ratios a/b. `prepare` runs before each single run, untimed (e.g. remove the image).
 */
export async function alternate(
  rounds: number,
  a: () => Promise<void>,
  b: () => Promise<void>,
  prepare: () => Promise<void> = () => Promise.resolve(),
): Promise<{ a: number[]; b: number[]; ratios: number[] }> {
  const result = { a: [] as number[], b: [] as number[], ratios: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    await prepare();
    const ta = await timed(a);
    await prepare();
    const tb = await timed(b);
    result.a.push(ta);
    result.b.push(tb);
    result.ratios.push(ta / tb);
  }
  return result;
}

/** Wall-clock milliseconds of one call. */
export async function timed(fn: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

export function meets(figure: Figure): boolean | undefined {
  const goal = figure.goal;
  if (goal === undefined) return undefined;
  if (goal.op === '<=') return figure.median <= goal.value;
  if (goal.op === '>=') return figure.median >= goal.value;
  return figure.median === goal.value;
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function pool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * The pull benchmarks' image: a marker layer and six incompressible filler layers of
 * `layerBytes` each (~315 MB at 50 MiB), distinct per `seed` so no earlier pull left its blobs.
 */
export function layeredImage(seed: string, layerBytes: number): BuiltImage {
  return buildImage({
    layers: [
      fileLayer({ '/bench/marker': seed }),
      ...Array.from({ length: 6 }, (_, i) =>
        fillerLayer({ bytes: layerBytes, seed: `${seed}-${i}` }),
      ),
    ],
  });
}

/**
 * Flushes dirty pages (`sync`) and lets the machine settle for a moment: the writeback of one
 * pull's unpacking must not land in the next pull's time. `sync` blocks until it is written.
 */
export async function flushPages(settleMs = 100): Promise<void> {
  execFileSync('sync');
  await new Promise((resolve) => setTimeout(resolve, settleMs));
}

/**
 * Removes images from containerd through CRI and waits until its content store holds none of
 * their blobs and its snapshots are back to the baseline count, then flushes dirty pages: the
 * next pull downloads and unpacks everything, on a quiet disk.
 */
export class CriCleaner {
  private readonly socket: string;
  private readonly connection: GrpcConnection;
  private readonly native: ContainerdNative;
  private baselineSnapshots = 0;
  /** How long to let the disk settle after flushing, ms. */
  private readonly settleMs: number;

  constructor(socket: string, options: { settleMs?: number } = {}) {
    this.socket = socket;
    this.settleMs = options.settleMs ?? 100;
    this.connection = new GrpcConnection(socket);
    this.native = new ContainerdNative({ connection: this.connection });
  }

  /** Remembers the snapshot count with none of the benchmark's images present. */
  markBaseline(): void {
    this.baselineSnapshots = this.snapshots();
  }

  async remove(
    cri: KubeletCri,
    refs: readonly string[],
    blobs: ReadonlySet<string>,
    timeoutMs = 60_000,
  ): Promise<void> {
    for (const ref of refs) await cri.removeImage(ref);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const held = (await this.native.listContent()).filter((d) => blobs.has(d));
      if (held.length === 0 && this.snapshots() <= this.baselineSnapshots) break;
      if (Date.now() > deadline)
        throw new Error(`containerd still holds ${held.length} blobs of the images after removal`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await flushPages(this.settleMs);
  }

  close(): void {
    this.connection.close();
  }

  private snapshots(): number {
    return execFileSync(
      'ctr',
      ['--address', this.socket, '--namespace', 'k8s.io', 'snapshots', 'ls'],
      { encoding: 'utf8' },
    )
      .trim()
      .split('\n').length;
  }
}

/** Every blob of `images` (manifests, configs, layers). */
export function blobsOf(images: readonly BuiltImage[]): Set<string> {
  const blobs = new Set<string>();
  for (const image of images) {
    blobs.add(image.digest);
    blobs.add(image.configDigest);
    for (const layer of image.layers) blobs.add(layer.digest);
  }
  return blobs;
}
