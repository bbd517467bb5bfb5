#!/usr/bin/env node
// Launcher for the `prepull` command: refuses old Node versions with a clear message, then runs
// the built CLI (dist/). In a source checkout without a build it runs src/ directly, which Node
// 22.18+ can do because the sources use only erasable TypeScript syntax.
import { existsSync } from 'node:fs';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `prepull: Node.js >= 22.19 is required, this is ${process.version} (${process.execPath}).\n` +
      'In a checkout, `npm ci` installs Node 24 into node_modules/.bin; run prepull with `npx prepull`.\n',
  );
  process.exit(1);
}

const built = new URL('../dist/cli/main.js', import.meta.url);
const source = new URL('../src/cli/main.ts', import.meta.url);
const entry = existsSync(built) ? built : source;
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
