// The node simulator of bench/controller.bench.ts, a worker thread: plays the agents of thousands
// of nodes without running them. One PrePull informer for all of them (an agent has one each);
// for each node, the agent's rule decides what it may pull — the images `desiredImages` gives
// for its labels, an image starting a pull when a PrePull wanting it admits the node (`admits`
// from src/api/rollout.ts, as src/agent/prepulls.ts asks it) or when it was Present on the node
// before — and the node reports in its NodeImageCache as an agent does: the status built by
// `nodeImageCacheStatus`, PUT on /status with the resourceVersion it holds, only when it changed
// and at most once per 2 s per node (a later change waits and is coalesced). A pull takes a
// lognormal time; the image then turns Present with a digest. Counts the nodes pulling at every
// transition, so the benchmark can hold a paced rollout to its cap as the nodes saw it.
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import {
  type CachedImage,
  type NodeImageCache,
  type NodeImageCacheStatus,
  nodeImageCacheStatus,
} from '../src/api/nodeimagecache.ts';
import { type PrePull, validatePrePull } from '../src/api/prepull.ts';
import { admits } from '../src/api/rollout.ts';
import type { ImageState } from '../src/image/report.ts';
import { isKubeApiError, KubeClient, type KubernetesObject } from '../src/kube/client.ts';
import { type DesiredImage, desiredImages } from '../src/reconcile/desired.ts';
import { Semaphore } from '../src/semaphore.ts';
import { fakeDigest, lognormal, seededRandom } from './agent-support.ts';

export interface SimNodeSetup {
  name: string;
  labels: Record<string, string>;
  /** The NodeImageCache as stored (with its status): the agent's last report. */
  cache: NodeImageCache;
}

export interface SimSetup {
  nodes: SimNodeSetup[];
  kubeconfig: string;
  sandboxImage: string;
  runtime: NodeImageCacheStatus['runtime'];
  /** Pull time: lognormal with this median (ms) and σ. */
  pullMedianMs: number;
  pullSigma: number;
  seed: number;
  /** At most one status write per node per this many ms (the agent's default: 2000). */
  statusIntervalMs: number;
  /** Status writes in flight at once, all nodes together (the connections the simulator uses). */
  concurrentWrites: number;
}

export type ToSim = { kind: 'stop' } | { kind: 'count' } | { kind: 'reset' };

export interface SimCounts {
  /** Nodes with a pull running now, and the most since the last reset. */
  pulling: number;
  mostPulling: number;
  /** (time ms since reset, nodes pulling) at every change since the last reset. */
  timeline: [number, number][];
  pullsStarted: number;
  pullsDone: number;
  writes: number;
  conflicts: number;
  errors: number;
  /** Writes waiting for their node's interval or for a connection, and in flight. */
  backlog: number;
  busyMs: number;
  heapMiB: number;
}

export type FromSim =
  | { kind: 'started'; nodes: number }
  | ({ kind: 'counted' } & SimCounts)
  | { kind: 'stopped'; pulls: number[] }
  | { kind: 'failed'; error: string };

const CACHES = '/apis/prepull.dev/v1alpha1/nodeimagecaches';
const PREPULLS = '/apis/prepull.dev/v1alpha1/prepulls';
const AWAITING =
  "waiting for prepull's controller to admit this node to the paced rollout of the PrePulls that want it";

type Entry = Omit<CachedImage, 'requiredBy' | 'reason'> & { requiredBy: string[]; reason: string };

interface SimNode {
  name: string;
  labels: Record<string, string>;
  object: NodeImageCache;
  images: Map<string, Entry>;
  /** Images Present on the node before: repairs and restarts need no admission. */
  held: Set<string>;
  pulls: number;
  previous: NodeImageCacheStatus | undefined;
  /** The status last written, without lastUpdateTime. */
  written: string;
  lastWriteAt: number;
  timer: NodeJS.Timeout | undefined;
  writing: boolean;
  dirty: boolean;
}

function comparable(status: NodeImageCacheStatus): string {
  const rest: Partial<NodeImageCacheStatus> = { ...status };
  delete rest.lastUpdateTime;
  return JSON.stringify(rest);
}

export class NodeSimulator {
  readonly #setup: SimSetup;
  readonly #kube: KubeClient;
  readonly #nodes: SimNode[];
  readonly #gate: Semaphore;
  readonly #draw: () => number;
  readonly #informer;
  readonly #pullTimers = new Set<NodeJS.Timeout>();
  readonly drawn: number[] = [];
  #stopped = false;
  #pulling = 0;
  #mostPulling = 0;
  #resetAt = performance.now();
  #timeline: [number, number][] = [];
  #counts = { pullsStarted: 0, pullsDone: 0, writes: 0, conflicts: 0, errors: 0 };
  #backlog = 0;

