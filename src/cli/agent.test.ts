// `prepull agent` against the project's Kubernetes API test server (CRDs and RBAC from deploy/,
// the shipped ServiceAccount) with the in-memory runtime: placement by nodeSelector, label
// changes, repair with an Event, pull secrets, status coalescing, fault recovery, and shutdown.
// The same flows on real containerd and Docker Engine are in test/integration/agent.test.ts.
import { pollUntil } from '../testing/poll.ts';
import { getText, jsonLogSink } from '../telemetry/testing/log-sink.ts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeApiServer } from '../../test/kube-api-server/index.ts';
import type { NodeImageCache } from '../api/nodeimagecache.ts';
import type { JsonObject } from '../../test/kube-api-server/json.ts';
import { ManualClock } from '../clock.ts';
import { FakeRuntime, detectedFake, detectedFakeSocket } from '../runtime/testing/fake.ts';
import { KubeClient } from '../kube/client.ts';
import { pullSecretCopyName } from '../api/pull-secrets.ts';
import { type AgentDependencies, runAgent } from './agent.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SA_USER = 'system:serviceaccount:prepull-system:prepull-agent';
const CANARY = 'canary-Pa55w0rd-7f3e';
const REG = 'registry.test:5000';

const IMG = (name: string): string => `${REG}/team/${name}:1.0`;
const DIGEST = (n: number): string => `sha256:${String(n).padStart(64, '0')}`;

let server: KubeApiServer;
let kubeconfig: string;

function node(name: string, labels: Record<string, string>): JsonObject {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels } };
}

function prePull(
  namespace: string,
  name: string,
  images: string[],
  extra: Record<string, unknown> = {},
): JsonObject {
  return {
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { namespace, name },
    spec: { images: images.map((image) => ({ image })), verify: 'None', ...extra },
  };
}

function cache(nodeName: string): NodeImageCache | undefined {
  return server.get('prepull.dev/v1alpha1', 'NodeImageCache', nodeName) as
    NodeImageCache | undefined;
}

function presentImages(nodeName: string): string[] {
  return (cache(nodeName)?.status?.images ?? [])
    .filter((i) => i.state === 'Present')
    .map((i) => i.image)
    .sort();
}

async function eventually(check: () => boolean, timeoutMs = 30_000): Promise<void> {
  await pollUntil(check.toString().slice(0, 200), check, { timeoutMs, intervalMs: 25 });
}

interface Running {
  runtime: FakeRuntime;
  signals: EventEmitter;
  exit: Promise<number>;
  logs: string[];
}

function startAgent(nodeName: string, runtime = new FakeRuntime()): Running {
  const signals = new EventEmitter();
  const logs: string[] = [];
  const exit = runAgent(
    [
      '--kubeconfig',
      kubeconfig,
      '--node-name',
      nodeName,
      '--log-level',
      process.env.AGENT_TEST_LOG ?? 'silent',
    ],
    { out: (t) => logs.push(t), err: (t) => logs.push(t) },
    signals,
    { detect: detectedFake(runtime), env: {}, watchBackoff: { initialMs: 100, maxMs: 1000 } },
  );
  const running = { runtime, signals, exit, logs };
  agents.push(running);
  return running;
}

const agents: Running[] = [];

afterEach(async () => {
  // A failed test must not leave its agents running into the next.
  for (const agent of agents.splice(0)) {
    agent.signals.emit('SIGTERM');
    await agent.exit.catch(() => undefined);
  }
});

function publishAll(runtime: FakeRuntime): void {
  ['web', 'db', 'cache', 'private'].forEach((name, i) => {
    runtime.publish(IMG(name), {
      digest: DIGEST(i + 1),
      id: DIGEST(i + 101),
      size: 1000 * (i + 1),
    });
  });
}

beforeAll(async () => {
  server = await KubeApiServer.start();
  server.applyManifests(join(REPO, 'deploy', 'namespace.yaml'));
  server.applyManifests(join(REPO, 'deploy', 'crds'));
  server.applyManifests(join(REPO, 'deploy', 'rbac.yaml'));
  ({ kubeconfig } = server.serviceAccount('prepull-system', 'prepull-agent'));
  server.apply(
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'data' } },
  );
});

