// The controller's admission rule for paced rollouts (docs/adr/0014-controller-and-admission.md),
// as one pure function: from every paced PrePull's selected nodes, their progress and the nodes
// admitted now, the new admitted lists and which nodes left and why. An admitted node leaves when
// it is ready, settled failed, no longer selected, or stalled (no change of its NodeImageCache
// seen for the timeout); free slots — the PrePull's cap and the cluster cap, a node admitted to
// several PrePulls counting once — go to waiting nodes in name order, nodes that stalled before
// last. Paused admits no new node and keeps the admitted.
import type { Admission } from '../api/rollout.ts';
import { compareCodeUnits } from '../reconcile/desired.ts';
import type { NodeProgress } from './aggregate.ts';

/** One paced PrePull as the rule reads it. */
export interface PacedPrePull {
  /** `namespace/name`: PrePulls are served in this order. */
  key: string;
  /** spec.rollout.maxConcurrentNodes resolved (resolveMaxConcurrent); undefined: no own cap. */
  cap: number | undefined;
  paused: boolean;
  /** The selected nodes and their progress. */
  nodes: ReadonlyMap<string, NodeProgress>;
  /** status.rollout.admitted as served. */
  admitted: readonly Admission[];
}

export interface AdmissionInput {
  prePulls: readonly PacedPrePull[];
  /** Controller-clock ms of the last change seen of this node's NodeImageCache, or the start. */
  lastChangeSeen: (node: string) => number;
  /** Controller-clock ms. */
  now: number;
  admissionTimeoutMs: number;
  /** Distinct nodes admitted across all PrePulls (--max-concurrent-nodes); undefined: none. */
  clusterCap?: number | undefined;
  /** Nodes that stalled before: admitted last. */
  stalledBefore: ReadonlySet<string>;
}

export type DropReason = 'ready' | 'failed' | 'unselected' | 'stalled';

export interface Dropped {
  prePull: string;
  node: string;
  reason: DropReason;
}

export interface AdmissionResult {
  /** Every input PrePull's new admitted list, by node name. */
  admitted: Map<string, Admission[]>;
  dropped: Dropped[];
  /** Distinct nodes admitted across all PrePulls. */
  distinct: number;
}

function sinceMs(admission: Admission): number {
  const ms = Date.parse(admission.since);
  // A since we cannot read (not ours to trust) counts as the controller's start.
  return Number.isNaN(ms) ? Number.NEGATIVE_INFINITY : ms;
}

/** Why an admitted node leaves now, or undefined when it stays. */
function leaving(
  admission: Admission,
  prePull: PacedPrePull,
  input: AdmissionInput,
): DropReason | undefined {
  const progress = prePull.nodes.get(admission.node);
  if (progress === undefined) return 'unselected';
  if (progress.state === 'ready') return 'ready';
  if (progress.settled) return 'failed';
  const from = Math.max(sinceMs(admission), input.lastChangeSeen(admission.node));
  return input.now - from >= input.admissionTimeoutMs ? 'stalled' : undefined;
}

/** Waiting nodes in admission order: by name, those that stalled (before or now) last. */
function candidates(
  prePull: PacedPrePull,
  kept: ReadonlySet<string>,
  stalled: ReadonlySet<string>,
): string[] {
  const waiting = [...prePull.nodes]
    .filter(([node, p]) => !p.settled && !kept.has(node))
    .map(([node]) => node)
    .sort(compareCodeUnits);
  return [...waiting.filter((n) => !stalled.has(n)), ...waiting.filter((n) => stalled.has(n))];
}

function byNode(a: Admission, b: Admission): number {
  return compareCodeUnits(a.node, b.node);
}

/** The new admitted lists of every paced PrePull (ADR 0014, "The controller's rule"). */
export function admit(input: AdmissionInput): AdmissionResult {
  const prePulls = [...input.prePulls].sort((a, b) => compareCodeUnits(a.key, b.key));
  // First every departure, so slots freed by a later PrePull count for an earlier one too.
  const { kept, dropped, cluster } = departures(prePulls, input);
  const stalled = new Set(input.stalledBefore);
  for (const d of dropped) if (d.reason === 'stalled') stalled.add(d.node);
  let clusterFree = (input.clusterCap ?? Number.POSITIVE_INFINITY) - cluster.size;
  const since = new Date(input.now).toISOString();
  const admitted = new Map<string, Admission[]>();
  for (const prePull of prePulls) {
    const list = kept.get(prePull.key) ?? [];
    const names = new Set(list.map((a) => a.node));
    let free = prePull.paused ? 0 : (prePull.cap ?? Number.POSITIVE_INFINITY) - list.length;
    for (const node of free > 0 ? candidates(prePull, names, stalled) : []) {
      if (free <= 0) break;
      if (!cluster.has(node)) {
        if (clusterFree <= 0) continue;
        clusterFree--;
        cluster.add(node);
      }
      list.push({ node, since });
      free--;
    }
    admitted.set(prePull.key, list.sort(byNode));
  }
  return { admitted, dropped, distinct: cluster.size };
}

/** The admitted nodes that stay (and the distinct set of them), and those that leave. */
function departures(prePulls: readonly PacedPrePull[], input: AdmissionInput) {
  const dropped: Dropped[] = [];
  const kept = new Map<string, Admission[]>();
  const cluster = new Set<string>();
  for (const prePull of prePulls) {
    const stay: Admission[] = [];
    const seen = new Set<string>();
    for (const admission of prePull.admitted) {
      if (seen.has(admission.node)) continue;
      seen.add(admission.node);
      const reason = leaving(admission, prePull, input);
      if (reason === undefined) {
        stay.push({ node: admission.node, since: admission.since });
        cluster.add(admission.node);
      } else dropped.push({ prePull: prePull.key, node: admission.node, reason });
    }
    kept.set(prePull.key, stay);
  }
  return { kept, dropped, cluster };
}

/** `status.rollout.admitted` as served, read defensively (entries without a node name skipped). */
export function servedAdmissions(status: unknown): Admission[] {
  const rollout = (status as { rollout?: { admitted?: unknown } } | null | undefined)?.rollout;
  const list = rollout?.admitted;
  if (!Array.isArray(list)) return [];
  const admissions: Admission[] = [];
  for (const entry of list as unknown[]) {
    const { node, since } = (entry ?? {}) as { node?: unknown; since?: unknown };
    if (typeof node === 'string')
      admissions.push({ node, since: typeof since === 'string' ? since : '' });
  }
  return admissions;
}
