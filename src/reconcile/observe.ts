// Reading the node: what the runtime holds for each desired image and when it said so, read again
// when a reading is too old to judge by, and kept current by deletion and update events or a
// periodic re-list.
import { findImage } from '../image/names.ts';
import type { DeletionEvent, RuntimeImage } from '../runtime/types.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { compareCodeUnits } from './desired.ts';
import type { WorkQueue } from './queue.ts';
import { type EngineDeps, type EngineSettings, type Entry, errorInfo } from './types.ts';

/**
 * A verdict on an image (Verified, DigestDrift) compares the registry's answer with a runtime
 * report at most this old; an older one is read again first (one ImageStatus call). The reading
 * from start-up or from a pull just made stands; a scheduled check hours later reads afresh.
 */
export const OBSERVATION_MAX_AGE_MS = 5_000;

/** Calls the runtime, counting the call by operation and outcome (prepull_runtime_calls_total). */
export async function runtimeCall<T>(
  metrics: Metrics,
  operation: string,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    const result = await fn();
    metrics.runtimeCalls.inc({ operation, code: 'ok' });
    return result;
  } catch (error) {
    metrics.runtimeCalls.inc({ operation, code: errorInfo(error).code });
    throw error;
  }
}

/**
 * The same image as far as a decision goes: both absent, or the same ID, pin and recorded
 * digests. Anything else (a re-pull that moved the tag, a re-tag, a removed pin) is decided again.
 */
export function sameImage(a: RuntimeImage | undefined, b: RuntimeImage | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.id !== b.id || a.pinned !== b.pinned) return false;
  const digests = (i: RuntimeImage): string => [...i.repoDigests].sort(compareCodeUnits).join(' ');
  return digests(a) === digests(b);
}

/** Records what the runtime reports for `entry` (undefined: absent) and when. */
export function observe(entry: Entry, image: RuntimeImage | undefined, now: number): void {
  if (image === undefined) delete entry.image;
  else {
    entry.image = image;
    entry.lastSize = image.size;
  }
  entry.observedAt = now;
}

/**
 * Told of a failed runtime call; true when the runtime itself is down (outage.ts), so the caller
 * neither counts nor logs it as the image's failure.
 */
export type RuntimeFailed = (error: unknown, probe?: boolean) => Promise<boolean>;

const NOT_DOWN: RuntimeFailed = () => Promise.resolve(false);

/** Keeps the entries' readings of the node current, and queues an entry whose image changed. */
export class Observer {
  readonly #deps: EngineDeps;
  readonly #options: EngineSettings;
  readonly #entries: ReadonlyMap<string, Entry>;
  readonly #queue: Pick<WorkQueue<string>, 'add' | 'addAfter'>;
  readonly #runtimeFailed: RuntimeFailed;
  #resyncing = false;

  constructor(
    deps: EngineDeps,
    options: EngineSettings,
    entries: ReadonlyMap<string, Entry>,
    queue: Pick<WorkQueue<string>, 'add' | 'addAfter'>,
    runtimeFailed: RuntimeFailed = NOT_DOWN,
  ) {
    this.#deps = deps;
    this.#options = options;
    this.#entries = entries;
    this.#queue = queue;
    this.#runtimeFailed = runtimeFailed;
  }