afterAll(async () => {
  await server.stop();
});

describe('prepull agent', () => {
  it('places images by nodeSelector, follows label changes, repairs with an Event, and stops cleanly', async () => {
    server.apply(
      node('node-a', { 'kubernetes.io/hostname': 'node-a', tier: 'web' }),
      node('node-b', { 'kubernetes.io/hostname': 'node-b', tier: 'data' }),
      prePull('shop', 'web', [IMG('web'), IMG('cache')], { nodeSelector: { tier: 'web' } }),
      prePull('data', 'db', [IMG('db')], { nodeSelector: { tier: 'data' } }),
    );
    const a = startAgent('node-a');
    const b = startAgent('node-b');
    publishAll(a.runtime);
    publishAll(b.runtime);

    await eventually(
      () =>
        presentImages('node-a').join() === [IMG('cache'), IMG('web')].join() &&
        presentImages('node-b').join() === IMG('db'),
    );
    const nic = cache('node-a');
    expect(nic?.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Node', name: 'node-a' });
    expect(nic?.status?.summary).toMatchObject({ required: 2, present: 2, failed: 0 });
    expect(nic?.status?.images.find((i) => i.image === IMG('web'))).toMatchObject({
      digest: DIGEST(1),
      requiredBy: ['shop/web'],
      pinned: true,
    });
    expect(nic?.status?.conditions[0]).toMatchObject({ type: 'Ready', status: 'True' });

    // node-b takes the web tier too: its images follow the label.
    server.apply(node('node-b', { 'kubernetes.io/hostname': 'node-b', tier: 'web' }));
    await eventually(() => presentImages('node-b').join() === [IMG('cache'), IMG('web')].join());

    // Removed behind the agent's back: pulled again, with a Repaired event on the PrePull.
    a.runtime.removeBehindBack(IMG('web'));
    await eventually(() =>
      (server.store.list('events.k8s.io/events') as { reason?: string }[]).some(
        (e) => e.reason === 'Repaired',
      ),
    );
    const repaired = (
      server.store.list('events.k8s.io/events') as {
        reason?: string;
        reportingController?: string;
        reportingInstance?: string;
        regarding?: { kind?: string; name?: string };
      }[]
    ).find((e) => e.reason === 'Repaired');
    expect(repaired).toMatchObject({
      reportingController: 'prepull.dev/agent',
      reportingInstance: 'node-a',
      regarding: { kind: 'PrePull', name: 'web' },
    });
    await eventually(() => presentImages('node-a').includes(IMG('web')));

    a.signals.emit('SIGTERM');
    b.signals.emit('SIGTERM');
    expect(await a.exit).toBe(0);
    expect(await b.exit).toBe(0);

    const denied = server.accounting
      .all()
      .filter((r) => r.user === SA_USER && (r.code === 401 || r.code === 403));
    expect(denied).toEqual([]);
  }, 60_000);

  it('at a restart, keeps what PrePulls still want pinned, and releases what was deleted while down', async () => {
    server.apply(
      node('node-r', { 'kubernetes.io/hostname': 'node-r' }),
      prePull('shop', 'keep', [IMG('web')]),
      prePull('data', 'drop', [IMG('db')], { cleanup: 'Remove' }),
    );
    const runtime = new FakeRuntime();
    publishAll(runtime);
    const first = startAgent('node-r', runtime);
    const cached = (image: string) =>
      cache('node-r')?.status?.images.find((i) => i.image === image);
    await eventually(
      () =>
        presentImages('node-r').join() === [IMG('db'), IMG('web')].join() &&
        cached(IMG('web'))?.pinnedByPrepull === true &&
        cached(IMG('db'))?.cleanup === 'Remove',
    );
    expect(cached(IMG('db'))).toMatchObject({ pulledByPrepull: true, pinnedByPrepull: true });
    first.signals.emit('SIGTERM');
    expect(await first.exit).toBe(0);

    // While the agent is down, one PrePull is deleted.
    const drop = server.get('prepull.dev/v1alpha1', 'PrePull', 'drop', 'data');
    server.store.remove('prepull.dev/prepulls', drop!);
    runtime.reopen();
    const before = runtime.calls.length;
    const second = startAgent('node-r', runtime);
    await eventually(
      () => cache('node-r')?.status?.released?.some((r) => r.image === IMG('db')) === true,
    );
    expect(cache('node-r')?.status?.released).toEqual([
      { image: IMG('db'), action: 'Removed', time: expect.any(String) },
    ]);
    // The image still wanted was never unpinned, not even for a moment at start.
    const changes = runtime.calls
      .slice(before)
      .filter((c) => c.op === 'unpin' || c.op === 'remove' || c.op === 'pull');
    expect(changes).toEqual([{ op: 'remove', ref: IMG('db') }]);
    expect(await runtime.imageStatus(IMG('web'))).toMatchObject({ pinned: true });
    expect(await runtime.imageStatus(IMG('db'))).toBeUndefined();
    await eventually(() => presentImages('node-r').join() === IMG('web'));
    expect(cached(IMG('web'))).toMatchObject({ pulledByPrepull: true, pinnedByPrepull: true });
    second.signals.emit('SIGTERM');
    expect(await second.exit).toBe(0);
  }, 60_000);

  it('reads only the pull secrets PrePulls name; a missing secret fails only its images, and no secret value leaks', async () => {
    const auth = Buffer.from(`puller:${CANARY}`).toString('base64');
    server.apply(
      node('node-s', { 'kubernetes.io/hostname': 'node-s', role: 'secure' }),
      // The controller's copy of shop/regcred, as it keeps it in the agents' namespace
      // (ADR 0020): the agent reads that, never the source.
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          namespace: 'prepull-system',
          name: pullSecretCopyName('shop', 'regcred'),
          annotations: { 'prepull.dev/source': 'shop/regcred' },
        },
        type: 'kubernetes.io/dockerconfigjson',
        data: {
          '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { [REG]: { auth } } })).toString(
            'base64',
          ),
        },
      },
      prePull('shop', 'private', [IMG('private')], {
        nodeSelector: { role: 'secure' },
        imagePullSecrets: [{ name: 'regcred' }],
      }),
      prePull('shop', 'broken', [`${REG}/team/other:1.0`], {
        nodeSelector: { role: 'secure' },
        imagePullSecrets: [{ name: 'missing' }],
        backoffLimit: 1,
      }),
    );
    const runtime = new FakeRuntime();
    publishAll(runtime);
    runtime.publish(`${REG}/team/other:1.0`, { digest: DIGEST(9), id: DIGEST(109), size: 10 });
    runtime.requireCredentials(REG, { username: 'puller', password: CANARY });
    const s = startAgent('node-s', runtime);
    await eventually(() => {
      const images = cache('node-s')?.status?.images ?? [];
      return (
        images.find((i) => i.image === IMG('private'))?.state === 'Present' &&
        images.find((i) => i.image === `${REG}/team/other:1.0`)?.state === 'Failed'
      );
    });
    const failed = cache('node-s')?.status?.images.find((i) => i.image === `${REG}/team/other:1.0`);
    expect(failed?.message).toContain(
      `copy prepull-system/${pullSecretCopyName('shop', 'missing')} of pull secret shop/missing`,
    );
    expect(failed?.message).toContain('not there yet');
    s.signals.emit('SIGTERM');
    expect(await s.exit).toBe(0);

    const secretCalls = server.accounting
      .all()
      .filter((r) => r.user === SA_USER && r.resource.includes('secrets'));
    expect(secretCalls.every((r) => r.verb === 'get')).toBe(true);
    expect(secretCalls.every((r) => r.namespace === 'prepull-system')).toBe(true);
    expect(secretCalls.some((r) => r.code === 200)).toBe(true);
    // The canary is nowhere the agent writes: status, Events, or its own output.
    const written = JSON.stringify([
      server.store.list('prepull.dev/nodeimagecaches'),
      server.store.list('events.k8s.io/events'),
      s.logs,
    ]);
    expect(written).not.toContain(CANARY);
    expect(written).not.toContain(auth);
  }, 60_000);

  it('converges after dropped watches, a forced 410 and a burst of 500s, and is quiet when nothing changes', async () => {
    server.apply(
      node('node-f', { 'kubernetes.io/hostname': 'node-f', zone: 'f' }),
      prePull('shop', 'fault-1', [IMG('web')], { nodeSelector: { zone: 'f' } }),
    );
    const f = startAgent('node-f');
    publishAll(f.runtime);
    await eventually(() => presentImages('node-f').join() === IMG('web'));

    server.faults.dropWatches();
    server.faults.compact();
    server.faults.failNext({ path: '/prepulls', watch: false, code: 500, times: 3 });
    server.faults.failNext({ path: '/prepulls', watch: true, code: 500, times: 2 });
    server.faults.dropWatches();
    server.apply(prePull('shop', 'fault-2', [IMG('db')], { nodeSelector: { zone: 'f' } }));
    await eventually(
      () => presentImages('node-f').join() === [IMG('db'), IMG('web')].join(),
      30_000,
    );

    // Steady: once the status is written, nothing but the watches.
    await new Promise((r) => setTimeout(r, 2500));
    const before = server.accounting.count({ user: SA_USER, watch: false });
    await new Promise((r) => setTimeout(r, 3000));
    expect(server.accounting.count({ user: SA_USER, watch: false })).toBe(before);

    f.signals.emit('SIGTERM');
    expect(await f.exit).toBe(0);
  }, 60_000);

  it('pulls a paced PrePull only once its status admits the node; a held image is repaired without admission', async () => {
    server.apply(
      node('node-p', { 'kubernetes.io/hostname': 'node-p', zone: 'p' }),
      prePull('shop', 'paced', [IMG('cache')], {
        nodeSelector: { zone: 'p' },
        rollout: { maxConcurrentNodes: 1 },
      }),
    );
    const p = startAgent('node-p');
    publishAll(p.runtime);
    const state = (): string | undefined =>
      cache('node-p')?.status?.images.find((i) => i.image === IMG('cache'))?.reason;
    await eventually(() => state() === 'AwaitingAdmission');
    // Not admitted: a second look, a while later, still shows no pull.
    await new Promise((r) => setTimeout(r, 500));
    const pullsOfCache = (): number =>
      p.runtime.calls.filter((c) => c.op === 'pull' && c.ref === IMG('cache')).length;
    expect(pullsOfCache()).toBe(0);
    expect(cache('node-p')?.status?.images.find((i) => i.image === IMG('cache'))?.message).toMatch(
      /admit this node/,
    );

    // The controller's write, as it makes it: a merge patch of the status subresource.
    const admin = KubeClient.load(server.adminKubeconfig());
    await admin.request(
      'PATCH',
      '/apis/prepull.dev/v1alpha1/namespaces/shop/prepulls/paced/status',
      {
        contentType: 'application/merge-patch+json',
        body: {
          status: {
            rollout: {
              paused: false,
              admitted: [{ node: 'node-p', since: new Date().toISOString() }],
            },
          },
        },
      },
    );
    await eventually(() => presentImages('node-p').includes(IMG('cache')));

    // Admission withdrawn (the node is ready), then the image disappears: a repair, at once.
    await admin.request(
      'PATCH',
      '/apis/prepull.dev/v1alpha1/namespaces/shop/prepulls/paced/status',
      {
        contentType: 'application/merge-patch+json',
        body: { status: { rollout: { paused: false, admitted: [] } } },
      },
    );
    await new Promise((r) => setTimeout(r, 200));
    await p.runtime.remove(IMG('cache'));
    await eventually(() => pullsOfCache() === 2 && presentImages('node-p').includes(IMG('cache')));
    p.signals.emit('SIGTERM');
    expect(await p.exit).toBe(0);
  }, 60_000);
});

