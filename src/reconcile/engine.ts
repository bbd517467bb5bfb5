// The reconcile engine shared by `prepull sync` and the in-cluster agent: keeps the node's runtime
// holding the desired images. It lists the runtime once at start, then learns of changes from
// deletion events (or a cheap periodic list where the runtime has none), runs each image through
// the state machine in state.ts on a keyed work queue, pulls with bounded concurrency, verifies
// tags against the registry, pins, and reports state. It never removes an image.
import { statfs } from 'node:fs/promises';
import type { PrePull } from '../api/prepull.ts';
import type { Clock } from '../clock.ts';
import { isPrepullError } from '../errors.ts';
import type { RegistryCredential } from '../image/credential.ts';
import { recordedDigest } from '../image/digest.ts';
import { findImage } from '../image/names.ts';
import type { ImageReference } from '../image/reference.ts';
import type { ErrorInfo, ImageReport } from '../image/report.ts';
import type { DeletionEvent, ImageRuntime, RuntimeImage } from '../runtime/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { type BackoffPolicy, PULL_BACKOFF, VERIFY_BACKOFF, backoffDelay } from './backoff.ts';
import { type DesiredImage, compareCodeUnits, desiredImages } from './desired.ts';
import { WorkQueue } from './queue.ts';
import {
  type Decision,
  type History,
  NEW_HISTORY,
  afterPullFailed,
  afterPullStarted,
  afterPullSucceeded,
  afterReset,
  afterVerified,
  afterVerifyFailed,
  decide,
} from './state.ts';

/**
 * A verdict on an image (Verified, DigestDrift) compares the registry's answer with a runtime
 * report at most this old; an older one is read again first (one ImageStatus call). The reading
 * from start-up or from a pull just made stands; a scheduled check hours later reads afresh.
 */
export const OBSERVATION_MAX_AGE_MS = 5_000;

/** Tag → digest, as the registry says now (registry client). */
export interface DigestResolver {
  resolve(
    ref: string | ImageReference,
    options: { credentials?: readonly RegistryCredential[]; signal?: AbortSignal },
  ): Promise<{ digest: string }>;
}

/** The credentials to try, in order, for an image (pull secrets, a docker config file). */
export interface CredentialProvider {
  forImage(image: DesiredImage): Promise<RegistryCredential[]>;
  /** The registry refused the credentials given for `image`: read them afresh next time. */
  refused?(image: DesiredImage): void;
}

function isRefusal(error: unknown): boolean {
  return (
    isPrepullError(error, 'ERR_REGISTRY_UNAUTHORIZED') ||
    isPrepullError(error, 'ERR_REGISTRY_FORBIDDEN')
  );
}

/** Cron schedules (node-cron in production, a manual trigger in tests). */
export interface Scheduler {
  schedule(expression: string, onTick: () => void): () => void;
}

/** Does `image` carry one of `digests` for the repository `ref` names? (runtime/digest.ts) */
export type DigestMatcher = (
  image: RuntimeImage,
  ref: string,
  digests: readonly string[],
) => boolean;

/** Something worth telling the owners of an image (the agent turns these into Kubernetes Events). */
export interface EngineEvent {
  kind: 'Pulled' | 'Repaired' | 'PullFailed' | 'DigestDrift';
  image: string;
  /** PrePulls (`namespace/name`) that want the image. */
  requiredBy: readonly string[];
  message: string;
}

export interface EngineDeps {
  runtime: ImageRuntime;
  resolver: DigestResolver;
  credentials: CredentialProvider;
  matchesDigest: DigestMatcher;
  scheduler: Scheduler;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  /** Receives pulls, repairs, failures and drift as they happen (optional). */
  onEvent?: (event: EngineEvent) => void;
}

export interface EngineOptions {
  /** Labels of this node, for nodeSelectors. */
  labels: Record<string, string>;
  /** Pulls at once on this node. */
  pullConcurrency: number;
  /** A registry digest checked this recently is reused rather than asked again. */
  verifyTtlMs?: number;
  /** Re-list interval when the runtime cannot report deletions. */
  resyncIntervalMs?: number;
  backoff?: BackoffPolicy;
}

