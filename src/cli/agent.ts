// `prepull agent`: the engine in the cluster, one per node. Watches PrePulls in every namespace and
// its own Node (so label changes move images on and off the node), reads only the pull secrets the
// matching PrePulls name, drives the engine, and reports in the node's NodeImageCache and in
// Events. Entry point only: parse, wire, run.
import { type PrePull, validatePrePull } from '../api/prepull.ts';
import { nodeImageCacheStatus } from '../api/nodeimagecache.ts';
import { type Clock, systemClock } from '../clock.ts';
import { AGENT_USAGE, type AgentConfig, parseAgentArgs } from '../config/agent.ts';
import { PrepullError } from '../errors.ts';
import { KubeClient, type KubernetesObject } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import { PullSecrets } from '../kube/secrets.ts';
import { NodeImageCacheWriter } from '../kube/status.ts';
import { Watched } from '../kube/watched.ts';
import { cronScheduler } from '../reconcile/cron.ts';
import { SANDBOX, type SecretRef } from '../reconcile/desired.ts';
import { Engine } from '../reconcile/engine.ts';
import type { EngineEvent } from '../reconcile/types.ts';
import type { ImageReport } from '../image/report.ts';
import { detectRuntime } from '../runtime/detect.ts';
import { imageMatchesDigest } from '../image/digest.ts';
import type { ImageRuntime, RuntimeInfo } from '../runtime/types.ts';
import { type Logger, createLogger } from '../telemetry/logger.ts';
import { Metrics } from '../telemetry/metrics.ts';
import { type TelemetryServer, startTelemetryServer } from '../telemetry/server.ts';
import type { Output } from './main.ts';
import { releaseWhenQuiet } from './memory.ts';
import { newRegistryClient } from './registry.ts';

interface NodeObject extends KubernetesObject {
  metadata?: { name?: string; uid?: string; labels?: Record<string, string> };
}

const EVENT_TYPES: Record<EngineEvent['kind'], { type: 'Normal' | 'Warning'; action: string }> = {
  Pulled: { type: 'Normal', action: 'Pull' },
  Repaired: { type: 'Normal', action: 'Pull' },
  PullFailed: { type: 'Warning', action: 'Pull' },
  DigestDrift: { type: 'Warning', action: 'Verify' },
};

function secretsOf(prePull: PrePull): SecretRef[] {
  return prePull.spec.imagePullSecrets.map((s) => ({
    namespace: prePull.metadata.namespace,
    name: s.name,
  }));
}

function validated(
  object: KubernetesObject,
  namespace: string,
): ReturnType<typeof validatePrePull> {
  // Only what a PrePull is made of: the API adds status and more metadata.
  const { apiVersion, kind, metadata } = object;
  return validatePrePull(
    { apiVersion, kind, metadata, spec: (object as { spec?: unknown }).spec },
    namespace,
  );
}

/** The PrePulls the informer holds, validated (the CRD validates at admission; this is the engine's own check). */
class PrePullView {
  readonly #log: Logger;
  readonly #warned = new Map<string, string>();
  readonly #versions = new Map<string, string>();
  readonly uids = new Map<string, string>();

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Valid PrePulls, and the pull secrets of those that changed since the last call. */
  read(objects: readonly KubernetesObject[]): { prePulls: PrePull[]; changedSecrets: SecretRef[] } {
    const prePulls: PrePull[] = [];
    const changedSecrets: SecretRef[] = [];
    const seen = new Set<string>();
    for (const object of objects) {
      const namespace = object.metadata?.namespace ?? '';
      const key = `${namespace}/${object.metadata?.name ?? ''}`;
      const version = object.metadata?.resourceVersion ?? '';
      seen.add(key);
      const { prePull, issues } = validated(object, namespace);
      if (prePull === undefined) {
        if (this.#warned.get(key) !== version) {
          this.#warned.set(key, version);
          this.#log.warn({ prePull: key, issues }, 'ignoring an invalid PrePull');
        }
        continue;
      }
      prePulls.push(prePull);
      if (object.metadata?.uid !== undefined) this.uids.set(key, object.metadata.uid);
      if (this.#versions.get(key) !== version) {
        this.#versions.set(key, version);
        changedSecrets.push(...secretsOf(prePull));
      }
    }
    for (const key of this.#versions.keys()) {
      if (!seen.has(key)) {
        this.#versions.delete(key);
        this.uids.delete(key);
      }
    }
    return { prePulls, changedSecrets };
  }
}

