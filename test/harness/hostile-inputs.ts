// The fault suite's 50 hostile input files (issue 21): each case makes one path in a directory a
// long-running `prepull sync` watches, and says how prepull must take it — an error naming the
// file and what is wrong, a warning naming it, or a document of another kind skipped by its kind.
// test/integration/faults-hostile.test.ts drops them one by one beside valid PrePulls;
// docs/reliability.md lists them with the error each gets.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';

/** How prepull must report the file. */
export type HostileExpect =
  /** An ERR_PREPULL_INVALID file error whose message starts with the path and matches `match`. */
  | 'error'
  /** A warning log line that starts with the path and matches `match`. */
  | 'warning'
  /** Skipped as a document of another kind (the debug line lists `path#N <kind>`, `match` the kind). */
  | 'skipped'
  /**
   * Read as a PrePull whose image then fails alone with ERR_IMAGE_REF_INVALID (docs/api.md: a
   * reference that does not parse fails only that image), named by the PrePull `prePull`.
   */
  | 'failed-image';

export interface HostileCase {
  /** The file name in the watched directory. */
  file: string;
  /** What the case is, for the table in docs/reliability.md. */
  what: string;
  expect: HostileExpect;
  /** What the report must say after the path (for `failed-image`: the image's message). */
  match: RegExp;
  /** The PrePull (namespace hostile) whose image must fail, for `failed-image`. */
  prePull?: string;
  /**
   * Makes the case at `path`. Anything written goes to `path` at once, so callers write into a
   * staging directory and rename it into the watched one (a reload never sees half a file).
   */
  create: (path: string, ctx: HostileContext) => void | Promise<void>;
  /** Made in place, not staged (a bound socket cannot be renamed usefully). */
  inPlace?: boolean;
}

export interface HostileContext {
  /** A reference no registry holds: a hostile document that were accepted would show it. */
  never: string;
  /** A valid image reference the multi-document case's good document names. */
  valid: string;
  /** Servers to close when the test ends (the socket case). */
  servers: Server[];
}

const MiB = 1024 * 1024;

/** A PrePull object (namespace `hostile`) naming `image`, with overrides. */
function prePull(
  name: string,
  image: string,
  spec: Record<string, unknown> = {},
  top: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { name, namespace: 'hostile' },
    spec: { images: [{ image }], ...spec },
    ...top,
  };
}

