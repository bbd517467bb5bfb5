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
  NOISE_CONFIDENCE,
  compareWithHistory,
  logChange,
  measureNoise,
  noiseBound,
  noiseOf,
  plusMinus,
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
    // ×1.2: inside a factor of 1.25, at 1.2, outside 1.19.
    expect(agreement(f([200]), f([240]), Math.log(1.25))).toBe('agree');
    expect(agreement(f([200]), f([240]), Math.log(1.2))).toBe('agree');
    expect(agreement(f([200]), f([240]), Math.log(1.19))).toBe('differ');
    // A halving is as far as a doubling.
    expect(agreement(f([240]), f([120]), Math.log(2))).toBe('agree');
    expect(agreement(f([240]), f([120]), Math.log(1.99))).toBe('differ');
    // Ranges apart, but the medians (2 → 4, ×2) moved no more than the noise.
    expect(agreement(f([1, 2, 3]), f([3.5, 4, 5]), Math.log(2))).toBe('agree');
    expect(agreement(f([1, 2, 3]), f([3.5, 4, 5]), Math.log(1.5))).toBe('differ');
    // A noise of 0 (every earlier pair equal) still lets overlapping ranges agree.
    expect(agreement(f([1, 2, 3]), f([2.5, 4, 5]), 0)).toBe('agree');
    expect(agreement(f([77.6]), f([77.5]), 0)).toBe('differ');
    // A change from 0 has no relative size: it is beyond any noise.
    expect(agreement(f([0]), f([1]), 10)).toBe('differ');
  });
});

describe('a change of median and its bound', () => {
  it('measures a change as |ln(after ÷ before)|, with no size across 0 or a change of sign', () => {
    expect(logChange(100, 100)).toBe(0);
    expect(logChange(100, 200)).toBeCloseTo(Math.log(2));
    expect(logChange(200, 100)).toBeCloseTo(Math.log(2));
    expect(logChange(-2, -4)).toBeCloseTo(Math.log(2));
    expect(logChange(0, 1)).toBeUndefined();
    expect(logChange(1, 0)).toBeUndefined();
    expect(logChange(-1, 1)).toBeUndefined();
  });

  it('is S × ((1 − c)^(−1/m) − 1): wide from few changes, near ln(1 ÷ (1 − c)) × mean from many', () => {
    expect(noiseBound(1, 1, 0.5)).toBeCloseTo(1);
    expect(noiseBound(0.3, 3, 0.999)).toBeCloseTo(0.3 * (1000 ** (1 / 3) - 1));
    expect(noiseBound(0, 5)).toBe(0);
    expect(noiseBound(0, 0)).toBe(0);
    // 10,000 changes of mean 0.1: close to 0.1 × ln 1000.
    expect(noiseBound(1000, 10_000) / (0.1 * Math.log(1000))).toBeCloseTo(1, 2);
  });

  it('is exceeded by a new exponential change with chance 1 − c, whatever the scale', () => {
    // mulberry32: a seeded PRNG, so the test repeats.
    let state = 42;
    const random = (): number => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const exponential = (scale: number): number => -scale * Math.log(1 - random());
    const trials = 100_000;
    for (const [m, scale] of [
      [3, 0.05],
      [12, 2],
    ] as const) {
      let outside = 0;
      for (let i = 0; i < trials; i++) {
        let sum = 0;
        for (let j = 0; j < m; j++) sum += exponential(scale);
        if (exponential(scale) > noiseBound(sum, m, 0.99)) outside += 1;
      }
      // Expected 1,000 of 100,000 (sd ≈ 31): a bound off by a tenth would fall outside.
      expect(outside).toBeGreaterThan(880);
      expect(outside).toBeLessThan(1120);
    }
  });

  it('is shown as how far up and down a median may move, or as a factor beyond 2', () => {
    expect(plusMinus(0)).toBe('0 %');
    expect(plusMinus(Math.log(1.2))).toBe('+20 % / −17 %');
    expect(plusMinus(Math.log(1.05))).toBe('+5.0 % / −4.8 %');
    expect(plusMinus(Math.log(3.5))).toBe('×/÷ 3.50');
    expect(plusMinus(Math.log(123_456))).toBe('×/÷ 1e+5');
  });
});

