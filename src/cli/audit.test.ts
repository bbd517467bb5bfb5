import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { AUDIT_USAGE, GENERATE_USAGE } from '../config/audit.ts';
import { runAudit, runGenerate } from './audit.ts';
import { HELP, main } from './main.ts';

const T = 'src/audit/testdata';

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('prepull audit', () => {
  it('is listed in the help, and prints its own with exit 0', async () => {
    expect(HELP).toContain('audit');
    expect(HELP).toContain('generate');
    expect(await cli(['audit', '--help'])).toEqual({ code: 0, out: AUDIT_USAGE, err: '' });
    expect(await cli(['generate', '-h'])).toEqual({ code: 0, out: GENERATE_USAGE, err: '' });
  });

  it('exits 2 on a usage error', async () => {
    const result = await cli(['audit', '--output', 'xml', '-f', T]);
    expect(result.code).toBe(2);
    expect(result.err).toContain('--output must be one of table, json, sarif');
    expect((await cli(['audit'])).err).toContain(
      '-f FILE|DIR|- (or --kubeconfig FILE, to audit a cluster) is required',
    );
  });

  it('exits 1 with findings at --fail-on, 0 with --fail-on never (table)', async () => {
    const args = ['audit', '-f', `${T}/manifests`, '--prepulls', `${T}/prepulls`];
    const failing = await cli(args);
    expect(failing.code).toBe(1);
    expect(failing.out).toContain(`${T}/manifests/kustomize.yaml:69\terror\tselector-gap`);
    expect((await cli([...args, '--fail-on', 'never'])).code).toBe(0);
  });

  it('exits 0 when clean, and writes JSON', async () => {
    const result = await cli([
      'audit',
      '-f',
      `${T}/manifests/helm.yaml`,
      '--prepulls',
      `${T}/prepulls`,
      '-o',
      'json',
    ]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.out) as { summary: { warnings: number; errors: number } };
    expect(report.summary).toMatchObject({ errors: 0, warnings: 1 });
  });

  it('writes SARIF naming the package version', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const result = await cli(['audit', '-f', `${T}/manifests`, '-o', 'sarif']);
    const sarif = JSON.parse(result.out) as {
      runs: { tool: { driver: { version: string } }; results: unknown[] }[];
    };
    expect(sarif.runs[0]?.tool.driver.version).toBe(pkg.version);
    expect(sarif.runs[0]?.results.length).toBeGreaterThan(0);
  });

  it('reports unreadable input on stdout and stderr, audits the rest, and exits 2', async () => {
    const result = await cli(['audit', '-f', `${T}/broken.yaml`, '-f', 'no-such.yaml']);
    expect(result.code).toBe(2);
    expect(result.out).toContain('invalid-image');
    expect(result.err).toContain('no-such.yaml: no such file or directory');
    expect(result.err).toContain(`${T}/broken.yaml:14 (document 1): not valid YAML or JSON`);
  });

  it('reads standard input for -f -', async () => {
    let out = '';
    const stdin = readFileSync(`${T}/manifests/helm.yaml`, 'utf8');
    const read = (path: string | 0): string => (path === 0 ? stdin : readFileSync(path, 'utf8'));
    const io = { out: (t: string) => (out += t), err: () => undefined };
    expect(await runAudit(['-f', '-'], io, '0.0.0', read)).toBe(1);
    expect(out).toContain('-:28\terror\tnot-covered');
  });
});

describe('prepull generate', () => {
  it('writes one PrePull covering the manifests', async () => {
    const result = await cli([
      'generate',
      '-f',
      `${T}/manifests/helm.yaml`,
      '--name',
      'web',
      '--namespace',
      'shop',
      '--node-selector',
      'pool=gpu',
    ]);
    expect(result).toMatchObject({ code: 0, err: '' });
    expect(parse(result.out)).toEqual({
      apiVersion: 'prepull.dev/v1alpha1',
      kind: 'PrePull',
      metadata: { name: 'web', namespace: 'shop' },
      spec: {
        images: [
          { image: 'docker.io/library/nginx:latest' },
          { image: 'registry.local:5000/team/app:1' },
        ],
        nodeSelector: { pool: 'gpu' },
      },
    });
  });

  it('requires a name and namespace and checks the selector', async () => {
    expect((await cli(['generate', '-f', T, '--namespace', 'x'])).err).toContain(
      '--name is required',
    );
    const bad = await cli([
      'generate',
      '-f',
      T,
      '--name',
      'a',
      '--namespace',
      'b',
      '--node-selector',
      'x',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--node-selector: "x" is not key=value');
  });

  it('skips an image that does not parse, saying so', () => {
    let out = '';
    let err = '';
    const io = { out: (t: string) => (out += t), err: (t: string) => (err += t) };
    const args = [
      '-f',
      `${T}/manifests`,
      '-f',
      `${T}/broken.yaml`,
      '--name',
      'a',
      '--namespace',
      'b',
    ];
    expect(runGenerate(args, io)).toBe(2);
    expect(err).toContain('skipped');
    expect(err).toContain('must be lowercase');
    expect(out).toContain('docker.io/library/busybox:1.36');
  });
});
