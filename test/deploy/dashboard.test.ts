// deploy/monitoring/dashboard.json, the Grafana dashboard: the views issue 19 asks for; every
// PromQL query (panels and variables, Grafana's variables replaced by sample values) parses in
// promtool; every metric it names is documented in docs/metrics.md, a default metric of
// prom-client, or `up`; the JSON type-checks against Grafana's own dashboard model
// (@grafana/schema) with unknown fields refused; kustomize ships it as a ConfigMap Grafana's
// sidecar loads.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { ROOT, readManifests, typeCheckValues, type TypedValue } from './manifests.ts';
import { checkRules, describePromtool } from './promtool.ts';

const DASHBOARD_FILE = join(ROOT, 'deploy/monitoring/dashboard.json');
const dashboardText = readFileSync(DASHBOARD_FILE, 'utf8');

interface Target {
  refId?: string;
  expr?: string;
  datasource?: unknown;
  [key: string]: unknown;
}
interface PanelJson {
  id: number;
  type: string;
  title?: string;
  gridPos?: { h: number; w: number; x: number; y: number };
  datasource?: unknown;
  targets?: Target[];
  panels?: PanelJson[];
  options?: unknown;
  fieldConfig?: { defaults?: { custom?: unknown } };
  [key: string]: unknown;
}
interface VariableJson {
  name: string;
  type: string;
  query?: unknown;
  [key: string]: unknown;
}
interface DashboardJson {
  panels: PanelJson[];
  templating: { list: VariableJson[] };
  [key: string]: unknown;
}

const dashboard = JSON.parse(dashboardText) as DashboardJson;
const rows = dashboard.panels.filter((p) => p.type === 'row');
/** Every panel that shows data, rows' nested panels included. */
const panels = dashboard.panels.flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));

interface Query {
  where: string;
  expr: string;
}

/** The PromQL of a query variable: label_values(SELECTOR, label) reads SELECTOR. */
function variableExpr(query: string): string | undefined {
  const labelValues = /^\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*$/s.exec(query);
  if (labelValues !== null) return labelValues[1];
  if (/^\s*label_values\(\s*[a-zA-Z_]\w*\s*\)\s*$/.test(query)) return undefined; // a label alone
  const result = /^\s*query_result\((.*)\)\s*$/s.exec(query);
  if (result !== null) return result[1];
  if (/^\s*(label_names|metrics)\(/.test(query)) return undefined;
  return query;
}

function queries(): Query[] {
  const fromPanels = panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      where: `panel ${p.id} "${p.title ?? ''}" ${t.refId ?? '?'}`,
      expr: String(t.expr),
    })),
  );
  const fromVariables = dashboard.templating.list
    .filter((v) => v.type === 'query')
    .flatMap((v) => {
      const text =
        typeof v.query === 'string' ? v.query : String((v.query as { query?: string }).query);
      const expr = variableExpr(text);
      return expr === undefined ? [] : [{ where: `variable ${v.name}`, expr }];
    });
  return [...fromPanels, ...fromVariables];
}

/** Grafana's own variables, with values a query could get. */
const BUILTINS: Readonly<Record<string, string>> = {
  __rate_interval: '5m',
  __interval: '1m',
  __range: '1h',
  __range_s: '3600',
  __range_ms: '3600000',
  __interval_ms: '60000',
};

/** The query with every `$var`, `${var}` and `${var:format}` replaced; unknown ones listed. */
export function substitute(
  expr: string,
  variables: readonly string[],
): { expr: string; unknown: string[] } {
  const unknown: string[] = [];
  const out = expr.replace(
    /\$\{(\w+)(?::[^}]*)?\}|\$(\w+)/g,
    (whole, braced?: string, bare?: string) => {
      const name = braced ?? bare ?? '';
      if (name in BUILTINS) return BUILTINS[name]!;
      if (variables.includes(name)) return `${name}-sample`;
      unknown.push(whole);
      return whole;
    },
  );
  return { expr: out, unknown };
}

