// deploy/ as files: every manifest parses and passes the Kubernetes schemas (kubernetes-models),
// has no field those schemas do not know, is listed by a kustomization, and says what issue 7
// asks of it: the ClusterRole's exact rules, the DaemonSet's placement, security and probes,
// the CRDs' names, columns and descriptions.
import { describe, expect, it } from '@jest/globals';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import type { IClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import type { IRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import type { IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import type { ICustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import type { IPodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import type { IJSONSchemaProps } from 'kubernetes-models/apiextensions.k8s.io/v1/JSONSchemaProps';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IService } from 'kubernetes-models/v1/Service';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import {
  DEFAULTS,
  MAX_CONCURRENT_NODES,
  MAX_IMAGES,
  MAX_SCHEDULE_JITTER_SECONDS,
  MAX_TIME_ZONE_LENGTH,
} from '../../src/api/prepull.ts';
import { MAX_RELEASED } from '../../src/api/nodeimagecache.ts';
import { DEFAULT_SOCKETS } from '../../src/runtime/detect.ts';
import { parseAgentArgs } from '../../src/config/agent.ts';
import {
  DEPLOY,
  KUSTOMIZATION,
  ROOT,
  expandArgs,
  isComponent,
  label,
  readManifests,
  typeCheck,
  typeKey,
  validateModels,
  yamlFiles,
  type Doc,
} from './manifests.ts';

// The runtime components are checked as kubectl renders them: variants.test.ts.
const manifests = readManifests().filter((m) => !isComponent(m.file));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
/** Shipped but not installed by kustomization.yaml: the audit's read-only role, bound by hand. */
const NOT_INSTALLED = ['deploy/agent-direct-secrets.yaml', 'deploy/audit-rbac.yaml'];

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the model type it reads the document as
function only<T>(kind: string, name?: string): T {
  const found = manifests.filter(
    (m) =>
      m.doc.kind === kind &&
      (name === undefined || (m.doc.metadata as { name?: string } | undefined)?.name === name),
  );
  if (found.length !== 1)
    throw new Error(`expected one ${kind} ${name ?? ''}, found ${found.length}`);
  return found[0]!.doc as T;
}

function meta(doc: Doc): { name?: string; namespace?: string; labels?: Record<string, string> } {
  return doc.metadata ?? {};
}

describe('every manifest', () => {
  it('parses, and names an apiVersion, a kind and (except kustomizations) a name', () => {
    expect(manifests.length).toBeGreaterThan(8);
    for (const m of manifests) {
      expect({ at: label(m), apiVersion: typeof m.doc.apiVersion }).toEqual({
        at: label(m),
        apiVersion: 'string',
      });
      if (typeKey(m.doc) !== KUSTOMIZATION) expect(meta(m.doc).name).toMatch(/^[a-z0-9.-]+$/);
    }
    const ids = manifests
      .filter((m) => typeKey(m.doc) !== KUSTOMIZATION)
      .map((m) => `${typeKey(m.doc)} ${meta(m.doc).namespace ?? ''}/${meta(m.doc).name ?? ''}`);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
  });

  it('is a kind with a Kubernetes schema, and passes it', () => {
    expect(validateModels(manifests)).toEqual([]);
  });

  it('has no field the Kubernetes schemas do not know (a typo would be dropped silently)', () => {
    expect(typeCheck(manifests)).toEqual([]);
  }, 60_000);

  it('puts every namespaced object in prepull-system', () => {
    const clusterScoped = [
      'Namespace',
      'ClusterRole',
      'ClusterRoleBinding',
      'CustomResourceDefinition',
      'Kustomization',
    ];
    for (const m of manifests.filter((x) => !clusterScoped.includes(String(x.doc.kind)))) {
      expect({ at: label(m), namespace: meta(m.doc).namespace }).toEqual({
        at: label(m),
        namespace: 'prepull-system',
      });
    }
    expect(only<Doc>('Namespace').metadata).toMatchObject({ name: 'prepull-system' });
  });
});

describe('the unknown-field check', () => {
  // It must catch what it is for, or the test above proves nothing.
  it('refuses a misspelled field at any depth, in a CRD schema too', () => {
    const ds = structuredClone(only<IDaemonSet>('DaemonSet')) as unknown as Doc;
    const container = (ds as unknown as IDaemonSet).spec!.template.spec!
      .containers[0] as unknown as Doc;
    (container.securityContext as Doc).readOnlyRootFileSystem = true;
    const crd = structuredClone(only<Doc>('CustomResourceDefinition', 'prepulls.prepull.dev'));
    const images = (crd as unknown as ICustomResourceDefinition).spec.versions[0]!.schema!
      .openAPIV3Schema!.properties!.spec!.properties!.images!;
    (images.items as Doc).descripton = 'typo';
    const problems = typeCheck([
      { file: 'test', index: 0, doc: ds },
      { file: 'test', index: 1, doc: crd },
    ]);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain(
      "'\"readOnlyRootFileSystem\"' does not exist in type 'ISecurityContext'",
    );
    expect(problems[1]).toContain('schema v1alpha1.spec.images[]');
    expect(problems[1]).toContain('\'"descripton"\' does not exist');
  }, 60_000);
});

describe('kustomization.yaml', () => {
  const kustomizations = manifests.filter((m) => typeKey(m.doc) === KUSTOMIZATION);

  it('has only the fields it uses', () => {
    for (const k of kustomizations) {
      // deploy/monitoring also generates the dashboard's ConfigMap (test/deploy/dashboard.test.ts).
      const generates =
        k.file === 'deploy/monitoring/kustomization.yaml' ? ['configMapGenerator'] : [];
      expect(Object.keys(k.doc).sort()).toEqual(
        ['apiVersion', 'kind', 'resources', ...generates].sort(),
      );
    }
  });

  it('lists every manifest exactly once, and only files that exist', () => {
    const listed = kustomizations.flatMap((k) =>
      (k.doc.resources as string[]).map((r) => posix.join(dirname(k.file), r)),
    );
    for (const file of listed) expect(yamlFiles()).toContain(file);
    const manifestsFiles = yamlFiles().filter(
      (f) => !f.endsWith('/kustomization.yaml') && !NOT_INSTALLED.includes(f) && !isComponent(f),
    );
    expect([...listed].sort()).toEqual(manifestsFiles);
  });

  it('installs everything but the monitoring from deploy/, which needs the Prometheus Operator', () => {
    const root = kustomizations.find((k) => k.file === 'deploy/kustomization.yaml')!;
    expect(root.doc.resources).toEqual([
      'namespace.yaml',
      'crds/prepull.dev_prepulls.yaml',
      'crds/prepull.dev_nodeimagecaches.yaml',
      'rbac.yaml',
      'resourcequota.yaml',
      'daemonset.yaml',
      'service.yaml',
      'controller-rbac.yaml',
      'controller.yaml',
      'networkpolicy.yaml',
    ]);
    const monitoring = kustomizations.find(
      (k) => k.file === 'deploy/monitoring/kustomization.yaml',
    )!;
    expect(monitoring.doc.resources).toEqual([
      'servicemonitor.yaml',
      'podmonitor.yaml',
      'prometheusrule.yaml',
    ]);
  });
});

describe('RBAC', () => {
  it('grants the agent exactly the verbs it uses', () => {
    const role = only<IClusterRole>('ClusterRole', 'prepull-agent');
    const rules = role.rules!.map((r) => ({
      apiGroups: r.apiGroups,
      resources: r.resources,
      verbs: r.verbs,
      ...(r.resourceNames !== undefined ? { resourceNames: r.resourceNames } : {}),
      ...(r.nonResourceURLs !== undefined ? { nonResourceURLs: r.nonResourceURLs } : {}),
    }));
    expect(rules).toEqual([
      { apiGroups: ['prepull.dev'], resources: ['prepulls'], verbs: ['list', 'watch'] },
      { apiGroups: ['prepull.dev'], resources: ['nodeimagecaches'], verbs: ['get', 'create'] },
      { apiGroups: ['prepull.dev'], resources: ['nodeimagecaches/status'], verbs: ['update'] },
      { apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch'] },
      { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
    ]);
    expect(role.aggregationRule).toBeUndefined();
  });

  // ADR 0020: pull secrets only as the controller's copies, in the agents' own namespace.
  it('grants the agent no secrets cluster-wide, and get on secrets in prepull-system only', () => {
    const clusterRole = only<IClusterRole>('ClusterRole', 'prepull-agent');
    const secretRules = (clusterRole.rules ?? []).filter(
      (r) =>
        (r.apiGroups ?? []).some((g) => g === '' || g === '*') &&
        (r.resources ?? []).some((x) => x === 'secrets' || x === '*'),
    );
    expect(secretRules).toEqual([]);
    const role = only<IRole>('Role', 'prepull-agent');
    expect(role.metadata?.namespace).toBe('prepull-system');
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]);
    const binding = only<IRoleBinding>('RoleBinding', 'prepull-agent');
    expect(binding.metadata?.namespace).toBe('prepull-system');
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: 'prepull-agent',
    });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'prepull-agent', namespace: 'prepull-system' },
    ]);
  });

  it('keeps the wider grant for agents without a controller out of the install', () => {
    const role = only<IClusterRole>('ClusterRole', 'prepull-agent-direct-secrets');
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]);
    const binding = only<IClusterRoleBinding>('ClusterRoleBinding', 'prepull-agent-direct-secrets');
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'prepull-agent', namespace: 'prepull-system' },
    ]);
    expect(NOT_INSTALLED).toContain('deploy/agent-direct-secrets.yaml');
  });

  it('binds the role to the DaemonSet’s ServiceAccount, and nothing else to anyone', () => {
    const binding = only<IClusterRoleBinding>('ClusterRoleBinding', 'prepull-agent');
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'prepull-agent',
    });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'prepull-agent', namespace: 'prepull-system' },
    ]);
    only<Doc>('ServiceAccount', 'prepull-agent');
    const grants = manifests.filter(
      (m) => /^(Cluster)?Role(Binding)?$/.test(String(m.doc.kind)) && m.file === 'deploy/rbac.yaml',
    );
    expect(grants.map((m) => m.doc.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'RoleBinding',
    ]);
    const elsewhere = manifests.filter(
      (m) => /^(Cluster)?Role(Binding)?$/.test(String(m.doc.kind)) && m.file !== 'deploy/rbac.yaml',
    );
    // The controller's grants: test/deploy/controller.test.ts.
    expect(elsewhere.map((m) => `${m.file} ${String(m.doc.kind)}`)).toEqual([
      'deploy/agent-direct-secrets.yaml ClusterRole',
      'deploy/agent-direct-secrets.yaml ClusterRoleBinding',
      'deploy/audit-rbac.yaml ClusterRole',
      'deploy/controller-rbac.yaml ClusterRole',
      'deploy/controller-rbac.yaml ClusterRoleBinding',
      'deploy/controller-rbac.yaml Role',
      'deploy/controller-rbac.yaml RoleBinding',
    ]);
  });

  it('grants `prepull audit --kubeconfig` get and list on what it reads, and nothing else', () => {
    const role = only<IClusterRole>('ClusterRole', 'prepull-audit');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] },
      {
        apiGroups: ['apps'],
        resources: ['deployments', 'replicasets', 'statefulsets', 'daemonsets'],
        verbs: ['get', 'list'],
      },
      { apiGroups: ['batch'], resources: ['jobs', 'cronjobs'], verbs: ['get', 'list'] },
      {
        apiGroups: ['prepull.dev'],
        resources: ['prepulls', 'nodeimagecaches'],
        verbs: ['get', 'list'],
      },
    ]);
    expect(role.aggregationRule).toBeUndefined();
  });
});

