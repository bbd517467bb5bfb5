// PrePull status writes with a fake API and a ManualClock: merge patch of the whole status with
// nulls for what went away, no write when the served status says the same (key order aside),
// at most one write per interval per PrePull with the newest status winning, 404 drops, other
// errors retry with backoff, the leader's guard, and the informer lagging behind our own write.
import { describe, expect, it } from '@jest/globals';
import type { PrePullStatus } from '../api/rollout.ts';
import { ManualClock } from '../clock.ts';
import {
  KubeApiError,
  type KubeRequester,
  type Method,
  type RequestOptions,
} from '../kube/client.ts';
import { createLogger } from '../telemetry/logger.ts';
import {
  PrePullStatusWriter,
  type ServedStatus,
  type WriteResult,
  canonicalJson,
  replacingPatch,
} from './status-writer.ts';

const log = createLogger('silent');
const KEY = 'shop/web';
const PATH = '/apis/prepull.dev/v1alpha1/namespaces/shop/prepulls/web/status';

interface Call {
  method: Method;
  path: string;
  options: RequestOptions | undefined;
}

class FakeApi implements KubeRequester {
  readonly calls: Call[] = [];
  failures: Error[] = [];
  hold: Promise<void> | undefined;

  async request<T>(method: Method, path: string, options?: RequestOptions): Promise<T> {
    this.calls.push({ method, path, options });
    if (this.hold !== undefined) await this.hold;
    const failure = this.failures.shift();
    if (failure !== undefined) throw failure;
    return {} as T;
  }
}

function status(ready: number, extra: Partial<PrePullStatus> = {}): PrePullStatus {
  return {
    observedGeneration: 1,
    nodes: { selected: 100, ready, pulling: 0, failed: 0 },
    images: [],
    message: `${ready}/100 nodes ready`,
    conditions: [],
    ...extra,
  };
}

function setup(served: Map<string, ServedStatus>, over: { mayWrite?: () => boolean } = {}) {
  const api = new FakeApi();
  const clock = new ManualClock(1_000_000);
  const results: WriteResult[] = [];
  const writer = new PrePullStatusWriter(api, {
    clock,
    log,
    served: (key) => served.get(key),
    onWrite: (r) => results.push(r),
    ...over,
  });
  return { api, clock, writer, results };
}

/** The same value with every object's keys in reverse order. */
function reversed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversed);
  if (typeof value !== 'object' || value === null) return value;
  const entries = Object.entries(value).reverse();
  return Object.fromEntries(entries.map(([k, v]) => [k, reversed(v)]));
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

describe('canonicalJson and replacingPatch', () => {
  it('ignores key order only', () => {
    expect(canonicalJson({ b: 1, a: [{ y: 1, x: 2 }] })).toBe(
      canonicalJson({ a: [{ x: 2, y: 1 }], b: 1 }),
    );
    expect(canonicalJson({ a: [1, 2] })).not.toBe(canonicalJson({ a: [2, 1] }));
  });

  it('carries the whole new value and nulls what went away, at any object depth', () => {
    expect(
      replacingPatch(
        { rollout: { paused: true, maxConcurrentNodes: 2, admitted: [] }, message: 'm', extra: 1 },
        { rollout: { paused: false, admitted: [{ node: 'a' }] }, message: 'n' },
      ),
    ).toEqual({
      rollout: { paused: false, admitted: [{ node: 'a' }], maxConcurrentNodes: null },
      message: 'n',
      extra: null,
    });
  });
});

