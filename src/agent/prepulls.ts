// The PrePulls the agent's informer holds, as the engine takes them: validated, each invalid one
// warned about once per version, and which pull secrets changed with them.
import { type PrePull, validatePrePull } from '../api/prepull.ts';
import { admits } from '../api/rollout.ts';
import type { KubernetesObject } from '../kube/client.ts';
import type { SecretRef } from '../reconcile/desired.ts';
import type { Logger } from '../telemetry/logger.ts';

/** The pull secrets `prePull` names, in its namespace. */
export function secretsOf(prePull: PrePull): SecretRef[] {
  return prePull.spec.imagePullSecrets.map((s) => ({
    namespace: prePull.metadata.namespace,
    name: s.name,
  }));
}

function validated(
  object: KubernetesObject,
  namespace: string,
): ReturnType<typeof validatePrePull> {
  // Only what a PrePull is made of: the API adds status and more metadata.
  const { apiVersion, kind, metadata } = object;
  return validatePrePull(
    { apiVersion, kind, metadata, spec: (object as { spec?: unknown }).spec },
    namespace,
  );
}

/** The PrePulls the informer holds, validated (the CRD validates at admission; this is the engine's own check). */
export class PrePullView {
  readonly #log: Logger;
  readonly #warned = new Map<string, string>();
  readonly #versions = new Map<string, string>();
  readonly uids = new Map<string, string>();

  constructor(log: Logger) {
    this.#log = log;
  }

  /**
   * Valid PrePulls, the pull secrets of those that changed since the last call, and those that
   * admit `node` to start pulls (unpaced, or paced with the node in status.rollout.admitted).
   */
  read(
    objects: readonly KubernetesObject[],
    admission: { node: string; requireAdmission: boolean } = { node: '', requireAdmission: false },
  ): { prePulls: PrePull[]; changedSecrets: SecretRef[]; admitting: Set<string> } {
    const prePulls: PrePull[] = [];
    const admitting = new Set<string>();
    const changedSecrets: SecretRef[] = [];
    const seen = new Set<string>();
    for (const object of objects) {
      const namespace = object.metadata?.namespace ?? '';
      const key = `${namespace}/${object.metadata?.name ?? ''}`;
      const version = specVersion(object);
      seen.add(key);
      const { prePull, issues } = validated(object, namespace);
      if (prePull === undefined) {
        if (this.#warned.get(key) !== version) {
          this.#warned.set(key, version);
          this.#log.warn({ prePull: key, issues }, 'ignoring an invalid PrePull');
        }
        continue;
      }
      prePulls.push(prePull);
      const status = (object as { status?: unknown }).status;
      if (admits({ spec: prePull.spec, status }, admission.node, admission.requireAdmission))
        admitting.add(key);
      if (object.metadata?.uid !== undefined) this.uids.set(key, object.metadata.uid);
      if (this.#versions.get(key) !== version) {
        this.#versions.set(key, version);
        changedSecrets.push(...secretsOf(prePull));
      }
    }
    this.#forgetAllBut(seen);
    return { prePulls, changedSecrets, admitting };
  }

  #forgetAllBut(seen: ReadonlySet<string>): void {
    for (const key of this.#versions.keys()) {
      if (!seen.has(key)) {
        this.#versions.delete(key);
        this.uids.delete(key);
      }
    }
  }
}

/**
 * Which spec this is: its generation (a status write by the controller leaves it alone, so the
 * pull secrets are not read again for every status write), or the resourceVersion without one.
 */
function specVersion(object: KubernetesObject): string {
  const generation = object.metadata?.generation;
  return generation !== undefined ? `g${generation}` : (object.metadata?.resourceVersion ?? '');
}
