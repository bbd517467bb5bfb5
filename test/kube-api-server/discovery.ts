// Discovery documents (/api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>, /version)
// in the legacy, non-aggregated shapes every client understands.
import type { JsonObject } from './json.ts';
import { apiVersionOf, type ResourceRegistry, type ResourceType } from './resources.ts';

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function resourceEntries(t: ResourceType): JsonObject[] {
  const entry: JsonObject = {
    name: t.resource,
    singularName: t.singular,
    namespaced: t.namespaced,
    kind: t.kind,
    verbs: VERBS,
  };
  if (t.shortNames.length > 0) entry.shortNames = t.shortNames;
  if (t.categories.length > 0) entry.categories = t.categories;
  const out = [entry];
  if (t.statusSubresource) {
    out.push({
      name: `${t.resource}/status`,
      singularName: '',
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: ['get', 'patch', 'update'],
    });
  }
  return out;
}

function groupEntry(group: string, versions: string[]): JsonObject {
  const list = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { name: group, versions: list, preferredVersion: list[0]! };
}

export class Discovery {
  readonly #types: ResourceRegistry;
  readonly #address: () => string;

  constructor(types: ResourceRegistry, address: () => string) {
    this.#types = types;
    this.#address = address;
  }

  #groups(): Map<string, string[]> {
    const groups = new Map<string, string[]>();
    for (const t of this.#types.all()) {
      if (t.group === '') continue;
      const versions = groups.get(t.group) ?? [];
      if (!versions.includes(t.version)) versions.push(t.version);
      groups.set(t.group, versions);
    }
    return groups;
  }

  /** The document for a path under /api or /apis, or undefined when there is none. */
  document(prefix: 'api' | 'apis', parts: string[]): JsonObject | undefined {
    if (prefix === 'api') {
      if (parts.length === 0) {
        return {
          kind: 'APIVersions',
          versions: ['v1'],
          serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: this.#address() }],
        };
      }
      return parts.length === 1 && parts[0] === 'v1' ? this.#resourceList('', 'v1') : undefined;
    }
    const groups = this.#groups();
    if (parts.length === 0) {
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [...groups].map(([g, v]) => groupEntry(g, v)),
      };
    }
    const versions = groups.get(parts[0]!);
    if (versions === undefined) return undefined;
    if (parts.length === 1)
      return { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(parts[0]!, versions) };
    if (parts.length === 2 && versions.includes(parts[1]!))
      return this.#resourceList(parts[0]!, parts[1]!);
    return undefined;
  }

  #resourceList(group: string, version: string): JsonObject {
    const types = this.#types.all().filter((t) => t.group === group && t.version === version);
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: apiVersionOf({ group, version }),
      resources: types.flatMap(resourceEntries),
    };
  }
}

export const VERSION_INFO = {
  major: '1',
  minor: '34',
  gitVersion: 'v1.34.0-prepull-test',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'go1.24.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};
