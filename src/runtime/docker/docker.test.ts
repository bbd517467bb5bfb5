// Docker's pull stream and errors, without a daemon: progress from layer messages, in-stream
// errors, line splitting, and socket/HTTP failures mapped to codes.
import { describe, expect, it } from '@jest/globals';
import { dockerFailure, daemonText } from './errors.ts';
import { DockerPullTally, JsonLines, streamError, type PullMessage } from './progress.ts';

describe('DockerPullTally', () => {
  it('adds download bytes per layer, never decreasing, with a total once every layer is known', () => {
    const tally = new DockerPullTally();
    const figures = (
      [
        { status: 'Pulling from team/app', id: 'v1' },
        { status: 'Pulling fs layer', id: 'a', progressDetail: {} },
        { status: 'Pulling fs layer', id: 'b', progressDetail: {} },
        { status: 'Already exists', id: 'c', progressDetail: {} },
        { status: 'Downloading', id: 'a', progressDetail: { current: 100, total: 1000 } },
        { status: 'Downloading', id: 'b', progressDetail: { current: 50, total: 500 } },
        { status: 'Downloading', id: 'a', progressDetail: { current: 1000, total: 1000 } },
        { status: 'Download complete', id: 'a', progressDetail: {} },
        { status: 'Extracting', id: 'a', progressDetail: { current: 10, total: 1000 } },
        { status: 'Download complete', id: 'b', progressDetail: {} },
        { status: 'Pull complete', id: 'a', progressDetail: {} },
        { status: 'Digest: sha256:abc' },
        { status: 'Status: Downloaded newer image for team/app:v1' },
      ] satisfies PullMessage[]
    )
      .map((m) => tally.observe(m))
      .filter((f) => f !== undefined);
    expect(figures).toEqual([
      { bytesDone: 100 },
      { bytesDone: 150, bytesTotal: 1500 },
      { bytesDone: 1050, bytesTotal: 1500 },
      { bytesDone: 1500, bytesTotal: 1500 },
    ]);
    expect(tally.finished).toBe(true);
  });

  it('counts a layer that completed without a size as done', () => {
    const tally = new DockerPullTally();
    tally.observe({ status: 'Pulling fs layer', id: 'a' });
    tally.observe({ status: 'Downloading', id: 'a', progressDetail: { current: 5, total: 10 } });
    expect(tally.observe({ status: 'Download complete', id: 'a' })).toEqual({
      bytesDone: 10,
      bytesTotal: 10,
    });
    expect(tally.finished).toBe(false);
  });

  it('a dropped connection: the full size Docker says as it retries is not the layer done, and the resumed bytes count from where it stopped', () => {
    // What Docker Engine 20.10 sent when the registry reset the connection 256 KiB into a
    // 1050802-byte layer: "Downloading" at the full size, then "Retrying in", then a Range
    // request for the rest, counted from 0 against the rest's size (788658 = 1050802 - 262144).
    const tally = new DockerPullTally();
    const figures = (
      [
        { status: 'Pulling fs layer', id: 'a', progressDetail: {} },
        { status: 'Downloading', id: 'a', progressDetail: { current: 36412, total: 1050802 } },
        { status: 'Downloading', id: 'a', progressDetail: { current: 1050802, total: 1050802 } },
        { status: 'Retrying in 5 seconds', id: 'a', progressDetail: {} },
        { status: 'Downloading', id: 'a', progressDetail: { current: 36355, total: 788658 } },
        { status: 'Downloading', id: 'a', progressDetail: { current: 788658, total: 788658 } },
        { status: 'Verifying Checksum', id: 'a', progressDetail: {} },
        { status: 'Download complete', id: 'a', progressDetail: {} },
      ] satisfies PullMessage[]
    ).map((m) => tally.observe(m));
    expect(figures).toEqual([
      undefined,
      { bytesDone: 36412, bytesTotal: 1050802 },
      // Not every byte: the stall watch must keep watching while Docker waits to retry.
      undefined,
      undefined,
      { bytesDone: 262144 + 36355, bytesTotal: 1050802 },
      undefined,
      { bytesDone: 1050802, bytesTotal: 1050802 },
      undefined,
    ]);
  });

  it('finds in-stream errors', () => {
    expect(streamError({ error: 'x', errorDetail: { message: 'detail' } })).toBe('detail');
    expect(streamError({ error: 'x' })).toBe('x');
    expect(streamError({ status: 'Downloading' })).toBeUndefined();
  });
});

describe('JsonLines', () => {
  it('splits chunks at newlines, across chunk boundaries, skipping blank and bad lines', () => {
    const seen: unknown[] = [];
    const lines = new JsonLines<unknown>((v) => seen.push(v));
    lines.push('{"a":1}\n{"b"');
    lines.push(':2}\r\n\nnot json\n{"c":3}');
    expect(seen).toEqual([{ a: 1 }, { b: 2 }]);
    lines.push('\n');
    expect(seen).toEqual([{ a: 1 }, { b: 2 }, { c: 3 }]);
  });
});

describe('dockerFailure', () => {
  const context = { action: 'pulling "r/x:1"', pull: true, interrupted: undefined };

  it('maps a socket that does not answer to ERR_RUNTIME_UNAVAILABLE', () => {
    const cause = Object.assign(new Error('connect ENOENT /var/run/docker.sock'), {
      code: 'ENOENT',
      syscall: 'connect',
    });
    const error = dockerFailure(cause, { ...context, pull: false });
    expect(error.code).toBe('ERR_RUNTIME_UNAVAILABLE');
    expect(error.retryable).toBe(true);
    expect(error.cause).toBe(cause);
  });

  it('maps our own abort and deadline before looking at the error', () => {
    const error = new Error('The operation was aborted');
    expect(dockerFailure(error, { ...context, interrupted: 'aborted' }).code).toBe('ERR_ABORTED');
    expect(dockerFailure(error, { ...context, interrupted: 'deadline' }).code).toBe(
      'ERR_DEADLINE_EXCEEDED',
    );
  });

  it("reads a pull's registry outcome from the daemon's message", () => {
    const modem = Object.assign(
      new Error('(HTTP code 500) server error - unauthorized: authentication required '),
      { statusCode: 500, json: { message: 'unauthorized: authentication required' } },
    );
    expect(daemonText(modem)).toBe('unauthorized: authentication required');
    expect(dockerFailure(modem, context).code).toBe('ERR_REGISTRY_UNAUTHORIZED');
    const notFound = Object.assign(
      new Error('(HTTP code 404) unexpected - manifest for r/x:1 not found: manifest unknown '),
      { statusCode: 404 },
    );
    expect(daemonText(notFound)).toBe('manifest for r/x:1 not found: manifest unknown');
    expect(dockerFailure(notFound, context).code).toBe('ERR_IMAGE_NOT_FOUND');
  });

  it('outside pulls, 404 means not on the node and other statuses are runtime failures', () => {
    const missing = Object.assign(new Error('(HTTP code 404) no such image - No such image'), {
      statusCode: 404,
    });
    expect(dockerFailure(missing, { ...context, pull: false }).code).toBe('ERR_IMAGE_NOT_FOUND');
    const conflict = Object.assign(new Error('(HTTP code 409) conflict - image is in use'), {
      statusCode: 409,
    });
    expect(dockerFailure(conflict, { ...context, pull: false }).code).toBe('ERR_RUNTIME_FAILED');
  });
});
