// Reading deploy/ for its tests: every YAML document of every file, and a check of each document
// against the Kubernetes types of the kubernetes-models package (generated from the Kubernetes
// OpenAPI schemas, and the Prometheus Operator's for its monitors and rules).
//
// The package's validate() checks types, required fields and enums, but lets unknown fields
// through (its JSON schemas do not set additionalProperties). A misspelled field is exactly the
// mistake a manifest makes (`readOnlyRootFileSystem`, a `descripton` in a CRD schema), and the
// API server would silently drop it. So each document is also written out as a TypeScript
// constant of the model's interface and type-checked: TypeScript refuses an object literal with
// a property its type does not declare, at any depth.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ResourceQuota } from 'kubernetes-models/v1/ResourceQuota';
import { Service } from 'kubernetes-models/v1/Service';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const DEPLOY = join(ROOT, 'deploy');

export type Doc = Record<string, unknown>;

export interface Manifest {
  /** Path relative to the repository's root, e.g. `deploy/rbac.yaml`. */
  file: string;
  /** Position of the document in its file, from 0. */
  index: number;
  doc: Doc;
}

function isDoc(value: unknown): value is Doc {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * deploy/components/: kustomize Components, one per container runtime, that a kustomization
 * of the user's adds to deploy/. They are not manifests of their own: test/deploy/variants.test.ts
 * checks what `kubectl kustomize` makes of them.
 */
export function isComponent(file: string): boolean {
  return file.startsWith('deploy/components/');
}

/** Every `.yaml`/`.yml` file under `dir`, relative to the repository's root, sorted. */
export function yamlFiles(dir = DEPLOY): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => relative(ROOT, join(dir, f)))
    .sort();
}

/** Every YAML document under `dir`; throws on a YAML error, naming the file. */
export function readManifests(dir = DEPLOY): Manifest[] {
  return yamlFiles(dir).flatMap((file) =>
    parseManifests(file, readFileSync(join(ROOT, file), 'utf8')),
  );
}

/**
 * The documents of one YAML stream (a file, or what `kubectl kustomize` printed), labelled
 * `file`; throws on a YAML error, naming it.
 */
export function parseManifests(file: string, text: string): Manifest[] {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new Error(`${file}: not a YAML stream`);
  return docs.map((d, index) => {
    const problems = [...d.errors, ...d.warnings];
    if (problems.length > 0) {
      throw new Error(`${file} document ${index}: ${problems.map((p) => p.message).join('; ')}`);
    }
    const doc: unknown = d.toJS();
    if (!isDoc(doc)) throw new Error(`${file} document ${index}: not a mapping`);
    return { file, index, doc };
  });
}

export function label(m: Manifest): string {
  const meta = isDoc(m.doc.metadata) ? m.doc.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '?';
  return `${m.file}#${m.index} ${String(m.doc.kind)} ${name}`;
}

/** The TypeScript interface each kind is checked against: module and exported name. */
export const MODEL_TYPES: Readonly<Record<string, { module: string; name: string }>> = {
  'v1/Namespace': { module: 'kubernetes-models/v1/Namespace', name: 'INamespace' },
  'v1/ServiceAccount': { module: 'kubernetes-models/v1/ServiceAccount', name: 'IServiceAccount' },
  'v1/Service': { module: 'kubernetes-models/v1/Service', name: 'IService' },
  'v1/ResourceQuota': { module: 'kubernetes-models/v1/ResourceQuota', name: 'IResourceQuota' },
  'apps/v1/DaemonSet': { module: 'kubernetes-models/apps/v1/DaemonSet', name: 'IDaemonSet' },
  'networking.k8s.io/v1/NetworkPolicy': {
    module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
    name: 'INetworkPolicy',
  },
  'apps/v1/Deployment': { module: 'kubernetes-models/apps/v1/Deployment', name: 'IDeployment' },
  'rbac.authorization.k8s.io/v1/ClusterRole': {
    module: 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole',
    name: 'IClusterRole',
  },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': {
    module: 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding',
    name: 'IClusterRoleBinding',
  },
  'rbac.authorization.k8s.io/v1/Role': {
    module: 'kubernetes-models/rbac.authorization.k8s.io/v1/Role',
    name: 'IRole',
  },
  'rbac.authorization.k8s.io/v1/RoleBinding': {
    module: 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding',
    name: 'IRoleBinding',
  },
  'apiextensions.k8s.io/v1/CustomResourceDefinition': {
    module: 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition',
    name: 'ICustomResourceDefinition',
  },
  'monitoring.coreos.com/v1/ServiceMonitor': {
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor',
    name: 'IServiceMonitor',
  },
  'monitoring.coreos.com/v1/PodMonitor': {
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor',
    name: 'IPodMonitor',
  },
  'monitoring.coreos.com/v1/PrometheusRule': {
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule',
    name: 'IPrometheusRule',
  },
};

interface Validatable {
  validate(): void;
}

/** The kubernetes-models class whose validate() checks each kind (types, required, enums). */
export const MODELS: Readonly<Record<string, new (data: never) => Validatable>> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/ResourceQuota': ResourceQuota,
  'apps/v1/DaemonSet': DaemonSet,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'apps/v1/Deployment': Deployment,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

export const KUSTOMIZATION = 'kustomize.config.k8s.io/v1beta1/Kustomization';

/**
 * Checks each manifest but kustomizations with its kind's model: one line per document whose
 * kind has no model (here and in MODEL_TYPES, for typeCheck) or that fails validate(); empty
 * when all is well.
 */
