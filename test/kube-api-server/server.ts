// The Kubernetes API test server: wires store, types, objects, controllers, authorization,
// watches, faults and accounting behind an HTTPS listener, and gives tests their handles
// (identities, kubeconfigs, manifests, faults, accounting).
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Accounting } from './accounting.ts';
import { installCrdController } from './crds.ts';
import { Discovery } from './discovery.ts';
import { Faults } from './faults.ts';
import { GarbageCollector } from './gc.ts';
import { HttpHandler } from './http.ts';
import { Identities } from './identity.ts';
import { clone, isObject, meta, str, type JsonObject } from './json.ts';
import { Objects } from './objects.ts';
import { Authorizer } from './rbac.ts';
import { ResourceRegistry } from './resources.ts';
import { ApiError } from './status.ts';
import { Store } from './store.ts';
import { makeServerCa, writeKubeconfig, type TestCa } from './tls.ts';
import { WatchHub } from './watch.ts';

export interface KubeApiServerOptions {
  /** Port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Where the CA, certificates and kubeconfigs go; a fresh temporary directory by default. */
  dir?: string;
  /** Changes kept for watches to resume from (default 10,000). */
  historyLimit?: number;
  /** How often watches that asked for them get a BOOKMARK (default 60 s, as kube-apiserver). */
  bookmarkIntervalMs?: number;
  /** Watch length without timeoutSeconds, randomized up to twice this (default 1800 s). */
  watchTimeoutSeconds?: number;
}

const DEFAULT_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];
const ADMIN = { manager: 'kube-api-server-test', dryRun: false };

export class KubeApiServer {
  readonly store: Store;
  readonly objects: Objects;
  readonly identities = new Identities();
  readonly faults = new Faults();
  readonly accounting = new Accounting();
  readonly watches: WatchHub;
  readonly gc: GarbageCollector;
  readonly dir: string;
  readonly ca: TestCa;
  readonly adminToken: string;
  readonly #server: Server;
  readonly #ownsDir: boolean;

