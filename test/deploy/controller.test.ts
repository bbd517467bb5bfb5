// deploy/controller.yaml and deploy/controller-rbac.yaml: the Deployment's settings (replicas,
// identity from the downward API, flags `prepull controller` accepts, probes, the agent's
// container hardening, non-root), the exact RBAC rules, and — loaded into the project's API test
// server, which enforces RBAC — what the controller's ServiceAccount may and may not do.
// (manifests.test.ts checks every manifest against the Kubernetes schemas.)
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch } from 'undici';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import type { IRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import type { IService } from 'kubernetes-models/v1/Service';
import { parseControllerArgs } from '../../src/config/controller.ts';
import { KubeApiServer } from '../kube-api-server/index.ts';
import { DEPLOY, ROOT, expandArgs, readManifests, type Doc } from './manifests.ts';

const manifests = readManifests();
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the model type it reads the document as
function only<T>(kind: string, name: string, file?: string): T {
  const found = manifests.filter(
    (m) =>
      m.doc.kind === kind &&
      (m.doc.metadata as { name?: string } | undefined)?.name === name &&
      (file === undefined || m.file === file),
  );
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${found.length}`);
  return found[0]!.doc as T;
}

function rulesOf(role: IClusterRole | IRole): Doc[] {
  return (role.rules ?? []).map((r) => ({
    apiGroups: r.apiGroups,
    resources: r.resources,
    verbs: r.verbs,
    ...(r.resourceNames !== undefined ? { resourceNames: r.resourceNames } : {}),
  }));
}

describe('the controller’s RBAC', () => {
  it('grants cluster-wide exactly the verbs the controller uses', () => {
    expect(rulesOf(only<IClusterRole>('ClusterRole', 'prepull-controller'))).toEqual([
      { apiGroups: ['prepull.dev'], resources: ['prepulls'], verbs: ['list', 'watch'] },
      { apiGroups: ['prepull.dev'], resources: ['prepulls/status'], verbs: ['patch'] },
      { apiGroups: ['prepull.dev'], resources: ['nodeimagecaches'], verbs: ['list', 'watch'] },
      { apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch', 'patch'] },
      { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
    ]);
  });

  it('grants the Lease and the pull secret copies in its own namespace only', () => {
    const role = only<IRole>('Role', 'prepull-controller');
    expect(role.metadata?.namespace).toBe('prepull-system');
    expect(rulesOf(role)).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: ['prepull-controller'],
        verbs: ['get', 'update'],
      },
      { apiGroups: [''], resources: ['secrets'], verbs: ['list', 'create', 'update', 'delete'] },
    ]);
    // The copies go where the agents read them: the namespace of both Deployments.
    expect(
      parseControllerArgs([], { POD_NAME: 'p', POD_NAMESPACE: 'prepull-system' }),
    ).toMatchObject({ pullSecretNamespace: 'prepull-system' });
    // The Lease the Role names is the one the controller uses by default.
    const config = parseControllerArgs([], { POD_NAME: 'p', POD_NAMESPACE: 'prepull-system' });
    expect(config).toMatchObject({ leaseName: 'prepull-controller' });
  });

  it('binds both to the Deployment’s ServiceAccount only', () => {
    const subject = [
      { kind: 'ServiceAccount', name: 'prepull-controller', namespace: 'prepull-system' },
    ];
    for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
      const binding = only<{ roleRef: Doc; subjects: Doc[] }>(kind, 'prepull-controller');
      expect(binding.roleRef).toEqual({
        apiGroup: 'rbac.authorization.k8s.io',
        kind: kind.replace('Binding', ''),
        name: 'prepull-controller',
      });
      expect(binding.subjects).toEqual(subject);
    }
    only<Doc>('ServiceAccount', 'prepull-controller', 'deploy/controller.yaml');
  });
});

describe('the Deployment', () => {
  const deployment = only<IDeployment>('Deployment', 'prepull-controller');
  const spec = deployment.spec!;
  const pod = spec.template.spec!;
  const [container, ...others] = pod.containers;
  const ds = only<IDaemonSet>('DaemonSet', 'prepull-agent');
  const agent = ds.spec!.template.spec!.containers[0]!;

  it('runs two replicas of `prepull controller` from this release’s image', () => {
    expect(deployment.metadata?.namespace).toBe('prepull-system');
    expect(spec.replicas).toBe(2);
    expect(others).toEqual([]);
    expect(pod.serviceAccountName).toBe('prepull-controller');
    expect(spec.template.metadata?.labels).toMatchObject(spec.selector.matchLabels!);
    expect(spec.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
    });
    expect(container!.image).toBe(`ghcr.io/prepull/prepull:${pkg.version}`);
    expect(container!.image).toBe(agent.image);
    expect(deployment.metadata?.labels?.['app.kubernetes.io/version']).toBe(pkg.version);
    // The agents' metrics Service does not select the controller's Pods.
    const service = only<IService>('Service', 'prepull-agent-metrics');
    const labels = spec.template.metadata!.labels!;
    expect(Object.entries(service.spec!.selector!).every(([k, v]) => labels[k] === v)).toBe(false);
  });

  it('names each replica from the downward API and passes flags the controller accepts', () => {
    expect(container!.env).toEqual([
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    ]);
    expect(container!.args![0]).toBe('controller');
    expect(container!.args).toContain('$(POD_IP):9465');
    const args = expandArgs(container!.args!.slice(1), { POD_IP: 'fd00:10:244:2::9' });
    const config = parseControllerArgs(args, {
      POD_NAME: 'prepull-controller-abc',
      POD_NAMESPACE: 'prepull-system',
    });
    if (config === 'help') throw new Error('the Deployment asks for help');
    expect(config).toMatchObject({
      leaderElect: true,
      identity: 'prepull-controller-abc',
      leaseNamespace: 'prepull-system',
      metricsAddress: { host: 'fd00:10:244:2::9', port: container!.ports![0]!.containerPort },
    });
    // SIGTERM releases the Lease within the renew deadline: kubelet must not SIGKILL before.
    expect(pod.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(
      config.renewDeadlineMs + 10_000,
    );
  });

  it('serves metrics and probes on the port --metrics-address opens', () => {
    expect(container!.ports).toEqual([{ name: 'metrics', containerPort: 9465, protocol: 'TCP' }]);
    expect(container!.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container!.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
  });

  it('is hardened like the agent’s container, and runs as non-root (it needs no socket)', () => {
    expect(container!.securityContext).toEqual(agent.securityContext);
    expect(container!.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(pod.securityContext).toEqual({
      runAsUser: 65532,
      runAsGroup: 65532,
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.hostNetwork ?? false).toBe(false);
    expect(pod.volumes).toEqual([{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }]);
    expect(container!.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
    expect(container!.resources?.requests).toBeDefined();
    expect(container!.resources?.limits).toBeDefined();
  });

  it('tolerates the start-up taint it removes, and spreads its replicas over nodes', () => {
    expect(pod.tolerations).toEqual([
      { key: 'prepull.dev/images-pending', operator: 'Exists', effect: 'NoSchedule' },
    ]);
    const term = pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution;
    expect(term?.[0]?.podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
    expect(term?.[0]?.podAffinityTerm.labelSelector?.matchLabels).toEqual(
      spec.selector.matchLabels,
    );
  });
});

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-explicit-any -- API answers are untyped JSON */
type Obj = any;

describe('the controller’s ServiceAccount, with deploy/controller-rbac.yaml', () => {
  const NS = 'shop';
  const PP = `/apis/prepull.dev/v1alpha1/namespaces/${NS}/prepulls`;
  const NIC = '/apis/prepull.dev/v1alpha1/nodeimagecaches';
  const LEASES = '/apis/coordination.k8s.io/v1/namespaces/prepull-system/leases';
  const MERGE = 'application/merge-patch+json';
  const JSON_PATCH = 'application/json-patch+json';
  let server: KubeApiServer;
  let token: string;
  let dispatcher: Agent;

  beforeAll(async () => {
    server = await KubeApiServer.start();
    server.applyManifests(join(DEPLOY, 'namespace.yaml'));
    server.applyManifests(join(DEPLOY, 'crds'));
    server.applyManifests(join(DEPLOY, 'rbac.yaml'));
    server.applyManifests(join(DEPLOY, 'controller-rbac.yaml'));
    token = server.serviceAccount('prepull-system', 'prepull-controller').token;
    dispatcher = new Agent({ connect: { ca: server.ca.caPem } });
    server.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'node-c', labels: { tier: 'web' } },
        spec: { taints: [{ key: 'prepull.dev/images-pending', effect: 'NoSchedule' }] },
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'regcred', namespace: NS },
        type: 'Opaque',
        data: {},
      },
      {
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        metadata: { name: 'web', namespace: NS },
        spec: { images: [{ image: 'nginx:1.27' }] },
      },
      {
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'NodeImageCache',
        metadata: { name: 'node-c' },
        spec: { nodeName: 'node-c' },
      },
    );
  });

  afterAll(async () => {
    await dispatcher.close();
    await server.stop();
  });

  /** Status code and body of one request as the controller's ServiceAccount. */
  async function as(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<{ code: number; body: Obj }> {
    const abort = new AbortController();
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      dispatcher,
      signal: abort.signal,
    });
    if (path.includes('watch=true')) {
      // A watch streams until its timeout: its status is all this needs.
      abort.abort();
      await response.body?.cancel().catch(() => undefined);
      return { code: response.status, body: undefined };
    }
    const text = await response.text();
    return { code: response.status, body: text === '' ? undefined : JSON.parse(text) };
  }

  const COPIES = '/api/v1/namespaces/prepull-system/secrets';
  const copy = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'prepull-pull-0123456789abcdef0123', namespace: 'prepull-system' },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from('{"auths":{}}').toString('base64') },
  };
  const lease = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'prepull-controller', namespace: 'prepull-system' },
    spec: { holderIdentity: 'a', leaseDurationSeconds: 15 },
  };

  it('may do what the controller does', async () => {
    const status = {
      status: {
        message: '1/1 nodes ready',
        nodes: { selected: 1, ready: 1, pulling: 0, failed: 0 },
      },
    };
    const taints = [{ key: 'prepull.dev/images-pending', effect: 'NoSchedule' }];
    const allowed: [string, string, unknown?, string?][] = [
      ['GET', '/apis/prepull.dev/v1alpha1/prepulls'],
      ['GET', '/apis/prepull.dev/v1alpha1/prepulls?watch=true&timeoutSeconds=1'],
      ['PATCH', `${PP}/web/status`, status, MERGE],
      ['GET', NIC],
      ['GET', `${NIC}?watch=true&timeoutSeconds=1`],
      ['GET', '/api/v1/nodes'],
      ['GET', '/api/v1/nodes?watch=true&timeoutSeconds=1'],
      [
        'PATCH',
        '/api/v1/nodes/node-c',
        { metadata: { labels: { 'prepull.dev/web': 'true' } } },
        MERGE,
      ],
      [
        'PATCH',
        '/api/v1/nodes/node-c',
        [
          { op: 'test', path: '/spec/taints', value: taints },
          { op: 'replace', path: '/spec/taints', value: [] },
        ],
        JSON_PATCH,
      ],
      ['POST', LEASES, lease],
      ['GET', `${LEASES}/prepull-controller`],
      // Pull secrets (ADR 0020): the source, by name, in a PrePull's namespace; its copies in
      // prepull-system, listed by label, created, updated, deleted.
      ['GET', `/api/v1/namespaces/${NS}/secrets/regcred`],
      ['GET', `${COPIES}?labelSelector=prepull.dev%2Fpull-secret-copy`],
      ['POST', COPIES, copy],
      ['PUT', `${COPIES}/prepull-pull-0123456789abcdef0123`, copy],
      ['DELETE', `${COPIES}/prepull-pull-0123456789abcdef0123`],
    ];
    const answers = [];
    for (const [method, path, body, type] of allowed)
      answers.push([method, path, (await as(method, path, body, type)).code]);
    expect(answers).toEqual(
      allowed.map(([method, path]) => [method, path, method === 'POST' ? 201 : 200]),
    );
    // The leader's renewal: an update with the resourceVersion it read.
    const read = await as('GET', `${LEASES}/prepull-controller`);
    const renewed = { ...read.body, spec: { ...read.body.spec, holderIdentity: 'b' } };
    expect((await as('PUT', `${LEASES}/prepull-controller`, renewed)).code).toBe(200);
    const event = await as('POST', `/apis/events.k8s.io/v1/namespaces/${NS}/events`, {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: 'web.1', namespace: NS },
      eventTime: '2026-12-07T19:30:00.000000Z',
      reportingController: 'prepull.dev/controller',
      reportingInstance: 'prepull-controller-abc',
      action: 'Admit',
      reason: 'Admitted',
      type: 'Normal',
      note: 'node-c admitted',
      regarding: {
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        namespace: NS,
        name: 'web',
      },
    });
    expect(event.code).toBe(201);
    const series = { series: { count: 2, lastObservedTime: '2026-12-07T19:31:00.000000Z' } };
    expect(
      (await as('PATCH', `/apis/events.k8s.io/v1/namespaces/${NS}/events/web.1`, series, MERGE))
        .code,
    ).toBe(200);
    // What the patches did.
    const node = server.get('v1', 'Node', 'node-c') as Obj;
    expect(node.metadata.labels).toEqual({ tier: 'web', 'prepull.dev/web': 'true' });
    expect(node.spec.taints).toEqual([]);
    const prePull = server.get('prepull.dev/v1alpha1', 'PrePull', 'web', NS) as Obj;
    expect(prePull.status.message).toBe('1/1 nodes ready');
  });

  it('may not do anything else: 403', async () => {
    const node = server.get('v1', 'Node', 'node-c');
    const denied: [string, string, unknown?][] = [
      // PrePulls: no spec, metadata or finalizer writes, no status update (PUT), no get.
      ['PUT', `${PP}/web`, {}],
      ['PATCH', `${PP}/web`, { spec: { pin: false } }],
      ['PUT', `${PP}/web/status`, {}],
      ['POST', PP, {}],
      ['DELETE', `${PP}/web`],
      ['GET', `${PP}/web`],
      // Secrets: get by name anywhere, nothing more outside prepull-system; there no watch.
      ['GET', `/api/v1/namespaces/${NS}/secrets`],
      ['GET', '/api/v1/secrets'],
      ['GET', `/api/v1/namespaces/${NS}/secrets?watch=true&timeoutSeconds=1`],
      ['PUT', `/api/v1/namespaces/${NS}/secrets/regcred`, {}],
      ['DELETE', `/api/v1/namespaces/${NS}/secrets/regcred`],
      ['POST', `/api/v1/namespaces/${NS}/secrets`, {}],
      ['GET', `${COPIES}?watch=true&timeoutSeconds=1`],
      ['PATCH', `${COPIES}/prepull-pull-0123456789abcdef0123`, {}],
      // Nodes: patch only, never update (PUT), status or delete.
      ['PUT', '/api/v1/nodes/node-c', node],
      ['PATCH', '/api/v1/nodes/node-c/status', {}],
      ['DELETE', '/api/v1/nodes/node-c'],
      ['GET', '/api/v1/nodes/node-c'],
      // NodeImageCaches: the agents' to write.
      ['GET', `${NIC}/node-c`],
      ['POST', NIC, {}],
      ['PATCH', `${NIC}/node-c`, {}],
      ['PUT', `${NIC}/node-c/status`, {}],
      ['DELETE', `${NIC}/node-c`],
      // Leases: only its own, only get/create/update, only in prepull-system.
      ['GET', `${LEASES}/kube-controller-manager`],
      ['PUT', `${LEASES}/kube-controller-manager`, {}],
      ['GET', LEASES],
      ['GET', `${LEASES}?watch=true&timeoutSeconds=1`],
      ['PATCH', `${LEASES}/prepull-controller`, {}],
      ['DELETE', `${LEASES}/prepull-controller`],
      ['POST', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases', lease],
      ['GET', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/prepull-controller'],
      // Nothing else.
      ['POST', `/api/v1/namespaces/${NS}/events`, {}],
      ['GET', `/apis/events.k8s.io/v1/namespaces/${NS}/events`],
      ['GET', `/api/v1/namespaces/${NS}/pods`],
      ['GET', '/apis/apps/v1/deployments'],
      ['POST', `/api/v1/namespaces/${NS}/configmaps`, {}],
    ];
    const answers = [];
    for (const [method, path, body] of denied)
      answers.push([method, path, (await as(method, path, body, MERGE)).code]);
    expect(answers).toEqual(denied.map(([method, path]) => [method, path, 403]));
  });
});
