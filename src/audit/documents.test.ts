// Splitting a stream into documents the way a YAML parser does, lines of nodes, and a broken
// document failing alone.
import { describe, expect, it } from '@jest/globals';
import { type DocumentError, type ParsedDocument, readDocuments } from './documents.ts';

const all = (text: string): (ParsedDocument | DocumentError)[] => [...readDocuments(text)];

describe('readDocuments', () => {
  it('counts documents as a YAML parser does: comments before the first --- are not one', () => {
    const docs = all('# Source: a\n---\na: 1\n---\n# only a comment\n---\nb: [x, y]\n');
    expect(docs.map((d) => ('value' in d ? d.value : d.message))).toEqual([
      { a: 1 },
      null,
      { b: ['x', 'y'] },
    ]);
    expect(docs.map((d) => d.index)).toEqual([0, 1, 2]);
  });

  it('takes content before the first --- as document 0, and "--- value" on the marker line', () => {
    const docs = all('a: 1\n--- {b: 2}\n');
    expect(docs.map((d) => ('value' in d ? d.value : undefined))).toEqual([{ a: 1 }, { b: 2 }]);
  });

  it('gives the 1-based line of a node, or of its nearest ancestor', () => {
    const text = [
      '# Source: chart/x.yaml', // 1
      '---', // 2
      'kind: Pod', // 3
      'spec:', // 4
      '  containers:', // 5
      '  - name: a', // 6
      '    image: x', // 7
      '  - {name: b, image: y}', // 8
    ].join('\n');
    const [doc] = all(text) as ParsedDocument[];
    expect(doc?.line([])).toBe(3);
    expect(doc?.line(['spec', 'containers', 0])).toBe(6);
    expect(doc?.line(['spec', 'containers', 1])).toBe(8);
    expect(doc?.line(['spec', 'containers', 0, 'image'])).toBe(7);
    // The nearest ancestor: the sequence, which starts at its first "-".
    expect(doc?.line(['spec', 'containers', 9])).toBe(6);
  });

  it('reads JSON, and lines inside it', () => {
    const [doc] = all(
      '{\n  "kind": "Pod",\n  "spec": {"containers": [\n    {"name": "a"}\n  ]}\n}\n',
    );
    expect(doc && 'value' in doc ? doc.value : undefined).toEqual({
      kind: 'Pod',
      spec: { containers: [{ name: 'a' }] },
    });
    expect((doc as ParsedDocument).line(['spec', 'containers', 0])).toBe(4);
  });

  it('fails a broken document alone, with its line, and reads the others', () => {
    const docs = all('a: 1\n---\nb: [unclosed\nc: 2\n---\nd: 4\n');
    expect(docs[0]).toMatchObject({ index: 0, value: { a: 1 } });
    expect(docs[1]).toMatchObject({ index: 1 });
    expect((docs[1] as DocumentError).message).toEqual(expect.any(String));
    expect((docs[1] as DocumentError).line).toBeGreaterThanOrEqual(3);
    expect(docs[2]).toMatchObject({ index: 2, value: { d: 4 } });
  });

  it('keeps a "---" inside a line, or indented, as content', () => {
    const docs = all('a: "x --- y"\nb: |\n  ---\n');
    expect(docs).toHaveLength(1);
    expect((docs[0] as ParsedDocument).value).toEqual({ a: 'x --- y', b: '---\n' });
  });
});