describe('the run-to-run noise', () => {
  it('pools a benchmark’s changes of one unit and bounds them at the stated confidence', () => {
    const before = entry('same-1', 't1', [
      ['p.a', [1], undefined, 's', 'pull'],
      ['p.b', [2], undefined, 's', 'pull'],
      ['p.r', [1], undefined, '×', 'pull'],
      ['q.a', [10], undefined, 's', 'other'],
    ]);
    const after = entry('same-2', 't2', [
      ['p.a', [1.1], undefined, 's', 'pull'], // ×1.1
      ['p.b', [1.4], undefined, 's', 'pull'], // ×0.7: the largest
      ['p.r', [1.05], undefined, '×', 'pull'], // ×1.05, another unit
      ['q.a', [10], undefined, 's', 'other'], // equal: noise 0, measured
    ]);
    const table = measureNoise([before, after], sameCode);
    expect(table.pools.map((p) => [p.benchmark, p.unit, p.changes, p.pairs])).toEqual([
      ['other', 's', 0, 1],
      ['pull', 's', 2, 1],
      ['pull', '×', 1, 1],
    ]);
    const sum = Math.log(1.1) + Math.log(1 / 0.7);
    expect(noiseOf(table, 'pull', 's')).toBeCloseTo(noiseBound(sum, 2, NOISE_CONFIDENCE));
    expect(table.pools[1]?.largest).toBeCloseTo(Math.log(1 / 0.7));
    expect(noiseOf(table, 'pull', '×')).toBeCloseTo(noiseBound(Math.log(1.05), 1));
    expect(noiseOf(table, 'other', 's')).toBe(0);
    expect(noiseOf(table, 'other', '×')).toBeUndefined();
  });

  it('leaves out changes of 0 (a count that repeats), which would narrow the others’ bound', () => {
    const before = entry('same-1', 't1', [
      ['count', [5]],
      ['time', [1]],
    ]);
    const after = entry('same-2', 't2', [
      ['count', [5]],
      ['time', [1.1]],
    ]);
    const pool = measureNoise([before, after], sameCode).pools[0]!;
    expect(pool.changes).toBe(1);
    expect(pool.noise).toBeCloseTo(noiseBound(Math.log(1.1), 1));
  });

  it('pools a figure with a noise group apart from the other figures of its unit', () => {
    const before = entry('same-1', 't1', [
      ['delivery', [30], undefined, 'ms', 'api'],
      ['queued', [100], undefined, 'ms', 'api', 'ms, queued'],
    ]);
    const after = entry('same-2', 't2', [
      ['delivery', [33], undefined, 'ms', 'api'], // ×1.1
      ['queued', [600], undefined, 'ms', 'api', 'ms, queued'], // ×6: its own pool only
    ]);
    const table = measureNoise([before, after], sameCode);
    expect(noiseOf(table, 'api', 'ms')).toBeCloseTo(noiseBound(Math.log(1.1), 1));
    expect(noiseOf(table, 'api', 'ms, queued')).toBeCloseTo(noiseBound(Math.log(6), 1));
  });

  it('takes the changes of every same-code pair, counts the pairs, and checks the model on them', () => {
    const runs = [
      entry('same-1', 't1', [['a', [100], undefined, 's']]),
      entry('same-2', 't2', [['a', [110], undefined, 's']]), // ×1.1
      entry('same-3', 't3', [['a', [88], undefined, 's']]), // ×0.8
      entry('same-4', 't4', [['a', [44], undefined, 's']]), // ×0.5: beyond what the others bound
    ];
    const table = measureNoise(runs, sameCode);
    const sum = Math.log(1.1) + Math.log(1.25) + Math.log(2);
    expect(noiseOf(table, 'b', 's')).toBeCloseTo(noiseBound(sum, 3));
    expect(table.pools[0]?.pairs).toBe(3);
    expect(table.pools[0]?.largest).toBeCloseTo(Math.log(2));
    // Leave one pair out: from two changes the bound at 99.9 % is ~30 times their sum, so even
    // ×0.5 is within the bound of ×1.1 and ×0.8 (at 50 % confidence it would not be).
    expect(table.check).toEqual({ judged: 3, outside: 0, expected: 3 * (1 - NOISE_CONFIDENCE) });
    expect(noiseBound(Math.log(1.1) + Math.log(1.25), 2, 0.5)).toBeLessThan(Math.log(2));
  });

  it('counts a change beyond the bound of the other pairs in its check', () => {
    const runs = [
      entry('same-1', 't1', [
        ['a', [100], undefined, 's'],
        ['n', [3]],
      ]),
      entry('same-2', 't2', [
        ['a', [101], undefined, 's'],
        ['n', [3]],
      ]),
      entry('same-3', 't3', [
        ['a', [100], undefined, 's'],
        ['n', [4]],
      ]), // n: 0 before, so beyond
    ];
    const table = measureNoise(runs, sameCode);
    // a: two changes, each within the other's bound; n: its change of ×4/3 against a bound of 0.
    expect(table.check).toEqual({ judged: 3, outside: 1, expected: 3 * (1 - NOISE_CONFIDENCE) });
  });

  it('ignores pairs that are not the same code, and pairs git cannot judge', () => {
    const runs = [
      entry('same-1', 't1', [['a', [100]]]),
      entry('same-2', 't2', [['a', [101]]]), // ×1.01: the same code
      entry('changed', 't3', [['a', [200]]]), // the code changed: ×1.98 is not noise
      entry('changed', 't4', [['a', [204]]]), // ×1.02: the same commit
    ];
    const table = measureNoise(runs, sameCode);
    expect(table.pairs.map((p) => p.sameCode)).toEqual([true, false, true]);
    expect(noiseOf(table, 'b', 'x')).toBeCloseTo(noiseBound(Math.log(1.01) + Math.log(1.02), 2));
    expect(table.pools[0]?.pairs).toBe(2);
    const unknown = measureNoise(runs, () => undefined);
    expect(unknown.pools).toEqual([]);
    expect(unknown.check).toBeUndefined();
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
  const b = entry('same-b', 'B', [['f', [100]]]); // A → B: equal, the same code: noise 0
  const c = entry('other', 'C', [['f', [300]]]); // B → C: the code changed
  const e = entry('other', 'E', [['f', [390]]]); // C → E: ×1.3, the same code

  it('does not use the pair it judges for its own noise', () => {
    const { previous, noise } = compareWithHistory([a, b, c], e, sameCode);
    expect(previous?.generatedAt).toBe('C');
    expect(previous?.sameCode).toBe(true);
    expect(noiseOf(noise.judged, 'b', 'x')).toBe(0);
    expect(agreement(previous!.figures.f!, e.figures.f!, noiseOf(noise.judged, 'b', 'x'))).toBe(
      'differ',
    );
    // The next run is judged with C → E too.
    expect(noiseOf(noise.next, 'b', 'x')).toBeCloseTo(noiseBound(Math.log(1.3), 1));
    expect(noise.next.pools[0]?.pairs).toBe(2);
  });

  it('judges a run already in the history (a re-render) by the runs before it only', () => {
    const later = entry('other', 'F', [['f', [1000]]]);
    const history = appendRun(appendRun([a, b, c], e), later);
    const { previous, noise } = compareWithHistory(history, e, sameCode);
    expect(previous?.generatedAt).toBe('C');
    expect(noise.judged.pairs.map((p) => p.after.generatedAt)).toEqual(['B', 'C']);
    expect(noiseOf(noise.judged, 'b', 'x')).toBe(0);
    expect(noise.next.pairs.map((p) => p.after.generatedAt)).toEqual(['B', 'C', 'E']);
  });

  it('has nothing to compare with, and no noise, as the first run', () => {
    const { previous, noise } = compareWithHistory([], a, sameCode);
    expect(previous).toBeUndefined();
    expect(noise.judged.pools).toEqual([]);
    expect(noise.next.pairs).toEqual([]);
  });

  it('keeps the last 24 runs, oldest first, and a run once', () => {
    let history: HistoryRun[] = [];
    for (let i = 0; i < 26; i++) history = appendRun(history, entry(`c${i}`, `t${i}`, []));
    expect(history.map((r) => r.generatedAt)).toEqual(
      Array.from({ length: 24 }, (_, i) => `t${i + 2}`),
    );
    expect(appendRun(history, history[23]!)).toHaveLength(24);
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
    const specs = (t: number, n: number): Spec[] => [
      ['time', [t], undefined, 's', 'pull'],
      ['count', [n, n], undefined, 'layers', 'pull'],
    ];
    const history = [
      summarizeRun(run('same-1', specs(1, 7), 'A')),
      summarizeRun(run('same-2', specs(1.2, 7), 'B')), // s ×1.2; layers equal: noise 0
      summarizeRun(run('other', specs(2, 7), 'C')),
    ];
    const now = run('other', specs(2.3, 8), 'E'); // s ×1.15: within; layers 7 → 8: beyond
    const compared = compareWithHistory(history, summarizeRun(now), sameCode);
    Object.assign(now, compared);
    const doc = renderDoc(now, 'chart.svg');
    const text = section(doc, '## Run to run');
    expect(text).toContain(
      '- A (commit same-1) → B (commit same-2): the same code, measures the noise',
    );
    expect(text).toContain('- B (commit same-2) → C (commit other): the code changed, left out');
    expect(text).not.toContain('→ E');
    expect(text).toContain('with 99.9 % confidence');
    expect(text).toContain('Of 2 figures measured by both runs, 1 agree');
    const judged = plusMinus(noiseBound(Math.log(1.2), 1));
    expect(text).toContain(
      `| figure time | 2 s | 2.30 s | +15 % | ${judged} | yes (change within the noise) |`,
    );
    expect(text).toContain(
      '| figure count | 7 (7 – 7) layers | 8 (8 – 8) layers | +14 % | 0 % | **no** (change beyond the noise) |',
    );
    expect(text).toContain('### Run-to-run noise on this machine');
    const next = plusMinus(noiseBound(Math.log(1.2) + Math.log(1.15), 2));
    const layers = plusMinus(noiseBound(Math.log(8 / 7), 1));
    expect(text).toContain(`| pull | s | ${next} | +20 % / −17 % | 2 (2) | ${judged} |`);
    expect(text).toContain(`| pull | layers | ${layers} | +14 % / −13 % | 1 (2) | 0 % |`);
    // The model checked on the history: the count's change was beyond the other pair's bound.
    expect(text).toContain('of 3 changes that were not 0, 1 went beyond their noise, where 0.003');
    expect(section(doc, '\n## A\n')).toContain(
      'Run-to-run noise of pull on this machine ([how it is measured](#run-to-run)): ' +
        `s: ${next} (2 changes, 2 pairs); layers: ${layers} (1 change, 2 pairs).`,
    );
  });
});
