// The PrePull resource (prepull.dev/v1alpha1): its types, defaults and validation. Validation
// reports every problem with its field path; the callers add where the object came from (a
// file and document, or the API). An image reference that does not parse is not an object
// error: it fails only that image, in the engine, so the object's other images still apply.
import { validateDetailed } from 'node-cron';
import { MAX_REFERENCE_LENGTH } from '../image/reference.ts';

export const GROUP = 'prepull.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'PrePull';

export const MAX_IMAGES = 256;
export const DEFAULTS = {
  pullPolicy: 'IfNotPresent',
  verify: 'Registry',
  pin: true,
  timeoutSeconds: 1800,
  backoffLimit: 6,
  cleanup: 'Unpin',
  scheduleJitterSeconds: 300,
} as const;

/** The widest window `spec.scheduleJitterSeconds` may spread a schedule's firings over: an hour. */
export const MAX_SCHEDULE_JITTER_SECONDS = 3600;

export type PullPolicy = 'IfNotPresent' | 'Always';
export type VerifyMode = 'Registry' | 'None';
/** What happens to an image no PrePull wants any more: unpinned, or also removed (ADR 0014). */
export type CleanupPolicy = 'Unpin' | 'Remove';

/** How many nodes may pull at once, and whether new nodes may start (the controller paces). */
export interface RolloutSpec {
  /** A count of nodes (1-5000) or a percent of the selected nodes ("10%", at least one node). */
  maxConcurrentNodes?: number | string;
  paused?: boolean;
}

/** The longest `spec.nodeLabel`: it is the name part of the label key `prepull.dev/NAME`. */
export const NODE_LABEL_PREFIX = 'prepull.dev/';

export interface PrePullSpec {
  images: { image: string }[];
  nodeSelector: Record<string, string>;
  imagePullSecrets: { name: string }[];
  pullPolicy: PullPolicy;
  verify: VerifyMode;
  schedule?: string;
  /** The IANA time zone `schedule` reads in; absent: the local zone of the prepull process. */
  timeZone?: string;
  /**
   * Each node fires `schedule` this many seconds late at most, at an offset of its own (by node
   * and PrePull), so a fleet does not ask the registry in the same second; 0: on the dot.
   */
  scheduleJitterSeconds: number;
  pin: boolean;
  timeoutSeconds: number;
  backoffLimit: number;
  /** Paced by the controller (ADR 0014); absent: every selected node pulls at once. */
  rollout?: RolloutSpec;
  /** The controller keeps `prepull.dev/<nodeLabel>=true` on the selected nodes ready for it. */
  nodeLabel?: string;
  cleanup: CleanupPolicy;
}

export interface PrePull {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    labels?: Record<string, string>;
  };
  spec: PrePullSpec;
}

export interface FieldIssue {
  /** Path in the object, e.g. `spec.images[3].image`. */
  field: string;
  message: string;
}

/** An object's top level: `status` is the controller's, read from the API and ignored here. */
const TOP_FIELDS = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);

const SPEC_FIELDS = new Set([
  'images',
  'nodeSelector',
  'imagePullSecrets',
  'pullPolicy',
  'verify',
  'schedule',
  'timeZone',
  'scheduleJitterSeconds',
  'pin',
  'timeoutSeconds',
  'backoffLimit',
  'rollout',
  'nodeLabel',
  'cleanup',
]);

// Kubernetes' DNS-1123 subdomain (object names) and label syntax.
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// C0 and C1 control characters and DEL.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

