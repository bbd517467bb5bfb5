// The resource types the server serves: the built-in ones prepull touches and the custom ones
// that CustomResourceDefinitions declare at runtime, with what discovery and the handlers need.
import { isObject, str, strList, type JsonObject } from './json.ts';

export interface ResourceType {
  group: string;
  version: string;
  /** Plural, lowercase: "pods", "prepulls". */
  resource: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  /** Discovery categories (`kubectl get all`, `kubectl get prepull-all`). */
  categories: string[];
  /** Whether a `status` subresource exists (main endpoint ignores status, /status the rest). */
  statusSubresource: boolean;
  /** openAPIV3Schema of a custom resource version; undefined for built-ins. */
  schema?: JsonObject;
  /** Served from a CRD (affects patch types, generation and delete answers). */
  custom: boolean;
  /** kube-apiserver answers DELETE with the object (true) or a Success Status (false). */
  returnDeletedObject: boolean;
  /** Whether status may be set on create (nodes: yes; pods and custom resources: no). */
  statusOnCreate: boolean;
  /** Whether metadata.generation is maintained. */
  generation: boolean;
  /** A CRD version's additionalPrinterColumns (server-side tables); undefined for built-ins. */
  printerColumns?: JsonObject[];
}

export function apiVersionOf(t: Pick<ResourceType, 'group' | 'version'>): string {
  return t.group === '' ? t.version : `${t.group}/${t.version}`;
}

export function typeKey(t: Pick<ResourceType, 'group' | 'resource'>): string {
  return `${t.group}/${t.resource}`;
}

interface BuiltinSpec {
  group: string;
  version: string;
  resource: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  status?: boolean;
  returnDeleted?: boolean;
  statusOnCreate?: boolean;
  generation?: boolean;
}

function builtin(spec: BuiltinSpec): ResourceType {
  return {
    group: spec.group,
    version: spec.version,
    resource: spec.resource,
    singular: spec.kind.toLowerCase(),
    kind: spec.kind,
    listKind: `${spec.kind}List`,
    namespaced: spec.namespaced,
    shortNames: spec.shortNames ?? [],
    categories: spec.categories ?? [],
    statusSubresource: spec.status ?? false,
    custom: false,
    returnDeletedObject: spec.returnDeleted ?? false,
    statusOnCreate: spec.statusOnCreate ?? true,
    generation: spec.generation ?? false,
  };
}

const RBAC = 'rbac.authorization.k8s.io';

/** An apps/v1 or batch/v1 workload: namespaced, a status subresource, generation kept. */
function workload(
  group: 'apps' | 'batch',
  resource: string,
  kind: string,
  shortNames: string[],
): ResourceType {
  return builtin({
    group,
    version: 'v1',
    resource,
    kind,
    namespaced: true,
    shortNames,
    categories: ['all'],
    status: true,
    statusOnCreate: false,
    generation: true,
  });
}

