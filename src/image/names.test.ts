// How adapters spell names to runtimes and read them back.
import { describe, expect, it } from '@jest/globals';
import { canonicalNames, imageTarget, pullTarget } from './names.ts';

const ID = `sha256:${'a'.repeat(64)}`;

describe('imageTarget and pullTarget', () => {
  it('tells image IDs from references', () => {
    expect(imageTarget(ID)).toEqual({ kind: 'id', id: ID });
    expect(imageTarget('a'.repeat(64))).toEqual({ kind: 'id', id: ID });
    expect(imageTarget('nginx')).toMatchObject({
      kind: 'ref',
      name: 'docker.io/library/nginx:latest',
    });
  });

  it('lets a digest win over a tag, as containerd does', () => {
    expect(imageTarget(`r.example/app:1@${ID}`)).toMatchObject({ name: `r.example/app@${ID}` });
  });

  it('refuses to pull an image ID or a malformed reference', () => {
    expect(() => pullTarget(ID)).toThrow(/image ID/);
    expect(() => pullTarget('team/UPPER')).toThrow(/lowercase/);
  });
});

describe('canonicalNames', () => {
  it("normalises Docker's familiar names and drops placeholders and duplicates", () => {
    expect(
      canonicalNames(['nginx:latest', 'docker.io/library/nginx:latest', '<none>:<none>']),
    ).toEqual(['docker.io/library/nginx:latest']);
    expect(canonicalNames(null)).toEqual([]);
  });
});
