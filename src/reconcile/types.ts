// The engine's vocabulary, shared by its parts: what it is given (dependencies, options), what it
// keeps per image (Entry), and how it reads a failure. Types only, plus two small error readers.
import type { CleanupPolicy } from '../api/prepull.ts';
import type { Clock } from '../clock.ts';
import { isPrepullError } from '../errors.ts';
import type { RegistryCredential } from '../image/credential.ts';
import type { ImageReference } from '../image/reference.ts';
import type { ErrorInfo } from '../image/report.ts';
import type { ImageRuntime, RuntimeImage } from '../runtime/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { BackoffPolicy } from './backoff.ts';
import type { DesiredImage } from './desired.ts';
import type { DiskFloor } from '../config/disk.ts';
import type { Decision, History } from './state.ts';

/** Tag → digest, as the registry says now (registry client). */
export interface DigestResolver {
  resolve(
    ref: string | ImageReference,
    options: {
      credentials?: readonly RegistryCredential[];
      signal?: AbortSignal;
      /** 1: ask once, never wait for a retry (a probe for the registry's Retry-After). */
      maxAttempts?: number;
    },
  ): Promise<{ digest: string }>;
  /**
   * How long the registry of `ref` asked (Retry-After on its latest 429 or 503) not to be asked
   * again, in ms from now; undefined when it asked nothing. Optional: without it pull retries
   * follow the backoff alone.
   */
  retryAfterMs?(ref: string | ImageReference): number | undefined;
}

/** The credentials to try, in order, for an image (pull secrets, a docker config file). */
export interface CredentialProvider {
  forImage(image: DesiredImage): Promise<RegistryCredential[]>;
  /** The registry refused the credentials given for `image`: read them afresh next time. */
  refused?(image: DesiredImage): void;
}

/** A cron schedule: its expression, and the IANA zone it reads in (absent: the process's zone). */
export interface CronSpec {
  expression: string;
  timeZone?: string;
}

/** A time a schedule named, and the next one after it (ms since the epoch; undefined: unknown). */
export interface Tick {
  at: number;
  next?: number;
}

/** Cron schedules (node-cron in production, a manual trigger in tests). */
export interface Scheduler {
  /** Calls `onTick` at each time `cron` names, until the returned function is called. */
  schedule(cron: CronSpec, onTick: (tick: Tick) => void): () => void;
}

/** Does `image` carry one of `digests` for the repository `ref` names? (runtime/digest.ts) */
export type DigestMatcher = (
  image: RuntimeImage,
  ref: string,
  digests: readonly string[],
) => boolean;

/** Something worth telling the owners of an image (the agent turns these into Kubernetes Events). */
export interface EngineEvent {
  kind: 'Pulled' | 'Repaired' | 'PullFailed' | 'DigestDrift';
  image: string;
  /** PrePulls (`namespace/name`) that want the image. */
  requiredBy: readonly string[];
  message: string;
}

/** The guard's settings (flags of both commands, src/config/disk.ts). */
export interface DiskGuardOptions {
  floor: DiskFloor;
  /** Bytes the images prepull pins may add up to; absent: no budget. */
  pinBudgetBytes?: number;
  /** Where to measure; absent: the runtime's image filesystem mount point. */
  imageFsPath?: string;
  /** While an image is held, free space is measured again this often (default 15 s). */
  recheckMs?: number;
}

/** A filesystem's figures, as statfs gives them. */
export interface FsSpace {
  /** Bytes an unprivileged writer may still use (statfs f_bavail), what kubelet calls available. */
  availableBytes: number;
  capacityBytes: number;
}

/** Measures the filesystem holding `path` (statfs in production, a fake in tests). */
export type FsMeasure = (path: string) => Promise<FsSpace>;

export interface EngineDeps {
  runtime: ImageRuntime;
  resolver: DigestResolver;
  credentials: CredentialProvider;
  matchesDigest: DigestMatcher;
  scheduler: Scheduler;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  /** Receives pulls, repairs, failures and drift as they happen (optional). */
  onEvent?: (event: EngineEvent) => void;
  /** Measures a filesystem for the disk guard (default statfs; disk.ts). */
  measureFs?: FsMeasure;
}