function show(value: unknown): string {
  // JSON would print NaN and the infinities (YAML's .nan, .inf, 1e400) as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  // JSON.stringify gives undefined (despite its type) for undefined, functions and symbols.
  const json = value === undefined ? undefined : (JSON.stringify(value) as string | undefined);
  const text = json ?? (value === undefined ? 'nothing' : typeof value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Why `key` is not a valid Kubernetes label key, or undefined when it is. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return `prefix ${show(prefix)} must be a DNS subdomain (lowercase letters, digits, '-' and '.')`;
  }
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    return `name ${show(name)} must be 1-63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

function checkName(value: unknown, field: string, issues: FieldIssue[], max = 253): void {
  if (typeof value !== 'string' || value.length === 0) {
    issues.push({ field, message: 'required: a lowercase DNS name' });
  } else if (value.length > max || !DNS_SUBDOMAIN.test(value)) {
    issues.push({
      field,
      message: `${show(value)} is not a valid name: lowercase letters, digits, '-' and '.', at most ${max} characters`,
    });
  }
}

function checkImages(value: unknown, issues: FieldIssue[]): { image: string }[] {
  if (!Array.isArray(value) || value.length === 0) {
    issues.push({
      field: 'spec.images',
      message: 'required: a list of 1 to 256 entries like {image: registry/name:tag}',
    });
    return [];
  }
  if (value.length > MAX_IMAGES) {
    issues.push({
      field: 'spec.images',
      message: `has ${value.length} entries; at most ${MAX_IMAGES} are allowed (split it into several PrePulls)`,
    });
  }
  const images: { image: string }[] = [];
  value.forEach((entry: unknown, index) => {
    const field = `spec.images[${index}]`;
    if (!isRecord(entry)) {
      issues.push({
        field,
        message: `must be an object like {image: registry/name:tag}, got ${show(entry)}`,
      });
      return;
    }
    for (const key of Object.keys(entry)) {
      if (key !== 'image')
        issues.push({
          field: `${field}.${key}`,
          message: 'unknown field (an entry has only "image")',
        });
    }
    const image = entry.image;
    if (typeof image !== 'string' || image.trim() === '') {
      issues.push({
        field: `${field}.image`,
        message: `required: an image reference string, got ${show(image)}`,
      });
      return;
    }
    // Checked here, before anything logs, parses or sends it: no reference is this long.
    if (image.length > MAX_REFERENCE_LENGTH) {
      issues.push({
        field: `${field}.image`,
        message: `${show(image)} is ${image.length} characters long; an image reference has at most ${MAX_REFERENCE_LENGTH}`,
      });
      return;
    }
    // A control character (a NUL, a newline, an escape sequence) is never part of a reference,
    // and printed in a table or a terminal it could forge lines or colours: the object fails
    // here, by the file's name, and the reference itself is never shown.
    const control = CONTROL_CHARACTER.exec(image.trim());
    if (control !== null) {
      const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
      issues.push({
        field: `${field}.image`,
        message: `holds the control character U+${code} at offset ${control.index}; an image reference is printable text`,
      });
      return;
    }
    images.push({ image: image.trim() });
  });
  return images;
}

function checkNodeSelector(value: unknown, issues: FieldIssue[]): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) {
    issues.push({
      field: 'spec.nodeSelector',
      message: `must be a map of label keys to values, got ${show(value)}`,
    });
    return {};
  }
  const selector: Record<string, string> = {};
  for (const [key, raw] of Object.entries(value)) {
    const field = `spec.nodeSelector[${show(key)}]`;
    const keyProblem = labelKeyProblem(key);
    if (keyProblem !== undefined)
      issues.push({ field, message: `invalid label key: ${keyProblem}` });
    if (typeof raw !== 'string') {
      const quote = typeof raw === 'number' || typeof raw === 'boolean' ? ' (quote it)' : '';
      issues.push({ field, message: `label values are strings${quote}, got ${show(raw)}` });
      continue;
    }
    if (raw.length > 63 || !LABEL_VALUE.test(raw)) {
      issues.push({
        field,
        message: `invalid label value ${show(raw)}: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
      });
    }
    selector[key] = raw;
  }
  return selector;
}

function checkSecrets(value: unknown, issues: FieldIssue[]): { name: string }[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    issues.push({
      field: 'spec.imagePullSecrets',
      message: `must be a list like [{name: regcred}], got ${show(value)}`,
    });
    return [];
  }
  const secrets: { name: string }[] = [];
  value.forEach((entry: unknown, index) => {
    const field = `spec.imagePullSecrets[${index}].name`;
    const name = isRecord(entry) ? entry.name : undefined;
    checkName(name, field, issues);
    if (typeof name === 'string') secrets.push({ name });
  });
  return secrets;
}

