// promtool (Debian's `prometheus` package, a harness prerequisite) for the monitoring tests:
// running it, and a describe that needs it. Without promtool the suite skips with the reason in
// its title, except under CI=true, where a missing promtool fails the run instead.
import { describe, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { which } from '../harness/prerequisites.ts';

export interface PromtoolResult {
  code: number;
  output: string;
}

/** Runs promtool with `args` in `cwd`; resolves with its exit code and output, whatever they are. */
export function promtool(args: readonly string[], cwd?: string): Promise<PromtoolResult> {
  const binary = which('promtool');
  if (binary === undefined) return Promise.reject(new Error('promtool is not installed'));
  return new Promise((resolve, reject) => {
    execFile(binary, [...args], { cwd }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      if (code === -1) reject(error ?? new Error('promtool did not start'));
      else resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

/** A rule file's content: `groups` as Prometheus reads them (a PrometheusRule's spec). */
export function ruleFile(groups: unknown): string {
  return stringify({ groups }, { lineWidth: 0 });
}

/** `promtool check rules` on the given groups, written to a temporary file. */
export async function checkRules(groups: unknown): Promise<PromtoolResult> {
  const dir = mkdtempSync(join(tmpdir(), 'prepull-rules-'));
  try {
    writeFileSync(join(dir, 'rules.yaml'), ruleFile(groups));
    return await promtool(['check', 'rules', 'rules.yaml'], dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function describePromtool(name: string, body: () => void): void {
  if (which('promtool') !== undefined) {
    describe(name, body);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('has promtool', () => {
        throw new Error(
          'promtool is missing: install Debian package prometheus (node test/harness/prerequisites.ts --install)',
        );
      });
    });
  } else {
    describe.skip(`${name} [skipped: promtool missing, Debian package prometheus]`, body);
  }
}
