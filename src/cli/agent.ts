// `prepull agent`: the engine in the cluster, one per node. Watches PrePulls in every namespace and
// its own Node (so label changes move images on and off the node), reads only the pull secrets the
// matching PrePulls name, drives the engine, and reports in the node's NodeImageCache and in
// Events. Entry point only: parse, wire, run; the agent itself is src/agent/.
import { Agent } from '../agent/agent.ts';
import { type Clock, systemClock } from '../clock.ts';
import { AGENT_USAGE, type AgentConfig, parseAgentArgs } from '../config/agent.ts';
import { PrepullError } from '../errors.ts';
import { KubeClient } from '../kube/client.ts';
import { detectRuntime } from '../runtime/detect.ts';
import type { ImageRuntime } from '../runtime/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import { Metrics } from '../telemetry/metrics.ts';
import { type TelemetryServer, startTelemetryServer } from '../telemetry/server.ts';
import { releaseWhenQuiet } from './heap.ts';
import type { Output } from './io.ts';
import { commandLogger } from './log.ts';
import { newRegistryClient, registryHosts } from './registry.ts';

export interface AgentDependencies {
  detect?: typeof detectRuntime;
  /**
   * Give memory back once the images are quiet (src/cli/heap.ts; default on). A process running
   * many agents (tests, benchmarks) turns it off: its collections and V8 flags are process-wide.
   */
  releaseMemory?: boolean;
  /** Restart delays of failed watches (default 1 s doubling to 30 s). */
  watchBackoff?: { initialMs: number; maxMs: number };
  env?: Readonly<Record<string, string | undefined>>;
  clock?: Clock;
}

async function serveTelemetry(
  config: AgentConfig,
  metrics: Metrics,
  runtime: ImageRuntime,
  agent: Agent,
  log: Logger,
): Promise<TelemetryServer | undefined> {
  if (config.metricsAddress === undefined) return undefined;
  const server = await startTelemetryServer(metrics, config.metricsAddress, async () => {
    if (!agent.ready) return 'the Kubernetes API cache is not synced yet';
    try {
      await runtime.info();
      return undefined;
    } catch (error) {
      return `runtime not reachable: ${error instanceof Error ? error.message : String(error)}`;
    }
  });
  log.info(
    { address: `${config.metricsAddress.host}:${server.port}` },
    'serving /metrics, /healthz, /readyz',
  );
  return server;
}

export async function runAgent(
  argv: readonly string[],
  io: Output,
  signals: NodeJS.EventEmitter = process,
  dependencies: AgentDependencies = {},
): Promise<number> {
  const config = parseAgentArgs(argv, dependencies.env ?? process.env);
  if (config === 'help') {
    io.out(AGENT_USAGE);
    return 0;
  }
  const clock = dependencies.clock ?? systemClock;
  // The --registry-ca files are read before anything connects: a mistyped path is a usage error.
  const registries = registryHosts(config);
  const log = await commandLogger(config);
  const metrics = new Metrics();
  const kube = KubeClient.load(config.kubeconfig);
  log.info({ server: kube.server, node: config.nodeName }, 'kubernetes API');
  const detected = await (dependencies.detect ?? detectRuntime)({
    endpoint: config.runtimeEndpoint,
  });
  if (config.runtime !== undefined && config.runtime !== detected.found.kind) {
    await detected.runtime.close();
    throw new PrepullError(
      'ERR_USAGE',
      `--runtime ${config.runtime} was given, but ${detected.endpoint} speaks ${detected.found.kind}`,
    );
  }
  log.info({ skipped: detected.skipped }, detected.description);
  const info = await detected.runtime.info();
  const agent = new Agent({
    config,
    clock,
    log,
    metrics,
    kube,
    runtime: detected.runtime,
    info,
    watchBackoff: dependencies.watchBackoff,
    registry: newRegistryClient(registries, metrics),
  });
  const server = await serveTelemetry(config, metrics, detected.runtime, agent, log);
  const running = agent;
  const stopped = new Promise<string>((resolve) => {
    signals.once('SIGTERM', () => {
      resolve('SIGTERM');
    });
    signals.once('SIGINT', () => {
      resolve('SIGINT');
    });
  });
  let stopReleasing: (() => void) | undefined;
  const close = async (): Promise<void> => {
    stopReleasing?.();
    await running.stop();
    await server?.close();
    await detected.runtime.close();
  };
  const started = running.start().then(
    () => undefined,
    (error: unknown) => ({ error }),
  );
  const first = await Promise.race([started, stopped]);
  if (typeof first === 'object') {
    await close().catch(() => undefined);
    throw first.error instanceof Error ? first.error : new Error(String(first.error));
  }
  // Gives back what the start-up burst grew once the images stop changing (src/cli/heap.ts).
  if (first === undefined && (dependencies.releaseMemory ?? true)) {
    stopReleasing = releaseWhenQuiet((onChange) => agent.engine.onChange(onChange));
  }
  const signal = await stopped;
  log.info({ signal }, 'shutting down');
  await close();
  log.info({ signal }, 'exiting');
  return 0;
}
