// Certificates and kubeconfig files: a CA and a server certificate for 127.0.0.1/localhost
// (the harness's openssl-made test CA), and kubeconfigs that trust it and carry a bearer token.
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { makeTestCa, type TestCa } from '../harness/tls.ts';

export type { TestCa };

export function makeServerCa(dir: string): TestCa {
  return makeTestCa(dir);
}

export interface KubeconfigSpec {
  server: string;
  caPem: string;
  token: string;
  user: string;
  namespace?: string;
}

export function kubeconfigYaml(spec: KubeconfigSpec): string {
  const context: Record<string, string> = { cluster: 'prepull-test', user: spec.user };
  if (spec.namespace !== undefined) context.namespace = spec.namespace;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'prepull-test',
        cluster: {
          server: spec.server,
          'certificate-authority-data': Buffer.from(spec.caPem).toString('base64'),
        },
      },
    ],
    users: [{ name: spec.user, user: { token: spec.token } }],
    contexts: [{ name: 'prepull-test', context }],
    'current-context': 'prepull-test',
    preferences: {},
  });
}

export function writeKubeconfig(file: string, spec: KubeconfigSpec): string {
  writeFileSync(file, kubeconfigYaml(spec), { mode: 0o600 });
  return file;
}
