// The part of client-go's JSONPath (k8s.io/client-go/util/jsonpath) that CRD printer columns use,
// evaluated as apiextensions-apiserver's table convertor does with AllowMissingKeys(true): fields
// (`.a.b`, `['a.b']`, `\.` escapes), `..` recursive descent, `[n]` (negative from the end),
// `[a:b]`, `[*]`, unions `[0,2]`, and filters `[?(@.type=="Ready")]` (==, !=, <, <=, >, >=, or
// existence). A missing key yields no result rather than an error.
import { isObject, type Json } from './json.ts';

type Step =
  | { kind: 'field'; name: string }
  | { kind: 'recursive'; name: string }
  | { kind: 'wildcard' }
  | { kind: 'index'; indexes: number[] }
  | { kind: 'slice'; start: number | undefined; end: number | undefined }
  | { kind: 'keys'; keys: string[] }
  | { kind: 'filter'; path: Step[]; op: string; literal: Json | undefined };

export class JsonPathError extends Error {}

/** Parses `{.a.b}` or `.a.b` into steps; throws JsonPathError on what client-go would refuse. */
export function parseJsonPath(expression: string): Step[] {
  let text = expression.trim();
  if (text.startsWith('{') && text.endsWith('}')) text = text.slice(1, -1).trim();
  if (text.startsWith('$')) text = text.slice(1);
  const steps: Step[] = [];
  let i = 0;
  const readName = (): string => {
    let name = '';
    while (i < text.length && text[i] !== '.' && text[i] !== '[') {
      if (text[i] === '\\' && i + 1 < text.length) i++;
      name += text.charAt(i);
      i++;
    }
    return name;
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '.') {
      if (text[i + 1] === '.') {
        i += 2;
        steps.push({ kind: 'recursive', name: readName() });
        continue;
      }
      i++;
      const name = readName();
      if (name === '*') steps.push({ kind: 'wildcard' });
      else if (name !== '') steps.push({ kind: 'field', name });
    } else if (c === '[') {
      const close = findClose(text, i);
      steps.push(parseBracket(text.slice(i + 1, close)));
      i = close + 1;
    } else {
      throw new JsonPathError(`unrecognized character in action: ${JSON.stringify(c)}`);
    }
  }
  return steps;
}

function findClose(text: string, open: number): number {
  let depth = 0;
  let quote = '';
  for (let j = open; j < text.length; j++) {
    const c = text[j]!;
    if (quote !== '') {
      if (c === quote) quote = '';
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '[' || c === '(') depth++;
    else if (c === ']' || c === ')') {
      depth--;
      if (depth === 0 && c === ']') return j;
    }
  }
  throw new JsonPathError('unclosed array expect ]');
}

function parseBracket(inner: string): Step {
  const body = inner.trim();
  if (body === '*') return { kind: 'wildcard' };
  if (body.startsWith('?(') && body.endsWith(')')) return parseFilter(body.slice(2, -1).trim());
  if (/^'.*'$|^".*"$/.test(body)) {
    return { kind: 'keys', keys: body.split(/\s*,\s*/).map((k) => k.slice(1, -1)) };
  }
  if (/^-?\d*:-?\d*(:-?\d*)?$/.test(body)) {
    const [start, end] = body.split(':');
    return {
      kind: 'slice',
      start: start === '' || start === undefined ? undefined : Number(start),
      end: end === '' || end === undefined ? undefined : Number(end),
    };
  }
  if (/^-?\d+(\s*,\s*-?\d+)*$/.test(body)) {
    return { kind: 'index', indexes: body.split(',').map((s) => Number(s.trim())) };
  }
  throw new JsonPathError(`invalid array index ${body}`);
}

function parseFilter(expr: string): Step {
  const match = /^@((?:\.[^.=!<>\s]+|\[[^\]]*\])*)\s*(==|!=|<=|>=|<|>)?\s*(.*)$/.exec(expr);
  if (match === null) throw new JsonPathError(`unrecognized filter: ${expr}`);
  const path = parseJsonPath(match[1] ?? '');
  const op = match[2] ?? '';
  if (op === '') return { kind: 'filter', path, op: 'exists', literal: undefined };
  return { kind: 'filter', path, op, literal: parseLiteral((match[3] ?? '').trim()) };
}

function parseLiteral(text: string): Json {
  if (/^".*"$|^'.*'$/.test(text)) return text.slice(1, -1);
  if (text === 'true' || text === 'false') return text === 'true';
  if (text === 'null' || text === 'nil') return null;
  const n = Number(text);
  if (text !== '' && Number.isFinite(n)) return n;
  throw new JsonPathError(`unrecognized literal: ${text}`);
}

function descendants(value: Json): Json[] {
  const out: Json[] = [value];
  if (Array.isArray(value)) for (const v of value) out.push(...descendants(v));
  else if (isObject(value)) for (const v of Object.values(value)) out.push(...descendants(v));
  return out;
}

function compare(a: Json | undefined, op: string, b: Json | undefined): boolean {
  switch (op) {
    case '==':
      return a === b;
    case '!=':
      return a !== b;
    default: {
      if (typeof a !== 'number' || typeof b !== 'number') return false;
      if (op === '<') return a < b;
      if (op === '<=') return a <= b;
      if (op === '>') return a > b;
      return a >= b;
    }
  }
}

function step(values: Json[], s: Step): Json[] {
  const out: Json[] = [];
  for (const v of values) {
    switch (s.kind) {
      case 'field':
        if (isObject(v) && s.name in v) out.push(v[s.name]!);
        break;
      case 'recursive':
        for (const d of descendants(v)) if (isObject(d) && s.name in d) out.push(d[s.name]!);
        break;
      case 'wildcard':
        if (Array.isArray(v)) out.push(...v);
        else if (isObject(v)) out.push(...Object.values(v));
        break;
      case 'keys':
        if (isObject(v)) for (const k of s.keys) if (k in v) out.push(v[k]!);
        break;
      case 'index':
        if (Array.isArray(v)) {
          for (const i of s.indexes) {
            const at = i < 0 ? v.length + i : i;
            if (at >= 0 && at < v.length) out.push(v[at]!);
          }
        }
        break;
      case 'slice':
        if (Array.isArray(v)) out.push(...v.slice(s.start, s.end));
        break;
      case 'filter':
        if (Array.isArray(v)) {
          for (const item of v) {
            const found = evaluate(s.path, item);
            if (s.op === 'exists' ? found.length > 0 : compare(found[0], s.op, s.literal)) {
              out.push(item);
            }
          }
        }
        break;
    }
  }
  return out;
}

/** Every value the path selects in `root`, in order; [] when a key is missing. */
export function evaluate(steps: Step[], root: Json): Json[] {
  let values: Json[] = [root];
  for (const s of steps) values = step(values, s);
  return values;
}

export type JsonPath = Step[];