  constructor(setup: SimSetup) {
    this.#setup = setup;
    this.#kube = KubeClient.load(setup.kubeconfig);
    this.#gate = new Semaphore(setup.concurrentWrites);
    const random = seededRandom(setup.seed);
    this.#draw = () => lognormal(random, setup.pullMedianMs, setup.pullSigma);
    this.#nodes = setup.nodes.map((n) => {
      const status = n.cache.status;
      const images = new Map<string, Entry>(
        (status?.images ?? []).map((i) => [
          i.image,
          { ...i, requiredBy: [...i.requiredBy], reason: i.reason ?? '' },
        ]),
      );
      const object: NodeImageCache = { ...n.cache };
      delete object.status;
      return {
        name: n.name,
        labels: n.labels,
        object,
        images,
        held: new Set(
          [...images.values()].filter((i) => i.state === 'Present').map((i) => i.image),
        ),
        pulls: 0,
        previous: status,
        written: status === undefined ? '' : comparable(status),
        lastWriteAt: Number.NEGATIVE_INFINITY,
        timer: undefined,
        writing: false,
        dirty: false,
      };
    });
    this.#informer = this.#kube.informer<KubernetesObject>(PREPULLS);
    const changed = (): void => {
      this.#reconcile();
    };
    this.#informer.on('add', changed);
    this.#informer.on('update', changed);
    this.#informer.on('delete', changed);
    this.#informer.on('error', (error) => {
      port.postMessage({
        kind: 'failed',
        error: `PrePull watch: ${String(error)}`,
      } satisfies FromSim);
    });
  }

  async start(): Promise<void> {
    await this.#informer.start();
    this.#reconcile();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#pullTimers) clearTimeout(timer);
    for (const node of this.#nodes) clearTimeout(node.timer);
    await this.#informer.stop();
    await this.#gate.idle();
  }

  counts(): SimCounts {
    const elu = performance.eventLoopUtilization();
    return {
      pulling: this.#pulling,
      mostPulling: this.#mostPulling,
      timeline: this.#timeline,
      ...this.#counts,
      backlog: this.#backlog,
      busyMs: elu.active,
      heapMiB: getHeapStatistics().used_heap_size / 2 ** 20,
    };
  }

  reset(): void {
    this.#mostPulling = this.#pulling;
    this.#resetAt = performance.now();
    this.#timeline = [[0, this.#pulling]];
  }

  /** Every node's desired images from the PrePulls the informer holds, as its agent would. */
  #reconcile(): void {
    if (this.#stopped) return;
    const prePulls: { prePull: PrePull; status: unknown }[] = [];
    for (const object of this.#informer.list()) {
      const namespace = object.metadata?.namespace ?? '';
      const { prePull } = validatePrePull(
        {
          apiVersion: object.apiVersion,
          kind: object.kind,
          metadata: object.metadata,
          spec: (object as { spec?: unknown }).spec,
        },
        namespace,
      );
      if (prePull !== undefined)
        prePulls.push({ prePull, status: (object as { status?: unknown }).status });
    }
    // Nodes whose selector-relevant labels and admissions agree want the same images: computed once.
    const keys = [...new Set(prePulls.flatMap((p) => Object.keys(p.prePull.spec.nodeSelector)))];
    const cache = new Map<string, Map<string, DesiredImage>>();
    const valid = prePulls.map((p) => p.prePull);
    for (const node of this.#nodes) {
      const admitting = new Set<string>();
      for (const { prePull, status } of prePulls) {
        if (admits({ spec: prePull.spec, status }, node.name, false))
          admitting.add(`${prePull.metadata.namespace}/${prePull.metadata.name}`);
      }
      const signature = `${keys.map((k) => node.labels[k] ?? '\u0000').join('\u0001')}|${[...admitting].join(',')}`;
      let desired = cache.get(signature);
      if (desired === undefined) {
        desired = desiredImages(valid, node.labels, this.#setup.sandboxImage, admitting);
        cache.set(signature, desired);
      }
      this.#apply(node, desired);
    }
  }

  #apply(node: SimNode, desired: ReadonlyMap<string, DesiredImage>): void {
    let changed = false;
    for (const [key, wanted] of desired) {
      let entry = node.images.get(key);
      if (entry === undefined) {
        entry = { image: key, requiredBy: [], state: 'Missing', reason: 'NotPresent', attempts: 0 };
        node.images.set(key, entry);
        changed = true;
      }
      if (entry.requiredBy.join(',') !== wanted.requiredBy.join(',')) {
        entry.requiredBy = [...wanted.requiredBy];
        changed = true;
      }
      if (entry.state === 'Present' || entry.state === 'Pulling') continue;
      if (wanted.admitted || node.held.has(key)) {
        this.#pull(node, entry);
        changed = true;
      } else if (entry.reason !== 'AwaitingAdmission') {
        entry.state = 'Missing';
        entry.reason = 'AwaitingAdmission';
        entry.message = AWAITING;
        changed = true;
      }
    }
    for (const key of [...node.images.keys()]) {
      if (desired.has(key)) continue;
      node.images.delete(key);
      changed = true;
    }
    if (changed) this.#request(node);
  }

  #pull(node: SimNode, entry: Entry): void {
    entry.state = 'Pulling';
    entry.reason = 'Pulling';
    delete entry.message;
    entry.attempts++;
    this.#counts.pullsStarted++;
    if (node.pulls++ === 0) this.#pullingChanged(1);
    const ms = this.#draw();
    this.drawn.push(ms);
    const timer = setTimeout(() => {
      this.#pullTimers.delete(timer);
      if (this.#stopped) return;
      const digest = fakeDigest(entry.image);
      Object.assign(entry, {
        state: 'Present' satisfies ImageState,
        reason: 'Verified',
        digest,
        registryDigest: digest,
        imageId: fakeDigest(entry.image, 'config'),
        size: 50_000_000,
        pinned: true,
        lastVerified: new Date().toISOString(),
      });
      node.held.add(entry.image);
      this.#counts.pullsDone++;
      if (--node.pulls === 0) this.#pullingChanged(-1);
      this.#request(node);
    }, ms);
    this.#pullTimers.add(timer);
  }

  #pullingChanged(delta: number): void {
    this.#pulling += delta;
    this.#mostPulling = Math.max(this.#mostPulling, this.#pulling);
    this.#timeline.push([performance.now() - this.#resetAt, this.#pulling]);
  }

  /** Stopping can come during any await. */
  #isStopped(): boolean {
    return this.#stopped;
  }

  /** A status write, now or once the node's interval has passed (coalesced). */
  #request(node: SimNode): void {
    if (this.#stopped) return;
    if (node.writing) {
      node.dirty = true;
      return;
    }
    if (node.timer !== undefined) return;
    const wait = node.lastWriteAt + this.#setup.statusIntervalMs - performance.now();
    this.#backlog++;
    node.timer = setTimeout(
      () => {
        node.timer = undefined;
        this.#backlog--;
        void this.#write(node);
      },
      Math.max(0, wait),
    );
  }

  async #write(node: SimNode): Promise<void> {
    if (this.#stopped) return;
    node.writing = true;
    node.dirty = false;
    this.#backlog++;
    const release = await this.#gate.acquire();
    try {
      if (this.#isStopped()) return;
      const images = [...node.images.values()].sort((a, b) =>
        a.image < b.image ? -1 : a.image > b.image ? 1 : 0,
      );
      const now = new Date().toISOString();
      const status = nodeImageCacheStatus(
        images,
        this.#setup.runtime,
        {},
        {
          now,
          previous: node.previous,
        },
      );
      const text = comparable(status);
      if (text === node.written) return;
      node.lastWriteAt = performance.now();
      try {
        const stored = await this.#kube.request<NodeImageCache>(
          'PUT',
          `${CACHES}/${node.name}/status`,
          { body: { ...node.object, status: { ...status, lastUpdateTime: now } } },
        );
        this.#counts.writes++;
        node.written = text;
        node.previous = status;
        node.object.metadata.resourceVersion = stored.metadata.resourceVersion ?? '';
      } catch (error) {
        if (isKubeApiError(error, 409)) {
          this.#counts.conflicts++;
          const live = await this.#kube.request<NodeImageCache>('GET', `${CACHES}/${node.name}`);
          node.object.metadata.resourceVersion = live.metadata.resourceVersion ?? '';
        } else this.#counts.errors++;
        node.dirty = true;
      }
    } finally {
      release();
      this.#backlog--;
      node.writing = false;
      if (node.dirty) this.#request(node);
    }
  }
}

const port = parentPort!;
const simulator = new NodeSimulator(workerData as SimSetup);

port.on('message', (message: ToSim) => {
  if (message.kind === 'count') {
    port.postMessage({ kind: 'counted', ...simulator.counts() } satisfies FromSim);
  } else if (message.kind === 'reset') {
    simulator.reset();
  } else {
    simulator.stop().then(
      () => {
        port.postMessage({ kind: 'stopped', pulls: simulator.drawn } satisfies FromSim);
      },
      (error: unknown) => {
        port.postMessage({ kind: 'failed', error: String(error) } satisfies FromSim);
      },
    );
  }
});

simulator.start().then(
  () => {
    port.postMessage({ kind: 'started', nodes: setup().nodes.length } satisfies FromSim);
  },
  (error: unknown) => {
    port.postMessage({
      kind: 'failed',
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    } satisfies FromSim);
  },
);

function setup(): SimSetup {
  return workerData as SimSetup;
}
