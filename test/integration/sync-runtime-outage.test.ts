// A runtime outage mid-run (issue 21 item 2), on the harness containerd and Docker Engine: a
// watching `prepull sync` (the built CLI, no schedule, backoffLimit 1) is pulling an image slowly
// through the throttle proxy when the runtime stops; it stays stopped far longer than two
// attempts with their backoff would take. No attempt is counted: the image never fails, the
// command says it waits (not ready, prepull_runtime_up 0), and once the runtime is back every
// image is Present within 30 s, the image the node held is still there, and deletions are seen
// again.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { clearLayerCache, fillerLayer, runnableImage } from '../harness/images.ts';
import { type Harness, pushImage, startHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type RuntimeKind, runtimeProbe } from '../harness/runtime-probe.ts';
import { type LogLine, SyncProcess, assertBuildFresh, writePrePull } from '../harness/sync-cli.ts';
import { ThrottleProxy } from '../harness/throttle-proxy.ts';

const MiB = 1024 * 1024;
/** One 8 MiB layer at 1 MiB/s: a pull of about 8 s, long enough to stop containerd in it. */
const SLOW_LAYER_BYTES = 8 * MiB;
const SLOW_RATE = 1 * MiB;
/**
 * How long containerd stays down. With backoffLimit 1 the old engine failed the image for good
 * about 2 s after the first refused attempt; 40 s is twenty times that, and longer than the
 * 30 s a never-read image waited before its first attempt. (The acceptance's 5 minutes differ
 * only in how many probes run: the engine asks the runtime every 5 s at most, and sooner when
 * its event stream is re-established, whatever the outage's length; the unit tests run a
 * 5-minute outage on the manual clock.)
 */
const OUTAGE_MS = 40_000;
/** The acceptance: every image Present within 30 s of the runtime's return. */
const RETURN_BOUND_MS = 30_000;

const RUNTIMES: RuntimeKind[] = ['containerd', 'docker'];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function get(address: string, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://${address}${path}`);
  return { status: response.status, body: await response.text() };
}

const present =
  (ref: string) =>
  (l: LogLine): boolean =>
    l.msg === 'image state' && l.image === ref && l.state === 'Present' && l.reason === 'Verified';

