// Putting images on the node and keeping them there: pulls limited to pullConcurrency at once,
// each credential tried in turn, the outcome (metrics, backoff, events) recorded; then the pin.
import type { RegistryCredential } from '../image/credential.ts';
import type { PullProgress, RuntimeImage } from '../runtime/types.ts';
import { Semaphore } from '../semaphore.ts';
import { backoffDelay } from './backoff.ts';
import { observe, runtimeCall } from './observe.ts';
import type { ImageFsSampler, Reporter } from './report.ts';
import { afterPullFailed, afterPullStarted, afterPullSucceeded } from './state.ts';
import {
  type EngineDeps,
  type EngineOptions,
  type Entry,
  type PullInFlight,
  errorInfo,
  isRefusal,
} from './types.ts';
import { verify } from './verify.ts';

export class Puller {
  readonly #deps: EngineDeps;
  readonly #options: Required<EngineOptions>;
  readonly #reporter: Reporter;
  readonly #imageFs: ImageFsSampler;
  readonly #slots: Semaphore;
  #draining = false;

  constructor(
    deps: EngineDeps,
    options: Required<EngineOptions>,
    reporter: Reporter,
    imageFs: ImageFsSampler,
  ) {
    this.#deps = deps;
    this.#options = options;
    this.#reporter = reporter;
    this.#imageFs = imageFs;
    this.#slots = new Semaphore(options.pullConcurrency);
  }

  /** Set by drain(): no pull starts any more. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Starts no more pulls, and waits for those in flight for up to `graceMs`. */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    if (this.#slots.inUse === 0) return;
    const abort = new AbortController();
    await Promise.race([
      this.#slots.idle(),
      this.#deps.clock.sleep(graceMs, abort.signal).catch(() => undefined),
    ]);
    abort.abort();
  }

  async pull(entry: Entry, signal: AbortSignal): Promise<void> {
    const release = await this.#slots.acquire(signal);
    if (this.#draining) {
      // Waited for a slot while shutting down: do not start.
      release();
      return;
    }
    try {
      await this.#pullInSlot(entry, signal);
    } finally {
      release();
    }
  }

