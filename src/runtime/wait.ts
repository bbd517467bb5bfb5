// Connecting to the node's container runtime at start, and waiting for it when it is not there
// yet: a node boots its runtime and the agent's Pod in no fixed order, and a runtime restarted
// by an upgrade takes a while. `sync` (watching) and the agent retry with capped exponential
// backoff on the injected Clock and say so in the log, instead of exiting into a restart loop.
import type { Clock } from '../clock.ts';
import { PrepullError, isPrepullError } from '../errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { type DetectOptions, type DetectedRuntime, detectRuntime } from './detect.ts';
import type { RuntimeInfo } from './types.ts';

export interface ConnectedRuntime {
  detected: DetectedRuntime;
  info: RuntimeInfo;
}

export interface ConnectOptions extends DetectOptions {
  /** --runtime: the protocol the endpoint must speak (default: whatever answers). */
  protocol?: 'cri' | 'docker' | undefined;
  detect?: (options: DetectOptions) => Promise<DetectedRuntime>;
}

/**
 * Finds the runtime and asks for its facts: one attempt. What answers but speaks the other
 * protocol than `--runtime` asked for is a usage error; whatever fails, nothing is left open.
 */
export async function connectRuntime(options: ConnectOptions): Promise<ConnectedRuntime> {
  const { protocol, detect = detectRuntime, ...detectOptions } = options;
  const detected = await detect(detectOptions);
  try {
    if (protocol !== undefined && protocol !== detected.found.kind) {
      throw new PrepullError(
        'ERR_USAGE',
        `--runtime ${protocol} was given, but ${detected.endpoint} speaks ${detected.found.kind}`,
      );
    }
    return { detected, info: await detected.runtime.info() };
  } catch (error) {
    await detected.runtime.close().catch(() => undefined);
    throw error;
  }
}

export interface RuntimeWaitOptions {
  clock: Clock;
  log: Logger;
  /** Aborting stops the wait (SIGTERM): waitForRuntime resolves undefined. */
  signal?: AbortSignal;
  /** The first wait after a failed attempt, doubling per attempt up to maxMs (default 1 s → 30 s). */
  backoff?: { initialMs: number; maxMs: number } | undefined;
  /** Failed attempts are logged at the first and then at most once per this many ms (default 60 s). */
  logEveryMs?: number;
  /** Told false when an attempt fails (waiting) and true once the runtime answers. */
  onUp?: (up: boolean) => void;
  /** Closes what a connection attempt still in flight when the wait was aborted brings. */
  close?: (value: ConnectedRuntime) => Promise<void>;
}

export const WAIT_BACKOFF = { initialMs: 1000, maxMs: 30_000 } as const;
export const WAIT_LOG_EVERY_MS = 60_000;

/**
 * Calls `connect` until it succeeds. A retryable PrepullError (no runtime detected, the socket
 * not answering, a deadline) means wait and try again; any other error is thrown at once (a
 * wrong --runtime, an unsupported endpoint: waiting cannot fix them). No jitter: the runtime is
 * the node's own, so a fleet of waiting agents loads nothing they share.
 */
export async function waitForRuntime(
  connect: () => Promise<ConnectedRuntime>,
  options: RuntimeWaitOptions,
): Promise<ConnectedRuntime | undefined> {
  const { clock, signal } = options;
  const { initialMs, maxMs } = options.backoff ?? WAIT_BACKOFF;
  const close = options.close ?? ((value) => value.detected.runtime.close());
  const report = reporter(options);
  for (let attempt = 1, delay = initialMs; ; attempt++, delay = Math.min(delay * 2, maxMs)) {
    if (signal?.aborted === true) return undefined;
    const outcome = await untilAborted(connect(), signal, close);
    if (outcome === 'aborted') return undefined;
    if (outcome.ok) {
      report.answered(attempt);
      return outcome.value;
    }
    if (!isPrepullError(outcome.error) || !outcome.error.retryable) throw outcome.error;
    report.failed(outcome.error, attempt, delay);
    try {
      await clock.sleep(delay, signal);
    } catch {
      return undefined; // aborted while sleeping
    }
  }
}

/** The log lines and `onUp` calls of one wait: the first failure, then one a minute at most. */
function reporter(options: RuntimeWaitOptions): {
  failed(error: PrepullError, attempt: number, delay: number): void;
  answered(attempt: number): void;
} {
  const { clock, log, onUp } = options;
  const logEvery = options.logEveryMs ?? WAIT_LOG_EVERY_MS;
  const started = clock.now();
  const waited = (): number => Math.round((clock.now() - started) / 1000);
  let lastLogged: number | undefined;
  return {
    failed(error, attempt, delay) {
      onUp?.(false);
      const now = clock.now();
      if (lastLogged !== undefined && now - lastLogged < logEvery) return;
      lastLogged = now;
      log.warn(
        {
          code: error.code,
          reason: error.message,
          attempts: attempt,
          waitedSeconds: waited(),
          retryInSeconds: delay / 1000,
        },
        'waiting for the container runtime',
      );
    },
    answered(attempt) {
      if (attempt > 1) {
        log.info({ attempts: attempt, waitedSeconds: waited() }, 'container runtime answered');
      }
      onUp?.(true);
    },
  };
}

type Outcome = { ok: true; value: ConnectedRuntime } | { ok: false; error: unknown };

/**
 * The attempt's outcome, or 'aborted' as soon as the signal aborts: a probe can take seconds and
 * SIGTERM should not wait for it. A connection it brings afterwards is closed.
 */
function untilAborted(
  attempt: Promise<ConnectedRuntime>,
  signal: AbortSignal | undefined,
  close: (value: ConnectedRuntime) => Promise<void>,
): Promise<Outcome | 'aborted'> {
  const settled = attempt.then(
    (value): Outcome => ({ ok: true, value }),
    (error: unknown): Outcome => ({ ok: false, error }),
  );
  if (signal === undefined) return settled;
  return new Promise((resolve) => {
    const onAbort = (): void => {
      resolve('aborted');
      void settled
        .then((outcome) => (outcome.ok ? close(outcome.value) : undefined))
        .catch(() => undefined);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    void settled.then((outcome) => {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted) return;
      resolve(outcome);
    });
  });
}
