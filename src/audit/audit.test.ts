import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv04 from 'ajv-draft-04';
import { parse } from 'yaml';
import { audit, type AuditInputs, exitCode, readAll } from './audit.ts';
import { generatePrePull, prePullYaml } from './generate.ts';
import type { Source } from './manifests.ts';
import { formatReport, toSarif } from './output.ts';
import { RULES } from './rules.ts';

const TESTDATA = 'src/audit/testdata';
const B = 'b'.repeat(64);
const BROKEN = `${TESTDATA}/broken.yaml`;

function sources(dir: string): Source[] {
  return readdirSync(join(TESTDATA, dir))
    .sort()
    .map((name) => {
      const file = join(TESTDATA, dir, name);
      return { file, text: readFileSync(file, 'utf8') };
    });
}

const corpus: AuditInputs = { manifests: sources('manifests'), prePulls: sources('prepulls') };
const ROLLOUT = { Rollout: ['spec', 'workload', 'template', 'spec'] };

/** The corpus audited with every rule able to fire. */
function corpusReport(): ReturnType<typeof audit> {
  return audit(corpus, { airGapped: false, podTemplatePaths: ROLLOUT });
}

function brief(inputs: AuditInputs, airGapped = false, podTemplatePaths = {}): string[] {
  return audit(inputs, { airGapped, podTemplatePaths }).findings.map(
    (f) =>
      `${f.file.slice(TESTDATA.length + 1)}:${f.line} #${f.document} ${f.rule} ${f.object} ${f.containerType} ${f.container}`,
  );
}

describe('the audit corpus', () => {
  it('finds exactly the expected findings, PrePulls among the manifests included', () => {
    expect(brief(corpus)).toEqual([
      // nginx (Never) is listed as nginx:latest: covered, but a mutable tag.
      'manifests/helm.yaml:31 #1 mutable-never Deployment web container sidecar',
      // The CronJob's single-value In implies pool=batch; the StatefulSet's two values do not.
      'manifests/kustomize.yaml:69 #2 selector-gap StatefulSet ops/db container db',
      'manifests/list.json:17 #0 implicit-policy Pod debug/tool ephemeralContainer debugger',
      // A tag in a PrePull cannot be proven to be this digest.
      'manifests/list.json:28 #0 not-covered ReplicaSet debug/rs container app',
    ]);
  });

  it('audits a custom kind only with its pod template path, and every image when air-gapped', () => {
    expect(brief(corpus, true, ROLLOUT)).toEqual([
      'manifests/helm.yaml:31 #1 mutable-never Deployment web container sidecar',
      'manifests/kustomize.yaml:69 #2 selector-gap StatefulSet ops/db container db',
      'manifests/list.json:17 #0 not-covered Pod debug/tool ephemeralContainer debugger',
      'manifests/list.json:17 #0 implicit-policy Pod debug/tool ephemeralContainer debugger',
      'manifests/list.json:28 #0 not-covered ReplicaSet debug/rs container app',
      'manifests/rollout.yaml:12 #0 not-covered Rollout shop/canary container app',
    ]);
  });

  it('without the PrePull files, finds every Never image of the Helm chart not covered', () => {
    const helm = corpus.manifests.filter((s) => s.file.endsWith('helm.yaml'));
    expect(brief({ manifests: helm, prePulls: [] })).toEqual([
      'manifests/helm.yaml:28 #1 not-covered Deployment web container web',
      'manifests/helm.yaml:31 #1 not-covered Deployment web container sidecar',
      'manifests/helm.yaml:31 #1 mutable-never Deployment web container sidecar',
    ]);
  });

  it('reports a document that does not parse and audits the rest, then exits 2', () => {
    const report = audit(
      { manifests: [{ file: BROKEN, text: readFileSync(BROKEN, 'utf8') }], prePulls: [] },
      { airGapped: false, podTemplatePaths: {} },
    );
    expect(report.findings.map((f) => [f.rule, f.line, f.message])).toEqual([
      [
        'invalid-image',
        7,
        'repository "UPPER" in reference "Registry.local/UPPER:1" must be lowercase: write "upper"',
      ],
    ]);
    expect(report.problems).toEqual([
      expect.objectContaining({ file: `${TESTDATA}/broken.yaml`, document: 1, line: 14 }),
    ]);
    expect(exitCode(report, 'never')).toBe(2);
  });

  it('reports an invalid PrePull with file and line', () => {
    const text =
      'kind: Namespace\n---\napiVersion: prepull.dev/v1alpha1\nkind: PrePull\nmetadata:\n  name: x\n';
    const report = audit(
      { manifests: [], prePulls: [{ file: 'p.yaml', text }] },
      { airGapped: false, podTemplatePaths: {} },
    );
    expect(report.problems).toEqual([
      expect.objectContaining({ file: 'p.yaml', document: 1, line: 3 }),
    ]);
    expect(report.problems[0]?.message).toContain('invalid PrePull x');
  });

  it('exits 1 on findings at --fail-on, 0 below it', () => {
    const report = audit(corpus, { airGapped: false, podTemplatePaths: {} });
    expect([
      exitCode(report, 'error'),
      exitCode(report, 'warning'),
      exitCode(report, 'never'),
    ]).toEqual([1, 1, 0]);
    const helm = corpus.manifests.filter((s) => s.file.endsWith('helm.yaml'));
    const warnings = audit(
      { manifests: helm, prePulls: corpus.prePulls },
      { airGapped: false, podTemplatePaths: {} },
    );
    expect([exitCode(warnings, 'error'), exitCode(warnings, 'warning')]).toEqual([0, 1]);
  });
});

