// The Dockerfile, read as text: what a build depends on, checked without building (the image
// itself is built and run by test/integration/image.test.ts, on a base made locally). The base
// by build argument, defaulting to the official Node 24 image by tag and digest; dependencies
// from the lockfile only (npm ci) in a build stage that runs on the building machine's platform;
// only dist/, bin/ and package.json in the image, no node_modules; OCI labels that match
// package.json; the entrypoint the DaemonSet relies on; and every file it copies present in the
// repository and not excluded by .dockerignore.
import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { ROOT } from './manifests.ts';

interface Instruction {
  keyword: string;
  args: string;
  /** The comment lines just above it. */
  comments: string[];
}

interface Stage {
  image: string;
  name?: string;
  /** FROM's --platform, as written. */
  platform?: string;
  instructions: Instruction[];
}

/** Instructions in order, continuation lines joined, comments attached to what follows. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let comments: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && line.startsWith('#')) {
      comments.push(line.slice(1).trim());
      continue;
    }
    if (pending === '' && line === '') {
      comments = [];
      continue;
    }
    if (line.startsWith('#')) continue; // a comment inside a continued instruction
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const full = `${pending}${line}`.trim();
    pending = '';
    const space = full.search(/\s/);
    out.push({
      keyword: (space < 0 ? full : full.slice(0, space)).toUpperCase(),
      args: space < 0 ? '' : full.slice(space + 1).trim(),
      comments,
    });
    comments = [];
  }
  return out;
}

function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const all = instruction.args.split(/\s+/);
      const words = all.filter((w) => !w.startsWith('--'));
      const platform = all.find((w) => w.startsWith('--platform='))?.slice('--platform='.length);
      const [image = '', as, name] = words;
      stages.push({
        image,
        ...(as?.toUpperCase() === 'AS' && name !== undefined ? { name } : {}),
        ...(platform !== undefined ? { platform } : {}),
        instructions: [],
      });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** COPY's flags, sources and destination. */
function copyOf(args: string): { from?: string; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return {
    ...(from !== undefined ? { from } : {}),
    sources: paths.slice(0, -1),
    dest: paths.at(-1) ?? '',
  };
}

/** `.dockerignore` as Docker reads it (the subset this repository uses: names, `*`, `**`). */
function ignoredBy(patterns: string[]): (path: string) => boolean {
  const regexes = patterns.map((p) => {
    const body = p
      .replace(/^\/+|\/+$/g, '')
      .split('/')
      .map((part) =>
        part === '**'
          ? '.*'
          : part
              .replace(/[.+^${}()|[\]\\]/g, '\\$&')
              .replace(/\*/g, '[^/]*')
              .replace(/\?/g, '[^/]'),
      )
      .join('/')
      .replace(/\.\*\//g, '(?:.*/)?');
    // A pattern that names a directory excludes everything under it.
    return new RegExp(`^${body}(?:/.*)?$`);
  });
  return (path) => regexes.some((r) => r.test(posix.normalize(path)));
}

/** `NAME=value` (or `NAME`, undefined) of ARG instructions. */
function argsOf(list: Instruction[]): Record<string, string | undefined> {
  return Object.fromEntries(
    list
      .filter((i) => i.keyword === 'ARG')
      .map((i) => {
        const eq = i.args.indexOf('=');
        return eq < 0 ? [i.args, undefined] : [i.args.slice(0, eq), i.args.slice(eq + 1)];
      }),
  );
}

/** `$NAME` and `${NAME}` replaced from `values` (unknown names: empty, as Docker does). */
function expand(word: string, values: Record<string, string | undefined>): string {
  return word.replace(/\$\{?(\w+)\}?/g, (_m, name: string) => values[name] ?? '');
}

const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const instructions = parseDockerfile(text);
const stages = stagesOf(instructions);
const final = stages.at(-1)!;
/** The ARGs before the first FROM: the only ones FROM lines can use. */
const globalArgs = instructions.slice(
  0,
  instructions.findIndex((i) => i.keyword === 'FROM'),
);
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  license: string;
  bin: Record<string, string>;
  scripts: Record<string, string>;
  repository: { url: string };
};
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const ignored = ignoredBy(dockerignore);

function runs(stage: Stage): string[] {
  return stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
}

