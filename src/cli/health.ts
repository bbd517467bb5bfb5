// /metrics, /healthz and /readyz of a command that holds a node's runtime (sync, the agent):
// served from before the runtime answers, not ready until it does, then ready while it answers
// (and while whatever else the command needs is ready). prepull_runtime_up follows each check.
import type { ImageRuntime } from '../runtime/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { type TelemetryServer, startTelemetryServer } from '../telemetry/server.ts';

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
  const server = await startTelemetryServer(metrics, address, async () => {
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
  });
  log.info({ address: `${address.host}:${server.port}` }, 'serving /metrics, /healthz, /readyz');
  return server;
}
