// Where a registry's images are looked up: its own endpoint, and the mirrors configured for it,
// in order, with an optional path rewrite — containerd's hosts.toml and CRI-O's
// registries.conf, reduced to what resolution needs. Also how trust is configured per registry
// (CA bundle, or plain HTTP when insecure), and which failures move on to the next endpoint.

import { PrepullError, type ErrorCode } from '../errors.ts';
import { DOCKER_HUB_REGISTRY, registryApiHost } from '../image/reference.ts';

/** How prepull reaches one registry host (keyed by host[:port] as references write it). */
export interface RegistryHostConfig {
  /** Plain HTTP instead of HTTPS. Only for registries on a network you trust. */
  readonly insecure?: boolean;
  /** PEM CA bundle trusted for this registry (and its token service) besides the system's. */
  readonly ca?: string;
}

export type RegistryHostsConfig = Readonly<Record<string, RegistryHostConfig>>;

export interface MirrorEndpointConfig {
  /**
   * "https://mirror.example.com", "http://10.0.0.5:5000" (plain HTTP: the scheme is the
   * configuration), or "mirror.example.com:5000" (HTTPS unless `insecure`). A path is the API's
   * base, as in "https://artifactory.example.com/artifactory/api/docker/hub" (a trailing /v2
   * is allowed).
   */
  readonly url: string;
  /** Prepended to the repository: "dockerhub" maps library/nginx to dockerhub/library/nginx. */
  readonly pathPrefix?: string;
  readonly insecure?: boolean;
  readonly ca?: string;
}

export interface RegistryMirrorConfig {
  /** Tried in order, before the registry itself. */
  readonly endpoints: readonly MirrorEndpointConfig[];
  /** Try the registry itself after every mirror failed. Default true; false for air gaps. */
  readonly fallbackToUpstream?: boolean;
}

/** Mirrors by registry, keyed as references write it: "docker.io", "quay.io", "host:5000". */
export type MirrorConfig = Readonly<Record<string, RegistryMirrorConfig>>;

/** One place to ask. */
export interface Endpoint {
  /** host[:port]: what requests are counted and limited by. */
  readonly host: string;
  /** scheme://host[:port][/base], no trailing slash; requests go to `${baseUrl}/v2/…`. */
  readonly baseUrl: string;
  /** '' or 'prefix/': prepended to repository names. */
  readonly repositoryPrefix: string;
  readonly insecure: boolean;
  readonly ca?: string;
  readonly mirror: boolean;
}

/**
 * The endpoints to try for `registry`, in order: its mirrors, then (unless
 * `fallbackToUpstream: false`) the registry itself.
 */
export function endpointsFor(
  registry: string,
  mirrors: MirrorConfig | undefined,
  hosts: RegistryHostsConfig | undefined,
): Endpoint[] {
  const config = lookup(mirrors, registry);
  const upstream = upstreamEndpoint(registry, hosts);
  if (config === undefined) return [upstream];
  const endpoints = config.endpoints.map((e, i) => mirrorEndpoint(registry, e, i));
  return config.fallbackToUpstream === false ? endpoints : [...endpoints, upstream];
}

export function upstreamEndpoint(
  registry: string,
  hosts: RegistryHostsConfig | undefined,
): Endpoint {
  const host = registryApiHost({ registry });
  const config = lookup(hosts, registry) ?? lookup(hosts, host) ?? {};
  const insecure = config.insecure === true;
  return {
    host,
    baseUrl: `${insecure ? 'http' : 'https'}://${host}`,
    repositoryPrefix: '',
    insecure,
    ...(config.ca === undefined ? {} : { ca: config.ca }),
    mirror: false,
  };
}

/** Checks a whole mirror configuration up front; ERR_USAGE naming the bad entry. */
export function validateMirrorConfig(mirrors: MirrorConfig): void {
  for (const [registry, config] of Object.entries(mirrors)) {
    if (config.endpoints.length === 0 && config.fallbackToUpstream === false) {
      throw configError(registry, 'has no endpoints and does not fall back to the registry');
    }
    config.endpoints.forEach((endpoint, i) => mirrorEndpoint(registry, endpoint, i));
  }
}

