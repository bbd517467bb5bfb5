// docs/metrics.md against /metrics: the agent's registry (which sync shares) and the
// controller's, each exercised so every labelled series exists, are scraped over HTTP; every
// metric they export must be in the doc's tables with its type and labels, and every metric the
// tables list must be exported. A new metric fails this test until its row is written — and
// until it is exercised below, so its labels can be checked.
import { afterAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { PrometheusControllerMetrics } from './controller-metrics.ts';
import { Metrics } from './metrics.ts';
import { type MetricsSource, type TelemetryServer, startTelemetryServer } from './server.ts';

const DOC = new URL('../../docs/metrics.md', import.meta.url);
/** The doc's sections (`## …` headings) whose tables list what each registry exports. */
const EVERY_COMMAND = "Every command's";
const SECTIONS = {
  agent: ["The agent's and sync's", EVERY_COMMAND],
  controller: ["The controller's", EVERY_COMMAND],
};

interface Documented {
  type: string;
  labels: string[];
  section: string;
}

/** A table row per metric, from every `| metric | type | labels | meaning |` table. */
function documented(markdown: string): Map<string, Documented> {
  const metrics = new Map<string, Documented>();
  const ticked = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
  let section = '';
  let inTable = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('## ')) section = line.slice(3).trim();
    if (!line.startsWith('|')) {
      inTable = false;
      continue;
    }
    const cells = line.split('|').slice(1, -1);
    if (/^\s*metric\s*$/.test(cells[0] ?? '') && cells[1]?.trim() === 'type') {
      expect(cells.map((c) => c.trim())).toEqual(['metric', 'type', 'labels', 'meaning']);
      inTable = true;
      continue;
    }
    if (!inTable || /^\|[\s|-]+\|$/.test(line)) continue;
    const [names, type, labels] = cells;
    for (const name of ticked(names ?? '')) {
      if (metrics.has(name)) throw new Error(`docs/metrics.md lists ${name} twice`);
      metrics.set(name, { type: type?.trim() ?? '', labels: ticked(labels ?? '').sort(), section });
    }
  }
  return metrics;
}

interface Family {
  type: string;
  /** Label names seen on its samples (histograms' `le` aside). */
  labels: Set<string>;
  samples: number;
}

/** The metric families of a Prometheus text exposition, with the labels their samples carry. */
function families(text: string): Map<string, Family> {
  const found = new Map<string, Family>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) found.set(type[1]!, { type: type[2]!, labels: new Set(), samples: 0 });
    if (line === '' || line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (sample === null) throw new Error(`not a sample line: ${line}`);
    const name = sample[1]!;
    const family = found.get(name) ?? found.get(name.replace(/_(bucket|sum|count)$/, ''));
    if (family === undefined) throw new Error(`${name} has no # TYPE line`);
    family.samples++;
    for (const [, label] of (sample[2] ?? '').matchAll(/(\w+)="(?:[^"\\]|\\.)*"/g)) {
      if (label !== 'le') family.labels.add(label!);
    }
  }
  return found;
}

const servers: TelemetryServer[] = [];

async function scrape(metrics: MetricsSource): Promise<string> {
  const server = await startTelemetryServer(metrics, { host: '127.0.0.1', port: 0 }, () =>
    Promise.resolve(undefined),
  );
  servers.push(server);
  const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
}

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

/** The agent's metrics with a series of every metric, as a busy agent would have them. */
function exercisedAgent(): Metrics {
  const metrics = new Metrics({ build: { version: '1.0.0', revision: 'abc', command: 'agent' } });
  metrics.setRuntime('containerd');
  metrics.setImageStates(new Map([['r.io/a:1', 'Present']]), 10);
  metrics.setPrePullStates(new Map([['shop/web', ['Present']]]));
  metrics.imageFsUsed.set(10);
  metrics.imageFsCapacity.set(100);
  metrics.imageFsFloor.set(20);
  metrics.imageFsAvailable.set(90);
  metrics.pinBudget.set(50);
  metrics.pulls.inc({ result: 'success', code: '' });
  metrics.pullDuration.observe({ result: 'success' }, 1);
  metrics.pulledBytes.inc(10);
  metrics.registryRequests.inc({ registry: 'r.io', code: '200' });
  metrics.registryRequestDuration.observe({ registry: 'r.io' }, 0.1);
  metrics.runtimeCalls.inc({ operation: 'imagefs', code: 'ok' });
  metrics.imagesReleased.inc({ action: 'Unpinned' });
  metrics.lastSync.set(1_700_000_000);
  metrics.watchRestarts.inc({ resource: 'prepulls' });
  metrics.statusWrites.inc({ result: 'ok' });
  metrics.kubeEvents.inc({ result: 'created' });
  return metrics;
}

function exercisedController(): PrometheusControllerMetrics {
  const metrics = new PrometheusControllerMetrics({ version: '1.0.0', revision: 'abc' });
  metrics.admitted(1);
  metrics.prePulls(1);
  metrics.watchRestart('nodes');
  return metrics;
}

describe('docs/metrics.md', () => {
  const doc = documented(readFileSync(DOC, 'utf8'));

  it('has the tables this test reads', () => {
    const sections = new Set([...doc.values()].map((d) => d.section));
    expect([...sections].sort()).toEqual([...new Set(Object.values(SECTIONS).flat())].sort());
  });

  const registries: [keyof typeof SECTIONS, () => MetricsSource][] = [
    ['agent', exercisedAgent],
    ['controller', exercisedController],
  ];
  it.each(registries)(
    'lists exactly what the %s exports, with its type and labels',
    async (who, exercised) => {
      const exported = families(await scrape(exercised()));
      const listed = [...doc].filter(([, d]) => SECTIONS[who].includes(d.section));
      const listedNames = new Set(listed.map(([name]) => name));
      expect([...exported.keys()].filter((n) => !listedNames.has(n))).toEqual([]);
      expect([...listedNames].filter((n) => !exported.has(n))).toEqual([]);
      for (const [name, { type, labels }] of listed) {
        const family = exported.get(name)!;
        expect({ name, type: family.type }).toEqual({ name, type });
        // Node's collectors may have no series yet (no GC, no libuv request since they started).
        if (family.samples === 0 && !name.startsWith('prepull_')) continue;
        expect({ name, samples: family.samples > 0 }).toEqual({ name, samples: true });
        expect({ name, labels: [...family.labels].sort() }).toEqual({ name, labels });
      }
    },
  );
});
