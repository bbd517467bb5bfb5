// `audit(inputs, options)`: manifests in, findings out. The one entry the command line (and a
// benchmark) calls; everything below it is pure over the texts given.
import {
  emptyManifests,
  type Manifests,
  POD_SPEC_PATHS,
  type ReadProblem,
  readManifests,
  type Source,
} from './manifests.ts';
import { type Resolutions, type TagResolver, resolveTags, tagsToResolve } from './resolve.ts';
import { checkContainer, type Finding, listedImages, type Level } from './rules.ts';

export interface AuditInputs {
  /** Manifests to audit; PrePulls among them count too. */
  manifests: readonly Source[];
  /** Further files holding PrePulls (other kinds in them are ignored). */
  prePulls: readonly Source[];
  /** Problems met before parsing (a file that cannot be read), reported with the rest. */
  problems?: readonly ReadProblem[];
}

export interface AuditOptions {
  airGapped: boolean;
  /** With --resolve: what the PrePull tags resolve to (resolutions()). */
  resolved?: Resolutions | undefined;
  /** Kind → path of its pod spec, for custom kinds (and to override a built-in kind's). */
  podTemplatePaths: Readonly<Record<string, readonly string[]>>;
}

export interface AuditSummary {
  /** Live mode: the API server audited (then `files` is 0). */
  cluster?: string;
  files: number;
  objects: number;
  containers: number;
  prePulls: number;
  errors: number;
  warnings: number;
  problems: number;
}

export interface AuditReport {
  findings: Finding[];
  problems: ReadProblem[];
  summary: AuditSummary;
}

export function readAll(
  inputs: AuditInputs,
  options: Pick<AuditOptions, 'podTemplatePaths'>,
): Manifests {
  const paths = { ...POD_SPEC_PATHS, ...options.podTemplatePaths };
  const manifests = emptyManifests();
  manifests.problems.push(...(inputs.problems ?? []));
  for (const source of inputs.manifests) readManifests(source, paths, manifests);
  // Only PrePulls count in --prepulls files: their Deployments are not the ones audited.
  const prePulls = emptyManifests();
  for (const source of inputs.prePulls) readManifests(source, {}, prePulls);
  manifests.prePulls.push(...prePulls.prePulls);
  manifests.problems.push(...prePulls.problems);
  return manifests;
}

/**
 * --resolve: asks `resolver` about every PrePull tag that could cover a workload's digest in what
 * was read, for the rules' `resolved`; only HEADs reach the registry.
 */
export async function resolutions(
  manifests: Manifests,
  resolver: TagResolver,
): Promise<Resolutions> {
  return resolveTags(
    tagsToResolve(manifests.containers, listedImages(manifests.prePulls)),
    resolver,
  );
}

function count(findings: readonly Finding[], level: Level): number {
  return findings.filter((f) => f.level === level).length;
}

/** The report over what was read: the rules on every container, then `extra` findings. */
export function reportOn(
  manifests: Manifests,
  options: Pick<AuditOptions, 'airGapped' | 'resolved'>,
  source: { files: number; cluster?: string },
  extra: (listed: ReturnType<typeof listedImages>) => Finding[] = () => [],
): AuditReport {
  const listed = listedImages(manifests.prePulls);
  const findings = manifests.containers.flatMap((site) => checkContainer(site, listed, options));
  findings.push(...extra(listed));
  return {
    findings,
    problems: manifests.problems,
    summary: {
      ...(source.cluster === undefined ? {} : { cluster: source.cluster }),
      files: source.files,
      objects: manifests.objects,
      containers: manifests.containers.length,
      prePulls: manifests.prePulls.length,
      errors: count(findings, 'error'),
      warnings: count(findings, 'warning'),
      problems: manifests.problems.length,
    },
  };
}

export function audit(inputs: AuditInputs, options: AuditOptions): AuditReport {
  return reportOn(readAll(inputs, options), options, { files: inputs.manifests.length });
}

/**
 * 2 when some input could not be read (after auditing the rest), 1 when a finding is at or above
 * `failOn`, else 0.
 */
export function exitCode(report: AuditReport, failOn: Level | 'never'): number {
  if (report.problems.length > 0) return 2;
  if (failOn === 'never') return 0;
  const failing =
    failOn === 'warning' ? report.summary.errors + report.summary.warnings : report.summary.errors;
  return failing > 0 ? 1 : 0;
}
