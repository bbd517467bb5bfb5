// Distribution-API client that pushes test images to a real registry. Test tooling only: kept
// apart from the product's registry client so a bug there cannot hide behind the same bug here.
import http from 'node:http';
import https from 'node:https';
import type { BuiltImage, BuiltIndex } from './images.ts';
import { OCI_INDEX, OCI_MANIFEST } from './images.ts';

export const MANIFEST_ACCEPT = [
  OCI_INDEX,
  'application/vnd.docker.distribution.manifest.list.v2+json',
  OCI_MANIFEST,
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface TestRegistryClientOptions {
  /** host:port, e.g. 127.0.0.1:5000. */
  readonly host: string;
  readonly scheme: 'http' | 'https';
  /** PEM bundle trusted for https (the registry's and the token realm's). */
  readonly ca?: string;
  readonly username?: string;
  readonly password?: string;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
}

interface Response {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

interface RequestOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer;
  /** The repository and access the request needs, for token auth. */
  readonly repo?: string;
}

interface CachedToken {
  readonly token: string;
  readonly expiresAt: number;
}

const BODY_EXCERPT = 300;

export class TestRegistryClient {
  /** Requests sent, by HTTP method (token fetches included as GET). */
  readonly requestCount: Record<string, number> = {};
  /** Every request sent, in order, so tests can pick out e.g. blob GETs. */
  readonly requests: RecordedRequest[] = [];

  readonly #base: URL;
  readonly #ca: string | undefined;
  readonly #basic: string | undefined;
  readonly #httpAgent = new http.Agent({ keepAlive: true });
  readonly #httpsAgent: https.Agent;
  readonly #tokens = new Map<string, CachedToken>();
  // Parallel blob uploads meet the same challenge at once; they share one token fetch.
  readonly #tokenFetches = new Map<string, Promise<string>>();
  // Which scope a (repo, method) was challenged with, so later requests send the token up front.
  readonly #scopeFor = new Map<string, string>();

  constructor(options: TestRegistryClientOptions) {
    this.#base = new URL(`${options.scheme}://${options.host}`);
    this.#ca = options.ca;
    this.#httpsAgent = new https.Agent({
      keepAlive: true,
      ...(options.ca === undefined ? {} : { ca: options.ca }),
    });
    if (options.username !== undefined || options.password !== undefined) {
      const pair = `${options.username ?? ''}:${options.password ?? ''}`;
      this.#basic = `Basic ${Buffer.from(pair).toString('base64')}`;
    }
  }

  /** Pushes blobs, then the manifest by digest and (if given) by tag; children before an index. */
  async push(
    repo: string,
    tag: string | undefined,
    image: BuiltImage | BuiltIndex,
  ): Promise<{ digest: string }> {
    if (image.mediaType === OCI_INDEX) {
      for (const child of image.images) await this.push(repo, undefined, child);
    } else {
      const blobs = new Map<string, Buffer>([[image.configDigest, image.config]]);
      for (const layer of image.layers) blobs.set(layer.digest, layer.blob);
      await Promise.all([...blobs].map(([digest, blob]) => this.pushBlob(repo, digest, blob)));
    }
    await this.putManifest(repo, image.digest, image);
    if (tag !== undefined) await this.putManifest(repo, tag, image);
    return { digest: image.digest };
  }

  /** HEAD then, if absent, POST + monolithic PUT. Returns whether it was uploaded. */
  async pushBlob(repo: string, digest: string, blob: Buffer): Promise<boolean> {
    const head = await this.#request('HEAD', `/v2/${repo}/blobs/${digest}`, { repo });
    if (head.status === 200) return false;
    if (head.status !== 404) throw this.#error('HEAD', `/v2/${repo}/blobs/${digest}`, head);

    const start = await this.#request('POST', `/v2/${repo}/blobs/uploads/`, { repo });
    const location = start.headers.location;
    if (start.status !== 202 || location === undefined) {
      throw this.#error('POST', `/v2/${repo}/blobs/uploads/`, start);
    }
    // Location may be relative or absolute and may already carry state in its query string.
    // Appended by hand: re-serialising through searchParams could re-encode the registry's state.
    const url = new URL(location, this.#base);
    const separator = url.search === '' ? '?' : '&';
    url.search = `${url.search}${separator}digest=${encodeURIComponent(digest)}`;
    const put = await this.#request('PUT', url, {
      repo,
      headers: { 'content-type': 'application/octet-stream' },
      body: blob,
    });
    if (put.status !== 201) throw this.#error('PUT', url.pathname, put);
    return true;
  }

  async putManifest(repo: string, ref: string, image: BuiltImage | BuiltIndex): Promise<void> {
    const path = `/v2/${repo}/manifests/${ref}`;
    const res = await this.#request('PUT', path, {
      repo,
      headers: { 'content-type': image.mediaType },
      body: image.manifest,
    });
    if (res.status !== 201) throw this.#error('PUT', path, res);
    const digest = header(res, 'docker-content-digest');
    if (digest !== undefined && digest !== image.digest) {
      throw new Error(`PUT ${path}: registry says digest ${digest}, expected ${image.digest}`);
    }
  }

  async headManifest(repo: string, ref: string): Promise<{ status: number; digest?: string }> {
    const res = await this.#request('HEAD', `/v2/${repo}/manifests/${ref}`, {
      repo,
      headers: { accept: MANIFEST_ACCEPT },
    });
    const digest = header(res, 'docker-content-digest');
    return digest === undefined ? { status: res.status } : { status: res.status, digest };
  }

  async getManifest(
    repo: string,
    ref: string,
  ): Promise<{ mediaType: string; digest: string | undefined; body: Buffer }> {
    const path = `/v2/${repo}/manifests/${ref}`;
    const res = await this.#request('GET', path, { repo, headers: { accept: MANIFEST_ACCEPT } });
    if (res.status !== 200) throw this.#error('GET', path, res);
    return {
      mediaType: header(res, 'content-type') ?? '',
      digest: header(res, 'docker-content-digest'),
      body: res.body,
    };
  }

  async getBlob(repo: string, digest: string): Promise<Buffer> {
    const path = `/v2/${repo}/blobs/${digest}`;
    let res = await this.#request('GET', path, { repo });
    const location = header(res, 'location');
    // Registries on object storage redirect blob GETs; the target carries its own credentials.
    if ([301, 302, 303, 307, 308].includes(res.status) && location !== undefined) {
      res = await this.#send('GET', new URL(location, this.#base), {}, undefined);
    }
    if (res.status !== 200) throw this.#error('GET', path, res);
    return res.body;
  }

  /** Needs `storage.delete.enabled: true` on the registry. */
  async deleteManifest(repo: string, digest: string): Promise<void> {
    const path = `/v2/${repo}/manifests/${digest}`;
    const res = await this.#request('DELETE', path, { repo });
    if (res.status !== 202) throw this.#error('DELETE', path, res);
  }

  /** Closes kept-alive sockets so the test process can exit. */
  close(): void {
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
  }

  async #request(
    method: string,
    target: string | URL,
    options: RequestOptions = {},
  ): Promise<Response> {
    const url = typeof target === 'string' ? new URL(target, this.#base) : target;
    // Credentials go only to the registry itself, never to a host a Location header named.
    if (url.origin !== this.#base.origin) return this.#send(method, url, options, undefined);
    const scopeKey = `${options.repo ?? ''} ${method}`;
    const first = await this.#send(method, url, options, this.#authFor(scopeKey));
    if (first.status !== 401) return first;

    const challenge = parseChallenge(header(first, 'www-authenticate'));
    if (challenge?.scheme !== 'bearer') return first;
    const scope = challenge.params.scope ?? '';
    this.#scopeFor.set(scopeKey, scope);
    let fetching = this.#tokenFetches.get(scope);
    if (fetching === undefined) {
      fetching = this.#fetchToken(challenge.params, scope).finally(() => {
        this.#tokenFetches.delete(scope);
      });
      this.#tokenFetches.set(scope, fetching);
    }
    return this.#send(method, url, options, `Bearer ${await fetching}`);
  }

  #authFor(scopeKey: string): string | undefined {
    const scope = this.#scopeFor.get(scopeKey);
    const cached = scope === undefined ? undefined : this.#tokens.get(scope);
    if (cached !== undefined && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    return this.#basic;
  }

  async #fetchToken(params: Partial<Record<string, string>>, scope: string): Promise<string> {
    const cached = this.#tokens.get(scope);
    if (cached !== undefined && cached.expiresAt > Date.now()) return cached.token;
    if (params.realm === undefined) throw new Error('bearer challenge without a realm');
    const url = new URL(params.realm);
    if (params.service !== undefined) url.searchParams.set('service', params.service);
    for (const one of scope.split(' ').filter(Boolean)) url.searchParams.append('scope', one);

    const res = await this.#send('GET', url, {}, this.#basic);
    if (res.status !== 200) throw this.#error('GET', url.pathname, res);
    const json = JSON.parse(res.body.toString()) as {
      token?: string;
      access_token?: string;
      expires_in?: number;
    };
    const token = json.token ?? json.access_token;
    if (token === undefined) throw new Error(`GET ${url.pathname}: token response has no token`);
    // Renew 10 s early so a token never expires between our check and the registry's.
    const expiresAt = Date.now() + ((json.expires_in ?? 60) - 10) * 1000;
    this.#tokens.set(scope, { token, expiresAt });
    return token;
  }

  #send(
    method: string,
    url: URL,
    options: RequestOptions,
    authorization: string | undefined,
  ): Promise<Response> {
    this.requestCount[method] = (this.requestCount[method] ?? 0) + 1;
    const headers: Record<string, string | number> = { ...options.headers };
    if (authorization !== undefined) headers.authorization = authorization;
    if (options.body !== undefined) headers['content-length'] = options.body.length;
    else if (method === 'PUT' || method === 'POST') headers['content-length'] = 0;

    const secure = url.protocol === 'https:';
    const request = secure ? https.request : http.request;
    return new Promise<Response>((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          headers,
          agent: secure ? this.#httpsAgent : this.#httpAgent,
          ...(secure && this.#ca !== undefined ? { ca: this.#ca } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            this.requests.push({ method, path: url.pathname, status });
            resolve({ status, headers: res.headers, body: Buffer.concat(chunks) });
          });
        },
      );
      req.on('error', (cause: Error) => {
        reject(new Error(`${method} ${url.pathname}: ${cause.message}`, { cause }));
      });
      req.end(options.body);
    });
  }

  // Never includes request headers: they may carry the password or a token.
  #error(method: string, path: string, res: Response): Error {
    let excerpt = res.body.toString('utf8', 0, BODY_EXCERPT).replace(/\s+/g, ' ').trim();
    if (res.body.length > BODY_EXCERPT) excerpt += '…';
    // The challenge names realm, service and scope only; it helps explain a 401 to a HEAD.
    const challenge = res.status === 401 ? header(res, 'www-authenticate') : undefined;
    if (excerpt === '' && challenge !== undefined) excerpt = `WWW-Authenticate: ${challenge}`;
    return new Error(`${method} ${path}: HTTP ${res.status}${excerpt ? `: ${excerpt}` : ''}`);
  }
}

function header(res: Response, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Parses `Bearer realm="…",service="…",scope="repository:a:pull,push"` (commas inside quotes). */
export function parseChallenge(
  value: string | undefined,
): { scheme: string; params: Partial<Record<string, string>> } | undefined {
  if (value === undefined) return undefined;
  const match = /^\s*(\S+)\s*(.*)$/.exec(value);
  if (match === null) return undefined;
  const params: Partial<Record<string, string>> = {};
  for (const param of (match[2] ?? '').matchAll(/([\w-]+)=(?:"([^"]*)"|([^,\s]*))/g)) {
    const key = param[1];
    if (key !== undefined) params[key.toLowerCase()] = param[2] ?? param[3] ?? '';
  }
  return { scheme: (match[1] ?? '').toLowerCase(), params };
}
