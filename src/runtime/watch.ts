// Keeps a runtime's image-deletion event stream open: the first subscription must succeed (so the
// caller learns at once that the runtime is down), later breaks — the runtime restarting, its
// socket vanishing — are repaired with capped exponential backoff on the injected Clock, and each
// repair is reported as a `gap`, since removals in between were not seen.

import type { Clock } from '../clock.ts';
import { messageOf } from './error-text.ts';
import type { DeletionEvent } from './types.ts';

export interface StreamHandlers {
  /** A name or image ID the runtime removed. */
  removed(name: string): void;
  /** A record under this name changed (where the runtime reports it). */
  updated?(name: string): void;
  /** The stream ended or failed; called at most once per stream. */
  ended(error?: unknown): void;
}

export interface OpenedStream {
  close(): void;
}

/** Opens one stream; resolves once the subscription is live, rejects when it cannot be. */
export type OpenStream = (handlers: StreamHandlers) => Promise<OpenedStream>;

export interface ReconnectOptions {
  clock: Clock;
  /** First wait after a break; doubles per failed attempt up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export const DEFAULT_INITIAL_BACKOFF_MS = 200;
export const DEFAULT_MAX_BACKOFF_MS = 5000;

export async function watchWithReconnect(
  open: OpenStream,
  onEvent: (event: DeletionEvent) => void,
  options: ReconnectOptions,
): Promise<() => void> {
  const stopped = new AbortController();
  const initial = options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS;
  const max = options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
  let current: OpenedStream | undefined;
  // A function, not the property, so the check after an await is not narrowed away.
  const isStopped = (): boolean => stopped.signal.aborted;

  const connect = (): Promise<OpenedStream> => {
    let done = false;
    return open({
      removed: (name) => {
        if (!stopped.signal.aborted) onEvent({ kind: 'removed', name });
      },
      updated: (name) => {
        if (!stopped.signal.aborted) onEvent({ kind: 'updated', name });
      },
      ended: (error) => {
        if (done) return;
        done = true;
        current = undefined;
        if (!stopped.signal.aborted) void reconnect(error);
      },
    });
  };

  const reconnect = async (cause: unknown): Promise<void> => {
    const reason = describe(cause);
    for (let delay = initial; !stopped.signal.aborted; delay = Math.min(delay * 2, max)) {
      // Jitter keeps a fleet of agents from re-subscribing to restarted runtimes in lockstep.
      const wait = Math.round(delay * (0.75 + options.clock.random() / 2));
      try {
        await options.clock.sleep(wait, stopped.signal);
      } catch {
        return; // stopped while waiting
      }
      try {
        const stream = await connect();
        if (isStopped()) {
          stream.close();
          return;
        }
        current = stream;
        onEvent({ kind: 'gap', reason: `event stream re-established after: ${reason}` });
        return;
      } catch {
        // still down: wait longer
      }
    }
  };

  current = await connect();
  return () => {
    stopped.abort();
    current?.close();
    current = undefined;
  };
}

function describe(error: unknown): string {
  if (error === undefined) return 'the stream ended';
  return messageOf(error, 'the stream failed');
}

/**
 * The deletion watches of one adapter: each subscription reconnects by itself, and `stopAll`
 * ends every one still open when the adapter closes.
 */
export class DeletionWatches {
  readonly #open = new Set<() => void>();
  readonly #options: ReconnectOptions;
  #stopped = false;

  constructor(options: ReconnectOptions) {
    this.#options = options;
  }

  /**
   * Subscribes; resolves once the subscription is live. After `stopAll` nothing is opened, and a
   * subscription still being set up when `stopAll` ran is closed as soon as it is live: left
   * open, its stream would keep the process running after the adapter was closed.
   */
  async subscribe(
    openStream: OpenStream,
    onEvent: (event: DeletionEvent) => void,
  ): Promise<() => void> {
    const nothing = (): void => undefined;
    if (this.#stopped) return nothing;
    const stop = await watchWithReconnect(openStream, onEvent, this.#options);
    if (this.#isStopped()) {
      stop();
      return nothing;
    }
    const unsubscribe = (): void => {
      this.#open.delete(unsubscribe);
      stop();
    };
    this.#open.add(unsubscribe);
    return unsubscribe;
  }

  stopAll(): void {
    this.#stopped = true;
    for (const unsubscribe of [...this.#open]) unsubscribe();
  }

  /** A method, not the property, so the check after an await is not narrowed away. */
  #isStopped(): boolean {
    return this.#stopped;
  }
}
