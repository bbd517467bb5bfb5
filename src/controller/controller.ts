// PLACEHOLDER, replaced at merge by the controller's real implementation (another branch): only
// the API the process wiring (src/cli/controller.ts) is written against, with the least
// behaviour that lets it run — start() syncs nothing, lead() writes nothing.
import type { Clock } from '../clock.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Logger } from '../telemetry/logger.ts';

export interface ControllerOptions {
  maxConcurrentNodes?: number | undefined;
  admissionTimeoutMs: number;
  statusIntervalMs: number;
}

export interface ControllerMetrics {
  statusWrites(result: 'ok' | 'conflict' | 'error'): void;
  nodePatches(kind: 'label' | 'taint', result: 'ok' | 'error'): void;
  admitted(count: number): void;
  watchRestart(resource: string): void;
  prePulls(count: number): void;
}

export interface ControllerParts {
  options: ControllerOptions;
  clock: Clock;
  log: Logger;
  metrics: ControllerMetrics;
  kube: Pick<KubeClient, 'request' | 'informer'>;
  watchBackoff?: { initialMs: number; maxMs: number };
}

export class Controller {
  readonly #parts: ControllerParts;
  #synced = false;
  #signal: AbortSignal | undefined;

  constructor(parts: ControllerParts) {
    this.#parts = parts;
  }

  /** Informers synced; writes nothing yet. */
  start(): Promise<void> {
    this.#parts.log.debug('placeholder controller: nothing to sync');
    this.#synced = true;
    return Promise.resolve();
  }

  /** Reconcile and write until `signal` aborts. */
  lead(signal: AbortSignal): void {
    this.#signal = signal;
  }

  get synced(): boolean {
    return this.#synced;
  }

  get leading(): boolean {
    return this.#signal !== undefined && !this.#signal.aborted;
  }

  stop(): Promise<void> {
    this.#signal = undefined;
    return Promise.resolve();
  }
}
