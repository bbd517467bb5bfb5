// Acceptance of `prepull sync` (issue 6) on real containerd and real Docker Engine: the real CLI
// runs as a subprocess (`node bin/prepull.js sync …`), its stdout read as the result and its
// stderr as JSON logs, and what it claims is checked with other clients of the runtime. Every
// case runs on both runtimes; disruptive and signal cases live in sync-outage and sync-signals.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import type { SyncResult } from '../../src/cli/output.ts';
import { pollUntil } from '../../src/testing/poll.ts';
import {
  buildImage,
  buildIndex,
  clearLayerCache,
  fileLayer,
  fillerLayer,
  runnableImage,
} from '../harness/images.ts';
import {
  BASIC_AUTH,
  type HarnessInfo,
  pushImage,
  sharedHarness,
  uniqueName,
} from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { freePort } from '../harness/registry.ts';
import { type RuntimeKind, type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import {
  SyncProcess,
  assertBuildFresh,
  dockerConfigJson,
  runSync,
  stateLines,
  writePrePull,
} from '../harness/sync-cli.ts';

const MiB = 1024 * 1024;
const NODE = 'sync-test';
const RUNTIMES: RuntimeKind[] = ['containerd', 'docker'];

function parseResult(stdout: string): SyncResult {
  return JSON.parse(stdout) as SyncResult;
}

function imageOf(result: SyncResult, ref: string): SyncResult['images'][number] {
  const image = result.images.find((i) => i.image === ref || i.written === ref);
  if (image === undefined) throw new Error(`no ${ref} in the result:\n${JSON.stringify(result)}`);
  return image;
}

/** The table row that starts with `written`. */
function tableRow(table: string, written: string): string {
  const row = table.split('\n').find((line) => line.startsWith(`${written} `));
  if (row === undefined) throw new Error(`no row for ${written} in the table:\n${table}`);
  return row;
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
    }).on('error', reject);
  });
}

function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', ['check', 'metrics'], (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      if (code === -1) reject(error ?? new Error('promtool failed to start'));
      else resolve({ code, output: `${stdout}${stderr}` });
    });
    child.stdin?.end(text);
  });
}

