// `npm run bench [-- --quick] [name…]`: runs every bench/*.bench.ts (or those named), each with
// its own harness when it asks for one, then writes the results with the machine they ran on
// and regenerates docs/performance.md and its chart, docs/performance.svg. A benchmark that
// throws fails the run; a figure that misses its goal does not (it is shown as a miss). --quick
// writes bench/results.quick.json and leaves the doc alone: it exists so CI keeps the
// benchmarks working, not to publish figures. Naming benchmarks runs only those and writes
// bench/results.partial.json. A full run (neither) is compared with the full run before it and
// judged by the run-to-run noise measured from bench/history.json, the last full runs on this
// machine, to which it is then added. `--render` measures nothing: it regenerates
// docs/performance.md and docs/performance.svg from bench/results.json, first refreshing that
// file's comparison (`previous`, `noise`) from bench/history.json when there is one.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Harness, startHarness } from '../test/harness/index.ts';
import { COMMIT_COMPONENT, collectEnvironment, cpuSnapshot, cpuUse } from './environment.ts';
import type { BenchContext, Benchmark } from './lib.ts';
import {
  type HistoryRun,
  type Outcome,
  type Results,
  appendRun,
  compareWithHistory,
  fmt,
  renderChart,
  renderDoc,
  summarizeRun,
  withVerdict,
} from './report.ts';

