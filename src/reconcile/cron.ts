// The production Scheduler: node-cron, one task per schedule, loaded with the first schedule, so a
// command whose PrePulls have none never starts the scheduler. node-cron reads the time zone
// through Intl (the tz database Node ships), DST included. Engine tests use a manual scheduler,
// so schedules are fired exactly when a test says.
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
    schedule(cron, onTick) {
      let stop: (() => void) | undefined;
      let stopped = false;
      loading ??= load();
      void loading.then((scheduler) => {
        if (!stopped) stop = scheduler.schedule(cron, onTick);
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
    schedule({ expression, timeZone }, onTick) {
      const task = schedule(
        expression,
        (context) => {
          const next = task.getNextRun();
          onTick({
            at: context.date.getTime(),
            ...(next !== null ? { next: next.getTime() } : {}),
          });
        },
        {
          ...(timeZone !== undefined ? { timezone: timeZone } : {}),
          // A time missed while the process could not run (a blocked event loop, a suspended
          // machine) fires once, late, when it can: the latest one missed, not each of them.
          // node-cron's own warning about the others would be a stray line among the JSON logs.
          missedExecutionTolerance: Number.POSITIVE_INFINITY,
          suppressMissedWarning: true,
        },
      );
      return () => {
        // destroy, not stop: a stopped task stays in node-cron's registry for good.
        void task.destroy();
      };
    },
  };
});
