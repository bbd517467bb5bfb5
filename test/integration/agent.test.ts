// Acceptance of `prepull agent` (issue 7), end to end: the Kubernetes API test server in this
// process with the CRDs and RBAC from deploy/, and three real `prepull agent` processes
// (bin/prepull.js, built dist/) as three nodes — two on containerd (a private one and the shared
// one), one on Docker Engine — each authenticating with the kubeconfig of the shipped
// ServiceAccount, pulling from real registries (a private plain one, stopped later, and one with
// htpasswd auth and a canary password). What the agents claim in NodeImageCache is checked
// against the registry's digests and against each runtime through clients that share no code
// with prepull's adapters. The steps build on each other and run in order.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import Docker from 'dockerode';
import { readFileSync, readdirSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CachedImage, NodeImageCache } from '../../src/api/nodeimagecache.ts';
import { pollUntil } from '../../src/testing/poll.ts';
import { AgentProcess } from '../harness/agent-cli.ts';
import { KubeletCri } from '../harness/cri.ts';
import { type BuiltImage, clearLayerCache, runnableImage } from '../harness/images.ts';
import {
  type Harness,
  type HarnessInfo,
  pushImage,
  registryClient,
  sharedHarness,
  startHarness,
  uniqueName,
} from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { Registry, type RegistryEndpoint, readAccessLog } from '../harness/registry.ts';
import { type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import { assertBuildFresh } from '../harness/sync-cli.ts';
import { KubeApiServer } from '../kube-api-server/index.ts';
import type { JsonObject } from '../kube-api-server/json.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SA_USER = 'system:serviceaccount:prepull-system:prepull-agent';
/** The pull secret's credentials: the password is the canary searched for everywhere. */
const CANARY = { username: 'e2e-puller', password: 'canary-Zq81-e2e-Pa55w0rd' } as const;
/** Generous bounds: real pulls on a 2-core machine shared with other test runs. */
const CONVERGE_MS = 90_000;
/** How the convergence checks poll: every 100 ms, up to CONVERGE_MS. */
const CONVERGE = { timeoutMs: CONVERGE_MS, intervalMs: 100 };

type NodeKey = 'a' | 'b' | 'c';

interface NodeUnderTest {
  name: string;
  kind: 'containerd' | 'docker';
  probe: RuntimeProbe;
  info: HarnessInfo;
  agent?: AgentProcess;
}

/** The busybox marker a runnable image prints, and the digest its push returned. */
interface Pushed {
  ref: string;
  marker: string;
  digest: string;
}

/**
 * The substrings a secret leaves in base64 text wherever it sits in the encoded data: for each
 * of the three alignments, the characters that come from the secret's bytes alone.
 */
function base64Forms(secret: string): string[] {
  const bytes = Buffer.from(secret);
  return [0, 1, 2].map((pad) => {
    const encoded = Buffer.concat([Buffer.alloc(pad), bytes]).toString('base64');
    return encoded.slice(Math.ceil((8 * pad) / 6), Math.floor((8 * (pad + bytes.length)) / 6));
  });
}

/** Splits Docker's multiplexed log stream (8-byte frame headers) into the text written. */
function demux(buffer: Buffer): string {
  let out = '';
  for (let at = 0; at + 8 <= buffer.length;) {
    const size = buffer.readUInt32BE(at + 4);
    out += buffer.subarray(at + 8, at + 8 + size).toString('utf8');
    at += 8 + size;
  }
  return out;
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
    }).on('error', reject);
  });
}

