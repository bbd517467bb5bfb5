// The HTTP front: authenticate, inject faults, authorize, route to discovery or the object
// verbs, count, and answer errors as Status objects — the order kube-apiserver's filters run in.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import type { Accounting } from './accounting.ts';
import { VERSION_INFO, type Discovery } from './discovery.ts';
import type { Faults } from './faults.ts';
import type { Identities, UserInfo } from './identity.ts';
import { isObject, type JsonObject } from './json.ts';
import { extraFieldsFor, type Objects, type WriteContext } from './objects.ts';
import { APPLY_PATCH } from './patch.ts';
import { forbiddenMessage, type Attributes, type Authorizer } from './rbac.ts';
import type { ResourceType } from './resources.ts';
import { parseRequest, type RequestInfo } from './router.ts';
import { parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { checkTableRequest, negotiateTable, toTable, type TableRequest } from './tables.ts';
import {
  ApiError,
  badRequest,
  forCode,
  forbidden,
  forbiddenPath,
  methodNotSupported,
  pathNotFound,
  unauthorized,
  unsupportedMediaType,
  type Status,
} from './status.ts';
import type { WatchHub } from './watch.ts';

const MAX_BODY = 3 * 1024 * 1024;
const HEALTH = new Set(['/healthz', '/livez', '/readyz']);

export interface HttpDeps {
  objects: Objects;
  identities: Identities;
  authorizer: Authorizer;
  discovery: Discovery;
  watches: WatchHub;
  faults: Faults;
  accounting: Accounting;
  /** Default watch length when the client gives no timeoutSeconds (kube: 30–60 min). */
  watchTimeoutSeconds: number;
}

function sendJson(
  res: ServerResponse,
  code: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'content-type': 'application/json',
    'cache-control': 'no-cache, private',
    ...headers,
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) {
      throw new ApiError({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'the request is too large',
        reason: 'RequestEntityTooLarge',
        code: 413,
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseBody(text: string, contentType: string): unknown {
  if (text.trim() === '') return {};
  try {
    return contentType.startsWith(APPLY_PATCH)
      ? (parseYaml(text) as unknown)
      : (JSON.parse(text) as unknown);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw badRequest(`the object provided is unrecognized: ${detail}`);
  }
}

/** Create and update bodies: the serializers this server has (kube-apiserver also has protobuf). */
const OBJECT_MEDIA_TYPES = ['application/json', 'application/yaml'];

function parseObjectBody(text: string, contentType: string): unknown {
  const type = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  if (!OBJECT_MEDIA_TYPES.includes(type)) throw unsupportedMediaType(OBJECT_MEDIA_TYPES);
  if (type === 'application/json') return parseBody(text, type);
  if (text.trim() === '') return {};
  try {
    return parseYaml(text) as unknown;
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw badRequest(`the object provided is unrecognized: ${detail}`);
  }
}

function managerFrom(url: URL, req: IncomingMessage, verb: string, contentType: string): string {
  const given = url.searchParams.get('fieldManager');
  if (given !== null) return given;
  if (verb === 'patch' && contentType.startsWith(APPLY_PATCH)) return '';
  const agent = req.headers['user-agent'] ?? '';
  const prefix = agent.split('/')[0] ?? '';
  return prefix === '' ? 'unknown' : prefix;
}

function accountingResource(info: RequestInfo): string {
  if (!info.resourceRequest) return info.path;
  const sub = info.subresource === '' ? '' : `/${info.subresource}`;
  return `${info.group}/${info.resource}${sub}`;
}

export class HttpHandler {
  readonly #d: HttpDeps;

  constructor(deps: HttpDeps) {
    this.#d = deps;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const info = parseRequest(req.method ?? 'GET', url);
    let user: UserInfo = { name: '', groups: [] };
    const done = (code: number): void => {
      this.#d.accounting.record({
        user: user.name,
        verb: info.verb,
        resource: accountingResource(info),
        namespace: info.namespace,
        code,
      });
    };
    this.#run(req, res, url, info, (u) => (user = u))
      .then((code) => {
        done(code);
      })
      .catch((error: unknown) => {
        const failure = error instanceof ApiError ? error : internal(error);
        const code = failure.status.code ?? 500;
        if (!res.headersSent) sendJson(res, code, failure.status, failure.headers);
        else res.end();
        done(code);
      });
  }

  async #run(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    info: RequestInfo,
    setUser: (u: UserInfo) => void,
  ): Promise<number> {
    const user = this.#d.identities.authenticate(req.headers.authorization);
    if (user === null) throw unauthorized();
    setUser(user);
    const fault = await this.#d.faults.before({
      method: req.method ?? 'GET',
      path: url.pathname,
      watch: info.verb === 'watch',
    });
    if (fault !== undefined) throw forCode(fault.code, fault.retryAfterSeconds);
    this.#authorize(user, info);
    if (!info.resourceRequest) return this.#nonResource(res, info);
    const t = this.#d.objects.types.find(info.group, info.version, info.resource);
    if (t === undefined || (info.subresource !== '' && !this.#subresourceOk(t, info))) {
      throw pathNotFound();
    }
    return this.#resource(req, res, url, info, t);
  }

  #subresourceOk(t: ResourceType, info: RequestInfo): boolean {
    if (info.subresource === 'status') return t.statusSubresource;
    return t.resource === 'namespaces' && t.group === '' && info.subresource === 'finalize';
  }

  #authorize(user: UserInfo, info: RequestInfo): void {
    const a: Attributes = {
      verb: info.verb,
      resourceRequest: info.resourceRequest,
      group: info.group,
      resource: info.resource,
      subresource: info.subresource,
      namespace: info.namespace,
      name: info.name,
      path: info.path,
    };
    if (this.#d.authorizer.allowed(user, a)) return;
    const why = forbiddenMessage(user, a);
    if (!info.resourceRequest) throw forbiddenPath(why);
    throw forbidden({ group: info.group, resource: info.resource }, info.name, why);
  }

  #nonResource(res: ServerResponse, info: RequestInfo): number {
    if (HEALTH.has(info.path)) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return 200;
    }
    if (info.path === '/version') {
      sendJson(res, 200, VERSION_INFO);
      return 200;
    }
    if (info.apiPrefix !== '') {
      const doc = this.#d.discovery.document(info.apiPrefix, info.parts);
      if (doc !== undefined) {
        sendJson(res, 200, doc);
        return 200;
      }
    }
    throw pathNotFound();
  }

  async #resource(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    info: RequestInfo,
    t: ResourceType,
  ): Promise<number> {
    const q = url.searchParams;
    const contentType = req.headers['content-type'] ?? 'application/json';
    const ctx: WriteContext = {
      manager: managerFrom(url, req, info.verb, contentType),
      dryRun: q.getAll('dryRun').includes('All'),
    };
    const o = this.#d.objects;
    const ns = info.namespace;
    // `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`: the answer is printed server-side.
    const version = negotiateTable(req.headers.accept);
    const table: TableRequest | undefined =
      version === undefined ? undefined : { version, includeObject: q.get('includeObject') };
    // A watch refuses bad table options before it starts; reads and writes when they answer.
    if (table !== undefined && info.verb === 'watch') checkTableRequest(table);
    const ok = (body: JsonObject | Status, code = 200): number => {
      const printed =
        table !== undefined && body.kind !== 'Status'
          ? toTable(t, body as JsonObject, table)
          : body;
      sendJson(res, code, printed);
      return code;
    };
    const where = { namespace: ns, name: info.name, subresource: info.subresource };
    const listQuery = {
      labelSelector: q.get('labelSelector'),
      fieldSelector: q.get('fieldSelector'),
      limit: Number(q.get('limit') ?? 0) || 0,
      continueToken: q.get('continue'),
    };
    switch (info.verb) {
      case 'get':
        return ok(o.get(t, ns, info.name));
      case 'list':
        return ok(o.list(t, ns, listQuery));
      case 'watch':
        this.#watch(res, q, info, t, table);
        return 200;
      case 'create': {
        if (info.subresource !== '' || (t.resource === 'namespaces' && info.name !== '')) {
          throw methodNotSupported({ group: t.group, resource: t.resource }, 'create');
        }
        const created = o.create(
          t,
          t.namespaced ? ns : '',
          asObject(parseObjectBody(await readBody(req), contentType)),
          ctx,
        );
        return ok(created, 201);
      }
      case 'update':
        return ok(
          o.update(t, where, asObject(parseObjectBody(await readBody(req), contentType)), ctx),
        );
      case 'patch': {
        const body = parseBody(await readBody(req), contentType);
        const force = q.get('force') === 'true';
        const existed = t.namespaced
          ? o.store.get(`${t.group}/${t.resource}`, ns, info.name) !== undefined
          : o.store.get(`${t.group}/${t.resource}`, '', info.name) !== undefined;
        const patched = o.patch(t, where, { contentType, body, force }, ctx);
        return ok(patched, existed ? 200 : 201);
      }
      case 'delete': {
        const body = parseBody(await readBody(req), 'application/json');
        const options = isObject(body) ? body : {};
        const policy =
          q.get('propagationPolicy') ??
          (typeof options.propagationPolicy === 'string' ? options.propagationPolicy : undefined);
        const pre = isObject(options.preconditions) ? options.preconditions : {};
        const preconditions: { uid?: string; resourceVersion?: string } = {};
        if (typeof pre.uid === 'string') preconditions.uid = pre.uid;
        if (typeof pre.resourceVersion === 'string')
          preconditions.resourceVersion = pre.resourceVersion;
        const deleteOptions =
          policy === undefined ? { preconditions } : { propagationPolicy: policy, preconditions };
        return ok(o.delete(t, ns, info.name, deleteOptions));
      }
      case 'deletecollection':
        return ok(o.deleteCollection(t, ns, listQuery));
      default:
        throw methodNotSupported({ group: t.group, resource: t.resource }, info.verb);
    }
  }

  #watch(
    res: ServerResponse,
    q: URLSearchParams,
    info: RequestInfo,
    t: ResourceType,
    table: TableRequest | undefined,
  ): void {
    const timeout = Number(q.get('timeoutSeconds') ?? '');
    const fallback = this.#d.watchTimeoutSeconds * (1 + Math.random());
    this.#d.watches.serve(
      {
        t,
        namespace: info.namespace,
        labels: parseLabelSelector(q.get('labelSelector')),
        fields: parseFieldSelector(q.get('fieldSelector'), extraFieldsFor(t)),
        resourceVersion: q.get('resourceVersion') ?? '',
        bookmarks: q.get('allowWatchBookmarks') === 'true',
        timeoutMs: (timeout > 0 ? timeout : fallback) * 1000,
        ...(table === undefined ? {} : { table }),
      },
      res,
    );
  }
}

function asObject(body: unknown): JsonObject {
  if (!isObject(body)) throw badRequest('the object provided is unrecognized: not an object');
  return body;
}

function internal(error: unknown): ApiError {
  const message = error instanceof Error ? error.message : String(error);
  return new ApiError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `Internal error occurred: ${message}`,
    reason: 'InternalError',
    details: { causes: [{ reason: '', message, field: '' }] },
    code: 500,
  });
}
