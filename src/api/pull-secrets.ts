// Where an agent finds the pull secrets a PrePull names (docs/adr/0020-pull-secret-copies.md):
// the controller keeps a copy of each in the agents' own namespace, under a name both sides
// compute from the source's namespace and name alone, so neither has to ask the other.
import { createHash } from 'node:crypto';

/** The agents' namespace when nothing says otherwise (POD_NAMESPACE, in the cluster). */
export const DEFAULT_PULL_SECRET_NAMESPACE = 'prepull-system';

/** Labels every copy carries: the controller lists its copies by them, and people can too. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'prepull';
export const COPY_LABEL = 'prepull.dev/pull-secret-copy';
/** `<namespace>/<name>` of the secret the copy was made from. */
export const SOURCE_ANNOTATION = 'prepull.dev/source';
/** The PrePulls (`<namespace>/<name>`, comma-separated, sorted) that name the source. */
export const REFERENCED_BY_ANNOTATION = 'prepull.dev/referenced-by';

/** The only secret types copied: what kubelet reads from imagePullSecrets. */
export const PULL_SECRET_TYPES: readonly string[] = [
  'kubernetes.io/dockerconfigjson',
  'kubernetes.io/dockercfg',
];

/**
 * The copy's name: `prepull-pull-` and 20 hex digits of the SHA-256 of `<namespace>/<name>`.
 * A namespace and a secret name together run to 316 characters, more than a name may hold, so
 * the name is a hash; 80 bits make a collision between two sources of one cluster out of reach,
 * and the copy's source annotation is checked on both sides all the same.
 */
export function pullSecretCopyName(namespace: string, name: string): string {
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest('hex');
  return `prepull-pull-${hash.slice(0, 20)}`;
}
