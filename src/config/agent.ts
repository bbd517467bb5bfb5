// Flags and environment of `prepull agent`, parsed and validated once into one typed object. The
// node name comes from --node-name or NODE_NAME (the downward API in the DaemonSet).
import { parseArgs } from 'node:util';
import type { CleanupPolicy } from '../api/prepull.ts';
import { DEFAULT_PULL_SECRET_NAMESPACE } from '../api/pull-secrets.ts';
import { PrepullError } from '../errors.ts';
import { DISK_FLAGS_USAGE, type DiskGuardConfig, parseDiskGuard } from './disk.ts';
import { LOG_LEVELS, type LogFormat, type LogLevel } from '../telemetry/logger.ts';
import {
  oneOf,
  parseAddress,
  parseCleanup,
  parseConcurrency,
  parseLogFormat,
  parseRegistryCAs,
  parseSeconds,
  parseStallTimeout,
  runtimeFlags,
  withHelpHint,
} from './sync.ts';

export interface AgentConfig {
  /** Without it: the in-cluster service account. */
  kubeconfig?: string;
  nodeName: string;
  runtimeEndpoint?: string;
  runtime?: 'cri' | 'docker';
  insecureRegistries: string[];
  registryCAs: Record<string, string>;
  pullConcurrency: number;
  /** A pull whose bytes have not advanced for this long is aborted and retried (0: never). */
  stallTimeoutMs: number;
  metricsAddress?: { host: string; port: number };
  logLevel: LogLevel;
  /** Absent: text when stderr is a terminal, JSON otherwise (in a Pod: JSON; src/cli/log.ts). */
  logFormat?: LogFormat;
  /** How long SIGTERM waits for pulls in flight before aborting them. */
  shutdownGraceMs: number;
  /** Every PrePull is paced: pull only what the controller admitted (ADR 0014). */
  requireAdmission: boolean;
  /** While pulling, the NodeImageCache is written at least this often (the controller's sign of life). */
  heartbeatMs: number;
  /** What happens to images no PrePull wants any more, where the PrePulls do not ask Remove. */
  cleanup: CleanupPolicy;
  /**
   * Where pull secrets are read: `copy`, the controller's copies in `pullSecretNamespace` (the
   * agent's own); `direct`, each PrePull's namespace (no controller; wider RBAC). ADR 0020.
   */
  pullSecrets: 'copy' | 'direct';
  pullSecretNamespace: string;
  /** The image filesystem's free-space floor and prepull's pin budget (ADR 0019). */
  disk: DiskGuardConfig;
}

export const AGENT_USAGE = `Usage: prepull agent [flags]

Runs on every node (a DaemonSet): watches PrePull objects in all namespaces and this node's
Node object, keeps the images of every PrePull whose nodeSelector matches the node's labels
pulled, verified and pinned, and reports them in the node's NodeImageCache and in Events.

Flags:
      --kubeconfig FILE       kubeconfig to use (default: the in-cluster service account)
      --node-name NAME        this node's name (default: $NODE_NAME)
      --runtime-endpoint URL  runtime socket, e.g. unix:///run/containerd/containerd.sock
                              (default: probe the usual sockets)
      --runtime cri|docker    the protocol at --runtime-endpoint (default: detect)
      --insecure-registry H   verify against registry H (host[:port]) over plain HTTP
                              (repeatable; only for registries on a network you trust)
      --registry-ca H=FILE    trust the CA bundle FILE for registry H (repeatable)
      --pull-concurrency N    pulls at once (default 2)
      --stall-timeout S       abort and retry a pull whose bytes have not advanced for S
                              seconds, freeing its slot (default 120; 0: never; only
                              where the runtime reports progress: containerd, Docker)
      --metrics-address H:P   serve /metrics, /healthz and /readyz (default: off)
                              (H an IP or host name; ":P" alone is every interface)
      --shutdown-grace S      seconds SIGTERM lets pulls in flight finish (default 20)
      --require-admission     pace every PrePull: pull an image the node never held only
                              once prepull's controller admits the node (set it with the
                              controller's --max-concurrent-nodes; docs/controller.md)
      --heartbeat-interval S  while pulling, write the NodeImageCache at least every S
                              seconds even if nothing changed (default 60; keep the
                              controller's --admission-timeout above twice this)
      --cleanup Unpin|Remove  images no PrePull wants any more: Unpin takes prepull's pin
                              off; Remove also removes those prepull pulled, when no
                              container uses them (default Unpin; a PrePull may ask Remove)
      --pull-secrets copy|direct
                              where imagePullSecrets are read: copy, prepull-controller's
                              copies in --pull-secret-namespace (default); direct, the
                              PrePull's namespace (no controller; needs the optional RBAC
                              deploy/agent-direct-secrets.yaml)
      --pull-secret-namespace NS
                              the namespace of the copies: the agent's own (default:
                              $POD_NAMESPACE, else prepull-system)
${DISK_FLAGS_USAGE}      --log-level LEVEL       ${LOG_LEVELS.join(', ')} (default info)
      --log-format json|text  log lines on stderr: JSON, or text for people (default: text
                              when stderr is a terminal, JSON otherwise, as in a Pod)
  -h, --help                  this help
`;

