// PrePull.status as the controller writes it, and the one rule agents, the controller and the
// fleet benchmark share about a paced rollout: may this node start pulling for this PrePull?
// (docs/adr/0014-controller-and-admission.md)
import type { Condition } from './nodeimagecache.ts';
import type { PrePullSpec } from './prepull.ts';

/** One node admitted to a paced rollout, since when (RFC 3339, the controller's clock). */
export interface Admission {
  node: string;
  since: string;
}

/** `status.rollout`: present only on a paced PrePull. */
export interface RolloutStatus {
  /** The spec's count or percent, resolved against the selected nodes. */
  maxConcurrentNodes?: number;
  paused: boolean;
  admitted: Admission[];
}

/** A node failing one image, as the status names it (a few per image; the count has the rest). */
export interface FailedNode {
  node: string;
  reason: string;
  code?: string;
  message?: string;
}

/** `status.images[]`: one image of the PrePull over every selected node. */
export interface ImageRollup {
  /** The canonical reference (as written, when it does not parse). */
  image: string;
  /** Selected nodes holding it Present. */
  present: number;
  /** Selected nodes on which it is Failed. */
  failed: number;
  /** The distinct digests the nodes holding it record, most common first (capped). */
  digests: { digest: string; nodes: number }[];
  /** The first failing nodes, by name (capped: `failed` counts them all). */
  failedNodes?: FailedNode[];
}

export interface PrePullStatus {
  observedGeneration?: number;
  nodes: { selected: number; ready: number; pulling: number; failed: number };
  images: ImageRollup[];
  rollout?: RolloutStatus;
  /** One short line for `kubectl get pp` (MESSAGE column). */
  message: string;
  conditions: (Condition & { observedGeneration?: number })[];
}

/** What the rule reads of a PrePull object as the API serves it (spec validated, status raw). */
export interface RolloutView {
  spec: Pick<PrePullSpec, 'rollout'>;
  status?: unknown;
}

/** Is this PrePull's rollout paced (admission needed before a node starts pulling)? */
export function isPaced(spec: Pick<PrePullSpec, 'rollout'>, requireAdmission: boolean): boolean {
  return (
    requireAdmission ||
    spec.rollout?.maxConcurrentNodes !== undefined ||
    spec.rollout?.paused === true
  );
}

/** The admitted node names in a status object as served (defensive: the status is not ours to trust). */
export function admittedNodes(status: unknown): Set<string> {
  const names = new Set<string>();
  if (typeof status !== 'object' || status === null) return names;
  const rollout = (status as { rollout?: unknown }).rollout;
  if (typeof rollout !== 'object' || rollout === null) return names;
  const admitted = (rollout as { admitted?: unknown }).admitted;
  if (!Array.isArray(admitted)) return names;
  for (const entry of admitted as unknown[]) {
    const node = (entry as { node?: unknown } | null)?.node;
    if (typeof node === 'string') names.add(node);
  }
  return names;
}

/** May `node` start pulling this PrePull's images? (Images it held before need no admission.) */
export function admits(prePull: RolloutView, node: string, requireAdmission: boolean): boolean {
  if (!isPaced(prePull.spec, requireAdmission)) return true;
  return admittedNodes(prePull.status).has(node);
}

/**
 * `maxConcurrentNodes` as a count for `selected` nodes: a percent rounds down but is at least one
 * node; undefined: unlimited.
 */
export function resolveMaxConcurrent(
  value: number | string | undefined,
  selected: number,
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return value;
  const percent = Number(value.replace('%', ''));
  return Math.max(1, Math.floor((selected * percent) / 100));
}
