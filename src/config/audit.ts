// Flags of `prepull audit` and `prepull generate`, parsed and validated once into typed objects.
import { parseArgs } from 'node:util';
import { PrepullError } from '../errors.ts';
import { oneOf, parseLabels, parseRegistryCAs, withHelpHint } from './sync.ts';

export interface AuditConfig {
  /** Files, directories, or "-" for standard input. */
  files: string[];
  prePulls: string[];
  output: 'table' | 'json' | 'sarif';
  failOn: 'error' | 'warning' | 'never';
  airGapped: boolean;
  /** Kind → path of its pod spec. */
  podTemplatePaths: Record<string, string[]>;
  /** Ask the registry what PrePull tags resolve to (HEAD requests only). */
  resolve: boolean;
  dockerConfig?: string;
  insecureRegistries: string[];
  registryCAs: Record<string, string>;
  /** Live mode: audit the cluster this kubeconfig reaches instead of files. */
  kubeconfig?: string;
  /** Live mode: only this namespace's workloads and Pods. */
  namespace?: string;
}

export interface GenerateConfig {
  files: string[];
  name: string;
  namespace: string;
  nodeSelector: Record<string, string>;
}

export const AUDIT_USAGE = `Usage: prepull audit -f FILE|DIR|- [-f ...] [flags]
       prepull audit --kubeconfig FILE [--namespace NS] [flags]

Finds the containers that would not start because their image is not on the node: workloads
whose images have imagePullPolicy Never (with --air-gapped: any policy) and that no PrePull
keeps on the nodes they can run on. Reads manifests as kubectl, helm template and kustomize
build write them; PrePulls among them count. With --kubeconfig, reads the cluster instead
(GET only): its Pods, workloads, PrePulls and NodeImageCaches, and explains every container in
ErrImageNeverPull. See docs/audit.md.

Flags:
  -f, --filename FILE|DIR|-    manifests: a file, a directory (*.yaml, *.yml, *.json) or - for
                               standard input (repeatable; required without --kubeconfig)
      --kubeconfig FILE        live mode: audit the cluster of this kubeconfig's current
                               context (not with -f, --prepulls or --pod-template-path)
  -n, --namespace NS           live mode: only this namespace's Pods and workloads (PrePulls
                               and NodeImageCaches are read cluster-wide)
      --prepulls FILE|DIR      further PrePull files (repeatable)
  -o, --output table|json|sarif  report format (default table)
      --fail-on error|warning|never  exit 1 when a finding is at least this (default error)
      --air-gapped             nodes cannot pull at all: every image must be in a PrePull
      --pod-template-path KIND=PATH  where a custom kind keeps its pod spec, as a dotted path:
                               Rollout=spec.template.spec (repeatable)
      --resolve                ask the registry (HEAD requests, never a download) what the
                               tags PrePulls list resolve to, to match workloads that pin a
                               digest (rule digest-mismatch)
      --docker-config FILE     with --resolve: registry credentials from a docker config.json
      --insecure-registry H    with --resolve: registry H (host[:port]) over plain HTTP
                               (repeatable)
      --registry-ca H=FILE     with --resolve: trust the CA bundle FILE for registry H
                               (repeatable)
  -h, --help                   this help

Exit codes: 0 no finding at --fail-on; 1 findings at or above --fail-on; 2 a usage error or an
input that could not be read, a file or (live) a list the API server refused (the rest is still
audited and reported).
`;

export const GENERATE_USAGE = `Usage: prepull generate -f FILE|DIR|- [-f ...] --name N --namespace NS [flags]

Writes one PrePull (YAML, on standard output) listing every image the manifests' containers use,
canonical, deduplicated and sorted. See docs/audit.md.

Flags:
  -f, --filename FILE|DIR|-    manifests (repeatable, required)
      --name N                 the PrePull's name (required)
      --namespace NS           its namespace (required)
      --node-selector k=v,...  its spec.nodeSelector (default: every node)
  -h, --help                   this help
`;

function usage(message: string): PrepullError {
  return new PrepullError('ERR_USAGE', message);
}

const SEGMENT = /^[A-Za-z0-9_-]+$/;

/** KIND=PATH, PATH dotted and optionally written as kubectl's {.a.b} or .a.b. */
export function parsePodTemplatePaths(values: readonly string[]): Record<string, string[]> {
  const paths: Record<string, string[]> = {};
  for (const value of values) {
    const eq = value.indexOf('=');
    const kind = value.slice(0, eq);
    const path = value
      .slice(eq + 1)
      .replace(/^\{(.*)\}$/, '$1')
      .replace(/^\./, '')
      .split('.');
    if (eq <= 0 || !/^[A-Za-z][A-Za-z0-9]*$/.test(kind) || !path.every((s) => SEGMENT.test(s))) {
      throw usage(
        `--pod-template-path: "${value}" is not KIND=PATH with a dotted PATH such as Rollout=spec.template.spec`,
      );
    }
    paths[kind] = path;
  }
  return paths;
}

/** node:util parseArgs, its errors as usage errors. */
function parsed<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw usage(error instanceof Error ? error.message : String(error));
  }
}

