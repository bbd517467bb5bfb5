// The admission rule of ADR 0014, one rule per test: leaving (ready, failed, unselected,
// stalled), filling free slots in name order with stalled nodes last, paused, the per-PrePull cap
// and the cluster cap across PrePulls (a node admitted twice counts once).
import { describe, expect, it } from '@jest/globals';
import type { Admission } from '../api/rollout.ts';
import { type AdmissionInput, type PacedPrePull, admit } from './admission.ts';
import type { NodeProgress } from './aggregate.ts';

const T0 = Date.parse('2026-12-07T19:00:00.000Z');
const MIN = 60_000;
const iso = (ms: number): string => new Date(ms).toISOString();

const WAITING: NodeProgress = { state: 'waiting', settled: false };
const PULLING: NodeProgress = { state: 'pulling', settled: false };
const READY: NodeProgress = { state: 'ready', settled: true };
const FAILED: NodeProgress = { state: 'failed', settled: true };
const FAILING: NodeProgress = { state: 'failed', settled: false };

function nodes(spec: Record<string, NodeProgress>): Map<string, NodeProgress> {
  return new Map(Object.entries(spec));
}

function waiting(...names: string[]): Map<string, NodeProgress> {
  return new Map(names.map((n) => [n, WAITING]));
}

function paced(key: string, over: Partial<PacedPrePull> = {}): PacedPrePull {
  return { key, cap: 1, paused: false, nodes: waiting('a', 'b', 'c'), admitted: [], ...over };
}

function run(prePulls: PacedPrePull[], over: Partial<AdmissionInput> = {}) {
  return admit({
    prePulls,
    lastChangeSeen: () => T0,
    now: T0 + MIN,
    admissionTimeoutMs: 5 * MIN,
    stalledBefore: new Set(),
    ...over,
  });
}

const names = (list: Admission[] | undefined): string[] => (list ?? []).map((a) => a.node);

