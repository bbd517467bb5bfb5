// The runtime error texts prepull classifies, as containerd 1.6 and Docker 20.10 word them
// (collected from the harness's real daemons), and where each lands.
import { describe, expect, it } from '@jest/globals';
import { PrepullError } from '../errors.ts';
import { classifyRuntimeText, isErrorLike, messageOf, pullFailure } from './error-text.ts';

const CASES: [string, string | undefined][] = [
  // A registry that drops the connection mid-pull: Go's fetchers say EOF (issue 21).
  [
    'failed to pull and unpack image "127.0.0.1:40001/big/a:v1": failed to copy: httpReadSeeker: failed open: failed to do request: Get "http://127.0.0.1:40001/v2/big/a/blobs/sha256:0e41": EOF',
    'ERR_REGISTRY_UNREACHABLE',
  ],
  [
    'failed to pull and unpack image "127.0.0.1:40001/big/a:v1": failed to copy: unexpected EOF',
    'ERR_REGISTRY_UNREACHABLE',
  ],
  ['failed to register layer: unexpected EOF', 'ERR_REGISTRY_UNREACHABLE'],
  // Seen in CI: dockerd stopped cleanly mid-pull; its client to containerd closed first.
  [
    'error creating temporary lease: grpc: the client connection is closing: context canceled',
    'ERR_RUNTIME_UNAVAILABLE',
  ],
  // What the fault suite's wrong-digest blob drew from containerd 1.6.20 and Docker 20.10.24.
  [
    'failed to pull and unpack image "127.0.0.1:41233/wrong:v1": failed to copy: failed commit on ref "layer-sha256:0f…": unexpected commit digest sha256:9a…, expected sha256:0f…: failed precondition',
    'ERR_REGISTRY_DIGEST_MISMATCH',
  ],
  ['filesystem layer verification failed for digest sha256:0f…', 'ERR_REGISTRY_DIGEST_MISMATCH'],
  ['write tcp 127.0.0.1:5->127.0.0.1:6: write: broken pipe', 'ERR_REGISTRY_UNREACHABLE'],
  // runc's EOF is the node's, not the registry's.
  ["can't get final child's PID from pipe: EOF", undefined],
  // containerd (CRI PullImage details)
  [
    // Right after an aborted pull of the same image (seen in CI): not a missing image.
    'failed to pull and unpack image "127.0.0.1:37509/conformance/abort-x:v1": failed to prepare extraction snapshot "extract-128415116-mEXe sha256:80c19f5a6b4075c9be0e4790aa48c8b8bb09c7dffe0df749f040797130fde431": parent snapshot sha256:0e416a37b5a166d4faed27327eaf20a23234c44d8f345bc1dda401405f357211 does not exist: not found',
    'ERR_RUNTIME_FAILED',
  ],
  [
    'failed to pull and unpack image "127.0.0.1:46877/errs/a:nope": failed to resolve reference "127.0.0.1:46877/errs/a:nope": 127.0.0.1:46877/errs/a:nope: not found',
    'ERR_IMAGE_NOT_FOUND',
  ],
  [
    'failed to pull and unpack image "127.0.0.1:44887/errs/a:v1": failed to resolve reference "127.0.0.1:44887/errs/a:v1": pulling from host 127.0.0.1:44887 failed with status code [manifests v1]: 401 Unauthorized',
    'ERR_REGISTRY_UNAUTHORIZED',
  ],
  [
    'failed to pull and unpack image "127.0.0.1:1/errs/a:v1": failed to resolve reference "127.0.0.1:1/errs/a:v1": failed to do request: Head "http://127.0.0.1:1/v2/errs/a/manifests/v1": dial tcp 127.0.0.1:1: connect: connection refused',
    'ERR_REGISTRY_UNREACHABLE',
  ],
  [
    'failed to do request: Head "https://nosuchhost.invalid:5000/v2/errs/a/manifests/v1": dial tcp: lookup nosuchhost.invalid on 10.255.255.53:53: no such host',
    'ERR_REGISTRY_UNREACHABLE',
  ],
  [
    'failed to parse image reference "UPPER/Case:v1": invalid reference format: repository name must be lowercase',
    'ERR_IMAGE_REF_INVALID',
  ],
  [
    'pulling from host r.example failed with status code [manifests v1]: 403 Forbidden',
    'ERR_REGISTRY_FORBIDDEN',
  ],
  [
    'pulling from host r.example failed with status code [manifests v1]: 429 Too Many Requests',
    'ERR_REGISTRY_RATE_LIMITED',
  ],
  [
    'pulling from host r.example failed with status code [manifests v1]: 503 Service Unavailable',
    'ERR_REGISTRY_SERVER_ERROR',
  ],
  [
    'failed to do request: Head "https://r.example/v2/a/manifests/1": x509: certificate signed by unknown authority',
    'ERR_REGISTRY_TLS',
  ],
  // Docker Engine (daemon messages)
  [
    'manifest for 127.0.0.1:46877/dock/a:nope not found: manifest unknown: manifest unknown',
    'ERR_IMAGE_NOT_FOUND',
  ],
  [
    'Head "http://127.0.0.1:44887/v2/dock/a/manifests/v1": no basic auth credentials',
    'ERR_REGISTRY_UNAUTHORIZED',
  ],
  ['unauthorized: authentication required', 'ERR_REGISTRY_UNAUTHORIZED'],
  [
    "pull access denied for nope, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
    'ERR_REGISTRY_UNAUTHORIZED',
  ],
  [
    'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
    'ERR_REGISTRY_UNREACHABLE',
  ],
  ['toomanyrequests: You have reached your pull rate limit.', 'ERR_REGISTRY_RATE_LIMITED'],
  ['invalid reference format: repository name must be lowercase', 'ERR_IMAGE_REF_INVALID'],
  // Nothing recognisable
  ['failed to extract layer: no space left on device', undefined],
];

describe('classifyRuntimeText', () => {
  it.each(CASES)('%s → %s', (text, code) => {
    expect(classifyRuntimeText(text)?.code).toBe(code);
  });
});

describe('pullFailure', () => {
  it('keeps the runtime text and the cause, and says what the code means', () => {
    const cause = new Error('grpc');
    const error = pullFailure('pulling "x:1"', '401 Unauthorized', cause);
    expect(error).toBeInstanceOf(PrepullError);
    expect(error.code).toBe('ERR_REGISTRY_UNAUTHORIZED');
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('401 Unauthorized');
    expect(error.message).toContain('pulling "x:1"');
    expect(error.cause).toBe(cause);
  });

  it('falls back to ERR_RUNTIME_FAILED, retryable, with the text', () => {
    const error = pullFailure('pulling "x:1"', 'no space left on device', undefined);
    expect(error.code).toBe('ERR_RUNTIME_FAILED');
    expect(error.retryable).toBe(true);
    expect(error.message).toContain('no space left on device');
  });
});

describe('isErrorLike and messageOf', () => {
  it('recognise errors by shape, so errors from other realms count', () => {
    expect(isErrorLike(new Error('x'))).toBe(true);
    expect(isErrorLike({ name: 'Error', message: 'from another realm' })).toBe(true);
    expect(isErrorLike('text')).toBe(false);
    expect(messageOf({ name: 'Error', message: 'm' })).toBe('m');
    expect(messageOf('plain text')).toBe('plain text');
    expect(messageOf(42, 'fallback')).toBe('fallback');
  });
});
