// `npm run build`: bundles the CLI with esbuild into dist/cli/ — main.js, which bin/prepull.js
// runs, and chunks that main.js loads only when a command needs them (sync, agent, each runtime
// adapter) — then copies the files the code reads at run time (the gRPC .proto files) to where
// the code looks for them, and writes the licences of the bundled packages. Why a bundle, and
// what each step below is for: docs/adr/0005-bundled-cli.md. Type checking is `npm run
// typecheck`'s job; this only strips the types.
import { build, type Metafile, type Plugin } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { grpcWithoutProtoLoader } from './no-proto-loader.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');
/** `node scripts/build.ts [DIR]` builds into DIR instead of dist/ (to try a build aside). */
const DIST = resolve(ROOT, process.argv[2] ?? 'dist');
/** Every JavaScript file of the build lands here (see `moduleUrls`). */
const OUT = join(DIST, 'cli');
const BUNDLE = join(ROOT, 'scripts/bundle');
/** Files the sources read at run time, next to the module that reads them. */
const ASSET = '.proto';

/**
 * Each source module keeps the `import.meta.url` it would have unbundled (dist/<path>.js), so
 * `new URL('./cri.proto', import.meta.url)` still finds the .proto copied to dist/ and
 * `new URL('../../package.json', import.meta.url)` still finds package.json. It works because
 * every output file sits in one directory, OUT.
 */
const moduleUrls: Plugin = {
  name: 'module-urls',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      if (!args.path.startsWith(`${SRC}/`)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (/import\.meta\.(dirname|filename|resolve)\b/.test(text)) {
        throw new Error(
          `${relative(ROOT, args.path)}: use new URL(…, import.meta.url), which the bundle maps`,
        );
      }
      const unbundled = relative(OUT, args.path.replace(SRC, DIST).replace(/\.ts$/, '.js'));
      const url = `new URL(${JSON.stringify(unbundled)}, import.meta.url).href`;
      return { contents: text.replaceAll('import.meta.url', url), loader: 'ts' };
    });
  },
};

/**
 * Node's built-in modules are loaded with require(), never `import`: an ES import of a built-in
 * reads every export of it to build the module namespace, and some exports are lazy getters —
 * importing `node:http` that way loads Node's own copy of undici (fetch, WebSocket), tls,
 * http2 and zlib, about 15 MiB of resident memory a command that never touches them pays.
 * require() gives the plain exports object, whose properties are read only when used.
 */
const builtinsByRequire: Plugin = {
  name: 'builtins-by-require',
  setup(b) {
    // node-cron forks a child only for a task given as a file (a background task); prepull
    // schedules functions, so child_process is loaded when a fork is asked for, not at start.
    b.onResolve({ filter: /^child_process$/ }, (args) =>
      args.importer.includes('node_modules/node-cron/')
        ? { path: 'fork', namespace: 'lazy-fork' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-fork' }, () => ({
      contents:
        "export function fork(...args) { return require('node:child_process').fork(...args); }",
      loader: 'js',
    }));
    const builtins = new Set(builtinModules);
    b.onResolve({ filter: /^[a-z_/0-9:]+$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      if (!args.path.startsWith('node:') && !builtins.has(name)) return undefined;
      if (args.kind === 'require-call') return { path: args.path, external: true };
      return { path: name, namespace: 'builtin' };
    });
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(`node:${args.path}`)});`,
      loader: 'js',
    }));
  },
};

/**
 * Packages whose index loads far more than prepull uses are replaced by the parts it imports
 * (scripts/bundle/). undici is resolved per importing file, to exactly the names that file
 * imports, so `sync` never loads undici's fetch, which only the agent's Kubernetes client uses.
 */
const UNDICI_PARTS: Record<string, string> = {
  Agent: 'undici-dispatchers.js',
  ProxyAgent: 'undici-dispatchers.js',
  request: 'undici-request.js',
  fetch: 'undici-fetch.js',
};

function importedNames(importer: string, specifier: string): string[] {
  const text = readFileSync(importer, 'utf8');
  const quoted = specifier.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  const clauses = [
    ...text.matchAll(new RegExp(`(?:import|export)\\s+([^;]*?)\\s+from\\s+['"]${quoted}['"]`, 'g')),
  ].map((m) => m[1]!.trim());
  if (clauses.length === 0)
    throw new Error(`cannot see what ${importer} imports from ${specifier}`);
  return clauses.flatMap((clause) => {
    if (clause.startsWith('type ')) return [];
    const named = /^\{([^}]*)\}$/.exec(clause);
    if (named === null) {
      throw new Error(`${importer}: only named imports of ${specifier} can be bundled (${clause})`);
    }
    return named[1]!
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== '' && !part.startsWith('type '))
      .map((part) => part.split(/\s+as\s+/)[0]!);
  });
}

