// Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules (leaderelection.go)
// and timing (docs/adr/0014-controller-and-admission.md, "Leader election"):
//
// - a candidate reads the Lease (creating it when absent) and takes it only when the holder is
//   empty or it has seen the same record (holder, renewTime, …) unchanged for the record's lease
//   duration, measured on its own clock from when it first saw that record — so clock skew
//   between replicas does not matter; it takes it with a PUT carrying the resourceVersion it
//   read, so of two candidates one gets 409 and loses;
// - the leader renews every retry period (a PUT of the Lease it last wrote; a GET first only
//   when that fails) and, when no renewal has succeeded within the renew deadline of the last
//   one, stops leading at once — it aborts the signal it handed out, then campaigns again;
// - release() (SIGTERM) writes an empty holder, so a standby takes over at its next attempt,
//   within one retry period, instead of waiting out the lease (client-go's ReleaseOnCancel).
//
// No jitter on the candidates' retry period (client-go's is up to 1.2×): with the two replicas
// deployed, polling in step costs nothing, and it keeps the hand-over within one retry period.
import type { Clock } from '../clock.ts';
import { PrepullError } from '../errors.ts';
import { type KubeRequester, isKubeApiError } from '../kube/client.ts';
import { microTime } from '../kube/events.ts';
import type { Logger } from '../telemetry/logger.ts';

/** The spec of a coordination.k8s.io/v1 Lease, as far as leader election uses it. */
export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number | null;
  /** MicroTime: RFC 3339 with microseconds. */
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number | null;
}

export interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

export interface LeaderElectorOptions {
  namespace: string;
  name: string;
  /** This replica's name in `holderIdentity`: unique among the candidates (the Pod's name). */
  identity: string;
  /** How long a standby waits after the record last changed (client-go default 15 s). */
  leaseDurationMs: number;
  /** How long the leader keeps leading without a successful renewal (default 10 s). */
  renewDeadlineMs: number;
  /** Between attempts, to acquire or to renew (default 2 s). */
  retryPeriodMs: number;
  clock: Clock;
  log: Logger;
  /** This replica leads until `signal` aborts. */
  onStartedLeading(signal: AbortSignal): void;
  /** Called once the signal has been aborted: lost, stopped or released. */
  onStoppedLeading(): void;
  /** The holder this replica saw changed ('' when the lease was released). */
  onNewLeader?(identity: string): void;
}

export const LEASE_DEFAULTS = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
} as const;

class Stopped extends Error {}

/** The fields whose change shows the holder alive (client-go compares the whole record). */
function recordKey(spec: LeaseSpec | undefined): string {
  return JSON.stringify([
    spec?.holderIdentity ?? '',
    spec?.renewTime ?? '',
    spec?.acquireTime ?? '',
    spec?.leaseTransitions ?? 0,
    spec?.leaseDurationSeconds ?? 0,
  ]);
}

export class LeaderElector {
  readonly #kube: KubeRequester;
  readonly #options: LeaderElectorOptions;
  readonly #path: string;
  readonly #stopping = new AbortController();
  #running: Promise<void> | undefined;
  /** The record last seen (read or written), and when, on this replica's clock. */
  #observed: { key: string; spec: LeaseSpec; at: number } | undefined;
  /** The Lease as this replica last wrote it (its resourceVersion is the next PUT's). */
  #written: Lease | undefined;
  #leadership: AbortController | undefined;
  #reportedLeader: string | undefined;

