// Manifests as far as resolution needs them: the four media types, digests of bodies, and the
// platform list of an index. Nothing here downloads; the client hands bodies in.

import { createHash } from 'node:crypto';
import { PrepullError } from '../errors.ts';
import { isObject } from './answers.ts';
import { isValidDigest } from '../image/reference.ts';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** Index types first: without them a registry may answer a single platform's manifest. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  OCI_INDEX,
  DOCKER_MANIFEST_LIST,
  OCI_MANIFEST,
  DOCKER_MANIFEST,
];
export const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

export interface PlatformManifest {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
  readonly digest: string;
  readonly size: number;
}

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === OCI_INDEX || mediaType === DOCKER_MANIFEST_LIST;
}

export function isManifestMediaType(mediaType: string): boolean {
  return MANIFEST_MEDIA_TYPES.includes(mediaType);
}

/** A Content-Type without parameters, lowercased; undefined when absent. */
export function bareMediaType(contentType: string | undefined): string | undefined {
  const bare = contentType?.split(';')[0]?.trim().toLowerCase();
  return bare === undefined || bare === '' ? undefined : bare;
}

/** `<algorithm>:<hex>` of `body`, for the algorithms references allow. */
export function digestOf(body: Buffer, algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(body).digest('hex')}`;
}

export function digestAlgorithm(digest: string | undefined): string {
  const algorithm = digest?.split(':')[0];
  return algorithm === 'sha384' || algorithm === 'sha512' ? algorithm : 'sha256';
}

/** ERR_REGISTRY_PROTOCOL unless `body` hashes to `digest`. */
export function verifyDigest(body: Buffer, digest: string, what: string): void {
  const actual = digestOf(body, digestAlgorithm(digest));
  if (actual !== digest) {
    throw new PrepullError(
      'ERR_REGISTRY_PROTOCOL',
      `${what}: the manifest the registry sent hashes to ${actual}, not ${digest}. The registry ` +
        '(or something between it and prepull) altered it; report it to its operators.',
    );
  }
}

/** The media type a manifest body declares, or the one its shape implies (OCI allows omitting it). */
export function mediaTypeOfBody(body: Buffer): string | undefined {
  const manifest = parseJson(body);
  if (manifest === undefined) return undefined;
  if (typeof manifest.mediaType === 'string') return manifest.mediaType;
  if (Array.isArray(manifest.manifests)) return OCI_INDEX;
  if (isObject(manifest.config) && Array.isArray(manifest.layers)) return OCI_MANIFEST;
  return undefined;
}

/**
 * The platform manifests an index lists. Entries without a platform (attestations, for one)
 * are left out: no node runs them.
 */
export function indexPlatforms(body: Buffer, what: string): PlatformManifest[] {
  const index = parseJson(body);
  if (index === undefined || !Array.isArray(index.manifests)) {
    throw new PrepullError(
      'ERR_REGISTRY_PROTOCOL',
      `${what}: the index is not JSON with a "manifests" list.`,
    );
  }
  const platforms: PlatformManifest[] = [];
  for (const entry of index.manifests) {
    const platform = isObject(entry) ? entry.platform : undefined;
    if (!isObject(entry) || !isObject(platform)) continue;
    const { digest, size } = entry;
    const { os, architecture, variant } = platform;
    if (typeof digest !== 'string' || !isValidDigest(digest) || typeof size !== 'number') {
      throw new PrepullError(
        'ERR_REGISTRY_PROTOCOL',
        `${what}: an index entry has no valid digest and size.`,
      );
    }
    if (typeof os !== 'string' || typeof architecture !== 'string') continue;
    platforms.push({
      os,
      architecture,
      ...(typeof variant === 'string' && variant !== '' ? { variant } : {}),
      digest,
      size,
    });
  }
  return platforms;
}

function parseJson(body: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}
