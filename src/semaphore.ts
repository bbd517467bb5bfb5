// A counting semaphore with FIFO waiters and abortable waits. The registry transport limits
// requests per registry with it; the reconcile engine limits the pulls running on the node.

interface Waiter {
  readonly grant: (release: () => void) => void;
}

export class Semaphore {
  readonly #limit: number;
  #inUse = 0;
  readonly #waiters: Waiter[] = [];
  readonly #idleWaiters: (() => void)[] = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`semaphore limit must be a positive integer, got ${limit}`);
    }
    this.#limit = limit;
  }

  /** Permits in use. */
  get inUse(): number {
    return this.#inUse;
  }

  /** Callers waiting for a permit. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Resolves once no permit is in use, at once when none is (a graceful stop waits on it). */
  idle(): Promise<void> {
    if (this.#inUse === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Resolves with a release function once a permit is free; rejects if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted === true) return Promise.reject(reasonOf(signal));
    if (this.#inUse < this.#limit) {
      this.#inUse++;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.#waiters.indexOf(waiter);
        if (index !== -1) this.#waiters.splice(index, 1);
        if (signal) reject(reasonOf(signal));
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      this.#waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      // The permit passes straight to the next waiter, so a newcomer cannot jump the queue.
      if (next) {
        next.grant(this.#releaser());
        return;
      }
      this.#inUse--;
      if (this.#inUse === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
    };
  }
}

function reasonOf(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('aborted', { cause: reason });
}
