// `prepull audit --resolve` against the harness's real registry: a PrePull tag covers a workload
// that pins the digest the registry gives the tag, and once the tag moves the workload is
// digest-mismatch. The real CLI runs as a subprocess (the built dist, as users run it).
import { beforeAll, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileLayer, buildImage } from '../harness/images.ts';
import { type HarnessInfo, pushImage, sharedHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { PREPULL_BIN, assertBuildFresh } from '../harness/sync-cli.ts';

function audit(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PREPULL_BIN, 'audit', ...args], (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

describeIntegration('prepull audit --resolve', () => {
  let h: HarnessInfo;
  beforeAll(() => {
    assertBuildFresh();
    h = sharedHarness();
  });

  it('covers a pinned digest by the tag that names it, and reports the tag once it moves', async () => {
    const plain = h.registries.plain!;
    const repo = uniqueName('audit');
    const image = (n: string) => buildImage({ layers: [fileLayer({ '/v': n })] });
    const { digest } = await pushImage(plain, repo, 'v1', image('one'));
    const dir = mkdtempSync(join(tmpdir(), 'prepull-audit-'));
    const workload = join(dir, 'pod.yaml');
    const prePulls = join(dir, 'prepull.yaml');
    writeFileSync(
      workload,
      [
        'apiVersion: v1',
        'kind: Pod',
        'metadata: {name: app, namespace: shop}',
        'spec:',
        '  containers:',
        `  - {name: app, image: "${plain.host}/${repo}@${digest}", imagePullPolicy: Never}`,
      ].join('\n'),
    );
    writePrePullFile(prePulls, `${plain.host}/${repo}:v1`);
    const args = ['-f', workload, '--prepulls', prePulls, '-o', 'json'];

    const without = await audit(args);
    expect(without.code).toBe(1);
    expect(without.stdout).toContain('run with --resolve');

    const covered = await audit([...args, '--resolve', '--insecure-registry', plain.host]);
    expect({ code: covered.code, stderr: covered.stderr }).toEqual({ code: 0, stderr: '' });

    await pushImage(plain, repo, 'v1', image('two'));
    const moved = await audit([...args, '--resolve', '--insecure-registry', plain.host]);
    expect(moved.code).toBe(1);
    const report = JSON.parse(moved.stdout) as { findings: { rule: string; message: string }[] };
    expect(report.findings.map((f) => f.rule)).toEqual(['digest-mismatch']);
    expect(report.findings[0]?.message).toContain(`the workload pins ${digest}`);
  });
});

function writePrePullFile(path: string, image: string): void {
  writeFileSync(
    path,
    [
      'apiVersion: prepull.dev/v1alpha1',
      'kind: PrePull',
      'metadata: {name: p, namespace: shop}',
      'spec:',
      '  images:',
      `  - image: ${image}`,
    ].join('\n'),
  );
}
