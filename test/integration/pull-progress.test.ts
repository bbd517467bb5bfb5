// Pull progress people can see (issue 19, item 5), on the harness containerd with real pulls
// slowed by the throttle proxy so they last long enough to be watched: `prepull sync` (the built
// CLI) under a pseudo-terminal made by util-linux `script` shows live lines with figures that
// move before the image is Present; a real `prepull agent` puts `progress` on the Pulling image in
// its NodeImageCache, logs the pull every 10 s and counts its bytes in
// prepull_pull_bytes_in_flight.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CachedImage, NodeImageCache } from '../../src/api/nodeimagecache.ts';
import { pollUntil } from '../../src/testing/poll.ts';
import { AgentProcess } from '../harness/agent-cli.ts';
import { clearLayerCache, fillerLayer, runnableImage } from '../harness/images.ts';
import { type HarnessInfo, pushImage, sharedHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import { PREPULL_BIN, assertBuildFresh, writePrePull } from '../harness/sync-cli.ts';
import { ThrottleProxy } from '../harness/throttle-proxy.ts';
import { KubeApiServer } from '../kube-api-server/index.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const MiB = 1024 * 1024;
/** ~315 MB in 7 layers (busybox, a marker, five 60 MiB fillers), as sync-signals pulls. */
const LARGE_FILLERS = 5;
const LARGE_FILLER_BYTES = 60 * MiB;
/** Per proxy connection; containerd fetches three layers at once: a pull of several seconds. */
const SYNC_RATE = 32 * MiB;
/** The agent's image, one 60 MiB layer at 4 MiB/s: about 15 s, past the 10 s progress log. */
const AGENT_FILLER_BYTES = 60 * MiB;
const AGENT_RATE = 4 * MiB;
/** Erases a line the view drew (cursor up, erase line). */
const ERASE = '\x1b[1A\x1b[2K';
/** The terminal escape sequences (CSI) in a line. */
const ESCAPES = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, 'g');

