// The production Scheduler: node-cron, one task per (expression, listener). Tests use a manual
// scheduler instead, so schedules are fired exactly when a test says.
import { schedule as cronSchedule } from 'node-cron';
import type { Scheduler } from './types.ts';

export const cronScheduler: Scheduler = {
  schedule(expression, onTick) {
    const task = cronSchedule(expression, onTick, { noOverlap: true });
    return () => {
      void task.stop();
    };
  },
};
