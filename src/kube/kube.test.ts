// The agent's Kubernetes writers against the project's API test server: NodeImageCache status
// coalescing, conflicts and re-creation; Events with series and rate limits.
import { pollUntil } from '../testing/poll.ts';
import { parseReference } from '../image/reference.ts';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { KubeApiServer } from '../../test/kube-api-server/index.ts';
import type { JsonObject } from '../../test/kube-api-server/json.ts';
import { type NodeImageCache, nodeImageCacheStatus } from '../api/nodeimagecache.ts';
import { ManualClock, systemClock } from '../clock.ts';
import { createLogger } from '../telemetry/logger.ts';
import { KubeClient, isKubeApiError } from './client.ts';
import { EventRecorder, microTime } from './events.ts';
import { PullSecrets } from './secrets.ts';
import { COLLECTION, NodeImageCacheWriter } from './status.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const log = createLogger('silent');
const RUNTIME = { name: 'containerd', version: '1.6.20', endpoint: 'unix:///run/c.sock' };

let server: KubeApiServer;
let kube: KubeClient;

function status(
  present: number,
  total: number,
  now = '2026-01-01T00:00:00.000Z',
  previous?: ReturnType<typeof nodeImageCacheStatus>,
) {
  const images = Array.from({ length: total }, (_, i) => ({
    image: `r.test/app-${i}:1`,
    requiredBy: ['ns/pp'],
    state: i < present ? ('Present' as const) : ('Pulling' as const),
    reason: i < present ? 'Present' : 'Pulling',
    attempts: 1,
  }));
  return nodeImageCacheStatus(images, RUNTIME, {}, { now, previous });
}

function stored(name: string): NodeImageCache | undefined {
  return server.get('prepull.dev/v1alpha1', 'NodeImageCache', name) as NodeImageCache | undefined;
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  await pollUntil('condition', check, { timeoutMs, intervalMs: 10 });
}

function statusWrites(): number {
  return server.accounting
    .all()
    .filter((r) => r.verb === 'update' && r.resource === 'prepull.dev/nodeimagecaches/status')
    .filter((r) => r.code === 200).length;
}

beforeAll(async () => {
  server = await KubeApiServer.start();
  server.applyManifests(join(REPO, 'deploy', 'namespace.yaml'));
  server.applyManifests(join(REPO, 'deploy', 'crds'));
  server.applyManifests(join(REPO, 'deploy', 'rbac.yaml'));
  // PullSecrets here read secrets directly (--pull-secrets direct), with the optional grant for
  // that; the controller's copies are src/controller/pull-secrets.test.ts's.
  server.applyManifests(join(REPO, 'deploy', 'agent-direct-secrets.yaml'));
  const { kubeconfig } = server.serviceAccount('prepull-system', 'prepull-agent');
  kube = KubeClient.load(kubeconfig);
  server.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } });
});

afterAll(async () => {
  await server.stop();
});

describe('KubeClient', () => {
  it('maps API Status answers to coded errors with the server message', async () => {
    const error = await kube
      .request('GET', '/api/v1/namespaces/ns/secrets/none')
      .catch((e: unknown) => e);
    expect(isKubeApiError(error, 404)).toBe(true);
    expect(error).toMatchObject({ code: 'ERR_KUBE_NOT_FOUND', reason: 'NotFound' });
    const denied = await kube.request('GET', '/api/v1/secrets').catch((e: unknown) => e);
    expect(denied).toMatchObject({ code: 'ERR_KUBE_FORBIDDEN', status: 403 });
    expect((denied as Error).message).toContain('cannot list resource "secrets"');
  });

  it('refuses a kubeconfig it cannot read, naming it', () => {
    expect(() => KubeClient.load('/nonexistent/kubeconfig')).toThrow(
      /--kubeconfig \/nonexistent\/kubeconfig: cannot load it/,
    );
  });
});

