// Hostile input beside a good PrePull (issue 21 item 5), on real containerd through the built
// CLI: a 50 MB file, a PrePull of 100 000 aliases and a FIFO named *.yaml are each refused with
// their own error, and the good PrePull in the same directory is still reconciled. How fast and
// at what memory is measured by hand and written in docs/api.md, not asserted here.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SyncResult } from '../../src/cli/output.ts';
import { clearLayerCache, runnableImage } from '../harness/images.ts';
import { type HarnessInfo, pushImage, sharedHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import { assertBuildFresh, runSync, writePrePull } from '../harness/sync-cli.ts';

describeIntegration(
  'prepull sync refuses hostile files and reconciles the rest (containerd)',
  () => {
    let h: HarnessInfo;
    let probe: RuntimeProbe;

    beforeAll(() => {
      assertBuildFresh();
      h = sharedHarness();
      probe = runtimeProbe('containerd', h);
    });

    afterAll(() => {
      probe.close();
      clearLayerCache();
    });

    it('a 50 MB file, a 100k-alias PrePull and a FIFO fail alone; the good PrePull is Present', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName('limits');
      const { digest } = await pushImage(
        plain,
        `${name}/ok`,
        'v1',
        runnableImage({ marker: name }),
      );
      const ref = `${plain.host}/${name}/ok:v1`;
      const dir = join(mkdtempSync(join(h.workDir, 'sync-limits-')), 'manifests');
      mkdirSync(dir);
      writePrePull(dir, 'good', [ref]);
      const huge = join(dir, 'huge.yaml');
      writeFileSync(huge, 'key: value\n'.repeat(5 * 1024 * 1024)); // 55 MB of real YAML
      const aliases = join(dir, 'aliases.yaml');
      // 100 000 aliases in two PrePulls of 50 000 each (one would pass the document size limit).
      const bomb = (n: number): string =>
        `apiVersion: prepull.dev/v1alpha1\nkind: PrePull\nmetadata: {name: bomb-${n}, namespace: sync-test}\n` +
        `spec:\n  images:\n    - &i {image: ${ref}}\n    - [${Array<string>(50_000).fill('*i').join(',')}]\n`;
      writeFileSync(aliases, `${bomb(1)}---\n${bomb(2)}`);
      const fifo = join(dir, 'fifo.yaml');
      execFileSync('mkfifo', [fifo]);

      const run = await runSync([
        '-f',
        dir,
        '--once',
        '-o',
        'json',
        '--runtime-endpoint',
        probe.endpoint,
        '--insecure-registry',
        plain.host,
        '--node-name',
        'sync-limits',
      ]);

      expect(run.otherStderr).toEqual([]);
      expect(run.code).toBe(1); // the bad files make the run not ok
      const result = JSON.parse(run.stdout) as SyncResult;
      expect(result.fileErrors).toEqual([
        {
          code: 'ERR_PREPULL_INVALID',
          message: `${aliases}: document 1: it holds more than 1000 YAML aliases (*name); a PrePull needs none`,
        },
        {
          code: 'ERR_PREPULL_INVALID',
          message: `${aliases}: document 2: it holds more than 1000 YAML aliases (*name); a PrePull needs none`,
        },
        {
          code: 'ERR_PREPULL_INVALID',
          message: `${fifo}: cannot read the file: it is a FIFO; prepull reads only regular files`,
        },
        {
          code: 'ERR_PREPULL_INVALID',
          message: `${huge}: cannot read the file: it is 57671680 bytes; a manifest file may have at most 4194304`,
        },
      ]);
      const good = result.images.find((i) => i.image === ref);
      expect([good?.state, good?.digest]).toEqual(['Present', digest]);
      expect(await probe.pinnedLabel(ref)).toBe(true);
    });
  },
);
