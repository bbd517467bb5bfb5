// Custom resources against their CRD's openAPIV3Schema, in kube-apiserver's order: prune unknown
// fields (and nulls where not nullable), apply defaults, then validate, reporting each bad field
// with kube-openapi's message and apiextensions-apiserver's field-error type.
import { clone, deepEqual, isObject, str, type Json, type JsonObject } from './json.ts';
import { fieldErrors, type FieldError } from './status.ts';

type Schema = JsonObject;

function props(schema: Schema): JsonObject {
  return isObject(schema.properties) ? schema.properties : {};
}

function preservesUnknown(schema: Schema): boolean {
  return schema['x-kubernetes-preserve-unknown-fields'] === true;
}

function itemSchema(schema: Schema): Schema | undefined {
  return isObject(schema.items) ? schema.items : undefined;
}

function additional(schema: Schema): Schema | undefined {
  return isObject(schema.additionalProperties) ? schema.additionalProperties : undefined;
}

/** Drops unknown fields and nulls the schema does not allow; then fills defaults. */
function pruneAndDefault(value: Json, schema: Schema): Json {
  if (Array.isArray(value)) {
    const items = itemSchema(schema);
    return items === undefined ? value : value.map((v) => pruneAndDefault(v, items));
  }
  if (!isObject(value)) return value;
  const properties = props(schema);
  const extra = additional(schema);
  const out: JsonObject = {};
  for (const [key, v] of Object.entries(value)) {
    const sub = properties[key] ?? extra;
    if (!isObject(sub)) {
      if (preservesUnknown(schema) || schema.additionalProperties === true) out[key] = v;
      continue;
    }
    if (v === null && sub.nullable !== true) {
      if (sub.default !== undefined) out[key] = clone(sub.default);
      continue;
    }
    out[key] = pruneAndDefault(v, sub);
  }
  for (const [key, sub] of Object.entries(properties)) {
    if (out[key] === undefined && isObject(sub) && sub.default !== undefined) {
      out[key] = pruneAndDefault(clone(sub.default), sub);
    }
  }
  return out;
}

function jsonType(value: Json): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function typeMatches(value: Json, schema: Schema): boolean {
  const want = str(schema.type);
  if (schema['x-kubernetes-int-or-string'] === true) {
    return typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value));
  }
  if (want === '') return true;
  if (value === null) return schema.nullable === true;
  const actual = jsonType(value);
  return actual === want || (want === 'number' && actual === 'integer');
}

const FORMATS: Record<string, RegExp> = {
  'date-time': /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/,
  date: /^\d{4}-\d{2}-\d{2}$/,
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  ipv4: /^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)$/,
  byte: /^[A-Za-z0-9+/]*={0,2}$/,
  hostname: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i,
};

function validateString(value: string, schema: Schema, path: string, errors: FieldError[]): void {
  const body = `${path} in body`;
  if (typeof schema.maxLength === 'number' && Array.from(value).length > schema.maxLength) {
    errors.push(fieldErrors.tooLong(path, schema.maxLength));
  }
  if (typeof schema.minLength === 'number' && Array.from(value).length < schema.minLength) {
    errors.push(
      fieldErrors.invalid(path, value, `${body} should be at least ${schema.minLength} chars long`),
    );
  }
  if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) {
    errors.push(fieldErrors.invalid(path, value, `${body} should match '${schema.pattern}'`));
  }
  const format = FORMATS[str(schema.format)];
  if (format !== undefined && !format.test(value)) {
    const detail = `${body} must be of type ${str(schema.format)}: ${JSON.stringify(value)}`;
    errors.push(fieldErrors.typeInvalid(path, value, detail));
  }
}

