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
}

/** What a run keeps of a figure to compare the next run with. */
export type FigureSummary = Pick<Figure, 'label' | 'unit' | 'median' | 'min' | 'max' | 'samples'>;

export interface PreviousRun {
  generatedAt: string;
  commit?: string;
  /**
   * Whether the two runs measured the same code: the commits differ at most in the published
   * results (bench/results.json, docs/performance.*). Decided with git by run.ts.
   */
  sameCode?: boolean;
  figures: Record<string, FigureSummary>;
}

/** What the next run keeps of this one to compare itself with. */
export function summarizeRun(results: Results): PreviousRun {
  const figures: Record<string, FigureSummary> = {};
  for (const f of allFigures(results)) {
    const { label, unit, median, min, max, samples } = f;
    figures[f.id] = { label, unit, median, min, max, samples };
  }
  const commit = results.environment.components[COMMIT_COMPONENT];
  return { generatedAt: results.generatedAt, ...(commit === undefined ? {} : { commit }), figures };
}

/**
 * Whether two runs' figures agree within the noise the doc reports: with a spread on both sides
 * (more than one sample), their min – max ranges overlap; a single sample has no spread, so it
 * agrees only by being equal (a count), and is otherwise shown with its change, not judged.
 */
export function agreement(a: FigureSummary, b: FigureSummary): 'agree' | 'differ' | 'unjudged' {
  if (a.samples > 1 && b.samples > 1) return a.min <= b.max && b.min <= a.max ? 'agree' : 'differ';
  return a.median === b.median ? 'agree' : 'unjudged';
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

function runToRunSection(results: Results): string[] {
  const previous = results.previous;
  const lines = ['## Run to run', ''];
  if (previous === undefined) {
    lines.push('No earlier full run on this machine to compare with.', '');
    return lines;
  }
  const commit = results.environment.components[COMMIT_COMPONENT];
  const sameCode = previous.sameCode === true;
  const current = new Map(allFigures(results).map((f) => [f.id, f]));
  const pairs = Object.entries(previous.figures)
    .filter(([id]) => current.has(id))
    .map(([id, before]) => ({
      before,
      after: current.get(id)!,
      verdict: agreement(before, current.get(id)!),
    }));
  const count = (v: string): number => pairs.filter((p) => p.verdict === v).length;
  lines.push(
    `This run against the full run before it on this machine (${previous.generatedAt}, commit ` +
      `${previous.commit ?? 'unknown'}; this run: ${commit ?? 'unknown'}). ` +
      (sameCode
        ? 'The same code ran both times, so every difference is the noise of the machine.'
        : 'The code changed between the two runs: a difference may be a real change, not noise.'),
    '',
    `Of ${pairs.length} figures measured by both runs, ${count('agree')} agree within the noise ` +
      'this page reports (with several samples on both sides, their min – max ranges overlap; a ' +
      `single sample agrees by being equal), ${count('differ')} differ, and ${count('unjudged')} ` +
      'are single samples that changed, with no spread to judge them by (their change is shown). ' +
      'Listed: every figure held to a goal, and every figure that differs or changed.',
    '',
    '| figure | previous run | this run | change | within the noise |',
    '| --- | --- | --- | --- | --- |',
  );
  const shown = pairs.filter((p) => p.verdict !== 'agree' || p.after.goal !== undefined);
  for (const { before, after, verdict } of shown) {
    const judged = verdict === 'agree' ? 'yes' : verdict === 'differ' ? '**no**' : 'one sample';
    lines.push(
      `| ${cell(after.label)} | ${range(before)} ${before.unit} | ${range(after)} ${after.unit} | ` +
        `${change(before.median, after.median)} | ${judged} |`,
    );
  }
  lines.push('');
  return lines;
}

function areaSection(area: string, outcomes: readonly Outcome[]): string[] {
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
    '<!-- Generated by `npm run bench` (bench/run.ts, bench/report.ts) from bench/results.json; edit the benchmarks, not this file. -->',
    '',
    'Every figure comes from one `npm run bench` on the machine below. Where a baseline exists the',
    'figure is a ratio against it, measured in the same run: the runs of prepull and of the',
    'baseline are interleaved round by round, and the ratio is taken per round, so slow drift of the',
    'machine cancels out; median, min and max over the rounds are shown, and every sample is in',
    '`bench/results.json`. A figure that misses its goal is shown as **MISSED**, not hidden. This',
    'is a shared 2-vCPU virtual machine: single pulls swing by ±15–30 % from run to run, more while',
    'other work runs (the run table shows how busy the machine was), so read the min – max spread',
    'next to each median, and the noise floors where a benchmark measures one (the same arm against',
    'itself).',
    '',
    `Generated ${results.generatedAt}: ${goals - missed} of ${goals} goals met, ${missed} missed.`,
    '',
    'To reproduce: `npm run build && npm run bench`, as root (the harness starts containerd,',
    `Docker Engine and registries), in at most ${results.budgetSeconds / 60} minutes: it writes bench/results.json, this`,
    'page and its chart. `npm run bench <name>` runs some benchmarks only',
    '(bench/results.partial.json); `npm run bench -- --quick` runs a short version, which CI runs',
    'to keep the benchmarks working (bench/results.quick.json); `npm run bench -- --render`',
    'rewrites this page and the chart from bench/results.json without measuring.',
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
