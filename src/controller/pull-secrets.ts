// The leader's copies of pull secrets (docs/adr/0020-pull-secret-copies.md): for every Secret a
// PrePull names in spec.imagePullSecrets, a copy in the agents' namespace under the name both
// sides compute (src/api/pull-secrets.ts), so that agents need `get` on secrets there only.
//
// A pass reads every source with `get` (never a cluster-wide list or watch: the controller would
// then hold every Secret of the cluster in memory), lists its own copies by label, and creates,
// updates or deletes copies until they match. Passes run when the set of named secrets changes,
// when leadership starts, and every resync period (a rotated source reaches the copy within it).
// "Owned by the PrePull" is kept by the controller itself: a namespaced object cannot have an
// owner in another namespace (the garbage collector would delete it at once), so the copy names
// its source and its PrePulls in annotations, and a pass deletes every copy no PrePull names.
// Secret values are copied, compared and never logged: log lines and Events carry names only.
import {
  COPY_LABEL,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  PULL_SECRET_TYPES,
  REFERENCED_BY_ANNOTATION,
  SOURCE_ANNOTATION,
  pullSecretCopyName,
} from '../api/pull-secrets.ts';
import type { Clock } from '../clock.ts';
import { type KubeRequester, type KubernetesObject, isKubeApiError } from '../kube/client.ts';
import type { Logger } from '../telemetry/logger.ts';

/** A PrePull that names a secret: where its Events go. */
export interface Referrer {
  namespace: string;
  name: string;
  uid?: string | undefined;
}

/** Why a named secret has no copy: the Event's reason. */
export type MissingReason = 'PullSecretMissing' | 'PullSecretInvalid';

export interface PullSecretCopierParts {
  kube: KubeRequester;
  /** The agents' namespace, where the copies live. */
  namespace: string;
  /** Between two passes while leading (a rotated source reaches its copy within this). */
  resyncMs: number;
  clock: Clock;
  log: Logger;
  /** Only while this says so does a pass write (the leader). */
  mayWrite: () => boolean;
  /** A secret some PrePulls name cannot be copied: said once, until it can be again. */
  onMissing: (referrers: readonly Referrer[], reason: MissingReason, message: string) => void;
  onWrite?: (verb: 'create' | 'update' | 'delete', result: 'ok' | 'error') => void;
}

interface Wanted {
  source: string;
  namespace: string;
  name: string;
  copy: string;
  referrers: Referrer[];
}

/** A Secret as this file reads and writes it (client-node's types are classes). */
interface SecretObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  type?: string;
  data?: Record<string, string>;
  immutable?: boolean;
}

const SECRETS = (namespace: string): string => `/api/v1/namespaces/${namespace}/secrets`;

/** The names in a PrePull's spec.imagePullSecrets (the CRD checked their form). */
function namedSecrets(object: KubernetesObject): string[] {
  const named = (object as { spec?: { imagePullSecrets?: unknown } }).spec?.imagePullSecrets;
  if (!Array.isArray(named)) return [];
  return (named as unknown[])
    .map((entry) => (entry as { name?: unknown } | null)?.name)
    .filter((name): name is string => typeof name === 'string' && name !== '');
}

/** Every secret the PrePulls name, by the name of its copy. */
export function wantedCopies(prePulls: readonly KubernetesObject[]): Map<string, Wanted> {
  const wanted = new Map<string, Wanted>();
  for (const object of prePulls) {
    const namespace = object.metadata?.namespace;
    const prePull = object.metadata?.name;
    if (namespace === undefined || prePull === undefined) continue;
    for (const name of namedSecrets(object)) {
      const copy = pullSecretCopyName(namespace, name);
      const item = wanted.get(copy) ?? {
        source: `${namespace}/${name}`,
        namespace,
        name,
        copy,
        referrers: [],
      };
      wanted.set(copy, item);
      if (!item.referrers.some((r) => r.name === prePull)) {
        item.referrers.push({ namespace, name: prePull, uid: object.metadata?.uid });
      }
    }
  }
  for (const item of wanted.values()) item.referrers.sort((a, b) => a.name.localeCompare(b.name));
  return wanted;
}

function referencedBy(item: Wanted): string {
  return item.referrers.map((r) => `${r.namespace}/${r.name}`).join(',');
}

/** The copy of `source` as it should be. */
function copyOf(item: Wanted, source: SecretObject, namespace: string): SecretObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: item.copy,
      namespace,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY, [COPY_LABEL]: 'true' },
      annotations: {
        [SOURCE_ANNOTATION]: item.source,
        [REFERENCED_BY_ANNOTATION]: referencedBy(item),
      },
    },
    type: source.type ?? '',
    data: source.data ?? {},
  };
}

