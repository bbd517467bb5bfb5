// A keyed, de-duplicating work queue in the shape of client-go's workqueue: a key waits at most
// once; a key added while it is being processed is processed once more afterwards (never twice
// at the same time); delayed adds keep only the earliest wake-up per key. Time comes from the
// injected Clock, so backoff and schedules are tested without waiting.
import type { Clock } from '../clock.ts';

export interface WorkQueueOptions<K> {
  /** How many keys are processed at once. */
  concurrency: number;
  handler: (key: K, signal: AbortSignal) => Promise<void>;
  clock: Clock;
  /** Called when the handler throws; the key is not re-added by the queue. */
  onError?: (key: K, error: unknown) => void;
}

interface Timer {
  until: number;
  abort: AbortController;
}

export class WorkQueue<K> {
  readonly #options: WorkQueueOptions<K>;
  readonly #waiting: K[] = [];
  readonly #queued = new Set<K>();
  readonly #processing = new Set<K>();
  readonly #dirty = new Set<K>();
  readonly #timers = new Map<K, Timer>();
  readonly #stop = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();
  #idleWaiters: (() => void)[] = [];
  #closed = false;

  constructor(options: WorkQueueOptions<K>) {
    if (options.concurrency < 1) throw new RangeError('concurrency must be at least 1');
    this.#options = options;
  }

  /** Queues `key` unless it is already waiting; if it is being processed, runs it once more after. */
  add(key: K): void {
    if (this.#closed) return;
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#waiting.push(key);
    this.#pump();
  }

  /** Adds `key` after `delayMs`; an earlier pending wake-up for the same key wins. */
  addAfter(key: K, delayMs: number): void {
    if (this.#closed) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const until = this.#options.clock.now() + delayMs;
    const existing = this.#timers.get(key);
    if (existing !== undefined && existing.until <= until) return;
    existing?.abort.abort();
    const abort = new AbortController();
    this.#timers.set(key, { until, abort });
    this.#options.clock.sleep(delayMs, abort.signal).then(
      () => {
        if (this.#timers.get(key)?.abort !== abort) return;
        this.#timers.delete(key);
        this.add(key);
      },
      () => undefined,
    );
  }

  /** Drops a pending delayed add of `key` (its work is no longer wanted). */
  forget(key: K): void {
    this.#timers.get(key)?.abort.abort();
    this.#timers.delete(key);
  }

  /** When `key` will be added by a pending addAfter, or undefined. */
  scheduledAt(key: K): number | undefined {
    return this.#timers.get(key)?.until;
  }

  get length(): number {
    return this.#waiting.length;
  }

  get active(): number {
    return this.#processing.size;
  }

  /** Resolves once nothing waits and nothing is processed (pending delayed adds do not count). */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Stops: no more adds, pending delays cancelled, the handlers' signal aborted; resolves when
   * the handlers in flight have returned.
   */
  async shutDown(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers.values()) timer.abort.abort();
    this.#timers.clear();
    this.#waiting.length = 0;
    this.#queued.clear();
    this.#dirty.clear();
    this.#stop.abort(new Error('work queue shut down'));
    await Promise.allSettled([...this.#inFlight]);
    this.#settleIdle();
  }

  #isIdle(): boolean {
    return this.#waiting.length === 0 && this.#processing.size === 0;
  }

  #settleIdle(): void {
    if (!this.#isIdle()) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #pump(): void {
    while (
      !this.#closed &&
      this.#processing.size < this.#options.concurrency &&
      this.#waiting.length > 0
    ) {
      const key = this.#waiting.shift() as K;
      this.#queued.delete(key);
      this.#processing.add(key);
      const run = this.#run(key);
      this.#inFlight.add(run);
      void run.finally(() => this.#inFlight.delete(run));
    }
  }

  async #run(key: K): Promise<void> {
    try {
      await this.#options.handler(key, this.#stop.signal);
    } catch (error) {
      this.#options.onError?.(key, error);
    } finally {
      this.#processing.delete(key);
      if (this.#dirty.delete(key)) this.add(key);
      this.#pump();
      this.#settleIdle();
    }
  }
}