const AGGREGATIONS = [
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
];
const KEYWORDS = new Set([
  ...AGGREGATIONS,
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'atan2',
  'inf',
  'nan',
]);

/** The metric names a PromQL expression reads: identifiers that are not functions, keywords or labels. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1()')
    .replace(/\boffset\s+-?\w+/g, '');
  // A whole identifier (not a prefix of one) that no parenthesis follows.
  const names = [...bare.matchAll(/(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)]
    .map((m) => m[1]!)
    .filter((n) => !KEYWORDS.has(n.toLowerCase()));
  return [...new Set(names)];
}

/** Metric names docs/metrics.md documents (in backticks), the controller's included. */
function documentedMetrics(): Set<string> {
  const text = readFileSync(join(ROOT, 'docs/metrics.md'), 'utf8');
  return new Set([...text.matchAll(/`(prepull_[a-z0-9_]+)`/g)].map((m) => m[1]!));
}

/** prom-client's default process and Node.js metrics, as collectDefaultMetrics registers them. */
function defaultMetrics(): Set<string> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return new Set(registry.getMetricsAsArray().map((m) => m.name));
}

function isKnown(name: string, known: ReadonlySet<string>): boolean {
  if (known.has(name)) return true;
  const base = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
  return base !== undefined && known.has(base);
}

