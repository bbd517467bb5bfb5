// Starting with no runtime (issue 19 item 7, issue 21 item 3), on real containerd: a private
// harness whose containerd is killed before prepull starts (its socket left behind, refusing). `sync --once` fails at once with the
// reason and sync's advice; a watching `sync` and an `agent` (the built CLI, against the
// Kubernetes API test server) stay up, answer /healthz, are not ready, and — once containerd is
// started — become ready and pull, with no restart.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeImageCache } from '../../src/api/nodeimagecache.ts';
import { pollUntil } from '../../src/testing/poll.ts';
import { AgentProcess, type PrepullProcess } from '../harness/agent-cli.ts';
import { clearLayerCache, runnableImage } from '../harness/images.ts';
import { type Harness, pushImage, startHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import {
  type LogLine,
  SyncProcess,
  assertBuildFresh,
  runSync,
  stateLines,
  writePrePull,
} from '../harness/sync-cli.ts';
import { KubeApiServer } from '../kube-api-server/index.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** Real pulls on a 2-core machine shared with other test runs. */
const CONVERGE = { timeoutMs: 90_000, intervalMs: 100 };
const WAITING = 'waiting for the container runtime';

async function get(address: string, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://${address}${path}`);
  return { status: response.status, body: await response.text() };
}

describeIntegration('starting with no runtime (real CLI, private containerd)', () => {
  let harness: Harness;
  let server: KubeApiServer | undefined;
  let sync: SyncProcess | undefined;
  let agent: PrepullProcess | undefined;

  beforeAll(async () => {
    assertBuildFresh();
    harness = await startHarness({ registries: ['plain'], docker: false });
  });

  afterAll(async () => {
    sync?.kill('SIGKILL');
    agent?.kill('SIGKILL');
    await sync?.exited(10_000).catch(() => undefined);
    await agent?.exited(10_000).catch(() => undefined);
    await server?.stop();
    clearLayerCache();
    await harness.stop();
  });

  it('sync --once fails fast; sync and the agent wait, not ready, then pull once containerd starts', async () => {
    const plain = harness.info.registries.plain!;
    const containerd = harness.containerd!;
    const { socket, sandboxImage } = harness.info.containerd!;
    const name = uniqueName('runtime-wait');
    const image = runnableImage({ marker: name });
    await pushImage(plain, name, 'v1', image);
    const ref = `${plain.host}/${name}:v1`;
    const dir = mkdtempSync(join(harness.info.workDir, 'runtime-wait-'));
    const file = writePrePull(dir, name, [ref]);
    const flags = ['--runtime-endpoint', `unix://${socket}`, '--insecure-registry', plain.host];

    // Killed, containerd leaves its socket behind: connecting is refused. (Stopped gracefully
    // it removes the socket: "no such socket", as a path that does not exist yet.)
    await containerd.stop({ kill: true });
    expect(existsSync(socket)).toBe(true);
    const missing = `unix://${join(dir, 'missing.sock')}`;
    for (const [endpoint, reason] of [
      [`unix://${socket}`, `unix://${socket}: not Docker Engine (`],
      [missing, `${missing}: no such socket`],
    ] as const) {
      const once = await runSync(
        ['-f', file, '--once', '--runtime-endpoint', endpoint, '--insecure-registry', plain.host],
        30_000,
      );
      expect(once.code).toBe(1);
      expect(once.stderr).toContain(reason);
      expect(once.stderr).toContain('ERR_RUNTIME_NOT_DETECTED');
      expect(once.stderr).toContain('that this user may open it'); // sync's advice
      expect(once.stderr).not.toContain('agent');
      expect(once.logs.some((l) => l.msg === WAITING)).toBe(false);
    }

    server = await KubeApiServer.start();
    server.applyManifests(join(REPO, 'deploy', 'namespace.yaml'));
    server.applyManifests(join(REPO, 'deploy', 'crds'));
    server.applyManifests(join(REPO, 'deploy', 'rbac.yaml'));
    const { kubeconfig } = server.serviceAccount('prepull-system', 'prepull-agent');
    const node = `${name}-node`;
    server.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'wait' } },
      { apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: {} } },
      {
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        metadata: { namespace: 'wait', name: 'web' },
        spec: { images: [{ image: ref }] },
      },
    );

    const metricsFlags = ['--metrics-address', '127.0.0.1:0'];
    sync = new SyncProcess(['-f', file, ...flags, ...metricsFlags]);
    agent = new AgentProcess(node, [
      '--kubeconfig',
      kubeconfig,
      '--node-name',
      node,
      ...flags,
      ...metricsFlags,
    ]);
    const address = async (p: {
      waitForLog(predicate: (l: LogLine) => boolean, what: string): Promise<LogLine>;
    }): Promise<string> =>
      String(
        (await p.waitForLog((l) => l.msg === 'serving /metrics, /healthz, /readyz', 'the address'))
          .address,
      );
    const syncAddress = await address(sync);
    const agentAddress = await address(agent);
    const syncWaiting = await sync.waitForLog((l) => l.msg === WAITING, WAITING);
    const agentWaiting = await agent.waitForLog((l) => l.msg === WAITING, WAITING);
    for (const line of [syncWaiting, agentWaiting]) {
      expect(line).toMatchObject({ level: 'warn', code: 'ERR_RUNTIME_NOT_DETECTED' });
      expect(line.reason).toContain(`unix://${socket}: not Docker Engine (`);
    }
    for (const at of [syncAddress, agentAddress]) {
      expect(await get(at, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
      expect(await get(at, '/readyz')).toEqual({ status: 503, body: `${WAITING}\n` });
      expect((await get(at, '/metrics')).body).toMatch(/^prepull_runtime_up 0$/m);
    }
    expect(agent.running).toBe(true);
    expect(sync.stdout).toBe('');
    // Nothing of Kubernetes before the runtime: no NodeImageCache yet.
    expect(server.get('prepull.dev/v1alpha1', 'NodeImageCache', node)).toBeUndefined();

    await containerd.start();
    await sync.waitForLog(
      (l) => stateLines([l], ref, 'Present').length > 0,
      `${ref} Present through sync`,
      CONVERGE.timeoutMs,
    );
    await pollUntil(
      `${ref} and the sandbox image Present in the agent's NodeImageCache`,
      () => {
        const cache = server?.get('prepull.dev/v1alpha1', 'NodeImageCache', node) as
          NodeImageCache | undefined;
        const present = (cache?.status?.images ?? []).filter((i) => i.state === 'Present');
        return [ref, sandboxImage].every((r) => present.some((i) => i.image === r));
      },
      CONVERGE,
    );
    for (const at of [syncAddress, agentAddress]) {
      await pollUntil(
        `${at} ready`,
        async () => (await get(at, '/readyz')).status === 200,
        CONVERGE,
      );
      expect((await get(at, '/metrics')).body).toMatch(/^prepull_runtime_up 1$/m);
    }
    for (const p of [sync, agent]) {
      expect(p.logs.filter((l) => l.msg === WAITING)).toHaveLength(1);
      expect(p.logs.some((l) => l.msg === 'container runtime answered')).toBe(true);
      expect(p.otherStderr).toEqual([]);
    }

    sync.kill('SIGTERM');
    agent.kill('SIGTERM');
    expect((await sync.exited(20_000)).code).toBe(0);
    expect((await agent.exited(30_000)).code).toBe(0);
  }, 240_000);
});
