// The server checked by a client nobody here wrote: the real `kubectl` binary, run against it with
// prepull's CRDs applied, doing what operators will do with `prepull controller` (get, get -o
// wide, get -w, wait, describe, label, taint, leases). When no kubectl is on PATH (or in
// $KUBECTL) the suite is skipped with that reason in its title, as test/harness/jest.ts does
// for integration prerequisites. `kubectl create` runs with --validate=false: kubectl's
// validation downloads the OpenAPI document, which this server does not serve.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  KUBECTL,
  type KubectlRun,
  kubectl as runKubectl,
  kubectlMissing,
  parseTable as table,
} from '../harness/kubectl.ts';
import { eventually } from './fixtures.ts';
import type { JsonObject } from './json.ts';
import { KubeApiServer } from './server.ts';

const NS = 'prepull-ops';

function describeWithKubectl(name: string, body: () => void): void {
  const skip = kubectlMissing();
  if (skip === undefined) {
    describe(name, body);
    return;
  }
  // Jest prints nothing of a wholly skipped file, so the reason goes to stderr as well.
  process.stderr.write(`kubectl.test.ts: skipped: ${skip}\n`);
  describe.skip(`${name} [skipped: ${skip}]`, body);
}

let server: KubeApiServer;
let dir: string;
let kubeconfig: string;

function kubectl(...args: string[]): Promise<KubectlRun> {
  return runKubectl({ kubeconfig, home: dir, timeoutMs: 20_000 }, ...args);
}

async function ok(...args: string[]): Promise<string> {
  const run = await kubectl(...args);
  expect({ args, code: run.code, stderr: run.stderr }).toEqual({ args, code: 0, stderr: '' });
  return run.stdout;
}

function manifest(doc: JsonObject): string {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

function prepull(name: string, spec: JsonObject = {}): JsonObject {
  return {
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { name, namespace: NS },
    spec: { images: [{ image: 'registry.example/app:1.0' }], ...spec },
  };
}

const condition = (status: string, reason: string): JsonObject => ({
  type: 'Ready',
  status,
  reason,
  message: reason,
  lastTransitionTime: '2026-01-01T00:00:00Z',
});

async function setStatus(name: string, status: JsonObject): Promise<void> {
  await ok(
    'patch',
    'prepull',
    name,
    '-n',
    NS,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status }),
  );
}

