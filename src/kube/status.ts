// Writes this node's NodeImageCache: created at start (owned by the Node, so it goes when the Node
// goes), then its status replaced through the status subresource — at most once per interval and
// only when the content changed, so a steady node writes nothing. A pull's progress is not such a
// change: it rides along with the writes made anyway (a state change, the heartbeat). A 409 means someone else wrote
// in between: read the object again and retry; a 404 means it was deleted: create it again.
import {
  type CachedImage,
  type NodeImageCache,
  type NodeImageCacheStatus,
  NODE_IMAGE_CACHE_KIND,
  NODE_IMAGE_CACHES,
} from '../api/nodeimagecache.ts';
import { API_VERSION } from '../api/prepull.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import { type KubeRequester, isKubeApiError } from './client.ts';

export const COLLECTION = `/apis/${API_VERSION}/${NODE_IMAGE_CACHES}`;

export interface NodeRef {
  name: string;
  uid: string;
}

export interface StatusWriterOptions {
  clock: Clock;
  log: Logger;
  /** At most one write per this many ms (default 2000). */
  minIntervalMs?: number;
  /** Counts writes by result: ok, conflict, error. */
  onWrite?: (result: 'ok' | 'conflict' | 'error') => void;
  /**
   * While an image is Pulling, write the status again (a new lastUpdateTime) at least this often
   * even when nothing changed: the controller reads a NIC that stops changing mid-pull as a dead
   * or stalled agent and gives its rollout slot to another node (ADR 0014). Default 60 s; 0: never.
   */
  heartbeatMs?: number;
}

/** The content that decides whether to write: all but the time and the progress of pulls. */
function comparable(status: NodeImageCacheStatus): string {
  const rest: Partial<NodeImageCacheStatus> = { ...status };
  delete rest.lastUpdateTime;
  // Only Pulling images carry progress: a node with none pays nothing here.
  if (status.summary.pulling > 0) rest.images = status.images.map(withoutProgress);
  return JSON.stringify(rest);
}

function withoutProgress(image: CachedImage): CachedImage {
  if (image.progress === undefined) return image;
  const rest = { ...image };
  delete rest.progress;
  return rest;
}

const MAX_RETRY_MS = 30_000;

export class NodeImageCacheWriter {
  readonly #api: KubeRequester;
  readonly #options: Required<Omit<StatusWriterOptions, 'onWrite'>> &
    Pick<StatusWriterOptions, 'onWrite'>;
  #node: NodeRef | undefined;
  #resourceVersion: string | undefined;
  #lastWritten: string | undefined;
  #pending: NodeImageCacheStatus | undefined;
  /** The newest status given, written or not: a heartbeat writes it, with its progress. */
  #latest: NodeImageCacheStatus | undefined;
  #lastWriteAt = Number.NEGATIVE_INFINITY;
  #timer: AbortController | undefined;
  #writing: Promise<void> | undefined;
  #failures = 0;
  #stopped = false;
  #heartbeat: AbortController | undefined;

  constructor(api: KubeRequester, options: StatusWriterOptions) {
    this.#api = api;
    this.#options = { minIntervalMs: 2000, heartbeatMs: 60_000, ...options };
  }

