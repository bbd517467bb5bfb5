// deploy/monitoring/prometheusrule.yaml: the alerts issue 19 asks for, each with a severity, a
// summary, a description and a runbook section in docs/operations.md, selecting the jobs the
// shipped monitors produce; promtool accepts the groups (`check rules`) and the rule tests in
// alerts.promtest.yaml and pulls.promtest.yaml fire every alert and leave each silent in some
// case (`test rules`).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { IPrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import type { IPodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import type { IService } from 'kubernetes-models/v1/Service';
import { ROOT, readManifests } from './manifests.ts';
import { checkRules, describePromtool, promtool, ruleFile } from './promtool.ts';

const RUNBOOKS = 'https://github.com/prepull/prepull/blob/main/docs/operations.md';
const RULE_TESTS = ['alerts.promtest.yaml', 'pulls.promtest.yaml'];
/** The name the rule tests' rule_files give the PrometheusRule's groups. */
const RULES_NAME = 'prometheusrule.rules.yaml';

const HERE = join(ROOT, 'test/deploy');
const manifests = readManifests();

interface RuleTests {
  rule_files: string[];
  tests: { name: string; alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
}

function readRuleTests(name: string): RuleTests {
  return parse(readFileSync(join(HERE, name), 'utf8')) as RuleTests;
}

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the model type it reads the document as
function only<T>(kind: string): T {
  const found = manifests.filter((m) => m.doc.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0]!.doc as T;
}

const rule = only<IPrometheusRule>('PrometheusRule');
const groups = rule.spec.groups ?? [];
const rules = groups.flatMap((g) => g.rules ?? []);
const alerts = rules.filter((r) => r.alert !== undefined);

/** GitHub's anchors for the headings of a Markdown file. */
export function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const line of markdown.split('\n')) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line);
    if (heading === null) continue;
    out.add(
      heading[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    );
  }
  return out;
}

/** The job label each shipped monitor gives its targets (see the operator's defaults). */
function shippedJobs(): string[] {
  // A ServiceMonitor's job is the name of the Service it scrapes.
  const monitor = only<IServiceMonitor>('ServiceMonitor');
  const selector = monitor.spec.selector.matchLabels ?? {};
  const services = manifests
    .filter((m) => m.doc.kind === 'Service')
    .map((m) => m.doc as unknown as IService)
    .filter((s) => Object.entries(selector).every(([k, v]) => s.metadata?.labels?.[k] === v));
  // A PodMonitor's is "<namespace>/<name>", unless a relabeling sets it.
  const pods = only<IPodMonitor>('PodMonitor');
  const relabeled = (pods.spec.podMetricsEndpoints ?? [])
    .flatMap((e) => e.relabelings ?? [])
    .filter((r) => r.targetLabel === 'job' && r.sourceLabels === undefined)
    .map((r) => r.replacement ?? '');
  const podJob =
    relabeled.at(-1) ?? `${pods.metadata?.namespace ?? ''}/${pods.metadata?.name ?? ''}`;
  return [...services.map((s) => s.metadata?.name ?? ''), podJob];
}

/** The values `job` is matched against in a PromQL expression (regex alternatives split). */
function jobMatchers(expr: string): string[] {
  return [...expr.matchAll(/\bjob\s*(=~|=|!=|!~)\s*"([^"]*)"/g)].flatMap((m) =>
    m[1] === '=~' ? m[2]!.split('|') : [m[2]!],
  );
}