export const BUILTIN_TYPES: readonly ResourceType[] = [
  builtin({
    group: '',
    version: 'v1',
    resource: 'namespaces',
    kind: 'Namespace',
    namespaced: false,
    shortNames: ['ns'],
    status: true,
    returnDeleted: true,
  }),
  builtin({
    group: '',
    version: 'v1',
    resource: 'nodes',
    kind: 'Node',
    namespaced: false,
    shortNames: ['no'],
    status: true,
  }),
  builtin({
    group: '',
    version: 'v1',
    resource: 'pods',
    kind: 'Pod',
    namespaced: true,
    shortNames: ['po'],
    categories: ['all'],
    status: true,
    returnDeleted: true,
    statusOnCreate: false,
  }),
  // Workloads, stored only: no controller-manager behind them, so a Deployment makes no
  // ReplicaSet and a Job no Pod, as kube-apiserver's storage alone would not.
  workload('apps', 'deployments', 'Deployment', ['deploy']),
  workload('apps', 'replicasets', 'ReplicaSet', ['rs']),
  workload('apps', 'statefulsets', 'StatefulSet', ['sts']),
  workload('apps', 'daemonsets', 'DaemonSet', ['ds']),
  workload('batch', 'jobs', 'Job', []),
  workload('batch', 'cronjobs', 'CronJob', ['cj']),
  builtin({ group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true }),
  builtin({
    group: '',
    version: 'v1',
    resource: 'configmaps',
    kind: 'ConfigMap',
    namespaced: true,
    shortNames: ['cm'],
  }),
  builtin({
    group: '',
    version: 'v1',
    resource: 'serviceaccounts',
    kind: 'ServiceAccount',
    namespaced: true,
    shortNames: ['sa'],
  }),
  builtin({
    group: '',
    version: 'v1',
    resource: 'events',
    kind: 'Event',
    namespaced: true,
    shortNames: ['ev'],
  }),
  builtin({
    group: 'events.k8s.io',
    version: 'v1',
    resource: 'events',
    kind: 'Event',
    namespaced: true,
    shortNames: ['ev'],
  }),
  builtin({
    group: 'coordination.k8s.io',
    version: 'v1',
    resource: 'leases',
    kind: 'Lease',
    namespaced: true,
  }),
  builtin({
    group: 'apiextensions.k8s.io',
    version: 'v1',
    resource: 'customresourcedefinitions',
    kind: 'CustomResourceDefinition',
    namespaced: false,
    shortNames: ['crd', 'crds'],
    status: true,
    returnDeleted: true,
    generation: true,
  }),
  builtin({ group: RBAC, version: 'v1', resource: 'roles', kind: 'Role', namespaced: true }),
  builtin({
    group: RBAC,
    version: 'v1',
    resource: 'rolebindings',
    kind: 'RoleBinding',
    namespaced: true,
  }),
  builtin({
    group: RBAC,
    version: 'v1',
    resource: 'clusterroles',
    kind: 'ClusterRole',
    namespaced: false,
  }),
  builtin({
    group: RBAC,
    version: 'v1',
    resource: 'clusterrolebindings',
    kind: 'ClusterRoleBinding',
    namespaced: false,
  }),
];

/** The resource types a CRD serves: one per served version. */
export function typesFromCrd(crd: JsonObject): ResourceType[] {
  const spec = isObject(crd.spec) ? crd.spec : {};
  const names = isObject(spec.names) ? spec.names : {};
  const group = str(spec.group);
  const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObject) : [];
  return versions
    .filter((v) => v.served !== false)
    .map((v) => {
      const subresources = isObject(v.subresources) ? v.subresources : {};
      const validation = isObject(v.schema) ? v.schema : {};
      const kind = str(names.kind);
      const t: ResourceType = {
        group,
        version: str(v.name),
        resource: str(names.plural),
        singular: str(names.singular) || kind.toLowerCase(),
        kind,
        listKind: str(names.listKind) || `${kind}List`,
        namespaced: str(spec.scope) !== 'Cluster',
        shortNames: strList(names.shortNames),
        categories: strList(names.categories),
        statusSubresource: isObject(subresources.status),
        custom: true,
        returnDeletedObject: true,
        statusOnCreate: !isObject(subresources.status),
        generation: true,
      };
      if (isObject(validation.openAPIV3Schema)) t.schema = validation.openAPIV3Schema;
      if (Array.isArray(v.additionalPrinterColumns)) {
        t.printerColumns = v.additionalPrinterColumns.filter(isObject);
      }
      return t;
    });
}

/** All types served now, by group, version and plural. */
export class ResourceRegistry {
  readonly #types = new Map<string, ResourceType>();

  constructor() {
    for (const t of BUILTIN_TYPES) this.add(t);
  }

  add(t: ResourceType): void {
    this.#types.set(`${t.group}/${t.version}/${t.resource}`, t);
  }

  removeGroupResource(group: string, resource: string): void {
    for (const [key, t] of this.#types) {
      if (t.custom && t.group === group && t.resource === resource) this.#types.delete(key);
    }
  }

  find(group: string, version: string, resource: string): ResourceType | undefined {
    return this.#types.get(`${group}/${version}/${resource}`);
  }

  all(): ResourceType[] {
    return [...this.#types.values()];
  }

  /** Finds the type for a manifest's apiVersion and kind. */
  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    return this.all().find((t) => apiVersionOf(t) === apiVersion && t.kind === kind);
  }
}