describeIntegration(
  'prepull sync through a runtime outage (real CLI, private containerd and Docker Engine)',
  () => {
    let harness: Harness;
    let proxy: ThrottleProxy | undefined;
    let sync: SyncProcess | undefined;

    beforeAll(async () => {
      assertBuildFresh();
      harness = await startHarness({ registries: ['plain'] });
    });

    afterAll(async () => {
      sync?.kill('SIGKILL');
      await sync?.exited(10_000).catch(() => undefined);
      await proxy?.stop();
      clearLayerCache();
      await harness.stop();
    });

    it.each(RUNTIMES)(
      'on %s: counts no attempt while the runtime is down, and has every image Present within 30 s of its return',
      async (kind) => {
        const info = harness.info;
        const plain = info.registries.plain!;
        const daemon = kind === 'containerd' ? harness.containerd! : harness.docker!;
        const dir = mkdtempSync(join(info.workDir, `runtime-outage-${kind}-`));
        const name = uniqueName(`runtime-outage-${kind}`);
        const held = runnableImage({ marker: `${name}-held` });
        const slow = runnableImage({
          marker: `${name}-slow`,
          extraLayers: [fillerLayer({ bytes: SLOW_LAYER_BYTES, seed: `${name}-slow` })],
        });
        await pushImage(plain, `${name}-held`, 'v1', held);
        await pushImage(plain, `${name}-slow`, 'v1', slow);
        await proxy?.stop(); // the previous case's
        proxy = await ThrottleProxy.start({ target: plain.host, bytesPerSecond: SLOW_RATE });
        const heldRef = `${plain.host}/${name}-held:v1`;
        const slowRef = `${proxy.host}/${name}-slow:v1`;
        // The node holds one image (and the sandbox image) before prepull starts.
        let probe = runtimeProbe(kind, info);
        if (probe.sandboxImage !== undefined) await probe.pull(probe.sandboxImage);
        await probe.pull(heldRef);
        const heldId = (await probe.status(heldRef))?.id;
        expect(heldId).toBeDefined();
        probe.close();
        const file = writePrePull(dir, name, [heldRef, slowRef], { backoffLimit: 1 });

        sync = new SyncProcess([
          '-f',
          file,
          '--runtime-endpoint',
          probe.endpoint,
          '--insecure-registry',
          plain.host,
          '--insecure-registry',
          proxy.host,
          '--metrics-address',
          '127.0.0.1:0',
        ]);
        const address = String(
          (
            await sync.waitForLog(
              (l) => l.msg === 'serving /metrics, /healthz, /readyz',
              'the telemetry address',
            )
          ).address,
        );
        await sync.waitForLog(present(heldRef), `${heldRef} Present`);
        await sync.waitForLog(
          (l) => l.msg === 'image state' && l.image === slowRef && l.state === 'Pulling',
          `${slowRef} Pulling`,
        );

        // The runtime stops mid-pull, as a restart by systemd would (SIGTERM), and stays down.
        await daemon.stop();
        const down = await sync.waitForLog(
          (l) =>
            l.msg ===
            'the container runtime does not answer; pulls wait for it (no attempt is counted)',
          'the outage noticed',
        );
        expect(down).toMatchObject({ level: 'warn' });
        await sleep(OUTAGE_MS);
        const during = sync.logs.slice();
        expect(during.filter((l) => l.image === slowRef && l.state === 'Failed')).toEqual([]);
        expect(during.filter((l) => l.msg === 'pull failed')).toEqual([]);
        expect(
          during.filter((l) => l.image === slowRef && l.state === 'Missing').at(-1),
        ).toMatchObject({
          reason: 'RuntimeUnavailable',
          code: 'ERR_RUNTIME_UNAVAILABLE',
        });
        expect((await get(address, '/readyz')).status).toBe(503);
        expect((await get(address, '/metrics')).body).toMatch(/^prepull_runtime_up 0$/m);

        await daemon.start();
        const returned = Date.now();
        await sync.waitForLog(
          present(slowRef),
          `${slowRef} Present after the return`,
          RETURN_BOUND_MS,
        );
        const tookMs = Date.now() - returned;
        expect(tookMs).toBeLessThanOrEqual(RETURN_BOUND_MS);
        expect(
          sync.logs.some(
            (l) => l.msg === 'the container runtime answers again; re-listing and resuming',
          ),
        ).toBe(true);
        expect((await get(address, '/metrics')).body).toMatch(/^prepull_runtime_up 1$/m);
        expect((await get(address, '/readyz')).status).toBe(200);

        // Nothing the node held was lost: the held image is the same image, still Present.
        probe = runtimeProbe(kind, info);
        try {
          expect((await probe.status(heldRef))?.id).toBe(heldId);
          expect((await probe.status(slowRef))?.repoDigests).toContain(
            `${proxy.host}/${name}-slow@${slow.digest}`,
          );
          // The deletion watch was re-established: a removal now is seen and repaired.
          const before = sync.logs.length;
          await probe.remove(heldRef);
          await sync.waitForLog(
            (l) => sync!.logs.indexOf(l) >= before && present(heldRef)(l),
            `${heldRef} pulled back after a removal`,
          );
          expect(
            sync.logs
              .slice(before)
              .some((l) => l.msg === 'image removed from the node; pulling it back'),
          ).toBe(true);
        } finally {
          probe.close();
        }
        expect(sync.otherStderr).toEqual([]);
        sync.kill('SIGTERM');
        expect((await sync.exited(20_000)).code).toBe(0);
      },
      240_000,
    );
  },
);
