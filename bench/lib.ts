// What a benchmark is and the helpers they share. Each `bench/*.bench.ts` default-exports a
// Benchmark; `bench/run.ts` runs them, writes bench/results.json and regenerates
// docs/performance.md. Figures are ratios against a baseline measured in the same run wherever a
// baseline exists, from alternated runs (A B A B …), reported as median, min and max.
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

export function summarize(values: readonly number[]): {
  median: number;
  min: number;
  max: number;
  samples: number;
} {
  if (values.length === 0) throw new Error('no samples');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, samples: sorted.length };
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
