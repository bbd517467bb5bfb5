// CustomResourceDefinitions come alive: writing one registers its types (and reports
// NamesAccepted/Established in its status, as the apiextensions controllers do); deleting one
// removes its types and every custom resource stored under it.
import { clone, isObject, meta, str, type JsonObject } from './json.ts';
import type { Objects } from './objects.ts';
import { typeKey, typesFromCrd, type ResourceType } from './resources.ts';

const CRD_KEY = 'apiextensions.k8s.io/customresourcedefinitions';

function condition(type: string, reason: string, message: string, now: string): JsonObject {
  return { type, status: 'True', lastTransitionTime: now, reason, message };
}

export function installCrdController(objects: Objects): void {
  objects.addHooks({
    written(t: ResourceType, crd: JsonObject) {
      if (typeKey(t) !== CRD_KEY) return;
      for (const served of typesFromCrd(crd)) objects.types.add(served);
      const status = isObject(crd.status) ? crd.status : {};
      if (Array.isArray(status.conditions) && status.conditions.length > 0) return;
      // Report acceptance the way the apiextensions controllers do, in a later write.
      setImmediate(() => {
        const live = objects.store.get(CRD_KEY, '', str(meta(crd).name));
        if (live === undefined) return;
        const next = clone(live);
        const spec = isObject(next.spec) ? next.spec : {};
        const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
        next.status = {
          conditions: [
            condition('NamesAccepted', 'NoConflicts', 'no conflicts found', now),
            condition(
              'Established',
              'InitialNamesAccepted',
              'the initial names have been accepted',
              now,
            ),
          ],
          acceptedNames: isObject(spec.names) ? spec.names : {},
          storedVersions: Array.isArray(spec.versions)
            ? spec.versions
                .filter(isObject)
                .filter((v) => v.storage === true)
                .map((v) => str(v.name))
            : [],
        };
        objects.writeAsController(t, live, next);
      });
    },
    removed(t: ResourceType, crd: JsonObject) {
      if (typeKey(t) !== CRD_KEY) return;
      const spec = isObject(crd.spec) ? crd.spec : {};
      const names = isObject(spec.names) ? spec.names : {};
      const group = str(spec.group);
      const plural = str(names.plural);
      const served = typesFromCrd(crd)[0];
      if (served !== undefined) {
        for (const obj of objects.store.list(typeKey(served)))
          objects.store.remove(typeKey(served), obj);
      }
      objects.types.removeGroupResource(group, plural);
    },
  });
}
