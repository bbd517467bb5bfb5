// The audit report as people read it (table), as programs read it (json) and as code scanning
// reads it (SARIF 2.1.0, which GitHub's upload-sarif action takes).
import type { ReadProblem } from './manifests.ts';
import type { AuditReport } from './audit.ts';
import { RULES, type Finding } from './rules.ts';

export type AuditFormat = 'table' | 'json' | 'sarif';

function where(p: { file: string; line?: number }): string {
  return p.line === undefined ? p.file : `${p.file}:${p.line}`;
}

export function problemText(problem: ReadProblem): string {
  const doc = problem.document === undefined ? '' : ` (document ${problem.document})`;
  return `${where(problem)}${doc}: ${problem.message}`;
}

function findingLine(f: Finding): string {
  return `${where(f)}\t${f.level}\t${f.rule}\t${f.object} ${f.containerType} ${f.container}\t${f.message}`;
}

export function formatTable(report: AuditReport): string {
  const lines = report.findings.map(findingLine);
  lines.push(...report.problems.map((p) => `${problemText(p)}\tunreadable`));
  const s = report.summary;
  lines.push(
    `${s.errors} error(s), ${s.warnings} warning(s) in ${s.containers} container(s) of ${s.objects} object(s) from ${s.cluster === undefined ? `${s.files} file(s)` : `the cluster at ${s.cluster}`}, against ${s.prePulls} PrePull(s)${s.problems > 0 ? `; ${s.problems} input problem(s)` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}

export function formatJson(report: AuditReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

// The few SARIF 2.1.0 shapes written here (https://docs.oasis-open.org/sarif/sarif/v2.1.0/).
interface SarifResult {
  ruleId: string;
  level: 'error' | 'warning';
  message: { text: string };
  locations: {
    physicalLocation: { artifactLocation: { uri: string }; region?: { startLine: number } };
  }[];
}

export interface SarifLog {
  version: '2.1.0';
  $schema: string;
  runs: {
    tool: {
      driver: {
        name: string;
        version: string;
        informationUri: string;
        rules: { id: string; shortDescription: { text: string }; help: { text: string } }[];
      };
    };
    results: SarifResult[];
  }[];
}

function sarifResult(f: Finding): SarifResult {
  return {
    ruleId: f.rule,
    level: f.level,
    message: { text: `${f.object} ${f.containerType} ${f.container} (${f.image}): ${f.message}` },
    locations: [
      {
        physicalLocation: {
          // A relative path as given: code scanning resolves it against the checkout. In live
          // mode, the object's API path, and no region (an API object has no lines).
          artifactLocation: { uri: f.file.replaceAll('\\', '/') },
          ...(f.line === undefined ? {} : { region: { startLine: f.line } }),
        },
      },
    ],
  };
}

export function toSarif(report: AuditReport, version: string): SarifLog {
  return {
    version: '2.1.0',
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    runs: [
      {
        tool: {
          driver: {
            name: 'prepull',
            version,
            informationUri: 'https://github.com/prepull/prepull/blob/main/docs/audit.md',
            rules: Object.entries(RULES).map(([id, rule]) => ({
              id,
              shortDescription: { text: rule.summary },
              help: { text: rule.help },
            })),
          },
        },
        results: report.findings.map(sarifResult),
      },
    ],
  };
}

export function formatReport(report: AuditReport, format: AuditFormat, version: string): string {
  if (format === 'json') return formatJson(report);
  if (format === 'sarif') return `${JSON.stringify(toSarif(report, version), null, 2)}\n`;
  return formatTable(report);
}
