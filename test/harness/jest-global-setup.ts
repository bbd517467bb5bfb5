// Jest globalSetup for integration tests: checks (and, as root, installs) the harness's
// prerequisites, starts one shared harness for the run and publishes it to the test files.
// With CI=true a missing prerequisite fails the run; elsewhere integration tests skip and say why.
import { type Harness, ensurePrerequisites, publishHarness, startHarness } from './index.ts';

declare global {
  var prepullHarness: Harness | undefined;
}

export default async function setup(): Promise<void> {
  const log = (line: string): void => {
    process.stderr.write(`[harness] ${line}\n`);
  };
  const availability = ensurePrerequisites(log);
  if (!availability.ok) {
    if (process.env.CI === 'true') {
      throw new Error(
        `integration tests cannot run (CI=true, so this fails the run):\n${availability.reason}`,
      );
    }
    log(`SKIPPING integration tests: ${availability.reason}`);
    publishHarness({ skip: availability.reason });
    return;
  }
  const started = Date.now();
  const harness = await startHarness({ log });
  log(`ready in ${Date.now() - started} ms under ${harness.root}`);
  globalThis.prepullHarness = harness;
  publishHarness(harness.info);
}
