// The agent itself: informers on this node's Node and on every PrePull feed the engine; the
// engine's reports become the node's NodeImageCache status, its pulls and failures Events.
import { nodeImageCacheStatus } from '../api/nodeimagecache.ts';
import type { Clock } from '../clock.ts';
import type { AgentConfig } from '../config/agent.ts';
import { PrepullError } from '../errors.ts';
import { imageMatchesDigest } from '../image/digest.ts';
import type { ImageReport } from '../image/report.ts';
import type { KubeClient, KubernetesObject } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import { PullSecrets } from '../kube/secrets.ts';
import { NodeImageCacheWriter } from '../kube/status.ts';
import { Watched } from '../kube/watched.ts';
import { cronScheduler } from '../reconcile/cron.ts';
import { SANDBOX } from '../reconcile/desired.ts';
import { Engine } from '../reconcile/engine.ts';
import type { EngineEvent } from '../reconcile/types.ts';
import type { RegistryClient } from '../registry/client.ts';
import type { ImageRuntime, RuntimeInfo } from '../runtime/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { PrePullView, secretsOf } from './prepulls.ts';

interface NodeObject extends KubernetesObject {
  metadata?: { name?: string; uid?: string; labels?: Record<string, string> };
}

const EVENT_TYPES: Record<EngineEvent['kind'], { type: 'Normal' | 'Warning'; action: string }> = {
  Pulled: { type: 'Normal', action: 'Pull' },
  Repaired: { type: 'Normal', action: 'Pull' },
  PullFailed: { type: 'Warning', action: 'Pull' },
  DigestDrift: { type: 'Warning', action: 'Verify' },
};

/** What the agent is built from: the command line's wiring (src/cli/agent.ts) makes these. */
export interface AgentParts {
  config: AgentConfig;
  watchBackoff?: { initialMs: number; maxMs: number } | undefined;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  kube: KubeClient;
  runtime: ImageRuntime;
  info: RuntimeInfo;
  /** The registry client the engine resolves digests with; stop() closes it. */
  registry: RegistryClient;
}

/** The running agent: informers feeding the engine, the engine feeding status and Events. */
export class Agent {
  readonly #parts: AgentParts;
  readonly engine: Engine;
  readonly writer: NodeImageCacheWriter;
  readonly recorder: EventRecorder;
  readonly secrets: PullSecrets;
  readonly nodes: Watched<NodeObject>;
  readonly prePulls: Watched<KubernetesObject>;
  readonly #view: PrePullView;
  readonly registry: RegistryClient;
  #engineStarted = false;
  #nodeKnown = false;
  #pendingPrePulls = false;

  constructor(parts: AgentParts) {
    this.#parts = parts;
    const { config, clock, log, metrics, kube } = parts;
    this.#view = new PrePullView(log);
    this.registry = parts.registry;
    this.secrets = new PullSecrets(kube, {
      clock,
      from: config.pullSecrets === 'direct' ? 'direct' : { copiesIn: config.pullSecretNamespace },
    });
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
      heartbeatMs: config.heartbeatMs,
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
      {
        nodeName: config.nodeName,
        labels: {},
        pullConcurrency: config.pullConcurrency,
        stallTimeoutMs: config.stallTimeoutMs,
        cleanup: config.cleanup,
        disk: config.disk,
      },
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
    // Before the engine starts, so what it releases at start (images the last status listed
    // and no PrePull wants) is judged on the synced PrePulls, not on none (ADR 0014).
    this.#applyPrePulls();
    this.engine.remember(this.writer.lastWritten);
    this.engine.onChange((reports) => {
      this.#report(reports);
    });
    await this.engine.start();
    this.#engineStarted = true;
    log.info({ node: config.nodeName }, 'agent started');
  }

  /** SIGTERM: stop watching, let pulls finish within the grace period, write the last status. */
  async stop(): Promise<void> {
    const { config, log } = this.#parts;
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
        {
          now: new Date(clock.now()).toISOString(),
          previous: this.writer.lastWritten,
          released: this.engine.released(),
          disk: this.engine.disk(),
        },
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
      this.#applyPrePulls();
    });
  }

  #applyPrePulls(): void {
    const { config } = this.#parts;
    const { prePulls, changedSecrets, admitting } = this.#view.read(this.prePulls.list(), {
      node: config.nodeName,
      requireAdmission: config.requireAdmission,
    });
    this.secrets.forget(changedSecrets);
    this.secrets.retain(prePulls.flatMap(secretsOf));
    this.engine.setPrePulls(prePulls, admitting);
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
