// What the engine tells the world: an ImageReport per entry, the "image state" log line and the
// events on a change, reports to listeners and the image gauges, the progress of pulls in flight,
// and the image filesystem's size.
import { statfs } from 'node:fs/promises';
import { recordedDigest } from '../image/digest.ts';
import type { ImageProgress, ImageReport, ImageState } from '../image/report.ts';
import type { PullProgress } from '../runtime/types.ts';
import { SANDBOX, compareCodeUnits } from './desired.ts';
import { runtimeCall } from './observe.ts';
import type { Decision } from './state.ts';
import { type EngineDeps, type EngineEvent, type Entry, errorInfo } from './types.ts';

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

export function reportOf(entry: Entry): ImageReport {
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
    ...(image?.pinned === true && image.pinSource !== undefined
      ? { pinSource: image.pinSource }
      : {}),
    ...(history.verifiedAt !== undefined
      ? { lastVerified: new Date(history.verifiedAt).toISOString() }
      : {}),
    attempts: history.attempts,
    ...(entry.pullDurationMs !== undefined ? { pullDurationMs: entry.pullDurationMs } : {}),
    ...(image !== undefined && entry.pulledId === image.id ? { pulledByPrepull: true } : {}),
    ...(image?.pinned === true && entry.pinnedId === image.id ? { pinnedByPrepull: true } : {}),
    ...(desired.cleanup === 'Remove' ? { cleanup: 'Remove' } : {}),
    ...progressField(entry),
  };
}

/** A Pulling image's figure, once the runtime has reported bytes. */
function progressField(entry: Entry): { progress?: ImageProgress } {
  const pull = entry.pull;
  if (pull?.reported !== true || entry.decision?.state !== 'Pulling') return {};
  const { bytes, totalBytes } = pull;
  return { progress: totalBytes === undefined ? { bytes } : { bytes, totalBytes } };
}

/**
 * Progress reaches listeners at most this often: runtimes report many times a second (Docker
 * with every stream message), and each publication rebuilds every report.
 */
export const PROGRESS_PUBLISH_MS = 1000;
/** A pull in flight is logged this often, the first time once it has run this long. */
export const PROGRESS_LOG_MS = 10_000;

/** Records decisions, and tells listeners, metrics, the log and the event sink what changed. */
export class Reporter {
  readonly #deps: EngineDeps;
  readonly #entries: ReadonlyMap<string, Entry>;
  readonly #listeners = new Set<(reports: ImageReport[]) => void>();
  #publishPending = false;
  #progressPublishedAt = Number.NEGATIVE_INFINITY;

  constructor(deps: EngineDeps, entries: ReadonlyMap<string, Entry>) {
    this.#deps = deps;
    this.#entries = entries;
  }

