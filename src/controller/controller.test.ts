// The Controller in-process against the project's Kubernetes API test server (CRDs from
// deploy/crds), agents played by the test writing NodeImageCache status through /status: nothing
// written before lead(); a paced rollout (maxConcurrentNodes 1) whose admitted node moves from
// node to node as NodeImageCaches turn Present; a stalled node dropped after the admission
// timeout (ManualClock) and admitted again last; PrePull.status counts, conditions and message;
// the readiness label on ready nodes only; the start-up taint removed once ready, other taints
// kept; and nothing written once leadership is lost.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KubeApiServer } from '../../test/kube-api-server/index.ts';
import type { JsonObject } from '../../test/kube-api-server/json.ts';
import {
  type NodeImageCache,
  NODE_IMAGE_CACHE_KIND,
  nodeImageCacheStatus,
} from '../api/nodeimagecache.ts';
import { API_VERSION } from '../api/prepull.ts';
import type { PrePullStatus } from '../api/rollout.ts';
import { ManualClock } from '../clock.ts';
import type { ImageState } from '../image/report.ts';
import { KubeClient } from '../kube/client.ts';
import { createLogger } from '../telemetry/logger.ts';
import { Controller, type ControllerMetrics } from './controller.ts';
import { PENDING_TAINT } from './readiness.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const IMAGE = 'registry.test:5000/team/web:1.0';
const DIGEST = `sha256:${'1'.repeat(64)}`;
const RUNTIME = { name: 'containerd', version: '1.7.0', endpoint: 'unix:///run/c.sock' };
const T0 = Date.parse('2026-12-07T19:00:00.000Z');
const MINUTE = 60_000;
const PENDING = { key: PENDING_TAINT, effect: 'NoSchedule' };
const OTHER = { key: 'dedicated', value: 'gpu', effect: 'NoSchedule' };

let server: KubeApiServer;
let admin: KubeClient;

function node(name: string, labels: Record<string, string>, taints: JsonObject[]): JsonObject {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, spec: { taints } };
}

/** Plays the node's agent: its NodeImageCache status, written through /status. */
async function report(nodeName: string, state: ImageState, now: number): Promise<void> {
  const path = `/apis/${API_VERSION}/nodeimagecaches/${nodeName}`;
  if (server.get(API_VERSION, NODE_IMAGE_CACHE_KIND, nodeName) === undefined) {
    server.apply({
      apiVersion: API_VERSION,
      kind: NODE_IMAGE_CACHE_KIND,
      metadata: { name: nodeName },
      spec: { nodeName },
    });
  }
  const current = await admin.request<NodeImageCache>('GET', path);
  const status = nodeImageCacheStatus(
    [
      {
        image: IMAGE,
        requiredBy: ['shop/web'],
        state,
        reason: state === 'Present' ? 'Present' : state,
        attempts: 1,
        ...(state === 'Present' ? { digest: DIGEST } : {}),
      },
    ],
    RUNTIME,
    {},
    { now: new Date(now).toISOString() },
  );
  await admin.request('PUT', `${path}/status`, {
    body: { ...current, status: { ...status, lastUpdateTime: new Date(now).toISOString() } },
  });
}

function prePullStatus(): PrePullStatus | undefined {
  const object = server.get(API_VERSION, 'PrePull', 'web', 'shop') as
    { status?: PrePullStatus } | undefined;
  return object?.status;
}

function admitted(): string[] {
  return (prePullStatus()?.rollout?.admitted ?? []).map((a) => a.node);
}

function nodeObject(name: string): { labels: Record<string, string>; taints: unknown } {
  const object = server.get('v1', 'Node', name) as {
    metadata: { labels?: Record<string, string> };
    spec?: { taints?: unknown };
  };
  return { labels: object.metadata.labels ?? {}, taints: object.spec?.taints };
}

function patches(): number {
  return server.accounting.all().filter((r) => r.verb === 'patch').length;
}

const clock = new ManualClock(T0);

/** Moves the controller's clock in small steps, letting real events arrive, until `check`. */
async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (check()) return;
    await clock.advance(250);
    await sleep(10);
  }
  throw new Error(`not reached: ${what}; status: ${JSON.stringify(prePullStatus())}`);
}

const counted = {
  statusWrites: [] as string[],
  nodePatches: [] as string[],
  restarts: [] as string[],
  admitted: -1,
  prePulls: -1,
};