export interface EngineOptions {
  /** This node's name: with a PrePull's name, it places the node's firings of that PrePull's schedule in its window. */
  nodeName: string;
  /** Labels of this node, for nodeSelectors. */
  labels: Record<string, string>;
  /** Pulls at once on this node. */
  pullConcurrency: number;
  /** A registry digest checked this recently is reused rather than asked again. */
  verifyTtlMs?: number;
  /** Re-list interval when the runtime cannot report deletions. */
  resyncIntervalMs?: number;
  backoff?: BackoffPolicy;
  /**
   * A pull whose bytes have not advanced for this long is aborted (ERR_PULL_STALLED) and retried
   * with backoff, freeing its slot (default 120 s; 0: never). Only where the runtime reports
   * progress: without it a slow pull and a hung one look the same, and only timeoutSeconds applies.
   */
  stallTimeoutMs?: number;
  /** Cleanup for every image that leaves the desired set (default Unpin; PrePulls may ask Remove). */
  cleanup?: CleanupPolicy;
  /**
   * When the runtime stops answering mid-run, wait for it without counting attempts (default
   * true; outage.ts). False for `sync --once`, which reports the failure and exits instead.
   */
  waitForRuntime?: boolean;
  /** The disk guard's floor and budget (ADR 0019); absent: no guard. */
  disk?: DiskGuardOptions;
}

/** The options with their defaults, as the engine's parts read them (the disk guard aside). */
export type EngineSettings = Required<Omit<EngineOptions, 'disk'>>;

/** A pull in flight: its latest figure, changed in place by each progress callback. */
export interface PullInFlight {
  /** When the pull began (engine clock, ms). */
  readonly startedAt: number;
  /** Bytes so far; 0 until the runtime reports any. */
  bytes: number;
  totalBytes: number | undefined;
  /** The runtime has reported bytes (runtimes without progress never do). */
  reported: boolean;
  /** When the bytes last advanced (engine clock, ms): the pull's start, at first. */
  advancedAt: number;
  /** When the progress was last logged (engine clock, ms): the pull's start, at first. */
  loggedAt: number;
}

/** Everything the engine knows about one desired image. */
export interface Entry {
  desired: DesiredImage;
  history: History;
  /** What the runtime reported last (undefined: absent). */
  image?: RuntimeImage;
  /** When the runtime reported `image` (engine clock, ms); undefined: not asked yet. */
  observedAt?: number;
  /** The runtime reported a change to a record of this image (containerd's /images/update: a
   *  pin taken off, say): read its status again before the next decision. */
  recheck?: true;
  decision?: Decision;
  verifyRequested: boolean;
  /** A schedule asked: resolve again even within the digest TTL. */
  forceVerify: boolean;
  pullDurationMs?: number;
  /** Set while a pull of this image runs. */
  pull?: PullInFlight;
  /** The runtime refused to pin this image; not retried until it is pulled again. */
  pinError?: ErrorInfo;
  /** It has been Present on this node: a pull after that is a repair. */
  wasPresent?: boolean;
  /** The image ID prepull pulled under this name (release may remove only that). */
  pulledId?: string;
  /** The image ID prepull pinned, unpinned when it found it (release unpins only that). */
  pinnedId?: string;
  /** Bytes the runtime last reported for this image on this node (the disk guard's estimate). */
  lastSize?: number;
  /** The disk guard holds the pull (ERR_DISK_BUDGET): no attempt is counted; disk.ts lets go. */
  diskHeld?: ErrorInfo;
}

export function errorInfo(error: unknown): ErrorInfo {
  if (isPrepullError(error))
    return { code: error.code, message: error.message, retryable: error.retryable };
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'ERR_RUNTIME_FAILED', message, retryable: true };
}

/** The registry refused the credentials: the provider is told, so it reads them afresh. */
export function isRefusal(error: unknown): boolean {
  return (
    isPrepullError(error, 'ERR_REGISTRY_UNAUTHORIZED') ||
    isPrepullError(error, 'ERR_REGISTRY_FORBIDDEN')
  );
}