interface Entry {
  desired: DesiredImage;
  history: History;
  /** What the runtime reported last (undefined: absent). */
  image?: RuntimeImage;
  /** When the runtime reported `image` (engine clock, ms); undefined: not asked yet. */
  observedAt?: number;
  decision?: Decision;
  verifyRequested: boolean;
  /** A schedule asked: resolve again even within the digest TTL. */
  forceVerify: boolean;
  pullDurationMs?: number;
  /** The runtime refused to pin this image; not retried until it is pulled again. */
  pinError?: ErrorInfo;
  /** It has been Present on this node: a pull after that is a repair. */
  wasPresent?: boolean;
}

function errorInfo(error: unknown): ErrorInfo {
  if (isPrepullError(error))
    return { code: error.code, message: error.message, retryable: error.retryable };
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'ERR_RUNTIME_FAILED', message, retryable: true };
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

/** What a report says about the decision: state and reason, and the message and code if any. */
function decisionFields(
  decision: Decision | undefined,
): Pick<ImageReport, 'state' | 'reason' | 'message' | 'code'> {
  return {
    state: decision?.state ?? 'Missing',
    reason: decision?.reason ?? 'Pending',
    ...(decision?.message !== undefined ? { message: decision.message } : {}),
    ...(decision?.code !== undefined ? { code: decision.code } : {}),
  };
}

export class Engine {
  private readonly deps: EngineDeps;
  private readonly options: Required<EngineOptions>;
  private readonly entries = new Map<string, Entry>();
  private readonly queue: WorkQueue<string>;
  private readonly pullSlots: (() => void)[] = [];
  private readonly listeners = new Set<(reports: ImageReport[]) => void>();
  private readonly stops: (() => void)[] = [];
  /** Set by stop(): a watch that only becomes live afterwards is ended at once. */
  private stopRequested = false;
  private prePulls: readonly PrePull[] = [];
  private sandboxImage: string | undefined;
  private activePulls = 0;
  private fsSample: Promise<void> | undefined;
  private imageFs: { usedBytes?: number; capacityBytes?: number } = {};
  private publishPending = false;
  private fsSampleAgain = false;
  private started = false;
  private resyncing = false;
  private draining = false;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(deps: EngineDeps, options: EngineOptions) {
    this.deps = deps;
    this.options = {
      verifyTtlMs: 60_000,
      resyncIntervalMs: 30_000,
      backoff: PULL_BACKOFF,
      ...options,
    };
    this.queue = new WorkQueue<string>({
      concurrency: 64,
      clock: deps.clock,
      handler: (ref, signal) => this.handle(ref, signal),
      onError: (ref, error) => {
        deps.log.error({ image: ref, err: errorInfo(error) }, 'reconcile failed');
        this.queue.addAfter(ref, 5000);
      },
    });
  }

