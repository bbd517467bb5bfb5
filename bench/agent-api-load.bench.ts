// The load `prepull agent` puts on the Kubernetes API (issues 7 and 8), from the API test
// server's own accounting: requests per minute per agent when nothing changes (goal: no
// request but the watches), and requests and writes per agent during a rollout.
import type { RequestRecord } from '../test/kube-api-server/index.ts';
import { type Benchmark, type Figure, summarize } from './lib.ts';
import {
  AGENT_USER,
  InProcessAgent,
  TimedRuntime,
  isWrite,
  nodeObject,
  prePullObject,
  publishAll,
  quiet,
  showsPresent,
  sleep,
  startApiServer,
  waitUntil,
} from './agent-support.ts';

const REG = 'registry.bench.test:5000';

/** "verb resource" → count, most first, for a note. */
function breakdown(records: readonly RequestRecord[]): string {
  const counts = new Map<string, number>();
  for (const r of records) {
    const key = `${r.verb} ${r.resource}${r.code >= 400 ? ` (${r.code})` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const parts = [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} × ${n}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

const benchmark: Benchmark = {
  name: 'agent-api-load',
  area: 'Agent',
  method:
    'The Kubernetes API test server in the benchmark process (deploy/ CRDs and RBAC) and 5 ' +
    'agents (--quick: 2) as 5 nodes, each `runAgent` (the CLI entry point, default flags) in ' +
    'the same process on its own in-memory runtime (pulls of ~0.3 s: 200 ms latency, 10 MB at ' +
    '100 MB/s), all as the shipped ServiceAccount; requests are counted from the server’s ' +
    'accounting of that identity. A PrePull of 10 images (verify None) is pulled and reported ' +
    'first, and the agents are left until they have made no request but watches for 3 s. ' +
    'Idle: the requests over the next 30 s (--quick: 3 s), per agent, scaled to a minute; ' +
    'watch requests are counted apart (client-node’s Watch gives up on a watch that carried ' +
    'nothing for 30 s and opens it again, so the window holds one such reconnect per watch). ' +
    'Rollout: a PrePull of 20 more images (--quick: 5) is applied; requests are counted from ' +
    'the apply until every NodeImageCache shows them all Present and the agents have again ' +
    'made no request for 3 s (the quiet is not part of the duration or the rate). One run of ' +
    'each; no baseline. --quick: 2 agents, 4 images first, 2 s of quiet.',
  async run(ctx) {
    const agents = ctx.quick ? 2 : 5;
    const idleMs = ctx.quick ? 3_000 : 30_000;
    const baseImages = ctx.quick ? 4 : 10;
    const quietMs = ctx.quick ? 2_000 : 3_000;
    const rolloutImages = ctx.quick ? 5 : 20;
    const { server, kubeconfig } = await startApiServer();
    const nodes = Array.from({ length: agents }, (_, i) => `api-load-${i}`);
    const base = Array.from({ length: baseImages }, (_, i) => `${REG}/base/app-${i}:1.0`);
    const rollout = Array.from({ length: rolloutImages }, (_, i) => `${REG}/roll/app-${i}:1.0`);
    server.apply(
      ...nodes.map((n) => nodeObject(n, { pool: 'bench' })),
      prePullObject('base', base, { verify: 'None', nodeSelector: { pool: 'bench' } }),
    );
    const running = nodes.map((node) => {
      const runtime = new TimedRuntime({ pullLatencyMs: 200, bytesPerMs: 100_000 });
      publishAll(runtime, [...base, ...rollout], 10_000_000);
      return new InProcessAgent(node, runtime, { kubeconfig });
    });
    const agentRecords = (from: number): RequestRecord[] =>
      server.accounting
        .all()
        .slice(from)
        .filter((r) => r.user === AGENT_USER);
    let idle: RequestRecord[];
    let idleSeconds: number;
    let rolled: RequestRecord[];
    let rolloutSeconds: number;
    let windowSeconds: number;
    try {
      await waitUntil(
        () => nodes.every((n) => showsPresent(server, n, base)),
        'the base images Present on every node',
      );
      await quiet(server, quietMs);

      const idleFrom = server.accounting.all().length;
      const idleStart = performance.now();
      await sleep(idleMs);
      idleSeconds = (performance.now() - idleStart) / 1000;
      idle = agentRecords(idleFrom);

      const rollFrom = server.accounting.all().length;
      const rollStart = performance.now();
      server.apply(
        prePullObject('rollout', rollout, { verify: 'None', nodeSelector: { pool: 'bench' } }),
      );
      await waitUntil(
        () => nodes.every((n) => showsPresent(server, n, rollout)),
        'the rollout Present on every node',
      );
      rolloutSeconds = (performance.now() - rollStart) / 1000;
      const lastRequest = await quiet(server, quietMs);
      windowSeconds = (lastRequest - rollStart) / 1000;
      rolled = agentRecords(rollFrom);
      ctx.log(`idle ${idleSeconds.toFixed(1)} s: ${breakdown(idle)}`);
      ctx.log(`rollout ${rolloutSeconds.toFixed(1)} s: ${breakdown(rolled)}`);
      for (const agent of running) {
        const code = await agent.stop();
        if (code !== 0) throw new Error(`agent ${agent.node} exited ${code}`);
      }
    } finally {
      await Promise.all(running.map((a) => a.stop().catch(() => undefined)));
      await server.stop();
    }

    const perAgent = (records: readonly RequestRecord[]): number => records.length / agents;
    const idleNonWatch = idle.filter((r) => r.verb !== 'watch');
    const idleWatch = idle.filter((r) => r.verb === 'watch');
    const rolledWrites = rolled.filter((r) => isWrite(r.verb));
    const perMinute = 60 / idleSeconds;
    const quickNote = ctx.quick
      ? `quick mode: ${agents} agents, ${idleMs / 1000} s idle, ${rolloutImages} images`
      : undefined;
    const withQuick = (note: string): string =>
      quickNote === undefined ? note : `${note}; ${quickNote}`;
    const figures: Figure[] = [
      {
        id: 'agent.api.idle.nonWatchPerMinute',
        label: 'non-watch API requests per minute per agent, idle',
        unit: 'requests/min',
        ...summarize([perAgent(idleNonWatch) * perMinute]),
        goal: { op: '==', value: 0, source: 'issue 7' },
        note: withQuick(
          `${idleNonWatch.length} requests from ${agents} agents in ${idleSeconds.toFixed(1)} s: ${breakdown(idleNonWatch)}`,
        ),
      },
      {
        id: 'agent.api.idle.watchPerMinute',
        label: 'watch requests per minute per agent, idle (reconnects of quiet watches)',
        unit: 'requests/min',
        ...summarize([perAgent(idleWatch) * perMinute]),
        note: `${idleWatch.length} watch requests from ${agents} agents in ${idleSeconds.toFixed(1)} s`,
      },
      {
        id: 'agent.api.rollout.requests',
        label: `API requests per agent, rollout of ${rolloutImages} images`,
        unit: 'requests',
        ...summarize([perAgent(rolled)]),
        note: withQuick(`${rolled.length} from ${agents} agents: ${breakdown(rolled)}`),
      },
      {
        id: 'agent.api.rollout.writes',
        label: `API writes per agent, rollout of ${rolloutImages} images`,
        unit: 'writes',
        ...summarize([perAgent(rolledWrites)]),
        note: `status updates and Events; at most one status write per 2 s per node (issue 7)`,
      },
      {
        id: 'agent.api.rollout.perMinute',
        label: `API requests per minute per agent, during the rollout`,
        unit: 'requests/min',
        ...summarize([(perAgent(rolled) * 60) / windowSeconds]),
        note: `over ${windowSeconds.toFixed(1)} s from the apply to the last request`,
      },
      {
        id: 'agent.api.rollout.seconds',
        label: `rollout of ${rolloutImages} images: apply → every NodeImageCache shows them Present`,
        unit: 's',
        ...summarize([rolloutSeconds]),
      },
    ];
    return figures;
  },
};

export default benchmark;
