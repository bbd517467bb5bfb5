// The controller's view of one PrePull across the cluster, as pure functions: which nodes it
// selects, how far each of them is (from its NodeImageCache), and the PrePull.status those make
// (src/api/rollout.ts): node counts, a bounded rollup per image, one short message and the
// conditions Ready / Progressing / Failed. Bounded in size whatever the node count: per image a
// few digests and failing nodes, the counts carry the rest. docs/adr/0014-controller-and-admission.md
import type { CachedImage } from '../api/nodeimagecache.ts';
import { type FieldIssue, type PrePull, selectsNode, validatePrePull } from '../api/prepull.ts';
import type { FailedNode, ImageRollup, PrePullStatus, RolloutStatus } from '../api/rollout.ts';
import type { KubernetesObject } from '../kube/client.ts';
import { compareCodeUnits, desiredImages } from '../reconcile/desired.ts';

/** How far one selected node is with one PrePull (exclusive, in this order of precedence). */
export type NodeState = 'ready' | 'failed' | 'pulling' | 'waiting';

export interface NodeProgress {
  /** ready: every image Present; failed: some Failed; pulling: some Pulling; else waiting. */
  state: NodeState;
  /**
   * Nothing left for the node to do: every image is Present or Failed. A node with one image
   * Failed and another still Missing is `failed` in the counts but not settled: it still needs
   * its slot in a paced rollout (retrying the failed one is the node's business, not a slot's).
   */
  settled: boolean;
}

/** A Node's taint, as the API serves it. */
export interface Taint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: string;
}

/** What the controller reads of a Node. */
export interface NodeView {
  name: string;
  labels: Readonly<Record<string, string>>;
  taints: readonly Taint[];
}

/** What the controller reads of a PrePull as served: validated spec (or its issues), raw status. */
export interface PrePullView {
  /** `namespace/name`. */
  key: string;
  namespace: string;
  name: string;
  uid?: string;
  generation?: number;
  /** The validated object; undefined when `issues` is not empty. */
  prePull?: PrePull;
  issues: readonly FieldIssue[];
  /** The status as served: not ours to trust. */
  status: unknown;
}

/** One image of a PrePull as nodes key it: canonical reference, or as written when invalid. */
export interface WantedImage {
  key: string;
  written: string;
  invalid?: { code: string; message: string };
}

/** Each node's NodeImageCache images, by node name, then by image key. */
export type NodeImages = ReadonlyMap<string, ReadonlyMap<string, CachedImage>>;

const MESSAGE_LIMIT = 256;
const MAX_DIGESTS = 8;
const MAX_FAILED_NODES = 5;

