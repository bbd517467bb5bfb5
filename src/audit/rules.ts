// The audit's rules: which containers would not start on a node because the image is not among
// those PrePulls keep there. Pure over what manifests.ts read.
import type { PrePull } from '../api/prepull.ts';
import { type ImageReference, parseReference } from '../image/reference.ts';
import type { ContainerSite, LocatedPrePull, Placement } from './manifests.ts';
import { effectivePullPolicy } from './policy.ts';
import type { Resolutions } from './resolve.ts';

export type Level = 'error' | 'warning';

export const RULES = {
  'not-covered': {
    level: 'error',
    summary: 'An image a container will not pull is not listed by any PrePull.',
    help: 'Add the image to a PrePull whose nodeSelector covers the nodes the Pod runs on, or let the container pull it (imagePullPolicy IfNotPresent).',
  },
  'selector-gap': {
    level: 'error',
    summary: 'The PrePulls listing the image do not select every node the Pod may run on.',
    help: "Give the Pod a nodeSelector (or a single-value In affinity) implying the PrePull's nodeSelector labels, or widen the PrePull's nodeSelector.",
  },
  'digest-mismatch': {
    level: 'error',
    summary:
      'The workload pins a digest that the tag a PrePull lists does not resolve to (with --resolve).',
    help: 'List the digest in the PrePull (name@sha256:…), or move the workload to the digest the tag names now.',
  },
  'invalid-image': {
    level: 'error',
    summary: 'The image reference does not follow the Docker reference grammar.',
    help: 'Fix the reference: [host[:port]/]path[:tag][@sha256:hex], lowercase path.',
  },
  'mutable-never': {
    level: 'warning',
    summary: 'imagePullPolicy Never with a mutable tag (latest, or no tag and no digest).',
    help: 'Pin the image by digest (name@sha256:…) in the workload and the PrePull, so every node runs the same content.',
  },
  'implicit-policy': {
    level: 'warning',
    summary: 'The container sets no imagePullPolicy, so Kubernetes defaults one.',
    help: 'Set imagePullPolicy explicitly; with Never, list the image in a PrePull.',
  },
  'never-pull-failed': {
    level: 'error',
    summary:
      'A running Pod is in ErrImageNeverPull: its node does not hold the image (live mode only).',
    help: "List the image in a PrePull selecting the Pod's node; when one does, read the node's NodeImageCache entry (why the agent could not pull it) or start the agent there.",
  },
} as const satisfies Record<string, { level: Level; summary: string; help: string }>;

export type RuleId = keyof typeof RULES;

export interface Finding {
  rule: RuleId;
  level: Level;
  file: string;
  /** Absent for objects read from the API (live mode), which have no document or line. */
  document?: number;
  line?: number;
  object: string;
  container: string;
  containerType: ContainerSite['containerType'];
  image: string;
  message: string;
}

export interface RuleOptions {
  /** Every image must be kept by a PrePull, whatever its pull policy: nodes cannot pull. */
  airGapped: boolean;
  /** With --resolve: what the registry says PrePull tags resolve to (canonical tag → answer). */
  resolved?: Resolutions | undefined;
}

/** The parsed images of every PrePull. References that do not parse are left out: they fail there. */
export interface Listed {
  ref: ImageReference;
  prePull: PrePull;
}

export function listedImages(prePulls: readonly LocatedPrePull[]): Listed[] {
  const listed: Listed[] = [];
  for (const { prePull } of prePulls) {
    for (const { image } of prePull.spec.images) {
      try {
        listed.push({ ref: parseReference(image), prePull });
      } catch {
        // `prepull sync` and the agent report that image; the audit only sees it missing.
      }
    }
  }
  return listed;
}

function id(prePull: PrePull): string {
  return `${prePull.metadata.namespace}/${prePull.metadata.name}`;
}

/**
 * Whether a PrePull's image puts `wanted` on the node under the name kubelet looks for. A digest
 * is matched by digest; a tag only by the same tag without a digest, because pulling by digest
 * records `name@digest` and creates no tag (docs/runtimes.md).
 */
export function covers(
  listed: ImageReference,
  wanted: ImageReference,
  resolved?: Resolutions,
): boolean {
  if (listed.name !== wanted.name) return false;
  if (wanted.digest !== undefined) {
    if (listed.digest === wanted.digest) return true;
    // A tag covers a digest when the registry says the tag names it now (--resolve).
    const answer = listed.digest === undefined ? resolved?.get(listed.canonical) : undefined;
    return answer !== undefined && 'digest' in answer && answer.digest === wanted.digest;
  }
  return listed.digest === undefined && listed.tag === wanted.tag;
}