  /**
   * Whether `entry` has a runtime reading to decide on. One never asked about (required after
   * start-up) is asked about first: an image already on the node (loaded from a disk on an
   * air-gapped node, pulled by kubelet) must not be pulled again, nor reported Missing. If the
   * runtime does not answer (logged), the entry is tried again after the re-list interval.
   */
  async hasReading(entry: Entry, signal: AbortSignal): Promise<boolean> {
    if (entry.recheck === true && !signal.aborted) {
      // However fresh the last reading: the change came after it, or at least was not seen by it.
      delete entry.recheck;
      if (await this.#read(entry)) return true;
    }
    if (entry.observedAt !== undefined) return true;
    if (await this.reobserve(entry, signal)) return true;
    if (!signal.aborted) this.#queue.addAfter(entry.desired.ref, this.#options.resyncIntervalMs);
    return false;
  }

  /**
   * Asks the runtime about `entry` when it never has, or when its last report is older than
   * OBSERVATION_MAX_AGE_MS; true when it asked and had an answer. A failure is logged and leaves
   * the last report standing.
   */
  async reobserve(entry: Entry, signal: AbortSignal): Promise<boolean> {
    const age =
      entry.observedAt === undefined ? Infinity : this.#deps.clock.now() - entry.observedAt;
    if (signal.aborted || age <= OBSERVATION_MAX_AGE_MS) return false;
    return this.#read(entry);
  }

  /** One ImageStatus call; true when it had an answer (a failure is logged). */
  async #read(entry: Entry): Promise<boolean> {
    const { clock, runtime, metrics, log } = this.#deps;
    const ref = entry.desired.ref;
    try {
      const image = await runtimeCall(metrics, 'status', () => runtime.imageStatus(ref));
      observe(entry, image, clock.now());
      return true;
    } catch (error) {
      if (await this.#runtimeFailed(error)) return false;
      log.warn({ image: ref, err: errorInfo(error) }, 'could not read the image status');
      return false;
    }
  }

  /** Re-lists every resync interval (for a runtime without deletion events); returns the stop. */
  resyncEvery(): () => void {
    const abort = new AbortController();
    const loop = async (): Promise<void> => {
      for (;;) {
        await this.#deps.clock.sleep(this.#options.resyncIntervalMs, abort.signal);
        await this.resync();
      }
    };
    loop().catch(() => undefined);
    return () => {
      abort.abort();
    };
  }

  /** Re-lists the runtime (after a broken event stream, or periodically without events). */
  async resync(): Promise<void> {
    if (this.#resyncing) return;
    this.#resyncing = true;
    const { clock, runtime, metrics, log } = this.#deps;
    try {
      const images = await runtimeCall(metrics, 'list', () => runtime.listImages());
      const now = clock.now();
      for (const entry of this.#entries.values()) {
        if (entry.history.pulling) continue;
        const image = findImage(images, entry.desired.ref);
        // Gone, back, or another image under the same name (re-pulled, re-tagged or unpinned by
        // another client): decide again. Record what the runtime said before queueing: the
        // handler starts at once.
        const changed = !sameImage(image, entry.image);
        observe(entry, image, now);
        if (!changed) continue;
        if (image !== undefined) {
          // Not the image the last registry answer was compared with: ask the registry afresh.
          entry.verifyRequested = true;
          entry.forceVerify = true;
        }
        this.#queue.add(entry.desired.ref);
      }
    } catch (error) {
      if (!(await this.#runtimeFailed(error))) {
        log.warn({ err: errorInfo(error) }, 'could not list images');
      }
    } finally {
      this.#resyncing = false;
    }
  }

  onDeletion(event: DeletionEvent): void {
    if (event.kind === 'gap') {
      this.#deps.log.info({ reason: event.reason }, 'runtime event stream resumed; re-listing');
      void this.resync();
      return;
    }
    // A hint (removed, or a record changed — its pin taken off, say): confirm with the
    // runtime's own status check before acting.
    for (const entry of this.#entries.values()) {
      const image = entry.image;
      const ref = entry.desired.ref;
      const named =
        event.name === ref ||
        image?.id === event.name ||
        image?.repoTags.includes(event.name) === true ||
        image?.repoDigests.includes(event.name) === true;
      if (!named || entry.history.pulling) continue;
      if (event.kind === 'removed') {
        void this.#confirmDeletion(entry);
      } else {
        // Read when the image is next handled: containerd sends one event per record, and a
        // burst (prepull's own pin labels every record) then costs one status call, not one each.
        entry.recheck = true;
        this.#queue.add(ref);
      }
    }
  }

  async #confirmDeletion(entry: Entry): Promise<void> {
    const { clock, runtime, metrics, log } = this.#deps;
    const ref = entry.desired.ref;
    try {
      const image = await runtimeCall(metrics, 'status', () => runtime.imageStatus(ref));
      observe(entry, image, clock.now());
      if (image === undefined) {
        log.warn({ image: ref }, 'image removed from the node; pulling it back');
      }
    } catch (error) {
      log.warn({ image: ref, err: errorInfo(error) }, 'could not check a removed image');
    }
    this.#queue.add(ref);
  }
}
