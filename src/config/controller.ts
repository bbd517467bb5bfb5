// Flags and environment of `prepull controller`, parsed and validated once into one typed object.
// Durations are seconds, as the agent's --shutdown-grace is (fractions allowed, except for the
// lease duration, which the Lease stores in whole seconds). The identity and the Lease's
// namespace come from POD_NAME and POD_NAMESPACE (the downward API in the Deployment).
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { MAX_CONCURRENT_NODES } from '../api/prepull.ts';
import { DEFAULT_PULL_SECRET_NAMESPACE } from '../api/pull-secrets.ts';
import { PrepullError } from '../errors.ts';
import { LOG_LEVELS, type LogFormat, type LogLevel } from '../telemetry/logger.ts';
import { oneOf, parseAddress, parseLogFormat, parseSeconds, withHelpHint } from './sync.ts';

export interface ControllerConfig {
  /** Without it: the in-cluster service account. */
  kubeconfig?: string;
  metricsAddress?: { host: string; port: number };
  logLevel: LogLevel;
  /** Absent: text when stderr is a terminal, JSON otherwise (in a Pod: JSON; src/cli/log.ts). */
  logFormat?: LogFormat;
  /** Distinct nodes admitted at once across every paced PrePull; unlimited when absent. */
  maxConcurrentNodes?: number;
  admissionTimeoutMs: number;
  statusIntervalMs: number;
  /** false: lead at once, without a Lease (one replica only). */
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** The agents' namespace, where the leader keeps copies of pull secrets (ADR 0020). */
  pullSecretNamespace: string;
  /** Between two passes over the copies: a rotated source reaches its copy within this. */
  pullSecretResyncMs: number;
}

export const CONTROLLER_USAGE = `Usage: prepull controller [flags]

Runs in the cluster (a Deployment, two replicas, one leading): writes each PrePull's status from
the nodes' NodeImageCaches, admits nodes to paced rollouts, and keeps the nodes' readiness
labels and start-up taint, and copies the pull secrets PrePulls name into the agents'
namespace. Only the leader writes; a standby keeps its caches warm and takes
over when the leader's Lease expires or is released.

Flags:
      --kubeconfig FILE            kubeconfig to use (default: the in-cluster service account)
      --max-concurrent-nodes N     nodes admitted at once across all paced PrePulls
                                   (default: no cluster-wide cap; agents need --require-admission)
      --admission-timeout S        seconds an admitted node may go without a NodeImageCache
                                   change before it loses its slot (default 300)
      --status-interval S          seconds between status writes of one PrePull (default 1)
      --leader-elect=true|false    elect a leader through a Lease (default true); false: this
                                   replica leads at once, so run only one
      --lease-namespace NS         the Lease's namespace (default: $POD_NAMESPACE, else
                                   prepull-system)
      --lease-name NAME            the Lease's name (default prepull-controller)
      --identity ID                this replica's name in the Lease (default: $POD_NAME, else
                                   the host name and a random suffix)
      --lease-duration S           seconds a standby waits for an unrenewed Lease, whole
                                   (default 15)
      --renew-deadline S           seconds the leader keeps leading without renewing (default 10)
      --retry-period S             seconds between attempts to acquire or renew (default 2)
      --pull-secret-namespace NS   the agents' namespace: the leader copies every secret a
                                   PrePull names in imagePullSecrets there (default:
                                   $POD_NAMESPACE, else prepull-system)
      --pull-secret-resync S       seconds between two passes over the copies: a rotated
                                   secret reaches its copy within this (default 60)
      --metrics-address H:P        serve /metrics, /healthz and /readyz (default: off)
                                   (H an IP or host name; ":P" alone is every interface)
      --log-level LEVEL            ${LOG_LEVELS.join(', ')} (default info)
      --log-format json|text       log lines on stderr: JSON, or text for people (default:
                                   text when stderr is a terminal, JSON otherwise, as in a Pod)
  -h, --help                       this help
`;

function usage(message: string): PrepullError {
  return new PrepullError('ERR_USAGE', message);
}

function parseMaxConcurrentNodes(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > MAX_CONCURRENT_NODES) {
    throw usage(
      `--max-concurrent-nodes must be a whole number from 1 to ${MAX_CONCURRENT_NODES}, got "${text}"`,
    );
  }
  return value;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function objectName(flag: string, value: string, rule: RegExp, what: string): string {
  if (!rule.test(value)) throw usage(`${flag} must be ${what}, got "${value}"`);
  return value;
}

/**
 * `--leader-elect` is a boolean that takes `=true`/`=false`, as client-go's flag of that name:
 * node's parseArgs takes no value for a boolean, so it is taken out of argv first.
 */
function takeLeaderElect(argv: readonly string[]): { rest: string[]; leaderElect: boolean } {
  let leaderElect = true;
  const rest: string[] = [];
  for (const arg of argv) {
    if (arg === '--') {
      rest.push(...argv.slice(argv.indexOf(arg)));
      break;
    }
    if (arg === '--leader-elect') {
      leaderElect = true;
    } else if (arg.startsWith('--leader-elect=')) {
      const value = arg.slice('--leader-elect='.length);
      if (value !== 'true' && value !== 'false') {
        throw usage(`--leader-elect must be true or false, got "${value}"`);
      }
      leaderElect = value === 'true';
    } else {
      rest.push(arg);
    }
  }
  return { rest, leaderElect };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === '' ? undefined : value;
}

