// The run-to-run comparison of the performance report (issue 8): when two runs agree within the
// noise the page reports, and what the section lists.
import { describe, expect, it } from '@jest/globals';
import { COMMIT_COMPONENT, type Environment } from './environment.ts';
import { type Results, agreement, renderDoc, summarizeRun } from './report.ts';

const environment = (commit: string): Environment => ({
  cpu: { model: 'test', count: 2 },
  memoryGiB: 24,
  kernel: 'k',
  node: 'v24',
  components: { [COMMIT_COMPONENT]: commit },
  load: { atStart: [0, 0, 0] },
});

function run(commit: string, figures: [string, number[], number?][]): Results {
  return {
    generatedAt: `run at ${commit}`,
    quick: false,
    totalSeconds: 1,
    budgetSeconds: 600,
    environment: environment(commit),
    benchmarks: [
      {
        name: 'b',
        area: 'A',
        method: 'm',
        seconds: 1,
        figures: figures.map(([id, values, goal]) => {
          const sorted = [...values].sort((x, y) => x - y);
          return {
            id,
            label: `figure ${id}`,
            unit: 'x',
            median: sorted[Math.floor(sorted.length / 2)]!,
            min: sorted[0]!,
            max: sorted[sorted.length - 1]!,
            samples: values.length,
            values,
            ...(goal === undefined
              ? {}
              : { goal: { op: '<=' as const, value: goal, source: 't' } }),
          };
        }),
      },
    ],
  };
}

describe('agreement', () => {
  const f = (values: number[]) => summarizeRun(run('c', [['x', values]])).figures.x!;
  it('takes overlapping spreads as agreeing and separate ones as differing', () => {
    expect(agreement(f([1, 2, 3]), f([2.5, 4, 5]))).toBe('agree');
    expect(agreement(f([1, 2, 3]), f([3, 4]))).toBe('agree');
    expect(agreement(f([1, 2, 3]), f([3.1, 4]))).toBe('differ');
  });
  it('judges a single sample only by equality', () => {
    expect(agreement(f([1000]), f([1000]))).toBe('agree');
    expect(agreement(f([200]), f([240]))).toBe('unjudged');
    expect(agreement(f([1, 2]), f([7]))).toBe('unjudged');
  });
});

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
    const doc = renderDoc(after, 'chart.svg');
    const start = doc.indexOf('## Run to run');
    const section = doc.slice(start, doc.indexOf('\n## ', start + 1));
    expect(section).toContain('The same code ran both times');
    expect(section).toContain('Of 4 figures measured by both runs, 3 agree');
    expect(section).toContain('1 differ, and 0 are single samples');
    expect(section).toContain(
      '| figure goal | 1.10 (1 – 1.20) x | 1.15 (1.05 – 1.15) x | +4.5 % | yes |',
    );
    expect(section).toContain('| figure moved | 6 (5 – 6) x | 9 (8 – 9) x | +50 % | **no** |');
    expect(section).not.toContain('figure same');
    expect(section).not.toContain('figure count');

    const changed = run('def', [['goal', [1], 1.5]]);
    changed.previous = { ...summarizeRun(before), sameCode: false };
    expect(renderDoc(changed, 'chart.svg')).toContain('The code changed between the two runs');
    expect(renderDoc(before, 'chart.svg')).toContain('No earlier full run');
  });
});