  private constructor(options: KubeApiServerOptions) {
    this.#ownsDir = options.dir === undefined;
    this.dir = options.dir ?? mkdtempSync(join(tmpdir(), 'kube-api-server-'));
    this.ca = makeServerCa(join(this.dir, 'pki'));
    this.store = new Store({ historyLimit: options.historyLimit ?? 10_000 });
    this.objects = new Objects(this.store, new ResourceRegistry());
    installCrdController(this.objects);
    this.gc = new GarbageCollector(this.objects);
    this.watches = new WatchHub(this.objects, {
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
    });
    this.faults.dropWatchesHook = () => this.watches.dropAll();
    this.faults.compactHook = () => {
      this.store.compact();
    };
    this.adminToken = this.identities.addUser('kubernetes-admin', ['system:masters']);
    const handler = new HttpHandler({
      objects: this.objects,
      identities: this.identities,
      authorizer: new Authorizer(this.store),
      discovery: new Discovery(this.objects.types, () => `127.0.0.1:${this.port}`),
      watches: this.watches,
      faults: this.faults,
      accounting: this.accounting,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 1800,
    });
    this.#server = createServer(
      { cert: readFileSync(this.ca.certFile), key: readFileSync(this.ca.keyFile), keepAlive: true },
      (req, res) => {
        handler.handle(req, res);
      },
    );
    for (const ns of DEFAULT_NAMESPACES)
      this.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  }

  static async start(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const server = new KubeApiServer(options);
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', reject);
      server.#server.listen(options.port ?? 0, '127.0.0.1', () => {
        resolve();
      });
    });
    return server;
  }

  get port(): number {
    const address = this.#server.address() as AddressInfo | null;
    return address?.port ?? 0;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** A kubeconfig for a bearer token; written to `file` (default under the server's dir). */
  kubeconfig(token: string, user: string, file?: string): string {
    const safe = user.replace(/[^A-Za-z0-9_.-]/g, '_');
    return writeKubeconfig(file ?? join(this.dir, `${safe}.kubeconfig`), {
      server: this.url,
      caPem: this.ca.caPem,
      token,
      user,
    });
  }

  adminKubeconfig(file?: string): string {
    return this.kubeconfig(this.adminToken, 'admin', file ?? join(this.dir, 'admin.kubeconfig'));
  }

  /**
   * Registers a ServiceAccount identity (and its object when the namespace exists) and writes
   * its kubeconfig, `<ns>.<name>.kubeconfig` under `dir`. Returns the file and token.
   */
  serviceAccount(
    namespace: string,
    name: string,
    dir = this.dir,
  ): { kubeconfig: string; token: string } {
    const token = this.identities.addServiceAccount(namespace, name);
    if (this.store.get('/namespaces', '', namespace) === undefined) {
      this.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
    }
    this.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } });
    const file = writeKubeconfig(join(dir, `${namespace}.${name}.kubeconfig`), {
      server: this.url,
      caPem: this.ca.caPem,
      token,
      user: `system:serviceaccount:${namespace}:${name}`,
      namespace,
    });
    return { kubeconfig: file, token };
  }

  /** Creates or replaces objects as the admin, like `kubectl apply` of full manifests. */
  apply(...docs: JsonObject[]): JsonObject[] {
    return docs.map((doc) => this.#applyOne(doc));
  }

  #applyOne(doc: JsonObject): JsonObject {
    const t = this.objects.types.byKind(str(doc.apiVersion), str(doc.kind));
    if (t === undefined) throw new Error(`no API serves ${str(doc.apiVersion)} ${str(doc.kind)}`);
    const m = meta(doc);
    const namespace = t.namespaced ? str(m.namespace) || 'default' : '';
    const live = this.store.get(`${t.group}/${t.resource}`, namespace, str(m.name));
    if (live === undefined) return this.objects.create(t, namespace, clone(doc), ADMIN);
    const body = clone(doc);
    meta(body).resourceVersion = str(meta(live).resourceVersion);
    const where = { namespace, name: str(m.name), subresource: '' };
    return this.objects.update(t, where, body, ADMIN);
  }

  /** Applies every document of the YAML files at `path` (a file or a directory, recursively). */
  applyManifests(path: string): JsonObject[] {
    const files = statSync(path).isDirectory()
      ? readdirSync(path, { recursive: true, encoding: 'utf8' })
          .filter((f) => /\.ya?ml$/.test(f))
          .sort()
          .map((f) => join(path, f))
      : [path];
    const docs = files.flatMap((f) =>
      parseAllDocuments(readFileSync(f, 'utf8')).map((d) => d.toJS() as unknown),
    );
    const objects = docs.flatMap((d) => (isObject(d) ? expandList(d) : []));
    // Namespaces and CRDs first, so what lives in them can follow.
    const rank = (o: JsonObject): number =>
      o.kind === 'Namespace' ? 0 : o.kind === 'CustomResourceDefinition' ? 1 : 2;
    return this.apply(
      ...objects.filter((o) => str(o.kind) !== 'Kustomization').sort((a, b) => rank(a) - rank(b)),
    );
  }

  /** Reads an object as the admin (undefined when absent). */
  get(apiVersion: string, kind: string, name: string, namespace = ''): JsonObject | undefined {
    const t = this.objects.types.byKind(apiVersion, kind);
    if (t === undefined) return undefined;
    try {
      return this.objects.get(t, namespace, name);
    } catch (error) {
      if (error instanceof ApiError && error.status.code === 404) return undefined;
      throw error;
    }
  }

  async stop(): Promise<void> {
    this.faults.clear();
    this.watches.dropAll();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
    if (this.#ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

function expandList(doc: JsonObject): JsonObject[] {
  if (str(doc.kind).endsWith('List') && Array.isArray(doc.items)) return doc.items.filter(isObject);
  return [doc];
}
