// The per-image state machine, as a pure function of what is wanted, what the runtime reports,
// what the engine remembers and the time. No I/O: the engine performs the action it returns and
// feeds the outcome back through the `after…` functions, so every transition is unit-tested.

import type { ErrorInfo, ImageState } from '../image/report.ts';

/** One required image, merged over every PrePull that wants it. */
export interface Wanted {
  /** Canonical reference, the key of everything about this image. */
  ref: string;
  /** Set when the reference does not parse: the image fails alone. */
  invalid?: ErrorInfo;
  /** A digest reference verifies itself: no registry lookup is needed. */
  byDigest: boolean;
  pullPolicy: 'IfNotPresent' | 'Always';
  verify: 'Registry' | 'None';
  pin: boolean;
  timeoutSeconds: number;
  backoffLimit: number;
}

/** What the runtime's own image service says (the check kubelet makes). */
export interface Observed {
  present: boolean;
  id?: string;
  size?: number;
  pinned?: boolean;
  /** Does the local image carry the registry's current digest? Undefined until verified. */
  digestMatches?: boolean;
  /** The digest the local image records for the image's repository, if it records one. */
  digest?: string;
}

/** What the engine remembers about an image between decisions. */
export interface History {
  /** Consecutive failed pull attempts. */
  attempts: number;
  /** No pull before this time (backoff). */
  nextAttemptAt?: number;
  /** Set when pulling gave up (non-retryable error, or backoffLimit reached); cleared by a schedule or a change. */
  gaveUp?: ErrorInfo;
  lastError?: ErrorInfo;
  pulling: boolean;
  registryDigest?: string;
  verifiedAt?: number;
  verifyError?: ErrorInfo;
  /** Consecutive failed verifications, and when to ask the registry again. */
  verifyFailures?: number;
  nextVerifyAt?: number;
}

export const NEW_HISTORY: History = { attempts: 0, pulling: false };

export type Action =
  | { kind: 'none' }
  | { kind: 'pull' }
  | { kind: 'verify' }
  | { kind: 'pin' }
  | { kind: 'wait'; until: number };

export interface Decision {
  state: ImageState;
  /** One CamelCase word, as Kubernetes reasons are. */
  reason: string;
  message?: string;
  /** The error code (docs/errors.md) behind a failure, a back-off or a failed check. */
  code?: string;
  action: Action;
}

export interface DecideContext {
  now: number;
  /** A verification is due (never verified, a schedule fired, or pullPolicy Always re-checks). */
  verifyDue: boolean;
  /** The runtime can pin images. */
  canPin: boolean;
  /**
   * May a pull of an absent image start? False while a paced rollout has not admitted this node
   * and the node never held the image (ADR 0014); undefined: yes.
   */
  admitted?: boolean;
  /**
   * The node's runtime does not answer (outage.ts): nothing is done and no attempt counted; an
   * image waiting for a pull says it waits for the runtime. Undefined: it answers.
   */
  runtimeDown?: ErrorInfo;
  /**
   * The disk guard holds this image's pull (ERR_DISK_BUDGET, disk.ts): an absent image is
   * Failed with reason DiskBudget, a Stale one stays Stale; nothing is done and no attempt
   * counted until the guard lets go.
   */
  diskHeld?: ErrorInfo;
}

const NONE: Action = { kind: 'none' };

function absent(wanted: Wanted, history: History, ctx: DecideContext): Decision {
  const now = ctx.now;
  if (history.gaveUp !== undefined) {
    return {
      state: 'Failed',
      reason: 'PullFailed',
      message: history.gaveUp.message,
      code: history.gaveUp.code,
      action: NONE,
    };
  }
  if (history.nextAttemptAt !== undefined && now < history.nextAttemptAt) {
    const seconds = Math.ceil((history.nextAttemptAt - now) / 1000);
    const last = history.lastError?.message ?? 'the last pull failed';
    return {
      state: 'Missing',
      reason: 'BackOff',
      message: `retrying in ${seconds}s (attempt ${history.attempts + 1} of ${wanted.backoffLimit + 1}): ${last}`,
      ...(history.lastError !== undefined ? { code: history.lastError.code } : {}),
      action: { kind: 'wait', until: history.nextAttemptAt },
    };
  }
  if (ctx.admitted === false) {
    return {
      state: 'Missing',
      reason: 'AwaitingAdmission',
      message:
        "waiting for prepull's controller to admit this node to the paced rollout of the PrePulls that want it",
      action: NONE,
    };
  }
  return { state: 'Missing', reason: 'NotPresent', action: { kind: 'pull' } };
}

function stale(wanted: Wanted, observed: Observed, history: History, now: number): Decision {
  // An image loaded from an archive (docker load, ctr import) records no registry digest.
  const held =
    observed.digest !== undefined
      ? `the node holds ${observed.digest}`
      : "the node's image records no digest for this repository (loaded from an archive?), so it cannot be shown to match";
  const message = `the registry's digest is now ${history.registryDigest ?? 'different'}; ${held}`;
  if (wanted.pullPolicy === 'IfNotPresent') {
    return {
      state: 'Stale',
      reason: 'DigestDrift',
      message: `${message} (pullPolicy IfNotPresent: not re-pulled)`,
      action: NONE,
    };
  }
  if (history.gaveUp !== undefined) {
    return {
      state: 'Stale',
      reason: 'PullFailed',
      message: history.gaveUp.message,
      code: history.gaveUp.code,
      action: NONE,
    };
  }
  if (history.nextAttemptAt !== undefined && now < history.nextAttemptAt) {
    return {
      state: 'Stale',
      reason: 'BackOff',
      message,
      ...(history.lastError !== undefined ? { code: history.lastError.code } : {}),
      action: { kind: 'wait', until: history.nextAttemptAt },
    };
  }
  return { state: 'Stale', reason: 'DigestDrift', message, action: { kind: 'pull' } };
}

