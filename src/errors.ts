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
