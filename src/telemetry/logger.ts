// The one place pino is configured. `main` creates the root logger; components get children
// (`log.child({ component: 'cri' })`). Credentials are removed by configuration — every field
// name that can hold one is redacted wherever it appears — not by hoping callers leave them out.
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

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

/** The root logger: JSON lines to `destination` (stderr by default), secrets redacted. */
export function createLogger(level: LogLevel = 'info', destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { name: 'prepull' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return pino(options, destination ?? pino.destination({ fd: 2, sync: false }));
}
