// Object semantics shared by every resource: create, get, list, update, patch and delete with
// kube-apiserver's rules for names, resourceVersions, uid, generation, the status subresource,
// finalizers, field managers and custom resource schemas. HTTP and test setup both call this.
import { randomUUID } from 'node:crypto';
import { recordUpdate, serverSideApply, type Ownership } from './apply.ts';
import { clone, deepEqual, isObject, meta, str, strList, strMap, type JsonObject } from './json.ts';
import {
  APPLY_PATCH,
  JSON_PATCH,
  MERGE_PATCH,
  PatchDecodeError,
  PatchError,
  STRATEGIC_PATCH,
  jsonPatch,
  mergePatch,
} from './patch.ts';
import { apiVersionOf, typeKey, type ResourceRegistry, type ResourceType } from './resources.ts';
import { matches, parseFieldSelector, parseLabelSelector, type Selector } from './selectors.ts';
import {
  ApiError,
  STALE_OBJECT,
  alreadyExists,
  badRequest,
  conflict,
  fieldErrors,
  invalid,
  notFound,
  success,
  unsupportedMediaType,
  expired,
  forbidden,
  type FieldError,
  type Status,
} from './status.ts';
import type { Store } from './store.ts';
import { pruneAndDefaultResource, validateName, validateResource } from './validation.ts';

export interface WriteContext {
  /** Field manager for managedFields ("" derives one from the user agent). */
  manager: string;
  dryRun: boolean;
  /** Set by server-side apply, which has already computed managedFields. */
  ownershipDone?: boolean;
}

export interface ListQuery {
  labelSelector: string | null;
  fieldSelector: string | null;
  limit: number;
  continueToken: string | null;
}

export interface DeleteOptions {
  propagationPolicy?: string;
  preconditions?: { resourceVersion?: string; uid?: string };
}

/** Hooks the server attaches: CRD registration and the garbage collector. */
export interface ObjectHooks {
  written(t: ResourceType, object: JsonObject, previous: JsonObject | undefined): void;
  removed(t: ResourceType, object: JsonObject): void;
}

const gr = (t: ResourceType): { group: string; resource: string } => ({
  group: t.group,
  resource: t.resource,
});
const gk = (t: ResourceType): { group: string; kind: string } => ({ group: t.group, kind: t.kind });

const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

function generateSuffix(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += NAME_CHARS[Math.floor(Math.random() * NAME_CHARS.length)]!;
  return s;
}

/** Fields kube-apiserver never lets a client change on update. */
function keepServerFields(next: JsonObject, previous: JsonObject): void {
  const nm = meta(next);
  const pm = meta(previous);
  for (const key of [
    'uid',
    'creationTimestamp',
    'deletionTimestamp',
    'deletionGracePeriodSeconds',
    'generation',
  ]) {
    // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- a fixed list of keys
    if (pm[key] === undefined) delete nm[key];
    else nm[key] = pm[key];
  }
  nm.name = pm.name ?? null;
  if (pm.namespace !== undefined) nm.namespace = pm.namespace;
}

/** Everything but metadata (and status where it has its own endpoint): what generation tracks. */
function specOf(obj: JsonObject, t: ResourceType): JsonObject {
  const rest: JsonObject = { ...obj };
  delete rest.metadata;
  delete rest.apiVersion;
  delete rest.kind;
  if (t.statusSubresource) delete rest.status;
  return rest;
}

function withoutVolatile(obj: JsonObject): JsonObject {
  const copy = clone(obj);
  const m = meta(copy);
  delete m.managedFields;
  delete m.resourceVersion;
  delete copy.apiVersion;
  delete copy.kind;
  return copy;
}

export class Objects {
  readonly store: Store;
  readonly types: ResourceRegistry;
  readonly #hooks: ObjectHooks[] = [];
  readonly #now: () => Date;

