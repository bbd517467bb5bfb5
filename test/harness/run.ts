// Starts the harness on its own and keeps it up until Ctrl-C or SIGTERM, printing how to reach
// each component — for poking at the real components by hand: `npm run harness`.
import { startHarness } from './index.ts';

const harness = await startHarness({ log: (line) => process.stderr.write(`[harness] ${line}\n`) });
process.stdout.write(`${JSON.stringify(harness.info, null, 2)}\n`);
process.stderr.write('[harness] up; Ctrl-C stops it\n');
const stop = (): void => {
  harness.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exit(1);
    },
  );
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
setInterval(() => undefined, 1 << 30);
