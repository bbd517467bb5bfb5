// Writes PrePull.status for the leader (docs/adr/0014-controller-and-admission.md, "Status
// writes"): a JSON merge patch of the whole status on the status subresource (no resourceVersion,
// so no conflict with spec edits), nulls for the fields that went away; only when the status
// differs from the one the informer shows (key order aside); at most once per interval per
// PrePull, a later change waiting for the rest of the interval, the newest winning. A 404 means
// the PrePull was deleted: its write is dropped. Other errors retry with backoff.
import { API_VERSION } from '../api/prepull.ts';
import type { PrePullStatus } from '../api/rollout.ts';
import type { Clock } from '../clock.ts';
import { type KubeRequester, isKubeApiError } from '../kube/client.ts';
import { Semaphore } from '../semaphore.ts';
import type { Logger } from '../telemetry/logger.ts';

export const MERGE_PATCH = 'application/merge-patch+json';
const MAX_RETRY_MS = 30_000;
/** Status writes in flight at once, over all PrePulls (a new leader may have many to write). */
const CONCURRENT_WRITES = 8;

/** The status as the informer shows it now. */
export interface ServedStatus {
  status: unknown;
  resourceVersion?: string | undefined;
}

export type WriteResult = 'ok' | 'conflict' | 'error';

export interface StatusWriterOptions {
  clock: Clock;
  log: Logger;
  /** At most one write per PrePull per this many ms (default 1000). */
  intervalMs?: number | undefined;
  /** The PrePull `namespace/name` as the informer serves it now; undefined once it is gone. */
  served: (key: string) => ServedStatus | undefined;
  /** Counts writes by result. */
  onWrite?: (result: WriteResult) => void;
  /** Checked before each write (the leader's guard); false drops the write. Default: always. */
  mayWrite?: () => boolean;
}

/** JSON with object keys sorted: two statuses are equal when this is. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`);
    return `{${entries.join(',')}}`;
  }
  return value === undefined ? 'null' : JSON.stringify(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The merge patch that turns `before` into `after`: all of `after`, with null for each key of
 * `before` (at any object depth) that `after` lacks. Arrays are replaced whole.
 */
export function replacingPatch(before: unknown, after: unknown): unknown {
  if (!isRecord(after)) return after;
  const old = isRecord(before) ? before : {};
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(old)) if (!(key in after)) patch[key] = null;
  for (const [key, value] of Object.entries(after)) {
    if (value !== undefined) patch[key] = replacingPatch(old[key], value);
  }
  return patch;
}

/** The status subresource of PrePull `namespace/name`. */
export function statusPath(key: string): string {
  const [namespace = '', name = ''] = key.split('/');
  return `/apis/${API_VERSION}/namespaces/${namespace}/prepulls/${name}/status`;
}

/** Whether a newer status waits (update() may have set one during a write). */
function hasPending(entry: Entry): boolean {
  return entry.pending !== undefined;
}

interface Entry {
  pending?: PrePullStatus | undefined;
  lastWriteAt: number;
  timer?: AbortController | undefined;
  writing?: Promise<void> | undefined;
  failures: number;
  /** Our last write, and the served resourceVersion before it (the informer still shows that). */
  written?: { text: string; before: string | undefined };
}

export class PrePullStatusWriter {
  readonly #api: KubeRequester;
  readonly #options: StatusWriterOptions & { intervalMs: number };
  readonly #entries = new Map<string, Entry>();
  readonly #gate = new Semaphore(CONCURRENT_WRITES);
  #stopped = false;

  constructor(api: KubeRequester, options: StatusWriterOptions) {
    this.#api = api;
    this.#options = { ...options, intervalMs: options.intervalMs ?? 1000 };
  }

  /** PrePulls with a write waiting or in flight. */
  get busy(): number {
    return [...this.#entries.values()].filter(
      (e) => e.pending !== undefined || e.writing !== undefined,
    ).length;
  }

