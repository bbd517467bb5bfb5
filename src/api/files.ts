// Reads PrePull objects from YAML or JSON files and directories, for `prepull sync`. Every
// problem names the file, the document and the object, and fails only that object: the other
// objects in the same file still apply. Documents of other kinds are skipped (a directory of
// manifests may hold a Namespace or a Secret beside its PrePulls), but a file named on its own
// that holds no PrePull at all is an error that says what it holds instead.
import { closeSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { type Document, isMap, parseAllDocuments } from 'yaml';
import { PrepullError, fileErrorText } from '../errors.ts';
import { API_VERSION, GROUP, KIND, type PrePull, validatePrePull } from './prepull.ts';

export interface LoadedPrePulls {
  prePulls: PrePull[];
  /** One per bad file or object, code ERR_PREPULL_INVALID. */
  errors: PrepullError[];
  /** Documents of other kinds that were skipped, as "file#doc kind". */
  skipped: string[];
  /** Every file read, for watching. */
  files: string[];
}

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/** Why a file or directory named on the command line cannot be read; undefined when it can. */
export function unreadablePath(path: string): string | undefined {
  try {
    if (statSync(path).isDirectory()) readdirSync(path);
    else closeSync(openSync(path, 'r'));
    return undefined;
  } catch (error) {
    return fileErrorText(error);
  }
}

/** Files named directly (also in `named`), plus *.yaml, *.yml and *.json directly inside named directories. */
export function listManifestFiles(paths: readonly string[]): {
  files: string[];
  named: string[];
  errors: PrepullError[];
} {
  const files: string[] = [];
  const named: string[] = [];
  const errors: PrepullError[] = [];
  for (const path of paths) {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(path).isDirectory();
    } catch (cause) {
      errors.push(
        new PrepullError('ERR_PREPULL_INVALID', `${path}: cannot read: ${fileErrorText(cause)}`, {
          cause,
        }),
      );
      continue;
    }
    if (!isDirectory) {
      files.push(path);
      named.push(path);
      continue;
    }
    for (const name of readdirSync(path).sort()) {
      if (EXTENSIONS.has(extname(name)) && !name.startsWith('.')) files.push(join(path, name));
    }
  }
  return { files, named, errors };
}

function describeObject(value: unknown): string {
  if (typeof value !== 'object' || value === null) return '';
  const meta = (value as { metadata?: { name?: unknown; namespace?: unknown } }).metadata;
  const name = typeof meta?.name === 'string' ? meta.name : '(no name)';
  const namespace = typeof meta?.namespace === 'string' ? `${meta.namespace}/` : '';
  return ` (PrePull ${namespace}${name})`;
}

