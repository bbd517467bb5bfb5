// The disk guard (ADR 0019): before each pull, the image filesystem's free space and the bytes
// prepull pins are weighed against a floor and a budget. Pinned images are out of kubelet's GC
// reach, so prepull is the only one that can keep them from filling the node. An image that
// does not fit is held (Failed, ERR_DISK_BUDGET) without spending attempts, and weighed again
// while it is held; nothing already on the node is removed or unpinned.
import { statfs as nodeStatfs } from 'node:fs/promises';
import { formatBytes } from '../bytes.ts';
import { type Clock, Naps } from '../clock.ts';
import type { DiskFloor } from '../config/disk.ts';
import { PrepullError } from '../errors.ts';
import type { ErrorInfo } from '../image/report.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { DiskGuardOptions, Entry, FsMeasure, FsSpace } from './types.ts';

export const DISK_RECHECK_MS = 15_000;

/** statfs: what kubelet reads for imagefs.available. */
export const measureFs: FsMeasure = async (path) => {
  const stats = await nodeStatfs(path);
  return { availableBytes: stats.bavail * stats.bsize, capacityBytes: stats.blocks * stats.bsize };
};

/** The disk as the guard last saw it: what status and metrics show. */
export interface DiskPicture {
  /** The floor in bytes; absent while free space cannot be measured (for a percentage). */
  floorBytes?: number;
  /** The floor as given: "20%" or "10Gi"-style bytes. */
  floor: string;
  availableBytes?: number;
  capacityBytes?: number;
  pinBudgetBytes?: number;
  /** Bytes of the wanted images that are present and pinned. */
  pinnedBytes: number;
  /** Images held now (ERR_DISK_BUDGET). */
  heldImages: number;
  /** Why free space is not measured (the floor is then not applied); absent when it is. */
  message?: string;
}

/** What one decision weighs: the measured disk, the pins, the image and the pulls in flight. */
export interface DiskInput {
  floor: DiskFloor;
  pinBudgetBytes?: number;
  availableBytes?: number;
  capacityBytes?: number;
  pinnedBytes: number;
  /** The image's expected size; undefined: unknown (only a floor already crossed refuses). */
  expectedBytes?: number;
  /** The image will be pinned (only then does the budget apply). */
  pins: boolean;
  /** Bytes pulls in flight are still expected to write, and to pin. */
  reservedBytes: number;
  reservedPinBytes: number;
  /** For the message: the path measured. */
  path?: string;
}

/** The floor in bytes, where it can be known. */
export function floorBytes(
  floor: DiskFloor,
  capacityBytes: number | undefined,
): number | undefined {
  if ('bytes' in floor) return floor.bytes;
  return capacityBytes === undefined ? undefined : Math.ceil((capacityBytes * floor.percent) / 100);
}

export function describeFloor(floor: DiskFloor): string {
  return 'bytes' in floor ? formatBytes(floor.bytes) : `${floor.percent}%`;
}

/**
 * The guard's verdict on pulling one image: undefined when it fits, else the reason (an
 * ERR_DISK_BUDGET error naming every number). A pure function, so each rule is unit-tested.
 */
export function diskVerdict(input: DiskInput): ErrorInfo | undefined {
  const expected = input.expectedBytes;
  const size =
    expected === undefined
      ? 'its size is unknown (never held on this node)'
      : `its expected size is ${formatBytes(expected)} (last seen on this node)`;
  const floor = floorBytes(input.floor, input.capacityBytes);
  if (floor !== undefined && input.availableBytes !== undefined) {
    const after = input.availableBytes - input.reservedBytes - (expected ?? 0);
    if (after < floor) {
      const ofCapacity =
        'percent' in input.floor && input.capacityBytes !== undefined
          ? ` (${input.floor.percent}% of ${formatBytes(input.capacityBytes)})`
          : '';
      const inFlight =
        input.reservedBytes > 0
          ? `, ${formatBytes(input.reservedBytes)} of it promised to pulls in flight`
          : '';
      return held(
        `not pulled: the image filesystem${input.path !== undefined ? ` at ${input.path}` : ''} has ${formatBytes(input.availableBytes)} free${inFlight}, and ${size}; pulling it would leave less than the floor of ${formatBytes(floor)}${ofCapacity} (--image-fs-floor)`,
      );
    }
  }
  const budget = input.pinBudgetBytes;
  if (budget !== undefined && input.pins) {
    const pinned = input.pinnedBytes + input.reservedPinBytes;
    const over = expected === undefined ? pinned >= budget : pinned + expected > budget;
    if (over) {
      return held(
        `not pulled: prepull pins ${formatBytes(pinned)} on this node${input.reservedPinBytes > 0 ? ' (pulls in flight included)' : ''}, and ${size}; pinning it would exceed the pin budget of ${formatBytes(budget)} (--pin-budget)`,
      );
    }
  }
  return undefined;
}