describe('the dashboard', () => {
  const all = queries();
  const exprs = all.map((q) => q.expr);

  it('has a fleet overview, pull durations, bytes, failures by reason, a per-node drill-down and the controller', () => {
    expect(rows.map((r) => r.title)).toEqual([
      'Fleet',
      'Pulls ($node)',
      'Node: $node',
      'Controller',
    ]);
    const uses = (pattern: RegExp): boolean => exprs.some((e) => pattern.test(e));
    expect({
      imagesByState: uses(/sum by \(state\) \(prepull_images\{/),
      nodesFailing: uses(/prepull_images\{[^}]*state="Failed"/),
      pullQuantiles: uses(
        /histogram_quantile\(0\.9, sum by \(le\) \(rate\(prepull_pull_duration_seconds_bucket/,
      ),
      bytesPulled: uses(/rate\(prepull_pulled_bytes_total/),
      failuresByCode: uses(/sum by \(code\) \(\w+\(prepull_pulls_total\{[^}]*result="failure"/),
      leader: uses(/prepull_controller_leader/),
      statusWrites: uses(/prepull_controller_status_writes_total/),
    }).toEqual({
      imagesByState: true,
      nodesFailing: true,
      pullQuantiles: true,
      bytesPulled: true,
      failuresByCode: true,
      leader: true,
      statusWrites: true,
    });
    const node = dashboard.templating.list.find((v) => v.name === 'node');
    expect(node).toMatchObject({ type: 'query', multi: true, includeAll: true });
    // The drill-down: every query of the Pulls and Node rows filters by the node variable.
    const drilled = panels.filter((p) => {
      const row = [...rows].reverse().find((r) => (r.gridPos?.y ?? 0) < (p.gridPos?.y ?? 0));
      return row?.title?.includes('$node') === true;
    });
    expect(drilled.length).toBeGreaterThan(10);
    for (const p of drilled) {
      for (const t of p.targets ?? []) {
        expect({ panel: p.title, filters: String(t.expr).includes('node=~"$node"') }).toEqual({
          panel: p.title,
          filters: true,
        });
      }
    }
  });

  it('uses only the variables it defines and Grafana’s own', () => {
    const variables = dashboard.templating.list.map((v) => v.name);
    expect(all.length).toBeGreaterThan(30);
    for (const q of all) {
      expect({ where: q.where, unknown: substitute(q.expr, variables).unknown }).toEqual({
        where: q.where,
        unknown: [],
      });
    }
    // Panels name the data source through the variable, so any Prometheus can be picked.
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')).toMatchObject({
      type: 'datasource',
      query: 'prometheus',
    });
    for (const p of panels) {
      expect({ panel: p.title, datasource: p.datasource }).toEqual({
        panel: p.title,
        datasource: { type: 'prometheus', uid: '${datasource}' },
      });
    }
  });

  it('names only metrics docs/metrics.md documents, prom-client’s defaults and `up`', () => {
    const known = new Set([...documentedMetrics(), ...defaultMetrics(), 'up']);
    expect(known.has('prepull_pulls_total')).toBe(true);
    expect(known.has('process_resident_memory_bytes')).toBe(true);
    for (const q of all) {
      const unknown = metricNames(q.expr).filter((n) => !isKnown(n, known));
      expect({ where: q.where, unknown }).toEqual({ where: q.where, unknown: [] });
    }
  });

  it('finds the metric names of a query (the check above relies on it)', () => {
    expect(
      metricNames(
        'histogram_quantile(0.9, sum by (le, code) (rate(a_bucket{job="x", le=~"1|2"}[$__rate_interval] offset 5m)))' +
          ' / on (node) group_left (pod) b_total unless time() - c:recorded > 3600 or vector(0) and sum(d) without (e)',
      ).sort(),
    ).toEqual(['a_bucket', 'b_total', 'c:recorded', 'd']);
    expect(metricNames('count(max by (node) (up{job="a"}) == 0) or vector(0)')).toEqual(['up']);
  });

  it('has unique panel ids, targets with unique refIds and a query, and fits the 24-column grid', () => {
    const ids = dashboard.panels.flatMap((p) => [p.id, ...(p.panels ?? []).map((n) => n.id)]);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      const targets = p.targets ?? [];
      expect({ panel: p.title, targets: targets.length > 0 }).toEqual({
        panel: p.title,
        targets: true,
      });
      const refIds = targets.map((t) => t.refId);
      expect(new Set(refIds).size).toBe(refIds.length);
      for (const t of targets) {
        // Prometheus queries are free-form in Grafana's model: their fields are checked here.
        expect(Object.keys(t).filter((k) => !PROMETHEUS_QUERY_FIELDS.includes(k))).toEqual([]);
        expect(typeof t.expr).toBe('string');
      }
      const pos = p.gridPos!;
      expect(pos.x + pos.w).toBeLessThanOrEqual(24);
    }
  });

  it('ships as ConfigMap prepull-dashboard with the label Grafana’s sidecar loads', () => {
    const kustomization = readManifests(join(ROOT, 'deploy/monitoring')).find(
      (m) => m.file === 'deploy/monitoring/kustomization.yaml',
    )!;
    expect(kustomization.doc.configMapGenerator).toEqual([
      {
        name: 'prepull-dashboard',
        namespace: 'prepull-system',
        files: ['prepull.json=dashboard.json'],
        options: {
          disableNameSuffixHash: true,
          labels: {
            grafana_dashboard: '1',
            'app.kubernetes.io/name': 'prepull',
            'app.kubernetes.io/component': 'monitoring',
            'app.kubernetes.io/part-of': 'prepull',
          },
        },
      },
    ]);
    // `kubectl apply` keeps the whole object in an annotation, and annotations are limited to
    // 256 KiB together.
    expect(Buffer.byteLength(dashboardText)).toBeLessThan(200 * 1024);
  });
});

const PROMETHEUS_QUERY_FIELDS = [
  'datasource',
  'expr',
  'format',
  'instant',
  'range',
  'legendFormat',
  'refId',
  'interval',
  'hide',
  'exemplar',
  'editorMode',
];

describePromtool('the dashboard’s queries in promtool', () => {
  const variables = dashboard.templating.list.map((v) => v.name);

  /** Each query as a recording rule named after its panel, so promtool names a bad one. */
  function asRules(list: readonly Query[]): unknown {
    return [
      {
        name: 'dashboard',
        rules: list.map((q, i) => ({
          record: `dashboard:${q.where.replace(/[^a-zA-Z0-9]+/g, '_')}:${i}`,
          expr: substitute(q.expr, variables).expr,
        })),
      },
    ];
  }

  it('parses every query', async () => {
    const list = queries();
    const result = await checkRules(asRules(list));
    expect(result.output).toContain(`SUCCESS: ${list.length} rules found`);
    expect(result.code).toBe(0);
  });

  it('refuses a query that does not parse (so the check above can fail)', async () => {
    const list = [
      ...queries(),
      { where: 'broken', expr: 'sum by (node) (rate(up[$__rate_interval])' },
    ];
    const result = await checkRules(asRules(list));
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/parse error/);
  });
});

describe('Grafana’s dashboard model (@grafana/schema)', () => {
  // The package holds TypeScript types generated from Grafana's schema (no JSON Schema file).
  // The JSON is compiled as object literals of those types; Json<T> reads their enums as the
  // strings the JSON holds.
  const JSON_TYPE =
    'type Json<T> = T extends string ? `${T}` : T extends readonly (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]: Json<T[K]> } : T;';
  /** Each panel type's module, and whether it types a custom field config (stat has none). */
  const PANEL_MODULES: Readonly<Record<string, { module: string; custom: boolean }>> = {
    timeseries: { module: 'timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen', custom: true },
    stat: { module: 'stat/panelcfg/x/StatPanelCfg_types.gen', custom: false },
    table: { module: 'table/panelcfg/x/TablePanelCfg_types.gen', custom: true },
  };

  function units(): TypedValue[] {
    const schema = (name: string): TypedValue['header'] => [
      `import type { ${name} } from '@grafana/schema';`,
      JSON_TYPE,
    ];
    const out: TypedValue[] = [
      {
        label: 'dashboard',
        header: schema('Dashboard'),
        type: 'Json<Dashboard>',
        value: { ...dashboard, panels: [] },
      },
    ];
    for (const row of rows) {
      out.push({
        label: `row ${row.id}`,
        header: schema('RowPanel'),
        type: 'Json<RowPanel>',
        value: row,
      });
    }
    for (const panel of panels) {
      const label = `panel ${panel.id} "${panel.title ?? ''}" (${panel.type})`;
      out.push({ label, header: schema('Panel'), type: 'Json<Panel>', value: panel });
      const known = PANEL_MODULES[panel.type];
      if (known === undefined)
        throw new Error(`${label}: no options type known for this panel type`);
      const from = `'@grafana/schema/dist/esm/raw/composable/${known.module}'`;
      out.push({
        label: `${label} options`,
        header: [`import type { Options } from ${from};`, JSON_TYPE],
        type: 'Json<Options>',
        value: panel.options ?? {},
      });
      const custom = panel.fieldConfig?.defaults?.custom;
      if (known.custom) {
        out.push({
          label: `${label} fieldConfig.defaults.custom`,
          header: [`import type { FieldConfig } from ${from};`, JSON_TYPE],
          type: 'Json<FieldConfig>',
          value: custom ?? {},
        });
      } else if (custom !== undefined) {
        throw new Error(`${label}: a ${panel.type} panel has no custom field config`);
      }
    }
    return out;
  }

  it('is installed (devDependency @grafana/schema)', () => {
    const require = createRequire(import.meta.url);
    let installed = true;
    try {
      require.resolve('@grafana/schema/package.json');
    } catch {
      installed = false;
    }
    expect({ '@grafana/schema': installed ? 'installed' : 'missing: npm ci' }).toEqual({
      '@grafana/schema': 'installed',
    });
  });

  it('accepts the dashboard, each row and panel, and each panel’s options', () => {
    expect(typeCheckValues(units())).toEqual([]);
  }, 120_000);

  it('refuses a misspelled field, in a panel and in its options (so the check above can fail)', () => {
    const list = units();
    const panel = list.find((u) => u.type === 'Json<Panel>')!;
    const options = list.find((u) => u.type === 'Json<Options>' && u.label.includes('(stat)'))!;
    const problems = typeCheckValues([
      { ...panel, value: { ...(panel.value as object), gridpos: {} } },
      { ...options, value: { ...(options.value as object), colorMode: 'rainbow' } },
    ]);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain(`'"gridpos"' does not exist`);
    expect(problems[1]).toContain('"rainbow"');
  }, 120_000);
});
