import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPrePullFiles } from './files.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'prepull-files-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const good = (name: string, image = 'r:5000/a:1'): string => `apiVersion: prepull.dev/v1alpha1
kind: PrePull
metadata: {name: ${name}, namespace: shop}
spec:
  images: [{image: ${image}}]
`;

describe('loadPrePullFiles', () => {
  it('reads multi-document files, skips other kinds, and reports a bad object without losing the others', () => {
    const file = join(dir, 'mixed.yaml');
    writeFileSync(
      file,
      [
        good('one'),
        'apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n',
        good('two').replace(
          'images: [{image: r:5000/a:1}]',
          'images: [{image: r:5000/a:1}]\n  pullPolicy: Sometimes',
        ),
        good('three'),
        '',
      ].join('---\n'),
    );
    const loaded = loadPrePullFiles([file]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['one', 'three']);
    expect(loaded.skipped).toEqual([`${file}#2 Namespace`]);
    expect(loaded.errors).toHaveLength(1);
    expect(loaded.errors[0]?.code).toBe('ERR_PREPULL_INVALID');
    expect(loaded.errors[0]?.message).toBe(
      `${file}: document 3 (PrePull shop/two): spec.pullPolicy: must be one of IfNotPresent, Always, got "Sometimes"`,
    );
  });

  it('reads *.yaml, *.yml and *.json in a directory, in name order, and ignores other files', () => {
    const sub = join(dir, 'set');
    mkdirSync(sub);
    writeFileSync(join(sub, 'b.yml'), good('b'));
    writeFileSync(join(sub, 'a.yaml'), good('a'));
    writeFileSync(
      join(sub, 'c.json'),
      JSON.stringify({
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        metadata: { name: 'c' },
        spec: { images: [{ image: 'x:1' }] },
      }),
    );
    writeFileSync(join(sub, 'notes.txt'), 'not a manifest');
    const loaded = loadPrePullFiles([sub]);
    expect(loaded.prePulls.map((p) => `${p.metadata.namespace}/${p.metadata.name}`)).toEqual([
      'shop/a',
      'shop/b',
      'default/c',
    ]);
    expect(loaded.errors).toEqual([]);
    expect(loaded.files.map((f) => f.slice(sub.length + 1))).toEqual(['a.yaml', 'b.yml', 'c.json']);
  });

  it('names the file and line of broken YAML, and a missing path', () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, `${good('ok')}---\nspec: [unclosed\n`);
    const loaded = loadPrePullFiles([file, join(dir, 'missing.yaml')]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['ok']);
    expect(loaded.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(new RegExp(`^${join(dir, 'missing.yaml')}: cannot read`)),
      expect.stringMatching(new RegExp(`^${file}: document 2 \\(line \\d+\\): not valid YAML`)),
    ]);
  });

  it('rejects a second PrePull with the same namespace and name', () => {
    const file = join(dir, 'dup.yaml');
    writeFileSync(file, `${good('same')}---\n${good('same', 'r:5000/b:2')}`);
    const loaded = loadPrePullFiles([file]);
    expect(loaded.prePulls).toHaveLength(1);
    expect(loaded.errors[0]?.message).toMatch(
      /document 2 \(PrePull shop\/same\): metadata.name: another .* already read/,
    );
  });

  it('survives YAML alias bombs: a ConfigMap full of aliases is skipped, a PrePull built from too many fails alone', () => {
    const file = join(dir, 'aliases.yaml');
    // 150 references to one anchor: more alias expansions than the yaml library's limit (100).
    const refs = Array.from({ length: 150 }, (_, i) => `  k${i}: *a`).join('\n');
    const configMap = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  base: &a x\n${refs}\n`;
    const bomb = `apiVersion: prepull.dev/v1alpha1\nkind: PrePull\nmetadata: {name: bomb, namespace: shop}\nspec:\n  images: [{image: &i r:5000/a:1}]\n  nodeSelector:\n${Array.from({ length: 150 }, (_, i) => `    k${i}: *i`).join('\n')}\n`;
    writeFileSync(file, [good('before'), configMap, bomb, good('after')].join('---\n'));
    const loaded = loadPrePullFiles([file]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['before', 'after']);
    expect(loaded.skipped).toEqual([`${file}#2 ConfigMap`]);
    expect(loaded.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(new RegExp(`^${file}: document 3: cannot be read: .*[Aa]lias`)),
    ]);
    expect(loaded.errors[0]?.code).toBe('ERR_PREPULL_INVALID');
  });
});
