// Digest matching: repository names normalised, only repo digests compared, a list of
// acceptable digests (index and platform) honoured.
import { describe, expect, it } from '@jest/globals';
import { imageMatchesDigest, localDigests } from './digest.ts';

const INDEX = `sha256:${'1'.repeat(64)}`;
const PLATFORM = `sha256:${'2'.repeat(64)}`;
const OTHER = `sha256:${'3'.repeat(64)}`;

describe('imageMatchesDigest', () => {
  const image = {
    repoDigests: [
      `docker.io/library/nginx@${INDEX}`,
      `registry.example:5000/mirror/nginx@${OTHER}`,
    ],
  };

  it('compares repositories after normalisation', () => {
    expect(imageMatchesDigest(image, 'nginx:1.27', [INDEX])).toBe(true);
    expect(imageMatchesDigest(image, 'docker.io/library/nginx', [INDEX])).toBe(true);
    expect(imageMatchesDigest(image, `nginx@${PLATFORM}`, [INDEX])).toBe(true);
  });

  it('accepts any digest of the list (index digest plus platform digest)', () => {
    expect(imageMatchesDigest(image, 'nginx', [PLATFORM, INDEX])).toBe(true);
    expect(imageMatchesDigest(image, 'nginx', [PLATFORM])).toBe(false);
    expect(imageMatchesDigest(image, 'nginx', [])).toBe(false);
  });

  it('does not take another repository digest for this one', () => {
    expect(imageMatchesDigest(image, 'nginx', [OTHER])).toBe(false);
    expect(imageMatchesDigest(image, 'registry.example:5000/mirror/nginx', [OTHER])).toBe(true);
  });

  it('lists the digests recorded for a repository', () => {
    expect(localDigests(image, 'nginx:latest')).toEqual([INDEX]);
    expect(localDigests({ repoDigests: ['<none>@<none>'] }, 'nginx')).toEqual([]);
  });
});
