// Pull credentials for the agent: the imagePullSecrets the PrePulls wanting an image name, read
// one by one with `get` (the agent may not list or watch secrets) and kept for a while. A secret
// is read again when its cached copy is older than the TTL and an image needs it, when a PrePull
// naming it changes, and after a failure — so a fixed or rotated secret is picked up without a
// restart, and a steady node asks the API nothing. Secret values never leave this module except
// as credentials handed to the registry client and the runtime.
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
}

function keyOf(ref: SecretRef): string {
  return `${ref.namespace}/${ref.name}`;
}

export class PullSecrets implements CredentialProvider {
  readonly #api: KubeRequester;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #onRead: (() => void) | undefined;
  readonly #cache = new Map<string, Cached>();

  constructor(api: KubeRequester, options: PullSecretsOptions) {
    this.#api = api;
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs ?? 5 * 60_000;
    this.#onRead = options.onRead;
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
    let secret: ImagePullSecret & { metadata?: unknown };
    try {
      this.#onRead?.();
      const body = await this.#api.request<{
        type?: string;
        data?: Record<string, string>;
      }>('GET', `/api/v1/namespaces/${ref.namespace}/secrets/${ref.name}`);
      secret = { namespace: ref.namespace, name: ref.name, type: body.type, data: body.data };
    } catch (error) {
      this.#cache.delete(key);
      const why = isKubeApiError(error, 404)
        ? 'does not exist'
        : isKubeApiError(error, 403)
          ? 'cannot be read: the agent is not allowed to get it (RBAC)'
          : 'cannot be read from the API server';
      throw new PrepullError(
        'ERR_PULL_SECRET_UNAVAILABLE',
        `pull secret ${key} (${wanted}) ${why}`,
        { cause: error },
      );
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
}
