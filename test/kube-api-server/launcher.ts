// `npm run kube-api-server -- --port PORT --crds DIR --rbac FILE_OR_DIR --out DIR
// [--serviceaccount NS/NAME ...]`: starts the server, applies CRDs and RBAC, writes
// admin.kubeconfig and one <ns>.<name>.kubeconfig per ServiceAccount, runs until SIGTERM.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeApiServer } from './server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    crds: { type: 'string', multiple: true, default: [] },
    rbac: { type: 'string', multiple: true, default: [] },
    manifests: { type: 'string', multiple: true, default: [] },
    out: { type: 'string' },
    serviceaccount: { type: 'string', multiple: true, default: [] },
  },
});

const out = resolve(values.out ?? 'kube-api-server');
mkdirSync(out, { recursive: true });
const server = await KubeApiServer.start({ port: Number(values.port), dir: out });
for (const path of [...values.crds, ...values.rbac, ...values.manifests])
  server.applyManifests(resolve(path));
const lines = [
  `kube-api-server listening on ${server.url}`,
  `admin kubeconfig: ${server.adminKubeconfig()}`,
];
for (const sa of values.serviceaccount) {
  const [namespace, name] = sa.split('/');
  if (namespace === undefined || name === undefined || name === '')
    throw new Error(`--serviceaccount wants NS/NAME, got ${sa}`);
  lines.push(
    `serviceaccount ${sa} kubeconfig: ${server.serviceAccount(namespace, name, out).kubeconfig}`,
  );
}
process.stdout.write(`${lines.join('\n')}\n`);

const stop = (): void => {
  void server.stop().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
