// Reads Kubernetes manifests as kubectl, `helm template` and `kustomize build` write them
// (multi-document YAML or JSON, `List` kinds) into the pod specs they hold and the PrePulls among
// them, each with the file, the document's 0-based index and a line number. Pure over text: the
// command line reads the files. A document that does not parse is a problem for that document
// only; every other document is still read.
import { type ParsedDocument, isDocumentError, readDocuments } from './documents.ts';
import { GROUP, KIND, type PrePull, validatePrePull } from '../api/prepull.ts';

export interface Source {
  /** The path as given (or "-" for standard input): findings repeat it. */
  file: string;
  text: string;
}

export type ContainerType = 'container' | 'initContainer' | 'ephemeralContainer';

/** Where a pod may be scheduled, as far as the audit looks: nodeSelector and required affinity. */
export interface Placement {
  nodeSelector: Record<string, string>;
  /** requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms, when given. */
  nodeSelectorTerms?: unknown[];
}

/** Where an object was read: a file's document and line, or (live mode) its API path alone. */
export interface Location {
  /** The path as given, or the object's API path (`/api/v1/namespaces/shop/pods/web-1`). */
  file: string;
  /** 0-based index of the YAML document in the file; absent for objects read from the API. */
  document?: number;
  /** 1-based line; absent for objects read from the API. */
  line?: number;
}

export interface ContainerSite extends Location {
  /** `Kind namespace/name` (namespace omitted when the manifest names none). */
  object: string;
  container: string;
  containerType: ContainerType;
  image: unknown;
  imagePullPolicy: unknown;
  placement: Placement;
}

export interface LocatedPrePull extends Location {
  prePull: PrePull;
}

export interface ReadProblem {
  file: string;
  document?: number;
  line?: number;
  message: string;
}

export interface Manifests {
  containers: ContainerSite[];
  prePulls: LocatedPrePull[];
  problems: ReadProblem[];
  /** Objects read that hold pod specs. */
  objects: number;
}

