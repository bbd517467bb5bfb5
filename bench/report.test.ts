// The run-to-run comparison of the performance report (issue 8): when two runs agree within the
// noise the page reports, how that noise is measured from the history of full runs, and what the
// section lists.
import { describe, expect, it } from '@jest/globals';
import { COMMIT_COMPONENT, type Environment } from './environment.ts';
import {
  type HistoryRun,
  type Results,
  type SameCode,
  agreement,
  appendRun,
  compareWithHistory,
  measureNoise,
  noiseOf,
  renderDoc,
  summarizeRun,
} from './report.ts';

const environment = (commit: string): Environment => ({
  cpu: { model: 'test', count: 2 },
  memoryGiB: 24,
  kernel: 'k',
  node: 'v24',
  components: { [COMMIT_COMPONENT]: commit },
  load: { atStart: [0, 0, 0] },
});

/**
 * A figure: id, samples, and optionally a goal, a unit (default 'x'), a benchmark ('b') and a
 * noise group.
 */
type Spec = [
  id: string,
  values: number[],
  goal?: number | undefined,
  unit?: string,
  benchmark?: string,
  noiseGroup?: string,
];

function run(commit: string, figures: Spec[], generatedAt = `run at ${commit}`): Results {
  const benchmarks = [...new Set(figures.map(([, , , , b]) => b ?? 'b'))];
  return {
    generatedAt,
    quick: false,
    totalSeconds: 1,
    budgetSeconds: 600,
    environment: environment(commit),
    benchmarks: benchmarks.map((name) => ({
      name,
      area: 'A',
      method: 'm',
      seconds: 1,
      figures: figures
        .filter(([, , , , b]) => (b ?? 'b') === name)
        .map(([id, values, goal, unit, , noiseGroup]) => {
          const sorted = [...values].sort((x, y) => x - y);
          return {
            id,
            label: `figure ${id}`,
            unit: unit ?? 'x',
            median: sorted[Math.floor(sorted.length / 2)]!,
            min: sorted[0]!,
            max: sorted[sorted.length - 1]!,
            samples: values.length,
            values,
            ...(goal === undefined
              ? {}
              : { goal: { op: '<=' as const, value: goal, source: 't' } }),
            ...(noiseGroup === undefined ? {} : { noiseGroup }),
          };
        }),
    })),
  };
}

/** The history entry of a run of single samples at `commit`. */
const entry = (commit: string, when: string, figures: Spec[]): HistoryRun =>
  summarizeRun(run(commit, figures, when));

/** Commits named "same-N" measured the same code as each other; any other pair did not. */
const sameCode: SameCode = (a, b) =>
  a === undefined || b === undefined
    ? undefined
    : a === b || (a.startsWith('same') && b.startsWith('same'));

describe('agreement', () => {
  const f = (values: number[]) => summarizeRun(run('c', [['x', values]])).figures.x!;
  it('takes overlapping spreads and equal medians as agreeing', () => {
    expect(agreement(f([1, 2, 3]), f([2.5, 4, 5]), undefined)).toBe('agree');
    expect(agreement(f([1, 2, 3]), f([3, 4]), undefined)).toBe('agree');
    expect(agreement(f([1000]), f([1000]), undefined)).toBe('agree');
    expect(agreement(f([1000]), f([1000]), 0)).toBe('agree');
  });
  it('with no noise measured yet, separate spreads differ and a changed single sample is unjudged', () => {
    expect(agreement(f([1, 2, 3]), f([3.1, 4]), undefined)).toBe('differ');
    expect(agreement(f([200]), f([240]), undefined)).toBe('unjudged');
    expect(agreement(f([1, 2]), f([7]), undefined)).toBe('unjudged');
  });
  it('agrees on a change inside the noise of earlier runs and differs on one outside it', () => {
    // +20 %: inside ±25 %, at ±20 %, outside ±19 %.
    expect(agreement(f([200]), f([240]), 0.25)).toBe('agree');
    expect(agreement(f([200]), f([240]), 0.2)).toBe('agree');
    expect(agreement(f([200]), f([240]), 0.19)).toBe('differ');
    // Ranges apart, but the medians (2 → 4, +100 %) moved no more than the noise.
    expect(agreement(f([1, 2, 3]), f([3.5, 4, 5]), 1)).toBe('agree');
    expect(agreement(f([1, 2, 3]), f([3.5, 4, 5]), 0.5)).toBe('differ');
    // A noise of 0 (every earlier pair equal) still lets overlapping ranges agree.
    expect(agreement(f([1, 2, 3]), f([2.5, 4, 5]), 0)).toBe('agree');
    expect(agreement(f([77.6]), f([77.5]), 0)).toBe('differ');
    // A change from 0 has no relative size: it is beyond any noise.
    expect(agreement(f([0]), f([1]), 10)).toBe('differ');
  });
});

