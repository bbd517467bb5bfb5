// Reading a registry's answers: the distribution API's error bodies, and the coded errors shared
// by manifest and token requests (rate limits, server errors, statuses nothing else expects).

import { PrepullError } from '../errors.ts';
import type { TransportResponse } from './transport.ts';

export interface DistributionError {
  readonly code: string;
  readonly message: string;
}

const EXCERPT = 200;

/** The `errors` of a distribution API error body; [] when the body is not one. */
export function distributionErrors(body: Buffer): DistributionError[] {
  if (body.length === 0 || body.length > 65_536) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return [];
  }
  const errors = isObject(parsed) ? parsed.errors : undefined;
  if (!Array.isArray(errors)) return [];
  return errors.filter(isObject).map((e) => ({
    code: typeof e.code === 'string' ? e.code : '',
    message: typeof e.message === 'string' ? e.message.slice(0, EXCERPT) : '',
  }));
}

export function hasErrorCode(res: TransportResponse, code: string): boolean {
  return distributionErrors(res.body).some((e) => e.code === code);
}

/** "HTTP 404 (MANIFEST_UNKNOWN: manifest unknown)": the status and what the registry said. */
export function describeAnswer(res: TransportResponse): string {
  const said = distributionErrors(res.body)
    .map((e) => (e.message === '' ? e.code : `${e.code}: ${e.message}`))
    .join('; ');
  return `HTTP ${res.status}${said === '' ? '' : ` (${said})`}`;
}

/** The error for an answer that a retry might fix (429, 5xx), after the transport gave up. */
export function transientAnswerError(
  what: string,
  res: TransportResponse,
): PrepullError | undefined {
  const cause = new Error(describeAnswer(res));
  const tries = res.attempts === 1 ? '' : ` after ${res.attempts} attempts`;
  if (res.status === 429) {
    const wait =
      res.retryAfterMs === undefined
        ? ''
        : ` It asked to wait ${Math.ceil(res.retryAfterMs / 1000)} s, longer than prepull waits within one attempt.`;
    return new PrepullError(
      'ERR_REGISTRY_RATE_LIMITED',
      `${what}: the registry is rate limiting us (HTTP 429${tries}).${wait} prepull will retry ` +
        'later; a mirror or credentials with a higher limit help if this lasts.',
      { cause },
    );
  }
  if (res.status >= 500) {
    return new PrepullError(
      'ERR_REGISTRY_SERVER_ERROR',
      `${what}: the registry failed with ${describeAnswer(res)}${tries}. It is the registry's ` +
        'problem; prepull will retry.',
      { cause },
    );
  }
  return undefined;
}

/** An answer the distribution API does not allow at this point. */
export function unexpectedAnswerError(what: string, res: TransportResponse): PrepullError {
  return new PrepullError(
    'ERR_REGISTRY_PROTOCOL',
    `${what}: unexpected answer ${describeAnswer(res)}. Check that the host (and any mirror ` +
      'path) is a registry implementing the distribution API.',
    { cause: new Error(describeAnswer(res)) },
  );
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
