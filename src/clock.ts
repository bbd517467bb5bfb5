// Time and randomness as injected dependencies, so retries, backoff, token expiry and schedules
// are tested as exact sequences without waiting. Production code takes a `Clock`; tests pass a
// `ManualClock` and move time themselves.

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason if it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** A number in [0, 1), for jitter. */
  random(): number;
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('aborted', { cause: reason });
}

export const systemClock: Clock = {
  now: () => Date.now(),
  random: () => Math.random(),
  sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(abortReason(signal));
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        if (signal) reject(abortReason(signal));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  },
};

interface Sleeper {
  until: number;
  resolve: () => void;
}

/**
 * A clock that moves only when told. `sleeps` records every requested sleep, so a test can
 * assert a backoff sequence exactly; `advance` wakes the sleepers whose time has come, in order.
 * `random` returns the values given, cycling (default: always 0.5).
 */
export class ManualClock implements Clock {
  readonly sleeps: number[] = [];
  #current: number;
  #pending: Sleeper[] = [];
  readonly #randoms: readonly number[];
  #randomIndex = 0;

  constructor(start = 0, randoms: readonly number[] = [0.5]) {
    this.#current = start;
    this.#randoms = randoms;
  }

  now(): number {
    return this.#current;
  }

  random(): number {
    const value = this.#randoms[this.#randomIndex % this.#randoms.length] ?? 0.5;
    this.#randomIndex++;
    return value;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return new Promise((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(abortReason(signal));
        return;
      }
      const sleeper: Sleeper = { until: this.#current + ms, resolve };
      this.#pending.push(sleeper);
      signal?.addEventListener(
        'abort',
        () => {
          this.#pending = this.#pending.filter((s) => s !== sleeper);
          reject(abortReason(signal));
        },
        { once: true },
      );
    });
  }

  /** How many sleeps are waiting. */
  get waiting(): number {
    return this.#pending.length;
  }

  /** Moves time forward by `ms`, waking due sleepers in time order; yields so they can run. */
  async advance(ms: number): Promise<void> {
    const target = this.#current + ms;
    for (;;) {
      const due = this.#pending
        .filter((s) => s.until <= target)
        .sort((a, b) => a.until - b.until)[0];
      if (due === undefined) break;
      this.#pending = this.#pending.filter((s) => s !== due);
      this.#current = Math.max(this.#current, due.until);
      due.resolve();
      // Let the woken code run (and perhaps sleep again) before looking for the next sleeper.
      for (let i = 0; i < 10; i++) await Promise.resolve();
    }
    this.#current = target;
  }

  /** Advances to the earliest pending sleeper's wake-up time; false when none is waiting. */
  async next(): Promise<boolean> {
    const earliest = this.#pending.reduce<number | undefined>(
      (min, s) => (min === undefined || s.until < min ? s.until : min),
      undefined,
    );
    if (earliest === undefined) return false;
    await this.advance(earliest - this.#current);
    return true;
  }
}

/**
 * Waits that can be cut short and ended for good: a loop that probes or re-checks on a period
 * sleeps through `sleep()`, `wake()` ends the current wait early (something changed: probe
 * now), and `stop()` ends it and every later one. Used by the engine's runtime-outage probe and
 * its disk guard.
 */
export class Naps {
  readonly #clock: Clock;
  readonly #stopped = new AbortController();
  #nap: AbortController | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  get stopped(): boolean {
    return this.#stopped.signal.aborted;
  }

  /** Waits `ms`, or less if woken; false once stopped. */
  async sleep(ms: number): Promise<boolean> {
    const nap = new AbortController();
    this.#nap = nap;
    try {
      await this.#clock.sleep(ms, AbortSignal.any([this.#stopped.signal, nap.signal]));
    } catch {
      // woken, or stopped
    } finally {
      if (this.#nap === nap) this.#nap = undefined;
    }
    return !this.stopped;
  }

  /** Ends the current wait now (none: nothing happens). */
  wake(): void {
    this.#nap?.abort();
  }

  stop(): void {
    this.#stopped.abort();
  }
}
