// The documents of a manifest file, each as a plain value with the line of any node in it. A
// rendered chart is thousands of documents, so this reads one document at a time (memory stays
// that of one) through js-yaml's event parser, and keeps of each node only its offset. A document
// that does not parse is an error for that document only.
import {
  EVENT_ID,
  type Event,
  YAMLException,
  constructFromEvents,
  getScalarValue,
  parseEvents,
} from 'js-yaml';

export type Path = readonly (string | number)[];

/** One document: its 0-based index in the file, its value, and where its nodes start. */
export interface ParsedDocument {
  readonly index: number;
  readonly value: unknown;
  /** The 1-based line of the node at `path`, or of its nearest ancestor that exists. */
  line(path: Path): number;
}

export interface DocumentError {
  readonly index: number;
  /** 1-based, where the parser could tell. */
  readonly line?: number;
  readonly message: string;
}

/** A node's start offset in the file, and its children by key or index. */
interface Located {
  start: number;
  children?: Map<string | number, Located>;
}

interface Open {
  node: Located;
  kind: 'document' | 'mapping' | 'sequence' | 'key';
  /** Sequence: the next index. Mapping: whether the next node is a key. */
  next: number;
  expectKey: boolean;
  key: string | number | undefined;
}

// A line that starts a document: "---" alone or followed by white space (YAML 1.2, 9.1.2). Such a
// line ends the document before it even inside a block scalar, so splitting on it is exact.
const DOCUMENT_START = /^---(?=[ \t]|$)/gm;
// What may stand before the first "---" without being a document of its own.
const NOT_CONTENT = /^(?:[ \t]*(?:#.*)?|%.*)$/;

/** The lines starting offsets, for offset → line. */
function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}

function lineAt(starts: readonly number[], offset: number): number {
  let low = 0;
  let high = starts.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if ((starts[mid] ?? Infinity) <= offset) low = mid;
    else high = mid - 1;
  }
  return low + 1;
}

/** The offsets at which the file's documents begin ("---" lines, and content before the first). */
function chunks(text: string): number[] {
  const starts: number[] = [];
  for (const match of text.matchAll(DOCUMENT_START)) starts.push(match.index);
  const head = text.slice(0, starts[0] ?? text.length);
  if (starts[0] !== 0 && !head.split('\n').every((line) => NOT_CONTENT.test(line))) {
    starts.unshift(0);
  }
  return starts;
}

/** Builds each document's tree of node offsets from the events (offsets shifted by `base`). */
function locate(events: readonly Event[], source: string, base: number): Located[] {
  const roots: Located[] = [];
  const stack: Open[] = [];
  const attach = (node: Located): Open['kind'] | undefined => {
    const top = stack.at(-1);
    if (top === undefined) return undefined;
    if (top.kind === 'mapping' && top.expectKey) {
      top.expectKey = false;
      top.key = undefined; // a key that is a collection or an alias: not a path step
      return 'key';
    }
    const key = top.kind === 'sequence' ? top.next++ : top.kind === 'mapping' ? top.key : 0;
    if (top.kind === 'mapping') top.expectKey = true;
    if (key !== undefined) (top.node.children ??= new Map()).set(key, node);
    return undefined;
  };
  for (const event of events) {
    if (event.type === EVENT_ID.DOCUMENT) {
      const root: Located = { start: -1 };
      roots.push(root);
      stack.push({ node: root, kind: 'document', next: 0, expectKey: false, key: undefined });
    } else if (event.type === EVENT_ID.MAPPING || event.type === EVENT_ID.SEQUENCE) {
      const node: Located = { start: base + event.start };
      const asKey = attach(node) === 'key';
      const kind = asKey ? 'key' : event.type === EVENT_ID.MAPPING ? 'mapping' : 'sequence';
      stack.push({ node, kind, next: 0, expectKey: kind === 'mapping', key: undefined });
    } else if (event.type === EVENT_ID.SCALAR) {
      const top = stack.at(-1);
      if (top?.kind === 'mapping' && top.expectKey) {
        top.key = getScalarValue(source, event);
        top.expectKey = false;
      } else {
        attach({ start: base + event.valueStart });
      }
    } else if (event.type === EVENT_ID.ALIAS) {
      attach({ start: base + event.anchorStart });
    } else {
      stack.pop(); // EVENT_ID.POP
    }
  }
  return roots;
}

function finder(root: Located, starts: readonly number[]): (path: Path) => number {
  const top = root.children?.get(0);
  return (path) => {
    let node = top;
    let found = top?.start ?? -1;
    for (const step of path) {
      node = node?.children?.get(step);
      if (node === undefined) break;
      found = node.start;
    }
    return found < 0 ? 1 : lineAt(starts, found);
  };
}

function problem(error: unknown, index: number, startLine: number): DocumentError {
  if (error instanceof YAMLException) {
    const mark = error.mark;
    return {
      index,
      ...(mark === undefined ? {} : { line: startLine + mark.line }),
      message: error.reason,
    };
  }
  return { index, message: error instanceof Error ? error.message : String(error) };
}

/** Every document of `text`, in order: parsed, or why it could not be. */
export function* readDocuments(text: string): Generator<ParsedDocument | DocumentError> {
  const starts = lineStarts(text);
  const offsets = chunks(text);
  let index = 0;
  for (const [n, start] of offsets.entries()) {
    const source = text.slice(start, offsets[n + 1] ?? text.length);
    let events: Event[];
    let values: unknown[];
    try {
      events = parseEvents(source, {});
      values = constructFromEvents(events, { source });
    } catch (error) {
      yield problem(error, index++, lineAt(starts, start));
      continue;
    }
    const roots = locate(events, source, start);
    for (const [i, value] of values.entries()) {
      yield { index: index++, value, line: finder(roots[i] ?? { start: -1 }, starts) };
    }
  }
}

export function isDocumentError(value: ParsedDocument | DocumentError): value is DocumentError {
  return 'message' in value;
}
