// Field ownership (metadata.managedFields) and server-side apply, faithful enough for
// controllers: leaf fields are owned by the manager that last set them, lists are atomic, an
// apply that changes a field another manager owns conflicts unless forced, and fields a manager
// stops applying are removed when nobody else owns them.
import { clone, deepEqual, isObject, meta, str, type Json, type JsonObject } from './json.ts';
import { ApiError } from './status.ts';

type Path = string[];

/** Metadata fields that carry ownership; the rest is the server's. */
const OWNED_METADATA = ['labels', 'annotations', 'finalizers', 'ownerReferences'];

function leaves(value: Json, prefix: Path, out: Path[]): void {
  if (isObject(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) leaves(v, [...prefix, k], out);
  } else {
    out.push(prefix);
  }
}

export function leafPaths(obj: JsonObject, subresource: string): Path[] {
  const out: Path[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'apiVersion' || k === 'kind') continue;
    if (k === 'metadata' && isObject(v)) {
      for (const mk of OWNED_METADATA) {
        if (v[mk] !== undefined) leaves(v[mk], ['metadata', mk], out);
      }
      continue;
    }
    if ((subresource === 'status') !== (k === 'status')) continue;
    leaves(v, [k], out);
  }
  return out;
}

function getPath(obj: Json, path: Path): Json | undefined {
  let node: Json | undefined = obj;
  for (const p of path) node = isObject(node) ? node[p] : undefined;
  return node;
}

function deletePath(obj: JsonObject, path: Path): void {
  let node: Json | undefined = obj;
  for (const p of path.slice(0, -1)) node = isObject(node) ? node[p] : undefined;
  // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- removing an owned field
  if (isObject(node)) delete node[path[path.length - 1]!];
}

function toFieldsV1(paths: Path[]): JsonObject {
  const root: JsonObject = {};
  for (const path of paths) {
    let node = root;
    for (const p of path) {
      const key = `f:${p}`;
      const next = isObject(node[key]) ? node[key] : {};
      node[key] = next;
      node = next;
    }
  }
  return root;
}

function fromFieldsV1(fields: Json | undefined, prefix: Path = []): Path[] {
  if (!isObject(fields)) return [];
  const keys = Object.keys(fields).filter((k) => k.startsWith('f:'));
  if (keys.length === 0) return prefix.length === 0 ? [] : [prefix];
  return keys.flatMap((k) => fromFieldsV1(fields[k], [...prefix, k.slice(2)]));
}

interface Entry {
  manager: string;
  operation: string;
  apiVersion: string;
  subresource: string;
  paths: Path[];
}

function readEntries(obj: JsonObject): Entry[] {
  const list = meta(obj).managedFields;
  if (!Array.isArray(list)) return [];
  return list.filter(isObject).map((e) => ({
    manager: str(e.manager),
    operation: str(e.operation),
    apiVersion: str(e.apiVersion),
    subresource: str(e.subresource),
    paths: fromFieldsV1(e.fieldsV1),
  }));
}

function writeEntries(obj: JsonObject, entries: Entry[], now: string): void {
  const kept = entries.filter((e) => e.paths.length > 0);
  const m = meta(obj);
  if (kept.length === 0) {
    delete m.managedFields;
    return;
  }
  m.managedFields = kept.map((e) => {
    const out: JsonObject = {
      manager: e.manager,
      operation: e.operation,
      apiVersion: e.apiVersion,
      time: now,
      fieldsType: 'FieldsV1',
      fieldsV1: toFieldsV1(e.paths),
    };
    if (e.subresource !== '') out.subresource = e.subresource;
    return out;
  });
}

const same = (a: Path, b: Path): boolean => a.length === b.length && a.every((p, i) => p === b[i]);
/** Whether a and b overlap: one is a prefix of the other. */
const overlaps = (a: Path, b: Path): boolean => {
  const n = Math.min(a.length, b.length);
  return a.slice(0, n).every((p, i) => p === b[i]);
};

