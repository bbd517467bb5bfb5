// What every printer is made of: column definitions (with metav1.ObjectMeta's descriptions for
// Name and Age), apimachinery's HumanDuration and the printers' timestamp helpers, and the
// default table convertor kube-apiserver uses for types without a printer.
import { meta, str, type Json, type JsonObject } from './json.ts';

export interface ColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

/** A printer: column definitions and the cells (and row conditions) of one object. */
export interface Printer {
  columns: ColumnDefinition[];
  cells(obj: JsonObject, now: Date): Json[];
  conditions?(obj: JsonObject): JsonObject[] | undefined;
}

/** metav1.ObjectMeta's swagger descriptions, which every printer's Name and Age columns carry. */
export const NAME_DESCRIPTION =
  'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names';
export const CREATION_DESCRIPTION =
  'CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata';

export function column(
  name: string,
  type: string,
  description: string,
  extra: { format?: string; priority?: number } = {},
): ColumnDefinition {
  return {
    name,
    type,
    format: extra.format ?? '',
    description,
    priority: extra.priority ?? 0,
  };
}

export const NAME_COLUMN = column('Name', 'string', NAME_DESCRIPTION, { format: 'name' });
export const AGE_COLUMN = column('Age', 'string', CREATION_DESCRIPTION);

/** apimachinery's duration.HumanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.trunc(hours / 24) % 365;
    const y = Math.trunc(hours / 24 / 365);
    return dy === 0 ? `${y}y` : `${y}y${dy}d`;
  }
  return `${Math.trunc(hours / 24 / 365)}y`;
}

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i;

/** Milliseconds of an RFC 3339 time; undefined when empty/absent, NaN when malformed. */
export function parseTime(value: Json | undefined): number | undefined {
  if (typeof value !== 'string' || value === '' || value === 'null') return undefined;
  return RFC3339.test(value) ? Date.parse(value) : Number.NaN;
}

/** printers' translateTimestampSince: "<unknown>" for a zero time. */
export function since(value: Json | undefined, now: Date): string {
  const t = parseTime(value);
  if (t === undefined || Number.isNaN(t)) return '<unknown>';
  return humanDuration(now.getTime() - t);
}

/** metav1.Time formatted as RFC 3339 in UTC; a zero time is Go's zero time. */
function rfc3339(value: Json | undefined): string {
  const t = parseTime(value);
  if (t === undefined || Number.isNaN(t)) return '0001-01-01T00:00:00Z';
  return new Date(t).toISOString().replace(/\.\d+Z$/, 'Z');
}

/** rest.NewDefaultTableConvertor: what kube-apiserver prints for a type without a printer. */
export const DEFAULT_PRINTER: Printer = {
  columns: [NAME_COLUMN, column('Created At', 'date', CREATION_DESCRIPTION)],
  cells: (obj) => [str(meta(obj).name), rfc3339(meta(obj).creationTimestamp)],
};
