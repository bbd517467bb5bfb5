// What every registry carries besides its own metrics (the agent's, sync's and the controller's):
// prepull_build_info, and Node's process metrics — prom-client's default collectors, process_*
// and nodejs_*. docs/metrics.md describes them.
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export interface BuildInfo {
  version: string;
  /** The git revision the bundle was built from, "unknown" where it was not embedded. */
  revision: string;
  command: 'agent' | 'sync' | 'controller';
}

/**
 * The event loop's delay is sampled every 100 ms, not prom-client's 10: at 10 ms the sampling
 * timer alone cost an idle process 5 to 7 ms of CPU a second, three times an idle agent's use.
 */
const EVENT_LOOP_RESOLUTION_MS = 100;

/**
 * Gauges prom-client names like counters, which `promtool check metrics` rejects: left out. Each
 * is the sum of a per-type gauge that stays (`sum(nodejs_active_handles)`).
 */
const LEFT_OUT = new Set([
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
]);

/** The collectors, made once per process and shared by its registries (see below). */
let processRegistry: Registry | undefined;

/**
 * Registers Node's process metrics on `registry`. They describe the process, not an engine, and
 * each set of collectors starts a GC observer and an event-loop timer that are never stopped:
 * made once per process and shared, so tests and benchmarks running many engines in one process
 * pay for one set.
 */
export function registerProcessMetrics(registry: Registry): void {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({
      register: processRegistry,
      eventLoopMonitoringPrecision: EVENT_LOOP_RESOLUTION_MS,
    });
  }
  for (const { name } of processRegistry.getMetricsAsArray()) {
    const metric = processRegistry.getSingleMetric(name);
    if (metric !== undefined && !LEFT_OUT.has(name)) registry.registerMetric(metric);
  }
}

/**
 * prepull_build_info on `registry`: 1, labelled with what runs. Returns the setter of its
 * `runtime` label (empty until the runtime is detected; always empty in the controller).
 */
export function buildInfo(registry: Registry, build: BuildInfo): (runtime: string) => void {
  const gauge = new Gauge({
    name: 'prepull_build_info',
    help: 'Always 1: the version, git revision and Node.js version of this process, its command, and the container runtime it talks to (empty until detected).',
    labelNames: ['version', 'revision', 'nodejs_version', 'command', 'runtime'] as const,
    registers: [registry],
  });
  const { version, revision, command } = build;
  const labels = { version, revision, nodejs_version: process.version, command };
  gauge.set({ ...labels, runtime: '' }, 1);
  return (runtime) => {
    gauge.reset();
    gauge.set({ ...labels, runtime }, 1);
  };
}
