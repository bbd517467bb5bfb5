// The agent's NodeImageCache during a pull, against the project's Kubernetes API test server in
// this process and the in-memory runtime (real time: a 3 s pull reported every 100 ms): the
// Pulling image carries `progress` in the writes the agent makes anyway — here the heartbeat —
// and never in a write of its own; once Present, the entry has none.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeApiServer } from '../../test/kube-api-server/index.ts';
import type { CachedImage, NodeImageCache } from '../api/nodeimagecache.ts';
import { systemClock } from '../clock.ts';
import { KubeClient } from '../kube/client.ts';
import type { RegistryClient } from '../registry/client.ts';
import { FakeRuntime } from '../runtime/testing/fake.ts';
import { createLogger } from '../telemetry/logger.ts';
import { Metrics } from '../telemetry/metrics.ts';
import { pollUntil } from '../testing/poll.ts';
import { Agent } from './agent.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const NODE = 'node-progress';
const IMAGE = 'registry.test:5000/team/big:1.0';
const SIZE = 6_000_000;
const HEARTBEAT_MS = 400;

let server: KubeApiServer;

beforeAll(async () => {
  server = await KubeApiServer.start();
  server.applyManifests(join(REPO, 'deploy', 'namespace.yaml'));
  server.applyManifests(join(REPO, 'deploy', 'crds'));
  server.applyManifests(join(REPO, 'deploy', 'rbac.yaml'));
  server.apply(
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } },
    { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: {} } },
  );
});

afterAll(async () => {
  await server.stop();
});

describe('Agent NodeImageCache progress', () => {
  it('puts progress on the Pulling image in the heartbeat writes, and drops it once Present', async () => {
    const versions: { image: CachedImage | undefined; summary: string; at: string }[] = [];
    const unwatch = server.store.watch({
      typeKey: 'prepull.dev/nodeimagecaches',
      deliver: (change) => {
        const status = (change.object as unknown as NodeImageCache).status;
        if (status === undefined) return;
        versions.push({
          image: status.images.find((i) => i.image === IMAGE),
          summary: JSON.stringify(status.summary),
          at: status.lastUpdateTime ?? '',
        });
      },
    });
    // 6 MB at 2 MB a second, reported every 100 ms.
    const runtime = new FakeRuntime({ bytesPerMs: 2000, progressIntervalMs: 100 });
    runtime.publish(IMAGE, {
      digest: `sha256:${'a'.repeat(64)}`,
      id: `sha256:${'b'.repeat(64)}`,
      size: SIZE,
    });
    const { kubeconfig } = server.serviceAccount('prepull-system', 'prepull-agent');
    const agent = new Agent({
      config: {
        nodeName: NODE,
        insecureRegistries: [],
        registryCAs: {},
        pullConcurrency: 2,
        stallTimeoutMs: 120_000,
        logLevel: 'silent',
        shutdownGraceMs: 0,
        requireAdmission: false,
        heartbeatMs: HEARTBEAT_MS,
        cleanup: 'Unpin',
        pullSecrets: 'copy',
        pullSecretNamespace: 'prepull-system',
        disk: { floor: { percent: 20 } },
      },
      clock: systemClock,
      log: createLogger('silent'),
      metrics: new Metrics(),
      kube: KubeClient.load(kubeconfig),
      runtime,
      info: await runtime.info(),
      registry: { close: () => Promise.resolve() } as unknown as RegistryClient,
    });
    try {
      await agent.start();
      server.apply({
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        metadata: { namespace: 'team', name: 'big' },
        spec: { images: [{ image: IMAGE }], verify: 'None' },
      });
      await pollUntil(
        'the image Present in the NodeImageCache',
        () => versions.some((v) => v.image?.state === 'Present'),
        { timeoutMs: 30_000, intervalMs: 20 },
      );
    } finally {
      await agent.stop();
      unwatch();
    }
    const pulling = versions.filter((v) => v.image?.state === 'Pulling');
    const figures = pulling.flatMap((v) =>
      v.image?.progress === undefined ? [] : [v.image.progress],
    );
    // Several heartbeats during the pull, each with the figure of its moment, never more than
    // the total, which the runtime gave.
    expect(new Set(figures.map((f) => f.bytes)).size).toBeGreaterThanOrEqual(2);
    for (const f of figures) {
      expect(f.totalBytes).toBe(SIZE);
      expect(f.bytes).toBeGreaterThan(0);
      expect(f.bytes).toBeLessThanOrEqual(SIZE);
    }
    expect(figures.map((f) => f.bytes)).toEqual(figures.map((f) => f.bytes).sort((a, b) => a - b));
    // A write whose only news is the progress is a heartbeat: it comes a heartbeat after the last.
    for (let i = 1; i < pulling.length; i++) {
      const [before, after] = [pulling[i - 1]!, pulling[i]!];
      if (before.summary !== after.summary) continue;
      expect(Date.parse(after.at) - Date.parse(before.at)).toBeGreaterThanOrEqual(HEARTBEAT_MS);
    }
    const present = versions.find((v) => v.image?.state === 'Present');
    expect(present?.image).not.toHaveProperty('progress');
    // The disk guard's picture rides along (ADR 0019). The fake runtime's mount point does not
    // exist here: free space is not measured, the floor is not applied, and the status says why.
    const nic = server.get('prepull.dev/v1alpha1', 'NodeImageCache', NODE) as
      NodeImageCache | undefined;
    expect(nic?.status?.disk).toMatchObject({ floor: '20%', heldImages: 0 });
    expect(nic?.status?.disk?.message).toMatch(
      /^cannot measure free space at \/var\/lib\/fake-runtime \(ENOENT/,
    );
    expect(nic?.status?.disk).not.toHaveProperty('availableBytes');
  }, 60_000);
});
