// An informer that keeps going: client-node's ListWatch re-lists on 410 and reconnects after a
// normal close, but stops for good after any other error (a 403, a 500 on the list, a broken
// connection). This restarts it with capped exponential backoff and jitter, counting each
// restart, and keeps the cache it had meanwhile. `synced` turns true at the first complete list
// and stays true, as client-go's HasSynced does.
import type { Clock } from '../clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Informer, KubernetesObject } from './client.ts';

export interface WatchedOptions {
  /** The resource, for logs and the restart metric. */
  resource: string;
  clock: Clock;
  log: Logger;
  onRestart?: () => void;
  /** Called after any add, update or delete (the caller re-reads `list()`). */
  onChange: () => void;
  /** First and largest restart delays (default 1 s and 30 s). */
  backoff?: { initialMs: number; maxMs: number };
}

export class Watched<T extends KubernetesObject> {
  readonly #informer: Informer<T>;
  readonly #options: WatchedOptions;
  readonly #stopping = new AbortController();
  #synced = false;
  #failures = 0;
  #restarting = false;
  #errors = 0;

  constructor(informer: Informer<T>, options: WatchedOptions) {
    this.#informer = informer;
    this.#options = options;
    const changed = (): void => {
      this.#failures = 0;
      options.onChange();
    };
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    informer.on('error', (error) => {
      this.#errors++;
      void this.#restart(error);
    });
  }

  get synced(): boolean {
    return this.#synced;
  }

  list(): readonly T[] {
    return this.#informer.list();
  }

  /** Starts; resolves once the first list has succeeded (retrying with backoff until then). */
  async start(): Promise<void> {
    for (;;) {
      const before = this.#errors;
      this.#restarting = true;
      await this.#informer.start();
      this.#restarting = false;
      if (this.#errors === before) {
        this.#synced = true;
        this.#failures = 0;
        this.#options.onChange();
        return;
      }
      if (this.#stopping.signal.aborted) return;
      await this.#delay();
    }
  }

  async stop(): Promise<void> {
    this.#stopping.abort();
    await this.#informer.stop();
  }

  #isStopping(): boolean {
    return this.#stopping.signal.aborted;
  }

  async #delay(): Promise<void> {
    const { initialMs, maxMs } = this.#options.backoff ?? { initialMs: 1000, maxMs: 30_000 };
    const base = Math.min(maxMs, initialMs * 2 ** this.#failures);
    this.#failures++;
    const ms = base / 2 + (base / 2) * this.#options.clock.random();
    await this.#options.clock.sleep(ms, this.#stopping.signal).catch(() => undefined);
  }

  async #restart(error: unknown): Promise<void> {
    // During start() the loop there retries; here only a running informer's failures.
    if (this.#restarting || this.#stopping.signal.aborted || !this.#synced) return;
    this.#restarting = true;
    const { log, resource, onRestart } = this.#options;
    log.warn({ err: error, resource }, 'watch failed; restarting');
    onRestart?.();
    try {
      for (;;) {
        await this.#delay();
        if (this.#isStopping()) return;
        const before = this.#errors;
        await this.#informer.start();
        if (this.#errors === before) {
          this.#failures = 0;
          log.info({ resource }, 'watch restarted');
          this.#options.onChange();
          return;
        }
        onRestart?.();
      }
    } finally {
      this.#restarting = false;
    }
  }
}
