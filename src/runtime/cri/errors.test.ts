// gRPC status plus runtime text → prepull's codes, for CRI calls and containerd's own services.
import { describe, expect, it } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import { PrepullError } from '../../errors.ts';
import { grpcFailure, type FailureContext } from './errors.ts';

function grpcError(code: status, details: string): Error {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details });
}

const PULL: FailureContext = {
  action: 'pulling "r/x:1"',
  pull: true,
  aborted: false,
  timeoutMs: 500,
};
const STATUS: FailureContext = { action: 'asking for the status', pull: false, aborted: false };

describe('grpcFailure', () => {
  it('maps UNAVAILABLE to ERR_RUNTIME_UNAVAILABLE, retryable, with the cause', () => {
    const cause = grpcError(status.UNAVAILABLE, 'No connection established');
    const error = grpcFailure(cause, STATUS);
    expect(error.code).toBe('ERR_RUNTIME_UNAVAILABLE');
    expect(error.retryable).toBe(true);
    expect(error.cause).toBe(cause);
  });

  it('maps DEADLINE_EXCEEDED to ERR_DEADLINE_EXCEEDED naming the deadline', () => {
    const error = grpcFailure(grpcError(status.DEADLINE_EXCEEDED, 'Deadline exceeded'), PULL);
    expect(error.code).toBe('ERR_DEADLINE_EXCEEDED');
    expect(error.message).toContain('500 ms');
  });

  it('maps CANCELLED to ERR_ABORTED only when the caller aborted', () => {
    const cancelled = grpcError(status.CANCELLED, 'Cancelled on client');
    expect(grpcFailure(cancelled, { ...PULL, aborted: true }).code).toBe('ERR_ABORTED');
    expect(grpcFailure(cancelled, PULL).code).toBe('ERR_RUNTIME_FAILED');
  });

  it('maps UNIMPLEMENTED to ERR_UNSUPPORTED', () => {
    expect(grpcFailure(grpcError(status.UNIMPLEMENTED, 'unknown service'), STATUS).code).toBe(
      'ERR_UNSUPPORTED',
    );
  });

  it('reads the registry outcome of a pull from the runtime text', () => {
    const text =
      'failed to pull and unpack image "r/x:1": failed to resolve reference "r/x:1": ' +
      'pulling from host r failed with status code [manifests 1]: 401 Unauthorized';
    expect(grpcFailure(grpcError(status.UNKNOWN, text), PULL).code).toBe(
      'ERR_REGISTRY_UNAUTHORIZED',
    );
    expect(grpcFailure(grpcError(status.NOT_FOUND, 'r/x:1: not found'), PULL).code).toBe(
      'ERR_IMAGE_NOT_FOUND',
    );
  });

  it('outside pulls, NOT_FOUND is about the node, and other text is not read as a registry', () => {
    const notHere = grpcFailure(grpcError(status.NOT_FOUND, 'image "x": not found'), STATUS);
    expect(notHere.code).toBe('ERR_IMAGE_NOT_FOUND');
    expect(notHere.message).toContain('on the node');
    expect(grpcFailure(grpcError(status.UNKNOWN, '401 Unauthorized'), STATUS).code).toBe(
      'ERR_RUNTIME_FAILED',
    );
    expect(
      grpcFailure(grpcError(status.INVALID_ARGUMENT, 'invalid reference format'), STATUS).code,
    ).toBe('ERR_IMAGE_REF_INVALID');
  });

  it('passes a PrepullError through and wraps anything else', () => {
    const typed = new PrepullError('ERR_ABORTED', 'x');
    expect(grpcFailure(typed, STATUS)).toBe(typed);
    expect(grpcFailure('odd', STATUS).code).toBe('ERR_RUNTIME_FAILED');
  });
});