export function clip(text: string, limit = MESSAGE_LIMIT): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 3)}...`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringRecord(value: unknown): Record<string, string> {
  if (!isRecord(value)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** A PrePull object from the informer, validated (the CRD validates too; this is our check). */
export function readPrePull(object: KubernetesObject): PrePullView {
  const namespace = object.metadata?.namespace ?? '';
  const name = object.metadata?.name ?? '';
  const { apiVersion, kind, metadata } = object;
  const { prePull, issues } = validatePrePull(
    { apiVersion, kind, metadata, spec: (object as { spec?: unknown }).spec },
    namespace,
  );
  const generation = object.metadata?.generation;
  const uid = object.metadata?.uid;
  return {
    key: `${namespace}/${name}`,
    namespace,
    name,
    ...(uid !== undefined ? { uid } : {}),
    ...(typeof generation === 'number' ? { generation } : {}),
    ...(prePull !== undefined ? { prePull } : {}),
    issues,
    status: (object as { status?: unknown }).status,
  };
}

/** A Node object from the informer: its name, labels and taints. */
export function readNode(object: KubernetesObject): NodeView {
  const spec = (object as { spec?: { taints?: unknown } }).spec;
  const taints = Array.isArray(spec?.taints)
    ? (spec.taints as unknown[]).filter(
        (t): t is Taint => isRecord(t) && typeof t.key === 'string' && typeof t.effect === 'string',
      )
    : [];
  return {
    name: object.metadata?.name ?? '',
    labels: stringRecord(object.metadata?.labels),
    taints,
  };
}

/** The images of every NodeImageCache, by node (spec.nodeName, else the object's name). */
export function readNodeImages(
  caches: readonly KubernetesObject[],
  read: (cache: KubernetesObject) => NodeCacheImages | undefined = readNodeCache,
): NodeImages {
  const byNode = new Map<string, ReadonlyMap<string, CachedImage>>();
  for (const cache of caches) {
    const one = read(cache);
    if (one !== undefined) byNode.set(one.node, one.images);
  }
  return byNode;
}

/** One NodeImageCache's images by canonical reference, and its node. */
export interface NodeCacheImages {
  node: string;
  images: ReadonlyMap<string, CachedImage>;
}

/** One NodeImageCache read (the caller may keep the answer as long as it keeps the object). */
export function readNodeCache(cache: KubernetesObject): NodeCacheImages | undefined {
  const spec = (cache as { spec?: { nodeName?: unknown } }).spec;
  const node = typeof spec?.nodeName === 'string' ? spec.nodeName : cache.metadata?.name;
  const images = (cache as { status?: { images?: unknown } }).status?.images;
  if (node === undefined || !Array.isArray(images)) return undefined;
  const held = new Map<string, CachedImage>();
  for (const image of images as unknown[]) {
    if (isRecord(image) && typeof image.image === 'string' && typeof image.state === 'string')
      held.set(image.image, image as unknown as CachedImage);
  }
  return { node, images: held };
}

/** The PrePull's images as nodes key them (src/reconcile/desired.ts), in spec order. */
export function wantedImages(prePull: PrePull): WantedImage[] {
  // The selector as the labels: the PrePull always selects a node labelled with its selector.
  const desired = desiredImages([prePull], prePull.spec.nodeSelector);
  return [...desired.values()].map((d) => ({
    key: d.ref,
    written: d.written,
    ...(d.invalid !== undefined
      ? { invalid: { code: d.invalid.code, message: d.invalid.message } }
      : {}),
  }));
}

/** The nodes a PrePull selects, by name. */
export function selectedNodes(prePull: PrePull, nodes: readonly NodeView[]): NodeView[] {
  return nodes
    .filter((n) => selectsNode(prePull.spec.nodeSelector, n.labels))
    .sort((a, b) => compareCodeUnits(a.name, b.name));
}

/** One node's progress with these images, from its NodeImageCache images (undefined: none yet). */
export function progressOf(
  images: readonly WantedImage[],
  held: ReadonlyMap<string, CachedImage> | undefined,
): NodeProgress {
  let present = 0;
  let failed = 0;
  let pulling = 0;
  for (const image of images) {
    const state = held?.get(image.key)?.state;
    if (state === 'Present') present++;
    else if (state === 'Failed') failed++;
    else if (state === 'Pulling') pulling++;
  }
  const settled = present + failed === images.length;
  if (present === images.length) return PROGRESS.ready[String(settled) as 'true'];
  if (failed > 0) return PROGRESS.failed[String(settled) as 'true'];
  return PROGRESS[pulling > 0 ? 'pulling' : 'waiting'][String(settled) as 'true'];
}

/** Every progress there is, made once: a pass over 5,000 nodes allocates none. */
const PROGRESS = Object.fromEntries(
  (['ready', 'failed', 'pulling', 'waiting'] as const).map((state) => [
    state,
    {
      true: Object.freeze({ state, settled: true }),
      false: Object.freeze({ state, settled: false }),
    },
  ]),
) as Record<NodeState, Record<'true' | 'false', NodeProgress>>;

/** Each selected node's progress with a valid PrePull, in node name order. */
export function nodeProgress(
  prePull: PrePull,
  nodes: readonly NodeView[],
  nodeImages: NodeImages,
): Map<string, NodeProgress> {
  const images = wantedImages(prePull);
  const progress = new Map<string, NodeProgress>();
  for (const node of selectedNodes(prePull, nodes))
    progress.set(node.name, progressOf(images, nodeImages.get(node.name)));
  return progress;
}

function imageRollup(
  image: WantedImage,
  nodes: readonly string[],
  nodeImages: NodeImages,
): ImageRollup {
  let present = 0;
  let failed = 0;
  const digests = new Map<string, number>();
  const failedNodes: FailedNode[] = [];
  for (const node of nodes) {
    const entry = nodeImages.get(node)?.get(image.key);
    if (entry?.state === 'Present') {
      present++;
      if (entry.digest !== undefined)
        digests.set(entry.digest, (digests.get(entry.digest) ?? 0) + 1);
    } else if (entry?.state === 'Failed') {
      failed++;
      if (failedNodes.length < MAX_FAILED_NODES) failedNodes.push(failedNode(node, entry));
    }
  }
  const top = [...digests]
    .sort((a, b) => b[1] - a[1] || compareCodeUnits(a[0], b[0]))
    .slice(0, MAX_DIGESTS)
    .map(([digest, count]) => ({ digest, nodes: count }));
  return {
    image: image.key,
    present,
    failed,
    digests: top,
    ...(failedNodes.length > 0 ? { failedNodes } : {}),
  };
}

function failedNode(node: string, entry: CachedImage): FailedNode {
  return {
    node,
    reason: clip(entry.reason ?? 'Failed', 128),
    ...(entry.code !== undefined ? { code: clip(entry.code, 64) } : {}),
    ...(entry.message !== undefined ? { message: clip(entry.message) } : {}),
  };
}

type Conditions = PrePullStatus['conditions'];
type ConditionFacts = Omit<Conditions[number], 'lastTransitionTime' | 'observedGeneration'>;

/** The previous status's conditions, read defensively. */
function previousConditions(status: unknown): Map<string, { status: string; time: string }> {
  const out = new Map<string, { status: string; time: string }>();
  const list = isRecord(status) ? status.conditions : undefined;
  if (!Array.isArray(list)) return out;
  for (const c of list as unknown[]) {
    if (!isRecord(c)) continue;
    const { type, status: value, lastTransitionTime: time } = c;
    if (typeof type === 'string' && typeof value === 'string' && typeof time === 'string')
      out.set(type, { status: value, time });
  }
  return out;
}

function conditions(view: PrePullView, facts: ConditionFacts[], now: string): Conditions {
  const before = previousConditions(view.status);
  return facts.map((f) => {
    const previous = before.get(f.type);
    return {
      ...f,
      message: clip(f.message, 32_768),
      ...(view.generation !== undefined ? { observedGeneration: view.generation } : {}),
      lastTransitionTime: previous?.status === f.status ? previous.time : now,
    };
  });
}

function base(view: PrePullView): Pick<PrePullStatus, 'observedGeneration'> {
  return view.generation !== undefined ? { observedGeneration: view.generation } : {};
}

const ZERO = { selected: 0, ready: 0, pulling: 0, failed: 0 };

function invalidStatus(view: PrePullView, now: string): PrePullStatus {
  const issues = view.issues.map((i) => `${i.field}: ${i.message}`).join('; ');
  const message = `invalid spec: ${issues}`;
  return {
    ...base(view),
    nodes: { ...ZERO },
    images: [],
    message: clip(message),
    conditions: conditions(
      view,
      [
        { type: 'Ready', status: 'False', reason: 'InvalidSpec', message },
        { type: 'Progressing', status: 'False', reason: 'InvalidSpec', message },
        { type: 'Failed', status: 'True', reason: 'InvalidSpec', message },
      ],
      now,
    ),
  };
}

function selectorText(selector: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(selector).map(([k, v]) => `${k}=${v}`);
  return pairs.length === 0 ? '{} (every node)' : `{${pairs.join(', ')}}`;
}

export interface StatusInput {
  view: PrePullView;
  /** The selected nodes' progress (nodeProgress). */
  progress: ReadonlyMap<string, NodeProgress>;
  nodeImages: NodeImages;
  /** The paced rollout's new state; undefined when not paced. */
  rollout?: RolloutStatus | undefined;
  /** RFC 3339, the controller's clock. */
  now: string;
}

interface Counts {
  selected: number;
  ready: number;
  pulling: number;
  failed: number;
  /** Not settled, and neither admitted nor pulling (paced rollouts: waiting for a slot). */
  unadmitted: number;
  unsettled: number;
  /** The first failed node by name. */
  firstFailed?: string;
}

function count(progress: ReadonlyMap<string, NodeProgress>, rollout?: RolloutStatus): Counts {
  const admitted = new Set(rollout?.admitted.map((a) => a.node));
  const counts: Counts = { ...ZERO, unadmitted: 0, unsettled: 0 };
  for (const [node, p] of progress) {
    counts.selected++;
    if (p.state === 'ready') counts.ready++;
    else if (p.state === 'pulling') counts.pulling++;
    else if (p.state === 'failed') {
      counts.failed++;
      counts.firstFailed ??= node;
    }
    if (!p.settled) {
      counts.unsettled++;
      if (rollout !== undefined && p.state !== 'pulling' && !admitted.has(node))
        counts.unadmitted++;
    }
  }
  return counts;
}

/** "ERR_IMAGE_NOT_FOUND on node-c and 2 more": the first failing node's first failed image. */
function failureSummary(
  counts: Counts,
  images: readonly WantedImage[],
  nodeImages: NodeImages,
): string {
  const node = counts.firstFailed;
  if (node === undefined) return '';
  const held = nodeImages.get(node);
  const entry = images.map((i) => held?.get(i.key)).find((e) => e?.state === 'Failed');
  const why = entry?.code ?? entry?.reason ?? 'Failed';
  return `${why} on ${node}${counts.failed > 1 ? ` and ${counts.failed - 1} more` : ''}`;
}

function summaryLine(counts: Counts, failure: string, rollout?: RolloutStatus): string {
  const parts = [`${counts.ready}/${counts.selected} nodes ready`];
  if (counts.pulling > 0) parts.push(`${counts.pulling} pulling`);
  if (counts.failed > 0) parts.push(`${counts.failed} failed (${failure})`);
  if (rollout !== undefined) {
    parts.push(`${rollout.admitted.length} admitted`);
    if (rollout.paused) parts.push('paused');
  }
  return parts.join(', ');
}

function progressing(counts: Counts, rollout?: RolloutStatus): ConditionFacts {
  const type = 'Progressing';
  if (counts.unsettled === 0) {
    const message = `every selected node is done: ${counts.ready} ready, ${counts.failed} failed`;
    return { type, status: 'False', reason: 'Complete', message };
  }
  const waiting = `${counts.unsettled} of ${counts.selected} nodes not done`;
  if (rollout?.paused === true) {
    const message = `${waiting}; the rollout is paused (${rollout.admitted.length} admitted finish, no new node starts)`;
    return { type, status: 'True', reason: 'Paused', message };
  }
  if (rollout !== undefined && counts.unadmitted === counts.unsettled) {
    const message = `${waiting}, all waiting for admission`;
    return { type, status: 'True', reason: 'AwaitingAdmission', message };
  }
  const admission = rollout !== undefined ? `, ${counts.unadmitted} awaiting admission` : '';
  const message = `${waiting}: ${counts.pulling} pulling${admission}`;
  return { type, status: 'True', reason: 'Pulling', message };
}

function failedCondition(
  counts: Counts,
  failure: string,
  images: readonly WantedImage[],
): ConditionFacts {
  const type = 'Failed';
  const invalid = images.filter((i) => i.invalid !== undefined);
  const nodes = counts.failed > 0 ? `${counts.failed} nodes failed (${failure})` : '';
  if (invalid.length > 0) {
    const refs = invalid.map((i) => `${JSON.stringify(i.written)}: ${i.invalid?.message ?? ''}`);
    const message = [`invalid image reference ${refs.join('; ')}`, nodes]
      .filter((s) => s !== '')
      .join('; ');
    return { type, status: 'True', reason: 'InvalidReference', message };
  }
  if (counts.failed > 0) return { type, status: 'True', reason: 'NodesFailed', message: nodes };
  return { type, status: 'False', reason: 'NoFailures', message: 'no selected node failed' };
}

/** The PrePull's status: node counts, per-image rollups, the message and the conditions. */
export function prePullStatus(input: StatusInput): PrePullStatus {
  const { view, progress, nodeImages, rollout, now } = input;
  const prePull = view.prePull;
  if (prePull === undefined) return invalidStatus(view, now);
  const images = wantedImages(prePull);
  const counts = count(progress, rollout);
  const nodes = [...progress.keys()];
  const failure = failureSummary(counts, images, nodeImages);
  const rolloutPart = rollout !== undefined ? { rollout } : {};
  const failed = failedCondition(counts, failure, images);
  const status: Omit<PrePullStatus, 'message' | 'conditions'> = {
    ...base(view),
    nodes: {
      selected: counts.selected,
      ready: counts.ready,
      pulling: counts.pulling,
      failed: counts.failed,
    },
    images: images.map((i) => imageRollup(i, nodes, nodeImages)),
    ...rolloutPart,
  };
  if (counts.selected === 0) {
    const message = `no node matches nodeSelector ${selectorText(prePull.spec.nodeSelector)}`;
    return {
      ...status,
      message: clip(message),
      conditions: conditions(
        view,
        [
          { type: 'Ready', status: 'False', reason: 'NoMatchingNodes', message },
          { type: 'Progressing', status: 'False', reason: 'NoMatchingNodes', message },
          failed,
        ],
        now,
      ),
    };
  }
  const line = summaryLine(counts, failure, rollout);
  const ready: ConditionFacts =
    counts.ready === counts.selected
      ? { type: 'Ready', status: 'True', reason: 'AllNodesReady', message: line }
      : { type: 'Ready', status: 'False', reason: 'NodesNotReady', message: line };
  return {
    ...status,
    message: clip(line),
    conditions: conditions(view, [ready, progressing(counts, rollout), failed], now),
  };
}