describe('the PrometheusRule', () => {
  it('holds the alerts issue 19 asks for', () => {
    expect(alerts.map((a) => a.alert)).toEqual([
      'PrepullImagesFailed',
      'PrepullImagesDrift',
      'PrepullSyncStalled',
      'PrepullPullsSlow',
      'PrepullAgentDown',
      'PrepullAgentsAbsent',
      'PrepullRuntimeDown',
      'PrepullStatusWritesFailing',
      'PrepullAgentWatchRestarts',
      'PrepullControllerNoLeader',
      'PrepullControllerDown',
      'PrepullControllerStatusWritesFailing',
      'PrepullControllerNodePatchesFailing',
      'PrepullControllerWatchRestarts',
    ]);
    expect(rules.filter((r) => r.record !== undefined).map((r) => r.record)).toEqual([
      'namespace_job_le:prepull_pull_duration_seconds_bucket:rate5m',
    ]);
  });

  it('gives every alert a severity, a summary, a description and a runbook in docs/operations.md', () => {
    const sections = anchors(readFileSync(join(ROOT, 'docs/operations.md'), 'utf8'));
    for (const alert of alerts) {
      const annotations = alert.annotations ?? {};
      expect({
        alert: alert.alert,
        severity: alert.labels?.severity,
        annotations: Object.keys(annotations).sort(),
        runbook: annotations.runbook_url,
        documented: sections.has(alert.alert!.toLowerCase()),
        for: typeof alert.for,
      }).toEqual({
        alert: alert.alert,
        severity: expect.stringMatching(/^(critical|warning)$/),
        annotations: ['description', 'runbook_url', 'summary'],
        runbook: `${RUNBOOKS}#${alert.alert!.toLowerCase()}`,
        documented: true,
        for: 'string',
      });
    }
  });

  it('selects the jobs the shipped monitors scrape, and no other', () => {
    const jobs = shippedJobs();
    expect(jobs).toEqual(['prepull-agent-metrics', 'prepull-controller']);
    const recorded = rules.flatMap((r) => (r.record !== undefined ? [r.record] : []));
    for (const r of rules) {
      const name = r.alert ?? r.record;
      const expr = String(r.expr);
      const used = jobMatchers(expr);
      // A rule selects a job, or reads what a recording rule of these groups selected.
      const selects = used.length > 0 || recorded.some((rec) => expr.includes(rec));
      expect({ rule: name, selects }).toEqual({ rule: name, selects: true });
      for (const job of used) {
        expect({ rule: name, job, shipped: jobs.includes(job) }).toEqual({
          rule: name,
          job,
          shipped: true,
        });
      }
    }
  });
});

describePromtool('promtool', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'prepull-alerts-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('check rules accepts the rule groups', async () => {
    const result = await checkRules(groups);
    expect(result.output).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(result.code).toBe(0);
  });

  it('check rules refuses a rule that does not parse (so the check above can fail)', async () => {
    const broken = structuredClone(groups);
    const first = broken[1]!.rules![0]!;
    first.expr = `${String(first.expr)} and on (`;
    const result = await checkRules(broken);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/parse error/);
  });

  it('the rule tests make every alert fire in some case and stay silent in another', () => {
    const cases = RULE_TESTS.flatMap((name) => {
      const file = readRuleTests(name);
      expect({ name, ruleFiles: file.rule_files }).toEqual({ name, ruleFiles: [RULES_NAME] });
      return file.tests.flatMap((t) => t.alert_rule_test ?? []);
    });
    const names = alerts.map((a) => a.alert!);
    for (const c of cases) expect(names).toContain(c.alertname);
    for (const name of names) {
      const mine = cases.filter((c) => c.alertname === name);
      expect({
        alert: name,
        fires: mine.some((c) => (c.exp_alerts ?? []).length > 0),
        silent: mine.some((c) => (c.exp_alerts ?? []).length === 0),
      }).toEqual({ alert: name, fires: true, silent: true });
    }
  });

  it('test rules passes every case', async () => {
    writeFileSync(join(dir, RULES_NAME), ruleFile(groups));
    for (const name of RULE_TESTS) copyFileSync(join(HERE, name), join(dir, name));
    const result = await promtool(['test', 'rules', ...RULE_TESTS], dir);
    expect(result.output.match(/SUCCESS/g)).toHaveLength(RULE_TESTS.length);
    expect(result.code).toBe(0);
  }, 120_000);

  it('test rules fails when an alert does not say what a case expects', async () => {
    // The same rules with PrepullImagesFailed's threshold raised: its firing case must fail.
    const changed = structuredClone(groups) as { rules: { alert?: string; expr: string }[] }[];
    const failed = changed.flatMap((g) => g.rules).find((r) => r.alert === 'PrepullImagesFailed')!;
    failed.expr = failed.expr.replace(/> 0\s*$/, '> 5');
    writeFileSync(join(dir, RULES_NAME), ruleFile(changed));
    const tests = readRuleTests('alerts.promtest.yaml');
    const one = { ...tests, tests: tests.tests.filter((t) => t.name.startsWith('images Failed')) };
    expect(one.tests).toHaveLength(1);
    writeFileSync(join(dir, 'one.promtest.yaml'), JSON.stringify(one));
    const result = await promtool(['test', 'rules', 'one.promtest.yaml'], dir);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain('alertname: PrepullImagesFailed');
  }, 60_000);
});
