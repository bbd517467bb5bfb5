// Pull progress in bytes from containerd's content ingests, which CRI does not give. While a
// pull runs, containerd streams each blob into an ingest whose status (offset of total) the
// content service lists; prepull polls that list and adds up the bytes written since the pull
// began.
//
// It is an approximation, documented in docs/runtimes.md:
// - ingests are not tagged with the image they belong to, so bytes of other pulls running at the
//   same time are counted too;
// - a blob that starts and finishes between two polls is never seen and not counted, so small
//   layers are missed and the last figure is below the image's size;
// - an ingest that existed before the pull (a resumed download) counts only what it grows by.
// The figure never decreases, which is what a progress display and a stall detector need.

import type { Clock } from '../../clock.ts';
import type { PullProgress } from '../types.ts';
import type { IngestStatus } from './native.ts';

export class IngestTally {
  #baseline: Map<string, number> | undefined;
  readonly #active = new Map<string, { offset: number; total: number }>();
  #finished = 0;
  #reported = 0;

  /** Takes one listing; returns bytes done so far (never less than the last answer). */
  observe(statuses: readonly IngestStatus[]): number {
    if (this.#baseline === undefined) {
      // The first listing is taken as the pull starts: what is there belongs to earlier work.
      this.#baseline = new Map(statuses.map((s) => [s.ref, s.offset]));
      for (const s of statuses) this.#active.set(s.ref, { offset: s.offset, total: s.total });
      return this.#reported;
    }
    const present = new Set<string>();
    for (const s of statuses) {
      present.add(s.ref);
      const before = this.#active.get(s.ref);
      this.#active.set(s.ref, { offset: Math.max(before?.offset ?? 0, s.offset), total: s.total });
    }
    for (const [ref, last] of this.#active) {
      if (present.has(ref)) continue;
      // Gone from the list: committed (or abandoned). Count it as complete.
      this.#finished += Math.max(last.total, last.offset) - (this.#baseline.get(ref) ?? 0);
      this.#active.delete(ref);
      this.#baseline.delete(ref);
    }
    let inFlight = 0;
    for (const [ref, s] of this.#active) inFlight += s.offset - (this.#baseline.get(ref) ?? 0);
    this.#reported = Math.max(this.#reported, this.#finished + inFlight);
    return this.#reported;
  }
}

export interface ProgressPollerOptions {
  clock: Clock;
  intervalMs: number;
  list: () => Promise<IngestStatus[]>;
  onProgress: (progress: PullProgress) => void;
}

export const DEFAULT_PROGRESS_INTERVAL_MS = 200;

/**
 * Polls ingests until stopped, reporting each increase. A failed listing is skipped: progress is
 * a nicety, and the pull's own call reports whether the runtime is really gone.
 */
export function pollIngests(options: ProgressPollerOptions): { stop(): Promise<void> } {
  const tally = new IngestTally();
  const stopped = new AbortController();
  let last = 0;
  const sample = async (): Promise<void> => {
    let statuses: IngestStatus[];
    try {
      statuses = await options.list();
    } catch {
      return;
    }
    const done = tally.observe(statuses);
    if (done > last) {
      last = done;
      options.onProgress({ bytesDone: done });
    }
  };
  const loop = (async () => {
    await sample();
    while (!stopped.signal.aborted) {
      try {
        await options.clock.sleep(options.intervalMs, stopped.signal);
      } catch {
        return;
      }
      await sample();
    }
  })();
  return {
    async stop() {
      stopped.abort();
      await loop;
      // One last look: ingests that finished since the last poll are counted now.
      await sample();
    },
  };
}