interface Parts {
  config: AgentConfig;
  releaseMemory: boolean;
  watchBackoff?: { initialMs: number; maxMs: number } | undefined;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  kube: KubeClient;
  runtime: ImageRuntime;
  info: RuntimeInfo;
}

/** The running agent: informers feeding the engine, the engine feeding status and Events. */
class Agent {
  readonly #parts: Parts;
  readonly engine: Engine;
  readonly writer: NodeImageCacheWriter;
  readonly recorder: EventRecorder;
  readonly secrets: PullSecrets;
  readonly nodes: Watched<NodeObject>;
  readonly prePulls: Watched<KubernetesObject>;
  readonly #view: PrePullView;
  readonly registry: ReturnType<typeof newRegistryClient>;
  #engineStarted = false;
  #stopReleasing: (() => void) | undefined;
  #nodeKnown = false;
  #pendingPrePulls = false;

  constructor(parts: Parts) {
    this.#parts = parts;
    const { config, clock, log, metrics, kube } = parts;
    this.#view = new PrePullView(log);
    this.registry = newRegistryClient(config, metrics);
    this.secrets = new PullSecrets(kube, { clock });
    this.recorder = new EventRecorder(kube, {
      node: config.nodeName,
      clock,
      log,
      onRecord: (result) => {
        metrics.kubeEvents.inc({ result });
      },
    });
    this.writer = new NodeImageCacheWriter(kube, {
      clock,
      log,
      onWrite: (result) => {
        metrics.statusWrites.inc({ result });
      },
    });
    this.engine = new Engine(
      {
        runtime: parts.runtime,
        resolver: this.registry,
        credentials: this.secrets,
        matchesDigest: imageMatchesDigest,
        scheduler: cronScheduler,
        clock,
        log,
        metrics,
        onEvent: (event) => {
          this.#event(event);
        },
      },
      { labels: {}, pullConcurrency: config.pullConcurrency },
    );
    const restart = (resource: string) => () => {
      metrics.watchRestarts.inc({ resource });
    };
    this.nodes = new Watched<NodeObject>(
      kube.informer<NodeObject>('/api/v1/nodes', {
        fieldSelector: `metadata.name=${config.nodeName}`,
      }),
      {
        resource: 'nodes',
        clock,
        ...(parts.watchBackoff !== undefined ? { backoff: parts.watchBackoff } : {}),
        log,
        onRestart: restart('nodes'),
        onChange: () => {
          this.#onNode();
        },
      },
    );
    this.prePulls = new Watched<KubernetesObject>(
      kube.informer<KubernetesObject>('/apis/prepull.dev/v1alpha1/prepulls'),
      {
        resource: 'prepulls',
        clock,
        ...(parts.watchBackoff !== undefined ? { backoff: parts.watchBackoff } : {}),
        log,
        onRestart: restart('prepulls'),
        onChange: () => {
          this.#onPrePulls();
        },
      },
    );
  }

  get ready(): boolean {
    return this.nodes.synced && this.prePulls.synced && this.#nodeKnown && this.#engineStarted;
  }

  async start(): Promise<void> {
    const { config, log } = this.#parts;
    await this.nodes.start();
    const node = this.nodes.list()[0];
    if (node?.metadata?.uid === undefined) {
      throw new PrepullError(
        'ERR_KUBE_NOT_FOUND',
        `Node ${config.nodeName} does not exist: is --node-name / NODE_NAME this node's name?`,
      );
    }
    await this.writer.ensure({ name: config.nodeName, uid: node.metadata.uid });
    await this.prePulls.start();
    this.engine.onChange((reports) => {
      this.#report(reports);
    });
    await this.engine.start();
    this.#engineStarted = true;
    // Gives back what the start-up burst grew once the images stop changing (src/cli/memory.ts).
    if (this.#parts.releaseMemory) {
      this.#stopReleasing = releaseWhenQuiet((onChange) => this.engine.onChange(onChange));
    }
    log.info({ node: config.nodeName }, 'agent started');
  }

