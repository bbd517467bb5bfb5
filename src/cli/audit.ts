// `prepull audit` and `prepull generate`: read the files (or standard input) — or, with
// --kubeconfig, the cluster, through lazily loaded modules — call src/audit, print, return the
// exit code.
import { readFileSync } from 'node:fs';
import { listManifestFiles } from '../api/files.ts';
import {
  type AuditInputs,
  type AuditReport,
  reportOn,
  exitCode,
  readAll,
  resolutions,
} from '../audit/audit.ts';
import type { Manifests, ReadProblem, Source } from '../audit/manifests.ts';
import { formatReport, problemText } from '../audit/output.ts';
import { generatePrePull, prePullYaml } from '../audit/generate.ts';
import type { Resolutions, TagResolver } from '../audit/resolve.ts';
import {
  AUDIT_USAGE,
  type AuditConfig,
  GENERATE_USAGE,
  parseAuditArgs,
  parseGenerateArgs,
} from '../config/audit.ts';
import { isPrepullError } from '../errors.ts';
import type { Output } from './io.ts';

/** Reads a file's text; injected so tests can stand in for standard input. */
export type ReadText = (path: string | 0) => string;

const readText: ReadText = (path) => readFileSync(path, 'utf8');

/** The sources named by paths ("-" is standard input, read once), and what could not be read. */
export function readSources(
  paths: readonly string[],
  read: ReadText = readText,
): { sources: Source[]; problems: ReadProblem[] } {
  const sources: Source[] = [];
  const problems: ReadProblem[] = [];
  const named = paths.filter((p) => p !== '-');
  if (named.length < paths.length) sources.push({ file: '-', text: read(0) });
  for (const path of named) {
    // One path at a time, so a path that cannot be read is named as the problem's file.
    const { files, errors } = listManifestFiles([path]);
    if (errors.length > 0) problems.push({ file: path, message: 'no such file or directory' });
    for (const file of files) {
      try {
        sources.push({ file, text: read(file) });
      } catch (error) {
        problems.push({ file, message: `cannot read the file: ${(error as Error).message}` });
      }
    }
  }
  return { sources, problems };
}

/** The registry as `--resolve` asks it: anonymous, or with the --docker-config credentials. */
export type ResolverFactory = (
  config: AuditConfig,
) => Promise<TagResolver & { close(): Promise<void> }>;

const registryResolver: ResolverFactory = async (config) => {
  // Loaded only for --resolve: the HTTP client is the heaviest part of the registry code.
  const { dockerConfigKeyring, newRegistryClient, registryHosts } = await import('./registry.ts');
  const keyring =
    config.dockerConfig === undefined ? undefined : dockerConfigKeyring(config.dockerConfig);
  const client = newRegistryClient(registryHosts(config));
  return {
    resolve: (ref, options) =>
      client.resolve(ref, {
        ...(keyring === undefined ? {} : { credentials: keyring.lookup(ref) }),
        ...(options?.signal === undefined ? {} : { signal: options.signal }),
      }),
    close: () => client.close(),
  };
};

async function resolved(
  config: AuditConfig,
  manifests: Manifests,
  makeResolver: ResolverFactory,
): Promise<Resolutions | undefined> {
  if (!config.resolve) return undefined;
  const resolver = await makeResolver(config);
  try {
    return await resolutions(manifests, resolver);
  } finally {
    await resolver.close();
  }
}

/** Live mode: the cluster's report. The Kubernetes client is loaded only here. */
async function auditLive(config: AuditConfig & { kubeconfig: string }): Promise<AuditReport> {
  const [{ KubeClient }, { auditCluster }] = await Promise.all([
    import('../kube/client.ts'),
    import('../audit/live.ts'),
  ]);
  const kube = KubeClient.load(config.kubeconfig);
  return auditCluster(kube, {
    airGapped: config.airGapped,
    cluster: kube.server,
    ...(config.namespace === undefined ? {} : { namespace: config.namespace }),
  });
}

async function auditFiles(
  config: AuditConfig,
  read: ReadText,
  makeResolver: ResolverFactory,
): Promise<AuditReport> {
  const manifests = readSources(config.files, read);
  const prePulls = readSources(config.prePulls, read);
  const inputs: AuditInputs = {
    manifests: manifests.sources,
    prePulls: prePulls.sources,
    problems: [...manifests.problems, ...prePulls.problems],
  };
  // Read once: --resolve asks about the tags of what was read, then the rules run on it.
  const parsed = readAll(inputs, config);
  const options = {
    airGapped: config.airGapped,
    resolved: await resolved(config, parsed, makeResolver),
  };
  return reportOn(parsed, options, { files: inputs.manifests.length });
}

export async function runAudit(
  argv: readonly string[],
  io: Output,
  /** prepull's version, for SARIF's tool.driver (main.ts reads it). */
  version: string,
  read: ReadText = readText,
  makeResolver: ResolverFactory = registryResolver,
): Promise<number> {
  const config = parseAuditArgs(argv);
  if (config === 'help') {
    io.out(AUDIT_USAGE);
    return 0;
  }
  const { kubeconfig } = config;
  let report: AuditReport;
  try {
    report =
      kubeconfig === undefined
        ? await auditFiles(config, read, makeResolver)
        : await auditLive({ ...config, kubeconfig });
  } catch (error) {
    // A kubeconfig that cannot be loaded is input that cannot be read: exit 2, as for a file.
    if (!isPrepullError(error) || error.code !== 'ERR_KUBE_CONFIG') throw error;
    io.err(`prepull audit: ${error.message} (${error.code})\n`);
    return 2;
  }
  io.out(formatReport(report, config.output, version));
  // Unreadable input goes to stderr too, so a CI log shows it when stdout is a SARIF file.
  for (const problem of report.problems) io.err(`prepull audit: ${problemText(problem)}\n`);
  return exitCode(report, config.failOn);
}

export function runGenerate(
  argv: readonly string[],
  io: Output,
  read: ReadText = readText,
): number {
  const config = parseGenerateArgs(argv);
  if (config === 'help') {
    io.out(GENERATE_USAGE);
    return 0;
  }
  const { sources, problems } = readSources(config.files, read);
  const manifests = readAll(
    { manifests: sources, prePulls: [], problems },
    { podTemplatePaths: {} },
  );
  for (const problem of manifests.problems) io.err(`prepull generate: ${problemText(problem)}\n`);
  const { prePull, skipped } = generatePrePull(manifests.containers, config);
  for (const line of skipped) io.err(`prepull generate: skipped ${line}\n`);
  io.out(prePullYaml(prePull));
  return manifests.problems.length > 0 ? 2 : 0;
}
