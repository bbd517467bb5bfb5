// The one place pino is configured. `main` creates the root logger; components get children
// (`log.child({ component: 'cri' })`). Credentials are removed by configuration — every field
// name that can hold one is redacted wherever it appears — not by hoping callers leave them out.
// Lines are JSON for machines (a Pod's log, the default) or pino-pretty's text for a person at a
// terminal; both come from the same pino root, so both are redacted the same way.
import { pino, type Logger, type DestinationStream, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Field names that may carry a secret, at any depth up to three. */
const SECRET_FIELDS = [
  'password',
  'auth',
  'authorization',
  'Authorization',
  'token',
  'identityToken',
  'identity_token',
  'registryToken',
  'registry_token',
  'access_token',
  'refresh_token',
  'credentials',
  'X-Registry-Auth',
  'x-registry-auth',
];

export const REDACT_PATHS = SECRET_FIELDS.flatMap((field) => {
  const key = /^[A-Za-z_$][\w$]*$/.test(field) ? field : `["${field}"]`;
  const join = (prefix: string): string =>
    key.startsWith('[') ? `${prefix}${key}` : `${prefix}.${key}`;
  return [key.startsWith('[') ? key.slice(2, -2) : key, join('*'), join('*.*'), join('*.*.*')];
});

/** The longest string a line carries in its message or a top-level field; the rest is cut. */
export const MAX_LOG_STRING = 4096;

function truncated(text: string): string {
  return `${text.slice(0, MAX_LOG_STRING)}… (${text.length - MAX_LOG_STRING} more characters)`;
}

/**
 * The fields of one line with long strings cut: input a person wrote (an image name, a file's
 * excerpt) must not make a line megabytes long. A shallow pass, so the JSON path stays cheap;
 * nested values are prepull's own and bounded where they are made.
 */
function boundFields(object: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key in object) {
    const value = object[key];
    if (typeof value === 'string' && value.length > MAX_LOG_STRING) {
      copy ??= { ...object };
      copy[key] = truncated(value);
    }
  }
  return copy ?? object;
}

function rootOptions(level: LogLevel): LoggerOptions<never, false> {
  return {
    level,
    base: { name: 'prepull' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }), log: boundFields },
    hooks: {
      logMethod(args, method) {
        const bounded = args.map((arg) =>
          typeof arg === 'string' && arg.length > MAX_LOG_STRING ? truncated(arg) : arg,
        ) as Parameters<typeof method>;
        method.apply(this, bounded);
      },
    },
  };
}

/** The root logger: JSON lines to `destination` (stderr by default), secrets redacted. */
export function createLogger(level: LogLevel = 'info', destination?: DestinationStream): Logger {
  return pino(rootOptions(level), destination ?? pino.destination({ fd: 2, sync: false }));
}

export interface LogOutput {
  format: LogFormat;
  /** Colours in text lines (for a terminal that takes them). */
  color?: boolean;
  /** Where the lines go (default: stderr). */
  destination?: DestinationStream;
}

/**
 * The root logger of a command, in `output.format`. Text lines are pino-pretty's, as an
 * in-process stream: a pino transport runs in a worker thread that loads its target by module
 * name, and the bundle (ADR 0005) has no such module to load. pino-pretty is imported only
 * here, when text is asked for, so it is a chunk of its own that the JSON path never loads.
 */
export async function openLogger(level: LogLevel, output: LogOutput): Promise<Logger> {
  if (output.format === 'json') return createLogger(level, output.destination);
  const { default: pretty } = await import('pino-pretty');
  const stream = pretty({
    destination: output.destination ?? 2,
    colorize: output.color ?? false,
    // One line per event, as the JSON has; an error's stack still gets its own lines.
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'name',
  });
  return pino(rootOptions(level), stream);
}
