// Acceptance of `prepull controller` (issue 16), end to end: the three-agent cluster of
// agent.test.ts — the Kubernetes API test server in this process with deploy/'s CRDs and RBAC
// (enforced), three real `prepull agent` processes as three nodes, two on containerd (a private
// one and the shared one) and one on Docker Engine, pulling from a real registry — grows two real
// `prepull controller` replicas (bin/prepull.js, built dist/) electing a leader through the Lease
// with short timings. What the controllers write is read back as operators read it (the real
// `kubectl get pp` and `kubectl wait`) and checked against the nodes' NodeImageCaches and the
// registry's digests; every stored version of PrePulls, NodeImageCaches, Nodes and the Lease is
// recorded from the server's store, so the steps can assert on what happened in between (pulls
// that overlapped, a label set on a node that was not ready, a condition that flapped), not only
// on where things ended. Images that must take a while to pull come through a proxy that slows
// the registry's answers to a fixed rate. The steps build on each other and run in order.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import Docker from 'dockerode';
import { readFileSync, readdirSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CachedImage, NodeImageCache } from '../../src/api/nodeimagecache.ts';
import type { PrePullStatus } from '../../src/api/rollout.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { pollUntil } from '../../src/testing/poll.ts';
import { AgentProcess, ControllerProcess, type PrepullProcess } from '../harness/agent-cli.ts';
import { KubeletCri } from '../harness/cri.ts';
import { type BuiltImage, clearLayerCache, fillerLayer, runnableImage } from '../harness/images.ts';
import {
  type Harness,
  type HarnessInfo,
  pushImage,
  sharedHarness,
  startHarness,
  uniqueName,
} from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type KubectlRun, kubectl, kubectlMissing, parseTable } from '../harness/kubectl.ts';
import type { RegistryEndpoint } from '../harness/registry.ts';
import { type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import { assertBuildFresh } from '../harness/sync-cli.ts';
import { ThrottleProxy } from '../harness/throttle-proxy.ts';
import { KubeApiServer } from '../kube-api-server/index.ts';
import type { JsonObject } from '../kube-api-server/json.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const AGENT_USER = 'system:serviceaccount:prepull-system:prepull-agent';
const CONTROLLER_USER = 'system:serviceaccount:prepull-system:prepull-controller';
const NS = 'e2e';
const LEASE = { namespace: 'prepull-system', name: 'prepull-controller' } as const;
/** Short lease timings (seconds): a crashed leader is replaced within 4 + 2 × 1 s. */
const LEASE_DURATION_S = 4;
const RENEW_DEADLINE_S = 3;
const RETRY_PERIOD_S = 1;
/** An admitted node whose NodeImageCache stops changing loses its slot after this long. */
const ADMISSION_TIMEOUT_S = 10;
/** While pulling, agents rewrite their NodeImageCache at least this often (timeout > 2×). */
const HEARTBEAT_S = 3;
/** Slow images: one incompressible layer of this size through the proxy at this rate (~4 s). */
const SLOW_BYTES = 8 * 1024 * 1024;
const SLOW_RATE = 2 * 1024 * 1024;
/**
 * The failover rollout's image takes ~10 s a node: longer than a crashed leader's replacement
 * (lease duration + 2 retry periods, 6 s), so the new leader inherits a node mid-pull.
 */
const FAILOVER_BYTES = 20 * 1024 * 1024;
/** Generous bounds: real pulls on a 2-core machine shared with other test runs. */
const CONVERGE = { timeoutMs: 90_000, intervalMs: 100 };
const READY_LABEL = 'prepull.dev/e2e-ready';
const PENDING_TAINT = 'prepull.dev/images-pending';

type NodeKey = 'a' | 'b' | 'c';
const KEYS: readonly NodeKey[] = ['a', 'b', 'c'];

interface NodeUnderTest {
  name: string;
  kind: 'containerd' | 'docker';
  probe: RuntimeProbe;
  agent?: AgentProcess;
}

interface Pushed {
  ref: string;
  digest: string;
}

/** One stored version of a watched object, in the store's order. */
interface Version {
  rv: number;
  at: number;
  typeKey: string;
  object: JsonObject;
}

interface Taint {
  key: string;
  value?: string;
  effect: string;
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

function metadataOf(object: JsonObject): {
  name?: string;
  namespace?: string;
  generation?: number;
  labels?: Record<string, string>;
} {
  return (object.metadata ?? {}) as ReturnType<typeof metadataOf>;
}

/** A message as the status carries it: at most 256 characters, "..." where it was cut. */
function clipped(text: string): string {
  return text.length <= 256 ? text : `${text.slice(0, 253)}...`;
}

/** The condition statuses of consecutive versions, repeats folded: ['False', 'True']. */
function folded(values: readonly string[]): string[] {
  return values.filter((v, i) => i === 0 || values[i - 1] !== v);
}

describeIntegration(
  'prepull controller with three agents (real controllers, agents, kubectl, runtimes and registries)',
  () => {
    let shared: HarnessInfo;
    let harness: Harness;
    let plain: RegistryEndpoint;
    let proxy: ThrottleProxy;
    let server: KubeApiServer;
    let agentKubeconfig: string;
    let controllerKubeconfig: string;
    let adminKubeconfig: string;
    let kubectlProblem: string | undefined;
    const nodes = {} as Record<NodeKey, NodeUnderTest>;
    const images = {} as Record<string, Pushed>;
    /** `late` is pushed only once the status step has seen it fail. */
    let lateImage: BuiltImage;
    /** Every controller replica started, killed ones included (their logs stay readable). */
    const controllers: ControllerProcess[] = [];
    /** Every stored version of PrePulls, NodeImageCaches, Nodes and Leases, from the start. */
    const versions: Version[] = [];
    const unwatch: (() => void)[] = [];
    const prefix = uniqueName('ctl-e2e');
    const cleanups: (() => Promise<void>)[] = [];
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

    // ---- the cluster's objects ------------------------------------------------------------

    function nodeName(key: NodeKey): string {
      return nodes[key].name;
    }

    function keyOf(name: string): NodeKey | undefined {
      return KEYS.find((k) => nodes[k].name === name);
    }

    function prePull(name: string, refs: readonly string[], spec: JsonObject = {}): JsonObject {
      return {
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        metadata: { namespace: NS, name },
        spec: { images: refs.map((image) => ({ image })), ...spec },
      };
    }

    function prePullObject(name: string): JsonObject | undefined {
      return server.get('prepull.dev/v1alpha1', 'PrePull', name, NS);
    }

    function statusOf(name: string): PrePullStatus | undefined {
      return prePullObject(name)?.status as PrePullStatus | undefined;
    }

    function generationOf(name: string): number | undefined {
      const object = prePullObject(name);
      return object === undefined ? undefined : metadataOf(object).generation;
    }

    function conditionOf(
      status: PrePullStatus | undefined,
      type: string,
    ): PrePullStatus['conditions'][number] | undefined {
      return status?.conditions.find((c) => c.type === type);
    }

    function cacheOf(key: NodeKey): NodeImageCache | undefined {
      return server.get('prepull.dev/v1alpha1', 'NodeImageCache', nodeName(key)) as
        NodeImageCache | undefined;
    }

    function entryOf(key: NodeKey, ref: string): CachedImage | undefined {
      return cacheOf(key)?.status?.images.find((i) => i.image === ref);
    }

    function nodeOf(key: NodeKey): JsonObject {
      return server.get('v1', 'Node', nodeName(key))!;
    }

    function labelsOf(node: JsonObject): Record<string, string> {
      return metadataOf(node).labels ?? {};
    }

    function taintsOf(node: JsonObject): Taint[] {
      return ((node.spec as { taints?: Taint[] } | undefined)?.taints ?? []).map((t) => ({ ...t }));
    }

    function holder(): string | undefined {
      const lease = server.get('coordination.k8s.io/v1', 'Lease', LEASE.name, LEASE.namespace);
      return (lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
    }

    /** Every stored version of the PrePull `name` since `fromRv`, oldest first. */
    function statusVersions(name: string, fromRv = 0): { rv: number; status: PrePullStatus }[] {
      return versions
        .filter(
          (v) =>
            v.typeKey === 'prepull.dev/prepulls' &&
            v.rv > fromRv &&
            metadataOf(v.object).namespace === NS &&
            metadataOf(v.object).name === name &&
            v.object.status !== undefined,
        )
        .map((v) => ({ rv: v.rv, status: v.object.status as unknown as PrePullStatus }));
    }

    /** Each node's NodeImageCache entry for `ref` at every stored version since `fromRv`. */
    function cacheVersions(
      ref: string,
      fromRv: number,
    ): { rv: number; at: number; node: NodeKey; entry: CachedImage | undefined }[] {
      return versions.flatMap((v) => {
        if (v.typeKey !== 'prepull.dev/nodeimagecaches' || v.rv <= fromRv) return [];
        const node = keyOf(metadataOf(v.object).name ?? '');
        if (node === undefined) return [];
        const cache = v.object as unknown as NodeImageCache;
        const entry = cache.status?.images.find((i) => i.image === ref);
        return [{ rv: v.rv, at: v.at, node, entry }];
      });
    }

    /**
     * Each node's pull of `ref` as its NodeImageCache told it: from the first version showing it
     * Pulling to the first one after that showing it Present (store resourceVersions).
     */
    function pullIntervals(
      ref: string,
      fromRv: number,
    ): Map<NodeKey, { from: number; to?: number }> {
      const intervals = new Map<NodeKey, { from: number; to?: number }>();
      for (const { rv, node, entry } of cacheVersions(ref, fromRv)) {
        const interval = intervals.get(node);
        if (interval === undefined && entry?.state === 'Pulling') intervals.set(node, { from: rv });
        else if (interval !== undefined && interval.to === undefined && entry?.state === 'Present')
          interval.to = rv;
      }
      return intervals;
    }

    /** Each agent's pull of `ref` as it logged it: `image state` Pulling, then Present (ms). */
    function loggedPulls(ref: string): Map<NodeKey, { from: number; to: number }> {
      const pulls = new Map<NodeKey, { from: number; to: number }>();
      for (const key of KEYS) {
        const logs = nodes[key].agent?.logs ?? [];
        const states = logs.filter((l) => l.msg === 'image state' && l.image === ref);
        const from = states.find((l) => l.state === 'Pulling');
        const to = states.find((l) => l.state === 'Present');
        if (from !== undefined && to !== undefined)
          pulls.set(key, { from: Date.parse(String(from.time)), to: Date.parse(String(to.time)) });
      }
      return pulls;
    }

    /** No two of these intervals overlap (each ends before the next one starts). */
    function expectSerial(intervals: ReadonlyMap<NodeKey, { from: number; to?: number }>): void {
      const sorted = [...intervals].sort((x, y) => x[1].from - y[1].from);
      for (let i = 1; i < sorted.length; i++) {
        const [before, previous] = sorted[i - 1]!;
        const [after, next] = sorted[i]!;
        expect({ before, after, overlap: (previous.to ?? Infinity) >= next.from }).toEqual({
          before,
          after,
          overlap: false,
        });
      }
    }

    /**
     * Checks that every version's admitted list is at most `max` long; returns the nodes in the
     * order they were admitted, and the `since` of each node's admissions.
     */
    function admissionsOf(
      name: string,
      fromRv: number,
      max: number,
    ): { order: NodeKey[]; sinces: Map<string, Set<string>> } {
      const order: NodeKey[] = [];
      const sinces = new Map<string, Set<string>>();
      for (const { rv, status } of statusVersions(name, fromRv)) {
        const admitted = status.rollout?.admitted ?? [];
        expect({ prePull: name, rv, admitted: admitted.length, max }).toEqual({
          prePull: name,
          rv,
          admitted: Math.min(admitted.length, max),
          max,
        });
        for (const a of admitted) {
          const key = keyOf(a.node);
          if (key !== undefined && order[order.length - 1] !== key) order.push(key);
          sinces.set(a.node, (sinces.get(a.node) ?? new Set()).add(a.since));
        }
      }
      return { order, sinces };
    }

    /** lastTransitionTime of a condition never changes while its status holds, in any version. */
    function expectStableTransitionTimes(name: string): void {
      const list = statusVersions(name);
      for (let i = 1; i < list.length; i++) {
        for (const c of list[i]!.status.conditions) {
          const before = conditionOf(list[i - 1]!.status, c.type);
          if (before?.status !== c.status) continue;
          expect({
            prePull: name,
            type: c.type,
            rv: list[i]!.rv,
            lastTransitionTime: c.lastTransitionTime,
          }).toEqual({
            prePull: name,
            type: c.type,
            rv: list[i]!.rv,
            lastTransitionTime: before.lastTransitionTime,
          });
        }
      }
    }

    function describeState(what: string, names: readonly string[]): string {
      return JSON.stringify(
        {
          what,
          prePulls: names.map((n) => ({
            name: n,
            generation: generationOf(n),
            status: statusOf(n),
          })),
          caches: KEYS.map((k) => ({
            node: nodeName(k),
            images: cacheOf(k)?.status?.images.map(
              (i) => `${i.image} ${i.state} ${i.reason ?? ''} ${i.code ?? ''} ${i.message ?? ''}`,
            ),
            agent: nodes[k].agent?.tail(5),
          })),
          controllers: controllers.map((c) => ({ name: c.name, tail: c.tail(8) })),
          holder: holder(),
        },
        null,
        2,
      );
    }

    async function until<T>(
      what: string,
      check: () => T | undefined | false,
      names: readonly string[],
      timeoutMs = CONVERGE.timeoutMs,
    ): Promise<T> {
      try {
        return await pollUntil(what, check, { ...CONVERGE, timeoutMs });
      } catch (error) {
        throw new Error(`${String(error)}\n${describeState(what, names)}`);
      }
    }

    /** The PrePull is Ready: every selected node holds every image, at this generation. */
    async function untilReady(name: string, selected = 3): Promise<PrePullStatus> {
      return until(
        `${name} Ready with ${selected} nodes`,
        () => {
          const status = statusOf(name);
          return status !== undefined &&
            status.observedGeneration === generationOf(name) &&
            status.nodes.selected === selected &&
            status.nodes.ready === selected &&
            conditionOf(status, 'Ready')?.status === 'True'
            ? status
            : undefined;
        },
        [name],
      );
    }

    // ---- processes -------------------------------------------------------------------------

    function startAgent(key: NodeKey): AgentProcess {
      const node = nodes[key];
      node.agent = new AgentProcess(node.name, [
        '--kubeconfig',
        agentKubeconfig,
        '--node-name',
        node.name,
        '--runtime-endpoint',
        node.probe.endpoint,
        '--insecure-registry',
        plain.host,
        '--insecure-registry',
        proxy.host,
        '--insecure-registry',
        shared.registries.plain!.host,
        '--heartbeat-interval',
        String(HEARTBEAT_S),
        '--log-level',
        'info',
      ]);
      return node.agent;
    }

    function startController(identity: string): ControllerProcess {
      const controller = new ControllerProcess(identity, [
        '--kubeconfig',
        controllerKubeconfig,
        '--identity',
        identity,
        '--lease-namespace',
        LEASE.namespace,
        '--lease-duration',
        String(LEASE_DURATION_S),
        '--renew-deadline',
        String(RENEW_DEADLINE_S),
        '--retry-period',
        String(RETRY_PERIOD_S),
        '--admission-timeout',
        String(ADMISSION_TIMEOUT_S),
        '--metrics-address',
        '127.0.0.1:0',
        '--log-level',
        'debug',
      ]);
      controllers.push(controller);
      return controller;
    }

    function running(): PrepullProcess[] {
      return [...controllers, ...KEYS.flatMap((k) => nodes[k].agent ?? [])].filter(
        (p) => p.running,
      );
    }

    async function readyz(replica: PrepullProcess): Promise<number> {
      const serving = await replica.waitForLog(
        (l) => l.msg === 'serving /metrics, /healthz, /readyz',
        'the metrics address',
      );
      return (await httpGet(`http://${String(serving.address)}/readyz`)).status;
    }

    /** One sample of `metric` (with these labels, as written) from the replica's /metrics. */
    async function metric(replica: PrepullProcess, sample: string): Promise<number | undefined> {
      const serving = await replica.waitForLog(
        (l) => l.msg === 'serving /metrics, /healthz, /readyz',
        'the metrics address',
      );
      const { body } = await httpGet(`http://${String(serving.address)}/metrics`);
      const line = body.split('\n').find((l) => l.startsWith(`${sample} `));
      return line === undefined ? undefined : Number(line.slice(sample.length + 1));
    }

    async function kubectlOk(...args: string[]): Promise<string> {
      const run = await kubectlRun(...args);
      expect({ args, code: run.code, stderr: run.stderr }).toEqual({ args, code: 0, stderr: '' });
      return run.stdout;
    }

    function kubectlRun(...args: string[]): Promise<KubectlRun> {
      if (kubectlProblem !== undefined) throw new Error(kubectlProblem);
      return kubectl(
        { kubeconfig: adminKubeconfig, home: join(server.dir, 'kubectl'), timeoutMs: 120_000 },
        ...args,
      );
    }

    async function push(name: string, image: BuiltImage, slow: boolean): Promise<void> {
      const repo = `${prefix}/${name}`;
      const { digest } = await pushImage(plain, repo, 'v1', image);
      images[name] = { ref: `${slow ? proxy.host : plain.host}/${repo}:v1`, digest };
    }

    function slowImage(name: string, bytes = SLOW_BYTES): BuiltImage {
      return runnableImage({
        marker: `${prefix} ${name}`,
        extraLayers: [fillerLayer({ bytes, seed: `${prefix}-${name}` })],
      });
    }

    beforeAll(async () => {
      assertBuildFresh();
      // The real kubectl is part of what this test proves: missing, the steps that run it fail.
      kubectlProblem = kubectlMissing();
      shared = sharedHarness();
      harness = await startHarness({ registries: ['plain'], containerd: true, docker: false });
      cleanups.push(() => harness.stop());
      plain = harness.info.registries.plain!;
      proxy = await ThrottleProxy.start({ target: plain.host, bytesPerSecond: SLOW_RATE });
      cleanups.push(() => proxy.stop());
      nodes.a = {
        name: `${prefix}-a`,
        kind: 'containerd',
        probe: runtimeProbe('containerd', harness.info),
      };
      nodes.b = {
        name: `${prefix}-b`,
        kind: 'containerd',
        probe: runtimeProbe('containerd', shared),
      };
      nodes.c = { name: `${prefix}-c`, kind: 'docker', probe: runtimeProbe('docker', shared) };

      lateImage = runnableImage({ marker: `${prefix} late` });
      await Promise.all([
        push('base', runnableImage({ marker: `${prefix} base` }), false),
        push('tools', runnableImage({ marker: `${prefix} tools` }), false),
        ...['keep', 'drop', 'gone', 'used'].map((n) =>
          push(n, runnableImage({ marker: `${prefix} ${n}` }), false),
        ),
        ...['pace', 'kill', 'ready', 'taint'].map((n) => push(n, slowImage(n), true)),
        push('failover', slowImage('failover', FAILOVER_BYTES), true),
      ]);
      images.late = { ref: `${plain.host}/${prefix}/late:v1`, digest: lateImage.digest };

      server = await KubeApiServer.start();
      cleanups.push(() => server.stop());
      server.applyManifests(join(REPO, 'deploy', 'namespace.yaml'));
      server.applyManifests(join(REPO, 'deploy', 'crds'));
      server.applyManifests(join(REPO, 'deploy', 'rbac.yaml'));
      server.applyManifests(join(REPO, 'deploy', 'controller-rbac.yaml'));
      ({ kubeconfig: agentKubeconfig } = server.serviceAccount('prepull-system', 'prepull-agent'));
      ({ kubeconfig: controllerKubeconfig } = server.serviceAccount(
        'prepull-system',
        'prepull-controller',
      ));
      adminKubeconfig = server.adminKubeconfig();
      server.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
      for (const typeKey of [
        'prepull.dev/prepulls',
        'prepull.dev/nodeimagecaches',
        '/nodes',
        'coordination.k8s.io/leases',
      ]) {
        unwatch.push(
          server.store.watch({
            typeKey,
            deliver: (change) => {
              versions.push({
                rv: change.rv,
                at: Date.now(),
                typeKey,
                object: structuredClone(change.object),
              });
            },
          }),
        );
      }
    });

    afterAll(async () => {
      for (const stop of unwatch) stop();
      // A failed step must not leave processes running.
      await Promise.all(
        running().map(async (p) => {
          p.kill('SIGKILL');
          await p.exited(10_000).catch(() => undefined);
        }),
      );
      for (const node of Object.values(nodes)) node.probe.close();
      clearLayerCache();
      const failures: unknown[] = [];
      for (const cleanup of cleanups.reverse())
        await cleanup().catch((e: unknown) => failures.push(e));
      if (failures.length > 0) throw failures[0];
    });

    step(
      'setup: two controller replicas elect one leader through the Lease, both ready; three agents report',
      async () => {
        server.apply(
          ...KEYS.map((key) => ({
            apiVersion: 'v1',
            kind: 'Node',
            metadata: { name: nodeName(key), labels: { 'kubernetes.io/hostname': nodeName(key) } },
          })),
        );
        const first = startController(`${prefix}-ctl-1`);
        const second = startController(`${prefix}-ctl-2`);
        for (const key of KEYS) startAgent(key);
        for (const key of KEYS) {
          await nodes[key].agent!.waitForLog((l) => l.msg === 'agent started', 'agent started');
          await until(`${nodeName(key)} status`, () => cacheOf(key)?.status, []);
        }
        const leader = await until(
          'a leader',
          () => controllers.find((c) => c.name === holder()),
          [],
          30_000,
        );
        await leader.waitForLog((l) => l.msg === 'started leading', 'started leading');
        // Both ready (caches synced), leading or not: the standby is warm.
        for (const controller of [first, second]) {
          await until(
            `${controller.name} /readyz`,
            () => controller.logs.some((l) => l.msg === 'controller informers synced'),
            [],
            30_000,
          );
          expect({ replica: controller.name, readyz: await readyz(controller) }).toEqual({
            replica: controller.name,
            readyz: 200,
          });
        }
        const standby = controllers.find((c) => c !== leader)!;
        expect(standby.logs.some((l) => l.msg === 'started leading')).toBe(false);
        // kubectl sees who leads, as docs/controller.md says.
        const { rows } = parseTable(
          await kubectlOk('get', 'lease', LEASE.name, '-n', LEASE.namespace),
        );
        expect(rows).toEqual([{ NAME: LEASE.name, HOLDER: leader.name, AGE: expect.any(String) }]);
      },
    );

    step(
      'status: kubectl get pp shows the nodes, kubectl wait returns on Ready, digests match the registry; a missing image fails on every node, then recovers',
      async () => {
        const base = images.base!;
        const tools = images.tools!;
        const late = images.late!;
        server.apply(prePull('status', [base.ref, tools.ref]));
        // Waits through the watch while the controller works.
        const waited = kubectlRun(
          'wait',
          '--for=condition=Ready',
          'prepull/status',
          '-n',
          NS,
          '--timeout=90s',
        );
        let status = await untilReady('status');
        expect(await waited).toEqual({
          code: 0,
          stdout: 'prepull.prepull.dev/status condition met\n',
          stderr: '',
        });
        const table = parseTable(await kubectlOk('get', 'pp', '-n', NS));
        expect(table.headers).toEqual(['NAME', 'NODES', 'READY', 'FAILED', 'MESSAGE', 'AGE']);
        expect(table.rows).toEqual([
          {
            NAME: 'status',
            NODES: '3',
            READY: '3',
            FAILED: '0',
            MESSAGE: '3/3 nodes ready',
            AGE: expect.stringMatching(/^\d+s$/),
          },
        ]);
        expect(status).toMatchObject({
          observedGeneration: 1,
          nodes: { selected: 3, ready: 3, pulling: 0, failed: 0 },
          images: [
            {
              image: base.ref,
              present: 3,
              failed: 0,
              digests: [{ digest: base.digest, nodes: 3 }],
            },
            {
              image: tools.ref,
              present: 3,
              failed: 0,
              digests: [{ digest: tools.digest, nodes: 3 }],
            },
          ],
        });
        expect(status.rollout).toBeUndefined();
        for (const c of status.conditions) expect(c.observedGeneration).toBe(1);
        expect(
          Object.fromEntries(status.conditions.map((c) => [c.type, `${c.status} ${c.reason}`])),
        ).toEqual({
          Ready: 'True AllNodesReady',
          Progressing: 'False Complete',
          Failed: 'False NoFailures',
        });
        const readySince = conditionOf(status, 'Ready')!.lastTransitionTime;

        // An image the registry does not have: every node gives up on it at once (not found is
        // not retried) and the PrePull shows it failed everywhere.
        server.apply(prePull('status', [base.ref, tools.ref, late.ref]));
        expect(generationOf('status')).toBe(2);
        status = await until(
          'status failed on 3 nodes',
          () => {
            const s = statusOf('status');
            return s?.observedGeneration === 2 && s.nodes.failed === 3 ? s : undefined;
          },
          ['status'],
        );
        const failedRow = parseTable(await kubectlOk('get', 'pp', 'status', '-n', NS)).rows[0];
        expect(failedRow).toMatchObject({ NAME: 'status', NODES: '3', READY: '0', FAILED: '3' });
        const rollup = status.images.find((i) => i.image === late.ref);
        expect(rollup).toMatchObject({ present: 0, failed: 3, digests: [] });
        expect(rollup?.failedNodes?.map((n) => n.node)).toEqual(KEYS.map(nodeName));
        // The reason and code each node's agent reported for it, as the status names them.
        for (const failed of rollup?.failedNodes ?? []) {
          const entry = entryOf(keyOf(failed.node)!, late.ref);
          expect(entry).toMatchObject({ state: 'Failed', code: 'ERR_IMAGE_NOT_FOUND' });
          expect(failed).toMatchObject({
            reason: entry?.reason,
            code: 'ERR_IMAGE_NOT_FOUND',
            message: clipped(entry?.message ?? ''),
          });
        }
        expect(failedRow?.MESSAGE).toContain(`3 failed (ERR_IMAGE_NOT_FOUND on ${nodeName('a')}`);
        expect(conditionOf(status, 'Ready')).toMatchObject({
          status: 'False',
          observedGeneration: 2,
        });
        expect(conditionOf(status, 'Failed')).toMatchObject({
          status: 'True',
          reason: 'NodesFailed',
        });
        expect(conditionOf(status, 'Ready')!.lastTransitionTime >= readySince).toBe(true);
        const stillWaiting = await kubectlRun(
          'wait',
          '--for=condition=Ready',
          'prepull/status',
          '-n',
          NS,
          '--timeout=1s',
        );
        expect(stillWaiting.code).toBe(1);

        // Pushed now; a spec change (a retry budget) gives the failed image fresh attempts.
        await pushImage(plain, `${prefix}/late`, 'v1', lateImage);
        server.apply(prePull('status', [base.ref, tools.ref, late.ref], { backoffLimit: 7 }));
        expect(generationOf('status')).toBe(3);
        status = await untilReady('status');
        expect(status.observedGeneration).toBe(3);
        expect(status.nodes).toEqual({ selected: 3, ready: 3, pulling: 0, failed: 0 });
        expect(status.images.find((i) => i.image === late.ref)).toEqual({
          image: late.ref,
          present: 3,
          failed: 0,
          digests: [{ digest: late.digest, nodes: 3 }],
        });
        expect(conditionOf(status, 'Failed')).toMatchObject({ status: 'False' });
        expect(
          (
            await kubectlRun(
              'wait',
              '--for=condition=Ready',
              'prepull/status',
              '-n',
              NS,
              '--timeout=5s',
            )
          ).code,
        ).toBe(0);
        // Ready went True → False → True with the spec, once each way (the first status, written
        // before the nodes reported, says False).
        const readySequence = folded(
          statusVersions('status').map((v) => conditionOf(v.status, 'Ready')!.status),
        );
        expect(readySequence.slice(-3)).toEqual(['True', 'False', 'True']);
        expect(readySequence.length).toBeLessThanOrEqual(4);
        for (const c of status.conditions) expect(c.observedGeneration).toBe(3);
        expectStableTransitionTimes('status');
      },
    );

    step(
      'pacing: maxConcurrentNodes 1 pulls on one node at a time; a killed agent loses its slot after the admission timeout',
      async () => {
        const pace = images.pace!;
        const fromRv = server.store.resourceVersion;
        const proxied = proxy.bytesSent;
        server.apply(prePull('paced', [pace.ref], { rollout: { maxConcurrentNodes: 1 } }));
        const status = await untilReady('paced');
        // Each node pulled the whole image through the slow proxy.
        expect(proxy.bytesSent - proxied).toBeGreaterThanOrEqual(3 * SLOW_BYTES);
        expect(status.rollout).toEqual({ maxConcurrentNodes: 1, paused: false, admitted: [] });
        // The pulls, as the NodeImageCaches showed them and as the agents logged them: one
        // after the other, each of them seen Pulling for a while.
        const reported = pullIntervals(pace.ref, fromRv);
        expect([...reported.keys()].sort()).toEqual(['a', 'b', 'c']);
        expectSerial(reported);
        const logged = loggedPulls(pace.ref);
        expect([...logged.keys()].sort()).toEqual(['a', 'b', 'c']);
        expectSerial(logged);
        for (const [key, pull] of logged) {
          // Slowed by the proxy: a pull takes about SLOW_BYTES / SLOW_RATE (4 s).
          expect({ node: key, long: pull.to - pull.from >= 2_000 }).toEqual({
            node: key,
            long: true,
          });
        }
        // Never more than one node admitted; admitted in name order, each once.
        expect(admissionsOf('paced', fromRv, 1).order).toEqual(['a', 'b', 'c']);
        // Nodes waiting for a slot said so in their NodeImageCache.
        const waited = cacheVersions(pace.ref, fromRv).filter(
          (v) => v.node === 'c' && v.entry?.reason === 'AwaitingAdmission',
        );
        expect(waited.length).toBeGreaterThan(0);

        // The second paced rollout: node a is admitted first; its agent dies as its pull starts.
        const kill = images.kill!;
        const killRv = server.store.resourceVersion;
        server.apply(prePull('paced-kill', [kill.ref], { rollout: { maxConcurrentNodes: 1 } }));
        const agentA = nodes.a.agent!;
        await agentA.waitForLog(
          (l) => l.msg === 'image state' && l.image === kill.ref && l.state === 'Pulling',
          'the pull starting on node a',
        );
        agentA.kill('SIGKILL');
        const killedAt = Date.now();
        await agentA.exited(10_000);
        const admittedA = statusOf('paced-kill')?.rollout?.admitted[0];
        expect(admittedA?.node).toBe(nodeName('a'));
        const moved = await until(
          'the slot moving on from the killed node',
          () => {
            const next = statusOf('paced-kill')?.rollout?.admitted[0];
            return next !== undefined && next.node !== nodeName('a') ? next : undefined;
          },
          ['paced-kill'],
          ADMISSION_TIMEOUT_S * 1000 + 30_000,
        );
        const movedAt = Date.now();
        // Not before the timeout from the admission, and within it (+ slack) after the death.
        expect(movedAt - Date.parse(admittedA!.since)).toBeGreaterThanOrEqual(
          ADMISSION_TIMEOUT_S * 1000 - 1000,
        );
        expect(movedAt - killedAt).toBeLessThan(ADMISSION_TIMEOUT_S * 1000 + 5_000);
        expect(moved.node).toBe(nodeName('b'));
        expect(
          controllers.some((c) =>
            c.logs.some(
              (l) =>
                l.msg === 'admitted node stalled; its slot moves on' && l.node === nodeName('a'),
            ),
          ),
        ).toBe(true);
        // The two live nodes finish; the dead one is not ready and the status says so.
        const partial = await until(
          'paced-kill ready on the two live nodes',
          () => {
            const s = statusOf('paced-kill');
            return s?.nodes.ready === 2 ? s : undefined;
          },
          ['paced-kill'],
        );
        expect(entryOf('b', kill.ref)?.state).toBe('Present');
        expect(entryOf('c', kill.ref)?.state).toBe('Present');
        expect(partial.message).toMatch(/^2\/3 nodes ready/);
        expect(conditionOf(partial, 'Ready')?.status).toBe('False');
        // The agent comes back (its DaemonSet would restart it) and the rollout completes.
        startAgent('a');
        await nodes.a.agent!.waitForLog((l) => l.msg === 'agent started', 'agent started');
        await untilReady('paced-kill');
        expect(admissionsOf('paced-kill', killRv, 1).order.slice(0, 2)).toEqual(['a', 'b']);
        // Only the stalled node may overlap another: b and c pulled one after the other.
        const live = loggedPulls(kill.ref);
        live.delete('a');
        expectSerial(live);
        for (const name of ['paced', 'paced-kill']) {
          expect(
            folded(statusVersions(name).map((v) => conditionOf(v.status, 'Ready')!.status)),
          ).toEqual(['False', 'True']);
          expectStableTransitionTimes(name);
        }
      },
    );

    step(
      'readiness: the nodeLabel is set only on ready nodes, leaves a node that loses an image until it is repaired; the start-up taint goes once the images are Present, other taints stay',
      async () => {
        const ready = images.ready!;
        const fromRv = server.store.resourceVersion;
        server.apply(prePull('ready', [ready.ref], { nodeLabel: 'e2e-ready' }));
        await untilReady('ready');
        await until(
          'the readiness label on every node',
          () => KEYS.every((k) => labelsOf(nodeOf(k))[READY_LABEL] === 'true'),
          ['ready'],
        );
        /** Each time the label appears on a node: was its image Present in its cache then? */
        const labelAdded = (since: number): { node: NodeKey; rv: number; present: boolean }[] => {
          const cache = new Map<NodeKey, string | undefined>();
          const before = new Map<NodeKey, boolean>();
          const added: { node: NodeKey; rv: number; present: boolean }[] = [];
          for (const v of versions) {
            const key = keyOf(metadataOf(v.object).name ?? '');
            if (key === undefined) continue;
            if (v.typeKey === 'prepull.dev/nodeimagecaches') {
              const entry = (v.object as unknown as NodeImageCache).status?.images.find(
                (i) => i.image === ready.ref,
              );
              cache.set(key, entry?.state);
            } else if (v.typeKey === '/nodes') {
              const has = labelsOf(v.object)[READY_LABEL] === 'true';
              if (has && before.get(key) !== true && v.rv > since)
                added.push({ node: key, rv: v.rv, present: cache.get(key) === 'Present' });
              before.set(key, has);
            }
          }
          return added;
        };
        expect(labelAdded(fromRv).sort((x, y) => (x.node < y.node ? -1 : 1))).toEqual(
          KEYS.map((node) => ({ node, rv: expect.any(Number), present: true })),
        );

        // `docker rmi` behind the agent's back: the label leaves node c, the agent pulls the
        // image again (a repair needs no one's leave) and the label comes back.
        const removeRv = server.store.resourceVersion;
        await nodes.c.probe.remove(ready.ref);
        await until(
          'the label back on node c after the repair',
          () => {
            const labels = versions
              .filter((v) => v.typeKey === '/nodes' && v.rv > removeRv)
              .filter((v) => metadataOf(v.object).name === nodeName('c'))
              .map((v) => labelsOf(v.object)[READY_LABEL] ?? 'none');
            const seen = folded(labels);
            return seen.includes('none') && seen[seen.length - 1] === 'true';
          },
          ['ready'],
        );
        const repaired = cacheVersions(ready.ref, removeRv).filter((v) => v.node === 'c');
        expect(folded(repaired.map((v) => v.entry?.state ?? 'absent'))).toContain('Pulling');
        expect(entryOf('c', ready.ref)?.state).toBe('Present');
        expect(labelAdded(removeRv)).toEqual([
          { node: 'c', rv: expect.any(Number), present: true },
        ]);
        // The other nodes kept theirs throughout.
        for (const key of ['a', 'b'] as const) {
          const labels = versions
            .filter((v) => v.typeKey === '/nodes' && v.rv > removeRv)
            .filter((v) => metadataOf(v.object).name === nodeName(key))
            .map((v) => labelsOf(v.object)[READY_LABEL]);
          expect({ node: key, labels: [...new Set(labels)] }).toEqual({
            node: key,
            labels: labels.length === 0 ? [] : ['true'],
          });
        }

        // The start-up taint, on node c as it joins a pool a PrePull selects: the PrePull is
        // known to the controller first (it selects no node yet), then label and taints come in
        // one write, as a node registering with them would.
        const taintImage = images.taint!;
        server.apply(prePull('taint', [taintImage.ref], { nodeSelector: { pool: 'e2e' } }));
        await until(
          'taint selecting no node',
          () => conditionOf(statusOf('taint'), 'Ready')?.reason === 'NoMatchingNodes',
          ['taint'],
        );
        const taintRv = server.store.resourceVersion;
        const other: Taint = { key: 'e2e.example/dedicated', value: 'ci', effect: 'NoExecute' };
        const node = structuredClone(nodeOf('c'));
        (node.metadata as { labels: Record<string, string> }).labels.pool = 'e2e';
        node.spec = {
          taints: [{ key: PENDING_TAINT, effect: 'NoSchedule' }, { ...other }] as JsonObject[],
        };
        server.apply(node);
        const untainted = await until(
          'the start-up taint removed',
          () => {
            const v = versions.find(
              (x) =>
                x.typeKey === '/nodes' &&
                x.rv > taintRv &&
                metadataOf(x.object).name === nodeName('c') &&
                !taintsOf(x.object).some((t) => t.key === PENDING_TAINT),
            );
            return v;
          },
          ['taint'],
        );
        // Removed only once node c held the image, and by that change alone.
        const atRemoval = cacheVersions(taintImage.ref, taintRv)
          .filter((v) => v.node === 'c' && v.rv < untainted.rv)
          .pop();
        expect(atRemoval?.entry?.state).toBe('Present');
        expect(
          cacheVersions(taintImage.ref, taintRv).some(
            (v) => v.node === 'c' && v.entry?.state === 'Pulling',
          ),
        ).toBe(true);
        expect(taintsOf(untainted.object)).toEqual([other]);
        expect(labelsOf(untainted.object)).toMatchObject({ pool: 'e2e', [READY_LABEL]: 'true' });
        expect(taintsOf(nodeOf('c'))).toEqual([other]);
        await untilReady('taint', 1);
      },
    );

    step(
      'failover: SIGKILL of the leader mid-rollout — the standby leads within the lease duration, keeps the admissions, completes the rollout, and no status flaps',
      async () => {
        const failover = images.failover!;
        const fromRv = server.store.resourceVersion;
        server.apply(prePull('failover', [failover.ref], { rollout: { maxConcurrentNodes: 1 } }));
        const admission = await until(
          'the first admission',
          () => statusOf('failover')?.rollout?.admitted[0],
          ['failover'],
        );
        const pulling = keyOf(admission.node)!;
        await nodes[pulling].agent!.waitForLog(
          (l) => l.msg === 'image state' && l.image === failover.ref && l.state === 'Pulling',
          'the pull starting',
        );
        const leader = controllers.find((c) => c.running && c.name === holder())!;
        const standby = controllers.find((c) => c.running && c !== leader)!;
        // Only the leader writes: the standby has written no status and patched no node.
        expect(await metric(standby, 'prepull_controller_leader')).toBe(0);
        expect(
          (await metric(standby, 'prepull_controller_status_writes_total{result="ok"}')) ?? 0,
        ).toBe(0);
        leader.kill('SIGKILL');
        const killedAt = Date.now();
        await leader.exited(10_000);
        await until('the standby leading', () => holder() === standby.name, ['failover'], 30_000);
        const tookOver = Date.now() - killedAt;
        const takeoverRv = server.store.resourceVersion;
        // The new leader takes over a rollout in the middle of a node's pull.
        expect({ node: pulling, state: entryOf(pulling, failover.ref)?.state }).not.toEqual({
          node: pulling,
          state: 'Present',
        });
        // client-go's bound: the lease duration to it plus two retry periods after the last
        // renewal, which came at most a retry period before the kill; plus scheduling slack.
        expect(tookOver).toBeLessThan((LEASE_DURATION_S + 3 * RETRY_PERIOD_S) * 1000 + 2_000);
        await standby.waitForLog((l) => l.msg === 'started leading', 'started leading');
        const status = await untilReady('failover');
        expect(status.rollout?.admitted).toEqual([]);
        // The rest of the rollout was the new leader's work.
        expect(await metric(standby, 'prepull_controller_leader')).toBe(1);
        expect(
          await metric(standby, 'prepull_controller_status_writes_total{result="ok"}'),
        ).toBeGreaterThan(0);
        // Admissions survived the failover: one admission per node, never re-timed; never two.
        const { order, sinces } = admissionsOf('failover', fromRv, 1);
        expect(order[0]).toBe(pulling);
        expect([...order].sort()).toEqual(['a', 'b', 'c']);
        for (const [node, set] of sinces)
          expect({ node, sinces: set.size }).toEqual({ node, sinces: 1 });
        expect(sinces.get(admission.node)).toEqual(new Set([admission.since]));
        // The node pulling at the hand-over kept its slot under the new leader until it was
        // ready: neither stalled nor re-admitted.
        const released = statusVersions('failover', takeoverRv).find(
          (v) => !(v.status.rollout?.admitted ?? []).some((a) => a.node === admission.node),
        );
        const cacheThen = cacheVersions(failover.ref, fromRv)
          .filter((v) => v.node === pulling && v.rv < (released?.rv ?? 0))
          .pop();
        expect({ node: pulling, state: cacheThen?.entry?.state }).toEqual({
          node: pulling,
          state: 'Present',
        });
        expect(
          standby.logs.filter((l) => l.msg === 'admitted node stalled; its slot moves on'),
        ).toEqual([]);
        // No flaps across the hand-over: each condition changes once, if at all, and keeps its
        // lastTransitionTime while it holds; ready nodes never go down.
        const list = statusVersions('failover', fromRv);
        const sequence = (type: string): string[] =>
          folded(list.map((v) => conditionOf(v.status, type)?.status ?? 'absent'));
        expect(sequence('Ready')).toEqual(['False', 'True']);
        expect(sequence('Progressing')).toEqual(['True', 'False']);
        expect(sequence('Failed')).toEqual(['False']);
        const readyCounts = list.map((v) => v.status.nodes.ready);
        expect(readyCounts).toEqual([...readyCounts].sort((x, y) => x - y));
        expectStableTransitionTimes('failover');
        // Both leaders wrote (the old one before the kill, the new one after).
        expect(list.length).toBeGreaterThan(2);
        // The same across the whole run: no PrePull's condition changed time while it held.
        for (const name of ['status', 'paced', 'paced-kill', 'ready', 'taint'])
          expectStableTransitionTimes(name);

        // The killed replica comes back (its Deployment would restart it) and stands by, ready.
        const back = startController(leader.name);
        await until(
          'the restarted replica synced',
          () => back.logs.some((l) => l.msg === 'controller informers synced'),
          [],
          30_000,
        );
        expect(await readyz(back)).toBe(200);
        expect(await metric(back, 'prepull_controller_leader')).toBe(0);
        expect(holder()).toBe(standby.name);
      },
    );

    step(
      "release: an image dropped from a PrePull is unpinned on containerd within 5 s; with cleanup Remove, a deleted PrePull's images leave every runtime — but not where a container uses one",
      async () => {
        const WITHIN_MS = 5000;
        const { keep, drop, gone, used } = images;
        const containerd: NodeKey[] = ['a', 'b'];
        /** Polls `check` every 50 ms for up to 5 s; the time it took. */
        const within = async (what: string, check: () => Promise<boolean>): Promise<number> => {
          const started = Date.now();
          await pollUntil(what, async () => ((await check()) ? true : undefined), {
            timeoutMs: WITHIN_MS,
            intervalMs: 50,
          });
          return Date.now() - started;
        };
        const releasedOn = (key: NodeKey, ref: string): string | undefined =>
          cacheOf(key)?.status?.released?.find((r) => r.image === ref)?.action;

        // Unpin: the default cleanup.
        server.apply(prePull('rel-unpin', [keep!.ref, drop!.ref]));
        await untilReady('rel-unpin');
        for (const key of containerd)
          expect({ node: key, pinned: await nodes[key].probe.pinnedLabel(drop!.ref) }).toEqual({
            node: key,
            pinned: true,
          });
        server.apply(prePull('rel-unpin', [keep!.ref]));
        for (const key of containerd) {
          const probe = nodes[key].probe;
          const took = await within(
            `${drop!.ref} unpinned on ${key}`,
            async () => (await probe.pinnedLabel(drop!.ref)) === false,
          );
          expect(took).toBeLessThan(WITHIN_MS);
          // Unpinned, not removed; the image still wanted keeps its pin.
          expect(await probe.status(drop!.ref)).toBeDefined();
          expect(await probe.pinnedLabel(keep!.ref)).toBe(true);
        }
        await until(
          'the releases listed',
          () => containerd.every((k) => releasedOn(k, drop!.ref) === 'Unpinned'),
          ['rel-unpin'],
        );
        expect(await nodes.c.probe.status(drop!.ref)).toBeDefined();

        // Remove: the PrePull is deleted; a container made from `used` on a and on c keeps it there.
        server.apply(prePull('rel-remove', [gone!.ref, used!.ref], { cleanup: 'Remove' }));
        await untilReady('rel-remove');
        const cri = new KubeletCri(harness.info.containerd!.socket);
        const pod = await cri.startPod({
          image: used!.ref,
          name: `${prefix}-user`,
          workDir: harness.info.workDir,
          cgroupParent: harness.info.containerd!.cgroupParent,
          start: false,
        });
        const docker = new Docker({ socketPath: shared.docker!.socket });
        const container = await docker.createContainer({ Image: used!.ref, Cmd: ['/bin/true'] });
        try {
          const admin = KubeClient.load(adminKubeconfig);
          await admin.request(
            'DELETE',
            `/apis/prepull.dev/v1alpha1/namespaces/${NS}/prepulls/rel-remove`,
          );
          for (const key of KEYS) {
            const probe = nodes[key].probe;
            await within(
              `${gone!.ref} removed from ${key}`,
              async () => (await probe.status(gone!.ref)) === undefined,
            );
          }
          await within(
            `${used!.ref} removed from b`,
            async () => (await nodes.b.probe.status(used!.ref)) === undefined,
          );
          // Kept where a container uses it: unpinned on containerd (prepull's pin comes off),
          // left as it was on Docker Engine (no pins there).
          const reasonOn = (key: NodeKey): string | undefined =>
            cacheOf(key)?.status?.released?.find((r) => r.image === used!.ref)?.reason;
          await until(
            'the kept images listed',
            () =>
              releasedOn('a', used!.ref) === 'Unpinned' && releasedOn('c', used!.ref) === 'Kept',
            [],
          );
          expect(reasonOn('a')).toMatch(/container uses it/);
          expect(reasonOn('c')).toMatch(/container uses it/);
          expect(await nodes.a.probe.status(used!.ref)).toBeDefined();
          expect(await nodes.c.probe.status(used!.ref)).toBeDefined();
          expect(releasedOn('b', used!.ref)).toBe('Removed');
          expect(KEYS.map((k) => releasedOn(k, gone!.ref))).toEqual([
            'Removed',
            'Removed',
            'Removed',
          ]);
        } finally {
          await pod.remove().catch(() => undefined);
          cri.close();
          await container.remove({ force: true }).catch(() => undefined);
        }
      },
    );

    step(
      'RBAC: every request of the controllers and agents was allowed by the shipped roles; only the controller writes Nodes',
      async () => {
        await Promise.resolve();
        const requests = server.accounting.all();
        for (const user of [AGENT_USER, CONTROLLER_USER]) {
          const refused = requests.filter(
            (r) => r.user === user && (r.code === 401 || r.code === 403),
          );
          expect({ user, refused }).toEqual({ user, refused: [] });
        }
        const did = (user: string, verb: string, resource: string): boolean =>
          requests.some(
            (r) => r.user === user && r.verb === verb && r.resource === resource && r.code < 400,
          );
        for (const [verb, resource] of [
          ['list', 'prepull.dev/prepulls'],
          ['watch', 'prepull.dev/prepulls'],
          ['patch', 'prepull.dev/prepulls/status'],
          ['watch', 'prepull.dev/nodeimagecaches'],
          ['watch', '/nodes'],
          ['patch', '/nodes'],
          ['get', 'coordination.k8s.io/leases'],
          ['update', 'coordination.k8s.io/leases'],
        ] as const) {
          expect({ verb, resource, done: did(CONTROLLER_USER, verb, resource) }).toEqual({
            verb,
            resource,
            done: true,
          });
        }
        const writes = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
        // The agents never write a Node (label and taint are the controller's); the controller
        // never writes a PrePull's spec, never updates a Node, and — no PrePull here naming a
        // pull secret — touches no Secret but to list its (no) copies in prepull-system.
        expect(
          requests.filter(
            (r) => r.user === AGENT_USER && r.resource.startsWith('/nodes') && writes.has(r.verb),
          ),
        ).toEqual([]);
        expect(
          requests.filter(
            (r) =>
              r.user === CONTROLLER_USER &&
              ((r.resource === 'prepull.dev/prepulls' && writes.has(r.verb)) ||
                (r.resource === '/nodes' && r.verb === 'update') ||
                (r.resource === '/secrets' &&
                  (r.verb !== 'list' || r.namespace !== 'prepull-system'))),
          ),
        ).toEqual([]);
        // The agents read the admissions from the PrePulls they watch: no new access.
        expect(
          requests.filter(
            (r) => r.user === AGENT_USER && r.resource.startsWith('coordination.k8s.io'),
          ),
        ).toEqual([]);
      },
    );

    step(
      'shutdown: on SIGTERM every controller and agent exits 0 within seconds, the Lease released',
      async () => {
        const all = running();
        expect(all.map((p) => p.command).sort()).toEqual([
          'agent',
          'agent',
          'agent',
          'controller',
          'controller',
        ]);
        for (const p of all) p.kill('SIGTERM');
        const exits = await Promise.all(all.map((p) => p.exited(30_000)));
        for (const [i, exit] of exits.entries()) {
          const p = all[i]!;
          expect({
            process: `${p.command} ${p.name}`,
            code: exit.code,
            signal: exit.signal,
          }).toEqual({
            process: `${p.command} ${p.name}`,
            code: 0,
            signal: null,
          });
          expect(exit.afterKillMs).toBeLessThan(10_000);
          expect(p.otherStderr).toEqual([]);
        }
        for (const c of all.filter((p) => p.command === 'controller'))
          expect(c.logs.some((l) => l.msg === 'exiting')).toBe(true);
        expect(holder() ?? '').toBe('');
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
      },
    );
  },
);
