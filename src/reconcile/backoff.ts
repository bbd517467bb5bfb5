// Exponential backoff with jitter, capped. Jitter spreads the retries of many images (and many
// nodes) so a registry that comes back is not hit by everyone in the same second.

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** Fraction of the delay randomised either way: 0.2 gives delay × [0.8, 1.2). */
  jitter: number;
}

/** Pull retries: 2 s, 4 s, 8 s … up to 5 minutes (kubelet's image back-off tops out at 5 min too). */
export const PULL_BACKOFF: BackoffPolicy = {
  initialMs: 2000,
  maxMs: 300_000,
  factor: 2,
  jitter: 0.2,
};

/** Delay before retry number `attempt` (1 for the first retry), never above `maxMs`. */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number): number {
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** exponent);
  const jittered = base * (1 - policy.jitter + 2 * policy.jitter * random());
  return Math.round(Math.min(policy.maxMs, jittered));
}

/**
 * Re-verification after a failed registry check: the image is present, so there is no hurry;
 * 30 s doubling to 10 minutes keeps a registry outage from being hammered by every node.
 */
export const VERIFY_BACKOFF: BackoffPolicy = {
  initialMs: 30_000,
  maxMs: 600_000,
  factor: 2,
  jitter: 0.2,
};
