// `prepull audit --kubeconfig`: the same rules over what runs in a cluster. Reads workloads, Pods,
// PrePulls and NodeImageCaches with GET requests only (list, paginated as kubectl does), builds
// the same container sites as the file mode, located by API path, and explains each container in
// ErrImageNeverPull from its node's NodeImageCache. Loaded only by live mode: `audit -f` never
// reaches the Kubernetes client.
import type { CachedImage } from '../api/nodeimagecache.ts';
import { API_VERSION, KIND as PREPULL_KIND } from '../api/prepull.ts';
import type { KubeRequester } from '../kube/client.ts';
import { type AuditOptions, type AuditReport, reportOn } from './audit.ts';
import {
  type ContainerSite,
  type ContainerType,
  emptyManifests,
  type Manifests,
  POD_SPEC_PATHS,
  readApiObject,
  readApiPrePull,
} from './manifests.ts';
import { explainNeverPull, type Finding, type Listed, type NodeImageEntry } from './rules.ts';

export interface LiveOptions extends Pick<AuditOptions, 'airGapped'> {
  /** Only workloads and Pods of this namespace; PrePulls and NodeImageCaches are cluster-wide. */
  namespace?: string;
  /** The API server's URL, for the summary. */
  cluster: string;
}

/** The kinds audited, in the order read; a Pod or workload owned by one of them is skipped. */
export const LIVE_KINDS = [
  { kind: 'Pod', group: '', resource: 'pods' },
  { kind: 'Deployment', group: 'apps', resource: 'deployments' },
  { kind: 'ReplicaSet', group: 'apps', resource: 'replicasets' },
  { kind: 'StatefulSet', group: 'apps', resource: 'statefulsets' },
  { kind: 'DaemonSet', group: 'apps', resource: 'daemonsets' },
  { kind: 'Job', group: 'batch', resource: 'jobs' },
  { kind: 'CronJob', group: 'batch', resource: 'cronjobs' },
] as const;

/** kubectl's page size for lists. */
export const PAGE_SIZE = 500;

const PREPULLS = `/apis/${API_VERSION}/prepulls`;
const NODE_IMAGE_CACHES = `/apis/${API_VERSION}/nodeimagecaches`;

type Item = Record<string, unknown>;

interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  ownerReferences?: { uid?: string; controller?: boolean }[];
}

interface ListBody {
  items?: Item[];
  metadata?: { continue?: string };
}

function metaOf(item: Item): ObjectMeta {
  const m = item.metadata;
  return typeof m === 'object' && m !== null ? m : {};
}

function groupPath(group: string): string {
  return group === '' ? '/api/v1' : `/apis/${group}/v1`;
}

function collection(group: string, resource: string, namespace?: string): string {
  const ns = namespace === undefined ? '' : `/namespaces/${namespace}`;
  return `${groupPath(group)}${ns}/${resource}`;
}

/** Every item of a collection, page by page (`limit`, `continue`). */
export async function listAll(kube: KubeRequester, path: string): Promise<Item[]> {
  const items: Item[] = [];
  let token: string | undefined;
  do {
    const body = await kube.request<ListBody>('GET', path, {
      query: { limit: String(PAGE_SIZE), continue: token },
    });
    items.push(...(body.items ?? []));
    token = body.metadata?.continue === '' ? undefined : body.metadata?.continue;
  } while (token !== undefined);
  return items;
}

interface Read {
  path: string;
  kind: string;
  group: string;
  resource: string;
  items: Item[];
}

/** Lists each path; a list that fails is an input problem, the others are still audited. */
async function readLists(
  kube: KubeRequester,
  wanted: readonly Omit<Read, 'items'>[],
  into: Manifests,
): Promise<Read[]> {
  const results = await Promise.all(
    wanted.map(async (w) => {
      try {
        return { ...w, items: await listAll(kube, w.path) };
      } catch (error) {
        return { file: w.path, message: (error as Error).message };
      }
    }),
  );
  // Problems in the order asked, whatever order the answers came in.
  for (const r of results) if (!('items' in r)) into.problems.push(r);
  return results.filter((r) => 'items' in r);
}

function objectPath(read: Read, item: Item): string {
  const m = metaOf(item);
  return `${collection(read.group, read.resource, m.namespace)}/${m.name ?? ''}`;
}

/** Whether a controller among those read owns the object (so its template is audited there). */
function ownedByAudited(item: Item, audited: ReadonlySet<string>): boolean {
  return (metaOf(item).ownerReferences ?? []).some(
    (o) => o.controller === true && o.uid !== undefined && audited.has(o.uid),
  );
}