/** With --resolve: the PrePull tags of the workload's repository that resolve elsewhere. */
function mismatch(
  wanted: ImageReference,
  sameName: readonly Listed[],
  resolved: Resolutions | undefined,
): string | undefined {
  if (wanted.digest === undefined || resolved === undefined) return undefined;
  const other: string[] = [];
  for (const l of sameName) {
    const answer = l.ref.digest === undefined ? resolved.get(l.ref.canonical) : undefined;
    if (answer !== undefined && 'digest' in answer) {
      other.push(`${l.ref.familiar} (PrePull ${id(l.prePull)}) resolves to ${answer.digest}`);
    }
  }
  if (other.length === 0) return undefined;
  return `the workload pins ${wanted.digest}, but ${other.join('; ')}: the nodes will hold other content than the workload names`;
}

function whyNotCovered(
  wanted: ImageReference,
  sameName: readonly Listed[],
  /** 'live': the cluster audit, where --resolve is not offered. */
  resolved: Resolutions | 'live' | undefined,
): string {
  const base = `no PrePull lists ${wanted.canonical}`;
  const names = sameName.map((l) => `${l.ref.familiar} (PrePull ${id(l.prePull)})`).join(', ');
  if (sameName.length === 0) return base;
  const tagsOnly = sameName.filter((l) => l.ref.digest === undefined);
  if (wanted.digest !== undefined && tagsOnly.length > 0) {
    const tags = tagsOnly.map((l) => `${l.ref.familiar} (PrePull ${id(l.prePull)})`).join(', ');
    if (resolved === undefined || resolved === 'live') {
      const hint =
        resolved === 'live'
          ? '`prepull audit -f` with --resolve can check it'
          : 'run with --resolve';
      return `${base}; ${tags} may resolve to ${wanted.digest}, but that cannot be proven without the registry (${hint})`;
    }
    const failed = tagsOnly
      .map((l) => [l, resolved.get(l.ref.canonical)] as const)
      .filter(([, answer]) => answer !== undefined && 'error' in answer)
      .map(
        ([l, answer]) =>
          `${l.ref.familiar}: ${answer !== undefined && 'error' in answer ? answer.error : ''}`,
      );
    if (failed.length > 0) return `${base}; the registry could not say what ${failed.join('; ')}`;
  }
  if (wanted.digest === undefined && sameName.some((l) => l.ref.tag === wanted.tag)) {
    return `${base}; ${names} is pulled by digest, which creates no tag ${wanted.tag ?? ''} on the node`;
  }
  return `${base}; PrePulls list other versions: ${names}`;
}

/** Why the label `key=value` is not implied by the Pod's constraints, or undefined when it is. */
function labelGap(key: string, value: string, placement: Placement): string | undefined {
  if (placement.nodeSelector[key] === value) return undefined;
  const terms = placement.nodeSelectorTerms;
  if (terms !== undefined && terms.length > 0 && terms.every((t) => termImplies(t, key, value))) {
    return undefined;
  }
  const undecided =
    terms?.some((t) => !isDecidable(t)) === true
      ? ' (its node affinity could not be decided: only single-value In expressions are understood)'
      : '';
  return `${key}=${value}${undecided}`;
}

function expressionsOf(term: unknown): unknown[] {
  const expressions = (term as { matchExpressions?: unknown } | null)?.matchExpressions;
  return Array.isArray(expressions) ? expressions : [];
}

function isSingleIn(expression: unknown): expression is { key: string; values: [string] } {
  const e = expression as { operator?: unknown; values?: unknown } | null;
  return e?.operator === 'In' && Array.isArray(e.values) && e.values.length === 1;
}

function termImplies(term: unknown, key: string, value: string): boolean {
  return expressionsOf(term).some((e) => isSingleIn(e) && e.key === key && e.values[0] === value);
}

function isDecidable(term: unknown): boolean {
  const fields = (term as { matchFields?: unknown } | null)?.matchFields;
  const hasFields = Array.isArray(fields) && fields.length > 0;
  return !hasFields && expressionsOf(term).every(isSingleIn);
}

function selectorGap(placement: Placement, covering: readonly Listed[]): string | undefined {
  let best: { prePull: PrePull; missing: string[] } | undefined;
  for (const { prePull } of covering) {
    const missing = Object.entries(prePull.spec.nodeSelector)
      .map(([key, value]) => labelGap(key, value, placement))
      .filter((gap) => gap !== undefined);
    if (missing.length === 0) return undefined;
    if (best === undefined || missing.length < best.missing.length) best = { prePull, missing };
  }
  if (best === undefined) return undefined;
  return `PrePull ${id(best.prePull)} keeps the image only on nodes labelled ${Object.entries(
    best.prePull.spec.nodeSelector,
  )
    .map(([k, v]) => `${k}=${v}`)
    .join(
      ',',
    )}, but the Pod's nodeSelector and required node affinity do not imply ${best.missing.join(', ')}; it may be scheduled where the image is missing`;
}

