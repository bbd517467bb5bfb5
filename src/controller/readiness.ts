// What the controller keeps on Nodes, as a pure function (docs/adr/0014-controller-and-admission.md,
// "Nodes"): the readiness label `prepull.dev/NAME=true` on exactly the selected nodes ready for
// every PrePull with `spec.nodeLabel: NAME` that selects them, and the removal of the start-up
// taint `prepull.dev/images-pending:NoSchedule` once every PrePull selecting the node is ready
// there. Each change is a patch: labels as one JSON merge patch of the keys that change, the taint
// as a JSON patch that tests the list it read and replaces it (a concurrent change fails the test).
//
// Which labels are ours: a `prepull.dev/NAME` label is managed — set and removed — only when some
// PrePull names NAME in spec.nodeLabel now, or the controller remembers having set NAME (its
// memory, `managed`, lives in memory: after a restart a label whose PrePull went away meanwhile
// stays until a PrePull names it again). Labels it never managed are never touched, nor are other
// labels and taints.
import { NODE_LABEL_PREFIX } from '../api/prepull.ts';
import type { NodeProgress, NodeView, Taint } from './aggregate.ts';

export const PENDING_TAINT = 'prepull.dev/images-pending';
export const PENDING_EFFECT = 'NoSchedule';

/** One PrePull as readiness reads it: its label name and its selected nodes' progress. */
export interface LabelledPrePull {
  nodeLabel?: string | undefined;
  /** The selected nodes (only those) and their progress. */
  progress: ReadonlyMap<string, NodeProgress>;
}

export interface ReadinessInput {
  nodes: readonly NodeView[];
  prePulls: readonly LabelledPrePull[];
  /** Label names (NAME of prepull.dev/NAME) the controller set before and still manages. */
  managed: ReadonlySet<string>;
}

export type JsonPatchOp =
  | { op: 'test'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

export interface NodePatch {
  node: string;
  /** A JSON merge patch body (application/merge-patch+json) when labels change. */
  labels?: { metadata: { labels: Record<string, 'true' | null> } };
  /** A JSON patch (application/json-patch+json) removing the start-up taint. */
  taint?: JsonPatchOp[];
}

export interface ReadinessResult {
  patches: NodePatch[];
  /** Label names managed from now on (the input's, plus every nodeLabel named now). */
  managed: Set<string>;
}

function isPendingTaint(taint: Taint): boolean {
  return taint.key === PENDING_TAINT && taint.effect === PENDING_EFFECT;
}

/** The JSON patch that removes the start-up taint from what was read, or undefined. */
export function taintRemoval(taints: readonly Taint[]): JsonPatchOp[] | undefined {
  if (!taints.some(isPendingTaint)) return undefined;
  const rest = taints.filter((t) => !isPendingTaint(t));
  const test: JsonPatchOp = { op: 'test', path: '/spec/taints', value: taints };
  return rest.length === 0
    ? [test, { op: 'remove', path: '/spec/taints' }]
    : [test, { op: 'replace', path: '/spec/taints', value: rest }];
}

/** Per label name: the nodes where it belongs (every PrePull naming it that selects them is ready). */
function labelledNodes(prePulls: readonly LabelledPrePull[]): Map<string, Map<string, boolean>> {
  const byName = new Map<string, Map<string, boolean>>();
  for (const prePull of prePulls) {
    if (prePull.nodeLabel === undefined) continue;
    let nodes = byName.get(prePull.nodeLabel);
    if (nodes === undefined) byName.set(prePull.nodeLabel, (nodes = new Map<string, boolean>()));
    for (const [node, progress] of prePull.progress)
      nodes.set(node, (nodes.get(node) ?? true) && progress.state === 'ready');
  }
  return byName;
}

/** Is every PrePull selecting `node` ready there? (None selecting it: true.) */
function readyForAll(node: string, prePulls: readonly LabelledPrePull[]): boolean {
  return prePulls.every((p) => {
    const progress = p.progress.get(node);
    return progress === undefined || progress.state === 'ready';
  });
}

function labelChanges(
  node: NodeView,
  managed: ReadonlySet<string>,
  wanted: ReadonlyMap<string, ReadonlyMap<string, boolean>>,
): Record<string, 'true' | null> {
  const changes: Record<string, 'true' | null> = {};
  for (const name of managed) {
    const key = NODE_LABEL_PREFIX + name;
    const want = wanted.get(name)?.get(node.name) === true;
    const has = node.labels[key];
    if (want && has !== 'true') changes[key] = 'true';
    else if (!want && has !== undefined) changes[key] = null;
  }
  return changes;
}

/** The patches that bring every node's readiness label and start-up taint to what they should be. */
export function readiness(input: ReadinessInput): ReadinessResult {
  const wanted = labelledNodes(input.prePulls);
  const managed = new Set([...input.managed, ...wanted.keys()]);
  const patches: NodePatch[] = [];
  for (const node of input.nodes) {
    const labels = labelChanges(node, managed, wanted);
    const taint = readyForAll(node.name, input.prePulls) ? taintRemoval(node.taints) : undefined;
    if (Object.keys(labels).length === 0 && taint === undefined) continue;
    patches.push({
      node: node.name,
      ...(Object.keys(labels).length > 0 ? { labels: { metadata: { labels } } } : {}),
      ...(taint !== undefined ? { taint } : {}),
    });
  }
  return { patches, managed };
}
