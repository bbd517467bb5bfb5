// `prepull audit` on a large rendered chart (issue 18): 10,000 manifest documents checked against
// PrePulls, timed from spawn to exit with its peak memory, against parsing the same YAML alone.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Benchmark, type Figure, ratios, summarize } from './lib.ts';
import { PREPULL_BIN, cliBuild, runNode } from './sync-support.ts';

const PEAK_RSS = new URL('peak-rss.ts', import.meta.url).pathname;
const YAML_FLOOR = new URL('yaml-floor.ts', import.meta.url).pathname;
const IMAGES = 500;

/** The image the i-th workload runs: 500 repositories, every fifth pinned by digest. */
function imageOf(i: number): string {
  const n = i % IMAGES;
  const digest = `sha256:${n.toString(16).padStart(64, '0')}`;
  return n % 5 === 0
    ? `registry.local:5000/team/app-${n}@${digest}`
    : `registry.local:5000/team/app-${n}:1.${n}`;
}

/** One workload document; the kinds a Helm chart renders, each with its pod template. */
function workload(i: number): string {
  const image = imageOf(i);
  const container = [
    `      - name: main`,
    `        image: ${image}`,
    ...(i % 3 === 0 ? [] : [`        imagePullPolicy: ${i % 3 === 1 ? 'Never' : 'IfNotPresent'}`]),
    `        resources: {requests: {cpu: 10m, memory: 16Mi}}`,
  ];
  const spec = [
    `      nodeSelector: {pool: edge}`,
    `      initContainers:`,
    `      - name: init`,
    `        image: ${imageOf(i + 7)}`,
    `        imagePullPolicy: Never`,
    `      containers:`,
    ...container,
  ];
  const kind = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'][i % 4]!;
  return [
    `# Source: chart/templates/workload-${i}.yaml`,
    `apiVersion: ${kind === 'Job' ? 'batch/v1' : 'apps/v1'}`,
    `kind: ${kind}`,
    `metadata: {name: w-${i}, namespace: shop, labels: {app: w-${i}}}`,
    `spec:`,
    `  template:`,
    `    metadata: {labels: {app: w-${i}}}`,
    `    spec:`,
    ...spec.map((line) => `  ${line}`),
  ].join('\n');
}

/** PrePulls covering all but every tenth repository, on the nodes the workloads select. */
function prePulls(): string {
  const images: string[] = [];
  for (let n = 0; n < IMAGES; n++) if (n % 10 !== 9) images.push(imageOf(n));
  const docs: string[] = [];
  for (let start = 0; start < images.length; start += 200) {
    docs.push(
      [
        'apiVersion: prepull.dev/v1alpha1',
        'kind: PrePull',
        `metadata: {name: edge-${start / 200}, namespace: shop}`,
        'spec:',
        '  nodeSelector: {pool: edge}',
        '  images:',
        ...images.slice(start, start + 200).map((image) => `  - image: ${image}`),
      ].join('\n'),
    );
  }
  return docs.join('\n---\n');
}

