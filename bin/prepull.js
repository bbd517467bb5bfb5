#!/usr/bin/env node
// Launcher for the `prepull` command: refuses old Node versions with a clear message, sets up
// the process for the command (below), then runs the built CLI (dist/cli/main.js, a bundle:
// `npm run build`). In a source checkout without a build it runs src/ directly, which Node
// 22.18+ can do because the sources use only erasable TypeScript syntax.
//
// Why each setting, and what it costs: docs/adr/0005-bundled-cli.md.
import { existsSync } from 'node:fs';
// A namespace import: a named import of an export that an old Node lacks (enableCompileCache
// came in 22.1) fails at link time with a SyntaxError, before the version check below can run.
import * as nodeModule from 'node:module';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `prepull: Node.js >= 22.19 is required, this is ${process.version} (${process.execPath}).\n` +
      'In a checkout, `npm ci` installs Node 24 into node_modules/.bin; run prepull with `npx prepull`.\n',
  );
  process.exit(1);
}

const argv = process.argv.slice(2);
const help = argv.includes('--help') || argv.includes('-h');
// The agent and `sync` without --once run for days, on every node of a cluster; the controller
// for days too.
const longRunning =
  !help &&
  (argv[0] === 'agent' ||
    argv[0] === 'controller' ||
    (argv[0] === 'sync' && !argv.includes('--once')));

// glibc's malloc keeps what V8's compilers and garbage collector free, in one arena per thread
// and in fragments it never hands back: about 10 MiB of a long-running process's resident
// memory, more or less at random. One arena, and blocks of 8 KiB or more mapped on their own
// (so that freeing them returns them), keep it at what is in use. glibc reads these settings
// when a process starts, so the launcher starts itself again with them, in place (execve: the
// same process, the same PID, ~50 ms). A user's own MALLOC_ settings are left alone.
const MALLOC = { MALLOC_ARENA_MAX: '1', MALLOC_MMAP_THRESHOLD_: '8192' };
// The controller holds every Node and NodeImageCache of the cluster and reads them again after
// every change. With V8's default heap growth, a 5,000-node rollout took it to 370 MiB resident
// for what fits in well under 150. --optimize-for-size makes V8 grow the heap
// less and collect sooner: bench/controller.bench.ts measured a peak of 146 MiB instead of 370,
// for 8 CPU s instead of 5 over the same rollout (ADR 0005). A V8 heap setting belongs on the
// command line, so it goes into the restart below (and is set late, as a fallback, without it).
const V8_FLAGS = !help && argv[0] === 'controller' ? ['--optimize-for-size'] : [];
const TUNED = 'PREPULL_MALLOC_TUNED';
const settled = process.env[TUNED] === '1';
if (settled) {
  // Settled; children (kubeconfig exec plugins) get the environment they would have had.
  delete process.env.PREPULL_MALLOC_TUNED;
  delete process.env.MALLOC_ARENA_MAX;
  delete process.env.MALLOC_MMAP_THRESHOLD_;
}
const tune =
  !settled &&
  longRunning &&
  typeof process.execve === 'function' &&
  Object.keys(MALLOC).every((name) => process.env[name] === undefined);

// Node's own debug output of `net` prints the options of every connection a client opens,
// request headers included: Docker's X-Registry-Auth, the base64 of a registry password. That of
// `http` and `https` prints the TLS key given to a connection. Node reads NODE_DEBUG once, when
// the process starts, so those sections (and patterns that match them, such as `*`) are taken
// out and the process starts again without them, like the restart above; the others stay.
const nodeDebug = withoutSecretDebug(process.env.NODE_DEBUG);
if (nodeDebug.dropped.length > 0) {
  process.stderr.write(
    `prepull: NODE_DEBUG: leaving out ${nodeDebug.dropped.join(',')}, whose output carries ` +
      'request headers and TLS keys, registry credentials among them (docs/install.md, ' +
      '"Debug settings that print secrets").\n',
  );
  if (typeof process.execve !== 'function') {
    process.stderr.write('prepull: unset them and start again.\n');
    process.exit(1);
  }
}
if (tune || nodeDebug.dropped.length > 0) {
  const self = fileURLToPath(import.meta.url);
  const flags = tune ? V8_FLAGS.filter((flag) => !process.execArgv.includes(flag)) : [];
  const env = { ...process.env, ...(tune ? { ...MALLOC, [TUNED]: '1' } : {}) };
  if (nodeDebug.value === '') delete env.NODE_DEBUG;
  else env.NODE_DEBUG = nodeDebug.value;
  process.execve(
    process.execPath,
    [process.execPath, ...process.execArgv, ...flags, self, ...argv],
    env,
  );
}

/**
 * NODE_DEBUG without the entries that enable `net`, `http` or `https`, matched as Node matches
 * them (comma-separated, `*` for any text, case-insensitive), and those entries.
 * @param {string | undefined} value
 * @returns {{ value: string; dropped: string[] }}
 */
function withoutSecretDebug(value) {
  /** @type {string[]} */
  const kept = [];
  /** @type {string[]} */
  const dropped = [];
  for (const entry of (value ?? '').split(',')) {
    if (entry === '') continue;
    const escaped = entry.replace(/[|\\{}()[\]^$+?.]/g, '\\$&').replaceAll('*', '.*');
    const pattern = new RegExp(`^${escaped}$`, 'i');
    (['net', 'http', 'https'].some((section) => pattern.test(section)) ? dropped : kept).push(
      entry,
    );
  }
  return { value: kept.join(','), dropped };
}

// WebAssembly (undici's HTTP/1 parser, llhttp) stays on V8's baseline compiler. Optimizing it
// in the background costs ~10 MiB of resident memory for a parser that reads a few headers per
// registry request, and a `sync --once` would wait ~100 ms at exit for that compile to end.
setFlagsFromString('--no-wasm-tier-up');
setFlagsFromString('--no-wasm-dynamic-tiering');
for (const flag of V8_FLAGS) if (!process.execArgv.includes(flag)) setFlagsFromString(flag);

// A short-lived command starts faster from V8's code cache of the bundle (in the system's temp
// directory; NODE_DISABLE_COMPILE_CACHE=1 turns it off). V8 compiles a function only when it is
// first called, and the cache holds what was compiled with the module itself: so the bundle is
// compiled whole (--no-lazy), and the cache then holds every function, rather than `sync --once`
// compiling gRPC's and the engine's functions again at every run (~40 ms; the first run on a
// machine pays more, once). A long-running one starts once, and keeps less code in memory
// without either.
if (!longRunning) {
  setFlagsFromString('--no-lazy');
  nodeModule.enableCompileCache();
}

const built = new URL('../dist/cli/main.js', import.meta.url);
const source = new URL('../src/cli/main.ts', import.meta.url);
const entry = existsSync(built) ? built : source;
const { main } = await import(entry.href);
process.exitCode = await main(argv);