/** Does the copy we hold already say what `want` says (labels, annotations, type, data)? */
function same(have: SecretObject, want: SecretObject): boolean {
  const labels = have.metadata?.labels ?? {};
  const annotations = have.metadata?.annotations ?? {};
  const wantedLabels = want.metadata?.labels ?? {};
  const wantedAnnotations = want.metadata?.annotations ?? {};
  return (
    have.type === want.type &&
    Object.entries(wantedLabels).every(([k, v]) => labels[k] === v) &&
    Object.entries(wantedAnnotations).every(([k, v]) => annotations[k] === v) &&
    sameData(have.data ?? {}, want.data ?? {})
  );
}

function sameData(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

export class PullSecretCopier {
  readonly #parts: PullSecretCopierParts;
  readonly #prePulls: () => readonly KubernetesObject[];
  #signature = '';
  #running: Promise<void> | undefined;
  #queued = false;
  #lease: AbortSignal | undefined;
  #stopped = false;
  /** `<copy>` → the reason last announced, so an Event is not repeated every pass. */
  readonly #announced = new Map<string, string>();

  constructor(parts: PullSecretCopierParts, prePulls: () => readonly KubernetesObject[]) {
    this.#parts = parts;
    this.#prePulls = prePulls;
  }

  /** The PrePulls changed: a pass when the secrets they name (or who names them) changed. */
  changed(): void {
    const signature = JSON.stringify(
      [...wantedCopies(this.#prePulls()).values()].map((w) => [w.copy, referencedBy(w)]).sort(),
    );
    if (signature === this.#signature) return;
    this.#signature = signature;
    this.#kick();
  }

  /** Passes from now, and every resync period, until `signal` aborts. */
  lead(signal: AbortSignal): void {
    if (signal.aborted || this.#stopped) return;
    this.#lease = signal;
    // Another leader may have announced meanwhile; say it again once.
    this.#announced.clear();
    const { clock, resyncMs } = this.#parts;
    const resync = async (): Promise<void> => {
      while (!signal.aborted && !this.#stopped) {
        this.#kick();
        await clock.sleep(resyncMs, signal).catch(() => undefined);
      }
    };
    void resync();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running;
  }

  #writing(): boolean {
    return (
      !this.#stopped && this.#lease !== undefined && !this.#lease.aborted && this.#parts.mayWrite()
    );
  }

  #kick(): void {
    if (!this.#writing()) return;
    if (this.#running !== undefined) {
      this.#queued = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  async #loop(): Promise<void> {
    do {
      this.#queued = false;
      try {
        await this.pass();
      } catch (error) {
        this.#parts.log.warn({ err: error }, 'pull secret copies: pass failed');
      }
    } while (this.#again());
  }

  /** Was another pass asked for while this one ran? (A method: it changes across awaits.) */
  #again(): boolean {
    return this.#queued && this.#writing();
  }

  /** One pass: every named secret copied, every copy no PrePull names deleted. */
  async pass(): Promise<void> {
    if (!this.#writing()) return;
    const { kube, namespace } = this.#parts;
    const wanted = wantedCopies(this.#prePulls());
    const listed = await kube.request<{ items?: SecretObject[] }>('GET', SECRETS(namespace), {
      query: { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY},${COPY_LABEL}` },
    });
    const copies = new Map<string, SecretObject>();
    for (const item of listed.items ?? []) {
      const name = item.metadata?.name;
      if (name !== undefined) copies.set(name, item);
    }
    for (const item of [...wanted.values()].sort((a, b) => a.copy.localeCompare(b.copy))) {
      if (!this.#writing()) return;
      await this.#keep(item, copies.get(item.copy));
    }
    await this.#removeUnwanted(copies, wanted);
  }

  /** Copies of secrets no PrePull names any more: the PrePull was deleted or edited. */
  async #removeUnwanted(
    copies: ReadonlyMap<string, SecretObject>,
    wanted: ReadonlyMap<string, Wanted>,
  ): Promise<void> {
    for (const [name, copy] of copies) {
      if (wanted.has(name)) continue;
      const source = copy.metadata?.annotations?.[SOURCE_ANNOTATION] ?? '?';
      await this.#delete(name, `no PrePull names ${source} any more`);
    }
    for (const name of [...this.#announced.keys()])
      if (!wanted.has(name)) this.#announced.delete(name);
  }

  /** Makes the copy of one named secret match its source, or removes it when it cannot. */
  async #keep(item: Wanted, have: SecretObject | undefined): Promise<void> {
    const { kube, log, namespace } = this.#parts;
    const held = have?.metadata?.annotations?.[SOURCE_ANNOTATION];
    if (have !== undefined && held !== item.source) {
      // Two sources with one copy name: never overwrite another source's copy.
      log.error(
        { copy: `${namespace}/${item.copy}`, source: item.source, held },
        'pull secret copy name taken by another source; not copied',
      );
      return;
    }
    const source = await this.#source(item);
    if (source === 'keep') return;
    if (source === 'none') {
      if (have !== undefined) await this.#delete(item.copy, `${item.source} cannot be copied`);
      return;
    }
    this.#announced.delete(item.copy);
    const want = copyOf(item, source, namespace);
    if (have === undefined) {
      await this.#write('create', item, () =>
        kube.request('POST', SECRETS(namespace), { body: want }),
      );
    } else if (have.type !== want.type || have.immutable === true) {
      // A Secret's type cannot change, nor an immutable one's data: replace the copy.
      await this.#delete(item.copy, `${item.source} changed its type`);
      await this.#write('create', item, () =>
        kube.request('POST', SECRETS(namespace), { body: want }),
      );
    } else if (!same(have, want)) {
      const body = {
        ...want,
        metadata: { ...want.metadata, resourceVersion: have.metadata?.resourceVersion },
      };
      await this.#write('update', item, () =>
        kube.request('PUT', `${SECRETS(namespace)}/${item.copy}`, { body }),
      );
    }
  }

  /**
   * The source, read by name; `none` when it is known not to be copyable (gone, or not a pull
   * secret: said on its PrePulls), `keep` when it could not be read (the copy stays as it is).
   */
  async #source(item: Wanted): Promise<SecretObject | 'none' | 'keep'> {
    let source: SecretObject;
    try {
      source = await this.#parts.kube.request<SecretObject>(
        'GET',
        `${SECRETS(item.namespace)}/${encodeURIComponent(item.name)}`,
      );
    } catch (error) {
      if (!isKubeApiError(error, 404)) {
        // Not known to be gone: keep the copy the agents have, try again next pass.
        this.#parts.log.warn({ err: error, source: item.source }, 'could not read a pull secret');
        return 'keep';
      }
      this.#missing(
        item,
        'PullSecretMissing',
        `pull secret ${item.source} does not exist: the agents have no copy of it; create it (kubectl create secret docker-registry)`,
      );
      return 'none';
    }
    if (!PULL_SECRET_TYPES.includes(source.type ?? '')) {
      this.#missing(
        item,
        'PullSecretInvalid',
        `secret ${item.source} has type ${JSON.stringify(source.type ?? '')}, not a pull secret type (${PULL_SECRET_TYPES.join(' or ')}): it is not copied for the agents`,
      );
      return 'none';
    }
    return source;
  }

  #missing(item: Wanted, reason: MissingReason, message: string): void {
    const key = `${reason}:${message}`;
    if (this.#announced.get(item.copy) === key) return;
    this.#announced.set(item.copy, key);
    this.#parts.log.warn(
      { source: item.source, prePulls: referencedBy(item), reason },
      'pull secret not copied',
    );
    this.#parts.onMissing(item.referrers, reason, message);
  }

  async #write(
    verb: 'create' | 'update',
    item: Wanted,
    request: () => Promise<unknown>,
  ): Promise<void> {
    const { log, namespace, onWrite } = this.#parts;
    if (!this.#writing()) return;
    try {
      await request();
      onWrite?.(verb, 'ok');
      log.info(
        { copy: `${namespace}/${item.copy}`, source: item.source, prePulls: referencedBy(item) },
        verb === 'create' ? 'pull secret copied' : 'pull secret copy updated',
      );
    } catch (error) {
      onWrite?.(verb, 'error');
      // A conflict (someone changed the copy meanwhile) or an outage: the next pass retries.
      log.warn(
        { err: error, copy: `${namespace}/${item.copy}` },
        `could not ${verb} a pull secret copy`,
      );
    }
  }

  async #delete(name: string, why: string): Promise<void> {
    const { kube, log, namespace, onWrite } = this.#parts;
    if (!this.#writing()) return;
    try {
      await kube.request('DELETE', `${SECRETS(namespace)}/${name}`);
      onWrite?.('delete', 'ok');
      log.info({ copy: `${namespace}/${name}`, why }, 'pull secret copy removed');
    } catch (error) {
      if (isKubeApiError(error, 404)) return;
      onWrite?.('delete', 'error');
      log.warn({ err: error, copy: `${namespace}/${name}` }, 'could not remove a pull secret copy');
    }
  }
}