  constructor(store: Store, types: ResourceRegistry, now: () => Date = () => new Date()) {
    this.store = store;
    this.types = types;
    this.#now = now;
  }

  addHooks(hooks: ObjectHooks): void {
    this.#hooks.push(hooks);
  }

  #timestamp(): string {
    return this.#now()
      .toISOString()
      .replace(/\.\d+Z$/, 'Z');
  }

  /** The object as a client sees it at this type's version. */
  present(t: ResourceType, obj: JsonObject): JsonObject {
    return { apiVersion: apiVersionOf(t), kind: t.kind, ...obj };
  }

  get(t: ResourceType, namespace: string, name: string): JsonObject {
    const obj = this.store.get(typeKey(t), t.namespaced ? namespace : '', name);
    if (obj === undefined) throw notFound(gr(t), name);
    return this.present(t, obj);
  }

  #requireNamespace(t: ResourceType, namespace: string): void {
    if (!t.namespaced) return;
    const ns = this.store.get('/namespaces', '', namespace);
    if (ns === undefined) throw notFound({ group: '', resource: 'namespaces' }, namespace);
    if (meta(ns).deletionTimestamp !== undefined) {
      throw forbidden(
        gr(t),
        '',
        `unable to create new content in namespace ${namespace} because it is being terminated`,
      );
    }
  }

  #admit(t: ResourceType, obj: JsonObject): JsonObject {
    if (t.schema === undefined) return defaultBuiltin(t, obj);
    return pruneAndDefaultResource(obj, t.schema);
  }

  #validate(t: ResourceType, obj: JsonObject, name: string, extra: FieldError[] = []): void {
    const errors = [...validateName(name, t.resource === 'namespaces'), ...extra];
    if (t.schema !== undefined) errors.push(...validateResource(obj, t.schema));
    if (errors.length > 0) throw invalid(gk(t), name, errors);
  }

  #ownership(t: ResourceType, ctx: WriteContext, subresource: string): Ownership {
    return {
      manager: ctx.manager,
      apiVersion: apiVersionOf(t),
      subresource,
      now: this.#timestamp(),
    };
  }

  create(t: ResourceType, namespace: string, body: JsonObject, ctx: WriteContext): JsonObject {
    const obj = this.#admit(t, clone(body));
    const m = meta(obj);
    const bodyNs = str(m.namespace);
    if (t.namespaced && bodyNs !== '' && bodyNs !== namespace) {
      throw badRequest(
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
    if (str(m.name) === '' && str(m.generateName) !== '') {
      m.name = `${str(m.generateName)}${generateSuffix()}`;
    }
    const name = str(m.name);
    if (name === '') {
      throw invalid(gk(t), '', [
        fieldErrors.required('metadata.name', 'name or generateName is required'),
      ]);
    }
    if (str(m.resourceVersion) !== '') {
      throw new ApiError({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'resourceVersion should not be set on objects to be created',
        reason: 'InternalError',
        details: {
          causes: [
            {
              reason: '',
              message: 'resourceVersion should not be set on objects to be created',
              field: '',
            },
          ],
        },
        code: 500,
      });
    }
    if (t.namespaced) m.namespace = namespace;
    else delete m.namespace;
    this.#requireNamespace(t, namespace);
    if (this.store.get(typeKey(t), t.namespaced ? namespace : '', name) !== undefined) {
      throw alreadyExists(gr(t), name);
    }
    this.#prepareCreate(t, obj);
    this.#validate(t, obj, name);
    recordUpdate(undefined, obj, this.#ownership(t, ctx, ''));
    return this.#commit(t, obj, undefined, ctx);
  }

  #prepareCreate(t: ResourceType, obj: JsonObject): void {
    const m = meta(obj);
    delete m.deletionTimestamp;
    delete m.deletionGracePeriodSeconds;
    delete m.managedFields;
    m.uid = randomUUID();
    m.creationTimestamp = this.#timestamp();
    if (t.generation) m.generation = 1;
    else delete m.generation;
    if (!t.statusOnCreate) delete obj.status;
    if (t.resource === 'namespaces' && t.group === '') {
      obj.spec = { finalizers: ['kubernetes'] };
      obj.status = { phase: 'Active' };
    }
    if (t.resource === 'pods' && t.group === '') obj.status = { phase: 'Pending' };
  }

  #commit(
    t: ResourceType,
    obj: JsonObject,
    previous: JsonObject | undefined,
    ctx: WriteContext,
  ): JsonObject {
    delete obj.apiVersion;
    delete obj.kind;
    if (ctx.dryRun) return this.present(t, obj);
    this.store.put(typeKey(t), obj);
    for (const h of this.#hooks) h.written(t, obj, previous);
    return this.present(t, obj);
  }

  #current(t: ResourceType, namespace: string, name: string): JsonObject {
    const obj = this.store.get(typeKey(t), t.namespaced ? namespace : '', name);
    if (obj === undefined) throw notFound(gr(t), name);
    return obj;
  }

  /** PUT: replaces the object (or, on /status, only its status). */
  update(
    t: ResourceType,
    where: { namespace: string; name: string; subresource: string },
    body: JsonObject,
    ctx: WriteContext,
  ): JsonObject {
    const bodyName = str(meta(body).name);
    if (bodyName !== '' && bodyName !== where.name) {
      throw badRequest(
        `the name of the object (${bodyName}) does not match the name on the URL (${where.name})`,
      );
    }
    const previous = this.#current(t, where.namespace, where.name);
    const wantRv = str(meta(body).resourceVersion);
    if (wantRv !== '' && wantRv !== str(meta(previous).resourceVersion)) {
      throw conflict(gr(t), where.name, STALE_OBJECT);
    }
    return this.#replace(t, previous, clone(body), where.subresource, ctx);
  }

  #replace(
    t: ResourceType,
    previous: JsonObject,
    body: JsonObject,
    subresource: string,
    ctx: WriteContext,
  ): JsonObject {
    let next = this.#admit(t, body);
    if (subresource === 'status') {
      const status = next.status;
      const fields = meta(next).managedFields;
      next = clone(previous);
      if (status === undefined) delete next.status;
      else next.status = status;
      if (fields !== undefined) meta(next).managedFields = fields;
    } else if (t.statusSubresource) {
      if (previous.status === undefined) delete next.status;
      else next.status = clone(previous.status);
    }
    keepServerFields(next, previous);
    const name = str(meta(previous).name);
    const extra = this.#finalizerErrors(previous, next);
    this.#validate(t, next, name, extra);
    if (t.generation && !deepEqual(specOf(next, t), specOf(previous, t))) {
      meta(next).generation = Number(meta(previous).generation ?? 0) + 1;
    }
    if (meta(next).managedFields === undefined && meta(previous).managedFields !== undefined) {
      meta(next).managedFields = clone(meta(previous).managedFields!);
    }
    if (ctx.ownershipDone !== true) {
      recordUpdate(previous, next, this.#ownership(t, ctx, subresource));
    }
    return this.#finishWrite(t, previous, next, ctx);
  }

  #finalizerErrors(previous: JsonObject, next: JsonObject): FieldError[] {
    if (meta(previous).deletionTimestamp === undefined) return [];
    const before = strList(meta(previous).finalizers);
    const added = strList(meta(next).finalizers).filter((f) => !before.includes(f));
    if (added.length === 0) return [];
    const list = added.map((f) => JSON.stringify(f)).join(', ');
    return [
      fieldErrors.forbidden(
        'metadata.finalizers',
        `no new finalizers can be added if the object is being deleted, found new finalizers []string{${list}}`,
      ),
    ];
  }

  #finishWrite(
    t: ResourceType,
    previous: JsonObject,
    next: JsonObject,
    ctx: WriteContext,
  ): JsonObject {
    // An update that changes nothing is not written: no new resourceVersion, no watch event.
    if (deepEqual(withoutVolatile(next), withoutVolatile(previous))) {
      return this.present(t, previous);
    }
    const deleting = meta(next).deletionTimestamp !== undefined;
    if (deleting && pendingFinalizers(t, next).length === 0) {
      if (!ctx.dryRun) this.#remove(t, previous);
      return this.present(t, next);
    }
    return this.#commit(t, next, previous, ctx);
  }

  patch(
    t: ResourceType,
    where: { namespace: string; name: string; subresource: string },
    request: { contentType: string; body: unknown; force: boolean },
    ctx: WriteContext,
  ): JsonObject {
    const type = request.contentType.split(';')[0]!.trim();
    const accepted = t.custom
      ? [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
      : [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH];
    if (!accepted.includes(type)) throw unsupportedMediaType(accepted);
    if (type === APPLY_PATCH) return this.#apply(t, where, request, ctx);
    const previous = this.#current(t, where.namespace, where.name);
    let patched: unknown;
    try {
      const base = this.present(t, previous);
      patched =
        type === JSON_PATCH
          ? jsonPatch(base, request.body as JsonObject)
          : mergePatch(base, request.body as JsonObject);
    } catch (error) {
      if (error instanceof PatchDecodeError) throw badRequest(error.message);
      if (error instanceof PatchError) throw patchInvalid(error.message);
      throw error;
    }
    if (!isObject(patched)) throw badRequest('the patch did not produce an object');
    const wantRv = str(meta(patched).resourceVersion);
    if (wantRv !== '' && wantRv !== str(meta(previous).resourceVersion)) {
      throw conflict(gr(t), where.name, STALE_OBJECT);
    }
    return this.#replace(t, previous, patched, where.subresource, ctx);
  }

  #apply(
    t: ResourceType,
    where: { namespace: string; name: string; subresource: string },
    request: { body: unknown; force: boolean },
    ctx: WriteContext,
  ): JsonObject {
    if (ctx.manager === '') {
      throw invalid({ group: 'meta.k8s.io', kind: 'PatchOptions' }, '', [
        fieldErrors.required('fieldManager', 'is required for apply patch'),
      ]);
    }
    if (!isObject(request.body)) throw badRequest('apply patch must be an object');
    const config = request.body;
    const configName = str(meta(config).name);
    if (configName !== where.name) {
      throw badRequest(
        `the name of the object (${configName}) does not match the name on the URL (${where.name})`,
      );
    }
    const previous = this.store.get(typeKey(t), t.namespaced ? where.namespace : '', where.name);
    const who = this.#ownership(t, ctx, where.subresource);
    if (previous === undefined) {
      if (where.subresource !== '') throw notFound(gr(t), where.name);
      const created = serverSideApply(undefined, config, who, request.force);
      const managed = meta(created).managedFields;
      const obj = this.#admit(t, created);
      const m = meta(obj);
      if (t.namespaced) m.namespace = where.namespace;
      this.#requireNamespace(t, where.namespace);
      this.#prepareCreate(t, obj);
      if (managed !== undefined) m.managedFields = managed;
      this.#validate(t, obj, where.name);
      return this.#commit(t, obj, undefined, ctx);
    }
    const merged = serverSideApply(this.present(t, previous), config, who, request.force);
    const managed = meta(merged).managedFields;
    const next = this.#admit(t, merged);
    if (managed !== undefined) meta(next).managedFields = managed;
    return this.#replaceApplied(t, previous, next, where.subresource, ctx);
  }

  #replaceApplied(
    t: ResourceType,
    previous: JsonObject,
    next: JsonObject,
    subresource: string,
    ctx: WriteContext,
  ): JsonObject {
    return this.#replace(t, previous, next, subresource, { ...ctx, ownershipDone: true });
  }

  list(t: ResourceType, namespace: string, query: ListQuery): JsonObject {
    const labels = parseLabelSelector(query.labelSelector);
    const fields = parseFieldSelector(query.fieldSelector, extraFieldsFor(t));
    const rv = this.store.resourceVersion;
    let start = '';
    let listRv = rv;
    if (query.continueToken !== null) {
      const token = decodeContinue(query.continueToken);
      if (token.rv < this.store.compactedResourceVersion) throw expired(CONTINUE_EXPIRED);
      start = token.start;
      listRv = token.rv;
    }
    const all = this.store
      .list(typeKey(t), t.namespaced && namespace !== '' ? namespace : undefined)
      .filter((o) => selects(labels, fields, o))
      .filter((o) => start === '' || keyFor(o) > start);
    const limited = query.limit > 0 && all.length > query.limit;
    const items = limited ? all.slice(0, query.limit) : all;
    const metadata: JsonObject = { resourceVersion: String(listRv) };
    if (limited) {
      metadata.continue = encodeContinue(listRv, keyFor(items[items.length - 1]!));
      if (labels.length === 0 && fields.length === 0) {
        metadata.remainingItemCount = all.length - items.length;
      }
    }
    return {
      kind: t.listKind,
      apiVersion: apiVersionOf(t),
      metadata,
      items: items.map((o) => (t.custom ? this.present(t, o) : o)),
    };
  }

  delete(
    t: ResourceType,
    namespace: string,
    name: string,
    options: DeleteOptions,
  ): JsonObject | Status {
    const previous = this.#current(t, namespace, name);
    const pm = meta(previous);
    const pre = options.preconditions;
    if (pre?.uid !== undefined && pre.uid !== str(pm.uid)) {
      throw conflict(
        gr(t),
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${str(pm.uid)}`,
      );
    }
    if (pre?.resourceVersion !== undefined && pre.resourceVersion !== str(pm.resourceVersion)) {
      throw conflict(
        gr(t),
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${str(pm.resourceVersion)}`,
      );
    }
    const finalizers = strList(pm.finalizers);
    const namespaceFinalizers = pendingFinalizers(t, previous).length - finalizers.length;
    const policy = options.propagationPolicy;
    if (policy === 'Foreground' && !finalizers.includes('foregroundDeletion')) {
      finalizers.push('foregroundDeletion');
    }
    if (policy === 'Orphan' && !finalizers.includes('orphan')) finalizers.push('orphan');
    if (finalizers.length === 0 && namespaceFinalizers === 0) {
      this.#remove(t, previous);
      return this.#deleted(t, previous);
    }
    if (pm.deletionTimestamp !== undefined) return this.present(t, previous);
    const next = clone(previous);
    const nm = meta(next);
    if (finalizers.length > 0) nm.finalizers = finalizers;
    nm.deletionTimestamp = this.#timestamp();
    nm.deletionGracePeriodSeconds = 0;
    if (t.group === '' && t.resource === 'namespaces') next.status = { phase: 'Terminating' };
    return this.#commit(t, next, previous, { manager: '', dryRun: false });
  }

  #deleted(t: ResourceType, obj: JsonObject): JsonObject | Status {
    if (t.returnDeletedObject) return this.present(t, obj);
    const details: { name: string; group?: string; kind: string; uid: string } = {
      name: str(meta(obj).name),
      kind: t.resource,
      uid: str(meta(obj).uid),
    };
    if (t.group !== '') details.group = t.group;
    return success(details);
  }

  #remove(t: ResourceType, obj: JsonObject): void {
    const change = this.store.remove(typeKey(t), obj);
    if (change === undefined) return;
    for (const h of this.#hooks) h.removed(t, change.object);
  }

  deleteCollection(t: ResourceType, namespace: string, query: ListQuery): JsonObject {
    const list = this.list(t, namespace, { ...query, limit: 0, continueToken: null });
    const items = Array.isArray(list.items) ? list.items.filter(isObject) : [];
    for (const item of items) {
      const m = meta(item);
      this.delete(t, str(m.namespace), str(m.name), {});
    }
    return list;
  }

  /** Removes a finalizer on behalf of a controller (namespace lifecycle, garbage collector). */
  removeFinalizer(t: ResourceType, obj: JsonObject, finalizer: string): void {
    const next = clone(obj);
    meta(next).finalizers = strList(meta(obj).finalizers).filter((f) => f !== finalizer);
    this.#finishWrite(t, obj, next, { manager: '', dryRun: false });
  }

  /** Writes a controller's change to an object (garbage collector removing owner references). */
  writeAsController(t: ResourceType, previous: JsonObject, next: JsonObject): void {
    this.#finishWrite(t, previous, next, { manager: '', dryRun: false });
  }
}

