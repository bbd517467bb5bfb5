// kube-apiserver's failure responses: metav1.Status objects with the reasons, messages and
// details that k8s.io/apimachinery/pkg/api/errors builds, so clients classify them as they would
// against a real cluster.
/** metav1.StatusCause: every field is omitempty. */
export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  /** Absent on a Success status (delete), as kube-apiserver omits a zero code. */
  code?: number;
}

/** An error carrying the Status the server answers with. */
export class ApiError extends Error {
  readonly status: Status;
  readonly headers: Record<string, string>;
  constructor(status: Status, headers: Record<string, string> = {}) {
    super(status.message ?? status.reason ?? 'error');
    this.status = status;
    this.headers = headers;
  }
}

/** A GroupResource as kube-apiserver names it in messages: "pods", "prepulls.prepull.dev". */
export interface GroupResource {
  group: string;
  resource: string;
}

export function qualified(gr: GroupResource): string {
  return gr.group === '' ? gr.resource : `${gr.resource}.${gr.group}`;
}

function failure(code: number, reason: string, message: string, details?: StatusDetails): Status {
  const status: Status = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  };
  if (details !== undefined) {
    // Keep kube-apiserver's field order: details comes before code.
    return { ...status, details, code };
  }
  return status;
}

function resourceDetails(gr: GroupResource, name: string): StatusDetails {
  const details: StatusDetails = {};
  if (name !== '') details.name = name;
  if (gr.group !== '') details.group = gr.group;
  details.kind = gr.resource;
  return details;
}

export function notFound(gr: GroupResource, name: string): ApiError {
  return new ApiError(
    failure(404, 'NotFound', `${qualified(gr)} "${name}" not found`, resourceDetails(gr, name)),
  );
}

/** The answer for a path no API serves (kube-apiserver's NotFound without details). */
export function pathNotFound(): ApiError {
  return new ApiError(
    failure(404, 'NotFound', 'the server could not find the requested resource', {}),
  );
}

export function alreadyExists(gr: GroupResource, name: string): ApiError {
  return new ApiError(
    failure(
      409,
      'AlreadyExists',
      `${qualified(gr)} "${name}" already exists`,
      resourceDetails(gr, name),
    ),
  );
}

export function conflict(gr: GroupResource, name: string, reason: string): ApiError {
  return new ApiError(
    failure(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualified(gr)} "${name}": ${reason}`,
      resourceDetails(gr, name),
    ),
  );
}

export const STALE_OBJECT =
  'the object has been modified; please apply your changes to the latest version and try again';

/** A field error as k8s.io/apimachinery/pkg/util/validation/field renders it. */
export interface FieldError {
  type: FieldErrorType;
  field: string;
  /** The text after the type: "Invalid value: 0: ... ", "Required value", … (ErrorBody). */
  body: string;
}

export type FieldErrorType =
  | 'FieldValueRequired'
  | 'FieldValueInvalid'
  | 'FieldValueNotSupported'
  | 'FieldValueTypeInvalid'
  | 'FieldValueTooLong'
  | 'FieldValueTooMany'
  | 'FieldValueForbidden'
  | 'FieldValueDuplicate';

/** Go's %v of a value in field errors: strings quoted, numbers and booleans bare. */
export function goValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return '"null"';
  return Array.isArray(value) ? '"array"' : '"object"';
}

export const fieldErrors = {
  required(field: string, detail = ''): FieldError {
    return {
      type: 'FieldValueRequired',
      field,
      body: detail === '' ? 'Required value' : `Required value: ${detail}`,
    };
  },
  invalid(field: string, value: unknown, detail: string): FieldError {
    return {
      type: 'FieldValueInvalid',
      field,
      body: `Invalid value: ${goValue(value)}: ${detail}`,
    };
  },
  typeInvalid(field: string, value: unknown, detail: string): FieldError {
    return {
      type: 'FieldValueTypeInvalid',
      field,
      body: `Invalid value: ${goValue(value)}: ${detail}`,
    };
  },
  notSupported(field: string, value: unknown, supported: readonly string[]): FieldError {
    const list = supported.map((s) => JSON.stringify(s)).join(', ');
    return {
      type: 'FieldValueNotSupported',
      field,
      body: `Unsupported value: ${goValue(value)}: supported values: ${list}`,
    };
  },
  tooLong(field: string, max: number): FieldError {
    return {
      type: 'FieldValueTooLong',
      field,
      body: `Too long: may not be more than ${max} bytes`,
    };
  },
  tooMany(field: string, actual: number, max: number): FieldError {
    return {
      type: 'FieldValueTooMany',
      field,
      body: `Too many: ${actual}: must have at most ${max} items`,
    };
  },
  forbidden(field: string, detail: string): FieldError {
    return { type: 'FieldValueForbidden', field, body: `Forbidden: ${detail}` };
  },
};

/** A GroupKind as kube-apiserver names it in Invalid messages: "Pod", "PrePull.prepull.dev". */
export interface GroupKind {
  group: string;
  kind: string;
}

export function invalid(gk: GroupKind, name: string, errors: readonly FieldError[]): ApiError {
  const rendered = errors.map((e) => `${e.field}: ${e.body}`);
  const aggregate = rendered.length === 1 ? rendered[0]! : `[${rendered.join(', ')}]`;
  const qualifiedKind = gk.group === '' ? gk.kind : `${gk.kind}.${gk.group}`;
  const details: StatusDetails = { name };
  if (gk.group !== '') details.group = gk.group;
  details.kind = gk.kind;
  details.causes = errors.map((e) => ({ reason: e.type, message: e.body, field: e.field }));
  return new ApiError(
    failure(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${aggregate}`, details),
  );
}

