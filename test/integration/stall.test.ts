// Stalled downloads (issue 21, item 4), on the harness containerd: two images whose blobs hang
// mid-download (the throttle proxy's hang mode: each connection forwards 256 KiB, then nothing,
// and stays open) hold both pull slots of a running `prepull sync --pull-concurrency 2
// --stall-timeout 10`; a healthy small image added then is reported Queued, and is Present
// within the stall period plus 10 s; the hung ones fail with ERR_PULL_STALLED after a retry; and
// containerd is left with no lease and no download in progress.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { pollUntil } from '../../src/testing/poll.ts';
import { fillerLayer, runnableImage } from '../harness/images.ts';
import { type HarnessInfo, pushImage, sharedHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import { SyncProcess, assertBuildFresh, writePrePull } from '../harness/sync-cli.ts';
import { ThrottleProxy } from '../harness/throttle-proxy.ts';

const STALL_SECONDS = 10;
const MiB = 1024 * 1024;

/** `ctr` against the harness containerd, in the namespace kubelet's images live in. */
function ctr(h: HarnessInfo, ...args: string[]): string {
  const { socket, namespace } = h.containerd!;
  return execFileSync('ctr', ['--address', socket, '--namespace', namespace, ...args], {
    encoding: 'utf8',
  });
}

/** The data lines of a `ctr … ls`-style table (its header dropped). */
const rows = (table: string): string[] =>
  table
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '');

describeIntegration('stalled downloads (real CLI, containerd, a hanging registry)', () => {
  let h: HarnessInfo;
  let probe: RuntimeProbe;
  let proxy: ThrottleProxy | undefined;
  let sync: SyncProcess | undefined;
  const pulled: string[] = [];

  beforeAll(() => {
    assertBuildFresh();
    h = sharedHarness();
    probe = runtimeProbe('containerd', h);
  });

  afterAll(async () => {
    sync?.kill('SIGKILL');
    await sync?.exited(10_000).catch(() => undefined);
    await proxy?.stop();
    for (const ref of pulled) await probe.remove(ref);
    probe.close();
  });

  it('two hung pulls are aborted after the stall timeout; a queued healthy image is Present within it plus 10 s', async () => {
    const plain = h.registries.plain!;
    const hungNames = [uniqueName('stall-a'), uniqueName('stall-b')];
    for (const name of hungNames) {
      const image = runnableImage({
        marker: name,
        extraLayers: [fillerLayer({ bytes: 4 * MiB, seed: name })],
      });
      await pushImage(plain, name, 'v1', image);
    }
    const healthyName = uniqueName('stall-healthy');
    await pushImage(plain, healthyName, 'v1', runnableImage({ marker: healthyName }));
    proxy = await ThrottleProxy.start({
      target: plain.host,
      bytesPerSecond: 1024 * MiB,
      hangAfterBytes: 256 * 1024,
    });
    const hung = hungNames.map((name) => `${proxy!.host}/${name}:v1`);
    const healthy = `${plain.host}/${healthyName}:v1`;
    pulled.push(...hung, healthy);
    // The sandbox image sync also requires is held before, so only these pulls compete.
    if (probe.sandboxImage !== undefined) await probe.pull(probe.sandboxImage);
    const dir = mkdtempSync(join(h.workDir, 'stall-'));
    writePrePull(dir, 'hung', hung, { backoffLimit: 1 });

    sync = new SyncProcess([
      '-f',
      dir,
      '--runtime-endpoint',
      probe.endpoint,
      '--insecure-registry',
      proxy.host,
      '--insecure-registry',
      plain.host,
      '--pull-concurrency',
      '2',
      '--stall-timeout',
      String(STALL_SECONDS),
    ]);
    const s = sync;
    for (const ref of hung) {
      await s.waitForLog(
        (l) => l.msg === 'image state' && l.image === ref && l.state === 'Pulling',
        `${ref} Pulling`,
      );
    }
    // Both slots are taken by hung pulls: the healthy image must wait for one.
    // sync watches its files only once it has started: write until it reads the new one.
    const addedAt = Date.now();
    await pollUntil(
      'sync reading the healthy PrePull',
      () => {
        if (s.logs.some((l) => l.msg === 'read PrePull files' && l.prePulls === 2)) return true;
        writePrePull(dir, 'healthy', [healthy]);
        return false;
      },
      { timeoutMs: 5000, intervalMs: 500 },
    );
    const queued = await s.waitForLog(
      (l) => l.msg === 'image state' && l.image === healthy && l.reason === 'Queued',
      `${healthy} Queued`,
    );
    expect(queued).toMatchObject({ state: 'Missing' });
    expect(queued.message).toMatch(/waiting for a pull slot: 2 pulls run at once/);
    await s.waitForLog(
      (l) => l.msg === 'image state' && l.image === healthy && l.state === 'Present',
      `${healthy} Present`,
      (STALL_SECONDS + 10) * 1000,
    );
    const presentAfterMs = Date.now() - addedAt;
    expect(presentAfterMs).toBeLessThanOrEqual((STALL_SECONDS + 10) * 1000);

    for (const ref of hung) {
      const failed = await s.waitForLog(
        (l) => l.msg === 'image state' && l.image === ref && l.state === 'Failed',
        `${ref} Failed`,
        (STALL_SECONDS * 2 + 10) * 1000,
      );
      expect(failed).toMatchObject({ reason: 'PullFailed', code: 'ERR_PULL_STALLED' });
      expect(failed.message).toMatch(/made no progress for 10s .*gave up after 2 attempts\)$/);
      // The first stall backed off and retried.
      expect(
        s.logs.some(
          (l) => l.image === ref && l.reason === 'BackOff' && l.code === 'ERR_PULL_STALLED',
        ),
      ).toBe(true);
    }
    s.kill('SIGTERM');
    const exit = await s.exited(15_000);
    expect(exit.code).toBe(0);
    expect(exit.otherStderr).toEqual([]);

    // Nothing of the aborted pulls is left in containerd: no lease, no download in progress, and
    // neither hung image.
    await pollUntil(
      'containerd without leases or active ingests',
      () =>
        rows(ctr(h, 'leases', 'ls')).length === 0 && rows(ctr(h, 'content', 'active')).length === 0,
      { timeoutMs: 10_000, intervalMs: 250 },
    ).catch(() => undefined);
    expect({
      leases: rows(ctr(h, 'leases', 'ls')),
      active: rows(ctr(h, 'content', 'active')),
    }).toEqual({ leases: [], active: [] });
    for (const ref of hung) expect(await probe.status(ref)).toBeUndefined();
    expect(await probe.status(healthy)).toBeDefined();
  });
});