describe('NodeImageCacheWriter', () => {
  it('creates the object owned by its Node and coalesces a burst of changes into few writes', async () => {
    const writer = new NodeImageCacheWriter(kube, {
      clock: systemClock,
      log,
      minIntervalMs: 300,
    });
    await writer.ensure({ name: 'n1', uid: 'uid-n1' });
    expect(stored('n1')?.metadata.ownerReferences).toEqual([
      { apiVersion: 'v1', kind: 'Node', name: 'n1', uid: 'uid-n1' },
    ]);
    const before = statusWrites();
    const started = Date.now();
    for (let present = 0; present <= 50; present++) {
      writer.update(status(present, 50));
      await new Promise((r) => setTimeout(r, 10));
    }
    await until(() => stored('n1')?.status?.summary.present === 50);
    const elapsed = Date.now() - started;
    const writes = statusWrites() - before;
    // At most one write per interval (plus the first, which goes at once).
    expect(writes).toBeLessThanOrEqual(Math.ceil(elapsed / 300) + 1);
    expect(writes).toBeLessThan(51);

    // The same content again writes nothing. (The server counts a request when its answer is
    // sent, a moment after the store changed: let the last one land first.)
    await new Promise((r) => setTimeout(r, 300));
    const settled = statusWrites();
    // (A later clock, but the Ready condition keeps its transition time: nothing changed.)
    writer.update(status(50, 50, '2026-01-02T00:00:00.000Z', writer.lastWritten));
    await new Promise((r) => setTimeout(r, 700));
    expect(statusWrites()).toBe(settled);
    await writer.stop();
  });

  it('repeats the status while an image is Pulling (a heartbeat), and stops once none is', async () => {
    const writer = new NodeImageCacheWriter(kube, {
      clock: systemClock,
      log,
      minIntervalMs: 50,
      heartbeatMs: 150,
    });
    await writer.ensure({ name: 'n-heartbeat', uid: 'uid-hb' });
    const stamp = (): string | undefined => stored('n-heartbeat')?.status?.lastUpdateTime;
    const seen = new Set<string>();
    const watch = setInterval(() => {
      const value = stamp();
      if (value !== undefined) seen.add(value);
    }, 10);
    try {
      writer.update(status(1, 2));
      // Nothing changes, yet the writes go on: the heartbeat of a node with a pull in flight.
      await until(() => seen.size >= 4, 5000);
      // Every image Present: one write of that, then silence.
      writer.update(status(2, 2));
      await until(() => stored('n-heartbeat')?.status?.summary.present === 2);
      const last = stamp();
      await new Promise((r) => setTimeout(r, 600));
      expect(stamp()).toBe(last);
    } finally {
      clearInterval(watch);
      await writer.stop();
    }
  });

  it('writes a pull’s progress only with the writes it makes anyway: a change, the heartbeat', async () => {
    /** Image 0 Present, image 1 Pulling with `bytes` done; `present` 2: both Present. */
    const pulling = (bytes: number, present = 1) =>
      nodeImageCacheStatus(
        [0, 1].map((i) => ({
          image: `r.test/big-${i}:1`,
          requiredBy: ['ns/pp'],
          state: i < present ? ('Present' as const) : ('Pulling' as const),
          reason: i < present ? 'Present' : 'Pulling',
          attempts: 1,
          ...(i >= present ? { progress: { bytes, totalBytes: 1000 } } : {}),
        })),
        RUNTIME,
        {},
        { now: '2026-01-01T00:00:00.000Z' },
      );
    const progressOf = (name: string) =>
      stored(name)?.status?.images.find((i) => i.image === 'r.test/big-1:1')?.progress;
    const writer = new NodeImageCacheWriter(kube, {
      clock: systemClock,
      log,
      minIntervalMs: 50,
      heartbeatMs: 60_000,
    });
    await writer.ensure({ name: 'n-progress', uid: 'uid-progress' });
    try {
      writer.update(pulling(100));
      await until(() => progressOf('n-progress')?.bytes === 100);
      await new Promise((r) => setTimeout(r, 100));
      const before = statusWrites();
      // The bytes move, nothing else does: no write, however long.
      for (let bytes = 200; bytes <= 900; bytes += 100) {
        writer.update(pulling(bytes));
        await new Promise((r) => setTimeout(r, 30));
      }
      await new Promise((r) => setTimeout(r, 300));
      expect(statusWrites()).toBe(before);
      expect(progressOf('n-progress')).toEqual({ bytes: 100, totalBytes: 1000 });
      // The last status read back (which a restart compares with) holds no progress.
      expect(JSON.stringify(writer.lastWritten)).not.toContain('progress');
    } finally {
      await writer.stop();
    }

    // With a heartbeat: its writes carry the latest figure.
    const beating = new NodeImageCacheWriter(kube, {
      clock: systemClock,
      log,
      minIntervalMs: 50,
      heartbeatMs: 200,
    });
    await beating.ensure({ name: 'n-progress-hb', uid: 'uid-progress-hb' });
    try {
      beating.update(pulling(100));
      await until(() => progressOf('n-progress-hb')?.bytes === 100);
      beating.update(pulling(700));
      await until(() => progressOf('n-progress-hb')?.bytes === 700);
      // Done: the image is Present, and its entry has no progress any more.
      beating.update(pulling(1000, 2));
      await until(() => stored('n-progress-hb')?.status?.summary.present === 2);
      expect(progressOf('n-progress-hb')).toBeUndefined();
    } finally {
      await beating.stop();
    }
  });

  it('survives a conflicting write and re-creates a deleted object', async () => {
    const writer = new NodeImageCacheWriter(kube, { clock: systemClock, log, minIntervalMs: 50 });
    await writer.ensure({ name: 'n2', uid: 'uid-n2' });
    writer.update(status(1, 2));
    await until(() => stored('n2')?.status?.summary.present === 1);

    // Someone else writes: the writer's resourceVersion is stale, its next PUT gets 409.
    const other = stored('n2') as unknown as JsonObject;
    server.apply({ ...other, metadata: { ...(other.metadata as JsonObject), labels: { x: 'y' } } });
    writer.update(status(2, 2));
    await until(() => stored('n2')?.status?.summary.present === 2);
    const conflicts = server.accounting
      .all()
      .filter((r) => r.resource === 'prepull.dev/nodeimagecaches/status' && r.code === 409);
    expect(conflicts.length).toBeGreaterThan(0);

    // Deleted (by an admin): created again with the status.
    await fetchDelete('n2');
    expect(stored('n2')).toBeUndefined();
    writer.update(status(0, 2));
    await until(() => stored('n2')?.status?.summary.required === 2);
    await writer.stop();
  });
});