const benchmark: Benchmark = {
  name: 'audit',
  area: 'Audit',
  method:
    'Writes 10,000 manifest documents (--quick: 1,000) in one multi-document YAML file, shaped ' +
    'as `helm template` renders them (a `# Source:` comment each; Deployments, StatefulSets, ' +
    'DaemonSets and Jobs in turn, each with a nodeSelector, an init container with ' +
    '`imagePullPolicy: Never` and a main container whose policy is Never, IfNotPresent or left ' +
    'implicit; 500 repositories on a registry with a port, every fifth pinned by digest), and ' +
    'PrePulls (200 images each) covering nine repositories in ten on the same nodes. Each round ' +
    'times `node bin/prepull.js audit -f FILE --prepulls FILE --output json --fail-on never` as ' +
    'a subprocess, from spawn to exit, and reads its peak resident memory (getrusage maxrss, ' +
    'written at exit by a preloaded bench/peak-rss.ts); every run must report the expected ' +
    'not-covered findings. The baseline, in the same round: bench/yaml-floor.ts, which reads ' +
    'the same file and parses every document with js-yaml (the parser the audit uses) and does nothing else. ' +
    '5 rounds; --quick: 2.',
  async run(ctx) {
    const documents = ctx.quick ? 1_000 : 10_000;
    const rounds = ctx.quick ? 2 : 5;
    ctx.log(`CLI from ${cliBuild()}`);
    const dir = mkdtempSync(join(tmpdir(), 'prepull-bench-audit-'));
    try {
      const manifests = join(dir, 'rendered.yaml');
      const pp = join(dir, 'prepulls.yaml');
      const docs: string[] = [];
      for (let i = 0; i < documents; i++) docs.push(workload(i));
      writeFileSync(manifests, `${docs.join('\n---\n')}\n`);
      writeFileSync(pp, `${prePulls()}\n`);
      const rssFile = join(dir, 'rss');
      const peak = (): number => Number(readFileSync(rssFile, 'utf8')) / 1024;

      const auditMs: number[] = [];
      const auditRss: number[] = [];
      const floorMs: number[] = [];
      const floorRss: number[] = [];
      process.env.PEAK_RSS_FILE = rssFile;
      try {
        for (let round = 0; round < rounds + 1; round++) {
          const audit = await runNode(
            [
              '--import',
              PEAK_RSS,
              PREPULL_BIN,
              'audit',
              '-f',
              manifests,
              '--prepulls',
              pp,
              '--output',
              'json',
              '--fail-on',
              'never',
            ],
            120_000,
            'prepull audit',
          );
          if (audit.code !== 0)
            throw new Error(`prepull audit exited ${audit.code}: ${audit.stderr.slice(-2000)}`);
          const result = JSON.parse(audit.stdout) as { findings: { rule: string }[] };
          const uncovered = result.findings.filter((f) => f.rule === 'not-covered').length;
          if (uncovered === 0) throw new Error('prepull audit found no not-covered image');
          const auditPeak = peak();
          const floor = await runNode(
            ['--import', PEAK_RSS, YAML_FLOOR, manifests],
            120_000,
            'yaml floor',
          );
          if (floor.code !== 0 || Number(floor.stdout) !== documents) {
            throw new Error(`yaml floor exited ${floor.code}, printed ${floor.stdout}`);
          }
          if (round === 0) continue; // warm-up: page cache, Node's compile cache
          auditMs.push(audit.ms);
          auditRss.push(auditPeak);
          floorMs.push(floor.ms);
          floorRss.push(peak());
        }
      } finally {
        delete process.env.PEAK_RSS_FILE;
      }
      const count = documents.toLocaleString('en-US');
      const figures: Figure[] = [
        {
          id: 'audit.seconds',
          label: `\`prepull audit\` of ${count} documents, spawn to exit`,
          unit: 's',
          ...summarize(auditMs.map((ms) => ms / 1000)),
          ...(ctx.quick ? {} : { goal: { op: '<=', value: 2, source: 'issue 18' } as const }),
        },
        {
          id: 'audit.peakRss',
          label: `peak RSS of \`prepull audit\`, ${count} documents`,
          unit: 'MiB',
          ...summarize(auditRss),
          ...(ctx.quick ? {} : { goal: { op: '<=', value: 200, source: 'issue 18' } as const }),
        },
        {
          id: 'audit.vsYaml',
          label: '`prepull audit` ÷ parsing the same YAML alone',
          unit: '×',
          ...summarize(ratios(auditMs, floorMs)),
          baseline: 'bench/yaml-floor.ts on the same file, spawn to exit, same round',
        },
        {
          id: 'audit.yaml.seconds',
          label: `parsing ${count} documents with js-yaml alone, spawn to exit`,
          unit: 's',
          ...summarize(floorMs.map((ms) => ms / 1000)),
        },
        {
          id: 'audit.yaml.peakRss',
          label: `peak RSS of parsing ${count} documents alone`,
          unit: 'MiB',
          ...summarize(floorRss),
        },
      ];
      return figures;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default benchmark;
