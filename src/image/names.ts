// Image names as adapters send them to a runtime and read them back: references normalised with
// the Docker grammar (parseReference), image IDs told apart from references, the names a
// runtime reports turned into the canonical spelling the rest of prepull compares, and the
// image among a runtime's list that a reference names.

import { PrepullError } from '../errors.ts';
import { parseReference, type ImageReference } from './reference.ts';

/** The names a runtime holds one local image under, canonical (runtime/types.ts RuntimeImage). */
export interface ImageNames {
  /** The image ID: the config digest on containerd and Docker. */
  readonly id: string;
  /** registry/repository:tag, one per tag. */
  readonly repoTags: readonly string[];
  /** registry/repository@digest: the digest each tag resolved to when pulled. */
  readonly repoDigests: readonly string[];
}

const IMAGE_ID = /^sha256:[a-f0-9]{64}$/;
const BARE_ID = /^[a-f0-9]{64}$/;

/** What a caller's string names: an image by ID, or a reference. */
export type ImageTarget =
  | { readonly kind: 'id'; readonly id: string }
  | {
      readonly kind: 'ref';
      readonly ref: ImageReference;
      /** The spelling sent to the runtime and looked up in its names: name@digest when there is
       *  a digest (a digest pins content, so it wins over a tag, as in containerd), else
       *  name:tag. */
      readonly name: string;
    };

export function isImageId(value: string): boolean {
  return IMAGE_ID.test(value);
}

/** Parses what a caller passed to imageStatus/remove/pin; throws ERR_IMAGE_REF_INVALID. */
export function imageTarget(input: string): ImageTarget {
  if (IMAGE_ID.test(input)) return { kind: 'id', id: input };
  if (BARE_ID.test(input)) return { kind: 'id', id: `sha256:${input}` };
  const ref = parseReference(input);
  return { kind: 'ref', ref, name: runtimeName(ref) };
}

/** Parses what a caller passed to pull: a reference, never an image ID. */
export function pullTarget(input: string): { ref: ImageReference; name: string } {
  const target = imageTarget(input);
  if (target.kind === 'id') {
    throw new PrepullError(
      'ERR_IMAGE_REF_INVALID',
      `${JSON.stringify(input)} is an image ID, which cannot be pulled: pull a tag or a ` +
        'name@sha256:<digest> reference',
    );
  }
  return target;
}

export function runtimeName(ref: ImageReference): string {
  return ref.digest === undefined
    ? `${ref.name}:${ref.tag ?? 'latest'}`
    : `${ref.name}@${ref.digest}`;
}

/**
 * A name a runtime reported (a tag or digest reference, possibly in familiar form like Docker's
 * "nginx:latest") in canonical form; undefined for placeholders such as "<none>:<none>".
 */
export function canonicalName(reported: string): string | undefined {
  if (reported.startsWith('<none>')) return undefined;
  try {
    return parseReference(reported).canonical;
  } catch {
    return undefined;
  }
}

export function canonicalNames(reported: readonly string[] | null | undefined): string[] {
  const names: string[] = [];
  for (const name of reported ?? []) {
    const canonical = canonicalName(name);
    if (canonical !== undefined && !names.includes(canonical)) names.push(canonical);
  }
  return names;
}

/** Whether `image` is the one `target` names, by the runtime's own names for it. */
export function imageHasName(image: ImageNames, target: ImageTarget): boolean {
  if (target.kind === 'id') return image.id === target.id;
  return target.ref.digest === undefined
    ? image.repoTags.includes(target.name)
    : image.repoDigests.includes(target.name);
}

/** Every name the runtime may hold a record under for this image: tags, digests and the ID. */
export function allNames(image: ImageNames): string[] {
  return [...image.repoTags, ...image.repoDigests, image.id];
}

/** For messages: the caller's string as typed, quoted. */
export function quoted(value: string): string {
  return JSON.stringify(value.length > 300 ? `${value.slice(0, 300)}…` : value);
}

/** The repository part of a canonical reference (before any tag or digest). */
export function repositoryOf(ref: string): string {
  const at = ref.indexOf('@');
  const base = at >= 0 ? ref.slice(0, at) : ref;
  const colon = base.lastIndexOf(':');
  return colon > base.lastIndexOf('/') ? base.slice(0, colon) : base;
}

/** The image among `images` that the canonical `ref` names: by tag, by digest, or by ID. */
export function findImage<T extends ImageNames>(images: readonly T[], ref: string): T | undefined {
  const at = ref.indexOf('@');
  if (at >= 0) {
    const byDigest = `${repositoryOf(ref)}${ref.slice(at)}`;
    return images.find((i) => i.repoDigests.includes(byDigest));
  }
  return images.find((i) => i.repoTags.includes(ref) || i.id === ref);
}
