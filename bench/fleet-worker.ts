// A worker thread of the fleet benchmark: runs its share of the simulated nodes, each a whole
// `prepull agent` (runAgent, as the CLI runs it) on its own in-memory runtime whose pulls take a
// lognormal time. Driven by messages from bench/fleet.bench.ts.
import { subscribe } from 'node:diagnostics_channel';
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { FakeRuntime } from '../src/runtime/testing/fake.ts';
import type { PullOptions, RuntimeImage } from '../src/runtime/types.ts';
import { InProcessAgent, lognormal, publishAll, seededRandom, sleep } from './agent-support.ts';

export interface FleetSetup {
  nodes: string[];
  kubeconfig: string;
  /** The counting registry the agents verify tags against (plain HTTP). */
  registryHost: string;
  /** Every image any round will ask for, published in every node's runtime. */
  refs: string[];
  /** Pull time: lognormal with this median (ms) and σ. */
  pullMedianMs: number;
  pullSigma: number;
  seed: number;
  /** Pause between starting two agents, so the start-up is a ramp rather than a burst. */
  staggerMs: number;
}

export type ToFleetWorker = { kind: 'stop' } | { kind: 'count' };

export type FromFleetWorker =
  | { kind: 'started'; count: number }
  /** Connections (TLS to the API server, plain to the registry) the agents opened so far. */
  | { kind: 'counted'; connections: number; busyMs: number; heapMiB: number }
  | { kind: 'stopped'; failures: string[]; pulls: number[] }
  | { kind: 'failed'; error: string };

/** The in-memory runtime with a pull time drawn per pull, on top of its (negligible) download. */
class FleetRuntime extends FakeRuntime {
  readonly #draw: () => number;
  /** The pull times drawn, ms. */
  readonly drawn: number[] = [];

  constructor(draw: () => number) {
    // Download time ≈ 0 and progress rarely: the drawn delay is the pull.
    super({ bytesPerMs: 1e9, progressIntervalMs: 10_000 });
    this.#draw = draw;
  }

  override async pull(ref: string, options: PullOptions): Promise<RuntimeImage> {
    const ms = this.#draw();
    this.drawn.push(ms);
    await sleep(ms, options.signal);
    return super.pull(ref, options);
  }
}

const setup = workerData as FleetSetup;
const port = parentPort!;
const random = seededRandom(setup.seed);
const draw = (): number => lognormal(random, setup.pullMedianMs, setup.pullSigma);
const agents: InProcessAgent[] = [];
const runtimes: FleetRuntime[] = [];
let connections = 0;
subscribe('undici:client:connected', () => {
  connections++;
});

async function start(): Promise<void> {
  for (const node of setup.nodes) {
    const runtime = new FleetRuntime(draw);
    runtimes.push(runtime);
    publishAll(runtime, setup.refs, 50_000_000);
    agents.push(
      new InProcessAgent(node, runtime, {
        kubeconfig: setup.kubeconfig,
        extraArgs: ['--insecure-registry', setup.registryHost],
      }),
    );
    await sleep(setup.staggerMs);
  }
  port.postMessage({ kind: 'started', count: agents.length } satisfies FromFleetWorker);
}

async function stop(): Promise<void> {
  const failures: string[] = [];
  await Promise.all(
    agents.map(async (agent) => {
      try {
        const code = await agent.stop();
        if (code !== 0) failures.push(`${agent.node}: exit ${code}`);
      } catch (error) {
        failures.push(`${agent.node}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }),
  );
  const pulls = runtimes.flatMap((r) => r.drawn);
  port.postMessage({ kind: 'stopped', failures, pulls } satisfies FromFleetWorker);
}

port.on('message', (message: ToFleetWorker) => {
  if (message.kind === 'count') {
    const elu = performance.eventLoopUtilization();
    port.postMessage({
      kind: 'counted',
      connections,
      busyMs: elu.active,
      heapMiB: getHeapStatistics().used_heap_size / 2 ** 20,
    } satisfies FromFleetWorker);
  } else {
    stop().catch((error: unknown) => {
      port.postMessage({ kind: 'failed', error: String(error) } satisfies FromFleetWorker);
    });
  }
});

start().catch((error: unknown) => {
  port.postMessage({
    kind: 'failed',
    error: error instanceof Error ? (error.stack ?? error.message) : String(error),
  } satisfies FromFleetWorker);
});
