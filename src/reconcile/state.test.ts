import { describe, expect, it } from '@jest/globals';
import type { ErrorInfo } from '../image/report.ts';
import { PULL_BACKOFF, backoffDelay } from './backoff.ts';
import {
  type DecideContext,
  type History,
  NEW_HISTORY,
  type Observed,
  type Wanted,
  afterPullFailed,
  afterPullStarted,
  afterPullSucceeded,
  afterReset,
  afterVerified,
  afterVerifyFailed,
  decide,
} from './state.ts';

const tag: Wanted = {
  ref: 'r.io/shop/web:1',
  byDigest: false,
  pullPolicy: 'IfNotPresent',
  verify: 'Registry',
  pin: true,
  timeoutSeconds: 1800,
  backoffLimit: 2,
};
const absentImage: Observed = { present: false };
const here: Observed = { present: true, id: 'sha256:c', pinned: true, digestMatches: true };
/** Present, with no registry digest to compare against yet. */
const unverified: Observed = { present: true, id: 'sha256:c', pinned: true };
const ctx: DecideContext = { now: 1000, verifyDue: false, canPin: true };
const unreachable: ErrorInfo = {
  code: 'ERR_REGISTRY_UNREACHABLE',
  message: 'connection refused',
  retryable: true,
};
const notFound: ErrorInfo = {
  code: 'ERR_IMAGE_NOT_FOUND',
  message: 'no such tag',
  retryable: false,
};

