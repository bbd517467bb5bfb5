// RBAC authorization over the Roles, ClusterRoles and bindings in the store, as the
// rbac.authorization.k8s.io authorizer decides, with kube-apiserver's forbidden wording.
import { isObject, meta, str, strList, type JsonObject } from './json.ts';
import type { UserInfo } from './identity.ts';
import type { Store } from './store.ts';

export interface Attributes {
  verb: string;
  /** Resource requests: group, resource, subresource, namespace, name. */
  resourceRequest: boolean;
  group: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  /** Non-resource requests. */
  path: string;
}

const RBAC = 'rbac.authorization.k8s.io';

/** Discovery and health paths bootstrap ClusterRoles grant to everyone (system:discovery etc.). */
const PUBLIC_PATHS = ['/api', '/apis', '/version', '/healthz', '/livez', '/readyz', '/openapi'];

function ruleAllows(rule: JsonObject, a: Attributes): boolean {
  const verbs = strList(rule.verbs);
  if (!verbs.includes('*') && !verbs.includes(a.verb)) return false;
  if (!a.resourceRequest) {
    return strList(rule.nonResourceURLs).some(
      (u) => u === '*' || u === a.path || (u.endsWith('*') && a.path.startsWith(u.slice(0, -1))),
    );
  }
  const groups = strList(rule.apiGroups);
  if (!groups.includes('*') && !groups.includes(a.group)) return false;
  const full = a.subresource === '' ? a.resource : `${a.resource}/${a.subresource}`;
  const resources = strList(rule.resources);
  const resourceOk = resources.some(
    (r) => r === '*' || r === full || (a.subresource !== '' && r === `*/${a.subresource}`),
  );
  if (!resourceOk) return false;
  const names = strList(rule.resourceNames);
  return names.length === 0 || names.includes(a.name);
}

function subjectMatches(subject: JsonObject, user: UserInfo, bindingNamespace: string): boolean {
  const kind = str(subject.kind);
  const name = str(subject.name);
  if (kind === 'User') return name === user.name;
  if (kind === 'Group') return user.groups.includes(name);
  if (kind === 'ServiceAccount') {
    const ns = str(subject.namespace) || bindingNamespace;
    return user.name === `system:serviceaccount:${ns}:${name}`;
  }
  return false;
}

export class Authorizer {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  #rulesOf(roleRef: JsonObject, bindingNamespace: string): JsonObject[] {
    const kind = str(roleRef.kind);
    const name = str(roleRef.name);
    const role =
      kind === 'ClusterRole'
        ? this.#store.get(`${RBAC}/clusterroles`, '', name)
        : this.#store.get(`${RBAC}/roles`, bindingNamespace, name);
    const rules = role?.rules;
    return Array.isArray(rules) ? rules.filter(isObject) : [];
  }

  #bound(binding: JsonObject, user: UserInfo): boolean {
    const ns = str(meta(binding).namespace);
    const subjects = Array.isArray(binding.subjects) ? binding.subjects.filter(isObject) : [];
    return subjects.some((s) => subjectMatches(s, user, ns));
  }

  allowed(user: UserInfo, a: Attributes): boolean {
    if (user.groups.includes('system:masters')) return true;
    if (!a.resourceRequest && a.verb === 'get' && isPublic(a.path)) return true;
    for (const crb of this.#store.list(`${RBAC}/clusterrolebindings`)) {
      if (!this.#bound(crb, user) || !isObject(crb.roleRef)) continue;
      if (this.#rulesOf(crb.roleRef, '').some((r) => ruleAllows(r, a))) return true;
    }
    if (!a.resourceRequest || a.namespace === '') return false;
    for (const rb of this.#store.list(`${RBAC}/rolebindings`, a.namespace)) {
      if (!this.#bound(rb, user) || !isObject(rb.roleRef)) continue;
      if (this.#rulesOf(rb.roleRef, a.namespace).some((r) => ruleAllows(r, a))) return true;
    }
    return false;
  }
}

function isPublic(path: string): boolean {
  return PUBLIC_PATHS.some((p) => path === p || path.startsWith(`${p}/`));
}

/** The reason text of kube-apiserver's forbidden responses (responsewriters.forbiddenMessage). */
export function forbiddenMessage(user: UserInfo, a: Attributes): string {
  const who = `User "${user.name}"`;
  if (!a.resourceRequest) return `${who} cannot ${a.verb} path "${a.path}"`;
  const resource = a.subresource === '' ? a.resource : `${a.resource}/${a.subresource}`;
  const scope = a.namespace === '' ? 'at the cluster scope' : `in the namespace "${a.namespace}"`;
  return `${who} cannot ${a.verb} resource "${resource}" in API group "${a.group}" ${scope}`;
}
