// Turns bench/results.json into docs/performance.md and the chart docs/performance.svg. Pure
// functions of the results: `node bench/run.ts --render` re-renders both without measuring.
import { COMMIT_COMPONENT, type CpuUse, type Environment, environmentRows } from './environment.ts';
import { type Figure, meets } from './lib.ts';

export interface ReportedFigure extends Figure {
  /** Whether the median meets the goal; absent when the figure has no goal. */
  verdict?: 'met' | 'missed';
}

export interface Outcome {
  name: string;
  area: string;
  method: string;
  /** Wall time of the benchmark, harness start and stop included. */
  seconds: number;
  /** How busy the machine was while it ran. */
  cpu?: CpuUse;
  figures: ReportedFigure[];
  error?: string;
}

export interface Results {
  generatedAt: string;
  quick: boolean;
  totalSeconds: number;
  /** What a full run may take on the machine (issue 8). */
  budgetSeconds: number;
  environment: Environment;
  benchmarks: Outcome[];
  /** The full run before this one on the machine, for the run-to-run comparison (issue 8). */
  previous?: PreviousRun;
  /**
   * The run-to-run noise of the machine, measured from bench/history.json by run.ts
   * (compareWithHistory), so that `--render` needs this file only.
   */
  noise?: RunNoise;
}

/** What a run keeps of a figure to compare the next run with. */
export type FigureSummary = Pick<
  Figure,
  'label' | 'unit' | 'median' | 'min' | 'max' | 'samples' | 'noiseGroup'
>;

/** The pool a figure's noise is measured in, with its benchmark: its noise group, or its unit. */
export function noisePool(f: Pick<Figure, 'unit' | 'noiseGroup'>): string {
  return f.noiseGroup ?? f.unit;
}

/** A figure as bench/history.json keeps it: its summary and the benchmark that measured it. */
export type HistoryFigure = FigureSummary & { benchmark: string };

/** One full run as bench/history.json keeps it; the file holds the last HISTORY_LENGTH. */
export interface HistoryRun {
  generatedAt: string;
  /** The commit measured (`git describe --dirty`), as the machine table shows it. */
  commit?: string;
  figures: Record<string, HistoryFigure>;
}

/** How many full runs bench/history.json keeps, oldest first. */
export const HISTORY_LENGTH = 24;

export interface PreviousRun {
  generatedAt: string;
  commit?: string;
  /**
   * Whether the two runs measured the same code: the commits differ at most in the published
   * results (bench/results.json, bench/history.json, docs/performance.*). Decided with git by
   * run.ts.
   */
  sameCode?: boolean;
  figures: Record<string, FigureSummary>;
}

/** What the next run (and bench/history.json) keeps of this one to compare itself with. */
export function summarizeRun(results: Results): HistoryRun {
  const figures: Record<string, HistoryFigure> = {};
  for (const outcome of results.benchmarks) {
    for (const f of outcome.figures) {
      const { label, unit, median, min, max, samples, noiseGroup } = f;
      figures[f.id] = {
        benchmark: outcome.name,
        label,
        unit,
        median,
        min,
        max,
        samples,
        ...(noiseGroup === undefined ? {} : { noiseGroup }),
      };
    }
  }
  const commit = results.environment.components[COMMIT_COMPONENT];
  return { generatedAt: results.generatedAt, ...(commit === undefined ? {} : { commit }), figures };
}

// ---- run-to-run noise ----------------------------------------------------------------------

/**
 * Whether two commits measured the same code (run.ts asks git: they differ at most in the
 * published results); undefined when that cannot be decided.
 */
export type SameCode = (
  before: string | undefined,
  after: string | undefined,
) => boolean | undefined;

/** A run named by when it ran and what it measured. */
export interface RunRef {
  generatedAt: string;
  commit?: string;
}

/** Two consecutive full runs; only a same-code pair measures noise. */
export interface RunPair {
  before: RunRef;
  after: RunRef;
  /** Absent when git could not say; such a pair is left out too. */
  sameCode?: boolean;
}

/**
 * The confidence the run-to-run noise is stated with (ADR 0010): a figure's median, measured
 * again on the same code, stays within its noise with this probability — where the pool's changes
 * follow the model `noiseBound` assumes. Over ~110 figures, about one pair of runs in nine should
 * show one figure beyond its noise.
 */
export const NOISE_CONFIDENCE = 0.999;

/**
 * The run-to-run noise of one benchmark's figures of one unit (or noise group). Changes are
 * |ln(after ÷ before)| of a median: ln 1.2 ≈ 0.18 is "within a factor of 1.2 either way".
 */
export interface PoolNoise {
  benchmark: string;
  /** The pool within the benchmark: a unit, or a figure's noise group (`noisePool`). */
  unit: string;
  /**
   * The bound a same-code change stays within with probability NOISE_CONFIDENCE
   * (`noiseBound`); 0 when every change seen was 0 (then only equal medians agree).
   */
  noise: number;
  /** The largest change seen. */
  largest: number;
  /** The sum of the changes that were not 0: the model's statistic. */
  sum: number;
  /** How many changes that were not 0 the pool holds (its figures over its pairs). */
  changes: number;
  /** How many same-code pairs measured a figure of the pool. */
  pairs: number;
}

/**
 * How well the model predicted the history itself: each same-code pair's changes judged by the
 * bound from the other same-code pairs (leave one pair out).
 */
