// The PrePulls' schedules on this node: one cron task per PrePull that selects the node and has a
// schedule. Each time a schedule names fires on this node late by an offset of the node's own
// within the PrePull's window (spec.scheduleJitterSeconds), so a thousand nodes do not ask the
// registry in the same second. The offset is a hash of node and PrePull: the same after a restart,
// and different for two PrePulls on one node. The wait is on the injected clock.
import { type PrePull, selectsNode } from '../api/prepull.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { CronSpec, Scheduler, Tick } from './types.ts';

/** A PrePull's schedule as this node runs it. */
export interface OwnedSchedule {
  /** The PrePull, `namespace/name`. */
  owner: string;
  cron: CronSpec;
  jitterSeconds: number;
}

/** The schedules of the PrePulls that select a node with `labels`. */
export function schedulesOf(
  prePulls: readonly PrePull[],
  labels: Readonly<Record<string, string>>,
): OwnedSchedule[] {
  const schedules: OwnedSchedule[] = [];
  for (const { metadata, spec } of prePulls) {
    if (spec.schedule === undefined || !selectsNode(spec.nodeSelector, labels)) continue;
    schedules.push({
      owner: `${metadata.namespace}/${metadata.name}`,
      cron: {
        expression: spec.schedule,
        ...(spec.timeZone !== undefined ? { timeZone: spec.timeZone } : {}),
      },
      jitterSeconds: spec.scheduleJitterSeconds,
    });
  }
  return schedules;
}

/**
 * Where in its window (a number in [0, 1)) `node` fires the schedule of PrePull `owner`: a fixed
 * hash of the two names, FNV-1a over their UTF-16 code units and murmur3's finaliser, so names
 * that differ in one character (node-1, node-2) land far apart.
 */
export function spreadFraction(node: string, owner: string): number {
  const text = `${node}\n${owner}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32;
}

/**
 * How long after `tick.at` this node fires: its fraction of the window, which is the jitter, or
 * the time to the schedule's next time when that is shorter — so a firing never comes after
 * the next one's time, and firings never pile up.
 */
export function spreadDelayMs(fraction: number, jitterSeconds: number, tick: Tick): number {
  const gap = tick.next === undefined ? Infinity : Math.max(0, tick.next - tick.at);
  return Math.floor(fraction * Math.min(jitterSeconds * 1000, gap));
}

interface Armed {
  /** What it was armed with: a change of schedule, zone or jitter arms it again. */
  key: string;
  stop: () => void;
}

export interface SchedulesDeps {
  scheduler: Scheduler;
  clock: Clock;
  log: Logger;
}

/**
 * The armed schedules of one node. A firing waiting out its offset still happens when the
 * PrePull's schedule changes meanwhile (it was due); it is dropped when the PrePull goes away
 * or stops selecting the node (there is nothing of it left to check), and at stop().
 */
export class Schedules {
  readonly #deps: SchedulesDeps;
  readonly #node: string;
  readonly #onFire: (owner: string) => void;
  readonly #armed = new Map<string, Armed>();
  readonly #waiting = new Map<string, Set<AbortController>>();
  #stopped = false;

  constructor(deps: SchedulesDeps, node: string, onFire: (owner: string) => void) {
    this.#deps = deps;
    this.#node = node;
    this.#onFire = onFire;
  }

  /** Arms, re-arms and disarms so that exactly `wanted` run (one per owner). */
  set(wanted: readonly OwnedSchedule[]): void {
    if (this.#stopped) return;
    const byOwner = new Map(wanted.map((w) => [w.owner, w]));
    for (const [owner, armed] of this.#armed) {
      const want = byOwner.get(owner);
      if (want !== undefined && keyOf(want) === armed.key) continue;
      armed.stop();
      this.#armed.delete(owner);
      if (want === undefined) this.#cancel(owner);
    }
    for (const want of byOwner.values()) if (!this.#armed.has(want.owner)) this.#arm(want);
  }

  /** Firings waiting out their offset now (for tests and logs). */
  get waiting(): number {
    let count = 0;
    for (const set of this.#waiting.values()) count += set.size;
    return count;
  }

  /** Disarms every schedule and drops the firings waiting; set() does nothing afterwards. */
  stop(): void {
    this.#stopped = true;
    for (const armed of this.#armed.values()) armed.stop();
    this.#armed.clear();
    for (const owner of [...this.#waiting.keys()]) this.#cancel(owner);
  }

  #arm(want: OwnedSchedule): void {
    const fraction = spreadFraction(this.#node, want.owner);
    const stop = this.#deps.scheduler.schedule(want.cron, (tick) => {
      this.#tick(want, fraction, tick);
    });
    this.#armed.set(want.owner, { key: keyOf(want), stop });
    this.#deps.log.info(
      {
        prePull: want.owner,
        schedule: want.cron.expression,
        timeZone:
          want.cron.timeZone ?? `${new Intl.DateTimeFormat().resolvedOptions().timeZone} (local)`,
        // Less when the schedule's times are closer together than the window.
        offsetSeconds: Math.floor(fraction * want.jitterSeconds),
      },
      'schedule armed',
    );
  }

  #tick(want: OwnedSchedule, fraction: number, tick: Tick): void {
    const { clock, log } = this.#deps;
    const due = tick.at + spreadDelayMs(fraction, want.jitterSeconds, tick);
    const wait = due - clock.now();
    log.debug(
      {
        prePull: want.owner,
        scheduled: new Date(tick.at).toISOString(),
        waitMs: Math.max(0, wait),
      },
      'schedule ticked',
    );
    if (wait <= 0) {
      this.#onFire(want.owner);
      return;
    }
    const abort = new AbortController();
    const waiting = this.#waiting.get(want.owner) ?? new Set<AbortController>();
    waiting.add(abort);
    this.#waiting.set(want.owner, waiting);
    const done = (): void => {
      waiting.delete(abort);
      if (waiting.size === 0 && this.#waiting.get(want.owner) === waiting)
        this.#waiting.delete(want.owner);
    };
    void clock.sleep(wait, abort.signal).then(
      () => {
        done();
        this.#onFire(want.owner);
      },
      done, // dropped: the PrePull went away, or the engine stopped
    );
  }

  #cancel(owner: string): void {
    const waiting = this.#waiting.get(owner);
    if (waiting === undefined) return;
    this.#waiting.delete(owner);
    for (const abort of waiting) abort.abort();
  }
}

function keyOf(want: OwnedSchedule): string {
  return JSON.stringify([want.cron.expression, want.cron.timeZone ?? null, want.jitterSeconds]);
}
