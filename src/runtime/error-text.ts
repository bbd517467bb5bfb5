// Turns the error text a runtime passes on from a registry into prepull's codes. containerd,
// CRI-O, cri-dockerd and Docker Engine all pull with Go's registry clients and report failures
// as text ("… 401 Unauthorized", "dial tcp …: connection refused"), not as structured codes, so
// the text is all there is. The patterns come from what containerd 1.6 and Docker 20.10 say
// (docs/runtimes.md lists them); anything unrecognised stays ERR_RUNTIME_FAILED with the text.

import { PrepullError, type ErrorCode } from '../errors.ts';

interface Rule {
  readonly code: ErrorCode;
  readonly pattern: RegExp;
  /** What the code means for the person reading the message. */
  readonly meaning: string;
}

// Order matters: the first match wins. A reference is checked before the registry is asked, so
// a bad one says so first; authentication failures are reported before "not found" because some
// registries hide private repositories behind both.
const RULES: readonly Rule[] = [
  {
    // Docker Engine stopping mid-pull: its own gRPC client to containerd closes under the pull
    // ("error creating temporary lease: grpc: the client connection is closing"). The engine
    // still answers for a moment, so only the text tells that the runtime is going away — the
    // node's outage, which must not count as the image's attempt (ADR 0018).
    code: 'ERR_RUNTIME_UNAVAILABLE',
    pattern: /client connection is closing|transport is closing|daemon is shutting down/i,
    meaning: 'the runtime is shutting down',
  },
  {
    code: 'ERR_IMAGE_REF_INVALID',
    pattern: /invalid reference format|failed to parse image reference|repository name must be/i,
    meaning: 'the runtime rejected the image reference',
  },
  {
    code: 'ERR_REGISTRY_UNAUTHORIZED',
    pattern:
      /401 Unauthorized|authorization failed|no basic auth credentials|unauthorized|authentication required|pull access denied/i,
    meaning: 'the registry refused the pull: it needs credentials, or rejected the ones given',
  },
  {
    code: 'ERR_REGISTRY_FORBIDDEN',
    pattern: /403 Forbidden|\bdenied: /i,
    meaning: 'the registry does not let these credentials pull this repository',
  },
  {
    code: 'ERR_REGISTRY_TLS',
    pattern: /x509: |certificate signed by unknown authority|remote error: tls: /i,
    meaning: "the registry's TLS certificate is not trusted by the runtime",
  },
  {
    code: 'ERR_REGISTRY_RATE_LIMITED',
    pattern: /429 Too Many Requests|toomanyrequests/i,
    meaning: 'the registry is rate-limiting pulls',
  },
  {
    code: 'ERR_REGISTRY_SERVER_ERROR',
    pattern: /\b5\d\d (Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout)\b/i,
    meaning: 'the registry failed with a server error',
  },
  {
    // containerd checks each blob as it commits it, Docker each layer once downloaded: content
    // that does not hash to its digest is refused, and nothing of it is stored.
    code: 'ERR_REGISTRY_DIGEST_MISMATCH',
    pattern: /unexpected commit digest|verification failed for digest|digest mismatch/i,
    meaning:
      'the registry, or a proxy or cache between it and the node, served content that does not match its digest; the runtime refused it and stored nothing of it',
  },
  {
    code: 'ERR_REGISTRY_UNREACHABLE',
    pattern:
      /connection refused|dial tcp|no such host|i\/o timeout|connection reset|network is unreachable|no route to host|TLS handshake timeout|server misbehaving|unexpected EOF|broken pipe|server sent GOAWAY|(?:failed to copy|httpReadSeeker|failed to do request|Get "[^"]*")(?::[^:]*)*: EOF\b/i,
    // A connection the registry dropped mid-pull reads as Go's EOF ("unexpected EOF", or
    // `Get "https://…": EOF` from containerd's fetcher): the registry's, not the node's, fault.
    meaning: 'the runtime could not reach the registry, or lost the connection to it',
  },
  {
    // Unpacking on the node failed (containerd ends these with "not found" too): a local snapshot
    // problem, seen right after an interrupted pull of the same image — retryable, not a missing image.
    code: 'ERR_RUNTIME_FAILED',
    pattern: /failed to prepare extraction snapshot|parent snapshot \S+ does not exist/i,
    meaning:
      'the runtime could not unpack the image on the node (a snapshot left by an interrupted pull, or the disk)',
  },
  {
    code: 'ERR_IMAGE_NOT_FOUND',
    pattern: /not found|manifest unknown|name unknown|\b404\b/i,
    meaning: 'the registry has no such image (tag, digest or repository)',
  },
];

/**
 * Whether `value` is an Error. Checked by shape, not `instanceof`: errors from Node's core (a
 * socket's ENOENT) come from another realm under test runners that use vm contexts.
 */
export function isErrorLike(value: unknown): value is Error {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { message?: unknown }).message === 'string' &&
    typeof (value as { name?: unknown }).name === 'string'
  );
}

/** The message of an error, or a fixed text for anything else thrown. */
export function messageOf(value: unknown, otherwise = 'unknown error'): string {
  if (isErrorLike(value)) return value.message;
  return typeof value === 'string' ? value : otherwise;
}

/** The code the runtime's text points to, with what it means; undefined when none fits. */
export function classifyRuntimeText(
  text: string,
): { code: ErrorCode; meaning: string } | undefined {
  const rule = RULES.find((r) => r.pattern.test(text));
  return rule === undefined ? undefined : { code: rule.code, meaning: rule.meaning };
}

/**
 * The typed error for a failed pull, from the runtime's text. `action` says what was attempted
 * ("pulling \"x:1\" through containerd at unix:///run/…"); the runtime's words are kept in the
 * message, since they name the host and status a person needs.
 */
export function pullFailure(action: string, text: string, cause: unknown): PrepullError {
  const found = classifyRuntimeText(text);
  if (found === undefined) {
    return new PrepullError('ERR_RUNTIME_FAILED', `${action} failed: ${text}`, { cause });
  }
  return new PrepullError(found.code, `${action}: ${found.meaning} (runtime said: ${text})`, {
    cause,
  });
}
