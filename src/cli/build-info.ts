// What this build of prepull is: the package version, and the git revision scripts/build.ts
// embeds in the bundle (an unbundled run, as in the tests, says "unknown").
import { readFileSync } from 'node:fs';

/** Replaced by a string literal in the bundle (esbuild `define`); undeclared when unbundled. */
declare const PREPULL_REVISION: string | undefined;

export function version(): string {
  // src/cli and dist/cli sit at the same depth below package.json.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export function revision(): string {
  return typeof PREPULL_REVISION === 'string' ? PREPULL_REVISION : 'unknown';
}
