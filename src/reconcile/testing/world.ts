// The simulated world the engine's unit tests run in: the in-memory runtime and a registry that
// answers from a map, a manual clock and scheduler, and the engine's log lines kept for reading.
import { Writable } from 'node:stream';
import { type CleanupPolicy, type PrePull, validatePrePull } from '../../api/prepull.ts';
import { ManualClock } from '../../clock.ts';
import { PrepullError } from '../../errors.ts';
import type { RegistryCredential } from '../../image/credential.ts';
import { imageMatchesDigest } from '../../image/digest.ts';
import { repositoryOf } from '../../image/names.ts';
import type { ImageReport } from '../../image/report.ts';
import { FakeRuntime } from '../../runtime/testing/fake.ts';
import { createLogger } from '../../telemetry/logger.ts';
import { Metrics } from '../../telemetry/metrics.ts';
import { Engine } from '../engine.ts';
import type {
  CronSpec,
  DiskGuardOptions,
  EngineDeps,
  EngineOptions,
  FsSpace,
  Scheduler,
  Tick,
} from '../types.ts';

export const digest = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;

export function prePull(name: string, spec: Record<string, unknown>): PrePull {
  const { prePull: value, issues } = validatePrePull({
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { name, namespace: 'shop' },
    spec,
  });
  if (value === undefined) throw new Error(JSON.stringify(issues));
  return value;
}

export class World {
  readonly clock = new ManualClock(1_000_000, [0.5]);
  readonly runtime: FakeRuntime;
  readonly tags = new Map<string, string>();
  readonly resolves: string[] = [];
  /** Per reference: the registry answers 429 until this time and says so in Retry-After. */
  readonly rateLimitedUntil = new Map<string, number>();
  /** Per reference: the Retry-After end the resolver last saw (what the transport remembers). */
  readonly #askedUntil = new Map<string, number>();
  /** The simulated time of each resolve, in the order of `resolves`. */
  readonly resolvedAt: number[] = [];
  /** The armed schedules, as the engine handed them to the scheduler. */
  readonly tasks: { cron: CronSpec; onTick: (tick: Tick) => void }[] = [];
  readonly logs: string[] = [];
  readonly metrics = new Metrics();
  credentials: RegistryCredential[] = [];
  /** The image filesystem as statfs would report it; undefined: not visible (statfs fails). */
  disk: FsSpace | undefined = { availableBytes: 80e9, capacityBytes: 100e9 };
  /** The paths the disk guard measured, in order. */
  readonly measured: string[] = [];
  engine: Engine;
  readonly #deps: EngineDeps;
  readonly #options: EngineOptions;

