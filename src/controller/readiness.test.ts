// Readiness labels and the start-up taint: which patches each node gets, that only managed
// prepull.dev/ labels are removed, that other labels and taints are never touched, and the
// JSON patch that tests the taint list it read.
import { describe, expect, it } from '@jest/globals';
import type { NodeProgress, NodeView, Taint } from './aggregate.ts';
import { type LabelledPrePull, PENDING_TAINT, readiness, taintRemoval } from './readiness.ts';

const READY: NodeProgress = { state: 'ready', settled: true };
const PULLING: NodeProgress = { state: 'pulling', settled: false };
const FAILED: NodeProgress = { state: 'failed', settled: true };
const PENDING: Taint = { key: PENDING_TAINT, effect: 'NoSchedule' };
const OTHER: Taint = { key: 'dedicated', value: 'gpu', effect: 'NoSchedule' };

function node(name: string, labels: Record<string, string> = {}, taints: Taint[] = []): NodeView {
  return { name, labels, taints };
}

function pp(
  nodeLabel: string | undefined,
  progress: Record<string, NodeProgress>,
): LabelledPrePull {
  return { nodeLabel, progress: new Map(Object.entries(progress)) };
}

describe('readiness labels', () => {
  it('labels exactly the selected nodes ready for the PrePull, and only changes what differs', () => {
    const result = readiness({
      nodes: [
        node('a'),
        node('b', { 'prepull.dev/web': 'true' }),
        node('c', { 'prepull.dev/web': 'true', team: 'x' }),
        node('d', { 'prepull.dev/web': 'yes' }),
        node('e', { 'prepull.dev/web': 'true' }),
      ],
      prePulls: [pp('web', { a: READY, b: READY, c: PULLING, d: READY })],
      managed: new Set(),
    });
    expect(result.patches).toEqual([
      { node: 'a', labels: { metadata: { labels: { 'prepull.dev/web': 'true' } } } },
      { node: 'c', labels: { metadata: { labels: { 'prepull.dev/web': null } } } },
      { node: 'd', labels: { metadata: { labels: { 'prepull.dev/web': 'true' } } } },
      // e is not selected any more.
      { node: 'e', labels: { metadata: { labels: { 'prepull.dev/web': null } } } },
    ]);
    expect([...result.managed]).toEqual(['web']);
  });

  it('needs every PrePull sharing the label name to be ready on the node', () => {
    const result = readiness({
      nodes: [node('a'), node('b')],
      prePulls: [pp('web', { a: READY, b: READY }), pp('web', { a: FAILED })],
      managed: new Set(),
    });
    expect(result.patches).toEqual([
      { node: 'b', labels: { metadata: { labels: { 'prepull.dev/web': 'true' } } } },
    ]);
  });

  it('removes a label it remembers managing after its PrePull went away, never one it did not', () => {
    const result = readiness({
      nodes: [node('a', { 'prepull.dev/old': 'true', 'prepull.dev/theirs': 'true', x: 'y' })],
      prePulls: [pp(undefined, { a: READY })],
      managed: new Set(['old']),
    });
    expect(result.patches).toEqual([
      { node: 'a', labels: { metadata: { labels: { 'prepull.dev/old': null } } } },
    ]);
    expect([...result.managed]).toEqual(['old']);
  });
});

describe('start-up taint', () => {
  it('is removed once every PrePull selecting the node is ready there', () => {
    const result = readiness({
      nodes: [node('a', {}, [PENDING]), node('b', {}, [OTHER, PENDING]), node('c', {}, [PENDING])],
      prePulls: [pp(undefined, { a: READY, b: READY, c: READY }), pp(undefined, { c: PULLING })],
      managed: new Set(),
    });
    expect(result.patches).toEqual([
      {
        node: 'a',
        taint: [
          { op: 'test', path: '/spec/taints', value: [PENDING] },
          { op: 'remove', path: '/spec/taints' },
        ],
      },
      {
        node: 'b',
        taint: [
          { op: 'test', path: '/spec/taints', value: [OTHER, PENDING] },
          { op: 'replace', path: '/spec/taints', value: [OTHER] },
        ],
      },
    ]);
  });

  it('is removed from a node no PrePull selects; a failed image keeps it', () => {
    const result = readiness({
      nodes: [node('a', {}, [PENDING]), node('b', {}, [PENDING])],
      prePulls: [pp(undefined, { b: FAILED })],
      managed: new Set(),
    });
    expect(result.patches.map((p) => p.node)).toEqual(['a']);
  });

  it('leaves other taints and a same-key taint with another effect alone', () => {
    expect(taintRemoval([OTHER])).toBeUndefined();
    expect(taintRemoval([{ key: PENDING_TAINT, effect: 'NoExecute' }])).toBeUndefined();
    const result = readiness({
      nodes: [node('a', {}, [OTHER])],
      prePulls: [],
      managed: new Set(),
    });
    expect(result.patches).toEqual([]);
  });

  it('combines a label and the taint in one node entry', () => {
    const result = readiness({
      nodes: [node('a', {}, [PENDING])],
      prePulls: [pp('web', { a: READY })],
      managed: new Set(),
    });
    expect(result.patches).toEqual([
      {
        node: 'a',
        labels: { metadata: { labels: { 'prepull.dev/web': 'true' } } },
        taint: [
          { op: 'test', path: '/spec/taints', value: [PENDING] },
          { op: 'remove', path: '/spec/taints' },
        ],
      },
    ]);
  });
});
