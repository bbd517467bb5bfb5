// The catalogue of prepull's coded errors. Every error prepull raises carries one of these codes,
// says whether a retry can help, and keeps its cause. docs/errors.md documents each code, and a
// unit test keeps the two in step.

export const ERROR_CODES = {
  ERR_USAGE: {
    retryable: false,
    summary: 'The command line is wrong: an unknown command or flag, or a bad flag value.',
  },
  ERR_IMAGE_REF_INVALID: {
    retryable: false,
    summary: 'An image reference does not follow the Docker reference grammar.',
  },
  ERR_CREDENTIALS_INVALID: {
    retryable: false,
    summary: 'A pull secret or Docker config file holding registry credentials is malformed.',
  },
  ERR_PREPULL_INVALID: {
    retryable: false,
    summary: 'A PrePull object is invalid: a field has the wrong type or value.',
  },
  ERR_REGISTRY_UNAUTHORIZED: {
    retryable: false,
    summary: 'The registry refused the request: no credentials, or credentials it did not accept.',
  },
  ERR_REGISTRY_FORBIDDEN: {
    retryable: false,
    summary: 'The registry accepted the credentials but they may not pull this repository.',
  },
  ERR_IMAGE_NOT_FOUND: {
    retryable: false,
    summary: 'The registry has no such tag or digest in this repository.',
  },
  ERR_REPOSITORY_NOT_FOUND: {
    retryable: false,
    summary: 'The registry has no such repository (or hides it from these credentials).',
  },
  ERR_REGISTRY_RATE_LIMITED: {
    retryable: true,
    summary: 'The registry asked us to slow down (429).',
  },
  ERR_REGISTRY_UNREACHABLE: {
    retryable: true,
    summary: 'The registry could not be reached: DNS, connection refused or reset, or a timeout.',
  },
  ERR_REGISTRY_SERVER_ERROR: {
    retryable: true,
    summary: 'The registry failed with a 5xx answer.',
  },
  ERR_REGISTRY_TLS: {
    retryable: false,
    summary: 'The TLS connection to the registry failed: an untrusted or mismatched certificate.',
  },
  ERR_REGISTRY_DIGEST_MISMATCH: {
    retryable: true,
    summary:
      'The registry, or something between it and the node, served content that does not match its digest.',
  },
  ERR_REGISTRY_PROTOCOL: {
    retryable: false,
    summary: "The registry's answer did not follow the distribution API.",
  },
  ERR_RUNTIME_UNAVAILABLE: {
    retryable: true,
    summary: "The container runtime's socket does not answer.",
  },
  ERR_RUNTIME_NOT_DETECTED: {
    retryable: true,
    summary: 'No container runtime answered on any socket tried.',
  },
  ERR_RUNTIME_FAILED: {
    retryable: true,
    summary: 'The container runtime reported an error prepull has no specific code for.',
  },
  ERR_DEADLINE_EXCEEDED: {
    retryable: true,
    summary: 'An operation did not finish within its deadline.',
  },
  ERR_PULL_STALLED: {
    retryable: true,
    summary: 'A pull made no progress for the stall timeout and was aborted to free its slot.',
  },
  ERR_DISK_BUDGET: {
    retryable: true,
    summary:
      "A pull would take the image filesystem below prepull's free-space floor, or prepull's pins past their budget; it waits for room.",
  },
  ERR_ABORTED: {
    retryable: false,
    summary: 'The operation was cancelled by prepull itself.',
  },
  ERR_UNSUPPORTED: {
    retryable: false,
    summary: 'The container runtime does not support this operation.',
  },
  ERR_KUBE_CONFIG: {
    retryable: false,
    summary: 'No usable Kubernetes client configuration (kubeconfig or in-cluster).',
  },
  ERR_KUBE_UNAVAILABLE: {
    retryable: true,
    summary: 'The Kubernetes API server could not be reached or answered with a server error.',
  },
  ERR_KUBE_FORBIDDEN: {
    retryable: false,
    summary: "The Kubernetes API refused the agent's identity (401/403): RBAC or credentials.",
  },
  ERR_KUBE_NOT_FOUND: {
    retryable: false,
    summary: 'The Kubernetes object asked for does not exist.',
  },
  ERR_KUBE_CONFLICT: {
    retryable: true,
    summary: 'The Kubernetes object changed since it was read (409).',
  },
  ERR_KUBE_INVALID: {
    retryable: false,
    summary: 'The Kubernetes API rejected an object as invalid (400/422).',
  },
  ERR_PULL_SECRET_UNAVAILABLE: {
    retryable: true,
    summary: 'A pull secret a PrePull names could not be read or is not a docker-registry secret.',
  },
} as const satisfies Record<string, { retryable: boolean; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class PrepullError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PrepullError';
    this.code = code;
    this.retryable = ERROR_CODES[code].retryable;
  }
}

export function isPrepullError(value: unknown, code?: ErrorCode): value is PrepullError {
  return value instanceof PrepullError && (code === undefined || value.code === code);
}

/**
 * What the operating system said of a file, without Node's code and system call:
 * "ENOENT: no such file or directory, open 'x'" gives "no such file or directory".
 */
export function fileErrorText(error: unknown): string {
  // Read as a field, not by instanceof: an error from another realm (a vm context) is an Error too.
  const field = (error as { message?: unknown } | null)?.message;
  const message = typeof field === 'string' ? field : String(error);
  return /^E[A-Z]+: (.+?), \w+ '.*'$/s.exec(message)?.[1] ?? message;
}
