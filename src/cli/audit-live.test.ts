// `prepull audit --kubeconfig` against the project's Kubernetes API test server (deploy/'s CRDs,
// deploy/audit-rbac.yaml bound to the auditor's ServiceAccount): exact findings, the
// ErrImageNeverPull explanations, owned objects left to their owner, exit codes, and GET only.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeApiServer } from '../../test/kube-api-server/index.ts';
import type { JsonObject } from '../../test/kube-api-server/json.ts';
import { KubeClient } from '../kube/client.ts';
import { main } from './main.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const AUDITOR = 'system:serviceaccount:ci:auditor';
const REG = 'registry.test:5000';
const IMG = (name: string): string => `${REG}/team/${name}:1.0`;

let server: KubeApiServer;
let kubeconfig: string;

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

function container(name: string, image: string): JsonObject {
  return { name, image, imagePullPolicy: 'Never' };
}

function podSpec(containers: JsonObject[], extra: JsonObject = {}): JsonObject {
  return { containers, ...extra };
}

function template(spec: JsonObject): JsonObject {
  return { metadata: { labels: { app: 'x' } }, spec };
}

/** Sets a Pod's status through the status subresource, as kubelet does. */
async function waitingNeverPull(namespace: string, name: string, node: string): Promise<void> {
  const admin = KubeClient.load(server.adminKubeconfig());
  const path = `/api/v1/namespaces/${namespace}/pods/${name}`;
  const pod = await admin.request<JsonObject & { spec: { containers: { name: string }[] } }>(
    'GET',
    path,
  );
  const containerStatuses = pod.spec.containers.map((c) => ({
    name: c.name,
    image: (c as { image?: string }).image,
    imageID: '',
    ready: false,
    restartCount: 0,
    state: {
      waiting: {
        reason: 'ErrImageNeverPull',
        message: 'Container image is not present with pull policy of Never',
      },
    },
  }));
  await admin.request('PUT', `${path}/status`, {
    body: { ...pod, status: { phase: 'Pending', containerStatuses } },
  });
  expect(server.get('v1', 'Pod', name, namespace)).toMatchObject({ spec: { nodeName: node } });
}

function nodeImageCache(node: string): JsonObject {
  return {
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'NodeImageCache',
    metadata: { name: node },
    spec: { nodeName: node },
  };
}

beforeAll(async () => {
  server = await KubeApiServer.start();
  server.applyManifests(join(REPO, 'deploy', 'crds'));
  server.applyManifests(join(REPO, 'deploy', 'audit-rbac.yaml'));
  ({ kubeconfig } = server.serviceAccount('ci', 'auditor'));
  server.apply(
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'prepull-audit' },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: 'prepull-audit',
      },
      subjects: [{ kind: 'ServiceAccount', name: 'auditor', namespace: 'ci' }],
    },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'data' } },
    {
      apiVersion: 'prepull.dev/v1alpha1',
      kind: 'PrePull',
      metadata: { namespace: 'shop', name: 'web' },
      spec: {
        images: [{ image: IMG('web') }, { image: IMG('api') }],
        nodeSelector: { pool: 'web' },
      },
    },
  );
  const [deployment] = server.apply({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { namespace: 'shop', name: 'web' },
    spec: {
      selector: { matchLabels: { app: 'x' } },
      template: template(
        podSpec([container('web', IMG('web')), container('sidecar', IMG('sidecar'))], {
          nodeSelector: { pool: 'web' },
        }),
      ),
    },
  });
  const owner = (kind: string, object: JsonObject | undefined): JsonObject => {
    const m = object?.metadata as { name: string; uid: string };
    return { ownerReferences: [{ apiVersion: 'apps/v1', kind, ...m, controller: true }] };
  };
  const [replicaSet] = server.apply({
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { namespace: 'shop', name: 'web-7d4b9', ...owner('Deployment', deployment) },
    spec: {
      selector: { matchLabels: { app: 'x' } },
      template: template(podSpec([container('web', IMG('web'))])),
    },
  });
  server.apply(
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { namespace: 'shop', name: 'web-7d4b9-x2x', ...owner('ReplicaSet', replicaSet) },
      spec: podSpec([container('web', IMG('web'))], { nodeName: 'n1' }),
    },
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { namespace: 'shop', name: 'api' },
      spec: podSpec([container('api', IMG('api'))], { nodeName: 'n3' }),
    },
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { namespace: 'data', name: 'loose' },
      spec: podSpec([container('loose', IMG('loose'))], { nodeName: 'n1' }),
    },
    {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { namespace: 'data', name: 'nightly' },
      spec: {
        schedule: '0 3 * * *',
        jobTemplate: {
          spec: {
            template: template(
              podSpec([container('job', IMG('batch'))], { restartPolicy: 'Never' }),
            ),
          },
        },
      },
    },
    nodeImageCache('n1'),
  );
  await waitingNeverPull('shop', 'web-7d4b9-x2x', 'n1');
  await waitingNeverPull('shop', 'api', 'n3');
  await waitingNeverPull('data', 'loose', 'n1');
  const admin = KubeClient.load(server.adminKubeconfig());
  const nic = await admin.request<JsonObject>(
    'GET',
    '/apis/prepull.dev/v1alpha1/nodeimagecaches/n1',
  );
  await admin.request('PUT', '/apis/prepull.dev/v1alpha1/nodeimagecaches/n1/status', {
    body: {
      ...nic,
      status: {
        runtime: { name: 'containerd', version: '1.7.0', endpoint: 'unix:///run/containerd.sock' },
        summary: { required: 2, present: 1, pulling: 0, missing: 1, stale: 0, failed: 0 },
        images: [
          {
            image: IMG('web'),
            requiredBy: ['shop/web'],
            state: 'Missing',
            attempts: 4,
            reason: 'BackOff',
            message: 'pull failed: 401 Unauthorized',
            code: 'ERR_REGISTRY_AUTH',
          },
          { image: IMG('api'), requiredBy: ['shop/web'], state: 'Present', attempts: 1 },
        ],
        conditions: [],
      },
    },
  });
}, 30_000);

