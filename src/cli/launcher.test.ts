// NODE_DEBUG=net must not put registry credentials in the logs: Node's `net` debug output prints
// the options of each connection a client opens, headers included, and a Docker pull with
// credentials carries X-Registry-Auth. The real launcher (bin/prepull.js) runs `sync --once`
// against a fake Docker Engine socket here, so the test sees what the process would write.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const LAUNCHER = fileURLToPath(new URL('../../bin/prepull.js', import.meta.url));
const PASSWORD = 'hunter2-not-for-node-debug';
// A closed loopback port: the digest check after the pull fails at once.
const IMAGE = '127.0.0.1:9/app:1.0';

describe('bin/prepull.js under NODE_DEBUG', () => {
  let dir: string;
  let server: Server;
  let socket: string;
  /** X-Registry-Auth headers the fake Engine received. */
  const auths: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'prepull-launcher-'));
    socket = join(dir, 'docker.sock');
    let pulled = false;
    server = createServer((req, res) => {
      req.resume();
      const json = (status: number, value: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      const path = (req.url ?? '/').replace(/^\/v[0-9.]+/, '');
      const auth = req.headers['x-registry-auth'];
      if (typeof auth === 'string') auths.push(auth);
      if (path.startsWith('/_ping')) res.end('OK');
      else if (path.startsWith('/version')) json(200, { Version: '20.10.24', ApiVersion: '1.41' });
      else if (path.startsWith('/system/df')) json(200, { LayersSize: 0, Images: [] });
      else if (path.startsWith('/info')) json(200, { DockerRootDir: dir });
      else if (path.startsWith('/images/json') || path.startsWith('/containers/json'))
        json(200, []);
      else if (path.startsWith('/events')) res.writeHead(200).flushHeaders();
      else if (path.startsWith('/images/create')) {
        pulled = true;
        json(200, { status: 'Status: Downloaded newer image' });
      } else if (path.startsWith('/images/') && pulled) {
        json(200, {
          Id: `sha256:${'a'.repeat(64)}`,
          RepoTags: [IMAGE],
          RepoDigests: [`127.0.0.1:9/app@sha256:${'b'.repeat(64)}`],
          Size: 1,
        });
      } else json(404, { message: 'no such thing' });
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    writeFileSync(
      join(dir, 'prepull.yaml'),
      `apiVersion: prepull.dev/v1alpha1\nkind: PrePull\nmetadata: { name: t, namespace: default }\nspec:\n  images: [{ image: "${IMAGE}" }]\n`,
    );
    const auth = Buffer.from(`puller:${PASSWORD}`).toString('base64');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { '127.0.0.1:9': { auth } } }));
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  });

  function sync(nodeDebug: string): Promise<string> {
    const args = ['-f', join(dir, 'prepull.yaml'), '--once', '--runtime', 'docker'];
    args.push(
      '--runtime-endpoint',
      `unix://${socket}`,
      '--docker-config',
      join(dir, 'config.json'),
    );
    const child = spawn(process.execPath, [LAUNCHER, 'sync', ...args], {
      env: { ...process.env, NODE_DEBUG: nodeDebug },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', () => {
        resolve(stderr);
      });
    });
  }

  it.each([
    ['net,http', 'net,http'],
    ['N*,stream', 'N*'],
  ])(
    'NODE_DEBUG=%s: the pull sends X-Registry-Auth, and stderr never shows it',
    async (nodeDebug, dropped) => {
      auths.length = 0;
      const stderr = await sync(nodeDebug);
      expect(auths.length).toBeGreaterThan(0);
      expect(stderr).not.toContain('X-Registry-Auth');
      for (const auth of auths) expect(stderr).not.toContain(auth.slice(0, 24));
      expect(stderr).not.toContain(PASSWORD);
      expect(stderr).not.toMatch(/^NET \d+:/m);
      expect(stderr.split('\n')[0]).toBe(
        `prepull: NODE_DEBUG: leaving out ${dropped}, whose output carries request headers and TLS keys, registry credentials among them (docs/install.md, "Debug settings that print secrets").`,
      );
      // The sections that print no secret stay as asked.
      if (nodeDebug.includes('stream')) expect(stderr).toMatch(/^STREAM \d+:/m);
    },
    60_000,
  );
});

// The machines carry the system's Node 20 beside the project's Node 24: someone who runs
// `node bin/prepull.js` with the wrong one must read which Node is needed, not a SyntaxError.
describe('bin/prepull.js on a Node too old for it', () => {
  const oldNode = ['/usr/bin/node', '/usr/local/bin/node'].find((path) => {
    try {
      const major = Number(
        execFileSync(path, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }),
      );
      return major < 22;
    } catch {
      return false;
    }
  });
  // Only a machine without an old Node cannot run this; CI's machines have one (Debian's).
  const itOld = oldNode === undefined && process.env.CI !== 'true' ? it.skip : it;

  itOld('says which Node it needs and exits 1', () => {
    if (oldNode === undefined) throw new Error('CI=true but no Node older than 22 to run');
    const run = spawnSync(oldNode, [LAUNCHER, '--version'], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^prepull: Node\.js >= 22\.19 is required, this is v\d+/);
    expect(run.stderr).not.toMatch(/SyntaxError/);
  });
});
