// Pull credentials for the agent: the imagePullSecrets the PrePulls wanting an image name, read
// one by one with `get` (the agent may not list or watch secrets) and kept for a while. By
// default each is read as the controller's copy in the agent's own namespace, under the name
// both compute (docs/adr/0020-pull-secret-copies.md), so the agent needs no access to secrets
// elsewhere; with `direct`, from the PrePull's namespace itself (an install without the
// controller, and the wider RBAC that needs). A secret
// is read again when its cached copy is older than the TTL and an image needs it, when a PrePull
// naming it changes, and after a failure — so a fixed or rotated secret is picked up without a
// restart, and a steady node asks the API nothing. Secret values never leave this module except
// as credentials handed to the registry client and the runtime.
import { SOURCE_ANNOTATION, pullSecretCopyName } from '../api/pull-secrets.ts';
import type { Clock } from '../clock.ts';
import { PrepullError, isPrepullError } from '../errors.ts';
import type { CredentialProvider } from '../reconcile/types.ts';
import type { DesiredImage, SecretRef } from '../reconcile/desired.ts';
import {
  type CredentialSource,
  type ImagePullSecret,
  Keyring,
  parseImagePullSecret,
} from '../registry/credentials.ts';
import { type RegistryCredential } from '../image/credential.ts';
import { type KubeRequester, isKubeApiError } from './client.ts';

interface Cached {
  source: CredentialSource;
  readAt: number;
}

export interface PullSecretsOptions {
  clock: Clock;
  /** A cached secret older than this is read again when next needed (default 5 minutes). */
  ttlMs?: number;
  /** Counts secret reads (for the API load figures). */
  onRead?: () => void;
  /**
   * Where secrets are read: the controller's copies in this namespace (the default install), or
   * `direct` from each PrePull's namespace (no controller; the agent then needs `get` there).
   */
  from: { copiesIn: string } | 'direct';
}

interface SecretBody {
  type?: string;
  data?: Record<string, string>;
  metadata?: { annotations?: Record<string, string> };
}

function keyOf(ref: SecretRef): string {
  return `${ref.namespace}/${ref.name}`;
}

export class PullSecrets implements CredentialProvider {
  readonly #api: KubeRequester;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #onRead: (() => void) | undefined;
  readonly #from: PullSecretsOptions['from'];
  readonly #cache = new Map<string, Cached>();

  constructor(api: KubeRequester, options: PullSecretsOptions) {
    this.#api = api;
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs ?? 5 * 60_000;
    this.#onRead = options.onRead;
    this.#from = options.from;
  }

  async forImage(image: DesiredImage): Promise<RegistryCredential[]> {
    if (image.secrets.length === 0) return [];
    const sources: CredentialSource[] = [];
    for (const ref of image.secrets) sources.push(await this.#source(ref, image));
    return image.reference === undefined ? [] : new Keyring(sources).lookup(image.reference);
  }

  /** The registry refused what the secrets gave: read them again at the next attempt. */
  refused(image: DesiredImage): void {
    this.forget(image.secrets);
  }

  /** Forgets the named secrets (their PrePull changed). */
  forget(refs: readonly SecretRef[]): void {
    for (const ref of refs) this.#cache.delete(keyOf(ref));
  }

  /** Drops cached secrets no PrePull names any more. */
  retain(refs: readonly SecretRef[]): void {
    const keep = new Set(refs.map(keyOf));
    for (const key of this.#cache.keys()) if (!keep.has(key)) this.#cache.delete(key);
  }

  async #source(ref: SecretRef, image: DesiredImage): Promise<CredentialSource> {
    const key = keyOf(ref);
    const now = this.#clock.now();
    const cached = this.#cache.get(key);
    if (cached !== undefined && now - cached.readAt < this.#ttlMs) return cached.source;
    const wanted = `named in imagePullSecrets of ${image.requiredBy.join(', ')}`;
    let secret: ImagePullSecret;
    try {
      this.#onRead?.();
      const body = await this.#api.request<SecretBody>('GET', this.#pathOf(ref));
      this.#checkSource(ref, body);
      secret = { namespace: ref.namespace, name: ref.name, type: body.type, data: body.data };
    } catch (error) {
      this.#cache.delete(key);
      if (isPrepullError(error) && error.code === 'ERR_PULL_SECRET_UNAVAILABLE') throw error;
      throw new PrepullError('ERR_PULL_SECRET_UNAVAILABLE', this.#why(ref, error, wanted), {
        cause: error,
      });
    }
    try {
      const source = parseImagePullSecret(secret);
      this.#cache.set(key, { source, readAt: now });
      return source;
    } catch (error) {
      this.#cache.delete(key);
      const detail = isPrepullError(error) ? error.message : 'it cannot be parsed';
      throw new PrepullError('ERR_PULL_SECRET_UNAVAILABLE', `${detail} (${wanted})`, {
        cause: error,
      });
    }
  }

  #pathOf(ref: SecretRef): string {
    return this.#from === 'direct'
      ? `/api/v1/namespaces/${ref.namespace}/secrets/${ref.name}`
      : `/api/v1/namespaces/${this.#from.copiesIn}/secrets/${pullSecretCopyName(ref.namespace, ref.name)}`;
  }

  /** A copy made from another source (a hash collision, or someone's own secret by that name) is not used. */
  #checkSource(ref: SecretRef, body: SecretBody): void {
    if (this.#from === 'direct') return;
    const source = body.metadata?.annotations?.[SOURCE_ANNOTATION];
    if (source === keyOf(ref)) return;
    throw new PrepullError(
      'ERR_PULL_SECRET_UNAVAILABLE',
      `secret ${this.#from.copiesIn}/${pullSecretCopyName(ref.namespace, ref.name)} is not a copy of ${keyOf(ref)} ` +
        `(its ${SOURCE_ANNOTATION} annotation says ${JSON.stringify(source ?? '')}); the agent does not use it`,
    );
  }

  /** Why a secret could not be read, and what to do about it; never its content. */
  #why(ref: SecretRef, error: unknown, wanted: string): string {
    const key = keyOf(ref);
    if (this.#from === 'direct') {
      const why = isKubeApiError(error, 404)
        ? 'does not exist'
        : isKubeApiError(error, 403)
          ? 'cannot be read: the agent is not allowed to get it (RBAC; --pull-secrets direct needs deploy/agent-direct-secrets.yaml)'
          : 'cannot be read from the API server';
      return `pull secret ${key} (${wanted}) ${why}`;
    }
    const copy = `copy ${this.#from.copiesIn}/${pullSecretCopyName(ref.namespace, ref.name)} of pull secret ${key} (${wanted})`;
    if (isKubeApiError(error, 404)) {
      return (
        `${copy} not there yet: prepull-controller makes it once ${key} ` +
        `exists and has a pull-secret type; is prepull-controller running, and does ${key} exist?`
      );
    }
    if (isKubeApiError(error, 403)) {
      return `${copy} cannot be read: the agent is not allowed to get secrets in ${this.#from.copiesIn} (RBAC: the Role prepull-agent there)`;
    }
    return `${copy} cannot be read from the API server`;
  }
}