/** The few built-in defaults clients can see here (SetDefaults_Secret: type Opaque). */
function defaultBuiltin(t: ResourceType, obj: JsonObject): JsonObject {
  if (t.group === '' && t.resource === 'secrets' && str(obj.type) === '') obj.type = 'Opaque';
  return obj;
}

/** metadata.finalizers, plus a namespace's spec.finalizers (the namespace controller's). */
function pendingFinalizers(t: ResourceType, obj: JsonObject): string[] {
  const own = strList(meta(obj).finalizers);
  if (t.group !== '' || t.resource !== 'namespaces' || !isObject(obj.spec)) return own;
  return [...own, ...strList(obj.spec.finalizers)];
}

/**
 * A JSON patch that does not apply (a failed `test`, a missing path): kube-apiserver's patch
 * handler answers errors.NewGenericServerResponse(422, …) with the library's error as the cause.
 */
function patchInvalid(message: string): ApiError {
  return new ApiError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'the server rejected our request due to an error in our request',
    reason: 'Invalid',
    details: { causes: [{ message }] },
    code: 422,
  });
}

const CONTINUE_EXPIRED =
  'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.';

function keyFor(obj: JsonObject): string {
  const m = meta(obj);
  return `${str(m.namespace)}/${str(m.name)}`;
}