export interface NoiseCheck {
  /** Changes that were not 0, in a pool the other pairs measured. */
  judged: number;
  /** Of those, how many went beyond the bound of the other pairs. */
  outside: number;
  /** How many the model expects beyond: judged × (1 − NOISE_CONFIDENCE). */
  expected: number;
}

export interface NoiseTable {
  /** Every consecutive pair of runs looked at, oldest first, same code or not. */
  pairs: RunPair[];
  /** By benchmark, then unit. No pool when no same-code pair measured it. */
  pools: PoolNoise[];
  /** Absent with fewer than two same-code pairs. */
  check?: NoiseCheck;
}

export interface RunNoise {
  /** From the pairs before this run, without this run's own: what this run is judged by. */
  judged: NoiseTable;
  /** With this run's pair too, over the history the next run will see: what it is judged by. */
  next: NoiseTable;
}

/**
 * How far a median moved, |ln(after ÷ before)|: 0 when equal, the same for a doubling and a
 * halving. Undefined when one of them is 0 or their signs differ: no relative size.
 */
export function logChange(before: number, after: number): number | undefined {
  if (before === after) return 0;
  if (before === 0 || after === 0 || Math.sign(before) !== Math.sign(after)) return undefined;
  return Math.abs(Math.log(after / before));
}

/**
 * The bound a new change stays within with probability `confidence`, from `changes` earlier
 * changes (none of them 0) that sum to `sum`: sum × ((1 − confidence)^(−1/changes) − 1).
 *
 * The model (ADR 0010): a pool's changes are exponential with one unknown scale (the log-ratio of
 * two runs is Laplace). Then a new change X and the sum S of `changes` earlier ones give
 * P(X > k·S) = (1 + k)^(−changes) whatever the scale, so the bound holds with exactly
 * `confidence` — wide when few changes are known, near ln(1 ÷ (1 − confidence)) times their mean
 * when many are. 0 when nothing but 0 was seen.
 */
export function noiseBound(sum: number, changes: number, confidence = NOISE_CONFIDENCE): number {
  if (changes === 0 || sum === 0) return 0;
  return sum * ((1 - confidence) ** (-1 / changes) - 1);
}

function ref(run: HistoryRun): RunRef {
  return run.commit === undefined
    ? { generatedAt: run.generatedAt }
    : { generatedAt: run.generatedAt, commit: run.commit };
}

/** One figure's change of median between the two runs of a same-code pair. */
interface PairChange {
  /** JSON of [benchmark, pool]. */
  key: string;
  benchmark: string;
  unit: string;
  change: number;
}

/** A same-code pair's changes of median; a change from or to 0 has no relative size and is left out. */
function changesOf(before: HistoryRun, after: HistoryRun): PairChange[] {
  const out: PairChange[] = [];
  for (const [id, a] of Object.entries(after.figures)) {
    const b = before.figures[id];
    if (b?.benchmark !== a.benchmark || b.unit !== a.unit) continue;
    const change = logChange(b.median, a.median);
    if (change === undefined) continue;
    const unit = noisePool(a);
    out.push({ key: JSON.stringify([a.benchmark, unit]), benchmark: a.benchmark, unit, change });
  }
  return out;
}

/** The pools of some same-code pairs' changes, keyed by benchmark × pool, with their bounds. */
function poolChanges(pairs: readonly PairChange[][]): Map<string, PoolNoise> {
  const pools = new Map<string, PoolNoise>();
  for (const changes of pairs) {
    const counted = new Set<string>();
    for (const { key, benchmark, unit, change } of changes) {
      const entry = pools.get(key) ?? {
        benchmark,
        unit,
        noise: 0,
        largest: 0,
        sum: 0,
        changes: 0,
        pairs: 0,
      };
      // A change of exactly 0 is a figure that repeats (a count): it says nothing of how far
      // the pool's other figures move, so it does not narrow their bound.
      if (change > 0) {
        entry.sum += change;
        entry.changes += 1;
        entry.largest = Math.max(entry.largest, change);
      }
      if (!counted.has(key)) entry.pairs += 1;
      counted.add(key);
      pools.set(key, entry);
    }
  }
  for (const entry of pools.values()) entry.noise = noiseBound(entry.sum, entry.changes);
  return pools;
}

/** Each same-code pair judged by the pools of the others: how often the bound failed. */
function checkModel(pairs: readonly PairChange[][]): NoiseCheck | undefined {
  if (pairs.length < 2) return undefined;
  let judged = 0;
  let outside = 0;
  pairs.forEach((own, i) => {
    const others = poolChanges(pairs.filter((_, j) => j !== i));
    for (const { key, change } of own) {
      const other = others.get(key);
      if (change === 0 || other === undefined) continue;
      judged += 1;
      if (change > other.noise) outside += 1;
    }
  });
  return { judged, outside, expected: judged * (1 - NOISE_CONFIDENCE) };
}

/**
 * The noise of the machine from consecutive runs (oldest first): for each benchmark × unit (or
 * noise group), the bound at NOISE_CONFIDENCE on a change of median (`noiseBound`), from the
 * changes of every pair of consecutive runs that measured the same code. Pairs whose code changed
 * (or that git cannot judge) are listed but measure nothing.
 */