function checkEnum<T extends string>(
  value: unknown,
  field: string,
  allowed: readonly T[],
  fallback: T,
  issues: FieldIssue[],
): T {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value))
    return value as T;
  issues.push({ field, message: `must be one of ${allowed.join(', ')}, got ${show(value)}` });
  return fallback;
}

function checkInteger(
  value: unknown,
  field: string,
  range: [number, number],
  fallback: number,
  issues: FieldIssue[],
): number {
  if (value === undefined || value === null) return fallback;
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < range[0] ||
    value > range[1]
  ) {
    issues.push({
      field,
      message: `must be a whole number from ${range[0]} to ${range[1]}, got ${show(value)}`,
    });
    return fallback;
  }
  return value;
}

/** Why `expression` is not a valid schedule (node-cron syntax), or undefined when it is. */
export function scheduleProblem(expression: string): string | undefined {
  const result = validateDetailed(expression);
  if (result.valid) return undefined;
  const details = result.errors.map((e) => `${e.field}: ${e.message}`).join('; ');
  return `${show(expression)} is not a valid cron schedule (minute hour day-of-month month day-of-week, optionally seconds first)${details ? `: ${details}` : ''}`;
}

function checkSchedule(value: unknown, issues: FieldIssue[]): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') {
    issues.push({
      field: 'spec.schedule',
      message: `must be a cron expression string, got ${show(value)}`,
    });
    return undefined;
  }
  const problem = scheduleProblem(value);
  if (problem !== undefined) issues.push({ field: 'spec.schedule', message: problem });
  return value;
}

// IANA's naming rules, as Kubernetes checks a CronJob's timeZone (pkg/apis/batch/validation):
// parts of at most 14 letters, digits, '.', '_', '-' or '+', not starting with '-', joined by '/'.
const TIME_ZONE_PART = /^[A-Za-z0-9._+-]{1,14}$/;
/** The longest `spec.timeZone` (the longest IANA name, America/Argentina/ComodRivadavia, is 32). */
export const MAX_TIME_ZONE_LENGTH = 64;

/**
 * Why `zone` is not a time zone a schedule can read in, or undefined when it is: an IANA name
 * the tz database Node ships knows (Intl), spelled as that database spells it. "Local" is
 * refused, as Kubernetes refuses it for a CronJob: leaving the field out means the local zone.
 */
export function timeZoneProblem(zone: string): string | undefined {
  const shape = `an IANA time zone name such as Europe/Berlin or UTC`;
  if (zone === '') return `must be ${shape}, or absent for the local zone of the prepull process`;
  const parts = zone.split('/');
  if (
    zone.length > MAX_TIME_ZONE_LENGTH ||
    parts.some((p) => p === '.' || p === '..' || p.startsWith('-') || !TIME_ZONE_PART.test(p))
  ) {
    return `${show(zone)} is not ${shape}: parts of at most 14 letters, digits, '.', '_', '-' or '+' joined by '/'`;
  }
  if (zone.toLowerCase() === 'local') {
    return `${show(zone)} is not allowed: name the zone, such as Europe/Berlin or UTC (absent means the local zone of the prepull process)`;
  }
  let known: string;
  try {
    known = new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return `${show(zone)} is not a time zone the tz database knows (${shape}; this prepull's Node has tz data ${process.versions.tz ?? 'of unknown version'})`;
  }
  // Intl matches names case-insensitively; the tz database (and Kubernetes) do not.
  if (known !== zone && known.toLowerCase() === zone.toLowerCase()) {
    return `${show(zone)}: time zone names are case-sensitive; did you mean ${show(known)}?`;
  }
  return undefined;
}

function checkTimeZone(value: unknown, issues: FieldIssue[]): string | undefined {
  if (value === undefined || value === null) return undefined;
  const problem =
    typeof value === 'string'
      ? timeZoneProblem(value)
      : `must be a time zone name string such as Europe/Berlin, got ${show(value)}`;
  if (problem === undefined) return value as string;
  issues.push({ field: 'spec.timeZone', message: problem });
  return undefined;
}

