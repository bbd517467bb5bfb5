// Flags of `prepull sync`, parsed and validated once into one typed object with defaults. The
// only place (with src/cli) that may read the environment: proxies for the registry client.
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { PrepullError } from '../errors.ts';
import { DISK_FLAGS_USAGE, type DiskGuardConfig, parseDiskGuard } from './disk.ts';
import { type CleanupPolicy, labelKeyProblem } from '../api/prepull.ts';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../telemetry/logger.ts';

export interface SyncConfig {
  files: string[];
  once: boolean;
  nodeName: string;
  /** Labels the node is matched with: those given, plus kubelet's well-known defaults. */
  nodeLabels: Record<string, string>;
  runtimeEndpoint?: string;
  runtime?: 'cri' | 'docker';
  dockerConfig?: string;
  /** Registries reached over plain HTTP, as host[:port]. */
  insecureRegistries: string[];
  /** Extra CA bundles (file paths) per registry host[:port]. */
  registryCAs: Record<string, string>;
  pullConcurrency: number;
  /** A pull whose bytes have not advanced for this long is aborted and retried (0: never). */
  stallTimeoutMs: number;
  metricsAddress?: { host: string; port: number };
  output: 'table' | 'json';
  logLevel: LogLevel;
  /** Absent: text when stderr is a terminal, JSON otherwise (src/cli/log.ts). */
  logFormat?: LogFormat;
  /** What happens to images no PrePull file wants any more, where the PrePulls do not ask Remove. */
  cleanup: CleanupPolicy;
  /** The image filesystem's free-space floor and prepull's pin budget (ADR 0019). */
  disk: DiskGuardConfig;
}

export const CLEANUP_POLICIES: readonly CleanupPolicy[] = ['Unpin', 'Remove'];

export const SYNC_USAGE = `Usage: prepull sync -f FILE|DIR [-f ...] [flags]

Reconciles this machine's container runtime with PrePull files: pulls, verifies, pins and
repairs the images of every PrePull whose nodeSelector matches --node-labels.

Flags:
  -f, --filename FILE|DIR     PrePull YAML/JSON file or directory (repeatable, required)
      --once                  reconcile once and exit: 0 when every image is Present (and
                              verified where asked), 1 otherwise
      --node-name NAME        this node's name (default: the hostname); it also sets when,
                              within each PrePull's scheduleJitterSeconds, its schedule fires
      --node-labels k=v,...   labels matched against nodeSelector (kubernetes.io/hostname,
                              kubernetes.io/os and kubernetes.io/arch are added)
      --runtime-endpoint URL  runtime socket, e.g. unix:///run/containerd/containerd.sock
                              (default: probe the usual sockets)
      --runtime cri|docker    the protocol at --runtime-endpoint (default: detect)
      --docker-config FILE    registry credentials from a docker config.json, for PrePulls
                              that name no pull secret
      --insecure-registry H   verify against registry H (host[:port]) over plain HTTP
                              (repeatable; only for registries on a network you trust)
      --registry-ca H=FILE    trust the CA bundle FILE for registry H (repeatable)
      --pull-concurrency N    pulls at once (default 2)
      --stall-timeout S       abort and retry a pull whose bytes have not advanced for S
                              seconds, freeing its slot (default 120; 0: never; only
                              where the runtime reports progress: containerd, Docker)
      --metrics-address H:P   serve /metrics, /healthz and /readyz (default: off)
                              (H an IP or host name; ":P" alone is every interface)
      --output table|json     result format on stdout (default table); logs go to stderr
      --cleanup Unpin|Remove  images dropped from the files while running: Unpin takes
                              prepull's pin off; Remove also removes those prepull pulled,
                              when no container uses them (default Unpin; a PrePull may ask
                              Remove)
${DISK_FLAGS_USAGE}      --log-level LEVEL       ${LOG_LEVELS.join(', ')} (default info)
      --log-format json|text  log lines on stderr: JSON, or text for people (default: text
                              when stderr is a terminal, JSON otherwise)
  -h, --help                  this help
`;

