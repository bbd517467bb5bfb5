// The pin column tells the truth on real containerd (issue 21 item 6): a pin another client takes
// off (`ctr images label IMG io.cri-containerd.pinned=`, as an operator would) while a running
// `prepull sync` requires the image is put back within seconds — the /images/update event, not a
// timer — logged, and shown as `yes (label)` where containerd's CRI does not report pins (1.6.20).
// A pin another client set on the tag's record alone is completed, not taken over: it stays at
// release.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pollUntil } from '../../src/testing/poll.ts';
import { clearLayerCache, runnableImage } from '../harness/images.ts';
import { type HarnessInfo, pushImage, sharedHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import { SyncProcess, assertBuildFresh, writePrePull } from '../harness/sync-cli.ts';

const run = promisify(execFile);
const NODE = 'sync-pins-test';
const WITHIN_MS = 5000;

describeIntegration('prepull sync keeps its pins (real containerd)', () => {
  let h: HarnessInfo;
  let probe: RuntimeProbe;
  let dir: string;

  beforeAll(() => {
    assertBuildFresh();
    h = sharedHarness();
    probe = runtimeProbe('containerd', h);
    dir = mkdtempSync(join(h.workDir, 'sync-pins-'));
  });

  afterAll(() => {
    probe.close();
    clearLayerCache();
  });

  /** What the operator in the issue ran: the label off the tag's record only. */
  async function unpinWithCtr(ref: string): Promise<void> {
    await labelWithCtr(ref, '');
  }

  /** `ctr images label REF io.cri-containerd.pinned=VALUE`: the record `ref` names only. */
  async function labelWithCtr(ref: string, value: string): Promise<void> {
    const containerd = h.containerd!;
    await run('ctr', [
      '--address',
      containerd.socket,
      '--namespace',
      containerd.namespace,
      'images',
      'label',
      ref,
      `io.cri-containerd.pinned=${value}`,
    ]);
  }

  describe('a pin taken off behind its back', () => {
    it('is put back within 5 s while the image is required, and logged', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName('pins');
      await pushImage(plain, name, 'v1', runnableImage({ marker: name }));
      const ref = `${plain.host}/${name}:v1`;
      const file = writePrePull(dir, name, [ref]);
      const sync = new SyncProcess([
        '-f',
        file,
        '--runtime-endpoint',
        probe.endpoint,
        '--insecure-registry',
        plain.host,
        '--node-name',
        NODE,
      ]);
      try {
        await sync.waitForStdout(`images present on ${NODE}`);
        expect(await probe.pinnedLabel(ref)).toBe(true);
        // Debian's containerd 1.6.20: CRI reports pinned=false, only the label knows the pin.
        const row = sync.stdout.split('\n').find((line) => line.startsWith(ref));
        expect(row).toMatch(/\byes \(label\)/);

        // No look at the label in between: prepull may have put it back already.
        await unpinWithCtr(ref);
        const started = Date.now();
        await pollUntil(
          `${ref} pinned again`,
          async () => ((await probe.pinnedLabel(ref)) === true ? true : undefined),
          { timeoutMs: WITHIN_MS, intervalMs: 50 },
        );
        expect(Date.now() - started).toBeLessThan(WITHIN_MS);
        await sync.waitForLog(
          (l) => l.msg === 'pin removed behind prepull; pinning again' && l.image === ref,
          'about the restored pin',
        );
      } finally {
        sync.kill('SIGTERM');
      }
      expect((await sync.exited(10_000)).code).toBe(0);
    });

    it('is completed but never taken off where another client pinned the tag record only', async () => {
      const plain = h.registries.plain!;
      const refs: string[] = [];
      for (const tag of ['kept', 'theirs']) {
        const name = uniqueName(`pins-${tag}`);
        await pushImage(plain, name, 'v1', runnableImage({ marker: name }));
        refs.push(`${plain.host}/${name}:v1`);
      }
      const [kept, theirs] = refs as [string, string];
      // On the node before prepull, pinned by an operator on its tag's record alone.
      await probe.pull(theirs);
      await labelWithCtr(theirs, 'pinned');
      const digestRef = (await probe.status(theirs))?.repoDigests[0];
      expect(digestRef).toBeDefined();
      expect(await probe.pinnedLabel(digestRef!)).toBe(false);
      const name = uniqueName('pins-partial');
      const file = writePrePull(dir, name, [kept, theirs]);
      const sync = new SyncProcess([
        '-f',
        file,
        '--runtime-endpoint',
        probe.endpoint,
        '--insecure-registry',
        plain.host,
        '--node-name',
        NODE,
      ]);
      try {
        await sync.waitForStdout(`images present on ${NODE}`);
        // Completed on every record, as the operator meant; not counted as a restore.
        expect(await probe.pinnedLabel(theirs)).toBe(true);
        expect(await probe.pinnedLabel(digestRef!)).toBe(true);
        expect(sync.logs.some((l) => l.msg === 'pin removed behind prepull; pinning again')).toBe(
          false,
        );
        // Dropped: the pin is not prepull's, so it stays.
        writePrePull(dir, name, [kept]);
        await sync.waitForStdout(`released: ${theirs} Kept`);
        expect(await probe.pinnedLabel(theirs)).toBe(true);
        expect(await probe.pinnedLabel(digestRef!)).toBe(true);
      } finally {
        sync.kill('SIGTERM');
      }
      expect((await sync.exited(10_000)).code).toBe(0);
    });
  });
});
