// Server-side printing: `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` turns a get, a
// list or each watch event into a meta.k8s.io Table, as kube-apiserver's handlers do (transform
// in endpoints/handlers/response.go). Custom resources get apiextensions-apiserver's table
// convertor (the CRD version's additionalPrinterColumns, or Age alone when it has none); built-in
// kinds get kube-apiserver's printers (printers.ts), or rest.NewDefaultTableConvertor's Name and
// Created At where kube-apiserver uses that (CRDs, Roles, ClusterRoles).
import { isObject, meta, str, type Json, type JsonObject } from './json.ts';
import { evaluate, parseJsonPath, type JsonPath } from './jsonpath.ts';
import { BUILTIN_PRINTERS } from './printers.ts';
import {
  CREATION_DESCRIPTION,
  DEFAULT_PRINTER,
  NAME_COLUMN,
  column,
  humanDuration,
  parseTime,
  type Printer,
} from './printing.ts';
import { apiVersionOf, type ResourceType } from './resources.ts';
import { badRequest } from './status.ts';

/** The table version a client asked for, or undefined when it did not ask for a Table. */
export type TableVersion = 'v1' | 'v1beta1';

/**
 * Content negotiation as k8s.io/apiserver's negotiation package does it for JSON: the first
 * acceptable media range wins; `as=Table` with `g=meta.k8s.io` and `v=v1|v1beta1` is a Table,
 * a range without `as` is the object itself; other conversions (or types) are skipped.
 */
export function negotiateTable(accept: string | undefined): TableVersion | undefined {
  if (accept === undefined || accept.trim() === '') return undefined;
  for (const range of accept.split(',')) {
    const [type = '', ...params] = range.split(';').map((s) => s.trim());
    if (!['application/json', 'application/*', '*/*'].includes(type.toLowerCase())) continue;
    const p = new Map<string, string>();
    for (const param of params) {
      const eq = param.indexOf('=');
      if (eq > 0) p.set(param.slice(0, eq).trim().toLowerCase(), param.slice(eq + 1).trim());
    }
    const as = p.get('as');
    if (as === undefined) return undefined;
    if (as !== 'Table' || p.get('g') !== 'meta.k8s.io') continue;
    const v = p.get('v');
    if (v === 'v1' || v === 'v1beta1') return v;
  }
  return undefined;
}

/** Go's encoding/json of a decoded JSON value: map keys sorted, <, > and & escaped. */
function goJson(value: Json): string {
  const sorted = (v: Json): Json => {
    if (Array.isArray(v)) return v.map(sorted);
    if (!isObject(v)) return v;
    const out: JsonObject = {};
    for (const k of Object.keys(v).sort()) out[k] = sorted(v[k]!);
    return out;
  };
  return JSON.stringify(sorted(value))
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026');
}

/** What jsonpath's PrintResults writes for one value (string columns). */
function printed(value: Json): string {
  if (value === null) return '<no value>';
  if (typeof value === 'object') return goJson(value);
  return String(value);
}

/** tableconvertor's cellForJSONValue. */
function cellFor(type: string, value: Json, now: Date): Json {
  if (value === null) return null;
  switch (type) {
    case 'integer':
      return typeof value === 'number' ? Math.trunc(value) : null;
    case 'number':
      return typeof value === 'number' ? value : null;
    case 'boolean':
      return typeof value === 'boolean' ? value : null;
    case 'date': {
      if (typeof value !== 'string') return null;
      const t = parseTime(value);
      if (t === undefined) return '<unknown>';
      if (Number.isNaN(t)) return '<invalid>';
      return humanDuration(now.getTime() - t);
    }
    default:
      return null;
  }
}

/**
 * apiextensions-apiserver's tableconvertor for one CRD version: Name, then each
 * additionalPrinterColumn (Age alone when there are none), cells from the column's JSONPath.
 */
