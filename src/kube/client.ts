// The agent's connection to the Kubernetes API, on @kubernetes/client-node: its KubeConfig
// (kubeconfig file or in-cluster service account, with token refresh), its Watch and its ListWatch
// informer. Plain REST calls go through the same authentication as the watches. Only the pieces
// the agent uses are imported (deep paths), never the generated API clients: a DaemonSet pays for
// every module it loads (the whole package costs 128 MiB resident on Node 24; ADR 0006).
import { ListWatch } from '@kubernetes/client-node/dist/cache.js';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { HttpMethod, RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import { Watch } from '@kubernetes/client-node/dist/watch.js';
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node/dist/types.js';
import { fetch } from 'undici';
import { type ErrorCode, PrepullError } from '../errors.ts';

export type { KubernetesObject };

/** A coded error carrying the API server's HTTP status and Status reason. */
export class KubeApiError extends PrepullError {
  readonly status: number;
  readonly reason: string;

  constructor(
    code: ErrorCode,
    message: string,
    details: { status: number; reason: string; cause?: unknown },
  ) {
    super(code, message, details.cause === undefined ? {} : { cause: details.cause });
    this.status = details.status;
    this.reason = details.reason;
  }
}

export function isKubeApiError(value: unknown, status?: number): value is KubeApiError {
  return value instanceof KubeApiError && (status === undefined || value.status === status);
}

export interface RequestOptions {
  query?: Record<string, string | undefined>;
  body?: unknown;
  /** Content type of the body (default application/json), e.g. a patch type. */
  contentType?: string;
  signal?: AbortSignal;
}

/** What the agent's Kubernetes-facing parts need: one authenticated request. Owned here, implemented by KubeClient. */
export interface KubeRequester {
  request<T>(method: Method, path: string, options?: RequestOptions): Promise<T>;
}

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** An informer over one resource path: client-node's ListWatch. */
export interface Informer<T extends KubernetesObject> {
  start(): Promise<void>;
  stop(): Promise<void>;
  list(): readonly T[];
  on(event: 'add' | 'update' | 'delete', callback: (object: T) => void): void;
  on(event: 'error', callback: (error: unknown) => void): void;
}

const METHODS: Record<Method, HttpMethod> = {
  GET: HttpMethod.GET,
  POST: HttpMethod.POST,
  PUT: HttpMethod.PUT,
  PATCH: HttpMethod.PATCH,
  DELETE: HttpMethod.DELETE,
};

function codeForStatus(status: number): ErrorCode {
  if (status === 401 || status === 403) return 'ERR_KUBE_FORBIDDEN';
  if (status === 404) return 'ERR_KUBE_NOT_FOUND';
  if (status === 409) return 'ERR_KUBE_CONFLICT';
  if (status === 400 || status === 422) return 'ERR_KUBE_INVALID';
  return 'ERR_KUBE_UNAVAILABLE';
}

interface StatusBody {
  message?: unknown;
  reason?: unknown;
}

async function apiError(
  method: string,
  path: string,
  response: { status: number; text(): Promise<string> },
): Promise<KubeApiError> {
  const text = await response.text().catch(() => '');
  let body: StatusBody = {};
  try {
    body = JSON.parse(text) as StatusBody;
  } catch {
    // Not a Status object (a proxy's page, say): the HTTP status says enough.
  }
  const detail =
    typeof body.message === 'string' && body.message !== ''
      ? body.message
      : `HTTP ${response.status}`;
  return new KubeApiError(
    codeForStatus(response.status),
    `${method} ${path}: ${detail.slice(0, 500)}`,
    {
      status: response.status,
      reason: typeof body.reason === 'string' ? body.reason : '',
    },
  );
}

/** KubeConfig's (private, so reached by name) factory of the undici dispatcher each request uses. */
interface DispatcherFactory {
  createDispatcher?: (cluster: unknown, agentOptions: unknown) => unknown;
}

/**
 * client-node builds a new undici Agent — a new connection pool, so a new TLS connection and
 * handshake on both sides — for every request and every watch it authenticates
 * (applySecurityAuthentication → createDispatcher): 50 requests in a row opened 50 TLS
 * connections. Keep one per TLS configuration instead, so requests reuse keep-alive connections
 * (the same 50 open 2); TLS set-up was the agents' largest CPU cost in bench/fleet.bench.ts. The
 * token, a header, is still read for every request.
 */
function reuseDispatcher(config: KubeConfig): void {
  const factory = config as unknown as DispatcherFactory;
  const create = factory.createDispatcher?.bind(config);
  if (create === undefined) return;
  let cached: { key: string; dispatcher: unknown } | undefined;
  factory.createDispatcher = (cluster, agentOptions) => {
    const key = optionsKey(
      config.createDispatcherOptions(
        cluster as Parameters<KubeConfig['createDispatcherOptions']>[0],
        agentOptions as Parameters<KubeConfig['createDispatcherOptions']>[1],
      ),
    );
    if (cached?.key !== key) cached = { key, dispatcher: create(cluster, agentOptions) };
    return cached.dispatcher;
  };
}

/** The dispatcher options as a string: PEM buffers as base64 (JSON would spell out every byte). */
function optionsKey(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (Array.isArray(value)) return `[${value.map(optionsKey).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).map(([k, v]) => `${k}:${optionsKey(v)}`);
    return `{${entries.join(',')}}`;
  }
  return value === undefined ? 'undefined' : JSON.stringify(value);
}

export class KubeClient implements KubeRequester {
  readonly config: KubeConfig;
  readonly #watch: Watch;

  private constructor(config: KubeConfig) {
    this.config = config;
    reuseDispatcher(config);
    this.#watch = new Watch(config);
  }

  /** From a kubeconfig file, or (without one) the in-cluster service account. */
  static load(kubeconfig?: string): KubeClient {
    const config = new KubeConfig();
    try {
      if (kubeconfig === undefined) config.loadFromCluster();
      else config.loadFromFile(kubeconfig);
    } catch (cause) {
      throw new PrepullError(
        'ERR_KUBE_CONFIG',
        kubeconfig === undefined
          ? 'cannot load the in-cluster configuration (service account token and KUBERNETES_SERVICE_HOST); pass --kubeconfig outside a Pod'
          : `--kubeconfig ${kubeconfig}: cannot load it`,
        { cause },
      );
    }
    const cluster = config.getCurrentCluster();
    if (cluster === null || cluster.server === '') {
      throw new PrepullError(
        'ERR_KUBE_CONFIG',
        kubeconfig === undefined
          ? 'the in-cluster configuration names no API server (is KUBERNETES_SERVICE_HOST set?)'
          : `--kubeconfig ${kubeconfig}: the current context names no cluster server`,
      );
    }
    return new KubeClient(config);
  }

  get server(): string {
    return this.config.getCurrentCluster()?.server ?? '';
  }

  async request<T>(method: Method, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(this.server.replace(/\/$/, '') + path);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, value);
    }
    const context = new RequestContext(url.toString(), METHODS[method]);
    await this.config.applySecurityAuthentication(context);
    const headers: Record<string, string> = { ...context.getHeaders(), accept: 'application/json' };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json';
      body = JSON.stringify(options.body);
    }
    const dispatcher = context.getDispatcher();
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        ...(dispatcher !== undefined ? { dispatcher } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
      });
    } catch (cause) {
      throw new KubeApiError(
        'ERR_KUBE_UNAVAILABLE',
        `${method} ${path}: cannot reach the API server ${url.origin}`,
        { status: 0, reason: '', cause },
      );
    }
    if (!response.ok) throw await apiError(method, path, response);
    return (await response.json()) as T;
  }

  /**
   * client-node's ListWatch over `path` (a collection URL). It lists, then watches from the
   * list's resourceVersion, re-lists on 410 Gone and reconnects after a normal close; after any
   * other error it stops and fires `error` — the caller restarts it (upstream src/cache.ts and its
   * test "does not auto-restart after an error").
   */
  informer<T extends KubernetesObject>(
    path: string,
    selectors: { labelSelector?: string; fieldSelector?: string } = {},
  ): Informer<T> {
    const list = (): Promise<KubernetesListObject<T>> =>
      this.request<KubernetesListObject<T>>('GET', path, {
        query: { labelSelector: selectors.labelSelector, fieldSelector: selectors.fieldSelector },
      });
    const informer = new ListWatch<T>(
      path,
      this.#watch,
      list,
      false,
      selectors.labelSelector,
      selectors.fieldSelector,
    );
    return {
      start: () => informer.start(),
      stop: () => informer.stop(),
      list: () => informer.list(),
      on: (event: 'add' | 'update' | 'delete' | 'error', callback: (value: never) => void) => {
        informer.on(event as 'add', callback as (object: T) => void);
      },
    };
  }
}
