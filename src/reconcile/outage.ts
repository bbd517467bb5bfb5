// The node's own runtime going away mid-run: not any image's failure. A call that finds the
// runtime's socket silent puts the engine into "waiting for the runtime": no attempt is counted,
// no pull starts, prepull_runtime_up reads 0, and the runtime is asked (info) with capped
// backoff on the injected clock until it answers; then the engine re-lists and resumes.
import { Naps } from '../clock.ts';
import { isPrepullError } from '../errors.ts';
import type { ErrorInfo } from '../image/report.ts';
import { runtimeCall } from './observe.ts';
import { type EngineDeps, errorInfo } from './types.ts';

/**
 * Probes while the runtime is down: 1 s doubling to 5 s (the deletion watch's own reconnect
 * cap), so a return is seen within 5 s and the pulls it resumes finish well within 30 s. An ask
 * of the node's own socket costs nothing shared (unlike a registry), so there is no reason to
 * wait longer; a re-established event stream wakes the probe at once (wake()).
 */
export const RUNTIME_PROBE_INITIAL_MS = 1000;
export const RUNTIME_PROBE_MAX_MS = 5000;
/** While waiting, the log says so at most this often (once at the start, then each minute). */
export const RUNTIME_WAIT_LOG_MS = 60_000;

/** The runtime's socket does not answer: the node's runtime is down, not the image's pull. */
export function isRuntimeDown(error: unknown): boolean {
  return isPrepullError(error, 'ERR_RUNTIME_UNAVAILABLE');
}

/** What the engine does when the runtime answers again. */
export interface OutageHandlers {
  /** Reads the node afresh (the runtime may have lost images, or kept them): before resuming. */
  relist(): Promise<void>;
  /** Queues every image: the pending ones pull at once. */
  resume(): void;
}

export class RuntimeOutage {
  readonly #deps: EngineDeps;
  readonly #handlers: OutageHandlers;
  readonly #naps: Naps;
  /** When the outage began (engine clock, ms); undefined while the runtime answers. */
  #since: number | undefined;
  #lastError: ErrorInfo | undefined;

  constructor(deps: EngineDeps, handlers: OutageHandlers) {
    this.#deps = deps;
    this.#handlers = handlers;
    this.#naps = new Naps(deps.clock);
  }

  /** True from the first unanswered call until a probe is answered and the engine resumed. */
  get down(): boolean {
    return this.#since !== undefined;
  }

  /** The error that began (or last prolonged) the outage, for reports. */
  get lastError(): ErrorInfo | undefined {
    return this.#lastError;
  }

  /**
   * Tells the watch about a failed runtime call: true when it is the runtime being down (the
   * caller then counts nothing against the image). A failure that is not plainly the socket
   * (`probe`: a pull the runtime dropped as it shut down) is checked with one info call.
   */
  async failed(error: unknown, probe = false): Promise<boolean> {
    if (this.#naps.stopped) return false;
    if (!isRuntimeDown(error)) {
      if (!probe || this.down) return this.down;
      try {
        await runtimeCall(this.#deps.metrics, 'info', () => this.#deps.runtime.info());
        return false;
      } catch (probeError) {
        if (!isRuntimeDown(probeError)) return false;
        error = probeError;
      }
    }
    this.#lastError = errorInfo(error);
    if (this.#since === undefined) this.#begin();
    return true;
  }

  /** A sign the runtime may be back (its event stream re-established): probe now. */
  wake(): void {
    this.#naps.wake();
  }

  stop(): void {
    this.#naps.stop();
  }

  #begin(): void {
    const { clock, log, metrics } = this.#deps;
    this.#since = clock.now();
    metrics.runtimeUp.set(0);
    log.warn(
      { err: this.#lastError },
      'the container runtime does not answer; pulls wait for it (no attempt is counted)',
    );
    this.#probe().catch(() => undefined);
  }

  async #probe(): Promise<void> {
    const { clock, log, metrics, runtime } = this.#deps;
    const since = this.#since ?? clock.now();
    let loggedAt = since;
    for (let delay = RUNTIME_PROBE_INITIAL_MS; ;) {
      if (!(await this.#naps.sleep(delay))) return;
      try {
        await runtimeCall(metrics, 'info', () => runtime.info());
        break;
      } catch (error) {
        this.#lastError = errorInfo(error);
      }
      if (clock.now() - loggedAt >= RUNTIME_WAIT_LOG_MS) {
        loggedAt = clock.now();
        log.warn(
          { err: this.#lastError, waitedSeconds: Math.round((loggedAt - since) / 1000) },
          'still waiting for the container runtime',
        );
      }
      delay = Math.min(delay * 2, RUNTIME_PROBE_MAX_MS);
    }
    metrics.runtimeUp.set(1);
    log.info(
      { downSeconds: Math.round((clock.now() - since) / 1000) },
      'the container runtime answers again; re-listing and resuming',
    );
    // The re-list lands before any image is decided again; then the flag clears and all resume.
    await this.#handlers.relist();
    this.#since = undefined;
    this.#lastError = undefined;
    this.#handlers.resume();
  }
}
