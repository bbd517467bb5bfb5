// `npm run demo`: prepull's main job, end to end, on this machine, with nothing from the internet.
// It starts a real registry and a real containerd (the test harness, in a temp dir), pushes three
// images, writes a PrePull, runs `prepull sync --once` against containerd and shows its table and
// metrics, then switches the registry off and starts a container from a pre-pulled image the way
// kubelet starts a Pod with imagePullPolicy: Never. Everything is removed at the end.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pollUntil } from '../src/testing/poll.ts';
import { KubeletCri } from '../test/harness/cri.ts';
import { fillerLayer, runnableImage } from '../test/harness/images.ts';
import {
  type Harness,
  ensurePrerequisites,
  pushImage,
  startHarness,
} from '../test/harness/index.ts';
import { freePort } from '../test/harness/registry.ts';

const PREPULL = fileURLToPath(new URL('../bin/prepull.js', import.meta.url));
const bold = (text: string): string => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);
const say = (text = ''): void => {
  process.stdout.write(`${text}\n`);
};
const step = (n: number, text: string): void => {
  say();
  say(bold(`${n}. ${text}`));
};

/** Runs the prepull CLI; resolves with its exit code and stdout (logs go to `logFile`'s fd). */
function prepull(
  args: string[],
  logs: string[],
): { done: Promise<{ code: number | null; stdout: string }>; kill: () => void } {
  const child = spawn(process.execPath, [PREPULL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => logs.push(chunk));
  const done = new Promise<{ code: number | null; stdout: string }>((resolve) => {
    child.on('exit', (code) => {
      resolve({ code, stdout });
    });
  });
  return { done, kill: () => child.kill('SIGTERM') };
}

async function scrape(port: number, wanted: RegExp, timeoutMs = 30_000): Promise<string> {
  return pollUntil(
    `metrics showing ${wanted}`,
    async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return wanted.test(text) ? text : undefined;
    },
    // A failed fetch: not listening yet.
    { timeoutMs, intervalMs: 200, retryErrors: true },
  );
}

async function demo(harness: Harness): Promise<void> {
  const registry = harness.registry('plain').endpoint;
  const containerd = harness.info.containerd!;
  const host = registry.host;

  step(2, `Pushing three images to the registry at ${registry.url}`);
  const web = runnableImage({
    marker: 'Hello from shop/web 1.4.2, started with imagePullPolicy: Never.',
  });
  const worker = runnableImage({
    marker: 'shop/worker',
    extraLayers: [fillerLayer({ bytes: 40_000_000, seed: 'demo-worker' })],
  });
  const db = runnableImage({
    marker: 'shop/db',
    extraLayers: [fillerLayer({ bytes: 15_000_000, seed: 'demo-db' })],
  });
  await pushImage(registry, 'shop/web', '1.4.2', web);
  await pushImage(registry, 'shop/worker', '2.0', worker);
  const { digest: dbDigest } = await pushImage(registry, 'shop/db', undefined, db);
  say(`   ${host}/shop/web:1.4.2      (1 MB, busybox: prints a greeting)`);
  say(`   ${host}/shop/worker:2.0     (41 MB)`);
  say(`   ${host}/shop/db@${dbDigest.slice(0, 19)}…  (16 MB, by digest)`);

  const prePullFile = join(harness.info.workDir, 'shop.yaml');
  writeFileSync(
    prePullFile,
    [
      'apiVersion: prepull.dev/v1alpha1',
      'kind: PrePull',
      'metadata: {name: shop, namespace: shop}',
      'spec:',
      '  images:',
      `    - image: ${host}/shop/web:1.4.2`,
      `    - image: ${host}/shop/worker:2.0`,
      `    - image: ${host}/shop/db@${dbDigest}`,
      '  nodeSelector: {node-role.kubernetes.io/worker: ""}',
      '  pin: true',
      '',
    ].join('\n'),
  );
  step(3, `A PrePull (${prePullFile}):`);
  say(
    `   images: shop/web:1.4.2, shop/worker:2.0, shop/db@sha256:…; nodeSelector: worker; pin: true`,
  );

  const common = [
    'sync',
    '-f',
    prePullFile,
    '--node-name',
    'demo-node',
    '--node-labels',
    'node-role.kubernetes.io/worker=',
    '--runtime-endpoint',
    `unix://${containerd.socket}`,
    '--insecure-registry',
    host,
  ];
  step(4, 'prepull sync --once  (pull, verify each digest against the registry, pin)');
  const logs: string[] = [];
  const started = Date.now();
  const once = await prepull([...common, '--once'], logs).done;
  say(once.stdout.replace(/^/gm, '   ').trimEnd());
  say(`   exit code ${once.code} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (once.code !== 0) {
    say(logs.join('').split('\n').slice(-15).join('\n'));
    throw new Error('prepull sync --once did not bring every image to Present');
  }
  say('   (the sandbox image containerd is configured with is required on every node too)');

  step(5, 'Without --once, prepull keeps watching; a few of its Prometheus metrics:');
  const port = await freePort();
  const watching = prepull([...common, '--metrics-address', `127.0.0.1:${port}`], []);
  const metrics = await scrape(port, /prepull_images\{state="Present"\} 4/);
  watching.kill();
  await watching.done;
  for (const line of metrics.split('\n')) {
    if (/^prepull_(images\{|images_required|images_held_bytes|pulls_total|last_sync)/.test(line))
      say(`   ${line}`);
  }

  step(
    6,
    'Switching the registry off, then starting a Pod the way kubelet does with imagePullPolicy: Never',
  );
  await harness.registry('plain').stop();
  say(`   registry stopped: ${registry.url} no longer answers`);
  const cri = new KubeletCri(containerd.socket);
  try {
    const present = await cri.imageStatus(`${host}/shop/web:1.4.2`);
    if (present === undefined) throw new Error('the pre-pulled image is not on the node');
    say(`   CRI ImageStatus, kubelet's presence check: present (${present.id.slice(0, 19)}…)`);
    const pod = await cri.runPod({
      image: `${host}/shop/web:1.4.2`,
      name: 'web-0',
      workDir: harness.info.workDir,
      cgroupParent: containerd.cgroupParent,
    });
    say(`   RunPodSandbox → CreateContainer → StartContainer: exit ${pod.exitCode}, output:`);
    say(`     ${pod.output.trim()}`);
  } finally {
    cri.close();
  }
}

async function main(): Promise<number> {
  say(bold('prepull demo: images on the node before any Pod needs them'));
  step(1, 'Starting a real OCI registry and a real containerd (CRI) in a temp dir');
  const availability = ensurePrerequisites((line) => {
    say(`   ${line}`);
  });
  if (!availability.ok) {
    say(`   cannot run the demo here: ${availability.reason}`);
    return 1;
  }
  const harness = await startHarness({ registries: ['plain'], docker: false });
  say(
    `   registry ${harness.registry('plain').endpoint.url}, containerd ${harness.info.containerd!.socket}`,
  );
  try {
    await demo(harness);
    step(7, 'Cleaning up');
    return 0;
  } finally {
    await harness.stop();
    say('   stopped containerd and the registry; removed every file, mount and process they left');
  }
}

process.exitCode = await main();
