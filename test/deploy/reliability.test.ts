// docs/reliability.md against the fault suite: every fault in the catalogue
// (test/harness/fault-report.ts) is injected by an integration test that records it, and has its
// row in the page's table with a figure or a plain word for what was seen — so a fault added to
// the suite without its row, a row for a fault nothing tries, or a catalogued fault no test
// injects fails here.
import { describe, expect, it } from '@jest/globals';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FAULTS, type FaultId } from '../harness/fault-report.ts';
import { ROOT } from './manifests.ts';

const page = readFileSync(join(ROOT, 'docs', 'reliability.md'), 'utf8');
const ids = Object.keys(FAULTS) as FaultId[];

/** The first row (the summary's) of each fault id named in backticks in a table's first cell. */
function rows(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of page.split('\n')) {
    if (!line.startsWith('|')) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const id = /^`([a-z0-9-]+)`/.exec(cells[0] ?? '')?.[1];
    if (id !== undefined && !found.has(id)) found.set(id, cells);
  }
  return found;
}

/** The text of every integration test file that records faults. */
function recordingTests(): string[] {
  const dir = join(ROOT, 'test', 'integration');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .filter((text) => text.includes('recordFault('));
}

describe('docs/reliability.md', () => {
  const table = rows();

  it.each(ids)('has a row for %s with what prepull reports and the time to converge', (id) => {
    const cells = table.get(id);
    expect(cells).toBeDefined();
    expect(cells?.length).toBeGreaterThanOrEqual(4);
    for (const cell of cells ?? []) expect(cell).not.toBe('');
  });

  it('lists no fault the catalogue does not hold', () => {
    expect([...table.keys()].filter((id) => !(id in FAULTS))).toEqual([]);
  });

  it.each(ids)('%s is injected and recorded by an integration test', (id) => {
    // Named as a string in a test that records faults (`id: '…'`, or chosen by runtime).
    expect(recordingTests().some((text) => text.includes(`'${id}'`))).toBe(true);
  });
});
