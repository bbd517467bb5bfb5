// Waiting, in tests, benchmarks and scripts, for something that happens on its own time: a
// daemon answering again, an agent reporting, an event arriving. Test support beside the code it
// serves, like src/runtime/testing/: the conformance suite there uses it, so it lives in src/
// (which never imports test/), and test/, bench/ and scripts/ import it from here. Never bundled:
// scripts/build.ts reaches only what src/cli/main.ts imports.
import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  /** How long to keep checking, counted from the first check. */
  timeoutMs: number;
  /** The pause between checks; the last pause is cut short so that one check falls on the
   *  deadline rather than after it. */
  intervalMs: number;
  /** An error thrown by `check` means "not yet" (and becomes the cause of the timeout error);
   *  by default it ends the wait at once. */
  retryErrors?: boolean;
}

/**
 * Calls `check` until it returns something other than `undefined` or `false`, and returns that;
 * throws "`what`: not within `timeoutMs` ms" if no check has by the deadline.
 */
export async function pollUntil<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: PollOptions,
): Promise<T> {
  const { timeoutMs, intervalMs, retryErrors = false } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      if (!retryErrors) throw error;
      lastError = error;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new Error(
        `${what}: not within ${timeoutMs} ms`,
        lastError === undefined ? undefined : { cause: lastError },
      );
    }
    await sleep(Math.min(intervalMs, left));
  }
}
