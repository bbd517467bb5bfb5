// `prepull agent`: the engine in the cluster, one per node. Watches PrePulls in every namespace and
// its own Node (so label changes move images on and off the node), reads only the pull secrets the
// matching PrePulls name, drives the engine, and reports in the node's NodeImageCache and in
// Events. Entry point only: parse, wire, run; the agent itself is src/agent/.
import { Agent } from '../agent/agent.ts';
import { type Clock, systemClock } from '../clock.ts';
import { AGENT_USAGE, parseAgentArgs } from '../config/agent.ts';
import { KubeClient } from '../kube/client.ts';
import type { detectRuntime } from '../runtime/detect.ts';
import type { ImageRuntime } from '../runtime/types.ts';
import { connectRuntime, waitForRuntime } from '../runtime/wait.ts';
import type { Logger } from '../telemetry/logger.ts';
import { Metrics } from '../telemetry/metrics.ts';
import { revision, version } from './build-info.ts';
import { serveRuntimeTelemetry } from './health.ts';
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
  /** Waits between attempts to reach a runtime that is not there yet (default 1 s doubling to 30 s). */
  runtimeBackoff?: { initialMs: number; maxMs: number };
  /** Restart delays of failed watches (default 1 s doubling to 30 s). */
  watchBackoff?: { initialMs: number; maxMs: number };
  env?: Readonly<Record<string, string | undefined>>;
  clock?: Clock;
  /** The root logger (default: JSON lines on stderr at --log-level). */
  log?: Logger;
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
  const log = dependencies.log ?? (await commandLogger(config));
  const metrics = new Metrics({
    build: { version: version(), revision: revision(), command: 'agent' },
  });
  const kube = KubeClient.load(config.kubeconfig);
  log.info({ server: kube.server, node: config.nodeName }, 'kubernetes API');
  const aborted = new AbortController();
  const stopped = new Promise<string>((resolve) => {
    const onSignal = (signal: string): void => {
      aborted.abort();
      resolve(signal);
    };
    signals.once('SIGTERM', () => {
      onSignal('SIGTERM');
    });
    signals.once('SIGINT', () => {
      onSignal('SIGINT');
    });
  });
  const current: { running?: { agent: Agent; runtime: ImageRuntime } } = {};
  const server = await serveRuntimeTelemetry(
    config.metricsAddress,
    metrics,
    {
      runtime: () => current.running?.runtime,
      otherwise: () =>
        current.running?.agent.ready === false
          ? 'the Kubernetes API cache is not synced yet'
          : undefined,
    },
    log,
  );
  // Nothing of Kubernetes starts before the runtime answers: no watches, no NodeImageCache
  // write (docs/agent.md, "Waiting for the runtime").
  const connected = await waitForRuntime(
    () =>
      connectRuntime({
        endpoint: config.runtimeEndpoint,
        protocol: config.runtime,
        ...(dependencies.detect !== undefined ? { detect: dependencies.detect } : {}),
      }),
    {
      clock,
      log,
      signal: aborted.signal,
      backoff: dependencies.runtimeBackoff,
      onUp: (up) => {
        metrics.runtimeUp.set(up ? 1 : 0);
      },
    },
  ).catch(async (error: unknown) => {
    await server?.close();
    throw error;
  });
  if (connected === undefined) {
    const signal = await stopped;
    log.info({ signal }, 'shutting down');
    await server?.close();
    log.info({ signal }, 'exiting');
    return 0;
  }
  const { detected, info } = connected;
  log.info({ skipped: detected.skipped }, detected.description);
  metrics.setRuntime(info.name);
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
  current.running = { agent, runtime: detected.runtime };
  let stopReleasing: (() => void) | undefined;
  const close = async (): Promise<void> => {
    stopReleasing?.();
    await agent.stop();
    await server?.close();
    await detected.runtime.close();
  };
  const started = agent.start().then(
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
