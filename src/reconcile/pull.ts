// Putting images on the node and keeping them there: pulls limited to pullConcurrency at once
// (an image waiting for a slot is reported Queued), each credential tried in turn, a pull whose
// bytes stop advancing aborted as stalled, the outcome (metrics, backoff, events) recorded; then
// the pin.
import type { Clock } from '../clock.ts';
import { PrepullError } from '../errors.ts';
import type { RegistryCredential } from '../image/credential.ts';
import type { PullProgress, RuntimeImage } from '../runtime/types.ts';
import { Semaphore } from '../semaphore.ts';
import { backoffDelay } from './backoff.ts';
import { type RuntimeFailed, observe, runtimeCall } from './observe.ts';
import type { ImageFsSampler, Reporter } from './report.ts';
import { type Decision, afterPullFailed, afterPullStarted, afterPullSucceeded } from './state.ts';
import {
  type EngineDeps,
  type EngineSettings,
  type Entry,
  type PullInFlight,
  errorInfo,
  isRefusal,
} from './types.ts';
import { verify } from './verify.ts';

/** A pull whose bytes have not advanced for this long is stalled (EngineOptions.stallTimeoutMs). */
export const STALL_TIMEOUT_MS = 120_000;

/** The longest a registry's Retry-After may hold an image's next pull attempt. */
const MAX_REGISTRY_WAIT_MS = 3_600_000;

export class Puller {
  readonly #deps: EngineDeps;
  readonly #options: EngineSettings;
  readonly #reporter: Reporter;
  readonly #imageFs: ImageFsSampler;
  readonly #slots: Semaphore;
  readonly #runtimeFailed: RuntimeFailed;
  #draining = false;