  /** Subscribes to report changes (called after each state change, with every image). */
  onChange(listener: (reports: ImageReport[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  reports(): ImageReport[] {
    return [...this.#entries.values()]
      .map((e) => reportOf(e))
      .sort((a, b) => compareCodeUnits(a.image, b.image));
  }

  emit(entry: Entry, kind: EngineEvent['kind'], message: string): void {
    this.#deps.onEvent?.({
      kind,
      image: entry.desired.ref,
      requiredBy: entry.desired.requiredBy,
      message,
    });
  }

  /** Sets `entry`'s decision; a new state, reason or message is logged and published. */
  record(entry: Entry, decision: Decision): void {
    const before = entry.decision;
    entry.decision = decision;
    if (
      before?.state === decision.state &&
      before.reason === decision.reason &&
      before.message === decision.message
    ) {
      return;
    }
    const report = reportOf(entry);
    if (decision.state === 'Present') entry.wasPresent = true;
    if (decision.reason === 'DigestDrift' && before?.reason !== 'DigestDrift') {
      this.emit(entry, 'DigestDrift', decision.message ?? 'the registry digest moved');
    }
    this.#deps.log.info(
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

  /**
   * A pull's bytes moved (the runtime's progress callback). Kept on the entry in place — no
   * allocation per callback — then published at most once per PROGRESS_PUBLISH_MS and logged
   * once per PROGRESS_LOG_MS of a long pull.
   */
  progressed(entry: Entry, progress: PullProgress): void {
    const pull = entry.pull;
    if (pull === undefined) return;
    const now = this.#deps.clock.now();
    if (progress.bytesDone > pull.bytes) pull.advancedAt = now;
    pull.bytes = progress.bytesDone;
    pull.totalBytes = progress.bytesTotal ?? pull.totalBytes;
    pull.reported = true;
    if (now - pull.loggedAt >= PROGRESS_LOG_MS) {
      pull.loggedAt = now;
      this.#deps.log.info(
        {
          image: entry.desired.ref,
          bytes: pull.bytes,
          ...(pull.totalBytes !== undefined ? { totalBytes: pull.totalBytes } : {}),
          elapsedMs: now - pull.startedAt,
        },
        'pull progress',
      );
    }
    if (now - this.#progressPublishedAt >= PROGRESS_PUBLISH_MS) {
      this.#progressPublishedAt = now;
      this.publish();
    }
  }

  /**
   * Reports changes at most once per turn of the event loop: at start-up hundreds of images
   * change state within one turn, and rebuilding every report for each of them made start-up
   * quadratic in the number of images.
   */
  publish(): void {
    if (this.#publishPending) return;
    this.#publishPending = true;
    setImmediate(() => {
      this.#publishPending = false;
      this.#flush();
    });
  }

  #flush(): void {
    const { metrics, clock } = this.#deps;
    const reports = this.reports();
    const states = new Map(reports.map((r) => [r.image, r.state]));
    const held = reports.reduce((sum, r) => sum + (r.state === 'Present' ? (r.size ?? 0) : 0), 0);
    metrics.setImageStates(states, held);
    metrics.setPrePullStates(prePullStates(reports));
    let inFlight = 0;
    for (const entry of this.#entries.values()) inFlight += entry.pull?.bytes ?? 0;
    metrics.pullBytesInFlight.set(inFlight);
    if (
      reports.length > 0 &&
      reports.every((r) => r.state === 'Present' && r.reason !== 'VerifyFailed')
    ) {
      metrics.lastSync.set(clock.now() / 1000);
    }
    for (const listener of this.#listeners) listener(reports);
  }
}

/** The states of each PrePull's images (`namespace/name`); the sandbox image is no PrePull's. */
function prePullStates(reports: readonly ImageReport[]): Map<string, ImageState[]> {
  const prePulls = new Map<string, ImageState[]>();
  for (const report of reports) {
    for (const owner of report.requiredBy) {
      if (owner === SANDBOX) continue;
      const states = prePulls.get(owner);
      if (states === undefined) prePulls.set(owner, [report.state]);
      else states.push(report.state);
    }
  }
  return prePulls;
}

/**
 * Image filesystem usage, at start and after pulls (the only times prepull changes it), so a
 * steady node costs no runtime calls. Capacity needs the mount point, which the agent sees only
 * where it is mounted in; otherwise it stays unset.
 */
export class ImageFsSampler {
  readonly #deps: EngineDeps;
  readonly #last: { usedBytes?: number; capacityBytes?: number } = {};
  #mountpoint: string | undefined;
  #sample: Promise<void> | undefined;
  #sampleAgain = false;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  /** The image filesystem as last sampled. */
  get last(): { usedBytes?: number; capacityBytes?: number } {
    return { ...this.#last };
  }

  /** Where the runtime keeps its images (asked once if no sample has told yet). */
  async mountpoint(): Promise<string | undefined> {
    if (this.#mountpoint !== undefined) return this.#mountpoint;
    const { runtime, metrics } = this.#deps;
    try {
      const [fs] = await runtimeCall(metrics, 'imagefs', () => runtime.imageFsInfo());
      this.#mountpoint = fs?.mountpoint;
    } catch (error) {
      this.#deps.log.debug(
        { err: errorInfo(error) },
        'could not ask where the image filesystem is',
      );
    }
    return this.#mountpoint;
  }

  sample(): void {
    if (this.#sample !== undefined) {
      // One in flight may have read too early: take another when it is done.
      this.#sampleAgain = true;
      return;
    }
    this.#sample = (async () => {
      try {
        await this.#read();
      } catch (error) {
        this.#deps.log.debug({ err: errorInfo(error) }, 'could not read image filesystem usage');
      } finally {
        this.#sample = undefined;
        if (this.#sampleAgain) {
          this.#sampleAgain = false;
          this.sample();
        }
      }
    })();
  }

  async #read(): Promise<void> {
    const { runtime, metrics } = this.#deps;
    const [fs] = await runtimeCall(metrics, 'imagefs', () => runtime.imageFsInfo());
    if (fs !== undefined) this.#mountpoint = fs.mountpoint;
    if (fs?.usedBytes !== undefined) {
      metrics.imageFsUsed.set(fs.usedBytes);
      this.#last.usedBytes = fs.usedBytes;
    }
    if (fs !== undefined) {
      const stats = await statfs(fs.mountpoint).catch(() => undefined);
      if (stats !== undefined) {
        this.#last.capacityBytes = stats.blocks * stats.bsize;
        metrics.imageFsCapacity.set(this.#last.capacityBytes);
      }
    }
  }
}
