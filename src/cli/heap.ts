// Gives memory back once a burst of work is over. A long-running `sync` or agent allocates
// most of what it ever will while it starts (the runtime's list, a registry check per image,
// a log line per state change); V8 then keeps the young generation it grew for that burst and
// the old-generation pages that held its garbage, and only a memory-reducing collection returns
// them — which V8 runs by itself late or never in a process that has gone quiet. So once the
// engine's images have stopped changing for a few seconds, one such collection runs: 20–30 MiB
// less resident memory at 500 images, for a few tens of milliseconds of one core
// (docs/adr/0005-bundled-cli.md).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isMainThread } from 'node:worker_threads';

/** No state change for this long counts as quiet. */
export const QUIET_MS = 2000;
/** Collections at most this often, however often the images change. */
export const MIN_INTERVAL_MS = 60_000;

interface GcOptions {
  type: 'major';
  execution: 'sync';
  flavor: 'last-resort';
}

let collect: ((options: GcOptions) => void) | undefined;

/** V8's default --bytecode-old-age: code unused for this many full collections is dropped. */
const BYTECODE_OLD_AGE = 6;

/**
 * A full collection that compacts the heap and shrinks the young generation (V8's "last resort"
 * collection, as under memory pressure), and that also drops the compiled code of every function
 * not run since the previous collection — most of it start-up code; a function that runs again
 * is compiled again, lazily, as on its first call. V8 offers the collection through its `gc`
 * extension only, which --expose-gc installs in contexts created afterwards: hence the flag and
 * the one new context. The code-flushing flags are V8's own, read at each collection, and are
 * put back to their defaults afterwards.
 */
export function releaseMemory(): void {
  // V8's flags belong to the process, not the isolate: changing them from a worker thread while
  // other isolates run crashed a benchmark that ran 250 agents per worker (SIGSEGV). Only the
  // main thread of a process that is one command does this.
  if (!isMainThread) return;
  if (collect === undefined) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as (options: GcOptions) => void;
  }
  setFlagsFromString('--flush-baseline-code');
  setFlagsFromString('--bytecode-old-age=1');
  try {
    collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  } finally {
    setFlagsFromString(`--bytecode-old-age=${BYTECODE_OLD_AGE}`);
    setFlagsFromString('--no-flush-baseline-code');
  }
}

export interface QuietOptions {
  quietMs?: number;
  minIntervalMs?: number;
  release?: () => void;
  now?: () => number;
}

/**
 * Calls `release` (releaseMemory by default) once `subscribe`'s changes — and the start, which
 * counts as one — have stopped for `quietMs`, and not again within `minIntervalMs`. The timers
 * never keep the process alive. Returns a function that stops it.
 */
export function releaseWhenQuiet(
  subscribe: (onChange: () => void) => () => void,
  options: QuietOptions = {},
): () => void {
  const quietMs = options.quietMs ?? QUIET_MS;
  const minIntervalMs = options.minIntervalMs ?? MIN_INTERVAL_MS;
  const release = options.release ?? releaseMemory;
  const now = options.now ?? Date.now;
  let last = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | undefined;
  const fire = (): void => {
    timer = undefined;
    last = now();
    release();
  };
  const changed = (): void => {
    clearTimeout(timer);
    timer = setTimeout(fire, Math.max(quietMs, last + minIntervalMs - now()));
    timer.unref();
  };
  const unsubscribe = subscribe(changed);
  // The start-up burst may be over before the subscription: count it as a change.
  changed();
  return () => {
    unsubscribe();
    clearTimeout(timer);
  };
}
