// gRPC failures from a CRI runtime (or containerd's own services) as prepull's typed errors: the
// status code says whether the runtime itself is reachable, and for pulls the runtime's error
// text says what the registry did (error-text.ts).

import { status } from '@grpc/grpc-js';
import { PrepullError } from '../../errors.ts';
import { isErrorLike, messageOf, pullFailure } from '../error-text.ts';

export interface FailureContext {
  /** What was attempted, for the message: 'pulling "x:1" through containerd at unix:///…'. */
  action: string;
  /** Registry errors are only possible while pulling; elsewhere "not found" is about the node. */
  pull: boolean;
  /** The caller's AbortSignal fired: a CANCELLED status is then ours. */
  aborted: boolean;
  timeoutMs?: number;
}

interface GrpcErrorShape {
  code: status;
  details: string;
}

function isGrpcError(error: unknown): error is Error & GrpcErrorShape {
  return (
    isErrorLike(error) &&
    typeof (error as Partial<GrpcErrorShape>).code === 'number' &&
    typeof (error as Partial<GrpcErrorShape>).details === 'string'
  );
}

export function grpcFailure(error: unknown, context: FailureContext): PrepullError {
  if (error instanceof PrepullError) return error;
  if (!isGrpcError(error)) {
    return new PrepullError('ERR_RUNTIME_FAILED', `${context.action} failed: ${messageOf(error)}`, {
      cause: error,
    });
  }
  const { action } = context;
  const text = error.details;
  switch (error.code) {
    case status.CANCELLED:
      return context.aborted
        ? new PrepullError('ERR_ABORTED', `${action} was cancelled`, { cause: error })
        : new PrepullError(
            'ERR_RUNTIME_FAILED',
            `${action} was cancelled by the runtime: ${text}`,
            {
              cause: error,
            },
          );
    case status.DEADLINE_EXCEEDED:
      return new PrepullError(
        'ERR_DEADLINE_EXCEEDED',
        `${action} did not finish within ${context.timeoutMs ?? '?'} ms`,
        { cause: error },
      );
    case status.UNAVAILABLE:
      return new PrepullError(
        'ERR_RUNTIME_UNAVAILABLE',
        `${action}: the runtime does not answer on its socket (${text}); is it running, and is ` +
          'its socket mounted?',
        { cause: error },
      );
    case status.UNIMPLEMENTED:
      return new PrepullError(
        'ERR_UNSUPPORTED',
        `${action}: the runtime does not implement this call (${text})`,
        { cause: error },
      );
    default:
      return context.pull
        ? pullFailure(action, text, error)
        : nodeFailure(error.code, action, text, error);
  }
}

function nodeFailure(code: status, action: string, text: string, cause: unknown): PrepullError {
  if (code === status.NOT_FOUND) {
    return new PrepullError(
      'ERR_IMAGE_NOT_FOUND',
      `${action}: no such image on the node (${text})`,
      {
        cause,
      },
    );
  }
  if (code === status.INVALID_ARGUMENT && /reference/i.test(text)) {
    return new PrepullError('ERR_IMAGE_REF_INVALID', `${action}: ${text}`, { cause });
  }
  return new PrepullError('ERR_RUNTIME_FAILED', `${action} failed: ${text}`, { cause });
}