describe('audit output', () => {
  const report = audit(corpus, { airGapped: false, podTemplatePaths: {} });

  it('writes SARIF 2.1.0 with every rule and a location per result', () => {
    const sarif = toSarif(report, '1.2.3');
    expect(sarif.version).toBe('2.1.0');
    expect(sarif.$schema).toBe('https://json.schemastore.org/sarif-2.1.0.json');
    const [run] = sarif.runs;
    expect(run?.tool.driver.rules.map((r) => r.id)).toEqual(Object.keys(RULES));
    expect(run?.results[1]).toEqual({
      ruleId: 'selector-gap',
      level: 'error',
      message: { text: expect.stringContaining('StatefulSet ops/db container db (busybox:1.36)') },
      locations: [
        {
          physicalLocation: {
            artifactLocation: { uri: `${TESTDATA}/manifests/kustomize.yaml` },
            region: { startLine: 69 },
          },
        },
      ],
    });
  });

  it('writes JSON with findings, counts and problems, and a table with a summary line', () => {
    const json = JSON.parse(formatReport(report, 'json', '1')) as typeof report;
    expect(json.summary).toEqual({
      files: 4,
      objects: 5,
      containers: 8,
      prePulls: 3,
      errors: 2,
      warnings: 2,
      problems: 0,
    });
    const table = formatReport(report, 'table', '1').trimEnd().split('\n');
    expect(table).toHaveLength(5);
    expect(table.at(-1)).toBe(
      '2 error(s), 2 warning(s) in 8 container(s) of 5 object(s) from 4 file(s), against 3 PrePull(s)',
    );
    expect(table[3]).toContain(`sha256:${B}`);
  });
});

describe('generate', () => {
  it('lists every image once, canonical and sorted, and its output audits clean', () => {
    const { containers } = readAll(corpus, { podTemplatePaths: ROLLOUT });
    const { prePull, skipped } = generatePrePull(containers, {
      name: 'all',
      namespace: 'ops',
      nodeSelector: {},
    });
    expect(skipped).toEqual([]);
    const images = (prePull.spec as { images: { image: string }[] }).images.map((i) => i.image);
    expect(images).toEqual([...new Set(images)].sort());
    expect(images).toContain('docker.io/library/nginx:latest');
    const text = prePullYaml(prePull);
    expect(parse(text)).toEqual(prePull);
    const findings = audit(
      { manifests: corpus.manifests, prePulls: [{ file: 'generated.yaml', text }] },
      { airGapped: true, podTemplatePaths: ROLLOUT },
    ).findings.filter((f) => f.rule === 'not-covered' || f.rule === 'selector-gap');
    // The StatefulSet's gap comes from the batch PrePull in kustomize.yaml, not from this one.
    expect(findings.map((f) => f.rule)).toEqual([]);
  });

  it('with a nodeSelector, covers workloads that select those nodes', () => {
    const helm = corpus.manifests.filter((s) => s.file.endsWith('helm.yaml'));
    const { containers } = readAll({ manifests: helm, prePulls: [] }, { podTemplatePaths: {} });
    const { prePull } = generatePrePull(containers, {
      name: 'web',
      namespace: 'shop',
      nodeSelector: { pool: 'gpu' },
    });
    const report = audit(
      { manifests: helm, prePulls: [{ file: 'g.yaml', text: prePullYaml(prePull) }] },
      { airGapped: false, podTemplatePaths: {} },
    );
    expect(report.findings.map((f) => f.rule)).toEqual(['mutable-never']);
  });
});

describe('SARIF output against the SARIF 2.1.0 schema', () => {
  // The OASIS schema (2.1.0-rtm.5, JSON Schema draft-04) as Microsoft's SARIF SDK ships it, checked
  // with ajv's draft-04 class.
  function validator(): (log: unknown) => string[] {
    const schema: unknown = JSON.parse(
      readFileSync('node_modules/@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json', 'utf8'),
    );
    // unicodeRegExp off: the schema's language-tag pattern is valid only without the u flag.
    const validate = new Ajv04.default({
      strict: false,
      allErrors: true,
      unicodeRegExp: false,
    }).compile(schema as object);
    return (log) =>
      validate(log)
        ? []
        : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);
  }

  it('validates, for the corpus and for a clean run', () => {
    const errors = validator();
    const log = (report: ReturnType<typeof audit>): unknown =>
      JSON.parse(formatReport(report, 'sarif', '1.2.3'));
    expect(errors(log(corpusReport()))).toEqual([]);
    expect(
      errors(
        log(audit({ manifests: [], prePulls: [] }, { airGapped: false, podTemplatePaths: {} })),
      ),
    ).toEqual([]);
  });

  it('rejects a log that breaks the schema (the check can fail)', () => {
    const errors = validator();
    const broken = JSON.parse(formatReport(corpusReport(), 'sarif', '1.2.3')) as {
      runs: { results: { level: string }[] }[];
    };
    broken.runs[0]!.results[0]!.level = 'fatal';
    expect(errors(broken).join('\n')).toContain('/runs/0/results/0/level');
  });
});
