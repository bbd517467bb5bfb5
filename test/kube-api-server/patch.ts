// PATCH bodies: RFC 7386 JSON merge patch, RFC 6902 JSON patch, and the content types
// kube-apiserver accepts for each kind of resource.
import { clone, deepEqual, isObject, type Json, type JsonObject } from './json.ts';

export const MERGE_PATCH = 'application/merge-patch+json';
export const JSON_PATCH = 'application/json-patch+json';
export const STRATEGIC_PATCH = 'application/strategic-merge-patch+json';
export const APPLY_PATCH = 'application/apply-patch+yaml';

/** A patch that applies to nothing: kube-apiserver answers 422 with the patch library's words. */
export class PatchError extends Error {}

/** A body that is not a JSON patch at all: kube-apiserver answers 400 BadRequest. */
export class PatchDecodeError extends PatchError {}

export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const base: JsonObject = isObject(target) ? target : {};
  const removed = new Set(Object.keys(patch).filter((k) => patch[k] === null));
  const result: JsonObject = {};
  for (const [key, value] of Object.entries(base)) if (!removed.has(key)) result[key] = value;
  for (const [key, value] of Object.entries(patch)) {
    if (value !== null) result[key] = mergePatch(result[key] ?? null, value);
  }
  return result;
}

function unescape(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(`invalid JSON pointer: ${path}`);
  return path.slice(1).split('/').map(unescape);
}

function child(container: Json, token: string): Json | undefined {
  if (Array.isArray(container)) {
    const i = Number(token);
    return Number.isInteger(i) ? container[i] : undefined;
  }
  return isObject(container) ? container[token] : undefined;
}

function parentOf(doc: Json, tokens: string[], path: string): Json {
  let node: Json | undefined = doc;
  for (const t of tokens.slice(0, -1)) {
    node = node === undefined ? undefined : child(node, t);
  }
  if (node === undefined || node === null || typeof node !== 'object') {
    throw new PatchError(`doc is missing path: "${path}": missing value`);
  }
  return node;
}

function addAt(doc: Json, path: string, value: Json): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  const parent = parentOf(doc, tokens, path);
  const last = tokens[tokens.length - 1]!;
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > parent.length) {
      throw new PatchError(`add operation does not apply: doc is missing path: "${path}"`);
    }
    parent.splice(i, 0, value);
  } else if (isObject(parent)) {
    parent[last] = value;
  }
  return doc;
}

function removeAt(doc: Json, path: string): Json {
  const tokens = parsePointer(path);
  const parent = parentOf(doc, tokens, path);
  const last = tokens[tokens.length - 1]!;
  if (child(parent, last) === undefined) {
    throw new PatchError(`remove operation does not apply: doc is missing path: "${path}"`);
  }
  if (Array.isArray(parent)) parent.splice(Number(last), 1);
  // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- JSON pointer removal
  else if (isObject(parent)) delete parent[last];
  return doc;
}

function getAt(doc: Json, path: string): Json {
  let node: Json | undefined = doc;
  for (const t of parsePointer(path)) node = node === undefined ? undefined : child(node, t);
  if (node === undefined) throw new PatchError(`doc is missing path: "${path}": missing value`);
  return node;
}

function testedValue(doc: Json, path: string): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return doc;
  let parent: Json | undefined = doc;
  for (const t of tokens.slice(0, -1)) parent = parent === undefined ? undefined : child(parent, t);
  if (parent === undefined || parent === null || typeof parent !== 'object') {
    throw new PatchError(`test operation does not apply: is missing path: ${path}`);
  }
  return child(parent, tokens[tokens.length - 1]!) ?? null;
}

function applyOperation(doc: Json, op: JsonObject): Json {
  const path = typeof op.path === 'string' ? op.path : '';
  const from = typeof op.from === 'string' ? op.from : '';
  const value = op.value === undefined ? null : clone(op.value);
  switch (op.op) {
    case 'add':
      return addAt(doc, path, value);
    case 'remove':
      return removeAt(doc, path);
    case 'replace':
      getAt(doc, path);
      return addAt(removeAt(doc, path), path, value);
    case 'move': {
      const moved = getAt(doc, from);
      return addAt(removeAt(doc, from), path, moved);
    }
    case 'copy':
      return addAt(doc, path, clone(getAt(doc, from)));
    case 'test':
      // evanphx/json-patch v4: a missing key under an existing parent tests as null.
      if (!deepEqual(testedValue(doc, path), value)) {
        throw new PatchError(`testing value ${path} failed: test failed`);
      }
      return doc;
    default:
      throw new PatchError(`Unexpected kind: ${JSON.stringify(op.op ?? null)}`);
  }
}

export function jsonPatch(target: Json, patch: Json): Json {
  if (!Array.isArray(patch)) {
    throw new PatchDecodeError(
      'json: cannot unmarshal object into Go value of type jsonpatch.Patch',
    );
  }
  let doc = clone(target);
  for (const op of patch) {
    if (!isObject(op)) throw new PatchError('invalid JSON patch operation');
    doc = applyOperation(doc, op);
  }
  return doc;
}
