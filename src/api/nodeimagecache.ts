// The NodeImageCache resource (prepull.dev/v1alpha1, cluster-scoped, one per node, named after
// it and owned by it): what one node's agent reports about the images that node must hold. The
// status is built here as a pure function of the engine's reports, so "did the content change"
// is a comparison of two plain objects.
import type { ImageReport, ImageState, ReleasedImage } from '../image/report.ts';
import type { API_VERSION } from './prepull.ts';

export const NODE_IMAGE_CACHE_KIND = 'NodeImageCache';
export const NODE_IMAGE_CACHES = 'nodeimagecaches';

/**
 * One entry of `status.images`: the engine's report as the API stores it — without the spelling
 * and the pull time, the reason left out when empty, and the message cut to MESSAGE_LIMIT.
 */
export type CachedImage = Omit<
  ImageReport,
  'written' | 'pullDurationMs' | 'requiredBy' | 'reason'
> & {
  requiredBy: string[];
  reason?: string;
};

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
}

/**
 * The disk guard's picture (ADR 0019): the floor kept free on the image filesystem, the free
 * space last measured, the pin budget and what prepull pins, and how many images wait for room.
 */
export interface DiskStatus {
  /** The floor as configured: "20%", or bytes ("10.00 GiB"). */
  floor: string;
  /** The floor in bytes; absent while free space is not measured. */
  floorBytes?: number;
  availableBytes?: number;
  pinBudgetBytes?: number;
  pinnedBytes: number;
  /** Images not pulled for want of room (ERR_DISK_BUDGET). */
  heldImages: number;
  /** Why free space is not measured (the floor is then not applied); absent when it is. */
  message?: string;
}

export interface NodeImageCacheStatus {
  runtime: { name: string; version: string; endpoint: string };
  imageFilesystem?: { usedBytes?: number; capacityBytes?: number };
  disk?: DiskStatus;
  summary: Record<'required' | 'present' | 'pulling' | 'missing' | 'stale' | 'failed', number>;
  images: CachedImage[];
  /** Images no PrePull wants any more and what was done with them: the last MAX_RELEASED, newest first. */
  released?: ReleasedImage[];
  conditions: Condition[];
  lastUpdateTime?: string;
}

export interface NodeImageCache {
  apiVersion: typeof API_VERSION;
  kind: typeof NODE_IMAGE_CACHE_KIND;
  metadata: {
    name: string;
    resourceVersion?: string;
    uid?: string;
    ownerReferences?: {
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
      blockOwnerDeletion?: boolean;
    }[];
    labels?: Record<string, string>;
  };
  spec: { nodeName: string };
  status?: NodeImageCacheStatus;
}

/** What the status reads of the engine's reports: all but the spelling and the pull time. */
type ImageFacts = Omit<ImageReport, 'written' | 'pullDurationMs'>;

const MESSAGE_LIMIT = 1024;
/** The CRD's maxItems for status.released. */
export const MAX_RELEASED = 32;
/** The CRD's maxItems for status.images: more would make every status write fail. */
export const MAX_STATUS_IMAGES = 4096;

/** The pin as the runtime reports it, and how it is known. */
function pinFields(facts: ImageFacts): Pick<CachedImage, 'pinned' | 'pinSource'> {
  if (facts.pinned === undefined) return {};
  return {
    pinned: facts.pinned,
    ...(facts.pinSource !== undefined ? { pinSource: facts.pinSource } : {}),
  };
}

function cachedImage(facts: ImageFacts): CachedImage {
  return {
    image: facts.image,
    requiredBy: [...facts.requiredBy],
    state: facts.state,
    ...(facts.digest !== undefined ? { digest: facts.digest } : {}),
    ...(facts.registryDigest !== undefined ? { registryDigest: facts.registryDigest } : {}),
    ...(facts.imageId !== undefined ? { imageId: facts.imageId } : {}),
    ...(facts.size !== undefined ? { size: facts.size } : {}),
    ...pinFields(facts),
    ...(facts.lastVerified !== undefined ? { lastVerified: facts.lastVerified } : {}),
    attempts: facts.attempts,
    ...(facts.reason !== '' ? { reason: facts.reason } : {}),
    ...(facts.message !== undefined ? { message: facts.message.slice(0, MESSAGE_LIMIT) } : {}),
    ...(facts.code !== undefined ? { code: facts.code } : {}),
    ...(facts.pulledByPrepull === true ? { pulledByPrepull: true as const } : {}),
    ...(facts.pinnedByPrepull === true ? { pinnedByPrepull: true as const } : {}),
    ...(facts.cleanup === 'Remove' ? { cleanup: 'Remove' as const } : {}),
    ...(facts.progress !== undefined && facts.state === 'Pulling'
      ? { progress: { ...facts.progress } }
      : {}),
  };
}