  /** The status PrePull `key` should have now: written when it differs from the served one. */
  update(key: string, status: PrePullStatus): void {
    if (this.#stopped) return;
    const served = this.#options.served(key);
    if (served === undefined) {
      this.forget(key);
      return;
    }
    const entry = this.#entry(key);
    if (entry.writing === undefined && this.#same(entry, served, canonicalJson(status))) {
      entry.pending = undefined;
      return;
    }
    entry.pending = status;
    this.#schedule(key, entry);
  }

  /** Forgets `key` (the PrePull is gone): its waiting write is dropped; one in flight finishes. */
  forget(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#drop(entry);
    this.#entries.delete(key);
  }

  /** Drops every waiting write (leadership lost); writes in flight finish, none is retried. */
  clear(): void {
    for (const entry of this.#entries.values()) this.#drop(entry);
  }

  /** Stops for good; resolves when the writes in flight have finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const writing = [...this.#entries.values()].flatMap((e) =>
      e.writing !== undefined ? [e.writing] : [],
    );
    this.clear();
    await Promise.all(writing);
  }

  #drop(entry: Entry): void {
    entry.timer?.abort();
    entry.timer = undefined;
    entry.pending = undefined;
  }

  #entry(key: string): Entry {
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = { lastWriteAt: Number.NEGATIVE_INFINITY, failures: 0 };
      this.#entries.set(key, entry);
    }
    return entry;
  }

  /** Does the served status say `text` already (or will it, once the informer sees our write)? */
  #same(entry: Entry, served: ServedStatus, text: string): boolean {
    if (canonicalJson(served.status ?? null) === text) return true;
    const written = entry.written;
    return (
      written?.text === text &&
      served.resourceVersion !== undefined &&
      served.resourceVersion === written.before
    );
  }

  #schedule(key: string, entry: Entry): void {
    if (entry.timer !== undefined || entry.writing !== undefined || this.#stopped) return;
    const { clock, intervalMs } = this.#options;
    const retry = entry.failures > 0 ? Math.min(MAX_RETRY_MS, intervalMs * 2 ** entry.failures) : 0;
    const wait = Math.max(entry.lastWriteAt + intervalMs - clock.now(), retry);
    if (wait <= 0 && entry.failures === 0) {
      void this.#write(key, entry);
      return;
    }
    const timer = new AbortController();
    entry.timer = timer;
    clock.sleep(Math.max(0, wait), timer.signal).then(
      () => {
        if (entry.timer !== timer) return;
        entry.timer = undefined;
        void this.#write(key, entry);
      },
      () => undefined,
    );
  }

  async #write(key: string, entry: Entry): Promise<void> {
    const status = entry.pending;
    entry.pending = undefined;
    if (status === undefined || this.#stopped) return;
    if (this.#options.mayWrite?.() === false) return;
    const served = this.#options.served(key);
    if (served === undefined) {
      this.forget(key);
      return;
    }
    const text = canonicalJson(status);
    if (this.#same(entry, served, text)) return;
    const run = this.#patch(key, entry, { status, text, served });
    entry.writing = run.then(() => undefined);
    const result = await run;
    entry.writing = undefined;
    if (this.#entries.get(key) !== entry) return;
    if (result === 'gone') this.forget(key);
    else if (hasPending(entry)) this.#schedule(key, entry);
  }

  async #patch(
    key: string,
    entry: Entry,
    write: { status: PrePullStatus; text: string; served: ServedStatus },
  ): Promise<'done' | 'gone'> {
    const { clock, log, onWrite } = this.#options;
    const release = await this.#gate.acquire();
    try {
      entry.lastWriteAt = clock.now();
      await this.#api.request('PATCH', statusPath(key), {
        body: { status: replacingPatch(write.served.status, write.status) },
        contentType: MERGE_PATCH,
      });
      entry.written = { text: write.text, before: write.served.resourceVersion };
      entry.failures = 0;
      onWrite?.('ok');
      return 'done';
    } catch (error) {
      if (isKubeApiError(error, 404)) {
        log.debug({ prePull: key }, 'PrePull gone; its status write is dropped');
        return 'gone';
      }
      onWrite?.(isKubeApiError(error, 409) ? 'conflict' : 'error');
      entry.failures++;
      log.warn({ err: error, prePull: key }, 'could not write PrePull status');
      // Keep the newest: a later update() may already have replaced it.
      entry.pending ??= write.status;
      return 'done';
    } finally {
      // The interval runs from the end of this write, not its start: a request that leaves late
      // (the event loop busy with a pass) is still a full interval before the next one leaves.
      entry.lastWriteAt = clock.now();
      release();
    }
  }
}