function validateNumber(value: number, schema: Schema, path: string, errors: FieldError[]): void {
  const body = `${path} in body`;
  if (typeof schema.maximum === 'number') {
    const exclusive = schema.exclusiveMaximum === true;
    if (exclusive ? value >= schema.maximum : value > schema.maximum) {
      const rel = exclusive ? 'less than' : 'less than or equal to';
      errors.push(fieldErrors.invalid(path, value, `${body} should be ${rel} ${schema.maximum}`));
    }
  }
  if (typeof schema.minimum === 'number') {
    const exclusive = schema.exclusiveMinimum === true;
    if (exclusive ? value <= schema.minimum : value < schema.minimum) {
      const rel = exclusive ? 'greater than' : 'greater than or equal to';
      errors.push(fieldErrors.invalid(path, value, `${body} should be ${rel} ${schema.minimum}`));
    }
  }
}

function validateArray(value: Json[], schema: Schema, path: string, errors: FieldError[]): void {
  if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) {
    errors.push(fieldErrors.tooMany(path, value.length, schema.maxItems));
  }
  if (typeof schema.minItems === 'number' && value.length < schema.minItems) {
    const detail = `${path} in body should have at least ${schema.minItems} items`;
    errors.push(fieldErrors.invalid(path, 'array', detail));
  }
  const items = itemSchema(schema);
  if (items !== undefined) {
    value.forEach((v, i) => {
      validateNode(v, items, `${path}[${i}]`, errors);
    });
  }
}

function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function validateObject(
  value: JsonObject,
  schema: Schema,
  path: string,
  errors: FieldError[],
): void {
  for (const name of Array.isArray(schema.required) ? schema.required : []) {
    if (typeof name === 'string' && value[name] === undefined) {
      errors.push(fieldErrors.required(child(path, name)));
    }
  }
  const count = Object.keys(value).length;
  if (typeof schema.maxProperties === 'number' && count > schema.maxProperties) {
    errors.push(fieldErrors.tooMany(path, count, schema.maxProperties));
  }
  const properties = props(schema);
  const extra = additional(schema);
  for (const [key, v] of Object.entries(value)) {
    if (path === '' && key === 'metadata') continue;
    const sub = properties[key] ?? extra;
    if (isObject(sub)) validateNode(v, sub, child(path, key), errors);
  }
}

function validateNode(value: Json, schema: Schema, path: string, errors: FieldError[]): void {
  if (!typeMatches(value, schema)) {
    const detail = `${path} in body must be of type ${str(schema.type)}: "${jsonType(value)}"`;
    errors.push(fieldErrors.typeInvalid(path, value, detail));
    return;
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => deepEqual(e, value))) {
    const supported = schema.enum.map((e) => (typeof e === 'string' ? e : JSON.stringify(e)));
    errors.push(fieldErrors.notSupported(path, value, supported));
  }
  if (typeof value === 'string') validateString(value, schema, path, errors);
  else if (typeof value === 'number') validateNumber(value, schema, path, errors);
  else if (Array.isArray(value)) validateArray(value, schema, path, errors);
  else if (isObject(value)) validateObject(value, schema, path, errors);
}

/** Prunes and defaults a custom resource in place of `obj`; returns the new object. */
export function pruneAndDefaultResource(obj: JsonObject, schema: Schema): JsonObject {
  const { apiVersion, kind, metadata } = obj;
  const rest = pruneAndDefault(obj, schema) as JsonObject;
  const out: JsonObject = { ...rest };
  if (apiVersion !== undefined) out.apiVersion = apiVersion;
  if (kind !== undefined) out.kind = kind;
  if (metadata !== undefined) out.metadata = metadata;
  return out;
}

export function validateResource(obj: JsonObject, schema: Schema): FieldError[] {
  const errors: FieldError[] = [];
  validateNode(obj, schema, '', errors);
  return errors;
}

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** metadata.name as kube-apiserver's ValidateObjectMeta checks it (RFC 1123). */
export function validateName(name: string, dnsLabel: boolean): FieldError[] {
  if (dnsLabel) {
    if (name.length <= 63 && LABEL.test(name)) return [];
    return [
      fieldErrors.invalid(
        'metadata.name',
        name,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
      ),
    ];
  }
  if (name.length <= 253 && SUBDOMAIN.test(name)) return [];
  return [
    fieldErrors.invalid(
      'metadata.name',
      name,
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    ),
  ];
}