export function forbidden(gr: GroupResource, name: string, why: string): ApiError {
  const subject = name === '' ? qualified(gr) : `${qualified(gr)} "${name}"`;
  return new ApiError(
    failure(403, 'Forbidden', `${subject} is forbidden: ${why}`, resourceDetails(gr, name)),
  );
}

/** A 403 for a non-resource URL, as kube-apiserver words it. */
export function forbiddenPath(why: string): ApiError {
  return new ApiError(failure(403, 'Forbidden', `forbidden: ${why}`, {}));
}

export function unauthorized(): ApiError {
  return new ApiError(failure(401, 'Unauthorized', 'Unauthorized'));
}

export function expired(message: string): ApiError {
  return new ApiError(failure(410, 'Expired', message));
}

export function badRequest(message: string): ApiError {
  return new ApiError(failure(400, 'BadRequest', message));
}

export function methodNotSupported(gr: GroupResource, action: string): ApiError {
  return new ApiError(
    failure(
      405,
      'MethodNotAllowed',
      `${action} is not supported on resources of kind "${qualified(gr)}"`,
      { group: gr.group, kind: gr.resource },
    ),
  );
}

export function unsupportedMediaType(accepted: readonly string[]): ApiError {
  return new ApiError(
    failure(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`,
    ),
  );
}

/** What kube-apiserver answers for codes without a dedicated constructor (fault injection). */
export function forCode(code: number, retryAfterSeconds?: number): ApiError {
  const known: Record<number, [string, string]> = {
    409: ['Conflict', 'the server reported a conflict'],
    429: ['TooManyRequests', 'Too many requests, please try again later.'],
    500: ['InternalError', 'Internal error occurred: injected fault'],
    503: ['ServiceUnavailable', 'the server is currently unable to handle the request'],
    504: ['Timeout', 'the server was unable to return a response in the time allotted'],
  };
  const [reason, message] = known[code] ?? ['Unknown', `the server responded with ${code}`];
  const details: StatusDetails | undefined =
    retryAfterSeconds === undefined ? undefined : { retryAfterSeconds };
  const headers: Record<string, string> =
    retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) };
  return new ApiError(failure(code, reason, message, details), headers);
}

export function success(details: StatusDetails): Status {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details };
}
