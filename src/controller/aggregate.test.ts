// The controller's per-PrePull view: node progress from NodeImageCaches (images matched by
// canonical reference) and the PrePull.status built from it — counts, bounded rollups, message
// and conditions, including invalid specs, no matching node, invalid references and 5,000 nodes.
import { describe, expect, it } from '@jest/globals';
import type { CachedImage } from '../api/nodeimagecache.ts';
import type { PrePullStatus, RolloutStatus } from '../api/rollout.ts';
import type { KubernetesObject } from '../kube/client.ts';
import {
  type NodeView,
  nodeProgress,
  prePullStatus,
  progressOf,
  readNode,
  readNodeImages,
  readPrePull,
  wantedImages,
} from './aggregate.ts';

const NOW = '2026-12-07T19:30:00.000Z';
const LATER = '2026-12-07T19:45:00.000Z';
const DIGEST = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;

/** An object as the informer serves it (the client's types want class instances). */
const served = (value: object): KubernetesObject => value;

function prePull(
  spec: Record<string, unknown>,
  status?: unknown,
  generation = 3,
): KubernetesObject {
  return served({
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { name: 'web', namespace: 'shop', generation },
    spec: { images: [{ image: 'nginx' }, { image: 'r.test/app:1' }], ...spec },
    ...(status !== undefined ? { status } : {}),
  });
}

function node(name: string, labels: Record<string, string> = {}): NodeView {
  return { name, labels: { 'kubernetes.io/hostname': name, ...labels }, taints: [] };
}

type Entry = Partial<CachedImage> & { image: string; state: CachedImage['state'] };

function nic(nodeName: string, images: Entry[]): KubernetesObject {
  return served({
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'NodeImageCache',
    metadata: { name: nodeName },
    spec: { nodeName },
    status: { images: images.map((i) => ({ requiredBy: ['shop/web'], attempts: 1, ...i })) },
  });
}

const NGINX = 'docker.io/library/nginx:latest';
const APP = 'r.test/app:1';
const present = (image: string, digest = DIGEST(1)): Entry => ({
  image,
  state: 'Present',
  digest,
});

function statusOf(
  object: KubernetesObject,
  nodes: NodeView[],
  caches: KubernetesObject[],
  extra: { rollout?: RolloutStatus; now?: string } = {},
): PrePullStatus {
  const view = readPrePull(object);
  const nodeImages = readNodeImages(caches);
  const progress =
    view.prePull !== undefined ? nodeProgress(view.prePull, nodes, nodeImages) : new Map();
  return prePullStatus({
    view,
    progress,
    nodeImages,
    rollout: extra.rollout,
    now: extra.now ?? NOW,
  });
}

const condition = (status: PrePullStatus, type: string) =>
  status.conditions.find((c) => c.type === type);

describe('progressOf', () => {
  const images = wantedImages(readPrePull(prePull({})).prePull!);
  const held = (entries: Entry[]) => readNodeImages([nic('n', entries)]).get('n');

  it('matches images by canonical reference and ranks ready > failed > pulling > waiting', () => {
    expect(images.map((i) => i.key)).toEqual([NGINX, APP]);
    expect(progressOf(images, held([present(NGINX), present(APP)]))).toEqual({
      state: 'ready',
      settled: true,
    });
    expect(
      progressOf(
        images,
        held([
          { image: NGINX, state: 'Failed' },
          { image: APP, state: 'Pulling' },
        ]),
      ),
    ).toEqual({ state: 'failed', settled: false });
    expect(progressOf(images, held([{ image: NGINX, state: 'Failed' }, present(APP)]))).toEqual({
      state: 'failed',
      settled: true,
    });
    expect(progressOf(images, held([present(NGINX), { image: APP, state: 'Pulling' }]))).toEqual({
      state: 'pulling',
      settled: false,
    });
  });

  it('is waiting with no NodeImageCache, an image not reported, Missing or Stale', () => {
    expect(progressOf(images, undefined).state).toBe('waiting');
    expect(progressOf(images, held([present(NGINX)])).state).toBe('waiting');
    expect(progressOf(images, held([present(NGINX), { image: APP, state: 'Missing' }])).state).toBe(
      'waiting',
    );
    expect(progressOf(images, held([present(NGINX), { image: APP, state: 'Stale' }])).state).toBe(
      'waiting',
    );
  });
});

describe('readNode', () => {
  it('reads labels and well-formed taints only', () => {
    const view = readNode(
      served({
        metadata: { name: 'a', labels: { x: 'y' } },
        spec: { taints: [{ key: 'k', effect: 'NoSchedule' }, { effect: 'x' }, 'junk'] },
      }),
    );
    expect(view).toEqual({
      name: 'a',
      labels: { x: 'y' },
      taints: [{ key: 'k', effect: 'NoSchedule' }],
    });
  });
});

