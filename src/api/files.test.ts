import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MAX_ALIAS_NODES,
  MAX_DOCUMENT_BYTES,
  MAX_FILE_BYTES,
  MAX_PREPULL_DOCUMENTS,
  loadPrePullFiles,
  unreadablePath,
} from './files.ts';

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
    // Only a document that may be a PrePull is parsed: this one says its kind.
    writeFileSync(file, `${good('ok')}---\nkind: PrePull\nspec: [unclosed\n`);
    const loaded = loadPrePullFiles([file, join(dir, 'missing.yaml')]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['ok']);
    expect(loaded.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(new RegExp(`^${join(dir, 'missing.yaml')}: cannot read`)),
      expect.stringMatching(
        new RegExp(`^${file}: document 2 \\(line 9\\): not valid YAML: .* at line 9, column`),
      ),
    ]);
  });

  it("shows the YAML parser's message whole: the excerpt of the line, and a caret under the spot", () => {
    const file = join(dir, 'excerpt.yaml');
    writeFileSync(
      file,
      good('ok').replace('images: [{image: r:5000/a:1}]', 'images:\n    - image: a: b'),
    );
    const [error] = loadPrePullFiles([file]).errors;
    expect(error?.message.split('\n')).toEqual([
      `${file}: document 1 (line 6): not valid YAML: Nested mappings are not allowed in compact mappings at line 6, column 14:`,
      '',
      '    - image: a: b',
      '             ^',
    ]);
  });

  it('says why a path cannot be read: missing, or a loop of symbolic links', () => {
    const loop = join(dir, 'loop.yaml');
    symlinkSync(loop, loop);
    expect(unreadablePath(join(dir, 'absent.yaml'))).toBe('no such file or directory');
    expect(unreadablePath(loop)).toMatch(/symbolic links/);
    expect(unreadablePath(dir)).toBeUndefined();
    expect(loadPrePullFiles([loop]).errors.map((e) => e.message)).toEqual([
      expect.stringMatching(new RegExp(`^${loop}: cannot read: .*symbolic links`)),
    ]);
  });

  it('fails a file named on its own that holds no PrePull, naming the kinds it holds', () => {
    const pod = join(dir, 'pod.yaml');
    writeFileSync(
      pod,
      ['Pod', 'Service', 'Service']
        .map((kind) => `apiVersion: v1\nkind: ${kind}\nmetadata: {name: web}\n`)
        .join('---\n'),
    );
    const empty = join(dir, 'empty.yaml');
    writeFileSync(empty, '# nothing yet\n');
    const loaded = loadPrePullFiles([pod, empty]);
    expect(loaded.prePulls).toEqual([]);
    expect(loaded.errors.map((e) => [e.code, e.message])).toEqual([
      [
        'ERR_PREPULL_INVALID',
        `${pod}: no PrePull (apiVersion prepull.dev/v1alpha1) in the file: it holds Pod, Service ×2`,
      ],
      [
        'ERR_PREPULL_INVALID',
        `${empty}: no PrePull (apiVersion prepull.dev/v1alpha1) in the file: it holds no document`,
      ],
    ]);
  });

  it('adds nothing to a file whose PrePull failed on its own, nor to files found in a directory', () => {
    const broken = join(dir, 'only-broken.yaml');
    writeFileSync(broken, good('x').replace('images:', 'pin: maybe\n  images:'));
    expect(loadPrePullFiles([broken]).errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/spec.pin: must be true or false/),
    ]);
    // A directory of manifests may hold other kinds beside its PrePulls, and may be empty while
    // `sync` watches it: emptying it is how every image is let go.
    const manifests = join(dir, 'manifests');
    mkdirSync(manifests);
    writeFileSync(
      join(manifests, 'pod.yaml'),
      'apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n',
    );
    writeFileSync(join(manifests, 'shop.yaml'), good('shop'));
    const loaded = loadPrePullFiles([manifests]);
    expect(loaded.errors).toEqual([]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['shop']);
    rmSync(join(manifests, 'shop.yaml'));
    expect(loadPrePullFiles([manifests]).errors).toEqual([]);
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