  /** Subscribes to report changes (called after each state change, with every image). */
  onChange(listener: (reports: ImageReport[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Reads the runtime once (info and every image, one list call), subscribes to deletions (or
   * schedules a periodic list), and starts reconciling the PrePulls given so far.
   */
  async start(): Promise<void> {
    const { runtime, log } = this.deps;
    const info = await this.call('info', () => runtime.info());
    this.sandboxImage = info.sandboxImage;
    log.info(
      {
        runtime: info.name,
        version: info.version,
        endpoint: info.endpoint,
        sandboxImage: info.sandboxImage,
      },
      'runtime',
    );
    const images = await this.call('list', () => runtime.listImages());
    this.started = true;
    this.recompute(images);
    this.sampleImageFs();
    if (runtime.capabilities.deletionEvents) {
      const stop = await this.call('watch', () =>
        runtime.watchDeletions((event) => {
          this.onDeletion(event);
        }),
      );
      // Stopped while the subscription was being set up (a signal during start-up): end it now.
      if (this.stopRequested) stop();
      else this.stops.push(stop);
    } else {
      this.scheduleResync();
    }
  }

  setPrePulls(prePulls: readonly PrePull[]): void {
    this.prePulls = prePulls;
    if (this.started) this.recompute();
  }

  setLabels(labels: Record<string, string>): void {
    this.options.labels = labels;
    if (this.started) this.recompute();
  }

  /** The image filesystem as last sampled (at start and after pulls). */
  imageFilesystem(): { usedBytes?: number; capacityBytes?: number } {
    return { ...this.imageFs };
  }

  reports(): ImageReport[] {
    return [...this.entries.values()]
      .map((e) => this.report(e))
      .sort((a, b) => compareCodeUnits(a.image, b.image));
  }

  /**
   * Resolves once every image has reached a resting state: Present (verified and pinned where
   * asked), Failed, or Stale that will not be re-pulled. For `sync --once`.
   */
  async settled(): Promise<ImageReport[]> {
    for (;;) {
      await this.queue.idle();
      const unsettled = [...this.entries.values()].filter((e) => !this.isResting(e));
      if (unsettled.length === 0) return this.reports();
      await new Promise<void>((resolve) => {
        const stop = this.onChange(() => {
          stop();
          resolve();
        });
      });
    }
  }

  /**
   * Graceful stop (SIGTERM): starts no more pulls, lets those in flight finish for up to
   * `graceMs`, then stops, aborting what is left.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    if (this.activePulls > 0) {
      const abort = new AbortController();
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        this.deps.clock.sleep(graceMs, abort.signal).catch(() => undefined),
      ]);
      abort.abort();
    }
    await this.stop();
  }

  /** Stops watching and scheduling; aborts pulls in flight. */
  async stop(): Promise<void> {
    this.stopRequested = true;
    for (const stop of this.stops.splice(0)) stop();
    await this.queue.shutDown();
    for (const release of this.pullSlots.splice(0)) release();
  }

  private isResting(entry: Entry): boolean {
    const decision = entry.decision;
    if (decision === undefined) return false;
    // Present but unverified waits for its next check in the background: nothing to wait for.
    if (decision.reason === 'VerifyFailed' && decision.action.kind === 'wait') return true;
    if (decision.action.kind !== 'none') return false;
    return decision.state !== 'Pulling' && decision.state !== 'Missing';
  }

  private async call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      this.deps.metrics.runtimeCalls.inc({ operation, code: 'ok' });
      return result;
    } catch (error) {
      this.deps.metrics.runtimeCalls.inc({ operation, code: errorInfo(error).code });
      throw error;
    }
  }

  private recompute(images?: readonly RuntimeImage[]): void {
    const now = this.deps.clock.now();
    const desired = desiredImages(this.prePulls, this.options.labels, this.sandboxImage);
    for (const ref of this.entries.keys()) {
      if (desired.has(ref)) continue;
      this.entries.delete(ref);
      this.queue.forget(ref);
      this.deps.log.info({ image: ref }, 'no longer required (kept on the node)');
    }
    for (const [ref, want] of desired) {
      const existing = this.entries.get(ref);
      if (existing === undefined) {
        const entry: Entry = {
          desired: want,
          history: NEW_HISTORY,
          verifyRequested: true,
          forceVerify: false,
        };
        // With a fresh list (start-up, a re-list) the entry is observed; without one (a PrePull
        // added later) handle() asks the runtime before it decides anything.
        if (images !== undefined) this.observe(entry, findImage(images, ref), now);
        this.entries.set(ref, entry);
        this.watchSchedules(entry);
      } else if (JSON.stringify(existing.desired) !== JSON.stringify(want)) {
        // A change gives a failed image a fresh set of attempts and a fresh check.
        existing.desired = want;
        existing.history = afterReset(existing.history);
        existing.verifyRequested = true;
      } else if (images !== undefined) {
        this.observe(existing, findImage(images, ref), now);
      }
      this.queue.add(ref);
    }
    this.publish();
  }

  private watchSchedules(entry: Entry): void {
    for (const expression of entry.desired.schedules) {
      const stop = this.deps.scheduler.schedule(expression, () => {
        const current = this.entries.get(entry.desired.ref);
        if (!current?.desired.schedules.includes(expression)) return;
        current.history = afterReset(current.history);
        current.verifyRequested = true;
        current.forceVerify = true;
        this.queue.add(current.desired.ref);
      });
      this.stops.push(stop);
    }
  }

  private scheduleResync(): void {
    if (this.stopRequested) return;
    const abort = new AbortController();
    this.stops.push(() => {
      abort.abort();
    });
    const loop = async (): Promise<void> => {
      for (;;) {
        await this.deps.clock.sleep(this.options.resyncIntervalMs, abort.signal);
        await this.resync();
      }
    };
    loop().catch(() => undefined);
  }

  /** Re-lists the runtime (after a broken event stream, or periodically without events). */
  private async resync(): Promise<void> {
    if (this.resyncing) return;
    this.resyncing = true;
    try {
      const images = await this.call('list', () => this.deps.runtime.listImages());
      const now = this.deps.clock.now();
      for (const entry of this.entries.values()) {
        if (entry.history.pulling) continue;
        const image = findImage(images, entry.desired.ref);
        // Gone, back, or another image under the same name (re-pulled, re-tagged or unpinned by
        // another client): decide again. Record what the runtime said before queueing: the
        // handler starts at once.
        const changed = !sameImage(image, entry.image);
        this.observe(entry, image, now);
        if (!changed) continue;
        if (image !== undefined) {
          // Not the image the last registry answer was compared with: ask the registry afresh.
          entry.verifyRequested = true;
          entry.forceVerify = true;
        }
        this.queue.add(entry.desired.ref);
      }
    } catch (error) {
      this.deps.log.warn({ err: errorInfo(error) }, 'could not list images');
    } finally {
      this.resyncing = false;
    }
  }

  private onDeletion(event: DeletionEvent): void {
    if (event.kind === 'gap') {
      this.deps.log.info({ reason: event.reason }, 'runtime event stream resumed; re-listing');
      void this.resync();
      return;
    }
    // A hint: confirm with the runtime's own status check before acting.
    for (const entry of this.entries.values()) {
      const image = entry.image;
      const ref = entry.desired.ref;
      const named =
        event.name === ref ||
        image?.id === event.name ||
        image?.repoTags.includes(event.name) === true ||
        image?.repoDigests.includes(event.name) === true;
      if (named && !entry.history.pulling) void this.confirmDeletion(entry);
    }
  }

  private async confirmDeletion(entry: Entry): Promise<void> {
    const ref = entry.desired.ref;
    try {
      const image = await this.call('status', () => this.deps.runtime.imageStatus(ref));
      this.observe(entry, image);
      if (image === undefined) {
        this.deps.log.warn({ image: ref }, 'image removed from the node; pulling it back');
      }
    } catch (error) {
      this.deps.log.warn({ image: ref, err: errorInfo(error) }, 'could not check a removed image');
    }
    this.queue.add(ref);
  }

  private async handle(ref: string, signal: AbortSignal): Promise<void> {
    // A few steps per turn: verify, then pin, then report — each step re-decides.
    for (let step = 0; step < 4 && !signal.aborted; step++) {
      const entry = this.entries.get(ref);
      if (entry === undefined) return;
      if (!(await this.hasReading(entry, signal))) return;
      const now = this.deps.clock.now();
      const decision = decide(
        entry.desired,
        {
          present: entry.image !== undefined,
          ...(entry.image
            ? { id: entry.image.id, size: entry.image.size, pinned: entry.image.pinned }
            : {}),
          ...this.digestMatch(entry),
        },
        entry.history,
        {
          now,
          verifyDue: entry.verifyRequested,
          canPin: this.deps.runtime.capabilities.pin && entry.pinError === undefined,
        },
      );
      this.record(entry, decision);
      const action = decision.action;
      if (action.kind === 'none') return;
      if (action.kind === 'wait') {
        this.queue.addAfter(ref, action.until - now);
        return;
      }
      if (action.kind === 'verify') {
        await this.verify(entry, signal);
        // The registry's answer is compared with what the node holds now, not with a reading
        // from hours ago: another client may have re-pulled or replaced the image since.
        await this.reobserve(entry, signal);
      } else if (action.kind === 'pin') await this.pin(entry);
      else if (this.draining) return;
      else await this.pullUnlessThere(entry, signal);
    }
    if (!signal.aborted) this.queue.add(ref);
  }

  /**
   * Whether `entry` has a runtime reading to decide on. One never asked about (required after
   * start-up) is asked about first: an image already on the node (loaded from a disk on an
   * air-gapped node, pulled by kubelet) must not be pulled again, nor reported Missing. If the
   * runtime does not answer (logged), the entry is tried again after the re-list interval.
   */
  private async hasReading(entry: Entry, signal: AbortSignal): Promise<boolean> {
    if (entry.observedAt !== undefined) return true;
    if (await this.reobserve(entry, signal)) return true;
    if (!signal.aborted) this.queue.addAfter(entry.desired.ref, this.options.resyncIntervalMs);
    return false;
  }

  /**
   * Pulls, unless a fresh look finds the image: a retry comes a while after the last reading,
   * and the image may have arrived meanwhile (kubelet, an operator, a disk) or changed. Then the
   * next step decides on what is there.
   */
  private async pullUnlessThere(entry: Entry, signal: AbortSignal): Promise<void> {
    if ((await this.reobserve(entry, signal)) && entry.image !== undefined) return;
    await this.pull(entry, signal);
  }

  private emit(entry: Entry, kind: EngineEvent['kind'], message: string): void {
    this.deps.onEvent?.({
      kind,
      image: entry.desired.ref,
      requiredBy: entry.desired.requiredBy,
      message,
    });
  }

  private digestMatch(entry: Entry): { digestMatches?: boolean; digest?: string } {
    const digest = entry.history.registryDigest;
    if (entry.image === undefined || digest === undefined) return {};
    const held = recordedDigest(entry.image, entry.desired.ref);
    return {
      digestMatches: this.deps.matchesDigest(entry.image, entry.desired.ref, [digest]),
      ...(held !== undefined ? { digest: held } : {}),
    };
  }

  private record(entry: Entry, decision: Decision): void {
    const before = entry.decision;
    entry.decision = decision;
    if (
      before?.state === decision.state &&
      before.reason === decision.reason &&
      before.message === decision.message
    ) {
      return;
    }
    const report = this.report(entry);
    if (decision.state === 'Present') entry.wasPresent = true;
    if (decision.reason === 'DigestDrift' && before?.reason !== 'DigestDrift') {
      this.emit(entry, 'DigestDrift', decision.message ?? 'the registry digest moved');
    }
    this.deps.log.info(
      {
        image: report.image,
        state: report.state,
        reason: report.reason,
        ...(report.message !== undefined ? { message: report.message } : {}),
        ...(report.code !== undefined ? { code: report.code } : {}),
        ...(report.digest !== undefined ? { digest: report.digest } : {}),
        ...(report.pullDurationMs !== undefined && decision.state === 'Present'
          ? { durationMs: report.pullDurationMs }
          : {}),
      },
      'image state',
    );
    this.publish();
  }

  private async verify(entry: Entry, signal: AbortSignal): Promise<void> {
    const { history } = entry;
    const now = this.deps.clock.now();
    // A retry after a failed check must ask the registry, however recent the last answer.
    const forced =
      entry.forceVerify ||
      entry.desired.pullPolicy === 'Always' ||
      history.verifyError !== undefined;
    entry.verifyRequested = false;
    entry.forceVerify = false;
    // Implicit checks (after a pull, after an edit) reuse a recent answer; schedules and
    // pullPolicy Always always ask the registry.
    const fresh =
      history.verifiedAt !== undefined &&
      history.registryDigest !== undefined &&
      now - history.verifiedAt < this.options.verifyTtlMs;
    if (fresh && !forced) return;
    try {
      const credentials = await this.deps.credentials.forImage(entry.desired);
      const { digest } = await this.deps.resolver.resolve(
        entry.desired.reference ?? entry.desired.ref,
        {
          credentials,
          signal,
        },
      );
      entry.history = afterVerified(entry.history, digest, this.deps.clock.now());
    } catch (error) {
      if (isRefusal(error)) this.deps.credentials.refused?.(entry.desired);
      const info = errorInfo(error);
      const delay = backoffDelay(VERIFY_BACKOFF, (entry.history.verifyFailures ?? 0) + 1, () =>
        this.deps.clock.random(),
      );
      entry.history = afterVerifyFailed(entry.history, info, this.deps.clock.now(), delay);
      this.deps.log.warn(
        { image: entry.desired.ref, err: info },
        'could not verify against the registry',
      );
    }
  }

  /** Records what the runtime reports for `entry` (undefined: absent) and when. */
  private observe(
    entry: Entry,
    image: RuntimeImage | undefined,
    now = this.deps.clock.now(),
  ): void {
    if (image === undefined) delete entry.image;
    else entry.image = image;
    entry.observedAt = now;
  }

  /**
   * Asks the runtime about `entry` when it never has, or when its last report is older than
   * OBSERVATION_MAX_AGE_MS; true when it asked and had an answer. A failure is logged and leaves
   * the last report standing.
   */
  private async reobserve(entry: Entry, signal: AbortSignal): Promise<boolean> {
    const age =
      entry.observedAt === undefined ? Infinity : this.deps.clock.now() - entry.observedAt;
    if (signal.aborted || age <= OBSERVATION_MAX_AGE_MS) return false;
    const ref = entry.desired.ref;
    try {
      this.observe(entry, await this.call('status', () => this.deps.runtime.imageStatus(ref)));
      return true;
    } catch (error) {
      this.deps.log.warn({ image: ref, err: errorInfo(error) }, 'could not read the image status');
      return false;
    }
  }

  private async pin(entry: Entry): Promise<void> {
    const ref = entry.desired.ref;
    try {
      await this.call('pin', () => this.deps.runtime.pin(ref));
      const image = await this.call('status', () => this.deps.runtime.imageStatus(ref));
      this.observe(entry, image);
      if (image !== undefined && !image.pinned) {
        throw new Error('the runtime still reports the image unpinned after pinning it');
      }
    } catch (error) {
      // Report the image as the runtime sees it, and stop asking until the image changes.
      entry.pinError = errorInfo(error);
      this.deps.log.warn({ image: ref, err: entry.pinError }, 'could not pin');
    }
  }

  private async acquirePullSlot(signal: AbortSignal): Promise<void> {
    if (this.activePulls < this.options.pullConcurrency) {
      this.activePulls++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        reject(new Error('aborted'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.pullSlots.push(() => {
        signal.removeEventListener('abort', onAbort);
        this.activePulls++;
        resolve();
      });
    });
  }

  private releasePullSlot(): void {
    this.activePulls--;
    this.pullSlots.shift()?.();
    if (this.activePulls === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async pull(entry: Entry, signal: AbortSignal): Promise<void> {
    const { clock, metrics, log } = this.deps;
    const ref = entry.desired.ref;
    await this.acquirePullSlot(signal);
    if (this.draining) {
      // Waited for a slot while shutting down: do not start.
      this.releasePullSlot();
      return;
    }
    entry.history = afterPullStarted(entry.history);
    this.record(entry, { state: 'Pulling', reason: 'Pulling', action: { kind: 'none' } });
    const started = clock.now();
    // A tag is checked against the registry while the runtime pulls it, not after: the HEAD
    // then costs nothing on the pull's path, and it asks the registry at the moment the
    // runtime's own resolution of the tag does. verify() records its own outcome and never
    // throws, so a failed pull need not wait for it.
    const { desired } = entry;
    const verifying =
      desired.verify === 'Registry' && !desired.byDigest ? this.verify(entry, signal) : undefined;
    try {
      const image = await this.pullWithCredentials(entry, signal);
      const seconds = (clock.now() - started) / 1000;
      metrics.pulls.inc({ result: 'success', code: '' });
      metrics.pullDuration.observe({ result: 'success' }, seconds);
      metrics.pulledBytes.inc(image.size);
      this.observe(entry, image);
      entry.pullDurationMs = clock.now() - started;
      entry.history = afterPullSucceeded(entry.history);
      delete entry.pinError;
      this.emit(
        entry,
        entry.wasPresent === true ? 'Repaired' : 'Pulled',
        `${entry.wasPresent === true ? 'pulled back' : 'pulled'} ${ref} in ${seconds.toFixed(1)}s (${image.size} bytes)`,
      );
      this.sampleImageFs();
      if (verifying !== undefined) {
        // The check made during the pull stands for the image it brought.
        await verifying;
        entry.verifyRequested = false;
      }
    } catch (error) {
      if (isRefusal(error)) this.deps.credentials.refused?.(entry.desired);
      const info = errorInfo(error);
      metrics.pulls.inc({ result: 'failure', code: info.code });
      metrics.pullDuration.observe({ result: 'failure' }, (clock.now() - started) / 1000);
      if (signal.aborted) {
        entry.history = { ...entry.history, pulling: false };
        return;
      }
      const delay = backoffDelay(this.options.backoff, entry.history.attempts + 1, () =>
        clock.random(),
      );
      entry.history = afterPullFailed(entry.history, entry.desired, info, clock.now(), delay);
      log.warn({ image: ref, err: info, attempt: entry.history.attempts }, 'pull failed');
      this.emit(
        entry,
        'PullFailed',
        `pull of ${ref} failed (attempt ${entry.history.attempts}): ${info.message} (${info.code})`,
      );
    } finally {
      this.releasePullSlot();
    }
  }

  /** Tries each candidate credential in order, as kubelet does; anonymous when there are none. */
  private async pullWithCredentials(entry: Entry, signal: AbortSignal): Promise<RuntimeImage> {
    const ref = entry.desired.ref;
    const candidates = await this.deps.credentials.forImage(entry.desired);
    const attempts: (RegistryCredential | undefined)[] =
      candidates.length > 0 ? candidates : [undefined];
    let lastError: unknown;
    for (const credentials of attempts) {
      try {
        return await this.call('pull', () =>
          this.deps.runtime.pull(ref, {
            credentials,
            timeoutMs: entry.desired.timeoutSeconds * 1000,
            signal,
          }),
        );
      } catch (error) {
        lastError = error;
        if (!isRefusal(error)) throw error;
      }
    }
    throw lastError;
  }

  private report(entry: Entry): ImageReport {
    const { desired, history, image, decision } = entry;
    const digest = recordedDigest(entry.image, entry.desired.ref);
    return {
      image: desired.ref,
      written: desired.written,
      requiredBy: desired.requiredBy,
      ...decisionFields(decision),
      ...(digest !== undefined ? { digest } : {}),
      ...(history.registryDigest !== undefined ? { registryDigest: history.registryDigest } : {}),
      ...(image !== undefined ? { imageId: image.id, size: image.size, pinned: image.pinned } : {}),
      ...(history.verifiedAt !== undefined
        ? { lastVerified: new Date(history.verifiedAt).toISOString() }
        : {}),
      attempts: history.attempts,
      ...(entry.pullDurationMs !== undefined ? { pullDurationMs: entry.pullDurationMs } : {}),
    };
  }

  /**
   * Image filesystem usage, at start and after pulls (the only times prepull changes it), so a
   * steady node costs no runtime calls. Capacity needs the mount point, which the agent sees only
   * where it is mounted in; otherwise it stays unset.
   */
  private sampleImageFs(): void {
    if (this.fsSample !== undefined) {
      // One in flight may have read too early: take another when it is done.
      this.fsSampleAgain = true;
      return;
    }
    this.fsSample = (async () => {
      try {
        const [fs] = await this.call('imagefs', () => this.deps.runtime.imageFsInfo());
        if (fs?.usedBytes !== undefined) {
          this.deps.metrics.imageFsUsed.set(fs.usedBytes);
          this.imageFs.usedBytes = fs.usedBytes;
        }
        if (fs !== undefined) {
          const stats = await statfs(fs.mountpoint).catch(() => undefined);
          if (stats !== undefined) {
            this.imageFs.capacityBytes = stats.blocks * stats.bsize;
            this.deps.metrics.imageFsCapacity.set(this.imageFs.capacityBytes);
          }
        }
      } catch (error) {
        this.deps.log.debug({ err: errorInfo(error) }, 'could not read image filesystem usage');
      } finally {
        this.fsSample = undefined;
        if (this.fsSampleAgain) {
          this.fsSampleAgain = false;
          this.sampleImageFs();
        }
      }
    })();
  }

  /**
   * Reports changes at most once per turn of the event loop: at start-up hundreds of images
   * change state within one turn, and rebuilding every report for each of them made start-up
   * quadratic in the number of images.
   */
  private publish(): void {
    if (this.publishPending) return;
    this.publishPending = true;
    setImmediate(() => {
      this.publishPending = false;
      this.flush();
    });
  }

  private flush(): void {
    const reports = this.reports();
    const states = new Map(reports.map((r) => [r.image, r.state]));
    const held = reports.reduce((sum, r) => sum + (r.state === 'Present' ? (r.size ?? 0) : 0), 0);
    this.deps.metrics.setImageStates(states, held);
    if (
      reports.length > 0 &&
      reports.every((r) => r.state === 'Present' && r.reason !== 'VerifyFailed')
    ) {
      this.deps.metrics.lastSync.set(this.deps.clock.now() / 1000);
    }
    for (const listener of this.listeners) listener(reports);
  }
}
