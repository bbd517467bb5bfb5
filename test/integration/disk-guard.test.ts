// The disk guard (issue 21 item 7, ADR 0019) on a real containerd whose root sits on a small
// tmpfs mounted for this test: with the image filesystem filled below --image-fs-floor, a
// watching `prepull sync` (the built CLI) holds the new image — Failed, ERR_DISK_BUDGET, the
// numbers in its message, never pulled, no attempt spent — while the image already there stays
// Present and pinned; once the filler is deleted the held image is Present within one re-measure
// (15 s) plus the pull. Then --pin-budget: a budget the pinned image already fills holds a new
// image in `sync --once`, whose table says why.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { recordFault } from '../harness/fault-report.ts';
import { clearLayerCache, fillerLayer, runnableImage } from '../harness/images.ts';
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

const MiB = 1024 * 1024;
/** The image filesystem: small enough to fill in a moment, big enough for a few small images. */
const TMPFS_BYTES = 96 * MiB;
/** --image-fs-floor, as a quantity so the arithmetic below is exact. */
const FLOOR_BYTES = 32 * MiB;
/** Free space left once filled: below the floor by this much. */
const BELOW_FLOOR_BYTES = 4 * MiB;
/** The engine re-measures every 15 s while an image is held; a pull of ~3 MiB takes well under 1 s. */
const CONVERGE_BOUND_MS = 45_000;

function available(path: string): number {
  const stats = statfsSync(path);
  return stats.bavail * stats.bsize;
}

const heldLine =
  (ref: string) =>
  (l: LogLine): boolean =>
    l.msg === 'image state' && l.image === ref && l.code === 'ERR_DISK_BUDGET';

