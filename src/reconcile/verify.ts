// Verification against the registry: what a tag resolves to now, asked no more often than the
// digest TTL allows (unless a schedule or pullPolicy Always insists), and whether the node's
// image carries that digest.
import { recordedDigest } from '../image/digest.ts';
import { VERIFY_BACKOFF, backoffDelay } from './backoff.ts';
import { afterVerified, afterVerifyFailed } from './state.ts';
import { type DigestMatcher, type EngineDeps, type Entry, errorInfo, isRefusal } from './types.ts';

/**
 * Asks the registry for the digest of `entry`'s reference unless a recent answer stands, and
 * records the answer or the failure (with its backoff) in the entry's history. Never throws.
 */
export async function verify(
  entry: Entry,
  deps: EngineDeps,
  verifyTtlMs: number,
  signal: AbortSignal,
): Promise<void> {
  const { history } = entry;
  const now = deps.clock.now();
  // A retry after a failed check must ask the registry, however recent the last answer.
  const forced =
    entry.forceVerify || entry.desired.pullPolicy === 'Always' || history.verifyError !== undefined;
  entry.verifyRequested = false;
  entry.forceVerify = false;
  // Implicit checks (after a pull, after an edit) reuse a recent answer; schedules and
  // pullPolicy Always always ask the registry.
  const fresh =
    history.verifiedAt !== undefined &&
    history.registryDigest !== undefined &&
    now - history.verifiedAt < verifyTtlMs;
  if (fresh && !forced) return;
  try {
    const credentials = await deps.credentials.forImage(entry.desired);
    const { digest } = await deps.resolver.resolve(entry.desired.reference ?? entry.desired.ref, {
      credentials,
      signal,
    });
    entry.history = afterVerified(entry.history, digest, deps.clock.now());
  } catch (error) {
    if (isRefusal(error)) deps.credentials.refused?.(entry.desired);
    const info = errorInfo(error);
    const delay = backoffDelay(VERIFY_BACKOFF, (entry.history.verifyFailures ?? 0) + 1, () =>
      deps.clock.random(),
    );
    entry.history = afterVerifyFailed(entry.history, info, deps.clock.now(), delay);
    deps.log.warn({ image: entry.desired.ref, err: info }, 'could not verify against the registry');
  }
}

/** Whether the node's image carries the registry's last answer, and the digest it records. */
export function digestMatch(
  entry: Entry,
  matchesDigest: DigestMatcher,
): { digestMatches?: boolean; digest?: string } {
  const digest = entry.history.registryDigest;
  if (entry.image === undefined || digest === undefined) return {};
  const held = recordedDigest(entry.image, entry.desired.ref);
  return {
    digestMatches: matchesDigest(entry.image, entry.desired.ref, [digest]),
    ...(held !== undefined ? { digest: held } : {}),
  };
}
