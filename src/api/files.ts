// Reads PrePull objects from YAML or JSON files and directories, for `prepull sync`. Every
// problem names the file, the document and the object, and fails only that object: the other
// objects in the same file still apply. Documents of other kinds are skipped (a directory of
// manifests may hold a Namespace or a Secret beside its PrePulls).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { type Document, isMap, parseAllDocuments } from 'yaml';
import { PrepullError } from '../errors.ts';
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

/** Files named directly, plus *.yaml, *.yml and *.json directly inside named directories. */
export function listManifestFiles(paths: readonly string[]): {
  files: string[];
  errors: PrepullError[];
} {
  const files: string[] = [];
  const errors: PrepullError[] = [];
  for (const path of paths) {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(path).isDirectory();
    } catch (cause) {
      errors.push(
        new PrepullError('ERR_PREPULL_INVALID', `${path}: cannot read: no such file or directory`, {
          cause,
        }),
      );
      continue;
    }
    if (!isDirectory) {
      files.push(path);
      continue;
    }
    for (const name of readdirSync(path).sort()) {
      if (EXTENSIONS.has(extname(name)) && !name.startsWith('.')) files.push(join(path, name));
    }
  }
  return { files, errors };
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

/**
 * The document as a value when it may be a PrePull; undefined when it is empty, of another kind
 * (added to `skipped`) or cannot be read (added to `errors`).
 */
function documentValue(
  doc: Document.Parsed,
  file: string,
  index: number,
  into: LoadedPrePulls,
): unknown {
  const where = `${file}: document ${index + 1}`;
  if (doc.errors.length > 0) {
    into.errors.push(yamlError(doc, where));
    return undefined;
  }
  // The kind first, from the document's own nodes: a document of another kind is skipped
  // without building it, so a ConfigMap full of YAML aliases beside the PrePulls costs nothing.
  const header = { apiVersion: scalar(doc.get('apiVersion')), kind: scalar(doc.get('kind')) };
  if (isMap(doc.contents) && !isPrePullKind(header)) {
    into.skipped.push(`${file}#${index + 1} ${header.kind ?? 'unknown kind'}`);
    return undefined;
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
    into.skipped.push(`${file}#${index + 1} ${typeof kind === 'string' ? kind : 'unknown kind'}`);
    return undefined;
  }
  return value;
}

function yamlError(doc: Document.Parsed, where: string): PrepullError {
  const first = doc.errors[0];
  const line = first?.linePos?.[0].line;
  return new PrepullError(
    'ERR_PREPULL_INVALID',
    `${where}${line !== undefined ? ` (line ${line})` : ''}: not valid YAML: ${first?.message.split('\n')[0] ?? 'parse error'}`,
  );
}

export function parsePrePullDocuments(text: string, file: string, into: LoadedPrePulls): void {
  const documents = parseAllDocuments(text, { prettyErrors: true });
  // An empty stream is an empty array: the loop runs for documents only.
  const list = (Array.isArray(documents) ? documents : [documents]) as Document.Parsed[];
  list.forEach((doc, index) => {
    const where = `${file}: document ${index + 1}`;
    const value = documentValue(doc, file, index, into);
    if (value === undefined) return;
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
}

/** Reads every PrePull from `paths` (files or directories). Never throws for bad content. */
export function loadPrePullFiles(paths: readonly string[]): LoadedPrePulls {
  const { files, errors } = listManifestFiles(paths);
  const loaded: LoadedPrePulls = { prePulls: [], errors, skipped: [], files };
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      loaded.errors.push(
        new PrepullError('ERR_PREPULL_INVALID', `${file}: cannot read the file`, { cause }),
      );
      continue;
    }
    parsePrePullDocuments(text, file, loaded);
  }
  return loaded;
}