describeIntegration('the disk guard (real CLI, private containerd on a small tmpfs)', () => {
  let harness: Harness;
  let sync: SyncProcess | undefined;
  let mounted: string | undefined;

  beforeAll(async () => {
    assertBuildFresh();
    harness = await startHarness({ registries: ['plain'], docker: false });
    // containerd's root moves onto a tmpfs of its own: stopped, the tmpfs mounted over its
    // (hidden, not removed) root directory, started again with an empty image store.
    const containerd = harness.containerd!;
    await containerd.stop();
    const root = join(harness.root, 'containerd', 'root');
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'prepull-disk-guard', root]);
    mounted = root;
    await containerd.start();
  });

  afterAll(async () => {
    sync?.kill('SIGKILL');
    await sync?.exited(10_000).catch(() => undefined);
    // containerd first (its snapshot mounts sit on the tmpfs), then the tmpfs; the harness's
    // own cleanup unmounts anything under its root that is left, and fails if it cannot.
    await harness.containerd?.stop().catch(() => undefined);
    if (mounted !== undefined) {
      try {
        execFileSync('umount', [mounted], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['-l', mounted], { stdio: 'ignore' });
      }
    }
    clearLayerCache();
    await harness.stop();
  });

  it('holds an image below the floor without pulling it, keeps the one present, and pulls once space is freed; then holds past the pin budget', async () => {
    const plain = harness.info.registries.plain!;
    const { socket } = harness.info.containerd!;
    const root = mounted!;
    const name = uniqueName('disk-guard');
    const images = {
      present: runnableImage({ marker: `${name}-present` }),
      held: runnableImage({
        marker: `${name}-held`,
        extraLayers: [fillerLayer({ bytes: 2 * MiB, seed: `${name}-held` })],
      }),
      budget: runnableImage({ marker: `${name}-budget` }),
    };
    for (const [tag, image] of Object.entries(images)) await pushImage(plain, name, tag, image);
    const ref = (tag: keyof typeof images): string => `${plain.host}/${name}:${tag}`;
    const dir = mkdtempSync(join(harness.info.workDir, 'disk-guard-'));
    const flags = [
      '--runtime-endpoint',
      `unix://${socket}`,
      '--insecure-registry',
      plain.host,
      '--image-fs-floor',
      `${FLOOR_BYTES / MiB}Mi`,
      '--log-level',
      'debug',
    ];

    // The node holds `present`, pulled and pinned by prepull while there was room.
    const first = await runSync(
      ['-f', writePrePull(dir, 'base', [ref('present')]), '--once', ...flags],
      60_000,
    );
    expect({ code: first.code, stderr: first.code === 0 ? '' : first.stderr }).toEqual({
      code: 0,
      stderr: '',
    });

    // Something else fills the image filesystem to 4 MiB below the floor.
    const filler = join(root, 'filler.bin');
    const fill = available(root) - (FLOOR_BYTES - BELOW_FLOOR_BYTES);
    expect(fill).toBeGreaterThan(0);
    writeFileSync(filler, Buffer.alloc(fill, 1));
    const freeBefore = available(root);
    expect(freeBefore).toBeLessThan(FLOOR_BYTES);

    const both = join(dir, 'both');
    mkdirSync(both);
    writePrePull(both, 'both', [ref('present'), ref('held')], { backoffLimit: 1 });
    sync = new SyncProcess(['-f', both, ...flags]);
    const held = await sync.waitForLog(heldLine(ref('held')), 'the held image', 60_000);
    expect(held).toMatchObject({ state: 'Failed', reason: 'DiskBudget' });
    expect(String(held.message)).toMatch(
      new RegExp(
        `^not pulled: the image filesystem at ${root}/\\S+ has \\d+\\.\\d\\d MiB free, and its size is unknown \\(never held on this node\\); pulling it would leave less than the floor of 32\\.00 MiB \\(--image-fs-floor\\)$`,
      ),
    );
    // The message's free figure is the filesystem's.
    const shown = Number(/has (\d+\.\d\d) MiB free/.exec(String(held.message))![1]);
    expect(Math.abs(shown * MiB - freeBefore)).toBeLessThan(2 * MiB);
    await sync.waitForLog(
      (l) => l.msg === 'image state' && l.image === ref('present') && l.state === 'Present',
      'the present image',
    );

    // Held through more than two re-measures (and far past backoffLimit 1's retries): never
    // pulled, nothing else logged for it, and the present image untouched.
    await new Promise((r) => setTimeout(r, 35_000));
    // Missing (first read: not on the node), then Failed once weighed, and nothing after.
    expect(stateLines(sync.logs, ref('held')).map((l) => l.state)).toEqual(['Missing', 'Failed']);
    expect(sync.logs.filter((l) => l.msg === 'pull failed' || l.msg === 'pull progress')).toEqual(
      [],
    );
    // (Present while verifying, then Present and verified: never anything but Present.)
    expect(new Set(stateLines(sync.logs, ref('present')).map((l) => l.state))).toEqual(
      new Set(['Present']),
    );

    // The filler goes: the held image is Present within one re-measure plus its pull.
    rmSync(filler);
    const freedAt = Date.now();
    const present = await sync.waitForLog(
      (l) =>
        l.msg === 'image state' &&
        l.image === ref('held') &&
        l.state === 'Present' &&
        l.reason === 'Verified',
      'the held image Present',
      CONVERGE_BOUND_MS + 15_000,
    );
    const convergedMs = Date.now() - freedAt;
    expect(present.state).toBe('Present');
    expect(convergedMs).toBeLessThan(CONVERGE_BOUND_MS);
    sync.kill('SIGTERM');
    const exit = await sync.exited(30_000);
    sync = undefined;
    expect(exit.code).toBe(0);
    // The result printed once it first settled says why the image is held, and the disk line
    // gives the picture; the present image is pinned (on containerd 1.6.20 only its label says so).
    expect(exit.stdout).toMatch(
      new RegExp(
        `${name}:held\\s+Failed\\s+-\\s+-\\s+-\\s+-\\s+DiskBudget: not pulled: the image filesystem at .* has [\\d.]+ MiB free.*floor of 32\\.00 MiB \\(--image-fs-floor\\) \\(ERR_DISK_BUDGET\\)`,
      ),
    );
    expect(exit.stdout).toMatch(
      new RegExp(`${name}:present\\s+Present\\s+\\S+\\s+[\\d.]+ \\w+\\s+yes`),
    );
    expect(exit.stdout).toMatch(
      /^disk: [\d.]+ MiB free, floor 32\.00 MiB; [\d.]+ MiB pinned; 1 image\(s\) held for room \(ERR_DISK_BUDGET\), pulled once there is room$/m,
    );
    recordFault({
      id: 'disk-floor',
      runtime: 'containerd',
      convergedMs,
      outcome: `image filesystem filled to ${(freeBefore / MiB).toFixed(1)} MiB free under a 32 MiB floor: the new image Failed ERR_DISK_BUDGET with the numbers, never pulled, no attempt spent; the present image stayed Present and pinned; Present ${convergedMs} ms after the filler was deleted`,
    });

    // The budget: `present` and `held` are pinned; a budget of 1 MiB is already spent, so an
    // image of unknown size is held (the floor has room now), and sync --once says why.
    const budget = await runSync(
      [
        '-f',
        writePrePull(dir, 'budget', [ref('present'), ref('held'), ref('budget')]),
        '--once',
        ...flags,
        '--pin-budget',
        '1Mi',
      ],
      60_000,
    );
    expect(budget.code).toBe(1);
    const budgetHeld = budget.logs.find(heldLine(ref('budget')));
    expect(String(budgetHeld?.message)).toMatch(
      /^not pulled: prepull pins \d+\.\d\d MiB on this node, and its size is unknown \(never held on this node\); pinning it would exceed the pin budget of 1\.00 MiB \(--pin-budget\)$/,
    );
    expect(budget.stdout).toMatch(
      new RegExp(
        `${name}:budget\\s+Failed .*DiskBudget: not pulled: prepull pins .* \\(ERR_DISK_BUDGET\\)`,
      ),
    );
    expect(budget.stdout).toMatch(
      /^disk: [\d.]+ MiB free, floor 32\.00 MiB; [\d.]+ MiB pinned of a 1\.0 MiB budget; 1 image\(s\) held for room \(ERR_DISK_BUDGET\), pulled once there is room$/m,
    );
    // What the node held stays: both still Present and pinned, the once-held one included.
    for (const tag of ['present', 'held'] as const) {
      expect(budget.stdout).toMatch(
        new RegExp(`${name}:${tag}\\s+Present\\s+\\S+\\s+[\\d.]+ \\w+\\s+yes`),
      );
    }
  });
});