describe('input limits (issue 21)', () => {
  const sub = (name: string): string => {
    const path = join(dir, name);
    mkdirSync(path);
    return path;
  };

  it('refuses a file over the size limit without reading it, and reads the rest of the directory', () => {
    const manifests = sub('huge');
    writeFileSync(join(manifests, 'a.yaml'), good('a'));
    const huge = join(manifests, 'b.yaml');
    writeFileSync(huge, '');
    truncateSync(huge, 50 * 1024 * 1024); // sparse: 50 MB that cost nothing to make
    const loaded = loadPrePullFiles([manifests]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['a']);
    expect(loaded.errors.map((e) => [e.code, e.message])).toEqual([
      [
        'ERR_PREPULL_INVALID',
        `${huge}: cannot read the file: it is 52428800 bytes; a manifest file may have at most ${MAX_FILE_BYTES}`,
      ],
    ]);
  });

  it('refuses a FIFO and a device without opening them (a FIFO would block the process)', () => {
    const manifests = sub('special');
    const fifo = join(manifests, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    expect(unreadablePath(fifo)).toBe('it is a FIFO; prepull reads only regular files');
    symlinkSync('/dev/zero', join(manifests, 'zero.yaml'));
    writeFileSync(join(manifests, 'ok.yaml'), good('ok'));
    const loaded = loadPrePullFiles([manifests]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['ok']);
    expect(loaded.errors.map((e) => e.message)).toEqual([
      `${fifo}: cannot read the file: it is a FIFO; prepull reads only regular files`,
      `${join(manifests, 'zero.yaml')}: cannot read the file: it is a device; prepull reads only regular files`,
    ]);
  });

  it('gives the reason a file in a directory cannot be read: a loop of symbolic links', () => {
    const manifests = sub('loops');
    const loop = join(manifests, 'loop.yaml');
    symlinkSync(loop, loop);
    expect(loadPrePullFiles([manifests]).errors.map((e) => e.message)).toEqual([
      `${loop}: cannot read the file: too many symbolic links encountered`,
    ]);
  });

  it('refuses a PrePull document over its size limit, and keeps the other documents', () => {
    const file = join(dir, 'big-doc.yaml');
    const filler = `  # ${'x'.repeat(MAX_DOCUMENT_BYTES)}\n`;
    writeFileSync(file, [good('small'), good('big') + filler].join('---\n'));
    const loaded = loadPrePullFiles([file]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['small']);
    expect(loaded.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^${file}: document 2: the document is \\d+ bytes; a PrePull document may have at most ${MAX_DOCUMENT_BYTES}`,
        ),
      ),
    ]);
  });

  it('refuses a PrePull of too many aliases before parsing it, and skips a ConfigMap of them unparsed', () => {
    const file = join(dir, 'many-aliases.yaml');
    const refs = (n: number): string => Array<string>(n).fill('*i').join(', ');
    writeFileSync(
      file,
      [
        `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  a: &i x\n  b: [${refs(5000)}]\n`,
        good('bomb').replace(
          'images: [',
          `images: [&i {image: r:5000/a:1}, ${refs(MAX_ALIAS_NODES + 1)}, `,
        ),
        good('fine'),
      ].join('---\n'),
    );
    const loaded = loadPrePullFiles([file]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['fine']);
    expect(loaded.skipped).toEqual([`${file}#1 ConfigMap`]);
    expect(loaded.errors.map((e) => e.message)).toEqual([
      `${file}: document 2: it holds more than ${MAX_ALIAS_NODES} YAML aliases (*name); a PrePull needs none`,
    ]);
  });

  it('finds a repeated key in a PrePull in one pass, and leaves other kinds alone', () => {
    const file = join(dir, 'dup-key.yaml');
    // A large mapping of another kind: yaml's own check would compare every key with every other.
    const keys = Array.from({ length: 30_000 }, (_, i) => `  k${i}: v`).join('\n');
    writeFileSync(
      file,
      [
        `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n${keys}\n  k0: again\n`,
        good('twice').replace('spec:\n', 'spec:\n  pin: false\n  pin: true\n'),
        good('once'),
      ].join('---\n'),
    );
    const loaded = loadPrePullFiles([file]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['once']);
    expect(loaded.errors.map((e) => e.message)).toEqual([
      `${file}: document 2: not valid YAML: the key "pin" appears twice in one mapping`,
    ]);
  });

  it('says what a JSON array is, and warns of an empty directory and of an empty file in one', () => {
    const list = join(dir, 'list.json');
    writeFileSync(list, '["a", "b"]');
    expect(loadPrePullFiles([list]).errors.map((e) => e.message)).toEqual([
      `${list}: no PrePull (apiVersion prepull.dev/v1alpha1) in the file: it holds a list`,
    ]);
    const empty = sub('empty-dir');
    expect(loadPrePullFiles([empty])).toMatchObject({
      errors: [],
      warnings: [`${empty}: no *.yaml, *.yml or *.json file in it`],
    });
    const withEmpty = sub('with-empty');
    writeFileSync(join(withEmpty, 'a.yaml'), '');
    expect(loadPrePullFiles([withEmpty])).toMatchObject({
      errors: [],
      warnings: [`${join(withEmpty, 'a.yaml')}: no document in it`],
    });
  });

  it('fails a list or a bare value that names PrePull, in a directory too, rather than skip it', () => {
    const listDir = sub('lists');
    const list = join(listDir, 'list.json');
    writeFileSync(list, JSON.stringify([{ apiVersion: 'prepull.dev/v1alpha1', kind: 'PrePull' }]));
    const scalar = join(listDir, 'scalar.yaml');
    writeFileSync(scalar, '"prepull.dev/v1alpha1 PrePull"\n');
    writeFileSync(join(listDir, 'ok.yaml'), good('ok'));
    const loaded = loadPrePullFiles([listDir]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['ok']);
    expect(loaded.errors.map((e) => e.message)).toEqual([
      `${list}: document 1: it is a list, not an object; a PrePull is one mapping per document (separate several with ---)`,
      `${scalar}: document 1: it is a plain value, not an object; a PrePull is one mapping per document (separate several with ---)`,
    ]);
  });

  it('fails a PrePull with a tag the YAML library does not know (!!js/function), naming the line', () => {
    const tagged = join(sub('tags'), 'tagged.yaml');
    writeFileSync(
      tagged,
      good('tagged').replace(
        'images: [{image: r:5000/a:1}]',
        'images: [{image: !!js/function "function () {}"}]',
      ),
    );
    const loaded = loadPrePullFiles([tagged]);
    expect(loaded.prePulls).toEqual([]);
    expect(loaded.errors.map((e) => e.message.split('\n')[0])).toEqual([
      `${tagged}: document 1 (line 5): not valid YAML: Unresolved tag: tag:yaml.org,2002:js/function at line 5, column 20:`,
    ]);
  });

  it('refuses UTF-16 and UTF-32 text by its byte-order mark instead of skipping it unread', () => {
    const wide = sub('wide');
    const utf16 = join(wide, 'utf16.yaml');
    writeFileSync(
      utf16,
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(good('w16'), 'utf16le')]),
    );
    const utf32 = join(wide, 'utf32.yaml');
    writeFileSync(utf32, Buffer.from([0, 0, 0xfe, 0xff, 0, 0, 0, 0x6b]));
    const utf8 = join(wide, 'utf8.yaml');
    writeFileSync(utf8, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(good('w8'))]));
    const loaded = loadPrePullFiles([wide]);
    expect(loaded.prePulls.map((p) => p.metadata.name)).toEqual(['w8']);
    expect(loaded.errors.map((e) => e.message)).toEqual([
      `${utf16}: cannot read the file: it is UTF-16 text (it starts with a byte-order mark); prepull reads UTF-8: convert it, e.g. with iconv -t UTF-8`,
      `${utf32}: cannot read the file: it is UTF-32 text (it starts with a byte-order mark); prepull reads UTF-8: convert it, e.g. with iconv -t UTF-8`,
    ]);
  });

  it('reads at most MAX_PREPULL_DOCUMENTS PrePull documents of one file, and says where it stopped', () => {
    const many = join(sub('many'), 'many.yaml');
    const docs = Array.from(
      { length: MAX_PREPULL_DOCUMENTS + 500 },
      (_, i) => `---\n${good(`p${i}`)}---\nkind: ConfigMap\n`,
    );
    writeFileSync(many, docs.join(''));
    const loaded = loadPrePullFiles([many]);
    expect(loaded.prePulls).toHaveLength(MAX_PREPULL_DOCUMENTS);
    expect(loaded.errors.map((e) => e.message)).toEqual([
      `${many}: document ${2 * MAX_PREPULL_DOCUMENTS + 1}: more than ${MAX_PREPULL_DOCUMENTS} documents in the file may be PrePulls; it is read no further (split it into several files)`,
    ]);
  });
});