describe('decide', () => {
  // [case, wanted, observed, history, context, expected state, reason, action kind]
  const table: [string, Wanted, Observed, History, DecideContext, string, string, string][] = [
    ['absent, never tried', tag, absentImage, NEW_HISTORY, ctx, 'Missing', 'NotPresent', 'pull'],
    [
      'being pulled',
      tag,
      absentImage,
      { ...NEW_HISTORY, pulling: true },
      ctx,
      'Pulling',
      'Pulling',
      'none',
    ],
    [
      'absent, backing off',
      tag,
      absentImage,
      { ...NEW_HISTORY, attempts: 1, nextAttemptAt: 5000, lastError: unreachable },
      ctx,
      'Missing',
      'BackOff',
      'wait',
    ],
    [
      'absent, backoff over',
      tag,
      absentImage,
      { ...NEW_HISTORY, attempts: 1, nextAttemptAt: 900 },
      ctx,
      'Missing',
      'NotPresent',
      'pull',
    ],
    [
      'absent, gave up',
      tag,
      absentImage,
      { ...NEW_HISTORY, gaveUp: notFound },
      ctx,
      'Failed',
      'PullFailed',
      'none',
    ],
    [
      'invalid reference',
      { ...tag, invalid: { code: 'ERR_IMAGE_REF_INVALID', message: 'bad', retryable: false } },
      here,
      NEW_HISTORY,
      ctx,
      'Failed',
      'InvalidReference',
      'none',
    ],
    [
      'present, verification due',
      tag,
      here,
      NEW_HISTORY,
      { ...ctx, verifyDue: true },
      'Present',
      'Verifying',
      'verify',
    ],
    ['present and verified', tag, here, NEW_HISTORY, ctx, 'Present', 'Verified', 'none'],
    [
      'present, verify None',
      { ...tag, verify: 'None' },
      unverified,
      NEW_HISTORY,
      { ...ctx, verifyDue: true },
      'Present',
      'Present',
      'none',
    ],
    [
      'present by digest needs no registry',
      { ...tag, byDigest: true },
      here,
      NEW_HISTORY,
      { ...ctx, verifyDue: true },
      'Present',
      'Verified',
      'none',
    ],
    [
      'present, not pinned',
      tag,
      { ...here, pinned: false },
      NEW_HISTORY,
      ctx,
      'Present',
      'Pinning',
      'pin',
    ],
    [
      'present, not pinned, runtime cannot pin',
      tag,
      { ...here, pinned: false },
      NEW_HISTORY,
      { ...ctx, canPin: false },
      'Present',
      'Verified',
      'none',
    ],
    [
      'present, pin off',
      { ...tag, pin: false },
      { ...here, pinned: false },
      NEW_HISTORY,
      ctx,
      'Present',
      'Verified',
      'none',
    ],
    [
      'drift under IfNotPresent',
      tag,
      { ...here, digestMatches: false },
      NEW_HISTORY,
      ctx,
      'Stale',
      'DigestDrift',
      'none',
    ],
    [
      'drift under Always',
      { ...tag, pullPolicy: 'Always' },
      { ...here, digestMatches: false },
      NEW_HISTORY,
      ctx,
      'Stale',
      'DigestDrift',
      'pull',
    ],
    [
      'drift under Always, backing off',
      { ...tag, pullPolicy: 'Always' },
      { ...here, digestMatches: false },
      { ...NEW_HISTORY, nextAttemptAt: 9000 },
      ctx,
      'Stale',
      'BackOff',
      'wait',
    ],
    [
      'drift under Always, gave up',
      { ...tag, pullPolicy: 'Always' },
      { ...here, digestMatches: false },
      { ...NEW_HISTORY, gaveUp: unreachable },
      ctx,
      'Stale',
      'PullFailed',
      'none',
    ],
    [
      'present, registry unreachable at verification, waiting to ask again',
      tag,
      unverified,
      { ...NEW_HISTORY, verifyError: unreachable, nextVerifyAt: 31_000 },
      ctx,
      'Present',
      'VerifyFailed',
      'wait',
    ],
    [
      'present, registry unreachable at verification, time to ask again',
      tag,
      unverified,
      { ...NEW_HISTORY, verifyError: unreachable, nextVerifyAt: 900 },
      ctx,
      'Present',
      'VerifyFailed',
      'verify',
    ],
  ];

  it.each(table)('%s', (_label, wanted, observed, history, context, state, reason, action) => {
    const decision = decide(wanted, observed, history, context);
    expect([decision.state, decision.reason, decision.action.kind]).toEqual([
      state,
      reason,
      action,
    ]);
  });

  it('says when a backed-off pull will be retried and why it failed', () => {
    const history: History = {
      ...NEW_HISTORY,
      attempts: 1,
      nextAttemptAt: 5000,
      lastError: unreachable,
    };
    expect(decide(tag, absentImage, history, ctx)).toEqual({
      state: 'Missing',
      reason: 'BackOff',
      message: 'retrying in 4s (attempt 2 of 3): connection refused',
      code: 'ERR_REGISTRY_UNREACHABLE',
      action: { kind: 'wait', until: 5000 },
    });
  });

  it('carries the error code behind every failure, back-off and failed check', () => {
    const gaveUp = afterPullFailed(NEW_HISTORY, tag, notFound, 1000, 0);
    const invalid: Wanted = {
      ...tag,
      invalid: { code: 'ERR_IMAGE_REF_INVALID', message: 'bad', retryable: false },
    };
    const always: Wanted = { ...tag, pullPolicy: 'Always' };
    const drifted: Observed = { ...here, digestMatches: false };
    const backingOff: History = { ...NEW_HISTORY, nextAttemptAt: 5000, lastError: unreachable };
    const verifyFailed = afterVerifyFailed(NEW_HISTORY, unreachable, 10, 30_000);
    const codes = [
      decide(invalid, absentImage, NEW_HISTORY, ctx),
      decide(tag, absentImage, gaveUp, ctx),
      decide(tag, absentImage, backingOff, ctx),
      decide(always, drifted, gaveUp, ctx),
      decide(always, drifted, backingOff, ctx),
      decide(tag, here, verifyFailed, ctx),
    ].map((d) => [d.state, d.reason, d.code]);
    expect(codes).toEqual([
      ['Failed', 'InvalidReference', 'ERR_IMAGE_REF_INVALID'],
      ['Failed', 'PullFailed', 'ERR_IMAGE_NOT_FOUND'],
      ['Missing', 'BackOff', 'ERR_REGISTRY_UNREACHABLE'],
      ['Stale', 'PullFailed', 'ERR_IMAGE_NOT_FOUND'],
      ['Stale', 'BackOff', 'ERR_REGISTRY_UNREACHABLE'],
      ['Present', 'VerifyFailed', 'ERR_REGISTRY_UNREACHABLE'],
    ]);
    expect(decide(tag, here, NEW_HISTORY, ctx).code).toBeUndefined();
  });
});

