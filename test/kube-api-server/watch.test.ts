// Watch semantics and an informer converging through dropped watches, a 410 and a burst of 500s.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { GROUP, eventually, startFixture, type Fixture } from './fixtures.ts';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-class-instance-assignment, @typescript-eslint/no-confusing-void-expression -- conformance tests handle untyped JSON and client-node's model classes as plain objects */
type Obj = any;
const V = 'v1alpha1';
let f: Fixture;

function widget(name: string, labels: Record<string, string> = {}): Obj {
  return {
    apiVersion: `${GROUP}/${V}`,
    kind: 'Widget',
    metadata: { name, labels },
    spec: { images: [{ image: 'nginx:1' }] },
  };
}
const w = (namespace: string) => ({ group: GROUP, version: V, namespace, plural: 'widgets' });
const path = (ns: string) => `/apis/${GROUP}/${V}/namespaces/${ns}/widgets`;

interface Seen {
  events: { type: string; object: Obj }[];
  done: Promise<unknown>;
  abort(): void;
}

async function watch(ns: string, params: Record<string, string | number | boolean>): Promise<Seen> {
  const events: Seen['events'] = [];
  let finish: (e: unknown) => void = () => undefined;
  const done = new Promise((r) => (finish = r));
  const controller = await new k8s.Watch(f.kc).watch(
    path(ns),
    params,
    (type, object) => events.push({ type, object }),
    (err) => {
      finish(err);
    },
  );
  return { events, done, abort: () => controller.abort() };
}

beforeAll(async () => {
  f = await startFixture({ bookmarkIntervalMs: 100 });
  for (const ns of ['w1', 'w2', 'w3', 'w4', 'inf'])
    await f.core.createNamespace({ body: { metadata: { name: ns } } });
});
afterAll(async () => {
  await f.server.stop();
});

