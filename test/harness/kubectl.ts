// The real `kubectl` binary for integration tests, run against the Kubernetes API test server
// (test/kube-api-server/) as an operator would run it: its own HOME and cache directory, a
// kubeconfig the server wrote, and its table output read back by column. And its kustomize,
// which renders deploy/ for the unit tests of test/deploy/ without a cluster.
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const KUBECTL = process.env.KUBECTL ?? 'kubectl';

export interface KubectlRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Why kubectl cannot run here, or undefined when it can. */
export function kubectlMissing(): string | undefined {
  const probe = spawnSync(KUBECTL, ['version', '--client', '-o', 'json'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    return `no kubectl (${KUBECTL}) to run: ${probe.error?.message ?? probe.stderr.trim()}`;
  }
  return undefined;
}

/** Runs kubectl with `kubeconfig`; `home` holds its HOME and cache (created if absent). */
export function kubectl(
  options: { kubeconfig: string; home: string; timeoutMs?: number },
  ...args: string[]
): Promise<KubectlRun> {
  mkdirSync(options.home, { recursive: true });
  return new Promise((resolve) => {
    execFile(
      KUBECTL,
      ['--kubeconfig', options.kubeconfig, '--cache-dir', join(options.home, 'cache'), ...args],
      {
        encoding: 'utf8',
        env: { ...process.env, HOME: options.home },
        timeout: options.timeoutMs ?? 30_000,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `kubectl kustomize DIR`: the YAML it renders on stdout, or its error; needs no cluster. */
export function kustomize(dir: string, timeoutMs = 30_000): Promise<KubectlRun> {
  return new Promise((resolve) => {
    execFile(
      KUBECTL,
      ['kustomize', dir],
      { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr: error !== null && stderr === '' ? error.message : stderr });
      },
    );
  });
}

/** kubectl's table output as records keyed by header, cut at the header's column starts. */
export function parseTable(text: string): { headers: string[]; rows: Record<string, string>[] } {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0] ?? '';
  const starts = [...header.matchAll(/\S+(?: \S+)*/g)].map((m) => m.index);
  const headers = starts.map((s, i) => header.slice(s, starts[i + 1]).trim());
  const rows = lines.slice(1).map((line) => {
    const row: Record<string, string> = {};
    headers.forEach((h, i) => (row[h] = line.slice(starts[i], starts[i + 1]).trim()));
    return row;
  });
  return { headers, rows };
}