  constructor(
    options: {
      pullConcurrency?: number;
      pin?: boolean;
      events?: boolean;
      /** The runtime reports pull progress (default true). */
      progress?: boolean;
      pullLatencyMs?: number;
      cleanup?: CleanupPolicy;
      sandboxImage?: string;
      nodeName?: string;
      /** Wait for a runtime that stops answering (default true; false as sync --once). */
      waitForRuntime?: boolean;
      /** EngineOptions.stallTimeoutMs (default: the engine's). */
      stallTimeoutMs?: number;
      /** How the runtime says it knows a pin (containerd 1.6.20: `label`). */
      pinSource?: 'cri' | 'label';
      /** EngineOptions.disk: the disk guard (default: none). */
      disk?: DiskGuardOptions;
    } = {},
  ) {
    this.runtime = new FakeRuntime({
      clock: this.clock,
      pullLatencyMs: options.pullLatencyMs ?? 100,
      bytesPerMs: 10_000,
      capabilities: {
        pin: options.pin ?? true,
        deletionEvents: options.events ?? true,
        progress: options.progress ?? true,
      },
      ...(options.sandboxImage !== undefined
        ? { info: { sandboxImage: options.sandboxImage } }
        : {}),
      ...(options.pinSource !== undefined ? { pinSource: options.pinSource } : {}),
    });
    const resolver: EngineDeps['resolver'] = {
      resolve: (value) => {
        // The engine passes the parsed reference; its string is the canonical spelling.
        const ref = String(value);
        this.resolves.push(ref);
        this.resolvedAt.push(this.clock.now());
        const limited = this.rateLimitedUntil.get(ref);
        if (limited !== undefined && limited > this.clock.now()) {
          this.#askedUntil.set(ref, limited);
          return Promise.reject(
            new PrepullError('ERR_REGISTRY_RATE_LIMITED', `${ref}: HTTP 429 with Retry-After`),
          );
        }
        const found = this.tags.get(ref);
        if (found === undefined)
          return Promise.reject(new PrepullError('ERR_IMAGE_NOT_FOUND', `no ${ref}`));
        return Promise.resolve({ digest: found });
      },
      retryAfterMs: (value) => {
        const left = (this.#askedUntil.get(String(value)) ?? 0) - this.clock.now();
        return left > 0 ? left : undefined;
      },
    };
    const scheduler: Scheduler = {
      schedule: (cron, onTick) => {
        const task = { cron, onTick };
        this.tasks.push(task);
        return () => {
          const index = this.tasks.indexOf(task);
          if (index >= 0) this.tasks.splice(index, 1);
        };
      },
    };
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        this.logs.push(chunk.toString());
        done();
      },
    });
    this.#deps = {
      runtime: this.runtime,
      resolver,
      credentials: { forImage: () => Promise.resolve(this.credentials) },
      matchesDigest: imageMatchesDigest,
      scheduler,
      clock: this.clock,
      log: createLogger('debug', sink),
      metrics: this.metrics,
      measureFs: (path) => {
        this.measured.push(path);
        const disk = this.disk;
        if (disk === undefined) {
          return Promise.reject(new Error(`ENOENT: no such file or directory, statfs '${path}'`));
        }
        return Promise.resolve({ ...disk });
      },
    };
    this.#options = {
      nodeName: options.nodeName ?? 'worker-1',
      labels: { role: 'worker' },
      pullConcurrency: options.pullConcurrency ?? 2,
      ...(options.cleanup !== undefined ? { cleanup: options.cleanup } : {}),
      ...(options.waitForRuntime !== undefined ? { waitForRuntime: options.waitForRuntime } : {}),
      ...(options.stallTimeoutMs !== undefined ? { stallTimeoutMs: options.stallTimeoutMs } : {}),
      ...(options.disk !== undefined ? { disk: options.disk } : {}),
    };
    this.engine = new Engine(this.#deps, this.#options);
  }

  /** The process restarts: the engine is stopped and a new one made on the same node. */
  async restart(): Promise<Engine> {
    await this.engine.stop();
    this.engine = new Engine(this.#deps, this.#options);
    return this.engine;
  }

  /** The registry serves `ref` (a tag) as image number `n`. */
  publish(ref: string, n: number, size = 1_000_000): void {
    this.runtime.publish(ref, { digest: digest(n), id: digest(1000 + n), size });
    this.tags.set(ref, digest(n));
  }

  /** The node already holds image number `n` under `ref` (a tag), pulled earlier: the runtime
   *  recorded its registry digest. */
  holdPulled(ref: string, n: number): void {
    this.runtime.seed({
      id: digest(1000 + n),
      repoTags: [ref],
      repoDigests: [`${repositoryOf(ref)}@${digest(n)}`],
      size: 5,
    });
  }

  /**
   * Every schedule armed with `expression` names this moment; `next`: when it names the next
   * time (ms from now), which bounds the spread (default: unknown, so the whole window).
   */
  tick(expression: string, next?: number): void {
    const at = this.clock.now();
    for (const task of [...this.tasks])
      if (task.cron.expression === expression)
        task.onTick({ at, ...(next !== undefined ? { next: at + next } : {}) });
  }

  /** Runs the clock until the engine settles (or `limitMs` of simulated time passes). */
  async settle(limitMs = 3_600_000): Promise<ImageReport[]> {
    // A box, so the checks below see the assignment made in the callback.
    const result: { reports?: ImageReport[] } = {};
    void this.engine.settled().then((r) => (result.reports = r));
    const settled = (): boolean => result.reports !== undefined;
    const end = this.clock.now() + limitMs;
    for (let i = 0; i < 100_000 && !settled(); i++) {
      for (let j = 0; j < 20; j++) await Promise.resolve();
      // As in a real event loop, immediates (the engine's coalesced reports) run before timers.
      await new Promise((r) => setImmediate(r));
      if (settled()) break;
      if (!(await this.clock.next()) || this.clock.now() > end) {
        await new Promise((r) => setImmediate(r));
      }
    }
    if (result.reports === undefined) throw new Error('engine did not settle');
    return result.reports;
  }

  calls(op: string): string[] {
    return this.runtime.calls.filter((c) => c.op === op).map((c) => c.ref ?? '');
  }
}

export const pick = (reports: ImageReport[], image: string): ImageReport | undefined =>
  reports.find((r) => r.image === image);
