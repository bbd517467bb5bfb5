// Every Prometheus metric prepull exports, in one place, on a private registry (never the global
// one, so tests and several engines in one process stay apart). Names carry the `prepull_`
// prefix and unit suffixes and pass `promtool check metrics`. docs/metrics.md describes each.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { IMAGE_STATES, type ImageState } from '../image/report.ts';
import { type BuildInfo, buildInfo, registerProcessMetrics } from './process.ts';

/** Pull durations run from seconds to the 30-minute default timeout. */
const PULL_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800];
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface MetricsOptions {
  /** Per-image series are exported only while the node requires at most this many images. */
  perImageLimit?: number;
  /** prepull_prepull_images covers at most this many PrePulls (docs/metrics.md says which). */
  perPrePullLimit?: number;
  /** prepull_build_info's labels; without them (tests) it has no series. */
  build?: BuildInfo;
}

export class Metrics {
  readonly registry = new Registry();
  readonly perImageLimit: number;
  readonly perPrePullLimit: number;
  readonly #setRuntime: (runtime: string) => void;

  readonly imagesRequired = new Gauge({
    name: 'prepull_images_required',
    help: 'Images this node must hold: the images of every PrePull selecting it, plus the sandbox image.',
    registers: [this.registry],
  });
  readonly images = new Gauge({
    name: 'prepull_images',
    help: 'Required images by state (Present, Pulling, Missing, Stale, Failed).',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly imageState = new Gauge({
    name: 'prepull_image_state',
    help: '1 for the current state of each required image, 0 for the others (exported while the image count is within the per-image limit).',
    labelNames: ['image', 'state'] as const,
    registers: [this.registry],
  });
  readonly prePullImages = new Gauge({
    name: 'prepull_prepull_images',
    help: "Each PrePull's images on this node by state (for at most the per-PrePull limit of PrePulls).",
    labelNames: ['namespace', 'name', 'state'] as const,
    registers: [this.registry],
  });
  readonly prePullsOverLimit = new Gauge({
    name: 'prepull_prepulls_over_limit',
    help: 'PrePulls selecting this node that prepull_prepull_images leaves out (beyond its limit).',
    registers: [this.registry],
  });
  readonly imageBytes = new Gauge({
    name: 'prepull_images_held_bytes',
    help: 'Bytes of the required images that are present, as the runtime reports their sizes.',
    registers: [this.registry],
  });
  readonly imageFsUsed = new Gauge({
    name: 'prepull_imagefs_used_bytes',
    help: "Bytes used on the runtime's image filesystem, as the runtime reports it.",
    registers: [this.registry],
  });
  readonly imageFsCapacity = new Gauge({
    name: 'prepull_imagefs_capacity_bytes',
    help: "Size of the runtime's image filesystem, where the agent can see its mount point.",
    registers: [this.registry],
  });
  readonly imageFsFloor = new Gauge({
    name: 'prepull_imagefs_floor_bytes',
    help: 'Free space prepull keeps on the image filesystem (--image-fs-floor), in bytes.',
    registers: [this.registry],
  });
  readonly imageFsAvailable = new Gauge({
    name: 'prepull_imagefs_available_bytes',
    help: 'Free bytes on the image filesystem, as prepull last measured them (statfs).',
    registers: [this.registry],
  });
  readonly pinBudget = new Gauge({
    name: 'prepull_pin_budget_bytes',
    help: 'Bytes the images prepull pins may add up to on this node (--pin-budget).',
    registers: [this.registry],
  });
  readonly pinnedBytes = new Gauge({
    name: 'prepull_pinned_bytes',
    help: 'Bytes of the required images that are present and pinned.',
    registers: [this.registry],
  });
  readonly diskHeld = new Gauge({
    name: 'prepull_disk_held_images',
    help: 'Required images not pulled for want of disk space or pin budget (ERR_DISK_BUDGET).',
    registers: [this.registry],
  });
  readonly pulls = new Counter({
    name: 'prepull_pulls_total',
    help: 'Pull attempts by result (success, failure) and error code (empty on success).',
    labelNames: ['result', 'code'] as const,
    registers: [this.registry],
  });
  readonly pullDuration = new Histogram({
    name: 'prepull_pull_duration_seconds',
    help: 'Duration of pull attempts, successful or not.',
    labelNames: ['result'] as const,
    buckets: PULL_BUCKETS,
    registers: [this.registry],
  });
  readonly pulledBytes = new Counter({
    name: 'prepull_pulled_bytes_total',
    help: 'Bytes of images pulled (image sizes as the runtime reports them after a successful pull).',
    registers: [this.registry],
  });
  readonly pullBytesInFlight = new Gauge({
    name: 'prepull_pull_bytes_in_flight',
    help: 'Bytes downloaded so far by the pulls in flight, where the runtime reports progress (containerd, Docker Engine); 0 when none runs.',
    registers: [this.registry],
  });
  readonly registryRequests = new Counter({
    name: 'prepull_registry_requests_total',
    help: 'Requests to registries by registry host and HTTP status code ("error" when no answer came).',
    labelNames: ['registry', 'code'] as const,
    registers: [this.registry],
  });
  readonly registryRequestDuration = new Histogram({
    name: 'prepull_registry_request_duration_seconds',
    help: 'Latency of registry requests by registry host.',
    labelNames: ['registry'] as const,
    buckets: REQUEST_BUCKETS,
    registers: [this.registry],
  });
  readonly runtimeCalls = new Counter({
    name: 'prepull_runtime_calls_total',
    help: 'Calls to the container runtime by operation and result code ("ok" or an error code).',
    labelNames: ['operation', 'code'] as const,
    registers: [this.registry],
  });
  readonly runtimeUp = new Gauge({
    name: 'prepull_runtime_up',
    help: "1 when the container runtime answered the last check (at start, at each /readyz, and the engine's while it waits for the runtime mid-run), 0 while it does not.",
    registers: [this.registry],
  });
  readonly imagesReleased = new Counter({
    name: 'prepull_images_released_total',
    help: 'Images no PrePull wants any more, by what was done: Unpinned, Removed, Kept (left as they were), Failed (a runtime call failed).',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });
  readonly pinsRestored = new Counter({
    name: 'prepull_pins_restored_total',
    help: 'Pins prepull set that another client took off while the image was still required, and prepull put back.',
    registers: [this.registry],
  });
  readonly lastSync = new Gauge({
    name: 'prepull_last_sync_timestamp_seconds',
    help: 'When every required image was last seen Present and verified where asked (Unix time).',
    registers: [this.registry],
  });
  readonly watchRestarts = new Counter({
    name: 'prepull_kube_watch_restarts_total',
    help: 'Restarts of Kubernetes watches after an error, by resource.',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });
  readonly statusWrites = new Counter({
    name: 'prepull_kube_status_writes_total',
    help: 'NodeImageCache status writes by result (ok, conflict, error).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly kubeEvents = new Counter({
    name: 'prepull_kube_events_total',
    help: 'Kubernetes Events by result (created, series, dropped by the rate limit, error).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor(options: MetricsOptions = {}) {
    this.perImageLimit = options.perImageLimit ?? 500;
    this.perPrePullLimit = options.perPrePullLimit ?? 200;
    registerProcessMetrics(this.registry);
    this.#setRuntime =
      options.build === undefined ? () => undefined : buildInfo(this.registry, options.build);
    // Unknown until read: no sample rather than a 0 that reads as a fact.
    for (const gauge of [
      this.imageFsUsed,
      this.imageFsCapacity,
      this.lastSync,
      this.imageFsFloor,
      this.imageFsAvailable,
      this.pinBudget,
    ]) {
      gauge.remove();
    }
  }

  /** The runtime prepull talks to, once detected (prepull_build_info's `runtime`). */
  setRuntime(name: string): void {
    this.#setRuntime(name);
  }

  /** Replaces the per-state gauges with the states of the current required images. */
  setImageStates(states: ReadonlyMap<string, ImageState>, heldBytes: number): void {
    this.imagesRequired.set(states.size);
    const counts = new Map<ImageState, number>(IMAGE_STATES.map((s) => [s, 0]));
    for (const state of states.values()) counts.set(state, (counts.get(state) ?? 0) + 1);
    for (const [state, count] of counts) this.images.set({ state }, count);
    this.imageState.reset();
    if (states.size <= this.perImageLimit) {
      for (const [image, current] of states) {
        for (const state of IMAGE_STATES)
          this.imageState.set({ image, state }, state === current ? 1 : 0);
      }
    }
    this.imageBytes.set(heldBytes);
  }

  /**
   * Replaces the per-PrePull roll-ups with the states of each PrePull's images (keyed
   * `namespace/name`). Beyond the limit, the PrePulls with the most images not Present are kept
   * (ties in name order), and the others counted in prepull_prepulls_over_limit.
   */
  setPrePullStates(prePulls: ReadonlyMap<string, readonly ImageState[]>): void {
    const notPresent = (states: readonly ImageState[]): number =>
      states.filter((s) => s !== 'Present').length;
    let kept = [...prePulls];
    if (kept.length > this.perPrePullLimit) {
      kept = kept
        .map(([key, states]) => ({ key, states, rank: notPresent(states) }))
        .sort((a, b) => b.rank - a.rank || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
        .slice(0, this.perPrePullLimit)
        .map(({ key, states }): [string, readonly ImageState[]] => [key, states]);
    }
    this.prePullImages.reset();
    for (const [key, states] of kept) {
      const slash = key.indexOf('/');
      const labels = { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
      for (const state of IMAGE_STATES)
        this.prePullImages.set({ ...labels, state }, states.filter((s) => s === state).length);
    }
    this.prePullsOverLimit.set(prePulls.size - kept.length);
  }

  /** Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