describe('admit', () => {
  it('fills free slots in node name order, since now', () => {
    const result = run([paced('ns/p', { cap: 2, nodes: waiting('c', 'a', 'b') })]);
    expect(result.admitted.get('ns/p')).toEqual([
      { node: 'a', since: iso(T0 + MIN) },
      { node: 'b', since: iso(T0 + MIN) },
    ]);
    expect(result.dropped).toEqual([]);
    expect(result.distinct).toBe(2);
  });

  it('keeps an admitted node that is still working, with its since', () => {
    const since = iso(T0 - 2 * MIN);
    const result = run([
      paced('ns/p', { nodes: nodes({ a: WAITING, b: PULLING }), admitted: [{ node: 'b', since }] }),
    ]);
    expect(result.admitted.get('ns/p')).toEqual([{ node: 'b', since }]);
  });

  it('drops a ready node and gives its slot to the next one', () => {
    const result = run([
      paced('ns/p', {
        nodes: nodes({ a: READY, b: WAITING, c: WAITING }),
        admitted: [{ node: 'a', since: iso(T0) }],
      }),
    ]);
    expect(result.dropped).toEqual([{ prePull: 'ns/p', node: 'a', reason: 'ready' }]);
    expect(names(result.admitted.get('ns/p'))).toEqual(['b']);
  });

  it('drops a settled failed node, but keeps one that still has images to pull', () => {
    const result = run([
      paced('ns/p', {
        cap: 2,
        nodes: nodes({ a: FAILED, b: FAILING, c: WAITING }),
        admitted: [
          { node: 'a', since: iso(T0) },
          { node: 'b', since: iso(T0) },
        ],
      }),
    ]);
    expect(result.dropped).toEqual([{ prePull: 'ns/p', node: 'a', reason: 'failed' }]);
    expect(names(result.admitted.get('ns/p'))).toEqual(['b', 'c']);
  });

  it('never admits ready or failed nodes', () => {
    const result = run([
      paced('ns/p', { cap: 5, nodes: nodes({ a: READY, b: FAILED, c: FAILING }) }),
    ]);
    expect(names(result.admitted.get('ns/p'))).toEqual(['c']);
  });

  it('drops a node no longer selected (or gone)', () => {
    const result = run([
      paced('ns/p', { nodes: waiting('b'), admitted: [{ node: 'gone', since: iso(T0) }] }),
    ]);
    expect(result.dropped).toEqual([{ prePull: 'ns/p', node: 'gone', reason: 'unselected' }]);
    expect(names(result.admitted.get('ns/p'))).toEqual(['b']);
  });

  it('drops a node stalled for the timeout since the later of its admission and its last change', () => {
    const prePull = paced('ns/p', { admitted: [{ node: 'a', since: iso(T0) }] });
    // Last change seen at T0 + 1 min: stalled at T0 + 6 min, not before.
    const seen = { lastChangeSeen: () => T0 + MIN };
    expect(run([prePull], { ...seen, now: T0 + 6 * MIN - 1 }).dropped).toEqual([]);
    const result = run([prePull], { ...seen, now: T0 + 6 * MIN });
    expect(result.dropped).toEqual([{ prePull: 'ns/p', node: 'a', reason: 'stalled' }]);
    expect(names(result.admitted.get('ns/p'))).toEqual(['b']);
    // Stalled now, it goes after the other waiting nodes; alone, it gets its slot back.
    const alone = paced('ns/p', { nodes: waiting('a'), admitted: [{ node: 'a', since: iso(T0) }] });
    const again = run([alone], { ...seen, now: T0 + 6 * MIN });
    expect(again.dropped).toEqual([{ prePull: 'ns/p', node: 'a', reason: 'stalled' }]);
    expect(again.admitted.get('ns/p')).toEqual([{ node: 'a', since: iso(T0 + 6 * MIN) }]);
    // An admission newer than the last change counts from the admission.
    const fresh = paced('ns/p', { admitted: [{ node: 'a', since: iso(T0 + 5 * MIN) }] });
    expect(run([fresh], { ...seen, now: T0 + 6 * MIN }).dropped).toEqual([]);
    // An unreadable since counts from the last change (the controller's start at worst).
    const junk = paced('ns/p', { admitted: [{ node: 'a', since: 'yesterday' }] });
    expect(run([junk], { ...seen, now: T0 + 6 * MIN }).dropped).toHaveLength(1);
  });

  it('admits nodes that stalled before last', () => {
    const result = run([paced('ns/p', { cap: 2 })], { stalledBefore: new Set(['a']) });
    expect(names(result.admitted.get('ns/p'))).toEqual(['b', 'c']);
    const only = run([paced('ns/p', { cap: 3 })], { stalledBefore: new Set(['a']) });
    expect(names(only.admitted.get('ns/p'))).toEqual(['a', 'b', 'c']);
  });

  it('admits no new node while paused, and keeps the admitted ones working', () => {
    const result = run([
      paced('ns/p', {
        cap: 3,
        paused: true,
        nodes: nodes({ a: READY, b: PULLING, c: WAITING }),
        admitted: [
          { node: 'a', since: iso(T0) },
          { node: 'b', since: iso(T0) },
        ],
      }),
    ]);
    expect(result.dropped).toEqual([{ prePull: 'ns/p', node: 'a', reason: 'ready' }]);
    expect(names(result.admitted.get('ns/p'))).toEqual(['b']);
  });

  it('admits every waiting node without a cap of its own (cluster cap only)', () => {
    const result = run([paced('ns/p', { cap: undefined })]);
    expect(names(result.admitted.get('ns/p'))).toEqual(['a', 'b', 'c']);
  });

  it('keeps admissions above a lowered cap (no preemption) but admits no more', () => {
    const result = run([
      paced('ns/p', {
        cap: 1,
        admitted: [
          { node: 'a', since: iso(T0) },
          { node: 'b', since: iso(T0) },
        ],
      }),
    ]);
    expect(names(result.admitted.get('ns/p'))).toEqual(['a', 'b']);
  });

  it('caps distinct nodes across PrePulls, in PrePull name order', () => {
    const result = run(
      [
        paced('ns/second', { cap: 5, nodes: waiting('c', 'd') }),
        paced('ns/first', { cap: 5, nodes: waiting('a', 'b') }),
      ],
      { clusterCap: 3 },
    );
    expect(names(result.admitted.get('ns/first'))).toEqual(['a', 'b']);
    expect(names(result.admitted.get('ns/second'))).toEqual(['c']);
    expect(result.distinct).toBe(3);
  });

  it('counts a node admitted to two PrePulls once for the cluster cap', () => {
    const result = run(
      [
        paced('ns/one', { cap: 5, nodes: waiting('a', 'b') }),
        paced('ns/two', { cap: 5, nodes: waiting('a', 'b', 'c') }),
      ],
      { clusterCap: 2 },
    );
    expect(names(result.admitted.get('ns/one'))).toEqual(['a', 'b']);
    // a and b already hold cluster slots; c would be a third distinct node.
    expect(names(result.admitted.get('ns/two'))).toEqual(['a', 'b']);
    expect(result.distinct).toBe(2);
  });

  it('with a full cluster cap, still admits a node that already holds a slot elsewhere', () => {
    const result = run(
      [
        paced('ns/one', { cap: 5, nodes: waiting('z'), admitted: [{ node: 'z', since: iso(T0) }] }),
        paced('ns/two', { cap: 5, nodes: waiting('a', 'z') }),
      ],
      { clusterCap: 1 },
    );
    expect(names(result.admitted.get('ns/two'))).toEqual(['z']);
  });

  it('frees cluster slots from every PrePull before filling any', () => {
    const result = run(
      [
        paced('ns/a', { cap: 5, nodes: waiting('x', 'y') }),
        paced('ns/b', {
          cap: 5,
          nodes: nodes({ m: READY }),
          admitted: [{ node: 'm', since: iso(T0) }],
        }),
      ],
      { clusterCap: 1 },
    );
    expect(names(result.admitted.get('ns/a'))).toEqual(['x']);
    expect(result.admitted.get('ns/b')).toEqual([]);
  });

  it('reads a served list defensively: a node listed twice counts once', () => {
    const result = run([
      paced('ns/p', {
        cap: 2,
        admitted: [
          { node: 'a', since: iso(T0) },
          { node: 'a', since: iso(T0) },
        ],
      }),
    ]);
    expect(names(result.admitted.get('ns/p'))).toEqual(['a', 'b']);
  });

  it('is deterministic whatever the input order', () => {
    const one = run([paced('ns/x', { cap: 2, nodes: waiting('q', 'p', 'r') }), paced('ns/w')], {
      clusterCap: 2,
    });
    const two = run([paced('ns/w'), paced('ns/x', { cap: 2, nodes: waiting('r', 'q', 'p') })], {
      clusterCap: 2,
    });
    expect([...one.admitted]).toEqual([...two.admitted]);
    expect(names(one.admitted.get('ns/w'))).toEqual(['a']);
    expect(names(one.admitted.get('ns/x'))).toEqual(['p']);
  });
});
