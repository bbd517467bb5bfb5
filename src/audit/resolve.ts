// `--resolve`: which PrePull tags to ask the registry about, and the answers. A workload that pins
// `name@D` is kept on the node by a PrePull listing `name:T` only when T resolves to D (the pull
// records `name@D` beside the tag); without the registry that cannot be told. Only HEADs: the
// registry client never downloads a manifest body to answer.
import type { ImageReference } from '../image/reference.ts';
import { parseReference } from '../image/reference.ts';
import { Semaphore } from '../semaphore.ts';
import type { ContainerSite } from './manifests.ts';

/** Tag → digest, as the registry says now (src/registry/client.ts implements it). */
export interface TagResolver {
  resolve(ref: ImageReference, options?: { signal?: AbortSignal }): Promise<{ digest: string }>;
}

/** A tag's answer: the digest it resolves to now, or why it could not be asked. */
export type Resolution = { digest: string } | { error: string };

/** What the rules read: canonical tag reference → its resolution. */
export type Resolutions = ReadonlyMap<string, Resolution>;

/**
 * The PrePull tags that could cover a workload's digest: same repository, listed by tag without
 * a digest, for a container whose image pins one. Each once, in a stable order.
 */
export function tagsToResolve(
  containers: readonly ContainerSite[],
  listed: readonly { readonly ref: ImageReference }[],
): ImageReference[] {
  const wantedNames = new Set<string>();
  for (const site of containers) {
    if (typeof site.image !== 'string') continue;
    try {
      const ref = parseReference(site.image);
      if (ref.digest !== undefined) wantedNames.add(ref.name);
    } catch {
      // invalid-image is reported by the rules
    }
  }
  const tags = new Map<string, ImageReference>();
  for (const { ref } of listed) {
    if (ref.digest === undefined && wantedNames.has(ref.name)) tags.set(ref.canonical, ref);
  }
  return [...tags.values()].sort((a, b) => (a.canonical < b.canonical ? -1 : 1));
}

/** Asks the registry about every tag, `concurrency` at a time; a failure is kept as the answer. */
export async function resolveTags(
  tags: readonly ImageReference[],
  resolver: TagResolver,
  concurrency = 8,
): Promise<Map<string, Resolution>> {
  const slots = new Semaphore(concurrency);
  const answers = new Map<string, Resolution>();
  await Promise.all(
    tags.map(async (tag) => {
      const release = await slots.acquire();
      try {
        answers.set(tag.canonical, { digest: (await resolver.resolve(tag)).digest });
      } catch (error) {
        answers.set(tag.canonical, {
          error: error instanceof Error ? error.message : String(error),
        });
      } finally {
        release();
      }
    }),
  );
  return answers;
}