function listed(images: readonly ImageFacts[]): readonly ImageFacts[] {
  if (images.length <= MAX_STATUS_IMAGES) return images;
  const notPresent = images.filter((i) => i.state !== 'Present');
  const present = images.filter((i) => i.state === 'Present');
  return [...notPresent, ...present].slice(0, MAX_STATUS_IMAGES);
}

/**
 * The status for `images` on a runtime. `previous` keeps each condition's lastTransitionTime
 * while its status holds, so an unchanged node gives an identical status (and no write).
 */
export function nodeImageCacheStatus(
  images: readonly ImageFacts[],
  runtime: NodeImageCacheStatus['runtime'],
  imageFilesystem: NonNullable<NodeImageCacheStatus['imageFilesystem']>,
  context: {
    now: string;
    previous?: NodeImageCacheStatus | undefined;
    /** What was released, newest first (the engine keeps the last MAX_RELEASED). */
    released?: readonly ReleasedImage[] | undefined;
    /** The disk guard's picture, where it runs. */
    disk?: DiskStatus | undefined;
  },
): NodeImageCacheStatus {
  const count = (state: ImageState): number => images.filter((i) => i.state === state).length;
  const summary = {
    required: images.length,
    present: count('Present'),
    pulling: count('Pulling'),
    missing: count('Missing'),
    stale: count('Stale'),
    failed: count('Failed'),
  };
  const ready = summary.present === summary.required;
  const readiness: Omit<Condition, 'lastTransitionTime'> = ready
    ? {
        type: 'Ready',
        status: 'True',
        reason: 'AllPresent',
        message: `${summary.present} of ${summary.required} images present`,
      }
    : {
        type: 'Ready',
        status: 'False',
        reason: summary.failed > 0 ? 'ImagesFailed' : 'ImagesPending',
        message: `${summary.present} of ${summary.required} images present, ${summary.pulling} pulling, ${summary.missing} missing, ${summary.stale} stale, ${summary.failed} failed`,
      };
  if (images.length > MAX_STATUS_IMAGES) {
    // The summary counts every image; the list shows the first ones, those not Present first.
    readiness.message += `; the image list shows ${MAX_STATUS_IMAGES} of ${images.length}`;
  }
  const before = context.previous?.conditions.find((c) => c.type === 'Ready');
  const condition: Condition = {
    ...readiness,
    lastTransitionTime:
      before?.status === readiness.status ? before.lastTransitionTime : context.now,
  };
  const fs = {
    ...(imageFilesystem.usedBytes !== undefined ? { usedBytes: imageFilesystem.usedBytes } : {}),
    ...(imageFilesystem.capacityBytes !== undefined
      ? { capacityBytes: imageFilesystem.capacityBytes }
      : {}),
  };
  return {
    runtime: { ...runtime },
    ...(Object.keys(fs).length > 0 ? { imageFilesystem: fs } : {}),
    ...(context.disk !== undefined ? { disk: diskStatus(context.disk) } : {}),
    summary,
    images: listed(images).map(cachedImage),
    ...(context.released !== undefined && context.released.length > 0
      ? {
          released: context.released.slice(0, MAX_RELEASED).map((r) => ({
            ...r,
            ...(r.reason !== undefined ? { reason: r.reason.slice(0, MESSAGE_LIMIT) } : {}),
          })),
        }
      : {}),
    conditions: [condition],
  };
}

/** The disk picture as the API stores it: only the known figures, the message cut. */
function diskStatus(disk: DiskStatus): DiskStatus {
  return {
    floor: disk.floor,
    ...(disk.floorBytes !== undefined ? { floorBytes: disk.floorBytes } : {}),
    ...(disk.availableBytes !== undefined ? { availableBytes: disk.availableBytes } : {}),
    ...(disk.pinBudgetBytes !== undefined ? { pinBudgetBytes: disk.pinBudgetBytes } : {}),
    pinnedBytes: disk.pinnedBytes,
    heldImages: disk.heldImages,
    ...(disk.message !== undefined ? { message: disk.message.slice(0, MESSAGE_LIMIT) } : {}),
  };
}