const metrics: ControllerMetrics = {
  statusWrites: (r) => counted.statusWrites.push(r),
  nodePatches: (kind, r) => counted.nodePatches.push(`${kind}:${r}`),
  admitted: (n) => (counted.admitted = n),
  watchRestart: (resource) => counted.restarts.push(resource),
  prePulls: (n) => (counted.prePulls = n),
};

let controller: Controller;

beforeAll(async () => {
  server = await KubeApiServer.start();
  server.applyManifests(join(REPO, 'deploy', 'crds'));
  server.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  admin = KubeClient.load(server.adminKubeconfig());
  const web = { pool: 'web' };
  server.apply(
    node('node-a', web, [PENDING]),
    node('node-b', web, [OTHER, PENDING]),
    node('node-c', web, [PENDING]),
    node('node-x', { pool: 'db' }, [PENDING]),
  );
  controller = new Controller({
    options: { admissionTimeoutMs: 5 * MINUTE, statusIntervalMs: 1000 },
    clock,
    log: createLogger('silent'),
    metrics,
    kube: admin,
    watchBackoff: { initialMs: 50, maxMs: 200 },
  });
});

afterAll(async () => {
  await controller.stop();
  await server.stop();
});

describe('Controller', () => {
  it('syncs its informers and writes nothing before it leads', async () => {
    expect(controller.synced).toBe(false);
    await controller.start();
    expect(controller.synced).toBe(true);
    expect(controller.leading).toBe(false);
    server.apply({
      apiVersion: API_VERSION,
      kind: 'PrePull',
      metadata: { name: 'web', namespace: 'shop' },
      spec: {
        images: [{ image: IMAGE }],
        nodeSelector: { pool: 'web' },
        rollout: { maxConcurrentNodes: 1 },
        nodeLabel: 'web',
      },
    });
    await report('node-a', 'Missing', clock.now());
    for (let i = 0; i < 20; i++) {
      await clock.advance(500);
      await sleep(10);
    }
    expect(patches()).toBe(0);
    expect(prePullStatus()).toBeUndefined();
    expect(counted.statusWrites).toEqual([]);
  });

  it('admits one node at a time, moving on as each turns Present, labelling and untainting it', async () => {
    const lease = new AbortController();
    controller.lead(lease.signal);
    expect(controller.leading).toBe(true);
    await until('node-a admitted', () => admitted().join() === 'node-a');
    const first = prePullStatus();
    expect(first?.nodes).toEqual({ selected: 3, ready: 0, pulling: 0, failed: 0 });
    expect(first?.rollout).toMatchObject({ maxConcurrentNodes: 1, paused: false });
    expect(Date.parse(first?.rollout?.admitted[0]?.since ?? '')).toBeGreaterThanOrEqual(
      T0 + 10_000,
    );
    expect(first?.conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'False', 'NodesNotReady'],
      ['Progressing', 'True', 'Pulling'],
      ['Failed', 'False', 'NoFailures'],
    ]);
    expect(first?.observedGeneration).toBe(1);
    // node-x: no PrePull selects it, so nothing holds its taint.
    await until('node-x untainted', () => nodeObject('node-x').taints === undefined);
    expect(nodeObject('node-a').taints).toEqual([PENDING]);

    await report('node-a', 'Pulling', clock.now());
    await until('node-a pulling', () => prePullStatus()?.nodes.pulling === 1);
    await report('node-a', 'Present', clock.now());
    await until('node-b admitted', () => admitted().join() === 'node-b');
    expect(prePullStatus()?.nodes).toEqual({ selected: 3, ready: 1, pulling: 0, failed: 0 });
    expect(prePullStatus()?.message).toBe('1/3 nodes ready, 1 admitted');
    await until('node-a labelled', () => nodeObject('node-a').labels['prepull.dev/web'] === 'true');
    expect(nodeObject('node-a').taints).toBeUndefined();
    expect(nodeObject('node-b').labels['prepull.dev/web']).toBeUndefined();
    expect(nodeObject('node-b').taints).toEqual([OTHER, PENDING]);
    expect(prePullStatus()?.images).toEqual([
      { image: IMAGE, present: 1, failed: 0, digests: [{ digest: DIGEST, nodes: 1 }] },
    ]);
  });

  it('drops an admitted node that stalls for the timeout, and admits it again last', async () => {
    const since = clock.now();
    await report('node-b', 'Pulling', since);
    await until('node-b pulling', () => prePullStatus()?.nodes.pulling === 1);
    // No change from node-b for five minutes: its slot moves to node-c.
    await clock.advance(since + 5 * MINUTE - 1000 - clock.now());
    await sleep(50);
    expect(admitted()).toEqual(['node-b']);
    await until('node-c admitted', () => admitted().join() === 'node-c');
    expect(clock.now() - since).toBeGreaterThanOrEqual(5 * MINUTE);
    await report('node-c', 'Present', clock.now());
    // node-b stalled before, but it is the only node left.
    await until('node-b admitted again', () => admitted().join() === 'node-b');
    await report('node-b', 'Present', clock.now());
    await until('all ready', () => prePullStatus()?.nodes.ready === 3);
    await until('none admitted', () => admitted().length === 0);
    const done = prePullStatus();
    expect(done?.message).toBe('3/3 nodes ready, 0 admitted');
    expect(done?.conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'True', 'AllNodesReady'],
      ['Progressing', 'False', 'Complete'],
      ['Failed', 'False', 'NoFailures'],
    ]);
    await until(
      'all labelled',
      () =>
        ['node-a', 'node-b', 'node-c'].every(
          (n) => nodeObject(n).labels['prepull.dev/web'] === 'true',
        ) && JSON.stringify(nodeObject('node-b').taints) === JSON.stringify([OTHER]),
    );
    expect(nodeObject('node-x').labels['prepull.dev/web']).toBeUndefined();
    // Events on the PrePull: the stalled slot, and the rollout complete.
    interface Seen {
      reason?: string;
      type?: string;
      related?: { name?: string };
    }
    const events = (): Seen[] => server.store.list('events.k8s.io/events');
    await until('both events', () => events().length >= 2);
    expect(events().map((e) => [e.type, e.reason, e.related?.name])).toEqual([
      ['Warning', 'AdmissionTimeout', 'node-b'],
      ['Normal', 'Ready', undefined],
    ]);
    expect(counted.nodePatches.every((p) => p.endsWith(':ok'))).toBe(true);
    expect(counted.statusWrites.every((r) => r === 'ok')).toBe(true);
    expect(counted.admitted).toBe(0);
    expect(counted.prePulls).toBe(1);
  });

  it('writes nothing more once steady, and removes the label of a node no longer ready', async () => {
    const writes = counted.statusWrites.length;
    for (let i = 0; i < 10; i++) {
      await clock.advance(1000);
      await sleep(10);
    }
    expect(counted.statusWrites.length).toBe(writes);
    await report('node-c', 'Missing', clock.now());
    await until(
      'node-c unlabelled',
      () => nodeObject('node-c').labels['prepull.dev/web'] === undefined,
    );
    await until('node-c admitted', () => admitted().join() === 'node-c');
  });

  it('writes nothing once leadership is lost', async () => {
    // The lease from the earlier test is still held: take it away through a fresh lead().
    const lease = new AbortController();
    controller.lead(lease.signal);
    lease.abort();
    expect(controller.leading).toBe(false);
    const before = patches();
    await report('node-a', 'Failed', clock.now());
    await report('node-c', 'Present', clock.now());
    for (let i = 0; i < 20; i++) {
      await clock.advance(1000);
      await sleep(10);
    }
    expect(patches()).toBe(before);
    expect(admitted()).toEqual(['node-c']);
    expect(nodeObject('node-a').labels['prepull.dev/web']).toBe('true');
    expect(counted.restarts).toEqual([]);
  });

  it('acts on a lead() that comes right after start() resolves, with no event after it', async () => {
    // Nobody leads now: a PrePull created meanwhile has no status until a leader passes.
    server.apply({
      apiVersion: API_VERSION,
      kind: 'PrePull',
      metadata: { name: 'db', namespace: 'shop' },
      spec: { images: [{ image: IMAGE }], nodeSelector: { pool: 'db' } },
    });
    const second = new Controller({
      options: { admissionTimeoutMs: 5 * MINUTE, statusIntervalMs: 1000 },
      clock,
      log: createLogger('silent'),
      metrics,
      kube: admin,
    });
    const lease = new AbortController();
    try {
      await second.start();
      second.lead(lease.signal);
      const status = (): unknown =>
        (server.get(API_VERSION, 'PrePull', 'db', 'shop') as { status?: unknown }).status;
      for (let i = 0; i < 100 && status() === undefined; i++) await sleep(20);
      expect(status()).toMatchObject({ nodes: { selected: 1 } });
    } finally {
      lease.abort();
      await second.stop();
    }
  });
});
