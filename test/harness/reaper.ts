// The harness's dead-man switch: a detached process that holds a pipe from the test process.
// When that pipe closes — the test process exited, crashed, was killed with SIGKILL or stopped
// by Ctrl-C before it could clean up — it removes everything the harness root left behind.
// Run as: node test/harness/reaper.ts <root>
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupRoot, describeLeftovers, isClean } from './cleanup.ts';

const root = process.argv[2];
if (root === undefined) {
  process.stderr.write('usage: reaper.ts <harness-root>\n');
  process.exit(2);
}

// Terminal signals go to the foreground process group; this process has its own session, but
// ignore them anyway so only the pipe decides when to act.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);

process.stdin.resume();
process.stdin.on('data', () => undefined);
process.stdin.on('close', () => {
  const leftovers = cleanupRoot(root);
  if (!isClean(leftovers)) {
    // The root is likely gone; leave a note where the leak check will see the leftovers anyway.
    try {
      appendFileSync(
        join('/tmp', 'prepull-reaper.log'),
        `${root}\n${describeLeftovers(leftovers)}\n`,
      );
    } catch {
      // nothing more to do
    }
  }
  process.exit(0);
});
