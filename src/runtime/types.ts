// The ImageRuntime interface: what the reconciler needs from the node's container runtime, and
// nothing more. Adapters (CRI, containerd's native extras, Docker Engine) and the in-memory fake
// implement it; one conformance suite (src/runtime/testing/conformance.ts) holds them to the
// same semantics.

import type { RegistryCredential } from '../image/credential.ts';
import type { ImageNames } from '../image/names.ts';

export interface RuntimeInfo {
  /** How the runtime names itself: "containerd", "cri-o", "docker", … */
  readonly name: string;
  readonly version: string;
  /** The CRI API version ("v1") or the Docker Engine API version ("1.41"). */
  readonly apiVersion: string;
  /** How prepull talks to it. */
  readonly protocol: 'cri' | 'docker';
  /** The socket, as "unix:///path". */
  readonly endpoint: string;
  /**
   * The pod sandbox (pause) image the runtime is configured with, where the runtime reveals it
   * (containerd's CRI status does); every Pod needs it, so the agent treats it as required.
   */
  readonly sandboxImage?: string;
}

/** One local image, with names in canonical form ("docker.io/library/nginx:1.27"). */
export interface RuntimeImage extends ImageNames {
  // repoDigests: for a multi-arch image, the index digest each tag resolved to.
  /** Bytes, as the runtime counts them. */
  readonly size: number;
  /** Protected from kubelet's image garbage collection, as the runtime reports it now. */
  readonly pinned: boolean;
  /**
   * How the pin is known, when pinned: `cri` — CRI's ImageStatus reports it, so kubelet's GC
   * sees it; `label` — only containerd's `io.cri-containerd.pinned` label carries it (containerd
   * before 1.6.22 / 1.7.3 keeps the label but CRI reports false).
   */
  readonly pinSource?: 'cri' | 'label';
  /**
   * Unpinned, yet some of the image's records carry the pin label (containerd only: another
   * client labelled, or unlabelled, only some of them). Undefined where the runtime cannot say.
   */
  readonly pinPartial?: boolean;
}

export interface PullProgress {
  /** Bytes downloaded so far by this pull; never decreases between callbacks. */
  readonly bytesDone: number;
  /** Total bytes to download, when the runtime knows it. */
  readonly bytesTotal?: number;
}

export interface PullOptions {
  /** Sent to the runtime for this pull only; never logged or put in errors. */
  readonly credentials?: RegistryCredential | undefined;
  /** Deadline of this attempt; the pull fails with ERR_DEADLINE_EXCEEDED after it. */
  readonly timeoutMs: number;
  /** Aborting ends the call promptly with ERR_ABORTED and asks the runtime to stop. */
  readonly signal?: AbortSignal | undefined;
  /** Called as bytes arrive, where `capabilities.progress`; otherwise never called. */
  readonly onProgress?: ((progress: PullProgress) => void) | undefined;
}

export interface ImageFsUsage {
  /** Where the runtime keeps image data. */
  readonly mountpoint: string;
  readonly usedBytes?: number;
  readonly inodesUsed?: number;
}

/** What a runtime can do. A missing capability is reported here and its method throws
 *  ERR_UNSUPPORTED: nothing is emulated behind the caller's back. */
export interface RuntimeCapabilities {
  /** pin() and unpin() protect images from kubelet's image GC. */
  readonly pin: boolean;
  /** watchDeletions() reports removals as they happen; without it, poll listImages(). */
  readonly deletionEvents: boolean;
  /** pull() reports bytes through onProgress. */
  readonly progress: boolean;
}

/**
 * What watchDeletions reports.
 * - `removed`: a name (tag or digest reference, canonical) or a whole image (its ID) was removed
 *   from the runtime. A hint: confirm with imageStatus() before acting, as Docker reports an
 *   untagged image by ID even when other tags keep it.
 * - `updated`: a record under this name changed (containerd's `/images/update`: its labels, say
 *   the pin, or its target); a hint to read the image's status again.
 * - `gap`: the event stream broke and was re-established (the runtime restarted, say); removals
 *   in between may have been missed, so the caller should re-list.
 */
export type DeletionEvent =
  | { readonly kind: 'removed'; readonly name: string }
  | { readonly kind: 'updated'; readonly name: string }
  | { readonly kind: 'gap'; readonly reason: string };

export interface ImageRuntime {
  readonly capabilities: RuntimeCapabilities;

  info(): Promise<RuntimeInfo>;

  /** Every image, in one call (for start-up and periodic resync). */
  listImages(): Promise<RuntimeImage[]>;

  /**
   * The presence check kubelet makes (CRI ImageStatus): the image `ref` names — a tag or digest
   * reference, or an image ID — or undefined when it is not on the node. A reference with both a
   * tag and a digest is looked up by its digest, as containerd does.
   */
  imageStatus(ref: string): Promise<RuntimeImage | undefined>;

  /** Pulls `ref` (a tag or digest reference) and returns the image as the runtime now holds it. */
  pull(ref: string, options: PullOptions): Promise<RuntimeImage>;

  /** Removes the image `ref` names; an absent image is not an error. Only for images prepull
   *  put there. */
  remove(ref: string): Promise<void>;

  /** Protects the image `ref` names from kubelet's image GC; ERR_IMAGE_NOT_FOUND if absent. */
  pin(ref: string): Promise<void>;
  unpin(ref: string): Promise<void>;

  imageFsInfo(): Promise<ImageFsUsage[]>;

  /**
   * IDs of the images containers use, as kubelet's image GC counts them before removing anything:
   * every container, running or exited (until it is removed), and where the runtime has pod
   * sandboxes, the sandbox (pause) image while any sandbox exists. One list call (plus a status
   * call for a container that names its image only by reference).
   */
  imagesInUse(): Promise<Set<string>>;

  /**
   * Reports removals until the returned function is called. Resolves once the subscription is
   * live, so a removal made after it resolves is reported. Re-subscribes by itself when the
   * stream breaks, reporting a `gap`.
   */
  watchDeletions(onEvent: (event: DeletionEvent) => void): Promise<() => void>;

  /** Releases connections and stops watchers. */
  close(): Promise<void>;
}