async function fetchDelete(name: string): Promise<void> {
  const admin = KubeClient.load(server.adminKubeconfig());
  await admin.request('DELETE', `${COLLECTION}/${name}`);
}

describe('EventRecorder', () => {
  it('records events.k8s.io events, folds repeats into a series, and rate-limits per object', async () => {
    const clock = new ManualClock(Date.parse('2026-03-01T10:00:00Z'));
    const results: string[] = [];
    const recorder = new EventRecorder(kube, {
      node: 'node-e',
      clock,
      log,
      burst: 3,
      refillMs: 60_000,
      onRecord: (r) => results.push(r),
    });
    const regarding = { namespace: 'ns', name: 'pp', uid: 'uid-pp' };
    const failed = {
      type: 'Warning' as const,
      reason: 'PullFailed',
      action: 'Pull',
      note: 'pull of r.test/a:1 failed: unauthorized (ERR_REGISTRY_UNAUTHORIZED)',
    };
    recorder.record(regarding, failed);
    await clock.advance(1000);
    recorder.record(regarding, failed);
    await clock.advance(1000);
    recorder.record(regarding, failed);
    recorder.record(regarding, failed); // over the burst: dropped
    await recorder.flush();
    // (The drop is decided at once; sends finish in order later.)
    expect([...results].sort()).toEqual(['created', 'dropped', 'series', 'series']);
    const events = server.store.list('events.k8s.io/events', 'ns');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      reason: 'PullFailed',
      type: 'Warning',
      action: 'Pull',
      reportingController: 'prepull.dev/agent',
      reportingInstance: 'node-e',
      regarding: { apiVersion: 'prepull.dev/v1alpha1', kind: 'PrePull', name: 'pp', uid: 'uid-pp' },
      related: { kind: 'Node', name: 'node-e' },
      eventTime: microTime(Date.parse('2026-03-01T10:00:00Z')),
      series: { count: 3, lastObservedTime: '2026-03-01T10:00:02.000000Z' },
    });

    // A minute later one token is back; past the series window the same note is a new event.
    await clock.advance(7 * 60_000);
    recorder.record(regarding, failed);
    await recorder.flush();
    expect(results.at(-1)).toBe('created');
    expect(server.store.list('events.k8s.io/events', 'ns')).toHaveLength(2);
  });
});