function parseIdentity(given: string | undefined, host: ControllerHost): string {
  const identity = given ?? `${host.hostname()}_${host.suffix()}`;
  if (identity.trim() === '' || identity.length > 253) {
    throw usage(`--identity must be 1 to 253 characters, got "${identity}"`);
  }
  return identity;
}

type Timing = Pick<ControllerConfig, 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs'>;

/** The three lease timings, with client-go's rules: the leader stops before a standby takes over. */
function leaseTiming(v: Record<string, string | boolean | undefined>): Timing {
  const text = (flag: string): string | undefined => {
    const value = v[flag];
    return typeof value === 'string' ? value : undefined;
  };
  const leaseDurationMs = parseSeconds('--lease-duration', text('lease-duration'), 15, {
    min: 2,
    max: 3600,
    whole: true,
  });
  const renewDeadlineMs = parseSeconds('--renew-deadline', text('renew-deadline'), 10, {
    min: 0.1,
    max: 3600,
  });
  const retryPeriodMs = parseSeconds('--retry-period', text('retry-period'), 2, {
    min: 0.05,
    max: 600,
  });
  if (leaseDurationMs <= renewDeadlineMs) {
    throw usage('--lease-duration must be longer than --renew-deadline');
  }
  if (renewDeadlineMs <= retryPeriodMs) {
    throw usage('--renew-deadline must be longer than --retry-period');
  }
  return { leaseDurationMs, renewDeadlineMs, retryPeriodMs };
}

/** What the defaults read from the machine (replaced in tests). */
export interface ControllerHost {
  hostname(): string;
  /** A few random characters, so two replicas on one host never share an identity. */
  suffix(): string;
}

const systemHost: ControllerHost = {
  hostname,
  suffix: () => randomBytes(4).toString('hex'),
};

function parseController(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  host: ControllerHost,
): ControllerConfig | 'help' {
  const { rest, leaderElect } = takeLeaderElect(argv);
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: false,
      options: {
        kubeconfig: { type: 'string' },
        'metrics-address': { type: 'string' },
        'log-level': { type: 'string' },
        'log-format': { type: 'string' },
        'max-concurrent-nodes': { type: 'string' },
        'admission-timeout': { type: 'string' },
        'status-interval': { type: 'string' },
        'lease-namespace': { type: 'string' },
        'lease-name': { type: 'string' },
        identity: { type: 'string' },
        'lease-duration': { type: 'string' },
        'renew-deadline': { type: 'string' },
        'retry-period': { type: 'string' },
        'pull-secret-namespace': { type: 'string' },
        'pull-secret-resync': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw usage(error instanceof Error ? error.message : String(error));
  }
  const v = parsed.values;
  if (v.help === true) return 'help';
  const kubeconfig = v.kubeconfig;
  const maxConcurrentNodes = parseMaxConcurrentNodes(v['max-concurrent-nodes']);
  return {
    ...(kubeconfig !== undefined ? { kubeconfig } : {}),
    ...(v['metrics-address'] !== undefined
      ? { metricsAddress: parseAddress(v['metrics-address']) }
      : {}),
    logLevel: oneOf('--log-level', v['log-level'], LOG_LEVELS) ?? 'info',
    ...parseLogFormat(v['log-format']),
    ...(maxConcurrentNodes !== undefined ? { maxConcurrentNodes } : {}),
    admissionTimeoutMs: parseSeconds('--admission-timeout', v['admission-timeout'], 300, {
      min: 1,
      max: 86_400,
    }),
    statusIntervalMs: parseSeconds('--status-interval', v['status-interval'], 1, {
      min: 0.1,
      max: 3600,
    }),
    leaderElect,
    leaseNamespace: objectName(
      '--lease-namespace',
      v['lease-namespace'] ?? nonEmpty(env.POD_NAMESPACE) ?? 'prepull-system',
      DNS_LABEL,
      'a namespace name (a DNS label)',
    ),
    leaseName: objectName(
      '--lease-name',
      v['lease-name'] ?? 'prepull-controller',
      DNS_SUBDOMAIN,
      'a Lease name (a DNS subdomain)',
    ),
    identity: parseIdentity(v.identity ?? nonEmpty(env.POD_NAME), host),
    ...leaseTiming(v),
    pullSecretNamespace: objectName(
      '--pull-secret-namespace',
      v['pull-secret-namespace'] ?? nonEmpty(env.POD_NAMESPACE) ?? DEFAULT_PULL_SECRET_NAMESPACE,
      DNS_LABEL,
      'a namespace name (a DNS label)',
    ),
    pullSecretResyncMs: parseSeconds('--pull-secret-resync', v['pull-secret-resync'], 60, {
      min: 1,
      max: 86_400,
    }),
  };
}

/** Parses `prepull controller` arguments (without the word `controller`); `help`: print usage. */
export function parseControllerArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
  host: ControllerHost = systemHost,
): ControllerConfig | 'help' {
  return withHelpHint('controller', () => parseController(argv, env, host));
}