  /** The status last written (for tests and readiness). */
  get lastWritten(): NodeImageCacheStatus | undefined {
    return this.#lastWritten === undefined
      ? undefined
      : (JSON.parse(this.#lastWritten) as NodeImageCacheStatus);
  }

  /** Creates this node's NodeImageCache unless it exists; remembers its resourceVersion. */
  async ensure(node: NodeRef): Promise<void> {
    this.#node = node;
    try {
      const existing = await this.#api.request<NodeImageCache>('GET', `${COLLECTION}/${node.name}`);
      this.#adopt(existing);
    } catch (error) {
      if (!isKubeApiError(error, 404)) throw error;
      await this.#create(node);
    }
  }

  /** The status to report now; written when it differs from the last write, within the interval. */
  update(status: NodeImageCacheStatus): void {
    if (this.#stopped) return;
    this.#latest = status;
    // Unchanged since the last write, and no write in flight that could change what is stored.
    if (this.#writing === undefined && comparable(status) === this.#lastWritten) {
      this.#pending = undefined;
      return;
    }
    this.#pending = status;
    this.#schedule();
  }

  /** Writes what is pending now, whatever the interval (shutdown). */
  async flush(): Promise<void> {
    this.#timer?.abort();
    this.#timer = undefined;
    await this.#writing;
    if (this.#pending !== undefined) await this.#write();
  }

  /** Stops scheduling; a write in flight finishes. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.abort();
    this.#timer = undefined;
    this.#heartbeat?.abort();
    this.#heartbeat = undefined;
    await this.#writing;
  }

  #adopt(object: NodeImageCache): void {
    this.#resourceVersion = object.metadata.resourceVersion;
    if (object.status !== undefined && this.#lastWritten === undefined) {
      // After a restart: an identical status need not be written again.
      this.#lastWritten = comparable(object.status);
    }
  }

  async #create(node: NodeRef): Promise<void> {
    const body: NodeImageCache = {
      apiVersion: API_VERSION,
      kind: NODE_IMAGE_CACHE_KIND,
      metadata: {
        name: node.name,
        labels: { 'app.kubernetes.io/managed-by': 'prepull' },
        ownerReferences: [
          {
            apiVersion: 'v1',
            kind: 'Node',
            name: node.name,
            uid: node.uid,
            // Not a controller reference: the Node's controller is not prepull.
          },
        ],
      },
      spec: { nodeName: node.name },
    };
    try {
      const created = await this.#api.request<NodeImageCache>('POST', COLLECTION, { body });
      this.#resourceVersion = created.metadata.resourceVersion;
      this.#lastWritten = undefined;
      this.#options.log.info({ nodeImageCache: node.name }, 'created NodeImageCache');
    } catch (error) {
      if (!isKubeApiError(error, 409)) throw error;
      // Created meanwhile (another start of this agent): read it.
      const existing = await this.#api.request<NodeImageCache>('GET', `${COLLECTION}/${node.name}`);
      this.#adopt(existing);
    }
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#writing !== undefined || this.#stopped) return;
    const { clock, minIntervalMs } = this.#options;
    const retryDelay =
      this.#failures > 0 ? Math.min(MAX_RETRY_MS, minIntervalMs * 2 ** this.#failures) : 0;
    const wait = Math.max(0, this.#lastWriteAt + minIntervalMs - clock.now(), retryDelay);
    const timer = new AbortController();
    this.#timer = timer;
    clock.sleep(wait, timer.signal).then(
      () => {
        if (this.#timer === timer) this.#timer = undefined;
        // A timer can fire a millisecond or two early by the clock that stamped the last write
        // (bench/fleet.bench.ts saw writes 1998 ms apart): wait out the rest, never write early.
        if (clock.now() < this.#lastWriteAt + minIntervalMs) {
          this.#schedule();
          return;
        }
        void this.#write();
      },
      () => undefined,
    );
  }

  /** After a write of a status with pulls in flight: repeat it if nothing else is written first. */
  #scheduleHeartbeat(status: NodeImageCacheStatus): void {
    this.#heartbeat?.abort();
    this.#heartbeat = undefined;
    const { clock, heartbeatMs } = this.#options;
    if (heartbeatMs <= 0 || status.summary.pulling === 0 || this.#stopped) return;
    const timer = new AbortController();
    this.#heartbeat = timer;
    const writtenAt = this.#lastWriteAt;
    clock.sleep(heartbeatMs, timer.signal).then(
      () => {
        if (this.#heartbeat === timer) this.#heartbeat = undefined;
        // Something was written meanwhile (it scheduled its own heartbeat), or more is pending.
        if (this.#lastWriteAt !== writtenAt || this.#pending !== undefined) return;
        if (this.#writing !== undefined || this.#stopped) return;
        void this.#write(this.#latest ?? status, true);
      },
      () => undefined,
    );
  }

  async #write(heartbeat?: NodeImageCacheStatus, force = false): Promise<void> {
    const status = heartbeat ?? this.#pending;
    const node = this.#node;
    if (status === undefined || node === undefined) return;
    if (heartbeat === undefined) this.#pending = undefined;
    // Back where the last write left it (a change and its undoing within one interval).
    if (!force && comparable(status) === this.#lastWritten) return;
    const run = this.#put(node, status);
    this.#writing = run;
    try {
      await run;
    } finally {
      this.#writing = undefined;
      // update() may have queued a newer status while this one was being written.
      if (this.#hasPending()) this.#schedule();
    }
  }

  #hasPending(): boolean {
    return this.#pending !== undefined;
  }

  async #put(node: NodeRef, status: NodeImageCacheStatus): Promise<void> {
    const { clock, log, onWrite } = this.#options;
    const text = comparable(status);
    for (let attempt = 0; attempt < 3; attempt++) {
      // One reading: lastUpdateTime is the time the interval is measured from.
      this.#lastWriteAt = clock.now();
      const body: NodeImageCache = {
        apiVersion: API_VERSION,
        kind: NODE_IMAGE_CACHE_KIND,
        metadata: {
          name: node.name,
          ...(this.#resourceVersion !== undefined
            ? { resourceVersion: this.#resourceVersion }
            : {}),
        },
        spec: { nodeName: node.name },
        status: { ...status, lastUpdateTime: new Date(this.#lastWriteAt).toISOString() },
      };
      try {
        const written = await this.#api.request<NodeImageCache>(
          'PUT',
          `${COLLECTION}/${node.name}/status`,
          { body },
        );
        this.#resourceVersion = written.metadata.resourceVersion;
        this.#lastWritten = text;
        this.#failures = 0;
        onWrite?.('ok');
        this.#scheduleHeartbeat(status);
        return;
      } catch (error) {
        if (isKubeApiError(error, 409)) {
          onWrite?.('conflict');
          const fresh = await this.#reread(node);
          if (fresh) continue;
        } else if (isKubeApiError(error, 404)) {
          await this.#create(node).catch(() => undefined);
          continue;
        }
        onWrite?.('error');
        this.#failures++;
        log.warn(
          { err: error, nodeImageCache: node.name },
          'could not write NodeImageCache status',
        );
        // Keep the newest: a later update() may already have replaced it.
        this.#pending ??= status;
        return;
      }
    }
    this.#failures++;
    this.#pending ??= status;
  }

  async #reread(node: NodeRef): Promise<boolean> {
    try {
      const current = await this.#api.request<NodeImageCache>('GET', `${COLLECTION}/${node.name}`);
      this.#resourceVersion = current.metadata.resourceVersion;
      return true;
    } catch (error) {
      if (isKubeApiError(error, 404)) {
        await this.#create(node);
        return true;
      }
      return false;
    }
  }
}
