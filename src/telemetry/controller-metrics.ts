// The controller's Prometheus metrics (`prepull controller`), on a private registry like the
// agent's (metrics.ts): names carry the `prepull_controller_` prefix. The class implements the
// controller's ControllerMetrics interface (src/controller/controller.ts) structurally — this
// floor may not import the controller's — plus the leader election's two series, which the
// process wiring (src/cli/controller.ts) sets. docs/metrics.md describes each, and the
// prepull_build_info and process metrics every registry carries (process.ts).
import { Counter, Gauge, Registry } from 'prom-client';
import { type BuildInfo, buildInfo, registerProcessMetrics } from './process.ts';

export type StatusWriteResult = 'ok' | 'conflict' | 'error';
export type NodePatchKind = 'label' | 'taint';

export class PrometheusControllerMetrics {
  readonly registry = new Registry();

  readonly #statusWrites = new Counter({
    name: 'prepull_controller_status_writes_total',
    help: 'PrePull status patches by result (ok, conflict, error).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly #nodePatches = new Counter({
    name: 'prepull_controller_node_patches_total',
    help: 'Node patches by kind (label: the readiness label; taint: the start-up taint removed) and result (ok, error).',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  });
  readonly #pullSecretCopies = new Counter({
    name: 'prepull_controller_pull_secret_copy_writes_total',
    help: "Writes of pull secret copies in the agents' namespace by verb (create, update, delete) and result (ok, error).",
    labelNames: ['verb', 'result'] as const,
    registers: [this.registry],
  });
  readonly #admitted = new Gauge({
    name: 'prepull_controller_admitted_nodes',
    help: 'Distinct nodes admitted to paced rollouts, across every PrePull (as the leader last wrote them).',
    registers: [this.registry],
  });
  readonly #prePulls = new Gauge({
    name: 'prepull_controller_prepulls',
    help: 'PrePulls in the controller’s cache.',
    registers: [this.registry],
  });
  readonly #watchRestarts = new Counter({
    name: 'prepull_controller_watch_restarts_total',
    help: 'Restarts of Kubernetes watches after an error, by resource.',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });
  readonly #leader = new Gauge({
    name: 'prepull_controller_leader',
    help: '1 while this replica leads (holds the Lease and writes), 0 while it stands by.',
    registers: [this.registry],
  });
  readonly #leaderTransitions = new Counter({
    name: 'prepull_controller_leader_transitions_total',
    help: 'Times this replica started or stopped leading (transition: started, stopped).',
    labelNames: ['transition'] as const,
    registers: [this.registry],
  });

  /** `build`: prepull_build_info's labels; without them (tests) it has no series. */
  constructor(build?: Omit<BuildInfo, 'command'>) {
    registerProcessMetrics(this.registry);
    if (build !== undefined) buildInfo(this.registry, { ...build, command: 'controller' });
    // Every series exists from the start, so a rate() or an absent() sees zeros, not gaps.
    for (const result of ['ok', 'conflict', 'error'] as const)
      this.#statusWrites.inc({ result }, 0);
    for (const kind of ['label', 'taint'] as const) {
      for (const result of ['ok', 'error'] as const) this.#nodePatches.inc({ kind, result }, 0);
    }
    for (const verb of ['create', 'update', 'delete'] as const)
      for (const result of ['ok', 'error'] as const)
        this.#pullSecretCopies.inc({ verb, result }, 0);
    for (const transition of ['started', 'stopped'] as const) {
      this.#leaderTransitions.inc({ transition }, 0);
    }
    this.#leader.set(0);
  }

  statusWrites(result: StatusWriteResult): void {
    this.#statusWrites.inc({ result });
  }

  nodePatches(kind: NodePatchKind, result: 'ok' | 'error'): void {
    this.#nodePatches.inc({ kind, result });
  }

  pullSecretCopies(verb: 'create' | 'update' | 'delete', result: 'ok' | 'error'): void {
    this.#pullSecretCopies.inc({ verb, result });
  }

  admitted(count: number): void {
    this.#admitted.set(count);
  }

  watchRestart(resource: string): void {
    this.#watchRestarts.inc({ resource });
  }

  prePulls(count: number): void {
    this.#prePulls.set(count);
  }

  /** This replica started (true) or stopped (false) leading. */
  leading(leading: boolean): void {
    this.#leader.set(leading ? 1 : 0);
    this.#leaderTransitions.inc({ transition: leading ? 'started' : 'stopped' });
  }

  /** Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
