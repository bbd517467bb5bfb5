// Reads PrePull objects from YAML or JSON files and directories, for `prepull sync`. Every
// problem names the file, the document and the object, and fails only that object: the other
// objects in the same file still apply. Documents of other kinds are skipped (a directory of
// manifests may hold a Namespace or a Secret beside its PrePulls), but a file named on its own
// that holds no PrePull at all is an error that says what it holds instead. What a file may cost
// is bounded before it is read (only regular files, at most MAX_FILE_BYTES) and before a PrePull
// is built from it (MAX_DOCUMENT_BYTES, MAX_ALIASES): a hostile file fails alone, at once.
import {
  type Stats,
  closeSync,
  constants,
  fstatSync,
  openSync,
  readdirSync,
  readSync,
  statSync,
} from 'node:fs';
import { extname, join } from 'node:path';
import {
  type Document,
  type YAMLError,
  isMap,
  isScalar,
  isSeq,
  parseAllDocuments,
  visit,
} from 'yaml';
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
  /** What a person should hear about though nothing failed: a directory with no manifest. */
  warnings: string[];
}

/** The largest file read: a directory of manifests may hold big ConfigMaps beside its PrePulls. */
export const MAX_FILE_BYTES = 4 * 1024 * 1024;
/**
 * The largest PrePull document: 256 images of 500-character references (longer than any real
 * one) fit twice. Parsing this much YAML costs about 0.5 s and 50 MiB at worst.
 */
export const MAX_DOCUMENT_BYTES = 256 * 1024;
/** Alias expansions a PrePull document may make (the yaml library's own default). */
export const MAX_ALIASES = 100;
/** Aliases (`*name`) a PrePull document may hold before it is parsed at all. */
export const MAX_ALIAS_NODES = 1000;
/**
 * Documents that may be PrePulls parsed from one file: each costs the YAML library a parse of
 * its own, and ten thousand small ones in a 4 MiB file took 3–5 s and up to 124 MiB at every
 * reload. A file of more PrePulls than this is read up to the limit and reported.
 */
export const MAX_PREPULL_DOCUMENTS = 1000;

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/** Why a file or directory named on the command line cannot be read; undefined when it can. */
export function unreadablePath(path: string): string | undefined {
  try {
    const stats = statSync(path);
    if (stats.isDirectory()) readdirSync(path);
    // Never opened unless regular: opening a FIFO blocks until something writes to it.
    else if (!stats.isFile()) return `it is ${fileType(stats)}; prepull reads only regular files`;
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
  warnings: string[];
} {
  const files: string[] = [];
  const named: string[] = [];
  const errors: PrepullError[] = [];
  const warnings: string[] = [];
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
    const before = files.length;
    for (const name of readdirSync(path).sort()) {
      if (EXTENSIONS.has(extname(name)) && !name.startsWith('.')) files.push(join(path, name));
    }
    if (files.length === before) warnings.push(`${path}: no *.yaml, *.yml or *.json file in it`);
  }
  return { files, named, errors, warnings };
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

/** The first key that appears twice in one mapping of `doc`, in one pass (yaml's own check is quadratic). */
function duplicateKey(doc: Document.Parsed): string | undefined {
  let found: string | undefined;
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = isScalar(pair.key) ? pair.key.value : pair.key;
        if (seen.has(key)) {
          found = String(key);
          return visit.BREAK;
        }
        seen.add(key);
      }
      return undefined;
    },
  });
  return found;
}

/** Why a PrePull document may not be built (a repeated key), or undefined. */
function documentProblem(doc: Document.Parsed): string | undefined {
  const key = duplicateKey(doc);
  return key === undefined
    ? undefined
    : `not valid YAML: the key ${JSON.stringify(key.slice(0, 80))} appears twice in one mapping`;
}

/**
 * The document as a value when it may be a PrePull; its kind when it is of another kind;
 * undefined when it is empty or cannot be read (added to `errors`).
 */