/** A plain string scalar as written, or undefined (an alias, a map, a number, absent). */
function scalar(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function isPrePullKind(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const { apiVersion, kind } = value as { apiVersion?: unknown; kind?: unknown };
  return kind === KIND || (typeof apiVersion === 'string' && apiVersion.startsWith(`${GROUP}/`));
}

/** One document, read: a value that may be a PrePull, another kind, or nothing to apply. */
type DocumentRead = { value: unknown } | { otherKind: string } | undefined;

/**
 * The document as a value when it may be a PrePull; its kind when it is of another kind;
 * undefined when it is empty or cannot be read (added to `errors`).
 */
function readDocument(doc: Document.Parsed, where: string, into: LoadedPrePulls): DocumentRead {
  if (doc.errors.length > 0) {
    into.errors.push(yamlError(doc, where));
    return undefined;
  }
  // The kind first, from the document's own nodes: a document of another kind is skipped
  // without building it, so a ConfigMap full of YAML aliases beside the PrePulls costs nothing.
  const header = { apiVersion: scalar(doc.get('apiVersion')), kind: scalar(doc.get('kind')) };
  if (isMap(doc.contents) && !isPrePullKind(header)) {
    return { otherKind: header.kind ?? 'unknown kind' };
  }
  let value: unknown;
  try {
    // yaml refuses more than 100 alias expansions (its guard against alias bombs): that fails
    // this document, never the process or the other documents.
    value = doc.toJS();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    into.errors.push(
      new PrepullError('ERR_PREPULL_INVALID', `${where}: cannot be read: ${reason}`),
    );
    return undefined;
  }
  if (value === null || value === undefined) return undefined;
  if (!isPrePullKind(value)) {
    const kind = (value as { kind?: unknown }).kind;
    return { otherKind: typeof kind === 'string' ? kind : 'unknown kind' };
  }
  return { value };
}

/** The parser's message whole: what is wrong, then the excerpt with a caret under the spot. */
function yamlError(doc: Document.Parsed, where: string): PrepullError {
  const first = doc.errors[0];
  const line = first?.linePos?.[0].line;
  return new PrepullError(
    'ERR_PREPULL_INVALID',
    `${where}${line !== undefined ? ` (line ${line})` : ''}: not valid YAML: ${first?.message.trimEnd() ?? 'parse error'}`,
  );
}

/**
 * Adds the PrePulls of one file's text to `into`; returns the kinds of the documents of other
 * kinds it skipped, in order.
 */
export function parsePrePullDocuments(text: string, file: string, into: LoadedPrePulls): string[] {
  const documents = parseAllDocuments(text, { prettyErrors: true });
  // An empty stream is an empty array: the loop runs for documents only.
  const list = (Array.isArray(documents) ? documents : [documents]) as Document.Parsed[];
  const otherKinds: string[] = [];
  list.forEach((doc, index) => {
    const where = `${file}: document ${index + 1}`;
    const read = readDocument(doc, where, into);
    if (read === undefined) return;
    if ('otherKind' in read) {
      otherKinds.push(read.otherKind);
      into.skipped.push(`${file}#${index + 1} ${read.otherKind}`);
      return;
    }
    const { value } = read;
    const { prePull, issues } = validatePrePull(value);
    if (prePull === undefined) {
      const details = issues.map((i) => `${i.field}: ${i.message}`).join('; ');
      into.errors.push(
        new PrepullError('ERR_PREPULL_INVALID', `${where}${describeObject(value)}: ${details}`),
      );
      return;
    }
    const id = `${prePull.metadata.namespace}/${prePull.metadata.name}`;
    if (into.prePulls.some((p) => `${p.metadata.namespace}/${p.metadata.name}` === id)) {
      into.errors.push(
        new PrepullError(
          'ERR_PREPULL_INVALID',
          `${where} (PrePull ${id}): metadata.name: another ${API_VERSION} PrePull named ${id} was already read; names must be unique per namespace`,
        ),
      );
      return;
    }
    into.prePulls.push(prePull);
  });
  return otherKinds;
}

/** "Pod", "Deployment, Service ×2": each kind once, in the order first met, with its count. */
function kindList(kinds: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const kind of kinds) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return [...counts].map(([kind, n]) => (n === 1 ? kind : `${kind} ×${n}`)).join(', ');
}

/**
 * A file named on its own (not found in a directory) that gave no PrePull and no error: the
 * wrong file, most likely — a Pod manifest — which must not pass as "0 images, all fine".
 */
function noPrePullError(file: string, otherKinds: readonly string[]): PrepullError {
  const found =
    otherKinds.length === 0 ? 'it holds no document' : `it holds ${kindList(otherKinds)}`;
  return new PrepullError(
    'ERR_PREPULL_INVALID',
    `${file}: no ${KIND} (apiVersion ${API_VERSION}) in the file: ${found}`,
  );
}

/** Reads every PrePull from `paths` (files or directories). Never throws for bad content. */
export function loadPrePullFiles(paths: readonly string[]): LoadedPrePulls {
  const { files, named, errors } = listManifestFiles(paths);
  const loaded: LoadedPrePulls = { prePulls: [], errors, skipped: [], files };
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      loaded.errors.push(
        new PrepullError(
          'ERR_PREPULL_INVALID',
          `${file}: cannot read the file: ${fileErrorText(cause)}`,
          {
            cause,
          },
        ),
      );
      continue;
    }
    const before = { prePulls: loaded.prePulls.length, errors: loaded.errors.length };
    const otherKinds = parsePrePullDocuments(text, file, loaded);
    const nothing =
      loaded.prePulls.length === before.prePulls && loaded.errors.length === before.errors;
    if (nothing && named.includes(file)) loaded.errors.push(noPrePullError(file, otherKinds));
  }
  return loaded;
}
