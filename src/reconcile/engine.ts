// The reconcile engine shared by `prepull sync` and the in-cluster agent: keeps the node's runtime
// holding the desired images. It lists the runtime once at start, then learns of changes from
// deletion events (or a cheap periodic list where the runtime has none), runs each image through
// the state machine in state.ts on a keyed work queue, pulls with bounded concurrency, verifies
// tags against the registry, pins, and reports state. An image no PrePull wants any more is
// released (release.ts): unpinned, and removed only where asked and only if prepull pulled it.
//
// This file is the loop that ties the parts together: reading the node (observe.ts), pulling and
// pinning (pull.ts), asking the registry (verify.ts) and telling the world (report.ts).
import type { PrePull } from '../api/prepull.ts';
import { findImage } from '../image/names.ts';
import type { ImageReport } from '../image/report.ts';
import type { ErrorInfo, ReleasedImage } from '../image/report.ts';
import type { RuntimeImage } from '../runtime/types.ts';
import { PULL_BACKOFF } from './backoff.ts';
import { type DesiredImage, desiredImages } from './desired.ts';
import { DiskGuard, type DiskPicture, measureFs } from './disk.ts';
import { Observer, type RuntimeFailed, observe, runtimeCall } from './observe.ts';
import { RuntimeOutage } from './outage.ts';
import { Puller, STALL_TIMEOUT_MS } from './pull.ts';
import { WorkQueue } from './queue.ts';
import { type PreviousStatus, Releaser } from './release.ts';
import { ImageFsSampler, Reporter } from './report.ts';
import { Schedules, schedulesOf } from './schedules.ts';
import { type Decision, NEW_HISTORY, afterReset, decide } from './state.ts';
import {
  type EngineDeps,
  type EngineOptions,
  type EngineSettings,
  type Entry,
  errorInfo,
} from './types.ts';
import { digestMatch, verify } from './verify.ts';

export class Engine {
  readonly #deps: EngineDeps;
  readonly #options: EngineSettings;
  readonly #entries = new Map<string, Entry>();
  readonly #queue: WorkQueue<string>;
  readonly #observer: Observer;
  readonly #reporter: Reporter;
  readonly #imageFs: ImageFsSampler;
  readonly #puller: Puller;
  readonly #releaser: Releaser;
  readonly #schedules: Schedules;
  readonly #outage: RuntimeOutage;
  /** Absent without EngineOptions.disk. */
  readonly #disk: DiskGuard | undefined;
  readonly #stops: (() => void)[] = [];
  /** Set by stop(): a watch that only becomes live afterwards is ended at once. */
  #stopRequested = false;
  #prePulls: readonly PrePull[] = [];
  /** PrePulls that admit this node to pull (undefined: all; ADR 0014). */
  #admitting: ReadonlySet<string> | undefined;
  /** Images this node held before (its last report): repairs need no admission. */
  readonly #held = new Set<string>();
  #sandboxImage: string | undefined;
  #started = false;