describe('PullSecrets', () => {
  const image = {
    ref: 'r.test/team/app:1',
    written: 'r.test/team/app:1',
    reference: parseReference('r.test/team/app:1'),
    requiredBy: ['ns/pp'],
    secrets: [{ namespace: 'ns', name: 'regcred' }],
  } as unknown as Parameters<PullSecrets['forImage']>[0];

  function secret(password: string): JsonObject {
    const auth = Buffer.from(`u:${password}`).toString('base64');
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { namespace: 'ns', name: 'regcred' },
      type: 'kubernetes.io/dockerconfigjson',
      data: {
        '.dockerconfigjson': Buffer.from(
          JSON.stringify({ auths: { 'r.test': { auth } } }),
        ).toString('base64'),
      },
    };
  }

  it('reads a secret once, again after the registry refused it or the TTL passed', async () => {
    server.apply(secret('first'));
    const clock = new ManualClock(1_000_000);
    let reads = 0;
    const secrets = new PullSecrets(kube, {
      clock,
      ttlMs: 60_000,
      onRead: () => reads++,
      from: 'direct',
    });
    const first = await secrets.forImage(image);
    expect(first.map((c) => c.password)).toEqual(['first']);
    await secrets.forImage(image);
    expect(reads).toBe(1);

    server.apply(secret('rotated'));
    expect((await secrets.forImage(image)).map((c) => c.password)).toEqual(['first']);
    secrets.refused(image);
    expect((await secrets.forImage(image)).map((c) => c.password)).toEqual(['rotated']);
    expect(reads).toBe(2);
    await clock.advance(60_000);
    await secrets.forImage(image);
    expect(reads).toBe(3);
  });

  // ADR 0017: an auth that is not UTF-8 fails that secret (the images naming it), by name only;
  // tokens are dropped as kubelet drops them.
  it('refuses a secret whose auth is not UTF-8, and only that secret', async () => {
    const bytes = Buffer.concat([Buffer.from('u:'), Buffer.from([0xc3, 0x28]), Buffer.from('xq')]);
    const auth = bytes.toString('base64');
    const dockerconfigjson = (auths: unknown): string =>
      Buffer.from(JSON.stringify({ auths })).toString('base64');
    server.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { namespace: 'ns', name: 'latin1' },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': dockerconfigjson({ 'r.test': { auth } }) },
    });
    server.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { namespace: 'ns', name: 'tokens' },
      type: 'kubernetes.io/dockerconfigjson',
      data: {
        '.dockerconfigjson': dockerconfigjson({
          'r.test': { username: 'u', password: 'p', identitytoken: 'refresh' },
        }),
      },
    });
    const secrets = new PullSecrets(kube, { clock: systemClock, from: 'direct' });
    const error = await secrets
      .forImage({ ...image, secrets: [{ namespace: 'ns', name: 'latin1' }] })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_PULL_SECRET_UNAVAILABLE' });
    const message = (error as Error).message;
    expect(message).toContain('secret ns/latin1 for "r.test"');
    expect(message).toContain('not UTF-8');
    expect(message).not.toContain(auth.slice(0, 5));
    const found = await secrets.forImage({
      ...image,
      secrets: [{ namespace: 'ns', name: 'tokens' }],
    });
    expect(found.map((c) => [c.password, c.identityToken])).toEqual([['p', undefined]]);
  });

  it('fails a missing secret with a reason naming it and the PrePull, and no value', async () => {
    const secrets = new PullSecrets(kube, { clock: systemClock, from: 'direct' });
    const error = await secrets
      .forImage({ ...image, secrets: [{ namespace: 'ns', name: 'absent' }] })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_PULL_SECRET_UNAVAILABLE', retryable: true });
    expect((error as Error).message).toBe(
      'pull secret ns/absent (named in imagePullSecrets of ns/pp) does not exist',
    );
  });
});
