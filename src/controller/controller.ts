// The controller (docs/adr/0014-controller-and-admission.md): informers on PrePulls,
// NodeImageCaches and Nodes; on any change one reconcile pass (at most one running, one queued)
// computes each paced PrePull's admissions, every PrePull's status and the Nodes' readiness
// labels and start-up taint, and — only while leading, and never before all three informers have
// synced — writes them: statuses through the rate-limited PrePullStatusWriter, Nodes with PATCH
// (a merge patch for labels, a JSON patch for the taint; never PUT). The leader elector lives
// elsewhere and calls lead() with a signal that aborts when the lease is lost. With
// pullSecretNamespace, the leader also keeps copies of the PrePulls' pull secrets there
// (./pull-secrets.ts, ADR 0020), on its own schedule: a status pass never reads a secret.
//
// Memory (never needed for correctness after a failover, ADR 0014): when each NodeImageCache was
// last seen to change (the controller's clock), the nodes that stalled before, the readiness
// label names set, and the statuses computed while leading (ahead of the informer, so a pass
// that runs before the informer shows our last write neither re-admits nor re-times anything).
import { NODE_IMAGE_CACHES } from '../api/nodeimagecache.ts';
import { API_VERSION } from '../api/prepull.ts';
import {
  type Admission,
  type PrePullStatus,
  type RolloutStatus,
  isPaced,
  resolveMaxConcurrent,
} from '../api/rollout.ts';
import type { Clock } from '../clock.ts';
import type { KubeClient, KubernetesObject } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import { Watched } from '../kube/watched.ts';
import type { Logger } from '../telemetry/logger.ts';
import { type PacedPrePull, admit, servedAdmissions } from './admission.ts';
import {
  type NodeProgress,
  type NodeView,
  type PrePullView,
  nodeProgress,
  prePullStatus,
  type NodeCacheImages,
  readNode,
  readNodeCache,
  readNodeImages,
  readPrePull,
} from './aggregate.ts';
import { PullSecretCopier } from './pull-secrets.ts';
import { readiness } from './readiness.ts';
import { MERGE_PATCH, PrePullStatusWriter } from './status-writer.ts';

export const JSON_PATCH = 'application/json-patch+json';
const PREPULLS = `/apis/${API_VERSION}/prepulls`;
const CACHES = `/apis/${API_VERSION}/${NODE_IMAGE_CACHES}`;
const NODES = '/api/v1/nodes';

export interface ControllerOptions {
  /** --max-concurrent-nodes: distinct nodes admitted across all PrePulls; paces every PrePull. */
  maxConcurrentNodes?: number | undefined;
  /** --admission-timeout: an admitted node whose NodeImageCache did not change for this long leaves. */
  admissionTimeoutMs: number;
  /** At most one status write per PrePull per this many ms. */
  statusIntervalMs: number;
  /**
   * At least this many ms between the starts of two reconcile passes (default 200): the events
   * of a busy fleet — thousands of NodeImageCache writes during a rollout — are coalesced into a
   * few passes a second instead of one pass each (bench/controller.bench.ts: CPU and memory).
   */
  passIntervalMs?: number;
  /**
   * The agents' namespace: the leader keeps there a copy of every pull secret a PrePull names
   * (ADR 0020). Absent: no copies (agents reading secrets directly).
   */
  pullSecretNamespace?: string | undefined;
  /** Between two passes over the pull secret copies while leading (default 60 s). */
  pullSecretResyncMs?: number;
}

/** What the controller counts (implemented with prom-client by the CLI). */
export interface ControllerMetrics {
  statusWrites(result: 'ok' | 'conflict' | 'error'): void;
  nodePatches(kind: 'label' | 'taint', result: 'ok' | 'error'): void;
  /** Distinct nodes admitted across all PrePulls, after each pass. */
  admitted(count: number): void;
  watchRestart(resource: string): void;
  /** PrePulls the informer holds, after each pass. */
  prePulls(count: number): void;
  /** Writes of pull secret copies (optional: tests may leave it out). */
  pullSecretCopies?(verb: 'create' | 'update' | 'delete', result: 'ok' | 'error'): void;
}