  constructor(deps: EngineDeps, options: EngineOptions) {
    this.#deps = deps;
    const { disk, ...rest } = options;
    this.#options = {
      verifyTtlMs: 60_000,
      resyncIntervalMs: 30_000,
      backoff: PULL_BACKOFF,
      stallTimeoutMs: STALL_TIMEOUT_MS,
      cleanup: 'Unpin',
      waitForRuntime: true,
      ...rest,
    };
    this.#queue = new WorkQueue<string>({
      concurrency: 64,
      clock: deps.clock,
      handler: (ref, signal) => this.#handle(ref, signal),
      onError: (ref, error) => {
        deps.log.error({ image: ref, err: errorInfo(error) }, 'reconcile failed');
        this.#queue.addAfter(ref, 5000);
      },
    });
    this.#outage = new RuntimeOutage(deps, {
      relist: () => this.#observer.resync(),
      resume: () => {
        for (const ref of this.#entries.keys()) this.#queue.add(ref);
      },
    });
    // Without waiting (sync --once), an unanswered call is the attempt's failure, as it was.
    const runtimeFailed: RuntimeFailed = this.#options.waitForRuntime
      ? (error, probe) => this.#outage.failed(error, probe)
      : () => Promise.resolve(false);
    this.#observer = new Observer(deps, this.#options, this.#entries, this.#queue, runtimeFailed);
    this.#reporter = new Reporter(deps, this.#entries);
    this.#imageFs = new ImageFsSampler(deps);
    this.#disk =
      disk === undefined
        ? undefined
        : new DiskGuard(
            {
              clock: deps.clock,
              log: deps.log,
              metrics: deps.metrics,
              measure: deps.measureFs ?? measureFs,
              mountpoint: () => this.#imageFs.mountpoint(),
            },
            disk,
            this.#entries,
            (entry) => {
              this.#queue.add(entry.desired.ref);
            },
          );
    this.#puller = new Puller(deps, this.#options, this.#reporter, this.#imageFs, runtimeFailed);
    this.#schedules = new Schedules(deps, options.nodeName, (owner) => {
      this.#fire(owner);
    });
    this.#releaser = new Releaser(deps, {
      cleanup: () => this.#options.cleanup,
      entries: this.#entries,
      sandboxImage: () => this.#sandboxImage,
      onChange: () => {
        // A release may have freed space or pins: images held for disk are weighed again.
        this.#disk?.kick();
        this.#reporter.publish();
      },
    });
  }

  /**
   * What prepull pulled and pinned, and what it released, as the node's last status says (the
   * agent's NodeImageCache): call before start(). Images listed there and not wanted once
   * start() has the PrePulls are released then; images it listed Present were held, so pulling
   * one back is a repair that no paced rollout delays.
   */
  remember(previous: PreviousStatus | undefined): void {
    this.#releaser.remember(previous);
    const held = (previous?.images ?? []).filter((i) => i.state === 'Present');
    this.rememberHeld(held.map((i) => i.image));
  }

  /** Images released since start (and before it, as remembered), newest first. */
  released(): ReleasedImage[] {
    return this.#releaser.released();
  }

  /** Subscribes to report changes (called after each state change, with every image). */
  onChange(listener: (reports: ImageReport[]) => void): () => void {
    return this.#reporter.onChange(listener);
  }

  /**
   * Reads the runtime once (info and every image, one list call), subscribes to deletions (or
   * schedules a periodic list), and starts reconciling the PrePulls given so far.
   */
  async start(): Promise<void> {
    const { runtime, log, metrics } = this.#deps;
    const info = await runtimeCall(metrics, 'info', () => runtime.info());
    this.#sandboxImage = info.sandboxImage;
    log.info(
      {
        runtime: info.name,
        version: info.version,
        endpoint: info.endpoint,
        sandboxImage: info.sandboxImage,
      },
      'runtime',
    );
    const images = await runtimeCall(metrics, 'list', () => runtime.listImages());
    this.#started = true;
    this.#recompute(images);
    this.#releaser.releaseForgotten();
    this.#imageFs.sample();
    if (runtime.capabilities.deletionEvents) {
      const stop = await runtimeCall(metrics, 'watch', () =>
        runtime.watchDeletions((event) => {
          // The stream re-established: the runtime may be back; do not wait for the next probe.
          if (event.kind === 'gap') this.#outage.wake();
          this.#observer.onDeletion(event);
        }),
      );
      // Stopped while the subscription was being set up (a signal during start-up): end it now.
      if (this.#stopRequested) stop();
      else this.#stops.push(stop);
    } else if (!this.#stopRequested) {
      this.#stops.push(this.#observer.resyncEvery());
    }
  }

  /**
   * The PrePulls to reconcile, and which of them admit this node to start pulls (a paced
   * rollout's admitted nodes; undefined: every PrePull admits it).
   */
  setPrePulls(prePulls: readonly PrePull[], admitting?: ReadonlySet<string>): void {
    this.#prePulls = prePulls;
    this.#admitting = admitting;
    if (this.#started) this.#recompute();
  }

  /**
   * Images (canonical references) this node held Present before, say in the report it wrote
   * before a restart: pulling one back is a repair, which no paced rollout delays.
   */
  rememberHeld(refs: Iterable<string>): void {
    for (const ref of refs) {
      this.#held.add(ref);
      const entry = this.#entries.get(ref);
      if (entry !== undefined && entry.wasPresent !== true) {
        entry.wasPresent = true;
        this.#queue.add(ref);
      }
    }
  }

  setLabels(labels: Record<string, string>): void {
    this.#options.labels = labels;
    if (this.#started) this.#recompute();
  }

  /** The image filesystem as last sampled (at start and after pulls). */
  imageFilesystem(): { usedBytes?: number; capacityBytes?: number } {
    return this.#imageFs.last;
  }

  /** The disk guard's picture (floor, free space, budget, pinned bytes); undefined: no guard. */
  disk(): DiskPicture | undefined {
    return this.#disk?.picture();
  }

  reports(): ImageReport[] {
    return this.#reporter.reports();
  }

  /**
   * The runtime stopped answering mid-run and the engine waits for it (no pull starts); false
   * again once it answered, the node was re-listed and every image resumed.
   */
  get waitingForRuntime(): boolean {
    return this.#outage.down;
  }

  /**
   * Resolves once every image has reached a resting state: Present (verified and pinned where
   * asked), Failed, or Stale that will not be re-pulled. For `sync --once`.
   */
  async settled(): Promise<ImageReport[]> {
    for (;;) {
      await this.#releaser.idle();
      await this.#queue.idle();
      const unsettled = [...this.#entries.values()].filter((e) => !isResting(e));
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
    await this.#puller.drain(graceMs);
    await this.stop();
  }

  /** Stops watching and scheduling; aborts pulls in flight (and those waiting for a slot). */
  async stop(): Promise<void> {
    this.#stopRequested = true;
    this.#outage.stop();
    this.#disk?.stop();
    this.#releaser.stop();
    this.#schedules.stop();
    for (const stop of this.#stops.splice(0)) stop();
    await this.#queue.shutDown();
  }

  #recompute(images?: readonly RuntimeImage[]): void {
    const now = this.#deps.clock.now();
    const desired = desiredImages(
      this.#prePulls,
      this.#options.labels,
      this.#sandboxImage,
      this.#admitting,
    );
    for (const [ref, entry] of this.#entries) {
      if (desired.has(ref)) continue;
      this.#entries.delete(ref);
      this.#queue.forget(ref);
      this.#releaser.release(entry);
    }
    for (const [ref, want] of desired) {
      const existing = this.#entries.get(ref);
      if (existing === undefined) {
        const entry: Entry = {
          desired: want,
          history: NEW_HISTORY,
          verifyRequested: true,
          forceVerify: false,
          ...(this.#held.has(ref) ? { wasPresent: true } : {}),
        };
        // With a fresh list (start-up, a re-list) the entry is observed; without one (a PrePull
        // added later) handle() asks the runtime before it decides anything.
        if (images !== undefined) observe(entry, findImage(images, ref), now);
        this.#releaser.recall(entry);
        this.#entries.set(ref, entry);
      } else if (!sameWanted(existing.desired, want)) {
        // A change gives a failed image a fresh set of attempts and a fresh check.
        existing.desired = want;
        existing.history = afterReset(existing.history);
        existing.verifyRequested = true;
      } else {
        // An admission given or withdrawn changes nothing but whether a pull may start.
        existing.desired = want;
        if (images !== undefined) observe(existing, findImage(images, ref), now);
      }
      this.#queue.add(ref);
    }
    this.#schedules.set(schedulesOf(this.#prePulls, this.#options.labels));
    this.#reporter.publish();
  }

  /** A PrePull's schedule fired on this node: check its images again, failed ones afresh. */
  #fire(owner: string): void {
    for (const entry of this.#entries.values()) {
      if (!entry.desired.requiredBy.includes(owner)) continue;
      entry.history = afterReset(entry.history);
      entry.verifyRequested = true;
      entry.forceVerify = true;
      this.#queue.add(entry.desired.ref);
    }
  }

  async #handle(ref: string, signal: AbortSignal): Promise<void> {
    // A few steps per turn: verify, then pin, then report — each step re-decides.
    for (let step = 0; step < 4 && !signal.aborted; step++) {
      const entry = this.#entries.get(ref);
      if (entry === undefined) return;
      // While the runtime is down nothing is asked of it; its return queues every image again.
      let down = this.#outage.down ? this.#outage.lastError : undefined;
      // A reference that does not parse is Failed on its own: the runtime cannot be asked about
      // it (its adapter refuses the name), and waiting for a reading would keep it unsettled.
      const needsReading = down === undefined && entry.desired.invalid === undefined;
      if (needsReading && !(await this.#observer.hasReading(entry, signal))) {
        // A first reading that found the runtime down (an image added during an outage): say
        // so now, or its status reads Pending, without a reason, until the runtime is back.
        // (lastError is set exactly while the runtime is down.)
        down = this.#outage.lastError;
        if (down === undefined) return;
      }
      const now = this.#deps.clock.now();
      const decision = this.#decide(entry, now, down);
      this.#reporter.record(entry, decision);
      const action = decision.action;
      if (action.kind === 'none') return;
      if (action.kind === 'wait') {
        this.#queue.addAfter(ref, action.until - now);
        return;
      }
      if (action.kind === 'verify') {
        await verify(entry, this.#deps, this.#options.verifyTtlMs, signal);
        // The registry's answer is compared with what the node holds now, not with a reading
        // from hours ago: another client may have re-pulled or replaced the image since.
        await this.#observer.reobserve(entry, signal);
      } else if (action.kind === 'pin') await this.#puller.pin(entry);
      else if (this.#puller.draining) return;
      else await this.#pullUnlessThere(entry, signal);
    }
    if (!signal.aborted) this.#queue.add(ref);
  }

  /** The state machine's verdict on `entry` now (state.ts), the runtime down or not. */
  #decide(entry: Entry, now: number, runtimeDown: ErrorInfo | undefined): Decision {
    return decide(
      entry.desired,
      {
        present: entry.image !== undefined,
        ...(entry.image
          ? { id: entry.image.id, size: entry.image.size, pinned: entry.image.pinned }
          : {}),
        ...digestMatch(entry, this.#deps.matchesDigest),
      },
      entry.history,
      {
        now,
        verifyDue: entry.verifyRequested,
        canPin: this.#deps.runtime.capabilities.pin && entry.pinError === undefined,
        admitted: entry.desired.admitted || entry.wasPresent === true,
        ...(runtimeDown !== undefined ? { runtimeDown } : {}),
        ...(entry.diskHeld !== undefined ? { diskHeld: entry.diskHeld } : {}),
      },
    );
  }

  /**
   * Pulls, unless a fresh look finds the image: a retry comes a while after the last reading,
   * and the image may have arrived meanwhile (kubelet, an operator, a disk) or changed. Then the
   * next step decides on what is there.
   */
  async #pullUnlessThere(entry: Entry, signal: AbortSignal): Promise<void> {
    if ((await this.#observer.reobserve(entry, signal)) && entry.image !== undefined) return;
    // The look found the runtime down: the next step reports the wait; no pull is tried.
    if (this.#outage.down) return;
    const disk = this.#disk;
    if (disk === undefined) {
      await this.#puller.pull(entry, signal);
      return;
    }
    // The disk guard weighs the pull once it has a slot, just before it starts: one that does
    // not fit is held (the next step reports it Failed, ERR_DISK_BUDGET), no attempt counted.
    try {
      await this.#puller.pull(entry, signal, async () => (await disk.admit(entry)) === undefined);
    } finally {
      disk.done(entry);
    }
  }
}

/** The same wanted image, admission aside (a change of anything else resets its attempts). */
function sameWanted(a: DesiredImage, b: DesiredImage): boolean {
  return JSON.stringify({ ...a, admitted: true }) === JSON.stringify({ ...b, admitted: true });
}

/** Nothing left to wait for: the state will not change until the world or the wanted does. */
function isResting(entry: Entry): boolean {
  const decision = entry.decision;
  if (decision === undefined) return false;
  // Present but unverified waits for its next check in the background: nothing to wait for.
  if (decision.reason === 'VerifyFailed' && decision.action.kind === 'wait') return true;
  // Waiting for a paced rollout to admit the node: only the controller can change that.
  if (decision.reason === 'AwaitingAdmission') return true;
  // Waiting for a pull slot: a pull is coming.
  if (decision.reason === 'Queued') return false;
  if (decision.action.kind !== 'none') return false;
  return decision.state !== 'Pulling' && decision.state !== 'Missing';
}