export function validateModels(manifests: readonly Manifest[]): string[] {
  return manifests.flatMap((m) => {
    const key = typeKey(m.doc);
    if (key === KUSTOMIZATION) return [];
    const Model = MODELS[key];
    if (Model === undefined || MODEL_TYPES[key] === undefined) {
      return [`${label(m)}: no Kubernetes schema for ${key}`];
    }
    try {
      new Model(m.doc as never).validate();
      return [];
    } catch (error) {
      return [`${label(m)}: ${error instanceof Error ? error.message : String(error)}`];
    }
  });
}

const SCHEMA_PROPS = {
  module: 'kubernetes-models/apiextensions.k8s.io/v1/JSONSchemaProps',
  name: 'IJSONSchemaProps',
};

export function typeKey(doc: Doc): string {
  return `${String(doc.apiVersion)}/${String(doc.kind)}`;
}

/**
 * The schema nodes a CRD's types leave unchecked. kubernetes-models types `items` and
 * `additionalProperties` as empty interfaces (they may be a schema or a list or a boolean), and
 * TypeScript checks no excess property against an empty type; so each such schema is checked as
 * a JSONSchemaProps of its own.
 */
export function nestedSchemas(schema: unknown, path: string): { path: string; schema: Doc }[] {
  if (!isDoc(schema)) return [];
  const out: { path: string; schema: Doc }[] = [];
  const visit = (node: unknown, at: string, own: boolean): void => {
    if (!isDoc(node)) return;
    if (own) out.push({ path: at, schema: node });
    if (isDoc(node.properties)) {
      for (const [key, sub] of Object.entries(node.properties)) visit(sub, `${at}.${key}`, false);
    }
    visit(node.items, `${at}[]`, true);
    visit(node.additionalProperties, `${at}{}`, true);
  };
  visit(schema, path, false);
  return out;
}

interface Unit {
  label: string;
  type: { module: string; name: string };
  value: unknown;
}

function unitsOf(m: Manifest): Unit[] {
  const type = MODEL_TYPES[typeKey(m.doc)];
  if (type === undefined) return [];
  const units: Unit[] = [{ label: label(m), type, value: m.doc }];
  if (type.name === 'ICustomResourceDefinition') {
    const spec = isDoc(m.doc.spec) ? m.doc.spec : {};
    const versions = Array.isArray(spec.versions) ? spec.versions.filter(isDoc) : [];
    for (const version of versions) {
      const schema = isDoc(version.schema) ? version.schema.openAPIV3Schema : undefined;
      for (const nested of nestedSchemas(schema, String(version.name))) {
        units.push({
          label: `${label(m)} schema ${nested.path}`,
          type: SCHEMA_PROPS,
          value: nested.schema,
        });
      }
    }
  }
  return units;
}

/**
 * Type-checks each manifest (and each nested CRD schema) against its kubernetes-models
 * interface. Returns one line per problem, naming the document and the offending line of its
 * JSON form; empty when all is well. Kinds without a model are skipped (see MODEL_TYPES).
 */
export function typeCheck(manifests: readonly Manifest[]): string[] {
  return typeCheckValues(
    manifests.flatMap(unitsOf).map((unit) => ({
      label: unit.label,
      header: [`import type { ${unit.type.name} } from '${unit.type.module}';`],
      type: unit.type.name,
      value: unit.value,
    })),
  );
}

/** A JSON value to check against a TypeScript type: `header` imports (or declares) the type. */
export interface TypedValue {
  label: string;
  header: string[];
  type: string;
  value: unknown;
}

/**
 * Type-checks each value as an object literal of its type, so that TypeScript refuses any
 * property the type does not declare, at any depth. One line per problem, as typeCheck's.
 */
export function typeCheckValues(values: readonly TypedValue[]): string[] {
  // The virtual files live in test/deploy so that module resolution finds node_modules and
  // package.json's "type": "module" makes them ES modules.
  const dir = fileURLToPath(new URL('.', import.meta.url));
  const files = new Map<string, { unit: TypedValue; text: string }>();
  values.forEach((unit, i) => {
    const text = [
      ...unit.header,
      `export const value: ${unit.type} = ${JSON.stringify(unit.value, null, 2)};`,
      '',
    ].join('\n');
    files.set(join(dir, `__manifest_${i}.ts`), { unit, text });
  });
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2023,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (name, language, ...rest) => {
    const virtual = files.get(name);
    return virtual !== undefined
      ? ts.createSourceFile(name, virtual.text, language)
      : getSourceFile(name, language, ...rest);
  };
  host.fileExists = (name) => files.has(name) || fileExists(name);
  host.readFile = (name) => files.get(name)?.text ?? readFile(name);
  const program = ts.createProgram([...files.keys()], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    const virtual = d.file === undefined ? undefined : files.get(d.file.fileName);
    if (virtual === undefined || d.file === undefined || d.start === undefined) return message;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const source = virtual.text.split('\n')[line]?.trim() ?? '';
    return `${virtual.unit.label}: ${message} (at: ${source})`;
  });
}

/**
 * A container's args as kubelet passes them: each `$(NAME)` of a variable in `values` (the
 * container's env as the downward API filled it) replaced, `$$` kept as one `$`, any other
 * reference left as written.
 */
export function expandArgs(
  args: readonly string[],
  values: Readonly<Record<string, string>>,
): string[] {
  return args.map((arg) =>
    arg.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string | undefined) =>
      name === undefined ? '$' : (values[name] ?? whole),
    ),
  );
}