  async #pullInSlot(entry: Entry, signal: AbortSignal): Promise<void> {
    const { clock, metrics, log } = this.#deps;
    const ref = entry.desired.ref;
    entry.history = afterPullStarted(entry.history);
    this.#reporter.record(entry, { state: 'Pulling', reason: 'Pulling', action: { kind: 'none' } });
    const started = clock.now();
    // What the progress callbacks update; reports and metrics read it while the pull runs.
    const inFlight: PullInFlight = {
      startedAt: started,
      bytes: 0,
      totalBytes: undefined,
      reported: false,
      loggedAt: started,
    };
    entry.pull = inFlight;
    // A tag is checked against the registry while the runtime pulls it, not after: the HEAD
    // then costs nothing on the pull's path, and it asks the registry at the moment the
    // runtime's own resolution of the tag does. verify() records its own outcome and never
    // throws, so a failed pull need not wait for it.
    const { desired } = entry;
    const verifying =
      desired.verify === 'Registry' && !desired.byDigest
        ? verify(entry, this.#deps, this.#options.verifyTtlMs, signal)
        : undefined;
    try {
      const image = await this.#pullWithCredentials(entry, signal);
      const seconds = (clock.now() - started) / 1000;
      metrics.pulls.inc({ result: 'success', code: '' });
      metrics.pullDuration.observe({ result: 'success' }, seconds);
      metrics.pulledBytes.inc(image.size);
      observe(entry, image, clock.now());
      entry.pulledId = image.id;
      entry.pullDurationMs = clock.now() - started;
      entry.history = afterPullSucceeded(entry.history);
      delete entry.pinError;
      this.#reporter.emit(
        entry,
        entry.wasPresent === true ? 'Repaired' : 'Pulled',
        `${entry.wasPresent === true ? 'pulled back' : 'pulled'} ${ref} in ${seconds.toFixed(1)}s (${image.size} bytes)`,
      );
      this.#imageFs.sample();
      if (verifying !== undefined) {
        // The check made during the pull stands for the image it brought.
        await verifying;
        entry.verifyRequested = false;
      }
    } catch (error) {
      if (isRefusal(error)) this.#deps.credentials.refused?.(entry.desired);
      const info = errorInfo(error);
      metrics.pulls.inc({ result: 'failure', code: info.code });
      metrics.pullDuration.observe({ result: 'failure' }, (clock.now() - started) / 1000);
      if (signal.aborted) {
        entry.history = { ...entry.history, pulling: false };
        return;
      }
      const delay = backoffDelay(this.#options.backoff, entry.history.attempts + 1, () =>
        clock.random(),
      );
      entry.history = afterPullFailed(entry.history, entry.desired, info, clock.now(), delay);
      log.warn({ image: ref, err: info, attempt: entry.history.attempts }, 'pull failed');
      this.#reporter.emit(
        entry,
        'PullFailed',
        `pull of ${ref} failed (attempt ${entry.history.attempts}): ${info.message} (${info.code})`,
      );
    } finally {
      if (entry.pull === inFlight) delete entry.pull;
      // The bytes in flight drop back, whatever comes next (an aborted pull records no state).
      if (inFlight.reported) this.#reporter.publish();
    }
  }

  /** Tries each candidate credential in order, as kubelet does; anonymous when there are none. */
  async #pullWithCredentials(entry: Entry, signal: AbortSignal): Promise<RuntimeImage> {
    const { runtime, metrics, credentials: provider } = this.#deps;
    const ref = entry.desired.ref;
    const candidates = await provider.forImage(entry.desired);
    const onProgress = (progress: PullProgress): void => {
      this.#reporter.progressed(entry, progress);
    };
    const attempts: (RegistryCredential | undefined)[] =
      candidates.length > 0 ? candidates : [undefined];
    let lastError: unknown;
    for (const credentials of attempts) {
      try {
        return await runtimeCall(metrics, 'pull', () =>
          runtime.pull(ref, {
            credentials,
            timeoutMs: entry.desired.timeoutSeconds * 1000,
            signal,
            onProgress,
          }),
        );
      } catch (error) {
        lastError = error;
        if (!isRefusal(error)) throw error;
      }
    }
    throw lastError;
  }

  /**
   * Pins `entry`'s image and reads it back to see the pin. A refusal, or a pin the runtime does
   * not show, is recorded on the entry: the pin is not asked again until the image is pulled.
   */
  async pin(entry: Entry): Promise<void> {
    const { runtime, metrics, clock, log } = this.#deps;
    const ref = entry.desired.ref;
    // prepull pinned this very image before, and the runtime now reports it unpinned: another
    // client (`ctr images label IMG io.cri-containerd.pinned=`) took the pin off.
    const restoring = entry.image !== undefined && entry.pinnedId === entry.image.id;
    try {
      if (restoring) log.warn({ image: ref }, 'pin removed behind prepull; pinning again');
      await runtimeCall(metrics, 'pin', () => runtime.pin(ref));
      const image = await runtimeCall(metrics, 'status', () => runtime.imageStatus(ref));
      observe(entry, image, clock.now());
      if (image !== undefined && !image.pinned) {
        throw new Error('the runtime still reports the image unpinned after pinning it');
      }
      // It was unpinned when the engine decided to pin: this pin is prepull's to take off.
      if (image !== undefined) entry.pinnedId = image.id;
      if (restoring) metrics.pinsRestored.inc();
    } catch (error) {
      // Report the image as the runtime sees it, and stop asking until the image changes.
      entry.pinError = errorInfo(error);
      log.warn({ image: ref, err: entry.pinError }, 'could not pin');
    }
  }
}