/** The largest count `spec.rollout.maxConcurrentNodes` takes (the CRD's maximum). */
export const MAX_CONCURRENT_NODES = 5000;
const PERCENT = /^([0-9]{1,3})%$/;

/** Why `value` is not a valid maxConcurrentNodes, or undefined when it is. */
export function maxConcurrentProblem(value: unknown): string | undefined {
  if (typeof value === 'number') {
    return Number.isInteger(value) && value >= 1 && value <= MAX_CONCURRENT_NODES
      ? undefined
      : `must be a whole number of nodes from 1 to ${MAX_CONCURRENT_NODES} or a percent like "10%", got ${show(value)}`;
  }
  if (typeof value === 'string') {
    const match = PERCENT.exec(value);
    const percent = match === null ? Number.NaN : Number(match[1]);
    return percent >= 1 && percent <= 100
      ? undefined
      : `must be a percent from "1%" to "100%" or a whole number of nodes, got ${show(value)}`;
  }
  return `must be a whole number of nodes or a percent like "10%", got ${show(value)}`;
}

function checkRollout(value: unknown, issues: FieldIssue[]): RolloutSpec | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) {
    issues.push({
      field: 'spec.rollout',
      message: `must be an object like {maxConcurrentNodes: 10%, paused: false}, got ${show(value)}`,
    });
    return undefined;
  }
  const rollout: RolloutSpec = {};
  for (const key of Object.keys(value)) {
    if (key !== 'maxConcurrentNodes' && key !== 'paused')
      issues.push({
        field: `spec.rollout.${key}`,
        message: 'unknown field; known fields are maxConcurrentNodes, paused',
      });
  }
  const max = value.maxConcurrentNodes;
  if (max !== undefined && max !== null) {
    const problem = maxConcurrentProblem(max);
    if (problem !== undefined)
      issues.push({ field: 'spec.rollout.maxConcurrentNodes', message: problem });
    else rollout.maxConcurrentNodes = max as number | string;
  }
  const paused = value.paused;
  if (paused !== undefined && paused !== null) {
    if (typeof paused !== 'boolean')
      issues.push({
        field: 'spec.rollout.paused',
        message: `must be true or false, got ${show(paused)}`,
      });
    else rollout.paused = paused;
  }
  return rollout;
}

function checkNodeLabel(value: unknown, issues: FieldIssue[]): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || labelKeyProblem(NODE_LABEL_PREFIX + value) !== undefined) {
    issues.push({
      field: 'spec.nodeLabel',
      message: `must be the name part of a label key (the node gets ${NODE_LABEL_PREFIX}NAME=true): 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, got ${show(value)}`,
    });
    return undefined;
  }
  return value;
}

