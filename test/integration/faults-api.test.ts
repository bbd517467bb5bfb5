// The fault suite's Kubernetes API faults (issue 21): a real `prepull agent` (bin/prepull.js,
// built dist/) on the shared harness containerd, against the API test server in this process,
// while the server drops every watch, compacts its history (410 Gone on resume), answers 500 and
// 503 to everything for 10 s, and delays every answer by 2 s. For each fault the agent keeps
// running, a change made during the fault or right before it (a PrePull created or edited to add
// an image) is acted on — the image Present in containerd and in the NodeImageCache status —
// and the images already Present stay Present. The time from the fault's end to convergence is
// recorded in the fault report. /healthz and /readyz are sampled all along; what they answered
// during each fault is written into the report's outcome (docs/reliability.md shows it).
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CachedImage, NodeImageCache } from '../../src/api/nodeimagecache.ts';
import { pollUntil } from '../../src/testing/poll.ts';
import { AgentProcess } from '../harness/agent-cli.ts';
import { recordFault } from '../harness/fault-report.ts';
import { clearLayerCache, runnableImage } from '../harness/images.ts';
import { type HarnessInfo, pushImage, sharedHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import { assertBuildFresh } from '../harness/sync-cli.ts';
import { KubeApiServer } from '../kube-api-server/index.ts';
import type { JsonObject } from '../kube-api-server/json.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SA_USER = 'system:serviceaccount:prepull-system:prepull-agent';
/** Generous: real pulls on a 2-core machine shared with other test runs, and the agent's watch
 *  backoff (1 s doubling to 30 s) after an outage. */
const CONVERGE = { timeoutMs: 75_000, intervalMs: 100 };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One answer of /healthz or /readyz: the status, or 0 when the request failed or took > 3 s. */
function probeStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { timeout: 3_000 }, (res) => {
      res.resume();
      res.on('end', () => {
        resolve(res.statusCode ?? 0);
      });
    });
    req.on('timeout', () => {
      req.destroy();
    });
    req.on('error', () => {
      resolve(0);
    });
    req.end();
  });
}

interface HealthSample {
  at: number;
  healthz: number;
  readyz: number;
}

/** "healthz 200×40; readyz 200×38, 503×2" for the samples taken between `from` and `to`. */
function healthSummary(samples: readonly HealthSample[], from: number, to: number): string {
  const within = samples.filter((s) => s.at >= from && s.at <= to);
  const count = (key: 'healthz' | 'readyz'): string => {
    const counts = new Map<number, number>();
    for (const s of within) counts.set(s[key], (counts.get(s[key]) ?? 0) + 1);
    return [...counts]
      .sort(([a], [b]) => a - b)
      .map(([code, n]) => `${code === 0 ? 'no answer' : code}×${n}`)
      .join(', ');
  };
  return `/healthz ${count('healthz')}; /readyz ${count('readyz')}`;
}

