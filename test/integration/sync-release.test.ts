// Release on real runtimes (ADR 0014, "Release (agent)"), through the real `prepull sync` CLI
// running as a daemon: an image dropped from a PrePull file is unpinned within 5 s (containerd's
// pin label, read with `ctr`), and with cleanup Remove it is removed — but only if prepull pulled
// it and no container uses it. What the runtime holds is checked with other clients (the
// harness's kubelet-like CRI client, dockerode), never with prepull's adapters.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { pollUntil } from '../../src/testing/poll.ts';
import { KubeletCri } from '../harness/cri.ts';
import { clearLayerCache, runnableImage } from '../harness/images.ts';
import { type HarnessInfo, pushImage, sharedHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type RuntimeKind, type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import { SyncProcess, assertBuildFresh, writePrePull } from '../harness/sync-cli.ts';

const NODE = 'sync-release-test';
const WITHIN_MS = 5000;

describeIntegration('prepull sync releases what its files drop (real runtimes)', () => {
  let h: HarnessInfo;

  beforeAll(() => {
    assertBuildFresh();
    h = sharedHarness();
  });

  afterAll(() => {
    clearLayerCache();
  });

  describe.each(['containerd', 'docker'] as RuntimeKind[])('on %s', (kind) => {
    let probe: RuntimeProbe;
    let dir: string;

    beforeAll(() => {
      probe = runtimeProbe(kind, h);
      dir = mkdtempSync(join(h.workDir, `sync-release-${kind}-`));
    });

    afterAll(() => {
      probe.close();
    });

    const flags = (): string[] => [
      '--runtime-endpoint',
      probe.endpoint,
      '--insecure-registry',
      h.registries.plain!.host,
      '--node-name',
      NODE,
    ];

    /** Pushes runnable images to the plain registry; their references. */
    async function publish(prefix: string, count: number): Promise<string[]> {
      const plain = h.registries.plain!;
      const refs: string[] = [];
      for (let i = 0; i < count; i++) {
        const name = uniqueName(`${prefix}-${i}-${kind}`);
        await pushImage(plain, name, 'v1', runnableImage({ marker: name }));
        refs.push(`${plain.host}/${name}:v1`);
      }
      return refs;
    }

    /** Another client makes a container from `ref` (not started); resolves to its removal. */
    async function useImage(ref: string): Promise<() => Promise<void>> {
      if (kind === 'docker') {
        const docker = new Docker({ socketPath: h.docker!.socket });
        const container = await docker.createContainer({ Image: ref, Cmd: ['/bin/true'] });
        return () => container.remove({ force: true }) as Promise<void>;
      }
      const cri = new KubeletCri(h.containerd!.socket);
      const pod = await cri.startPod({
        image: ref,
        name: uniqueName('release-user'),
        workDir: h.workDir,
        cgroupParent: h.containerd!.cgroupParent,
        start: false,
      });
      return async () => {
        try {
          await pod.remove();
        } finally {
          cri.close();
        }
      };
    }

    async function waitFor(what: string, check: () => Promise<boolean>): Promise<number> {
      const started = Date.now();
      await pollUntil(what, async () => ((await check()) ? true : undefined), {
        timeoutMs: WITHIN_MS,
        intervalMs: 50,
      });
      return Date.now() - started;
    }

    if (kind === 'containerd') {
      it('unpins an image dropped from a file within 5 s, keeps it, and keeps the rest pinned', async () => {
        const [kept, dropped] = await publish('unpin', 2);
        const name = uniqueName('unpin');
        const file = writePrePull(dir, name, [kept!, dropped!]);
        const sync = new SyncProcess(['-f', file, ...flags()]);
        try {
          await sync.waitForStdout(`images present on ${NODE}`);
          expect(await probe.pinnedLabel(dropped!)).toBe(true);
          writePrePull(dir, name, [kept!]);
          const tookMs = await waitFor(`${dropped} unpinned`, async () => {
            return (await probe.pinnedLabel(dropped!)) === false;
          });
          expect(tookMs).toBeLessThan(WITHIN_MS);
          expect(await probe.status(dropped!)).toBeDefined();
          expect(await probe.pinnedLabel(kept!)).toBe(true);
          await sync.waitForStdout(`released: ${dropped} Unpinned`);
          await sync.waitForLog(
            (l) =>
              l.msg === 'released an image no longer required' &&
              l.image === dropped &&
              l.action === 'Unpinned',
            'about the release',
          );
        } finally {
          sync.kill('SIGTERM');
        }
        expect((await sync.exited(10_000)).code).toBe(0);
      });
    }

    it('with cleanup Remove, removes what it pulled within 5 s — never one a container uses, never one it did not pull', async () => {
      const [pulled, used, before, stays] = await publish('remove', 4);
      await probe.pull(before!); // on the node before prepull
      const name = uniqueName('remove');
      const file = writePrePull(dir, name, [pulled!, used!, before!, stays!], {
        cleanup: 'Remove',
      });
      const sync = new SyncProcess(['-f', file, '--cleanup', 'Remove', ...flags()]);
      let removeContainer: (() => Promise<void>) | undefined;
      try {
        await sync.waitForStdout(`images present on ${NODE}`);
        removeContainer = await useImage(used!);
        writePrePull(dir, name, [stays!], { cleanup: 'Remove' });
        const tookMs = await waitFor(
          `${pulled} removed`,
          async () => (await probe.status(pulled!)) === undefined,
        );
        expect(tookMs).toBeLessThan(WITHIN_MS);
        await sync.waitForStdout(`released: ${pulled} Removed`);
        await sync.waitForStdout(`released: ${used} `);
        await sync.waitForStdout(`released: ${before} `);
        // A container uses it: still there (unpinned, where the runtime pins).
        expect(await probe.status(used!)).toBeDefined();
        expect(sync.stdout).toContain('not removed: a container uses it');
        // On the node before prepull: still there.
        expect(await probe.status(before!)).toBeDefined();
        expect(sync.stdout).toContain('not removed: prepull did not pull it');
        expect(await probe.status(stays!)).toBeDefined();
        if (kind === 'containerd') {
          expect(sync.stdout).toContain(`released: ${used} Unpinned`);
          expect(await probe.pinnedLabel(used!)).toBe(false);
          expect(await probe.pinnedLabel(before!)).toBe(false);
          expect(await probe.pinnedLabel(stays!)).toBe(true);
        } else {
          expect(sync.stdout).toContain(`released: ${used} Kept`);
          expect(sync.stdout).toContain(`released: ${before} Kept`);
        }
      } finally {
        sync.kill('SIGTERM');
        await removeContainer?.();
      }
      expect((await sync.exited(10_000)).code).toBe(0);
    });
  });
});