function readDocument(
  doc: Document.Parsed,
  where: string,
  into: LoadedPrePulls,
  lineOffset: number,
): DocumentRead {
  // A tag the YAML library does not know (`!!js/function`, `!!python/object`) is only a warning
  // to it, and the value a plain string; a PrePull needs no tag, and one is a sign of a file
  // written for another parser, so it fails the document as an error would.
  const yamlProblem = doc.errors[0] ?? doc.warnings.find((w) => w.code === 'TAG_RESOLVE_FAILED');
  if (yamlProblem !== undefined) {
    into.errors.push(yamlError(yamlProblem, where, lineOffset));
    return undefined;
  }
  // An empty document ("---" and nothing) holds a null scalar.
  const contents = doc.contents;
  if (contents === null || (isScalar(contents) && contents.value === null)) return undefined;
  // A JSON array or a bare value that names PrePull (only such documents are parsed) is no
  // object kubectl would take either: an error, not a PrePull skipped without a word.
  if (!isMap(contents)) {
    into.errors.push(
      new PrepullError(
        'ERR_PREPULL_INVALID',
        `${where}: it is ${isSeq(contents) ? 'a list' : 'a plain value'}, not an object; a PrePull is one mapping per document (separate several with ---)`,
      ),
    );
    return undefined;
  }
  // The kind first, from the document's own nodes: a document of another kind is skipped
  // without building it, so a ConfigMap full of YAML aliases beside the PrePulls costs nothing.
  const header = { apiVersion: scalar(doc.get('apiVersion')), kind: scalar(doc.get('kind')) };
  if (!isPrePullKind(header)) return { otherKind: header.kind ?? 'unknown kind' };
  const problem = documentProblem(doc);
  if (problem !== undefined) {
    into.errors.push(new PrepullError('ERR_PREPULL_INVALID', `${where}: ${problem}`));
    return undefined;
  }
  try {
    // More alias expansions than MAX_ALIASES (an alias bomb) fail this document, never the
    // process or the other documents.
    return { value: doc.toJS({ maxAliasCount: MAX_ALIASES }) as unknown };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    into.errors.push(
      new PrepullError(
        'ERR_PREPULL_INVALID',
        `${where}: cannot be read: ${reason} (at most ${MAX_ALIASES} alias expansions)`,
      ),
    );
    return undefined;
  }
}

/**
 * The parser's message whole: what is wrong, then the excerpt with a caret under the spot. The
 * document was parsed alone: its lines are counted from the file's start again here.
 */
function yamlError(first: YAMLError, where: string, lineOffset: number): PrepullError {
  const line = first.linePos?.[0].line;
  const message = first.message
    .trimEnd()
    .replace(
      / at line (\d+), column/,
      (_, n: string) => ` at line ${Number(n) + lineOffset}, column`,
    );
  return new PrepullError(
    'ERR_PREPULL_INVALID',
    `${where}${line !== undefined ? ` (line ${line + lineOffset})` : ''}: not valid YAML: ${message}`,
  );
}

