// The agent's start-up order, with informers that deliver their first list and resolve at once
// (client-node's ListWatch may: nothing obliges it to wait for I/O in between). What the engine
// releases at start — images the node's last NodeImageCache listed that no PrePull wants — must
// be judged on the synced PrePulls, so a restart never unpins an image still wanted.
import { describe, expect, it } from '@jest/globals';
import { nodeImageCacheStatus, type NodeImageCache } from '../api/nodeimagecache.ts';
import { ManualClock } from '../clock.ts';
import type { Informer, KubeClient, KubernetesObject } from '../kube/client.ts';
import type { RegistryClient } from '../registry/client.ts';
import { FakeRuntime } from '../runtime/testing/fake.ts';
import { createLogger } from '../telemetry/logger.ts';
import { Metrics } from '../telemetry/metrics.ts';
import { Agent } from './agent.ts';

const WEB = 'registry.test:5000/team/web:1.0';
const DB = 'registry.test:5000/team/db:1.0';
const digest = (n: number): string => `sha256:${String(n).padStart(64, '0')}`;

/** An informer whose start delivers its objects and resolves without waiting for anything. */
function instantInformer<T extends KubernetesObject>(objects: T[]): Informer<T> {
  const adds: ((object: T) => void)[] = [];
  return {
    start() {
      for (const object of objects) for (const add of adds) add(object);
      return Promise.resolve();
    },
    stop: () => Promise.resolve(),
    list: () => objects,
    on(event: string, callback: (value: never) => void) {
      if (event === 'add') adds.push(callback as (object: T) => void);
    },
  };
}

function fakeKube(previous: NodeImageCache, prePulls: KubernetesObject[]): KubeClient {
  const node = { metadata: { name: 'node-r', uid: 'uid-r', labels: {} } };
  return {
    informer: (path: string) =>
      instantInformer(path.includes('prepulls') ? prePulls : [node as KubernetesObject]),
    request: (method: string, _path: string, options?: { body?: unknown }) =>
      Promise.resolve(method === 'GET' ? previous : (options?.body ?? {})),
  } as unknown as KubeClient;
}

describe('Agent start', () => {
  it('applies the synced PrePulls before the engine starts: a restart does not unpin what is still wanted', async () => {
    const runtime = new FakeRuntime();
    for (const [ref, n] of [
      [WEB, 1],
      [DB, 2],
    ] as const) {
      runtime.publish(ref, { digest: digest(n), id: digest(100 + n), size: 10 });
      runtime.pullBehindBack(ref);
      await runtime.pin(ref);
    }
    // The last status: prepull pulled and pinned both.
    const status = nodeImageCacheStatus(
      [WEB, DB].map((image, i) => ({
        image,
        requiredBy: ['shop/p'],
        state: 'Present' as const,
        reason: 'Present',
        imageId: digest(101 + i),
        pinned: true,
        attempts: 0,
        pulledByPrepull: true as const,
        pinnedByPrepull: true as const,
      })),
      { name: 'fake', version: '0', endpoint: 'unix:///fake' },
      {},
      { now: '2026-01-01T00:00:00.000Z' },
    );
    const previous = {
      metadata: { name: 'node-r', resourceVersion: '1' },
      spec: { nodeName: 'node-r' },
      status,
    } as NodeImageCache;
    // Now only WEB is wanted.
    const prePull = {
      apiVersion: 'prepull.dev/v1alpha1',
      kind: 'PrePull',
      metadata: { namespace: 'shop', name: 'p', resourceVersion: '2' },
      spec: { images: [{ image: WEB }], verify: 'None' },
    };
    const agent = new Agent({
      config: {
        nodeName: 'node-r',
        insecureRegistries: [],
        registryCAs: {},
        pullConcurrency: 2,
        stallTimeoutMs: 120_000,
        logLevel: 'silent',
        shutdownGraceMs: 0,
        requireAdmission: false,
        heartbeatMs: 60_000,
        cleanup: 'Unpin',
        pullSecrets: 'copy',
        pullSecretNamespace: 'prepull-system',
        disk: { floor: { percent: 20 } },
      },
      clock: new ManualClock(),
      log: createLogger('silent'),
      metrics: new Metrics(),
      kube: fakeKube(previous, [prePull]),
      runtime,
      info: await runtime.info(),
      registry: { close: () => Promise.resolve() } as unknown as RegistryClient,
    });
    await agent.start();
    await agent.engine.settled();
    expect(runtime.calls.filter((c) => c.op === 'unpin').map((c) => c.ref)).toEqual([DB]);
    expect((await runtime.imageStatus(WEB))?.pinned).toBe(true);
    expect(agent.engine.released()).toEqual([
      expect.objectContaining({ image: DB, action: 'Unpinned' }),
    ]);
    await agent.engine.stop();
    await agent.writer.stop();
  });
});