const slimPackages: Plugin = {
  name: 'slim-packages',
  setup(b) {
    b.onResolve({ filter: /^prom-client$/ }, () => ({ path: join(BUNDLE, 'prom-client.js') }));
    // prom-client's CPU collector reads the OpenTelemetry context only for exemplars, which
    // prepull never enables: its import is an empty object, not the OpenTelemetry API.
    b.onResolve({ filter: /^@opentelemetry\/api$/ }, (args) =>
      args.importer.endsWith('/prom-client/lib/metrics/processCpuTotal.js')
        ? { path: 'otel', namespace: 'no-otel' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'no-otel' }, () => ({
      contents: 'module.exports = {};',
      loader: 'js',
    }));
    b.onResolve({ filter: /^undici$/ }, (args) => {
      const names = [...new Set(importedNames(args.importer, 'undici'))].sort();
      const missing = names.filter((name) => UNDICI_PARTS[name] === undefined);
      if (missing.length > 0) {
        throw new Error(
          `${relative(ROOT, args.importer)} imports ${missing.join(', ')} from undici: add ` +
            'it to UNDICI_PARTS in scripts/build.ts (and scripts/bundle/)',
        );
      }
      return { path: names.join(','), namespace: 'undici-parts' };
    });
    b.onLoad({ filter: /.*/, namespace: 'undici-parts' }, (args) => ({
      contents: args.path
        .split(',')
        .filter((name) => name !== '')
        .map((name) => `export { ${name} } from './${UNDICI_PARTS[name]!}';`)
        .join('\n'),
      resolveDir: BUNDLE,
      loader: 'js',
    }));
    // client-node's generated API (gen/, 450 KiB of models) comes in through two imports the
    // agent never exercises: cache.js serializes label and field selectors, which are strings
    // and pass through ObjectSerializer unchanged; config.js builds API clients in
    // makeApiClient(), which the agent does not call (src/kube/client.ts makes its requests).
    b.onResolve({ filter: /^\.\/(serializer|gen\/index)\.js$/ }, (args) => {
      const from = /@kubernetes\/client-node\/dist\/(cache|config)\.js$/.exec(args.importer)?.[1];
      if (from === 'cache' && args.path === './serializer.js')
        return { path: join(BUNDLE, 'client-node-serializer.js') };
      if (from === 'config' && args.path === './gen/index.js')
        return { path: join(BUNDLE, 'client-node-gen.js') };
      return undefined;
    });
    // Milo, undici's experimental HTTP/1 parser, used only with UNDICI_USE_MILO=1 (llhttp
    // otherwise, as in Node's own copy of undici, which leaves Milo out the same way).
    b.onResolve({ filter: /^\.\/parser-h1\.js$/ }, (args) =>
      args.importer.endsWith('/undici/lib/dispatcher/client-h1.js')
        ? { path: 'milo', namespace: 'no-milo' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'no-milo' }, () => ({
      contents: 'module.exports = { H1Parser: undefined, getMiloEnabled: () => false };',
      loader: 'js',
    }));
    // dockerode's SSH transport (ssh2, and its optional native cpu-features): prepull reaches
    // Docker Engine through its unix socket only.
    b.onResolve({ filter: /^ssh2$/ }, () => ({ path: 'ssh2', namespace: 'unsupported' }));
    b.onLoad({ filter: /.*/, namespace: 'unsupported' }, (args) => ({
      contents:
        'export class Client { constructor() { throw new Error(' +
        `${JSON.stringify(`${args.path} is not part of prepull's build: Docker is reached through its unix socket`)}); } }`,
      loader: 'js',
    }));
  },
};