function mirrorEndpoint(registry: string, config: MirrorEndpointConfig, index: number): Endpoint {
  const where = `mirror ${index + 1} (${JSON.stringify(config.url)})`;
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(config.url);
  let url: URL;
  try {
    url = new URL(
      hasScheme ? config.url : `${config.insecure === true ? 'http' : 'https'}://${config.url}`,
    );
  } catch {
    throw configError(registry, `${where} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw configError(registry, `${where} must be http:// or https://`);
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw configError(registry, `${where} must not hold credentials, a query or a fragment`);
  }
  const base = url.pathname.replace(/\/+$/, '').replace(/\/v2$/, '');
  const prefix = (config.pathPrefix ?? '').replace(/^\/+|\/+$/g, '');
  return {
    host: url.host,
    baseUrl: `${url.protocol}//${url.host}${base}`,
    repositoryPrefix: prefix === '' ? '' : `${prefix}/`,
    insecure: url.protocol === 'http:',
    ...(config.ca === undefined ? {} : { ca: config.ca }),
    mirror: true,
  };
}

function configError(registry: string, problem: string): PrepullError {
  return new PrepullError(
    'ERR_USAGE',
    `the mirror configuration for ${JSON.stringify(registry)} ${problem}`,
  );
}

// Docker Hub answers to several names; configuration may use any of them.
function lookup<T>(map: Readonly<Record<string, T>> | undefined, registry: string): T | undefined {
  if (map === undefined) return undefined;
  if (Object.hasOwn(map, registry)) return map[registry];
  if (registry === DOCKER_HUB_REGISTRY) {
    for (const alias of ['index.docker.io', 'registry-1.docker.io']) {
      if (Object.hasOwn(map, alias)) return map[alias];
    }
  }
  return undefined;
}

/** The caller gave up: no other endpoint is tried. */
const FINAL: ReadonlySet<ErrorCode> = new Set(['ERR_ABORTED', 'ERR_DEADLINE_EXCEEDED']);
const NOT_FOUND: ReadonlySet<ErrorCode> = new Set([
  'ERR_IMAGE_NOT_FOUND',
  'ERR_REPOSITORY_NOT_FOUND',
]);

/**
 * Whether a failure at one endpoint moves on to the next. Every registry failure does — a
 * mirror that is down, refuses us, lacks the image or errs must not block an image the next
 * endpoint has, as in containerd and CRI-O — but not the caller's own cancellation.
 */
export function triesNextEndpoint(error: unknown): boolean {
  return error instanceof PrepullError && !FINAL.has(error.code);
}

export interface EndpointFailure {
  readonly endpoint: Endpoint;
  readonly error: PrepullError;
}

/**
 * The one error to report when every endpoint failed: the registry's own when it was asked
 * (it is the authority on the image); otherwise, as containerd does, the first that is not
 * "not found" — a mirror being down says more than another lacking the image — else the first.
 * Its message lists what each endpoint said.
 */
export function combineFailures(failures: readonly EndpointFailure[]): PrepullError {
  const first = failures[0];
  if (first === undefined) throw new Error('combineFailures: no failures');
  if (failures.length === 1) return first.error;
  const upstream = failures.find((f) => !f.endpoint.mirror);
  const chosen = upstream ?? failures.find((f) => !NOT_FOUND.has(f.error.code)) ?? first;
  const others = failures
    .filter((f) => f !== chosen)
    .map((f) => `${describeEndpoint(f.endpoint)}: ${f.error.code}`)
    .join('; ');
  return new PrepullError(chosen.error.code, `${chosen.error.message} (also tried ${others})`, {
    cause: chosen.error,
  });
}

export function describeEndpoint(endpoint: Endpoint): string {
  const prefix = endpoint.repositoryPrefix === '' ? '' : ` (prefix ${endpoint.repositoryPrefix})`;
  return `${endpoint.mirror ? 'mirror ' : ''}${endpoint.baseUrl}${prefix}`;
}