describe('the run-to-run noise', () => {
  it('is the largest relative change of a median, pooled over a benchmark’s figures of one unit', () => {
    const before = entry('same-1', 't1', [
      ['p.a', [1], undefined, 's', 'pull'],
      ['p.b', [2], undefined, 's', 'pull'],
      ['p.r', [1], undefined, '×', 'pull'],
      ['q.a', [10], undefined, 's', 'other'],
    ]);
    const after = entry('same-2', 't2', [
      ['p.a', [1.1], undefined, 's', 'pull'], // +10 %
      ['p.b', [1.4], undefined, 's', 'pull'], // −30 %: the pool's noise
      ['p.r', [1.05], undefined, '×', 'pull'], // +5 %, another unit
      ['q.a', [10], undefined, 's', 'other'], // equal: noise 0, measured
    ]);
    const table = measureNoise([before, after], sameCode);
    expect(table.pools.map((p) => [p.benchmark, p.unit, p.pairs])).toEqual([
      ['other', 's', 1],
      ['pull', 's', 1],
      ['pull', '×', 1],
    ]);
    expect(noiseOf(table, 'pull', 's')).toBeCloseTo(0.3);
    expect(noiseOf(table, 'pull', '×')).toBeCloseTo(0.05);
    expect(noiseOf(table, 'other', 's')).toBe(0);
    expect(noiseOf(table, 'other', '×')).toBeUndefined();
  });

  it('pools a figure with a noise group apart from the other figures of its unit', () => {
    const before = entry('same-1', 't1', [
      ['delivery', [30], undefined, 'ms', 'api'],
      ['queued', [100], undefined, 'ms', 'api', 'ms, queued'],
    ]);
    const after = entry('same-2', 't2', [
      ['delivery', [33], undefined, 'ms', 'api'], // +10 %
      ['queued', [600], undefined, 'ms', 'api', 'ms, queued'], // +500 %: its own pool only
    ]);
    const table = measureNoise([before, after], sameCode);
    expect(noiseOf(table, 'api', 'ms')).toBeCloseTo(0.1);
    expect(noiseOf(table, 'api', 'ms, queued')).toBeCloseTo(5);
  });

  it('takes the largest change over every same-code pair and counts the pairs', () => {
    const runs = [
      entry('same-1', 't1', [['a', [100], undefined, 's']]),
      entry('same-2', 't2', [['a', [110], undefined, 's']]), // +10 %
      entry('same-3', 't3', [['a', [88], undefined, 's']]), // −20 %
    ];
    const table = measureNoise(runs, sameCode);
    expect(noiseOf(table, 'b', 's')).toBeCloseTo(0.2);
    expect(table.pools[0]?.pairs).toBe(2);
  });

  it('ignores pairs that are not the same code, and pairs git cannot judge', () => {
    const runs = [
      entry('same-1', 't1', [['a', [100]]]),
      entry('same-2', 't2', [['a', [101]]]), // +1 %: the same code
      entry('changed', 't3', [['a', [200]]]), // the code changed: +98 % is not noise
      entry('changed', 't4', [['a', [204]]]), // +2 %: the same commit
    ];
    const table = measureNoise(runs, sameCode);
    expect(table.pairs.map((p) => p.sameCode)).toEqual([true, false, true]);
    expect(noiseOf(table, 'b', 'x')).toBeCloseTo(0.02);
    expect(table.pools[0]?.pairs).toBe(2);
    const unknown = measureNoise(runs, () => undefined);
    expect(unknown.pools).toEqual([]);
    expect(unknown.pairs[0]?.sameCode).toBeUndefined();
  });

  it('is not measured yet without a same-code pair', () => {
    expect(measureNoise([entry('c1', 't1', [['a', [1]]])], sameCode).pools).toEqual([]);
    expect(
      measureNoise([entry('c1', 't1', [['a', [1]]]), entry('c2', 't2', [['a', [2]]])], sameCode)
        .pools,
    ).toEqual([]);
  });
});

describe('comparing a run with the history', () => {
  const a = entry('same-a', 'A', [['f', [100]]]);
  const b = entry('same-b', 'B', [['f', [110]]]); // A → B: +10 %, the same code
  const c = entry('other', 'C', [['f', [300]]]); // B → C: the code changed
  const e = entry('other', 'E', [['f', [390]]]); // C → E: +30 %, the same code

  it('does not use the pair it judges for its own noise', () => {
    const { previous, noise } = compareWithHistory([a, b, c], e, sameCode);
    expect(previous?.generatedAt).toBe('C');
    expect(previous?.sameCode).toBe(true);
    expect(noiseOf(noise.judged, 'b', 'x')).toBeCloseTo(0.1);
    expect(agreement(previous!.figures.f!, e.figures.f!, noiseOf(noise.judged, 'b', 'x'))).toBe(
      'differ',
    );
    // The next run is judged with C → E too.
    expect(noiseOf(noise.next, 'b', 'x')).toBeCloseTo(0.3);
    expect(noise.next.pools[0]?.pairs).toBe(2);
  });

  it('judges a run already in the history (a re-render) by the runs before it only', () => {
    const later = entry('other', 'F', [['f', [1000]]]);
    const history = appendRun(appendRun([a, b, c], e), later);
    const { previous, noise } = compareWithHistory(history, e, sameCode);
    expect(previous?.generatedAt).toBe('C');
    expect(noise.judged.pairs.map((p) => p.after.generatedAt)).toEqual(['B', 'C']);
    expect(noiseOf(noise.judged, 'b', 'x')).toBeCloseTo(0.1);
    expect(noise.next.pairs.map((p) => p.after.generatedAt)).toEqual(['B', 'C', 'E']);
  });

  it('has nothing to compare with, and no noise, as the first run', () => {
    const { previous, noise } = compareWithHistory([], a, sameCode);
    expect(previous).toBeUndefined();
    expect(noise.judged.pools).toEqual([]);
    expect(noise.next.pairs).toEqual([]);
  });

  it('keeps the last 12 runs, oldest first, and a run once', () => {
    let history: HistoryRun[] = [];
    for (let i = 0; i < 14; i++) history = appendRun(history, entry(`c${i}`, `t${i}`, []));
    expect(history.map((r) => r.generatedAt)).toEqual(
      Array.from({ length: 12 }, (_, i) => `t${i + 2}`),
    );
    expect(appendRun(history, history[11]!)).toHaveLength(12);
  });
});