/** Quotes `word` for sh. */
function shq(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Runs `argv` under a pseudo-terminal 160 columns wide; resolves with all it wrote there. */
function underTerminal(argv: readonly string[]): Promise<{ code: number | null; output: string }> {
  const command = `stty cols 160 rows 40; exec ${argv.map(shq).join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('error', reject);
    child.once('close', (code) => {
      resolve({ code, output });
    });
  });
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve(body);
      });
    }).on('error', reject);
  });
}

describeIntegration('pull progress (real CLI, agent, containerd and registry)', () => {
  let h: HarnessInfo;
  let probe: RuntimeProbe;
  let proxy: ThrottleProxy | undefined;
  let server: KubeApiServer | undefined;
  let agent: AgentProcess | undefined;
  let dir: string;
  const pulled: string[] = [];

  beforeAll(() => {
    assertBuildFresh();
    h = sharedHarness();
    probe = runtimeProbe('containerd', h);
    dir = mkdtempSync(join(h.workDir, 'pull-progress-'));
  });

  afterAll(async () => {
    if (agent?.running === true) {
      agent.kill('SIGKILL');
      await agent.exited(10_000).catch(() => undefined);
    }
    await server?.stop();
    await proxy?.stop();
    for (const ref of pulled) await probe.remove(ref);
    probe.close();
    clearLayerCache(); // the large image holds hundreds of MB
  });

  it('prepull sync on a terminal shows at least three distinct figures of a 315 MB pull before Present', async () => {
    const plain = h.registries.plain!;
    const name = uniqueName('progress-sync');
    const image = runnableImage({
      marker: name,
      extraLayers: Array.from({ length: LARGE_FILLERS }, (_, i) =>
        fillerLayer({ bytes: LARGE_FILLER_BYTES, seed: `${name}-${i}` }),
      ),
    });
    expect(image.size).toBeGreaterThan(300_000_000);
    await pushImage(plain, name, 'v1', image);
    clearLayerCache();
    proxy = await ThrottleProxy.start({ target: plain.host, bytesPerSecond: SYNC_RATE });
    const ref = `${proxy.host}/${name}:v1`;
    pulled.push(ref);
    const file = writePrePull(dir, name, [ref]);

    const run = await underTerminal([
      process.execPath,
      PREPULL_BIN,
      'sync',
      '-f',
      file,
      '--once',
      '--runtime-endpoint',
      probe.endpoint,
      '--insecure-registry',
      proxy.host,
      '--insecure-registry',
      plain.host,
    ]);

    expect({ code: run.code, tail: run.code === 0 ? '' : run.output.slice(-3000) }).toEqual({
      code: 0,
      tail: '',
    });
    const lines = run.output.split(/\r?\n/).map((l) => l.replace(ESCAPES, ''));
    // On a terminal the log is text by default (pino-pretty): `[time] INFO: image state {…}`.
    const presentAt = lines.findIndex(
      (l) =>
        l.includes('INFO: image state {') &&
        l.includes(`"image":"${ref}"`) &&
        l.includes('"state":"Present"'),
    );
    expect(presentAt).toBeGreaterThan(0);
    // containerd gives no total: `pulling REF  12.3 MiB  25.0 MiB/s`.
    const line = new RegExp(`^pulling ${escapeRegExp(ref)} {2}(\\d+(?:\\.\\d)? [KMG]?i?B)`);
    const figures = new Set(
      lines.slice(0, presentAt).flatMap((l) => {
        const match = line.exec(l);
        return match?.[1] === undefined ? [] : [match[1]];
      }),
    );
    expect([...figures].length).toBeGreaterThanOrEqual(3);
    // Drawn in place and erased at the end: an erase follows the last live line.
    const last = run.output.lastIndexOf(`pulling ${ref}`);
    expect(run.output.indexOf(ERASE, last)).toBeGreaterThan(last);
    // The result: the image is Present.
    const row = lines.find((l) => l.startsWith(`${ref} `));
    expect(row).toMatch(/\sPresent\s/);
    expect((await probe.status(ref))?.repoDigests).toContain(
      `${proxy.host}/${name}@${image.digest}`,
    );
  });

  it('the agent puts progress on the Pulling image in its NodeImageCache, logs it every 10 s and counts the bytes in flight', async () => {
    const plain = h.registries.plain!;
    const name = uniqueName('progress-agent');
    const image = runnableImage({
      marker: name,
      extraLayers: [fillerLayer({ bytes: AGENT_FILLER_BYTES, seed: name })],
    });
    await pushImage(plain, name, 'v1', image);
    clearLayerCache();
    const slow = await ThrottleProxy.start({ target: plain.host, bytesPerSecond: AGENT_RATE });
    const ref = `${slow.host}/${name}:v1`;
    pulled.push(ref);
    server = await KubeApiServer.start();
    server.applyManifests(join(REPO, 'deploy', 'namespace.yaml'));
    server.applyManifests(join(REPO, 'deploy', 'crds'));
    server.applyManifests(join(REPO, 'deploy', 'rbac.yaml'));
    const { kubeconfig } = server.serviceAccount('prepull-system', 'prepull-agent');
    const node = uniqueName('progress-node');
    server.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'progress' } },
      { apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: {} } },
    );
    const entries: CachedImage[] = [];
    const unwatch = server.store.watch({
      typeKey: 'prepull.dev/nodeimagecaches',
      deliver: (change) => {
        const cache = change.object as unknown as NodeImageCache;
        const entry = cache.status?.images.find((i) => i.image === ref);
        if (cache.metadata.name === node && entry !== undefined)
          entries.push(structuredClone(entry));
      },
    });
    try {
      agent = new AgentProcess(node, [
        '--kubeconfig',
        kubeconfig,
        '--node-name',
        node,
        '--runtime-endpoint',
        probe.endpoint,
        '--insecure-registry',
        slow.host,
        '--insecure-registry',
        plain.host,
        '--heartbeat-interval',
        '1',
        '--metrics-address',
        '127.0.0.1:0',
        '--log-level',
        'info',
      ]);
      await agent.waitForLog((l) => l.msg === 'agent started', 'agent started');
      const serving = await agent.waitForLog(
        (l) => l.msg === 'serving /metrics, /healthz, /readyz',
        'the metrics address',
      );
      const inFlight = async (): Promise<number> => {
        const body = await httpGet(`http://${String(serving.address)}/metrics`);
        const sample = body.split('\n').find((l) => l.startsWith('prepull_pull_bytes_in_flight '));
        return Number(sample?.split(' ')[1]);
      };
      server.apply({
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        metadata: { namespace: 'progress', name: 'big' },
        spec: { images: [{ image: ref }] },
      });

      // While it pulls: the gauge counts its bytes, and the status shows how far it has come.
      const bytesInFlight = await pollUntil(
        'bytes in flight on /metrics',
        async () => {
          const value = await inFlight();
          return value > 0 ? value : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      expect(bytesInFlight).toBeLessThanOrEqual(image.size);
      await pollUntil(
        'progress in the NodeImageCache',
        () => entries.some((e) => e.state === 'Pulling' && (e.progress?.bytes ?? 0) > 0),
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      const logged = await agent.waitForLog(
        (l) => l.msg === 'pull progress' && l.image === ref,
        'pull progress',
        60_000,
      );
      expect(logged.level).toBe('info');
      expect(logged.elapsedMs).toBeGreaterThanOrEqual(10_000);
      expect(logged.bytes).toBeGreaterThan(0);

      await pollUntil('the image Present', () => entries.some((e) => e.state === 'Present'), {
        timeoutMs: 120_000,
        intervalMs: 100,
      });
      await pollUntil(
        'no bytes in flight',
        async () => ((await inFlight()) === 0 ? true : undefined),
        {
          timeoutMs: 10_000,
          intervalMs: 100,
        },
      );
    } finally {
      unwatch();
      await slow.stop();
    }
    const figures = entries.flatMap((e) =>
      e.state === 'Pulling' && e.progress !== undefined ? [e.progress.bytes] : [],
    );
    // The heartbeat (1 s) wrote several figures during a ~15 s pull, each no smaller than the last.
    expect(new Set(figures).size).toBeGreaterThanOrEqual(3);
    expect(figures).toEqual([...figures].sort((a, b) => a - b));
    expect(entries.filter((e) => e.state !== 'Pulling' && e.progress !== undefined)).toEqual([]);
    agent.kill('SIGTERM');
    expect((await agent.exited(30_000)).code).toBe(0);
    expect(agent.otherStderr).toEqual([]);
  });
});