  constructor(
    deps: EngineDeps,
    options: EngineSettings,
    reporter: Reporter,
    imageFs: ImageFsSampler,
    runtimeFailed: RuntimeFailed = () => Promise.resolve(false),
  ) {
    this.#deps = deps;
    this.#options = options;
    this.#reporter = reporter;
    this.#imageFs = imageFs;
    this.#slots = new Semaphore(options.pullConcurrency);
    this.#runtimeFailed = runtimeFailed;
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

  /** Pulls `entry` once a slot is free and `admit` (the disk guard) lets it start. */
  async pull(entry: Entry, signal: AbortSignal, admit?: () => Promise<boolean>): Promise<void> {
    if (this.#slots.inUse >= this.#options.pullConcurrency || this.#slots.waiting > 0) {
      this.#reporter.record(entry, queued(entry.decision, this.#options.pullConcurrency));
    }
    const release = await this.#slots.acquire(signal);
    if (this.#draining) {
      // Waited for a slot while shutting down: do not start.
      release();
      return;
    }
    try {
      if (admit !== undefined && !(await admit())) return;
      await this.#pullInSlot(entry, signal);
    } finally {
      release();
    }
  }

  async #pullInSlot(entry: Entry, signal: AbortSignal): Promise<void> {
    const { clock, metrics } = this.#deps;
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
      advancedAt: started,
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
      const image = await this.#watched(entry, inFlight, signal);
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
      await this.#failed(entry, error, started, signal);
    } finally {
      if (entry.pull === inFlight) delete entry.pull;
      // The bytes in flight drop back, whatever comes next (an aborted pull records no state).
      if (inFlight.reported) this.#reporter.publish();
    }
  }

  /** Records a failed pull: metrics, and — unless prepull or the node's outage caused it — an
   *  attempt with its backoff, a log line and an Event. */
  async #failed(entry: Entry, error: unknown, started: number, signal: AbortSignal): Promise<void> {
    const { clock, metrics, log } = this.#deps;
    const ref = entry.desired.ref;
    if (isRefusal(error)) this.#deps.credentials.refused?.(entry.desired);
    const info = errorInfo(error);
    metrics.pulls.inc({ result: 'failure', code: info.code });
    metrics.pullDuration.observe({ result: 'failure' }, (clock.now() - started) / 1000);
    // Aborted by prepull, or the node's runtime went away (a pull it dropped as it stopped is
    // checked with one info call): no attempt is counted against the image.
    if (signal.aborted || (await this.#runtimeFailed(error, info.code === 'ERR_RUNTIME_FAILED'))) {
      entry.history = { ...entry.history, pulling: false };
      return;
    }
    const backoff = backoffDelay(this.#options.backoff, entry.history.attempts + 1, () =>
      clock.random(),
    );
    const asked = await this.#registryAsked(entry, info.code, signal);
    const delay = Math.max(backoff, asked ?? 0);
    entry.history = afterPullFailed(entry.history, entry.desired, info, clock.now(), delay);
    const waits =
      asked !== undefined && asked > backoff
        ? `; the registry asked to wait ${Math.ceil(asked / 1000)}s (Retry-After), so the next attempt is not before then`
        : '';
    log.warn(
      {
        image: ref,
        err: info,
        attempt: entry.history.attempts,
        ...(waits === '' ? {} : { retryAfterMs: asked }),
      },
      'pull failed',
    );
    this.#reporter.emit(
      entry,
      'PullFailed',
      `pull of ${ref} failed (attempt ${entry.history.attempts}): ${info.message} (${info.code})${waits}`,
    );
  }

  /**
   * The wait a registry asked for after a pull failed on its 429 or 5xx: the runtime never passes
   * the Retry-After header on, so prepull asks the registry itself — one HEAD of the manifest,
   * no retries — unless a recent answer (the verification running beside the pull) already
   * said. Capped at an hour, so a registry's mistake cannot park an image for days. Undefined
   * when the registry asked nothing, or the resolver cannot tell.
   */
  async #registryAsked(
    entry: Entry,
    code: string,
    signal: AbortSignal,
  ): Promise<number | undefined> {
    const { resolver, credentials } = this.#deps;
    if (resolver.retryAfterMs === undefined) return undefined;
    if (code !== 'ERR_REGISTRY_RATE_LIMITED' && code !== 'ERR_REGISTRY_SERVER_ERROR') {
      return undefined;
    }
    const ref = entry.desired.reference ?? entry.desired.ref;
    if (resolver.retryAfterMs(ref) === undefined) {
      try {
        await resolver.resolve(ref, {
          credentials: await credentials.forImage(entry.desired),
          signal,
          maxAttempts: 1,
        });
      } catch {
        // The probe's failure is expected (the registry is refusing); only its header counts.
      }
    }
    const asked = resolver.retryAfterMs(ref);
    return asked === undefined ? undefined : Math.min(asked, MAX_REGISTRY_WAIT_MS);
  }

  /**
   * Pulls with a stall watch: once the bytes have not advanced for the stall timeout, the pull is
   * aborted and fails with ERR_PULL_STALLED (retryable: it backs off and counts as an attempt).
   * Off where the runtime reports no progress — a slow pull and a hung one look the same there.
   */
  async #watched(entry: Entry, pull: PullInFlight, signal: AbortSignal): Promise<RuntimeImage> {
    const stallMs = this.#options.stallTimeoutMs;
    if (stallMs <= 0 || !this.#deps.runtime.capabilities.progress) {
      return this.#pullWithCredentials(entry, signal);
    }
    const stalled = new AbortController();
    const done = new AbortController();
    const watch = watchStall(this.#deps.clock, pull, stallMs, stalled, done.signal);
    try {
      return await this.#pullWithCredentials(entry, AbortSignal.any([signal, stalled.signal]));
    } catch (error) {
      if (!stalled.signal.aborted || signal.aborted) throw error;
      const seconds = stallMs / 1000;
      throw new PrepullError(
        'ERR_PULL_STALLED',
        `the pull of ${entry.desired.ref} made no progress for ${seconds}s (${pull.bytes} bytes so far), so it was aborted to free its pull slot; a registry, proxy or network that keeps the connection open but sends nothing does this`,
        { cause: error },
      );
    } finally {
      done.abort();
      await watch;
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
    // Another client labelled only some of its records: prepull pins the rest, so that kubelet's
    // GC keeps off as that client meant, but the pin is not prepull's to take off at release.
    const someoneElses = !restoring && entry.image?.pinPartial === true;
    try {
      if (restoring) log.warn({ image: ref }, 'pin removed behind prepull; pinning again');
      await runtimeCall(metrics, 'pin', () => runtime.pin(ref));
      const image = await runtimeCall(metrics, 'status', () => runtime.imageStatus(ref));
      observe(entry, image, clock.now());
      if (image !== undefined && !image.pinned) {
        throw new Error('the runtime still reports the image unpinned after pinning it');
      }
      // It was unpinned when the engine decided to pin: this pin is prepull's to take off.
      if (image !== undefined && !someoneElses) entry.pinnedId = image.id;
      if (restoring) metrics.pinsRestored.inc();
    } catch (error) {
      // The runtime being away is no refusal: pin again once it answers.
      if (await this.#runtimeFailed(error)) return;
      // Report the image as the runtime sees it, and stop asking until the image changes.
      entry.pinError = errorInfo(error);
      log.warn({ image: ref, err: entry.pinError }, 'could not pin');
    }
  }
}

/**
 * Aborts `stalled` once `pull`'s bytes have not advanced for `stallMs`; returns when `done`
 * aborts, or once the runtime has reported every byte (what remains, unpacking, sends none).
 */
async function watchStall(
  clock: Clock,
  pull: PullInFlight,
  stallMs: number,
  stalled: AbortController,
  done: AbortSignal,
): Promise<void> {
  for (;;) {
    if (pull.totalBytes !== undefined && pull.bytes >= pull.totalBytes) return;
    const wait = pull.advancedAt + stallMs - clock.now();
    if (wait <= 0) {
      stalled.abort();
      return;
    }
    try {
      await clock.sleep(wait, done);
    } catch {
      return;
    }
  }
}

/** An image waiting for a pull slot: its state stays (Missing, or Stale), its reason says why. */
function queued(before: Decision | undefined, slots: number): Decision {
  const wait = `waiting for a pull slot: ${slots} ${slots === 1 ? 'pull runs' : 'pulls run'} at once on this node, and all are busy`;
  return {
    state: before?.state === 'Stale' ? 'Stale' : 'Missing',
    reason: 'Queued',
    message:
      before?.state === 'Stale' && before.message !== undefined
        ? `${wait}; ${before.message}`
        : wait,
    action: { kind: 'none' },
  };
}
