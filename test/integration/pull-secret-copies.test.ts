// Least privilege for pull secrets (issue 21 item 8, ADR 0020), end to end: the Kubernetes API
// test server with deploy/'s CRDs and RBAC (enforced), a real `prepull controller` and a real
// `prepull agent` (bin/prepull.js, built dist/) on the harness's containerd, each with its
// shipped ServiceAccount. A PrePull in namespace `app` names a dockerconfigjson secret for the
// harness's htpasswd registry: the controller copies it into prepull-system, the agent — which
// may read no secret in `app` — pulls the image with the copy. The password, and every base64
// form of it, is then searched for in both processes' output, the Events, the PrePull's status
// and the NodeImageCache.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeImageCache } from '../../src/api/nodeimagecache.ts';
import { pullSecretCopyName } from '../../src/api/pull-secrets.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { pollUntil } from '../../src/testing/poll.ts';
import { AgentProcess, ControllerProcess, type PrepullProcess } from '../harness/agent-cli.ts';
import { runnableImage } from '../harness/images.ts';
import {
  BASIC_AUTH,
  type HarnessInfo,
  pushImage,
  sharedHarness,
  uniqueName,
} from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import { assertBuildFresh } from '../harness/sync-cli.ts';
import { KubeApiServer } from '../kube-api-server/index.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const AGENT_USER = 'system:serviceaccount:prepull-system:prepull-agent';
const CONTROLLER_USER = 'system:serviceaccount:prepull-system:prepull-controller';
const AGENTS = 'prepull-system';
/** Generous: real pulls on a 2-core machine shared with other test runs. */
const CONVERGE = { timeoutMs: 90_000, intervalMs: 200 };

/**
 * The substrings a secret leaves in base64 text wherever it sits in the encoded data: for each
 * of the three alignments, the characters that come from the secret's bytes alone.
 */
function base64Forms(secret: string): string[] {
  const bytes = Buffer.from(secret);
  return [0, 1, 2].map((pad) => {
    const encoded = Buffer.concat([Buffer.alloc(pad), bytes]).toString('base64');
    return encoded.slice(Math.ceil((8 * pad) / 6), Math.floor((8 * (pad + bytes.length)) / 6));
  });
}

