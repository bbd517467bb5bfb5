// The production Scheduler: node-cron, one task per (expression, listener), loaded with the first
// schedule, so a command whose PrePulls have none never loads the scheduler. Tests use a manual
// scheduler instead, so schedules are fired exactly when a test says.
import type { Scheduler } from './types.ts';

/**
 * A Scheduler that loads the real one with the first schedule() and hands it every schedule once
 * loaded. schedule() stays synchronous: the task starts when the load is done (a tick due in those
 * few milliseconds is missed, as if it had been scheduled that much later), and a stop called
 * before then cancels it. A load that fails (a broken build) is an unhandled rejection, which
 * ends the process, as the failed static import it replaces would have.
 */
export function lazyScheduler(load: () => Promise<Scheduler>): Scheduler {
  let loading: Promise<Scheduler> | undefined;
  return {
    schedule(expression, onTick) {
      let stop: (() => void) | undefined;
      let stopped = false;
      loading ??= load();
      void loading.then((scheduler) => {
        if (!stopped) stop = scheduler.schedule(expression, onTick);
      });
      return () => {
        stopped = true;
        stop?.();
      };
    },
  };
}

export const cronScheduler: Scheduler = lazyScheduler(async () => {
  const { schedule } = await import('node-cron');
  return {
    schedule(expression, onTick) {
      const task = schedule(expression, onTick, { noOverlap: true });
      return () => {
        void task.stop();
      };
    },
  };
});
