// "Does the image on the node match registry digest D?" — one answer for every runtime. Both
// containerd and Docker record, per repository, the digest a tag resolved to when it was pulled
// (`repoDigests`, "name@sha256:…"): for a multi-arch image that is the index digest, for a pull by
// platform digest it is that manifest's digest. The image ID (the config digest) is never a
// registry digest and is not compared.

import { parseReference, type ImageReference } from './reference.ts';
import { type ImageNames, repositoryOf } from './names.ts';

/**
 * The digests `image` records for the repository `ref` names (its tag or digest is ignored).
 * Repository names are compared after normalisation, so "nginx" and
 * "docker.io/library/nginx" are the same repository.
 */
export function localDigests(
  image: Pick<ImageNames, 'repoDigests'>,
  ref: string | ImageReference,
): string[] {
  const name = (typeof ref === 'string' ? parseReference(ref) : ref).name;
  const digests: string[] = [];
  for (const recorded of image.repoDigests) {
    const parsed = tryParse(recorded);
    if (parsed?.digest !== undefined && parsed.name === name) digests.push(parsed.digest);
  }
  return digests;
}

/**
 * True when `image` records, for `ref`'s repository, one of `acceptable` — typically the index
 * digest a registry HEAD returned, plus the platform manifest's digest when the caller knows it.
 */
export function imageMatchesDigest(
  image: Pick<ImageNames, 'repoDigests'>,
  ref: string | ImageReference,
  acceptable: readonly string[],
): boolean {
  const wanted = new Set(acceptable.map((d) => d.toLowerCase()));
  return localDigests(image, ref).some((digest) => wanted.has(digest));
}

function tryParse(value: string): ImageReference | undefined {
  try {
    return parseReference(value);
  } catch {
    return undefined;
  }
}

/**
 * The digest `image` records for the repository of the canonical reference `ref`, if any: the
 * engine's hot path, so names are compared as strings (a runtime reports them canonical).
 */
export function recordedDigest(
  image: Pick<ImageNames, 'repoDigests'> | undefined,
  ref: string,
): string | undefined {
  const repository = repositoryOf(ref);
  return image?.repoDigests
    .find((d) => d.startsWith(`${repository}@`))
    ?.slice(repository.length + 1);
}
