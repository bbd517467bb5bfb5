// A fleet of simulated nodes (issue 8): 500 `prepull agent`s against one Kubernetes API test
// server, each on its own in-memory runtime with lognormal pull times. Measures how long a new
// PrePull takes to reach every node, the API requests and writes per second it causes,
// status-write conflicts and registry requests, and holds the fleet to converging with status
// writes bounded by the agents' coalescing.
import { KubeClient } from '../src/kube/client.ts';
import type { RequestRecord } from '../test/kube-api-server/index.ts';
import type { JsonObject } from '../test/kube-api-server/json.ts';
import type { FleetSetup, FromFleetWorker, ToFleetWorker } from './fleet-worker.ts';
import { type Benchmark, type Figure, summarize } from './lib.ts';
import { WorkerMailbox } from './worker-mailbox.ts';
import {
  AGENT_USER,
  CountingRegistry,
  NAMESPACE,
  NODE_IMAGE_CACHES,
  isWrite,
  nodeObject,
  percentile,
  prePullObject,
  quiet,
  sleep,
  startApiServer,
  waitUntil,
} from './agent-support.ts';

/** Threads the agents are spread over (the server has this one). */
const WORKERS = 2;
/** Images each round's PrePull names (pulled in parallel: the default pull concurrency is 2). */
const IMAGES_PER_ROUND = 2;
/** Real-world pull times: lognormal, median 3 s, σ 0.6 (p99 ≈ 12 s); run at this scale. */
const PULL_MEDIAN_MS = 3000;
const PULL_SIGMA = 0.6;
const TIME_SCALE = 1 / 3;
const QUICK_TIME_SCALE = 1 / 6;
const STATUS_INTERVAL_MS = 2000;

interface NodeTrack {
  /** performance.now() of each status write the server stored. */
  writes: number[];
  /** The agent's own lastUpdateTime of each stored status write (epoch ms). */
  updateTimes: number[];
}

interface Round {
  images: string[];
  /** performance.now() at which each node first showed every image Present. */
  arrived: Map<string, number>;
}

class FleetWorker extends WorkerMailbox<FromFleetWorker, ToFleetWorker> {
  constructor(setup: FleetSetup) {
    super(new URL('./fleet-worker.ts', import.meta.url), setup, {
      failed: 'fleet worker failed',
      from: 'a fleet worker',
    });
  }
}

interface Counted {
  connections: number;
  /** Event-loop busy time of each worker so far, ms. */
  busyMs: number[];
  heapMiB: number[];
}

async function counted(workers: readonly FleetWorker[]): Promise<Counted> {
  const out: Counted = { connections: 0, busyMs: [], heapMiB: [] };
  for (const w of workers) {
    w.send({ kind: 'count' });
    const c = await w.next('counted', 30_000);
    out.connections += c.connections;
    out.busyMs.push(c.busyMs);
    out.heapMiB.push(c.heapMiB);
  }
  return out;
}

interface StoredStatus {
  images?: { image: string; state: string }[];
  lastUpdateTime?: string;
}

function statusOf(object: JsonObject): StoredStatus {
  return (object.status ?? {}) as StoredStatus;
}

/** "verb resource" → count, most first. */
function breakdown(records: readonly RequestRecord[]): string {
  const counts = new Map<string, number>();
  for (const x of records) {
    const key = `${x.verb} ${x.resource}${x.code >= 400 ? ` (${x.code})` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} × ${n}`)
    .join(', ');
}

/** What one round measured. */
interface RoundResult {
  /** Nodes showing the images Present ÷ nodes. */
  converged: number;
  /** Seconds from the POST's response to each node showing them Present. */
  arrivals: number[];
  requestsPerSecond: number;
  writesPerSecond: number;
  writesPerNode: number;
  statusWritesMost: number;
  mostPer2s: number;
  statusConflicts: number;
  eventConflicts: number;
  registryPerImage: number;
  cpuSeconds: number;
  connectionsPerNode: number;
  requests: string;
}

/** The most writes any node made within any 2 s (by the agents' own timestamps). */
function mostWritesPer2s(tracks: Iterable<NodeTrack>, from: number, to: number): number {
  let most = 0;
  for (const track of tracks) {
    const times = track.updateTimes.filter((t) => t >= from && t <= to);
    let start = 0;
    for (let end = 0; end < times.length; end++) {
      while (times[end]! - times[start]! >= STATUS_INTERVAL_MS) start++;
      most = Math.max(most, end - start + 1);
    }
  }
  return most;
}

