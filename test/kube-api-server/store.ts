// The object store: one global, monotonic resourceVersion (as etcd's revision), objects by type
// and namespace/name, a bounded history of changes that watches replay, and live watchers.
import { meta, str, type JsonObject } from './json.ts';

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Change {
  type: ChangeType;
  rv: number;
  typeKey: string;
  namespace: string;
  object: JsonObject;
  /** The object before this change (MODIFIED and DELETED), for selector transitions. */
  previous?: JsonObject;
  /**
   * The change's watch events, serialized once per (event type, apiVersion) on first use and
   * shared by every watcher: each is a whole HTTP chunk (size, line, CRLF), ready to write.
   */
  frames?: { type: string; apiVersion: string; frame: Buffer }[];
}

export interface StoreWatcher {
  typeKey: string;
  deliver(change: Change): void;
}

export interface StoreOptions {
  /** Changes kept for watches to resume from; older resourceVersions get 410 Expired. */
  historyLimit?: number;
  /** The first resourceVersion handed out is one above this. */
  initialResourceVersion?: number;
}

function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export class Store {
  #rv: number;
  /** Every change with rv greater than this is still in history. */
  #compactedRv: number;
  readonly #historyLimit: number;
  readonly #objects = new Map<string, Map<string, JsonObject>>();
  readonly #history: Change[] = [];
  readonly #watchers = new Map<string, Set<StoreWatcher>>();
  readonly #uids = new Map<string, { typeKey: string; key: string }>();

  constructor(options: StoreOptions = {}) {
    this.#rv = options.initialResourceVersion ?? 1000;
    this.#compactedRv = this.#rv;
    this.#historyLimit = options.historyLimit ?? 10_000;
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  get compactedResourceVersion(): number {
    return this.#compactedRv;
  }

  #bucket(typeKey: string): Map<string, JsonObject> {
    let bucket = this.#objects.get(typeKey);
    if (bucket === undefined) {
      bucket = new Map();
      this.#objects.set(typeKey, bucket);
    }
    return bucket;
  }

  get(typeKey: string, namespace: string, name: string): JsonObject | undefined {
    return this.#objects.get(typeKey)?.get(keyOf(namespace, name));
  }

  /** Objects of a type, in one namespace or all, sorted by namespace/name like etcd keys. */
  list(typeKey: string, namespace?: string): JsonObject[] {
    const bucket = this.#objects.get(typeKey);
    if (bucket === undefined) return [];
    const keys = [...bucket.keys()].sort();
    const prefix = namespace === undefined ? '' : `${namespace}/`;
    return keys.filter((k) => k.startsWith(prefix)).map((k) => bucket.get(k)!);
  }

  typeKeys(): string[] {
    return [...this.#objects.keys()];
  }

  byUid(uid: string): { typeKey: string; object: JsonObject } | undefined {
    const where = this.#uids.get(uid);
    if (where === undefined) return undefined;
    const object = this.#objects.get(where.typeKey)?.get(where.key);
    return object === undefined ? undefined : { typeKey: where.typeKey, object };
  }

  /** Writes an object with the next resourceVersion and tells watchers. Returns the change. */
  put(typeKey: string, object: JsonObject): Change {
    const m = meta(object);
    const namespace = str(m.namespace);
    const key = keyOf(namespace, str(m.name));
    const bucket = this.#bucket(typeKey);
    const previous = bucket.get(key);
    const rv = ++this.#rv;
    m.resourceVersion = String(rv);
    bucket.set(key, object);
    this.#uids.set(str(m.uid), { typeKey, key });
    const change: Change = {
      type: previous ? 'MODIFIED' : 'ADDED',
      rv,
      typeKey,
      namespace,
      object,
    };
    if (previous !== undefined) change.previous = previous;
    this.#record(change);
    return change;
  }

  /** Removes an object; the DELETED event carries the object at the deletion's resourceVersion. */
  remove(typeKey: string, object: JsonObject): Change | undefined {
    const m = meta(object);
    const namespace = str(m.namespace);
    const key = keyOf(namespace, str(m.name));
    const bucket = this.#objects.get(typeKey);
    const previous = bucket?.get(key);
    if (bucket === undefined || previous === undefined) return undefined;
    bucket.delete(key);
    this.#uids.delete(str(meta(previous).uid));
    const rv = ++this.#rv;
    const gone: JsonObject = {
      ...previous,
      metadata: { ...meta(previous), resourceVersion: String(rv) },
    };
    const change: Change = { type: 'DELETED', rv, typeKey, namespace, object: gone, previous };
    this.#record(change);
    return change;
  }

  #record(change: Change): void {
    this.#history.push(change);
    if (this.#history.length > this.#historyLimit) {
      const dropped = this.#history.splice(0, this.#history.length - this.#historyLimit);
      this.#compactedRv = Math.max(this.#compactedRv, dropped[dropped.length - 1]!.rv);
    }
    const watchers = this.#watchers.get(change.typeKey);
    if (watchers === undefined) return;
    for (const w of [...watchers]) w.deliver(change);
  }

  /**
   * Changes of a type after `rv`, or undefined when `rv` is older than the history window
   * (the caller answers 410 Expired).
   */
  changesSince(typeKey: string, rv: number): Change[] | undefined {
    if (rv < this.#compactedRv) return undefined;
    return this.#history.filter((c) => c.rv > rv && c.typeKey === typeKey);
  }

  /** Forgets all history: a watch from any resourceVersion before now gets 410. */
  compact(): void {
    this.#history.length = 0;
    this.#compactedRv = this.#rv;
  }

  watch(watcher: StoreWatcher): () => void {
    let set = this.#watchers.get(watcher.typeKey);
    if (set === undefined) {
      set = new Set();
      this.#watchers.set(watcher.typeKey, set);
    }
    set.add(watcher);
    return () => set.delete(watcher);
  }
}