function usage(message: string): PrepullError {
  return new PrepullError('ERR_USAGE', message);
}

/** Parses with `parse`, pointing usage errors at `prepull <command> --help`. */
export function withHelpHint<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof PrepullError && error.code === 'ERR_USAGE') {
      throw new PrepullError('ERR_USAGE', `${error.message}; run \`prepull ${command} --help\``);
    }
    throw error;
  }
}

export function parseLabels(text: string, flag = '--node-labels'): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw usage(`${flag}: "${pair}" is not key=value`);
    const key = pair.slice(0, eq);
    const problem = labelKeyProblem(key);
    if (problem !== undefined) throw usage(`${flag}: invalid label key "${key}": ${problem}`);
    labels[key] = pair.slice(eq + 1);
  }
  return labels;
}

const HOST_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/**
 * HOST:PORT of --metrics-address. HOST is an IPv4 address, an IPv6 address (bracketed, or bare:
 * the text after the last colon is the port, so a Pod's `$(POD_IP):9464` works for both
 * families) or a host name; empty (`:9464`) means every IPv4 interface.
 */
export function parseAddress(text: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  const port = Number(text.slice(colon + 1));
  if (
    colon < 0 ||
    text.slice(colon + 1) === '' ||
    !Number.isInteger(port) ||
    port < 0 ||
    port > 65535
  ) {
    throw usage(`--metrics-address: "${text}" is not HOST:PORT`);
  }
  const written = text.slice(0, colon);
  const bracketed = /^\[(.*)\]$/.exec(written);
  const host = bracketed?.[1] ?? written;
  if (host === '' && bracketed === null) return { host: '0.0.0.0', port };
  const family = isIP(host);
  if ((bracketed !== null || host.includes(':')) && family !== 6) {
    throw usage(`--metrics-address: "${host}" in "${text}" is not an IPv6 address`);
  }
  if (family === 0 && !HOST_NAME.test(host)) {
    throw usage(
      `--metrics-address: "${host}" in "${text}" is neither an IP address nor a host name`,
    );
  }
  return { host, port };
}

export function oneOf<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw usage(`${flag} must be one of ${allowed.join(', ')}, got "${value}"`);
}

export function parseRegistryCAs(values: readonly string[]): Record<string, string> {
  const cas: Record<string, string> = {};
  for (const value of values) {
    const eq = value.indexOf('=');
    if (eq <= 0 || eq === value.length - 1)
      throw usage(`--registry-ca: "${value}" is not HOST=FILE`);
    cas[value.slice(0, eq)] = value.slice(eq + 1);
  }
  return cas;
}

/** `--log-format json|text`; absent, the command chooses by its stderr (src/cli/log.ts). */
export function parseLogFormat(value: string | undefined): { logFormat?: LogFormat } {
  const logFormat = oneOf('--log-format', value, LOG_FORMATS);
  return logFormat === undefined ? {} : { logFormat };
}

/** `--cleanup Unpin|Remove`, Unpin when not given. */
export function parseCleanup(value: string | undefined): CleanupPolicy {
  return oneOf('--cleanup', value, CLEANUP_POLICIES) ?? 'Unpin';
}

/** Seconds from `min` to `max` (as a number of ms); `whole` refuses fractions. */
export function parseSeconds(
  flag: string,
  text: string | undefined,
  fallback: number,
  range: { min: number; max: number; whole?: boolean },
): number {
  if (text === undefined) return fallback * 1000;
  const value = text.trim() === '' ? NaN : Number(text);
  const ok =
    Number.isFinite(value) &&
    value >= range.min &&
    value <= range.max &&
    (range.whole !== true || Number.isInteger(value));
  if (!ok) {
    const kind = range.whole === true ? 'a whole number of seconds' : 'a number of seconds';
    throw usage(`${flag} must be ${kind} from ${range.min} to ${range.max}, got "${text}"`);
  }
  return Math.round(value * 1000);
}