function present(
  wanted: Wanted,
  observed: Observed,
  history: History,
  ctx: DecideContext,
): Decision {
  const checksRegistry = wanted.verify === 'Registry' && !wanted.byDigest;
  if (checksRegistry && ctx.verifyDue) {
    return { state: 'Present', reason: 'Verifying', action: { kind: 'verify' } };
  }
  if (checksRegistry && observed.digestMatches === false)
    return stale(wanted, observed, history, ctx.now);
  if (wanted.pin && ctx.canPin && observed.pinned !== true) {
    return { state: 'Present', reason: 'Pinning', action: { kind: 'pin' } };
  }
  if (checksRegistry && history.verifyError !== undefined) {
    // The image is there; only the check failed. Ask again after the verification backoff.
    const retryAt = history.nextVerifyAt ?? ctx.now;
    return {
      state: 'Present',
      reason: 'VerifyFailed',
      message: history.verifyError.message,
      code: history.verifyError.code,
      action: ctx.now >= retryAt ? { kind: 'verify' } : { kind: 'wait', until: retryAt },
    };
  }
  // A digest reference is verified by being present: content addressing leaves no other image.
  const verified = checksRegistry || wanted.byDigest;
  return { state: 'Present', reason: verified ? 'Verified' : 'Present', action: NONE };
}

/** The state to report and the next thing to do for one image. */
export function decide(
  wanted: Wanted,
  observed: Observed,
  history: History,
  ctx: DecideContext,
): Decision {
  if (wanted.invalid !== undefined) {
    return {
      state: 'Failed',
      reason: 'InvalidReference',
      message: wanted.invalid.message,
      code: wanted.invalid.code,
      action: NONE,
    };
  }
  if (history.pulling) return { state: 'Pulling', reason: 'Pulling', action: NONE };
  const decision = observed.present
    ? present(wanted, observed, history, ctx)
    : absent(wanted, history, ctx);
  const held = ctx.diskHeld;
  if (held !== undefined && decision.action.kind === 'pull') {
    return {
      state: observed.present ? decision.state : 'Failed',
      reason: 'DiskBudget',
      message: held.message,
      code: held.code,
      action: NONE,
    };
  }
  const down = ctx.runtimeDown;
  if (down === undefined || decision.action.kind === 'none') return decision;
  // Present or Stale stay as they are until the runtime answers; an absent image waits for it.
  if (observed.present) return { ...decision, action: NONE };
  return {
    state: 'Missing',
    reason: 'RuntimeUnavailable',
    message: `waiting for the node's container runtime: ${down.message}`,
    code: down.code,
    action: NONE,
  };
}

export function afterPullStarted(history: History): History {
  return { ...history, pulling: true };
}

export function afterPullSucceeded(history: History): History {
  const next: History = { ...history, attempts: 0, pulling: false };
  delete next.nextAttemptAt;
  delete next.gaveUp;
  delete next.lastError;
  return next;
}

/**
 * A failed attempt: retryable errors back off until `backoffLimit` retries are spent; others
 * (not found, unauthorized, invalid) give up at once — retrying them only hammers the registry.
 * `delayMs` is the backoff for this attempt (see backoff.ts).
 */
export function afterPullFailed(
  history: History,
  wanted: Wanted,
  error: ErrorInfo,
  now: number,
  delayMs: number,
): History {
  const attempts = history.attempts + 1;
  const next: History = { ...history, attempts, pulling: false, lastError: error };
  if (!error.retryable || attempts > wanted.backoffLimit) {
    const tries = attempts === 1 ? '1 attempt' : `${attempts} attempts`;
    next.gaveUp = { ...error, message: `${error.message} (gave up after ${tries})` };
    delete next.nextAttemptAt;
  } else {
    next.nextAttemptAt = now + delayMs;
  }
  return next;
}

/** A schedule fired or the PrePull changed: give a failed image a fresh set of attempts. */
export function afterReset(history: History): History {
  const next: History = { ...history, attempts: 0 };
  delete next.gaveUp;
  delete next.nextAttemptAt;
  return next;
}

export function afterVerified(history: History, registryDigest: string, now: number): History {
  const next: History = { ...history, registryDigest, verifiedAt: now };
  delete next.verifyError;
  delete next.verifyFailures;
  delete next.nextVerifyAt;
  return next;
}

/** A failed check; `delayMs` (verification backoff) says when to ask the registry again. */
export function afterVerifyFailed(
  history: History,
  error: ErrorInfo,
  now: number,
  delayMs: number,
): History {
  return {
    ...history,
    verifyError: error,
    verifiedAt: now,
    verifyFailures: (history.verifyFailures ?? 0) + 1,
    nextVerifyAt: now + delayMs,
  };
}