const STATUS_FIELDS: readonly (readonly [string, ContainerType])[] = [
  ['initContainerStatuses', 'initContainer'],
  ['containerStatuses', 'container'],
  ['ephemeralContainerStatuses', 'ephemeralContainer'],
];

interface ContainerStatus {
  name?: string;
  image?: string;
  state?: { waiting?: { reason?: string } };
}

interface NeverPull {
  site: ContainerSite;
  node: string;
}

/** The containers of a Pod waiting in ErrImageNeverPull, with the Pod's node. */
function neverPulls(pod: Item, file: string): NeverPull[] {
  const sites = emptyManifests();
  readApiObject(pod, POD_SPEC_PATHS.Pod ?? ['spec'], file, sites);
  const spec = (pod.spec ?? {}) as { nodeName?: string };
  const status = (pod.status ?? {}) as Record<string, ContainerStatus[] | undefined>;
  const found: NeverPull[] = [];
  for (const [field, containerType] of STATUS_FIELDS) {
    for (const s of status[field] ?? []) {
      if (s.state?.waiting?.reason !== 'ErrImageNeverPull') continue;
      const site = sites.containers.find(
        (c) => c.containerType === containerType && c.container === s.name,
      );
      const base: ContainerSite = site ?? {
        file,
        object: `Pod ${metaOf(pod).namespace ?? ''}/${metaOf(pod).name ?? ''}`,
        container: s.name ?? '',
        containerType,
        image: s.image,
        imagePullPolicy: undefined,
        placement: { nodeSelector: {} },
      };
      found.push({ site: base, node: spec.nodeName ?? '' });
    }
  }
  return found;
}

function cachesByNode(items: readonly Item[]): Map<string, NodeImageEntry[]> {
  const caches = new Map<string, NodeImageEntry[]>();
  for (const item of items) {
    const node = (item.spec as { nodeName?: string } | undefined)?.nodeName ?? metaOf(item).name;
    const images = (item.status as { images?: CachedImage[] } | undefined)?.images ?? [];
    if (node !== undefined) caches.set(node, images);
  }
  return caches;
}

/**
 * Audits the cluster `kube` reaches: every Pod and workload (those owned by another audited
 * object are left to their owner, so a Deployment's Pods are not reported three times) against
 * the cluster's PrePulls, then every container in ErrImageNeverPull against its node's
 * NodeImageCache.
 */
export async function auditCluster(
  kube: KubeRequester,
  options: LiveOptions,
): Promise<AuditReport> {
  const manifests = emptyManifests();
  const [workloads, prePulls, caches] = await Promise.all([
    readLists(
      kube,
      LIVE_KINDS.map((k) => ({ ...k, path: collection(k.group, k.resource, options.namespace) })),
      manifests,
    ),
    readLists(
      kube,
      [{ kind: PREPULL_KIND, group: 'prepull.dev', resource: 'prepulls', path: PREPULLS }],
      manifests,
    ),
    readLists(
      kube,
      [
        {
          kind: 'NodeImageCache',
          group: 'prepull.dev',
          resource: 'nodeimagecaches',
          path: NODE_IMAGE_CACHES,
        },
      ],
      manifests,
    ),
  ]);
  for (const item of prePulls.flatMap((r) => r.items)) {
    const m = metaOf(item);
    readApiPrePull(
      { ...item, apiVersion: API_VERSION, kind: PREPULL_KIND },
      `${PREPULLS.replace('/prepulls', '')}/namespaces/${m.namespace ?? ''}/prepulls/${m.name ?? ''}`,
      manifests,
    );
  }
  const audited = new Set(
    workloads.flatMap((r) => r.items.map((item) => metaOf(item).uid ?? '')).filter((u) => u !== ''),
  );
  const failing: NeverPull[] = [];
  for (const read of workloads) {
    const path = POD_SPEC_PATHS[read.kind] ?? [];
    for (const item of read.items) {
      const file = objectPath(read, item);
      if (read.kind === 'Pod') failing.push(...neverPulls({ ...item, kind: 'Pod' }, file));
      if (ownedByAudited(item, audited)) continue;
      readApiObject({ ...item, kind: read.kind }, path, file, manifests);
    }
  }
  const nodes = cachesByNode(caches.flatMap((r) => r.items));
  const explain = (listed: Listed[]): Finding[] =>
    failing.map((f) => explainNeverPull(f.site, f.node, listed, nodes));
  return reportOn(manifests, options, { files: 0, cluster: options.cluster }, explain);
}