describe('prePullStatus', () => {
  const nodes = ['node-a', 'node-b', 'node-c', 'node-d', 'node-e'].map((n) => node(n));
  const caches = [
    nic('node-a', [present(NGINX), present(APP)]),
    nic('node-b', [present(NGINX, DIGEST(2)), present(APP)]),
    nic('node-c', [
      present(NGINX),
      {
        image: APP,
        state: 'Failed',
        reason: 'NotFound',
        code: 'ERR_IMAGE_NOT_FOUND',
        message: 'x'.repeat(1000),
      },
    ]),
    nic('node-d', [present(NGINX), { image: APP, state: 'Pulling', reason: 'Pulling' }]),
    // node-e: no NodeImageCache yet.
  ];

  it('counts nodes, rolls up each image and says it in one line', () => {
    const status = statusOf(prePull({}), nodes, caches);
    expect(status.observedGeneration).toBe(3);
    expect(status.nodes).toEqual({ selected: 5, ready: 2, pulling: 1, failed: 1 });
    expect(status.message).toBe(
      '2/5 nodes ready, 1 pulling, 1 failed (ERR_IMAGE_NOT_FOUND on node-c)',
    );
    expect(status.images).toEqual([
      {
        image: NGINX,
        present: 4,
        failed: 0,
        digests: [
          { digest: DIGEST(1), nodes: 3 },
          { digest: DIGEST(2), nodes: 1 },
        ],
      },
      {
        image: APP,
        present: 2,
        failed: 1,
        digests: [{ digest: DIGEST(1), nodes: 2 }],
        failedNodes: [
          {
            node: 'node-c',
            reason: 'NotFound',
            code: 'ERR_IMAGE_NOT_FOUND',
            message: `${'x'.repeat(253)}...`,
          },
        ],
      },
    ]);
    expect(status.rollout).toBeUndefined();
  });

  it('sets Ready False, Progressing True (Pulling) and Failed True (NodesFailed)', () => {
    const status = statusOf(prePull({}), nodes, caches);
    expect(status.conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'False', 'NodesNotReady'],
      ['Progressing', 'True', 'Pulling'],
      ['Failed', 'True', 'NodesFailed'],
    ]);
    for (const c of status.conditions) {
      expect(c.observedGeneration).toBe(3);
      expect(c.lastTransitionTime).toBe(NOW);
    }
    expect(condition(status, 'Failed')?.message).toContain('ERR_IMAGE_NOT_FOUND on node-c');
  });

  it('is Ready True, Progressing False (Complete), Failed False when every node holds every image', () => {
    const all = nodes.map((n) => nic(n.name, [present(NGINX), present(APP)]));
    const status = statusOf(prePull({}), nodes, all);
    expect(status.nodes).toEqual({ selected: 5, ready: 5, pulling: 0, failed: 0 });
    expect(status.message).toBe('5/5 nodes ready');
    expect(status.conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'True', 'AllNodesReady'],
      ['Progressing', 'False', 'Complete'],
      ['Failed', 'False', 'NoFailures'],
    ]);
  });

  it('counts only selected nodes', () => {
    const labelled = [node('node-a', { tier: 'web' }), node('node-b')];
    const status = statusOf(prePull({ nodeSelector: { tier: 'web' } }), labelled, caches);
    expect(status.nodes).toEqual({ selected: 1, ready: 1, pulling: 0, failed: 0 });
    expect(status.images[0]?.present).toBe(1);
  });

  it('keeps lastTransitionTime while a condition holds its status, and moves it on a change', () => {
    const first = statusOf(prePull({}), nodes, caches);
    const same = statusOf(prePull({}, first), nodes, caches, { now: LATER });
    expect(same.conditions.map((c) => c.lastTransitionTime)).toEqual([NOW, NOW, NOW]);
    expect(same).toEqual(first);
    const all = nodes.map((n) => nic(n.name, [present(NGINX), present(APP)]));
    const done = statusOf(prePull({}, first), nodes, all, { now: LATER });
    expect(done.conditions.map((c) => [c.type, c.lastTransitionTime])).toEqual([
      ['Ready', LATER],
      ['Progressing', LATER],
      ['Failed', LATER],
    ]);
  });

  it('reports an invalid spec: Ready False and Failed True, reason InvalidSpec, counts 0', () => {
    const status = statusOf(prePull({ pullPolicy: 'Sometimes', backoffLimit: -1 }), nodes, caches);
    expect(status.nodes).toEqual({ selected: 0, ready: 0, pulling: 0, failed: 0 });
    expect(status.images).toEqual([]);
    expect(condition(status, 'Ready')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    const failed = condition(status, 'Failed');
    expect(failed).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    expect(failed?.message).toContain('spec.pullPolicy: must be one of IfNotPresent, Always');
    expect(failed?.message).toContain('spec.backoffLimit: must be a whole number');
    expect(status.message.length).toBeLessThanOrEqual(256);
    expect(status.message).toMatch(/^invalid spec: spec\.pullPolicy/);
  });

  it('reports a time zone the tz database does not know as InvalidSpec, naming spec.timeZone', () => {
    const status = statusOf(
      prePull({ schedule: '0 2 * * *', timeZone: 'Europe/Atlantis' }),
      nodes,
      caches,
    );
    expect(condition(status, 'Failed')).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    expect(status.message).toMatch(
      /^invalid spec: spec\.timeZone: "Europe\/Atlantis" is not a time zone the tz database knows/,
    );
  });

  it('reports a selector matching no node: Ready False, NoMatchingNodes, naming the selector', () => {
    const status = statusOf(prePull({ nodeSelector: { zone: 'mars' } }), nodes, caches);
    expect(status.nodes.selected).toBe(0);
    expect(condition(status, 'Ready')).toMatchObject({
      status: 'False',
      reason: 'NoMatchingNodes',
      message: 'no node matches nodeSelector {zone=mars}',
    });
    expect(condition(status, 'Progressing')?.status).toBe('False');
    expect(condition(status, 'Failed')?.status).toBe('False');
    expect(status.images.map((i) => i.present)).toEqual([0, 0]);
  });

  it('reports a reference that does not parse: Failed True, InvalidReference, keyed as written', () => {
    const bad = 'r.test/App:1';
    const spec = { images: [{ image: 'nginx' }, { image: bad }] };
    const failing = nodes.map((n) =>
      nic(n.name, [
        present(NGINX),
        { image: bad, state: 'Failed', reason: 'InvalidReference', code: 'ERR_IMAGE_REF_INVALID' },
      ]),
    );
    const status = statusOf(prePull(spec), nodes, failing);
    expect(status.images[1]).toMatchObject({ image: bad, present: 0, failed: 5 });
    expect(status.images[1]?.failedNodes).toHaveLength(5);
    const failed = condition(status, 'Failed');
    expect(failed).toMatchObject({ status: 'True', reason: 'InvalidReference' });
    expect(failed?.message).toContain(JSON.stringify(bad));
    expect(failed?.message).toContain('5 nodes failed');
    // Even before any node reports it.
    expect(condition(statusOf(prePull(spec), nodes, []), 'Failed')?.reason).toBe(
      'InvalidReference',
    );
  });

  it('says why a paced rollout waits: AwaitingAdmission, Pulling once admitted, Paused', () => {
    const none: RolloutStatus = { maxConcurrentNodes: 1, paused: false, admitted: [] };
    const waiting = statusOf(prePull({}), nodes, []);
    expect(condition(waiting, 'Progressing')?.reason).toBe('Pulling');
    const queued = statusOf(prePull({}), nodes, [], { rollout: none });
    expect(condition(queued, 'Progressing')?.reason).toBe('AwaitingAdmission');
    expect(queued.rollout).toEqual(none);
    const one: RolloutStatus = { ...none, admitted: [{ node: 'node-a', since: NOW }] };
    const admitted = statusOf(prePull({}), nodes, [], { rollout: one });
    expect(condition(admitted, 'Progressing')).toMatchObject({
      reason: 'Pulling',
      message: '5 of 5 nodes not done: 0 pulling, 4 awaiting admission',
    });
    expect(admitted.message).toBe('0/5 nodes ready, 1 admitted');
    const paused = statusOf(prePull({}), nodes, [], { rollout: { ...one, paused: true } });
    expect(condition(paused, 'Progressing')?.reason).toBe('Paused');
    expect(paused.message).toBe('0/5 nodes ready, 1 admitted, paused');
  });

  it('stays bounded with 5,000 nodes: at most 8 digests and 5 failed nodes per image', () => {
    const many = Array.from({ length: 5000 }, (_, i) => node(`node-${String(i).padStart(4, '0')}`));
    const reports = many.map((n, i) =>
      nic(n.name, [
        present(NGINX, DIGEST(i % 20)),
        i % 3 === 0
          ? {
              image: APP,
              state: 'Failed',
              reason: 'Unauthorized',
              code: 'ERR_REGISTRY_UNAUTHORIZED',
              message: 'm'.repeat(2000),
            }
          : present(APP, DIGEST(i)),
      ]),
    );
    const started = performance.now();
    const status = statusOf(prePull({}), many, reports);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(status.nodes).toEqual({ selected: 5000, ready: 3333, pulling: 0, failed: 1667 });
    expect(status.images[0]?.digests).toHaveLength(8);
    expect(status.images[0]?.digests[0]).toEqual({ digest: DIGEST(0), nodes: 250 });
    expect(status.images[1]?.failedNodes?.map((f) => f.node)).toEqual([
      'node-0000',
      'node-0003',
      'node-0006',
      'node-0009',
      'node-0012',
    ]);
    expect(status.message).toBe(
      '3333/5000 nodes ready, 1667 failed (ERR_REGISTRY_UNAUTHORIZED on node-0000 and 1666 more)',
    );
    expect(JSON.stringify(status).length).toBeLessThan(6000);
  });
});