export function crdPrinter(printerColumns: JsonObject[] | undefined): Printer {
  const given = printerColumns ?? [];
  const defs =
    given.length > 0
      ? given
      : [
          {
            name: 'Age',
            type: 'date',
            description: CREATION_DESCRIPTION,
            jsonPath: '.metadata.creationTimestamp',
          },
        ];
  const paths: (JsonPath | undefined)[] = defs.map((d) => {
    try {
      return parseJsonPath(str(d.jsonPath));
    } catch {
      return undefined;
    }
  });
  const columns = defs.map((d) =>
    column(
      str(d.name),
      str(d.type),
      str(d.description) ||
        `Custom resource definition column (in JSONPath format): ${str(d.jsonPath)}`,
      { format: str(d.format), priority: typeof d.priority === 'number' ? d.priority : 0 },
    ),
  );
  return {
    columns: [NAME_COLUMN, ...columns],
    cells: (obj, now) => [
      str(meta(obj).name),
      ...columns.map((c, i) => {
        const path = paths[i];
        if (path === undefined) return null;
        const results = evaluate(path, obj);
        if (results.length === 0) return null;
        const value = results[0]!;
        return c.type === 'string' ? printed(value) : cellFor(c.type, value, now);
      }),
    ],
  };
}

export function printerFor(t: ResourceType): Printer {
  if (t.custom) return crdPrinter(t.printerColumns);
  return BUILTIN_PRINTERS[`${t.group}/${t.resource}`] ?? DEFAULT_PRINTER;
}

export interface TableRequest {
  version: TableVersion;
  /** TableOptions.includeObject: None, Metadata (default) or Object. */
  includeObject: string | null;
  /** Watches send column definitions on their first event only. */
  noHeaders?: boolean;
  now?: Date;
}

const INCLUDE = new Set(['', 'None', 'Metadata', 'Object']);

/** Refuses an includeObject kube-apiserver would refuse (400 BadRequest). */
export function checkTableRequest(request: TableRequest): void {
  const include = request.includeObject ?? '';
  if (INCLUDE.has(include)) return;
  // handlers.optionsForTransform: ValidateTableOptions' one field.NotSupported error.
  throw badRequest(
    `Unable to convert to Table as requested: includeObject: Unsupported value: ${JSON.stringify(include)}: supported values: "Metadata", "None", "Object"`,
  );
}

/** The Table for a list (an object with `items`) or for one object, as kube-apiserver's asTable. */
export function toTable(t: ResourceType, result: JsonObject, request: TableRequest): JsonObject {
  checkTableRequest(request);
  const printer = printerFor(t);
  const now = request.now ?? new Date();
  const tableApiVersion = `meta.k8s.io/${request.version}`;
  const isList = Array.isArray(result.items);
  const items = isList ? (result.items as Json[]).filter(isObject) : [result];
  const rows = items.map((item) => {
    const row: JsonObject = { cells: printer.cells(item, now) };
    const conditions = printer.conditions?.(item);
    if (conditions !== undefined) row.conditions = conditions;
    const include = request.includeObject ?? '';
    if (include === 'Object') {
      row.object = { apiVersion: apiVersionOf(t), kind: t.kind, ...item };
    } else if (include !== 'None') {
      row.object = {
        kind: 'PartialObjectMetadata',
        apiVersion: tableApiVersion,
        metadata: isObject(item.metadata) ? item.metadata : {},
      };
    }
    return row;
  });
  const source = isObject(result.metadata) ? result.metadata : {};
  const metadata: JsonObject = {};
  if (str(source.resourceVersion) !== '') metadata.resourceVersion = str(source.resourceVersion);
  if (isList && str(source.continue) !== '') metadata.continue = str(source.continue);
  if (isList && typeof source.remainingItemCount === 'number') {
    metadata.remainingItemCount = source.remainingItemCount;
  }
  return {
    kind: 'Table',
    apiVersion: tableApiVersion,
    metadata,
    columnDefinitions: request.noHeaders === true ? null : (printer.columns as unknown as Json),
    rows,
  };
}