/** Kind → path of its pod spec, for kinds whose spec Kubernetes defines. */
export const POD_SPEC_PATHS: Readonly<Record<string, readonly string[]>> = {
  Pod: ['spec'],
  PodTemplate: ['template', 'spec'],
  Deployment: ['spec', 'template', 'spec'],
  ReplicaSet: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  ReplicationController: ['spec', 'template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
};

const CONTAINER_FIELDS: readonly (readonly [string, ContainerType])[] = [
  ['initContainers', 'initContainer'],
  ['containers', 'container'],
  ['ephemeralContainers', 'ephemeralContainer'],
];

type Path = readonly (string | number)[];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function at(value: unknown, path: Path): unknown {
  let here = value;
  for (const key of path) {
    if (Array.isArray(here) && typeof key === 'number') here = here[key];
    else if (isRecord(here) && typeof key === 'string') here = here[key];
    else return undefined;
  }
  return here;
}

/** Reads one object of a document: a List's item, or the document itself. */
class ObjectReader {
  readonly #doc: ParsedDocument;
  readonly #base: Path;

  constructor(doc: ParsedDocument, base: Path) {
    this.#doc = doc;
    this.#base = base;
  }

  /** The line of the node at `path` below this object, or of the nearest ancestor read. */
  line(path: Path): number {
    return this.#doc.line([...this.#base, ...path]);
  }
}

function isPrePullKind(value: Record<string, unknown>): boolean {
  const { apiVersion, kind } = value;
  return kind === KIND || (typeof apiVersion === 'string' && apiVersion.startsWith(`${GROUP}/`));
}

export function describe(value: Record<string, unknown>): string {
  const kind = typeof value.kind === 'string' ? value.kind : '(no kind)';
  const meta = isRecord(value.metadata) ? value.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '(no name)';
  return `${kind} ${typeof meta.namespace === 'string' ? `${meta.namespace}/` : ''}${name}`;
}

function stringMap(value: unknown): Record<string, string> {
  const map: Record<string, string> = {};
  if (!isRecord(value)) return map;
  for (const [key, v] of Object.entries(value)) if (typeof v === 'string') map[key] = v;
  return map;
}

function placementOf(spec: Record<string, unknown>): Placement {
  const terms = at(spec, [
    'affinity',
    'nodeAffinity',
    'requiredDuringSchedulingIgnoredDuringExecution',
    'nodeSelectorTerms',
  ]);
  return {
    nodeSelector: stringMap(spec.nodeSelector),
    ...(Array.isArray(terms) ? { nodeSelectorTerms: terms } : {}),
  };
}

interface ReadContext {
  file: string;
  document: number;
  podSpecPaths: Readonly<Record<string, readonly string[]>>;
  into: Manifests;
}

function readPrePull(value: Record<string, unknown>, where: Location, into: Manifests): void {
  const { prePull, issues } = validatePrePull(value);
  if (prePull === undefined) {
    const details = issues.map((i) => `${i.field}: ${i.message}`).join('; ');
    into.problems.push({ ...where, message: `invalid ${describe(value)}: ${details}` });
    return;
  }
  into.prePulls.push({ ...where, prePull });
}

type SiteBase = Omit<
  ContainerSite,
  'line' | 'container' | 'containerType' | 'image' | 'imagePullPolicy'
>;

function readContainers(
  spec: Record<string, unknown>,
  site: SiteBase,
  into: Manifests,
  /** The line of the container at (field, index), when read from a file. */
  lineOf?: (field: string, index: number) => number,
): void {
  for (const [field, containerType] of CONTAINER_FIELDS) {
    const list = spec[field];
    if (!Array.isArray(list)) continue;
    list.forEach((entry: unknown, index) => {
      const container = isRecord(entry) ? entry : {};
      into.containers.push({
        ...site,
        ...(lineOf === undefined ? {} : { line: lineOf(field, index) }),
        container: typeof container.name === 'string' ? container.name : `#${index}`,
        containerType,
        image: container.image,
        imagePullPolicy: container.imagePullPolicy,
      });
    });
  }
}

function readObject(value: unknown, reader: ObjectReader, context: ReadContext): void {
  if (!isRecord(value)) return;
  const where = { file: context.file, document: context.document, line: reader.line([]) };
  if (isPrePullKind(value)) {
    readPrePull(value, where, context.into);
    return;
  }
  const kind = typeof value.kind === 'string' ? value.kind : undefined;
  const path = kind === undefined ? undefined : context.podSpecPaths[kind];
  if (path === undefined) return;
  const spec = at(value, path);
  if (!isRecord(spec)) {
    context.into.problems.push({
      ...where,
      message: `${describe(value)} has no pod spec at ${path.join('.')}`,
    });
    return;
  }
  context.into.objects++;
  const site = { ...where, object: describe(value), placement: placementOf(spec) };
  readContainers(spec, site, context.into, (field, index) => reader.line([...path, field, index]));
}

function readDocument(doc: ParsedDocument, context: ReadContext): void {
  const value = doc.value;
  if (isRecord(value) && typeof value.kind === 'string' && value.kind.endsWith('List')) {
    if (Array.isArray(value.items)) {
      value.items.forEach((item: unknown, index) => {
        readObject(item, new ObjectReader(doc, ['items', index]), context);
      });
      return;
    }
  }
  readObject(value, new ObjectReader(doc, []), context);
}

/**
 * Reads every document of `source` into `into`. `podSpecPaths` maps kinds to their pod spec
 * (POD_SPEC_PATHS plus --pod-template-path); objects of other kinds are skipped.
 */
export function readManifests(
  source: Source,
  podSpecPaths: Readonly<Record<string, readonly string[]>>,
  into: Manifests,
): void {
  for (const doc of readDocuments(source.text)) {
    if (isDocumentError(doc)) {
      into.problems.push({
        file: source.file,
        document: doc.index,
        ...(doc.line !== undefined ? { line: doc.line } : {}),
        message: `not valid YAML or JSON: ${doc.message}`,
      });
      continue;
    }
    readDocument(doc, { file: source.file, document: doc.index, podSpecPaths, into });
  }
}

export function emptyManifests(): Manifests {
  return { containers: [], prePulls: [], problems: [], objects: 0 };
}

/**
 * Reads one object fetched from the API (its `kind` set by the caller: list items carry none),
 * located by its API path. Returns false when it has no pod spec at `specPath`.
 */
export function readApiObject(
  value: Record<string, unknown>,
  specPath: readonly string[],
  file: string,
  into: Manifests,
): boolean {
  const spec = at(value, specPath);
  if (!isRecord(spec)) return false;
  into.objects++;
  readContainers(spec, { file, object: describe(value), placement: placementOf(spec) }, into);
  return true;
}

/** Validates a PrePull fetched from the API, as `readManifests` does one from a file. */
export function readApiPrePull(
  value: Record<string, unknown>,
  file: string,
  into: Manifests,
): void {
  readPrePull(value, { file }, into);
}
