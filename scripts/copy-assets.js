// Copies the non-TypeScript files the sources load at run time (the gRPC .proto files next to
// their adapters) from src/ into dist/, at the same relative paths, after tsc has built dist/.
import { cpSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const ASSET = /\.proto$/;
const [from = 'src', to = 'dist'] = process.argv.slice(2);

for (const entry of readdirSync(from, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !ASSET.test(entry.name)) continue;
  const source = join(entry.parentPath, entry.name);
  const target = join(to, relative(from, source));
  cpSync(source, target);
  process.stdout.write(`copied ${source} -> ${target}\n`);
}