function held(message: string): ErrorInfo {
  const error = new PrepullError('ERR_DISK_BUDGET', message);
  return { code: error.code, message: error.message, retryable: error.retryable };
}

/** Bytes of the wanted images that are present and pinned (what the budget counts). */
export function pinnedBytes(entries: Iterable<Entry>): number {
  let sum = 0;
  for (const entry of entries) {
    if (entry.desired.pin && entry.image?.pinned === true) sum += entry.image.size;
  }
  return sum;
}

/** What pulls admitted are still expected to write, and to pin, by their expected sizes. */
export function reserved(
  admitted: Iterable<Entry>,
  except: Entry,
): { bytes: number; pins: number } {
  let bytes = 0;
  let pins = 0;
  for (const entry of admitted) {
    if (entry === except) continue;
    const expected = entry.lastSize ?? 0;
    // What a pull has written so far is already out of the free space measured.
    bytes += Math.max(0, expected - (entry.pull?.bytes ?? 0));
    if (entry.desired.pin) pins += expected;
  }
  return { bytes, pins };
}

/** What the guard needs from the engine. */
export interface DiskGuardDeps {
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  measure: FsMeasure;
  /** The image filesystem's mount point as the runtime reports it (undefined: unknown). */
  mountpoint: () => Promise<string | undefined>;
}

/**
 * Weighs pulls against the floor and the budget, holds what does not fit, and weighs the held
 * images again every `recheckMs` (and when kicked: a release) until they fit.
 */
export class DiskGuard {
  readonly #deps: DiskGuardDeps;
  readonly #options: DiskGuardOptions;
  readonly #entries: ReadonlyMap<string, Entry>;
  readonly #onRoom: (entry: Entry) => void;
  readonly #naps: Naps;
  #space: FsSpace | undefined;
  #path: string | undefined;
  #unmeasured: string | undefined;
  #rechecking = false;
  /** Pulls admitted and not yet done: their expected bytes are promised. */
  readonly #granted = new Set<Entry>();
  /** Admissions one at a time, so two pulls cannot both take the last room. */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(
    deps: DiskGuardDeps,
    options: DiskGuardOptions,
    entries: ReadonlyMap<string, Entry>,
    onRoom: (entry: Entry) => void,
  ) {
    this.#deps = deps;
    this.#options = options;
    this.#entries = entries;
    this.#onRoom = onRoom;
    this.#naps = new Naps(deps.clock);
    if (options.pinBudgetBytes !== undefined) deps.metrics.pinBudget.set(options.pinBudgetBytes);
  }

  /**
   * Measures now and weighs a pull of `entry`: undefined when it may start; else `entry` is
   * held (its `diskHeld` says why, and the re-check runs until it fits).
   */
  admit(entry: Entry): Promise<ErrorInfo | undefined> {
    const turn = this.#turn.then(() => this.#admit(entry));
    this.#turn = turn.catch(() => undefined);
    return turn;
  }

  /** `entry`'s pull is over (or never started): its bytes are no longer promised. */
  done(entry: Entry): void {
    this.#granted.delete(entry);
  }