function findingAt(site: ContainerSite, rule: RuleId, message: string): Finding {
  return {
    rule,
    level: RULES[rule].level,
    file: site.file,
    ...(site.document === undefined ? {} : { document: site.document }),
    ...(site.line === undefined ? {} : { line: site.line }),
    object: site.object,
    container: site.container,
    containerType: site.containerType,
    image: typeof site.image === 'string' ? site.image : '',
    message,
  };
}

/** One node's NodeImageCache entry, as far as the explanation reads it. */
export interface NodeImageEntry {
  image: string;
  state: string;
  reason?: string;
  message?: string;
  code?: string;
}

function entryText(entry: NodeImageEntry): string {
  const why = [entry.reason, entry.message].filter((t) => t !== undefined && t !== '').join(': ');
  const code = entry.code === undefined || entry.code === '' ? '' : ` (${entry.code})`;
  return why === '' ? code : `: ${why}${code}`;
}

function onNode(
  ref: ImageReference,
  node: string,
  by: string,
  entries: readonly NodeImageEntry[] | undefined,
): string {
  if (entries === undefined) {
    return `${by}, but node ${node} reports no NodeImageCache (is the agent running there?)`;
  }
  const entry = entries.find((e) => {
    try {
      return covers(parseReference(e.image), ref);
    } catch {
      return false;
    }
  });
  if (entry === undefined) {
    return `${by}, but node ${node}'s NodeImageCache does not list it: the PrePull's nodeSelector does not select ${node}, or the agent there has not seen the PrePull yet`;
  }
  if (entry.state === 'Present') {
    return `${by} and Present on node ${node}, yet kubelet did not find it: it was removed since the agent's last report, or kubelet's runtime is not the one the agent reads`;
  }
  return `${by}, but ${entry.state} on node ${node}${entryText(entry)}`;
}

/**
 * Why a container of a running Pod is in ErrImageNeverPull on `node`: its image is not covered by
 * any PrePull, or the node's NodeImageCache (`caches`: node → entries) says why it is not there.
 */
export function explainNeverPull(
  site: ContainerSite,
  node: string,
  listed: readonly Listed[],
  caches: ReadonlyMap<string, readonly NodeImageEntry[]>,
): Finding {
  const image = typeof site.image === 'string' ? site.image : '';
  const failed = `ErrImageNeverPull on node ${node === '' ? '(none)' : node}`;
  let ref: ImageReference;
  try {
    ref = parseReference(image);
  } catch (error) {
    return findingAt(site, 'never-pull-failed', `${failed}: ${(error as Error).message}`);
  }
  const covering = listed.filter((l) => covers(l.ref, ref));
  if (covering.length === 0) {
    const why = whyNotCovered(
      ref,
      listed.filter((l) => l.ref.name === ref.name),
      'live',
    );
    return findingAt(
      site,
      'never-pull-failed',
      `${failed}: ${ref.canonical} is not covered by any PrePull (${why})`,
    );
  }
  const by = `covered by ${[...new Set(covering.map((l) => `PrePull ${id(l.prePull)}`))].join(', ')}`;
  return findingAt(
    site,
    'never-pull-failed',
    `${failed}: ${onNode(ref, node, by, caches.get(node))}`,
  );
}

/** The findings for one container: those of its image, then of its policy. */
export function checkContainer(
  site: ContainerSite,
  listed: readonly Listed[],
  options: RuleOptions,
): Finding[] {
  const image = typeof site.image === 'string' ? site.image : '';
  const finding = (rule: RuleId, message: string): Finding => findingAt(site, rule, message);
  let ref: ImageReference;
  try {
    ref = parseReference(image);
  } catch (error) {
    const why = image === '' ? 'the container names no image' : (error as Error).message;
    return [finding('invalid-image', why)];
  }
  const findings: Finding[] = [];
  const policy = effectivePullPolicy(image, site.imagePullPolicy);
  if (policy.policy === 'Never' || options.airGapped) {
    const covering = listed.filter((l) => covers(l.ref, ref, options.resolved));
    if (covering.length === 0) {
      const sameName = listed.filter((l) => l.ref.name === ref.name);
      const mismatched = mismatch(ref, sameName, options.resolved);
      if (mismatched !== undefined) findings.push(finding('digest-mismatch', mismatched));
      else findings.push(finding('not-covered', whyNotCovered(ref, sameName, options.resolved)));
    } else {
      const gap = selectorGap(site.placement, covering);
      if (gap !== undefined) findings.push(finding('selector-gap', gap));
    }
  }
  if (policy.policy === 'Never' && ref.digest === undefined && ref.tag === 'latest') {
    findings.push(
      finding(
        'mutable-never',
        `${image} is a mutable tag used with imagePullPolicy Never: nodes may hold different content under it; pin a digest (${ref.name}@sha256:…)`,
      ),
    );
  }
  if (!policy.explicit) {
    findings.push(
      finding(
        'implicit-policy',
        `no imagePullPolicy: Kubernetes defaults it to ${policy.policy} because ${policy.reason}`,
      ),
    );
  }
  return findings;
}
