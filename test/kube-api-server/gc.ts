// The garbage collector and the namespace lifecycle controller, reduced to what their callers
// observe: dependents whose owners are all gone are deleted (background), dangling owner
// references to a gone owner are dropped while other owners remain, `orphan` and
// `foregroundDeletion` finalizers are honoured, and a deleted namespace empties, then goes.
import { clone, isObject, meta, str, strList, type JsonObject } from './json.ts';
import type { Objects } from './objects.ts';
import type { ResourceType } from './resources.ts';

function ownerUids(obj: JsonObject): string[] {
  const refs = meta(obj).ownerReferences;
  return Array.isArray(refs) ? refs.filter(isObject).map((r) => str(r.uid)) : [];
}

export class GarbageCollector {
  readonly #objects: Objects;
  #scheduled = false;

  constructor(objects: Objects) {
    this.#objects = objects;
    objects.addHooks({
      written: (_t, obj) => {
        if (meta(obj).deletionTimestamp !== undefined) this.schedule();
      },
      removed: () => {
        this.schedule();
      },
    });
  }

  schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.run();
    });
  }

  #typeOf(key: string): ResourceType | undefined {
    return this.#objects.types.all().find((t) => `${t.group}/${t.resource}` === key);
  }

  #everything(): { t: ResourceType; obj: JsonObject }[] {
    const out: { t: ResourceType; obj: JsonObject }[] = [];
    for (const key of this.#objects.store.typeKeys()) {
      const t = this.#typeOf(key);
      if (t === undefined) continue;
      for (const obj of this.#objects.store.list(key)) out.push({ t, obj });
    }
    return out;
  }

  /** One pass over every object; repeats itself (scheduled) while it changes anything. */
  run(): void {
    const all = this.#everything();
    const exists = (uid: string): boolean => this.#objects.store.byUid(uid) !== undefined;
    for (const { t, obj } of all) this.#collectDependent(t, obj, exists);
    for (const { t, obj } of all) this.#finishOwner(t, obj, all);
  }

  #collectDependent(t: ResourceType, obj: JsonObject, exists: (uid: string) => boolean): void {
    const uids = ownerUids(obj);
    if (uids.length === 0 || uids.every(exists)) return;
    const live = uids.filter(exists);
    const m = meta(obj);
    if (live.length === 0) {
      if (m.deletionTimestamp === undefined) {
        this.#objects.delete(t, str(m.namespace), str(m.name), {});
      }
      return;
    }
    const next = clone(obj);
    meta(next).ownerReferences = (meta(obj).ownerReferences as JsonObject[]).filter((r) =>
      live.includes(str(r.uid)),
    );
    this.#objects.writeAsController(t, obj, next);
  }

  #finishOwner(
    t: ResourceType,
    obj: JsonObject,
    all: { t: ResourceType; obj: JsonObject }[],
  ): void {
    const m = meta(obj);
    if (m.deletionTimestamp === undefined) return;
    const finalizers = strList(m.finalizers);
    const uid = str(m.uid);
    const dependents = all.filter((d) => ownerUids(d.obj).includes(uid));
    if (finalizers.includes('orphan')) {
      for (const d of dependents) {
        const next = clone(d.obj);
        meta(next).ownerReferences = (meta(d.obj).ownerReferences as JsonObject[]).filter(
          (r) => str(r.uid) !== uid,
        );
        this.#objects.writeAsController(d.t, d.obj, next);
      }
      this.#objects.removeFinalizer(t, obj, 'orphan');
      return;
    }
    if (finalizers.includes('foregroundDeletion')) {
      const left = dependents.filter((d) => this.#exists(d.obj));
      for (const d of left) {
        const dm = meta(d.obj);
        if (dm.deletionTimestamp === undefined) {
          this.#objects.delete(d.t, str(dm.namespace), str(dm.name), {
            propagationPolicy: 'Foreground',
          });
        }
      }
      if (left.length === 0) this.#objects.removeFinalizer(t, obj, 'foregroundDeletion');
    }
    if (t.group === '' && t.resource === 'namespaces') this.#finishNamespace(t, obj, all);
  }

  #exists(obj: JsonObject): boolean {
    return this.#objects.store.byUid(str(meta(obj).uid)) !== undefined;
  }

  #finishNamespace(
    t: ResourceType,
    ns: JsonObject,
    all: { t: ResourceType; obj: JsonObject }[],
  ): void {
    const name = str(meta(ns).name);
    const inside = all.filter((d) => d.t.namespaced && str(meta(d.obj).namespace) === name);
    for (const d of inside) {
      if (this.#exists(d.obj) && meta(d.obj).deletionTimestamp === undefined) {
        this.#objects.delete(d.t, name, str(meta(d.obj).name), {});
      }
    }
    if (inside.some((d) => this.#exists(d.obj))) return;
    const spec = isObject(ns.spec) ? ns.spec : {};
    if (!strList(spec.finalizers).includes('kubernetes')) return;
    // What the namespace controller does through /finalize once the namespace is empty.
    const next = clone(ns);
    next.spec = { ...spec, finalizers: strList(spec.finalizers).filter((f) => f !== 'kubernetes') };
    this.#objects.writeAsController(t, ns, next);
  }
}