function section(doc: string, heading: string): string {
  const start = doc.indexOf(heading);
  return doc.slice(start, doc.indexOf('\n## ', start + 1));
}

describe('the run-to-run section', () => {
  it('compares with the previous run, lists goals and differences, and says whether the code changed', () => {
    const before = run('abc', [
      ['goal', [1, 1.1, 1.2], 1.5],
      ['same', [5, 6]],
      ['moved', [5, 6]],
      ['count', [3]],
    ]);
    const after = run('abc', [
      ['goal', [1.05, 1.15], 1.5],
      ['same', [5.5, 7]],
      ['moved', [8, 9]],
      ['count', [3]],
      ['new', [1]],
    ]);
    after.previous = { ...summarizeRun(before), sameCode: true };
    const doc = section(renderDoc(after, 'chart.svg'), '## Run to run');
    expect(doc).toContain('The same code ran both times');
    expect(doc).toContain('Of 4 figures measured by both runs, 3 agree');
    expect(doc).toContain('1 differ, and 0 are single samples');
    expect(doc).toContain('No run-to-run noise is measured for this run');
    expect(doc).toContain(
      '| figure goal | 1.10 (1 – 1.20) x | 1.15 (1.05 – 1.15) x | +4.5 % | not measured yet | yes (ranges overlap) |',
    );
    expect(doc).toContain(
      '| figure moved | 6 (5 – 6) x | 9 (8 – 9) x | +50 % | not measured yet | **no** (ranges apart; no noise measured yet) |',
    );
    expect(doc).not.toContain('figure same');
    expect(doc).not.toContain('figure count');

    const changed = run('def', [['goal', [1], 1.5]]);
    changed.previous = { ...summarizeRun(before), sameCode: false };
    expect(renderDoc(changed, 'chart.svg')).toContain('The code changed between the two runs');
    expect(renderDoc(before, 'chart.svg')).toContain('No earlier full run');
  });

  it('judges by the noise of earlier runs, shows it, and tabulates the noise for the next run', () => {
    const specs = (t: number, p: number): Spec[] => [
      ['time', [t], undefined, 's', 'pull'],
      ['ratio', [p, p], undefined, '×', 'pull'],
    ];
    const history = [
      summarizeRun(run('same-1', specs(1, 1), 'A')),
      summarizeRun(run('same-2', specs(1.2, 1.1), 'B')), // s +20 %, × +10 %
      summarizeRun(run('other', specs(2, 1), 'C')),
    ];
    const now = run('other', specs(2.3, 1.2), 'E'); // s +15 %: within; × +20 %: beyond
    const compared = compareWithHistory(history, summarizeRun(now), sameCode);
    Object.assign(now, compared);
    const doc = renderDoc(now, 'chart.svg');
    const text = section(doc, '## Run to run');
    expect(text).toContain(
      '- A (commit same-1) → B (commit same-2): the same code, measures the noise',
    );
    expect(text).toContain('- B (commit same-2) → C (commit other): the code changed, left out');
    expect(text).not.toContain('→ E');
    expect(text).toContain('Of 2 figures measured by both runs, 1 agree');
    expect(text).toContain(
      '| figure time | 2 s | 2.30 s | +15 % | ±20 % | yes (change within the noise) |',
    );
    expect(text).toContain(
      '| figure ratio | 1 (1 – 1) × | 1.20 (1.20 – 1.20) × | +20 % | ±10 % | **no** (change beyond the noise) |',
    );
    expect(text).toContain('### Run-to-run noise on this machine');
    expect(text).toContain('| pull | s | ±20 % | 2 | ±20 % |');
    expect(text).toContain('| pull | × | ±20 % | 2 | ±10 % |');
    expect(section(doc, '\n## A\n')).toContain(
      'Run-to-run noise of pull on this machine ([how it is measured](#run-to-run)): s: ±20 % (2 pairs); ×: ±20 % (2 pairs).',
    );
  });
});