function json(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

/** A YAML PrePull whose spec is given as YAML text (indented by the caller). */
function yamlPrePull(name: string, specYaml: string): string {
  return `apiVersion: prepull.dev/v1alpha1\nkind: PrePull\nmetadata:\n  name: ${name}\n  namespace: hostile\nspec:\n${specYaml}`;
}

/** A billion-laughs chain: `levels` anchors each of ten aliases of the one before. */
function laughs(levels: number, indent: string): string {
  let text = `${indent}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n`;
  for (let i = 1; i <= levels; i++) {
    text += `${indent}l${i}: &l${i} [${Array<string>(10)
      .fill(`*l${i - 1}`)
      .join(', ')}]\n`;
  }
  return text;
}

export const HOSTILE_CASES: readonly HostileCase[] = [
  {
    file: 'alias-bomb-100k.yaml',
    what: 'two PrePull documents with 50,000 aliases each (100k aliases)',
    expect: 'error',
    match: /document 1: it holds more than 1000 YAML aliases/,
    create: (path, { never }) => {
      const doc = (n: number): string =>
        yamlPrePull(
          `bomb-${n}`,
          `  images:\n    - &i {image: ${never}}\n    - [${Array<string>(50_000).fill('*i').join(',')}]\n`,
        );
      writeFileSync(path, `${doc(1)}---\n${doc(2)}`);
    },
  },
  {
    file: 'billion-laughs.yaml',
    what: 'a PrePull with a billion-laughs chain (90 aliases expanding to 10^9 nodes)',
    expect: 'error',
    match: /alias/i,
    create: (path, { never }) => {
      writeFileSync(
        path,
        yamlPrePull(
          'laughs',
          `  images: [{image: ${never}}]\n  nodeSelector:\n${laughs(9, '    ')}`,
        ),
      );
    },
  },
  {
    file: 'configmap-aliases.yaml',
    what: 'a harmless ConfigMap with 110 aliases (a billion-laughs chain) beside the PrePulls',
    expect: 'skipped',
    match: /ConfigMap/,
    create: (path) => {
      writeFileSync(
        path,
        `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: laughs, namespace: hostile}\ndata:\n${laughs(11, '  ')}`,
      );
    },
  },
  {
    file: 'file-50mb.yaml',
    what: 'a 50 MB file of real YAML',
    expect: 'error',
    match: /cannot read the file: it is 52428800 bytes; a manifest file may have at most 4194304/,
    create: (path) => {
      writeFileSync(path, Buffer.alloc(50 * MiB, 'key: value\n'));
    },
  },
  {
    file: 'mapping-10mb.yaml',
    what: 'one 10 MB mapping (a PrePull whose spec holds 600k keys)',
    expect: 'error',
    match: /cannot read the file: it is \d+ bytes; a manifest file may have at most 4194304/,
    create: (path, { never }) => {
      const keys: string[] = [];
      for (let i = 0; keys.length * 17 < 10 * MiB; i++)
        keys.push(`    k${String(i).padStart(9, '0')}: v\n`);
      writeFileSync(
        path,
        yamlPrePull('big', `  images: [{image: ${never}}]\n  nodeSelector:\n${keys.join('')}`),
      );
    },
  },
  {
    file: 'fifo.yaml',
    what: 'a FIFO named *.yaml',
    expect: 'error',
    match: /cannot read the file: it is a FIFO; prepull reads only regular files/,
    create: (path) => {
      execFileSync('mkfifo', [path]);
    },
  },
  {
    file: 'dev-zero.yaml',
    what: 'a symbolic link to /dev/zero',
    expect: 'error',
    match: /cannot read the file: it is a device; prepull reads only regular files/,
    create: (path) => {
      symlinkSync('/dev/zero', path);
    },
  },
  {
    file: 'symlink-loop.yaml',
    what: 'a symbolic link to itself (a loop)',
    expect: 'error',
    match: /cannot read the file: .*(symbolic links|ELOOP)/i,
    create: (path) => {
      symlinkSync('symlink-loop.yaml', path);
    },
  },
  {
    file: 'dangling.yaml',
    what: 'a dangling symbolic link',
    expect: 'error',
    match: /cannot read the file: .*(no such file|ENOENT)/i,
    create: (path) => {
      symlinkSync('/nonexistent/prepull-hostile.yaml', path);
    },
  },
  {
    file: 'directory.yaml',
    what: 'a directory named *.yaml',
    expect: 'error',
    match: /cannot read the file: it is a directory; prepull reads only regular files/,
    create: (path) => {
      mkdirSync(path);
      writeFileSync(`${path}/inner.yaml`, 'kind: PrePull\n');
    },
  },
  {
    file: 'socket.yaml',
    what: 'a listening Unix socket named *.yaml',
    expect: 'error',
    match: /cannot read the file: it is a socket; prepull reads only regular files/,
    inPlace: true,
    create: (path, { servers }) =>
      new Promise<void>((resolve, reject) => {
        const server = createServer();
        servers.push(server);
        server.once('error', reject);
        server.listen(path, resolve);
      }),
  },
  {
    file: 'empty.yaml',
    what: 'an empty file',
    expect: 'warning',
    match: /no document in it/,
    create: (path) => {
      writeFileSync(path, '');
    },
  },
  {
    file: 'comments.yaml',
    what: 'a file of only comments (and document markers)',
    expect: 'warning',
    match: /no document in it/,
    create: (path) => {
      writeFileSync(path, '# kind: PrePull\n# nothing here\n---\n# still nothing\n');
    },
  },
  {
    file: 'json-array.json',
    what: 'a JSON array holding a PrePull',
    expect: 'error',
    match: /document 1: it is a list, not an object/,
    create: (path, { never }) => {
      writeFileSync(path, json([prePull('in-array', never)]));
    },
  },
  {
    file: 'scalar.yaml',
    what: 'a top-level scalar that names PrePull',
    expect: 'error',
    match: /document 1: it is a plain value, not an object/,
    create: (path) => {
      writeFileSync(path, '"prepull.dev/v1alpha1 PrePull"\n');
    },
  },
  {
    file: 'bogus-field.yaml',
    what: 'an unknown top-level field `bogus: 1`',
    expect: 'error',
    match: /\(PrePull hostile\/bogus\): bogus: unknown field/,
    create: (path, { never }) => {
      writeFileSync(path, json(prePull('bogus', never, {}, { bogus: 1 })));
    },
  },
  {
    file: 'unknown-spec-field.yaml',
    what: 'an unknown spec field',
    expect: 'error',
    match: /spec\.imagez: unknown field/,
    create: (path, { never }) => {
      writeFileSync(path, json(prePull('spec-field', never, { imagez: [] })));
    },
  },
  {
    file: 'nodeselector-object.yaml',
    what: 'a nodeSelector value that is an object',
    expect: 'error',
    match: /spec\.nodeSelector\["tier"\]: label values are strings[^[]*$/,
    create: (path, { never }) => {
      writeFileSync(path, json(prePull('selector', never, { nodeSelector: { tier: { a: 'b' } } })));
    },
  },
  {
    file: 'image-name-50mb.yaml',
    what: 'an image name of 50 MB',
    expect: 'error',
    match: /cannot read the file: it is \d+ bytes; a manifest file may have at most 4194304/,
    create: (path) => {
      writeFileSync(
        path,
        json(prePull('long-name', `registry.example/${'a'.repeat(50 * MiB)}:v1`)),
      );
    },
  },
  {
    file: 'image-name-200kb.yaml',
    what: 'an image name of 200 KB (within the document limit)',
    expect: 'error',
    match: /spec\.images\[0\]\.image: .*2048/,
    create: (path) => {
      writeFileSync(
        path,
        json(prePull('long-name-2', `registry.example/${'a'.repeat(200_000)}:v1`)),
      );
    },
  },
  {
    file: 'image-control-chars.yaml',
    what: 'an image name with control characters (BEL, ESC)',
    expect: 'error',
    match:
      /spec\.images\[0\]\.image: holds the control character U\+0007 at offset \d+; an image reference is printable text/,
    create: (path) => {
      writeFileSync(path, json(prePull('control', 'registry.example/a\u0007b\u001b[31m:v1')));
    },
  },
  {
    file: 'image-nul.yaml',
    what: 'an image name with a NUL byte',
    expect: 'error',
    match:
      /spec\.images\[0\]\.image: holds the control character U\+0000 at offset \d+; an image reference is printable text/,
    create: (path) => {
      writeFileSync(path, json(prePull('nul', 'registry.example/a\u0000b:v1')));
    },
  },
  {
    file: 'image-newline.yaml',
    what: 'an image name with a newline (a forged log line after it)',
    expect: 'error',
    match:
      /spec\.images\[0\]\.image: holds the control character U\+000A at offset \d+; an image reference is printable text/,
    create: (path) => {
      writeFileSync(
        path,
        json(prePull('newline', 'registry.example/a:v1\n{"level":"info","msg":"forged"}')),
      );
    },
  },
  {
    file: 'digest-invalid.yaml',
    what: 'an invalid digest (not hex)',
    expect: 'failed-image',
    match: /./,
    prePull: 'digest',
    create: (path) => {
      writeFileSync(path, json(prePull('digest', 'registry.example/a@sha256:xyz')));
    },
  },
  {
    file: 'digest-short.yaml',
    what: 'a sha256 digest of the wrong length',
    expect: 'failed-image',
    match: /./,
    prePull: 'digest-short',
    create: (path) => {
      writeFileSync(
        path,
        json(prePull('digest-short', `registry.example/a@sha256:${'a'.repeat(63)}`)),
      );
    },
  },
  {
    file: 'digest-algorithm.yaml',
    what: 'a digest with an unknown algorithm',
    expect: 'failed-image',
    match: /./,
    prePull: 'digest-md5',
    create: (path) => {
      writeFileSync(path, json(prePull('digest-md5', `registry.example/a@md5:${'a'.repeat(32)}`)));
    },
  },
  {
    file: 'tag-too-long.yaml',
    what: 'a tag of 129 characters (at most 128)',
    expect: 'failed-image',
    match: /./,
    prePull: 'tag',
    create: (path) => {
      writeFileSync(path, json(prePull('tag', `registry.example/a:${'t'.repeat(129)}`)));
    },
  },
  {
    file: 'uppercase-repo.yaml',
    what: 'an uppercase repository name',
    expect: 'failed-image',
    match: /./,
    prePull: 'upper',
    create: (path) => {
      writeFileSync(path, json(prePull('upper', 'registry.example/Team/App:v1')));
    },
  },
  {
    file: 'nested-10k.yaml',
    what: 'YAML nested 10,000 levels deep inside a PrePull',
    expect: 'error',
    match: /document 1 \(line 8\): not valid YAML: Maximum call stack size exceeded/,
    create: (path, { never }) => {
      const depth = 10_000;
      writeFileSync(
        path,
        yamlPrePull(
          'nested',
          `  images: [{image: ${never}}]\n  nodeSelector: ${'['.repeat(depth)}x${']'.repeat(depth)}\n`,
        ),
      );
    },
  },
  {
    file: 'invalid-utf8.yaml',
    what: 'invalid UTF-8 in an image name',
    expect: 'failed-image',
    match: /./,
    prePull: 'utf8',
    create: (path) => {
      const text = yamlPrePull('utf8', '  images: [{image: "registry.example/a@@:v1"}]\n');
      const bytes = Buffer.from(text);
      const at = bytes.indexOf('@@');
      bytes[at] = 0xff;
      bytes[at + 1] = 0xfe;
      writeFileSync(path, bytes);
    },
  },
  {
    file: 'utf16-bom.yaml',
    what: 'a PrePull encoded as UTF-16 with a byte-order mark',
    expect: 'error',
    match:
      /cannot read the file: it is UTF-16 text \(it starts with a byte-order mark\); prepull reads UTF-8/,
    create: (path, { never }) => {
      const text = yamlPrePull('utf16', `  images: [{image: ${never}}]\n`);
      writeFileSync(path, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]));
    },
  },
  {
    file: 'binary-garbage.yaml',
    what: '64 KiB of binary garbage',
    expect: 'skipped',
    match: /unknown kind/,
    create: (path) => {
      // Fixed bytes, so the run is the same every time: a linear congruential sequence.
      const bytes = Buffer.alloc(64 * 1024);
      for (let i = 0, x = 12345; i < bytes.length; i++) {
        x = (x * 1103515245 + 12345) & 0x7fffffff;
        bytes[i] = x >> 16;
      }
      writeFileSync(path, bytes);
    },
  },
  {
    file: 'duplicate-keys.yaml',
    what: 'a key twice in one mapping',
    expect: 'error',
    match: /document 1: not valid YAML: the key "image" appears twice in one mapping/,
    create: (path, { never }) => {
      writeFileSync(
        path,
        yamlPrePull('dup', `  images:\n    - image: ${never}\n      image: ${never}-2\n`),
      );
    },
  },
  {
    file: 'js-function-tag.yaml',
    what: 'a `!!js/function` tag',
    expect: 'error',
    match: /document 1 \(line 8\): not valid YAML: Unresolved tag: tag:yaml\.org,2002:js\/function/,
    create: (path) => {
      writeFileSync(
        path,
        yamlPrePull(
          'js',
          '  images:\n    - image: !!js/function "function () { return process.exit(1) }"\n',
        ),
      );
    },
  },
  {
    file: 'binary-tag.yaml',
    what: 'a `!!binary` tag as an image name',
    expect: 'error',
    match: /spec\.images\[0\]\.image: /,
    create: (path) => {
      writeFileSync(
        path,
        yamlPrePull('binary', '  images:\n    - image: !!binary cmVnaXN0cnkuZXhhbXBsZS9hOnYx\n'),
      );
    },
  },
  {
    file: 'merge-keys.yaml',
    what: 'a merge key (`<<: {pin: false, …}`; YAML 1.2 has none)',
    expect: 'error',
    match: /spec\.<<: unknown field/,
    create: (path, { never }) => {
      writeFileSync(
        path,
        yamlPrePull(
          'merge',
          `  <<: {pin: false, timeoutSeconds: 5}\n  images: [{image: ${never}}]\n`,
        ),
      );
    },
  },
  {
    file: 'multi-doc-one-bad.yaml',
    what: 'two PrePulls in one file, the second bad (the first applies)',
    expect: 'error',
    match:
      /document 2 \(PrePull hostile\/multi-bad\): spec\.timeoutSeconds: must be a whole number/,
    create: (path, { valid }) => {
      writeFileSync(
        path,
        `${json(prePull('multi-good', valid))}---\n${json(prePull('multi-bad', valid, { timeoutSeconds: 0 }))}`,
      );
    },
  },
  {
    file: 'wrong-apiversion.yaml',
    what: 'a wrong apiVersion (prepull.dev/v9)',
    expect: 'error',
    match: /apiVersion: must be prepull\.dev\/v1alpha1/,
    create: (path, { never }) => {
      writeFileSync(path, json(prePull('version', never, {}, { apiVersion: 'prepull.dev/v9' })));
    },
  },
  {
    file: 'wrong-kind.yaml',
    what: 'a wrong kind in the prepull.dev group',
    expect: 'error',
    match: /kind: must be PrePull/,
    create: (path, { never }) => {
      writeFileSync(path, json(prePull('kind', never, {}, { kind: 'PrePulls' })));
    },
  },
  {
    file: 'name-invalid.yaml',
    what: 'an invalid metadata.name',
    expect: 'error',
    match: /metadata\.name: /,
    create: (path, { never }) => {
      const doc = prePull('x', never);
      doc.metadata = { name: 'Not_A/Name!', namespace: 'hostile' };
      writeFileSync(path, json(doc));
    },
  },
  {
    file: 'timeout-negative.yaml',
    what: 'a negative timeoutSeconds',
    expect: 'error',
    match: /spec\.timeoutSeconds: must be a whole number/,
    create: (path, { never }) => {
      writeFileSync(path, json(prePull('timeout', never, { timeoutSeconds: -5 })));
    },
  },
  {
    file: 'backoff-huge.yaml',
    what: 'a huge backoffLimit (1e308)',
    expect: 'error',
    match: /spec\.backoffLimit: must be a whole number/,
    create: (path, { never }) => {
      writeFileSync(
        path,
        yamlPrePull('backoff', `  images: [{image: ${never}}]\n  backoffLimit: 1e308\n`),
      );
    },
  },
  {
    file: 'jitter-nan.yaml',
    what: 'scheduleJitterSeconds: .nan',
    expect: 'error',
    match: /spec\.scheduleJitterSeconds: must be a whole number from 0 to 3600, got NaN/,
    create: (path, { never }) => {
      writeFileSync(
        path,
        yamlPrePull('jitter', `  images: [{image: ${never}}]\n  scheduleJitterSeconds: .nan\n`),
      );
    },
  },
  {
    file: 'rollout-concurrency.yaml',
    what: 'a negative rollout concurrency (maxConcurrentNodes: -1)',
    expect: 'error',
    match: /spec\.rollout\.maxConcurrentNodes: /,
    create: (path, { never }) => {
      writeFileSync(path, json(prePull('rollout', never, { rollout: { maxConcurrentNodes: -1 } })));
    },
  },
  {
    file: 'cron-garbage.yaml',
    what: 'a cron expression of garbage',
    expect: 'error',
    match: /spec\.schedule: .*not a valid cron schedule/,
    create: (path, { never }) => {
      writeFileSync(path, json(prePull('cron', never, { schedule: '*/0 99 * banana ?' })));
    },
  },
  {
    file: 'timezone-garbage.yaml',
    what: 'a time zone of garbage',
    expect: 'error',
    match: /spec\.timeZone: /,
    create: (path, { never }) => {
      writeFileSync(
        path,
        json(prePull('zone', never, { schedule: '0 3 * * *', timeZone: 'Mars/Olympus_Mons' })),
      );
    },
  },
  {
    file: 'unreadable.yaml',
    what: 'a file of mode 000 (root reads it anyway: its content is checked)',
    expect: 'error',
    match: /spec: required/,
    create: (path) => {
      writeFileSync(
        path,
        json({
          apiVersion: 'prepull.dev/v1alpha1',
          kind: 'PrePull',
          metadata: { name: 'mode', namespace: 'hostile' },
        }),
      );
      chmodSync(path, 0);
    },
  },
  {
    file: 'proto-pollution.json',
    what: 'a `__proto__` key at the top and in the spec',
    expect: 'error',
    match: /__proto__/,
    create: (path, { never }) => {
      writeFileSync(
        path,
        `{"__proto__": {"polluted": true}, "apiVersion": "prepull.dev/v1alpha1", "kind": "PrePull", "metadata": {"name": "proto", "namespace": "hostile"}, "spec": {"images": [{"image": "${never}"}], "__proto__": {"pin": false}}}\n`,
      );
    },
  },
  {
    file: 'yaml-syntax.yaml',
    what: 'broken YAML (an unclosed quote)',
    expect: 'error',
    match: /not valid YAML: /,
    create: (path, { never }) => {
      writeFileSync(
        path,
        yamlPrePull('syntax', `  images:\n    - image: "${never}\n  pin: true\n`),
      );
    },
  },
  {
    file: 'documents-10k.yaml',
    what: '10,000 documents, all PrePulls without images',
    expect: 'error',
    match:
      /document 1001: more than 1000 documents in the file may be PrePulls; it is read no further/,
    create: (path) => {
      const docs: string[] = [];
      for (let i = 0; i < 10_000; i++) {
        docs.push(
          `---\n{apiVersion: prepull.dev/v1alpha1, kind: PrePull, metadata: {name: d${i}, namespace: hostile}, spec: {images: []}}\n`,
        );
      }
      writeFileSync(path, docs.join(''));
    },
  },
];
