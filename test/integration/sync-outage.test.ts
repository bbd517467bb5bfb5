// Acceptance of `prepull sync` (issue 6) through a registry outage, on real containerd and
// Docker Engine: a private harness (the registry is stopped and started), one `prepull sync`
// left running with a per-second schedule, so it retries, gives up with the reason, and
// recovers by itself once the registry is back.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { clearLayerCache, runnableImage } from '../harness/images.ts';
import { type Harness, pushImage, startHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type RuntimeKind, runtimeProbe } from '../harness/runtime-probe.ts';
import { SyncProcess, assertBuildFresh, writePrePull } from '../harness/sync-cli.ts';

const RUNTIMES: RuntimeKind[] = ['containerd', 'docker'];

/**
 * Re-verification every 4 s (node-cron's seconds field). A tick gives a failed image fresh
 * attempts, so the period must exceed the whole retry sequence — one retry after 1.6–2.4 s
 * with backoffLimit 1 — or the image would never be seen giving up.
 */
const SCHEDULE = '*/4 * * * * *';

describeIntegration('prepull sync through a registry outage (real CLI, private harness)', () => {
  let harness: Harness;

  beforeAll(async () => {
    assertBuildFresh();
    harness = await startHarness({ registries: ['plain'] });
  });

  afterAll(async () => {
    clearLayerCache();
    await harness.stop();
  });

  describe.each(RUNTIMES)('on %s', (kind) => {
    it('with the registry down, pulls retry, fail with the reason, and recover once it returns', async () => {
      const info = harness.info;
      const plain = info.registries.plain!;
      const registry = harness.registry('plain');
      const probe = runtimeProbe(kind, info);
      const dir = mkdtempSync(join(info.workDir, `sync-outage-${kind}-`));
      const name = uniqueName(`outage-${kind}`);
      const image = runnableImage({ marker: name });
      await pushImage(plain, name, 'v1', image);
      const ref = `${plain.host}/${name}:v1`;
      // The runtime's sandbox image is required too: have it before the outage, so only the
      // image under test is missing.
      if (probe.sandboxImage !== undefined) await probe.pull(probe.sandboxImage);
      const file = writePrePull(dir, name, [ref], { backoffLimit: 1, schedule: SCHEDULE });

      await registry.stop({ kill: true });
      const sync = new SyncProcess([
        '-f',
        file,
        '--runtime-endpoint',
        probe.endpoint,
        '--insecure-registry',
        plain.host,
      ]);
      try {
        const failed = await sync.waitForLog(
          (l) => l.msg === 'image state' && l.image === ref && l.state === 'Failed',
          `${ref} Failed`,
          20_000,
        );
        expect(failed).toMatchObject({ reason: 'PullFailed', code: 'ERR_REGISTRY_UNREACHABLE' });
        expect(failed.message).toMatch(/could not reach the registry.*gave up after 2 attempts\)$/);
        // Retried before giving up: attempts 1 and 2 were logged, with the back-off between them.
        const attempts = sync.logs
          .slice(0, sync.logs.indexOf(failed))
          .filter((l) => l.msg === 'pull failed' && l.image === ref)
          .map((l) => l.attempt);
        expect(attempts.slice(-2)).toEqual([1, 2]);
        expect(
          sync.logs.some((l) => l.image === ref && l.state === 'Missing' && l.reason === 'BackOff'),
        ).toBe(true);
        // The table printed when it settled says why.
        await sync.waitForStdout('images present on');
        expect(sync.stdout).toMatch(
          new RegExp(
            `${ref.replace(/[.:/]/g, '\\$&')}\\s+Failed\\s.*\\(ERR_REGISTRY_UNREACHABLE\\)`,
          ),
        );
        expect(await probe.status(ref)).toBeUndefined();

        await registry.start();
        const present = await sync.waitForLog(
          (l) =>
            l.msg === 'image state' &&
            l.image === ref &&
            l.state === 'Present' &&
            l.reason === 'Verified',
          `${ref} Present and Verified after the registry returned`,
          20_000,
        );
        expect(present.digest).toBe(image.digest);
        expect((await probe.status(ref))?.repoDigests).toContain(
          `${plain.host}/${name}@${image.digest}`,
        );
      } finally {
        sync.kill('SIGTERM');
        probe.close();
        await registry.start();
      }
      expect((await sync.exited(10_000)).code).toBe(0);
    });
  });
});
