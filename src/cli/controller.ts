// `prepull controller`: the cluster's view of every PrePull, paced rollouts, node labels and
// taints, copies of pull secrets for the agents (docs/controller.md). A Deployment of two replicas: each syncs its caches, a Lease
// elects the one that writes (src/controller/lease.ts), the other stands by, ready. Entry point
// only: parse, wire, run; the controller itself is src/controller/.
import { type Clock, systemClock } from '../clock.ts';
import {
  CONTROLLER_USAGE,
  type ControllerConfig,
  type ControllerHost,
  parseControllerArgs,
} from '../config/controller.ts';
import { Controller } from '../controller/controller.ts';
import { LeaderElector } from '../controller/lease.ts';
import { KubeClient } from '../kube/client.ts';
import { PrometheusControllerMetrics } from '../telemetry/controller-metrics.ts';
import type { Logger } from '../telemetry/logger.ts';
import {
  EVERY_INTERFACE_WARNING,
  type TelemetryServer,
  isEveryInterface,
  startTelemetryServer,
} from '../telemetry/server.ts';
import { revision, version } from './build-info.ts';
import type { Output } from './io.ts';
import { commandLogger } from './log.ts';

export interface ControllerDependencies {
  /** Restart delays of failed watches (default 1 s doubling to 30 s). */
  watchBackoff?: { initialMs: number; maxMs: number };
  env?: Readonly<Record<string, string | undefined>>;
  host?: ControllerHost;
  clock?: Clock;
  /** The root logger (default: on stderr at --log-level, in --log-format; src/cli/log.ts). */
  log?: Logger;
}

async function serveTelemetry(
  config: ControllerConfig,
  metrics: PrometheusControllerMetrics,
  controller: Controller,
  log: Logger,
): Promise<TelemetryServer | undefined> {
  if (config.metricsAddress === undefined) return undefined;
  // Ready = caches synced, leading or not. A standby must be ready: the Deployment's rolling
  // update waits for each new Pod to be ready before it stops an old one, and a new Pod cannot
  // lead while an old one holds the Lease — readiness tied to leading would stall every update
  // (and count the standby as a disruption in a PodDisruptionBudget). What a synced standby
  // offers is exactly a warm take-over.
  const server = await startTelemetryServer(metrics, config.metricsAddress, () =>
    Promise.resolve(controller.synced ? undefined : 'the Kubernetes API caches are not synced yet'),
  );
  log.info(
    { address: `${config.metricsAddress.host}:${server.port}` },
    'serving /metrics, /healthz, /readyz',
  );
  if (isEveryInterface(config.metricsAddress.host)) log.warn(EVERY_INTERFACE_WARNING);
  return server;
}

interface Wiring {
  config: ControllerConfig;
  kube: KubeClient;
  controller: Controller;
  metrics: PrometheusControllerMetrics;
  clock: Clock;
  log: Logger;
}

/** Leads through the Lease, or at once with --leader-elect=false; `stop` gives it up. */
function lead({ config, kube, controller, metrics, clock, log }: Wiring): {
  stop(): Promise<void>;
  failed: Promise<never>;
} {
  if (!config.leaderElect) {
    log.warn('leader election is off: this replica leads; run no other');
    const leadership = new AbortController();
    metrics.leading(true);
    controller.lead(leadership.signal);
    return {
      stop: () => {
        leadership.abort(new Error('shutting down'));
        metrics.leading(false);
        return Promise.resolve();
      },
      failed: new Promise<never>(() => undefined),
    };
  }
  const elector = new LeaderElector(kube, {
    namespace: config.leaseNamespace,
    name: config.leaseName,
    identity: config.identity,
    leaseDurationMs: config.leaseDurationMs,
    renewDeadlineMs: config.renewDeadlineMs,
    retryPeriodMs: config.retryPeriodMs,
    clock,
    log: log.child({ component: 'lease' }),
    onStartedLeading: (signal) => {
      metrics.leading(true);
      controller.lead(signal);
    },
    onStoppedLeading: () => {
      metrics.leading(false);
    },
  });
  const running = elector.run();
  // On SIGTERM: stop leading (the controller's signal aborts, its writes stop), then empty the
  // Lease's holder so the standby takes over within a retry period.
  // run() ends only when stopped; it rejects only on a bug, which ends the process.
  const failed = running.then(() => new Promise<never>(() => undefined));
  return { stop: () => elector.release(), failed };
}

export async function runController(
  argv: readonly string[],
  io: Output,
  signals: NodeJS.EventEmitter = process,
  dependencies: ControllerDependencies = {},
): Promise<number> {
  const config = parseControllerArgs(argv, dependencies.env ?? process.env, dependencies.host);
  if (config === 'help') {
    io.out(CONTROLLER_USAGE);
    return 0;
  }
  const clock = dependencies.clock ?? systemClock;
  const log = dependencies.log ?? (await commandLogger(config));
  const metrics = new PrometheusControllerMetrics({ version: version(), revision: revision() });
  const kube = KubeClient.load(config.kubeconfig);
  log.info({ server: kube.server, identity: config.identity }, 'kubernetes API');
  const controller = new Controller({
    options: {
      maxConcurrentNodes: config.maxConcurrentNodes,
      admissionTimeoutMs: config.admissionTimeoutMs,
      statusIntervalMs: config.statusIntervalMs,
      pullSecretNamespace: config.pullSecretNamespace,
      pullSecretResyncMs: config.pullSecretResyncMs,
    },
    clock,
    log,
    metrics,
    kube,
    identity: config.identity,
    ...(dependencies.watchBackoff !== undefined ? { watchBackoff: dependencies.watchBackoff } : {}),
  });
  const server = await serveTelemetry(config, metrics, controller, log);
  // The process runs until a signal, whatever else holds the event loop open meanwhile (a
  // leader without election may have nothing pending between two events).
  const alive = setInterval(() => undefined, 2 ** 30);
  const stopped = new Promise<string>((resolve) => {
    signals.once('SIGTERM', () => {
      resolve('SIGTERM');
    });
    signals.once('SIGINT', () => {
      resolve('SIGINT');
    });
  });
  const close = async (): Promise<void> => {
    clearInterval(alive);
    await controller.stop();
    await server?.close();
  };
  // Campaign only once the caches are synced: a leader without them could write nothing true.
  const started = controller.start().then(
    () => undefined,
    (error: unknown) => ({ error }),
  );
  const first = await Promise.race([started, stopped]);
  if (typeof first === 'object') {
    await close().catch(() => undefined);
    throw first.error instanceof Error ? first.error : new Error(String(first.error));
  }
  const leadership =
    first === undefined ? lead({ config, kube, controller, metrics, clock, log }) : undefined;
  const ended =
    leadership === undefined
      ? first
      : await Promise.race([stopped, leadership.failed.catch((error: unknown) => ({ error }))]);
  if (typeof ended === 'object') {
    await close().catch(() => undefined);
    throw ended.error instanceof Error ? ended.error : new Error(String(ended.error));
  }
  log.info({ signal: ended }, 'shutting down');
  await leadership?.stop();
  await close();
  log.info({ signal: ended }, 'exiting');
  return 0;
}
