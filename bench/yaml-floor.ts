// The floor under `prepull audit`: read the same manifests and parse every document with the
// YAML parser the audit uses (js-yaml), as any tool that reads Kubernetes YAML must, and do
// nothing else.
//
//   node bench/yaml-floor.ts FILE…
import { readFileSync } from 'node:fs';
import { loadAll } from 'js-yaml';

let documents = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of loadAll(readFileSync(file, 'utf8'))) if (doc !== null) documents++;
}
process.stdout.write(`${documents}\n`);