  /** SIGTERM: stop watching, let pulls finish within the grace period, write the last status. */
  async stop(): Promise<void> {
    const { config, log } = this.#parts;
    this.#stopReleasing?.();
    await Promise.all([this.nodes.stop(), this.prePulls.stop()]);
    await this.engine.drain(config.shutdownGraceMs);
    this.#report(this.engine.reports());
    await this.writer.flush();
    await this.writer.stop();
    await this.recorder.flush();
    await this.registry.close();
    log.info('agent stopped');
  }

  /** Hands the node's status for `reports` to the writer (which writes only what changed). */
  #report(reports: readonly ImageReport[]): void {
    const { info, clock } = this.#parts;
    this.writer.update(
      nodeImageCacheStatus(
        reports,
        { name: info.name, version: info.version, endpoint: info.endpoint },
        this.engine.imageFilesystem(),
        { now: new Date(clock.now()).toISOString(), previous: this.writer.written },
      ),
    );
  }

  #onNode(): void {
    const node = this.nodes.list()[0];
    if (node === undefined) return;
    this.#nodeKnown = true;
    this.engine.setLabels(node.metadata?.labels ?? {});
  }

  #onPrePulls(): void {
    // Many events arrive together (a re-list): apply them once.
    if (this.#pendingPrePulls) return;
    this.#pendingPrePulls = true;
    setImmediate(() => {
      this.#pendingPrePulls = false;
      const { prePulls, changedSecrets } = this.#view.read(this.prePulls.list());
      this.secrets.forget(changedSecrets);
      this.secrets.retain(prePulls.flatMap(secretsOf));
      this.engine.setPrePulls(prePulls);
    });
  }

  #event(event: EngineEvent): void {
    const { type, action } = EVENT_TYPES[event.kind];
    for (const owner of event.requiredBy) {
      if (owner === SANDBOX) continue;
      const slash = owner.indexOf('/');
      const namespace = owner.slice(0, slash);
      const name = owner.slice(slash + 1);
      this.recorder.record(
        { namespace, name, uid: this.#view.uids.get(owner) },
        { type, reason: event.kind, action, note: event.message },
      );
    }
  }
}

export interface AgentDependencies {
  detect?: typeof detectRuntime;
  /**
   * Give memory back once the images are quiet (src/cli/memory.ts; default on). A process running
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
): Promise<TelemetryServer | undefined> {
  if (config.metricsAddress === undefined) return undefined;
  return startTelemetryServer(metrics, config.metricsAddress, async () => {
    if (!agent.ready) return 'the Kubernetes API cache is not synced yet';
    try {
      await runtime.info();
      return undefined;
    } catch (error) {
      return `runtime not reachable: ${error instanceof Error ? error.message : String(error)}`;
    }
  });
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
  const log = createLogger(config.logLevel);
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
    releaseMemory: dependencies.releaseMemory ?? true,
  });
  const server = await serveTelemetry(config, metrics, detected.runtime, agent);
  if (server !== undefined && config.metricsAddress !== undefined) {
    log.info(
      { address: `${config.metricsAddress.host}:${server.port}` },
      'serving /metrics, /healthz, /readyz',
    );
  }
  const running = agent;
  const stopped = new Promise<string>((resolve) => {
    signals.once('SIGTERM', () => {
      resolve('SIGTERM');
    });
    signals.once('SIGINT', () => {
      resolve('SIGINT');
    });
  });
  const close = async (): Promise<void> => {
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
  const signal = await stopped;
  log.info({ signal }, 'shutting down');
  await close();
  log.info({ signal }, 'exiting');
  return 0;
}