const benchmark: Benchmark = {
  name: 'fleet',
  area: 'Fleet',
  method:
    "500 simulated nodes (--quick: 30): the Kubernetes API test server (deploy/'s CRDs and " +
    'RBAC) in the benchmark process, and one whole `prepull agent` per node — `runAgent` as the ' +
    `CLI runs it, as the shipped ServiceAccount, default flags — spread over ${WORKERS} worker ` +
    'threads, each agent on its own in-memory runtime and each opening its two watches ' +
    '(PrePulls, its Node). A pull takes a time drawn per pull from a lognormal distribution of ' +
    'median 3 s and σ 0.6 (p99 ≈ 12 s), run at a third of that (median 1 s) so the run fits the ' +
    'time allowed; the 2 s status coalescing is not scaled, so a real fleet writes no more ' +
    'than this. The agents start 10 ms apart per thread; once every NodeImageCache is written ' +
    'and the fleet is quiet, each round creates one PrePull (POST as the admin) naming 2 new ' +
    'tags for every node, verify Registry, against a stand-in registry (plain HTTP, ' +
    '--insecure-registry) that answers manifest HEADs with the digest the runtimes hold and ' +
    "counts requests. Timed: from the POST's response until every node's NodeImageCache shows " +
    'both images Present (watched in the server). API requests and writes are the agents’, ' +
    "from the server's accounting, from the POST until the fleet has made no request but " +
    'watches for 2.5 s; conflicts are 409 answers; status writes per node are counted from the ' +
    'stored NodeImageCaches and timed by the lastUpdateTime each agent sets when it writes. The ' +
    'server, the 500 agents and the registry stand-in share this machine’s 2 CPUs, so the ' +
    'times include waiting for a CPU. 2 rounds; median, min and max over the rounds. --quick: ' +
    '1 round, pulls at a sixth of the real-world times.',
  async run(ctx) {
    const nodeCount = ctx.quick ? 30 : 500;
    const rounds = ctx.quick ? 1 : 2;
    const { server, kubeconfig, adminKubeconfig } = await startApiServer();
    const registry = await CountingRegistry.start();
    const nodes = Array.from({ length: nodeCount }, (_, i) => `sim-${String(i).padStart(3, '0')}`);
    server.apply(...nodes.map((n) => nodeObject(n, { 'bench.prepull.dev/fleet': 'sim' })));
    const plan: Round[] = Array.from({ length: rounds }, (_, r) => ({
      images: Array.from(
        { length: IMAGES_PER_ROUND },
        (_, j) => `${registry.host}/fleet/app-${r}-${j}:v1`,
      ),
      arrived: new Map<string, number>(),
    }));
    let current: Round | undefined;

    // Every NodeImageCache write, as the server stores it.
    const tracks = new Map<string, NodeTrack>(
      nodes.map((n) => [n, { writes: [], updateTimes: [] }]),
    );
    const unwatch = server.store.watch({
      typeKey: NODE_IMAGE_CACHES,
      deliver: (change) => {
        const name = (change.object.metadata as { name?: string } | undefined)?.name ?? '';
        const track = tracks.get(name);
        if (track === undefined || change.type !== 'MODIFIED') return;
        const status = statusOf(change.object);
        const now = performance.now();
        track.writes.push(now);
        if (status.lastUpdateTime !== undefined)
          track.updateTimes.push(Date.parse(status.lastUpdateTime));
        if (current !== undefined && !current.arrived.has(name)) {
          const states = new Map((status.images ?? []).map((i) => [i.image, i.state]));
          if (current.images.every((image) => states.get(image) === 'Present'))
            current.arrived.set(name, now);
        }
      },
    });

    const workers: FleetWorker[] = [];
    const admin = KubeClient.load(adminKubeconfig);
    const results: RoundResult[] = [];
    let startup = 0;
    let heapPerAgentMiB = 0;
    let pulls: number[] = [];
    const problems: string[] = [];

    const measureRound = async (r: number, round: Round): Promise<RoundResult> => {
      const from = server.accounting.all().length;
      const cpuFrom = process.cpuUsage();
      const countedFrom = await counted(workers);
      const serverBusyFrom = performance.eventLoopUtilization();
      const registryFrom = registry.requests;
      const wallFrom = Date.now();
      await admin.request('POST', `/apis/prepull.dev/v1alpha1/namespaces/${NAMESPACE}/prepulls`, {
        body: prePullObject(`fleet-${r}`, round.images, {
          nodeSelector: { 'bench.prepull.dev/fleet': 'sim' },
        }),
      });
      const t0 = performance.now();
      current = round;
      await waitUntil(
        () => round.arrived.size === nodeCount,
        `round ${r}: every node showing its images Present`,
        180_000,
        50,
      ).catch((error: unknown) => {
        problems.push(`round ${r}: ${round.arrived.size} of ${nodeCount} nodes: ${String(error)}`);
      });
      const last = await quiet(server, 2500, 120_000);
      current = undefined;
      const window = (last - t0) / 1000;
      const cpu = process.cpuUsage(cpuFrom);
      const countedTo = await counted(workers);
      const serverBusy = performance.eventLoopUtilization(serverBusyFrom).active / 1000;
      const agentsBusy = countedTo.busyMs.map((b, i) => (b - countedFrom.busyMs[i]!) / 1000);
      const records = server.accounting
        .all()
        .slice(from)
        .filter((x) => x.user === AGENT_USER);
      const writes = records.filter((x) => isWrite(x.verb));
      const result: RoundResult = {
        converged: round.arrived.size / nodeCount,
        arrivals: [...round.arrived.values()].map((t) => (t - t0) / 1000),
        requestsPerSecond: records.filter((x) => x.verb !== 'watch').length / window,
        writesPerSecond: writes.length / window,
        writesPerNode: writes.length / nodeCount,
        statusWritesMost: Math.max(
          ...[...tracks.values()].map((t) => t.writes.filter((w) => w >= t0).length),
        ),
        mostPer2s: mostWritesPer2s(tracks.values(), wallFrom, Date.now()),
        statusConflicts: records.filter(
          (x) => x.code === 409 && x.resource === `${NODE_IMAGE_CACHES}/status`,
        ).length,
        eventConflicts: records.filter((x) => x.code === 409 && x.resource.includes('events'))
          .length,
        registryPerImage: (registry.requests - registryFrom) / (nodeCount * round.images.length),
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        connectionsPerNode: (countedTo.connections - countedFrom.connections) / nodeCount,
        requests: breakdown(records),
      };
      ctx.log(
        `round ${r}: ${round.arrived.size}/${nodeCount} nodes, the last after ` +
          `${Math.max(0, ...result.arrivals).toFixed(2)} s; quiet after ${window.toFixed(1)} s; ` +
          `${result.cpuSeconds.toFixed(1)} CPU s (event loops busy: server ${serverBusy.toFixed(1)} s, ` +
          `agents ${agentsBusy.map((b) => b.toFixed(1)).join(' + ')} s); ` +
          `${result.connectionsPerNode.toFixed(1)} new connections per node; ${result.requests}; ` +
          `registry ${registry.requests - registryFrom}`,
      );
      return result;
    };

    try {
      const started = performance.now();
      for (let w = 0; w < WORKERS; w++) {
        workers.push(
          new FleetWorker({
            nodes: nodes.filter((_, i) => i % WORKERS === w),
            kubeconfig,
            registryHost: registry.host,
            refs: plan.flatMap((r) => r.images),
            pullMedianMs: PULL_MEDIAN_MS * (ctx.quick ? QUICK_TIME_SCALE : TIME_SCALE),
            pullSigma: PULL_SIGMA,
            seed: 1000 + w,
            staggerMs: 10,
          }),
        );
      }
      await Promise.all(workers.map((w) => w.next('started', 120_000)));
      await waitUntil(
        () => nodes.every((n) => (tracks.get(n)?.writes.length ?? 0) > 0),
        `every one of ${nodeCount} NodeImageCaches written`,
        120_000,
        100,
      );
      startup = (performance.now() - started) / 1000;
      await quiet(server, 2000, 120_000);
      const heap = await counted(workers);
      heapPerAgentMiB = heap.heapMiB.reduce((a, b) => a + b, 0) / nodeCount;
      ctx.log(
        `${nodeCount} agents started and reported in ${startup.toFixed(1)} s; ` +
          `JS heap ${heap.heapMiB.map((h) => h.toFixed(0)).join(' + ')} MiB`,
      );
      for (const [r, round] of plan.entries()) {
        results.push(await measureRound(r, round));
        await sleep(500);
      }
    } finally {
      unwatch();
      for (const w of workers) w.send({ kind: 'stop' });
      for (const w of workers) {
        try {
          const stopped = await w.next('stopped', 60_000);
          if (stopped.failures.length > 0)
            problems.push(
              `agents that did not stop cleanly: ${stopped.failures.slice(0, 5).join('; ')}`,
            );
          pulls = pulls.concat(stopped.pulls);
        } catch (error) {
          problems.push(String(error));
        }
        await w.worker.terminate();
      }
      await registry.stop();
      await server.stop();
    }
    if (results.every((x) => x.arrivals.length === 0))
      throw new Error(`the fleet never converged: ${problems.join('; ')}`);

    const each = (pick: (x: RoundResult) => number) => summarize(results.map(pick));
    const quickNote = ctx.quick
      ? `quick mode: ${nodeCount} nodes, 1 round, pulls at a sixth of real-world times`
      : undefined;
    const note = (...parts: (string | undefined)[]): { note?: string } => {
      const text = [...parts, quickNote].filter((p) => p !== undefined && p !== '').join('; ');
      return text === '' ? {} : { note: text };
    };
    const drawn =
      pulls.length === 0
        ? undefined
        : `pull times drawn: median ${(percentile(pulls, 50) / 1000).toFixed(2)} s, p99 ` +
          `${(percentile(pulls, 99) / 1000).toFixed(2)} s, max ${(Math.max(...pulls) / 1000).toFixed(2)} s ` +
          `over ${pulls.length} pulls`;
    const figures: Figure[] = [
      {
        id: 'fleet.converged.ratio',
        label: `nodes showing a new PrePull's images Present ÷ nodes (${nodeCount})`,
        unit: 'ratio',
        ...each((x) => x.converged),
        goal: { op: '==', value: 1, source: 'issue 8' },
        ...note(problems.join('; ')),
      },
      {
        id: 'fleet.converge.seconds',
        label: `new PrePull (write response) → all ${nodeCount} NodeImageCaches show it Present`,
        unit: 's',
        ...each((x) => Math.max(0, ...x.arrivals)),
        ...note(drawn),
      },
      {
        id: 'fleet.converge.p50.seconds',
        label: 'new PrePull → a node shows it Present, median node',
        unit: 's',
        ...each((x) => (x.arrivals.length === 0 ? 0 : percentile(x.arrivals, 50))),
        ...note('the pull itself (both images in parallel), then up to 2 s of status coalescing'),
      },
      {
        id: 'fleet.api.requestsPerSecond',
        label: 'API requests per second during a rollout (watches not counted), whole fleet',
        unit: 'requests/s',
        ...each((x) => x.requestsPerSecond),
        ...note(`round 0: ${results[0]?.requests ?? '—'}`),
      },
      {
        id: 'fleet.api.writesPerSecond',
        label: 'API writes per second during a rollout, whole fleet',
        unit: 'writes/s',
        ...each((x) => x.writesPerSecond),
      },
      {
        id: 'fleet.api.writesPerNode',
        label: `API writes per node per rollout of ${IMAGES_PER_ROUND} images (status and Events)`,
        unit: 'writes',
        ...each((x) => x.writesPerNode),
      },
      {
        id: 'fleet.status.mostWritesPer2s',
        label: 'status writes by one node within any 2 s, most of any node',
        unit: 'writes',
        ...each((x) => x.mostPer2s),
        goal: { op: '<=', value: 1, source: 'issue 7' },
        ...note(
          'timed by the lastUpdateTime each agent puts in the status it writes (its own clock)',
        ),
      },
      {
        id: 'fleet.status.writesPerNode',
        label: 'status writes per node per rollout, most of any node',
        unit: 'writes',
        ...each((x) => x.statusWritesMost),
      },
      {
        id: 'fleet.status.conflicts',
        label: 'status-write conflicts (409) per rollout, whole fleet',
        unit: 'conflicts',
        ...each((x) => x.statusConflicts),
        ...note('each node writes only its own NodeImageCache'),
      },
      {
        id: 'fleet.events.conflicts',
        label: 'Event-create conflicts (409, the Event lost) per rollout, whole fleet',
        unit: 'conflicts',
        ...each((x) => x.eventConflicts),
      },
      {
        id: 'fleet.registry.perImage',
        label: 'registry requests per image per node (verification: manifest HEAD)',
        unit: 'requests',
        ...each((x) => x.registryPerImage),
      },
      {
        id: 'fleet.cpu.perRollout',
        label: 'CPU per rollout: API server, all agents and registry stand-in together',
        unit: 'CPU s',
        ...each((x) => x.cpuSeconds),
        ...note(
          `new connections per node per rollout: ${each((x) => x.connectionsPerNode).median.toFixed(1)}`,
        ),
      },
      {
        id: 'fleet.startup.seconds',
        label: `${nodeCount} agents started (10 ms apart per thread) → every NodeImageCache written`,
        unit: 's',
        ...summarize([startup]),
        ...note(
          `JS heap per agent after start-up: ${heapPerAgentMiB.toFixed(2)} MiB (the worker threads' heaps ÷ agents)`,
        ),
      },
    ];
    return figures;
  },
};

export default benchmark;