export function measureNoise(runs: readonly HistoryRun[], sameCode: SameCode): NoiseTable {
  const pairs: RunPair[] = [];
  const measured: PairChange[][] = [];
  for (let i = 1; i < runs.length; i++) {
    const before = runs[i - 1]!;
    const after = runs[i]!;
    const same = sameCode(before.commit, after.commit);
    pairs.push({
      before: ref(before),
      after: ref(after),
      ...(same === undefined ? {} : { sameCode: same }),
    });
    if (same === true) measured.push(changesOf(before, after));
  }
  const byCodePoint = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  const sorted = [...poolChanges(measured).values()].sort(
    (x, y) => byCodePoint(x.benchmark, y.benchmark) || byCodePoint(x.unit, y.unit),
  );
  const check = checkModel(measured);
  return { pairs, pools: sorted, ...(check === undefined ? {} : { check }) };
}

/** A benchmark's pool (a unit or a noise group) in the table; undefined when not measured yet. */
function poolOf(
  table: NoiseTable | undefined,
  benchmark: string,
  unit: string,
): PoolNoise | undefined {
  return table?.pools.find((p) => p.benchmark === benchmark && p.unit === unit);
}

/** A figure's run-to-run noise from the table; undefined when it is not measured yet. */
export function noiseOf(
  table: NoiseTable | undefined,
  benchmark: string,
  unit: string,
): number | undefined {
  return poolOf(table, benchmark, unit)?.noise;
}

/**
 * This run against the history of full runs (bench/history.json, oldest first): the full run
 * before it, and the noise measured from the runs before it — never from the pair being judged,
 * so the noise is a prediction — and the noise the next run will be judged by. The run may be in
 * the history already (a re-render): only the runs before it count.
 */
export function compareWithHistory(
  history: readonly HistoryRun[],
  run: HistoryRun,
  sameCode: SameCode,
): { previous?: PreviousRun; noise: RunNoise } {
  const at = history.findIndex((r) => r.generatedAt === run.generatedAt);
  const end = at < 0 ? history.length : at;
  const earlier = history.slice(Math.max(0, end - HISTORY_LENGTH), end);
  const noise = {
    judged: measureNoise(earlier, sameCode),
    next: measureNoise([...earlier, run].slice(-HISTORY_LENGTH), sameCode),
  };
  const last = earlier[earlier.length - 1];
  if (last === undefined) return { noise };
  const same = sameCode(last.commit, run.commit);
  return { previous: { ...last, ...(same === undefined ? {} : { sameCode: same }) }, noise };
}

/** bench/history.json with this run appended, keeping the last HISTORY_LENGTH runs. */
export function appendRun(history: readonly HistoryRun[], run: HistoryRun): HistoryRun[] {
  return [...history.filter((r) => r.generatedAt !== run.generatedAt), run].slice(-HISTORY_LENGTH);
}

export type Agreement = 'agree' | 'differ' | 'unjudged';

interface Judgement {
  verdict: Agreement;
  /** Why, as the run-to-run table says it. */
  reason:
    | 'ranges overlap'
    | 'equal'
    | 'within the noise'
    | 'outside the noise'
    | 'ranges apart'
    | 'no noise measured';
}

function judge(a: FigureSummary, b: FigureSummary, noise: number | undefined): Judgement {
  const spreads = a.samples > 1 && b.samples > 1;
  if (spreads && a.min <= b.max && b.min <= a.max)
    return { verdict: 'agree', reason: 'ranges overlap' };
  if (a.median === b.median) return { verdict: 'agree', reason: 'equal' };
  if (noise !== undefined) {
    const moved = logChange(a.median, b.median);
    return moved !== undefined && moved <= noise
      ? { verdict: 'agree', reason: 'within the noise' }
      : { verdict: 'differ', reason: 'outside the noise' };
  }
  return spreads
    ? { verdict: 'differ', reason: 'ranges apart' }
    : { verdict: 'unjudged', reason: 'no noise measured' };
}

/**
 * Whether a figure of two runs (`a` before `b`) agrees within the noise the doc reports: their
 * min – max ranges overlap (several samples on both sides), or their medians are equal, or the
 * median moved by no more than `noise`, the figure's run-to-run noise measured from earlier
 * runs (on |ln(b ÷ a)|: ln 1.2 is a factor of 1.2 either way). Otherwise they differ; with no
 * noise measured yet, a single sample that changed is not judged (several samples whose ranges
 * are apart differ).
 */
export function agreement(
  a: FigureSummary,
  b: FigureSummary,
  noise: number | undefined,
): Agreement {
  return judge(a, b, noise).verdict;
}

export function withVerdict(figure: Figure): ReportedFigure {
  const met = meets(figure);
  return met === undefined ? figure : { ...figure, verdict: met ? 'met' : 'missed' };
}

/**
 * The pull-overhead matrix of issue 8, assembled from figures of several benchmarks by id:
 * rows are image sizes, columns what prepull's pull is compared with.
 */
const MATRIX = {
  title: 'Pull overhead: prepull ÷ the runtime’s own pull of the same image, same run',
  rows: ['1 MB', '100 MB', '300 MB'],
  columns: [
    {
      heading: 'containerd adapter ÷ raw CRI `PullImage`',
      ids: ['pull.cri.1mb.adapterRatio', 'pull.cri.100mb.adapterRatio', 'runtime.pull.ratio'],
    },
    {
      heading: '`prepull sync --once` ÷ raw CRI `PullImage`',
      ids: ['pull.cri.1mb.syncRatio', 'pull.cri.100mb.syncRatio', 'sync.pull.ratio'],
    },
    {
      heading: 'Docker adapter ÷ `docker pull` (Engine API)',
      ids: [
        'pull.docker.1mb.adapterRatio',
        'pull.docker.100mb.adapterRatio',
        'pull.docker.300mb.adapterRatio',
      ],
    },
  ],
} as const;

