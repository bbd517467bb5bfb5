// --resolve: a PrePull tag covers a workload's digest when the registry says the tag names it now;
// a tag that names other content is digest-mismatch; a registry that cannot answer leaves the
// image not-covered with its reason. Only the tags that could matter are asked about, once each.
import { describe, expect, it } from '@jest/globals';
import { parseReference } from '../image/reference.ts';
import { type AuditInputs, audit, readAll, reportOn, resolutions } from './audit.ts';
import type { TagResolver } from './resolve.ts';
import { resolveTags } from './resolve.ts';
import { runAudit } from '../cli/audit.ts';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

function prePull(images: string[]): string {
  return JSON.stringify({
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { name: 'p', namespace: 'ns' },
    spec: { images: images.map((image) => ({ image })) },
  });
}

function pod(images: string[]): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'x', namespace: 'ns' },
    spec: {
      containers: images.map((image, i) => ({ name: `c${i}`, image, imagePullPolicy: 'Never' })),
    },
  });
}

function inputs(workload: string[], listed: string[]): AuditInputs {
  return {
    manifests: [{ file: 'w.yaml', text: pod(workload) }],
    prePulls: [{ file: 'p.yaml', text: prePull(listed) }],
  };
}

/** A registry that knows `tags` (canonical → digest) and notes every question. */
function registry(tags: Record<string, string>): TagResolver & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    resolve(ref) {
      asked.push(ref.canonical);
      const digest = tags[ref.canonical];
      return digest === undefined
        ? Promise.reject(new Error(`manifest unknown: ${ref.familiar} (ERR_IMAGE_NOT_FOUND)`))
        : Promise.resolve({ digest });
    },
  };
}

async function findings(workload: string[], listed: string[], tags: Record<string, string>) {
  const given = inputs(workload, listed);
  const resolver = registry(tags);
  const manifests = readAll(given, { podTemplatePaths: {} });
  const resolved = await resolutions(manifests, resolver);
  const report = reportOn(manifests, { airGapped: false, resolved }, { files: 1 });
  return { findings: report.findings, asked: resolver.asked };
}

describe('--resolve', () => {
  it('takes a PrePull tag as covering the digest it resolves to', async () => {
    const { findings: found, asked } = await findings([`r.test/app@${A}`], ['r.test/app:1'], {
      'r.test/app:1': A,
    });
    expect(found).toEqual([]);
    expect(asked).toEqual(['r.test/app:1']);
  });

  it('reports digest-mismatch when the tag names other content, with both digests', async () => {
    const { findings: found } = await findings([`r.test/app@${A}`], ['r.test/app:1'], {
      'r.test/app:1': B,
    });
    expect(found.map((f) => f.rule)).toEqual(['digest-mismatch']);
    expect(found[0]?.level).toBe('error');
    expect(found[0]?.message).toBe(
      `the workload pins ${A}, but r.test/app:1 (PrePull ns/p) resolves to ${B}: the nodes will hold other content than the workload names`,
    );
  });

  it('keeps not-covered, with the registry’s reason, when the tag cannot be resolved', async () => {
    const { findings: found } = await findings([`r.test/app@${A}`], ['r.test/app:1'], {});
    expect(found.map((f) => f.rule)).toEqual(['not-covered']);
    expect(found[0]?.message).toBe(
      `no PrePull lists r.test/app@${A}; the registry could not say what r.test/app:1: manifest unknown: r.test/app:1 (ERR_IMAGE_NOT_FOUND)`,
    );
  });

  it('asks only about tags of repositories a workload pins by digest, each once', async () => {
    const { asked } = await findings(
      [`r.test/app@${A}`, `r.test/app@${B}`, 'r.test/other:2'],
      ['r.test/app:1', 'r.test/app:2', 'r.test/other:2', `r.test/app@${A}`],
      { 'r.test/app:1': A, 'r.test/app:2': B },
    );
    expect(asked.sort()).toEqual(['r.test/app:1', 'r.test/app:2']);
  });

  it('without --resolve says the registry was not asked', () => {
    const report = audit(inputs([`r.test/app@${A}`], ['r.test/app:1']), {
      airGapped: false,
      podTemplatePaths: {},
    });
    expect(report.findings[0]?.message).toContain(
      'cannot be proven without the registry (run with --resolve)',
    );
  });

  it('resolves at most `concurrency` tags at a time', async () => {
    let running = 0;
    let most = 0;
    const slow: TagResolver = {
      async resolve() {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return { digest: A };
      },
    };
    const tags = Array.from({ length: 10 }, (_, i) => parseReference(`r.test/app:${i}`));
    const answers = await resolveTags(tags, slow, 3);
    expect(answers.size).toBe(10);
    expect(most).toBe(3);
  });

  it('is wired into the command: --resolve asks the factory’s registry and closes it', async () => {
    const text = `${pod([`r.test/app@${A}`])}\n---\n${prePull(['r.test/app:1'])}`;
    const resolver = registry({ 'r.test/app:1': B });
    let closed = false;
    let out = '';
    const code = await runAudit(
      ['-f', '-', '--resolve', '-o', 'json', '--insecure-registry', 'r.test'],
      { out: (t) => (out += t), err: () => undefined },
      '0.0.0',
      () => text,
      (config) => {
        expect(config.insecureRegistries).toEqual(['r.test']);
        return Promise.resolve({
          resolve: (ref) => resolver.resolve(ref),
          close: () => Promise.resolve(void (closed = true)),
        });
      },
    );
    expect(code).toBe(1);
    expect(
      (JSON.parse(out) as { findings: { rule: string }[] }).findings.map((f) => f.rule),
    ).toEqual(['digest-mismatch']);
    expect(closed).toBe(true);
  });

  it('refuses registry flags without --resolve', async () => {
    let err = '';
    const { main } = await import('../cli/main.ts');
    const code = await main(['audit', '-f', '-', '--insecure-registry', 'r.test'], {
      out: () => undefined,
      err: (t) => (err += t),
    });
    expect(code).toBe(2);
    expect(err).toContain(
      '--docker-config, --insecure-registry and --registry-ca go with --resolve',
    );
  });
});