describeIntegration('prepull sync (real CLI, real runtimes)', () => {
  let h: HarnessInfo;

  beforeAll(() => {
    assertBuildFresh();
    h = sharedHarness();
  });

  afterAll(() => {
    clearLayerCache();
  });

  describe.each(RUNTIMES)('on %s', (kind) => {
    let probe: RuntimeProbe;
    let dir: string;

    beforeAll(() => {
      probe = runtimeProbe(kind, h);
      dir = mkdtempSync(join(h.workDir, `sync-${kind}-`));
    });

    afterAll(() => {
      probe.close();
    });

    /** Flags every run needs: this runtime, and the plain-HTTP registries for verification. */
    const flags = (): string[] => [
      '--runtime-endpoint',
      probe.endpoint,
      '--insecure-registry',
      h.registries.plain!.host,
      '--insecure-registry',
      h.registries.basic!.host,
      '--node-name',
      NODE,
    ];

    it('7 images of mixed sizes, shared layers and a multi-arch index reach Present with --once', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName(`seven-${kind}`);
      const shared = fillerLayer({ bytes: 8 * MiB, seed: `${name}-shared` });
      const arm64 = buildImage({
        layers: [fileLayer({ '/marker': `${name} arm64` })],
        platform: { os: 'linux', architecture: 'arm64' },
      });
      const images = {
        tiny: runnableImage({ marker: `${name} tiny` }),
        small: runnableImage({
          marker: `${name} small`,
          extraLayers: [fillerLayer({ bytes: MiB, seed: `${name}-small` })],
        }),
        'shared-a': runnableImage({
          marker: `${name} a`,
          extraLayers: [shared, fillerLayer({ bytes: MiB / 2, seed: `${name}-a` })],
        }),
        'shared-b': runnableImage({
          marker: `${name} b`,
          extraLayers: [shared, fillerLayer({ bytes: 2 * MiB, seed: `${name}-b` })],
        }),
        medium: runnableImage({
          marker: `${name} medium`,
          extraLayers: [fillerLayer({ bytes: 24 * MiB, seed: `${name}-medium` })],
        }),
        multi: buildIndex([
          runnableImage({
            marker: `${name} amd64`,
            extraLayers: [fillerLayer({ bytes: 4 * MiB, seed: `${name}-amd64` })],
          }),
          arm64,
        ]),
        'by-digest': runnableImage({
          marker: `${name} by digest`,
          extraLayers: [fillerLayer({ bytes: 3 * MiB, seed: `${name}-digest` })],
        }),
      };
      // reference → the digest pushed (the index digest for the multi-arch image)
      const pushed = new Map<string, string>();
      for (const [repo, image] of Object.entries(images)) {
        const { digest } = await pushImage(plain, `${name}/${repo}`, 'v1', image);
        const base = `${plain.host}/${name}/${repo}`;
        pushed.set(repo === 'by-digest' ? `${base}@${digest}` : `${base}:v1`, digest);
      }
      const file = writePrePull(dir, name, [...pushed.keys()]);

      const run = await runSync(['-f', file, '--once', '-o', 'json', ...flags()]);

      expect(run.otherStderr).toEqual([]);
      expect(run.code).toBe(0);
      const result = parseResult(run.stdout);
      expect(result.ok).toBe(true);
      expect(result.images).toHaveLength(pushed.size + (probe.sandboxImage === undefined ? 0 : 1));
      for (const image of result.images)
        expect([image.image, image.state]).toEqual([image.image, 'Present']);
      for (const [ref, digest] of pushed) {
        const report = imageOf(result, ref);
        expect({ ref, reason: report.reason, digest: report.digest }).toEqual({
          ref,
          reason: 'Verified',
          digest,
        });
        expect(report.pinned).toBe(kind === 'containerd');
        // One pull each, and the state change logged with digest and duration.
        expect(stateLines(run.logs, ref, 'Pulling')).toHaveLength(1);
        const present = stateLines(run.logs, ref, 'Present')[0];
        expect(present?.digest).toBe(digest);
        expect(typeof present?.durationMs).toBe('number');
        // The runtime's own image service agrees.
        const status = await probe.status(ref);
        expect(status?.repoDigests).toContain(`${ref.replace(/[:@][^/]*$/, '')}@${digest}`);
        if (kind === 'containerd') expect(await probe.pinnedLabel(ref)).toBe(true);
      }
    });

    it('an image deleted by another client is back within 5 s while sync runs', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName(`repair-${kind}`);
      const image = runnableImage({ marker: name });
      await pushImage(plain, name, 'v1', image);
      const ref = `${plain.host}/${name}:v1`;
      const file = writePrePull(dir, name, [ref]);

      const sync = new SyncProcess(['-f', file, ...flags()]);
      try {
        await sync.waitForStdout(`images present on ${NODE}`);
        expect(await probe.status(ref)).toBeDefined();

        await probe.remove(ref);
        const removedAt = Date.now();
        expect(await probe.status(ref)).toBeUndefined();
        // "Back" means back with its digest. containerd 1.6's CRI pull records the tag before
        // the repo digest (image_pull.go: imageID, repoTag, repoDigest, one store update each),
        // so a status read in between sees the tag with no repoDigests yet.
        const byDigest = `${plain.host}/${name}@${image.digest}`;
        const back = await pollUntil(
          `${ref} back on ${kind} with its digest`,
          async () => {
            const status = await probe.status(ref);
            return status?.repoDigests.includes(byDigest) === true ? status : undefined;
          },
          { timeoutMs: 5000, intervalMs: 50 },
        );
        const backAfterMs = Date.now() - removedAt;
        expect(back.repoDigests).toContain(byDigest);
        expect(backAfterMs).toBeLessThan(5000);
        if (kind === 'containerd') {
          // Pinned again: the removal took the pin label with the image.
          await pollUntil(
            `${ref} pinned again`,
            async () => ((await probe.pinnedLabel(ref)) ? true : undefined),
            { timeoutMs: 5000, intervalMs: 50 },
          );
        }
        await sync.waitForLog(
          (l) => l.msg === 'image removed from the node; pulling it back' && l.image === ref,
          'about the removal',
        );
      } finally {
        sync.kill('SIGTERM');
      }
      const stoppingAt = Date.now();
      const exit = await sync.exited(10_000);
      expect(Date.now() - stoppingAt).toBeLessThan(5000);
      expect(exit.code).toBe(0);
      expect(exit.otherStderr).toEqual([]);
    });

    it('a moved tag is Stale under IfNotPresent and re-pulled under Always', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName(`moved-${kind}`);
      const first = runnableImage({ marker: `${name} first` });
      const second = runnableImage({ marker: `${name} second` });
      const ref = `${plain.host}/${name}:moving`;
      const byDigest = (digest: string): string => `${plain.host}/${name}@${digest}`;
      await pushImage(plain, name, 'moving', first);
      const file = writePrePull(dir, name, [ref]);

      const initial = await runSync(['-f', file, '--once', '-o', 'json', ...flags()]);
      expect(initial.code).toBe(0);
      expect(imageOf(parseResult(initial.stdout), ref).digest).toBe(first.digest);

      await pushImage(plain, name, 'moving', second);

      // Start-up verifies every tag against the registry: the drift is seen, not repaired.
      const stale = await runSync(['-f', file, '--once', '-o', 'json', ...flags()]);
      expect(stale.code).toBe(1);
      const report = imageOf(parseResult(stale.stdout), ref);
      expect([report.state, report.reason]).toEqual(['Stale', 'DigestDrift']);
      expect(report.digest).toBe(first.digest);
      expect(report.registryDigest).toBe(second.digest);
      expect(report.message).toContain('IfNotPresent');
      expect(stateLines(stale.logs, ref, 'Pulling')).toEqual([]);
      expect((await probe.status(ref))?.repoDigests).toContain(byDigest(first.digest));

      writePrePull(dir, name, [ref], { pullPolicy: 'Always' });
      const repaired = await runSync(['-f', file, '--once', '-o', 'json', ...flags()]);
      expect(repaired.code).toBe(0);
      const after = imageOf(parseResult(repaired.stdout), ref);
      expect([after.state, after.reason, after.digest]).toEqual([
        'Present',
        'Verified',
        second.digest,
      ]);
      expect(stateLines(repaired.logs, ref, 'Pulling')).toHaveLength(1);
      expect((await probe.status(ref))?.repoDigests).toContain(byDigest(second.digest));
    });

    it('an invalid reference and a 404 image fail with their own reasons; the others succeed', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName(`mixed-${kind}`);
      const good = [`${plain.host}/${name}/one:v1`, `${plain.host}/${name}/two:v1`];
      await pushImage(plain, `${name}/one`, 'v1', runnableImage({ marker: `${name} one` }));
      await pushImage(plain, `${name}/two`, 'v1', runnableImage({ marker: `${name} two` }));
      const invalid = `${plain.host}/${name}/Not-Lowercase:v1`;
      const missing = `${plain.host}/${name}/missing:v1`;
      const file = writePrePull(dir, name, [good[0]!, invalid, missing, good[1]!]);

      const run = await runSync(['-f', file, '--once', ...flags()]);

      expect(run.code).toBe(1);
      expect(run.otherStderr).toEqual([]);
      const table = run.stdout;
      expect(tableRow(table, invalid)).toMatch(
        /\s+Failed\s+-\s+-\s+-\s+-\s+InvalidReference: .*must be lowercase.*\(ERR_IMAGE_REF_INVALID\)$/,
      );
      expect(tableRow(table, missing)).toMatch(
        /\s+Failed\s+-\s+-\s+-\s+-\s+PullFailed: .*the registry has no such image.*\(ERR_IMAGE_NOT_FOUND\)$/,
      );
      for (const ref of good)
        expect(tableRow(table, ref)).toMatch(/\s+Present\s+sha256:.*Verified$/);
      const total = 4 + (probe.sandboxImage === undefined ? 0 : 1);
      expect(table).toContain(`${total - 2}/${total} images present on ${NODE}`);
      // The invalid reference never reached the runtime; the missing one was tried once.
      expect(stateLines(run.logs, invalid, 'Pulling')).toEqual([]);
      expect(stateLines(run.logs, missing, 'Pulling')).toHaveLength(1);
    });

    it('credentials from --docker-config pull from the htpasswd registry; none means unauthorized', async () => {
      const basic = h.registries.basic!;
      const name = uniqueName(`auth-${kind}`);
      const image = runnableImage({ marker: name });
      await pushImage(basic, name, 'v1', image);
      const ref = `${basic.host}/${name}:v1`;
      const file = writePrePull(dir, name, [ref]);
      const config = join(dir, `${name}-config.json`);
      writeFileSync(config, dockerConfigJson(basic.host, BASIC_AUTH.username, BASIC_AUTH.password));
      // The most talkative level: a secret in any log line would show.
      const verbose = ['--log-level', 'trace'];

      const refused = await runSync(['-f', file, '--once', ...verbose, ...flags()]);
      expect(refused.code).toBe(1);
      expect(tableRow(refused.stdout, ref)).toMatch(
        /\s+Failed\s+.*PullFailed: .*\(ERR_REGISTRY_UNAUTHORIZED\)$/,
      );

      // DEBUG=* too: docker-modem would dump X-Registry-Auth under its `modem` namespace. And
      // NODE_DEBUG: Node's `net` section prints each new connection's request headers.
      const allowed = await runSync(
        ['-f', file, '--once', '-o', 'json', '--docker-config', config, ...verbose, ...flags()],
        60_000,
        { DEBUG: '*', NODE_DEBUG: 'net,http,https,tls,http2' },
      );
      expect(allowed.stderr).toContain('prepull: NODE_DEBUG: leaving out net,http,https,');
      expect(allowed.code).toBe(0);
      const report = imageOf(parseResult(allowed.stdout), ref);
      expect([report.state, report.reason, report.digest]).toEqual([
        'Present',
        'Verified',
        image.digest,
      ]);
      expect((await probe.status(ref))?.repoDigests).toContain(
        `${basic.host}/${name}@${image.digest}`,
      );

      const basicAuth = Buffer.from(`${BASIC_AUTH.username}:${BASIC_AUTH.password}`).toString(
        'base64',
      );
      for (const output of [refused.stdout, refused.stderr, allowed.stdout, allowed.stderr]) {
        expect(output).not.toContain(BASIC_AUTH.password);
        expect(output).not.toContain(basicAuth);
        expect(output).not.toContain('X-Registry-Auth');
      }
    });

    it('serves /metrics that pass promtool check metrics, /healthz and /readyz', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName(`metrics-${kind}`);
      await pushImage(plain, name, 'v1', runnableImage({ marker: name }));
      const ref = `${plain.host}/${name}:v1`;
      const file = writePrePull(dir, name, [ref]);
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;

      const sync = new SyncProcess([
        '-f',
        file,
        '--metrics-address',
        `127.0.0.1:${port}`,
        ...flags(),
      ]);
      try {
        await sync.waitForStdout(`images present on ${NODE}`);
        const metrics = await httpGet(`${base}/metrics`);
        expect(metrics.status).toBe(200);
        const check = await promtoolCheck(metrics.body);
        expect(check).toEqual({ code: 0, output: '' });
        const required = 1 + (probe.sandboxImage === undefined ? 0 : 1);
        expect(metrics.body).toContain(`prepull_images_required ${required}`);
        expect(metrics.body).toContain(`prepull_images{state="Present"} ${required}`);
        expect(metrics.body).toMatch(/prepull_pulls_total\{result="success",code=""\} [1-9]/);
        expect(metrics.body).toMatch(/prepull_last_sync_timestamp_seconds [1-9]/);
        // The bundle carries the revision it was built from; the runtime is named once detected.
        expect(metrics.body).toMatch(
          new RegExp(
            `^prepull_build_info\\{version="[^"]+",revision="(?!unknown")[^"]+",nodejs_version="${process.version}",command="sync",runtime="${kind}"\\} 1$`,
            'm',
          ),
        );
        expect(metrics.body).toMatch(/^process_resident_memory_bytes [1-9]/m);
        expect(await httpGet(`${base}/healthz`)).toEqual({ status: 200, body: 'ok\n' });
        expect(await httpGet(`${base}/readyz`)).toEqual({ status: 200, body: 'ok\n' });
      } finally {
        sync.kill('SIGTERM');
      }
      expect((await sync.exited(10_000)).code).toBe(0);
    });
  });
});
