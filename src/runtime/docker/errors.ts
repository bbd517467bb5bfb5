// Docker Engine failures as prepull's typed errors: a socket that does not answer is the runtime
// being unavailable; an HTTP status or in-stream error carries the daemon's text, which for pulls
// says what the registry did (error-text.ts).

import { PrepullError } from '../../errors.ts';
import { isErrorLike, messageOf, pullFailure } from '../error-text.ts';

export type Interruption = 'aborted' | 'deadline' | undefined;

export interface DockerFailureContext {
  action: string;
  pull: boolean;
  /** Why prepull itself stopped the request, if it did. */
  interrupted: Interruption;
  timeoutMs?: number;
}

const SOCKET_ERRORS = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EACCES']);

interface ModemError {
  code?: unknown;
  statusCode?: unknown;
  json?: unknown;
}

/** The daemon's own words: its JSON `message`, or the modem's text without its prefix. */
export function daemonText(error: Error): string {
  const json = (error as ModemError).json;
  if (typeof json === 'object' && json !== null && 'message' in json) {
    const message = json.message;
    if (typeof message === 'string') return message;
  }
  return error.message.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}

export function dockerFailure(error: unknown, context: DockerFailureContext): PrepullError {
  if (error instanceof PrepullError) return error;
  const { action } = context;
  if (context.interrupted === 'aborted') {
    return new PrepullError('ERR_ABORTED', `${action} was cancelled`, { cause: error });
  }
  if (context.interrupted === 'deadline') {
    return new PrepullError(
      'ERR_DEADLINE_EXCEEDED',
      `${action} did not finish within ${context.timeoutMs ?? '?'} ms`,
      { cause: error },
    );
  }
  if (!isErrorLike(error)) {
    return new PrepullError('ERR_RUNTIME_FAILED', `${action} failed: ${messageOf(error)}`, {
      cause: error,
    });
  }
  const { code, statusCode } = error as ModemError;
  if (typeof code === 'string' && SOCKET_ERRORS.has(code)) {
    return new PrepullError(
      'ERR_RUNTIME_UNAVAILABLE',
      `${action}: Docker Engine does not answer on its socket (${code}); is dockerd running, ` +
        'and is its socket mounted?',
      { cause: error },
    );
  }
  const text = daemonText(error);
  if (context.pull) return pullFailure(action, text, error);
  if (statusCode === 404) {
    return new PrepullError('ERR_IMAGE_NOT_FOUND', `${action}: no such image on the node`, {
      cause: error,
    });
  }
  return new PrepullError('ERR_RUNTIME_FAILED', `${action} failed: ${text}`, { cause: error });
}