export interface Ownership {
  manager: string;
  apiVersion: string;
  subresource: string;
  now: string;
}

/** Records an Update: the manager owns every leaf it changed; others lose those fields. */
export function recordUpdate(
  previous: JsonObject | undefined,
  next: JsonObject,
  who: Ownership,
): void {
  const entries = readEntries(previous ?? next);
  const nextLeaves = leafPaths(next, who.subresource);
  const changed = nextLeaves.filter(
    (p) => previous === undefined || !deepEqual(getPath(previous, p), getPath(next, p)),
  );
  const present = (p: Path): boolean => getPath(next, p) !== undefined;
  for (const e of entries) {
    e.paths = e.paths.filter((p) => present(p) && !changed.some((c) => overlaps(c, p)));
  }
  if (changed.length > 0) {
    let mine = entries.find(
      (e) =>
        e.manager === who.manager && e.operation === 'Update' && e.subresource === who.subresource,
    );
    if (mine === undefined) {
      mine = { ...who, operation: 'Update', paths: [] };
      entries.push(mine);
    }
    mine.apiVersion = who.apiVersion;
    mine.paths = [...mine.paths.filter((p) => !changed.some((c) => same(c, p))), ...changed];
  }
  writeEntries(next, entries, who.now);
}

function deepMerge(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch) || !isObject(target)) return clone(patch);
  const out: JsonObject = { ...target };
  for (const [k, v] of Object.entries(patch)) out[k] = deepMerge(out[k], v);
  return out;
}

function conflictError(conflicts: { manager: string; apiVersion: string; path: Path }[]): ApiError {
  const causes = conflicts.map((c) => ({
    reason: 'FieldManagerConflict',
    message: `conflict with "${c.manager}" using ${c.apiVersion}`,
    field: `.${c.path.join('.')}`,
  }));
  const n = conflicts.length;
  const list =
    n === 1
      ? `${causes[0]!.message}: ${causes[0]!.field}`
      : causes.map((c) => `${c.message}: ${c.field}`).join(', ');
  return new ApiError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `Apply failed with ${n} conflict${n === 1 ? '' : 's'}: ${list}`,
    reason: 'Conflict',
    details: { causes },
    code: 409,
  });
}

/**
 * Server-side apply of `config` by `who.manager` onto `live` (undefined: create). Returns the
 * object to store; throws a 409 listing the conflicts unless `force`.
 */
export function serverSideApply(
  live: JsonObject | undefined,
  config: JsonObject,
  who: Ownership,
  force: boolean,
): JsonObject {
  const base: JsonObject = live === undefined ? {} : clone(live);
  const entries = readEntries(base);
  const applied = leafPaths(config, who.subresource);
  const others = entries.filter((e) => !(e.manager === who.manager && e.operation === 'Apply'));
  const conflicts = others.flatMap((e) =>
    e.paths
      .filter((p) => applied.some((a) => overlaps(a, p)))
      .filter((p) => !deepEqual(getPath(base, p), getPath(config, p)))
      .map((path) => ({ manager: e.manager, apiVersion: e.apiVersion, path })),
  );
  if (conflicts.length > 0 && !force) throw conflictError(conflicts);
  for (const e of others) e.paths = e.paths.filter((p) => !applied.some((a) => overlaps(a, p)));
  const mine = entries.find((e) => e.manager === who.manager && e.operation === 'Apply');
  const dropped = (mine?.paths ?? []).filter((p) => !applied.some((a) => same(a, p)));
  const merged = deepMerge(base, config) as JsonObject;
  for (const p of dropped) {
    if (!others.some((e) => e.paths.some((q) => overlaps(q, p)))) deletePath(merged, p);
  }
  const next: Entry = { ...who, operation: 'Apply', paths: applied };
  writeEntries(merged, [...others, next], who.now);
  return merged;
}