describeWithKubectl('kubectl against the test server', () => {
  jest.setTimeout(60_000);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kubectl-test-'));
    server = await KubeApiServer.start();
    server.applyManifests('deploy/crds');
    server.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    kubeconfig = server.adminKubeconfig(join(dir, 'admin.kubeconfig'));
  });
  afterAll(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('kubectl get pp: NAME NODES READY FAILED MESSAGE AGE from the status written through /status', async () => {
    await ok(
      'create',
      '--validate=false',
      '-f',
      manifest(prepull('web', { schedule: '0 3 * * *' })),
    );
    await setStatus('web', {
      nodes: { selected: 3, ready: 2, failed: 1 },
      message: '2 of 3 nodes ready',
      conditions: [condition('False', 'Pulling')],
    });
    await ok('create', '--validate=false', '-f', manifest(prepull('fresh')));
    const { headers, rows } = table(await ok('get', 'pp', '-n', NS));
    expect(headers).toEqual(['NAME', 'NODES', 'READY', 'FAILED', 'MESSAGE', 'AGE']);
    expect(rows).toEqual([
      { NAME: 'fresh', NODES: '', READY: '', FAILED: '', MESSAGE: '', AGE: expect.any(String) },
      {
        NAME: 'web',
        NODES: '3',
        READY: '2',
        FAILED: '1',
        MESSAGE: '2 of 3 nodes ready',
        AGE: expect.stringMatching(/^\d+s$/),
      },
    ]);
    const single = table(await ok('get', 'prepull', 'web', '-n', NS));
    expect(single.rows.map((r) => r.MESSAGE)).toEqual(['2 of 3 nodes ready']);
  });

  it('kubectl get pp -o wide adds POLICY VERIFY PIN SCHEDULE', async () => {
    const { headers, rows } = table(await ok('get', 'pp', '-n', NS, '-o', 'wide'));
    expect(headers).toEqual([
      'NAME',
      'NODES',
      'READY',
      'FAILED',
      'MESSAGE',
      'AGE',
      'POLICY',
      'VERIFY',
      'PIN',
      'SCHEDULE',
    ]);
    expect(rows.find((r) => r.NAME === 'web')).toMatchObject({
      POLICY: 'IfNotPresent',
      VERIFY: 'Registry',
      PIN: 'true',
      SCHEDULE: '0 3 * * *',
    });
  });

  it('kubectl wait --for=condition=Ready times out (exit 1) while Ready is False', async () => {
    const run = await kubectl(
      'wait',
      '--for=condition=Ready',
      'prepull/web',
      '-n',
      NS,
      '--timeout=2s',
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('timed out waiting for the condition on prepulls/web');
  });

  it('kubectl wait --for=condition=Ready returns once a status merge patch sets Ready True', async () => {
    const waiting = kubectl(
      'wait',
      '--for=condition=Ready',
      'prepull/web',
      '-n',
      NS,
      '--timeout=10s',
    );
    await eventually(() => server.watches.openCount > 0, 10_000);
    await setStatus('web', { conditions: [condition('True', 'AllPresent')] });
    const run = await waiting;
    expect(run).toEqual({ code: 0, stdout: 'prepull.prepull.dev/web condition met\n', stderr: '' });
  });

  it('kubectl get pp -w prints a row for each change', async () => {
    const child = spawn(
      KUBECTL,
      [
        '--kubeconfig',
        kubeconfig,
        '--cache-dir',
        join(dir, 'cache'),
        'get',
        'pp',
        'web',
        '-n',
        NS,
        '-w',
      ],
      { env: { ...process.env, HOME: dir } },
    );
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (out += chunk));
    try {
      await eventually(() => server.watches.openCount > 0 && out.includes('web'), 10_000);
      await setStatus('web', { message: 'watched change' });
      await eventually(() => out.includes('watched change'), 10_000);
    } finally {
      child.kill();
    }
    const lines = out.split('\n').filter((l) => l !== '');
    expect(lines[0]).toMatch(/^NAME\s+NODES\s+READY\s+FAILED\s+MESSAGE\s+AGE$/);
    expect(lines.filter((l) => l.startsWith('NAME'))).toHaveLength(1);
    expect(lines[lines.length - 1]).toMatch(/^web\s+3\s+2\s+1\s+watched change\s+\d+s$/);
  });

  it('kubectl describe prepull prints the object and its events', async () => {
    const uid = server.get('prepull.dev/v1alpha1', 'PrePull', 'web', NS)?.metadata;
    server.apply({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'web.ready', namespace: NS },
      involvedObject: {
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        name: 'web',
        namespace: NS,
        uid: (uid as JsonObject).uid!,
      },
      reason: 'Ready',
      message: 'every selected node holds every image',
      type: 'Normal',
      source: { component: 'prepull-controller' },
      firstTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      lastTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      count: 1,
    });
    const text = await ok('describe', 'prepull', 'web', '-n', NS);
    expect(text).toMatch(/^Name:\s+web$/m);
    expect(text).toMatch(/^Kind:\s+PrePull$/m);
    expect(text).toMatch(/Message:\s+watched change/);
    expect(text).toMatch(/Normal\s+Ready\s+\S+\s+prepull-controller\s+every selected node holds/);
    const events = table(await ok('get', 'events', '-n', NS));
    expect(events.headers).toEqual(['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE']);
    expect(events.rows[0]).toMatchObject({ TYPE: 'Normal', OBJECT: 'prepull/web' });
  });

  it('kubectl label node and kubectl taint node (merge patch, strategic merge of spec.taints)', async () => {
    await ok(
      'create',
      '--validate=false',
      '-f',
      manifest({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'worker-1', labels: { 'node-role.kubernetes.io/worker': '' } },
        spec: {
          taints: [
            { key: 'prepull.dev/images-pending', effect: 'NoSchedule' },
            { key: 'dedicated', value: 'gpu', effect: 'NoExecute' },
          ],
        },
        status: {
          conditions: [{ type: 'Ready', status: 'True' }],
          nodeInfo: { kubeletVersion: 'v1.32.4' },
        },
      }),
    );
    expect(await ok('label', 'node', 'worker-1', 'prepull.dev/x=true')).toBe(
      'node/worker-1 labeled\n',
    );
    expect(await ok('taint', 'node', 'worker-1', 'prepull.dev/images-pending:NoSchedule-')).toBe(
      'node/worker-1 untainted\n',
    );
    const node = server.get('v1', 'Node', 'worker-1')!;
    expect((node.metadata as JsonObject).labels).toEqual({
      'node-role.kubernetes.io/worker': '',
      'prepull.dev/x': 'true',
    });
    expect((node.spec as JsonObject).taints).toEqual([
      { key: 'dedicated', value: 'gpu', effect: 'NoExecute' },
    ]);
    // Removing it again is kubectl's own error, as against any cluster.
    const again = await kubectl(
      'taint',
      'node',
      'worker-1',
      'prepull.dev/images-pending:NoSchedule-',
    );
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('not found');
    await ok('taint', 'node', 'worker-1', 'prepull.dev/images-pending=true:NoSchedule');
    expect(await ok('label', 'node', 'worker-1', 'prepull.dev/x-')).toBe(
      'node/worker-1 unlabeled\n',
    );
    const { headers, rows } = table(await ok('get', 'nodes'));
    expect(headers).toEqual(['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION']);
    expect(rows[0]).toMatchObject({
      NAME: 'worker-1',
      STATUS: 'Ready',
      ROLES: 'worker',
      VERSION: 'v1.32.4',
    });
    const taints = server.get('v1', 'Node', 'worker-1')!.spec as JsonObject;
    expect(taints.taints).toEqual([
      { key: 'prepull.dev/images-pending', value: 'true', effect: 'NoSchedule' },
      { key: 'dedicated', value: 'gpu', effect: 'NoExecute' },
    ]);
  });

  it('kubectl get lease shows NAME HOLDER AGE', async () => {
    await ok(
      'create',
      '--validate=false',
      '-f',
      manifest({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'prepull-controller', namespace: NS },
        spec: { holderIdentity: 'prepull-controller-0', leaseDurationSeconds: 15 },
      }),
    );
    const { headers, rows } = table(await ok('get', 'lease', '-n', NS));
    expect(headers).toEqual(['NAME', 'HOLDER', 'AGE']);
    expect(rows).toEqual([
      { NAME: 'prepull-controller', HOLDER: 'prepull-controller-0', AGE: expect.any(String) },
    ]);
  });

  it('kubectl get prepull-all and get all: discovery categories', async () => {
    const out = await ok('get', 'prepull-all', '-n', NS);
    expect(out).toMatch(/^NAME\s+NODES\s+READY\s+FAILED\s+MESSAGE\s+AGE$/m);
    expect(out).toMatch(/^prepull\.prepull\.dev\/web\s+3\s+2\s+1\s+/m);
    await ok(
      'create',
      '--validate=false',
      '-f',
      manifest({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'app', namespace: NS },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'app' } },
          template: {
            metadata: { labels: { app: 'app' } },
            spec: { containers: [{ name: 'app', image: 'registry.example/app:1.0' }] },
          },
        },
      }),
    );
    const all = await ok('get', 'all', '-n', NS, '-o', 'wide');
    expect(all).toMatch(
      /^deployment\.apps\/app\s+0\/2\s+0\s+0\s+\S+\s+app\s+registry\.example\/app:1\.0\s+app=app$/m,
    );
  });

  it('imperative kubectl create <kind> sends protobuf, which this server refuses with 415', async () => {
    const run = await kubectl('create', 'configmap', 'c', '-n', NS, '--from-literal=a=b');
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml',
    );
  });

  it('kubectl get crd, ns: the default table convertor and the namespace printer', async () => {
    const crds = table(await ok('get', 'crd'));
    expect(crds.headers).toEqual(['NAME', 'CREATED AT']);
    expect(crds.rows.map((r) => r.NAME)).toEqual([
      'nodeimagecaches.prepull.dev',
      'prepulls.prepull.dev',
    ]);
    const ns = table(await ok('get', 'ns', NS));
    expect(ns.headers).toEqual(['NAME', 'STATUS', 'AGE']);
    expect(ns.rows[0]).toMatchObject({ NAME: NS, STATUS: 'Active' });
  });
});
