// Reaction time of `prepull agent` (issue 7): from a PrePull create — the API write's response —
// to the first pull call on the node's runtime, p50 and p99 over 200 creates.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient } from '../src/kube/client.ts';
import { type Benchmark, type Figure, summarize } from './lib.ts';
import {
  ApiServerProcess,
  InProcessAgent,
  NAMESPACE,
  TimedRuntime,
  namespaceObject,
  nodeObject,
  percentile,
  prePullObject,
  publishAll,
  seededRandom,
  sleep,
} from './agent-support.ts';

const NODE = 'reaction-node';
const REG = 'registry.bench.test:5000';
/** Images already on the node before the creates, so the agent is not trivially idle. */
const BASE_IMAGES = 20;

const benchmark: Benchmark = {
  name: 'agent-reaction',
  area: 'Agent',
  method:
    'The Kubernetes API test server runs as a child process (`test/kube-api-server/launcher.ts`, ' +
    "deploy/'s namespace, CRDs and RBAC), so it does not share the agent's event loop. One " +
    '`prepull agent` runs in the benchmark process through `runAgent` (the CLI entry point, the ' +
    'shipped ServiceAccount, default flags) on the in-memory runtime (src/runtime/testing/fake.ts, ' +
    'wrapped to note the time of the first `pull` call per image; pulls take about 20 ms), ' +
    'with a PrePull of 20 images already Present. Then 200 PrePulls (--quick: 10), each naming ' +
    'one new image with verify None, are created one at a time by POST as the admin; the time ' +
    "runs from the POST's response to the runtime's first `pull` call for that image. The next " +
    'create follows 20–60 ms (seeded random) after that pull. p50 and p99 (nearest rank: with ' +
    '200, the third slowest) of the creates; no baseline (the goal is absolute).',
  async run(ctx) {
    const creates = ctx.quick ? 10 : 200;
    const dir = mkdtempSync(join(tmpdir(), 'bench-agent-reaction-'));
    const base = Array.from({ length: BASE_IMAGES }, (_, i) => `${REG}/base/app-${i}:1.0`);
    const fresh = Array.from({ length: creates }, (_, i) => `${REG}/fresh/app-${i}:1.0`);
    const server = await ApiServerProcess.start(dir, [
      namespaceObject(),
      nodeObject(NODE),
      prePullObject('base', base, { verify: 'None' }),
    ]);
    const runtime = new TimedRuntime({ pullLatencyMs: 10, bytesPerMs: 100_000 });
    publishAll(runtime, [...base, ...fresh]);
    const agent = new InProcessAgent(NODE, runtime, { kubeconfig: server.kubeconfig });
    const admin = KubeClient.load(server.adminKubeconfig);
    const random = seededRandom(7);
    const fromResponse: number[] = [];
    const fromSent: number[] = [];
    try {
      await Promise.all(base.map((ref) => runtime.pulled(ref, 60_000)));
      await sleep(2500);
      for (const [i, ref] of fresh.entries()) {
        const sent = performance.now();
        await admin.request('POST', `/apis/prepull.dev/v1alpha1/namespaces/${NAMESPACE}/prepulls`, {
          body: prePullObject(`fresh-${i}`, [ref], { verify: 'None' }),
        });
        const answered = performance.now();
        const pulled = await runtime.pulled(ref, 30_000);
        fromResponse.push(pulled - answered);
        fromSent.push(pulled - sent);
        await sleep(20 + 40 * random());
      }
      ctx.log(
        `write response → first pull: median ${summarize(fromResponse).median.toFixed(1)} ms, ` +
          `p99 ${percentile(fromResponse, 99).toFixed(1)} ms over ${creates} creates`,
      );
      const code = await agent.stop();
      if (code !== 0) throw new Error(`the agent exited ${code}: ${agent.output.join('')}`);
    } finally {
      await agent.stop().catch(() => undefined);
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    const p99 = percentile(fromResponse, 99);
    const quickNote = ctx.quick ? '; quick mode: 10 creates, not 200' : '';
    const figures: Figure[] = [
      {
        id: 'agent.reaction.p50',
        label: 'PrePull create (write response) → first pull call on the node, p50',
        unit: 'ms',
        ...summarize(fromResponse),
        goal: { op: '<=', value: 100, source: 'issue 7' },
        note: `median over ${creates} creates; min – max span the creates${quickNote}`,
      },
      {
        id: 'agent.reaction.p99',
        label: 'PrePull create (write response) → first pull call on the node, p99',
        unit: 'ms',
        median: p99,
        min: p99,
        max: p99,
        samples: 1,
        values: fromResponse,
        goal: { op: '<=', value: 500, source: 'issue 7' },
        note: `nearest-rank p99 of ${creates} creates (with 200, the third slowest)${quickNote}`,
      },
      {
        id: 'agent.reaction.fromSent.p50',
        label: 'PrePull create (write sent) → first pull call on the node, p50',
        unit: 'ms',
        ...summarize(fromSent),
        note: 'includes the API write itself (a new TLS connection per request from the client)',
      },
    ];
    return figures;
  },
};

export default benchmark;
