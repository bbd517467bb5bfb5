// What containerd offers beyond CRI, plugged into the CRI adapter: pinning by the label CRI
// honours, image deletions and label changes from the events service, and pull progress from content ingests.

import { randomUUID } from 'node:crypto';
import { systemClock, type Clock } from '../../clock.ts';
import { PrepullError } from '../../errors.ts';
import type { CriExtras } from '../cri/runtime.ts';
import { isErrorLike } from '../error-text.ts';
import { canonicalName, isImageId } from '../../image/names.ts';
import type { DeletionEvent, PullProgress } from '../types.ts';
import { DeletionWatches, type OpenedStream, type StreamHandlers } from '../watch.ts';
import {
  decodeImageName,
  PINNED_LABEL,
  PINNED_VALUE,
  type ContainerdNative,
  type Envelope,
} from './native.ts';
import { DEFAULT_PROGRESS_INTERVAL_MS, pollIngests } from './progress.ts';

const DELETE_TOPIC = '/images/delete';
// A record's labels changed: another client (`ctr images label`) may have taken the pin off.
const UPDATE_TOPIC = '/images/update';
// Published by prepull to itself: receiving it proves the subscription is live (containerd sends
// nothing on a new subscription, not even headers, so there is no other way to know).
const READY_TOPIC = '/prepull/subscribed';
const READY_TYPE_URL = 'prepull.dev/SubscriptionCheck';
const SUBSCRIBE_TIMEOUT_MS = 10_000;

export interface ContainerdExtrasOptions {
  native: ContainerdNative;
  clock?: Clock;
  progressIntervalMs?: number;
}

export class ContainerdExtras implements CriExtras {
  readonly #native: ContainerdNative;
  readonly #clock: Clock;
  readonly #watches: DeletionWatches;
  readonly #progressIntervalMs: number;

  constructor(options: ContainerdExtrasOptions) {
    this.#native = options.native;
    this.#clock = options.clock ?? systemClock;
    this.#watches = new DeletionWatches({ clock: this.#clock });
    this.#progressIntervalMs = options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  }

  /**
   * The records among `names` (every record when no names are given), each with whether it
   * carries the pin label. Asking by name keeps a status check from listing every record on the
   * node: with hundreds of images, that made each check decode them all.
   */
  async pinRecords(names?: readonly string[]): Promise<ReadonlyMap<string, boolean>> {
    if (names?.length === 0) return new Map();
    // containerd ORs the filters of a list.
    const filters = names === undefined ? [] : names.map((name) => `name==${JSON.stringify(name)}`);
    const images = await this.#native.listImages(filters);
    return new Map(
      images.map((image) => [image.name, image.labels[PINNED_LABEL] === PINNED_VALUE]),
    );
  }

  async setPinned(names: readonly string[], pinned: boolean): Promise<void> {
    // All records at once: each update is a metadata transaction that containerd commits to
    // disk on its own, and one after another they kept a pull's caller waiting for each.
    const results = await Promise.allSettled(
      names.map((name) =>
        this.#native.setLabel(name, PINNED_LABEL, pinned ? PINNED_VALUE : undefined),
      ),
    );
    for (const result of results) {
      if (result.status === 'fulfilled') continue;
      const error: unknown = result.reason;
      // CRI lists names it may not hold a record for (a digest reference of an image pulled
      // by tag is recorded, an ID may not be on older versions): skip those.
      if (!(error instanceof PrepullError && error.code === 'ERR_IMAGE_NOT_FOUND')) throw error;
    }
  }

  watchDeletions(onEvent: (event: DeletionEvent) => void): Promise<() => void> {
    return this.#watches.subscribe((handlers) => this.#openStream(handlers), onEvent);
  }

  trackPull(onProgress: (progress: PullProgress) => void): { stop(): Promise<void> } {
    return pollIngests({
      clock: this.#clock,
      intervalMs: this.#progressIntervalMs,
      list: () => this.#native.listStatuses(),
      onProgress,
    });
  }

  close(): void {
    this.#watches.stopAll();
  }

  async #openStream(handlers: StreamHandlers): Promise<OpenedStream> {
    const namespace = `namespace==${JSON.stringify(this.#native.namespace)}`;
    const stream = this.#native.subscribe([
      `topic==${JSON.stringify(DELETE_TOPIC)},${namespace}`,
      `topic==${JSON.stringify(UPDATE_TOPIC)},${namespace}`,
      `topic==${JSON.stringify(READY_TOPIC)},${namespace}`,
    ]);
    const token = randomUUID();
    const state: SubscriptionState = { live: false, closing: false, failure: undefined };
    // Aborted when the token comes back or the stream fails before it does.
    const settled = new AbortController();
    const close = (): void => {
      state.closing = true;
      stream.cancel();
    };
    stream.on('data', (envelope: Envelope) => {
      const payload = envelope.event?.value ?? Buffer.alloc(0);
      if (envelope.topic === READY_TOPIC) {
        if (payload.toString('utf8') === token) {
          state.live = true;
          settled.abort();
        }
        return;
      }
      // ImageDelete and ImageUpdate both carry the record's name in field 1.
      const name = recordName(payload);
      if (!state.live || name === undefined) return;
      if (envelope.topic === UPDATE_TOPIC) handlers.updated?.(name);
      else handlers.removed(name);
    });
    const ended = (error: unknown): void => {
      if (!state.live) {
        state.failure ??= error;
        settled.abort();
      } else if (!state.closing) {
        handlers.ended(error);
      }
    };
    stream.on('error', ended);
    stream.on('end', () => {
      ended(new Error('containerd ended the event stream'));
    });
    try {
      await this.#confirm(token, state, settled.signal);
    } catch (error) {
      close();
      throw error;
    }
    return { close };
  }

  /**
   * Publishes the token until it comes back on the stream. containerd gives no sign that a
   * subscription is registered, and a token published before it is lost, hence the repeats:
   * the first after 10 ms, since the subscription is usually registered by then and a
   * `sync --once` with its images present waits for this before it can report.
   */
  async #confirm(token: string, state: SubscriptionState, settled: AbortSignal): Promise<void> {
    const started = this.#clock.now();
    for (let wait = 10; ; wait = Math.min(wait * 2, 1000)) {
      if (state.failure !== undefined) throw toError(state.failure);
      if (state.live) return;
      if (this.#clock.now() - started >= SUBSCRIBE_TIMEOUT_MS) {
        throw new PrepullError(
          'ERR_RUNTIME_UNAVAILABLE',
          `containerd did not confirm the event subscription within ${SUBSCRIBE_TIMEOUT_MS} ms`,
        );
      }
      await this.#native.publish(READY_TOPIC, READY_TYPE_URL, Buffer.from(token));
      try {
        await this.#clock.sleep(wait, settled);
      } catch {
        // settled: the loop's checks say how
      }
    }
  }
}

interface SubscriptionState {
  live: boolean;
  closing: boolean;
  failure: unknown;
}

function toError(value: unknown): Error {
  return isErrorLike(value) ? value : new Error('the event stream failed', { cause: value });
}

function recordName(payload: Buffer): string | undefined {
  const name = decodeImageName(payload);
  if (name === undefined) return undefined;
  return isImageId(name) ? name : (canonicalName(name) ?? name);
}