export interface ControllerParts {
  options: ControllerOptions;
  clock: Clock;
  log: Logger;
  metrics: ControllerMetrics;
  kube: Pick<KubeClient, 'request' | 'informer'>;
  watchBackoff?: { initialMs: number; maxMs: number };
  /** This replica's name (the Lease holder identity): the reportingInstance of its Events. */
  identity?: string;
}

/** The reportingController of the controller's Events (the agents' are prepull.dev/agent). */
export const CONTROLLER_NAME = 'prepull.dev/controller';

type PatchKind = 'label' | 'taint';

interface Entry {
  view: PrePullView;
  progress: Map<string, NodeProgress>;
  paced: boolean;
}

export class Controller {
  readonly #parts: ControllerParts;
  readonly #writer: PrePullStatusWriter;
  readonly #events: EventRecorder;
  readonly #prePulls: Watched<KubernetesObject>;
  readonly #caches: Watched<KubernetesObject>;
  readonly #nodes: Watched<KubernetesObject>;
  readonly #copier: PullSecretCopier | undefined;
  #startedAt: number;
  /** Node name → controller-clock ms of the last change seen of its NodeImageCache. */
  readonly #lastSeen = new Map<string, number>();
  readonly #cacheVersions = new Map<string, string>();
  readonly #stalled = new Set<string>();
  #managedLabels = new Set<string>();
  /** PrePull key → the status last computed while leading. */
  readonly #computed = new Map<string, PrePullStatus>();
  /**
   * Node → the patches applied (by kind), and the node's resourceVersions from the one they were
   * computed from to the one our last patch made: while the informer shows one of those, a pass
   * computing the same patch again is only the informer lagging behind our own write.
   */
  readonly #applied = new Map<string, { versions: Set<string>; parts: Map<PatchKind, string> }>();
  #lease: AbortSignal | undefined;
  #running: Promise<void> | undefined;
  #queued = false;
  #timer: AbortController | undefined;
  /** PrePull key → its object, rebuilt after a PrePull event (the writer asks per write). */
  #servedIndex: Map<string, KubernetesObject> | undefined;
  /** Node patches failed in a row: the next pass comes after a backoff, not only on an event. */
  #patchFailures = 0;
  #stopped = false;
  readonly #stopping = new AbortController();
  #lastPassAt = Number.NEGATIVE_INFINITY;
  /** Each informer object read once, for as long as the informer keeps it (it replaces, never mutates). */
  readonly #nodeViews = new WeakMap<KubernetesObject, NodeView>();
  readonly #cacheViews = new WeakMap<KubernetesObject, NodeCacheImages | null>();

