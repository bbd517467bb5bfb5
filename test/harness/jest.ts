// Jest helpers for integration tests: a describe that runs against the shared harness, or skips
// with the reason when the harness cannot run here (never silently: the reason is in the title).
import { describe } from '@jest/globals';
import { harnessSkipReason } from './index.ts';

export function describeIntegration(name: string, body: () => void): void {
  const skip = harnessSkipReason();
  if (skip === undefined) describe(name, body);
  else describe.skip(`${name} [skipped: ${skip.split('\n')[0] ?? skip}]`, body);
}