  constructor(kube: KubeRequester, options: LeaderElectorOptions) {
    const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = options;
    if (!(retryPeriodMs > 0 && renewDeadlineMs > retryPeriodMs)) {
      throw new PrepullError(
        'ERR_USAGE',
        `the renew deadline (${renewDeadlineMs} ms) must exceed the retry period (${retryPeriodMs} ms), which must exceed 0`,
      );
    }
    if (!(leaseDurationMs > renewDeadlineMs) || leaseDurationMs % 1000 !== 0) {
      throw new PrepullError(
        'ERR_USAGE',
        `the lease duration (${leaseDurationMs} ms) must be whole seconds and exceed the renew deadline (${renewDeadlineMs} ms)`,
      );
    }
    if (options.identity === '') throw new PrepullError('ERR_USAGE', 'the identity is empty');
    this.#kube = kube;
    this.#options = options;
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/leases/${encodeURIComponent(options.name)}`;
  }

  /** True from onStartedLeading until the signal it handed out aborts. */
  get isLeader(): boolean {
    return this.#leadership !== undefined;
  }

  /** Campaigns, leads, and campaigns again after losing the lease, until stop() or release(). */
  run(): Promise<void> {
    if (this.#running !== undefined) throw new Error('LeaderElector.run() called twice');
    this.#running = this.#loop().finally(() => {
      this.#stopLeading('stopped');
    });
    return this.#running;
  }

  /** Stops campaigning and leading, leaving the Lease as it is (it expires on its own). */
  async stop(): Promise<void> {
    this.#stopping.abort(new Stopped('stopped'));
    await this.#running;
  }

  /**
   * Stops, then — if this replica held the Lease — empties its holder, so a standby takes over
   * at its next attempt instead of after the lease duration. Bounded by the renew deadline.
   */
  async release(): Promise<void> {
    await this.stop();
    const written = this.#written;
    if (written === undefined || this.#observed?.spec.holderIdentity !== this.#options.identity) {
      return;
    }
    const { clock, identity, log } = this.#options;
    const released = (lease: Lease): Lease => ({
      ...lease,
      spec: {
        ...lease.spec,
        holderIdentity: '',
        leaseDurationSeconds: 1,
        acquireTime: microTime(clock.now()),
        renewTime: microTime(clock.now()),
      },
    });
    const attempt = async (signal: AbortSignal): Promise<boolean> => {
      try {
        await this.#put(released(written), signal);
        return true;
      } catch (error) {
        if (!isKubeApiError(error, 409)) throw error;
      }
      // Changed since this replica wrote it (a renewal that landed after all?): release it only
      // if it is still ours.
      const live = await this.#kube.request<Lease>('GET', this.#path, { signal });
      if (live.spec?.holderIdentity !== identity) return false;
      await this.#put(released(live), signal);
      return true;
    };
    try {
      const deadline = clock.now() + this.#options.renewDeadlineMs;
      const done = await this.#bounded(deadline, attempt, false);
      if (done) log.info({ lease: this.#name }, 'released the lease');
    } catch (error) {
      log.warn({ err: error, lease: this.#name }, 'could not release the lease; it expires');
    }
  }

  get #name(): string {
    return `${this.#options.namespace}/${this.#options.name}`;
  }

  async #loop(): Promise<void> {
    const { clock, retryPeriodMs } = this.#options;
    const stop = this.#stopping.signal;
    try {
      for (;;) {
        // Campaign: an attempt at once, then one per retry period.
        let acquiredAt: number | undefined;
        for (;;) {
          const started = clock.now();
          if (await this.#attempt(started + this.#options.renewDeadlineMs)) {
            acquiredAt = started;
            break;
          }
          await clock.sleep(retryPeriodMs, stop);
        }
        await this.#lead(acquiredAt);
      }
    } catch (error) {
      if (!stop.aborted) throw error;
    }
  }

  /** Leads until a renewal misses the renew deadline (returns) or stop() (throws). */
  async #lead(acquiredAt: number): Promise<void> {
    const { clock, log, retryPeriodMs, renewDeadlineMs } = this.#options;
    const stop = this.#stopping.signal;
    const leadership = new AbortController();
    this.#leadership = leadership;
    log.info({ lease: this.#name, identity: this.#options.identity }, 'started leading');
    this.#callback(() => {
      this.#options.onStartedLeading(leadership.signal);
    });
    let renewedAt = acquiredAt;
    for (;;) {
      await clock.sleep(retryPeriodMs, stop);
      for (;;) {
        const deadline = renewedAt + renewDeadlineMs;
        if (clock.now() >= deadline) {
          log.warn(
            { lease: this.#name, renewDeadlineMs },
            'could not renew the lease within the renew deadline: stopped leading',
          );
          this.#stopLeading('lost');
          return;
        }
        const started = clock.now();
        if (await this.#attempt(deadline)) {
          renewedAt = started;
          break;
        }
        const wait = deadline - clock.now();
        if (wait > 0) await clock.sleep(Math.min(retryPeriodMs, wait), stop);
      }
    }
  }

