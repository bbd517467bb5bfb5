// Jest helpers for integration tests: a describe that runs against the shared harness, or skips
// with the reason when the harness cannot run here (never silently: the reason is in the title).
import { describe, jest } from '@jest/globals';
import { harnessSkipReason } from './index.ts';

/** Real pulls and daemons take longer than Jest's 5 s default; each test still has a bound. */
export const INTEGRATION_TIMEOUT_MS = 180_000;

export function describeIntegration(name: string, body: () => void): void {
  jest.setTimeout(INTEGRATION_TIMEOUT_MS);
  const skip = harnessSkipReason();
  if (skip === undefined) describe(name, body);
  else describe.skip(`${name} [skipped: ${skip.split('\n')[0] ?? skip}]`, body);
}