describe('the DaemonSet', () => {
  const ds = only<IDaemonSet>('DaemonSet', 'prepull-agent');
  const spec = ds.spec!;
  const pod = spec.template.spec!;
  const [agent, ...others] = pod.containers;

  it('runs one agent per node, on every node, before anything else is evicted', () => {
    expect(meta(ds as unknown as Doc).namespace).toBe('prepull-system');
    expect(others).toEqual([]);
    expect(pod.initContainers).toBeUndefined();
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.serviceAccountName).toBe('prepull-agent');
    expect(pod.terminationGracePeriodSeconds).toBe(60);
    expect(spec.updateStrategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: '10%' },
    });
    expect(spec.template.metadata?.labels).toMatchObject(spec.selector.matchLabels!);
    // The quota that admits system-node-critical Pods outside kube-system on some clusters.
    const quota = only<Doc>('ResourceQuota');
    expect(quota.spec).toMatchObject({
      scopeSelector: {
        matchExpressions: [
          { scopeName: 'PriorityClass', operator: 'In', values: ['system-node-critical'] },
        ],
      },
    });
  });

  it('runs `prepull agent` from this release’s image with the node’s name', () => {
    expect(agent!.image).toBe(`ghcr.io/prepull/prepull:${pkg.version}`);
    expect(agent!.imagePullPolicy).toBe('IfNotPresent');
    expect(agent!.command).toBeUndefined();
    expect(agent!.args).toEqual([
      'agent',
      '--metrics-address',
      '$(POD_IP):9464',
      '--image-fs-floor=20%',
    ]);
    expect(agent!.env).toEqual([
      { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ]);
    expect(meta(ds as unknown as Doc).labels?.['app.kubernetes.io/version']).toBe(pkg.version);
  });

  it('passes flags `prepull agent` accepts, and a grace period longer than its shutdown', () => {
    const args = expandArgs(agent!.args!.slice(1), { POD_IP: '10.244.1.7' });
    const config = parseAgentArgs(args, { NODE_NAME: 'node-a' });
    if (config === 'help') throw new Error('the DaemonSet asks for help');
    expect(agent!.args![0]).toBe('agent');
    expect(config).toMatchObject({
      nodeName: 'node-a',
      metricsAddress: { host: '10.244.1.7', port: agent!.ports![0]!.containerPort },
      disk: { floor: { percent: 20 } },
    });
    // SIGTERM lets pulls finish for --shutdown-grace, then aborts them and writes the last
    // status: kubelet must not SIGKILL before.
    expect(pod.terminationGracePeriodSeconds! * 1000).toBeGreaterThanOrEqual(
      config.shutdownGraceMs + 30_000,
    );
  });

  it('serves metrics on the Pod’s own IP, IPv4 or IPv6, not on every interface', () => {
    for (const ip of ['10.244.1.7', 'fd00:10:244:1::7']) {
      const config = parseAgentArgs(expandArgs(agent!.args!.slice(1), { POD_IP: ip }), {
        NODE_NAME: 'node-a',
      });
      if (config === 'help') throw new Error('the DaemonSet asks for help');
      expect(config.metricsAddress).toEqual({ host: ip, port: 9464 });
    }
    // Without POD_IP the reference stays as written, and the agent refuses it by name.
    expect(() => parseAgentArgs(agent!.args!.slice(1), { NODE_NAME: 'node-a' })).toThrow(
      /"\$\(POD_IP\)" in "\$\(POD_IP\):9464" is neither an IP address nor a host name/,
    );
  });

  it('serves metrics and probes on the port --metrics-address opens', () => {
    expect(agent!.ports).toEqual([{ name: 'metrics', containerPort: 9464, protocol: 'TCP' }]);
    expect(agent!.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(agent!.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    // Start-up asks only whether the process serves: waiting for the runtime is not a failure.
    expect(agent!.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    const budget = (p: IProbe | undefined): number =>
      (p?.periodSeconds ?? 10) * (p?.failureThreshold ?? 3);
    expect(budget(agent!.startupProbe)).toBeGreaterThan(budget(agent!.livenessProbe));
  });

  it('asks for the resources it is sized for', () => {
    expect(agent!.resources).toEqual({
      requests: { cpu: '20m', memory: '96Mi' },
      limits: { cpu: '500m', memory: '160Mi' },
    });
  });

  it('is root only for the socket: no capabilities, no escalation, read-only root, RuntimeDefault seccomp', () => {
    expect(pod.securityContext).toEqual({
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(agent!.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(pod.hostNetwork).toBeUndefined();
    expect(pod.hostPID).toBeUndefined();
    expect(pod.hostIPC).toBeUndefined();
  });

  it('mounts the CRI runtimes’ socket directories read-only at their host paths, and a scratch /tmp', () => {
    const volumes = new Map(pod.volumes!.map((v) => [v.name, v]));
    const mounts = agent!.volumeMounts!;
    expect(mounts.map((m) => m.name).sort()).toEqual([...volumes.keys()].sort());
    const hostPaths = mounts.filter((m) => volumes.get(m.name)?.hostPath !== undefined);
    for (const m of hostPaths) {
      const hostPath = volumes.get(m.name)!.hostPath!;
      expect({ mount: m.name, readOnly: m.readOnly, at: m.mountPath, type: hostPath.type }).toEqual(
        {
          mount: m.name,
          readOnly: true,
          at: hostPath.path,
          type: 'DirectoryOrCreate',
        },
      );
    }
    const dirs = hostPaths.map((m) => m.mountPath);
    expect(dirs).toEqual(['/run/containerd', '/run/crio', '/run/k3s/containerd']);
    // The agent probes them (no --runtime-endpoint), and the DaemonSet says so.
    expect(meta(ds as unknown as Doc)).toMatchObject({
      annotations: { 'prepull.dev/runtime': 'detect' },
    });
    // Every default socket the agent probes sits in a mounted directory, except Docker Engine's
    // and cri-dockerd's, which sit directly in /run (their components mount the socket file).
    const uncovered = DEFAULT_SOCKETS.filter((s) => !dirs.includes(posix.dirname(s)));
    expect(uncovered).toEqual(['/run/cri-dockerd.sock', '/var/run/docker.sock']);
    const tmp = mounts.find((m) => m.mountPath === '/tmp');
    expect(volumes.get(tmp!.name)?.emptyDir).toBeDefined();
  });
});

describe('metrics', () => {
  it('a headless Service selects the agents’ Pods on the metrics port', () => {
    const ds = only<IDaemonSet>('DaemonSet', 'prepull-agent');
    const service = only<IService>('Service', 'prepull-agent-metrics');
    expect(service.spec?.clusterIP).toBe('None');
    expect(ds.spec!.template.metadata?.labels).toMatchObject(service.spec!.selector!);
    expect(service.spec?.ports).toEqual([
      { name: 'metrics', port: 9464, targetPort: 'metrics', protocol: 'TCP' },
    ]);
  });

  it('the ServiceMonitor scrapes that Service’s metrics port', () => {
    const service = only<IService>('Service', 'prepull-agent-metrics');
    const monitor = only<IServiceMonitor>('ServiceMonitor', 'prepull-agent');
    expect(service.metadata?.labels).toMatchObject(monitor.spec.selector.matchLabels!);
    expect(monitor.spec.namespaceSelector).toEqual({ matchNames: ['prepull-system'] });
    expect(monitor.spec.endpoints.map((e) => [e.port, e.path])).toEqual([['metrics', '/metrics']]);
  });

  it('the PodMonitor scrapes the controller’s replicas on their metrics port, as job prepull-controller', () => {
    const deployment = only<IDeployment>('Deployment', 'prepull-controller');
    const monitor = only<IPodMonitor>('PodMonitor', 'prepull-controller');
    expect(deployment.spec!.template.metadata?.labels).toMatchObject(
      monitor.spec.selector.matchLabels!,
    );
    expect(monitor.spec.namespaceSelector).toEqual({ matchNames: ['prepull-system'] });
    const ports = deployment.spec!.template.spec!.containers.flatMap((c) => c.ports ?? []);
    const endpoints = monitor.spec.podMetricsEndpoints ?? [];
    expect(endpoints.map((e) => [e.port, e.path])).toEqual([['metrics', '/metrics']]);
    expect(ports.map((p) => p.name)).toContain('metrics');
    expect(endpoints[0]!.relabelings).toEqual([
      { targetLabel: 'job', replacement: 'prepull-controller', action: 'replace' },
    ]);
  });

  it('a NetworkPolicy lets only the monitoring namespaces reach the agents and the controller, on the metrics port', () => {
    const policy = only<INetworkPolicy>('NetworkPolicy', 'prepull-metrics');
    expect(meta(policy as unknown as Doc).namespace).toBe('prepull-system');
    const selected = policy.spec!.podSelector!.matchLabels!;
    const ds = only<IDaemonSet>('DaemonSet', 'prepull-agent');
    const deployment = only<IDeployment>('Deployment', 'prepull-controller');
    for (const pod of [ds.spec!.template, deployment.spec!.template]) {
      expect(pod.metadata?.labels).toMatchObject(selected);
      // The named port the policy opens is the one each serves metrics and probes on.
      expect(pod.spec!.containers[0]!.ports!.map((p) => p.name)).toEqual(['metrics']);
    }
    // Ingress only: the agent and the controller open their own connections (API server,
    // registries), which this policy leaves alone.
    expect(policy.spec!.policyTypes).toEqual(['Ingress']);
    expect(policy.spec!.ingress).toEqual([
      {
        from: [
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
          { namespaceSelector: { matchLabels: { 'prepull.dev/scrape': 'true' } } },
        ],
        ports: [{ port: 'metrics', protocol: 'TCP' }],
      },
    ]);
    // What docs/install.md tells an operator to do with it.
    const install = readFileSync(join(ROOT, 'docs/install.md'), 'utf8');
    expect(install).toContain('kubectl label namespace');
    expect(install).toContain('prepull.dev/scrape=true');
  });
});

// A schema node and the path kubectl explain would show for it.
function walk(
  schema: IJSONSchemaProps,
  visit: (node: IJSONSchemaProps, path: string) => void,
  path = '',
): void {
  visit(schema, path);
  for (const [key, sub] of Object.entries(schema.properties ?? {})) {
    walk(sub, visit, path === '' ? key : `${path}.${key}`);
  }
  if (typeof schema.items === 'object') walk(schema.items, visit, `${path}[]`);
  if (typeof schema.additionalProperties === 'object') {
    walk(schema.additionalProperties, visit, `${path}{}`);
  }
}

function crd(name: string): ICustomResourceDefinition {
  return only<ICustomResourceDefinition>('CustomResourceDefinition', name);
}

function schemaOf(c: ICustomResourceDefinition): IJSONSchemaProps {
  return c.spec.versions[0]!.schema!.openAPIV3Schema!;
}

/** The schema node a simple JSONPath (`.a.b`, `.a[?(@.x=="y")].b`) reads. */
function schemaAt(schema: IJSONSchemaProps, jsonPath: string): IJSONSchemaProps | undefined {
  let node: IJSONSchemaProps | undefined = schema;
  for (const part of jsonPath
    .replace(/\[\?\(@\.[^)]*\)\]/g, '[]')
    .split('.')
    .slice(1)) {
    const [key, list] = part.endsWith('[]') ? [part.slice(0, -2), true] : [part, false];
    if (key === 'metadata' && node === schema) return { type: 'object' };
    node = node?.properties?.[key];
    if (list) node = node?.items;
  }
  return node;
}

describe('the CRDs', () => {
  const crds = manifests.filter((m) => m.doc.kind === 'CustomResourceDefinition');

  it('are the two prepull.dev kinds, one version each, served and stored, with status', () => {
    expect(crds.map((m) => meta(m.doc).name).sort()).toEqual([
      'nodeimagecaches.prepull.dev',
      'prepulls.prepull.dev',
    ]);
    for (const c of crds.map((m) => m.doc as unknown as ICustomResourceDefinition)) {
      expect(c.spec.group).toBe('prepull.dev');
      expect(c.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([
        ['v1alpha1', true, true],
      ]);
      expect(c.spec.versions[0]!.subresources).toEqual({ status: {} });
      expect(`${c.spec.names.plural}.${c.spec.group}`).toBe(c.metadata?.name);
    }
    const pp = crd('prepulls.prepull.dev');
    expect(pp.spec.scope).toBe('Namespaced');
    expect(pp.spec.names).toMatchObject({
      kind: 'PrePull',
      singular: 'prepull',
      shortNames: ['pp'],
    });
    const nic = crd('nodeimagecaches.prepull.dev');
    expect(nic.spec.scope).toBe('Cluster');
    expect(nic.spec.names).toMatchObject({
      kind: 'NodeImageCache',
      singular: 'nodeimagecache',
      shortNames: ['nic'],
    });
  });

  it('share a category that no resource name shadows', () => {
    const names = crds.flatMap((m) => {
      const n = (m.doc as unknown as ICustomResourceDefinition).spec.names;
      return [n.plural, n.singular, ...(n.shortNames ?? [])];
    });
    for (const m of crds) {
      const categories = (m.doc as unknown as ICustomResourceDefinition).spec.names.categories;
      expect(categories).toEqual(['prepull-all']);
      for (const c of categories ?? []) expect(names).not.toContain(c);
    }
  });

  it('describe every field, for kubectl explain; metadata is left to the API server', () => {
    for (const m of crds) {
      const schema = schemaOf(m.doc as unknown as ICustomResourceDefinition);
      // kube-apiserver refuses a CRD whose root metadata schema says more than its type.
      expect(schema.properties?.metadata).toEqual({ type: 'object' });
      const undescribed: string[] = [];
      walk(schema, (node, path) => {
        if (path !== 'metadata' && !(node.description ?? '').trim()) undescribed.push(path);
      });
      expect({ crd: label(m), undescribed }).toEqual({ crd: label(m), undescribed: [] });
    }
  });

  it('are structural: a type on every node, nothing kept unpruned', () => {
    for (const m of crds) {
      const problems: string[] = [];
      walk(schemaOf(m.doc as unknown as ICustomResourceDefinition), (node, path) => {
        // An int-or-string (kube's IntOrString) is the one node that may go without a type.
        if (node.type === undefined && node['x-kubernetes-int-or-string'] !== true)
          problems.push(`${path}: no type`);
        if (node['x-kubernetes-preserve-unknown-fields'] !== undefined)
          problems.push(`${path}: preserves unknown fields`);
        if (
          node.type === 'object' &&
          node.properties === undefined &&
          node.additionalProperties === undefined &&
          path !== 'metadata'
        ) {
          problems.push(`${path}: an object without properties`);
        }
      });
      expect({ crd: label(m), problems }).toEqual({ crd: label(m), problems: [] });
    }
  });

  it('PrePull: printer columns, and the defaults and bounds of src/api/prepull.ts', () => {
    const pp = crd('prepulls.prepull.dev');
    const columns = pp.spec.versions[0]!.additionalPrinterColumns!;
    expect(columns.map((c) => [c.name, c.type, c.jsonPath, c.priority ?? 0])).toEqual([
      ['Nodes', 'integer', '.status.nodes.selected', 0],
      ['Ready', 'integer', '.status.nodes.ready', 0],
      ['Failed', 'integer', '.status.nodes.failed', 0],
      ['Message', 'string', '.status.message', 0],
      ['Age', 'date', '.metadata.creationTimestamp', 0],
      ['Policy', 'string', '.spec.pullPolicy', 1],
      ['Verify', 'string', '.spec.verify', 1],
      ['Pin', 'boolean', '.spec.pin', 1],
      ['Schedule', 'string', '.spec.schedule', 1],
    ]);
    const spec = schemaOf(pp).properties!.spec!;
    expect(spec.required).toEqual(['images']);
    const p = spec.properties!;
    expect(p.images).toMatchObject({ minItems: 1, maxItems: MAX_IMAGES });
    expect(p.pullPolicy).toMatchObject({
      enum: ['IfNotPresent', 'Always'],
      default: DEFAULTS.pullPolicy,
    });
    expect(p.verify).toMatchObject({ enum: ['Registry', 'None'], default: DEFAULTS.verify });
    expect(p.pin).toMatchObject({ type: 'boolean', default: DEFAULTS.pin });
    expect(p.timeoutSeconds).toMatchObject({
      minimum: 1,
      maximum: 86_400,
      default: DEFAULTS.timeoutSeconds,
    });
    expect(p.backoffLimit).toMatchObject({
      minimum: 0,
      maximum: 100,
      default: DEFAULTS.backoffLimit,
    });
    expect(Object.keys(p).sort()).toEqual(
      [
        'images',
        'nodeSelector',
        'imagePullSecrets',
        'pullPolicy',
        'verify',
        'schedule',
        'timeZone',
        'scheduleJitterSeconds',
        'pin',
        'timeoutSeconds',
        'backoffLimit',
        'rollout',
        'nodeLabel',
        'cleanup',
      ].sort(),
    );
    expect(p.scheduleJitterSeconds).toMatchObject({
      minimum: 0,
      maximum: MAX_SCHEDULE_JITTER_SECONDS,
      default: DEFAULTS.scheduleJitterSeconds,
    });
    expect(p.timeZone).toMatchObject({ minLength: 1, maxLength: MAX_TIME_ZONE_LENGTH });
    expect(p.cleanup).toMatchObject({ enum: ['Unpin', 'Remove'], default: DEFAULTS.cleanup });
    expect(p.rollout!.properties!.maxConcurrentNodes).toMatchObject({
      'x-kubernetes-int-or-string': true,
      minimum: 1,
      maximum: MAX_CONCURRENT_NODES,
    });
  });

  it('NodeImageCache: printer columns, and the shape the agent writes', () => {
    const nic = crd('nodeimagecaches.prepull.dev');
    const columns = nic.spec.versions[0]!.additionalPrinterColumns!;
    expect(columns.map((c) => [c.name, c.type, c.jsonPath])).toEqual([
      ['Runtime', 'string', '.status.runtime.name'],
      ['Required', 'integer', '.status.summary.required'],
      ['Present', 'integer', '.status.summary.present'],
      ['Failed', 'integer', '.status.summary.failed'],
      ['Ready', 'string', '.status.conditions[?(@.type=="Ready")].status'],
      ['Age', 'date', '.metadata.creationTimestamp'],
    ]);
    const status = schemaOf(nic).properties!.status!.properties!;
    expect(Object.keys(status).sort()).toEqual(
      [
        'runtime',
        'imageFilesystem',
        'disk',
        'summary',
        'images',
        'released',
        'conditions',
        'lastUpdateTime',
      ].sort(),
    );
    const image = status.images!.items as IJSONSchemaProps;
    expect(status.images!.maxItems).toBe(4096);
    expect(image.required).toEqual(['image', 'state']);
    expect(Object.keys(image.properties!).sort()).toEqual(
      [
        'image',
        'requiredBy',
        'state',
        'digest',
        'registryDigest',
        'imageId',
        'size',
        'pinned',
        'pinSource',
        'lastVerified',
        'attempts',
        'reason',
        'message',
        'code',
        'pulledByPrepull',
        'pinnedByPrepull',
        'cleanup',
        'progress',
      ].sort(),
    );
    // The disk guard's picture (ADR 0019): the fields nodeImageCacheStatus writes.
    const disk = status.disk!;
    expect(disk.required).toEqual(['floor', 'pinnedBytes', 'heldImages']);
    expect(Object.keys(disk.properties!).sort()).toEqual(
      [
        'floor',
        'floorBytes',
        'availableBytes',
        'pinBudgetBytes',
        'pinnedBytes',
        'heldImages',
        'message',
      ].sort(),
    );
    const progress = image.properties!.progress!;
    expect(progress.required).toEqual(['bytes']);
    expect(Object.keys(progress.properties!).sort()).toEqual(['bytes', 'totalBytes']);
    const released = status.released!.items as IJSONSchemaProps;
    expect(status.released!.maxItems).toBe(MAX_RELEASED);
    expect(released.required).toEqual(['image', 'action', 'time']);
    expect(Object.keys(released.properties!).sort()).toEqual(
      ['image', 'action', 'reason', 'time'].sort(),
    );
    expect(released.properties!.action!.enum).toEqual(['Unpinned', 'Removed', 'Kept']);
    expect(image.properties!.state!.enum).toEqual([
      'Present',
      'Pulling',
      'Missing',
      'Stale',
      'Failed',
    ]);
    expect(Object.keys(status.summary!.properties!).sort()).toEqual(
      ['required', 'present', 'pulling', 'missing', 'stale', 'failed'].sort(),
    );
  });

  it('print columns read fields the schema has, of the column’s type', () => {
    for (const m of crds) {
      const c = m.doc as unknown as ICustomResourceDefinition;
      for (const column of c.spec.versions[0]!.additionalPrinterColumns ?? []) {
        const node = schemaAt(schemaOf(c), column.jsonPath);
        const expected = column.type === 'date' ? ['string', 'object'] : [column.type];
        expect({
          column: column.name,
          type:
            node?.type !== undefined &&
            (expected.includes(node.type) || column.jsonPath.startsWith('.metadata.')),
        }).toEqual({
          column: column.name,
          type: true,
        });
      }
    }
  });
});

it('deploy/README.md names every file in deploy/', () => {
  const readme = readFileSync(join(DEPLOY, 'README.md'), 'utf8');
  const files = readdirSync(DEPLOY, { recursive: true, encoding: 'utf8' }).filter((f) =>
    /\.ya?ml$/.test(f),
  );
  for (const f of files)
    expect({ file: f, named: readme.includes(f) }).toEqual({ file: f, named: true });
});