/** A full run must finish within this on the benchmark machine (issue 8). */
const BUDGET_SECONDS = 600;
const RESULTS = new URL('results.json', import.meta.url);
const HISTORY = new URL('history.json', import.meta.url);
const DOC = new URL('../docs/performance.md', import.meta.url);
const CHART = new URL('../docs/performance.svg', import.meta.url);
const here = fileURLToPath(new URL('.', import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.filter((a) => !a.startsWith('--'));
/** A full run: every benchmark, full size; only it is compared, added to the history, published. */
const full = !quick && only.length === 0;

/** The files a full run rewrites: two commits that differ only in these ran the same code. */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PUBLISHED = [RESULTS, HISTORY, DOC, CHART].map((file) => relative(ROOT, fileURLToPath(file)));

/** What git said of each pair of commits asked about in this run. */
const sameCodeAnswers = new Map<string, boolean | undefined>();

/**
 * Whether two runs measured the same code: neither tree was dirty, and the commits differ at
 * most in the published results. Undefined when git cannot say.
 */
function sameCode(before: string | undefined, now: string | undefined): boolean | undefined {
  if (before === undefined || now === undefined) return undefined;
  if (before.endsWith('-dirty') || now.endsWith('-dirty')) return false;
  // The noise of earlier runs and of the next run look at the same pairs: ask git once each.
  const key = `${before} ${now}`;
  if (!sameCodeAnswers.has(key)) sameCodeAnswers.set(key, gitSameCode(before, now));
  return sameCodeAnswers.get(key);
}

function gitSameCode(before: string, now: string): boolean | undefined {
  try {
    const changed = execFileSync('git', ['diff', '--name-only', before, now], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .split('\n')
      .filter((file) => file !== '');
    return changed.every((file) => PUBLISHED.includes(file));
  } catch {
    return undefined;
  }
}

/** bench/history.json, oldest first; empty when there is none yet. */
function readHistory(): HistoryRun[] {
  let text: string;
  try {
    text = readFileSync(HISTORY, 'utf8');
  } catch {
    return [];
  }
  return JSON.parse(text) as HistoryRun[];
}

/**
 * Sets `previous` (the full run before this one) and `noise` (measured from the runs before it,
 * and with it for the next run) from the history. Without a history, a `previous` the results
 * already carry is kept, and git decides again whether it ran the same code.
 */
function compareRun(results: Results, history: readonly HistoryRun[]): void {
  const commit = results.environment.components[COMMIT_COMPONENT];
  if (history.length === 0) {
    if (results.previous === undefined) return;
    const same = sameCode(results.previous.commit, commit);
    if (same === undefined) delete results.previous.sameCode;
    else results.previous.sameCode = same;
    return;
  }
  const { previous, noise } = compareWithHistory(history, summarizeRun(results), sameCode);
  if (previous === undefined) delete results.previous;
  else results.previous = previous;
  results.noise = noise;
}

async function publish(results: Results): Promise<void> {
  writeFileSync(CHART, renderChart(results));
  // Formatted as the rest of docs/ is, so the tables line up in the raw file too.
  const { format } = await import('prettier');
  const markdown = renderDoc(results, 'performance.svg');
  writeFileSync(DOC, await format(markdown, { parser: 'markdown', printWidth: 100 }));
}

const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

if (args.includes('--render')) {
  // `--render [results.partial.json]`: another results file may be previewed the same way.
  const file = only[0] ?? 'results.json';
  const url = new URL(file, import.meta.url);
  const text = readFileSync(url, 'utf8');
  const results = JSON.parse(text) as Results;
  if (!results.quick) compareRun(results, readHistory());
  if (json(results) !== text) writeFileSync(url, json(results));
  await publish(results);
  process.stdout.write(
    `bench: docs/performance.md and docs/performance.svg rendered from ${file}\n`,
  );
  process.exit(0);
}

const environment = collectEnvironment();

/**
 * The full runs this one is compared with, read before it replaces bench/results.json. Before
 * there was a bench/history.json, the last full run was only in results.json: it starts one.
 */
function startingHistory(): HistoryRun[] {
  if (!full) return [];
  const history = readHistory();
  if (history.length > 0) return history;
  try {
    const last = JSON.parse(readFileSync(RESULTS, 'utf8')) as Results;
    return last.quick ? [] : [summarizeRun(last)];
  } catch {
    return [];
  }
}
const history = startingHistory();

async function runOne(bench: Benchmark): Promise<Outcome> {
  let harness: Harness | undefined;
  const ctx: BenchContext = {
    quick,
    log: (line) => {
      process.stderr.write(`[${bench.name}] ${line}\n`);
    },
    async harness(options) {
      harness ??= await startHarness({
        ...options,
        log: (l) => {
          ctx.log(l);
        },
      });
      return harness;
    },
    recordEnvironment: (key, value) => {
      environment.components[key] = value;
    },
  };
  const start = performance.now();
  try {
    const figures = (await bench.run(ctx)).map(withVerdict);
    return { name: bench.name, area: bench.area, method: bench.method, seconds: 0, figures };
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    return {
      name: bench.name,
      area: bench.area,
      method: bench.method,
      seconds: 0,
      figures: [],
      error: message,
    };
  } finally {
    await harness?.stop();
    ctx.log(`done in ${((performance.now() - start) / 1000).toFixed(1)} s`);
  }
}

const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .sort();
const benches: Benchmark[] = [];
for (const file of files) {
  const mod = (await import(new URL(file, import.meta.url).href)) as { default: Benchmark };
  if (
    only.length === 0 ||
    only.some((name) => file.includes(name) || mod.default.name.includes(name))
  ) {
    benches.push(mod.default);
  }
}
if (benches.length === 0) {
  process.stderr.write(`no benchmark matches ${only.join(' ')}\n`);
  process.exit(2);
}

const started = Date.now();
const outcomes: Outcome[] = [];
for (const bench of benches) {
  process.stderr.write(`== ${bench.name}${quick ? ' (quick)' : ''}\n`);
  const t0 = performance.now();
  const cpu0 = cpuSnapshot();
  const outcome = await runOne(bench);
  outcome.seconds = (performance.now() - t0) / 1000;
  outcome.cpu = cpuUse(cpu0);
  outcomes.push(outcome);
  for (const f of outcome.figures) {
    const goal =
      f.goal === undefined
        ? ''
        : ` ${f.goal.op} ${fmt(f.goal.value)} (${f.goal.source}): ${f.verdict === 'met' ? 'met' : 'MISSED'}`;
    process.stdout.write(
      `${bench.name}: ${f.label} = ${fmt(f.median)} ${f.unit} [${fmt(f.min)}–${fmt(f.max)}, n=${f.samples}]${goal}\n`,
    );
  }
  process.stdout.write(
    `${bench.name}: ${outcome.seconds.toFixed(1)} s; machine CPUs busy ${outcome.cpu.machine}, ` +
      `other work ${outcome.cpu.others}\n`,
  );
  if (outcome.error !== undefined)
    process.stdout.write(`${bench.name}: FAILED\n${outcome.error}\n`);
}

environment.load.atEnd = loadavg().map((l) => Math.round(l * 100) / 100);
const results: Results = {
  generatedAt: new Date().toISOString(),
  quick,
  totalSeconds: (Date.now() - started) / 1000,
  budgetSeconds: BUDGET_SECONDS,
  environment,
  benchmarks: outcomes,
};
if (full) compareRun(results, history);
// Only a full run publishes: a quick or filtered run keeps its figures apart.
const resultsFile = quick
  ? 'results.quick.json'
  : only.length > 0
    ? 'results.partial.json'
    : 'results.json';
writeFileSync(new URL(resultsFile, import.meta.url), json(results));
if (full) {
  writeFileSync(HISTORY, json(appendRun(history, summarizeRun(results))));
  await publish(results);
} else {
  // Rendered but not written: CI's quick run keeps the report code working too.
  renderChart(results);
  renderDoc(results, 'performance.svg');
}
const failed = outcomes.filter((o) => o.error !== undefined);
process.stdout.write('\nbenchmark durations:\n');
for (const o of outcomes) {
  process.stdout.write(
    `  ${o.name.padEnd(24)} ${o.seconds.toFixed(1).padStart(6)} s${o.error === undefined ? '' : '  FAILED'}\n`,
  );
}
process.stdout.write(
  `bench: ${outcomes.length - failed.length} ran, ${failed.length} failed, ${results.totalSeconds.toFixed(0)} s` +
    (full ? ` of ${BUDGET_SECONDS} s allowed` : '') +
    `; results in bench/${resultsFile}\n`,
);
if (full && results.totalSeconds > BUDGET_SECONDS) {
  process.stdout.write(`bench: the full run took longer than the ${BUDGET_SECONDS} s it may\n`);
}
process.exit(failed.length === 0 ? 0 : 1);
