// The images this node must hold: every image of every PrePull whose nodeSelector matches the
// node's labels, plus the runtime's sandbox (pause) image that every Pod needs. An image wanted
// by several PrePulls is one entry; where their settings differ, the stricter one wins (see
// docs/adr/0004-merging-prepulls.md). References are normalised, so `nginx` and
// `docker.io/library/nginx:latest` are the same image.
import { type CleanupPolicy, type PrePull, selectsNode } from '../api/prepull.ts';
import { isPrepullError } from '../errors.ts';
import { type ImageReference, parseReference } from '../image/reference.ts';
import type { Wanted } from './state.ts';

/** Who wants the image: `namespace/name` of a PrePull, or SANDBOX. */
export const SANDBOX = 'runtime/sandbox-image';

export interface SecretRef {
  namespace: string;
  name: string;
}

export interface DesiredImage extends Wanted {
  /** The reference as written in the first PrePull that named it. */
  written: string;
  /** The reference, parsed once here (`ref` is its canonical string); unset when invalid. */
  reference?: ImageReference;
  /** PrePulls (`namespace/name`) that want it, sorted; SANDBOX for the runtime's pause image. */
  requiredBy: string[];
  /** Pull secrets named by those PrePulls, in order, without repeats. */
  secrets: SecretRef[];
  /**
   * May this node start pulling it? True when any PrePull that wants it admits the node (an
   * unpaced PrePull admits every node; a paced one those its status lists — ADR 0014).
   */
  admitted: boolean;
  /** What to do once no PrePull wants it: Remove only if every one of them says Remove. */
  cleanup: CleanupPolicy;
}

function stricter(into: DesiredImage, prePull: PrePull): void {
  const spec = prePull.spec;
  if (spec.pullPolicy === 'Always') into.pullPolicy = 'Always';
  if (spec.verify === 'Registry') into.verify = 'Registry';
  if (spec.pin) into.pin = true;
  into.timeoutSeconds = Math.max(into.timeoutSeconds, spec.timeoutSeconds);
  into.backoffLimit = Math.max(into.backoffLimit, spec.backoffLimit);
  // Removing is the weaker guarantee: one PrePull that only unpins keeps the image.
  if (spec.cleanup !== 'Remove') into.cleanup = 'Unpin';
}

function keyOf(written: string): {
  key: string;
  byDigest: boolean;
  reference?: ImageReference;
  invalid?: Wanted['invalid'];
} {
  try {
    const reference = parseReference(written);
    return { key: reference.canonical, byDigest: reference.digest !== undefined, reference };
  } catch (error) {
    if (!isPrepullError(error)) throw error;
    // Keyed by what was written, so the bad reference shows as itself in status.
    return {
      key: written,
      byDigest: false,
      invalid: { code: error.code, message: error.message, retryable: false },
    };
  }
}

function newEntry(
  key: string,
  written: string,
  parsed: ReturnType<typeof keyOf>,
  prePull?: PrePull,
): DesiredImage {
  const spec = prePull?.spec;
  return {
    ref: key,
    written,
    byDigest: parsed.byDigest,
    ...(parsed.reference ? { reference: parsed.reference } : {}),
    ...(parsed.invalid ? { invalid: parsed.invalid } : {}),
    pullPolicy: spec?.pullPolicy ?? 'IfNotPresent',
    verify: spec?.verify ?? 'Registry',
    pin: spec?.pin ?? true,
    timeoutSeconds: spec?.timeoutSeconds ?? 1800,
    backoffLimit: spec?.backoffLimit ?? 6,
    cleanup: 'Unpin',
    requiredBy: [],
    secrets: [],
    admitted: false,
  };
}

function addOwner(entry: DesiredImage, prePull: PrePull): void {
  for (const secret of prePull.spec.imagePullSecrets) {
    const ref = { namespace: prePull.metadata.namespace, name: secret.name };
    if (!entry.secrets.some((s) => s.namespace === ref.namespace && s.name === ref.name))
      entry.secrets.push(ref);
  }
}

function add(
  desired: Map<string, DesiredImage>,
  written: string,
  prePull: PrePull | undefined,
  owner: string,
  admitted: boolean,
): void {
  const parsed = keyOf(written);
  let entry = desired.get(parsed.key);
  if (entry === undefined) {
    entry = newEntry(parsed.key, written, parsed, prePull);
    if (prePull !== undefined) entry.cleanup = prePull.spec.cleanup;
    desired.set(parsed.key, entry);
  } else if (prePull !== undefined) {
    stricter(entry, prePull);
  }
  if (!entry.requiredBy.includes(owner)) entry.requiredBy.push(owner);
  if (admitted) entry.admitted = true;
  if (prePull !== undefined) addOwner(entry, prePull);
}

/**
 * The desired set for a node with `labels`, from every known PrePull and the runtime's sandbox
 * image (when the runtime reveals it). Keyed by canonical reference. `admitting` holds the
 * PrePulls (`namespace/name`) that admit this node to pull; undefined: all of them do.
 */
export function desiredImages(
  prePulls: readonly PrePull[],
  labels: Readonly<Record<string, string>>,
  sandboxImage?: string,
  admitting?: ReadonlySet<string>,
): Map<string, DesiredImage> {
  const desired = new Map<string, DesiredImage>();
  // Plain code-unit order, not localeCompare: the same for the names Kubernetes allows, and it
  // leaves ICU's collation tables (about 2 MiB resident) unloaded.
  const key = (p: PrePull): string => `${p.metadata.namespace}/${p.metadata.name}`;
  const sorted = [...prePulls].sort((a, b) => compareCodeUnits(key(a), key(b)));
  for (const prePull of sorted) {
    if (!selectsNode(prePull.spec.nodeSelector, labels)) continue;
    const owner = `${prePull.metadata.namespace}/${prePull.metadata.name}`;
    const admitted = admitting === undefined || admitting.has(owner);
    for (const { image } of prePull.spec.images) add(desired, image, prePull, owner, admitted);
  }
  if (sandboxImage !== undefined && sandboxImage !== '')
    add(desired, sandboxImage, undefined, SANDBOX, true);
  for (const entry of desired.values()) entry.requiredBy.sort();
  return desired;
}

/** Orders strings by UTF-16 code units, as `<` does: locale-independent and ICU-free. */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