describeIntegration('prepull agent under Kubernetes API faults (real agent and containerd)', () => {
  let h: HarnessInfo;
  let probe: RuntimeProbe;
  let server: KubeApiServer;
  let agent: AgentProcess | undefined;
  let token = '';
  let address = '';
  const prefix = uniqueName('api-faults');
  const node = `${prefix}-node`;
  const refs: Record<string, string> = {};
  const samples: HealthSample[] = [];
  let sampling = true;
  let sampler: Promise<void> | undefined;
  /** The first step that failed: the steps after it build on it and fail at once. */
  let failedStep: string | undefined;

  function step(name: string, body: () => Promise<void>): void {
    it(name, async () => {
      if (failedStep !== undefined) throw new Error(`not run: the step "${failedStep}" failed`);
      try {
        await body();
      } catch (error) {
        failedStep = name;
        throw error;
      }
    });
  }

  function prePull(name: string, images: readonly string[]): JsonObject {
    return {
      apiVersion: 'prepull.dev/v1alpha1',
      kind: 'PrePull',
      metadata: { namespace: 'apps', name },
      spec: { images: images.map((image) => ({ image: refs[image]! })) },
    };
  }

  function listed(): CachedImage[] {
    const cache = server.get('prepull.dev/v1alpha1', 'NodeImageCache', node) as
      NodeImageCache | undefined;
    return cache?.status?.images ?? [];
  }

  function presentInStatus(name: string): boolean {
    const entry = listed().find((i) => i.image === refs[name]);
    return entry?.state === 'Present' && entry.reason === 'Verified';
  }

  /** Every named image Present and verified in the status, and held by containerd. */
  async function converged(names: readonly string[]): Promise<boolean> {
    if (!names.every(presentInStatus)) return false;
    for (const name of names) if ((await probe.status(refs[name]!)) === undefined) return false;
    return true;
  }

  /** Waits for `names` to be Present; returns the time it happened (Date.now()). */
  async function waitConverged(names: readonly string[], what: string): Promise<number> {
    try {
      await pollUntil(what, () => converged(names), CONVERGE);
    } catch (error) {
      const seen = listed().map(
        (i) => `${i.image} ${i.state} ${i.reason ?? ''} ${i.message ?? ''}`,
      );
      throw new Error(
        `${String(error)}\nlisted: ${JSON.stringify(seen, null, 2)}\nagent:\n${agent?.tail(15) ?? ''}`,
      );
    }
    return Date.now();
  }

  /** The agent is still the same running process, and every image it had stays Present. */
  async function stillHolds(names: readonly string[]): Promise<void> {
    expect(agent?.running).toBe(true);
    expect(await converged(names)).toBe(true);
  }

  function watchRestarts(since: number): number {
    return agent!.logs.filter(
      (l) => l.msg === 'watch failed; restarting' && Date.parse(String(l.time)) >= since,
    ).length;
  }

  beforeAll(async () => {
    assertBuildFresh();
    h = sharedHarness();
    probe = runtimeProbe('containerd', h);
    const plain = h.registries.plain!;
    for (const name of ['base', 'drop', 'gone', 'err-before', 'err-during', 'slow']) {
      await pushImage(
        plain,
        `${prefix}/${name}`,
        'v1',
        runnableImage({ marker: `${prefix} ${name}` }),
      );
      refs[name] = `${plain.host}/${prefix}/${name}:v1`;
    }
    server = await KubeApiServer.start();
    server.applyManifests(join(REPO, 'deploy', 'namespace.yaml'));
    server.applyManifests(join(REPO, 'deploy', 'crds'));
    server.applyManifests(join(REPO, 'deploy', 'rbac.yaml'));
    const sa = server.serviceAccount('prepull-system', 'prepull-agent');
    token = sa.token;
    server.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps' } },
      {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: node, labels: { 'kubernetes.io/hostname': node } },
      },
      prePull('base', ['base']),
    );
    agent = new AgentProcess(node, [
      '--kubeconfig',
      sa.kubeconfig,
      '--node-name',
      node,
      '--runtime-endpoint',
      probe.endpoint,
      '--insecure-registry',
      plain.host,
      '--metrics-address',
      '127.0.0.1:0',
      '--log-level',
      'debug',
    ]);
  });

  afterAll(async () => {
    sampling = false;
    await sampler;
    if (agent?.running) {
      agent.kill('SIGKILL');
      await agent.exited(10_000).catch(() => undefined);
    }
    probe.close();
    clearLayerCache();
    await server.stop();
  });

  step('setup: the agent starts, is ready and holds the first PrePull', async () => {
    await agent!.waitForLog((l) => l.msg === 'agent started', 'agent started');
    const serving = await agent!.waitForLog(
      (l) => l.msg === 'serving /metrics, /healthz, /readyz',
      'the metrics address',
    );
    address = String(serving.address);
    await pollUntil(
      '/readyz 200',
      async () => (await probeStatus(`http://${address}/readyz`)) === 200,
      CONVERGE,
    );
    await waitConverged(['base'], 'the base image Present');
    // Sampled every 250 ms from now to the end: what the probes answered during each fault.
    sampler = (async () => {
      while (sampling) {
        const at = Date.now();
        const [healthz, readyz] = await Promise.all([
          probeStatus(`http://${address}/healthz`),
          probeStatus(`http://${address}/readyz`),
        ]);
        samples.push({ at, healthz, readyz });
        await sleep(250);
      }
    })();
  });

  step(
    'api-watch-drop: every watch dropped every 500 ms for 5 s; a PrePull created meanwhile is pulled',
    async () => {
      const start = Date.now();
      let changed = start;
      let convergence: Promise<number> | undefined;
      for (let i = 0; i < 10; i++) {
        server.faults.dropWatches();
        if (i === 2) {
          server.apply(prePull('drop', ['drop']));
          changed = Date.now();
          // Watched from the change on: it may well converge while the drops go on.
          convergence = waitConverged(
            ['drop'],
            'the image of the PrePull created while watches dropped',
          );
        }
        await sleep(500);
      }
      server.faults.dropWatches();
      const end = Date.now();
      const at = await convergence!;
      await stillHolds(['base', 'drop']);
      const health = healthSummary(samples, start, end);
      recordFault({
        id: 'api-watch-drop',
        runtime: 'containerd',
        convergedMs: Math.max(0, at - end),
        outcome: `agent kept running, no watch restart (a drop is a normal end of stream, resumed); the PrePull created between the 3rd and 4th of 11 drops was Present ${((at - changed) / 1000).toFixed(1)} s after it was created (${at <= end ? 'during the fault' : `${((at - end) / 1000).toFixed(1)} s after the last drop`}); the image held before stayed Present; ${health}`,
      });
      // A dropped watch is a normal end of stream: resumed, not an error.
      expect(watchRestarts(start)).toBe(0);
    },
  );

  step(
    'api-410-gone: history compacted while the watches are down; the resume gets 410 and the agent lists again',
    async () => {
      const lists = (): number =>
        server.accounting
          .all()
          .filter(
            (r) => r.user === SA_USER && r.verb === 'list' && r.resource === 'prepull.dev/prepulls',
          ).length;
      const before = lists();
      const start = Date.now();
      // New requests are held, so the agent's reconnect waits until history is gone; the change
      // is made meanwhile, so only a new list can show it.
      server.faults.pause();
      server.faults.dropWatches();
      server.apply(prePull('gone', ['gone']));
      server.faults.compact();
      await sleep(1_000);
      server.faults.resume();
      const end = Date.now();
      const at = await waitConverged(['gone'], 'the image of the PrePull created before the 410');
      await stillHolds(['base', 'drop', 'gone']);
      expect(lists()).toBeGreaterThan(before);
      const health = healthSummary(samples, start, at);
      recordFault({
        id: 'api-410-gone',
        runtime: 'containerd',
        convergedMs: at - end,
        outcome: `agent kept running and listed again (${lists() - before} list of PrePulls); the PrePull created while history was compacted was Present ${((at - end) / 1000).toFixed(1)} s after the server resumed; images held before stayed Present; ${health}`,
      });
    },
  );

  step(
    'api-5xx: 500 then 503 to every request for 10 s; a pull finishing and a PrePull edited meanwhile both land in the status afterwards',
    async () => {
      const statusErrors = (): number =>
        server.accounting
          .all()
          .filter(
            (r) => r.user === SA_USER && r.resource.includes('nodeimagecaches') && r.code >= 500,
          ).length;
      // The first image's pull starts before the outage and ends in it: its status write fails.
      server.apply(prePull('errors', ['err-before']));
      await agent!.waitForLog(
        (l) => l.msg === 'image state' && l.image === refs['err-before'] && l.state === 'Pulling',
        'the pull of err-before',
      );
      const start = Date.now();
      server.faults.failNext({ code: 500, times: 1_000_000 });
      server.faults.dropWatches();
      await sleep(2_000);
      // Edited during the outage: the agent can see it only once it lists or watches again.
      server.apply(prePull('errors', ['err-before', 'err-during']));
      await sleep(3_000);
      server.faults.clear();
      server.faults.failNext({ code: 503, times: 1_000_000, retryAfterSeconds: 1 });
      await sleep(5_000);
      server.faults.clear();
      const end = Date.now();
      const failedWrites = statusErrors();
      const at = await waitConverged(
        ['err-before', 'err-during'],
        'both images of the PrePull edited around the outage',
      );
      await stillHolds(['base', 'drop', 'gone', 'err-before', 'err-during']);
      const health = healthSummary(samples, start, end);
      recordFault({
        id: 'api-5xx',
        runtime: 'containerd',
        convergedMs: at - end,
        outcome: `agent kept running (${watchRestarts(start)} watch restarts, ${failedWrites} NodeImageCache requests answered 5xx); the image pulled during the outage and the one added by an edit during it were Present in the status ${((at - end) / 1000).toFixed(1)} s after the outage; images held before stayed Present; ${health}`,
      });
      expect(failedWrites).toBeGreaterThan(0);
    },
  );

  step(
    'api-slow: every answer delayed 2 s for 15 s; a PrePull created meanwhile is pulled',
    async () => {
      const start = Date.now();
      server.faults.setLatency(2_000);
      // The watches open again through the delay too.
      server.faults.dropWatches();
      await sleep(1_000);
      server.apply(prePull('slow', ['slow']));
      const changed = Date.now();
      let during: number | undefined;
      const watchDuring = pollUntil('slow Present during the fault', () => converged(['slow']), {
        timeoutMs: 14_000,
        intervalMs: 100,
      }).then(
        () => (during = Date.now()),
        () => undefined,
      );
      await sleep(14_000);
      server.faults.clear();
      const end = Date.now();
      await watchDuring;
      const at =
        during ?? (await waitConverged(['slow'], 'the image of the PrePull created while slow'));
      await stillHolds(['base', 'drop', 'gone', 'err-before', 'err-during', 'slow']);
      const health = healthSummary(samples, start, end);
      recordFault({
        id: 'api-slow',
        runtime: 'containerd',
        convergedMs: Math.max(0, at - end),
        outcome: `agent kept running; the PrePull created 1 s into 15 s of 2 s answers was Present ${((at - changed) / 1000).toFixed(1)} s after it was created (${at <= end ? 'during the fault' : `${((at - end) / 1000).toFixed(1)} s after it`}); images held before stayed Present; ${health}`,
      });
    },
  );

  step('after every fault: the agent runs, is ready, and no output carries its token', async () => {
    expect(agent!.running).toBe(true);
    await pollUntil(
      '/readyz 200 after the faults',
      async () => (await probeStatus(`http://${address}/readyz`)) === 200,
      CONVERGE,
    );
    // /healthz answered 200 throughout: the process never stopped serving.
    expect(samples.length).toBeGreaterThan(50);
    expect(samples.filter((s) => s.healthz !== 200)).toEqual([]);
    expect(agent!.otherStderr).toEqual([]);
    expect(agent!.stderr.includes(token)).toBe(false);
    expect(agent!.stdout.includes(token)).toBe(false);
  });
});