  #stopLeading(why: 'lost' | 'stopped'): void {
    const leadership = this.#leadership;
    if (leadership === undefined) return;
    this.#leadership = undefined;
    leadership.abort(new Error(why === 'lost' ? 'the lease was lost' : 'leader election stopped'));
    this.#callback(() => {
      this.#options.onStoppedLeading();
    });
  }

  #callback(call: () => void): void {
    try {
      call();
    } catch (error) {
      this.#options.log.error({ err: error }, 'a leader election callback failed');
    }
  }

  /** One try, given up at `deadline` (this replica's clock); false on any failure. */
  async #attempt(deadline: number): Promise<boolean> {
    try {
      return await this.#bounded(deadline, (signal) => this.#tryAcquireOrRenew(signal));
    } catch (error) {
      if (this.#stopping.signal.aborted) throw new Stopped('stopped');
      const level =
        isKubeApiError(error, 403) || isKubeApiError(error, 401)
          ? 'error'
          : this.isLeader
            ? 'warn'
            : 'debug';
      this.#options.log[level]({ err: error, lease: this.#name }, 'lease request failed');
      return false;
    }
  }

  /**
   * Runs `work` with a signal that aborts at `deadline` (or on stop(), when `stoppable`), and
   * gives up then even if the request does not: a connection that hangs must not hold the
   * leader past its deadline.
   */
  async #bounded<T>(
    deadline: number,
    work: (signal: AbortSignal) => Promise<T>,
    stoppable = true,
  ): Promise<T> {
    const { clock } = this.#options;
    const late = (): PrepullError =>
      new PrepullError('ERR_DEADLINE_EXCEEDED', `${this.#path}: no answer in time`);
    const remaining = deadline - clock.now();
    if (remaining <= 0) throw late();
    const timeout = new AbortController();
    const signal = stoppable
      ? AbortSignal.any([timeout.signal, this.#stopping.signal])
      : timeout.signal;
    const expired = clock.sleep(remaining, signal).then(() => {
      const error = late();
      timeout.abort(error);
      throw error;
    });
    const cancelled = new Promise<never>((_, reject) => {
      const fail = (): void => {
        const reason: unknown = signal.reason;
        reject(reason instanceof Error ? reason : new Stopped('stopped'));
      };
      if (signal.aborted) fail();
      else signal.addEventListener('abort', fail, { once: true });
    });
    try {
      return await Promise.race([work(signal), expired, cancelled]);
    } finally {
      timeout.abort();
      expired.catch(() => undefined);
      cancelled.catch(() => undefined);
    }
  }

  /** client-go's tryAcquireOrRenew: true when this replica holds the Lease afterwards. */
  async #tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const { clock, identity } = this.#options;
    const now = clock.now();
    if (await this.#renewUnread(now, signal)) return true;
    const lease = await this.#readOrCreate(now, signal);
    if (lease === 'created') return true;
    this.#observe(lease.spec ?? {}, now);
    const holder = lease.spec?.holderIdentity ?? '';
    if (holder !== '' && holder !== identity && this.#valid(now)) return false;
    try {
      await this.#write(this.#renewed(lease, now, holder === identity), now, signal);
      return true;
    } catch (error) {
      if (isKubeApiError(error, 409)) return false; // another candidate wrote first
      throw error;
    }
  }

  /** The leader's fast path: renew the Lease it wrote, without reading it first. */
  async #renewUnread(now: number, signal: AbortSignal): Promise<boolean> {
    if (!this.isLeader || this.#written === undefined || !this.#valid(now)) return false;
    try {
      await this.#write(this.#renewed(this.#written, now, true), now, signal);
      return true;
    } catch (error) {
      if (signal.aborted) throw error;
      this.#options.log.debug({ err: error }, 'renewal without a read failed; reading the lease');
      return false;
    }
  }

  /** The Lease as served; when there is none, 'created' held by this replica. */
  async #readOrCreate(now: number, signal: AbortSignal): Promise<Lease | 'created'> {
    try {
      return await this.#kube.request<Lease>('GET', this.#path, { signal });
    } catch (error) {
      if (!isKubeApiError(error, 404)) throw error;
    }
    if (await this.#create(now, signal)) return 'created';
    return this.#kube.request<Lease>('GET', this.#path, { signal });
  }

  /** Creates the Lease held by this replica; false when another candidate created it first. */
  async #create(now: number, signal: AbortSignal): Promise<boolean> {
    const { namespace, name, identity, leaseDurationMs } = this.#options;
    const body: Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace },
      spec: {
        holderIdentity: identity,
        leaseDurationSeconds: leaseDurationMs / 1000,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaseTransitions: 0,
      },
    };
    try {
      const created = await this.#kube.request<Lease>(
        'POST',
        `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`,
        { body, signal },
      );
      this.#written = created;
      this.#observe(created.spec ?? {}, now);
      return true;
    } catch (error) {
      if (isKubeApiError(error, 409)) return false; // AlreadyExists: read it
      throw error;
    }
  }

  /** The Lease held by this replica at `now`: a renewal keeps acquireTime and the count. */
  #renewed(lease: Lease, now: number, ours: boolean): Lease {
    const spec = lease.spec ?? {};
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: lease.metadata,
      spec: {
        ...spec,
        holderIdentity: this.#options.identity,
        leaseDurationSeconds: this.#options.leaseDurationMs / 1000,
        acquireTime: ours ? (spec.acquireTime ?? microTime(now)) : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (ours ? 0 : 1),
      },
    };
  }

  async #write(lease: Lease, now: number, signal: AbortSignal): Promise<void> {
    const written = await this.#put(lease, signal);
    this.#written = written;
    this.#observe(written.spec ?? {}, now);
  }

  #put(lease: Lease, signal: AbortSignal): Promise<Lease> {
    return this.#kube.request<Lease>('PUT', this.#path, { body: lease, signal });
  }

  /** Notes the record and, when it changed, restarts the wait for it to expire. */
  #observe(spec: LeaseSpec, now: number): void {
    const key = recordKey(spec);
    if (this.#observed?.key !== key) this.#observed = { key, spec, at: now };
    const holder = spec.holderIdentity ?? '';
    if (holder !== this.#reportedLeader) {
      this.#reportedLeader = holder;
      if (holder !== '') this.#options.log.info({ lease: this.#name, holder }, 'new leader');
      this.#callback(() => {
        this.#options.onNewLeader?.(holder);
      });
    }
  }

  /** Has the observed record changed within its lease duration (this replica's clock)? */
  #valid(now: number): boolean {
    const observed = this.#observed;
    if (observed === undefined) return false;
    const seconds = observed.spec.leaseDurationSeconds;
    const durationMs =
      typeof seconds === 'number' && seconds > 0 ? seconds * 1000 : this.#options.leaseDurationMs;
    return observed.at + durationMs > now;
  }
}