const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function parsePullSecrets(
  mode: string | undefined,
  namespace: string | undefined,
): Pick<AgentConfig, 'pullSecrets' | 'pullSecretNamespace'> {
  const pullSecrets = oneOf('--pull-secrets', mode, ['copy', 'direct'] as const) ?? 'copy';
  const pullSecretNamespace = namespace ?? DEFAULT_PULL_SECRET_NAMESPACE;
  if (!NAMESPACE.test(pullSecretNamespace)) {
    throw new PrepullError(
      'ERR_USAGE',
      `--pull-secret-namespace must be a namespace name (a DNS label), got "${pullSecretNamespace}"`,
    );
  }
  return { pullSecrets, pullSecretNamespace };
}

function parseAgent(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): AgentConfig | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: false,
      options: {
        kubeconfig: { type: 'string' },
        'node-name': { type: 'string' },
        'runtime-endpoint': { type: 'string' },
        runtime: { type: 'string' },
        'insecure-registry': { type: 'string', multiple: true },
        'registry-ca': { type: 'string', multiple: true },
        'pull-concurrency': { type: 'string' },
        'stall-timeout': { type: 'string' },
        'metrics-address': { type: 'string' },
        'shutdown-grace': { type: 'string' },
        'require-admission': { type: 'boolean' },
        'heartbeat-interval': { type: 'string' },
        'log-level': { type: 'string' },
        'log-format': { type: 'string' },
        cleanup: { type: 'string' },
        'pull-secrets': { type: 'string' },
        'pull-secret-namespace': { type: 'string' },
        'image-fs-floor': { type: 'string' },
        'pin-budget': { type: 'string' },
        'image-fs-path': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new PrepullError('ERR_USAGE', error instanceof Error ? error.message : String(error));
  }
  const v = parsed.values;
  if (v.help === true) return 'help';
  const nodeName = v['node-name'] ?? env.NODE_NAME ?? '';
  if (nodeName === '') {
    throw new PrepullError(
      'ERR_USAGE',
      'the node name is required: --node-name, or NODE_NAME from the downward API (fieldRef spec.nodeName)',
    );
  }
  const kubeconfig = v.kubeconfig;
  return {
    ...(kubeconfig !== undefined ? { kubeconfig } : {}),
    nodeName,
    ...runtimeFlags(v['runtime-endpoint'], v.runtime),
    insecureRegistries: v['insecure-registry'] ?? [],
    registryCAs: parseRegistryCAs(v['registry-ca'] ?? []),
    pullConcurrency: parseConcurrency(v['pull-concurrency']),
    stallTimeoutMs: parseStallTimeout(v['stall-timeout']),
    ...(v['metrics-address'] !== undefined
      ? { metricsAddress: parseAddress(v['metrics-address']) }
      : {}),
    logLevel: oneOf('--log-level', v['log-level'], LOG_LEVELS) ?? 'info',
    ...parseLogFormat(v['log-format']),
    shutdownGraceMs: parseSeconds('--shutdown-grace', v['shutdown-grace'], 20, {
      min: 0,
      max: 3600,
    }),
    requireAdmission: v['require-admission'] === true,
    heartbeatMs: parseSeconds('--heartbeat-interval', v['heartbeat-interval'], 60, {
      min: 1,
      max: 3600,
    }),
    cleanup: parseCleanup(v.cleanup),
    ...parsePullSecrets(
      v['pull-secrets'],
      v['pull-secret-namespace'] ?? (env.POD_NAMESPACE === '' ? undefined : env.POD_NAMESPACE),
    ),
    disk: parseDiskGuard(v['image-fs-floor'], v['pin-budget'], v['image-fs-path']),
  };
}

/** Parses `prepull agent` arguments (without the word `agent`). `help` means print AGENT_USAGE. */
export function parseAgentArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
): AgentConfig | 'help' {
  return withHelpHint('agent', () => parseAgent(argv, env));
}