describe('the Dockerfile', () => {
  it('is multi-stage, every stage on the BASE argument: the official Node 24 image by tag and digest', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const defaults = argsOf(globalArgs);
    // The same base for building and running: the Node that built dist/ is the Node that runs it.
    for (const stage of stages) expect(stage.image).toBe('${BASE}');
    expect(defaults.BASE).toMatch(/^node:24-bookworm-slim@sha256:[0-9a-f]{64}$/);
    // Where the digest was seen, and that it is expected to move.
    const note = globalArgs.find((i) => i.args.startsWith('BASE='))!.comments.join(' ');
    expect(note).toContain('docker-library/repo-info');
    expect(note).toMatch(/Renovate|Dependabot/);
  });

  it('builds on the building machine’s platform and runs on the target’s (the bundle is plain JavaScript)', () => {
    const build = stages.find((s) => runs(s).some((c) => /\bnpm run build\b/.test(c)))!;
    // BuildKit sets BUILDPLATFORM; Docker's legacy builder does not, and gets linux/amd64.
    expect(build.platform).toBe('${BUILDPLATFORM:-linux/amd64}');
    expect(final.platform).toBeUndefined();
  });

  it('installs dependencies from the lockfile only: npm ci, never npm install', () => {
    const commands = stages.flatMap(runs);
    expect(commands.some((c) => /\bnpm ci\b/.test(c))).toBe(true);
    for (const c of commands) expect(c).not.toMatch(/\bnpm (install|i|add|update)\b/);
    for (const c of commands.filter((x) => /\bnpm ci\b/.test(x))) {
      // package.json's `prepare` runs the build: no install may run it before the sources exist.
      expect(c).toContain('--ignore-scripts');
    }
  });

  it('ships dist/, bin/ and package.json from the build stage, and nothing else: no node_modules', () => {
    const copies = final.instructions
      .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
      .map((i) => ({ keyword: i.keyword, ...copyOf(i.args) }));
    const build = stages.find((s) => runs(s).some((c) => /\bnpm run build\b/.test(c)))!;
    expect(copies.map((c) => [c.keyword, c.from, c.sources, c.dest])).toEqual([
      ['COPY', build.name, ['/src/package.json'], './package.json'],
      ['COPY', build.name, ['/src/bin'], './bin'],
      ['COPY', build.name, ['/src/dist'], './dist'],
    ]);
    // dist/ is the bundle (ADR 0005): nothing is installed or run in the final stage.
    expect(runs(final)).toEqual([]);
    expect(instructions.filter((i) => i.args.includes('node_modules'))).toEqual([]);
  });

  it('copies into the build stage every file the build script names', () => {
    const build = stages.find((s) => runs(s).some((c) => /\bnpm run build\b/.test(c)))!;
    const copied = build.instructions
      .filter((i) => i.keyword === 'COPY')
      .flatMap((i) => copyOf(i.args).sources);
    const covered = (path: string): boolean =>
      copied.some(
        (s) =>
          posix.normalize(path) === posix.normalize(s) ||
          posix.normalize(path).startsWith(`${posix.normalize(s)}/`),
      );
    const named = pkg.scripts
      .build!.split(/[\s&|;]+/)
      .filter((w) => /[./]/.test(w) && existsSync(join(ROOT, w)));
    const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as {
      extends?: string;
      include?: string[];
    };
    const needed = [
      ...named,
      ...(tsconfig.extends !== undefined ? [tsconfig.extends] : []),
      ...(tsconfig.include ?? []),
      'package.json',
      'package-lock.json',
    ];
    expect(needed.filter((p) => !covered(p))).toEqual([]);
  });

  it('copies only files that exist and that .dockerignore keeps in the build context', () => {
    const sources = stages.flatMap((s) =>
      s.instructions
        .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
        .map((i) => copyOf(i.args))
        .filter((c) => c.from === undefined)
        .flatMap((c) => c.sources),
    );
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect({ source, exists: existsSync(join(ROOT, source)), ignored: ignored(source) }).toEqual({
        source,
        exists: true,
        ignored: false,
      });
    }
    // The matcher itself: what the context must leave out, it does.
    for (const path of [
      'node_modules',
      'dist/cli/main.js',
      '.git',
      'test/deploy/x.ts',
      'src/api/prepull.test.ts',
    ]) {
      expect({ path, ignored: ignored(path) }).toEqual({ path, ignored: true });
    }
    expect(ignored('src/api/prepull.ts')).toBe(false);
  });

  it('carries the OCI labels: the version package.json’s, revision, creation time and base given at build', () => {
    const labels: Record<string, string> = {};
    for (const i of final.instructions.filter((x) => x.keyword === 'LABEL')) {
      for (const [, key, value] of i.args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
        labels[key!] = value!.replace(/^"|"$/g, '');
      }
    }
    const args = argsOf(final.instructions);
    expect(labels).toMatchObject({
      'org.opencontainers.image.title': 'prepull',
      'org.opencontainers.image.description': expect.stringMatching(/\S/),
      'org.opencontainers.image.source': pkg.repository.url
        .replace(/^git\+/, '')
        .replace(/\.git$/, ''),
      'org.opencontainers.image.licenses': pkg.license,
      'org.opencontainers.image.version': '${VERSION}',
      'org.opencontainers.image.revision': '${REVISION}',
      'org.opencontainers.image.created': '${CREATED}',
      'org.opencontainers.image.base.name': '${BASE}',
    });
    expect(expand(labels['org.opencontainers.image.version']!, args)).toBe(pkg.version);
    // Declared in the stage (a global ARG is not visible there unless declared again); the
    // revision and time come from whoever builds, never a made-up default.
    expect(args).toMatchObject({ BASE: undefined, REVISION: '', CREATED: '' });
    expect(Object.keys(args)).toEqual(expect.arrayContaining(['BASE', 'REVISION', 'CREATED']));
  });

  it('runs the prepull launcher, `agent` by default, as root for the reason docs/install.md gives', () => {
    const last = (keyword: string): Instruction | undefined =>
      final.instructions.filter((i) => i.keyword === keyword).at(-1);
    expect(JSON.parse(last('ENTRYPOINT')!.args)).toEqual(['node', `/app/${pkg.bin.prepull!}`]);
    expect(JSON.parse(last('CMD')!.args)).toEqual(['agent']);
    expect(last('WORKDIR')?.args).toBe('/app');
    const bin = final.instructions
      .filter((i) => i.keyword === 'COPY')
      .map((i) => copyOf(i.args))
      .find((c) => c.dest === './bin');
    expect(bin).toBeDefined();
    const user = last('USER')!;
    expect(user.args).toBe('0:0');
    expect(user.comments.join(' ')).toContain('docs/install.md');
  });
});