describeIntegration('prepull agent on three nodes (real agents, runtimes and registries)', () => {
  let shared: HarnessInfo;
  let harness: Harness;
  let canaryRegistry: Registry;
  let plain: RegistryEndpoint;
  let canary: RegistryEndpoint;
  let server: KubeApiServer;
  let kubeconfig: string;
  const nodes = {} as Record<NodeKey, NodeUnderTest>;
  const images = {} as Record<string, Pushed>;
  /** The sandbox image each containerd requires, and its registry digest. */
  const sandbox = {} as Record<'a' | 'b', { ref: string; digest: string }>;
  const prefix = uniqueName('agent-e2e');
  const cleanups: (() => Promise<void>)[] = [];
  /** The first step that failed: the steps after it build on it and fail at once. */
  let failedStep: string | undefined;

  /** A step of the scenario, run only when every step before it passed. */
  function step(name: string, body: () => Promise<void>): void {
    it(name, async () => {
      if (failedStep !== undefined) throw new Error(`not run: the step "${failedStep}" failed`);
      try {
        await body();
      } catch (error) {
        failedStep = name;
        throw error;
      }
    });
  }

  function nodeObject(key: NodeKey, labels: Record<string, string>): JsonObject {
    const name = nodes[key].name;
    return {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
    };
  }

  function prePull(
    namespace: string,
    name: string,
    refs: readonly string[],
    spec: Record<string, unknown> = {},
  ): JsonObject {
    return {
      apiVersion: 'prepull.dev/v1alpha1',
      kind: 'PrePull',
      metadata: { namespace, name },
      spec: { images: refs.map((image) => ({ image })), ...spec },
    };
  }

  function cacheOf(key: NodeKey): NodeImageCache | undefined {
    return server.get('prepull.dev/v1alpha1', 'NodeImageCache', nodes[key].name) as
      NodeImageCache | undefined;
  }

  function listed(key: NodeKey): CachedImage[] {
    return cacheOf(key)?.status?.images ?? [];
  }

  /** The references node `key` must hold: the named test images, and its sandbox image. */
  function expected(key: NodeKey, names: readonly string[]): string[] {
    const refs = names.map((n) => images[n]!.ref);
    if (key !== 'c') refs.push(sandbox[key].ref);
    return refs.sort();
  }

  /** The node lists exactly `refs`, all Present and settled (verified, and pinned where it can). */
  function holdsExactly(key: NodeKey, refs: readonly string[]): boolean {
    const entries = listed(key);
    return (
      entries
        .map((i) => i.image)
        .sort()
        .join() === refs.join() &&
      entries.every((i) => i.state === 'Present' && i.reason === 'Verified')
    );
  }

  async function converge(want: Record<NodeKey, string[]>, what: string): Promise<void> {
    try {
      await pollUntil(
        what,
        () => (Object.keys(want) as NodeKey[]).every((key) => holdsExactly(key, want[key])),
        CONVERGE,
      );
    } catch (error) {
      const seen = (Object.keys(nodes) as NodeKey[]).map((key) => ({
        node: nodes[key].name,
        want: want[key],
        listed: listed(key).map(
          (i) => `${i.image} ${i.state} ${i.reason ?? ''} ${i.message ?? ''}`,
        ),
        agentTail: nodes[key].agent?.tail(8),
      }));
      throw new Error(`${String(error)}\n${JSON.stringify(seen, null, 2)}`);
    }
  }

  /** Every listed image carries the digest pushed to the registry, and the runtime itself holds it. */
  async function checkDigests(key: NodeKey): Promise<void> {
    const node = nodes[key];
    for (const entry of listed(key)) {
      const sandboxImage = key === 'c' ? undefined : sandbox[key];
      const want =
        entry.image === sandboxImage?.ref
          ? sandboxImage.digest
          : Object.values(images).find((i) => i.ref === entry.image)?.digest;
      expect({
        node: node.name,
        image: entry.image,
        digest: entry.digest,
        registryDigest: entry.registryDigest,
      }).toEqual({
        node: node.name,
        image: entry.image,
        digest: want,
        // A tag is resolved at the registry; a digest reference is its own proof.
        registryDigest: entry.image.includes('@') ? undefined : want,
      });
      expect(entry.pinned).toBe(node.kind === 'containerd');
      const inRuntime = await node.probe.status(entry.image);
      const repo = entry.image.replace(/(@sha256:[0-9a-f]+|:[^:/]+)$/, '');
      expect(inRuntime?.repoDigests).toContain(`${repo}@${want ?? '?'}`);
    }
  }

  function events(): {
    reason?: string;
    reportingController?: string;
    reportingInstance?: string;
    regarding?: { kind?: string; namespace?: string; name?: string };
    note?: string;
  }[] {
    return server.store.list('events.k8s.io/events');
  }

  function agents(): AgentProcess[] {
    return Object.values(nodes).flatMap((n) => (n.agent ? [n.agent] : []));
  }

  async function push(name: string, registry: RegistryEndpoint, byDigest = false): Promise<void> {
    const marker = `${prefix} ${name}`;
    const image: BuiltImage = runnableImage({ marker });
    const repo = `${prefix}/${name}`;
    const { digest } = await pushImage(registry, repo, 'v1', image);
    const ref = byDigest ? `${registry.host}/${repo}@${digest}` : `${registry.host}/${repo}:v1`;
    images[name] = { ref, marker, digest };
  }

  beforeAll(async () => {
    assertBuildFresh();
    shared = sharedHarness();
    // A private containerd (the second containerd node) and registries this test may stop: a
    // plain one and an htpasswd one whose password is the canary. Both listen on 127.0.0.1,
    // which the shared runtimes reach with no configuration of their own: containerd 1.6 uses
    // plain HTTP for a loopback registry without a hosts.toml, and Docker Engine treats
    // 127.0.0.0/8 as insecure by default.
    harness = await startHarness({ registries: ['plain'], containerd: true, docker: false });
    cleanups.push(() => harness.stop());
    canaryRegistry = await Registry.create(harness.root, { name: 'canary', auth: { ...CANARY } });
    cleanups.push(() => canaryRegistry.stop());
    plain = harness.info.registries.plain!;
    canary = canaryRegistry.endpoint;
    nodes.a = {
      name: `${prefix}-a`,
      kind: 'containerd',
      probe: runtimeProbe('containerd', harness.info),
      info: harness.info,
    };
    nodes.b = {
      name: `${prefix}-b`,
      kind: 'containerd',
      probe: runtimeProbe('containerd', shared),
      info: shared,
    };
    nodes.c = {
      name: `${prefix}-c`,
      kind: 'docker',
      probe: runtimeProbe('docker', shared),
      info: shared,
    };
    for (const key of ['a', 'b'] as const) {
      const ref = nodes[key].info.containerd!.sandboxImage;
      const [, host = '', repo = '', tag = ''] = /^([^/]+)\/(.+):([^:/]+)$/.exec(ref) ?? [];
      const registry = Object.values(nodes[key].info.registries).find((r) => r.host === host)!;
      const client = registryClient(registry);
      try {
        const { digest } = await client.headManifest(repo, tag);
        sandbox[key] = { ref, digest: digest! };
      } finally {
        client.close();
      }
    }

    await Promise.all([
      push('base', plain),
      push('tools', plain, true),
      push('web', plain),
      push('cache', plain),
      push('db', plain),
      push('late', plain),
      push('private', canary),
    ]);

    server = await KubeApiServer.start();
    cleanups.push(() => server.stop());
    server.applyManifests(join(REPO, 'deploy', 'namespace.yaml'));
    server.applyManifests(join(REPO, 'deploy', 'crds'));
    server.applyManifests(join(REPO, 'deploy', 'rbac.yaml'));
    // These agents run without a controller: they read pull secrets directly, with the
    // optional grant for that (ADR 0020); the controller's copies are pull-secret-copies.test.ts's.
    server.applyManifests(join(REPO, 'deploy', 'agent-direct-secrets.yaml'));
    ({ kubeconfig } = server.serviceAccount('prepull-system', 'prepull-agent'));
    for (const ns of ['platform', 'shop', 'data', 'ops'])
      server.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  });

  afterAll(async () => {
    // A failed step must not leave agents running.
    await Promise.all(
      agents()
        .filter((a) => a.running)
        .map(async (a) => {
          a.kill('SIGKILL');
          await a.exited(10_000).catch(() => undefined);
        }),
    );
    for (const node of Object.values(nodes)) node.probe.close();
    clearLayerCache();
    // What beforeAll started, last first (it may have failed part way); every step runs.
    const failures: unknown[] = [];
    for (const cleanup of cleanups.reverse())
      await cleanup().catch((e: unknown) => failures.push(e));
    if (failures.length > 0) throw failures[0];
  });

  step(
    'setup: three agent processes authenticate as the shipped ServiceAccount and become ready',
    async () => {
      server.apply(
        nodeObject('a', { tier: 'web' }),
        nodeObject('b', { tier: 'data', secure: 'true' }),
        nodeObject('c', { tier: 'web', secure: 'true' }),
        // Before the agents start: found by their first list.
        prePull('platform', 'everywhere', [images.base!.ref, images.tools!.ref]),
      );
      for (const key of ['a', 'b', 'c'] as const) {
        const node = nodes[key];
        node.agent = new AgentProcess(node.name, [
          '--kubeconfig',
          kubeconfig,
          '--node-name',
          node.name,
          '--runtime-endpoint',
          node.probe.endpoint,
          '--insecure-registry',
          plain.host,
          '--insecure-registry',
          canary.host,
          '--insecure-registry',
          shared.registries.plain!.host,
          '--metrics-address',
          '127.0.0.1:0',
          '--pull-secrets',
          'direct',
          '--log-level',
          'debug',
        ]);
      }
      for (const key of ['a', 'b', 'c'] as const) {
        const agent = nodes[key].agent!;
        await agent.waitForLog((l) => l.msg === 'agent started', 'agent started');
        const serving = await agent.waitForLog(
          (l) => l.msg === 'serving /metrics, /healthz, /readyz',
          'the metrics address',
        );
        const address = String(serving.address);
        await pollUntil(
          `${nodes[key].name} /readyz`,
          async () => {
            return (await httpGet(`http://${address}/readyz`)).status === 200;
          },
          CONVERGE,
        );
        // Created at start, owned by its Node; the status names the runtime it reached.
        expect(cacheOf(key)?.metadata.ownerReferences?.[0]).toMatchObject({
          kind: 'Node',
          name: nodes[key].name,
        });
        await pollUntil(
          `${nodes[key].name} status`,
          () => cacheOf(key)?.status !== undefined,
          CONVERGE,
        );
        expect(cacheOf(key)?.status?.runtime).toMatchObject({
          name: nodes[key].kind === 'docker' ? 'docker' : 'containerd',
          endpoint: nodes[key].probe.endpoint,
        });
      }
      const users = new Set(
        server.accounting
          .all()
          .filter((r) => r.resource.includes('nodeimagecaches'))
          .map((r) => r.user),
      );
      expect([...users]).toEqual([SA_USER]);
    },
  );

  step(
    'placement: each node holds exactly the images of the PrePulls that select it, at the registry digests; they follow label changes',
    async () => {
      const dockerConfig = JSON.stringify({
        auths: {
          [canary.host]: {
            auth: Buffer.from(`${CANARY.username}:${CANARY.password}`).toString('base64'),
          },
        },
      });
      server.apply(
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { namespace: 'shop', name: 'regcred' },
          type: 'kubernetes.io/dockerconfigjson',
          data: { '.dockerconfigjson': Buffer.from(dockerConfig).toString('base64') },
        },
        prePull('shop', 'web', [images.web!.ref, images.cache!.ref], {
          nodeSelector: { tier: 'web' },
        }),
        prePull('data', 'db', [images.db!.ref], { nodeSelector: { tier: 'data' } }),
        prePull('shop', 'private', [images.private!.ref], {
          nodeSelector: { secure: 'true' },
          imagePullSecrets: [{ name: 'regcred' }],
        }),
      );
      const everywhere = ['base', 'tools'];
      await converge(
        {
          a: expected('a', [...everywhere, 'web', 'cache']),
          b: expected('b', [...everywhere, 'db', 'private']),
          c: expected('c', [...everywhere, 'web', 'cache', 'private']),
        },
        'first placement',
      );
      for (const key of ['a', 'b', 'c'] as const) await checkDigests(key);
      expect(listed('c').find((i) => i.image === images.private!.ref)?.requiredBy).toEqual([
        'shop/private',
      ]);
      expect(listed('a').find((i) => i.image === images.web!.ref)?.requiredBy).toEqual([
        'shop/web',
      ]);

      // Node b leaves the data tier for the web tier: the web images follow it, db is no longer
      // listed there — and stays in the runtime, since prepull never removes anything.
      server.apply(nodeObject('b', { tier: 'web', secure: 'true' }));
      await converge(
        {
          a: expected('a', [...everywhere, 'web', 'cache']),
          b: expected('b', [...everywhere, 'web', 'cache', 'private']),
          c: expected('c', [...everywhere, 'web', 'cache', 'private']),
        },
        'placement after the label change',
      );
      await checkDigests('b');
      expect(listed('b').some((i) => i.image === images.db!.ref)).toBe(false);
      expect((await nodes.b.probe.status(images.db!.ref))?.repoDigests).toContain(
        `${images.db!.ref.replace(/:v1$/, '')}@${images.db!.digest}`,
      );
    },
  );

  step(
    'repair: images removed by another client are pulled again, with a Repaired event from the node',
    async () => {
      // An operator's `crictl rmi` on containerd, and `docker rmi` of an image that needed the
      // pull secret on Docker Engine.
      await nodes.a.probe.remove(images.web!.ref);
      await nodes.c.probe.remove(images.private!.ref);
      const repaired = (node: NodeKey, prePull: string): boolean =>
        events().some(
          (e) =>
            e.reason === 'Repaired' &&
            e.reportingInstance === nodes[node].name &&
            `${e.regarding?.namespace ?? ''}/${e.regarding?.name ?? ''}` === prePull,
        );
      await pollUntil(
        'Repaired events',
        () => repaired('a', 'shop/web') && repaired('c', 'shop/private'),
        CONVERGE,
      );
      for (const [key, name, prePullName] of [
        ['a', 'web', 'shop/web'],
        ['c', 'private', 'shop/private'],
      ] as const) {
        const event = events().find(
          (e) => e.reason === 'Repaired' && e.reportingInstance === nodes[key].name,
        );
        expect(event).toMatchObject({
          reportingController: 'prepull.dev/agent',
          reportingInstance: nodes[key].name,
          regarding: {
            kind: 'PrePull',
            namespace: prePullName.split('/')[0],
            name: prePullName.split('/')[1],
          },
        });
        const ref = images[name]!.ref;
        await pollUntil(
          `${ref} back on ${nodes[key].name}`,
          async () => {
            const image = await nodes[key].probe.status(ref);
            return (
              image !== undefined && listed(key).find((i) => i.image === ref)?.state === 'Present'
            );
          },
          CONVERGE,
        );
        expect((await nodes[key].probe.status(ref))?.repoDigests).toContain(
          `${ref.replace(/:v1$/, '')}@${images[name]!.digest}`,
        );
        if (key === 'a') {
          await pollUntil(
            `${ref} pinned again`,
            async () => (await nodes.a.probe.pinnedLabel(ref)) === true,
            CONVERGE,
          );
        }
      }
    },
  );

  step(
    'faults: after dropped watches, a forced 410 and a change made meanwhile, the agents converge',
    async () => {
      const lists = (resource: string): number =>
        server.accounting
          .all()
          .filter((r) => r.user === SA_USER && r.verb === 'list' && r.resource === resource).length;
      const before = { prepulls: lists('prepull.dev/prepulls'), nodes: lists('/nodes') };
      // A write first, so every agent's last resourceVersion is older than the compaction.
      server.apply({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { namespace: 'default', name: 'unrelated' },
        data: { at: String(Date.now()) },
      });
      // All synchronous: no agent can reconnect between the drop, the compaction and the change.
      server.faults.dropWatches();
      server.faults.compact();
      server.apply(
        prePull('ops', 'late', [images.late!.ref]),
        nodeObject('a', { tier: 'web', secure: 'true' }),
      );
      const everywhere = ['base', 'tools', 'late'];
      await converge(
        {
          a: expected('a', [...everywhere, 'web', 'cache', 'private']),
          b: expected('b', [...everywhere, 'web', 'cache', 'private']),
          c: expected('c', [...everywhere, 'web', 'cache', 'private']),
        },
        'convergence after the faults',
      );
      for (const key of ['a', 'b', 'c'] as const) await checkDigests(key);
      // The watches resumed from compacted resourceVersions got 410 and every agent listed again.
      expect(lists('prepull.dev/prepulls') - before.prepulls).toBeGreaterThanOrEqual(3);
      expect(lists('/nodes') - before.nodes).toBeGreaterThanOrEqual(3);
    },
  );

  step(
    'never policy: with the registries stopped, containers start on every node from the pre-pulled images',
    async () => {
      await harness.registry('plain').stop({ kill: true });
      await canaryRegistry.stop({ kill: true });
      // Node b's sandbox image comes from the shared registry, which keeps running: its access
      // log shows that starting the pods fetched nothing (the agents only HEAD for digests).
      const sharedLog = join(shared.root, 'logs', `registry-${shared.registries.plain!.name}.log`);
      const fetches = (): number =>
        readAccessLog(sharedLog).filter(
          (e) => e.method === 'GET' && /\/(manifests|blobs)\//.test(e.path),
        ).length;
      const fetchesBefore = fetches();
      expect(readAccessLog(sharedLog).length).toBeGreaterThan(0);

      // containerd, as kubelet does for a Pod with imagePullPolicy Never: RunPodSandbox, then
      // CreateContainer and StartContainer — no PullImage.
      for (const [key, name] of [
        ['a', 'private'],
        ['b', 'web'],
      ] as const) {
        const { containerd, workDir } = nodes[key].info;
        const cri = new KubeletCri(containerd!.socket);
        try {
          const image = images[name]!;
          const run = await cri.runPod({
            image: image.ref,
            name: uniqueName(`never-${key}`),
            workDir,
            cgroupParent: containerd!.cgroupParent,
          });
          expect({
            node: nodes[key].name,
            exitCode: run.exitCode,
            output: run.output.trim(),
          }).toEqual({
            node: nodes[key].name,
            exitCode: 0,
            output: image.marker,
          });
        } finally {
          cri.close();
        }
      }

      expect(fetches()).toBe(fetchesBefore);

      // Docker Engine: create and start, no pull (the Engine API's create never pulls).
      const docker = new Docker({ socketPath: nodes.c.info.docker!.socket });
      const late = images.late!;
      const container = await docker.createContainer({
        Image: late.ref,
        HostConfig: { NetworkMode: 'none' },
      });
      try {
        await container.start();
        const result = (await container.wait()) as { StatusCode: number };
        expect(result.StatusCode).toBe(0);
        const logs = await container.logs({ stdout: true, stderr: true, follow: false });
        expect(demux(logs).trim()).toBe(late.marker);
      } finally {
        await container.remove({ force: true });
      }
    },
  );

  step(
    'air gap: a PrePull created now, naming an image one node already holds, finds it there without pulling',
    async () => {
      // The registries are stopped (the step before). Node b kept db from the placement step,
      // untracked since b left the data tier; a and c never had it.
      const db = images.db!;
      const logsBefore = nodes.b.agent!.logs.length;
      server.apply(prePull('data', 'kept', [db.ref]));
      const entry = (key: NodeKey): CachedImage | undefined =>
        listed(key).find((i) => i.image === db.ref);
      try {
        await pollUntil(
          'db reported on every node',
          () =>
            (['a', 'b', 'c'] as const).every((key) => {
              const found = entry(key);
              return key === 'b'
                ? found?.state === 'Present'
                : found?.state === 'Missing' && found.code !== undefined;
            }),
          CONVERGE,
        );
      } catch (error) {
        const seen = (['a', 'b', 'c'] as const).map((key) => entry(key));
        throw new Error(`${String(error)}; saw ${JSON.stringify(seen)}`);
      }
      // b: the runtime's own record, with the digest it was pulled at; no pull was tried.
      expect(entry('b')).toMatchObject({ state: 'Present', digest: db.digest });
      const pulled = nodes.b
        .agent!.logs.slice(logsBefore)
        .filter((l) => l.image === db.ref && l.state === 'Pulling');
      expect(pulled).toEqual([]);
      // a and c: a pull was tried and failed against the stopped registry, reported as such.
      for (const key of ['a', 'c'] as const) {
        expect(entry(key)).toMatchObject({ state: 'Missing', reason: 'BackOff' });
      }
    },
  );

  it('security: every agent request was allowed by the shipped RBAC, and the canary is nowhere', async () => {
    const scrapes: string[] = [];
    for (const agent of agents()) {
      const serving = agent.logs.find((l) => l.msg === 'serving /metrics, /healthz, /readyz');
      const metrics = await httpGet(`http://${String(serving?.address)}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.body).toContain('prepull_images_required');
      scrapes.push(metrics.body);
    }

    const requests = server.accounting.all();
    const agentRequests = requests.filter((r) => r.user === SA_USER);
    // What the agents did, all as the ServiceAccount: watched, wrote status, recorded events,
    // read the pull secret.
    for (const [verb, resource] of [
      ['watch', 'prepull.dev/prepulls'],
      ['watch', '/nodes'],
      ['update', 'prepull.dev/nodeimagecaches/status'],
      ['create', 'events.k8s.io/events'],
      ['get', '/secrets'],
    ] as const) {
      expect({
        verb,
        resource,
        allowed: agentRequests.some(
          (r) => r.verb === verb && r.resource === resource && r.code < 400,
        ),
      }).toEqual({ verb, resource, allowed: true });
    }
    expect(requests.filter((r) => r.code === 401 || r.code === 403)).toEqual([]);
    // Secrets are read one by one, by name: never listed or watched.
    expect([
      ...new Set(agentRequests.filter((r) => r.resource === '/secrets').map((r) => r.verb)),
    ]).toEqual(['get']);

    const auth = Buffer.from(`${CANARY.username}:${CANARY.password}`).toString('base64');
    // The password as it is, base64-encoded, inside the encoded user:password, and inside the
    // encoded docker config that holds that (the Secret's data).
    const needles = [
      CANARY.password,
      ...base64Forms(CANARY.password),
      ...base64Forms(`${CANARY.username}:${CANARY.password}`),
      ...base64Forms(auth),
    ];
    const places: Record<string, string> = {
      logs: agents()
        .map((a) => `${a.stdout}\n${a.stderr}`)
        .join('\n'),
      events: JSON.stringify([
        server.store.list('events.k8s.io/events'),
        server.store.list('/events'),
      ]),
      status: JSON.stringify(server.store.list('prepull.dev/nodeimagecaches')),
      metrics: scrapes.join('\n'),
    };
    // The search can find what it looks for: the Secret itself holds the encoded canary.
    const secret = JSON.stringify(server.get('v1', 'Secret', 'regcred', 'shop'));
    expect(needles.some((n) => secret.includes(n))).toBe(true);
    for (const [place, text] of Object.entries(places)) {
      expect(text.length).toBeGreaterThan(0);
      for (const needle of needles) {
        expect({ place, needle, found: text.includes(needle) }).toEqual({
          place,
          needle,
          found: false,
        });
      }
    }
  });

  it('shutdown: on SIGTERM every agent exits 0 within seconds and leaves no process behind', async () => {
    const running = agents();
    expect(running).toHaveLength(3);
    for (const agent of running) agent.kill('SIGTERM');
    const exits = await Promise.all(running.map((a) => a.exited(30_000)));
    for (const [i, exit] of exits.entries()) {
      const agent = running[i]!;
      expect({ node: agent.name, code: exit.code, signal: exit.signal }).toEqual({
        node: agent.name,
        code: 0,
        signal: null,
      });
      expect(exit.afterKillMs).toBeLessThan(10_000);
      expect(agent.logs.some((l) => l.msg === 'agent stopped')).toBe(true);
      expect(agent.otherStderr).toEqual([]);
    }
    // No process anywhere still runs as one of these nodes' agent.
    const leftovers = readdirSync('/proc')
      .filter((pid) => /^\d+$/.test(pid))
      .flatMap((pid) => {
        try {
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
          return cmdline.includes(prefix) ? [`${pid}: ${cmdline}`] : [];
        } catch {
          return [];
        }
      });
    expect(leftovers).toEqual([]);
  });
});