function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start: `${start}\u0000` })).toString(
    'base64url',
  );
}

function decodeContinue(token: string): { rv: number; start: string } {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (isObject(parsed) && typeof parsed.rv === 'number' && typeof parsed.start === 'string') {
      return {
        rv: parsed.rv,
        start: parsed.start.endsWith('\u0000') ? parsed.start.slice(0, -1) : parsed.start,
      };
    }
  } catch {
    // fall through
  }
  throw badRequest(`continue key is not valid: ${token}`);
}

/** Field selectors some built-in types support beyond metadata.name/namespace. */
export function extraFieldsFor(t: ResourceType): string[] {
  if (t.group === '' && t.resource === 'pods') return ['spec.nodeName', 'status.phase'];
  if (t.group === '' && t.resource === 'events') {
    return [
      'involvedObject.kind',
      'involvedObject.name',
      'involvedObject.namespace',
      'involvedObject.uid',
      'reason',
      'type',
      'source',
    ];
  }
  if (t.group === '' && t.resource === 'secrets') return ['type'];
  return [];
}

function fieldValue(obj: JsonObject, path: string): string {
  let node: unknown = obj;
  for (const p of path.split('.')) node = isObject(node) ? node[p] : undefined;
  return typeof node === 'string' ? node : '';
}

export function selects(labels: Selector, fields: Selector, obj: JsonObject): boolean {
  if (!matches(labels, strMap(meta(obj).labels))) return false;
  if (fields.length === 0) return true;
  const values: Record<string, string> = {};
  for (const r of fields) values[r.key] = fieldValue(obj, r.key);
  return matches(
    fields.map((r) => ({ ...r, op: r.op })),
    values,
  );
}
