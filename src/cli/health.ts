// /metrics, /healthz and /readyz of a command that holds a node's runtime (sync, the agent):
// served from before the runtime answers, not ready until it does, then ready while it answers
// (and while whatever else the command needs is ready). prepull_runtime_up follows each check.
// /readyz tells only a local caller why it is not ready (telemetry/server.ts); the reason goes
// to the log whenever it changes, so `kubectl logs` says what a probe's `not ready` means.
import type { ImageRuntime } from '../runtime/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import {
  EVERY_INTERFACE_WARNING,
  type TelemetryServer,
  isEveryInterface,
  startTelemetryServer,
} from '../telemetry/server.ts';

export interface RuntimeReadiness {
  /** The runtime once it answered; undefined while it is awaited. */
  runtime(): ImageRuntime | undefined;
  /** Why the command is not ready apart from the runtime (the agent's API caches), if it is not. */
  otherwise?(): string | undefined;
}

/** Serves the endpoints on `address` (none without one), logging where. */
export async function serveRuntimeTelemetry(
  address: { host: string; port: number } | undefined,
  metrics: Metrics,
  readiness: RuntimeReadiness,
  log: Logger,
): Promise<TelemetryServer | undefined> {
  if (address === undefined) return undefined;
  let said: string | undefined;
  const check = async (): Promise<string | undefined> => {
    const problem = await notReadyBecause(metrics, readiness);
    if (problem !== said) {
      if (problem !== undefined) log.warn({ reason: problem }, 'not ready');
      else log.info('ready');
      said = problem;
    }
    return problem;
  };
  const server = await startTelemetryServer(metrics, address, check);
  log.info({ address: `${address.host}:${server.port}` }, 'serving /metrics, /healthz, /readyz');
  if (isEveryInterface(address.host)) log.warn(EVERY_INTERFACE_WARNING);
  return server;
}

async function notReadyBecause(
  metrics: Metrics,
  readiness: RuntimeReadiness,
): Promise<string | undefined> {
  const runtime = readiness.runtime();
  if (runtime === undefined) return 'waiting for the container runtime';
  const other = readiness.otherwise?.();
  if (other !== undefined) return other;
  try {
    await runtime.info();
    metrics.runtimeUp.set(1);
    return undefined;
  } catch (error) {
    metrics.runtimeUp.set(0);
    return `runtime not reachable: ${error instanceof Error ? error.message : String(error)}`;
  }
}
