// Kubernetes Events (events.k8s.io/v1) on PrePulls: pulled, repaired, pull failed, digest drift.
// As client-go's event recorder does: the same event again within a few minutes becomes a series
// (count and lastObservedTime patched onto the first), and each object gets a token bucket so a
// failing image cannot flood the API server. Events are best effort: a failure is logged, never
// retried, and never blocks the engine.
import { API_VERSION, KIND } from '../api/prepull.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { KubeRequester } from './client.ts';

export const REPORTING_CONTROLLER = 'prepull.dev/agent';

export interface Regarding {
  namespace: string;
  name: string;
  uid?: string | undefined;
}

export interface EventInput {
  type: 'Normal' | 'Warning';
  reason: string;
  action: string;
  note: string;
  /** The Node the event is also about (default: the recorder's own node, if it has one). */
  relatedNode?: string;
}

export interface EventRecorderOptions {
  /** This node's name: the reportingInstance, and the `related` object. */
  node: string;
  /** reportingController (default prepull.dev/agent). */
  reportingController?: string;
  /** Whether `node` is the events' `related` Node (default true; false for the controller). */
  nodeIsRelated?: boolean;
  clock: Clock;
  log: Logger;
  /** Events one object may get at once (default 25, as client-go's spam filter). */
  burst?: number;
  /** One more event allowed per this many ms (default 10 s). */
  refillMs?: number;
  /** The same event within this many ms continues a series (default 6 minutes, as client-go). */
  seriesWindowMs?: number;
  onRecord?: (result: 'created' | 'series' | 'dropped' | 'error') => void;
}

interface Series {
  name: string;
  namespace: string;
  count: number;
  lastObservedAt: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

const NOTE_LIMIT = 1024;

export class EventRecorder {
  readonly #api: KubeRequester;
  readonly #options: Required<Omit<EventRecorderOptions, 'onRecord'>> &
    Pick<EventRecorderOptions, 'onRecord'>;
  readonly #series = new Map<string, Series>();
  readonly #buckets = new Map<string, Bucket>();
  #queue: Promise<void> = Promise.resolve();
  #sequence = 0;

  constructor(api: KubeRequester, options: EventRecorderOptions) {
    this.#api = api;
    this.#options = {
      burst: 25,
      refillMs: 10_000,
      seriesWindowMs: 6 * 60_000,
      reportingController: REPORTING_CONTROLLER,
      nodeIsRelated: true,
      ...options,
    };
  }

  /** Records an event on a PrePull; sent in order, in the background. */
  record(regarding: Regarding, input: EventInput): void {
    const now = this.#options.clock.now();
    const object = `${regarding.namespace}/${regarding.name}`;
    if (!this.#take(object, now)) {
      this.#options.onRecord?.('dropped');
      this.#options.log.debug({ prePull: object, reason: input.reason }, 'event rate-limited');
      return;
    }
    const note = input.note.slice(0, NOTE_LIMIT);
    const key = [
      object,
      regarding.uid ?? '',
      input.type,
      input.reason,
      input.action,
      note,
      input.relatedNode ?? '',
    ].join('\u0000');
    this.#queue = this.#queue.then(() => this.#send(key, regarding, { ...input, note }, now));
  }

  /** Waits for the events recorded so far to be sent. */
  async flush(): Promise<void> {
    await this.#queue;
  }

  #take(object: string, now: number): boolean {
    const { burst, refillMs } = this.#options;
    const bucket = this.#buckets.get(object) ?? { tokens: burst, at: now };
    const refilled = Math.min(burst, bucket.tokens + (now - bucket.at) / refillMs);
    if (refilled < 1) {
      this.#buckets.set(object, { tokens: refilled, at: now });
      return false;
    }
    this.#buckets.set(object, { tokens: refilled - 1, at: now });
    return true;
  }

  async #send(key: string, regarding: Regarding, input: EventInput, now: number): Promise<void> {
    const { log, onRecord, seriesWindowMs } = this.#options;
    const series = this.#series.get(key);
    try {
      if (series !== undefined && now - series.lastObservedAt <= seriesWindowMs) {
        series.count++;
        series.lastObservedAt = now;
        await this.#api.request(
          'PATCH',
          `/apis/events.k8s.io/v1/namespaces/${series.namespace}/events/${series.name}`,
          {
            body: { series: { count: series.count, lastObservedTime: microTime(now) } },
            contentType: 'application/merge-patch+json',
          },
        );
        onRecord?.('series');
        return;
      }
      // Every node's agent names events on the same PrePull: the time and this agent's sequence
      // alone collided across nodes (409 AlreadyExists, the event lost: 12–25 % of them at 500
      // nodes in bench/fleet.bench.ts), so a random part follows, as client-go's nanoseconds do.
      const unique = Math.floor(this.#options.clock.random() * 0x1000000)
        .toString(16)
        .padStart(6, '0');
      const name = `${regarding.name}.${(now * 1000 + (this.#sequence++ % 1000)).toString(16)}${unique}`;
      await this.#api.request(
        'POST',
        `/apis/events.k8s.io/v1/namespaces/${regarding.namespace}/events`,
        {
          body: this.#event(name, regarding, input, now),
        },
      );
      this.#series.set(key, {
        name,
        namespace: regarding.namespace,
        count: 1,
        lastObservedAt: now,
      });
      this.#prune(now);
      onRecord?.('created');
    } catch (error) {
      // A series whose event is gone (expired after its TTL) starts again next time.
      this.#series.delete(key);
      onRecord?.('error');
      log.warn(
        { err: error, prePull: `${regarding.namespace}/${regarding.name}` },
        'could not record an event',
      );
    }
  }

  #event(name: string, regarding: Regarding, input: EventInput, now: number): object {
    const related = input.relatedNode ?? (this.#options.nodeIsRelated ? this.#options.node : '');
    return {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name, namespace: regarding.namespace },
      eventTime: microTime(now),
      reportingController: this.#options.reportingController,
      reportingInstance: this.#options.node,
      action: input.action,
      reason: input.reason,
      type: input.type,
      note: input.note,
      regarding: {
        apiVersion: API_VERSION,
        kind: KIND,
        namespace: regarding.namespace,
        name: regarding.name,
        ...(regarding.uid !== undefined ? { uid: regarding.uid } : {}),
      },
      ...(related !== '' ? { related: { apiVersion: 'v1', kind: 'Node', name: related } } : {}),
    };
  }

  #prune(now: number): void {
    for (const [key, series] of this.#series) {
      if (now - series.lastObservedAt > this.#options.seriesWindowMs) this.#series.delete(key);
    }
  }
}