describe('prepull agent with no runtime answering at start', () => {
  function waitingAgent(
    nodeName: string,
    runtime: FakeRuntime,
    extra: Partial<AgentDependencies>,
  ): Running & { lines: Record<string, unknown>[] } {
    const signals = new EventEmitter();
    const { log, lines } = jsonLogSink();
    const exit = runAgent(
      ['--kubeconfig', kubeconfig, '--node-name', nodeName, '--metrics-address', '127.0.0.1:0'],
      { out: () => undefined, err: () => undefined },
      signals,
      {
        detect: detectedFakeSocket(runtime),
        env: {},
        log,
        releaseMemory: false,
        watchBackoff: { initialMs: 100, maxMs: 1000 },
        ...extra,
      },
    );
    const running = { runtime, signals, exit, logs: [], lines };
    agents.push(running);
    return running;
  }

  it('serves /healthz, is not ready and touches no Kubernetes object while it waits, then starts', async () => {
    server.apply(
      node('node-w', { 'kubernetes.io/hostname': 'node-w' }),
      prePull('shop', 'wait', [IMG('web')]),
    );
    const runtime = new FakeRuntime();
    publishAll(runtime);
    runtime.stop();
    const before = server.accounting.all().length;
    const w = waitingAgent('node-w', runtime, { runtimeBackoff: { initialMs: 5, maxMs: 20 } });
    const serving = await pollUntil(
      'the metrics address',
      () => w.lines.find((l) => l.msg === 'serving /metrics, /healthz, /readyz'),
      { timeoutMs: 10_000, intervalMs: 10 },
    );
    const base = `http://${String(serving.address)}`;
    await eventually(() => w.lines.some((l) => l.msg === 'waiting for the container runtime'));
    expect(await getText(base, '/healthz')).toEqual({ status: 200, text: 'ok\n' });
    expect(await getText(base, '/readyz')).toEqual({
      status: 503,
      text: 'waiting for the container runtime\n',
    });
    expect((await getText(base, '/metrics')).text).toMatch(/^prepull_runtime_up 0$/m);
    // No watch, no read, no NodeImageCache before the runtime answers.
    expect(server.accounting.all().slice(before)).toEqual([]);
    expect(cache('node-w')).toBeUndefined();
    const waiting = w.lines.filter((l) => l.msg === 'waiting for the container runtime');
    expect(waiting).toHaveLength(1);
    expect(waiting[0]).toMatchObject({ level: 'warn', code: 'ERR_RUNTIME_NOT_DETECTED' });

    runtime.start();
    await eventually(() => presentImages('node-w').includes(IMG('web')));
    await pollUntil('ready', async () => (await getText(base, '/readyz')).status === 200, {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    expect((await getText(base, '/metrics')).text).toMatch(/^prepull_runtime_up 1$/m);
    expect(w.lines.some((l) => l.msg === 'container runtime answered')).toBe(true);
    // What /readyz tells only a local caller is in the log, once per change.
    const readiness = w.lines
      .filter((l) => l.msg === 'not ready' || l.msg === 'ready')
      .map((l) => [l.level, l.msg, l.reason]);
    expect(readiness[0]).toEqual(['warn', 'not ready', 'waiting for the container runtime']);
    expect(readiness.at(-1)).toEqual(['info', 'ready', undefined]);
    w.signals.emit('SIGTERM');
    expect(await w.exit).toBe(0);
  }, 30_000);

  it('exits 0 on SIGTERM while it waits', async () => {
    const runtime = new FakeRuntime();
    runtime.stop();
    // A clock that never moves: the wait ends only by the signal.
    const clock = new ManualClock();
    const w = waitingAgent('node-x', runtime, { clock });
    await pollUntil('waiting', () => clock.waiting > 0, { timeoutMs: 10_000, intervalMs: 10 });
    w.signals.emit('SIGTERM');
    expect(await w.exit).toBe(0);
    expect(clock.sleeps).toEqual([1000]);
    expect(w.lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['waiting for the container runtime', 'exiting']),
    );
  });
});
