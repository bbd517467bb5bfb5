// What a node says about one required image: the state vocabulary and the one report the engine
// makes, which `sync` prints, the metrics count, and the agent writes into NodeImageCache.

/** The state of a required image on a node (NodeImageCache `status.images[].state`). */
export type ImageState = 'Present' | 'Pulling' | 'Missing' | 'Stale' | 'Failed';

/** Every state, in the order people read them. */
export const IMAGE_STATES: readonly ImageState[] = [
  'Present',
  'Pulling',
  'Missing',
  'Stale',
  'Failed',
];

/** An error as reports carry it: its code (docs/errors.md), message and whether a retry may help. */
export interface ErrorInfo {
  code: string;
  message: string;
  retryable: boolean;
}

/** How far a pull in flight has come, as the runtime reports it (containerd, Docker Engine). */
export interface ImageProgress {
  /** Bytes downloaded so far by this pull. */
  bytes: number;
  /** Bytes to download in all, where the runtime says (Docker Engine does; containerd does not). */
  totalBytes?: number;
}

/** The per-image report: NodeImageCache entries, `sync` output, Events and metrics. */
export interface ImageReport {
  /** The canonical reference. */
  image: string;
  /** As written in the PrePull that first named it. */
  written: string;
  /** PrePulls (`namespace/name`) that want it. */
  requiredBy: readonly string[];
  state: ImageState;
  /** One CamelCase word, as Kubernetes reasons are. */
  reason: string;
  message?: string;
  /** The error code behind the reason, where an error caused it (docs/errors.md). */
  code?: string;
  /** The local image's digest for this repository (repo digest), when present. */
  digest?: string;
  registryDigest?: string;
  imageId?: string;
  size?: number;
  pinned?: boolean;
  /**
   * How the pin is known, when pinned: `cri` — CRI reports it, as kubelet's image GC reads it;
   * `label` — only containerd's label carries it (containerd before 1.6.22 / 1.7.3).
   */
  pinSource?: 'cri' | 'label';
  lastVerified?: string;
  attempts: number;
  /** Duration of the last successful pull, ms. */
  pullDurationMs?: number;
  /** Pulling, once the runtime has reported bytes: the latest figure (at most a second old). */
  progress?: ImageProgress;
  /** prepull pulled the image the node holds under this name (ADR 0014, release). */
  pulledByPrepull?: true;
  /** prepull set the pin this image carries: it takes it off once no PrePull wants the image. */
  pinnedByPrepull?: true;
  /** Every PrePull that wants it says `cleanup: Remove` (absent: Unpin). */
  cleanup?: 'Remove';
}

/** What happened to an image no PrePull wants any more (ADR 0014, "Release (agent)"). */
export type ReleaseAction = 'Unpinned' | 'Removed' | 'Kept';

/** One release, as NodeImageCache `status.released` lists it and `sync` prints it. */
export interface ReleasedImage {
  /** The canonical reference. */
  image: string;
  /** Removed (it was pulled by prepull and nothing uses it), Unpinned, or Kept as it was. */
  action: ReleaseAction;
  /** Why it was kept, or not removed: a container uses it, prepull did not pull it, … */
  reason?: string;
  /** When (RFC 3339). */
  time: string;
}