/** Where a bundled input file comes from: the package directory under node_modules. */
function packageDirOf(input: string): string | undefined {
  const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  return match?.[1];
}

/** The bundle carries third-party code: name, version, licence and licence text of each. */
function writeNotices(metafile: Metafile): void {
  const dirs = new Set<string>();
  for (const input of Object.keys(metafile.inputs)) {
    const dir = packageDirOf(input);
    if (dir !== undefined) dirs.add(dir);
  }
  const sections = [...dirs].sort().map((dir) => {
    const pkg = JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as {
      name: string;
      version: string;
      license?: string;
    };
    const file = readdirSync(join(ROOT, dir)).find((f) => /^(licen[cs]e|copying)/i.test(f));
    const text = file === undefined ? '' : readFileSync(join(ROOT, dir, file), 'utf8').trim();
    return `${pkg.name}@${pkg.version} (${pkg.license ?? 'see the package'})\n\n${text}\n`;
  });
  writeFileSync(
    join(DIST, 'THIRD-PARTY-NOTICES.txt'),
    `prepull's dist/ bundles the following packages.\n\n${sections.join(`\n${'-'.repeat(72)}\n\n`)}`,
  );
}

function copyAssets(): void {
  for (const entry of readdirSync(SRC, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith(ASSET)) continue;
    const source = join(entry.parentPath, entry.name);
    cpSync(source, join(DIST, relative(SRC, source)));
  }
}

/**
 * A dependency's import.meta.url points into dist/cli/ once bundled, not into its package. Each
 * use must be known to be harmless, or the build fails.
 */
const HARMLESS_IMPORT_META: Record<string, string> = {
  // Only for background tasks (a task given as a file, forked): prepull schedules functions.
  'node-cron': 'dist/node-cron.js',
};

function checkImportMeta(metafile: Metafile): void {
  for (const input of Object.keys(metafile.inputs)) {
    const dir = packageDirOf(input);
    if (dir === undefined || !readFileSync(join(ROOT, input), 'utf8').includes('import.meta')) {
      continue;
    }
    const name = dir.replace(/^.*node_modules\//, '');
    if (input !== `${dir}/${HARMLESS_IMPORT_META[name] ?? ''}`) {
      throw new Error(`${input} uses import.meta, which the bundle moves to dist/cli/: check it`);
    }
  }
}

/**
 * The git revision the bundle is built from, for prepull_build_info: PREPULL_REVISION when set
 * (a build without the repository, e.g. in an image build), else `git rev-parse HEAD`.
 */
function gitRevision(): string {
  const given = process.env.PREPULL_REVISION;
  if (given !== undefined && given !== '') return given;
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}

rmSync(DIST, { recursive: true, force: true });
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: { main: 'src/cli/main.ts' },
  outdir: OUT,
  chunkNames: '[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  mainFields: ['module', 'main'],
  // The TypeScript settings esbuild honours when it strips types (verbatimModuleSyntax, …).
  tsconfig: 'tsconfig.build.json',
  // src/cli/build-info.ts
  define: { PREPULL_REVISION: JSON.stringify(gitRevision()) },
  // CommonJS dependencies call require(); in an ES module it has to be made.
  banner: {
    js: "import { createRequire as __prepullCreateRequire } from 'node:module';\nconst require = __prepullCreateRequire(import.meta.url);",
  },
  // Whitespace and syntax only: names stay, so stack traces stay readable without the maps.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  sourcesContent: false,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
  plugins: [moduleUrls, builtinsByRequire, slimPackages, grpcWithoutProtoLoader],
});
checkImportMeta(result.metafile);
copyAssets();
writeNotices(result.metafile);
writeFileSync(join(DIST, 'meta.json'), JSON.stringify(result.metafile));
if (!existsSync(join(OUT, 'main.js'))) throw new Error('the build wrote no dist/cli/main.js');
const sizes = Object.entries(result.metafile.outputs)
  .filter(([file]) => file.endsWith('.js'))
  .map(
    ([file, out]) =>
      `${(out.bytes / 1024).toFixed(0).padStart(6)} KiB  ${relative(DIST, join(ROOT, file))}`,
  );
process.stdout.write(`${sizes.join('\n')}\n`);