describe('watch', () => {
  it('streams ADDED, MODIFIED, DELETED from a resourceVersion, skipping older changes', async () => {
    await f.custom.createNamespacedCustomObject({ ...w('w1'), body: widget('before') });
    const list: Obj = await f.custom.listNamespacedCustomObject(w('w1'));
    const seen = await watch('w1', { resourceVersion: list.metadata.resourceVersion });
    await f.custom.createNamespacedCustomObject({ ...w('w1'), body: widget('x') });
    await f.custom.patchNamespacedCustomObject(
      { ...w('w1'), name: 'x', body: { spec: { pin: false } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const deleted: Obj = await f.custom.deleteNamespacedCustomObject({ ...w('w1'), name: 'x' });
    await eventually(() => seen.events.length >= 3);
    expect(seen.events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual([
      'ADDED x',
      'MODIFIED x',
      'DELETED x',
    ]);
    expect(seen.events[2]!.object.kind).toBe('Widget');
    expect(Number(seen.events[2]!.object.metadata.resourceVersion)).toBeGreaterThan(
      Number(deleted.metadata.resourceVersion),
    );
    seen.abort();
  });

  it('replays history after an older resourceVersion, and sends current state for resourceVersion 0', async () => {
    const created: Obj = await f.custom.createNamespacedCustomObject({
      ...w('w2'),
      body: widget('r1'),
    });
    await f.custom.createNamespacedCustomObject({ ...w('w2'), body: widget('r2') });
    const replay = await watch('w2', { resourceVersion: created.metadata.resourceVersion });
    await eventually(() => replay.events.length >= 1);
    expect(replay.events.map((e) => e.object.metadata.name)).toEqual(['r2']);
    const fromZero = await watch('w2', { resourceVersion: '0' });
    await eventually(() => fromZero.events.length >= 2);
    expect(fromZero.events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual([
      'ADDED r1',
      'ADDED r2',
    ]);
    replay.abort();
    fromZero.abort();
  });

  it('turns selector transitions into ADDED and DELETED for a label-selected watch', async () => {
    const list: Obj = await f.custom.listNamespacedCustomObject(w('w3'));
    const seen = await watch('w3', {
      resourceVersion: list.metadata.resourceVersion,
      labelSelector: 'pick=yes',
    });
    await f.custom.createNamespacedCustomObject({ ...w('w3'), body: widget('t') });
    const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
    await f.custom.patchNamespacedCustomObject(
      { ...w('w3'), name: 't', body: { metadata: { labels: { pick: 'yes' } } } },
      merge,
    );
    await f.custom.patchNamespacedCustomObject(
      { ...w('w3'), name: 't', body: { metadata: { labels: { pick: 'no' } } } },
      merge,
    );
    await eventually(() => seen.events.length >= 2);
    expect(seen.events.map((e) => e.type)).toEqual(['ADDED', 'DELETED']);
    seen.abort();
  });

  it('sends BOOKMARK events when asked and ends at timeoutSeconds', async () => {
    const seen = await watch('w4', {
      resourceVersion: '0',
      allowWatchBookmarks: true,
      timeoutSeconds: 1,
    });
    await seen.done;
    const bookmarks = seen.events.filter((e) => e.type === 'BOOKMARK');
    expect(bookmarks.length).toBeGreaterThan(2);
    expect(bookmarks[0]!.object).toEqual({
      kind: 'Widget',
      apiVersion: `${GROUP}/${V}`,
      metadata: { resourceVersion: expect.any(String) },
    });
  });

  it('answers a resourceVersion older than the history window with an ERROR event carrying 410 Expired', async () => {
    const list: Obj = await f.custom.listNamespacedCustomObject(w('w4'));
    await f.custom.createNamespacedCustomObject({ ...w('w4'), body: widget('c') });
    f.server.faults.compact();
    const seen = await watch('w4', { resourceVersion: list.metadata.resourceVersion });
    await seen.done;
    expect(seen.events).toEqual([
      {
        type: 'ERROR',
        object: {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: `too old resource version: ${list.metadata.resourceVersion} (${f.server.store.compactedResourceVersion})`,
          reason: 'Expired',
          code: 410,
        },
      },
    ]);
  });
});

describe('informer', () => {
  it('converges through dropped watches, a 410 and a burst of 500s (its owner restarts it on errors)', async () => {
    const ns = 'inf';
    const listFn = () =>
      f.custom.listNamespacedCustomObject(w(ns)) as Promise<
        k8s.KubernetesListObject<k8s.KubernetesObject>
      >;
    const informer = k8s.makeInformer(f.kc, path(ns), listFn);
    let restarts = 0;
    let errors = 0;
    let stopped = false;
    // ListWatch stops on any error but 410: the owner restarts it, as the agent must.
    informer.on('error', () => {
      errors++;
      setTimeout(() => {
        if (stopped) return;
        restarts++;
        void informer.start();
      }, 50);
    });
    const names = () =>
      informer
        .list()
        .map((o) => o.metadata!.name!)
        .sort();
    // The server's truth, read in-process so the injected faults hit only the informer.
    const serverNames = () =>
      f.server.store
        .list(`${GROUP}/widgets`, ns)
        .map((o: Obj) => o.metadata.name)
        .sort();
    const converged = () => JSON.stringify(names()) === JSON.stringify(serverNames());

    for (const i of [1, 2, 3])
      await f.custom.createNamespacedCustomObject({ ...w(ns), body: widget(`i${i}`) });
    await informer.start();
    await eventually(converged);

    expect(f.server.faults.dropWatches()).toBeGreaterThan(0);
    await f.custom.createNamespacedCustomObject({ ...w(ns), body: widget('after-drop') });
    await eventually(converged, 10_000);

    // A 410: history is compacted while the watch is down, so the resumed watch is too old.
    await f.custom.deleteNamespacedCustomObject({ ...w(ns), name: 'i1' });
    await eventually(converged, 10_000);
    // New requests are held, so the informer's reconnect waits while history is compacted.
    f.server.faults.pause();
    f.server.faults.dropWatches();
    const during410 = widget('during-410');
    during410.metadata.namespace = ns;
    f.server.apply(during410);
    f.server.faults.compact();
    f.server.faults.resume();
    await eventually(converged, 10_000);

    // A burst of 500s on every request to the collection: list and watch fail, ListWatch stops.
    f.server.faults.failNext({ path: `/namespaces/${ns}/widgets`, code: 500, times: 5 });
    f.server.faults.dropWatches();
    const during500s = widget('during-500s');
    during500s.metadata.namespace = ns;
    f.server.apply(during500s);
    await eventually(converged, 20_000);
    expect(errors).toBeGreaterThan(0);
    expect(restarts).toBeGreaterThan(0);
    stopped = true;
    await informer.stop();
  }, 30_000);
});