describe('transitions after a pull', () => {
  it('backs off on retryable errors until backoffLimit retries are spent, then gives up', () => {
    let history = afterPullStarted(NEW_HISTORY);
    history = afterPullFailed(history, tag, unreachable, 1000, 2000);
    expect(history).toMatchObject({ attempts: 1, pulling: false, nextAttemptAt: 3000 });
    history = afterPullFailed(afterPullStarted(history), tag, unreachable, 3000, 4000);
    expect(history).toMatchObject({ attempts: 2, nextAttemptAt: 7000 });
    expect(history.gaveUp).toBeUndefined();
    history = afterPullFailed(afterPullStarted(history), tag, unreachable, 7000, 8000);
    expect(history.attempts).toBe(3);
    expect(history.nextAttemptAt).toBeUndefined();
    expect(history.gaveUp?.message).toBe('connection refused (gave up after 3 attempts)');
    expect(decide(tag, absentImage, history, { ...ctx, now: 99_999 }).state).toBe('Failed');
  });

  it('gives up at once on an error retrying cannot fix', () => {
    const history = afterPullFailed(afterPullStarted(NEW_HISTORY), tag, notFound, 1000, 2000);
    expect(history.gaveUp?.message).toBe('no such tag (gave up after 1 attempt)');
    expect(decide(tag, absentImage, history, ctx).reason).toBe('PullFailed');
  });

  it('a success clears the failure record; a reset gives a failed image new attempts', () => {
    const failed = afterPullFailed(NEW_HISTORY, tag, notFound, 1000, 0);
    expect(afterPullSucceeded(failed)).toEqual({ attempts: 0, pulling: false });
    const reset = afterReset(failed);
    expect(reset.gaveUp).toBeUndefined();
    expect(decide(tag, absentImage, reset, ctx).action.kind).toBe('pull');
  });

  it('records verification results', () => {
    const failed = afterVerifyFailed(
      afterVerifyFailed(NEW_HISTORY, unreachable, 10, 30_000),
      unreachable,
      40,
      60_000,
    );
    expect(failed).toMatchObject({ verifyFailures: 2, nextVerifyAt: 60_040, verifiedAt: 40 });
    const verified = afterVerified(failed, 'sha256:d', 20);
    expect(verified).toEqual({
      attempts: 0,
      pulling: false,
      registryDigest: 'sha256:d',
      verifiedAt: 20,
    });
  });
});

describe('backoffDelay', () => {
  it('doubles from 2 s with ±20% jitter and caps at 5 minutes', () => {
    const mid = () => 0.5;
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(PULL_BACKOFF, n, mid))).toEqual([
      2000, 4000, 8000, 16_000, 32_000,
    ]);
    expect(backoffDelay(PULL_BACKOFF, 20, mid)).toBe(300_000);
    expect(backoffDelay(PULL_BACKOFF, 1, () => 0)).toBe(1600);
    expect(backoffDelay(PULL_BACKOFF, 1, () => 0.999999)).toBe(2400);
    expect(backoffDelay(PULL_BACKOFF, 30, () => 0.999999)).toBe(300_000);
  });
});

describe('decide, while the node runtime does not answer', () => {
  const socketGone: ErrorInfo = {
    code: 'ERR_RUNTIME_UNAVAILABLE',
    message: 'the runtime does not answer on its socket',
    retryable: true,
  };
  const down: DecideContext = { ...ctx, runtimeDown: socketGone };

  it('has an absent image wait for the runtime, doing nothing and counting nothing', () => {
    expect(decide(tag, absentImage, NEW_HISTORY, down)).toEqual({
      state: 'Missing',
      reason: 'RuntimeUnavailable',
      message: `waiting for the node's container runtime: ${socketGone.message}`,
      code: 'ERR_RUNTIME_UNAVAILABLE',
      action: { kind: 'none' },
    });
  });

  it('leaves a present image as it is, without its pending check or pin', () => {
    const unpinned: Observed = { ...here, pinned: false };
    expect(decide(tag, unpinned, NEW_HISTORY, down)).toMatchObject({
      state: 'Present',
      reason: 'Pinning',
      action: { kind: 'none' },
    });
  });

  it('leaves an image that failed for its own reason Failed', () => {
    const gaveUp = afterPullFailed(NEW_HISTORY, tag, notFound, 1000, 0);
    expect(decide(tag, absentImage, gaveUp, down)).toMatchObject({
      state: 'Failed',
      code: 'ERR_IMAGE_NOT_FOUND',
    });
  });
});