export function parseConcurrency(text: string | undefined): number {
  const value = Number(text ?? '2');
  if (!Number.isInteger(value) || value < 1 || value > 64) {
    throw usage(`--pull-concurrency must be a whole number from 1 to 64, got "${text ?? ''}"`);
  }
  return value;
}

/** `--stall-timeout S`: whole seconds, 0 (off) to a day; 120 when not given. */
export function parseStallTimeout(text: string | undefined): number {
  return parseSeconds('--stall-timeout', text, 120, { min: 0, max: 86_400, whole: true });
}

export function runtimeFlags(
  endpoint: string | undefined,
  protocol: string | undefined,
): Pick<SyncConfig, 'runtimeEndpoint' | 'runtime'> {
  const runtime = oneOf('--runtime', protocol, ['cri', 'docker'] as const);
  if (endpoint !== undefined && !/^unix:\/\/\/./.test(endpoint)) {
    throw usage(`--runtime-endpoint must be unix:///path/to/socket, got "${endpoint}"`);
  }
  return {
    ...(endpoint !== undefined ? { runtimeEndpoint: endpoint } : {}),
    ...(runtime !== undefined ? { runtime } : {}),
  };
}

/** Parses `prepull sync` arguments (without the word `sync`). `help` means print SYNC_USAGE. */
export function parseSyncArgs(argv: readonly string[]): SyncConfig | 'help' {
  return withHelpHint('sync', () => parseSync(argv));
}

function parseSync(argv: readonly string[]): SyncConfig | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: false,
      options: {
        filename: { type: 'string', short: 'f', multiple: true },
        once: { type: 'boolean' },
        'node-name': { type: 'string' },
        'node-labels': { type: 'string' },
        'runtime-endpoint': { type: 'string' },
        runtime: { type: 'string' },
        'docker-config': { type: 'string' },
        'insecure-registry': { type: 'string', multiple: true },
        'registry-ca': { type: 'string', multiple: true },
        'pull-concurrency': { type: 'string' },
        'stall-timeout': { type: 'string' },
        'metrics-address': { type: 'string' },
        output: { type: 'string', short: 'o' },
        'log-level': { type: 'string' },
        'log-format': { type: 'string' },
        cleanup: { type: 'string' },
        'image-fs-floor': { type: 'string' },
        'pin-budget': { type: 'string' },
        'image-fs-path': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw usage(error instanceof Error ? error.message : String(error));
  }
  const v = parsed.values;
  if (v.help === true) return 'help';
  const files = v.filename ?? [];
  if (files.length === 0) throw usage('-f FILE|DIR is required');
  const nodeName = v['node-name'] ?? hostname();
  return {
    files,
    once: v.once === true,
    nodeName,
    nodeLabels: {
      'kubernetes.io/hostname': nodeName,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch,
      ...parseLabels(v['node-labels'] ?? ''),
    },
    ...runtimeFlags(v['runtime-endpoint'], v.runtime),
    ...(v['docker-config'] !== undefined ? { dockerConfig: v['docker-config'] } : {}),
    insecureRegistries: v['insecure-registry'] ?? [],
    registryCAs: parseRegistryCAs(v['registry-ca'] ?? []),
    pullConcurrency: parseConcurrency(v['pull-concurrency']),
    stallTimeoutMs: parseStallTimeout(v['stall-timeout']),
    ...(v['metrics-address'] !== undefined
      ? { metricsAddress: parseAddress(v['metrics-address']) }
      : {}),
    output: oneOf('--output', v.output, ['table', 'json'] as const) ?? 'table',
    logLevel: oneOf('--log-level', v['log-level'], LOG_LEVELS) ?? 'info',
    ...parseLogFormat(v['log-format']),
    cleanup: parseCleanup(v.cleanup),
    disk: parseDiskGuard(v['image-fs-floor'], v['pin-budget'], v['image-fs-path']),
  };
}