afterAll(async () => {
  await server.stop();
});

const WEB_PATH = '/apis/apps/v1/namespaces/shop/deployments/web';
const NEVER = 'ErrImageNeverPull on node';

describe('prepull audit --kubeconfig', () => {
  it('reports the rules and explains every container in ErrImageNeverPull, with exit 1', async () => {
    server.accounting.reset();
    const result = await cli(['audit', '--kubeconfig', kubeconfig, '-o', 'json']);
    expect(result.err).toBe('');
    expect(result.code).toBe(1);
    const report = JSON.parse(result.out) as {
      findings: {
        rule: string;
        file: string;
        object: string;
        container: string;
        message: string;
      }[];
      problems: unknown[];
      summary: Record<string, unknown>;
    };
    const findings = report.findings.map((f) => [f.rule, f.file, f.object, f.container, f.message]);
    expect(findings).toEqual([
      [
        'not-covered',
        '/api/v1/namespaces/data/pods/loose',
        'Pod data/loose',
        'loose',
        `no PrePull lists ${IMG('loose')}`,
      ],
      [
        'selector-gap',
        '/api/v1/namespaces/shop/pods/api',
        'Pod shop/api',
        'api',
        "PrePull shop/web keeps the image only on nodes labelled pool=web, but the Pod's nodeSelector and required node affinity do not imply pool=web; it may be scheduled where the image is missing",
      ],
      [
        'not-covered',
        WEB_PATH,
        'Deployment shop/web',
        'sidecar',
        `no PrePull lists ${IMG('sidecar')}`,
      ],
      [
        'not-covered',
        '/apis/batch/v1/namespaces/data/cronjobs/nightly',
        'CronJob data/nightly',
        'job',
        `no PrePull lists ${IMG('batch')}`,
      ],
      [
        'never-pull-failed',
        '/api/v1/namespaces/data/pods/loose',
        'Pod data/loose',
        'loose',
        `${NEVER} n1: ${IMG('loose')} is not covered by any PrePull (no PrePull lists ${IMG('loose')})`,
      ],
      [
        'never-pull-failed',
        '/api/v1/namespaces/shop/pods/api',
        'Pod shop/api',
        'api',
        `${NEVER} n3: covered by PrePull shop/web, but node n3 reports no NodeImageCache (is the agent running there?)`,
      ],
      [
        'never-pull-failed',
        '/api/v1/namespaces/shop/pods/web-7d4b9-x2x',
        'Pod shop/web-7d4b9-x2x',
        'web',
        `${NEVER} n1: covered by PrePull shop/web, but Missing on node n1: BackOff: pull failed: 401 Unauthorized (ERR_REGISTRY_AUTH)`,
      ],
    ]);
    // The ReplicaSet (owned by the Deployment) and its Pod are left to the Deployment.
    expect(report.summary).toEqual({
      cluster: server.url,
      files: 0,
      objects: 4,
      containers: 5,
      prePulls: 1,
      errors: 7,
      warnings: 0,
      problems: 0,
    });
    expect(report.problems).toEqual([]);
  });

  it('sends GET (list) requests only, within the read-only role', () => {
    const records = server.accounting.all().filter((r) => r.user === AUDITOR);
    expect(records.length).toBe(9);
    expect([...new Set(records.map((r) => r.verb))]).toEqual(['list']);
    expect(records.every((r) => r.code === 200)).toBe(true);
    expect(records.map((r) => r.resource).sort()).toEqual([
      '/pods',
      'apps/daemonsets',
      'apps/deployments',
      'apps/replicasets',
      'apps/statefulsets',
      'batch/cronjobs',
      'batch/jobs',
      'prepull.dev/nodeimagecaches',
      'prepull.dev/prepulls',
    ]);
  });

  it('reads one namespace with --namespace, and writes a table and SARIF without lines', async () => {
    const table = await cli(['audit', '--kubeconfig', kubeconfig, '-n', 'data']);
    expect(table.code).toBe(1);
    expect(table.out.split('\n')).toEqual([
      `/api/v1/namespaces/data/pods/loose\terror\tnot-covered\tPod data/loose container loose\tno PrePull lists ${IMG('loose')}`,
      `/apis/batch/v1/namespaces/data/cronjobs/nightly\terror\tnot-covered\tCronJob data/nightly container job\tno PrePull lists ${IMG('batch')}`,
      `/api/v1/namespaces/data/pods/loose\terror\tnever-pull-failed\tPod data/loose container loose\t${NEVER} n1: ${IMG('loose')} is not covered by any PrePull (no PrePull lists ${IMG('loose')})`,
      `3 error(s), 0 warning(s) in 2 container(s) of 2 object(s) from the cluster at ${server.url}, against 1 PrePull(s)`,
      '',
    ]);
    const sarif = await cli(['audit', '--kubeconfig', kubeconfig, '-n', 'data', '-o', 'sarif']);
    const log = JSON.parse(sarif.out) as {
      runs: { results: { ruleId: string; locations: { physicalLocation: unknown }[] }[] }[];
    };
    expect(log.runs[0]?.results[0]).toMatchObject({
      ruleId: 'not-covered',
      locations: [
        { physicalLocation: { artifactLocation: { uri: '/api/v1/namespaces/data/pods/loose' } } },
      ],
    });
    expect(log.runs[0]?.results[0]?.locations[0]?.physicalLocation).not.toHaveProperty('region');
    expect(
      (await cli(['audit', '--kubeconfig', kubeconfig, '-n', 'data', '--fail-on', 'never'])).code,
    ).toBe(0);
  });

  it('reports a list it may not read as an input problem and exits 2', async () => {
    const { kubeconfig: stranger } = server.serviceAccount('ci', 'stranger');
    const result = await cli(['audit', '--kubeconfig', stranger, '-n', 'shop', '-o', 'json']);
    expect(result.code).toBe(2);
    expect(result.err).toContain(
      'prepull audit: /api/v1/namespaces/shop/pods: GET /api/v1/namespaces/shop/pods: pods is forbidden: User "system:serviceaccount:ci:stranger" cannot list resource "pods" in API group "" in the namespace "shop"',
    );
  });

  it('refuses -f with --kubeconfig, --namespace without it, and an unreadable kubeconfig', async () => {
    expect(await cli(['audit', '--kubeconfig', kubeconfig, '-f', 'x.yaml'])).toMatchObject({
      code: 2,
      err: expect.stringContaining('-f reads files; it cannot be combined with --kubeconfig'),
    });
    expect(await cli(['audit', '-f', 'x.yaml', '-n', 'shop'])).toMatchObject({
      code: 2,
      err: expect.stringContaining('--namespace needs --kubeconfig'),
    });
    expect(await cli(['audit', '--kubeconfig', '/nonexistent/kubeconfig'])).toMatchObject({
      code: 2,
      err: expect.stringContaining('--kubeconfig /nonexistent/kubeconfig: cannot load it'),
    });
  });
});