export function fmt(value: number): string {
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

function goalText(figure: ReportedFigure): string {
  if (figure.goal === undefined) return '—';
  const verdict = figure.verdict === 'met' ? 'met' : '**MISSED**';
  return `${figure.goal.op} ${fmt(figure.goal.value)} (${figure.goal.source}): ${verdict}`;
}

function spread(f: Figure): string {
  return f.samples > 1 ? `${fmt(f.min)} – ${fmt(f.max)}` : '—';
}

/** Table cells may not hold a raw pipe or newline. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function allFigures(results: Results): ReportedFigure[] {
  return results.benchmarks.flatMap((o) => o.figures);
}

function runTable(results: Results): string[] {
  const lines = [
    '| benchmark | area | wall time | machine CPUs busy | of which other work |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const o of results.benchmarks) {
    const cpu = o.cpu;
    lines.push(
      `| ${o.name}${o.error === undefined ? '' : ' (**failed**)'} | ${o.area} | ${o.seconds.toFixed(0)} s | ` +
        `${cpu === undefined ? '—' : cpu.machine.toFixed(2)} | ${cpu === undefined ? '—' : cpu.others.toFixed(2)} |`,
    );
  }
  lines.push(
    `| **all** | | **${results.totalSeconds.toFixed(0)} s** of ${results.budgetSeconds} s allowed | | |`,
  );
  return lines;
}

/** Goals no longer held, with why: a goal is retired in the open, not dropped. */
const RETIRED_GOALS = [
  '### Retired goals',
  '',
  '- `sync --once` ÷ raw CRI PullImage, 300 MB, <= 1.05 × (issue 6), retired by issue 15 for ' +
    '`sync --once` ÷ bench/cri-pull.ts <= 1.10 ×: the raw pull runs on a gRPC connection the ' +
    'benchmark already holds, while any command must start Node, load gRPC and connect — that ' +
    'floor alone cost 1.05 × or more in most runs here (ADR 0009), so the old goal asked for ' +
    'less than nothing. The new one holds what prepull adds over the least a Node command pays.',
  '- `sync --once`, 7 images: concurrency 2 ÷ concurrency 1 <= 0.75 × (issue 6), retired by ' +
    'issue 15 for prepull’s ratio <= the runtime’s own ratio + 0.05 in the same round: with a ' +
    'loopback registry on 2 CPUs the runtime alone gained 0.70 – 0.82 × from pulling two at a ' +
    'time (ADR 0009), so 0.75 measured the machine, not prepull.',
];

function goalsTable(results: Results): string[] {
  if (!allFigures(results).some((f) => f.goal !== undefined))
    return ['No figure of this run is held to a goal.'];
  const lines = [
    '| area | figure | goal | median | min – max | verdict |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const o of results.benchmarks) {
    for (const f of o.figures) {
      if (f.goal === undefined) continue;
      lines.push(
        `| ${o.area} | ${cell(f.label)} | ${f.goal.op} ${fmt(f.goal.value)} ${f.unit} (${f.goal.source}) | ` +
          `${fmt(f.median)} ${f.unit} | ${spread(f)} | ${f.verdict === 'met' ? 'met' : '**MISSED**'} |`,
      );
    }
  }
  return lines;
}

function matrixTable(results: Results): string[] {
  const byId = new Map(allFigures(results).map((f) => [f.id, f]));
  const lines = [
    `| image | ${MATRIX.columns.map((c) => c.heading).join(' | ')} |`,
    `| --- | ${MATRIX.columns.map(() => '---').join(' | ')} |`,
  ];
  MATRIX.rows.forEach((row, r) => {
    const cells = MATRIX.columns.map((c) => {
      const f = byId.get(c.ids[r]!);
      if (f === undefined) return 'not measured';
      const goal =
        f.goal === undefined
          ? ''
          : ` — goal ${f.goal.op} ${fmt(f.goal.value)}: ${f.verdict === 'met' ? 'met' : '**MISSED**'}`;
      return `${fmt(f.median)} × (${spread(f)}, n = ${f.samples})${goal}`;
    });
    lines.push(`| ${row} | ${cells.join(' | ')} |`);
  });
  return lines;
}

function range(f: FigureSummary): string {
  return f.samples > 1 ? `${fmt(f.median)} (${fmt(f.min)} – ${fmt(f.max)})` : fmt(f.median);
}

function change(before: number, after: number): string {
  if (before === after) return '0 %';
  if (before === 0) return '—';
  const pct = ((after - before) / Math.abs(before)) * 100;
  return `${pct > 0 ? '+' : ''}${pct.toFixed(Math.abs(pct) < 10 ? 1 : 0)} %`;
}

/** NOISE_CONFIDENCE as the doc says it: 99.9. */
const CONFIDENCE = (NOISE_CONFIDENCE * 100).toPrecision(3);

function percent(fraction: number): string {
  const pct = fraction * 100;
  return pct >= 10 ? pct.toFixed(0) : pct >= 1 ? pct.toFixed(1) : pct.toPrecision(1);
}

/**
 * A noise (a bound on |ln(after ÷ before)|) as the doc shows it: how far up and down a median may
 * move, "+22 % / −18 %", or beyond a factor of 2, "×/÷ 3.5"; "0 %" when only equal agrees.
 */
export function plusMinus(noise: number): string {
  if (noise === 0) return '0 %';
  const factor = Math.exp(noise);
  if (factor >= 2) return `×/÷ ${factor >= 1e4 ? factor.toExponential(0) : fmt(factor)}`;
  return `+${percent(factor - 1)} % / −${percent(1 - 1 / factor)} %`;
}

function runName(run: RunRef): string {
  return `${run.generatedAt} (commit ${run.commit ?? 'unknown'})`;
}

/** The pairs a noise table looked at, one list item each, and what became of them. */
function pairItems(table: NoiseTable): string[] {
  if (table.pairs.length === 0)
    return ['- none: bench/history.json holds fewer than two full runs before this one'];
  return table.pairs.map(
    (p) =>
      `- ${runName(p.before)} → ${runName(p.after)}: ` +
      (p.sameCode === true
        ? 'the same code, measures the noise'
        : p.sameCode === false
          ? 'the code changed, left out'
          : 'git cannot compare the commits, left out'),
  );
}

const REASONS: Record<Judgement['reason'], string> = {
  'ranges overlap': 'yes (ranges overlap)',
  equal: 'yes (equal)',
  'within the noise': 'yes (change within the noise)',
  'outside the noise': '**no** (change beyond the noise)',
  'ranges apart': '**no** (ranges apart; no noise measured yet)',
  'no noise measured': 'not judged (one sample; no noise measured yet)',
};

interface Compared {
  before: FigureSummary;
  after: ReportedFigure;
  noise: number | undefined;
  judgement: Judgement;
}

function compare(results: Results, previous: PreviousRun): Compared[] {
  const judged = results.noise?.judged;
  return results.benchmarks.flatMap((o) =>
    o.figures.flatMap((after) => {
      const before = previous.figures[after.id];
      if (before === undefined) return [];
      const noise = noiseOf(judged, o.name, noisePool(after));
      return [{ before, after, noise, judgement: judge(before, after, noise) }];
    }),
  );
}

function noiseMethod(noise: RunNoise | undefined): string[] {
  if (noise === undefined)
    return [
      'No run-to-run noise is measured for this run: its results carry no history of full runs ' +
        '(bench/history.json), so only overlapping ranges and equal values agree.',
      '',
    ];
  const used = noise.judged.pairs.filter((p) => p.sameCode === true).length;
  return [
    `**How the noise is measured.** Every full run adds its figures to bench/history.json (the last ` +
      `${HISTORY_LENGTH} full runs on this machine). Two consecutive runs measured the same code when ` +
      'git shows that their commits differ only in the published results (bench/results.json, ' +
      'bench/history.json, docs/performance.md and .svg); only such pairs measure the noise of the ' +
      'machine. A change of a median is |ln(after ÷ before)|, so that doubling and halving count ' +
      'alike; a figure’s changes are pooled with those of every figure of its benchmark in its ' +
      'unit (or in the noise group a figure names, when its noise has a source the others do not ' +
      'share), because one pair per figure predicts badly. A figure’s run-to-run noise is the ' +
      `bound its next change stays within with ${CONFIDENCE} % confidence: with ` +
      'the pool’s m changes (0s left out: they are counts that repeat) summing to S, ' +
      `S × (${(1 - NOISE_CONFIDENCE).toPrecision(1)}^(−1/m) − 1), which holds exactly if the changes are ` +
      'exponential with an unknown scale (ADR 0010) — wide while m is small, about ' +
      `${fmt(Math.log(1 / (1 - NOISE_CONFIDENCE)))} times their mean when m is large. This run ` +
      'is judged by the pairs before it, never by its own pair, so the noise is a prediction. Of ' +
      `the pairs before this run, ${used} measured the same code:`,
    '',
    ...pairItems(noise.judged),
    '',
    'A figure agrees when its min – max ranges in the two runs overlap (several samples on both ' +
      'sides), when its medians are equal, or when its median moved by no more than its noise from ' +
      'the earlier runs; otherwise it differs. With no noise measured yet, a single sample that ' +
      'changed is not judged.',
    '',
    ...checkText(noise.judged.check, 'before this run'),
  ];
}

/**
 * What the leave-one-pair-out check of the model found, as a paragraph; `which` names the pairs
 * (those before this run, or those with it).
 */
function checkText(check: NoiseCheck | undefined, which: string): string[] {
  if (check === undefined) return [];
  return [
    `**How well the model fits this machine.** Each same-code pair ${which}, judged by the ` +
      `noise of the other pairs: of ${check.judged} changes that were not 0, ${check.outside} ` +
      `went beyond their noise, where ${String(Number(check.expected.toPrecision(2)))} would be ` +
      `expected at ${CONFIDENCE} % confidence. More than expected means the ` +
      "machine's swings have a heavier tail than the model, and the noise is too narrow.",
    '',
  ];
}

function noiseTableSection(noise: RunNoise): string[] {
  const lines = ['### Run-to-run noise on this machine', ''];
  const pairs = noise.next.pairs.filter((p) => p.sameCode === true).length;
  if (noise.next.pools.length === 0) {
    lines.push(
      'Not measured yet: no two consecutive full runs in bench/history.json measured the same code.',
      '',
    );
    return lines;
  }
  const own = noise.next.pairs[noise.next.pairs.length - 1];
  lines.push(
    `From the ${pairs} same-code pair${pairs === 1 ? '' : 's'} of consecutive full runs in ` +
      'bench/history.json up to and including this run' +
      (own?.sameCode === true ? ' (this run against the one before it is one of them)' : '') +
      `: the noise the next run will be judged by, at ${CONFIDENCE} % ` +
      'confidence, next to the largest change seen. The last column is the noise this run was ' +
      'judged by, from the pairs before it.',
    '',
    '| benchmark | unit (or noise group) | run-to-run noise | largest change seen | changes (pairs) | judged this run by |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  for (const p of noise.next.pools) {
    const before = noiseOf(noise.judged, p.benchmark, p.unit);
    lines.push(
      `| ${p.benchmark} | ${p.unit} | ${plusMinus(p.noise)} | ${plusMinus(p.largest)} | ` +
        `${p.changes} (${p.pairs}) | ` +
        `${before === undefined ? 'not measured yet' : plusMinus(before)} |`,
    );
  }
  lines.push('', ...checkText(noise.next.check, 'up to and including this run'));
  return lines;
}

function runToRunSection(results: Results): string[] {
  const previous = results.previous;
  const lines = ['## Run to run', ''];
  if (previous === undefined) {
    lines.push('No earlier full run on this machine to compare with.', '');
    return lines;
  }
  const commit = results.environment.components[COMMIT_COMPONENT];
  const compared = compare(results, previous);
  const count = (reason: Judgement['reason']): number =>
    compared.filter((c) => c.judgement.reason === reason).length;
  const verdicts = (verdict: Agreement): number =>
    compared.filter((c) => c.judgement.verdict === verdict).length;
  lines.push(
    `This run against the full run before it on this machine (${previous.generatedAt}, commit ` +
      `${previous.commit ?? 'unknown'}; this run: ${commit ?? 'unknown'}). ` +
      (previous.sameCode === true
        ? 'The same code ran both times, so every difference is the noise of the machine.'
        : 'The code changed between the two runs: a difference may be a real change, not noise.'),
    '',
    ...noiseMethod(results.noise),
    `Of ${compared.length} figures measured by both runs, ${verdicts('agree')} agree ` +
      `(${count('ranges overlap')} by overlapping ranges, ${count('equal')} by being equal, ` +
      `${count('within the noise')} by a change within the noise of earlier runs), ` +
      `${verdicts('differ')} differ, and ${verdicts('unjudged')} are single samples that changed ` +
      'with no noise measured yet to judge them by. Listed: every figure held to a goal, and every ' +
      'other figure whose median changed and whose ranges do not overlap, within the noise or not.',
    '',
    '| figure | previous run | this run | change | noise (earlier runs) | within the noise |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  const shown = compared.filter(
    (c) =>
      c.after.goal !== undefined ||
      (c.judgement.reason !== 'ranges overlap' && c.judgement.reason !== 'equal'),
  );
  for (const { before, after, noise, judgement } of shown) {
    lines.push(
      `| ${cell(after.label)} | ${range(before)} ${before.unit} | ${range(after)} ${after.unit} | ` +
        `${change(before.median, after.median)} | ` +
        `${noise === undefined ? 'not measured yet' : plusMinus(noise)} | ${REASONS[judgement.reason]} |`,
    );
  }
  lines.push('');
  if (results.noise !== undefined) lines.push(...noiseTableSection(results.noise));
  return lines;
}

/** A benchmark's run-to-run noise per unit, for its paragraph in the area section. */
function noiseLine(outcome: Outcome, table: NoiseTable | undefined): string[] {
  if (table === undefined || outcome.figures.length === 0) return [];
  const units = [...new Set(outcome.figures.map(noisePool))];
  const parts = units.map((unit) => {
    const p = poolOf(table, outcome.name, unit);
    return p === undefined
      ? `${unit}: not measured yet`
      : `${unit}: ${plusMinus(p.noise)} (${p.changes} change${p.changes === 1 ? '' : 's'}, ` +
          `${p.pairs} pair${p.pairs === 1 ? '' : 's'})`;
  });
  return [
    `Run-to-run noise of ${outcome.name} on this machine ([how it is measured](#run-to-run)): ` +
      `${parts.join('; ')}.`,
    '',
  ];
}

function areaSection(
  area: string,
  outcomes: readonly Outcome[],
  noise: NoiseTable | undefined,
): string[] {
  const lines = [
    `## ${area}`,
    '',
    '| figure | median | min – max | samples | baseline | goal |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const outcome of outcomes) {
    if (outcome.error !== undefined) {
      lines.push(`| ${outcome.name} | **failed to run** | | | | |`);
      continue;
    }
    for (const f of outcome.figures) {
      lines.push(
        `| ${cell(f.label)} | ${fmt(f.median)} ${f.unit} | ${spread(f)} | ${f.samples} | ` +
          `${cell(f.baseline ?? '—')} | ${goalText(f)} |`,
      );
    }
  }
  lines.push('');
  for (const outcome of outcomes) {
    lines.push(`**${outcome.name}** (${outcome.seconds.toFixed(0)} s). ${outcome.method}`, '');
    lines.push(...noiseLine(outcome, noise));
    const notes = outcome.figures.filter((x) => x.note !== undefined);
    for (const f of notes) lines.push(`- ${f.label}: ${f.note}`);
    if (notes.length > 0) lines.push('');
    if (outcome.error !== undefined)
      lines.push('```', outcome.error.split('\n').slice(0, 8).join('\n'), '```', '');
  }
  return lines;
}

export function renderDoc(results: Results, chartFile: string): string {
  const missed = allFigures(results).filter((f) => f.verdict === 'missed').length;
  const goals = allFigures(results).filter((f) => f.goal !== undefined).length;
  const lines = [
    '# Performance',
    '',
    '<!-- Generated by `npm run bench` (bench/run.ts, bench/report.ts) from bench/results.json and bench/history.json; edit the benchmarks, not this file. -->',
    '',
    'Every figure comes from one `npm run bench` on the machine below. Where a baseline exists the',
    'figure is a ratio against it, measured in the same run: the runs of prepull and of the',
    'baseline are interleaved round by round, and the ratio is taken per round, so slow drift of the',
    'machine cancels out; median, min and max over the rounds are shown, and every sample is in',
    '`bench/results.json`. A figure that misses its goal is shown as **MISSED**, not hidden. This',
    'is a shared 2-vCPU virtual machine: its figures move from run to run by as much as the table',
    '[Run-to-run noise on this machine](#run-to-run-noise-on-this-machine) shows — measured per',
    'benchmark and unit (or noise group) from consecutive full runs of the same code — and more while other work runs',
    '(the run table shows how busy the machine was). So read the min – max spread next to each',
    'median, that run-to-run noise, and the noise floors where a benchmark measures one (the same',
    'arm against itself).',
    '',
    `Generated ${results.generatedAt}: ${goals - missed} of ${goals} goals met, ${missed} missed.`,
    '',
    'To reproduce: `npm run build && npm run bench`, as root (the harness starts containerd,',
    `Docker Engine and registries), in at most ${results.budgetSeconds / 60} minutes: it writes bench/results.json, adds`,
    'the run to bench/history.json, and writes this page and its chart. `npm run bench <name>` runs',
    'some benchmarks only (bench/results.partial.json); `npm run bench -- --quick` runs a short',
    'version, which CI runs to keep the benchmarks working (bench/results.quick.json); neither is',
    'added to the history. `npm run bench -- --render` rewrites this page and the chart from',
    'bench/results.json without measuring (refreshing its comparison from bench/history.json).',
    '',
    ...(results.quick
      ? ['**Quick run** (`--quick`): smaller inputs and fewer rounds; not figures to publish.', '']
      : []),
    '## Machine and run',
    '',
    '| machine | |',
    '| --- | --- |',
    ...environmentRows(results.environment).map(([k, v]) => `| ${k} | ${cell(v)} |`),
    '',
    ...runTable(results),
    '',
    'Machine CPUs busy: the average over the benchmark from /proc/stat, 0 to the CPU count; other',
    'work: that minus the CPU of the benchmark process and the children it reaped (the harness’s',
    'daemons, the CLIs it ran).',
    '',
    '## Goals',
    '',
    ...goalsTable(results),
    '',
    ...RETIRED_GOALS,
    '',
    '## At a glance',
    '',
    `![Every ratio against its same-run baseline: median, min – max and goal](${chartFile})`,
    '',
    'Each bar runs from 1 (the same as the baseline) to the median ratio, on a log scale; the',
    'whisker spans min – max over the rounds; the dashed tick is the goal. Green: goal met; red:',
    'missed; grey: no goal.',
    '',
    `### ${MATRIX.title}`,
    '',
    ...matrixTable(results),
    '',
    ...runToRunSection(results),
  ];
  const areas = [...new Set(results.benchmarks.map((o) => o.area))];
  for (const area of areas) {
    lines.push(
      ...areaSection(
        area,
        results.benchmarks.filter((o) => o.area === area),
        results.noise?.next,
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}

// ---- chart ---------------------------------------------------------------------------------

const COLOURS = { met: '#2e7d32', missed: '#c62828', none: '#78909c' } as const;
const TICKS = [0.1, 0.2, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10, 20, 50, 100];

function xml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function chartLabel(f: Figure, max = 74): string {
  const text = (f.chart ?? f.label).replace(/`/g, '');
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

interface Row {
  kind: 'area' | 'figure';
  text: string;
  figure?: ReportedFigure;
}

/** A horizontal bar chart of every ratio figure (unit ×), grouped by area, as SVG text. */
export function renderChart(results: Results): string {
  const rows: Row[] = [];
  const areas = [...new Set(results.benchmarks.map((o) => o.area))];
  for (const area of areas) {
    const figures = results.benchmarks
      .filter((o) => o.area === area)
      .flatMap((o) => o.figures)
      .filter((f) => f.unit === '×');
    if (figures.length === 0) continue;
    rows.push({ kind: 'area', text: area });
    for (const f of figures) rows.push({ kind: 'figure', text: chartLabel(f), figure: f });
  }
  const figures = rows.flatMap((r) => (r.figure === undefined ? [] : [r.figure]));
  const values = figures.flatMap((f) => [f.min, f.max, f.median, f.goal?.value ?? 1]);
  const lowest = Math.min(0.5, ...values);
  const highest = Math.max(2, ...values);
  const lo = [...TICKS].reverse().find((t) => t <= lowest) ?? TICKS[0]!;
  const hi = TICKS.find((t) => t >= highest) ?? TICKS[TICKS.length - 1]!;

  const width = 1000;
  const plotLeft = 500;
  const plotRight = 890;
  const top = 56;
  const rowHeight = 20;
  const areaHeight = 26;
  const heights = rows.map((r) => (r.kind === 'area' ? areaHeight : rowHeight));
  const plotBottom = top + heights.reduce((a, b) => a + b, 0) + 6;
  const height = plotBottom + 78;
  const x = (v: number): number =>
    plotLeft +
    ((Math.log(Math.max(lo, Math.min(hi, v))) - Math.log(lo)) / (Math.log(hi) - Math.log(lo))) *
      (plotRight - plotLeft);
  const px = (v: number): string => v.toFixed(1);

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    '<title>prepull benchmarks: ratios against same-run baselines</title>',
    `<desc>${xml(
      figures
        .map(
          (f) =>
            `${chartLabel(f, 200)}: median ${fmt(f.median)}, min ${fmt(f.min)}, max ${fmt(f.max)}` +
            (f.goal === undefined
              ? ''
              : `, goal ${f.goal.op} ${fmt(f.goal.value)} ${f.verdict ?? ''}`),
        )
        .join('; '),
    )}</desc>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="bold">prepull ÷ baseline, measured in the same run (log scale; 1 = same as the baseline)</text>`,
    `<text x="16" y="42" fill="#555">Generated ${xml(results.generatedAt)} on ${results.environment.cpu.count} × ${xml(results.environment.cpu.model)}; bar: median, whisker: min – max, dashed tick: goal.</text>`,
  ];
  // Grid and ticks.
  let lastTick = -Infinity;
  for (const t of TICKS.filter((v) => v >= lo && v <= hi)) {
    const at = x(t);
    if (at - lastTick < 40 && t !== 1) continue;
    lastTick = at;
    out.push(
      `<line x1="${px(at)}" y1="${top - 4}" x2="${px(at)}" y2="${plotBottom}" stroke="${t === 1 ? '#333' : '#e0e0e0'}" stroke-width="${t === 1 ? 1.2 : 1}"/>`,
      `<text x="${px(at)}" y="${plotBottom + 16}" text-anchor="middle" fill="#333">${t}×</text>`,
    );
  }
  out.push(
    `<text x="${px((plotLeft + plotRight) / 2)}" y="${plotBottom + 34}" text-anchor="middle" fill="#333">ratio (lower is faster or smaller than the baseline)</text>`,
  );
  let y = top;
  for (const [i, row] of rows.entries()) {
    const h = heights[i]!;
    const mid = y + h / 2;
    if (row.kind === 'area' || row.figure === undefined) {
      out.push(
        `<text x="16" y="${px(mid + 6)}" font-weight="bold" font-size="13">${xml(row.text)}</text>`,
        `<line x1="16" y1="${px(y + h - 2)}" x2="${plotRight}" y2="${px(y + h - 2)}" stroke="#bdbdbd"/>`,
      );
      y += h;
      continue;
    }
    const f = row.figure;
    const colour = COLOURS[f.verdict ?? 'none'];
    const from = Math.min(x(1), x(f.median));
    const barWidth = Math.max(1.5, Math.abs(x(f.median) - x(1)));
    out.push(
      `<text x="28" y="${px(mid + 4)}" fill="#222">${xml(row.text)}</text>`,
      `<rect x="${px(from)}" y="${px(mid - 5)}" width="${px(barWidth)}" height="10" fill="${colour}" fill-opacity="0.85"/>`,
    );
    if (f.samples > 1) {
      out.push(
        `<line x1="${px(x(f.min))}" y1="${px(mid)}" x2="${px(x(f.max))}" y2="${px(mid)}" stroke="#212121" stroke-width="1.2"/>`,
        `<line x1="${px(x(f.min))}" y1="${px(mid - 4)}" x2="${px(x(f.min))}" y2="${px(mid + 4)}" stroke="#212121" stroke-width="1.2"/>`,
        `<line x1="${px(x(f.max))}" y1="${px(mid - 4)}" x2="${px(x(f.max))}" y2="${px(mid + 4)}" stroke="#212121" stroke-width="1.2"/>`,
      );
    }
    if (f.goal !== undefined) {
      out.push(
        `<line x1="${px(x(f.goal.value))}" y1="${px(mid - 8)}" x2="${px(x(f.goal.value))}" y2="${px(mid + 8)}" stroke="#000" stroke-width="2" stroke-dasharray="3 2"/>`,
      );
    }
    const verdict = f.verdict === undefined ? '' : f.verdict === 'met' ? ' ✓' : ' ✗';
    out.push(
      `<text x="${plotRight + 10}" y="${px(mid + 4)}" fill="${colour}" font-weight="bold">${fmt(f.median)}×${verdict}</text>`,
    );
    y += h;
  }
  // Legend.
  const ly = plotBottom + 56;
  out.push(
    `<rect x="16" y="${ly - 9}" width="22" height="10" fill="${COLOURS.met}"/>`,
    `<text x="44" y="${ly}">goal met</text>`,
    `<rect x="120" y="${ly - 9}" width="22" height="10" fill="${COLOURS.missed}"/>`,
    `<text x="148" y="${ly}">goal missed</text>`,
    `<rect x="240" y="${ly - 9}" width="22" height="10" fill="${COLOURS.none}"/>`,
    `<text x="268" y="${ly}">no goal</text>`,
    `<line x1="350" y1="${ly - 4}" x2="380" y2="${ly - 4}" stroke="#212121" stroke-width="1.2"/>`,
    `<text x="386" y="${ly}">min – max over the rounds</text>`,
    `<line x1="600" y1="${ly - 12}" x2="600" y2="${ly + 4}" stroke="#000" stroke-width="2" stroke-dasharray="3 2"/>`,
    `<text x="608" y="${ly}">goal</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}
