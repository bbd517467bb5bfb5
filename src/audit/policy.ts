// The pull policy a container gets, exactly as the API server defaults it
// (kubernetes pkg/apis/core/v1/defaults.go SetDefaults_Container, with the tag from
// pkg/util/parsers ParseImageName). Kept apart and pure so its table test can cite the rules.
import { parseReference } from '../image/reference.ts';

export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';

export interface EffectivePolicy {
  /** The policy as given when explicit (the API server rejects any other value than the three). */
  policy: string;
  explicit: boolean;
  /** Why, for people: which rule decided. */
  reason: string;
}

/** The tag as written, or undefined: the first ':' after the last '/' (a ':' before is a port). */
function writtenTag(image: string): string | undefined {
  const namePart = image.split('@')[0] ?? image;
  const colon = namePart.indexOf(':', namePart.lastIndexOf('/') + 1);
  return colon === -1 ? undefined : namePart.slice(colon + 1);
}

export function effectivePullPolicy(image: string, imagePullPolicy: unknown): EffectivePolicy {
  // `if obj.ImagePullPolicy == ""`: any value given wins, defaulting only fills an empty one.
  if (typeof imagePullPolicy === 'string' && imagePullPolicy !== '') {
    return { policy: imagePullPolicy, explicit: true, reason: 'imagePullPolicy is set' };
  }
  let tag: string | undefined;
  let digest: string | undefined;
  try {
    ({ tag, digest } = parseReference(image));
  } catch {
    // "Ignore error and assume it has been validated elsewhere": the tag stays "" → IfNotPresent.
    return {
      policy: 'IfNotPresent',
      explicit: false,
      reason: 'the image does not parse, so no tag is "latest"',
    };
  }
  // ParseImageName: "If no tag was specified, use the default latest" — only without a digest too;
  // parseReference already does exactly that.
  if (tag === 'latest') {
    const why =
      writtenTag(image) === undefined
        ? 'the image has neither tag nor digest, so its tag defaults to "latest"'
        : 'the tag is "latest"';
    return { policy: 'Always', explicit: false, reason: why };
  }
  const why =
    tag === undefined
      ? `the image is pinned by digest ${digest ?? ''} and has no tag`
      : `the tag "${tag}" is not "latest"`;
  return { policy: 'IfNotPresent', explicit: false, reason: why };
}