  async #admit(entry: Entry): Promise<ErrorInfo | undefined> {
    await this.#measure();
    const verdict = this.#weigh(entry);
    this.#publish();
    if (verdict === undefined) {
      delete entry.diskHeld;
      this.#granted.add(entry);
      return undefined;
    }
    const first = entry.diskHeld === undefined;
    entry.diskHeld = verdict;
    if (first)
      this.#deps.log.warn({ image: entry.desired.ref, err: verdict }, 'held for disk space');
    this.#publish();
    this.#recheckLoop();
    return verdict;
  }

  /** Something freed space or pins (a release): weigh the held images now. */
  kick(): void {
    this.#naps.wake();
  }

  stop(): void {
    this.#naps.stop();
  }

  /** The disk as last measured, for status. */
  picture(): DiskPicture {
    const floor = floorBytes(this.#options.floor, this.#space?.capacityBytes);
    let held = 0;
    for (const entry of this.#entries.values()) if (entry.diskHeld !== undefined) held++;
    return {
      floor: describeFloor(this.#options.floor),
      ...(floor !== undefined && this.#space !== undefined ? { floorBytes: floor } : {}),
      ...(this.#space !== undefined
        ? { availableBytes: this.#space.availableBytes, capacityBytes: this.#space.capacityBytes }
        : {}),
      ...(this.#options.pinBudgetBytes !== undefined
        ? { pinBudgetBytes: this.#options.pinBudgetBytes }
        : {}),
      pinnedBytes: pinnedBytes(this.#entries.values()),
      heldImages: held,
      ...(this.#unmeasured !== undefined ? { message: this.#unmeasured } : {}),
    };
  }

  #weigh(entry: Entry): ErrorInfo | undefined {
    const inFlight = reserved(this.#granted, entry);
    return diskVerdict({
      floor: this.#options.floor,
      ...(this.#options.pinBudgetBytes !== undefined
        ? { pinBudgetBytes: this.#options.pinBudgetBytes }
        : {}),
      ...(this.#space !== undefined ? this.#space : {}),
      pinnedBytes: pinnedBytes(this.#entries.values()),
      ...(entry.lastSize !== undefined ? { expectedBytes: entry.lastSize } : {}),
      pins: entry.desired.pin,
      reservedBytes: inFlight.bytes,
      reservedPinBytes: inFlight.pins,
      ...(this.#path !== undefined ? { path: this.#path } : {}),
    });
  }

  /**
   * statfs of the image filesystem. Where it cannot be measured (the agent's container does
   * not see the mount point), that is said once, in the log and the status, and the floor is
   * not applied: blocking every pull on a figure prepull cannot read would make the guard the
   * outage. The budget needs no measurement and still applies.
   */
  async #measure(): Promise<void> {
    const path = this.#options.imageFsPath ?? (await this.#deps.mountpoint());
    if (path === undefined) {
      this.#cannotMeasure('the runtime does not say where its image filesystem is mounted');
      return;
    }
    this.#path = path;
    try {
      this.#space = await this.#deps.measure(path);
      this.#unmeasured = undefined;
    } catch (error) {
      // Its message, from any realm (an fs error is no `instanceof Error` inside Jest's VM).
      const message: unknown = (error as { message?: unknown } | null)?.message;
      const reason = typeof message === 'string' ? message : String(error);
      this.#cannotMeasure(
        `cannot measure free space at ${path} (${reason}): mount the image filesystem into prepull's container, or name a path on it with --image-fs-path`,
      );
    }
  }

  #cannotMeasure(reason: string): void {
    this.#space = undefined;
    if (this.#unmeasured === undefined) {
      this.#deps.log.warn(
        { reason },
        'free space on the image filesystem is not measured; the floor is not applied',
      );
    }
    this.#unmeasured = reason;
  }

  #publish(): void {
    const { metrics } = this.#deps;
    const picture = this.picture();
    if (picture.floorBytes !== undefined) metrics.imageFsFloor.set(picture.floorBytes);
    else metrics.imageFsFloor.remove();
    if (picture.availableBytes !== undefined) metrics.imageFsAvailable.set(picture.availableBytes);
    else metrics.imageFsAvailable.remove();
    metrics.pinnedBytes.set(picture.pinnedBytes);
    metrics.diskHeld.set(picture.heldImages);
  }

  /** While any image is held: measure every recheckMs (or when kicked) and free what fits. */
  #recheckLoop(): void {
    if (this.#rechecking) return;
    this.#rechecking = true;
    void (async () => {
      try {
        while (!this.#naps.stopped && this.#anyHeld()) {
          if (!(await this.#naps.sleep(this.#options.recheckMs ?? DISK_RECHECK_MS))) return;
          await this.#measure();
          for (const entry of this.#entries.values()) {
            if (entry.diskHeld === undefined) continue;
            // One that fits now is let go (its pull is weighed once more as it starts); one
            // still too big keeps its hold, with the message brought up to date.
            const verdict = this.#weigh(entry);
            if (verdict === undefined) {
              delete entry.diskHeld;
              this.#onRoom(entry);
            } else {
              entry.diskHeld = verdict;
            }
          }
          this.#publish();
        }
      } finally {
        this.#rechecking = false;
      }
    })();
  }

  #anyHeld(): boolean {
    for (const entry of this.#entries.values()) if (entry.diskHeld !== undefined) return true;
    return false;
  }
}
