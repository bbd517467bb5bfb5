// Acceptance of `prepull sync` (issue 6) under signals, on real containerd and Docker Engine:
// SIGTERM in the middle of a ~300 MB pull, and kill -9 followed by a restart. The real CLI runs
// as a subprocess; its logs say when a pull is under way, and another client of the runtime
// says what the runtime holds afterwards.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { SyncResult } from '../../src/cli/output.ts';
import { clearLayerCache, fillerLayer, runnableImage } from '../harness/images.ts';
import { type HarnessInfo, pushImage, sharedHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type RuntimeKind, type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import {
  SyncProcess,
  assertBuildFresh,
  runSync,
  stateLines,
  writePrePull,
} from '../harness/sync-cli.ts';

const RUNTIMES: RuntimeKind[] = ['containerd', 'docker'];

/** ~300 MB in 7 layers (busybox, a marker, five 60 MiB fillers): a pull that takes a while. */
const LARGE_FILLERS = 5;
const LARGE_FILLER_BYTES = 60 * 1024 * 1024;

function parseResult(stdout: string): SyncResult {
  return JSON.parse(stdout) as SyncResult;
}

describeIntegration('prepull sync under signals (real CLI, real runtimes)', () => {
  let h: HarnessInfo;
  /** Pushed once and pulled by both runtimes; each case first makes sure it is absent. */
  let large: { repo: string; ref: string; digest: string };

  beforeAll(async () => {
    assertBuildFresh();
    h = sharedHarness();
    const plain = h.registries.plain!;
    const name = uniqueName('sync-large');
    const image = runnableImage({
      marker: name,
      extraLayers: Array.from({ length: LARGE_FILLERS }, (_, i) =>
        fillerLayer({ bytes: LARGE_FILLER_BYTES, seed: `sync-large-${i}` }),
      ),
    });
    const { digest } = await pushImage(plain, name, 'v1', image);
    large = { repo: `${plain.host}/${name}`, ref: `${plain.host}/${name}:v1`, digest };
  });

  afterAll(() => {
    clearLayerCache(); // the large image holds hundreds of MB
  });

  describe.each(RUNTIMES)('on %s', (kind) => {
    let probe: RuntimeProbe;
    let dir: string;

    beforeAll(() => {
      probe = runtimeProbe(kind, h);
      dir = mkdtempSync(join(h.workDir, `sync-signals-${kind}-`));
    });

    afterAll(async () => {
      await probe.remove(large.ref);
      probe.close();
    });

    const flags = (): string[] => [
      '--runtime-endpoint',
      probe.endpoint,
      '--insecure-registry',
      h.registries.plain!.host,
    ];

    it('SIGTERM mid-pull exits within 5 s (1 under --once) and leaves nothing half-present', async () => {
      await probe.remove(large.ref);
      const file = writePrePull(dir, uniqueName('sigterm'), [large.ref]);

      const sync = new SyncProcess(['-f', file, '--once', '-o', 'json', ...flags()]);
      await sync.waitForLog(
        (l) => l.msg === 'image state' && l.image === large.ref && l.state === 'Pulling',
        `${large.ref} Pulling`,
      );
      const signalledAt = Date.now();
      sync.kill('SIGTERM');
      const exit = await sync.exited(10_000);
      const exitMs = Date.now() - signalledAt;

      expect(exitMs).toBeLessThan(5000);
      // docs/sync.md: with --once, an interrupted run exits 1 and prints the partial result.
      expect([exit.code, exit.signal]).toEqual([1, null]);
      expect(exit.otherStderr).toEqual([]);
      const result = parseResult(exit.stdout);
      expect(result.ok).toBe(false);
      const report = result.images.find((i) => i.image === large.ref);
      expect(report?.state).not.toBe('Present');
      expect(
        exit.logs.some(
          (l) => l.msg === 'interrupted before every image settled' && l.signal === 'SIGTERM',
        ),
      ).toBe(true);
      // The runtime holds the whole image or none of it: never a partial one.
      const held = await probe.status(large.ref);
      if (held !== undefined) expect(held.repoDigests).toContain(`${large.repo}@${large.digest}`);
    });

    it('after kill -9 mid-run, a restart converges without pulling present images again', async () => {
      await probe.remove(large.ref);
      const plain = h.registries.plain!;
      const name = uniqueName(`restart-${kind}`);
      const small: string[] = [];
      for (const n of [1, 2, 3]) {
        await pushImage(
          plain,
          `${name}/small-${n}`,
          'v1',
          runnableImage({ marker: `${name} ${n}` }),
        );
        small.push(`${plain.host}/${name}/small-${n}:v1`);
      }
      // The large image first: it holds one of the two pull slots while the small ones go by.
      const images = [large.ref, ...small];
      const file = writePrePull(dir, name, images);

      const first = new SyncProcess(['-f', file, ...flags()]);
      await first.waitForLog(
        (l) => l.msg === 'image state' && l.image === small[0] && l.state === 'Present',
        `${small[0]} Present`,
      );
      first.kill('SIGKILL');
      const killed = await first.exited(10_000);
      expect(killed.signal).toBe('SIGKILL');
      const presentAtKill = new Set(
        killed.logs
          .filter((l) => l.msg === 'image state' && l.state === 'Present')
          .map((l) => l.image),
      );
      expect(presentAtKill.has(small[0])).toBe(true);
      expect(presentAtKill.has(large.ref)).toBe(false); // killed mid-run indeed

      const second = await runSync(['-f', file, '--once', '-o', 'json', ...flags()]);

      expect(second.code).toBe(0);
      const result = parseResult(second.stdout);
      expect(result.images.map((i) => i.state)).toEqual(result.images.map(() => 'Present'));
      expect(result.images.find((i) => i.image === large.ref)?.digest).toBe(large.digest);
      const pulledAgain = images.filter(
        (ref) => presentAtKill.has(ref) && stateLines(second.logs, ref, 'Pulling').length > 0,
      );
      expect(pulledAgain).toEqual([]);
      // Only what was missing was pulled, each once.
      for (const ref of images.filter((r) => !presentAtKill.has(r))) {
        expect(stateLines(second.logs, ref, 'Pulling').length).toBeLessThanOrEqual(1);
      }
    });
  });
});