describe('PrePullStatusWriter', () => {
  it('writes the whole status as a merge patch on /status, with null for rollout gone', async () => {
    const served = new Map([
      [KEY, { status: status(0, { rollout: { paused: false, admitted: [] } }) }],
    ]);
    const { api, writer, results } = setup(served);
    writer.update(KEY, status(1));
    await flush();
    expect(api.calls).toEqual([
      {
        method: 'PATCH',
        path: PATH,
        options: {
          contentType: 'application/merge-patch+json',
          body: { status: { ...status(1), rollout: null } },
        },
      },
    ]);
    expect(results).toEqual(['ok']);
  });

  it('writes nothing when the served status is the same but for key order', async () => {
    const same = reversed(status(3));
    const { api, writer } = setup(new Map([[KEY, { status: same }]]));
    writer.update(KEY, status(3));
    await flush();
    expect(api.calls).toEqual([]);
  });

  it('makes at most one write per second of 100 updates in one second, the newest winning', async () => {
    const served = new Map([[KEY, { status: status(0), resourceVersion: '1' }]]);
    const { api, clock, writer } = setup(served);
    for (let i = 1; i <= 100; i++) {
      writer.update(KEY, status(i));
      await flush();
      await clock.advance(9);
    }
    // The first went out at once; the other 99 wait for the rest of the second, coalesced.
    expect(api.calls).toHaveLength(1);
    expect(clock.now() - 1_000_000).toBe(900);
    await clock.advance(99);
    await flush();
    expect(api.calls).toHaveLength(1);
    await clock.advance(1);
    await flush();
    expect(api.calls).toHaveLength(2);
    expect((api.calls[1]?.options?.body as { status: PrePullStatus }).status.nodes.ready).toBe(100);
    await clock.advance(5000);
    expect(api.calls).toHaveLength(2);
  });

  it('skips a write the informer already shows by then', async () => {
    const served = new Map([[KEY, { status: status(0) }]]);
    const { api, clock, writer } = setup(served);
    writer.update(KEY, status(1));
    writer.update(KEY, status(2));
    await flush();
    served.set(KEY, { status: status(2) });
    await clock.advance(1000);
    expect(api.calls).toHaveLength(1);
  });

  it('does not write again what it wrote while the informer still shows the version before', async () => {
    const served = new Map([[KEY, { status: status(0), resourceVersion: '7' }]]);
    const { api, clock, writer } = setup(served);
    writer.update(KEY, status(1));
    await flush();
    await clock.advance(2000);
    writer.update(KEY, status(1));
    await clock.advance(2000);
    expect(api.calls).toHaveLength(1);
    // Someone else changed it since (a new resourceVersion): ours is written again.
    served.set(KEY, { status: status(0), resourceVersion: '9' });
    writer.update(KEY, status(1));
    await flush();
    expect(api.calls).toHaveLength(2);
  });

  it('drops the write on 404 (PrePull deleted)', async () => {
    const served = new Map([[KEY, { status: status(0) }]]);
    const { api, clock, writer, results } = setup(served);
    api.failures = [
      new KubeApiError('ERR_KUBE_NOT_FOUND', 'gone', { status: 404, reason: 'NotFound' }),
    ];
    writer.update(KEY, status(1));
    await flush();
    await clock.advance(60_000);
    expect(api.calls).toHaveLength(1);
    expect(results).toEqual([]);
    expect(writer.busy).toBe(0);
  });

  it('forgets a PrePull the informer no longer serves', async () => {
    const { api, writer } = setup(new Map());
    writer.update(KEY, status(1));
    await flush();
    expect(api.calls).toEqual([]);
  });

  it('retries other errors with backoff, keeping the newest status', async () => {
    const served = new Map([[KEY, { status: status(0) }]]);
    const { api, clock, writer, results } = setup(served);
    const unavailable = () =>
      new KubeApiError('ERR_KUBE_UNAVAILABLE', 'down', { status: 503, reason: '' });
    api.failures = [
      unavailable(),
      new KubeApiError('ERR_KUBE_CONFLICT', 'conflict', { status: 409, reason: 'Conflict' }),
    ];
    writer.update(KEY, status(1));
    await flush();
    writer.update(KEY, status(2));
    await clock.advance(1999);
    expect(api.calls).toHaveLength(1);
    await clock.advance(1);
    expect(api.calls).toHaveLength(2);
    await clock.advance(3999);
    expect(api.calls).toHaveLength(2);
    await clock.advance(1);
    expect(api.calls).toHaveLength(3);
    expect(results).toEqual(['error', 'conflict', 'ok']);
    expect((api.calls[2]?.options?.body as { status: PrePullStatus }).status.nodes.ready).toBe(2);
  });

  it('writes nothing while the guard says no, and clear() drops what waits', async () => {
    let leading = false;
    const served = new Map([[KEY, { status: status(0) }]]);
    const { api, clock, writer } = setup(served, { mayWrite: () => leading });
    writer.update(KEY, status(1));
    await flush();
    expect(api.calls).toEqual([]);
    leading = true;
    writer.update(KEY, status(2));
    await flush();
    expect(api.calls).toHaveLength(1);
    writer.update(KEY, status(3));
    writer.clear();
    await clock.advance(5000);
    expect(api.calls).toHaveLength(1);
  });

  it('stop() waits for the write in flight and writes nothing after', async () => {
    const served = new Map([[KEY, { status: status(0) }]]);
    const { api, clock, writer, results } = setup(served);
    let release = (): void => undefined;
    api.hold = new Promise((resolve) => (release = resolve));
    writer.update(KEY, status(1));
    await flush();
    writer.update(KEY, status(2));
    let stopped = false;
    const stopping = writer.stop().then(() => (stopped = true));
    await flush();
    expect(stopped).toBe(false);
    release();
    await stopping;
    await clock.advance(5000);
    expect(api.calls).toHaveLength(1);
    expect(results).toEqual(['ok']);
  });
});
