// `prepull generate`: one PrePull listing every image the manifests use. Images are written
// canonical (docker.io/library/nginx:latest), deduplicated and sorted by that spelling, so two
// spellings of one image are one entry and the output does not change with the input's order.
import { stringify } from 'yaml';
import { API_VERSION, KIND, MAX_IMAGES } from '../api/prepull.ts';
import { PrepullError } from '../errors.ts';
import { parseReference } from '../image/reference.ts';
import type { ContainerSite } from './manifests.ts';

export interface GenerateOptions {
  name: string;
  namespace: string;
  nodeSelector: Record<string, string>;
}

export interface Generated {
  /** The PrePull as an object (apiVersion, kind, metadata, spec). */
  prePull: Record<string, unknown>;
  /** Images left out because they do not parse, with why. */
  skipped: string[];
}

export function generatePrePull(
  containers: readonly ContainerSite[],
  options: GenerateOptions,
): Generated {
  const images = new Set<string>();
  const skipped: string[] = [];
  for (const site of containers) {
    const image = typeof site.image === 'string' ? site.image : '';
    try {
      images.add(parseReference(image).canonical);
    } catch (error) {
      skipped.push(
        `${site.file}${site.line === undefined ? '' : `:${site.line}`}: ${site.object} ${site.container}: ${(error as Error).message}`,
      );
    }
  }
  if (images.size === 0) {
    throw new PrepullError('ERR_USAGE', 'the manifests hold no container image to list');
  }
  if (images.size > MAX_IMAGES) {
    throw new PrepullError(
      'ERR_USAGE',
      `the manifests use ${images.size} images; a PrePull lists at most ${MAX_IMAGES} (generate from fewer manifests at a time)`,
    );
  }
  const spec: Record<string, unknown> = {
    images: [...images].sort().map((image) => ({ image })),
  };
  if (Object.keys(options.nodeSelector).length > 0) spec.nodeSelector = options.nodeSelector;
  return {
    prePull: {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: options.name, namespace: options.namespace },
      spec,
    },
    skipped,
  };
}

export function prePullYaml(prePull: Record<string, unknown>): string {
  return stringify(prePull);
}