// A line that starts a document: "---" alone or followed by white space (YAML 1.2, 9.1.2). Such
// a line ends the document before it even inside a block scalar, so splitting on it is exact
// (src/audit/documents.ts splits the same way).
const DOCUMENT_START = /^---(?=[ \t]|$)/gm;
// A line of content: not blank, not a comment, not a directive ("%YAML 1.2").
const CONTENT_LINE = /^(?!%)[ \t]*[^\s#]/m;
// A document that may be a PrePull names its kind or its group somewhere.
const MAY_BE_PREPULL = /\bPrePull\b|prepull\.dev\//;
const YAML_KIND = /^kind:[ \t]*["']?([A-Za-z][A-Za-z0-9]*)/m;
const JSON_KIND = /"kind"\s*:\s*"([A-Za-z][A-Za-z0-9]*)"/;
// An alias (`*name`) where a node may start; text in quotes mostly escapes it, and a block
// scalar's `*word` may count too: the limit is far above what a PrePull would have.
const ALIAS = /(?:^|[\s,[{])\*[^\s,[\]{}]/g;

interface Chunk {
  text: string;
  /** Lines before it in the file. */
  lineOffset: number;
}

/** The file's documents as text, each with where it starts; content before a first "---" too. */
function documentChunks(text: string): Chunk[] {
  const starts = [...text.matchAll(DOCUMENT_START)].map((m) => m.index);
  if (starts[0] !== 0 && CONTENT_LINE.test(text.slice(0, starts[0] ?? text.length))) {
    starts.unshift(0);
  }
  let lineOffset = 0;
  let counted = 0;
  return starts.map((start, n) => {
    for (let i = text.indexOf('\n', counted); i !== -1 && i < start; i = text.indexOf('\n', i + 1))
      lineOffset += 1;
    counted = start;
    return { text: text.slice(start, starts[n + 1] ?? text.length), lineOffset };
  });
}

/** The kind a document of another kind names, from its text; undefined when it is empty. */
function chunkKind(text: string): string | undefined {
  const body = text.startsWith('---') ? text.slice(3) : text;
  if (!CONTENT_LINE.test(body)) return undefined;
  const kind = YAML_KIND.exec(body)?.[1] ?? JSON_KIND.exec(body)?.[1];
  if (kind !== undefined) return kind;
  return body.trimStart().startsWith('[') ? 'a list' : 'unknown kind';
}

/** Why a document that may be a PrePull is not parsed at all: its size, its aliases. */
function chunkProblem(text: string): string | undefined {
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_DOCUMENT_BYTES) {
    return `the document is ${bytes} bytes; a PrePull document may have at most ${MAX_DOCUMENT_BYTES} (split it into several PrePulls)`;
  }
  let aliases = 0;
  for (ALIAS.lastIndex = 0; ALIAS.exec(text) !== null;) {
    if (++aliases > MAX_ALIAS_NODES) {
      return `it holds more than ${MAX_ALIAS_NODES} YAML aliases (*name); a PrePull needs none`;
    }
  }
  return undefined;
}

/**
 * Adds the PrePulls of one file's text to `into`; returns the kinds of the documents of other
 * kinds it skipped, in order. Only a document that may be a PrePull is parsed — the YAML
 * library takes seconds and hundreds of MiB for a MiB of YAML — and only when it is within the
 * limits; one of another kind is known by its `kind:` line.
 */
export function parsePrePullDocuments(text: string, file: string, into: LoadedPrePulls): string[] {
  const otherKinds: string[] = [];
  let index = 0;
  const skip = (kind: string): void => {
    otherKinds.push(kind);
    into.skipped.push(`${file}#${index} ${kind}`);
  };
  let parsedDocuments = 0;
  for (const chunk of documentChunks(text)) {
    if (!MAY_BE_PREPULL.test(chunk.text)) {
      index += 1;
      const kind = chunkKind(chunk.text);
      if (kind !== undefined) skip(kind);
      continue;
    }
    if (++parsedDocuments > MAX_PREPULL_DOCUMENTS) {
      into.errors.push(
        new PrepullError(
          'ERR_PREPULL_INVALID',
          `${file}: document ${index + 1}: more than ${MAX_PREPULL_DOCUMENTS} documents in the file may be PrePulls; it is read no further (split it into several files)`,
        ),
      );
      break;
    }
    const problem = chunkProblem(chunk.text);
    if (problem !== undefined) {
      index += 1;
      into.errors.push(
        new PrepullError('ERR_PREPULL_INVALID', `${file}: document ${index}: ${problem}`),
      );
      continue;
    }
    // uniqueKeys off: the library compares every key with every other; documentProblem checks
    // in one pass instead.
    const parsed = parseAllDocuments(chunk.text, { prettyErrors: true, uniqueKeys: false });
    // An empty stream is an empty array: the loop runs for documents only.
    for (const doc of (Array.isArray(parsed) ? parsed : [parsed]) as Document.Parsed[]) {
      index += 1;
      const where = `${file}: document ${index}`;
      const read = readDocument(doc, where, into, chunk.lineOffset);
      if (read === undefined) continue;
      if ('otherKind' in read) skip(read.otherKind);
      else addPrePull(read.value, where, into);
    }
  }
  return otherKinds;
}

/** Validates one document's value and adds it, or the reason it is not a PrePull, to `into`. */
function addPrePull(value: unknown, where: string, into: LoadedPrePulls): void {
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

/** What a stat says a path is, for a file that is not a regular file. */
function fileType(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** Why a file's stat forbids reading it, or undefined. */
function statProblem(stats: Stats): string | undefined {
  if (!stats.isFile()) return `it is ${fileType(stats)}; prepull reads only regular files`;
  if (stats.size > MAX_FILE_BYTES) {
    return `it is ${stats.size} bytes; a manifest file may have at most ${MAX_FILE_BYTES}`;
  }
  return undefined;
}

/** "UTF-16" or "UTF-32" when `bytes` start with that encoding's byte-order mark. */
function wideTextMark(bytes: Buffer): string | undefined {
  const [a, b, c, d] = bytes;
  if (
    (a === 0xff && b === 0xfe && c === 0 && d === 0) ||
    (a === 0 && b === 0 && c === 0xfe && d === 0xff)
  ) {
    return 'UTF-32';
  }
  if ((a === 0xff && b === 0xfe) || (a === 0xfe && b === 0xff)) return 'UTF-16';
  return undefined;
}

/**
 * The text of a manifest file, or why it may not be read. Only a regular file of at most
 * MAX_FILE_BYTES is opened (symbolic links followed, the kernel's ELOOP bounding a loop): a FIFO
 * would block the process, a device or a huge file would never end. It is checked again on the
 * open descriptor (O_NONBLOCK, so a FIFO put in its place cannot block) and read no further
 * than the limit, for a file swapped or grown in between.
 */
export function readManifest(file: string): { text: string } | { problem: string } {
  let fd: number | undefined;
  try {
    const before = statProblem(statSync(file));
    if (before !== undefined) return { problem: before };
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    const after = statProblem(fstatSync(fd));
    if (after !== undefined) return { problem: after };
    // Uninitialised: only the pages the file fills are touched.
    const buffer = Buffer.allocUnsafe(MAX_FILE_BYTES + 1);
    let length = 0;
    for (let n = -1; n !== 0 && length < buffer.length; length += n) {
      n = readSync(fd, buffer, length, buffer.length - length, null);
    }
    if (length > MAX_FILE_BYTES) {
      return { problem: `it grew past ${MAX_FILE_BYTES} bytes while read` };
    }
    // Read as UTF-8, UTF-16 or UTF-32 text is NULs between letters: no document would name its
    // kind, and a PrePull in it would be skipped as some other kind, without a word.
    const bom = wideTextMark(buffer.subarray(0, length));
    if (bom !== undefined) {
      return {
        problem: `it is ${bom} text (it starts with a byte-order mark); prepull reads UTF-8: convert it, e.g. with iconv -t UTF-8`,
      };
    }
    return { text: buffer.toString('utf8', 0, length) };
  } catch (cause) {
    return { problem: fileErrorText(cause) };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Reads every PrePull from `paths` (files or directories). Never throws for bad content. */
export function loadPrePullFiles(paths: readonly string[]): LoadedPrePulls {
  const { files, named, errors, warnings } = listManifestFiles(paths);
  const loaded: LoadedPrePulls = { prePulls: [], errors, skipped: [], files, warnings };
  for (const file of files) {
    const read = readManifest(file);
    if ('problem' in read) {
      loaded.errors.push(
        new PrepullError('ERR_PREPULL_INVALID', `${file}: cannot read the file: ${read.problem}`),
      );
      continue;
    }
    const before = { prePulls: loaded.prePulls.length, errors: loaded.errors.length };
    const otherKinds = parsePrePullDocuments(read.text, file, loaded);
    const nothing =
      loaded.prePulls.length === before.prePulls && loaded.errors.length === before.errors;
    if (!nothing) continue;
    if (named.includes(file)) loaded.errors.push(noPrePullError(file, otherKinds));
    else if (otherKinds.length === 0) loaded.warnings.push(`${file}: no document in it`);
  }
  return loaded;
}