describeIntegration(
  'pull secrets through the controller’s copies (real controller and agent)',
  () => {
    let h: HarnessInfo;
    let probe: RuntimeProbe;
    let server: KubeApiServer;
    let ref: string;
    const processes: PrepullProcess[] = [];
    const node = uniqueName('secrets-node');

    beforeAll(async () => {
      assertBuildFresh();
      h = sharedHarness();
      probe = runtimeProbe('containerd', h);
      const basic = h.registries.basic!;
      const name = uniqueName('secret-copy');
      await pushImage(basic, name, 'v1', runnableImage({ marker: name }));
      ref = `${basic.host}/${name}:v1`;
      server = await KubeApiServer.start();
      for (const file of ['namespace.yaml', 'crds', 'rbac.yaml', 'controller-rbac.yaml'])
        server.applyManifests(join(REPO, 'deploy', file));
      server.apply(
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'app' } },
        { apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: {} } },
      );
    });

    afterAll(async () => {
      for (const p of processes) {
        if (!p.running) continue;
        p.kill('SIGKILL');
        await p.exited(10_000).catch(() => undefined);
      }
      await server.stop();
      await probe.remove(ref).catch(() => undefined);
      probe.close();
    });

    function cache(): NodeImageCache | undefined {
      return server.get('prepull.dev/v1alpha1', 'NodeImageCache', node) as
        NodeImageCache | undefined;
    }

    it('the agent pulls with the copy, reads no secret outside its namespace, and the password is nowhere', async () => {
      const controllerKubeconfig = server.serviceAccount(AGENTS, 'prepull-controller').kubeconfig;
      const agentKubeconfig = server.serviceAccount(AGENTS, 'prepull-agent').kubeconfig;
      // The most talkative level on both: a secret in any log line would show.
      const controller = new ControllerProcess('secrets-controller', [
        '--kubeconfig',
        controllerKubeconfig,
        '--identity',
        'secrets-controller',
        '--lease-duration',
        '4',
        '--renew-deadline',
        '3',
        '--retry-period',
        '1',
        '--pull-secret-namespace',
        AGENTS,
        '--pull-secret-resync',
        '2',
        '--log-level',
        'trace',
      ]);
      processes.push(controller);
      const agent = new AgentProcess(node, [
        '--kubeconfig',
        agentKubeconfig,
        '--node-name',
        node,
        '--runtime-endpoint',
        probe.endpoint,
        '--insecure-registry',
        h.registries.basic!.host,
        '--pull-secret-namespace',
        AGENTS,
        '--log-level',
        'trace',
      ]);
      processes.push(agent);
      await agent.waitForLog((l) => l.msg === 'agent started', 'agent started', 60_000);
      await controller.waitForLog((l) => l.msg === 'controller leading', 'leading', 60_000);

      const host = h.registries.basic!.host;
      const auth = Buffer.from(`${BASIC_AUTH.username}:${BASIC_AUTH.password}`).toString('base64');
      const dockerConfig = JSON.stringify({ auths: { [host]: { auth } } });
      const started = Date.now();
      server.apply(
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { namespace: 'app', name: 'regcred' },
          type: 'kubernetes.io/dockerconfigjson',
          data: { '.dockerconfigjson': Buffer.from(dockerConfig).toString('base64') },
        },
        {
          apiVersion: 'prepull.dev/v1alpha1',
          kind: 'PrePull',
          metadata: { namespace: 'app', name: 'private' },
          spec: { images: [{ image: ref }], imagePullSecrets: [{ name: 'regcred' }] },
        },
      );
      const copyName = pullSecretCopyName('app', 'regcred');
      try {
        await pollUntil(
          'the image Present on the node',
          () => cache()?.status?.images.find((i) => i.image === ref)?.state === 'Present',
          CONVERGE,
        );
      } catch (error) {
        throw new Error(
          `${String(error)}\nNIC: ${JSON.stringify(cache()?.status?.images)}\nagent:\n${agent.tail(10)}\ncontroller:\n${controller.tail(10)}`,
        );
      }
      const tookMs = Date.now() - started;
      expect((await probe.status(ref))?.repoDigests.length).toBeGreaterThan(0);
      // The copy: in the agents' namespace, under the computed name, naming its source.
      const copy = server.get('v1', 'Secret', copyName, AGENTS) as
        { metadata: { annotations?: Record<string, string> } } | undefined;
      expect(copy?.metadata.annotations?.['prepull.dev/source']).toBe('app/regcred');
      await pollUntil(
        'the PrePull status',
        () => server.get('prepull.dev/v1alpha1', 'PrePull', 'private', 'app')?.status !== undefined,
        CONVERGE,
      );

      // Access: the agent read secrets only by get, only in its own namespace; nothing refused.
      const requests = server.accounting.all();
      const agentSecrets = requests.filter(
        (r) => r.user === AGENT_USER && r.resource === '/secrets',
      );
      expect(agentSecrets.length).toBeGreaterThan(0);
      expect([...new Set(agentSecrets.map((r) => `${r.verb} ${r.namespace} ${r.code}`))]).toEqual([
        `get ${AGENTS} 200`,
      ]);
      const controllerSecrets = requests.filter(
        (r) => r.user === CONTROLLER_USER && r.resource === '/secrets',
      );
      expect([...new Set(controllerSecrets.map((r) => `${r.verb} ${r.namespace}`))].sort()).toEqual(
        ['create prepull-system', 'get app', 'list prepull-system'],
      );
      expect(requests.filter((r) => r.code === 401 || r.code === 403)).toEqual([]);

      // The canary: the password, and the base64 forms it takes in the secret's data.
      const needles = [
        BASIC_AUTH.password,
        ...base64Forms(BASIC_AUTH.password),
        ...base64Forms(`${BASIC_AUTH.username}:${BASIC_AUTH.password}`),
        ...base64Forms(auth),
      ];
      const places: Record<string, string> = {
        agent: `${agent.stdout}\n${agent.stderr}`,
        controller: `${controller.stdout}\n${controller.stderr}`,
        events: JSON.stringify([
          server.store.list('events.k8s.io/events'),
          server.store.list('/events'),
        ]),
        prePullStatus: JSON.stringify(server.store.list('prepull.dev/prepulls')),
        nodeImageCache: JSON.stringify(server.store.list('prepull.dev/nodeimagecaches')),
      };
      // The search can find what it looks for: the copy holds the encoded canary.
      const stored = JSON.stringify(server.get('v1', 'Secret', copyName, AGENTS));
      expect(needles.some((n) => stored.includes(n))).toBe(true);
      for (const [place, text] of Object.entries(places)) {
        expect(text.length).toBeGreaterThan(0);
        for (const needle of needles) {
          expect({ place, needle, found: text.includes(needle) }).toEqual({
            place,
            needle,
            found: false,
          });
        }
      }
      // The figure for the report: PrePull applied to image Present, copy included.
      process.stderr.write(`pull-secret-copies: Present ${tookMs} ms after the PrePull\n`);

      // The PrePull goes: so does the copy.
      await KubeClient.load(server.adminKubeconfig()).request(
        'DELETE',
        '/apis/prepull.dev/v1alpha1/namespaces/app/prepulls/private',
      );
      await pollUntil(
        'the copy removed',
        () => server.get('v1', 'Secret', copyName, AGENTS) === undefined,
        CONVERGE,
      );
      for (const p of [agent, controller]) p.kill('SIGTERM');
      for (const p of [agent, controller]) expect((await p.exited(30_000)).code).toBe(0);
    });
  },
);