  constructor(parts: ControllerParts) {
    this.#parts = parts;
    this.#startedAt = parts.clock.now();
    this.#events = new EventRecorder(parts.kube, {
      node: parts.identity ?? 'prepull-controller',
      reportingController: CONTROLLER_NAME,
      nodeIsRelated: false,
      clock: parts.clock,
      log: parts.log,
    });
    this.#writer = new PrePullStatusWriter(parts.kube, {
      clock: parts.clock,
      log: parts.log,
      intervalMs: parts.options.statusIntervalMs,
      served: (key) => this.#served(key),
      onWrite: (result) => {
        parts.metrics.statusWrites(result);
      },
      mayWrite: () => this.leading,
    });
    this.#prePulls = this.#wrap(parts.kube.informer<KubernetesObject>(PREPULLS), 'prepulls', () => {
      this.#servedIndex = undefined;
      if (this.synced) this.#copier?.changed();
    });
    this.#copier = this.#copierFor(parts);
    const caches = parts.kube.informer<KubernetesObject>(CACHES);
    caches.on('add', (o) => {
      this.#cacheSeen(o);
    });
    caches.on('update', (o) => {
      this.#cacheSeen(o);
    });
    caches.on('delete', (o) => {
      this.#cacheGone(o);
    });
    this.#caches = this.#wrap(caches, 'nodeimagecaches');
    this.#nodes = this.#wrap(parts.kube.informer<KubernetesObject>(NODES), 'nodes');
  }

  get synced(): boolean {
    return this.#prePulls.synced && this.#caches.synced && this.#nodes.synced;
  }

  get leading(): boolean {
    return this.#lease !== undefined && !this.#lease.aborted && !this.#stopped;
  }

  /** Starts the informers; resolves once all three have listed. Writes nothing. */
  async start(): Promise<void> {
    this.#startedAt = this.#parts.clock.now();
    await Promise.all([this.#prePulls.start(), this.#caches.start(), this.#nodes.start()]);
    // Stopped while listing (a SIGTERM before the caches synced): say nothing more.
    if (this.#stopped) return;
    this.#parts.log.info('controller informers synced');
    this.#kick();
  }

  #copierFor(parts: ControllerParts): PullSecretCopier | undefined {
    const namespace = parts.options.pullSecretNamespace;
    if (namespace === undefined) return undefined;
    return new PullSecretCopier(
      {
        kube: parts.kube,
        namespace,
        resyncMs: parts.options.pullSecretResyncMs ?? 60_000,
        clock: parts.clock,
        log: parts.log.child({ component: 'pull-secrets' }),
        mayWrite: () => this.synced && this.leading,
        onMissing: (referrers, reason, note) => {
          for (const r of referrers)
            this.#events.record(r, { type: 'Warning', reason, action: 'CopyPullSecret', note });
        },
        onWrite: (verb, result) => {
          parts.metrics.pullSecretCopies?.(verb, result);
        },
      },
      () => this.#prePulls.list(),
    );
  }

  /** Reconciles and writes from now until `signal` aborts (the lease is lost or released). */
  lead(signal: AbortSignal): void {
    if (signal.aborted || this.#stopped) return;
    this.#lease = signal;
    // Start from what the API says: another leader may have written since we last led.
    this.#computed.clear();
    this.#applied.clear();
    signal.addEventListener(
      'abort',
      () => {
        if (this.#lease !== signal) return;
        this.#lease = undefined;
        this.#writer.clear();
        this.#timer?.abort();
        this.#parts.log.info('controller stopped leading');
      },
      { once: true },
    );
    this.#parts.log.info('controller leading');
    this.#kick();
    this.#copier?.lead(signal);
  }

  /** Stops the informers and writers; a write in flight finishes. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopping.abort();
    this.#timer?.abort();
    await this.#running;
    await this.#copier?.stop();
    await this.#writer.stop();
    await this.#events.flush();
    await Promise.all([this.#prePulls.stop(), this.#caches.stop(), this.#nodes.stop()]);
  }

  #wrap(
    informer: ReturnType<KubeClient['informer']>,
    resource: string,
    changed?: () => void,
  ): Watched<KubernetesObject> {
    const { clock, log, metrics, watchBackoff } = this.#parts;
    return new Watched(informer, {
      resource,
      clock,
      log,
      onRestart: () => {
        metrics.watchRestart(resource);
      },
      onChange: () => {
        changed?.();
        this.#kick();
      },
      ...(watchBackoff !== undefined ? { backoff: watchBackoff } : {}),
    });
  }

  #cacheSeen(object: KubernetesObject): void {
    const node = nodeOf(object);
    const version = object.metadata?.resourceVersion ?? '';
    if (node === undefined || this.#cacheVersions.get(node) === version) return;
    this.#cacheVersions.set(node, version);
    this.#lastSeen.set(node, this.#parts.clock.now());
    // Alive again: no longer last in line.
    this.#stalled.delete(node);
  }

  #cacheGone(object: KubernetesObject): void {
    const node = nodeOf(object);
    if (node === undefined) return;
    this.#cacheVersions.delete(node);
    this.#lastSeen.delete(node);
  }

  #served(key: string): { status: unknown; resourceVersion?: string | undefined } | undefined {
    this.#servedIndex ??= new Map(
      this.#prePulls
        .list()
        .map((o) => [`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`, o]),
    );
    const object = this.#servedIndex.get(key);
    if (object === undefined) return undefined;
    return {
      status: (object as { status?: unknown }).status,
      resourceVersion: object.metadata?.resourceVersion,
    };
  }

  /** Runs one pass now, or once more after the one running (coalesced). */
  #kick(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#queued = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
      // A kick that came after the loop decided to return (lead() right after start() resolves,
      // while start()'s own pass is still returning) would otherwise be lost until the next event.
      if (this.#queued) this.#kick();
    });
  }

  async #loop(): Promise<void> {
    for (;;) {
      this.#queued = false;
      // Let the events of one informer delivery arrive before the pass reads the caches.
      await Promise.resolve();
      if (!this.#canAct()) return;
      const { clock, options } = this.#parts;
      const wait = this.#lastPassAt + (options.passIntervalMs ?? 200) - clock.now();
      if (wait > 0) {
        await clock.sleep(wait, this.#stopping.signal).catch(() => undefined);
        this.#queued = false;
        if (!this.#canAct()) return;
      }
      this.#lastPassAt = clock.now();
      try {
        await this.#pass();
      } catch (error) {
        this.#parts.log.error({ err: error }, 'reconcile pass failed');
      }
      if (!this.#again()) return;
    }
  }

  /** Synced and leading (a method: either can change across an await). */
  #canAct(): boolean {
    return this.synced && this.leading && !this.#stopped;
  }

  /** Was another pass asked for while this one ran? */
  #again(): boolean {
    return this.#queued && !this.#stopped;
  }

  async #pass(): Promise<void> {
    const { clock, metrics, options } = this.#parts;
    const now = clock.now();
    const nodes = this.#nodes.list().map((object) => this.#nodeView(object));
    const nodeImages = readNodeImages(this.#caches.list(), (object) => this.#cacheView(object));
    const requireAdmission = options.maxConcurrentNodes !== undefined;
    const entries: Entry[] = this.#prePulls.list().map((object) => {
      const view = readPrePull(object);
      const prePull = view.prePull;
      return {
        view,
        progress: prePull ? nodeProgress(prePull, nodes, nodeImages) : new Map(),
        paced: prePull !== undefined && isPaced(prePull.spec, requireAdmission),
      };
    });
    this.#forgetGone(entries);
    const rollouts = this.#admissions(entries, now);
    const iso = new Date(now).toISOString();
    for (const { view, progress } of entries) {
      const previous = this.#computed.get(view.key);
      const status = prePullStatus({
        view: previous !== undefined ? { ...view, status: previous } : view,
        progress,
        nodeImages,
        rollout: rollouts.get(view.key),
        now: iso,
      });
      this.#announce(view, previous ?? view.status, status);
      this.#computed.set(view.key, status);
      this.#writer.update(view.key, status);
    }
    metrics.prePulls(entries.length);
    await this.#patchNodes(nodes, entries);
    this.#armTimer(rollouts, now);
  }

  /** An Event on the PrePull when its Ready condition turns True: the rollout is complete. */
  #announce(view: PrePullView, before: unknown, after: PrePullStatus): void {
    const ready = after.conditions.find((c) => c.type === 'Ready');
    if (ready?.status !== 'True' || readyStatus(before) === 'True' || !this.leading) return;
    this.#events.record(
      { namespace: view.namespace, name: view.name, uid: view.uid },
      { type: 'Normal', reason: 'Ready', action: 'Rollout', note: ready.message },
    );
  }

  /** A Warning Event on the PrePull: a stalled node's slot went to another node. */
  #slotMoved(entries: readonly Entry[], key: string, node: string): void {
    const view = entries.find((e) => e.view.key === key)?.view;
    if (view === undefined) return;
    const seconds = Math.round(this.#parts.options.admissionTimeoutMs / 1000);
    this.#events.record(
      { namespace: view.namespace, name: view.name, uid: view.uid },
      {
        type: 'Warning',
        reason: 'AdmissionTimeout',
        action: 'Admit',
        note: `node ${node} showed no progress for ${seconds}s; its rollout slot moves to another node`,
        relatedNode: node,
      },
    );
  }

  #nodeView(object: KubernetesObject): NodeView {
    let view = this.#nodeViews.get(object);
    if (view === undefined) {
      view = readNode(object);
      this.#nodeViews.set(object, view);
    }
    return view;
  }

  #cacheView(object: KubernetesObject): NodeCacheImages | undefined {
    let view = this.#cacheViews.get(object);
    if (view === undefined) {
      view = readNodeCache(object) ?? null;
      this.#cacheViews.set(object, view);
    }
    return view ?? undefined;
  }

  #forgetGone(entries: readonly Entry[]): void {
    const keys = new Set(entries.map((e) => e.view.key));
    for (const key of [...this.#computed.keys()]) {
      if (keys.has(key)) continue;
      this.#computed.delete(key);
      this.#writer.forget(key);
    }
  }

  /** The new status.rollout of every paced PrePull. */
  #admissions(entries: readonly Entry[], now: number): Map<string, RolloutStatus> {
    const { log, metrics, options } = this.#parts;
    const paced: (PacedPrePull & { max?: number })[] = [];
    for (const { view, progress, paced: isPacedNow } of entries) {
      const spec = view.prePull?.spec;
      if (!isPacedNow || spec === undefined) continue;
      const cap = resolveMaxConcurrent(spec.rollout?.maxConcurrentNodes, progress.size);
      const current = this.#computed.get(view.key)?.rollout?.admitted;
      paced.push({
        key: view.key,
        cap,
        paused: spec.rollout?.paused === true,
        nodes: progress,
        admitted: current ?? servedAdmissions(view.status),
      });
    }
    const result = admit({
      prePulls: paced,
      lastChangeSeen: (node) => this.#lastSeen.get(node) ?? this.#startedAt,
      now,
      admissionTimeoutMs: options.admissionTimeoutMs,
      clusterCap: options.maxConcurrentNodes,
      stalledBefore: this.#stalled,
    });
    for (const d of result.dropped) {
      if (d.reason === 'stalled') {
        this.#stalled.add(d.node);
        log.warn({ prePull: d.prePull, node: d.node }, 'admitted node stalled; its slot moves on');
        this.#slotMoved(entries, d.prePull, d.node);
      } else log.debug({ prePull: d.prePull, node: d.node, reason: d.reason }, 'node leaves');
    }
    metrics.admitted(result.distinct);
    const rollouts = new Map<string, RolloutStatus>();
    for (const p of paced) {
      rollouts.set(p.key, {
        ...(p.cap !== undefined ? { maxConcurrentNodes: p.cap } : {}),
        paused: p.paused,
        admitted: result.admitted.get(p.key) ?? [],
      });
    }
    return rollouts;
  }

  /**
   * Wakes a pass when the first admitted node would stall (no event announces it), or to retry
   * failed node patches (1 s doubling to 30 s).
   */
  #armTimer(rollouts: ReadonlyMap<string, RolloutStatus>, now: number): void {
    this.#timer?.abort();
    this.#timer = undefined;
    let first = Number.POSITIVE_INFINITY;
    for (const rollout of rollouts.values())
      for (const a of rollout.admitted) first = Math.min(first, this.#stallsAt(a));
    if (this.#patchFailures > 0)
      first = Math.min(first, now + Math.min(30_000, 1000 * 2 ** (this.#patchFailures - 1)));
    if (first === Number.POSITIVE_INFINITY || !this.leading) return;
    const timer = new AbortController();
    this.#timer = timer;
    this.#parts.clock.sleep(Math.max(0, first - now), timer.signal).then(
      () => {
        if (this.#timer === timer) this.#kick();
      },
      () => undefined,
    );
  }

  #stallsAt(admission: Admission): number {
    const since = Date.parse(admission.since);
    const seen = this.#lastSeen.get(admission.node) ?? this.#startedAt;
    const from = Number.isNaN(since) ? seen : Math.max(since, seen);
    return from + this.#parts.options.admissionTimeoutMs;
  }

  async #patchNodes(nodes: readonly NodeView[], entries: readonly Entry[]): Promise<void> {
    const result = readiness({
      nodes,
      prePulls: entries
        .filter((e) => e.view.prePull !== undefined)
        .map((e) => ({ nodeLabel: e.view.prePull?.spec.nodeLabel, progress: e.progress })),
      managed: this.#managedLabels,
    });
    this.#managedLabels = result.managed;
    const versions = new Map(
      this.#nodes.list().map((o) => [o.metadata?.name ?? '', o.metadata?.resourceVersion ?? '']),
    );
    let failed = false;
    for (const patch of result.patches) {
      if (!this.leading) return;
      let applied = this.#applied.get(patch.node);
      const version = versions.get(patch.node) ?? '';
      if (applied?.versions.has(version) !== true) {
        applied = { versions: new Set([version]), parts: new Map() };
        this.#applied.set(patch.node, applied);
      }
      const parts: [PatchKind, unknown, string][] = [];
      if (patch.labels !== undefined) parts.push(['label', patch.labels, MERGE_PATCH]);
      if (patch.taint !== undefined) parts.push(['taint', patch.taint, JSON_PATCH]);
      for (const [kind, body, contentType] of parts) {
        const text = JSON.stringify(body);
        if (applied.parts.get(kind) === text || !this.#stillLeading()) continue;
        const written = await this.#patchNode(patch.node, kind, { body, contentType });
        if (written === undefined) failed = true;
        else {
          applied.parts.set(kind, text);
          applied.versions.add(written);
        }
      }
    }
    this.#patchFailures = failed ? this.#patchFailures + 1 : 0;
  }

  /** Leadership can end during any await of a pass. */
  #stillLeading(): boolean {
    return this.leading;
  }

  /** One PATCH of a Node; the resourceVersion it made, or undefined when it failed. */
  async #patchNode(
    node: string,
    kind: PatchKind,
    request: { body: unknown; contentType: string },
  ): Promise<string | undefined> {
    const { kube, log, metrics } = this.#parts;
    try {
      const written = await kube.request<KubernetesObject>('PATCH', `${NODES}/${node}`, request);
      metrics.nodePatches(kind, 'ok');
      return written.metadata?.resourceVersion ?? '';
    } catch (error) {
      metrics.nodePatches(kind, 'error');
      // A failed taint test means the taints changed meanwhile: a later pass retries.
      log.warn({ err: error, node, kind }, 'could not patch node');
      return undefined;
    }
  }
}

function readyStatus(status: unknown): string | undefined {
  const conditions = (status as { conditions?: unknown } | null | undefined)?.conditions;
  if (!Array.isArray(conditions)) return undefined;
  const ready = (conditions as { type?: unknown; status?: unknown }[]).find(
    (c) => c.type === 'Ready',
  );
  return typeof ready?.status === 'string' ? ready.status : undefined;
}

function nodeOf(cache: KubernetesObject): string | undefined {
  const spec = (cache as { spec?: { nodeName?: unknown } }).spec;
  return typeof spec?.nodeName === 'string' ? spec.nodeName : cache.metadata?.name;
}