export function parseAuditArgs(argv: readonly string[]): AuditConfig | 'help' {
  return withHelpHint('audit', () => {
    const { values: v } = parsed(() =>
      parseArgs({
        args: [...argv],
        allowPositionals: false,
        options: {
          filename: { type: 'string', short: 'f', multiple: true },
          prepulls: { type: 'string', multiple: true },
          output: { type: 'string', short: 'o' },
          'fail-on': { type: 'string' },
          'air-gapped': { type: 'boolean' },
          'pod-template-path': { type: 'string', multiple: true },
          resolve: { type: 'boolean' },
          'docker-config': { type: 'string' },
          'insecure-registry': { type: 'string', multiple: true },
          'registry-ca': { type: 'string', multiple: true },
          kubeconfig: { type: 'string' },
          namespace: { type: 'string', short: 'n' },
          help: { type: 'boolean', short: 'h' },
        },
      }),
    );
    if (v.help === true) return 'help';
    const files = v.filename ?? [];
    const live = liveFlags(v.kubeconfig, v.namespace, {
      '-f': files.length > 0,
      '--prepulls': (v.prepulls ?? []).length > 0,
      '--pod-template-path': (v['pod-template-path'] ?? []).length > 0,
    });
    if (files.length === 0 && live.kubeconfig === undefined) {
      throw usage('-f FILE|DIR|- (or --kubeconfig FILE, to audit a cluster) is required');
    }
    const registry = registryFlags(v, live.kubeconfig !== undefined);
    return {
      files,
      prePulls: v.prepulls ?? [],
      output: oneOf('--output', v.output, ['table', 'json', 'sarif'] as const) ?? 'table',
      failOn: oneOf('--fail-on', v['fail-on'], ['error', 'warning', 'never'] as const) ?? 'error',
      airGapped: v['air-gapped'] === true,
      podTemplatePaths: parsePodTemplatePaths(v['pod-template-path'] ?? []),
      ...registry,
      ...live,
    };
  });
}

/** --resolve and the registry flags that go with it (file mode only). */
function registryFlags(
  v: {
    resolve?: boolean | undefined;
    'docker-config'?: string | undefined;
    'insecure-registry'?: string[] | undefined;
    'registry-ca'?: string[] | undefined;
  },
  live: boolean,
): Pick<AuditConfig, 'resolve' | 'dockerConfig' | 'insecureRegistries' | 'registryCAs'> {
  if (live && v.resolve === true) {
    throw usage(
      '--resolve checks the tags of PrePull files; it cannot be combined with --kubeconfig',
    );
  }
  const given = [v['docker-config'], v['insecure-registry'], v['registry-ca']];
  if (v.resolve !== true && given.some((x) => x !== undefined)) {
    throw usage('--docker-config, --insecure-registry and --registry-ca go with --resolve');
  }
  return {
    resolve: v.resolve === true,
    ...(v['docker-config'] !== undefined ? { dockerConfig: v['docker-config'] } : {}),
    insecureRegistries: v['insecure-registry'] ?? [],
    registryCAs: parseRegistryCAs(v['registry-ca'] ?? []),
  };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** --kubeconfig and --namespace, checked against the file-mode flags they exclude. */
function liveFlags(
  kubeconfig: string | undefined,
  namespace: string | undefined,
  fileFlags: Record<string, boolean>,
): Pick<AuditConfig, 'kubeconfig' | 'namespace'> {
  if (kubeconfig === undefined) {
    if (namespace !== undefined) throw usage('--namespace needs --kubeconfig');
    return {};
  }
  if (kubeconfig === '') throw usage('--kubeconfig: the path is empty');
  for (const [flag, given] of Object.entries(fileFlags)) {
    if (given) throw usage(`${flag} reads files; it cannot be combined with --kubeconfig`);
  }
  if (namespace !== undefined && !DNS_LABEL.test(namespace)) {
    throw usage(`--namespace: "${namespace}" is not a namespace name (a lowercase DNS label)`);
  }
  return { kubeconfig, ...(namespace === undefined ? {} : { namespace }) };
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function required(flag: string, value: string | undefined): string {
  if (value === undefined || value === '') throw usage(`${flag} is required`);
  if (value.length > 253 || !DNS_SUBDOMAIN.test(value)) {
    throw usage(`${flag}: "${value}" is not a lowercase DNS name`);
  }
  return value;
}

export function parseGenerateArgs(argv: readonly string[]): GenerateConfig | 'help' {
  return withHelpHint('generate', () => {
    const { values: v } = parsed(() =>
      parseArgs({
        args: [...argv],
        allowPositionals: false,
        options: {
          filename: { type: 'string', short: 'f', multiple: true },
          name: { type: 'string' },
          namespace: { type: 'string', short: 'n' },
          'node-selector': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      }),
    );
    if (v.help === true) return 'help';
    const files = v.filename ?? [];
    if (files.length === 0) throw usage('-f FILE|DIR|- is required');
    const nodeSelector = parseLabels(v['node-selector'] ?? '', '--node-selector');
    return {
      files,
      name: required('--name', v.name),
      namespace: required('--namespace', v.namespace),
      nodeSelector,
    };
  });
}