function checkSpec(spec: Record<string, unknown>, issues: FieldIssue[]): PrePullSpec {
  for (const key of Object.keys(spec)) {
    if (!SPEC_FIELDS.has(key)) {
      issues.push({
        field: `spec.${key}`,
        message: `unknown field; known fields are ${[...SPEC_FIELDS].join(', ')}`,
      });
    }
  }
  const pin = spec.pin ?? DEFAULTS.pin;
  if (typeof pin !== 'boolean')
    issues.push({ field: 'spec.pin', message: `must be true or false, got ${show(pin)}` });
  const schedule = checkSchedule(spec.schedule, issues);
  const timeZone = checkTimeZone(spec.timeZone, issues);
  return {
    images: checkImages(spec.images, issues),
    nodeSelector: checkNodeSelector(spec.nodeSelector, issues),
    imagePullSecrets: checkSecrets(spec.imagePullSecrets, issues),
    pullPolicy: checkEnum(
      spec.pullPolicy,
      'spec.pullPolicy',
      ['IfNotPresent', 'Always'],
      DEFAULTS.pullPolicy,
      issues,
    ),
    verify: checkEnum(spec.verify, 'spec.verify', ['Registry', 'None'], DEFAULTS.verify, issues),
    ...(schedule !== undefined ? { schedule } : {}),
    ...optional('timeZone', timeZone),
    scheduleJitterSeconds: checkInteger(
      spec.scheduleJitterSeconds,
      'spec.scheduleJitterSeconds',
      [0, MAX_SCHEDULE_JITTER_SECONDS],
      DEFAULTS.scheduleJitterSeconds,
      issues,
    ),
    pin: typeof pin === 'boolean' ? pin : DEFAULTS.pin,
    timeoutSeconds: checkInteger(
      spec.timeoutSeconds,
      'spec.timeoutSeconds',
      [1, 86_400],
      DEFAULTS.timeoutSeconds,
      issues,
    ),
    backoffLimit: checkInteger(
      spec.backoffLimit,
      'spec.backoffLimit',
      [0, 100],
      DEFAULTS.backoffLimit,
      issues,
    ),
    ...optional('rollout', checkRollout(spec.rollout, issues)),
    ...optional('nodeLabel', checkNodeLabel(spec.nodeLabel, issues)),
    cleanup: checkEnum(spec.cleanup, 'spec.cleanup', ['Unpin', 'Remove'], DEFAULTS.cleanup, issues),
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

function checkMetadata(
  value: unknown,
  defaultNamespace: string,
  issues: FieldIssue[],
): PrePull['metadata'] {
  if (!isRecord(value)) {
    issues.push({ field: 'metadata', message: 'required: {name: ..., namespace: ...}' });
    return { name: '', namespace: defaultNamespace };
  }
  checkName(value.name, 'metadata.name', issues);
  const namespace = value.namespace ?? defaultNamespace;
  checkName(namespace, 'metadata.namespace', issues, 63);
  if (typeof namespace === 'string' && !DNS_LABEL.test(namespace)) {
    issues.push({
      field: 'metadata.namespace',
      message: `${show(namespace)} is not a valid namespace: a DNS label (no dots)`,
    });
  }
  const metadata: PrePull['metadata'] = {
    name: typeof value.name === 'string' ? value.name : '',
    namespace: typeof namespace === 'string' ? namespace : defaultNamespace,
  };
  if (typeof value.uid === 'string') metadata.uid = value.uid;
  if (typeof value.generation === 'number') metadata.generation = value.generation;
  if (typeof value.resourceVersion === 'string') metadata.resourceVersion = value.resourceVersion;
  if (isRecord(value.labels)) metadata.labels = value.labels as Record<string, string>;
  return metadata;
}

/**
 * Validates a decoded object as a PrePull and fills in defaults. Returns the PrePull when there
 * are no issues, and every issue found (not just the first).
 */
export function validatePrePull(
  value: unknown,
  defaultNamespace = 'default',
): { prePull?: PrePull; issues: FieldIssue[] } {
  const issues: FieldIssue[] = [];
  if (!isRecord(value)) {
    return { issues: [{ field: '(root)', message: `must be an object, got ${show(value)}` }] };
  }
  if (value.apiVersion !== API_VERSION) {
    issues.push({
      field: 'apiVersion',
      message: `must be ${API_VERSION}, got ${show(value.apiVersion)}`,
    });
  }
  if (value.kind !== KIND)
    issues.push({ field: 'kind', message: `must be ${KIND}, got ${show(value.kind)}` });
  for (const key of Object.keys(value)) {
    if (!TOP_FIELDS.has(key)) {
      issues.push({
        field: key.length > 80 ? `${key.slice(0, 77)}...` : key,
        message: `unknown field; known fields are ${[...TOP_FIELDS].join(', ')}`,
      });
    }
  }
  const metadata = checkMetadata(value.metadata, defaultNamespace, issues);
  if (!isRecord(value.spec)) {
    issues.push({ field: 'spec', message: 'required: {images: [{image: ...}], ...}' });
    return { issues };
  }
  const spec = checkSpec(value.spec, issues);
  if (issues.length > 0) return { issues };
  return { prePull: { apiVersion: API_VERSION, kind: KIND, metadata, spec }, issues };
}

/** Does a nodeSelector select a node with these labels? Empty selects every node. */
export function selectsNode(
  selector: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}
